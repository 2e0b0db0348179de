"""``polysample bench`` and ``polysample backends --routes`` (registered by :mod:`polysample.cli`).

* ``polysample bench [--backend B ...] [--family F ...] [--op sample|rsample|log_prob ...]
  [--json PATH] [--markdown PATH] [--clock cpu|wall] [--repeats N] [--no-memory] [--smoke]``:
  the benchmark of :mod:`.engine`, a table in the terminal (with a progress bar on a
  terminal), JSON for tracking.
* ``polysample bench --calibrate [--backend B ...] [--family F ...] [--routes-file PATH]``:
  measure the routing table of the ``auto`` backend (:mod:`.calibrate`) and write it to the
  user's cache directory.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any, TextIO

__all__ = ["register", "run_bench_command", "print_routes"]


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``bench`` to an ``argparse`` subparsers object."""
    p = subparsers.add_parser(
        "bench", help="time every backend beside its native library (and calibrate 'auto')",
        description=(
            "Time each backend beside the library it wraps, called directly, in one run: a "
            "large sample (1e7 values), scalar sample() and rsample() per call, rsample + "
            "backward (1e6 values), log_prob (1e7 values), and the peak memory of a "
            "1e8-value float32 sample. Repeats are interleaved; the table shows the median, "
            "the min-max range and the ratio polysample / native. With --calibrate, measure "
            "the routing table of the 'auto' backend instead."),
    )
    p.add_argument("--backend", action="append", metavar="NAME",
                   help="backend to time (repeatable; default: every available backend)")
    p.add_argument("--family", action="append", metavar="F",
                   help="family (repeatable; default: Normal, LogNormal, Uniform, Exponential, "
                        "Gamma, Beta, StudentT, Laplace, Poisson, Bernoulli; --calibrate: "
                        "every family)")
    p.add_argument("--op", action="append", choices=("sample", "rsample", "log_prob"),
                   help="operation (repeatable; default: all three)")
    p.add_argument("--json", metavar="PATH", help="write the results as JSON")
    p.add_argument("--markdown", metavar="PATH", help="write the table as Markdown")
    p.add_argument("--clock", choices=("cpu", "wall"), default=None,
                   help="cpu: this process's CPU time, stable on a shared machine (default "
                        "for bench); wall: elapsed time (default for --calibrate)")
    p.add_argument("--repeats", type=int, metavar="N",
                   help="timed repeats per callable (default 7; 1 with --smoke)")
    p.add_argument("--no-memory", action="store_true",
                   help="skip the peak-memory measurement (one child process per case)")
    p.add_argument("--smoke", action="store_true",
                   help="tiny sizes and one repeat: checks that every case runs (CI)")
    p.add_argument("--calibrate", action="store_true",
                   help="measure the routing table of the 'auto' backend: each backend's cost "
                        "per family and operation, and its conformance verdict")
    p.add_argument("--routes-file", metavar="PATH",
                   help="with --calibrate: where to write the table (default: the user's cache "
                        "directory, where 'auto' reads it)")
    p.set_defaults(func=run_bench_command)
    return p


class _Progress:
    """A rich progress bar on a terminal, plain lines every few seconds otherwise."""

    def __init__(self, stream: TextIO, what: str) -> None:
        self.stream, self.what = stream, what
        self.t0 = self.last = time.perf_counter()
        self._bar: Any = None
        if stream.isatty():
            try:
                from rich.console import Console
                from rich.progress import (
                    BarColumn,
                    MofNCompleteColumn,
                    Progress,
                    TextColumn,
                    TimeElapsedColumn,
                )
            except ImportError:
                return
            self._bar = Progress(TextColumn(what), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), TextColumn("{task.description}"),
                                 console=Console(file=stream), transient=True)
            self._task = self._bar.add_task("", total=1)
            self._bar.start()

    def __call__(self, label: str, done: int, total: int) -> None:
        if self._bar is not None:
            self._bar.update(self._task, completed=done, total=total, description=label)
            return
        now = time.perf_counter()
        if now - self.last > 5 or done == 0 or done == total:
            self.last = now
            self.stream.write(f"{self.what}: {done}/{total}, {now - self.t0:.0f} s: {label}\n")
            self.stream.flush()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None


def write_atomic(path: str, text: str) -> None:
    """Write through a temporary file and a rename: readers never see half a file."""
    import os

    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, path)


def _available_backends() -> list[str]:
    import warnings

    import polysample as ps

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return [b.name for b in ps.backends() if b.status == "available"]


def _usage(msg: str) -> int:
    print(f"polysample bench: error: {msg}", file=sys.stderr)
    return 2


def run_bench_command(args: argparse.Namespace) -> int:
    """The ``bench`` subcommand; returns the exit status (0, or 2 for a usage error)."""
    from ..core.errors import did_you_mean
    from ..core.families import FAMILIES
    from ..core.plugins import backend_names

    names = backend_names()
    for b in args.backend or []:
        if b not in names:
            return _usage(f"unknown backend {b!r}. Expected one of: {', '.join(names)}."
                          f"{did_you_mean(b, names)}")
    for f in args.family or []:
        if f not in FAMILIES:
            return _usage(f"unknown family {f!r}. Expected torch.distributions names: "
                          f"{', '.join(sorted(FAMILIES))}.{did_you_mean(f, sorted(FAMILIES))}")
    if args.repeats is not None and args.repeats < 1:
        return _usage(f"--repeats must be >= 1. Received: {args.repeats}.")
    for path in (args.json, args.markdown, args.routes_file):
        if path:
            try:
                with open(path, "a"):
                    pass
            except OSError as exc:
                return _usage(f"cannot write {path!r}: {exc.strerror or exc}.")
    if args.calibrate:
        return _calibrate(args)
    from .engine import FULL, SMOKE, Sizes, machine_line, markdown, run_bench, table_rows

    base = SMOKE if args.smoke else FULL
    sizes = Sizes(base.large, base.grad, base.memory,
                  args.repeats if args.repeats is not None else base.repeats,
                  base.warmup, base.min_repeat_s)
    backends = args.backend or _available_backends()
    progress = _Progress(sys.stderr, "bench")
    try:
        report = run_bench(backends, args.family, tuple(args.op or ("sample", "rsample",
                                                                       "log_prob")),
                           sizes, args.clock or "cpu", memory=not args.no_memory,
                           progress=progress)
    finally:
        progress.close()
    _print_table(report, table_rows(report))
    print(machine_line(report))
    if args.json:
        write_atomic(args.json, json.dumps(report.to_dict(), indent=1, default=str))
    if args.markdown:
        write_atomic(args.markdown, markdown(report) + "\n\nMachine: " + machine_line(report)
                     + "\n")
    return 0


