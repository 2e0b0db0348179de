"""The sweep: samplers judged across whole parameter ranges, not only at the grid points.

The grids judge a few points per family; a sampler wrong only between them (an algorithm
switched on for rates in [4, 10), a branch for concentrations above 50) passed every check.
``sample_sweep`` draws once at each of :data:`..cases.SWEEP_SIZES` parameter points spread over
the family's sweep ranges (``Case.sweep``, :func:`..cases.sweep_params`: a Latin hypercube,
one point in each slice of each range), one value per point, and maps each value ``x`` to its
randomized probability integral transform under the reference law of its own point:

    u = F(x_lo) + V (F(x_hi) - F(x_lo)),   V ~ Uniform(0, 1) independent,

where ``[x_lo, x_hi]`` is the cell ``x`` stands for: ``[x - 1, x]`` for counts (``F(x_lo)`` is
``P(X < x)``), for continuous values the floats within :data:`CELL_SPACINGS` (2) spacings of
``x``, which hold every value that rounds to ``x``. For counts ``u`` is then exactly
Uniform(0, 1) under the reference, whatever the points; for continuous values too, up to the
mass of a cell, negligible except where draws pile up on a float at the end of the support:
a RelaxedBernoulli at temperature 0.1 puts 2.5% of its draws within 2^-52 of 1, which TFP
rounds to 1.0 and torch clamps to ``1 - 2^-52`` (to stay inside the open support): either
stands for the values up to the end (a cell reaching past the end of the support ends at the
end: :func:`_end_at_support`; so does a value rounded to the largest float below 1). ``1 - u`` is computed from the survival function
(accurate in the upper tail), and the normal scores ``zeta = Phi^-1(u)`` are N(0, 1).

The draws are then cut into :data:`BANDS` bands of equal counts along each swept parameter
(the points whose concentration, say, lies in one eighth of its range's points), plus the
whole sweep, and each band is tested three ways: K-S of ``u`` against the uniform law (DKWM),
the mean of ``zeta`` (location) and the mean of ``zeta^2`` (scale) against their exact laws,
at ``ALPHA_SWEEP`` split over every test. A band's tests see only its own points: a sampler
wrong in one band is judged by the band's draws, not diluted by the whole range.

Power (quick mode, 2^18 draws; two swept parameters: 17 bands, 51 tests, z = 7.8): a band of
2^15 draws detects a scale error over the whole band of 4.2% (``E zeta^2 - 1`` 0.085), a
location shift of 6% of a standard deviation and a K-S distance of 0.033; full mode (2^20)
half of each. An error confined to part of a band is diluted by the part's share. The
error in a band is found wherever the band lies: no grid point needs to fall in it.

The multivariate families are swept too: their ``Case.sweep`` keys name elements of vector
and matrix parameters (``concentration[0]``, ``scale_tril[1,0]``; :func:`..cases.sweep_key`),
the other elements keep their example values; a parameter torch takes as one Python number
for the whole batch (Multinomial's ``total_count``) takes ``cases.INT_SWEEP_LEVELS`` whole
values, each value's points drawn in a call of their own (:func:`..cases.sweep_groups`).
Each value is mapped, for each statistic of the
draw with a known law (the grids' projections: marginals, sums of components, axis and random
projections, correlations; :func:`..cases.projections`), to that statistic's randomized PIT
under its own point's law (:func:`projection_pit`), and every statistic is tested in every
band of every swept element (the tests split ``ALPHA_SWEEP`` over bands and statistics). They
draw :data:`MULTIVARIATE_REPEATS` values at each of ``SWEEP_SIZES_MULTIVARIATE / R`` points
(the sample shape ``(R,)`` over the batch of points): a backend that draws one point at a time
pays per point. Where ``u <= 1 - COARSE``, ``1 - u`` is taken from the CDF (its absolute error,
about 1e-16, is a relative error of at most 1e-13 there); the upper tail's values are coarse,
and their cells evaluate the survival function (SciPy's Beta ``sf`` costs nine times its
``cdf``: it took most of a Dirichlet sweep's time when computed everywhere).

``grad_sweep`` (the gradient layer) is ``grad_cdf``'s per-sample identity at the 32 points
of the ``sweep`` grid (``grids.SWEEP_GRID_POINTS``), two samples each: a pathwise gradient
wrong by more than ``GRAD_RTOL`` anywhere in a slice 1/32 of a range wide is met by a sample.
For the multivariate families it is ``grad_mean``'s identity in these bands, at 4,096 points
of the same ranges (``layers/gradient.py``: ``_grad_mean_sweep``), or ``grad_noise``'s
invariance at 32 points of them.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np
import torch
from scipy import special

from ...core.backend import FamilySupport
from ...core.families import FAMILIES
from .. import cases
from ..model import Check, CheckFailure, Outcome
from ..reference import fast_cdf, params_np
from ..runner import Runner, Target, make
from ..stats import (
    ALPHA_SWEEP,
    dkwm_detectable,
    dkwm_threshold,
    ks_continuous,
    pit_mean_test,
    pit_var_test,
    seed_for,
)

__all__ = ["checks", "BANDS", "MULTIVARIATE_REPEATS", "randomized_pit", "projection_pit"]

#: Bands of equal counts along each swept parameter.
BANDS = 8
#: Values a multivariate family's sweep draws at each of its points (see :func:`_sample_sweep`).
MULTIVARIATE_REPEATS = 16
#: A continuous value stands for the values within this many float spacings of it.
CELL_SPACINGS = 2
#: Where ``u`` or ``1 - u`` is below this, a continuous value's cell is evaluated (see
#: :func:`randomized_pit`), even where it was drawn once: the ends of a support.
COARSE = 1e-3


def checks(t: Target, family: str, support: FamilySupport) -> Iterator[Check]:
    c = cases.CASES[family]
    if c.sweep is None or (c.law is None and c.project is None):
        return
    yield Check(t.name, family, "sweep", "sample_sweep", "sampler", True,
                lambda r: _sample_sweep(r, t, family))


def _cells(x: np.ndarray, discrete: bool, spacings: int = CELL_SPACINGS
           ) -> tuple[np.ndarray, np.ndarray]:
    """The ends of the cell each value stands for (see the module docstring)."""
    if discrete:
        return x - 1.0, x
    lo, hi = x, x
    for _ in range(spacings):
        lo, hi = np.nextafter(lo, -np.inf), np.nextafter(hi, np.inf)
    return lo, hi


def randomized_pit(law_of: Callable[[Mapping[str, np.ndarray]], Any],
                   p: Mapping[str, np.ndarray], x: np.ndarray, discrete: bool,
                   v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``u`` and ``1 - u`` (each computed where it is accurate) of the randomized PIT of ``x``
    under the reference laws ``law_of(p)`` (one point per value), with the uniforms ``v``.

    A continuous value's cell has a mass that matters only where draws pile up on a float:
    there (a value drawn more than once, or ``u`` or ``1 - u`` below :data:`COARSE`, or not
    finite) the cell is evaluated, elsewhere ``u = F(x)`` (a value drawn once stands for a
    cell of mass below about 1/n): two evaluations of the reference instead of four."""
    with np.errstate(all="ignore"):
        if discrete:
            return _cell_pit(law_of(p), x, True, v)
        law = law_of(p)
        u = np.array(fast_cdf(law, x), np.float64)
        w = 1.0 - u  # accurate where used (not coarse): see the module docstring
        tied = _tied(x)
        coarse = np.flatnonzero(~(np.minimum(u, w) >= COARSE) | tied)
        if coarse.size:
            sub = law_of({k: a[coarse] for k, a in p.items()})
            u[coarse], w[coarse] = _cell_pit(sub, x[coarse], False, v[coarse])
    return u, w


