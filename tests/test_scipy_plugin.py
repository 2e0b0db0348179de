"""The example plugin ``examples/polysample-scipy`` passes polysample's conformance suite.

``polysample validate --backend scipy --quick`` exits 0 on the families of :data:`FAMILIES`
(``make demo`` validates all of them), the only failures being the ones its
``known_failures.toml`` declares (and each of those really fails: none is stale); the plugin's
own test suite (the pytest plugin with its ini options, and its unit tests) passes. Both run in
a subprocess: through the installed entry point where the package is installed (``make venv``
installs it), else through ``POLYSAMPLE_PLUGINS``. Its entry-point discovery is tested in
``tests/test_plugins.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import tomllib
from importlib import metadata
from pathlib import Path

import polysample

ROOT = Path(__file__).resolve().parents[1]
PLUGIN = ROOT / "examples" / "polysample-scipy"
KNOWN = PLUGIN / "known_failures.toml"


def installed() -> bool:
    """Whether the entry point ``scipy = polysample_scipy`` is installed here."""
    return any(ep.name == "scipy" and ep.value == "polysample_scipy"
               for ep in metadata.entry_points(group="polysample"))


def plugin_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("POLYSAMPLE_")}
    # This checkout's polysample (the one under test) and the plugin's sources.
    src = Path(polysample.__file__).resolve().parents[1]
    env["PYTHONPATH"] = os.pathsep.join([str(src), str(PLUGIN / "src")])
    if not installed():
        env["POLYSAMPLE_PLUGINS"] = "polysample_scipy"
    return env


def declared() -> set[str]:
    tables = tomllib.loads(KNOWN.read_text())["expected_failure"]
    return {f"{t['backend']}-{t['family']}-{t['grid']}-{t['check']}" for t in tables}


#: The families validated here: every family with a declared failure (all of them, so no
#: declaration can go stale unnoticed) and one of each kind of case: location-scale (Normal),
#: implicitly reparameterized (StudentT, through Gamma draws), discrete (Binomial),
#: multivariate (Dirichlet). ``make demo`` (which CI runs) validates every family of the
#: plugin with the same declarations.
FAMILIES = ("Dirichlet", "Normal", "StudentT", "Binomial", "Laplace", "Pareto", "HalfCauchy")


def test_validate_quick_passes_apart_from_the_declared_failures(tmp_path) -> None:
    out = tmp_path / "report.json"
    assert {t["family"] for t in tomllib.loads(KNOWN.read_text())["expected_failure"]} <= set(
        FAMILIES)
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "polysample", "validate", "--backend", "scipy", "--quick",
         *(arg for f in FAMILIES for arg in ("--family", f)),
         "--expected-failures", str(KNOWN), "--json", str(out)],
        capture_output=True, text=True, env=plugin_env(), cwd=tmp_path, timeout=600)
    seconds = time.perf_counter() - start
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads(out.read_text())
    statuses: dict[str, set[str]] = {}
    for r in report["checks"]:
        statuses.setdefault(r["status"], set()).add(r["id"])
    assert statuses.get("xfail", set()) == declared(), "a declared failure did not fail"
    assert not statuses.get("fail") and not statuses.get("xpass")
    assert len(statuses["pass"]) > 200  # 7 families, every layer but agreement
    print(f"polysample validate --backend scipy --quick: {seconds:.1f} s")


def test_the_plugins_own_tests_pass_with_its_pytest_options(tmp_path) -> None:
    # Its pyproject.toml names the backend, quick mode and known_failures.toml; one family with
    # declared failures keeps this short (the validation above covers nine families): Laplace,
    # whose checks take 0.5 s (Dirichlet's took 8 s).
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         "--polysample-family", "Laplace"],
        capture_output=True, text=True, env=plugin_env(), cwd=PLUGIN, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    summary = done.stdout.strip().splitlines()[-1]
    # log_prob_far at the example grid, log_prob_huge at the example and corners grids
    # (known_failures.toml)
    assert "3 xfailed" in summary and "failed" not in summary.replace("xfailed", ""), summary
