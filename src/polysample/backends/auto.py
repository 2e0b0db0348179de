"""The ``auto`` backend: each (family, operation) drawn by the fastest conforming backend.

``backend="auto"`` routes every ``sample``, ``rsample`` and ``log_prob`` to another installed
backend, chosen from a measured routing table (:mod:`polysample.backends.routing`): the
backend that is fastest for a draw of that many values among those that pass the conformance
suite for the family and declare no upstream failure for it. ``rsample`` goes only to a backend
that reparameterizes the family, so gradients are kept. Seeds pass through unchanged: with a
given table, the same seed gives the same values (those of the backend the route names).

The table is the user's (written by ``polysample bench --calibrate``) or the defaults shipped
in the package; ``polysample backends --routes`` shows it with the figures and verdicts behind
each route. To reproduce values bit for bit across machines or versions, pin a backend
(``backend="torch"``): a new calibration may change the routes, hence the values.

Like every backend it is registered through the plugin hook, and it is cheap to load: the
backends it routes to are loaded (not their frameworks) when its families are first listed.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch

from ..core.backend import Backend, FamilySupport, Seed
from ..core.errors import (
    BackendUnavailableError,
    NotReparameterizableError,
    UnknownBackendError,
    UnsupportedFamilyError,
)
from ..core.families import FAMILIES
from ..core.hookspecs import hookimpl
from ..core.params import Params
from . import routing

__all__ = ["AutoBackend", "RouteChoice"]

NAME = "auto"
_NONE: dict[str, Any] = {}


@dataclass(frozen=True)
class RouteChoice:
    """One resolved route: the eligible backends (loaded) and why others were left out."""

    route: routing.Route
    eligible: frozenset[str]
    excluded: Mapping[str, str]  # backend -> reason
    backends: Mapping[str, Backend]
    segments: tuple[tuple[int, str], ...]  # (n_from, backend): the choice by size

    @property
    def single(self) -> Backend | None:
        """The backend when one draws every size (the route needs no size then)."""
        return self.backends[self.segments[0][1]] if len(self.segments) == 1 else None

    def pick(self, n: int) -> Backend:
        name = self.segments[0][1]
        for start, b in self.segments:
            if n >= start:
                name = b
            else:
                break
        return self.backends[name]


def _numel(family: str, params: Mapping[str, Any], sample_shape: torch.Size) -> int:
    p = params if isinstance(params, Params) else Params.of(family, params)
    return sample_shape.numel() * p.batch_shape.numel() * p.event_shape.numel()


class AutoBackend(Backend):
    """Routes each (family, operation) to the fastest conforming backend of a routing table."""

    name = NAME
    options: Mapping[str, str] | None = {}  # no [tool.polysample.<name>] options
    #: Every draw is another backend's: the conformance suite validates those.
    router = True

    def __init__(self, table: routing.RoutingTable | None = None,
                 loader: Callable[[str], Backend] | None = None) -> None:
        self._table_given = table
        self._loader = loader
        self._lock = threading.Lock()
        self._state: tuple[routing.RoutingTable, dict[str, dict[str, RouteChoice]],
                           dict[str, FamilySupport], dict[str, str]] | None = None

    # ------------------------------------------------------------------ the table
    @property
    def table(self) -> routing.RoutingTable:
        return self._resolved()[0]

    def reload(self) -> None:
        """Read the routing table again (after a calibration) and re-resolve the routes."""
        with self._lock:
            self._state = None

    def routes(self) -> dict[str, dict[str, RouteChoice]]:
        """family -> operation -> the resolved route (eligible backends, exclusions)."""
        return self._resolved()[1]

    def version(self) -> str:
        t = self.table
        when = f", measured {t.created[:10]}" if t.created else ""
        return f"routes: {t.source}{when}"

    def _load(self, name: str) -> Backend:
        if self._loader is not None:
            return self._loader(name)
        from ..core.plugins import registry

        return registry.load(name)

    def _resolved(self) -> tuple[routing.RoutingTable, dict[str, dict[str, RouteChoice]],
                                 dict[str, FamilySupport], dict[str, str]]:
        state = self._state
        if state is not None:
            return state
        with self._lock:
            if self._state is None:
                self._state = self._resolve()
            return self._state

    def _resolve(self) -> tuple[routing.RoutingTable, dict[str, dict[str, RouteChoice]],
                                dict[str, FamilySupport], dict[str, str]]:
        table = self._table_given if self._table_given is not None else routing.load()
        decls = routing.declared_failures()
        loaded: dict[str, Backend | None] = {}
        why_not: dict[str, str] = {}

        def backend(name: str) -> Backend | None:
            if name not in loaded:
                if name == NAME:  # a table naming auto itself: never route to it
                    loaded[name], why_not[name] = None, "auto cannot route to itself"
                    return None
                try:
                    loaded[name] = self._load(name)
                except (UnknownBackendError, BackendUnavailableError) as exc:
                    loaded[name] = None
                    why_not[name] = f"not available here ({type(exc).__name__})"
            return loaded[name]

        routes: dict[str, dict[str, RouteChoice]] = {}
        supports: dict[str, FamilySupport] = {}
        omitted: dict[str, str] = {}
        for family, ops in sorted(table.routes.items()):
            resolved: dict[str, RouteChoice] = {}
            for op, route in ops.items():
                eligible: set[str] = set()
                excluded: dict[str, str] = {}
                for c in route.candidates:
                    b = backend(c.backend)
                    sup = b.families().get(family) if b is not None else None
                    d = routing.declared(c.backend, family, decls)
                    if b is None:
                        excluded[c.backend] = why_not[c.backend]
                    elif c.verdict != "pass":
                        excluded[c.backend] = f"conformance: {c.verdict}" + (
                            f" ({c.detail})" if c.detail else "")
                    elif d is not None:
                        excluded[c.backend] = f"declared failure: {d.reason}"
                    elif sup is None or not sup.sample:
                        excluded[c.backend] = f"does not offer {family}"
                    elif op == "rsample" and not sup.rsample:
                        excluded[c.backend] = f"does not reparameterize {family}"
                    else:
                        eligible.add(c.backend)
                frozen = frozenset(eligible)
                segs = tuple(route.segments(frozen))
                resolved[op] = RouteChoice(route, frozen, excluded,
                                           {n: loaded[n] for n in frozen},  # type: ignore[misc]
                                           segs)
            sample = resolved.get("sample")
            if sample is None or not sample.eligible:
                reasons = "; ".join(f"{b}: {r}" for b, r in sample.excluded.items()) \
                    if sample is not None else "not in the routing table"
                omitted[family] = f"no backend qualifies for auto ({reasons})"
                continue
            routes[family] = resolved
            rs = resolved.get("rsample")
            rsample = rs is not None and bool(rs.eligible)
            rsample_params = None
            if rsample:
                assert rs is not None
                sets = [rs.backends[n].families()[family].rsample_params for n in rs.eligible]
                named = [s for s in sets if s is not None]
                rsample_params = frozenset.intersection(*named) if named else None
            lp = resolved.get("log_prob")
            scores = lp is not None and any(
                lp.backends[n].families()[family].log_prob for n in lp.eligible)
            note = "; ".join(
                f"{op}: " + ", ".join(f"{b} from {n:,}" if n > 1 else b for n, b in r.segments)
                for op, r in resolved.items() if r.segments)
            supports[family] = FamilySupport(sample=True, rsample=rsample,
                                             log_prob=bool(scores),
                                             rsample_params=rsample_params, note=note)
        for family in FAMILIES.keys() - routes.keys():
            omitted.setdefault(family, f"not in the routing table ({table.source})")
        return table, routes, supports, omitted

    # ------------------------------------------------------------------ Backend
    @property
    def omitted(self) -> dict[str, str]:  # type: ignore[override]
        """Families ``auto`` does not offer, and why (shown in errors)."""
        return self._resolved()[3]

    def families(self) -> Mapping[str, FamilySupport]:
        return self._resolved()[2]

    def _choice(self, family: str, op: str) -> RouteChoice:
        state = self._state  # the resolved routes, without a method call once they exist
        routes = (state if state is not None else self._resolved())[1]
        choice = routes.get(family, _NONE).get(op)
        if choice is None or not choice.eligible:
            if op == "rsample":
                raise NotReparameterizableError(
                    f"{family} has no reparameterized route on backend 'auto': no eligible "
                    "backend of the routing table reparameterizes it. Use sample() with "
                    "log_prob(), or see `polysample backends --routes`.")
            raise UnsupportedFamilyError(
                f"Backend 'auto' has no {op} route for {family!r}: "
                f"{self.omitted.get(family, 'not in the routing table')}.")
        return choice

    def backend_for(self, family: str, op: str, n: int) -> Backend:
        """The backend ``auto`` uses for ``op`` of ``family`` on ``n`` values."""
        return self._choice(family, op).pick(n)

    def _pick(self, family: str, op: str, params: Mapping[str, Any],
              sample_shape: torch.Size) -> Backend:
        choice = self._choice(family, op)
        single = choice.single
        if single is not None:  # one backend for every size: no need to count the values
            return single
        return choice.pick(_numel(family, params, sample_shape))

    def sample(self, family: str, params: Mapping[str, Any], sample_shape: torch.Size, *,
               seed: Seed = None) -> torch.Tensor:
        b = self._pick(family, "sample", params, sample_shape)
        return b.sample(family, params, sample_shape, seed=seed)

    def rsample(self, family: str, params: Mapping[str, Any], sample_shape: torch.Size, *,
                seed: Seed = None) -> torch.Tensor:
        b = self._pick(family, "rsample", params, sample_shape)
        return b.rsample(family, params, sample_shape, seed=seed)

    def log_prob(self, family: str, params: Mapping[str, Any],
                 value: torch.Tensor) -> torch.Tensor:
        b = self._choice(family, "log_prob").pick(value.numel())
        if b.families()[family].log_prob:
            return b.log_prob(family, params, value)
        # The routed backend leaves scoring to torch: so does auto.
        from .torch_backend import build

        return build(family, params).log_prob(value)


@hookimpl
def polysample_register_backends(register: Callable[..., None]) -> None:
    register(NAME, AutoBackend)
