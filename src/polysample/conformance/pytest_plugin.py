"""Opt-in pytest plugin for backend authors: the conformance suite as ordinary test items.

In your ``conftest.py``::

    pytest_plugins = ["polysample.conformance.pytest_plugin"]

and in a test module::

    def test_polysample_conformance(polysample_check):
        polysample_check()          # one test item per check, ids are check ids

Choose the backend on the command line or in the ini file (the command line wins)::

    pytest --polysample-backend mybackend [--polysample-family Gamma]
           [--polysample-expected-failures known.toml] [--polysample-quick]
           [--polysample-no-known-failures]

    [tool.pytest.ini_options]
    polysample_backend = ["mybackend"]
    polysample_expected_failures = "known.toml"
    polysample_quick = true
    polysample_known_failures = false   # default true

The expected-failures file (TOML or JSON, see :mod:`polysample.conformance.expected`) declares
known failures with reasons; those checks become strict xfails, so a declared failure that
passes is reported (XPASS(strict)) and the stale entry can be removed. The built-in backends'
known upstream failures (``known_failures.toml``) are declared too, as ``polysample validate``
declares them, unless ``--polysample-no-known-failures`` (or ``polysample_known_failures =
false``). No backend, or a bad option (an unknown backend or family, a family the backend
does not support, a selection with no check, an unreadable or invalid expected-failures
file), stops the session with one ``ERROR:`` line (``pytest.UsageError``, exit status 4), not
a traceback: without a backend it says how to give one (a silent skip would pass a suite that
ran nothing); for a bad option it is the message ``polysample validate`` gives.
"""

from __future__ import annotations

from typing import Any

import pytest

from .model import LAYERS

_NO_BACKEND = ("no backend to run the polysample conformance suite on: pass "
               "--polysample-backend NAME, or set polysample_backend = [\"NAME\"] under "
               "[tool.pytest.ini_options] in pyproject.toml (in pytest.ini, setup.cfg or "
               "tox.ini: polysample_backend = NAME under [pytest])")


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
    group.addoption("--polysample-no-known-failures", action="store_true", default=None,
                    help="do not declare the built-in backends' known upstream failures")
    parser.addini("polysample_backend", "backends to run the conformance suite on",
                  type="args", default=[])
    parser.addini("polysample_family", "families to restrict the suite to", type="args",
                  default=[])
    parser.addini("polysample_expected_failures", "TOML or JSON expected-failure declarations",
                  default="")
    parser.addini("polysample_quick", "run the suite in quick mode", type="bool", default=False)
    parser.addini("polysample_known_failures", "declare the built-in backends' known upstream "
                  "failures (default true)", type="bool", default=True)


#: Where a bad option found while generating the tests waits to stop the session (a
#: ``UsageError`` raised while collecting a module is shown as a collection error with a
#: traceback; raised after collection, pytest prints its one line).
_USAGE = pytest.StashKey[str]()


def pytest_generate_tests(metafunc: Any) -> None:
    if "polysample_check" not in metafunc.fixturenames:
        return
    cfg = metafunc.config
    backends = cfg.getoption("--polysample-backend") or cfg.getini("polysample_backend")
    try:
        if not backends:
            raise _Usage(_NO_BACKEND)
        argvalues = _params(cfg, list(backends))
    except _Usage as exc:
        cfg.stash[_USAGE] = str(exc)

        def refused(_m: str = str(exc)) -> None:
            raise pytest.UsageError(_m)

        argvalues = [pytest.param(refused, id="usage-error")]
    metafunc.parametrize("polysample_check", argvalues)


class _Usage(Exception):
    """A bad option, said in one line."""


def _params(cfg: Any, backends: list[str]) -> list[Any]:
    from ..core.errors import PolysampleError
    from ..core.families import FAMILIES
    from ..core.plugins import backend_names
    from .api import (
        NothingToCheckError,
        parametrize_with_checks,
        unknown_backend_message,
        unknown_family_message,
    )
    from .cli import UsageError, read_expected_failures

    names = backend_names()
    unknown = [b for b in backends if b not in names]
    if unknown:
        raise _Usage(unknown_backend_message(unknown, names))
    families = cfg.getoption("--polysample-family") or cfg.getini("polysample_family") or None
    bad = [f for f in families or () if f not in FAMILIES]
    if bad:
        raise _Usage(unknown_family_message(bad))
    path = cfg.getoption("--polysample-expected-failures") or \
        cfg.getini("polysample_expected_failures") or None
    try:
        expected = read_expected_failures(_resolve(cfg, path), "--polysample-expected-failures"
                                          ) if path else []
    except UsageError as exc:
        raise _Usage(str(exc)) from None
    quick = cfg.getoption("--polysample-quick")
    if quick is None:
        quick = cfg.getini("polysample_quick")
    builtin = not cfg.getoption("--polysample-no-known-failures") and \
        cfg.getini("polysample_known_failures")
    try:
        mark = parametrize_with_checks(backends, families, expected, quick=bool(quick),
                                       layers=LAYERS, known_failures=bool(builtin))
    except (NothingToCheckError, PolysampleError) as exc:
        raise _Usage(str(exc)) from None
    return list(mark.args[1])


def pytest_collection_modifyitems(session: Any, config: Any, items: Any) -> None:
    message = config.stash.get(_USAGE, None)
    if message is not None:
        raise pytest.UsageError(f"polysample: {message}")


def _resolve(cfg: Any, path: str) -> str:
    """A relative expected-failures path is relative to the ini file (or the root dir)."""
    import os

    if os.path.isabs(path) or os.path.exists(path):
        return path
    base = cfg.inipath.parent if cfg.inipath is not None else cfg.rootpath
    return str(base / path)
