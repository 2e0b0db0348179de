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
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..core.backend import Row, Seed, TableBackend
from ..core.errors import InvalidParameterError
from ..core.guards import _all_finite
from ..core.hookspecs import hookimpl
from ..core.implicit import (
    ImplicitBeta,
    ImplicitDirichlet,
    ImplicitGamma,
    ImplicitLogGamma,
    beta_dx_da,
    betainc,
    standard_gamma_dz_dalpha,
)
from ..core.params import Params
from ..core.seeds import GlobalStream, seed_sequence_from
from ..core.torch_fixes import continuous_bernoulli_icdf, continuous_bernoulli_logits
from ._math import (
    LARGE_BINOMIAL_VARIANCE,
    LARGE_COUNT,
    LARGE_RATE,
    expm1_ratio,
    fisher_snedecor_small_df,
    in_range,
    inverse_gamma_small_concentration,
    poisson_normal_limit,
    redraw_outside_support,
    times_exp_in_range,
)

# The implicit-reparameterization numerics live in polysample.core.implicit (the plugin kit);
# they are re-exported here for code that imported them from this module.
__all__ = ["NumpyBackend", "standard_gamma_dz_dalpha", "beta_dx_da", "betainc"]


def _make_generator(ss: np.random.SeedSequence) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(ss))


_GLOBAL: GlobalStream[np.random.Generator] = GlobalStream("numpy", _make_generator)


def _generator(seed: Seed) -> np.random.Generator:
    if seed is None:
        return _GLOBAL.get()
    return _make_generator(seed_sequence_from(seed))


