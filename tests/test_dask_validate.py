"""The conformance suite on a Dask cluster (``check_backends(..., client=)``, ``--workers``).

One local cluster of two worker processes serves the module. Its workers load the test plugin
``dask_plugins`` (the ``hang_once`` backend), so one test can kill the worker running a unit.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import pathlib
import signal
import sys
import threading
import time

import numpy as np
import pytest

import polysample as ps
import polysample.conformance.distributed as distributed_module
from polysample.backends.numpy_backend import NumpyBackend
from polysample.conformance import check_backends
from polysample.conformance.distributed import client_for, cluster_map, local_cluster, lost_keys
from polysample.conformance.html import render_html

distributed = pytest.importorskip("distributed")

TESTS = pathlib.Path(__file__).parent
sys.path.insert(0, str(TESTS))  # workers are spawned with this process's sys.path

pytestmark = pytest.mark.xdist_group("dask")

QUICK = {"quick": True}


@pytest.fixture(scope="module")
def hang_file(tmp_path_factory):
    return tmp_path_factory.mktemp("dask") / "hang.pid"


@pytest.fixture(scope="module")
def client(hang_file):
    env = {"POLYSAMPLE_PLUGINS": "dask_plugins", "POLYSAMPLE_TEST_HANG_FILE": str(hang_file)}
    # A user's environment without MALLOC_TRIM_THRESHOLD_ (another module's Dask cluster may
    # have set it in this process: nannies write their settings into their parent's environ).
    trim = os.environ.pop("MALLOC_TRIM_THRESHOLD_", None)
    cluster = local_cluster(2, env=env)  # as --workers 2 makes it
    c = distributed.Client(cluster)
    yield c
    c.close()
    cluster.close()
    if trim is not None:
        os.environ["MALLOC_TRIM_THRESHOLD_"] = trim


@pytest.fixture
def with_test_plugin(monkeypatch):
    monkeypatch.setenv("POLYSAMPLE_PLUGINS", "dask_plugins")
    ps.refresh()
    yield
    monkeypatch.delenv("POLYSAMPLE_PLUGINS")
    ps.refresh()


def _plain(obj):
    """Dataclasses, arrays and tuples as dicts and lists, for :func:`_mismatch`."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return [type(obj).__name__, _plain(dataclasses.asdict(obj))]
    if isinstance(obj, np.ndarray):
        return _plain(obj.tolist())
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj


def _mismatch(a, b, path="result"):
    """Where ``a`` and ``b`` differ (None if nowhere): floats within 1e-9 absolute or 1e-5
    relative (NaN equals NaN), everything else exactly."""
    if isinstance(a, float) and isinstance(b, float):
        if (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=1e-5, abs_tol=1e-9):
            return None
        return f"{path}: {a!r} != {b!r}"
    if isinstance(a, dict) and isinstance(b, dict):
        if a.keys() != b.keys():
            return f"{path}: keys {sorted(a)} != {sorted(b)}"
        for k in a:
            if (m := _mismatch(a[k], b[k], f"{path}[{k!r}]")) is not None:
                return m
        return None
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return f"{path}: length {len(a)} != {len(b)}"
        for i, (x, y) in enumerate(zip(a, b)):
            if (m := _mismatch(x, y, f"{path}[{i}]")) is not None:
                return m
        return None
    return None if a == b else f"{path}: {a!r} != {b!r}"


def same(result):
    """A check's result without timings; its evidence (curves, scores) compared too.

    Numbers are compared to 1e-5 relative or 1e-9 absolute (:func:`_mismatch`): torch
    normalizes a Categorical's float32 ``probs`` with a parallel sum whose rounding depends on
    the thread count (a Dask worker runs one thread, this process two), which moves reference
    probabilities of 1e-7 by about 1e-15 and a K-S distance by 2e-10. Statuses, ids and
    messages must be identical.
    """
    d = result.to_dict()
    del d["seconds"]
    d["details"] = {k: v for k, v in d["details"].items() if k != "draw_seconds"}
    d["evidence"] = [_plain(e) for e in result.evidence]
    return _plain(d)


def test_the_report_equals_the_serial_one_check_for_check(client):
    args = (["torch", "numpy"], ["Exponential", "Geometric"])
    serial = check_backends(*args, **QUICK)
    cluster = check_backends(*args, **QUICK, client=client)
    assert cluster.complete and cluster.ok == serial.ok
    assert _mismatch([same(r) for r in cluster.results], [same(r) for r in serial.results]) is None
    assert {r.layer for r in cluster.results} >= {"semantics", "sampler", "agreement"}
    assert cluster.scheduler == "dask (2 workers)" and cluster.retried == []
    # the HTML report's plots drawn on the workers are the ones drawn here
    page = render_html(cluster, pmap=cluster_map(client))
    assert page == render_html(cluster) and page.count("data:image/png;base64,") >= 3


