"""Time polysample's backends against the native libraries, in one run, as a Markdown table.

Usage::

    python benchmarks/bench_backends.py [--quick] [--only torch,numpy] [--repeats N] [--clock cpu]

Every ``benchmarks/cases_<backend>.py`` next to this file is imported when ``<backend>`` loads
on this machine (``polysample.load_backend``) and is selected by ``--only`` (default: all). Each
module's ``comparisons(quick)`` returns :class:`harness.Comparison` objects; each callable is
warmed up and timed ``--repeats`` (>= 5) times, and the table reports the median per call and
the ratio candidate / baseline. Machine and library versions are printed first.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import sys
import warnings
from pathlib import Path
from types import ModuleType

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from harness import CLOCKS, Comparison, Result, markdown_table, run_comparison  # noqa: E402


def _case_modules() -> dict[str, Path]:
    return {p.stem[len("cases_"):]: p for p in sorted(HERE.glob("cases_*.py"))}


def _backend_available(name: str) -> tuple[bool, str]:
    import polysample as ps

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ps.load_backend(name)
    except Exception as exc:  # any failure means: skip this backend's cases, say why
        return False, f"{type(exc).__name__}: {exc}"
    return True, ""


def _import(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"cases_{name}", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _versions() -> list[str]:
    lines = [
        f"python {platform.python_version()} on {platform.platform()}",
        f"machine: {platform.machine()}, {os.cpu_count()} logical CPUs, "
        f"processor: {platform.processor() or 'unknown'}",
    ]
    import numpy
    import torch

    import polysample

    lines.append(
        f"polysample {getattr(polysample, '__version__', '?')}, torch {torch.__version__} "
        f"({torch.get_num_threads()} intra-op threads, CUDA available: "
        f"{torch.cuda.is_available()}), numpy {numpy.__version__}"
    )
    for mod in ("tensorflow_probability", "jax", "tensorflow"):
        if mod in sys.modules:
            lines.append(f"{mod} {getattr(sys.modules[mod], '__version__', '?')}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, fewer repeats")
    parser.add_argument("--only", default="", help="comma-separated backends, e.g. torch,numpy")
    parser.add_argument("--repeats", type=int, default=None,
                        help="timed repeats per callable (>= 5; default 7, or 5 with --quick)")
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="wall",
                        help="wall: elapsed time (default); cpu: this process's CPU time, "
                        "stable when other processes load the machine")
    args = parser.parse_args(argv)
    repeats = args.repeats if args.repeats is not None else (5 if args.quick else 7)
    if repeats < 5:
        parser.error(f"--repeats must be >= 5; received {repeats}")

    modules = _case_modules()
    wanted = [n.strip() for n in args.only.split(",") if n.strip()] or list(modules)
    unknown = [n for n in wanted if n not in modules]
    if unknown:
        parser.error(f"no benchmarks/cases_<name>.py for {unknown}; expected some of "
                     f"{sorted(modules)}")

    results: list[Result] = []
    skipped: list[str] = []
    for name in wanted:
        ok, why = _backend_available(name)
        if not ok:
            skipped.append(f"{name}: backend unavailable ({why})")
            continue
        comparisons: list[Comparison] = _import(name, modules[name]).comparisons(args.quick)
        for comp in comparisons:
            print(f"timing {name}: {comp.title} ...", file=sys.stderr, flush=True)
            results.append(run_comparison(comp, repeats=repeats, clock=CLOCKS[args.clock]))

    print("## Machine\n")
    for line in _versions():
        print(f"- {line}")
    print(f"- clock: {args.clock} ({'elapsed' if args.clock == 'wall' else 'process CPU'} time)")
    print(f"- {repeats} timed repeats per callable after warm-up; median per call; "
          f"ratio = candidate / baseline (< 1 is faster){'; --quick sizes' if args.quick else ''}")
    for line in skipped:
        print(f"- skipped {line}")
    print("\n## Results\n")
    print(markdown_table(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
