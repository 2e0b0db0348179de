"""``polysample validate``: run the conformance suite from the command line.

``register(subparsers)`` adds the subcommand to the ``polysample`` CLI; its ``func`` returns the
exit code: 0 when every check passed (expected failures allowed), 1 when one failed, 2 for a
usage error (unknown backend or family, a family no selected backend supports, a selection
that gives no check at all, unreadable or unwritable file), 130 when interrupted (Ctrl-C: the reports written so far say
``"complete": false``).
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import secrets
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any, TextIO

__all__ = ["register", "run_validate", "UsageError", "default_backends", "JSON_EVERY"]

#: During a run, ``--json`` rewrites the report at most this often (seconds); it is always
#: written when the run ends, completed, interrupted or failed.
JSON_EVERY = 5.0


#: The most characters of a failure's message that its live ``FAIL`` line shows (then "...";
#: the summary at the end and the reports give it whole).
FAIL_LINE = 240


class UsageError(Exception):
    """A bad command line: printed without a traceback, exit status 2."""


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``validate`` to an ``argparse`` subparsers object."""
    p = subparsers.add_parser(
        "validate",
        help="run the conformance suite (every backend against SciPy, and against each other)",
        description=(
            "Check that backends draw from the right distributions with the right gradients: "
            "semantics (the sample/rsample contract), densities against SciPy, samplers (K-S "
            "with the DKWM bound, exact normal-score and sum tests), pathwise gradients and "
            "cross-backend agreement. Exit status: 0 all passed (expected failures allowed), "
            "1 a check failed, 2 usage error, 130 interrupted."),
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
                   help="TOML or JSON declarations of known failures (docs/conformance.md), "
                        "added to the built-in backends' known failures")
    p.add_argument("--no-known-failures", action="store_true",
                   help="do not declare the built-in backends' known upstream failures "
                        "(known_failures.toml): judge every check as it is")
    p.add_argument("--layer", action="append", metavar="L",
                   help="only these layers: semantics, density, sampler, gradient, agreement")
    p.add_argument("--workers", type=int, metavar="N",
                   help="run on a local Dask cluster of N worker processes (needs "
                        "polysample[dask]); the report is the same as a serial run's")
    p.add_argument("--scheduler", metavar="SPEC",
                   help="processes:N (a local Dask cluster) or the address of a running Dask "
                        "scheduler (tcp://host:8786)")
    p.add_argument("--profile", action="store_true",
                   help="print where the time went (per backend, layer, check and family)")
    p.add_argument("--show-grids", action="store_true",
                   help="print the parameter grids (of each --family, default all) with their "
                        "dtype, sample sizes and points, then exit")
    p.set_defaults(func=run_validate)
    return p


def _check_writable(path: str | None, what: str) -> None:
    """Refuse a report path that cannot be written, without creating or truncating it: the
    reports are only ever written atomically (a temporary file in the same directory, then a
    rename), so the directory must take a new file; a temporary one is made and removed."""
    if path is None:
        return
    if path == "-":
        raise UsageError(f"Expected a file path for --{what.lower()}. Received: '-' (standard "
                         "output is not supported: the report is rewritten during the run and "
                         "stdout carries the summary). Give a path, e.g. "
                         f"--{what.lower()} report.{what.lower()}.")
    parent = os.path.dirname(os.path.abspath(path)) or "."
    if not os.path.isdir(parent):
        above = parent
        while above and not os.path.exists(above) and os.path.dirname(above) != above:
            above = os.path.dirname(above)
        if os.path.exists(above) and not os.path.isdir(above):
            raise UsageError(f"Cannot write the {what} report to {path!r}: {above!r} is a file, "
                             "not a directory. Choose another path.")
        raise UsageError(f"Cannot write the {what} report to {path!r}: directory {parent!r} "
                         "does not exist. Create it or choose another path.")
    if os.path.isdir(path):
        raise UsageError(f"Cannot write the {what} report to {path!r}: it is a directory. "
                         "Give a file path.")
    try:
        fd, tmp = tempfile.mkstemp(prefix=".polysample-", suffix=".tmp", dir=parent)
    except OSError as exc:
        raise UsageError(f"Cannot write the {what} report to {path!r}: {exc.strerror}. "
                         "Choose a writable path.") from None
    os.close(fd)
    os.remove(tmp)


