"""Layer 4, gradients: is ``rsample``'s pathwise gradient the right one?

* ``grad_cdf`` (univariate continuous families): per sample, ``dx/dtheta = -dF/dtheta / p`` with
  dF/dtheta by a Richardson-extrapolated central difference of SciPy's CDF: no sampling noise,
  a wrong sign or scale fails with certainty. Any valid reparameterization satisfies the
  identity in conditional mean, ``E[dx/dtheta | x] = -dF/dtheta / p``; when the per-sample
  identity does not hold (StudentT's df drawn through a chi-square, Beta through two Gammas)
  the check falls back to z-tests that the residuals, weighted by a bounded function of x,
  have mean zero, overall and within each quartile of F(x) (a residual odd in x - loc, such
  as a scale gradient's with its sign flipped, averages out overall). Parameters of location
  and scale (``Case.pathwise``) have one valid path: no fallback for them.
* ``grad_scalar`` (those parameters, typical and float32 grids): their per-sample identity
  with scalar parameters, each grid point in a large call of its own, through random weighted
  sums of the per-draw gradients (a scalar leaf's gradient is otherwise only the call's sum).
* ``grad_second`` (the univariate continuous families, typical grid): ``rsample()``'s second
  derivatives are right (along the quantile path, on the parameters whose first derivatives
  meet the per-sample identity) or refused with ``NotReparameterizableError``.
* ``grad_noise`` (LogisticNormal, RelaxedOneHotCategorical): the noise recovered from ``x``
  does not move with theta.
* ``grad_mean`` (the other reparameterized families): the mean pathwise gradient of
  ``f(x) = w1.x + w2.x^2`` against the analytic gradient of ``E f`` (z-test with a
  Cornish-Fisher skewness correction, :func:`..stats.mean_z_test`).
* ``grad_sweep``: ``grad_cdf`` at the 32 points of the univariate families' ``sweep`` grid;
  for the multivariate families, ``grad_mean``'s identity in bands of 4,096 points of their
  sweep ranges (:func:`_grad_mean_sweep`), or ``grad_noise`` at 32 points of them.
* ``grad_shape`` (every reparameterized family): ``rsample((16,))``'s gradient, the parameters
  shared by the samples, against ``rsample(())``'s on 16 parameter copies, same seeds (a
  paired t-test, :func:`..stats.paired_t_test`): the checks above draw with
  ``sample_shape = ()`` only.
* ``grad_large`` (every reparameterized family): the gradient of one large call,
  ``rsample((1024,))`` on 32 copies of the example parameters (65,536 values, more than any
  other gradient check draws in one call), against the family's reference: the per-sample
  identity at 32 rows of each copy spread over all 1024 (``cdf``), the analytic mean gradient
  (``mean``) or the noise's invariance at every row (``noise``); for ``cdf`` families also
  single draws' gradients at a random row of 32 columns and the most extreme row of the
  other 32, where a parameter's path is monotone in one noise. Every other gradient check draws at
  most 512 values per call, but ``grad_scalar`` (8,192 with scalar parameters).

The per-sample checks and z-tests run on the float32 grid too (``GRAD_RTOL_F32``).

Per-sample gradients come from backward passes: the parameters are repeated along a new
leading batch dimension (one copy per sample) and ``rsample(())`` draws one value per copy.
Samples are drawn in calls of a fixed size per grid (``k = V // G`` copies of a grid of ``G``
points, at least one; :func:`copies_per_call`), ``ceil(m / k)`` calls with seeds derived from
the check's own (:func:`chunk_seeds`): ``V = 64`` values for the 32 samples of the per-sample
checks, the size class of the semantics layer's draws, and ``V = 512`` for the z-tests'
2 000-20 000. So a backend that compiles per size class runs one program per family for all of
them (TFP-on-JAX compiled an exact program per sample size before, 0.4-8 s each, 77 s for the
quick suite), while a backend with a fixed cost per call (NumPy's implicit gradients iterate
torch operations: 5 ms a call) makes few calls.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from ...core.backend import FamilySupport, in_rsample_params
from ...core.errors import NotReparameterizableError
from ...core.families import FAMILIES
from .. import cases
from ..grids import (
    SWEEP_GRID_POINTS,
    Grid,
    as_logits,
    example_params,
    grad_leaves,
    grid_points,
    grids,
    rsample_leaves,
)
from ..model import Check, CheckFailure, GradErrors, Outcome, Skip
from ..reference import params_np
from ..runner import Runner, Target, make, point_params, scalar_rows
from ..stats import (
    ALPHA_CHECK,
    ALPHA_LARGE,
    ALPHA_SWEEP,
    mean_z_test,
    paired_t_test,
    seed_for,
    z_detectable,
    z_threshold,
)
from .sweep import BANDS as SWEEP_BANDS

__all__ = ["checks", "GRAD_SAMPLES", "LARGE_COPIES", "LARGE_ROWS", "LARGE_PICKS", "GRAD_MEAN_SAMPLES", "GRAD_RTOL", "GRAD_RTOL_F32",
           "grad_rtol", "CALL_VALUES",
           "Z_CALL_VALUES", "chunk_seeds", "copies_per_call"]

#: Samples per per-sample gradient check (CDF identity, noise invariance): no sampling noise.
GRAD_SAMPLES = 32
#: The most values one ``rsample`` call of the per-sample gradient draws makes (see above):
#: for the per-sample checks' 32 samples, and for the z-tests' larger samples.
CALL_VALUES = 64
Z_CALL_VALUES = 512
#: Samples per mean-pathwise-gradient z-test (full, quick).
GRAD_MEAN_SAMPLES = (20_000, 2_000)
#: Max relative error of a per-sample gradient (CONFORMANCE.md: 5e-3).
GRAD_RTOL = 5e-3
#: The same on the float32 grid, whose draws and gradients are rounded to float32 (about
#: 6e-8 relative) and computed by float32 code (the series of an implicit Gamma gradient, say):
#: in a quick run of the five demo backends (2026-12-04) at most 9.3e-4 (torch's Beta), so
#: 1e-2 leaves a margin of ten and still fails a gradient 2% off (tests/mutants.py).
GRAD_RTOL_F32 = 1e-2


#: How close a mean gradient without sampling noise (straight-through: every sample's gradient
#: the same) must be to the analytic one, relative: (float64, float32) rounding.
EXACT_TOL = (1e-9, 1e-5)


def grad_rtol(dtype: torch.dtype) -> float:
    """The per-sample gradient tolerance of a grid drawn in ``dtype``."""
    return GRAD_RTOL_F32 if dtype == torch.float32 else GRAD_RTOL


def checks(t: Target, family: str, support: FamilySupport) -> Iterator[Check]:
    if not support.rsample:
        return
    kind = cases.CASES[family].gradient
    if kind is None:
        return
    for grid in grids(family):
        if not grid.judged_by("gradient"):
            continue
        if kind == "cdf" and grid.label == "sweep":
            # one sample at each of the sweep's points, the fallback's samples likewise
            # (GRAD_MEAN_SAMPLES / SWEEP_GRAD_DIVISOR per point), at the pooled alpha: see
            # layers/sweep.py
            yield Check(t.name, family, grid.label, "grad_sweep", "gradient", True,
                        _grad_cdf(t, family, grid, support, check="grad_sweep",
                                  copies=SWEEP_COPIES, divisor=SWEEP_GRAD_DIVISOR,
                                  alpha_check=ALPHA_SWEEP, min_valid=16))
        elif kind == "cdf":
            yield Check(t.name, family, grid.label, "grad_cdf", "gradient", True,
                        _grad_cdf(t, family, grid, support))
        elif kind == "noise":
            yield Check(t.name, family, grid.label, "grad_noise", "gradient", False,
                        _grad_noise(t, family, grid, support))
        else:
            yield Check(t.name, family, grid.label, "grad_mean", "gradient", True,
                        _grad_mean(t, family, grid, support))
    if kind == "cdf":
        grid = next(g for g in grids(family) if g.label == "typical")
        yield Check(t.name, family, "typical", "grad_second", "gradient", False,
                    _grad_second(t, family, grid, support))
    c = cases.CASES[family]
    allowed = support.rsample_params
    fixed = [k for k in FAMILIES[family].params
             if k in c.pathwise and (allowed is None or k in allowed)]
    # the other parameters with a pathwise gradient (a Gamma's concentration, a Beta's two):
    # judged where the backend's draws move along the quantile path (_quantile_path_params);
    # not probs, which the gradient layer's typical grid gives as logits
    shape = [k for k in FAMILIES[family].params if k not in c.pathwise and k != "probs"
             and k in _needed(family) and (allowed is None or k in allowed)]
    if kind == "cdf" and (fixed or shape):
        # float64 and float32 (the typical parameters rounded to it, at the float32
        # tolerance): a float32 path for scalar parameters whose scale gradient was 5% off
        # passed when only float64 was judged (an outside trial)
        for label in ("typical", "float32"):
            grid = next(g for g in grids(family) if g.label == label)
            yield Check(t.name, family, label, "grad_scalar", "gradient", False,
                        _grad_scalar(t, family, grid, fixed, shape, support))
    if c.sweep is not None and c.law is None:
        # The multivariate families across their sweep ranges (the univariate ones judge the
        # sweep grid above): the mean identity in bands of many points, or the noise's
        # invariance at the points of a sweep grid (deterministic: not statistical).
        if kind == "noise":
            grid = Grid("sweep", lambda d: cases.sweep_params(family, SWEEP_GRID_POINTS, d),
                        layers=("gradient",))
            yield Check(t.name, family, "sweep", "grad_sweep", "gradient", False,
                        _grad_noise(t, family, grid, support))
        else:
            yield Check(t.name, family, "sweep", "grad_sweep", "gradient", True,
                        _grad_mean_sweep(t, family, support))
    yield Check(t.name, family, "example", "grad_shape", "gradient", True,
                _grad_shape(t, family, support))
    yield Check(t.name, family, "example", "grad_large", "gradient", kind != "noise",
                _grad_large(t, family, support, kind))


#: ``grad_shape``: calls per sample (full, quick) of ``SHAPE_ROWS`` draws of the example
#: parameters (a batch of 2): the sizes of the semantics layer's draws, so a backend that
#: compiles per size class runs the programs it already has.
SHAPE_CALLS = (128, 32)
SHAPE_ROWS = 16


def _grad_shape(t: Target, family: str,
                support: FamilySupport) -> Callable[[Runner], Outcome]:
    """``rsample(sample_shape)``'s gradient, the parameters shared by the samples, against
    ``rsample(())``'s on one parameter copy per sample (the other checks' formulation): both
    estimate the gradient of ``E h(x)`` for a bounded ``h``, so their mean difference over
    pairs of calls with the same seed must be zero (a paired t-test,
    :func:`..stats.paired_t_test`; where both calls draw the same values, as on every
    built-in backend, the pairs differ only where the gradients do, and a gradient 5% off
    fails too).
    A backend whose backward pass reduces the sample dimensions wrongly (a mean for a sum,
    one sample's gradient for all) passed every other check, which draw with
    ``sample_shape = ()``."""

    def fn(r: Runner) -> Outcome:
        k = SHAPE_CALLS[1 if r.quick else 0]
        m = SHAPE_ROWS
        seed = r.seed(f"{t.name}-{family}-example-grad_shape")
        params = example_params(family, (2,), torch.float64)
        shared = dict(params)
        leaves = rsample_leaves(family, shared, support.rsample_params)
        if not leaves:
            raise Skip("no parameter with a pathwise gradient")
        names = list(leaves)
        d = make(family, shared, t, validate=False)
        # h(x) = sum w1 tanh(u) + w2 tanh(u)^2, u = (x - c) / s per value element, with c and
        # s (fixed) from a first draw: bounded, and not symmetric about c (the mean gradient of
        # a symmetric h in a scale parameter is zero).
        with torch.no_grad():
            pilot = d.rsample((m,), seed=seed_for(f"{seed}-pilot")).double()
        c = pilot.median(0).values
        spread = (pilot.max(0).values - pilot.min(0).values) / 4
        s = torch.maximum(spread, 1e-6 * (1 + c.abs()))
        wr = np.random.default_rng(seed)
        w1 = torch.as_tensor(wr.standard_normal(tuple(c.shape)))
        w2 = torch.as_tensor(wr.standard_normal(tuple(c.shape)))

        def h(x: torch.Tensor) -> torch.Tensor:
            v = torch.tanh((x.double() - c) / s)
            return (w1 * v + w2 * v * v).sum() / m

        a_rows, b_rows = [], []
        for i in range(k):
            # A distribution per call: one built once caches tensors derived from the leaves
            # (Chi2's concentration, a probs from logits), whose graph a backward pass frees.
            d = make(family, shared, t, validate=False)
            # Two sample dimensions, (4, m / 4): a backward pass that reduced a second sample
            # dimension wrongly passed a one-dimensional shape (an outside trial's); a wrong
            # reduction of one dimension fails it too, and grad_large's (1024,) call.
            shape = (4, m // 4)
            x = d.rsample(shape, seed=seed_for(f"{seed}-shape-{i}"))
            if not x.requires_grad:
                raise CheckFailure(f"rsample({shape}) returned a tensor without gradient")
            x = x.reshape((m,) + tuple(x.shape[len(shape):]))
            ga = torch.autograd.grad(h(x), [leaves[n] for n in names], allow_unused=True)
            big, copies = _per_sample_leaves(family, params, support, m)
            # The same seed: a backend that draws the same values both ways (the built-in
            # ones do) gives pairs that differ only where the gradients do.
            y = make(family, big, t, validate=False).rsample((), seed=seed_for(
                f"{seed}-shape-{i}"))
            gb = torch.autograd.grad(h(y), [copies[n] for n in names], allow_unused=True)
            ra, rb = [], []
            for n, g1, g2 in zip(names, ga, gb):
                leaf = leaves[n]
                ra.append((torch.zeros_like(leaf) if g1 is None else g1).double().flatten())
                g2s = (torch.zeros_like(copies[n]) if g2 is None else g2).double().sum(0)
                rb.append(g2s.sum_to_size(leaf.shape).flatten())
            a_rows.append(torch.cat(ra).numpy())
            b_rows.append(torch.cat(rb).numpy())
        a, b = np.stack(a_rows), np.stack(b_rows)
        labels = [f"{n}{[int(i) for i in np.unravel_index(j, tuple(leaves[n].shape))]}"
                  for n in names for j in range(leaves[n].numel())]
        alpha = ALPHA_CHECK / max(a.shape[1], 1)
        test = paired_t_test(a, b, alpha)
        j = int(np.argmax(test.ratio)) if test.ratio.size else 0
        worst = float(test.ratio[j]) if test.ratio.size else 0.0
        stat = float(test.statistic[j]) if test.ratio.size else 0.0
        thr = float(test.threshold[j]) if test.ratio.size else math.inf
        out = Outcome(statistic=stat, threshold=thr, n=k * m, seed=seed, alpha=alpha,
                      detectable=test.detectable,
                      details={"calls": k, "rows_per_call": m,
                               "mean_difference": {lab: float(v) for lab, v in
                                                   zip(labels, test.estimate)}})
        if worst > 1:
            ma, mb = float(a.mean(0)[j]), float(b.mean(0)[j])
            const = _no_spread(a[:, j] - b[:, j])
            how = (f"the difference is {const} calls: no spread" if const else
                   f"|t| = {stat:.3g} > {thr:.3g}")
            shapes = [tuple(leaves[n].shape) for n in names for _ in range(leaves[n].numel())]
            index = [tuple(int(i) for i in np.unravel_index(c, tuple(leaves[n].shape)))
                     for n in names for c in range(leaves[n].numel())]
            at = _point_of(family, params, "example", shapes[j], index[j])
            raise CheckFailure(
                f"rsample(({m},))'s gradient, the parameters shared by the samples, differs "
                f"from rsample(())'s on one parameter copy per sample: for {labels[j]}{at} the "
                f"mean gradient of a bounded function of x over {k} calls is {ma:.6g} against "
                f"{mb:.6g} ({how}). A backward pass that reduces the "
                "sample dimensions wrongly (a mean instead of a sum, one sample for all) shows "
                "this way", out)
        out.message = f"rsample(sample_shape) gradients agree with per-copy ones: max |t| {stat:.2f}"
        return out

    return fn


#: ``grad_large``: one call of ``LARGE_ROWS`` rows on ``LARGE_COPIES`` copies of the example
#: parameters (a batch of 2): 65,536 values, above any chunk or bucket size of the built-in
#: backends (TFP on JAX draws its rejection samplers' large calls in chunks of 2^15 values).
#: The copies give the test its degrees of freedom (Student's t with 31).
LARGE_COPIES = 32
LARGE_ROWS = 1024
#: ``cdf`` families: rows of each copy whose per-sample identity is judged, one in every
#: ``LARGE_ROWS / LARGE_PICKS`` from a random offset per copy, so that the last rows of the
#: call are judged as well as the first.
LARGE_PICKS = 32


def _grad_large(t: Target, family: str, support: FamilySupport,
                kind: str) -> Callable[[Runner], Outcome]:
    """The gradient of one large ``rsample`` call (see the module docstring). Every other
    gradient check draws at most :data:`Z_CALL_VALUES` values per call: a backend whose
    gradients were wrong in large calls only (rows after the first chunk detached, a vjp that
    reads a chunk's cotangent for another's) passed them all.

    ``cdf``: the cotangent is a bounded weight ``w(x)`` at ``LARGE_PICKS`` rows of each copy
    (zero elsewhere), so the gradient with respect to copy ``c`` is ``sum_i w(x_i) dx_i/dtheta``
    over its picked rows, whose expectation is ``sum_i w(x_i) (-dF/dtheta / p)(x_i)``
    (``E[dx/dtheta | x]`` for any valid reparameterization); the two sums over the 32 copies
    are compared by a paired t-test, a mean difference within ``GRAD_RTOL`` of the terms'
    scale passing as the finite difference's error (for the families whose path is monotone
    in one noise the two are equal sample by sample). Then single draws' gradients (a
    cotangent of 1 at one row per column, one more vjp): at a random row of each column of
    half the copies, which tells the parameters whose path is monotone in one noise, and for
    those at the most extreme row of each column of the other half too, where the identity
    must hold to ``GRAD_RTOL``. ``mean``: each copy's gradient of the
    mean of ``w1.x + w2.x^2`` over its 1024 rows against the analytic gradient of its
    expectation (a one-sample t-test over the copies). ``noise``: the noise recovered from
    every value, weighted at random, does not move with theta."""

    def fn(r: Runner) -> Outcome:
        seed = r.seed(f"{t.name}-{family}-example-grad_large")
        params = example_params(family, (2,), torch.float64)
        big, copies = _per_sample_leaves(family, params, support, LARGE_COPIES)
        if not copies:
            raise Skip("no parameter with a pathwise gradient")
        names = list(copies)
        dist = make(family, big, t, validate=False)
        x = dist.rsample((LARGE_ROWS,), seed=seed)
        called = f"rsample(({LARGE_ROWS},)) on a batch of {tuple(dist.batch_shape)}"
        if not x.requires_grad:
            raise CheckFailure(f"{called} returned a tensor without gradient")
        if kind == "cdf":
            return _large_cdf(family, dist, x, copies, names, seed, called)
        if kind == "mean":
            return _large_mean(t, family, params, support, x, copies, names, seed, called)
        return _large_noise(family, big, x, copies, names, seed, called)

    return fn


def _large_outcome(got: np.ndarray, want: np.ndarray, labels: list[str], seed: int,
                   called: str, what: str, exact_tol: float,
                   points: Sequence[str] = ()) -> Outcome:
    """The paired t-test of ``got`` against ``want`` (copies, columns) for ``grad_large``, at
    :data:`..stats.ALPHA_LARGE` (the pooled slots of the error budget) split over the columns."""
    alpha = ALPHA_LARGE / max(got.shape[1], 1)
    bad = ~np.isfinite(got)
    if bad.any():
        c, j = (int(i) for i in np.argwhere(bad)[0])
        raise CheckFailure(
            f"{called}: the gradient for {labels[j]} is not finite ({got[c, j]}) for parameter "
            f"copy {c}", Outcome(statistic=math.inf, threshold=0.0, n=got.size, seed=seed,
                                 details={"non_finite": int(bad.sum())}))
    test = paired_t_test(got, want, alpha, exact_tol)
    j = int(np.argmax(test.ratio)) if test.ratio.size else 0
    stat = float(test.statistic[j]) if test.ratio.size else 0.0
    thr = float(test.threshold[j]) if test.ratio.size else math.inf
    out = Outcome(statistic=stat, threshold=thr, n=LARGE_COPIES * LARGE_ROWS, seed=seed,
                  alpha=alpha, detectable=test.detectable,
                  details={"copies": LARGE_COPIES, "rows": LARGE_ROWS, "compared": what,
                           "mean_difference": {lab: float(v) for lab, v in
                                               zip(labels, test.estimate)}})
    if test.ratio.size and test.ratio[j] > 1:
        const = _no_spread(got[:, j] - want[:, j])
        how = (f"the difference is {const} copies: no spread" if const else
               f"|t| = {stat:.3g} > {thr:.3g}")
        at = points[j] if j < len(points) else ""
        raise CheckFailure(
            f"the gradient of one large call, {called}, is wrong: {what} for {labels[j]}{at} "
            f"is {float(got[:, j].mean()):.6g} against {float(want[:, j].mean()):.6g} (mean "
            f"over {LARGE_COPIES} parameter copies; {how}). Where the other "
            "gradient checks (smaller calls) pass, the large calls alone are wrong: a "
            "backend that detaches or mis-scales the rows of a large call (its later "
            "chunks, say) does this; where they fail too, the gradient itself is wrong", out)
    out.message = f"large-call gradients agree with the reference: max |t| {stat:.2f}"
    return out


def _labels(copies: Mapping[str, torch.Tensor], names: list[str]) -> list[str]:
    return [f"{n}{[int(i) for i in np.unravel_index(j, tuple(copies[n].shape[1:]))]}"
            for n in names for j in range(math.prod(copies[n].shape[1:]))]


def _example_points(family: str, shapes: Sequence[tuple[int, ...]],
                    index: Sequence[tuple[int, ...]]) -> list[str]:
    """:func:`_point_of` for each column of ``grad_large`` or ``grad_shape`` (element
    ``index[c]`` of a parameter of shape ``shapes[c]``) on the example grid of 2 points."""
    params = example_params(family, (2,), torch.float64)
    return [_point_of(family, params, "example", s, i) for s, i in zip(shapes, index)]


def _columns(copies: Mapping[str, torch.Tensor], names: list[str]
             ) -> tuple[list[tuple[int, ...]], list[tuple[int, ...]]]:
    """The shape and element index of each of :func:`_labels`' columns."""
    shapes, index = [], []
    for n in names:
        shape = tuple(copies[n].shape[1:])
        for j in range(math.prod(shape)):
            shapes.append(shape)
            index.append(tuple(int(i) for i in np.unravel_index(j, shape)))
    return shapes, index


