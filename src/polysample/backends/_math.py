"""Differentiable helpers shared by the built-in backends."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any

import torch

__all__ = ["expm1_ratio", "redraw_outside_support", "in_range", "times_exp_in_range", "MAX_SUPPORT_REDRAWS", "LARGE_RATE",
           "LARGE_COUNT", "LARGE_BINOMIAL_VARIANCE", "poisson_normal_limit", "VON_MISES_NORMAL_LIMIT",
           "fisher_snedecor_small_df", "inverse_gamma_small_concentration"]

#: Redraws allowed for draws that fall outside the support (torch's Wishart default).
MAX_SUPPORT_REDRAWS = 10

#: Poisson rates above this are drawn by the normal limit with its skewness term,
#: ``round(rate + sqrt(rate) z + (z^2 - 1) / 6)`` (:func:`poisson_normal_limit`; Cornish-Fisher:
#: its CDF is within O(1 / rate) < 1e-12 of the Poisson's, finer than any sample resolves). The
#: libraries' samplers lose accuracy long before they fail: their acceptance tests take
#: differences of log-gammas of about ``rate log rate``, whose float64 rounding grows with the
#: rate. Measured (200,000 draws each; the variance over the rate should be 1 +- 0.003): torch
#: 1.009 at 1e14, 0.985 at 1e15 and 0.85 at 3e15; NumPy 1.006 at 1e14 and 1.035 at 1e15; TFP
#: on JAX 1.010 at 1e13 and 1.18 at 1e15; up to 1.7 from 1e16 to 1e18 on all of them (an outside
#: trial). Beyond int64 torch returns -9.2e18 and NumPy refuses the rate.
LARGE_RATE = 1e12

#: Binomial counts above this are drawn by a limit law (torch's and NumPy's samplers lose
#: accuracy beyond: torch's float64 variance is +5% at 1e16 and x2 at 1e18; NumPy's +4% at
#: 4e18 and refused beyond int64): with q = min(p, 1 - p), N(nq, nq(1-q)) rounded where
#: nq(1-q) >= LARGE_BINOMIAL_VARIANCE (CDF error below 1e-5), else Poisson(nq) (total
#: variation below q < 1e-5), mirrored for p > 1/2 and clipped to [0, n].
LARGE_COUNT = 2.0 ** 50
LARGE_BINOMIAL_VARIANCE = 1e10

#: VonMises concentrations above this are drawn from the law's normal limit, ``loc + z /
#: sqrt(concentration)`` wrapped to ``[-pi, pi)`` (NumPy's own threshold): the densities differ
#: by O(1 / concentration) < 1e-6, which no feasible sample resolves. The rejection samplers fail
#: beyond: torch's Best-Fisher proposal ``r`` rounds to 1 in float64 from about 5e15 (1e15 still
#: drew, 1e17 was refused) and then accepts nothing; TFP 0.25's float32 sampler returned ``loc``
#: itself for every draw from 1e8 (the spread should be 1e-4) and NaN from 1e19, its float64
#: one ``loc`` itself at 1e17 and NaN at 1e300.
VON_MISES_NORMAL_LIMIT = 1e6


def poisson_normal_limit(rate: Any, z: Any) -> Any:
    """The Poisson draws of rates above :data:`LARGE_RATE` from standard normal draws ``z``:
    ``round(rate + sqrt(rate) z + (z^2 - 1) / 6)``, at least 0, elementwise on torch tensors or
    NumPy arrays (float64). The term ``(z^2 - 1) / 6`` gives the draws the law's skewness
    ``rate^-1/2`` (Cornish-Fisher), so the CDF error is O(1 / rate) rather than O(rate^-1/2)."""
    if isinstance(rate, torch.Tensor):
        return (rate + rate.sqrt() * z + (z * z - 1.0) / 6.0).round().clamp(min=0.0)
    import numpy as np

    return np.maximum(np.rint(rate + np.sqrt(rate) * z + (z * z - 1.0) / 6.0), 0.0)


def expm1_ratio(xi: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
    """``expm1(xi * e) / xi``, smooth through ``xi = 0`` (value ``e``, d/dxi ``e**2 / 2``).

    The generalized Pareto transform of a standard exponential ``e``. torch 2.13 switches to the
    exact ``xi == 0`` branch ``e`` with ``torch.where``, whose gradient w.r.t. ``xi`` is then 0
    instead of ``e**2 / 2`` (docs/conformance.md, finding F3). Where ``|xi * e| < 1e-4`` we use
    the Taylor series ``e * (1 + t/2 + t**2/6)`` (truncation error below 1e-17 relative), whose
    gradient is the right one; elsewhere the exact formula.
    """
    t = xi * e
    small = t.abs() < 1e-4
    safe_xi = torch.where(small, torch.ones_like(t), xi)
    exact = torch.expm1(torch.where(small, torch.zeros_like(t), t)) / safe_xi
    series = e * (1 + t * (0.5 + t / 6))
    return torch.where(small, series, exact)



def in_range(fn: Callable[..., torch.Tensor], params: tuple[torch.Tensor, ...],
             lo: float, hi: float) -> torch.Tensor:
    """``fn(*params)`` kept in ``[lo, hi]``, with a zero gradient (never NaN) where it left it.

    ``fn`` is an elementwise transform of fixed noise (no drawing inside), broadcasting its
    parameters. Clamping the value is not enough for a draw that overflowed (Weibull's
    ``e ** (1 / k)`` at concentration 1e-3, GeneralizedPareto's ``expm1(xi e) / xi`` at
    ``xi = 1000``): the derivative of the operation that overflowed is infinite there, and the
    clamp's zero gradient times it is NaN, which reached the parameters. The entries outside
    are recomputed with every parameter that requires grad set to 1 (the "double where"), so
    their gradient is exactly 0 and the other entries' values and gradients are unchanged.
    """
    x = fn(*params)
    if not (torch.is_grad_enabled() and x.requires_grad):
        return x.clamp(min=lo, max=hi)
    with torch.no_grad():
        out = ~((x >= lo) & (x <= hi))
    if not bool(out.any()):
        return x
    one = torch.ones((), dtype=x.dtype, device=x.device)
    safe = tuple(torch.where(out, one, p) if p.requires_grad else p for p in params)
    return torch.where(out, x.detach().clamp(min=lo, max=hi), fn(*safe))


def times_exp_in_range(z: torch.Tensor, log_factor: torch.Tensor,
                       dtype: torch.dtype) -> torch.Tensor:
    """``z * exp(log_factor)`` as ``dtype``, finite: where its magnitude would pass 99% of the
    dtype's largest float it is held there, with a zero gradient.

    The exponent is capped before ``exp`` (``z`` is noise, without gradient), so no infinite
    value or derivative enters the chain: a StudentT with ``df = 1e-30`` has a scale factor
    ``sqrt(df / chi2)`` of about ``exp(1e30)``. Compute ``log_factor`` in float64, where its
    own derivatives (``log(U) / h**2`` for small ``h``) stay finite.
    """
    fi = torch.finfo(dtype)
    z = z.detach().to(log_factor.dtype)
    # |z| exp(log_factor) as one exp, capped 1% below the largest float: a product never rounds
    # to inf (whose zero cotangent times inf is NaN), and |z| < 1 cannot lift the cap
    log_abs = z.abs().clamp(min=fi.tiny).log() + log_factor
    return (z.sign() * torch.clamp(log_abs, max=math.log(fi.max) - 0.01).exp()).to(dtype)

def redraw_outside_support(draw: Callable[[], torch.Tensor],
                           inside: Callable[[torch.Tensor], torch.Tensor], family: str,
                           max_redraws: int = MAX_SUPPORT_REDRAWS) -> torch.Tensor:
    """``draw()``, with the entries that ``inside`` rejects replaced by fresh draws.

    For samplers that are exact in law but whose rounded values can leave the support (the
    Bartlett decomposition of a Wishart with ``df`` just above ``p - 1`` gives a matrix that
    fails the positive-definite check: about 1% to 12% of draws for ``df`` in (2, 3), p = 3,
    float32). ``inside(x)`` has the batch shape of ``x`` (without the event dimensions). A
    rejected entry is redrawn whole, at most ``max_redraws`` times; entries are merged with
    ``torch.where``, so gradients flow to the kept draw. Redrawing conditions on the support,
    which the law already does up to rounding. Entries still outside after the last redraw
    are returned with a ``RuntimeWarning``.
    """
    sample = draw()
    bad = ~inside(sample)
    redraws = 0
    while redraws < max_redraws and bool(bad.any()):
        new = draw()
        mask = bad.reshape(bad.shape + (1,) * (sample.dim() - bad.dim()))
        sample = torch.where(mask, new, sample)
        bad = bad & ~inside(new)
        redraws += 1
    if bool(bad.any()):
        warnings.warn(
            f"{int(bad.sum())} of {bad.numel()} {family} draws are still outside the support "
            f"after {max_redraws} redraws; they are returned as drawn. Draw in float64, or "
            "with parameters further from the support's edge (Wishart: df further above "
            "p - 1).", RuntimeWarning, stacklevel=3)
    return sample


def _exp_held(log_x: torch.Tensor, dtype: torch.dtype
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``exp(log_x)`` (float64) as ``dtype``, held in ``[tiny, max]``; the held log, and where
    it was inside the range (float64 1/0: the factor of the log-space derivatives)."""
    fi = torch.finfo(dtype)
    lo, hi = math.log(fi.tiny), math.log(fi.max)
    log_held = log_x.clamp(min=lo, max=hi)
    value = log_held.exp().to(dtype).clamp(min=fi.tiny, max=fi.max)
    return value, log_held, ((log_x > lo) & (log_x < hi)).to(torch.float64)


