"""The full conformance suite on every built-in backend that loads here.

Quick mode (same alpha per check as the full run, smaller samples: never flaky, weaker power);
the full-power claims are exercised by the mutant tests. Every failure must be declared in
``polysample/conformance/known_failures.toml`` with a reason; a declared failure that passes is stale
and reported as a warning naming the entry.
"""

from __future__ import annotations

import warnings

import pytest

import polysample as ps
from conftest import EAGER_BACKENDS, FULL_MATRIX, REPRESENTATIVE_FAMILIES
from polysample.conformance import check_backend, parametrize_with_checks
from polysample.conformance.report import known_failures

EXPECTED = known_failures()
BUILTIN = ("torch", "numpy", "tfp", "tfp-tf")


def _loadable() -> list[str]:
    out = []
    for name in ps.backend_names():
        try:
            ps.load_backend(name)
        except ps.PolysampleError:
            continue
        out.append(name)
    return out


@pytest.mark.parametrize("backend", _loadable())
def test_full_suite_passes_apart_from_declared_expected_failures(backend):
    # Every family the backend claims (CI); POLYSAMPLE_TEST_QUICK=1 limits compiled backends
    # to representative families for a quicker local loop (see conftest.py).
    families = None
    if not FULL_MATRIX and backend not in EAGER_BACKENDS:
        families = sorted(REPRESENTATIVE_FAMILIES & set(ps.load_backend(backend).families()))
    report = check_backend(backend, families=families, expected_failures=EXPECTED, quick=True)
    assert report.results, f"no checks ran for {backend}"
    for r in report.stale:
        warnings.warn(f"stale expected failure {r.id!r} passed: {r.reason}", UserWarning,
                      stacklevel=1)
    assert report.ok, report.summary()
    assert all(r.reason for r in report.results if r.status == "xfail")


def test_every_expected_failure_names_a_builtin_backend_and_a_reason():
    for sub, reason in EXPECTED.items():
        assert sub.split("-")[0] in BUILTIN, sub
        assert len(reason) > 20, sub


@parametrize_with_checks(["torch"], families=["Exponential"], quick=True)
def test_parametrize_with_checks_door(check):
    check()


def test_parametrize_with_checks_ids_are_check_ids():
    mark = parametrize_with_checks(["torch"], families=["Exponential"])
    ids = [p.id for p in mark.args[1]]
    assert "torch-Exponential-typical-sample_ks" in ids
    assert all(i.startswith("torch-Exponential-") for i in ids)