#: Rough time of one check in milliseconds, per layer, on a backend that runs as it is called
#: and on one that compiles programs (the tfp backends: first use traces or compiles), per unit
#: of family weight: the geometric mean of a cold and a warm `make demo` (2026-12-04, the
#: 2-core machine; cold / warm: semantics 1.3 / 1.3 and 68.5 / 21.3, density 4.9 / 4.9 and
#: 27.5 / 16.8, sampler 15.0 / 13.7 and 49.4 / 23.3, gradient 27.4 / 23.8 and 202.7 / 50.4,
#: agreement 0.4 / 0.5). The ETA weighs what is left by these: semantics checks are ten times
#: cheaper than sampler checks on torch, and the compiled backends' checks come first on a
#: cluster, so counting checks misled by a factor of ten early in a run. Priors that were off
#: by a different factor per layer (a compiled backend's semantics checks took 0.2-0.7 times
#: the earlier priors, its gradient checks 0.07-0.3 times) made the first estimate, learnt
#: from semantics checks alone, two to three times too long.
CHECK_MS: dict[str, tuple[float, float]] = {
    "semantics": (1.3, 38.2), "density": (4.9, 21.5), "sampler": (14.3, 33.9),
    "gradient": (25.5, 101.0), "agreement": (0.45, 0.45)}


#: A sampler check's share of its layer's cost, by check name (1: the layer's mean per check,
#: which ``CHECK_MS`` gives). The checks of a (family, grid) share its draws, and the check that
#: makes a draw pays for it and for the sort and CDF its statistics share: in a warm quick run
#: of the demo (2026-12-05, torch and numpy; the layer's mean 29.4 ms per check)
#: ``sample_ks`` took 172 ms on average, ``calls_ks`` 93, ``rsample_ks`` 56, the atom, sum,
#: repeat, independence and tail checks of ``sample()`` 30, 15, 12, 11 and 5.5, those of
#: ``rsample()`` (whose draw is often ``sample()``'s) 1-5, ``calls_repeats`` 0.7, the
#: normal-score checks 2-4: these shares. With one prior for every check of the layer, the
#: check that draws counted for ten priors at most (``EtaModel.OUTLIER``), and a full run's
#: ETA was two to three times too short.
SAMPLER_SHARE: dict[str, float] = {
    "sample_ks": 5.9, "rsample_ks": 1.9, "calls_ks": 3.2, "sample_repeats": 0.4,
    "rsample_repeats": 0.03, "calls_repeats": 0.02, "calls_indep": 0.05, "scalar_ks": 1.0, "sample_sum": 0.5,
    "rsample_sum": 0.5,
    "sample_indep": 0.38, "rsample_indep": 0.05, "sample_tails": 0.19, "rsample_tails": 0.16,
    "sample_atoms": 1.0, "rsample_atoms": 1.0}
#: The share of a sampler check not named above (the normal-score checks).
SAMPLER_SHARE_OTHER = 0.1


def size_scale(layer: str, family: str | None, grid: str | None, name: str | None,
               quick: bool) -> float:
    """How much more a full run's check draws than a quick run's (1 in quick mode): the
    sample-size ratio of the check's grid for the sampler layer (4 on a typical grid, 8-32 on
    the corners), the ratio of the calls for ``calls_ks``, the mean-gradient sample ratio for
    the gradient z-tests. The costs measured on torch and numpy followed these ratios within a
    factor of two (sampler checks 4.3 times on the typical grids, 18 times on the corners;
    gradient z-tests 6-8.5 times against 10)."""
    if quick or family is None or grid is None:
        return 1.0
    if layer == "sampler":
        from .runner import CALLS_FULL, CALLS_QUICK

        if name in ("calls_ks", "calls_repeats", "calls_indep"):
            return CALLS_FULL / CALLS_QUICK
        if name == "scalar_ks":
            return 1.0  # the same calls in both modes
        from .cases import CASES, sample_size

        if family not in CASES:
            return 1.0
        return sample_size(family, grid, False) / sample_size(family, grid, True)
    if layer == "gradient" and name == "grad_shape":
        from .layers.gradient import SHAPE_CALLS

        return SHAPE_CALLS[0] / SHAPE_CALLS[1]
    if layer == "gradient" and name in ("grad_mean", "grad_cdf"):
        from .layers.gradient import GRAD_MEAN_SAMPLES

        return GRAD_MEAN_SAMPLES[0] / GRAD_MEAN_SAMPLES[1]
    return 1.0


