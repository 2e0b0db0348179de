"""Defects of torch.distributions that polysample's classes mend on every backend."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import polysample as ps
from conftest import AVAILABLE


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_generalized_pareto_scores_float64_values(dtype):
    loc, scale = torch.tensor([0.0, 1.0], dtype=dtype), torch.tensor([1.0, 2.0], dtype=dtype)
    conc = torch.tensor([0.0, 0.3], dtype=dtype)
    d = ps.GeneralizedPareto(loc, scale, conc)
    x = torch.tensor([[0.5, 1.5], [2.0, 4.0]], dtype=dtype)
    if dtype == torch.float64:  # torch 2.13 itself raises here (the defect mended)
        with pytest.raises(RuntimeError, match="Double did not match Float"):
            torch.distributions.GeneralizedPareto(loc, scale, conc).log_prob(x)
    ref = torch.distributions.GeneralizedPareto(loc.float(), scale.float(), conc.float())
    got = d.log_prob(x)
    assert got.dtype == dtype
    torch.testing.assert_close(got.float(), ref.log_prob(x.float()), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(d.cdf(x).float(), ref.cdf(x.float()), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(d.log_survival_function(x).float(),
                               ref.log_survival_function(x.float()), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("family,kwargs", [
    ("RelaxedBernoulli", dict(probs=torch.tensor([0.3, 0.6]))),
    ("RelaxedOneHotCategorical", dict(probs=torch.tensor([0.2, 0.3, 0.5]))),
])
def test_relaxed_log_prob_with_a_python_number_temperature(family: str, kwargs: dict) -> None:
    d = getattr(ps, family)(0.5, **kwargs)
    x = d.sample((4,), seed=0)
    with pytest.raises((AttributeError, TypeError)):  # torch 2.13 itself (the defect mended)
        getattr(torch.distributions, family)(0.5, **kwargs).log_prob(x)
    ref = getattr(torch.distributions, family)(torch.tensor(0.5), **kwargs)
    torch.testing.assert_close(d.log_prob(x), ref.log_prob(x))
    assert d.temperature == 0.5 and not isinstance(d.temperature, torch.Tensor)


@pytest.mark.parametrize("backend", ["torch", "numpy"])
def test_relaxed_one_hot_log_prob_with_a_temperature_per_batch_element(backend: str) -> None:
    # torch draws with a batch temperature of shape batch + (1,) (the shape its sampler
    # divides by) but its log_prob adds a normaliser of that shape to scores of shape
    # sample + batch: a RuntimeError in torch 2.13, mended in polysample's class.
    t = torch.tensor([[0.3], [1.0], [2.5]], dtype=torch.float64)
    probs = torch.tensor([[0.2, 0.3, 0.5], [0.1, 0.6, 0.3], [0.7, 0.2, 0.1]], dtype=torch.float64)
    d = ps.RelaxedOneHotCategorical(t, probs=probs, backend=backend)
    x = d.sample((4,), seed=0)
    with pytest.raises(RuntimeError):  # torch 2.13 itself (the defect mended)
        torch.distributions.RelaxedOneHotCategorical(t, probs=probs).log_prob(x)
    ref = torch.stack([torch.distributions.RelaxedOneHotCategorical(t[i, 0], probs=probs[i])
                       .log_prob(x[:, i]) for i in range(3)], 1)
    got = d.log_prob(x)
    assert got.shape == (4, 3)
    torch.testing.assert_close(got, ref)
    # a scalar temperature and one of shape (1,) score as torch does
    for scalar in (torch.tensor(0.7, dtype=torch.float64),
                   torch.tensor([0.7], dtype=torch.float64)):
        ref = torch.distributions.RelaxedOneHotCategorical(scalar, probs=probs).log_prob(x)
        torch.testing.assert_close(ps.RelaxedOneHotCategorical(scalar, probs=probs).log_prob(x),
                                   ref)


def test_lkj_cholesky_of_an_empty_batch_keeps_torchs_checks_and_validation_setting() -> None:
    # torch's constructor builds an inner Beta with the default validation, which raises on
    # zero elements (the fix builds it unchecked for an empty batch only)
    with pytest.raises(RuntimeError, match="0 elements"):
        torch.distributions.LKJCholesky(3, torch.ones(0), validate_args=False)
    for validate in (None, True, False):
        d = ps.LKJCholesky(3, torch.ones(0, 2, dtype=torch.float64), validate_args=validate)
        assert d.batch_shape == (0, 2) and d.event_shape == (3, 3)
        assert d._validate_args is (validate is not False)
        assert d._beta.concentration0.shape == (0, 2, 3)
    with pytest.raises(ps.InvalidParameterError, match="dim"):
        ps.LKJCholesky(1, torch.ones(0))
    with pytest.raises(ps.InvalidParameterError, match="concentration"):
        ps.LKJCholesky(3, -torch.ones(1))


@pytest.mark.parametrize("backend", ["torch", "tfp", "tfp-tf"])
def test_lkj_cholesky_of_a_tiny_concentration_is_valid_and_drawn_in_the_support(backend):
    # torch's constructor rounded concentration + 1/2 - 1/2 to 0 for the inner Beta's last row
    # and refused LKJCholesky(3, 1e-30) with a message about a Dirichlet; TFP's CholeskyLKJ
    # drew singular factors (last diagonal exactly 0) for 96% of the draws at 1e-3 (finding F6)
    with pytest.raises(ValueError, match="Dirichlet"):
        torch.distributions.LKJCholesky(3, torch.tensor(1e-30))
    for conc in (1e-30, 1e-3, 0.1):
        for dtype in (torch.float32, torch.float64):
            d = ps.LKJCholesky(3, torch.tensor([conc, 2.0], dtype=dtype), backend=backend)
            x = d.sample((4096,), seed=3)
            assert x.dtype == dtype and d.support.check(x).all(), (conc, dtype)
            assert (x.diagonal(dim1=-2, dim2=-1) >= torch.finfo(dtype).tiny).all()
    with pytest.raises(ps.InvalidParameterError, match="concentration"):
        ps.LKJCholesky(3, torch.tensor(0.0))


_HEAVY = {
    "StudentT": {"df": 3.0, "loc": 1.0, "scale": 2.0},
    "Cauchy": {"loc": 1.0, "scale": 2.0},
    "HalfCauchy": {"scale": 2.0},
}


def _heavy_reference(family: str, p: dict, x: float) -> float:
    """The log density in closed form, in float64, with log(1 + y^2/c) taken apart."""
    loc, scale = p.get("loc", 0.0), p["scale"]
    if family == "HalfCauchy" and x < 0:
        return -math.inf
    y = (x - loc) / scale  # may overflow: the large branch takes logs first
    c = p.get("df", 1.0)
    l1p = (2 * (math.log(abs(x - loc)) - math.log(scale)) - math.log(c) + math.log1p(c / y / y)
           if abs(y) > 1 else math.log1p(y * y / c))
    if family == "StudentT":
        z = (math.log(scale) + 0.5 * math.log(c) + 0.5 * math.log(math.pi)
             + math.lgamma(c / 2) - math.lgamma((c + 1) / 2))
        return -0.5 * (c + 1) * l1p - z
    lp = -math.log(math.pi) - math.log(scale) - l1p
    return lp + math.log(2) if family == "HalfCauchy" else lp


@pytest.mark.parametrize("scale", [2.0, 0.5])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("family", sorted(_HEAVY))
@pytest.mark.parametrize("backend", ["torch", "numpy", "tfp", "tfp-tf"])
def test_heavy_tails_score_large_values(backend: str, family: str, dtype, scale) -> None:
    # torch squared the standardized value: -inf beyond 1.8e19 in float32 (1.3e154 in
    # float64), where the log density is finite (StudentT(3) at 3e38: -351.6). TFP too. With
    # a scale below 1 the standardized value itself overflows at the dtype's largest value.
    from conftest import AVAILABLE

    if backend not in AVAILABLE:
        pytest.skip(f"{backend} is not installed")
    p = {**_HEAVY[family], "scale": scale}
    d = getattr(ps, family)(**{k: torch.tensor(v, dtype=dtype) for k, v in p.items()},
                            backend=backend, validate_args=False)
    big = torch.finfo(dtype).max
    xs = [0.0, 0.5, 3.0, -3.0, 1e10, 1e30, big, -big]
    got = d.log_prob(torch.tensor(xs, dtype=dtype)).double().tolist()
    for x, g in zip(xs, got):
        want = _heavy_reference(family, p, float(torch.tensor(x, dtype=dtype)))
        assert g == pytest.approx(want, rel=1e-5, abs=1e-5), (x, g, want)


def _power_reference(family: str, p: dict, x: float) -> float:
    """The log density in closed form, in float64 (-inf below float64's range)."""
    if family == "Gumbel":
        y = (p["loc"] - x) / p["scale"]
        return -math.inf if y > 709 else y - math.exp(y) - math.log(p["scale"])
    if family == "Pareto":
        a, s = p["alpha"], p["scale"]
        return math.log(a) + a * math.log(s) - (a + 1) * math.log(x)
    k, s = p["concentration"], p["scale"]  # Weibull
    if x == 0:
        return {True: math.inf, False: -math.log(s)}[k < 1] if k <= 1 else -math.inf
    t = k * (math.log(x) - math.log(s))
    return -math.inf if t > 709 else (math.log(k) - k * math.log(s) + (k - 1) * math.log(x)
                                      - math.exp(t))


_POWERS = {  # case: (family, parameters, values); a scale 0.5 makes x / scale overflow near
    # the largest value
    "Gumbel": ("Gumbel", {"loc": 1.0, "scale": 0.5}, [-3e38, -1e30, -50.0, 0.3, 4.0, 1e30, 3e38]),
    "Pareto": ("Pareto", {"scale": 0.5, "alpha": 2.5}, [0.5, 0.7, 3.0, 1e30, 3e38]),
    "Weibull": ("Weibull", {"scale": 0.5, "concentration": 0.8},
                [0.0, 1e-30, 0.3, 4.0, 1e20, 3e38]),
    "Weibull-k2": ("Weibull", {"scale": 2.0, "concentration": 2.0},
                   [0.0, 1e-30, 0.3, 4.0, 1e20, 3e38]),
}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("case", sorted(_POWERS))
@pytest.mark.parametrize("backend", ["torch", "numpy", "tfp", "tfp-tf"])
def test_standardized_values_and_powers_score_extreme_values(backend: str, case: str,
                                                             dtype) -> None:
    # torch 2.13 in float32: Gumbel NaN at -3e38 (y = (loc - x)/scale overflows: inf - inf;
    # TFP on JAX +inf), Pareto -inf at 3e38 (log(x / scale): the log density is -311; TFP
    # too), Weibull NaN at 0, 1e20 and 3e38, and -inf at 1e-30 for scale and concentration 2
    # where it is -69.8 (the power (x / scale)^k; TFP -inf at 3e38 for concentration 0.8
    # where it is -1.05e31).
    from conftest import AVAILABLE

    if backend not in AVAILABLE:
        pytest.skip(f"{backend} is not installed")
    family, p, xs = _POWERS[case]
    d = getattr(ps, family)(**{k: torch.tensor(v, dtype=dtype) for k, v in p.items()},
                            backend=backend, validate_args=False)
    got = d.log_prob(torch.tensor(xs, dtype=dtype)).double().tolist()
    lowest = -torch.finfo(dtype).max
    for x, g in zip(xs, got):
        want = _power_reference(family, p, float(torch.tensor(x, dtype=dtype)))
        if want < lowest:
            assert g <= lowest, (x, g, want)
        else:
            assert g == pytest.approx(want, rel=1e-5), (x, g, want)


@pytest.mark.parametrize("backend", ["torch", "numpy"])
def test_weibull_and_gumbel_fixes_keep_torchs_values_and_gradients(backend: str) -> None:
    # at typical values, polysample's formulas are torch's to rounding, gradients included
    for family, p in (("Weibull", {"scale": 1.5, "concentration": 2.5}),
                      ("Gumbel", {"loc": 0.3, "scale": 1.5}),
                      ("Pareto", {"scale": 1.5, "alpha": 2.5})):
        leaves = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True)
                  for k, v in p.items()}
        x = torch.tensor([1.6, 2.0, 3.5, 7.0], dtype=torch.float64)
        ours = getattr(ps, family)(**leaves, backend=backend).log_prob(x).sum()
        theirs = getattr(torch.distributions, family)(**leaves).log_prob(x).sum()
        g1 = torch.autograd.grad(ours, list(leaves.values()))
        g2 = torch.autograd.grad(theirs, list(leaves.values()))
        assert float(ours.detach()) == pytest.approx(float(theirs.detach()), rel=1e-12)
        for a, b in zip(g1, g2):
            assert float(a) == pytest.approx(float(b), rel=1e-10)


