"""The generator of conformance checks: one ``Check`` per (backend, family, grid, check name).

Layers (see ``docs/conformance.md``), cheapest first:

1. ``semantics`` -- shapes, dtypes, gradients flags, seeds, support, errors (no statistics).
2. ``density`` -- ``log_prob`` against SciPy (float64 and float32) and ``gradcheck``.
3. ``sampler`` -- one vectorised float64 draw per (family, grid, method) tested against SciPy:
   K-S with the DKWM bound on every univariate statistic of :func:`reference.projections`,
   exact targeted moment tests on the normal scores ``zeta = Phi^-1(F(x))`` (``pit_mean``:
   ``sum zeta ~ N(0, n)``; ``pit_var``: ``sum zeta^2 ~ chi2(n)``) and, for counts, on the sum
   (its exact law: Poisson, Binomial, negative binomial).
4. ``gradient`` -- ``grad_cdf``: per sample, ``dx/dtheta = -dF/dtheta / p`` with dF/dtheta by a
   Richardson-extrapolated central difference of SciPy's CDF (no sampling noise);
   ``grad_noise``: the noise recovered from ``x`` does not move with theta (LogisticNormal,
   RelaxedOneHotCategorical); ``grad_mean``: the mean pathwise gradient of
   ``f(x) = w1.x + w2.x^2`` against the analytic gradient of ``E f`` (z-test with a
   Cornish-Fisher skewness correction).
5. ``agreement`` -- between backends (in :func:`polysample.conformance.check_backends`): the
   normal-score means of two backends' draws agree (two-sample z-tests, exact under H0).
"""

from __future__ import annotations

import math
import time
import traceback
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from scipy import special
from scipy import stats as sstats

from ..core.backend import Backend, FamilySupport
from ..core.errors import (
    InvalidParameterError,
    NotReparameterizableError,
)
from ..core.families import FAMILIES
from . import reference as ref
from .grids import Grid, example_params, grad_leaves, grids
from .stats import (
    ALPHA_CHECK,
    dkwm_detectable,
    dkwm_threshold,
    ks_continuous,
    ks_integer,
    norm_isf,
    seed_for,
    z_detectable,
    z_threshold,
)

__all__ = ["Check", "CheckResult", "Runner", "generate_checks", "sample_size", "LAYERS",
           "GRAD_SAMPLES", "GRAD_MEAN_SAMPLES"]

LAYERS = ("semantics", "density", "sampler", "gradient", "agreement")

#: Samples per per-sample gradient check (CDF identity, noise invariance): no sampling noise.
GRAD_SAMPLES = 32
#: Samples per mean-pathwise-gradient z-test (full, quick).
GRAD_MEAN_SAMPLES = (20_000, 2_000)
#: Max relative error of a per-sample gradient (CONFORMANCE.md: 5e-3).
GRAD_RTOL = 5e-3


def sample_size(family: str, quick: bool) -> int:
    """Draws per batch element for the sampler checks of ``family``.

    Full mode: the normal scores detect a 1% scale error (``E zeta^2 - 1 = 0.0201`` for Normal)
    with miss rate 1e-3 at n >= 4.6e5, and a 0.01 sigma location error (``E zeta = 0.01``) at
    n >= 9.2e5: Normal carries both claims with n = 1e6, the other continuous families the
    scale claim with 5e5 (asserted in :func:`polysample.conformance.design_assertions`).
    Discrete and multivariate families use 2e5 (K-S detects 0.013; the exact sum test a mean
    shift of 0.021 sigma). Quick mode divides by 50: same alpha, weaker power.
    """
    spec = FAMILIES[family]
    if family == "Normal":
        n = 1_000_000
    elif spec.univariate and spec.kind == "continuous":
        n = 500_000
    else:
        n = 200_000
    return n // 50 if quick else n


@dataclass
class CheckResult:
    """The outcome of one check. ``status``: pass, fail, xfail, xpass or skip."""

    id: str
    backend: str
    family: str
    grid: str
    check: str
    layer: str
    status: str
    message: str = ""
    statistic: float | None = None
    threshold: float | None = None
    n: int | None = None
    seed: int | None = None
    alpha: float | None = None
    detectable: float | None = None
    seconds: float = 0.0
    reason: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        return self.status == "fail"

    def to_dict(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in (
            "id", "backend", "family", "grid", "check", "layer", "status", "message", "statistic",
            "threshold", "n", "seed", "alpha", "detectable", "seconds", "reason")}
        d["details"] = self.details
        return _jsonable(d)  # type: ignore[no-any-return]


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return _jsonable(x.tolist())
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return str(x)
    return x


class CheckFailure(AssertionError):
    """Raised inside a check: the check fails with this message and the attached numbers."""

    def __init__(self, message: str, **numbers: Any):
        super().__init__(message)
        self.numbers = numbers


@dataclass
class Outcome:
    message: str = ""
    statistic: float | None = None
    threshold: float | None = None
    n: int | None = None
    seed: int | None = None
    alpha: float | None = None
    detectable: float | None = None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class Check:
    """One check: ``id`` is ``<backend>-<family>-<grid>-<name>``."""

    backend: str
    family: str
    grid: str
    name: str
    layer: str
    statistical: bool
    fn: Callable[[Runner], Outcome]

    @property
    def id(self) -> str:
        return f"{self.backend}-{self.family}-{self.grid}-{self.name}"


