"""Each case where torch code ported to polysample broke (issue 14), pinned on torch and numpy.

The parametrized contract against torch, family by family, is ``tests/test_torch_compat.py``;
this module keeps one test per reported case, named after the behaviour it restores (the
Wishart support tests run on the tfp backends too).
"""

from __future__ import annotations

import pickle
import warnings
from typing import Any

import numpy as np
import pytest
import torch
import torch.distributions as td

import polysample as ps
from conftest import AVAILABLE

EAGER = ["torch", "numpy"]


# ---------------------------------------------------------------- values torch accepts
@pytest.mark.parametrize("backend", EAGER)
@pytest.mark.parametrize("value", [1, 1.0, np.float64(1.0), torch.tensor(1), torch.tensor(1.0)],
                         ids=["int", "float", "np-float", "int-tensor", "tensor"])
def test_gamma_and_chi2_log_prob_take_what_torch_takes(backend: str, value: Any) -> None:
    # torch.distributions.Gamma converts the value itself (torch.as_tensor(value, rate.dtype)).
    for ours, theirs in [(ps.Gamma(1.0, 1.0, backend=backend), td.Gamma(1.0, 1.0)),
                         (ps.Chi2(3.0, backend=backend), td.Chi2(3.0))]:
        got = ours.log_prob(value)
        torch.testing.assert_close(got, theirs.log_prob(value))


@pytest.mark.parametrize("backend", EAGER)
def test_log_prob_of_a_python_number_without_validation_is_torchs(backend: str) -> None:
    d = ps.Normal(0.5, 2.0, validate_args=False, backend=backend)
    torch.testing.assert_close(d.log_prob(1), td.Normal(0.5, 2.0, validate_args=False).log_prob(1))
    torch.testing.assert_close(d.cdf(1.0), td.Normal(0.5, 2.0, validate_args=False).cdf(1.0))


@pytest.mark.parametrize("backend", EAGER)
@pytest.mark.parametrize("method", ["log_prob", "cdf"])
def test_a_number_torch_refuses_raises_our_error_that_is_torchs_value_error(
        backend: str, method: str) -> None:
    with pytest.raises(ValueError, match="must be a Tensor"):
        getattr(td.Normal(0.0, 1.0), method)(0.3)
    with pytest.raises(ps.InvalidParameterError, match="Expected value to be a torch.Tensor"):
        getattr(ps.Normal(0.0, 1.0, backend=backend), method)(0.3)


@pytest.mark.parametrize("backend", EAGER)
def test_icdf_of_a_number_raises_our_error_that_is_torchs_type_error(backend: str) -> None:
    with pytest.raises(TypeError):
        td.Normal(0.0, 1.0).icdf(0.3)
    with pytest.raises(ps.InvalidParameterTypeError) as info:
        ps.Normal(0.0, 1.0, backend=backend).icdf(0.3)
    assert isinstance(info.value, TypeError) and isinstance(info.value, ValueError)


@pytest.mark.parametrize("backend", EAGER)
def test_cdf_outside_the_support_raises_our_value_error(backend: str) -> None:
    with pytest.raises(ps.InvalidParameterError, match="Invalid value for Exponential.cdf"):
        ps.Exponential(1.0, backend=backend).cdf(torch.tensor(-1.0))


def test_cdf_that_torch_lacks_stays_not_implemented() -> None:
    with pytest.raises(NotImplementedError) as info:
        ps.Beta(2.0, 2.0).cdf(torch.tensor(0.5))
    assert not isinstance(info.value, ps.PolysampleError)


# ---------------------------------------------------------------- dtypes of draws
@pytest.mark.parametrize("backend", EAGER)
def test_wishart_with_an_integer_df_draws_torchs_default_dtype(backend: str) -> None:
    torch_value = td.Wishart(torch.tensor(1), torch.tensor([[1.0]])).sample()
    d = ps.Wishart(torch.tensor(1), torch.tensor([[1.0]]), backend=backend)
    assert d.sample().dtype == torch_value.dtype == torch.float32
    assert d.sample((3,), seed=1).shape == (3, 1, 1)


