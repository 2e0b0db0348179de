"""The exceptions polysample raises.

Every error is a :class:`PolysampleError` and also a subclass of the builtin a caller would
naturally catch (``ValueError``, ``ImportError``, ``NotImplementedError``, ``RuntimeError``), so
code written against ``torch.distributions`` keeps catching what it caught before: where torch
raises ``TypeError`` or ``RuntimeError`` for an input, the error is also that class. Messages say what was
expected, what was received, what is available and what to do next.
"""

from __future__ import annotations

__all__ = [
    "PolysampleError",
    "UnknownBackendError",
    "BackendUnavailableError",
    "UnsupportedFamilyError",
    "NotReparameterizableError",
    "ConfigError",
    "InvalidParameterError",
    "InvalidParameterTypeError",
    "InvalidParameterRuntimeError",
    "InvalidParameterNotImplementedError",
    "BackendContractError",
    "NotTraceableError",
    "SampleTooLargeError",
    "invalid_parameter",
    "did_you_mean",
]


class PolysampleError(Exception):
    """Base class of every error raised by polysample."""


class UnknownBackendError(PolysampleError, ValueError):
    """A backend name that no installed plugin registered."""


class BackendUnavailableError(PolysampleError, ImportError):
    """A registered backend whose dependencies are missing or that failed to load.

    The underlying exception is chained as ``__cause__``.
    """


class UnsupportedFamilyError(PolysampleError, NotImplementedError):
    """The selected backend cannot draw this family (and no fallback could)."""


class NotReparameterizableError(PolysampleError, NotImplementedError):
    """``rsample()`` was called on a family (or parameter) without a pathwise gradient."""


class ConfigError(PolysampleError, ValueError):
    """A bad configuration value; the message names its source (file and key, or variable)."""


class InvalidParameterError(PolysampleError, ValueError):
    """Invalid distribution parameters, value, sample shape or seed given by the caller.

    Where ``torch.distributions`` raises ``TypeError`` or ``RuntimeError`` for the same input,
    polysample raises the subclass that is also that builtin
    (:class:`InvalidParameterTypeError`, :class:`InvalidParameterRuntimeError`), so that
    ``except ValueError`` and torch's own ``except`` clause both catch it.
    """


class InvalidParameterTypeError(InvalidParameterError, TypeError):
    """An invalid input where torch raises ``TypeError`` (e.g. an integer tensor where torch
    needs a floating one, or an argument of the wrong kind)."""


class InvalidParameterRuntimeError(InvalidParameterError, RuntimeError):
    """An invalid input where torch raises ``RuntimeError``: parameters (or a value) whose
    shapes do not broadcast, mismatched dtypes, a negative ``sample_shape``."""


class InvalidParameterNotImplementedError(InvalidParameterRuntimeError, NotImplementedError):
    """An :class:`InvalidParameterError` where torch raised ``NotImplementedError`` for the
    same input (a float16 covariance matrix that also holds a NaN: torch lacks the kernel and
    says so first): ``except NotImplementedError`` written for torch keeps catching it."""


def invalid_parameter(message: str, cause: BaseException | None = None) -> InvalidParameterError:
    """The :class:`InvalidParameterError` for ``message`` that is also the builtin class of
    ``cause`` (the exception torch raised for the same input): ``TypeError`` gives
    :class:`InvalidParameterTypeError`, ``NotImplementedError``
    :class:`InvalidParameterNotImplementedError`, another ``RuntimeError``
    :class:`InvalidParameterRuntimeError`,
    anything else (``ValueError``, ``None``) the plain class. Chain it: ``raise ... from cause``.
    """
    if isinstance(cause, TypeError):
        return InvalidParameterTypeError(message)
    if isinstance(cause, NotImplementedError):
        return InvalidParameterNotImplementedError(message)
    if isinstance(cause, RuntimeError):
        return InvalidParameterRuntimeError(message)
    return InvalidParameterError(message)


class BackendContractError(PolysampleError, RuntimeError):
    """A backend returned something that breaks the sample/rsample contract.

    Raised by the core, naming the backend, instead of passing a wrong tensor on to the user.
    The core's messages end with :data:`USER_ADVICE`, for the user who called; the conformance
    suite, whose reader writes the backend, shows :data:`AUTHOR_ADVICE` in its place.
    """