def fisher_snedecor_small_df(
        df1: torch.Tensor, df2: torch.Tensor, shape: torch.Size,
        log_gamma: Callable[[torch.Tensor, torch.Size],
                            tuple[torch.Tensor, Callable[[], torch.Tensor]]],
        grad: bool) -> torch.Tensor:
    """FisherSnedecor draws for degrees of freedom below 1, computed in log space.

    ``log F = log G1 - log G2 + log(df2 / df1)`` with ``log G_h = log G_(h+1) + log(U) / h``
    (exact: ``G_h = G_(h+1) U^(1/h)``), which never underflows; the value is kept in
    ``[tiny, max]`` of the parameters' dtype. The ratio of two Gamma draws fails there: both
    underflow to the smallest float together (``FisherSnedecor(0.001, 0.001)``: 49% of torch's
    draws were exactly 1, and NumPy's ``f`` NaN for 48%).

    ``log_gamma(h, shape)`` is the backend's: float64 ``log G_h`` for ``G_h ~ Gamma(h)`` of
    ``shape`` (``h`` broadcasts to it), and a function computing ``d log G_h / dh`` when a
    gradient is asked for (pathwise in ``h``: the implicit derivative of ``G_(h+1)``, which
    never underflows, minus ``log(U) / h**2``). With ``grad``, ``dF/d df_i = F d(log F)/d df_i``
    is computed as one number per draw (two separate products overflowed to ``inf - inf``:
    NaN), 0 for draws kept at the end of the range.
    """
    h1, h2 = (0.5 * df1.detach()).to(torch.float64), (0.5 * df2.detach()).to(torch.float64)
    l1, dlog_g1 = log_gamma(h1, shape)
    l2, dlog_g2 = log_gamma(h2, shape)
    log_x = l1 - l2 + (2 * h2).log() - (2 * h1).log()
    value, log_held, inside = _exp_held(log_x, df1.dtype)
    if not grad:
        return value

    def dlogs() -> tuple[torch.Tensor, torch.Tensor]:
        # d log F / d df1 = d log G1 / dh1 / 2 - 1 / df1; d log F / d df2 = -d log G2 / dh2 / 2
        # + 1 / df2 (computed in backward only)
        return ((0.5 * dlog_g1() - 0.5 / h1) * inside, (-0.5 * dlog_g2() + 0.5 / h2) * inside)

    return _LogSpaceDraw.apply(df1, df2, value, log_held, dlogs, "FisherSnedecor")


