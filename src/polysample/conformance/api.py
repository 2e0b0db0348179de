"""The doors of the suite: ``check_backend``/``check_backends`` (no pytest) and
``parametrize_with_checks`` (pytest). The CLI (:mod:`.cli`) calls ``check_backends``."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from ..core.backend import Backend
from ..core.plugins import backend_names, load_backend, register_backend, unregister_backend
from .checks import LAYERS, Check, CheckResult, Runner, agreement_check, generate_checks
from .report import Report, apply_expected_failures, library_versions
from .stats import ALPHA_CHECK, MAX_STATISTICAL_CHECKS, MISS_RATE, dkwm_detectable, z_detectable

__all__ = ["check_backend", "check_backends", "parametrize_with_checks", "plan",
           "design_assertions"]

Progress = Callable[[int, int, CheckResult], None]


def _resolve(backend: str | Backend) -> tuple[str, Callable[[], None]]:
    """A registered name for ``backend`` and a clean-up callable (for unregistered instances)."""
    if isinstance(backend, str):
        return backend, lambda: None
    if not isinstance(backend, Backend):
        raise TypeError(f"Expected a backend name or a polysample.Backend instance. Received: "
                        f"{backend!r}.")
    name = backend.name or type(backend).__name__.lower()
    if name in backend_names():
        try:
            if load_backend(name) is backend:
                return name, lambda: None
        except Exception:
            pass
        name = f"{name}_under_test"
    register_backend(name, lambda: backend, source="polysample.conformance.check_backend()")
    return name, lambda: unregister_backend(name)


def plan(name: str, families: Sequence[str] | None = None,
         layers: tuple[str, ...] = LAYERS) -> list[Check]:
    """The checks of backend ``name`` (loads it; raises if it cannot load)."""
    b = load_backend(name)
    return list(generate_checks(b, name, list(families) if families else None, layers))


def _broken(name: str, exc: BaseException) -> CheckResult:
    return CheckResult(id=f"{name}-*-all-load", backend=name, family="*", grid="all",
                       check="load", layer="semantics", status="fail",
                       message=f"backend failed to load or list its families: "
                               f"{type(exc).__name__}: {exc}")


def check_backends(
    backends: Sequence[str | Backend],
    families: Sequence[str] | None = None,
    expected_failures: Mapping[str, str] | None = None,
    quick: bool = False,
    salt: int = 0,
    layers: tuple[str, ...] = LAYERS,
    progress: Progress | None = None,
    on_result: Callable[[Report], None] | None = None,
) -> Report:
    """Run the suite on several backends, then the cross-backend agreement checks.

    A backend that fails to load or raises mid-run is reported as failed and the run goes on.
    ``on_result(report)`` is called after every family of every backend and once at the end
    (the CLI writes the JSON report there, so nothing computed is lost).
    """
    expected = dict(expected_failures or {})
    t0 = time.perf_counter()
    names, cleanups = [], []
    for b in backends:
        n, c = _resolve(b)
        names.append(n)
        cleanups.append(c)
    report = Report(backends=names, families=sorted(families) if families else [],
                    quick=quick, salt=salt)
    runner = Runner(quick=quick, salt=salt)
    report.plots, report.grad_errors = runner.plots, runner.grad_errors
    plans: dict[str, list[Check]] = {}
    for n in names:
        try:
            plans[n] = plan(n, families, layers)
            report.backend_versions[n] = load_backend(n).version()
        except Exception as exc:
            plans[n] = []
            report.results.append(_broken(n, exc))
    total = sum(len(p) for p in plans.values())
    done = 0
    try:
        for n in names:
            last_family = None
            for check in plans[n]:
                if last_family is not None and check.family != last_family and on_result:
                    on_result(report)
                last_family = check.family
                res = apply_expected_failures(runner.run(check), expected)
                report.results.append(res)
                done += 1
                if progress:
                    progress(done, total, res)
            runner.release()
        if "agreement" in layers and len(names) > 1:
            groups: dict[tuple[str, str, str], list[str]] = {}
            for (_b, fam, grid, key) in runner.scores:
                method, label, which = key.split(":")
                if method == "sample":
                    labels = groups.setdefault((fam, grid, which), [])
                    if label not in labels:
                        labels.append(label)
            agree = []
            for (fam, grid, which), labels in sorted(groups.items()):
                for a, b in itertools.combinations(names, 2):
                    pairs = [(lab, runner.scores[(a, fam, grid, f"sample:{lab}:{which}")],
                              runner.scores[(b, fam, grid, f"sample:{lab}:{which}")])
                             for lab in labels
                             if (a, fam, grid, f"sample:{lab}:{which}") in runner.scores
                             and (b, fam, grid, f"sample:{lab}:{which}") in runner.scores]
                    if pairs:
                        agree.append(agreement_check(a, b, fam, grid, which, pairs))
            total += len(agree)
            for check in agree:
                res = apply_expected_failures(runner.run(check), expected)
                report.results.append(res)
                done += 1
                if progress:
                    progress(done, total, res)
    finally:
        for c in cleanups:
            c()
        report.seconds = time.perf_counter() - t0
        report.versions = library_versions()
        if on_result:
            on_result(report)
    return report


def check_backend(
    backend: str | Backend,
    families: Sequence[str] | None = None,
    expected_failures: Mapping[str, str] | None = None,
    quick: bool = False,
    salt: int = 0,
    layers: tuple[str, ...] = LAYERS,
) -> Report:
    """Run every check on one backend (a registered name or a ``Backend`` instance).

    No pytest needed: inspect ``report.ok``, ``report.failures``, ``report.to_json()``.
    ``expected_failures`` maps check-id substrings to reasons; matching failures become
    ``xfail``, matching passes ``xpass`` (``report.stale``: remove those declarations).
    """
    return check_backends([backend], families, expected_failures, quick, salt,
                          tuple(layer for layer in layers if layer != "agreement"))


def parametrize_with_checks(
    backends: Iterable[str | Backend],
    families: Sequence[str] | None = None,
    expected_failures: Mapping[str, str] | None = None,
    quick: bool = False,
    layers: tuple[str, ...] = LAYERS[:-1],
) -> Any:
    """A ``pytest.mark.parametrize`` over every check of ``backends``; ids are check ids.

    Use as::

        @parametrize_with_checks(["mybackend"], expected_failures={"Beta-corners": "why"})
        def test_conformance(check):
            check()

    Declared failures are ``xfail(strict=True)``: one that passes is reported (XPASS strict).
    A backend that cannot load gives one failing check ``<name>-*-all-load``.
    """
    import pytest

    expected = dict(expected_failures or {})
    runner = Runner(quick=quick)
    params = []
    for b in backends:
        name, _ = _resolve(b)
        try:
            checks = plan(name, families, layers)
        except Exception as exc:
            err = exc

            def broken(_e: BaseException = err, _n: str = name) -> None:
                raise AssertionError(_broken(_n, _e).message)

            params.append(pytest.param(broken, id=f"{name}-*-all-load"))
            continue
        for check in checks:
            marks = []
            for sub, reason in expected.items():
                if sub and sub in check.id:
                    marks.append(pytest.mark.xfail(reason=reason, strict=True))
                    break
            params.append(pytest.param(_Runnable(check, runner), id=check.id, marks=marks))
    return pytest.mark.parametrize("check", params)


class _Runnable:
    """A check bound to a shared runner; calling it runs the check and asserts it passed."""

    def __init__(self, check: Check, runner: Runner):
        self.check, self.runner = check, runner

    def __call__(self) -> CheckResult:
        import pytest

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

    In full mode the Normal checks detect, with miss rate 1e-3 at alpha_i, a 1% scale error
    (``E zeta^2 - 1 = 0.0201``) and a 0.01 sigma location error (``E zeta = 0.01``); every other
    continuous family the 1% scale error. Returns the detectable discrepancies.
    """
    from .checks import sample_size

    n_norm = sample_size("Normal", quick)
    n_cont = sample_size("Gamma", quick)
    # A Normal grid has 3 elements: alpha_i per element is ALPHA_CHECK / 3.
    alpha = ALPHA_CHECK / 3
    out = {
        "normal_location": z_detectable(1 / n_norm ** 0.5, alpha),
        "normal_scale": z_detectable((2 / n_norm) ** 0.5, alpha),
        "continuous_scale": z_detectable((2 / n_cont) ** 0.5, ALPHA_CHECK / 5),
        "ks_continuous": dkwm_detectable(n_cont, ALPHA_CHECK / 5, MISS_RATE),
        "alpha_per_check": ALPHA_CHECK,
        "max_statistical_checks": MAX_STATISTICAL_CHECKS,
    }
    if not quick:
        assert out["normal_location"] < 0.01, out
        assert out["normal_scale"] < 0.0201, out
        assert out["continuous_scale"] < 0.0201, out
    return out