def _identity(family: str, p: dict[str, np.ndarray], xn: np.ndarray, names: list[str]
              ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], np.ndarray]:
    """The reference ``-dF/dtheta / p`` of each parameter at the values ``xn`` (flat, with
    their parameters ``p``), where it is reliable, and ``F(xn)`` (as :func:`_grad_cdf`)."""
    law_of = cases.CASES[family].law
    assert law_of is not None
    law = law_of(p)
    with np.errstate(all="ignore"):
        F0 = law.cdf(xn)
        pdf = law.pdf(xn)
    use_sf = F0 > 0.5
    want, valid = {}, {}
    for k in names:
        dF, rel = _fd_derivative(family, p, k, xn, use_sf)
        with np.errstate(all="ignore"):
            want[k] = -dF / pdf
        valid[k] = ((rel < 1e-4) & np.isfinite(want[k]) & (pdf > 0)
                    & (np.minimum(F0, 1 - F0) > 1e-12))
    return want, valid, F0


def _large_cdf(family: str, dist: Any, x: torch.Tensor, copies: Mapping[str, torch.Tensor],
               names: list[str], seed: int, called: str) -> Outcome:
    spec = FAMILIES[family]
    law_of = cases.CASES[family].law
    assert law_of is not None
    xn = x.detach().double().numpy()  # (rows, copies, 2)
    rows, ncopy = xn.shape[0], xn.shape[1]
    step = rows // LARGE_PICKS
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, step, size=ncopy)[None, :] + step * np.arange(LARGE_PICKS)[:, None]
    cols = np.repeat(np.arange(ncopy)[None, :], LARGE_PICKS, axis=0)
    xs = xn[pick, cols]  # (picks, copies, 2)
    pnp = {k: v for k, v in params_np(dist, spec.params).items() if k in _needed(family)}
    p = {k: np.broadcast_to(v, xs.shape).reshape(-1).copy() for k, v in pnp.items()}
    want, valid_k, _ = _identity(family, p, xs.reshape(-1), names)
    valid = np.logical_and.reduce([valid_k[k] for k in names])
    if valid.sum() < valid.size // 2:
        raise Skip("too few draws where the finite differences of the CDF are reliable")
    # w(x) bounds every weighted term by its parameter's scale (the median |dx/dtheta|).
    scales = {k: float(np.median(np.abs(want[k][valid]))) + 1e-300 for k in names}
    with np.errstate(all="ignore"):
        spread = np.max(np.stack([np.abs(want[k]) / scales[k] for k in names]), axis=0)
    w = np.where(valid, 1.0 / (1.0 + np.where(valid, spread, 0.0)), 0.0)
    cot = torch.zeros(xn.shape, dtype=torch.float64)
    cot[torch.as_tensor(pick), torch.as_tensor(cols)] = torch.as_tensor(w.reshape(xs.shape))
    grads = torch.autograd.grad(x, [copies[k] for k in names], grad_outputs=cot.to(x.dtype),
                                allow_unused=True, retain_graph=True)
    got_cols, want_cols = [], []
    for k, g in zip(names, grads):
        # per copy and batch element, in units of the parameter's scale per picked row
        norm = scales[k] * LARGE_PICKS
        gk = (torch.zeros_like(copies[k]) if g is None else g).detach().double().numpy()
        got_cols.append(gk.reshape(ncopy, -1) / norm)
        wk = np.where(valid, w * want[k], 0.0).reshape(xs.shape).sum(0)
        want_cols.append(wk.reshape(ncopy, -1) / norm)
    got, ref = np.concatenate(got_cols, 1), np.concatenate(want_cols, 1)
    out = _large_outcome(got, ref, _labels(copies, names), seed, called,
                         f"the weighted sum of dx/dtheta at {LARGE_PICKS} rows per copy, "
                         "against -dF/dtheta / p", GRAD_RTOL,
                         _example_points(family, *_columns(copies, names)))
    # Per sample: the identity holds sample by sample for a parameter whose path is monotone
    # in one noise (the location-scale families, the implicit gradients of Gamma or Beta). A
    # random row of each column of the first 16 copies (32 draws) tells which parameters:
    # where it holds at 90% of them, it must hold at all of them and at the most extreme row
    # of each column of the other 16 copies (32 draws beyond about the 0.1% and 99.9%
    # quantiles), where a gradient wrong in the tails only hides from every sum, and from
    # grad_cdf's 32 samples.
    p_all = {k: np.broadcast_to(v, xn.shape).reshape(-1) for k, v in pnp.items()}
    with np.errstate(all="ignore"):
        F_all = np.asarray(law_of(p_all).cdf(xn.reshape(-1)), dtype=np.float64).reshape(xn.shape)
    far = np.where(np.minimum(F_all, 1 - F_all) > 1e-9, np.abs(F_all - 0.5), -1.0)
    cc, bb = np.meshgrid(np.arange(ncopy), np.arange(xn.shape[2]), indexing="ij")
    # one vjp: a random row in the first half of the copies, the most extreme in the other
    half = (cc < ncopy // 2).reshape(-1)
    row = np.where(cc < ncopy // 2, rng.integers(0, rows, size=cc.shape), np.argmax(far, axis=0))
    xt = xn[row, cc, bb].reshape(-1)
    pt = {k: np.broadcast_to(v, xn.shape[1:]).reshape(-1).copy() for k, v in pnp.items()}
    want_t, valid_t, F_t = _identity(family, pt, xt, names)
    cot = torch.zeros(xn.shape, dtype=torch.float64)
    cot[torch.as_tensor(row), torch.as_tensor(cc), torch.as_tensor(bb)] = 1.0
    grads = torch.autograd.grad(x, [copies[k] for k in names], grad_outputs=cot.to(x.dtype),
                                allow_unused=True)
    rows_at = {"a random row": half, "the most extreme row": ~half}
    errs: dict[str, dict[str, np.ndarray]] = {label: {} for label in rows_at}
    where: dict[str, dict[str, str]] = {label: {} for label in rows_at}
    for k, g in zip(names, grads):
        gk = (torch.zeros_like(copies[k]) if g is None else g).detach().double().numpy()
        gk = gk.reshape(-1)
        v = valid_t[k]
        scale = np.median(np.abs(want_t[k][v])) + 1e-300 if v.any() else 1.0
        with np.errstate(all="ignore"):
            err = np.abs(gk - want_t[k]) / np.maximum(np.abs(want_t[k]), 1e-3 * scale)
        err = np.where(v, np.where(np.isfinite(err), err, np.inf), np.nan)
        for label, sel in rows_at.items():
            errs[label][k] = err[sel]
            if not np.isnan(err[sel]).all():
                i = int(np.flatnonzero(sel)[np.nanargmax(err[sel])])
                where[label][k] = (
                    f"dx/d{k} = {gk[i]:.6g}, expected {want_t[k][i]:.6g} at x = {xt[i]:.6g} "
                    f"(F(x) = {F_t[i]:.6g}; copy {i // xn.shape[2]}, row {row.reshape(-1)[i]})")
    central = errs["a random row"]
    per_sample = [k for k in names if np.isfinite(central[k]).any()
                  and np.nanmean(np.where(np.isnan(central[k]), np.nan,
                                          central[k] <= GRAD_RTOL)) >= 0.9]
    worst, what = 0.0, ""
    maxima: dict[str, float] = {}
    for k in per_sample:
        for label in rows_at:
            if np.isnan(errs[label][k]).all():
                continue
            e = float(np.nanmax(errs[label][k]))
            maxima[f"{k} ({label})"] = e
            if e > worst:
                worst, what = e, f"{label} of a column: {where[label][k]}"
    out.details["per_sample_max_rel_error"] = maxima
    if worst > GRAD_RTOL:
        raise CheckFailure(
            f"the gradient of one large call, {called}, is wrong at {what}: the per-sample "
            f"identity dx/dtheta = -dF/dtheta / p, which holds at 90% or more of the random "
            f"rows, fails (relative error {worst:.3g} > {GRAD_RTOL:g})",
            Outcome(statistic=worst, threshold=GRAD_RTOL, n=out.n, seed=seed,
                    details=out.details))
    if per_sample:
        out.message += (f"; per sample ({', '.join(per_sample)}) at a random row of 32 "
                        f"columns and the most extreme of the other 32: max relative error "
                        f"{worst:.2g}")
    return out


def _large_mean(t: Target, family: str, params: dict[str, Any], support: FamilySupport,
                x: torch.Tensor, copies: Mapping[str, torch.Tensor], names: list[str],
                seed: int, called: str) -> Outcome:
    moments = cases.CASES[family].moments
    assert moments is not None
    spec = FAMILIES[family]
    small = dict(params)
    leaves0 = grad_leaves(family, small)
    ev_shape = tuple(x.shape[2:])
    wr = _weights_rng(seed)
    w1 = torch.as_tensor(wr.standard_normal(ev_shape), dtype=torch.float64)
    w2 = torch.as_tensor(wr.standard_normal(ev_shape), dtype=torch.float64)
    if family == "OneHotCategoricalStraightThrough":
        w2 = torch.zeros_like(w2)  # straight-through is exact for E[x] only
    canon = {k: getattr(getattr(torch.distributions, family)(**small), k)
             for k in spec.params if k != "logits" and k not in spec.integer_params}
    e1, e2 = moments(canon)
    analytic = torch.autograd.grad((w1 * e1).sum() + (w2 * e2).sum(),
                                   [leaves0[k] for k in names], allow_unused=True)
    xd = x.double()
    f = (w1 * xd + w2 * xd * xd).sum() / x.shape[0]
    grads = torch.autograd.grad(f, [copies[k] for k in names], allow_unused=True)
    got_cols, want_cols, labels, points = [], [], [], []
    for k, a, g in zip(names, analytic, grads):
        shape = tuple(copies[k].shape[1:])
        gk = (torch.zeros_like(copies[k]) if g is None else g).detach().double().numpy()
        ak = np.zeros(shape) if a is None else a.detach().double().numpy()
        keep = np.ones(shape, dtype=bool)
        if k == "scale_tril" and len(shape) >= 2:
            # entries above the diagonal are not parameters of a lower-triangular factor
            keep = ~np.broadcast_to(np.triu(np.ones(shape[-2:], dtype=bool), 1), shape)
        idx = np.flatnonzero(keep.reshape(-1))
        got_cols.append(gk.reshape(gk.shape[0], -1)[:, idx])
        want_cols.append(np.broadcast_to(ak.reshape(-1)[idx], (gk.shape[0], idx.size)))
        at = [tuple(int(i) for i in np.unravel_index(j, shape)) for j in idx]
        labels += [f"{k}{list(i)}" for i in at]
        points += [_point_of(family, params, "example", shape, i) for i in at]
    return _large_outcome(np.concatenate(got_cols, 1), np.concatenate(want_cols, 1), labels,
                          seed, called, "the mean gradient of E[w1.x + w2.x^2]",
                          EXACT_TOL[0], points)


def _noise_motion(names: list[str], totals: Sequence[torch.Tensor | None],
                  partials: Sequence[torch.Tensor | None],
                  point: Callable[[tuple[int, ...], tuple[int, ...]], str] | None = None
                  ) -> tuple[float, str, dict[str, float]]:
    """How much the recovered noise moves with each parameter: per parameter copy (leading
    dimension), the largest ``|d noise/d theta|`` (total derivative, through x) over the largest
    ``|partial|`` (x held fixed), maximised over the copies; the worst parameter, named with
    its worst element (and, by ``point(shape, index)``, that element's grid point).
    A NaN ratio is the worst (a gradient that is not a number never passes)."""
    worst, where, errs = 0.0, "", {}
    for k, tot, pa in zip(names, totals, partials):
        if pa is None:
            continue
        tt = torch.zeros_like(pa) if tot is None else tot
        scale = pa.abs().flatten(1).max(-1).values.clamp_min(1e-12)
        ratio = (tt.abs().flatten(1) / scale[:, None]).double()
        ratio = torch.where(torch.isnan(ratio), torch.inf, ratio)
        err = (tt.abs().flatten(1).max(-1).values / scale).max().item()
        errs[k] = err
        if not err <= worst:
            flat = int(torch.argmax(ratio.max(0).values)) if ratio.numel() else 0
            shape = tuple(pa.shape[1:])
            idx = tuple(int(i) for i in np.unravel_index(flat, shape)) if shape else ()
            at = point(shape, idx) if point is not None else ""
            worst, where = err, (f"{k}{list(idx)}{at}" if shape else k)
    return worst, where, errs


def _large_noise(family: str, big: Mapping[str, Any], x: torch.Tensor,
                 copies: Mapping[str, torch.Tensor], names: list[str], seed: int,
                 called: str) -> Outcome:
    noise = cases.CASES[family].noise
    assert noise is not None
    rows = x.shape[0]
    # the parameters per value (rows first), as the noise functions read them
    per_row = {k: (v.expand((rows,) + tuple(v.shape)) if isinstance(v, torch.Tensor) else v)
               for k, v in big.items()}
    e = torch.as_tensor(np.random.default_rng(seed).standard_normal(
        tuple(noise(x.detach(), per_row).shape)))
    totals = torch.autograd.grad((noise(x, per_row).double() * e).sum(),
                                 [copies[k] for k in names], allow_unused=True)
    partials = torch.autograd.grad((noise(x.detach(), per_row).double() * e).sum(),
                                   [copies[k] for k in names], allow_unused=True)
    worst, where, errs = _noise_motion(
        names, totals, partials,
        lambda shape, idx: _example_points(family, [shape], [idx])[0])
    out = Outcome(statistic=worst, threshold=GRAD_RTOL, n=x.shape[0] * x.shape[1], seed=seed,
                  details={"max_rel_error": errs, "copies": LARGE_COPIES, "rows": rows})
    if not worst <= GRAD_RTOL:
        raise CheckFailure(
            f"the gradient of one large call, {called}, is wrong: the noise recovered from "
            f"its values moves with {where} (|d noise/d theta| / |partial| = {worst:.3g} > "
            f"{GRAD_RTOL:g}, summed over every row with random weights)", out)
    out.message = f"noise invariant over the large call to {GRAD_RTOL:g} (max {worst:.2g})"
    return out


def _weights_rng(seed: int) -> np.random.Generator:
    """The generator of a check's random weights ``w1``, ``w2``: from a seed of its own, not
    the draw's. A backend that draws with NumPy's generator seeded by the check's seed (numpy,
    the SciPy plugin) would otherwise draw its first noise from the weights' very normals, and
    its gradient's mean would be biased by the weights it is weighed with (seen in the
    mean-gradient sweep: a cross-fitted residual of 0.035, z = 5.8, on a right gradient)."""
    return np.random.default_rng(seed_for(f"{seed}-weights"))


def _torch_dist(family: str, params: Mapping[str, Any]) -> Any:
    return getattr(torch.distributions, family)(**{
        k: (v.detach() if isinstance(v, torch.Tensor) else v) for k, v in params.items()})


def _point_of(family: str, params: Mapping[str, Any], grid: str, shape: Sequence[int],
              idx: Sequence[int]) -> str:
    """`` at grid[j] (name=value, ...)``: the grid point of element ``idx`` of a parameter of
    ``shape`` whose leading dimensions are the grid's batch (as its gradient is); empty
    where they are not (a parameter the points share)."""
    batch = tuple(_torch_dist(family, params).batch_shape)
    if not batch or len(idx) < len(batch) or tuple(shape[:len(batch)]) != batch:
        return ""
    j = int(np.ravel_multi_index(tuple(int(i) for i in idx[:len(batch)]), batch))
    return f" at {grid}[{j}] ({grid_points(family, dict(params))[j]})"


def _no_spread(values: np.ndarray) -> str:
    """Where ``values`` (the draws' terms of one mean) are all equal, the words for it: a
    z or t statistic is then infinite, which says nothing to a reader."""
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    if v.size < 2 or not np.isfinite(v).all() or not np.all(v == v[0]):
        return ""
    return f"{v[0] + 0.0:.6g} in every one of the {v.size}"


def _per_sample_leaves(family: str, params: dict[str, Any], support: FamilySupport,
                       m: int) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Parameters repeated ``m`` times along a new leading batch dimension, as fresh leaves.

    Sample ``s`` of ``rsample(())`` then depends only on copy ``s``: one backward pass gives
    every per-sample gradient.
    """
    leaves = grad_leaves(family, dict(params))
    allowed = support.rsample_params
    big: dict[str, Any] = {}
    out: dict[str, torch.Tensor] = {}
    batch = tuple(_torch_dist(family, params).batch_shape)
    for k, v in params.items():
        if isinstance(v, torch.Tensor):
            shape = tuple(v.shape)
            if v.dim() == 0:
                # A shared scalar gets one copy per batch element, so that every element has
                # its own gradient (the relaxed categorical's temperature spans the event too).
                shape = batch + ((1,) if family == "RelaxedOneHotCategorical" else ())
            e = v.detach().expand(shape).expand((m,) + shape).clone()
            if k in leaves and in_rsample_params(allowed, k):
                e.requires_grad_(True)
                out[k] = e
            big[k] = e
        else:
            big[k] = v
    return big, out


def copies_per_call(points: int, m: int) -> int:
    """Parameter copies per call for ``m`` samples of a grid of ``points`` points."""
    values = CALL_VALUES if m <= GRAD_SAMPLES else Z_CALL_VALUES
    return max(1, min(m, values // max(points, 1)))


def chunk_seeds(seed: int, m: int, per_call: int) -> list[int]:
    """The seeds of the ``ceil(m / per_call)`` calls that draw ``m`` per-sample gradients.

    The first call uses ``seed`` itself, call ``i`` a seed derived from ``seed`` and ``i``
    (:func:`..stats.seed_for`): independent draws, reproducible from the check's one seed.
    """
    calls = max(1, -(-m // per_call))
    return [seed] + [seed_for(f"{seed}-call-{i}") for i in range(1, calls)]


def _per_sample_draws(t: Target, family: str, params: dict[str, Any], support: FamilySupport,
                      m: int, seed: int, objective: Callable[[torch.Tensor], torch.Tensor],
                      names: list[str] | None = None
                      ) -> tuple[torch.Tensor, dict[str, torch.Tensor | None], list[Any]]:
    """``m`` draws of ``rsample(())`` on per-sample parameter copies, and per-sample gradients.

    Returns the draws (``m`` along dim 0), the gradient of ``objective(x).sum()`` with respect
    to each copy of each parameter in ``names`` (default: every leaf with a pathwise gradient;
    None where no call's value depends on it) and the distribution of each call. Drawn in calls
    of :func:`copies_per_call` copies (:func:`chunk_seeds`); the last call's extra draws are
    dropped.
    """
    points = math.prod(_torch_dist(family, params).batch_shape)
    per_call = copies_per_call(points, m)
    xs: list[torch.Tensor] = []
    gs: dict[str, list[tuple[torch.Tensor, bool]]] = {}
    dists = []
    for s in chunk_seeds(seed, m, per_call):
        big, leaves = _per_sample_leaves(family, params, support, per_call)
        if not leaves:
            raise Skip("no parameter with a pathwise gradient")
        want = list(leaves) if names is None else names
        dist = make(family, big, t, validate=False)
        x = dist.rsample((), seed=s)
        if not x.requires_grad:
            raise CheckFailure("rsample() returned a tensor without gradient", n=m, seed=seed)
        grads = torch.autograd.grad(objective(x).sum(), [leaves[k] for k in want],
                                    allow_unused=True)
        xs.append(x.detach())
        for k, g in zip(want, grads):
            # A call whose draw does not depend on the copy: zero, of the copy's shape.
            gs.setdefault(k, []).append(
                (torch.zeros_like(leaves[k]) if g is None else g.detach(), g is None))
        dists.append(dist)
    out: dict[str, torch.Tensor | None] = {}
    for k, parts in gs.items():
        unused = all(none for _, none in parts)
        out[k] = None if unused else torch.cat([g for g, _ in parts])[:m]
    return torch.cat(xs)[:m], out, dists


def _build(family: str, grid: Grid, dtype: torch.dtype) -> dict[str, Any]:
    """The parameters of ``grid`` as the gradient layer passes them: the typical grid's
    probabilities as ``logits`` (:func:`..grids.as_logits`), the gradient then taken with
    respect to them, as training code learns them (a RelaxedBernoulli ``logits`` gradient
    missing the chain factor ``p (1 - p)`` passed every check when every grid was given
    ``probs``: an outside trial); the other grids as built."""
    params = grid.build(dtype)
    return as_logits(family, params) if grid.label == "typical" else params


def _needed(family: str) -> set[str]:
    spec = FAMILIES[family]
    return set(spec.params) - ({"logits"} if "probs" in spec.params else set())


def _copy_params(family: str, dist: Any, x: torch.Tensor) -> dict[str, np.ndarray]:
    """The parameters of each value of a draw ``x`` on parameter copies (the leading batch
    dimension of ``dist``, every copy the same), flat and float64, as the reference law takes
    them: the first copy's, one entry per value."""
    one = (dist.batch_shape[0],) + tuple(x.shape[1:])
    return {k: np.broadcast_to(np.broadcast_to(v, one)[:1], x.shape).reshape(-1).copy()
            for k, v in params_np(dist, FAMILIES[family].params).items() if k in _needed(family)}


#: The finite-difference steps of :func:`_fd_derivative` (``h0 4^-j``, j below it).
FD_STEPS = 9
#: The most a step's central difference may move the CDF for it to take part.
FD_MAX_MOVE = 0.2


def _fd_derivative(family: str, p: dict[str, np.ndarray], k: str, xn: np.ndarray,
                   use_sf: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """dF/d(theta_k) at fixed x by central differences with Richardson extrapolation.

    Steps ``h0 4^-j`` (j = 0..8) with ``h0 = 0.02 max(|theta|, 1)`` (clipped to the parameter's
    domain); per sample, the extrapolated estimate that changes least between consecutive steps
    wins (a step too large for this x's scale or too small for float64 shows as instability).
    Only steps whose central difference moves the CDF by at most :data:`FD_MAX_MOVE` take
    part: ``h0`` is 20 standard deviations for a location of 1000 at scale 1, where two
    extrapolations from steps across the whole law agreed by chance near ``|z| = 0.6`` and won
    (a false failure at about 5% of seeds: "dx/dloc = 1, expected 1.0356").
    Returns the derivative and its estimated relative error. ``use_sf`` differentiates ``-sf``
    in the upper tail, where ``cdf`` has lost its digits.
    """
    law_of = cases.CASES[family].law
    assert law_of is not None
    theta = p[k]
    h0 = 0.02 * np.maximum(np.abs(theta), 1.0)
    if k == "probs":
        h0 = np.minimum(h0, 0.5 * np.minimum(theta, 1 - theta))
    elif k in cases.CASES[family].positive:
        h0 = np.minimum(h0, 0.5 * theta)
    # Each value is differenced on one side only (sf in the upper tail, cdf below): the law is
    # evaluated on the two parts apart, half the work of evaluating both everywhere.
    parts = [(side, np.flatnonzero(use_sf == side)) for side in (False, True)]
    ds, local = [], []
    for j in range(FD_STEPS):
        hh = h0 * 4.0 ** -j
        vp, vm = np.empty_like(xn), np.empty_like(xn)
        for upper, idx in parts:
            if not idx.size:
                continue
            sub = {name: _take(v, idx, xn.size) for name, v in p.items()}
            h, th = _take(hh, idx, xn.size), sub[k]
            pp, pm = dict(sub), dict(sub)
            pp[k], pm[k] = th + h, th - h
            lp, lm = law_of(pp), law_of(pm)
            x = xn[idx]
            with np.errstate(all="ignore"):
                vp[idx] = -lp.sf(x) if upper else lp.cdf(x)
                vm[idx] = -lm.sf(x) if upper else lm.cdf(x)
        ds.append((vp - vm) / (2 * hh))
        local.append(np.abs(vp - vm) <= FD_MAX_MOVE)
    rich = [(4 * ds[j + 1] - ds[j]) / 3 for j in range(FD_STEPS - 1)]
    # a comparison of two extrapolations counts only where its largest step was local
    diffs = np.stack([np.where(local[j], np.abs(rich[j + 1] - rich[j]), np.inf)
                      for j in range(FD_STEPS - 2)])
    diffs = np.where(np.isfinite(diffs), diffs, np.inf)
    best = np.argmin(diffs, axis=0)
    est = np.stack(rich[1:])[best, np.arange(xn.size)]
    with np.errstate(all="ignore"):
        relerr = diffs[best, np.arange(xn.size)] / np.abs(est)
    return est, relerr


def _take(v: Any, idx: np.ndarray, size: int) -> Any:
    """``v[idx]`` for a per-value array of ``size`` values; ``v`` itself for a scalar."""
    return v[idx] if np.ndim(v) and np.size(v) == size else v


#: ``grad_second``: samples per grid point, the relative step of the outer central
#: differences (of the parameter, and of x in units of the local length ``min(F, 1 - F) /
#: p``), the tolerance (relative to the reference, plus GRAD2_ATOL x G_i G_j / that length,
#: ``G_i`` the root mean square of ``dx/dtheta_i`` over the grid point's samples: the scale of
#: a second derivative where the reference is 0, as for a location and a scale).
GRAD2_SAMPLES = 8
GRAD2_STEP = 1e-3
GRAD2_RTOL = GRAD_RTOL
GRAD2_ATOL = 1e-3
#: ... plus this many times the difference of the references at steps h and 2 h.
GRAD2_NOISE = 10.0


def _grad_second(t: Target, family: str, grid: Grid, support: FamilySupport
                 ) -> Callable[[Runner], Outcome]:
    """``rsample()``'s second derivatives (``create_graph=True``, a Hessian through a draw)
    are right, or refused with :class:`~polysample.NotReparameterizableError`.

    Per sample, on the parameters whose first derivative meets ``grad_cdf``'s per-sample
    identity (the draw then moves along the quantile path, ``dx/dtheta_i = g_i(x, theta) =
    -dF/dtheta_i / p``), the path's second derivative is determined:
    ``d2x/dtheta_i dtheta_j = dg_i/dx g_j + dg_i/dtheta_j``, each partial a central
    difference of ``g_i`` (itself :func:`_fd_derivative`'s). A backward pass computed from
    detached tensors gives silent zeros (``torch.autograd.functional.hessian`` returns them
    without a word): an outside trial's backend did, and passed every check. Parameters whose
    draws take another valid path (StudentT's df through a chi-square) are left to
    ``grad_cdf``'s conditional-mean fallback, as are samples whose finite differences are not
    reliable. The typical grid, float64, :data:`GRAD2_SAMPLES` samples per point.
    """
    law_of = cases.CASES[family].law
    assert law_of is not None

    def first(p: dict[str, np.ndarray], xn: np.ndarray, names: list[str]
              ) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
        """The quantile path's ``g_k`` at ``(x, p)`` for every ``k``, where all are reliable,
        and the local length ``min(F, 1 - F) / p`` (a step of ``GRAD2_STEP`` of it moves the
        CDF by about that fraction of the nearer tail's mass: inside the support)."""
        law = law_of(p)
        with np.errstate(all="ignore"):
            F0, pdf = law.cdf(xn), law.pdf(xn)
            tail = np.minimum(F0, 1 - F0)
            length = tail / pdf
        ok = (pdf > 0) & (tail > 1e-8) & np.isfinite(length)
        out = {}
        for k in names:
            dF, rel = _fd_derivative(family, p, k, xn, F0 > 0.5)
            with np.errstate(all="ignore"):
                out[k] = -dF / pdf
            ok &= (rel < 1e-6) & np.isfinite(out[k])
        return out, ok, length

    def fn(r: Runner) -> Outcome:
        seed = r.seed(f"{t.name}-{family}-{grid.label}-grad_second")
        params = grid.build(torch.float64)
        points = math.prod(_torch_dist(family, params).batch_shape)
        big, leaves = _per_sample_leaves(family, params, support, GRAD2_SAMPLES)
        names = [k for k in leaves if k in _needed(family)]
        if not names:
            raise Skip("no parameter with a pathwise gradient")
        dist = make(family, big, t, validate=False)
        x = dist.rsample((), seed=seed)
        inputs = [leaves[k] for k in names]
        try:
            g1 = torch.autograd.grad(x.sum(), inputs, create_graph=True, allow_unused=True)
            got2: dict[tuple[str, str], np.ndarray] = {}
            for k, gk in zip(names, g1):
                # A gradient without a graph is constant in the parameters (a location's
                # dx/dloc = 1): second derivatives 0, as torch.autograd.functional.hessian
                # reports them. Judged against the reference like any other.
                g2 = (torch.autograd.grad(gk.sum(), inputs, retain_graph=True,
                                          allow_unused=True)
                      if gk is not None and gk.requires_grad else [None] * len(names))
                for j, h in zip(names, g2):
                    got2[(k, j)] = (np.zeros(x.numel()) if h is None
                                    else h.detach().double().numpy(force=True).reshape(-1))
        except NotReparameterizableError:
            return Outcome("second derivatives through rsample() refused "
                           "(NotReparameterizableError)")
        xn = x.detach().double().numpy().reshape(-1)
        p = _copy_params(family, dist, x)
        got1 = {k: (np.zeros_like(xn) if g is None
                    else g.detach().double().numpy(force=True).reshape(-1))
                for k, g in zip(names, g1)}
        g0, ok, length = first(p, xn, names)
        # the parameters on the quantile path: the first-derivative identity holds at every
        # reliable sample (elsewhere grad_cdf judges the path)
        on_path = [k for k in names if ok.any() and np.all(
            np.abs(got1[k] - g0[k])[ok] <= GRAD_RTOL * np.abs(g0[k])[ok] + 1e-12)]
        if not on_path:
            raise Skip("no parameter whose draws move along the quantile path (grad_cdf "
                       "judges the others)")
        # Each partial at two steps (h and 2 h): their difference bounds the reference's own
        # error (finite-difference noise where the second derivative is 0, as a scale's is)
        wants: list[dict[tuple[str, str], np.ndarray]] = []
        for step in (GRAD2_STEP, 2 * GRAD2_STEP):
            hx = step * np.where(ok, length, 0.0)
            gxp, okp, _ = first(p, xn + hx, on_path)
            gxm, okm, _ = first(p, xn - hx, on_path)
            ok = ok & okp & okm & (hx > 0)
            with np.errstate(all="ignore"):
                dgdx = {k: (gxp[k] - gxm[k]) / (2 * hx) for k in on_path}
            want_s: dict[tuple[str, str], np.ndarray] = {}
            for j in on_path:
                theta = p[j]
                h = step * np.maximum(np.abs(theta), 1.0)
                if j == "probs":
                    h = np.minimum(h, 0.25 * np.minimum(theta, 1 - theta))
                elif j in cases.CASES[family].positive:
                    h = np.minimum(h, 0.25 * theta)
                pp, pm = dict(p), dict(p)
                pp[j], pm[j] = theta + h, theta - h
                gp, okp, _ = first(pp, xn, on_path)
                gm, okm, _ = first(pm, xn, on_path)
                ok = ok & okp & okm
                for k in on_path:
                    with np.errstate(all="ignore"):
                        want_s[(k, j)] = dgdx[k] * g0[j] + (gp[k] - gm[k]) / (2 * h)
            wants.append(want_s)
        if ok.sum() < GRAD2_SAMPLES:
            raise Skip("too few samples where the finite differences are reliable")
        # the typical size of each first derivative at each grid point (root mean square over
        # its samples): with the local length, the scale of a second derivative there
        col = np.arange(xn.size) % points
        size = {}
        for k in on_path:
            sq = np.where(ok, g0[k] ** 2, 0.0)
            rms = np.sqrt(np.bincount(col, sq, points)
                          / np.maximum(np.bincount(col, ok.astype(float), points), 1))
            size[k] = rms[col]
        worst, where = 0.0, ""
        for k in on_path:
            for j in on_path:
                want, coarse = wants[0][(k, j)], wants[1][(k, j)]
                got = got2[(k, j)]
                with np.errstate(all="ignore"):
                    tol = (GRAD2_RTOL * np.abs(want)
                           + GRAD2_ATOL * size[k] * size[j] / length
                           + GRAD2_NOISE * np.abs(want - coarse))
                with np.errstate(all="ignore"):
                    err = np.where(ok, np.abs(got - want) / tol, 0.0)
                err = np.where(ok & ~np.isfinite(got), np.inf, err)
                i = int(np.argmax(err))
                if err[i] > worst:
                    worst = float(err[i])
                    pts = grid_points(family, params)
                    where = (f"d2x/d{k} d{j} at {grid.label}[{i % points}] "
                             f"({pts[i % points]}), x = {xn[i]:.6g}: {got[i]:.6g}, expected "
                             f"{want[i]:.6g}")
                    if worst > 1:
                        silent = not np.any(got[ok])
                        raise CheckFailure(
                            f"rsample()'s second derivative is wrong: {where} (tolerance "
                            f"{tol[i]:.3g}; the quantile path's, whose first derivatives "
                            f"this draw meets)" + (
                                ". Every second derivative is 0: a backward pass computed "
                                "from detached tensors (an autograd.Function whose backward "
                                "is not itself differentiable) gives silent zeros. Compute "
                                "it with differentiable torch operations, or raise "
                                "NotReparameterizableError there under create_graph=True "
                                "(as the tfp backends do)" if silent else ""),
                            statistic=worst, threshold=1.0, point=f"{grid.label}[{i % points}]")
        judged = ", ".join(on_path)
        return Outcome(f"second derivatives in {judged} along the quantile path at "
                       f"{int(ok.sum())} samples (largest error {worst:.2g} of its tolerance"
                       + (f": {where})" if where else ")"), statistic=worst, threshold=1.0)

    return fn


#: ``grad_sweep``: copies of the sweep's 32 points (one call: 64 samples), and the divisor of
#: the conditional-mean fallback's copies (quick 125 and full 1,250 copies: 4,000 and 40,000
#: samples, as many as ``grad_cdf``'s fallback draws at a 3-point grid in full mode, and more
#: than in quick mode).
SWEEP_COPIES = 2
SWEEP_GRAD_DIVISOR = 16


def _grad_cdf(t: Target, family: str, grid: Grid, support: FamilySupport,
              check: str = "grad_cdf", copies: int = GRAD_SAMPLES, divisor: int = 1,
              alpha_check: float = ALPHA_CHECK, min_valid: int | None = None
              ) -> Callable[[Runner], Outcome]:
    """The per-sample CDF identity (``copies`` copies of the grid's points), with the
    conditional-mean z-test at ``alpha_check`` as fallback (``GRAD_MEAN_SAMPLES / divisor``
    copies). Skipped where fewer than ``min_valid`` samples (default: ``copies / 4``) have a
    reliable finite difference."""
    dtype = grid.dtype or torch.float64
    rtol = grad_rtol(dtype)
    law_of = cases.CASES[family].law
    assert law_of is not None

    def residuals(m: int, seed: int) -> tuple[dict[str, np.ndarray], ...]:
        params = _build(family, grid, dtype)
        x, grads, dists = _per_sample_draws(t, family, params, support, m, seed,
                                            lambda x: x)
        xn = x.double().numpy().reshape(-1)
        # Every copy holds the same parameters: the first call's first copy, for every draw.
        p = _copy_params(family, dists[0], x)
        law = law_of(p)
        with np.errstate(all="ignore"):
            F0 = law.cdf(xn)
            pdf = law.pdf(xn)
        use_sf = F0 > 0.5
        got, want, valid = {}, {}, {}
        for k, g in grads.items():
            got[k] = np.zeros_like(xn) if g is None else g.double().numpy().reshape(-1)
            if k == "logits":  # dF/dlogits = dF/dprobs dprobs/dlogits, p (1 - p)
                dF, rel = _fd_derivative(family, p, "probs", xn, use_sf)
                dF = dF * p["probs"] * (1 - p["probs"])
            else:
                dF, rel = _fd_derivative(family, p, k, xn, use_sf)
            with np.errstate(all="ignore"):
                want[k] = -dF / pdf
            valid[k] = ((rel < 1e-4) & np.isfinite(want[k]) & (pdf > 0)
                        & (np.minimum(F0, 1 - F0) > 1e-12))
        return got, want, valid, {"x": xn, "u": F0}

    def where_of(i: int) -> str:
        pts = grid_points(family, _build(family, grid, dtype))
        j = i % len(pts)
        return f"{grid.label}[{j}] ({pts[j]})"

    def fn(r: Runner) -> Outcome:
        m = copies
        seed = r.seed(f"{t.name}-{family}-{grid.label}-{check}")
        got, want, valid, extra = residuals(m, seed)
        worst, where, wi = 0.0, "", 0
        errs: dict[str, float] = {}
        for k in got:
            v = valid[k]
            if v.sum() < (m // 4 if min_valid is None else min_valid):
                raise Skip(f"too few samples where the finite difference of {k} is reliable")
            bad = np.flatnonzero(v & ~np.isfinite(got[k]))
            if bad.size:  # a NaN or infinite gradient of a valid draw: wrong, whatever the rest
                i = int(bad[0])
                raise CheckFailure(
                    f"pathwise gradient is not finite at {where_of(i)}: dx/d{k} = {got[k][i]} "
                    f"at x = {extra['x'][i]:.6g} (expected {want[k][i]:.6g}; {bad.size} of "
                    f"{int(v.sum())} draws)",
                    Outcome(statistic=math.inf, threshold=rtol, n=m, seed=seed,
                            point=where_of(i), details={"non_finite": int(bad.size)}))
            scale = np.median(np.abs(want[k][v])) + 1e-300
            err = np.abs(got[k] - want[k]) / np.maximum(np.abs(want[k]), 1e-3 * scale)
            err = np.where(v, err, 0.0)
            i = int(np.argmax(err))
            errs[k] = float(err[i])
            if err[i] > worst:
                worst, wi = float(err[i]), i
                where = (f"{k}: dx/d{k} = {got[k][i]:.6g}, expected {want[k][i]:.6g} at "
                         f"x = {extra['x'][i]:.6g}")
        if worst <= rtol:
            return Outcome(f"per-sample identity holds: max relative error {worst:.2g}",
                           statistic=worst, threshold=rtol, n=m, seed=seed,
                           details={"statistic": PER_SAMPLE_STATISTIC, "max_rel_error": errs},
                           evidence=[GradErrors(t.name, family, grid.label,
                                                "max relative error (per sample)", errs,
                                                f"{rtol:g}")])
        # A parameter of location or scale has one valid path (Case.pathwise): no fallback.
        fixed = [k for k, e in errs.items() if e > rtol and k in cases.CASES[family].pathwise]
        if fixed:
            k = max(fixed, key=lambda name: errs[name])
            v = valid[k]
            scale = np.median(np.abs(want[k][v])) + 1e-300
            err = np.where(v, np.abs(got[k] - want[k])
                           / np.maximum(np.abs(want[k]), 1e-3 * scale), 0.0)
            i = int(np.argmax(err))
            raise CheckFailure(
                f"pathwise gradient is wrong at {where_of(i)}: dx/d{k} = {got[k][i]:.6g}, "
                f"expected {want[k][i]:.6g} at x = {extra['x'][i]:.6g} (relative error "
                f"{errs[k]:.3g} > {rtol:g}); {k} is a parameter of location or scale, whose "
                f"pathwise gradient is fixed draw by draw (a path through another noise, "
                f"even one right in conditional mean, is not the law's). {LAW_FIRST}",
                Outcome(statistic=errs[k], threshold=rtol, n=m, seed=seed, point=where_of(i),
                        details={"statistic": PER_SAMPLE_STATISTIC, "max_rel_error": errs,
                                 "fixed_draw_by_draw": sorted(fixed)},
                        evidence=[GradErrors(t.name, family, grid.label,
                                             "max relative error (per sample)", errs,
                                             f"{rtol:g}")]))
        # Not monotone in one noise (or wrong): test the failing parameters' residuals for a
        # zero conditional mean. Residuals within the per-sample tolerance count as zero (they
        # are finite-difference noise; the residuals of a two-noise path are O(1)).
        failing = [k for k, e in errs.items() if e > rtol]
        mb = GRAD_MEAN_SAMPLES[1 if r.quick else 0] // divisor
        seed2 = r.seed(f"{t.name}-{family}-{grid.label}-{check}_mean")
        got, want, valid, extra2 = residuals(mb, seed2)
        # E[res | x] = 0 for every x, so the weighted residuals have mean zero overall and
        # within every range of x: the quartiles of F(x). The overall mean alone missed a
        # residual odd in x (a scale gradient with its sign flipped, or zero: the weight is
        # even in x - loc, so the residual averaged out).
        u = extra2["u"]
        bins = [np.ones_like(u, dtype=bool)] + [
            (u >= lo) & (u < lo + 0.25) for lo in (0.0, 0.25, 0.5, 0.75)]
        alpha = alpha_check / (len(failing) * len(bins))
        ratio_w, test_w, where2, zs = -1.0, None, "", {}
        jw = 0
        weighted: dict[str, np.ndarray] = {}
        for k in failing:
            v = valid[k]
            scale = np.median(np.abs(want[k][v])) + 1e-300
            res = got[k] - want[k]
            res = np.where(np.abs(res) <= rtol * np.maximum(np.abs(want[k]), 1e-3 * scale),
                           0.0, res)
            w = 1.0 / (np.abs(want[k]) + scale)
            terms = np.where(v, w * res, 0.0)
            weighted[k] = terms
            test = mean_z_test(np.stack([np.where(b, terms, 0.0) for b in bins], 1), 0.0,
                               alpha)
            j = test.worst
            zs[k] = float(test.statistic[j])
            if test.ratio[j] >= ratio_w:
                ratio_w, test_w, where2, jw = float(test.ratio[j]), test, k, j
        if test_w is None:  # every residual mean was NaN: gradients not finite in this sample
            k = failing[0]
            bad = np.flatnonzero(valid[k] & ~np.isfinite(got[k]))
            raise CheckFailure(
                f"pathwise gradient is wrong at {where_of(wi)} ({where}), and not finite at "
                f"{bad.size} of {int(valid[k].sum())} draws of its conditional-mean sample "
                f"(dx/d{k})",
                Outcome(statistic=math.inf, threshold=rtol, n=mb, seed=seed2,
                        point=where_of(wi), details={"non_finite": int(bad.size)}))
        ev = GradErrors(t.name, family, grid.label,
                        "|z| of the residuals' conditional mean (the per-sample identity "
                        f"failed: relative error {worst:.2g})", zs,
                        f"{test_w.threshold[jw]:.3g}")
        span = "all samples" if jw == 0 else f"F(x) in [{(jw - 1) / 4:g}, {jw / 4:g})"
        out = Outcome(statistic=float(test_w.statistic[jw]),
                      threshold=float(test_w.threshold[jw]),
                      n=mb, seed=seed2, alpha=alpha, detectable=test_w.detectable,
                      point=where_of(wi),
                      details={"statistic": CONDITIONAL_MEAN_STATISTIC,
                               "per_sample_max_rel_error": errs, "residual_z": zs},
                      evidence=[ev])
        if ratio_w > 1:
            # The z-test pools the grid's points (row i is point i % G): name the point whose
            # own weighted residuals in the failing range are furthest from mean zero (the
            # per-sample worst is often another point's finite-difference noise).
            col = np.where(bins[jw], weighted[where2], 0.0)
            g = len(grid_points(family, _build(family, grid, dtype)))
            zp = []
            for j in range(g):
                c = col[j::g]
                q = float(np.sqrt(np.sum(c * c)))
                zp.append(float(np.sum(c)) / q if q > 0 else 0.0)
            jz = int(np.argmax(np.abs(zp)))
            out.point = where_of(jz)
            # Each point's own |z| against the per-point threshold: a defect at one point
            # (one band of a sweep) and one everywhere read differently.
            per = z_threshold(alpha / g)
            off = [j for j in range(g) if abs(zp[j]) > per]
            out.details["residual_z_per_point"] = [round(z, 3) for z in zp]
            spread = (f"{len(off)} of the {g} points are off alone (|z| > {per:.3g})"
                      if off else f"no point is off alone (|z| > {per:.3g})")
            raise CheckFailure(
                f"pathwise gradient is wrong at {where_of(jz)}: the conditional mean over "
                f"{mb} samples of dx/d{where2} - (-dF/d{where2} / p) is not zero (|z| = "
                f"{test_w.statistic[jw]:.3g} > {test_w.threshold[jw]:.3g} over the grid, "
                f"{span}; {zp[jz]:.3g} at {where_of(jz)} alone; {spread}), and the "
                f"per-sample identity fails (relative error {worst:.3g} at {where_of(wi)}; "
                f"{where}). {LAW_FIRST}", out)
        out.message = (f"not monotone in one noise (per-sample error {worst:.2g}), but the "
                       f"conditional mean holds overall and in each quartile of F(x): max "
                       f"|z| {test_w.statistic[jw]:.2f}")
        return out

    return fn


#: What ``statistic`` and ``threshold`` of a ``grad_cdf`` or ``grad_sweep`` result are (its
#: ``details["statistic"]``): the per-sample identity's largest relative error against the
#: tolerance, or, where that identity fails, the |z| of the residuals' conditional mean
#: against its z threshold (scale-free: read ``per_sample_max_rel_error`` for the size).
PER_SAMPLE_STATISTIC = "max relative error of the per-sample identity (threshold: tolerance)"
CONDITIONAL_MEAN_STATISTIC = ("|z| of the residuals' conditional mean (threshold: z at alpha_i; "
                              "the per-sample identity failed, its errors in "
                              "per_sample_max_rel_error)")

#: The end of an identity check's failure: the identity reads the reference law at the drawn
#: values, so a draw from a wrong law (a scale 1% off) fails it too, in every parameter.
LAW_FIRST = ("The identity reads the reference law at the drawn values: where this family's "
             "sampler checks (sample_ks, rsample_ks) fail at this grid too, the draws' law is "
             "wrong, and fixing that comes first.")

#: ``grad_scalar``: the rows of each scalar call whose gradients are weighed (drawn at random
#: among the call's :func:`..runner.scalar_rows`), and the random weight vectors per call
#: (besides one per parameter with the signs of its expected terms).
SCALAR_GRAD_PICKS = 256
SCALAR_GRAD_WEIGHTS = 2


#: ``grad_scalar``'s conditional-mean test of the parameters whose draws take another valid
#: path than their quantile path (StudentT's df through a chi-square, FisherSnedecor's, TFP's
#: Beta through two Gammas), with scalar parameters: calls per grid point (of the same
#: ``scalar_rows`` values: the same program), rows weighed per call, the share of each tail
#: of ``F(x)`` left out of the weights, and the false-failure probability of all its t-tests in
#: one check. 1e-12 per check: below 1e-9 over every ``grad_scalar`` check of a run, beside the
#: error budget of 1e-6 (``grad_scalar`` holds no share of it: its other tests are
#: deterministic).
SCALAR_MEAN_CALLS = 16
SCALAR_MEAN_PICKS = 2048
SCALAR_MEAN_TAIL = 0.005
ALPHA_SCALAR_MEAN = 1e-12


def _scalar_want(family: str, dist: Any, xp: np.ndarray, names: list[str], tail: float
                 ) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray]:
    """At values ``xp`` of a call with scalar parameters ``dist``: ``F(x)``, the expected
    per-draw gradient ``-dF/dtheta / p`` of each parameter of ``names``, and where all are
    reliable (a positive density, ``F(x)`` at least ``tail`` from 0 and 1, and a finite
    difference of relative error below 1e-4)."""
    law_of = cases.CASES[family].law
    assert law_of is not None
    p = {k: np.full(xp.size, float(v)) for k, v in
         params_np(dist, FAMILIES[family].params).items() if k in _needed(family)}
    law = law_of(p)
    with np.errstate(all="ignore"):
        F0 = law.cdf(xp)
        pdf = law.pdf(xp)
    use_sf = F0 > 0.5
    valid = (pdf > 0) & (np.minimum(F0, 1 - F0) >= tail)
    want = {}
    for k in names:
        dF, rel = _fd_derivative(family, p, k, xp, use_sf)
        with np.errstate(all="ignore"):
            want[k] = -dF / pdf
        valid &= (rel < 1e-4) & np.isfinite(want[k])
    return F0, want, valid


def _scalar_conditional_mean(t: Target, family: str, one: dict[str, Any], names: list[str],
                             n: int, seed: str, rng: np.random.Generator,
                             alpha: float) -> dict[str, tuple[float, float, str, float]]:
    """Per parameter of ``names`` (scalar leaves of one grid point ``one``): the worst |t| of
    its residuals' conditional mean, its threshold, which weights, and the relative bias there.

    A draw along another valid path has per-draw gradients right only in conditional mean,
    ``E[dx/dtheta | x] = -dF/dtheta / p`` (``grad_cdf``'s fallback), so for weights that are
    functions of ``x`` alone, ``sum_i w_i (dx_i/dtheta - (-dF/dtheta / p)(x_i))`` has mean
    zero. One backward pass per weight vector gives that sum for every parameter at once with
    scalar parameters (the gradient of ``sum_i w_i x_i``); :data:`SCALAR_MEAN_CALLS` calls give
    independent sums, and a t-test on them needs no per-draw gradient. Two weight vectors, at
    :data:`SCALAR_MEAN_PICKS` random rows with ``u = F(x)`` inside ``[SCALAR_MEAN_TAIL, 1 -
    SCALAR_MEAN_TAIL]``: ``2u - 1`` (odd: a StudentT's df gradient is odd in ``x``) and ``|2u -
    1| - 1/2`` (even: a Beta's concentration gradients vanish at both ends). Per-draw
    gradients replaced by the call's mean (every sum of a plain backward pass right) miss the
    expected gradient's variation with ``x``, which these weights follow."""
    from scipy import stats as sstats

    leaves = {k: one[k].detach().clone().requires_grad_(True) for k in names}
    kinds = ("2u - 1", "|2u - 1| - 1/2")
    sums = {k: np.zeros((SCALAR_MEAN_CALLS, 2)) for k in names}
    sizes = {k: np.zeros((SCALAR_MEAN_CALLS, 2)) for k in names}
    counted = {k: 0 for k in names}
    picked = SCALAR_MEAN_CALLS * min(SCALAR_MEAN_PICKS, n)
    for c in range(SCALAR_MEAN_CALLS):
        dist = make(family, {**one, **leaves}, t, validate=False)
        s = seed_for(f"{seed}-{c}")
        x = dist.rsample((n,), seed=s)
        if not x.requires_grad:
            raise CheckFailure("rsample() with scalar parameters returned a tensor without "
                               "gradient", n=n, seed=s)
        xn = x.detach().double().numpy().reshape(-1)
        picks = np.sort(rng.choice(xn.size, size=min(SCALAR_MEAN_PICKS, xn.size),
                                   replace=False))
        F0, want, valid = _scalar_want(family, dist, xn[picks], names, SCALAR_MEAN_TAIL)
        for k in names:
            counted[k] += int(valid.sum())
        v = 2 * np.clip(F0, 0, 1) - 1
        for i, w in enumerate((v, np.abs(v) - 0.5)):
            w = np.where(valid, w, 0.0)
            full = torch.zeros(xn.size, dtype=torch.float64)
            full[torch.from_numpy(picks)] = torch.from_numpy(w)
            grads = torch.autograd.grad((x.reshape(-1).double() * full).sum(),
                                        [leaves[k] for k in names], allow_unused=True,
                                        retain_graph=i == 0)
            for k, g in zip(names, grads):
                got = 0.0 if g is None else float(g)
                terms = np.where(valid, w * np.nan_to_num(want[k]), 0.0)
                sums[k][c, i] = got - float(terms.sum())
                sizes[k][c, i] = float(np.abs(terms).sum())
    for k in names:
        if counted[k] < picked // 4:
            raise Skip(f"too few draws where the finite difference of F in {k} is reliable "
                       f"({counted[k]} of {picked})")
    thr = float(sstats.t.isf(alpha / (2 * 2 * len(names)), SCALAR_MEAN_CALLS - 1))
    out = {}
    for k in names:
        mean = sums[k].mean(0)
        sd = sums[k].std(0, ddof=1)
        with np.errstate(all="ignore"):
            tstat = np.where(sd > 0, np.abs(mean) / sd * math.sqrt(SCALAR_MEAN_CALLS),
                             np.where(mean == 0, 0.0, math.inf))
        tstat = np.where(np.isfinite(sums[k]).all(0), tstat, math.inf)
        j = int(np.argmax(tstat))
        size = sizes[k][:, j].mean()
        out[k] = (float(tstat[j]), thr, f"the weights {kinds[j]}",
                  float(abs(mean[j]) / (size + 1e-300)))
    return out


def _quantile_path_params(t: Target, family: str, params: dict[str, Any],
                          support: FamilySupport, names: list[str], seed: Any
                          ) -> list[set[str]]:
    """Per grid point of ``params``, those of ``names`` along whose quantile path the
    backend's draws move: the per-sample identity ``dx/dtheta = -dF/dtheta / p`` holds at
    every one of :data:`GRAD2_SAMPLES` batched samples where the finite difference is reliable
    (at least one), as ``grad_second`` finds them. A parameter whose draws take another valid
    path (StudentT's df through a chi-square, a Beta through two Gammas) is left out: such a
    path satisfies the identity in conditional mean only, which ``grad_cdf`` judges."""
    law_of = cases.CASES[family].law
    assert law_of is not None
    points = math.prod(_torch_dist(family, params).batch_shape)
    out: list[set[str]] = [set() for _ in range(points)]
    big, leaves = _per_sample_leaves(family, params, support, GRAD2_SAMPLES)
    names = [k for k in names if k in leaves]
    if not names:
        return out
    dist = make(family, big, t, validate=False)
    x = dist.rsample((), seed=seed)
    if not x.requires_grad:
        return out
    grads = torch.autograd.grad(x.sum(), [leaves[k] for k in names], allow_unused=True)
    xn = x.detach().double().numpy().reshape(-1)
    p = _copy_params(family, dist, x)
    law = law_of(p)
    with np.errstate(all="ignore"):
        F0, pdf = law.cdf(xn), law.pdf(xn)
    col = np.arange(xn.size) % points
    for k, g in zip(names, grads):
        got = (np.zeros_like(xn) if g is None
               else g.detach().double().numpy(force=True).reshape(-1))
        dF, rel = _fd_derivative(family, p, k, xn, F0 > 0.5)
        with np.errstate(all="ignore"):
            want = -dF / pdf
            ok = ((pdf > 0) & (np.minimum(F0, 1 - F0) > 1e-8) & (rel < 1e-6)
                  & np.isfinite(want))
            match = ~ok | (np.abs(got - want) <= GRAD_RTOL * np.abs(want) + 1e-12)
        for j in range(points):
            at = col == j
            if ok[at].any() and match[at].all():
                out[j].add(k)
    return out


def _grad_scalar(t: Target, family: str, grid: Grid, fixed: list[str], shape: list[str],
                 support: FamilySupport) -> Callable[[Runner], Outcome]:
    """The per-sample identity of the location and scale parameters ``fixed``
    (``Case.pathwise``), and of the other parameters ``shape`` at the grid points where the
    backend's batched draws move along their quantile path (:func:`_quantile_path_params`;
    elsewhere ``grad_cdf``'s conditional-mean fallback judges them), with scalar parameters:
    each grid point in a call of its own of
    ``scalar_rows(family)`` values (the shape of ``scalar_ks``'s ``rsample()``), its
    gradient weighed at random rows. A scalar leaf's gradient is a sum over the call, which
    every other gradient check sees only as such: a per-draw gradient replaced by the call's
    mean noise keeps the sum right. ``sum_i w_i dx_i/dtheta`` (one backward pass per weight
    vector ``w``, zero but at ``SCALAR_GRAD_PICKS`` rows) must equal ``sum_i w_i (-dF/dtheta
    / p)(x_i)`` to :func:`grad_rtol` of ``sum_i |w_i dF/dtheta / p|``: deterministic, no
    alpha. The weights are standard normal (``SCALAR_GRAD_WEIGHTS`` vectors) and, per
    parameter, of the signs of its expected terms (a gradient off in proportion is off by as
    much in that sum). The float32 grid's points are drawn in float32."""
    dtype = grid.dtype or torch.float64
    rtol = grad_rtol(dtype)

    def fn(r: Runner) -> Outcome:
        params = grid.build(dtype)
        pts = grid_points(family, params)
        n = scalar_rows(family)
        seed = r.seed(f"{t.name}-{family}-{grid.label}-grad_scalar")
        rng = _weights_rng(seed)
        on_path = (_quantile_path_params(t, family, grid.build(torch.float64), support, shape,
                                         seed_for(f"{seed}-path"))
                   if shape else [set() for _ in pts])
        judged = sorted(set().union(*on_path), key=shape.index)
        # the other parameters, point by point: drawn along another valid path, judged in
        # conditional mean (_scalar_conditional_mean)
        # Not on the circle (VonMises): draws wrapped into [-pi, pi) cross the cut, and the
        # identity takes a boundary term there (grad_cdf judges them on parameter copies).
        off_path = [[] if cases.CASES[family].circular else
                    [k for k in shape if k not in on_path[j]] for j in range(len(pts))]
        off_points = sum(1 for off in off_path if off)
        if not fixed and not judged and not off_points:
            raise Skip("no parameter whose batched draws move along its quantile path, and "
                       "the others on the circle (grad_cdf judges them)")
        worst, errs, where = 0.0, {k: 0.0 for k in fixed + judged}, ""
        # at the worst: the parameter, |got - expected|, |expected|, sum_i |w_i want_i|
        at: tuple[str, float, float, float] = ("", math.nan, math.nan, math.nan)
        mean_t: dict[str, float] = {}
        mean_bad: list[tuple[float, str]] = []
        for j in range(len(pts)):
            names = fixed + [k for k in judged if k in on_path[j]]
            one = point_params(family, params, j)
            if off_path[j]:
                tests = _scalar_conditional_mean(
                    t, family, one, off_path[j], n, f"{seed}-{j}-mean", rng,
                    ALPHA_SCALAR_MEAN / off_points)
                for k, (ts, thr, span, bias) in tests.items():
                    mean_t[k] = max(mean_t.get(k, 0.0), ts)
                    if not ts <= thr:
                        mean_bad.append((ts / thr, (
                            f"{grid.label}[{j}] ({pts[j]}): dx/d{k}, drawn along another path "
                            f"than its quantile path, is not right in conditional mean: the "
                            f"weighted residuals sum_i w_i (dx_i/d{k} - (-dF/d{k} / p)(x_i)) of "
                            f"{SCALAR_MEAN_CALLS} calls of {n} values have a mean of {bias:.3g} "
                            f"of their terms' size with {span} (|t| = {ts:.3g} > {thr:.3g})")))
            if not names:
                continue
            leaves = {k: one[k].detach().clone().requires_grad_(True) for k in names}
            dist = make(family, {**one, **leaves}, t, validate=False)
            s = seed_for(f"{seed}-{j}")
            x = dist.rsample((n,), seed=s)
            if not x.requires_grad:
                raise CheckFailure(f"rsample() with scalar parameters returned a tensor "
                                   f"without gradient at {grid.label}[{j}] ({pts[j]})",
                                   n=n, seed=s, point=f"{grid.label}[{j}] ({pts[j]})")
            xn = x.detach().double().numpy().reshape(-1)
            picks = np.sort(rng.choice(xn.size, size=min(SCALAR_GRAD_PICKS, xn.size),
                                       replace=False))
            _, want, valid = _scalar_want(family, dist, xn[picks], names, 1e-12)
            if valid.sum() < picks.size // 4:
                raise Skip(f"too few draws where the finite difference is reliable at "
                           f"{grid.label}[{j}] ({pts[j]})")
            # Random weights (a per-draw gradient replaced by the call's mean noise), and for
            # each parameter weights of its terms' signs (no cancellation: a gradient 5% off
            # in proportion is 5% off in the sum; random signs dilute it to about 0.05 /
            # sqrt(rows)).
            weights = [(np.where(valid, rng.standard_normal(picks.size), 0.0), names)
                       for _ in range(SCALAR_GRAD_WEIGHTS)]
            weights += [(np.where(valid, np.sign(np.nan_to_num(want[k]))
                                  * np.abs(rng.standard_normal(picks.size)), 0.0), [k])
                        for k in names]
            for wi, (w, judged) in enumerate(weights):
                full = torch.zeros(xn.size, dtype=torch.float64)
                full[torch.from_numpy(picks)] = torch.from_numpy(w)
                grads = torch.autograd.grad(
                    (x.reshape(-1).double() * full).sum(), [leaves[k] for k in names],
                    allow_unused=True, retain_graph=wi + 1 < len(weights))
                for k, g in zip(names, grads):
                    if k not in judged:
                        continue
                    got = 0.0 if g is None else float(g)
                    expect = float(np.sum(w * want[k]))
                    size = float(np.sum(np.abs(w * want[k]))) + 1e-300
                    err = abs(got - expect) / size if math.isfinite(got) else math.inf
                    errs[k] = max(errs[k], err)
                    if not err <= worst:
                        worst = err
                        at = (k, abs(got - expect), abs(expect), size)
                        where = (f"{grid.label}[{j}] ({pts[j]}): d/d{k} of sum_i w_i x_i = "
                                 f"{got:.6g}, expected {expect:.6g} ("
                                 + ("random weights" if wi < SCALAR_GRAD_WEIGHTS else
                                    "weights of the expected terms' signs")
                                 + f" at {int(valid.sum())} of the call's {xn.size} draws)")
        details: dict[str, Any] = {"max_rel_error": errs}
        if mean_t:
            details["conditional_mean_t"] = mean_t
        out = Outcome(statistic=worst, threshold=rtol, n=n, seed=seed, details=details,
                      evidence=[GradErrors(t.name, family, grid.label,
                                           "max relative error (scalar parameters)", errs,
                                           f"{rtol:g}")] if errs else [])
        if not worst <= rtol:  # NaN fails
            out.point = where.split(":")[0]
            k, diff, expected, size = at
            plain = diff / expected if expected > 0 else math.inf
            raise CheckFailure(
                f"pathwise gradient with scalar parameters is wrong at {where}: relative "
                f"error |got - expected| / |expected| = {plain:.3g}. The check's statistic "
                f"divides |got - expected| = {diff:.3g} by the size of the weighted sum's "
                f"expected terms, sum_i |w_i dx_i/d{k}| = {size:.3g} (the random weights' "
                f"signs can bring the expected sum near 0): {worst:.3g} > {rtol:g}. The per-draw "
                f"gradients of a call must be each draw's own (dx_i/d"
                f"{max(errs, key=lambda k: errs[k])} is fixed draw by draw), not only right in "
                f"their sum", out)
        if mean_bad:
            ratio, what = max(mean_bad)
            out.point = what.split(":")[0]
            raise CheckFailure(
                f"pathwise gradient with scalar parameters is wrong at {what}. The per-draw "
                "gradients of a call must be each draw's own, right at least in conditional "
                "mean given the value (a call's mean gradient for every draw keeps only "
                "their sum right)", out)
        said = []
        if errs:
            said.append(f"per-draw gradients with scalar parameters right: max error "
                        f"{worst:.2g} of the weighted sums' terms (sum_i |w_i dx_i/dtheta|)")
        if mean_t:
            said.append("right in conditional mean along another path ("
                        + ", ".join(f"{k}: max |t| {v:.2f}" for k, v in mean_t.items())
                        + f"; {SCALAR_MEAN_CALLS} calls a point)")
        out.message = "; ".join(said)
        return out

    return fn


def _grad_noise(t: Target, family: str, grid: Grid,
                support: FamilySupport) -> Callable[[Runner], Outcome]:
    noise = cases.CASES[family].noise
    assert noise is not None
    dtype = grid.dtype or torch.float64
    rtol = grad_rtol(dtype)

    def fn(r: Runner) -> Outcome:
        m = GRAD_SAMPLES
        params = _build(family, grid, dtype)
        big, leaves = _per_sample_leaves(family, params, support, m)
        if not leaves:
            raise Skip("no parameter with a pathwise gradient")
        dist = make(family, big, t, validate=False)
        seed = r.seed(f"{t.name}-{family}-{grid.label}-grad_noise")
        x = dist.rsample((), seed=seed)
        names = list(leaves)
        totals = torch.autograd.grad(noise(x, big).sum(), [leaves[k] for k in names],
                                     allow_unused=True)
        partials = torch.autograd.grad(noise(x.detach(), big).sum(),
                                       [leaves[k] for k in names], allow_unused=True)
        worst, where, errs = _noise_motion(
            names, totals, partials,
            lambda shape, idx: _point_of(family, params, grid.label, shape, idx))
        out = Outcome(statistic=worst, threshold=rtol, n=m, seed=seed,
                      details={"max_rel_error": errs},
                      evidence=[GradErrors(t.name, family, grid.label,
                                           "max |d noise/d theta| / |partial|", errs,
                                           f"{rtol:g}")])
        if not worst <= rtol:  # NaN fails
            raise CheckFailure(
                f"the noise recovered from x moves with {where}: |d noise/d theta| / "
                f"|partial| = {worst:.3g} > {rtol:g}", out)
        out.message = f"noise invariant to {rtol:g} (max {worst:.2g})"
        return out

    return fn


def _mean_leaves(family: str, params: dict[str, Any], support: FamilySupport
                 ) -> tuple[dict[str, Any], dict[str, torch.Tensor], list[str]]:
    """A copy of ``params`` with differentiable leaves (for the analytic moments), its leaves,
    and the names of those the backend reparameterizes (Skip where there is none)."""
    small = dict(params)
    leaves0 = grad_leaves(family, small)
    allowed = support.rsample_params
    names = [k for k in leaves0 if in_rsample_params(allowed, k)]
    if not names:
        raise Skip("no parameter with a pathwise gradient")
    return small, leaves0, names


def _grad_mean(t: Target, family: str, grid: Grid,
               support: FamilySupport) -> Callable[[Runner], Outcome]:
    moments = cases.CASES[family].moments
    assert moments is not None
    dtype = grid.dtype or torch.float64

    def fn(r: Runner) -> Outcome:
        m = GRAD_MEAN_SAMPLES[1 if r.quick else 0]
        params = _build(family, grid, dtype)
        seed = r.seed(f"{t.name}-{family}-{grid.label}-grad_mean")
        small, leaves0, names = _mean_leaves(family, params, support)
        tdist = _torch_dist(family, params)
        ev_shape = tdist.batch_shape + tdist.event_shape
        wr = _weights_rng(seed)
        w1 = torch.as_tensor(wr.standard_normal(tuple(ev_shape)), dtype=torch.float64)
        w2 = torch.as_tensor(wr.standard_normal(tuple(ev_shape)), dtype=torch.float64)
        if family == "OneHotCategoricalStraightThrough":
            w2 = torch.zeros_like(w2)  # straight-through is exact for E[x] only
        spec = FAMILIES[family]
        canon = {k: getattr(getattr(torch.distributions, family)(**small), k)
                 for k in spec.params if k != "logits" and k not in spec.integer_params}
        e1, e2 = moments(canon)
        analytic = torch.autograd.grad((w1 * e1).sum() + (w2 * e2).sum(),
                                       [leaves0[k] for k in names], allow_unused=True)
        _, grads, _ = _per_sample_draws(
            t, family, params, support, m, seed,
            lambda x: (w1 * x + w2 * x * x).flatten(1).sum(-1), names)
        per = [grads[k] for k in names]
        total_elems = sum(leaves0[k].numel() for k in names)
        alpha = ALPHA_CHECK / total_elems
        worst_ratio, chosen, where, zs, const = -1.0, None, "", {}, ""
        for k, a, g in zip(names, analytic, per):
            a_np = np.zeros(tuple(leaves0[k].shape)) if a is None else a.double().numpy()
            g_np = (np.zeros((m,) + tuple(leaves0[k].shape)) if g is None
                    else g.detach().double().numpy())
            test = mean_z_test(g_np, a_np, alpha, EXACT_TOL[dtype == torch.float32])
            # a NaN gradient makes a NaN z, which compares False with any threshold: the worst
            ratio = np.where(np.isnan(test.ratio), np.inf, test.ratio)
            stat_k = np.where(np.isnan(test.statistic), np.inf, test.statistic)
            if k == "scale_tril" and ratio.ndim >= 2:
                # Entries above the diagonal are not parameters of a lower-triangular factor:
                # torch multiplies by the whole matrix, TFP reads the lower triangle only.
                upper = np.triu(np.ones(ratio.shape[-2:], dtype=bool), 1)
                ratio, stat_k = np.where(upper, 0.0, ratio), np.where(upper, 0.0, stat_k)
            if not ratio.size:
                continue
            zs[k] = float(np.max(stat_k))
            j = np.unravel_index(int(np.argmax(np.where(np.isfinite(ratio), ratio, np.inf))),
                                 ratio.shape)
            if ratio[j] > worst_ratio:
                worst_ratio = float(ratio[j])
                chosen = (float(stat_k[j]), float(test.threshold[j]))
                jj = tuple(int(i) for i in j)
                const = _no_spread(g_np.reshape(m, -1)[:, int(np.ravel_multi_index(
                    jj, g_np.shape[1:])) if jj else 0])
                at = _point_of(family, params, grid.label, tuple(leaves0[k].shape), jj)
                where = (f"{k}{[int(i) for i in j]}{at}: mean pathwise gradient "
                         f"{test.estimate[j]:.6g}, analytic {a_np[j]:.6g}")
        stat, thr = chosen if chosen is not None else (0.0, z_threshold(alpha))
        out = Outcome(statistic=stat, threshold=thr, n=m, seed=seed, alpha=alpha,
                      detectable=z_detectable(1.0, alpha) / math.sqrt(m),
                      details={"max_abs_z": zs},
                      evidence=[GradErrors(t.name, family, grid.label,
                                           "max |z| of the mean pathwise gradient", zs,
                                           f"{thr:.3g}")])
        if worst_ratio > 1:
            how = (f"the pathwise gradient is {const} draws, the same in each, so its mean "
                   "is that value (a gradient that should vary with the draw and does not, "
                   "or a deterministic one, as a straight-through estimator's, with the wrong "
                   "value)" if const else
                   f"|z| = {stat:.3g} > {thr:.3g}")
            raise CheckFailure(f"mean pathwise gradient of E[w1.x + w2.x^2] is off: {how} "
                               f"({where})", out)
        out.message = f"max |z| {stat:.2f}"
        return out

    return fn


#: ``grad_sweep`` of the multivariate families with a mean gradient check: parameter points of
#: the sweep (quick, full) and copies drawn at each (see :func:`_grad_mean_sweep`).
MEAN_SWEEP_POINTS = (4096, 16384)
MEAN_SWEEP_COPIES = 16


def _sweep_batch(family: str, points: int) -> dict[str, Any]:
    """:func:`..cases.sweep_params` with every tensor parameter batched: an element not swept
    (a ``loc`` of shape ``(3,)`` beside a swept ``scale_tril``) is repeated along the batch, so
    that each point has its own copy and its own gradient."""
    c = cases.CASES[family]
    assert c.sweep is not None
    params = cases.sweep_params(family, points, torch.float64)
    swept = {cases.sweep_key(k)[0] for k in c.sweep}
    for k, v in params.items():
        if isinstance(v, torch.Tensor) and v.dim() and k not in swept:
            params[k] = v.expand((points, *v.shape)).clone()
    return params


def _at(*index: int | None) -> tuple[Any, ...]:
    """An index tuple: None stands for a whole dimension (``slice(None)``)."""
    return tuple(slice(None) if i is None else i for i in index)


def _grad_mean_sweep(t: Target, family: str,
                     support: FamilySupport) -> Callable[[Runner], Outcome]:
    """``grad_mean``'s identity, ``E[d f(x)/d theta] = d E[f(x)]/d theta``, across the family's
    sweep ranges: :data:`MEAN_SWEEP_COPIES` pathwise gradients at each of
    :data:`MEAN_SWEEP_POINTS` points (:func:`..cases.sweep_params`), cut into the sample sweep's
    bands along each swept element (``layers/sweep.py``).

    Each parameter element ``theta_k`` is judged with two objectives: ``grad_mean``'s
    ``f = w1.x + w2.x^2`` (random weights), and ``f_k = v1.x + v2.x^2`` with ``v1``, ``v2`` the
    analytic derivatives of ``E[x]`` and ``E[x^2]`` in ``theta_k`` at the point: the linear and
    quadratic statistic whose mean moves most with ``theta_k``, so a gradient scaled by
    ``1 + e`` moves its mean by ``e (|v1|^2 + |v2|^2)``. (Random weights can nearly cancel: a
    Dirichlet component of concentration 30 had a pathwise gradient of signal-to-noise 0.18
    with them, 2.7 with its own mean's.)

    The points' gradients differ in scale by orders of magnitude, so each point's residuals
    ``r = d f/d theta_k - d E f/d theta_k`` are put on one scale by cross-fitting: the copies
    are split in halves A and B, and the point's statistic is
    ``y = (mean_B r / rms_A r + mean_A r / rms_B r) / 2``. The halves are independent draws,
    so under the right gradient each term is a mean-zero numerator times an independent factor:
    ``E y = 0`` exactly, whatever the law of ``r``. Each band's ``y`` values (hundreds to
    thousands of independent points) are z-tested for mean zero (:func:`..stats.mean_z_test`,
    skewness corrected) for each element and objective, at ``ALPHA_SWEEP`` split over every
    test. A point whose residuals do not vary (a straight-through gradient: deterministic)
    has ``y = 0`` where its mean residual is zero to rounding, and fails otherwise.
    """
    c = cases.CASES[family]
    moments = c.moments
    assert moments is not None and c.sweep is not None

    sweep = c.sweep

    def fn(r: Runner) -> Outcome:
        points = MEAN_SWEEP_POINTS[0 if r.quick else 1]
        copies = MEAN_SWEEP_COPIES
        params = _sweep_batch(family, points)
        seed = r.seed(f"{t.name}-{family}-sweep-grad_sweep")
        small, leaves0, names = _mean_leaves(family, params, support)
        spec = FAMILIES[family]
        canon = {k: getattr(getattr(torch.distributions, family)(**small), k)
                 for k in spec.params if k != "logits" and k not in spec.integer_params}
        e1, e2 = moments(canon)
        ev = tuple(e1.shape[1:])
        wr = _weights_rng(seed)
        w1 = torch.as_tensor(wr.standard_normal((points, *ev)), dtype=torch.float64)
        w2 = torch.as_tensor(wr.standard_normal((points, *ev)), dtype=torch.float64)
        if family == "OneHotCategoricalStraightThrough":
            w2 = torch.zeros_like(w2)  # straight-through is exact for E[x] only
        # The elements judged (scale_tril's upper triangle is not a parameter of a lower
        # triangular factor: see _grad_mean), and each one's objective f_k: the derivatives
        # of E[x] and E[x^2] in it, one event element at a time.
        elements: list[tuple[str, tuple[int, ...]]] = []
        for k in names:
            shape = tuple(leaves0[k].shape[1:])
            for idx in np.ndindex(*shape):
                if k == "scale_tril" and idx[-1] > idx[-2]:
                    continue
                elements.append((k, tuple(int(i) for i in idx)))
        v1 = {e: torch.zeros((points, *ev), dtype=torch.float64) for e in elements}
        v2 = {e: torch.zeros((points, *ev), dtype=torch.float64) for e in elements}
        for moment, v in ((e1, v1), (e2, v2)):
            if family == "OneHotCategoricalStraightThrough" and v is v2:
                continue
            for j in np.ndindex(*ev):
                gs = torch.autograd.grad(moment[_at(None, *j)].sum(),
                                         [leaves0[k] for k in names], retain_graph=True,
                                         allow_unused=True)
                for k, g in zip(names, gs):
                    if g is None:
                        continue
                    for e in elements:
                        if e[0] == k:
                            v[e][_at(None, *j)] = g[_at(None, *e[1])].detach()
        # Two kinds of objective: the random one (every parameter's gradient from one
        # backward pass), and for each parameter the sum of its elements' own objectives
        # (its elements' gradients from one backward pass: a backward pass a parameter, not
        # an element; each element's own term dominates its gradient's mean).
        objectives: list[tuple[str, torch.Tensor, torch.Tensor, list[str]]] = [
            ("w", w1, w2, names)]
        for k in names:
            a1, a2 = torch.zeros_like(w1), torch.zeros_like(w2)
            for e in elements:
                if e[0] != k:
                    continue
                # Random signs, and each element's term at unit norm: the elements' terms
                # cancel in no systematic way (a Dirichlet's mean derivatives in its three
                # concentrations sum to nearly nothing).
                sign = torch.as_tensor(wr.choice([-1.0, 1.0], size=points))
                norm = torch.sqrt((v1[e] ** 2 + v2[e] ** 2).flatten(1).sum(1))
                f = torch.where(norm > 0, sign / norm, torch.zeros_like(norm))
                f = f.reshape((points,) + (1,) * len(ev))
                a1, a2 = a1 + f * v1[e], a2 + f * v2[e]
            objectives.append(("own", a1, a2, [k]))
        judged = [(o, e) for o, (_, _, _, ks) in enumerate(objectives)
                  for e in elements if e[0] in ks]
        analytic: dict[tuple[int, tuple[str, tuple[int, ...]]], np.ndarray] = {}
        for o, (_, a1, a2, ks) in enumerate(objectives):
            gs = torch.autograd.grad((a1 * e1).sum() + (a2 * e2).sum(),
                                     [leaves0[k] for k in ks], retain_graph=True,
                                     allow_unused=True)
            for k, g in zip(ks, gs):
                for e in elements:
                    if e[0] == k:
                        analytic[o, e] = (np.zeros(points) if g is None else
                                          g[_at(None, *e[1])].detach().double().numpy())
        grads = {oe: np.zeros((copies, points)) for oe in judged}
        for i, s in enumerate(chunk_seeds(seed, copies, 1)):
            big, leaves = _per_sample_leaves(family, params, support, 1)
            dist = make(family, big, t, validate=False)
            x = dist.rsample((), seed=s)
            if not x.requires_grad:
                raise CheckFailure("rsample() returned a tensor without gradient",
                                   n=points * copies, seed=seed)
            x = x[0].double()
            for o, (_, a1, a2, ks) in enumerate(objectives):
                gs = torch.autograd.grad((a1 * x + a2 * x * x).sum(), [leaves[k] for k in ks],
                                         retain_graph=o + 1 < len(objectives),
                                         allow_unused=True)
                for k, g in zip(ks, gs):
                    for e in elements:
                        if e[0] == k and g is not None:
                            grads[o, e][i] = g[_at(0, None, *e[1])].detach().double().numpy()
        half = copies // 2
        tol = EXACT_TOL[0]
        ys: dict[str, np.ndarray] = {}
        for o, (k, idx) in judged:
            kind = objectives[o][0]
            res = grads[o, (k, idx)] - analytic[o, (k, idx)]
            scale = 1.0 + np.abs(analytic[o, (k, idx)])
            with np.errstate(all="ignore"):
                mean_a, mean_b = res[:half].mean(0), res[half:].mean(0)
                rms_a = np.sqrt((res[:half] ** 2).mean(0))
                rms_b = np.sqrt((res[half:] ** 2).mean(0))
                y = 0.5 * (mean_b / rms_a + mean_a / rms_b)
                # no spread: exact to rounding (0) or exactly wrong (infinite)
                flat = (rms_a <= 0.1 * tol * scale) | (rms_b <= 0.1 * tol * scale)
                off = np.abs(res.mean(0)) > tol * scale
                y = np.where(flat, np.where(off, np.inf, 0.0), y)
            if kind == "own":
                # signed by the mean gradient: a gradient scaled by 1 + e moves every point's
                # y the same way, by e |d E f / d theta| / sd (the signs above are random)
                y = y * np.sign(analytic[o, (k, idx)])
            label = f"{k}{list(idx)}" if idx else k
            ys[f"{label} ({'its own objective' if kind == 'own' else 'w1.x + w2.x^2'})"] = y
        swept = {}
        for key in sweep:
            name, index = cases.sweep_key(key)
            v = params[name].detach().double().numpy()
            swept[key] = v[(slice(None), *(index or ()))]
        bands: list[tuple[str, np.ndarray]] = [("the whole sweep", np.arange(points))]
        for key, v in swept.items():
            order = np.argsort(v, kind="stable")
            for b in range(SWEEP_BANDS):
                idx_b = order[b * points // SWEEP_BANDS:(b + 1) * points // SWEEP_BANDS]
                bands.append((f"{key} in [{float(v[idx_b[0]]):.4g}, "
                              f"{float(v[idx_b[-1]]):.4g}]", idx_b))
        tests = len(bands) * len(ys)
        alpha = ALPHA_SWEEP / tests
        worst: tuple[float, str, float, float, float] = (-1.0, "", 0.0, 0.0, 0.0)
        zs: dict[str, float] = {}
        rows = []
        for band, idx_b in bands:
            row: dict[str, Any] = {"band": band, "n": int(idx_b.size), "ratio": 0.0}
            for label, y in ys.items():
                yy = y[idx_b]
                if not np.isfinite(yy).all():
                    test_z, thr, ratio, est = np.inf, z_threshold(alpha), np.inf, np.nan
                else:
                    test = mean_z_test(yy[:, None], 0.0, alpha)
                    test_z = float(test.deviation[0])
                    thr = float(test.threshold[0])
                    ratio = abs(test_z) / thr
                    est = float(test.estimate[0])
                name = label.split(" (")[0]
                zs[name] = max(zs.get(name, 0.0), abs(test_z))
                if ratio > worst[0]:
                    worst = (ratio, f"{band}: {label}", test_z, thr, est)
                if ratio > row["ratio"]:
                    row.update(ratio=ratio, parameter=label, z=test_z, mean_y=est)
            row["ratio"] = round(float(row["ratio"]), 4)
            rows.append(row)
        ratio, where, z, thr, est = worst
        out = Outcome(statistic=abs(z), threshold=thr, n=points * copies, seed=seed,
                      alpha=alpha,
                      detectable=z_detectable(1.0, alpha) / math.sqrt(points // SWEEP_BANDS),
                      point=f"sweep: {where}",
                      details={"bands": rows, "points": points, "copies": copies,
                               "ranges": {k: list(v) for k, v in sweep.items()}},
                      evidence=[GradErrors(t.name, family, "sweep",
                                           "max |z| of the mean cross-fitted residual", zs,
                                           f"{thr:.3g}")])
        if ratio > 1:
            raise CheckFailure(
                f"the mean pathwise gradient is off at {where}: z = {z:.3g} beyond "
                f"{thr:.3g} (mean cross-fitted residual {est:.3g}; {copies} gradients at each "
                f"of {points} points of the sweep, {tests} tests at alpha_i = {alpha:.2g})",
                out)
        out.message = (f"{len(bands)} bands of the sweep within their laws: worst |z| "
                       f"{abs(z):.3g} at {where} ({ratio:.2f} of its threshold)")
        return out

    return fn
