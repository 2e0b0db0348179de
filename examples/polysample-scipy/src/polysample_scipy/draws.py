"""Drawing: each family's SciPy law (``sample``) and its reparameterized draw (``rsample``).

* :data:`LAWS` is the one place where torch's parameterization of a family is translated into
  SciPy's (``gamma(a, scale=1/rate)``, ``nbinom(n, 1 - p)``, ``geom(p, loc=-1)``, ...): ``sample``
  draws from it with ``.rvs(..., random_state=rng)`` and :mod:`polysample_scipy.scores` scores
  with its ``.logpdf``/``.logpmf``, so a convention is written once and the conformance suite
  checks it twice.
* :data:`RSAMPLE` keeps the randomness in SciPy and the differentiable part in torch: noise from a
  parameter-free SciPy law, transformed in torch (``loc + scale * eps``, inverse CDFs), or a
  SciPy draw given implicit gradients by the plugin kit's ``Implicit*`` Functions (Gamma, Beta,
  Dirichlet and the families built on them).

Draws are made in float64 (SciPy's precision) and converted to the parameters' dtype and device.
SciPy is imported on the first draw, not when polysample lists the backend.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch.distributions import constraints

from polysample.plugin import (
    ImplicitBeta,
    ImplicitDirichlet,
    ImplicitGamma,
    InvalidParameterError,
    NotReparameterizableError,
    Params,
    standard_gamma_dz_dalpha,
)

__all__ = ["LAWS", "PER_POINT", "RSAMPLE", "SMALL_SHAPE", "WISHART_MAX_REDRAWS", "Args", "stats",
           "sample", "rsample"]


# --8<-- [start:lazy]
class _LazyStats:
    """``scipy.stats``, imported on first use: registering and listing the backend stay light."""

    def __getattr__(self, name: str) -> Any:
        import scipy.stats

        return getattr(scipy.stats, name)


stats: Any = _LazyStats()
# --8<-- [end:lazy]


def _failure(a: Any) -> Any:
    """``1 - probs`` of a NegativeBinomial, from its logits (``expit(-logits)``): exact where
    ``probs`` rounds to 1."""
    from scipy import special

    return special.expit(-a["logits"])


class Args:
    """A family's parameters as float64 NumPy arrays (SciPy's precision), read when asked for.

    ``Args(params)["loc"]``; Python ints (``Multinomial.total_count``) stay ints. ``point(j)``
    gives the parameters of batch element ``j`` (flat index), for the SciPy laws that take one
    parameter point at a time (``dirichlet``, ``multivariate_normal``, ``wishart``).
    """

    def __init__(self, params: Params, index: int | None = None):
        self.params = params
        self.index = index

    def __getitem__(self, name: str) -> Any:
        value = self.params[name]
        if not isinstance(value, torch.Tensor):
            return value
        arr = value.detach().to("cpu", torch.float64).numpy()
        if self.index is None:
            return arr
        nb = len(self.params.batch_shape)
        return arr.reshape((-1,) + arr.shape[nb:])[self.index]

    def point(self, j: int) -> Args:
        return Args(self.params, j)


# --8<-- [start:laws]
#: torch family -> its SciPy law, from float64 parameters in torch's names. A SciPy frozen
#: distribution (a PointLaw for the multivariate ones): ``.rvs`` draws (sample),
#: ``.logpdf``/``.logpmf`` scores (log_prob).
LAWS: dict[str, Callable[[Args], Any]] = {
    # continuous, location-scale
    "Normal": lambda a: stats.norm(a["loc"], a["scale"]),
    "Cauchy": lambda a: stats.cauchy(a["loc"], a["scale"]),
    "Laplace": lambda a: stats.laplace(a["loc"], a["scale"]),
    "Gumbel": lambda a: stats.gumbel_r(a["loc"], a["scale"]),
    "HalfNormal": lambda a: stats.halfnorm(scale=a["scale"]),
    "HalfCauchy": lambda a: stats.halfcauchy(scale=a["scale"]),
    "Uniform": lambda a: stats.uniform(a["low"], a["high"] - a["low"]),   # loc, scale = width
    "Exponential": lambda a: stats.expon(scale=1 / a["rate"]),            # SciPy takes a scale
    "LogNormal": lambda a: stats.lognorm(a["scale"], scale=np.exp(a["loc"])),
    "Weibull": lambda a: stats.weibull_min(a["concentration"], scale=a["scale"]),
    "Pareto": lambda a: stats.pareto(a["alpha"], scale=a["scale"]),       # type I, as torch's
    "GeneralizedPareto": lambda a: stats.genpareto(a["concentration"], a["loc"], a["scale"]),
    # continuous, Gamma-based and on intervals
    "Gamma": lambda a: stats.gamma(a["concentration"], scale=1 / a["rate"]),
    "Chi2": lambda a: stats.chi2(a["df"]),
    "InverseGamma": lambda a: stats.invgamma(a["concentration"], scale=a["rate"]),
    "StudentT": lambda a: stats.t(a["df"], a["loc"], a["scale"]),
    "FisherSnedecor": lambda a: stats.f(a["df1"], a["df2"]),
    "Beta": lambda a: stats.beta(a["concentration1"], a["concentration0"]),
    "VonMises": lambda a: stats.vonmises(a["concentration"], loc=a["loc"]),
    # discrete
    "Bernoulli": lambda a: stats.bernoulli(a["probs"]),
    "Binomial": lambda a: stats.binom(np.rint(a["total_count"]).astype(np.int64), a["probs"]),
    # SciPy's geom counts trials (1, 2, ...), torch's Geometric failures (0, 1, ...).
    "Geometric": lambda a: stats.geom(a["probs"], loc=-1),
    # torch counts successes (probability probs) before total_count failures: SciPy's nbinom
    # counts failures before n successes, so its success probability is 1 - probs, computed
    # from the logits (1 - probs of float32 probs near 1 lost its digits: the law was 15% off
    # at logits 15, and 0 from logits 17 on).
    "NegativeBinomial": lambda a: stats.nbinom(a["total_count"], _failure(a)),
    "Poisson": lambda a: stats.poisson(a["rate"]),
    # categorical families: one-hot draws of multinomial(1, probs) (Categorical's index is drawn
    # by inversion instead, see _categorical_index: a one-hot array would cost draws x categories)
    "Categorical": lambda a: stats.multinomial(1, _normalized(a["probs"])),
    "OneHotCategorical": lambda a: stats.multinomial(1, _normalized(a["probs"])),
    "OneHotCategoricalStraightThrough": lambda a: stats.multinomial(1, _normalized(a["probs"])),
    "Multinomial": lambda a: stats.multinomial(a["total_count"], _normalized(a["probs"])),
    # multivariate: SciPy takes one parameter point at a time (see PER_POINT and PointLaw)
    "Dirichlet": lambda a: PointLaw(stats.dirichlet, a["concentration"]),
    "MultivariateNormal": lambda a: PointLaw(
        stats.multivariate_normal, a["loc"], stats.Covariance.from_cholesky(a["scale_tril"])),
    "LowRankMultivariateNormal": lambda a: PointLaw(
        stats.multivariate_normal, a["loc"],
        a["cov_factor"] @ a["cov_factor"].T + np.diag(a["cov_diag"])),
    "Wishart": lambda a: PointLaw(stats.wishart, a["df"], a["scale_tril"] @ a["scale_tril"].T),
}
# --8<-- [end:laws]


class PointLaw:
    """A multivariate SciPy law at one parameter point, called through its generator
    (``stats.dirichlet.rvs(alpha, size=..., random_state=...)``): the same values and densities
    as SciPy's frozen law (``stats.dirichlet(alpha)``), whose construction formats a docstring
    (about 80 us, SciPy 1.15). Drawn batch element by batch element, a sweep's 87,000 elements
    spent two thirds of their time there."""

    def __init__(self, gen: Any, *args: Any):
        self.gen, self.args = gen, args

    def rvs(self, size: Any = None, random_state: Any = None) -> Any:
        return self.gen.rvs(*self.args, size=size, random_state=random_state)

    def logpdf(self, x: Any) -> Any:
        return self.gen.logpdf(x, *self.args)

#: Laws SciPy defines for one parameter point: drawn and scored batch element by batch element.
PER_POINT = frozenset({"Dirichlet", "MultivariateNormal", "LowRankMultivariateNormal", "Wishart"})


def _normalized(probs: np.ndarray) -> np.ndarray:
    # torch normalizes probs in the parameters' dtype; SciPy wants them to sum to 1 in float64.
    return probs / probs.sum(-1, keepdims=True)


# ============================================================== sample
def _rvs(family: str, p: Params, sample_shape: torch.Size, rng: np.random.Generator) -> np.ndarray:
    """A float64 draw of shape ``sample_shape + batch_shape + event`` (``event``: the one-hot
    dimension for Categorical, else the event shape)."""
    args = Args(p)
    size = tuple(sample_shape + p.batch_shape)
    event = (p["probs"].shape[-1],) if family == "Categorical" else tuple(p.event_shape)
    if family not in PER_POINT:
        # SciPy broadcasts the parameters (batch_shape) against size and appends multinomial's
        # event dimension itself. The reshape undoes its squeezing (size=() gives shape (1,)).
        x = LAWS[family](args).rvs(size=size, random_state=rng)
        return np.asarray(x).reshape(size + event)
    # One law per batch element, n draws each (an int size: SciPy 1.15's wishart fails on ()).
    n = math.prod(sample_shape)
    draws = [np.asarray(LAWS[family](args.point(j)).rvs(size=n, random_state=rng))
             .reshape((n,) + event) for j in range(math.prod(p.batch_shape))]
    x = np.stack(draws, axis=1) if draws else np.empty((n, 0) + event)
    return x.reshape(size + event)


def _tiny(dtype: torch.dtype) -> float:
    return torch.finfo(dtype).tiny


#: Values kept inside the support after the cast to the parameters' dtype, as torch does: a
#: Gamma(0.01) draw can underflow to 0, a Beta draw round to 1 in float32.
_CLAMP: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "Gamma": lambda x: x.clamp_(min=_tiny(x.dtype)),
    "Chi2": lambda x: x.clamp_(min=_tiny(x.dtype)),
    "FisherSnedecor": lambda x: x.clamp_(min=_tiny(x.dtype)),
    "Dirichlet": lambda x: x.clamp_(min=_tiny(x.dtype)),
    "Beta": lambda x: x.clamp_(min=_tiny(x.dtype), max=1 - torch.finfo(x.dtype).eps / 2),
    # past the float range at small shapes (Pareto(2, 0.01): 42% of float32 draws): held there
    "Pareto": lambda x: x.clamp_(max=torch.finfo(x.dtype).max),
    # SciPy's invgamma overflows to inf at small concentrations (1e-30: every draw)
    "InverseGamma": lambda x: x.clamp_(max=torch.finfo(x.dtype).max),
    "Weibull": lambda x: x.clamp_(min=_tiny(x.dtype), max=torch.finfo(x.dtype).max),
    # SciPy's t overflows to +-inf at small df (df = 1e-3: about half the draws)
    "StudentT": lambda x: x.clamp_(min=-torch.finfo(x.dtype).max, max=torch.finfo(x.dtype).max),
}


#: SciPy's ``binom`` draws int64 counts: ``total_count`` must fit in one.
_INT64_MAX = float(np.iinfo(np.int64).max)


def _check_binomial_count(p: Params) -> None:
    """Refuses a ``total_count`` past int64 (SciPy's counts), where its cast to int64 would
    turn it negative and SciPy would answer "the scale parameter must be positive"."""
    largest = float(Args(p)["total_count"].max(initial=0.0))
    if largest >= _INT64_MAX:
        raise InvalidParameterError(
            f"Expected Binomial total_count below 2^63 (9.2e18) on the scipy backend: SciPy "
            f"draws binomial counts as 64-bit integers. Received total_count = {largest:g}. "
            "Use backend='torch' or backend='numpy' for larger counts.")


def _geometric(p: Params, sample_shape: torch.Size, rng: np.random.Generator) -> np.ndarray:
    """Failures before the first success by inversion, ``floor(log(u) / log1p(-p))`` with
    ``u`` uniform in ``(0, 1]``, in float64: SciPy's ``geom.rvs`` returns int64 counts, which
    saturate at 9.2e18 (``probs = 1e-30``: every draw, where the median is 6.9e29)."""
    probs = np.broadcast_to(Args(p)["probs"], tuple(p.batch_shape))
    size = tuple(sample_shape) + tuple(p.batch_shape)
    u = 1.0 - np.asarray(stats.uniform.rvs(size=size, random_state=rng)).reshape(size)
    with np.errstate(divide="ignore"):
        x = np.floor(np.log(u) / np.log1p(-probs))
    return np.where(probs >= 1.0, 0.0, x)


def _categorical_index(p: Params, sample_shape: torch.Size, rng: np.random.Generator
                       ) -> np.ndarray:
    """Category indices by inversion: SciPy's uniform draws searched in each batch row's
    cumulative probabilities. ``multinomial(1, probs).rvs`` would build a one-hot array of
    draws x categories (195 GiB for 262,144 draws of 1e5 categories); this needs memory for
    the draws and one cumulative sum per row. A category of probability 0 has an empty interval
    and is never drawn."""
    probs = _normalized(Args(p)["probs"])
    k = probs.shape[-1]
    cdf = np.cumsum(probs.reshape(-1, k), axis=-1)  # (rows, K)
    n = math.prod(sample_shape)
    u = np.asarray(stats.uniform.rvs(size=(n, cdf.shape[0]), random_state=rng))
    idx = np.empty(u.shape, dtype=np.int64)
    for j in range(cdf.shape[0]):
        v = u[:, j] * cdf[j, -1]
        idx[:, j] = np.minimum(np.searchsorted(cdf[j], v, side="right"), k - 1)
    return idx.reshape(tuple(sample_shape + p.batch_shape))


def _negative_binomial(p: Params, sample_shape: torch.Size, rng: np.random.Generator
                       ) -> np.ndarray:
    """SciPy's ``nbinom`` refuses ``n = 0`` ("the scale parameter must be positive"), which
    torch accepts (``total_count >= 0``): a point mass at 0, drawn as zeros as the other backends
    do. Those entries are drawn with ``n = 1`` and zeroed; a negative count (``validate_args=
    False``) still reaches SciPy, which refuses it."""
    args = Args(p)
    n = np.broadcast_to(args["total_count"], tuple(p.batch_shape))
    size = tuple(sample_shape + p.batch_shape)
    x = stats.nbinom(np.where(n == 0, 1.0, n), _failure(args)).rvs(size=size, random_state=rng)
    return np.where(n == 0, 0.0, np.asarray(x).reshape(size))


#: Poisson rates above this are drawn by the normal limit with its skewness term (see
#: :func:`_poisson`).
LARGE_RATE = 1e12


def _poisson(p: Params, sample_shape: torch.Size, rng: np.random.Generator) -> np.ndarray:
    """SciPy's ``poisson.rvs`` (NumPy's sampler) loses accuracy at large rates (the variance
    1.035 times the law's at 1e15, 0.87 at 3e15, 1.6 from 1e16 on; the conformance suite's
    edges grid catches it) and refuses rates above 9.2e18. Above :data:`LARGE_RATE` the draws are
    ``round(rate + sqrt(rate) z + (z^2 - 1) / 6)`` (Cornish-Fisher, whose CDF is within
    O(1 / rate) of the Poisson's), as the built-in backends draw them."""
    args = Args(p)
    size = tuple(sample_shape + p.batch_shape)
    rate = np.broadcast_to(args["rate"], size)
    large = rate > LARGE_RATE
    x = np.asarray(stats.poisson(np.where(large, 1.0, rate)).rvs(size=size, random_state=rng),
                   dtype=np.float64).reshape(size)
    if not large.any():
        return x
    z = rng.standard_normal(size)
    normal = np.maximum(np.rint(rate + np.sqrt(rate) * z + (z * z - 1.0) / 6.0), 0.0)
    return np.where(large, normal, x)


def _wishart_sample(p: Params, sample_shape: torch.Size, rng: np.random.Generator
                    ) -> torch.Tensor:
    """``L W L^T`` with ``W`` SciPy's Wishart(df, I) draw, in float64. SciPy's law takes the
    scale matrix ``L L^T``, which underflows where torch accepts ``scale_tril`` (float64
    ``1e-200 I``: SciPy refused it as not positive definite); the same law, through ``L``."""
    args, k = Args(p), p.event_shape[-1]
    n = math.prod(sample_shape)
    ws = [np.asarray(stats.wishart(args.point(j)["df"], np.eye(k)).rvs(size=n, random_state=rng))
          .reshape((n, k, k)) for j in range(math.prod(p.batch_shape))]
    w = np.stack(ws, axis=1) if ws else np.empty((n, 0, k, k))
    w_t = torch.as_tensor(w.reshape(tuple(sample_shape + p.batch_shape) + (k, k)),
                          device=p.device)
    tril = p["scale_tril"].detach().double()
    return tril @ w_t @ tril.transpose(-1, -2)


def _needs_log_space(family: str, p: Params) -> bool:
    """Whether a Gamma shape of ``family``'s ratio (:data:`_RATIO_SHAPES`) is below
    :data:`SMALL_SHAPE`, where SciPy's sampler divides by Gamma draws that underflow."""
    return any(bool((p[name].detach() * factor < SMALL_SHAPE).any())
               for name, factor in _RATIO_SHAPES.get(family, ()))


def sample(family: str, p: Params, sample_shape: torch.Size, rng: np.random.Generator
           ) -> torch.Tensor:
    """``sample()``: SciPy's ``rvs`` of the family's law, in torch's conventions, as a tensor of
    the result's dtype and device, inside the support."""
    if family == "Wishart":
        # singular draws redrawn, as on torch (_redraw_singular)
        return _redraw_singular(lambda: _sample(family, p, sample_shape, rng))
    return _sample(family, p, sample_shape, rng)


def _sample(family: str, p: Params, sample_shape: torch.Size, rng: np.random.Generator
            ) -> torch.Tensor:
    if family == "LowRankMultivariateNormal" or _needs_log_space(family, p):
        # SciPy's laws fail there: multivariate_normal factors W W^T + diag(d), singular in
        # float64 for cov_diag = 1e-30 (refused as not positive definite, where torch draws);
        # f, t and invgamma divide by Gamma draws that underflow at small shapes
        # (FisherSnedecor(1e-3, 1e-3): 47% NaN, 0/0; all NaN at 1e-10). rsample's draws are
        # exact there (torch transforms of SciPy noise, Gammas in log space): taken without
        # gradients.
        with torch.no_grad():
            return RSAMPLE[family](p, sample_shape, rng)
    if family == "Categorical":
        return torch.as_tensor(_categorical_index(p, sample_shape, rng)).to(
            device=p.device, dtype=p.dtype)
    if family == "Wishart":
        return _wishart_sample(p, sample_shape, rng).to(dtype=p.dtype)
    if family == "Binomial":
        _check_binomial_count(p)
    if family == "Geometric":
        x = _geometric(p, sample_shape, rng)
    elif family == "NegativeBinomial":
        x = _negative_binomial(p, sample_shape, rng)
    elif family == "Poisson":
        x = _poisson(p, sample_shape, rng)
    else:
        with np.errstate(over="ignore", divide="ignore"):  # overflows are held below
            x = _rvs(family, p, sample_shape, rng)
    if family == "VonMises":
        # SciPy's vonmises.rvs lies in [loc - pi, loc + pi]; torch's VonMises in [-pi, pi).
        x = np.mod(x + np.pi, 2 * np.pi) - np.pi
    t = torch.as_tensor(x).to(device=p.device, dtype=p.dtype)
    clamp = _CLAMP.get(family)
    return clamp(t) if clamp is not None else t


# ============================================================== rsample
def noise(name: str, p: Params, sample_shape: torch.Size, rng: np.random.Generator,
          event: tuple[int, ...] = ()) -> torch.Tensor:
    """Draws of SciPy's standard law ``stats.<name>`` (no parameters), of shape ``sample_shape
    + batch_shape + event``, as a tensor of the parameters' dtype and device."""
    size = tuple(sample_shape) + tuple(p.batch_shape) + event
    x = np.asarray(getattr(stats, name).rvs(size=size, random_state=rng)).reshape(size)
    return torch.as_tensor(x, dtype=p.float_dtype, device=p.device)


def _standard_gamma(p: Params, name: str, scale: float, sample_shape: torch.Size,
                    rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``(α, z)``: ``α = scale * p[name]`` and a standard Gamma(α) draw ``z`` from SciPy,
    kept above 0 (a Gamma(0.01) draw underflows with probability about 1e-3)."""
    alpha = p[name] * scale
    return alpha, _gamma_noise(alpha, p, tuple(sample_shape + p.batch_shape), rng)


def _gamma_noise(alpha: torch.Tensor, p: Params, size: tuple[int, ...],
                 rng: np.random.Generator) -> torch.Tensor:
    z = stats.gamma(alpha.detach().to("cpu", torch.float64).numpy()).rvs(size=size,
                                                                         random_state=rng)
    z = torch.as_tensor(np.asarray(z).reshape(size), dtype=p.float_dtype, device=p.device)
    return z.clamp_(min=_tiny(z.dtype))


#: Below this Gamma shape the ratio families (:data:`_RATIO_SHAPES`) draw ``log G`` in log
#: space (the torch backend's threshold). A standard Gamma(a) draw underflows float64 with
#: probability about ``1e-308**a / Gamma(a + 1)``: 70% at a = 5e-4 (half of df = 1e-3), 1e-154
#: at a = 0.5.
SMALL_SHAPE = 0.5

#: family -> (parameter, factor): the Gamma shapes (factor * parameter) its draw divides by.
_RATIO_SHAPES: dict[str, tuple[tuple[str, float], ...]] = {
    "InverseGamma": (("concentration", 1.0),),
    "StudentT": (("df", 0.5),),
    "FisherSnedecor": (("df1", 0.5), ("df2", 0.5)),
}


def _log_standard_gamma(alpha: torch.Tensor, size: tuple[int, ...], rng: np.random.Generator
                        ) -> tuple[torch.Tensor, Callable[[], torch.Tensor]]:
    """``log G`` of standard Gamma(α) draws (float64, shape ``size``, no graph) and a function
    computing ``d(log G)/dα`` per draw (called in backward only).

    Below :data:`SMALL_SHAPE`, ``G`` itself underflows float64 and its log is lost:
    ``log G_a = log G_(a+1) + log(U) / a`` instead, exact (``G_a = G_(a+1) U^(1/a)``) and
    finite, with the pathwise derivative ``d log G_(a+1)/da - log(U) / a**2`` (``G_(a+1)``'s
    implicit one: it never underflows), as the torch backend does.
    """
    a = alpha.detach().double()
    small = bool((a < SMALL_SHAPE).any())
    shape = a + 1.0 if small else a
    z = stats.gamma(shape.cpu().numpy()).rvs(size=size, random_state=rng)
    z_t = torch.as_tensor(np.asarray(z).reshape(size), device=alpha.device)
    z_t.clamp_(min=_tiny(torch.float64))  # G_(a+1), or G_a for a >= 0.5: 0 with odds 1e-154
    if not small:
        return z_t.log(), lambda: standard_gamma_dz_dalpha(z_t, a, log=True)
    u = np.asarray(stats.uniform.rvs(size=size, random_state=rng)).reshape(size)  # [0, 1)
    log_u = torch.log1p(-torch.as_tensor(u, device=alpha.device))  # log of 1 - u, in (0, 1]
    return (z_t.log() + log_u / a,
            lambda: standard_gamma_dz_dalpha(z_t, shape, log=True) - log_u / a**2)


class _FromLog(torch.autograd.Function):
    """A draw ``y = exp(log y)``, held in its dtype's range, differentiable in parameters
    ``θ_i`` through ``dy/dθ_i = y d(log y)/dθ_i``, each computed per draw as one number,
    ``sign(d) exp(log y + log|d|)``.

    Left to autograd, the chain multiplied ``y`` (up to the largest float) by each term of
    ``d(log y)/dθ_i`` separately: FisherSnedecor(1e-3, 1e-3)'s ``df1`` gradient was NaN for 7 of
    4,000 single draws (``inf - inf``) where it is infinite. Draws held at the ends of the range
    get a zero gradient. First-order only: the derivatives are computed without a graph, so a
    second differentiation raises ``NotReparameterizableError`` (as the tfp backend's) instead
    of silently giving 0.
    """

    @staticmethod
    def forward(ctx: Any, log_y: torch.Tensor, dtype: torch.dtype,  # type: ignore[override]
                dlogs: Callable[[], tuple[torch.Tensor, ...]], *params: torch.Tensor
                ) -> torch.Tensor:
        fi = torch.finfo(dtype)
        inside = (log_y > math.log(fi.tiny)) & (log_y < math.log(fi.max))
        ctx.save_for_backward(log_y, inside, *params)
        ctx.dlogs = dlogs
        return _exp_in_range(log_y, dtype)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[Any, ...]:  # type: ignore[override]
        if torch.is_grad_enabled():
            raise NotReparameterizableError(
                "Second-order gradients through the scipy backend's small-shape draws "
                "(FisherSnedecor, StudentT, InverseGamma in log space) are not available: "
                "their first-order gradient is computed without a graph, so a second "
                "derivative would be silently 0. Expected backward()/autograd.grad without "
                "create_graph=True. Received: a backward pass that builds a graph. Use "
                "backend='torch' for higher-order derivatives.")
        log_y, inside, *params = ctx.saved_tensors
        out: list[torch.Tensor | None] = [None, None, None]  # log_y, dtype, dlogs
        g64 = grad.double()
        for i, (t, d) in enumerate(zip(params, ctx.dlogs())):
            if not ctx.needs_input_grad[3 + i]:
                out.append(None)
                continue
            dy = torch.where(inside, d.sign() * (log_y + d.abs().log()).exp(), 0.0)
            g = torch.where(g64 == 0, 0.0, g64 * dy)  # a zero cotangent: 0, not 0 * inf
            out.append(g.sum_to_size(t.shape).to(t.dtype))
        return tuple(out)


def _exp_in_range(log_x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``exp(log_x)`` as ``dtype``, held at ``tiny`` and ``max`` of ``dtype`` beyond them (as
    torch keeps its draws in the support), with a zero gradient there: the log is clamped
    before ``exp``, so no infinite value or derivative enters the chain."""
    fi = torch.finfo(dtype)
    lo, hi = math.log(fi.tiny), math.log(fi.max)
    x = log_x.clamp(min=lo, max=hi).exp()
    # exactly the ends where held (exp(log(max)) rounds below float64's max, or above it)
    x = torch.where(log_x >= hi, fi.max, torch.where(log_x <= lo, fi.tiny, x))
    return x.to(dtype)


# --8<-- [start:explicit]
# Explicit reparameterization: the noise is a parameter-free SciPy draw, the transform is torch's.
def _location_scale(law: str) -> Callable[..., torch.Tensor]:
    def draw(p: Params, sample_shape: torch.Size, rng: np.random.Generator) -> torch.Tensor:
        return p["loc"] + p["scale"] * noise(law, p, sample_shape, rng)
    return draw


def _exponential(p: Params, sample_shape: torch.Size, rng: np.random.Generator) -> torch.Tensor:
    return noise("expon", p, sample_shape, rng) / p["rate"]
# --8<-- [end:explicit]


def _scale_only(law: str) -> Callable[..., torch.Tensor]:
    def draw(p: Params, sample_shape: torch.Size, rng: np.random.Generator) -> torch.Tensor:
        return p["scale"] * noise(law, p, sample_shape, rng)
    return draw


def _uniform(p: Params, sample_shape: torch.Size, rng: np.random.Generator) -> torch.Tensor:
    low, high = p["low"], p["high"]
    return low + (high - low) * noise("uniform", p, sample_shape, rng)


def _lognormal(p: Params, sample_shape: torch.Size, rng: np.random.Generator) -> torch.Tensor:
    return _location_scale("norm")(p, sample_shape, rng).exp()


# --8<-- [start:held]
def _held(fn: Callable[..., torch.Tensor], params: tuple[torch.Tensor, ...], lo: float,
          hi: float) -> torch.Tensor:
    """``fn(*params)`` (a transform of fixed noise) held in ``[lo, hi]``, with a zero gradient
    where it left it. Clamping alone is not enough: where ``exp`` or a power overflowed, its
    derivative is infinite, and the clamp's zero gradient times it is NaN. Those entries are
    recomputed with the parameters set to 1 (the "double where"): their gradient is exactly 0.
    """
    x = fn(*params)
    with torch.no_grad():
        out = (x < lo) | (x > hi)
    if not (x.requires_grad and bool(out.any())):
        return x.clamp(min=lo, max=hi)
    one = torch.ones((), dtype=x.dtype, device=x.device)
    safe = tuple(torch.where(out, one, q) for q in params)
    return torch.where(out, x.detach().clamp(min=lo, max=hi), fn(*safe))


def _weibull(p: Params, sample_shape: torch.Size, rng: np.random.Generator) -> torch.Tensor:
    # Inverse CDF: scale * E^(1/k) for a standard exponential E; at small k it leaves the
    # float range (k = 1e-30: every draw but those with E = 1 exactly), held at its ends.
    e = noise("expon", p, sample_shape, rng)
    fi = torch.finfo(e.dtype)
    return _held(lambda s, k: s * e.pow(k.reciprocal()), (p["scale"], p["concentration"]),
                 fi.tiny, fi.max)


def _pareto(p: Params, sample_shape: torch.Size, rng: np.random.Generator) -> torch.Tensor:
    # scale * exp(E / alpha) overflows at small alpha (Pareto(2, 0.01): 42% of float32 draws):
    # held at the largest float
    e = noise("expon", p, sample_shape, rng)
    return _held(lambda s, a: s * (e / a).exp(), (p["scale"], p["alpha"]), 0.0,
                 torch.finfo(e.dtype).max)
# --8<-- [end:held]


def _expm1_ratio(xi: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
    """``expm1(xi * e) / xi``, with the right value (``e``) and xi-gradient (``e**2 / 2``) at
    ``xi = 0``: the Taylor series where ``|xi * e| < 1e-4``, the exact formula elsewhere."""
    t = xi * e
    small = t.abs() < 1e-4
    safe_xi = torch.where(small, torch.ones_like(t), xi)
    exact = torch.expm1(torch.where(small, torch.zeros_like(t), t)) / safe_xi
    return torch.where(small, e * (1 + t * (0.5 + t / 6)), exact)


def _generalized_pareto(p: Params, sample_shape: torch.Size, rng: np.random.Generator
                        ) -> torch.Tensor:
    e = noise("expon", p, sample_shape, rng)
    return p["loc"] + p["scale"] * _expm1_ratio(p["concentration"], e)


def _mvn(p: Params, sample_shape: torch.Size, rng: np.random.Generator) -> torch.Tensor:
    loc, tril = p["loc"], p["scale_tril"]
    eps = noise("norm", p, sample_shape, rng, (loc.shape[-1],))
    return loc + (tril @ eps.unsqueeze(-1)).squeeze(-1)


def _lowrank_mvn(p: Params, sample_shape: torch.Size, rng: np.random.Generator) -> torch.Tensor:
    loc, w, diag = p["loc"], p["cov_factor"], p["cov_diag"]
    eps_w = noise("norm", p, sample_shape, rng, (w.shape[-1],))
    eps_d = noise("norm", p, sample_shape, rng, (loc.shape[-1],))
    return loc + (w @ eps_w.unsqueeze(-1)).squeeze(-1) + diag.sqrt() * eps_d


def _straight_through(p: Params, sample_shape: torch.Size, rng: np.random.Generator
                      ) -> torch.Tensor:
    # torch's straight-through estimator: the value of a one-hot draw, the gradient of probs.
    probs = p["probs"]
    return sample("OneHotCategoricalStraightThrough", p, sample_shape, rng) + (
        probs - probs.detach())


# --8<-- [start:implicit]
# Implicit reparameterization: SciPy draws the value, the kit's Functions carry dz/dα back.
def _gamma(p: Params, sample_shape: torch.Size, rng: np.random.Generator) -> torch.Tensor:
    alpha, z = _standard_gamma(p, "concentration", 1.0, sample_shape, rng)
    return ImplicitGamma.apply(alpha, z) / p["rate"]


def _beta(p: Params, sample_shape: torch.Size, rng: np.random.Generator) -> torch.Tensor:
    x = sample("Beta", p, sample_shape, rng)
    a, b = p["concentration1"], p["concentration0"]
    # The gradient at the value returned (rounded to its dtype, kept inside (0, 1)).
    return ImplicitBeta.apply(a.expand(x.shape), b.expand(x.shape), x, x.detach())
# --8<-- [end:implicit]


def _chi2(p: Params, sample_shape: torch.Size, rng: np.random.Generator) -> torch.Tensor:
    alpha, z = _standard_gamma(p, "df", 0.5, sample_shape, rng)
    return 2 * ImplicitGamma.apply(alpha, z)


# The ratio families take log G in float64 (_log_standard_gamma) and their value from
# _FromLog: a Gamma draw cast to float32, or one that underflowed float64, held at the
# smallest float gave wrong values at small shapes (FisherSnedecor(1e-3, 1e-3).rsample(): 50%
# exactly 1 in float64, 92% in float32; float32 StudentT(1e-3): median |t| 1.3e17 where it is
# beyond 3.4e38).
def _inverse_gamma(p: Params, sample_shape: torch.Size, rng: np.random.Generator
                   ) -> torch.Tensor:
    # rate / G as exp(log rate - log G)
    conc, rate = p["concentration"], p["rate"]
    log_g, dlog_g = _log_standard_gamma(conc, tuple(sample_shape + p.batch_shape), rng)
    r = rate.detach().double()
    return _FromLog.apply(r.log() - log_g, p.float_dtype,
                          lambda: (-dlog_g(), r.reciprocal().expand_as(log_g)), conc, rate)


def _student_t(p: Params, sample_shape: torch.Size, rng: np.random.Generator) -> torch.Tensor:
    # T = N sqrt(df / V) with V ~ Chi2(df) = 2 G, G ~ Gamma(h), h = df / 2:
    # |T| = exp(log|N| + (log h - log G) / 2), held in the float range; loc + scale T too.
    df, size = p["df"], tuple(sample_shape + p.batch_shape)
    h = 0.5 * df.detach().double()
    log_g, dlog_g = _log_standard_gamma(h, size, rng)
    n = torch.as_tensor(np.asarray(stats.norm.rvs(size=size, random_state=rng)).reshape(size),
                        device=p.device)
    log_abs = n.abs().clamp(min=_tiny(torch.float64)).log() + 0.5 * (h.log() - log_g)
    # d log|T| / d df = (1 / h - d log G / dh) / 4
    t_abs = _FromLog.apply(log_abs, p.float_dtype, lambda: (0.25 * (h.reciprocal() - dlog_g()),),
                           df)
    t = n.sign().to(p.float_dtype) * t_abs
    fi = torch.finfo(p.float_dtype)
    return _held(lambda loc, scale: loc + scale * t, (p["loc"], p["scale"]), -fi.max, fi.max)


def _fisher_snedecor(p: Params, sample_shape: torch.Size, rng: np.random.Generator
                     ) -> torch.Tensor:
    # (V1 / df1) / (V2 / df2) with Vi ~ Chi2(dfi) = 2 Gamma(hi), hi = dfi / 2:
    # log F = log G1 - log G2 + log h2 - log h1.
    df1, df2 = p["df1"], p["df2"]
    size = tuple(sample_shape + p.batch_shape)
    h1, h2 = 0.5 * df1.detach().double(), 0.5 * df2.detach().double()
    log_g1, dlog_g1 = _log_standard_gamma(h1, size, rng)
    log_g2, dlog_g2 = _log_standard_gamma(h2, size, rng)
    log_x = log_g1 - log_g2 + h2.log() - h1.log()
    # d log F / d df1 = (d log G1 / dh1 - 1 / h1) / 2, d log F / d df2 = (1 / h2 - d log G2 / dh2) / 2
    return _FromLog.apply(log_x, p.float_dtype,
                          lambda: (0.5 * (dlog_g1() - h1.reciprocal()),
                                   0.5 * (h2.reciprocal() - dlog_g2())), df1, df2)


def _dirichlet(p: Params, sample_shape: torch.Size, rng: np.random.Generator) -> torch.Tensor:
    x = sample("Dirichlet", p, sample_shape, rng)
    conc = p["concentration"]
    return ImplicitDirichlet.apply(conc.expand(x.shape), x, x.detach().double())


def _wishart(p: Params, sample_shape: torch.Size, rng: np.random.Generator) -> torch.Tensor:
    # Bartlett decomposition: W = L A A^T L^T with A lower triangular, A_ii^2 ~ Chi2(df - i),
    # A_ij ~ N(0, 1) below the diagonal; the Chi2 draws carry the df gradient implicitly.
    df, tril = p["df"], p["scale_tril"]
    k = tril.shape[-1]
    alpha = (df.unsqueeze(-1) - torch.arange(k, dtype=df.dtype, device=df.device)) * 0.5

    def bartlett() -> torch.Tensor:
        z = _gamma_noise(alpha, p, tuple(sample_shape + p.batch_shape) + (k,), rng)
        diag = (2 * ImplicitGamma.apply(alpha, z)).sqrt()
        a = noise("norm", p, sample_shape, rng, (k, k)).tril(-1) + torch.diag_embed(diag)
        chol = tril @ a
        return chol @ chol.transpose(-1, -2)
    return _redraw_singular(bartlett)


#: Redraws of Wishart matrices that come out singular (torch's WISHART_MAX_TRY_CORRECTION).
WISHART_MAX_REDRAWS = 10


def _redraw_singular(draw: Callable[[], torch.Tensor]) -> torch.Tensor:
    """``draw()``, its matrices that fail torch's positive-definite check redrawn, as torch
    does (the torch, numpy and tfp backends alike).

    For ``df`` just above ``p - 1`` the last Bartlett factor is tiny and the rounded matrix is
    singular: at ``Wishart(1.05, I_2)`` 31% of SciPy's float32 draws failed the check (49% at
    ``df = 1.000001``, 0.5% at 1.5; SciPy 1.15.3, 20,000 draws). A rejected matrix is redrawn whole, at most
    :data:`WISHART_MAX_REDRAWS` times (redrawing conditions on the support, which the law
    already does up to rounding); those still singular are returned as drawn, with torch's
    ``RuntimeWarning``. The draws are merged with ``torch.where``: gradients flow to the kept
    draw.
    """
    x = draw()
    bad = ~constraints.positive_definite.check(x.detach())
    redraws = 0
    while redraws < WISHART_MAX_REDRAWS and bool(bad.any()):
        new = draw()
        x = torch.where(bad[..., None, None], new, x)
        bad = bad & ~constraints.positive_definite.check(new.detach())
        redraws += 1
    if bool(bad.any()):
        warnings.warn(
            f"{int(bad.sum())} of {bad.numel()} Wishart draws are still outside the support "
            f"after {WISHART_MAX_REDRAWS} redraws; they are returned as drawn. Draw in float64, "
            "or with parameters further from the support's edge (Wishart: df further above "
            "p - 1).", RuntimeWarning, stacklevel=2)
    return x


#: torch family -> its rsample, ``draw(params, sample_shape, rng)``. Families not listed have
#: no reparameterized sampler here (rsample raises NotReparameterizableError).
RSAMPLE: dict[str, Callable[[Params, torch.Size, np.random.Generator], torch.Tensor]] = {
    "Normal": _location_scale("norm"),
    "Cauchy": _location_scale("cauchy"),
    "Laplace": _location_scale("laplace"),
    "Gumbel": _location_scale("gumbel_r"),
    "HalfNormal": _scale_only("halfnorm"),
    "HalfCauchy": _scale_only("halfcauchy"),
    "Uniform": _uniform,
    "Exponential": _exponential,
    "LogNormal": _lognormal,
    "Weibull": _weibull,
    "Pareto": _pareto,
    "GeneralizedPareto": _generalized_pareto,
    "Gamma": _gamma,
    "Chi2": _chi2,
    "InverseGamma": _inverse_gamma,
    "StudentT": _student_t,
    "FisherSnedecor": _fisher_snedecor,
    "Beta": _beta,
    "Dirichlet": _dirichlet,
    "MultivariateNormal": _mvn,
    "LowRankMultivariateNormal": _lowrank_mvn,
    "Wishart": _wishart,
    "OneHotCategoricalStraightThrough": _straight_through,
}


def rsample(family: str, p: Params, sample_shape: torch.Size, rng: np.random.Generator
            ) -> torch.Tensor:
    return RSAMPLE[family](p, sample_shape, rng)


def invalid(family: str, p: Params, exc: Exception) -> InvalidParameterError:
    """SciPy's complaint about parameters as polysample's error (a ValueError too)."""
    return InvalidParameterError(
        f"SciPy could not draw {family} with these parameters: {exc}. Expected parameters "
        f"that scipy.stats accepts for this law. Received: {p!r}. Use another backend for "
        "these parameters (backend='torch').")
