"""Benchmarks of the tfp backend against calling TFP directly, on both substrates.

* Large draws (Normal, Gamma): polysample vs TFP's own compiled sampler (``jax.jit`` /
  ``tf.function``) plus the conversion to a torch tensor by DLPack. Goal: <= 1.1x.
* Scalar draws, warm cache: polysample's per-call time vs eager TFP (what a user calling TFP
  without compiling pays). Goal: <= 0.2 ms per call.
* Normal ``rsample`` + ``backward`` of 1e6 values vs torch.distributions (for scale: the bridge
  recomputes the forward draw in the substrate's VJP).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import Comparison  # noqa: E402

import polysample as ps  # noqa: E402


def _jax_direct(family: str, n: int) -> Callable[[], object]:
    import jax
    from tensorflow_probability.substrates import jax as tfp

    jax.config.update("jax_enable_x64", True)
    tfd = tfp.distributions
    make = {"Normal": lambda: tfd.Normal(np.float32(0.0), np.float32(1.0)),
            "Gamma": lambda: tfd.Gamma(np.float32(2.0), np.float32(1.0))}[family]
    draw = jax.jit(lambda key: make().sample(n, seed=key))
    state = {"i": 0}

    def run() -> object:
        state["i"] += 1
        return torch.from_dlpack(draw(np.array([state["i"], 7], np.uint32)))

    return run


def _tf_direct(family: str, n: int) -> Callable[[], object]:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf
    import tensorflow_probability as tfp

    tfd = tfp.distributions
    make = {"Normal": lambda: tfd.Normal(np.float32(0.0), np.float32(1.0)),
            "Gamma": lambda: tfd.Gamma(np.float32(2.0), np.float32(1.0))}[family]
    draw = tf.function(lambda seed: make().sample(n, seed=seed), autograph=False)
    state = {"i": 0}

    def run() -> object:
        state["i"] += 1
        out = draw(tf.constant([state["i"], 7], tf.int32))
        return torch.from_dlpack(tf.experimental.dlpack.to_dlpack(out))

    return run


def _eager_scalar(substrate: str) -> Callable[[], object]:
    if substrate == "jax":
        from tensorflow_probability.substrates import jax as tfp

        key = np.array([1, 2], np.uint32)
        return lambda: tfp.distributions.Normal(np.float32(0.0), np.float32(1.0)).sample(
            seed=key)
    import tensorflow as tf
    import tensorflow_probability as tfp

    seed = tf.constant([1, 2], tf.int32)
    return lambda: tfp.distributions.Normal(np.float32(0.0), np.float32(1.0)).sample(seed=seed)


def _ps(family: str, backend: str, n: int, **params: Any) -> Callable[[], object]:
    d = getattr(ps, family)(**{k: torch.tensor(v) for k, v in params.items()}, backend=backend)
    shape = (n,) if n else ()
    return lambda: d.sample(shape)


def _rsample_backward(backend: str, n: int) -> Callable[[], object]:
    loc = torch.zeros((), requires_grad=True)
    scale = torch.ones((), requires_grad=True)

    def run() -> object:
        x = ps.Normal(loc, scale, backend=backend).rsample((n,))
        (x * x).sum().backward()
        return loc.grad

    return run


def _torch_rsample_backward(n: int) -> Callable[[], object]:
    loc = torch.zeros((), requires_grad=True)
    scale = torch.ones((), requires_grad=True)

    def run() -> object:
        x = torch.distributions.Normal(loc, scale).rsample((n,))
        (x * x).sum().backward()
        return loc.grad

    return run


def comparisons(quick: bool) -> list[Comparison]:
    """Large draws, scalar draws and rsample+backward, on the JAX and TensorFlow substrates."""
    n_big = 10**6 if quick else 10**7
    n_grad = 10**5 if quick else 10**6
    big = f"1e{int(np.log10(n_big))}"
    out: list[Comparison] = []
    for backend, substrate, direct in (("tfp", "jax", _jax_direct), ("tfp-tf", "tensorflow",
                                                                    _tf_direct)):
        for family, params in (("Normal", {"loc": 0.0, "scale": 1.0}),
                               ("Gamma", {"concentration": 2.0, "rate": 1.0})):
            out.append(Comparison(
                title=f"{family}.sample {big} ({substrate})",
                baseline_label=f"TFP {substrate} compiled + DLPack to torch",
                baseline=direct(family, n_big),
                candidates={f"polysample[{backend}]": _ps(family, backend, n_big, **params)},
                goal="<= 1.1x",
            ))
        out.append(Comparison(
            title=f"Normal.sample scalar, warm cache ({substrate})",
            baseline_label=f"TFP {substrate} eager",
            baseline=_eager_scalar(substrate),
            candidates={f"polysample[{backend}]": _ps("Normal", backend, 0, loc=0.0, scale=1.0)},
            goal="<= 0.2 ms",
        ))
        out.append(Comparison(
            title=f"Normal.rsample+backward 1e{int(np.log10(n_grad))} ({substrate})",
            baseline_label="torch.distributions",
            baseline=_torch_rsample_backward(n_grad),
            candidates={f"polysample[{backend}]": _rsample_backward(backend, n_grad)},
        ))
    return out
