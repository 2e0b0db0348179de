"""The ``torch`` backend: ``torch.distributions``' own samplers, driven by an explicit generator.

Every family draws with the same formula ``torch.distributions`` uses, written out here so that
each random primitive (``torch.randn``, ``torch.rand``, ``Tensor.exponential_``/``cauchy_``/
``uniform_``, ``torch._standard_gamma``, ``torch._sample_dirichlet``, ``torch.poisson``,
``torch.binomial``, ``torch.bernoulli``, ``torch.multinomial``) receives ``generator=``:

* ``seed=None``: ``generator=None``, i.e. torch's global default generator (seeded by
  ``torch.manual_seed`` and by ``polysample.manual_seed``);
* ``seed=SeedSequence``: a fresh ``torch.Generator`` on the parameters' device, seeded from it
  (same seed => same values; CPU and CUDA streams differ, as torch's own do);
* ``seed=torch.Generator``: that generator, advanced by the draw. A generator on another device
  than the parameters draws on its own device and the values are moved to the parameters'
  (so a CPU generator gives the same values whatever the parameters' device).

``rsample`` returns exactly torch's reparameterized value for the drawn noise (``loc + eps *
scale`` etc.), so gradients are torch's own. ``sample`` takes in-place fast paths where
``torch.distributions`` is slow (Normal: one ``randn`` + in-place affine, or one in-place
``normal_`` for scalar CPU parameters, instead of ``torch.normal`` on expanded tensors).

No family needs torch's global stream: ``VonMises`` (rejection loop), ``LKJCholesky`` (onion
method) and ``Wishart`` (Bartlett decomposition) are written out here like the others.
LKJCholesky differs from torch 2.13 on purpose: torch's onion sampler gives the third and later
rows the wrong Beta law (finding F2); here it is the method's. Wishart
differs from torch 2.13 on purpose: torch's singular-sample check lacks a negation, so it redraws
every valid sample in place (which breaks backward); here only really singular draws are
redrawn, so values match torch's ``_bartlett_sampling`` and ``rsample`` backpropagates.

``log_prob`` is torch's own: ``families()`` reports ``log_prob=False`` so that the core scores
with the distribution object itself (no rebuild per call); :meth:`TorchBackend.log_prob` builds
the ``torch.distributions`` object for callers that use the backend directly.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import torch
import torch.distributions as td
from torch.distributions.dirichlet import _Dirichlet_backward
from torch.distributions.transforms import SigmoidTransform, StickBreakingTransform
from torch.distributions.utils import clamp_probs

from ..core import seeds as _seeds
from ..core.backend import Row, Seed, TableBackend
from ..core.errors import InvalidParameterError
from ..core.families import FAMILIES
from ..core.guards import _all_finite, _no_values
from ..core.hookspecs import hookimpl
from ..core.implicit import ImplicitDirichlet, _first_order
from ..core.params import Params
from ..core.seeds import global_seed_sequence, torch_generator_from
from ..core.torch_fixes import FIXES, continuous_bernoulli_icdf, continuous_bernoulli_logits
from ._math import (
    LARGE_BINOMIAL_VARIANCE,
    LARGE_COUNT,
    LARGE_RATE,
    VON_MISES_NORMAL_LIMIT,
    expm1_ratio,
    fisher_snedecor_small_df,
    in_range,
    inverse_gamma_small_concentration,
    poisson_normal_limit,
    redraw_outside_support,
    times_exp_in_range,
)

__all__ = ["TorchBackend", "build"]

Gen = torch.Generator | None
_functorch = torch._C._functorch
Sampler = Callable[[Mapping[str, Any], torch.Size, Gen, bool], torch.Tensor]


# ---------------------------------------------------------------------- random primitives
def _home(x: torch.Tensor, like: torch.Tensor, g: Gen) -> torch.Tensor:
    """``x`` (drawn with ``g``) moved to ``like``'s device: a no-op unless ``g`` lives elsewhere."""
    return x if g is None or x.device == like.device else x.to(like.device)


def _on_gen(t: torch.Tensor, g: Gen) -> torch.Tensor:
    return t if g is None or t.device == g.device else t.to(g.device)


def _empty(shape: torch.Size, like: torch.Tensor, g: Gen) -> torch.Tensor:
    dev = like.device if g is None else g.device
    return torch.empty(shape, dtype=like.dtype, device=dev)


def _above(t: torch.Tensor, limit: float) -> bool:
    """Whether some value of ``t`` exceeds ``limit``: the caller then takes its general path,
    right for every value. Inside vmap the values cannot be read (``.item()`` raises there), so
    the answer is True whenever ``t`` has values."""
    if not t.numel():
        return False
    if _functorch.is_functorch_wrapped_tensor(t):
        return True
    return float(t.detach().max()) > limit


def _below(t: torch.Tensor, limit: float) -> bool:
    """Whether some value of ``t`` is below ``limit`` (True inside vmap, as :func:`_above`)."""
    if not t.numel():
        return False
    if _functorch.is_functorch_wrapped_tensor(t):
        return True
    return float(t.detach().min()) < limit


def _randn(shape: torch.Size, like: torch.Tensor, g: Gen) -> torch.Tensor:
    # What torch.randn and torch.distributions' _standard_normal do (same values), minus a
    # layer of dispatch: 0.4 us of a 7 us scalar rsample(). Not inside vmap: an in-place draw
    # into an unbatched tensor raises under randomness="different", where torch.randn gives
    # each batch element its own draw (as torch.distributions does).
    if _functorch.maybe_current_level() is not None:
        return _home(torch.randn(shape, dtype=like.dtype, device=like.device if g is None
                                 else g.device, generator=g), like, g)
    if g is None:
        return torch.empty(shape, dtype=like.dtype, device=like.device).normal_()
    return _home(_empty(shape, like, g).normal_(generator=g), like, g)


def _rand(shape: torch.Size, like: torch.Tensor, g: Gen) -> torch.Tensor:
    if g is None:
        return torch.rand(shape, dtype=like.dtype, device=like.device)
    return _home(torch.rand(shape, dtype=like.dtype, device=g.device, generator=g), like, g)


def _std_exponential(shape: torch.Size, like: torch.Tensor, g: Gen) -> torch.Tensor:
    return _home(_empty(shape, like, g).exponential_(generator=g), like, g)


def _std_gamma(conc: torch.Tensor, g: Gen) -> torch.Tensor:
    """``torch._standard_gamma`` with a generator; differentiable in ``conc`` (torch's formula)."""
    if (conc.requires_grad and torch.is_grad_enabled()
            and _functorch.maybe_current_level() is None):
        return _GammaSample.apply(conc, g)  # type: ignore[no-untyped-call,no-any-return]
    return _home(torch._standard_gamma(_on_gen(conc, g), generator=g), conc, g)


