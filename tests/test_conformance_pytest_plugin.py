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


def test_plugin_without_a_backend_stops_with_one_error_line_saying_how_to_give_one(tmp_path):
    # A silent skip would let a suite that ran nothing pass. It failed its test item with a
    # traceback into polysample's source; now it is a usage error, as a bad option is.
    line = _one_error_line(_pytest(tmp_path))
    assert line.startswith("ERROR: polysample: no backend to run"), line
    assert "--polysample-backend" in line and "polysample_backend" in line


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


def test_a_malformed_expected_failures_file_is_one_usage_error_line_naming_it(tmp_path):
    bad = tmp_path / "known.toml"
    bad.write_text('[[expected_failure]]\nbackend = "torch"\nreason = \n')
    line = _one_error_line(_pytest(tmp_path, "--polysample-backend", "torch",
                                   "--polysample-expected-failures", str(bad)))
    assert "cannot read --polysample-expected-failures" in line and "known.toml" in line


@pytest.mark.parametrize("args,message", [
    (("--polysample-family", "Normall"), "unknown family 'Normall'"),
    (("--polysample-backend", "nosuch"), "unknown backend 'nosuch'"),
    (("--polysample-family", "LKJCholesky", "--polysample-backend", "numpy"),
     "does not support 'LKJCholesky'"),
])
def test_bad_options_are_one_usage_error_line_as_the_cli_gives(tmp_path, args, message):
    argv = args if "--polysample-backend" in args else ("--polysample-backend", "torch", *args)
    assert message in _one_error_line(_pytest(tmp_path, *argv))


@pytest.mark.parametrize("text,message", [
    ('[[expected_failure]]\nbackend = "torch"\ncheck = "sample_kss"\nreason = "r"\n',
     "unknown check 'sample_kss'"),
    ('"torch-Normal-typicl" = "r"\n', "unknown grid 'typicl'"),
    ('[[expected_failure]]\nbackend = "torch"\nreasn = "r"\n', "unknown key 'reasn'"),
])
def test_the_plugin_validates_declarations_as_the_cli_does(tmp_path, text, message):
    known = tmp_path / "known.toml"
    known.write_text(text)
    line = _one_error_line(_pytest(tmp_path, "--polysample-backend", "torch",
                                   "--polysample-expected-failures", str(known)))
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
