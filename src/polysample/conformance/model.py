"""The result model of the conformance suite: checks, their outcomes and typed evidence.

A :class:`Check` is one test of one backend on one family (``<backend>-<family>-<grid>-<name>``).
Running it gives a :class:`CheckResult`; a check that wants to pass data on (the normal scores
the agreement layer compares, the CDF curves the HTML report plots, the gradient errors it
tabulates) returns it as typed :class:`Evidence` in its :class:`Outcome`, never through side
channels. Everything here is plain data (picklable, JSON-able) so results travel between
processes unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from .runner import Runner

__all__ = [
    "LAYERS", "Check", "CheckResult", "Outcome", "CheckFailure", "Skip", "Evidence", "PitScores",
    "CdfCurves", "GradErrors", "jsonable", "CHECK_NAMES", "EXTRA_GRIDS",
]

#: The layers of the suite, cheapest first (see ``docs/conformance.md``).
LAYERS = ("semantics", "density", "sampler", "gradient", "agreement")

#: Every check name the layers can produce (the last field of a check id), and ``load`` (a
#: backend that fails to load). Expected-failure declarations are validated against it (a
#: misspelt check matched nothing, silently); ``tests/test_conformance_mutants.py`` asserts
#: that every generated check's name is here.
CHECK_NAMES: frozenset[str] = frozenset({
    # semantics
    "load", "shapes", "broadcast", "dtype", "sample_no_grad", "rsample_grad",
    "rsample_near_zero", "rsample_raises", "has_rsample", "seeds", "seeds_process",
    "fork_streams", "global_stream",
    "generator", "log_prob", "expand", "wrap", "pickle", "layouts", "invalid_params",
    "point_mass", "traced",
    # density
    "log_prob_f64", "log_prob_f32", "log_prob_far", "log_prob_edge", "log_prob_huge",
    "log_prob_logits", "log_prob_layouts",
    "log_prob_gradcheck",
    # sampler (sample() and rsample() draws, many small calls, the sweep, mixtures)
    *(f"{method}_{stat}" for method in ("sample", "rsample") for stat in (
        "ks", "pit_mean", "pit_var", "sum", "atoms", "tails", "indep", "repeats")),
    "calls_ks", "calls_repeats", "calls_indep", "calls_pairs", "scalar_ks", "ones_ks",
    "smalls_ks", "batches_ks", "batches_indep", "event2_ks",
    "smalls_pit_mean", "smalls_pit_var",
    "sample_sweep",
    "mixture_ks",
    # gradient
    "grad_cdf", "grad_noise", "grad_mean", "grad_shape", "grad_large", "grad_sweep",
    "grad_scalar", "grad_second",
    "mixture_grad",
    # agreement
    "agree_pit_mean", "agree_pit_var",
})

#: Grid labels of check ids besides the statistical grids of :func:`.grids.grids`
#: (``typical``, ``corners``, ``edges``, ``float32``, ``sweep``): ``example`` (the checks
#: of one example distribution) and ``all`` (a backend that fails to load).
EXTRA_GRIDS: tuple[str, ...] = ("example", "all")


@dataclass(frozen=True)
class Evidence:
    """Base class of the typed data a check hands on (to other checks or to the report)."""


@dataclass(frozen=True)
class PitScores(Evidence):
    """Per projection, the mean normal score (``which="mean"``) or mean squared normal score
    (``"var"``) of one draw, one entry per grid point (NaN where excluded), from ``n`` draws.

    Under the reference law the scores are exactly N(0, 1), so two backends' means can be
    compared with an exact two-sample z-test (the agreement layer).
    """

    backend: str
    family: str
    grid: str
    method: str
    which: str
    n: int
    values: Mapping[str, tuple[float, ...]]


@dataclass(frozen=True)
class CdfCurves(Evidence):
    """``F_ref(x_q) - q`` at quantile levels ``q`` of one projection of a draw, one curve per
    grid point, for the report's plots. ``statistic`` is the per-point K-S distance the check
    used (tie-corrected where the draw has ties at float resolution), ``threshold`` its bound.
    For points with ties the curve is the tie-corrected deviation, so the plot agrees with the
    check."""

    backend: str
    family: str
    grid: str
    label: str
    q: tuple[float, ...]
    curves: tuple[tuple[float, ...], ...]  # one per grid point
    points: tuple[str, ...]  # "typical[0] (loc=-0.5, scale=0.5)"
    statistic: tuple[float, ...]
    threshold: float
    tie_corrected: tuple[bool, ...]


@dataclass(frozen=True)
class GradErrors(Evidence):
    """The per-parameter error measure of a gradient check (for the report's table)."""

    backend: str
    family: str
    grid: str
    measure: str
    values: Mapping[str, float]
    threshold: str


@dataclass
class Outcome:
    """What a check function returns when it passes (or attaches to :class:`CheckFailure`)."""

    message: str = ""
    statistic: float | None = None
    threshold: float | None = None
    n: int | None = None
    seed: int | None = None
    alpha: float | None = None
    detectable: float | None = None
    point: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    evidence: list[Evidence] = field(default_factory=list)


class CheckFailure(AssertionError):
    """Raised inside a check: it fails with this message and the outcome's numbers."""

    def __init__(self, message: str, outcome: Outcome | None = None, **numbers: Any):
        super().__init__(message)
        self.outcome = outcome if outcome is not None else Outcome(**numbers)
        self.outcome.message = message


class Skip(Exception):
    """Raised inside a check that does not apply (the reason is reported)."""


@dataclass
class Check:
    """One check. ``id`` is ``<backend>-<family>-<grid>-<name>``.

    ``backend`` is the name the report uses; ``fn(runner)`` returns an :class:`Outcome` or raises
    :class:`CheckFailure` / :class:`Skip`. ``statistical`` checks hold a share of the error
    budget. ``involves`` lists the backends whose draws the check judges (one for every layer
    but agreement, two there): expected-failure declarations of any of them cover it.
    """

    backend: str
    family: str
    grid: str
    name: str
    layer: str
    statistical: bool
    fn: Callable[[Runner], Outcome]
    involves: tuple[str, ...] = ()

    @property
    def id(self) -> str:
        return f"{self.backend}-{self.family}-{self.grid}-{self.name}"


@dataclass
class CheckResult:
    """The outcome of one check. ``status``: pass, fail, xfail, xpass or skip.

    ``point`` names the grid point (with its parameter values) a statistic refers to;
    ``covered_by`` names the expected-failure declaration that matched, with its reason in
    ``reason``.
    """

    id: str
    backend: str
    family: str
    grid: str
    check: str
    layer: str
    status: str
    message: str = ""
    statistic: float | None = None
    threshold: float | None = None
    n: int | None = None
    seed: int | None = None
    alpha: float | None = None
    detectable: float | None = None
    seconds: float = 0.0
    reason: str = ""
    covered_by: str = ""
    point: str = ""
    involves: tuple[str, ...] = ()
    details: dict[str, Any] = field(default_factory=dict)
    evidence: list[Evidence] = field(default_factory=list, repr=False)

    @property
    def failed(self) -> bool:
        return self.status == "fail"

    def to_dict(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in (
            "id", "backend", "family", "grid", "check", "layer", "status", "message", "point",
            "statistic", "threshold", "n", "seed", "alpha", "detectable", "seconds", "reason",
            "covered_by", "involves")}
        d["details"] = self.details
        return jsonable(d)  # type: ignore[no-any-return]


def jsonable(x: Any) -> Any:
    """``x`` with NumPy values made plain and non-finite floats made strings (strict JSON)."""
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return jsonable(x.tolist())
    if isinstance(x, np.generic):
        return jsonable(x.item())
    if isinstance(x, float) and not math.isfinite(x):
        return str(x)
    return x
