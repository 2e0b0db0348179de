"""Running the suite on Dask: ``polysample validate --workers N`` / ``--scheduler SPEC``.

The unit of work is one (backend, family): its checks share that family's draws, which are made
on the worker that runs the unit and never shipped. A worker regenerates the unit's checks
itself (the plan is deterministic and every seed comes from a check id), so the results are
the same as a serial run's whatever the scheduler, worker count or order. What comes back is
small: the check results with their evidence (CDF curves for the plots, the normal-score
summaries the agreement checks compare). The agreement checks then run in the client process.

Needs ``dask`` and ``distributed`` (``pip install "polysample[dask]"``). A worker that dies loses
only its running units: Dask reruns them elsewhere; the report lists the units that ran more
than once. A worker that cannot load a backend reports every check of that unit as a failed
load, naming the worker.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from typing import Any

from .model import CheckResult, PitScores
from .runner import UNIT_LAYERS, Runner, Target, generate_checks, units

__all__ = ["client_for", "run_on_client", "run_unit"]


def client_for(spec: str) -> tuple[Any, Callable[[], None]]:
    """A ``distributed.Client`` for ``processes:N`` (a local cluster of N worker processes) or a
    scheduler address (``tcp://host:port``), and a function that closes what was opened."""
    try:
        from distributed import Client, LocalCluster
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
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                               dashboard_address=None, silence_logs=logging.ERROR)
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


def run_unit(target: Target | str, family: str, ids: Sequence[str], quick: bool,
             salt: int) -> tuple[list[CheckResult], list[PitScores], str]:
    """Run the checks ``ids`` of one (backend, family) where this is called (a Dask task).

    ``target`` is a registered name (loaded here, from this process's plugins) or a
    ``Target`` (an unregistered instance, pickled). Returns the results, the normal-score
    summaries the agreement checks need, and where it ran.
    """
    where = f"pid {os.getpid()}"
    try:
        worker = __import__("distributed").get_worker()
        where = f"worker {worker.address}"
    except Exception:  # noqa: BLE001 - not on a worker (serial use, tests)
        pass
    try:
        if isinstance(target, str):
            from ..core.plugins import load_backend

            target = Target(target, load_backend(target))
        checks = [c for c in generate_checks([target], [family], UNIT_LAYERS) if c.id in ids]
    except Exception as exc:  # noqa: BLE001 - a worker without the backend: a load failure
        name = target if isinstance(target, str) else target.name
        return [CheckResult(i, name, family, i.split("-")[-2] if "-" in i else "", "load",
                            "semantics", "fail",
                            message=f"backend {name!r} failed to load on {where}: "
                                    f"{type(exc).__name__}: {exc}", involves=(name,))
                for i in ids], [], where
    runner = Runner(quick=quick, salt=salt)
    results = [runner.run(c) for c in checks]
    return results, list(runner._scores.values()), where


def _cost(target: Target, family: str) -> float:
    """A rough priority: compiled backends and heavy families first (a better makespan)."""
    heavy = {"Beta", "Dirichlet", "Gamma", "StudentT", "FisherSnedecor", "Wishart", "VonMises",
             "InverseGamma", "Chi2", "Binomial", "NegativeBinomial", "Poisson", "LKJCholesky",
             "MultivariateNormal", "LowRankMultivariateNormal", "LogisticNormal"}
    compiled = type(target.backend).__module__.startswith("polysample.backends.tfp")
    return (2.0 if compiled else 1.0) * (2.0 if family in heavy else 1.0)


def run_on_client(client: Any, targets: Sequence[Target], checks: Sequence[Any], quick: bool,
                  salt: int, record: Callable[[CheckResult], None],
                  flush: Callable[[], None]) -> list[str]:
    """Run ``checks`` on ``client``: units on the workers, agreement here. Results go to
    ``record`` as they arrive; ``flush`` after every unit. Returns the units run twice."""
    from distributed import as_completed

    from ..core.plugins import backend_names

    registered = set(backend_names())
    by_name = {t.name: t for t in targets}
    futures = {}
    agreement = []
    for unit in units(checks):
        first = unit[0]
        if first.layer == "agreement":
            agreement.extend(unit)
            continue
        t = by_name[first.backend]
        ship: Target | str = t.name if t.name in registered else t
        fut = client.submit(run_unit, ship, first.family, [c.id for c in unit], quick, salt,
                            pure=False, priority=int(10 * _cost(t, first.family)),
                            key=f"polysample-unit-{first.backend}-{first.family}-{salt}")
        futures[fut] = unit
    runner = Runner(quick=quick, salt=salt)
    places: dict[str, str] = {}
    for fut in as_completed(list(futures)):
        unit = futures[fut]
        try:
            results, scores, where = fut.result()
        except Exception as exc:  # noqa: BLE001 - a unit lost for good (KilledWorker, ...)
            results = [CheckResult(c.id, c.backend, c.family, c.grid, c.name, c.layer, "fail",
                                   message=f"the Dask task running this unit failed: "
                                           f"{type(exc).__name__}: {exc}",
                                   involves=c.involves or (c.backend,)) for c in unit]
            scores, where = [], "lost"
        places[f"{unit[0].backend}-{unit[0].family}"] = where
        runner.provide(scores)
        for r in results:
            record(r)
        flush()
    for check in agreement:
        record(runner.run(check))
    flush()
    return []