# ---------------------------------------------------------------------- running
class Runner:
    """Runs checks, caching the one vectorised draw per (backend, family, grid, method).

    ``salt`` (``--vary-seed``) changes every seed; ``plots`` keeps, per (family, grid,
    projection), a few hundred quantiles of each backend's draw for the HTML report.
    """

    def __init__(self, quick: bool = False, salt: int = 0):
        self.quick = quick
        self.salt = salt
        self._draws: dict[tuple[str, str, str, str], Any] = {}
        self.plots: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.scores: dict[tuple[str, str, str, str], dict[str, Any]] = {}
        self.grad_errors: dict[tuple[str, str, str], dict[str, Any]] = {}

    def seed(self, key: str) -> int:
        return seed_for(key, self.salt)

    def run(self, check: Check) -> CheckResult:
        t0 = time.perf_counter()
        base = dict(id=check.id, backend=check.backend, family=check.family, grid=check.grid,
                    check=check.name, layer=check.layer)
        caught: list[warnings.WarningMessage] = []
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                out = check.fn(self)
            status, message, numbers = "pass", out.message, out
        except CheckFailure as exc:
            status, message = "fail", str(exc)
            numbers = Outcome(**{k: v for k, v in exc.numbers.items()
                                 if k in Outcome.__dataclass_fields__})
        except _Skip as exc:
            status, message, numbers = "skip", str(exc), Outcome()
        except Exception as exc:  # a backend that raises: the check fails, the run goes on
            status = "fail"
            message = f"raised {type(exc).__name__}: {exc}"
            tb = traceback.extract_tb(exc.__traceback__)
            if tb:
                message += f" (at {tb[-1].filename.rsplit('/', 1)[-1]}:{tb[-1].lineno})"
            numbers = Outcome()
        if caught:
            # Kept as evidence (torch's Wishart warns "Singular sample detected" on valid draws).
            first = {f"{w.category.__name__}: {w.message}" for w in caught}
            numbers.details = dict(numbers.details, warnings=sorted(first)[:5])
        return CheckResult(
            **base, status=status, message=message, statistic=_f(numbers.statistic),
            threshold=_f(numbers.threshold), n=numbers.n, seed=numbers.seed,
            alpha=numbers.alpha, detectable=_f(numbers.detectable),
            seconds=round(time.perf_counter() - t0, 4), details=numbers.details)

    # -------------------------------------------------------------- draws
    def release(self) -> None:
        """Forget cached draws (they are large: about 8 MB per million values)."""
        self._draws.clear()

    def draw(self, backend: str, family: str, grid: Grid, method: str) -> dict[str, Any]:
        key = (backend, family, grid.label, method)
        if any(k[:2] != key[:2] for k in self._draws):
            self.release()  # checks come family by family: keep only this family's draws
        if key not in self._draws:
            try:
                self._draws[key] = self._draw(backend, family, grid, method)
            except Exception as exc:
                self._draws[key] = exc
        d = self._draws[key]
        if isinstance(d, Exception):
            raise d
        return d

    def _draw(self, backend: str, family: str, grid: Grid, method: str) -> dict[str, Any]:
        n = sample_size(family, self.quick)
        params = grid.build(torch.float64)
        dist = _make(family, params, backend)
        seed = self.seed(f"{backend}-{family}-{grid.label}-{method}")
        fn = dist.sample if method == "sample" else dist.rsample
        with torch.no_grad():
            x = fn((n,), seed=seed)
        xs = x.detach().to("cpu")
        if xs.dtype != torch.float64 and not (FAMILIES[family].kind == "index"):
            raise CheckFailure(f"{method}() returned dtype {xs.dtype} for float64 parameters")
        xn = xs.double().numpy()
        bad = ~np.isfinite(xn)
        if bad.any():
            raise CheckFailure(
                f"{method}() returned {int(bad.sum())} non-finite values out of {xn.size} "
                f"(e.g. {xn[bad][:3].tolist()})", n=n, seed=seed)
        spec = FAMILIES[family]
        bshape = tuple(dist.batch_shape)
        p = ref.params_np(dist, spec.params)
        rng = np.random.default_rng(self.seed(f"{family}-{grid.label}-projections"))
        projs = ref.projections(family, p, xn, bshape, rng)
        # The support check of matrix families is costly: the first 5000 draws suffice for it.
        return {"n": n, "seed": seed, "projections": projs,
                "support_ok": _in_support(dist, x[:5000])}


class _Skip(Exception):
    pass


def _f(x: Any) -> float | None:
    return None if x is None else float(x)


def _make(family: str, params: Mapping[str, Any], backend: str, validate: bool = True) -> Any:
    import polysample

    kw = {} if validate else {"validate_args": False}
    return getattr(polysample, family)(**params, backend=backend, **kw)


def _in_support(dist: Any, x: torch.Tensor) -> bool:
    try:
        return bool(dist.support.check(x).all())
    except Exception:
        return True


def _torch_dist(family: str, params: Mapping[str, Any]) -> Any:
    return getattr(torch.distributions, family)(**params)


# ---------------------------------------------------------------------- layer 1: semantics
def _semantics_checks(backend: str, family: str, support: FamilySupport) -> Iterator[Check]:
    spec = FAMILIES[family]

    def shapes(r: Runner) -> Outcome:
        for dtype in (torch.float32, torch.float64):
            params = example_params(family, (2, 3), dtype)
            dist = _make(family, params, backend)
            expected_dtype = torch.int64 if spec.kind == "index" else dtype
            for shape in ((), (4,), (2, 1)):
                x = dist.sample(shape, seed=r.seed(f"{backend}-{family}-shape"))
                want = torch.Size(shape) + dist.batch_shape + dist.event_shape
                if x.shape != want or x.dtype != expected_dtype:
                    raise CheckFailure(f"sample({shape}) returned shape {tuple(x.shape)} dtype "
                                       f"{x.dtype}; expected {tuple(want)} {expected_dtype}")
                if x.requires_grad:
                    raise CheckFailure("sample() returned a tensor that requires grad")
                if not _in_support(dist, x):
                    raise CheckFailure(f"sample({shape}) returned values outside the support "
                                       f"{dist.support}: {x.flatten()[:6].tolist()}")
        return Outcome("shape, dtype, no grad and support hold for float32 and float64")

    yield Check(backend, family, "example", "sample_semantics", "semantics", False, shapes)

    def grads(r: Runner) -> Outcome:
        params = example_params(family, (2, 3), torch.float64)
        leaves = grad_leaves(family, params)
        allowed = support.rsample_params
        if allowed is not None:
            for name in list(leaves):
                if name not in allowed:
                    params[name] = params[name].detach()
                    del leaves[name]
        dist = _make(family, params, backend)
        s = dist.sample((3,))
        if s.requires_grad:
            raise CheckFailure("sample() tracks gradients although it must not")
        if not support.rsample:
            try:
                dist.rsample((3,))
            except NotReparameterizableError:
                return Outcome("rsample() raises NotReparameterizableError as documented")
            raise CheckFailure("rsample() did not raise NotReparameterizableError although the "
                               "backend does not claim rsample for this family")
        x = dist.rsample((3,), seed=r.seed(f"{backend}-{family}-grad"))
        if not leaves:
            return Outcome("no differentiable parameter")
        if not x.requires_grad:
            raise CheckFailure(f"rsample() is detached although {sorted(leaves)} require grad")
        gs = torch.autograd.grad(x.sum(), list(leaves.values()), allow_unused=True)
        missing = [k for k, g in zip(leaves, gs) if g is None]
        if missing:
            raise CheckFailure(f"rsample() carries no gradient to {missing}")
        bad = [k for k, g in zip(leaves, gs) if not torch.isfinite(g).all()]
        if bad:
            raise CheckFailure(f"rsample() gives non-finite gradients for {bad}")
        return Outcome(f"rsample() differentiable in {sorted(leaves)}")

    yield Check(backend, family, "example", "rsample_semantics", "semantics", False, grads)

    def seeds(r: Runner) -> Outcome:
        params = example_params(family, (2, 3), torch.float32)
        dist = _make(family, params, backend)
        a = dist.sample((200,), seed=11)
        b = dist.sample((200,), seed=11)
        if not torch.equal(a, b):
            raise CheckFailure("same seed gave different values")
        c = dist.sample((200,), seed=12)
        d1, d2 = dist.sample((200,)), dist.sample((200,))
        if torch.equal(a, c):
            raise CheckFailure("seeds 11 and 12 gave identical values")
        if torch.equal(d1, d2):
            raise CheckFailure("two unseeded calls gave identical values")
        if support.rsample:
            ra = dist.rsample((50,), seed=5)
            rb = dist.rsample((50,), seed=5)
            if not torch.equal(ra, rb):
                raise CheckFailure("rsample(): same seed gave different values")
        return Outcome("same seed => identical; different or no seed => different")

    yield Check(backend, family, "example", "seeds", "semantics", False, seeds)

    def invalid(r: Runner) -> Outcome:
        import polysample

        params = example_params(family, (2,), torch.float32)
        constrained = _torch_dist(family, example_params(family, (2,), torch.float32)
                                  ).arg_constraints
        key = next(k for k in params if isinstance(params[k], torch.Tensor) and k in constrained)
        params[key] = torch.full_like(params[key], float("nan"))
        try:
            getattr(polysample, family)(**params, backend=backend, validate_args=True)
        except InvalidParameterError:
            return Outcome(f"NaN {key} raises InvalidParameterError")
        raise CheckFailure(f"NaN {key} did not raise InvalidParameterError")

    yield Check(backend, family, "example", "invalid_params", "semantics", False, invalid)


