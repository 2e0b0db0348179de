"""Running the suite on Dask: ``polysample validate --workers N`` / ``--scheduler SPEC``.

The unit of work is one (backend, family): its checks share that family's draws, which are made
on the worker that runs the unit and never shipped. A worker regenerates the unit's checks
itself (the plan is deterministic and every seed comes from a check id), so the results are
the same as a serial run's whatever the scheduler, worker count or order. What comes back is
small: the check results with their evidence (CDF curves for the plots, the normal-score
summaries the agreement checks compare). The agreement checks then run in the client process.

Needs ``dask`` and ``distributed`` (``pip install "polysample[dask]"``).

Lost workers. A worker that dies loses only the units it held (running, queued, or finished
but not yet fetched): the scheduler hands them to another worker (Dask's own rescheduling, up
to ``distributed.scheduler.allowed-failures`` times, then ``KilledWorker``, which fails the
unit's checks). The scheduler logs every removal of a worker, with the keys it held, in its
``"all"`` event topic; the client reads that log after each unit, so the report names the
units that were reassigned (``Report.retried``) and where they were lost and finished (a note).
Only the finished attempt's results are kept, so a rerun unit's results are those of a run
that was never interrupted.

Missing backends. A worker that cannot load a backend returns, instead of results, the error;
the client reports every check of that unit as failed with the load error and the worker's
address (the run goes on). A worker whose plan differs from the client's (another polysample
or backend version) fails the checks it did not generate, saying so.
"""

from __future__ import annotations

import contextlib
import logging
import os
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from .model import Check, CheckResult, PitScores
from .runner import HEAVY_FAMILIES, UNIT_LAYERS, Runner, Target, generate_checks, units

__all__ = ["client_for", "local_cluster", "run_on_client", "run_unit", "UnitOutcome", "ClusterRun",
           "lost_keys", "cluster_map"]


def local_cluster(n: int, env: dict[str, str] | None = None) -> Any:
    """A ``distributed.LocalCluster`` of ``n`` worker processes of one thread each, with
    ``env`` added to the workers' environment.

    One thread per worker: a unit is CPU-bound Python and NumPy, and Dask's nannies set
    OMP_NUM_THREADS=1, so n processes use n cores. The nannies would also set
    MALLOC_TRIM_THRESHOLD_, which turns off glibc's adaptive mmap threshold: every array above
    128 KiB is then a fresh mmap that the kernel zeroes page by page, and the checks ran about
    40% slower on a worker than in one process (four times the system time). Left unset, the
    workers allocate as a plain Python process does; a value in the user's environment still
    reaches them. Dask's statistical profiler is off: it samples every worker's stack every
    10 ms for the dashboard, which this cluster does not serve (5% of the run's CPU). A closed
    worker's process exits without finalizing the interpreter
    (:class:`._dask_worker.ExitWithoutFinalizing`): closing the cluster takes about 0.1 s
    instead of 2-5 s once TensorFlow and JAX are loaded. The scheduler's HTTP endpoints (health,
    metrics; there is no dashboard) listen on a free local port, not on Dask's 8787: a user's own
    Dask dashboard keeps its port, and the run prints no "Port 8787 is already in use" warning.
    """
    import dask
    from distributed import LocalCluster

    from ._dask_worker import ExitWithoutFinalizing

    with dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None,
                          "distributed.worker.profile.enabled": False}):
        return LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                            dashboard_address=None, silence_logs=logging.ERROR, env=env,
                            scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
                            plugins={ExitWithoutFinalizing()})


def client_for(spec: str) -> tuple[Any, Callable[[], None]]:
    """A ``distributed.Client`` for ``processes:N`` (a local cluster of N worker processes) or a
    scheduler address (``tcp://host:port``), and a function that closes what was opened."""
    try:
        from distributed import Client
    except ImportError as exc:
        raise ImportError(
            f"--workers/--scheduler run the suite on Dask, which is not installed ({exc}). "
            'Install it with: pip install "polysample[dask]".') from None
    if spec.startswith("processes:"):
        try:
            n = int(spec.split(":", 1)[1])
        except ValueError:
            n = 0
        if n < 1:
            raise ValueError(f"Expected processes:N with N >= 1. Received: {spec!r}.")
        cluster = local_cluster(n)
        client = Client(cluster)

        def close() -> None:
            client.close()
            cluster.close()

        return client, close
    if "://" not in spec:
        raise ValueError(f"Expected --scheduler processes:N or a scheduler address such as "
                         f"tcp://host:8786. Received: {spec!r}.")
    client = Client(spec)
    return client, client.close


@dataclass
class UnitOutcome:
    """What a worker sends back for one unit (small: no draws).

    ``worker`` is the worker's address (``pid N`` outside a worker); ``load_error`` is set,
    and ``results`` empty, when the backend could not be loaded or listed there; ``missing``
    lists the requested check ids the worker's plan did not contain.
    """

    results: list[CheckResult]
    scores: list[PitScores]
    worker: str
    pid: int
    load_error: str | None = None
    missing: list[str] = field(default_factory=list)


