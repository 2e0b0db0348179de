"""The opt-in pytest plugin for third-party backend authors (run in a subprocess)."""

from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys

import pytest

TESTS = pathlib.Path(__file__).parent


def _pytest(tmp_path, *args: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "conftest.py").write_text(
        'pytest_plugins = ["polysample.conformance.pytest_plugin"]\n')
    (tmp_path / "test_mybackend.py").write_text(
        "def test_polysample_conformance(polysample_check):\n    polysample_check()\n")
    # The other pytest plugins installed here (hypothesis, xdist, ...) stay out: the conftest
    # loads polysample's, and importing theirs took 1.7 of each run's 4.6 s.
    env = dict(os.environ, POLYSAMPLE_PLUGINS="mutants", PYTEST_DISABLE_PLUGIN_AUTOLOAD="1",
               PYTHONPATH=os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]))
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "-rxX", *args], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=300)


def test_plugin_runs_a_correct_backend_as_passing_test_items(tmp_path):
    res = _pytest(tmp_path, "--polysample-backend", "torch", "--polysample-family", "Normal",
                  "--polysample-quick", "-k", "shapes or sample_ks")
    assert res.returncode == 0, res.stdout[-3000:]
    assert "torch-Normal-typical-sample_ks" not in res.stdout  # passed quietly
    assert " passed" in res.stdout and "failed" not in res.stdout


def test_plugin_fails_a_broken_backend_with_xfail_and_stale_declarations(tmp_path):
    known = tmp_path / "known.json"
    known.write_text('{"mutant_geometric-Geometric-corners-sample_ks": "off by one", '
                     '"mutant_geometric-Geometric-example-seeds": "stale entry"}')
    res = _pytest(tmp_path, "--polysample-backend", "mutant_geometric", "--polysample-quick",
                  "--polysample-expected-failures", str(known), "-k", "sample_ks or seeds")
    out = res.stdout
    assert res.returncode == 1, out[-3000:]
    # The undeclared failure is named by its check id, with its numbers.
    assert "mutant_geometric-Geometric-typical-sample_ks" in out and "statistic=" in out
    assert "1 xfailed" in out  # the declared one
    assert "XPASS(strict)" in out and "stale entry" in out  # the stale declaration


def test_plugin_takes_the_backend_and_options_from_the_ini_file(tmp_path):
    (tmp_path / "pyproject.toml").write_text(
        '[tool.pytest.ini_options]\npolysample_backend = ["torch"]\n'
        'polysample_family = ["Exponential"]\npolysample_quick = true\n')
    res = _pytest(tmp_path, "-k", "semantics or sample_ks or shapes")
    assert res.returncode == 0, res.stdout[-3000:]
    assert " passed" in res.stdout


def _one_error_line(res: subprocess.CompletedProcess[str]) -> str:
    out = res.stdout + res.stderr
    assert res.returncode == 4, out[-3000:]  # pytest's usage error
    assert "Traceback" not in out and "pluggy" not in out and "_hooks.py" not in out, out
    errors = [line for line in out.splitlines() if line.startswith("ERROR:")]
    assert len(errors) == 1, out
    return errors[0]


#: The usage errors below: (arguments, the expected-failures file's text or None). Each is a
#: pytest run of its own, all in one subprocess (``_DRIVER``): a new interpreter per run cost
#: 3-4 s, the run itself a tenth of that.
USAGE_CASES: dict[str, tuple[tuple[str, ...], str | None]] = {
    "no-backend": ((), None),
    "malformed": (("--polysample-backend", "torch", "--polysample-expected-failures", "{known}"),
                  '[[expected_failure]]\nbackend = "torch"\nreason = \n'),
    "family": (("--polysample-backend", "torch", "--polysample-family", "Normall"), None),
    "backend": (("--polysample-backend", "nosuch"), None),
    "unsupported": (("--polysample-family", "LKJCholesky", "--polysample-backend", "numpy"),
                    None),
    "check": (("--polysample-backend", "torch", "--polysample-expected-failures", "{known}"),
              '[[expected_failure]]\nbackend = "torch"\ncheck = "sample_kss"\nreason = "r"\n'),
    "grid": (("--polysample-backend", "torch", "--polysample-expected-failures", "{known}"),
             '"torch-Normal-typicl" = "r"\n'),
    "key": (("--polysample-backend", "torch", "--polysample-expected-failures", "{known}"),
            '[[expected_failure]]\nbackend = "torch"\nreasn = "r"\n'),
}

