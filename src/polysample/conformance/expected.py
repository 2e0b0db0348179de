"""Expected-failure declarations: known defects, matched on the fields of a check id.

A declaration names a backend, and optionally a family, a grid and a check (each may be
``"*"``, and may use shell-style wildcards), with the reason::

    # TOML: one table per declaration ...
    [[expected_failure]]
    backend = "tfp"
    family = "GeneralizedPareto"
    check = "grad_cdf"           # optional: every check of the family (and grid)
    mode = "full"                # optional: only full runs (or "quick"); default both
    strict = false               # optional: a pass is no stale declaration (default true)
    reason = "TFP 0.25 GeneralizedPareto: zero gradient at concentration 0 (finding F3)"

    # ... or the short form, a check-id prefix cut at field boundaries:
    "tfp-GeneralizedPareto-corners-grad_cdf" = "reason"

In JSON, the same: an object of short-form keys (``{"tfp-GeneralizedPareto": "reason"}``,
with ``"expected_failure": [{...}]`` for tables), or a list of tables, the twin of
``[[expected_failure]]`` (``[{"backend": "tfp", "family": "GeneralizedPareto", "reason":
"..."}]``), validated as the TOML tables are.

Fields are compared one by one (``torch`` never matches a backend called ``mytorch``, and the
hyphen in ``tfp-tf`` is no field separator). A declaration **directly** covers the checks it
names: a failure there is ``xfail``, a pass ``xpass`` (the declaration is stale). It also
**indirectly** covers the cross-backend agreement checks whose draws it declares wrong (a
declaration of a backend's family and grid, for every check or for a check of its ``sample``
draw): a failure there is ``xfail`` too, naming the declaration; a pass stays a pass.
A declaration with ``strict = false`` is for a defect that shows in some samples only (a rare
draw going wrong): a failure is ``xfail``, a pass stays a pass.
"""

from __future__ import annotations

import fnmatch
import functools
import json
import os
import reprlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ..core.families import FAMILIES
from .model import CHECK_NAMES, EXTRA_GRIDS, CheckResult

__all__ = ["Declaration", "parse_declarations", "load_declarations", "apply_declarations",
           "coverage", "validate_declaration", "known_grids", "family_grids",
           "unmatched_backends", "idle_declarations"]

#: The keys of a ``[[expected_failure]]`` table.
TABLE_KEYS = ("backend", "family", "grid", "check", "mode", "strict", "reason")


@functools.cache
def known_grids() -> tuple[str, ...]:
    """Every grid label a check id can have: each family's statistical grids
    (:func:`.grids.grids`: ``typical``, ``corners``, ``edges``, ``float32``, ``sweep``) and
    ``example`` and ``all``."""
    from .grids import grids

    labels = {g.label for family in FAMILIES for g in grids(family)}
    return tuple(sorted(labels | set(EXTRA_GRIDS)))


def _known(field: str, pattern: str, names: Iterable[str], where: str) -> None:
    names = sorted(names)
    if pattern == "*" or any(fnmatch.fnmatchcase(n, pattern) for n in names):
        return
    raise ValueError(f"{where}: unknown {field} {pattern!r}, which matches no {field} the "
                     f"suite knows. Expected one of: {', '.join(names)}.")


@functools.cache
def family_grids(family: str) -> tuple[str, ...]:
    """The grid labels a check of ``family`` can have (its statistical grids, ``example`` and
    ``all``)."""
    from .grids import grids

    return tuple(sorted({g.label for g in grids(family)} | set(EXTRA_GRIDS)))


def _known_pair(d: Declaration, where: str) -> None:
    """Refuse a family and grid that each exist but never together (Bernoulli has no
    ``edges`` grid): the declaration would match nothing, silently."""
    families = [f for f in FAMILIES if fnmatch.fnmatchcase(f, d.family)]
    if d.grid == "*" or any(fnmatch.fnmatchcase(g, d.grid) for f in families
                            for g in family_grids(f)):
        return
    one = families[0] if len(families) == 1 else None
    known = (f"{one}'s grids: {', '.join(family_grids(one))}" if one else
             f"the grids of the families it matches: "
             f"{', '.join(sorted({g for f in families for g in family_grids(f)}))}")
    raise ValueError(f"{where}: grid {d.grid!r} is no grid of family {d.family!r}: the "
                     f"declaration would match no check. Expected one of {known}.")


