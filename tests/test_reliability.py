"""Issue 12: nothing silently wrong, no hangs, no raw exceptions, on every backend.

One named regression test per case of the issue (each fails without its fix), on every
available backend where the case applies, tfp and tfp-tf included. The core's checks
(non-finite parameters, sample sizes, torch transforms) apply to every backend because they run
before any backend draws.
"""

from __future__ import annotations

import functools
import math
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

import polysample as ps
from conftest import AVAILABLE
from polysample.conformance.grids import example_params

INF, NAN = float("inf"), float("nan")
SRC = str(Path(ps.__file__).resolve().parents[1])


#: The built-in backends (a plugin installed beside them is held to the conformance suite's
#: grids, which carry these cases too, not to this file).
BUILTIN = ("torch", "numpy", "tfp", "tfp-tf")


def _backends(*only: str) -> list[str]:
    return [b for b in AVAILABLE if b in BUILTIN and (not only or b in only)]


def _families(backend: str) -> set[str]:
    return set(ps.load_backend(backend).families())


# ============================================================ silent wrong results
# ---- functorch transforms on backends that draw outside torch
@pytest.mark.parametrize("randomness", ["different", "error", "same"])
@pytest.mark.parametrize("method", ["sample", "rsample"])
@pytest.mark.parametrize("backend", _backends())
def test_vmap_never_gives_every_batch_element_the_same_draw(backend: str, method: str,
                                                            randomness: str) -> None:
    def draw(loc: torch.Tensor) -> torch.Tensor:
        return getattr(ps.Normal(loc, 1.0, backend=backend), method)()

    run = torch.vmap(draw, randomness=randomness)
    if ps.load_backend(backend).traceable:
        if randomness == "error":
            with pytest.raises(RuntimeError, match="randomness"):
                run(torch.zeros(4))  # torch's own refusal, as for torch.distributions
            return
        out = run(torch.zeros(4))
        assert (out.unique().numel() == 1) == (randomness == "same")
        return
    with pytest.raises(ps.NotTraceableError, match="torch.func transform") as info:
        run(torch.zeros(4))
    assert backend in str(info.value) and "Normal" in str(info.value)


@pytest.mark.parametrize("backend", _backends())
def test_torch_func_grad_of_a_draw_is_refused_outside_torch(backend: str) -> None:
    def f(a: torch.Tensor) -> torch.Tensor:
        return ps.Gamma(a, 1.0, backend=backend).rsample(seed=0)

    if ps.load_backend(backend).traceable:
        g = torch.func.grad(f)(torch.tensor(2.0))
        assert torch.isfinite(g)
        return
    with pytest.raises(ps.NotTraceableError, match="torch.func"):
        torch.func.grad(f)(torch.tensor(2.0))


# ---- second-order gradients through implicit reparameterization
_IMPLICIT = {
    "Gamma": lambda a, b: ps.Gamma(a, 1.0, backend=b),
    "Beta": lambda a, b: ps.Beta(a, 2.0, backend=b),
    "Dirichlet": lambda a, b: ps.Dirichlet(torch.stack([a, a + 1.0]), backend=b),
    "StudentT": lambda a, b: ps.StudentT(a, backend=b),
    "InverseGamma": lambda a, b: ps.InverseGamma(a, 1.0, backend=b),
}


# numpy: its own implicit gradients (finite differences of CDFs: a second derivative was
# silently 0); torch and auto: torch's implicit gradients, whose second derivative raised
# torch's bare NotImplementedError (Gamma family) or RuntimeError (Beta, Dirichlet)
@pytest.mark.parametrize("backend", [b for b in ("numpy", "torch", "auto") if b in AVAILABLE])
@pytest.mark.parametrize("family", sorted(_IMPLICIT))
def test_second_order_gradient_through_implicit_draws_raises_the_documented_error(
        backend: str, family: str) -> None:
    make = _IMPLICIT[family]
    for a0 in (0.2, 2.0):  # the log-space and the direct draws of small and large parameters
        _second_order_raises(lambda a: make(a, backend).rsample(seed=0).reshape(-1)[0], a0)


def _second_order_raises(f: Callable[[torch.Tensor], torch.Tensor], a0: float) -> None:

    with pytest.raises(ps.NotReparameterizableError, match="Second-order") as info:
        torch.autograd.functional.hessian(f, torch.tensor(a0))
    assert isinstance(info.value, NotImplementedError)
    # First order with create_graph=True keeps its value (only differentiating it raises).
    a = torch.tensor(a0, requires_grad=True)
    (g,) = torch.autograd.grad(f(a), a, create_graph=True)
    a2 = torch.tensor(a0, requires_grad=True)
    (g_plain,) = torch.autograd.grad(f(a2), a2)
    assert torch.allclose(g.detach(), g_plain)
    with pytest.raises(ps.NotReparameterizableError):
        g.backward()


# ---- torch.distributions' own silent errors, held on every backend
@pytest.mark.parametrize("backend", [
    pytest.param(b)
    for b in _backends()])
def test_categorical_with_1e5_categories_and_1e7_tails(backend: str) -> None:
    k, n = 100_000, 1 << 19
    p = torch.full((k,), 1e-7)
    p[0] = 1 - 1e-7 * (k - 1)
    x = ps.Categorical(probs=p, backend=backend).sample((n,), seed=12)
    tail = 1 - float(p.double()[0] / p.double().sum())
    z = (float((x != 0).double().mean()) - tail) / math.sqrt(tail * (1 - tail) / n)
    assert abs(z) < 5, z  # torch.multinomial in float32: 0.0119 against 0.0100 (z = 14)


@pytest.mark.parametrize("backend", [
    pytest.param(b)
    for b in _backends()])
def test_float32_binomial_with_a_billion_trials_has_the_right_variance(backend: str) -> None:
    n = 1 << 17
    x = ps.Binomial(torch.tensor(1e9), torch.tensor(0.3), backend=backend).sample(
        (n,), seed=3).double()
    assert x.dtype == torch.float64
    ratio = float(((x - 3e8) ** 2).mean()) / (1e9 * 0.3 * 0.7)
    assert abs(ratio - 1) < 6 * math.sqrt(2 / n), ratio  # torch in float32: 1.40


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("backend", [
    pytest.param(b)
    for b in _backends()])
def test_dirichlet_with_tiny_concentrations_has_no_uniform_rows(backend: str,
                                                                dtype: torch.dtype) -> None:
    x = ps.Dirichlet(torch.full((5,), 1e-3, dtype=dtype), backend=backend).sample(
        (1 << 16,), seed=5)
    uniform = (x == x[..., :1]).all(-1)
    assert not uniform.any(), float(uniform.double().mean())  # torch: 3% of the rows
    assert torch.isfinite(x).all() and (x > 0).all()
    assert torch.allclose(x.double().sum(-1), torch.ones((), dtype=torch.float64), atol=1e-5)


@pytest.mark.parametrize("backend", [
    pytest.param(b)
    for b in _backends()])
def test_beta_with_tiny_concentrations_is_never_exactly_one_half(backend: str) -> None:
    x = ps.Beta(1e-3, 1e-3, backend=backend).sample((1 << 16,), seed=5)
    assert not (x == 0.5).any()
    assert (x > 0).all() and (x < 1).all()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("backend", _backends())
def test_von_mises_with_huge_concentrations_draws_the_spread_of_its_normal_limit(
        backend: str, dtype: torch.dtype) -> None:
    # torch refused 1e17 and 1e30 (its proposal rounds to 1, nothing is accepted); TFP's float32
    # sampler returned loc itself at 1e10 and 1e17 and NaN at 1e30.
    kappa = torch.tensor([1e7, 1e10, 1e17, 1e30], dtype=dtype)
    x = ps.VonMises(torch.tensor(0.5, dtype=dtype), kappa, backend=backend).sample(
        (4000,), seed=3)
    assert x.dtype == dtype and torch.isfinite(x).all() and (x.abs() <= math.pi).all()
    dev = x.double() - 0.5
    sigma = kappa.double().rsqrt()
    ulp = torch.finfo(dtype).eps / 2  # the spacing of floats at 0.5
    for j in range(4):
        if sigma[j] > 100 * ulp:
            # sd(std) / std = 1 / sqrt(2n) = 1.1%: 10% is 9 standard errors
            assert abs(float(dev[:, j].std() / sigma[j]) - 1) < 0.1, (float(kappa[j]), j)
        else:  # below the float's resolution around loc: loc, give or take a few ulps
            assert float(dev[:, j].abs().max()) <= 8 * float(sigma[j]) + 2 * ulp


@pytest.mark.parametrize("backend", [b for b in _backends() if b in ("tfp", "tfp-tf")])
def test_von_mises_rsample_at_huge_concentrations_has_the_normal_limits_gradients(
        backend: str) -> None:
    loc = torch.tensor([0.5, 0.5, 0.5], dtype=torch.float64, requires_grad=True)
    kappa = torch.tensor([2.0, 1e10, 1e30], dtype=torch.float64, requires_grad=True)
    x = ps.VonMises(loc, kappa, backend=backend).rsample((200,), seed=4)
    g_loc, g_kappa = torch.autograd.grad(x.sum(), [loc, kappa])
    assert torch.isfinite(x).all() and torch.isfinite(g_loc).all() and torch.isfinite(g_kappa).all()
    assert torch.allclose(g_loc[1:], torch.full((2,), 200.0, dtype=torch.float64))
    # x = loc + z / sqrt(kappa): dx/dkappa = -(x - loc) / (2 kappa); at 1e30, x - loc (about
    # 1e-15) is known only to the float spacing at 0.5 (1.1e-16)
    want = -(x.detach() - 0.5).sum(0) / (2 * kappa.detach())
    assert torch.allclose(g_kappa[1], want[1], rtol=1e-6, atol=0)
    assert torch.allclose(g_kappa[2], want[2], rtol=0.2, atol=0)