def test_cluster_map_runs_the_jobs_on_the_workers_in_order(client):
    pids = set(client.run(os.getpid).values())
    out = cluster_map(client)(_pid_and_double, list(range(7)))
    assert [x for _, x in out] == [0, 2, 4, 6, 8, 10, 12]
    assert {pid for pid, _ in out} <= pids and os.getpid() not in pids
    assert cluster_map(client)(_pid_and_double, []) == []


def test_workers_allocate_memory_as_a_plain_process_does(client):
    # Dask's nannies set MALLOC_TRIM_THRESHOLD_, which fixes glibc's mmap threshold: every
    # large array was then fresh pages, and the checks ran 40% slower on a worker.
    env = client.run(lambda: {k: os.environ.get(k) for k in ("MALLOC_TRIM_THRESHOLD_",
                                                              "OMP_NUM_THREADS")})
    assert len(env) == 2
    for worker in env.values():
        assert worker["MALLOC_TRIM_THRESHOLD_"] is None  # unset here, unset there
        assert worker["OMP_NUM_THREADS"] == "1"  # one core per worker process
    # no statistical profiler sampling the workers' stacks for a dashboard nobody serves
    import dask

    assert set(client.run(lambda: dask.config.get("distributed.worker.profile.enabled"))
               .values()) == {False}


def _write_at_exit(path: str) -> int:
    import atexit

    atexit.register(pathlib.Path(path).write_text, "finalized")
    return os.getpid()


def test_a_closed_worker_exits_without_finalizing_its_interpreter(tmp_path):
    # Finalizing TensorFlow and JAX made closing the cluster take 2-5 s. An exit handler the
    # worker's libraries registered during the run is skipped: the process ends right after
    # the worker closed (and released its directory).
    marker = tmp_path / "finalized"
    import socket
    import warnings

    busy = socket.socket()  # a user's own Dask dashboard on its usual port
    with contextlib.suppress(OSError):
        busy.bind(("", 8787))
        busy.listen()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cluster = local_cluster(1)
    busy.close()
    assert not [w for w in caught if "8787" in str(w.message)]  # it kept to a free port
    with distributed.Client(cluster) as c:
        (pid,) = c.run(_write_at_exit, str(marker)).values()
        (local_dir,) = c.run(lambda dask_worker: dask_worker.local_directory).values()
    cluster.close()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and pathlib.Path(f"/proc/{pid}").exists():
        time.sleep(0.05)
    assert not marker.exists()
    assert not pathlib.Path(local_dir).exists()


def test_the_exit_handler_flushes_output_and_skips_earlier_handlers(tmp_path):
    marker = tmp_path / "finalized"
    code = f"""
import atexit, pathlib, sys
atexit.register(pathlib.Path({str(marker)!r}).write_text, "finalized")
from polysample.conformance._dask_worker import ExitWithoutFinalizing
if sys.argv[1] == "teardown":
    ExitWithoutFinalizing().teardown(None)
print("buffered", end="")
"""
    import subprocess

    for mode, finalized in (("teardown", False), ("plain", True)):
        marker.unlink(missing_ok=True)
        done = subprocess.run([sys.executable, "-c", code, mode], capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert done.stdout == "buffered"
        assert marker.exists() is finalized, mode


def _pid_and_double(x: int) -> tuple[int, int]:
    return os.getpid(), 2 * x


def test_a_killed_worker_loses_only_its_unit_which_is_rerun_and_reported(
        client, hang_file, with_test_plugin):
    # hang_once hangs in its first draw on a worker; we kill that worker's process from here,
    # as the OOM killer would. Dask reruns the unit on another worker.
    pids = set(client.run(os.getpid).values())
    killed: list[int] = []

    def kill_when_hanging() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if hang_file.exists():
                pid = int(hang_file.read_text())
                if pid in pids:  # a worker process (never this one)
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
                return
            time.sleep(0.05)

    killer = threading.Thread(target=kill_when_hanging, daemon=True)
    killer.start()
    args = (["hang_once", "torch"], ["Normal"])
    report = check_backends(*args, **QUICK, client=client)
    killer.join(timeout=5)
    assert killed, "the hang_once unit never started"
    assert report.complete and report.planned == len(report.results)
    assert report.retried == ["hang_once-Normal"]
    note = next(n for n in report.notes if n.startswith("unit hang_once-Normal"))
    assert "Dask ran it again and it finished on worker tcp://" in note
    assert '"retried": [\n  "hang_once-Normal"\n ]' in report.to_json()
    serial = check_backends(*args, **QUICK)  # no hang outside the cluster's workers
    assert _mismatch([same(r) for r in report.results], [same(r) for r in serial.results]) is None
    client.wait_for_workers(2, timeout=60)  # the nanny restarts the killed worker


def test_a_worker_without_the_backend_reports_load_failures_naming_it(client):
    # Registered in this process only: the workers do not have it.
    ps.register_backend("client_only", NumpyBackend)
    try:
        report = check_backends(["client_only"], ["Normal"], **QUICK, layers=("semantics",),
                                client=client)
    finally:
        ps.unregister_backend("client_only")
    assert report.complete and not report.ok and report.results
    workers = set(client.scheduler_info()["workers"])
    for r in report.results:
        assert r.status == "fail" and r.id.startswith("client_only-Normal-")
        assert "failed to load on worker tcp://" in r.message
        assert "UnknownBackendError" in r.message
        assert any(w in r.message for w in workers)


def test_validate_runs_on_a_running_scheduler_given_by_address(client, tmp_path, capsys,
                                                              monkeypatch):
    import argparse
    import json

    from polysample.conformance.cli import register

    parser = argparse.ArgumentParser(prog="polysample")
    register(parser.add_subparsers(dest="command"))
    out, page = tmp_path / "r.json", tmp_path / "r.html"
    args = parser.parse_args(["validate", "--backend", "numpy", "--family", "Exponential",
                              "--quick", "--scheduler", client.scheduler.address,
                              "--json", str(out), "--html", str(page)])
    mapped: list[int] = []

    def recording(c):  # the CLI draws the HTML report's plots on the cluster
        pmap = cluster_map(c)
        return lambda fn, jobs: mapped.append(len(jobs)) or pmap(fn, jobs)

    monkeypatch.setattr(distributed_module, "cluster_map", recording)
    assert args.func(args) == 0
    data = json.loads(out.read_text())
    assert data["complete"] and data["scheduler"] == "dask (2 workers)" and data["retried"] == []
    assert mapped and mapped[0] >= 1
    assert page.read_text().count("data:image/png;base64,") == mapped[0]
    assert client.scheduler_info()["workers"]  # our client and cluster are still open


def test_workers_and_scheduler_together_are_a_usage_error(capsys):
    import argparse

    from polysample.conformance.cli import register

    parser = argparse.ArgumentParser(prog="polysample")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["validate", "--workers", "2", "--scheduler", "tcp://h:8786"])
    assert args.func(args) == 2
    assert "--workers N or --scheduler SPEC" in capsys.readouterr().err


