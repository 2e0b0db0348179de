"""Parameter points of the suite: example parameters and the statistical grids.

``example_params(family, batch_shape, dtype)`` returns constructor keyword arguments for
``polysample.<family>`` with the given batch shape: a typical, well-conditioned point of the
parameter space, deterministic (no randomness). The statistical grids are ``typical`` (the
example point with batch shape (3,), spread over the bulk of the parameter space) and
``corners`` (concentrations from 1e-2 to 1e3, probabilities near 0 and 1, heavy tails, extreme
scales). Both come from the family table (:mod:`.cases`), and so does ``edges`` where a family
has one. ``float32`` is the typical grid drawn in float32 (``sample()`` only, sampler layer):
the suite's other grids are float64, and a backend wrong in float32 alone must fail too.
:func:`grid_points` names each grid point with its parameter values, as every report does.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

import torch

from ..core.backend import in_rsample_params
from ..core.families import FAMILIES
from .cases import CASES, sweep_params

__all__ = ["example_params", "grad_leaves", "Grid", "grids", "grid_points"]


def example_params(
    family: str, batch_shape: tuple[int, ...] = (), dtype: torch.dtype = torch.float32, k: int = 3
) -> dict[str, Any]:
    """Constructor kwargs for ``family`` with ``batch_shape``; ``k`` is the event size."""
    try:
        c = CASES[family]
    except KeyError:
        raise KeyError(f"no example parameters for {family!r}") from None
    return c.example(tuple(batch_shape), dtype, k)


def as_logits(family: str, params: dict[str, Any]) -> dict[str, Any]:
    """``params`` with ``probs`` given as ``logits`` where ``family`` takes either (Bernoulli,
    Categorical, the relaxed families, ...): the sampler layer draws the typical grid so, the
    other grids with ``probs``, and a backend is judged on both of torch's parameterizations
    (one that drew ``logits`` with the wrong sign passed every check: an outside trial). A
    probability vector's logits are its logs; a probability's, its log-odds."""
    spec = FAMILIES[family]
    probs = params.get("probs")
    if "logits" not in spec.params or not isinstance(probs, torch.Tensor):
        return params
    out = {k: v for k, v in params.items() if k != "probs"}
    out["logits"] = (probs.log() if spec.param_event_dim("probs") == 1
                     else torch.logit(probs))
    return out


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


def rsample_leaves(family: str, params: dict[str, Any],
                   allowed: Collection[str] | None) -> dict[str, torch.Tensor]:
    """:func:`grad_leaves` restricted to the parameters a backend reparameterizes
    (``FamilySupport.rsample_params``; None: all of them): the others are detached in
    ``params``, in place."""
    leaves = grad_leaves(family, params)
    if allowed is not None:
        for name in list(leaves):
            if not in_rsample_params(allowed, name):
                params[name] = params[name].detach()
                del leaves[name]
    return leaves


@dataclass(frozen=True)
class Grid:
    """A named, batched parameter set: one vectorised draw covers all its grid points.

    ``build(dtype)`` returns constructor kwargs for ``polysample.<family>``. Labels contain no
    ``-`` (check ids are ``<backend>-<family>-<grid>-<check>``). ``dtype`` is the dtype the
    sampler layer draws it in (None: float64, the suite's); ``layers`` the layers that judge it
    (None: every layer); ``methods`` the sampler methods drawn on it (None: ``sample`` and,
    where the backend has it, ``rsample``); ``rows_per_copy`` how the sampler lays its draw
    out (:func:`..runner.stacked_rows`): None, :data:`..runner.STACKED_COPIES` copies of the
    grid in the batch, each drawing ``n / STACKED_COPIES`` rows; a number, as many copies as
    give each that many rows (a wide batch: thousands of elements); ``deep`` whether those
    copies and the draw have three dimensions, the grid points along the first batch
    dimension (the corners grid: a backend wrong only for batches or sample shapes of three
    or more dimensions passed every two-dimensional draw).
    """

    label: str
    build: Callable[[torch.dtype], dict[str, Any]]
    dtype: torch.dtype | None = None
    layers: tuple[str, ...] | None = None
    methods: tuple[str, ...] | None = None
    rows_per_copy: int | None = None
    deep: bool = False

    def judged_by(self, layer: str) -> bool:
        return self.layers is None or layer in self.layers


def _flat_first(params: dict[str, Any]) -> dict[str, Any]:
    concentration = params["concentration"].clone()
    concentration[0] = 1.0
    return {**params, "concentration": concentration}


def _diagonal_first(params: dict[str, Any]) -> dict[str, Any]:
    tril = params["scale_tril"].clone()
    tril[0] = torch.diag(torch.diagonal(tril[0]))
    return {**params, "scale_tril": tril}


#: Typical grids whose first point is a special case a sampler may take a path of its own for
#: when a whole call has it: the flat Dirichlet (1, 1, 1) and a diagonal MultivariateNormal
#: ``scale_tril``. The sampler layer draws the first point alone in its one-value and small
#: calls (batch-level fast paths, normalised uniforms for the flat law and the diagonal read
#: as variances, passed while only the corners grid had such points, among others: an
#: outside trial).
TYPICAL_FIRST = {"Dirichlet": _flat_first, "MultivariateNormal": _diagonal_first}

_LOC_SCALE = {"loc": 0.0, "scale": 1.0}

#: Typical grids with a point at the family's standard law: ``family -> (point, values)``,
#: the parameters named set to those values at that point (a vector parameter to the value
#: in every component: ``probs = 1/3`` is the uniform law on 3 categories). Location 0 and
#: scale 1 (``N(0, 1)``, the standard Cauchy, ...), scale 1, rate 1 (with a shape parameter:
#: the standard Gamma of that shape), ``Uniform(0, 1)``, probabilities 1/2, uniform
#: categories, LKJ's concentration 1 (the uniform law on correlation matrices), Chi2's df 2
#: (the exponential law); the grids of Gamma, Weibull, Beta and Kumaraswamy already start at
#: concentrations of exactly 1, and VonMises' middle location is 0. A sampler may take a path
#: of its own for the standard law (a standard normal drawn as a sum of 12 uniforms minus 6
#: passed while no point was ``N(0, 1)``: an outside trial); ``scalar_ks`` draws it alone. Not
#: the first point, which the one-value and small calls draw alone: confusions the standard
#: law cannot show (a rate read as a scale, ``p`` for ``1 - p``, a scale read as a variance)
#: must show there.
TYPICAL_STANDARD: dict[str, tuple[int, dict[str, float]]] = {
    **{f: (1, _LOC_SCALE) for f in ("Normal", "Cauchy", "Laplace", "Gumbel", "LogNormal",
                                     "StudentT", "GeneralizedPareto")},
    **{f: (1, {"scale": 1.0}) for f in ("HalfNormal", "HalfCauchy", "Weibull", "Pareto")},
    **{f: (1, {"rate": 1.0}) for f in ("Exponential", "Gamma", "InverseGamma", "Poisson")},
    **{f: (1, {"probs": 0.5}) for f in ("Bernoulli", "Geometric", "Binomial",
                                         "NegativeBinomial")},
    **{f: (1, {"probs": 1.0 / 3.0}) for f in ("Categorical", "OneHotCategorical",
                                               "OneHotCategoricalStraightThrough",
                                               "Multinomial")},
    "Uniform": (2, {"low": 0.0, "high": 1.0}),  # (-1, 1), (-0.5, 2), (0, 1)
    "LKJCholesky": (1, {"concentration": 1.0}),
    "Chi2": (1, {"df": 2.0}),
}


def _standard(family: str, params: dict[str, Any]) -> dict[str, Any]:
    """``params`` with the family's standard law at its point (:data:`TYPICAL_STANDARD`)."""
    if family not in TYPICAL_STANDARD:
        return params
    point, values = TYPICAL_STANDARD[family]
    out = dict(params)
    for name, value in values.items():
        t = out[name].clone()
        t[point] = value
        out[name] = t
    return out


def grids(family: str) -> list[Grid]:
    """The statistical parameter grids of ``family``: ``typical`` and, where defined,
    ``corners`` and ``edges`` (issue 12's hard cases: sampler and agreement layers only), then
    ``float32``: the typical parameters in float32 at event size :data:`FLOAT32_EVENT_SIZE`
    (for the families that have one: dimension, categories), judged by the sampler layer's
    ``sample_*`` checks (whose draw has ``rsample()`` columns too where the backend has it).

    ``sweep`` (the univariate families): :data:`SWEEP_GRID_POINTS` points spread over the
    family's sweep ranges (:func:`..cases.sweep_params`), judged by the gradient layer
    (``grad_sweep``); the sampler layer's ``sample_sweep`` draws at many more points of the
    same ranges (``layers/sweep.py``).

    The float32 grid has a quarter of the typical grid's draws
    (:func:`..cases.sample_size`) and one method, so that a full run of the four built-in
    backends stays within :data:`..stats.MAX_STATISTICAL_CHECKS` (3,959 statistical checks
    besides the repeat checks, which share one place; 4,411 with ``rsample()`` on it too). The
    gradient layer judges the float32 grid too (its per-sample checks at a float32 tolerance,
    ``GRAD_RTOL_F32``), and the semantics layer checks float32 ``rsample()``'s dtype and shapes.
    """
    c = CASES[family]

    def typical(d: torch.dtype) -> dict[str, Any]:
        params = _standard(family, c.example((3,), d, 3))
        first = TYPICAL_FIRST.get(family)
        return params if first is None else first(params)

    out = [Grid("typical", typical)]
    if c.corners is not None:
        out.append(Grid("corners", c.corners, deep=True))
    if c.edges is not None:
        out.append(Grid("edges", c.edges, c.edges_dtype, ("sampler", "agreement")))

    def float32(d: torch.dtype) -> dict[str, Any]:
        return c.example((3,), d, FLOAT32_EVENT_SIZE)

    out.append(Grid("float32", float32, torch.float32, ("sampler", "gradient"), ("sample",),
                    WIDE_ROWS))
    if c.sweep is not None and c.law is not None:
        def sweep(d: torch.dtype) -> dict[str, Any]:
            return sweep_params(family, SWEEP_GRID_POINTS, d)

        out.append(Grid("sweep", sweep, layers=("gradient",)))
    return out


#: Points of the ``sweep`` grid (:func:`..cases.sweep_params`), judged by ``grad_sweep``: one
#: in each 1/32 of each swept parameter's range. The sampler layer's ``sample_sweep`` draws at
#: ``SWEEP_SIZES`` points of the same ranges instead (``layers/sweep.py``).
SWEEP_GRID_POINTS = 32


#: The event size (dimension, categories) of the float32 grid; every other grid has 3. A
#: multivariate sampler's defect above dimension 3 (a Cholesky factor read transposed, an
#: algorithm switched on for larger matrices) shows there.
FLOAT32_EVENT_SIZE = 5


#: Rows per batch element in the sampler's draw of the float32 grid: its ``n`` draws per point
#: come from ``n / 64`` identical copies of the grid, each drawing the sample shape
#: ``(32, 2)`` (a batch of 3,072 elements in quick mode for most families, 384 to 12,288 in
#: all; 3,072 to 49,152 in full mode), where the other grids draw 32 copies of many rows. A backend that takes another path for large batches
#: (a parallel path above a grain size, per-element parameters read from a buffer that wraps
#: around) is judged on it.
WIDE_ROWS = 64


#: Longest vector shown whole in a grid point; longer ones show their ends and their length.
_SHOWN = 8


def _fmt(v: Any) -> str:
    if isinstance(v, torch.Tensor):
        v = v.detach().cpu()
        if v.dim() == 0:
            x = v.item()
            return f"{x:.4g}" if isinstance(x, float) else str(x)
        if len(v) > _SHOWN:  # the 1e5 categories of the Categorical edges grid
            head = ", ".join(_fmt(e) for e in v[:3])
            return f"[{head}, ..., {_fmt(v[-1])}] ({len(v)} values)"
        return "[" + ", ".join(_fmt(e) for e in v) + "]"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def grid_points(family: str, params: dict[str, Any]) -> list[str]:
    """``"name=value, ..."`` for each grid point (flat batch element) of ``params``.

    A parameter whose leading dimensions are the batch shape keeps its trailing (event)
    dimensions, shown as nested lists; a scalar (or any parameter that broadcasts to the batch
    shape) is broadcast; a Python number is repeated. Parameters in another floating dtype
    than float64 (the suite's) are marked with it (``"loc=0, scale=1; float32"``): a
    probability of 1e-7 or a concentration of 0.01 is another case in float32.
    """
    with torch.no_grad():
        batch = tuple(getattr(torch.distributions, family)(**{
            k: (v.detach() if isinstance(v, torch.Tensor) else v) for k, v in params.items()},
            validate_args=False).batch_shape)
    m = 1
    for d in batch:
        m *= d
    cols: dict[str, list[Any]] = {}
    for name, value in params.items():
        if not isinstance(value, torch.Tensor):
            cols[name] = [value] * m
            continue
        v = value.detach()
        event: tuple[int, ...] = ()
        if v.dim() >= len(batch) and tuple(v.shape[:len(batch)]) == batch:
            event = tuple(v.shape[len(batch):])
        else:
            try:
                v = torch.broadcast_to(v, batch)
            except RuntimeError:  # not a batch parameter: show it whole at every point
                cols[name] = [v] * m
                continue
        cols[name] = list(v.reshape((m,) + event))
    floats = {v.dtype for v in params.values()
              if isinstance(v, torch.Tensor) and v.is_floating_point()}
    mark = "".join(f"; {str(d).removeprefix('torch.')}" for d in sorted(
        floats - {torch.float64}, key=str))
    return [", ".join(f"{k}={_fmt(vals[j])}" for k, vals in cols.items()) + mark
            for j in range(m)]
