"""The ``torch`` backend: native ``torch.distributions``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.distributions as td

from ..core.backend import Backend, FamilySupport, Seed
from ..core.families import FAMILIES
from ..core.hookspecs import hookimpl
from ..core.seeds import seed_sequence_from, torch_generator_from


def _build(family: str, params: Mapping[str, Any]) -> td.Distribution:
    spec = FAMILIES[family]
    kwargs = {}
    for name in spec.params:
        if name == "probs":
            continue  # logits carries the same information
        kwargs[name] = params[name]
    return getattr(td, family)(**kwargs, validate_args=False)


class TorchBackend(Backend):
    name = "torch"

    def version(self) -> str:
        return torch.__version__

    def families(self) -> Mapping[str, FamilySupport]:
        return {
            name: FamilySupport(sample=True, rsample=spec.reparameterized, log_prob=True)
            for name, spec in FAMILIES.items()
        }

    def _draw(self, family: str, params: Mapping[str, Any], shape: torch.Size, seed: Seed,
              reparam: bool) -> torch.Tensor:
        dist = _build(family, params)
        fn = dist.rsample if reparam else dist.sample
        if seed is None:
            return fn(shape)
        ss = seed_sequence_from(seed)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(torch_generator_from(ss).initial_seed()))
            return fn(shape)

    def sample(self, family, params, sample_shape, *, seed=None):  # type: ignore[override]
        return self._draw(family, params, sample_shape, seed, False)

    def rsample(self, family, params, sample_shape, *, seed=None):  # type: ignore[override]
        return self._draw(family, params, sample_shape, seed, True)

    def log_prob(self, family, params, value):  # type: ignore[override]
        return _build(family, params).log_prob(value)


@hookimpl
def polysample_register_backends(register):  # type: ignore[no-untyped-def]
    register("torch", TorchBackend)