#: Below this a standard Gamma draw's implicit derivative is taken from the small-``z`` form
#: (:func:`implicit_dlog_gamma`), whose relative error is of order ``z``.
_SMALL_GAMMA = 1e-20


def implicit_dlog_gamma(log_z: torch.Tensor, a: torch.Tensor,
                        dlog_dalpha: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
                        ) -> torch.Tensor:
    """``d(log z)/da`` of the implicit reparameterization of a standard Gamma(a) draw given as
    ``log z`` (float64), also where ``z`` itself underflows: ``dlog_dalpha(z, a)`` (the backend's
    own) where ``z >= 1e-20``, below it the limit ``-(log z - digamma(a + 1)) / a`` (from
    ``P(z; a) ~ z**a / Gamma(a + 1)`` as ``z -> 0``)."""
    a = a.expand_as(log_z)
    small = log_z < math.log(_SMALL_GAMMA)
    exact = dlog_dalpha(torch.where(small, torch.ones_like(log_z), log_z.exp()), a)
    return torch.where(small, (torch.special.digamma(a + 1) - log_z) / a, exact)


def inverse_gamma_small_concentration(
        conc: torch.Tensor, rate: torch.Tensor, shape: torch.Size,
        log_gamma: Callable[[torch.Tensor, torch.Size],
                            tuple[torch.Tensor, Callable[[], torch.Tensor]]],
        dlog_dalpha: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        grad: bool) -> torch.Tensor:
    """InverseGamma draws for concentrations below 1/2, in log space: ``log x = log rate -
    log G_a`` (``log_gamma`` as for :func:`fisher_snedecor_small_df`), kept in ``[tiny, max]``
    of the parameters' dtype. ``rate / G_a`` fails there: ``G_a`` underflows (below 1e-30 every
    draw, in float64 too), and ``d(1 / G)/dG = -1 / G**2`` overflowed, so the gradient in the
    concentration was infinite or NaN. The gradient stays the implicit one (as above 1/2):
    ``d(log G)/da`` by :func:`implicit_dlog_gamma` with the backend's ``dlog_dalpha``. With
    ``grad``, ``dx/dp = x d(log x)/dp`` is computed as one number per draw, 0 for draws kept
    at the end of the range."""
    a = conc.detach().to(torch.float64)
    log_g, _ = log_gamma(a, shape)
    log_rate = rate.detach().to(torch.float64).log()
    value, log_held, inside = _exp_held(log_rate - log_g, conc.dtype)
    if not grad:
        return value

    def dlogs() -> tuple[torch.Tensor, torch.Tensor]:
        # d log x / d conc = -d log G / da; d log x / d rate = 1 / rate
        return (-implicit_dlog_gamma(log_g, a, dlog_dalpha) * inside,
                (-log_rate).exp() * inside)

    return _LogSpaceDraw.apply(conc, rate, value, log_held, dlogs, "InverseGamma")


