"""``polysample new-backend``: the generated plugin installs in a fresh virtual environment and
passes the conformance suite for what it declares, before its author writes anything else."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from polysample.scaffold import files, write_scaffold


def test_the_scaffold_installs_in_a_new_venv_and_its_conformance_test_passes(tmp_path):
    pkg = tmp_path / "polysample-demo1"
    res = subprocess.run([sys.executable, "-m", "polysample", "new-backend", "demo1", "--path",
                          str(pkg)], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "pip install -e" in res.stdout
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True,
                   timeout=120)
    # The new environment sees this one's packages (torch, polysample, pytest, hatchling)
    # through a .pth line, as a site directory of its own would; the plugin itself is installed
    # into it, with its entry point.
    purelib = Path(sysconfig.get_paths(vars={"base": str(venv), "platbase": str(venv)})["purelib"])
    purelib.mkdir(parents=True, exist_ok=True)
    parent = sysconfig.get_paths()["purelib"]
    (purelib / "_parent_env.pth").write_text(f"import site; site.addsitedir({parent!r})\n")
    py = str(venv / "bin" / "python")
    env = {k: v for k, v in os.environ.items() if not k.startswith("POLYSAMPLE_")}
    env.pop("PYTHONPATH", None)
    install = subprocess.run([py, "-m", "pip", "install", "--no-deps", "--no-build-isolation",
                              "--no-index", "-q", "-e", str(pkg)], capture_output=True,
                             text=True, timeout=300, env=env)
    assert install.returncode == 0, install.stdout[-2000:] + install.stderr[-2000:]
    listed = subprocess.run([py, "-m", "polysample", "backends"], capture_output=True, text=True,
                            timeout=300, env=env, cwd=pkg)
    assert "demo1" in listed.stdout and "available" in listed.stdout, listed.stdout
    test = subprocess.run([py, "-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=pkg,
                          capture_output=True, text=True, timeout=600, env=env)
    assert test.returncode == 0, test.stdout[-3000:]
    assert " passed" in test.stdout and "failed" not in test.stdout


def test_the_scaffold_refuses_bad_names_and_existing_files(tmp_path):
    with pytest.raises(ValueError, match="Expected a backend name"):
        files("My Backend")
    root = write_scaffold("demo2", str(tmp_path / "p"))
    with pytest.raises(FileExistsError, match="already holds"):
        write_scaffold("demo2", str(root))
