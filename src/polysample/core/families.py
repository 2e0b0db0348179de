"""The families table: every family of ``torch.distributions`` that polysample routes.

Each :class:`FamilySpec` records torch's name, the canonical parameters the core hands to a
backend (torch's attribute names, already validated and broadcast by the torch constructor),
the event rank of its values and of each parameter, whether values are integer-like, and whether
torch reparameterizes it.
Alternative parameterizations are folded into one canonical set: ``probs`` *and* ``logits`` for
the probability families (backends pick whichever suits them; both are differentiable torch
views of one parameter), ``scale_tril`` for the multivariate normals and Wishart.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["FamilySpec", "FAMILIES", "COMBINATORS", "family_spec"]


@dataclass(frozen=True)
class FamilySpec:
    """Static facts about one family, independent of any backend.

    Attributes:
        name: torch's class name, e.g. ``"Normal"``.
        params: canonical parameter names passed to ``Backend.sample`` (torch attribute names).
        event_dim: number of event dimensions (0 for univariate families).
        kind: ``"continuous"``, ``"discrete"`` (float-valued counts) or ``"index"`` (int64).
        reparameterized: torch's own ``has_rsample`` for this family.
        integer_params: parameters that are Python ints rather than tensors.
        param_event_dims: aligned with ``params``: how many trailing dimensions of each parameter
            belong to one batch element (its own event shape: 1 for ``Dirichlet``'s
            ``concentration``, 2 for ``MultivariateNormal``'s ``scale_tril``) rather than to the
            batch shape. The batch shape is the broadcast of every tensor parameter's leading
            dimensions. A parameter with fewer dimensions than its rank broadcasts there too:
            ``RelaxedOneHotCategorical``'s ``temperature`` has rank 1 because torch divides
            ``logits + gumbels`` by it, so its last dimension (size 1 when given) lines up with
            the event; a scalar temperature is rank 1 with an implicit event shape ``(1,)``.
            Empty (the default) means 0 for every parameter.
    """

    name: str
    params: tuple[str, ...]
    event_dim: int = 0
    kind: Literal["continuous", "discrete", "index"] = "continuous"
    reparameterized: bool = True
    integer_params: tuple[str, ...] = ()
    param_event_dims: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if not self.param_event_dims:
            object.__setattr__(self, "param_event_dims", (0,) * len(self.params))
        elif len(self.param_event_dims) != len(self.params):  # pragma: no cover - table typo
            raise ValueError(f"{self.name}: param_event_dims {self.param_event_dims} is not "
                             f"aligned with params {self.params}")

    def param_event_dim(self, name: str) -> int:
        """The event rank of parameter ``name`` (see ``param_event_dims``)."""
        return self.param_event_dims[self.params.index(name)]

    @property
    def univariate(self) -> bool:
        return self.event_dim == 0

    @property
    def tensor_params(self) -> tuple[str, ...]:
        return tuple(p for p in self.params if p not in self.integer_params)


_P = ("probs", "logits")


def _f(*args, **kwargs) -> FamilySpec:
    return FamilySpec(*args, **kwargs)


_SPECS = [
    _f("Bernoulli", _P, kind="discrete", reparameterized=False),
    _f("Beta", ("concentration1", "concentration0")),
    _f("Binomial", ("total_count",) + _P, kind="discrete", reparameterized=False),
    _f("Categorical", _P, kind="index", reparameterized=False, param_event_dims=(1, 1)),
    _f("Cauchy", ("loc", "scale")),
    _f("Chi2", ("df",)),
    _f("ContinuousBernoulli", _P),
    _f("Dirichlet", ("concentration",), event_dim=1, param_event_dims=(1,)),
    _f("Exponential", ("rate",)),
    _f("FisherSnedecor", ("df1", "df2")),
    _f("Gamma", ("concentration", "rate")),
    _f("GeneralizedPareto", ("loc", "scale", "concentration")),
    _f("Geometric", _P, kind="discrete", reparameterized=False),
    _f("Gumbel", ("loc", "scale")),
    _f("HalfCauchy", ("scale",)),
    _f("HalfNormal", ("scale",)),
    _f("InverseGamma", ("concentration", "rate")),
    _f("Kumaraswamy", ("concentration1", "concentration0")),
    _f("LKJCholesky", ("dim", "concentration"), event_dim=2, reparameterized=False,
       integer_params=("dim",)),
    _f("Laplace", ("loc", "scale")),
    _f("LogNormal", ("loc", "scale")),
    _f("LogisticNormal", ("loc", "scale"), event_dim=1, param_event_dims=(1, 1)),
    _f("LowRankMultivariateNormal", ("loc", "cov_factor", "cov_diag"), event_dim=1,
       param_event_dims=(1, 2, 1)),
    _f("Multinomial", ("total_count",) + _P, event_dim=1, kind="discrete",
       reparameterized=False, integer_params=("total_count",), param_event_dims=(0, 1, 1)),
    _f("MultivariateNormal", ("loc", "scale_tril"), event_dim=1, param_event_dims=(1, 2)),
    _f("NegativeBinomial", ("total_count",) + _P, kind="discrete", reparameterized=False),
    _f("Normal", ("loc", "scale")),
    _f("OneHotCategorical", _P, event_dim=1, kind="discrete", reparameterized=False,
       param_event_dims=(1, 1)),
    _f("OneHotCategoricalStraightThrough", _P, event_dim=1, kind="discrete",
       param_event_dims=(1, 1)),
    _f("Pareto", ("scale", "alpha")),
    _f("Poisson", ("rate",), kind="discrete", reparameterized=False),
    _f("RelaxedBernoulli", ("temperature",) + _P),
    _f("RelaxedOneHotCategorical", ("temperature",) + _P, event_dim=1,
       param_event_dims=(1, 1, 1)),
    _f("StudentT", ("df", "loc", "scale")),
    _f("Uniform", ("low", "high")),
    _f("VonMises", ("loc", "concentration"), reparameterized=False),
    _f("Weibull", ("scale", "concentration")),
    _f("Wishart", ("df", "scale_tril"), event_dim=2, param_event_dims=(0, 2)),
]

#: Every base family, keyed by torch's class name.
FAMILIES: dict[str, FamilySpec] = {s.name: s for s in _SPECS}

#: Distributions built in the core on top of the base families; they work on every backend.
COMBINATORS: tuple[str, ...] = ("Independent", "TransformedDistribution", "MixtureSameFamily")


def family_spec(name: str) -> FamilySpec:
    """The spec of a base family; raises ``UnsupportedFamilyError`` listing the known ones."""
    from .errors import UnsupportedFamilyError

    try:
        return FAMILIES[name]
    except KeyError:
        raise UnsupportedFamilyError(
            f"Unknown family {name!r}. Expected one of the torch.distributions families: "
            f"{', '.join(sorted(FAMILIES))}."
        ) from None
