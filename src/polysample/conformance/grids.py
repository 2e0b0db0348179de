"""Parameter sets for every family: example parameters used by the checks and tests.

``example_params(family, batch_shape, dtype)`` returns constructor keyword arguments for
``polysample.<family>`` with the given batch shape: a typical, well-conditioned point of the
parameter space, deterministic (no randomness), differentiable leaves where the family has
floating parameters (``requires_grad`` is left to the caller: see :func:`grad_leaves`).
"""

from __future__ import annotations

from typing import Any

import torch

from ..core.families import FAMILIES

__all__ = ["example_params", "grad_leaves"]


def _lin(lo: float, hi: float, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    """Deterministic values spread over [lo, hi] filling ``shape`` (a constant when shape is ())."""
    n = 1
    for d in shape:
        n *= d
    if n == 1:
        return torch.full(shape, (lo + hi) / 2, dtype=dtype)
    return torch.linspace(lo, hi, n, dtype=dtype).reshape(shape)


def example_params(
    family: str, batch_shape: tuple[int, ...] = (), dtype: torch.dtype = torch.float32, k: int = 3
) -> dict[str, Any]:
    """Constructor kwargs for ``family`` with ``batch_shape``; ``k`` is the event size."""
    b = tuple(batch_shape)
    L = lambda lo, hi, shape=b: _lin(lo, hi, shape, dtype)  # noqa: E731
    bk = b + (k,)
    if family in ("Normal", "Cauchy", "Laplace", "Gumbel", "LogNormal"):
        return {"loc": L(-0.5, 0.5), "scale": L(0.5, 2.0)}
    if family in ("HalfNormal", "HalfCauchy"):
        return {"scale": L(0.5, 2.0)}
    if family == "Uniform":
        return {"low": L(-1.0, 0.0), "high": L(1.0, 3.0)}
    if family in ("Exponential", "Poisson"):
        return {"rate": L(0.5, 3.0)}
    if family in ("Gamma", "InverseGamma"):
        return {"concentration": L(0.7, 4.0), "rate": L(0.5, 2.0)}
    if family == "Chi2":
        return {"df": L(1.5, 6.0)}
    if family in ("Beta", "Kumaraswamy"):
        return {"concentration1": L(0.8, 3.0), "concentration0": L(1.2, 2.5)}
    if family == "Dirichlet":
        return {"concentration": _lin(0.6, 3.0, bk, dtype)}
    if family == "StudentT":
        return {"df": L(2.5, 8.0), "loc": L(-0.5, 0.5), "scale": L(0.5, 2.0)}
    if family == "FisherSnedecor":
        return {"df1": L(3.0, 8.0), "df2": L(5.0, 12.0)}
    if family == "Weibull":
        return {"scale": L(0.5, 2.0), "concentration": L(0.8, 3.0)}
    if family == "Pareto":
        return {"scale": L(0.5, 2.0), "alpha": L(2.5, 5.0)}
    if family == "GeneralizedPareto":
        return {"loc": L(-0.5, 0.5), "scale": L(0.5, 2.0), "concentration": L(-0.2, 0.3)}
    if family == "VonMises":
        return {"loc": L(-1.0, 1.0), "concentration": L(0.5, 4.0)}
    if family in ("Bernoulli", "Geometric", "ContinuousBernoulli"):
        return {"probs": L(0.2, 0.7)}
    if family == "Binomial":
        return {"total_count": L(5.0, 20.0).round(), "probs": L(0.2, 0.7)}
    if family == "NegativeBinomial":
        return {"total_count": L(2.0, 8.0), "probs": L(0.2, 0.6)}
    if family in ("Categorical", "OneHotCategorical", "OneHotCategoricalStraightThrough"):
        p = _lin(1.0, 3.0, bk, dtype)
        return {"probs": p / p.sum(-1, keepdim=True)}
    if family == "Multinomial":
        p = _lin(1.0, 3.0, bk, dtype)
        return {"total_count": 10, "probs": p / p.sum(-1, keepdim=True)}
    if family == "RelaxedBernoulli":
        return {"temperature": torch.tensor(0.5, dtype=dtype), "probs": L(0.2, 0.7)}
    if family == "RelaxedOneHotCategorical":
        p = _lin(1.0, 3.0, bk, dtype)
        return {"temperature": torch.tensor(0.5, dtype=dtype), "probs": p / p.sum(-1, keepdim=True)}
    if family == "LogisticNormal":
        return {"loc": _lin(-0.5, 0.5, bk, dtype), "scale": _lin(0.5, 1.5, bk, dtype)}
    if family == "MultivariateNormal":
        tril = torch.eye(k, dtype=dtype) + 0.3 * torch.tril(torch.ones(k, k, dtype=dtype), -1)
        return {"loc": _lin(-0.5, 0.5, bk, dtype), "scale_tril": tril.expand(b + (k, k)).clone()}
    if family == "LowRankMultivariateNormal":
        return {
            "loc": _lin(-0.5, 0.5, bk, dtype),
            "cov_factor": _lin(-0.5, 0.5, bk + (2,), dtype),
            "cov_diag": _lin(0.5, 1.5, bk, dtype),
        }
    if family == "Wishart":
        tril = torch.eye(k, dtype=dtype) + 0.2 * torch.tril(torch.ones(k, k, dtype=dtype), -1)
        return {"df": L(k + 2.0, k + 5.0), "scale_tril": tril.expand(b + (k, k)).clone()}
    if family == "LKJCholesky":
        return {"dim": k, "concentration": L(0.5, 2.0)}
    raise KeyError(f"no example parameters for {family!r}")


def grad_leaves(family: str, params: dict[str, Any]) -> dict[str, torch.Tensor]:
    """Make the floating parameters of ``params`` differentiable leaves (in place); return them.

    ``probs`` of the relaxed families and ``OneHotCategoricalStraightThrough`` are included;
    integer-valued parameters (Binomial ``total_count``, ``dim``) are not.
    """
    spec = FAMILIES[family]
    leaves = {}
    for name, value in params.items():
        if name in spec.integer_params or not isinstance(value, torch.Tensor):
            continue
        if family == "Binomial" and name == "total_count":
            continue
        leaf = value.detach().clone().requires_grad_(True)
        params[name] = leaf
        leaves[name] = leaf
    return leaves

