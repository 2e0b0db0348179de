"""The result of a conformance run: ``Report`` (JSON, terminal table; HTML in :mod:`.html`)."""

from __future__ import annotations

import json
import os
import platform
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .checks import CheckResult
from .stats import ALPHA_CHECK, ALPHA_TOTAL, MAX_STATISTICAL_CHECKS

__all__ = ["Report", "apply_expected_failures", "library_versions", "load_expected_failures"]

_SYMBOL = {"pass": "pass", "fail": "FAIL", "xfail": "xfail", "xpass": "XPASS", "skip": "skip"}


def library_versions(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Versions of every library involved (heavy ones only if already imported)."""
    import numpy
    import scipy
    import torch

    import polysample

    v = {"python": platform.python_version(), "polysample": polysample.__version__,
         "torch": torch.__version__, "numpy": numpy.__version__, "scipy": scipy.__version__}
    for mod, label in (("jax", "jax"), ("tensorflow", "tensorflow"),
                       ("tensorflow_probability", "tensorflow-probability"),
                       ("matplotlib", "matplotlib")):
        m = sys.modules.get(mod)
        if m is not None:
            v[label] = str(getattr(m, "__version__", "?"))
    v.update(extra or {})
    return v


def load_expected_failures(path: str | os.PathLike[str]) -> dict[str, str]:
    """Read ``{check_id_substring: reason}`` from a JSON or TOML file."""
    text = open(path, "rb").read()
    if str(path).endswith(".toml"):
        import tomllib

        data: Any = tomllib.loads(text.decode())
    else:
        data = json.loads(text)
    if not isinstance(data, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                             for k, v in data.items()):
        raise ValueError(f"Expected {path} to map check-id substrings to reasons (strings); "
                         f"received {type(data).__name__}.")
    return dict(data)


#: Known upstream defects of the built-in backends (``{check_id_substring: reason}``).
KNOWN_FAILURES_PATH = Path(__file__).with_name("known_failures.toml")


def known_failures() -> dict[str, str]:
    """The built-in backends' known failures, declared with their reasons (see the file)."""
    return load_expected_failures(KNOWN_FAILURES_PATH)


def apply_expected_failures(result: CheckResult, expected: Mapping[str, str]) -> CheckResult:
    """Mark a failing check whose id contains a declared substring ``xfail``; a passing one
    ``xpass`` (a stale declaration to remove)."""
    for sub, reason in expected.items():
        if sub and sub in result.id:
            if result.status == "fail":
                result.status, result.reason = "xfail", reason
            elif result.status == "pass":
                result.status, result.reason = "xpass", reason
            break
    return result


@dataclass
class Report:
    """Every check's result plus what is needed to reproduce and judge the run."""

    results: list[CheckResult] = field(default_factory=list)
    backends: list[str] = field(default_factory=list)
    families: list[str] = field(default_factory=list)
    quick: bool = False
    salt: int = 0
    versions: dict[str, str] = field(default_factory=dict)
    backend_versions: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    plots: dict[Any, Any] = field(default_factory=dict, repr=False)
    grad_errors: dict[Any, Any] = field(default_factory=dict, repr=False)

    @property
    def ok(self) -> bool:
        """True when no check failed (expected failures and stale declarations allowed)."""
        return not any(r.status == "fail" for r in self.results)

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

    def to_dict(self) -> dict[str, Any]:
        n_stat = sum(1 for r in self.results if r.alpha is not None)
        return {
            "ok": self.ok,
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
            "versions": self.versions,
            "seconds": round(self.seconds, 2),
            "checks": [r.to_dict() for r in self.results],
        }

    def to_json(self, indent: int | None = 1) -> str:
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False, default=str)

    def write_json(self, path: str | os.PathLike[str]) -> None:
        tmp = f"{path}.tmp"
        with open(tmp, "w") as fh:
            fh.write(self.to_json())
        os.replace(tmp, path)

    # -------------------------------------------------------------- terminal
    def cell(self, backend: str, family: str) -> str:
        rs = [r for r in self.results if r.backend == backend and r.family == family]
        if not rs:
            return "unsupported"
        st = {r.status for r in rs}
        if "fail" in st:
            return "FAIL"
        if "xfail" in st:
            return "xfail"
        return "pass"

    def table(self) -> str:
        """Backends x families: pass / FAIL / unsupported / xfail (expected failure)."""
        backends = [b for b in self.backends]
        fams = sorted({r.family for r in self.results if r.family != "*"} | set(self.families))
        w = max([len(f) for f in fams] + [6])
        cw = max([len(b) for b in backends] + [11]) + 1
        lines = ["family".ljust(w) + " " + "".join(b.rjust(cw) for b in backends)]
        for f in fams:
            lines.append(f.ljust(w) + " " + "".join(self.cell(b, f).rjust(cw) for b in backends))
        for b in backends:
            broken = [r for r in self.results if r.backend == b and r.family == "*"]
            for r in broken:
                lines.append(f"{b}: {r.status} {r.message}")
        return "\n".join(lines)

    def summary(self) -> str:
        c = self.counts()
        parts = [f"{v} {k}" for k, v in sorted(c.items())]
        mode = "quick (smaller n, same alpha_i, weaker power)" if self.quick else "full"
        lines = [f"{len(self.results)} checks in {self.seconds:.1f} s, mode {mode}: "
                 + ", ".join(parts)]
        for r in self.failures:
            lines.append(f"FAILED {r.id}: {r.message}")
            if r.statistic is not None:
                lines.append(f"    statistic={r.statistic:.6g} threshold={_g(r.threshold)} "
                             f"n={r.n} seed={r.seed} alpha_i={_g(r.alpha)} "
                             f"detectable={_g(r.detectable)}")
        for r in self.stale:
            lines.append(f"STALE expected failure {r.id} passed (declared: {r.reason}); remove "
                         "the declaration")
        return "\n".join(lines)

    def extend(self, results: Iterable[CheckResult]) -> None:
        self.results.extend(results)


def _g(x: float | None) -> str:
    return "-" if x is None else f"{x:.3g}"