def check_weight(layer: str, backend: str, compiled: frozenset[str],
                 family: str | None = None, name: str | None = None,
                 grid: str | None = None, quick: bool = True) -> float:
    """The expected cost (ms) of a check of ``layer`` on ``backend`` (see ``CHECK_MS``), times
    the family's weight when ``family`` is given (:func:`.runner.family_weight`), the check's
    share of its layer when ``name`` is given (``SAMPLER_SHARE``), and how much more it draws
    in a full run (:func:`size_scale`) when ``quick`` is false."""
    from .runner import family_weight

    eager, comp = CHECK_MS.get(layer, (10.0, 10.0))
    ms = comp if backend in compiled else eager
    if family is not None:
        ms *= family_weight(family)
    if layer == "sampler" and name is not None:
        ms *= SAMPLER_SHARE.get(name, SAMPLER_SHARE_OTHER)
    return ms * size_scale(layer, family, grid, name, quick)


def eta_seconds(elapsed: float, done: float, total: float) -> float | None:
    """Seconds left, from the weight done in ``elapsed`` seconds; None until 1% of the weight
    is done (an estimate from less says nothing)."""
    if total <= 0 or done < 0.01 * total or elapsed <= 0:
        return None
    return elapsed * max(total - done, 0.0) / done


class EtaModel:
    """Seconds left in a run, learnt from the checks that finished.

    Every planned check has a kind, ``(backend, layer)``, and a prior cost (``check_weight``
    with its family, in milliseconds). A finished check reports the seconds it took. Each
    kind learns the ratio of its measured seconds to its priors, shrunk toward the ratio of
    its backend, that one toward the ratio of the backend's class (``classes``: compiled or
    not), that one toward the ratio of every measured check, and that one toward 1 (the
    prior); each shrinkage weighs the parent as ``pseudo`` checks of the group's mean prior.
    A warm cache makes a compiled backend's every layer faster than the priors say, a cold one
    slower, and its layers (and the compiled backends) not measured yet follow, while a
    backend's first few checks (a process's first draw imports its library) do not set its
    ratio alone: they did, and a warm five-backend run of 134 s said "ETA 1950 s" at 33 s. A
    check still to come costs its prior times its kind's ratio; the time left is their sum
    over the number of checks running at once (``workers``). Priors alone misled by a factor
    of two to five early in a run (a warm four-backend run said "ETA 512 s" 19 s into a 103 s
    run).
    """

    #: The most a check counts for, in multiples of its prior (see :meth:`add`).
    OUTLIER = 10.0

    def __init__(self, kinds: Sequence[Any], priors: Sequence[float], workers: int = 1,
                 pseudo: float = 3.0, classes: dict[str, str] | None = None) -> None:
        self.workers = max(int(workers), 1)
        self.classes = classes or {}
        self.pseudo = pseudo
        #: Per kind: the priors (s) of the checks left, and of the checks measured, the
        #: seconds measured, and the number of planned checks.
        self.left: dict[Any, float] = {}
        self.prior_done: dict[Any, float] = {}
        self.seconds: dict[Any, float] = {}
        self.planned: dict[Any, int] = {}
        #: Per group (a backend, ``("class", c)``, or ``"all"``): the seconds measured, their
        #: priors, and the pseudo-prior (s) its parent's ratio counts for.
        self.group_seconds: dict[Any, float] = {}
        self.group_prior: dict[Any, float] = {}
        self.group_weight: dict[Any, float] = {}
        planned: dict[Any, int] = {}
        for kind, ms in zip(kinds, priors):
            self.left[kind] = self.left.get(kind, 0.0) + ms / 1000.0
            self.planned[kind] = self.planned.get(kind, 0) + 1
            for group in self._groups(kind):
                self.group_weight[group] = self.group_weight.get(group, 0.0) + ms / 1000.0
                planned[group] = planned.get(group, 0) + 1
        for group, n in planned.items():
            self.group_weight[group] *= self.pseudo / n
        self.total = sum(self.left.values())
        self.expected = 0.0  # the priors of the measured checks

    def _groups(self, kind: Any) -> tuple[Any, ...]:
        """The groups of ``kind``, innermost first: its backend, its class, every check."""
        return (kind[0], ("class", self.classes.get(kind[0])), "all")

    def _ratio(self, kind: Any) -> float:
        """The measured-to-prior ratio of ``kind``'s backend, shrunk as the class says."""
        ratio = 1.0
        for group in reversed(self._groups(kind)):
            a = self.group_weight.get(group, 0.0)
            seen = self.group_prior.get(group, 0.0)
            if seen + a > 0:
                ratio = (self.group_seconds.get(group, 0.0) + a * ratio) / (seen + a)
        return ratio

    def add(self, kind: Any, prior_ms: float, seconds: float) -> None:
        """One finished check of ``kind``, of prior cost ``prior_ms``, that took ``seconds``."""
        if kind not in self.left or not seconds >= 0:
            return
        prior = prior_ms / 1000.0
        # A one-time cost (the first draw of a process imports TensorFlow: seconds) says nothing
        # about the checks to come: no check counts for more than OUTLIER times its prior.
        seconds = min(seconds, self.OUTLIER * prior)
        self.left[kind] = max(self.left[kind] - prior, 0.0)
        self.prior_done[kind] = self.prior_done.get(kind, 0.0) + prior
        self.seconds[kind] = self.seconds.get(kind, 0.0) + seconds
        self.expected += prior
        for group in self._groups(kind):
            self.group_seconds[group] = self.group_seconds.get(group, 0.0) + seconds
            self.group_prior[group] = self.group_prior.get(group, 0.0) + prior

    def eta(self) -> float | None:
        """Seconds left; None until the measured checks' priors make 1% of the plan's."""
        if self.expected <= 0 or self.expected < 0.01 * self.total:
            return None
        left = 0.0
        for kind, rest in self.left.items():
            if rest > 0:
                scale = self._ratio(kind)
                # ``pseudo`` checks of the kind's mean prior at its backend's ratio
                a = self.pseudo * (rest + self.prior_done.get(kind, 0.0)) / self.planned[kind]
                ratio = (self.seconds.get(kind, 0.0) + a * scale) / (
                    self.prior_done.get(kind, 0.0) + a)
                left += rest * ratio
        return left / self.workers