# ---------------------------------------------------------------------- layer 2: densities
def _density_checks(backend: str, family: str, support: FamilySupport) -> Iterator[Check]:
    if not support.log_prob:
        return
    spec = FAMILIES[family]
    if family in ("LKJCholesky", "LogisticNormal", "RelaxedOneHotCategorical",
                  "OneHotCategorical", "OneHotCategoricalStraightThrough"):
        return  # no independent reference density

    def points(dtype: torch.dtype) -> tuple[dict[str, Any], Any, torch.Tensor]:
        params = example_params(family, (3,), dtype)
        tdist = _torch_dist(family, example_params(family, (3,), torch.float64))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(1234)
            value = tdist.sample((5,))
        if family == "Wishart":
            value = (value + value.transpose(-1, -2)) / 2
        return params, tdist, value.to(dtype) if spec.kind != "index" else value

    def logprob(dtype: torch.dtype, rtol: float) -> Callable[[Runner], Outcome]:
        def fn(r: Runner) -> Outcome:
            params, tdist, value = points(dtype)
            dist = _make(family, params, backend)
            got = dist.log_prob(value).detach().double().numpy()
            p = ref.params_np(tdist, spec.params)
            v = value.double().numpy()
            if family == "Wishart":
                v = (v + np.swapaxes(v, -1, -2)) / 2
            want = np.asarray(ref.reference_logpdf(family, p, v), dtype=np.float64)
            err = np.abs(got - want) / (np.abs(want) + 1.0)
            worst = float(np.max(err))
            if not np.all(np.isfinite(got)) or worst > rtol:
                i = int(np.argmax(np.where(np.isfinite(err), err, np.inf)))
                raise CheckFailure(
                    f"log_prob differs from SciPy: max |got - want|/(|want| + 1) = {worst:.3g} "
                    f"> {rtol:g}; e.g. got {got.flat[i]:.10g}, want {want.flat[i]:.10g}",
                    statistic=worst, threshold=rtol)
            return Outcome(f"max rel. error {worst:.2g}", statistic=worst, threshold=rtol)
        return fn

    yield Check(backend, family, "example", "log_prob_f64", "density", False,
                logprob(torch.float64, 1e-6))
    yield Check(backend, family, "example", "log_prob_f32", "density", False,
                logprob(torch.float32, 1e-4))

    def gradcheck(r: Runner) -> Outcome:
        params, tdist, value = points(torch.float64)
        leaves = grad_leaves(family, params)
        if family in ("Categorical", "OneHotCategorical", "OneHotCategoricalStraightThrough",
                      "Multinomial", "Dirichlet", "RelaxedOneHotCategorical"):
            raise _Skip("parameters on a simplex: finite differences leave the constraint")
        names = [k for k in leaves if k not in ("scale_tril",)]
        if not names:
            raise _Skip("no free floating parameter")

        def f(*args: torch.Tensor) -> torch.Tensor:
            kw = dict(params)
            kw.update(dict(zip(names, args)))
            return _make(family, kw, backend).log_prob(value)

        ok = torch.autograd.gradcheck(f, tuple(leaves[k] for k in names), eps=1e-6, atol=1e-5,
                                      rtol=1e-4, raise_exception=False)
        if not ok:
            raise CheckFailure(f"torch.autograd.gradcheck of log_prob w.r.t. {names} failed")
        return Outcome(f"gradcheck of log_prob w.r.t. {names}")

    yield Check(backend, family, "example", "log_prob_gradcheck", "density", False, gradcheck)


# ---------------------------------------------------------------------- layer 3: samplers
def _continuous(pr: ref.Projection) -> dict[str, np.ndarray]:
    """Sorted values, reference CDF, tie flags and normal scores of a continuous projection
    (computed once per draw, shared by the K-S and normal-score checks)."""
    c = pr.cache
    if "F" in c:
        return c
    law = pr.ref.law
    xs = np.sort(pr.values, axis=0)
    with np.errstate(all="ignore"):
        F = np.asarray(law.cdf(xs), dtype=np.float64)
        # A law with mass below float64 spacing (Beta(0.01, 0.01) near 1) yields ties: those
        # columns get the K-S test with one ulp of tolerance and no normal-score tests.
        ties = np.any(xs[1:] == xs[:-1], axis=0)
        # 1 - F is exact to ~1e-16 absolute: call sf only where F > 1 - 1e-6 (far tail).
        S = 1.0 - F
        tail = F > 1 - 1e-6
        if tail.any():
            S[tail] = _sf_subset(law, xs, tail)
        zeta = np.where(F >= 0.5, -special.ndtri(S), special.ndtri(F))
    c.update(xs=xs, F=F, ties=ties, zeta=zeta)
    return c