class _GammaSample(torch.autograd.Function):
    """``torch._standard_gamma`` with torch's own implicit gradient, made first-order only.

    torch's backward (``_standard_gamma_grad``) has no derivative: a second differentiation
    (``create_graph=True``, a Hessian) raised torch's bare ``NotImplementedError`` through the
    Gamma family (Chi2, StudentT, FisherSnedecor, InverseGamma); here it raises
    ``NotReparameterizableError`` as the other backends' implicit gradients do. The values and
    first-order gradients are torch's. Not under torch.func transforms (``_std_gamma`` keeps
    torch's own op there, as an old-style Function cannot run inside them)."""

    @staticmethod
    def forward(ctx: Any, conc: torch.Tensor, g: Gen) -> torch.Tensor:  # type: ignore[override]
        z = _home(torch._standard_gamma(_on_gen(conc, g), generator=g), conc, g)
        ctx.save_for_backward(conc, z)
        return z

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:  # type: ignore[override]
        conc, z = ctx.saved_tensors
        return _first_order(grad * torch._standard_gamma_grad(conc, z), "Gamma", conc,
                            grad), None


def _gamma(conc: torch.Tensor, rate: torch.Tensor, shape: torch.Size, g: Gen) -> torch.Tensor:
    """Gamma(conc, rate) exactly as ``td.Gamma.rsample``: standard gamma / rate, clamped to tiny."""
    value = _std_gamma(conc.expand(shape), g)
    if ((torch.is_grad_enabled() and (conc.requires_grad or rate.requires_grad))
            or _functorch.is_functorch_wrapped_tensor(rate)):  # vmap: out of place
        value = value / rate.expand(shape)
    else:  # the same quotient in place: no second array as large as the draw
        value.div_(rate)
    value.detach().clamp_(min=torch.finfo(value.dtype).tiny)
    return value


#: A CPU ``sample`` of at least ``PIECES_FROM`` values (128 MiB of float32) of a family whose
#: formula makes temporaries several times the result (Beta 8x, StudentT 5x, Laplace 4x) is
#: computed in at most ``PIECES`` pieces of at least ``PIECE_MIN`` values each
#: (:func:`_pieces`): its temporaries are then a small fraction of the result. It costs 15-40%
#: more CPU time (more kernel calls, each synchronising torch's threads), so smaller draws,
#: whose temporaries fit in memory easily, keep torch's one-piece formula.
PIECES = 64
PIECE_MIN = 1 << 20
PIECES_FROM = 1 << 25


