"""Layer 5, agreement between backends: do two backends' draws have the same law?

For every pair of backends and every grid of a family both draw, the mean normal score
(``agree_pit_mean``) and mean squared normal score (``agree_pit_var``) of their ``sample``
draws are compared with a two-sample z-test. Under the reference law the scores are exactly
N(0, 1): their means are exactly normal (variance 1/n), the means of their squares scaled
chi-square (variance 2/n, near normal at these n). The summaries come from the sampler layer's
draws (:meth:`Runner.pit_scores`), so this layer draws nothing new. Each check compares every
grid point of every continuous statistic, its alpha split over all of them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import torch

from ...core.families import FAMILIES
from ..grids import Grid, grid_points
from ..model import Check, CheckFailure, Outcome, Skip
from ..runner import Runner, Target
from ..stats import ALPHA_CHECK, two_sample_z_test

__all__ = ["checks"]


def checks(a: Target, b: Target, family: str, grid: Grid) -> Iterator[Check]:
    if FAMILIES[family].kind != "continuous":
        return  # only continuous statistics have exact normal scores
    for which in ("mean", "var"):
        yield Check(f"{a.name}+{b.name}", family, grid.label, f"agree_pit_{which}", "agreement",
                    True, _agree(a, b, family, grid, which), involves=(a.name, b.name))


def _agree(a: Target, b: Target, family: str, grid: Grid,
           which: str) -> Callable[[Runner], Outcome]:
    def fn(r: Runner) -> Outcome:
        scores = []
        for t in (a, b):
            try:
                scores.append(r.pit_scores(t, family, grid, "sample", which))
            except Exception as exc:  # noqa: BLE001 - the sampler checks report the failure
                raise Skip(f"no normal scores from {t.name}: {type(exc).__name__}: "
                           f"{str(exc)[:200]}") from None
        sa, sb = scores
        labels = [k for k in sa.values if k in sb.values]
        va = np.array([sa.values[k] for k in labels], dtype=np.float64)
        vb = np.array([sb.values[k] for k in labels], dtype=np.float64)
        ok = np.isfinite(va) & np.isfinite(vb)
        m = int(ok.sum())
        if m == 0:
            raise Skip("no comparable normal scores")
        alpha = ALPHA_CHECK / m
        var = 1.0 if which == "mean" else 2.0
        test = two_sample_z_test(np.where(ok, va, 0.0).ravel(), np.where(ok, vb, 0.0).ravel(),
                                 var, sa.n, sb.n, alpha)
        z = np.where(ok.ravel(), test.statistic, 0.0)
        i = int(np.argmax(z))
        label, j = labels[i // va.shape[1]], i % va.shape[1]
        pts = grid_points(family, grid.build(torch.float64))
        point = f"{grid.label}[{j}] ({pts[j]})"
        out = Outcome(statistic=float(z[i]), threshold=float(test.threshold[0]), n=sa.n,
                      alpha=alpha, detectable=test.detectable, point=point,
                      details={"z_max": float(z[i]), "compared": m})
        if z[i] > test.threshold[0]:
            raise CheckFailure(
                f"{a.name} and {b.name} disagree on the {which} of the normal scores of "
                f"{label} at {point}: z = {test.deviation[i]:.3g} (|z| > "
                f"{test.threshold[0]:.3g}; n = {sa.n} and {sb.n})", out)
        out.message = f"max |z| = {z[i]:.2f} ({label} at {grid.label}[{j}])"
        return out

    return fn
