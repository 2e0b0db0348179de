"""Checks the core makes before any backend draws: what no backend should have to survive.

* :func:`check_finite`: parameters must be finite to be drawn from. torch's validation lets
  ``inf`` through (``constraints.positive`` holds for ``inf``) and ``validate_args=False`` lets
  NaN through; samplers then return garbage (torch's ``Poisson(inf)`` draws -9.2e18) or never
  return (TFP's Gamma rejection loop on ``inf``, its Poisson on NaN). Checked once per
  distribution object, at its first draw (like torch's validation at construction), so the
  repeated draws of one object pay a dictionary lookup only. ``logits`` are exempt (``-inf``
  masks a category); the ``probs`` made from them are checked instead.
* :func:`check_size`: the result's bytes against the device's memory, before allocating, and
  :func:`allocation_error` for an allocation that fails anyway.
* :func:`transform_active`: a ``torch.jit.trace`` or ``torch.func`` transform (``vmap``,
  ``grad``, ...) that a backend computing outside torch cannot follow.
"""

from __future__ import annotations

import functools
import inspect
import math
import numbers
import os
from collections.abc import Callable
from typing import Any

import torch
from torch.distributions import constraints

from .errors import (
    InvalidParameterError,
    InvalidParameterRuntimeError,
    InvalidParameterTypeError,
    SampleTooLargeError,
    quoted,
)
from .families import FAMILIES

__all__ = ["check_finite", "check_size", "check_event_size", "check_real", "check_types", "complex_kind", "result_bytes",
           "allocation_error", "transform_active", "memory_limit", "is_dynamo_compiling", "SMALL_RESULT"]

_functorch = torch._C._functorch

#: True while TorchDynamo traces (``torch.compile``): a plain ``return False`` eagerly (about
#: 20 ns, against 2 us for a ``torch.compiler.disable`` wrapper on every call), which Dynamo
#: replaces by True while tracing.
is_dynamo_compiling: Callable[[], bool] = getattr(
    torch.compiler, "is_dynamo_compiling", None) or getattr(  # type: ignore[assignment]
    torch.compiler, "is_compiling", lambda: False)


def transform_active() -> str | None:
    """The torch transform in progress that a non-torch computation cannot follow, or None."""
    if torch._C._is_tracing():
        return "torch.jit.trace"
    if _functorch.maybe_current_level() is not None:
        return "a torch.func transform (vmap, grad, jacrev, jacfwd, hessian, ...)"
    return None


# ---------------------------------------------------------------------- finite parameters
def _compact(t: torch.Tensor) -> torch.Tensor:
    """``t`` without the dimensions it was expanded along (stride 0): their values repeat, and
    checking an expanded view whole would allocate its full size."""
    if 0 not in t.stride() or t.numel() <= 1:
        return t
    return t[tuple(0 if s == 0 and n > 1 else slice(None)
                   for s, n in zip(t.stride(), t.shape))]


def _no_values(t: torch.Tensor) -> bool:
    """Tensors whose values cannot be read here: meta tensors, tensors of a functorch transform."""
    return t.is_meta or _functorch.is_functorch_wrapped_tensor(t)


def check_finite(dist: Any, family: str, names: tuple[str, ...], traceable: bool) -> bool:
    """Raise :class:`InvalidParameterError` naming the first non-finite parameter of ``dist``.

    Returns True when every parameter was checked (the caller remembers it for the object),
    False when some could not be read (meta tensors or an active transform, on a backend that
    computes in torch, whose draw stays torch's own). A backend that computes outside torch
    cannot draw from parameters without values: that raises
    :class:`InvalidParameterRuntimeError`.
    """
    if torch._C._is_tracing():
        return False  # reading values would bake them into the trace
    complete = True
    # validate_args=False: nothing checked the constraints at construction (torch's own flag)
    unchecked = not getattr(dist, "_validate_args", True)
    _check_one_device(dist, family, names)
    for name in FAMILIES[family].integer_params:
        value = getattr(dist, name, None)
        if isinstance(value, int) and not 0 <= value < 1 << 63:
            raise InvalidParameterError(
                f"Invalid parameters for polysample.{family}: {name} must be a non-negative "
                f"integer below 2**63 to draw from. Expected 0 <= {name} < 2**63. Received: "
                f"{name}={value}. Give a smaller {name}.")
    for name in names:
        if name == "logits":
            _check_logit_bounds(dist, family)
            continue  # -inf logits are a masked category; their probs are checked
        try:
            value = getattr(dist, name)
        except Exception:  # noqa: BLE001 - a lazy parameter torch cannot compute: not ours
            continue
        if isinstance(value, torch.Tensor):
            if _no_values(value):
                if not traceable and value.is_meta:
                    raise InvalidParameterRuntimeError(
                        f"Cannot draw polysample.{family} from parameters on the meta device: "
                        f"{name} has no values, and this backend draws outside torch from "
                        "values. Expected parameters on a device with data (cpu, cuda). "
                        "Received: a meta tensor. Use backend='torch' (meta in, meta out), "
                        "or move the parameters to a real device first.")
                complete = False
                continue
            if value.is_floating_point() and not _all_finite(value):
                _raise_non_finite(family, name, _compact(value.detach()))
            if unchecked and value.is_floating_point():
                _check_side(dist, family, name, value)
        elif isinstance(value, float) and not math.isfinite(value):
            _raise_non_finite(family, name, torch.tensor(value))
        elif isinstance(value, float) and unchecked:
            _check_side(dist, family, name, torch.tensor(value, dtype=torch.float64))
    return complete