def idle_declarations(declarations: Iterable[Declaration], checks: Iterable[Any]
                      ) -> list[str]:
    """One message per declaration that covers none of the run's ``checks`` (planned
    :class:`~.model.Check` objects) although its backend and family are in the run: a check
    the backend does not have for that family (``rsample_ks`` of a family it draws with
    ``sample()`` only), a grid its layers did not run. A warning, not an error: such a
    declaration can never become stale, so it would stay forever unnoticed."""
    checks = list(checks)
    out = []
    for d in declarations:
        mine = [c for c in checks if fnmatch.fnmatchcase(c.backend, d.backend)
                and fnmatch.fnmatchcase(c.family, d.family)]
        if not mine:
            continue  # its backend or family is not in this run: nothing to say
        probes = (CheckResult(c.id, c.backend, c.family, c.grid, c.name, c.layer, "fail",
                              involves=c.involves or (c.backend,)) for c in checks)
        if any(d.covers_directly(p) or d.covers_indirectly(p) for p in probes):
            continue
        grids = sorted({c.grid for c in mine})
        names = sorted({c.name for c in mine if fnmatch.fnmatchcase(c.grid, d.grid)})
        has = (f"its checks at grid {d.grid!r} are {', '.join(names)}" if names else
               f"its grids in this run are {', '.join(grids)}")
        out.append(f"expected-failure declaration {d.label!r} covers no check of this run: "
                   f"{d.backend} {d.family} runs {len(mine)} checks here and {has}. Remove the "
                   "declaration or correct its grid or check (a declaration that covers "
                   "nothing never shows as stale).")
    return out


def validate_declaration(d: Declaration, where: str) -> Declaration:
    """Refuse a declaration whose family, grid or check matches nothing the suite can produce
    (a misspelt one would match nothing, silently); ``where`` names it in the message. The
    backend is checked against the run's backends by :func:`unmatched_backends` (a declaration
    of a backend that is not installed is no error: the built-in file declares tfp's defects).
    """
    if not d.backend:
        raise ValueError(f"{where}: an empty backend.")
    _known("family", d.family, FAMILIES, where)
    _known("grid", d.grid, known_grids(), where)
    _known("check", d.check, CHECK_NAMES, where)
    _known_pair(d, where)
    if d.mode not in ("*", "quick", "full"):
        raise ValueError(f"{where}: mode must be \"quick\", \"full\" or \"*\". Received "
                         f"{d.mode!r}.")
    return d


def unmatched_backends(declarations: Iterable[Declaration], backends: Iterable[str]
                       ) -> list[str]:
    """One message per declaration whose backend matches none of ``backends`` (the registered
    ones and the run's): a warning, not an error (a declaration may be for a backend this
    machine does not have)."""
    names = sorted(set(backends))
    out = []
    for d in declarations:
        if not any(fnmatch.fnmatchcase(n, d.backend) for n in names):
            hint = (" (a short-form key whose family is misspelt is read as a backend name)"
                    if "-" in d.backend and d.family == "*" else "")
            out.append(f"expected-failure declaration {d.label!r} names backend {d.backend!r}, "
                       f"which is not registered here{hint}; it matches no check of this run. "
                       f"Registered: {', '.join(names)}.")
    return out


