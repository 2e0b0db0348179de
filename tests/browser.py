"""Headless Chromium for the tests that render HTML (the validation report, the docs site).

Debian's ``chromium`` package; ``.ci/run`` installs it. Without it a test is skipped, unless
``CI`` is set: then it fails, because CI must run it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def chromium() -> str:
    """The browser's path; skips the test (fails it in CI) when none is installed."""
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        path = shutil.which(name)
        if path:
            return path
    if in_ci():
        pytest.fail("Chromium is required in CI (.ci/run installs the apt package chromium)")
    pytest.skip("Chromium is not installed (apt-get install chromium)")


def flags(tmp_path: Path) -> list[str]:
    """Headless, sandbox-free (tests run as root in containers), with a throw-away profile and
    no background traffic to Google's services."""
    return ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            f"--user-data-dir={tmp_path / 'profile'}", "--hide-scrollbars",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--no-first-run"]


def run(cmd: list[str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
