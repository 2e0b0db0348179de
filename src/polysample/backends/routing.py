"""The routing table of the ``auto`` backend: which backend draws each (family, operation).

A table is JSON (``schema`` :data:`SCHEMA`) written by ``polysample bench --calibrate``: the
library versions it was measured with and, per family and operation (``sample``, ``rsample``,
``log_prob``), the candidate backends with their measured cost and the conformance verdict
their route rests on. A draw of ``n`` values goes to the eligible candidate with the smallest
``overhead_s + per_value_s * n`` (ties: the first in name order), so the choice depends on the
table and ``n`` only: ``auto`` is deterministic for a given table.

A candidate is eligible when its verdict is ``"pass"``, its backend is installed and claims the
operation for the family (``rsample`` only where it reparameterizes the family), and no
declaration of the packaged ``known_failures.toml`` names that backend and family (declared
upstream failures exclude a backend from a family's route even when the table predates the
declaration).

Where the tables come from (:func:`load`): the user's table
(``platformdirs.user_cache_dir("polysample")/routes.json``, or ``POLYSAMPLE_ROUTES``), when it
is valid and was measured with the installed versions; otherwise the defaults shipped in the
package (measured on the project's machine), with a ``RuntimeWarning`` saying why the user's
table was set aside. A corrupt table never raises.

This module imports no framework and not the conformance suite (which imports SciPy).
"""

from __future__ import annotations

import fnmatch
import json
import math
import os
import tomllib
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from ..core.families import FAMILIES

__all__ = ["SCHEMA", "OPS", "Candidate", "Route", "RoutingTable", "RoutingTableError",
           "DEFAULTS_PATH", "user_table_path", "load", "declared_failures", "installed_versions",
           "stale_reasons"]

#: Version of the table format; a table of another schema is set aside.
SCHEMA = 1
OPS = ("sample", "rsample", "log_prob")
DEFAULTS_PATH = Path(__file__).with_name("auto_routes.json")
_KNOWN_FAILURES = Path(__file__).resolve().parent.parent / "conformance" / "known_failures.toml"
#: Libraries whose versions a table records; a different installed version makes it stale.
TRACKED = ("polysample", "torch", "numpy", "jax", "tensorflow", "tensorflow-probability")


class RoutingTableError(ValueError):
    """A routing table that cannot be used (malformed, another schema)."""


@dataclass(frozen=True)
class Candidate:
    """One backend's measured cost for a (family, operation), and its conformance verdict.

    Attributes:
        backend: the backend's registered name.
        overhead_s: seconds per call, fixed part (a one-value draw).
        per_value_s: seconds per value drawn (or scored) beyond the first.
        verdict: ``"pass"``, or why the backend is not routed to (``"fail"``, ``"declared"``,
            ``"not run"``).
        detail: the evidence: failing check ids, the declaration's reason, how many checks.
        figures: the raw measurements (seconds at each size), for ``backends --routes``.
    """

    backend: str
    overhead_s: float
    per_value_s: float
    verdict: str = "pass"
    detail: str = ""
    figures: Mapping[str, float] = field(default_factory=dict)

    def cost(self, n: int) -> float:
        return self.overhead_s + self.per_value_s * max(0, n - 1)

    def to_dict(self) -> dict[str, Any]:
        return {"backend": self.backend, "overhead_s": self.overhead_s,
                "per_value_s": self.per_value_s, "verdict": self.verdict,
                "detail": self.detail, "figures": dict(self.figures)}


@dataclass(frozen=True)
class Route:
    """The candidates of one (family, operation), and the eligible ones' choice by size."""

    family: str
    op: str
    candidates: tuple[Candidate, ...]

    def choose(self, n: int, eligible: frozenset[str] | set[str]) -> Candidate | None:
        """The eligible candidate with the smallest cost for ``n`` values (ties: name order)."""
        best: Candidate | None = None
        best_cost = math.inf
        for c in sorted(self.candidates, key=lambda c: c.backend):
            if c.backend not in eligible:
                continue
            cost = c.cost(n)
            if cost < best_cost:
                best, best_cost = c, cost
        return best

    def segments(self, eligible: frozenset[str] | set[str]) -> list[tuple[int, str]]:
        """``[(n_from, backend), ...]``: from ``n_from`` values on, ``backend`` draws (until
        the next segment). Exact for the linear costs of the table."""
        pool = [c for c in self.candidates if c.backend in eligible]
        if not pool:
            return []
        points = {1}
        for a in pool:
            for b in pool:
                if a.per_value_s != b.per_value_s:
                    x = 1 + (b.overhead_s - a.overhead_s) / (a.per_value_s - b.per_value_s)
                    if 1 < x < 1e15:
                        points.update({math.floor(x), math.ceil(x), math.ceil(x) + 1})
        out: list[tuple[int, str]] = []
        for n in sorted(points):
            c = self.choose(n, eligible)
            if c is not None and (not out or out[-1][1] != c.backend):
                out.append((n, c.backend))
        return out


