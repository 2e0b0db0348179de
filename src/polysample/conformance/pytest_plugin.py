"""Opt-in pytest plugin for backend authors: the conformance suite as ordinary test items.

In your ``conftest.py``::

    pytest_plugins = ["polysample.conformance.pytest_plugin"]

and in a test module::

    def test_polysample_conformance(polysample_check):
        polysample_check()          # one test item per check, ids are check ids

Choose the backend on the command line or in the ini file (the command line wins)::

    pytest --polysample-backend mybackend [--polysample-family Gamma]
           [--polysample-expected-failures known.toml] [--polysample-quick]

    [tool.pytest.ini_options]
    polysample_backend = ["mybackend"]
    polysample_expected_failures = "known.toml"
    polysample_quick = true

The expected-failures file (TOML or JSON, see :mod:`polysample.conformance.expected`) declares
known failures with reasons; those checks become strict xfails, so a declared failure that
passes is reported (XPASS(strict)) and the stale entry can be removed. Without a backend the
test **fails**, saying how to give one (a silent skip would pass a suite that ran nothing).
"""

from __future__ import annotations

from typing import Any

import pytest

from .model import LAYERS

_NO_BACKEND = ("no backend to run the polysample conformance suite on: pass "
               "--polysample-backend NAME, or set polysample_backend = [\"NAME\"] under "
               "[tool.pytest.ini_options]")


def pytest_addoption(parser: Any) -> None:
    group = parser.getgroup("polysample", "polysample conformance suite")
    group.addoption("--polysample-backend", action="append", default=[], metavar="NAME",
                    help="backend to run the conformance suite on (repeatable; overrides the "
                         "polysample_backend ini option)")
    group.addoption("--polysample-family", action="append", default=[], metavar="F",
                    help="restrict to these families (repeatable)")
    group.addoption("--polysample-expected-failures", default=None, metavar="FILE",
                    help="TOML or JSON expected-failure declarations")
    group.addoption("--polysample-quick", action="store_true", default=None,
                    help="smaller samples, same alpha per check, weaker power")
    parser.addini("polysample_backend", "backends to run the conformance suite on",
                  type="args", default=[])
    parser.addini("polysample_family", "families to restrict the suite to", type="args",
                  default=[])
    parser.addini("polysample_expected_failures", "TOML or JSON expected-failure declarations",
                  default="")
    parser.addini("polysample_quick", "run the suite in quick mode", type="bool", default=False)


def pytest_generate_tests(metafunc: Any) -> None:
    if "polysample_check" not in metafunc.fixturenames:
        return
    from .api import parametrize_with_checks
    from .report import load_expected_failures

    cfg = metafunc.config
    backends = cfg.getoption("--polysample-backend") or cfg.getini("polysample_backend")
    if not backends:
        def fail() -> None:
            raise pytest.UsageError(_NO_BACKEND)

        metafunc.parametrize("polysample_check", [pytest.param(fail, id="no-backend")])
        return
    path = cfg.getoption("--polysample-expected-failures") or \
        cfg.getini("polysample_expected_failures") or None
    expected = load_expected_failures(_resolve(cfg, path)) if path else []
    families = cfg.getoption("--polysample-family") or cfg.getini("polysample_family") or None
    quick = cfg.getoption("--polysample-quick")
    if quick is None:
        quick = cfg.getini("polysample_quick")
    mark = parametrize_with_checks(backends, families, expected, quick=bool(quick),
                                   layers=LAYERS)
    argnames, argvalues = mark.args
    metafunc.parametrize("polysample_check", argvalues)


def _resolve(cfg: Any, path: str) -> str:
    """A relative expected-failures path is relative to the ini file (or the root dir)."""
    import os

    if os.path.isabs(path) or os.path.exists(path):
        return path
    base = cfg.inipath.parent if cfg.inipath is not None else cfg.rootpath
    return str(base / path)
