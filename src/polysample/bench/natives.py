"""The benchmark's families and the native libraries called directly, beside polysample.

Each backend is compared with the library it wraps, called the way a user of that library
would call it by hand, in float32:

* ``torch`` (and ``auto``): a prebuilt ``torch.distributions`` object (``sample``,
  ``rsample`` + ``backward``, ``log_prob``);
* ``numpy``: a ``numpy.random.Generator`` call (NumPy's float32 path where it has one, else
  ``astype(float32)``), arithmetic in place, then ``torch.from_numpy``. NumPy has neither
  gradients nor densities, so ``rsample`` + ``backward`` and ``log_prob`` compare with
  ``torch.distributions``, which is what the backend uses for them;
* ``tfp`` / ``tfp-tf``: TFP on JAX (``jax.jit``) or TensorFlow (a ``tf.function``'s concrete
  function, TensorFlow's fastest call path), compiled once, with the result handed to torch by
  DLPack; ``rsample`` + ``backward`` is the substrate's own compiled gradient
  (``jax.value_and_grad`` / ``tf.GradientTape``), which measures what the DLPack/VJP bridge
  adds.

:data:`BENCH_FAMILIES` lists the families of a default run with their parameters; any other
family takes the conformance suite's example parameters (which imports SciPy) and is compared
with ``torch.distributions`` only.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

__all__ = ["BenchFamily", "BENCH_FAMILIES", "family_params", "native_label", "native_sample",
           "native_rsample_backward", "native_log_prob", "memory_case", "loss"]

Fn = Callable[[], object]
F32 = np.float32


def _ip(x: np.ndarray, mul: float = 1.0, add: float = 0.0) -> np.ndarray:
    """``x * mul + add`` in place, in x's dtype (what one writes by hand for float32)."""
    if mul != 1.0:
        x *= x.dtype.type(mul)
    if add != 0.0:
        x += x.dtype.type(add)
    return x


@dataclass(frozen=True)
class BenchFamily:
    """A family of the default run: its parameters, NumPy's direct call, TFP's extra kwargs.

    ``numpy(rng, size)`` returns a float32 array of shape ``size``. TFP's class has the
    family's name and parameter names; ``tfp_kwargs`` adds what it needs besides them.
    """

    name: str
    params: dict[str, float]
    numpy: Callable[[np.random.Generator, tuple[int, ...]], np.ndarray]
    tfp_kwargs: dict[str, Any] = field(default_factory=dict)


def _lognormal(r: np.random.Generator, s: tuple[int, ...]) -> np.ndarray:
    x = _ip(r.standard_normal(s, dtype=F32), 0.5)
    return np.exp(x, out=x)


#: The families of a default ``polysample bench`` run, with float32 parameters.
BENCH_FAMILIES: dict[str, BenchFamily] = {f.name: f for f in [
    BenchFamily("Normal", {"loc": 1.5, "scale": 2.0},
                lambda r, s: _ip(r.standard_normal(s, dtype=F32), 2.0, 1.5)),
    BenchFamily("LogNormal", {"loc": 0.0, "scale": 0.5}, _lognormal),
    BenchFamily("Uniform", {"low": -1.0, "high": 3.0},
                lambda r, s: _ip(r.random(s, dtype=F32), 4.0, -1.0)),
    BenchFamily("Exponential", {"rate": 2.0},
                lambda r, s: _ip(r.standard_exponential(s, dtype=F32), 0.5)),
    BenchFamily("Gamma", {"concentration": 2.0, "rate": 1.5},
                lambda r, s: _ip(r.standard_gamma(2.0, s, dtype=F32), 1 / 1.5)),
    BenchFamily("Beta", {"concentration1": 2.0, "concentration0": 3.0},
                lambda r, s: np.asarray(r.beta(2.0, 3.0, s)).astype(F32)),
    BenchFamily("StudentT", {"df": 5.0, "loc": 0.0, "scale": 1.0},
                lambda r, s: np.asarray(r.standard_t(5.0, s)).astype(F32)),
    BenchFamily("Laplace", {"loc": 0.0, "scale": 1.0},
                lambda r, s: np.asarray(r.laplace(0.0, 1.0, s)).astype(F32)),
    BenchFamily("Poisson", {"rate": 4.0},
                lambda r, s: np.asarray(r.poisson(4.0, s)).astype(F32)),
    BenchFamily("Bernoulli", {"probs": 0.3},
                lambda r, s: np.asarray(r.random(s, dtype=F32) < F32(0.3)).astype(F32),
                tfp_kwargs={"dtype": np.float32}),
]}