def _tied(x: np.ndarray) -> np.ndarray:
    """Which values of ``x`` are drawn more than once."""
    xs = np.sort(x)
    repeated = xs[1:][xs[1:] == xs[:-1]]
    if not repeated.size:
        return np.zeros(x.size, bool)
    return np.isin(x, repeated)


def _cell_pit(law: Any, x: np.ndarray, discrete: bool, v: np.ndarray,
              spacings: int = CELL_SPACINGS) -> tuple[np.ndarray, np.ndarray]:
    lo, hi = _cells(x, discrete, spacings)
    if discrete:
        a, b = law.cdf(lo), law.cdf(hi)
    else:
        a, b = fast_cdf(law, lo), fast_cdf(law, hi)
    a, b = np.array(a, np.float64), np.array(b, np.float64)
    c, d = _sf(law, hi, b), _sf(law, lo, a)
    a, b, c, d = (np.array(e, np.float64) for e in (a, b, c, d))
    if not discrete:
        _end_at_support(law, x, spacings, a, b, c, d)
    return a + v * (b - a), c + (1.0 - v) * (d - c)


def _end_at_support(law: Any, x: np.ndarray, spacings: int, a: np.ndarray, b: np.ndarray,
                    c: np.ndarray, d: np.ndarray) -> None:
    """Cell ends past the end of the support (``1 + 2^-23`` for a float32 value of
    ``1 - 2^-24`` in (0, 1)), where a closed form is NaN, moved back one spacing at a time to
    the last float where the law is defined: the support's end itself (``1.0``, where
    ``F = 1``) when it is a float, else the value. Not the value at once: a float32
    RelaxedBernoulli at temperature 0.12 drawn by rounding to the largest float below 1
    holds 15% of its draws there, standing for the law's mass up to 1, and a cell ending
    at the value left that mass out (the sweep failed a correct sampler)."""
    sf = getattr(law, "sf", lambda y: 1.0 - np.asarray(law.cdf(y), np.float64))
    for e, fn, toward in ((a, law.cdf, np.inf), (b, law.cdf, -np.inf), (c, sf, -np.inf),
                          (d, sf, np.inf)):
        nan = np.isnan(e) & np.isfinite(x)
        end = x.copy()
        for _ in range(spacings):
            end = np.nextafter(end, -toward)
        for _ in range(spacings):  # (the law is vectorised over every point: evaluated whole)
            if not nan.any():
                break
            end = np.nextafter(end, toward)
            got = np.asarray(fn(end), np.float64)
            fill = nan & ~np.isnan(got)
            e[fill] = got[fill]
            nan &= ~fill