@pytest.mark.parametrize("family", ["Normal", "HalfNormal"])
@pytest.mark.parametrize("backend", ["torch", "numpy", "tfp", "tfp-tf"])
def test_normal_scores_large_values_of_a_wide_law_in_float32(backend: str, family: str) -> None:
    # torch 2.13 squared x - loc before dividing by the variance: -inf at 1e20 for scale 1000
    # in float32, where the log density is -5e33.
    from conftest import AVAILABLE

    if backend not in AVAILABLE:
        pytest.skip(f"{backend} is not installed")
    scale = torch.tensor(1000.0)
    d = (ps.Normal(torch.tensor(-3.0), scale, backend=backend) if family == "Normal"
         else ps.HalfNormal(scale, backend=backend))
    loc = -3.0 if family == "Normal" else 0.0
    xs = [0.5, 1e4, 1e19, 1e20, 3e38]
    got = d.log_prob(torch.tensor(xs)).double().tolist()
    for x, g in zip(xs, got):
        x = float(torch.tensor(x))
        want = (-0.5 * ((x - loc) / 1000.0) ** 2 - math.log(1000.0) - 0.5 * math.log(2 * math.pi)
                + (math.log(2) if family == "HalfNormal" else 0.0))
        if want < -torch.finfo(torch.float32).max:
            assert g == -math.inf, (x, g)
        else:
            assert g == pytest.approx(want, rel=1e-5), (x, g, want)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("backend", ["torch", "numpy", "tfp", "tfp-tf"])
