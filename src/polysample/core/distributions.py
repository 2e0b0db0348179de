"""``polysample.<Family>``: subclasses of the ``torch.distributions`` classes, routed to backends.

Each class has the constructor of its torch class plus a keyword-only ``backend=``. ``sample``,
``rsample`` and ``log_prob`` go to the backend chosen by :mod:`polysample.core.config`, and the
core enforces the contract of DESIGN.md section 1 on whatever the backend returns (type,
shape, dtype, device, gradients): a backend that breaks it raises
:class:`~polysample.BackendContractError` naming the backend.
"""

from __future__ import annotations

import copy
import inspect
import math
import warnings
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import torch
import torch.distributions as td

from .backend import Backend, FamilySupport, Seed, backend_label
from .config import require_registered, resolve_backend
from .errors import (
    USER_ADVICE,
    BackendContractError,
    InvalidParameterError,
    InvalidParameterRuntimeError,
    InvalidParameterTypeError,
    NotReparameterizableError,
    NotTraceableError,
    PolysampleError,
    UnknownBackendError,
    UnsupportedFamilyError,
    invalid_parameter,
    quoted,
    type_name,
)
from .families import FAMILIES, FamilySpec
from .guards import (
    SMALL_RESULT,
    allocation_error,
    check_event_size,
    check_finite,
    check_real,
    check_size,
    check_types,
    complex_kind,
    is_dynamo_compiling,
    result_bytes,
)
from .guards import transform_active as _transform_active
from .params import Params
from .seeds import as_seed_sequence
from .torch_fixes import FIXES, exact_logits_of_wrapped

__all__ = ["PolysampleDistribution", "wrap", "CLASSES", "check_sample_shape", "child_seed"]


def check_sample_shape(sample_shape: object) -> torch.Size:
    """Validate ``sample_shape``: a ``torch.Size``, a sequence of non-negative ints, an int, or
    (as torch takes it) a one-dimensional integer tensor or NumPy array.

    Raises the :class:`InvalidParameterError` that is also torch's class for the same input:
    ``RuntimeError`` for a negative size, ``TypeError`` for anything that is not ints.
    """
    negative = False
    if isinstance(sample_shape, torch.Tensor | np.ndarray) and sample_shape.ndim == 1 and (
            not sample_shape.dtype.is_floating_point and not sample_shape.dtype.is_complex
            and sample_shape.dtype != torch.bool if isinstance(sample_shape, torch.Tensor)
            else sample_shape.dtype.kind in "iu"):
        # a one-dimensional integer tensor or array: torch.Size takes it, and so does torch
        sample_shape = [int(d) for d in sample_shape.tolist()]
    if type(sample_shape) is torch.Size:
        if not sample_shape or min(sample_shape) >= 0:
            return sample_shape
        negative = True
    elif isinstance(sample_shape, int | np.integer) and not isinstance(sample_shape, bool):
        if sample_shape >= 0:
            return torch.Size((int(sample_shape),))
        negative = True
    elif isinstance(sample_shape, Sequence) and not isinstance(sample_shape, str | bytes):
        sizes = [_size_element(d) for d in sample_shape]
        if all(d is not None for d in sizes):
            if all(d >= 0 for d in sizes):  # type: ignore[operator]
                return torch.Size(sizes)  # type: ignore[arg-type]
            negative = True
    error = InvalidParameterRuntimeError if negative else InvalidParameterTypeError
    raise error(
        "Expected sample_shape to be a tuple (or torch.Size) of non-negative ints, e.g. (1000,) "
        f"or (). Received: {sample_shape!r}."
    )


def _size_element(d: object) -> int | None:
    """One size of a ``sample_shape`` sequence as an int: an int, a NumPy integer, or (as
    ``torch.Size`` takes them through ``__index__``) a 0-d integer tensor or array; None for
    anything else (a bool, a float, a tensor of floats or of several values)."""
    if isinstance(d, bool):
        return None
    if isinstance(d, int | np.integer):
        return int(d)
    if isinstance(d, torch.Tensor) and d.dim() == 0 and not (
            d.dtype.is_floating_point or d.dtype.is_complex or d.dtype == torch.bool):
        return int(d.item())
    if isinstance(d, np.ndarray) and d.ndim == 0 and d.dtype.kind in "iu":
        return int(d)
    return None


def _normalize_seed(seed: object, generator: object) -> Seed:
    if generator is not None:
        if seed is not None:
            raise InvalidParameterError(
                "Pass either seed= or generator=, not both. Received: "
                f"seed={seed!r}, generator={generator!r}."
            )
        if not isinstance(generator, torch.Generator):
            raise InvalidParameterError(
                f"Expected generator to be a torch.Generator. Received: {type_name(generator)}. "
                "Pass a torch.Generator (e.g. torch.Generator().manual_seed(0)), or seed=... "
                "(an int or numpy.random.SeedSequence) for a reproducible draw."
            )
        return generator
    if seed is None:
        return None
    return as_seed_sequence(seed)


def child_seed(seed: Seed, index: int) -> Seed:
    """A deterministic child of ``seed`` (for draws made of several sub-draws).

    Does not mutate a ``SeedSequence`` (``spawn`` would), so the same seed keeps giving the same
    values; a ``torch.Generator`` or ``None`` is shared (its stream advances between sub-draws).
    """
    if isinstance(seed, np.random.SeedSequence):
        return np.random.SeedSequence(
            seed.entropy, spawn_key=tuple(seed.spawn_key) + (index,), pool_size=seed.pool_size
        )
    return seed


def _not_reparameterizable(family: str, backend: Backend) -> str:
    """The message of ``rsample()`` on a backend without a reparameterized sampler of
    ``family``: the alternatives that apply to it, and the registered backends that have one."""
    from .plugins import backend_names, registry

    others = []
    for name in backend_names():
        if name == backend.name:
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fam = registry.load(name).families().get(family)
        except Exception:  # noqa: BLE001 - a backend that cannot load offers nothing here
            continue
        if fam is not None and fam.rsample:
            others.append(name)
    relaxed = (" or a relaxed family (RelaxedBernoulli, RelaxedOneHotCategorical) for discrete "
               "variables" if FAMILIES[family].kind != "continuous" else "")
    where = (f", or a backend that reparameterizes {family}: {', '.join(others)} (see "
             "`polysample backends`)." if others else
             f". No registered backend reparameterizes {family} (`polysample backends`).")
    return (f"{family} has no reparameterized sampler on backend {backend_label(backend)}, so rsample() "
            "cannot give pathwise gradients. Use sample() with log_prob() (score-function "
            f"estimator){relaxed}{where}")


def _check_backend_arg(backend: object) -> None:
    """``backend=`` is checked where it is given, as ``set_backend`` and ``use_backend`` check
    theirs: a name no plugin registered raises ``UnknownBackendError`` at construction, not
    at the first draw (a registered backend is not loaded here: one that cannot load raises
    ``BackendUnavailableError`` when it is first used)."""
    if backend is not None and not isinstance(backend, str | Backend):
        raise UnknownBackendError(
            "Expected backend= to be a backend name (str), a polysample.Backend instance or "
            f"None. Received: {backend!r}."
        )
    if isinstance(backend, str):
        require_registered(backend)


def _unimplemented_init(family: str, args: tuple[Any, ...], kwargs: dict[str, Any],
                        exc: NotImplementedError) -> UnsupportedFamilyError:
    """The error of a constructor that torch refuses with ``NotImplementedError`` for valid
    parameters: an operation it lacks for their dtype (a float16 covariance matrix's Cholesky
    factorization on the CPU), or arguments it does not support (a tensor ``total_count`` of
    ``Multinomial``). A ``NotImplementedError`` as torch's own: ``except NotImplementedError``
    written for torch keeps catching it."""
    total = kwargs.get("total_count", args[0] if args else None)
    if family == "Multinomial" and not isinstance(total, int | None):
        shape = (f"a tensor of shape {tuple(total.shape)}" if isinstance(total, torch.Tensor)
                 else type(total).__name__)
        return UnsupportedFamilyError(
            f"Cannot build polysample.Multinomial: torch's constructor supports only one total "
            f"count for the whole batch, a Python int ({quoted(exc)}) Expected total_count to "
            f"be an int. Received: total_count {shape}. Pass int(total_count) when every "
            "entry is the same; for a count per batch element draw each element's "
            "Multinomial apart, or use Binomial (which takes a tensor total_count) for two "
            "categories.")
    half = {str(a.dtype).removeprefix("torch.") for a in (*args, *kwargs.values())
            if isinstance(a, torch.Tensor) and a.dtype in (torch.float16, torch.bfloat16)}
    if not half:
        return UnsupportedFamilyError(
            f"Cannot build polysample.{family}: torch's constructor does not implement these "
            f"arguments ({quoted(exc)}) Expected arguments that torch.distributions.{family} "
            f"supports. Change the argument torch's message names.")
    given = [k for k in ("covariance_matrix", "precision_matrix") if kwargs.get(k) is not None]
    instead = (f"Pass scale_tril instead of {given[0]} (its draws and log_prob work in half "
               "precision), or " if given and family in ("MultivariateNormal", "Wishart")
               else "Pass ")
    return UnsupportedFamilyError(
        f"Cannot build polysample.{family} from {' and '.join(sorted(half))} parameters: "
        f"torch's constructor needs an operation torch does not implement for them "
        f"({quoted(exc)}) Expected parameters of a dtype it does (float16 and bfloat16 "
        f"matrices have no Cholesky factorization on the CPU). {instead}float32 "
        "parameters, and cast the draws (x.half()).")


def _wrap_init_error(family: str, exc: Exception,
                     non_finite: list[str] | None = None,
                     violating: list[str] | None = None) -> InvalidParameterError:
    # Also the builtin class torch raised (RuntimeError for shapes that do not broadcast), so
    # the except clauses of torch code keep catching it.
    received = "arguments that torch's message above names"
    # torch may name its own internal parameter (Beta's Dirichlet "concentration"): the
    # caller's own arguments that are non-finite or outside their constraints are named too.
    if non_finite:
        received += f"; non-finite: {', '.join(non_finite)}"
    if violating:
        received += f"; outside their constraints: {', '.join(violating)}"
    return invalid_parameter(
        f"Invalid parameters for polysample.{family}: {exc} "
        f"Expected parameters of torch.distributions.{family}'s constructor (numbers or tensors "
        f"satisfying its arg_constraints, with broadcastable shapes). Received: {received}. "
        "Fix that argument.", exc
    )


def _expanded(dist: Any, expand: Any, batch_shape: Any, instance: Any) -> Any:
    """``expand(batch_shape, _instance=instance)`` of torch's class, a shape it refuses raised
    as a polysample error (also the builtin class torch raised). A negative size is refused
    here: torch's ``expand`` kept ``-1`` in the new batch shape (``Tensor.expand``'s "keep this
    size" reached the parameters only), so the object's shapes disagreed and its draws raised
    a contract error naming the backend."""
    try:
        sizes = list(batch_shape)
    except TypeError:
        sizes = []
    negative = [n for n in sizes if isinstance(n, int) and n < 0]
    if negative:
        raise invalid_parameter(
            f"Cannot expand {type(dist).__name__} of batch shape {tuple(dist.batch_shape)} to "
            f"{batch_shape!r}: sizes must be non-negative (torch.distributions' expand takes "
            "no -1). Expected a batch shape that the current one broadcasts to, every size "
            f"given. Received: {batch_shape!r}.", RuntimeError("negative size"))
    try:
        return expand(batch_shape, _instance=instance)
    except PolysampleError:
        raise
    except (ValueError, TypeError, RuntimeError) as exc:
        raise invalid_parameter(
            f"Cannot expand {type(dist).__name__} of batch shape {tuple(dist.batch_shape)} to "
            f"{batch_shape!r}: {exc} Expected a batch shape that the current one broadcasts "
            "to (each dimension equal to the current one, or the current one 1). Received: "
            f"{batch_shape!r}.", exc) from exc


def _meta_error(family: str, exc: Exception) -> InvalidParameterError:
    """torch's constructor failed on a parameter of the meta device: its checks read values."""
    return invalid_parameter(
        f"Invalid parameters for polysample.{family}: {exc}. Expected parameters whose values "
        "can be read to check torch's arg_constraints. Received: a tensor on the meta device "
        "(a shape without values). Pass validate_args=False to build a distribution of meta "
        "tensors (the torch backend then draws meta tensors; backends that compute outside "
        "torch refuse them), or give tensors on a real device.", exc)


#: Parameters whose last dimension lists categories (or a simplex's components).
_CATEGORY_PARAMS = ("probs", "logits", "concentration")


#: The families with such a parameter.
_CATEGORY_FAMILIES = frozenset(
    f for f, spec in FAMILIES.items()
    if any(n in spec.params and spec.param_event_dim(n) == 1 for n in _CATEGORY_PARAMS))