def family_params(family: str, dtype: torch.dtype = torch.float32,
                  requires_grad: bool = False) -> dict[str, Any]:
    """Constructor arguments of ``family`` for the benchmark (fresh tensors on each call)."""
    fam = BENCH_FAMILIES.get(family)
    if fam is not None:
        return {k: torch.tensor(v, dtype=dtype, requires_grad=requires_grad)
                for k, v in fam.params.items()}
    from ..conformance.grids import example_params, grad_leaves

    params = example_params(family, (), dtype)
    if requires_grad:
        grad_leaves(family, params)
    return params


def _torch_dist(family: str, requires_grad: bool = False) -> Any:
    import torch.distributions as td

    return getattr(td, family)(**family_params(family, requires_grad=requires_grad))


def loss(x: torch.Tensor) -> torch.Tensor:
    """The scalar every ``rsample`` + ``backward`` case differentiates."""
    return x.square().mean() if x.is_floating_point() else x.float().mean()


def native_label(backend: str, op: str) -> str:
    """What ``backend`` is compared with for ``op``."""
    if backend in ("tfp", "tfp-tf"):
        sub = "JAX" if _substrate(backend) == "jax" else "TensorFlow"
        what = {"sample": "compiled", "rsample": "compiled value and grad",
                "log_prob": "compiled"}[op]
        return f"TFP on {sub}, {what}" + (" + DLPack" if op != "rsample" else "")
    if backend == "numpy" and op == "sample":
        return "NumPy + torch.from_numpy"
    return "torch.distributions"


def _substrate(backend: str) -> str:
    if backend == "tfp-tf":
        return "tensorflow"
    from ..core.plugins import load_backend

    return str(getattr(load_backend(backend), "substrate_name", None)
               or os.environ.get("POLYSAMPLE_TFP_SUBSTRATE", "jax"))


# ----------------------------------------------------------------------------- sample
def native_sample(backend: str, family: str, shape: tuple[int, ...]) -> Fn | None:
    """The native library's own ``sample`` of ``shape``, or None where there is none."""
    if backend in ("torch", "auto"):
        d = _torch_dist(family)
        size = torch.Size(shape)
        return lambda: d.sample(size)
    fam = BENCH_FAMILIES.get(family)
    if fam is None:
        return None
    if backend == "numpy":
        rng = np.random.default_rng(0)
        draw = fam.numpy
        return lambda: torch.from_numpy(np.asarray(draw(rng, shape)))
    if backend in ("tfp", "tfp-tf"):
        if _substrate(backend) == "jax":
            return _jax_sample(fam, shape)
        return _tf_sample(fam, shape)
    return None


def _tfd_kwargs(fam: BenchFamily) -> tuple[str, dict[str, Any]]:
    kwargs: dict[str, Any] = {k: np.float32(v) for k, v in fam.params.items()}
    kwargs.update(fam.tfp_kwargs)
    return fam.name, kwargs


def _jax() -> tuple[Any, Any, Any]:
    import jax
    import jax.numpy as jnp
    from tensorflow_probability.substrates import jax as tfp

    jax.config.update("jax_enable_x64", True)  # as the tfp backend does
    return jax, jnp, tfp.distributions


def _tf() -> tuple[Any, Any]:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf
    import tensorflow_probability as tfp

    return tf, tfp.distributions


def _counter() -> Callable[[], int]:
    state = {"i": 0}

    def nxt() -> int:
        state["i"] += 1
        return state["i"]
    return nxt


def _jax_sample(fam: BenchFamily, shape: tuple[int, ...]) -> Fn:
    jax, _, tfd = _jax()
    name, kwargs = _tfd_kwargs(fam)
    draw = jax.jit(lambda key: getattr(tfd, name)(**kwargs).sample(shape, seed=key))
    nxt = _counter()
    return lambda: torch.from_dlpack(draw(np.array([nxt(), 7], np.uint32)))


def _tf_sample(fam: BenchFamily, shape: tuple[int, ...]) -> Fn:
    tf, tfd = _tf()
    name, kwargs = _tfd_kwargs(fam)
    fn = tf.function(lambda seed: getattr(tfd, name)(**kwargs).sample(shape, seed=seed),
                     autograph=False)
    # The concrete function: TensorFlow's fastest call path (no signature matching per call).
    concrete = fn.get_concrete_function(tf.TensorSpec([2], tf.int32))
    nxt = _counter()
    to_dlpack = tf.experimental.dlpack.to_dlpack

    def run() -> object:
        out = concrete(tf.constant([nxt(), 7], tf.int32))
        return torch.from_dlpack(to_dlpack(out))
    return run