#: The sentence that ends the core's :class:`BackendContractError` messages: what the user who
#: called can do.
USER_ADVICE = "This is a bug in that backend; choose another with backend=..."
#: What the conformance suite says in its place: its reader is the backend's author.
AUTHOR_ADVICE = ("The core refuses such a result in every call (docs/plugins.md, \"What the core "
                 "checks\"): fix the backend.")


def for_author(exc: BackendContractError) -> str:
    """The message of a :class:`BackendContractError` with :data:`AUTHOR_ADVICE` in place of
    :data:`USER_ADVICE` (a message without it is returned as it is)."""
    return str(exc).replace(USER_ADVICE, AUTHOR_ADVICE)


def quoted(exc: BaseException | str, limit: int = 300) -> str:
    """Another library's message for quoting inside one of polysample's: on one line, cut at a
    word boundary after at most ``limit`` characters (marked with an ellipsis), and ending with
    a full stop so that the sentence after it starts apart from it."""
    text = " ".join(str(exc).split())
    if len(text) > limit:
        cut = text[:limit]
        space = cut.rfind(" ")
        text = (cut[:space] if space > limit // 2 else cut).rstrip(" ,;:") + " ..."
    if not text:
        return type(exc).__name__ + "." if isinstance(exc, BaseException) else "."
    return text if text[-1] in ".!?)]" else text + "."


def did_you_mean(name: str, candidates: list[str] | tuple[str, ...]) -> str:
    """`` Did you mean 'x'?`` for the closest candidate to a misspelt ``name``, or ``""``."""
    import difflib

    if not isinstance(name, str):
        return ""
    names = list(candidates)
    exact = [c for c in names if c.lower() == name.strip().lower()]
    if exact:  # another case or stray spaces ('NumPy', ' numpy')
        return f" Did you mean {exact[0]!r}?"
    lower = {c.lower(): c for c in names}
    close = difflib.get_close_matches(name.strip().lower(), list(lower), n=1, cutoff=0.6)
    return f" Did you mean {lower[close[0]]!r}?" if close else ""


def type_name(value: object) -> str:
    """The qualified name of ``value``'s type where it is not a builtin's (``numpy.random.
    Generator``, not ``Generator``: a message must not leave the reader guessing whose)."""
    t = type(value)
    module = getattr(t, "__module__", "") or ""
    if module == "builtins":
        return t.__qualname__
    public = module.split(".")
    # numpy.random._generator -> numpy.random (the public module of the name)
    while len(public) > 1 and public[-1].startswith("_"):
        public.pop()
    return ".".join(public + [t.__qualname__])


class NotTraceableError(PolysampleError, RuntimeError):
    """A draw or ``log_prob`` computed outside torch was asked for under a torch transform
    that cannot follow it: ``torch.jit.trace``, or a ``torch.func`` transform (``vmap``,
    ``grad``, ``jacrev``, ``jacfwd``, ``hessian``, ...).

    The tracer records only torch operations: a value made by NumPy or TFP would be baked into
    the trace as a constant. ``vmap`` would give every batch element the same draw (whatever
    its ``randomness=``), and the ``torch.func`` gradient transforms cannot see through it.
    Raised instead, naming the backend; backends whose :attr:`~polysample.Backend.traceable`
    is True (the torch backend) trace and transform normally.
    """


class SampleTooLargeError(PolysampleError, MemoryError):
    """A draw whose result cannot be allocated: more bytes than the device has memory.

    Raised before anything is drawn when ``sample_shape + batch_shape + event_shape`` times the
    result's element size exceeds the device's memory (the machine's physical memory for CPU
    tensors, and for a CPU result above 256 MiB the memory available at the call), and in place of the library's own allocation failure (NumPy's ``MemoryError``,
    torch's allocator ``RuntimeError``) when a smaller draw still does not fit. The message
    names the requested shape, dtype and bytes. Also a ``MemoryError``, so ``except
    MemoryError`` keeps catching it.
    """