class _LogSpaceDraw(torch.autograd.Function):
    """A draw ``y = exp(log_y)`` with ``dy/dp_i = y d(log y)/dp_i`` (``dlogs()``, float64, per
    draw), each computed as one number: ``sign * exp(log_y + log|dlog_i|)``."""

    @staticmethod
    def forward(ctx: Any, p1: torch.Tensor, p2: torch.Tensor, y: torch.Tensor,  # type: ignore[override]
                log_y: torch.Tensor, dlogs: Callable[[], tuple[torch.Tensor, torch.Tensor]],
                family: str) -> torch.Tensor:
        ctx.save_for_backward(p1, p2, log_y)
        ctx.dlogs = dlogs
        ctx.family = family
        return y.clone()

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[Any, ...]:  # type: ignore[override]
        from ..core.implicit import _first_order

        p1, p2, log_y = ctx.saved_tensors
        out = []
        with torch.no_grad():
            dlog = ctx.dlogs()
        for p, d in zip((p1, p2), dlog):
            with torch.no_grad():
                dy = d.sign() * (log_y + d.abs().log()).exp()  # d = 0: 0
                g = torch.where(grad == 0, torch.zeros_like(dy), grad.to(torch.float64) * dy)
                g = g.to(grad.dtype).sum_to_size(p.shape)
            out.append(_first_order(g, ctx.family, p1, p2, grad))
        return out[0], out[1], None, None, None, None