# ============================================================== drawing context
class _Draw:
    """One call: the generator, the target dtype/device, the shapes and the gradient mode."""

    def __init__(self, rng: np.random.Generator, params: Params, sample_shape: torch.Size,
                 reparam: bool):
        self.rng = rng
        self.p = params
        self.dtype = params.float_dtype
        self.device = params.device
        # NumPy's float32 paths exist only for a few methods; every other dtype draws in float64.
        self.np_dtype: type = np.float32 if self.dtype == torch.float32 else np.float64
        self.sample_shape = sample_shape
        self.batch_shape = params.batch_shape
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

    def fill(self, draw: Callable[[tuple[int, ...]], Any],
             event: tuple[int, ...] = ()) -> torch.Tensor:
        """``draw(size)`` (a NumPy method that draws float64 or integers) as a tensor.

        For a float32 result the values are written into it chunk by chunk, so no float64
        (or int64) copy of the whole draw is ever made (it would triple the peak memory). A
        Generator draws element after element, so the values are those of one call.
        """
        size = self.size(event)
        rows = math.prod(self.sample_shape)
        if self.np_dtype is not np.float32 or rows < 2 or math.prod(size) <= 2 * _CHUNK:
            return self.tensor(draw(size))
        tail = size[len(self.sample_shape):]
        step = max(1, _CHUNK // max(1, math.prod(tail)))
        out = np.empty((rows, *tail), dtype=np.float32)
        for i in range(0, rows, step):
            j = min(rows, i + step)
            out[i:j] = draw((j - i, *tail))
        return self.tensor(out.reshape(size))

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
        return ImplicitGamma.apply(concentration, z)

    def log_gamma(self, concentration: torch.Tensor) -> torch.Tensor:
        """``log`` of standard Gamma(concentration) draws, differentiable on rsample."""
        z = self.std_gamma(concentration.detach().to("cpu", torch.float64).numpy())
        if not (self.reparam and concentration.requires_grad):
            return z.log()
        return ImplicitLogGamma.apply(concentration, z)

    def affine(self, eps: torch.Tensor, loc: torch.Tensor | None, scale: torch.Tensor) -> torch.Tensor:
        if self.reparam:
            # One fused kernel (and one saved product fewer) than loc + eps * scale.
            return eps * scale if loc is None else torch.addcmul(loc, eps, scale)
        _inplace(eps, "mul", scale)
        return eps if loc is None else _inplace(eps, "add", loc)


#: Values per chunk of :meth:`_Draw.fill` (512 KiB of float64: cache-sized, and the per-call
#: overhead of about 3 us stays below 1% of the chunk's drawing time).
_CHUNK = 1 << 16

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


def _tiny(dtype: torch.dtype) -> float:
    return torch.finfo(dtype).tiny


def _inside_unit(x: torch.Tensor) -> torch.Tensor:
    """``x`` held strictly inside (0, 1): at least the smallest normal float (a component that
    underflowed), at most ``1 - eps``. Not ``clamp_probs``'s ``[eps, 1 - eps]``: a float32
    component held at eps = 1.2e-7 cut the law's log-ratio tails (at temperature 0.5, none
    of 2^20 draws beyond the 6e-5 quantile, where 64 were expected: the conformance suite's
    tail check); torch's own sampler, in log space, reaches 1e-38."""
    return x.clamp(min=_tiny(x.dtype), max=1 - torch.finfo(x.dtype).eps)


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
    span = high - low
    if not _all_finite(span):
        # high - low overflows the dtype (Uniform(-3e38, 3e38) in float32 drew inf): the
        # halved bounds, doubled (exact scaling: the plain formula's rounding where it is finite)
        return d.affine(d.uniform(), low * 0.5, high * 0.5 - low * 0.5) * 2.0
    return d.affine(d.uniform(), low, span)


def _exponential(d: _Draw) -> torch.Tensor:
    e = d.std_exponential()
    rate = d.param("rate")
    return e / rate if d.reparam else _inplace(e, "div", rate)


def _cauchy(d: _Draw) -> torch.Tensor:
    return d.affine(d.fill(d.rng.standard_cauchy), d.param("loc"), d.param("scale"))


def _halfcauchy(d: _Draw) -> torch.Tensor:
    noise = d.fill(lambda size: np.abs(d.rng.standard_cauchy(size)))
    return d.affine(noise, None, d.param("scale"))


def _laplace(d: _Draw) -> torch.Tensor:
    noise = d.fill(lambda size: d.rng.laplace(0.0, 1.0, size))
    return d.affine(noise, d.param("loc"), d.param("scale"))


def _gumbel(d: _Draw) -> torch.Tensor:
    noise = d.fill(lambda size: d.rng.gumbel(0.0, 1.0, size))
    return d.affine(noise, d.param("loc"), d.param("scale"))


def _weibull(d: _Draw) -> torch.Tensor:
    scale, k = d.param("scale"), d.param("concentration")
    if d.reparam:
        # NumPy's weibull(k) is (-log U)^(1/k) with unit scale; the same from exponential noise
        # keeps k differentiable in torch.
        e = d.std_exponential()
        fi = torch.finfo(e.dtype)
        # kept in [tiny, max] with a zero gradient where it left it (not NaN), see in_range
        return in_range(lambda s, c: s * e.pow(c.reciprocal()), (scale, k), _tiny(e.dtype), fi.max)
    else:
        # NumPy's weibull has one parameter (unit scale): torch's scale multiplies it.
        k64 = d.arg("concentration")
        x = _inplace(d.fill(lambda size: d.rng.weibull(k64, size)), "mul", scale)
    # At small concentrations the draw underflows to 0 (outside the support) or overflows to
    # inf (log_prob NaN): kept in [tiny, max].
    return x.clamp_(min=_tiny(x.dtype), max=torch.finfo(x.dtype).max)


def _pareto(d: _Draw) -> torch.Tensor:
    scale, alpha = d.param("scale"), d.param("alpha")
    if d.reparam:
        e = d.std_exponential()
        # kept below the largest float with a zero gradient where it overflowed (alpha = 0.01,
        # scale 2: 42% of float32 draws), see in_range
        return in_range(lambda s, a: s * (e / a).exp(), (scale, alpha), 0.0,
                        torch.finfo(e.dtype).max)
    # NumPy's pareto is Lomax (Pareto II, support [0, inf)); torch's Pareto is type I with
    # support [scale, inf): scale * (1 + lomax), held at the largest float where it overflowed.
    a64 = d.arg("alpha")
    with np.errstate(over="ignore"):  # an overflow is held below, not a warning to the user
        x = _inplace(d.fill(lambda size: d.rng.pareto(a64, size) + 1.0), "mul", scale)
    return x.clamp_(max=torch.finfo(x.dtype).max)


def _kumaraswamy(d: _Draw) -> torch.Tensor:
    a, b = d.param("concentration1"), d.param("concentration0")
    u = d.uniform()
    # Inverse CDF (1 - (1 - u)^(1/b))^(1/a), with U and 1 - U exchanged (same law).
    # Held there with a zero gradient (in_range): the derivative of the power (1 / a**2)
    # overflows float32 below about 1e-19, and the clamp's zero gradient times it was NaN.
    log_u = u.clamp(min=_tiny(u.dtype)).log()
    return in_range(lambda c1, c0: (-torch.expm1(log_u / c0)).pow(c1.reciprocal()), (a, b),
                    _tiny(u.dtype), 1 - torch.finfo(u.dtype).eps)


def _generalized_pareto(d: _Draw) -> torch.Tensor:
    loc, scale, xi = d.param("loc"), d.param("scale"), d.param("concentration")
    e = d.std_exponential()
    # A large concentration overflows expm1(xi e): held at the largest float, with a zero
    # gradient there (not NaN), as the torch backend does.
    fi = torch.finfo(e.dtype)
    return in_range(lambda lo, s, c: lo + s * expm1_ratio(c, e), (loc, scale, xi), -fi.max, fi.max)


def _continuous_bernoulli(d: _Draw) -> torch.Tensor:
    # torch's law (probabilities clamped as torch clamps them) at NumPy's uniforms, by an
    # inverse CDF whose gradient is right near probs = 1/2 (finding F14).
    u = d.uniform()
    return continuous_bernoulli_icdf(
        u, continuous_bernoulli_logits(torch.sigmoid(d.param("logits"))))


def _vonmises(d: _Draw) -> torch.Tensor:
    loc, conc = d.arg("loc"), d.arg("concentration")
    return d.fill(lambda size: _wrapped(d.rng.vonmises(loc, conc, size)))


def _wrapped(x: np.ndarray) -> np.ndarray:
    """Angles outside ``[-pi, pi]`` brought back into it. NumPy's ``vonmises`` draws
    concentrations above 1e6 from a normal approximation that it wraps only once: with
    ``loc = 20`` every draw was near 13.7 (torch: near 1.15)."""
    out = np.abs(x) > np.pi
    if out.any():
        x[out] = np.remainder(x[out] + np.pi, 2.0 * np.pi) - np.pi
    return x


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
    conc64 = d.arg("concentration")
    if conc64.size and float(conc64.min()) < 0.5:  # rate / G in log space (G underflows)
        conc = d.param("concentration")
        grad = d.reparam and (conc.requires_grad or rate.requires_grad)
        return inverse_gamma_small_concentration(
            conc, rate, torch.Size(d.size()), _log_gamma_f64(d),
            lambda z, a: standard_gamma_dz_dalpha(z, a, log=True), grad)
    if not d.reparam:
        return d.gamma(d.param("concentration")).reciprocal_().mul_(rate)
    return rate * (-d.log_gamma(d.param("concentration"))).exp()


def _student_t(d: _Draw) -> torch.Tensor:
    df = d.param("df")
    if not d.reparam:
        df64 = d.arg("df")
        if df64.size and float(df64.min()) < 1.0:
            # NumPy's standard_t overflows to +-inf there (df = 1e-3: about half the draws);
            # rsample's draw holds them at the float range's ends, as the torch backend does.
            with torch.no_grad():
                return _student_t_small_df(d, df)
        t = d.fill(lambda size: d.rng.standard_t(df64, size))
        return d.affine(t, d.param("loc"), d.param("scale"))
    df64 = d.arg("df")
    if df64.size and float(df64.min()) < 1.0:
        return _student_t_small_df(d, df)
    log_chi2 = d.log_gamma(df * 0.5) + math.log(2.0)
    t = d.std_normal() * (0.5 * (df.log() - log_chi2)).exp()
    return d.affine(t, d.param("loc"), d.param("scale"))


def _student_t_small_df(d: _Draw, df: torch.Tensor) -> torch.Tensor:
    """rsample for ``df`` below 1, as the torch backend draws it: ``sqrt(df / chi2) = sqrt(h /
    G_h)`` with ``log G_h = log G_(h+1) + log(U) / h`` in float64 (the chi2 draw in the
    parameters' dtype sat at the smallest float: float32 draws capped near 1e19, and
    ``df = 1e-30`` gave values near 1e3 with NaN gradients), held inside the float range."""
    t = d.std_normal()
    h = (0.5 * df).to(torch.float64).expand(t.shape)
    a = h.detach().to("cpu").numpy() + 1.0
    z = torch.from_numpy(np.asarray(d.rng.standard_gamma(a))).to(t.device)
    log_u = torch.log1p(-torch.from_numpy(np.asarray(d.rng.random(a.shape)))).to(t.device)
    log_g = ImplicitLogGamma.apply(h + 1.0, z) + log_u / h
    t = times_exp_in_range(t, 0.5 * (h.log() - log_g), t.dtype)
    fi = torch.finfo(t.dtype)
    return in_range(lambda lo, s: lo + s * t, (d.param("loc"), d.param("scale")), -fi.max, fi.max)


def _fisher_snedecor(d: _Draw) -> torch.Tensor:
    a1, a2 = d.arg("df1"), d.arg("df2")
    if a1.size and float(min(a1.min(), a2.min())) < 1.0:
        return _fisher_snedecor_small_df(d)
    if not d.reparam:
        x = d.fill(lambda size: d.rng.f(a1, a2, size))
        # NumPy's f is inf when its denominator underflows (df2 near 0): kept finite.
        return x.clamp_(min=_tiny(x.dtype), max=torch.finfo(x.dtype).max)
    df1, df2 = d.param("df1"), d.param("df2")
    log_x = d.log_gamma(df1 * 0.5) - d.log_gamma(df2 * 0.5) + df2.log() - df1.log()
    # Kept inside the support (> 0) as the Gamma draws are; clamped in log space, where the
    # saved exp() output is not modified.
    fi = torch.finfo(log_x.dtype)
    return log_x.clamp(min=math.log(fi.tiny), max=math.log(fi.max)).exp()


def _fisher_snedecor_small_df(d: _Draw) -> torch.Tensor:
    """Degrees of freedom below 1: :func:`._math.fisher_snedecor_small_df`. NumPy's ``f``
    divides two Gamma draws that both underflow to 0 there (NaN for 0.06% of the draws of
    ``FisherSnedecor(0.01, 0.01)``, 48% at 0.001), and the ratio of two clamped ones was exactly
    1 (49% at 0.001)."""
    df1, df2 = d.param("df1"), d.param("df2")
    grad = d.reparam and (df1.requires_grad or df2.requires_grad)
    return fisher_snedecor_small_df(df1, df2, torch.Size(d.size()), _log_gamma_f64(d), grad)


def _log_gamma_f64(d: _Draw) -> Callable[[torch.Tensor, torch.Size],
                                         tuple[torch.Tensor, Callable[[], torch.Tensor]]]:
    """The ``log_gamma`` of :func:`._math.fisher_snedecor_small_df` drawn by ``d``'s NumPy
    generator: float64 ``log G_h = log G_(h+1) + log(U) / h`` and its derivative in ``h``."""
    def log_gamma(h: torch.Tensor, shape: torch.Size
                  ) -> tuple[torch.Tensor, Callable[[], torch.Tensor]]:
        a = h.detach().to("cpu").numpy() + 1.0
        z = torch.from_numpy(d.rng.standard_gamma(a, tuple(shape))).clamp_(min=_tiny(torch.float64))
        log_u = torch.log1p(-torch.from_numpy(d.rng.random(tuple(shape))))
        z, log_u = z.to(d.device), log_u.to(d.device)
        return z.log() + log_u / h, lambda: (
            standard_gamma_dz_dalpha(z, h + 1.0, log=True) - log_u / h**2)
    return log_gamma


def _beta_numpy(d: _Draw, a: np.ndarray, b: np.ndarray) -> tuple[torch.Tensor, np.ndarray | None]:
    # Keep the value strictly inside (0, 1) at the output precision, as torch's sampler does
    # (float32 rounds values within 3e-8 of 1 up to 1). Cast and clip by NumPy in one buffer.
    if not d.reparam and d.np_dtype is np.float32 and d.dtype == torch.float32:
        x = d.fill(lambda size: d.rng.beta(a, b, size))  # no float64 copy of the draw
        fi = np.finfo(np.float32)
        np.clip(x.numpy(), fi.tiny, np.float32(1 - fi.eps / 2), out=x.numpy())
        return x, None
    x64 = d.rng.beta(a, b, d.size())
    if d.np_dtype is np.float32 and d.dtype == torch.float32:
        x32 = x64.astype(np.float32)
        fi = np.finfo(np.float32)
        np.clip(x32, fi.tiny, np.float32(1 - fi.eps / 2), out=x32)
        return d.tensor(x32), x64
    x = d.tensor(x64)
    return x.clamp_(min=_tiny(x.dtype), max=1 - torch.finfo(x.dtype).eps / 2), x64


def _beta(d: _Draw) -> torch.Tensor:
    a, b = d.param("concentration1"), d.param("concentration0")
    x, _ = _beta_numpy(d, d.arg("concentration1"), d.arg("concentration0"))
    if not (d.reparam and (a.requires_grad or b.requires_grad)):
        return x
    shape = x.shape
    # The gradient at the value returned (float32, clamped inside (0, 1)), not at NumPy's
    # float64 draw: near 1 the two differ in 1 - x by up to a float32 step, and a draw
    # clamped to 1 - 2^-24 has the gradient of the clamp point (beta_dx_da works in float64).
    return ImplicitBeta.apply(a.expand(shape), b.expand(shape), x, x.detach())


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


def _dirichlet(d: _Draw) -> torch.Tensor:
    conc = d.param("concentration")
    x64 = _dirichlet_numpy(d, d.arg("concentration"))
    x = d.tensor(x64).clamp_(min=_tiny(d.dtype))
    if not (d.reparam and conc.requires_grad):
        return x
    # The gradient at the value returned (clamped, in its dtype), not at NumPy's float64 draw.
    return ImplicitDirichlet.apply(conc.expand(x.shape), x, x.detach().double())


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
    offsets = torch.arange(p, dtype=df.dtype, device=df.device)

    def bartlett() -> torch.Tensor:
        # A lower triangular, A_ii^2 ~ Chi2(df - i), A_ij ~ N(0, 1) (i > j); W = (L A)(L A)^T.
        chi2 = d.gamma((df.unsqueeze(-1) - offsets) * 0.5, (p,)) * 2
        diag = chi2.sqrt()
        normals = d.std_normal((p, p)).tril(-1)
        a = normals + torch.diag_embed(diag)
        chol = torch.matmul(tril, a)
        return torch.matmul(chol, chol.transpose(-1, -2))

    # With df just above p - 1 the last Chi2 factor is tiny and the rounded product can fail
    # the positive-definite check of the support; such draws are redrawn, as on torch.
    from torch.distributions import constraints

    inside = constraints.positive_definite.check
    return redraw_outside_support(bartlett, lambda w: inside(w.detach()), "Wishart")


# ---------------------------------------------------------------- discrete (sample only)
def _probs64(d: _Draw) -> np.ndarray:
    return d.arg("probs")


def _bernoulli(d: _Draw) -> torch.Tensor:
    u = d.rng.random(d.size(), dtype=d.np_dtype)
    probs = d.p["probs"].detach().to("cpu", torch.float32 if d.np_dtype is np.float32
                                      else torch.float64).numpy()
    # u in [0, 1): probs 0 never fires, probs 1 always does. The comparison writes the 0/1
    # values over u (one pass, no bool intermediate, no second array).
    return d.tensor(np.less(u, probs, out=u))


def _binomial(d: _Draw) -> torch.Tensor:
    n64, p = d.arg("total_count"), np.clip(_probs64(d), 0.0, 1.0)
    size = d.size()
    if n64.size == 0 or not float(np.max(n64)) > LARGE_COUNT:
        n = np.rint(n64).astype(np.int64)
        return d.fill(lambda chunk: d.rng.binomial(n, p, chunk))
    # Large counts: the limit laws of _math.LARGE_COUNT, on the smaller of p and 1 - p.
    n_b, p_b = np.broadcast_to(n64, size), np.broadcast_to(p, size)
    small = d.rng.binomial(np.rint(np.minimum(n_b, LARGE_COUNT)).astype(np.int64), p_b, size)
    q = np.minimum(p_b, 1.0 - p_b)
    mean = n_b * q
    var = mean * (1.0 - q)
    normal = np.rint(mean + np.sqrt(var) * d.rng.standard_normal(size))
    # ``size`` given: a 0-d draw is then an array, not a Python int (a scalar Binomial of a
    # count above LARGE_COUNT raised AttributeError)
    poisson = d.rng.poisson(np.minimum(mean, LARGE_RATE), size).astype(np.float64)
    y = np.minimum(np.maximum(np.where(var >= LARGE_BINOMIAL_VARIANCE, normal, poisson), 0.0),
                   n_b)
    y = np.where(p_b > 0.5, n_b - y, y)
    return d.tensor(np.where(n_b > LARGE_COUNT, y, small))


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
    if c.numel() == 0 or math.prod(d.sample_shape) == 0:
        return torch.zeros(d.size(), dtype=torch.int64)  # nothing to draw (a 0-size batch)
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
    if p.size and float(p.min()) < 1e-9:
        # NumPy returns int64, saturating at 9.2e18 (Geometric(1e-300) draws about 1e300):
        # small probabilities by inversion in float64, floor(log(U) / log(1 - p)).
        u = 1.0 - d.rng.random(d.size())  # in (0, 1]
        x = np.floor(np.log(u) / np.log1p(-np.where(positive, p, 0.5)))
    else:
        x = d.rng.geometric(np.where(positive, p, 1.0), d.size()).astype(np.float64) - 1.0
    # probs == 0 never succeeds: torch's own sampler returns inf there.
    x = np.where(positive, x, np.inf)
    return d.tensor(x)


def _negative_binomial(d: _Draw) -> torch.Tensor:
    n, logits = d.arg("total_count"), d.arg("logits")
    # torch counts successes (of probability probs) before total_count failures: a Poisson of
    # rate Gamma(total_count) * probs / (1 - probs), NumPy's own negative_binomial(n, 1 - probs)
    # written out so that a large rate is drawn by _poisson_np (NumPy refuses n too large or p
    # too small there). exp(logits) is probs / (1 - probs) without cancellation near 1: the
    # logits decide, not probs, which round to 1 from logits of 17 in float32 (37 in float64)
    # and drew inf there.
    ok = (n > 0) & (logits < np.inf)
    size = d.size()
    lam = d.rng.standard_gamma(np.where(ok, n, 1.0), size) * np.exp(
        np.where(ok, logits, 0.0))
    x = _poisson_np(d.rng, lam, size).astype(np.float64)
    x = np.where(ok, x, np.where(n > 0, np.inf, 0.0))
    return d.tensor(x)


def _poisson_np(rng: np.random.Generator, lam: np.ndarray, size: tuple[int, ...]) -> np.ndarray:
    """``rng.poisson(lam, size)``, with rates above ``LARGE_RATE`` (1e12) drawn by the normal
    limit with its skewness term (NumPy's variance is off from about 1e15 and it refuses rates
    above 9.2e18; see ``backends/_math.py``)."""
    if lam.size == 0 or not float(np.max(lam)) > LARGE_RATE:
        return rng.poisson(lam, size)
    lam_b = np.broadcast_to(lam, size)
    x = rng.poisson(np.minimum(lam_b, LARGE_RATE), size).astype(np.float64)
    normal = poisson_normal_limit(lam_b, rng.standard_normal(size))
    return np.where(lam_b > LARGE_RATE, normal, x)


def _poisson(d: _Draw) -> torch.Tensor:
    rate = d.arg("rate")
    return d.fill(lambda size: _poisson_np(d.rng, rate, size))


def _multinomial(d: _Draw) -> torch.Tensor:
    p = _probs64(d)
    # torch's probs are normalized in the parameter dtype; NumPy rejects sum(p[:-1]) > 1 + 1e-12.
    p = p / p.sum(-1, keepdims=True)
    n = int(d.p["total_count"])
    return d.tensor(d.rng.multinomial(n, p, d.size()).astype(np.float64))


def _relaxed_bernoulli(d: _Draw) -> torch.Tensor:
    t, logits = d.param("temperature"), d.param("logits")
    noise = d.fill(lambda size: d.rng.logistic(0.0, 1.0, size))
    return _inside_unit(torch.sigmoid((logits + noise) / t))


def _relaxed_one_hot(d: _Draw) -> torch.Tensor:
    t, logits = d.param("temperature"), d.param("logits")
    k = logits.shape[-1]
    g = d.tensor(d.rng.gumbel(0.0, 1.0, d.size((k,))))
    # temperature broadcasts against sample + batch + event, as in torch's ExpRelaxedCategorical.
    x = torch.softmax((logits + g) / t, dim=-1)
    return _inside_unit(x)


# name -> (drawer, rsample offered)
_FAMILY_TABLE: dict[str, tuple[Callable[[_Draw], torch.Tensor], bool]] = {
    "Normal": (_normal, True),
    "LogNormal": (_lognormal, True),
    "HalfNormal": (_halfnormal, True),
    "Uniform": (_uniform, True),
    "Exponential": (_exponential, True),
    "Gamma": (_gamma, True),
    "Chi2": (_chi2, True),
    "InverseGamma": (_inverse_gamma, True),
    "Beta": (_beta, True),
    "Dirichlet": (_dirichlet, True),
    "StudentT": (_student_t, True),
    "Cauchy": (_cauchy, True),
    "HalfCauchy": (_halfcauchy, True),
    "Laplace": (_laplace, True),
    "Gumbel": (_gumbel, True),
    "Weibull": (_weibull, True),
    "Pareto": (_pareto, True),
    "Kumaraswamy": (_kumaraswamy, True),
    "GeneralizedPareto": (_generalized_pareto, True),
    "VonMises": (_vonmises, False),
    "FisherSnedecor": (_fisher_snedecor, True),
    "ContinuousBernoulli": (_continuous_bernoulli, True),
    "LogisticNormal": (_logistic_normal, True),
    "MultivariateNormal": (_mvn, True),
    "LowRankMultivariateNormal": (_lowrank_mvn, True),
    "Wishart": (_wishart, True),
    "Bernoulli": (_bernoulli, False),
    "Binomial": (_binomial, False),
    "Categorical": (_categorical, False),
    "OneHotCategorical": (_one_hot, False),
    "OneHotCategoricalStraightThrough": (_one_hot_st, True),
    "Geometric": (_geometric, False),
    "NegativeBinomial": (_negative_binomial, False),
    "Poisson": (_poisson, False),
    "Multinomial": (_multinomial, False),
    "RelaxedBernoulli": (_relaxed_bernoulli, True),
    "RelaxedOneHotCategorical": (_relaxed_one_hot, True),
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


def _row(drawer: Callable[[_Draw], torch.Tensor], family: str) -> Callable[..., torch.Tensor]:
    def draw(params: Params, sample_shape: torch.Size, rng: np.random.Generator,
             reparam: bool) -> torch.Tensor:
        try:
            return drawer(_Draw(rng, params, sample_shape, reparam))
        except (ValueError, OverflowError) as exc:
            raise InvalidParameterError(
                f"NumPy could not draw {family} with these parameters: {exc}. Expected "
                f"parameters inside the range NumPy's sampler accepts (e.g. Poisson rate below "
                f"about 1e19, finite values). Received: "
                f"{ {k: _describe(params[k]) for k in params} }. Use the torch backend for "
                "these parameters (backend='torch')."
            ) from exc
    return draw


class NumpyBackend(TableBackend):
    """Draws with ``numpy.random.Generator`` (PCG64); torch differentiates and scores."""

    name = "numpy"
    options: Mapping[str, str] | None = {}  # no [tool.polysample.<name>] options
    table = {name: Row(draw=_row(drawer, name), rsample=rs, note=_NOTES.get(name, ""))
             for name, (drawer, rs) in _FAMILY_TABLE.items()}
    omitted = OMITTED

    def version(self) -> str:
        return np.__version__

    def rng(self, seed: Seed, params: Params) -> np.random.Generator:
        return _generator(seed)


def _describe(v: Any) -> str:
    if isinstance(v, torch.Tensor):
        if v.numel() <= 4:
            return repr(v.detach().cpu().tolist())
        return f"tensor(shape={tuple(v.shape)}, min={float(v.min()):g}, max={float(v.max()):g})"
    return repr(v)


@hookimpl
def polysample_register_backends(register):  # type: ignore[no-untyped-def]
    register("numpy", NumpyBackend)