def _bounds(c: Any) -> tuple[Any, Any, str] | None:
    """``(lower, upper, what)`` of the side of a torch constraint a parameter must keep to be
    drawn from (either bound None), or None where the constraint is not a bound checked here
    (real numbers, integers, positive-definite matrices, correlation Cholesky factors,
    dependent constraints)."""
    while isinstance(c, constraints._IndependentConstraint):
        c = c.base_constraint
    if isinstance(c, (constraints._GreaterThan, constraints._GreaterThanEq)):
        return c.lower_bound, None, f"at least {c.lower_bound}"
    if isinstance(c, (constraints._Interval, constraints._HalfOpenInterval)):
        return c.lower_bound, c.upper_bound, f"in [{c.lower_bound}, {c.upper_bound}]"
    if isinstance(c, constraints._Simplex):
        return 0.0, None, "non-negative in every entry"
    return None


def _check_side(dist: Any, family: str, name: str, value: torch.Tensor) -> None:
    """Raise :class:`InvalidParameterRuntimeError` for a parameter on the wrong side of its
    constraint, in a distribution built with ``validate_args=False`` (validation refuses it at
    construction otherwise).

    Only the wrong side: a bound itself is drawn from (``Normal(0, 0)`` is ``loc``, as in torch).
    torch's own samplers refuse most such parameters (``Normal(0, -1)``: "normal expects all
    elements of std >= 0.0", ``Bernoulli(1.5)``), and the others drew values of no law
    (``Gamma(-1)``: 1.2e-38) or NaN: the backends disagreed, and one backend's answer could
    depend on the sample size (torch's fast path for 256 values and more refused what its small
    path drew; ``auto`` routes by size). A ``scale_tril`` must be lower triangular with a
    non-negative diagonal (TFP reads its lower triangle only)."""
    c = dist.arg_constraints.get(name)
    t = _compact(value.detach())
    if isinstance(c, constraints._LowerCholesky):
        bad = torch.triu(t, diagonal=1).ne(0) | (
            torch.eye(t.shape[-1], dtype=torch.bool, device=t.device) & t.lt(0))
        what = "lower triangular with a non-negative diagonal"
    else:
        bounds = _bounds(c)
        if bounds is None:
            return
        low, high, what = bounds
        bad = t.lt(low) if low is not None else torch.zeros_like(t, dtype=torch.bool)
        if high is not None:
            bad = bad | t.gt(high)
    if not bool(bad.any()):
        return
    at = tuple(bad.nonzero()[0].tolist())
    where = f" at index {at} of a tensor of shape {tuple(t.shape)}" if t.dim() else ""
    raise InvalidParameterRuntimeError(
        f"Invalid parameters for polysample.{family}: {name} must be {what} to draw from. "
        f"Expected {name} {what}. Received: {name}={t[at].item()}{where}. The distribution was "
        "built with validate_args=False, so nothing checked it at construction; every backend "
        "refuses it at the draw (torch's samplers refuse most such parameters and draw values "
        "of no law from the others). Give valid parameters (log_prob() still takes them as "
        "torch does).")