def projection_pit(law: Any, x: np.ndarray, discrete: bool, v: np.ndarray, ulps: int = 1
                   ) -> tuple[np.ndarray, np.ndarray]:
    """:func:`randomized_pit` for a statistic of a multivariate draw (a
    :class:`..reference.Projection`: its law vectorised over the points, one value each).

    A continuous statistic computed from rounded parts (``Projection.ulps``) stands for that
    many more spacings either side."""
    m = x.size
    with np.errstate(all="ignore"):
        if discrete:
            return _cell_pit(law, x, True, v)
        u = np.array(fast_cdf(law, x), np.float64)
        w = 1.0 - u  # accurate where used (not coarse): see the module docstring
        tied = _tied(x)
        coarse = np.flatnonzero(~(np.minimum(u, w) >= COARSE) | tied)
        if coarse.size:
            u[coarse], w[coarse] = _cell_pit(_take(law, coarse, m), x[coarse], False,
                                             v[coarse], CELL_SPACINGS * ulps)
    return u, w


def _sf(law: Any, x: np.ndarray, cdf: np.ndarray) -> np.ndarray:
    """``law.sf(x)``, or ``1 - cdf`` for a law without one (ref.Categorical: its upper tail
    is the sum of the probabilities of the categories above, never tiny in the sweeps)."""
    if hasattr(law, "sf"):
        return np.array(law.sf(x), np.float64)
    return 1.0 - cdf


def _take(law: Any, idx: np.ndarray, m: int) -> Any:
    """The law of the points ``idx`` of ``law`` (vectorised over ``m`` points)."""
    from scipy import stats

    from ..reference import freeze

    def sub(a: Any) -> Any:
        return np.broadcast_to(a, (m,))[idx] if np.ndim(a) else a

    if isinstance(getattr(law, "dist", None), (stats.rv_continuous, stats.rv_discrete)):
        return freeze(law.dist, *map(sub, law.args), **{k: sub(a) for k, a in law.kwds.items()})
    out = copy.copy(law)
    for k, a in vars(law).items():
        if isinstance(a, np.ndarray) and a.ndim and a.shape[0] == m:
            setattr(out, k, a[idx])
    return out


def _fmt(v: float) -> str:
    return f"{v:.4g}"


