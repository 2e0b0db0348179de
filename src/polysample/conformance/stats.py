"""Statistics of the conformance suite: error budget, DKWM/K-S, z-tests, seeds, power.

Every threshold is derived from the error budget (see ``docs/conformance.md``):

* The whole run may fail falsely with probability at most :data:`ALPHA_TOTAL` (1e-6).
* That budget is split evenly (Bonferroni) over at most :data:`MAX_STATISTICAL_CHECKS`
  statistical checks, so each check has :data:`ALPHA_CHECK`; a check made of ``m`` elementary
  tests (batch elements, projections, parameters) gives each ``ALPHA_CHECK / m``. The repeat
  checks share one check's share: each has :data:`ALPHA_REPEAT` (:func:`budget_slots`).
  ``tests/test_conformance_meta.py`` asserts that a full run stays within the budget.
* Seeds are derived from check ids (:func:`seed_for`), so a run is bit-for-bit repeatable.

All statistics are computed in float64 (NumPy).
"""

from __future__ import annotations

import functools
import hashlib
import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

__all__ = [
    "ALPHA_TOTAL", "MAX_STATISTICAL_CHECKS", "ALPHA_CHECK", "MISS_RATE", "ALPHA_REPEAT",
    "ALPHA_LARGE", "ALPHA_SWEEP", "ALPHA_SCALAR", "ALPHA_CALLS_INDEP",
    "REPEAT_CHECKS_PER_SLOT", "budget_slots",
    "dkwm_threshold", "dkwm_detectable", "ks_continuous", "ks_integer", "z_threshold",
    "z_detectable", "ZTest", "z_test", "seed_for", "norm_isf", "ColumnTest", "pit_mean_test",
    "pit_var_test", "pit_var_bounds", "pit_var_detectable", "mean_z_test", "sum_tail_test",
    "tail_count_test", "score_tail_counts", "binomial_count_test", "TAIL_COUNTS", "ALPHA_TAILS", "POOLED_CHECKS",
    "two_sample_z_test", "paired_t_test", "product_mean_test", "product_mean_threshold", "PIT_PRODUCT_BOUND",
    "PIT_PRODUCT_VAR", "REPEAT_MAX_WINDOW", "repeat_bound", "repeat_window",
    "repeated_windows",
]

#: Total false-failure probability of one full run (all built-in backends, every family).
ALPHA_TOTAL = 1e-6
#: The largest number of statistical checks a run may hold (a full run of the four built-in
#: backends holds fewer; ``tests/test_conformance_meta.py`` asserts it).
MAX_STATISTICAL_CHECKS = 4000
#: False-failure probability of one statistical check (Bonferroni): 2.5e-10.
ALPHA_CHECK = ALPHA_TOTAL / MAX_STATISTICAL_CHECKS
#: The repeat checks (``*_repeats``) share one statistical check's alpha: each runs at
#: ``ALPHA_CHECK / REPEAT_CHECKS_PER_SLOT`` (:data:`ALPHA_REPEAT`, 2.5e-13), so that many of
#: them together risk no more than one check. A smaller alpha only lengthens the window of
#: rows they compare (a repeated stretch is found with certainty once it spans the window).
REPEAT_CHECKS_PER_SLOT = 1000
ALPHA_REPEAT = ALPHA_CHECK / REPEAT_CHECKS_PER_SLOT
#: The tail and atom checks (``*_tails``, ``*_atoms``) share those slots, at the same alpha:
#: they look for tails or values that are missing or far too heavy, whose counts leave their
#: law by many standard deviations (a Normal cut at 3.5 sd has no draw where 64 are expected).
ALPHA_TAILS = ALPHA_REPEAT
#: The large-call gradient checks (``grad_large``) share those slots too, at the same alpha:
#: they look for gradients that a large call gets grossly wrong (rows without gradient, a
#: chunk's gradient scaled), which leave the reference by tens to thousands of standard errors.
ALPHA_LARGE = ALPHA_REPEAT
#: The sweep checks (``sample_sweep``, ``grad_sweep``) share those slots too, at the same alpha:
#: they look across whole parameter ranges for a sampler or gradient wrong in a band the grid
#: points miss. At this alpha a K-S threshold is 14% higher than at :data:`ALPHA_CHECK` (DKWM
#: constant 3.85 against 3.38) and a z threshold 7.2 against 6.3; their power, stated in
#: ``layers/sweep.py``, is measured at this alpha.
ALPHA_SWEEP = ALPHA_REPEAT
#: The scalar-parameter checks (``scalar_ks``, ``ones_ks`` of one-value calls and
#: ``smalls_ks``, ``smalls_pit_mean`` and ``smalls_pit_var`` of calls of 2 to 64 values) and
#: the batch-layout, event-size and pair checks (``batches_ks``, ``batches_indep``,
#: ``event2_ks``, ``calls_pairs``) share those slots too, at the same alpha: they
#: look for a scalar-parameter path or a batch layout grossly wrong (a rate read as a scale, a
#: neighbour's parameters), beside the batched draws that carry the fine power. At this alpha
#: their K-S threshold is 14% higher.
ALPHA_SCALAR = ALPHA_REPEAT
#: The small calls' independence checks (``calls_indep``) share those slots too, at the same
#: alpha: a call drawn stratified moves the spread of the call means to near 0.
ALPHA_CALLS_INDEP = ALPHA_REPEAT
#: Suffixes of the checks that share slots, :data:`REPEAT_CHECKS_PER_SLOT` to a slot.
POOLED_CHECKS = ("_repeats", "_tails", "_atoms", "_large", "_sweep", "scalar_ks",
                 "ones_ks", "smalls_ks", "smalls_pit_mean", "smalls_pit_var", "calls_indep",
                 "batches_ks", "batches_indep", "event2_ks", "calls_pairs")