#: Families whose probability excludes an end of [0, 1] (torch's constraints: Geometric's
#: probs > 0, NegativeBinomial's probs < 1): the infinite logit that stands for it, and why.
_EXCLUDED_LOGIT = {
    "Geometric": (-math.inf, "probs > 0 (logits = -inf is probs = 0: no success ever, so no "
                             "draw is finite)"),
    "NegativeBinomial": (math.inf, "probs < 1 (logits = +inf is probs = 1: the count of "
                                   "successes before total_count failures is infinite)"),
}


def _check_logit_bounds(dist: Any, family: str) -> None:
    """Raise :class:`InvalidParameterError` for a logit standing for a probability the family
    excludes: ``Geometric(probs=0)`` and ``NegativeBinomial(probs=1)`` are refused, and the
    same laws given as logits drew NaN or infinity."""
    bound = _EXCLUDED_LOGIT.get(family)
    if bound is None:
        return
    logits = dist.__dict__.get("logits")
    if not isinstance(logits, torch.Tensor) or _no_values(logits) \
            or not logits.is_floating_point():
        return
    hit: torch.Tensor = torch.eq(_compact(logits.detach()), bound[0])
    if bool(hit.any()):
        where = (f" at index {tuple(hit.nonzero()[0].tolist())} of a tensor of shape "
                 f"{tuple(hit.shape)}" if hit.dim() else "")
        raise InvalidParameterError(
            f"Invalid parameters for polysample.{family}: expected {bound[1]}. Received: "
            f"logits={bound[0]}{where}. Give finite logits (or probs in the open range).")


def _check_one_device(dist: Any, family: str, names: tuple[str, ...]) -> None:
    """Raise :class:`InvalidParameterRuntimeError` for parameters on different devices.

    torch's own draws refuse them ("Tensor on device cpu is not on the expected device meta!"),
    but a draw that starts from one parameter's device did not: a CPU ``loc`` with a meta
    ``scale`` and ``validate_args=False`` drew CPU numbers on the torch backend. A 0-d CPU
    tensor goes with any device, as in torch's arithmetic."""
    seen: dict[torch.device, str] = {}
    for name in names:
        try:
            value = getattr(dist, name)
        except Exception:  # noqa: BLE001 - a lazy parameter torch cannot compute: not ours
            continue
        if isinstance(value, torch.Tensor) and not (_compact(value).dim() == 0 and
                                                    value.device.type == "cpu"):
            seen.setdefault(value.device, name)
    if len(seen) > 1:
        where = ", ".join(f"{name} on {device}" for device, name in seen.items())
        raise InvalidParameterRuntimeError(
            f"Cannot draw polysample.{family} from parameters on different devices: {where}. "
            "Expected every tensor parameter on one device (as torch.distributions' own draws "
            "need). Received: the devices above. Move the parameters to one device, e.g. "
            "with .to(device).")


def _all_finite(t: torch.Tensor) -> bool:
    # torch.isfinite(t).all() costs about 6 us even for one value; these cost 0.2 to 2 us.
    n = t.numel()
    if n == 1:
        return math.isfinite(t.item())
    if n <= 16:
        return all(map(math.isfinite, t.detach().reshape(-1).tolist()))
    if n == 0:
        return True
    lo, hi = torch.aminmax(_compact(t.detach()))  # NaN propagates to both
    return math.isfinite(lo.item()) and math.isfinite(hi.item())


#: Families whose ``probs`` torch divides by their sum along the last dimension.
_NORMALIZED_PROBS = frozenset({"Categorical", "OneHotCategorical",
                               "OneHotCategoricalStraightThrough", "Multinomial",
                               "RelaxedOneHotCategorical"})


def _raise_non_finite(family: str, name: str, t: torch.Tensor) -> None:
    bad = (~torch.isfinite(t)).nonzero()[0]
    value = t[tuple(bad.tolist())].item()
    where = f" at index {tuple(bad.tolist())} of a tensor of shape {tuple(t.shape)}" \
        if t.dim() else ""
    if name == "probs" and family in _NORMALIZED_PROBS and math.isnan(value):
        # torch normalizes probs by their sum: the NaN is 0 / 0, a row of zeros
        where += (" (probs are divided by their sum: a row whose probabilities are all 0 gives "
                  "NaN; give every row a positive sum)")
    raise InvalidParameterError(
        f"Invalid parameters for polysample.{family}: {name} must be finite to draw from. "
        f"Expected finite values. Received: {name}={value}{where}. Non-finite parameters are "
        "refused before any backend draws, whatever validate_args says (a sampler returns "
        "garbage or never returns on them). Give finite parameters (log_prob() still takes "
        "them as torch does)."
    )