@dataclass
class RoutingTable:
    """A parsed routing table; ``source`` says where it came from."""

    routes: dict[str, dict[str, Route]]
    versions: dict[str, str]
    created: str = ""
    machine: str = ""
    notes: list[str] = field(default_factory=list)
    source: str = ""
    path: str = ""
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    def route(self, family: str, op: str) -> Route | None:
        return self.routes.get(family, {}).get(op)

    @classmethod
    def from_dict(cls, data: Any, source: str = "", path: str = "") -> RoutingTable:
        """Parse and validate; raises :class:`RoutingTableError` naming what is wrong."""
        if not isinstance(data, dict):
            raise RoutingTableError(f"expected a JSON object, found {type(data).__name__}")
        if data.get("schema") != SCHEMA:
            raise RoutingTableError(f"schema {data.get('schema')!r}; this polysample reads "
                                    f"schema {SCHEMA}")
        versions = data.get("versions")
        if not isinstance(versions, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in versions.items()):
            raise RoutingTableError("'versions' must map library names to version strings")
        routes_in = data.get("routes")
        if not isinstance(routes_in, dict):
            raise RoutingTableError("'routes' must be an object of families")
        routes: dict[str, dict[str, Route]] = {}
        for family, ops in routes_in.items():
            if family not in FAMILIES:
                raise RoutingTableError(f"unknown family {family!r} in 'routes'")
            if not isinstance(ops, dict):
                raise RoutingTableError(f"routes[{family!r}] must be an object of operations")
            routes[family] = {}
            for op, entry in ops.items():
                if op not in OPS:
                    raise RoutingTableError(f"unknown operation {op!r} for {family}; "
                                            f"expected one of {list(OPS)}")
                cands = entry.get("candidates") if isinstance(entry, dict) else None
                if not isinstance(cands, list):
                    raise RoutingTableError(f"routes[{family!r}][{op!r}] needs a list "
                                            "'candidates'")
                routes[family][op] = Route(family, op, tuple(
                    _candidate(c, f"routes[{family!r}][{op!r}]") for c in cands))
        return cls(routes, dict(versions), str(data.get("created", "")),
                   str(data.get("machine", "")), [str(n) for n in data.get("notes", [])],
                   source, path, data)

    def to_dict(self) -> dict[str, Any]:
        out = dict(self.raw)
        out.update({
            "schema": SCHEMA, "versions": self.versions, "created": self.created,
            "machine": self.machine, "notes": self.notes,
            "routes": {f: {op: {"candidates": [c.to_dict() for c in r.candidates]}
                           for op, r in ops.items()} for f, ops in sorted(self.routes.items())},
        })
        return out


def _candidate(c: Any, where: str) -> Candidate:
    if not isinstance(c, dict) or not isinstance(c.get("backend"), str):
        raise RoutingTableError(f"{where}: each candidate needs a 'backend' name")
    try:
        overhead = float(c["overhead_s"])
        per_value = float(c["per_value_s"])
    except (KeyError, TypeError, ValueError):
        raise RoutingTableError(f"{where}: candidate {c.get('backend')!r} needs numbers "
                                "'overhead_s' and 'per_value_s'") from None
    if not (math.isfinite(overhead) and math.isfinite(per_value)) or overhead < 0 \
            or per_value < 0:
        raise RoutingTableError(f"{where}: candidate {c['backend']!r} has a negative or "
                                "non-finite cost")
    figures = c.get("figures", {})
    if not isinstance(figures, dict):
        raise RoutingTableError(f"{where}: 'figures' must be an object")
    return Candidate(c["backend"], overhead, per_value, str(c.get("verdict", "pass")),
                     str(c.get("detail", "")),
                     {str(k): float(v) for k, v in figures.items()
                      if isinstance(v, int | float)})


