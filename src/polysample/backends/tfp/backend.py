"""The TFP backend class (see the package docstring and ``docs/backends/tfp.md``).

This module imports neither JAX nor TensorFlow; :mod:`.substrates` does, on first use.

**Shape buckets.** Every distinct input shape is a new compiled program (0.05-2 s on JAX, a new
trace on TensorFlow), so calls of at most :data:`BUCKET_MAX` values share programs: each
parameter is broadcast to ``batch_shape + its own event shape``, the batch flattened and repeated
once per sample, the rows padded to the bucket's size (:func:`bucket_size`) with copies of the
first row, one value drawn per row, and the first ``n * B`` rows reshaped to
``sample_shape + batch_shape + event_shape``. With gradients this is torch code outside the
autograd Function, so they flow back through torch's own gather and cat; the padding rows are
detached, so whatever their gradients are (even NaN) they never reach a parameter. Without
gradients the same rows are laid out by NumPy. ``log_prob`` is bucketed the same way
(parameters and value broadcast together). Larger calls run a program of their exact shapes
(on JAX compiled at LLVM -O2, see ``substrates.compiler_options``), at TFP's own speed, up to
one chunk (:data:`CHUNK_ELEMENTS`); on JAX, draws of more rows of the families whose
samplers run as fast so (``TfpFamily.chunked``) run in chunks, calls of one program per
family, dtype and event shapes laid out as a bucket's, each with a seed derived from the
call's (:func:`_chunk_words`). On
TensorFlow, whose graphs take any row count (``Substrate.rows_polymorphic``), the rows are not
padded and one-value calls get a row axis too: one graph per family, dtype and event shapes
serves them all.
"""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
import itertools
import math
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from ...core.backend import Drawer, Row, Seed, TableBackend
from ...core.config import backend_options
from ...core.errors import (
    BackendContractError,
    BackendUnavailableError,
    ConfigError,
    InvalidParameterError,
    NotReparameterizableError,
    PolysampleError,
    SampleTooLargeError,
    quoted,
)
from ...core.families import FAMILIES
from ...core.params import Params
from ...core.seeds import GlobalStream, seed_sequence_from
from ...core.torch_fixes import WIDE_SCORE_ABOVE
from .._math import redraw_outside_support
from .families import MIXTURE_COMPONENTS, TFP_FAMILIES, WIDEN_BELOW, TfpFamily
from .substrates import (
    LARGEST_BUCKET,
    ProgramKey,
    Substrate,
    load_substrate,
    substrate_importable,
)

__all__ = ["TfpBackend", "SUBSTRATES", "ENV_VAR", "BUCKET_MAX", "bucket_size"]

SUBSTRATES = ("jax", "tensorflow")
ENV_VAR = "POLYSAMPLE_TFP_SUBSTRATE"
#: The keys of [tool.polysample.tfp] (an unknown key is a ConfigError).
OPTIONS = {"substrate": '"jax" (default) or "tensorflow"',
           "compilation_cache": "the JAX compiled-program cache: a directory (relative to the "
                                "file), true (the default directory) or false (none)"}

#: Calls of at most this many values (``prod(sample_shape) * prod(batch_shape)``) run in shape
#: buckets. A bucketed call costs more than its exact program (parameters laid out per row,
#: padding, lighter XLA optimisation): a fixed 20-40 us, and 1.2-2.4 times the time of calls of
#: 513-4096 values (measured, docs/backends/tfp.md), where sharing programs helps little:
#: calls that large rarely come in many shapes (the conformance suite compiles as many programs
#: with a limit of 4096).
BUCKET_MAX = LARGEST_BUCKET  # 512
#: ... and whose padded parameters have at most this many elements each (a bucket of 512
#: 3x3 matrices has 4608): rows with large events cost real work, so padding them would cost
#: real time.
BUCKET_ELEMENTS = 1 << 16

#: On JAX, draws of the ``TfpFamily.chunked`` families of more rows than one chunk holds run
#: in chunks: calls of the family's chunk program, whose rows hold at most this many elements
#: of each parameter (2^15 rows of scalars, 2^11 rows of 3x3 matrices), each chunk seeded by
#: words derived from the call's. One program per family, dtype and event shapes then draws
#: every large sample (the conformance suite's grids at every n), where each shape compiled
#: its own (about 1 s each).
CHUNK_ELEMENTS = 1 << 15

#: On TensorFlow, draws and scores of more than BUCKET_MAX rows whose parameters, laid out one
#: row per value, have at most this many elements each also run the family's row-polymorphic
#: graph (``Substrate.rows_polymorphic``) instead of a graph traced for their exact shapes.
POLY_ELEMENTS = 1 << 22

#: Call signatures remembered per backend (a signature's plan is a few hundred bytes).
_PLANS_MAX = 4096


def _resolve_substrate() -> tuple[str, str]:
    """The configured substrate and where it came from: env var > [tool.polysample.tfp] > jax."""
    env = os.environ.get(ENV_VAR)
    if env is not None and env.strip():
        value: object = env.strip()
        source = f"environment variable {ENV_VAR}"
    else:
        opts, where = backend_options("tfp", OPTIONS)
        if "substrate" not in opts:
            return "jax", "default"
        value = opts["substrate"]
        source = f"{where}.substrate"
    if not isinstance(value, str) or value not in SUBSTRATES:
        raise ConfigError(
            f"Expected the tfp substrate to be one of {list(SUBSTRATES)}. "
            f"Received: {value!r} from {source}. Set it to \"jax\" (default) or \"tensorflow\"."
        )
    return value, source