#: Expected counts ``n p`` of the tail check's levels: the draws below the reference's
#: ``p``-quantile and above its ``(1 - p)``-quantile are counted for each (see
#: :func:`tail_count_test`). The levels of 64 and 256 find tails cut short or too heavy near
#: the extremes; the level of one expected draw (``p = 1/n``: 4.6 standard deviations of a
#: Normal in quick mode) finds a far tail many times too heavy (a ziggurat whose tail
#: beyond 3.44 sd is exponential puts about 30 draws there), which moves no other count
#: beyond its noise. A deficit there is never significant (no draw, where one is expected,
#: has probability 0.37): it only looks for excess.
TAIL_COUNTS = (1, 64, 256)
#: The miss rate at which the "smallest detectable discrepancy" of each check is stated.
MISS_RATE = 1e-3


def budget_slots(names: Iterable[str]) -> int:
    """How many of the :data:`MAX_STATISTICAL_CHECKS` a run's statistical checks (given by
    name, e.g. ``sample_ks``) take: one each, and one per :data:`REPEAT_CHECKS_PER_SLOT`
    repeat and tail checks together (:data:`POOLED_CHECKS`)."""
    other = repeats = 0
    for name in names:
        if name.endswith(POOLED_CHECKS):
            repeats += 1
        else:
            other += 1
    return other + -(-repeats // REPEAT_CHECKS_PER_SLOT)


def norm_isf(p: float) -> float:
    """Upper quantile of the standard normal: ``P(Z > z) = p`` (no SciPy needed)."""
    # Newton on the complementary error function; erfc is exact in the math module.
    z = math.sqrt(-2.0 * math.log(p)) if p < 0.5 else 0.0
    for _ in range(60):
        f = 0.5 * math.erfc(z / math.sqrt(2.0)) - p
        d = -math.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)
        step = f / d
        z -= step
        if abs(step) < 1e-14 * max(1.0, abs(z)):
            break
    return z


def dkwm_threshold(n: int, alpha: float) -> float:
    """K-S distance above which a sample of ``n`` from the right law occurs w.p. <= ``alpha``.

    Dvoretzky-Kiefer-Wolfowitz with Massart's constant: ``P(sup|F_n - F| > eps) <=
    2 exp(-2 n eps^2)``, so ``eps = sqrt(ln(2/alpha) / (2n))``. Valid for any F (discrete too).
    """
    return math.sqrt(math.log(2.0 / alpha) / (2.0 * n))


def dkwm_detectable(n: int, alpha: float, miss: float = MISS_RATE) -> float:
    """The smallest true K-S distance ``D`` detected with probability >= ``1 - miss``.

    If the true distance is ``D``, the empirical one is at least ``D - dkwm_threshold(n, miss)``
    except with probability ``miss`` (DKWM again), so ``D = t(alpha) + t(miss)`` suffices.
    """
    return dkwm_threshold(n, alpha) + dkwm_threshold(n, miss)


