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
