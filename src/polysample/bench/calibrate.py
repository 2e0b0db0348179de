"""``polysample bench --calibrate``: measure the routing table of the ``auto`` backend.

For every family and operation (``sample``, ``rsample`` + ``backward``, ``log_prob``), every
calibrated backend that offers it is timed on a one-value call and on a large call (1e6
values; 1e5 for ``rsample`` + ``backward``), the backends' repeats interleaved; the table
stores each backend's cost as ``overhead + per-value time`` (:mod:`polysample.backends.routing`).

Each backend is then run through the conformance suite (quick mode; semantics, density,
sampler and gradient layers; the packaged declarations of known upstream failures applied)
family by family: a route rests on a ``pass`` verdict, and a backend that fails, or declares a
failure for, a family is recorded with that verdict and never routed to for it.
"""

from __future__ import annotations

import datetime as _dt
import platform
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import torch

from ..backends import routing
from ..core.families import FAMILIES
from .natives import family_params, loss
from .timing import CLOCKS, time_interleaved

__all__ = ["calibrate", "verdicts", "LARGE", "LARGE_GRAD", "LAYERS"]

LARGE = 10**6
LARGE_GRAD = 10**5
#: The conformance layers a verdict rests on (agreement compares backends with each other).
LAYERS = ("semantics", "density", "sampler", "gradient")

Progress = Callable[[str, int, int], None]


def verdicts(backends: Sequence[str], families: dict[str, list[str]], *, smoke: bool = False,
             progress: Progress | None = None) -> dict[tuple[str, str], tuple[str, str]]:
    """(backend, family) -> (verdict, detail) from the conformance suite (quick mode).

    ``families`` maps each backend to the families to check. Smoke mode runs the semantics
    layer only (and says so in the detail).
    """
    from ..conformance import check_backend, known_failures

    layers = ("semantics",) if smoke else LAYERS
    decls = known_failures()
    out: dict[tuple[str, str], tuple[str, str]] = {}
    for i, b in enumerate(backends):
        fams = families.get(b, [])
        if not fams:
            continue
        if progress:
            progress(f"conformance {b} ({len(fams)} families)", i, len(backends))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            report = check_backend(b, fams, decls, quick=True, layers=layers)
        for f in fams:
            rs = [r for r in report.results if r.backend == b and r.family == f]
            failed = [r.id for r in rs if r.status == "fail"]
            declared = [r for r in rs if r.status == "xfail"]
            mode = "quick, " + ("semantics layer only (smoke)" if smoke else
                                "semantics/density/sampler/gradient")
            if failed:
                out[(b, f)] = ("fail", f"{len(failed)} failed: {', '.join(failed[:3])}")
            elif declared:
                out[(b, f)] = ("declared", f"{declared[0].id}: {declared[0].reason}")
            elif not rs:
                out[(b, f)] = ("not run", "no check ran")
            else:
                out[(b, f)] = ("pass", f"{len(rs)} checks, {mode}")
        for r in report.results:  # a backend that failed to load fails every family
            if r.family == "*":
                for f in fams:
                    out[(b, f)] = ("fail", r.message[:200])
    return out


def _leaves(family: str, params: dict[str, Any], allowed: frozenset[str] | None) -> list[Any]:
    spec = FAMILIES[family]
    leaves = []
    for name in spec.tensor_params:
        v = params.get(name)
        if (isinstance(v, torch.Tensor) and v.is_floating_point()
                and (allowed is None or name in allowed)):
            v = v.detach().clone().requires_grad_(True)
            params[name] = v
            leaves.append(v)
    return leaves


def _fns(backend: str, family: str, op: str, n: int, support: Any
         ) -> Callable[[], object]:
    import polysample as ps

    cls = getattr(ps, family)
    if op == "sample":
        d = cls(**family_params(family), backend=backend)
        shape = torch.Size(_shape(d, n))
        return lambda: d.sample(shape)
    if op == "rsample":
        params = family_params(family)
        leaves = _leaves(family, params, support.rsample_params)
        shape = torch.Size(_shape(cls(**params, backend=backend), n))

        def run() -> object:
            # Built per call: some constructors compute from the parameters (StudentT's Chi2)
            # and a graph can be backpropagated only once.
            for v in leaves:
                v.grad = None
            x = cls(**params, backend=backend).rsample(shape)
            if x.requires_grad:
                loss(x).backward()
            return x
        return run
    d = cls(**family_params(family), backend=backend)
    with torch.no_grad():
        x = cls(**family_params(family), backend="torch").sample(torch.Size(_shape(d, n)))
    return lambda: d.log_prob(x)


