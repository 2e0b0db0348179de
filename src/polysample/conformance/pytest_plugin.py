"""Opt-in pytest plugin for backend authors: the conformance suite as ordinary test items.

In your ``conftest.py``::

    pytest_plugins = ["polysample.conformance.pytest_plugin"]

and in a test module::

    def test_polysample_conformance(polysample_check):
        polysample_check()          # one test item per check, ids are check ids

Then ``pytest --polysample-backend mybackend [--polysample-family Gamma]
[--polysample-expected-failures known.toml] [--polysample-quick]``. The expected-failures file
(JSON or TOML) maps check-id substrings to reasons; those checks become strict xfails, so a
declared failure that passes is reported (XPASS(strict)) and the stale entry can be removed.
Without ``--polysample-backend`` the items are skipped.
"""

from __future__ import annotations

from typing import Any

import pytest

from .checks import LAYERS


def pytest_addoption(parser: Any) -> None:
    group = parser.getgroup("polysample", "polysample conformance suite")
    group.addoption("--polysample-backend", action="append", default=[], metavar="NAME",
                    help="backend to run the conformance suite on (repeatable)")
    group.addoption("--polysample-family", action="append", default=[], metavar="F",
                    help="restrict to these families (repeatable)")
    group.addoption("--polysample-expected-failures", default=None, metavar="FILE",
                    help="JSON or TOML {check_id_substring: reason}")
    group.addoption("--polysample-quick", action="store_true", default=False,
                    help="smaller samples, same alpha per check, weaker power")


def pytest_generate_tests(metafunc: Any) -> None:
    if "polysample_check" not in metafunc.fixturenames:
        return
    from .api import parametrize_with_checks
    from .report import load_expected_failures

    cfg = metafunc.config
    backends = cfg.getoption("--polysample-backend")
    if not backends:
        metafunc.parametrize("polysample_check", [pytest.param(
            None, marks=pytest.mark.skip(reason="no --polysample-backend given"))],
            ids=["no-backend"])
        return
    path = cfg.getoption("--polysample-expected-failures")
    expected = load_expected_failures(path) if path else {}
    families = cfg.getoption("--polysample-family") or None
    mark = parametrize_with_checks(backends, families, expected,
                                   quick=cfg.getoption("--polysample-quick"),
                                   layers=tuple(x for x in LAYERS if x != "agreement"))
    argnames, argvalues = mark.args
    metafunc.parametrize("polysample_check", argvalues)