@dataclass(frozen=True)
class Declaration:
    """One expected failure: fields to match (``"*"`` = any) and the reason."""

    backend: str
    family: str = "*"
    grid: str = "*"
    check: str = "*"
    reason: str = ""
    #: The runs it applies to: "*" (both), "full" or "quick". A defect that only full mode's
    #: larger samples detect is declared for "full": quick mode's pass is then no stale xpass.
    mode: str = "*"
    #: False: the defect shows in some samples only (a few draws in 10,000 go wrong), so a
    #: pass is not a stale declaration. Strict (the default): a pass is ``xpass``.
    strict: bool = True

    def applies_to(self, quick: bool) -> bool:
        return self.mode in ("*", "quick" if quick else "full")

    @property
    def label(self) -> str:
        parts = [self.backend, self.family, self.grid, self.check]
        while len(parts) > 1 and parts[-1] == "*":
            parts.pop()
        return "-".join(parts)

    def _fields(self, backend: str, family: str, grid: str, check: str) -> bool:
        return all(fnmatch.fnmatchcase(value, pattern) for value, pattern in (
            (backend, self.backend), (family, self.family), (grid, self.grid),
            (check, self.check)))

    def covers_directly(self, r: CheckResult) -> bool:
        return self._fields(r.backend, r.family, r.grid, r.check)

    def covers_indirectly(self, r: CheckResult) -> bool:
        """An agreement check comparing a ``sample`` draw this declaration says is wrong."""
        if r.layer != "agreement":
            return False
        if self.check != "*" and not self.check.startswith("sample_"):
            return False
        return (any(fnmatch.fnmatchcase(side, self.backend) for side in r.involves)
                and fnmatch.fnmatchcase(r.family, self.family)
                and fnmatch.fnmatchcase(r.grid, self.grid))


def _parse_key(key: str, reason: str, source: str) -> Declaration:
    """``backend[-family[-grid[-check]]]``: the family token splits the backend from the rest."""
    if not key or not key.strip():
        raise ValueError(f"{source}: an empty expected-failure key")
    tokens = key.split("-")
    for i, tok in enumerate(tokens):
        if i > 0 and (tok in FAMILIES or (tok == "*" and i == len(tokens) - 3)):
            rest = tokens[i + 1:]
            if len(rest) > 2:
                raise ValueError(
                    f"{source}: cannot read expected-failure key {key!r}: expected "
                    "backend-family-grid-check (grids and checks contain no '-').")
            grid = rest[0] if rest else "*"
            check = rest[1] if len(rest) > 1 else "*"
            return Declaration("-".join(tokens[:i]), tok, grid, check, reason)
    return Declaration(key, "*", "*", "*", reason)


def _short_form(key: str) -> bool:
    """Whether ``key`` reads as a short-form declaration (a check-id prefix)."""
    return "-" in key and any(tok in FAMILIES for tok in key.split("-")[1:])


def _table(t: Any, where: str, header: str) -> Declaration:
    """One declaration table (a TOML ``[[expected_failure]]`` table, or an object of a JSON
    list), validated; ``where`` names it in the messages, ``header`` says where a short-form
    line would have come from."""
    if not isinstance(t, Mapping):
        raise ValueError(f"{where}: expected a table of {', '.join(TABLE_KEYS)} (backend and "
                         f"reason required). Received {t!r}.")
    unknown = [k for k in t if k not in TABLE_KEYS]
    short = [k for k in unknown if isinstance(k, str) and _short_form(k)]
    if short:
        raise ValueError(f"{where}: unknown key {short[0]!r}, a short-form declaration {header}")
    if unknown:
        raise ValueError(
            f"{where}: unknown key{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(map(repr, unknown))}. Expected keys: "
            f"{', '.join(TABLE_KEYS)} (backend and reason required).")
    missing = [k for k in ("backend", "reason") if k not in t]
    if missing:
        raise ValueError(f"{where}: needs {' and '.join(missing)} (each declaration table "
                         f"needs backend and reason). Received {dict(t)!r}.")
    strict = t.get("strict", True)
    if not isinstance(strict, bool):
        raise ValueError(f"{where}: strict must be true or false. Received {strict!r}.")
    d = Declaration(str(t["backend"]), str(t.get("family", "*")), str(t.get("grid", "*")),
                    str(t.get("check", "*")), str(t["reason"]), str(t.get("mode", "*")),
                    strict)
    return validate_declaration(d, f"{where} ({d.label})")


#: What a short-form line inside a table is, and where it goes instead.
_AFTER_HEADER = ("after a [[expected_failure]] header: TOML reads every line after a table "
                 "header into that table. Put short-form lines (\"backend-family-...\" = "
                 "\"reason\") before the first [[expected_failure]] table.")
_IN_LIST = ("in a list of declaration objects: expected each object of the list to be one "
            "declaration, with the keys backend, family, grid, check, mode, strict and reason. Give "
            "short-form declarations as one object mapping each key to its reason "
            "({\"backend-family-...\": \"reason\"}), not inside the list.")

