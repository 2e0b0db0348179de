"""``polysample bench``: every backend beside the native library it wraps, in one run.

For each backend and family: a large ``sample`` (1e7 values), the per-call latency of a scalar
``sample()`` and ``rsample()``, ``rsample`` + ``backward`` (1e6 values), ``log_prob`` (1e7
values), each timed beside the native library called directly (:mod:`.natives`) with the
repeats interleaved (:mod:`.timing`): median, min-max, ratio polysample / native. Then the
peak memory of a 1e8-value float32 ``sample`` (:mod:`.memory`). Benchmarks are not tests: the
goals of the performance issue are shown beside the rows they concern, met or not, and a
missed goal does not fail the run.
"""

from __future__ import annotations

import os
import platform
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from .natives import (
    BENCH_FAMILIES,
    family_params,
    loss,
    native_label,
    native_log_prob,
    native_rsample_backward,
    native_sample,
)
from .timing import CLOCKS, Measurement, format_seconds, frozen_heap, time_interleaved

__all__ = ["Sizes", "FULL", "SMOKE", "Case", "Row", "BenchReport", "run_bench", "goal_for",
           "machine_info"]

OPS = ("sample", "rsample", "log_prob")


@dataclass(frozen=True)
class Sizes:
    """How large the cases are, and how often they are timed."""

    large: int = 10**7  # values of a large sample and of log_prob
    grad: int = 10**6  # values of rsample + backward
    memory: int = 10**8  # values of the memory measurement
    repeats: int = 7
    warmup: int = 2
    min_repeat_s: float = 0.02

    def label(self, n: int) -> str:
        e = len(str(n)) - 1
        return f"1e{e}" if n == 10**e else f"{n:,}"


FULL = Sizes()
#: CI's smoke mode: tiny sizes, one repeat; checks that every case runs, times nothing.
SMOKE = Sizes(large=1000, grad=100, memory=10**5, repeats=1, warmup=1, min_repeat_s=0.0)


@dataclass(frozen=True)
class Goal:
    text: str
    limit: float  # the ratio must be at most this


def goal_for(backend: str, family: str, op: str, case: str) -> Goal | None:
    """The performance issue's goal for a row, if it sets one."""
    if case == "memory":
        return Goal("<= 1.2x output", 1.2) if backend in ("torch", "numpy") else None
    if case == "large" and op == "sample":
        if backend == "torch" and family == "Normal":
            return Goal(">= 1.5x faster", 1 / 1.5)
        if backend == "auto" and family == "Gamma":
            return Goal(">= 2x faster", 0.5)
        if backend in ("torch", "numpy"):
            return Goal("<= 1.05x", 1.05)
        if backend in ("tfp", "tfp-tf"):
            return Goal("<= 1.1x", 1.1)
    if case == "scalar" and backend == "torch" and op in ("sample", "rsample"):
        return Goal("<= 1.3x", 1.3)
    if case == "scalar" and backend == "tfp-tf" and op == "sample":
        return Goal("<= 1.2x", 1.2)
    return None


@dataclass
class Case:
    """One timed comparison: polysample on ``backend`` beside the native call."""

    backend: str
    family: str
    op: str
    case: str  # "large", "scalar", "memory"
    values: int
    native_label: str
    build: Callable[[], tuple[Callable[[], object], Callable[[], object] | None]]

    @property
    def title(self) -> str:
        return f"{self.family}.{self.op} {self.case}"


@dataclass
class Row:
    """A measured case (times in seconds; memory rows in bytes)."""

    backend: str
    family: str
    op: str
    case: str
    values: int
    native_label: str = ""
    polysample: Measurement | None = None
    native: Measurement | None = None
    memory: dict[str, Any] | None = None
    native_memory: dict[str, Any] | None = None
    skipped: str = ""
    goal: Goal | None = None

    @property
    def ratio(self) -> float | None:
        if self.memory is not None:
            return float(self.memory["ratio"])
        if self.polysample is None or self.native is None or self.native.median_s <= 0:
            return None
        return self.polysample.median_s / self.native.median_s

    @property
    def met(self) -> bool | None:
        r = self.ratio
        return None if self.goal is None or r is None else r <= self.goal.limit

    def to_dict(self) -> dict[str, Any]:
        def m(x: Measurement | None) -> dict[str, Any] | None:
            if x is None:
                return None
            return {"label": x.label, "median_s": x.median_s, "min_s": x.min_s,
                    "max_s": x.max_s, "times_s": x.times_s, "calls_per_repeat": x.number}
        return {"backend": self.backend, "family": self.family, "op": self.op,
                "case": self.case, "values": self.values, "native_label": self.native_label,
                "polysample": m(self.polysample), "native": m(self.native),
                "memory": self.memory, "native_memory": self.native_memory,
                "ratio": self.ratio, "goal": self.goal.text if self.goal else None,
                "goal_limit": self.goal.limit if self.goal else None, "goal_met": self.met,
                "skipped": self.skipped or None}


