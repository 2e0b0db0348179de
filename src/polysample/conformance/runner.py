"""The one generator of checks, and the runner that executes them.

:func:`generate_checks` yields every check of a run, in a fixed order: for each backend, family
by family, the semantics, density, sampler and gradient layers; then the cross-backend
agreement checks. Checks are grouped in **units** (:func:`units`): all the checks of one
(backend, family) share that family's draws, which the :class:`Runner` makes once, where the
unit runs, and forgets when the next family starts; an agreement check is a unit of its own that
needs only the small normal-score summaries (:class:`~.model.PitScores`) of two draws, computed
on demand or handed over from the units that made them. Every seed is derived from a check id,
so a check gives the same result whatever ran before it, in whichever process.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import math
import sys
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..core.backend import Backend, FamilySupport
from ..core.errors import BackendContractError, for_author
from ..core.families import FAMILIES
from . import cases
from .grids import Grid, as_logits, example_params, grid_points, grids, rsample_leaves
from .model import (
    LAYERS,
    Check,
    CheckFailure,
    CheckResult,
    Outcome,
    PitScores,
    Skip,
)
from .reference import Projection, params_np
from .stats import seed_for

__all__ = ["Target", "Runner", "Draw", "generate_checks", "units", "make", "family_support"]


@dataclass(frozen=True)
class Target:
    """A backend under test: the name the report uses and the ``Backend`` object itself.

    Distributions are built with ``backend=<the object>``, so an unregistered instance is judged
    without touching the process-wide registry.
    """

    name: str
    backend: Backend

    def families(self) -> Mapping[str, FamilySupport]:
        return self.backend.families()


def family_support(t: Target, family: str) -> FamilySupport:
    return t.families()[family]


def make(family: str, params: Mapping[str, Any], t: Target, validate: bool = True) -> Any:
    """``polysample.<family>(**params, backend=t.backend)``, built with gradients enabled
    (where torch derives what it keeps from the parameters, Beta's Dirichlet, a distribution
    built under ``torch.no_grad()`` holds no graph back to them, and a backend is given none)."""
    import polysample

    kw: dict[str, Any] = {} if validate else {"validate_args": False}
    with torch.enable_grad():
        return getattr(polysample, family)(**params, backend=t.backend, **kw)


@dataclass
class Draw:
    """One vectorised draw of a family on a grid, reduced to what the checks need."""

    n: int
    seed: int
    projections: list[Projection]
    support_ok: bool
    points: list[str]
    seconds: float  # drawing only (the backend's share)
    #: The drawn values (float64) of a sample draw; an rsample draw equal to them shares the
    #: statistics.
    values: np.ndarray | None = field(default=None, repr=False)
    #: True when this draw is bit-for-bit the sample draw of the same seed: its projections
    #: (and the sorted values, CDFs and normal scores they cache) are that draw's.
    shared: bool = False
    #: How messages name the draw: ``"sample()"``, ``"sample() in calls of 16 rows"``, ...
    called: str = ""
    #: Where values left the support (``support_ok`` False): how many, with examples.
    outside: str = ""
    #: A draw made of parts (``sample()`` and ``rsample()`` where a grid is judged on one
    #: method): each part's columns follow the previous part's, one per grid point, and
    #: this names the parts; empty for a draw of one method.
    parts: tuple[str, ...] = ()
    #: Every column's label, where the columns are not the grid's points (nor parts of
    #: them): the batches draw's batch elements. Empty otherwise.
    labels: tuple[str, ...] = ()

    def point(self, grid: str, j: int) -> str:
        """Column ``j``'s grid point, and its part where the draw has parts."""
        if self.labels:
            return self.labels[j] if 0 <= j < len(self.labels) else f"{grid}[{j}]"
        g = len(self.points)
        if not 0 <= j < g * max(1, len(self.parts)):
            return f"{grid}[{j}]"
        where = f"{grid}[{j % g}] ({self.points[j % g]})"
        return f"{where} by {self.parts[j // g]}" if self.parts else where

    @property
    def columns(self) -> list[str]:
        """Every column's label: its grid point, and its part where the draw has parts."""
        if self.labels:
            return list(self.labels)
        if not self.parts:
            return list(self.points)
        return [f"{pt} by {part}" for part in self.parts for pt in self.points]