def ks_continuous(sorted_x: np.ndarray, cdf_sorted: np.ndarray) -> np.ndarray:
    """K-S distance per column of ``(n, m)`` sorted values given the CDF at those values."""
    n = sorted_x.shape[0]
    # d = F(x_(i)) - i/n: D+ = max(-d), D- = max(d) + 1/n (one pass over the values).
    d = cdf_sorted - (np.arange(1, n + 1, dtype=np.float64) / n)[:, None]
    return np.maximum(-d.min(axis=0), d.max(axis=0) + 1.0 / n)


def ks_integer(x: np.ndarray, cdf, cdf_all=None) -> np.ndarray:  # type: ignore[no-untyped-def]
    """K-S distance per column of integer-valued ``(n, m)`` samples.

    Both the empirical and the reference CDF are right-continuous steps that jump only at
    integers, so the supremum is attained on the integers from ``min - 1`` to ``max``: there
    ``|F_n(k) - P(X <= k)|`` covers the right limits and, at ``k - 1``, the left limits
    ``P(X < k)``. ``cdf(k, column)`` returns ``P(X <= k)`` for an integer array ``k``;
    ``cdf_all(k[:, None])``, when given, the same for every column at once.
    """
    n, m = x.shape
    out = np.empty(m)
    # Each column contiguous (Fortran order): searchsorted reads one column at a time.
    xs = np.array(x, order="F")
    xs.sort(axis=0)
    lo, hi = int(xs[0].min()) - 1, int(xs[-1].max())
    if hi - lo <= 20_000 and cdf_all is not None:
        # All columns at once on a shared integer grid (one vectorised CDF call).
        k = np.arange(lo, hi + 1, dtype=np.float64)
        fn = np.stack([np.searchsorted(xs[:, j], k, side="right") for j in range(m)], 1) / n
        return np.max(np.abs(fn - cdf_all(k[:, None])), axis=0)
    for j in range(m):
        col = xs[:, j]
        lo, hi = int(col[0]) - 1, int(col[-1])
        if hi - lo > 2_000_000:
            # A heavy-tailed column: test at the observed values and their left neighbours.
            k = np.unique(np.concatenate([col, col - 1.0]))
        else:
            k = np.arange(lo, hi + 1, dtype=np.float64)
        fn = np.searchsorted(col, k, side="right") / n
        out[j] = np.max(np.abs(fn - cdf(k, j)))
    return out


def z_threshold(alpha: float) -> float:
    """Two-sided z threshold for false-failure probability ``alpha``."""
    return norm_isf(alpha / 2.0)


def z_detectable(se: float, alpha: float, miss: float = MISS_RATE) -> float:
    """Smallest true mean offset detected w.p. >= ``1 - miss`` by a z-test with this ``se``."""
    return (z_threshold(alpha) + norm_isf(miss)) * se


@dataclass(frozen=True)
class ZTest:
    """A z-test result: ``|z| = |estimate - expected| / se`` against ``threshold``."""

    z: float
    threshold: float
    se: float
    detectable: float

    @property
    def ok(self) -> bool:
        return bool(abs(self.z) <= self.threshold)


def z_test(estimate: float, expected: float, se: float, alpha: float) -> ZTest:
    """Two-sided z-test of ``estimate`` (a mean of independent terms) against ``expected``."""
    z = (estimate - expected) / se if se > 0 else (0.0 if estimate == expected else math.inf)
    return ZTest(float(z), z_threshold(alpha), float(se), z_detectable(se, alpha))


def seed_for(check_id: str, salt: int = 0) -> int:
    """A 63-bit seed derived from a check id (and ``salt`` for ``--vary-seed`` runs)."""
    h = hashlib.sha256(f"{check_id}#{salt}".encode()).digest()
    return int.from_bytes(h[:8], "little") >> 1