@dataclass
class BenchReport:
    rows: list[Row] = field(default_factory=list)
    machine: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "polysample-bench", "schema": 1, "machine": self.machine,
                "settings": self.settings, "seconds": round(self.seconds, 2),
                "rows": [r.to_dict() for r in self.rows]}


def machine_info() -> dict[str, Any]:
    """The machine, its load and the library versions, for the report."""
    import numpy

    from .. import __version__

    info: dict[str, Any] = {
        "python": platform.python_version(), "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "logical_cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
        "versions": {"polysample": __version__, "torch": torch.__version__,
                     "numpy": numpy.__version__},
    }
    try:
        info["load_average"] = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        pass
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    info["processor"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    for mod, label in (("jax", "jax"), ("tensorflow", "tensorflow"),
                       ("tensorflow_probability", "tensorflow-probability")):
        if mod in sys.modules:
            info["versions"][label] = str(getattr(sys.modules[mod], "__version__", "?"))
    return info


# ----------------------------------------------------------------------------- cases
def _dist(backend: str, family: str, requires_grad: bool = False) -> Any:
    import polysample as ps

    return getattr(ps, family)(**family_params(family, requires_grad=requires_grad),
                               backend=backend)


def _values_shape(family: str, values: int) -> tuple[int, ...]:
    """``sample_shape`` giving about ``values`` values (event families draw fewer samples)."""
    import torch.distributions as td

    d = getattr(td, family)(**family_params(family), validate_args=False)
    per = max(1, d.batch_shape.numel() * d.event_shape.numel())
    return (max(1, values // per),)


def cases(backend: str, family: str, ops: Sequence[str], sizes: Sizes) -> list[Case]:
    """The timed cases of one backend and family (memory is separate)."""
    out: list[Case] = []
    large = _values_shape(family, sizes.large)
    grad = _values_shape(family, sizes.grad)

    if "sample" in ops:
        def b_large() -> tuple[Callable[[], object], Callable[[], object] | None]:
            d, shape = _dist(backend, family), torch.Size(large)
            return (lambda: d.sample(shape)), native_sample(backend, family, large)

        def b_scalar() -> tuple[Callable[[], object], Callable[[], object] | None]:
            d = _dist(backend, family)
            return (lambda: d.sample()), native_sample(backend, family, ())

        out += [Case(backend, family, "sample", "large", sizes.large,
                     native_label(backend, "sample"), b_large),
                Case(backend, family, "sample", "scalar", 1, native_label(backend, "sample"),
                     b_scalar)]
    if "rsample" in ops:
        def b_rlarge() -> tuple[Callable[[], object], Callable[[], object] | None]:
            import polysample as ps

            params, shape = family_params(family, requires_grad=True), torch.Size(grad)
            leaves = [v for v in params.values() if isinstance(v, torch.Tensor)
                      and v.requires_grad]
            cls = getattr(ps, family)

            def run() -> object:
                # Built on each call, as the native case is: some constructors compute from
                # the parameters (StudentT's Chi2), and a graph can be backpropagated once.
                for v in leaves:
                    v.grad = None
                x = cls(**params, backend=backend).rsample(shape)
                loss(x).backward()
                return x
            return run, native_rsample_backward(backend, family, grad)

        def b_rscalar() -> tuple[Callable[[], object], Callable[[], object] | None]:
            import torch.distributions as td

            d = _dist(backend, family, requires_grad=True)
            native: Callable[[], object] | None = None
            if backend in ("torch", "numpy", "auto"):
                ref = getattr(td, family)(**family_params(family, requires_grad=True))
                native = ref.rsample
            elif backend in ("tfp", "tfp-tf"):
                native = native_sample(backend, family, ())
            return (lambda: d.rsample()), native

        out += [Case(backend, family, "rsample", "large+backward", sizes.grad,
                     native_label(backend, "rsample"), b_rlarge),
                Case(backend, family, "rsample", "scalar", 1,
                     native_label(backend, "rsample" if backend not in ("tfp", "tfp-tf")
                                  else "sample"), b_rscalar)]
    if "log_prob" in ops:
        def b_lp() -> tuple[Callable[[], object], Callable[[], object] | None]:
            import torch.distributions as td

            with torch.no_grad():
                x = getattr(td, family)(**family_params(family)).sample(torch.Size(large))
            d = _dist(backend, family)
            return (lambda: d.log_prob(x)), native_log_prob(backend, family, x)

        out.append(Case(backend, family, "log_prob", "large", sizes.large,
                        native_label(backend, "log_prob"), b_lp))
    return out


def _supports(backend: str, family: str) -> tuple[Any, str]:
    import polysample as ps

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            b = ps.load_backend(backend)
            sup = b.families().get(family)
    except ps.PolysampleError as exc:
        return None, f"backend unavailable: {type(exc).__name__}: {exc}"
    if sup is None:
        return None, f"{backend} does not offer {family}"
    return sup, ""


# ----------------------------------------------------------------------------- running
Progress = Callable[[str, int, int], None]


def run_bench(backends: Sequence[str], families: Sequence[str] | None = None,
              ops: Sequence[str] = OPS, sizes: Sizes = FULL, clock: str = "cpu",
              memory: bool = True, progress: Progress | None = None) -> BenchReport:
    """Time every case of ``backends`` x ``families`` x ``ops``; see the module docstring.

    ``progress(label, done, total)`` is called before each case. A case that raises becomes a
    skipped row with the error (a benchmark run never stops halfway).
    """
    from .memory import supported

    t0 = time.perf_counter()
    fams = list(families) if families else list(BENCH_FAMILIES)
    report = BenchReport(settings={
        "backends": list(backends), "families": fams, "ops": list(ops), "clock": clock,
        "sizes": {"large": sizes.large, "grad": sizes.grad, "memory": sizes.memory},
        "repeats": sizes.repeats, "warmup": sizes.warmup, "memory": memory,
        "smoke": sizes.repeats == 1 and sizes.min_repeat_s == 0,
    })
    plan: list[Case | tuple[str, str]] = []
    skipped: list[Row] = []
    for backend in backends:
        for family in fams:
            sup, why = _supports(backend, family)
            if sup is None:
                skipped.append(Row(backend, family, "*", "*", 0, skipped=why))
                continue
            wanted = [op for op in ops if op != "rsample" or sup.rsample]
            if "rsample" in ops and not sup.rsample:
                skipped.append(Row(backend, family, "rsample", "*", 0,
                                   skipped=f"{backend} does not reparameterize {family}"))
            plan += cases(backend, family, wanted, sizes)
            if memory and "sample" in ops:
                plan.append((backend, family))
    smoke = sizes.repeats == 1 and sizes.min_repeat_s == 0
    if smoke:  # one memory case per backend shows that the measurement works
        seen: set[str] = set()
        kept: list[Case | tuple[str, str]] = []
        for item in plan:
            if isinstance(item, tuple):
                if item[0] in seen:
                    continue
                seen.add(item[0])
            kept.append(item)
        plan = kept
    ok, why_no_memory = supported()
    total = len(plan)
    with frozen_heap():
        _run_plan(plan, report, sizes, clock, smoke, ok, why_no_memory, progress)
    report.rows.extend(skipped)
    if progress:
        progress("done", total, total)
    report.machine = machine_info()
    report.seconds = time.perf_counter() - t0
    return report


def _run_plan(plan: list[Case | tuple[str, str]], report: BenchReport, sizes: Sizes, clock: str,
              smoke: bool, ok: bool, why_no_memory: str, progress: Progress | None) -> None:
    from .memory import measure

    total = len(plan)
    for i, item in enumerate(plan):
        if isinstance(item, tuple):
            backend, family = item
            if progress:
                progress(f"{backend} {family} memory {sizes.label(sizes.memory)}", i, total)
            row = Row(backend, family, "sample", "memory", sizes.memory,
                      "NumPy" if backend == "numpy" else "torch.distributions",
                      goal=None if smoke else goal_for(backend, family, "sample", "memory"))
            if not ok:
                row.skipped = why_no_memory
            else:
                try:
                    spec = {"kind": "polysample", "backend": backend, "family": family,
                            "values": sizes.memory, "label": f"{backend} {family}"}
                    row.memory = measure(spec).to_dict()
                    if not smoke and backend in ("torch", "numpy", "auto") and (
                            backend != "numpy" or family in BENCH_FAMILIES):
                        row.native_memory = measure({**spec, "kind": "native",
                                                     "label": f"native {family}"}).to_dict()
                except Exception as exc:  # noqa: BLE001 - reported in the row
                    row.skipped = f"{type(exc).__name__}: {str(exc)[-300:]}"
            report.rows.append(row)
            continue
        c = item
        if progress:
            progress(f"{c.backend} {c.title}", i, total)
        row = Row(c.backend, c.family, c.op, c.case, c.values, c.native_label,
                  goal=None if smoke else goal_for(c.backend, c.family, c.op, c.case))
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                cand, native = c.build()
                fns = [("polysample", cand)] + ([("native", native)] if native else [])
                ms = time_interleaved(fns, repeats=sizes.repeats, warmup=sizes.warmup,
                                      min_repeat_s=sizes.min_repeat_s, clock=CLOCKS[clock])
            row.polysample = ms[0]
            row.native = ms[1] if native else None
            if native is None:
                row.native_label = ""
        except Exception as exc:  # noqa: BLE001 - a failing case is reported, the run goes on
            row.skipped = f"{type(exc).__name__}: {str(exc)[:300]}"
        report.rows.append(row)


# ----------------------------------------------------------------------------- output
def _fmt_m(m: Measurement | None) -> str:
    if m is None:
        return "-"
    if m.times_s and len(m.times_s) > 1:
        return f"{format_seconds(m.median_s)} ({format_seconds(m.min_s)}-{format_seconds(m.max_s)})"
    return format_seconds(m.median_s)


def _mb(b: float) -> str:
    return f"{b / 2**20:,.0f} MiB"


def table_rows(report: BenchReport) -> list[list[str]]:
    """The terminal table: backend, family, case, polysample, native, ratio, goal."""
    out = []
    for r in report.rows:
        case = f"{r.op} {r.case}" if r.case not in ("*",) else r.op
        size = "" if r.values <= 1 or r.case == "*" else f" {_size(r.values)}"
        if r.skipped:
            out.append([r.backend, r.family, case + size, "skipped", "", "",
                        r.skipped[:100]])
            continue
        goal = "" if r.goal is None else f"{r.goal.text} {'met' if r.met else 'MISSED'}"
        ratio = "-" if r.ratio is None else f"{r.ratio:.2f}"
        if r.memory is not None:
            mem = r.memory
            native = "-"
            if r.native_memory is not None:
                native = f"{r.native_memory['ratio']:.2f}x ({r.native_label})"
            out.append([r.backend, r.family, f"peak memory{size}",
                        f"{_mb(mem['peak_bytes'])} for {_mb(mem['output_bytes'])}",
                        native, f"{mem['ratio']:.2f}x", goal])
            continue
        native = "-" if r.native is None else f"{_fmt_m(r.native)} {r.native_label}"
        out.append([r.backend, r.family, case + size, _fmt_m(r.polysample), native, ratio,
                    goal])
    return out


def _size(n: int) -> str:
    e = len(str(n)) - 1
    return f"1e{e}" if n == 10**e else f"{n:,}"


HEADER = ["backend", "family", "case", "polysample median (min-max)", "native median (min-max)",
          "ratio", "goal"]


def markdown(report: BenchReport) -> str:
    """The table as Markdown (for the docs)."""
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(c.replace("|", "/") for c in row) + " |"
              for row in table_rows(report)]
    return "\n".join(lines)


def machine_line(report: BenchReport) -> str:
    m = report.machine
    v = ", ".join(f"{k} {val}" for k, val in m.get("versions", {}).items())
    load = m.get("load_average")
    return (f"{m.get('processor')}, {m.get('logical_cpus')} logical CPUs, torch threads "
            f"{m.get('torch_threads')}; {v}; clock {report.settings.get('clock')}, "
            f"{report.settings.get('repeats')} interleaved repeats"
            + (f"; load average {load[0]:.2f} (1 min) at the end" if load else ""))
