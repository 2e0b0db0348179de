"""Seeds: one root ``numpy.random.SeedSequence``, one derived stream per backend.

* :func:`manual_seed` replaces the root. Every backend's global stream is derived from it
  (spawn key = a stable hash of the backend's name), so seeding once seeds them all. The torch
  backend's global stream is torch's default generator, which ``manual_seed`` also seeds.
* ``seed=`` on a call (an ``int`` or a ``SeedSequence``) gives a reproducible draw without
  touching any global stream: same backend + same seed + same arguments => identical values.
* After ``fork`` (``multiprocessing``, a PyTorch ``DataLoader`` worker) the child re-derives every
  stream, mixing in the DataLoader worker seed (reproducible, distinct per worker and epoch) or,
  outside a DataLoader, the process id, so that children never repeat each other's draws. A
  DataLoader worker whose parent never called :func:`manual_seed` roots its streams in the
  worker seed (as a spawned worker does), so ``torch.manual_seed`` in the parent makes them
  reproducible. torch's default generator is reseeded only if nothing seeded it in the child
  since the fork: a DataLoader worker's (PyTorch seeds it with the worker seed), one seeded by
  a ``worker_init_fn`` or by ``torch.manual_seed`` is kept.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sys
import threading
import warnings
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

import numpy as np
import torch

from .errors import InvalidParameterError, type_name

__all__ = [
    "manual_seed",
    "as_seed_sequence",
    "seed_sequence_from",
    "global_seed_sequence",
    "GlobalStream",
    "torch_generator_from",
    "preserved_global_seed",
]

_lock = threading.Lock()
_root: np.random.SeedSequence = np.random.SeedSequence()
_generation = 0
_fork_key: tuple[int, ...] = ()
_fork_pending = False
_seeded = False  # manual_seed was called in this process
_spawn_checked = False  # whether this is a spawned DataLoader worker was decided
#: ``torch.initial_seed()`` when this process was forked (None: not forked): a different value
#: at the first draw means torch's default generator was seeded in the child since.
torch_seed_at_fork: int | None = None

T = TypeVar("T")


def _name_key(name: str) -> int:
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "little")


def as_seed_sequence(seed: object, advice: str = "Pass e.g. seed=7, or "
                     "generator=torch.Generator() for a torch stream.") -> np.random.SeedSequence:
    """Validate a user seed (non-negative ``int`` or ``SeedSequence``) and return a SeedSequence;
    ``advice`` ends the message of a seed of another type."""
    if isinstance(seed, np.random.SeedSequence):
        return seed
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
        raise InvalidParameterError(
            f"Expected seed to be a non-negative int or numpy.random.SeedSequence. "
            f"Received: seed={seed!r} of type {type_name(seed)}. {advice}"
        )
    if seed < 0:
        raise InvalidParameterError(
            f"Expected a non-negative seed. Received: seed={seed}. Use a value >= 0."
        )
    return np.random.SeedSequence(int(seed))


def manual_seed(seed: int | np.random.SeedSequence) -> None:
    """Seed every backend's global stream from one root.

    Also seeds torch's default generator (the torch backend's global stream). Backends loaded
    later are seeded too: their streams are derived from the root when first used.
    """
    global _root, _generation, _fork_key, _fork_pending, _seeded, _spawn_checked
    ss = as_seed_sequence(seed, "Pass e.g. polysample.manual_seed(7).")
    with _lock:
        _seeded = _spawn_checked = True
        _root = ss
        _fork_key = ()
        _fork_pending = False
        _generation += 1
    torch.manual_seed(int(global_seed_sequence("torch").generate_state(1, np.uint64)[0] >> 1))


@contextlib.contextmanager
def preserved_global_seed() -> Iterator[None]:
    """Run a block that calls :func:`manual_seed`, then give the caller's root back.

    The conformance suite checks that ``manual_seed`` reproduces a backend's global stream; this
    keeps that check from reseeding the caller's streams. On exit the caller's root (and torch's
    default generator state) is restored, and every backend's global stream is derived from it
    again, as after ``manual_seed`` with the caller's seed.
    """
    global _root, _generation, _fork_key, _fork_pending
    with _lock:
        saved = (_root, _fork_key, _fork_pending)
    torch_state = torch.get_rng_state()
    try:
        yield
    finally:
        with _lock:
            _root, _fork_key, _fork_pending = saved
            _generation += 1
        torch.set_rng_state(torch_state)


def _resolve_spawn() -> None:
    """Root the streams of a DataLoader worker started by ``spawn`` (or ``forkserver``).

    Such a worker imports polysample afresh, with a random root: its draws would differ on
    every run whatever the parent's :func:`manual_seed`. torch seeds the worker's own
    generator with the DataLoader's worker seed (drawn from the parent's torch generator,
    which :func:`manual_seed` seeds, plus the worker id), so the root is derived from that
    seed: reproducible, and distinct per worker and epoch, as the torch backend's stream is.
    Decided once, at the first draw (the worker's info is set before its first item).
    """
    global _spawn_checked, _root, _generation
    _spawn_checked = True
    if _seeded or _fork_key or _fork_pending:
        return  # seeded here, or forked (the fork path mixes the worker seed in)
    from torch.utils.data import get_worker_info

    info = get_worker_info()
    if info is not None:
        with _lock:
            _root = np.random.SeedSequence(int(info.seed) % (1 << 63))
            _generation += 1


def _resolve_fork() -> None:
    global _fork_key, _fork_pending, _generation, _root
    if not _spawn_checked:
        _resolve_spawn()
    if not _fork_pending:
        return
    with _lock:
        if not _fork_pending:
            return
        from torch.utils.data import get_worker_info

        info = get_worker_info()
        if info is not None and not _seeded:
            # As a spawned worker: rooted in the worker seed, which PyTorch draws from the
            # parent's generator (reproducible after torch.manual_seed in the parent).
            _root = np.random.SeedSequence(int(info.seed) % (1 << 63))
            _fork_key = ()
        else:
            mix = int(info.seed) if info is not None else os.getpid()
            _fork_key = _fork_key + (mix % (1 << 63),)
        _fork_pending = False
        _generation += 1


def _after_fork_in_child() -> None:
    global _fork_pending, torch_seed_at_fork
    _fork_pending = True
    torch_seed_at_fork = torch.initial_seed()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def global_seed_sequence(backend_name: str) -> np.random.SeedSequence:
    """The SeedSequence rooting ``backend_name``'s global stream in this process."""
    _resolve_fork()
    return np.random.SeedSequence(
        entropy=_root.entropy,
        spawn_key=tuple(_root.spawn_key) + (_name_key(backend_name),) + _fork_key,
        pool_size=_root.pool_size,
    )


def _state_key() -> tuple[int, tuple[int, ...]]:
    _resolve_fork()
    return (_generation, _fork_key)


#: The module that made the first GlobalStream of each name: a stream's name roots its values.
_stream_owners: dict[str, str] = {}


def _claim_stream_name(name: str, module: str) -> None:
    """Warn when modules other than the first make a ``GlobalStream`` of one name: the streams
    of one name give the same values after ``manual_seed`` (a name copied from another
    backend's code, say the example plugin's ``"scipy"``)."""
    with _lock:
        first = _stream_owners.setdefault(name, module)
    if first != module:
        warnings.warn(
            f"GlobalStream({name!r}) is made by module {module!r} and already by {first!r}: "
            f"streams of one name draw the same unseeded values after polysample.manual_seed, "
            "so two backends (or two streams of one backend) sharing it repeat each other's "
            "draws. Name each stream after the backend that draws from it, as registered.",
            RuntimeWarning, stacklevel=3)


class GlobalStream(Generic[T]):
    """A backend's global stream object, rebuilt after :func:`manual_seed` or a fork.

    ``GlobalStream("numpy", lambda ss: np.random.Generator(np.random.PCG64(ss)))`` gives, via
    :meth:`get`, the generator for the current root; the factory runs again only when the root
    changes or the process has forked.
    """

    def __init__(self, backend_name: str, factory: Callable[[np.random.SeedSequence], T]):
        if not isinstance(backend_name, str) or not backend_name:
            raise InvalidParameterError(
                "Expected GlobalStream(backend_name, factory) with backend_name your backend's "
                f"registered name (a non-empty str). Received: {backend_name!r}.")
        _claim_stream_name(backend_name, sys._getframe(1).f_globals.get("__name__", "?"))
        self._name = backend_name
        self._factory = factory
        self._key: tuple[int, tuple[int, ...]] | None = None
        self._obj: T | None = None
        self._lock = threading.Lock()

    def get(self) -> T:
        key = _state_key()
        if key != self._key or self._obj is None:
            with self._lock:
                if key != self._key or self._obj is None:
                    self._obj = self._factory(global_seed_sequence(self._name))
                    self._key = key
        return self._obj


def seed_sequence_from(seed: np.random.SeedSequence | torch.Generator) -> np.random.SeedSequence:
    """A SeedSequence from a per-call seed; a ``torch.Generator`` is advanced by one draw."""
    if isinstance(seed, torch.Generator):
        words = torch.randint(0, 2**62, (2,), generator=seed, device=seed.device)
        return np.random.SeedSequence([int(w) for w in words.tolist()])
    return seed


def torch_generator_from(ss: np.random.SeedSequence, device: torch.device | str = "cpu") -> torch.Generator:
    """A fresh ``torch.Generator`` on ``device`` seeded deterministically from ``ss``."""
    g = torch.Generator(device=device)
    g.manual_seed(int(ss.generate_state(1, np.uint64)[0] >> 1))
    return g