@pytest.mark.parametrize("method", ["sample", "rsample"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("backend", _backends())
def test_fisher_snedecor_with_tiny_degrees_of_freedom_is_symmetric_about_one(
        backend: str, dtype: torch.dtype, method: str) -> None:
    # F(d, d) is below 1 with probability 1/2. Both Gamma draws of the ratio underflowing to
    # the smallest float made it exactly 1 (float32 at 0.01: 42% on numpy's rsample and
    # tfp-tf, 0.08% on torch) or NaN (numpy's sample: 0.06%).
    df = torch.tensor(0.01, dtype=dtype)
    x = getattr(ps.FisherSnedecor(df, df, backend=backend), method)((20000,), seed=6)
    assert x.dtype == dtype and not torch.isnan(x).any() and (x > 0).all()
    below, above = (x < 1).double().mean(), (x > 1).double().mean()
    # sd of each fraction: 0.0035; 0.03 is 8.5 of them
    assert abs(float(below) - 0.5) < 0.03 and abs(float(above) - 0.5) < 0.03, (below, above)


@pytest.mark.parametrize("backend", _backends("torch", "numpy"))
def test_fisher_snedecor_rsample_at_tiny_degrees_of_freedom_has_no_nan_gradient(
        backend: str) -> None:
    # Draws reach 1e300 there: two separate products of the gradient overflowed to inf - inf
    df1 = torch.full((4000,), 0.01, dtype=torch.float64, requires_grad=True)
    df2 = torch.full((4000,), 0.02, dtype=torch.float64, requires_grad=True)
    x = ps.FisherSnedecor(df1, df2, backend=backend).rsample(seed=8)
    g1, g2 = torch.autograd.grad(x.sum(), [df1, df2])
    assert not torch.isnan(g1).any() and not torch.isnan(g2).any()
    small = x < 1e100  # away from the float range's end the derivatives are finite
    assert torch.isfinite(g1[small]).all() and torch.isfinite(g2[small]).all()


_SMALL_CONCENTRATIONS = {
    "Gamma": lambda c: {"concentration": c, "rate": torch.ones_like(c)},
    "Chi2": lambda c: {"df": 2 * c},
    "Beta": lambda c: {"concentration1": c, "concentration0": c.flip(0)},
    "Dirichlet": lambda c: {"concentration": torch.stack([c, c.flip(0), 2 * c], -1)},
    "InverseGamma": lambda c: {"concentration": c, "rate": torch.ones_like(c)},
    "FisherSnedecor": lambda c: {"df1": 2 * c, "df2": 2 * c.flip(0)},
    # chi2 = 2 Gamma(df / 2): torch's (and TFP's on JAX) underflowed, NaN gradients
    "StudentT": lambda c: {"df": 2 * c, "loc": torch.zeros_like(c), "scale": 1 + c},
}


@pytest.mark.parametrize("family", sorted(_SMALL_CONCENTRATIONS))
@pytest.mark.parametrize("backend", _backends())
def test_rsample_at_small_concentrations_has_no_nan_gradient(backend: str, family: str) -> None:
    # A Gamma draw of concentration a underflows to 0 with probability about tiny**a: 7% at
    # 0.03 in float32, 12% at 0.003 in float64. TFP's pathwise gradient of such a draw is NaN
    # (JAX: Gamma, Beta, Dirichlet, InverseGamma, FisherSnedecor; TensorFlow: Beta, Dirichlet,
    # InverseGamma), and one NaN draw made the whole parameter's gradient NaN.
    for dtype, value in ((torch.float32, 0.03), (torch.float64, 0.003)):
        c = torch.linspace(value, 2 * value, 512, dtype=dtype)  # one 512-row bucket on tfp
        params = {k: v.requires_grad_(True) for k, v in _SMALL_CONCENTRATIONS[family](c).items()}
        x = getattr(ps, family)(**params, backend=backend).rsample(seed=12)
        grads = torch.autograd.grad(torch.log1p(x.abs()).sum(), list(params.values()))
        for name, g in zip(params, grads):
            assert not torch.isnan(g).any(), (dtype, name, int(torch.isnan(g).sum()))
            if backend.startswith("tfp"):  # draws held in [tiny, max]: finite gradients
                assert torch.isfinite(g).all(), (dtype, name)




_NEAR_ZERO = {**_SMALL_CONCENTRATIONS,
              "Kumaraswamy": lambda c: {"concentration1": c, "concentration0": c.flip(0)},
              "VonMises": lambda c: {"loc": torch.zeros_like(c), "concentration": c}}


@pytest.mark.parametrize("family", sorted(_NEAR_ZERO))
@pytest.mark.parametrize("backend", _backends())
def test_rsample_at_concentrations_near_zero_has_no_nan_gradient(backend: str,
                                                                 family: str) -> None:
    # Below about 1e-19 in float32 derivatives such as log(U) / h**2 or 1 / a**2 overflow, and
    # a zero cotangent (a draw held at the float range's end) times inf was NaN: tfp (both
    # substrates) for every family here but Chi2, torch and numpy for Kumaraswamy. tfp now
    # draws float32 calls with a parameter below 1e-12 in float64; 1e-11 is drawn in float32.
    if not ps.load_backend(backend).families()[family].rsample:
        pytest.skip(f"{family} has no rsample on {backend}")
    for dtype, value in ((torch.float32, 1e-30), (torch.float64, 1e-30), (torch.float32, 1e-11)):
        c = torch.linspace(value, 2 * value, 512, dtype=dtype)  # one 512-row bucket on tfp
        params = {k: v.requires_grad_(True) for k, v in _NEAR_ZERO[family](c).items()}
        x = getattr(ps, family)(**params, backend=backend).rsample(seed=13)
        assert x.dtype == dtype and torch.isfinite(x).all(), (dtype, value)
        grads = torch.autograd.grad(torch.log1p(x.abs()).sum(), list(params.values()))
        for name, g in zip(params, grads):
            assert not torch.isnan(g).any(), (dtype, value, name, int(torch.isnan(g).sum()))


@pytest.mark.parametrize("backend", _backends())
def test_rsample_past_the_float_range_has_zero_not_nan_gradients(backend: str) -> None:
    # Weibull at concentration 1e-3 (e^(1/k) overflows for 13% of float64 draws),
    # GeneralizedPareto at concentration 1000 (expm1(xi e) overflows for about half) and Pareto
    # at alpha 1e-3 (exp(e / alpha): 91% of float32 draws, 49% of float64): the value is held at
    # the largest float, and the derivative of the overflowed operation (inf) times the clamp's
    # zero gradient was NaN (Pareto: inf and inf values), for every parameter. On tfp (both
    # substrates) Pareto and GeneralizedPareto were inf with NaN gradients, Weibull's gradient
    # inf at the clamp. 2000 values: the exact programs; 100: the shape buckets.
    cases = {"Weibull": {"scale": 2.0, "concentration": 1e-3},
             "GeneralizedPareto": {"loc": 0.5, "scale": 2.0, "concentration": 1e3},
             "Pareto": {"scale": 2.0, "alpha": 1e-3}}
    for dtype in (torch.float32, torch.float64):
        fi = torch.finfo(dtype)
        for family, values in cases.items():
            n = 2000 if dtype == torch.float32 else 100
            params = {k: torch.full((n,), v, dtype=dtype, requires_grad=True)
                      for k, v in values.items()}
            x = getattr(ps, family)(**params, backend=backend).rsample(seed=5)
            assert torch.isfinite(x).all() and (x <= fi.max).all()
            top = x.detach() >= fi.max
            assert 0.05 < float(top.double().mean()) < 0.95, (family, dtype)
            grads = torch.autograd.grad(x.sum(), list(params.values()))
            for name, g in zip(params, grads):
                assert not torch.isnan(g).any(), (family, dtype, name)
                # held entries: exactly 0 (inside the range a derivative can still pass the
                # largest float, as the true one does: -x log(e) / k**2 at k = 1e-3)
                assert (g[top] == 0).all(), (family, dtype, name)
            # sample() (NumPy's own samplers on the numpy backend) stays finite too
            y = getattr(ps, family)(**params, backend=backend).sample(seed=5)
            assert torch.isfinite(y).all() and (y <= fi.max).all(), (family, dtype)


@pytest.mark.parametrize("backend", _backends("torch"))
def test_beta_rsample_at_huge_concentrations_has_no_nan_gradient(backend: str) -> None:
    # torch's implicit Dirichlet gradient was NaN for Beta(1e20, 1) and Beta(1e30, 1e30); the
    # torch backend recomputes such entries with polysample's implicit gradient (the numpy
    # backend's, which passes this in 6 s: its continued fractions converge slowly there)
    for dtype in (torch.float32, torch.float64):
        for c1, c0 in ((1e20, 1.0), (1.0, 1e20), (1e30, 1e30), (1e-30, 1e30)):
            a = torch.full((200,), c1, dtype=dtype, requires_grad=True)
            b = torch.full((200,), c0, dtype=dtype, requires_grad=True)
            x = ps.Beta(a, b, backend=backend).rsample(seed=4)
            for g in torch.autograd.grad(x.sum(), [a, b]):
                assert torch.isfinite(g).all(), (dtype, c1, c0)

@pytest.mark.parametrize("backend", _backends("torch", "numpy"))
def test_dirichlet_and_beta_gradients_propagate_a_nan_cotangent(backend: str) -> None:
    # The implicit Dirichlet gradient made its product with the cotangent finite, so a NaN
    # upstream gradient came back 0 (torch.distributions gives NaN); also where the torch
    # backend recomputes torch's non-finite gradient (Beta(1e20, 1)). Rows with a finite
    # cotangent keep finite gradients.
    for c1, c0 in ((0.7, 2.0), (1e20, 1.0)):
        a = torch.full((4,), c1, dtype=torch.float64, requires_grad=True)
        b = torch.full((4,), c0, dtype=torch.float64, requires_grad=True)
        x = ps.Beta(a, b, backend=backend).rsample(seed=4)
        ct = torch.tensor([math.nan, 1.0, 1.0, 1.0], dtype=torch.float64)
        for g in torch.autograd.grad(x, [a, b], ct):
            assert torch.isnan(g[0]) and torch.isfinite(g[1:]).all(), (c1, c0, g)
    conc = torch.tensor([[0.7, 2.0, 3.5], [1.5, 1.5, 1.5]], dtype=torch.float64,
                        requires_grad=True)
    x = ps.Dirichlet(conc, backend=backend).rsample(seed=4)
    ct = torch.tensor([[math.nan, 1.0, 0.5], [1.0, 2.0, 0.5]], dtype=torch.float64)
    (g,) = torch.autograd.grad(x, conc, ct)
    assert torch.isnan(g[0]).all() and torch.isfinite(g[1]).all(), g


#: Families with two floating parameters, tried with mixed dtypes on the compiled backends
#: (every family on torch and numpy): one program per family and dtype, seconds each.
_MIXED_COMPILED = ("Normal", "Gamma", "LogNormal", "MultivariateNormal")


@pytest.mark.parametrize("backend", _backends())
def test_mixed_float_dtypes_draw_and_score_in_the_promoted_dtype(backend: str) -> None:
    # A float32 parameter beside a float64 one: rsample() with gradients raised
    # BackendContractError on the torch and numpy backends (they drew float64 where the core
    # expected the first parameter's float32), sample() kept float32, MultivariateNormal with
    # a float64 loc and a float32 scale_tril raised torch's RuntimeError, and torch's own
    # log_prob failed for LowRankMultivariateNormal and Wishart. Every backend now receives
    # the parameters in the promoted dtype: draws and scores are float64, and each leaf's
    # gradient keeps the leaf's dtype.
    families = sorted(_families(backend)) if backend in ("torch", "numpy") else \
        [f for f in _MIXED_COMPILED if f in _families(backend)]
    tried = 0
    for family in families:
        params = example_params(family, (2,), dtype=torch.float64)
        floats = [k for k, v in params.items()
                  if isinstance(v, torch.Tensor) and v.is_floating_point()]
        if len(floats) < 2:
            continue
        for narrow_first in (True, False):
            kw, leaves = dict(params), {}
            for i, k in enumerate(floats):
                v = params[k].detach().clone()
                if (i == 0) == narrow_first:
                    v = v.float()
                kw[k] = leaves[k] = v.requires_grad_(True)
            d = getattr(ps, family)(**kw, backend=backend)
            # what torch holds after construction (Binomial casts total_count to probs' dtype)
            held = [getattr(d, k) for k in floats]
            want = functools.reduce(torch.promote_types, [t.dtype for t in held])
            x = d.sample((3,), seed=1)
            assert x.dtype == want or not x.is_floating_point(), (family, x.dtype)
            assert d.log_prob(x).dtype == want, family
            if d.has_rsample:
                y = d.rsample((3,), seed=1)
                assert y.dtype == want, (family, y.dtype)
                grads = torch.autograd.grad(y.sum(), list(leaves.values()), allow_unused=True)
                for k, g in zip(leaves, grads):
                    assert g is None or (g.dtype == leaves[k].dtype and torch.isfinite(g).all()), \
                        (family, k)
            tried += 1
    assert tried >= (2 * len(_MIXED_COMPILED) if backend not in ("torch", "numpy") else 40)
    # a model's parameters: nn.Parameter is a tensor subclass
    loc = torch.nn.Parameter(torch.zeros(2))
    scale = torch.nn.Parameter(torch.ones(2, dtype=torch.float64))
    y = ps.Normal(loc, scale, backend=backend).rsample((3,), seed=1)
    y.sum().backward()
    assert y.dtype == torch.float64 and loc.grad is not None and loc.grad.dtype == torch.float32


@pytest.mark.parametrize("backend", _backends())
def test_a_dirichlet_of_one_category_draws_its_one_point(backend: str) -> None:
    # The simplex of one category is the point 1 (torch draws it, with a zero gradient); the
    # TFP backends raised BackendContractError (TFP: "event_size at least 2").
    conc = torch.tensor([[0.5], [3.0]], dtype=torch.float64, requires_grad=True)
    x = ps.Dirichlet(conc, backend=backend).rsample((4,), seed=0)
    assert x.shape == (4, 2, 1)
    torch.testing.assert_close(x.detach(), torch.ones_like(x), rtol=0, atol=1e-15)  # torch: 1 - ulp
    (g,) = torch.autograd.grad(x.sum(), conc)
    torch.testing.assert_close(g, torch.zeros_like(g), rtol=0, atol=1e-12)


def test_half_precision_gumbel_scores_its_draws() -> None:
    # Gumbel's transforms refer to each other (a transform and its inverse): the float32 copy
    # that scores half-precision parameters recursed until Python's limit.
    d = ps.Gumbel(torch.zeros(2, dtype=torch.float16), torch.ones(2, dtype=torch.float16),
                  backend="torch")
    lp = d.log_prob(d.sample((3,), seed=0))
    assert lp.dtype == torch.float16 and torch.isfinite(lp).all()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("backend", _backends())
def test_student_t_rsample_at_small_df_follows_the_law(backend: str, dtype: torch.dtype) -> None:
    # One-sample K-S against SciPy with the DKWM bound at alpha = 1e-6 per case (n = 20,000:
    # threshold 0.019). The chi2 draw in the parameters' dtype sat at the smallest float, so
    # float32 draws were capped near 1e19: at df 0.05 10% of the law lies beyond. Draws past
    # 99% of the largest float are held there (0.6% of the law on each side in float32), which
    # moves the K-S distance by at most that mass.
    stats = pytest.importorskip("scipy.stats")
    n, alpha = 20_000, 1e-6
    threshold = math.sqrt(math.log(2 / alpha) / (2 * n))
    for df in (0.05, 0.3):
        d = torch.tensor(df, dtype=dtype, requires_grad=True)
        x = ps.StudentT(d, backend=backend).rsample((n,), seed=21)
        (g,) = torch.autograd.grad(torch.log1p(x.abs()).sum(), d)
        assert torch.isfinite(g), (df, g)
        xs = x.detach().double().sort().values.numpy()
        cdf = stats.t(df).cdf(xs)
        i = torch.arange(1, n + 1, dtype=torch.float64).numpy()
        distance = max((i / n - cdf).max(), (cdf - (i - 1) / n).max())
        assert distance <= threshold, (df, distance, float(x.abs().max()))

@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("backend", _backends())
def test_student_t_sample_at_small_df_stays_in_the_float_range_and_follows_the_law(
        backend: str, dtype: torch.dtype) -> None:
    # NumPy's standard_t gave +-inf at small df (df = 1e-3: about half the draws), where
    # rsample() and the other backends hold such draws at the float range's ends. The law is
    # checked as in the rsample test above (K-S, DKWM bound, alpha = 1e-6, n = 20,000).
    stats = pytest.importorskip("scipy.stats")
    n, alpha = 20_000, 1e-6
    threshold = math.sqrt(math.log(2 / alpha) / (2 * n))
    for df in (1e-10, 1e-3, 0.05):
        x = ps.StudentT(torch.tensor(df, dtype=dtype), backend=backend).sample((n,), seed=22)
        assert torch.isfinite(x).all(), (df, x[~torch.isfinite(x)][:3])
        if df < 0.05:
            continue
        xs = x.double().sort().values.numpy()
        cdf = stats.t(df).cdf(xs)
        i = torch.arange(1, n + 1, dtype=torch.float64).numpy()
        distance = max((i / n - cdf).max(), (cdf - (i - 1) / n).max())
        assert distance <= threshold, (df, distance)


@pytest.mark.parametrize("backend", _backends("tfp", "tfp-tf"))
def test_draws_that_may_leave_the_float_range_follow_the_law(backend: str) -> None:
    # Where a draw may pass the largest float (probability above exp(-35) per draw), tfp draws
    # Pareto, GeneralizedPareto and Weibull from exponential noise with the overflowed draws
    # held (not TFP's own sampler). These parameters take that path in float32 without any
    # draw reaching the float's end: one-sample K-S against SciPy with the DKWM bound at
    # alpha = 1e-6 per case (n = 20,000: threshold 0.019).
    from polysample.backends.tfp.families import TFP_FAMILIES

    stats = pytest.importorskip("scipy.stats")
    n, alpha = 20_000, 1e-6
    threshold = math.sqrt(math.log(2 / alpha) / (2 * n))
    cases = [("Pareto", {"scale": 1.0, "alpha": 0.3}, stats.pareto(0.3)),
             ("GeneralizedPareto", {"loc": 0.0, "scale": 1.0, "concentration": 3.0},
              stats.genpareto(3.0)),
             ("Weibull", {"scale": 1.0, "concentration": 0.3}, stats.weibull_min(0.3))]
    for family, values, law in cases:
        params = {k: torch.tensor(v, requires_grad=True) for k, v in values.items()}
        assert TFP_FAMILIES[family].draw_flags(params) == (True,), family  # the held path
        x = getattr(ps, family)(**params, backend=backend).rsample((n,), seed=4)
        grads = torch.autograd.grad(torch.log1p(x.abs()).sum(), list(params.values()))
        assert all(torch.isfinite(g) for g in grads), (family, grads)
        xs = x.detach().double().sort().values.numpy()
        cdf = law.cdf(xs)
        i = torch.arange(1, n + 1, dtype=torch.float64).numpy()
        distance = max((i / n - cdf).max(), (cdf - (i - 1) / n).max())
        assert distance <= threshold, (family, distance)


@pytest.mark.parametrize("backend", _backends())
def test_fisher_snedecor_sample_at_a_thousandth_has_no_ties_at_one(backend: str) -> None:
    # torch drew exactly 1 for 49% of these (both Gammas clamped alike), numpy NaN for 48%
    for dtype in (torch.float32, torch.float64):
        df = torch.tensor(1e-3, dtype=dtype)
        x = ps.FisherSnedecor(df, df, backend=backend).sample((20000,), seed=7)
        assert not torch.isnan(x).any() and float((x == 1).double().mean()) < 1e-3


@pytest.mark.parametrize("validate", [True, False])
@pytest.mark.parametrize("backend", _backends())
def test_poisson_with_an_infinite_rate_is_refused(backend: str, validate: bool) -> None:
    d = ps.Poisson(torch.tensor([1.0, INF]), validate_args=validate, backend=backend)
    with pytest.raises(ps.InvalidParameterError, match=r"Poisson.*rate.*inf.*index \(1,\)"):
        d.sample((2,))  # torch: -9.22e18


@pytest.mark.parametrize("backend", [
    pytest.param(b)
    for b in _backends()])
def test_poisson_with_rates_beyond_int64_draws_near_the_rate(backend: str) -> None:
    rate = torch.tensor([1e19, 1e30, 3.0], dtype=torch.float64)
    x = ps.Poisson(rate, backend=backend).sample((1000,), seed=1)
    assert (x >= 0).all()
    assert torch.allclose(x.mean(0)[:2], rate[:2], rtol=1e-6)  # sd / rate = 3e-10, 1e-15


@pytest.mark.parametrize("backend", [
    pytest.param(b)
    for b in _backends()])
def test_binomial_with_counts_beyond_2_to_the_50_keeps_its_variance(backend: str) -> None:
    n = 1 << 15
    for count, p in [(1e17, 0.3), (1e19, 0.3), (1e18, 1e-12)]:
        mean, var = count * p, count * p * (1 - p)
        x = ps.Binomial(torch.tensor(count, dtype=torch.float64),
                        torch.tensor(p, dtype=torch.float64), backend=backend).sample(
            (n,), seed=2)
        ratio = float(((x - mean) ** 2).mean()) / var
        assert abs(ratio - 1) < 6 * math.sqrt(2 / n), (count, p, ratio)
        # one draw (sample_shape ()): numpy's scalar path raised AttributeError
        one = ps.Binomial(torch.tensor(count, dtype=torch.float64),
                          torch.tensor(p, dtype=torch.float64), backend=backend).sample(seed=2)
        assert one.shape == () and abs(float(one) - mean) < 10 * math.sqrt(var), (count, one)


@pytest.mark.parametrize("backend", [
    pytest.param(b)
    for b in _backends()])
def test_multinomial_with_a_huge_total_count_is_drawn_not_refused(backend: str) -> None:
    if "Multinomial" not in _families(backend):
        pytest.skip("no Multinomial")
    n = 1 << 40  # torch's one index per trial would need 8 TiB
    x = ps.Multinomial(n, probs=torch.tensor([0.2, 0.3, 0.5], dtype=torch.float64),
                       backend=backend).sample((500,), seed=0)
    assert (x.sum(-1) == n).all()
    assert torch.allclose(x.mean(0) / n, torch.tensor([0.2, 0.3, 0.5], dtype=torch.float64),
                          atol=1e-6)


@pytest.mark.parametrize("backend", _backends())
def test_multinomial_total_count_beyond_int64_is_refused(backend: str) -> None:
    d = ps.Multinomial(1 << 63, probs=torch.tensor([0.5, 0.5]), backend=backend)
    with pytest.raises(ps.InvalidParameterError, match="total_count.*2\\*\\*63"):
        d.sample()


@pytest.mark.parametrize("backend", [
    pytest.param(b)
    for b in _backends()])
def test_geometric_with_a_tiny_probability_does_not_saturate(backend: str) -> None:
    x = ps.Geometric(probs=torch.tensor([1e-300], dtype=torch.float64),
                     backend=backend).sample((200,), seed=0)
    # Mean 1e300: NumPy's int64 geometric saturated at 9.2e18.
    assert float(x.median()) > 1e299


# ============================================================ zero-probability outcomes
#: (id, family, constructor kwargs, the outcomes that have probability 0)
_ZERO = [
    ("categorical", "Categorical", {"probs": torch.tensor([0.0, 0.5, 0.0, 0.5, 0.0])},
     lambda x: (x == 0) | (x == 2) | (x == 4)),
    ("bernoulli-0", "Bernoulli", {"probs": torch.tensor(0.0)}, lambda x: x != 0),
    ("bernoulli-1", "Bernoulli", {"probs": torch.tensor(1.0)}, lambda x: x != 1),
    ("binomial-0", "Binomial", {"total_count": torch.tensor(5.0), "probs": torch.tensor(0.0)},
     lambda x: x != 0),
    ("binomial-1", "Binomial", {"total_count": torch.tensor(5.0), "probs": torch.tensor(1.0)},
     lambda x: x != 5),
]


@pytest.mark.parametrize("backend,family,kwargs,impossible", [
    pytest.param(b, fam, kw, bad, id=f"{b}-{cid}")
    for b in _backends() for cid, fam, kw, bad in _ZERO])
def test_outcomes_of_probability_zero_are_never_drawn(backend: str, family: str,
                                                      kwargs: dict[str, Any],
                                                      impossible: Any) -> None:
    d = getattr(ps, family)(**kwargs, backend=backend)
    drawn = 0
    for i in range(10):  # 1e7 draws, in 1e6 chunks
        drawn += int(impossible(d.sample((1_000_000,), seed=i)).sum())
    assert drawn == 0


@pytest.mark.parametrize("backend", [
    pytest.param(b)
    for b in _backends()])
def test_multinomial_counts_of_probability_zero_stay_zero(backend: str) -> None:
    if "Multinomial" not in _families(backend):
        pytest.skip("no Multinomial")
    d = ps.Multinomial(10, probs=torch.tensor([0.0, 1.0, 0.0, 1.0]), backend=backend)
    x = d.sample((100_000,), seed=0)  # 1e6 trials
    assert (x[..., 0] == 0).all() and (x[..., 2] == 0).all()


# ============================================================ support edges
#: (id, family, kwargs): parameters whose draws crowd the edges of the support.
_EDGES = [
    ("beta-tiny", "Beta", {"concentration1": 1e-3, "concentration0": 1e-3}),
    ("beta-lopsided", "Beta", {"concentration1": 1e-2, "concentration0": 1e3}),
    ("dirichlet-tiny", "Dirichlet", {"concentration": torch.full((4,), 1e-3)}),
    ("gamma-tiny", "Gamma", {"concentration": 1e-3, "rate": 1.0}),
    ("chi2-tiny", "Chi2", {"df": 1e-2}),
    ("kumaraswamy-small", "Kumaraswamy", {"concentration1": 0.05, "concentration0": 0.05}),
    ("relaxed-bernoulli-cold", "RelaxedBernoulli", {"temperature": 0.01, "probs": 0.5}),
    ("relaxed-one-hot-cold", "RelaxedOneHotCategorical",
     {"temperature": 0.01, "probs": torch.tensor([0.3, 0.3, 0.4])}),
    ("continuous-bernoulli-edge", "ContinuousBernoulli", {"probs": 1e-3}),
    ("geometric-one", "Geometric", {"probs": 1.0}),
]


@pytest.mark.parametrize("method", ["sample", "rsample"])
@pytest.mark.parametrize("backend,family,kwargs", [
    pytest.param(b, fam, kw, id=f"{b}-{cid}")
    for b in _backends() for cid, fam, kw in _EDGES])
def test_own_draws_at_the_support_edges_are_accepted_by_log_prob(
        backend: str, family: str, kwargs: dict[str, Any], method: str) -> None:
    if family not in _families(backend):
        pytest.skip(f"{backend} has no {family}")
    d = getattr(ps, family)(**kwargs, backend=backend)  # validate_args: torch's default
    if method == "rsample" and not d.has_rsample:
        pytest.skip("no rsample")
    x = getattr(d, method)((20_000,), seed=0).detach()
    lp = d.log_prob(x)  # validation on: a value outside the support raises here
    assert not torch.isnan(lp).any()
    assert not (lp == -INF).any(), "a draw of density 0"


# ============================================================ hangs: a subprocess each
#: Each must raise a documented error within seconds (tfp hung on the first, tfp-tf on the
#: second and ignored SIGINT).
_HANGS = [
    ("gamma-inf", "ps.Gamma(float('inf'), 1.0, backend=B).sample()"),
    ("poisson-nan-unvalidated",
     "ps.Poisson(torch.tensor(float('nan')), validate_args=False, backend=B).sample()"),
    ("vonmises-inf-concentration", "ps.VonMises(0.0, float('inf'), backend=B).sample()"),
    ("gamma-nan-unvalidated",
     "ps.Gamma(torch.tensor(float('nan')), 1.0, validate_args=False, backend=B).rsample()"),
    ("binomial-nan-unvalidated",
     "ps.Binomial(10, torch.tensor(float('nan')), validate_args=False, backend=B).sample()"),
]


@pytest.mark.parametrize("backend", _backends())
def test_hang_cases_raise_a_documented_error_within_seconds(backend: str) -> None:
    lines = [f"B = {backend!r}", "import time, torch, polysample as ps", "ok = 0"]
    for cid, expr in _HANGS:
        lines += [
            "t0 = time.monotonic()",
            "try:",
            f"    {expr}",
            f"    print('no error: {cid}')",
            "except ps.InvalidParameterError as e:",
            "    assert time.monotonic() - t0 < 10, time.monotonic() - t0",
            "    ok += 1",
            "except NotImplementedError:",  # a backend without that family
            "    ok += 1",
        ]
    lines.append("print('ok', ok)")
    env = dict(os.environ, PYTHONPATH=SRC + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-c", "\n".join(lines)], capture_output=True,
                          text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().endswith(f"ok {len(_HANGS)}"), proc.stdout


# ============================================================ raw exceptions
_HALF_FAMILIES = ["Gamma", "Beta", "Dirichlet", "StudentT", "Chi2", "Normal", "Poisson",
                  "Categorical", "Wishart", "NegativeBinomial", "FisherSnedecor"]


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("backend,family", [
    pytest.param(b, f, id=f"{b}-{f}") for b in _backends() for f in _HALF_FAMILIES])
def test_half_precision_parameters_draw_in_their_dtype(backend: str, family: str,
                                                       dtype: torch.dtype) -> None:
    from polysample.conformance.grids import example_params

    if family not in _families(backend):
        pytest.skip(f"{backend} has no {family}")
    params = {k: (v.to(dtype) if isinstance(v, torch.Tensor) and v.is_floating_point() else v)
              for k, v in example_params(family, (2,), torch.float32).items()}
    d = getattr(ps, family)(**params, validate_args=False, backend=backend)
    x = d.sample((3,), seed=0)
    assert x.dtype == (torch.int64 if family == "Categorical" else dtype)
    if d.has_rsample:
        leaves = [v.requires_grad_() for v in params.values()
                  if isinstance(v, torch.Tensor) and v.is_floating_point()]
        d = getattr(ps, family)(**params, validate_args=False, backend=backend)
        y = d.rsample((3,), seed=0)
        assert y.dtype == dtype
        y.float().sum().backward()
        assert all(p.grad is not None and p.grad.dtype == dtype for p in leaves)


_OPEN_ENDS = {
    # a density of 0 or infinity at the upper end (Uniform's high is outside its support)
    "Beta": (0.3, 0.3), "Kumaraswamy": (0.3, 0.3), "Uniform": (0.0, 1000.0),
}


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("backend", _backends())
def test_half_precision_draws_stay_below_the_upper_end(backend: str, dtype: torch.dtype
                                                       ) -> None:
    # Rounded to half precision, a float32 draw just below the end became the end: Beta(0.3,
    # 0.3) was exactly 1 in about 5% of its half-precision draws (log_prob inf), Uniform(0,
    # 1000) exactly 1000 (log_prob -inf), on every backend.
    for family, (a, b) in _OPEN_ENDS.items():
        if family not in _families(backend):
            continue
        leaves = [torch.tensor(a, dtype=dtype, requires_grad=True),
                  torch.tensor(b, dtype=dtype, requires_grad=True)]
        d = getattr(ps, family)(*leaves, backend=backend)
        end = 1.0 if family != "Uniform" else b
        x = d.sample((20000,), seed=0)
        assert bool((x < end).all()), (family, int((x >= end).sum()))
        assert bool(torch.isfinite(d.log_prob(x)).all()), family
        if d.has_rsample:
            y = d.rsample((20000,), seed=0)
            assert bool((y < end).all()), family
            y.float().sum().backward()
            assert all(v.grad is not None and bool(v.grad.isfinite()) for v in leaves[:1])


_HALF_SIMPLEX = {
    "Dirichlet": lambda dt: {"concentration": torch.tensor([0.5, 1.0, 2.0, 3.0], dtype=dt)},
    "RelaxedOneHotCategorical": lambda dt: {
        "temperature": torch.tensor(0.5, dtype=dt),
        "probs": torch.tensor([0.1, 0.2, 0.3, 0.4], dtype=dt)},
    "LogisticNormal": lambda dt: {"loc": torch.zeros(3, dtype=dt),
                                  "scale": torch.ones(3, dtype=dt)},
    "LKJCholesky": lambda dt: {"dim": 3, "concentration": torch.tensor(1.0, dtype=dt)},
}


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("backend", _backends())
def test_half_precision_simplex_draws_are_scored(backend: str, dtype: torch.dtype) -> None:
    # torch's simplex holds a sum within 1e-6 of 1, which half precision cannot: log_prob of
    # the families' own half-precision draws raised "Invalid value" (with validate_args on).
    # LKJCholesky's torch-scored draws were checked against float32's tolerance.
    for family, make in _HALF_SIMPLEX.items():
        if family not in _families(backend):
            continue
        d = getattr(ps, family)(**make(dtype), backend=backend)
        x = d.sample((2000,), seed=1)
        lp = d.log_prob(x)
        assert lp.dtype == dtype and bool(torch.isfinite(lp).all()), family
        # the float32 score of the same values (unchecked), rounded to the dtype
        ref = getattr(ps, family)(**{k: (v.float() if isinstance(v, torch.Tensor) else v)
                                     for k, v in make(dtype).items()},
                                  backend="torch", validate_args=False).log_prob(x.float())
        assert torch.allclose(lp.float(), ref, rtol=2 * torch.finfo(dtype).eps, atol=1e-2), \
            family
    # what is off the simplex by more than half precision's rounding is still refused
    d = ps.Dirichlet(torch.ones(3, dtype=dtype), backend=backend)
    for v in ([0.5, 0.5, 0.1], [-0.001, 0.5, 0.501]):
        with pytest.raises(ps.InvalidParameterError):
            d.log_prob(torch.tensor(v, dtype=dtype))


@pytest.mark.parametrize("backend", _backends())
def test_half_precision_wishart_draws_stay_positive_definite(backend: str) -> None:
    if "Wishart" not in _families(backend):
        pytest.skip(f"{backend} has no Wishart")
    # Entries that vanish in float16 (a covariance of 1e-12) were each kept at +-6.1e-5, the
    # smallest normal number: the singular [[t, -t], [-t, t]]. The diagonal is kept, the
    # off-diagonal entries vanish.
    tril = torch.tensor([[1.0133e-06, 0.0], [1.7881e-07, 1.0133e-06]], dtype=torch.float16)
    df = torch.tensor(5.5, dtype=torch.float16)
    d = ps.Wishart(df=df, scale_tril=tril, validate_args=False, backend=backend)
    x = d.sample((8,), seed=0)
    assert bool(d.support.check(x.float()).all())
    # with validate_args, log_prob checks a float16 value in float32 (torch has no float16
    # Cholesky for the check): it raised torch's NotImplementedError
    d = ps.Wishart(df=df, scale_tril=torch.tensor([[1.0, 0.0], [0.2, 1.0]], dtype=torch.float16),
                   backend=backend)
    lp = d.log_prob(d.sample((3,), seed=0))
    assert lp.dtype == torch.float16 and bool(lp.isfinite().all())
    # A nearly singular law: about 1 in 2,000 bfloat16 roundings of positive definite float32
    # draws was indefinite (an outside tester's suite), and log_prob of the distribution's own
    # draws raised. The rounded diagonal is raised a value at a time where that happens.
    for dtype in (torch.bfloat16, torch.float16):
        d = ps.Wishart(df=torch.tensor([3.0, 5.0], dtype=dtype),
                       scale_tril=torch.tensor([[1.0, 0.0], [0.3, 1.2]], dtype=dtype)
                       .expand(2, 2, 2), backend=backend)
        x = d.sample((2000,), seed=0)
        assert bool(d.support.check(x.float()).all()), dtype
        assert bool(d.log_prob(x).isfinite().all()), dtype


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("backend", _backends())
def test_kumaraswamy_log_prob_near_one(backend: str, dtype: torch.dtype) -> None:
    # TFP computed log(1 - x^a) as log1p(-x^a), and x^a rounds to 1 near 1 when a < 1: at
    # 1 - eps/2 (a = b = 0.3) it said inf where the closed form says 10.08 (float32), and at
    # 1 - eps it was 0.36 too small. The closed form, through log(-expm1(a log x)) in float64:
    if "Kumaraswamy" not in _families(backend):
        pytest.skip(f"{backend} has no Kumaraswamy")
    eps = torch.finfo(dtype).eps
    x = torch.tensor([1 - eps / 2, 1 - eps, 1 - 16 * eps, 0.5, 1e-30], dtype=dtype)
    for a, b in [(0.3, 0.3), (0.3, 5.0), (2.0, 3.0)]:
        d = ps.Kumaraswamy(torch.tensor(a, dtype=dtype), torch.tensor(b, dtype=dtype),
                           backend=backend)
        lp = d.log_prob(x)
        x64 = x.double()
        want = (math.log(a * b) + (a - 1) * x64.log()
                + (b - 1) * torch.log(-torch.expm1(a * x64.log())))
        assert torch.allclose(lp.double(), want, rtol=1e-4, atol=1e-4), (a, b, lp, want)
    # At the ends with a = 1 (at 0) or b = 1 (at 1) the density is b or a: torch's 0 * log 0
    # made it NaN on the torch-scored backends.
    d = ps.Kumaraswamy(torch.tensor([1.0, 2.5], dtype=dtype), torch.tensor([3.0, 1.0], dtype=dtype),
                       backend=backend)
    lp = d.log_prob(torch.tensor([0.0, 1.0], dtype=dtype))
    assert torch.allclose(lp.double(), torch.tensor([math.log(3.0), math.log(2.5)],
                                                    dtype=torch.float64)), lp


@pytest.mark.parametrize("backend", [
    pytest.param(b)
    for b in _backends()])
def test_bernoulli_with_integer_probs_draws(backend: str) -> None:
    x = ps.Bernoulli(probs=torch.tensor([0, 1]), backend=backend).sample((4,), seed=0)
    assert x.dtype == torch.get_default_dtype()
    assert x.tolist() == [[0.0, 1.0]] * 4


@pytest.mark.parametrize("backend", _backends())
def test_categorical_with_an_empty_batch_draws_an_empty_tensor(backend: str) -> None:
    x = ps.Categorical(probs=torch.ones(0, 3), backend=backend).sample((2,))
    assert x.shape == (2, 0) and x.dtype == torch.int64


@pytest.mark.parametrize("family", ["Normal", "Gamma"])
@pytest.mark.parametrize("backend", _backends())
def test_meta_device_parameters(backend: str, family: str) -> None:
    d = getattr(ps, family)(torch.ones(2, device="meta"), 1.0, validate_args=False,
                            backend=backend)
    if ps.load_backend(backend).traceable:
        x = d.sample((3,))  # torch: meta in, meta out
        assert x.is_meta and x.shape == (3, 2)
        return
    with pytest.raises(ps.InvalidParameterRuntimeError, match="meta device"):
        d.sample((3,))


@pytest.mark.parametrize("family", ["Normal", "Gamma", "Beta"])
def test_meta_device_parameters_with_validation_are_refused_by_name(family: str) -> None:
    # torch's argument checks read values; the error path then read them again and a raw
    # RuntimeError ("Tensor.item() cannot be called on meta tensors") escaped
    with pytest.raises(ps.InvalidParameterRuntimeError, match="meta device.*validate_args=False"):
        getattr(ps, family)(torch.ones(2, device="meta"), 1.0)


@pytest.mark.parametrize("shape", [(10**13,), (10**7, 10**7), (2**40, 2**40),
                                   (2**31, 2**31, 2**31)])
@pytest.mark.parametrize("family", ["Normal", "Poisson", "Dirichlet"])
@pytest.mark.parametrize("backend", _backends())
def test_impossible_sample_sizes_raise_before_allocating(backend: str, family: str,
                                                         shape: tuple[int, ...]) -> None:
    if family not in _families(backend):
        pytest.skip(f"{backend} has no {family}")
    from polysample.conformance.grids import example_params

    d = getattr(ps, family)(**example_params(family, (), torch.float32), backend=backend)
    for method in ("sample", "rsample") if d.has_rsample else ("sample",):
        with pytest.raises(ps.SampleTooLargeError, match=r"needs \d+ bytes") as info:
            getattr(d, method)(shape)
        assert isinstance(info.value, MemoryError)
        # The sample shape is to blame, not the parameters (numpy blamed the Poisson rate).
        assert "sample_shape" in str(info.value) and "rate" not in str(info.value)
        expected = math.prod(shape) * math.prod(d.event_shape) * 4
        assert str(expected) in str(info.value)


@pytest.mark.parametrize("backend", _backends())
def test_gamma_with_a_huge_rate_has_finite_gradients(backend: str) -> None:
    # Gamma(2, rate=1e38) in float32 draws values near float32's smallest normal number: TFP on
    # JAX differentiated its own draw, flushed to 0 there, and the gradient was NaN (an
    # outside trial).
    conc, rate = torch.tensor(2.0, requires_grad=True), torch.tensor(1e38, requires_grad=True)
    x = ps.Gamma(conc, rate, backend=backend).rsample((50,), seed=3)
    grads = torch.autograd.grad(x.sum(), [conc, rate])
    assert all(torch.isfinite(g) for g in grads), grads


@pytest.mark.parametrize("backend", _backends())
def test_count_log_probs_at_large_counts_in_float32(backend: str) -> None:
    # Differences of log-gammas near 2e10 cancel in float32: torch scored
    # Binomial(1e9, logits=17).log_prob(999999936) +768 (a probability above 1) and TFP
    # Poisson(1e9).log_prob(1e9) -1280 (an outside trial). Against SciPy, in float64.
    from scipy import stats

    t = torch.tensor
    cases = [
        ("Binomial", {"total_count": t(1e7), "logits": t(10.0)}, 9999546.0,
         stats.binom.logpmf(9999546, 10**7, 1 / (1 + math.exp(-10)))),
        ("Binomial", {"total_count": t(1e9), "probs": t(0.5)}, 5e8,
         stats.binom.logpmf(5 * 10**8, 10**9, 0.5)),
        ("Binomial", {"total_count": t(1e9), "logits": t(17.0)}, 1e9,
         -1e9 * math.log1p(math.exp(-17.0))),
        ("Poisson", {"rate": t(1e9)}, 1e9, stats.poisson.logpmf(10**9, 1e9)),
        ("NegativeBinomial", {"total_count": t(5.0), "logits": t(15.0)}, 1.6e7,
         stats.nbinom.logpmf(16000000, 5, 1 / (1 + math.exp(15.0)))),
    ]
    for family, params, value, want in cases:
        got = getattr(ps, family)(**params, backend=backend).log_prob(t(value))
        assert got.dtype == torch.float32
        assert abs(got.item() - want) < 1e-3 * max(1.0, abs(want)), (family, params, got, want)


@pytest.mark.parametrize("backend", _backends())
def test_gamma_gradients_at_huge_concentrations_are_right_and_quick(backend: str) -> None:
    # d(sum of n draws)/d(concentration) is about n at large concentrations (z = a + sqrt(a)
    # eps): tfp's was 18.2 for 10 draws at 1e8 (tfp-tf 6.9), numpy's 0 from 1e25, and JAX
    # took seconds per value at 1e15; Beta(1e-15, 1e15)'s backward ran 52 s on tfp (an outside
    # trial; Beta(1e-20, 1e20) over 195 s). Now the closed form of Wilson-Hilferty above 1e4,
    # on every backend.
    import time

    for a in (1e5, 1e8, 1e15, 1e25):
        conc = torch.tensor(a, requires_grad=True)
        # 8 draws: on tfp one 8-row program, compiled at XLA's level 0 (2-4 times faster)
        x = ps.Gamma(conc, 1.0, backend=backend).rsample((8,), seed=1)
        x.sum().backward()
        assert abs(conc.grad.item() - 8.0) < 0.05, (a, conc.grad)
    # (a hang guard, not a timing: these ran for minutes, and take seconds with compilation)
    for family, params in (("Beta", (torch.tensor(1e-20), torch.tensor(1e20))),
                           ("Dirichlet", (torch.tensor([1e-20, 1e20]),))):
        leaves = [p.clone().requires_grad_(True) for p in params]
        start = time.perf_counter()
        x = getattr(ps, family)(*leaves, backend=backend).rsample((5,), seed=3)
        x.sum().backward()
        assert time.perf_counter() - start < 60, family
        assert all(torch.isfinite(p.grad).all() for p in leaves)


@pytest.mark.parametrize("backend", _backends())
def test_relaxed_bernoulli_at_low_temperatures_has_finite_gradients_and_inner_values(
        backend: str) -> None:
    # Gumbel-softmax temperatures of 0.05 and below: tfp-tf's gradient was NaN (TFP's sigmoid
    # bijector saturating at exactly 0 or 1), and both tfp backends returned exact 0 and 1,
    # which torch's clamp_probs never does (an outside trial).
    for temperature in (0.05, 1e-3, 1e-6):
        probs = torch.tensor([0.3, 0.9], requires_grad=True)
        x = ps.RelaxedBernoulli(torch.tensor(temperature), probs=probs,
                                backend=backend).rsample((2000,), seed=1)
        assert ((x > 0) & (x < 1)).all(), (temperature, x.min(), x.max())
        (g,) = torch.autograd.grad(x.sum(), probs)
        assert torch.isfinite(g).all(), (temperature, g)
        # near 0 temperature the draw is Bernoulli(probs): the mean is probs to 0.03
        if temperature <= 1e-3:
            torch.testing.assert_close(x.mean(0), probs.detach(), atol=0.03, rtol=0)


@pytest.mark.parametrize("backend", _backends() + ["scipy"])
def test_a_negative_binomial_with_large_logits_follows_its_logits(backend: str) -> None:
    # probs = sigmoid(logits) rounds to 1 from logits 17 in float32 (37 in float64): numpy drew
    # inf there, and the SciPy plugin's 1 - probs was 15% off at logits 15 and 0 above (an
    # outside trial). The mean is total_count * exp(logits); 20,000 draws give it to 0.3%.
    if backend not in ps.backend_names():
        pytest.skip(f"{backend} is not installed")
    for logits, dtype in ((15.0, torch.float32), (17.0, torch.float32), (50.0, torch.float64)):
        d = ps.NegativeBinomial(5.0, logits=torch.tensor(logits, dtype=dtype), backend=backend)
        if backend == "scipy" and logits == 50.0:
            # NumPy's negative_binomial refuses p = exp(-50): a documented error, not inf
            with pytest.raises(ps.InvalidParameterError, match="p too small"):
                d.sample((10,), seed=0)
            continue
        x = d.sample((20000,), seed=0)
        assert torch.isfinite(x).all(), (logits, x)
        ratio = x.double().mean().item() / (5.0 * math.exp(logits))
        assert abs(ratio - 1) < 0.03, (logits, ratio)


@pytest.mark.parametrize("backend", _backends())
def test_a_uniform_whose_width_overflows_draws_finite_values_inside(backend: str) -> None:
    # Uniform(-3e38, 3e38) in float32: high - low overflows, and low + u * (high - low) drew
    # +inf, outside [low, high), on every backend computing it that way (an outside trial).
    lo = torch.tensor([-3e38, -1.0], requires_grad=True)
    hi = torch.tensor([3e38, 2.0], requires_grad=True)
    d = ps.Uniform(lo, hi, backend=backend)
    for method in ("sample", "rsample"):
        x = getattr(d, method)((4000,), seed=0)
        assert torch.isfinite(x).all(), (method, x)
        assert ((x >= lo.detach()) & (x < hi.detach())).all()
        assert (x[:, 0] < 0).any() and (x[:, 0] > 0).any() and x[:, 0].abs().max() > 1e38
    x = d.rsample((4000,), seed=0)
    x.sum().backward()
    assert torch.isfinite(lo.grad).all() and torch.isfinite(hi.grad).all()
    # d/dlow + d/dhigh of each draw is 1 (x = low + u (high - low))
    torch.testing.assert_close(lo.grad + hi.grad, torch.full((2,), 4000.0))


@pytest.mark.parametrize("backend", _backends())
def test_an_infinite_logit_for_an_excluded_probability_is_refused(backend: str) -> None:
    # Geometric(probs=0) and NegativeBinomial(probs=1) are refused; the same laws as logits
    # passed validation and drew NaN (torch's NegativeBinomial) or infinity.
    inf = math.inf
    cases = [("Geometric", {"logits": torch.tensor([0.0, -inf])}, "probs > 0"),
             ("NegativeBinomial", {"total_count": 5.0, "logits": torch.tensor(inf)},
              "probs < 1")]
    for family, kw, expected in cases:
        if family not in _families(backend):
            continue
        for validate in (True, False):
            d = getattr(ps, family)(**kw, backend=backend, validate_args=validate)
            with pytest.raises(ps.InvalidParameterError, match=f"expected {expected}.*logits="):
                d.sample((3,), seed=0)
    # the other ends are laws (a Geometric that succeeds at once, a NegativeBinomial of 0)
    if "Geometric" in _families(backend):
        assert ps.Geometric(logits=torch.tensor(inf), backend=backend).sample(
            (3,), seed=0).tolist() == [0.0] * 3
    if "NegativeBinomial" in _families(backend):
        assert ps.NegativeBinomial(5.0, logits=torch.tensor(-inf), backend=backend).sample(
            (3,), seed=0).tolist() == [0.0] * 3


@pytest.mark.parametrize("backend", _backends())
def test_a_draw_larger_than_the_memory_available_now_raises_before_allocating(
        backend: str, monkeypatch) -> None:
    # Below the machine's physical memory but above what is available now: the system's
    # out-of-memory handler killed the process (exit 137) instead of an error (an outside
    # trial's 17 GB draw on a 23.5 GiB machine with 15 GiB free). Simulated: 300 MB free.
    from polysample.core import guards

    monkeypatch.setattr(guards, "_meminfo_available", lambda: 300 * 2**20)
    d = ps.Normal(torch.zeros(2), 1.0, backend=backend)
    with pytest.raises(ps.SampleTooLargeError, match="more than the memory available to this "
                       "process now") as info:
        d.sample((2**26,))  # 512 MiB of float32
    assert isinstance(info.value, MemoryError) and "sample_shape=(67108864,)" in str(info.value)
    assert d.sample((2**16,)).shape == (2**16, 2)  # small draws do not look


def test_memory_available_is_read_from_the_system() -> None:
    from polysample.core.guards import _meminfo_available, memory_limit

    free = _meminfo_available()
    if free is None:
        pytest.skip("no /proc/meminfo or cgroup limit here")
    assert 0 < free <= memory_limit(torch.device("cpu")) * 4  # swap may add to it


def test_a_backend_failing_to_allocate_raises_sample_too_large() -> None:
    class Starved(ps.Backend):
        name = "starved"

        def families(self) -> dict[str, ps.FamilySupport]:
            return {"Normal": ps.FamilySupport()}

        def sample(self, family: str, params: Any, sample_shape: torch.Size, *,
                   seed: Any = None) -> torch.Tensor:
            raise MemoryError("Unable to allocate 3.2 GiB")

    with pytest.raises(ps.SampleTooLargeError, match="could not allocate") as info:
        ps.Normal(0.0, 1.0, backend=Starved()).sample((10,))
    assert isinstance(info.value.__cause__, MemoryError)
    # 10 values: the sample_shape is not the cause, and the message does not say it is (an
    # outside trial: "Draw in chunks ... or reduce sample_shape" for a backend's own bug)
    assert "needs only 40 bytes" in str(info.value) and "unlikely to help" in str(info.value)
    assert "reduce sample_shape" not in str(info.value)
    with pytest.raises(ps.SampleTooLargeError, match="reduce sample_shape"):
        ps.Normal(0.0, 1.0, backend=Starved()).sample((1 << 25,))  # 128 MiB: the shape's


def test_cli_sample_with_a_huge_n_prints_one_line() -> None:
    env = dict(os.environ, PYTHONPATH=SRC + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-m", "polysample", "sample", "Normal", "--param",
                           "loc=0", "--param", "scale=1", "-n", "1000000000000"],
                          capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith("polysample: error: ") and "bytes" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("backend", _backends("torch", "numpy"))
def test_draws_work_under_torch_compile(backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # Dynamo's first use turns torch.distributions' default validate_args off for the whole
    # process (torch._dynamo.eval_frame); restored afterwards so later tests see the default.
    monkeypatch.setattr(torch.distributions.Distribution, "_validate_args",
                        torch.distributions.Distribution._validate_args)
    torch._dynamo.reset()
    loc = torch.zeros(3, requires_grad=True)

    def f(loc: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        d = ps.Normal(loc, 1.0, backend=backend)
        return d.sample((2,), seed=7), d.rsample((2,), seed=7).sum()

    compiled = torch.compile(f, backend="eager")
    x, s = compiled(loc)  # torch with seed=: failed inside dynamo (uint64 shift)
    assert x.shape == (2, 3)
    assert torch.equal(x, ps.Normal(loc.detach(), 1.0, backend=backend).sample((2,), seed=7))
    s.backward()
    assert torch.equal(loc.grad, torch.full((3,), 2.0))


def test_nonfinite_check_happens_once_per_object() -> None:
    loc = torch.zeros(2)
    d = ps.Normal(loc, 1.0)
    d.sample()
    loc[0] = NAN  # changed in place after the first draw: not checked again (documented)
    assert torch.isnan(d.sample()[0])
    with pytest.raises(ps.InvalidParameterError, match="loc"):
        ps.Normal(loc, 1.0).sample()  # a new object is checked


@pytest.mark.parametrize("backend", _backends())
def test_nonfinite_logits_mask_categories_and_are_not_refused(backend: str) -> None:
    d = ps.Categorical(logits=torch.tensor([-INF, 0.0, -INF, 0.0]), backend=backend)
    x = d.sample((1000,), seed=0)
    assert ((x == 1) | (x == 3)).all()


# ============================================================ DataLoader with spawn
class _SpawnDataset(torch.utils.data.Dataset):  # type: ignore[type-arg]
    def __len__(self) -> int:
        return 4

    def __getitem__(self, i: int) -> torch.Tensor:
        return ps.Normal(torch.zeros(4), 1.0, backend="numpy").sample()


def _spawn_draws() -> list[torch.Tensor]:
    loader = torch.utils.data.DataLoader(_SpawnDataset(), batch_size=None, num_workers=2,
                                         multiprocessing_context="spawn", timeout=120)
    return list(loader)


@pytest.mark.skipif("numpy" not in AVAILABLE, reason="needs the numpy backend")
def test_spawn_dataloader_is_reproducible_on_numpy_after_manual_seed() -> None:
    ps.manual_seed(0)
    first = _spawn_draws()
    ps.manual_seed(0)
    again = _spawn_draws()
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert not torch.equal(first[0], first[1])  # two workers, two streams


# ============================================================ documentation
def test_sample_too_large_error_is_exported_and_documented() -> None:
    assert issubclass(ps.SampleTooLargeError, ps.PolysampleError)
    assert issubclass(ps.SampleTooLargeError, MemoryError)
    assert "SampleTooLargeError" in ps.__all__
    docs = Path(__file__).resolve().parents[1] / "docs" / "errors.md"
    text = docs.read_text()
    assert "`SampleTooLargeError`" in text and "torch.func" in text


# ============================================================ empty batches
#: Families with an event dimension, whose torch 2.13 constructors failed on an empty batch
#: (their constraint check reshapes zero elements to (0, -1)); on tfp, which compiles a program
#: per shape, these stand for the rest.
_EVENT_FAMILIES = ("Dirichlet", "MultivariateNormal", "Wishart", "OneHotCategorical",
                   "Multinomial", "Beta", "LKJCholesky")


def _empty_cases() -> list[Any]:
    out = []
    for b in _backends():
        for fam in sorted(_families(b)):
            if b in ("torch", "numpy") or fam in _EVENT_FAMILIES:
                out.append(pytest.param(b, fam, id=f"{b}-{fam}"))
    return out


@pytest.mark.parametrize("backend,family", _empty_cases())
def test_an_empty_batch_draws_and_scores_empty_tensors(backend: str, family: str) -> None:
    from polysample.conformance.grids import example_params

    params = example_params(family, (0,), torch.float64)
    d = getattr(ps, family)(**params, backend=backend)
    assert d._validate_args  # validation stays on for later values
    support = ps.load_backend(backend).families()[family]
    x = d.sample((4,))
    assert x.shape == (4, *d.batch_shape, *d.event_shape) and x.numel() == 0
    if support.log_prob:
        assert d.log_prob(x).shape == (4, *d.batch_shape)
    if support.rsample:
        leaves = [v for v in params.values()
                  if isinstance(v, torch.Tensor) and v.is_floating_point()]
        for v in leaves:
            v.requires_grad_(True)
        y = getattr(ps, family)(**params, backend=backend).rsample((4,))
        assert y.shape == x.shape and y.requires_grad
        grads = torch.autograd.grad(y.sum(), leaves, allow_unused=True)
        assert all(g is None or g.shape == v.shape for g, v in zip(grads, leaves))


def test_empty_draws_and_scores_do_not_call_the_backend() -> None:
    # on tfp each new shape is a compiled program: an empty one was compiled for nothing
    from polysample.backends.torch_backend import TorchBackend

    class Counting(TorchBackend):
        name = "counting"
        calls = 0

        def sample(self, *a: Any, **k: Any) -> Any:
            Counting.calls += 1
            return super().sample(*a, **k)

        def rsample(self, *a: Any, **k: Any) -> Any:
            Counting.calls += 1
            return super().rsample(*a, **k)

        def log_prob(self, *a: Any, **k: Any) -> Any:
            Counting.calls += 1
            return super().log_prob(*a, **k)

    b = Counting()
    loc = torch.zeros(3, requires_grad=True)
    d = ps.Normal(loc, 1.0, backend=b)
    x = d.rsample((0,))
    lp = d.log_prob(torch.zeros(0, 3))
    assert x.shape == (0, 3) and lp.shape == (0, 3) and Counting.calls == 0
    (g,) = torch.autograd.grad(x.sum() + lp.sum(), [loc])
    assert torch.equal(g, torch.zeros(3))
    d.rsample((2,))
    assert Counting.calls == 1


@pytest.mark.parametrize("backend", [b for b in AVAILABLE if b != "auto"])
def test_extreme_valid_parameters_keep_the_law(backend):
    # An outside trial: TFP's Kumaraswamy put draws at 0 (held at tiny) where the law lies
    # just below 1 (float32 concentrations of 1e4: a few in 10,000; 1e8: 95%; float64 1e17:
    # 99.6%); NumPy's VonMises above a concentration of 1e6 drew loc = 20 near 13.7, outside
    # [-pi, pi]; TFP's VonMises drew 1.5e13 at loc = 1e30 (float64) and one value for every
    # float32 draw at loc = 1e8 (torch adds loc in float64).
    for dtype, a in ((torch.float32, 1e4), (torch.float32, 1e8), (torch.float64, 1e17)):
        if backend == "scipy":  # no Kumaraswamy in SciPy
            break
        c = torch.tensor(a, dtype=dtype)
        x = ps.Kumaraswamy(c, c, backend=backend).sample((20000,), seed=1)
        assert float(x.min()) > 0.5, (dtype, a)
    v = ps.VonMises(torch.tensor(20.0), torch.tensor(2e6), backend=backend).sample((1000,),
                                                                                     seed=2)
    want = 20.0 - 6 * math.pi  # 1.1504
    assert float((v - want).abs().max()) < 0.01
    big = torch.tensor(1e30, dtype=torch.float64)
    w = ps.VonMises(big, torch.ones((), dtype=torch.float64), backend=backend).sample((100,))
    assert float(w.abs().max()) <= math.pi
    u = ps.VonMises(torch.tensor(1e8), torch.tensor(1.0), backend=backend).sample((2000,), seed=3)
    assert float(u.abs().max()) <= math.pi * (1 + 1e-6) and len(torch.unique(u)) > 1900


@pytest.mark.parametrize("backend", AVAILABLE)
def test_poisson_at_large_rates_has_the_laws_variance(backend):
    # An outside trial: torch's, NumPy's and TFP's samplers drew Poisson(1e17) with 1.6-1.7
    # times the law's variance (0.85 times at 3e15), the means right; the tfp backends and the
    # SciPy plugin up to 1e25. 20,000 draws: the variance ratio's standard error is 0.01.
    for rate in (1e13, 1e17, 1e25):
        r = torch.tensor(rate, dtype=torch.float64)
        x = ps.Poisson(r, backend=backend).sample((20000,), seed=1)
        z = (x.double() - rate) / math.sqrt(rate)
        assert abs(float(z.mean())) < 0.05 and abs(float(z.var()) - 1) < 0.06, (rate, z.var())
    if backend == "scipy":  # SciPy's nbinom: NumPy's mixture, not repaired (docs)
        return
    # NegativeBinomial is drawn through the same Poisson step: variance total_count * 2 at p 1/2.
    n = torch.tensor(1e16, dtype=torch.float64)
    y = ps.NegativeBinomial(n, probs=torch.tensor(0.5, dtype=torch.float64),
                            backend=backend).sample((20000,), seed=2)
    assert abs(float(y.double().var()) / 2e16 - 1) < 0.06


@pytest.mark.skipif("scipy" not in AVAILABLE, reason="the example SciPy plugin is not installed")
def test_values_scipy_refuses_are_scored_by_torch_and_extreme_draws_keep_the_law():
    # An outside trial: SciPy's ValueError and LinAlgError reached the user from log_prob;
    # geom.rvs saturated at the int64 maximum; invgamma.rvs overflowed to inf.
    conc = torch.tensor([0.5, 2.0])
    d = ps.Dirichlet(conc, backend="scipy")
    assert d.log_prob(torch.tensor([0.0, 1.0])).item() == math.inf
    w = ps.Wishart(torch.tensor(3.0), torch.eye(2), validate_args=False, backend="scipy")
    m = torch.tensor([[1.0, 2.0], [2.0, 1.0]])
    want = torch.distributions.Wishart(torch.tensor(3.0), torch.eye(2),
                                       validate_args=False).log_prob(m)
    assert w.log_prob(m).item() == pytest.approx(want.item(), rel=1e-6)
    g = ps.Geometric(torch.tensor(1e-30, dtype=torch.float64), backend="scipy").sample(
        (2000,), seed=1)
    assert 3e29 < float(g.median()) < 1.5e30 and len(torch.unique(g)) > 1900
    x = ps.InverseGamma(torch.tensor(1e-30), torch.tensor(1.0), backend="scipy").sample((3,))
    assert torch.isfinite(x).all()


# ---- probabilities within float32's rounding of 1, given as logits
@pytest.mark.parametrize("family", ["Bernoulli", "Binomial", "Geometric"])
def test_float32_logits_reach_the_backend_as_float64_probs(family: str) -> None:
    # sigmoid(17.) is 1.0 in float32: the backend drew no failure where the law has them.
    # The core hands it float64 parameters, probs derived from the logits, and rounds the draw.
    seen: list[Any] = []
    torch_backend = type(ps.load_backend("torch"))

    class Recording(torch_backend):  # type: ignore[misc, valid-type]
        name = "recording-logits"

        def sample(self, family, params, sample_shape, seed=None):  # type: ignore[override]
            seen.append((params.float_dtype, params["probs"].detach().clone()))
            return super().sample(family, params, sample_shape, seed=seed)

    kw = {"total_count": torch.tensor(10.0)} if family == "Binomial" else {}
    d = getattr(ps, family)(logits=torch.tensor([17.0, -3.0]), **kw, backend=Recording())
    x = d.sample((5,), seed=0)
    assert x.dtype == torch.float32 and x.shape == (5, 2)
    dtype, probs = seen[-1]
    assert dtype == torch.float64 and probs.dtype == torch.float64
    want = torch.sigmoid(torch.tensor([17.0, -3.0], dtype=torch.float64))
    torch.testing.assert_close(probs, want, rtol=1e-15, atol=0)
    assert float(probs[0]) < 1.0
    # given probs, nothing is widened (the draws stay torch's own)
    getattr(ps, family)(probs=torch.tensor([0.3, 0.9]), **kw, backend=Recording()).sample()
    assert seen[-1][0] == torch.float32
    # half-precision logits: computed in float32 first, then widened too
    kw16 = {k: v.half() for k, v in kw.items()}
    x16 = getattr(ps, family)(logits=torch.tensor([17.0, -3.0], dtype=torch.float16), **kw16,
                              backend=Recording()).sample((5,), seed=0)
    assert x16.dtype == torch.float16 and seen[-1][0] == torch.float64
    assert float(seen[-1][1][0]) < 1.0


@pytest.mark.parametrize("backend", _backends())
def test_binomial_float32_logits_near_one_draw_the_failures(backend: str) -> None:
    # Binomial(1e6, logits=17.) fails with probability 4.14e-8 per trial: 4,140 failures
    # expected over 1e5 draws (sd 64); float32 probs of 1.0 drew none. 8 sd either way.
    d = ps.Binomial(torch.tensor(1e6), logits=torch.tensor(17.0), backend=backend)
    failures = float((1e6 - d.sample((100_000,), seed=5).double()).sum())
    assert abs(failures - 4139.94) < 8 * 64.3, failures


@pytest.mark.parametrize("backend", AVAILABLE)
def test_subnormal_parameters_and_values_are_not_flushed_to_zero(backend):
    # An outside trial: XLA and TensorFlow flush subnormal numbers to zero on the CPU, so the
    # tfp backends drew Normal(0, 1e-39) as zeros, LogNormal(-92, 1) as zeros (outside the
    # support) and scored Gamma(0.5, 2).log_prob(1e-40) as +inf (float32).
    x = ps.Normal(torch.tensor(0.0), torch.tensor(1e-39), backend=backend).sample((2000,), seed=1)
    assert x.dtype == torch.float32
    ratio = float(x.double().std()) / 1e-39  # sd 1e-39 up to subnormal rounding (1.4e-45)
    assert 0.9 < ratio < 1.1, ratio
    y = ps.LogNormal(torch.tensor(-92.0), torch.tensor(1.0), backend=backend).sample((2000,),
                                                                                     seed=1)
    assert bool((y > 0).all()) and bool(torch.isfinite(y).all())
    mid = float(y.double().log().median())  # the median of log y is loc
    assert abs(mid + 92) < 0.1, mid
    lp = ps.LogNormal(-92.0, 1.0, backend=backend).log_prob(y)
    assert bool(torch.isfinite(lp).all())
    v = torch.tensor([1e-40, 1e-30])
    got = ps.Gamma(torch.tensor(0.5), torch.tensor(2.0), backend=backend).log_prob(v)
    want = torch.distributions.Gamma(torch.tensor(0.5, dtype=torch.float64),
                                     torch.tensor(2.0, dtype=torch.float64)).log_prob(v.double())
    assert got.dtype == torch.float32 and torch.allclose(got.double(), want, rtol=1e-5), got
    if backend in ("tfp", "tfp-tf"):
        # a float64 subnormal has no wider dtype there: refused, saying why
        with pytest.raises(ps.InvalidParameterError, match="subnormal"):
            ps.Normal(torch.tensor(0.0, dtype=torch.float64),
                      torch.tensor(1e-310, dtype=torch.float64), backend=backend).sample((3,))


@pytest.mark.parametrize("backend", AVAILABLE)
def test_float32_log_prob_at_large_shape_parameters_keeps_its_precision(backend):
    # An outside trial: torch's and TFP's float32 formulas cancel at large shape parameters
    # (log-gamma normalisers of about 1e9): Chi2(1e8).log_prob(1e8) was +64 (it is -10.48),
    # Gamma and Beta at 1e8 gave 0, StudentT(1e7).log_prob(1) -0.5. Scored in float64, rounded.
    big = 1e8
    cases = [
        ("Chi2", (big,), big), ("Gamma", (big, big), 1.0), ("Beta", (big, big), 0.5),
        ("FisherSnedecor", (big, big), 1.0), ("StudentT", (big,), 1.0),
        ("InverseGamma", (big, big), 1.0), ("Dirichlet", ([big, big],), [0.5, 0.5]),
        ("VonMises", (0.0, 1e6), 0.001),
    ]
    for family, args, value in cases:
        f32 = [torch.tensor(a, dtype=torch.float32) for a in args]
        f64 = [torch.tensor(a, dtype=torch.float64) for a in args]
        want = float(getattr(torch.distributions, family)(*f64).log_prob(
            torch.tensor(value, dtype=torch.float64)))
        d = getattr(ps, family)(*f32, backend=backend)
        got = d.log_prob(torch.tensor(value, dtype=torch.float32))
        assert got.dtype == torch.float32
        assert abs(float(got) - want) < 1e-4 * (1 + abs(want)), (family, float(got), want)
    # gradients flow through the float64 copy, in float32
    a = torch.tensor(1e4, requires_grad=True)
    ps.Gamma(a, torch.tensor(1e4), backend=backend).log_prob(torch.tensor(1.0)).backward()
    assert a.grad is not None and a.grad.dtype == torch.float32 and bool(torch.isfinite(a.grad))
