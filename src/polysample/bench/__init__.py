"""``polysample bench``: performance against the native libraries, and the ``auto`` routes.

* :mod:`.engine` -- the benchmark: each backend beside the library it wraps, called directly,
  in one run (large draws, scalar latency, ``rsample`` + ``backward``, ``log_prob``, peak
  memory), with the performance goals shown beside the rows they concern;
* :mod:`.timing` -- interleaved repeats, medians and min-max ranges, wall or CPU clock;
* :mod:`.natives` -- the families of a default run and the native calls they are compared with;
* :mod:`.memory` -- peak resident memory of one draw, in a child process;
* :mod:`.calibrate` -- the routing table of the ``auto`` backend (costs and conformance
  verdicts), which :mod:`polysample.backends.routing` reads;
* :mod:`.cli` -- the ``polysample bench`` and ``polysample backends --routes`` commands.

Nothing here is imported by ``import polysample``.
"""

from __future__ import annotations

from .engine import FULL, SMOKE, BenchReport, Row, Sizes, run_bench

__all__ = ["run_bench", "BenchReport", "Row", "Sizes", "FULL", "SMOKE"]
