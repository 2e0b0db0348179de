"""Layer 3, samplers: one vectorised float64 draw per (family, grid, method), judged by SciPy.

Every check of this layer reads the same draw (:meth:`Runner.draw`), reduced to univariate
statistics with a known law (:func:`..cases.projections`):

* ``<method>_ks``: one-sample Kolmogorov-Smirnov distance of every statistic against its
  reference CDF, with the DKWM bound (exact for any law; for integer statistics both
  ``P(X <= k)`` and ``P(X < k)`` are compared);
* ``<method>_pit_mean`` / ``<method>_pit_var`` (continuous statistics): the normal scores
  ``zeta = Phi^-1(F(x))`` are exactly N(0, 1) under the reference, so ``sum zeta ~ N(0, n)``
  and ``sum zeta^2 ~ chi2(n)`` exactly; these are the sharp tests of location and scale errors;
* ``<method>_sum`` (integer statistics with an exact sum law): the sum of the ``n`` draws
  against its exact law (Binomial, Poisson, negative binomial); the category counts of the
  categorical families are exact binomials. This is the sharp test of a probability error.
* ``<method>_atoms`` (counts with a law per column): each value's number of draws against
  its exact binomial law, where at least 32 draws are expected.
* ``<method>_tails``: the draws beyond the reference's extreme quantiles, counted against
  their exact binomial laws (continuous statistics: where 1, 64 and 256 draws are expected;
  counts: the tail levels of :func:`_discrete_tail_levels`): cut or far too heavy tails, which
  the checks above, weighing every draw alike, miss.
* ``<method>_indep``: the draws are independent, along the sample axis and across the batch.
  The checks above judge each column's marginal only: sorted draws, antithetic pairs or a noise
  shared between batch elements with different parameters pass them. Here the first
  :data:`INDEPENDENCE_ROWS` rows, in the order drawn, become centred PIT values ``F(x) - 1/2``
  (mid-PIT ``(F(x) + F(x - 1)) / 2 - 1/2`` for integer statistics), which have mean 0 under the
  reference; the mean product of neighbours in a column (disjoint pairs, odd and even offsets)
  and of the same row in neighbouring grid points must stay within Bernstein's exact bound.
* ``calls_ks`` and ``calls_repeats`` (typical grid): the K-S and repeat checks of
  ``sample()`` drawn in many small calls (see :data:`..runner.CALLS_QUICK`), each with its own
  seed, pooled: a backend may take another path for small calls (a first value per call that
  is not drawn, a seed reused between calls), and every other check draws its grid in one
  large call;
* ``calls_indep`` (typical grid): the rows of each small call are independent: the spread
  of the calls' mean PITs (a discrete statistic's mid-PITs) against exact bounds (a call
  stratified or made of antithetic pairs passes every other check);
* ``ones_ks`` (typical grid): the K-S check of the first grid point drawn in
  :data:`..runner.ONES_CALLS` one-value calls (``sample()`` with scalar parameters, a seed
  each), at the pooled alpha (a one-value path grossly wrong: a half-normal for a Normal).
* ``smalls_ks`` and (continuous families) ``smalls_pit_mean`` and ``smalls_pit_var`` (typical
  grid): the same point drawn in calls of 2 to 64 values (:data:`..runner.SMALL_CALLS`, twelve
  times, float64 and float32 in turn: 24,948 values in 756 calls), at the pooled alpha (a
  small-n path 10% off: a Gamma's rate; a float32 path for scalar parameters 10% too wide).
* ``batches_ks`` (typical grid): the K-S check of every batch element of the grid drawn in
  the batch shapes of :data:`..runner.BATCH_LAYOUTS` (one to five dimensions, 4 to 16
  elements, point ``e % G`` at flat element ``e``), each element a column, at the pooled alpha:
  every other draw lays the grid out as ``(G,)``, ``(copies, G)`` or ``(G, 2, copies / 2)``,
  and a backend that read a neighbouring element's parameters in batches of 5 to 7, or a
  four-dimensional batch in reverse order, passed every check.
* ``calls_pairs`` (typical grid, the discrete families but Multinomial): calls of two
  values as often equal as two independent draws are (an exact binomial test, pooled alpha):
  a Categorical drawn without replacement in calls of a few values passed every check.
* ``event2_ks`` (typical grid, the families with an event size): the K-S check of the grid's
  points at event size 2 (:data:`..runner.EVENT2_QUICK` draws each), at the pooled alpha: the
  other grids have sizes 3 and 5, and a Dirichlet of two categories on a wrong path of its
  own passed every check.
* ``batches_indep`` (typical grid, the same draw): every pair of batch elements of one layout,
  and rows 1 to 8 apart within one call, independent (exact product-mean bounds, pooled
  alpha): element ``i + 7`` given element ``i``'s noise, or rows correlated two apart,
  passed every check (the other independence checks compare neighbours).
* ``scalar_ks`` (typical grid): the K-S check of each grid point drawn with scalar
  parameters (batch ``()``), ``sample()`` and ``rsample()``, in a call of its own of
  :data:`..runner.SCALAR_VALUES` values: a backend may take another path for scalar
  parameters (the torch backend's in-place kernels), which the batched draws never reach;
* ``<method>_repeats``: no window of consecutive rows of a statistic occurs twice, for the
  shortest window that independent draws of the reference law repeat with probability at most
  the check's alpha (:func:`..stats.repeat_window`): a seed, generator state or buffer reused
  within a call repeats stretches of draws with right marginals and independent neighbours.

Each check splits its share of the error budget over every grid point of every statistic.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from scipy import special

from ...core.backend import FamilySupport
from ...core.families import FAMILIES
from .. import cases
from ..grids import Grid, grid_points, grids
from ..model import CdfCurves, Check, CheckFailure, Evidence, Outcome, PitScores, Skip
from ..reference import Projection, fast_cdf, params_np
from ..runner import (
    BATCH_LAYOUTS,
    CALL_ROWS,
    Draw,
    Runner,
    Target,
    has_event_size,
    layout_call_rows,
    make,
    point_params,
)
from ..stats import (
    ALPHA_CALLS_INDEP,
    ALPHA_CHECK,
    ALPHA_REPEAT,
    ALPHA_SCALAR,
    ALPHA_TAILS,
    MISS_RATE,
    REPEAT_MAX_WINDOW,
    TAIL_COUNTS,
    binomial_count_test,
    dkwm_detectable,
    dkwm_threshold,
    ks_continuous,
    ks_integer,
    norm_isf,
    pit_mean_test,
    pit_var_test,
    product_mean_test,
    repeat_bound,
    repeat_window,
    repeated_windows,
    score_tail_counts,
    seed_for,
    sum_tail_test,
    z_text,
)

__all__ = ["checks", "pit_summary", "PLOTTED", "continuous_stats", "INDEPENDENCE_ROWS"]

#: Statistics whose CDF deviation the HTML report plots (one per family is enough to read).
PLOTTED = ("value", "axis0", "marginal0", "logratio0", "corr10", "corr20")
#: Quantile levels of the plotted curves.
_Q = np.linspace(0.005, 0.995, 199)
#: Rows of a draw the independence check reads (all of them below this): 2^14 rows detect a
#: PIT correlation of about 0.12 between neighbours at the per-test alpha with a miss rate of
#: 1e-3 (sorted draws have about 1, antithetic pairs -1); the reference CDF at these rows costs
#: 1/16 of the K-S check's at the quick typical sample size.
INDEPENDENCE_ROWS = 1 << 14
#: ... and the pairs of rows half a block apart it reads besides (a block: one batch element's
#: rows of one call, or the whole column): rows ``i`` and ``i + S/2`` for the first
#: ``HALF_ROWS`` rows ``i``. A call whose second half reuses its first half's uniforms shifted
#: by 0.01 (a buffer reused: correlation about 1 there, 0 between neighbours) passed every
#: check; 2^11 pairs detect a correlation of about 0.34. Blocks of fewer than
#: ``2 * HALF_ROWS_MIN`` rows (the float32 grid's wide batch) are not paired: so few pairs
#: would detect only gross correlation, at the cost of the other tests' alpha.
HALF_ROWS = 1 << 11
HALF_ROWS_MIN = 1 << 9


def continuous_stats(pr: Projection) -> dict[str, np.ndarray]:
    """The K-S distances (``ks``), plotted CDF deviations (``curves``), tie flags (``ties``)
    and normal scores (``zeta``) of a continuous statistic, computed once per draw and shared
    by the K-S and normal-score checks (and an rsample draw equal to the sample draw).

    Only these are kept: the sorted values and their reference CDF (``n x m`` each) are
    dropped once used, and so are the statistic's values (``pr.values`` keeps its column
    count, no rows). A multivariate draw of 2^20 values per grid point has eleven statistics:
    they held 1.1 GB with the values, sorted values and CDF kept beside the normal scores.
    """
    c = pr.cache
    if "zeta" in c:
        return c
    law = pr.law
    res: Any = pr.resolution if pr.ulps == 1 else _Wide(pr.resolution, pr.ulps)
    xs = _sorted_columns(pr.values)
    # Columns in which some value occurs twice. When every column has one, rows can repeat:
    # the repeat check needs the rows in the order drawn and the reference's mass per value.
    repeated = np.any(xs[1:] == xs[:-1], axis=0)
    if repeated.all():
        c["repeat_rows"] = np.array(pr.values, dtype=np.float64)
        c["repeat_mass"] = _collision_mass(xs, law, res)
    n, m = pr.values.shape
    copies = pr.copies if pr.copies and n % pr.copies == 0 else 0
    with np.errstate(all="ignore"):
        # The independence check's rows, in the order drawn, before the values are dropped.
        head = np.asarray(pr.values[:INDEPENDENCE_ROWS], dtype=np.float64)
        c["pit_head"] = _cdf_at(law, head, res) - 0.5
        half = _half_lag(n, copies)
        if half:
            k = min(HALF_ROWS, half)
            c["pit_half"] = (c["pit_head"][half:half + k] if half + k <= head.shape[0] else
                             _cdf_at(law, np.asarray(pr.values[half:half + k],
                                                     dtype=np.float64), res) - 0.5)
            c["half_lag"] = np.array(half)
        if copies > 1:
            # The balance test's blocks of one batch element's rows (Projection.copies): as
            # many whole ones as the head holds, or the first.
            k = n // copies
            b = min(copies, max(1, INDEPENDENCE_ROWS // k))
            pit = (c["pit_head"][:b * k] if b * k <= head.shape[0] else
                   _cdf_at(law, np.asarray(pr.values[:k], dtype=np.float64), res) - 0.5)
            c["block_sums"], c["block_rows"] = pit.reshape(b, k, m).sum(1), k
        pr.values = pr.values[:0]
        F = _cdf_at(law, xs, res)
        if copies:
            # ... and the whole call's rows of each column: their order does not matter.
            c["call_sums"], c["call_rows"] = F.sum(0) - n / 2, n
    with np.errstate(all="ignore"):
        # A law with mass on a float spacing (Beta(0.01, 0.01) near 1 in float64, Gamma(0.01)
        # flushed to 0 in float32) yields ties: those columns get the K-S test with the
        # spacing as tolerance and no normal-score tests. Ties count only where the reference
        # puts mass on a spacing (see _tie_mass): a float32 draw ties by rounding alone (2^16
        # draws of a 24-bit mantissa), and ties the reference cannot explain (a clamp's atom,
        # a backend repeating its draws) leave the column to the normal-score, tail and
        # independence checks, and to the repeat check, which judges how often a value
        # repeats (``atoms``) and whether rows do.
        ties = repeated.copy()
        if ties.any():
            mass = _tie_mass(xs, law, res)
            ties &= mass > COARSE_MASS
            odd = np.flatnonzero(repeated & ~ties)
            if odd.size:
                c["atoms"] = [(int(j), *_most_repeated(xs[:, j]), float(mass[j])) for j in odd]
        # 1 - F is exact to ~1e-16 absolute: call sf only where F > 1 - 1e-6 (far tail).
        upper = F >= 0.5
        # Phi^-1 of the smaller tail (no cancellation), negated in the upper half: one pass.
        G = np.where(upper, 1.0 - F, F)
        tail = F > 1 - 1e-6
        if tail.any():
            G[tail] = _sf_subset(law, xs, tail)
            if pr.resolution is not np.float64:  # a value rounded onto the top of the support
                G = np.where(tail & (G <= 0.0), 1.0 - F, G)
        zeta = special.ndtri(G, out=G)
        np.negative(zeta, out=zeta, where=upper)
    D, at = _ks_with_ulp(xs, F, ties, law, res)
    c.update(ks=D, ks_at=at, curves=_continuous_curves(xs, F, ties, law, res), ties=ties,
             zeta=zeta)
    return c


def _pit_head(pr: Projection) -> tuple[np.ndarray, np.ndarray]:
    """The centred PIT values of the first :data:`INDEPENDENCE_ROWS` rows of a statistic, in
    the order drawn, and which columns are usable (for a continuous statistic, those without
    ties at the draw's float resolution: there ``F(x)`` is not uniform and its mean not 1/2)."""
    if not pr.discrete:
        c = continuous_stats(pr)
        return c["pit_head"], ~c["ties"]
    c = pr.cache
    if "pit_head" not in c:
        x = np.asarray(pr.values[:INDEPENDENCE_ROWS], dtype=np.float64)
        # mid-PIT: its mean is exactly 1/2 under the law (sum_k p_k (F(k) + F(k-1)) / 2)
        c["pit_head"] = _mid_pit(pr, x)
        n = pr.values.shape[0]
        half = _half_lag(n, pr.copies if pr.copies and n % pr.copies == 0 else 0)
        if half:
            k = min(HALF_ROWS, half)
            xh = np.asarray(pr.values[half:half + k], dtype=np.float64)
            c["pit_half"] = _mid_pit(pr, xh)
            c["half_lag"] = np.array(half)
    v = c["pit_head"]
    return v, np.ones(v.shape[1], dtype=bool)


def _mid_pit(pr: Projection, x: np.ndarray) -> np.ndarray:
    """The centred mid-PIT of a discrete statistic's rows ``x`` (``(k, m)``)."""
    cols = []
    for j in range(x.shape[1]):
        law = pr.column(j) if pr.column is not None else None
        cdf = law.cdf if law is not None else (lambda k, _j=j: pr.law.cdf(k[:, None])[:, _j])
        cols.append(0.5 * (np.asarray(cdf(x[:, j]), dtype=np.float64)
                           + np.asarray(cdf(x[:, j] - 1.0), dtype=np.float64)) - 0.5)
    return np.stack(cols, 1) if cols else x


def _half_lag(n: int, copies: int) -> int:
    """Half the rows of a block (one batch element's rows of one call, or the column), where
    the block holds at least ``2 * HALF_ROWS_MIN`` rows; 0 elsewhere."""
    block = n // copies if copies else n
    return block // 2 if block >= 2 * HALF_ROWS_MIN else 0


def _pit_half(pr: Projection) -> tuple[np.ndarray, int] | None:
    """The centred PITs of the rows ``half_lag`` on from the first (see :data:`HALF_ROWS`),
    and that lag; None for a statistic without such rows."""
    _pit_head(pr)
    h = pr.cache.get("pit_half")
    return None if h is None else (h, int(pr.cache["half_lag"]))


def _sorted_columns(values: np.ndarray) -> np.ndarray:
    """``values`` sorted along axis 0, in Fortran order: each column contiguous.

    Every later step works column by column (the reference CDF, the normal scores, the K-S
    extremes, the means), and elementwise NumPy functions keep their input's memory order. A
    reduction along axis 0 of a C-ordered ``(n, m)`` array with a few columns walks memory with
    a stride of ``m`` and runs 10-40 times slower than along contiguous columns (``min`` of
    ``(349525, 3)`` float64: 12.4 ms against 0.3 ms); so is the sort, by 20%.
    """
    xs = np.array(values, dtype=np.float64, order="F")
    xs.sort(axis=0)
    return xs


def _sf_subset(law: Any, xs: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``law.sf`` at ``xs[mask]`` only (SciPy frozen laws broadcast their parameters)."""
    if hasattr(law, "dist") and hasattr(law, "args"):
        args = [np.broadcast_to(a, xs.shape)[mask] for a in law.args]
        kwds = {k: np.broadcast_to(v, xs.shape)[mask] for k, v in law.kwds.items()}
        return np.asarray(law.dist.sf(xs[mask], *args, **kwds), dtype=np.float64)
    return np.asarray(law.sf(xs), dtype=np.float64)[mask]


@dataclass(frozen=True)
class _Wide:
    """A float type whose values each stand for ``ulps`` spacings either side
    (``Projection.ulps``): the band of :func:`_band`, wider."""

    dtype: Any
    ulps: int


def _band(xs: np.ndarray, res: Any = np.float64) -> tuple[np.ndarray, np.ndarray]:
    """The reals each value of a draw in float type ``res`` stands for: samplers flush or clamp
    standard variates below the smallest normal float to 0 or to ``tiny`` and then scale them
    (torch's Chi2(0.01) returns 2 tiny for 2.9% of its draws): a value within 1e3 tiny of 0
    stands for all of [0, value] (0 itself for [0, tiny]: a flushed value); any other for one
    ulp of ``res`` either side."""
    ulps = res.ulps if isinstance(res, _Wide) else 1
    res = res.dtype if isinstance(res, _Wide) else res
    tiny = float(np.finfo(res).tiny)
    sub = (xs >= 0) & (xs <= 1e3 * tiny)
    if res is np.float64 and ulps == 1:
        upper, lower = np.nextafter(xs, np.inf), np.nextafter(xs, -np.inf)
    else:
        with np.errstate(all="ignore"):
            ulp = ulps * np.abs(np.spacing(xs.astype(res))).astype(np.float64)
        upper, lower = xs + ulp, xs - ulp
    return np.where(sub, 0.0, lower), np.where(sub, np.maximum(upper, tiny), upper)


def _tie_bounds(xs: np.ndarray, law: Any, res: Any = np.float64
                ) -> tuple[np.ndarray, np.ndarray]:
    """``F`` at the upper and lower end of each value's :func:`_band`."""
    lower, upper = _band(xs, res)
    with np.errstate(all="ignore"):
        return fast_cdf(law, upper), fast_cdf(law, lower)


def _cdf_at(law: Any, x: np.ndarray, res: Any) -> np.ndarray:
    """The reference CDF at the values of a draw in float type ``res``.

    A float32 value can round onto the edge of the support, or past it (VonMises draws equal to
    float32(pi) = 3.14159274 > pi): there ``F`` is 0 or 1 and the value's normal score
    infinite, though the value stands for reals inside. Such values get the mean of ``F`` over
    their :func:`_band` instead; one whose whole band has ``F`` 0 or 1 keeps it (and fails).
    """
    F = fast_cdf(law, x)
    if (res.dtype if isinstance(res, _Wide) else res) is np.float64:
        return F
    edge = (F <= 0.0) | (F >= 1.0)
    if edge.any():
        up, down = _tie_bounds(x, law, res)
        F = np.where(edge, 0.5 * (np.clip(up, 0.0, 1.0) + np.clip(down, 0.0, 1.0)), F)
    return F


#: Band mass above which a column's ties count as the law's (:func:`_tie_mass`).
COARSE_MASS = 1e-5
#: Sorted values, evenly spaced by rank, at which :func:`_tie_mass` reads the band mass.
_COARSE_PROBES = 1024


def _tie_mass(xs: np.ndarray, law: Any, res: Any) -> np.ndarray:
    """The largest reference mass on one value's :func:`_band` (in float type ``res``) of
    each column of a sorted draw, read at its ties, its extremes and 1024 values evenly spaced
    by rank (0 for a column without ties; ``inf`` where the reference cannot say).

    Above :data:`COARSE_MASS` (a float32 Gamma(0.01) flushes 42% of its draws to 0; a float64
    Beta(0.01, 0.01) puts mass on the spacings near 1) the column's ties are the law's: it is
    judged as one with ties, K-S with the band as tolerance, no normal scores. Below it,
    rounding moves each value's PIT by at most half its band's mass ``m``, so the mean normal
    score by about ``5 m`` at most at the suite's sample sizes (the mean of ``1 / phi(zeta)``
    over 2^16 normal scores is about 10: 9.5 to 12.3 over three seeds): 0.2% of quick mode's
    pit_mean threshold, and the column is judged as continuous (a tie adds at most ``1/n`` to
    a K-S distance), its ties by the repeat check (:func:`_atom_bound`).
    """
    n, m = xs.shape
    probes = np.unique(np.linspace(0, n - 1, min(n, _COARSE_PROBES)).astype(int))
    out = np.zeros(m)
    for j in range(m):
        x = xs[:, j]
        tied = np.flatnonzero(x[1:] == x[:-1])
        if len(tied) == 0:
            continue
        at = np.unique(x[np.concatenate([probes, tied])])
        up, down = _tie_bounds(np.repeat(at[:, None], m, axis=1), law, res)
        with np.errstate(invalid="ignore"):
            width = np.abs(up[:, j] - down[:, j])
        out[j] = np.inf if np.isnan(width).any() else float(width.max())
    return out


def _most_repeated(x: np.ndarray) -> tuple[float, int]:
    """The value of a sorted column drawn most often, and how often."""
    starts = np.flatnonzero(np.concatenate([[True], x[1:] != x[:-1]]))
    runs = np.diff(np.append(starts, len(x)))
    k = int(np.argmax(runs))
    return float(x[starts[k]]), int(runs[k])


#: The least band mass :func:`_atom_bound` assumes, and its margin on the largest one read at
#: the probes (the mass between them can be larger: the spacing doubles at each power of two,
#: and a float64 CDF's rounding is about 1e-16).
ATOM_MASS_FLOOR = 1e-15
ATOM_MASS_MARGIN = 4.0


def _atom_bound(n: int, count: int, mass: float) -> float:
    """An upper bound on the probability that any value of ``n`` independent draws of the
    reference occurs ``count`` times or more, where no value's band holds more than ``mass``:
    summed over the values, ``C(n, c) m_v^c <= C(n, c) m^(c-1)`` (the masses sum to at most
    1), with ``m`` the mass read at the probes times :data:`ATOM_MASS_MARGIN`, at least
    :data:`ATOM_MASS_FLOOR`."""
    if count < 2:
        return 1.0
    m = min(1.0, max(ATOM_MASS_FLOOR, ATOM_MASS_MARGIN * mass))
    log_bound = (math.lgamma(n + 1) - math.lgamma(count + 1) - math.lgamma(n - count + 1)
                 + (count - 1) * math.log(m))
    return math.exp(min(0.0, log_bound))


#: Margin on the estimated collision probabilities of integer statistics (their estimate's
#: relative standard deviation is below 1% at the suite's sample sizes).
REPEAT_DISCRETE_MARGIN = 1.25
#: Tied values, the most frequent first, at which :func:`_collision_mass` reads the band mass.
_COLLISION_TIES = 1024


def _collision_mass(xs: np.ndarray, law: Any, res: Any) -> tuple[np.ndarray, np.ndarray]:
    """For each column of a sorted draw in float type ``res``: ``q``, twice the mean reference
    mass of a value's :func:`_band` over 1024 values spread by rank (an estimate of the
    probability that two independent draws are equal, doubled for safety; the band, two
    spacings wide, already holds more than the one value it stands for), and ``p``, the
    largest band mass at those values and at the 1024 most repeated ones (a bound on the
    largest probability of one value). An undefined mass counts as 1."""
    n, m = xs.shape
    probes = np.unique(np.linspace(0, n - 1, min(n, _COARSE_PROBES)).astype(int))
    mass = _band_mass(xs[probes], law, res)
    q = np.minimum(1.0, 2.0 * mass.mean(axis=0))
    p = mass.max(axis=0)
    for j in range(m):
        x = xs[:, j]
        tied = x[1:][x[1:] == x[:-1]]
        if len(tied) == 0:
            continue
        vals, counts = np.unique(tied, return_counts=True)
        top = vals[np.argsort(-counts, kind="stable")[:_COLLISION_TIES]]
        tm = _band_mass(np.repeat(top[:, None], m, axis=1), law, res)[:, j]
        p[j] = max(p[j], float(tm.max()))
    return q, np.maximum(p, q / 2.0)


def _band_mass(x: np.ndarray, law: Any, res: Any) -> np.ndarray:
    """The reference mass of each value's :func:`_band`. Past the support's edge some
    references return NaN (a logit of a value above 1): the CDF is 1 above, 0 below."""
    up, down = _tie_bounds(x, law, res)
    up, down = np.nan_to_num(up, nan=1.0), np.nan_to_num(down, nan=0.0)
    return np.clip(up - down, 0.0, 1.0)


def _ks_with_ulp(xs: np.ndarray, F: np.ndarray, ties: np.ndarray, law: Any,
                 res: Any = np.float64) -> tuple[np.ndarray, np.ndarray]:
    """The K-S distance per column (tie-corrected where ``ties``), and where each is attained:
    rows ``(x, reference CDF there, the draws' empirical CDF there)`` per column, for a
    failure's message (where in the law the draw departs: a tail, the centre, the end of the
    support)."""
    D = ks_continuous(xs, F)
    n = xs.shape[0]
    i = np.arange(1, n + 1, dtype=np.float64)[:, None]
    cols = np.arange(xs.shape[1])
    # F(x_(i)) - i/n: D+ at its minimum (the draws' CDF above the reference's just after
    # x_(i)), D- at its maximum + 1/n (below it just before x_(i))
    d = F - i / n
    lo, hi = np.argmin(d, axis=0), np.argmax(d, axis=0)
    plus = -d[lo, cols] >= d[hi, cols] + 1.0 / n
    row = np.where(plus, lo, hi)
    at = np.stack([xs[row, cols], F[row, cols], np.where(plus, (lo + 1) / n, hi / n)])
    if ties.any():
        tc = np.flatnonzero(ties)
        up, down = _tie_bounds(xs, law, res)
        ep, em = i / n - up, down - (i - 1) / n
        rp, rm = np.argmax(ep, axis=0), np.argmax(em, axis=0)
        dp, dm = ep[rp, cols], em[rm, cols]
        D[tc] = np.maximum(dp, dm)[tc]
        usep = dp >= dm
        row = np.where(usep, rp, rm)
        tied = np.stack([xs[row, cols], np.where(usep, up[rp, cols], down[rm, cols]),
                         np.where(usep, (rp + 1) / n, rm / n)])
        at[:, tc] = tied[:, tc]
    return D, at


def _curves(pr: Projection, c: dict[str, np.ndarray] | None,
            ) -> tuple[np.ndarray, np.ndarray]:
    """``F_ref(x_q) - q`` at the plotted quantile levels (one column per grid point), and which
    columns were tie-corrected. For those, the deviation is the distance from ``q`` to the
    interval the tie correction allows, so the plot shows what the check measured."""
    if c is not None:
        return c["curves"]  # type: ignore[return-value]
    # integer statistics: F_n(k) - F(k) at the draw's quantiles k
    xs = _sorted_columns(pr.values)
    n = xs.shape[0]
    k = xs[np.clip((_Q * n).astype(int), 0, n - 1)]
    fn = np.stack([np.searchsorted(xs[:, j], k[:, j], side="right")
                   for j in range(xs.shape[1])], 1) / n
    return -(fn - np.asarray(pr.law.cdf(k), dtype=np.float64)), np.zeros(xs.shape[1], bool)


def _continuous_curves(xs: np.ndarray, F: np.ndarray, ties: np.ndarray, law: Any,
                       res: Any = np.float64) -> tuple[np.ndarray, np.ndarray]:
    n = F.shape[0]
    idx = np.clip((_Q * n).astype(int), 0, n - 1)
    dev = F[idx, :] - _Q[:, None]
    if ties.any():
        cols = np.flatnonzero(ties)
        up, down = _tie_bounds(xs[idx], law, res)
        q = _Q[:, None]
        # inside [down, up] the deviation is 0; outside, the distance to the nearer end
        corrected = np.where(q > up, up - q, np.where(q < down, down - q, 0.0))
        dev[:, cols] = corrected[:, cols]
    return dev, ties.copy()


def _col_point(d: Draw, grid: Grid, j: int) -> str:
    return d.point(grid.label, j)


def checks(t: Target, family: str, support: FamilySupport) -> Iterator[Check]:
    methods = ["sample"] + (["rsample"] if support.rsample else [])
    continuous = FAMILIES[family].kind == "continuous"
    for grid in grids(family):
        if not grid.judged_by("sampler"):
            continue
        for method in methods:
            if grid.methods is not None and method not in grid.methods:
                continue
            yield from _draw_checks(t, family, grid, method, continuous)
        if grid.label == "typical":
            # sample() in many small calls (see Runner's ``calls`` draw): its K-S check, and
            # its repeat check (a value or stretch each call starts with, a seed reused
            # between calls: the large draws of the other checks hold it once)
            # (calls_indep judges continuous statistics' PITs, exactly uniform, and discrete
            # ones' mid-PITs, whose moments are summed over the law)
            yield from (c for c in _draw_checks(t, family, grid, "calls", continuous)
                        if c.name in ("calls_ks", "calls_repeats")
                        or c.name == "calls_indep")
            # each grid point with scalar parameters, in a call of its own (the batched draws
            # never reach a backend's scalar-parameter path)
            yield from (c for c in _draw_checks(t, family, grid, "scalar", continuous)
                        if c.name == "scalar_ks")
            # the first grid point in one-value calls with scalar parameters (sample()), a
            # training loop's commonest call
            yield from (c for c in _draw_checks(t, family, grid, "ones", continuous)
                        if c.name == "ones_ks")
            # ... and in calls of 2 to 64 values (a small-n path of the sampler)
            yield from (c for c in _draw_checks(t, family, grid, "smalls", continuous)
                        if c.name in ("smalls_ks", "smalls_pit_mean", "smalls_pit_var"))
            # ... and laid out in batch shapes of one to five dimensions no other draw has
            yield from (c for c in _draw_checks(t, family, grid, "batches", continuous)
                        if c.name == "batches_ks")

            if has_event_size(family):
                # ... and at event size 2 (two categories, two dimensions)
                yield from (c for c in _draw_checks(t, family, grid, "event2", continuous)
                            if c.name == "event2_ks")

            if pairs_family(family):
                # ... and in calls of two values: are they independent of each other?
                yield Check(t.name, family, grid.label, "calls_pairs", "sampler", True,
                            _pairs_check(t, family, grid))

            def batches_indep(r: Runner, grid: Grid = grid) -> Outcome:
                return _batches_indep_check(r.draw(t, family, grid, "batches"))

            yield Check(t.name, family, grid.label, "batches_indep", "sampler", True,
                        batches_indep)


def _draw_checks(t: Target, family: str, grid: Grid, method: str,
                 continuous: bool) -> Iterator[Check]:
    name = t.name

    def ks(r: Runner) -> Outcome:
        d = r.draw(t, family, grid, method)
        if not d.support_ok:
            raise CheckFailure(f"{d.called} returned values outside the support: "
                               f"{d.outside}", n=d.n, seed=d.seed)
        m = sum(p.values.shape[1] for p in d.projections)
        # scalar_ks, ones_ks, smalls_ks and batches_ks look for errors of another path: the
        # pooled slots
        alpha = (ALPHA_SCALAR if method in ("scalar", "ones", "smalls", "batches", "event2")
                 else ALPHA_CHECK) / m
        thr = dkwm_threshold(d.n, alpha)
        worst, where, wj = -1.0, "", 0
        per: dict[str, list[float]] = {}
        evidence: list[Evidence] = []
        for p in d.projections:
            c = None if p.discrete else continuous_stats(p)
            D = p.cache.get("ks")
            if D is None:  # computed once per draw (an rsample draw equal to it shares it)
                D = ks_integer(p.values,
                               lambda k, j, _p=p: _p.column(j).cdf(k),  # type: ignore[misc]
                               p.law.cdf)
                p.cache["ks"] = D
            per[p.label] = D.tolist()
            j = int(np.argmax(D))
            if D[j] > worst:
                worst, where, wj = float(D[j]), p.label, j
            if method == "sample" and p.label in PLOTTED:
                dev, tie = _curves(p, c)
                evidence.append(CdfCurves(
                    name, family, grid.label, p.label, tuple(_Q.tolist()),
                    tuple(tuple(col) for col in dev.T.tolist()), tuple(d.columns),
                    tuple(D.tolist()), thr, tuple(bool(x) for x in tie)))
        point = _col_point(d, grid, wj)
        out = Outcome(statistic=worst, threshold=thr, n=d.n, seed=d.seed, alpha=alpha,
                      detectable=dkwm_detectable(d.n, alpha), point=point,
                      details={"ks": per, "draw_seconds": round(d.seconds, 4)},
                      evidence=evidence)
        if method == "rsample":  # the sample draw's details have no such question
            out.details["values_equal_sample"] = d.shared
        if not worst <= thr:
            # the point names the part of a draw made of parts
            how = f" of {d.called}" if d.called != f"{method}()" and not d.parts else ""
            failing = next(p for p in d.projections if p.label == where)
            at = failing.cache.get("ks_at")
            there = ""
            if at is not None:
                x, f_ref, f_emp = (float(v) for v in at[:, wj])
                there = (f"; the largest gap is at {where} = {x:.17g}, where the reference "
                         f"CDF is {f_ref:.6g} and the draws' {f_emp:.6g}")
            if method != "sample" or where not in PLOTTED:
                # the failing statistic's curves, so that the report's plots show the verdict
                dev, tie = _curves(failing, None if failing.discrete else
                                   continuous_stats(failing))
                label = where if method == "sample" else f"{where}, {d.called}"
                evidence.append(CdfCurves(
                    name, family, grid.label, label, tuple(_Q.tolist()),
                    tuple(tuple(col) for col in dev.T.tolist()), tuple(d.columns),
                    tuple(float(v) for v in per[where]), thr, tuple(bool(x) for x in tie)))
            raise CheckFailure(
                f"K-S distance {worst:.4g}{how} of {where} at {point} exceeds the DKWM "
                f"threshold {thr:.4g} (n={d.n}, alpha_i={alpha:.2g} per point){there}", out)
        at = point if d.labels else f"{grid.label}[{wj}]"
        out.message = f"max K-S distance {worst:.3g} ({where} at {at})"
        if d.shared:
            out.message += "; the values equal sample()'s with the same seed"
        return out

    yield Check(name, family, grid.label, f"{method}_ks", "sampler", True, ks)

    if continuous:
        def pit(which: str) -> Callable[[Runner], Outcome]:
            def fn(r: Runner) -> Outcome:
                d = r.draw(t, family, grid, method)
                return _pit_check(r, t, family, grid, method, which, d)
            return fn

        yield Check(name, family, grid.label, f"{method}_pit_mean", "sampler", True, pit("mean"))
        yield Check(name, family, grid.label, f"{method}_pit_var", "sampler", True, pit("var"))
    else:
        def sumtest(r: Runner) -> Outcome:
            d = r.draw(t, family, grid, method)
            projs = [p for p in d.projections if p.discrete and p.exact_sum is not None]
            if not projs:
                raise Skip("no statistic with an exact sum law")
            m = sum(p.values.shape[1] for p in projs)
            alpha = ALPHA_CHECK / m
            worst_ratio, chosen, where, wj = -1.0, None, "", 0
            sums: dict[str, list[float]] = {}
            for p in projs:
                s = p.values.sum(axis=0)
                test = sum_tail_test(s, p.exact_sum(d.n), alpha, d.n)  # type: ignore[misc]
                sums[p.label] = s.tolist()
                j = test.worst
                if test.ratio[j] > worst_ratio:
                    worst_ratio, chosen, where, wj = float(test.ratio[j]), (test, p), p.label, j
            assert chosen is not None
            test, p = chosen
            law = p.exact_sum(d.n)  # type: ignore[misc]
            point = _col_point(d, grid, wj)
            out = Outcome(statistic=float(test.statistic[wj]), threshold=float(test.threshold[wj]),
                          n=d.n, seed=d.seed, alpha=alpha, detectable=test.detectable,
                          point=point, details={"sum": sums})
            if worst_ratio > 1:
                mean = float(np.asarray(law.mean())[wj])
                sd = float(np.asarray(law.std())[wj])
                got = float(test.estimate[wj])
                # the difference too: at rate 1e15 a sum 3e12 off reads the same to 6 digits
                raise CheckFailure(
                    f"sum of {d.n} draws of {where} at {point} is {got:.10g}, expected "
                    f"{mean:.10g} (a difference of {got - mean:+.4g}, the sum's standard "
                    f"deviation {sd:.4g}): beyond the exact two-sided bound at alpha_i = "
                    f"{alpha:.2g} ({z_text(float(test.statistic[wj]))})", out)
            out.message = (f"sums within their exact laws: max z {test.statistic[wj]:.2f} "
                           f"({where} at {grid.label}[{wj}])")
            return out

        yield Check(name, family, grid.label, f"{method}_sum", "sampler", True, sumtest)

        def atoms(r: Runner) -> Outcome:
            return _atoms_check(r.draw(t, family, grid, method), grid, method)

        yield Check(name, family, grid.label, f"{method}_atoms", "sampler", True, atoms)

    def tails(r: Runner) -> Outcome:
        return _tails_check(r.draw(t, family, grid, method), grid, method)

    yield Check(name, family, grid.label, f"{method}_tails", "sampler", True, tails)

    def independence(r: Runner) -> Outcome:
        d = r.draw(t, family, grid, method)
        if method == "calls":
            return _call_spread_check(d, grid)
        return _independence_check(d, grid, method)

    yield Check(name, family, grid.label, f"{method}_indep", "sampler", True, independence)

    def repeats(r: Runner) -> Outcome:
        d = r.draw(t, family, grid, method)
        return _repeat_check(d, grid, method)

    yield Check(name, family, grid.label, f"{method}_repeats", "sampler", True, repeats)


def _repeat_rows(pr: Projection) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """A statistic's rows in the order drawn, with ``q`` and ``p`` per column (see
    :func:`_collision_mass`; for integer statistics ``q`` is the draw's mean of the reference
    probability of each drawn value, an unbiased estimate of ``sum_k P(k)^2``, and ``p`` the
    largest of those probabilities, both times :data:`REPEAT_DISCRETE_MARGIN`); or None when a
    column holds no value twice (then no two rows are equal)."""
    if not pr.discrete:
        c = continuous_stats(pr)
        if "repeat_rows" not in c:
            return None
        return c["repeat_rows"], *c["repeat_mass"]
    cache = pr.cache
    if "repeat_mass" not in cache:
        x = np.asarray(pr.values, dtype=np.float64)
        n, m = x.shape
        qs, ps = np.ones(m), np.ones(m)
        for j in range(m):
            law = pr.column(j) if pr.column is not None else None
            v, counts = _value_counts(x[:, j])
            if law is not None:
                cdf: Callable[[np.ndarray], Any] = law.cdf
            else:
                def cdf(k: np.ndarray, _j: int = j) -> Any:
                    return pr.law.cdf(np.repeat(k[:, None], m, axis=1))[:, _j]
            with np.errstate(all="ignore"):
                pmf = (np.asarray(cdf(v), dtype=np.float64)
                       - np.asarray(cdf(v - 1.0), dtype=np.float64))
            pmf = np.nan_to_num(np.clip(pmf, 0.0, 1.0), nan=1.0)
            qs[j] = min(1.0, REPEAT_DISCRETE_MARGIN * float(np.sum(counts / n * pmf)))
            ps[j] = min(1.0, REPEAT_DISCRETE_MARGIN * float(pmf.max()))
        cache["repeat_mass"] = (qs, ps)
    return pr.values, *cache["repeat_mass"]


def _value_counts(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct values of an integer statistic's column and their counts (by ``bincount``
    where the values span a range no longer than the column, else by sorting)."""
    lo, hi = float(x.min()), float(x.max())
    if np.isfinite(lo) and np.isfinite(hi) and hi - lo < len(x) and np.all(x == np.floor(x)):
        counts = np.bincount((x - lo).astype(np.int64))
        v = np.flatnonzero(counts)
        return v + lo, counts[v]
    return np.unique(x, return_counts=True)


def _repeat_check(d: Draw, grid: Grid, method: str) -> Outcome:
    """No window of consecutive rows of the draw equals another (:func:`repeated_windows`),
    for the shortest window whose repetition independent draws of the reference law make
    less likely than the check's alpha (:func:`repeat_window`): a backend that reuses a seed,
    a generator state or a buffer across the rows of one call repeats whole stretches of
    draws, with right marginals (the other checks of this layer read repeated values as ties
    at float resolution).

    Each statistic is a function of the draw's rows, so a repeated stretch of rows repeats in
    every statistic: the one that needs the shortest window is judged (the window of each is
    chosen at the check's alpha split over the statistics). A continuous statistic with a
    column in which no value occurs twice shows that no two rows are equal. Where no stretch
    repeats, single values are judged: one drawn more often than the reference allows is an
    atom the law does not have (:func:`_judge_atoms`)."""
    alpha = ALPHA_REPEAT / max(1, len(d.projections))
    for p in d.projections:
        if not p.discrete and "repeat_rows" not in continuous_stats(p):
            _judge_atoms(d, grid, alpha)
            out = Outcome(statistic=0.0, threshold=0.0, n=d.n, seed=d.seed, alpha=alpha,
                          detectable=1.0, details={"statistic": p.label, "window_rows": 1})
            out.message = (f"no two rows are equal (a column of {p.label} holds no value "
                           "twice)")
            return out
    excluded: list[str] = []
    best: tuple[int, str, np.ndarray, float, float] | None = None
    for p in d.projections:
        ev = _repeat_rows(p)
        assert ev is not None
        rows, q, pm = ev
        q_row, p_row = float(np.prod(q)), float(np.prod(pm))
        k = repeat_window(d.n, q_row, p_row, alpha)
        if k is None:
            excluded.append(p.label)
        elif best is None or k < best[0]:
            best = (k, p.label, rows, q_row, p_row)
    if best is None:
        _judge_atoms(d, grid, alpha)
        raise Skip("every statistic puts so much mass on one value that independent draws "
                   f"repeat any window of up to {REPEAT_MAX_WINDOW} rows")
    k, label, rows, q_row, p_row = best
    count, pair = repeated_windows(rows, k)
    # detectable: the rows a repeated stretch must span to be found with certainty
    out = Outcome(statistic=float(count), threshold=0.0, n=d.n, seed=d.seed, alpha=alpha,
                  detectable=float(k),
                  details={"statistic": label, "window_rows": k, "excluded": excluded})
    what = "rows" if k == 1 else f"windows of {k} consecutive rows"
    if count and pair is not None:
        i, j = pair
        out.details["first_repeat"] = [i, j]
        const = _constant_columns(d, grid, label, rows)
        if const:
            raise CheckFailure(
                f"the draws of {d.called} do not vary: {const}; {count} {what} of {label} "
                f"equal an "
                f"earlier one, where independent draws of the reference law repeat any such "
                f"window with probability at most {repeat_bound(d.n, k, q_row, p_row):.2g} "
                f"(n={d.n}, alpha_i={alpha:.2g}). A sampler that ignores its random stream "
                "(returns a parameter, or a fixed quantile) does this", out)
        if method == "calls" and i // CALL_ROWS != j // CALL_ROWS:
            # rows of two calls, each drawn with its own seed
            cause = (f" (rows of calls {i // CALL_ROWS} and {j // CALL_ROWS}, drawn with "
                     "different seeds). Two seeds giving one stream (a seed hashed or cut to "
                     "too few bits: the calls' seeds collide by the birthday bound), or a "
                     "generator state or buffer reused across calls, does this")
        else:
            cause = (". A seed, generator state or buffer reused within one call does this")
        raise CheckFailure(
            f"{d.called} repeats its draws: {count} {what} of {label} (every grid point of "
            f"{grid.label}) equal an earlier one, the first at row {i} and again at "
            f"row {j} ({j - i} rows later); independent draws of the reference law repeat "
            f"any such window with probability at most {repeat_bound(d.n, k, q_row, p_row):.2g}"
            f" (n={d.n}, alpha_i={alpha:.2g}){cause}", out)
    _judge_atoms(d, grid, alpha)  # no stretch repeats: how often do single values?
    out.message = (f"no window of {k} consecutive rows of {label} repeats (any repeated "
                   f"stretch of {k} rows or more would)")
    return out


def _judge_atoms(d: Draw, grid: Grid, alpha: float) -> None:
    """Fails the draw where a continuous statistic repeats one value more often than the
    reference's mass on that value's float spacing allows (:func:`_atom_bound`, at ``alpha``
    split over the statistic's columns): an atom the law does not have. A clamp into a range
    (a Normal held at +-3.5 sd instead of drawn past it) or a fixed value returned for some
    draws does this, with marginals close enough to pass the K-S test."""
    for p in d.projections:
        if p.discrete:
            continue
        atoms = continuous_stats(p).get("atoms", ())
        columns = np.shape(p.values)[1] if np.ndim(p.values) == 2 else 1
        for j, value, count, mass in atoms:
            bound = _atom_bound(d.n, count, mass)
            cut = alpha / max(1, columns)
            if bound >= cut:
                continue
            out = Outcome(statistic=float(count), threshold=0.0, n=d.n, seed=d.seed,
                          alpha=cut, detectable=float(count),
                          details={"statistic": p.label, "value": value, "count": count,
                                   "band_mass": mass, "bound": bound})
            more = (f" (and in {len(atoms) - 1} more of its {columns} columns)"
                    if len(atoms) > 1 else "")
            raise CheckFailure(
                f"{d.called} draws {p.label} = {value!r} {count} times at "
                f"{d.point(grid.label, j)}{more}, where the reference law puts at most "
                f"{mass:.2g} on one float spacing of the draws: independent draws repeat one "
                f"value that often with probability "
                f"{f'at most {bound:.2g}' if bound > 0 else 'below 1e-300'} (n={d.n}, "
                f"alpha_i={cut:.2g}). An atom the law does not have: a clamp into a range "
                "(values held at a cut instead of drawn past it), a fixed value returned for "
                "some draws, or a sampler with too few random bits does this", out)


def _constant_columns(d: Draw, grid: Grid, label: str, rows: np.ndarray) -> str:
    """Where a column of the statistic ``label`` (its ``rows`` in the order drawn) holds one
    value in every row: the first such column's grid point and value, and how many there
    are; else empty. Such a column repeats every window, as a reused seed does, but no seed
    is to blame."""
    v = np.asarray(rows)
    if v.ndim != 2 or v.shape[0] < 2:
        return ""
    same = np.flatnonzero(np.all(v == v[:1], axis=0))
    if not same.size:
        return ""
    j = int(same[0])
    more = f" (so are {same.size - 1} more of its {v.shape[1]} columns)" if same.size > 1 else ""
    return (f"{label} at {d.point(grid.label, j)} is {float(v[0, j]):.6g} in every one of the "
            f"{v.shape[0]} draws{more}")


def _point_mass(pr: Projection, j: int) -> bool:
    """Whether column ``j`` of a discrete statistic has a law of one value (variance 0)."""
    if not pr.discrete or pr.column is None:
        return False
    try:
        return float(np.asarray(pr.column(j).var(), dtype=np.float64)) == 0.0
    except (AttributeError, TypeError, ValueError):
        return False


#: The standardized sum of ``k`` independent uniforms has a density of at most this much
#: (``sqrt(1/6)``, at ``k = 2``; 0.289 at ``k = 1``, rising to ``1/sqrt(2 pi)`` = 0.399 from
#: below for large ``k``): the balance test's bound.
_SUM_DENSITY_MAX = 0.40825
#: The share of the independence check's alpha its balance tests take (the product tests keep
#: the rest: their detectable correlation grows by less than 0.01%).
BALANCE_SHARE = 1e-3


def balance_log_bound(total: float, count: int) -> float:
    """``log P(sum of count Z_j^2 <= total)``, bounded above: ``Z_j`` independent, each with a
    density of at most :data:`_SUM_DENSITY_MAX`, so the probability is at most that density to
    the power ``count`` times the volume of the ball of radius ``sqrt(total)``."""
    if total <= 0:
        return -math.inf
    return (count / 2 * math.log(math.pi * total) - math.lgamma(count / 2 + 1)
            + count * math.log(_SUM_DENSITY_MAX))


def balance_threshold(count: int, alpha: float) -> float:
    """The largest ``sum Z_j^2`` over ``count`` blocks that the balance test fails at
    ``alpha``: :func:`balance_log_bound` equal to ``log alpha``."""
    log_t = (2.0 / count) * (math.log(alpha) + math.lgamma(count / 2 + 1)
                             - count * math.log(_SUM_DENSITY_MAX)) - math.log(math.pi)
    return math.exp(log_t)


def _balance_tests(usable: list[tuple[Projection, np.ndarray]]
                   ) -> list[tuple[str, float, int, str, int]]:
    """The blocks of one call in each usable column (``Projection.copies``): ``(kind, sum of
    Z^2, blocks, statistic, column)`` for the ``copy`` blocks (a batch element's rows: the
    first whole ones of :func:`continuous_stats`) and the ``call`` blocks (all the rows of a
    grid point in one call, its copies together), with the column whose largest ``Z^2`` is
    smallest (the most balanced). ``Z = sqrt(12 / k) S``, ``S`` the sum of a block's ``k``
    centred PITs: the standardized sum of ``k`` independent uniforms under the reference."""
    z2: dict[str, list[np.ndarray]] = {"copy": [], "call": []}
    where: dict[str, tuple[float, str, int]] = {}
    for p, cols in usable:
        c = p.cache
        if "call_sums" not in c or len(cols) == 0:
            continue
        parts = []
        if "block_sums" in c:
            parts.append(("copy", 12.0 * c["block_sums"][:, cols] ** 2 / c["block_rows"]))
        # one batch element per grid point (copies 1): its rows are the call's
        kind = "call" if p.copies > 1 else "copy"
        parts.append((kind, 12.0 * c["call_sums"][cols][None, :] ** 2 / c["call_rows"]))
        for kind, z in parts:
            z2[kind].append(z.reshape(-1))
            top = z.max(axis=0)
            jj = int(np.argmin(top))
            if kind not in where or top[jj] < where[kind][0]:
                where[kind] = (float(top[jj]), p.label, int(cols[jj]))
    return [(kind, float(np.concatenate(v).sum()), sum(a.size for a in v), where[kind][1],
             where[kind][2]) for kind, v in z2.items() if v]


def _independence_check(d: Draw, grid: Grid, method: str) -> Outcome:
    """Neighbouring rows of each column (disjoint pairs, at even and at odd offsets) and the
    same row of neighbouring usable columns (different batch elements of one call), each pair's
    mean product against Bernstein's bound at the check's alpha split over every such test.

    And the balance of each call (:func:`_balance_tests`, at :data:`BALANCE_SHARE` of the
    alpha): the sums of the centred PITs of a batch element's rows, and of a grid point's
    copies, must not all be near zero. A call whose second half mirrors its first (``2 loc -
    x``: antithetic halves) or a batch whose second half takes the first half's noise negated
    has every neighbouring pair independent, and every such sum exactly 0."""
    # (statistic, kind, first values, second values, their columns)
    tests: list[tuple[str, str, np.ndarray, np.ndarray, list[int], list[int]]] = []
    excluded: list[str] = []
    lags: dict[str, int] = {}
    for p in d.projections:
        v, keep = _pit_head(p)
        cols = np.flatnonzero(keep)
        if len(cols) < v.shape[1]:
            excluded.append(f"{p.label}{np.flatnonzero(~keep).tolist()}")
        # A column whose law is one value (a category of probability 0) has a constant PIT:
        # its products cannot leave their bound, so it spends none of the check's alpha (a
        # value off that point fails the sum and atom checks with certainty).
        cols = np.array([j for j in cols if not _point_mass(p, int(j))], dtype=np.int64)
        if len(cols) == 0 or v.shape[0] < 4:
            continue
        u = v[:, cols]
        h = (u.shape[0] // 2) * 2
        tests.append((p.label, "serial", u[0:h:2], u[1:h:2], cols.tolist(), cols.tolist()))
        h1 = ((u.shape[0] - 1) // 2) * 2 + 1
        tests.append((p.label, "serial", u[1:h1:2], u[2:h1 + 1:2], cols.tolist(),
                      cols.tolist()))
        halves = _pit_half(p)
        if halves is not None:
            w, lag = halves
            lags[p.label] = lag
            tests.append((p.label, "half", u[:w.shape[0]], w[:, cols], cols.tolist(),
                          cols.tolist()))
        # neighbouring usable columns of one call (one part of a draw made of parts)
        g = max(1, len(d.points))
        same = cols[:-1] // g == cols[1:] // g
        if same.any():
            tests.append((p.label, "batch", u[:, :-1][:, same], u[:, 1:][:, same],
                          cols[:-1][same].tolist(), cols[1:][same].tolist()))
    if not tests:
        raise Skip(f"no statistic with usable columns (ties at {_res(d)} resolution)")
    balance = _balance_tests([(p, np.array([j for j in np.flatnonzero(_pit_head(p)[1])
                                               if not _point_mass(p, int(j))], dtype=np.int64))
                                 for p in d.projections if not p.discrete])
    m = sum(a.shape[1] for _, _, a, _, _, _ in tests)
    alpha = ALPHA_CHECK * (1 - BALANCE_SHARE if balance else 1.0) / m
    alpha_balance = ALPHA_CHECK * BALANCE_SHARE / max(1, len(balance))
    details_balance: dict[str, Any] = {}
    unbalanced = None
    for kind, total, count, label, col in balance:
        limit = balance_threshold(count, alpha_balance)
        details_balance[kind] = {"mean_z2": total / count, "blocks": count,
                                 "threshold": limit / count}
        log_p = balance_log_bound(total, count)
        if unbalanced is None and log_p < math.log(alpha_balance):
            unbalanced = (kind, total, count, label, col, limit, log_p)
    worst_ratio, chosen, desc, wj = -1.0, None, "", 0
    means = (0.0, 0.0)
    est: dict[str, list[float]] = {}
    # the power the check states: its neighbour tests' (the half-block pairs are fewer)
    stated: float | None = None
    for label, kind, a, b, at, partner in tests:
        test = product_mean_test(a, b, alpha)
        est.setdefault(f"{label}:{kind}", []).extend(test.estimate.tolist())
        if kind != "half" and stated is None:
            stated = test.detectable
        j = test.worst
        if test.ratio[j] > worst_ratio:
            worst_ratio, chosen, wj = float(test.ratio[j]), (test, j), at[j]
            means = (float(a[:, j].mean()), float(b[:, j].mean()))
            desc = (f"between neighbouring draws of {label} at {d.point(grid.label, at[j])}"
                    if kind == "serial" else
                    f"between draws {lags.get(label)} rows apart (the two halves of a batch "
                    f"element's rows of one call) of {label} at {d.point(grid.label, at[j])}"
                    if kind == "half" else
                    f"of {label} between grid points {d.point(grid.label, at[j])} and "
                    f"{d.point(grid.label, partner[j])} (batch elements of one call)")
    assert chosen is not None
    test, j = chosen
    note = (f"; excluded (ties at {_res(d)} resolution): {', '.join(excluded)}"
            if excluded else "")
    rows = min(d.n, INDEPENDENCE_ROWS)
    out = Outcome(statistic=float(test.statistic[j]), threshold=float(test.threshold[j]),
                  n=d.n, seed=d.seed, alpha=alpha,
                  detectable=test.detectable if stated is None else stated,
                  point=d.point(grid.label, wj), details={"pit_correlation": est, "rows": rows,
                                                          "balance": details_balance})
    if worst_ratio > 1:
        lead = "draws are not independent"
        if abs(12 * means[0] * means[1]) > test.threshold[j] / 2:
            # Independent draws from a wrong law also fail: the PITs' means are off, and so is
            # the mean of their product. Say so rather than blame dependence.
            lead = "draws are not independent draws of the reference law"
            note += (f"; the first draws' centred PITs have means {means[0]:.3g} and "
                     f"{means[1]:.3g} (0 under the reference): the law is wrong (see the K-S "
                     "check) or the draws come in order")
        raise CheckFailure(
            f"{d.called} {lead}: 12 x the mean product of centred PIT "
            f"values {desc} is {test.estimate[j]:.3g} (0 for independent draws; the PITs' "
            f"correlation), beyond the exact bound {test.threshold[j]:.3g} (first {rows} of "
            f"{d.n} draws, alpha_i={alpha:.2g}){note}", out)
    if unbalanced is not None:
        kind, total, count, label, col, limit, log_p = unbalanced
        point = d.point(grid.label, col)
        what = ("the rows of each batch element" if kind == "copy" else
                "the copies of each grid point (batch elements of one call)")
        raise CheckFailure(
            f"{d.called} draws are not independent: {what} balance each other: the sums "
            f"of their centred PITs, standardized (Z^2 of mean 1 for independent draws), "
            f"average {total / count:.3g} over {count} blocks, below {limit / count:.3g} "
            f"(P <= 10^{log_p / math.log(10):.0f} for independent draws; "
            f"alpha_i={alpha_balance:.2g}), the most balanced {label} at {point}: antithetic "
            f"or mirrored halves, or another draw made to cancel",
            Outcome(statistic=limit / total if total > 0 else math.inf, threshold=1.0,
                    n=d.n, seed=d.seed, alpha=alpha_balance, point=point,
                    details={"balance": details_balance}))
    out.message = f"max |12 x mean PIT product| {test.statistic[j]:.3g} {desc}{note}"
    return out


#: ``calls_pairs``: one-call pairs drawn (full mode, quick mode).
PAIR_CALLS = (2048, 512)


def pairs_family(family: str) -> bool:
    """Whether ``calls_pairs`` judges ``family``: the discrete families whose two-draw
    collision probability it computes (every one but Multinomial)."""
    spec = FAMILIES[family]
    return spec.kind in ("discrete", "index") and family != "Multinomial"


def _collision(family: str, point: dict[str, Any], dist: Any) -> float:
    """``P(X1 = X2)`` for two independent draws of the point's law: the sum of its squared
    probabilities (its categories', or its values' within 1e-15 of either tail)."""
    spec = FAMILIES[family]
    if "probs" in spec.params and spec.param_event_dim("probs") == 1:
        p = dist.probs.detach().double().numpy().reshape(-1)
        p = p / p.sum()
        return float((p * p).sum())
    law_of = cases.CASES[family].law
    assert law_of is not None
    law = law_of(params_np(dist, spec.params))
    lo, hi = float(law.ppf(1e-15)), float(law.isf(1e-15))
    k = np.arange(max(lo - 1, 0.0), hi + 2)
    pmf = np.asarray(law.pmf(k), dtype=np.float64)
    return float((pmf * pmf).sum())


def _pairs_check(t: Target, family: str, grid: Grid) -> Callable[[Runner], Outcome]:
    """The typical grid's first point (scalar parameters) in many calls of two values, each
    with its own seed: the two values of a call are equal as often as two independent draws
    are (an exact two-sided binomial test of the count, at the pooled alpha). A Categorical
    whose calls of at most as many values as categories are drawn without replacement (the
    default of ``torch.multinomial``) never repeats a value within a call; the small calls of
    ``smalls_ks`` hold too few such calls to tell, and every other draw is larger."""

    def fn(r: Runner) -> Outcome:
        params = grid.build(torch.float64)
        point = point_params(family, params, 0)
        d = make(family, point, t)
        q = _collision(family, point, d)
        n = PAIR_CALLS[1 if r.quick else 0]
        seed = r.seed(f"{t.name}-{family}-{grid.label}-calls_pairs")
        same = 0
        with torch.no_grad():
            for i in range(n):
                x = d.sample((2,), seed=seed_for(f"{seed}-{i}"))
                same += bool(torch.equal(x[0], x[1]))
        alpha = ALPHA_SCALAR
        test = binomial_count_test(np.array([same]), n, np.array([q]), alpha)
        where = f"{grid.label}[0] ({grid_points(family, params)[0]})"
        out = Outcome(statistic=float(test.statistic[0]), threshold=float(test.threshold[0]),
                      n=n, seed=seed, alpha=alpha, detectable=test.detectable, point=where,
                      details={"equal_pairs": same, "expected": n * q, "collision": q})
        if test.ratio[0] > 1:
            hint = (": drawn without replacement? (torch.multinomial's default is "
                    "replacement=False)" if same == 0 else "")
            raise CheckFailure(
                f"sample((2,)) in {n} calls at {where} (scalar parameters, a seed each) drew "
                f"two equal values in {same} calls, where independent draws do in {n * q:.1f} "
                f"on average (P = {q:.4g} per call; {z_text(float(test.statistic[0]))}): the "
                f"two values of a call are not independent draws{hint}", out)
        out.message = (f"{same} of {n} calls of two values drew a value twice ({n * q:.1f} "
                       f"expected, P = {q:.4g})")
        return out

    return fn


#: Row lags within one call that ``batches_indep`` compares, each pooled over every element.
BATCH_LAGS = tuple(range(1, 9))


def _batches_indep_check(d: Draw) -> Outcome:
    """The batches draw's elements are independent draws: every pair of batch elements of one
    layout (the same rows), and rows 1 to 8 apart within one call (pooled over every element
    of every layout), each pair's mean product of centred PITs (mid-PITs for a discrete
    statistic) against Bernstein's bound at the pooled alpha split over every such test.

    The sampler's other draws compare neighbouring rows and neighbouring grid points only: a
    backend that gave batch element ``i + 7`` the noise of element ``i`` (right marginals,
    every neighbour independent) passed every check."""
    # (statistic, kind, first values, second values, their columns, the product of the
    # columns' mean PITs: what independent draws of a wrong law give the mean product)
    tests: list[tuple[str, str, np.ndarray, np.ndarray, np.ndarray, np.ndarray, float]] = []
    for p in d.projections:
        v, keep = _pit_head(p)
        mu = v.mean(axis=0)
        usable = np.array([bool(keep[j]) and not _point_mass(p, j) for j in range(v.shape[1])])
        lags_a: dict[int, list[np.ndarray]] = {lag: [] for lag in BATCH_LAGS}
        lags_b: dict[int, list[np.ndarray]] = {lag: [] for lag in BATCH_LAGS}
        start = 0
        pooled: list[np.ndarray] = []
        for shape in BATCH_LAYOUTS:
            size = math.prod(shape)
            cols = np.arange(start, start + size)
            start += size
            cols = cols[usable[cols]]
            pooled.append(cols)
            if len(cols) >= 2:
                first, second = np.triu_indices(len(cols), 1)
                tests.append((p.label, "pair", v[:, cols[first]], v[:, cols[second]],
                              cols[first], cols[second], 0.0))
            rows, per_call = v.shape[0], layout_call_rows(shape)
            for lag in BATCH_LAGS:
                # disjoint pairs (i, i + lag) within one call: no row in two pairs
                i = np.arange(rows - lag)
                i = i[(i % (2 * lag) < lag) & (i % per_call + lag < per_call)]
                if len(i) and len(cols):
                    lags_a[lag].append(v[i][:, cols].ravel())
                    lags_b[lag].append(v[i + lag][:, cols].ravel())
        every = np.concatenate(pooled)
        for lag in BATCH_LAGS:
            if lags_a[lag]:
                none = np.array([-1])
                tests.append((p.label, f"lag {lag}", np.concatenate(lags_a[lag])[:, None],
                              np.concatenate(lags_b[lag])[:, None], none, none,
                              float(np.mean(mu[every] ** 2)) if len(every) else 0.0))
    if not tests:
        raise Skip(f"no statistic with usable columns (ties at {_res(d)} resolution)")
    m = sum(a.shape[1] for _, _, a, _, _, _, _ in tests)
    alpha = ALPHA_SCALAR / m
    worst_ratio, chosen = -1.0, None
    est: dict[str, float] = {}
    for label, kind, a, b, at, partner, marginal in tests:
        test = product_mean_test(a, b, alpha)
        j = test.worst
        key = f"{label}:{kind}"
        est[key] = max(est.get(key, 0.0), float(np.max(np.abs(test.estimate))))
        if test.ratio[j] > worst_ratio:
            worst_ratio = float(test.ratio[j])
            if kind == "pair":
                marginal = float(a[:, j].mean() * b[:, j].mean())
            chosen = (label, kind, test, j, int(at[j]), int(partner[j]), marginal)
    assert chosen is not None
    label, kind, test, j, col, other, marginal = chosen
    desc = (f"of {label} between {d.point('', col)} and {d.point('', other)} (the same rows)"
            if kind == "pair" else
            f"of {label} between rows {kind[4:]} apart within one call (every element pooled)")
    pair_test = next((t for t in tests if t[1] == "pair"), tests[0])
    out = Outcome(statistic=float(test.statistic[j]), threshold=float(test.threshold[j]),
                  n=d.n, seed=d.seed, alpha=alpha,
                  detectable=product_mean_test(pair_test[2][:, :1], pair_test[3][:, :1],
                                               alpha).detectable,
                  point=d.point("", col) if kind == "pair" else "",
                  details={"max_abs_pit_correlation": est, "tests": m})
    if worst_ratio > 1:
        lead = "draws are not independent"
        note = ""
        if abs(12 * marginal) > test.threshold[j] / 2:
            # Independent draws from a wrong law also fail: the PITs' means are off, and so
            # is the mean of their product. Say so rather than blame dependence.
            lead = "draws are not independent draws of the reference law"
            note = (f"; the columns' mean centred PITs alone make 12 x the mean product "
                    f"{12 * marginal:.3g} (0 under the reference): the law is wrong (see "
                    "batches_ks)")
        raise CheckFailure(
            f"{d.called}: {lead}: 12 x the mean product of centred PIT values {desc} is "
            f"{test.estimate[j]:.3g} (0 for independent draws; the PITs' correlation), beyond "
            f"the exact bound {test.threshold[j]:.3g} ({d.n} rows, alpha_i={alpha:.2g}){note}",
            out)
    out.message = (f"{m} pairings of batch elements and lags within calls; max |12 x mean PIT "
                   f"product| {test.statistic[j]:.3g} {desc}")
    return out


def _call_spread_bounds(calls: int, k: int, alpha: float, kurtosis: float = 1.8,
                        peak: float = 3.0) -> tuple[float, float]:
    """Exact bounds on ``S / calls``, ``S`` the sum over ``calls`` independent calls of
    ``Z^2 = k m^2 / s^2``, ``m`` the mean of ``k`` independent centred PITs of variance ``s^2``
    and kurtosis ``kurtosis`` (``E[Z^2] = 1``; a uniform's: ``s^2 = 1/12``, kurtosis 9/5),
    each side at probability ``alpha``. Below: Maurer's inequality for non-negative terms,
    ``P(S <= calls - t) <= exp(-t^2 / (2 calls E[Z^4]))``, ``E[Z^4] = 3 + (kurtosis - 3) /
    k`` (``3 - 6 / (5 k)`` for uniforms). Above: Bernstein's, the terms ``Z^2 - 1`` at most
    ``k peak - 1`` (``peak``: the largest squared PIT over ``s^2``; 3 for uniforms, ``|m| <=
    1/2``), of variance ``E[Z^4] - 1``."""
    log = math.log(1.0 / alpha)
    e4 = 3.0 + (kurtosis - 3.0) / k
    low = math.sqrt(2.0 * calls * e4 * log)
    b, v = k * peak - 1.0, e4 - 1.0
    high = (2 * log * b / 3 + math.sqrt((2 * log * b / 3) ** 2 + 8 * log * calls * v)) / 2
    return max(0.0, 1.0 - low / calls), 1.0 + high / calls


#: The widest support (values) whose mid-PIT moments ``calls_indep`` sums exactly; a discrete
#: column whose law spreads wider (beyond 1e-15 in each tail) is left out.
MID_PIT_MAX_VALUES = 1 << 20


def _mid_pit_moments(pr: Projection, j: int) -> tuple[float, float, float] | None:
    """The variance, kurtosis and peak (largest square over the variance) of the centred
    mid-PIT ``(F(x) + F(x - 1)) / 2 - 1/2`` of column ``j`` of a discrete statistic (mean 0
    exactly), summed over its law's values; None where the law is nearly one value or too
    wide to sum."""
    law = pr.column(j) if pr.column is not None else None
    if law is None or not all(hasattr(law, a) for a in ("ppf", "isf", "cdf")):
        return None
    with np.errstate(all="ignore"):
        lo, hi = float(law.ppf(1e-15)) - 1.0, float(law.isf(1e-15)) + 1.0
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi - lo > MID_PIT_MAX_VALUES:
        return None
    ks = np.arange(lo, hi + 1.0)
    F = np.asarray(law.cdf(ks), dtype=np.float64)
    Fm = np.asarray(law.cdf(ks - 1.0), dtype=np.float64)
    pm, g = F - Fm, 0.5 * (F + Fm) - 0.5
    var = float(np.sum(pm * g * g))
    if not var > 1e-9:
        return None
    return var, float(np.sum(pm * g ** 4)) / var ** 2, float(np.max(g[pm > 0] ** 2)) / var


def _call_spread_check(d: Draw, grid: Grid) -> Outcome:
    """The rows of each of the many small calls are independent (``calls_indep``).

    The calls draw holds its calls one after another, :data:`..runner.CALL_ROWS` rows each. For
    each column of a continuous statistic without ties, each call's mean centred PIT ``m``
    (exactly the mean of ``k`` uniforms under the reference) gives ``Z^2 = 12 k m^2`` of mean 1;
    their mean over the calls must lie within exact bounds (:func:`_call_spread_bounds`). Too
    small: the rows of a call are drawn too evenly (stratified, antithetic pairs, a Latin
    hypercube): every column's law is right and neighbouring pairs barely correlate (-1/15
    within a stratified call of 16), so the K-S and independence checks passed. Too large: a
    part shared by the rows of a call (an offset drawn once per call).

    A discrete statistic's column is judged the same way on its centred mid-PITs, of mean 0
    exactly, with ``Z^2 = k m^2 / s^2`` and bounds from their variance ``s^2`` and kurtosis
    summed over the law's values (:func:`_mid_pit_moments`): a Categorical or Poisson drawn
    by systematic resampling within each call passed every check."""
    k = CALL_ROWS
    # (statistic, its usable columns, their spreads, their (kurtosis, peak))
    usable: list[tuple[Projection, np.ndarray, np.ndarray, list[tuple[float, float]]]] = []
    for p in d.projections:
        v, keep = _pit_head(p)
        shape: list[tuple[float, float]] = []
        scale = np.full(v.shape[1], 1.0 / 12.0)
        if p.discrete:
            for j in range(v.shape[1]):
                mom = _mid_pit_moments(p, j)
                keep[j] = mom is not None
                if mom is not None:
                    scale[j] = mom[0]
                    shape.append(mom[1:])
        calls = v.shape[0] // k
        cols = np.flatnonzero(keep)
        if calls < 2 or len(cols) == 0:
            continue
        if not p.discrete:
            shape = [(1.8, 3.0)] * len(cols)
        means = v[:calls * k, cols].reshape(calls, k, len(cols)).mean(axis=1)
        usable.append((p, cols, k * (means ** 2).mean(axis=0) / scale[cols], shape))
    if not usable:
        raise Skip("no statistic whose PITs have known moments (a continuous one without ties, "
                   "a discrete one not nearly one value)")
    m = sum(len(cols) for _, cols, _, _ in usable)
    alpha = ALPHA_CALLS_INDEP / m
    calls = d.n // k
    uniform = _call_spread_bounds(calls, k, alpha / 2)
    low, high = uniform
    worst, where, value = -1.0, "", 1.0
    for p, cols, ratio, shape in usable:
        for col, spread, (kurt, peak) in zip(cols, ratio, shape):
            lo_c, hi_c = uniform if not p.discrete else _call_spread_bounds(
                calls, k, alpha / 2, kurt, peak)
            # how far outside (> 1) or inside (< 1) the nearer bound, on the log scale
            tiny = math.log(max(spread, 1e-300))
            far = max(tiny / math.log(lo_c) if lo_c > 0 else 0.0,
                      tiny / math.log(hi_c) if math.isfinite(spread) else math.inf)
            if not far <= worst:
                worst, value, low, high = far, float(spread), lo_c, hi_c
                where = f"{p.label} at {d.point(grid.label, int(col))}"
    lo_u = uniform[0]
    # detectable (continuous statistics): the relative drop of the call means' variance found
    # at miss rate 1e-3 (the spread's own noise by the normal approximation, sd
    # sqrt((2 - 6/(5k)) / calls) times it)
    sd = math.sqrt((2.0 - 6.0 / (5.0 * k)) / calls)
    detectable = 1.0 - lo_u / (1.0 + norm_isf(MISS_RATE) * sd)
    # the statistic: the log of the spread over the log of the nearer bound (> 1 outside)
    out = Outcome(statistic=worst, threshold=1.0, n=d.n, seed=d.seed, alpha=alpha, point=where,
                  detectable=detectable,
                  details={"spread": value, "bounds": [low, high], "calls": calls,
                           "rows_per_call": k})
    if worst > 1:
        how = ("too evenly: stratified, antithetic or otherwise dependent rows that balance "
               "each other" if value < low else "with a part shared by the rows of a call")
        raise CheckFailure(
            f"{d.called}: the rows of a call are not independent: the means of the calls' "
            f"centred PITs of {where} spread {value:.3g} times as much as independent draws' "
            f"(k m^2 / Var(PIT), the mean over the {calls} call means m, k = {k}; exact "
            f"bounds [{low:.3g}, {high:.3g}] at alpha_i={alpha:.2g}): the rows are drawn "
            f"{how}", out)
    out.message = (f"call means' spread {value:.3g} of independent draws' at {where} (bounds "
                   f"[{low:.3g}, {high:.3g}])")
    return out


def _res(d: Draw) -> str:
    """The float type of a draw's values, as the messages name it."""
    return np.dtype(d.projections[0].resolution).name if d.projections else "float64"


def _pit_columns(d: Draw) -> tuple[list[tuple[Projection, np.ndarray]], list[str]]:
    """For each continuous statistic, the columns without ties (normal scores defined)."""
    cols, excluded = [], []
    for p in d.projections:
        if p.discrete:
            continue
        c = continuous_stats(p)
        keep = ~c["ties"]
        if not keep.any():
            excluded.append(p.label)
            continue
        if not keep.all():
            excluded.append(f"{p.label}{np.flatnonzero(~keep).tolist()}")
        cols.append((p, keep))
    return cols, excluded


#: A tail level of a discrete statistic is judged where at least this many draws are expected
#: beyond it: with fewer, even a tail without any draw would not fail at the tail check's alpha.
TAIL_MIN_EXPECTED = 32


def _stable_worst(ratio: np.ndarray) -> int:
    """The first of the counts furthest beyond (or closest to) their thresholds, compared at
    float32 precision: reference probabilities move by about 1e-15 with torch's thread count
    (a Categorical's float32 probs are normalized by a parallel sum), and a near-tie must not
    pick another count, and so another message, on a Dask worker than in this process."""
    r = np.where(np.isfinite(ratio), ratio, np.inf).astype(np.float32)
    return int(np.argmax(r))


def _discrete_tail_levels(law: Any, n: int) -> list[tuple[bool, float, float]]:
    """``(upper, k, P)`` of each tail level of a discrete law judged at ``n`` draws: ``X >= k``
    (upper) or ``X <= k``, of probability ``P`` at most each of :data:`TAIL_COUNTS` over ``n``
    and at least :data:`TAIL_MIN_EXPECTED` over ``n`` (a law whose tails jump past the levels,
    a Bernoulli, has none)."""
    levels: dict[tuple[bool, float], float] = {}
    for c in TAIL_COUNTS:
        if c < TAIL_MIN_EXPECTED:
            continue  # no level of this probability could be judged (the one-draw level)
        q = c / n
        with np.errstate(all="ignore"):
            try:
                k_hi = float(law.isf(q)) + 1.0  # the smallest k with P(X >= k) <= q
                k_lo = float(law.ppf(q)) - 1.0  # the largest k with P(X <= k) < q
                found = [(True, k_hi, float(law.sf(k_hi - 1.0))),
                         (False, k_lo, float(law.cdf(k_lo)))]
            except Exception:  # noqa: BLE001 - a law without quantiles: no tail levels
                return []
        for upper, k, prob in found:
            if math.isfinite(k) and math.isfinite(prob) and prob * n >= TAIL_MIN_EXPECTED:
                levels[(upper, k)] = prob
    return [(upper, k, prob) for (upper, k), prob in levels.items()]


#: The draws expected beyond the pooled tail level of ``<method>_tails``: every kept column's
#: normal scores together, beyond the quantile where this many of them are expected per side.
#: No draw where 64 are expected has probability e^-64: a Normal whose draws beyond 3.7 sd
#: were redrawn passed quick mode (its 2.2e-4 of mass holds fewer draws than any one column's
#: 64-level), and one cut at 4 sd full mode (an outside trial).
POOLED_TAIL = 64


def _tails_check(d: Draw, grid: Grid, method: str) -> Outcome:
    """The draws beyond the reference's extreme quantiles, counted against their exact
    binomial laws (:func:`..stats.binomial_count_test`): a sampler whose tails are cut (an
    inverse CDF fed too coarse uniforms, a clamp, a rejection step that drops the extremes, a
    count capped at a maximum) or far too heavy. The K-S and moment checks weigh every draw
    alike and miss a Normal cut at 3.5 sd (it moves ``mean zeta^2`` by 2.4 of its standard
    deviations at n = 2^18) or a Poisson capped three standard deviations above its mean.

    Continuous statistics: the normal scores below ``-q`` and above ``q``, ``q`` the normal
    quantile of each level (exactly Binomial(n, p) under the reference). Discrete statistics
    with a law per column: ``X >= k`` and ``X <= k`` at the levels of
    :func:`_discrete_tail_levels`. Every count is tested at the check's alpha split over all of
    them."""
    cols, excluded = _pit_columns(d)
    counts: list[float] = []
    probs: list[float] = []
    where: list[tuple[str, int, bool]] = []
    pooled: list[tuple[float, float, str, int, bool]] = []  # count, p, label, columns, upper
    for p, keep in cols:
        # column-contiguous scores: the counts read each column
        zeta = continuous_stats(p)["zeta"]
        seen, mass, up = score_tail_counts(zeta)
        for row in range(seen.shape[0]):
            for j in np.flatnonzero(keep):
                counts.append(float(seen[row, j]))
                probs.append(float(mass[row, j]))
                where.append((p.label, int(j), bool(up[row, j])))
        kept = np.flatnonzero(keep)
        if kept.size > 1:
            # every kept column's scores together (each exactly N(0, 1) under the reference):
            # beyond the quantile where POOLED_TAIL draws of all of them are expected, which
            # lies further out than any column's own levels
            q = norm_isf(POOLED_TAIL / (d.n * kept.size))
            z = zeta[:, kept]
            for upper, k in ((False, (z < -q).sum()), (True, (z > q).sum())):
                pooled.append((float(k), POOLED_TAIL / (d.n * kept.size), p.label,
                               int(kept.size), upper))
    for p in d.projections:
        if not p.discrete or p.column is None:
            continue
        for j in range(p.values.shape[1]):
            x = p.values[:, j]
            for upper, k, prob in _discrete_tail_levels(p.column(j), d.n):
                counts.append(float(np.count_nonzero(x >= k if upper else x <= k)))
                probs.append(prob)
                where.append((p.label, j, upper))
    if not counts:
        if excluded:
            raise Skip(f"every column has ties at {_res(d)} resolution (mass on a float "
                       "spacing): normal scores undefined; K-S still applies")
        raise Skip("no tail of the reference law holds enough draws to be judged at this n "
                   f"(at least {TAIL_MIN_EXPECTED} expected beyond a level)")
    alpha = ALPHA_TAILS / (len(counts) + len(pooled))
    if pooled:
        m = pooled[0][3]
        whole = binomial_count_test(np.array([c[0] for c in pooled]), d.n * m,
                                    np.array([c[1] for c in pooled]), alpha)
        w = int(np.argmax(whole.ratio))
        k_w, p_w, label_w, m_w, upper_w = pooled[w]
        if whole.ratio[w] > 1:
            side = "upper" if upper_w else "lower"
            out = Outcome(statistic=float(whole.statistic[w]),
                          threshold=float(whole.threshold[w]), n=d.n, seed=d.seed,
                          alpha=alpha, detectable=whole.detectable,
                          point=f"all {m_w} points of {grid.label}",
                          details={"tails": len(counts) + len(pooled), "worst_count": k_w,
                                   "worst_expected": p_w * d.n * m_w, "pooled": m_w})
            few = whole.deviation[w] < 0
            raise CheckFailure(
                f"the {side} tails of {label_w} drawn by {d.called}, pooled over the "
                f"{m_w} points of {grid.label}, hold {k_w:.0f} draws beyond the reference's "
                f"{norm_isf(p_w):.3g}-sd quantile where {p_w * d.n * m_w:.1f} are expected "
                f"({d.n} draws per point; {z_text(float(whole.statistic[w]))}, "
                f"alpha_i={alpha:.2g}): the sampler's tails are "
                + ("cut short (a clamp, too coarse uniforms, a dropped extreme, draws beyond "
                   "some number of standard deviations redrawn)" if few else "far too heavy"),
                out)
    test = binomial_count_test(np.array(counts), d.n, np.array(probs), alpha)
    i = _stable_worst(test.ratio)
    label, wj, upper = where[i]
    note = (f"; excluded (ties at {_res(d)} resolution): {', '.join(excluded)}"
            if excluded else "")
    point = d.point(grid.label, wj)
    side = "upper" if upper else "lower"
    out = Outcome(statistic=float(test.statistic[i]), threshold=float(test.threshold[i]),
                  n=d.n, seed=d.seed, alpha=alpha, detectable=test.detectable, point=point,
                  details={"tails": len(counts), "worst_count": counts[i],
                           "worst_expected": probs[i] * d.n})
    if test.ratio[i] > 1:
        few = test.deviation[i] < 0
        raise CheckFailure(
            f"the {side} tail of {label} at {point}, drawn by {d.called}, holds "
            f"{counts[i]:.0f} draws where the reference puts {probs[i] * d.n:.1f} (n={d.n}; "
            f"{z_text(float(test.statistic[i]))}, alpha_i={alpha:.2g}): the sampler's tails are "
            + ("cut short (a clamp, too coarse uniforms, a dropped extreme, a capped count)"
               if few else "far too heavy") + note, out)
    out.details["tails"] = len(counts) + len(pooled)
    out.message = (f"{len(counts) + len(pooled)} tail counts within their exact laws"
                   + (" (the extremes pooled over the grid's points too)" if pooled else "")
                   + f": worst {counts[i]:.0f} "
                   f"where {probs[i] * d.n:.1f} expected ({side} tail of {label} at "
                   f"{grid.label}[{wj}]){note}")
    return out


#: The most values of one column the atom check judges (a count with a wider range puts
#: fewer than :data:`TAIL_MIN_EXPECTED` draws on most of its values anyway).
ATOMS_MAX_VALUES = 1 << 14



def _atom_text(label: str, k: float) -> str:
    """A counted value in words: a category's indicator (``category3`` = 0 or 1, from the
    categorical projections) as the category drawn or not, else ``label = k``."""
    one = re.fullmatch(r"category(\d+)", label)
    block = re.fullmatch(r"categories(\d+)to(\d+)", label)
    if one:
        return f"category {one[1]}" if k == 1 else f"a category other than {one[1]}"
    if block:
        return (f"a category in {block[1]}..{block[2]}" if k == 1 else
                f"a category outside {block[1]}..{block[2]}")
    return f"{label} = {k:g}"


def _atoms_check(d: Draw, grid: Grid, method: str) -> Outcome:
    """Each value of a count, where at least :data:`TAIL_MIN_EXPECTED` draws are expected: its
    number of draws against its exact Binomial(n, P(X = k)) law (two-sided, the check's alpha
    split over every value of every column). K-S compares cumulative probabilities and the sum
    test the mean: a sampler that never draws one value and draws the next one twice as often
    (a Geometric rounded up from 20 on: P(X = 20) = 0) moves neither beyond its noise."""
    counts: list[float] = []
    probs: list[float] = []
    where: list[tuple[str, int, float]] = []
    for p in d.projections:
        if not p.discrete or p.column is None:
            continue
        for j in range(p.values.shape[1]):
            law = p.column(j)
            with np.errstate(all="ignore"):
                try:
                    lo = float(law.ppf(TAIL_MIN_EXPECTED / d.n))
                    hi = float(law.isf(TAIL_MIN_EXPECTED / d.n))
                except Exception:  # noqa: BLE001 - a law without quantiles: not judged
                    continue
                if not (math.isfinite(lo) and math.isfinite(hi)) or hi < lo:
                    continue
                hi = min(hi, lo + ATOMS_MAX_VALUES - 1)
                ks = np.arange(lo, hi + 1.0)
                pm = np.asarray(law.pmf(ks), dtype=np.float64)
            use = np.isfinite(pm) & (pm * d.n >= TAIL_MIN_EXPECTED) & (pm < 1.0)
            if ks.size == 2 and use.all():
                # Two values (an indicator): their counts are complementary, the same test
                # twice. Only the rarer one is judged (their tied statistics would otherwise
                # pick the reported one by rounding).
                use[int(np.argmax(pm))] = False
            if not use.any():
                continue
            x = p.values[:, j]
            inside = (x >= lo) & (x <= hi) & (x == np.floor(x))
            seen = np.bincount((x[inside] - lo).astype(np.int64), minlength=ks.size)
            for k, c, prob in zip(ks[use], seen[use], pm[use]):
                counts.append(float(c))
                probs.append(float(prob))
                where.append((p.label, j, float(k)))
    if not counts:
        raise Skip(f"no value of a count holds {TAIL_MIN_EXPECTED} expected draws (or no "
                   "statistic has a law per column)")
    alpha = ALPHA_TAILS / len(counts)
    test = binomial_count_test(np.array(counts), d.n, np.array(probs), alpha)
    i = _stable_worst(test.ratio)
    label, wj, k = where[i]
    point = d.point(grid.label, wj)
    out = Outcome(statistic=float(test.statistic[i]), threshold=float(test.threshold[i]),
                  n=d.n, seed=d.seed, alpha=alpha, detectable=test.detectable, point=point,
                  details={"values": len(counts), "worst_count": counts[i],
                           "worst_expected": probs[i] * d.n})
    if test.ratio[i] > 1:
        raise CheckFailure(
            f"{d.called} drew {_atom_text(label, k)} at {point} {counts[i]:.0f} times where "
            f"the reference expects {probs[i] * d.n:.1f} (P = {probs[i]:.4g}, n={d.n}; "
            f"{z_text(float(test.statistic[i]))}, alpha_i={alpha:.2g})", out)
    out.message = (f"{len(counts)} value counts within their exact laws: worst "
                   f"{_atom_text(label, k)}, drawn {counts[i]:.0f} times where "
                   f"{probs[i] * d.n:.1f} expected "
                   f"({grid.label}[{wj}])")
    return out


def pit_summary(r: Runner, t: Target, family: str, grid: Grid, method: str,
                which: str) -> PitScores:
    """The per-statistic mean (``which="mean"``) or mean square of the normal scores."""
    d = r.draw(t, family, grid, method)
    values: dict[str, tuple[float, ...]] = {}
    for p, keep in _pit_columns(d)[0]:
        z = continuous_stats(p)["zeta"]
        est = z.mean(axis=0) if which == "mean" else (z * z).mean(axis=0)
        values[p.label] = tuple(float(v) if k else math.nan for v, k in zip(est, keep))
    return PitScores(t.name, family, grid.label, method, which, d.n, values)


def _pit_check(r: Runner, t: Target, family: str, grid: Grid, method: str, which: str,
               d: Draw) -> Outcome:
    # The agreement checks read this summary: kept before any outcome, so that no process
    # has to draw again for it (an all-ties draw has an empty one).
    r.keep(pit_summary(r, t, family, grid, method, which))
    cols, excluded = _pit_columns(d)
    if not cols:
        raise Skip(f"every column has ties at {_res(d)} resolution (mass on a float "
                   "spacing): normal scores undefined; K-S still applies")
    m = sum(p.values.shape[1] for p in d.projections if not p.discrete)
    # smalls_pit_mean and smalls_pit_var look for a small-call path off by several percent:
    # the pooled slots
    alpha = (ALPHA_SCALAR if method == "smalls" else ALPHA_CHECK) / m
    worst_ratio, chosen, where, wj = -1.0, None, "", 0
    est: dict[str, list[float]] = {}
    for p, keep in cols:
        z = continuous_stats(p)["zeta"]
        if not keep.all():
            z = z[:, keep]
        if not np.all(np.isfinite(z)):
            bad = ~np.isfinite(z)
            k, first = int(bad.sum()), int(np.flatnonzero(bad.any(axis=0))[0])
            point = d.point(grid.label, int(np.flatnonzero(keep)[first]))
            raise CheckFailure(f"{d.called} drew {k} values (statistic {p.label}) where the "
                               f"reference CDF is 0 or 1, the first at {point}: impossible "
                               "under the reference law", n=d.n, seed=d.seed, alpha=alpha,
                               point=point)
        test = pit_mean_test(z, alpha) if which == "mean" else pit_var_test(z, alpha)
        est[p.label] = test.estimate.tolist()
        j = test.worst
        if test.ratio[j] > worst_ratio:
            worst_ratio, chosen = float(test.ratio[j]), test
            where, wj = p.label, int(np.flatnonzero(keep)[j])
            jj = j
    assert chosen is not None
    note = (f"; excluded (ties at {_res(d)} resolution): {', '.join(excluded)}"
            if excluded else "")
    what = "|mean zeta|" if which == "mean" else "|mean zeta^2 - 1|"
    point = d.point(grid.label, wj)
    out = Outcome(statistic=float(chosen.statistic[jj]), threshold=float(chosen.threshold[jj]),
                  n=d.n, seed=d.seed, alpha=alpha, detectable=chosen.detectable, point=point,
                  details={which: est})
    if worst_ratio > 1:
        dev = float(chosen.deviation[jj])
        if which == "mean":
            side = ("the draws lie above the reference law (as a location too large puts them)" if dev > 0
                    else "the draws lie below the reference law (as a location too small puts them)")
        else:
            side = ("the draws are more spread than the reference law (as a scale too large makes them)"
                    if dev > 0 else
                    "the draws are less spread than the reference law (as a scale too small makes them)")
        raise CheckFailure(
            f"{what} = {chosen.statistic[jj]:.4g} of {where} at {point} exceeds "
            f"{chosen.threshold[jj]:.4g} (normal scores zeta = Phi^-1(F(x)) against SciPy; "
            f"n={d.n}, alpha_i={alpha:.2g}): {side}{note}", out)
    out.message = f"{what} = {chosen.statistic[jj]:.3g} ({where} at {grid.label}[{wj}]){note}"
    return out
