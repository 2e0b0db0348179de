"""Independent references: closed-form laws SciPy lacks, and the projection machinery.

The family table (:mod:`.cases`) builds, for every family, SciPy frozen laws (or the closed forms
below where SciPy has none) over a flat batch of parameters (NumPy float64 arrays, one column per
grid point), and maps a draw of any family to univariate statistics with a known law:
:class:`Projection`. Every law here offers ``cdf``, ``sf``, ``pdf`` and ``logpdf`` (``logpmf``
for the categorical), vectorised over columns.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import special, stats

__all__ = ["Projection", "freeze", "fast_cdf", "TailSafe", "log1p_square", "laplace",
           "half_cauchy", "student_t", "pareto", "Normal", "Kumaraswamy", "ContinuousBernoulli", "RelaxedBernoulli", "VonMises",
           "Categorical", "inverse_stick_breaking", "mvn_logpdf", "unit_vectors",
           "params_np", "flat"]

Arr = np.ndarray


def _sigmoid(u: Arr) -> Arr:
    return special.expit(u)


@dataclass
class Projection:
    """Univariate statistics of a draw with a known law, one column per grid point.

    ``values`` is ``(n, m)`` float64; ``law`` is the reference law vectorised over the ``m``
    columns (its parameters have shape ``(m,)``); for discrete statistics ``column(j)`` is the
    law of column ``j`` alone (for the exact integer K-S path) and ``exact_sum(n)`` the law of a
    sum of ``n`` draws of each column (or None). ``resolution``: the float type of the draw
    the statistic comes from (float32 for the ``float32`` grid), at which its ties are judged;
    ``ulps``: how many of its spacings either side of a value the value stands for (1; more
    where the statistic is computed from rounded parts: a Dirichlet component is a Gamma draw
    divided by a sum of ``k``, each rounded, and a subset's sum adds rounded components).
    """

    label: str
    values: Arr
    law: Any
    discrete: bool = False
    column: Callable[[int], Any] | None = None
    exact_sum: Callable[[int], Any] | None = None
    cache: dict[str, Any] = field(default_factory=dict, repr=False)
    resolution: type[np.floating[Any]] = np.float64
    ulps: int = 1
    #: How the rows were drawn: each column's ``n`` rows are ``copies`` batch elements of one
    #: call (the same grid point), ``n / copies`` consecutive rows each; 0 where a column's
    #: rows come from many calls (or the layout is not known). The independence check's
    #: balance test reads the PIT sums of these blocks.
    copies: int = 0


def freeze(dist: Any, *args: Any, **kwds: Any) -> Any:
    """``dist(*args, **kwds)``: a SciPy frozen law, without the copy of the distribution that
    SciPy makes for each one (rebuilding its docstring: about 1.3 ms a law, and a quick
    sampler layer freezes about 1,600). The copy holds a random state of its own, which the
    suite never uses: it draws nothing from SciPy. The frozen law is of SciPy's own frozen
    class, with the same attributes; where SciPy's internals differ from what this expects,
    it is frozen the usual way."""
    try:
        from scipy.stats._distn_infrastructure import (
            rv_continuous_frozen,
            rv_discrete,
            rv_discrete_frozen,
        )

        cls = rv_discrete_frozen if isinstance(dist, rv_discrete) else rv_continuous_frozen
        law = cls.__new__(cls)
        law.args, law.kwds, law.dist = args, kwds, dist
        shapes, _, _ = dist._parse_args(*args, **kwds)
        law.a, law.b = dist._get_support(*shapes)
        return law
    except Exception:  # noqa: BLE001 - another SciPy: its own (slower) freezing
        return dist(*args, **kwds)


def fast_cdf(law: Any, x: Arr) -> Arr:
    """``law.cdf(x)`` as float64, for a SciPy frozen continuous law without its per-element
    bookkeeping where that cannot change a value.

    SciPy's ``cdf`` checks the parameters and the support element by element, compresses every
    argument to the valid elements, evaluates ``_cdf`` on them and scatters the results back:
    about half the time of a Gamma or Beta CDF over the suite's draws, 95% of an exponential's.
    Here the parameters are checked once (they have one value per grid point), and where every
    ``x`` lies inside the open support ``_cdf`` runs on the whole array: the same elementwise
    function on the same values, so the same result. Anything else (a value on or outside the
    support's boundary, a NaN, an invalid parameter, another kind of law) goes through
    ``law.cdf``.
    """
    d = getattr(law, "dist", None)
    if isinstance(d, stats.rv_continuous):
        with np.errstate(all="ignore"):
            try:
                args, loc, scale = d._parse_args(*law.args, **law.kwds)
                args = tuple(np.asarray(a, np.float64) for a in args)
                ok = bool(np.all(d._argcheck(*args)) and np.all(np.asarray(scale) > 0))
            except (TypeError, ValueError):
                ok = False
            if ok:
                z = (np.asarray(x, np.float64) - loc) / scale
                lo, hi = d._get_support(*args)
                if np.all((z > lo) & (z < hi)):
                    out = np.asarray(d._cdf(z, *args), dtype=np.float64)
                    if out.shape == z.shape:
                        return out
    return np.asarray(law.cdf(x), dtype=np.float64)


def log1p_square(u: Arr) -> Arr:
    """``log(1 + u^2)`` without overflow: ``2 log|u| + log1p(u^-2)`` beyond ``|u| = 1`` (``u^2``
    overflows float64 beyond 1.3e154, where the value is still about 709)."""
    u = np.abs(np.asarray(u, dtype=np.float64))
    with np.errstate(divide="ignore", over="ignore"):
        big = u > 1.0
        inv = 1.0 / np.where(big, u, 1.0)
        return np.where(big, 2.0 * np.log(np.where(big, u, 1.0)) + np.log1p(inv * inv),
                        np.log1p(u * u))


class TailSafe:
    """A SciPy frozen law whose ``logpdf`` is a closed form in log space, everything else
    SciPy's own.

    SciPy 1.15 computes some log densities through quantities that leave float64 far before
    the log density does: ``laplace.logpdf`` is ``log(pdf)`` (-inf beyond ``|x| = 745 scale``,
    where it is ``-|x - loc|/scale - log(2 scale)``), ``pareto`` the log of ``x^-(a+1)``
    (-inf at 1e100 for ``alpha = 3``, where it is about -920), ``t`` and ``halfcauchy`` square
    the standardized value (-inf beyond 1.3e154). The density checks compare a backend's
    ``log_prob`` with this far into the tails (``log_prob_far``, ``log_prob_huge``)."""

    def __init__(self, law: Any, logpdf: Callable[[Arr], Arr]):
        self.law, self._logpdf = law, logpdf

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in ("law", "_logpdf"):
            raise AttributeError(name)
        return getattr(self.law, name)

    def logpdf(self, x: Arr) -> Arr:
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            return self._logpdf(np.asarray(x, dtype=np.float64))


def laplace(loc: Arr, scale: Arr) -> TailSafe:
    return TailSafe(freeze(stats.laplace, loc, scale),
                    lambda x: -np.abs(x - loc) / scale - np.log(2.0 * scale))


def half_cauchy(scale: Arr) -> TailSafe:
    return TailSafe(freeze(stats.halfcauchy, scale=scale),
                    lambda x: np.where(x >= 0, np.log(2.0 / np.pi) - np.log(scale)
                                       - log1p_square(x / scale), -np.inf))


def student_t(df: Arr, loc: Arr, scale: Arr) -> TailSafe:
    const = (special.gammaln((df + 1) / 2) - special.gammaln(df / 2)
             - 0.5 * np.log(df * np.pi) - np.log(scale))
    return TailSafe(freeze(stats.t, df, loc, scale),
                    lambda x: const - (df + 1) / 2 * log1p_square((x - loc) / scale / np.sqrt(df)))


def pareto(alpha: Arr, scale: Arr) -> TailSafe:
    # log x - log scale, not log(x / scale): the ratio overflows for a small scale.
    return TailSafe(freeze(stats.pareto, alpha, scale=scale),
                    lambda x: np.where(x >= scale, np.log(alpha) - np.log(scale)
                                       - (alpha + 1) * (np.log(x) - np.log(scale)), -np.inf))


def params_np(dist: Any, names: tuple[str, ...]) -> dict[str, Arr]:
    """Canonical parameters of a torch distribution as float64 NumPy arrays (batch shape kept)."""
    out = {}
    for name in names:
        v = getattr(dist, name)
        if hasattr(v, "detach"):
            out[name] = v.detach().to("cpu").double().numpy()
        else:
            out[name] = np.asarray(v, dtype=np.float64)
    return out


def flat(a: Arr, bshape: tuple[int, ...]) -> Arr:
    """``a`` broadcast to the batch shape and flattened to one column per grid point."""
    return np.broadcast_to(a, bshape).reshape(-1)


def unit_vectors(rng: np.random.Generator, k: int, count: int) -> Arr:
    u = rng.standard_normal((count, k))
    return u / np.linalg.norm(u, axis=1, keepdims=True)


class Normal:
    """The normal law by ``scipy.special.ndtr``, as ``scipy.stats.norm`` computes it, without the
    frozen distribution's per-call argument checks and copies (5x faster on the large arrays
    of the suite: the multivariate normals have eleven normal statistics per draw)."""

    def __init__(self, loc: Arr, scale: Arr):
        self.loc, self.scale = np.asarray(loc, np.float64), np.asarray(scale, np.float64)

    def _z(self, x: Arr) -> Arr:
        return (x - self.loc) / self.scale

    def cdf(self, x: Arr) -> Arr:
        return special.ndtr(self._z(x))

    def sf(self, x: Arr) -> Arr:
        return special.ndtr(-self._z(x))

    def logpdf(self, x: Arr) -> Arr:
        z = self._z(x)
        return -0.5 * z * z - np.log(self.scale) - 0.5 * np.log(2 * np.pi)

    def pdf(self, x: Arr) -> Arr:
        return np.exp(self.logpdf(x))

    def mean(self) -> Arr:
        return self.loc


class Kumaraswamy:
    def __init__(self, a: Arr, b: Arr):
        self.a, self.b = a, b

    def _log_sf(self, x: Arr) -> Arr:
        # 1 - x^a = -expm1(a log x): exact near x = 1, where x^a rounds to 1.
        return self.b * np.log(-np.expm1(self.a * np.log(x)))

    def cdf(self, x: Arr) -> Arr:
        return -np.expm1(self._log_sf(x))

    def sf(self, x: Arr) -> Arr:
        return np.exp(self._log_sf(x))

    def logpdf(self, x: Arr) -> Arr:
        a, b = self.a, self.b
        return (np.log(a) + np.log(b) + (a - 1) * np.log(x)
                + (b - 1) * np.log(-np.expm1(a * np.log(x))))

    def pdf(self, x: Arr) -> Arr:
        return np.exp(self.logpdf(x))


class ContinuousBernoulli:
    """Density ``C(p) p^x (1-p)^(1-x)`` on [0, 1]; CDF ``(r^x - 1)/(r - 1)``, ``r = p/(1-p)``."""

    def __init__(self, p: Arr):
        self.lr = np.log(p) - np.log1p(-p)

    # Below |log r| = 1e-5 the second-order Taylor series in log r (error below 1e-15): smooth
    # through p = 1/2, where the gradient checks take finite differences in p.
    def _safe(self) -> tuple[Arr, Arr]:
        small = np.abs(self.lr) < 1e-5
        return small, np.where(small, 1.0, self.lr)

    def cdf(self, x: Arr) -> Arr:
        small, lr = self._safe()
        s = self.lr
        series = x + x * (x - 1) / 2 * s * (1 + (2 * x - 1) / 6 * s)
        return np.where(small, series, np.expm1(x * lr) / np.expm1(lr))

    def sf(self, x: Arr) -> Arr:
        small, lr = self._safe()
        s = self.lr
        series = (1 - x) - x * (x - 1) / 2 * s * (1 + (2 * x - 1) / 6 * s)
        return np.where(small, series,
                        np.exp(x * lr) * np.expm1((1 - x) * lr) / np.expm1(lr))

    def pdf(self, x: Arr) -> Arr:
        small, lr = self._safe()
        s = self.lr
        series = 1 + s * (x - 0.5) + s * s * (x * x / 2 - x / 2 + 1 / 12)
        return np.where(small, series, lr * np.exp(x * lr) / np.expm1(lr))

    def logpdf(self, x: Arr) -> Arr:
        return np.log(self.pdf(x))


class RelaxedBernoulli:
    """``X = sigmoid((logit p + L)/T)``, L logistic: ``F(x) = sigmoid(T logit x - logit p)``."""

    def __init__(self, t: Arr, p: Arr):
        self.t, self.lp = t, special.logit(p)

    def _u(self, x: Arr) -> Arr:
        return self.t * special.logit(x) - self.lp

    def cdf(self, x: Arr) -> Arr:
        return _sigmoid(self._u(x))

    def sf(self, x: Arr) -> Arr:
        return _sigmoid(-self._u(x))

    def pdf(self, x: Arr) -> Arr:
        u = self._u(x)
        return _sigmoid(u) * _sigmoid(-u) * self.t / (x * (1 - x))

    def logpdf(self, x: Arr) -> Arr:
        # in log space: the density underflows near 0 and 1 (at 4e-115 for T = 3, p = 0.95 the
        # log density is -528.6), where log(pdf) said -inf
        u = self._u(x)
        with np.errstate(divide="ignore"):
            return (np.log(self.t) - np.logaddexp(0.0, -u) - np.logaddexp(0.0, u)
                    - np.log(x) - np.log1p(-x))


#: Two float32 spacings at pi (2.4e-7 each): how far past +-pi a rounded angle may lie.
_PI_ROUNDING = 4.8e-7


class VonMises:
    """Angles in [-pi, pi) (torch's convention): ``P(X <= x)`` counted from -pi.

    Angles are read modulo 2 pi, except within :data:`_PI_ROUNDING` beyond either end: a
    float32 draw rounds angles just below pi to float32(pi) = 3.14159274 > pi, which stands for
    the top of the support (``F = 1``), not for an angle just above -pi (and -float32(pi) for
    the bottom, ``F = 0``).
    """

    def __init__(self, loc: Arr, kappa: Arr):
        self.loc, self.kappa = loc, kappa

    def _w(self, x: Arr) -> Arr:
        return np.mod(x - self.loc + np.pi, 2 * np.pi) - np.pi

    def _g(self, x: Arr) -> Arr:
        return stats.vonmises.cdf(self._w(x), self.kappa)

    def cdf(self, x: Arr) -> Arr:
        x = np.asarray(x, dtype=float)
        F = np.mod(self._g(x) - self._g(np.full_like(x, -np.pi)), 1.0)
        over = np.abs(x) - np.pi
        edge = (over >= 0) & (over <= _PI_ROUNDING)
        return np.where(edge, (x > 0).astype(float), F) if edge.any() else F

    def sf(self, x: Arr) -> Arr:
        return 1.0 - self.cdf(x)

    def pdf(self, x: Arr) -> Arr:
        return stats.vonmises.pdf(self._w(x), self.kappa)

    def logpdf(self, x: Arr) -> Arr:
        return stats.vonmises.logpdf(self._w(x), self.kappa)


class Categorical:
    def __init__(self, probs: Arr):
        p = probs / probs.sum(-1, keepdims=True)
        self.cum = np.cumsum(p, axis=-1)
        self.p = p

    def cdf(self, k: Arr) -> Arr:
        kk = np.clip(np.floor(k), -1, self.p.shape[-1] - 1).astype(np.int64)
        kk = np.broadcast_to(kk, np.broadcast_shapes(kk.shape, self.cum.shape[:-1]))
        cum = np.concatenate([np.zeros(self.cum.shape[:-1] + (1,)), self.cum], -1)
        cum = np.minimum(cum, 1.0)
        # k broadcasts against the batch: (n, m) values against (m, K) tables.
        return np.take_along_axis(np.broadcast_to(cum, kk.shape + cum.shape[-1:]),
                                  (kk + 1)[..., None], -1)[..., 0]

    def logpmf(self, k: Arr) -> Arr:
        kk = k.astype(np.int64)
        return np.log(np.take_along_axis(np.broadcast_to(self.p, kk.shape + self.p.shape[-1:]),
                                         kk[..., None], -1)[..., 0])


def inverse_stick_breaking(y: Arr) -> Arr:
    """Inverse of torch's ``StickBreakingTransform`` (float64)."""
    k = y.shape[-1] - 1
    rest = 1 - np.cumsum(y[..., :-1], axis=-1) + y[..., :-1]
    z = y[..., :-1] / rest
    offset = k + 1 - np.arange(1, k + 1, dtype=np.float64)
    return special.logit(z) + np.log(offset)


def mvn_logpdf(value: Arr, loc: Arr, cov: Arr) -> Arr:
    shape = np.broadcast_shapes(value.shape, loc.shape, cov.shape[:-1])
    v = np.broadcast_to(value, shape).reshape(-1, shape[-1])
    mu = np.broadcast_to(loc, shape).reshape(-1, shape[-1])
    c = np.broadcast_to(cov, shape + shape[-1:]).reshape(-1, shape[-1], shape[-1])
    return np.array([stats.multivariate_normal.logpdf(a, b, s) for a, b, s in zip(v, mu, c)]
                    ).reshape(shape[:-1])
