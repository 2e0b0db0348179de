"""Expected-failure declarations: known defects, matched on the fields of a check id.

A declaration names a backend, and optionally a family, a grid and a check (each may be
``"*"``, and may use shell-style wildcards), with the reason::

    # TOML: one table per declaration ...
    [[expected_failure]]
    backend = "torch"
    family = "LKJCholesky"
    check = "sample_ks"          # optional: every check of the family (and grid)
    mode = "full"                # optional: only full runs (or "quick"); default both
    strict = false               # optional: a pass is no stale declaration (default true)
    reason = "torch 2.13 LKJCholesky.sample: wrong marginals of rows >= 2 (finding F2)"

    # ... or the short form, a check-id prefix cut at field boundaries:
    "torch-LKJCholesky-typical-sample_ks" = "reason"

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
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ..core.families import FAMILIES
from .model import CheckResult

__all__ = ["Declaration", "parse_declarations", "load_declarations", "apply_declarations",
           "coverage"]


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


def parse_declarations(data: Any, source: str = "expected_failures") -> list[Declaration]:
    """Declarations from ``{key: reason}`` and/or ``{"expected_failure": [{...}, ...]}``."""
    if isinstance(data, Declaration):
        return [data]
    if isinstance(data, list | tuple):
        out: list[Declaration] = []
        for item in data:
            out.extend(parse_declarations(item, source))
        return out
    if not isinstance(data, Mapping):
        raise ValueError(f"Expected {source} to map check-id prefixes to reasons, or to hold "
                         f"[[expected_failure]] tables. Received {type(data).__name__}.")
    out = []
    for key, value in data.items():
        if key == "expected_failure":
            tables = value if isinstance(value, list) else [value]
            for t in tables:
                if not isinstance(t, Mapping) or "backend" not in t or "reason" not in t:
                    raise ValueError(f"{source}: each [[expected_failure]] needs at least "
                                     f"backend and reason. Received {t!r}.")
                unknown = set(t) - {"backend", "family", "grid", "check", "reason", "mode",
                                    "strict"}
                if unknown:
                    raise ValueError(f"{source}: unknown keys {sorted(unknown)} in "
                                     "[[expected_failure]] (expected backend, family, grid, "
                                     "check, mode, strict, reason).")
                strict = t.get("strict", True)
                if not isinstance(strict, bool):
                    raise ValueError(f"{source}: strict must be true or false in "
                                     f"[[expected_failure]]. Received {strict!r}.")
                mode = t.get("mode", "*")
                if mode not in ("*", "quick", "full"):
                    raise ValueError(f"{source}: mode must be \"quick\", \"full\" or \"*\" in "
                                     f"[[expected_failure]]. Received {mode!r}.")
                fam = str(t.get("family", "*"))
                if fam != "*" and not any(fnmatch.fnmatchcase(f, fam) for f in FAMILIES):
                    raise ValueError(f"{source}: unknown family {fam!r} in [[expected_failure]].")
                out.append(Declaration(str(t["backend"]), fam, str(t.get("grid", "*")),
                                       str(t.get("check", "*")), str(t["reason"]), mode,
                                       strict))
            continue
        if not isinstance(key, str) or not isinstance(value, str):
            raise ValueError(f"Expected {source} to map check-id prefixes (strings) to reasons "
                             f"(strings). Received {key!r}: {value!r}.")
        out.append(_parse_key(key, value, source))
    return out


def load_declarations(path: str | os.PathLike[str]) -> list[Declaration]:
    """Declarations from a TOML or JSON file (either form of the module docstring)."""
    text = open(path, "rb").read()
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
