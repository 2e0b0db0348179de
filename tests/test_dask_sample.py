"""``polysample.dask.sample``: chunks drawn on Dask workers, each from its own stream."""

from __future__ import annotations

import itertools
import json
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch

import polysample as ps

distributed = pytest.importorskip("distributed")
psd = pytest.importorskip("polysample.dask")

pytestmark = pytest.mark.xdist_group("dask")


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       dashboard_address=None)
    c = distributed.Client(cluster, set_as_default=False)
    yield c
    c.close()
    cluster.close()


def blocks(a):
    """The computed chunks of ``a`` (a NumPy array) as a list, in C order of the grid."""
    edges = [np.cumsum((0,) + c) for c in a.chunks]
    return [a[tuple(slice(e[i], e[i + 1]) for e, i in zip(edges, idx))]
            for idx in np.ndindex(*a.numblocks)]


@pytest.mark.parametrize("backend", ["torch", "numpy"])
def test_same_seed_and_chunks_give_the_same_array_on_1_and_2_workers_and_twice(client, backend):
    d = ps.Normal(torch.tensor([0.0, 5.0]), 2.0, backend=backend)
    x = psd.sample(d, (1000, 3), chunks=(300, 2), seed=11)
    workers = list(client.scheduler_info()["workers"])
    local = x.compute(scheduler="sync")  # one process, no cluster
    on_two = client.compute(x).result()
    again = client.compute(psd.sample(d, (1000, 3), chunks=(300, 2), seed=11)).result()
    on_one = client.compute(x, workers=workers[:1]).result()
    assert local.shape == (1000, 3, 2) and local.dtype == np.float32
    for other in (on_two, again, on_one):
        np.testing.assert_array_equal(local, other)
    assert not np.array_equal(local, psd.sample(d, (1000, 3), chunks=(300, 2),
                                                seed=12).compute(scheduler="sync"))


def test_chunk_k_is_the_draw_of_the_kth_spawned_seed():
    d = ps.Gamma(2.0, 3.0, backend="numpy")
    x = psd.sample(d, (10, 4), chunks=(4, 3), seed=5).compute(scheduler="sync")
    children = np.random.SeedSequence(5).spawn(x.size)
    for k, b in enumerate(blocks(psd.sample(d, (10, 4), chunks=(4, 3), seed=5))):
        np.testing.assert_array_equal(b.compute(scheduler="sync"),
                                      d.sample(b.shape, seed=children[k]).numpy())


def test_chunks_draw_from_distinct_streams_that_together_pass_the_ks_check():
    from scipy import stats

    from polysample.conformance.stats import ALPHA_CHECK, dkwm_threshold, ks_continuous

    for backend in ("torch", "numpy"):
        x = psd.sample(ps.Normal(0.0, 1.0, backend=backend), (200_000,), chunks=10_000,
                       seed=0).compute(scheduler="threads")
        parts = np.split(x, 20)  # the 20 chunks
        for a, b in itertools.combinations(parts, 2):
            # Equal, shifted or overlapping streams would share runs of values; independent
            # float32 draws share a few values by coincidence only.
            assert not np.array_equal(a, b)
            assert np.intersect1d(a, b).size < 0.01 * a.size
        v = np.sort(x.astype(np.float64))[:, None]
        d = float(ks_continuous(v, stats.norm.cdf(v))[0])
        assert d < dkwm_threshold(x.size, ALPHA_CHECK), (backend, d)


def test_batched_parameters_are_in_the_graph_once_not_per_chunk():
    loc = torch.arange(100_000, dtype=torch.float64)  # 800 kB of parameters
    x = psd.sample(ps.Normal(loc, 1.0, backend="numpy"), (40,), chunks=1, seed=0)
    assert x.numblocks == (40, 1) and x.chunks[1] == (100_000,)
    graph_bytes = len(pickle.dumps(dict(x.__dask_graph__())))
    assert graph_bytes < 2 * loc.numel() * 8, graph_bytes  # one copy, not 40
    row = x[7].compute(scheduler="sync")
    assert row.dtype == np.float64 and np.abs(row - loc.numpy()).max() < 7


def test_the_backend_resolved_on_the_client_draws_on_the_workers(client):
    with ps.use_backend("numpy"):
        x = psd.sample(ps.Normal(0.0, 1.0), (6,), chunks=6, seed=3)
    expected = ps.Normal(0.0, 1.0, backend="numpy").sample(
        (6,), seed=np.random.SeedSequence(3).spawn(1)[0])
    np.testing.assert_array_equal(client.compute(x).result(), expected.numpy())


