"""Shared fixtures: every test runs with a clean polysample configuration.

* ``POLYSAMPLE_*`` environment variables are removed, the working directory is a fresh empty
  one (the test's ``tmp_path`` where it asks for one; so no ``pyproject.toml`` of the checkout
  is picked up), ``set_backend(None)``
  and ``reload_config()`` run before and after each test.
* ``AVAILABLE`` lists the backends that load here, and :func:`family_cases` the
  ``(backend, family)`` pairs each one claims: contract tests are parametrized over them, so a
  new backend (numpy, tfp, a plugin) is picked up without editing any test.
"""

from __future__ import annotations

import itertools
import os
import warnings
from collections.abc import Callable, Iterator

import pytest
import torch

import polysample as ps
from polysample.core.backend import FamilySupport
from polysample.core.families import FAMILIES


def _share_the_cores_between_workers() -> None:
    """Under pytest-xdist (``make test``: two workers), each worker's thread pools get its share
    of the cores: torch's OpenMP pool and TensorFlow's intra- and inter-op pools (read when
    TensorFlow starts; subprocesses inherit the variables). With the defaults, two workers on
    two cores ran four compute threads that preempted each other: the statistical suite of six
    families took 71 s, 63 s with one thread per worker."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT") or 0)
    if workers < 2:
        return
    threads = max(1, (os.cpu_count() or 1) // workers)
    for var in ("OMP_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS"):
        os.environ.setdefault(var, str(threads))
    torch.set_num_threads(threads)


_share_the_cores_between_workers()

ENV_VARS = (
    "POLYSAMPLE_BACKEND",
    "POLYSAMPLE_CONFIG",
    "POLYSAMPLE_FALLBACK",
    "POLYSAMPLE_PLUGINS",
    "POLYSAMPLE_DISABLE_PLUGIN_AUTOLOAD",
)


def _available() -> list[str]:
    # A built-in backend that is still missing or broken only warns; it is simply not tested.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return [b.name for b in ps.backends() if b.status == "available"]


#: Names of the backends that load on this machine.
AVAILABLE: list[str] = _available()

#: Families whose log_prob is polysample's own formula (``polysample.core.torch_fixes``:
#: Kumaraswamy in log space, NaN in torch near 1; StudentT, Cauchy and HalfCauchy without
#: squaring large values, -inf in torch beyond 1.8e19 in float32; InverseGamma in closed form,
#: +inf in torch below 1e-154; Gumbel, Pareto and Weibull without overflowing x / scale or its
#: powers, NaN or -inf in torch near float32's largest value; RelaxedBernoulli with softplus,
#: -inf in torch near 0; Normal and HalfNormal from the standardized value, -inf in torch
#: where (x - loc)^2 overflows float32; Binomial, NegativeBinomial and Poisson scored in float64
#: for narrow dtypes, whose log-gamma differences cancel in float32 at large counts): torch's
#: to rounding only.
LOG_PROB_FIXED = frozenset({"Kumaraswamy", "StudentT", "Cauchy", "HalfCauchy", "InverseGamma",
                            "Gumbel", "Pareto", "Weibull", "RelaxedBernoulli", "Normal",
                            "HalfNormal", "RelaxedOneHotCategorical", "Binomial",
                            "NegativeBinomial", "Poisson"})
#: Families whose ``cdf`` and ``icdf`` polysample computes itself (exact through
#: ``probs = 1/2``, where torch's return the value: finding F14): torch's to rounding elsewhere.
CDF_FIXED = frozenset({"ContinuousBernoulli"})


#: Backends whose eager draws cost microseconds: the contract matrix covers all their families.
EAGER_BACKENDS = frozenset({"torch", "numpy"})

#: Families covering the kinds of case: location-scale rsample (Normal), an event dimension
#: with implicit reparameterization (Dirichlet), int64 indices without rsample (Categorical).
#: By default the contract matrix covers every family of every backend (what CI runs). For a
#: quicker local loop, POLYSAMPLE_TEST_QUICK=1 restricts backends that compile their samplers
#: (TFP: one program per family, shape and dtype, 1-5 s each) to these families.
REPRESENTATIVE_FAMILIES = frozenset({"Normal", "Dirichlet", "Categorical"})

FULL_MATRIX = os.environ.get("POLYSAMPLE_TEST_QUICK", "") in ("", "0")


def family_cases(
    keep: Callable[[str, FamilySupport], bool] = lambda family, support: True,
    families: Iterator[str] | None = None,
) -> list[object]:
    """``pytest.param(backend, family, id="backend-family")`` for every claimed family.

    ``keep(family, support)`` filters; ``families`` restricts to a set of family names. Cases
    outside :data:`REPRESENTATIVE_FAMILIES` on a backend outside :data:`EAGER_BACKENDS` are
    skipped (with the reason shown) when ``POLYSAMPLE_TEST_QUICK=1``.
    """
    wanted = None if families is None else set(families)
    cases: list[object] = []
    skip = pytest.mark.skip(
        reason="POLYSAMPLE_TEST_QUICK=1: compiled backends run representative families only")
    for name in AVAILABLE:
        for family, support in sorted(ps.load_backend(name).families().items()):
            if family not in FAMILIES:
                continue  # e.g. "MixtureSameFamily": tested with the combinators
            if wanted is not None and family not in wanted:
                continue
            if keep(family, support):
                full = FULL_MATRIX or name in EAGER_BACKENDS or family in REPRESENTATIVE_FAMILIES
                cases.append(pytest.param(name, family, id=f"{name}-{family}",
                                          marks=() if full else skip))
    return cases


#: Numbers the working directories of tests that do not ask for ``tmp_path`` (see below).
_CWD = itertools.count()


@pytest.fixture(autouse=True)
def clean_config(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch,
                 tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Isolate environment, working directory and process-wide backend for each test.

    The working directory is the test's ``tmp_path`` where it asks for one, else a fresh
    directory of its own under the session's base directory: pytest numbers each ``tmp_path``
    by listing the directories made before it with the same name, a cost that grows with the
    square of a module's test count (5 s of the 24 s of test_torch_compat.py's 2,600 tests).
    """
    for var in ENV_VARS:
        monkeypatch.delenv(var, raising=False)
    if "tmp_path" in request.fixturenames:
        cwd = request.getfixturevalue("tmp_path")
    else:
        cwd = tmp_path_factory.getbasetemp() / "cwd" / str(next(_CWD))
        cwd.mkdir(parents=True)
    monkeypatch.chdir(cwd)
    ps.set_backend(None)
    ps.reload_config()
    yield
    ps.set_backend(None)
    ps.reload_config()


@pytest.fixture
def fresh_registry() -> Iterator[None]:
    """Rediscover plugins before and after the test (for tests that change plugin variables)."""
    ps.refresh()
    yield
    ps.refresh()