def _sample_sweep(r: Runner, t: Target, family: str) -> Outcome:
    c = cases.CASES[family]
    assert c.sweep is not None
    multi = c.law is None
    sizes = cases.SWEEP_SIZES_MULTIVARIATE if multi else cases.SWEEP_SIZES
    n = sizes[0 if r.quick else 1]
    # A multivariate family draws MULTIVARIATE_REPEATS values at each of n / that many points
    # (the sample shape (R,) over the batch of points): a backend that draws one point at a
    # time (SciPy's multivariate laws take one covariance per call) pays per point, not per
    # value, and each band still holds thousands of points.
    reps = MULTIVARIATE_REPEATS if multi else 1
    points = n // reps
    seed = r.seed(f"{t.name}-{family}-sweep-sample_sweep")
    params = cases.sweep_params(family, points, torch.float64)
    spec = FAMILIES[family]
    shape = (reps,) if multi else ()
    # One call for the whole batch, or one per value of a parameter torch takes as a Python
    # number (Multinomial's total_count: cases.sweep_groups), the first with the check's seed.
    groups = cases.sweep_groups(family, params, points)
    parts = []
    seconds = 0.0
    for g, (idx, sub) in enumerate(groups):
        dist = make(family, sub, t, validate=False)
        event = tuple(dist.event_shape)
        t0 = time.perf_counter()
        xg = dist.sample(shape, seed=seed if not g else seed_for(f"{seed}-group-{g}"))
        seconds += time.perf_counter() - t0
        if tuple(xg.shape) != (*shape, idx.size, *event):
            raise CheckFailure(f"sample({shape}) of a batch of {idx.size} points returned "
                               f"shape {tuple(xg.shape)}, expected {(*shape, idx.size, *event)}",
                               n=n, seed=seed)
        parts.append(xg.detach().to("cpu", torch.float64))
    x = torch.empty((*shape, points, *event), dtype=torch.float64)
    for (idx, _), xg in zip(groups, parts):
        x[(slice(None),) * len(shape) + (torch.as_tensor(idx),)] = xg
    # Value i is the draw at point i % points (the sample dimension first).
    xn = x.reshape((n, *event)).numpy()
    numbers = {k: v for k, v in groups[0][1].items() if not isinstance(v, torch.Tensor)}
    ref_dist = getattr(torch.distributions, family)(**{**params, **numbers},
                                                   validate_args=False)
    # The parameters of each value (a multivariate family's scalars stay as they are:
    # LKJCholesky's dim; a swept Python number, each point's value).
    p = {k: (np.broadcast_to(v, (n,)) if not multi else
             np.tile(v, (reps,) + (1,) * (v.ndim - 1)) if np.ndim(v) else v)
         for k, v in params_np(ref_dist, spec.params).items()
         if k in spec.params and not (k == "logits" and "probs" in spec.params)}
    for k in numbers:
        if isinstance(params[k], torch.Tensor):
            p[k] = np.tile(params[k].double().numpy(), reps)
    # The uniforms of the randomization from a seed of their own: a backend that draws with
    # NumPy's generator seeded by the check's seed (numpy, the SciPy plugin) would otherwise
    # draw its Bernoulli values from these very uniforms.
    rng = np.random.default_rng(r.seed(f"{t.name}-{family}-sweep-sample_sweep-pit"))
    swept = {}
    for key in c.sweep:
        name, index = cases.sweep_key(key)
        element: tuple[Any, ...] = (slice(None), *(index or ()))
        swept[key] = p[name][element]
    shown = swept if c.law is None else {k: v for k, v in p.items() if np.ndim(v)}

    def at(i: int) -> str:
        return ", ".join(f"{k}={_fmt(float(v[i]))}" for k, v in shown.items())

    if c.law is not None:
        u, w = randomized_pit(c.law, p, xn, c.discrete, rng.random(n))
        statistics = [("value", xn, u, w)]
    else:
        # The draw's statistics with a known law (marginals, projections, correlations: the
        # grids' own), each judged like a univariate family's values.
        projs = cases.projections(family, p, xn[None], (n,), np.random.default_rng(
            r.seed(f"{family}-sweep-projections")))
        statistics = []
        for pr in projs:
            v = pr.values[0]
            u, w = projection_pit(pr.law, v, pr.discrete, rng.random(n), pr.ulps)
            statistics.append((pr.label, v, u, w))
    scores = []
    for label, v, u, w in statistics:
        with np.errstate(all="ignore"):
            scores.append(np.where(u < 0.5, special.ndtri(u), -special.ndtri(w)))
        bad = np.flatnonzero(~(np.isfinite(v) & (u > 0) & (w > 0) & np.isfinite(u)
                               & np.isfinite(w)))
        if bad.size:
            i = int(bad[0])
            what = "draws" if c.law is not None else f"draws' {label} statistics"
            bad_x = float(v[i])
            if not math.isfinite(bad_x):
                why = "not finite"
            elif not (math.isfinite(float(u[i])) and math.isfinite(float(w[i]))):
                why = "where the reference law's CDF is undefined (NaN): outside its support"
            else:
                side = "below" if float(u[i]) <= 0 else "above"
                why = (f"where the reference law puts no probability ({side} its support, or "
                       "so far in that tail that the law's probability of the value's cell "
                       "underflows to 0 in float64): a draw far off the law there, as from "
                       "wrong parameters")
            raise CheckFailure(
                f"{bad.size} of {n} sweep {what} are impossible under the reference law; the "
                f"first, {bad_x!r} at {at(i)}, lies {why}" if math.isfinite(bad_x) else
                f"{bad.size} of {n} sweep {what} are impossible under the reference law; the "
                f"first, {bad_x!r} at {at(i)}, is not finite", n=n, seed=seed, point=at(i),
                details={"outside": int(bad.size), "draw_seconds": round(seconds, 4)})
    bands: list[tuple[str, np.ndarray]] = [("the whole sweep", np.arange(n))]
    for k, v in swept.items():
        order = np.argsort(v, kind="stable")
        for b in range(BANDS):
            idx = order[b * n // BANDS:(b + 1) * n // BANDS]
            lo, hi = float(v[idx[0]]), float(v[idx[-1]])
            bands.append((f"{k} in [{_fmt(lo)}, {_fmt(hi)}]", idx))
    tests = 3 * len(bands) * len(statistics)
    alpha = ALPHA_SWEEP / tests
    worst: tuple[float, str, str, float, float, int] = (-1.0, "", "", 0.0, 0.0, 0)
    rows = []
    for band, idx in bands:
        m = idx.size
        thr = dkwm_threshold(m, alpha)
        row: dict[str, Any] = {}
        for (label, _, u, _), zeta in zip(statistics, scores):
            uu = np.sort(u[idx])
            ks = float(ks_continuous(uu[:, None], uu[:, None])[0])
            z = zeta[idx][:, None]
            mean, var = pit_mean_test(z, alpha), pit_var_test(z, alpha)
            where = band if c.law is not None else f"{band} ({label})"
            ratio_here = 0.0
            for what, stat, th in (("K-S distance of u", ks, thr),
                                   ("mean normal score", float(mean.deviation[0]),
                                    float(mean.threshold[0])),
                                   ("mean squared normal score - 1", float(var.deviation[0]),
                                    float(var.threshold[0]))):
                ratio = abs(stat) / th
                ratio_here = max(ratio_here, ratio)
                if ratio > worst[0]:
                    worst = (ratio, where, what, stat, th, m)
            if not row or ratio_here > row["ratio"]:
                row = {"band": band, "n": int(m), "ks": round(ks, 6),
                       "zeta_mean": round(float(mean.estimate[0]), 6),
                       "zeta_sq_mean": round(float(var.estimate[0]), 6),
                       "ratio": ratio_here}
                if c.law is None:
                    row["statistic"] = label
        row["ratio"] = round(row["ratio"], 4)
        rows.append(row)
    ratio, label, what, stat, th, m = worst
    out = Outcome(statistic=abs(stat), threshold=th, n=n, seed=seed, alpha=alpha,
                  detectable=dkwm_detectable(n // BANDS, alpha), point=f"sweep: {label}",
                  details={"bands": rows, "draw_seconds": round(seconds, 4),
                           "ranges": {k: list(v) for k, v in c.sweep.items()},
                           **({} if c.law is not None else
                              {"statistics": [s[0] for s in statistics]})})
    per = "" if c.law is not None else f" of each of {len(statistics)} statistics of the draws"
    each = ("one at each of as many parameter points of the sweep" if reps == 1 else
            f"{reps} at each of {m // reps} parameter points of the sweep")
    if ratio > 1:
        raise CheckFailure(
            f"the draws at {label} ({m} draws, {each}) are off their laws: {what} {stat:.4g} beyond {th:.4g} (alpha_i = "
            f"{alpha:.2g} per test, {tests} tests: K-S, mean and mean square of the normal "
            f"scores of the randomized PIT{per} in each band)", out)
    out.message = (f"{len(bands)} bands of the sweep{per} within their laws: worst {what} "
                   f"{stat:.3g} at {label} ({ratio:.2f} of its threshold)")
    return out