# ----------------------------------------------------------------------------- sources
def user_table_path() -> Path:
    """Where ``polysample bench --calibrate`` writes the user's table (``POLYSAMPLE_ROUTES``
    overrides it)."""
    env = os.environ.get("POLYSAMPLE_ROUTES", "").strip()
    if env:
        return Path(env)
    try:
        from platformdirs import user_cache_dir
    except ImportError:  # platformdirs is optional: the XDG default
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache")
        return Path(base) / "polysample" / "routes.json"
    return Path(user_cache_dir("polysample")) / "routes.json"


def installed_versions() -> dict[str, str]:
    """Installed versions of the :data:`TRACKED` libraries (absent ones left out)."""
    out = {}
    for dist in TRACKED:
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    if "polysample" not in out:
        from .. import __version__

        out["polysample"] = __version__
    return out


def stale_reasons(table: RoutingTable, installed: Mapping[str, str] | None = None) -> list[str]:
    """Why ``table`` does not describe this installation: each library it was measured with
    whose installed version differs (or that is no longer installed)."""
    now = installed_versions() if installed is None else installed
    reasons = []
    for lib, measured in sorted(table.versions.items()):
        have = now.get(lib)
        if have != measured:
            reasons.append(f"{lib} {measured} when measured, "
                           f"{'not installed' if have is None else have} now")
    return reasons


def _read(path: Path, source: str) -> RoutingTable:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RoutingTableError(f"cannot read it: {exc.strerror or exc}") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RoutingTableError(f"not valid JSON ({exc})") from exc
    return RoutingTable.from_dict(data, source, str(path))


def load_defaults() -> RoutingTable:
    """The table shipped in the package; an empty one (every family to ``torch``) if even
    that cannot be read, with a warning."""
    try:
        return _read(DEFAULTS_PATH, "shipped defaults")
    except RoutingTableError as exc:
        warnings.warn(f"polysample: the shipped routing table {DEFAULTS_PATH} is unusable "
                      f"({exc}); 'auto' routes every family to the torch backend.",
                      RuntimeWarning, stacklevel=3)
        routes = {f: {op: Route(f, op, (Candidate("torch", 0.0, 0.0, "pass",
                                                  "fallback: no usable table"),))
                      for op in OPS} for f in FAMILIES}
        return RoutingTable(routes, {}, source="built-in fallback (torch only)")


def load(path: Path | None = None, *, warn: bool = True) -> RoutingTable:
    """The table ``auto`` routes with: the user's (``path``, default :func:`user_table_path`)
    when it is usable and current, else the shipped defaults (with a ``RuntimeWarning`` that
    says why the user's was set aside). Never raises for a bad table."""
    path = user_table_path() if path is None else path
    if path.is_file():
        why = ""
        try:
            table = _read(path, "user table")
        except RoutingTableError as exc:
            why = f"it is corrupt: {exc}"
        else:
            stale = stale_reasons(table)
            if not stale:
                return table
            why = "it is stale: " + "; ".join(stale)
        defaults = load_defaults()
        defaults.notes = [*defaults.notes, f"user table {path} set aside: {why}"]
        if warn:
            warnings.warn(
                f"polysample: the routing table {path} is not used because {why}. The 'auto' "
                "backend uses the shipped defaults; run `polysample bench --calibrate` to "
                "measure this machine.", RuntimeWarning, stacklevel=3)
        return defaults
    return load_defaults()


# ----------------------------------------------------------------------------- declarations
@dataclass(frozen=True)
class DeclaredFailure:
    backend: str
    family: str
    reason: str


def declared_failures(path: Path = _KNOWN_FAILURES) -> list[DeclaredFailure]:
    """The backend and family fields of the packaged expected-failure declarations.

    (Read here, not through :mod:`polysample.conformance`, which imports SciPy.) A missing or
    unreadable file declares nothing.
    """
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError):
        return []
    out = []
    for entry in data.get("expected_failure", []):
        if isinstance(entry, dict) and isinstance(entry.get("backend"), str):
            out.append(DeclaredFailure(entry["backend"], str(entry.get("family", "*")),
                                       str(entry.get("reason", ""))))
    return out


def declared(backend: str, family: str, decls: list[DeclaredFailure]) -> DeclaredFailure | None:
    """The first declaration naming ``backend`` and ``family`` (shell-style patterns)."""
    for d in decls:
        if fnmatch.fnmatchcase(backend, d.backend) and fnmatch.fnmatchcase(family, d.family):
            return d
    return None
