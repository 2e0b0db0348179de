"""torch's public API contract, run against polysample's classes on every backend.

Code written for ``torch.distributions`` must run unchanged with ``polysample`` classes, apart
from the random values. For every family (``polysample.core.families.FAMILIES``) and every
backend that loads and claims it, this module builds the polysample object and the torch
object from the same parameters (``polysample.conformance.grids.example_params``) and asserts
torch's results wherever they do not depend on the random stream: constructors (tensors, 0-d
tensors, Python numbers), ``mean``/``mode``/``variance``/``stddev``/``entropy``/``support``/
``enumerate_support``, ``log_prob``/``cdf``/``icdf`` of fixed values, ``expand``, shapes and
dtypes of draws, the error classes and when they are raised, ``isinstance`` relations,
class-level attributes, and batched gradchecks of ``log_prob``.

Where torch raises, polysample must raise an instance of the same class (and, for a refused
input, a ``PolysampleError`` too); where torch returns, polysample must return the same value.

Backends that compile their programs (``tfp``, ``tfp-tf``: 1-5 s per family, shape and dtype
on this machine) run only the checks that never reach the backend: constructors, properties,
``cdf``/``icdf``, ``expand``, validation errors raised before the backend is called,
class relations. ``log_prob`` values, value forms, gradchecks, draws and instance-level
``has_rsample`` run on the eager backends (torch, numpy).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import torch
import torch.distributions as td

import polysample as ps
from conftest import CDF_FIXED, EAGER_BACKENDS, LOG_PROB_FIXED, family_cases
from polysample.conformance.grids import example_params
from polysample.core.distributions import CLASSES, PolysampleDistribution
from polysample.core.families import FAMILIES
from polysample.core.torch_fixes import FIXES

ALL = family_cases()
EAGER = [c for c in ALL if c.values[0] in EAGER_BACKENDS]  # type: ignore[attr-defined]

#: Properties of torch's public API that do not depend on the random stream.
PROPERTIES = ("batch_shape", "event_shape", "mean", "mode", "variance", "stddev")


@pytest.fixture(autouse=True)
def _quiet() -> Iterator[None]:
    # torch warns about its own choices (Wishart's low df, validation of LKJCholesky, ...):
    # the warnings are torch's, for both objects alike; they are not what is compared here.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


# ---------------------------------------------------------------- helpers
def _params(family: str, batch_shape: tuple[int, ...] = (2,),
            dtype: torch.dtype = torch.float64) -> dict[str, Any]:
    return example_params(family, batch_shape, dtype)


def _pair(family: str, backend: str, params: dict[str, Any],
          **kwargs: Any) -> tuple[Any, td.Distribution]:
    ours = getattr(ps, family)(**params, backend=backend, **kwargs)
    theirs = getattr(td, family)(**params, **kwargs)
    return ours, theirs


def _outcome(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[str, Any]:
    """``("ok", fn(*args, **kwargs))``, or ``("raise", the exception)``."""
    try:
        return "ok", fn(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001 - the outcome is what is compared
        return "raise", exc


def _call(obj: Any, method: str, *args: Any) -> Any:
    return getattr(obj, method)(*args)




def _assert_same(ours: tuple[str, Any], theirs: tuple[str, Any], what: str,
                 refused_input: bool = True) -> None:
    """polysample's outcome is torch's: the same value, or an error of torch's class.

    A family whose torch defects polysample mends (``polysample.core.torch_fixes.FIXES``,
    each tested in ``tests/test_torch_fixes.py``) may return where torch raises.
    """
    kind, value = theirs
    if kind == "raise" and ours[0] == "ok" and what.split(".")[0].split("(")[0] in FIXES:
        return
    if kind == "raise" and isinstance(value, AttributeError):
        # torch crashes calling a tensor method on a Python number (LogNormal.log_prob(1.0)):
        # polysample refuses the number with InvalidParameterTypeError (by design, documented
        # in docs/errors.md), a TypeError and a ValueError rather than an AttributeError.
        assert ours[0] == "raise" and isinstance(ours[1], ps.InvalidParameterTypeError), ours
        return
    if kind == "raise":
        assert ours[0] == "raise", f"{what}: torch raises {value!r}; polysample returned {ours[1]!r}"
        assert isinstance(ours[1], type(value)), (
            f"{what}: torch raises {type(value).__name__}; polysample raises "
            f"{type(ours[1]).__mro__}: except {type(value).__name__} would not catch it")
        if refused_input and not isinstance(value, NotImplementedError):
            assert isinstance(ours[1], ps.PolysampleError), f"{what}: raw {ours[1]!r}"
        return
    assert ours[0] == "ok", f"{what}: torch returns {value!r}; polysample raises {ours[1]!r}"
    family, _, method = what.partition(".")
    if family in CDF_FIXED and method.startswith(("cdf", "icdf")):
        # polysample's cdf and icdf exact through probs = 1/2 (torch_fixes, finding F14):
        # torch's values to rounding away from 1/2.
        assert isinstance(ours[1], torch.Tensor) and ours[1].dtype == value.dtype, what
        torch.testing.assert_close(ours[1], value, rtol=1e-5, atol=1e-6, equal_nan=True,
                                   msg=what)
        return
    if family in LOG_PROB_FIXED and method.startswith("log_prob"):
        # polysample's log_prob in log space (torch_fixes): torch's density to rounding.
        assert isinstance(ours[1], torch.Tensor) and ours[1].dtype == value.dtype, what
        torch.testing.assert_close(ours[1], value, rtol=1e-5, atol=1e-5, equal_nan=True,
                                   msg=what)
        return
    _assert_equal(ours[1], value, what)


def _assert_equal(got: Any, want: Any, what: str) -> None:
    if isinstance(want, torch.Tensor):
        assert isinstance(got, torch.Tensor), what
        assert got.dtype == want.dtype and got.shape == want.shape, (what, got, want)
        torch.testing.assert_close(got, want, rtol=0, atol=0, equal_nan=True, msg=what)
    elif isinstance(want, td.constraints.Constraint):
        assert type(got) is type(want) and repr(got) == repr(want), (what, got, want)
    else:
        assert got == want, (what, got, want)


def _fixed_values(dist: td.Distribution, n: int = 3) -> torch.Tensor:
    """``n`` values in the support, drawn by torch on a private stream (deterministic)."""
    with torch.random.fork_rng():
        torch.manual_seed(1234)
        return dist.sample((n,))


# ---------------------------------------------------------------- constructors
def _scalar_forms(family: str) -> Iterator[tuple[str, dict[str, Any]]]:
    params = _params(family, (), torch.float32)
    yield "tensors", _params(family, (2,), torch.float32)
    yield "0d-tensors", params
    if all(not isinstance(v, torch.Tensor) or v.dim() == 0 for v in params.values()):
        yield "numbers", {k: v.item() if isinstance(v, torch.Tensor) else v
                          for k, v in params.items()}


@pytest.mark.parametrize("backend,family", ALL)
def test_constructors_take_what_torch_takes(backend: str, family: str) -> None:
    for form, params in _scalar_forms(family):
        ours = _outcome(getattr(ps, family), **params, backend=backend)
        theirs = _outcome(getattr(td, family), **params)
        _assert_same((ours[0], None) if ours[0] == "ok" else ours,
                     (theirs[0], None) if theirs[0] == "ok" else theirs, f"{family}({form})")
        if ours[0] == "ok":
            assert isinstance(ours[1], getattr(td, family))
            for prop in PROPERTIES:
                _assert_same(_outcome(getattr, ours[1], prop),
                             _outcome(getattr, theirs[1], prop), f"{form}: {prop}",
                             refused_input=False)


# ---------------------------------------------------------------- properties
@pytest.mark.parametrize("backend,family", ALL)
def test_properties_match_torch(backend: str, family: str) -> None:
    ours, theirs = _pair(family, backend, _params(family))
    for prop in PROPERTIES + ("support", "has_enumerate_support"):
        _assert_same(_outcome(getattr, ours, prop), _outcome(getattr, theirs, prop),
                     f"{family}.{prop}", refused_input=False)
    assert set(ours.arg_constraints) == set(theirs.arg_constraints)
    for method in ("entropy", "perplexity", "enumerate_support"):
        _assert_same(_outcome(_call, ours, method), _outcome(_call, theirs, method),
                     f"{family}.{method}()",
                     refused_input=False)


@pytest.mark.parametrize("backend,family", ALL)
def test_cdf_and_icdf_match_torch(backend: str, family: str) -> None:
    ours, theirs = _pair(family, backend, _params(family))
    x = _fixed_values(theirs)
    _assert_same(_outcome(lambda: ours.cdf(x)), _outcome(lambda: theirs.cdf(x)),
                 f"{family}.cdf", refused_input=False)
    u = torch.tensor([0.1, 0.5, 0.9], dtype=torch.float64).reshape(
        (3,) + (1,) * len(theirs.batch_shape)).expand((3,) + tuple(theirs.batch_shape))
    _assert_same(_outcome(lambda: ours.icdf(u)), _outcome(lambda: theirs.icdf(u)),
                 f"{family}.icdf", refused_input=False)


# ---------------------------------------------------------------- log_prob (eager backends)
@pytest.mark.parametrize("validate", [True, False], ids=["validated", "unvalidated"])
@pytest.mark.parametrize("backend,family", EAGER)
def test_log_prob_of_fixed_values_matches_torch(backend: str, family: str, validate: bool) -> None:
    ours, theirs = _pair(family, backend, _params(family), validate_args=validate)
    x = _fixed_values(theirs)
    _assert_same(_outcome(lambda: ours.log_prob(x)), _outcome(lambda: theirs.log_prob(x)),
                 f"{family}.log_prob")


@pytest.mark.parametrize("backend,family", EAGER)
def test_log_prob_of_a_value_of_another_dtype_matches_torch(backend: str, family: str) -> None:
    # torch's result dtype differs by family (Gamma casts the value to the parameters' dtype,
    # Normal promotes): polysample's, its mended families included, is torch's.
    for params_dtype, value_dtype in ((torch.float32, torch.float64),
                                      (torch.float64, torch.float32)):
        ours, theirs = _pair(family, backend, _params(family, (2,), params_dtype))
        x = _fixed_values(theirs)
        if not x.is_floating_point():
            continue
        x = x.to(value_dtype)
        _assert_same(_outcome(ours.log_prob, x), _outcome(theirs.log_prob, x),
                     f"{family}.log_prob")


def _value_forms(x: torch.Tensor) -> Iterator[tuple[str, Any]]:
    yield "0d-tensor", x
    yield "number", x.item()
    yield "int", int(x.item()) if float(x.item()).is_integer() else x.item()
    yield "list", [x.item()]


@pytest.mark.parametrize("validate", [True, False], ids=["validated", "unvalidated"])
@pytest.mark.parametrize("backend,family", EAGER)
def test_log_prob_cdf_icdf_take_the_value_forms_torch_takes(
        backend: str, family: str, validate: bool) -> None:
    params = _params(family, ())
    ours, theirs = _pair(family, backend, params, validate_args=validate)
    x = _fixed_values(theirs, 1)[0]
    if x.dim() != 0:
        pytest.skip("the value of a multivariate family is not a number")
    for method, base in (("log_prob", x), ("cdf", x), ("icdf", torch.tensor(0.3).to(x))):
        for form, value in _value_forms(base):
            _assert_same(_outcome(_call, ours, method, value),
                         _outcome(_call, theirs, method, value), f"{family}.{method}({form})")


# ---------------------------------------------------------------- expand
@pytest.mark.parametrize("backend,family", ALL)
def test_expand_matches_torch(backend: str, family: str) -> None:
    ours, theirs = _pair(family, backend, _params(family))
    shape = (4,) + tuple(theirs.batch_shape)
    e_ours, e_theirs = ours.expand(shape), theirs.expand(shape)
    assert type(e_ours) is type(ours) and e_ours.backend == backend
    for prop in PROPERTIES:
        _assert_same(_outcome(getattr, e_ours, prop),
                     _outcome(getattr, e_theirs, prop), f"expand: {prop}",
                     refused_input=False)
    _assert_same(_outcome(lambda: ours.expand((5,))), _outcome(lambda: theirs.expand((5,))),
                 "expand to an incompatible shape", refused_input=False)


# ---------------------------------------------------------------- draws: shapes and dtypes
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("backend,family", EAGER)
def test_draw_shapes_and_dtypes_match_torch(backend: str, family: str, dtype: torch.dtype) -> None:
    ours, theirs = _pair(family, backend, _params(family, (2,), dtype))
    for shape in [(), (4,), (2, 3), torch.Size([1])]:
        want = theirs.sample(shape)
        got = ours.sample(shape, seed=0)
        assert (got.shape, got.dtype, got.requires_grad) == (want.shape, want.dtype, False)
        if ours.has_rsample:
            got = ours.rsample(shape, seed=0)
            assert (got.shape, got.dtype) == (want.shape, want.dtype)
    if ours.has_rsample:  # a backend reparameterizes only what torch reparameterizes
        assert theirs.has_rsample


# ---------------------------------------------------------------- errors
def _tensor_params(family: str) -> list[str]:
    return [p for p in FAMILIES[family].tensor_params if p != "logits"]


@pytest.mark.parametrize("backend,family", ALL)
def test_unbroadcastable_parameters_raise_torchs_error_class(backend: str, family: str) -> None:
    names = [n for n in _tensor_params(family) if isinstance(_params(family).get(n), torch.Tensor)
             and _params(family)[n].dim() > FAMILIES[family].event_dim]
    if len(names) < 2:
        pytest.skip("fewer than two batched parameters")
    params = _params(family, (2,))
    params[names[-1]] = _params(family, (3,))[names[-1]]
    theirs = _outcome(lambda: getattr(td, family)(**params))
    if theirs[0] == "ok":
        pytest.skip("torch broadcasts these shapes")
    _assert_same(_outcome(lambda: getattr(ps, family)(**params, backend=backend)), theirs,
                 f"{family}({names[-1]} of another batch shape)")


@pytest.mark.parametrize("backend,family", ALL)
def test_nan_parameters_raise_torchs_error_class(backend: str, family: str) -> None:
    params = _params(family)
    name = next(n for n in _tensor_params(family) if isinstance(params.get(n), torch.Tensor))
    params[name] = torch.full_like(params[name], float("nan"))
    theirs = _outcome(lambda: getattr(td, family)(**params))
    ours = _outcome(lambda: getattr(ps, family)(**params, backend=backend))
    if theirs[0] == "ok":  # an unconstrained parameter (a Relaxed family's temperature)
        assert ours[0] == "ok", ours
        return
    _assert_same(ours, theirs, f"{family}({name}=nan)")


@pytest.mark.parametrize("backend,family", ALL)
def test_invalid_values_raise_torchs_error_class_before_any_backend(
        backend: str, family: str) -> None:
    # These refusals come from validation, before the backend is called (so they are cheap on
    # every backend): a value outside the support, of the wrong event shape, of a batch shape
    # that does not broadcast.
    ours, theirs = _pair(family, backend, _params(family))
    x = _fixed_values(theirs, 1)
    bad = {
        "outside": torch.full_like(x, float("nan") if x.is_floating_point() else -1),
        "event-shape": torch.zeros(x.shape[:-1] + (x.shape[-1] + 1,), dtype=x.dtype)
        if theirs.event_shape else None,
        "batch-shape": torch.zeros((5,) + tuple(theirs.event_shape), dtype=x.dtype),
    }
    for name, value in bad.items():
        if value is None:
            continue
        for method in ("log_prob", "cdf"):
            theirs_out = _outcome(_call, theirs, method, value)
            if theirs_out[0] == "ok" or isinstance(theirs_out[1], NotImplementedError):
                continue
            _assert_same(_outcome(_call, ours, method, value), theirs_out,
                         f"{family}.{method}({name})")


# ---------------------------------------------------------------- classes
def _torch_ancestors(torch_cls: type) -> list[type]:
    return [c for c in torch_cls.__mro__[1:]
            if c.__name__ in CLASSES and getattr(td, c.__name__, None) is c]


@pytest.mark.parametrize("name", sorted(CLASSES))
def test_class_relations_mirror_torch(name: str) -> None:
    ours, theirs = CLASSES[name], getattr(td, name)
    assert issubclass(ours, theirs)
    for ancestor in _torch_ancestors(theirs):
        assert issubclass(ours, CLASSES[ancestor.__name__]), (name, ancestor.__name__)
    for other in CLASSES:
        if issubclass(theirs, getattr(td, other)):
            assert issubclass(ours, CLASSES[other]), (name, other)
        elif other != name and issubclass(ours, CLASSES[other]):
            raise AssertionError(f"polysample.{name} subclasses polysample.{other}; torch's not")


@pytest.mark.parametrize("name", sorted(CLASSES))
@pytest.mark.parametrize("attr", ["has_rsample", "has_enumerate_support", "arg_constraints",
                                  "support", "__name__"])
def test_class_level_attributes_match_torch(name: str, attr: str) -> None:
    ours, theirs = getattr(CLASSES[name], attr), getattr(getattr(td, name), attr)
    assert ours is theirs or ours == theirs, (name, attr, ours, theirs)


@pytest.mark.parametrize("backend,family", ALL)
def test_instances_are_instances_of_torchs_classes(backend: str, family: str) -> None:
    ours, theirs = _pair(family, backend, _params(family))
    for cls in type(theirs).__mro__:
        assert isinstance(ours, cls)
    assert isinstance(ours, PolysampleDistribution)


# ---------------------------------------------------------------- gradients of log_prob
@pytest.mark.parametrize("backend,family", EAGER)
def test_batched_gradcheck_of_log_prob_matches_torch(backend: str, family: str) -> None:
    params = _params(family, (2,))
    names = [n for n in _tensor_params(family)
             if isinstance(params.get(n), torch.Tensor) and not (
                 family in ("Binomial", "NegativeBinomial") and n == "total_count")]
    x = _fixed_values(getattr(td, family)(**params))
    leaves = tuple(params[n].detach().clone().requires_grad_(True) for n in names)

    def log_prob(cls: Any, **extra: Any) -> Callable[..., torch.Tensor]:
        def fn(*values: torch.Tensor) -> torch.Tensor:
            kwargs = dict(params, **dict(zip(names, values, strict=True)))
            return cls(**kwargs, validate_args=False, **extra).log_prob(x)
        return fn

    def check(fn: Callable[..., torch.Tensor]) -> bool:
        return torch.autograd.gradcheck(fn, leaves, check_batched_grad=True, atol=1e-5,
                                        rtol=1e-4, nondet_tol=0.0)

    theirs = _outcome(lambda: check(log_prob(getattr(td, family))))
    ours = _outcome(lambda: check(log_prob(getattr(ps, family), backend=backend)))
    if theirs[0] == "raise" and family not in FIXES:
        assert ours[0] == "raise" and isinstance(ours[1], type(theirs[1])), (ours, theirs)
    else:
        assert ours == ("ok", True), ours