def test_relaxed_bernoulli_scores_values_near_zero(backend: str, dtype) -> None:
    # torch 2.13: log T + d - 2 log1p(exp(d)), d = logits - T logit(x), and exp(d) overflows
    # near 0: -inf at 2^-50 in float32 (T = 3, p = 0.95), where the log density is -71.2.
    from conftest import AVAILABLE
    from polysample.conformance.cases import CASES

    if backend not in AVAILABLE:
        pytest.skip(f"{backend} is not installed")
    d = ps.RelaxedBernoulli(torch.tensor(3.0, dtype=dtype), probs=torch.tensor(0.95, dtype=dtype),
                            backend=backend)
    smallest = 2.0 ** -120 if dtype == torch.float32 else 2.0 ** -1000
    xs = torch.tensor([smallest, 2.0 ** -50, 1e-3, 0.3, 0.9], dtype=dtype)
    got = d.log_prob(xs).double().numpy()
    law = CASES["RelaxedBernoulli"].law({"temperature": np.array(3.0),
                                         "probs": np.array(float(torch.tensor(0.95, dtype=dtype)))})
    want = law.logpdf(xs.double().numpy())
    np.testing.assert_allclose(got, want, rtol=1e-5)


@pytest.mark.parametrize("backend", ["torch", "numpy", "tfp", "tfp-tf", "scipy"])
def test_student_t_scores_its_own_float32_draws(backend: str) -> None:
    # df 0.05 draws reach 3e38: 10% of them scored -inf on torch and numpy, 1% on TFP.
    from conftest import AVAILABLE

    if backend not in AVAILABLE:
        pytest.skip(f"{backend} is not installed")
    d = ps.StudentT(torch.tensor(0.05), backend=backend)
    x = d.sample((20000,), seed=0)
    lp = d.log_prob(x[x.isfinite()])
    assert bool(lp.isfinite().all()), int((~lp.isfinite()).sum())


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("backend", ["torch", "numpy"])
def test_inverse_gamma_scores_tiny_values(backend: str, dtype) -> None:
    # torch added the Jacobian through x^-2, which overflows below 1e-154 (1e-19 in float32):
    # +inf where the log density is -rate/x, hugely negative.
    d = ps.InverseGamma(torch.tensor(2.0, dtype=dtype), torch.tensor(3.0, dtype=dtype),
                        backend=backend)
    xs = [1e-30, 1e-3, 0.5, 2.0, 1e10] + ([1e-160, 1e-300] if dtype == torch.float64 else [])
    got = d.log_prob(torch.tensor(xs, dtype=dtype)).double().tolist()
    for x, g in zip(xs, got):
        x = float(torch.tensor(x, dtype=dtype))
        want = 2 * math.log(3.0) - math.lgamma(2.0) - 3 * math.log(x) - 3.0 / x
        if math.isinf(want) or abs(want) > torch.finfo(dtype).max:
            assert g == -math.inf, (x, g)
        else:
            assert g == pytest.approx(want, rel=1e-5), (x, g, want)