class _Bridge(torch.autograd.Function):
    """torch <-> substrate: forward runs the compiled program, backward the substrate's VJP.

    The backward pass goes through :class:`_Vjp`, so it also runs under ``vmap``: batched
    gradients (``autograd.grad(..., is_grads_batched=True)``, ``gradcheck(...,
    check_batched_grad=True)``, ``torch.func.vmap`` over a backward pass). The forward pass is
    never batched: the core refuses draws and scores of backends that compute outside torch
    inside ``torch.func`` transforms (``NotTraceableError``).
    """

    @staticmethod
    def forward(ctx: Any, call: _Call, *tensors: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.call = call
        ctx.save_for_backward(*tensors)
        ctx.watch = tuple(i for i, t in enumerate(tensors)
                          if t.requires_grad and t.is_floating_point())
        return call.forward(tensors)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> Any:  # type: ignore[override]
        if torch.is_grad_enabled():
            raise NotReparameterizableError(
                f"Second-order gradients through the tfp backend are not supported "
                f"({ctx.call.family}): its backward pass runs in {ctx.call.sub.name} and is not "
                "itself differentiable by torch. Call backward()/autograd.grad without "
                "create_graph=True, or use backend='torch' for higher-order derivatives."
            )
        tensors = ctx.saved_tensors
        # Differentiate w.r.t. every input that required gradients in forward, even if this
        # backward needs fewer of them: one VJP program per call signature.
        mask = ctx.watch
        if not mask:
            grads: Sequence[torch.Tensor] = ()
        elif torch._C._functorch.is_functorch_wrapped_tensor(grad):  # under torch.func.vmap
            grads = _Vjp.apply(ctx.call, mask, grad, *tensors)
        else:
            grads = _Vjp.forward(ctx.call, mask, grad, *tensors)
        out: list[torch.Tensor | None] = [None] * len(tensors)
        for i, g in zip(mask, grads):
            out[i] = g
        return (None, *out)


class _Vjp(torch.autograd.Function):
    """The substrate's VJP of one call, for a cotangent that may carry a batch dimension.

    A plain cotangent runs the VJP once. A batched one runs it once per batch element (the
    same compiled program each time) and stacks the results: under ``torch.func.vmap`` through
    :meth:`vmap`, under the vmap prototype that ``is_grads_batched=True`` (and so
    ``gradcheck``'s batched check) uses through :func:`_legacy_batched`. Never differentiated:
    :class:`_Bridge` refuses a backward pass that builds a graph.
    """

    @staticmethod
    def forward(call: _Call, mask: tuple[int, ...], grad: torch.Tensor,  # type: ignore[override]
                *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
        batched = _legacy_batched(grad)
        if batched is None:
            return tuple(call.backward(tensors, grad, mask))
        rows, level = batched
        outs = _stack([call.backward(tensors, row, mask) for row in rows.unbind(0)])
        return tuple(torch._add_batch_dim(o, 0, level) for o in outs)  # type: ignore[attr-defined]

    @staticmethod
    def setup_context(ctx: Any, inputs: Any, output: Any) -> None:
        pass

    @staticmethod
    def vmap(info: Any, in_dims: tuple[int | None, ...], call: _Call, mask: tuple[int, ...],
             *args: torch.Tensor) -> tuple[tuple[torch.Tensor, ...], tuple[int, ...]]:
        def row(i: int) -> list[torch.Tensor]:
            return [a if d is None else a.select(d, i) for a, d in zip(args, in_dims[2:])]

        # _Vjp.apply again, not call.backward: a cotangent batched by nested vmaps is unwrapped
        # one level per call.
        outs = _stack([_Vjp.apply(call, mask, *row(i)) for i in range(info.batch_size)])
        return outs, (0,) * len(outs)


def _stack(rows: Sequence[Sequence[torch.Tensor]]) -> tuple[torch.Tensor, ...]:
    return tuple(torch.stack(column) for column in zip(*rows))


def _legacy_batched(t: torch.Tensor) -> tuple[torch.Tensor, int] | None:
    """``(rows, level)`` for a tensor batched by torch's vmap prototype (else None).

    ``autograd.grad(..., is_grads_batched=True)`` batches cotangents with the prototype
    (``torch._vmap_internals``), which calls ``autograd.Function``s with its batched tensors and
    has no extension point for them. Its batch dimension is removed here (batch first, the
    prototype's current nesting level) so the substrate sees plain tensors; the results are
    batched again at that level by the caller.
    """
    if not torch._C._functorch.is_legacy_batchedtensor(t):
        return None
    level = torch._C._vmapmode_increment_nesting()  # the current level, plus one
    torch._C._vmapmode_decrement_nesting()
    level -= 1
    rows = torch._remove_batch_dim(t, level, -1, 0)  # type: ignore[attr-defined]
    if torch._C._functorch.is_legacy_batchedtensor(rows):
        raise NotReparameterizableError(
            "Expected a cotangent batched once by autograd.grad(..., is_grads_batched=True); "
            "received one batched by nested vmaps of the vmap prototype, which the tfp "
            "backend cannot unbatch. Use torch.func.vmap over autograd.grad instead.")
    return rows, level


class _Call:
    """One compiled operation: a cache key, the substrate program and its seed."""

    __slots__ = ("sub", "family", "key", "fn", "seed", "what")

    def __init__(self, sub: Substrate, family: str, key: Any, fn: Any, seed: Any, what: str):
        self.sub, self.family, self.key, self.fn, self.seed, self.what = (
            sub, family, key, fn, seed, what)

    def forward(self, tensors: Sequence[torch.Tensor | np.ndarray]) -> torch.Tensor:
        """Run the program; ``tensors`` may be NumPy arrays (host inputs, see _Plan.inputs)."""
        sub = self.sub
        arrays = [sub.to_native(t) for t in tensors]
        try:
            out = sub.forward(self.key, self.fn, arrays, self.seed)
        except PolysampleError:
            raise
        except Exception as exc:  # noqa: BLE001 - never let a raw TFP/XLA/TF error out
            raise _wrap(exc, self.family, self.what, sub.name) from exc
        try:
            res = sub.to_torch(out)
        except Exception as exc:  # noqa: BLE001
            raise _wrap(exc, self.family, self.what, sub.name) from exc
        first = tensors[0] if tensors else None
        if not isinstance(first, torch.Tensor) or res.device == first.device:
            return res
        return res.to(first.device)

    def backward(self, tensors: Sequence[torch.Tensor], grad: torch.Tensor,
                 mask: tuple[int, ...]) -> list[torch.Tensor]:
        if not mask:
            return []
        sub = self.sub
        arrays = [sub.to_native(t) for t in tensors]
        ct = sub.to_native(grad)
        try:
            grads = sub.vjp(self.key, self.fn, arrays, self.seed, ct, mask)
        except PolysampleError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise _wrap(exc, self.family, f"{self.what} backward", sub.name) from exc
        out = []
        for i, g in zip(mask, grads):
            t = sub.to_torch(g)
            out.append(t.to(tensors[i].device) if t.device != tensors[i].device else t)
        return out


def bucket_size(rows: int) -> int:
    """The bucket of a call of ``rows`` values: 1, 8, 64, then the next power of two.

    The steps follow what a compiled program costs per call on XLA:CPU (measurements in
    docs/backends/tfp.md): the same for 1 to 8 rows (a scalar draw runs its own one-row program,
    the cheapest), then a step of about 40 us from 16 rows on (XLA splits the loops into tasks
    for its thread pool), then flat again up to a few hundred rows. Beyond 64 rows the work
    shows, so buckets double and padding never more than doubles it.
    """
    if rows <= 1:
        return 1
    if rows <= 8:
        return 8
    return max(64, 1 << (rows - 1).bit_length())


class _Plan:
    """How one call signature runs: its program, and for a bucket the torch-side reshaping.

    Exact plans (``rows == 0``) hand the inputs over unchanged. Bucket plans lay out row
    ``s * B + b`` (sample ``s``, flat batch element ``b``) for the ``rows = n * B`` real rows,
    then ``size - rows`` detached copies of row 0. A one-value call (``size == 1``) has no row
    axis at all: its program takes each parameter with its own event shape, so a scalar draw
    pays no reshaping. Where one program runs every row count (``poly``: TensorFlow's graphs,
    see ``Substrate.rows_polymorphic``) there is no padding (``size == rows``) and every call,
    one-value calls included, has a row axis: they all share that program.
    """

    __slots__ = ("key", "fn", "rows", "size", "axis", "reps", "batch", "targets", "events",
                 "lead", "flatten", "chunks", "per_chunk", "_index", "_host_index")

    key: ProgramKey
    fn: Any
    rows: int
    size: int
    axis: bool
    reps: int
    batch: int
    targets: tuple[torch.Size | None, ...]
    events: tuple[tuple[int, ...], ...]
    lead: tuple[int, ...]
    flatten: bool
    chunks: int
    per_chunk: int
    _index: dict[tuple[torch.device, int], tuple[torch.Tensor, torch.Tensor]]
    _host_index: dict[int, np.ndarray]

    @classmethod
    def build(cls, op: str, family: str, shape: tuple[int, ...], static: tuple[Any, ...],
              tensors: Sequence[torch.Tensor], ranks: Sequence[int] | None,
              program: Callable[[tuple[int, ...]], Any], poly: bool = False,
              chunked: bool = False) -> _Plan:
        """``chunked``: a call of more rows than a chunk holds runs in chunks (draws only: each
        chunk needs its own seed)."""
        plan = cls()
        plan.rows = 0
        plan.chunks = 1
        plan.per_chunk = 0
        if ranks is not None:
            plan._bucket(shape, tensors, ranks, poly, chunked)
        if plan.rows:
            row = (-1,) if poly else (plan.size,) if plan.axis else ()
            plan.key = ProgramKey(op, family, -1 if poly else plan.size, (), static, tuple(
                ((*row, *ev), t.dtype) for t, ev in zip(tensors, plan.events)))
            plan.fn = program(())
        else:
            plan.key = ProgramKey(op, family, 0, shape, static,
                                  tuple((tuple(t.shape), t.dtype) for t in tensors))
            plan.fn = program(shape)
        return plan

    def _bucket(self, shape: tuple[int, ...], tensors: Sequence[torch.Tensor],
                ranks: Sequence[int], poly: bool, chunked: bool) -> None:
        leads, events = [], []
        for t, r in zip(tensors, ranks):
            k = max(t.dim() - r, 0)
            leads.append(t.shape[:k])
            # a parameter with fewer dimensions than its event rank broadcasts over the event
            # (RelaxedOneHotCategorical's scalar temperature: event shape (1,))
            events.append((1,) * (r - (t.dim() - k)) + tuple(t.shape[k:]))
        try:
            batch = tuple(torch.broadcast_shapes(*leads))
        except RuntimeError:
            return  # not broadcastable: the exact program raises the substrate's error
        reps, n_batch = math.prod(shape), math.prod(batch)
        rows = reps * n_batch
        if rows == 0:
            return
        largest = max(math.prod(ev) for ev in events)
        if poly:
            if rows * largest > POLY_ELEMENTS:
                return  # a large draw: its exact graph, at TFP's own speed
            size = rows  # TensorFlow: the family's one row-polymorphic graph, unpadded
        elif rows > BUCKET_MAX:
            # a chunk: the largest power of two of rows within CHUNK_ELEMENTS, more than a
            # bucket; calls between the two run their exact program. Each chunk holds a whole
            # number of batch rows (``per_chunk``), so every chunk lays out the parameters
            # alike: they are laid out once for all chunks.
            chunk = 1 << max((CHUNK_ELEMENTS // max(largest, 1)).bit_length() - 1, 0)
            per_chunk = (chunk // n_batch) * n_batch
            if not chunked or chunk <= BUCKET_MAX or rows <= chunk or per_chunk == 0:
                return
            size, self.chunks, self.per_chunk = chunk, -(-rows // per_chunk), per_chunk
        else:
            size = bucket_size(rows)
            if size * largest > BUCKET_ELEMENTS:
                return  # large events: the rows' work dominates, padding would cost real time
        self.rows, self.size, self.reps, self.batch = rows, size, reps, n_batch
        self.axis = poly or size > 1
        self.events = tuple(events)
        if not self.axis:  # each parameter reshaped to its event shape (usually as is)
            self.targets = tuple(None if t.shape == ev else torch.Size(ev)
                                 for t, ev in zip(tensors, events))
        else:
            self.targets = tuple(None if t.shape == batch + ev else torch.Size(batch + ev)
                                 for t, ev in zip(tensors, events))
        self.flatten = len(batch) != 1  # a 1-d batch is already one row per element
        self.lead = shape + batch
        self._index = {}
        self._host_index = {}

    def real(self, chunk: int) -> int:
        """The real (unpadded) rows of call ``chunk``: ``rows`` for an unchunked plan."""
        if self.chunks == 1:
            return self.rows
        return min(self.per_chunk, self.rows - chunk * self.per_chunk)

    def _indices(self, device: torch.device, chunk: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """Row ``r`` of the rows' layout reads batch element ``r % B``; padding rows read
        element 0. Call ``chunk`` holds rows ``chunk * per_chunk`` on, a multiple of ``B``: its
        row ``i`` reads element ``i % B`` too, so only the last chunk's padding differs.

        Returns the index of the call's ``size`` rows and that of its real ones.
        """
        real = self.real(chunk)
        index = self._index.get((device, real))
        if index is None:
            every = torch.arange(self.size, device=device) % self.batch
            every[real:] = 0
            index = self._index[(device, real)] = (every, every[:real])
        return index

    def _host(self, chunk: int) -> np.ndarray:
        real = self.real(chunk)
        index = self._host_index.get(real)
        if index is None:
            index = self._host_index[real] = self._indices(torch.device("cpu"), chunk)[0].numpy()
        return index

    def inputs(self, tensors: Sequence[torch.Tensor], grad: bool,
               chunk: int = 0) -> Sequence[torch.Tensor | np.ndarray]:
        """The inputs of call ``chunk`` of the program; ``grad``: the caller differentiates
        through them.

        Without gradients, CPU inputs are laid out by NumPy and handed over as host arrays (the
        substrate copies them anyway): a NumPy call costs about a microsecond, a torch
        operation several, and small draws are dominated by such fixed costs.
        """
        if not self.rows:
            return tensors
        if not self.axis:
            return [t if target is None else t.reshape(target)
                    for t, target in zip(tensors, self.targets)]
        if not grad and all(t.device.type == "cpu" for t in tensors):
            host = []
            index = self._host(chunk)
            for t, target, ev in zip(tensors, self.targets, self.events):
                a = t.detach().numpy()
                if target is not None:
                    a = np.broadcast_to(a, target)
                if self.flatten:
                    a = a.reshape((self.batch, *ev))
                host.append(a.take(index, axis=0))
            return host
        every, real = self._indices(tensors[0].device, chunk)
        n_real = self.real(chunk)
        out = []
        for t, target, ev in zip(tensors, self.targets, self.events):
            if target is not None:
                t = t.expand(target)
            if self.flatten:
                t = t.reshape((self.batch, *ev))
            if not grad:
                out.append(t.index_select(0, every))  # one gather: repetitions and padding
            else:
                rows = self._repeated(t, real, n_real, ev)
                if self.size == n_real:
                    out.append(rows)
                else:
                    # Padding rows are detached: their (unused) draws may have any gradient,
                    # NaN included, and none of it must reach the parameter. Same values as
                    # above.
                    pad = t[:1].detach().expand((self.size - n_real, *ev))
                    out.append(torch.cat([rows, pad]))
        return out

    def _repeated(self, t: torch.Tensor, real: torch.Tensor, n_real: int,
                  ev: Sequence[int]) -> torch.Tensor:
        """Rows ``r % B`` of ``t`` for ``r < n_real`` (a whole number of copies of the batch),
        as an expand: its backward sums each element's gradients over the copies with torch's
        summation. ``index_select``'s backward, ``index_add``, accumulated them one by one in
        the parameters' dtype: a float32 ``d/dloc mean(x)`` of a MultivariateNormal on
        TensorFlow was 1.9e-4 relative off at 2^16 draws (torch's own: 3e-8)."""
        if n_real % self.batch:
            return t.index_select(0, real)
        return t.unsqueeze(0).expand((n_real // self.batch, self.batch, *ev)).reshape(
            (n_real, *ev))

    def output(self, out: torch.Tensor) -> torch.Tensor:
        if not self.rows:
            return out
        if not self.axis:
            return out.view(self.lead + tuple(out.shape)) if self.lead else out
        return out[:self.rows].view(self.lead + tuple(out.shape[1:]))


#: Words of XLA's and TensorFlow's allocation failures (XlaRuntimeError RESOURCE_EXHAUSTED,
#: tf.errors.ResourceExhaustedError "OOM when allocating").
_OOM_WORDS = ("RESOURCE_EXHAUSTED", "ResourceExhausted", "Out of memory", "out of memory",
              "OOM when allocating", "Failed to allocate", "failed to allocate")


def _wrap(exc: Exception, family: str, what: str, substrate: str) -> PolysampleError:
    text = f"{type(exc).__name__}: {str(exc).strip()[:500]}"
    if isinstance(exc, MemoryError) or any(w in text for w in _OOM_WORDS):
        return SampleTooLargeError(
            f"Cannot run polysample.{family}.{what} on the tfp backend ({substrate}): it could "
            f"not allocate the memory the draw needs ({quoted(text)}). "
            "Expected a draw that fits in memory. Draw in chunks (several calls with a smaller "
            "sample_shape), or reduce sample_shape."
        )
    if what.startswith("log_prob") and isinstance(exc, ValueError | TypeError):
        return InvalidParameterError(
            f"TFP ({substrate}) rejected the value passed to {family}.log_prob: {text}. "
            "Expected a value whose shape broadcasts against batch_shape + event_shape."
        )
    return BackendContractError(
        f"TFP ({substrate}) failed in {family}.{what}: {text}. This is a bug in the tfp backend "
        "(please report it); meanwhile choose another backend with backend=..."
    )


class _KeyStream:
    """A backend's global stream of seeds: pairs of uint32 words from PCG64, drawn in blocks.

    One block of 512 pairs costs about as much as a single ``Generator.integers`` call, so
    unseeded scalar draws do not pay that call each time.
    """

    _BLOCK = 512

    def __init__(self, ss: np.random.SeedSequence) -> None:
        self._gen = np.random.Generator(np.random.PCG64(ss))
        self._lock = threading.Lock()
        self._block: np.ndarray = np.empty((0, 2), np.uint32)
        self._i = 0

    def next(self) -> np.ndarray:
        with self._lock:
            if self._i >= len(self._block):
                self._block = self._gen.integers(0, 2**32, size=(self._BLOCK, 2), dtype=np.uint32)
                self._i = 0
            words = self._block[self._i]
            self._i += 1
            return words


class TfpBackend(TableBackend):
    """TensorFlow Probability on JAX (default) or TensorFlow.

    ``substrate=None`` reads the configuration on first use (``POLYSAMPLE_TFP_SUBSTRATE``, then
    ``[tool.polysample.tfp] substrate``, then ``"jax"``); ``"tensorflow"`` or ``"jax"`` fixes it.
    Its ``table`` has a row per :data:`~.families.TFP_FAMILIES` entry, drawing and scoring
    through this instance's compiled programs; ``rng`` turns a call's seed into the two seed
    words TFP's stateless samplers take.
    """

    options: Mapping[str, str] | None = OPTIONS

    name = "tfp"

    def __init__(self, substrate: str | None = None) -> None:
        if substrate is not None and substrate not in SUBSTRATES:
            raise ConfigError(
                f"Expected substrate to be one of {list(SUBSTRATES)}. Received: {substrate!r} "
                "(TfpBackend(substrate=...))."
            )
        self._fixed = substrate
        self._substrate_name: str | None = substrate
        self._sub: Substrate | None = None
        self._stream: GlobalStream[_KeyStream] | None = None
        # call signature -> _Plan; dict reads and writes are atomic, and two threads building
        # the same plan build equal ones.
        self._plans: dict[tuple[Any, ...], _Plan] = {}

    def __getstate__(self) -> dict[str, Any]:
        # The loaded substrate (modules, compiled programs), the plans of the shape buckets
        # (closures over those programs), the global stream (it holds a lock) and the table
        # (bound to this instance) stay behind when pickled: a copy makes its own on first use.
        state = {**self.__dict__, "_sub": None, "_stream": None, "_plans": {}}
        state.pop("_table", None)
        return state

    @property
    def table(self) -> Mapping[str, Row]:  # type: ignore[override]
        """Family name -> :class:`Row`, from ``TFP_FAMILIES``: made per instance (and once),
        as its rows run this instance's programs."""
        table: Mapping[str, Row] | None = self.__dict__.get("_table")
        if table is None:
            table = self.__dict__["_table"] = {
                name: self._table_row(name, fam) for name, fam in TFP_FAMILIES.items()}
        return table

    def _table_row(self, family: str, fam: TfpFamily) -> Row:
        draw: Drawer = functools.partial(self._draw, family, fam)
        note = fam.note
        held = _HELD_TO_SUPPORT.get(family)
        if held is not None:
            draw = _redrawing(draw, held[0], family)
            note = f"{note}; {held[1]}" if note else held[1]
        return Row(draw=draw, rsample=fam.rsample, note=note,
                   log_prob=functools.partial(self._log_prob, family, fam)
                   if fam.log_prob else None)

    # ------------------------------------------------------------------ metadata
    def version(self) -> str:
        try:
            v = importlib.metadata.version("tensorflow-probability")
        except importlib.metadata.PackageNotFoundError:
            return ""
        try:
            return f"{v} ({self.substrate_name})"
        except ConfigError:
            return v

    def check_available(self) -> None:
        """The configured substrate's modules are installed (found, not imported). Reads the
        configuration: a bad substrate is a ``ConfigError``, so that ``backends()`` does not
        list a backend whose first draw would refuse to run."""
        name = self._fixed or self.substrate_name
        missing = substrate_importable(name)
        if missing is not None:
            extra = "polysample[tfp-tf]" if name == "tensorflow" else "polysample[tfp]"
            raise BackendUnavailableError(
                f"The {self.name or 'tfp'} backend needs the Python module {missing!r}, which is "
                f'not installed. Install it with: pip install "{extra}".'
            )

    @property
    def substrate_name(self) -> str:
        """``"jax"`` or ``"tensorflow"`` (reads the configuration once; ConfigError if bad)."""
        if self._substrate_name is None:
            self._substrate_name = _resolve_substrate()[0]
        return self._substrate_name

    @property
    def substrate(self) -> Substrate:
        """The loaded substrate (imports JAX or TensorFlow on first access)."""
        sub = self._sub
        if sub is None:
            sub = self._sub = load_substrate(self.substrate_name)
        if sub.pid != os.getpid():
            raise _forked(self.name, sub.name)
        return sub

    def mixture_components(self) -> frozenset[str]:
        """MixtureSameFamily.rsample (TFP's reparameterize=True) for these components."""
        return frozenset(MIXTURE_COMPONENTS)

    # ------------------------------------------------------------------ seeds
    def rng(self, seed: Seed, params: Params) -> np.ndarray:
        """The two uint32 words of a stateless TFP seed (made a JAX key or a TensorFlow seed
        by the substrate): the next pair of this backend's global stream for None, else from
        the ``SeedSequence`` (or the ``torch.Generator``, advanced by one draw)."""
        if seed is None:
            stream = self._stream
            if stream is None:
                # (an unregistered instance has no name: its stream is its class's)
                stream = self._stream = GlobalStream(self.name or type(self).__name__,
                                                     _KeyStream)
            return stream.get().next()
        return seed_sequence_from(seed).generate_state(2, np.uint32)

    # ------------------------------------------------------------------ helpers
    def _plan(self, op: str, family: str, shape: tuple[int, ...], static: tuple[Any, ...],
              tensors: Sequence[torch.Tensor],
              make: Callable[[], tuple[Sequence[int] | None, Callable[[tuple[int, ...]], Any]]]
              ) -> _Plan:
        """The plan of one call signature, remembered: building one costs more than a draw.

        ``make()`` is called on a miss only and returns each input's event rank (``None``: run
        the exact program) and ``program(sample_shape)``, which makes the substrate function
        (drawing with that sample shape; ``()`` in a bucket).
        """
        sig = (op, family, shape, static, tuple((tuple(t.shape), t.dtype) for t in tensors))
        plan = self._plans.get(sig)
        if plan is None:
            ranks, program = make()
            sub = self.substrate
            fam = TFP_FAMILIES.get(family)
            chunked = op == "draw" and sub.name == "jax" and fam is not None and fam.chunked
            plan = _Plan.build(op, family, shape, static, tensors, ranks, program,
                               sub.rows_polymorphic(family), chunked)
            if len(self._plans) >= _PLANS_MAX:
                self._plans.clear()
            self._plans[sig] = plan
        return plan

    def _draw_program(self, fam: TfpFamily, static: tuple[Any, ...]
                      ) -> Callable[[tuple[int, ...]], Any]:
        tfp = self.substrate.tfp
        names = fam.sample_inputs

        def program(shape: tuple[int, ...]) -> Any:
            def draw(arrays: tuple[Any, ...], seed: Any) -> Any:
                p = dict(zip(names, arrays))
                if fam.draw is not None:
                    return fam.draw(tfp, p, static, shape, seed)
                return fam.build(tfp, p, static).sample(shape, seed=seed)  # type: ignore[misc]
            return draw
        return program

    def _draw(self, family: str, fam: TfpFamily, params: Params, sample_shape: torch.Size,
              words: np.ndarray, grad: bool) -> torch.Tensor:
        """A row's drawer: ``sample`` (``grad`` False) or ``rsample`` with seed ``words``."""
        sub = self.substrate
        names = fam.sample_inputs
        tensors = _inputs(params, names)
        narrow = _widened(fam, params, tensors)
        keep_subnormal = False
        if narrow is None and _subnormal(family, dict(zip(names, tensors)), sub.name):
            narrow, keep_subnormal = torch.float32, True
        if narrow is not None:
            tensors = [t.double() for t in tensors]
        static = tuple(int(params[n]) for n in fam.sample_static)
        if fam.draw_flags is not None and sub.name in fam.flags_on:
            static += fam.draw_flags(params)
        shape = tuple(sample_shape)
        _check_int32(params, shape, sub.name)
        plan = self._plan("draw", family, shape, static, tensors, lambda: (
            [params.spec.param_event_dim(n) for n in names],
            self._draw_program(fam, static)))
        what = "rsample" if grad else "sample"
        need_grad = grad and torch.is_grad_enabled() and any(t.requires_grad for t in tensors)
        if plan.chunks == 1:
            call = _Call(sub, family, plan.key, plan.fn, sub.seed(words), what)
            inputs = plan.inputs(tensors, need_grad)
            out = _Bridge.apply(call, *inputs) if need_grad else call.forward(inputs)
        else:
            out = torch.cat(self._chunks(sub, family, plan, tensors, words, what, need_grad))
        out = plan.output(out)
        if narrow is not None:
            out = _narrow(out, narrow, keep_subnormal)
        out = self._post(fam, params, out, grad)
        if out.dtype != params.dtype and out.is_floating_point():
            out = out.to(params.dtype)  # mixed parameter dtypes, computed in the promoted one
        return out

    @staticmethod
    def _chunks(sub: Substrate, family: str, plan: _Plan, tensors: Sequence[torch.Tensor],
                words: np.ndarray, what: str, grad: bool) -> list[torch.Tensor]:
        """The real rows of each call of a chunked draw, each chunk seeded by
        :func:`_chunk_words`. Every chunk lays the parameters out alike (a whole number of
        batch rows each): they are laid out once, as tensors (DLPack hands them over without a
        copy); with gradients the last chunk gets its own, whose padding rows are detached."""
        shared: Sequence[torch.Tensor | np.ndarray] | None = None
        outs = []
        for chunk in range(plan.chunks):
            if grad and chunk == plan.chunks - 1:
                inputs = plan.inputs(tensors, grad, chunk)
            else:
                if shared is None:
                    shared = [torch.from_numpy(np.ascontiguousarray(a))
                              if isinstance(a, np.ndarray) else a
                              for a in plan.inputs(tensors, grad, 0)]
                inputs = shared
            call = _Call(sub, family, plan.key, plan.fn, sub.seed(_chunk_words(words, chunk)),
                         what)
            out = _Bridge.apply(call, *inputs) if grad else call.forward(inputs)
            outs.append(out[:plan.real(chunk)])
        return outs

    @staticmethod
    def _post(fam: TfpFamily, params: Mapping[str, Any], out: torch.Tensor,
              grad: bool) -> torch.Tensor:
        if fam.clamp:
            clamped = _clamp(out.detach(), fam.clamp)
            out = _StraightThrough.apply(out, clamped) if out.requires_grad else clamped
        if fam.post == "exp":
            return out.exp()
        if fam.post == "stick_breaking":
            from torch.distributions.transforms import StickBreakingTransform

            return StickBreakingTransform()(out)
        if fam.post == "straight_through" and grad:
            probs = params["probs"]
            return out + (probs - probs.detach())
        return out

    def _log_prob(self, family: str, fam: TfpFamily, params: Params,
                  value: torch.Tensor) -> torch.Tensor:
        """A row's ``log_prob`` (rows whose ``TfpFamily.log_prob`` is True)."""
        sub = self.substrate
        tensors = _inputs(params, fam.log_prob_inputs)
        if family != "Categorical":
            # torch's log_prob promotes (float32 parameters, float64 value: float64)
            dtype = tensors[0].dtype
            if value.is_floating_point() and value.dtype != dtype:
                dtype = torch.promote_types(dtype, value.dtype)
                tensors = [t.to(dtype) if t.is_floating_point() else t for t in tensors]
            if value.dtype != dtype:
                value = value.to(dtype)
        narrow = None
        named = dict(zip(fam.log_prob_inputs, tensors))
        if (_subnormal(family, {**named, "value": value}, sub.name)
                or _wide_score(named, fam.wide_score)):
            narrow = tensors[0].dtype
            tensors = [t.double() if t.is_floating_point() else t for t in tensors]
            value = value.double() if value.is_floating_point() else value
        static = tuple(int(params[n]) for n in fam.static)
        all_t = [*tensors, value]
        plan = self._plan("log_prob", family, (), static, all_t,
                          lambda: self._log_prob_program(family, fam, static, value.dim()))
        call = _Call(sub, family, plan.key, plan.fn, None, "log_prob")
        need_grad = torch.is_grad_enabled() and any(t.requires_grad for t in all_t)
        inputs = plan.inputs(all_t, need_grad)
        out = plan.output(_Bridge.apply(call, *inputs) if need_grad else call.forward(inputs))
        want = tensors[0].dtype if tensors[0].is_floating_point() else torch.get_default_dtype()
        if narrow is not None:  # float32 inputs with a subnormal number, scored in float64
            want = narrow
        if out.dtype != want:
            # TFP on JAX computes some float32 log-densities in float64 (Laplace, VonMises,
            # LowRankMultivariateNormal: constants promoted under x64); torch returns float32.
            out = out.to(want)
        return out

    def _log_prob_program(self, family: str, fam: TfpFamily, static: tuple[Any, ...],
                          value_dim: int
                          ) -> tuple[list[int] | None, Callable[[tuple[int, ...]], Any]]:
        spec = FAMILIES[family]
        tfp = self.substrate.tfp
        names = fam.log_prob_inputs

        def program(shape: tuple[int, ...]) -> Any:
            def lp(arrays: tuple[Any, ...], seed: Any) -> Any:
                return fam.log_prob_of(tfp, dict(zip(names, arrays[:-1])), static, arrays[-1])
            return lp

        # A value with fewer dimensions than an event has no rows: the exact program then lets
        # TFP reject it with its own message.
        if value_dim < spec.event_dim:
            return None, program
        return [spec.param_event_dim(n) for n in names] + [spec.event_dim], program

    def rsample_mixture(self, mixture_logits: torch.Tensor, component: Params,
                        sample_shape: torch.Size, *, seed: Seed = None) -> torch.Tensor:
        comp = component.family
        if comp not in MIXTURE_COMPONENTS:  # a direct call: the core asks mixture_components()
            raise NotReparameterizableError(
                f"MixtureSameFamily.rsample on the tfp backend supports components "
                f"{list(MIXTURE_COMPONENTS)}; received {comp!r}. Use sample() with log_prob()."
            )
        fam = TFP_FAMILIES[comp]
        sub = self.substrate
        comp_tensors = _inputs(component, fam.inputs)
        tensors = [mixture_logits.to(comp_tensors[0].dtype), *comp_tensors]
        shape = tuple(sample_shape)
        tfp = sub.tfp
        names = fam.inputs

        def program(shape: tuple[int, ...]) -> Any:
            def draw(arrays: tuple[Any, ...], seed: Any) -> Any:
                tfd = tfp.distributions
                component = fam.build(tfp, dict(zip(names, arrays[1:])), ())  # type: ignore[misc]
                mixture = tfd.MixtureSameFamily(tfd.Categorical(logits=arrays[0]), component,
                                                reparameterize=True)
                return mixture.sample(shape, seed=seed)
            return draw

        # The mixture logits and the (univariate) components' parameters all end in the
        # component axis: event rank 1 each, one mixture draw per row.
        plan = self._plan("mixture", comp, shape, (), tensors,
                          lambda: ([1] * len(tensors), program))
        call = _Call(sub, f"MixtureSameFamily({comp})", plan.key, plan.fn,
                     sub.seed(self.rng(seed, component)), "rsample")
        need_grad = torch.is_grad_enabled() and any(t.requires_grad for t in tensors)
        inputs = plan.inputs(tensors, need_grad)
        out = _Bridge.apply(call, *inputs) if need_grad else call.forward(inputs)
        return plan.output(out)


def _wide_score(tensors: Mapping[str, torch.Tensor], names: tuple[str, ...]) -> bool:
    """Whether a float32 ``log_prob`` runs in float64: some shape parameter ``names`` is above
    :data:`~polysample.core.torch_fixes.WIDE_SCORE_ABOVE` (``TfpFamily.wide_score``)."""
    return any(n in tensors and tensors[n].dtype == torch.float32
               and bool((tensors[n].detach() > WIDE_SCORE_ABOVE).any()) for n in names)


#: The smallest normal number of each dtype :func:`_subnormal` reads, and the most values it
#: reads in Python.
_TINY = {torch.float32: torch.finfo(torch.float32).tiny,
         torch.float64: torch.finfo(torch.float64).tiny}
_SUBNORMAL_LIST_MAX = 64


def _subnormal(family: str, tensors: Mapping[str, torch.Tensor], substrate: str) -> bool:
    """Whether a float32 input holds a subnormal number (nonzero, below ``finfo.tiny``): XLA
    and TensorFlow flush subnormal inputs and results to zero on the CPU (the processor's
    flush-to-zero and denormals-are-zero modes, set for every program), so ``Normal(0,
    1e-39)`` drew only zeros and ``Gamma(0.5, 2).log_prob(1e-40)`` was infinite (an outside
    trial): such calls run in float64, where those numbers are normal. A float64 subnormal
    input has no wider dtype: refused (``InvalidParameterError``)."""
    for name, t in tensors.items():
        dtype = t.dtype
        if dtype is not torch.float32 and dtype is not torch.float64:
            continue
        tiny = _TINY[dtype]
        x = t.detach()
        if x.numel() <= _SUBNORMAL_LIST_MAX and x.device.type == "cpu":
            # a few values: read in Python (five torch operations cost ~40 us a tensor, the
            # most of a small call's own time on JAX)
            if not any(0.0 < abs(v) < tiny for v in x.reshape(-1).tolist()):
                continue
            sub = (x.abs() < tiny) & (x != 0)
        else:
            sub = (x.abs() < tiny) & (x != 0)
            if not bool(sub.any()):
                continue
        if dtype == torch.float32:
            return True
        first = float(x[sub].reshape(-1)[0])
        raise InvalidParameterError(
            f"polysample.{family} on the tfp backend ({substrate}): {name} holds the subnormal "
            f"float64 number {first:.4g}, below the smallest normal float64 ({tiny:.4g}). "
            "Expected normal floats or 0: XLA and TensorFlow flush subnormal numbers to zero "
            "on the CPU, so the result would be wrong. Rescale the problem, or use "
            "backend='torch' or backend='numpy' for this distribution.")
    return False


def _widened(fam: TfpFamily, params: Params, tensors: Sequence[torch.Tensor]
             ) -> torch.dtype | None:
    """float32 when this float32 draw runs in float64 (``fam.in_float64``, or some
    ``fam.widen`` parameter is below :data:`.families.WIDEN_BELOW`, checked on the host), else
    None."""
    if tensors[0].dtype != torch.float32 or not (fam.widen or fam.in_float64):
        return None
    if fam.in_float64:
        return torch.float32
    if any(bool((params[n].detach() < WIDEN_BELOW).any()) for n in fam.widen):
        return torch.float32
    return None


def _narrow(out: torch.Tensor, dtype: torch.dtype, keep_subnormal: bool = False
            ) -> torch.Tensor:
    """A float64 draw rounded to ``dtype``. Values past ``dtype``'s largest float are held at it
    and nonzero ones below its smallest normal float at that (unless ``keep_subnormal``: the
    draws of subnormal parameters, whose law lies there), with a zero gradient there (in
    float64 their derivatives are finite, so the zero cotangent gives exactly 0, never NaN)."""
    fi = torch.finfo(dtype)
    y = out.to(dtype)
    with torch.no_grad():
        mag = out.detach().abs()
        held = mag > fi.max
        if not keep_subnormal:
            held |= (mag < fi.tiny) & (mag > 0)
    if not bool(held.any()):
        return y
    kept = (out.detach().sign() * mag.clamp(min=fi.tiny, max=fi.max)).to(dtype)
    return torch.where(held, kept, y)


def _inputs(params: Params, names: tuple[str, ...]) -> list[torch.Tensor]:
    """The parameters ``names`` in one floating dtype.

    ``Params`` gives floating tensors (Python numbers and integer tensors already in the
    parameters' floating dtype); torch's constructors broadcast without promoting
    (``Normal(float64 loc, float32 scale)`` keeps both) and its arithmetic promotes, while TFP
    refuses mixed dtypes: computed in the promoted dtype (the draw is cast back to
    ``params.dtype``).
    """
    # A Python number (Multinomial's total_count) as a float64 scalar: a count is exact there
    values = [v if isinstance(v, torch.Tensor) else
              torch.tensor(float(v), dtype=torch.float64, device=params.device)
              for v in (params[n] for n in names)]
    dtype = values[0].dtype
    for v in values[1:]:
        if v.dtype != dtype:
            dtype = torch.promote_types(dtype, v.dtype)
    return [v if v.dtype == dtype else v.to(dtype) for v in values]


def _positive_definite(x: torch.Tensor) -> torch.Tensor:
    """Whether each matrix of ``x`` passes torch's positive-definite check (the Wishart
    support's): TFP returns ``L @ L^T`` from one matrix product, exactly symmetric (checked on
    both substrates, float32 and float64), so only the Cholesky factorization of that check is
    needed: on an idle CPU 7 us for one 3x3 matrix instead of 42, 0.4 ms for 1e4 instead of
    1.2 (a loaded one adds the wake-up of torch's OpenMP threads: about 50 us a call here)."""
    return torch.linalg.cholesky_ex(x).info == 0


#: Families whose draws can leave the support by rounding, with the check of that support and
#: the note shown in ``polysample backends``. TFP's Bartlett sampler for Wishart with ``df``
#: just above ``p - 1`` gives matrices that are not positive definite, as torch's does: in
#: float32, about 1% of the draws of Wishart(2.5, I_3) on either substrate, 12% at df = 2.2.
_HELD_TO_SUPPORT: dict[str, tuple[Callable[[torch.Tensor], torch.Tensor], str]] = {
    "Wishart": (_positive_definite, "draws outside the support redrawn"),
}


def _redrawing(draw: Drawer, inside: Callable[[torch.Tensor], torch.Tensor],
               family: str) -> Drawer:
    """``draw`` with its draws outside the support redrawn (:func:`redraw_outside_support`,
    as on the torch and numpy backends): redraw ``k`` runs the same program seeded by words
    derived from the call's and ``k``, so the same seed gives the same values."""

    def held(params: Params, sample_shape: torch.Size, words: np.ndarray,
             grad: bool) -> torch.Tensor:
        seeds = itertools.chain([words], (_derived_words(words, k) for k in itertools.count(1)))
        return redraw_outside_support(lambda: draw(params, sample_shape, next(seeds), grad),
                                      lambda x: inside(x.detach()), family)
    return held


def _derived_words(words: np.ndarray, k: int) -> np.ndarray:
    return np.random.SeedSequence([int(w) for w in words], spawn_key=(k,)).generate_state(
        2, np.uint32)


def _chunk_words(words: np.ndarray, chunk: int) -> np.ndarray:
    """The seed of call ``chunk`` of a chunked draw: a two-part spawn key, so that no chunk
    shares its seed with a redraw (:func:`_derived_words`, one part) or another chunk."""
    return np.random.SeedSequence([int(w) for w in words], spawn_key=(0, chunk)).generate_state(
        2, np.uint32)


class _StraightThrough(torch.autograd.Function):
    """``clamped`` forward, the gradient of ``x`` backward (torch clamps Gamma draws so)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, clamped: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return clamped.clone()

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> Any:  # type: ignore[override]
        return grad, None


def _clamp(x: torch.Tensor, kind: str) -> torch.Tensor:
    """``x`` in the open support of its family, as torch's samplers keep theirs.

    TFP returns exact 0 (Gamma(1e-3) in float32: 92% of the draws), exact 0 and 1 (Beta(0.01,
    0.01)) and simplex rows that sum to 1 within 6e-5 only (Dirichlet(1e-3)); torch's
    ``log_prob`` scores such values -inf or refuses them. torch clamps Gamma (and so Chi2,
    Beta, Dirichlet) draws to ``finfo.tiny``; the largest float below 1 is ``1 - eps/2``.
    """
    fi = torch.finfo(x.dtype)
    if kind == "positive":
        return x.clamp(min=fi.tiny)
    if kind == "positive_finite":  # ratios and powers that underflow to 0 or overflow to inf
        return x.clamp(min=fi.tiny, max=fi.max)
    if kind == "unit":
        return x.clamp(min=fi.tiny, max=1 - fi.eps / 2)
    # "simplex": renormalized, then clamped (dividing a clamped value by a sum above 1 could
    # leave it below tiny again)
    return (x / x.sum(-1, keepdim=True)).clamp(min=fi.tiny)


#: TensorFlow (and TFP on it) compute shapes in int32: a draw of more elements fails with a
#: raw "Dimension -727379968 must be >= 0".
_INT32_MAX = (1 << 31) - 1


def _check_int32(params: Params, shape: tuple[int, ...], substrate: str) -> None:
    if substrate != "tensorflow" or not shape:
        return
    batch, event = params.batch_shape, params.event_shape
    n = math.prod(shape) * math.prod(batch) * max(math.prod(event), 1)
    if n > _INT32_MAX:
        full = shape + tuple(batch) + tuple(event)
        raise SampleTooLargeError(
            f"Cannot draw polysample.{params.family}(sample_shape={shape}) on the tfp backend "
            f"(tensorflow): the result, of shape {full}, has {n} elements, more than "
            f"TensorFlow's samplers can index ({_INT32_MAX}, int32). Expected at most "
            f"{_INT32_MAX} elements per draw. Draw in chunks (several calls with a smaller "
            "sample_shape), or use the JAX substrate (backend='tfp')."
        )


def _forked(backend: str, substrate: str) -> BackendUnavailableError:
    return BackendUnavailableError(
        f"The {backend} backend cannot draw in this process: it is a fork of a process that "
        f"had already started {substrate} (pid {os.getpid()} is a child), and {substrate}'s "
        "thread pools do not survive fork(), so a draw here would hang. Expected a process "
        "that starts its own substrate. Use the 'spawn' (or 'forkserver') start method: "
        "multiprocessing.set_start_method('spawn'), or DataLoader(..., "
        "multiprocessing_context='spawn'); or draw in the parent before forking."
    )


# FAMILIES is the source of truth for names: a typo in TFP_FAMILIES must fail loudly at import.
_unknown = set(TFP_FAMILIES) - set(FAMILIES)
if _unknown:  # pragma: no cover - a programming error
    raise ImportError(f"TFP_FAMILIES names unknown families: {sorted(_unknown)}")