# ---------------------------------------------------------------------- the tests the checks run
@dataclass(frozen=True)
class ColumnTest:
    """A test applied to each of ``m`` columns at ``alpha`` per column.

    ``estimate`` and ``deviation`` (estimate minus its value under H0) per column;
    ``threshold`` per column on the deviation's side; ``ratio = |deviation| / threshold``
    (> 1 fails); ``statistic`` is what the report prints (|deviation|, or |z|).
    """

    estimate: np.ndarray
    deviation: np.ndarray
    threshold: np.ndarray
    statistic: np.ndarray
    detectable: float
    alpha: float

    @property
    def ratio(self) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(self.threshold > 0, np.abs(self.deviation) / self.threshold,
                            np.where(self.deviation == 0, 0.0, np.inf))

    @property
    def worst(self) -> int:
        """Index of the column closest to (or furthest beyond) its threshold."""
        r = np.where(np.isfinite(self.ratio), self.ratio, np.inf)
        return int(np.argmax(r))

    @property
    def ok(self) -> bool:
        return bool(np.all(self.ratio <= 1.0))


def pit_mean_test(zeta: np.ndarray, alpha: float) -> ColumnTest:
    """Normal scores ``zeta`` (n, m) of the reference law are exactly N(0, 1): their column sums
    are exactly N(0, n). Two-sided at ``alpha`` per column."""
    n = zeta.shape[0]
    est = zeta.mean(axis=0)
    thr = z_threshold(alpha) / math.sqrt(n)
    return ColumnTest(est, est, np.full_like(est, thr), np.abs(est),
                      z_detectable(1 / math.sqrt(n), alpha), alpha)


def pit_var_bounds(n: int, alpha: float) -> tuple[float, float]:
    """Two-sided bounds on ``mean(zeta^2)``: ``sum zeta^2`` is exactly chi-square(n)."""
    from scipy import stats as sstats

    return (float(sstats.chi2.ppf(alpha / 2, n)) / n, float(sstats.chi2.isf(alpha / 2, n)) / n)


def pit_var_detectable(n: int, alpha: float, miss: float = MISS_RATE) -> float:
    """Smallest ``|E zeta^2 - 1|`` detected w.p. >= ``1 - miss`` (normal approximation of the
    chi-square at these n: ``sd(mean zeta^2) = sqrt(2/n)``)."""
    return z_detectable(math.sqrt(2.0 / n), alpha, miss)


def pit_var_test(zeta: np.ndarray, alpha: float) -> ColumnTest:
    """``mean(zeta^2)`` per column against the exact chi-square(n)/n bounds."""
    n = zeta.shape[0]
    est = (zeta * zeta).mean(axis=0)
    lo, hi = pit_var_bounds(n, alpha)
    dev = est - 1.0
    thr = np.where(dev > 0, hi - 1.0, 1.0 - lo)
    return ColumnTest(est, dev, thr, np.abs(dev), pit_var_detectable(n, alpha), alpha)


def mean_z_test(samples: np.ndarray, expected: np.ndarray | float, alpha: float,
                exact_tol: float = 1e-9) -> ColumnTest:
    """z-test that the mean of ``samples`` (m, ...) along axis 0 equals ``expected``.

    The standard error is estimated from the samples; the threshold adds a Cornish-Fisher
    correction for the samples' skewness (the mean's quantile moves by
    ``skew (z^2 - 1) / (6 sqrt m)``). A zero standard error (below ``exact_tol / 10``
    relative) passes only an exact match (within ``exact_tol`` relative: float64 rounding by
    default; samples computed in float32 need about 1e-5).
    ``statistic`` is |z|; ``deviation`` is z, so ``ratio = |z| / threshold``.
    """
    m = samples.shape[0]
    mean = samples.mean(0)
    sd = samples.std(0, ddof=1) if m > 1 else np.zeros_like(mean)
    se = sd / math.sqrt(m)
    zt = z_threshold(alpha)
    expected = np.broadcast_to(np.asarray(expected, dtype=np.float64), mean.shape)
    with np.errstate(divide="ignore", invalid="ignore"):
        skew = np.where(sd > 0, ((samples - mean) ** 3).mean(0) / sd ** 3, 0.0)
        thr = zt + np.abs(skew) * (zt * zt - 1) / (6 * math.sqrt(m))
        exact = se <= 0.1 * exact_tol * (1 + np.abs(expected))
        close = np.abs(mean - expected) <= exact_tol * (1 + np.abs(expected))
        z = np.where(exact, np.where(close, 0.0, np.inf),
                     (mean - expected) / np.where(exact, 1.0, se))
    return ColumnTest(np.asarray(mean), np.asarray(z), np.asarray(thr), np.abs(z),
                      z_detectable(1.0, alpha) / math.sqrt(m), alpha)


