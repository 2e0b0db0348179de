"""Shared benchmark harness for polysample backends.

Every backend ships ``benchmarks/cases_<backend>.py`` with a function
``comparisons(quick: bool) -> list[Comparison]``.  ``benchmarks/bench_backends.py`` collects them
and times every comparison in one run with :func:`run_comparison`: each callable is warmed up,
then timed ``repeats`` times (each repeat runs it ``number`` times, chosen so that a repeat lasts
at least ``min_repeat_s``), the baseline's and the candidates' repeats interleaved; the reported
figure is the median per-call time.  The ratio is
``candidate / baseline`` (below 1 means the candidate is faster).

Callables must do the whole work being measured (including any ``.sum().backward()``) and
must not depend on state left by another callable.  Results returned by a callable are
discarded, but only after torch has finished producing them (CPU torch is synchronous; a CUDA
case should call ``torch.cuda.synchronize()`` inside its callable).
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = [
    "CLOCKS",
    "Comparison",
    "Measurement",
    "Result",
    "markdown_table",
    "run_comparison",
    "time_callable",
]


@dataclass
class Comparison:
    """One benchmark: a baseline and the candidates measured against it in the same run."""

    title: str  # e.g. "Normal.sample 1e7"
    baseline_label: str  # e.g. "torch.distributions"
    baseline: Callable[[], object]
    candidates: dict[str, Callable[[], object]]  # label -> fn, e.g. {"polysample[torch]": fn}
    goal: str = ""  # e.g. "<= 1.05x"


@dataclass
class Measurement:
    """Timing of one callable: the median and all per-call times of its repeats, in seconds."""

    label: str
    median_s: float
    times_s: list[float] = field(default_factory=list)
    number: int = 1


@dataclass
class Result:
    """A timed comparison: baseline and candidate measurements."""

    comparison: Comparison
    baseline: Measurement
    candidates: list[Measurement]

    def ratio(self, m: Measurement) -> float:
        """``m``'s median divided by the baseline's median."""
        return m.median_s / self.baseline.median_s if self.baseline.median_s > 0 else float("nan")


#: Clocks a benchmark can be timed with. "wall" is what a user waits; "cpu" (CPU time of this
#: process, all its threads) is immune to other processes competing for the cores, which makes
#: ratios stable on a shared machine (at equal thread counts on both sides of a comparison).
CLOCKS: dict[str, Callable[[], float]] = {"wall": time.perf_counter, "cpu": time.process_time}


def _calibrate(fn: Callable[[], object], warmup: int, min_repeat_s: float, max_number: int,
               clock: Callable[[], float] = time.perf_counter) -> int:
    """Warm ``fn`` up; return the calls per repeat (a power of ten) lasting >= ``min_repeat_s``."""
    for _ in range(max(warmup, 1)):
        fn()
    number = 1
    while number < max_number:
        t0 = clock()
        for _ in range(number):
            fn()
        if clock() - t0 >= min_repeat_s:
            break
        number *= 10
    return number


def _time_interleaved(
    fns: list[tuple[str, Callable[[], object]]],
    *,
    repeats: int,
    warmup: int,
    min_repeat_s: float,
    max_number: int,
    clock: Callable[[], float] = time.perf_counter,
) -> list[Measurement]:
    if repeats < 5:
        raise ValueError(f"repeats must be >= 5 for a meaningful median; received repeats={repeats}")
    numbers = [_calibrate(fn, warmup, min_repeat_s, max_number, clock) for _, fn in fns]
    times: list[list[float]] = [[] for _ in fns]
    gc_was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        for _ in range(repeats):
            for i, (_, fn) in enumerate(fns):
                t0 = clock()
                for _ in range(numbers[i]):
                    fn()
                times[i].append((clock() - t0) / numbers[i])
    finally:
        if gc_was_enabled:
            gc.enable()
    return [
        Measurement(label=label, median_s=statistics.median(ts), times_s=ts, number=number)
        for (label, _), ts, number in zip(fns, times, numbers, strict=True)
    ]


def time_callable(
    label: str,
    fn: Callable[[], object],
    *,
    repeats: int = 7,
    warmup: int = 2,
    min_repeat_s: float = 0.02,
    max_number: int = 100_000,
    clock: Callable[[], float] = time.perf_counter,
) -> Measurement:
    """Median per-call time of ``fn`` over ``repeats`` (>= 5) repeats after ``warmup`` calls.

    The number of calls per repeat is the smallest power of ten (<= ``max_number``) that makes a
    repeat last at least ``min_repeat_s``, so that microsecond-scale calls are not dominated by
    the timer's resolution.  The garbage collector is disabled while timing.
    """
    return _time_interleaved([(label, fn)], repeats=repeats, warmup=warmup,
                             min_repeat_s=min_repeat_s, max_number=max_number, clock=clock)[0]


def run_comparison(
    comparison: Comparison,
    *,
    repeats: int = 7,
    warmup: int = 2,
    min_repeat_s: float = 0.02,
    clock: Callable[[], float] = time.perf_counter,
) -> Result:
    """Time the baseline and every candidate of ``comparison``, interleaved.

    Each repeat times the baseline, then every candidate in dict order (as :func:`time_callable`
    does for one callable), so that a burst of load from other processes hits all of them
    alike instead of skewing one median.
    """
    fns = [(comparison.baseline_label, comparison.baseline), *comparison.candidates.items()]
    measured = _time_interleaved(fns, repeats=repeats, warmup=warmup,
                                 min_repeat_s=min_repeat_s, max_number=100_000, clock=clock)
    return Result(comparison=comparison, baseline=measured[0], candidates=measured[1:])


def format_seconds_ms(seconds: float) -> str:
    """Milliseconds with enough significant digits for both 1e-3 ms and 1e3 ms figures."""
    ms = seconds * 1e3
    if ms >= 100:
        return f"{ms:.0f}"
    if ms >= 1:
        return f"{ms:.2f}"
    return f"{ms:.4f}"


def markdown_table(results: list[Result]) -> str:
    """A Markdown table: comparison, candidate, median ms, ratio vs baseline, goal."""
    lines = [
        "| comparison | candidate | median ms | ratio vs baseline | goal |",
        "|---|---|---:|---:|---|",
    ]
    for r in results:
        c = r.comparison
        lines.append(
            f"| {c.title} | {r.baseline.label} (baseline) | {format_seconds_ms(r.baseline.median_s)} "
            f"| 1.00 | |"
        )
        for m in r.candidates:
            lines.append(
                f"| {c.title} | {m.label} | {format_seconds_ms(m.median_s)} | {r.ratio(m):.2f} "
                f"| {c.goal} |"
            )
    return "\n".join(lines)
