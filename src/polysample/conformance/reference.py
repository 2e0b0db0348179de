"""Independent references (SciPy, or closed forms where SciPy has none) for every family.

* :func:`univariate_ref` gives, for a univariate family, a frozen law over a flat batch of
  parameters (NumPy float64 arrays): ``cdf``, ``sf``, ``pdf``, ``logpdf``, and for discrete
  families ``exact_sum`` (the exact law of a sum of ``n`` draws, for the targeted mean test).
* :func:`projections` maps a sample of any family to univariate statistics with a known law:
  the values themselves for univariate families; projections ``u.x`` for the multivariate
  normals, ``u'Wu / u'Su`` (chi-square) for Wishart, marginals and subset sums (Beta /
  Binomial) for Dirichlet and Multinomial, log-ratios (logistic) for the relaxed categorical,
  the inverse stick-breaking coordinates (normal) for LogisticNormal, and the correlations
  (scaled Beta) for LKJCholesky.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import special, stats

__all__ = ["UniRef", "univariate_ref", "has_univariate_ref", "Projection", "projections",
           "reference_logpdf", "params_np"]

Arr = np.ndarray


def _sigmoid(u: Arr) -> Arr:
    return special.expit(u)


class _Kumaraswamy:
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


class _ContinuousBernoulli:
    """Density ``C(p) p^x (1-p)^(1-x)`` on [0, 1]; CDF ``(r^x - 1)/(r - 1)``, ``r = p/(1-p)``."""

    def __init__(self, p: Arr):
        self.lr = np.log(p) - np.log1p(-p)

    def _safe(self) -> tuple[Arr, Arr]:
        small = np.abs(self.lr) < 1e-8
        return small, np.where(small, 1.0, self.lr)

    def cdf(self, x: Arr) -> Arr:
        small, lr = self._safe()
        return np.where(small, x, np.expm1(x * lr) / np.expm1(lr))

    def sf(self, x: Arr) -> Arr:
        small, lr = self._safe()
        return np.where(small, 1 - x, np.exp(x * lr) * np.expm1((1 - x) * lr) / np.expm1(lr))

    def pdf(self, x: Arr) -> Arr:
        small, lr = self._safe()
        return np.where(small, 1.0, lr * np.exp(x * lr) / np.expm1(lr))

    def logpdf(self, x: Arr) -> Arr:
        return np.log(self.pdf(x))


class _RelaxedBernoulli:
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
        return np.log(self.pdf(x))


class _VonMises:
    """Angles in [-pi, pi) (torch's convention): ``P(X <= x)`` counted from -pi."""

    def __init__(self, loc: Arr, kappa: Arr):
        self.loc, self.kappa = loc, kappa

    def _w(self, x: Arr) -> Arr:
        return np.mod(x - self.loc + np.pi, 2 * np.pi) - np.pi

    def _g(self, x: Arr) -> Arr:
        return stats.vonmises.cdf(self._w(x), self.kappa)

    def cdf(self, x: Arr) -> Arr:
        return np.mod(self._g(x) - self._g(np.full_like(np.asarray(x, dtype=float), -np.pi)),
                      1.0)

    def sf(self, x: Arr) -> Arr:
        return 1.0 - self.cdf(x)

    def pdf(self, x: Arr) -> Arr:
        return stats.vonmises.pdf(self._w(x), self.kappa)

    def logpdf(self, x: Arr) -> Arr:
        return stats.vonmises.logpdf(self._w(x), self.kappa)


class _Categorical:
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


# family -> (discrete, builder(params) -> frozen law). Builders take canonical torch parameters
# (NumPy float64, broadcast to one flat batch) and use SciPy's parameterization.
_UNI: dict[str, tuple[bool, Callable[[Mapping[str, Arr]], Any]]] = {
    "Normal": (False, lambda p: stats.norm(p["loc"], p["scale"])),
    "Cauchy": (False, lambda p: stats.cauchy(p["loc"], p["scale"])),
    "Laplace": (False, lambda p: stats.laplace(p["loc"], p["scale"])),
    "Gumbel": (False, lambda p: stats.gumbel_r(p["loc"], p["scale"])),
    "LogNormal": (False, lambda p: stats.lognorm(p["scale"], scale=np.exp(p["loc"]))),
    "HalfNormal": (False, lambda p: stats.halfnorm(scale=p["scale"])),
    "HalfCauchy": (False, lambda p: stats.halfcauchy(scale=p["scale"])),
    "Uniform": (False, lambda p: stats.uniform(p["low"], p["high"] - p["low"])),
    "Exponential": (False, lambda p: stats.expon(scale=1 / p["rate"])),
    "Gamma": (False, lambda p: stats.gamma(p["concentration"], scale=1 / p["rate"])),
    "InverseGamma": (False, lambda p: stats.invgamma(p["concentration"], scale=p["rate"])),
    "Chi2": (False, lambda p: stats.chi2(p["df"])),
    "Beta": (False, lambda p: stats.beta(p["concentration1"], p["concentration0"])),
    "Kumaraswamy": (False, lambda p: _Kumaraswamy(p["concentration1"], p["concentration0"])),
    "StudentT": (False, lambda p: stats.t(p["df"], p["loc"], p["scale"])),
    "FisherSnedecor": (False, lambda p: stats.f(p["df1"], p["df2"])),
    "Weibull": (False, lambda p: stats.weibull_min(p["concentration"], scale=p["scale"])),
    "Pareto": (False, lambda p: stats.pareto(p["alpha"], scale=p["scale"])),
    "GeneralizedPareto": (False, lambda p: stats.genpareto(p["concentration"], p["loc"],
                                                           p["scale"])),
    "VonMises": (False, lambda p: _VonMises(p["loc"], p["concentration"])),
    "ContinuousBernoulli": (False, lambda p: _ContinuousBernoulli(p["probs"])),
    "RelaxedBernoulli": (False, lambda p: _RelaxedBernoulli(p["temperature"], p["probs"])),
    "Bernoulli": (True, lambda p: stats.bernoulli(p["probs"])),
    "Binomial": (True, lambda p: stats.binom(p["total_count"], p["probs"])),
    "Poisson": (True, lambda p: stats.poisson(p["rate"])),
    # torch counts failures before the first success; SciPy's geom counts trials.
    "Geometric": (True, lambda p: stats.geom(p["probs"], loc=-1)),
    # torch: successes (prob p) before total_count failures = SciPy nbinom(r, 1 - p).
    "NegativeBinomial": (True, lambda p: stats.nbinom(p["total_count"], 1 - p["probs"])),
}


def _exact_sum(family: str, p: Mapping[str, Arr], n: int) -> Any | None:
    """The exact law of the sum of ``n`` independent draws (discrete families), or None."""
    if family == "Bernoulli":
        return stats.binom(n, p["probs"])
    if family == "Binomial":
        return stats.binom(n * p["total_count"], p["probs"])
    if family == "Poisson":
        return stats.poisson(n * p["rate"])
    if family == "Geometric":
        return stats.nbinom(n, p["probs"])
    if family == "NegativeBinomial":
        return stats.nbinom(n * p["total_count"], 1 - p["probs"])
    return None


@dataclass
class UniRef:
    """A frozen univariate law over a flat batch of ``m`` parameter points."""

    family: str
    discrete: bool
    params: dict[str, Arr]
    law: Any

    def cdf_column(self, k: Arr, j: int) -> Arr:
        """``P(X <= k)`` for the ``j``-th parameter point (discrete laws)."""
        if self.family == "Categorical":
            return _Categorical(self.params["probs"][j]).cdf(k)
        col = {name: v[j] for name, v in self.params.items()}
        return _UNI[self.family][1](col).cdf(k)

    def with_params(self, params: Mapping[str, Arr]) -> UniRef:
        return univariate_ref(self.family, params)

    def exact_sum(self, n: int) -> Any | None:
        return _exact_sum(self.family, self.params, n) if self.discrete else None


def has_univariate_ref(family: str) -> bool:
    return family in _UNI


def univariate_ref(family: str, params: Mapping[str, Arr]) -> UniRef:
    """The reference law of a univariate ``family`` at canonical ``params`` (float64 arrays)."""
    discrete, build = _UNI[family]
    p = {k: np.asarray(v, dtype=np.float64) for k, v in params.items()}
    return UniRef(family, discrete, p, build(p))


def _col_law(law: Any, discrete: bool) -> UniRef:
    return UniRef("", discrete, {}, law)


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


@dataclass
class Projection:
    """Univariate statistics of a sample with a known law, one column per batch element.

    ``values`` is ``(n, m)`` float64; ``ref`` is the reference law over the ``m`` columns.
    """

    label: str
    values: Arr
    ref: UniRef
    cache: dict[str, Any] = field(default_factory=dict, repr=False)


def _flat(a: Arr, bshape: tuple[int, ...]) -> Arr:
    return np.broadcast_to(a, bshape).reshape(-1)


def _unit_vectors(rng: np.random.Generator, k: int, count: int) -> Arr:
    u = rng.standard_normal((count, k))
    return u / np.linalg.norm(u, axis=1, keepdims=True)


def projections(family: str, p: Mapping[str, Arr], x: Arr, batch_shape: tuple[int, ...],
                rng: np.random.Generator, n_random: int = 8) -> list[Projection]:
    """Univariate statistics with a known law for a sample ``x`` of shape ``(n,) + batch + event``.

    ``p``: canonical parameters as float64 arrays with their batch shape (see :func:`params_np`).
    """
    n = x.shape[0]
    m = int(np.prod(batch_shape, dtype=np.int64)) if batch_shape else 1
    if family in ("OneHotCategorical", "OneHotCategoricalStraightThrough"):
        x = np.argmax(x, axis=-1)
        family = "Categorical"
    if family == "Categorical":
        probs = np.broadcast_to(p["probs"], batch_shape + p["probs"].shape[-1:])
        law = _Categorical(probs.reshape(m, -1))
        return [Projection("value", x.reshape(n, m).astype(np.float64),
                           UniRef("Categorical", True, {"probs": probs.reshape(m, -1)}, law))]
    if family in _UNI:
        flat = {k: _flat(v, batch_shape) for k, v in p.items()}
        return [Projection("value", x.reshape(n, m), univariate_ref(family, flat))]
    out: list[Projection] = []
    if family in ("MultivariateNormal", "LowRankMultivariateNormal", "LogisticNormal"):
        if family == "LogisticNormal":
            x = _inverse_stick_breaking(x)
            loc, var_diag = p["loc"], p["scale"] ** 2
            k = x.shape[-1]
            cov = np.zeros(batch_shape + (k, k)) + var_diag[..., None] * np.eye(k)
        elif family == "MultivariateNormal":
            loc, tril = p["loc"], p["scale_tril"]
            cov = tril @ np.swapaxes(tril, -1, -2)
        else:
            loc, w, d = p["loc"], p["cov_factor"], p["cov_diag"]
            cov = w @ np.swapaxes(w, -1, -2) + d[..., None] * np.eye(d.shape[-1])
        k = x.shape[-1]
        loc = np.broadcast_to(loc, batch_shape + (k,)).reshape(m, k)
        cov = np.broadcast_to(cov, batch_shape + (k, k)).reshape(m, k, k)
        xs = x.reshape(n, m, k)
        us = np.concatenate([np.eye(k), _unit_vectors(rng, k, n_random)])
        for i, u in enumerate(us):
            mean = loc @ u
            sd = np.sqrt(np.einsum("i,mij,j->m", u, cov, u))
            label = f"axis{i}" if i < k else f"proj{i - k}"
            out.append(Projection(label, xs @ u, univariate_ref("Normal", {"loc": mean,
                                                                          "scale": sd})))
        return out
    if family == "Wishart":
        tril, df = p["scale_tril"], p["df"]
        k = tril.shape[-1]
        cov = np.broadcast_to(tril @ np.swapaxes(tril, -1, -2), batch_shape + (k, k)).reshape(m, k, k)
        dfm = _flat(df, batch_shape)
        xw = x.reshape(n, m, k, k)
        us = np.concatenate([np.eye(k), _unit_vectors(rng, k, n_random)])
        for i, u in enumerate(us):
            q = np.einsum("i,nmij,j->nm", u, xw, u) / np.einsum("i,mij,j->m", u, cov, u)
            out.append(Projection(f"axis{i}" if i < k else f"proj{i - k}", q,
                                  univariate_ref("Chi2", {"df": dfm})))
        return out
    if family in ("Dirichlet", "Multinomial"):
        key = "concentration" if family == "Dirichlet" else "probs"
        a = np.broadcast_to(p[key], batch_shape + p[key].shape[-1:]).reshape(m, -1)
        if family == "Multinomial":
            a = a / a.sum(-1, keepdims=True)
        k = a.shape[-1]
        xs = x.reshape(n, m, k)
        subsets = [np.eye(k, dtype=bool)[i] for i in range(k)]
        subsets += [s for s in (rng.random((n_random, k)) < 0.5) if 0 < s.sum() < k]
        for i, s in enumerate(subsets):
            v = xs[..., s].sum(-1)
            a_s = a[:, s].sum(-1)
            if family == "Dirichlet":
                ref = univariate_ref("Beta", {"concentration1": a_s,
                                              "concentration0": a.sum(-1) - a_s})
            else:
                total = np.full(m, float(p["total_count"]))
                ref = univariate_ref("Binomial", {"total_count": total, "probs": a_s})
            out.append(Projection(f"marginal{i}" if i < k else f"subset{i - k}", v, ref))
        return out
    if family == "RelaxedOneHotCategorical":
        t = _flat(p["temperature"], batch_shape)
        probs = np.broadcast_to(p["probs"], batch_shape + p["probs"].shape[-1:]).reshape(m, -1)
        lp = np.log(probs)
        k = probs.shape[-1]
        xs = np.log(x.reshape(n, m, k))
        for i in range(k - 1):
            v = t * (xs[..., i] - xs[..., k - 1]) - (lp[:, i] - lp[:, k - 1])
            out.append(Projection(f"logratio{i}", v,
                                  UniRef("", False, {}, stats.logistic(np.zeros(m), np.ones(m)))))
        return out
    if family == "LKJCholesky":
        dim = int(np.asarray(p["dim"]))
        eta = _flat(p["concentration"], batch_shape)
        ls = x.reshape(n, m, dim, dim)
        corr = ls @ np.swapaxes(ls, -1, -2)
        b = eta - 1 + dim / 2
        for i in range(dim):
            for j in range(i):
                v = (corr[..., i, j] + 1) / 2
                out.append(Projection(f"corr{i}{j}", v, UniRef("", False, {},
                                                               stats.beta(b, b))))
        return out
    raise KeyError(family)


def _inverse_stick_breaking(y: Arr) -> Arr:
    """Inverse of torch's ``StickBreakingTransform`` (float64)."""
    k = y.shape[-1] - 1
    rest = 1 - np.cumsum(y[..., :-1], axis=-1) + y[..., :-1]
    z = y[..., :-1] / rest
    offset = k + 1 - np.arange(1, k + 1, dtype=np.float64)
    return special.logit(z) + np.log(offset)


def reference_logpdf(family: str, p: Mapping[str, Arr], value: Arr) -> Arr | None:
    """SciPy's log density (log mass) of ``value`` (shape ``batch + event``), or None."""
    if family in _UNI:
        law = _UNI[family][1](p)
        return law.logpmf(value) if _UNI[family][0] else law.logpdf(value)
    if family == "Categorical":
        return _Categorical(p["probs"]).logpmf(value)
    if family == "MultivariateNormal":
        cov = p["scale_tril"] @ np.swapaxes(p["scale_tril"], -1, -2)
        return _mvn_logpdf(value, p["loc"], cov)
    if family == "LowRankMultivariateNormal":
        w = p["cov_factor"]
        cov = w @ np.swapaxes(w, -1, -2) + p["cov_diag"][..., None] * np.eye(w.shape[-2])
        return _mvn_logpdf(value, p["loc"], cov)
    if family == "Dirichlet":
        a = np.broadcast_to(p["concentration"], value.shape)
        # A float32 draw sums to 1 only to float32 rounding; SciPy demands the simplex to 1e-10.
        value = value / value.sum(-1, keepdims=True)
        return np.array([stats.dirichlet.logpdf(v, aa) for v, aa in
                         zip(value.reshape(-1, value.shape[-1]), a.reshape(-1, a.shape[-1]))]
                        ).reshape(value.shape[:-1])
    if family == "Multinomial":
        probs = np.broadcast_to(p["probs"], value.shape)
        probs = probs / probs.sum(-1, keepdims=True)
        return stats.multinomial.logpmf(value, int(p["total_count"]), probs)
    if family == "Wishart":
        k = value.shape[-1]
        cov = p["scale_tril"] @ np.swapaxes(p["scale_tril"], -1, -2)
        cov = np.broadcast_to(cov, value.shape)
        df = np.broadcast_to(p["df"], value.shape[:-2])
        return np.array([stats.wishart.logpdf(v, df=d, scale=c) for v, d, c in
                         zip(value.reshape(-1, k, k), df.reshape(-1), cov.reshape(-1, k, k))]
                        ).reshape(value.shape[:-2])
    return None


def _mvn_logpdf(value: Arr, loc: Arr, cov: Arr) -> Arr:
    shape = np.broadcast_shapes(value.shape, loc.shape, cov.shape[:-1])
    v = np.broadcast_to(value, shape).reshape(-1, shape[-1])
    mu = np.broadcast_to(loc, shape).reshape(-1, shape[-1])
    c = np.broadcast_to(cov, shape + shape[-1:]).reshape(-1, shape[-1], shape[-1])
    return np.array([stats.multivariate_normal.logpdf(a, b, s) for a, b, s in zip(v, mu, c)]
                    ).reshape(shape[:-1])