# ---------------------------------------------------------------------- sizes
_LIMITS: dict[torch.device, int | None] = {}


def memory_limit(device: torch.device) -> int | None:
    """Bytes no single result on ``device`` can exceed: the machine's physical memory for the
    CPU, the device's total memory for CUDA; None (no limit known) elsewhere."""
    limit = _LIMITS.get(device, -1)
    if limit != -1:
        return limit
    limit = None
    try:
        if device.type == "cpu":
            limit = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        elif device.type == "cuda":
            limit = torch.cuda.get_device_properties(device).total_memory
    except (ValueError, OSError, AttributeError, RuntimeError, AssertionError):
        limit = None
    _LIMITS[device] = limit
    return limit


def _bytes(shape: torch.Size, batch: torch.Size, event: torch.Size, dtype: torch.dtype) -> int:
    # math.prod of Python ints: torch.Size.numel() wraps around silently past 2**63.
    return math.prod(shape) * math.prod(batch) * math.prod(event) * dtype.itemsize


def _human(n: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"):
        if n < 1024 or unit == "EiB":
            return f"{n:.3g} {unit}" if unit != "bytes" else f"{n} bytes"
        n /= 1024  # type: ignore[assignment]
    return f"{n} bytes"  # pragma: no cover


def _message(family: str, what: str, shape: torch.Size, params: Any, nbytes: int,
             why: str) -> str:
    full = tuple(shape) + tuple(params.batch_shape) + tuple(params.event_shape)
    return (
        f"Cannot draw polysample.{family}.{what}(sample_shape={tuple(shape)}): the result, of "
        f"shape {full} and dtype {params.dtype}, needs {nbytes} bytes ({_human(nbytes)}), "
        f"{why}. Expected a result that fits in memory. Draw in chunks (several calls with a "
        "smaller sample_shape), or reduce sample_shape."
    )


#: Results up to this many bytes are drawn without looking up the device's memory.
SMALL_RESULT = 1 << 24


def result_bytes(params: Any, shape: torch.Size = torch.Size()) -> int:
    """Bytes of a result of ``sample_shape=shape`` (per sample when ``shape`` is ``()``)."""
    return _bytes(shape, params.batch_shape, params.event_shape, params.dtype)


def _meminfo_available() -> int | None:
    """Bytes this process could still get now (Linux): ``MemAvailable`` plus free swap from
    ``/proc/meminfo``, capped by the cgroup's limit less its usage (a container's memory.max);
    None where neither can be read."""
    found: list[int] = []
    try:
        with open("/proc/meminfo", "rb") as f:
            info = {k: int(v.split()[0]) * 1024 for k, _, v in
                    (line.decode().partition(":") for line in f) if v.strip()}
        if "MemAvailable" in info:
            found.append(info["MemAvailable"] + info.get("SwapFree", 0))
    except (OSError, ValueError):
        pass
    try:
        with open("/sys/fs/cgroup/memory.max") as f:
            top = f.read().strip()
        if top != "max":
            with open("/sys/fs/cgroup/memory.current") as f:
                found.append(max(int(top) - int(f.read().strip()), 0))
    except (OSError, ValueError):
        pass
    return min(found) if found else None


def check_size(family: str, what: str, shape: torch.Size, params: Any) -> None:
    """Raise :class:`SampleTooLargeError` if the result cannot fit in the device's memory: its
    total memory, and on the CPU also the memory available now (a result above it would have
    the process killed by the system's out-of-memory handler, not raise)."""
    nbytes = _bytes(shape, params.batch_shape, params.event_shape, params.dtype)
    if nbytes <= SMALL_RESULT:
        return
    limit = memory_limit(params.device)
    if limit is not None and nbytes > limit:
        where = ("this machine's physical memory" if params.device.type == "cpu"
                 else f"the total memory of {params.device}")
        raise SampleTooLargeError(_message(
            family, what, shape, params, nbytes,
            f"more than {where} ({limit} bytes, {_human(limit)})"))
    if params.device.type == "cpu" and nbytes > AVAILABLE_CHECK:
        free = _meminfo_available()
        if free is not None and nbytes > free:
            raise SampleTooLargeError(_message(
                family, what, shape, params, nbytes,
                f"more than the memory available to this process now ({free} bytes, "
                f"{_human(free)}: free and reclaimable memory, and free swap, within its "
                "cgroup's limit): the system would kill the process rather than let it fail"))


#: CPU results above this many bytes are also checked against the memory available now
#: (reading /proc/meminfo costs about 30 us: nothing beside a draw of this size).
AVAILABLE_CHECK = 1 << 28


def complex_kind(value: Any) -> str | None:
    """How to name ``value`` in an error if it is complex (a tensor of a complex dtype or a
    Python ``complex``), else None."""
    if isinstance(value, torch.Tensor):
        return f"a tensor of dtype {value.dtype}" if value.is_complex() else None
    return f"the complex number {value!r}" if isinstance(value, complex) else None


#: The most dimensions torch's operations take on a tensor.
MAX_DIMS = 64


def check_real(family: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """Raise :class:`InvalidParameterTypeError` at construction for a complex parameter.
    Every family's parameters are real; torch's classes fail on complex ones in a different
    way per family and backend (a raw ``NotImplementedError``, a complex draw that broke the
    backend contract, or, for ``Binomial`` and ``NegativeBinomial``, a draw from the real part
    without a word)."""
    named = [*(f"argument {i}" for i in range(len(args))), *kwargs]
    for name, value in zip(named, (*args, *kwargs.values())):
        if isinstance(value, torch.Tensor) and value.dim() > MAX_DIMS:
            # torch's reductions (the finiteness and constraint checks) refuse such a tensor
            # with a bare RuntimeError, and no result of it could be made
            raise InvalidParameterRuntimeError(
                f"Invalid parameters for polysample.{family}: expected parameters of at most "
                f"{MAX_DIMS} dimensions (torch's limit for a tensor's operations). Received: "
                f"{name} of {value.dim()} dimensions. Remove the dimensions of size 1 "
                "(x.squeeze()), or reshape it.")
        kind = complex_kind(value)
        if kind is not None:
            raise InvalidParameterTypeError(
                f"Invalid parameters for polysample.{family}: expected real parameters "
                f"(numbers, or tensors of a floating, integer or bool dtype). Received: {name} "
                f"{kind}. Pass its real part (x.real) if that is what you meant.")


@functools.cache
def _signature(family: str) -> tuple[tuple[str, ...], dict[str, Any]]:
    """The names of torch's constructor arguments of ``family`` (in order) and their
    defaults (``inspect.Parameter.empty`` for a required one)."""
    params = inspect.signature(getattr(torch.distributions, family).__init__).parameters
    names = tuple(n for n, p in params.items()
                  if n != "self" and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD,
                                               p.KEYWORD_ONLY))
    return names, {n: params[n].default for n in names}


@functools.cache
def _broadcast_args(family: str) -> frozenset[str]:
    """The constructor arguments torch broadcasts as numbers or tensors (its
    ``arg_constraints``), and Multinomial's ``total_count``, which must be a Python int."""
    constraints = getattr(torch.distributions, family).arg_constraints
    if isinstance(constraints, property):  # per instance (Uniform, Wishart): every argument
        return frozenset(_signature(family)[0])
    return frozenset(constraints) | {"total_count"}


def check_types(family: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """Raise :class:`InvalidParameterTypeError` at construction for a parameter that is not a
    number or a tensor (a string, ``None`` where the argument has no ``None`` default, a list,
    a NumPy array): torch's constructors raise a ``ValueError`` that names no argument ("Input
    arguments must all be instances of Number, torch.Tensor ...") or, for ``Multinomial``'s
    ``total_count``, a misleading one ("inhomogeneous total_count is not supported")."""
    names, defaults = _signature(family)
    given = list(zip(names, args)) + [(k, v) for k, v in kwargs.items() if k in defaults]
    for name, value in given:
        if name == "validate_args":
            continue
        if value is None:
            if defaults.get(name, inspect.Parameter.empty) is None:
                continue
        elif isinstance(value, torch.Tensor | int | float | complex) or hasattr(
                type(value), "__torch_function__"):
            continue
        # A NumPy scalar such as np.float32 is a numbers.Number but not a Python int or float,
        # which torch's constructors broadcast: they raised a ValueError naming nothing. Other
        # arguments (LKJCholesky's dim) take it.
        scalar = isinstance(value, numbers.Number)
        if scalar and name not in _broadcast_args(family):
            continue
        raise InvalidParameterTypeError(
            f"Invalid parameters for polysample.{family}: expected {name} to be a number or a "
            f"torch.Tensor. Received: {type(value).__name__} {value!r:.60}. Give {name} as a "
            + ("Python number or a tensor (float(...) or torch.as_tensor(...) converts a "
               "NumPy scalar)." if scalar else
               "number or a tensor (torch.as_tensor(...) converts a list or a NumPy array)."))


def check_event_size(family: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """Raise :class:`SampleTooLargeError` at construction when a single draw cannot fit in
    memory because of a Python-int size parameter (``LKJCholesky(dim)``: a ``(dim, dim)``
    matrix). torch's constructor allocates O(dim) first: ``dim = 10**9`` took 20 s and
    several GiB before failing with a misleading constraint error."""
    if family != "LKJCholesky":
        return
    dim = kwargs["dim"] if "dim" in kwargs else (args[0] if args else None)
    if isinstance(dim, float) or (isinstance(dim, torch.Tensor) and dim.is_floating_point()):
        # torch's message ("torch.Size() takes an iterable of 'int'") names no argument
        raise InvalidParameterTypeError(
            f"Invalid parameters for polysample.{family}: expected dim, the size of the "
            f"correlation matrices, to be an int. Received: dim={dim!r:.40} "
            f"({type(dim).__name__}). Give dim as an int, e.g. dim=3.")
    if isinstance(dim, bool) or not isinstance(dim, int) or dim <= 1:
        return
    conc = kwargs["concentration"] if "concentration" in kwargs else (
        args[1] if len(args) > 1 else None)
    dtype, device = torch.get_default_dtype(), torch.device("cpu")
    if isinstance(conc, torch.Tensor):
        device = conc.device
        if conc.is_floating_point():
            dtype = conc.dtype
    nbytes = dim * dim * dtype.itemsize
    if nbytes <= SMALL_RESULT:
        return
    limit = memory_limit(device)
    if limit is not None and nbytes > limit:
        where = ("this machine's physical memory" if device.type == "cpu"
                 else f"the total memory of {device}")
        raise SampleTooLargeError(
            f"Cannot construct polysample.{family}(dim={dim}): a single draw, of shape "
            f"({dim}, {dim}) and dtype {dtype}, needs {nbytes} bytes ({_human(nbytes)}), more "
            f"than {where} ({limit} bytes, {_human(limit)}). Expected a dim whose draw fits "
            "in memory. Reduce dim.")


#: A failed allocation while drawing a result smaller than this is not blamed on the
#: ``sample_shape`` (64 MiB: a draw's scratch memory is a small multiple of its result).
SMALL_RESULT_BYTES = 64 << 20


def allocation_error(exc: BaseException, family: str, what: str, shape: torch.Size,
                     params: Any) -> SampleTooLargeError | None:
    """The :class:`SampleTooLargeError` for a library's failure to allocate (NumPy's
    ``MemoryError``, torch's allocator ``RuntimeError``), or None for any other exception."""
    if isinstance(exc, SampleTooLargeError):
        return None
    if not isinstance(exc, MemoryError):
        text = str(exc)  # torch's CPU allocator and CUDA's OutOfMemoryError are RuntimeErrors
        if not (isinstance(exc, RuntimeError)
                and ("can't allocate memory" in text or "out of memory" in text)):
            return None
    nbytes = _bytes(shape, params.batch_shape, params.event_shape, params.dtype)
    if nbytes < SMALL_RESULT_BYTES:
        # the caller's sample_shape is not the cause: advice to reduce it misled (a backend's
        # own 8 TB scratch allocation for 4 values; an outside trial)
        full = tuple(shape) + tuple(params.batch_shape) + tuple(params.event_shape)
        return SampleTooLargeError(
            f"Cannot draw polysample.{family}.{what}(sample_shape={tuple(shape)}): the backend "
            f"could not allocate memory ({type(exc).__name__}: {quoted(exc)}), although the "
            f"result, of shape {full} and dtype {params.dtype}, needs only {nbytes} bytes "
            f"({_human(nbytes)}). Expected the memory a draw of this size needs. The backend "
            "asked for far more than the result (a defect to report to its authors), or the "
            "process has run out of memory: a smaller sample_shape is unlikely to help.")
    return SampleTooLargeError(_message(
        family, what, shape, params, nbytes,
        "and the backend could not allocate the memory it needs to draw it (which can be "
        f"more than the result's: {type(exc).__name__}: {quoted(exc)})"))
