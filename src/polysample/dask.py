"""Draws larger than one machine: a polysample distribution sampled into a Dask array.

``polysample.dask.sample(dist, sample_shape, chunks=..., seed=...)`` returns a lazy
``dask.array.Array`` of shape ``sample_shape + batch_shape + event_shape``. Each chunk is drawn
where Dask runs it (a worker, a thread) by the distribution's own backend, as
``dist.sample(chunk_shape, seed=chunk_seed)`` converted to NumPy. So:

* **Streams.** Chunk ``k`` (its C-order position in the grid of chunks) draws from
  ``numpy.random.SeedSequence(seed).spawn(n_chunks)[k]``: chunks never share a stream, and a
  chunk's values depend only on the seed, the chunks and ``k``, never on which worker drew it,
  when, or how many workers there are. The same seed and chunks give the same array on any
  cluster, and a chunk Dask recomputes (a lost worker) comes back identical.
* **Backend.** Resolved here, on the client, and pinned: a worker draws with the backend the
  client would have used, whatever its own configuration. Workers need that backend installed.
* **Parameters.** The distribution, with its parameters as given, is one node of the graph
  that every chunk task refers to: shipped once per worker that needs it, never copied into
  each task. Chunks split the sample dimensions only; batch and event dimensions stay whole in
  every chunk, and the backend broadcasts the parameters inside each chunk, as ``sample()`` does
  (a batch too large for one chunk belongs in the sample dimensions).

No gradients: :func:`rsample` raises :class:`~polysample.NotReparameterizableError`.

Needs ``dask`` (``pip install "polysample[dask]"``); ``import polysample`` does not import this
module or Dask.
"""

from __future__ import annotations

import copy
import numbers
import uuid
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.distributions as td

from .core.distributions import (
    Independent,
    MixtureSameFamily,
    PolysampleDistribution,
    TransformedDistribution,
    _routable,
    check_sample_shape,
    wrap,
)
from .core.errors import InvalidParameterError, NotReparameterizableError
from .core.seeds import as_seed_sequence

__all__ = ["sample", "rsample", "chunk_seed"]

Chunks = int | str | Sequence[Any] | None


def _dask_array() -> Any:
    try:
        import dask.array as da
    except ImportError as exc:
        raise ImportError(
            f"polysample.dask needs Dask, which is not installed ({exc}). Install it with: "
            'pip install "polysample[dask]".') from None
    return da


def chunk_seed(seed: np.random.SeedSequence, k: int) -> np.random.SeedSequence:
    """The stream of chunk ``k``: ``seed.spawn(n)[k]`` for any ``n > k``, without spawning
    (``spawn`` would advance ``seed``, so a second array from it would differ)."""
    return np.random.SeedSequence(seed.entropy, spawn_key=(*seed.spawn_key, k),
                                  pool_size=seed.pool_size)


def _pinned(dist: Any, component: bool = False) -> Any:
    """A shallow copy of ``dist`` whose every polysample component names its backend (the one
    that resolves here), so that workers draw with it whatever their own configuration. A
    combinator's component that polysample does not route (a subclass of a torch class, a Pyro
    distribution) is kept as it is, as the combinators keep it: it draws itself, seeded per
    chunk."""
    if not isinstance(dist, td.Distribution):
        raise InvalidParameterError(
            f"Expected a polysample (or torch) distribution, e.g. polysample.Normal(0., 1.). "
            f"Received: {type(dist).__name__}.")
    new: Any = copy.copy(dist)
    if isinstance(dist, PolysampleDistribution):
        if dist.backend is None:
            new._ps_backend = dist._ps_resolve()  # a registered Backend pickles by name
        return new
    if isinstance(dist, Independent | TransformedDistribution):
        new.base_dist = _pinned(dist.base_dist, True)
        return new
    if isinstance(dist, MixtureSameFamily):
        new._mixture_distribution = _pinned(dist.mixture_distribution, True)
        new._component_distribution = _pinned(dist.component_distribution, True)
        return new
    if component and not _routable(dist):
        return dist
    return _pinned(wrap(dist))  # a torch distribution: routed, or UnsupportedFamilyError