def test_continuous_bernoulli_cdf_and_icdf_depend_on_probs_near_one_half() -> None:
    # torch 2.13 returns the value itself where |probs - 1/2| <= 1e-3 (finding F14): a zero
    # gradient, and a CDF off by up to 5e-4. dF/dprobs at 1/2 is 2 x (x - 1), the exact CDF
    # expm1(s x) / expm1(s) at logits s; icdf inverts it.
    p = torch.tensor([0.5, 0.5 + 1e-9, 0.5005, 0.4995, 0.3, 0.999], dtype=torch.float64,
                     requires_grad=True)
    x = torch.full((6,), 0.2, dtype=torch.float64)
    d = ps.ContinuousBernoulli(probs=p)
    torch_cdf = torch.distributions.ContinuousBernoulli(probs=p).cdf(x)
    assert torch.equal(torch_cdf[:4], x[:4])  # torch 2.13 itself (the defect mended)
    s = torch.log(p.detach()) - torch.log1p(-p.detach())
    safe = torch.where(s == 0, 1.0, s)
    exact = torch.where(s == 0, x, torch.expm1(safe * x) / torch.expm1(safe))
    torch.testing.assert_close(d.cdf(x), exact, rtol=1e-12, atol=1e-15)
    (g,) = torch.autograd.grad(d.cdf(x).sum(), p)
    assert abs(g[0].item() - 2 * 0.2 * (0.2 - 1)) < 1e-12 and (g[:4] < -0.3).all()
    u = torch.linspace(0.01, 0.99, 6, dtype=torch.float64)
    d = ps.ContinuousBernoulli(probs=p)  # the constructor's clamp is part of each graph
    torch.testing.assert_close(d.cdf(d.icdf(u)), u, rtol=1e-12, atol=1e-14)
    (g,) = torch.autograd.grad(d.icdf(u).sum(), p)
    # dx/dprobs at 1/2 is 2 u (1 - u)
    assert abs(g[0].item() - 2 * u[0].item() * (1 - u[0].item())) < 1e-12 and (g[:4] > 0).all()