def _where() -> str:
    try:
        from distributed import get_worker

        return str(get_worker().address)
    except Exception:  # noqa: BLE001 - not on a worker (serial use, tests)
        return f"pid {os.getpid()}"


def run_unit(target: Target | str, family: str, ids: Sequence[str], quick: bool,
             salt: int) -> UnitOutcome:
    """Run the checks ``ids`` of one (backend, family) where this is called (a Dask task).

    ``target`` is a registered name (loaded here, from this process's plugins) or a
    ``Target`` (an unregistered instance, pickled).
    """
    where, pid = _where(), os.getpid()
    if not isinstance(target, str):
        with _main_classes(target.backend):
            return _run_unit(target, family, ids, quick, salt, where, pid)
    return _run_unit(target, family, ids, quick, salt, where, pid)


@contextlib.contextmanager
def _main_classes(backend: Any) -> Iterator[None]:
    """While a unit runs, the classes of ``backend`` defined in the client's ``__main__`` (a
    script's or notebook's ``class Local(Backend)``) are in this process's ``__main__`` too,
    under their names, as they are in the client's.

    Dask ships such an instance by value (cloudpickle: a ``__main__`` class cannot be imported
    on a worker), and the class rebuilt here is in no module: the semantics layer's ``pickle``
    check, whose plain ``pickle.dumps`` pickles a class by reference, then failed on the
    workers ("Can't pickle <class '__main__.Local'>: it's not the same object as
    __main__.Local") while the serial run passed. An importable class is untouched, so the
    check judges it as before; a name the worker's ``__main__`` already has for another object
    is left alone (that check then fails, as it would in a client where the name was taken).
    """
    import sys

    main = sys.modules.get("__main__")
    added: list[str] = []
    if main is not None:
        for cls in type(backend).__mro__:
            name = cls.__qualname__
            if cls.__module__ != "__main__" or "." in name or "<" in name:
                continue
            if not hasattr(main, name):
                setattr(main, name, cls)
                added.append(name)
    try:
        yield
    finally:
        for name in added:
            with contextlib.suppress(AttributeError):
                delattr(main, name)


def _run_unit(target: Target | str, family: str, ids: Sequence[str], quick: bool, salt: int,
              where: str, pid: int) -> UnitOutcome:
    try:
        if isinstance(target, str):
            from ..core.plugins import load_backend

            target = Target(target, load_backend(target))
        wanted = set(ids)
        checks = [c for c in generate_checks([target], [family], UNIT_LAYERS) if c.id in wanted]
    except Exception as exc:  # noqa: BLE001 - a worker without the backend: a load failure
        return UnitOutcome([], [], where, pid, load_error=f"{type(exc).__name__}: {exc}")
    runner = Runner(quick=quick, salt=salt)
    results = [runner.run(c) for c in checks]
    made = {c.id for c in checks}
    return UnitOutcome(results, list(runner._scores.values()), where, pid,
                       missing=[i for i in ids if i not in made])


def _failed(check: Check, message: str) -> CheckResult:
    return CheckResult(check.id, check.backend, check.family, check.grid, check.name,
                       check.layer, "fail", message=message,
                       involves=check.involves or (check.backend,))


def _unit_results(unit: Sequence[Check], out: UnitOutcome) -> list[CheckResult]:
    """The unit's results in plan order; load errors and missing checks become failures."""
    name = unit[0].backend
    if out.load_error is not None:
        msg = (f"backend {name!r} failed to load on worker {out.worker} (pid {out.pid}): "
               f"{out.load_error}. Install the backend on every worker.")
        return [_failed(c, msg) for c in unit]
    by_id = {r.id: r for r in out.results}
    missing = (f"worker {out.worker} did not generate this check: its polysample or backend "
               f"{name!r} differs from the client's. Install the same versions everywhere.")
    return [by_id.get(c.id) or _failed(c, missing) for c in unit]


def _registered(t: Target, registered: set[str]) -> bool:
    """Whether ``t`` is the registered backend of its name (not an instance of the caller's
    that shares the name: a worker loading the name would judge another backend)."""
    if t.name not in registered:
        return False
    from ..core.plugins import load_backend

    try:
        return load_backend(t.name) is t.backend
    except Exception:  # noqa: BLE001 - the registered one does not load here: ship the instance
        return False


def _cost(target: Target, family: str) -> float:
    """A rough priority: compiled backends and heavy families first (a better makespan)."""
    compiled = type(target.backend).__module__.startswith("polysample.backends.tfp")
    return (2.0 if compiled else 1.0) * (2.0 if family in HEAVY_FAMILIES else 1.0)