def test_lost_keys_reads_the_schedulers_worker_removals():
    events = [(1.0, {"action": "add-worker", "worker": "tcp://a"}),
              (2.0, {"action": "remove-worker", "worker": "tcp://a",
                     "processing-tasks": {"k1", "other"}, "lost-computed-tasks": {"k2"}}),
              (3.0, {"action": "remove-worker", "worker": "tcp://b",
                     "processing-tasks": {"k1"}, "lost-computed-tasks": set()})]
    assert lost_keys(events, {"k1", "k2", "k3"}) == {"k1": ["tcp://a", "tcp://b"],
                                                      "k2": ["tcp://a"]}


@pytest.mark.parametrize("spec", ["processes:0", "processes:x", "localhost"])
def test_a_bad_scheduler_spec_says_what_is_expected(spec):
    with pytest.raises(ValueError, match="Expected"):
        client_for(spec)


def test_an_instance_of_a_class_defined_in_main_is_judged_as_serially(client, monkeypatch):
    # A notebook's or script's `class Local(Backend)` travels to the workers by value; the
    # pickle check pickled it by reference there and failed ("not the same object as
    # __main__.Local") where the serial run passed.
    import __main__

    local = type("LocalMainBackend", (NumpyBackend,), {"__module__": "__main__",
                                                       "name": "local_main"})
    monkeypatch.setattr(__main__, "LocalMainBackend", local, raising=False)
    args = ([local()], ["Poisson"])
    serial = check_backends(*args, **QUICK, layers=("semantics",))
    cluster = check_backends(*args, **QUICK, layers=("semantics",), client=client)
    assert serial.ok, serial.summary()
    assert cluster.ok, cluster.summary()
    assert _mismatch([same(r) for r in cluster.results], [same(r) for r in serial.results]) is None
    assert any(r.check == "pickle" and r.status == "pass" for r in cluster.results)
    # the workers' __main__ is left as it was
    assert not any(client.run(lambda: hasattr(__import__("__main__"), "LocalMainBackend"))
                   .values())


class _Shifted(NumpyBackend):
    """An instance named like a registered backend ("numpy") whose draws differ from it."""

    def sample(self, family, params, sample_shape, *, seed=None):  # type: ignore[override]
        return super().sample(family, params, sample_shape, seed=seed) + 1


def test_an_instance_named_like_a_registered_backend_travels_as_itself(client):
    # shipped by name, the workers judged the registered numpy backend instead
    args = ([_Shifted()], ["Normal"])
    kw = {**QUICK, "layers": ("sampler",)}
    serial, cluster = check_backends(*args, **kw), check_backends(*args, **kw, client=client)
    assert not serial.ok
    assert _mismatch([same(r) for r in cluster.results], [same(r) for r in serial.results]) is None
