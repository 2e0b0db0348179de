"""Timing: callables measured side by side, repeats interleaved, medians reported.

Every callable of a comparison is warmed up, then timed ``repeats`` times; each repeat runs it
``number`` times, the smallest power of ten that makes a repeat last ``min_repeat_s``. The
repeats are interleaved (baseline, candidate, baseline, candidate, ...), so a burst of load
from other processes hits every callable alike instead of skewing one median. The garbage
collector is off while timing. A measurement keeps every per-call time: the median is the
figure, the min-max range shows the spread.

Clocks: ``wall`` (``time.perf_counter``: what a user waits) and ``cpu`` (``time.process_time``:
this process's CPU time, all threads; immune to other processes competing for the cores, so
ratios stay stable on a shared machine, at equal thread counts on both sides).

Callables must do the whole work being measured (including any ``.backward()``), must not
depend on state left by another callable, and must have finished their work when they return
(CPU torch is synchronous; a CUDA case calls ``torch.cuda.synchronize()`` itself).
"""

from __future__ import annotations

import contextlib
import gc
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

__all__ = ["CLOCKS", "Comparison", "Measurement", "Result", "run_comparison", "time_callable",
           "format_seconds", "frozen_heap"]

#: Clocks a benchmark can be timed with (see the module docstring).
CLOCKS: dict[str, Callable[[], float]] = {"wall": time.perf_counter, "cpu": time.process_time}


@dataclass
class Comparison:
    """One benchmark: a baseline and the candidates measured against it in the same run."""

    title: str
    baseline_label: str
    baseline: Callable[[], object]
    candidates: dict[str, Callable[[], object]]
    goal: str = ""


@dataclass
class Measurement:
    """Per-call times (seconds) of one callable's repeats; ``median_s`` is the figure."""

    label: str
    median_s: float
    times_s: list[float] = field(default_factory=list)
    number: int = 1

    @property
    def min_s(self) -> float:
        return min(self.times_s) if self.times_s else self.median_s

    @property
    def max_s(self) -> float:
        return max(self.times_s) if self.times_s else self.median_s


@dataclass
class Result:
    """A timed comparison: baseline and candidate measurements."""

    comparison: Comparison
    baseline: Measurement
    candidates: list[Measurement]

    def ratio(self, m: Measurement) -> float:
        """``m``'s median divided by the baseline's (below 1: ``m`` is faster)."""
        return m.median_s / self.baseline.median_s if self.baseline.median_s > 0 else float("nan")


def _number(fn: Callable[[], object], warmup: int, min_repeat_s: float, max_number: int,
            clock: Callable[[], float]) -> int:
    """Warm ``fn`` up; the calls per repeat (a power of ten) lasting >= ``min_repeat_s``."""
    for _ in range(warmup):
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


@contextlib.contextmanager
def frozen_heap() -> Iterator[None]:
    """Collect once, then keep the objects alive now out of later collections until exit.

    :func:`time_interleaved` runs a full collection before each timing, which walks every
    object of the process: in a process with a large heap (a test run, a notebook session) that
    took most of a smoke benchmark's time. Inside this block the objects that existed on entry
    sit in the collector's permanent generation (``gc.freeze``), so each of those collections
    walks only what the benchmark made since. On exit they are collectable again.
    """
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def time_interleaved(fns: list[tuple[str, Callable[[], object]]], *, repeats: int = 7,
                     warmup: int = 2, min_repeat_s: float = 0.02, max_number: int = 100_000,
                     clock: Callable[[], float] = time.perf_counter) -> list[Measurement]:
    """Time every callable of ``fns`` (label, fn), repeats interleaved (module docstring)."""
    if repeats < 1:
        raise ValueError(f"Expected repeats >= 1. Received: repeats={repeats}.")
    numbers = [_number(fn, warmup, min_repeat_s, max_number, clock) for _, fn in fns]
    times: list[list[float]] = [[] for _ in fns]
    gc_was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        for _ in range(repeats):
            for i, (_, fn) in enumerate(fns):
                n = numbers[i]
                t0 = clock()
                for _ in range(n):
                    fn()
                times[i].append((clock() - t0) / n)
    finally:
        if gc_was_enabled:
            gc.enable()
    return [Measurement(label, statistics.median(ts), ts, n)
            for (label, _), ts, n in zip(fns, times, numbers, strict=True)]


def time_callable(label: str, fn: Callable[[], object], *, repeats: int = 7, warmup: int = 2,
                  min_repeat_s: float = 0.02, max_number: int = 100_000,
                  clock: Callable[[], float] = time.perf_counter) -> Measurement:
    """Median per-call time of ``fn`` (see :func:`time_interleaved`)."""
    return time_interleaved([(label, fn)], repeats=repeats, warmup=warmup,
                            min_repeat_s=min_repeat_s, max_number=max_number, clock=clock)[0]


def run_comparison(comparison: Comparison, *, repeats: int = 7, warmup: int = 2,
                   min_repeat_s: float = 0.02,
                   clock: Callable[[], float] = time.perf_counter) -> Result:
    """Time the baseline and every candidate of ``comparison``, interleaved."""
    fns = [(comparison.baseline_label, comparison.baseline), *comparison.candidates.items()]
    measured = time_interleaved(fns, repeats=repeats, warmup=warmup,
                                min_repeat_s=min_repeat_s, clock=clock)
    return Result(comparison, measured[0], measured[1:])


def format_seconds(seconds: float) -> str:
    """A duration with a unit chosen for it: ``12.3 us``, ``4.56 ms``, ``1.23 s``."""
    if seconds != seconds:  # NaN
        return "-"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.3g} us"
    if seconds < 1:
        return f"{seconds * 1e3:.3g} ms"
    return f"{seconds:.3g} s"