def _dtype(dist: Any) -> np.dtype[Any]:
    """The NumPy dtype of ``dist``'s draws, known without drawing."""
    if isinstance(dist, PolysampleDistribution):
        dtype = dist._ps_params().dtype
    elif isinstance(dist, Independent | TransformedDistribution):
        return _dtype(dist.base_dist)
    elif isinstance(dist, MixtureSameFamily):
        return _dtype(dist.component_distribution)
    else:  # a component polysample does not route: the dtype of an empty draw
        dtype = dist.sample(torch.Size((0,))).dtype
    try:
        return np.dtype(torch.empty((), dtype=dtype).numpy().dtype)
    except TypeError:  # bfloat16: NumPy has no such dtype
        raise InvalidParameterError(
            f"polysample.dask.sample draws into a NumPy-backed Dask array: expected parameters "
            f"of a dtype NumPy has. Received: {str(dtype).removeprefix('torch.')} parameters. "
            "Pass float32 parameters (and cast the draws where you need "
            f"{str(dtype).removeprefix('torch.')}).") from None


def _check_device(dist: Any) -> None:
    """Draws go into NumPy chunks: parameters on the meta device have no values to draw."""
    if isinstance(dist, Independent | TransformedDistribution):
        return _check_device(dist.base_dist)
    if isinstance(dist, MixtureSameFamily):
        return _check_device(dist.component_distribution)
    if isinstance(dist, PolysampleDistribution) and dist._ps_params().device.type == "meta":
        raise InvalidParameterError(
            "polysample.dask.sample draws values into NumPy chunks: expected parameters on a "
            "device with values (cpu, cuda). Received: parameters on the meta device (shapes "
            "without values). Give the parameters on a real device.")
    return None


def _chunk_entry(c: Any, chunks: Any) -> Any:
    """One entry of ``chunks``: a NumPy integer as an int; a size below 1 (but -1, "the whole
    dimension"), a fraction or a bool refused."""
    if isinstance(c, bool):
        raise InvalidParameterError(f"Expected chunks as positive ints, 'auto' or -1. "
                                    f"Received: {chunks!r} (a bool).")
    if isinstance(c, numbers.Integral):
        c = int(c)
        if c == 0 or c < -1:
            raise InvalidParameterError(
                f"Expected chunks of at least 1 value (or -1 for a whole dimension, 'auto' to "
                f"let Dask choose). Received: {chunks!r}.")
        return c
    if isinstance(c, numbers.Real):
        raise InvalidParameterError(
            f"Expected chunks as whole numbers of values (ints), 'auto' or -1. Received: "
            f"{chunks!r}.")
    if isinstance(c, tuple | list):
        return tuple(_chunk_entry(x, chunks) for x in c)
    return c


def _chunks(chunks: Chunks, shape: tuple[int, ...], trailing: tuple[int, ...],
            dtype: np.dtype[Any]) -> tuple[tuple[int, ...], ...]:
    """Dask chunks of the whole array; ``chunks`` speaks of the sample dimensions (the batch
    and event dimensions are whole), or of every dimension with the trailing ones whole."""
    from dask.array.core import normalize_chunks

    ns, full = len(shape), shape + trailing
    if isinstance(chunks, numbers.Number):
        chunks = _chunk_entry(chunks, chunks)
    if chunks is None or isinstance(chunks, int | str | dict):
        if isinstance(chunks, dict):
            raise InvalidParameterError(
                f"Expected chunks as an int, 'auto' or a tuple over the sample dimensions. "
                f"Received: {chunks!r}.")
        per: tuple[Any, ...] = (chunks if chunks is not None else "auto",) * ns
    else:
        given = tuple(_chunk_entry(c, chunks) for c in chunks)
        if len(given) == len(full) and len(full) > ns:
            for d, (c, size) in enumerate(zip(given[ns:], trailing)):
                if c not in (-1, None, size, (size,)):
                    raise InvalidParameterError(
                        f"polysample.dask.sample splits the sample dimensions only: the batch "
                        f"and event dimensions {trailing} stay whole in every chunk. Received "
                        f"chunks {c!r} for dimension {ns + d} (size {size}). Give chunks for "
                        f"the sample dimensions {shape} only, or -1 for the others.")
            given = given[:ns]
        if len(given) != ns:
            raise InvalidParameterError(
                f"Expected chunks for the {ns} sample dimension(s) of shape {shape} (an int, "
                f"'auto', or one entry per sample dimension). Received: {chunks!r}.")
        per = given
    try:
        return tuple(normalize_chunks(per + (-1,) * len(trailing), shape=full, dtype=dtype))
    except (ValueError, TypeError, ZeroDivisionError) as exc:
        raise InvalidParameterError(
            f"Invalid chunks {chunks!r} for sample shape {shape}: {exc} Expected an int, "
            "'auto', or one entry per sample dimension.") from None