#: The shapes a file of declarations may have, said in a refusal.
_SHAPES = ("an object (a TOML table) mapping check-id prefixes to reasons, holding "
           "[[expected_failure]] tables under \"expected_failure\", or a list of declaration "
           "objects (backend, family, grid, check, mode, strict, reason)")


def parse_declarations(data: Any, source: str = "expected_failures") -> list[Declaration]:
    """Declarations from ``{key: reason}`` and/or ``{"expected_failure": [{...}, ...]}`` (a
    TOML file's short-form lines and ``[[expected_failure]]`` tables), or from a list whose
    items are declaration tables ``{"backend": ..., "reason": ...}`` (the JSON twin of
    ``[[expected_failure]]``) or :class:`Declaration` objects; validated
    (:func:`validate_declaration`): an unknown key, family, grid or check, or any other shape,
    raises ``ValueError`` naming ``source``, the entry and what was expected."""
    if isinstance(data, Declaration):
        return [validate_declaration(data, f"{source}: declaration {data.label!r}")]
    if isinstance(data, list | tuple):
        out: list[Declaration] = []
        for i, item in enumerate(data, 1):
            if isinstance(item, Declaration):
                out.append(validate_declaration(item, f"{source}: declaration {item.label!r}"))
            elif isinstance(item, Mapping):
                out.append(_table(item, f"{source}: declaration {i} of the list", _IN_LIST))
            else:
                raise ValueError(
                    f"{source}: declaration {i} of the list: expected an object (a table) of "
                    f"{', '.join(TABLE_KEYS)} (backend and reason required). Received "
                    f"{type(item).__name__} {reprlib.repr(item)}.")
        return out
    if not isinstance(data, Mapping):
        raise ValueError(f"Expected {source} to hold {_SHAPES}. Received "
                         f"{type(data).__name__} {reprlib.repr(data)}.")
    out = []
    for key, value in data.items():
        if key == "expected_failure":
            if not isinstance(value, list | Mapping):
                raise ValueError(f"{source}: \"expected_failure\" must hold a list of "
                                 f"declaration tables ([[expected_failure]]). Received "
                                 f"{type(value).__name__} {reprlib.repr(value)}.")
            tables = value if isinstance(value, list) else [value]
            for i, t in enumerate(tables, 1):
                out.append(_table(t, f"{source}: [[expected_failure]] entry {i}",
                                  _AFTER_HEADER))
            continue
        if not isinstance(key, str) or not isinstance(value, str):
            raise ValueError(f"Expected {source} to map check-id prefixes (strings) to reasons "
                             f"(strings). Received {key!r}: {value!r}.")
        d = _parse_key(key, value, source)
        out.append(validate_declaration(d, f"{source}: expected-failure key {key!r}"))
    return out


def load_declarations(path: str | os.PathLike[str]) -> list[Declaration]:
    """Declarations from a TOML or JSON file (either form of the module docstring)."""
    with open(path, "rb") as f:
        text = f.read()
    if str(path).endswith(".toml"):
        import tomllib

        data: Any = tomllib.loads(text.decode())
    else:
        data = json.loads(text)
    return parse_declarations(data, str(path))


def coverage(result: CheckResult, declarations: Iterable[Declaration]
             ) -> tuple[Declaration | None, bool]:
    """The declaration covering ``result`` and whether it covers it directly."""
    indirect = None
    for d in declarations:
        if d.covers_directly(result):
            return d, True
        if indirect is None and d.covers_indirectly(result):
            indirect = d
    return indirect, False


def apply_declarations(result: CheckResult, declarations: Iterable[Declaration]) -> CheckResult:
    """Mark ``result`` by the declaration that covers it (see the module docstring)."""
    d, direct = coverage(result, declarations)
    if d is None:
        return result
    if result.status == "fail":
        result.status = "xfail"
    elif result.status == "pass" and direct and d.strict:
        result.status = "xpass"
    else:
        return result
    result.reason = d.reason
    result.covered_by = d.label + ("" if direct else " (a draw this check compares)")
    return result
