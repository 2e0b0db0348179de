"""When does Dask pay off? Validation and large draws, serially and on a local Dask cluster.

Usage::

    python benchmarks/bench_dask.py [validate] [sample] [overhead] [chunks]
        [--workers 2] [--backend torch --backend numpy ...] [--quick] [--family F ...]
        [--values 1e9] [--chunk 1e7] [--json results.json]

Sections (all by default):

* ``validate``: the conformance suite (full mode unless ``--quick``) on the given backends
  (default: every built-in backend that loads), serially, then on ``processes:N``; wall times,
  speed-up and efficiency (speed-up / N), and the check-for-check equality of the two reports.
* ``sample``: ``polysample.dask.sample`` of ``--values`` float32 Normal(0, 1) values in chunks
  of ``--chunk``, reduced to a mean on the cluster, against a loop in one process drawing the
  same chunks with the same seeds (same values) and summing them; throughput in values/s.
* ``overhead``: the per-task cost of Dask: many one-value chunks on the cluster, less what
  drawing one value costs in one process.
* ``chunks``: per backend, drawing throughput (Normal and Gamma, float32) at chunks of 1e5, 1e6
  and 1e7 values, and the chunk size at which the per-task overhead is 1% of a chunk's time.

Prints Markdown tables; ``--json`` also writes every figure. A benchmark, not a test: the
default sizes take tens of minutes on a 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import platform
import sys
import time
import warnings
from typing import Any

import numpy as np
import torch

import polysample as ps
from polysample.dask import chunk_seed, sample

BUILT_IN = ("torch", "numpy", "tfp", "tfp-tf")


def machine() -> dict[str, Any]:
    import dask
    import distributed

    return {"python": platform.python_version(), "platform": platform.platform(),
            "cpus": os.cpu_count(), "torch": torch.__version__, "numpy": np.__version__,
            "dask": dask.__version__, "distributed": distributed.__version__,
            "polysample": ps.__version__, "loadavg_at_start": os.getloadavg(),
            "date": time.strftime("%Y-%m-%d %H:%M")}


def cluster(n: int) -> tuple[Any, Any, float]:
    from distributed import Client, LocalCluster

    t0 = time.perf_counter()
    c = LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                     dashboard_address=None, silence_logs=logging.ERROR)
    client = Client(c)
    client.wait_for_workers(n)
    return client, c, time.perf_counter() - t0


def _cpu() -> float:
    return time.process_time()  # this process, every thread: user + system


def cpu(client: Any = None) -> tuple[float, float]:
    """CPU seconds used so far by this process (the client, and the scheduler and nannies of a
    LocalCluster) and by the workers of ``client``. Differences of these, unlike wall times,
    do not depend on what else the machine runs."""
    return _cpu(), (sum(client.run(_cpu).values()) if client is not None else 0.0)


def available(names: list[str]) -> list[str]:
    out = []
    for name in names:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ps.load_backend(name).families()
            out.append(name)
        except Exception as exc:  # noqa: BLE001 - not installed here: said, and left out
            print(f"# {name} left out: {type(exc).__name__}: {exc}", file=sys.stderr)
    return out


# ---------------------------------------------------------------------- validate
def bench_validate(backends: list[str], workers: int, quick: bool,
                   families: list[str] | None) -> dict[str, Any]:
    from polysample.conformance import check_backends, known_failures

    kw = {"expected_failures": known_failures(), "quick": quick, "families": families}
    t0, c0 = time.perf_counter(), _cpu()
    serial = check_backends(backends, **kw)
    t_serial, cpu_serial = time.perf_counter() - t0, _cpu() - c0
    client, c, t_start = cluster(workers)
    try:
        (own0, w0), t0 = cpu(client), time.perf_counter()
        dist = check_backends(backends, **kw, client=client)
        t_dask = time.perf_counter() - t0
        own1, w1 = cpu(client)
    finally:
        client.close()
        c.close()

    def same(r: Any) -> Any:
        d = r.to_dict()
        d.pop("seconds")
        d["details"] = {k: v for k, v in d["details"].items() if k != "draw_seconds"}
        return d

    units: dict[str, float] = {}
    for r in serial.results:
        if r.layer != "agreement":
            units[f"{r.backend}-{r.family}"] = units.get(f"{r.backend}-{r.family}", 0) + r.seconds
    work = sum(units.values())
    agreement = sum(r.seconds for r in serial.results if r.layer == "agreement")
    return {
        "backends": backends, "mode": "quick" if quick else "full", "checks": len(serial.results),
        "serial_s": t_serial, "dask_s": t_dask, "cluster_start_s": t_start, "workers": workers,
        "speedup": t_serial / t_dask, "efficiency": t_serial / t_dask / workers,
        "speedup_with_start": t_serial / (t_dask + t_start),
        "identical": [same(r) for r in serial.results] == [same(r) for r in dist.results],
        "units": len(units), "unit_work_s": work, "longest_unit_s": max(units.values()),
        "longest_unit": max(units, key=lambda k: units[k]), "agreement_s": agreement,
        # The best a perfect scheduler could do with these units on `workers` workers.
        "bound_s": max(work / workers, max(units.values())) + agreement,
        "serial_ok": serial.ok, "dask_ok": dist.ok, "retried": dist.retried,
        "serial_cpu_s": cpu_serial, "dask_client_cpu_s": own1 - own0,
        "dask_workers_cpu_s": w1 - w0,
        # CPU the run had on average (the machine is shared: other jobs take the rest).
        "serial_cores": cpu_serial / t_serial, "dask_cores": (own1 - own0 + w1 - w0) / t_dask,
        # Extra CPU work a cluster run does (per-task costs, transfers), whatever the load.
        "cpu_efficiency": cpu_serial / (own1 - own0 + w1 - w0),
    }


# ---------------------------------------------------------------------- sample
def bench_sample(values: int, chunk: int, workers: int, backend: str) -> dict[str, Any]:
    d = ps.Normal(torch.tensor(0.0), torch.tensor(1.0), backend=backend)
    seed = np.random.SeedSequence(2026)
    n_chunks = values // chunk
    out: dict[str, Any] = {"values": values, "chunk": chunk, "chunks": n_chunks,
                           "backend": backend, "workers": workers}

    def loop(threads: int) -> tuple[float, float]:
        before = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            d.sample((1000,), seed=0)  # load the backend (and compile, for TFP)
            t0, c0 = time.perf_counter(), _cpu()
            total = 0.0
            for k in range(n_chunks):
                x = d.sample((chunk,), seed=chunk_seed(seed, k)).numpy()
                total += float(x.sum(dtype=np.float64))
            out[f"loop_{threads}_cpu_s"] = _cpu() - c0
            return total / (n_chunks * chunk), time.perf_counter() - t0
        finally:
            torch.set_num_threads(before)

    out["loop_1thread_mean"], out["loop_1thread_s"] = loop(1)
    out["loop_threads"] = torch.get_num_threads()
    out["loop_mean"], out["loop_s"] = loop(torch.get_num_threads())
    client, c, t_start = cluster(workers)
    try:
        x = sample(d, (n_chunks * chunk,), chunks=chunk, seed=seed)
        client.compute(sample(d, (workers * 1000,), chunks=1000, seed=0)).result()  # warm
        (own0, w0), t0 = cpu(client), time.perf_counter()
        out["dask_mean"] = float(client.compute(x.mean(dtype=np.float64)).result())
        out["dask_s"] = time.perf_counter() - t0
        own1, w1 = cpu(client)
        out["dask_client_cpu_s"], out["dask_workers_cpu_s"] = own1 - own0, w1 - w0
        out["dask_cores"] = (own1 - own0 + w1 - w0) / out["dask_s"]
    finally:
        client.close()
        c.close()
    out["cluster_start_s"] = t_start
    for k in ("loop_1thread", "loop", "dask"):
        out[f"{k}_values_per_s"] = values / out[f"{k}_s"]
    out["speedup_vs_1thread_loop"] = out["loop_1thread_s"] / out["dask_s"]
    out["speedup_vs_loop"] = out["loop_s"] / out["dask_s"]
    # CPU per chunk beyond what the one-thread loop spends on it: Dask's cost per chunk.
    out["overhead_per_chunk_cpu_s"] = (out["dask_client_cpu_s"] + out["dask_workers_cpu_s"]
                                       - out["loop_1_cpu_s"]) / n_chunks
    out["loop_1thread_cores"] = out["loop_1_cpu_s"] / out["loop_1thread_s"]
    out["same_mean"] = math.isclose(out["dask_mean"], out["loop_mean"], rel_tol=0, abs_tol=1e-12)
    return out


# ---------------------------------------------------------------------- overhead
def bench_overhead(workers: int, tasks: int, backend: str) -> dict[str, Any]:
    d = ps.Normal(torch.tensor(0.0), torch.tensor(1.0), backend=backend)
    root = np.random.SeedSequence(1)
    d.sample((1,), seed=0)
    t0 = time.perf_counter()
    for k in range(tasks):
        d.sample((1,), seed=chunk_seed(root, k)).numpy()  # what one chunk task draws
    draw_one = (time.perf_counter() - t0) / tasks
    client, c, _ = cluster(workers)
    try:
        # What the cluster burns doing nothing (heartbeats, Dask's sampling profiler), per
        # second: part of every run's CPU, a per-second cost rather than a per-task one.
        time.sleep(2)
        (own0, w0), t0 = cpu(client), time.perf_counter()
        time.sleep(10)
        own1, w1 = cpu(client)
        idle = (own1 - own0 + w1 - w0) / (time.perf_counter() - t0)
        x = sample(d, (tasks,), chunks=1, seed=root)
        client.compute(sample(d, (workers * 10,), chunks=1, seed=0).sum()).result()  # warm
        (own0, w0), t0 = cpu(client), time.perf_counter()
        client.compute(x.sum()).result()
        wall = time.perf_counter() - t0
        own1, w1 = cpu(client)
    finally:
        client.close()
        c.close()
    # `tasks` chunk tasks plus the reduction tree (about tasks / 31 more, Dask's split_every).
    per_task_cluster = wall / tasks  # wall clock per chunk, the cluster as a whole
    per_task_worker = wall * workers / tasks  # worker time per chunk
    n_graph = len(dict(x.sum().__dask_graph__()))  # chunk tasks + the reduction tree
    return {"tasks": tasks, "graph_tasks": n_graph, "workers": workers, "backend": backend,
            "wall_s": wall,
            # CPU per task: the scheduler's (with the client's, one process in a LocalCluster)
            # bounds how many tasks per second one scheduler dispatches, whatever the workers.
            "scheduler_cpu_per_task_s": (own1 - own0) / n_graph,
            "worker_cpu_per_task_s": (w1 - w0) / n_graph,
            "overhead_cpu_per_task_s": (own1 - own0 + w1 - w0) / n_graph - draw_one,
            "cores": (own1 - own0 + w1 - w0) / wall, "idle_cpu_per_s": idle,
            "tasks_per_s": tasks / wall, "draw_one_value_s": draw_one,
            "per_task_s": per_task_worker,
            "overhead_per_task_s": max(per_task_worker - draw_one, 0.0),
            "per_task_cluster_s": per_task_cluster}


# ---------------------------------------------------------------------- chunks
def bench_chunks(backends: list[str], overhead: float) -> dict[str, Any]:
    torch.set_num_threads(1)  # as on a Dask worker (OMP_NUM_THREADS=1)
    rows = []
    for name in backends:
        for family, dist in (("Normal", ps.Normal(torch.tensor(0.0), torch.tensor(1.0),
                                                  backend=name)),
                             ("Gamma", ps.Gamma(torch.tensor(2.0), torch.tensor(1.0),
                                                backend=name))):
            row: dict[str, Any] = {"backend": name, "family": family}
            for size in (10**5, 10**6, 10**7):
                t0 = time.perf_counter()
                dist.sample((size,), seed=0)  # first call: loads, compiles this shape (TFP)
                row[f"first_{size}_s"] = time.perf_counter() - t0
                times, cpus = [], []
                for r in range(3):
                    t0, c0 = time.perf_counter(), _cpu()
                    dist.sample((size,), seed=r + 1).numpy()
                    times.append(time.perf_counter() - t0)
                    cpus.append(_cpu() - c0)
                row[f"{size}_s"], row[f"{size}_cpu_s"] = min(times), min(cpus)
            # CPU time, not wall time: on a shared machine the wall clock measures the load.
            # (JAX and TensorFlow may use several threads: their CPU time counts them all.)
            rate = 10**7 / row[f"{10**7}_cpu_s"]
            row["values_per_s"] = rate
            row["overhead_share_at_1e7"] = overhead / (overhead + row[f"{10**7}_cpu_s"])
            # The smallest chunk whose drawing takes 20x the per-task overhead (overhead <= 5%
            # of the time), capped at Dask's default chunk size (128 MiB of float32).
            cap = _round_down(128 * 2**20 / 4)
            row["recommended_chunk"] = min(_round_up(max(20 * overhead * rate, 1e5)), cap)
            row["recommended_chunk_s"] = row["recommended_chunk"] / rate
            rows.append(row)
            print(f"# chunks {name} {family}: {rate:.3g} values/s, "
                  f"recommend {row['recommended_chunk']:.0e}", file=sys.stderr)
    return {"overhead_per_task_s": overhead, "rows": rows}


def _round_down(x: float) -> int:
    """Down to 1, 2 or 5 times a power of ten."""
    p = 10 ** math.floor(math.log10(x))
    return int(max(m * p for m in (1, 2, 5) if m * p <= x))


def _round_up(x: float) -> int:
    """Up to 1, 2 or 5 times a power of ten."""
    p = 10 ** math.floor(math.log10(x))
    return int(next(m * p for m in (1, 2, 5, 10) if m * p >= x))


# ---------------------------------------------------------------------- report
def markdown(res: dict[str, Any]) -> str:
    out = [f"machine: {res['machine']['cpus']} CPUs, {res['machine']['platform']}, "
           f"python {res['machine']['python']}, torch {res['machine']['torch']}, dask "
           f"{res['machine']['dask']}; load average at start "
           f"{', '.join(f'{x:.1f}' for x in res['machine']['loadavg_at_start'])} "
           f"({res['machine']['date']})", ""]
    v = res.get("validate")
    if v:
        out += [f"validate ({v['mode']} mode, {', '.join(v['backends'])}: {v['checks']} checks, "
                f"{v['units']} units)", "",
                "| run | wall | speed-up | efficiency |", "|---|---|---|---|",
                f"| serial | {v['serial_s']:.0f} s | 1 | 1 |",
                f"| processes:{v['workers']} | {v['dask_s']:.0f} s (+ {v['cluster_start_s']:.1f} s"
                f" cluster start) | {v['speedup']:.2f}x | {v['efficiency']:.0%} |", "",
                f"CPU obtained: serial {v['serial_cores']:.2f} cores, processes:"
                f"{v['workers']} {v['dask_cores']:.2f} cores; CPU work serial "
                f"{v['serial_cpu_s']:.0f} s, on the cluster {v['dask_client_cpu_s']:.0f} s "
                f"(client + scheduler) + {v['dask_workers_cpu_s']:.0f} s (workers): CPU "
                f"efficiency {v['cpu_efficiency']:.0%}", "",
                f"reports identical check for check: {v['identical']}; longest unit "
                f"{v['longest_unit']} {v['longest_unit_s']:.0f} s; best possible on "
                f"{v['workers']} workers {v['bound_s']:.0f} s", ""]
    s = res.get("sample")
    if s:
        out += [f"dask.sample: {s['values']:.0e} float32 Normal values ({s['backend']}), "
                f"chunks of {s['chunk']:.0e}, reduced to a mean", "",
                "| run | wall | values/s | speed-up |", "|---|---|---|---|",
                f"| loop, one process, 1 torch thread | {s['loop_1thread_s']:.1f} s | "
                f"{s['loop_1thread_values_per_s']:.3g} | 1 |",
                f"| loop, one process, {s['loop_threads']} torch threads | {s['loop_s']:.1f} s | "
                f"{s['loop_values_per_s']:.3g} | "
                f"{s['loop_1thread_s'] / s['loop_s']:.2f}x |",
                f"| dask, processes:{s['workers']} | {s['dask_s']:.1f} s | "
                f"{s['dask_values_per_s']:.3g} | {s['speedup_vs_1thread_loop']:.2f}x |", "",
                f"means: loop {s['loop_mean']:.3e}, dask {s['dask_mean']:.3e} (same: "
                f"{s['same_mean']}); CPU per chunk beyond the loop's: "
                f"{s['overhead_per_chunk_cpu_s'] * 1e3:.1f} ms; CPU obtained: loop "
                f"{s['loop_1thread_cores']:.2f} cores, dask {s['dask_cores']:.2f} cores; CPU "
                f"used: loop {s['loop_1_cpu_s']:.2f} s, dask {s['dask_client_cpu_s']:.2f} s "
                f"(client + scheduler) + {s['dask_workers_cpu_s']:.2f} s (workers)", ""]
    o = res.get("overhead")
    if o:
        out += [f"per-task overhead: {o['tasks']} one-value chunks ({o['graph_tasks']} tasks "
                f"with the reduction) on processes:{o['workers']} in {o['wall_s']:.1f} s = "
                f"{o['tasks_per_s']:.0f} chunks/s, with {o['cores']:.2f} cores obtained. CPU "
                f"per task: scheduler + client {o['scheduler_cpu_per_task_s'] * 1e3:.2f} ms, "
                f"workers {o['worker_cpu_per_task_s'] * 1e3:.2f} ms (drawing one value "
                f"{o['draw_one_value_s'] * 1e3:.3f} ms): overhead "
                f"{o['overhead_cpu_per_task_s'] * 1e3:.2f} ms CPU per task. Idle, the cluster "
                f"(scheduler, nannies, {o['workers']} workers) uses "
                f"{o['idle_cpu_per_s'] * 1e3:.0f} ms of CPU per second", ""]
    c = res.get("chunks")
    if c:
        out += [f"chunk sizes (per-task overhead {c['overhead_per_task_s'] * 1e3:.1f} ms)", "",
                "| backend | family | values per CPU-s (1e7) | first call 1e7 | overhead "
                "at 1e7 | recommended chunk | its drawing time |",
                "|---|---|---|---|---|---|---|"]
        for r in c["rows"]:
            out.append(f"| {r['backend']} | {r['family']} | {r['values_per_s']:.3g} | "
                       f"{r[f'first_{10**7}_s']:.2f} s | {r['overhead_share_at_1e7']:.1%} | "
                       f"{r['recommended_chunk']:.0e} | "
                       f"{r['recommended_chunk_s'] * 1e3:.0f} ms |")
        out.append("")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("sections", nargs="*", default=["validate", "sample", "overhead", "chunks"])
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--backend", action="append")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--family", action="append", help="validate these families only")
    p.add_argument("--values", type=float, default=1e9)
    p.add_argument("--chunk", type=float, default=1e7)
    p.add_argument("--sample-backend", default="torch")
    p.add_argument("--tasks", type=int, default=2000)
    p.add_argument("--json")
    args = p.parse_args(argv)
    res: dict[str, Any] = {"machine": machine()}
    backends = available(args.backend or list(BUILT_IN))

    def save() -> None:
        if args.json:
            with open(args.json, "w") as fh:
                json.dump(res, fh, indent=1, default=str)

    if "validate" in args.sections:
        res["validate"] = bench_validate(backends, args.workers, args.quick, args.family)
        save()
    if "sample" in args.sections:
        res["sample"] = bench_sample(int(args.values), int(args.chunk), args.workers,
                                     args.sample_backend)
        save()
    overhead = None
    if "overhead" in args.sections:
        res["overhead"] = bench_overhead(args.workers, args.tasks, args.sample_backend)
        overhead = res["overhead"]["overhead_cpu_per_task_s"]
        save()
    if "chunks" in args.sections:
        res["chunks"] = bench_chunks(backends, overhead if overhead is not None else 1e-3)
        save()
    print(markdown(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
