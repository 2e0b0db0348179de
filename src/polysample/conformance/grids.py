"""Parameter sets for every family: example parameters used by the checks and tests.

``example_params(family, batch_shape, dtype)`` returns constructor keyword arguments for
``polysample.<family>`` with the given batch shape: a typical, well-conditioned point of the
parameter space, deterministic (no randomness), differentiable leaves where the family has
floating parameters (``requires_grad`` is left to the caller: see :func:`grad_leaves`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from ..core.families import FAMILIES

__all__ = ["example_params", "grad_leaves", "Grid", "grids"]


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



# ---------------------------------------------------------------------- statistical grids
@dataclass(frozen=True)
class Grid:
    """A named, batched parameter set: one vectorised draw covers all its batch elements.

    ``build(dtype)`` returns constructor kwargs for ``polysample.<family>``. Labels contain no
    ``-`` (check ids are ``<backend>-<family>-<grid>-<check>``).
    """

    label: str
    build: Callable[[torch.dtype], dict[str, Any]]


def _t(values: Any, dtype: torch.dtype) -> torch.Tensor:
    return torch.tensor(values, dtype=dtype)


def _norm_rows(rows: list[list[float]], dtype: torch.dtype) -> torch.Tensor:
    p = torch.tensor(rows, dtype=dtype)
    return p / p.sum(-1, keepdim=True)


def _corners(family: str) -> Callable[[torch.dtype], dict[str, Any]] | None:
    """The hard corners of ``family``'s parameter space, as one batch (None: none beyond typical)."""
    T = _t
    c: dict[str, Callable[[torch.dtype], dict[str, Any]]] = {
        "Normal": lambda d: {"loc": T([0.0, 1e3, -3.0], d), "scale": T([1e-3, 1.0, 1e3], d)},
        "Cauchy": lambda d: {"loc": T([0.0, 50.0, -3.0], d), "scale": T([1e-3, 1.0, 1e3], d)},
        "Laplace": lambda d: {"loc": T([0.0, 1e3, -3.0], d), "scale": T([1e-3, 1.0, 1e3], d)},
        "Gumbel": lambda d: {"loc": T([0.0, 1e3, -3.0], d), "scale": T([1e-3, 1.0, 1e3], d)},
        "LogNormal": lambda d: {"loc": T([-5.0, 0.0, 5.0], d), "scale": T([1e-2, 1.0, 3.0], d)},
        "HalfNormal": lambda d: {"scale": T([1e-3, 1.0, 1e3], d)},
        "HalfCauchy": lambda d: {"scale": T([1e-3, 1.0, 1e3], d)},
        "Uniform": lambda d: {"low": T([-1e3, 0.0, 5.0], d), "high": T([1e3, 1e-3, 5.5], d)},
        "Exponential": lambda d: {"rate": T([1e-3, 1.0, 1e3], d)},
        "Gamma": lambda d: {"concentration": T([1e-2, 0.1, 1.0, 30.0, 1e3], d),
                            "rate": T([1.0, 0.5, 2.0, 1e-2, 1e2], d)},
        "InverseGamma": lambda d: {"concentration": T([0.1, 1.0, 1e3], d),
                                   "rate": T([1.0, 5.0, 0.1], d)},
        "Chi2": lambda d: {"df": T([1e-2, 0.5, 1e3], d)},
        "Beta": lambda d: {"concentration1": T([1e-2, 0.1, 1e3, 1.0, 3.0], d),
                           "concentration0": T([1e-2, 5.0, 1e3, 1.0, 1e-2], d)},
        "Kumaraswamy": lambda d: {"concentration1": T([0.2, 1.0, 10.0], d),
                                  "concentration0": T([0.2, 5.0, 10.0], d)},
        "StudentT": lambda d: {"df": T([0.5, 1.0, 3.0, 1e3], d), "loc": T([0.0, 1.0, -2.0, 0.0], d),
                               "scale": T([1.0, 1e-3, 2.0, 1e3], d)},
        "FisherSnedecor": lambda d: {"df1": T([0.5, 5.0, 1e3], d), "df2": T([0.5, 10.0, 1e3], d)},
        "Weibull": lambda d: {"scale": T([1.0, 2.0, 0.5], d),
                              "concentration": T([0.1, 1.0, 20.0], d)},
        "Pareto": lambda d: {"scale": T([1.0, 1e-2, 10.0], d), "alpha": T([0.5, 3.0, 50.0], d)},
        "GeneralizedPareto": lambda d: {"loc": T([0.0, 1.0, -1.0], d),
                                        "scale": T([1.0, 1e-2, 10.0], d),
                                        "concentration": T([-0.4, 0.0, 0.8], d)},
        "VonMises": lambda d: {"loc": T([0.0, 3.0, -3.0], d),
                               "concentration": T([1e-2, 1.0, 100.0], d)},
        "ContinuousBernoulli": lambda d: {"probs": T([1e-3, 0.3, 0.999], d)},
        "RelaxedBernoulli": lambda d: {"temperature": T([0.5, 1.0, 3.0], d),
                                       "probs": T([0.05, 0.5, 0.95], d)},
        "Bernoulli": lambda d: {"probs": T([1e-4, 0.5, 0.9999], d)},
        "Geometric": lambda d: {"probs": T([1e-4, 0.5, 0.9999], d)},
        "Binomial": lambda d: {"total_count": T([1.0, 100.0, 1000.0], d),
                               "probs": T([1e-3, 0.5, 0.999], d)},
        "NegativeBinomial": lambda d: {"total_count": T([0.5, 5.0, 100.0], d),
                                       "probs": T([1e-3, 0.5, 0.99], d)},
        "Poisson": lambda d: {"rate": T([1e-3, 1.0, 1e3], d)},
        "Categorical": lambda d: {"probs": _norm_rows([[1e-4, 1.0, 1.0, 1.0],
                                                       [1.0, 1.0, 1.0, 1e3]], d)},
        "OneHotCategorical": lambda d: {"probs": _norm_rows([[1e-4, 1.0, 1.0, 1.0],
                                                             [1.0, 1.0, 1.0, 1e3]], d)},
        "OneHotCategoricalStraightThrough": lambda d: {"probs": _norm_rows(
            [[1e-4, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1e3]], d)},
        "Multinomial": lambda d: {"total_count": 1000, "probs": _norm_rows(
            [[1e-4, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1e3]], d)},
        "RelaxedOneHotCategorical": lambda d: {"temperature": torch.tensor(0.5, dtype=d),
                                               "probs": _norm_rows([[0.05, 1.0, 1.0],
                                                                    [1.0, 1.0, 20.0]], d)},
        "Dirichlet": lambda d: {"concentration": T([[1e-2, 1e-2, 1e-2], [0.1, 1.0, 10.0],
                                                    [1e3, 1e3, 1e3]], d)},
        "LogisticNormal": lambda d: {"loc": T([[0.0, -3.0], [2.0, 0.0]], d),
                                     "scale": T([[1e-2, 1.0], [3.0, 0.5]], d)},
        "MultivariateNormal": lambda d: {
            "loc": T([[0.0, 1e3, -3.0]], d),
            "scale_tril": T([[[1e-3, 0.0, 0.0], [0.5, 1.0, 0.0], [1e2, -3.0, 1e3]]], d)},
        "LowRankMultivariateNormal": lambda d: {
            "loc": T([[0.0, 10.0, -3.0]], d),
            "cov_factor": T([[[1e2], [1e-3], [1.0]]], d), "cov_diag": T([[1e-4, 1.0, 1e3]], d)},
        "Wishart": lambda d: {"df": T([3.5, 1e3], d),
                              "scale_tril": T([[[1.0, 0.0, 0.0], [0.5, 0.1, 0.0],
                                                [2.0, -1.0, 3.0]]], d).expand(2, 3, 3)},
        "LKJCholesky": lambda d: {"dim": 3, "concentration": T([0.1, 1.0, 100.0], d)},
    }
    return c.get(family)


def grids(family: str) -> list[Grid]:
    """The statistical parameter grids of ``family``: ``typical`` (a batch over the bulk of the
    parameter space) and ``corners`` (concentrations from 1e-2 to 1e3, probabilities near 0 and
    1, heavy tails, extreme scales)."""
    def typical(d: torch.dtype) -> dict[str, Any]:
        return example_params(family, (3,), d)

    out = [Grid("typical", typical)]
    corners = _corners(family)
    if corners is not None:
        out.append(Grid("corners", corners))
    return out
