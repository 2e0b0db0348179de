"""The opt-in pytest plugin for third-party backend authors (run in a subprocess)."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

TESTS = pathlib.Path(__file__).parent


def _pytest(tmp_path, *args: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "conftest.py").write_text(
        'pytest_plugins = ["polysample.conformance.pytest_plugin"]\n')
    (tmp_path / "test_mybackend.py").write_text(
        "def test_polysample_conformance(polysample_check):\n    polysample_check()\n")
    env = dict(os.environ, POLYSAMPLE_PLUGINS="mutants",
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


def test_plugin_without_a_backend_fails_saying_how_to_give_one(tmp_path):
    # A silent skip would let a suite that ran nothing pass.
    res = _pytest(tmp_path)
    assert res.returncode != 0
    assert "--polysample-backend" in res.stdout + res.stderr
    assert "polysample_backend" in res.stdout + res.stderr


def test_plugin_takes_the_backend_and_options_from_the_ini_file(tmp_path):
    (tmp_path / "pyproject.toml").write_text(
        '[tool.pytest.ini_options]\npolysample_backend = ["torch"]\n'
        'polysample_family = ["Exponential"]\npolysample_quick = true\n')
    res = _pytest(tmp_path, "-k", "semantics or sample_ks or shapes")
    assert res.returncode == 0, res.stdout[-3000:]
    assert " passed" in res.stdout
