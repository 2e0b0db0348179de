"""The ``Backend`` base class every backend, built-in or third-party, subclasses (interface v1).

The contract for implementers is :class:`Backend`'s docstring (``help(Backend)``).

:class:`TableBackend` does the dispatch for backends whose families are rows of a table (one
drawer per family) and normalises seeds through one method, ``rng``.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from .errors import (
    BackendContractError,
    NotReparameterizableError,
    PolysampleError,
    UnsupportedFamilyError,
)
from .params import Params

__all__ = ["Backend", "FamilySupport", "Seed", "TableBackend", "Row", "Drawer"]

#: What a backend receives as ``seed``.
Seed = np.random.SeedSequence | torch.Generator | None


def backend_label(backend: Any) -> str:
    """A backend's name for messages, quoted; an instance without one (judged by the
    conformance suite unregistered) is named by its class instead of ``''``."""
    name = getattr(backend, "name", "")
    return repr(name) if name else f"{type(backend).__name__} (an unnamed instance)"


@dataclass(frozen=True)
class FamilySupport:
    """What one backend can do for one family.

    Attributes:
        sample: ``sample()`` is supported.
        rsample: ``rsample()`` is supported (pathwise gradients).
        log_prob: the backend computes ``log_prob`` itself; when False the core scores with torch.
        rsample_params: when ``rsample`` is True, the parameters with a pathwise gradient;
            ``None`` means every floating parameter. (VonMises on some libraries: ``loc`` only.)
            ``probs`` and ``logits`` are one parameter given two ways: naming either covers
            both (see :meth:`reparameterizes`).
        note: a short human-readable remark (shown in ``polysample backends`` and the docs).
    """

    sample: bool = True
    rsample: bool = False
    log_prob: bool = False
    rsample_params: frozenset[str] | None = None
    note: str = ""

    def reparameterizes(self, name: str) -> bool:
        """Whether parameter ``name`` has a pathwise gradient (``rsample`` and
        ``rsample_params`` allowing it; ``probs`` and ``logits`` count as one)."""
        return self.rsample and in_rsample_params(self.rsample_params, name)


#: The two spellings of one parameter (:func:`in_rsample_params`).
_PROBABILITY_ALIAS = {"probs": "logits", "logits": "probs"}


def in_rsample_params(allowed: Collection[str] | None, name: str) -> bool:
    """Whether ``rsample_params`` value ``allowed`` (None: every floating parameter) gives
    ``name`` a pathwise gradient; ``probs`` and ``logits`` count as one parameter."""
    return allowed is None or name in allowed or _PROBABILITY_ALIAS.get(name, name) in allowed


class Backend:
    """Base class of a sampling backend (interface v1), built-in or third-party.

    Contract for implementers (the core enforces the user-facing contract around these calls):

    * ``__init__`` must be cheap and must not import heavy frameworks; import them on first use.
      Raise :class:`~polysample.BackendUnavailableError` from :meth:`Backend.check_available` (or
      ``__init__``) when a dependency is missing, saying which extra to install.
    * ``families()`` maps torch family names to :class:`FamilySupport`; a name that is not a torch
      family makes the backend fail to load (a typo must not silently drop a family).
    * The core calls ``sample``/``rsample``/``log_prob`` only for what ``families()`` claims
      (``rsample`` only where ``FamilySupport.rsample``, ``log_prob`` only where
      ``FamilySupport.log_prob``), so a backend needs no guards of its own.
    * They receive ``params``, a :class:`Params`: the canonical parameters
      named as torch names them (``polysample.plugin.FAMILIES``), validated and broadcast by
      the core, plus ``family``, ``batch_shape``, ``event_shape``, the result ``dtype``, the
      parameters' ``float_dtype`` and ``device``; and ``sample_shape`` as a ``torch.Size``.
    * ``seed`` is ``None`` (draw from this backend's global stream, see
      :class:`~polysample.plugin.GlobalStream`), a ``numpy.random.SeedSequence`` (a
      reproducible draw: same seed, same values), or a ``torch.Generator`` (the caller's torch
      stream; :func:`~polysample.plugin.seed_sequence_from` turns one into a ``SeedSequence``).
    * Return a ``torch.Tensor`` of shape ``sample_shape + batch_shape + event_shape``, on
      ``params.device``, of ``params.dtype``. ``sample`` is called with gradients disabled;
      ``rsample`` must be differentiable with respect to every parameter listed as
      reparameterizable in :class:`FamilySupport`; ``log_prob`` too, with respect to the
      parameters that require grad (the core checks both).
    * ``traceable`` (default False): set it to True only if every computation is made of torch
      operations (``torch.jit.trace`` then records draws); otherwise the core refuses to trace.
    * Optional: ``mixture_components()`` names the component families for which the backend
      reparameterizes ``MixtureSameFamily`` itself, in :meth:`Backend.rsample_mixture`.

    ``docs/plugins.md`` walks through writing one.
    """

    #: Registered name; set by the subclass (the registry also records the name it was given).
    name: str = ""
    #: Whether ``sample``/``rsample``/``log_prob`` are computed with torch operations only, so
    #: that ``torch.jit.trace`` records them. When False (the default, right for a backend
    #: that draws or scores in another library), the core raises
    #: :class:`~polysample.core.errors.NotTraceableError` under tracing instead of letting the
    #: tracer bake the values in as constants.
    traceable: ClassVar[bool] = False
    #: True for a backend that draws nothing itself but routes every call to other registered
    #: backends (``auto``). ``polysample validate`` checks those backends instead and leaves a
    #: router out unless it is named (``--backend auto``).
    router: ClassVar[bool] = False
    #: The options this backend reads from ``[tool.polysample.<name>]`` (option -> what it
    #: does), checked by the core when the backend loads: a key not listed is a
    #: ``ConfigError`` naming the file and key (``{}``: the backend takes no options). ``None``
    #: (the default): the backend reads its table itself, checking it with
    #: ``backend_options(name, known=...)``.
    options: Mapping[str, str] | None = None

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
        raise self._unimplemented("sample", family)

    def rsample(
        self,
        family: str,
        params: Mapping[str, Any],
        sample_shape: torch.Size,
        *,
        seed: Seed = None,
    ) -> torch.Tensor:
        raise self._unimplemented("rsample", family)

    def log_prob(
        self, family: str, params: Mapping[str, Any], value: torch.Tensor
    ) -> torch.Tensor:
        raise self._unimplemented("log_prob", family)

    def _unimplemented(self, op: str, family: str) -> PolysampleError:
        """The error of a base-class method ``op`` reached for ``family``: a contract bug when
        ``families()`` claims the operation for it (the method was not overridden), else the
        family or operation is not supported."""
        try:
            support = self.supports(family)
        except Exception:  # noqa: BLE001 - families() itself is broken: judge by the op alone
            support = None
        if support is not None and getattr(support, op, False):
            return BackendContractError(
                f"Backend {backend_label(self)} claims {op}() for {family!r} in families() but does not "
                f"implement it: Backend.{op}() was not overridden. Override {op}() (or derive "
                f"from TableBackend, whose rows draw), or do not claim {op} for {family!r} "
                "(docs/plugins.md).")
        if op == "rsample":
            return NotReparameterizableError(
                f"Backend {backend_label(self)} does not implement rsample() for {family!r}.")
        return UnsupportedFamilyError(
            f"Backend {backend_label(self)} does not implement {op}() for {family!r}.")

    # ------------------------------------------------------------------ mixtures (optional)
    def mixture_components(self) -> frozenset[str]:
        """Component families for which :meth:`rsample_mixture` reparameterizes
        ``MixtureSameFamily`` (none by default)."""
        return frozenset()

    def rsample_mixture(self, mixture_logits: torch.Tensor, component: Params,
                        sample_shape: torch.Size, *, seed: Seed = None) -> torch.Tensor:
        """A reparameterized draw of ``MixtureSameFamily(Categorical(logits=mixture_logits),
        <component>)``, shape ``sample_shape + batch_shape + event_shape`` of the mixture
        (the component's batch shape without its last dimension)."""
        raise NotReparameterizableError(
            f"Backend {backend_label(self)} does not reparameterize MixtureSameFamily."
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
            # By name alone: the class itself need not be importable (a notebook's backend).
            return (_registered_backend, (self.name,))
        return (_restore_backend, (type(self), self.name, self.__getstate__()))


def _registered_backend(name: str) -> Backend:
    from .plugins import load_backend

    return load_backend(name)


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


#: ``draw(params, sample_shape, rng, reparam) -> Tensor``: one family's drawer in a table.
Drawer = Callable[[Params, torch.Size, Any, bool], torch.Tensor]


@dataclass(frozen=True)
class Row:
    """One family of a :class:`TableBackend`.

    Attributes:
        draw: ``draw(params, sample_shape, rng, reparam)``; ``rng`` is what
            :meth:`TableBackend.rng` made from the call's seed; ``reparam`` is True for
            ``rsample`` (the result must then be differentiable), False for ``sample`` (called
            with gradients disabled: in-place operations on fresh noise are safe).
        rsample: ``rsample`` is offered (pathwise gradients).
        rsample_params: the parameters with a pathwise gradient (None: every floating one).
        log_prob: ``log_prob(params, value)``, or None to let the core score with torch.
        note: shown by ``polysample backends`` and in the docs' capability matrix.
    """

    draw: Drawer
    rsample: bool = False
    rsample_params: frozenset[str] | None = None
    log_prob: Callable[[Params, torch.Tensor], torch.Tensor] | None = None
    note: str = ""


class TableBackend(Backend):
    """A backend whose families are the rows of ``table`` (family name -> :class:`Row`).

    It derives ``families()`` from the table and dispatches ``sample``/``rsample``/``log_prob``
    to the row's functions, with the seed turned into the backend's own random state by one
    method, :meth:`rng`. A plain mapping of parameters (a direct call, not through the core) is
    turned into :class:`Params` first.
    """

    #: family name -> Row; set by the subclass.
    table: ClassVar[Mapping[str, Row]] = {}
    #: torch families left out on purpose, with the reason (shown in errors and the docs).
    omitted: ClassVar[Mapping[str, str]] = {}

    def rng(self, seed: Seed, params: Params) -> Any:
        """The random state a drawer receives for ``seed`` (None, a ``SeedSequence`` or a
        ``torch.Generator``; see :class:`Backend`): e.g. a ``numpy.random.Generator``
        from :func:`~polysample.core.seeds.seed_sequence_from`, or this backend's
        :class:`~polysample.plugin.GlobalStream` for None."""
        raise NotImplementedError

    def families(self) -> Mapping[str, FamilySupport]:
        sup: Mapping[str, FamilySupport] | None = self.__dict__.get("_supports")
        if sup is None:  # derived once from the table (families() runs on every draw)
            sup = {name: FamilySupport(sample=True, rsample=row.rsample,
                                       log_prob=row.log_prob is not None,
                                       rsample_params=row.rsample_params, note=row.note)
                   for name, row in self.table.items()}
            self.__dict__["_supports"] = sup
        return sup

    def _row(self, family: str) -> Row:
        row = self.table.get(family)
        if row is None:
            why = self.omitted.get(family)
            raise UnsupportedFamilyError(
                f"Backend {backend_label(self)} has no family {family!r}"
                + (f": {why}" if why else "") + f". Expected one of: "
                f"{', '.join(sorted(self.table))}."
            )
        return row

    def sample(self, family: str, params: Mapping[str, Any], sample_shape: torch.Size, *,
               seed: Seed = None) -> torch.Tensor:
        row = self.table.get(family) or self._row(family)
        p = params if type(params) is Params else Params.of(family, params)
        if torch.is_grad_enabled():  # a direct call: the core has disabled grad already
            with torch.no_grad():
                return row.draw(p, sample_shape, self.rng(seed, p), False)
        return row.draw(p, sample_shape, self.rng(seed, p), False)

    def rsample(self, family: str, params: Mapping[str, Any], sample_shape: torch.Size, *,
                seed: Seed = None) -> torch.Tensor:
        row = self.table.get(family) or self._row(family)
        if not row.rsample:
            raise NotReparameterizableError(
                f"{family} has no reparameterized sampler on backend {backend_label(self)}. Use "
                "sample() with log_prob() (score-function estimator) or a relaxed family."
            )
        p = params if type(params) is Params else Params.of(family, params)
        return row.draw(p, sample_shape, self.rng(seed, p), True)

    def log_prob(self, family: str, params: Mapping[str, Any],
                 value: torch.Tensor) -> torch.Tensor:
        row = self._row(family)
        if row.log_prob is None:
            raise UnsupportedFamilyError(
                f"Backend {backend_label(self)} does not score {family}; polysample scores it with "
                "torch."
            )
        return row.log_prob(Params.of(family, params), value)