def _print_table(report: Any, rows: list[list[str]]) -> None:
    from .engine import HEADER

    if sys.stdout.isatty():
        try:
            from rich.console import Console
            from rich.table import Table
        except ImportError:
            pass
        else:
            t = Table(*HEADER, title="polysample bench")
            for row in rows:
                style = "red" if row[-1].endswith("MISSED") else None
                t.add_row(*row, style=style)
            Console().print(t)
            return
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(HEADER)]
    print("  ".join(h.ljust(w) for h, w in zip(HEADER, widths)).rstrip())
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())


def _calibrate(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..backends import routing
    from .calibrate import calibrate

    backends = args.backend or [b for b in _available_backends() if b != "auto"]
    if "auto" in backends:
        return _usage("'auto' routes to the other backends; calibrate those (leave out "
                      "--backend auto).")
    path = Path(args.routes_file) if args.routes_file else routing.user_table_path()
    progress = _Progress(sys.stderr, "calibrate")
    try:
        table = calibrate(backends, args.family, smoke=args.smoke, clock=args.clock or "wall",
                          repeats=args.repeats, progress=progress)
    finally:
        progress.close()
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(str(path), json.dumps(table.to_dict(), indent=1) + "\n")
    _reload_auto()
    print(f"Wrote the routing table to {path}.")
    print_routes(table)
    return 0


def _reload_auto() -> None:
    from ..core.plugins import registry

    entry = registry.entries().get("auto")
    if entry is not None and entry.instance is not None:
        entry.instance.reload()  # type: ignore[attr-defined]


def print_routes(table: Any = None, as_json: bool = False) -> int:
    """``polysample backends --routes``: each route, its figures and its verdicts."""
    import warnings

    from ..backends.auto import AutoBackend

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        auto = AutoBackend(table)
        auto.routes()
    for w in caught:
        print(f"warning: {w.message}", file=sys.stderr)
    if as_json:
        print(json.dumps(describe_routes(auto, structured=True), indent=1))
    else:
        print(describe_routes(auto))
    return 0


def _cost(c: Any) -> str:
    from .timing import format_seconds

    return (f"{format_seconds(c.overhead_s)} + {c.per_value_s * 1e9:.3g} ns/value")


def describe_routes(auto: Any, structured: bool = False) -> Any:
    """The resolved routes of ``auto`` as text (or a JSON-able dict with ``structured``)."""
    from ..backends import routing

    table = auto.table
    stale = routing.stale_reasons(table)
    head = {"source": table.source, "path": table.path or str(routing.DEFAULTS_PATH),
            "created": table.created, "machine": table.machine, "versions": table.versions,
            "stale": stale, "notes": table.notes, "user_table": str(routing.user_table_path())}
    fams: dict[str, Any] = {}
    for family, ops in sorted(auto.routes().items()):
        fams[family] = {}
        for op, ch in ops.items():
            fams[family][op] = {
                "route": [{"from_values": n, "backend": b} for n, b in ch.segments],
                "candidates": [{**c.to_dict(), "eligible": c.backend in ch.eligible,
                                "excluded": ch.excluded.get(c.backend)}
                               for c in ch.route.candidates]}
    if structured:
        return {"table": head, "routes": fams, "omitted": auto.omitted}
    lines = [f"Routing table: {table.source} ({head['path']})"]
    if table.created or table.machine:
        lines.append(f"  measured {table.created or '?'} on {table.machine or '?'}")
    if table.versions:
        lines.append("  with " + ", ".join(f"{k} {v}" for k, v in sorted(table.versions.items())))
    for s in stale:
        lines.append(f"  differs from this installation: {s} (run `polysample bench "
                     "--calibrate` to measure this machine)")
    for n in table.notes:
        lines.append(f"  note: {n}")
    lines.append("  cost model: a draw of n values costs overhead + n * per-value time; the "
                 "cheapest eligible backend draws it")
    for family, ops in fams.items():
        lines.append(f"{family}")
        for op, info in ops.items():
            route = ", ".join(b if r == 1 else f"{b} from {r:,} values"
                              for r, b in ((x["from_values"], x["backend"]) for x in info["route"]))
            lines.append(f"  {op:8s} -> {route or 'none'}")
            for c in auto.routes()[family][op].route.candidates:
                mark = "*" if c.backend in auto.routes()[family][op].eligible else "x"
                why = auto.routes()[family][op].excluded.get(c.backend)
                verdict = f"conformance {c.verdict}" + (f" ({c.detail})" if c.detail else "")
                lines.append(f"      {mark} {c.backend:8s} {_cost(c):28s} {verdict}"
                             + (f"; excluded: {why}" if why else ""))
    for family, why in sorted(auto.omitted.items()):
        lines.append(f"{family}: not offered by auto: {why}")
    return "\n".join(lines)
