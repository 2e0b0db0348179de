"""The two substrates TFP runs on: JAX and TensorFlow.

Both offer the same small interface to :mod:`.backend`:

* ``to_native(t)`` / ``to_torch(a)``: tensors cross by DLPack, zero copy, small ones through
  NumPy (see :data:`SMALL`); ``to_native`` also takes NumPy arrays (bucket rows laid out on
  the host).
* ``seed(words)``: a substrate seed from two ``uint32`` words (a JAX key's raw data, a TF
  stateless seed).
* ``forward(key, fn, arrays, seed)``: ``fn(arrays, seed)`` compiled once per ``key`` (a
  :class:`ProgramKey`; ``jax.jit`` / ``tf.function``) and cached in a bounded LRU. On JAX, a
  key picks the compiler options (:func:`compiler_options`), so one key always runs one
  program.
* ``vjp(key, fn, arrays, seed, cotangent, mask)``: the vector-Jacobian product of ``fn`` with
  respect to ``arrays[i]`` for each ``i`` in ``mask``, by the substrate's own autodiff
  (``jax.vjp`` / ``tf.GradientTape``). The forward pass is recomputed from the same seed (the
  samplers are stateless, so it gives the same draw) instead of keeping the substrate's
  residuals alive between torch's forward and backward.

The modules are imported only here, inside :func:`load_substrate`, on the backend's first use.
On JAX, compiled programs persist in polysample's cache directory
(:func:`enable_persistent_cache`), so later processes load them from disk without tracing.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib
import importlib.abc
import importlib.metadata
import importlib.util
import inspect
import os
import pickle
import platform
import sys
import tempfile
import threading
import warnings
import zlib
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

from ...core.config import backend_options, file_config
from ...core.errors import BackendUnavailableError, ConfigError
from .families import TFP_FAMILIES

__all__ = ["Substrate", "ProgramKey", "load_substrate", "CACHE_SIZE", "compiler_options",
           "CACHE_ENV_VAR", "enable_persistent_cache"]

#: Compiled programs kept per substrate (each is specialised to one family, shape and dtype).
CACHE_SIZE = 256


class ProgramKey(NamedTuple):
    """What one compiled program is specialised to: equal keys share a program.

    ``bucket``: the row count of the shape bucket the program serves (see :mod:`.backend`;
    ``sample_shape`` is then ``()`` and every input has that many rows; a one-row bucket has no
    row axis; above 512 rows, the chunk program of large draws), or 0 for a program of one call's exact shapes, or -1 for a program whose row
    axis has any length (every input's first dimension is then -1): what the backend asks for
    where :meth:`Substrate.rows_polymorphic` says so.
    """

    op: str  # "draw", "log_prob" or "mixture"
    family: str
    bucket: int
    sample_shape: tuple[int, ...]
    static: tuple[Any, ...]
    inputs: tuple[tuple[tuple[int, ...], torch.dtype], ...]


#: XLA options for the programs of the smallest shape buckets (at most FAST_COMPILE_MAX rows).
#: Without LLVM's optimisations TFP's samplers compile 2-4 times faster (Gamma 0.3 s instead
#: of 0.9 s, Dirichlet 0.3 s instead of 1.2 s; jax 0.6.2, CPU) and such tiny programs run as
#: fast as optimised ones (calls cost 10-70 us whatever the code quality), but the code runs
#: 2-6 times slower per element, so larger buckets do not use them. Measurements in
#: docs/backends/tfp.md.
FAST_COMPILE: dict[str, Any] = {"xla_backend_optimization_level": 0}
FAST_COMPILE_MAX = 8

#: XLA options for the other programs (buckets of 64 to 512 rows, and exact programs): LLVM's
#: -O2 instead of the default -O3. Buckets compile 1.3-5 times faster (Dirichlet and Wishart of
#: 512 rows: 0.9 s instead of 4.2 s) and run about as fast (within 8%; MultivariateNormal 22%),
#: where -O0 would be 2-4 times slower. Exact programs compile 1.4-3 times faster (a 262144 x 3
#: Beta draw: 1.9 s instead of 3.6 s) and draw a million values at the same speed (medians of
#: 7-15 interleaved runs: 0.88-1.09 times -O3's time over eleven families), except through TFP's
#: Poisson sampler (1.10-1.15 times): the families that use it (``TfpFamily.
#: full_optimization``) keep XLA's defaults. Measurements in docs/backends/tfp.md.
SMALL_COMPILE: dict[str, Any] = {"xla_backend_optimization_level": 2}


_EXTRA = {"jax": "polysample[tfp]", "tensorflow": "polysample[tfp-tf]"}


# Read when this module is imported (first use of the backend), before JAX is imported: importing
# JAX sets TF_CPP_MIN_LOG_LEVEL itself, which must not count as the user's choice.
_USER_TF_LOG_LEVEL = os.environ.get("TF_CPP_MIN_LOG_LEVEL")


@contextlib.contextmanager
def _quiet_tensorflow() -> Any:
    """Import TensorFlow quietly, as far as the user's ``TF_CPP_MIN_LOG_LEVEL`` allows.

    TensorFlow's C++ chatter (oneDNN notices, "could not find cuda drivers", cuInit failures on
    CPU machines) is noise to a sampling library's users. TF 2.21 writes some of these lines
    before absl logging is initialised, ignoring the variable, so stderr (fd 2) is muted while
    the modules load, unless the user set the level to 0 (show everything). Without a level of
    the user's, it is set to 3 (which also hides C++ ERROR lines; Python exceptions are
    unaffected) and absl's verbosity to ERROR; a level of the user's is kept as it is.
    """
    if "tensorflow" in sys.modules or (_USER_TF_LOG_LEVEL or "").strip() == "0":
        yield
        return
    if _USER_TF_LOG_LEVEL is None:
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    with _muted_stderr():
        yield
    if _USER_TF_LOG_LEVEL is not None:
        return
    try:
        from absl import logging as absl_logging

        absl_logging.set_verbosity(absl_logging.ERROR)
    except ImportError:  # absl comes with TensorFlow; without TensorFlow there is nothing to do
        pass


@contextlib.contextmanager
def _muted_stderr() -> Any:
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real fd 2 (embedded interpreters): nothing to mute
        yield
        return
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


#: TFP's NumPy backend: TFP's JAX substrate loads it (for static shapes, in its
#: ``internal/prefer_static.py``), and so does TFP on TensorFlow.
_TFP_NUMPY_BACKEND = "tensorflow_probability.python.internal.backend.numpy"


class _NoTensorFlow(importlib.abc.MetaPathFinder):
    """Makes ``import tensorflow`` fail in one thread (the one loading TFP's JAX substrate)."""

    def __init__(self) -> None:
        self.thread = threading.get_ident()

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        if name.partition(".")[0] == "tensorflow" and threading.get_ident() == self.thread:
            raise ImportError(f"{name} is not imported with TFP's JAX substrate")
        return None


@contextlib.contextmanager
def _without_tensorflow() -> Any:
    """Load TFP's JAX substrate without importing TensorFlow, also where it is installed.

    TFP's JAX substrate imports TensorFlow when it can, only to copy TensorFlow's docstrings
    onto its JAX functions (``backend/jax/_utils.py`` and ``backend/numpy/_utils.py`` try the
    import and skip the copy on ImportError, as on a machine without TensorFlow). That import
    was 8 of the 10 s of the JAX backend's first draw on the project's 2-core machine. Here it
    fails, in this thread only, while the substrate loads; where TensorFlow is already imported
    nothing changes.

    TFP's NumPy backend, which the JAX substrate loads too, is shared with TFP on TensorFlow,
    and TFP on TensorFlow refuses it once loaded without TensorFlow (its ``prefer_static``
    compares the signatures of the two backends' functions, which then differ). So the NumPy
    backend's modules loaded here are dropped from ``sys.modules`` afterwards: the JAX
    substrate keeps the module objects it imported, and a later import of TFP on TensorFlow
    (the ``tfp-tf`` backend, or the user's own) loads them afresh, with TensorFlow.
    """
    if "tensorflow" in sys.modules:
        yield
        return
    before = set(sys.modules)
    finder = _NoTensorFlow()
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        sys.meta_path.remove(finder)
        loaded = [m for m in sys.modules if m not in before
                  and (m == _TFP_NUMPY_BACKEND or m.startswith(_TFP_NUMPY_BACKEND + "."))]
        for name in loaded:
            del sys.modules[name]
        parent = sys.modules.get(_TFP_NUMPY_BACKEND.rpartition(".")[0])
        if loaded and parent is not None and hasattr(parent, "numpy"):
            delattr(parent, "numpy")


class _LRU:
    def __init__(self, size: int) -> None:
        self._size = size
        self._data: OrderedDict[Any, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Any, make: Callable[[], Any]) -> Any:
        """The compiled program for ``key``, made by ``make()`` on a miss.

        Always compiled, even for a one-off call: eager and compiled runs may round differently
        (XLA fuses operations), and TFP on TensorFlow even picks sampler implementations
        differently, so compiling only later would break "same seed, same values".
        """
        with self._lock:
            hit = self._data.get(key)
            if hit is not None:
                self._data.move_to_end(key)
                return hit
        value = make()
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            self._evict()
        return value

    def _evict(self) -> None:
        while len(self._data) > self._size:
            self._data.popitem(last=False)

    def __len__(self) -> int:
        return len(self._data)

    def keys(self) -> list[Any]:
        """The cached keys, least recently used first (for tests and debugging)."""
        with self._lock:
            return list(self._data)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()


class Substrate:
    """Common part: the compile cache."""

    name = ""
    tfp: Any = None

    def __init__(self) -> None:
        self.cache = _LRU(CACHE_SIZE)
        #: The process that loaded the substrate: a fork's child finds another pid, and its
        #: draws would hang on thread pools that did not survive fork() (see backend._forked).
        self.pid = os.getpid()

    def to_native(self, t: torch.Tensor | np.ndarray) -> Any:
        """The substrate's array for ``t``; a NumPy array is a small host input (copied)."""
        raise NotImplementedError

    def to_torch(self, a: Any) -> torch.Tensor:
        raise NotImplementedError

    def seed(self, words: np.ndarray) -> Any:
        raise NotImplementedError

    def rows_polymorphic(self, family: str) -> bool:
        """Whether one program of ``family`` runs bucket calls of every row count, one included
        (the backend then neither pads their rows nor drops the row axis of one-value calls)."""
        return False

    def forward(self, key: Any, fn: Callable[..., Any], arrays: Sequence[Any], seed: Any) -> Any:
        """``fn(arrays, seed)``, the same values whether or not :meth:`vjp` follows."""
        raise NotImplementedError

    def vjp(self, key: Any, fn: Callable[..., Any], arrays: Sequence[Any], seed: Any,
            cotangent: Any, mask: tuple[int, ...]) -> list[Any]:
        raise NotImplementedError


def _merge(diff: Sequence[Any], rest: Sequence[Any], mask: tuple[int, ...]) -> list[Any]:
    out: list[Any] = []
    di = iter(diff)
    ri = iter(rest)
    for i in range(len(diff) + len(rest)):
        out.append(next(di) if i in mask else next(ri))
    return out


#: Tensors with at most this many elements cross as NumPy views, copied by the substrate when the
#: compiled program is called: a DLPack import costs about 0.2 ms in jax 0.6 (and tens of
#: microseconds in TF), far more than copying a small parameter. Larger tensors cross by DLPack.
#: On JAX's CPU backend, results of at most this many elements are copied out through NumPy.
SMALL = 1 << 16

#: Byte alignment TensorFlow's kernels assume (Eigen's EIGEN_MAX_ALIGN_BYTES on AVX-512 builds).
_ALIGN = 64


def _dense(t: torch.Tensor) -> torch.Tensor:
    # DLPack consumers (XLA, TF) accept only compact row-major buffers: parameters broadcast by
    # torch's constructors are stride-0 views, so those (small) parameters are copied here.
    # TensorFlow also aborts the process (a C++ CHECK, not an exception) on a buffer that is not
    # 64-byte aligned, e.g. a view into the middle of a torch tensor; such views are copied into
    # a fresh, aligned allocation too. Whole torch tensors are already aligned: zero copy.
    if not t.is_contiguous():
        return t.contiguous()
    if t.data_ptr() % _ALIGN:
        return t.clone()
    return t


#: Environment variable naming the directory of the compiled-program cache ("" disables).
CACHE_ENV_VAR = "POLYSAMPLE_JAX_CACHE_DIR"

#: The most disk space the cache may take: beyond it, loading the substrate deletes the least
#: recently used programs (see :func:`_trim`). One program takes 20 KB to 1 MB on CPU.
CACHE_MAX_BYTES = 1 << 30


def _cache_dir_setting(jax_version: str) -> tuple[Path | None, str]:
    """Where the persistent cache should live, and the setting that said so.

    ``POLYSAMPLE_JAX_CACHE_DIR`` (empty: disabled), then ``[tool.polysample.tfp]
    compilation_cache`` (a path, relative to the file's directory, or ``false``; ``true`` means the
    default), then ``platformdirs.user_cache_dir("polysample")/jax-<jax version>``: programs of
    another JAX version are never read again, and a directory per version lets them be deleted
    as a whole.
    """
    env = os.environ.get(CACHE_ENV_VAR)
    if env is not None:
        source = f"environment variable {CACHE_ENV_VAR}"
        return (Path(env).expanduser() if env.strip() else None), source
    opts, where = backend_options("tfp")
    if "compilation_cache" in opts:
        value = opts["compilation_cache"]
        source = f"{where}.compilation_cache"
        if value is False:
            return None, source
        if isinstance(value, str) and value.strip():
            path = Path(value).expanduser()
            cfg_path = file_config().path
            if not path.is_absolute() and cfg_path is not None:
                path = cfg_path.parent / path
            return path, source
        if value is not True:
            raise ConfigError(
                f"Expected {source} to be a directory (a string), true (the default directory) or "
                f"false (no cache of compiled samplers). Received: {value!r}."
            )
    try:
        import platformdirs
    except ImportError:  # installed with the tfp extras; without it there is no default place
        return None, "default (platformdirs is not installed)"
    return Path(platformdirs.user_cache_dir("polysample")) / f"jax-{jax_version}", "default"


def _writable(path: Path) -> OSError | None:
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        return exc
    return None


def enable_persistent_cache(jax: Any) -> Path | None:
    """The directory where compiled programs persist between processes (None: no cache).

    Compiling is most of the cost of a first draw (0.05-2 s a program), and tracing TFP's
    Python to find a program again 0.05-0.7 s more: :meth:`JaxSubstrate._program` keeps each
    compiled executable here and a later process loads it in milliseconds. JAX's own
    persistent compilation cache is not used, and JAX's configuration is not changed: an
    executable JAX loaded from its cache cannot be serialized again whole (XLA:CPU drops
    kernels: "Function reduce-window.1_kernel not found" when run), and finding a program there
    needs the tracing this cache saves. Disabled (None) when the user configured JAX's cache
    (``jax_compilation_cache_dir``, also set by the ``JAX_COMPILATION_CACHE_DIR`` variable, or
    ``jax_enable_compilation_cache=False``), for the same reason, or disabled ours
    (:func:`_cache_dir_setting`). The directory is kept under :data:`CACHE_MAX_BYTES` by
    :func:`_trim`.

    Never fails a draw: a directory that cannot be written gives one warning and no cache.
    """
    if jax.config.jax_compilation_cache_dir or not jax.config.jax_enable_compilation_cache:
        return None
    path, source = _cache_dir_setting(jax.__version__)
    if path is None:
        return None
    error = _writable(path)
    if error is not None:
        warnings.warn(
            f"polysample: cannot use {str(path)!r} ({source}) as the cache of compiled "
            f"samplers: {error.strerror or error}. Compiled samplers will not be kept between "
            f"processes. Set {CACHE_ENV_VAR} to a writable directory, or to an empty string to "
            "disable the cache and this warning.",
            RuntimeWarning, stacklevel=2)
        return None
    _trim(path, CACHE_MAX_BYTES)
    return path


def _trim(path: Path, max_bytes: int) -> None:
    """Delete the least recently used programs of ``path`` until it holds 3/4 of ``max_bytes``.

    Every distinct large draw shape adds a program, so the directory would grow without bound.
    JAX can bound it itself (``jax_compilation_cache_max_size``), but then every write scans the
    whole directory under a file lock and fails (with a warning) on entries written without that
    option; one scan here, when the substrate loads, costs about a millisecond. "Recently used"
    is the file's access time (updated on read at least daily under Linux's relatime).
    Best effort: a file another process deletes or reads meanwhile is skipped, and a program
    deleted under a reader is recompiled by JAX.
    """
    entries = []
    total = 0
    try:
        for entry in os.scandir(path):
            if entry.name.endswith(("-cache", "-atime", _PROGRAM_SUFFIX)) and entry.is_file():
                st = entry.stat()
                entries.append((st.st_atime, entry.path, st.st_size))
                total += st.st_size
    except OSError:
        return
    if total <= max_bytes:
        return
    for _, file, size in sorted(entries):
        if total <= max_bytes * 3 // 4:
            break
        with contextlib.suppress(OSError):
            os.remove(file)
            total -= size


#: Buckets above this many rows are the chunk programs of large draws (``backend.
#: CHUNK_ELEMENTS``): compiled as exact programs are.
LARGEST_BUCKET = 512


def compiler_options(key: ProgramKey) -> dict[str, Any] | None:
    """XLA options of the program for ``key`` (None: XLA's defaults)."""
    if not key.bucket or key.bucket > LARGEST_BUCKET:
        fam = TFP_FAMILIES.get(key.family)
        return None if fam is None or fam.full_optimization else SMALL_COMPILE
    return FAST_COMPILE if key.bucket <= FAST_COMPILE_MAX else SMALL_COMPILE


class JaxSubstrate(Substrate):
    name = "jax"

    def __init__(self) -> None:
        super().__init__()
        import jax
        import jax.dlpack

        # float64 parameters need JAX's x64 mode: without it JAX silently computes in float32.
        # It is switched on once, when this backend is first used (documented in
        # docs/backends/tfp.md); float32 inputs keep float32 results.
        jax.config.update("jax_enable_x64", True)
        # TFP 0.25 calls JAX APIs that JAX 0.6 deprecates (jax.interpreters.xla.
        # pytype_aval_mappings; jnp shapes given None): DeprecationWarnings from TFP's own
        # modules at import and at tracing, about code the user does not own (an outside
        # trial). Filtered for TFP's JAX backend modules only; the user's filters stay.
        warnings.filterwarnings("ignore", category=DeprecationWarning,
                                module=r"tensorflow_probability\.python\.internal\.backend\.jax")
        # TFP's JAX substrate imports TensorFlow, when installed, only to copy docstrings
        # (tensorflow_probability/python/internal/backend/jax/_utils.py, loaded lazily): it is
        # loaded here, at once, without TensorFlow (see _without_tensorflow).
        with _without_tensorflow():
            # The module itself, not TFP's lazy stand-in for it: the whole substrate loads here.
            tfp = importlib.import_module("tensorflow_probability.substrates.jax")
            importlib.import_module("tensorflow_probability.python.internal.backend.jax._utils")

        self.jax = jax
        self.tfp = tfp
        self._from_dlpack = jax.dlpack.from_dlpack
        # Programs run on JAX's default device; results there can be read as NumPy arrays.
        self._host = jax.default_backend() == "cpu"
        #: Where compiled programs persist between processes (None: disabled); see
        #: :meth:`_program`.
        self.cache_dir = self.program_dir = enable_persistent_cache(jax)
        #: Programs this process "compiled" (traced, lowered and compiled) and "loaded" (read
        #: from :attr:`program_dir`).
        self.stats = {"compiled": 0, "loaded": 0}
        if self.program_dir is not None:
            _init_custom_calls(jax)

    def _jit(self, fn: Callable[..., Any], key: ProgramKey, tag: tuple[Any, ...]) -> Any:
        # A pure function of the key: the same call signature always runs the same program, so
        # "same seed, same values" holds whichever call compiled it (or loaded it from disk).
        return _LazyProgram(self, fn, key, tag)

    def _program(self, fn: Callable[..., Any], key: ProgramKey, tag: tuple[Any, ...],
                 args: tuple[Any, ...]) -> Any:
        """The compiled program of ``fn`` for ``args``: compiled here, or read from disk.

        Tracing TFP's Python, lowering and compiling cost 0.1-2 s a program. The compiled
        executable is kept under a digest of the key, the arguments' shapes and dtypes and
        :func:`_fingerprint` (versions, the programs' source, the CPU) in :attr:`program_dir`
        (see :func:`enable_persistent_cache`); a later process loads it in milliseconds, without
        tracing. It is the very executable the first process ran, so the values are the same.
        A file that cannot be read (damaged, or from another jaxlib) is compiled and written
        again.
        """
        jax = self.jax
        path = None
        if self.program_dir is not None:
            leaves, tree = jax.tree_util.tree_flatten(args)
            ident = repr((_fingerprint(jax), tag, key, str(tree),
                          [(np.shape(a), str(a.dtype)) for a in leaves])).encode()
            path = self.program_dir / f"{hashlib.sha256(ident).hexdigest()}{_PROGRAM_SUFFIX}"
            compiled = _read_program(jax, path)
            if compiled is not None:
                self.stats["loaded"] += 1
                return compiled
        with _pathwise_multiply_no_nan(jax):
            lowered = jax.jit(fn, compiler_options=compiler_options(key)).lower(*args)
        compiled = lowered.compile()
        self.stats["compiled"] += 1
        if path is not None:
            _write_program(path, compiled)
        return compiled

    def to_native(self, t: torch.Tensor | np.ndarray) -> Any:
        if isinstance(t, np.ndarray):
            return t
        t = t.detach()
        if t.numel() <= SMALL and t.device.type == "cpu":
            return t.numpy()
        t = _dense(t)
        try:
            return self._from_dlpack(t)
        except (RuntimeError, TypeError, ValueError, BufferError):
            # DLPack refused (a dtype or device XLA cannot take, e.g. a device JAX was not built
            # for): copy through host memory instead.
            return self.jax.numpy.asarray(t.cpu().numpy())

    def to_torch(self, a: Any) -> torch.Tensor:
        if self._host and a.size <= SMALL:
            # A DLPack export costs 5-12 us in jax 0.6 (Python bookkeeping), a copy of a small
            # result through NumPy about 1.5 us: a sixth of a scalar draw's time.
            return torch.from_numpy(np.array(a))
        return torch.from_dlpack(a)

    def seed(self, words: np.ndarray) -> Any:
        return words  # TFP's JAX samplers take a raw uint32[2] key

    def forward(self, key: ProgramKey, fn: Callable[..., Any], arrays: Sequence[Any],
                seed: Any) -> Any:
        # JAX programs are pure: the same inputs and key give the same draw with or without a
        # later jax.vjp.
        compiled = self.cache.get(("fwd", key), lambda: self._jit(fn, key, ("fwd",)))
        return compiled(tuple(arrays), seed)

    def vjp(self, key: ProgramKey, fn: Callable[..., Any], arrays: Sequence[Any], seed: Any,
            cotangent: Any, mask: tuple[int, ...]) -> list[Any]:
        jax = self.jax

        def make() -> Any:
            def run(diff: tuple[Any, ...], rest: tuple[Any, ...], seed: Any, ct: Any) -> Any:
                def f(*d: Any) -> Any:
                    return fn(tuple(_merge(d, rest, mask)), seed)

                _, pullback = jax.vjp(f, *diff)
                return pullback(ct)

            return run

        compiled = self.cache.get(("vjp", key, mask),
                                  lambda: self._jit(make(), key, ("vjp", mask)))
        diff = tuple(arrays[i] for i in mask)
        rest = tuple(a for i, a in enumerate(arrays) if i not in mask)
        return list(compiled(diff, rest, seed, cotangent))


class _LazyProgram:
    """A JAX program made on its first call (:meth:`JaxSubstrate._program`), then called."""

    __slots__ = ("sub", "fn", "key", "tag", "_call")

    def __init__(self, sub: JaxSubstrate, fn: Callable[..., Any], key: ProgramKey,
                 tag: tuple[Any, ...]) -> None:
        self.sub, self.fn, self.key, self.tag = sub, fn, key, tag
        self._call: Any = None

    def __call__(self, *args: Any) -> Any:
        call = self._call
        if call is None:
            call = self._call = self.sub._program(self.fn, self.key, self.tag, args)
        return call(*args)


#: File names of compiled programs in the cache directory (:func:`_trim` keeps them in bounds).
_PROGRAM_SUFFIX = "-program"
_PROGRAM_FORMAT = 1


@functools.cache
def _fingerprint(jax: Any) -> str:
    """What a compiled program depends on besides its key and arguments.

    The versions of JAX, jaxlib, TFP and polysample, the source of the programs (so an edited
    checkout never runs a stale program), and the CPU: XLA compiles for the host's instruction
    set, so a cache directory copied to another machine is compiled again, never run there.
    """
    import jaxlib

    parts = [jax.__version__, jaxlib.__version__, _version("tensorflow-probability"),
             _version("polysample"), platform.machine(), jax.default_backend(),
             jax.devices()[0].device_kind]
    here = Path(__file__).parent
    digest = hashlib.sha256()
    for file in sorted([*here.glob("*.py"), here.parent / "_math.py"]):
        digest.update(file.read_bytes())
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features", "model name")):
                digest.update(line.encode())
    return "/".join([*parts, digest.hexdigest()])


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "?"


def _init_custom_calls(jax: Any) -> None:
    """Load the LAPACK kernels XLA:CPU calls for Cholesky, triangular solves and the like.

    jaxlib loads them while *lowering* such an operation (``jaxlib.lapack.prepare_lapack_call``),
    never when running one: a process that only runs programs read from disk would call null
    function pointers and crash (seen with TFP's MultivariateNormalTriL ``log_prob``). Lowering
    one small Cholesky here (about a millisecond, nothing compiled) loads them all.
    """
    jax.jit(jax.lax.linalg.cholesky).lower(np.eye(2, dtype=np.float32))


def _read_program(jax: Any, path: Path) -> Any:
    """The compiled program at ``path``, or None (absent, damaged or not loadable here).

    The file is JAX's own serialization (``jax.experimental.serialize_executable``, a pickle):
    like Python's own bytecode cache, only a directory you trust should hold it.
    """
    try:
        data = path.read_bytes()
    except OSError:
        return None
    from jax.experimental import serialize_executable

    try:
        fmt, blob, in_proto, out_proto = pickle.loads(zlib.decompress(data))
        if fmt != _PROGRAM_FORMAT:
            return None
        registry = jax.tree_util.default_registry
        unflat = jax.tree_util.PyTreeDef.deserialize_using_proto
        return serialize_executable.deserialize_and_load(
            blob, unflat(registry, in_proto), unflat(registry, out_proto))
    except Exception:  # noqa: BLE001 - whatever is wrong with the file, compile instead
        return None


def _write_program(path: Path, compiled: Any) -> None:
    """Best effort: readers see a whole file or none; a failed write only loses the saving."""
    from jax.experimental import serialize_executable

    try:
        blob, in_tree, out_tree = serialize_executable.serialize(compiled)
        data = zlib.compress(pickle.dumps((_PROGRAM_FORMAT, blob, in_tree.serialize_using_proto(),
                                           out_tree.serialize_using_proto())), 1)
    except Exception:  # noqa: BLE001 - a program JAX cannot serialize is simply not kept
        return
    tmp = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink()


#: Serializes the traces that swap in :func:`_pathwise_xlogy`'s functions (re-entrant: a trace
#: may trace another function).
_TRACE_LOCK = threading.RLock()


def _with_pathwise_slope(tf: Any, fn: Callable[..., Any], log: Callable[..., Any],
                         lowest: float) -> Callable[..., Any]:
    """``fn`` (``tf.math.xlogy`` or ``xlog1py``) with its value unchanged and its gradient in
    the first argument ``log(y)`` (``log1p(y)``) also where that argument is 0: TensorFlow's
    gradient is 0 there. ``lowest``: the ``y`` below which ``log`` is not finite."""

    def fixed(x: Any, y: Any, name: Any = None) -> Any:
        value = fn(x, y, name=name)
        x = tf.convert_to_tensor(x, dtype=value.dtype)
        y = tf.convert_to_tensor(y, dtype=value.dtype)
        safe = tf.where(y > lowest, y, tf.zeros_like(y) + (1.0 if lowest == 0.0 else 0.0))
        slope = tf.where(tf.equal(x, 0), log(safe), tf.zeros_like(value))
        # x - stop_gradient(x) is 0: the value is fn's; its gradient in x adds the slope
        return value + (x - tf.stop_gradient(x)) * slope

    return fixed


@contextlib.contextmanager
def _pathwise_xlogy(tf: Any) -> Any:
    """TensorFlow's gradient of ``xlogy(x, y)`` (and ``xlog1py``) in ``x`` is 0 where ``x`` is
    0, and TFP's densities write ``(a - 1) log x`` that way: on TensorFlow,
    ``Gamma(1, 1).log_prob(0.3)`` had gradient 0.577 in the concentration instead of -0.627
    (Beta, Dirichlet, Chi2 at ``df = 2`` and RelaxedBernoulli at temperature 1 alike; JAX's
    gradient is right). While polysample traces its own programs, ``tf.math.xlogy`` and
    ``xlog1py`` are versions with the right gradient (the same values); the originals are put
    back after each trace, and traces run one at a time."""
    mods = {id(m): m for m in (tf.math, tf.compat.v2.math, tf.compat.v1.math)}.values()
    xlogy, xlog1py = tf.math.xlogy, tf.math.xlog1py
    fixed = {"xlogy": _with_pathwise_slope(tf, xlogy, tf.math.log, 0.0),
             "xlog1py": _with_pathwise_slope(tf, xlog1py, tf.math.log1p, -1.0)}
    with _TRACE_LOCK:
        saved = [(m, k, getattr(m, k)) for m in mods for k in fixed if hasattr(m, k)]
        for m, k, _ in saved:
            setattr(m, k, fixed[k])
        try:
            yield
        finally:
            for m, k, f in saved:
                setattr(m, k, f)


def _jax_multiply_no_nan(jax: Any, original: Callable[..., Any]) -> Callable[..., Any]:
    """``multiply_no_nan(x, y)`` (0 where ``y`` is 0, else ``x * y``) whose derivative in ``y``
    is ``x`` also where ``y`` is 0: TFP's JAX substrate writes it as a ``where``, whose
    derivative there is 0 (TFP's own TODO, b/146385087, says what it should be; TensorFlow's is
    right). ``Binomial.log_prob`` multiplies ``softplus(logits)`` by ``total_count - value``
    that way, so its gradient in ``total_count`` at ``value == total_count`` lacked
    ``log(1 - p)`` (finding F16). Same values; integer arguments go to the original."""
    jnp = jax.numpy

    @jax.custom_jvp
    def mnn(x: Any, y: Any) -> Any:
        return jnp.where(jnp.equal(y, 0), jnp.zeros((), x.dtype), x * y)

    @mnn.defjvp
    def mnn_jvp(primals: Any, tangents: Any) -> Any:
        (x, y), (tx, ty) = primals, tangents
        # d(x y) = y dx + x dy, linear in (dx, dy) (so JAX can transpose it): the first term 0
        # where y is 0, the second 0 where x is not finite (as the original's derivative was,
        # rather than inf times a zero cotangent)
        zero = jnp.zeros((), x.dtype)
        dx = jnp.where(jnp.equal(y, 0), zero, tx * y)
        return mnn(x, y), dx + jnp.where(jnp.isfinite(x), x, zero) * ty

    def multiply_no_nan(x: Any, y: Any, name: Any = None) -> Any:
        dtype = jnp.result_type(x, y)
        if not jnp.issubdtype(dtype, jnp.floating):
            return original(x, y, name=name)
        return mnn(jnp.asarray(x, dtype), jnp.asarray(y, dtype))

    return multiply_no_nan


@contextlib.contextmanager
def _pathwise_multiply_no_nan(jax: Any) -> Any:
    """While polysample traces a JAX program, TFP's JAX substrate's ``multiply_no_nan`` is
    :func:`_jax_multiply_no_nan`'s (wherever a module of the substrate holds it); the original
    is put back after each trace, and traces run one at a time (as :func:`_pathwise_xlogy` on
    TensorFlow). A user's own TFP code outside polysample's traces is left alone."""
    numpy_math = importlib.import_module(
        "tensorflow_probability.python.internal.backend.jax.numpy_math")
    original = numpy_math.multiply_no_nan
    fixed = _jax_multiply_no_nan(jax, original)
    prefixes = ("tensorflow_probability.python.internal.backend.jax",
                "tensorflow_probability.substrates.jax")
    with _TRACE_LOCK:
        holders = [m for name, m in list(sys.modules.items())
                   if name.startswith(prefixes) and m is not None
                   and getattr(m, "multiply_no_nan", None) is original]
        for m in holders:
            m.multiply_no_nan = fixed  # type: ignore[attr-defined]
        try:
            yield
        finally:
            for m in holders:
                m.multiply_no_nan = original  # type: ignore[attr-defined]


@contextlib.contextmanager
def _wide_gradient_sums(tf: Any) -> Any:
    """While a backward pass is traced, TensorFlow's gradient functions sum float32 (and
    half-precision) gradients in float64.

    A parameter's gradient sums its per-draw contributions over the sample dimensions (the
    gradient of a broadcast: ``reduce_sum`` in TensorFlow's ``math_grad`` and ``array_grad``),
    and TensorFlow's CPU reduction over a leading dimension accumulates in the tensor's dtype:
    a float32 ``d/dloc mean(x)`` of a MultivariateNormal was 2.9e-3 relative off at 2^20 draws
    and 8.2e-3 at 2^22 (torch: 1.2e-7; JAX: 7e-7). Summed in float64 and rounded once, the
    error is float32's rounding. The forward pass is not traced here: the draws are the same.
    Traces run one at a time (``_TRACE_LOCK``, held by the caller).
    """
    from tensorflow.python.ops import math_ops

    narrow = (tf.float32, tf.float16, tf.bfloat16)
    original = math_ops.reduce_sum

    def reduce_sum(input_tensor: Any, axis: Any = None, keepdims: bool = False,
                   name: Any = None) -> Any:
        dtype = getattr(input_tensor, "dtype", None)
        if dtype in narrow:
            wide = original(tf.cast(input_tensor, tf.float64), axis, keepdims, name)
            return tf.cast(wide, dtype)
        return original(input_tensor, axis, keepdims, name)

    math_ops.reduce_sum = reduce_sum
    try:
        yield
    finally:
        math_ops.reduce_sum = original


def _has_flat_call(tf: Any) -> bool:
    """Whether this TensorFlow's concrete functions have the flat call ``TfSubstrate._call``
    uses, with the parameters it passes (TF 2.21: ``_call_flat(tensor_inputs,
    captured_inputs)``); otherwise programs get the public call."""
    try:
        from tensorflow.python.eager.polymorphic_function.concrete_function import (
            ConcreteFunction,
        )

        params = list(inspect.signature(ConcreteFunction._call_flat).parameters)
    except (ImportError, AttributeError, TypeError, ValueError):
        return False
    return params == ["self", "tensor_inputs", "captured_inputs"]


class TfSubstrate(Substrate):
    name = "tensorflow"

    def __init__(self) -> None:
        super().__init__()
        with _quiet_tensorflow():
            import tensorflow as tf

        import tensorflow_probability as tfp

        self.tf = tf
        self.tfp = tfp
        # What seedless programs (log_prob) receive as their unused seed: input signatures need
        # a tensor there.
        self._no_seed = tf.zeros([2], tf.int32)
        self._flat_calls = _has_flat_call(tf)

    def _function(self, fn: Callable[..., Any], signature: Sequence[Any] | None,
                  args: Sequence[Any]) -> Any:
        """The concrete function of ``fn`` for ``signature`` (None: for ``args``' shapes).

        One program key is one trace, so the program is called as its concrete function: the
        ``tf.function``'s own call looks the trace up again on every call, matching the
        arguments against its signature (about 40% of a small draw's time: 0.4 ms of a call
        instead of 0.23 ms, TF 2.21).
        """
        f = self.tf.function(fn, autograph=False, input_signature=signature)
        # TensorFlow counts traces per Python code object, so the many programs made by the same
        # lambda above would log "N out of the last N calls to ... triggered tf.function
        # retracing" (advice for a user who retraces one function by mistake). This attribute
        # is TF's own switch for it (its SavedModel loader sets it on the functions it
        # restores); a test keeps the log quiet.
        f._omit_frequent_tracing_warning = True
        with _pathwise_xlogy(self.tf):
            return f.get_concrete_function() if signature is not None else \
                f.get_concrete_function(*args)

    def to_native(self, t: torch.Tensor | np.ndarray) -> Any:
        if isinstance(t, np.ndarray):
            return self.tf.constant(t)
        t = t.detach()
        if t.numel() <= SMALL and t.device.type == "cpu":
            return self.tf.constant(t.numpy())
        t = _dense(t)
        try:
            return self.tf.experimental.dlpack.from_dlpack(torch.utils.dlpack.to_dlpack(t))
        except Exception:  # noqa: BLE001 - TF raises assorted internal errors here
            # DLPack refused (TF needs aligned buffers of dtypes it knows): copy instead.
            return self.tf.convert_to_tensor(t.cpu().numpy())

    def to_torch(self, a: Any) -> torch.Tensor:
        try:
            return torch.from_dlpack(self.tf.experimental.dlpack.to_dlpack(a))
        except Exception:  # noqa: BLE001
            # TF cannot export some tensors by DLPack (e.g. non-CPU/GPU placements): copy.
            return torch.from_numpy(np.asarray(a.numpy()))

    def seed(self, words: np.ndarray) -> Any:
        return self.tf.constant(words.view(np.int32))

    def rows_polymorphic(self, family: str) -> bool:
        """A graph is traced in Python (50-150 ms with TFP) but runs any shape its signature
        allows, at the same speed: leaving the row dimension of bucket programs unknown makes
        one trace per family, dtype and event shapes serve every bucket call, one-value calls
        included. Families whose TFP sampler needs a static batch shape
        (``TfpFamily.tf_static_rows``) keep one trace per bucket."""
        fam = TFP_FAMILIES.get(family)
        return fam is None or not fam.tf_static_rows

    def _specs(self, key: ProgramKey) -> list[Any] | None:
        """``tf.function`` input signature of the row-polymorphic programs (None: by value)."""
        if key.bucket != -1:
            return None
        tf = self.tf
        return [tf.TensorSpec([None, *shape[1:]], tf.as_dtype(str(dtype).removeprefix("torch.")))
                for shape, dtype in key.inputs]

    def forward(self, key: ProgramKey, fn: Callable[..., Any], arrays: Sequence[Any],
                seed: Any) -> Any:
        tf = self.tf
        specs = self._specs(key)
        signature = None if specs is None else [tuple(specs), tf.TensorSpec([2], tf.int32)]
        if seed is None:
            seed = self._no_seed
        # One program for sample(), rsample() and log_prob(), with or without gradients: vjp()
        # recomputes the draw under a GradientTape, which gives the same values as this untaped
        # program (TFP 0.25, every family, both dtypes, bucket and exact programs; checked by
        # tests/test_tfp_backend.py). A taped copy of every program cost a second trace each.
        args = (tuple(arrays), seed)
        compiled = self.cache.get(
            ("fwd", key),
            lambda: self._function(lambda arrays, seed: fn(arrays, seed), signature, args))
        return self._call(compiled, args)

    def _call(self, compiled: Any, args: tuple[Any, ...]) -> Any:
        """``compiled(*args)``, by the concrete function's flat call.

        A concrete function's own call binds the arguments to its structured signature
        (canonicalizing, type-checking and casting each argument) before the flat call that
        runs the graph: 10-15% of a small call's time (TF 2.21, docs/backends/tfp.md). Every argument here is already a tensor of the trace's dtype
        and shape (the program key holds them), so the binding is skipped: ``_call_flat``
        (the step the binding ends in) takes the arguments flattened in the same order, and
        the values are the same (tests/test_tfp_backend.py). A TensorFlow without it
        (:func:`_has_flat_call`) gets the public call.
        """
        if not self._flat_calls:
            return compiled(*args)
        return compiled._call_flat(self.tf.nest.flatten(args), compiled.captured_inputs)

    def vjp(self, key: ProgramKey, fn: Callable[..., Any], arrays: Sequence[Any], seed: Any,
            cotangent: Any, mask: tuple[int, ...]) -> list[Any]:
        tf = self.tf
        specs = self._specs(key)
        if seed is None:
            seed = self._no_seed
        signature = None
        if specs is not None:
            signature = [tuple(specs[i] for i in mask),
                         tuple(x for i, x in enumerate(specs) if i not in mask),
                         tf.TensorSpec([2], tf.int32), tf.TensorSpec(None, cotangent.dtype)]

        def make() -> Any:
            def run(diff: tuple[Any, ...], rest: tuple[Any, ...], seed: Any, ct: Any) -> Any:
                with tf.GradientTape() as tape:
                    tape.watch(diff)
                    out = fn(tuple(_merge(diff, rest, mask)), seed)
                with _wide_gradient_sums(tf):
                    grads = tape.gradient(out, list(diff), output_gradients=ct)
                return [tf.zeros_like(d) if g is None else g for d, g in zip(diff, grads)]

            return run

        diff = tuple(arrays[i] for i in mask)
        rest = tuple(a for i, a in enumerate(arrays) if i not in mask)
        args = (diff, rest, seed, cotangent)
        compiled = self.cache.get(("vjp", key, mask),
                                  lambda: self._function(make(), signature, args))
        return list(self._call(compiled, args))


_SUBSTRATES: dict[str, Substrate] = {}
_lock = threading.Lock()


def load_substrate(name: str) -> Substrate:
    """The substrate ``name`` ("jax" or "tensorflow"), imported on first call.

    Raises ``BackendUnavailableError`` (cause chained) naming the extra to install.
    """
    with _lock:
        sub = _SUBSTRATES.get(name)
        if sub is not None:
            return sub
        try:
            sub = JaxSubstrate() if name == "jax" else TfSubstrate()
        except ImportError as exc:
            raise BackendUnavailableError(
                f"The tfp backend on the {name} substrate needs tensorflow-probability and "
                f"{name}, but importing them failed: {type(exc).__name__}: {exc}. "
                f'Install them with: pip install "{_EXTRA[name]}".'
            ) from exc
        _SUBSTRATES[name] = sub
        return sub


def substrate_importable(name: str) -> str | None:
    """The missing top-level module for substrate ``name``, or None; cheap (no import)."""
    needed = ["tensorflow_probability", "jax" if name == "jax" else "tensorflow"]
    for mod in needed:
        if importlib.util.find_spec(mod) is None:
            return mod
    return None