@dataclass
class Runner:
    """Runs checks; caches the draws of the current family and the normal-score summaries.

    ``quick``: the quick-mode sample sizes; ``salt`` (``--vary-seed``) changes every seed.
    """

    quick: bool = False
    salt: int = 0
    _draws: dict[tuple[str, str, str, str], Draw | Exception] = field(default_factory=dict)
    _scores: dict[tuple[str, str, str, str, str], PitScores] = field(default_factory=dict)

    def seed(self, key: str) -> int:
        return seed_for(key, self.salt)

    # -------------------------------------------------------------- running
    def run(self, check: Check) -> CheckResult:
        """Run one check; a raising backend fails the check, never the run."""
        t0 = time.perf_counter()
        caught: list[warnings.WarningMessage] = []
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                out = check.fn(self)
            status = "pass"
        except CheckFailure as exc:
            status, out = "fail", exc.outcome
        except Skip as exc:
            status, out = "skip", Outcome(str(exc))
        except Exception as exc:  # a backend that raises: the check fails, the run goes on
            text = for_author(exc) if isinstance(exc, BackendContractError) else str(exc)
            message = f"raised {type(exc).__name__}: {text}"
            where = raised_at(exc)
            if where:
                message += f" (at {where})"
            status, out = "fail", Outcome(message)
        if caught:
            # Kept as evidence (torch's Wishart warns "Singular sample detected" on valid draws).
            first = {f"{w.category.__name__}: {w.message}" for w in caught}
            out.details = dict(out.details, warnings=sorted(first)[:5])
        return CheckResult(
            id=check.id, backend=check.backend, family=check.family, grid=check.grid,
            check=check.name, layer=check.layer, status=status, message=out.message,
            statistic=_f(out.statistic), threshold=_f(out.threshold), n=out.n, seed=out.seed,
            alpha=out.alpha, detectable=_f(out.detectable),
            seconds=round(time.perf_counter() - t0, 4), point=out.point,
            involves=check.involves or (check.backend,), details=out.details,
            evidence=out.evidence)

    # -------------------------------------------------------------- draws
    def release(self) -> None:
        """Forget cached draws (they are large: about 8 MB per million values)."""
        self._draws.clear()

    def draw(self, t: Target, family: str, grid: Grid, method: str) -> Draw:
        """The draw of ``family`` on ``grid`` by ``method`` (made once per family visit)."""
        key = (t.name, family, grid.label, method)
        if any(k[:2] != key[:2] for k in self._draws):
            self.release()  # checks come family by family: keep only this family's draws
        if key not in self._draws:
            try:
                self._draws[key] = self._draw(t, family, grid, method)
            except Exception as exc:  # noqa: BLE001 - every check using the draw reports it
                self._draws[key] = exc
        d = self._draws[key]
        if isinstance(d, Exception):
            raise d
        return d

    def _draw(self, t: Target, family: str, grid: Grid, method: str) -> Draw:
        t0 = time.perf_counter()
        n = cases.sample_size(family, grid.label, self.quick)
        dtype = grid.dtype or torch.float64
        params = grid.build(dtype)
        if method == "event2":  # the typical parameters at event size 2 (see EVENT2_SIZE)
            params = cases.CASES[family].example((3,), dtype, 2)
        elif grid.label == "typical":  # torch's other parameterization (see as_logits)
            params = as_logits(family, params)
        if method in ("ones", "smalls"):  # the first grid point alone, a batch of one
            spec0 = FAMILIES[family]
            params = {k: v[:1].clone() if isinstance(v, torch.Tensor)
                      and v.dim() > spec0.param_event_dim(k) else v for k, v in params.items()}
        support = family_support(t, family)
        # rsample() is judged as a model calls it: on parameters that require grad, with
        # gradients enabled (a backend that drew from another law on that path, its gradients
        # consistent with its draws, passed every check: an outside trial).
        learnt = support.rsample and (method == "rsample" or method in ("calls", "scalar")
                                      or grid.methods == ("sample",))

        def leaves(p: dict[str, Any]) -> dict[str, Any]:
            if learnt:
                rsample_leaves(family, p, support.rsample_params)
            return p

        params = leaves(params)
        dist = make(family, params, t)
        # The parameters every call below is given: a backend must leave them as they were
        # (the semantics rules' calls are small: a write in large calls only showed nowhere).
        given = [params]
        # sample() and rsample() get the same seed: where a backend's rsample values are
        # bit-for-bit its sample values (a reparameterised sampler), the statistics of the two
        # draws are the same numbers and are computed once; where they differ, each is judged
        # on its own. Either way each check sees a draw of the size and seed it reports.
        seed = self.seed(f"{t.name}-{family}-{grid.label}-sample")
        batch = tuple(dist.batch_shape)
        # Where a grid is judged on sample() alone (float32) and in the small calls, a backend
        # with rsample() also draws the same with it, as more columns of the one draw (see
        # Draw.parts): both paths are judged at the same n, in the checks the error budget
        # already counts (their alpha split over twice the columns), unless rsample() drew
        # sample()'s values.
        both = (method in ("calls", "scalar") or grid.methods == ("sample",)) and len(batch) == 1 and (
            family_support(t, family).rsample) and method not in ("ones", "smalls", "batches")
        support_of: Callable[[torch.Tensor], str] | None = None
        # a draw whose columns are not the grid's points (the batches draw): their parameters
        # and labels
        columns_params: dict[str, Any] | None = None
        labels: tuple[str, ...] = ()
        with torch.no_grad():
            if method == "calls":
                # Many small calls, as a training loop draws (a backend may take another path
                # for them: a shape bucket, a small-n algorithm), each with its own seed.
                calls = CALLS_QUICK if self.quick else CALLS_FULL
                n = calls * CALL_ROWS
                seed = self.seed(f"{t.name}-{family}-{grid.label}-calls")
                how = f" in calls of {CALL_ROWS} rows"
                blocks = 0  # many calls: calls_indep judges their balance

                def draw(name: str, s: int) -> torch.Tensor:
                    return torch.cat([getattr(dist, name)((CALL_ROWS,), seed=seed_for(f"{s}-{i}"))
                                      for i in range(calls)])
            elif method == "ones":
                n = ONES_CALLS
                seed = self.seed(f"{t.name}-{family}-{grid.label}-ones")
                how = " in one-value calls with scalar parameters"
                blocks = 0
                single = make(family, point_params(family, params, 0), t)
                given.append(point_params(family, params, 0))

                def draw(name: str, s: int) -> torch.Tensor:
                    return torch.stack([getattr(single, name)(seed=seed_for(f"{s}-{i}"))
                                        for i in range(n)]).unsqueeze(1)
            elif method == "smalls":
                n = sum(SMALL_CALLS) * SMALL_ROUNDS
                seed = self.seed(f"{t.name}-{family}-{grid.label}-smalls")
                how = (f" in calls of {SMALL_CALLS[0]} to {SMALL_CALLS[-1]} values with scalar "
                       "parameters, float64 and float32 in turn")
                blocks = 0
                # The odd rounds in float32 (the point's parameters rounded to it): the float32
                # grid is a batch, so a backend's float32 path for scalar parameters (10% too
                # wide: an outside trial) was reached nowhere else.
                point = point_params(family, params, 0)
                point32 = {k: v.to(torch.float32) if isinstance(v, torch.Tensor)
                           and v.is_floating_point() else v for k, v in point.items()}
                pair = (make(family, point, t), make(family, point32, t))
                given += [point, point32]

                def draw(name: str, s: int) -> torch.Tensor:
                    # torch.cat promotes the float32 rounds to the float64 ones' dtype
                    # rounds 2 and 3 of every 4 with seeds below 2^32 (0, 42: a user's
                    # commonest seeds; a Gamma whose small seeds took a legacy path that read
                    # its rate as a scale passed: an outside trial)
                    return torch.cat([getattr(pair[r % 2], name)(
                        (k,), seed=seed_for(f"{s}-{r}-{k}") % (2**32 if r % 4 >= 2 else 2**63))
                        for r in range(SMALL_ROUNDS) for k in SMALL_CALLS]).unsqueeze(1)

                def support_of(x: torch.Tensor) -> str:
                    # each dtype's rounds against its own distribution: a constraint's
                    # tolerance is its dtype's (a float32 Cholesky factor's rows have norm 1
                    # to float32's precision)
                    rows = x.reshape(SMALL_ROUNDS, -1, *x.shape[2:])
                    x32 = rows[1::2].flatten(0, 1)[:5000]
                    return (outside_support(pair[0], rows[0::2].flatten(0, 1)[:5000])
                            or outside_support(pair[1], x32.to(torch.float32)
                                               if x32.is_floating_point() else x32))
            elif method == "scalar":
                # Each grid point with scalar parameters (batch ()), in a call of its own: a
                # backend may take another path for them (torch's in-place kernels for
                # scalar parameters from 256 values), which the batched draws never reach.
                n = scalar_rows(family)
                seed = self.seed(f"{t.name}-{family}-{grid.label}-scalar")
                how = f" with scalar parameters, each grid point in a call of {n} values"
                blocks = 0
                points_given = [leaves(point_params(family, params, j))
                                for j in range(batch[0])]
                given += points_given
                singles = [make(family, one, t) for one in points_given]

                def draw(name: str, s: int) -> torch.Tensor:
                    return torch.stack([getattr(one, name)((n,), seed=seed_for(f"{s}-{j}"))
                                        for j, one in enumerate(singles)], dim=1)
            elif method == "event2":
                n = EVENT2_QUICK if self.quick else EVENT2_FULL
                seed = self.seed(f"{t.name}-{family}-{grid.label}-event2")
                how = " at event size 2"
                blocks = 1

                def draw(name: str, s: int) -> torch.Tensor:
                    return getattr(dist, name)((n,), seed=s)
            elif method == "batches":
                # The grid's points laid out in batch shapes no other draw has (see
                # BATCH_LAYOUTS): every batch element of every layout is a column of its own.
                n = BATCHES_QUICK if self.quick else BATCHES_FULL
                seed = self.seed(f"{t.name}-{family}-{grid.label}-batches")
                how = ""
                blocks = 0
                g = batch[0]
                laid = [laid_out(family, params, shape) for shape in BATCH_LAYOUTS]
                given += laid
                layouts = [make(family, p, t) for p in laid]
                idx = torch.cat([torch.arange(math.prod(s)) % g for s in BATCH_LAYOUTS])
                columns_params = laid_out(family, params, (len(idx),), idx)
                points_of = grid_points(family, params)
                labels = tuple(
                    f"{grid.label}[{e % g}] ({points_of[e % g]}) as element {e} of batch_shape "
                    f"{shape}" for shape in BATCH_LAYOUTS for e in range(math.prod(shape)))

                def draw(name: str, s: int) -> torch.Tensor:
                    return torch.cat([layout_rows(getattr(d, name), shape, n, seed_for(f"{s}-{i}"))
                                      for i, (d, shape) in enumerate(zip(layouts, BATCH_LAYOUTS))],
                                     dim=1)
            elif len(batch) == 1 and n % (copies(grid, n) * 2) == 0:
                # The grid as a two-dimensional batch, drawn with a two-dimensional sample
                # shape, or as a three-dimensional batch with a three-dimensional sample shape
                # (see stacked() and stacked_rows()).
                wide = copies(grid, n)
                deep = three_d(grid, n)
                given.append(leaves(stacked(family, params, wide, deep)))
                multi = make(family, given[-1], t)
                how = _how(grid)
                blocks = wide  # one call: each point's copies, n / wide rows each

                def draw(name: str, s: int) -> torch.Tensor:
                    return stacked_rows(_seeding(getattr(multi, name), grid), n, s, wide, deep)
            else:
                how = _how(grid)
                blocks = 1 if len(batch) == 1 else 0

                def draw(name: str, s: int) -> torch.Tensor:
                    return _seeding(getattr(dist, name), grid)((n,), seed=s)
            names = ["rsample" if method == "rsample" else "sample"] + (
                ["rsample"] if both else [])
            # The same seed for both: where rsample() draws sample()'s values bit for bit (a
            # reparameterised sampler: torch's and TFP's), its columns would repeat the
            # sample() columns' statistics, and the draw is judged once.
            snapshot = [{k: v.detach().clone() for k, v in g.items()
                         if isinstance(v, torch.Tensor)} for g in given]
            xs_parts = []
            for name in names:
                with torch.enable_grad() if name == "rsample" else contextlib.nullcontext():
                    xs_parts.append(draw(name, seed).detach())
        _parameters_intact(" and ".join(f"{name}()" for name in names) + how, given, snapshot)
        same = len(xs_parts) > 1 and bool(torch.equal(xs_parts[0].detach(),
                                                      xs_parts[1].detach()))
        if same:
            names, xs_parts = names[:1], xs_parts[:1]
        x = xs_parts[0] if len(xs_parts) == 1 else torch.cat(xs_parts, dim=1)
        parts = tuple(f"{name}(){how}" for name in names) if len(names) > 1 else ()
        called = " and ".join(f"{name}()" for name in names) + how
        if labels:
            called = f"sample() with the grid laid out in {len(BATCH_LAYOUTS)} batch shapes"
        if same:
            called = f"sample() and rsample(){how} (which drew the same values)"
        t_draw = time.perf_counter() - t0
        xs = x.detach().to("cpu")
        spec = FAMILIES[family]
        if xs.dtype != dtype and spec.kind != "index":
            raise CheckFailure(f"{called} returned dtype {xs.dtype} for {dtype} parameters")
        xn = xs.double().numpy()
        bad = ~np.isfinite(xn)
        points = grid_points(family, params)
        if bad.any():
            where = ""
            if xn.ndim >= 2 and len(batch) == 1 and points:
                cols = np.unique(np.nonzero(bad)[1])
                probe = Draw(n, seed, [], True, points, 0.0, parts=parts)
                where = (f" in {cols.size} of its {xn.shape[1]} columns, the first at "
                         f"{probe.point(grid.label, int(cols[0]))}")
            raise CheckFailure(
                f"{called} returned {int(bad.sum())} non-finite values out of {xn.size}"
                f"{where} (e.g. {xn[bad][:3].tolist()})", n=n, seed=seed)
        if method != "sample":
            twin = self._draws.get((t.name, family, grid.label, "sample"))
            if (isinstance(twin, Draw) and twin.values is not None and twin.seed == seed
                    and twin.values.shape == xn.shape and np.array_equal(twin.values, xn)):
                return Draw(n, seed, twin.projections, twin.support_ok, points, t_draw,
                            shared=True, called=called, outside=twin.outside)
        if columns_params is not None:
            dist = make(family, columns_params, t)
            batch = tuple(dist.batch_shape)
        elif parts:  # the parameters of every part's columns, in the order of the columns
            dist = make(family, tiled(family, params, len(parts)), t)
            batch = tuple(dist.batch_shape)
        p = params_np(dist, spec.params)
        rng = np.random.default_rng(self.seed(f"{family}-{grid.label}-projections"))
        projs = cases.projections(family, p, xn, batch, rng)
        for pr in projs:
            # ties are judged at the resolution of the draw (the small calls' has float32
            # rounds: a value rounded onto the edge of the support stands for reals inside)
            if xs.dtype == torch.float32 or (method == "smalls" and xs.is_floating_point()):
                pr.resolution = np.float32
            pr.copies = blocks
        # The support check of matrix families is costly: the first 5000 draws suffice for it.
        # Only a sample draw keeps its values: an rsample draw of the family compares with them.
        outside = (support_of(x.detach()) if support_of is not None
                   else outside_support(dist, x[:5000].detach()))
        return Draw(n, seed, projs, not outside, points, t_draw,
                    xn if method == "sample" else None, called=called, parts=parts,
                    outside=outside, labels=labels)

    # -------------------------------------------------------------- normal scores
    def provide(self, scores: Iterable[PitScores]) -> None:
        """Hand over summaries computed elsewhere (a worker process) to the agreement checks."""
        for s in scores:
            self._scores[(s.backend, s.family, s.grid, s.method, s.which)] = s

    def keep(self, s: PitScores) -> None:
        self._scores[(s.backend, s.family, s.grid, s.method, s.which)] = s

    def pit_scores(self, t: Target, family: str, grid: Grid, method: str,
                   which: str) -> PitScores:
        """The normal-score summary of one draw: from the sampler check that computed it, or
        computed now from the draw."""
        key = (t.name, family, grid.label, method, which)
        hit = self._scores.get(key)
        if hit is None:
            from .layers.sampler import pit_summary

            hit = pit_summary(self, t, family, grid, method, which)
            self._scores[key] = hit
        return hit


