"""Monte Carlo on a Dask cluster: the mean and quantiles of LogNormal(0, 1) from N draws.

    python docs/examples/monte_carlo.py --draws 1e10 --chunk 1e7 [--workers 2]
    python docs/examples/monte_carlo.py --draws 1e10 --chunk 1e7 --scheduler tcp://host:8786

The draws never leave the workers: each chunk is drawn, reduced to its sum, sum of squares
and a histogram, and dropped. The exact answers are known (mean exp(1/2), quantile q
exp(z_q)), so the printout shows how close N draws get.
"""


import argparse
import math
import time
from statistics import NormalDist

import dask
import dask.array as da
import numpy as np
import torch
from distributed import Client, LocalCluster

import polysample as ps
import polysample.dask

LEVELS = (0.01, 0.5, 0.99, 0.999)
TOP = 50.0  # histogram range [0, TOP): P(X >= 50) = P(Z >= 3.91) = 4.6e-5
BINS = 50_000  # bins of 0.001: a quantile is exact to half a bin after interpolation


def estimate(draws: int, chunk: int, seed: int = 2026) -> dict[str, object]:
    """Mean (with its standard error) and quantiles of ``draws`` LogNormal(0, 1) values, on
    whichever Dask scheduler is active (a ``distributed.Client`` once one is created)."""
    dist = ps.LogNormal(torch.tensor(0.0), torch.tensor(1.0), backend="torch")
    x = polysample.dask.sample(dist, (draws,), chunks=chunk, seed=seed)
    counts, edges = da.histogram(x, bins=BINS, range=(0.0, TOP))
    # One pass over the chunks computes all three reductions.
    mean, var, counts = dask.compute(x.mean(dtype=np.float64), x.var(dtype=np.float64), counts)
    cdf = np.cumsum(counts) / draws
    quantiles = {}
    for q in LEVELS:
        i = int(np.searchsorted(cdf, q))  # the bin where the CDF crosses q
        below = cdf[i - 1] if i else 0.0
        quantiles[q] = float(edges[i] + (q - below) / (cdf[i] - below) * (edges[i + 1] - edges[i]))
    return {"mean": float(mean), "stderr": math.sqrt(float(var) / draws),
            "quantiles": quantiles, "chunks": x.numblocks[0]}


def report(result: dict[str, object], draws: int, seconds: float) -> str:
    lines = [f"{draws:.0e} draws in {result['chunks']} chunks, {seconds:.1f} s "
             f"({draws / seconds:.3g} draws/s)",
             f"mean     {result['mean']:.6f} +- {result['stderr']:.1e}   exact "
             f"{math.exp(0.5):.6f}"]
    for q, value in result["quantiles"].items():  # type: ignore[attr-defined]
        exact = math.exp(NormalDist().inv_cdf(q))
        lines.append(f"q{q:<7} {value:.4f}   exact {exact:.4f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--draws", type=float, default=1e8)
    p.add_argument("--chunk", type=float, default=1e7)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--scheduler", help="address of a running Dask scheduler")
    args = p.parse_args(argv)
    draws, chunk = int(args.draws), int(args.chunk)
    cluster = None if args.scheduler else LocalCluster(
        n_workers=args.workers, threads_per_worker=1, dashboard_address=None)
    with Client(args.scheduler or cluster) as client:
        t0 = time.perf_counter()
        result = estimate(draws, chunk)
        seconds = time.perf_counter() - t0
        print(f"{len(client.scheduler_info()['workers'])} workers")
        print(report(result, draws, seconds))
    if cluster is not None:
        cluster.close()


if __name__ == "__main__":
    main()
