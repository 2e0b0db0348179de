"""The conformance suite: does a backend draw from the right law, with the right gradients?

Three doors onto one generator of checks (as scikit-learn's ``estimator_checks``):

* :func:`check_backend` / :func:`check_backends` -- no pytest needed; returns a
  :class:`Report` (``.ok``, ``.failures``, ``.to_json()``, ``.table()``).
* :func:`parametrize_with_checks` -- a ``pytest.mark.parametrize`` whose ids are check ids.
* ``polysample validate`` on the command line (:mod:`polysample.conformance.cli`).

Check ids are ``<backend>-<family>-<grid>-<check>`` (``torch-Gamma-corners-sample_ks``), usable
with ``pytest -k`` and in expected-failure declarations ``{check_id_substring: reason}``.
The method (error budget, seeds, power) is in ``docs/conformance.md``. This package imports
SciPy; ``import polysample`` does not import it.
"""

from __future__ import annotations

from .api import check_backend, check_backends, design_assertions, parametrize_with_checks, plan
from .checks import LAYERS, Check, CheckResult
from .grids import Grid, example_params, grad_leaves, grids
from .report import Report, load_expected_failures

__all__ = [
    "check_backend", "check_backends", "parametrize_with_checks", "plan", "design_assertions",
    "Report", "CheckResult", "Check", "LAYERS", "load_expected_failures",
    "example_params", "grad_leaves", "grids", "Grid",
]
