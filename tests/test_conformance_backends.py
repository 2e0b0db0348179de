"""The statistical layers of the suite on every built-in backend that loads here, family by
family, with the cross-backend agreement checks between them.

Quick mode (same alpha per check as the full run, smaller samples: never flaky, weaker power;
its power claims are asserted by the mutant tests). Every failure must be declared in
``polysample/conformance/known_failures.toml`` with a reason; a declared failure that passes is
stale and fails the test. The semantics layer runs through its own door in test_contract.py.

The eager backends (torch, numpy) run every family. TFP's two substrates run one and the same
family code (``polysample/backends/tfp/families.py``): here each family's statistical checks
run on one of them, in turn (sorted families: JAX, TensorFlow, JAX, ...), and Normal,
Categorical and the families with a declared failure on either on both, with the agreement
checks between them. ``make demo`` (which
CI runs and fails on) runs every family on both; ``POLYSAMPLE_TEST_STATISTICAL=all`` runs
both here too.
"""

from __future__ import annotations

import os

import pytest

import polysample as ps
from conftest import AVAILABLE, EAGER_BACKENDS, FULL_MATRIX, REPRESENTATIVE_FAMILIES
from polysample.conformance import check_backends, parametrize_with_checks
from polysample.conformance.report import known_failures
from polysample.core.families import FAMILIES

EXPECTED = known_failures()
BUILTIN = ("torch", "numpy", "tfp", "tfp-tf")
LAYERS = ("density", "sampler", "gradient", "agreement")


#: TFP's substrates, which take turns at the families outside ON_BOTH.
SUBSTRATES = ("tfp", "tfp-tf")
#: Families drawn on both substrates whatever the declarations: a location-scale family with
#: rsample and one of int64 indices (Dirichlet, the third representative family, takes its
#: turn: on both it was the slowest test, 30 s).
ON_BOTH = frozenset({"Normal", "Categorical"})
BOTH_SUBSTRATES = os.environ.get("POLYSAMPLE_TEST_STATISTICAL", "") == "all"
#: Families with a declared expected failure on a TFP backend: run on both substrates.
DECLARED = frozenset(d.family for d in EXPECTED if d.backend in SUBSTRATES)


def substrates_for(index: int, family: str, have: list[str]) -> list[str]:
    """Of the TFP backends ``have`` (those here that claim ``family``, sorted ``index``), those
    the statistical suite runs it on: both for a family of ON_BOTH and for one with a
    declared failure on either (so every declaration is exercised, and a stale one fails),
    else one in turn."""
    if BOTH_SUBSTRATES or family in ON_BOTH or family in DECLARED \
            or len(have) < 2:
        return have
    return [SUBSTRATES[index % 2]]


def _cases() -> list[object]:
    out = []
    for index, family in enumerate(sorted(FAMILIES)):
        backends = [b for b in BUILTIN if b in AVAILABLE
                    and family in ps.load_backend(b).families()]
        tfp = substrates_for(index, family, [b for b in backends if b in SUBSTRATES])
        backends = [b for b in backends if b not in SUBSTRATES or b in tfp]
        if not FULL_MATRIX:
            backends = [b for b in backends
                        if b in EAGER_BACKENDS or family in REPRESENTATIVE_FAMILIES]
        out.append(pytest.param(family, backends, id=family,
                                marks=pytest.mark.xdist_group(f"suite-{family}")))
    return out


@pytest.mark.parametrize("family,backends", _cases())
def test_statistical_suite_passes_apart_from_declared_expected_failures(family, backends):
    report = check_backends(backends, families=[family], expected_failures=EXPECTED,
                            quick=True, layers=LAYERS)
    assert report.results, f"no checks ran for {family}"
    assert report.ok, report.summary()
    assert not report.stale, report.summary()
    assert all(r.reason and r.covered_by for r in report.results if r.status == "xfail")


def test_every_expected_failure_names_a_builtin_backend_a_family_and_a_reason():
    for d in EXPECTED:
        assert d.backend in BUILTIN, d
        assert d.family in FAMILIES, d
        assert len(d.reason) > 20, d


@parametrize_with_checks(["torch"], families=["Exponential"], quick=True)
def test_parametrize_with_checks_door(check):
    check()


def test_parametrize_with_checks_ids_are_check_ids():
    mark = parametrize_with_checks(["torch"], families=["Exponential"])
    ids = [p.id for p in mark.args[1]]
    assert "torch-Exponential-typical-sample_ks" in ids
    assert all(i.startswith("torch-Exponential-") for i in ids)


def test_parametrize_with_checks_runs_the_agreement_layer_between_two_backends():
    mark = parametrize_with_checks(["torch", "numpy"], families=["Exponential"],
                                   layers=("sampler", "agreement"))
    ids = [p.id for p in mark.args[1]]
    assert "torch+numpy-Exponential-typical-agree_pit_mean" in ids