class _Progress:
    """Progress with elapsed time and ETA: a ``rich`` bar on a terminal, periodic plain lines
    otherwise (CI logs). Failures are printed as they happen. The bar advances by each check's
    expected cost (``check_weight``), the counts by checks. The ETA comes from ``eta``, an
    :class:`EtaModel` fed with each result's backend and layer, ``weigh(result)`` and seconds,
    when given; from the weight done per second otherwise."""

    def __init__(self, stream: TextIO, total: int, weights: Sequence[float] = (),
                 weigh: Callable[[Any], float] | None = None, eta: EtaModel | None = None,
                 settled: bool = False):
        self.stream = stream
        #: With ``settled``, the model learns from the results only at :meth:`settle` (the end
        #: of a unit): a cluster delivers a unit's results at once, and an estimate made in the
        #: middle of them saw a backend's first check (its library's import) without the
        #: checks that put it in proportion ("ETA 341 s" 25 s into a 121 s run).
        self.settled = settled
        self._pending: list[tuple[Any, float, float]] = []
        self.total = total
        self.weight_total = float(sum(weights)) if weights else float(total)
        self.weight_done = 0.0
        self.weigh = weigh or (lambda result: 1.0)
        self.model = eta
        self.t0 = time.perf_counter()
        self.last = 0.0
        self._bar: Any = None
        if stream.isatty():
            try:
                from rich.console import Console
                from rich.progress import (
                    BarColumn,
                    Progress,
                    TextColumn,
                    TimeElapsedColumn,
                )
            except ImportError:  # rich is optional: plain lines then
                return
            self._console = Console(file=stream)
            self._bar = Progress(TextColumn("validate"), BarColumn(),
                                 TextColumn("{task.fields[checks]}"), TimeElapsedColumn(),
                                 TextColumn("{task.fields[eta]}"),
                                 TextColumn("{task.description}"), console=self._console,
                                 transient=False)
            self._task = self._bar.add_task("", total=self.weight_total,
                                            checks=f"0/{total}", eta="ETA estimating")
            self._bar.start()

    def settle(self) -> None:
        """Teach the ETA model the results received since the last call."""
        if self.model is not None:
            for kind, weight, seconds in self._pending:
                self.model.add(kind, weight, seconds)
        self._pending.clear()

    def eta_text(self, elapsed: float) -> str:
        if self.weight_done >= self.weight_total:
            eta: float | None = 0.0
        elif self.model is not None:
            eta = self.model.eta()
        else:
            eta = eta_seconds(elapsed, self.weight_done, self.weight_total)
        return "ETA estimating" if eta is None else f"ETA {eta:.0f} s"

    def __call__(self, done: int, total: int, result: Any) -> None:
        now = time.perf_counter()
        self.weight_done += self.weigh(result)
        seconds = getattr(result, "seconds", None)
        if self.model is not None and isinstance(seconds, (int, float)):
            self._pending.append(((result.backend, result.layer), self.weigh(result),
                                  float(seconds)))
            if not self.settled:
                self.settle()
        if done >= total:
            self.weight_done = self.weight_total
        if result.status == "fail":
            message = result.message
            if len(message) > FAIL_LINE:  # the whole message is in the summary and reports
                message = message[:FAIL_LINE - 3].rstrip() + "..."
            line = f"FAIL {result.id}: {message}"
            if self._bar is not None:
                self._console.print(line, markup=False, highlight=False)
            else:
                self.stream.write(line + "\n")
        elapsed = now - self.t0
        if self._bar is not None:
            self._bar.update(self._task, completed=min(self.weight_done, self.weight_total),
                             checks=f"{done}/{total}", eta=self.eta_text(elapsed),
                             description=result.id[:60])
            return
        if now - self.last > 5 or done == total:
            self.last = now
            self.stream.write(f"validate: {done}/{total} checks, {elapsed:.0f} s elapsed, "
                              f"{self.eta_text(elapsed)} ({result.id})\n")
            self.stream.flush()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None


