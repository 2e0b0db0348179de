"""The ``Backend`` base class every backend, built-in or third-party, subclasses.

Contract for implementers (the core enforces the user-facing contract around these calls):

* ``__init__`` must be cheap and must not import heavy frameworks; import them on first use.
  Raise :class:`~polysample.BackendUnavailableError` from :meth:`Backend.check_available` (or
  ``__init__``) when a dependency is missing, saying which extra to install.
* ``families()`` maps torch family names to :class:`FamilySupport`.
* ``sample``/``rsample``/``log_prob`` receive ``params`` named as torch names them
  (see :mod:`polysample.core.families`), already validated and broadcast to the batch shape,
  and ``sample_shape`` as a ``torch.Size``.
* ``seed`` is ``None`` (draw from this backend's global stream, see :meth:`global_seed_sequence`),
  a ``numpy.random.SeedSequence`` (a reproducible draw: same seed, same values), or a
  ``torch.Generator`` (the caller's torch stream; :func:`polysample.core.seeds.seed_sequence_from`
  turns one into a ``SeedSequence`` for backends that are not torch).
* Return a ``torch.Tensor`` of shape ``sample_shape + batch_shape + event_shape``, on the
  parameters' device, float dtype of the parameters (``int64`` for ``Categorical``).
  ``sample`` is called under ``torch.no_grad()``; ``rsample`` must be differentiable with
  respect to every parameter listed as reparameterizable in :class:`FamilySupport`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .errors import NotReparameterizableError, UnsupportedFamilyError

__all__ = ["Backend", "FamilySupport", "Seed"]

#: What a backend receives as ``seed``.
Seed = np.random.SeedSequence | torch.Generator | None


@dataclass(frozen=True)
class FamilySupport:
    """What one backend can do for one family.

    Attributes:
        sample: ``sample()`` is supported.
        rsample: ``rsample()`` is supported (pathwise gradients).
        log_prob: the backend computes ``log_prob`` itself; when False the core scores with torch.
        rsample_params: when ``rsample`` is True, the parameters with a pathwise gradient;
            ``None`` means every floating parameter. (VonMises on some libraries: ``loc`` only.)
        note: a short human-readable remark (shown in ``polysample backends`` and the docs).
    """

    sample: bool = True
    rsample: bool = False
    log_prob: bool = False
    rsample_params: frozenset[str] | None = None
    note: str = ""


class Backend:
    """Base class of a sampling backend. See the module docstring for the contract."""

    #: Registered name; set by the subclass (the registry also records the name it was given).
    name: str = ""

    # ------------------------------------------------------------------ metadata
    def version(self) -> str:
        """Version string of the library doing the drawing (shown by ``polysample backends``)."""
        return ""

    def check_available(self) -> None:
        """Raise ``BackendUnavailableError`` if the backend cannot run here. Must stay cheap."""

    def families(self) -> Mapping[str, FamilySupport]:
        """Families this backend supports, keyed by torch's family name."""
        raise NotImplementedError

    def supports(self, family: str) -> FamilySupport | None:
        return self.families().get(family)

    # ------------------------------------------------------------------ drawing
    def sample(
        self,
        family: str,
        params: Mapping[str, Any],
        sample_shape: torch.Size,
        *,
        seed: Seed = None,
    ) -> torch.Tensor:
        raise UnsupportedFamilyError(
            f"Backend {self.name!r} does not implement sample() for {family!r}."
        )

    def rsample(
        self,
        family: str,
        params: Mapping[str, Any],
        sample_shape: torch.Size,
        *,
        seed: Seed = None,
    ) -> torch.Tensor:
        raise NotReparameterizableError(
            f"Backend {self.name!r} does not implement rsample() for {family!r}."
        )

    def log_prob(
        self, family: str, params: Mapping[str, Any], value: torch.Tensor
    ) -> torch.Tensor:
        raise UnsupportedFamilyError(
            f"Backend {self.name!r} does not implement log_prob() for {family!r}."
        )

    def __repr__(self) -> str:
        return f"<{type(self).__name__} backend {self.name!r}>"

    # ------------------------------------------------------------------ pickling
    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle by reference when registered: unpickling in a process where ``self.name`` is
        registered to an instance of the same class gives that instance (its streams and
        caches); elsewhere a new instance with this one's state (``__getstate__``, which a
        backend overrides to leave out caches that cannot be pickled)."""
        from .plugins import registry

        entry = registry.entries().get(self.name)
        if entry is not None and entry.instance is self:
            return (_restore_backend, (type(self), self.name, None))
        return (_restore_backend, (type(self), self.name, self.__getstate__()))


def _restore_backend(cls: type[Backend], name: str, state: Any) -> Backend:
    from .plugins import registry

    entry = registry.entries().get(name)
    if entry is not None and entry.factory is not None:
        try:
            registered = registry.load(name)
        except Exception:  # noqa: BLE001 - fall back to a fresh instance below
            registered = None
        if type(registered) is cls:
            return registered
    obj = cls.__new__(cls)
    if state:
        if hasattr(obj, "__setstate__"):
            obj.__setstate__(state)
        else:
            obj.__dict__.update(state)
    obj.name = name
    return obj