def _sf_subset(law: Any, xs: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``law.sf`` at ``xs[mask]`` only (SciPy frozen laws broadcast their parameters)."""
    if hasattr(law, "dist") and hasattr(law, "args"):
        args = [np.broadcast_to(a, xs.shape)[mask] for a in law.args]
        kwds = {k: np.broadcast_to(v, xs.shape)[mask] for k, v in law.kwds.items()}
        return np.asarray(law.dist.sf(xs[mask], *args, **kwds), dtype=np.float64)
    return np.asarray(law.sf(xs), dtype=np.float64)[mask]


def _ks_with_ulp(xs: np.ndarray, law: Any, F: np.ndarray, ties: np.ndarray) -> np.ndarray:
    D = ks_continuous(xs, F)
    if ties.any():
        n = xs.shape[0]
        i = np.arange(1, n + 1, dtype=np.float64)[:, None]
        cols = np.flatnonzero(ties)
        # Samplers flush or clamp standard variates below the smallest normal float to 0 or to
        # ``tiny`` and then scale them (torch's Chi2(0.01) returns 2 tiny for 2.9% of its
        # draws): a value within 1e3 tiny of 0 stands for all of [0, value]; any other for one
        # ulp either side.
        tiny = np.finfo(np.float64).tiny
        sub = (xs >= 0) & (xs <= 1e3 * tiny)
        upper = np.nextafter(xs, np.inf)
        lower = np.where(sub, 0.0, np.nextafter(xs, -np.inf))
        with np.errstate(all="ignore"):
            up = law.cdf(upper)
            down = law.cdf(lower)
        dp = np.max(i / n - up, axis=0)
        dm = np.max(down - (i - 1) / n, axis=0)
        D[cols] = np.maximum(dp, dm)[cols]
    return D


def _sampler_checks(backend: str, family: str, support: FamilySupport) -> Iterator[Check]:
    methods = ["sample"] + (["rsample"] if support.rsample else [])
    for grid in grids(family):
        for method in methods:
            yield from _draw_checks(backend, family, grid, method)


def _draw_checks(backend: str, family: str, grid: Grid, method: str) -> Iterator[Check]:
    spec = FAMILIES[family]

    def ks(r: Runner) -> Outcome:
        d = r.draw(backend, family, grid, method)
        n, seed, projs = d["n"], d["seed"], d["projections"]
        if not d["support_ok"]:
            raise CheckFailure(f"{method}() returned values outside the support", n=n, seed=seed)
        m = sum(p.values.shape[1] for p in projs)
        alpha = ALPHA_CHECK / m
        thr = dkwm_threshold(n, alpha)
        worst, where = -1.0, ""
        per: dict[str, list[float]] = {}
        for p in projs:
            if p.ref.discrete:
                D = ks_integer(p.values, p.ref.cdf_column, p.ref.law.cdf)
                _keep_plot(r, backend, family, grid.label, method, p, None)
            else:
                c = _continuous(p)
                D = _ks_with_ulp(c["xs"], p.ref.law, c["F"], c["ties"])
                _keep_plot(r, backend, family, grid.label, method, p, c)
            per[p.label] = D.tolist()
            j = int(np.argmax(D))
            if D[j] > worst:
                worst, where = float(D[j]), f"{p.label}[{j}]"
        numbers: dict[str, Any] = dict(statistic=worst, threshold=thr, n=n, seed=seed, alpha=alpha,
                       detectable=dkwm_detectable(n, alpha), details={"ks": per})
        if not worst <= thr:
            raise CheckFailure(
                f"K-S distance {worst:.4g} at {where} exceeds the DKWM threshold {thr:.4g} "
                f"(n={n}, alpha_i={alpha:.2g} per element)", **numbers)
        return Outcome(f"max K-S distance {worst:.3g} at {where}", **numbers)

    yield Check(backend, family, grid.label, f"{method}_ks", "sampler", True, ks)

    continuous = spec.kind == "continuous" or family in ("RelaxedBernoulli",)
    if continuous:
        def pit(which: str) -> Callable[[Runner], Outcome]:
            def fn(r: Runner) -> Outcome:
                d = r.draw(backend, family, grid, method)
                n, seed, projs = d["n"], d["seed"], d["projections"]
                m = sum(p.values.shape[1] for p in projs)
                alpha = ALPHA_CHECK / m
                worst_ratio, msg, stat, thr_w = -1.0, "", 0.0, 0.0
                means: dict[str, list[float]] = {}
                excluded = []
                for p in projs:
                    c = _continuous(p)
                    keep = ~c["ties"]
                    if not keep.any():
                        excluded.append(p.label)
                        continue
                    if not keep.all():
                        excluded.append(f"{p.label}{np.flatnonzero(~keep).tolist()}")
                    z = c["zeta"][:, keep]
                    if not np.all(np.isfinite(z)):
                        k = int(np.sum(~np.isfinite(z)))
                        raise CheckFailure(
                            f"{k} values of {p.label} have reference CDF 0 or 1 (impossible "
                            "under the reference law)", n=n, seed=seed, alpha=alpha)
                    if which == "mean":
                        est = z.mean(axis=0)
                        thr = z_threshold(alpha) / math.sqrt(n)
                        dev = np.abs(est)
                        ratio = dev / thr
                        thr_v = np.full_like(dev, thr)
                    else:
                        est = (z * z).mean(axis=0)
                        lo = sstats.chi2.ppf(alpha / 2, n) / n
                        hi = sstats.chi2.isf(alpha / 2, n) / n
                        dev = est - 1.0
                        thr_v = np.where(dev > 0, hi - 1.0, 1.0 - lo)
                        ratio = np.abs(dev) / thr_v
                    means[p.label] = est.tolist()
                    full = np.full(keep.shape, np.nan)
                    full[keep] = est
                    r.scores[(backend, family, grid.label, f"{method}:{p.label}:{which}")] = {
                        "est": full, "n": n}
                    j = int(np.argmax(ratio))
                    if ratio[j] > worst_ratio:
                        worst_ratio = float(ratio[j])
                        stat, thr_w = float(abs(dev[j])), float(thr_v[j])
                        msg = f"{p.label}[{int(np.flatnonzero(keep)[j])}]"
                if worst_ratio < 0:
                    raise _Skip("every column has ties at float64 resolution (mass below the "
                                "float spacing): normal scores undefined; K-S still applies")
                note = (f"; excluded (ties at float64 resolution): {', '.join(excluded)}"
                        if excluded else "")
                se = 1 / math.sqrt(n) if which == "mean" else math.sqrt(2 / n)
                what = "|mean zeta|" if which == "mean" else "|mean zeta^2 - 1|"
                numbers: dict[str, Any] = dict(statistic=stat, threshold=thr_w, n=n, seed=seed, alpha=alpha,
                               detectable=z_detectable(se, alpha), details={which: means})
                if worst_ratio > 1:
                    raise CheckFailure(
                        f"{what} = {stat:.4g} at {msg} exceeds {thr_w:.4g} (normal scores "
                        f"zeta = Phi^-1(F(x)) against SciPy; n={n}, alpha_i={alpha:.2g}){note}",
                        **numbers)
                return Outcome(f"{what} = {stat:.3g} at {msg}{note}", **numbers)
            return fn

        yield Check(backend, family, grid.label, f"{method}_pit_mean", "sampler", True,
                    pit("mean"))
        yield Check(backend, family, grid.label, f"{method}_pit_var", "sampler", True,
                    pit("var"))
    elif spec.univariate and family not in ("Categorical",):
        def sumtest(r: Runner) -> Outcome:
            d = r.draw(backend, family, grid, method)
            n, seed, projs = d["n"], d["seed"], d["projections"]
            p = projs[0]
            m = p.values.shape[1]
            alpha = ALPHA_CHECK / m
            law = p.ref.exact_sum(n)
            s = p.values.sum(axis=0)
            lower = law.cdf(s)
            upper = law.sf(s - 1)
            tail = np.minimum(lower, upper)
            j = int(np.argmin(tail))
            z = norm_isf(max(float(tail[j]), 1e-300))
            thr = z_threshold(alpha)
            numbers: dict[str, Any] = dict(statistic=z, threshold=thr, n=n, seed=seed, alpha=alpha,
                           detectable=z_detectable(1 / math.sqrt(n), alpha),
                           details={"sum": s.tolist(), "expected": law.mean().tolist()})
            if tail[j] < alpha / 2:
                raise CheckFailure(
                    f"sum of {n} draws at [{j}] is {s[j]:.6g}, expected {law.mean()[j]:.6g}: "
                    f"exact tail probability {tail[j]:.3g} < alpha_i/2 = {alpha / 2:.3g}",
                    **numbers)
            return Outcome(f"sum tail probability >= {tail[j]:.3g}", **numbers)

        yield Check(backend, family, grid.label, f"{method}_sum", "sampler", True, sumtest)


def _keep_plot(r: Runner, backend: str, family: str, grid: str, method: str,
               p: ref.Projection, c: dict[str, np.ndarray] | None) -> None:
    """Keep ``F_scipy(x_q) - q`` at 199 quantile levels of one statistic, for the HTML plots."""
    if method != "sample" or p.label not in ("value", "axis0", "marginal0", "logratio0",
                                              "corr10", "corr20"):
        return
    q = np.linspace(0.005, 0.995, 199)
    if c is None:  # discrete: F_n(k) - F(k) at the draw's quantiles k (both step functions)
        xs = np.sort(p.values, axis=0)
        n = xs.shape[0]
        k = xs[np.clip((q * n).astype(int), 0, n - 1)]
        fn = np.stack([np.searchsorted(xs[:, j], k[:, j], side="right")
                       for j in range(xs.shape[1])], 1) / n
        dev = fn - np.asarray(p.ref.law.cdf(k), dtype=np.float64)
        entry = r.plots.setdefault((family, grid, p.label), {"q": q, "backends": {}})
        entry["backends"][backend] = -dev
        return
    else:
        F = c["F"]
        n = F.shape[0]
        idx = np.clip((q * n).astype(int), 0, n - 1)
    entry = r.plots.setdefault((family, grid, p.label), {"q": q, "backends": {}})
    entry["backends"][backend] = F[idx, :] - q[:, None]
    if c is not None and c["ties"].any():
        entry["ties"] = True


# ---------------------------------------------------------------------- layer 4: gradients
def _moments(family: str, params: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Analytic ``E[x]`` and ``E[x^2]`` (elementwise) as differentiable torch functions."""
    if family == "Dirichlet":
        a = params["concentration"]
        a0 = a.sum(-1, keepdim=True)
        return a / a0, a * (a + 1) / (a0 * (a0 + 1))
    if family == "MultivariateNormal":
        loc, L = params["loc"], params["scale_tril"]
        return loc, loc ** 2 + (L ** 2).sum(-1)
    if family == "LowRankMultivariateNormal":
        loc, W, D = params["loc"], params["cov_factor"], params["cov_diag"]
        return loc, loc ** 2 + (W ** 2).sum(-1) + D
    if family == "Wishart":
        df, L = params["df"], params["scale_tril"]
        S = L @ L.transpose(-1, -2)
        d = torch.diagonal(S, dim1=-2, dim2=-1)
        dfx = df[..., None, None]
        return dfx * S, dfx * (S ** 2 + d[..., :, None] * d[..., None, :]) + dfx ** 2 * S ** 2
    if family == "OneHotCategoricalStraightThrough":
        p = params["probs"]
        p = p / p.sum(-1, keepdim=True)
        return p, p
    raise KeyError(family)


_MEAN_GRAD = ("Dirichlet", "MultivariateNormal", "LowRankMultivariateNormal", "Wishart",
              "OneHotCategoricalStraightThrough")
_NOISE_GRAD = ("LogisticNormal", "RelaxedOneHotCategorical")


def _per_sample_leaves(family: str, params: dict[str, Any], support: FamilySupport,
                       m: int) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Parameters repeated ``m`` times along a new leading batch dimension, as fresh leaves.

    Sample ``s`` of ``rsample(())`` then depends only on copy ``s``: one backward pass gives
    every per-sample gradient.
    """
    leaves = grad_leaves(family, dict(params))
    allowed = support.rsample_params
    big: dict[str, Any] = {}
    out: dict[str, torch.Tensor] = {}
    batch = tuple(_torch_dist(family, {k: (v.detach() if isinstance(v, torch.Tensor) else v)
                                       for k, v in params.items()}).batch_shape)
    for k, v in params.items():
        if isinstance(v, torch.Tensor):
            shape = tuple(v.shape)
            if v.dim() == 0:
                # A shared scalar gets one copy per batch element, so that every element has
                # its own gradient (the relaxed categorical's temperature spans the event too).
                shape = batch + ((1,) if family == "RelaxedOneHotCategorical" else ())
            e = v.detach().expand(shape).expand((m,) + shape).clone()
            if k in leaves and (allowed is None or k in allowed):
                e.requires_grad_(True)
                out[k] = e
            big[k] = e
        else:
            big[k] = v
    return big, out


def _grad_checks(backend: str, family: str, support: FamilySupport) -> Iterator[Check]:
    if not support.rsample:
        return
    spec = FAMILIES[family]
    for grid in grids(family):
        if spec.univariate and ref.has_univariate_ref(family) and spec.kind == "continuous":
            yield Check(backend, family, grid.label, "grad_cdf", "gradient", True,
                        _grad_cdf(backend, family, grid, support))
        elif family in _NOISE_GRAD:
            yield Check(backend, family, grid.label, "grad_noise", "gradient", False,
                        _grad_noise(backend, family, grid, support))
        elif family in _MEAN_GRAD:
            yield Check(backend, family, grid.label, "grad_mean", "gradient", True,
                        _grad_mean(backend, family, grid, support))
        else:
            def skip(r: Runner) -> Outcome:
                raise _Skip(f"no gradient reference for {family}")
            yield Check(backend, family, grid.label, "grad", "gradient", False, skip)


def _fd_derivative(family: str, p: dict[str, np.ndarray], k: str, xn: np.ndarray,
                   use_sf: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """dF/d(theta_k) at fixed x by central differences with Richardson extrapolation.

    Steps ``h0 4^-j`` (j = 0..5) with ``h0 = 0.02 max(|theta|, 1)`` (clipped to the parameter's
    domain); per sample, the extrapolated estimate that changes least between consecutive steps
    wins (a step too large for this x's scale or too small for float64 shows as instability).
    Returns the derivative and its estimated relative error. ``use_sf`` differentiates ``-sf``
    in the upper tail, where ``cdf`` has lost its digits.
    """
    theta = p[k]
    h0 = 0.02 * np.maximum(np.abs(theta), 1.0)
    if k == "probs":
        h0 = np.minimum(h0, 0.5 * np.minimum(theta, 1 - theta))
    elif k in ("scale", "rate", "concentration", "concentration0", "concentration1", "df",
               "df1", "df2", "alpha", "temperature", "cov_diag") and not (
            family == "GeneralizedPareto" and k == "concentration"):
        h0 = np.minimum(h0, 0.5 * theta)
    ds = []
    for j in range(7):
        hh = h0 * 4.0 ** -j
        pp, pm = dict(p), dict(p)
        pp[k], pm[k] = theta + hh, theta - hh
        lp, lm = ref.univariate_ref(family, pp).law, ref.univariate_ref(family, pm).law
        with np.errstate(all="ignore"):
            vp = np.where(use_sf, -lp.sf(xn), lp.cdf(xn))
            vm = np.where(use_sf, -lm.sf(xn), lm.cdf(xn))
        ds.append((vp - vm) / (2 * hh))
    rich = [(4 * ds[j + 1] - ds[j]) / 3 for j in range(6)]
    diffs = np.stack([np.abs(rich[j + 1] - rich[j]) for j in range(5)])
    diffs = np.where(np.isfinite(diffs), diffs, np.inf)
    best = np.argmin(diffs, axis=0)
    est = np.stack(rich[1:])[best, np.arange(xn.size)]
    with np.errstate(all="ignore"):
        relerr = diffs[best, np.arange(xn.size)] / np.abs(est)
    return est, relerr


def _grad_cdf(backend: str, family: str, grid: Grid,
              support: FamilySupport) -> Callable[[Runner], Outcome]:
    """Per sample: ``dx/dtheta = -dF/dtheta(x) / p(x)`` for reparameterizations monotone in one
    noise (exact, no sampling noise). Any valid reparameterization satisfies it in conditional
    mean, ``E[dx/dtheta | x] = -dF/dtheta / p``; when the per-sample identity does not hold
    (StudentT's df drawn through a chi-square, Beta through two Gammas) the check falls back to
    a z-test that the residuals, weighted by a bounded function of x, have mean zero."""
    spec = FAMILIES[family]

    def residuals(r: Runner, m: int, seed: int) -> tuple[dict[str, np.ndarray], ...]:
        params = grid.build(torch.float64)
        big, leaves = _per_sample_leaves(family, params, support, m)
        if not leaves:
            raise _Skip("no parameter with a pathwise gradient")
        dist = _make(family, big, backend, validate=False)
        x = dist.rsample((), seed=seed)
        if not x.requires_grad:
            raise CheckFailure("rsample() returned a tensor without gradient", n=m, seed=seed)
        names = list(leaves)
        grads = torch.autograd.grad(x.sum(), [leaves[k] for k in names], allow_unused=True)
        xn = x.detach().double().numpy().reshape(-1)
        p = {k: np.broadcast_to(v, x.shape).reshape(-1).copy()
             for k, v in ref.params_np(dist, spec.params).items() if k in _needed(family)}
        law = ref.univariate_ref(family, p).law
        with np.errstate(all="ignore"):
            F0 = law.cdf(xn)
            pdf = law.pdf(xn)
        use_sf = F0 > 0.5
        got, want, valid = {}, {}, {}
        for k, g in zip(names, grads):
            got[k] = np.zeros_like(xn) if g is None else g.detach().double().numpy().reshape(-1)
            dF, rel = _fd_derivative(family, p, k, xn, use_sf)
            with np.errstate(all="ignore"):
                want[k] = -dF / pdf
            valid[k] = ((rel < 1e-4) & np.isfinite(want[k]) & (pdf > 0)
                        & (np.minimum(F0, 1 - F0) > 1e-12))
        return got, want, valid, {"x": xn}

    def fn(r: Runner) -> Outcome:
        m = GRAD_SAMPLES
        seed = r.seed(f"{backend}-{family}-{grid.label}-grad_cdf")
        got, want, valid, _ = residuals(r, m, seed)
        worst, where = 0.0, ""
        errs: dict[str, float] = {}
        for k in got:
            v = valid[k]
            if v.sum() < m // 4:
                raise _Skip(f"too few samples where the finite difference of {k} is reliable")
            scale = np.median(np.abs(want[k][v])) + 1e-300
            err = np.abs(got[k] - want[k]) / np.maximum(np.abs(want[k]), 1e-3 * scale)
            err = np.where(v, err, 0.0)
            i = int(np.argmax(err))
            errs[k] = float(err[i])
            if err[i] > worst:
                worst = float(err[i])
                where = f"{k}: dx/d{k} = {got[k][i]:.6g}, expected {want[k][i]:.6g}"
        r.grad_errors[(backend, family, grid.label)] = {
            "measure": "max relative error (per sample)", "values": errs,
            "threshold": GRAD_RTOL}
        if worst <= GRAD_RTOL:
            return Outcome(f"per-sample identity holds: max relative error {worst:.2g}",
                           statistic=worst, threshold=GRAD_RTOL, n=m, seed=seed,
                           details={"max_rel_error": errs})
        # Not monotone in one noise (or wrong): test the failing parameters' residuals for a
        # zero conditional mean. Residuals within the per-sample tolerance count as zero (they
        # are finite-difference noise; the residuals of a two-noise path are O(1)).
        failing = [k for k, e in errs.items() if e > GRAD_RTOL]
        mb = GRAD_MEAN_SAMPLES[1 if r.quick else 0]
        seed2 = r.seed(f"{backend}-{family}-{grid.label}-grad_cdf_mean")
        got, want, valid, _ = residuals(r, mb, seed2)
        alpha = ALPHA_CHECK / len(failing)
        zt = z_threshold(alpha)
        worst_z, worst_thr, where2 = 0.0, zt, ""
        zs = {}
        for k in failing:
            v = valid[k]
            scale = np.median(np.abs(want[k][v])) + 1e-300
            res = got[k] - want[k]
            res = np.where(np.abs(res) <= GRAD_RTOL * np.maximum(np.abs(want[k]), 1e-3 * scale),
                           0.0, res)
            w = 1.0 / (np.abs(want[k]) + scale)
            t = np.where(v, w * res, 0.0)
            mean, sd = t.mean(), t.std(ddof=1)
            se = sd / math.sqrt(mb)
            skew = ((t - mean) ** 3).mean() / sd ** 3 if sd > 0 else 0.0
            thr = zt + abs(skew) * (zt * zt - 1) / (6 * math.sqrt(mb))
            z = mean / se if se > 0 else (0.0 if mean == 0 else math.inf)
            zs[k] = float(z)
            if abs(z) / thr >= worst_z / worst_thr:
                worst_z, worst_thr, where2 = abs(z), thr, k
        r.grad_errors[(backend, family, grid.label)] = {
            "measure": "|z| of the residuals' conditional mean (path not monotone in one "
                       "noise)", "values": {k: abs(v) for k, v in zs.items()},
            "threshold": f"{worst_thr:.3g}"}
        numbers: dict[str, Any] = dict(statistic=worst_z, threshold=worst_thr, n=mb, seed=seed2, alpha=alpha,
                       detectable=z_detectable(1.0, alpha) / math.sqrt(mb),
                       details={"per_sample_max_rel_error": errs, "residual_z": zs})
        if worst_z > worst_thr:
            raise CheckFailure(
                f"pathwise gradient is wrong: the per-sample identity dx/dtheta = -dF/dtheta / p "
                f"fails (relative error {worst:.3g}; {where}) and so does its conditional mean "
                f"over {mb} samples (|z| = {worst_z:.3g} > {worst_thr:.3g} for {where2})",
                **numbers)
        return Outcome(f"not monotone in one noise (per-sample error {worst:.2g}), but the "
                       f"conditional mean holds: max |z| {worst_z:.2f}", **numbers)

    return fn


def _needed(family: str) -> set[str]:
    spec = FAMILIES[family]
    return set(spec.params) - ({"logits"} if "probs" in spec.params else set())


def _grad_noise(backend: str, family: str, grid: Grid,
                support: FamilySupport) -> Callable[[Runner], Outcome]:
    def noise(fam: str, x: torch.Tensor, prm: Mapping[str, torch.Tensor]) -> torch.Tensor:
        if fam == "LogisticNormal":
            y = torch.distributions.StickBreakingTransform().inv(x)
            return (y - prm["loc"]) / prm["scale"]
        p = prm["probs"] / prm["probs"].sum(-1, keepdim=True)
        lx, lp = torch.log(x), torch.log(p)
        t = prm["temperature"]
        t = t[..., None] if t.dim() == x.dim() - 1 else t
        return t * (lx[..., :-1] - lx[..., -1:]) - (lp[..., :-1] - lp[..., -1:])

    def fn(r: Runner) -> Outcome:
        m = GRAD_SAMPLES
        params = grid.build(torch.float64)
        big, leaves = _per_sample_leaves(family, params, support, m)
        if not leaves:
            raise _Skip("no parameter with a pathwise gradient")
        dist = _make(family, big, backend, validate=False)
        seed = r.seed(f"{backend}-{family}-{grid.label}-grad_noise")
        x = dist.rsample((), seed=seed)
        names = list(leaves)
        eps_total = noise(family, x, big)
        totals = torch.autograd.grad(eps_total.sum(), [leaves[k] for k in names],
                                     allow_unused=True)
        eps_partial = noise(family, x.detach(), big)
        partials = torch.autograd.grad(eps_partial.sum(), [leaves[k] for k in names],
                                       allow_unused=True)
        worst, where = 0.0, ""
        errs = {}
        for k, t, pa in zip(names, totals, partials):
            if pa is None:
                continue
            tt = torch.zeros_like(pa) if t is None else t
            scale = pa.abs().flatten(1).max(-1).values.clamp_min(1e-12)
            e = (tt.abs().flatten(1).max(-1).values / scale).max().item()
            errs[k] = e
            if e > worst:
                worst, where = e, k
        r.grad_errors[(backend, family, grid.label)] = {
            "measure": "max |d noise/d theta| / |partial|", "values": errs,
            "threshold": GRAD_RTOL}
        numbers: dict[str, Any] = dict(statistic=worst, threshold=GRAD_RTOL, n=m, seed=seed,
                       details={"max_rel_error": errs})
        if worst > GRAD_RTOL:
            raise CheckFailure(
                f"the noise recovered from x moves with {where}: |d noise/d theta| / "
                f"|partial| = {worst:.3g} > {GRAD_RTOL:g}", **numbers)
        return Outcome(f"noise invariant to {GRAD_RTOL:g} (max {worst:.2g})", **numbers)

    return fn


def _grad_mean(backend: str, family: str, grid: Grid,
               support: FamilySupport) -> Callable[[Runner], Outcome]:
    def fn(r: Runner) -> Outcome:
        m = GRAD_MEAN_SAMPLES[1 if r.quick else 0]
        params = grid.build(torch.float64)
        seed = r.seed(f"{backend}-{family}-{grid.label}-grad_mean")
        small = dict(params)
        leaves0 = grad_leaves(family, small)
        allowed = support.rsample_params
        names = [k for k in leaves0 if allowed is None or k in allowed]
        if not names:
            raise _Skip("no parameter with a pathwise gradient")
        tdist = _torch_dist(family, {k: (v.detach() if isinstance(v, torch.Tensor) else v)
                                     for k, v in params.items()})
        ev_shape = tdist.batch_shape + tdist.event_shape
        wr = np.random.default_rng(seed)
        w1 = torch.as_tensor(wr.standard_normal(tuple(ev_shape)), dtype=torch.float64)
        w2 = torch.as_tensor(wr.standard_normal(tuple(ev_shape)), dtype=torch.float64)
        if family == "OneHotCategoricalStraightThrough":
            w2 = torch.zeros_like(w2)  # straight-through is exact for E[x] only
        canon = {k: getattr(_torch_dist(family, small), k) for k in FAMILIES[family].params
                 if k not in ("logits",) and k not in FAMILIES[family].integer_params}
        e1, e2 = _moments(family, canon)
        analytic = torch.autograd.grad((w1 * e1).sum() + (w2 * e2).sum(),
                                       [leaves0[k] for k in names], allow_unused=True)
        big, leaves = _per_sample_leaves(family, params, support, m)
        x = _make(family, big, backend, validate=False).rsample((), seed=seed)
        f = (w1 * x + w2 * x * x).flatten(1).sum(-1)
        per = torch.autograd.grad(f.sum(), [leaves[k] for k in names], allow_unused=True)
        total_elems = sum(leaves0[k].numel() for k in names)
        alpha = ALPHA_CHECK / total_elems
        zt = z_threshold(alpha)
        worst, where, worst_thr = 0.0, "", zt
        zs = {}
        for k, a, g in zip(names, analytic, per):
            a_np = np.zeros(tuple(leaves0[k].shape)) if a is None else a.double().numpy()
            g_np = (np.zeros((m,) + tuple(leaves0[k].shape)) if g is None
                    else g.detach().double().numpy())
            mean = g_np.mean(0)
            sd = g_np.std(0, ddof=1)
            se = sd / math.sqrt(m)
            with np.errstate(divide="ignore", invalid="ignore"):
                skew = np.where(sd > 0, ((g_np - mean) ** 3).mean(0) / sd ** 3, 0.0)
                # Cornish-Fisher: the mean's quantile moves by skew (z^2 - 1) / (6 sqrt m).
                thr = zt + np.abs(skew) * (zt * zt - 1) / (6 * math.sqrt(m))
                det = se <= 1e-10 * (1 + np.abs(a_np))
                z = np.where(det, np.where(np.abs(mean - a_np) <= 1e-9 * (1 + np.abs(a_np)),
                                           0.0, np.inf), (mean - a_np) / np.where(det, 1, se))
            if k == "scale_tril" and z.ndim >= 2:
                # Entries above the diagonal are not parameters of a lower-triangular factor:
                # torch multiplies by the whole matrix, TFP reads the lower triangle only.
                z = np.where(np.triu(np.ones(z.shape[-2:], dtype=bool), 1), 0.0, z)
            ratio = np.abs(z) / thr
            j = np.unravel_index(int(np.argmax(ratio)), ratio.shape) if ratio.size else ()
            zs[k] = float(np.max(np.abs(z))) if z.size else 0.0
            if ratio.size and ratio[j] > worst / worst_thr:
                worst, worst_thr = float(abs(z[j])), float(thr[j])
                where = (f"{k}{list(j)}: mean pathwise gradient {mean[j]:.6g}, analytic "
                         f"{a_np[j]:.6g}, se {se[j]:.3g}")
        r.grad_errors[(backend, family, grid.label)] = {
            "measure": "max |z| of the mean pathwise gradient", "values": zs,
            "threshold": f"{worst_thr:.3g}"}
        numbers: dict[str, Any] = dict(statistic=worst, threshold=worst_thr, n=m, seed=seed, alpha=alpha,
                       detectable=z_detectable(1.0, alpha) / math.sqrt(m),
                       details={"max_abs_z": zs})
        if worst > worst_thr:
            raise CheckFailure(f"mean pathwise gradient of E[w1.x + w2.x^2] is off: |z| = "
                               f"{worst:.3g} > {worst_thr:.3g} ({where})", **numbers)
        return Outcome(f"max |z| {worst:.2f}", **numbers)

    return fn


# ---------------------------------------------------------------------- generation
def generate_checks(backend: Backend, name: str, families: list[str] | None = None,
                    layers: tuple[str, ...] = LAYERS) -> Iterator[Check]:
    """Every check of one backend, family by family, cheapest layer first."""
    fams = backend.families()
    for family in sorted(fams):
        if families is not None and family not in families:
            continue
        if family not in FAMILIES:
            continue
        support = fams[family]
        if not support.sample:
            continue
        if "semantics" in layers:
            yield from _semantics_checks(name, family, support)
        if "density" in layers:
            yield from _density_checks(name, family, support)
        if "sampler" in layers:
            yield from _sampler_checks(name, family, support)
        if "gradient" in layers:
            yield from _grad_checks(name, family, support)


def agreement_check(a: str, b: str, family: str, grid: str, which: str,
                    pairs: list[tuple[str, dict[str, Any], dict[str, Any]]]) -> Check:
    """Two backends' normal-score statistics agree: ``(m_a - m_b) / sqrt(v/n_a + v/n_b)``.

    Under H0 the scores are N(0, 1): their means (``which == "mean"``, v = 1) are exactly
    normal; the means of their squares (v = 2) are scaled chi-square, near normal at these n.
    ``pairs`` holds ``(projection label, stats of a, stats of b)``; alpha is split over every
    element of every projection.
    """

    def fn(r: Runner) -> Outcome:
        v = 1.0 if which == "mean" else 2.0
        zs, where = [], []
        n = 0
        for label, fa, fb in pairs:
            se = math.sqrt(v / fa["n"] + v / fb["n"])
            z = (np.asarray(fa["est"]) - np.asarray(fb["est"])) / se
            n = int(fa["n"])
            for j, zj in enumerate(z):
                if np.isfinite(zj):
                    zs.append(float(zj))
                    where.append(f"{label}[{j}]")
        if not zs:
            raise _Skip("no comparable normal scores")
        alpha = ALPHA_CHECK / len(zs)
        thr = z_threshold(alpha)
        j = int(np.argmax(np.abs(zs)))
        numbers: dict[str, Any] = dict(statistic=abs(zs[j]), threshold=thr, n=n, alpha=alpha,
                       detectable=z_detectable(math.sqrt(2 * v / max(n, 1)), alpha))
        if abs(zs[j]) > thr:
            raise CheckFailure(f"{a} and {b} disagree on the {which} of the normal scores at "
                               f"{where[j]}: z = {zs[j]:.3g}", **numbers)
        return Outcome(f"max |z| = {abs(zs[j]):.2f} at {where[j]}", **numbers)

    return Check(f"{a}+{b}", family, grid, f"agree_pit_{which}", "agreement", True, fn)
