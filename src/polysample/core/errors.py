"""The exceptions polysample raises.

Every error is a :class:`PolysampleError` and also a subclass of the builtin a caller would
naturally catch (``ValueError``, ``ImportError``, ``NotImplementedError``), so code written
against ``torch.distributions`` keeps catching what it caught before. Messages say what was
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
    "BackendContractError",
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
    """Invalid distribution parameters, value, sample shape or seed given by the caller."""


class BackendContractError(PolysampleError, RuntimeError):
    """A backend returned something that breaks the sample/rsample contract.

    Raised by the core, naming the backend, instead of passing a wrong tensor on to the user.
    """


def did_you_mean(name: str, candidates: list[str] | tuple[str, ...]) -> str:
    """`` Did you mean 'x'?`` for the closest candidate to a misspelt ``name``, or ``""``."""
    import difflib

    close = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return f" Did you mean {close[0]!r}?" if close else ""
