"""The ``numpy`` backend: NumPy samples, torch differentiates and scores.

Every draw comes from a ``numpy.random.Generator`` (PCG64) seeded from polysample's seeding:

* ``seed=None``: this backend's global stream (:class:`~polysample.core.seeds.GlobalStream`
  ``"numpy"``), re-derived after :func:`polysample.manual_seed` and after ``fork``;
* a ``numpy.random.SeedSequence``: a fresh Generator, so the same seed gives the same values;
* a ``torch.Generator``: advanced by one draw, which seeds a fresh Generator.

Results are ``torch.Tensor`` on the parameters' device and dtype. The draw happens on the CPU;
where NumPy produces the wanted dtype itself (``standard_normal``, ``standard_exponential``,
``standard_gamma`` and ``random`` take ``dtype=float32``) the array becomes a tensor with
``torch.from_numpy`` (zero copy) and the location-scale arithmetic is done in place.

``rsample`` keeps the randomness in NumPy and the differentiable part in torch:

* explicit families are a torch transform of parameter-free NumPy noise (``loc + scale * eps``,
  inverse CDFs, softmax of Gumbel noise, ...);
* Gamma-based families (Gamma, Chi2, InverseGamma, StudentT's ``df``, FisherSnedecor, Wishart)
  and Beta/Dirichlet use implicit reparameterization (Figurnov et al. 2018),
  ``dz/dθ = -(∂F/∂θ)(z; θ) / p(z; θ)``, inside a ``torch.autograd.Function``. ``∂F/∂θ`` is a
  central difference of a float64 CDF (``torch.special.gammainc``/``gammaincc`` for Gamma, a
  continued fraction for the regularized incomplete beta), always on the smaller tail so that no
  cancellation against 1 occurs.

NumPy has no densities: ``log_prob`` is scored by torch (``FamilySupport(log_prob=False)``).
Families NumPy cannot draw directly or by a short exact transform are absent from
:meth:`NumpyBackend.families` (LKJCholesky, MixtureSameFamily); see ``docs/backends/numpy.md``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..core.backend import Backend, FamilySupport, Seed
from ..core.errors import InvalidParameterError, NotReparameterizableError, UnsupportedFamilyError
from ..core.hookspecs import hookimpl
from ..core.seeds import GlobalStream, seed_sequence_from
from ._math import expm1_ratio

__all__ = ["NumpyBackend", "standard_gamma_dz_dalpha", "beta_dx_da", "betainc"]


def _make_generator(ss: np.random.SeedSequence) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(ss))


_GLOBAL: GlobalStream[np.random.Generator] = GlobalStream("numpy", _make_generator)


def _generator(seed: Seed) -> np.random.Generator:
    if seed is None:
        return _GLOBAL.get()
    return _make_generator(seed_sequence_from(seed))


# ============================================================== implicit reparameterization
def _rel_step(a: torch.Tensor) -> torch.Tensor:
    # The CDFs vary in a shape parameter on a scale of about min(a, sqrt(a)); a step of 1e-4 of
    # that scale puts the O(h^2) truncation near 1e-8 and the float64 round-off near 1e-10.
    return 1e-4 * a / (1.0 + a.sqrt())


def standard_gamma_dz_dalpha(z: torch.Tensor, alpha: torch.Tensor, *,
                             log: bool = False, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """``dz/dα`` for a standard Gamma(α, 1) sample ``z`` (implicit reparameterization).

    ``-(∂P/∂α)(z; α) / p(z; α)`` with ``∂P/∂α`` a central difference of the regularized incomplete
    gamma function in float64, on the lower tail ``P`` below the mean and on the upper tail
    ``Q = 1 - P`` above it. With ``log=True`` returns ``d(log z)/dα`` (divides by ``z p(z)``
    directly, so it stays finite where ``z`` is near the smallest float). Returns ``dtype``
    (float64 by default), the broadcast shape of ``z`` and ``alpha``.

    When there are at least 8 draws per table node for every concentration value, the exact
    derivative is tabulated and interpolated instead (:func:`_gamma_dz_tabulated`).
    """
    z = z.detach()
    a = alpha.detach()
    if a.numel() * _TABLE_NODES * 8 <= z.numel():
        return _gamma_dz_tabulated(z, a, log, dtype)
    return _gamma_dz_exact(z.double(), a.double(), log).to(dtype)


#: Nodes per concentration value of the interpolation table (see _gamma_dz_tabulated).
_TABLE_NODES = 4097


def _gamma_dz_tabulated(z: torch.Tensor, a: torch.Tensor, log: bool,
                        dtype: torch.dtype) -> torch.Tensor:
    """The exact derivative tabulated in ``log z`` per concentration value, then interpolated.

    Used when many draws share few concentrations (a scalar or small batch of parameters and a
    large ``sample_shape``): ``d(log z)/dα`` is smooth in ``log z`` (linear in both tails), so a
    cubic through the 4 nearest of 4097 equally spaced nodes between the smallest and largest
    ``log z`` of each concentration matches the exact values to a few 1e-6 at worst (tested),
    at a small fraction of the cost of two incomplete-gamma evaluations per draw. The table is
    built in float64; the per-draw evaluation runs in ``dtype`` (the gradient's).
    """
    shape = torch.broadcast_shapes(z.shape, a.shape)
    n_groups, g = a.numel(), _TABLE_NODES
    t = z.to(dtype).clamp(min=torch.finfo(dtype).tiny).log().expand(shape).reshape(-1)
    if n_groups == 1:
        groups = None
        lo, hi = torch.aminmax(t)
        t_min, t_max = lo.double().reshape(1), hi.double().reshape(1)
    else:
        groups = torch.arange(n_groups, device=a.device).reshape(a.shape).expand(shape).reshape(-1)
        init = torch.full((n_groups,), math.inf, dtype=dtype, device=t.device)
        t_min = init.scatter_reduce(0, groups, t, "amin").double()
        t_max = (-init).scatter_reduce(0, groups, t, "amax").double()
    step = torch.where(t_max > t_min, (t_max - t_min) / (g - 1), torch.ones_like(t_min))
    grid = torch.arange(g, dtype=torch.float64, device=t.device)
    nodes = t_min.unsqueeze(1) + step.unsqueeze(1) * grid
    f = _gamma_dz_exact(nodes.exp(), a.reshape(-1, 1).double(), True)  # (groups, g)
    # Cubic through nodes j-1, j, j+1, j+2 as a polynomial in s = pos - j (Horner form).
    fm, f0, f1, f2 = f[:, :-3], f[:, 1:-2], f[:, 2:-1], f[:, 3:]
    coefs = [torch.nn.functional.pad(c, (1, 2)).reshape(-1).to(dtype)  # entry = group*g + j
             for c in (f0, -fm / 3 - f0 / 2 + f1 - f2 / 6, fm / 2 - f0 + f1 / 2,
                       -fm / 6 + f0 / 2 - f1 / 2 + f2 / 6)]
    pos = t.sub(t_min.to(dtype)) if groups is None else t - t_min.to(dtype)[groups]
    pos.mul_((1.0 / step).to(dtype) if groups is None else (1.0 / step).to(dtype)[groups])
    j = pos.floor().clamp_(1, g - 3)
    idx = j.long() if groups is None else groups * g + j.long()
    s = pos.sub_(j)
    out = coefs[3].index_select(0, idx).mul_(s)
    out.add_(coefs[2].index_select(0, idx)).mul_(s)
    out.add_(coefs[1].index_select(0, idx)).mul_(s)
    out.add_(coefs[0].index_select(0, idx))
    out = out.reshape(shape)
    return out if log else out * z.to(dtype).expand(shape)


def _gamma_dz_exact(z: torch.Tensor, a: torch.Tensor, log: bool) -> torch.Tensor:
    z, a = torch.broadcast_tensors(z, a)
    shape = z.shape
    z = z.clamp(min=torch.finfo(torch.float64).tiny).reshape(-1)
    a = a.reshape(-1)
    # One gather per tail (rows of [z, a]) keeps the indexing cost below the CDF's own cost.
    za = torch.stack((z, a), dim=1)
    lower = torch.nonzero(z < a).squeeze(1)
    upper = torch.nonzero(z >= a).squeeze(1)
    d_f = torch.empty_like(z)
    zl, al = za.index_select(0, lower).unbind(1)
    hl = _rel_step(al)
    d_f.index_copy_(0, lower, (torch.special.gammainc(al + hl, zl)
                               - torch.special.gammainc(al - hl, zl)) / (2 * hl))
    zu, au = za.index_select(0, upper).unbind(1)
    hu = _rel_step(au)
    d_f.index_copy_(0, upper, (torch.special.gammaincc(au - hu, zu)
                               - torch.special.gammaincc(au + hu, zu)) / (2 * hu))
    log_p = (a if log else a - 1) * z.log() - z - torch.lgamma(a)
    out = -d_f / log_p.exp()
    bad = ~torch.isfinite(out)
    if bad.any():
        # Beyond the float64 range of the CDF (concentrations far above 1e8): the normal limit
        # z = a + sqrt(a) * eps gives dz/da = (z + a) / (2a), exact to O(1/sqrt(a)).
        limit = (z + a) / (2 * a) / (z if log else 1.0)
        out = torch.where(bad, torch.nan_to_num(limit, nan=0.0, posinf=0.0, neginf=0.0), out)
    return out.reshape(shape)




_FPMIN = 1e-300


def _betacf(a: torch.Tensor, b: torch.Tensor, x: torch.Tensor, max_iter: int = 20000) -> torch.Tensor:
    """Continued fraction of the incomplete beta (modified Lentz), float64, vectorized."""
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c = torch.ones_like(x)
    d = 1.0 - qab * x / qap
    d = torch.where(d.abs() < _FPMIN, torch.full_like(d, _FPMIN), d).reciprocal()
    h = d.clone()
    for m in range(1, max_iter + 1):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = torch.where(d.abs() < _FPMIN, torch.full_like(d, _FPMIN), d).reciprocal()
        c = 1.0 + aa / c
        c = torch.where(c.abs() < _FPMIN, torch.full_like(c, _FPMIN), c)
        h = h * d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = torch.where(d.abs() < _FPMIN, torch.full_like(d, _FPMIN), d).reciprocal()
        c = 1.0 + aa / c
        c = torch.where(c.abs() < _FPMIN, torch.full_like(c, _FPMIN), c)
        delta = d * c
        h = h * delta
        if m % 8 == 0 and not bool(((delta - 1.0).abs() > 1e-15).any()):
            break
    return h


_QUAD_MIN = 3000.0
_GL_NODES, _GL_WEIGHTS = np.polynomial.legendre.leggauss(64)


def _betainc_lower_quad(x: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``I_x(a, b)`` for large ``a`` and ``b`` by Gauss-Legendre quadrature of the density.

    The continued fraction needs O(sqrt(max(a, b))) terms and converges slowly near the mean,
    where the samples are; above a few thousand (Numerical Recipes' ``betaiapprox``) the
    integral from ``mean - 10 sd`` (or ``x - 5 sd``) to ``x`` of the nearly normal density is
    exact to float64 with 64 nodes.
    """
    mu = a / (a + b)
    sd = (a * b / ((a + b) ** 2 * (a + b + 1.0))).sqrt()
    lo = torch.minimum(mu - 10.0 * sd, x - 5.0 * sd).clamp(min=0.0)
    lo = torch.minimum(lo, x)
    nodes = torch.as_tensor(_GL_NODES, dtype=x.dtype, device=x.device)
    weights = torch.as_tensor(_GL_WEIGHTS, dtype=x.dtype, device=x.device)
    half = ((x - lo) * 0.5).unsqueeze(-1)
    u = lo.unsqueeze(-1) + half * (nodes + 1.0)
    am1, bm1 = (a - 1.0).unsqueeze(-1), (b - 1.0).unsqueeze(-1)
    lmu, lmuc = mu.log().unsqueeze(-1), torch.log1p(-mu).unsqueeze(-1)
    # Centre the exponent at the mode region so the integrand neither overflows nor underflows.
    terms = torch.exp(am1 * (u.log() - lmu) + bm1 * (torch.log1p(-u) - lmuc))
    integral = (terms * weights).sum(-1) * half.squeeze(-1)
    log_front = (a - 1.0) * mu.log() + (b - 1.0) * torch.log1p(-mu) - (
        torch.lgamma(a) + torch.lgamma(b) - torch.lgamma(a + b))
    return integral * log_front.exp()


def _use_quadrature(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    # Where the continued fraction is slow: a large shape, and no integrable singularity at the
    # ends and a smooth integrand at 0 (shapes >= 10). Decided once at the central parameters of a difference stencil.
    return (torch.maximum(a, b) > _QUAD_MIN) & (torch.minimum(a, b) >= 10.0)


def _betainc_lower(x: torch.Tensor, y: torch.Tensor, a: torch.Tensor, b: torch.Tensor,
                   quad: torch.Tensor | None = None) -> torch.Tensor:
    """``I_x(a, b)``, accurate where ``x < (a+1)/(a+b+2)`` (the lower tail); ``y = 1-x``."""
    big = _use_quadrature(a, b) if quad is None else quad
    if bool(big.any()):
        out = torch.empty_like(x)
        out[big] = _betainc_lower_quad(x[big], a[big], b[big])
        small = ~big
        out[small] = _betainc_lower(x[small], y[small], a[small], b[small], big[small])
        return out
    log_front = a * x.log() + b * y.log() - (torch.lgamma(a) + torch.lgamma(b) - torch.lgamma(a + b))
    return log_front.exp() * _betacf(a, b, x) / a


def betainc(x: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The regularized incomplete beta function ``I_x(a, b)`` in float64 (torch has none)."""
    x, a, b = torch.broadcast_tensors(x.double(), a.double(), b.double())
    y = 1.0 - x
    lower = x < (a + 1.0) / (a + b + 2.0)
    out = torch.empty_like(x)
    out[lower] = _betainc_lower(x[lower], y[lower], a[lower], b[lower])
    up = ~lower
    out[up] = 1.0 - _betainc_lower(y[up], x[up], b[up], a[up])
    return out


def _dbetainc_da(x: torch.Tensor, y: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``∂I_x(a, b)/∂a`` by a central difference on the smaller tail; ``y = 1 - x``."""
    h = _rel_step(a)
    lower = x < (a + 1.0) / (a + b + 2.0)
    out = torch.empty_like(x)
    xl, yl, al, bl, hl = x[lower], y[lower], a[lower], b[lower], h[lower]
    ql = _use_quadrature(al, bl)
    out[lower] = (_betainc_lower(xl, yl, al + hl, bl, ql)
                  - _betainc_lower(xl, yl, al - hl, bl, ql)) / (2 * hl)
    up = ~lower
    xu, yu, au, bu, hu = x[up], y[up], a[up], b[up], h[up]
    # I_x(a, b) = 1 - I_y(b, a): the upper tail is computed directly, so it never cancels.
    qu = _use_quadrature(au, bu)
    out[up] = (_betainc_lower(yu, xu, bu, au - hu, qu)
               - _betainc_lower(yu, xu, bu, au + hu, qu)) / (2 * hu)
    return out


def beta_dx_da(x: torch.Tensor, a: torch.Tensor, b: torch.Tensor,
               y: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(dx/da, dx/db)`` for a Beta(a, b) sample ``x`` (implicit reparameterization), float64.

    ``y`` is ``1 - x`` when the caller has it more precisely than ``1 - x`` (stick breaking).
    """
    x, a, b = torch.broadcast_tensors(x.detach().double(), a.detach().double(), b.detach().double())
    tiny = torch.finfo(torch.float64).tiny
    y = (1.0 - x) if y is None else torch.broadcast_to(y.detach().double(), x.shape)
    x, y = x.clamp(min=tiny), y.clamp(min=tiny)
    log_p = (a - 1) * x.log() + (b - 1) * y.log() - (torch.lgamma(a) + torch.lgamma(b) - torch.lgamma(a + b))
    p = log_p.exp()
    dx_da = -_dbetainc_da(x, y, a, b) / p
    # I_x(a, b) = 1 - I_y(b, a), so dI/db = -dI_y(b, a)/d(first shape).
    dx_db = _dbetainc_da(y, x, b, a) / p
    return (torch.nan_to_num(dx_da, nan=0.0, posinf=0.0, neginf=0.0),
            torch.nan_to_num(dx_db, nan=0.0, posinf=0.0, neginf=0.0))


class _ImplicitGamma(torch.autograd.Function):
    """Standard Gamma(α) sample ``z`` (drawn by NumPy) with gradient ``dz/dα`` in backward."""

    @staticmethod
    def forward(ctx: Any, alpha: torch.Tensor, z: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(alpha, z)
        return z

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, None]:  # type: ignore[override]
        alpha, z = ctx.saved_tensors
        dz = standard_gamma_dz_dalpha(z, alpha, dtype=grad.dtype)
        return (grad * dz).sum_to_size(alpha.shape), None


class _ImplicitLogGamma(torch.autograd.Function):
    """``log z`` of a standard Gamma(α) sample, with gradient ``d(log z)/dα`` in backward.

    Ratios of Gamma draws (StudentT, FisherSnedecor, InverseGamma) go through ``log z``: for small
    α, ``z`` sits at the smallest float and ``1/z`` or ``z**2`` in an autograd chain overflows.
    """

    @staticmethod
    def forward(ctx: Any, alpha: torch.Tensor, z: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(alpha, z)
        return z.log()

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, None]:  # type: ignore[override]
        alpha, z = ctx.saved_tensors
        dlog = standard_gamma_dz_dalpha(z, alpha, log=True, dtype=grad.dtype)
        return (grad * dlog).sum_to_size(alpha.shape), None


class _ImplicitBeta(torch.autograd.Function):
    """Beta(a, b) sample ``x`` (drawn by NumPy in float64) with implicit gradients."""

    @staticmethod
    def forward(ctx: Any, a: torch.Tensor, b: torch.Tensor, x: torch.Tensor,  # type: ignore[override]
                x64: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(a, b, x64)
        return x

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[Any, ...]:  # type: ignore[override]
        a, b, x64 = ctx.saved_tensors
        da, db = beta_dx_da(x64, a, b)
        return grad * da.to(grad), grad * db.to(grad), None, None


class _ImplicitDirichlet(torch.autograd.Function):
    """Dirichlet sample with Figurnov et al.'s implicit gradient.

    ``x_i`` is marginally Beta(α_i, α_0 - α_i); moving α_i moves ``x_i`` by the Beta implicit
    gradient and rescales the other components (their ratios do not depend on α_i):
    ``∂x_i/∂α_i = d_i``, ``∂x_j/∂α_i = -d_i x_j / (1 - x_i)``.
    """

    @staticmethod
    def forward(ctx: Any, alpha: torch.Tensor, x: torch.Tensor,  # type: ignore[override]
                x64: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(alpha, x64)
        return x

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[Any, ...]:  # type: ignore[override]
        alpha, x64 = ctx.saved_tensors
        a = alpha.detach().double()
        # 1 - x_i and Σ_{j≠i} α_j as sums of the others: precise when one component dominates.
        y = _exclusive_sum(x64)
        d, _ = beta_dx_da(x64, a, _exclusive_sum(a), y=y)
        g = grad.double()
        s = (g * x64).sum(-1, keepdim=True)
        tiny = torch.finfo(torch.float64).tiny
        out = d * (g - s) / y.clamp(min=tiny)
        return torch.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0).to(grad), None, None


# ============================================================== drawing context
class _Draw:
    """One call: the generator, the target dtype/device, the shapes and the gradient mode."""

    def __init__(self, rng: np.random.Generator, params: Mapping[str, Any], ref: torch.Tensor,
                 sample_shape: torch.Size, batch_shape: torch.Size, reparam: bool):
        self.rng = rng
        self.p = params
        self.dtype = ref.dtype
        self.device = ref.device
        # NumPy's float32 paths exist only for a few methods; every other dtype draws in float64.
        self.np_dtype: type = np.float32 if ref.dtype == torch.float32 else np.float64
        self.sample_shape = sample_shape
        self.batch_shape = batch_shape
        self.reparam = reparam

    def size(self, event: tuple[int, ...] = ()) -> tuple[int, ...]:
        return tuple(self.sample_shape) + tuple(self.batch_shape) + event

    def arg(self, name: str) -> np.ndarray:
        """A parameter as a float64 NumPy array (the precision NumPy's samplers use)."""
        return self.p[name].detach().to("cpu", torch.float64).numpy()

    def param(self, name: str) -> torch.Tensor:
        t = self.p[name]
        return t if self.reparam else t.detach()

    def tensor(self, arr: Any) -> torch.Tensor:
        """NumPy result -> tensor of the target dtype and device (zero copy when already so)."""
        t = torch.from_numpy(np.asarray(arr))
        return t.to(device=self.device, dtype=self.dtype)

    # NumPy's native float32 noise (zero copy for float32 parameters).
    def std_normal(self, event: tuple[int, ...] = ()) -> torch.Tensor:
        return self.tensor(self.rng.standard_normal(self.size(event), dtype=self.np_dtype))

    def std_exponential(self, event: tuple[int, ...] = ()) -> torch.Tensor:
        return self.tensor(self.rng.standard_exponential(self.size(event), dtype=self.np_dtype))

    def uniform(self, event: tuple[int, ...] = ()) -> torch.Tensor:
        return self.tensor(self.rng.random(self.size(event), dtype=self.np_dtype))

    def std_gamma(self, alpha: np.ndarray, event: tuple[int, ...] = ()) -> torch.Tensor:
        """Standard Gamma(alpha) draws, clamped to the dtype's smallest normal number.

        Small concentrations underflow to 0 (Gamma(0.01) is below 1e-38 with probability 0.4);
        torch clamps the same way, which keeps the value in the support and log_prob finite.
        """
        z = self.tensor(self.rng.standard_gamma(alpha, self.size(event), dtype=self.np_dtype))
        # For alpha >= 1, P(Z < tiny) <= tiny / Gamma(alpha + 1) < 1e-37: no draw underflows,
        # and the extra pass over the values is skipped.
        if alpha.size == 0 or float(np.min(alpha)) < 1.0:
            z.clamp_(min=torch.finfo(self.dtype).tiny)
        return z

    def gamma(self, concentration: torch.Tensor, event: tuple[int, ...] = ()) -> torch.Tensor:
        """Standard Gamma(concentration) draws, differentiable in ``concentration`` on rsample."""
        z = self.std_gamma(concentration.detach().to("cpu", torch.float64).numpy(), event)
        if not (self.reparam and concentration.requires_grad):
            return z
        return _ImplicitGamma.apply(concentration, z)

    def log_gamma(self, concentration: torch.Tensor) -> torch.Tensor:
        """``log`` of standard Gamma(concentration) draws, differentiable on rsample."""
        z = self.std_gamma(concentration.detach().to("cpu", torch.float64).numpy())
        if not (self.reparam and concentration.requires_grad):
            return z.log()
        return _ImplicitLogGamma.apply(concentration, z)

    def affine(self, eps: torch.Tensor, loc: torch.Tensor | None, scale: torch.Tensor) -> torch.Tensor:
        if self.reparam:
            # One fused kernel (and one saved product fewer) than loc + eps * scale.
            return eps * scale if loc is None else torch.addcmul(loc, eps, scale)
        _inplace(eps, "mul", scale)
        return eps if loc is None else _inplace(eps, "add", loc)


_UFUNCS = {"mul": np.multiply, "add": np.add, "div": np.divide}


def _inplace(t: torch.Tensor, op: str, other: torch.Tensor) -> torch.Tensor:
    """``t <op>= other`` in place, without gradients.

    On CPU this runs as a NumPy ufunc on the shared buffer: for these simple loops NumPy is
    about twice as fast as torch's element-wise kernels on a tensor made by ``from_numpy``
    (measured on 1e7 float32 values), which is what keeps large draws at NumPy's own speed.
    """
    if (t.device.type == "cpu" and other.device.type == "cpu" and t.dtype == other.dtype
            and t.dtype in (torch.float32, torch.float64) and t.is_contiguous()):
        arr = t.numpy()
        _UFUNCS[op](arr, other.detach().numpy(), out=arr)
        return t
    return getattr(t, f"{op}_")(other)


def _batch(params: Mapping[str, Any], name: str, event_dims: int = 0) -> torch.Size:
    shape = params[name].shape
    return shape[: len(shape) - event_dims]


def _tiny(dtype: torch.dtype) -> float:
    return torch.finfo(dtype).tiny


def _clamp_probs(x: torch.Tensor) -> torch.Tensor:
    # torch.distributions.utils.clamp_probs: keeps Relaxed* samples strictly inside (0, 1).
    eps = torch.finfo(x.dtype).eps
    return x.clamp(min=eps, max=1 - eps)


# ============================================================== families
# Each drawer: (draw) -> Tensor. ``d.reparam`` says whether the result must be differentiable.
def _normal(d: _Draw) -> torch.Tensor:
    return d.affine(d.std_normal(), d.param("loc"), d.param("scale"))


def _lognormal(d: _Draw) -> torch.Tensor:
    x = _normal(d)
    return x.exp() if d.reparam else x.exp_()


def _halfnormal(d: _Draw) -> torch.Tensor:
    return d.affine(d.std_normal().abs_(), None, d.param("scale"))


def _uniform(d: _Draw) -> torch.Tensor:
    low, high = d.param("low"), d.param("high")
    return d.affine(d.uniform(), low, high - low)


def _exponential(d: _Draw) -> torch.Tensor:
    e = d.std_exponential()
    rate = d.param("rate")
    return e / rate if d.reparam else _inplace(e, "div", rate)


def _cauchy(d: _Draw) -> torch.Tensor:
    return d.affine(d.tensor(d.rng.standard_cauchy(d.size())), d.param("loc"), d.param("scale"))


def _halfcauchy(d: _Draw) -> torch.Tensor:
    return d.affine(d.tensor(np.abs(d.rng.standard_cauchy(d.size()))), None, d.param("scale"))


def _laplace(d: _Draw) -> torch.Tensor:
    return d.affine(d.tensor(d.rng.laplace(0.0, 1.0, d.size())), d.param("loc"), d.param("scale"))


def _gumbel(d: _Draw) -> torch.Tensor:
    return d.affine(d.tensor(d.rng.gumbel(0.0, 1.0, d.size())), d.param("loc"), d.param("scale"))


def _weibull(d: _Draw) -> torch.Tensor:
    scale, k = d.param("scale"), d.param("concentration")
    if d.reparam:
        # NumPy's weibull(k) is (-log U)^(1/k) with unit scale; the same from exponential noise
        # keeps k differentiable in torch.
        return scale * d.std_exponential().pow(k.reciprocal())
    # NumPy's weibull has one parameter (unit scale): torch's scale multiplies it.
    return _inplace(d.tensor(d.rng.weibull(d.arg("concentration"), d.size())), "mul", scale)


def _pareto(d: _Draw) -> torch.Tensor:
    scale, alpha = d.param("scale"), d.param("alpha")
    if d.reparam:
        return scale * (d.std_exponential() / alpha).exp()
    # NumPy's pareto is Lomax (Pareto II, support [0, inf)); torch's Pareto is type I with
    # support [scale, inf): scale * (1 + lomax).
    return _inplace(d.tensor(d.rng.pareto(d.arg("alpha"), d.size()) + 1.0), "mul", scale)


def _kumaraswamy(d: _Draw) -> torch.Tensor:
    a, b = d.param("concentration1"), d.param("concentration0")
    u = d.uniform()
    # Inverse CDF (1 - (1 - u)^(1/b))^(1/a), with U and 1 - U exchanged (same law).
    x = (-torch.expm1(u.clamp(min=_tiny(u.dtype)).log() / b)).pow(a.reciprocal())
    eps = torch.finfo(x.dtype).eps
    return x.clamp(min=_tiny(x.dtype), max=1 - eps)


def _generalized_pareto(d: _Draw) -> torch.Tensor:
    loc, scale, xi = d.param("loc"), d.param("scale"), d.param("concentration")
    return loc + scale * expm1_ratio(xi, d.std_exponential())


def _continuous_bernoulli(d: _Draw) -> torch.Tensor:
    import torch.distributions as td

    u = d.uniform()
    dist = td.ContinuousBernoulli(logits=d.param("logits"), validate_args=False)
    return dist.icdf(u)


def _vonmises(d: _Draw) -> torch.Tensor:
    x = d.rng.vonmises(d.arg("loc"), d.arg("concentration"), d.size())
    return d.tensor(x)


def _gamma(d: _Draw) -> torch.Tensor:
    z = d.gamma(d.param("concentration"))
    rate = d.param("rate")
    # NumPy's gamma takes scale = 1/rate; dividing the standard draw by rate is the same law.
    x = z / rate if d.reparam else _inplace(z, "div", rate)
    # As torch does: keep the value in the support (a large rate can underflow it again); the
    # gradient is that of the unclamped value. With concentration >= 1 and rate <= 1e10,
    # P(Z / rate < tiny) <= 1e10 * tiny < 1e-27 per draw, so that pass is skipped there.
    conc = d.p["concentration"].detach()
    if not (conc.numel() and float(conc.min()) >= 1.0 and float(rate.detach().max()) <= 1e10):
        x.detach().clamp_(min=_tiny(x.dtype))
    return x


def _chi2(d: _Draw) -> torch.Tensor:
    z = d.gamma(d.param("df") * 0.5)
    return z * 2 if d.reparam else z.mul_(2)


def _inverse_gamma(d: _Draw) -> torch.Tensor:
    rate = d.param("rate")
    if not d.reparam:
        return d.gamma(d.param("concentration")).reciprocal_().mul_(rate)
    return rate * (-d.log_gamma(d.param("concentration"))).exp()


def _student_t(d: _Draw) -> torch.Tensor:
    df = d.param("df")
    if not d.reparam:
        t = d.tensor(d.rng.standard_t(d.arg("df"), d.size()))
        return d.affine(t, d.param("loc"), d.param("scale"))
    log_chi2 = d.log_gamma(df * 0.5) + math.log(2.0)
    t = d.std_normal() * (0.5 * (df.log() - log_chi2)).exp()
    return d.affine(t, d.param("loc"), d.param("scale"))


def _fisher_snedecor(d: _Draw) -> torch.Tensor:
    if not d.reparam:
        x = d.tensor(d.rng.f(d.arg("df1"), d.arg("df2"), d.size()))
        return x.clamp_(min=_tiny(x.dtype))
    df1, df2 = d.param("df1"), d.param("df2")
    log_x = d.log_gamma(df1 * 0.5) - d.log_gamma(df2 * 0.5) + df2.log() - df1.log()
    # Kept inside the support (> 0) as the Gamma draws are; clamped in log space, where the
    # saved exp() output is not modified.
    return log_x.clamp(min=math.log(_tiny(log_x.dtype))).exp()


def _beta_numpy(d: _Draw, a: np.ndarray, b: np.ndarray) -> tuple[torch.Tensor, np.ndarray]:
    x64 = d.rng.beta(a, b, d.size())
    # Keep the value strictly inside (0, 1) at the output precision, as torch's sampler does
    # (float32 rounds values within 3e-8 of 1 up to 1). Cast and clip by NumPy in one buffer.
    if d.np_dtype is np.float32 and d.dtype == torch.float32:
        x32 = x64.astype(np.float32)
        fi = np.finfo(np.float32)
        np.clip(x32, fi.tiny, np.float32(1 - fi.eps / 2), out=x32)
        return d.tensor(x32), x64
    x = d.tensor(x64)
    return x.clamp_(min=_tiny(x.dtype), max=1 - torch.finfo(x.dtype).eps / 2), x64


def _beta(d: _Draw) -> torch.Tensor:
    a, b = d.param("concentration1"), d.param("concentration0")
    x, x64 = _beta_numpy(d, d.arg("concentration1"), d.arg("concentration0"))
    if not (d.reparam and (a.requires_grad or b.requires_grad)):
        return x
    shape = x.shape
    return _ImplicitBeta.apply(a.expand(shape), b.expand(shape), x, torch.from_numpy(np.asarray(x64)))


def _dirichlet_numpy(d: _Draw, alpha: np.ndarray) -> np.ndarray:
    size = d.size((alpha.shape[-1],))
    if alpha.size and alpha.min() >= 0.5:
        g = d.rng.standard_gamma(np.broadcast_to(alpha, size))
        return g / g.sum(-1, keepdims=True)
    # Small concentrations: Gamma draws underflow (all of a row can be 0, giving 0/0), and stick
    # breaking with Beta draws (NumPy's own dirichlet below 0.1) rounds 1 - v to 0, flushing
    # components to exactly 0 far more often than the law does. Work in log space instead:
    # G_α = G_{α+1} U^{1/α} exactly, so log G_α = log G_{α+1} + log(U)/α never underflows, and
    # x = exp(log G - logsumexp(log G)) is 0 only where the true value is below 1e-308.
    alpha = np.broadcast_to(alpha, size)
    log_g = np.log(d.rng.standard_gamma(alpha + 1.0)) + np.log1p(-d.rng.random(size)) / alpha
    log_g -= log_g.max(-1, keepdims=True)
    log_g -= np.log(np.exp(log_g).sum(-1, keepdims=True))
    return np.exp(log_g)


def _exclusive_sum(t: torch.Tensor) -> torch.Tensor:
    """``Σ_{j≠i} t_j`` along the last dim, from positive partial sums only (no cancellation)."""
    zero = torch.zeros_like(t[..., :1])
    left = torch.cat((zero, t.cumsum(-1)[..., :-1]), -1)
    right = torch.cat((zero, t.flip(-1).cumsum(-1)[..., :-1]), -1).flip(-1)
    return left + right


def _dirichlet(d: _Draw) -> torch.Tensor:
    conc = d.param("concentration")
    x64 = _dirichlet_numpy(d, d.arg("concentration"))
    x = d.tensor(x64).clamp_(min=_tiny(d.dtype))
    if not (d.reparam and conc.requires_grad):
        return x
    return _ImplicitDirichlet.apply(conc.expand(x.shape), x, torch.from_numpy(x64))


def _logistic_normal(d: _Draw) -> torch.Tensor:
    from torch.distributions.transforms import StickBreakingTransform

    k = d.p["loc"].shape[-1]
    y = d.affine(d.std_normal((k,)), d.param("loc"), d.param("scale"))
    return StickBreakingTransform()(y)


def _mvn(d: _Draw) -> torch.Tensor:
    loc, tril = d.param("loc"), d.param("scale_tril")
    eps = d.std_normal((loc.shape[-1],))
    return loc + torch.matmul(tril, eps.unsqueeze(-1)).squeeze(-1)


def _lowrank_mvn(d: _Draw) -> torch.Tensor:
    loc, w, diag = d.param("loc"), d.param("cov_factor"), d.param("cov_diag")
    eps_w = d.std_normal((w.shape[-1],))
    eps_d = d.std_normal((loc.shape[-1],))
    return loc + torch.matmul(w, eps_w.unsqueeze(-1)).squeeze(-1) + diag.sqrt() * eps_d


def _wishart(d: _Draw) -> torch.Tensor:
    df, tril = d.param("df"), d.param("scale_tril")
    p = tril.shape[-1]
    # Bartlett decomposition: A lower triangular, A_ii^2 ~ Chi2(df - i), A_ij ~ N(0, 1) (i > j).
    offsets = torch.arange(p, dtype=df.dtype, device=df.device)
    chi2 = d.gamma((df.unsqueeze(-1) - offsets) * 0.5, (p,)) * 2
    diag = chi2.sqrt()
    normals = d.std_normal((p, p)).tril(-1)
    a = normals + torch.diag_embed(diag)
    chol = torch.matmul(tril, a)
    return torch.matmul(chol, chol.transpose(-1, -2))


# ---------------------------------------------------------------- discrete (sample only)
def _probs64(d: _Draw) -> np.ndarray:
    return d.arg("probs")


def _bernoulli(d: _Draw) -> torch.Tensor:
    u = d.rng.random(d.size(), dtype=d.np_dtype)
    probs = d.p["probs"].detach().to("cpu", torch.float32 if d.np_dtype is np.float32
                                      else torch.float64).numpy()
    # u in [0, 1): probs 0 never fires, probs 1 always does. The comparison writes the 0/1
    # values straight into a float array (one pass, no bool intermediate).
    return d.tensor(np.less(u, probs, out=np.empty(u.shape, dtype=d.np_dtype)))


def _binomial(d: _Draw) -> torch.Tensor:
    n = np.rint(d.arg("total_count")).astype(np.int64)
    return d.tensor(d.rng.binomial(n, np.clip(_probs64(d), 0.0, 1.0), d.size()))


def _cdf_table(d: _Draw) -> torch.Tensor:
    """Normalized cumulative probabilities (float64, CPU); trailing entries are exactly 1."""
    probs = d.p["probs"].detach().to("cpu", torch.float64)
    c = probs.cumsum(-1)
    # c_j == c_last for every j at or after the last positive category, so those become 1.0
    # exactly and a uniform in [0, 1) never selects a zero-probability category.
    return c / c[..., -1:]


def _categorical_index(d: _Draw) -> torch.Tensor:
    c = _cdf_table(d)
    k = c.shape[-1]
    batch = tuple(c.shape[:-1])
    ns = len(d.sample_shape)
    u = torch.from_numpy(d.rng.random(d.size()))
    # searchsorted wants the batch in front: (batch..., samples).
    nb_ = len(batch)
    u_b = u.permute(tuple(range(ns, ns + nb_)) + tuple(range(ns))).reshape(batch + (-1,))
    idx = torch.searchsorted(c.contiguous(), u_b.contiguous(), right=True).clamp_(max=k - 1)
    idx = idx.reshape(batch + tuple(d.sample_shape))
    return idx.permute(tuple(range(nb_, nb_ + ns)) + tuple(range(nb_)))


def _categorical(d: _Draw) -> torch.Tensor:
    return _categorical_index(d).contiguous().to(d.device)


def _one_hot(d: _Draw) -> torch.Tensor:
    k = d.p["probs"].shape[-1]
    return F.one_hot(_categorical_index(d), k).to(device=d.device, dtype=d.dtype)


def _one_hot_st(d: _Draw) -> torch.Tensor:
    x = _one_hot(d)
    if not d.reparam:
        return x
    probs = d.param("probs")
    # torch's straight-through estimator: the value of the one-hot, the gradient of probs.
    return x + (probs - probs.detach())


def _geometric(d: _Draw) -> torch.Tensor:
    p = _probs64(d)
    positive = p > 0
    # NumPy's geometric counts trials (support 1, 2, ...); torch counts failures (0, 1, ...).
    x = d.rng.geometric(np.where(positive, p, 1.0), d.size()).astype(np.float64) - 1.0
    # probs == 0 never succeeds: torch's own sampler returns inf there.
    x = np.where(positive, x, np.inf)
    return d.tensor(x)


def _negative_binomial(d: _Draw) -> torch.Tensor:
    n, p = d.arg("total_count"), _probs64(d)
    # NumPy counts failures before n successes of probability p; torch counts successes (of
    # probability probs) before total_count failures: NumPy's p is 1 - probs.
    q = 1.0 - p
    ok = (n > 0) & (q > 0)
    x = d.rng.negative_binomial(np.where(ok, n, 1.0), np.where(ok, q, 0.5), d.size())
    x = np.where(ok, x.astype(np.float64), np.where(n > 0, np.inf, 0.0))
    return d.tensor(x)


def _poisson(d: _Draw) -> torch.Tensor:
    return d.tensor(d.rng.poisson(d.arg("rate"), d.size()).astype(d.np_dtype))


def _multinomial(d: _Draw) -> torch.Tensor:
    p = _probs64(d)
    # torch's probs are normalized in the parameter dtype; NumPy rejects sum(p[:-1]) > 1 + 1e-12.
    p = p / p.sum(-1, keepdims=True)
    n = int(d.p["total_count"])
    return d.tensor(d.rng.multinomial(n, p, d.size()).astype(np.float64))


def _relaxed_bernoulli(d: _Draw) -> torch.Tensor:
    t, logits = d.param("temperature"), d.param("logits")
    noise = d.tensor(d.rng.logistic(0.0, 1.0, d.size()))
    x = torch.sigmoid((logits + noise) / t)
    return x.clamp(min=_tiny(x.dtype), max=1 - torch.finfo(x.dtype).eps)


def _relaxed_one_hot(d: _Draw) -> torch.Tensor:
    t, logits = d.param("temperature"), d.param("logits")
    k = logits.shape[-1]
    g = d.tensor(d.rng.gumbel(0.0, 1.0, d.size((k,))))
    # temperature broadcasts against sample + batch + event, as in torch's ExpRelaxedCategorical.
    x = torch.softmax((logits + g) / t, dim=-1)
    return _clamp_probs(x)


# name -> (drawer, parameter that carries the batch shape, its event dims, rsample)
_FAMILY_TABLE: dict[str, tuple[Callable[[_Draw], torch.Tensor], str, int, bool]] = {
    "Normal": (_normal, "loc", 0, True),
    "LogNormal": (_lognormal, "loc", 0, True),
    "HalfNormal": (_halfnormal, "scale", 0, True),
    "Uniform": (_uniform, "low", 0, True),
    "Exponential": (_exponential, "rate", 0, True),
    "Gamma": (_gamma, "concentration", 0, True),
    "Chi2": (_chi2, "df", 0, True),
    "InverseGamma": (_inverse_gamma, "concentration", 0, True),
    "Beta": (_beta, "concentration1", 0, True),
    "Dirichlet": (_dirichlet, "concentration", 1, True),
    "StudentT": (_student_t, "df", 0, True),
    "Cauchy": (_cauchy, "loc", 0, True),
    "HalfCauchy": (_halfcauchy, "scale", 0, True),
    "Laplace": (_laplace, "loc", 0, True),
    "Gumbel": (_gumbel, "loc", 0, True),
    "Weibull": (_weibull, "scale", 0, True),
    "Pareto": (_pareto, "scale", 0, True),
    "Kumaraswamy": (_kumaraswamy, "concentration1", 0, True),
    "GeneralizedPareto": (_generalized_pareto, "loc", 0, True),
    "VonMises": (_vonmises, "loc", 0, False),
    "FisherSnedecor": (_fisher_snedecor, "df1", 0, True),
    "ContinuousBernoulli": (_continuous_bernoulli, "logits", 0, True),
    "LogisticNormal": (_logistic_normal, "loc", 1, True),
    "MultivariateNormal": (_mvn, "loc", 1, True),
    "LowRankMultivariateNormal": (_lowrank_mvn, "loc", 1, True),
    "Wishart": (_wishart, "df", 0, True),
    "Bernoulli": (_bernoulli, "probs", 0, False),
    "Binomial": (_binomial, "total_count", 0, False),
    "Categorical": (_categorical, "probs", 1, False),
    "OneHotCategorical": (_one_hot, "probs", 1, False),
    "OneHotCategoricalStraightThrough": (_one_hot_st, "probs", 1, True),
    "Geometric": (_geometric, "probs", 0, False),
    "NegativeBinomial": (_negative_binomial, "total_count", 0, False),
    "Poisson": (_poisson, "rate", 0, False),
    "Multinomial": (_multinomial, "probs", 1, False),
    "RelaxedBernoulli": (_relaxed_bernoulli, "logits", 0, True),
    "RelaxedOneHotCategorical": (_relaxed_one_hot, "logits", 1, True),
}

#: torch families this backend leaves out, with the reason (also in docs/backends/numpy.md).
OMITTED: dict[str, str] = {
    "LKJCholesky": "NumPy has no LKJ sampler; the onion method is not a short exact transform "
                   "of NumPy draws. Use the torch backend (or a fallback chain).",
}

_NOTES = {
    "Gamma": "implicit reparameterization (float64 CDF difference)",
    "Chi2": "implicit reparameterization (float64 CDF difference)",
    "InverseGamma": "implicit reparameterization (float64 CDF difference)",
    "Beta": "implicit reparameterization (incomplete-beta continued fraction)",
    "Dirichlet": "implicit reparameterization (marginal Beta CDF)",
    "StudentT": "df gradient by implicit reparameterization of its Chi2",
    "FisherSnedecor": "implicit reparameterization of both Chi2 draws",
    "Wishart": "Bartlett decomposition; df gradient by implicit reparameterization",
    "VonMises": "NumPy's vonmises; no rsample",
}


class NumpyBackend(Backend):
    """Draws with ``numpy.random.Generator`` (PCG64); torch differentiates and scores."""

    name = "numpy"

    def version(self) -> str:
        return np.__version__

    def families(self) -> Mapping[str, FamilySupport]:
        return _SUPPORT

    def _draw(self, family: str, params: Mapping[str, Any], sample_shape: torch.Size,
              seed: Seed, reparam: bool) -> torch.Tensor:
        try:
            drawer, batch_param, event_dims, _ = _FAMILY_TABLE[family]
        except KeyError:
            reason = OMITTED.get(family, "it is not a torch.distributions family")
            raise UnsupportedFamilyError(
                f"The numpy backend cannot draw {family!r}: {reason} Supported: "
                f"{', '.join(sorted(_FAMILY_TABLE))}."
            ) from None
        ref = params[batch_param]
        batch = _batch(params, batch_param, event_dims)
        if family == "Wishart":
            batch = params["df"].shape
        ref_float = ref if ref.is_floating_point() else params[_first_float(family, params)]
        d = _Draw(_generator(seed), params, ref_float, sample_shape, batch, reparam)
        try:
            return drawer(d)
        except (ValueError, OverflowError) as exc:
            raise InvalidParameterError(
                f"NumPy could not draw {family} with these parameters: {exc}. Expected "
                f"parameters inside the range NumPy's sampler accepts (e.g. Poisson rate below "
                f"about 1e19, finite values). Received: "
                f"{ {k: _describe(params[k]) for k in params} }. Use the torch backend for "
                "these parameters (backend='torch')."
            ) from exc

    def sample(self, family: str, params: Mapping[str, Any], sample_shape: torch.Size, *,
               seed: Seed = None) -> torch.Tensor:
        with torch.no_grad():
            return self._draw(family, params, sample_shape, seed, reparam=False)

    def rsample(self, family: str, params: Mapping[str, Any], sample_shape: torch.Size, *,
                seed: Seed = None) -> torch.Tensor:
        entry = _FAMILY_TABLE.get(family)
        if entry is not None and not entry[3]:
            raise NotReparameterizableError(
                f"{family} has no reparameterized sampler on the numpy backend. Use sample() "
                "with log_prob() (score-function estimator) or a relaxed family."
            )
        return self._draw(family, params, sample_shape, seed, reparam=True)


def _first_float(family: str, params: Mapping[str, Any]) -> str:
    for name in params:
        v = params[name]
        if isinstance(v, torch.Tensor) and v.is_floating_point():
            return name
    raise InvalidParameterError(f"{family}: no floating-point parameter to take the dtype from.")


def _describe(v: Any) -> str:
    if isinstance(v, torch.Tensor):
        if v.numel() <= 4:
            return repr(v.detach().cpu().tolist())
        return f"tensor(shape={tuple(v.shape)}, min={float(v.min()):g}, max={float(v.max()):g})"
    return repr(v)


_SUPPORT: Mapping[str, FamilySupport] = MappingProxyType({
    name: FamilySupport(sample=True, rsample=rs, log_prob=False, note=_NOTES.get(name, ""))
    for name, (_, _, _, rs) in _FAMILY_TABLE.items()
})


@hookimpl
def polysample_register_backends(register):  # type: ignore[no-untyped-def]
    register("numpy", NumpyBackend)

