"""What the scipy backend promises beyond the conformance suite (tests/test_conformance.py)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch
from polysample_scipy import OMITTED, ScipyBackend
from polysample_scipy.scores import SCORES
from torch.distributions import constraints

import polysample as ps
from polysample.conformance import example_params

BACKEND = ScipyBackend()  # judged as an instance: no registration needed


def test_registering_and_listing_the_backend_does_not_import_scipy() -> None:
    code = ("import sys, polysample_scipy as m\n"
            "b = m.ScipyBackend(); b.check_available()\n"
            "print(len(b.families()), b.version() != '', 'scipy' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["32", "True", "False"]


def test_every_torch_family_is_offered_or_left_out_with_a_reason() -> None:
    offered = set(BACKEND.families())
    assert offered.isdisjoint(OMITTED)
    assert offered | set(OMITTED) == set(ps.plugin.FAMILIES)
    with pytest.raises(ps.UnsupportedFamilyError, match="scipy.stats has no LKJ"):
        ps.LKJCholesky(3, 1.0, backend=BACKEND).sample()


def test_a_missing_scipy_makes_the_backend_unavailable(monkeypatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "scipy" else real(name, *a))
    with pytest.raises(ps.BackendUnavailableError, match="pip install scipy"):
        BACKEND.check_available()


def test_scipy_rejecting_parameters_is_an_invalid_parameter_error() -> None:
    # Beyond what polysample's draw checks (with validate_args=False it refuses the wrong side
    # of a bound; the bound itself is drawn from, as torch draws it): SciPy refuses a Gamma
    # concentration of 0.
    d = ps.Gamma(torch.tensor(0.0), torch.tensor(1.0), backend=BACKEND, validate_args=False)
    with pytest.raises(ps.InvalidParameterError, match="SciPy could not draw Gamma"):
        d.sample((2,), seed=0)


def test_a_binomial_count_past_int64_is_refused_with_what_to_do() -> None:
    # SciPy draws int64 counts: 1e20 cast to int64 was negative, and SciPy's message spoke of
    # a "scale parameter".
    d = ps.Binomial(torch.tensor([10.0, 1e20], dtype=torch.float64), torch.tensor(0.3),
                    backend=BACKEND)
    with pytest.raises(ps.InvalidParameterError,
                       match=r"total_count below 2\^63.*Received total_count = 1e\+20.*torch"):
        d.sample((2,), seed=0)
    assert ps.Binomial(torch.tensor(1e18, dtype=torch.float64), torch.tensor(0.5),
                       backend=BACKEND).sample(seed=0).item() > 4e17


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_student_t_draws_past_the_float_range_are_held_at_its_ends(dtype) -> None:
    # SciPy's t overflows to +-inf at small df: about half the draws at df = 1e-3.
    x = ps.StudentT(torch.tensor(1e-3, dtype=dtype), backend=BACKEND).sample((1000,), seed=0)
    big = torch.finfo(dtype).max
    assert torch.isfinite(x).all()
    assert (x == big).any() and (x == -big).any()


def _leaves(params: dict) -> dict[str, torch.Tensor]:
    out = {}
    for name, value in params.items():
        if isinstance(value, torch.Tensor) and value.is_floating_point():
            params[name] = out[name] = value.detach().clone().requires_grad_(True)
    return out


@pytest.mark.parametrize("family", sorted(SCORES))
def test_log_prob_and_its_gradients_equal_torchs(family: str) -> None:
    """SciPy's density, and the derivatives written in scores.py, against torch's autograd of
    torch's log_prob (polysample's torch backend: torch.distributions with its mended defects):
    in the value and in every floating parameter, including those the suite's gradcheck leaves
    out (scale_tril, probs, total_count)."""
    params = example_params(family, (2,), torch.float64)
    leaves = _leaves(params)
    reference = getattr(ps, family)(**params, backend="torch")
    value = reference.sample((3,), seed=0)
    continuous = ps.plugin.FAMILIES[family].kind == "continuous"
    if continuous:
        value.requires_grad_(True)
        leaves = {**leaves, "value": value}
    ours = getattr(ps, family)(**params, backend=BACKEND).log_prob(value)
    theirs = reference.log_prob(value)
    # rtol: torch's log I0 (VonMises) is a polynomial approximation good to about 1e-8.
    torch.testing.assert_close(ours, theirs, rtol=1e-7, atol=1e-10)
    names = list(leaves)
    got = torch.autograd.grad(ours.sum(), [leaves[k] for k in names], allow_unused=True)
    want = torch.autograd.grad(theirs.sum(), [leaves[k] for k in names], allow_unused=True)
    for name, g, w in zip(names, got, want):
        w = torch.zeros_like(leaves[name]) if w is None else w
        assert g is not None, f"no gradient to {name}"
        if name == "scale_tril":
            # Only the lower triangle is a parameter. torch's Wishart (cholesky_solve) also
            # returns a gradient above the diagonal, which the density does not depend on.
            assert not g.triu(1).any()
            g, w = g.tril(), w.tril()
        torch.testing.assert_close(g, w, rtol=1e-6, atol=1e-8, msg=f"d log_prob / d {name}")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_probability_families_given_large_logits_score_exactly(dtype):
    # SciPy's logpmf takes probabilities, which round to 1.0 for logits of 17 in float32:
    # these families are scored by torch, from the logits (-17, gradient -1; it was -inf, NaN).
    assert not {"Bernoulli", "Binomial", "Geometric", "NegativeBinomial", "Categorical",
                "OneHotCategorical", "Multinomial"} & set(SCORES)
    logits = torch.tensor(17.0, dtype=dtype, requires_grad=True)
    lp = ps.Bernoulli(logits=logits, backend=BACKEND).log_prob(torch.tensor(0.0, dtype=dtype))
    lp.backward()
    assert lp.item() == pytest.approx(-17.0, rel=1e-6) and logits.grad.item() == pytest.approx(-1.0)
    cat = ps.Categorical(logits=torch.tensor([0.0, -100.0, 100.0], dtype=dtype), backend=BACKEND)
    assert cat.log_prob(torch.tensor(1)).item() == pytest.approx(-200.0, rel=1e-6)


def _hessian_vector_product(lp: torch.Tensor, leaves: dict[str, torch.Tensor],
                            weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    names = list(leaves)
    grads = torch.autograd.grad(lp.sum(), [leaves[k] for k in names], create_graph=True,
                                allow_unused=True)  # torch's Uniform: none to the value
    total = sum((g * weights[k]).sum() for k, g in zip(names, grads) if g is not None)
    assert isinstance(total, torch.Tensor) and total.requires_grad, "a gradient without a graph"
    second = torch.autograd.grad(total, [leaves[k] for k in names], allow_unused=True)
    return {k: torch.zeros_like(leaves[k]) if h is None else h for k, h in zip(names, second)}


@pytest.mark.parametrize("family", sorted(SCORES))
def test_log_prob_second_derivatives_equal_torchs(family: str) -> None:
    """log_prob's backward is itself differentiable: a Hessian-vector product in the value and
    every floating parameter equals torch's. (Its backward was once_differentiable, so second
    derivatives were silently 0: the Hessian of Normal(loc, 1).log_prob of two values in loc
    was 0, where it is -2.)"""
    params = example_params(family, (2,), torch.float64)
    leaves = _leaves(params)
    reference = getattr(ps, family)(**params, backend="torch")
    value = reference.sample((3,), seed=0)
    if ps.plugin.FAMILIES[family].kind == "continuous":
        leaves = {**leaves, "value": value.requires_grad_(True)}
    gen = torch.Generator().manual_seed(0)
    # Only the lower triangle of scale_tril is a parameter (see the first-order test above).
    weights = {k: torch.rand(t.shape, generator=gen, dtype=t.dtype) for k, t in leaves.items()}
    if "scale_tril" in weights:
        weights["scale_tril"] = weights["scale_tril"].tril()
    got = _hessian_vector_product(getattr(ps, family)(**params, backend=BACKEND).log_prob(value),
                                  leaves, weights)
    want = _hessian_vector_product(reference.log_prob(value), leaves, weights)
    for name in leaves:
        g, w = got[name], want[name]
        if name == "scale_tril":
            g, w = g.tril(), w.tril()
        # rtol: torch's log I0 (VonMises) is a polynomial approximation
        torch.testing.assert_close(g, w, rtol=1e-5, atol=1e-8, msg=f"Hessian-vector, {name}")


def test_the_hessian_of_log_prob_is_not_silently_zero() -> None:
    # The instance the hostile-input trial quoted (it gave 0), and the Hessian in the value.
    hessian = torch.autograd.functional.hessian
    x = torch.tensor([0.1, 0.7])
    h = hessian(lambda loc: ps.Normal(loc, 1.0, backend=BACKEND).log_prob(x).sum(),
                torch.tensor(1.5))
    assert h.item() == pytest.approx(-2.0)
    h = hessian(lambda v: ps.Normal(0.0, 2.0, backend=BACKEND).log_prob(v).sum(), x)
    torch.testing.assert_close(h, -0.25 * torch.eye(2))


#: (family, parameters) at small Gamma shapes, where SciPy's samplers divide Gamma draws that
#: underflow: FisherSnedecor(1e-3, 1e-3) was 47% NaN (sample) and 50% exactly 1 (rsample),
#: float32 StudentT(1e-3).rsample() held none of its draws at the largest float (the torch
#: backend: 91%), InverseGamma(1e-3, 1e-10) none either (89%).
SMALL_SHAPES = [
    ("FisherSnedecor", {"df1": 1e-3, "df2": 1e-3}),
    ("FisherSnedecor", {"df1": 1e-10, "df2": 1e-10}),
    ("FisherSnedecor", {"df1": 1e-2, "df2": 5.0}),
    ("StudentT", {"df": 1e-3}),
    ("StudentT", {"df": 1e-10, "loc": 1.0, "scale": 1e-3}),
    ("InverseGamma", {"concentration": 1e-3, "rate": 1e-10}),
    ("InverseGamma", {"concentration": 1e-10, "rate": 1.0}),
]


@pytest.mark.parametrize("method", ["sample", "rsample"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(("family", "values"), SMALL_SHAPES)
def test_ratio_families_at_small_shapes_draw_the_law(family, values, dtype, method) -> None:
    """Finite draws whose share held at the largest float (the law's mass beyond it) agrees
    with the torch backend's (log space there too); no FisherSnedecor draw is exactly 1."""
    params = {k: torch.tensor(v, dtype=dtype, requires_grad=True) for k, v in values.items()}
    n = 4000
    x = getattr(getattr(ps, family)(**params, backend=BACKEND), method)((n,), seed=1)
    ref = getattr(ps, family)(**params, backend="torch").sample((n,), seed=1)
    big = torch.finfo(dtype).max
    assert torch.isfinite(x).all(), f"{int((~torch.isfinite(x)).sum())} of {n} not finite"
    # torch holds them 1% below the largest float
    share = (x.abs() >= 0.98 * big).double().mean().item()
    want = (ref.abs() >= 0.98 * big).double().mean().item()
    assert share == pytest.approx(want, abs=0.04)
    if family != "StudentT":
        assert (x > 0).all()
    if family == "FisherSnedecor":
        assert not (x == 1).any()
    if method == "rsample":
        # Per draw (one parameter copy each): infinite where the derivative leaves the float
        # range (their sum is on torch too), never NaN (FisherSnedecor's was NaN for 7 of 4000
        # draws at 1e-3: inf - inf in autograd's chain).
        copies = {k: t.detach().expand(n).clone().requires_grad_(True) for k, t in params.items()}
        getattr(ps, family)(**copies, backend=BACKEND).rsample(seed=1).sum().backward()
        for name, t in copies.items():
            assert not t.grad.isnan().any(), f"NaN gradients to {name}"


@pytest.mark.parametrize("method", ["sample", "rsample"])
@pytest.mark.parametrize("df", [1.05, 1.5, 3.0001])
def test_singular_wishart_draws_are_redrawn(df, method) -> None:
    # As torch, numpy and tfp do: SciPy's float32 draws of Wishart(1.05, I_2) failed torch's
    # positive-definite check in 31% of draws, 0.5% at 1.5.
    k = 3 if df > 3 else 2
    dof = torch.tensor(df, requires_grad=True)
    d = ps.Wishart(dof, scale_tril=torch.eye(k), backend=BACKEND)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # none left singular after redraws
        x = getattr(d, method)((2000,), seed=1)
    assert constraints.positive_definite.check(x).all()
    if method == "rsample":
        x.diagonal(dim1=-2, dim2=-1).sum().backward()
        assert torch.isfinite(dof.grad)


def test_wishart_draws_still_singular_after_the_redraws_warn() -> None:
    # scale_tril 1e-200 I: every matrix underflows to 0 (torch's draws alike).
    d = ps.Wishart(torch.tensor(3.0, dtype=torch.float64),
                   scale_tril=1e-200 * torch.eye(2, dtype=torch.float64), backend=BACKEND)
    with pytest.warns(RuntimeWarning, match="2 of 2 Wishart draws are still outside the support"):
        d.sample((2,), seed=0)


#: Parameters at the edges of what torch accepts (zero counts, probabilities 0 and 1, tiny
#: scales): each backend draws them. SciPy refused the first three (nbinom's n = 0; a
#: covariance W W^T + 1e-30 I, or a Wishart scale L L^T = 1e-400 I, that is not positive
#: definite in float64).
EDGES = [
    ("NegativeBinomial", {"total_count": [0.0, 2.0], "probs": 0.5}),
    ("LowRankMultivariateNormal", {"loc": [0.0, 0.0], "cov_factor": [[1.0], [1.0]],
                                   "cov_diag": [1e-30, 1e-30]}),
    ("Wishart", {"df": 3.0, "scale_tril": [[1e-150, 0.0], [0.0, 1e-150]]}),
    ("NegativeBinomial", {"total_count": 3.0, "probs": 0.0}),
    ("Binomial", {"total_count": [0.0, 5.0, 5.0], "probs": [0.5, 0.0, 1.0]}),
    ("Bernoulli", {"probs": [0.0, 1.0]}),
    ("Geometric", {"probs": [1.0, 0.5]}),
    ("Poisson", {"rate": [0.0, 1.0]}),
    ("Multinomial", {"total_count": 0, "probs": [0.5, 0.5]}),
    ("Multinomial", {"total_count": 4, "probs": [0.0, 1.0]}),
    ("Categorical", {"probs": [0.0, 1.0]}),
    ("OneHotCategorical", {"probs": [0.0, 1.0]}),
    ("Normal", {"loc": 0.0, "scale": 1e-300}),
    ("HalfCauchy", {"scale": 1e-30}),
    ("Gamma", {"concentration": 1.0, "rate": 1e30}),
    ("InverseGamma", {"concentration": 1.0, "rate": 1e-300}),
    ("MultivariateNormal", {"loc": [0.0, 0.0], "scale_tril": [[1e-30, 0.0], [0.0, 1e-30]]}),
    ("VonMises", {"loc": 0.0, "concentration": 1e-30}),
    ("Dirichlet", {"concentration": [1e-30, 1e-30]}),
]


@pytest.mark.parametrize(("family", "values"), EDGES, ids=[f for f, _ in EDGES])
def test_parameters_torch_accepts_at_their_edges_are_drawn(family, values) -> None:
    params = {k: torch.tensor(v, dtype=torch.float64) if isinstance(v, (list, float)) else v
              for k, v in values.items()}
    reference = getattr(ps, family)(**params, backend="torch").sample((500,), seed=0)
    d = getattr(ps, family)(**params, backend=BACKEND)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # Wishart: singular, as on torch
        x = d.sample((500,), seed=0)
        if BACKEND.families()[family].rsample:
            assert torch.isfinite(d.rsample((500,), seed=0)).all()
    assert x.shape == reference.shape and torch.isfinite(x).all()
    if family in ("NegativeBinomial", "Binomial", "Multinomial", "Poisson"):
        # the point masses: total_count 0 or probs 0 draw 0, probs 1 draws total_count
        degenerate = reference.double().var(0) == 0
        assert torch.equal(x[:, degenerate], reference[:, degenerate])


META_FAMILIES = {
    "Normal": lambda dev: {"loc": torch.zeros(3, device=dev), "scale": torch.ones(3, device=dev)},
    "Gamma": lambda dev: {"concentration": torch.ones(3, device=dev),
                          "rate": torch.ones(3, device=dev)},
    "Dirichlet": lambda dev: {"concentration": torch.ones(2, 3, device=dev)},
    "MultivariateNormal": lambda dev: {"loc": torch.zeros(2, 3, device=dev),
                                       "scale_tril": torch.eye(3, device=dev).expand(2, 3, 3)},
}


def _outcome(family: str, params: dict, validate: bool, backend: object, value: torch.Tensor
             ) -> tuple[str, tuple[int, ...]]:
    try:
        out = getattr(ps, family)(**params, validate_args=validate, backend=backend).log_prob(value)
    except Exception as exc:  # noqa: BLE001 - compared with the torch backend's
        return type(exc).__name__, ()
    return str(out.device), tuple(out.shape)


@pytest.mark.parametrize(("params_on", "value_on", "validate"), [
    ("meta", "meta", False), ("cpu", "meta", True), ("cpu", "meta", False),
    ("meta", "cpu", False)])
@pytest.mark.parametrize("family", sorted(META_FAMILIES))
def test_meta_tensors_are_scored_as_the_torch_backend_scores_them(family, params_on, value_on,
                                                                 validate) -> None:
    """Meta tensors have no values: log_prob returns torch's meta result or refuses them as the
    torch backend does (InvalidParameterRuntimeError), never with SciPy's errors
    (``Tensor.item() cannot be called on meta tensors``, ``Cannot copy out of meta tensor``)."""
    params = META_FAMILIES[family](params_on)
    shape = getattr(ps, family)(**META_FAMILIES[family]("cpu")).sample((4,)).shape
    value = torch.full(shape, 0.25, device=value_on)
    got = _outcome(family, params, validate, BACKEND, value)
    assert got == _outcome(family, params, validate, "torch", value)
    if params_on == value_on == "meta":
        assert got == ("meta", tuple(shape[:len(shape) - (family in ("Dirichlet",
                                                                      "MultivariateNormal"))]))


def test_meta_parameters_are_refused_at_a_draw() -> None:
    d = ps.Normal(torch.zeros(3, device="meta"), 1.0, validate_args=False, backend=BACKEND)
    with pytest.raises(ps.InvalidParameterRuntimeError, match="meta device"):
        d.sample()


@pytest.mark.parametrize(("family", "params", "value_shape"), [
    ("Normal", {"loc": torch.zeros(3), "scale": torch.ones(())}, (2,)),
    ("Gamma", {"concentration": torch.ones(2, 3), "rate": torch.ones(())}, (4, 2)),
    ("MultivariateNormal", {"loc": torch.zeros(3), "scale_tril": torch.eye(3)}, (2,)),
    ("Dirichlet", {"concentration": torch.ones(2, 3)}, (3, 3)),
])
def test_a_value_that_does_not_broadcast_is_refused_as_torch_refuses_it(family, params,
                                                                         value_shape) -> None:
    # With validate_args=False the core hands the value over: it raised a raw RuntimeError
    # (torch and numpy: InvalidParameterRuntimeError).
    value = torch.full(value_shape, 0.5)
    with pytest.raises(ps.InvalidParameterRuntimeError):
        getattr(ps, family)(**params, validate_args=False, backend="torch").log_prob(value)
    with pytest.raises(ps.InvalidParameterRuntimeError, match=f"Invalid value for {family}"):
        getattr(ps, family)(**params, validate_args=False, backend=BACKEND).log_prob(value)


def test_point_laws_draw_and_score_as_scipys_frozen_laws() -> None:
    # PointLaw calls the generator (stats.dirichlet.rvs(alpha, ...)) instead of freezing a law
    # per batch element: the values and densities must be the frozen law's, bit for bit.
    from polysample_scipy.draws import PointLaw
    from scipy import stats

    alpha = np.array([0.5, 2.0, 3.0])
    tril = np.array([[1.0, 0.0, 0.0], [0.3, 2.0, 0.0], [0.1, -0.2, 0.5]])
    cov = stats.Covariance.from_cholesky(tril)
    cases = [
        (stats.dirichlet(alpha), PointLaw(stats.dirichlet, alpha),
         lambda x: (x / x.sum(-1, keepdims=True)).T),
        (stats.multivariate_normal(np.zeros(3), cov=cov),
         PointLaw(stats.multivariate_normal, np.zeros(3), cov), lambda x: x),
        (stats.wishart(4.5, tril @ tril.T), PointLaw(stats.wishart, 4.5, tril @ tril.T),
         lambda x: np.moveaxis(x, 0, -1)),
    ]
    for frozen, point, layout in cases:
        for size in (7, 1, (2, 3)):
            x = frozen.rvs(size=size, random_state=np.random.default_rng(3))
            y = point.rvs(size=size, random_state=np.random.default_rng(3))
            assert np.array_equal(x, y)
        x = layout(frozen.rvs(size=5, random_state=np.random.default_rng(4)))
        assert np.array_equal(frozen.logpdf(x), point.logpdf(x))
