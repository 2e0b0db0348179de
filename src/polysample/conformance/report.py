"""The result of a conformance run: ``Report`` (JSON, terminal table; HTML in :mod:`.html`)."""

from __future__ import annotations

import json
import os
import platform
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .expected import Declaration, load_declarations
from .model import CheckResult
from .stats import ALPHA_CHECK, ALPHA_TOTAL, MAX_STATISTICAL_CHECKS, budget_slots

if TYPE_CHECKING:
    from .model import Check

__all__ = ["Report", "library_versions", "known_failures", "KNOWN_FAILURES_PATH",
           "load_expected_failures", "write_atomic"]


def library_versions(extra: dict[str, str] | None = None) -> dict[str, str]:
    """Versions of every library involved (heavy ones only if already imported)."""
    import numpy
    import scipy
    import torch

    import polysample

    v = {"python": platform.python_version(), "polysample": polysample.__version__,
         "torch": torch.__version__, "numpy": numpy.__version__, "scipy": scipy.__version__}
    for mod, label in (("jax", "jax"), ("tensorflow", "tensorflow"),
                       ("tensorflow_probability", "tensorflow-probability"),
                       ("matplotlib", "matplotlib"), ("dask", "dask"),
                       ("distributed", "distributed")):
        m = sys.modules.get(mod)
        if m is not None:
            v[label] = str(getattr(m, "__version__", "?"))
    v.update(extra or {})
    return v


def load_expected_failures(path: str | os.PathLike[str]) -> list[Declaration]:
    """Expected-failure declarations from a TOML or JSON file (see :mod:`.expected`)."""
    return load_declarations(path)


#: Known upstream defects of the built-in backends, declared with their evidence.
KNOWN_FAILURES_PATH = Path(__file__).with_name("known_failures.toml")


def known_failures() -> list[Declaration]:
    """The built-in backends' known failures, declared with their reasons (see the file)."""
    return load_declarations(KNOWN_FAILURES_PATH)