@pytest.mark.parametrize("backend", EAGER)
@pytest.mark.parametrize("family,args", [
    ("LKJCholesky", (3, torch.tensor(2))),
    ("Gamma", (torch.tensor(2.0), torch.tensor(3))),
    ("FisherSnedecor", (torch.tensor(3), torch.tensor(4.0))),
    ("StudentT", (torch.tensor(3), torch.tensor(0.0), torch.tensor(1.0))),
], ids=["LKJCholesky-int-concentration", "Gamma-int-rate", "FisherSnedecor-int-df1",
        "StudentT-int-df"])
def test_integer_tensor_parameters_draw_the_floating_dtype(
        backend: str, family: str, args: tuple[Any, ...]) -> None:
    if family not in ps.load_backend(backend).families():
        pytest.skip(f"{backend} has no {family}")
    d = getattr(ps, family)(*args, backend=backend)
    assert d.sample((2,), seed=0).dtype == torch.float32


@pytest.mark.parametrize("backend", EAGER)
@pytest.mark.parametrize("family,kwargs", [
    ("RelaxedBernoulli", dict(probs=0.3)),
    ("RelaxedOneHotCategorical", dict(probs=torch.tensor([0.2, 0.3, 0.5]))),
])
def test_python_float_temperature_draws(backend: str, family: str, kwargs: dict) -> None:
    reference = getattr(td, family)(0.5, **kwargs)
    d = getattr(ps, family)(0.5, **kwargs, backend=backend)
    assert d.temperature == reference.temperature == 0.5  # still torch's attribute
    x = d.rsample((4,), seed=2)
    assert x.shape == reference.rsample((4,)).shape and x.dtype == torch.float32
    # torch's own log_prob fails on a float temperature (temperature.log(), full_like): the
    # fix in polysample.core.torch_fixes scores with the temperature as a tensor.
    with pytest.raises((AttributeError, TypeError)):
        reference.log_prob(x)
    tensor_t = getattr(td, family)(torch.tensor(0.5), **kwargs)
    torch.testing.assert_close(d.log_prob(x), tensor_t.log_prob(x))
    assert d.temperature == 0.5


# ---------------------------------------------------------------- errors torch code catches
@pytest.mark.parametrize("backend", EAGER)
def test_unbroadcastable_parameters_are_caught_as_torchs_runtime_error(backend: str) -> None:
    with pytest.raises(RuntimeError):
        td.Normal(torch.zeros(2), torch.ones(3))
    with pytest.raises(RuntimeError) as info:
        ps.Normal(torch.zeros(2), torch.ones(3), backend=backend)
    assert isinstance(info.value, ps.InvalidParameterRuntimeError)
    assert isinstance(info.value, ValueError)  # still the documented InvalidParameterError
    assert "Expected" in str(info.value) and "Received" in str(info.value)


def test_out_of_constraint_parameters_stay_value_errors_only() -> None:
    with pytest.raises(ps.InvalidParameterError) as info:
        ps.Normal(0.0, -1.0)
    assert type(info.value) is ps.InvalidParameterError
    assert not isinstance(info.value, RuntimeError | TypeError)


def test_a_parameter_torch_refuses_with_type_error_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        td.ContinuousBernoulli(probs=torch.tensor(1))  # torch.finfo of an integer tensor
    with pytest.raises(ps.InvalidParameterTypeError):
        ps.ContinuousBernoulli(probs=torch.tensor(1))


@pytest.mark.parametrize("shape,torch_error", [((-1,), RuntimeError), ((2.5,), TypeError),
                                               ("10", TypeError), (None, TypeError)])
def test_bad_sample_shapes_are_torchs_error_classes(shape: Any, torch_error: type) -> None:
    with pytest.raises(torch_error):
        td.Normal(0.0, 1.0).sample(shape)
    with pytest.raises(torch_error) as info:
        ps.Normal(0.0, 1.0).sample(shape)
    assert isinstance(info.value, ps.InvalidParameterError)


def test_mismatched_multivariate_normal_loc_is_a_runtime_error_as_in_torch() -> None:
    with pytest.raises(RuntimeError):  # torch fails later, inside sample()
        td.MultivariateNormal(torch.zeros(3), scale_tril=torch.eye(2)).sample()
    with pytest.raises(ps.InvalidParameterRuntimeError):
        ps.MultivariateNormal(torch.zeros(3), scale_tril=torch.eye(2))


