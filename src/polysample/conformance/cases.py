"""What the suite knows about each family, in one table: adding a family is one entry.

Each :class:`Case` holds:

* ``example(batch_shape, dtype, k)``: a typical, well-conditioned parameter point (constructor
  keyword arguments) with the given batch shape and event size ``k``, deterministic;
* ``corners(dtype)``: the hard corners of the parameter space as one batch (or None);
* ``law(p)``: the independent reference (a SciPy frozen law, or a closed form of
  :mod:`.reference`) of a univariate family over a flat batch of canonical parameters;
* ``project(p, x, batch_shape, rng)``: for the other families, univariate statistics of a draw
  with a known law (projections, marginals, correlations);
* ``exact_sum(p, n)``: for discrete families, the exact law of a sum of ``n`` draws;
* ``logpdf(p, value)``: a reference density for families without a univariate law;
* ``moments(params)``: analytic ``E[x]`` and ``E[x^2]`` as differentiable torch functions
  (the mean-pathwise-gradient check), and ``noise(x, params)``: the parameter-free noise
  recovered from a draw (the noise-invariance gradient check);
* ``edges(dtype)``: the hard cases of issue 12 as a batch (or None), with ``edges_dtype``
  when they must be drawn in another dtype than the suite's float64 (float32 Binomial and
  Categorical: the defects they catch are float32 ones); judged by the sampler and agreement
  layers only;
* the sample-size class and a few flags (densities with simplex parameters (``probs``)
  cannot be ``gradcheck``-ed by finite differences, parameters with a positive domain).
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from scipy import stats

from ..core.families import FAMILIES
from . import reference as ref
from .reference import Projection, flat

__all__ = ["Case", "CASES", "case", "sample_size", "SAMPLE_SIZES", "reference_logpdf",
           "projections", "sweep_params", "sweep_groups", "swept_numbers", "sweep_key", "SWEEP_SIZES", "INT_SWEEP_LEVELS",
           "SWEEP_SIZES_MULTIVARIATE", "LOG", "LIN"]

Arr = np.ndarray
Params = dict[str, Any]


# ---------------------------------------------------------------------- sample sizes
#: Draws per grid point for the sampler checks: size class -> grid -> (quick, full).
#: Full mode keeps the sizes the design claims rest on (docs/conformance.md, "Power"): the
#: normal scores detect a 1% scale error (E zeta^2 - 1 = 0.0201) at n >= 4.6e5 and a location
#: shift of 1% of a standard deviation (E zeta = 0.01) at n >= 9.2e5 (miss rate 1e-3 at the
#: per-point alpha); quick mode the same claims at 2%, n >= 1.2e5 and 2.3e5. The corners grid
#: probes the edges of the parameter space with fewer draws in quick mode.
#: The edges grids (issue 12's hard cases) are sized for the defects they catch: the float32
#: Categorical's 1e-7 tails (P(x != 0) = 0.0119 instead of 0.0100) need n >= 2.4e5 for the
#: exact sum of the category-0 indicator at the per-point alpha and a miss rate of 1e-3 (quick
#: mode 2^18); the float32 Binomial(1e9, 0.3)'s +40% variance (K-S distance about 0.04) and
#: Dirichlet(1e-3)'s 3% uniform rows (K-S distance about 0.03) need about 2e4.
SAMPLE_SIZES: dict[str, dict[str, tuple[int, int]]] = {
    "continuous": {"typical": (1 << 18, 1 << 20), "corners": (1 << 15, 1 << 20)},
    # Cauchy: a 2% scale error moves E zeta^2 by 0.015 only (heavy tails compress the normal
    # scores), detected at n >= 8.7e5; 1% at 3.5e6. Its draws and CDF are cheap.
    "heavy": {"typical": (1 << 20, 1 << 22), "corners": (1 << 15, 1 << 20)},
    # Counts, corners at 2^18 in quick mode too. Binomial and Poisson: the corners (1000, 0.05)
    # and rate 40 are where a normal approximation (rounded, for n p (1 - p) > 25 or a rate
    # above 30) is tempting; the laws' skewness (0.13, 0.16) puts 2.2 and 2.4 times the
    # reference's draws beyond the 1/n-quantile only at n = 2^18 (tail count z 17.8 and 14.9
    # against a bound of 7.7; quick mode passed both at 2^15). The rare-event corners
    # (NegativeBinomial (0.5, 1e-3), mean 5e-4; Bernoulli 1e-4 and Geometric 0.9999, means
    # 1e-4) hold 16 and 3 non-zero draws at 2^15: a NegativeBinomial drawn with ceil(total_count),
    # twice the mean there, passed quick mode (its sum is 8.5 sd off at 2^18).
    "discrete": {"typical": (1 << 18, 1 << 20), "corners": (1 << 18, 1 << 18),
                 "edges": (1 << 18, 1 << 20)},
    # Categorical, OneHotCategorical(StraightThrough): the count of category i is
    # Binomial(n, p_i), and the typical grid's smallest probability is 4/15, where a 2% error
    # in it (p_i x 1.02, the others rescaled) moves the count by 0.02 sqrt(n p_i / (1 - p_i))
    # sd: 12.3 sd at n = 2^20 (the exact bound is 6.66 sd), 6.2 sd at 2^18 (missed more often
    # than not). Full mode: 1% at 2^22, the same 12.3 sd. design_assertions() checks it. The
    # draws are cheap (a quick run of the three families: 0.6-1.5 s per built-in backend at
    # 2^18).
    # The corners' 24 categories (_CORNER_PROBS) split each check's alpha over 8 times the
    # statistics of the 4 they once had, which grew the detectable discrepancies by 2-4%:
    # twice the draws (quick 2^16, full 2^19) bring them below what they were.
    "categorical": {"typical": (1 << 20, 1 << 22), "corners": (1 << 16, 1 << 19),
                    "edges": (1 << 18, 1 << 20)},
    # Multivariate: a location shift of 2% (1%) of the first coordinate's standard deviation
    # moves that axis's mean normal score by 0.02 (0.01), which the pit_mean test detects at
    # n >= 2.5e5 (1e6) with miss rate 1e-3 at its alpha (split over every axis and projection
    # of the grid): MultivariateNormal's +1% went undetected in full mode at 2^18.
    "multivariate": {"typical": (1 << 18, 1 << 20), "corners": (1 << 14, 1 << 18),
                     "edges": (1 << 15, 1 << 17)},
    "matrix": {"typical": (1 << 15, 1 << 18), "corners": (1 << 13, 1 << 18)},
    # Multinomial: the multivariate sizes, twice the corners' draws for their 24 categories
    # (as the categorical class).
    "multinomial": {"typical": (1 << 18, 1 << 20), "corners": (1 << 15, 1 << 19),
                    "edges": (1 << 15, 1 << 17)},
}


#: Draws of ``sample_sweep`` (quick, full): one at each of as many parameter points
#: (:func:`sweep_params`), judged in bands of each swept parameter's range (see
#: ``layers/sweep.py``, where the power is stated).
SWEEP_SIZES = (1 << 18, 1 << 20)
#: The same for the multivariate families, whose draws have many statistics each (a
#: MultivariateNormal 11, a Dirichlet 5): a quarter of the univariate sweep's points.
SWEEP_SIZES_MULTIVARIATE = (1 << 16, 1 << 18)
#: Whole values a swept parameter that torch takes as a Python number takes (Multinomial's
#: ``total_count``: one number for the whole batch): the sweep draws each value's points in a
#: call of their own (:func:`sweep_groups`).
INT_SWEEP_LEVELS = 8


@dataclass(frozen=True)
class Case:
    """What the conformance suite knows about one family (see the module docstring)."""

    family: str
    example: Callable[[tuple[int, ...], torch.dtype, int], Params]
    corners: Callable[[torch.dtype], Params] | None = None
    law: Callable[[Mapping[str, Arr]], Any] | None = None
    discrete: bool = False
    exact_sum: Callable[[Mapping[str, Arr], int], Any] | None = None
    project: Callable[[Mapping[str, Arr], Arr, tuple[int, ...], np.random.Generator],
                      list[Projection]] | None = None
    logpdf: Callable[[Mapping[str, Arr], Arr], Arr] | None = None
    moments: Callable[[Mapping[str, torch.Tensor]], tuple[torch.Tensor, torch.Tensor]] | None = None
    noise: Callable[[torch.Tensor, Mapping[str, torch.Tensor]], torch.Tensor] | None = None
    size: str = "continuous"
    gradcheck: bool = True
    positive: frozenset[str] = field(default_factory=frozenset)
    tiny: frozenset[str] = field(default_factory=frozenset)
    edges: Callable[[torch.dtype], Params] | None = None
    edges_dtype: torch.dtype | None = None
    #: an angle (VonMises): a huge float stands for no particular angle, so ``log_prob_huge``
    #: does not ask for one
    circular: bool = False
    #: the parameter ranges of the sweep (``sample_sweep``, ``grad_sweep``): each swept
    #: parameter's ``(low, high, log)``, the first one the sweep's order; the parameters not
    #: named keep their example values (see :func:`sweep_params`). A multivariate family's keys
    #: name elements of its vector and matrix parameters (``"concentration[0]"``,
    #: ``"scale_tril[1,0]"``: :func:`sweep_key`); its statistics are its ``project``'s.
    sweep: Mapping[str, tuple[float, float, bool]] | None = None
    #: parameters of location and scale (a draw is ``g(loc + scale * y)`` for a monotone ``g``
    #: and a ``y`` whose law is free of them: Normal's ``loc`` and ``scale``, Gamma's ``rate``):
    #: every valid pathwise gradient in them is fixed draw by draw, so ``grad_cdf`` and
    #: ``grad_sweep`` require the per-sample identity without the conditional-mean fallback,
    #: and ``grad_scalar`` judges them in a scalar-parameter call
    pathwise: frozenset[str] = field(default_factory=frozenset)

    @property
    def univariate(self) -> bool:
        return self.law is not None

    @property
    def gradient(self) -> str | None:
        """The pathwise-gradient check that applies: ``cdf``, ``noise``, ``mean`` or None."""
        if self.law is not None and not self.discrete and FAMILIES[self.family].kind == "continuous":
            return "cdf"
        if self.noise is not None:
            return "noise"
        if self.moments is not None:
            return "mean"
        return None

    @property
    def has_density(self) -> bool:
        return self.law is not None or self.logpdf is not None


def sample_size(family: str, grid: str, quick: bool) -> int:
    """Draws per grid point for the sampler checks of ``family`` on ``grid``.

    The ``float32`` grid (the typical parameters in float32) draws a quarter of the typical
    grid's: it is there to catch what goes wrong in float32 alone (at a Normal grid point a
    scale error of 2.7% in quick mode, 1.4% in full mode; a location shift of 3.7% and 1.9% of
    a standard deviation), the float64 grids the smaller errors of the sampler itself.
    """
    sizes = SAMPLE_SIZES[CASES[family].size]
    if grid == "float32":
        return sizes["typical"][0 if quick else 1] // 4
    return sizes.get(grid, sizes["typical"])[0 if quick else 1]


# ---------------------------------------------------------------------- parameter helpers
def _lin(lo: float, hi: float, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    """Deterministic values spread over [lo, hi] filling ``shape`` (a constant when shape is ())."""
    n = 1
    for d in shape:
        n *= d
    if n == 1:
        return torch.full(shape, (lo + hi) / 2, dtype=dtype)
    return torch.linspace(lo, hi, n, dtype=dtype).reshape(shape)


def _tril(b: tuple[int, ...], d: torch.dtype, k: int, diag: tuple[float, float],
          below: tuple[float, float]) -> torch.Tensor:
    """Lower-triangular ``(k, k)`` factors that differ from one grid point to the next: the
    diagonal spread over ``diag``, the entries below it over ``below``. One matrix shared by
    the whole grid would let a backend that reads the first batch element's matrix for every
    element (a library taking one covariance per call) pass every sampler check."""
    return (torch.diag_embed(_lin(*diag, b + (k,), d))
            + torch.tril(_lin(*below, b + (k, k), d), -1))


def _t(values: Any, dtype: torch.dtype) -> torch.Tensor:
    return torch.tensor(values, dtype=dtype)


def _rows(rows: list[list[float]], dtype: torch.dtype) -> torch.Tensor:
    p = torch.tensor(rows, dtype=dtype)
    return p / p.sum(-1, keepdim=True)


def _simplex(b: tuple[int, ...], d: torch.dtype, k: int) -> torch.Tensor:
    p = _lin(1.0, 3.0, b + (k,), d)
    return p / p.sum(-1, keepdim=True)


def _ls(lo_loc: float, hi_loc: float, lo_s: float, hi_s: float
        ) -> Callable[[tuple[int, ...], torch.dtype, int], Params]:
    return lambda b, d, k: {"loc": _lin(lo_loc, hi_loc, b, d), "scale": _lin(lo_s, hi_s, b, d)}


def _corner(**values: Any) -> Callable[[torch.dtype], Params]:
    return lambda d: {k: _t(v, d) for k, v in values.items()}


#: Sweep ranges: spread on a log scale (``LOG``) or a linear one (``LIN``).
LOG, LIN = True, False


def _sweep(**ranges: tuple[float, float, bool]) -> dict[str, tuple[float, float, bool]]:
    return dict(ranges)


def _elements(name: str, indices: Sequence[tuple[int, ...]], lo: float, hi: float,
              log: bool) -> dict[str, tuple[float, float, bool]]:
    """Sweep ranges of elements of a vector or matrix parameter (see :func:`sweep_key`)."""
    return {f"{name}[{','.join(map(str, i))}]": (lo, hi, log) for i in indices}


#: The three elements of a vector parameter of the sweeps' event size (3), and the diagonal
#: of a 3 x 3 matrix.
_VEC3: list[tuple[int, ...]] = [(0,), (1,), (2,)]
_DIAG3: list[tuple[int, ...]] = [(0, 0), (1, 1), (2, 2)]


def sweep_params(family: str, m: int, dtype: torch.dtype = torch.float64) -> Params:
    """``m`` parameter points spread over the family's sweep ranges (``Case.sweep``), as one
    batch of shape ``(m,)``.

    Each swept parameter takes one value in each of ``m`` equal slices of its range (on a log
    scale where its range says so), at a random place in the slice: the first swept parameter
    in increasing order (so that a run of neighbouring batch elements is a band of its range),
    the others shuffled (a Latin hypercube). Any sub-range wider than ``1/m`` of a range holds
    points, wherever it lies: a sampler or gradient wrong only between the fixed grid points
    is drawn there. Deterministic: the places come from a generator seeded by the family's
    name. Binomial ``total_count`` is rounded to whole counts; a shape parameter
    (:data:`WHOLE_SHAPES`) is whole in every other slice that holds a whole number. A parameter that torch takes
    as a Python number (Multinomial's ``total_count``) takes :data:`INT_SWEEP_LEVELS` whole
    values spread over its range, each at ``m / INT_SWEEP_LEVELS`` points; it is returned as
    a float tensor of the points' values, which :func:`sweep_groups` splits into one
    parameter set per value.
    """
    c = CASES[family]
    assert c.sweep is not None, family
    rng = np.random.default_rng(zlib.crc32(f"sweep-{family}".encode()))
    out = c.example((), dtype, 3)
    for i, (key, (lo, hi, log)) in enumerate(c.sweep.items()):
        u = (np.arange(m) + rng.random(m)) / m
        if i:
            u = rng.permutation(u)
        v = np.exp(np.log(lo) + u * (np.log(hi) - np.log(lo))) if log else lo + u * (hi - lo)
        name, index = sweep_key(key)
        if _python_number(family, name):
            # INT_SWEEP_LEVELS levels, each at the middle of its slice of the range
            level = np.floor(u * INT_SWEEP_LEVELS)
            w = (level + 0.5) / INT_SWEEP_LEVELS
            v = np.round(np.exp(np.log(lo) + w * (np.log(hi) - np.log(lo))) if log
                         else lo + w * (hi - lo))
        elif name in FAMILIES[family].integer_params or (family == "Binomial"
                                                         and name == "total_count"):
            v = np.round(v)
        elif name in WHOLE_SHAPES:
            v = _whole_in_even_slices(u, v, m, lo, hi, log)
        if index is None:
            out[name] = torch.tensor(v, dtype=dtype)
        else:
            # One element of a vector or matrix parameter (a multivariate family): the
            # parameter becomes a batch of m copies of its example value, this element swept.
            base = torch.as_tensor(out[name], dtype=dtype)
            if base.dim() == len(index):
                base = base.expand((m, *base.shape)).clone()
            at: tuple[Any, ...] = (slice(None), *index)
            base[at] = torch.tensor(v, dtype=dtype)
            out[name] = base
        if name == "probs":
            out.pop("logits", None)
    return out


#: Shape parameters that samplers and their gradients often special-case at whole values (a
#: Gamma of whole concentration is an Erlang: a sum of exponentials; a Student's t of whole
#: df; a chi-squared of even df): :func:`sweep_params` puts every other point of theirs on a
#: whole number where its slice of the range holds one (a Gamma ``rate`` gradient 10% off at
#: whole concentrations 5 to 16 passed: an outside trial).
WHOLE_SHAPES = frozenset({"concentration", "concentration0", "concentration1", "df", "df1",
                          "df2", "alpha"})


def _whole_in_even_slices(u: np.ndarray, v: np.ndarray, m: int, lo: float, hi: float,
                          log: bool) -> np.ndarray:
    """``v`` with the points of the even slices of the range (slice ``floor(u * m)``) moved to
    the whole number inside their slice nearest them, where the slice holds one: every slice
    still holds its point."""
    k = np.floor(u * m)

    def at(w: np.ndarray) -> np.ndarray:
        return np.exp(np.log(lo) + w * (np.log(hi) - np.log(lo))) if log else lo + w * (hi - lo)

    a, b = np.ceil(at(k / m)), np.floor(at((k + 1) / m))
    snap = (k % 2 == 0) & (a <= b) & (a > 0)
    return np.where(snap, np.clip(np.round(v), a, b), v)


def _python_number(family: str, name: str) -> bool:
    """Whether torch takes parameter ``name`` of ``family`` as a Python number only."""
    return (name in FAMILIES[family].integer_params
            and not isinstance(CASES[family].example((), torch.float64, 3).get(name),
                               torch.Tensor))


def swept_numbers(family: str) -> list[str]:
    """The swept parameters of ``family`` that torch takes as Python numbers (one for the
    whole batch: Multinomial's ``total_count``), which :func:`sweep_groups` draws apart."""
    return [n for n in dict.fromkeys(sweep_key(k)[0] for k in (CASES[family].sweep or {}))
            if _python_number(family, n)]


def sweep_groups(family: str, params: Params, m: int) -> list[tuple[np.ndarray, Params]]:
    """The ``m`` points of :func:`sweep_params`' ``params`` by the value of their Python-number
    parameters (Multinomial's ``total_count``): ``(indices, parameters)`` per value, those
    parameters with that value as a Python int and every batched tensor cut to the indices.
    One group of every point where the family sweeps no such parameter."""
    ints = swept_numbers(family)
    if not ints:
        return [(np.arange(m), params)]
    keys = np.stack([params[n].detach().double().numpy() for n in ints], axis=1)
    out = []
    for row in np.unique(keys, axis=0):
        idx = np.flatnonzero((keys == row).all(axis=1))
        sub: dict[str, Any] = {}
        for k, v in params.items():
            if k in ints:
                sub[k] = int(row[ints.index(k)])
            elif isinstance(v, torch.Tensor) and v.dim() and v.shape[0] == m:
                sub[k] = v[torch.as_tensor(idx)]
            else:
                sub[k] = v
        out.append((idx, sub))
    return out


def sweep_key(key: str) -> tuple[str, tuple[int, ...] | None]:
    """A sweep range's key: a parameter (``"rate"``) or one element of a vector or matrix
    parameter (``"concentration[0]"``, ``"scale_tril[1,0]"``): its name and index."""
    if not key.endswith("]"):
        return key, None
    name, _, rest = key[:-1].partition("[")
    return name, tuple(int(i) for i in rest.split(","))


# 24 categories: a sampler may take another path for many categories (a table, a bisection)
# and be wrong only there (one that never drew the last of more than 16 categories passed a
# grid of 4; tests/mutants.py, mutant_last_category). The first two rows are the small
# probability 1e-4 and the large weight 1e3 among three others, the remaining categories of
# probability exactly 0; the last row is two zeros, then weights 1, 1 and 1 to 20 (the last
# category 9.4%). No backend may ever draw a category of probability 0: its indicator is
# Bernoulli(0), and one draw of it fails its exact sum test. _CORNER_PROBS_4: the four
# categories the corners had before (OneHotCategoricalStraightThrough's).
_CORNER_PROBS_4 = [[1e-4, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1e3], [0.0, 1.0, 0.0, 1.0]]
_CORNER_CATEGORIES = 24
# The last row: every category equally likely, where a sampler may take a uniform path (one
# that never drew the last category there passed: an outside trial).
_CORNER_PROBS = [[1e-4, 1.0, 1.0, 1.0] + [0.0] * (_CORNER_CATEGORIES - 4),
                 [1.0, 1.0, 1.0, 1e3] + [0.0] * (_CORNER_CATEGORIES - 4),
                 [0.0, 1.0, 0.0, 1.0] + [float(w) for w in range(1, _CORNER_CATEGORIES - 3)],
                 [1.0] * _CORNER_CATEGORIES]

#: Categories of the Categorical edges grid: 1e5, all but the first of probability 1e-7.
_MANY_CATEGORIES = 100_000


def _categorical_tails(d: torch.dtype) -> Params:
    # torch.multinomial accumulates float32 probabilities in float32 and draws a category
    # other than 0 with probability 0.0119 instead of 0.0100 here (issue 12).
    p = torch.full((_MANY_CATEGORIES,), 1e-7, dtype=torch.float64)
    p[0] = 1.0 - 1e-7 * (_MANY_CATEGORIES - 1)
    return {"probs": p.to(d)}


# ---------------------------------------------------------------------- projections
def _univariate(law: Callable[[Mapping[str, Arr]], Any], discrete: bool,
                exact_sum: Callable[[Mapping[str, Arr], int], Any] | None
                ) -> Callable[..., list[Projection]]:
    def project(p: Mapping[str, Arr], x: Arr, batch: tuple[int, ...],
                rng: np.random.Generator) -> list[Projection]:
        n = x.shape[0]
        m = int(np.prod(batch, dtype=np.int64)) if batch else 1
        fp = {k: flat(v, batch) for k, v in p.items()}

        def column(j: int) -> Any:
            return law({k: v[j] for k, v in fp.items()})

        def summed(k: int) -> Any:
            assert exact_sum is not None
            return exact_sum(fp, k)

        return [Projection("value", x.reshape(n, m), law(fp), discrete,
                           column if discrete else None,
                           summed if exact_sum is not None else None)]
    return project


def _categorical_project(p: Mapping[str, Arr], x: Arr, batch: tuple[int, ...],
                         rng: np.random.Generator) -> list[Projection]:
    n = x.shape[0]
    m = int(np.prod(batch, dtype=np.int64)) if batch else 1
    if x.ndim == 1 + len(batch) + 1:  # one-hot: back to indices
        x = np.argmax(x, axis=-1)
    probs = np.broadcast_to(p["probs"], batch + p["probs"].shape[-1:]).reshape(m, -1)
    law = ref.Categorical(probs)
    out = [Projection("value", x.reshape(n, m).astype(np.float64), law, True,
                      lambda j: ref.Categorical(probs[j]))]
    # Each category's indicator is Bernoulli(p_j): its count over n draws is exactly
    # Binomial(n, p_j), the sharpest test of a probability error.
    xs = x.reshape(n, m)
    pn = probs / probs.sum(-1, keepdims=True)
    k = probs.shape[-1]
    if k > _MAX_CATEGORY_STATS:
        # Many categories: the first 8 one by one, the others in 8 blocks of neighbours (each
        # block's indicator is Bernoulli of its total probability), so that the statistics
        # cost O(n) each, not O(n k).
        bounds = np.linspace(8, k, 9).astype(np.int64)
        groups = [(f"category{c}", c, c + 1) for c in range(8)] + [
            (f"categories{lo}to{hi - 1}", lo, hi) for lo, hi in zip(bounds[:-1], bounds[1:])]
    else:
        groups = [(f"category{c}", c, c + 1) for c in range(k)]
    for label, lo, hi in groups:
        pc = pn[:, lo:hi].sum(-1)
        hit = (xs == lo) if hi == lo + 1 else ((xs >= lo) & (xs < hi))
        out.append(Projection(label, hit.astype(np.float64), ref.freeze(stats.bernoulli, pc), True,
                              _bernoulli_column(pc), _binom_sum(1.0, pc)))
    return out


#: Above this many categories the per-category statistics are grouped (_categorical_project).
_MAX_CATEGORY_STATS = 64


def _normal_projections(family: str) -> Callable[..., list[Projection]]:
    def project(p: Mapping[str, Arr], x: Arr, batch: tuple[int, ...],
                rng: np.random.Generator, n_random: int = 8) -> list[Projection]:
        n = x.shape[0]
        m = int(np.prod(batch, dtype=np.int64)) if batch else 1
        if family == "LogisticNormal":
            x = ref.inverse_stick_breaking(x)
            loc, var_diag = p["loc"], p["scale"] ** 2
            k = x.shape[-1]
            cov = np.zeros(batch + (k, k)) + var_diag[..., None] * np.eye(k)
        elif family == "MultivariateNormal":
            loc, tril = p["loc"], p["scale_tril"]
            cov = tril @ np.swapaxes(tril, -1, -2)
        else:
            loc, w, d = p["loc"], p["cov_factor"], p["cov_diag"]
            cov = w @ np.swapaxes(w, -1, -2) + d[..., None] * np.eye(d.shape[-1])
        k = x.shape[-1]
        loc = np.broadcast_to(loc, batch + (k,)).reshape(m, k)
        cov = np.broadcast_to(cov, batch + (k, k)).reshape(m, k, k)
        xs = x.reshape(n, m, k)
        out = []
        for i, u in enumerate(np.concatenate([np.eye(k), ref.unit_vectors(rng, k, n_random)])):
            mean = loc @ u
            sd = np.sqrt(np.einsum("i,mij,j->m", u, cov, u))
            out.append(Projection(f"axis{i}" if i < k else f"proj{i - k}", xs @ u,
                                  ref.Normal(mean, sd)))
        return out
    return project


def _wishart_project(p: Mapping[str, Arr], x: Arr, batch: tuple[int, ...],
                     rng: np.random.Generator, n_random: int = 8) -> list[Projection]:
    n = x.shape[0]
    m = int(np.prod(batch, dtype=np.int64)) if batch else 1
    tril, df = p["scale_tril"], p["df"]
    k = tril.shape[-1]
    cov = np.broadcast_to(tril @ np.swapaxes(tril, -1, -2), batch + (k, k)).reshape(m, k, k)
    law = ref.freeze(stats.chi2, flat(df, batch))
    xw = x.reshape(n, m, k, k)
    out = []
    for i, u in enumerate(np.concatenate([np.eye(k), ref.unit_vectors(rng, k, n_random)])):
        # u'Wu / u'Su ~ chi-square(df) for W ~ Wishart(df, S).
        q = np.einsum("i,nmij,j->nm", u, xw, u) / np.einsum("i,mij,j->m", u, cov, u)
        out.append(Projection(f"axis{i}" if i < k else f"proj{i - k}", q, law))
    return out


def _simplex_project(family: str) -> Callable[..., list[Projection]]:
    def project(p: Mapping[str, Arr], x: Arr, batch: tuple[int, ...],
                rng: np.random.Generator, n_random: int = 8) -> list[Projection]:
        n = x.shape[0]
        m = int(np.prod(batch, dtype=np.int64)) if batch else 1
        key = "concentration" if family == "Dirichlet" else "probs"
        a = np.broadcast_to(p[key], batch + p[key].shape[-1:]).reshape(m, -1)
        if family == "Multinomial":
            a = a / a.sum(-1, keepdims=True)
        k = a.shape[-1]
        xs = x.reshape(n, m, k)
        subsets = [np.eye(k, dtype=bool)[i] for i in range(k)]
        # Random subsets, each once. A subset's sum is 1 minus its complement's in exact
        # arithmetic, but not in floating point: summing small components resolves them where
        # 1 - (the large one) cannot, so complements of the marginals stay.
        seen = {tuple(s) for s in subsets}
        for s in rng.random((n_random, k)) < 0.5:
            if 0 < s.sum() < k and tuple(s) not in seen:
                seen.add(tuple(s))
                subsets.append(s)
        out = []
        for i, s in enumerate(subsets):
            v = xs[..., s].sum(-1)
            if family == "Dirichlet":
                # A valid draw's components sum to 1 only to rounding (torch's simplex
                # constraint allows 1e-6), and so may a part of them: a component or sum of
                # 1 + 1 ulp (exp(log g - logsumexp) where one component holds nearly all the
                # mass) is read as 1, the end of its Beta law's support. Values further out
                # fail the support check. Each value stands for k spacings either side
                # (Projection.ulps): normalising k rounded Gamma draws, and the suite's own
                # sum of rounded components, are that far from the exact value.
                v = np.clip(v, 0.0, 1.0)
            a_s = a[:, s].sum(-1)
            label = f"marginal{i}" if i < k else f"subset{i - k}"
            if family == "Dirichlet":
                # Sums of Dirichlet components are Beta(a_S, a_0 - a_S).
                out.append(Projection(label, v, ref.freeze(stats.beta, a_s, a.sum(-1) - a_s),
                                      ulps=k))
            else:
                # one count for the batch, or one per point (the sweep's total_count)
                total = np.broadcast_to(np.asarray(p["total_count"], np.float64), (m,))
                out.append(Projection(label, v, ref.freeze(stats.binom, total, a_s), True,
                                      _binom_column(total, a_s), _binom_sum(total, a_s)))
        return out
    return project


def _bernoulli_column(probs: Arr) -> Callable[[int], Any]:
    return lambda j: ref.freeze(stats.bernoulli, probs[j])


def _binom_column(total: Arr, probs: Arr) -> Callable[[int], Any]:
    return lambda j: ref.freeze(stats.binom, total[j], probs[j])


def _binom_sum(total: float | Arr, probs: Arr) -> Callable[[int], Any]:
    return lambda n: ref.freeze(stats.binom, n * total, probs)


def _relaxed_one_hot_project(p: Mapping[str, Arr], x: Arr, batch: tuple[int, ...],
                             rng: np.random.Generator) -> list[Projection]:
    n = x.shape[0]
    m = int(np.prod(batch, dtype=np.int64)) if batch else 1
    t = np.asarray(p["temperature"])
    if t.ndim > len(batch):  # torch's per-batch temperature carries a trailing 1
        t = t[..., 0]
    t = flat(t, batch)
    probs = np.broadcast_to(p["probs"], batch + p["probs"].shape[-1:]).reshape(m, -1)
    lp = np.log(probs)
    k = probs.shape[-1]
    xs = np.log(x.reshape(n, m, k))
    out = []
    for i in range(k - 1):
        # t (log x_i - log x_k) - (log p_i - log p_k) is a difference of two Gumbels: logistic.
        v = t * (xs[..., i] - xs[..., k - 1]) - (lp[:, i] - lp[:, k - 1])
        out.append(Projection(f"logratio{i}", v, ref.freeze(stats.logistic, np.zeros(m), np.ones(m))))
    return out


def _lkj_project(p: Mapping[str, Arr], x: Arr, batch: tuple[int, ...],
                 rng: np.random.Generator) -> list[Projection]:
    n = x.shape[0]
    m = int(np.prod(batch, dtype=np.int64)) if batch else 1
    dim = int(np.asarray(p["dim"]))
    eta = flat(p["concentration"], batch)
    ls = x.reshape(n, m, dim, dim)
    corr = ls @ np.swapaxes(ls, -1, -2)
    b = eta - 1 + dim / 2
    out = []
    for i in range(dim):
        for j in range(i):
            # Marginally (r_ij + 1) / 2 ~ Beta(eta - 1 + d/2, eta - 1 + d/2).
            out.append(Projection(f"corr{i}{j}", (corr[..., i, j] + 1) / 2, ref.freeze(stats.beta, b, b)))
    for k in range(1, dim):
        # The squared diagonal of the Cholesky factor: L_kk^2 ~ Beta(eta + (d - 1 - k)/2, k/2),
        # independent across k (the onion construction; det R is their product, the
        # sufficient statistic of eta). The correlations' variances move half as much as eta
        # does (eta = 1, d = 3): L_22^2, Uniform(0, 1) at eta = 1, is what sees a 2% error.
        out.append(Projection(f"diag{k}", ls[..., k, k] ** 2,
                              ref.freeze(stats.beta, eta + (dim - 1 - k) / 2, k / 2)))
    return out


# ---------------------------------------------------------------------- reference densities
def _dirichlet_logpdf(p: Mapping[str, Arr], value: Arr) -> Arr:
    a = np.broadcast_to(p["concentration"], value.shape)
    # A float32 draw sums to 1 only to float32 rounding; SciPy demands the simplex to 1e-10.
    value = value / value.sum(-1, keepdims=True)
    return np.array([stats.dirichlet.logpdf(v, aa) for v, aa in
                     zip(value.reshape(-1, value.shape[-1]), a.reshape(-1, a.shape[-1]))]
                    ).reshape(value.shape[:-1])


def _multinomial_logpdf(p: Mapping[str, Arr], value: Arr) -> Arr:
    probs = np.broadcast_to(p["probs"], value.shape)
    probs = probs / probs.sum(-1, keepdims=True)
    return stats.multinomial.logpmf(value, int(p["total_count"]), probs)


def _wishart_logpdf(p: Mapping[str, Arr], value: Arr) -> Arr:
    k = value.shape[-1]
    cov = p["scale_tril"] @ np.swapaxes(p["scale_tril"], -1, -2)
    cov = np.broadcast_to(cov, value.shape)
    df = np.broadcast_to(p["df"], value.shape[:-2])
    return np.array([stats.wishart.logpdf(v, df=d, scale=c) for v, d, c in
                     zip(value.reshape(-1, k, k), df.reshape(-1), cov.reshape(-1, k, k))]
                    ).reshape(value.shape[:-2])


def _mvn_logpdf(p: Mapping[str, Arr], value: Arr) -> Arr:
    cov = p["scale_tril"] @ np.swapaxes(p["scale_tril"], -1, -2)
    return ref.mvn_logpdf(value, p["loc"], cov)


def _lowrank_logpdf(p: Mapping[str, Arr], value: Arr) -> Arr:
    w = p["cov_factor"]
    cov = w @ np.swapaxes(w, -1, -2) + p["cov_diag"][..., None] * np.eye(w.shape[-2])
    return ref.mvn_logpdf(value, p["loc"], cov)


def _categorical_logpdf(p: Mapping[str, Arr], value: Arr) -> Arr:
    return ref.Categorical(p["probs"]).logpmf(value)  # type: ignore[no-any-return]


# ---------------------------------------------------------------------- analytic moments, noise
def _dirichlet_moments(prm: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    a = prm["concentration"]
    a0 = a.sum(-1, keepdim=True)
    return a / a0, a * (a + 1) / (a0 * (a0 + 1))


def _mvn_moments(prm: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    loc, tril = prm["loc"], prm["scale_tril"]
    return loc, loc ** 2 + (tril ** 2).sum(-1)


def _lowrank_moments(prm: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    loc, w, d = prm["loc"], prm["cov_factor"], prm["cov_diag"]
    return loc, loc ** 2 + (w ** 2).sum(-1) + d


def _wishart_moments(prm: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    df, tril = prm["df"], prm["scale_tril"]
    s = tril @ tril.transpose(-1, -2)
    d = torch.diagonal(s, dim1=-2, dim2=-1)
    dfx = df[..., None, None]
    return dfx * s, dfx * (s ** 2 + d[..., :, None] * d[..., None, :]) + dfx ** 2 * s ** 2


def _straight_through_moments(prm: Mapping[str, torch.Tensor]
                              ) -> tuple[torch.Tensor, torch.Tensor]:
    p = prm["probs"]
    p = p / p.sum(-1, keepdim=True)
    return p, p


def _logistic_normal_noise(x: torch.Tensor, prm: Mapping[str, torch.Tensor]) -> torch.Tensor:
    y = torch.distributions.StickBreakingTransform().inv(x)
    return (y - prm["loc"]) / prm["scale"]


def _relaxed_one_hot_noise(x: torch.Tensor, prm: Mapping[str, torch.Tensor]) -> torch.Tensor:
    # given logits: their differences are the log-probabilities' (normalizing cancels)
    lp = (prm["logits"] if "logits" in prm
          else torch.log(prm["probs"] / prm["probs"].sum(-1, keepdim=True)))
    lx = torch.log(x)
    t = prm["temperature"]
    t = t[..., None] if t.dim() == x.dim() - 1 else t
    return t * (lx[..., :-1] - lx[..., -1:]) - (lp[..., :-1] - lp[..., -1:])


# ---------------------------------------------------------------------- exact sums
def _sum_bernoulli(p: Mapping[str, Arr], n: int) -> Any:
    return ref.freeze(stats.binom, n, p["probs"])


def _sum_binomial(p: Mapping[str, Arr], n: int) -> Any:
    return ref.freeze(stats.binom, n * p["total_count"], p["probs"])


def _sum_poisson(p: Mapping[str, Arr], n: int) -> Any:
    return ref.freeze(stats.poisson, n * p["rate"])


def _sum_geometric(p: Mapping[str, Arr], n: int) -> Any:
    return ref.freeze(stats.nbinom, n, p["probs"])


def _sum_negative_binomial(p: Mapping[str, Arr], n: int) -> Any:
    return ref.freeze(stats.nbinom, n * p["total_count"], 1 - p["probs"])


# ---------------------------------------------------------------------- the table
_POS_SCALE = frozenset({"scale"})
_POS_CONC = frozenset({"concentration", "rate"})
#: ``Case.tiny``: shape parameters (concentrations, degrees of freedom) whose draws at 1e-30 the
#: semantics rule ``rsample_near_zero`` checks (finite values, no NaN gradient).
_TINY_CONC = frozenset({"concentration"})
_TINY_CONC2 = frozenset({"concentration1", "concentration0"})


def _c(family: str, example: Callable[[tuple[int, ...], torch.dtype, int], Params],
       corners: Callable[[torch.dtype], Params] | None = None, *,
       law: Callable[[Mapping[str, Arr]], Any] | None = None, discrete: bool = False,
       exact_sum: Callable[[Mapping[str, Arr], int], Any] | None = None,
       project: Any = None, **kw: Any) -> Case:
    if law is not None and project is None:
        project = _univariate(law, discrete, exact_sum)
    if "size" not in kw:
        kw["size"] = "discrete" if discrete else "continuous"
    return Case(family, example, corners, law, discrete, exact_sum, project, **kw)


#: ``Case.pathwise`` of location-scale families, scale families and rate families
_LS = frozenset({"loc", "scale"})
_S = frozenset({"scale"})
_RATE = frozenset({"rate"})

_LOC_SCALE_CORNERS = _corner(loc=[0.0, 1e3, -3.0], scale=[1e-3, 1.0, 1e3])

_TABLE = [
    _c("Normal", _ls(-0.5, 0.5, 0.5, 2.0), _LOC_SCALE_CORNERS,
       law=lambda p: ref.Normal(p["loc"], p["scale"]), positive=_POS_SCALE,
       sweep=_sweep(scale=(1e-2, 1e2, LOG), loc=(-10.0, 10.0, LIN)),
       pathwise=_LS),
    _c("Cauchy", _ls(-0.5, 0.5, 0.5, 2.0), _corner(loc=[0.0, 50.0, -3.0], scale=[1e-3, 1.0, 1e3]),
       law=lambda p: ref.freeze(stats.cauchy, p["loc"], p["scale"]), positive=_POS_SCALE, size="heavy",
       sweep=_sweep(scale=(1e-2, 1e2, LOG), loc=(-10.0, 10.0, LIN)),
       pathwise=_LS),
    _c("Laplace", _ls(-0.5, 0.5, 0.5, 2.0), _LOC_SCALE_CORNERS,
       law=lambda p: ref.laplace(p["loc"], p["scale"]), positive=_POS_SCALE,
       sweep=_sweep(scale=(1e-2, 1e2, LOG), loc=(-10.0, 10.0, LIN)),
       pathwise=_LS),
    _c("Gumbel", _ls(-0.5, 0.5, 0.5, 2.0), _LOC_SCALE_CORNERS,
       law=lambda p: ref.freeze(stats.gumbel_r, p["loc"], p["scale"]), positive=_POS_SCALE,
       sweep=_sweep(scale=(1e-2, 1e2, LOG), loc=(-10.0, 10.0, LIN)),
       pathwise=_LS),
    _c("LogNormal", _ls(-0.5, 0.5, 0.5, 2.0), _corner(loc=[-5.0, 0.0, 5.0], scale=[1e-2, 1.0, 3.0]),
       law=lambda p: ref.freeze(stats.lognorm, p["scale"], scale=np.exp(p["loc"])), positive=_POS_SCALE,
       sweep=_sweep(scale=(0.05, 3.0, LOG), loc=(-3.0, 3.0, LIN)),
       pathwise=_LS),
    _c("HalfNormal", lambda b, d, k: {"scale": _lin(0.5, 2.0, b, d)},
       _corner(scale=[1e-3, 1.0, 1e3]), law=lambda p: ref.freeze(stats.halfnorm, scale=p["scale"]),
       positive=_POS_SCALE,
       sweep=_sweep(scale=(1e-2, 1e2, LOG)),
       pathwise=_S),
    _c("HalfCauchy", lambda b, d, k: {"scale": _lin(0.5, 2.0, b, d)},
       _corner(scale=[1e-3, 1.0, 1e3]), law=lambda p: ref.half_cauchy(p["scale"]),
       positive=_POS_SCALE,
       sweep=_sweep(scale=(1e-2, 1e2, LOG)),
       pathwise=_S),
    _c("Uniform", lambda b, d, k: {"low": _lin(-1.0, 0.0, b, d), "high": _lin(1.0, 3.0, b, d)},
       _corner(low=[-1e3, 0.0, 5.0], high=[1e3, 1e-3, 5.5]),
       law=lambda p: ref.freeze(stats.uniform, p["low"], p["high"] - p["low"]),
       sweep=_sweep(high=(1e-2, 1e2, LOG), low=(-10.0, 0.0, LIN)),
       pathwise=frozenset({"low", "high"})),
    # 1e-6: a rate far below the sweep (a sampler 10% off below 1e-4 passed: an outside trial)
    _c("Exponential", lambda b, d, k: {"rate": _lin(0.5, 3.0, b, d)},
       _corner(rate=[1e-3, 1.0, 1e3, 1e-6]),
       law=lambda p: ref.freeze(stats.expon, scale=1 / p["rate"]), positive=frozenset({"rate"}),
       sweep=_sweep(rate=(1e-2, 1e2, LOG)),
       pathwise=_RATE),
    # Concentrations (degrees of freedom) start at exactly 1 (2): the exponential and uniform
    # special cases, where formulas written as xlogy(a - 1, x) branch (TensorFlow's gradient
    # of xlogy in a is 0 there); the example grid's first point has them.
    _c("Gamma", lambda b, d, k: {"concentration": _lin(1.0, 4.0, b, d), "rate": _lin(0.5, 2.0, b, d)},
       # 400: between the sweep's end (200) and 1000, where a sampler may switch to an
       # approximation (a Gamma 3% off in [250, 900) passed every grid before it).
       _corner(concentration=[1e-2, 0.1, 1.0, 30.0, 1e3, 400.0],
               rate=[1.0, 0.5, 2.0, 1e-2, 1e2, 3.0]),
       law=lambda p: ref.freeze(stats.gamma, p["concentration"], scale=1 / p["rate"]), positive=_POS_CONC,
       tiny=_TINY_CONC,
       sweep=_sweep(concentration=(0.05, 200.0, LOG), rate=(0.1, 10.0, LOG)),
       pathwise=_RATE),
    _c("InverseGamma",
       lambda b, d, k: {"concentration": _lin(1.0, 4.0, b, d), "rate": _lin(0.5, 2.0, b, d)},
       _corner(concentration=[0.1, 1.0, 1e3], rate=[1.0, 5.0, 0.1]),
       law=lambda p: ref.freeze(stats.invgamma, p["concentration"], scale=p["rate"]), positive=_POS_CONC,
       tiny=_TINY_CONC,
       sweep=_sweep(concentration=(0.1, 100.0, LOG), rate=(0.1, 10.0, LOG)),
       pathwise=_RATE),
    # df not whole (and the large corner too): a sampler that rounded df (a Gamma draw by
    # summing squared normals) passed every grid of whole values (an outside trial)
    _c("Chi2", lambda b, d, k: {"df": _lin(2.5, 6.5, b, d)}, _corner(df=[1e-2, 0.5, 1000.5]),
       law=lambda p: ref.freeze(stats.chi2, p["df"]), positive=frozenset({"df"}), tiny=frozenset({"df"}),
       sweep=_sweep(df=(0.1, 300.0, LOG))),
    _c("Beta", lambda b, d, k: {"concentration1": _lin(1.0, 3.0, b, d),
                                "concentration0": _lin(1.0, 2.5, b, d)},
       # (0.3, 0.7): both below 1 and unequal, where a sampler branches (Johnk's method) and
       # a swap of the two would show. (5, 5): equal and above 1, where a sampler may take a
       # symmetric path (one 10% too wide there passed: an outside trial).
       _corner(concentration1=[1e-2, 0.1, 1e3, 1.0, 3.0, 0.3, 5.0],
               concentration0=[1e-2, 5.0, 1e3, 1.0, 1e-2, 0.7, 5.0]),
       law=lambda p: ref.freeze(stats.beta, p["concentration1"], p["concentration0"]),
       positive=_TINY_CONC2, tiny=_TINY_CONC2,
       sweep=_sweep(concentration1=(0.1, 100.0, LOG), concentration0=(0.1, 100.0, LOG))),
    _c("Kumaraswamy", lambda b, d, k: {"concentration1": _lin(1.0, 3.0, b, d),
                                       "concentration0": _lin(1.0, 2.5, b, d)},
       _corner(concentration1=[0.2, 1.0, 10.0], concentration0=[0.2, 5.0, 10.0]),
       law=lambda p: ref.Kumaraswamy(p["concentration1"], p["concentration0"]),
       positive=_TINY_CONC2, tiny=_TINY_CONC2,
       sweep=_sweep(concentration1=(0.2, 20.0, LOG), concentration0=(0.2, 20.0, LOG))),
    _c("StudentT", lambda b, d, k: {"df": _lin(2.5, 8.0, b, d), "loc": _lin(-0.5, 0.5, b, d),
                                    "scale": _lin(0.5, 2.0, b, d)},
       _corner(df=[0.5, 1.0, 3.0, 1e3], loc=[0.0, 1.0, -2.0, 0.0], scale=[1.0, 1e-3, 2.0, 1e3]),
       law=lambda p: ref.student_t(p["df"], p["loc"], p["scale"]),
       positive=frozenset({"df", "scale"}), tiny=frozenset({"df"}),
       sweep=_sweep(df=(0.5, 300.0, LOG), scale=(0.1, 10.0, LOG), loc=(-5.0, 5.0, LIN)),
       pathwise=_LS),
    _c("FisherSnedecor", lambda b, d, k: {"df1": _lin(3.0, 8.0, b, d), "df2": _lin(5.0, 12.0, b, d)},
       _corner(df1=[0.5, 5.0, 1e3], df2=[0.5, 10.0, 1e3]),
       law=lambda p: ref.freeze(stats.f, p["df1"], p["df2"]), positive=frozenset({"df1", "df2"}),
       tiny=frozenset({"df1", "df2"}),
       sweep=_sweep(df1=(0.5, 300.0, LOG), df2=(0.5, 300.0, LOG))),
    _c("Weibull", lambda b, d, k: {"scale": _lin(0.5, 2.0, b, d),
                                   "concentration": _lin(1.0, 3.0, b, d)},
       _corner(scale=[1.0, 2.0, 0.5], concentration=[0.1, 1.0, 20.0]),
       law=lambda p: ref.freeze(stats.weibull_min, p["concentration"], scale=p["scale"]),
       positive=frozenset({"scale", "concentration"}), tiny=frozenset({"concentration"}),
       sweep=_sweep(concentration=(0.1, 20.0, LOG), scale=(0.1, 10.0, LOG)),
       pathwise=_S),
    _c("Pareto", lambda b, d, k: {"scale": _lin(0.5, 2.0, b, d), "alpha": _lin(2.5, 5.0, b, d)},
       _corner(scale=[1.0, 1e-2, 10.0], alpha=[0.5, 3.0, 50.0]),
       law=lambda p: ref.pareto(p["alpha"], p["scale"]),
       positive=frozenset({"scale", "alpha"}), tiny=frozenset({"alpha"}),
       sweep=_sweep(alpha=(0.5, 50.0, LOG), scale=(0.1, 10.0, LOG)),
       pathwise=_S),
    _c("GeneralizedPareto", lambda b, d, k: {"loc": _lin(-0.5, 0.5, b, d),
                                             "scale": _lin(0.5, 2.0, b, d),
                                             "concentration": _lin(-0.2, 0.3, b, d)},
       _corner(loc=[0.0, 1.0, -1.0], scale=[1.0, 1e-2, 10.0], concentration=[-0.4, 0.0, 0.8]),
       law=lambda p: ref.freeze(stats.genpareto, p["concentration"], p["loc"], p["scale"]),
       positive=_POS_SCALE,
       sweep=_sweep(concentration=(-0.45, 0.9, LIN), scale=(0.1, 10.0, LOG), loc=(-5.0, 5.0, LIN)),
       pathwise=_LS),
    _c("VonMises", lambda b, d, k: {"loc": _lin(-1.0, 1.0, b, d),
                                    "concentration": _lin(0.5, 4.0, b, d)},
       # -3 - 4 pi: a loc beyond [-pi, pi] (the law of -3; a sampler that wraps only its
       # noise, not loc + noise, passed while every loc was within pi)
       _corner(loc=[0.0, 3.0, -3.0 - 4 * math.pi], concentration=[1e-2, 1.0, 100.0]),
       law=lambda p: ref.VonMises(p["loc"], p["concentration"]),
       positive=frozenset({"concentration"}), tiny=_TINY_CONC, circular=True,
       sweep=_sweep(concentration=(1e-2, 200.0, LOG), loc=(-3.0, 3.0, LIN))),
    _c("ContinuousBernoulli", lambda b, d, k: {"probs": _lin(0.2, 0.7, b, d)},
       # 1/2: where torch's and TFP's inverse CDFs switch to the uniform itself, a zero
       # gradient (finding F14)
       _corner(probs=[1e-3, 0.3, 0.5, 0.999]),
       law=lambda p: ref.ContinuousBernoulli(p["probs"]),
       sweep=_sweep(probs=(1e-3, 0.999, LIN))),
    _c("RelaxedBernoulli", lambda b, d, k: {"temperature": _lin(0.3, 1.0, b, d),
                                            "probs": _lin(0.2, 0.7, b, d)},
       _corner(temperature=[0.5, 1.0, 3.0], probs=[0.05, 0.5, 0.95]),
       law=lambda p: ref.RelaxedBernoulli(p["temperature"], p["probs"]),
       positive=frozenset({"temperature"}),
       sweep=_sweep(temperature=(0.1, 3.0, LOG), probs=(0.02, 0.98, LIN))),
    # ---- discrete, univariate
    _c("Bernoulli", lambda b, d, k: {"probs": _lin(0.2, 0.7, b, d)},
       _corner(probs=[1e-4, 0.5, 0.9999, 0.0, 1.0]), law=lambda p: ref.freeze(stats.bernoulli, p["probs"]),
       discrete=True, exact_sum=_sum_bernoulli,
       sweep=_sweep(probs=(1e-3, 0.999, LIN))),
    _c("Geometric", lambda b, d, k: {"probs": _lin(0.2, 0.7, b, d)},
       _corner(probs=[1e-4, 0.5, 0.9999]),
       # torch counts failures before the first success; SciPy's geom counts trials.
       law=lambda p: ref.freeze(stats.geom, p["probs"], loc=-1), discrete=True, exact_sum=_sum_geometric,
       sweep=_sweep(probs=(1e-2, 0.99, LIN))),
    _c("Binomial", lambda b, d, k: {"total_count": _lin(5.0, 20.0, b, d).round(),
                                    "probs": _lin(0.2, 0.7, b, d)},
       # (1000, 0.05): a skewed law of moderate variance (47.5), where a normal approximation
       # is tempting and wrong. (100, 0.8): p > 1/2 with n (1 - p) = 20, where samplers draw
       # Binomial(n, 1 - p) by a large-n algorithm (BTRS) and flip it back.
       _corner(total_count=[1.0, 100.0, 1000.0, 10.0, 10.0, 1000.0, 100.0],
               probs=[1e-3, 0.5, 0.999, 0.0, 1.0, 0.05, 0.8]),
       law=lambda p: ref.freeze(stats.binom, p["total_count"], p["probs"]), discrete=True,
       exact_sum=_sum_binomial,
       # torch.binomial in float32 (BTRS): Binomial(1e9, 0.3) with variance +40% (issue 12).
       edges=_corner(total_count=[1e9, 1e6], probs=[0.3, 0.7]), edges_dtype=torch.float32,
       sweep=_sweep(total_count=(1.0, 2000.0, LOG), probs=(0.01, 0.99, LIN))),
    # total_count not whole: a sampler that rounded it passed (an outside trial)
    _c("NegativeBinomial", lambda b, d, k: {"total_count": _lin(2.5, 8.5, b, d),
                                            "probs": _lin(0.2, 0.6, b, d)},
       _corner(total_count=[0.5, 5.0, 100.0], probs=[1e-3, 0.5, 0.99]),
       # torch: successes (prob p) before total_count failures = SciPy nbinom(r, 1 - p).
       law=lambda p: ref.freeze(stats.nbinom, p["total_count"], 1 - p["probs"]), discrete=True,
       exact_sum=_sum_negative_binomial,
       sweep=_sweep(total_count=(0.1, 100.0, LOG), probs=(0.01, 0.95, LIN))),
    _c("Poisson", lambda b, d, k: {"rate": _lin(0.5, 3.0, b, d)},
       # 12 and 40: above the rate where samplers switch algorithms (10 in torch's and NumPy's
       # PTRS), where a rounded normal approximation would be tempting and wrong.
       # 1e-4: below it a sampler may return 0 as "almost surely" (2^18 draws expect 26
       # ones; a Poisson drawn 0 below 1e-3 passed every grid before it).
       _corner(rate=[1e-3, 1.0, 1e3, 0.0, 12.0, 40.0, 1e-4]),
       law=lambda p: ref.freeze(stats.poisson, p["rate"]), discrete=True, exact_sum=_sum_poisson,
       # Rates where torch's, NumPy's and TFP's samplers have lost accuracy (their acceptance
       # tests difference log-gammas of about rate log rate) but a float64 draw is still an
       # exact integer (below 2^53): the variance 0.985, 1.035 and 1.18 times the law's at 1e15,
       # torch's 0.85 times at 3e15 (an outside trial found 1.4-1.7 from 1e16 to 1e18).
       edges=_corner(rate=[1e15, 3e15]),
       sweep=_sweep(rate=(1e-2, 1e3, LOG))),
    _c("Categorical", lambda b, d, k: {"probs": _simplex(b, d, k)},
       lambda d: {"probs": _rows(_CORNER_PROBS, d)}, project=_categorical_project,
       logpdf=_categorical_logpdf, size="categorical", gradcheck=False,
       edges=_categorical_tails, edges_dtype=torch.float32,
       sweep=_elements("probs", _VEC3, 1e-3, 1.0, LOG)),
    _c("OneHotCategorical", lambda b, d, k: {"probs": _simplex(b, d, k)},
       lambda d: {"probs": _rows(_CORNER_PROBS, d)}, project=_categorical_project,
       size="categorical", gradcheck=False, sweep=_elements("probs", _VEC3, 1e-3, 1.0, LOG)),
    # Four categories at the corners: its gradient checks split their alpha over every
    # element of probs (24 categories grew grad_mean's detectable error by 2.6%), and its
    # draws are OneHotCategorical's, whose corners have 24.
    _c("OneHotCategoricalStraightThrough", lambda b, d, k: {"probs": _simplex(b, d, k)},
       lambda d: {"probs": _rows(_CORNER_PROBS_4, d)}, project=_categorical_project,
       moments=_straight_through_moments, size="categorical", gradcheck=False,
       sweep=_elements("probs", _VEC3, 1e-3, 1.0, LOG)),
    # ---- multivariate
    _c("Multinomial", lambda b, d, k: {"total_count": 10, "probs": _simplex(b, d, k)},
       lambda d: {"total_count": 1000, "probs": _rows(_CORNER_PROBS, d)},
       project=_simplex_project("Multinomial"), logpdf=_multinomial_logpdf, size="multinomial",
       gradcheck=False, sweep={"total_count": (1.0, 10000.0, LOG),
                               **_elements("probs", _VEC3, 1e-3, 1.0, LOG)}),
    _c("Dirichlet", lambda b, d, k: {"concentration": _lin(1.0, 3.5, b + (k,), d)},
       # ... and the flat law (1, 1, 1), a special case a sampler may take (uniform
       # spacings; normalised uniforms there passed: an outside trial)
       _corner(concentration=[[1e-2, 1e-2, 1e-2], [0.1, 1.0, 10.0], [1e3, 1e3, 1e3],
                              [1.0, 1.0, 1.0]]),
       project=_simplex_project("Dirichlet"), logpdf=_dirichlet_logpdf, moments=_dirichlet_moments,
       size="multivariate", tiny=_TINY_CONC,
       # torch._sample_dirichlet: 3% of the rows of Dirichlet(1e-3 x 5) exactly uniform, where
       # every Gamma draw underflowed (issue 12).
       edges=_corner(concentration=[[1e-3] * 5]),
       sweep=_elements("concentration", _VEC3, 0.1, 100.0, LOG)),
    _c("RelaxedOneHotCategorical",
       # A temperature per grid point (torch's batch temperature has a trailing axis of 1).
       lambda b, d, k: {"temperature": _lin(0.3, 1.0, b + (1,), d), "probs": _simplex(b, d, k)},
       lambda d: {"temperature": _t([[0.5], [2.0]], d),
                  "probs": _rows([[0.05, 1.0, 1.0], [1.0, 1.0, 20.0]], d)},
       project=_relaxed_one_hot_project, noise=_relaxed_one_hot_noise, size="multivariate",
       gradcheck=False, sweep={"temperature[0]": (0.1, 3.0, LOG),
                               **_elements("probs", _VEC3[:2], 1e-2, 1.0, LOG)}),
    _c("LogisticNormal", lambda b, d, k: {"loc": _lin(-0.5, 0.5, b + (k,), d),
                                          "scale": _lin(0.5, 1.5, b + (k,), d)},
       _corner(loc=[[0.0, -3.0], [2.0, 0.0]], scale=[[1e-2, 1.0], [3.0, 0.5]]),
       project=_normal_projections("LogisticNormal"), noise=_logistic_normal_noise,
       size="multivariate", sweep={**_elements("scale", _VEC3, 0.05, 5.0, LOG),
                                   "loc[0]": (-5.0, 5.0, LIN)}),
    _c("MultivariateNormal",
       lambda b, d, k: {"loc": _lin(-0.5, 0.5, b + (k,), d),
                        "scale_tril": _tril(b, d, k, (0.5, 2.0), (-0.4, 0.6))},
       # ... and a diagonal scale_tril, a special case a sampler may take (one read as
       # variances passed: an outside trial)
       _corner(loc=[[0.0, 1e3, -3.0], [0.5, 0.0, -1.0]],
               scale_tril=[[[1e-3, 0.0, 0.0], [0.5, 1.0, 0.0], [1e2, -3.0, 1e3]],
                           [[0.5, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 4.0]]]),
       project=_normal_projections("MultivariateNormal"), logpdf=_mvn_logpdf,
       moments=_mvn_moments, size="multivariate",
       sweep={**_elements("scale_tril", _DIAG3, 1e-2, 1e2, LOG), "scale_tril[1,0]": (-3.0, 3.0, LIN),
              "loc[0]": (-10.0, 10.0, LIN)}),
    _c("LowRankMultivariateNormal",
       lambda b, d, k: {"loc": _lin(-0.5, 0.5, b + (k,), d),
                        "cov_factor": _lin(-0.5, 0.5, b + (k, 2), d),
                        "cov_diag": _lin(0.5, 1.5, b + (k,), d)},
       _corner(loc=[[0.0, 10.0, -3.0]], cov_factor=[[[1e2], [1e-3], [1.0]]],
               cov_diag=[[1e-4, 1.0, 1e3]]),
       project=_normal_projections("LowRankMultivariateNormal"), logpdf=_lowrank_logpdf,
       moments=_lowrank_moments, size="multivariate", positive=frozenset({"cov_diag"}),
       sweep={**_elements("cov_diag", _VEC3, 1e-3, 1e3, LOG), "cov_factor[0,0]": (-10.0, 10.0, LIN),
              "cov_factor[2,1]": (-10.0, 10.0, LIN)}),
    _c("Wishart",
       lambda b, d, k: {"df": _lin(k + 2.0, k + 5.0, b, d),
                        "scale_tril": _tril(b, d, k, (0.5, 2.0), (-0.3, 0.4))},
       lambda d: {"df": _t([3.5, 1e3], d), "scale_tril": _t(
           [[[1.0, 0.0, 0.0], [0.5, 0.1, 0.0], [2.0, -1.0, 3.0]],
            [[2.0, 0.0, 0.0], [-1.0, 0.5, 0.0], [0.3, 0.2, 1e-2]]], d)},
       project=_wishart_project, logpdf=_wishart_logpdf, moments=_wishart_moments,
       size="matrix", sweep={"df": (2.5, 300.0, LOG), **_elements("scale_tril", _DIAG3, 0.1, 10.0, LOG)}),
    _c("LKJCholesky", lambda b, d, k: {"dim": k, "concentration": _lin(0.5, 2.0, b, d)},
       lambda d: {"dim": 3, "concentration": _t([0.1, 1.0, 100.0], d)},
       # Multivariate sizes: a 2% (1%) concentration error moves L_22^2's mean normal score
       # by about 0.02 (0.01) at eta = 1 (what the multivariate class's n detects).
       project=_lkj_project, size="multivariate", gradcheck=False,
       sweep=_sweep(concentration=(0.1, 100.0, LOG))),
]

#: Every family the suite knows, keyed by torch's class name.
CASES: dict[str, Case] = {c.family: c for c in _TABLE}

_missing = set(FAMILIES) ^ set(CASES)
if _missing:  # pragma: no cover - a programming error, caught by any import
    raise ImportError(f"conformance cases and core families disagree: {sorted(_missing)}")


def case(family: str) -> Case:
    return CASES[family]


def projections(family: str, p: Mapping[str, Arr], x: Arr, batch_shape: tuple[int, ...],
                rng: np.random.Generator) -> list[Projection]:
    """Univariate statistics with a known law of a draw ``x`` (``(n,) + batch + event``)."""
    project = CASES[family].project
    assert project is not None, family
    return project(p, x, batch_shape, rng)


def reference_logpdf(family: str, p: Mapping[str, Arr], value: Arr) -> Arr | None:
    """SciPy's log density (log mass) of ``value`` (shape ``batch + event``), or None."""
    c = CASES[family]
    if c.law is not None:
        law = c.law(p)
        return law.logpmf(value) if c.discrete else law.logpdf(value)  # type: ignore[no-any-return]
    if c.logpdf is not None:
        return c.logpdf(p, value)
    return None