def write_atomic(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename: readers see the old
    file or the new one, never a half-written one."""
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, path)


@dataclass
class Report:
    """Every check's result plus what is needed to reproduce and judge the run.

    ``planned`` checks were generated; ``complete`` is True once every one has a result (an
    interrupted run is incomplete, and an incomplete run is never ``ok``).
    """

    results: list[CheckResult] = field(default_factory=list)
    backends: list[str] = field(default_factory=list)
    families: list[str] = field(default_factory=list)
    quick: bool = False
    salt: int = 0
    versions: dict[str, str] = field(default_factory=dict)
    backend_versions: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    planned: int = 0
    complete: bool = False
    notes: list[str] = field(default_factory=list)
    scheduler: str = "serial"
    retried: list[str] = field(default_factory=list)
    #: The families each backend claims to sample: a family it claims but with no check in
    #: the run (the layers chosen have none for it) is "no checks", not "unsupported".
    claimed: dict[str, list[str]] = field(default_factory=dict)
    #: Each result's JSON text, by identity: the CLI rewrites the report as the run goes (at
    #: most every ``cli.JSON_EVERY`` seconds), and serialising every result again each time
    #: made a run's JSON writes quadratic (45 s of a 2-backend run). Results are not changed
    #: once recorded.
    _rows: dict[int, tuple[CheckResult, str]] = field(default_factory=dict, repr=False,
                                                      compare=False)

    @property
    def ok(self) -> bool:
        """True when the run is complete, ran at least one check and no check failed
        (expected failures and stale declarations allowed). A report of zero checks is never
        ok: it says nothing."""
        return (self.complete and bool(self.results)
                and not any(r.status == "fail" for r in self.results))

    @property
    def failures(self) -> list[CheckResult]:
        return [r for r in self.results if r.status == "fail"]

    @property
    def stale(self) -> list[CheckResult]:
        """Checks declared as expected failures that passed."""
        return [r for r in self.results if r.status == "xpass"]

    def counts(self) -> dict[str, int]:
        c: dict[str, int] = {}
        for r in self.results:
            c[r.status] = c.get(r.status, 0) + 1
        return c

    def sort(self, plan: Sequence[Check]) -> None:
        """Results in plan order (load failures first), whatever order they arrived in."""
        order = {c.id: i for i, c in enumerate(plan)}
        self.results.sort(key=lambda r: order.get(r.id, -1))

    def timing(self) -> dict[str, dict[str, float]]:
        """Seconds spent per backend, per layer and per check name (``--profile``)."""
        out: dict[str, dict[str, float]] = {"backend": {}, "layer": {}, "check": {},
                                             "family": {}}
        for r in self.results:
            for key, value in (("backend", r.backend), ("layer", r.layer), ("check", r.check),
                               ("family", f"{r.backend} {r.family}")):
                out[key][value] = round(out[key].get(value, 0.0) + r.seconds, 4)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {**self._head(), "checks": [r.to_dict() for r in self.results]}

    def _head(self) -> dict[str, Any]:
        n_stat = budget_slots(r.check for r in self.results if r.alpha is not None)
        return {
            "ok": self.ok,
            "complete": self.complete,
            "planned": self.planned,
            "done": len(self.results),
            "counts": self.counts(),
            "mode": "quick" if self.quick else "full",
            "mode_note": ("quick mode: smaller samples, same alpha_i, weaker power (see each "
                          "check's detectable discrepancy)") if self.quick else
                         "full mode: the sample sizes of the design claims",
            "vary_seed_salt": self.salt,
            "error_budget": {"alpha_total": ALPHA_TOTAL,
                             "max_statistical_checks": MAX_STATISTICAL_CHECKS,
                             "alpha_per_check": ALPHA_CHECK,
                             "statistical_checks_in_this_run": n_stat},
            "backends": self.backends,
            "backend_versions": self.backend_versions,
            "families": self.families,
            "notes": self.notes,
            "scheduler": self.scheduler,
            "retried": self.retried,
            "versions": self.versions,
            "seconds": round(self.seconds, 2),
            "timing": self.timing(),
        }

    def _row(self, r: CheckResult) -> str:
        hit = self._rows.get(id(r))
        if hit is None or hit[0] is not r:
            hit = self._rows[id(r)] = (r, json.dumps(r.to_dict(), allow_nan=False, default=str))
        return hit[1]

    def to_json(self, indent: int | None = 1) -> str:
        """The report as strict JSON (``to_dict()``); each check on one line when indented."""
        head = json.dumps(self._head(), indent=indent, allow_nan=False, default=str)
        rows = [self._row(r) for r in self.results]
        if indent is None:
            return f'{head[:-1]}, "checks": [{", ".join(rows)}]}}'
        pad = " " * indent
        body = f",\n{pad * 2}".join(rows)
        checks = f"[\n{pad * 2}{body}\n{pad}]" if rows else "[]"
        return f'{head[:-2]},\n{pad}"checks": {checks}\n}}'

    def write_json(self, path: str | os.PathLike[str]) -> None:
        write_atomic(path, self.to_json())

    # -------------------------------------------------------------- terminal
    def cell(self, backend: str, family: str) -> str:
        rs = [r for r in self.results
              if r.family == family and (r.backend == backend or
                                         (r.layer == "agreement" and backend in r.involves))]
        if not rs:
            if backend not in self.claimed and any(
                    r.backend == backend and r.check == "load" for r in self.results):
                return "not loaded"  # its failed load check says why, under the table
            if not self.complete:
                return "-"
            return "no checks" if family in self.claimed.get(backend, ()) else "unsupported"
        st = {r.status for r in rs}
        if "fail" in st:
            return "FAIL"
        if "xfail" in st:
            return "xfail"
        return "pass"

    def table(self) -> str:
        """Backends x families: pass / FAIL / xfail (expected failure) / unsupported (the
        backend does not claim the family) / no checks (it does, but the layers chosen have
        no check of it) / not loaded (the backend failed to load: its ``load`` check, listed
        under the table, says why)."""
        backends = list(self.backends)
        fams = sorted({r.family for r in self.results if r.family != "*"} | set(self.families))
        w = max([len(f) for f in fams] + [6])
        cw = max([len(b) for b in backends] + [11]) + 1
        lines = ["family".ljust(w) + " " + "".join(b.rjust(cw) for b in backends)]
        for f in fams:
            lines.append(f.ljust(w) + " " + "".join(self.cell(b, f).rjust(cw) for b in backends))
        for r in self.results:
            if r.family == "*":
                lines.append(f"{r.backend}: {r.status} {r.message}")
        return "\n".join(lines)

    def summary(self) -> str:
        c = self.counts()
        parts = [f"{v} {k}" for k, v in sorted(c.items())]
        mode = "quick (smaller n, same alpha_i, weaker power)" if self.quick else "full"
        head = f"{len(self.results)} checks in {self.seconds:.1f} s, mode {mode}: "
        if not self.complete:
            head = (f"INCOMPLETE: {len(self.results)} of {self.planned} checks in "
                    f"{self.seconds:.1f} s, mode {mode}: ")
        lines = [head + ", ".join(parts)]
        for note in self.notes:
            lines.append(f"note: {note}")
        # A backend that raises one kind of error in every check of a family that draws fails
        # them all with it: the first is listed with its message, the others by id beside it,
        # so that the checks that failed for reasons of their own stay in sight.
        same: dict[tuple[str, str, str], list[CheckResult]] = {}
        for r in self.failures:
            kind = _raised(r.message)
            if kind:
                same.setdefault((r.backend, r.family, kind), []).append(r)
        for r in self.failures:
            kind = _raised(r.message)
            group = same.get((r.backend, r.family, kind)) if kind else None
            if group and r is not group[0]:
                continue
            lines.append(f"FAILED {r.id}: {r.message}")
            if r.statistic is not None:
                lines.append(f"    statistic={r.statistic:.6g} threshold={_g(r.threshold)} "
                             f"n={r.n} seed={r.seed} alpha_i={_g(r.alpha)} "
                             f"detectable={_g(r.detectable)}")
            if group and len(group) > 1:
                ids = [o.id.removeprefix(f"{r.backend}-{r.family}-") for o in group[1:]]
                shown = ", ".join(ids[:self.SAME_LISTED])
                more = len(ids) - self.SAME_LISTED
                lines.append(f"    ... and {len(ids)} more checks of {r.backend} {r.family} "
                             f"raised {kind}: {shown}" + (f" and {more} more" if more > 0 else
                                                          "") + " (each in the JSON report)")
        xfails = [r for r in self.results if r.status == "xfail"]
        for r in xfails[:self.XFAIL_LISTED]:
            lines.append(f"xfail {r.id} (declared {r.covered_by}: {r.reason})")
        if len(xfails) > self.XFAIL_LISTED:
            lines.append(f"... and {len(xfails) - self.XFAIL_LISTED} more expected failures: "
                         "every one is in the JSON report (status \"xfail\", with its "
                         "reason) and the HTML report")
        for r in self.stale:
            lines.append(f"STALE expected failure {r.id} passed (declared {r.covered_by}: "
                         f"{r.reason}); remove the declaration")
        return "\n".join(lines)

    #: The most expected failures :meth:`summary` names one by one (then where the rest are).
    XFAIL_LISTED = 20
    #: The most ids :meth:`summary` names of the checks that raised as a listed one did.
    SAME_LISTED = 12

    def extend(self, results: Iterable[CheckResult]) -> None:
        self.results.extend(results)


def _raised(message: str) -> str | None:
    """The exception's type in the message of a check that raised (``raised <Type>: ...``, as
    the runner writes it), else None."""
    if not message.startswith("raised "):
        return None
    kind, colon, _ = message[len("raised "):].partition(":")
    return kind if colon and kind.isidentifier() else None


def _g(x: float | None) -> str:
    return "-" if x is None else f"{x:.3g}"
