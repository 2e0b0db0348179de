"""Layer 2, densities: a backend's own ``log_prob`` against SciPy, and its gradients.

Only for families the backend scores itself (``FamilySupport.log_prob``; otherwise torch scores
them and there is nothing of the backend's to test) and that have an independent reference
density (see :mod:`..cases`). ``log_prob_f64`` / ``log_prob_f32`` compare with SciPy at five
draws of torch's sampler per grid point (``log_prob_f64`` also at two per point of the 32 of
the univariate families' ``sweep`` grid), and for the univariate continuous families also at
those draws rounded to whole numbers (:func:`_with_whole_values`) (relative tolerance 1e-6 in
float64, 1e-4 in float32);
``log_prob_gradcheck`` runs ``torch.autograd.gradcheck`` in float64 (skipped for parameters on
a simplex, where finite differences leave the constraint; for the univariate continuous families
with respect to the value too, and at two tail values per grid point), checks that a NaN
upstream gradient comes back NaN (:func:`..runner.nan_cotangent`) and that the float32
gradients are float64's to :data:`F32_GRAD_RTOL`. ``log_prob_far`` compares float64
``log_prob`` with SciPy in the tails (:func:`far_points`): at log densities of about -12.5,
-50 and -200, and in the far tails (-800), where the density underflows;
``log_prob_edge`` near the finite ends of the support (:func:`edge_points`), where differences
such as ``1 - x^a`` cancel; ``log_prob_huge`` at huge values (:func:`huge_points`), where the
square of the standardized value overflows although the log density is a few hundred.
``log_prob_logits``: the probability families built from ``logits`` up to |100|
(:func:`logit_case`), whose probabilities round to 0 or 1, and from ``probs`` down to 1e-30
(:func:`prob_case`), below torch's clamp, against a log-space reference
(:func:`logit_log_prob`), value and gradient.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch

from ...core.backend import FamilySupport
from ...core.errors import NotReparameterizableError
from ...core.families import FAMILIES
from .. import cases
from ..grids import SWEEP_GRID_POINTS, example_params, grad_leaves, grid_points
from ..model import Check, CheckFailure, Outcome, Skip
from ..reference import params_np
from ..runner import Runner, Target, make, nan_cotangent

__all__ = ["checks", "far_points", "FAR_LOG_DENSITY", "TAIL_LOG_DENSITIES", "edge_points", "EDGE_STEPS",
           "huge_points", "HUGE_VALUES", "HUGE_RTOL", "LOGITS", "logit_case", "logit_log_prob",
           "PROBS", "prob_case", "probs_log_odds"]


#: The logits of ``log_prob_logits`` (one batch element each): where ``sigmoid`` is 1 or 0 to
#: float32 (|17| and beyond) and to float64 (|100|), and two ordinary ones.
LOGITS = (-100.0, -30.0, -17.0, -0.5, 0.5, 17.0, 30.0, 100.0)
#: The category logits of the categorical families (3 batch rows of 4 categories): a category
#: 200 below another, two 60 apart, all equal.
CATEGORY_LOGITS = ((0.0, -100.0, 100.0, 5.0), (30.0, -30.0, 0.0, 0.0), (0.0, 0.0, 0.0, 0.0))
#: The probabilities of its second half, the families built from ``probs`` (one batch element
#: each): below float32's eps (1.19e-7, where torch's ``probs_to_logits`` clamps them), the
#: largest float32 below 1, and two ordinary ones.
PROBS = (1e-30, 1e-20, 1e-9, 1e-7, 0.3, 0.7, 1.0 - 1e-7, 1.0 - 2.0 ** -24)
#: The category probabilities (3 rows of 4 categories, normalized by the family): categories
#: of 1e-30 to 1e-7 beside large ones.
CATEGORY_PROBS = ((1e-30, 1e-9, 0.25, 0.75), (1e-7, 0.5, 0.5, 1e-20), (0.25, 0.25, 0.25, 0.25))
_COUNT_VALUES = {"Bernoulli": (0.0, 1.0), "Binomial": (0.0, 1.0, 9.0, 10.0),
                 "Geometric": (0.0, 1.0, 5.0), "NegativeBinomial": (0.0, 1.0, 3.0, 10.0)}
_TOTALS = {"Binomial": 10.0, "NegativeBinomial": 3.0}
_MULTINOMIAL_COUNTS = ((5, 0, 0, 0), (0, 5, 0, 0), (0, 0, 5, 0), (1, 1, 2, 1), (0, 0, 0, 5))
#: The count families whose ``log_prob_gradcheck`` also scores the ends of the support.
_COUNT_ENDS = ("Binomial", "NegativeBinomial", "Poisson", "Geometric")
#: ``log_prob_f64`` / ``log_prob_f32`` of the count families also score every count below
#: this (Binomial's up to ``total_count``), beside the draws: a Poisson whose table of
#: ``log(k!)`` had a typo at 12 passed, no draw of the grids' points being 12 (an outside
#: trial).
EVERY_COUNT_BELOW = 64
#: The families whose ``log_prob_gradcheck`` also scores the log density's kink: its parameter.
_KINKS = {"Laplace": "loc"}
_CATEGORY_FAMILIES = ("Categorical", "OneHotCategorical", "OneHotCategoricalStraightThrough",
                      "Multinomial")


def logit_case(family: str, dtype: torch.dtype
               ) -> tuple[torch.Tensor, dict[str, Any], torch.Tensor] | None:
    """The ``logits``, the other parameters and the values (sample dimension first) at which
    ``log_prob_logits`` scores ``family``; None for a family it does not judge."""
    if family in _COUNT_VALUES:
        logits = torch.tensor(LOGITS, dtype=dtype)
        vals = _COUNT_VALUES[family]
        value = torch.tensor(vals, dtype=dtype)[:, None].expand(len(vals), len(LOGITS))
        other = {"total_count": torch.tensor(_TOTALS[family], dtype=dtype)} \
            if family in _TOTALS else {}
        return logits, other, value.contiguous()
    if family not in _CATEGORY_FAMILIES:
        return None
    logits = torch.tensor(CATEGORY_LOGITS, dtype=dtype)
    k, rows = logits.shape[-1], logits.shape[0]
    if family == "Categorical":
        return logits, {}, torch.arange(k)[:, None].expand(k, rows).contiguous()
    if family == "Multinomial":
        counts = torch.tensor(_MULTINOMIAL_COUNTS, dtype=dtype)
        return logits, {"total_count": 5}, counts[:, None, :].expand(
            len(counts), rows, k).contiguous()
    return logits, {}, torch.eye(k, dtype=dtype)[:, None, :].expand(k, rows, k).contiguous()


def prob_case(family: str, dtype: torch.dtype
              ) -> tuple[torch.Tensor, dict[str, Any], torch.Tensor] | None:
    """:func:`logit_case` with ``probs`` (:data:`PROBS`, :data:`CATEGORY_PROBS`) instead of
    ``logits``: the other parameters and the values are the same."""
    case = logit_case(family, dtype)
    if case is None:
        return None
    _, other, value = case
    probs = PROBS if family in _COUNT_VALUES else CATEGORY_PROBS
    return torch.tensor(probs, dtype=dtype), other, value


def probs_log_odds(family: str, probs: torch.Tensor) -> torch.Tensor:
    """The float64 logits of ``probs`` (differentiable; exact where torch's clamp is not):
    ``log p - log1p(-p)`` for the count families, ``log p`` for the categorical ones."""
    p = probs.double()
    return p.log() - torch.log1p(-p) if family in _COUNT_VALUES else p.log()


def logit_log_prob(family: str, logits: torch.Tensor, other: dict[str, Any],
                   value: torch.Tensor) -> torch.Tensor:
    """The reference log mass from ``logits``, computed in float64 in log space
    (``logsigmoid``, ``logsumexp``: exact where ``sigmoid`` rounds to 0 or 1), differentiable
    in ``logits``."""
    lg = logits.double()
    v = value.double() if value.is_floating_point() else value
    if family in _COUNT_VALUES:
        log_p, log_q = torch.nn.functional.logsigmoid(lg), torch.nn.functional.logsigmoid(-lg)
        if family == "Bernoulli":
            return v * log_p + (1 - v) * log_q
        if family == "Geometric":  # failures before the first success of probability p
            return log_p + v * log_q
        n = torch.as_tensor(other["total_count"], dtype=torch.float64)
        if family == "Binomial":
            return (torch.lgamma(n + 1) - torch.lgamma(v + 1) - torch.lgamma(n - v + 1)
                    + v * log_p + (n - v) * log_q)
        # NegativeBinomial: successes (probability p) before total_count failures
        return torch.lgamma(v + n) - torch.lgamma(n) - torch.lgamma(v + 1) + n * log_q + v * log_p
    log_p = lg - torch.logsumexp(lg, -1, keepdim=True)
    if family == "Categorical":
        return log_p.expand(v.shape + log_p.shape[-1:]).gather(-1, v.unsqueeze(-1)).squeeze(-1)
    out = (v * log_p).sum(-1)
    if family == "Multinomial":
        total = float(other["total_count"])
        out = out + math.lgamma(total + 1) - torch.lgamma(v + 1).sum(-1)
    return out

#: The reference log density at the values of ``log_prob_far``: below float64's smallest
#: density (exp(-745) underflows to 0), so that a log_prob computed as log(pdf) is -inf there.
FAR_LOG_DENSITY = -800.0
#: The levels of ``log_prob_far``: the far one, and the tails between the draws (``|z|`` below
#: about 5) and it, where a formula can be wrong without either showing: each level's values
#: have a reference log density between twice the level and the level (a Normal's ``|z|`` in
#: [5, 7], [10, 14], [20, 28] and [40, 57]).
TAIL_LOG_DENSITIES = (-12.5, -50.0, -200.0, FAR_LOG_DENSITY)


#: How far ``log_prob_far`` looks: at most this many times the distance from the draws'
#: midpoint to their extreme (a value whose square, or its distance's, overflows float64 is
#: not asked for: 2^400 is about 1e120).
FAR_REACH = 2.0 ** 400
#: ``log_prob_gradcheck``'s tail values lie at least this far inside the support (its finite
#: differences step 1e-6).
GRADCHECK_MARGIN = 1e-3


#: How close to a finite end of the support ``log_prob_edge`` looks: a lower end L at
#: ``L + |L| 2^-k`` (``2^-(19 k)`` when L is 0: down to 2^-988, a float64 subnormal's
#: neighbourhood), an upper end U at ``U - max(|U|, 1) 2^-k``, for each k.
EDGE_STEPS = (20, 40, 52)


def edge_points(tdist: Any) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Values near the finite ends of ``tdist``'s interval support, ``(values (m, G),
    inside (m, G))`` (``inside``: the values in the support), or None when it has no finite
    end (see :data:`EDGE_STEPS`). The first row is the lower end itself where the support
    holds it (Exponential's 0, Pareto's ``scale``): a ``log_prob`` guarded by ``x > 0`` gave
    ``-inf`` there, where the density is ``rate``, and only values beside it were asked."""
    s = tdist.support
    while isinstance(s, torch.distributions.constraints.independent):
        s = s.base_constraint
    batch = tdist.batch_shape
    rows = []
    lb, ub = getattr(s, "lower_bound", None), getattr(s, "upper_bound", None)
    if lb is not None:
        lo = torch.as_tensor(lb, dtype=torch.float64).expand(batch)
        rows.append(lo)
        for k in EDGE_STEPS:
            rows.append(torch.where(lo == 0, torch.tensor(2.0 ** -(19 * k), dtype=torch.float64),
                                    lo + lo.abs() * 2.0 ** -k))
    if ub is not None:
        hi = torch.as_tensor(ub, dtype=torch.float64).expand(batch)
        for k in EDGE_STEPS:
            rows.append(hi - hi.abs().clamp(min=1.0) * 2.0 ** -k)
    if not rows:
        return None
    x = torch.stack(rows)
    inside = x.isfinite() & tdist.support.check(x)
    if not bool(inside.any()):
        return None
    return x, inside


def _lower_end(tdist: Any) -> np.ndarray | None:
    """The lower end of ``tdist``'s support per batch element (None without one)."""
    s = tdist.support
    while isinstance(s, torch.distributions.constraints.independent):
        s = s.base_constraint
    lb = getattr(s, "lower_bound", None)
    if lb is None:
        return None
    return torch.as_tensor(lb, dtype=torch.float64).expand(tdist.batch_shape).numpy()


#: The magnitudes ``log_prob_huge`` asks for in each dtype, on each side of zero that lies in
#: the support. A standardized value's square overflows float64 beyond 1.3e154 and float32's
#: beyond 1.8e19, where a heavy tail's log density is still a few hundred (a Cauchy's: -922 at
#: 1e200). float32 asks for its largest finite value too, where the standardized value itself
#: overflows when the scale is below 1 (the reference, in float64, does not; float64's largest
#: value would overflow the reference's own standardization).
HUGE_VALUES: dict[torch.dtype, tuple[float, ...]] = {
    torch.float64: (1e30, 1e100, 1e200, 1e300),
    torch.float32: (1e10, 1e20, 1e30, torch.finfo(torch.float32).max),
}

#: The relative tolerance of ``log_prob_huge`` in each dtype (as ``log_prob_f64`` and
#: ``log_prob_f32``).
HUGE_RTOL = {torch.float64: 1e-6, torch.float32: 1e-4}


def huge_points(tdist: Any, dtype: torch.dtype = torch.float64
                ) -> tuple[torch.Tensor, torch.Tensor] | None:
    """``(values (m, G), inside (m, G))``: +-:data:`HUGE_VALUES` of ``dtype`` and which lie in
    ``tdist``'s support, or None when none does."""
    batch = tdist.batch_shape
    x = torch.tensor([s * h for h in HUGE_VALUES[dtype] for s in (1.0, -1.0)], dtype=dtype)
    x = x.reshape((-1,) + (1,) * len(batch)).expand((x.numel(),) + tuple(batch))
    inside = tdist.support.check(x.double())
    if not bool(inside.any()):
        return None
    return x, inside


def far_points(law: Any, draws: np.ndarray, inside: Callable[[np.ndarray], np.ndarray],
               level: float = FAR_LOG_DENSITY) -> tuple[np.ndarray, np.ndarray]:
    """Values of each grid point's law, below and above its draws (``(n, G)``), where the
    reference log density is between ``2 * level`` and ``level`` (:data:`FAR_LOG_DENSITY`):
    ``(values (2, G), found (2, G))``. Each side walks out from the draws' midpoint by
    doubling its distance to the extreme draw (up to :data:`FAR_REACH` times it), then
    bisects; a side where the support (``inside``) ends or the reference stops being finite
    first (SciPy's Laplace and Pareto densities underflow themselves) is not found."""
    with np.errstate(all="ignore"):
        return _far_points(law, draws, inside, level)


def _far_points(law: Any, draws: np.ndarray, inside: Callable[[np.ndarray], np.ndarray],
                level: float) -> tuple[np.ndarray, np.ndarray]:
    lo_d, hi_d = draws.min(0), draws.max(0)
    mid = (lo_d + hi_d) / 2

    def logpdf(x: np.ndarray) -> np.ndarray:
        v = np.asarray(law.logpdf(x), dtype=np.float64)
        return np.where(np.isfinite(x) & ~np.isnan(v) & inside(x), v, -np.inf)

    xs = np.empty((2,) + mid.shape)
    found = np.zeros((2,) + mid.shape, dtype=bool)
    for side, edge in enumerate((lo_d, hi_d)):
        step = edge - mid
        inner = np.ones_like(mid)            # multiples of step with log density > level
        outer = np.full_like(mid, np.nan)    # the first multiple at or below it
        t = np.ones_like(mid)
        while t[0] < FAR_REACH:
            t = t * 2
            v = logpdf(mid + t * step)
            new = np.isnan(outer) & (v <= level)
            outer = np.where(new, t, outer)
            inner = np.where(np.isnan(outer), t, inner)
            if not np.isnan(outer).any():
                break
        outer = np.where(np.isnan(outer), inner, outer)
        for _ in range(64):  # a bracket of ratio 2: float64 precision after 53
            t = (inner + outer) / 2
            v = logpdf(mid + t * step)
            above = v > level
            inner, outer = np.where(above, t, inner), np.where(above, outer, t)
        x = mid + outer * step
        v = logpdf(x)
        found[side] = np.isfinite(v) & (v <= level) & (v >= 2 * level)
        xs[side] = np.where(found[side], x, mid)  # elsewhere a value inside the support
    return xs, found


def _rel_errors(got: np.ndarray, want: np.ndarray, asked: np.ndarray) -> np.ndarray:
    """``|got - want| / (|want| + 1)`` where ``asked`` (0 elsewhere, and where both are the same
    number or infinity; infinity where either is NaN or only one is infinite)."""
    with np.errstate(all="ignore"):
        err = np.where(got == want, 0.0, np.abs(got - want) / (np.abs(want) + 1.0))
    return np.where(asked, np.where(np.isfinite(err), err, np.inf), 0.0)


def checks(t: Target, family: str, support: FamilySupport) -> Iterator[Check]:
    c = cases.CASES[family]
    if not support.log_prob or not c.has_density:
        return
    spec = FAMILIES[family]

    def grid_params(grid: str, dtype: torch.dtype) -> dict[str, Any]:
        if grid == "corners" and c.corners is not None:
            return dict(c.corners(dtype))
        if grid == "sweep":
            return cases.sweep_params(family, SWEEP_GRID_POINTS, dtype)
        return example_params(family, (3,), dtype)

    def points(dtype: torch.dtype, grid: str = "example"
               ) -> tuple[dict[str, Any], Any, torch.Tensor]:
        params = grid_params(grid, dtype)
        tdist = getattr(torch.distributions, family)(**grid_params(grid, torch.float64))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(1234)
            # the sweep's 32 points twice: 64 values, the size class of the example's 15
            value = tdist.sample((2 if grid == "sweep" else 5,))
        if family == "Wishart":
            value = (value + value.transpose(-1, -2)) / 2
        return params, tdist, value.to(dtype) if spec.kind != "index" else value

    def typical_wrong() -> bool:
        """Whether ``log_prob`` (float64) misses the reference at the example grid's typical
        values too: the failures in the tails or at the ends are then the formula's, and
        advice about numerics there would mislead (a wrong normalising constant, scores of
        one batch element at another's values)."""
        try:
            params, tdist, value = points(torch.float64)
            got = make(family, params, t).log_prob(value).detach().double().numpy()
            v = value.double().numpy()
            if family == "Wishart":
                v = (v + np.swapaxes(v, -1, -2)) / 2
            want = np.asarray(cases.reference_logpdf(family, params_np(tdist, spec.params), v),
                              dtype=np.float64)
        except Exception:  # noqa: BLE001 - log_prob_f64 reports its own failure
            return True
        with np.errstate(all="ignore"):
            err = np.abs(got - want) / (np.abs(want) + 1.0)
        return not bool(np.all(np.isfinite(got)) and np.all(err <= 1e-6))

    def advice(numerics: str) -> str:
        if typical_wrong():
            return ("log_prob misses the reference at typical values too (see log_prob_f64): "
                    "the formula (its normalising constant, the parameters it reads) is "
                    "wrong, not only its numerics here")
        return numerics

    def logprob(dtype: torch.dtype, rtol: float, grid: str = "example"
                ) -> Callable[[Runner], Outcome]:
        def fn(r: Runner) -> Outcome:
            params, tdist, value = points(dtype, grid)
            if family in _COUNT_ENDS:
                value = _with_every_count(family, params, value)
            if c.law is not None and not c.discrete:
                value = _with_whole_values(tdist, value)
            got = make(family, params, t).log_prob(value).detach().double().numpy()
            p = params_np(tdist, spec.params)
            v = value.double().numpy()
            if family == "Wishart":
                v = (v + np.swapaxes(v, -1, -2)) / 2
            want = np.asarray(cases.reference_logpdf(family, p, v), dtype=np.float64)
            err = np.abs(got - want) / (np.abs(want) + 1.0)
            worst = float(np.max(np.where(np.isfinite(err), err, np.inf)))
            if not np.all(np.isfinite(got)) or worst > rtol:
                i = int(np.argmax(np.where(np.isfinite(err), err, np.inf)))
                j = np.unravel_index(i, got.shape)[-1]  # the grid point (batch of 3)
                pts = grid_points(family, params)
                raise CheckFailure(
                    f"log_prob differs from SciPy: max |got - want|/(|want| + 1) = {worst:.3g} "
                    f"> {rtol:g}; e.g. got {got.flat[i]:.10g}, want {want.flat[i]:.10g} at "
                    f"value {v.reshape(got.size, -1)[i].tolist()} with {pts[j]}", statistic=worst, threshold=rtol,
                    point=f"{grid}[{j}] ({pts[j]})")
            return Outcome(f"max rel. error {worst:.2g}", statistic=worst, threshold=rtol)
        return fn

    yield Check(t.name, family, "example", "log_prob_f64", "density", False,
                logprob(torch.float64, 1e-6))
    yield Check(t.name, family, "example", "log_prob_f32", "density", False,
                logprob(torch.float32, 1e-4))
    if c.sweep is not None and c.law is not None:
        # across the univariate families' sweep ranges (32 points): a formula wrong in a band
        # of a parameter between the grid points (a Gamma log_prob 1e-3 off for
        # concentrations in [5, 20)) passed the example and corner points
        yield Check(t.name, family, "sweep", "log_prob_f64", "density", False,
                    logprob(torch.float64, 1e-6, "sweep"))

    reference = c.law
    if reference is not None and not c.discrete:
        def far(r: Runner) -> Outcome:
            params, tdist, value = points(torch.float64)
            law = reference(params_np(tdist, spec.params))
            support = tdist.support

            def inside(x: np.ndarray) -> np.ndarray:
                return np.asarray(support.check(torch.from_numpy(x)))

            draws = value.double().numpy()
            # (2 sides x levels, G): each level's lower and upper values
            found_at = [far_points(law, draws, inside, level) for level in TAIL_LOG_DENSITIES]
            xs = np.concatenate([x for x, _ in found_at])
            found = np.concatenate([f for _, f in found_at])
            if not found.any():
                raise Skip("the reference density does not fall below "
                           f"exp({TAIL_LOG_DENSITIES[0]:g}) at a finite value of the support "
                           "before it overflows")
            got = make(family, params, t).log_prob(torch.from_numpy(xs)).detach().double()
            got = got.numpy()
            want = np.asarray(law.logpdf(xs), dtype=np.float64)
            err = _rel_errors(got, want, found)
            worst = float(err.max())
            if worst > 1e-6:
                row, j = np.unravel_index(int(np.argmax(err)), err.shape)
                level, side = TAIL_LOG_DENSITIES[row // 2], row % 2
                pts = grid_points(family, params)
                how = (("The density there is below exp(-745), where it underflows in "
                        "float64: compute log_prob in log space, not as log(pdf)")
                       if level < -745 else
                       (f"The density there is about exp({level:g}), between the draws and "
                        "the far tail: the formula's tail (an asymptotic expansion, a "
                        "switch of branch) is off there"))
                raise CheckFailure(
                    f"log_prob in the {('lower', 'upper')[side]} tail (log density about "
                    f"{level:g}) differs from SciPy: got {got[row, j]:.10g}, want "
                    f"{want[row, j]:.10g} at value {xs[row, j]:.10g} with {pts[j]} (max "
                    f"|got - want|/(|want| + 1) = {worst:.3g} > 1e-06). " + advice(how),
                    statistic=worst, threshold=1e-6,
                    point=f"example[{j}] ({pts[j]})")
            levels = ", ".join(f"{v:g}" for v in TAIL_LOG_DENSITIES)
            return Outcome(f"max rel. error {worst:.2g} at {int(found.sum())} tail values "
                           f"where the log density is about {levels}",
                           statistic=worst, threshold=1e-6)

        yield Check(t.name, family, "example", "log_prob_far", "density", False, far)

    # The edge and huge values are asked at the example grid and at the corners (extreme
    # parameters: a scale of 1e-3 or 1e3, a temperature of 3), each grid a check of its own.
    grids = ("example", "corners") if c.corners is not None else ("example",)

    def scored(grid: str, dtype: torch.dtype,
               where: Callable[[Any], tuple[torch.Tensor, torch.Tensor] | None], none: str
               ) -> tuple[dict[str, Any], torch.Tensor, np.ndarray, np.ndarray, np.ndarray]:
        """The backend's ``log_prob`` and the reference's at the values ``where(law)`` gives
        for ``grid`` in ``dtype``: ``(params, values, inside, got, want)``; Skip(``none``)
        when it gives none. Values outside the support are asked at a draw instead."""
        params, tdist, value = points(dtype, grid)
        found = where(tdist)
        if found is None:
            raise Skip(none)
        xs, inside = found
        xs = torch.where(inside, xs, value[0].expand_as(xs))
        assert reference is not None  # the checks are yielded only then
        law = reference(params_np(tdist, spec.params))
        got = make(family, params, t).log_prob(xs).detach().double().numpy()
        with np.errstate(all="ignore"):
            want = np.asarray(law.logpdf(xs.double().numpy()), dtype=np.float64)
        return params, xs, inside.numpy(), got, want

    def edge(grid: str) -> Callable[[Runner], Outcome]:
        def fn(r: Runner) -> Outcome:
            params, xs, inside, got, want = scored(grid, torch.float64, edge_points,
                                                   "the support has no finite end")
            # At the end itself only a finite reference density is judged: an infinite one
            # (Gamma below concentration 1 at 0) is a limit that libraries write either way.
            end = _lower_end(getattr(torch.distributions, family)(
                **grid_params(grid, torch.float64)))
            if end is not None:
                inside = inside & (np.isfinite(want) | (xs.numpy() != end))
            err = _rel_errors(got, want, inside)
            worst = float(err.max())
            if worst > 1e-6:
                i, j = np.unravel_index(int(np.argmax(err)), err.shape)
                pts = grid_points(family, params)
                at_end = end is not None and float(xs[i, j]) == float(end[j])
                raise CheckFailure(
                    f"log_prob {'at the lower end' if at_end else 'near an end'} of the "
                    f"support differs from the reference: got "
                    f"{got[i, j]:.10g}, want {want[i, j]:.10g} at value {float(xs[i, j])!r} "
                    f"with {pts[j]} (max |got - want|/(|want| + 1) = {worst:.3g} > 1e-06). "
                    + advice("The support holds its lower end (torch's constraint does), "
                             "where the density is finite: a guard such as x > 0 must be "
                             "x >= 0" if at_end else
                             "Near an end, 1 - x^a and similar differences cancel, and exp() "
                             "of a large logit overflows: compute them in log space "
                             "(log(-expm1(a log x)), log1p, softplus)"),
                    statistic=worst, threshold=1e-6,
                    point=f"{grid}[{j}] ({pts[j]})")
            return Outcome(f"max rel. error {worst:.2g} at {int(inside.sum())} values near "
                           "the ends of the support", statistic=worst, threshold=1e-6)
        return fn

    if reference is not None and not c.discrete and spec.event_dim == 0 and edge_points(
            getattr(torch.distributions, family)(**example_params(family, (3,),
                                                                  torch.float64))) is not None:
        for grid in grids:
            yield Check(t.name, family, grid, "log_prob_edge", "density", False, edge(grid))

    def huge(grid: str) -> Callable[[Runner], Outcome]:
        def fn(r: Runner) -> Outcome:
            worst, count = 0.0, 0
            for dtype in (torch.float64, torch.float32):
                params, xs, inside, got, want = scored(
                    grid, dtype, functools.partial(huge_points, dtype=dtype),
                    "no huge value lies in the support")
                # a log density below the dtype's range: any value at or below its lowest
                lowest = -torch.finfo(dtype).max
                below = inside & (want < lowest) & (got <= lowest)
                err = _rel_errors(got, want, inside & ~below)
                rtol = HUGE_RTOL[dtype]
                count += int(inside.sum())
                worst = max(worst, float(err.max()) / rtol)
                if err.max() > rtol:
                    i, j = np.unravel_index(int(np.argmax(err)), err.shape)
                    pts = grid_points(family, params)
                    raise CheckFailure(
                        f"{str(dtype).replace('torch.', '')} log_prob at a huge value differs "
                        f"from the reference: got {got[i, j]:.10g}, want {want[i, j]:.10g} at "
                        f"value {float(xs[i, j])!r} with {pts[j]} (max |got - want|/(|want| + 1)"
                        f" = {float(err.max()):.3g} > {rtol:g}). " + advice(
                            "A square such as (x - loc)^2 overflows beyond 1.3e154 (float64; "
                            "1.8e19 in float32), and x/scale near the largest value when "
                            "scale < 1, where the log density is finite: standardize first, "
                            "compute log(1 + z^2) as 2 (log|x - loc| - log scale) + log1p(z^-2)"
                            " for large z, and powers of x/scale as exponentials of log x - "
                            "log scale"), statistic=float(err.max()), threshold=rtol,
                        point=f"{grid}[{j}] ({pts[j]})")
            return Outcome(f"max rel. error {worst:.2g} of its tolerance (1e-06 in float64, "
                           f"1e-04 in float32) at {count} huge values",
                           statistic=worst, threshold=1.0)
        return fn

    if reference is not None and not c.discrete and not c.circular and spec.event_dim == 0 and \
            huge_points(getattr(torch.distributions, family)(
                **example_params(family, (3,), torch.float64))) is not None:
        for grid in grids:
            yield Check(t.name, family, grid, "log_prob_huge", "density", False, huge(grid))

    if logit_case(family, torch.float64) is not None:
        yield Check(t.name, family, "example", "log_prob_logits", "density", False,
                    functools.partial(_logits_check, t, family))

    def layouts(r: Runner) -> Outcome:
        params, _, value = points(torch.float64)
        return _layouts_check(t, family, params, value)

    yield Check(t.name, family, "example", "log_prob_layouts", "density", False, layouts)

    if not c.gradcheck:
        return

    def _tail_values(params: dict[str, Any], value: torch.Tensor) -> torch.Tensor | None:
        """Two values per grid point (below and above its draws) where the reference log
        density is about ``TAIL_LOG_DENSITIES[0]``, for the univariate continuous families;
        a side not found, or within GRADCHECK_MARGIN of the support's end, repeats a draw."""
        if reference is None or c.discrete or c.circular or spec.event_dim != 0:
            return None
        tdist = getattr(torch.distributions, family)(**grid_params("example", torch.float64))
        law = reference(params_np(tdist, spec.params))
        support = tdist.support

        def inside(x: np.ndarray) -> np.ndarray:
            return np.asarray(support.check(torch.from_numpy(x)))

        draws = value.double().numpy()
        xs, found = far_points(law, draws, inside, TAIL_LOG_DENSITIES[0])
        with np.errstate(all="ignore"):
            ok = found & inside(xs - GRADCHECK_MARGIN) & inside(xs + GRADCHECK_MARGIN)
        if not ok.any():
            return None
        return torch.from_numpy(np.where(ok, xs, draws[:2])).to(value.dtype)

    def gradcheck(r: Runner) -> Outcome:
        params, _, value = points(torch.float64)
        if family in _COUNT_ENDS:
            # the ends of a count's support, where terms such as (n - x) log(1 - p) vanish
            # and a library may drop their derivative (finding F16): 0, and total_count
            ends = [torch.zeros_like(value[:1])]
            if family == "Binomial":
                ends.append(torch.broadcast_to(torch.as_tensor(
                    params["total_count"], dtype=value.dtype), value[:1].shape).floor())
            value = torch.cat([value, *ends])
        smooth = value  # without the kink, where a second derivative is a delta
        # ... and the tails, where a library may switch branch (an asymptotic expansion):
        # values where the reference log density is about TAIL_LOG_DENSITIES[0] (a Normal's
        # |z| in [5, 7]; a loc gradient 10% off beyond 3 sd alone passed: an outside trial),
        # at least GRADCHECK_MARGIN inside the support, so the finite differences stay in it
        tail = _tail_values(params, value)
        if tail is not None:
            value = torch.cat([value, tail])
        if family in _KINKS:
            # the kink of the log density (|x - loc| at loc), where torch's derivative is
            # sign(0) = 0, as are the central differences of gradcheck (JAX's |x| has 1)
            value = torch.cat([value, torch.broadcast_to(torch.as_tensor(
                params[_KINKS[family]], dtype=value.dtype), value[:1].shape)])
        leaves = grad_leaves(family, params)
        names = [k for k in leaves if k not in ("scale_tril",)]
        if not names:
            raise Skip("no free floating parameter")

        def f(*args: torch.Tensor) -> torch.Tensor:
            kw = dict(params)
            kw.update(dict(zip(names, args)))
            return make(family, kw, t).log_prob(value)  # type: ignore[no-any-return]

        ok = torch.autograd.gradcheck(f, tuple(leaves[k] for k in names), eps=1e-6, atol=1e-5,
                                      rtol=1e-4, raise_exception=False)
        if not ok:
            raise CheckFailure(f"torch.autograd.gradcheck of log_prob w.r.t. {names} failed: "
                               + _worst_partial(family, f, params, value, names,
                                                [leaves[k] for k in names])
                               + (f". The values include the kink at {_KINKS[family]}, where "
                                  "torch's derivative of |x| is sign(0) = 0 (JAX's is 1)"
                                  if family in _KINKS else ""))
        nan_cotangent(f(*(leaves[k] for k in names)), {k: leaves[k] for k in names}, "log_prob")
        def f_smooth(*args: torch.Tensor) -> torch.Tensor:
            kw = dict(params)
            kw.update(dict(zip(names, args)))
            return make(family, kw, t).log_prob(smooth)  # type: ignore[no-any-return]

        second = _second_derivatives(f_smooth, tuple(leaves[k] for k in names), names)
        if not c.discrete and spec.event_dim == 0:
            # the derivative in the value (a score function, Langevin and HMC steps use it):
            # a Normal whose d log_prob/d x was 10% off passed (an outside trial)
            d = make(family, {k: (v.detach() if isinstance(v, torch.Tensor) else v)
                              for k, v in params.items()}, t)

            def f_value(x: torch.Tensor) -> torch.Tensor:
                return d.log_prob(x)  # type: ignore[no-any-return]

            x0 = (smooth if tail is None else torch.cat([smooth, tail])
                  ).detach().clone().requires_grad_(True)
            if not torch.autograd.gradcheck(f_value, (x0,), eps=1e-6, atol=1e-5, rtol=1e-4,
                                            raise_exception=False):
                raise CheckFailure("torch.autograd.gradcheck of log_prob w.r.t. the value "
                                   "failed: " + _worst_partial(family, f_value, params,
                                                               x0.detach(), ["value"], [x0]))
            names = [*names, "value"]
        if family == "Binomial":
            _binomial_count_gradient(t, params, value)
            names = [*names, "total_count (analytic)"]
        _float32_gradients(t, family, value, not c.discrete and spec.event_dim == 0)
        return Outcome(f"gradcheck of log_prob w.r.t. {names}; a NaN upstream gradient comes "
                       f"back NaN; float32 gradients within {F32_GRAD_RTOL:g} of float64's; "
                       f"{second}")

    yield Check(t.name, family, "example", "log_prob_gradcheck", "density", False, gradcheck)


#: ``log_prob_gradcheck`` also takes ``log_prob``'s gradients in float32 at the same points
#: (parameters and values rounded to float32, the float64 reference computed from the rounded
#: numbers): each must be within this of the float64 gradient, relative to its size or to a
#: hundredth of the largest gradient of that parameter (a Normal whose float32 ``scale``
#: gradient was 10% off passed: the gradcheck runs in float64). The built-in backends are
#: within 2e-5 at the example points.
F32_GRAD_RTOL = 1e-3


def _float32_gradients(t: Target, family: str, value: torch.Tensor, with_value: bool) -> None:
    """Compare ``log_prob``'s gradients (parameters and, ``with_value``, the value) in float32
    with those in float64 at the float32-rounded example parameters and ``value``."""
    got: dict[str, dict[str, torch.Tensor]] = {}
    p32 = example_params(family, (3,), torch.float32)
    for dtype in (torch.float32, torch.float64):
        params = {k: (v.to(dtype) if isinstance(v, torch.Tensor) and v.is_floating_point()
                      else v) for k, v in p32.items()}
        leaves = grad_leaves(family, params)
        x = value.to(torch.float32).to(dtype) if value.is_floating_point() else value
        if with_value:
            x = x.clone().requires_grad_(True)
        inputs = dict(leaves, **({"value": x} if with_value else {}))
        if not inputs:
            return
        lp = make(family, params, t).log_prob(x)
        grads = torch.autograd.grad(lp.sum(), list(inputs.values()), allow_unused=True)
        got[str(dtype)] = {k: g for k, g in zip(inputs, grads) if g is not None}
    g32, g64 = got[str(torch.float32)], got[str(torch.float64)]
    points = grid_points(family, p32)
    for k, want in g64.items():
        have = g32.get(k)
        if have is None:
            raise CheckFailure(f"log_prob in float32 gives no gradient w.r.t. {k} (float64 "
                               "does)")
        have = have.double()
        floor = 1e-2 * float(want.abs().max().clamp_min(1e-300))
        ratio = ((have - want).abs() / (want.abs() + floor)).nan_to_num(float("inf"))
        worst = float(ratio.max())
        if worst > F32_GRAD_RTOL:
            i = int(ratio.argmax())
            flat_have, flat_want = have.reshape(-1), want.reshape(-1)
            # the grid point: a value's column, a parameter's leading (batch) index
            if k == "value" and want.dim() == 2 and want.shape[1] == len(points):
                j: int | None = i % len(points)
            elif k != "value" and want.dim() >= 1 and want.shape[0] == len(points):
                j = i // (want.numel() // len(points))
            else:
                j = None
            where = f" at {points[j]}" if j is not None else ""
            raise CheckFailure(
                f"log_prob's gradient w.r.t. {k} in float32 differs from float64's at the "
                f"same (float32-rounded) points: {float(flat_have[i]):.7g} against "
                f"{float(flat_want[i]):.7g}{where} (relative error {worst:.3g} > "
                f"{F32_GRAD_RTOL:g}); float32 scores computed another way than float64's "
                "(a float32 branch of the formula) are the usual cause",
                statistic=worst, threshold=F32_GRAD_RTOL)


#: ``log_prob_layouts``: the example values scored again in one call of more than 4,096
#: values (``LAYOUT_COPIES`` copies), with two sample dimensions, and point by point with
#: scalar parameters; each score must equal the first call's to ``LAYOUT_RTOL`` (rounding).
LAYOUT_COPIES = 342
LAYOUT_RTOL = 1e-9


def _layouts_check(t: Target, family: str, params: dict[str, Any],
                   value: torch.Tensor) -> Outcome:
    """``log_prob`` of the same values in other layouts: a backend that scores large calls,
    calls of several sample dimensions or scalar parameters on another path passed
    ``log_prob_f64`` with a score 1e-3 off there (an outside trial). Deterministic: each
    layout's score must equal the example call's to rounding, the example call being judged
    against SciPy by ``log_prob_f64``."""
    from ..runner import point_params

    spec = FAMILIES[family]
    dist = make(family, params, t)
    base = dist.log_prob(value).detach().double()  # (rows, points)
    rows, points = base.shape[0], base.shape[1]
    tail = value.shape[2:]
    layouts: list[tuple[str, torch.Tensor, torch.Tensor]] = []
    big = value.repeat(LAYOUT_COPIES, *([1] * (value.dim() - 1)))
    layouts.append((f"one call of {big.shape[0] * points} values (sample shape "
                    f"({big.shape[0]},))", dist.log_prob(big), base.repeat(LAYOUT_COPIES, 1)))
    if rows % 1 == 0:
        two = value.reshape(1, rows, points, *tail).expand(3, rows, points, *tail)
        layouts.append(("two sample dimensions (sample shape (3, 5))", dist.log_prob(two),
                        base.expand(3, rows, points)))
    for j in range(points):
        one = make(family, point_params(family, params, j), t)
        layouts.append((f"scalar parameters (grid point {j})", one.log_prob(value[:, j]),
                        base[:, j]))
    worst, where = 0.0, ""
    for what, got, want in layouts:
        got = got.detach().double()
        if got.shape != want.shape:
            raise CheckFailure(f"log_prob of the example values in {what} has shape "
                               f"{tuple(got.shape)}; expected {tuple(want.shape)}")
        same = (got == want) | (torch.isnan(got) & torch.isnan(want))
        err = torch.where(same, torch.zeros_like(got),
                          (got - want).abs() / (want.abs() + 1.0))
        err = torch.nan_to_num(err, nan=math.inf)
        e = float(err.max()) if err.numel() else 0.0
        if e > worst:
            worst, where = e, what
            if e > LAYOUT_RTOL:
                i = int(err.flatten().argmax())
                raise CheckFailure(
                    f"log_prob of the same values differs with the layout of the call: in "
                    f"{what}, {float(got.flatten()[i]):.10g} where the example call (batch of "
                    f"{points}, {rows} rows) gave {float(want.flatten()[i]):.10g} (relative "
                    f"difference {e:.3g} > {LAYOUT_RTOL:g}). Score every layout on one path "
                    "(or paths that agree to rounding).",
                    statistic=e, threshold=LAYOUT_RTOL)
    del spec
    return Outcome(f"the same scores in {len(layouts)} other layouts (max relative difference "
                   f"{worst:.2g}{', in ' + where if where else ''})", statistic=worst,
                   threshold=LAYOUT_RTOL)


def _second_derivatives(f: Callable[..., torch.Tensor], inputs: tuple[torch.Tensor, ...],
                        names: list[str]) -> str:
    """``log_prob``'s second derivatives (``torch.autograd.gradgradcheck``, float64) are
    right, or refused with :class:`~polysample.NotReparameterizableError` (the documented way,
    as the tfp backends refuse them). A backward pass through detached tensors (an
    ``autograd.Function`` whose ``backward`` is not itself differentiable) gives Hessians of
    silent zeros: an outside trial's backend did, and passed every check."""
    try:
        ok = torch.autograd.gradgradcheck(f, inputs, eps=1e-6, atol=1e-5, rtol=1e-4,
                                          raise_exception=False)
    except NotReparameterizableError:
        return "second derivatives refused (NotReparameterizableError)"
    if not ok:
        raise CheckFailure(
            f"torch.autograd.gradgradcheck of log_prob w.r.t. {names} failed: its second "
            "derivatives (create_graph=True, torch.autograd.functional.hessian) are wrong. A "
            "backward pass computed from detached tensors (an autograd.Function whose backward "
            "is not itself differentiable) gives silent zeros. Compute the backward with "
            "differentiable torch operations, or raise NotReparameterizableError there (as the "
            "tfp backends do)")
    return "gradgradcheck of log_prob (second derivatives)"


#: ``log_prob_logits``' tolerances, of ``|got - want| / (|want| + 1)``: (value, gradient).
LOGITS_RTOL = {torch.float64: (1e-6, 1e-6), torch.float32: (1e-4, 1e-4)}


#: What a ``log_prob_logits`` failure advises, by the parameter the family was given.
_LOGITS_ADVICE = {
    "logits": "Score from the logits in log space (logsigmoid, logsumexp): their "
              "probabilities round to 0 or 1 where the logits are large",
    "probs": "Read the logits polysample derives (params['logits'], exact down to the "
             "dtype's smallest normal number) or log(probs) itself: torch's probs_to_logits "
             "clamps probabilities to [eps, 1 - eps] (1.19e-7 in float32)",
}


def _logits_check(t: Target, family: str, r: Runner) -> Outcome:
    """``log_prob`` of the family built from ``logits`` (:func:`logit_case`), then from
    ``probs`` (:func:`prob_case`), in float64 and float32, and its gradient in that parameter,
    against :func:`logit_log_prob`. A backend that scores from ``probs`` (``sigmoid(logits)``,
    1.0 beyond |17| in float32) gets ``-inf`` or a value that lost its digits, and a NaN
    gradient; one that derives logits from small ``probs`` as torch's ``probs_to_logits`` does
    (clamped to the dtype's eps) scores ``probs = 1e-9`` as 1.19e-7 in float32, with a zero
    gradient."""
    worst = 0.0
    for given, case, to_logits in (("logits", logit_case, None), ("probs", prob_case,
                                                                  probs_log_odds)):
        for dtype, (rtol, gtol) in LOGITS_RTOL.items():
            param, other, value = case(family, dtype)  # type: ignore[misc]
            leaf = param.clone().requires_grad_(True)
            ref_leaf = param.detach().double().requires_grad_(True)
            ref_logits = ref_leaf if to_logits is None else to_logits(family, ref_leaf)
            want = logit_log_prob(family, ref_logits, other, value)
            (want_grad,) = torch.autograd.grad(want.sum(), ref_leaf)
            got = make(family, {given: leaf, **other}, t).log_prob(value)
            dtype_name = str(dtype).removeprefix("torch.")
            if not got.requires_grad:
                raise CheckFailure(f"log_prob of {family}({given}=...) in {dtype_name} carries "
                                   f"no gradient to the {given}")
            (grad,) = torch.autograd.grad(got.sum(), leaf, allow_unused=True)
            for what, g, w, tol in (("log_prob", got, want, rtol),
                                    (f"its gradient in the {given}", grad, want_grad, gtol)):
                if g is None:
                    raise CheckFailure(f"log_prob of {family}({given}=...) in {dtype_name}: no "
                                       f"gradient reached the {given}")
                gd, wd = g.detach().double(), w.detach()
                err = ((gd - wd).abs() / (wd.abs() + 1)).nan_to_num(nan=math.inf,
                                                                    posinf=math.inf)
                e = float(err.max())
                worst = max(worst, e / tol)
                if e > tol:
                    i = int(err.flatten().argmax())
                    where = _logit_point(family, param, value, i, what == "log_prob", given)
                    raise CheckFailure(
                        f"{what} of {family} given {given}, {dtype_name}: got "
                        f"{float(gd.flatten()[i]):.10g}, want {float(wd.flatten()[i]):.10g} "
                        f"{where} (|got - want|/(|want| + 1) = {e:.3g} > {tol:g}). "
                        + _LOGITS_ADVICE[given], statistic=e, threshold=tol, point=where)
    return Outcome(f"log_prob and its gradient from logits up to |100| and from probs down to "
                   f"1e-30, float64 and float32: worst {worst:.2g} of the tolerance",
                   statistic=worst, threshold=1.0)


def _logit_point(family: str, logits: torch.Tensor, value: torch.Tensor, i: int,
                 scored: bool, name: str = "logits") -> str:
    """Which logits (or probs: ``name``) and value the ``i``-th element of a
    ``log_prob_logits`` result (or of the parameter's gradient) belongs to, in words."""
    if scored:
        rows = logits.shape[0]
        j, b = divmod(i, rows)
        if family in _COUNT_VALUES:
            return f"at {name} = {float(logits[b]):.9g}, value = {float(value[j, b]):g}"
        shown = value[j, b].tolist() if value.dim() == 3 else int(value[j, b])
        return f"at {name} = {logits[b].tolist()}, value = {shown}"
    if family in _COUNT_VALUES:
        return (f"at {name} = {float(logits[i]):.9g} (summed over the values "
                f"{_COUNT_VALUES[family]})")
    b, k = divmod(i, logits.shape[-1])
    return f"in {name}[{b}][{k}] of {logits[b].tolist()} (summed over the values)"


def _binomial_count_gradient(t: Target, params: dict[str, Any], value: torch.Tensor) -> None:
    """``d log_prob / d total_count`` of Binomial against ``psi(n + 1) - psi(n - x + 1) +
    log(1 - p)``, summed over the values, at the grid's values and the support's ends:
    ``total_count`` takes whole numbers, so finite differences (``gradcheck``) cannot judge
    it, but torch differentiates ``log_prob`` in it and so must a backend."""
    kw = {k: (v.detach() if isinstance(v, torch.Tensor) else v) for k, v in params.items()}
    n = torch.as_tensor(kw["total_count"], dtype=torch.float64).clone().requires_grad_(True)
    kw["total_count"] = n
    lp = make("Binomial", kw, t).log_prob(value)
    (got,) = torch.autograd.grad(lp.sum(), n)
    probs = torch.as_tensor(kw["probs"], dtype=torch.float64)
    nd, x = n.detach(), value.double()
    want = (torch.digamma(nd + 1) - torch.digamma(nd - x + 1) + torch.log1p(-probs)).sum(0)
    err = ((got.double() - want).abs() / (want.abs() + 1)).nan_to_num(nan=math.inf)
    if float(err.max()) > 1e-6:
        j = int(err.argmax())
        points = grid_points("Binomial", kw)
        raise CheckFailure(
            f"d log_prob/d total_count at example[{j}] ({points[j]}), summed over the values "
            f"{value[:, j].tolist()}: got {float(got.flatten()[j]):.10g}, want "
            f"{float(want.flatten()[j]):.10g} = sum of psi(n + 1) - psi(n - x + 1) + log(1 - p) "
            "(a term (n - x) log(1 - p) whose derivative was dropped where n = x?)",
            statistic=float(err.max()), threshold=1e-6, point=f"example[{j}] ({points[j]})")


def _with_whole_values(tdist: Any, value: torch.Tensor) -> torch.Tensor:
    """``value`` (draws, batch) with as many rows again: each draw rounded to the nearest
    whole number where the support holds it half a unit either side (else the draw itself). A
    continuous family's formula may take another path at whole values (a factorial table, an
    Erlang form: a Gamma ``log_prob`` 1e-2 off there passed, an outside trial); draws are
    never whole."""
    whole = torch.round(value)
    support = tdist.support
    inside = support.check(whole - 0.5) & support.check(whole + 0.5)
    return torch.cat([value, torch.where(inside, whole, value)])


def _with_every_count(family: str, params: dict[str, Any], value: torch.Tensor
                      ) -> torch.Tensor:
    """``value`` (draws, shape ``(m, G)``) and every count below :data:`EVERY_COUNT_BELOW`
    at each grid point (Binomial's held at its ``total_count``)."""
    ks = torch.arange(EVERY_COUNT_BELOW, dtype=value.dtype).unsqueeze(-1).expand(
        EVERY_COUNT_BELOW, *value.shape[1:])
    if family == "Binomial":
        n = torch.as_tensor(params["total_count"], dtype=value.dtype).detach()
        ks = torch.minimum(ks, torch.broadcast_to(n.floor(), ks.shape))
    return torch.cat([value, ks])


def _worst_partial(family: str, f: Callable[..., torch.Tensor], params: dict[str, Any],
                   value: torch.Tensor, names: list[str], inputs: list[torch.Tensor],
                   eps: float = 1e-6, atol: float = 1e-5, rtol: float = 1e-4) -> str:
    """Where ``gradcheck`` failed: the partial derivative of one ``log_prob`` value whose
    backward pass (analytic) is furthest from its central difference, beyond gradcheck's
    tolerance, with its parameter element, value and grid point (gradcheck itself prints two
    whole Jacobians)."""
    jac = torch.autograd.functional.jacobian(f, tuple(inputs))
    out_shape = tuple(f(*inputs).shape)
    batch = tuple(getattr(torch.distributions, family)(**{
        k: (v.detach() if isinstance(v, torch.Tensor) else v) for k, v in params.items()}
    ).batch_shape)
    points = grid_points(family, params)
    worst: tuple[float, str] = (-1.0, "no partial derivative beyond the tolerance was found "
                                "again (gradcheck's own differences disagree)")
    base = [x.detach() for x in inputs]
    for i, (k, x, jk) in enumerate(zip(names, base, jac)):
        ana = jk.detach().reshape(math.prod(out_shape), x.numel()).double()
        for e in range(x.numel()):
            moved = []
            for step in (eps, -eps):
                y = x.clone()
                y.view(-1)[e] += step
                args = list(base)
                args[i] = y
                with torch.no_grad():
                    moved.append(f(*args).detach().double().reshape(-1))
            num = (moved[0] - moved[1]) / (2 * eps)
            with np.errstate(all="ignore"):
                ratio = ((ana[:, e] - num).abs() / (atol + rtol * num.abs())).numpy()
            ratio = np.where(np.isnan(ratio), np.inf, ratio)
            o = int(np.argmax(ratio))
            if ratio[o] > max(1.0, worst[0]):
                idx = [int(v) for v in np.unravel_index(e, tuple(x.shape))]
                out = [int(v) for v in np.unravel_index(o, out_shape)]
                b = out[len(out_shape) - len(batch):] if batch else []
                j = int(np.ravel_multi_index(tuple(b), batch)) if batch else 0
                at = f" at example[{j}] ({points[j]})" if batch else ""
                shown = value[tuple(out[:len(out_shape) - len(batch)])][tuple(b)]
                worst = (float(ratio[o]),
                         f"d log_prob/d {k}{idx}{at}, for the value "
                         f"{np.array2string(shown.double().numpy(), precision=6)}: backward "
                         f"pass {float(ana[o, e]):.6g}, central difference {float(num[o]):.6g}"
                         f" (gradcheck's tolerance {atol:g} + {rtol:g} |difference|)")
    return worst[1]
