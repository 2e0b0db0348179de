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
                           "-p", "no:randomly", *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)


def test_plugin_runs_every_check_of_a_backend_as_a_test_item(tmp_path):
    res = _pytest(tmp_path, "--polysample-backend", "torch", "--polysample-family", "Normal",
                  "--polysample-quick", "-k", "semantics or sample_ks")
    assert res.returncode == 0, res.stdout[-3000:]
    assert " passed" in res.stdout


def test_plugin_fails_a_broken_backend_and_names_the_check(tmp_path):
    res = _pytest(tmp_path, "--polysample-backend", "mutant_geometric", "--polysample-quick",
                  "-k", "sample_ks")
    assert res.returncode == 1
    assert "mutant_geometric-Geometric-typical-sample_ks" in res.stdout


def test_plugin_expected_failures_file_and_stale_entries(tmp_path):
    known = tmp_path / "known.json"
    known.write_text('{"mutant_geometric-Geometric-typical-sample_ks": "off by one", '
                     '"mutant_geometric-Geometric-example-seeds": "stale entry"}')
    res = _pytest(tmp_path, "--polysample-backend", "mutant_geometric", "--polysample-quick",
                  "--polysample-expected-failures", str(known), "-k",
                  "typical-sample_ks or example-seeds", "-rxX")
    assert "1 xfailed" in res.stdout, res.stdout[-3000:]
    assert "XPASS(strict)" in res.stdout or "1 failed" in res.stdout
    assert "stale entry" in res.stdout


def test_plugin_without_a_backend_skips(tmp_path):
    res = _pytest(tmp_path)
    assert res.returncode == 0 and "1 skipped" in res.stdout