def lost_keys(events: Sequence[tuple[float, Any]], keys: set[str]) -> dict[str, list[str]]:
    """From the scheduler's ``"all"`` events, which of ``keys`` were held by a worker when it
    was removed (running, queued, or computed but not yet fetched): key -> those workers."""
    lost: dict[str, list[str]] = {}
    for _, msg in events:
        if not isinstance(msg, dict) or msg.get("action") != "remove-worker":
            continue
        held = set(msg.get("processing-tasks", ())) | set(msg.get("lost-computed-tasks", ()))
        for key in sorted(held & keys):
            lost.setdefault(key, []).append(str(msg.get("worker", "?")))
    return lost


@dataclass
class ClusterRun:
    """What the client learnt about the run beyond the results: the units Dask reassigned
    after losing a worker (``retried``, unit names ``<backend>-<family>``), a note for each,
    and where every unit finished (unit name -> worker address)."""

    retried: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    places: dict[str, str] = field(default_factory=dict)


def run_on_client(client: Any, targets: Sequence[Target], checks: Sequence[Check], quick: bool,
                  salt: int, record: Callable[[CheckResult], None],
                  flush: Callable[[], None], run: ClusterRun | None = None) -> ClusterRun:
    """Run ``checks`` on ``client``: units on the workers, agreement here.

    Results go to ``record`` as units finish; ``flush`` is called after every unit. What the
    report says about the cluster is appended to ``run`` as the run goes (a report sharing its
    lists is up to date at every flush) and returned.
    """
    from distributed import as_completed

    from ..core.plugins import backend_names

    run = run if run is not None else ClusterRun()
    registered = set(backend_names())
    by_name = {t.name: t for t in targets}
    # Keys unique to this run: a shared scheduler must neither merge two runs' units nor
    # confuse an earlier run's lost units with this one's.
    token = uuid.uuid4().hex[:12]
    futures: dict[Any, tuple[str, list[Check]]] = {}
    agreement: list[Check] = []
    for unit in units(checks):
        first = unit[0]
        if first.layer == "agreement":
            agreement.extend(unit)
            continue
        t = by_name[first.backend]
        # A registered backend travels by name and is loaded from the worker's own plugins;
        # an instance (even one named like a registered backend) travels as it is.
        ship: Target | str = t.name if _registered(t, registered) else t
        key = f"polysample-unit-{first.backend}-{first.family}-{token}"
        fut = client.submit(run_unit, ship, first.family, [c.id for c in unit], quick, salt,
                            pure=False, priority=int(10 * _cost(t, first.family)), key=key)
        futures[fut] = (key, unit)
    names = {key: f"{unit[0].backend}-{unit[0].family}" for key, unit in futures.values()}
    lost: dict[str, list[str]] = {}

    def observe() -> None:
        # The scheduler logs the removal of a worker before it reassigns the worker's tasks,
        # on the stream that also brings the results: a rerun unit's loss is in the log by
        # the time its result arrives.
        try:
            lost.update(lost_keys(client.get_events("all"), set(names)))
        except Exception:  # noqa: BLE001 - a scheduler that refuses: nothing to report
            return
        for key in sorted(lost):
            name = names[key]
            if name in run.retried or name not in run.places:
                continue
            run.retried.append(name)
            where = run.places[name]
            outcome = ("it was lost for good" if where == "lost"
                       else f"it finished on worker {where}")
            run.notes.append(
                f"unit {name} was on worker {', '.join(lost[key])} when that worker left; "
                f"Dask ran it again and {outcome} (its results are that run's)")

    runner = Runner(quick=quick, salt=salt)
    for fut in as_completed(list(futures)):
        key, unit = futures[fut]
        name = names[key]
        try:
            out: UnitOutcome = fut.result()
        except Exception as exc:  # noqa: BLE001 - a unit lost for good (KilledWorker, ...)
            hint = (" (is polysample installed on the workers?)"
                    if isinstance(exc, ImportError) else "")
            msg = f"the Dask task running this unit failed{hint}: {type(exc).__name__}: {exc}"
            results, where = [_failed(c, msg) for c in unit], "lost"
        else:
            results, where = _unit_results(unit, out), out.worker
            runner.provide(out.scores)
        fut.release()
        run.places[name] = where
        for r in results:
            record(r)
        observe()
        flush()
    for check in agreement:
        record(runner.run(check))
    flush()
    return run


def cluster_map(client: Any) -> Callable[[Callable[[Any], Any], list[Any]], list[Any]]:
    """``pmap(fn, jobs)`` on ``client``'s workers: one task per job, the results in order (the
    HTML report's plots, :func:`.html.render_html`)."""

    def pmap(fn: Callable[[Any], Any], jobs: list[Any]) -> list[Any]:
        if not jobs:
            return []
        token = uuid.uuid4().hex[:12]
        futures = client.map(fn, jobs, pure=False,
                             key=[f"polysample-plot-{i}-{token}" for i in range(len(jobs))])
        try:
            return list(client.gather(futures))
        finally:
            client.cancel(futures)

    return pmap