@pytest.mark.parametrize("backend", [b for b in AVAILABLE if b in (
    "torch", "numpy", "tfp", "tfp-tf", "auto")])
@pytest.mark.parametrize("probs", [0.5, 0.5005])
def test_continuous_bernoulli_rsample_gradient_near_one_half(backend: str, probs: float) -> None:
    # d/dprobs E[X] = 1/3 at 1/2: torch's inverse CDF (torch, numpy) returned the uniform in
    # |probs - 1/2| <= 1e-3 and TFP's at logits 0, so the gradient was exactly 0 (finding F14).
    # The per-draw gradient 2 u (1 - u) has sd 0.149: 2^16 draws, 6 standard errors.
    p = torch.full((1 << 16,), probs, dtype=torch.float64, requires_grad=True)
    x = ps.ContinuousBernoulli(probs=p, backend=backend).rsample(seed=3)
    (g,) = torch.autograd.grad(x.sum(), p)
    assert abs(g.mean().item() - 1 / 3) < 6 * 0.149 / 2 ** 8, g.mean().item()


@pytest.mark.parametrize("backend", ["torch", "numpy", "tfp", "tfp-tf", "auto", "scipy"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_geometric_given_logits_is_scored_in_log_space(backend: str, dtype: torch.dtype) -> None:
    # Finding F15: torch's formula reads sigmoid(logits), 1.0 for large logits, so value 5 at
    # logits 100 scored -inf (it is -500); from probs, torch's own edges stay.
    if backend not in AVAILABLE:
        pytest.skip(f"{backend} is not available")
    from polysample.conformance.layers.density import logit_case, logit_log_prob

    logits, other, value = logit_case("Geometric", dtype)  # type: ignore[misc]
    leaf = logits.clone().requires_grad_(True)
    d = ps.Geometric(logits=leaf, backend=backend)
    got = d.log_prob(value)
    ref_leaf = logits.double().requires_grad_(True)
    want = logit_log_prob("Geometric", ref_leaf, other, value)
    torch.testing.assert_close(got.double(), want.detach(), rtol=1e-6 if dtype == torch.float64
                               else 1e-5, atol=1e-6)
    got.sum().backward()
    want.sum().backward()
    torch.testing.assert_close(leaf.grad.double(), ref_leaf.grad, rtol=1e-5, atol=1e-5)
    # expand keeps it; pickling too
    wide = d.expand((2, len(logits)))
    torch.testing.assert_close(wide.log_prob(value[-1])[1].double(), want[-1].detach(),
                               rtol=1e-5, atol=1e-6)
    import pickle

    again = pickle.loads(pickle.dumps(ps.Geometric(logits=logits, backend=backend)))
    torch.testing.assert_close(again.log_prob(value).double(), want.detach(), rtol=1e-5,
                               atol=1e-6)
    # given probs: torch's formula and edges (probs 1: 0 at 0, -inf at 1)
    edge = ps.Geometric(probs=torch.ones((), dtype=dtype), backend=backend)
    assert edge.log_prob(torch.tensor([0.0, 1.0], dtype=dtype)).tolist() == [0.0, -math.inf]


#: (family, constructor arguments but probs, probs, values) of the exact-logits fix (F19).
_SMALL_PROBS_CASES = [
    ("Bernoulli", {}, [1e-30, 1e-9, 0.3, 1.0 - 2.0 ** -24], [1.0, 0.0]),
    ("Binomial", {"total_count": 10.0}, [1e-30, 1e-9, 0.3, 1.0 - 2.0 ** -24], [1.0, 10.0]),
    ("NegativeBinomial", {"total_count": 3.0}, [1e-30, 1e-9, 0.3, 0.9], [1.0, 0.0]),
    ("Geometric", {}, [1e-30, 1e-9, 0.3, 1.0 - 2.0 ** -24], [0.0, 4.0]),
]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("family,other,probs,values", _SMALL_PROBS_CASES)
def test_small_probs_are_scored_from_exact_logits(family, other, probs, values, dtype) -> None:
    # Finding F19: torch derives logits from probs clamped to [eps, 1 - eps], so in float32
    # Bernoulli(probs=1e-9).log_prob(1) was -15.9 (it is -20.7), with a zero gradient.
    from polysample.conformance.layers.density import logit_log_prob, probs_log_odds

    p = torch.tensor(probs, dtype=dtype, requires_grad=True)
    kw = {k: torch.tensor(v, dtype=dtype) for k, v in other.items()}
    value = torch.tensor(values, dtype=dtype)[:, None].expand(len(values), len(probs))
    got = getattr(ps, family)(probs=p, **kw).log_prob(value)
    ref_p = p.detach().double().requires_grad_(True)
    want = logit_log_prob(family, probs_log_odds(family, ref_p), kw, value)
    torch.testing.assert_close(got.double(), want.detach(), rtol=1e-5, atol=1e-5)
    got.sum().backward()
    want.sum().backward()
    assert torch.isfinite(p.grad).all()
    torch.testing.assert_close(p.grad.double(), ref_p.grad, rtol=1e-4, atol=1e-5)
    if dtype == torch.float32 and family != "Geometric":  # torch itself, the defect mended
        ref = getattr(torch.distributions, family)(probs=p.detach(), **kw).log_prob(value)
        assert (ref[:, 1] - want[:, 1]).abs().max() > 1.0


@pytest.mark.parametrize("family,kwargs,value", [
    ("Categorical", {}, torch.tensor([0, 1])),
    ("OneHotCategorical", {}, torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])),
    ("OneHotCategoricalStraightThrough", {}, torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])),
    ("Multinomial", {"total_count": 2}, torch.tensor([[1.0, 1.0, 0.0], [0.0, 2.0, 0.0]])),
])
def test_small_category_probs_are_scored_from_exact_logits(family, kwargs, value) -> None:
    probs = torch.tensor([1e-9, 1e-20, 1.0 - 1e-9], requires_grad=True)
    d = getattr(ps, family)(probs=probs, **kwargs)
    log_p = torch.tensor([1e-9, 1e-20, 1.0 - 1e-9], dtype=torch.float64).log()
    if family == "Categorical":
        want = log_p[value]
    else:
        want = (value.double() * log_p).sum(-1)
        if family == "Multinomial":
            want = want + math.lgamma(3) - torch.lgamma(value.double() + 1).sum(-1)
    torch.testing.assert_close(d.log_prob(value).double(), want, rtol=1e-5, atol=1e-5)
    d.log_prob(value).sum().backward()
    assert torch.isfinite(probs.grad).all()
    # torch itself clamps at eps: log(1.19e-7) = -15.9 for the 1e-9 category
    ref = getattr(torch.distributions, family)(probs=probs.detach(), **kwargs)
    assert abs(float(ref.log_prob(value)[0]) - float(want[0])) > 1.0
    # kept by expand, pickling and wrap (which leaves the torch object as it was)
    import pickle

    torch.testing.assert_close(d.expand((2, 2)).log_prob(value).double(),
                               want.expand(2, 2), rtol=1e-5, atol=1e-5)
    again = pickle.loads(pickle.dumps(d))
    torch.testing.assert_close(again.log_prob(value).double(), want, rtol=1e-5, atol=1e-5)
    _ = ref.logits  # derived (clamped) in the torch object before it is wrapped
    torch.testing.assert_close(ps.wrap(ref).log_prob(value).double(), want, rtol=1e-5,
                               atol=1e-5)
    assert abs(float(ref.log_prob(value)[0]) - float(want[0])) > 1.0


