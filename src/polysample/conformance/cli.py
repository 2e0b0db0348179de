"""``polysample validate``: run the conformance suite from the command line.

``register(subparsers)`` adds the subcommand to the ``polysample`` CLI; its ``func`` returns the
exit code: 0 when every check passed (expected failures allowed), 1 when one failed, 2 for a
usage error (unknown backend or family, unreadable or unwritable file).
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import time
from typing import Any, TextIO

__all__ = ["register", "run_validate", "UsageError"]


class UsageError(Exception):
    """A bad command line: printed without a traceback, exit status 2."""


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``validate`` to an ``argparse`` subparsers object."""
    p = subparsers.add_parser(
        "validate",
        help="run the conformance suite (every backend against SciPy, and against each other)",
        description=(
            "Check that backends draw from the right distributions with the right gradients: "
            "semantics, densities against SciPy, samplers (K-S with the DKWM bound, exact "
            "targeted moment tests), pathwise gradients and cross-backend agreement. "
            "Exit status: 0 all passed (expected failures allowed), 1 a check failed, "
            "2 usage error."),
    )
    p.add_argument("--backend", action="append", metavar="NAME",
                   help="backend to check (repeatable; default: every registered backend)")
    p.add_argument("--family", action="append", metavar="F",
                   help="family to check, e.g. Gamma (repeatable; default: all)")
    p.add_argument("--quick", action="store_true",
                   help="smaller samples, same alpha per check, weaker power (said in the report)")
    p.add_argument("--json", metavar="PATH", help="write the JSON report here (kept up to date "
                   "during the run)")
    p.add_argument("--html", metavar="PATH", help="write a self-contained HTML report here")
    p.add_argument("--vary-seed", nargs="?", const=-1, type=int, metavar="SALT",
                   help="derive every seed with this salt (random if omitted) instead of the "
                        "fixed CI seeds: repeated runs measure real failure rates")
    p.add_argument("--expected-failures", metavar="FILE",
                   help="JSON or TOML mapping check-id substrings to reasons, added to the built-in backends' known failures")
    p.add_argument("--layer", action="append", metavar="L",
                   help="only these layers: semantics, density, sampler, gradient, agreement")
    p.set_defaults(func=run_validate)
    return p


def _check_writable(path: str | None, what: str) -> None:
    if path is None:
        return
    parent = os.path.dirname(os.path.abspath(path)) or "."
    if not os.path.isdir(parent):
        raise UsageError(f"Cannot write the {what} report to {path!r}: directory {parent!r} "
                         "does not exist. Create it or choose another path.")
    try:
        with open(path, "a"):
            pass
    except OSError as exc:
        raise UsageError(f"Cannot write the {what} report to {path!r}: {exc.strerror}. "
                         "Choose a writable path.") from None


class _Progress:
    """A progress bar on a TTY; plain periodic lines otherwise."""

    def __init__(self, stream: TextIO):
        self.stream = stream
        self.tty = stream.isatty()
        self.last = 0.0
        self.t0 = time.perf_counter()

    def __call__(self, done: int, total: int, result: Any) -> None:
        now = time.perf_counter()
        if result.status == "fail":
            self._clear()
            self.stream.write(f"FAIL {result.id}: {result.message[:200]}\n")
        if self.tty:
            width = 30
            filled = int(width * done / max(total, 1))
            bar = "#" * filled + "." * (width - filled)
            self.stream.write(f"\r[{bar}] {done}/{total} {result.id[:60]:<60}")
            if done == total:
                self.stream.write("\n")
            self.stream.flush()
        elif now - self.last > 5 or done == total:
            self.last = now
            self.stream.write(f"validate: {done}/{total} checks, {now - self.t0:.0f} s "
                              f"({result.id})\n")
            self.stream.flush()

    def _clear(self) -> None:
        if self.tty:
            self.stream.write("\r" + " " * 100 + "\r")


def run_validate(args: argparse.Namespace) -> int:
    """The ``validate`` subcommand; returns the exit status."""
    try:
        return _run(args)
    except UsageError as exc:
        print(f"polysample validate: error: {exc}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    from ..core.errors import PolysampleError
    from ..core.families import FAMILIES
    from ..core.plugins import backend_names
    from .api import check_backends
    from .checks import LAYERS
    from .report import known_failures, load_expected_failures

    names = backend_names()
    backends = args.backend or names
    unknown = [b for b in backends if b not in names]
    if unknown:
        raise UsageError(f"unknown backend {', '.join(map(repr, unknown))}. Expected one of: "
                         f"{', '.join(names)}. A third-party backend must be installed or listed "
                         "in POLYSAMPLE_PLUGINS.")
    families = args.family
    if families:
        bad = [f for f in families if f not in FAMILIES]
        if bad:
            raise UsageError(f"unknown family {', '.join(map(repr, bad))}. Expected "
                             f"torch.distributions names: {', '.join(sorted(FAMILIES))}.")
    layers = tuple(args.layer) if args.layer else LAYERS
    bad_layers = [x for x in layers if x not in LAYERS]
    if bad_layers:
        raise UsageError(f"unknown layer {bad_layers}. Expected some of {list(LAYERS)}.")
    # The built-in backends' known upstream defects are declared by default (each with its
    # reason in the report); --expected-failures adds the caller's declarations.
    expected: dict[str, str] = known_failures()
    if args.expected_failures:
        try:
            expected.update(load_expected_failures(args.expected_failures))
        except (OSError, ValueError) as exc:
            raise UsageError(f"cannot read --expected-failures {args.expected_failures!r}: "
                             f"{exc}") from None
    _check_writable(args.json, "JSON")
    _check_writable(args.html, "HTML")
    salt = 0
    if args.vary_seed is not None:
        salt = args.vary_seed if args.vary_seed >= 0 else secrets.randbelow(2**31) + 1
        print(f"polysample validate: --vary-seed salt {salt}", file=sys.stderr)

    def save(report: Any) -> None:
        if args.json:
            report.write_json(args.json)

    try:
        report = check_backends(backends, families, expected, quick=args.quick, salt=salt,
                                layers=layers, progress=_Progress(sys.stderr), on_result=save)
    except PolysampleError as exc:
        raise UsageError(str(exc)) from None
    print(report.table())
    print()
    print(report.summary())
    if args.html:
        from .html import write_html

        write_html(report, args.html)
        print(f"HTML report: {args.html}")
    if args.json:
        print(f"JSON report: {args.json}")
    return 0 if report.ok else 1
