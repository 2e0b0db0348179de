"""Scoring: ``log_prob`` from SciPy's density, with gradients from analytic derivatives.

SciPy evaluates ``logpdf``/``logpmf`` of the family's law (:data:`polysample_scipy.draws.LAWS`,
the same translation of torch's parameters that ``sample`` uses) in float64. SciPy has no
gradients, so :class:`ScipyLogProb` is a ``torch.autograd.Function`` whose backward multiplies
the incoming gradient by the derivatives of the log density written out in torch
(:data:`SCORES`): with respect to the value (continuous families) and to every parameter the
family's formula is differentiable in. polysample's core refuses a ``log_prob`` that carries no
gradient to a parameter that requires one (``BackendContractError``), so a family is scored
here only when all its derivatives are written; the others are scored by torch.

The backward pass is itself differentiable: the derivatives are torch operations on the saved
inputs, so second derivatives (``create_graph=True``, ``torch.autograd.functional.hessian``)
are torch's autograd of the analytic first derivatives, equal to torch's own. (Marked
``once_differentiable``, they were silently 0: the Hessian of ``Normal(loc, 1).log_prob`` of
two values in ``loc`` was 0 where it is -2.)

The probability families (Bernoulli, Binomial, Geometric, NegativeBinomial, the categorical
ones, Multinomial) are scored by torch: SciPy's ``logpmf`` takes probabilities, and a
distribution given ``logits`` has probabilities that round to 0 or 1 where the logits are
large (``Bernoulli(logits=17.)`` in float32 has ``probs`` 1.0: SciPy scored the value 0 as
``-inf``, with a NaN gradient, where it is -17), while torch scores from the logits.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import digamma

from polysample.plugin import Params

from .draws import LAWS, PER_POINT, Args

__all__ = ["SCORES", "ScipyLogProb", "log_prob", "scipy_log_density"]

Grads = Callable[..., dict[str, torch.Tensor]]


# ============================================================== SciPy's density
def _points(family: str, p: Params, x: np.ndarray) -> np.ndarray:
    """The log density of a law SciPy defines for one parameter point, point by point."""
    batch, event = tuple(p.batch_shape), tuple(p.event_shape)
    x = np.broadcast_to(x, np.broadcast_shapes(x.shape, batch + event))
    lead = x.shape[:x.ndim - len(batch) - len(event)]
    s, m = math.prod(lead), math.prod(batch)
    xs = x.reshape((s, m) + event)
    args = Args(p)
    out = np.empty((s, m))
    for j in range(m):
        law, xj = LAWS[family](args.point(j)), xs[:, j]
        if family == "Dirichlet":
            # SciPy wants the components first and the simplex to 1e-10 (a float32 value sums
            # to 1 only to 1e-7).
            xj = (xj / xj.sum(-1, keepdims=True)).T
        elif family == "Wishart":
            xj = np.moveaxis(xj, 0, -1)  # SciPy stacks matrices along the last axis
        out[:, j] = np.asarray(law.logpdf(xj)).reshape(s)
    return out.reshape(lead + batch)


def scipy_log_density(family: str, p: Params, value: torch.Tensor) -> np.ndarray:
    """SciPy's log density (log mass for discrete families) at ``value``, in float64, of shape
    ``sample_shape + batch_shape`` (the broadcast of the value's batch dimensions). Where SciPy
    refuses values that torch scores (a Dirichlet point with a zero component where its
    concentration is below 1: torch says ``+inf``; a matrix that is not positive definite,
    given to Wishart with ``validate_args=False``), torch's formula scores the call: a
    backend's raw ``ValueError`` or ``LinAlgError`` would reach the user."""
    try:
        return _scipy_log_density(family, p, value)
    except (ValueError, np.linalg.LinAlgError):
        torch_law = getattr(torch.distributions, family)(
            **{k: v.detach().double() if isinstance(v, torch.Tensor) and v.is_floating_point()
               else v for k, v in p.items()}, validate_args=False)
        v = value.detach().double() if value.is_floating_point() else value.detach()
        return torch_law.log_prob(v).cpu().numpy()


def _scipy_log_density(family: str, p: Params, value: torch.Tensor) -> np.ndarray:
    x = value.detach().to("cpu", torch.float64).numpy()
    if family in PER_POINT:
        return _points(family, p, x)
    event = len(p.event_shape)
    shape = np.broadcast_shapes(x.shape[:x.ndim - event], tuple(p.batch_shape))
    if family == "Categorical":
        k = p["probs"].shape[-1]
        x = np.eye(k)[value.detach().cpu().long().numpy()]  # index -> one-hot
    law = LAWS[family](Args(p))
    out = law.logpdf(x) if p.spec.kind == "continuous" else law.logpmf(x)
    return np.asarray(out).reshape(shape)


# --8<-- [start:function]
class ScipyLogProb(torch.autograd.Function):
    """``log_prob`` of ``family`` at ``value``: SciPy's float64 density forward, the analytic
    derivatives of :data:`SCORES` backward (to the value and to each listed parameter)."""

    @staticmethod
    def forward(ctx: Any, family: str, p: Params, value: torch.Tensor,  # type: ignore[override]
                *params: torch.Tensor) -> torch.Tensor:
        ctx.family, ctx.p = family, p
        ctx.save_for_backward(value, *params)
        dtype = torch.promote_types(value.dtype, p.float_dtype) if value.is_floating_point() \
            else p.float_dtype
        out = scipy_log_density(family, p, value)
        return torch.as_tensor(out, dtype=dtype, device=p.device)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:  # type: ignore[override]
        # Not once_differentiable: with create_graph=True autograd records these torch
        # operations on the saved inputs, so the gradient is differentiable again (Hessians).
        value, *params = ctx.saved_tensors
        names, derivatives = SCORES[ctx.family]
        partials = derivatives(value.double(), *(t.double() for t in params))
        inputs = [("value", value, len(ctx.p.event_shape))] + [
            (name, t, t.dim() - len(ctx.p.batch_shape)) for name, t in zip(names, params)]
        out: list[torch.Tensor | None] = [None, None]  # family, p
        for i, (name, t, event_dims) in enumerate(inputs):
            d = partials.get(name)
            if d is None or not ctx.needs_input_grad[i + 2]:
                out.append(None)
                continue
            # log_prob has shape sample + batch; a parameter's event dimensions trail it.
            g = grad.double().reshape(grad.shape + (1,) * event_dims)
            out.append((d * g).sum_to_size(t.shape).to(t.dtype))
        return tuple(out)


def log_prob(family: str) -> Callable[[Params, torch.Tensor], torch.Tensor]:
    """The ``Row.log_prob`` of ``family``: ``log_prob(params, value)``."""
    names = SCORES[family][0]

    def score(p: Params, value: torch.Tensor) -> torch.Tensor:
        return ScipyLogProb.apply(family, p, value, *(p[k] for k in names))
    return score
# --8<-- [end:function]


# ============================================================== derivatives
# Each function takes the value and the parameters (float64 tensors, torch's names, in the
# order of SCORES) and returns d log p / d(value, parameter). Broadcasting is undone by the
# Function. Discrete families have no derivative in the value.

# --8<-- [start:derivatives]
def _normal(x: torch.Tensor, loc: torch.Tensor, scale: torch.Tensor) -> dict[str, torch.Tensor]:
    z = (x - loc) / scale
    return {"value": -z / scale, "loc": z / scale, "scale": (z * z - 1) / scale}


def _gamma(x: torch.Tensor, a: torch.Tensor, rate: torch.Tensor) -> dict[str, torch.Tensor]:
    return {"value": (a - 1) / x - rate,
            "concentration": rate.log() + x.log() - digamma(a),
            "rate": a / rate - x}
# --8<-- [end:derivatives]


def _cauchy(x: torch.Tensor, loc: torch.Tensor, scale: torch.Tensor) -> dict[str, torch.Tensor]:
    z = (x - loc) / scale
    w = 2 * z / (scale * (1 + z * z))
    return {"value": -w, "loc": w, "scale": (z * z - 1) / (scale * (1 + z * z))}


def _laplace(x: torch.Tensor, loc: torch.Tensor, scale: torch.Tensor) -> dict[str, torch.Tensor]:
    z = (x - loc) / scale
    return {"value": -z.sign() / scale, "loc": z.sign() / scale, "scale": (z.abs() - 1) / scale}


def _gumbel(x: torch.Tensor, loc: torch.Tensor, scale: torch.Tensor) -> dict[str, torch.Tensor]:
    z = (x - loc) / scale
    e = torch.exp(-z)
    return {"value": (e - 1) / scale, "loc": (1 - e) / scale, "scale": (z * (1 - e) - 1) / scale}


def _half_normal(x: torch.Tensor, scale: torch.Tensor) -> dict[str, torch.Tensor]:
    z = x / scale
    return {"value": -z / scale, "scale": (z * z - 1) / scale}


def _half_cauchy(x: torch.Tensor, scale: torch.Tensor) -> dict[str, torch.Tensor]:
    z = x / scale
    return {"value": -2 * z / (scale * (1 + z * z)), "scale": (z * z - 1) / (scale * (1 + z * z))}


def _uniform(x: torch.Tensor, low: torch.Tensor, high: torch.Tensor) -> dict[str, torch.Tensor]:
    inv = (high - low).reciprocal().expand(torch.broadcast_shapes(x.shape, low.shape))
    return {"value": torch.zeros_like(inv), "low": inv, "high": -inv}


def _exponential(x: torch.Tensor, rate: torch.Tensor) -> dict[str, torch.Tensor]:
    return {"value": -rate.expand_as(x + rate), "rate": rate.reciprocal() - x}


def _lognormal(x: torch.Tensor, loc: torch.Tensor, scale: torch.Tensor) -> dict[str, torch.Tensor]:
    z = (x.log() - loc) / scale
    return {"value": -(1 + z / scale) / x, "loc": z / scale, "scale": (z * z - 1) / scale}


def _weibull(x: torch.Tensor, scale: torch.Tensor, k: torch.Tensor) -> dict[str, torch.Tensor]:
    log_t = x.log() - scale.log()
    tk = (k * log_t).exp()
    return {"value": (k - 1 - k * tk) / x, "scale": k * (tk - 1) / scale,
            "concentration": k.reciprocal() + log_t * (1 - tk)}


def _pareto(x: torch.Tensor, scale: torch.Tensor, alpha: torch.Tensor) -> dict[str, torch.Tensor]:
    return {"value": -(alpha + 1) / x, "scale": (alpha / scale).expand_as(x + scale),
            "alpha": alpha.reciprocal() + scale.log() - x.log()}


def _generalized_pareto(x: torch.Tensor, loc: torch.Tensor, scale: torch.Tensor,
                        xi: torch.Tensor) -> dict[str, torch.Tensor]:
    z = (x - loc) / scale
    dz = -(1 + xi) / (1 + xi * z)  # d log p / dz
    # d/dxi of -(1 + 1/xi) log1p(xi z): log1p(xi z)/xi^2 - (1 + 1/xi) z/(1 + xi z); its series
    # z^2/2 - z + xi (z^2 - 2 z^3/3) near xi = 0, where the exact form cancels.
    small = xi.abs() < 1e-6
    safe = torch.where(small, torch.ones_like(xi), xi)
    exact = torch.log1p(safe * z) / safe ** 2 - (1 + 1 / safe) * z / (1 + safe * z)
    series = z * z / 2 - z + xi * (z * z - 2 * z ** 3 / 3)
    return {"value": dz / scale, "loc": -dz / scale, "scale": -(1 + dz * z) / scale,
            "concentration": torch.where(small, series, exact)}


def _chi2(x: torch.Tensor, df: torch.Tensor) -> dict[str, torch.Tensor]:
    return {"value": (df / 2 - 1) / x - 0.5,
            "df": 0.5 * (x.log() - math.log(2.0) - digamma(df / 2))}


def _inverse_gamma(x: torch.Tensor, a: torch.Tensor, rate: torch.Tensor
                   ) -> dict[str, torch.Tensor]:
    return {"value": -(a + 1) / x + rate / (x * x),
            "concentration": rate.log() - x.log() - digamma(a),
            "rate": a / rate - x.reciprocal()}


def _student_t(x: torch.Tensor, df: torch.Tensor, loc: torch.Tensor, scale: torch.Tensor
               ) -> dict[str, torch.Tensor]:
    z = (x - loc) / scale
    q = 1 + z * z / df
    dz = -(df + 1) * z / (df * q)
    ddf = (0.5 * (digamma((df + 1) / 2) - digamma(df / 2)) - 0.5 / df - 0.5 * q.log()
           + (df + 1) * z * z / (2 * df * df * q))
    return {"value": dz / scale, "loc": -dz / scale, "scale": -(1 + dz * z) / scale, "df": ddf}


def _fisher_snedecor(x: torch.Tensor, d1: torch.Tensor, d2: torch.Tensor
                     ) -> dict[str, torch.Tensor]:
    u = d2 + d1 * x
    half_sum = digamma((d1 + d2) / 2)
    return {
        "value": (d1 / 2 - 1) / x - (d1 + d2) * d1 / (2 * u),
        "df1": 0.5 * (d1.log() + 1 + x.log() - u.log() - (d1 + d2) * x / u
                      - digamma(d1 / 2) + half_sum),
        "df2": 0.5 * (d2.log() + 1 - u.log() - (d1 + d2) / u - digamma(d2 / 2) + half_sum),
    }


def _beta(x: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> dict[str, torch.Tensor]:
    both = digamma(a + b)
    return {"value": (a - 1) / x - (b - 1) / (1 - x),
            "concentration1": x.log() - digamma(a) + both,
            "concentration0": torch.log1p(-x) - digamma(b) + both}


def _von_mises(x: torch.Tensor, loc: torch.Tensor, kappa: torch.Tensor
               ) -> dict[str, torch.Tensor]:
    d = x - loc
    # d/dkappa log I0(kappa) = I1(kappa) / I0(kappa), from the scaled Bessel functions.
    ratio = torch.special.i1e(kappa) / torch.special.i0e(kappa)
    return {"value": -kappa * d.sin(), "loc": kappa * d.sin(), "concentration": d.cos() - ratio}


def _poisson(x: torch.Tensor, rate: torch.Tensor) -> dict[str, torch.Tensor]:
    return {"rate": x / rate - 1}


def _dirichlet(x: torch.Tensor, alpha: torch.Tensor) -> dict[str, torch.Tensor]:
    return {"value": (alpha - 1) / x,
            "concentration": x.log() - digamma(alpha) + digamma(alpha.sum(-1, keepdim=True))}


def _mvn(x: torch.Tensor, loc: torch.Tensor, tril: torch.Tensor) -> dict[str, torch.Tensor]:
    # log p = -sum log L_ii - |z|^2 / 2 + const with z = L^-1 (x - loc); w = L^-T z.
    z = torch.linalg.solve_triangular(tril, (x - loc).unsqueeze(-1), upper=False)
    w = torch.linalg.solve_triangular(tril.transpose(-1, -2), z, upper=True)
    inv_diag = torch.diag_embed(tril.diagonal(dim1=-2, dim2=-1).reciprocal())
    w, z = w.squeeze(-1), z.squeeze(-1)
    return {"value": -w, "loc": w,
            "scale_tril": (w.unsqueeze(-1) * z.unsqueeze(-2)).tril() - inv_diag}


def _lowrank_mvn(x: torch.Tensor, loc: torch.Tensor, w: torch.Tensor, d: torch.Tensor
                 ) -> dict[str, torch.Tensor]:
    # d log p / d cov = (s s^T - cov^-1) / 2 with s = cov^-1 (x - loc), cov = W W^T + diag(d).
    cov = w @ w.transpose(-1, -2) + torch.diag_embed(d)
    inv = torch.cholesky_inverse(torch.linalg.cholesky(cov))
    s = (inv @ (x - loc).unsqueeze(-1)).squeeze(-1)
    g = 0.5 * (s.unsqueeze(-1) * s.unsqueeze(-2) - inv)
    return {"value": -s, "loc": s, "cov_factor": 2 * g @ w,
            "cov_diag": g.diagonal(dim1=-2, dim2=-1)}


def _wishart(x: torch.Tensor, df: torch.Tensor, tril: torch.Tensor) -> dict[str, torch.Tensor]:
    # log p = (df - p - 1)/2 log|X| - tr(S^-1 X)/2 - df (p/2 log 2 + sum log L_ii)
    #         - log Gamma_p(df / 2), with S = L L^T.
    p = x.shape[-1]
    s_inv = torch.cholesky_inverse(tril)
    log_diag = tril.diagonal(dim1=-2, dim2=-1).log().sum(-1)
    i = torch.arange(p, dtype=df.dtype, device=df.device)
    ddf = (0.5 * torch.linalg.slogdet(x).logabsdet - p / 2 * math.log(2.0) - log_diag
           - 0.5 * digamma((df.unsqueeze(-1) - i) / 2).sum(-1))
    a = s_inv @ (0.5 * (x + x.transpose(-1, -2))) @ s_inv  # (X + X^T)/2: as for X^-T below
    inv_diag = torch.diag_embed(tril.diagonal(dim1=-2, dim2=-1).reciprocal())
    # The derivatives of log|X| and tr(S^-1 X) for any square X (X^-T; S^-1 (X + X^T)/2 S^-1 L)
    # equal X^-1 and S^-1 X S^-1 L at a symmetric X, but only these have torch's second
    # derivatives in X (a Hessian-vector product differed in non-symmetric directions).
    x_inv_t = torch.linalg.inv(x).transpose(-1, -2)
    return {"value": (df[..., None, None] - p - 1) / 2 * x_inv_t - s_inv / 2,
            "df": ddf, "scale_tril": (a @ tril).tril() - df[..., None, None] * inv_diag}


# --8<-- [start:scores]
#: torch family -> (the parameters log_prob is differentiated in, their derivatives). A family
#: not listed is scored by torch (Row.log_prob = None).
SCORES: dict[str, tuple[tuple[str, ...], Grads]] = {
    "Normal": (("loc", "scale"), _normal),
    "Gamma": (("concentration", "rate"), _gamma),
    "Cauchy": (("loc", "scale"), _cauchy),
    "Laplace": (("loc", "scale"), _laplace),
    "Gumbel": (("loc", "scale"), _gumbel),
    "HalfNormal": (("scale",), _half_normal),
    "HalfCauchy": (("scale",), _half_cauchy),
    "Uniform": (("low", "high"), _uniform),
    "Exponential": (("rate",), _exponential),
    "LogNormal": (("loc", "scale"), _lognormal),
    "Weibull": (("scale", "concentration"), _weibull),
    "Pareto": (("scale", "alpha"), _pareto),
    "GeneralizedPareto": (("loc", "scale", "concentration"), _generalized_pareto),
    "Chi2": (("df",), _chi2),
    "InverseGamma": (("concentration", "rate"), _inverse_gamma),
    "StudentT": (("df", "loc", "scale"), _student_t),
    "FisherSnedecor": (("df1", "df2"), _fisher_snedecor),
    "Beta": (("concentration1", "concentration0"), _beta),
    "VonMises": (("loc", "concentration"), _von_mises),
    "Poisson": (("rate",), _poisson),
    "Dirichlet": (("concentration",), _dirichlet),
    "MultivariateNormal": (("loc", "scale_tril"), _mvn),
    "LowRankMultivariateNormal": (("loc", "cov_factor", "cov_diag"), _lowrank_mvn),
    "Wishart": (("df", "scale_tril"), _wishart),
}
# --8<-- [end:scores]