@pytest.mark.parametrize("family,kwargs", [
    ("RelaxedBernoulli", {"probs": torch.tensor([1e-9, 0.5])}),
    ("RelaxedOneHotCategorical", {"probs": torch.tensor([1e-9, 0.5, 0.5])}),
])
def test_relaxed_families_derive_exact_logits(family, kwargs) -> None:
    d = getattr(ps, family)(torch.tensor(0.5), **kwargs)
    want = torch.tensor(math.log(1e-9))  # the log-odds, or the log of the normalized probs
    torch.testing.assert_close(d.logits[0], want, rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(ps.wrap(getattr(torch.distributions, family)(
        torch.tensor(0.5), **kwargs)).logits[0], want, rtol=1e-5, atol=1e-4)


def test_edge_probs_give_finite_logits_and_gradients() -> None:
    # probs 0 and 1 (and below the smallest normal number) give finite logits, never NaN
    p = torch.tensor([0.0, 1e-45, 1e-30, 0.5, 1.0], requires_grad=True)
    d = ps.Bernoulli(probs=p)
    assert torch.isfinite(d.logits).all()
    torch.testing.assert_close(torch.sigmoid(d.logits), p.detach(), rtol=1e-6, atol=1e-37)
    lp = d.log_prob(torch.tensor([1.0, 1.0, 1.0, 1.0, 1.0]))
    assert abs(float(lp[-1])) < 1e-30 and lp[0] < -87.0
    lp.sum().backward()
    assert not p.grad.isnan().any()
    c = ps.Categorical(probs=torch.tensor([0.0, 1.0], requires_grad=True))
    assert c.log_prob(torch.tensor(1)) == 0.0 and torch.isfinite(c.logits).all()


@pytest.mark.parametrize("backend", ["torch", "numpy", "tfp", "tfp-tf", "scipy"])
def test_negative_binomial_small_probs_draw_the_right_mean(backend: str) -> None:
    # Every backend draws NegativeBinomial from its logits: given probs 1e-9 in float32 the
    # mean was 0.119 (torch's logits of 1.19e-7), 119 times the law's 0.001.
    if backend not in AVAILABLE:
        pytest.skip(f"{backend} is not available")
    d = ps.NegativeBinomial(torch.tensor(1e6), probs=torch.tensor(1e-9), backend=backend)
    x = d.sample((20000,), seed=3)
    # mean 1e-3: P(total > 60) for Poisson(20) is below 1e-12
    assert float(x.sum()) < 60
    torch.testing.assert_close(d.mean, torch.tensor(1e-3), rtol=1e-5, atol=0)