def test_index_families_and_combinators_keep_their_dtype_and_shape():
    c = psd.sample(ps.Categorical(torch.ones(4)), (7,), chunks=3, seed=1)
    assert c.dtype == np.int64 and set(c.compute(scheduler="sync")) <= {0, 1, 2, 3}
    base = ps.Normal(torch.zeros(2, 3), 1.0, backend="numpy")
    ind = psd.sample(ps.Independent(base, 1), (5,), chunks=2, seed=0)
    assert ind.shape == (5, 2, 3) and ind.compute(scheduler="sync").shape == (5, 2, 3)
    wrapped = psd.sample(torch.distributions.Exponential(torch.tensor(2.0)), (4,), chunks=2,
                         seed=0)
    assert wrapped.dtype == np.float32 and (wrapped.compute(scheduler="sync") > 0).all()


def test_chunks_may_name_batch_dims_only_as_whole():
    d = ps.Normal(torch.zeros(3), 1.0, backend="numpy")
    assert psd.sample(d, (10,), chunks=(5, -1), seed=0).chunks == ((5, 5), (3,))
    with pytest.raises(ps.InvalidParameterError, match="splits the sample dimensions only"):
        psd.sample(d, (10,), chunks=(5, 1), seed=0)
    with pytest.raises(ps.InvalidParameterError, match="Expected chunks"):
        psd.sample(d, (10, 2), chunks=(5,), seed=0)
    with pytest.raises(ps.InvalidParameterError, match="Expected a polysample"):
        psd.sample(object(), (10,), chunks=5, seed=0)


@pytest.mark.parametrize("chunks,message", [
    (0, "at least 1 value"), (2.5, "whole numbers"), ((0,), "at least 1 value"),
    (True, "a bool"), (-2, "at least 1 value"), ((2.5,), "whole numbers")])
def test_bad_chunks_raise_invalid_parameter_error(chunks, message):
    # an outside trial: ZeroDivisionError and TypeError from Dask's own code
    d = ps.Normal(torch.zeros(2), 1.0, backend="numpy")
    with pytest.raises(ps.InvalidParameterError, match=message):
        psd.sample(d, (10,), chunks=chunks, seed=0)


def test_numpy_integer_chunks_are_ints():
    d = ps.Normal(torch.zeros(2), 1.0, backend="numpy")
    assert psd.sample(d, (10,), chunks=np.int64(4), seed=0).chunks == ((4, 4, 2), (2,))
    assert psd.sample(d, (10,), chunks=(np.int32(5),), seed=0).chunks == ((5, 5), (2,))


def test_parameters_numpy_cannot_hold_or_without_values_are_refused():
    with pytest.raises(ps.InvalidParameterError, match="Received: bfloat16 parameters"):
        psd.sample(ps.Normal(torch.zeros(2, dtype=torch.bfloat16), 1.0, backend="numpy"),
                   (4,), chunks=2, seed=0)
    meta = ps.Normal(torch.zeros(2, device="meta"), 1.0, validate_args=False)
    with pytest.raises(ps.InvalidParameterError, match="meta device"):
        psd.sample(meta, (4,), chunks=2, seed=0)
    with pytest.raises(ps.InvalidParameterError, match="meta device"):
        psd.sample(ps.Independent(meta, 1), (4,), chunks=2, seed=0)


def test_rsample_is_refused_with_the_reason():
    with pytest.raises(ps.NotReparameterizableError, match="outside any torch autograd graph"):
        psd.rsample(ps.Normal(0.0, 1.0), (10,), chunks=5, seed=0)
    assert issubclass(ps.NotReparameterizableError, NotImplementedError)


def test_import_polysample_does_not_import_dask():
    code = ("import sys, json, polysample; "
            "print(json.dumps([m for m in ('dask', 'distributed', 'polysample.dask') "
            "if m in sys.modules]))")
    env = {k: v for k, v in os.environ.items() if not k.startswith("POLYSAMPLE_")}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []


class _MyGamma(torch.distributions.Gamma):
    """A subclass polysample does not route (importable, so it pickles by reference)."""


def test_combinators_with_shape_changing_transforms_and_unrouted_components():
    # The chunk rule holds for a TransformedDistribution whose transform adds an event
    # dimension (torch wraps the base in its own Independent, which drew from the global
    # stream), and a combinator's component that polysample does not route is kept, as the
    # combinators keep it (it was refused with UnsupportedFamilyError).
    d = ps.TransformedDistribution(ps.Normal(torch.zeros(2, 3), torch.ones(2, 3)),
                                   [torch.distributions.StickBreakingTransform()],
                                   backend="numpy")
    x = psd.sample(d, (8,), chunks=4, seed=3).compute(scheduler="sync")
    children = np.random.SeedSequence(3)
    first = d.sample((4,), seed=psd.chunk_seed(children, 0)).numpy()
    np.testing.assert_array_equal(x[:4], first)
    ind = ps.Independent(_MyGamma(torch.full((3,), 2.0), 1.0), 1)
    y = psd.sample(ind, (6,), chunks=3, seed=4).compute(scheduler="sync")
    assert y.shape == (6, 3) and y.dtype == np.float32 and (y > 0).all()
    np.testing.assert_array_equal(y, psd.sample(ind, (6,), chunks=3, seed=4).compute(
        scheduler="sync"))