# ---------------------------------------------------------------- class hierarchy
@pytest.mark.parametrize("child,parent", [
    ("Chi2", "Gamma"), ("OneHotCategoricalStraightThrough", "OneHotCategorical"),
    ("LogNormal", "TransformedDistribution"), ("RelaxedBernoulli", "TransformedDistribution"),
    ("HalfNormal", "TransformedDistribution"), ("Gumbel", "TransformedDistribution"),
])
def test_polysample_classes_keep_torchs_inheritance(child: str, parent: str) -> None:
    assert issubclass(getattr(td, child), getattr(td, parent))
    assert issubclass(getattr(ps, child), getattr(ps, parent))
    assert issubclass(getattr(ps, child), getattr(td, child))


@pytest.mark.parametrize("backend", EAGER)
def test_chi2_draws_as_chi2_not_gamma(backend: str) -> None:
    d = ps.Chi2(torch.tensor([4.0, 9.0]), backend=backend)
    assert isinstance(d, ps.Gamma) and d._ps_family == "Chi2"
    x = d.sample((20_000,), seed=3)
    torch.testing.assert_close(x.mean(0), torch.tensor([4.0, 9.0]), rtol=0.05, atol=0)


@pytest.mark.parametrize("backend", EAGER)
def test_lognormal_draws_through_the_backend_and_keeps_torch_internals(
        backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    d = ps.LogNormal(torch.zeros(2), 1.0, backend=backend)
    assert isinstance(d, ps.TransformedDistribution)
    assert type(d.base_dist) is td.Normal  # not wrapped into a polysample Normal
    calls: list[str] = []
    b = ps.load_backend(backend)
    original = type(b).sample

    def spy(self: Any, family: str, *args: Any, **kwargs: Any) -> torch.Tensor:
        calls.append(family)
        return original(self, family, *args, **kwargs)

    monkeypatch.setattr(type(b), "sample", spy)
    d.sample((3,))
    assert calls == ["LogNormal"]


@pytest.mark.parametrize("backend", EAGER)
def test_straight_through_mode_and_rsample_through_the_subclass(backend: str) -> None:
    probs = torch.tensor([0.2, 0.8], requires_grad=True)
    d = ps.OneHotCategoricalStraightThrough(probs, backend=backend)
    assert isinstance(d, ps.OneHotCategorical)
    torch.testing.assert_close(d.mode, td.OneHotCategoricalStraightThrough(probs).mode)
    d.rsample((5,), seed=1).sum().backward()
    assert probs.grad is not None


@pytest.mark.parametrize("family,args", [
    ("LogNormal", (torch.zeros(2), 1.0)), ("Chi2", (torch.tensor([2.0, 3.0]),)),
    ("OneHotCategoricalStraightThrough", (torch.tensor([0.2, 0.8]),)),
    ("RelaxedBernoulli", (0.5, torch.tensor([0.3, 0.6]))),
])
def test_subclassed_families_expand_pickle_wrap_and_repr(family: str, args: tuple) -> None:
    d = getattr(ps, family)(*args, backend="numpy")
    e = d.expand((3,) + tuple(d.batch_shape))
    assert type(e) is type(d) and e.backend == "numpy"
    assert e.sample(seed=0).shape == (3,) + tuple(d.batch_shape + d.event_shape)
    back = pickle.loads(pickle.dumps(d))
    assert type(back) is type(d) and back.backend == "numpy"
    w = ps.wrap(getattr(td, family)(*args), backend="numpy")
    assert type(w) is type(d) and w.backend == "numpy"
    if isinstance(w, td.TransformedDistribution):
        assert not isinstance(w.base_dist, ps.core.distributions.PolysampleDistribution)
    assert repr(d).startswith(f"{family}(") and "backend: 'numpy'" in repr(d)
    assert "(, " not in repr(d)


def test_kl_divergence_dispatches_on_the_subclasses() -> None:
    torch.testing.assert_close(td.kl_divergence(ps.Chi2(2.0), ps.Chi2(3.0)),
                               td.kl_divergence(td.Chi2(2.0), td.Chi2(3.0)))


# ---------------------------------------------------------------- has_rsample
@pytest.mark.parametrize("name", [*sorted(ps.core.distributions.CLASSES)])
def test_class_level_has_rsample_is_torchs(name: str) -> None:
    ours, theirs = getattr(ps, name).has_rsample, getattr(td, name).has_rsample
    assert ours is theirs or ours == theirs


def test_instance_has_rsample_still_asks_the_backend() -> None:
    assert ps.Bernoulli.has_rsample is False
    assert ps.Bernoulli(0.3).has_rsample is False
    assert ps.Normal(0.0, 1.0, backend="numpy").has_rsample is True
    with pytest.raises(AttributeError):
        ps.Normal(0.0, 1.0).has_rsample = False  # type: ignore[misc]


# ---------------------------------------------------------------- tracing
def _trace(fn: Any, *inputs: torch.Tensor) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        return torch.jit.trace(fn, inputs, check_trace=False)


def test_torch_backend_draws_trace_as_torch_ops() -> None:
    traced = _trace(lambda loc: ps.Normal(loc, 1.0, backend="torch").rsample((4,)),
                    torch.zeros(2))
    a, b = traced(torch.zeros(2)), traced(torch.zeros(2))
    assert a.shape == (4, 2) and not torch.equal(a, b)  # the draw is not baked in


@pytest.mark.parametrize("method", ["sample", "rsample"])
@pytest.mark.parametrize("how", ["seed", "generator"])
def test_seeded_torch_draws_refuse_to_be_traced(method: str, how: str) -> None:
    # An outside trial: a trace records torch's random ops, not the generator made from the
    # seed, so each traced call drew other values, none of them the seed's, silently.
    kw: dict[str, Any] = {"seed": 1} if how == "seed" else {"generator": torch.Generator()}
    with pytest.raises(ps.NotTraceableError, match=f"with {how}=.*Received: {how}="):
        _trace(lambda loc: getattr(ps.Normal(loc, 1.0, backend="torch"), method)((4,), **kw),
               torch.zeros(2))
    # outside a trace the seed is honoured as ever
    d = ps.Normal(torch.zeros(2), 1.0, backend="torch")
    assert torch.equal(d.sample((4,), seed=1), d.sample((4,), seed=1))


@pytest.mark.parametrize("method", ["sample", "rsample"])
def test_numpy_draws_refuse_to_be_traced(method: str) -> None:
    with pytest.raises(ps.NotTraceableError, match="backend 'numpy'.*backend='torch'"):
        _trace(lambda loc: getattr(ps.Normal(loc, 1.0, backend="numpy"), method)((4,)),
               torch.zeros(2))


def test_log_prob_scored_by_torch_traces_on_every_eager_backend() -> None:
    # numpy leaves log_prob to torch (FamilySupport.log_prob is False): it traces.
    traced = _trace(lambda x: ps.Gamma(2.0, 1.0, backend="numpy").log_prob(x), torch.ones(2))
    torch.testing.assert_close(traced(torch.full((2,), 2.0)), td.Gamma(2.0, 1.0).log_prob(
        torch.full((2,), 2.0)))


def test_a_backend_scoring_outside_torch_refuses_to_trace_log_prob() -> None:
    class Outside(ps.Backend):
        name = "outside-test"

        def families(self) -> Any:
            return {"Normal": ps.FamilySupport(log_prob=True)}

        def log_prob(self, family: str, params: Any, value: torch.Tensor) -> torch.Tensor:
            return torch.from_numpy(np.zeros(value.shape, dtype=np.float32))

    with pytest.raises(ps.NotTraceableError, match="log_prob"):
        _trace(lambda x: ps.Normal(0.0, 1.0, backend=Outside()).log_prob(x), torch.ones(2))


def test_traceable_is_declared_by_the_backend() -> None:
    assert ps.Backend.traceable is False
    assert ps.load_backend("torch").traceable is True
    assert ps.load_backend("numpy").traceable is False


# ---------------------------------------------------------------- numpy Beta / Dirichlet
def _scipy_beta_dx(x: np.ndarray, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(dx/da, dx/db)`` at ``x`` from SciPy's incomplete beta (central differences)."""
    sp = pytest.importorskip("scipy.special")
    st = pytest.importorskip("scipy.stats")
    ea, eb = 3e-5 * a / (1 + np.sqrt(a)), 3e-5 * b / (1 + np.sqrt(b))
    pdf = st.beta.pdf(x, a, b)
    lower = x < a / (a + b)

    def d(fp: np.ndarray, fm: np.ndarray, gp: np.ndarray, gm: np.ndarray, e: np.ndarray) -> Any:
        return np.where(lower, fp - fm, gm - gp) / (2 * e)

    da = d(sp.betainc(a + ea, b, x), sp.betainc(a - ea, b, x),
           sp.betaincc(a + ea, b, x), sp.betaincc(a - ea, b, x), ea)
    db = d(sp.betainc(a, b + eb, x), sp.betainc(a, b - eb, x),
           sp.betaincc(a, b + eb, x), sp.betaincc(a, b - eb, x), eb)
    return -da / pdf, -db / pdf


def _max_rel_err(got: np.ndarray, ref: np.ndarray) -> float:
    ok = np.isfinite(ref) & (ref != 0)
    return float(np.max(np.abs(got[ok] - ref[ok]) / np.abs(ref[ok])))


@pytest.mark.parametrize("a,b", [(0.01, 0.01), (2.0, 0.01), (0.5, 0.05)])
def test_numpy_float32_beta_gradient_is_exact_at_the_returned_value(a: float, b: float) -> None:
    ca = torch.full((2000,), a, requires_grad=True)
    cb = torch.full((2000,), b, requires_grad=True)
    x = ps.Beta(ca, cb, backend="numpy").rsample(seed=0)
    x.sum().backward()
    assert ca.grad is not None and cb.grad is not None
    clamped = x.detach() == 1 - 2.0**-24
    assert clamped.any()  # the case reported: those had a gradient of exactly 0
    assert (ca.grad != 0).all() and torch.isfinite(ca.grad).all()
    ref_a, ref_b = _scipy_beta_dx(x.detach().double().numpy(), np.full(2000, a), np.full(2000, b))
    assert _max_rel_err(ca.grad.double().numpy(), ref_a) < 1e-5
    assert _max_rel_err(cb.grad.double().numpy(), ref_b) < 1e-5


def test_numpy_beta_gradient_at_the_clamp_point_matches_torchs() -> None:
    # torch's own sampler clamps to the same point and differentiates there (2.98e-4).
    ca = torch.full((2000,), 0.01, requires_grad=True)
    x = ps.Beta(ca, torch.full((2000,), 0.01), backend="numpy").rsample(seed=0)
    x.sum().backward()
    assert ca.grad is not None
    at_clamp = ca.grad[x.detach() == 1 - 2.0**-24]
    torch.testing.assert_close(at_clamp, torch.full_like(at_clamp, 2.98e-4), rtol=1e-2, atol=0)


def test_numpy_float32_dirichlet_gradient_is_exact_at_the_returned_value() -> None:
    alpha = torch.tensor([[0.01, 0.5, 3.0]] * 1000, requires_grad=True)
    x = ps.Dirichlet(alpha, backend="numpy").rsample(seed=1)
    xs = x.detach().double().numpy()
    al = alpha.detach().double().numpy()
    for i in range(3):
        alpha.grad = None
        x[:, i].sum().backward(retain_graph=True)
        assert alpha.grad is not None
        ref, _ = _scipy_beta_dx(xs[:, i], al[:, i], al.sum(1) - al[:, i])
        assert _max_rel_err(alpha.grad[:, i].double().numpy(), ref) < 1e-4


# ---------------------------------------------------------------- Wishart support
def _available(backend: str) -> Any:
    return pytest.mark.skipif(backend not in AVAILABLE,
                              reason=f"backend {backend!r} is not available here")


#: Every built-in backend that loads here holds its Wishart draws to the support. TFP compiles
#: a program per shape and dtype (about a second each), so it is checked in float32 only (the
#: redraws are the same code in either dtype), on draws that fit a bucketed program.
WISHART_BACKENDS = [pytest.param(b, marks=_available(b)) for b in ("torch", "numpy", "tfp",
                                                                     "tfp-tf")]
WISHART_CASES = [pytest.param(b, dtype, n, id=f"{b}-{tag}", marks=_available(b))
                 for b, n in (("torch", 3000), ("numpy", 3000), ("tfp", 200), ("tfp-tf", 200))
                 for dtype, tag in ((torch.float32, "f32"), (torch.float64, "f64"))
                 if n == 3000 or dtype == torch.float32]


@pytest.mark.parametrize("backend,dtype,n", WISHART_CASES)
def test_wishart_near_the_df_edge_stays_in_the_support(backend: str, dtype: torch.dtype,
                                                       n: int) -> None:
    # df in (p - 1, p): torch's own Bartlett sampler leaves about 1% to 12% of these draws
    # outside the support (not positive definite), TFP's as many (float32, df = 2.2: 12%, so
    # about 25 of TFP's 200 draws); every backend redraws them, silently.
    scale = torch.tensor([[2.0, 0.5, 0.1], [0.5, 1.0, 0.3], [0.1, 0.3, 0.5]], dtype=dtype)
    with warnings.catch_warnings():  # torch's constructor warns about the low df itself
        warnings.simplefilter("ignore")
        d = ps.Wishart(torch.tensor([2.2, 2.6], dtype=dtype), covariance_matrix=scale,
                       backend=backend)
    with warnings.catch_warnings():
        # no RuntimeWarning: none is left outside after the redraws (the first TFP draw may
        # import its substrate, whose own modules warn otherwise)
        warnings.simplefilter("error", RuntimeWarning)
        x = d.sample((n,), seed=4)
    assert bool(d.support.check(x).all())
    assert torch.equal(x, d.sample((n,), seed=4))  # the redraws are seeded too


@pytest.mark.parametrize("backend", WISHART_BACKENDS)
def test_wishart_rsample_redraws_keep_gradients(backend: str) -> None:
    df = torch.tensor(2.2, requires_grad=True)
    # 200 draws: a bucketed program on TFP (about 26 of them fall outside before redraws)
    x = ps.Wishart(df, torch.eye(3), backend=backend).rsample((200,), seed=4)
    assert bool(td.constraints.positive_definite.check(x.detach()).all())
    x.diagonal(dim1=-2, dim2=-1).sum().backward()
    # E[trace W] = 3 df: d/d(df) of the sum of 200 traces is about 600
    assert df.grad is not None and 450 < float(df.grad) < 750


# ---------------------------------------------------------------- constructors torch refuses
#: (family, args, kwargs): arguments torch.distributions' constructor refuses, with unnormalized
#: (valid) probs beside the real fault (an outside trial, 2026-12-07).
REFUSED = [
    ("Multinomial", (torch.tensor(3.0), torch.ones(3)), {}),
    ("Multinomial", (torch.tensor([3, 4]), torch.ones(2, 3) / 3), {}),
    ("Multinomial", (torch.tensor(3.0), torch.tensor([1.0, float("nan"), 1.0])), {}),
    ("Categorical", (), {"probs": torch.ones(3), "logits": torch.zeros(3)}),
    ("OneHotCategorical", (), {"probs": torch.ones(3), "logits": torch.zeros(3)}),
    ("Multinomial", (3,), {"probs": torch.ones(3), "logits": torch.zeros(3)}),
]


@pytest.mark.parametrize("family,args,kwargs", REFUSED,
                         ids=["tensor-count", "count-per-row", "tensor-count-nan-probs",
                              "Categorical-both", "OneHot-both", "Multinomial-both"])
def test_a_refused_constructor_raises_torchs_class_and_blames_no_valid_probs(
        family: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    with pytest.raises(Exception) as theirs:
        getattr(td, family)(*args, **kwargs)
    with pytest.raises(ps.PolysampleError) as ours:
        getattr(ps, family)(*args, **kwargs)
    # except clauses written for torch keep catching it
    assert isinstance(ours.value, type(theirs.value)), (type(theirs.value), type(ours.value))
    text = str(ours.value)
    # torch normalizes probs: non-negative probs that do not sum to 1 are valid
    assert "probs (Simplex())" not in text or "nan" in repr(args), text
    assert "float16" not in text and "Pass float32" not in text, text
    if "nan" in repr(args):  # invalid too: the invalid parameter is reported, torch's class
        assert isinstance(ours.value, ps.InvalidParameterNotImplementedError), type(ours.value)
        assert "non-finite: probs" in text, text
    elif isinstance(theirs.value, NotImplementedError):
        assert isinstance(ours.value, ps.UnsupportedFamilyError)
        assert "total_count to be an int" in text, text


def test_unnormalized_or_negative_probs_are_told_apart_in_a_constructor_error() -> None:
    # a negative entry is outside the simplex after torch's normalization too
    with pytest.raises(ps.InvalidParameterError, match=r"outside their constraints: probs"):
        ps.Categorical(probs=torch.tensor([1.0, -1.0, 2.0]), logits=torch.zeros(3))
