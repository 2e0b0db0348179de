"""The TFP backend class (see the package docstring and ``docs/backends/tfp.md``).

This module imports neither JAX nor TensorFlow; :mod:`.substrates` does, on first use.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from ...core.backend import Backend, FamilySupport, Seed
from ...core.config import backend_options
from ...core.errors import (
    BackendContractError,
    BackendUnavailableError,
    ConfigError,
    InvalidParameterError,
    NotReparameterizableError,
    PolysampleError,
    UnsupportedFamilyError,
)
from ...core.families import FAMILIES
from ...core.params import Params
from ...core.seeds import GlobalStream, seed_sequence_from
from .families import MIXTURE_COMPONENTS, TFP_FAMILIES, TfpFamily
from .substrates import Substrate, load_substrate, substrate_importable

__all__ = ["TfpBackend", "SUBSTRATES", "ENV_VAR"]

SUBSTRATES = ("jax", "tensorflow")
ENV_VAR = "POLYSAMPLE_TFP_SUBSTRATE"
#: The keys of [tool.polysample.tfp] (an unknown key is a ConfigError).
OPTIONS = {"substrate": '"jax" (default) or "tensorflow"'}


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
    """torch <-> substrate: forward runs the compiled program, backward the substrate's VJP."""

    @staticmethod
    def forward(ctx: Any, call: _Call, *tensors: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.call = call
        ctx.save_for_backward(*tensors)
        ctx.watch = tuple(i for i, t in enumerate(tensors)
                          if t.requires_grad and t.is_floating_point())
        return call.forward(tensors, ctx.watch)

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
        # Differentiate w.r.t. the inputs watched in forward (the same program on TF), even if
        # this backward needs fewer of them.
        mask = ctx.watch
        grads = ctx.call.backward(tensors, grad, mask)
        out: list[torch.Tensor | None] = [None] * len(tensors)
        for i, g in zip(mask, grads):
            out[i] = g
        return (None, *out)


class _Call:
    """One compiled operation: a cache key, the substrate program and its seed."""

    __slots__ = ("sub", "family", "key", "fn", "seed", "what")

    def __init__(self, sub: Substrate, family: str, key: Any, fn: Any, seed: Any, what: str):
        self.sub, self.family, self.key, self.fn, self.seed, self.what = (
            sub, family, key, fn, seed, what)

    def forward(self, tensors: Sequence[torch.Tensor],
                watch: tuple[int, ...] = ()) -> torch.Tensor:
        sub = self.sub
        arrays = [sub.to_native(t) for t in tensors]
        try:
            out = sub.forward(self.key, self.fn, arrays, self.seed, watch)
        except PolysampleError:
            raise
        except Exception as exc:  # noqa: BLE001 - never let a raw TFP/XLA/TF error out
            raise _wrap(exc, self.family, self.what, sub.name) from exc
        res = sub.to_torch(out)
        device = tensors[0].device if tensors else torch.device("cpu")
        return res if res.device == device else res.to(device)

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


def _wrap(exc: Exception, family: str, what: str, substrate: str) -> PolysampleError:
    text = f"{type(exc).__name__}: {str(exc).strip()[:500]}"
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


class TfpBackend(Backend):
    """TensorFlow Probability on JAX (default) or TensorFlow.

    ``substrate=None`` reads the configuration on first use (``POLYSAMPLE_TFP_SUBSTRATE``, then
    ``[tool.polysample.tfp] substrate``, then ``"jax"``); ``"tensorflow"`` or ``"jax"`` fixes it.
    """

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

    def __getstate__(self) -> dict[str, Any]:
        # The loaded substrate (modules, compiled programs) and the global stream (it holds a
        # lock) stay behind when pickled: a copy loads its own on first use.
        return {**self.__dict__, "_sub": None, "_stream": None}

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
        missing = substrate_importable(self._fixed or "jax") if self._fixed else (
            "tensorflow_probability"
            if importlib.util.find_spec("tensorflow_probability") is None else None)
        if missing is not None:
            extra = "polysample[tfp-tf]" if self._fixed == "tensorflow" else "polysample[tfp]"
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
        return sub

    def families(self) -> Mapping[str, FamilySupport]:
        out = {
            name: FamilySupport(sample=True, rsample=fam.rsample, log_prob=fam.log_prob,
                                note=fam.note)
            for name, fam in TFP_FAMILIES.items()
        }
        return out

    def mixture_components(self) -> frozenset[str]:
        """MixtureSameFamily.rsample (TFP's reparameterize=True) for these components."""
        return frozenset(MIXTURE_COMPONENTS)

    def rsample_mixture(self, mixture_logits: torch.Tensor, component: Params,
                        sample_shape: torch.Size, *, seed: Seed = None) -> torch.Tensor:
        return self._rsample_mixture({"mixture_logits": mixture_logits,
                                      "component_family": component.family,
                                      "component_params": component}, sample_shape, seed)

    # ------------------------------------------------------------------ seeds
    def _seed_words(self, seed: Seed) -> np.ndarray:
        if seed is None:
            stream = self._stream
            if stream is None:
                stream = self._stream = GlobalStream(self.name, _KeyStream)
            return stream.get().next()
        return seed_sequence_from(seed).generate_state(2, np.uint32)

    # ------------------------------------------------------------------ helpers
    def _family(self, family: str) -> TfpFamily:
        fam = TFP_FAMILIES.get(family)
        if fam is None:
            raise UnsupportedFamilyError(
                f"The tfp backend has no family {family!r}. Available: "
                f"{', '.join(sorted(TFP_FAMILIES))}."
            )
        return fam

    @staticmethod
    def _tensors(fam: TfpFamily, params: Mapping[str, Any]) -> list[torch.Tensor]:
        values = [params[n] for n in fam.inputs]
        ref = next((v for v in values if isinstance(v, torch.Tensor) and v.is_floating_point()),
                   None)
        out = []
        for v in values:
            if not isinstance(v, torch.Tensor):
                # e.g. RelaxedBernoulli keeps a Python float temperature
                v = torch.as_tensor(v, dtype=ref.dtype if ref is not None else None,
                                    device=ref.device if ref is not None else None)
            out.append(v)
        return out

    @staticmethod
    def _key(what: str, family: str, shape: tuple[int, ...], static: tuple[Any, ...],
             tensors: Sequence[torch.Tensor]) -> tuple[Any, ...]:
        return (what, family, shape, static,
                tuple((tuple(t.shape), t.dtype) for t in tensors))

    def _program(self, family: str, fam: TfpFamily, shape: tuple[int, ...],
                 static: tuple[Any, ...], what: str) -> Any:
        tfp = self.substrate.tfp
        names = fam.inputs
        if what == "log_prob":
            def lp(arrays: tuple[Any, ...], seed: Any) -> Any:
                p = dict(zip(names, arrays[:-1]))
                return fam.build(tfp, p, static).log_prob(arrays[-1])  # type: ignore[misc]
            return lp

        def draw(arrays: tuple[Any, ...], seed: Any) -> Any:
            p = dict(zip(names, arrays))
            if fam.draw is not None:
                return fam.draw(tfp, p, static, shape, seed)
            return fam.build(tfp, p, static).sample(shape, seed=seed)  # type: ignore[misc]
        return draw

    def _run(self, family: str, params: Mapping[str, Any], sample_shape: torch.Size,
             seed: Seed, grad: bool) -> torch.Tensor:
        fam = self._family(family)
        sub = self.substrate
        tensors = self._tensors(fam, params)
        static = tuple(int(params[n]) for n in fam.static)
        shape = tuple(sample_shape)
        what = "rsample" if grad else "sample"
        key = self._key("draw", family, shape, static, tensors)
        call = _Call(sub, family, key, self._program(family, fam, shape, static, "draw"),
                     sub.seed(self._seed_words(seed)), what)
        if grad and torch.is_grad_enabled() and any(t.requires_grad for t in tensors):
            out = _Bridge.apply(call, *tensors)
        else:
            out = call.forward(tensors)
        return self._post(fam, params, out, grad)

    @staticmethod
    def _post(fam: TfpFamily, params: Mapping[str, Any], out: torch.Tensor,
              grad: bool) -> torch.Tensor:
        if fam.post == "stick_breaking":
            from torch.distributions.transforms import StickBreakingTransform

            return StickBreakingTransform()(out)
        if fam.post == "straight_through" and grad:
            probs = params["probs"]
            return out + (probs - probs.detach())
        return out

    # ------------------------------------------------------------------ API
    def sample(self, family: str, params: Mapping[str, Any], sample_shape: torch.Size, *,
               seed: Seed = None) -> torch.Tensor:
        return self._run(family, params, sample_shape, seed, grad=False)

    def rsample(self, family: str, params: Mapping[str, Any], sample_shape: torch.Size, *,
                seed: Seed = None) -> torch.Tensor:
        fam = self._family(family)
        if not fam.rsample:
            raise NotReparameterizableError(
                f"{family} has no reparameterized sampler on the tfp backend. Use sample() with "
                "log_prob() (score-function estimator) or a relaxed family."
            )
        return self._run(family, params, sample_shape, seed, grad=True)

    def log_prob(self, family: str, params: Mapping[str, Any],
                 value: torch.Tensor) -> torch.Tensor:
        fam = self._family(family)
        if not fam.log_prob:
            raise UnsupportedFamilyError(
                f"The tfp backend does not score {family} itself (it is composed); polysample "
                "scores it with torch."
            )
        sub = self.substrate
        tensors = self._tensors(fam, params)
        if family != "Categorical" and value.dtype != tensors[0].dtype:
            value = value.to(tensors[0].dtype)
        static = tuple(int(params[n]) for n in fam.static)
        key = self._key("log_prob", family, (), static, [*tensors, value])
        call = _Call(sub, family, key, self._program(family, fam, (), static, "log_prob"),
                     None, "log_prob")
        all_t = [*tensors, value]
        if torch.is_grad_enabled() and any(t.requires_grad for t in all_t):
            return _Bridge.apply(call, *all_t)
        return call.forward(all_t)

    def _rsample_mixture(self, params: Mapping[str, Any], sample_shape: torch.Size,
                         seed: Seed) -> torch.Tensor:
        comp = params["component_family"]
        if comp not in MIXTURE_COMPONENTS:
            raise NotReparameterizableError(
                f"MixtureSameFamily.rsample on the tfp backend supports components "
                f"{list(MIXTURE_COMPONENTS)}; received {comp!r}. Use sample() with log_prob()."
            )
        fam = TFP_FAMILIES[comp]
        sub = self.substrate
        logits = params["mixture_logits"]
        comp_tensors = self._tensors(fam, params["component_params"])
        tensors = [logits.to(comp_tensors[0].dtype), *comp_tensors]
        shape = tuple(sample_shape)
        tfp = sub.tfp
        names = fam.inputs

        def draw(arrays: tuple[Any, ...], seed: Any) -> Any:
            tfd = tfp.distributions
            component = fam.build(tfp, dict(zip(names, arrays[1:])), ())  # type: ignore[misc]
            mixture = tfd.MixtureSameFamily(tfd.Categorical(logits=arrays[0]), component,
                                            reparameterize=True)
            return mixture.sample(shape, seed=seed)

        key = self._key("mixture", comp, shape, (), tensors)
        call = _Call(sub, f"MixtureSameFamily({comp})", key, draw,
                     sub.seed(self._seed_words(seed)), "rsample")
        if torch.is_grad_enabled() and any(t.requires_grad for t in tensors):
            return _Bridge.apply(call, *tensors)
        return call.forward(tensors)


# FAMILIES is the source of truth for names: a typo in TFP_FAMILIES must fail loudly at import.
_unknown = set(TFP_FAMILIES) - set(FAMILIES)
if _unknown:  # pragma: no cover - a programming error
    raise ImportError(f"TFP_FAMILIES names unknown families: {sorted(_unknown)}")