# ----------------------------------------------------------------------------- rsample
def native_rsample_backward(backend: str, family: str, shape: tuple[int, ...]) -> Fn | None:
    """The native ``rsample`` + ``backward`` of :func:`loss` (None where there is none)."""
    if backend in ("torch", "auto", "numpy"):
        import torch.distributions as td

        params = family_params(family, requires_grad=True)
        leaves = [v for v in params.values() if isinstance(v, torch.Tensor) and v.requires_grad]
        cls = getattr(td, family)
        if not cls.has_rsample:
            return None
        size = torch.Size(shape)

        def run() -> object:
            for v in leaves:
                v.grad = None
            x = cls(**params).rsample(size)  # built per call: see engine.cases
            loss(x).backward()
            return x
        return run
    fam = BENCH_FAMILIES.get(family)
    if fam is None or family in ("Poisson", "Bernoulli"):
        return None
    name, kwargs = _tfd_kwargs(fam)
    if _substrate(backend) == "jax":
        jax, jnp, tfd = _jax()

        def f(kw: dict[str, Any], key: Any) -> Any:
            x = getattr(tfd, name)(**kw).sample(shape, seed=key)
            return jnp.mean(x * x)
        vg = jax.jit(jax.value_and_grad(f))
        nxt = _counter()

        def run_jax() -> object:
            value, grads = vg(kwargs, np.array([nxt(), 7], np.uint32))
            jax.block_until_ready(grads)
            return value
        return run_jax
    tf, tfd = _tf()
    variables = {k: tf.constant(v) for k, v in kwargs.items()}

    @tf.function(autograph=False)
    def g(kw: dict[str, Any], seed: Any) -> Any:
        with tf.GradientTape() as tape:
            tape.watch(list(kw.values()))
            x = getattr(tfd, name)(**kw).sample(shape, seed=seed)
            value = tf.reduce_mean(x * x)
        return value, tape.gradient(value, list(kw.values()))
    nxt = _counter()
    return lambda: g(variables, tf.constant([nxt(), 7], tf.int32))


# ----------------------------------------------------------------------------- log_prob
def native_log_prob(backend: str, family: str, values: torch.Tensor) -> Fn | None:
    """The native ``log_prob`` of ``values`` (None where there is none)."""
    if backend in ("torch", "auto", "numpy"):
        d = _torch_dist(family)
        return lambda: d.log_prob(values)
    fam = BENCH_FAMILIES.get(family)
    if fam is None:
        return None
    name, kwargs = _tfd_kwargs(fam)
    if _substrate(backend) == "jax":
        jax, _, tfd = _jax()
        x = jax.dlpack.from_dlpack(values.contiguous())
        lp = jax.jit(lambda v: getattr(tfd, name)(**kwargs).log_prob(v))
        return lambda: torch.from_dlpack(lp(x))
    tf, tfd = _tf()
    x = tf.constant(values.numpy())
    fn = tf.function(lambda v: getattr(tfd, name)(**kwargs).log_prob(v), autograph=False)
    concrete = fn.get_concrete_function(tf.TensorSpec(x.shape, x.dtype))
    to_dlpack = tf.experimental.dlpack.to_dlpack
    return lambda: torch.from_dlpack(to_dlpack(concrete(x)))


# ----------------------------------------------------------------------------- memory
def memory_case(spec: dict[str, Any]) -> Callable[[int], torch.Tensor]:
    """``draw(n)`` for a memory measurement: ``spec`` names ``kind`` ("polysample" or
    "native"), ``backend`` and ``family``."""
    family, backend = spec["family"], spec["backend"]
    if spec["kind"] == "polysample":
        import polysample as ps

        d = getattr(ps, family)(**family_params(family), backend=backend)
        return lambda n: d.sample((n,))
    if backend == "numpy":
        fam = BENCH_FAMILIES[family]
        rng = np.random.default_rng(0)
        draw = fam.numpy
        return lambda n: torch.from_numpy(np.asarray(draw(rng, (n,))))
    d = _torch_dist(family)
    return lambda n: d.sample((n,))