def _check_categories(dist: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """Refuse a categorical or simplex family with no category, before torch's constructor:
    there is no value to draw (torch, NumPy and the auto backend returned category 0, which
    does not exist; TFP raised a contract error; torch's own Categorical fails inside
    ``sample()``, or refuses empty ``probs`` as not summing to 1)."""
    spec = dist._ps_spec
    try:
        bound = _init_signature(type(dist)).bind(*args, **kwargs).arguments
    except TypeError:
        return  # torch's constructor says what is wrong with the arguments
    for name in _CATEGORY_PARAMS:
        if name not in spec.params or spec.param_event_dim(name) != 1:
            continue
        value = bound.get(name)
        if isinstance(value, torch.Tensor) and value.dim() >= 1 and value.shape[-1] == 0:
            raise InvalidParameterError(
                f"Invalid parameters for polysample.{dist._ps_family}: expected at least one "
                f"category along the last dimension of {name}. Received: {name} of shape "
                f"{tuple(value.shape)}. Give {name} a last dimension of size 1 or more (an "
                "empty batch goes in the leading dimensions: shape (0, k)).")


_INIT_SIGNATURES: dict[str, inspect.Signature] = {}


def _init_signature(cls: type) -> inspect.Signature:
    """The signature of ``cls``'s torch constructor, without ``self`` (cached per class)."""
    sig = _INIT_SIGNATURES.get(cls.__qualname__)
    if sig is None:
        torch_cls = next(c for c in cls.__mro__ if c.__module__.startswith("torch."))
        init = next(vars(c)["__init__"] for c in torch_cls.__mro__ if "__init__" in vars(c))
        full = inspect.signature(init)
        sig = _INIT_SIGNATURES[cls.__qualname__] = full.replace(
            parameters=list(full.parameters.values())[1:])
    return sig


def _check_temperature(dist: Any, temperature: Any) -> None:
    """torch's Relaxed families take ``temperature`` unchecked (it is no arg_constraint): a
    string failed at the first draw with a raw TypeError, and a tensor that does not broadcast
    to the batch shape gave draws of another shape (or a raw RuntimeError)."""
    family = dist._ps_family
    if temperature is None:
        return
    if isinstance(temperature, bool) or not isinstance(temperature, torch.Tensor | int | float):
        raise InvalidParameterTypeError(
            f"Invalid parameters for polysample.{family}: temperature must be a number or a "
            f"tensor. Expected a positive number or tensor. Received: "
            f"{type(temperature).__name__} {temperature!r:.50}. Give temperature as a float.")
    if isinstance(temperature, torch.Tensor):
        batch = dist.batch_shape + dist.event_shape  # torch divides the logits by it
        try:
            fits = torch.broadcast_shapes(temperature.shape, batch) == batch
        except RuntimeError:
            fits = False
        if not fits:
            # One temperature per batch element: the batch shape, then a 1 for each event
            # dimension (torch divides the logits, of shape batch + event, by it).
            per_element = tuple(dist.batch_shape) + (1,) * len(dist.event_shape)
            raise InvalidParameterRuntimeError(
                f"Invalid parameters for polysample.{family}: temperature of shape "
                f"{tuple(temperature.shape)} does not broadcast to the shape {tuple(batch)} of "
                f"probs/logits (batch shape {tuple(dist.batch_shape)}, event shape "
                f"{tuple(dist.event_shape)}), which torch divides by it. Expected a "
                "temperature whose shape broadcasts to it. Received: that temperature. Give a "
                f"scalar temperature, or one per batch element of shape {per_element}"
                + (f" (temperature.reshape{per_element})"
                   if temperature.numel() == math.prod(per_element) else "") + ".")
    if not getattr(dist, "_validate_args", False):
        return
    # Nor is it checked for positivity: a zero temperature drew NaN on every backend, and a
    # negative one drew values in the support from a reflected law (wrong, and silent).
    t = temperature if isinstance(temperature, torch.Tensor) else torch.tensor(float(temperature))
    if t.is_meta or t.numel() == 0:
        return
    bad = t.detach() <= 0  # NaN is refused at the draw, with the other non-finite parameters
    if bool(bad.any()):
        shown = t.detach()[bad].flatten()[:5].tolist()
        raise InvalidParameterError(
            f"Invalid parameters for polysample.{family}: temperature must be positive. "
            f"Expected temperature > 0 (the relaxation's sharpness: small values draw nearly "
            f"one-hot samples). Received: {int(bad.sum())} value(s) <= 0, e.g. {shown}. "
            "Give a positive temperature, such as 0.1 or 1.0.")


def _non_finite_args(family: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[str]:
    """The names of the floating arguments holding NaN or an infinity (for error messages)."""
    try:
        init = getattr(td, family).__init__
        bound = inspect.signature(init).bind_partial(None, *args, **kwargs)
    except (AttributeError, TypeError, ValueError):
        return []
    names = []
    for name, value in list(bound.arguments.items())[1:]:
        if isinstance(value, torch.Tensor) and value.is_meta:
            continue  # shapes without values: nothing to read
        if isinstance(value, torch.Tensor) and value.is_floating_point() and value.numel():
            if not bool(torch.isfinite(value.detach()).all()):
                names.append(name)
        elif isinstance(value, float) and not math.isfinite(value):
            names.append(name)
    return names


def _violating_args(family: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[str]:
    """The caller's arguments outside the constraints of ``family``'s own ``arg_constraints``,
    each with its constraint (for error messages)."""
    try:
        cls = getattr(td, family)
        bound = inspect.signature(cls.__init__).bind_partial(None, *args, **kwargs)
        constraints = dict(cls.arg_constraints)
    except (AttributeError, TypeError, ValueError):
        return []
    names = []
    for name, value in list(bound.arguments.items())[1:]:
        c = constraints.get(name)
        if isinstance(value, bool) or c is None:
            continue
        if isinstance(value, int | float):
            value = torch.tensor(float(value), dtype=torch.float64)
        if not isinstance(value, torch.Tensor) or value.is_meta or not (
                value.is_floating_point()):
            continue
        if c is td.constraints.simplex and value.numel():
            # torch normalizes probs (Categorical, Multinomial, ...): unnormalized, valid
            value = value.detach() / value.detach().sum(-1, keepdim=True)
        if _violates(c, value):
            names.append(f"{name} ({c})")
    return names


def _violates(constraint: Any, value: torch.Tensor) -> bool:
    """Whether some entry of ``value`` is outside ``constraint`` (False where the check
    cannot run: an empty tensor, a dependent constraint that needs the other parameters)."""
    if not value.numel():
        return False
    try:
        return not bool(constraint.check(value.detach()).all())
    except Exception:  # noqa: BLE001 - a check that cannot run names nothing
        return False


#: ``(name, tensor, version)`` of each tensor a backend call receives (see :func:`_snapshot`).
Snapshot = list[tuple[str, torch.Tensor, int]]


def _snapshot(attrs: dict[str, Any], names: tuple[str, ...],
              extra: tuple[tuple[str, torch.Tensor], ...] = ()) -> Snapshot:
    """The version counters of the parameter tensors already made (and of ``extra``, a scored
    value): torch bumps a tensor's counter on every in-place change, of it or of a view
    sharing its memory, so a backend that writes into the caller's tensors shows. A parameter
    that torch computes lazily during the call (``probs`` from ``logits``) is new, not the
    caller's, and is not in the snapshot. Inference tensors keep no counter: skipped."""
    out = []
    # Two plain loops: this runs on every call (1.3 us for two parameters; 1.8-2 us chained).
    for name in names:
        t = attrs.get(name)
        if t.__class__ is torch.Tensor or isinstance(t, torch.Tensor):
            try:
                out.append((name, t, t._version))
            except RuntimeError:  # an inference tensor
                pass
    for name, t in extra:
        try:
            out.append((name, t, t._version))
        except RuntimeError:
            pass
    return out


def _check_untouched(snap: Snapshot, backend: Backend, family: str, what: str) -> None:
    for _, t, v in snap:
        if t._version != v:
            break
    else:
        return  # the common case, without building a list
    changed = [name for name, t, v in snap if t._version != v]
    raise BackendContractError(
        f"Backend {backend_label(backend)} modified {', '.join(changed)} in place during "
        f"{what}() for {family}: the distribution's parameters (and the caller's tensors "
        "they may share memory with) are no longer what was passed. Expected a backend "
        "that leaves its inputs unchanged (computing on copies or with out-of-place "
        f"operations). {USER_ADVICE}"
    )


#: The most dimensions a draw's result may have: NumPy's limit (``NPY_MAXDIMS``), which every
#: backend that draws through NumPy meets, applied to all so they agree.
MAX_DIMS = 64


def _check_ndim(dist: Any, shape: torch.Size) -> None:
    """Raise :class:`InvalidParameterError` for a result of more than :data:`MAX_DIMS`
    dimensions: torch's backend raised a raw RuntimeError beyond it, the NumPy backends an
    error blaming the parameters."""
    ndim = len(shape) + len(dist.batch_shape) + len(dist.event_shape)
    if ndim > MAX_DIMS:
        raise InvalidParameterError(
            f"Cannot draw polysample.{type(dist).__name__} with a sample_shape of {len(shape)} "
            f"dimensions: the result would have {ndim} (with batch_shape "
            f"{tuple(dist.batch_shape)} and event_shape {tuple(dist.event_shape)}). Expected "
            f"at most {MAX_DIMS} dimensions in all (NumPy's limit, applied on every backend). "
            "Received: a sample_shape of length {}. Use fewer dimensions (reshape the result "
            "afterwards).".format(len(shape)))


def _empty_draw(params: Params, shape: torch.Size, method: str) -> torch.Tensor:
    """The draw of zero values: its shape, dtype and device; from ``rsample`` connected to
    the parameters that require grad (zero gradients), as torch's empty draws are."""
    full = params.shape(shape)
    try:
        out = torch.empty(full, dtype=params.dtype, device=params.device)
    except (TypeError, RuntimeError) as exc:
        # No memory is at stake, but torch's sizes and strides are 64-bit: (0, 2**64) fails to
        # unpack (TypeError), (2**62, 4, 0) overflows the size calculation (RuntimeError).
        error = (InvalidParameterTypeError if isinstance(exc, TypeError)
                 else InvalidParameterRuntimeError)
        raise error(
            f"Cannot make the {method}() result of shape {tuple(full)} (sample_shape="
            f"{tuple(shape)}): it holds no values, but torch's tensor sizes are 64-bit and a "
            "dimension, or the product of the nonzero ones, is beyond 2**63 - 1. Expected a "
            "sample_shape whose dimensions (times the batch and event sizes) stay below 2**63. "
            f"Received: sample_shape={tuple(shape)}.") from exc
    return _linked(out, params) if method == "rsample" else out


def _linked(out: torch.Tensor, params: Params, *more: torch.Tensor) -> torch.Tensor:
    """``out`` (empty) with a zero gradient link to every tensor among ``params`` and ``more``
    that requires grad, as torch's arithmetic on empty tensors gives."""
    if not torch.is_grad_enabled():
        return out
    tensors = list(more)
    for name in params:
        try:
            tensors.append(params[name])
        except Exception:  # noqa: BLE001 - a lazy parameter torch cannot compute here
            continue
    for t in tensors:
        if isinstance(t, torch.Tensor) and t.requires_grad and t.is_floating_point():
            out = out + (t.sum() * 0).to(out.dtype)
    return out


def _check_real_value(dist: Any, method: str, value: object) -> None:
    """A complex ``value`` for ``log_prob``/``cdf``/``icdf`` raises
    :class:`InvalidParameterTypeError`: torch scores some families' complex values as complex
    numbers, others from the real part, others fail, and backends differ."""
    kind = complex_kind(value)
    if kind is not None:
        raise InvalidParameterTypeError(
            f"Invalid value for {dist._ps_family}.{method}: expected a real value (a number or "
            f"a tensor of a floating, integer or bool dtype). Received: {kind}. Pass its real "
            "part (x.real) if that is what you meant.")


def _scored_value(dist: Any, value: Any) -> Any:
    """``value`` as every backend scores it, where backends (and torch) would differ.

    A bool tensor is a category index (``Categorical``) or a number (0 or 1): torch's
    ``Bernoulli.log_prob`` raised on one ("subtraction ... with two bool tensors") where TFP's
    scored it, and TFP's ``Categorical`` refused what torch's took. A category index outside
    ``[0, K)`` raises :class:`InvalidParameterRuntimeError` on every backend, with or without
    ``validate_args`` (torch raises an index error; TFP returned 0, a probability of 1)."""
    if not isinstance(value, torch.Tensor):
        return value
    if value.is_meta and not dist._ps_meta(None):
        # torch's Gamma family moves the value to the parameters' device first: a bare
        # NotImplementedError ("Cannot copy out of meta tensor") on every backend
        raise InvalidParameterRuntimeError(
            f"Invalid value for {dist._ps_family}.log_prob: a meta tensor (a shape without "
            "values) for parameters that have values. Expected a value on the parameters' "
            "device. Received: a meta tensor of shape "
            f"{tuple(value.shape)}. Pass the value on the parameters' device (or meta "
            "parameters too, for a meta result).")
    if value.dtype == torch.bool:
        value = value.long() if dist._ps_index else value.to(_param_dtype(dist))
    k = int(getattr(dist, "_num_events", 0) or 0)
    if (dist._ps_index and k and value.numel() and not value.is_floating_point()
            and not value.is_meta and not _transform_active() and not is_dynamo_compiling()):
        bad = (value < 0) | (value >= k)
        if bool(bad.any()):
            raise InvalidParameterRuntimeError(
                f"Invalid value for {dist._ps_family}.log_prob: expected category indices in "
                f"[0, {k}). Received: {value[bad].flatten()[:3].tolist()} (torch raises an "
                "index error for them, with or without validate_args). Pass indices of "
                "existing categories.")
    return value


def _outside_law(dist: Any, value: Any, out: torch.Tensor) -> torch.Tensor:
    """``log_prob`` ``-inf`` where a value that torch's support check lets through has
    probability 0 under the law, alike on every backend: a ``Multinomial`` count vector whose
    sum is not ``total_count`` (torch's constraint allows any sum up to it, and torch scored
    such a vector as one of another total; TFP's formula gave it a probability above 1), a
    ``Uniform`` value at ``high`` (torch's support is ``[low, high)``; TFP and SciPy scored
    it as inside)."""
    family = dist._ps_family
    if (family not in ("Multinomial", "Uniform") or not isinstance(value, torch.Tensor)
            or not out.is_floating_point()):
        return out
    if family == "Multinomial":
        off = value.sum(-1) != dist.total_count
    else:
        off = (value >= dist.high) | (value < dist.low)
    return torch.where(off.to(out.device), torch.full_like(out, -math.inf), out)


def _invalid_value(dist: Any, method: str, value: object, exc: Exception) -> InvalidParameterError:
    """What ``log_prob``/``cdf``/``icdf`` raise where torch's own method rejects ``value``:
    torch's message, and the error class that is also torch's builtin class."""
    family = dist._ps_family
    if not isinstance(value, torch.Tensor) and ("must be a Tensor" in str(exc)
                                                 or "has no attribute" in str(exc)):
        return invalid_parameter(
            f"Invalid value for {family}.{method}. Expected value to be a torch.Tensor "
            f"(torch.distributions.{family}.{method} takes no {type(value).__name__} here). "
            f"Received: {type(value).__name__}. Convert it with torch.as_tensor(value).", exc)
    received = (f"a tensor of shape {tuple(value.shape)}, dtype {value.dtype}"
                if isinstance(value, torch.Tensor) else f"a {type(value).__name__}")
    return invalid_parameter(
        f"Invalid value for {family}.{method}: {quoted(exc, 600)} Expected what "
        f"torch.distributions.{family}.{method} accepts: a tensor whose shape ends in "
        f"event_shape {tuple(dist.event_shape)} and broadcasts with batch_shape "
        f"{tuple(dist.batch_shape)}, with values in the support. Received: {received}. Pass "
        "such a value (torch.as_tensor(value, dtype=...) converts numbers and arrays).", exc)


#: Floating dtypes that the core draws in float32 and rounds: the libraries' samplers lack
#: half-precision kernels (torch's Gamma and Dirichlet, TFP's bfloat16) or lose accuracy in
#: them, and a float32 draw rounded to half is the most accurate half-precision draw.
_HALF = frozenset({torch.float16, torch.bfloat16})
#: Families drawn in float64 when given float32 (or narrower) ``logits``: their ``probs``,
#: ``sigmoid(logits)``, round to 1.0 in float32 from logits of about 16.6 on, where the law
#: still has failures (``Binomial(1e9, logits=17.)``: about 41; none were drawn). In float64
#: they are exact to logits of about 36. (NegativeBinomial is drawn from its logits.)
_WIDE_FROM_LOGITS = frozenset({"Bernoulli", "Binomial", "Geometric"})

#: (family, parameters' dtype, value's dtype) -> the dtype of torch's own ``log_prob``.
_SCORE_DTYPES: dict[tuple[str, torch.dtype, torch.dtype], torch.dtype] = {}


def _torch_score_dtype(dist: Any, value: torch.Tensor) -> torch.dtype | None:
    """The dtype torch's own ``log_prob`` of ``dist`` gives a value of ``value``'s dtype where
    the two dtypes differ: torch casts the value to the parameters' dtype for some families
    (Gamma, Chi2, Uniform, MultivariateNormal, ...) and promotes for others (Normal), and a
    backend scoring in its own promoted dtype made the result's dtype depend on the backend.
    Read once per family and pair of dtypes from torch's score of one value; None (the
    backend's dtype kept) where the parameters' dtypes are mixed or torch cannot score it."""
    pdt = _param_dtype(dist)
    key = (dist._ps_family, pdt, value.dtype)
    got = _SCORE_DTYPES.get(key)
    if got is not None:
        return got
    if is_dynamo_compiling() or dist._ps_mixed(dist._ps_reference().dtype) is not None:
        return None
    nev = len(dist.event_shape)
    v = value.detach()
    if v.dim() > nev and v.numel():
        v = v.reshape((-1,) + tuple(v.shape[v.dim() - nev:]))[:1]
    try:
        probe = copy.copy(dist)  # unvalidated: one value may lie outside another element's
        probe._validate_args = False  # support (Uniform), and only the dtype is asked
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            got = super(PolysampleDistribution, probe).log_prob(v).dtype
    except Exception:  # noqa: BLE001 - only the dtype is asked; the backend's result stands
        return None
    _SCORE_DTYPES[key] = got
    return got


def _check_traceable(backend: Backend, family: str, what: str) -> None:
    """Refuse, under ``torch.jit.trace`` or a ``torch.func`` transform (``vmap``, ``grad``,
    ...), a computation made outside torch, which the transform cannot follow."""
    if backend.traceable:
        return
    transform = _transform_active()
    if transform is None:
        return
    if transform == "torch.jit.trace":
        raise NotTraceableError(
            f"Cannot trace polysample.{family}.{what}() on backend {_label(backend)!r}: it "
            "computes outside torch, so torch.jit.trace would bake its result into the trace "
            "as a constant. Expected a backend whose traceable is True under tracing "
            "(backend='torch'). Received: backend "
            f"{_label(backend)!r}. Trace with backend='torch', or compute the value outside "
            "the traced function and pass it in."
        )
    why = ("so vmap cannot batch the density and the torch.func gradient transforms cannot "
           "follow it" if what == "log_prob" else
           "so vmap would give every batch element the same draw (whatever its randomness=) "
           "and the torch.func gradient transforms cannot follow it")
    raise NotTraceableError(
        f"Cannot run polysample.{family}.{what}() on backend {_label(backend)!r} inside "
        f"{transform}: it computes outside torch, {why}. Expected a backend whose traceable "
        "is True inside torch.func transforms "
        f"(backend='torch'). Received: backend {_label(backend)!r}. Use backend='torch' "
        f"there, or {'score' if what == 'log_prob' else 'draw'} outside the transform and "
        "pass the values in."
    )


def _check_seeded_trace(family: str, what: str, seed: Any, generator: Any) -> None:
    """Refuse ``seed=`` or ``generator=`` under ``torch.jit.trace``: a trace records torch's
    random operations but not the generator built from the seed, so every call of the traced
    function drew other values, none of them the seed's (an outside trial)."""
    if (seed is not None or generator is not None) and torch.jit.is_tracing():
        given = f"seed={seed!r}" if seed is not None else "generator=a torch.Generator"
        raise NotTraceableError(
            f"Cannot trace polysample.{family}.{what}() with {given.split('=')[0]}=: "
            "torch.jit.trace records "
            "torch's random operations but not the generator made from the seed, so the "
            "traced function would draw other values at every call, none of them the seed's. "
            f"Expected no seed under tracing. Received: {given}. Trace an unseeded draw (it "
            "then draws from torch's global stream at each call), or draw outside the traced "
            "function and pass the values in."
        )


# torch._disable_dynamo is torch.compiler.disable with Dynamo imported on the first call
# (torch uses it for the same reason): importing Dynamo costs about 2 s, and ``import
# polysample`` must stay light. Dynamo knows the wrapper (torch/_dynamo/trace_rules.py).
@torch._disable_dynamo
def _eager(dist: Any, method: str, *args: Any, **kwargs: Any) -> Any:
    """``dist.<method>(...)`` run eagerly, outside ``torch.compile``'s graph (a graph break).

    Draws need a generator, NumPy or TFP, none of which Dynamo can capture; run eagerly they
    work on every backend, with gradients flowing through the break as usual.
    """
    return getattr(dist, method)(*args, **kwargs)


def _to_half(x: torch.Tensor, dtype: torch.dtype, dist: Any = None) -> torch.Tensor:
    """A float32 draw rounded to ``dtype`` (float16, bfloat16), with the nonzero values that
    would flush to zero kept at the dtype's smallest normal number (as torch clamps its Gamma
    draws): a positive draw stays inside a positive support (FisherSnedecor, LogNormal); the
    finite values that would overflow kept at its largest finite value; and (``dist``'s
    support an interval) the values below its upper end that would round onto it kept at the
    dtype's next value below: half-precision draws of Beta(0.3, 0.3) were exactly 1 in about
    5% of draws (log_prob inf), of Uniform(0, 1000) exactly ``high`` (log_prob -inf)."""
    out = x.to(dtype)
    if dist is not None:
        out = _below_upper_end(x, out, dist)
    flushed = (out == 0) & (x != 0)
    if dist is not None and flushed.dim() >= 2 and isinstance(
            dist.support, td.constraints._PositiveDefinite):
        # a matrix stays positive definite with its diagonal kept and its vanishing
        # off-diagonal entries 0 (kept at +-tiny too, a Wishart draw of scale 1e-6 was the
        # singular [[t, -t], [-t, t]])
        flushed = flushed & torch.eye(flushed.shape[-1], dtype=torch.bool,
                                      device=flushed.device)
    if bool(flushed.any()):
        tiny = torch.finfo(dtype).tiny
        out = torch.where(flushed, torch.where(x > 0, tiny, -tiny).to(dtype), out)
    # Finite float32 values beyond float16's range (65504) would round to infinity, where
    # log_prob is NaN (FisherSnedecor at small df2): kept at the dtype's largest finite value.
    overflowed = out.isinf() & x.isfinite()
    if bool(overflowed.any()):
        big = torch.finfo(dtype).max
        out = torch.where(overflowed, torch.where(x > 0, big, -big).to(dtype), out)
    if dist is not None and out.dim() >= 2 and isinstance(
            dist.support, td.constraints._PositiveDefinite):
        out = _positive_definite(out)
    return out


def _positive_definite(out: torch.Tensor, tries: int = 64) -> torch.Tensor:
    """``out``, half-precision symmetric matrices rounded from positive definite float32 ones,
    with the diagonal of each matrix that rounding left indefinite raised one value of its
    dtype at a time until it is positive definite again (about 1 bfloat16 Wishart draw in
    2,000 of a nearly singular law was not: ``log_prob`` of its own draws then raised). The
    change is detached: gradients flow as through the rounding."""
    eps = torch.finfo(out.dtype).eps
    fixed = out
    for _ in range(tries):
        bad = torch.linalg.cholesky_ex(fixed.detach().float()).info != 0
        if not bool(bad.any()):
            break
        diag = torch.diagonal(fixed.detach(), dim1=-2, dim2=-1).float()
        # d (1 + eps) rounds to the next value of the dtype above a positive d, or beyond it
        up = torch.where(bad[..., None], (diag * (1 + eps)).to(out.dtype).float(), diag)
        step = torch.diag_embed(up - diag).to(out.dtype)
        fixed = fixed + step
    return out + (fixed - out).detach() if fixed is not out else out


def _half_kernel_missing(exc: BaseException) -> bool:
    text = str(exc)
    return "not implemented for 'Half'" in text or "not implemented for 'BFloat16'" in text


_UNDECIDED = object()


def _promoted(dist: Any, attrs: dict[str, Any], dtype: torch.dtype) -> torch.dtype | None:
    """``dtype`` promoted with the floating dtype of every tensor the distribution holds, or
    None where they all have ``dtype``: its parameters in ``attrs`` (its ``__dict__``; torch
    keeps some only there, under private names: MultivariateNormal's
    ``_unbroadcasted_scale_tril``), and those that torch's transformed families read through a
    property (LogNormal's ``loc`` is its base Normal's)."""
    mixed = False
    for v in attrs.values():  # an nn.Parameter is a tensor too
        if isinstance(v, torch.Tensor) and v.dtype != dtype and v.is_floating_point():
            dtype, mixed = torch.promote_types(dtype, v.dtype), True
    cls = type(dist)
    for name in dist._ps_tensor_params:
        if name not in attrs and isinstance(getattr(cls, name, None), property):
            try:
                v = getattr(dist, name)
            except Exception:  # noqa: BLE001 - a property torch cannot compute: not a dtype
                continue
            if isinstance(v, torch.Tensor) and v.dtype != dtype and v.is_floating_point():
                dtype, mixed = torch.promote_types(dtype, v.dtype), True
    return dtype if mixed else None


def _param_dtype(dist: Any) -> torch.dtype:
    """The floating dtype of ``dist``'s parameters."""
    return dist._ps_params().float_dtype  # type: ignore[no-any-return]


def _float32_view(obj: Any, to: torch.dtype | None = None,
                  memo: dict[int, Any] | None = None) -> Any:
    """A shallow copy of a torch distribution (or transform) whose half-precision tensors,
    nested distributions (``base_dist``) and transforms are float32; with ``to``, whose
    floating tensors of every other dtype are ``to`` (cast differentiably). Transforms that
    refer to each other (a transform and its inverse) are copied once (``memo``)."""
    memo = {} if memo is None else memo
    done = memo.get(id(obj))
    if done is not None:
        return done
    new = memo[id(obj)] = object.__new__(type(obj))
    for name, value in obj.__dict__.items():
        if isinstance(value, torch.Tensor) and (
                value.dtype in _HALF if to is None
                else value.is_floating_point() and value.dtype != to):
            value = value.float() if to is None else value.to(to)
        elif isinstance(value, td.Distribution | td.Transform):
            value = _float32_view(value, to, memo)
        elif isinstance(value, list) and any(isinstance(v, td.Transform) for v in value):
            value = [_float32_view(v, to, memo) if isinstance(v, td.Transform) else v
                     for v in value]
        new.__dict__[name] = value
    return new


def _half_simplex(dist: Any, value: Any) -> bool:
    """Whether ``value``, refused by torch's simplex check, is a half-precision point on the
    simplex: non-negative, summing to 1 within the dtype's epsilon (a simplex point rounded to
    float16 or bfloat16 sums to 1 within half of it)."""
    if not (isinstance(value, torch.Tensor) and value.dtype in _HALF and value.dim() >= 1
            and isinstance(dist.support, td.constraints._Simplex)):
        return False
    v = value.float()
    eps = torch.finfo(value.dtype).eps
    return bool(((v >= 0).all(-1) & ((v.sum(-1) - 1).abs() <= eps)).all())


def _below_upper_end(x: torch.Tensor, out: torch.Tensor, dist: Any) -> torch.Tensor:
    """``out`` (``x`` rounded to half precision) with the values that rounded up onto the upper
    end of ``dist``'s interval support (Uniform's ``high``, excluded; 1 for Beta and
    Kumaraswamy, where the density is 0 or infinite; a GeneralizedPareto's finite end) moved
    to the value just below it; the gradient passes through unchanged."""
    support = dist.support
    while isinstance(support, td.constraints.independent):
        support = support.base_constraint
    if not isinstance(support, td.constraints._Interval | td.constraints._HalfOpenInterval):
        return out
    upper = support.upper_bound
    upper = torch.as_tensor(upper, dtype=x.dtype, device=x.device)
    end = upper.to(out.dtype)
    hit = (out >= end) & (x < upper) & end.isfinite()
    if not bool(hit.any()):
        return out
    base = out.detach()
    below = torch.nextafter(base, torch.full_like(base, -math.inf))
    return out + torch.where(hit, below - base, torch.zeros_like(base))


class _TorchOnClass:
    """A read-only property that, read on the class, is torch's class attribute of that name.

    ``polysample.Bernoulli.has_rsample`` is ``False`` like ``torch.distributions.Bernoulli``'s
    (code reads it on the class), while ``instance.has_rsample`` asks the backend that
    resolves now.
    """

    def __init__(self, fget: Any) -> None:
        self.fget = fget
        self.__doc__ = fget.__doc__
        self.name = fget.__name__

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, obj: object, owner: type | None = None) -> Any:
        if obj is None:
            for cls in owner.__mro__ if owner is not None else ():
                if cls.__module__.startswith("torch.") and self.name in cls.__dict__:
                    return getattr(cls, self.name)
            return self
        return self.fget(obj)

    def __set__(self, obj: object, value: object) -> None:
        raise AttributeError(f"property {self.name!r} of {type(obj).__name__!r} has no setter")


def _shapes(args: Sequence[Any], kwargs: dict[str, Any]) -> str:
    parts = [f"shape {tuple(a.shape)}" for a in args if isinstance(a, torch.Tensor)]
    parts += [f"{k} of shape {tuple(v.shape)}" for k, v in kwargs.items()
              if isinstance(v, torch.Tensor)]
    return ", ".join(parts) or "no tensors"


def _empty_check_failure(exc: RuntimeError, args: Sequence[Any]) -> bool:
    """Whether ``exc`` is torch 2.13's constraint check failing on an empty tensor.

    ``constraints.independent(...).check`` (the support or parameter constraint of every family
    with an event dimension: Dirichlet, MultivariateNormal, Wishart, OneHotCategorical...)
    reshapes its result to ``batch_shape + (-1,)``, which raises ``RuntimeError: cannot reshape
    tensor of 0 elements`` when the batch is empty, although no element can break the
    constraint. ``torch.distributions.Dirichlet(torch.ones(0, 3))`` fails so; polysample's
    classes accept empty batches.
    """
    return ("cannot reshape tensor of 0 elements" in str(exc)
            and any(isinstance(a, torch.Tensor) and a.numel() == 0 for a in args))


class PolysampleDistribution:
    """Mixin placed before the torch class: routes draws to the resolved backend."""

    _ps_family: ClassVar[str] = ""
    _ps_spec: ClassVar[FamilySpec]
    # Precomputed from _ps_spec: these are read on every draw.
    _ps_tensor_params: ClassVar[tuple[str, ...]] = ()
    _ps_index: ClassVar[bool] = False
    _ps_names: ClassVar[tuple[str, ...]] = ()
    _ps_ints: ClassVar[tuple[str, ...]] = ()
    _ps_backend: str | Backend | None = None

    def __init__(self, *args: Any, backend: str | Backend | None = None, **kwargs: Any) -> None:
        _check_backend_arg(backend)
        self._ps_backend = backend
        check_real(self._ps_family, args, kwargs)
        check_types(self._ps_family, args, kwargs)
        check_event_size(self._ps_family, args, kwargs)
        if self._ps_family in _CATEGORY_FAMILIES:
            _check_categories(self, args, kwargs)
        try:
            try:
                super().__init__(*args, **kwargs)
            except RuntimeError as exc:
                if not _empty_check_failure(exc, (*args, *kwargs.values())):
                    raise
                # An empty batch: nothing to validate (see _empty_check_failure); built
                # unchecked, then validating later values as asked.
                validate = kwargs.get("validate_args")
                super().__init__(*args, **{**kwargs, "validate_args": False})
                self._validate_args = (torch.distributions.Distribution._validate_args
                                       if validate is None else bool(validate))
        except PolysampleError:
            raise
        except NotImplementedError as exc:
            # torch lacks a kernel for these parameters' dtype (a float16 covariance matrix's
            # Cholesky factorization on the CPU) or supports no such argument (a tensor
            # total_count), unless the parameters are invalid too (non-finite, outside their
            # constraints): that first. Either way a NotImplementedError, as torch's.
            bad = (_non_finite_args(self._ps_family, args, kwargs),
                   _violating_args(self._ps_family, args, kwargs))
            if any(bad):
                raise _wrap_init_error(self._ps_family, exc, *bad) from exc
            raise _unimplemented_init(self._ps_family, args, kwargs, exc) from exc
        except (ValueError, TypeError, RuntimeError) as exc:
            if any(isinstance(a, torch.Tensor) and a.is_meta for a in (*args, *kwargs.values())):
                raise _meta_error(self._ps_family, exc) from exc
            raise _wrap_init_error(self._ps_family, exc,
                                   _non_finite_args(self._ps_family, args, kwargs),
                                   _violating_args(self._ps_family, args, kwargs)) from exc
        except AttributeError as exc:
            if all(isinstance(a, torch.Tensor | int | float)
                   for a in (*args, *kwargs.values())):
                raise
            # torch calls a tensor method on a wrong-typed argument (LowRankMultivariateNormal
            # with a string or None loc: 'str' object has no attribute 'dim'): a wrong type, as
            # torch's other constructors report it.
            raise _wrap_init_error(self._ps_family, TypeError(str(exc))) from exc
        # What the caller gave, by reference: which parameters require grad is read from these
        # (torch keeps some only inside another object, Beta's in a Dirichlet, RelaxedBernoulli's
        # in its base distribution, where they are not found by name).
        self._ps_given = (args, kwargs)
        if "temperature" in self._ps_names:
            _check_temperature(self, getattr(self, "temperature", None))
        tril = self.__dict__.get("_unbroadcasted_scale_tril")
        if isinstance(tril, torch.Tensor) and tril.shape[-1] != tril.shape[-2]:
            # validate_args=False let a non-square scale_tril through torch's constructor
            # (MultivariateNormal, Wishart); its draws then broke the shapes the object
            # promised, and were reported as a defect of the backend
            raise InvalidParameterError(
                f"Invalid parameters for polysample.{self._ps_family}: expected scale_tril to be "
                "square, of shape (..., n, n). Received: scale_tril of shape "
                f"{tuple(tril.shape)}. Give a square lower-triangular matrix (validate_args="
                "False skips value checks, not shape checks).")
        if self._ps_spec.event_dim == 1:
            # torch.distributions.MultivariateNormal accepts a loc whose size differs from the
            # scale's and only fails later, inside sample(), with a raw RuntimeError.
            loc = self.__dict__.get("loc")
            tril = self.__dict__.get("_unbroadcasted_scale_tril")
            if (isinstance(loc, torch.Tensor) and isinstance(tril, torch.Tensor)
                    and loc.shape[-1:] != tril.shape[-1:]):
                # torch's own failure (at sample time) is a RuntimeError: keep that class.
                raise InvalidParameterRuntimeError(
                    f"Invalid parameters for polysample.{self._ps_family}: expected loc's last "
                    f"dimension to match the scale's event size {tril.shape[-1]}. Received: loc "
                    f"of shape {tuple(loc.shape)}. Give loc and the scale the same event size."
                )

    def _validate_sample(self, value: torch.Tensor) -> None:
        try:
            super()._validate_sample(value)  # type: ignore[misc]
        except ValueError:
            # torch's simplex holds a sum within 1e-6 of 1, which half precision cannot
            # represent: its draws (and any simplex rounded to it) would be refused
            if not _half_simplex(self, value):
                raise
            v = value.float()
            super()._validate_sample(v / v.sum(-1, keepdim=True))  # type: ignore[misc]
        except NotImplementedError as exc:
            # torch has no half-precision kernel for the support's check (Wishart's Cholesky
            # factorization): the value is checked in float32
            if not (_half_kernel_missing(exc) and value.dtype in _HALF):
                raise
            super()._validate_sample(value.float())  # type: ignore[misc]
        except RuntimeError as exc:
            # torch checks the shapes first: an empty value of the right shape has no element
            # outside the support
            if not _empty_check_failure(exc, (value,)):
                raise

    # ------------------------------------------------------------------ routing
    @property
    def backend(self) -> str | Backend | None:
        """The backend given at construction, a name or a ``Backend`` (``None``: resolved at
        each draw)."""
        return self._ps_backend

    def _ps_resolve(self) -> Backend:
        return resolve_backend(self._ps_family, self._ps_backend)

    def _ps_params(self) -> Params:
        """What the backend receives: the parameters (read lazily), shapes, dtype, device."""
        attrs = self.__dict__
        for name in self._ps_tensor_params:
            t = attrs.get(name)
            if isinstance(t, torch.Tensor):
                break
        else:
            t = None
        fdtype = t.dtype if t is not None else None
        if t is None or fdtype is None or not fdtype.is_floating_point:
            t = self._ps_reference()
            # Integer parameters (an int64 df) draw in torch's default floating dtype, as torch
            # does.
            fdtype = t.dtype
            if not fdtype.is_floating_point:
                fdtype = torch.get_default_dtype()
        promoted = self._ps_mixed(fdtype)
        params = Params(self._ps_family, self, self._batch_shape,  # type: ignore[attr-defined]
                        self._event_shape,  # type: ignore[attr-defined]
                        torch.int64 if self._ps_index else fdtype, fdtype, t.device,
                        self._ps_names, self._ps_ints)
        if promoted is not None:
            # Floating parameters of different dtypes (a float32 loc, a float64 scale): the
            # backend receives them all in the promoted dtype (cast differentiably), which is
            # the result's, so no parameter loses precision and every backend returns one
            # dtype (torch's own families disagree: Normal.sample() keeps loc's, Gamma
            # promotes, LowRankMultivariateNormal raises).
            params = params.computed_in(promoted)
        return params

    def _ps_mixed(self, dtype: torch.dtype) -> torch.dtype | None:
        """The promoted dtype of parameters of different floating dtypes, else None
        (:func:`_promoted`, from the first floating parameter's ``dtype``); decided once per
        distribution (its parameters do not change), not on every draw."""
        attrs = self.__dict__
        promoted = attrs.get("_ps_promoted", _UNDECIDED)
        if promoted is _UNDECIDED:
            promoted = attrs["_ps_promoted"] = _promoted(self, attrs, dtype)
        return promoted  # type: ignore[no-any-return]

    def _ps_reference(self) -> torch.Tensor:
        """The parameter that gives the result's dtype and device: the first floating tensor
        parameter, else the first tensor one (integer tensors, Python-number temperatures)."""
        first = None
        # Attributes already made first: reading a lazy one (Bernoulli's logits from integer
        # probs) would compute it, and torch cannot compute logits of an integer tensor.
        attrs = self.__dict__
        for get in (attrs.get, lambda name: getattr(self, name)):
            for name in self._ps_tensor_params:
                t = get(name)
                if isinstance(t, torch.Tensor):
                    if t.is_floating_point():
                        return t
                    first = t if first is None else first
            if first is not None:
                return first
        return torch.empty((), dtype=torch.get_default_dtype())

    def _ps_has_rsample(self) -> bool:
        """Whether the backend that resolves now offers ``rsample()`` for this family.

        Read on the class (``polysample.Normal.has_rsample``) it is torch's class attribute.
        """
        try:
            support = self._ps_resolve().families()[self._ps_family]
        except UnsupportedFamilyError:
            return False
        return support.rsample

    has_rsample = _TorchOnClass(_ps_has_rsample)
    """Whether the backend that resolves now offers ``rsample()`` for this family. Read on
    the class (``polysample.Bernoulli.has_rsample``) it is torch's class attribute."""

    def _ps_check(self, backend: Backend, out: object, shape: torch.Size, what: str,
                  params: Params) -> torch.Tensor:
        if not isinstance(out, torch.Tensor):
            raise BackendContractError(
                f"Backend {backend_label(backend)} returned {type(out).__name__} from {what}() for "
                f"{self._ps_family}; expected a torch.Tensor. {USER_ADVICE}"
            )
        bs, es = params.batch_shape, params.event_shape
        # Concatenating torch.Size objects costs 0.3 us: skipped when there is nothing to add.
        expected = shape + bs + es if bs or es else shape
        if out.shape != expected or out.dtype != params.dtype or out.device != params.device:
            raise BackendContractError(
                f"Backend {backend_label(backend)} broke the {what}() contract for {self._ps_family}: "
                f"expected shape {tuple(expected)}, dtype {params.dtype}, device "
                f"{params.device}; received shape {tuple(out.shape)}, dtype {out.dtype}, "
                f"device {out.device}. {USER_ADVICE}"
            )
        shared = self._ps_shared(out)
        if shared is not None:
            raise BackendContractError(
                f"Backend {backend_label(backend)} returned from {what}() for {self._ps_family} a tensor "
                f"that shares memory with the parameter {shared}: writing into the draw would "
                f"change the distribution (and the caller's tensor). A backend returns new "
                f"memory. {USER_ADVICE}"
            )
        return out

    def _ps_shared(self, out: torch.Tensor) -> str | None:
        """The tensor parameter whose memory ``out`` shares (a parameter returned itself, or
        a view of it), or None (0.4 us for two parameters)."""
        try:
            ptr = out.untyped_storage().data_ptr()
        except (RuntimeError, NotImplementedError):  # functorch wrappers have no storage
            return None
        if not ptr:  # empty or meta
            return None
        attrs = self.__dict__
        for name in self._ps_tensor_params:
            value = attrs.get(name)
            if isinstance(value, torch.Tensor):
                try:
                    if value.untyped_storage().data_ptr() == ptr:
                        return name
                except (RuntimeError, NotImplementedError):
                    continue
        return None

    def _ps_any_grad(self) -> bool:
        """Whether a tensor parameter requires grad (:meth:`_ps_grad_params`, without the
        list: this runs on every ``rsample``)."""
        attrs = self.__dict__
        given = attrs.get("_ps_given")
        if given is not None:
            if not any(isinstance(v, torch.Tensor) and v.requires_grad
                       for v in (*given[0], *given[1].values())):
                return False
            return bool(self._ps_grad_params(None))
        for name in self._ps_tensor_params:
            value = attrs.get(name)
            if value.__class__ is torch.Tensor or isinstance(value, torch.Tensor):
                if value.requires_grad:
                    return True
        return False

    def _ps_grad_params(self, support: FamilySupport | None) -> list[str]:
        """The parameters that require grad, by the names the caller gave them, and whose
        values as the backend reads them do too (a distribution built under
        ``torch.no_grad()`` from tensors that require grad holds none where torch derives
        what it keeps, Beta's Dirichlet: no backend can give it a gradient)."""
        attrs = self.__dict__
        given = attrs.get("_ps_given")
        if given is not None:
            args, kwargs = given
            named = [*zip(_init_names(type(self)), args), *kwargs.items()]
            names = [name for name, v in named
                     if isinstance(v, torch.Tensor) and v.requires_grad]
            if not names:
                return names
            params = self._ps_params()
            return [name for name in names if name not in params._names
                    or getattr(params[name], "requires_grad", False)]
        base = attrs.get("base_dist")
        names = []
        for name in self._ps_tensor_params:
            value = attrs.get(name)
            if value is None and base is not None:  # LogNormal, the relaxed families
                value = vars(base).get(name)
            if isinstance(value, torch.Tensor) and value.requires_grad:
                names.append(name)
        return names

    def _ps_guard(self, backend: Backend, params: Params, shape: torch.Size,
                  what: str) -> None:
        """The core's checks before a draw: finite parameters (at the first draw of each
        object), a result that fits in the device's memory.

        The bytes of one sample are remembered with the finite check, so that a repeated
        draw costs a dictionary lookup and one product (its scalar path stays as fast).
        """
        unit = self.__dict__.get("_ps_checked")
        if unit is None:
            unit = result_bytes(params)
            if check_finite(self, self._ps_family, self._ps_tensor_params, backend.traceable):
                self.__dict__["_ps_checked"] = unit
        if unit * math.prod(shape) > SMALL_RESULT:
            check_size(self._ps_family, what, shape, params)

    def _ps_allocation_error(self, exc: BaseException, what: str, shape: torch.Size,
                             params: Params) -> BaseException:
        """The documented error for a backend's failure to allocate the result, or for its
        failure on a parameter outside its constraint (``validate_args=False``), else ``exc``."""
        return (allocation_error(exc, self._ps_family, what, shape, params)
                or self._ps_constraint_error(exc, what) or exc)

    def _ps_constraint_error(self, exc: BaseException, what: str) -> BaseException | None:
        """With ``validate_args=False`` a parameter outside its constraint reaches the backend,
        whose kernel may raise (``torch.poisson`` on a negative rate): the
        :class:`InvalidParameterError` naming that parameter, or None when none is outside."""
        if (not isinstance(exc, ValueError | TypeError | RuntimeError)
                or isinstance(exc, InvalidParameterError)):
            return None  # a backend's own InvalidParameterError says what it refused: kept
        for name, constraint in self.arg_constraints.items():  # type: ignore[attr-defined]
            value = self.__dict__.get(name)
            if isinstance(value, torch.Tensor) and _violates(constraint, value):
                return invalid_parameter(
                    f"Cannot draw polysample.{self._ps_family}.{what}(): parameter {name} is "
                    f"outside its constraint {constraint} (validate_args=False let it through) "
                    f"and the backend failed on it: {quoted(exc)} "
                    f"Expected {name} satisfying {constraint}. Fix {name}, or construct with "
                    "validate_args=True to have it refused at construction.", exc)
        return None

    def _ps_draw(self, backend: Backend, params: Params, shape: torch.Size, seed: Any,
                 method: str) -> tuple[torch.Tensor, Params]:
        """``backend.<method>`` after the parameter guard, a half-precision draw computed in
        float32, an allocation failure raised as polysample's error; returns the draw and the
        parameters it was computed with."""
        self._ps_guard(backend, params, shape, method)
        if params.float_dtype in _HALF:
            params = params.computed_in(torch.float32)
        if (self._ps_family in _WIDE_FROM_LOGITS and params.float_dtype != torch.float64
                and params.from_logits):
            params = params.computed_in(torch.float64)
        if 0 in params.shape(shape):
            # Nothing to draw (an empty batch or sample_shape): no backend call, which on a
            # compiling backend (tfp) would make a program for the empty shape.
            return _empty_draw(params, shape, method), params
        snap = _snapshot(self.__dict__, self._ps_tensor_params)
        try:
            out = getattr(backend, method)(self._ps_family, params, shape, seed=seed)
        except (MemoryError, RuntimeError, ValueError) as exc:
            error = self._ps_allocation_error(exc, method, shape, params)
            if error is exc:
                raise
            raise error from exc
        _check_untouched(snap, backend, self._ps_family, method)
        return out, params

    def sample(self, sample_shape: Any = torch.Size(), *, seed: Any = None,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """Draw without gradients, with the backend that resolves for this distribution.

        Args:
            sample_shape: leading dimensions of the result, e.g. ``()`` or ``(1000,)``.
            seed: ``None`` draws from the backend's global stream (``manual_seed`` seeds it);
                an ``int`` or a ``numpy.random.SeedSequence`` gives the same values on every
                call with that seed, on that backend.
            generator: a ``torch.Generator`` to draw from (it is advanced); not with ``seed``.

        Returns:
            A tensor of shape ``sample_shape + batch_shape + event_shape``, with the
            parameters' dtype and device (``int64`` for ``Categorical``), that never requires
            grad. On a reparameterizable family it follows the law of ``rsample()``.

        Raises:
            InvalidParameterError: a bad ``sample_shape`` or seed, or both seed and generator;
                a parameter that is not finite (checked at the first draw of each object,
                whatever ``validate_args`` says).
            SampleTooLargeError: the result would not fit in the device's memory.
            NotTraceableError: under ``torch.jit.trace`` or a ``torch.func`` transform, on a
                backend that draws outside torch.
            UnsupportedFamilyError: neither the backend nor a fallback offers the family.
        """
        if is_dynamo_compiling():
            return _eager(self, "sample", sample_shape, seed=seed, generator=generator)
        shape = check_sample_shape(sample_shape)
        _check_ndim(self, shape)
        s = _normalize_seed(seed, generator)
        backend = self._ps_resolve()
        if not backend.traceable:
            _check_traceable(backend, self._ps_family, "sample")
        elif seed is not None or generator is not None:
            _check_seeded_trace(self._ps_family, "sample", seed, generator)
        # torch.no_grad() as a context manager costs several microseconds per scalar draw;
        # the raw switch does the same job.
        grad_was_enabled = torch.is_grad_enabled()
        if grad_was_enabled:
            torch._C._set_grad_enabled(False)
        try:
            params = self._ps_params()
            want = params.dtype
            out, params = self._ps_draw(backend, params, shape, s, "sample")
        finally:
            if grad_was_enabled:
                torch._C._set_grad_enabled(True)
        out = self._ps_check(backend, out, shape, "sample", params)
        if out.dtype != want:
            # a half-precision draw computed in float32, or one from logits in float64
            out = _to_half(out, want, self) if want in _HALF else out.to(want)
        if out.requires_grad:
            raise BackendContractError(
                f"Backend {backend_label(backend)} returned a tensor that requires grad from sample() "
                f"for {self._ps_family}; sample() must never track gradients."
            )
        return out

    def rsample(self, sample_shape: Any = torch.Size(), *, seed: Any = None,
                generator: torch.Generator | None = None) -> torch.Tensor:
        """Draw with pathwise (reparameterized) gradients.

        Takes the arguments of ``sample()``. With the same seed, the torch backend returns the
        values ``sample()`` returns; the others do for most families (see the documentation
        page "Sampling and gradients").

        Returns:
            A tensor like ``sample()``'s that is differentiable with respect to every floating
            parameter that requires grad.

        Raises:
            NotReparameterizableError: the backend has no reparameterized sampler for this
                family (every discrete family), or not in a parameter that requires grad
                (``FamilySupport.rsample_params``). Use ``sample()`` with ``log_prob()``
                (the score-function estimator), or a relaxed family.
            InvalidParameterError, SampleTooLargeError, NotTraceableError: as ``sample()``.
        """
        if is_dynamo_compiling():
            return _eager(self, "rsample", sample_shape, seed=seed, generator=generator)
        shape = check_sample_shape(sample_shape)
        _check_ndim(self, shape)
        s = _normalize_seed(seed, generator)
        backend = self._ps_resolve()
        support = backend.families()[self._ps_family]
        if not support.rsample:
            raise NotReparameterizableError(_not_reparameterizable(self._ps_family, backend))
        if support.rsample_params is not None:
            bad = [p for p in self._ps_grad_params(support) if not support.reparameterizes(p)]
            if bad:
                raise NotReparameterizableError(
                    f"{self._ps_family}.rsample() on backend {backend_label(backend)} is differentiable "
                    f"only in {sorted(support.rsample_params)}, but {bad} require grad. Detach "
                    "those parameters, or use sample() with log_prob()."
                )
        if not backend.traceable:
            _check_traceable(backend, self._ps_family, "rsample")
        elif seed is not None or generator is not None:
            _check_seeded_trace(self._ps_family, "rsample", seed, generator)
        params = self._ps_params()
        want = params.dtype
        out, params = self._ps_draw(backend, params, shape, s, "rsample")
        out = self._ps_check(backend, out, shape, "rsample", params)
        if out.dtype != want:
            out = _to_half(out, want, self)  # a half-precision draw, computed in float32
        if not out.requires_grad and torch.is_grad_enabled() and self._ps_any_grad():
            raise BackendContractError(
                f"Backend {backend_label(backend)} returned a detached tensor from rsample() for "
                f"{self._ps_family} although {self._ps_grad_params(support)} require grad. "
                f"{USER_ADVICE}"
            )
        return out

    def log_prob(self, value: Any) -> torch.Tensor:
        """Log density at ``value``; from the backend when it scores this family, else torch.

        ``value`` is what torch's ``log_prob`` of this family accepts (a tensor; a Python
        number where torch takes one, e.g. ``Gamma`` or ``validate_args=False``). What torch
        rejects raises :class:`~polysample.InvalidParameterError`, which is also the builtin
        class torch raises.
        """
        _check_real_value(self, "log_prob", value)
        value = _scored_value(self, value)
        return _outside_law(self, value, self._ps_log_prob(value))

    def _ps_meta(self, value: Any) -> bool:
        """Whether ``value`` or a tensor parameter is on the meta device."""
        if isinstance(value, torch.Tensor) and value.is_meta:
            return True
        return any(isinstance(t, torch.Tensor) and t.is_meta
                   for t in (self.__dict__.get(n) for n in self._ps_tensor_params))

    def _ps_log_prob(self, value: Any) -> torch.Tensor:
        backend = self._ps_resolve()
        support = backend.families()[self._ps_family]
        if not support.log_prob or self._ps_meta(value):
            # meta tensors have shapes, no values: torch's formula gives the meta result (a
            # backend that scores outside torch raised its library's error on them)
            return self._ps_torch("log_prob", value)
        if not backend.traceable:
            if is_dynamo_compiling():
                return _eager(self, "log_prob", value)  # type: ignore[no-any-return]
            _check_traceable(backend, self._ps_family, "log_prob")
        if not isinstance(value, torch.Tensor):
            # Accepted exactly where torch's own log_prob accepts it, then scored as the tensor
            # torch's arithmetic would make of it.
            ref = self._ps_torch("log_prob", value)
            value = torch.as_tensor(value, dtype=torch.int64 if self._ps_index else ref.dtype,
                                    device=ref.device)
        elif self._validate_args:  # type: ignore[attr-defined]
            try:
                self._validate_sample(value)  # type: ignore[attr-defined]
            except (ValueError, RuntimeError) as exc:  # RuntimeError: a meta value, as torch's
                raise _invalid_value(self, "log_prob", value, exc) from exc
        else:
            # Unvalidated, torch's arithmetic refuses a value that does not broadcast (a
            # RuntimeError, which the torch path wraps as InvalidParameterRuntimeError); a
            # backend's own scoring raised another class, or its library's message
            try:
                torch.broadcast_shapes(value.shape, self.batch_shape  # type: ignore[attr-defined]
                                       + self.event_shape)  # type: ignore[attr-defined]
            except RuntimeError as exc:
                raise _invalid_value(self, "log_prob", value, exc) from exc
        params = self._ps_params()
        if value.numel() == 0 or 0 in params.batch_shape:
            empty = self._ps_empty_score(params, value)
            if empty is not None:
                return empty
        want = params.float_dtype
        if want in _HALF:  # computed in float32, as the draws are
            params = params.computed_in(torch.float32)
            if value.is_floating_point():
                value = value.to(torch.float32)
        snap = _snapshot(self.__dict__, self._ps_tensor_params, (("value", value),))
        out = backend.log_prob(self._ps_family, params, value)
        _check_untouched(snap, backend, self._ps_family, "log_prob")
        if not isinstance(out, torch.Tensor):
            raise BackendContractError(
                f"Backend {backend_label(backend)} returned {type(out).__name__} from log_prob() "
                f"for {self._ps_family}; expected a torch.Tensor."
            )
        if want in _HALF and out.dtype != want:
            out = out.to(want)
        if (not out.requires_grad and torch.is_grad_enabled()
                and (value.requires_grad or self._ps_grad_params(support))):
            raise BackendContractError(
                f"Backend {backend_label(backend)} returned a log_prob() for {self._ps_family} "
                "without gradients although "
                f"{self._ps_grad_params(support) + (['value'] if value.requires_grad else [])}"
                f" require grad: score-function estimators need them. {USER_ADVICE}"
            )
        if (want not in _HALF and value.is_floating_point() and value.dtype != want
                and out.is_floating_point()):
            torch_dtype = _torch_score_dtype(self, value)
            if torch_dtype is not None and out.dtype != torch_dtype:
                out = out.to(torch_dtype)
        return out

    def _ps_empty_score(self, params: Params, value: torch.Tensor) -> torch.Tensor | None:
        """``log_prob`` of zero values (an empty value or batch), without a backend call (a
        compiled program on tfp; torch's own fails for MultivariateNormal): its shape, dtype
        and gradient links. None where the result is not empty."""
        lead = value.shape[:max(value.dim() - len(params.event_shape), 0)]
        try:
            shape = torch.broadcast_shapes(lead, params.batch_shape)
        except RuntimeError as exc:
            raise _invalid_value(self, "log_prob", value, exc) from exc
        if 0 not in shape:
            return None
        out = torch.empty(shape, dtype=params.float_dtype, device=params.device)
        return _linked(out, params, value)

    def cdf(self, value: Any) -> torch.Tensor:
        """torch's ``cdf``; a value torch rejects raises ``InvalidParameterError`` (also
        torch's builtin class)."""
        _check_real_value(self, "cdf", value)
        return self._ps_torch("cdf", value)

    def icdf(self, value: Any) -> torch.Tensor:
        """torch's ``icdf``; a value torch rejects raises ``InvalidParameterError`` (also
        torch's builtin class), and so does, with ``validate_args``, a tensor of probabilities
        outside ``[0, 1]`` or NaN (torch returns NaN for them)."""
        _check_real_value(self, "icdf", value)
        if getattr(self, "_validate_args", False) and isinstance(value, torch.Tensor):
            v = value.detach()
            if v.is_floating_point() and v.numel() and not v.is_meta:
                ok = (v >= 0) & (v <= 1)
                if not bool(ok.all()):
                    bad = v[~ok].flatten()[:3].tolist()
                    raise InvalidParameterError(
                        f"Invalid value for {self._ps_family}.icdf: expected probabilities in "
                        f"[0, 1]. Received: {bad} (torch returns NaN for them). Pass values in "
                        "[0, 1], or validate_args=False for torch's NaN.")
        return self._ps_torch("icdf", value)

    def _ps_in_float32(self, method: str, value: Any) -> torch.Tensor:
        """torch's ``method(value)`` on a float32 view of this distribution, rounded back."""
        view = _float32_view(self)
        if (method == "log_prob" and isinstance(value, torch.Tensor)
                and self._validate_args):  # type: ignore[attr-defined]
            # The value is checked in its own precision (torch's tolerances follow the
            # value's dtype: a half-precision LKJCholesky draw is a float32 one's rounding,
            # not a float32 point of the support), then scored without a second check.
            self._validate_sample(value)  # type: ignore[attr-defined]
            view._validate_args = False
        out: torch.Tensor = getattr(super(PolysampleDistribution, view), method)(
            value.float() if isinstance(value, torch.Tensor)
            and value.is_floating_point() else value)
        return out.to(_param_dtype(self)) if out.is_floating_point() else out

    def _ps_torch(self, method: str, value: Any) -> torch.Tensor:
        """torch's own ``method(value)``, its refusals raised as polysample errors."""
        try:
            if method == "log_prob" and _param_dtype(self) in _HALF:
                # Computed in float32, as the draws are, and rounded: torch's arithmetic in
                # float16 overflows on values the draws reach (FisherSnedecor at small df2 is
                # NaN at 65504).
                return self._ps_in_float32(method, value)
            mixed = self._ps_mixed(self._ps_reference().dtype) if method == "log_prob" else None
            if mixed is not None:
                # Parameters of different floating dtypes: scored in the promoted one, the
                # draws' (torch's own log_prob keeps the first one's dtype for some families
                # and fails for others: LowRankMultivariateNormal, Wishart).
                view = _float32_view(self, mixed)
                return getattr(super(PolysampleDistribution, view), method)(  # type: ignore[no-any-return]
                    value)
            out: torch.Tensor = getattr(super(), method)(value)
        except PolysampleError:
            raise
        except NotImplementedError as exc:
            if not _half_kernel_missing(exc):
                raise  # torch has no such method for this family
            # torch lacks a float16/bfloat16 kernel (cholesky, triangular_solve, ...):
            # computed in float32, as the half-precision draws are, and rounded.
            return self._ps_in_float32(method, value)
        except (ValueError, TypeError, RuntimeError) as exc:
            raise _invalid_value(self, method, value, exc) from exc
        except AttributeError as exc:
            if isinstance(value, torch.Tensor):
                raise
            # torch calls a tensor method on the number (LogNormal.log_prob(1.0) -> 'float'
            # object has no attribute 'log'): refused as a wrong type, not passed on as a crash.
            raise _invalid_value(self, method, value, TypeError(str(exc))) from exc
        return out

    def expand(self, batch_shape: Any, _instance: Any = None) -> Any:
        new = self._get_checked_instance(type(self), _instance)  # type: ignore[attr-defined]
        new = _expanded(self, super().expand, batch_shape, new)  # type: ignore[misc]
        new._ps_backend = self._ps_backend
        given = self.__dict__.get("_ps_given")
        if given is not None:  # the expanded parameters are views of these
            new._ps_given = given
        return new

    def __repr__(self) -> str:
        return _with_backend(super().__repr__(), self._ps_backend)


_INIT_NAMES: dict[type, tuple[str, ...]] = {}


def _init_names(cls: type) -> tuple[str, ...]:
    """The names of the positional parameters of the torch constructor ``cls`` calls."""
    names = _INIT_NAMES.get(cls)
    if names is None:
        torch_init = next(vars(c)["__init__"] for c in cls.__mro__
                          if c.__module__.startswith("torch.") and "__init__" in vars(c))
        names = tuple(p.name for p in inspect.signature(torch_init).parameters.values()
                      if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
                      and p.name != "self")
        _INIT_NAMES[cls] = names
    return names


# ---------------------------------------------------------------------- combinators
class _Combinator:
    """Shared plumbing of the core combinators: their components are polysample distributions."""

    _ps_backend: str | Backend | None = None

    @property
    def backend(self) -> str | Backend | None:
        """The backend given at construction, a name or a ``Backend`` (``None``: resolved at
        each draw), as the families' ``backend``."""
        return self._ps_backend

    @property
    def _ps_family(self) -> str:
        """The combinator's name, as the families' messages name the family."""
        return type(self).__name__

    def log_prob(self, value: Any) -> torch.Tensor:
        """torch's ``log_prob``; a value torch refuses (outside the support, not a tensor)
        raises :class:`~polysample.InvalidParameterError`, as the families' ``log_prob`` does
        (torch's raw ``ValueError`` or ``AttributeError`` came through)."""
        if isinstance(self, PolysampleDistribution):  # a family torch builds this way
            return super().log_prob(value)  # type: ignore[misc, no-any-return]
        _check_real_value(self, "log_prob", value)
        try:
            return super().log_prob(value)  # type: ignore[misc, no-any-return]
        except PolysampleError:
            raise
        except AttributeError as exc:  # a number where torch needs a tensor ('float'.log)
            raise _invalid_value(self, "log_prob", value, TypeError(str(exc))) from exc
        except (ValueError, TypeError) as exc:
            raise _invalid_value(self, "log_prob", value, exc) from exc

    def _ps_component(self, dist: object, what: str) -> Any:
        """The component as a polysample distribution drawn by this combinator's backend when
        it chose none itself (a copy: the caller's object is left alone); a component that
        chose another backend is an error naming both."""
        mine = self._ps_backend
        if isinstance(dist, PolysampleDistribution | _Combinator):
            theirs = dist._ps_backend
            if mine is None or theirs is mine or (theirs is not None and _same(theirs, mine)):
                return dist
            if theirs is not None:
                raise InvalidParameterError(
                    f"Conflicting backends: {type(self).__name__}(..., backend={_label(mine)!r}) "
                    f"was given a {what} with backend={_label(theirs)!r}. Expected the "
                    f"{what} to choose no backend (it then follows the combinator's) or the "
                    "same one. Drop one of the two backend= arguments."
                )
            copy = object.__new__(type(dist))
            copy.__dict__.update(dist.__dict__)
            if isinstance(copy, _Combinator) and not isinstance(copy, PolysampleDistribution):
                copy.__dict__["_ps_backend"] = mine
                for attr in ("base_dist", "_mixture_distribution", "_component_distribution"):
                    sub = copy.__dict__.get(attr)
                    if sub is not None:
                        copy.__dict__[attr] = copy._ps_component(sub, attr)
            else:
                copy._ps_backend = mine
            return copy
        if isinstance(dist, td.Distribution):
            if _routable(dist):
                return wrap(dist, backend=mine)
            # A distribution polysample does not route (a subclass of a torch class, a Pyro
            # or other custom distribution): used as it is, drawing itself, as torch's own
            # combinators do (refusing it broke torch code that runs unchanged otherwise).
            return dist
        raise InvalidParameterError(
            f"Expected {what} to be a torch or polysample distribution. "
            f"Received: {type(dist).__name__}."
        )


def _label(b: str | Backend) -> str:
    return b if isinstance(b, str) else (b.name or type(b).__name__)


def _same(a: str | Backend, b: str | Backend) -> bool:
    """Two backend= arguments naming the same backend (a name and its registered instance)."""
    if isinstance(a, str) and isinstance(b, str):
        return a == b
    return _label(a) == _label(b)


class Independent(_Combinator, td.Independent):
    """``torch.distributions.Independent`` over a polysample base distribution.

    A plain torch base is wrapped (with this object's ``backend=``); a polysample base keeps
    its own backend; any other distribution (a subclass of a torch class, a Pyro or other
    custom one) is used as it is and draws itself.
    """

    def __init__(self, base_distribution: Any, reinterpreted_batch_ndims: int,
                 validate_args: bool | None = None, *, backend: str | Backend | None = None) -> None:
        _check_backend_arg(backend)
        self._ps_backend = backend
        base = self._ps_component(base_distribution, "base_distribution")
        n = reinterpreted_batch_ndims
        # torch checks only the upper bound: a negative count made an Independent whose
        # log_prob summed nothing, and a float failed with torch's comparison message.
        if not isinstance(n, int | np.integer) or n < 0:
            error = (InvalidParameterError if isinstance(n, int | np.integer)
                     else InvalidParameterTypeError)
            raise error(
                "Invalid parameters for polysample.Independent: Expected "
                "reinterpreted_batch_ndims to be a non-negative int, at most the base "
                f"distribution's {len(base.batch_shape)} batch dimension(s). Received: "
                f"{type(n).__name__} {n!r:.50}. Give how many of the base's rightmost batch "
                "dimensions become event dimensions (0 to keep them all batch).")
        try:
            super().__init__(base, int(n), validate_args=validate_args)
        except (ValueError, TypeError, RuntimeError) as exc:
            raise _wrap_init_error("Independent", exc) from exc

    def sample(self, sample_shape: Any = torch.Size(), *, seed: Any = None,
               generator: torch.Generator | None = None) -> torch.Tensor:
        return _component_draw(self.base_dist, "sample", sample_shape, seed, generator)

    def rsample(self, sample_shape: Any = torch.Size(), *, seed: Any = None,
                generator: torch.Generator | None = None) -> torch.Tensor:
        return _component_draw(self.base_dist, "rsample", sample_shape, seed, generator)

    def expand(self, batch_shape: Any, _instance: Any = None) -> Any:
        new = self._get_checked_instance(Independent, _instance)
        new = _expanded(self, super().expand, batch_shape, new)
        new._ps_backend = self._ps_backend
        return new


class TransformedDistribution(_Combinator, td.TransformedDistribution):
    """``torch.distributions.TransformedDistribution`` over a polysample base distribution."""

    def __init__(self, base_distribution: Any, transforms: Any,
                 validate_args: bool | None = None, *, backend: str | Backend | None = None) -> None:
        if isinstance(self, PolysampleDistribution):
            # A family that torch builds as a TransformedDistribution (LogNormal, ...), called
            # from its torch __init__: its backend is set already and it draws as its own
            # family, so its torch internals stay torch's.
            super().__init__(base_distribution, transforms, validate_args=validate_args)
            return
        _check_backend_arg(backend)
        self._ps_backend = backend
        base = self._ps_component(base_distribution, "base_distribution")
        try:
            super().__init__(base, transforms, validate_args=validate_args)
        except (ValueError, TypeError, RuntimeError) as exc:
            raise _wrap_init_error("TransformedDistribution", exc) from exc

    def __repr__(self) -> str:
        if isinstance(self, PolysampleDistribution):  # a family: its own repr says it
            return super().__repr__()
        return _with_backend(super().__repr__(), self._ps_backend)

    def sample(self, sample_shape: Any = torch.Size(), *, seed: Any = None,
               generator: torch.Generator | None = None) -> torch.Tensor:
        with torch.no_grad():
            base: Any = self.base_dist
            x = _component_draw(base, "sample", sample_shape, seed, generator)
            for t in self.transforms:
                x = t(x)
        return x

    def rsample(self, sample_shape: Any = torch.Size(), *, seed: Any = None,
                generator: torch.Generator | None = None) -> torch.Tensor:
        base: Any = self.base_dist
        x = _component_draw(base, "rsample", sample_shape, seed, generator)
        for t in self.transforms:
            x = t(x)
        return x

    def expand(self, batch_shape: Any, _instance: Any = None) -> Any:
        new = self._get_checked_instance(TransformedDistribution, _instance)
        new = _expanded(self, super().expand, batch_shape, new)
        new._ps_backend = self._ps_backend
        return new


class MixtureSameFamily(_Combinator, td.MixtureSameFamily):
    """``torch.distributions.MixtureSameFamily`` with polysample components.

    ``sample`` works on every backend (indices and components drawn by the resolved backends,
    then gathered, as torch does). ``rsample`` is offered where the component's backend
    reparameterizes mixtures of that component family itself (``Backend.mixture_components()``
    names it, e.g. TFP for Normal, Gamma, ...); elsewhere it raises
    ``NotReparameterizableError``. ``backend=`` applies to components that chose none.
    """

    def __init__(self, mixture_distribution: Any, component_distribution: Any,
                 validate_args: bool | None = None, *, backend: str | Backend | None = None) -> None:
        _check_backend_arg(backend)
        self._ps_backend = backend
        mix = self._ps_component(mixture_distribution, "mixture_distribution")
        comp = self._ps_component(component_distribution, "component_distribution")
        mix, comp = _broadcast_mixture(mix, comp)
        try:
            super().__init__(mix, comp, validate_args=validate_args)
        except (ValueError, TypeError, RuntimeError) as exc:
            raise _wrap_init_error("MixtureSameFamily", exc) from exc

    def _ps_mixture_backend(self) -> tuple[Backend | None, str]:
        comp = self.component_distribution
        if not isinstance(comp, PolysampleDistribution):
            return None, type(comp).__name__
        backend = comp._ps_resolve()
        ok = comp._ps_family in backend.mixture_components()
        return (backend if ok else None), comp._ps_family

    def _ps_has_rsample(self) -> bool:
        """Whether the component's backend reparameterizes this mixture (on the class:
        torch's ``False``)."""
        return self._ps_mixture_backend()[0] is not None

    has_rsample = _TorchOnClass(_ps_has_rsample)  # type: ignore[assignment]

    def sample(self, sample_shape: Any = torch.Size(), *, seed: Any = None,
               generator: torch.Generator | None = None) -> torch.Tensor:
        shape = check_sample_shape(sample_shape)
        s = _normalize_seed(seed, generator)
        with torch.no_grad():
            mix_idx = _component_draw(self.mixture_distribution, "sample", shape,
                                      **_seed_kwargs(child_seed(s, 0)))
            comp = _component_draw(self.component_distribution, "sample", shape,
                                   **_seed_kwargs(child_seed(s, 1)))
            es = self.event_shape
            idx = mix_idx.reshape(mix_idx.shape + torch.Size((1,) * (len(es) + 1)))
            idx = idx.expand(idx.shape[:-len(es) - 1] + torch.Size((1,)) + es) if es else idx
            return torch.gather(comp, len(shape) + len(self.batch_shape), idx).squeeze(
                len(shape) + len(self.batch_shape)
            )

    def rsample(self, sample_shape: Any = torch.Size(), *, seed: Any = None,
                generator: torch.Generator | None = None) -> torch.Tensor:
        if is_dynamo_compiling():
            return _eager(self, "rsample", sample_shape, seed=seed, generator=generator)
        shape = check_sample_shape(sample_shape)
        s = _normalize_seed(seed, generator)
        backend, fam = self._ps_mixture_backend()
        if backend is None:
            comp_backend = getattr(self.component_distribution, "_ps_resolve", None)
            where = f" on backend {_label(comp_backend())!r}" if comp_backend else ""
            raise NotReparameterizableError(
                f"MixtureSameFamily of {fam} has no reparameterized sampler{where}. Use a "
                "backend that reparameterizes mixtures of this family (its "
                "mixture_components(); e.g. backend='tfp' for Normal, Gamma, ...), sample() "
                "with log_prob(), or a relaxed mixture."
            )
        _check_traceable(backend, f"MixtureSameFamily of {fam}", "rsample")
        if backend.traceable and (seed is not None or generator is not None):
            _check_seeded_trace(f"MixtureSameFamily of {fam}", "rsample", seed, generator)
        comp: Any = self.component_distribution
        params = comp._ps_params()
        comp._ps_guard(backend, params, shape, "rsample")
        mixd: Any = self.mixture_distribution
        if isinstance(mixd, PolysampleDistribution):
            # The weights are refused where sample() refuses them (NaN or infinite probs or
            # logits, whatever validate_args says): the backend returned NaN draws with
            # gradients.
            mixd._ps_guard(backend, mixd._ps_params(), shape, "rsample")
        logits = self.mixture_distribution.logits
        want = params.dtype
        if want in _HALF:
            # computed in float32 and rounded, as the families' half-precision draws are
            params = params.computed_in(torch.float32)
            logits = logits.float()
        snap = _snapshot(comp.__dict__, comp._ps_tensor_params, (("mixture logits", logits),))
        out = backend.rsample_mixture(logits, params, shape, seed=s)
        _check_untouched(snap, backend, f"MixtureSameFamily of {fam}", "rsample")
        expected = self._extended_shape(shape)
        if not isinstance(out, torch.Tensor) or out.shape != expected:
            raise BackendContractError(
                f"Backend {backend_label(backend)} returned {getattr(out, 'shape', type(out).__name__)} "
                f"from MixtureSameFamily.rsample(); expected shape {tuple(expected)}."
            )
        if out.dtype != want and want in _HALF:
            out = _to_half(out, want, comp)
        return out

    def expand(self, batch_shape: Any, _instance: Any = None) -> Any:
        new = self._get_checked_instance(MixtureSameFamily, _instance)
        new = _expanded(self, super().expand, batch_shape, new)
        new._ps_backend = self._ps_backend
        return new


def _broadcast_mixture(mix: Any, comp: Any) -> tuple[Any, Any]:
    """The mixture and component distributions expanded to their common batch shape.

    torch accepts batch shapes that broadcast (weights of batch ``(1,)`` with components of
    batch ``(2, k)``) but then takes the component's for the mixture's and draws with the
    other's: ``sample((4,))`` had shape ``(4, 1)`` for a batch of 2, or failed with a raw
    ``RuntimeError``. Expanded first, every method sees one batch shape. Shapes that do not
    broadcast are left to torch's own check (its error is then raised as polysample's).
    """
    if not (isinstance(mix, td.Distribution) and isinstance(comp, td.Distribution)):
        return mix, comp
    mb, cb = tuple(mix.batch_shape), tuple(comp.batch_shape)
    if not cb:
        return mix, comp
    try:
        batch = tuple(torch.broadcast_shapes(mb, cb[:-1]))
    except RuntimeError:
        return mix, comp
    if mb != batch:
        mix = mix.expand(torch.Size(batch))
    if cb[:-1] != batch:
        comp = comp.expand(torch.Size(batch + cb[-1:]))
    return mix, comp


def _with_backend(base: str, b: str | Backend | None) -> str:
    """``repr`` of a distribution naming the ``backend=`` it was given."""
    if b is None:
        return base
    name = b if isinstance(b, str) else (b.name or type(b).__name__)
    sep = "" if base.endswith("()") else ", "  # torch shows no parameters (LogNormal())
    return f"{base[:-1]}{sep}backend: {name!r})"


def _component_draw(dist: Any, method: str, sample_shape: Any, seed: Any = None,
                    generator: torch.Generator | None = None) -> torch.Tensor:
    """``dist.<method>(sample_shape)`` for a combinator's component, with ``seed=`` or
    ``generator=``. A component polysample does not route (a subclass of a torch class, a
    Pyro or other custom distribution) draws itself from torch's stream: with a seed or a
    generator, from torch's stream seeded for this call by it (forked: the global stream is
    left as it was), so the same seed gives the same values there too."""
    if isinstance(dist, PolysampleDistribution | _Combinator):
        return getattr(dist, method)(sample_shape, seed=seed, generator=generator)  # type: ignore[no-any-return]
    if type(dist) is td.Independent and isinstance(dist.base_dist,
                                                   PolysampleDistribution | _Combinator):
        # torch's own Independent around a polysample base (torch's TransformedDistribution
        # makes one when a transform needs more event dimensions, StickBreakingTransform say):
        # the base draws the values, with this seed (torch's Independent would draw the base
        # from its global stream, ignoring the seed).
        return _component_draw(dist.base_dist, method, sample_shape, seed, generator)
    shape = check_sample_shape(sample_shape)
    s = _normalize_seed(seed, generator)
    if s is None:
        return getattr(dist, method)(shape)  # type: ignore[no-any-return]
    if isinstance(s, torch.Generator):
        word = int(torch.randint(0, 2**62, (1,), generator=s, device=s.device))
    else:
        word = int(s.generate_state(1, np.uint64)[0] >> np.uint64(1))
    devices = ([torch.cuda.current_device()]
               if torch.cuda.is_available() and torch.cuda.is_initialized() else [])
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(word)
        return getattr(dist, method)(shape)  # type: ignore[no-any-return]


def _seed_kwargs(seed: Seed) -> dict[str, Any]:
    if isinstance(seed, torch.Generator):
        return {"generator": seed}
    return {"seed": seed}


#: The core combinator of each torch combinator class (the parents of families that torch
#: builds from them).
_COMBINATOR_OF: dict[type, type] = {
    td.Independent: Independent,
    td.TransformedDistribution: TransformedDistribution,
    td.MixtureSameFamily: MixtureSameFamily,
}

def _family_class(name: str) -> type:
    """``polysample.<name>``, built once, after the polysample class of its torch parent.

    The polysample classes keep torch's inheritance among themselves (``Chi2`` subclasses
    ``Gamma``, ``OneHotCategoricalStraightThrough`` subclasses ``OneHotCategorical``, and
    ``LogNormal`` and the other families torch builds as a ``TransformedDistribution``
    subclass :class:`TransformedDistribution`), taken from the torch class's MRO. Each class
    still routes as its own family (``_ps_family``): :class:`PolysampleDistribution` comes
    before the torch class, and a core combinator parent comes after it, so a ``LogNormal``
    draws through the backend as ``"LogNormal"``, never through a base distribution.
    """
    built = _BUILT.get(name)
    if built is not None:
        return built
    torch_cls = getattr(td, name)
    parent = _polysample_parent(torch_cls)
    fix = (FIXES[name],) if name in FIXES else ()
    if parent is None:
        bases: tuple[type, ...] = (PolysampleDistribution, *fix, torch_cls)
    elif issubclass(parent, PolysampleDistribution):
        # MRO: Chi2, polysample.Gamma, PolysampleDistribution, [fixes], td.Chi2, td.Gamma, ...
        bases = (parent, *fix, torch_cls)
    else:
        # MRO: LogNormal, PolysampleDistribution, [fix], td.LogNormal,
        # polysample.TransformedDistribution, ..., td.TransformedDistribution, ...
        bases = (PolysampleDistribution, *fix, torch_cls, parent)
    cls = type(
        name,
        bases,
        {
            "_ps_family": name,
            "_ps_spec": FAMILIES[name],
            "_ps_tensor_params": FAMILIES[name].tensor_params,
            "_ps_index": FAMILIES[name].kind == "index",
            "_ps_names": FAMILIES[name].params,
            "_ps_ints": FAMILIES[name].integer_params,
            "__module__": "polysample",
            "__qualname__": name,
            "__doc__": (
                f"``torch.distributions.{name}`` drawn by the configured backend.\n\n"
                f"Same constructor as torch's, plus keyword-only ``backend=``.\n\n"
                + (torch_cls.__doc__ or "")
            ),
        },
    )
    cls.__signature__ = _signature_with_backend(torch_cls)  # type: ignore[attr-defined]
    _BUILT[name] = cls
    return cls


def _signature_with_backend(torch_cls: type) -> inspect.Signature | None:
    """torch's constructor signature plus keyword-only ``backend=None`` (what
    ``inspect.signature``, ``help()`` and IDEs show; the constructor itself takes
    ``*args, **kwargs`` and hands them to torch's). None where torch's cannot be read."""
    try:
        sig = inspect.signature(torch_cls.__init__)  # type: ignore[misc]
    except (TypeError, ValueError):
        return None
    params = [p for p in sig.parameters.values() if p.name != "self"]
    backend = inspect.Parameter("backend", inspect.Parameter.KEYWORD_ONLY, default=None,
                                annotation="str | Backend | None")
    if params and params[-1].kind is inspect.Parameter.VAR_KEYWORD:
        params.insert(len(params) - 1, backend)
    else:
        params.append(backend)
    try:
        return sig.replace(parameters=params)
    except ValueError:  # a keyword-only backend cannot follow what torch has: leave it
        return None


_BUILT: dict[str, type] = {}


def _polysample_parent(torch_cls: type) -> type | None:
    """The polysample class of the nearest torch ancestor that polysample has (a family or a
    core combinator), or None."""
    for ancestor in torch_cls.__mro__[1:]:
        combinator = _COMBINATOR_OF.get(ancestor)
        if combinator is not None:
            return combinator
        name = ancestor.__name__
        if name in FAMILIES and getattr(td, name, None) is ancestor:
            return _family_class(name)
    return None


# Parents are built first whatever the order here (_family_class builds them on demand).
Bernoulli = _family_class("Bernoulli")
Beta = _family_class("Beta")
Binomial = _family_class("Binomial")
Categorical = _family_class("Categorical")
Cauchy = _family_class("Cauchy")
Chi2 = _family_class("Chi2")
ContinuousBernoulli = _family_class("ContinuousBernoulli")
Dirichlet = _family_class("Dirichlet")
Exponential = _family_class("Exponential")
FisherSnedecor = _family_class("FisherSnedecor")
Gamma = _family_class("Gamma")
GeneralizedPareto = _family_class("GeneralizedPareto")
Geometric = _family_class("Geometric")
Gumbel = _family_class("Gumbel")
HalfCauchy = _family_class("HalfCauchy")
HalfNormal = _family_class("HalfNormal")
InverseGamma = _family_class("InverseGamma")
Kumaraswamy = _family_class("Kumaraswamy")
LKJCholesky = _family_class("LKJCholesky")
Laplace = _family_class("Laplace")
LogNormal = _family_class("LogNormal")
LogisticNormal = _family_class("LogisticNormal")
LowRankMultivariateNormal = _family_class("LowRankMultivariateNormal")
Multinomial = _family_class("Multinomial")
MultivariateNormal = _family_class("MultivariateNormal")
NegativeBinomial = _family_class("NegativeBinomial")
Normal = _family_class("Normal")
OneHotCategorical = _family_class("OneHotCategorical")
OneHotCategoricalStraightThrough = _family_class("OneHotCategoricalStraightThrough")
Pareto = _family_class("Pareto")
Poisson = _family_class("Poisson")
RelaxedBernoulli = _family_class("RelaxedBernoulli")
RelaxedOneHotCategorical = _family_class("RelaxedOneHotCategorical")
StudentT = _family_class("StudentT")
Uniform = _family_class("Uniform")
VonMises = _family_class("VonMises")
Weibull = _family_class("Weibull")
Wishart = _family_class("Wishart")


#: Every public distribution class, keyed by name (38 families + 3 combinators).
CLASSES: dict[str, type] = {
    name: obj for name, obj in list(globals().items())
    if isinstance(obj, type) and name in FAMILIES
}
CLASSES.update(
    Independent=Independent,
    TransformedDistribution=TransformedDistribution,
    MixtureSameFamily=MixtureSameFamily,
)


def _routable(dist: td.Distribution) -> bool:
    """Whether :func:`wrap` takes ``dist``: an instance of a torch class polysample has."""
    name = type(dist).__name__
    return name in CLASSES and getattr(td, name, None) is type(dist)


def wrap(dist: td.Distribution, backend: str | Backend | None = None) -> Any:
    """Route an existing ``torch.distributions`` object through polysample.

    Returns an instance of the matching polysample class sharing the original's parameters
    (no copy); combinators wrap their components too. ``backend=None`` resolves per draw.
    """
    if isinstance(dist, PolysampleDistribution | _Combinator):
        if backend is None:
            return dist
        theirs = dist._ps_backend
        if theirs is not None and theirs is not backend and not _same(theirs, backend):
            # as a combinator refuses a component that chose another backend: the backend a
            # distribution chose is kept by wrap() (it was replaced without a word)
            raise InvalidParameterError(
                f"Conflicting backends: wrap(..., backend={_label(backend)!r}) was given a "
                f"polysample.{type(dist).__name__} with backend={_label(theirs)!r}. Expected a "
                "distribution that chose no backend (it then takes wrap()'s) or the same one. "
                "Drop one of the two backend= arguments, or build the distribution again with "
                "the backend you want.")
        dist = _as_torch_view(dist)
    if not isinstance(dist, td.Distribution):
        raise InvalidParameterError(
            f"Expected a torch.distributions.Distribution. Received: {type(dist).__name__}."
        )
    _check_backend_arg(backend)
    name = type(dist).__name__
    cls = CLASSES.get(name)
    if cls is None or not _routable(dist):
        raise UnsupportedFamilyError(
            f"Cannot wrap {type(dist).__module__}.{type(dist).__qualname__}: polysample routes "
            f"the torch.distributions classes themselves ({', '.join(sorted(CLASSES))}), "
            "not subclasses or other distributions."
        )
    new: Any = object.__new__(cls)
    new.__dict__.update(dist.__dict__)
    new._ps_backend = backend
    exact_logits_of_wrapped(new)
    # Only the core combinators draw through their components; a family that torch builds as a
    # TransformedDistribution (LogNormal, RelaxedBernoulli, ...) keeps its torch internals.
    components = ("base_dist", "_mixture_distribution", "_component_distribution")
    core_combinator = issubclass(cls, _Combinator) and not issubclass(cls, PolysampleDistribution)
    for attr in components if core_combinator else ():
        comp = new.__dict__.get(attr)
        if comp is not None:
            # as the combinators' constructors take components: a torch one routed with this
            # backend, a polysample one that chose none following it (one that chose another
            # is an error naming both), any other (a subclass, a Pyro distribution) as it is
            new.__dict__[attr] = new._ps_component(comp, _COMPONENT_ARGS[attr])
    return new


#: The constructor argument each component attribute comes from (messages name it).
_COMPONENT_ARGS = {"base_dist": "base_distribution",
                   "_mixture_distribution": "mixture_distribution",
                   "_component_distribution": "component_distribution"}


def _as_torch_view(dist: Any) -> td.Distribution:
    torch_cls = next(c for c in type(dist).__mro__ if c.__module__.startswith("torch."))
    view: td.Distribution = object.__new__(torch_cls)
    view.__dict__.update(dist.__dict__)
    return view
