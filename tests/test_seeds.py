"""Seeds (DESIGN.md section 6), on every available backend.

``manual_seed`` roots every backend's global stream; ``seed=`` never touches a global stream;
processes forked by ``multiprocessing`` or a ``DataLoader`` never repeat each other's draws.
"""

from __future__ import annotations

import multiprocessing as mp

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

import polysample as ps
from conftest import AVAILABLE


def _family(backend: str) -> str:
    """A continuous family the backend draws (Normal wherever it is offered)."""
    fams = ps.load_backend(backend).families()
    for candidate in ("Normal", "Uniform", "Exponential", "Gamma"):
        if candidate in fams:
            return candidate
    raise AssertionError(f"backend {backend} offers none of the basic families")


def _dist(backend: str) -> object:
    from polysample.conformance.grids import example_params

    family = _family(backend)
    return getattr(ps, family)(**example_params(family, (2,)), backend=backend)


@pytest.fixture(params=AVAILABLE)
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


#: Backends whose library deadlocks in a forked child once the parent has used it. Their
#: users need the "spawn" or "forkserver" start method (DataLoader(multiprocessing_context=...)).
FORK_UNSAFE = {
    "tfp": "JAX is multithreaded: os.fork() after JAX has run deadlocks in the child "
           "(JAX warns so itself)",
    "tfp-tf": "TensorFlow's runtime threads do not survive os.fork(): the child deadlocks",
}


@pytest.fixture
def fork_backend(backend: str) -> str:
    if backend in FORK_UNSAFE:
        pytest.skip(FORK_UNSAFE[backend])
    return backend


def test_manual_seed_makes_the_global_stream_reproducible(backend: str) -> None:
    d = _dist(backend)
    ps.manual_seed(0)
    a = d.sample((16,))  # type: ignore[attr-defined]
    b = d.sample((16,))  # type: ignore[attr-defined]
    ps.manual_seed(0)
    assert torch.equal(a, d.sample((16,)))  # type: ignore[attr-defined]
    assert torch.equal(b, d.sample((16,)))  # type: ignore[attr-defined]
    ps.manual_seed(1)
    assert not torch.equal(a, d.sample((16,)))  # type: ignore[attr-defined]


def test_manual_seed_accepts_a_seed_sequence(backend: str) -> None:
    d = _dist(backend)
    ps.manual_seed(np.random.SeedSequence(42))
    a = d.sample((16,))  # type: ignore[attr-defined]
    ps.manual_seed(np.random.SeedSequence(42))
    assert torch.equal(a, d.sample((16,)))  # type: ignore[attr-defined]


def test_per_call_seed_does_not_touch_the_global_stream(backend: str) -> None:
    d = _dist(backend)
    ps.manual_seed(3)
    expected = d.sample((16,))  # type: ignore[attr-defined]
    ps.manual_seed(3)
    d.sample((16,), seed=99)  # type: ignore[attr-defined]
    d.sample((16,), seed=np.random.SeedSequence(5))  # type: ignore[attr-defined]
    assert torch.equal(expected, d.sample((16,)))  # type: ignore[attr-defined]


def test_seed_sequence_children_give_different_streams(backend: str) -> None:
    d = _dist(backend)
    parent = np.random.SeedSequence(7)
    c0, c1 = parent.spawn(2)
    a, b = (d.sample((16,), seed=s) for s in (c0, c1))  # type: ignore[attr-defined]
    assert not torch.equal(a, b)
    assert torch.equal(a, d.sample((16,), seed=np.random.SeedSequence(7, spawn_key=(0,))))  # type: ignore[attr-defined]


def test_manual_seed_also_seeds_torch_default_generator() -> None:
    ps.manual_seed(11)
    a = torch.rand(4)
    ps.manual_seed(11)
    assert torch.equal(a, torch.rand(4))


# --------------------------------------------------------------------------- fork
def _child_draw(backend: str, queue: mp.Queue) -> None:  # type: ignore[type-arg]
    queue.put(_dist(backend).sample((16,)).tolist())  # type: ignore[attr-defined]


def test_forked_processes_draw_different_values(fork_backend: str) -> None:
    backend = fork_backend
    d = _dist(backend)
    ps.manual_seed(0)
    d.sample((16,))  # type: ignore[attr-defined]  # the parent's stream is in use before forking
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    children = [ctx.Process(target=_child_draw, args=(backend, queue), daemon=True)
                for _ in range(2)]
    for c in children:
        c.start()
    try:
        results = [queue.get(timeout=60) for _ in children]
    finally:
        for c in children:
            c.join(10)
            if c.is_alive():  # a hung child must not hang the test session
                c.kill()
    assert [c.exitcode for c in children] == [0, 0]
    parent_next = d.sample((16,)).tolist()  # type: ignore[attr-defined]
    assert results[0] != results[1]
    assert parent_next not in results


