"""The conformance suite: does a backend draw from the right law, with the right gradients?

Three doors onto one generator of checks (as scikit-learn's ``estimator_checks``), each able to
run all five layers (semantics, density, sampler, gradient, agreement):

* :func:`check_backend` / :func:`check_backends` -- no pytest needed; returns a
  :class:`Report` (``.ok``, ``.failures``, ``.to_json()``, ``.table()``).
* :func:`parametrize_with_checks` -- a ``pytest.mark.parametrize`` whose ids are check ids.
* ``polysample validate`` on the command line (:mod:`polysample.conformance.cli`).

Check ids are ``<backend>-<family>-<grid>-<check>`` (``torch-Gamma-corners-sample_ks``), usable
with ``pytest -k``; expected failures are declared on those fields (:mod:`.expected`). Backends
are given by registered name or as ``Backend`` instances. The method (error budget, seeds,
power) is in ``docs/conformance.md``; what the suite knows about each family is one table,
:mod:`.cases`. This package imports SciPy; ``import polysample`` does not import it.

Layout: :mod:`.model` (checks, results, typed evidence), :mod:`.stats` (the tests),
:mod:`.cases` and :mod:`.reference` (the families and their independent references),
:mod:`.grids` (parameter points), :mod:`.layers` (one module per layer), :mod:`.runner` (the
generator and the runner), :mod:`.expected` (declarations), :mod:`.api` (the doors),
:mod:`.report`, :mod:`.html`, :mod:`.cli`, :mod:`.pytest_plugin`.
"""

from __future__ import annotations

from .api import (
    NothingToCheckError,
    UnknownLayerError,
    check_backend,
    check_backends,
    design_assertions,
    parametrize_with_checks,
    plan,
)
from .expected import Declaration, load_declarations, parse_declarations
from .grids import Grid, example_params, grad_leaves, grid_points, grids
from .model import LAYERS, Check, CheckResult
from .report import Report, known_failures, load_expected_failures

__all__ = [
    "check_backend", "check_backends", "parametrize_with_checks", "plan", "design_assertions",
    "NothingToCheckError", "UnknownLayerError",
    "Report", "CheckResult", "Check", "LAYERS", "Declaration", "parse_declarations",
    "load_declarations", "load_expected_failures", "known_failures",
    "example_params", "grad_leaves", "grids", "Grid", "grid_points",
]
