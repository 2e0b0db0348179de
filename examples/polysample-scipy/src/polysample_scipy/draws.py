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
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from polysample.plugin import (
    ImplicitBeta,
    ImplicitDirichlet,
    ImplicitGamma,
    ImplicitLogGamma,
    InvalidParameterError,
    Params,
)

__all__ = ["LAWS", "PER_POINT", "RSAMPLE", "Args", "stats", "sample", "rsample"]


# --8<-- [start:lazy]
class _LazyStats:
    """``scipy.stats``, imported on first use: registering and listing the backend stay light."""

    def __getattr__(self, name: str) -> Any:
        import scipy.stats

        return getattr(scipy.stats, name)


stats: Any = _LazyStats()
# --8<-- [end:lazy]


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
#: distribution: ``.rvs`` draws (sample), ``.logpdf``/``.logpmf`` scores (log_prob).
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
    # counts failures before n successes, so its success probability is 1 - probs.
    "NegativeBinomial": lambda a: stats.nbinom(a["total_count"], 1 - a["probs"]),
    "Poisson": lambda a: stats.poisson(a["rate"]),
    # categorical families: one-hot draws of multinomial(1, probs) (Categorical's index is drawn
    # by inversion instead, see _categorical_index: a one-hot array would cost draws x categories)
    "Categorical": lambda a: stats.multinomial(1, _normalized(a["probs"])),
    "OneHotCategorical": lambda a: stats.multinomial(1, _normalized(a["probs"])),
    "OneHotCategoricalStraightThrough": lambda a: stats.multinomial(1, _normalized(a["probs"])),
    "Multinomial": lambda a: stats.multinomial(a["total_count"], _normalized(a["probs"])),
    # multivariate: SciPy takes one parameter point at a time (see PER_POINT)
    "Dirichlet": lambda a: stats.dirichlet(a["concentration"]),
    "MultivariateNormal": lambda a: stats.multivariate_normal(
        a["loc"], cov=stats.Covariance.from_cholesky(a["scale_tril"])),
    "LowRankMultivariateNormal": lambda a: stats.multivariate_normal(
        a["loc"], a["cov_factor"] @ a["cov_factor"].T + np.diag(a["cov_diag"])),
    "Wishart": lambda a: stats.wishart(a["df"], a["scale_tril"] @ a["scale_tril"].T),
}
# --8<-- [end:laws]

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


def sample(family: str, p: Params, sample_shape: torch.Size, rng: np.random.Generator
           ) -> torch.Tensor:
    """``sample()``: SciPy's ``rvs`` of the family's law, in torch's conventions, as a tensor of
    the result's dtype and device, inside the support."""
    if family == "Categorical":
        return torch.as_tensor(_categorical_index(p, sample_shape, rng)).to(
            device=p.device, dtype=p.dtype)
    if family == "Binomial":
        _check_binomial_count(p)
    if family == "Geometric":
        x = _geometric(p, sample_shape, rng)
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


def _inverse_gamma(p: Params, sample_shape: torch.Size, rng: np.random.Generator
                   ) -> torch.Tensor:
    # rate / z through log z: for small concentrations z sits near the smallest float.
    alpha, z = _standard_gamma(p, "concentration", 1.0, sample_shape, rng)
    return p["rate"] * (-ImplicitLogGamma.apply(alpha, z)).exp()


def _student_t(p: Params, sample_shape: torch.Size, rng: np.random.Generator) -> torch.Tensor:
    # T = N / sqrt(V / df) with V ~ Chi2(df) = 2 Gamma(df / 2).
    df = p["df"]
    alpha, z = _standard_gamma(p, "df", 0.5, sample_shape, rng)
    log_v = ImplicitLogGamma.apply(alpha, z) + math.log(2.0)
    t = noise("norm", p, sample_shape, rng) * (0.5 * (df.log() - log_v)).exp()
    return p["loc"] + p["scale"] * t


def _fisher_snedecor(p: Params, sample_shape: torch.Size, rng: np.random.Generator
                     ) -> torch.Tensor:
    # (V1 / df1) / (V2 / df2) with Vi ~ Chi2(dfi), in log space.
    df1, df2 = p["df1"], p["df2"]
    a1, z1 = _standard_gamma(p, "df1", 0.5, sample_shape, rng)
    a2, z2 = _standard_gamma(p, "df2", 0.5, sample_shape, rng)
    log_x = (ImplicitLogGamma.apply(a1, z1) - ImplicitLogGamma.apply(a2, z2)
             + df2.log() - df1.log())
    return log_x.clamp(min=math.log(_tiny(log_x.dtype))).exp()


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
    z = _gamma_noise(alpha, p, tuple(sample_shape + p.batch_shape) + (k,), rng)
    diag = (2 * ImplicitGamma.apply(alpha, z)).sqrt()
    a = noise("norm", p, sample_shape, rng, (k, k)).tril(-1) + torch.diag_embed(diag)
    chol = tril @ a
    return chol @ chol.transpose(-1, -2)


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