#: Copies of the grid in the sampler's two-dimensional batches (see :func:`stacked`): a batch
#: of 32 G elements (96 to 192), where a backend may take a path for large batches.
STACKED_COPIES = 32


#: The grids the sampler layer draws through ``generator=`` (a ``torch.Generator`` seeded
#: with the draw's seed) instead of ``seed=``: the float32 grid, so that the law of that path
#: is judged at a grid's full n (a backend 5% too wide with ``generator=`` alone passed every
#: check: the ``generator`` rule judges reproducibility, not the law; an outside trial).
GENERATOR_GRIDS = frozenset({"float32"})
GENERATOR_HOW = " with generator="
#: The grids drawn unseeded, from the backend's global stream, right after
#: ``polysample.manual_seed`` with the draw's seed (the caller's global seed restored after):
#: the typical grid, so that the law of that path is judged at a grid's full n (a Normal 5%
#: too wide in unseeded calls alone passed every check: every statistical draw was seeded, and
#: the ``global_stream`` rule judges reproducibility, not the law; an outside trial). The
#: other grids keep ``seed=`` (the corners, edges and sweep) and ``generator=`` (float32).
GLOBAL_GRIDS = frozenset({"typical"})
GLOBAL_HOW = " from the global stream"


def _how(grid: Grid) -> str:
    """How ``grid``'s draw is seeded, as the messages say it (nothing for ``seed=``)."""
    return (GENERATOR_HOW if grid.label in GENERATOR_GRIDS else
            GLOBAL_HOW if grid.label in GLOBAL_GRIDS else "")