#: The largest z the exact count tests report: the normal quantile of a tail probability of
#: 1e-300 (smaller ones are floored there, near the end of double precision).
Z_MAX = norm_isf(1e-300)


def z_text(z: float) -> str:
    """``"z = 6.3"``; at :data:`Z_MAX`, ``"z > 36: a tail probability below 1e-300"`` (a count
    so far from its law that its tail probability underflows: "z = 36.3" read as measured)."""
    if z >= Z_MAX - 1e-6:
        return "z > 36: a tail probability below 1e-300"
    return f"z = {z:.3g}"


def sum_tail_test(sums: np.ndarray, law: object, alpha: float, n: int) -> ColumnTest:
    """Column sums of ``n`` integer draws against their exact law (``law.cdf``/``law.sf``, e.g.
    Binomial(n k, p) for Binomial(k, p) draws): fails when either tail probability of the
    observed sum is below ``alpha / 2``. ``statistic`` is the equivalent normal quantile."""
    lower = np.asarray(law.cdf(sums), dtype=np.float64)  # type: ignore[attr-defined]
    upper = np.asarray(law.sf(sums - 1), dtype=np.float64)  # type: ignore[attr-defined]
    tail = np.minimum(lower, upper)
    zs = np.array([norm_isf(min(max(float(t), 1e-300), 0.5)) for t in tail])
    thr = np.full_like(zs, z_threshold(alpha))
    mean = np.asarray(law.mean(), dtype=np.float64)  # type: ignore[attr-defined]
    return ColumnTest(sums.astype(np.float64), np.where(sums >= mean, zs, -zs), thr, zs,
                      z_detectable(1 / math.sqrt(n), alpha), alpha)