#: Runs ``pytest.main`` once per case, each in a directory of its own, and prints each run's
#: exit status and output as JSON.
_DRIVER = """
import contextlib, io, json, os, sys
import pytest
cases = json.loads(sys.stdin.read())
out = {}
for name, (where, args) in cases.items():
    os.chdir(where)
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
        rc = pytest.main(["-q", "-p", "no:cacheprovider", "-rxX", *args])
    out[name] = [int(rc), buf.getvalue()]
sys.__stdout__.write(json.dumps(out))
"""


@pytest.fixture(scope="module")
def usage_errors(tmp_path_factory):  # type: ignore[no-untyped-def]
    """Each case's run (:data:`USAGE_CASES`) as a CompletedProcess of its own."""
    import json

    cases = {}
    for name, (args, text) in USAGE_CASES.items():
        # (the plugin named with -p rather than in a conftest.py, and a test module named
        # after the case: one interpreter imports each module name once)
        where = tmp_path_factory.mktemp(f"usage-{name}")
        (where / f"test_{name.replace('-', '_')}.py").write_text(
            "def test_polysample_conformance(polysample_check):\n    polysample_check()\n")
        known = where / "known.toml"
        if text is not None:
            known.write_text(text)
        cases[name] = [str(where), ["-p", "polysample.conformance.pytest_plugin",
                                    *(a.replace("{known}", str(known)) for a in args)]]
    env = dict(os.environ, PYTEST_DISABLE_PLUGIN_AUTOLOAD="1",
               PYTHONPATH=os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]))
    env.pop("POLYSAMPLE_PLUGINS", None)
    done = subprocess.run([sys.executable, "-c", _DRIVER], input=json.dumps(cases), env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return {name: subprocess.CompletedProcess([], rc, out, "")
            for name, (rc, out) in json.loads(done.stdout).items()}


@pytest.mark.xdist_group("plugin-usage")
def test_plugin_without_a_backend_stops_with_one_error_line_saying_how_to_give_one(
        usage_errors):
    # A silent skip would let a suite that ran nothing pass. It failed its test item with a
    # traceback into polysample's source; now it is a usage error, as a bad option is.
    line = _one_error_line(usage_errors["no-backend"])
    assert line.startswith("ERROR: polysample: no backend to run"), line
    assert "--polysample-backend" in line and "polysample_backend" in line


@pytest.mark.xdist_group("plugin-usage")
def test_a_malformed_expected_failures_file_is_one_usage_error_line_naming_it(usage_errors):
    line = _one_error_line(usage_errors["malformed"])
    assert "cannot read --polysample-expected-failures" in line and "known.toml" in line


@pytest.mark.xdist_group("plugin-usage")
@pytest.mark.parametrize("case,message", [
    ("family", "unknown family 'Normall'"),
    ("backend", "unknown backend 'nosuch'"),
    ("unsupported", "does not support 'LKJCholesky'"),
])
def test_bad_options_are_one_usage_error_line_as_the_cli_gives(usage_errors, case, message):
    assert message in _one_error_line(usage_errors[case])


@pytest.mark.xdist_group("plugin-usage")
@pytest.mark.parametrize("case,message", [
    ("check", "unknown check 'sample_kss'"),
    ("grid", "unknown grid 'typicl'"),
    ("key", "unknown key 'reasn'"),
])
def test_the_plugin_validates_declarations_as_the_cli_does(usage_errors, case, message):
    line = _one_error_line(usage_errors[case])
    assert message in line and "known.toml" in line


def test_the_plugin_declares_the_builtin_known_failures_unless_told_not_to(tmp_path):
    # TFP's GeneralizedPareto gradient (finding F3): validate and check_backend declare it
    args = ("--polysample-backend", "tfp", "--polysample-family", "GeneralizedPareto",
            "--polysample-quick", "-k", "corners-grad_cdf or typical-grad_cdf")
    res = _pytest(tmp_path, *args)
    assert res.returncode == 0, res.stdout[-3000:]
    assert re.search(r"\b1 passed, \d+ deselected, 1 xfailed\b", res.stdout), res.stdout[-3000:]
    res = _pytest(tmp_path, *args, "--polysample-no-known-failures")
    assert res.returncode == 1, res.stdout[-3000:]
    assert re.search(r"\b1 failed, 1 passed, \d+ deselected in\b", res.stdout), res.stdout[-3000:]
