"""The sample/rsample contract (DESIGN.md section 1) on every built-in backend that loads here.

The contract is written once, in the shipped suite (``polysample.conformance.layers.semantics``):
this module is its ``parametrize_with_checks`` door over the built-in backends, so a third
party's backend runs exactly the rules ours run. One test item per rule, family and backend
(ids ``<backend>-<family>-example-<rule>``, e.g. ``-k "numpy-Gamma"``).
"""

from __future__ import annotations

import pytest
import torch.distributions as td

import polysample as ps
from conftest import AVAILABLE, EAGER_BACKENDS, FULL_MATRIX, REPRESENTATIVE_FAMILIES
from polysample.conformance import parametrize_with_checks
from polysample.core.families import FAMILIES

BUILTIN = [b for b in ("torch", "numpy", "tfp", "tfp-tf") if b in AVAILABLE]


def _door():  # type: ignore[no-untyped-def]
    mark = parametrize_with_checks(BUILTIN, layers=("semantics",))
    params = []
    for p in mark.args[1]:
        backend, family = p.id.split("-example-")[0].rsplit("-", 1)
        marks = list(p.marks) + [pytest.mark.xdist_group(f"{backend}-{family}")]
        if not FULL_MATRIX and backend not in EAGER_BACKENDS \
                and family not in REPRESENTATIVE_FAMILIES:
            marks.append(pytest.mark.skip(reason="POLYSAMPLE_TEST_QUICK=1: compiled backends "
                                                 "run representative families only"))
        params.append(pytest.param(*p.values, id=p.id, marks=marks))
    return pytest.mark.parametrize("check", params)


@_door()
def test_contract(check):
    check()


def test_every_family_has_a_polysample_class_subclassing_torch() -> None:
    for family in FAMILIES:
        cls = getattr(ps, family)
        assert issubclass(cls, getattr(td, family)), family
        assert family in ps.__all__


def test_the_door_covers_every_family_of_the_torch_backend() -> None:
    # Guard against an empty parametrization silently testing nothing.
    ids = [p.id for p in parametrize_with_checks(["torch"], layers=("semantics",)).args[1]]
    assert {i.split("-")[1] for i in ids} == set(FAMILIES)
    rules = {i.rsplit("-", 1)[1] for i in ids}
    assert {"shapes", "broadcast", "dtype", "sample_no_grad", "rsample_grad", "rsample_raises",
            "has_rsample", "seeds", "global_stream", "generator", "log_prob", "expand", "wrap",
            "pickle", "layouts", "invalid_params"} <= rules