def _draw_chunk(dist: Any, entropy: Any, spawn_key: tuple[int, ...], pool_size: int,
                ns: int, block_info: Any = None) -> np.ndarray:
    """One chunk, drawn where Dask runs this task (``map_blocks`` gives its place)."""
    info = block_info[None]
    shape = tuple(info["chunk-shape"][:ns])
    k = int(np.ravel_multi_index(info["chunk-location"][:ns], info["num-chunks"][:ns])) if ns else 0
    seed = np.random.SeedSequence(entropy, spawn_key=(*spawn_key, k), pool_size=pool_size)
    x = dist.sample(torch.Size(shape), seed=seed)
    return x.detach().cpu().numpy()


def sample(dist: Any, sample_shape: Any = (), *, chunks: Chunks = "auto",
           seed: int | np.random.SeedSequence | None = None) -> Any:
    """Draw ``sample_shape`` values of ``dist`` as a lazy Dask array, chunk by chunk.

    Args:
        dist: a polysample distribution (a torch one is routed through ``polysample.wrap``).
            Its backend is resolved now and pinned: every chunk is drawn by it.
        sample_shape: leading dimensions of the result, e.g. ``(10**9,)``.
        chunks: how to split the sample dimensions: an int (values per chunk along each),
            a tuple with one entry per sample dimension (Dask's forms: ints, tuples of block
            sizes, ``-1``, ``"auto"``), or ``"auto"`` (Dask's ``array.chunk-size``). A tuple
            may also cover the batch and event dimensions if those entries are ``-1`` (or the
            full size): they are never split.
        seed: an ``int`` or ``numpy.random.SeedSequence``; chunk ``k`` (C order) draws from
            ``SeedSequence(seed).spawn(n_chunks)[k]``. ``None`` picks fresh entropy now, once:
            the array is still one fixed draw (recomputed chunks repeat their values).

    Returns:
        A ``dask.array.Array`` of shape ``sample_shape + batch_shape + event_shape`` and the
        dtype ``dist.sample()`` returns (as NumPy: float32 for float32 parameters, int64 for
        ``Categorical``). Same seed and chunks give the same values on any cluster, whichever
        worker draws which chunk.

    Raises:
        InvalidParameterError: a bad ``sample_shape``, ``chunks`` (one splitting a batch or
            event dimension) or ``seed``, or something that is not a distribution.
        ImportError: Dask is not installed.
    """
    da = _dask_array()
    import dask
    from dask.base import tokenize

    shape = tuple(check_sample_shape(sample_shape))
    pinned = _pinned(dist)
    trailing = tuple(pinned.batch_shape + pinned.event_shape)
    _check_device(pinned)
    dtype = _dtype(pinned)
    root = as_seed_sequence(seed) if seed is not None else np.random.SeedSequence()
    full_chunks = _chunks(chunks, shape, trailing, dtype)
    # Unique per call: a distribution's pickle is not deterministic, so no content hash
    # could tell two calls with equal parameters apart from two with different ones.
    token = tokenize(shape, full_chunks, str(root.entropy), root.spawn_key, uuid.uuid4().hex)
    # One node holds the distribution; every chunk task refers to it (a Blockwise layer, so
    # Dask fuses the draw with what follows it chunk by chunk, e.g. a mean's partial sums).
    node = dask.delayed(pinned, name=f"polysample-distribution-{token}", traverse=False)
    return da.map_blocks(_draw_chunk, node, root.entropy, tuple(root.spawn_key),
                         root.pool_size, len(shape), chunks=full_chunks, dtype=dtype,
                         meta=np.empty((0,) * len(full_chunks), dtype=dtype),
                         name=f"polysample-sample-{token}")


def rsample(dist: Any, sample_shape: Any = (), *, chunks: Chunks = "auto",
            seed: int | np.random.SeedSequence | None = None) -> Any:
    """Refused: a Dask array carries no autograd graph, so there are no gradients to give.

    Raises:
        NotReparameterizableError: always (a ``NotImplementedError``, as ``rsample()`` on a
            family without pathwise gradients), saying what to do instead.
    """
    raise NotReparameterizableError(
        "polysample.dask.rsample() cannot give pathwise gradients: the chunks of a Dask array "
        "are NumPy arrays computed on workers, outside any torch autograd graph. Use "
        "polysample.dask.sample() for values (Monte Carlo estimates, data sets), and "
        "dist.rsample() in torch where gradients are needed (for example on a minibatch).")
