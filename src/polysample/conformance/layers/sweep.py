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
stands for the values up to the end. ``1 - u`` is computed from the survival function
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

``grad_sweep`` (the gradient layer) is ``grad_cdf``'s per-sample identity at the 32 points
of the ``sweep`` grid (``grids.SWEEP_GRID_POINTS``), two samples each: a pathwise gradient
wrong by more than ``GRAD_RTOL`` anywhere in a slice 1/32 of a range wide is met by a sample.
"""

from __future__ import annotations

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
)

__all__ = ["checks", "BANDS", "randomized_pit"]

#: Bands of equal counts along each swept parameter.
BANDS = 8
#: A continuous value stands for the values within this many float spacings of it.
CELL_SPACINGS = 2
#: Where ``u`` or ``1 - u`` is below this, a continuous value's cell is evaluated (see
#: :func:`randomized_pit`), even where it was drawn once: the ends of a support.
COARSE = 1e-3


def checks(t: Target, family: str, support: FamilySupport) -> Iterator[Check]:
    c = cases.CASES[family]
    if c.sweep is None or c.law is None:
        return
    yield Check(t.name, family, "sweep", "sample_sweep", "sampler", True,
                lambda r: _sample_sweep(r, t, family))


def _cells(x: np.ndarray, discrete: bool) -> tuple[np.ndarray, np.ndarray]:
    """The ends of the cell each value stands for (see the module docstring)."""
    if discrete:
        return x - 1.0, x
    lo, hi = x, x
    for _ in range(CELL_SPACINGS):
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
        w = np.array(law.sf(x), np.float64)
        order = np.argsort(x, kind="stable")
        xs = x[order]
        tied = np.zeros(x.size, bool)
        same = xs[1:] == xs[:-1]
        tied[order[1:][same]] = True
        tied[order[:-1][same]] = True
        coarse = np.flatnonzero(~(np.minimum(u, w) >= COARSE) | tied)
        if coarse.size:
            sub = law_of({k: a[coarse] for k, a in p.items()})
            u[coarse], w[coarse] = _cell_pit(sub, x[coarse], False, v[coarse])
    return u, w


def _cell_pit(law: Any, x: np.ndarray, discrete: bool, v: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray]:
    lo, hi = _cells(x, discrete)
    if discrete:
        a, b = law.cdf(lo), law.cdf(hi)
    else:
        a, b = fast_cdf(law, lo), fast_cdf(law, hi)
    c, d = law.sf(hi), law.sf(lo)
    a, b, c, d = (np.array(e, np.float64) for e in (a, b, c, d))
    # A cell end past the end of the support (1 + 2^-52 for a value of 1.0 in (0, 1)),
    # where a closed form is NaN: the cell ends at the value itself.
    for e, fn in ((a, law.cdf), (b, law.cdf), (c, law.sf), (d, law.sf)):
        nan = np.flatnonzero(np.isnan(e) & np.isfinite(x))
        if nan.size:  # (the law is vectorised over every point: evaluated whole)
            e[nan] = np.asarray(fn(x), np.float64)[nan]
    return a + v * (b - a), c + (1.0 - v) * (d - c)


def _fmt(v: float) -> str:
    return f"{v:.4g}"


def _sample_sweep(r: Runner, t: Target, family: str) -> Outcome:
    c = cases.CASES[family]
    assert c.sweep is not None and c.law is not None
    n = cases.SWEEP_SIZES[0 if r.quick else 1]
    seed = r.seed(f"{t.name}-{family}-sweep-sample_sweep")
    params = cases.sweep_params(family, n, torch.float64)
    dist = make(family, params, t, validate=False)
    t0 = time.perf_counter()
    x = dist.sample((), seed=seed)
    seconds = time.perf_counter() - t0
    if tuple(x.shape) != (n,):
        raise CheckFailure(f"sample() of a batch of {n} points returned shape "
                           f"{tuple(x.shape)}, expected ({n},)", n=n, seed=seed)
    xn = x.detach().to("cpu", torch.float64).numpy()
    spec = FAMILIES[family]
    ref_dist = getattr(torch.distributions, family)(**{
        k: v for k, v in params.items()}, validate_args=False)
    p = {k: np.broadcast_to(v, (n,)) for k, v in params_np(ref_dist, spec.params).items()
         if k in spec.params and not (k == "logits" and "probs" in spec.params)}
    # The uniforms of the randomization from a seed of their own: a backend that draws with
    # NumPy's generator seeded by the check's seed (numpy, the SciPy plugin) would otherwise
    # draw its Bernoulli values from these very uniforms.
    rng = np.random.default_rng(r.seed(f"{t.name}-{family}-sweep-sample_sweep-pit"))
    u, w = randomized_pit(c.law, p, xn, c.discrete, rng.random(n))
    swept = {k: p[k] for k in c.sweep}

    def at(i: int) -> str:
        return ", ".join(f"{k}={_fmt(float(v[i]))}" for k, v in p.items())

    bad = np.flatnonzero(~(np.isfinite(xn) & (u > 0) & (w > 0) & np.isfinite(u)
                           & np.isfinite(w)))
    if bad.size:
        i = int(bad[0])
        raise CheckFailure(
            f"{bad.size} of {n} sweep draws lie outside the reference law's support or are "
            f"not finite: x = {xn[i]!r} at {at(i)}", n=n, seed=seed, point=at(i),
            details={"outside": int(bad.size), "draw_seconds": round(seconds, 4)})
    zeta = np.where(u < 0.5, special.ndtri(u), -special.ndtri(w))
    bands: list[tuple[str, np.ndarray]] = [("the whole sweep", np.arange(n))]
    for k, v in swept.items():
        order = np.argsort(v, kind="stable")
        for b in range(BANDS):
            idx = order[b * n // BANDS:(b + 1) * n // BANDS]
            lo, hi = float(v[idx[0]]), float(v[idx[-1]])
            bands.append((f"{k} in [{_fmt(lo)}, {_fmt(hi)}]", idx))
    tests = 3 * len(bands)
    alpha = ALPHA_SWEEP / tests
    worst: tuple[float, str, str, float, float, int] = (-1.0, "", "", 0.0, 0.0, 0)
    rows = []
    for label, idx in bands:
        m = idx.size
        uu = np.sort(u[idx])
        ks = float(ks_continuous(uu[:, None], uu[:, None])[0])
        thr = dkwm_threshold(m, alpha)
        z = zeta[idx][:, None]
        mean, var = pit_mean_test(z, alpha), pit_var_test(z, alpha)
        rows.append({"band": label, "n": int(m), "ks": round(ks, 6),
                     "zeta_mean": round(float(mean.estimate[0]), 6),
                     "zeta_sq_mean": round(float(var.estimate[0]), 6)})
        for what, stat, th in (("K-S distance of u", ks, thr),
                               ("mean normal score", float(mean.deviation[0]),
                                float(mean.threshold[0])),
                               ("mean squared normal score - 1", float(var.deviation[0]),
                                float(var.threshold[0]))):
            ratio = abs(stat) / th
            if ratio > worst[0]:
                worst = (ratio, label, what, stat, th, m)
    ratio, label, what, stat, th, m = worst
    out = Outcome(statistic=abs(stat), threshold=th, n=n, seed=seed, alpha=alpha,
                  detectable=dkwm_detectable(n // BANDS, alpha), point=f"sweep: {label}",
                  details={"bands": rows, "draw_seconds": round(seconds, 4),
                           "ranges": {k: list(v) for k, v in c.sweep.items()}})
    if ratio > 1:
        raise CheckFailure(
            f"the draws at {label} ({m} draws, one at each of as many parameter points of "
            f"the sweep) are off their laws: {what} {stat:.4g} beyond {th:.4g} (alpha_i = "
            f"{alpha:.2g} per test, {tests} tests: K-S, mean and mean square of the normal "
            f"scores of the randomized PIT in each band)", out)
    out.message = (f"{len(bands)} bands of the sweep within their laws: worst {what} "
                   f"{stat:.3g} at {label} ({ratio:.2f} of its threshold)")
    return out
