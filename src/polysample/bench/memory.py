"""Peak memory of one large draw, measured in a child process.

The figure is the growth of the process's resident set (Linux ``VmHWM``, its high-water mark)
during the draw, divided by the size of the result: 1.0 means the draw allocated nothing but
its output; 2.0 means a temporary as large as the output (a float64 copy of a float32 draw is
2.0 on its own). Each measurement runs in a fresh interpreter (``python -m
polysample.bench.memory``), so what earlier cases left in the allocator does not count: it
imports polysample, builds the distribution, draws a small warm-up sample (first-use
initialisation is not the draw's cost), resets the high-water mark (``/proc/self/clear_refs``)
and draws.

Linux only (``/proc``); elsewhere :func:`measure` returns ``None`` with the reason.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["MemoryResult", "measure", "supported"]


@dataclass(frozen=True)
class MemoryResult:
    """Peak extra resident memory of one draw and the output's size, in bytes."""

    label: str
    values: int
    output_bytes: int
    peak_bytes: int
    seconds: float

    @property
    def ratio(self) -> float:
        """Peak extra memory / output size (1.0: nothing but the output)."""
        return self.peak_bytes / self.output_bytes if self.output_bytes else float("nan")

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ratio": round(self.ratio, 4)}


def supported() -> tuple[bool, str]:
    """Whether this platform can reset and read the resident high-water mark."""
    if not sys.platform.startswith("linux"):
        return False, f"peak memory is measured through /proc (Linux); this is {sys.platform}"
    if not os.access("/proc/self/clear_refs", os.W_OK):
        return False, "/proc/self/clear_refs is not writable here (it resets the peak)"
    return True, ""


def _status(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"{field} not found in /proc/self/status")


def _reset_peak() -> None:
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")


def measure(spec: dict[str, Any], timeout: float = 600.0) -> MemoryResult:
    """Run the case ``spec`` (see :func:`_run_case`) in a child process and return its result.

    Raises ``RuntimeError`` with the child's error output when it fails.
    """
    env = dict(os.environ)
    # The child must import this same polysample (a checkout on PYTHONPATH included).
    here = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (here, env.get("PYTHONPATH", "")) if p)
    done = subprocess.run([sys.executable, "-m", "polysample.bench.memory"],
                          input=json.dumps(spec), capture_output=True, text=True, env=env,
                          timeout=timeout)
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"the memory measurement of {spec.get('label')!r} failed "
                           f"(exit {done.returncode}): {done.stderr.strip()[-2000:]}")
    return MemoryResult(**json.loads(lines[-1]))


def _run_case(spec: dict[str, Any]) -> dict[str, Any]:
    """In the child: build, warm up, reset the peak, draw ``spec['values']`` values."""
    import gc
    import time

    import torch

    from .natives import memory_case

    draw = memory_case(spec)
    draw(spec.get("warmup", 1000))
    gc.collect()
    before = _status("VmRSS")
    _reset_peak()
    t0 = time.perf_counter()
    out = draw(spec["values"])
    seconds = time.perf_counter() - t0
    peak = _status("VmHWM")
    assert isinstance(out, torch.Tensor), type(out)
    return {"label": spec["label"], "values": out.numel(),
            "output_bytes": out.numel() * out.element_size(),
            "peak_bytes": peak - before, "seconds": seconds}


if __name__ == "__main__":
    print(json.dumps(_run_case(json.loads(sys.stdin.read()))))