def _seeding(fn: Callable[..., torch.Tensor], grid: Grid) -> Callable[..., torch.Tensor]:
    """``fn`` (a distribution's ``sample`` or ``rsample``), given its seed as ``seed=``, or
    for :data:`GENERATOR_GRIDS` as a ``torch.Generator`` seeded with it, or for
    :data:`GLOBAL_GRIDS` as the global seed of an unseeded call."""
    if grid.label in GLOBAL_GRIDS:
        def through_global_stream(shape: tuple[int, ...], seed: int) -> torch.Tensor:
            from ..core.seeds import manual_seed, preserved_global_seed

            with preserved_global_seed():
                manual_seed(int(seed))
                return fn(shape)

        return through_global_stream
    if grid.label not in GENERATOR_GRIDS:
        return fn

    def through_generator(shape: tuple[int, ...], seed: int) -> torch.Tensor:
        return fn(shape, generator=torch.Generator().manual_seed(int(seed) % 2**64))

    return through_generator


def copies(grid: Grid, n: int) -> int:
    """Copies of ``grid`` in the sampler's batch for ``n`` draws per point:
    :data:`STACKED_COPIES`, or ``n / grid.rows_per_copy`` (a wide batch: the float32 grid)."""
    return STACKED_COPIES if grid.rows_per_copy is None else max(1, n // grid.rows_per_copy)


def three_d(grid: Grid, n: int) -> bool:
    """Whether the sampler lays ``grid``'s draw of ``n`` rows per point out in three
    dimensions (see :func:`stacked_rows`): a ``deep`` grid (the corners), where its copies and
    ``n`` allow it. The typical and float32 grids stay two-dimensional, with the grid points
    along the last batch dimension, so both layouts are judged (and neighbouring batch
    elements of the typical grid are different points: the independence check compares
    them)."""
    c = copies(grid, n)
    return grid.deep and c % 2 == 0 and n % (4 * c) == 0


def stacked_rows(fn: Callable[..., torch.Tensor], n: int, seed: int,
                 copies: int = STACKED_COPIES, deep: bool = False) -> torch.Tensor:
    """``n`` draws per grid point from ``fn`` (the ``sample``/``rsample`` of a distribution on
    the batch ``(copies, G)``, or ``(G, 2, copies / 2)`` when ``deep``, :func:`stacked`) as
    ``(n, G, *event)``: one call with the sample shape ``(n / (2 copies), 2)``, or
    ``(n / (4 copies), 2, 2)`` when ``deep``; a point's rows are its first copy's draws in
    order (the last sample dimension fastest), then the next copy's. Neighbouring rows are
    neighbouring samples of one batch element, along any sample dimension (the independence
    and repeat checks judge them). Three dimensions: a backend wrong only for batches or
    sample shapes of three or more dimensions (a reversed batch dimension, values repeated
    along the last sample dimension) passed every check of two."""
    if deep:
        x = fn((n // (4 * copies), 2, 2), seed=seed)  # (a, 2, 2, G, 2, copies / 2, *event)
        x = x.movedim((4, 5), (0, 1))  # (2, copies / 2, a, 2, 2, G, *event)
        return x.reshape((n,) + tuple(x.shape[5:]))
    x = fn((n // (2 * copies), 2), seed=seed)
    x = x.movedim(2, 0)
    return x.reshape((n,) + tuple(x.shape[3:]))


def _parameters_intact(called: str, given: list[dict[str, Any]],
                       snapshot: list[dict[str, torch.Tensor]]) -> None:
    """The parameters a draw was given hold the values they had (a write through NumPy or
    DLPack moves no version counter: only the values show it)."""
    for g, kept in zip(given, snapshot):
        changed = [k for k, v in kept.items()
                   if not (g[k].shape == v.shape and torch.equal(g[k].detach(), v))
                   and not (g[k].is_floating_point() and g[k].shape == v.shape
                            and torch.allclose(g[k].detach(), v, rtol=0, atol=0,
                                               equal_nan=True))]
        if changed:
            raise CheckFailure(
                f"{called} changed the values of {', '.join(changed)}, which the caller "
                "passed: a backend must not write into the tensors it is given (they are the "
                "caller's), in large calls too; compute on copies")


def point_params(family: str, params: Mapping[str, Any], j: int) -> dict[str, Any]:
    """The parameters of grid point ``j`` of a one-dimensional batch of grid points, with no
    batch dimension (the ``scalar`` draw of the sampler layer)."""
    spec = FAMILIES[family]
    return {name: v[j].clone() if isinstance(v, torch.Tensor)
            and v.dim() > spec.param_event_dim(name) else v for name, v in params.items()}


def stacked(family: str, params: Mapping[str, Any], copies: int = STACKED_COPIES,
            deep: bool = False) -> dict[str, Any]:
    """``params``, a one-dimensional batch of G grid points, as the batch (STACKED_COPIES, G),
    or (G, 2, STACKED_COPIES / 2) when ``deep``: every tensor parameter with a batch dimension
    gets leading dimensions of identical copies (a new contiguous tensor); the others (a
    scalar temperature, LKJCholesky's ``dim``) broadcast as they are.

    The sampler layer draws its grids this way, so a backend that reads a batch in the wrong
    order (column-major, or the parameters of one element for another's values) mixes grid
    points and fails the distribution checks; the ``calls`` draws keep the one-dimensional
    batch, so both layouts are judged. A point's draws are its copies' rows one copy after
    the other, so neighbouring rows are neighbouring samples of one batch element (the
    independence check) and copies that repeat each other's values fail the repeat check."""
    spec = FAMILIES[family]
    out: dict[str, Any] = {}
    for name, v in params.items():
        if (isinstance(v, torch.Tensor) and name not in spec.integer_params
                and v.dim() > spec.param_event_dim(name)):
            if deep:  # (G, 2, copies / 2): the grid points along the first dimension
                g, ev = v.shape[0], tuple(v.shape[1:])
                v = v.reshape((g, 1, 1) + ev).expand((g, 2, copies // 2) + ev).clone()
            else:
                v = v.unsqueeze(0).expand((copies,) + tuple(v.shape)).clone()
        out[name] = v
    return out


def tiled(family: str, params: Mapping[str, Any], times: int) -> dict[str, Any]:
    """``params``, a one-dimensional batch of G grid points, repeated ``times`` times along
    the batch: the batch (times * G,) of the columns of a draw made of parts (see
    :attr:`Draw.parts`)."""
    out = stacked(family, params, times)
    spec = FAMILIES[family]
    for name, v in out.items():
        if (isinstance(v, torch.Tensor) and name not in spec.integer_params
                and v.dim() > spec.param_event_dim(name) + 1):
            out[name] = v.flatten(0, 1)
    return out


#: The ``event2`` draw of the sampler layer's ``event2_ks`` check: the typical grid's points
#: at event size 2 (two categories, a bivariate normal, 2 x 2 matrices), this many draws per
#: point (quick mode, full mode). The other grids have event sizes 3 (typical, corners) and 5
#: (float32), and the semantics layer draws size 1: a sampler with a branch of its own for
#: two categories (a Dirichlet drawn through a Beta) was judged nowhere (an outside trial's
#: Dirichlet of exactly 2 categories passed).
EVENT2_QUICK = 1 << 14
EVENT2_FULL = 1 << 16


@functools.cache
def has_event_size(family: str) -> bool:
    """Whether ``family``'s parameters have an event size (categories, dimension) that the
    grids choose: its example parameters differ between event sizes 2 and 3."""
    c = cases.CASES[family]
    a, b = c.example((3,), torch.float64, 3), c.example((3,), torch.float64, 2)
    return any((v.shape != b[k].shape) if isinstance(v, torch.Tensor) else (v != b[k])
               for k, v in a.items())


#: The ``batches`` draw of the sampler layer's ``batches_ks`` and ``batches_indep`` checks:
#: the typical grid's points laid out in these batch shapes, point ``e % G`` at flat batch
#: element ``e`` (G points), every element of every layout a column of the draw (67). Every
#: other draw of the layer lays its grid out as ``(G,)``, ``(copies, G)`` or
#: ``(G, 2, copies / 2)``: a backend that read the parameters of a neighbouring element in
#: batches of 5 to 7, read batches of four dimensions in reverse order, or gave element
#: ``i + 7`` element ``i``'s noise, passed every check (outside trials). One- to
#: five-dimensional batches of 4 to 16 elements, with dimensions of size 1 among them.
BATCH_LAYOUTS: tuple[tuple[int, ...], ...] = (
    (4,), (5,), (6,), (7,), (8,), (9,), (2, 2, 2, 2), (2, 1, 3, 1, 2))
#: Values of each batch element (quick mode, full mode): powers of two, drawn in calls of
#: :func:`layout_call_rows` rows.
BATCHES_QUICK = 1024
BATCHES_FULL = 4096
#: The most values one call of the ``batches`` draw makes: 257 to 512 (every layout's), the
#: size class of the semantics layer's draws (one shape bucket on TFP's JAX substrate: no
#: program of its own).
BATCH_CALL_VALUES = 512


def layout_call_rows(shape: tuple[int, ...]) -> int:
    """The sample rows of one call of the batches draw for the batch ``shape``: the largest
    power of two within :data:`BATCH_CALL_VALUES` values."""
    return 1 << max(0, (BATCH_CALL_VALUES // math.prod(shape)).bit_length() - 1)


def laid_out(family: str, params: Mapping[str, Any], shape: tuple[int, ...],
             index: torch.Tensor | None = None) -> dict[str, Any]:
    """``params``, a one-dimensional batch of G grid points, as the batch ``shape``: point
    ``index[e]`` (by default ``e % G``) at flat element ``e``; each tensor parameter with a
    batch dimension indexed and reshaped, the others broadcast as they are."""
    spec = FAMILIES[family]
    out: dict[str, Any] = {}
    for name, v in params.items():
        if isinstance(v, torch.Tensor) and v.dim() > spec.param_event_dim(name):
            idx = torch.arange(math.prod(shape)) % v.shape[0] if index is None else index
            v = v[idx].reshape(shape + tuple(v.shape[1:])).clone()
        out[name] = v
    return out


def layout_rows(fn: Callable[..., torch.Tensor], shape: tuple[int, ...], n: int,
                seed: int) -> torch.Tensor:
    """``n`` draws of every element of the batch ``shape`` by ``fn`` (a ``sample``), as
    ``(n, elements, *event)``: ``n / r`` calls of the sample shape ``(r,)``
    (:func:`layout_call_rows`), each with a seed derived from ``seed``, one after the other."""
    r = layout_call_rows(shape)
    xs = [fn((r,), seed=seed_for(f"{seed}-{i}")) for i in range(-(-n // r))]
    return torch.cat(xs)[:n].flatten(1, len(shape))


#: The ``calls`` draw of the sampler layer's ``calls_ks`` check: this many calls (quick mode,
#: full mode) of ``CALL_ROWS`` rows each, every call with its own seed.
CALLS_QUICK = 256
CALLS_FULL = 1024
CALL_ROWS = 16
#: The ``ones`` draw of the sampler layer's ``ones_ks`` check: this many one-value calls
#: (``sample()`` with scalar parameters, each with its own seed) at the typical grid's first
#: point: the commonest call of a training loop, which every other draw reached only as a
#: value among many (a backend whose one-value path drew a half-normal passed).
ONES_CALLS = 512
#: The ``smalls`` draw of the sampler layer's ``smalls_ks`` check: a call of each of these
#: sizes (``sample((k,))`` with scalar parameters, each with its own seed), ``SMALL_ROUNDS``
#: times (float64 and float32 in turn), at the typical grid's first point: 24,948 values in
#: 756 calls. Calls of 2 to 64
#: values with one parameter set are a small-n path of their own in some samplers (a Gamma
#: drawn with its rate 10% off there passed every check: an outside trial); at this n
#: ``smalls_pit_mean`` finds it at the pooled alpha (1.16-1.41 times its threshold at the
#: exponential's typical point, eight salts), ``smalls_ks`` at 7 of the 8.
SMALL_CALLS = tuple(range(2, 65))
SMALL_ROUNDS = 12
#: The values of a large call with scalar parameters (batch ``()``), float64: the ``scalar``
#: draw of the sampler layer's ``scalar_ks`` check (each grid point of the typical grid in a
#: call of its own) and the large call of the semantics layer's ``seeds`` and ``generator``
#: rules. Far beyond 256, where the torch backend's scalar kernels take over. One shape per
#: family (:func:`scalar_rows`), so one program each on TFP's JAX substrate serves both
#: layers (calls of more than 512 values compile a program per shape); in both modes.
SCALAR_VALUES = 8192


def scalar_rows(family: str) -> int:
    """The rows of a large scalar call of ``family``: :data:`SCALAR_VALUES` values or just
    more (a Wishart's 3 x 3 matrices: 911 draws), so that a family with a large event costs
    no more than a univariate one."""
    event = getattr(torch.distributions, family)(**example_params(family, ())).event_shape
    return -(-SCALAR_VALUES // event.numel())


#: Modules whose frames never locate a backend's failure: polysample's own plumbing (the
#: core's contract checks raise there about the backend's output, in messages that say what
#: went wrong) and the libraries a backend calls into (a ValueError deep inside NumPy is
#: located where the backend called NumPy).
_NOT_THE_BACKEND = ("polysample.core", "polysample.conformance", "polysample.plugin",
                    "numpy", "scipy", "torch", "jax", "jaxlib", "tensorflow",
                    "tensorflow_probability", "keras", "tf_keras", "pluggy")


def raised_at(exc: BaseException) -> str | None:
    """``file:line`` of the innermost frame of ``exc``'s traceback in the backend's code (the
    built-in backends' modules, a plugin's, the user's), None when there is none: where the
    core raised about a backend's output, the message says what the backend did."""
    frames = []
    tb = exc.__traceback__
    while tb is not None:
        frames.append(tb)
        tb = tb.tb_next
    for frame in reversed(frames):
        module = str(frame.tb_frame.f_globals.get("__name__", ""))
        top = module.split(".", 1)[0]
        if (top in sys.stdlib_module_names or module == "polysample"
                or any(module == m or module.startswith(m + ".") for m in _NOT_THE_BACKEND)):
            continue
        code = frame.tb_frame.f_code
        return f"{code.co_filename.rsplit('/', 1)[-1]}:{frame.tb_lineno}"
    return None


def outside_support(dist: Any, x: torch.Tensor) -> str:
    """Empty where every value of ``x`` lies in ``dist``'s support; else how many do not, of
    what support, with the first of them. The support is torch's constraint, narrowed where
    torch's is wider than the family's values: a Multinomial's counts sum to exactly
    ``total_count`` (torch's constraint allows any sum up to it), a VonMises value lies in
    ``[-pi, pi]`` (torch's constraint is the real line; its sampler, NumPy's and TFP's wrap
    to that interval), widened by one unit of the dtype's precision (float32's pi is above
    pi)."""
    if not x.numel():
        return ""
    try:
        ok = dist.support.check(x)
    except Exception:  # noqa: BLE001 - no support check is no evidence against the backend
        return ""
    what = f"the support {dist.support}"
    if isinstance(dist, torch.distributions.Multinomial):
        ok = ok & (x.sum(-1) == dist.total_count)
        what = f"the support (counts summing to total_count = {dist.total_count})"
    elif isinstance(dist, torch.distributions.VonMises) and x.is_floating_point():
        ok = ok & (x.abs() <= math.pi * (1 + torch.finfo(x.dtype).eps))
        what = "the support [-pi, pi]"
    if bool(ok.all()):
        return ""
    bad = ~ok
    unit = "values" if ok.dim() == x.dim() else "events"
    first = [torch.as_tensor(v).tolist() for v in x[bad][:3]]
    return f"{int(bad.sum())} of {bad.numel()} {unit} outside {what}, e.g. {first}"


def nan_cotangent(out: torch.Tensor, inputs: Mapping[str, torch.Tensor], what: str) -> None:
    """Raise :class:`CheckFailure` unless a NaN upstream gradient at the first element of
    ``out`` comes back NaN in every entry of ``inputs`` that the element moves with (the
    entries where a cotangent of 1 there gives a nonzero gradient). A backward pass that makes
    it finite (``nan_to_num`` on the product with the cotangent, a mask of non-finite entries)
    gives a NaN loss finite parameter updates: a training run that should stop goes on with
    wrong gradients. ``out``'s graph is used twice and then released; ``what`` names the call
    (``"rsample((16,))"``, ``"log_prob"``)."""
    one = torch.zeros(out.shape, dtype=out.dtype, device=out.device)
    one.view(-1)[0] = 1.0
    names = list(inputs)
    tensors = [inputs[k] for k in names]
    moved = torch.autograd.grad(out, tensors, one, allow_unused=True, retain_graph=True)
    nan = torch.where(one != 0, torch.tensor(float("nan"), dtype=out.dtype, device=out.device),
                      one)
    back = torch.autograd.grad(out, tensors, nan, allow_unused=True)
    for k, g1, g2 in zip(names, moved, back):
        if g1 is None or not bool((g1 != 0).any()):
            continue
        entries = g1 != 0
        finite = int(entries.sum()) if g2 is None else int(torch.isfinite(g2[entries]).sum())
        if finite:
            raise CheckFailure(
                f"a NaN upstream gradient at the first value of {what} came back finite in "
                f"{finite} of the {int(entries.sum())} entries of the gradient w.r.t. {k} that "
                "the value moves with (a backward pass that masks non-finite cotangents): a NaN "
                "loss would give finite parameter updates. Propagate the cotangent as autograd "
                "does (0 * NaN is NaN), and make only the Jacobian's own non-finite factors "
                "finite, if any")


def _f(x: Any) -> float | None:
    return None if x is None else float(x)


# ---------------------------------------------------------------------- generation
UNIT_LAYERS = ("semantics", "density", "sampler", "gradient")

#: Families whose checks cost several times the others' (rejection samplers, special-function
#: CDFs, matrices): per backend, their units took 3 to 4 times the others' (medians, a warm
#: quick run of the four built-in backends, 2026-12-02).
HEAVY_FAMILIES = frozenset({
    "Beta", "Dirichlet", "Gamma", "StudentT", "FisherSnedecor", "Wishart", "VonMises",
    "InverseGamma", "Chi2", "Binomial", "NegativeBinomial", "Poisson", "LKJCholesky",
    "MultivariateNormal", "LowRankMultivariateNormal", "LogisticNormal"})


def family_weight(family: str) -> float:
    """The relative cost of a family's checks (see :data:`HEAVY_FAMILIES`)."""
    return 3.5 if family in HEAVY_FAMILIES else 1.0


def generate_checks(targets: Sequence[Target], families: Sequence[str] | None = None,
                    layers: Sequence[str] = LAYERS) -> Iterator[Check]:
    """Every check of a run: per backend and family the unit layers, then agreement."""
    from .layers import agreement, density, gradient, mixture, sampler, semantics, sweep

    def chained(*makers: Callable[[Target, str, FamilySupport], Iterator[Check]]
                ) -> Callable[[Target, str, FamilySupport], Iterator[Check]]:
        def checks(t: Target, family: str, support: FamilySupport) -> Iterator[Check]:
            for make_checks in makers:
                yield from make_checks(t, family, support)
        return checks

    per_family: dict[str, Callable[[Target, str, FamilySupport], Iterator[Check]]] = {
        "semantics": semantics.checks, "density": density.checks,
        "sampler": chained(sampler.checks, sweep.checks, mixture.sampler_checks),
        "gradient": chained(gradient.checks, mixture.gradient_checks)}
    wanted = None if families is None else set(families)
    for t in targets:
        fams = t.families()
        for family in sorted(fams):
            if family not in FAMILIES or (wanted is not None and family not in wanted):
                continue
            support = fams[family]
            if not support.sample:
                continue
            for layer in UNIT_LAYERS:
                if layer in layers:
                    yield from per_family[layer](t, family, support)
    if "agreement" in layers:
        for a, b in itertools.combinations(targets, 2):
            fa, fb = a.families(), b.families()
            for family in sorted(set(fa) & set(fb)):
                if family not in FAMILIES or (wanted is not None and family not in wanted):
                    continue
                if not (fa[family].sample and fb[family].sample):
                    continue
                for grid in grids(family):
                    if grid.judged_by("agreement"):
                        yield from agreement.checks(a, b, family, grid)


def units(checks: Iterable[Check]) -> list[list[Check]]:
    """Consecutive checks of one (backend, family) form a unit (they share draws); each
    agreement check is a unit of its own."""
    out: list[list[Check]] = []
    key = None
    for c in checks:
        k = None if c.layer == "agreement" else (c.backend, c.family)
        if k is None or k != key or not out:
            out.append([c])
        else:
            out[-1].append(c)
        key = k
    return out