def binomial_count_test(k: np.ndarray, n: int, p: np.ndarray, alpha: float) -> ColumnTest:
    """Counts ``k`` of ``n`` draws, each against its exact Binomial(n, p) law, two-sided at
    ``alpha`` each (as :func:`sum_tail_test`): ``statistic`` is the normal quantile of the
    smaller tail probability, ``deviation`` that quantile signed (negative for too few),
    ``estimate`` the observed over the expected count, ``detectable`` the smallest relative
    deficit of the count with the largest ``p`` found with probability ``1 - MISS_RATE``."""
    from scipy import special

    k = np.asarray(k, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    lower = special.bdtr(k, n, p)  # P(X <= k)
    upper = np.where(k > 0, special.bdtrc(np.maximum(k - 1, 0), n, p), 1.0)  # P(X >= k)
    tail = np.minimum(lower, upper)
    zs = np.array([norm_isf(min(max(float(t), 1e-300), 0.5))
                   for t in tail.ravel()]).reshape(tail.shape)
    sign = np.where(k < n * p, -1.0, 1.0)
    return ColumnTest(k / (n * p), sign * zs, np.full_like(zs, z_threshold(alpha)), zs,
                      _tail_detectable(n, alpha, float(p.max())), alpha)


def score_tail_counts(zeta: np.ndarray, counts: tuple[int, ...] = TAIL_COUNTS
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per column of normal scores (n rows), the draws below the reference's ``p``-quantile
    and above its ``(1 - p)``-quantile for ``n p`` each of ``counts``: the counts, their
    probabilities ``p`` and whether each is an upper tail, each ``(2 len(counts), m)``."""
    n, m = zeta.shape
    ks, ps, up = [], [], []
    for c in counts:
        p = min(c / n, 0.5)
        q = norm_isf(p)  # the p-quantile of the scores is -q, the (1 - p)-quantile q
        ks += [(zeta < -q).sum(axis=0), (zeta > q).sum(axis=0)]
        ps += [np.full(m, p), np.full(m, p)]
        up += [np.zeros(m, bool), np.ones(m, bool)]
    return np.stack(ks), np.stack(ps), np.stack(up)


def tail_count_test(zeta: np.ndarray, alpha: float,
                    counts: tuple[int, ...] = TAIL_COUNTS) -> ColumnTest:
    """Per column of normal scores ``zeta = Phi^-1(F(x))`` (n rows), the number of draws below
    the reference's ``p``-quantile and above its ``(1 - p)``-quantile, for ``n p`` each of
    ``counts``, against their exact Binomial(n, p) law (:func:`binomial_count_test`): each of
    the ``2 len(counts)`` counts at ``alpha / (2 len(counts))``. Under the reference the counts
    are exactly binomial whatever the law (the scores are exactly N(0, 1)).

    The column's worst count gives ``statistic``, ``deviation`` and ``estimate``;
    ``detectable``: the smallest relative deficit of the tail beyond the largest level's
    quantile (``counts[-1] / n`` of mass) found with probability ``1 - MISS_RATE``.
    """
    n, m = zeta.shape
    k, p, _ = score_tail_counts(zeta, counts)
    t = binomial_count_test(k, n, p, alpha / (2 * len(counts)))  # (2 len(counts), m)
    w = np.argmax(t.statistic, axis=0)
    col = np.arange(m)
    return ColumnTest(t.estimate[w, col], t.deviation[w, col], t.threshold[w, col],
                      t.statistic[w, col], t.detectable, alpha)


@functools.lru_cache(maxsize=256)
def _tail_detectable(n: int, a: float, p: float) -> float:
    """The relative deficit ``r`` of a tail of mass ``p`` that its count, tested two-sided at
    ``a``, finds with probability ``1 - MISS_RATE``: the count must fall to ``crit``, the
    largest ``k`` with ``P(X <= k) < a / 2``, bisected on ``P(Bin(n, p (1 - r)) <= crit)``."""
    from scipy import special

    lo_k, hi_k = -1, int(n * p)  # P(X <= lo_k) < a / 2 <= P(X <= hi_k)
    while hi_k - lo_k > 1:
        mid = (lo_k + hi_k) // 2
        if special.bdtr(mid, n, p) < a / 2:
            lo_k = mid
        else:
            hi_k = mid
    crit = lo_k
    if crit < 0:
        return 1.0  # even an empty tail is no evidence at this n
    lo, hi = 0.0, 1.0
    for _ in range(50):
        r = (lo + hi) / 2
        if special.bdtr(crit, n, p * (1 - r)) >= 1 - MISS_RATE:
            hi = r
        else:
            lo = r
    return hi


#: The centred PIT values the independence check multiplies lie in [-1/2, 1/2] with variance
#: at most 1/12 (exactly 1/12 for a continuous law, ``(1 - sum p^3) / 12`` for the mid-PIT of a
#: discrete one): a product of two independent ones is bounded by 1/4, with variance <= 1/144.
PIT_PRODUCT_BOUND = 0.25
PIT_PRODUCT_VAR = 1.0 / 144.0


def product_mean_threshold(k: int, alpha: float) -> float:
    """Bernstein's two-sided bound on the mean of ``k`` independent zero-mean terms bounded by
    :data:`PIT_PRODUCT_BOUND` with variance at most :data:`PIT_PRODUCT_VAR`:
    ``P(|sum| >= s) <= 2 exp(-(s^2 / 2) / (k var + M s / 3))``, solved for ``s`` at ``alpha``.
    Exact for every ``k`` (no normal approximation)."""
    lg = math.log(2.0 / alpha)
    c = lg * PIT_PRODUCT_BOUND / 3.0
    return (c + math.sqrt(c * c + 2.0 * lg * k * PIT_PRODUCT_VAR)) / k


def product_mean_test(a: np.ndarray, b: np.ndarray, alpha: float) -> ColumnTest:
    """Independence of paired centred PIT values, per column of ``a`` and ``b`` (k, m).

    Under independence with the reference marginals each ``a_i`` and ``b_i`` has mean 0, so
    their product has mean 0, and the ``k`` pairs are independent of one another: the mean
    product stays within :func:`product_mean_threshold`. ``estimate`` is the mean product
    times 12, the correlation of the two PIT values for a continuous law (sorted draws give
    about 1 between neighbours, antithetic pairs -1); ``detectable`` is that correlation.
    """
    k = a.shape[0]
    est = 12.0 * (a * b).mean(axis=0)
    thr = 12.0 * product_mean_threshold(k, alpha)
    detectable = thr + 12.0 * norm_isf(MISS_RATE) * math.sqrt(PIT_PRODUCT_VAR / k)
    return ColumnTest(est, est, np.full_like(est, thr), np.abs(est), detectable, alpha)


def two_sample_z_test(a: np.ndarray, b: np.ndarray, var: float, n_a: int, n_b: int,
                      alpha: float) -> ColumnTest:
    """Two independent means of terms with known variance ``var`` (exact for normal terms)."""
    se = math.sqrt(var / n_a + var / n_b)
    z = (np.asarray(a) - np.asarray(b)) / se
    thr = np.full_like(z, z_threshold(alpha))
    return ColumnTest(z, z, thr, np.abs(z), z_detectable(se, alpha), alpha)


def paired_t_test(a: np.ndarray, b: np.ndarray, alpha: float,
                  exact_tol: float = 1e-9) -> ColumnTest:
    """Paired samples ``a`` and ``b`` (k, ...) of the same mean, per column: the one-sample t
    of the differences ``a - b`` against Student's t quantile with ``k - 1`` degrees of
    freedom (with k = 64 the normal quantile would be far too small at the suite's alpha: t_63
    exceeds 7 with probability 6e-10, a normal 3e-12). The pairs need only be independent of
    each other; within a pair ``a`` and ``b`` may be equal, correlated or independent. A mean
    difference within ``exact_tol`` (relative to the larger mean) is rounding and passes:
    where every pair is equal up to rounding the t statistic would judge rounding noise.
    ``statistic`` is |t|; ``detectable`` the larger of the t-test's reach (its threshold times
    the standard error) and that tolerance, in the columns' units."""
    from scipy import stats as sstats

    k = a.shape[0]
    d = a - b
    md = d.mean(0)
    se = d.std(0, ddof=1) / math.sqrt(k)
    scale = 1 + np.maximum(np.abs(a.mean(0)), np.abs(b.mean(0)))
    with np.errstate(divide="ignore", invalid="ignore"):
        rounding = np.abs(md) <= exact_tol * scale
        t = np.where(rounding, 0.0, np.where(se > 0, md / np.where(se > 0, se, 1.0), np.inf))
    thr = np.full(md.shape, float(sstats.t.isf(alpha / 2, k - 1)))
    # The smallest mean difference judged: the t-test's reach at this spread, never below the
    # tolerance that passes as rounding (a correct backend's near-equal pairs had a tiny
    # spread, and the report claimed a power the tolerance does not allow).
    det = float(np.max(np.maximum(thr * se, exact_tol * scale))) if se.size else 0.0
    return ColumnTest(np.asarray(md), np.asarray(t), thr, np.abs(t), det, alpha)


#: The longest window of consecutive rows the repeat check compares (:func:`repeat_window`).
REPEAT_MAX_WINDOW = 256


def repeat_bound(n: int, k: int, q: float, p: float) -> float:
    """An upper bound on the expected number of pairs of equal windows of ``k`` consecutive
    rows among ``n`` independent, identically distributed rows, where ``q = P(row = row')``
    for two independent rows (the collision probability, ``sum_r P(r)^2``) and ``p`` bounds
    ``max_r P(r)``.

    Of the ``N = n - k + 1`` windows, a pair at distance ``d >= k`` shares no row: equal with
    probability ``q^k``. A pair at distance ``d < k`` is equal when rows ``d`` apart agree
    along the span, ``k`` equalities of a row with an earlier drawn one: probability at most
    ``p^k``. So ``E[pairs] <= C(N, 2) q^k + N (k - 1) p^k``; by Markov's inequality this also
    bounds the probability that any window repeats.
    """
    N = n - k + 1
    if N < 2:
        return 0.0
    return N * (N - 1) / 2.0 * q ** k + N * (k - 1) * p ** k


def repeat_window(n: int, q: float, p: float, alpha: float,
                  kmax: int = REPEAT_MAX_WINDOW) -> int | None:
    """The shortest window (1 to ``kmax`` rows) whose repetition anywhere among ``n``
    independent rows has probability at most ``alpha`` (:func:`repeat_bound`), or None when
    even ``kmax`` rows carry too little entropy (a law with most of its mass on one value)."""
    for k in range(1, kmax + 1):
        if n - k + 1 < 2:
            return None
        if repeat_bound(n, k, q, p) <= alpha:
            return k
    return None


#: The rolling hash's base (odd, so invertible modulo 2^64) and its inverse.
_ROLL_BASE = np.uint64(0xD1B54A32D192ED03)
_ROLL_INVERSE = np.uint64(pow(0xD1B54A32D192ED03, -1, 1 << 64))


def _mix64(z: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser, elementwise on ``uint64`` (wrapping arithmetic)."""
    z = z ^ (z >> np.uint64(30))
    z = z * np.uint64(0xBF58476D1CE4E5B9)
    z = z ^ (z >> np.uint64(27))
    z = z * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def repeated_windows(rows: np.ndarray, k: int) -> tuple[int, tuple[int, int] | None]:
    """How many windows of ``k`` consecutive rows of ``rows`` (``(n, m)``, in the order drawn)
    repeat an earlier window exactly (the number of windows minus the number of distinct ones;
    values compared bit for bit, ``-0.0`` read as ``0.0``), and the starting rows ``(i, j)``,
    ``i < j``, of the first repeat (the equal pair with the smallest ``j``; None when no window
    repeats).

    Windows are hashed (SplitMix64's finaliser over each row's values, then a rolling
    polynomial hash over ``k`` rows) and sorted; windows of equal hash are compared value by
    value, and a group whose hashes collide is counted by its windows' values, so the count
    is exact whatever the hash does.
    """
    x = np.array(rows, dtype=np.float64, order="C", copy=True).reshape(rows.shape[0], -1)
    x += 0.0  # -0.0 -> 0.0: equal values, equal bits
    n, m = x.shape
    N = n - k + 1
    if N < 2:
        return 0, None
    bits = x.view(np.uint64)
    with np.errstate(over="ignore"):
        h = np.zeros(n, dtype=np.uint64)
        for j in range(m):
            h = _mix64(h * np.uint64(0x9E3779B97F4A7C15) + bits[:, j])
        if k == 1:
            w = h
        else:
            # Rolling polynomial hash, O(n) for any k (uint64 arithmetic wraps modulo 2^64):
            # with B odd, w_i = sum_t h_{i+t} B^-t = (S_{i+k} - S_i) B^i, S the prefix sums of
            # h_s B^-s.
            base = np.full(n, _ROLL_BASE, dtype=np.uint64)
            base[0] = 1
            power = np.cumprod(base)
            base[1:] = _ROLL_INVERSE
            inverse = np.cumprod(base)
            prefix = np.zeros(n + 1, dtype=np.uint64)
            np.cumsum(h * inverse, out=prefix[1:])
            w = _mix64((prefix[k:] - prefix[:N]) * power[:N])
    ws = np.sort(w)  # twice as fast as an argsort; most draws have no equal hashes
    if not np.any(ws[1:] == ws[:-1]):
        return 0, None
    order = np.argsort(w, kind="stable")  # equal hashes in row order
    ws = w[order]
    same = np.flatnonzero(ws[1:] == ws[:-1])
    a, b = order[same], order[same + 1]
    equal = np.ones(len(same), dtype=bool)
    for t in range(k):
        equal &= np.all(bits[a + t] == bits[b + t], axis=1)
    # Runs of equal hashes: where every neighbour pair in a run is equal, the run is one
    # window repeated; a run with an unequal pair (a hash collision) is counted by its values.
    starts = np.flatnonzero(np.diff(np.concatenate([[False], ws[1:] == ws[:-1], [False]])
                                    .astype(np.int8)) == 1)
    bad = set(np.searchsorted(starts, same[~equal], side="right") - 1)
    count = int(equal.sum())
    firsts: list[tuple[int, int]] = []
    if len(a):
        # within a run of equal windows, order is by row: the first pair is the first repeat
        first_of_run = np.isin(same, starts)
        ok = first_of_run & equal
        firsts = list(zip(a[ok].tolist(), b[ok].tolist()))
    for r in bad:
        lo = starts[r]
        hi = lo
        while hi + 1 < len(ws) and ws[hi + 1] == ws[lo]:
            hi += 1
        members = np.sort(order[lo:hi + 1])
        inrun = (same >= lo) & (same < hi)
        count -= int(equal[inrun].sum())
        firsts = [f for f in firsts if f[0] not in set(members.tolist())]
        content = np.stack([bits[members + t] for t in range(k)], 1).reshape(len(members), -1)
        _, first, inv = np.unique(content, axis=0, return_index=True, return_inverse=True)
        inv = inv.reshape(-1)
        count += len(members) - len(first)
        for g in range(len(first)):
            idx = members[inv == g]
            if len(idx) > 1:
                firsts.append((int(idx[0]), int(idx[1])))
    if count == 0:
        return 0, None
    i, j = min(firsts, key=lambda f: f[1])
    return count, (int(i), int(j))
