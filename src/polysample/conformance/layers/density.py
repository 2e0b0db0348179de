"""Layer 2, densities: a backend's own ``log_prob`` against SciPy, and its gradients.

Only for families the backend scores itself (``FamilySupport.log_prob``; otherwise torch scores
them and there is nothing of the backend's to test) and that have an independent reference
density (see :mod:`..cases`). ``log_prob_f64`` / ``log_prob_f32`` compare with SciPy at five
draws of torch's sampler per grid point (relative tolerance 1e-6 in float64, 1e-4 in float32);
``log_prob_gradcheck`` runs ``torch.autograd.gradcheck`` in float64 (skipped for parameters on
a simplex, where finite differences leave the constraint).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch

from ...core.backend import FamilySupport
from ...core.families import FAMILIES
from .. import cases
from ..grids import example_params, grad_leaves, grid_points
from ..model import Check, CheckFailure, Outcome, Skip
from ..reference import params_np
from ..runner import Runner, Target, make

__all__ = ["checks"]


def checks(t: Target, family: str, support: FamilySupport) -> Iterator[Check]:
    c = cases.CASES[family]
    if not support.log_prob or not c.has_density:
        return
    spec = FAMILIES[family]

    def points(dtype: torch.dtype) -> tuple[dict[str, Any], Any, torch.Tensor]:
        params = example_params(family, (3,), dtype)
        tdist = getattr(torch.distributions, family)(**example_params(family, (3,), torch.float64))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(1234)
            value = tdist.sample((5,))
        if family == "Wishart":
            value = (value + value.transpose(-1, -2)) / 2
        return params, tdist, value.to(dtype) if spec.kind != "index" else value

    def logprob(dtype: torch.dtype, rtol: float) -> Callable[[Runner], Outcome]:
        def fn(r: Runner) -> Outcome:
            params, tdist, value = points(dtype)
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
                    point=f"example[{j}] ({pts[j]})")
            return Outcome(f"max rel. error {worst:.2g}", statistic=worst, threshold=rtol)
        return fn

    yield Check(t.name, family, "example", "log_prob_f64", "density", False,
                logprob(torch.float64, 1e-6))
    yield Check(t.name, family, "example", "log_prob_f32", "density", False,
                logprob(torch.float32, 1e-4))

    if not c.gradcheck:
        return

    def gradcheck(r: Runner) -> Outcome:
        params, _, value = points(torch.float64)
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
            raise CheckFailure(f"torch.autograd.gradcheck of log_prob w.r.t. {names} failed")
        return Outcome(f"gradcheck of log_prob w.r.t. {names}")

    yield Check(t.name, family, "example", "log_prob_gradcheck", "density", False, gradcheck)
