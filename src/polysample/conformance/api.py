"""The doors of the suite: ``check_backend``/``check_backends`` (no pytest) and
``parametrize_with_checks`` (pytest). The CLI (:mod:`.cli`) calls ``check_backends``.

All three run the same generator (:func:`.runner.generate_checks`) over the same five layers,
and accept backends by registered name or as ``Backend`` instances (an instance is judged as it
is, without registering it).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from ..core.backend import Backend
from ..core.errors import PolysampleError, UnsupportedFamilyError
from ..core.families import FAMILIES
from ..core.plugins import check_family_names, load_backend
from .expected import (
    Declaration,
    apply_declarations,
    coverage,
    load_declarations,
    parse_declarations,
)
from .model import LAYERS, Check, CheckResult
from .report import Report, library_versions
from .runner import Runner, Target, generate_checks, units
from .stats import ALPHA_CHECK, MAX_STATISTICAL_CHECKS, MISS_RATE, dkwm_detectable, z_detectable

__all__ = ["check_backend", "check_backends", "parametrize_with_checks", "plan",
           "design_assertions", "targets", "NothingToCheckError", "nothing_to_check",
           "UnknownLayerError", "UnmatchedDeclarationWarning", "declarations", "layer_list",
           "unknown_layer_message"]

Progress = Callable[[int, int, CheckResult], None]
ExpectedFailures = (str | os.PathLike[str] | Mapping[str, Any]
                    | Sequence[Declaration | Mapping[str, Any]] | None)


class NothingToCheckError(PolysampleError, ValueError):
    """The selection (backends, families, layers) gives no check to run: a run of zero checks
    would say nothing, so no door reports it as a pass (``polysample validate``: a usage error,
    exit status 2)."""


class UnknownLayerError(NothingToCheckError):
    """A layer name that is none of :data:`~.model.LAYERS` (a ``ValueError``, and a
    :class:`NothingToCheckError`: the selection names a layer with no check). The message
    names it, the known layers and the closest one (``polysample validate --layer``: a usage
    error, exit status 2, with the same message)."""


def unknown_layer_message(bad: Sequence[str]) -> str:
    """The one-line message for unknown layer names (every door says the same)."""
    from ..core.errors import did_you_mean

    hints = "".join(did_you_mean(x, LAYERS) for x in bad)
    return (f"unknown layer {', '.join(map(repr, bad))}.{hints} Expected some of: "
            f"{', '.join(LAYERS)}.")


def layer_list(layers: str | Iterable[str]) -> tuple[str, ...]:
    """``layers`` as a tuple of layer names (a single name is one layer, not its letters;
    duplicates are dropped); an unknown name raises :class:`UnknownLayerError`."""
    if isinstance(layers, str):
        layers = (layers,)
    if not isinstance(layers, Iterable) or isinstance(layers, Mapping):
        raise TypeError(f"Expected layers as a layer name or a list of names, e.g. "
                        f"layers=[\"sampler\"]. Received {layers!r}.")
    out = tuple(dict.fromkeys(layers))
    bad = [x for x in out if x not in LAYERS]
    if bad:
        raise UnknownLayerError(unknown_layer_message([str(x) for x in bad]))
    return out


def _known_backend_names(backends: Iterable[str | Backend]) -> None:
    """A name that no plugin registered raises :class:`~polysample.UnknownBackendError`, as
    ``polysample.load_backend`` does (a did-you-mean included): a typo is the caller's error,
    not a failed check of a backend. A registered backend that cannot load is one failed
    ``load`` check (:func:`targets`)."""
    from ..core.plugins import backend_names

    names = set(backend_names())
    for b in backends:
        if isinstance(b, str) and b not in names:
            load_backend(b)  # raises UnknownBackendError with the registry's message


def nothing_to_check(backends: Sequence[str], families: Sequence[str] | None,
                     layers: Sequence[str]) -> str:
    """The one-line message of :class:`NothingToCheckError`: what was expected, what was
    received, what to do."""
    got = (f"backends {', '.join(backends) or '(none)'}, families "
           f"{', '.join(families) if families else 'all'}, layers "
           f"{', '.join(layers) or '(none)'}")
    if not backends:
        hint = "Give at least one backend."
    elif not layers:
        hint = f"Give at least one layer of {', '.join(LAYERS)}."
    elif set(layers) <= {"agreement"} and len(backends) < 2:
        hint = ("The agreement layer compares two or more backends: give a second backend or "
                "another layer.")
    else:
        hint = "Choose families and layers that the backends support."
    return f"Expected at least one check to run. Received: {got}, which give none. {hint}"


def _target(backend: str | Backend, taken: set[str]) -> Target:
    """A named target for a registered name or a ``Backend`` instance (named after its
    ``name``, or its class; a suffix keeps two targets of one run apart)."""
    if isinstance(backend, str):
        return Target(backend, load_backend(backend))
    if not isinstance(backend, Backend):
        raise TypeError(f"Expected a backend name or a polysample.Backend instance. Received: "
                        f"{backend!r}.")
    # What loading a registered backend checks, an instance gets too: a misspelt family name in
    # families() would otherwise drop that family from the run without a word.
    backend.check_available()
    check_family_names(backend)
    name = backend.name or type(backend).__name__.lower()
    base, i = name, 2
    while name in taken:
        name, i = f"{base}_{i}", i + 1
    return Target(name, backend)


def _load_failure(name: str, exc: BaseException) -> CheckResult:
    return CheckResult(id=f"{name}-*-all-load", backend=name, family="*", grid="all",
                       check="load", layer="semantics", status="fail", involves=(name,),
                       message=f"backend failed to load or list its families: "
                               f"{type(exc).__name__}: {exc}")


def targets(backends: Sequence[str | Backend]) -> tuple[list[Target], list[CheckResult]]:
    """The loadable backends as targets, and one failed ``load`` check per backend that is not.
    A name given twice is one target (its checks would run twice). A name that is not
    registered raises ``UnknownBackendError`` (as ``polysample.load_backend`` does)."""
    _known_backend_names(backends)
    out: list[Target] = []
    broken: list[CheckResult] = []
    taken: set[str] = set()
    named: set[str] = set()
    for b in backends:
        if isinstance(b, str):
            if b in named:
                continue
            named.add(b)
        try:
            t = _target(b, taken)
            t.families()
        except TypeError:
            raise
        except Exception as exc:  # noqa: BLE001 - a broken backend is a failed check
            name = b if isinstance(b, str) else (getattr(b, "name", "") or type(b).__name__)
            broken.append(_load_failure(name, exc))
            continue
        taken.add(t.name)
        out.append(t)
    return out, broken


def family_list(families: str | Sequence[str] | None) -> list[str] | None:
    """``families`` as a list: a single name is one family (``families="Normal"``, not the
    letters of it), duplicates are dropped; None stays None (every family)."""
    if families is None:
        return None
    if isinstance(families, str):
        return [families]
    if not isinstance(families, Iterable) or isinstance(families, Mapping):
        raise TypeError(f"Expected families as a family name or a list of names, e.g. "
                        f"families=[\"Normal\"]. Received {families!r}.")
    out = list(dict.fromkeys(families))
    bad = [f for f in out if not isinstance(f, str)]
    if bad:
        raise TypeError(f"Expected family names (strings), e.g. families=[\"Normal\"]. "
                        f"Received {bad[0]!r}.")
    return out


def unknown_family_message(bad: Sequence[str]) -> str:
    """The one-line message for unknown family names (every door says the same)."""
    from ..core.errors import did_you_mean

    hints = "".join(did_you_mean(f, sorted(FAMILIES)) for f in bad)
    return (f"unknown family {', '.join(map(repr, bad))}.{hints} Expected torch.distributions "
            f"names: {', '.join(sorted(FAMILIES))}.")


def unknown_backend_message(bad: Sequence[str], names: Sequence[str]) -> str:
    """The one-line message for backend names that are not registered: the names that are,
    a did-you-mean, and the plugins that could not be used (which registered nothing, or
    failed to import) apart from the backends."""
    from ..core.errors import did_you_mean
    from ..core.plugins import registry

    entries = registry.entries()
    broken = [n for n in names if n in entries and entries[n].factory is None]
    usable = [n for n in names if n not in broken]
    hints = "".join(did_you_mean(b, list(usable)) for b in bad)
    unusable = (f" Plugins that could not be used (polysample backends --verbose says why): "
                f"{', '.join(broken)}." if broken else "")
    return (f"unknown backend {', '.join(map(repr, bad))}. Expected one of: "
            f"{', '.join(usable)}.{hints}{unusable} A third-party backend must be installed "
            "or listed in POLYSAMPLE_PLUGINS.")


def _check_families(ts: Sequence[Target], families: Sequence[str] | None) -> list[str]:
    """Unknown family names raise; a backend claiming none of the requested families raises;
    returns notes on families some backends do not claim."""
    if families is None:
        return []
    unknown = [f for f in families if f not in FAMILIES]
    if unknown:
        raise UnsupportedFamilyError(unknown_family_message(unknown))
    notes = []
    for t in ts:
        claimed = {f for f, s in t.families().items() if s.sample}
        missing = [f for f in families if f not in claimed]
        if missing and len(missing) == len(families):
            raise UnsupportedFamilyError(
                f"Backend {t.name!r} does not support {', '.join(map(repr, missing))}, so there "
                f"is nothing to validate. It supports: {', '.join(sorted(claimed))}.")
        if missing:
            notes.append(f"{t.name} does not claim {', '.join(missing)}")
    return notes


def plan(backend: str | Backend, families: str | Sequence[str] | None = None,
         layers: Sequence[str] = LAYERS) -> list[Check]:
    """The checks of one backend (loads it; raises if it cannot load)."""
    layers = layer_list(layers)
    ts, broken = targets([backend])
    if broken:
        raise RuntimeError(broken[0].message)
    return list(generate_checks(ts, family_list(families), layers))


class UnmatchedDeclarationWarning(UserWarning):
    """An expected-failure declaration names a backend that is neither registered nor in the
    run, or covers none of the run's checks of its backend and family: it matches no check
    (the report says so in its notes too)."""


def _declarations(expected: ExpectedFailures) -> list[Declaration]:
    if expected is None:
        return []
    if isinstance(expected, str | os.PathLike):
        # a path, as the CLI's --expected-failures and the pytest plugin's option take
        if not os.path.isfile(expected):
            raise ValueError(
                f"expected_failures: no file {os.fspath(expected)!r}. Expected the path of a "
                "TOML or JSON file of declarations, a mapping of check-id prefixes to reasons, "
                "or a list of declarations (docs/conformance.md, \"Expected failures\").")
        return load_declarations(expected)
    return parse_declarations(list(expected) if not isinstance(expected, Mapping) else expected)


def declarations(expected: ExpectedFailures, builtin: bool, quick: bool,
                 ts: Sequence[Target], checks: Sequence[Check] = ()
                 ) -> tuple[list[Declaration], list[str]]:
    """The declarations a run applies: the caller's (validated), then, with ``builtin``, the
    built-in backends' known failures (:func:`.report.known_failures`) that the caller did not
    pass already; those of the run's mode only. Also one message (a warning, not an error)
    per caller's declaration whose backend is neither registered nor one of ``ts``, and per
    caller's declaration that covers none of the planned ``checks`` although its backend and
    family are in the run (:func:`.expected.idle_declarations`)."""
    from ..core.plugins import backend_names
    from .expected import idle_declarations, unmatched_backends
    from .report import known_failures

    own = list(dict.fromkeys(_declarations(expected)))
    known = known_failures() if builtin else []
    builtins = set(known)
    decls = own + [d for d in known if d not in set(own)]
    mine = [d for d in own if d not in builtins]
    warn = unmatched_backends(mine, [*backend_names(), *(t.name for t in ts)])
    warn += idle_declarations([d for d in mine if d.applies_to(quick)], checks)
    return [d for d in decls if d.applies_to(quick)], warn


def _warn(messages: Sequence[str]) -> None:
    import warnings

    for m in messages:
        warnings.warn(m, UnmatchedDeclarationWarning, stacklevel=3)


def check_backends(
    backends: Sequence[str | Backend],
    families: str | Sequence[str] | None = None,
    expected_failures: ExpectedFailures = None,
    quick: bool = False,
    salt: int = 0,
    layers: Sequence[str] = LAYERS,
    progress: Progress | None = None,
    on_result: Callable[[Report], None] | None = None,
    client: Any = None,
    known_failures: bool = True,
) -> Report:
    """Run the suite on several backends, including the cross-backend agreement checks.

    Backends are registered names or ``Backend`` instances. A name that no plugin registered
    raises ``polysample.UnknownBackendError`` (with a did-you-mean), an unknown layer
    :class:`UnknownLayerError`, an unknown family ``polysample.UnsupportedFamilyError``, as
    ``polysample validate`` refuses them; a registered backend that fails to load is one
    failed ``load`` check and the run goes on; a check that raises fails, the run goes on.
    ``progress(done, planned, result)`` is called after every check.
    ``on_result(report)`` is called after every unit of checks and once at the end (the CLI
    rewrites the JSON report there, at most every few seconds and always at the end, so
    nothing computed is lost). ``client``: a
    ``distributed.Client`` to run the units on (see :mod:`.distributed`); the report is the same
    as a serial run's apart from timings, and lists in ``retried`` (with a note each) the units
    Dask ran again after losing the worker that held them. An interrupted run
    (``KeyboardInterrupt``) leaves a report marked incomplete (``report.complete`` is False,
    ``report.ok`` too), passes it to ``on_result`` and re-raises. A selection that gives no
    check at all (one backend and only the agreement layer, no layer) raises
    :class:`NothingToCheckError`: a run of zero checks is never reported as a pass.

    ``expected_failures`` maps check-id prefixes to reasons (or is a list of
    :class:`~.expected.Declaration` or of tables, or the path of a TOML or JSON file of
    them), validated: an unknown family, grid, check or key, or a grid its family does not
    have, raises ``ValueError``; a backend that is neither registered nor in the run, and a
    declaration that covers none of the run's checks although its backend and family are in
    it, warn (:class:`UnmatchedDeclarationWarning`) and are noted in ``report.notes``. The built-in
    backends' known upstream defects (``known_failures.toml``, as ``polysample validate``
    applies them) are added unless ``known_failures=False``; passing them explicitly too
    applies each once.
    """
    t0 = time.perf_counter()
    families = family_list(families)
    layers = layer_list(layers)
    ts, broken = targets(backends)
    checks = list(generate_checks(ts, families, layers))
    decls, unmatched = declarations(expected_failures, known_failures, quick, ts, checks)
    _warn(unmatched)
    notes = _check_families(ts, families) + unmatched
    if not checks and not broken:
        raise NothingToCheckError(nothing_to_check([t.name for t in ts], families, layers))
    report = Report(backends=[t.name for t in ts] + [r.backend for r in broken],
                    families=sorted(families) if families else sorted(
                        {c.family for c in checks}), quick=quick, salt=salt,
                    planned=len(checks) + len(broken), notes=notes)
    for t in ts:
        report.claimed[t.name] = sorted(f for f, s in t.families().items() if s.sample)
        try:
            report.backend_versions[t.name] = t.backend.version()
        except Exception as exc:  # noqa: BLE001
            report.backend_versions[t.name] = f"version() raised {type(exc).__name__}"
    report.results.extend(broken)

    def record(res: CheckResult) -> None:
        report.results.append(apply_declarations(res, decls))
        if progress:
            progress(len(report.results), report.planned, res)

    try:
        if client is not None:
            from .distributed import ClusterRun, run_on_client

            report.scheduler = f"dask ({len(client.scheduler_info().get('workers', {}))} workers)"
            # The run appends the units Dask reassigned to the report's lists as it goes.
            run_on_client(client, ts, checks, quick, salt, record,
                          lambda: on_result(report) if on_result else None,
                          ClusterRun(report.retried, report.notes))
        else:
            runner = Runner(quick=quick, salt=salt)
            for unit in units(checks):
                for check in unit:
                    record(runner.run(check))
                if unit[0].layer != "agreement":
                    runner.release()
                if on_result:
                    on_result(report)
        report.complete = True
    finally:
        report.seconds = time.perf_counter() - t0
        report.versions = library_versions()
        report.sort(checks)
        if on_result:
            on_result(report)
    return report


def check_backend(
    backend: str | Backend,
    families: str | Sequence[str] | None = None,
    expected_failures: ExpectedFailures = None,
    quick: bool = False,
    salt: int = 0,
    layers: Sequence[str] = LAYERS,
    known_failures: bool = True,
) -> Report:
    """Run every check on one backend (a registered name or a ``Backend`` instance).

    No pytest needed: inspect ``report.ok``, ``report.failures``, ``report.to_json()``.
    ``expected_failures`` maps check-id prefixes to reasons (or is a list of
    :class:`~.expected.Declaration`, or a file's path, as in :func:`check_backends`):
    matching failures become ``xfail``, matching passes ``xpass`` (``report.stale``: remove
    those declarations). The built-in backends' known
    failures are declared too unless ``known_failures=False`` (see :func:`check_backends`).
    An unregistered name, an unknown layer or family raise as in :func:`check_backends`; a
    registered backend that fails to load is one failed ``load`` check.
    """
    families = family_list(families)
    _known_backend_names([backend])
    own = tuple(layer for layer in layer_list(layers) if layer != "agreement")
    if not own:  # the agreement layer compares two or more backends
        name = backend if isinstance(backend, str) else (
            getattr(backend, "name", "") or type(backend).__name__)
        raise NothingToCheckError(nothing_to_check([name], families, tuple(layers)))
    return check_backends([backend], families, expected_failures, quick, salt, own,
                          known_failures=known_failures)


def parametrize_with_checks(
    backends: Iterable[str | Backend],
    families: str | Sequence[str] | None = None,
    expected_failures: ExpectedFailures = None,
    quick: bool = False,
    layers: Sequence[str] = LAYERS,
    salt: int = 0,
    known_failures: bool = True,
) -> Any:
    """A ``pytest.mark.parametrize`` over every check of ``backends``; ids are check ids.

    Use as::

        @parametrize_with_checks(["mybackend"], expected_failures={"mybackend-Beta-corners": "why"})
        def test_conformance(check):
            check()

    Declared failures are ``xfail(strict=True)``: one that passes is reported (XPASS strict);
    agreement checks covered through a declared draw, and declarations with ``strict = false``,
    are ``xfail(strict=False)``. The built-in backends' known failures are declared too
    unless ``known_failures=False`` (see :func:`check_backends`), as ``xfail(strict=False)``
    where the caller did not pass them: an upstream fix is no failure of the caller's suite.
    A name that no plugin registered raises ``polysample.UnknownBackendError``, an unknown
    layer :class:`UnknownLayerError` (as in :func:`check_backends`); a registered backend
    that cannot load gives one failing check ``<name>-*-all-load``. With two or more backends
    the agreement layer compares them.
    """
    import pytest

    runner = Runner(quick=quick, salt=salt)
    families = family_list(families)
    layers = layer_list(layers)
    ts, broken = targets(list(backends))
    _check_families(ts, families)
    checks = list(generate_checks(ts, families, layers))
    decls, unmatched = declarations(expected_failures, known_failures, quick, ts, checks)
    _warn(unmatched)
    own = set(_declarations(expected_failures))
    builtin = {d for d in decls if d not in own}
    if not checks and not broken:
        raise NothingToCheckError(nothing_to_check([t.name for t in ts], families, layers))
    params = []
    for res in broken:
        def fail(_m: str = res.message, _id: str = res.id) -> None:
            __tracebackhide__ = True  # pytest shows the caller's test, not this frame
            raise AssertionError(f"{_id}: {_m}")

        params.append(pytest.param(fail, id=res.id))
    for check in checks:
        probe = CheckResult(check.id, check.backend, check.family, check.grid, check.name,
                            check.layer, "fail", involves=check.involves or (check.backend,))
        d, direct = coverage(probe, decls)
        # A built-in declaration that passes (an upstream fix) is the project's to remove, not
        # a failure of the caller's suite: non-strict, as `polysample validate` reports it.
        marks = [] if d is None else [pytest.mark.xfail(
            reason=d.reason, strict=direct and d.strict and d not in builtin)]
        params.append(pytest.param(_Runnable(check, runner), id=check.id, marks=marks))
    return pytest.mark.parametrize("check", params)


class _Runnable:
    """A check bound to a shared runner; calling it runs the check and asserts it passed."""

    def __init__(self, check: Check, runner: Runner):
        self.check, self.runner = check, runner

    def __call__(self) -> CheckResult:
        import pytest

        __tracebackhide__ = True  # a failure points at the caller's test, not at polysample
        res = self.runner.run(self.check)
        if res.status == "skip":
            pytest.skip(res.message)
        if res.status == "fail":
            nums = (f"\n  statistic={res.statistic} threshold={res.threshold} n={res.n} "
                    f"seed={res.seed} alpha_i={res.alpha} detectable={res.detectable}"
                    if res.statistic is not None else "")
            raise AssertionError(f"{res.id}: {res.message}{nums}")
        return res

    def __repr__(self) -> str:
        return self.check.id


def design_assertions(quick: bool = False) -> dict[str, float]:
    """The design claims of the error budget, asserted (raise AssertionError if one breaks).

    The Normal checks detect, with miss rate 1e-3 at alpha_i, a 2% scale error
    (``E zeta^2 - 1 = 0.0404``) and a location shift of 2% of a standard deviation
    (``E zeta = 0.02``) in quick mode, 1% (``0.0201``, ``0.01``) in full mode; every other
    continuous family the same scale claim; the categorical families' count tests a 2% (1%)
    error in any one probability of their typical grid (``p_i x 1.02``, the others rescaled:
    the mean of the category-i indicator moves by ``0.02 sqrt(p_i / (1 - p_i))`` of its
    standard deviation); the independence check a PIT correlation below 0.15 between
    neighbouring draws. Returns the detectable discrepancies.
    """
    import numpy as np
    import torch

    from .cases import CASES, sample_size
    from .layers.sampler import INDEPENDENCE_ROWS
    from .stats import pit_var_detectable, product_mean_test

    n_norm = sample_size("Normal", "typical", quick)
    n_cont = sample_size("Gamma", "typical", quick)
    n_cat = min(sample_size(f, "typical", quick)
                for f in ("Categorical", "OneHotCategorical", "OneHotCategoricalStraightThrough"))
    probs = CASES["Categorical"].example((3,), torch.float64, 3)["probs"]
    # A typical grid has 3 points: alpha_i per point is ALPHA_CHECK / 3.
    alpha = ALPHA_CHECK / 3
    out = {
        "normal_location": z_detectable(1 / n_norm ** 0.5, alpha),
        "normal_scale": pit_var_detectable(n_norm, alpha),
        "continuous_scale": pit_var_detectable(n_cont, alpha),
        "ks_continuous": dkwm_detectable(n_cont, alpha, MISS_RATE),
        # The count test splits alpha over every (grid point, category) of the grid.
        "categorical_count": z_detectable(1 / n_cat ** 0.5, ALPHA_CHECK / probs.numel()),
        # The PIT correlation of neighbouring draws (disjoint pairs of the first rows): a
        # 3-point grid has 3 x 2 serial tests and 2 between grid points.
        "independence": product_mean_test(
            np.zeros((min(n_cont, INDEPENDENCE_ROWS) // 2, 1)),
            np.zeros((min(n_cont, INDEPENDENCE_ROWS) // 2, 1)), ALPHA_CHECK / 8).detectable,
        "alpha_per_check": ALPHA_CHECK,
        "max_statistical_checks": MAX_STATISTICAL_CHECKS,
    }
    loc, scale = (0.02, 1.02 ** 2 - 1) if quick else (0.01, 1.01 ** 2 - 1)
    assert out["normal_location"] < loc, out
    assert out["normal_scale"] < scale, out
    assert out["continuous_scale"] < scale, out
    p_min = float(probs.min())
    assert out["categorical_count"] < loc * (p_min / (1 - p_min)) ** 0.5, out
    assert out["independence"] < 0.15, out  # sorted draws: about 1; antithetic pairs: -1
    return out