class _DrawDataset(Dataset):  # type: ignore[type-arg]
    def __init__(self, backend: str) -> None:
        self.backend = backend

    def __len__(self) -> int:
        return 4

    def __getitem__(self, i: int) -> torch.Tensor:
        return _dist(self.backend).sample((8,))  # type: ignore[attr-defined]


def _loader_draws(backend: str) -> list[torch.Tensor]:
    loader = DataLoader(_DrawDataset(backend), batch_size=None, num_workers=2,
                        multiprocessing_context="fork", timeout=60)
    return list(loader)


def test_dataloader_workers_draw_different_values_reproducibly(fork_backend: str) -> None:
    backend = fork_backend
    ps.manual_seed(0)
    first = _loader_draws(backend)
    # items 0 and 1 come from different workers (round-robin), 0 and 2 from the same one
    for i in range(len(first)):
        for j in range(i + 1, len(first)):
            assert not torch.equal(first[i], first[j]), (i, j)
    ps.manual_seed(0)  # seeds torch, hence the DataLoader's worker seeds
    again = _loader_draws(backend)
    assert all(torch.equal(a, b) for a, b in zip(first, again))


_TORCH_SEEDED_SCRIPT = '''
import json, multiprocessing as mp, torch, polysample as ps
from torch.utils.data import DataLoader, Dataset

class Draws(Dataset):
    def __len__(self):
        return 4
    def __getitem__(self, i):
        return torch.cat([ps.Normal(torch.zeros(2), 1.0, backend=b).sample()
                          for b in ("torch", "numpy")])

def load(init=None):
    torch.manual_seed(0)  # torch's own seed only: polysample's root is never seeded here
    return [x.tolist() for x in DataLoader(Draws(), batch_size=None, num_workers=2,
                                           multiprocessing_context="fork",
                                           worker_init_fn=init, timeout=60)]

def init(worker_id):
    torch.manual_seed(100 + worker_id)

def child(queue):
    torch.manual_seed(5)
    queue.put(ps.Normal(torch.zeros(3), 1.0, backend="torch").sample().tolist())

if __name__ == "__main__":
    out = {"workers": load(), "worker_init_fn": load(init)}
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    proc = ctx.Process(target=child, args=(queue,))
    proc.start()
    out["child"] = queue.get(timeout=60)
    proc.join(30)
    torch.manual_seed(5)
    out["parent"] = ps.Normal(torch.zeros(3), 1.0, backend="torch").sample().tolist()
    print(json.dumps(out))
'''


def test_torch_seeds_in_forked_workers_are_kept_and_make_their_draws_reproducible(tmp_path):
    # The standard PyTorch recipes: torch.manual_seed in the parent (the DataLoader's worker
    # seeds), torch.manual_seed in a worker_init_fn or in a forked child. Their torch draws
    # (and the other backends' in a DataLoader worker) are reproducible run after run; the
    # first unseeded draw used to reseed torch's generator in every forked child from
    # polysample's unseeded root, so they differed on every run.
    import json
    import subprocess
    import sys

    script = tmp_path / "draws.py"
    script.write_text(_TORCH_SEEDED_SCRIPT)
    runs = []
    for _ in range(2):
        done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                              timeout=240)
        assert done.returncode == 0, done.stderr
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    assert runs[0] == runs[1]
    for key in ("workers", "worker_init_fn"):
        rows = [tuple(r) for r in runs[0][key]]
        assert len(set(rows)) == 4, (key, rows)  # distinct per item and worker
    assert runs[0]["workers"] != runs[0]["worker_init_fn"]
    assert runs[0]["child"] == runs[0]["parent"]  # the child's torch.manual_seed(5) is kept


def test_a_global_stream_name_made_by_two_modules_warns() -> None:
    # Streams of one name give the same values after manual_seed: a stream name copied from
    # another backend's code (the example plugin's "scipy") makes two backends repeat each
    # other's unseeded draws. The second module to make one is warned; one module making its
    # stream again (a second instance, a reload) is not.
    import types

    from polysample.plugin import GlobalStream

    def make(module: str) -> object:
        ns = types.ModuleType(module)
        ns.GlobalStream = GlobalStream
        exec("s = GlobalStream('copied-name', lambda ss: np.random.default_rng(ss))",
             {**vars(ns), "np": np, "__name__": module})
        return ns

    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        make("first_plugin")
        make("first_plugin")  # the same module again: no warning
    with pytest.warns(RuntimeWarning, match="GlobalStream\\('copied-name'\\) is made by module "
                      "'copycat_plugin' and already by 'first_plugin'"):
        make("copycat_plugin")
    with pytest.raises(ps.InvalidParameterError, match="non-empty str"):
        GlobalStream("", lambda ss: ss)
