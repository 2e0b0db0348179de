"""The tfp backends as drop-ins for ``torch.distributions`` (issue 14): batched gradients,
``log_prob`` at the edges of the parameters and the support, pathwise Gamma gradients.

Each test runs on both substrates (``tfp``: JAX, ``tfp-tf``: TensorFlow) and compiles a few
small programs (0.05-1 s each), so the cases are few and small. Per-draw gradient identities
have no noise: they are compared with SciPy's CDF, not with polysample's own numerics.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
import scipy.special
import scipy.stats
import torch
import torch.distributions as td

import polysample as ps

pytestmark = pytest.mark.xdist_group("tfp")

SUBSTRATES = ["tfp", "tfp-tf"]
F64 = torch.float64
INF = math.inf


@pytest.fixture(autouse=True)
def _quiet() -> Iterator[None]:
    with warnings.catch_warnings():  # torch's own warnings (Wishart's low df, ...)
        warnings.simplefilter("ignore")
        yield


def _t(*values: Any, dtype: torch.dtype = F64) -> torch.Tensor:
    return torch.tensor(values[0] if len(values) == 1 else values, dtype=dtype)


# --------------------------------------------------------------------------- batched gradients
#: family -> (parameters, value); the first floating parameter and the value are checked.
GRADCHECK: dict[str, tuple[dict[str, torch.Tensor], torch.Tensor]] = {
    "Normal": ({"loc": _t(0.5, -0.2), "scale": _t(1.5, 0.7)}, _t(0.1, 0.3)),
    "Gamma": ({"concentration": _t(2.5, 0.7), "rate": _t(1.5, 2.0)}, _t(0.4, 1.3)),
    "Dirichlet": ({"concentration": _t([[2.0, 3.0, 1.5]])}, _t([0.2, 0.5, 0.3])),
    # a symmetric value: TFP on TensorFlow read its lower triangle only, so the numerical
    # gradient (which perturbs one entry at a time) was not the analytical one
    "Wishart": ({"df": _t(5.0), "scale_tril": _t([[1.0, 0.0], [0.3, 0.8]])},
                _t([[2.0, 0.7], [0.7, 1.5]])),
}


@pytest.mark.parametrize("backend", SUBSTRATES)
@pytest.mark.parametrize("family", sorted(GRADCHECK))
def test_log_prob_passes_batched_gradcheck(backend: str, family: str) -> None:
    params, value = GRADCHECK[family]
    name = next(iter(params))
    rest = {k: v for k, v in params.items() if k != name}

    def log_prob(theta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        # validate_args=False: gradcheck moves the value off the simplex (Dirichlet) and
        # off the symmetric matrices (Wishart)
        d = getattr(ps, family)(**{name: theta}, **rest, backend=backend, validate_args=False)
        return d.log_prob(x)

    inputs = (params[name].clone().requires_grad_(True), value.clone().requires_grad_(True))
    assert torch.autograd.gradcheck(log_prob, inputs, check_batched_grad=True)


@pytest.mark.parametrize("backend", SUBSTRATES)
@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_binomial_log_prob_gradient_in_the_count_at_the_ends(backend: str,
                                                             dtype: torch.dtype) -> None:
    # Finding F16: on JAX, TFP's multiply_no_nan has derivative 0 in its second argument
    # where that is 0, so d/dn of (n - x) log(1 - p) lost log(1 - p) at x = n (2.5929 for
    # n = 7, p = 0.3, where it is 2.2362).
    for given in ({"probs": _t(0.3, 0.8, dtype=dtype)}, {"logits": _t(-0.8, 1.4, dtype=dtype)}):
        n = _t(7.0, 7.0, dtype=dtype).requires_grad_(True)
        x = _t([[7.0, 7.0], [0.0, 0.0], [3.0, 7.0]], dtype=dtype)
        (got,) = torch.autograd.grad(ps.Binomial(n, **given, backend=backend).log_prob(x).sum(),
                                     n)
        m = n.detach().clone().requires_grad_(True)
        (want,) = torch.autograd.grad(td.Binomial(m, **given).log_prob(x).sum(), m)
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("backend", SUBSTRATES)
@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_laplace_log_prob_gradient_at_its_kink_is_torchs(backend: str, dtype: torch.dtype) -> None:
    # Finding F17: JAX's derivative of |x| at 0 is 1 (torch's and TensorFlow's sign(0) = 0), so
    # d log_prob/d loc at value == loc was 1/scale on tfp.
    loc, scale = _t(0.5, -2.0, dtype=dtype), _t(2.0, 0.25, dtype=dtype)
    x = _t([[0.5, -2.0], [1.0, -3.0]], dtype=dtype)
    got = [p.clone().requires_grad_(True) for p in (loc, scale, x)]
    want = [p.clone().requires_grad_(True) for p in (loc, scale, x)]
    lp = ps.Laplace(*got[:2], backend=backend).log_prob(got[2])
    (at_kink,) = torch.autograd.grad(lp[0].sum(), got[0], retain_graph=True)
    assert at_kink.tolist() == [0.0, 0.0]
    g = torch.autograd.grad(lp.sum(), got)
    w = torch.autograd.grad(td.Laplace(*want[:2]).log_prob(want[2]).sum(), want)
    for a, b in zip(g, w):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("backend", SUBSTRATES)
def test_rsample_passes_batched_gradcheck(backend: str) -> None:
    loc = _t(0.5, -0.2).requires_grad_(True)
    scale = _t(1.5, 0.7).requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda loc, scale: ps.Normal(loc, scale, backend=backend).rsample((3,), seed=4),
        (loc, scale), check_batched_grad=True)


@pytest.mark.parametrize("backend", SUBSTRATES)
def test_vmap_over_the_backward_pass_gives_each_cotangent_its_gradient(backend: str) -> None:
    loc = _t(0.5, -0.2).requires_grad_(True)
    value = _t(0.1, 0.3)
    lp = ps.Normal(loc, _t(1.0, 1.0), backend=backend).log_prob(value)
    cotangents = torch.tensor([[1.0, 0.0], [0.0, 3.0], [2.0, 1.0]], dtype=F64)
    expected = cotangents * (value - loc.detach())  # d/dloc log N(x; loc, 1) = x - loc

    def vjp(v: torch.Tensor) -> torch.Tensor:
        return torch.autograd.grad(lp, loc, v, retain_graph=True)[0]

    assert torch.allclose(torch.func.vmap(vjp)(cotangents), expected)
    nested = torch.func.vmap(torch.func.vmap(vjp))(cotangents.expand(2, 3, 2))
    assert torch.allclose(nested, expected.expand(2, 3, 2))
    (batched,) = torch.autograd.grad(lp, loc, cotangents, is_grads_batched=True)
    assert torch.allclose(batched, expected)


@pytest.mark.parametrize("backend", SUBSTRATES)
def test_vmap_over_log_prob_raises_not_traceable(backend: str) -> None:
    d = ps.Normal(_t(0.0), _t(1.0), backend=backend)
    with pytest.raises(ps.NotTraceableError, match="torch.func transform") as info:
        torch.func.vmap(d.log_prob)(_t(0.1, 0.2))
    # a density, not a draw (an outside trial: the message spoke of "the same draw")
    assert "cannot batch the density" in str(info.value) and "draw" not in str(info.value)


# --------------------------------------------------------------------------- log_prob at the edges
def _edge_cases() -> list[Any]:
    # (family, parameters, value, torch's value where it is known in closed form)
    return [
        pytest.param("Geometric", {"probs": _t(1.0, 1.0, 1e-10)}, _t(0.0, 1.0, 0.0),
                     [0.0, -INF, math.log(1e-10)], id="Geometric-probs-1"),
        pytest.param("NegativeBinomial", {"total_count": _t(0.0, 0.0, 3.0),
                                          "probs": _t(0.3, 0.0, 0.3)}, _t(0.0, 0.0, 0.0),
                     [0.0, 0.0, 3 * math.log(0.7)], id="NegativeBinomial-count-0"),
        pytest.param("OneHotCategorical", {"logits": _t([[-INF, 0.0], [0.0, -INF]])},
                     _t([0.0, 1.0]), [0.0, -INF], id="OneHotCategorical-logits-inf"),
        pytest.param("ContinuousBernoulli", {"logits": _t(1e38, -1e38, 100.0, 1e-4)},
                     _t(0.0, 0.0, 1.0, 0.9), None, id="ContinuousBernoulli-large-logits"),
        pytest.param("RelaxedBernoulli", {"temperature": _t(0.5), "probs": _t(0.3, 0.3)},
                     _t(0.0, 1.0), None, id="RelaxedBernoulli-support-ends"),
    ]


@pytest.mark.parametrize("backend", SUBSTRATES)
@pytest.mark.parametrize(("family", "params", "value", "known"), _edge_cases())
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
def test_log_prob_at_the_edges_is_torchs(backend: str, family: str,
                                         params: dict[str, torch.Tensor], value: torch.Tensor,
                                         known: list[float] | None, dtype: torch.dtype) -> None:
    params = {k: v.to(dtype) for k, v in params.items()}
    value = value.to(dtype)
    ours = getattr(ps, family)(**params, backend=backend).log_prob(value)
    theirs = getattr(td, family)(**params).log_prob(value)
    assert not theirs.isnan().any()
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6)
    if known is not None:
        torch.testing.assert_close(ours, torch.tensor(known, dtype=dtype), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("backend", SUBSTRATES)
def test_dirichlet_scores_an_integer_concentration(backend: str) -> None:
    conc = torch.tensor([1, 2])
    value = torch.tensor([0.3, 0.7])
    ours = ps.Dirichlet(conc, backend=backend).log_prob(value)
    torch.testing.assert_close(ours, td.Dirichlet(conc.float()).log_prob(value))


# --------------------------------------------------------------------------- Gamma gradients
def _gamma_dz(z: np.ndarray, a: float) -> np.ndarray:
    """dz/da of standard Gamma(a) draws: -(dP/da)(z; a) / p(z; a), SciPy in float64."""
    h = 1e-5 * a
    lower = z < a
    d_f = np.where(lower,
                   scipy.special.gammainc(a + h, z) - scipy.special.gammainc(a - h, z),
                   scipy.special.gammaincc(a - h, z) - scipy.special.gammaincc(a + h, z))
    return -d_f / (2 * h) / scipy.stats.gamma.pdf(z, a)


def _gamma(backend: str, c: torch.Tensor) -> Any:
    return ps.Gamma(c, torch.full_like(c, 2.0), backend=backend)


def _chi2(backend: str, c: torch.Tensor) -> Any:
    return ps.Chi2(c, backend=backend)


#: family -> (distribution of the parameter, dx/dparam from dz/dalpha of the standard Gamma)
GAMMAS: dict[str, tuple[Callable[[str, torch.Tensor], Any],
                        Callable[[np.ndarray, float], np.ndarray]]] = {
    "Gamma": (_gamma, lambda x, c: _gamma_dz(2 * x, c) / 2),  # x = z / rate
    "Chi2": (_chi2, lambda x, c: _gamma_dz(x / 2, c / 2)),  # x = 2z, alpha = df / 2
}


#: Relative error of the float32 gradients at concentration 1e4: TensorFlow's are computed in
#: float64 by polysample (2e-6 at worst over 2000 draws); JAX's own, in float32, 6e-4. TFP
#: on TensorFlow differentiated them with RandomGammaGrad: 1.9e-3 (Gamma) and 1.7e-4 (Chi2)
#: for the median draw, 13% and 1.9% at worst.
GAMMA_RTOL = {"tfp": 2e-3, "tfp-tf": 2e-5}


@pytest.mark.parametrize("backend", SUBSTRATES)
@pytest.mark.parametrize("family", sorted(GAMMAS))
def test_gamma_gradient_at_large_concentration_matches_scipy(backend: str, family: str) -> None:
    n, c = 8, 1e4
    make, exact = GAMMAS[family]
    leaf = torch.full((n,), c, requires_grad=True)  # one copy per draw: grad[i] = dx_i/dc
    x = make(backend, leaf).rsample(seed=0)
    (grad,) = torch.autograd.grad(x.sum(), leaf)
    expected = exact(x.detach().double().numpy(), c)
    np.testing.assert_allclose(grad.double().numpy(), expected, rtol=GAMMA_RTOL[backend])


# --------------------------------------------------------------------------- every family
def _tfp_families(backend: str) -> list[str]:
    from polysample.core.families import FAMILIES

    return sorted(f for f in ps.load_backend(backend).families() if f in FAMILIES)


@pytest.mark.parametrize("backend", SUBSTRATES)
def test_log_prob_of_every_family_matches_torch(backend: str) -> None:
    """``log_prob`` and its gradients at fixed values in the support, every family, against
    torch's (polysample's torch backend): TFP's own formulas agree with torch's to rounding inside the parameter space (the
    edges are above). One test per substrate: every family compiles its program here."""
    from polysample.conformance.grids import example_params

    mismatched = []
    for family in _tfp_families(backend):
        params = example_params(family, (2,), F64)
        theirs = getattr(td, family)(**params)
        with torch.random.fork_rng():
            torch.manual_seed(1234)
            x = theirs.sample((3,))
        leaves = {k: v.detach().clone().requires_grad_(True) for k, v in params.items()
                  if isinstance(v, torch.Tensor) and v.is_floating_point()
                  and k not in ("total_count",)}
        # torch's value, through polysample's torch backend: torch's own defects mended
        # (polysample.core.torch_fixes: float64 GeneralizedPareto raises in torch 2.13)
        want = getattr(ps, family)(**{**params, **leaves}, backend="torch").log_prob(x)
        ours = getattr(ps, family)(**{**params, **leaves}, backend=backend)
        got = ours.log_prob(x)
        if got.dtype != want.dtype or got.shape != want.shape:
            mismatched.append(f"{family}: {got.dtype}{tuple(got.shape)} against "
                              f"{want.dtype}{tuple(want.shape)}")
            continue
        # torch's VonMises normalizer is a polynomial approximation of the Bessel function
        # (relative error about 2e-8); every other family agrees to 1e-9
        if not torch.allclose(got, want, rtol=1e-7, atol=1e-9):
            mismatched.append(f"{family}: {got.tolist()} against {want.tolist()}")
            continue
        if leaves:
            g_want = torch.autograd.grad(want.sum(), list(leaves.values()), allow_unused=True)
            g_got = torch.autograd.grad(got.sum(), list(leaves.values()), allow_unused=True)
            for name, a, b in zip(leaves, g_got, g_want):
                a = torch.zeros_like(leaves[name]) if a is None else a
                b = torch.zeros_like(leaves[name]) if b is None else b
                if name == "scale_tril":
                    # entries above the diagonal are not parameters: torch's Wishart gives
                    # them a gradient its formula never reads, TFP gives them 0
                    a, b = a.tril(), b.tril()
                # VonMises: torch's concentration gradient is up to 1.4e-6 off (its Bessel
                # approximation); TFP's equals SciPy's exact cos(x - loc) - I1/I0
                rtol = 1e-5 if family == "VonMises" else 1e-7
                if not torch.allclose(a, b, rtol=rtol, atol=1e-9):
                    mismatched.append(f"{family} d/d{name}: {a.tolist()} against {b.tolist()}")
    assert not mismatched, "\n".join(mismatched)