def _shape(d: Any, n: int) -> tuple[int, ...]:
    per = max(1, d.batch_shape.numel() * d.event_shape.numel())
    return () if n <= 1 else (max(1, n // per),)


def _values(d_shape: tuple[int, ...], family: str) -> int:
    import torch.distributions as td

    d = getattr(td, family)(**family_params(family), validate_args=False)
    return max(1, torch.Size(d_shape).numel() * d.batch_shape.numel() * d.event_shape.numel())


def calibrate(backends: Sequence[str], families: Sequence[str] | None = None, *,
              smoke: bool = False, clock: str = "wall", repeats: int | None = None,
              progress: Progress | None = None) -> routing.RoutingTable:
    """Measure and return a routing table for ``backends`` (see the module docstring)."""
    import polysample as ps

    loaded = {}
    for b in backends:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            loaded[b] = ps.load_backend(b)
    fams = sorted(families) if families else sorted(
        {f for b in loaded.values() for f in b.families() if f in FAMILIES})
    claims = {b: [f for f in fams if f in loaded[b].families()] for b in backends}
    reps = repeats if repeats is not None else (1 if smoke else 5)
    large, large_grad = (100, 10) if smoke else (LARGE, LARGE_GRAD)
    min_s = 0.0 if smoke else 0.01

    jobs = [(f, op) for f in fams for op in routing.OPS]
    routes: dict[str, dict[str, Any]] = {}
    errors: dict[tuple[str, str, str], str] = {}
    for i, (family, op) in enumerate(jobs):
        if progress:
            progress(f"timing {family}.{op}", i, len(jobs) + len(backends))
        cands = []
        for b in backends:
            sup = loaded[b].families().get(family)
            if sup is None or (op == "rsample" and not sup.rsample):
                continue
            if op == "log_prob" and not sup.log_prob and b != "torch":
                continue  # scored by torch itself: the torch candidate stands for it
            cands.append((b, sup))
        if not cands:
            continue
        n_large = large_grad if op == "rsample" else large
        fns_small, fns_large = [], []
        for b, sup in cands:
            try:
                fns_small.append((b, _fns(b, family, op, 1, sup)))
                fns_large.append((b, _fns(b, family, op, n_large, sup)))
            except Exception as exc:  # noqa: BLE001 - recorded, the backend is not routed to
                errors[(b, family, op)] = f"{type(exc).__name__}: {exc}"[:200]
        measured: dict[str, dict[str, float]] = {}
        for label, fns in (("small", fns_small), ("large", fns_large)):
            good = [(b, fn) for b, fn in fns if (b, family, op) not in errors]
            ok = []
            for b, fn in good:  # a backend that raises here is left out, the others timed
                try:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        fn()
                        fn()
                    ok.append((b, fn))
                except Exception as exc:  # noqa: BLE001
                    errors[(b, family, op)] = f"{type(exc).__name__}: {exc}"[:200]
            if not ok:
                continue
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    ms = time_interleaved(ok, repeats=reps, warmup=1, min_repeat_s=min_s,
                                          clock=CLOCKS[clock])
            except Exception as exc:  # noqa: BLE001 - nothing routed on this operation
                for b, _ in ok:
                    errors[(b, family, op)] = f"{type(exc).__name__}: {exc}"[:200]
                continue
            for m in ms:
                measured.setdefault(m.label, {})[label] = m.median_s
        shape = _shape(getattr(ps, family)(**family_params(family), backend="torch"), n_large)
        nvals = _values(shape, family)
        entries = []
        for b, _ in cands:
            fig = measured.get(b, {})
            if "small" not in fig or "large" not in fig:
                entries.append({"backend": b, "overhead_s": 0.0, "per_value_s": 0.0,
                                "verdict": "not measured",
                                "detail": errors.get((b, family, op), "no timing")})
                continue
            per_value = max(0.0, (fig["large"] - fig["small"]) / max(1, nvals - 1))
            entries.append({"backend": b, "overhead_s": fig["small"], "per_value_s": per_value,
                            "figures": {"one_value_s": fig["small"],
                                        f"{nvals}_values_s": fig["large"]}})
        routes.setdefault(family, {})[op] = {"candidates": entries}

    judged = verdicts(backends, claims, smoke=smoke, progress=(
        (lambda label, i, n: progress(label, len(jobs) + i, len(jobs) + len(backends)))
        if progress else None))
    for family, ops in routes.items():
        for entry in ops.values():
            for c in entry["candidates"]:
                if c.get("verdict") == "not measured":
                    continue
                v, detail = judged.get((c["backend"], family), ("not run", ""))
                c["verdict"], c["detail"] = v, detail
    versions = routing.installed_versions()
    uses_tfp = any(b.startswith("tfp") for b in backends)
    if not uses_tfp:
        for lib in ("jax", "tensorflow", "tensorflow-probability"):
            versions.pop(lib, None)
    data = {
        "schema": routing.SCHEMA, "kind": "polysample-routes",
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.processor() or platform.machine()}, "
                   f"{torch.get_num_threads()} torch threads, {platform.platform()}",
        "versions": versions,
        "settings": {"backends": list(backends), "clock": clock, "repeats": reps,
                     "large_values": large, "large_values_rsample": large_grad,
                     "conformance": "quick, layers " + ", ".join(
                         ("semantics",) if smoke else LAYERS), "smoke": smoke},
        "notes": (["smoke calibration: tiny sizes, semantics layer only; not for use"]
                  if smoke else []),
        "routes": routes,
    }
    return routing.RoutingTable.from_dict(data, "calibrated")