def _pieces(ss: torch.Size, like: torch.Tensor, g: Gen, reparam: bool) -> list[slice] | None:
    """Row slices of the flattened ``sample_shape`` for a large CPU ``sample`` worth computing
    piece by piece (None otherwise).

    Exact: the CPU kernels of ``_standard_gamma`` and ``_sample_dirichlet`` draw element after
    element from the generator (serial kernels), so pieces drawn in order consume it as one
    call does, and the element-wise arithmetic does not depend on the pieces (tested against
    ``torch.distributions`` on large draws). Not on CUDA, whose generators are counter-based.
    """
    rows = ss.numel()
    per_row = max(1, like.numel())
    if (reparam or rows < 2 or rows * per_row < max(PIECES_FROM, 2 * PIECE_MIN)
            or like.device.type != "cpu"
            or (g is not None and g.device.type != "cpu")):
        return None
    step = max(-(-rows // PIECES), -(-PIECE_MIN // per_row))
    return [slice(i, min(rows, i + step)) for i in range(0, rows, step)]


def _dirichlet_backward(x: torch.Tensor, concentration: torch.Tensor,
                        grad: torch.Tensor) -> torch.Tensor:
    """torch's implicit Dirichlet gradient; where it is not finite, polysample's.

    torch's approximation fails at large concentrations: ``Beta(1e20, 1)``'s gradient was NaN
    (and half of ``Beta(1e15, 1)``'s of the wrong sign). The non-finite entries are recomputed
    by :class:`..core.implicit.ImplicitDirichlet` (float64, at the returned value: 0 where the
    value rounded to 1). Elsewhere torch's is kept: polysample's is more accurate (per draw of
    ``Beta(1e8, 1)``, largest relative error 3e-5 against torch's 3.4%) but takes seconds for
    a few hundred draws there.
    """
    out = _Dirichlet_backward(x, concentration, grad)
    if _functorch.is_functorch_wrapped_tensor(out):
        return out  # type: ignore[no-any-return]
    # Rows whose cotangent is not finite keep torch's (non-finite) product: a NaN upstream
    # gradient must come back NaN, not be recomputed into a finite number.
    rows = (~torch.isfinite(out)).any(-1) & torch.isfinite(grad).all(-1)
    if not bool(rows.any()):
        # first-order only: torch's _dirichlet_grad has no derivative, and a second
        # differentiation raised its raw RuntimeError
        return _first_order(out, "Dirichlet", concentration, grad)  # type: ignore[no-any-return]
    conc = concentration.expand(x.shape)
    with torch.no_grad():
        fixed = ImplicitDirichlet._gradient(conc[rows], x[rows].detach().double(), grad[rows])
        out = out.clone()
        out[rows] = fixed
    return _first_order(out, "Dirichlet", concentration, grad)  # type: ignore[no-any-return]


class _DirichletSample(torch.autograd.Function):
    """``torch._sample_dirichlet`` with a generator; backward is torch's own implicit gradient."""

    @staticmethod
    def forward(ctx: Any, concentration: torch.Tensor, g: Gen) -> torch.Tensor:  # type: ignore[override]
        x = _home(torch._sample_dirichlet(_on_gen(concentration, g), generator=g), concentration, g)
        ctx.save_for_backward(x, concentration)
        return x

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor) -> tuple[torch.Tensor, None]:  # type: ignore[override]
        x, concentration = ctx.saved_tensors
        return _dirichlet_backward(x, concentration, grad_output), None


class _DirichletAt(torch.autograd.Function):
    """A Dirichlet draw ``x`` made elsewhere, with torch's implicit gradient at ``x``."""

    @staticmethod
    def forward(ctx: Any, concentration: torch.Tensor, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(x, concentration)
        return x

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor) -> tuple[torch.Tensor, None]:  # type: ignore[override]
        x, concentration = ctx.saved_tensors
        return _dirichlet_backward(x, concentration, grad_output), None


#: Below this concentration the Dirichlet is drawn in log space (_dirichlet_log_space).
SMALL_CONCENTRATION = 0.5


def _dirichlet_log_space(conc: torch.Tensor, g: Gen) -> torch.Tensor:
    """Dirichlet(conc) from log Gamma draws, for small concentrations.

    ``torch._sample_dirichlet`` normalizes Gamma draws, which underflow to 0 below the smallest
    float (Gamma(1e-3) does with probability 0.49 in float64): a row whose Gammas all underflow
    comes back exactly uniform (3% of the rows of Dirichlet(1e-3 x 5), finding R3). Here
    ``log G_a = log G_(a+1) + log(U) / a`` (exact: ``G_a = G_(a+1) U^(1/a)``) never underflows,
    and ``x = softmax(log G)`` in float64 is 0 only where the true value is below 1e-308; the
    values are then kept inside the support (``[tiny, 1 - eps/2]``) as the other samplers do.
    """
    a = conc.detach().to(torch.float64)
    log_g = (_std_gamma(a + 1.0, g).log_()
             + torch.log1p(-_rand(a.shape, a, g)).div_(a))
    x = torch.softmax(log_g, dim=-1).to(conc.dtype)
    fi = torch.finfo(x.dtype)
    return x.clamp_(min=fi.tiny, max=1.0 - fi.eps / 2)


def _dirichlet(conc: torch.Tensor, g: Gen, reparam: bool) -> torch.Tensor:
    if _below(conc, SMALL_CONCENTRATION):
        x = _dirichlet_log_space(conc, g)
        if reparam and conc.requires_grad:
            return _DirichletAt.apply(conc, x)  # type: ignore[no-untyped-call,no-any-return]
        return x
    if reparam and conc.requires_grad:
        return _DirichletSample.apply(conc, g)  # type: ignore[no-untyped-call]
    return _home(torch._sample_dirichlet(_on_gen(conc, g), generator=g), conc, g)


def _can_scalar_fast(t: torch.Tensor, shape: torch.Size, g: Gen) -> bool:
    """Whether to fill ``shape`` with a scalar-parameter kernel (``normal_(m, s)`` etc.).

    Worth it for large draws only (two ``.item()`` calls cost more than they save on small
    ones), and on CPU only: ``.item()`` on CUDA would synchronize.
    """
    return (shape.numel() >= 256 and t.numel() == 1 and t.device.type == "cpu"
            and (g is None or g.device.type == "cpu")
            and not _functorch.is_functorch_wrapped_tensor(t))  # no .item() under vmap


# ---------------------------------------------------------------------- samplers
# Each sampler is ``fn(params, sample_shape, generator, reparam) -> Tensor``. With reparam=False
# the caller runs under no_grad, so in-place operations on fresh noise are safe.

def _normal(p: Mapping[str, Any], ss: torch.Size, g: Gen, reparam: bool) -> torch.Tensor:
    loc, scale = p["loc"], p["scale"]
    shape = ss + loc.shape if ss else loc.shape
    if reparam:
        if (loc.requires_grad or scale.requires_grad
                or _functorch.is_functorch_wrapped_tensor(loc)
                or _functorch.is_functorch_wrapped_tensor(scale)):  # vmap: out of place
            return loc + _randn(shape, loc, g) * scale
        # Nothing to differentiate: the same value (eps * scale + loc, two roundings) in place.
        return _randn(shape, loc, g).mul_(scale).add_(loc)
    if _can_scalar_fast(loc, shape, g):
        out = torch.empty(shape, dtype=loc.dtype, device=loc.device)
        return out.normal_(loc.item(), scale.item(), generator=g)
    return _randn(shape, loc, g).mul_(scale).add_(loc)


def _lognormal(p: Mapping[str, Any], ss: torch.Size, g: Gen, reparam: bool) -> torch.Tensor:
    return _normal(p, ss, g, reparam).exp() if reparam else _normal(p, ss, g, False).exp_()


def _halfnormal(p: Mapping[str, Any], ss: torch.Size, g: Gen, reparam: bool) -> torch.Tensor:
    scale = p["scale"]
    eps = _randn(ss + scale.shape, scale, g)
    return (eps * scale).abs() if reparam else eps.mul_(scale).abs_()


def _uniform(p: Mapping[str, Any], ss: torch.Size, g: Gen, reparam: bool) -> torch.Tensor:
    low, high = p["low"], p["high"]
    u = _rand(ss + low.shape, low, g)
    span = high - low
    if not _readable_and_finite(span):
        return _wide_uniform(low, high, u)
    return low + u * span if reparam else u.mul_(span).add_(low)


def _readable_and_finite(t: torch.Tensor) -> bool:
    """False only for values that can be read (not meta, not under a torch.func transform or
    a trace, where the plain formula runs) and are not all finite."""
    if torch._C._is_tracing() or _no_values(t):
        return True
    return _all_finite(t)


def _wide_uniform(low: torch.Tensor, high: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """``low + u * (high - low)`` where ``high - low`` overflows the dtype (``Uniform(-3e38,
    3e38)`` in float32 drew inf): computed on the halved bounds and doubled. Scaling by 2 is
    exact, so every value rounds as the plain formula's would where that one is finite."""
    return (low * 0.5 + u * (high * 0.5 - low * 0.5)) * 2.0


def _exponential(p: Mapping[str, Any], ss: torch.Size, g: Gen, reparam: bool) -> torch.Tensor:
    rate = p["rate"]
    e = _std_exponential(ss + rate.shape, rate, g)
    return e / rate if reparam else e.div_(rate)


def _cauchy_noise(ss: torch.Size, like: torch.Tensor, g: Gen) -> torch.Tensor:
    return _home(_empty(ss + like.shape, like, g).cauchy_(generator=g), like, g)


def _cauchy(p: Mapping[str, Any], ss: torch.Size, g: Gen, reparam: bool) -> torch.Tensor:
    loc, scale = p["loc"], p["scale"]
    return loc + _cauchy_noise(ss, loc, g) * scale


def _halfcauchy(p: Mapping[str, Any], ss: torch.Size, g: Gen, reparam: bool) -> torch.Tensor:
    scale = p["scale"]
    return (_cauchy_noise(ss, scale, g) * scale).abs()


def _laplace(p: Mapping[str, Any], ss: torch.Size, g: Gen, reparam: bool) -> torch.Tensor:
    loc, scale = p["loc"], p["scale"]
    eps = torch.finfo(loc.dtype).eps
    u = _home(_empty(ss + loc.shape, loc, g).uniform_(eps - 1, 1, generator=g), loc, g)
    pieces = _pieces(ss, loc, g, reparam)
    if pieces is None:
        return loc - scale * u.sign() * torch.log1p(-u.abs())
    rows = u.view(-1, *loc.shape)
    for s in pieces:  # the same arithmetic, in place, one piece at a time
        r = rows[s]
        t = r.abs().neg_().log1p_()
        r.sign_().mul_(scale).mul_(t).neg_().add_(loc)
    return u


def _gumbel(p: Mapping[str, Any], ss: torch.Size, g: Gen, reparam: bool) -> torch.Tensor:
    loc, scale = p["loc"], p["scale"]
    finfo = torch.finfo(loc.dtype)
    low = torch.full_like(loc, finfo.tiny)
    high = torch.full_like(loc, 1 - finfo.eps)
    u = low + _rand(ss + loc.shape, loc, g) * (high - low)
    return loc + (-scale) * (-(u.log())).log()


def _gamma_family(p: Mapping[str, Any], ss: torch.Size, g: Gen, reparam: bool) -> torch.Tensor:
    conc, rate = p["concentration"], p["rate"]
    return _gamma(conc, rate, ss + conc.shape, g)


def _chi2(p: Mapping[str, Any], ss: torch.Size, g: Gen, reparam: bool) -> torch.Tensor:
    df = p["df"]
    return _gamma(0.5 * df, torch.full_like(df, 0.5), ss + df.shape, g)


def _inverse_gamma(p: Mapping[str, Any], ss: torch.Size, g: Gen, reparam: bool) -> torch.Tensor:
    conc, rate = p["concentration"], p["rate"]
    if _below(conc, SMALL_CONCENTRATION):  # rate / G in log space (G underflows)
        grad = reparam and (conc.requires_grad or rate.requires_grad)
        return inverse_gamma_small_concentration(
            conc, rate, ss + conc.shape, _log_gamma_f64(g),
            lambda z, a: torch._standard_gamma_grad(a, z) / z, grad)
    return _gamma(conc, rate, ss + conc.shape, g).pow(-rate.new_ones(()))


def _beta(p: Mapping[str, Any], ss: torch.Size, g: Gen, reparam: bool) -> torch.Tensor:
    c1, c0 = p["concentration1"], p["concentration0"]
    conc = torch.stack([c1, c0], -1)
    # Not in log space (small concentrations): it draws all the Gammas, then all the uniforms,
    # so pieces would consume the stream in another order than one call.
    pieces = None if _below(conc, SMALL_CONCENTRATION) else _pieces(ss, c1, g, reparam)
    if pieces is None:
        return _dirichlet(conc.expand(ss + conc.shape), g, reparam).select(-1, 0)
    # torch's Beta keeps both Dirichlet components (and its sampler's temporaries, 8x the
    # result in all); drawn piece by piece, only the first component is kept.
    out = torch.empty((ss.numel(), *c1.shape), dtype=c1.dtype, device=c1.device)
    for s in pieces:
        n = s.stop - s.start
        out[s] = _dirichlet(conc.expand((n, *conc.shape)), g, False).select(-1, 0)
    return out.view(ss + c1.shape)


def _dirichlet_family(p: Mapping[str, Any], ss: torch.Size, g: Gen, reparam: bool) -> torch.Tensor:
    conc = p["concentration"]
    return _dirichlet(conc.expand(ss + conc.shape), g, reparam)


def _student_t(p: Mapping[str, Any], ss: torch.Size, g: Gen, reparam: bool) -> torch.Tensor:
    df, loc, scale = p["df"], p["loc"], p["scale"]
    shape = ss + loc.shape
    x = _randn(shape, loc, g)
    if _below(df, 2 * SMALL_CONCENTRATION):
        return _student_t_log_space(x, df, loc, scale, shape, g)
    half = torch.full_like(df, 0.5)
    pieces = _pieces(ss, loc, g, reparam)
    if pieces is None:
        z = _gamma(0.5 * df, half, shape, g)
        y = x * torch.rsqrt(z / df)
        return loc + scale * y
    rows = x.view(-1, *loc.shape)
    for s in pieces:  # the Gamma draws still follow all the normals, as in one call
        z = _gamma(0.5 * df, half, torch.Size((s.stop - s.start, *loc.shape)), g)
        rows[s].mul_(z.div_(df).rsqrt_()).mul_(scale).add_(loc)
    return x



def _student_t_log_space(x: torch.Tensor, df: torch.Tensor, loc: torch.Tensor,
                         scale: torch.Tensor, shape: torch.Size, g: Gen) -> torch.Tensor:
    """StudentT for ``df`` below 1: ``x sqrt(df / chi2)`` with ``log chi2`` from
    ``log G_h = log G_(h+1) + log(U) / h`` (``h = df / 2``; exact, as for FisherSnedecor).

    torch's ``chi2`` draw underflows to the smallest float there (float32 ``df = 0.1``: 55 NaN
    gradients in 20,000 draws; ``df = 1e-30``: every gradient NaN, in float64 too). The log of
    the scale factor is computed in float64 with ``G_(h+1)``'s own gradient
    (``torch._standard_gamma``'s), and the value is held inside the float range
    (:func:`._math.times_exp_in_range`).
    """
    h = (0.5 * df).to(torch.float64).expand(shape)
    log_g = _std_gamma(h + 1.0, g).log() + torch.log1p(-_rand(shape, h, g)) / h
    log_factor = 0.5 * (h.log() - log_g)  # sqrt(df / chi2) = sqrt(h / G_h)
    t = times_exp_in_range(x, log_factor, x.dtype)
    fi = torch.finfo(x.dtype)
    return in_range(lambda lo, s: lo + s * t, (loc, scale), -fi.max, fi.max)

def _fisher_snedecor(p: Mapping[str, Any], ss: torch.Size, g: Gen, reparam: bool) -> torch.Tensor:
    df1, df2 = p["df1"], p["df2"]
    shape = ss + df1.shape
    if _below(torch.minimum(df1, df2), 2 * SMALL_CONCENTRATION):
        return _fisher_snedecor_log_space(df1, df2, shape, g, reparam)
    x1 = _gamma(df1 * 0.5, df1 * 0.5, shape, g)
    x2 = _gamma(df2 * 0.5, df2 * 0.5, shape, g)
    tiny = torch.finfo(x2.dtype).tiny
    x2.clamp_(min=tiny)
    y = x1 / x2
    y.clamp_(min=tiny, max=torch.finfo(y.dtype).max)  # x1 / tiny can overflow to inf
    return y


def _log_gamma_f64(g: Gen) -> Callable[[torch.Tensor, torch.Size],
                                        tuple[torch.Tensor, Callable[[], torch.Tensor]]]:
    """The ``log_gamma`` of :func:`._math.fisher_snedecor_small_df` for generator ``g``:
    float64 ``log G_h = log G_(h+1) + log(U) / h`` and its derivative in ``h``."""
    def log_gamma(h: torch.Tensor, shape: torch.Size
                  ) -> tuple[torch.Tensor, Callable[[], torch.Tensor]]:
        a = h.expand(shape) + 1.0
        z = _std_gamma(a, g).clamp(min=torch.finfo(torch.float64).tiny)
        log_u = torch.log1p(-_rand(shape, a, g))
        return z.log() + log_u / h, lambda: torch._standard_gamma_grad(a, z) / z - log_u / h**2
    return log_gamma


def _fisher_snedecor_log_space(df1: torch.Tensor, df2: torch.Tensor, shape: torch.Size, g: Gen,
                               reparam: bool) -> torch.Tensor:
    """Degrees of freedom below 1: :func:`._math.fisher_snedecor_small_df` (the ratio of two
    Gamma draws made 49% of ``FisherSnedecor(0.001, 0.001)`` exactly 1, and 0.08% at 0.01)."""
    grad = reparam and (df1.requires_grad or df2.requires_grad)
    return fisher_snedecor_small_df(df1, df2, shape, _log_gamma_f64(g), grad)


def _kumaraswamy(p: Mapping[str, Any], ss: torch.Size, g: Gen, reparam: bool) -> torch.Tensor:
    c1, c0 = p["concentration1"], p["concentration0"]
    u = _rand(ss + c1.shape, c1, g)
    # torch's (1 - u^(1/b))^(1/a), with 1 - u^(1/b) as -expm1(log(u) / b): at small
    # concentrations torch's form rounds to exactly 0 and 1, where log_prob is NaN (issue 12,
    # support edges). Kept inside (0, 1) as the numpy backend keeps it.
    # Held there with a zero gradient (in_range): at concentrations below about 1e-19 in
    # float32 the derivative of the power (1 / a**2) overflows, and the clamp's zero gradient
    # times it was NaN.
    log_u = u.clamp(min=torch.finfo(u.dtype).tiny).log()
    fi = torch.finfo(u.dtype)
    return in_range(lambda a, b: (-torch.expm1(log_u / b)).pow(a.reciprocal()), (c1, c0),
                    fi.tiny, 1 - fi.eps)


def _pareto(p: Mapping[str, Any], ss: torch.Size, g: Gen, reparam: bool) -> torch.Tensor:
    scale, alpha = p["scale"], p["alpha"]
    e = _std_exponential(ss + scale.shape, scale, g)
    # At small alpha exp(e / alpha) overflows (alpha = 0.01, scale 2: 42% of float32 draws):
    # held at the largest float, with a zero gradient there (not inf or NaN), see in_range.
    return in_range(lambda s, a: s * (e / a).exp(), (scale, alpha), 0.0, torch.finfo(e.dtype).max)


def _weibull(p: Mapping[str, Any], ss: torch.Size, g: Gen, reparam: bool) -> torch.Tensor:
    scale, conc = p["scale"], p["concentration"]
    e = _std_exponential(ss + scale.shape, scale, g)
    # At small concentrations e^(1/k) underflows to 0 (outside the support) or overflows to
    # inf (log_prob NaN): kept in [tiny, max], as torch clamps its Gamma draws to tiny, with a
    # zero gradient there (not NaN).
    fi = torch.finfo(e.dtype)
    return in_range(lambda s, k: s * e.pow(k.reciprocal()), (scale, conc), fi.tiny, fi.max)


def _generalized_pareto(p: Mapping[str, Any], ss: torch.Size, g: Gen, reparam: bool) -> torch.Tensor:
    # torch's icdf, with the xi == 0 branch made differentiable (expm1_ratio; finding F3).
    loc = p["loc"]
    e = -torch.log1p(-_rand(ss + loc.shape, loc, g))
    # A large concentration overflows expm1(xi e) (xi = 1000 in float32: 91% of the draws):
    # held at the largest float, with a zero gradient there (not NaN).
    fi = torch.finfo(e.dtype)
    return in_range(lambda lo, s, xi: lo + s * expm1_ratio(xi, e),
                    (loc, p["scale"], p["concentration"]), -fi.max, fi.max)


def _continuous_bernoulli(p: Mapping[str, Any], ss: torch.Size, g: Gen, reparam: bool) -> torch.Tensor:
    # torch's law (probabilities clamped as torch clamps them), by an inverse CDF whose
    # gradient is right near probs = 1/2, where torch's icdf returns u itself (finding F14).
    probs = p["probs"]
    return continuous_bernoulli_icdf(_rand(ss + probs.shape, probs, g),
                                     continuous_bernoulli_logits(probs))


def _logistic_normal(p: Mapping[str, Any], ss: torch.Size, g: Gen, reparam: bool) -> torch.Tensor:
    return StickBreakingTransform()(_normal(p, ss, g, True))


def _relaxed_bernoulli(p: Mapping[str, Any], ss: torch.Size, g: Gen, reparam: bool) -> torch.Tensor:
    temperature, probs = p["temperature"], p["probs"]
    shape = ss + probs.shape
    probs = clamp_probs(probs.expand(shape))
    u = clamp_probs(_rand(shape, probs, g))
    logit = (u.log() - (-u).log1p() + probs.log() - (-probs).log1p()) / temperature
    return SigmoidTransform()(logit)


def _relaxed_one_hot(p: Mapping[str, Any], ss: torch.Size, g: Gen, reparam: bool) -> torch.Tensor:
    temperature, logits = p["temperature"], p["logits"]
    u = clamp_probs(_rand(ss + logits.shape, logits, g))
    gumbels = -((-(u.log())).log())
    scores = (logits + gumbels) / temperature
    # torch's exp(scores - logsumexp(scores)) sums to 1 only within 2e-6 in float32, outside
    # its own simplex check (1e-6), and underflows to 0 at low temperatures, where log_prob is
    # -inf: softmax normalizes by its own sum, and values stay at least tiny (issue 12).
    return torch.softmax(scores, dim=-1).clamp(min=torch.finfo(scores.dtype).tiny)


def _mvn(p: Mapping[str, Any], ss: torch.Size, g: Gen, reparam: bool) -> torch.Tensor:
    loc, tril = p["loc"], p["scale_tril"]
    eps = _randn(ss + loc.shape, loc, g)
    return loc + torch.matmul(tril, eps.unsqueeze(-1)).squeeze(-1)


def _lowrank_mvn(p: Mapping[str, Any], ss: torch.Size, g: Gen, reparam: bool) -> torch.Tensor:
    loc, w, diag = p["loc"], p["cov_factor"], p["cov_diag"]
    shape = ss + loc.shape
    eps_w = _randn(shape[:-1] + w.shape[-1:], loc, g)
    eps_d = _randn(shape, loc, g)
    return loc + torch.matmul(w, eps_w.unsqueeze(-1)).squeeze(-1) + diag.sqrt() * eps_d


def _bernoulli(p: Mapping[str, Any], ss: torch.Size, g: Gen, reparam: bool) -> torch.Tensor:
    probs = p["probs"]
    shape = ss + probs.shape
    if _can_scalar_fast(probs, shape, g):
        out = torch.empty(shape, dtype=probs.dtype, device=probs.device)
        return out.bernoulli_(probs.item(), generator=g)
    return _home(torch.bernoulli(_on_gen(probs.expand(shape), g), generator=g), probs, g)


def _binomial(p: Mapping[str, Any], ss: torch.Size, g: Gen, reparam: bool) -> torch.Tensor:
    count, probs = p["total_count"], p["probs"]
    shape = ss + probs.shape
    # torch.binomial computes in the parameters' dtype, and its float32 BTRS sampler is wrong
    # for large counts (Binomial(1e9, 0.3): variance +40%, finding R2); in float64 it is right.
    c64 = _on_gen(count, g).to(torch.float64).expand(shape)
    p64 = _on_gen(probs, g).to(torch.float64).expand(shape)
    return _home(_binomial_draw(c64, p64, g), probs, g).to(probs.dtype)


def _binomial_draw(c64: torch.Tensor, p64: torch.Tensor, g: Gen) -> torch.Tensor:
    """Binomial draws in float64 (``c64``, ``p64`` of the result's shape, on ``g``'s device)."""
    if not _above(c64, LARGE_COUNT):
        return torch.binomial(c64, p64, generator=g)
    small = torch.binomial(c64.clamp(max=LARGE_COUNT), p64, generator=g)
    # Large counts: the limit laws of _math.LARGE_COUNT, on the smaller of p and 1 - p.
    q = torch.minimum(p64, 1.0 - p64)
    mean = c64 * q
    var = mean * (1.0 - q)
    normal = (mean + var.sqrt() * _randn(c64.shape, c64, g)).round()
    poisson = torch.poisson(mean.clamp(max=LARGE_RATE), generator=g)
    y = torch.where(var >= LARGE_BINOMIAL_VARIANCE, normal, poisson)
    y = torch.minimum(y.clamp_(min=0.0), c64)
    y = torch.where(p64 > 0.5, c64 - y, y)
    return torch.where(c64 > LARGE_COUNT, y, small)


def _categorical_index(probs: torch.Tensor, ss: torch.Size, g: Gen) -> torch.Tensor:
    """Category indices by ``torch.multinomial`` on float64 probabilities.

    ``torch.multinomial`` accumulates the probabilities in their own dtype: in float32 it loses
    the small ones (Categorical with 1e5 categories of 1e-7 beside one large one draws a
    category other than 0 with probability 0.0119 instead of 0.0100, finding R1). In float64
    the sums are exact to 1e-16 and its uniforms have 53 bits. A category of probability 0 is
    never drawn, but for the first category, when a uniform is exactly 0 (probability 2^-53
    per draw). (An exact inversion by ``searchsorted`` costs 2 to 10 times more on few draws
    per row, where most scalar draws are.)
    """
    k = probs.shape[-1]
    batch = probs.shape[:-1]
    n = ss.numel()
    if n == 0 or probs.numel() == 0:
        return torch.zeros(ss + batch, dtype=torch.int64, device=probs.device)
    probs_2d = _on_gen(probs.detach().reshape(-1, k), g).to(torch.float64)
    samples_2d = torch.multinomial(probs_2d, n, True, generator=g).T
    return _home(samples_2d.reshape(ss + batch), probs, g)


def _categorical(p: Mapping[str, Any], ss: torch.Size, g: Gen, reparam: bool) -> torch.Tensor:
    return _categorical_index(p["probs"], ss, g)


def _one_hot(p: Mapping[str, Any], ss: torch.Size, g: Gen, reparam: bool) -> torch.Tensor:
    probs = p["probs"]
    idx = _categorical_index(probs, ss, g)
    return torch.nn.functional.one_hot(idx, probs.shape[-1]).to(probs)


def _one_hot_st(p: Mapping[str, Any], ss: torch.Size, g: Gen, reparam: bool) -> torch.Tensor:
    probs = p["probs"]
    with torch.no_grad():
        samples = _one_hot(p, ss, g, False)
    return samples + (probs - probs.detach()) if reparam else samples


#: Above this many category draws per call, Multinomial counts are drawn as conditional
#: binomials (memory O(k) per count vector instead of O(total_count)).
MULTINOMIAL_INDEX_LIMIT = 1 << 22


def _multinomial_by_binomials(n: int, probs: torch.Tensor, ss: torch.Size,
                              g: Gen) -> torch.Tensor:
    """Counts ``x_j ~ Binomial(n - x_0 - ... - x_(j-1), p_j / (p_j + ... + p_(k-1)))``: exact,
    as NumPy's multinomial, and without one index per trial (total_count may be 2**40)."""
    shape = ss + probs.shape
    p = _on_gen(probs.detach(), g).to(torch.float64)
    tail = p.flip(-1).cumsum(-1).flip(-1)  # p_j + ... + p_(k-1), without cancellation
    cond = torch.where(tail > 0, p / tail, torch.zeros_like(p)).clamp_(0.0, 1.0)
    rest = torch.full(shape[:-1], float(n), dtype=torch.float64, device=p.device)
    counts = []
    for j in range(probs.shape[-1] - 1):
        x = _binomial_draw(rest, cond[..., j].expand(shape[:-1]), g)
        counts.append(x)
        rest = rest - x
    counts.append(rest)
    return _home(torch.stack(counts, -1), probs, g).to(probs.dtype)


def _multinomial(p: Mapping[str, Any], ss: torch.Size, g: Gen, reparam: bool) -> torch.Tensor:
    n, probs = p["total_count"], p["probs"]
    shape = ss + probs.shape
    if n * ss.numel() * probs[..., 0].numel() > MULTINOMIAL_INDEX_LIMIT:
        return _multinomial_by_binomials(n, probs, ss, g)
    samples = _categorical_index(probs, torch.Size((n,)) + ss, g)
    order = list(range(samples.dim()))
    order.append(order.pop(0))
    samples = samples.permute(*order)
    counts = samples.new_zeros(shape)
    counts.scatter_add_(-1, samples, torch.ones_like(samples))
    return counts.type_as(probs)


def _poisson_draw(rate: torch.Tensor, g: Gen) -> torch.Tensor:
    """``torch.poisson(rate)`` (rate already of the result's shape), right for large rates.

    ``torch.poisson`` returns int64's minimum, -9.2e18, for rates beyond int64 (finding R4), and
    its variance is off from about 1e15 (0.85 times the law's at 3e15, 1.7 times at 1e17). Above
    :data:`LARGE_RATE` (1e12) the normal limit with its skewness term is drawn
    (:func:`~polysample.backends._math.poisson_normal_limit`: CDF error O(1 / rate)).
    """
    if not _above(rate, LARGE_RATE):
        return _home(torch.poisson(_on_gen(rate, g), generator=g), rate, g)
    r = rate.detach().to(torch.float64)
    small = _home(torch.poisson(_on_gen(r.clamp(max=LARGE_RATE), g), generator=g), r, g)
    normal = poisson_normal_limit(r, _randn(r.shape, r, g))
    return torch.where(r > LARGE_RATE, normal, small).to(rate.dtype)


def _poisson(p: Mapping[str, Any], ss: torch.Size, g: Gen, reparam: bool) -> torch.Tensor:
    rate = p["rate"]
    return _poisson_draw(rate.expand(ss + rate.shape), g)


def _geometric(p: Mapping[str, Any], ss: torch.Size, g: Gen, reparam: bool) -> torch.Tensor:
    probs = p["probs"]
    tiny = torch.finfo(probs.dtype).tiny
    u = _home(_empty(ss + probs.shape, probs, g).uniform_(tiny, 1, generator=g), probs, g)
    return (u.log() / (-probs).log1p()).floor()


def _negative_binomial(p: Mapping[str, Any], ss: torch.Size, g: Gen, reparam: bool) -> torch.Tensor:
    count, logits = p["total_count"], p["logits"]
    rate = _gamma(count, torch.exp(-logits), ss + logits.shape, g)
    return _poisson_draw(rate, g)


#: Rounds of VonMises' rejection loop before it gives up (every loop is bounded).
VON_MISES_MAX_ROUNDS = 1000


def _von_mises(p: Mapping[str, Any], ss: torch.Size, g: Gen, reparam: bool) -> torch.Tensor:
    """torch's Best-Fisher rejection sampler (``von_mises._rejection_sample``) with ``g``;
    concentrations above :data:`VON_MISES_NORMAL_LIMIT` from the normal limit (torch's proposal
    rounds to 1 from about 1e16 on and then accepts nothing)."""
    loc, concentration = torch.broadcast_tensors(p["loc"], p["concentration"])
    large = concentration > VON_MISES_NORMAL_LIMIT
    any_large = _above(concentration, VON_MISES_NORMAL_LIMIT)
    if any_large:  # the rejection loop runs those elements with a harmless concentration
        concentration = torch.where(large, torch.ones_like(concentration), concentration)
    d = td.VonMises(loc, concentration, validate_args=False)
    work_loc, conc, r = d._loc, d._concentration, d._proposal_r  # float64 for float32 params
    shape = ss + loc.shape
    x = torch.empty(shape, dtype=work_loc.dtype, device=loc.device)
    done = torch.zeros(shape, dtype=torch.bool, device=loc.device)
    rounds = 0
    while not done.all():
        rounds += 1
        if rounds > VON_MISES_MAX_ROUNDS:
            # Each round accepts a draw with probability above 0.65 for every finite
            # concentration (Best and Fisher): only a parameter that is no number gets here.
            raise InvalidParameterError(
                f"VonMises: the rejection sampler accepted no draw in {VON_MISES_MAX_ROUNDS} "
                "rounds for some parameters (an acceptance rate below 1e-100). Expected finite "
                f"loc and concentration > 0. Received: concentration "
                f"{p['concentration'].detach().flatten()[:4].tolist()}...")
        u1, u2, u3 = _rand((3,) + shape, work_loc, g).unbind()
        z = torch.cos(math.pi * u1)
        f = (1 + r * z) / (r + z)
        c = conc * (r - f)
        accept = ((c * (2 - c) - u2) > 0) | ((c / u2).log() + 1 - c >= 0)
        if accept.any():
            x = torch.where(accept, (u3 - 0.5).sign() * f.acos(), x)
            done = done | accept
    if any_large:
        kappa = p["concentration"].to(work_loc.dtype).expand(loc.shape)
        normal = _randn(shape, work_loc, g) * kappa.rsqrt()
        x = torch.where(large, normal, x)
    return ((x + math.pi + work_loc) % (2 * math.pi) - math.pi).to(loc.dtype)


def _lkj_cholesky(p: Mapping[str, Any], ss: torch.Size, g: Gen, reparam: bool) -> torch.Tensor:
    """The onion method (Lewandowski, Kurowicka and Joe 2009; TFP's ``CholeskyLKJ``) with ``g``.

    Row ``i >= 1`` of the factor is ``(sqrt(y) u, sqrt(1 - y))``, ``u`` uniform on the sphere of
    dimension ``i`` and ``y ~ Beta(i / 2, eta + (d - 2) / 2 - (i - 1) / 2)``. torch 2.13's
    ``LKJCholesky.sample`` draws ``y ~ Beta(i - 1/2, ...)``, right for the second row only, so
    the later rows had the wrong marginals (finding F2: ``Var r20`` 0.300 where the law has
    0.250 at ``d = 3``, ``eta = 1``), and takes the diagonal as ``1 - sum(w^2)`` clamped at the
    smallest normal float, an atom where the sum rounds to 1. Here the diagonal is
    ``sqrt(1 - y)`` from the same Beta draw (its second Dirichlet component: no cancellation).
    """
    dim, conc = int(p["dim"]), p["concentration"]
    row = torch.arange(dim, dtype=conc.dtype, device=conc.device)
    # row 0 is (1, 0, ...): its Beta parameters are placeholders, its draw is not read
    conc1 = (row / 2).clamp(min=0.5)
    # (d - 2)/2 - (i - 1)/2 first: the last row's is 0, so its parameter is the concentration
    # itself, not a sum that rounds it away below about 6e-8 (float32)
    conc0 = conc.unsqueeze(-1) + ((dim - 2) - (row - 1).clamp(min=0)) / 2
    pair = torch.stack(torch.broadcast_tensors(conc1, conc0), -1)  # batch + (dim, 2)
    beta = _dirichlet(pair.expand(ss + pair.shape), g, False)
    y, one_minus_y = beta[..., :1], beta[..., 1]
    u_normal = _randn(ss + conc.shape + (dim, dim), y, g).tril(-1)
    u_hypersphere = u_normal / u_normal.norm(dim=-1, keepdim=True)
    u_hypersphere[..., 0, :].fill_(0.0)  # the first row is 0/0
    diag = one_minus_y.sqrt()
    diag[..., 0].fill_(1.0)
    return torch.sqrt(y) * u_hypersphere + torch.diag_embed(diag)


#: Redraws allowed for Wishart samples that come out singular (torch's default).
WISHART_MAX_TRY_CORRECTION = 10


def _wishart(p: Mapping[str, Any], ss: torch.Size, g: Gen, reparam: bool) -> torch.Tensor:
    """Bartlett decomposition as in ``td.Wishart``, with ``g``; singular draws redrawn.

    torch 2.13's ``Wishart.rsample`` tests ``support.check(sample)`` without negation, so it
    treats every *valid* sample as singular, redraws it and writes the redraw in place, which
    breaks backward. Here only draws that really fail the positive-definite check are redrawn
    (at most :data:`WISHART_MAX_TRY_CORRECTION` times; a warning only for draws still singular
    after that), and they are merged with ``torch.where`` so gradients flow.
    """
    with warnings.catch_warnings():
        # torch warns about a df below p at construction: the caller's own constructor did,
        # once; this internal object must not repeat it on every draw.
        warnings.simplefilter("ignore", UserWarning)
        d = td.Wishart(df=p["df"], scale_tril=p["scale_tril"], validate_args=False)
    n = d.event_shape[-1]
    chi2_df = d._dist_chi2.df
    tril = d._unbroadcasted_scale_tril
    rows, cols = torch.tril_indices(n, n, offset=-1, device=tril.device)

    def bartlett() -> torch.Tensor:
        chi2 = _gamma(0.5 * chi2_df, torch.full_like(chi2_df, 0.5), ss + chi2_df.shape, g)
        eps = torch.finfo(chi2.dtype).eps
        noise = chi2.sqrt().clamp(min=eps).diag_embed(dim1=-2, dim2=-1)
        noise[..., rows, cols] = _randn(ss + d.batch_shape + (n * (n - 1) // 2,), noise, g)
        chol = tril @ noise
        return chol @ chol.transpose(-2, -1)

    # Singular draws (about 1% to 12% for df in (p - 1, p)) are redrawn silently; only draws
    # still singular after the last redraw warn (redraw_outside_support).
    return redraw_outside_support(bartlett, d.support.check, "Wishart",
                                  WISHART_MAX_TRY_CORRECTION)


_SAMPLERS: dict[str, Sampler] = {
    "Bernoulli": _bernoulli,
    "Beta": _beta,
    "Binomial": _binomial,
    "Categorical": _categorical,
    "Cauchy": _cauchy,
    "Chi2": _chi2,
    "ContinuousBernoulli": _continuous_bernoulli,
    "Dirichlet": _dirichlet_family,
    "Exponential": _exponential,
    "FisherSnedecor": _fisher_snedecor,
    "Gamma": _gamma_family,
    "GeneralizedPareto": _generalized_pareto,
    "Geometric": _geometric,
    "Gumbel": _gumbel,
    "HalfCauchy": _halfcauchy,
    "HalfNormal": _halfnormal,
    "InverseGamma": _inverse_gamma,
    "Kumaraswamy": _kumaraswamy,
    "Laplace": _laplace,
    "LogNormal": _lognormal,
    "LogisticNormal": _logistic_normal,
    "LowRankMultivariateNormal": _lowrank_mvn,
    "Multinomial": _multinomial,
    "MultivariateNormal": _mvn,
    "NegativeBinomial": _negative_binomial,
    "Normal": _normal,
    "OneHotCategorical": _one_hot,
    "OneHotCategoricalStraightThrough": _one_hot_st,
    "Pareto": _pareto,
    "Poisson": _poisson,
    "RelaxedBernoulli": _relaxed_bernoulli,
    "RelaxedOneHotCategorical": _relaxed_one_hot,
    "StudentT": _student_t,
    "Uniform": _uniform,
    "VonMises": _von_mises,
    "LKJCholesky": _lkj_cholesky,
    "Weibull": _weibull,
    "Wishart": _wishart,
}


# ---------------------------------------------------------------------- torch objects
def build(family: str, params: Mapping[str, Any]) -> td.Distribution:
    """The ``torch.distributions`` object for canonical ``params`` (``logits`` over ``probs``)."""
    spec = FAMILIES[family]
    kwargs = {name: params[name] for name in spec.params if name != "probs"}
    return getattr(td, family)(**kwargs, validate_args=False)  # type: ignore[no-any-return]


_SCORERS: dict[str, type] = {}


def _scorer(family: str) -> type:
    """torch's class of ``family`` with polysample's mends of its defects
    (:mod:`polysample.core.torch_fixes`), as polysample's own classes score."""
    cls = _SCORERS.get(family)
    if cls is None:
        base = getattr(td, family)
        fix = FIXES.get(family)
        cls = _SCORERS[family] = base if fix is None else type(family, (fix, base), {})
    return cls


# ---------------------------------------------------------------------- the backend
_NOTES = {"Wishart": "singular draws redrawn (torch 2.13 redraws every draw)"}


class TorchBackend(TableBackend):
    """``torch.distributions`` with explicit generators and fast in-place ``sample`` paths."""

    name = "torch"
    options: Mapping[str, str] | None = {}  # no [tool.polysample.<name>] options
    #: Every draw is torch operations on the parameters: torch.jit.trace records it.
    traceable = True
    table = {name: Row(draw=_SAMPLERS[name], rsample=spec.reparameterized,
                       note=_NOTES.get(name, ""))
             for name, spec in FAMILIES.items()}

    def __init__(self) -> None:
        self._fork_key: tuple[int, ...] = _seeds._fork_key
        self._generation = _seeds._generation

    def _reseed_after_fork(self) -> None:
        """Give a forked child its own global stream (torch's default generator).

        ``fork`` copies torch's default generator, so two children would repeat each other's
        draws. The core re-derives every backend's stream after a fork (mixing in the DataLoader
        worker seed or the pid); for torch that stream *is* the default generator, so reseed it,
        unless it was seeded in the child since the fork: a DataLoader worker's is (PyTorch
        seeds it with the worker seed), and a ``worker_init_fn`` or the user's own
        ``torch.manual_seed`` there must keep its stream (reproducible as in plain torch).
        """
        _seeds._resolve_fork()
        key = _seeds._fork_key
        generation = _seeds._generation
        if (key, generation) != (self._fork_key, self._generation):
            self._fork_key, self._generation = key, generation
            seeded_here = (_seeds.torch_seed_at_fork is not None
                           and torch.initial_seed() != _seeds.torch_seed_at_fork)
            if _seeds.torch_seed_at_fork is not None and not seeded_here:
                torch.manual_seed(
                    int(global_seed_sequence("torch").generate_state(1, "uint64")[0] >> 1)
                )

    def version(self) -> str:
        return torch.__version__

    def rng(self, seed: Seed, params: Params) -> Gen:
        """``None`` (torch's default generator, reseeded after a fork), the caller's generator,
        or a fresh generator on the parameters' device seeded from the ``SeedSequence``."""
        if seed is None:
            if _seeds._fork_pending or _seeds._fork_key != self._fork_key:
                self._reseed_after_fork()
            return None
        if isinstance(seed, torch.Generator):
            return seed
        if params.device.type == "meta":
            # Meta tensors hold no values: there is nothing for a seed to reproduce, and torch
            # has no generator on the meta device (it raised a raw RuntimeError).
            return None
        return torch_generator_from(seed, params.device)

    def sample(self, family: str, params: Mapping[str, Any], sample_shape: torch.Size, *,
               seed: Seed = None) -> torch.Tensor:
        if _functorch.maybe_current_level() is None:
            return super().sample(family, params, sample_shape, seed=seed)
        # Inside vmap the in-place fast paths would write a batched result into unbatched
        # noise (randomness="same"): the out-of-place (rsample) formulas, without gradients.
        row = self._row(family)
        p = Params.of(family, params)
        with torch.no_grad():
            return row.draw(p, sample_shape, self.rng(seed, p), True)

    def log_prob(self, family: str, params: Mapping[str, Any], value: torch.Tensor) -> torch.Tensor:
        """torch's ``log_prob`` of the family built from ``params``, with the defects that
        polysample's classes mend mended (:mod:`polysample.core.torch_fixes`): for direct
        callers; the core scores torch-backend draws with the distribution object itself."""
        self._row(family)  # an unknown family raises UnsupportedFamilyError
        spec = FAMILIES[family]
        kwargs = {name: params[name] for name in spec.params if name != "probs"}
        return _scorer(family)(**kwargs, validate_args=False).log_prob(value)  # type: ignore[no-any-return]


@hookimpl
def polysample_register_backends(register: Callable[..., None]) -> None:
    register("torch", TorchBackend)