def read_expected_failures(path: str, option: str) -> list[Any]:
    """The declarations of an expected-failures file, or a :class:`UsageError` naming the
    option and the file (unreadable, malformed, or an unknown key, family, grid or check)."""
    from .report import load_expected_failures

    try:
        return load_expected_failures(path)
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read {option} {path!r}: {exc}") from None


def run_validate(args: argparse.Namespace) -> int:
    """The ``validate`` subcommand; returns the exit status."""
    try:
        return _run(args)
    except UsageError as exc:
        print(f"polysample: error: {exc}", file=sys.stderr)
        return 2


def _show_grids(families: list[str]) -> int:
    """Each grid of ``families`` with its dtype, sample sizes, the layers that judge it where
    not all do, and its points with their parameter values."""
    import torch

    from .cases import CASES, SWEEP_SIZES, SWEEP_SIZES_MULTIVARIATE, sample_size
    from .grids import grid_points, grids
    from .layers.sweep import MULTIVARIATE_REPEATS

    def ranges_of(sweep: dict[str, tuple[float, float, bool]]) -> str:
        return ", ".join(f"{k} from {lo:g} to {hi:g}{' (log scale)' if log else ''}"
                         for k, (lo, hi, log) in sweep.items())

    for family in families:
        c = CASES[family]
        if c.sweep is not None and c.law is None:
            q, f = (n // MULTIVARIATE_REPEATS for n in SWEEP_SIZES_MULTIVARIATE)
            print(f"{family} sweep ({ranges_of(dict(c.sweep))}; the other parameters at their "
                  f"example values): sample_sweep draws {MULTIVARIATE_REPEATS} values at each "
                  f"of {q} quick, {f} full points of these ranges{_number_words(family)}"
                  f"{_grad_sweep_words(family)}")
        for g in grids(family):
            dtype = g.dtype or torch.float64
            if g.label == "sweep":
                sweep = dict(CASES[family].sweep or {})
                ranges = ranges_of(sweep)
                points = g.build(dtype)
                judged = (f"these {len(points[next(iter(sweep))])} points judged by "
                          "grad_sweep; " if CASES[family].gradient == "cdf" else "")
                print(f"{family} sweep ({ranges}): {judged}sample_sweep draws once at each "
                      f"of {SWEEP_SIZES[0]} quick, {SWEEP_SIZES[1]} full points of the same "
                      "ranges")
                for j, pt in enumerate(grid_points(family, points)):
                    print(f"  [{j}] {pt}")
                continue
            n_q, n_f = (sample_size(family, g.label, q) for q in (True, False))
            only = f"; judged by the {' and '.join(g.layers)} layers only" if g.layers else ""
            print(f"{family} {g.label} ({str(dtype).removeprefix('torch.')}; n = {n_q} quick, "
                  f"{n_f} full{only})")
            for j, pt in enumerate(grid_points(family, g.build(dtype))):
                print(f"  [{j}] {pt}")
    return 0


def _grid_families(backends: list[str] | None, families: list[str] | None) -> list[str]:
    """The families ``--show-grids`` lists: those given (default all), restricted to the
    families the ``--backend`` backends claim (a usage error when that leaves none)."""
    import warnings

    from ..core.families import FAMILIES
    from ..core.plugins import registry

    wanted = families or sorted(FAMILIES)
    if not backends:
        return wanted
    claimed: set[str] = set()
    for name in backends:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                claimed |= {f for f, s in registry.load(name).families().items() if s.sample}
        except Exception as exc:  # noqa: BLE001 - said as a usage error
            raise UsageError(f"cannot list the families of backend {name!r}: "
                             f"{type(exc).__name__}: {exc}") from None
    out = [f for f in wanted if f in claimed]
    if not out:
        raise UsageError(f"{', '.join(backends)} claim none of {', '.join(wanted)}, so there "
                         "are no grids to show. Give a family they support or another "
                         "--backend.")
    return out


def default_backends() -> list[str]:
    """What ``polysample validate`` checks without ``--backend``: every registered backend
    except routers (``Backend.router``, e.g. ``auto``), whose draws are the others'. A
    backend that fails to load is kept: the run reports it as a failed ``load`` check."""
    import warnings

    from ..core.plugins import backend_names, registry

    out = []
    for name in backend_names():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                if registry.load(name).router:
                    continue
        except Exception:  # noqa: BLE001 - reported by the run itself
            pass
        out.append(name)
    return out


def _claiming(backends: list[str], families: list[str]) -> list[str]:
    """The default backends (every registered one) that claim one of ``families`` or fail to
    load (the run reports that); the others are named on stderr. A backend named with
    ``--backend`` is judged even so (the run then says it claims none of them)."""
    import warnings

    from ..core.plugins import registry

    out: list[str] = []
    left: list[str] = []
    for name in backends:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                claimed = {f for f, s in registry.load(name).families().items() if s.sample}
        except Exception:  # noqa: BLE001 - reported by the run itself
            out.append(name)
            continue
        (out if claimed & set(families) else left).append(name)
    if left:
        print(f"polysample validate: not checked: {', '.join(left)} (claiming none of "
              f"{', '.join(families)})", file=sys.stderr)
    if not out:
        raise UsageError(f"no registered backend claims {', '.join(families)}. Registered: "
                         f"{', '.join(backends)}.")
    return out


def _run(args: argparse.Namespace) -> int:
    from ..core.errors import PolysampleError
    from ..core.families import FAMILIES
    from ..core.plugins import backend_names
    from .api import (
        UnmatchedDeclarationWarning,
        check_backends,
        unknown_backend_message,
        unknown_family_message,
        unknown_layer_message,
    )
    from .model import LAYERS
    from .report import write_atomic
    from .runner import generate_checks

    names = backend_names()
    # a backend or family given twice is checked once, in the order first given
    backends = list(dict.fromkeys(args.backend)) if args.backend else default_backends()
    unknown = [b for b in backends if b not in names]
    if unknown:
        raise UsageError(unknown_backend_message(unknown, names))
    families = list(dict.fromkeys(args.family)) if args.family else None
    if families:
        bad = [f for f in families if f not in FAMILIES]
        if bad:
            raise UsageError(unknown_family_message(bad))
    if args.show_grids:
        return _show_grids(_grid_families(args.backend and backends, families))
    if families and not args.backend:
        backends = _claiming(backends, families)
    layers = tuple(dict.fromkeys(args.layer)) if args.layer else LAYERS
    bad_layers = [x for x in layers if x not in LAYERS]
    if bad_layers:
        raise UsageError(unknown_layer_message(bad_layers))
    # The built-in backends' known upstream defects are declared by default (each with its
    # reason in the report; check_backends adds them unless --no-known-failures);
    # --expected-failures adds the caller's declarations.
    expected = []
    if args.expected_failures:
        expected = read_expected_failures(args.expected_failures, "--expected-failures")
    _check_writable(args.json, "JSON")
    _check_writable(args.html, "HTML")
    salt = 0
    if args.vary_seed is not None:
        salt = args.vary_seed if args.vary_seed >= 0 else secrets.randbelow(2**31) + 1
        print(f"polysample validate: --vary-seed salt {salt}", file=sys.stderr)
    if args.workers is not None and args.scheduler is not None:
        raise UsageError(f"give --workers N or --scheduler SPEC, not both (--workers N is "
                         f"--scheduler processes:N). Received: --workers {args.workers} "
                         f"--scheduler {args.scheduler}.")
    if args.workers is not None and args.workers < 1:
        raise UsageError(f"Expected --workers N with N >= 1. Received: {args.workers}.")
    spec = args.scheduler or (f"processes:{args.workers}" if args.workers else None)

    last: dict[str, Any] = {"written": -math.inf}

    def save(report: Any, force: bool = False) -> None:
        # Rewritten as the run goes (at most every JSON_EVERY seconds: a four-backend report
        # takes 40 ms to write, and the client shares the cores with the workers), and always
        # when the run ends, however it ends.
        last["report"] = report
        progress.settle()  # the end of a unit: the ETA model learns its results
        if args.json and (force or time.monotonic() - last["written"] >= JSON_EVERY):
            report.write_json(args.json)
            last["written"] = time.monotonic()

    from .api import targets

    ts, _ = targets(backends)
    try:
        from .api import _check_families

        _check_families(ts, families)  # a backend claiming none of them: say so first
        plan = list(generate_checks(ts, families, layers))
    except PolysampleError as exc:
        raise UsageError(str(exc)) from None
    from .api import declarations

    for line in declarations(expected, False, args.quick, ts, plan)[1]:
        print(f"polysample validate: warning: {line}", file=sys.stderr)
    total = len(plan) + (len(backends) - len(ts))
    if total == 0:
        from .api import nothing_to_check

        raise UsageError(nothing_to_check(backends, families, layers))
    compiled = frozenset(t.name for t in ts
                         if type(t.backend).__module__.startswith("polysample.backends.tfp"))
    def weigh(c: Any) -> float:  # a planned check (its ``name``) or its result (``check``)
        name = getattr(c, "name", None) or getattr(c, "check", None)
        return check_weight(c.layer, c.backend, compiled, c.family, name, c.grid, args.quick)

    weights = [weigh(c) for c in plan]
    eta = EtaModel([(c.backend, c.layer) for c in plan], weights,
                   classes={t.name: "compiled" if t.name in compiled else "eager" for t in ts})
    progress = _Progress(
        sys.stderr, total, weights + [1.0] * (total - len(plan)),
        weigh, eta, settled=True)
    client, closer = None, None
    page: str | None = None
    try:
        if spec is not None:
            from .distributed import client_for

            try:
                client, closer = client_for(spec)
            except (ImportError, ValueError, OSError) as exc:
                raise UsageError(str(exc)) from None
            with contextlib.suppress(Exception):  # a scheduler that does not say: one
                eta.workers = max(len(client.scheduler_info().get("workers", {})), 1)
        try:
            with warnings.catch_warnings():  # printed above, as one line each
                warnings.simplefilter("ignore", UnmatchedDeclarationWarning)
                report = check_backends(backends, families, expected, quick=args.quick,
                                        salt=salt, layers=layers, progress=progress,
                                        on_result=save, client=client,
                                        known_failures=not args.no_known_failures)
        finally:
            if last.get("report") is not None:
                save(last["report"], force=True)
        if args.html and client is not None:
            # The plots are drawn on the cluster's workers (idle now), a share each.
            page = _render_on(client, report)
    except KeyboardInterrupt:
        progress.close()
        partial = last.get("report")
        done = len(partial.results) if partial is not None else 0
        where = []
        if partial is not None and args.json:
            where.append(args.json)
        if partial is not None and args.html:
            from .html import render_html

            write_atomic(args.html, render_html(partial))
            where.append(args.html)
        print(f"polysample validate: interrupted after {done} of {total} checks"
              + (f"; partial report (\"complete\": false) in {', '.join(where)}" if where else ""),
              file=sys.stderr)
        return 130
    except PolysampleError as exc:
        raise UsageError(str(exc)) from None
    finally:
        progress.close()
        closing = None
        if closer is not None:
            # Closing a local cluster waits for its worker processes to exit (about 4 s with
            # TensorFlow and JAX loaded): that happens while the report is printed and written.
            closing = threading.Thread(target=closer, name="polysample-close-cluster")
            closing.start()
    print(report.table())
    print()
    print(report.summary())
    if args.profile:
        _print_profile(report)
    if args.html:
        from .html import render_html

        write_atomic(args.html, page if page is not None else render_html(report))
        print(f"HTML report: {args.html}")
    if args.json:
        print(f"JSON report: {args.json}")
    if closing is not None:
        closing.join()
    return 0 if report.ok else 1


def _render_on(client: Any, report: Any) -> str | None:
    """The HTML report with its plots drawn on ``client``'s workers; None where that failed
    (workers without matplotlib, say): the caller then draws them here."""
    from .distributed import cluster_map
    from .html import render_html

    try:
        return render_html(report, pmap=cluster_map(client))
    except Exception:  # noqa: BLE001 - drawn locally instead
        return None


def _print_profile(report: Any) -> None:
    t = report.timing()
    draws: dict[str, float] = {}
    for r in report.results:
        if "draw_seconds" in r.details:
            draws[r.backend] = draws.get(r.backend, 0.0) + r.details["draw_seconds"]
    print(f"\nprofile: {report.seconds:.1f} s wall ({report.scheduler})")
    for key, top in (("backend", 10), ("layer", 10), ("check", 12), ("family", 15)):
        items = sorted(t[key].items(), key=lambda kv: -kv[1])[:top]
        print(f"  by {key}: " + ", ".join(f"{k} {v:.1f} s" for k, v in items))
    if draws:
        print("  drawing (the backends' share of the sampler layer): "
              + ", ".join(f"{k} {v:.1f} s" for k, v in sorted(draws.items())))


def _grad_sweep_words(family: str) -> str:
    """What a multivariate family's ``grad_sweep`` draws (``--show-grids``)."""
    from .cases import CASES
    from .grids import SWEEP_GRID_POINTS
    from .layers.gradient import MEAN_SWEEP_COPIES, MEAN_SWEEP_POINTS

    kind = CASES[family].gradient
    if kind == "mean":
        q, f = MEAN_SWEEP_POINTS
        return (f"; grad_sweep {MEAN_SWEEP_COPIES} pathwise gradients at each of {q} quick, "
                f"{f} full points of them")
    if kind == "noise":
        return f"; grad_sweep the noise's invariance at {SWEEP_GRID_POINTS} points of them"
    return ""


def _number_words(family: str) -> str:
    """How a multivariate family's sweep takes a parameter torch takes as a Python number."""
    from .cases import INT_SWEEP_LEVELS, swept_numbers

    names = swept_numbers(family)
    return "".join(f" ({n}: {INT_SWEEP_LEVELS} whole values, each drawn in a call of its own)"
                   for n in names)
