"""``numpy-legacy``: an example third-party polysample backend.

Draws with NumPy's legacy ``numpy.random.RandomState`` (Mersenne Twister) and hands back
``torch.Tensor`` values that follow polysample's contract:

* shape ``sample_shape + batch_shape`` (all families here are univariate), the parameters'
  dtype and device;
* ``seed=None`` draws from this backend's global stream, which :func:`polysample.manual_seed`
  seeds (through :class:`polysample.core.seeds.GlobalStream`, rebuilt after a fork);
  a ``SeedSequence`` seeds a fresh ``RandomState`` (same seed, same values); a
  ``torch.Generator`` is turned into a ``SeedSequence`` by ``seed_sequence_from``;
* ``rsample`` keeps the randomness in NumPy and the differentiable transform in torch
  (``loc + scale * eps``), so gradients reach the torch parameters;
* ``log_prob`` is left to torch (``FamilySupport(log_prob=False)``).

The module registers the backend through the ``polysample_register_backends`` hook and is
exposed under the ``polysample`` entry-point group in this package's ``pyproject.toml``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch

import polysample
from polysample.core.seeds import GlobalStream, seed_sequence_from

__all__ = ["NumpyLegacyBackend", "polysample_register_backends"]

__version__ = "0.1.0"

_Params = Mapping[str, Any]
_Draw = Callable[[np.random.RandomState, _Params, tuple[int, ...]], np.ndarray]


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().to(torch.float64).numpy()


# Each drawer returns float64 values of shape ``size`` (sample_shape + batch_shape).
_SAMPLERS: dict[str, _Draw] = {
    "Normal": lambda rs, p, size: rs.normal(_np(p["loc"]), _np(p["scale"]), size),
    "Exponential": lambda rs, p, size: rs.exponential(1.0 / _np(p["rate"]), size),
    "Uniform": lambda rs, p, size: rs.uniform(_np(p["low"]), _np(p["high"]), size),
    # RandomState.gamma takes a scale, torch a rate.
    "Gamma": lambda rs, p, size: rs.gamma(_np(p["concentration"]), 1.0 / _np(p["rate"]), size),
    "Beta": lambda rs, p, size: rs.beta(_np(p["concentration1"]), _np(p["concentration0"]), size),
    "Poisson": lambda rs, p, size: rs.poisson(_np(p["rate"]), size).astype(np.float64),
    "Bernoulli": lambda rs, p, size: (rs.random_sample(size) < _np(p["probs"])).astype(np.float64),
}

# Reparameterized draws: standard noise from NumPy, the transform in torch.
_NOISE: dict[str, Callable[[np.random.RandomState, tuple[int, ...]], np.ndarray]] = {
    "Normal": lambda rs, size: rs.standard_normal(size),
    "Exponential": lambda rs, size: rs.standard_exponential(size),
    "Uniform": lambda rs, size: rs.random_sample(size),
}
_TRANSFORMS: dict[str, Callable[[_Params, torch.Tensor], torch.Tensor]] = {
    "Normal": lambda p, eps: p["loc"] + p["scale"] * eps,
    "Exponential": lambda p, eps: eps / p["rate"],
    "Uniform": lambda p, eps: p["low"] + (p["high"] - p["low"]) * eps,
}

# The first parameter of each family: its shape is the batch shape (the core has broadcast
# every parameter already), its dtype and device those of the result.
_FIRST = {"Normal": "loc", "Exponential": "rate", "Uniform": "low", "Gamma": "concentration",
          "Beta": "concentration1", "Poisson": "rate", "Bernoulli": "probs"}


class NumpyLegacyBackend(polysample.Backend):
    """polysample backend drawing with ``numpy.random.RandomState``."""

    name = "numpy-legacy"

    def __init__(self) -> None:
        # Cheap: the global RandomState is built on first use (and again after manual_seed).
        self._stream = GlobalStream(
            "numpy-legacy", lambda ss: np.random.RandomState(np.random.MT19937(ss))
        )

    def version(self) -> str:
        return f"numpy {np.__version__} RandomState"

    def families(self) -> Mapping[str, polysample.FamilySupport]:
        return {
            fam: polysample.FamilySupport(
                sample=True, rsample=fam in _NOISE, log_prob=False,
                note="legacy RandomState (MT19937)",
            )
            for fam in _SAMPLERS
        }

    def _rng(self, seed: Any) -> np.random.RandomState:
        if seed is None:
            return self._stream.get()
        return np.random.RandomState(np.random.MT19937(seed_sequence_from(seed)))

    def sample(self, family: str, params: _Params, sample_shape: torch.Size, *,
               seed: Any = None) -> torch.Tensor:
        ref = params[_FIRST[family]]
        size = tuple(sample_shape) + tuple(ref.shape)
        values = _SAMPLERS[family](self._rng(seed), params, size)
        return torch.from_numpy(np.asarray(values, dtype=np.float64).reshape(size)).to(
            dtype=ref.dtype, device=ref.device
        )

    def rsample(self, family: str, params: _Params, sample_shape: torch.Size, *,
                seed: Any = None) -> torch.Tensor:
        if family not in _NOISE:
            raise polysample.NotReparameterizableError(
                f"numpy-legacy has no reparameterized sampler for {family}. Use sample() with "
                "log_prob(), or another backend."
            )
        ref = params[_FIRST[family]]
        size = tuple(sample_shape) + tuple(ref.shape)
        eps = torch.from_numpy(np.asarray(_NOISE[family](self._rng(seed), size)).reshape(size))
        return _TRANSFORMS[family](params, eps.to(dtype=ref.dtype, device=ref.device))


@polysample.hookimpl
def polysample_register_backends(register: Callable[[str, Any], None]) -> None:
    """Register ``numpy-legacy`` (the class itself: instantiating it is cheap)."""
    register("numpy-legacy", NumpyLegacyBackend)
