"""Deliberately broken backends: each wraps the torch backend with exactly one defect.

Registered through the public plugin hook (``POLYSAMPLE_PLUGINS=tests.mutants`` or
``polysample.core.plugins``); ``tests/test_conformance_mutants.py`` asserts that the conformance
suite FAILS each one, naming the check that should catch it (CONFORMANCE.md, "Mutants").
"""

from __future__ import annotations

import dataclasses
import math
import threading
import zlib
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

import polysample
from polysample.backends.torch_backend import TorchBackend
from polysample.core.backend import Backend, FamilySupport
from polysample.core.families import FAMILIES
from polysample.core.params import Params
from polysample.plugin import GlobalStream


class _Mutant(Backend):
    """The torch backend restricted to ``FAMILIES``, with ``mutate`` applied to every draw."""

    FAMILIES: tuple[str, ...] = ("Normal",)

    def __init__(self) -> None:
        self._inner = TorchBackend()

    def version(self) -> str:
        return f"mutant of torch {torch.__version__}"

    def families(self) -> Mapping[str, FamilySupport]:
        inner = self._inner.families()
        return {f: inner[f] for f in self.FAMILIES}

    def mutate(self, family: str, params: Mapping[str, Any], x: torch.Tensor) -> torch.Tensor:
        return x

    def sample(self, family, params, sample_shape, *, seed=None):  # type: ignore[override]
        return self.mutate(family, params, self._inner.sample(family, params, sample_shape,
                                                              seed=seed))

    def rsample(self, family, params, sample_shape, *, seed=None):  # type: ignore[override]
        return self.mutate(family, params, self._inner.rsample(family, params, sample_shape,
                                                               seed=seed))

    def log_prob(self, family, params, value):  # type: ignore[override]
        return self._inner.log_prob(family, params, value)


def perturbed(family: str, params: Mapping[str, Any], name: str, factor: float, *,
              first_component: bool = False) -> dict[str, Any]:
    """``params`` with parameter ``name`` multiplied by ``factor`` (``logits`` follows a changed
    ``probs``). A vector of probabilities has its first probability multiplied and the others
    rescaled so they still sum to 1 (scaling them all would change nothing); with
    ``first_component``, another vector of components (Dirichlet's concentration) also has its
    first component changed only. Shared by these mutants and ``benchmarks/power_table.py``."""
    changed = dict(params)
    value = params[name]
    if name == "probs" and FAMILIES[family].param_event_dim("probs") == 1:
        first = value[..., :1] * factor
        rest = value[..., 1:] * (1 - first) / (1 - value[..., :1])
        changed[name] = torch.cat([first, rest], -1)
        changed["logits"] = changed[name].log()
        return changed
    if first_component:
        changed[name] = torch.cat([value[..., :1] * factor, value[..., 1:]], -1)
    else:
        changed[name] = value * factor
    if name == "probs":
        changed["logits"] = torch.logit(changed["probs"])
    return changed


class _ParamMutant(_Mutant):
    """Draws with one parameter off by a factor: ``ERRORS[family] = (parameter, factor)``."""

    ERRORS: dict[str, tuple[str, float]] = {}

    def _params(self, family, params):  # type: ignore[no-untyped-def]
        name, factor = self.ERRORS[family]
        return perturbed(family, params, name, factor)

    def sample(self, family, params, sample_shape, *, seed=None):  # type: ignore[override]
        return self._inner.sample(family, self._params(family, params), sample_shape, seed=seed)

    def rsample(self, family, params, sample_shape, *, seed=None):  # type: ignore[override]
        return self._inner.rsample(family, self._params(family, params), sample_shape,
                                   seed=seed)


def param_mutant(family: str, param: str, factor: float) -> type[_Mutant]:
    """A backend drawing ``family`` with ``param`` multiplied by ``factor``."""
    return type(f"{family}{param.capitalize()}Mutant", (_ParamMutant,),
                {"FAMILIES": (family,), "ERRORS": {family: (param, factor)}})


class ScaleMutant(_Mutant):
    """Normal drawn with scale x 1.01."""

    def mutate(self, family, params, x):  # type: ignore[no-untyped-def]
        return params["loc"] + (x - params["loc"]) * 1.01


class GradPathWideMutant(_Mutant):
    """``rsample()`` draws a Normal 10% too wide where a parameter requires grad (a model's
    path), its gradients consistent with those values; right without gradients. The sampler
    layer drew ``rsample()`` without gradients: every check passed it (an outside trial)."""

    def rsample(self, family, params, sample_shape, *, seed=None):  # type: ignore[override]
        x = self._inner.rsample(family, params, sample_shape, seed=seed)
        if torch.is_grad_enabled() and any(isinstance(v, torch.Tensor) and v.requires_grad
                                           for v in params.values()):
            return params["loc"] + (x - params["loc"]) * 1.1
        return x


class LogitsSignMutant(_Mutant):
    """A Bernoulli given ``logits`` drawn from ``sigmoid(-logits)`` (right from ``probs``): no
    sampler check built a family from ``logits`` (an outside trial's)."""

    FAMILIES = ("Bernoulli",)

    def sample(self, family, params, sample_shape, *, seed=None):  # type: ignore[override]
        src = getattr(params, "_source", None)
        if src is not None and getattr(src, "_param", None) is vars(src).get("logits"):
            # built from logits (torch keeps the given one as _param)
            flipped = -src.logits
            params = Params(family, {"probs": torch.sigmoid(flipped), "logits": flipped},
                            params.batch_shape, params.event_shape, params.dtype,
                            params.float_dtype, params.device)
        return self._inner.sample(family, params, sample_shape, seed=seed)


class RelaxedLogitsChainMutant(_Mutant):
    """A RelaxedBernoulli given ``logits``: ``rsample()``'s values right, its ``logits``
    gradient the ``probs`` gradient (the chain factor ``p (1 - p)`` missing). Every gradient
    grid was given ``probs``: it passed every check (an outside trial)."""

    FAMILIES = ("RelaxedBernoulli",)

    def rsample(self, family, params, sample_shape, *, seed=None):  # type: ignore[override]
        base = getattr(getattr(params, "_source", None), "base_dist", None)
        if base is not None and getattr(base, "_param", None) is vars(base).get("logits"):
            logits = params["logits"]
            probs = torch.sigmoid(logits).detach() + (logits - logits.detach())
            values = dict(params.items())
            values.update(probs=probs, logits=torch.logit(probs))
            params = Params(family, values, params.batch_shape, params.event_shape,
                            params.dtype, params.float_dtype, params.device)
        return self._inner.rsample(family, params, sample_shape, seed=seed)


class GeneratorIgnoringMutant(_Mutant):
    """Ignores ``generator=``: draws from its global stream instead."""

    FAMILIES = ("Normal", "Exponential")

    def sample(self, family, params, sample_shape, *, seed=None):  # type: ignore[override]
        if isinstance(seed, torch.Generator):
            seed = None
        return self._inner.sample(family, params, sample_shape, seed=seed)


class RsampleGeneratorMutant(_Mutant):
    """Honours ``generator=`` in ``sample()`` and ignores it in ``rsample()`` (drawing from its
    global stream there): the ``generator`` rule once called ``sample()`` only."""

    FAMILIES = ("Normal",)

    def rsample(self, family, params, sample_shape, *, seed=None):  # type: ignore[override]
        if isinstance(seed, torch.Generator):
            seed = None
        return self._inner.rsample(family, params, sample_shape, seed=seed)


class SpawnKeyMutant(_Mutant):
    """Derives its stream from a ``SeedSequence``'s entropy alone, dropping its ``spawn_key``:
    every child of a seed draws what the seed draws. The seeds rule never passed a spawned
    seed; polysample's mixtures draw their component index and their components with two
    children of one seed, so this backend's mixtures drew the index and the component from one
    stream (0.5 N(-2, 1) + 0.5 N(2, 1): mean -0.23, variance 4.3)."""

    FAMILIES = ("Normal", "Categorical")

    @staticmethod
    def _cut(seed):  # type: ignore[no-untyped-def]
        if isinstance(seed, np.random.SeedSequence):
            return np.random.SeedSequence(seed.entropy)
        return seed

    def sample(self, family, params, sample_shape, *, seed=None):  # type: ignore[override]
        return self._inner.sample(family, params, sample_shape, seed=self._cut(seed))

    def rsample(self, family, params, sample_shape, *, seed=None):  # type: ignore[override]
        return self._inner.rsample(family, params, sample_shape, seed=self._cut(seed))


class _MixtureMutant(_Mutant):
    """Reparameterizes mixtures of Normal (``rsample_mixture``) by drawing the component index
    and every component's ``rsample()``, then keeping the chosen one: the gradient flows along
    the chosen component's path alone, none into the mixture logits."""

    FAMILIES = ("Normal",)
    FLIP = False
    TWO_SHORTCUT = False

    def mixture_components(self) -> frozenset[str]:
        return frozenset({"Normal"})

    def rsample_mixture(self, mixture_logits, component, sample_shape, *, seed=None):  # type: ignore[no-untyped-def]
        if isinstance(seed, torch.Generator):
            gen = seed
        else:
            ss = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence()
            gen = torch.Generator().manual_seed(int(ss.generate_state(1, np.uint64)[0] >> 1))
        loc, scale = component["loc"], component["scale"]
        logits = -mixture_logits if self.FLIP else mixture_logits
        shape = tuple(sample_shape) + tuple(logits.shape[:-1])
        probs = torch.softmax(logits.detach().double(), -1).expand(shape + logits.shape[-1:])
        if self.TWO_SHORTCUT:  # index = 1 if u < sigmoid(l1 - l0) else 0
            u = torch.rand(shape, generator=gen, dtype=torch.float64)
            p1 = torch.sigmoid((logits[..., 1] - logits[..., 0]).detach().double())
            index = (u < p1.expand(shape)).long().reshape(-1, 1)
        else:
            index = torch.multinomial(probs.reshape(-1, probs.shape[-1]), 1, generator=gen)
        eps = torch.randn(shape + loc.shape[-1:], generator=gen, dtype=loc.dtype)
        x = loc + scale * eps  # every component's pathwise draw
        return x.gather(-1, index.reshape(shape + (1,))).squeeze(-1)


class MixturePathMutant(_MixtureMutant):
    """Right mixture draws; the chosen component's pathwise gradient (none in the logits), not
    the mixture's: ``mixture_grad``."""


class MixtureWeightsMutant(_MixtureMutant):
    """Mixture draws with the weights reversed (``softmax(-logits)``): ``mixture_ks``."""

    FLIP = True


class MixtureTwoShortcutMutant(_MixtureMutant):
    """Mixture draws whose component index comes from a shortcut written for two components
    (``1 if u < sigmoid(l1 - l0) else 0``): with three, the third is never drawn (an outside
    trial's: every test mixture had two components)."""

    TWO_SHORTCUT = True


class SeedIgnoringMutant(_Mutant):
    """Ignores every seed (an int's ``SeedSequence`` and ``generator=``): draws from its global
    stream, so nothing it draws is reproducible."""

    def sample(self, family, params, sample_shape, *, seed=None):  # type: ignore[override]
        return self._inner.sample(family, params, sample_shape, seed=None)

    def rsample(self, family, params, sample_shape, *, seed=None):  # type: ignore[override]
        return self._inner.rsample(family, params, sample_shape, seed=None)


class UnseededScalarRepeatMutant(_Mutant):
    """Unseeded one-value draws (scalar parameters, ``sample_shape`` ``()``) take a fast path
    that builds a generator from polysample's global seed at each call: ``d.sample()`` repeats
    one value until ``manual_seed`` is called again (an outside trial's; ``global_stream``)."""

    def _seed(self, params, sample_shape, seed):  # type: ignore[no-untyped-def]
        if seed is None and tuple(sample_shape) == () and tuple(params.batch_shape) == ():
            return polysample.global_seed_sequence("mutant_unseeded_repeat")
        return seed

    def sample(self, family, params, sample_shape, *, seed=None):  # type: ignore[override]
        return self._inner.sample(family, params, sample_shape,
                                  seed=self._seed(params, sample_shape, seed))

    def rsample(self, family, params, sample_shape, *, seed=None):  # type: ignore[override]
        return self._inner.rsample(family, params, sample_shape,
                                   seed=self._seed(params, sample_shape, seed))


class SmallBatchSeedMutant(_Mutant):
    """Batches of 2 to 4 elements go through a loop over the elements that draws each with
    the caller's seed: with ``seed=`` the elements of a small batch share one noise (an
    outside trial's; ``seeds``)."""

    def _draw(self, method, params, sample_shape, seed):  # type: ignore[no-untyped-def]
        nb = params.batch_shape.numel()
        inner = getattr(self._inner, method)
        if seed is None or not 2 <= nb <= 4 or len(params.batch_shape) != 1:
            return inner("Normal", params, sample_shape, seed=seed)
        cols = [inner("Normal", Params.of("Normal", {k: params[k][i] for k in ("loc", "scale")}),
                      sample_shape, seed=seed) for i in range(nb)]
        return torch.stack(cols, -1)

    def sample(self, family, params, sample_shape, *, seed=None):  # type: ignore[override]
        return self._draw("sample", params, sample_shape, seed)

    def rsample(self, family, params, sample_shape, *, seed=None):  # type: ignore[override]
        return self._draw("rsample", params, sample_shape, seed)


class SeedDroppedWithGradMutant(_Mutant):
    """``sample()`` drops its seed when a parameter requires grad (a model's parameters): not
    reproducible there; ``rsample()`` and parameters without grad are right (an outside
    trial's; ``seeds``)."""

    def sample(self, family, params, sample_shape, *, seed=None):  # type: ignore[override]
        if any(isinstance(params[k], torch.Tensor) and params[k].requires_grad for k in params):
            seed = None
        return self._inner.sample(family, params, sample_shape, seed=seed)


class OneLeafGradientMutant(_Mutant):
    """Normal ``rsample()`` whose ``scale`` gradient is 2% too large when ``scale`` is the only
    parameter that requires grad (a learnt scale with a fixed mean, another code path); right
    when ``loc`` requires grad too (an outside trial's; ``rsample_grad``)."""

    def rsample(self, family, params, sample_shape, *, seed=None):  # type: ignore[override]
        x = self._inner.rsample(family, params, sample_shape, seed=seed)
        loc, scale = params["loc"], params["scale"]
        if scale.requires_grad and not loc.requires_grad:
            z = ((x - loc) / scale).detach()
            return loc + (scale * 1.02 - 0.02 * scale.detach()) * z
        return x


class PoissonPlainScoreMutant(_Mutant):
    """Scores Poisson itself as ``k log(rate) - rate - lgamma(k + 1)``: right at every rate
    above 0, NaN at rate 0 (``0 log 0``), where the law is the point mass at 0 (an outside
    trial's; ``point_mass``)."""

    FAMILIES = ("Poisson",)

    def families(self) -> Mapping[str, FamilySupport]:
        return {f: dataclasses.replace(s, log_prob=True) for f, s in super().families().items()}

    def log_prob(self, family, params, value):  # type: ignore[override]
        rate = params["rate"]
        return value * rate.log() - rate - torch.lgamma(value + 1)


class SeedHashMutant(_Mutant):
    """The seed hashed to 12 bits before seeding (4,096 streams): seeds collide, two calls
    with different seeds draw the same values (an outside trial's, with 16 bits;
    ``calls_repeats``, whose calls each have their own seed)."""

    def _seed(self, seed):  # type: ignore[no-untyped-def]
        if isinstance(seed, np.random.SeedSequence):
            return np.random.SeedSequence(int(seed.generate_state(1, np.uint32)[0]) & 0xFFF)
        return seed

    def sample(self, family, params, sample_shape, *, seed=None):  # type: ignore[override]
        return self._inner.sample(family, params, sample_shape, seed=self._seed(seed))

    def rsample(self, family, params, sample_shape, *, seed=None):  # type: ignore[override]
        return self._inner.rsample(family, params, sample_shape, seed=self._seed(seed))


class ProcessSaltedSeedMutant(_Mutant):
    """Seeds mixed with Python's ``hash()`` of the family's name, which is salted per process
    (unless ``PYTHONHASHSEED`` fixes it): the same seed gives the same values within a process
    and other values in another (an outside trial's; every rule drew in one process)."""

    def _seed(self, family, seed):  # type: ignore[no-untyped-def]
        if isinstance(seed, np.random.SeedSequence):
            word = int(seed.generate_state(1, np.uint32)[0])
            return np.random.SeedSequence([word, hash(family) & 0xFFFFFFFF])
        return seed

    def sample(self, family, params, sample_shape, *, seed=None):  # type: ignore[override]
        return self._inner.sample(family, params, sample_shape, seed=self._seed(family, seed))

    def rsample(self, family, params, sample_shape, *, seed=None):  # type: ignore[override]
        return self._inner.rsample(family, params, sample_shape, seed=self._seed(family, seed))


def _sum_to(g: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """``g`` summed over the dimensions broadcasting added to a tensor of ``shape``."""
    while g.dim() > len(shape):
        g = g.sum(0)
    for i, n in enumerate(shape):
        if n == 1 and g.shape[i] != 1:
            g = g.sum(i, keepdim=True)
    return g


class _DetachedBackwardNormalScore(torch.autograd.Function):
    """Normal's log density with a hand-written backward computed from detached tensors: right
    values and first derivatives, second derivatives silently 0."""

    @staticmethod
    def forward(ctx, value, loc, scale):  # type: ignore[no-untyped-def, override]
        ctx.save_for_backward(value, loc, scale)
        z = (value - loc) / scale
        return -0.5 * z * z - scale.log() - 0.5 * math.log(2 * math.pi)

    @staticmethod
    def backward(ctx, g):  # type: ignore[no-untyped-def, override]
        value, loc, scale = (t.detach() for t in ctx.saved_tensors)
        z = (value - loc) / scale
        return (_sum_to(-g * z / scale, value.shape), _sum_to(g * z / scale, loc.shape),
                _sum_to(g * (z * z - 1) / scale, scale.shape))


class HessianZeroMutant(_Mutant):
    """Scores Normal itself with :class:`_DetachedBackwardNormalScore`: values and gradients
    right, Hessians silently 0 (an outside trial's; ``log_prob_gradcheck``'s gradgradcheck)."""

    def families(self) -> Mapping[str, FamilySupport]:
        return {f: dataclasses.replace(s, log_prob=True) for f, s in super().families().items()}

    def log_prob(self, family, params, value):  # type: ignore[override]
        loc, scale = params["loc"], params["scale"]
        value, loc, scale = torch.broadcast_tensors(value, loc, scale)
        return _DetachedBackwardNormalScore.apply(value, loc, scale)


class _DetachedExponentialPath(torch.autograd.Function):
    """An Exponential draw ``x = e / rate`` with a hand-written backward computed from detached
    tensors: right values and first derivatives (``dx/drate = -x / rate``), second derivatives
    silently 0 (``d2x/drate2 = 2 x / rate^2``)."""

    @staticmethod
    def forward(ctx, rate, x):  # type: ignore[no-untyped-def, override]
        ctx.save_for_backward(rate, x)
        return x.clone()

    @staticmethod
    def backward(ctx, g):  # type: ignore[no-untyped-def, override]
        rate, x = (t.detach() for t in ctx.saved_tensors)
        return _sum_to(-g * x / rate, rate.shape), None


class RsampleHessianZeroMutant(_Mutant):
    """Exponential's ``rsample()`` through :class:`_DetachedExponentialPath`: values and
    gradients right, second derivatives through the draw silently 0 (an outside trial's;
    only ``log_prob``'s second derivatives were required)."""

    FAMILIES = ("Exponential",)

    def rsample(self, family, params, sample_shape, *, seed=None):  # type: ignore[override]
        rate = params["rate"]
        x = self._inner.rsample(family, {k: v.detach() if isinstance(v, torch.Tensor) else v
                                         for k, v in params.items()}, sample_shape, seed=seed)
        return _DetachedExponentialPath.apply(rate, x.detach())


class ValueGradientMutant(_Mutant):
    """Scores Normal itself with the right values and parameter gradients, and a derivative in
    the value 10% off (a hand-written backward pass; an outside trial's: ``log_prob_gradcheck``
    checked the parameters alone)."""

    def families(self) -> Mapping[str, FamilySupport]:
        return {f: dataclasses.replace(s, log_prob=True) for f, s in super().families().items()}

    def log_prob(self, family, params, value):  # type: ignore[override]
        off = value.detach() + 1.1 * (value - value.detach())
        return self._inner.log_prob(family, params, off)


class TailLocGradientMutant(_Mutant):
    """Scores Normal itself with the right values, and a ``loc`` derivative 10% too large
    beyond 3 standard deviations (a tail branch; an outside trial's: ``log_prob_gradcheck``
    scored the example's draws alone, all within 3 sd)."""

    def families(self) -> Mapping[str, FamilySupport]:
        return {f: dataclasses.replace(s, log_prob=True) for f, s in super().families().items()}

    def log_prob(self, family, params, value):  # type: ignore[override]
        out = self._inner.log_prob(family, params, value)
        loc, scale = params["loc"], params["scale"]
        z = ((value - loc) / scale).detach()
        far = (z.abs() > 3).to(out.dtype)
        # adds 0.1 * d/dloc log_prob = 0.1 z / scale to the loc gradient there, nothing to the value
        return out + far * 0.1 * (z / scale).detach() * (loc - loc.detach())


class Float32ScaleGradientMutant(_Mutant):
    """Scores Normal itself with the right values, and in float32 a ``scale`` derivative 10%
    too large (a float32 branch of the formula; an outside trial's: ``log_prob_gradcheck``
    ran in float64 alone)."""

    def families(self) -> Mapping[str, FamilySupport]:
        return {f: dataclasses.replace(s, log_prob=True) for f, s in super().families().items()}

    def log_prob(self, family, params, value):  # type: ignore[override]
        out = self._inner.log_prob(family, params, value)
        scale = params["scale"]
        if out.dtype != torch.float32 or not isinstance(scale, torch.Tensor):
            return out
        z = ((value - params["loc"]) / scale).detach()
        # d/dscale log N = (z^2 - 1) / scale: 10% more of it, nothing to the value
        return out + 0.1 * ((z * z - 1) / scale).detach() * (scale - scale.detach())


class PoissonTableTypoMutant(_Mutant):
    """Scores Poisson itself from a table of ``log(k!)`` with a typo at ``k = 12`` (an outside
    trial's: the density checks scored the grids' draws, none of which was 12)."""

    FAMILIES = ("Poisson",)

    def families(self) -> Mapping[str, FamilySupport]:
        return {f: dataclasses.replace(s, log_prob=True) for f, s in super().families().items()}

    def log_prob(self, family, params, value):  # type: ignore[override]
        out = self._inner.log_prob(family, params, value)
        return out + torch.where(value == 12, 2.3, 0.0).to(out.dtype)


class LayoutScoreMutant(_Mutant):
    """Scores Normal itself, 1e-3 off in calls of more than 4,096 values, in calls of two or
    more sample dimensions, or with scalar parameters (three paths an outside trial wrote;
    the density checks scored one layout, the example's batch of 3 with 5 rows)."""

    FAMILIES = ("Normal",)

    def families(self) -> Mapping[str, FamilySupport]:
        return {f: dataclasses.replace(s, log_prob=True) for f, s in super().families().items()}

    def log_prob(self, family, params, value):  # type: ignore[override]
        out = self._inner.log_prob(family, params, value)
        other_path = (value.numel() > 4096 or value.dim() - len(params.batch_shape) >= 2
                      or len(params.batch_shape) == 0)
        return out + 1e-3 if other_path else out


class BroadcastValueGradientMutant(_Mutant):
    """Scores Normal itself: right values, but the gradient in a value that broadcasts against
    the batch (a dimension of size 1 where the batch's is larger) divided by the batch size,
    a mean where autograd sums (an outside trial's: the log_prob rule compared values)."""

    FAMILIES = ("Normal",)

    def families(self) -> Mapping[str, FamilySupport]:
        return {f: dataclasses.replace(s, log_prob=True) for f, s in super().families().items()}

    def log_prob(self, family, params, value):  # type: ignore[override]
        batch = tuple(params.batch_shape)
        k = len(batch)
        tail = tuple(value.shape[value.dim() - k:]) if value.dim() >= k else ()
        if value.requires_grad and any(a == 1 and b > 1 for a, b in zip(tail, batch)):
            value = value.detach() + (value - value.detach()) / math.prod(batch)
        return self._inner.log_prob(family, params, value)


class _RoundedParamMutant(_Mutant):
    """Draws with parameter ``PARAM`` rounded to a whole number where it is at least
    ``ABOVE`` (a sampler that sums squared normals for Chi2, or loops over whole failures for
    NegativeBinomial): an outside trial's, which every grid of whole values passed."""

    PARAM = ""
    ABOVE = 2.0

    def _rounded(self, params):  # type: ignore[no-untyped-def]
        v = params[self.PARAM]
        return {**dict(params.items()),
                self.PARAM: torch.where(v >= self.ABOVE, v.detach().round() + (v - v.detach()),
                                        v)}

    def sample(self, family, params, sample_shape, *, seed=None):  # type: ignore[override]
        return self._inner.sample(family, self._rounded(params), sample_shape, seed=seed)

    def rsample(self, family, params, sample_shape, *, seed=None):  # type: ignore[override]
        return self._inner.rsample(family, self._rounded(params), sample_shape, seed=seed)


class NegativeBinomialRoundMutant(_RoundedParamMutant):
    FAMILIES = ("NegativeBinomial",)
    PARAM = "total_count"


class Chi2RoundMutant(_RoundedParamMutant):
    FAMILIES = ("Chi2",)
    PARAM = "df"


class Chi2RoundLargeMutant(Chi2RoundMutant):
    """:class:`Chi2RoundMutant` above df 30 only (the trial's): the corner df 1000.5."""

    ABOVE = 30.0


class FisherSwapMutant(_Mutant):
    """FisherSnedecor drawn with ``df1`` and ``df2`` swapped where ``df1 > df2`` (an outside
    trial's; the sweep's message said its draws of 3.4e-17 at df1 = 51.7, df2 = 0.54 lay
    "outside the reference law's support or are not finite": finite, and in the support)."""

    FAMILIES = ("FisherSnedecor",)

    def _swapped(self, params):  # type: ignore[no-untyped-def]
        a, b = params["df1"], params["df2"]
        sw = a > b
        return {**dict(params.items()), "df1": torch.where(sw, b, a),
                "df2": torch.where(sw, a, b)}

    def sample(self, family, params, sample_shape, *, seed=None):  # type: ignore[override]
        return self._inner.sample(family, self._swapped(params), sample_shape, seed=seed)

    def rsample(self, family, params, sample_shape, *, seed=None):  # type: ignore[override]
        return self._inner.rsample(family, self._swapped(params), sample_shape, seed=seed)


class MemoizedSeedMutant(_Mutant):
    """Caches seeded results by (family, shape, seed) and returns the cached tensor again: the
    right values, but a caller's in-place change to one result shows in the next (an outside
    trial's: the suite checked that later calls leave earlier results unchanged, not that each
    call returns new memory)."""

    def __init__(self) -> None:
        super().__init__()
        self._cache: dict[tuple[Any, ...], torch.Tensor] = {}

    def sample(self, family, params, sample_shape, *, seed=None):  # type: ignore[override]
        if seed is None:
            return self._inner.sample(family, params, sample_shape, seed=seed)
        key = (family, tuple(sample_shape), tuple(params.batch_shape), params.dtype,
               seed.entropy, seed.spawn_key)
        if key not in self._cache:
            self._cache[key] = self._inner.sample(family, params, sample_shape, seed=seed)
        return self._cache[key]


class PrivateRsampleStreamMutant(_Mutant):
    """Unseeded ``rsample()`` draws from a private generator rooted at a constant, which
    ``manual_seed`` never resets (``sample()`` is right): an outside trial's; the
    ``global_stream`` rule replayed ``sample()`` alone."""

    def __init__(self) -> None:
        super().__init__()
        self._gen = torch.Generator().manual_seed(99)

    def rsample(self, family, params, sample_shape, *, seed=None):  # type: ignore[override]
        if seed is None:
            seed = np.random.SeedSequence(int(torch.randint(0, 2**62, (1,),
                                                            generator=self._gen)))
        return self._inner.rsample(family, params, sample_shape, seed=seed)


class PartialSeedMutant(_Mutant):
    """Honours the seed except for some calls (``ignored(params, sample_shape)``), which draw
    from its global stream: those of scalar parameters (batch ``()``, the commonest call), or
    those of a sample shape of three dimensions or more. The ``seeds`` rule once tried the
    example batch of 2 with one sample shape only, and passed both."""

    FAMILIES = ("Normal", "Exponential")
    SCALAR = True

    def _ignored(self, params, sample_shape):  # type: ignore[no-untyped-def]
        if self.SCALAR:
            return tuple(params.batch_shape) == ()
        return len(tuple(sample_shape)) >= 3

    def sample(self, family, params, sample_shape, *, seed=None):  # type: ignore[override]
        seed = None if self._ignored(params, sample_shape) else seed
        return self._inner.sample(family, params, sample_shape, seed=seed)

    def rsample(self, family, params, sample_shape, *, seed=None):  # type: ignore[override]
        seed = None if self._ignored(params, sample_shape) else seed
        return self._inner.rsample(family, params, sample_shape, seed=seed)


class Seed3dMutant(PartialSeedMutant):
    SCALAR = False


class Seed2dMutant(PartialSeedMutant):
    """The seed ignored for two-dimensional sample shapes alone (an outside trial's: the
    ``seeds`` rule drew no such shape)."""

    def _ignored(self, params, sample_shape):  # type: ignore[no-untyped-def]
        return len(tuple(sample_shape)) == 2


class RoundingDirichlet(_Mutant):
    """Not a mutant: torch's Dirichlet with every float64 component one unit of rounding high
    (times ``1 + 2^-52``): the components sum to 1 within rounding, as a correct sampler's
    do, and a part of them can exceed 1 by an ulp. The suite read such a sum as beyond its
    Beta law's support and failed the corners and edges grids (K-S 0.14)."""

    FAMILIES = ("Dirichlet",)

    def mutate(self, family, params, x):  # type: ignore[no-untyped-def]
        return x * (1 + 2.0 ** -52) if x.dtype == torch.float64 else x


class TruncatedTailsMutant(_Mutant):
    """Normal drawn by the inverse CDF from uniforms confined to [Phi(-3.5), Phi(3.5)]: no
    draw beyond 3.5 standard deviations (as too coarse uniforms, or a clamp that redraws,
    give). Every other statistic moves by less than its noise at the suite's sample sizes."""

    CUT = 3.5

    def mutate(self, family, params, x):  # type: ignore[no-untyped-def]
        loc, scale = params["loc"], params["scale"]
        lo = 0.5 * math.erfc(self.CUT / math.sqrt(2.0))
        u = lo + (1 - 2 * lo) * torch.special.ndtr((x - loc) / scale)
        return loc + scale * torch.special.ndtri(u)


class FarTruncatedTailsMutant(TruncatedTailsMutant):
    """:class:`TruncatedTailsMutant` cut at 3.7 standard deviations (2.2e-4 of the mass): fewer
    draws beyond it per grid point than any column's tail level, so only the extremes pooled
    over the grid's points find it in quick mode (an outside trial's, redrawing beyond 3.7)."""

    CUT = 3.7


class ClampedTailsMutant(_Mutant):
    """Normal held at +-3.5 standard deviations instead of drawn past them (a clamp where
    ``mutant_truncated`` redraws): two atoms the law does not have, 4.7e-4 of the draws. The
    suite counted their repeated values as ties at float64 resolution and skipped the normal
    scores, the tail and the independence checks of every column: it passed both modes."""

    CUT = 3.5

    def mutate(self, family, params, x):  # type: ignore[no-untyped-def]
        loc, scale = params["loc"], params["scale"]
        return torch.clamp(x, loc - self.CUT * scale, loc + self.CUT * scale)


class LowBitsScaleMutant(_Mutant):
    """float64 Normal by the inverse CDF of 32-bit uniforms, with its scale 2% too large: the
    32-bit uniforms tie (about 8 pairs in 2^18 draws), and the suite counted those ties as the
    law's, skipped the normal scores and passed the 2% scale error in quick mode (the same
    error with 53-bit uniforms failed ``pit_var``)."""

    def mutate(self, family, params, x):  # type: ignore[no-untyped-def]
        if x.dtype != torch.float64:
            return x
        loc, scale = params["loc"], params["scale"]
        u = torch.special.ndtr((x - loc) / scale)
        u = (torch.floor(u * 2.0**32) + 0.5) / 2.0**32
        return loc + 1.02 * scale * torch.special.ndtri(u)


class ExponentialTailMutant(_Mutant):
    """Normal whose tail beyond ``R = 3.4426`` sd (the base of a 128-layer ziggurat) is drawn as
    ``R + Exp(1)`` instead of the normal tail (the classic ziggurat defect): the same mass
    beyond ``R``, spread far too wide. The draws beyond 4.6 sd, where one is expected at
    n = 2^18, are about 30 times too many; the mass beyond the other levels (3.5 and 3.1 sd)
    moves by less than its noise, and so do K-S and the normal scores."""

    R = 3.442619855899

    def mutate(self, family, params, x):  # type: ignore[no-untyped-def]
        loc, scale = params["loc"], params["scale"]
        z = (x - loc) / scale
        a = z.abs()
        # the draw's quantile within the tail beyond R (the same uniform), then Exp(1)'s
        # (in float64: a float32 ndtr underflows to 0 beyond 13 sd, and the tail's quantile
        # with it, which put a float32 draw 90 sd out)
        a64 = a.double()
        u = torch.special.ndtr(-a64) / torch.special.ndtr(torch.tensor(-self.R,
                                                                      dtype=torch.float64))
        far = (self.R - torch.log(u.clamp_min(1e-300))).to(a.dtype)
        return loc + scale * torch.where(a > self.R, torch.sign(z) * far, z)


class CappedPoissonMutant(_Mutant):
    """Poisson with its draws capped at ``floor(rate + 4 sqrt(rate))`` (a sampler with a
    bounded search, or a table that ends): right below the cap."""

    FAMILIES = ("Poisson",)

    def mutate(self, family, params, x):  # type: ignore[no-untyped-def]
        rate = params["rate"]
        return torch.minimum(x, (rate + 4 * rate.sqrt()).floor())


class GeometricSkipMutant(_Mutant):
    """Geometric draws of 20 and more one too large (a ceil for a floor past a table's end):
    P(X = 20) = 0, each later value drawn as the one before it. K-S (cumulative) and the sum
    (the mean moves by P(X >= 20)) stay within their noise."""

    FAMILIES = ("Geometric",)

    def mutate(self, family, params, x):  # type: ignore[no-untyped-def]
        return torch.where(x >= 20, x + 1, x)


class SharedNoiseMutant(_Mutant):
    """Draws one noise value per sample and broadcasts it over the batch (the noise's shape
    misses the batch dimensions): every column has the right law, but the batch elements are
    not independent."""

    FAMILIES = ("Normal",)

    def sample(self, family, params, sample_shape, *, seed=None):  # type: ignore[override]
        loc, scale = params["loc"], params["scale"]
        eps = self._inner.sample("Normal", {"loc": loc.new_zeros(()), "scale": loc.new_ones(())},
                                 sample_shape, seed=seed)
        return loc + scale * eps.reshape(eps.shape + (1,) * loc.dim())

    def rsample(self, family, params, sample_shape, *, seed=None):  # type: ignore[override]
        return self.sample(family, params, sample_shape, seed=seed)


class _SampleAxisMutant(_Mutant):
    """Rearranges each call's draws along the flattened sample axis (``rearrange(x)`` gets them
    as ``(n, *batch, *event)``): every value keeps its batch element, so each column's law is
    still right; only the independence of the draws is broken."""

    def rearrange(self, family, params, x):  # type: ignore[no-untyped-def]
        return x

    def _apply(self, family, params, sample_shape, x):  # type: ignore[no-untyped-def]
        k = len(tuple(sample_shape))
        if k == 0:
            return x
        flat = x.reshape((-1,) + tuple(x.shape[k:]))
        return self.rearrange(family, params, flat).reshape(x.shape)

    def sample(self, family, params, sample_shape, *, seed=None):  # type: ignore[override]
        x = self._inner.sample(family, params, sample_shape, seed=seed)
        return self._apply(family, params, sample_shape, x)

    def rsample(self, family, params, sample_shape, *, seed=None):  # type: ignore[override]
        x = self._inner.rsample(family, params, sample_shape, seed=seed)
        return self._apply(family, params, sample_shape, x)


class SortedMutant(_SampleAxisMutant):
    """Returns each call's draws sorted along the sample axis (as a stratified or inverse-CDF
    sampler fed an ordered grid would): right marginals, K-S and normal scores unchanged."""

    FAMILIES = ("Normal", "Poisson")

    def rearrange(self, family, params, x):  # type: ignore[no-untyped-def]
        return x.sort(dim=0).values


class AntitheticMutant(_SampleAxisMutant):
    """Draws in antithetic pairs (``x``, ``2 loc - x``): right marginals, the sample mean exact,
    neighbouring draws perfectly anti-correlated."""

    def rearrange(self, family, params, x):  # type: ignore[no-untyped-def]
        h = x.shape[0] // 2
        mirrored = 2 * params["loc"] - x[0:2 * h:2]
        pairs = torch.stack([x[0:2 * h:2], mirrored], 1).reshape((2 * h,) + tuple(x.shape[1:]))
        return torch.cat([pairs, x[2 * h:]])  # an odd call's last draw as it was


class MirroredHalvesMutant(_SampleAxisMutant):
    """Calls of at least 64 rows whose second half mirrors the first (``2 loc - x``, as
    ``cat([z, -z])`` for antithetic variance reduction): right marginals, and every
    neighbouring pair independent (an outside trial's mutant, which passed every check before
    the independence check's balance test)."""

    def rearrange(self, family, params, x):  # type: ignore[no-untyped-def]
        h = x.shape[0] // 2
        if h < 32:
            return x
        return torch.cat([x[:h], 2 * params["loc"] - x[:h], x[2 * h:]])


class MirroredBatchMutant(_Mutant):
    """Batches of at least 64 elements whose second half takes the first half's noise negated
    (``loc + scale * -eps``): every element's law right, neighbouring elements independent
    (an outside trial's mutant)."""

    def _mirror(self, params, x):  # type: ignore[no-untyped-def]
        batch = tuple(params.batch_shape)
        count = math.prod(batch)
        if count < 64:
            return x
        loc, scale = params["loc"], params["scale"]
        eps = ((x - loc) / scale).reshape((-1, count))
        h = count // 2
        eps = torch.cat([eps[:, :h], -eps[:, :h], eps[:, 2 * h:]], 1).reshape(x.shape)
        return loc + scale * eps

    def sample(self, family, params, sample_shape, *, seed=None):  # type: ignore[override]
        return self._mirror(params, self._inner.sample(family, params, sample_shape, seed=seed))

    def rsample(self, family, params, sample_shape, *, seed=None):  # type: ignore[override]
        return self._mirror(params, self._inner.rsample(family, params, sample_shape,
                                                         seed=seed))


class PeriodicMutant(_SampleAxisMutant):
    """Repeats each call's first quarter of draws four times (as a backend that reuses one
    seed, generator state or buffer for every block of a large call would): right marginals,
    neighbouring draws independent, every draw repeated 65,536 rows later."""

    FAMILIES = ("Normal", "Poisson")

    def rearrange(self, family, params, x):  # type: ignore[no-untyped-def]
        n = x.shape[0]
        block = max(1, -(-n // 4))
        return x[:block].repeat((4,) + (1,) * (x.dim() - 1))[:n]


class SmallCallMutant(_Mutant):
    """Right in large draws; in calls of at most 64 values (a training loop's) its Normal
    scale is 1.5 times too large, as a backend with another path for small draws (a shape
    bucket, a small-n algorithm) can be wrong there alone."""

    def sample(self, family, params, sample_shape, *, seed=None):  # type: ignore[override]
        x = self._inner.sample(family, params, sample_shape, seed=seed)
        if x.numel() > 64:
            return x
        return params["loc"] + 1.5 * (x - params["loc"])


class CorrelatedBatchMutant(_Mutant):
    """Batch elements drawn with correlated noise (each element's standard noise is 0.5 times
    the previous element's plus an independent part): every element's law is right and the
    elements of an expanded batch differ, but neighbouring batch elements have correlation 0.5."""

    def _correlate(self, params, sample_shape, x):  # type: ignore[no-untyped-def]
        loc, scale = params["loc"], params["scale"]
        k = len(tuple(sample_shape))
        eps = ((x - loc) / scale).reshape(x.shape[:k] + (-1,))
        cols = [eps[..., 0]]
        for j in range(1, eps.shape[-1]):
            cols.append(0.5 * cols[-1] + 0.75 ** 0.5 * eps[..., j])
        return loc + scale * torch.stack(cols, -1).reshape(x.shape)

    def sample(self, family, params, sample_shape, *, seed=None):  # type: ignore[override]
        x = self._inner.sample(family, params, sample_shape, seed=seed)
        return self._correlate(params, sample_shape, x)

    def rsample(self, family, params, sample_shape, *, seed=None):  # type: ignore[override]
        x = self._inner.rsample(family, params, sample_shape, seed=seed)
        return self._correlate(params, sample_shape, x)


class LocationMutant(_Mutant):
    """Normal drawn with location + 0.01 sigma."""

    def mutate(self, family, params, x):  # type: ignore[no-untyped-def]
        return x + 0.01 * params["scale"]


class GradientSignMutant(_Mutant):
    """Right values, pathwise gradient with the wrong sign."""

    FAMILIES = ("Normal", "Gamma", "Beta", "Dirichlet")

    def mutate(self, family, params, x):  # type: ignore[no-untyped-def]
        return 2 * x.detach() - x if x.requires_grad else x


class ScaleGradientMutant(_Mutant):
    """Right values; the gradient in one parameter multiplied by ``FACTOR`` (0: none, -1: the
    sign flipped): Normal's, Laplace's and Cauchy's ``scale``, StudentT's ``df``. Their true
    derivatives are odd in ``x - loc``: a wrong one fails the per-sample identity, and the
    conditional-mean fallback must not let it average out."""

    FAMILIES = ("Normal", "Laplace", "Cauchy", "StudentT")
    FACTOR = -1.0

    def _params(self, family, params):  # type: ignore[no-untyped-def]
        name = "df" if family == "StudentT" else "scale"
        v = params[name]
        return {**dict(params.items()), name: v.detach() + self.FACTOR * (v - v.detach())}

    def rsample(self, family, params, sample_shape, *, seed=None):  # type: ignore[override]
        return self._inner.rsample(family, self._params(family, params), sample_shape,
                                   seed=seed)


class RateScaleMutant(_Mutant):
    """Gamma drawn with ``scale = rate`` (NumPy's convention passed the torch rate)."""

    FAMILIES = ("Gamma",)

    def sample(self, family, params, sample_shape, *, seed=None):  # type: ignore[override]
        return self._swap(params, sample_shape, seed, self._inner.sample)

    def rsample(self, family, params, sample_shape, *, seed=None):  # type: ignore[override]
        return self._swap(params, sample_shape, seed, self._inner.rsample)

    @staticmethod
    def _swap(params, shape, seed, fn):  # type: ignore[no-untyped-def]
        swapped = {"concentration": params["concentration"], "rate": 1 / params["rate"]}
        return fn("Gamma", swapped, shape, seed=seed)


class GeometricOffByOneMutant(_Mutant):
    """Geometric counting trials (1, 2, ...) instead of failures (NumPy's convention)."""

    FAMILIES = ("Geometric",)

    def mutate(self, family, params, x):  # type: ignore[no-untyped-def]
        return x + 1


class DetachedMutant(_Mutant):
    """``rsample`` returns a tensor cut from the graph."""

    def rsample(self, family, params, sample_shape, *, seed=None):  # type: ignore[override]
        return self._inner.rsample(family, params, sample_shape, seed=seed).detach()


class DtypeMutant(_Mutant):
    """Always returns float32, whatever the parameters' dtype."""

    def mutate(self, family, params, x):  # type: ignore[no-untyped-def]
        return x.float()


class Float32Mutant(_ParamMutant):
    """Right in float64, wrong in float32: Gamma drawn with its rate x 1.04 when the parameters
    are float32 (a float32-only code path with a bug). Every grid but ``float32`` is float64."""

    FAMILIES = ("Gamma",)

    def _params(self, family, params):  # type: ignore[no-untyped-def]
        if params["rate"].dtype != torch.float32:
            return params
        return perturbed(family, params, "rate", 1.04)


class Float32GradientMutant(_Mutant):
    """Right values everywhere, right float64 gradients, pathwise gradients 2% too large in
    float32 (a float32-only derivative code path with a bug)."""

    FAMILIES = ("Normal", "Gamma")

    def mutate(self, family, params, x):  # type: ignore[no-untyped-def]
        if not x.requires_grad or x.dtype != torch.float32:
            return x
        return x.detach() + 1.02 * (x - x.detach())


class ShapeGradientMutant(_Mutant):
    """Right values, right gradients with ``sample_shape = ()``; with a sample shape, the
    backward pass takes the mean over the samples instead of their sum (a custom backward
    that reduces the sample dimensions wrongly)."""

    def rsample(self, family, params, sample_shape, *, seed=None):  # type: ignore[override]
        x = self._inner.rsample(family, params, sample_shape, seed=seed)
        n = math.prod(sample_shape)
        if not x.requires_grad or n <= 1:
            return x
        return x.detach() + (x - x.detach()) / n


class ShapeGradient2dMutant(_Mutant):
    """Right values; a Gamma whose pathwise gradient is divided by the last sample dimension
    where the sample shape has two or more dimensions (an outside trial's: ``grad_shape`` drew
    ``(16,)`` alone, and every other gradient check one sample dimension)."""

    FAMILIES = ("Gamma",)

    def rsample(self, family, params, sample_shape, *, seed=None):  # type: ignore[override]
        x = self._inner.rsample(family, params, sample_shape, seed=seed)
        if not x.requires_grad or len(tuple(sample_shape)) < 2:
            return x
        return x.detach() + (x - x.detach()) / tuple(sample_shape)[-1]


class SmallCallRateMutant(_Mutant):
    """A Gamma drawn with its rate 10% high in calls of 2 to 64 values of one parameter set
    (a small-n path); right in one-value calls and larger ones (an outside trial's: the
    small calls of the suite drew batches of several points)."""

    FAMILIES = ("Gamma",)

    def sample(self, family, params, sample_shape, *, seed=None):  # type: ignore[override]
        values = math.prod(sample_shape)
        if math.prod(params.batch_shape) == 1 and 2 <= values <= 64:
            params = perturbed(family, params, "rate", 1.1)
        return self._inner.sample(family, params, sample_shape, seed=seed)


class SizeOneSharedNoiseMutant(_Mutant):
    """A Normal whose sample shapes of two or more dimensions with a dimension of size 1 give
    every batch element the first element's noise (an outside trial's: the ``shapes`` rule
    drew ``(8, 1)`` but judged shapes and support only)."""

    def sample(self, family, params, sample_shape, *, seed=None):  # type: ignore[override]
        x = self._inner.sample(family, params, sample_shape, seed=seed)
        shape = tuple(sample_shape)
        if len(shape) < 2 or 1 not in shape or not params.batch_shape:
            return x
        loc, scale = params["loc"], params["scale"]
        z = ((x - loc) / scale).reshape(shape + (-1,))[..., :1]
        return loc + scale * z.reshape(shape + (1,) * len(params.batch_shape))


class FourDimRepeatMutant(_Mutant):
    """A Normal whose sample shapes of four or more dimensions repeat the values along the
    last sample dimension (an outside trial's: no check drew four sample dimensions)."""

    def sample(self, family, params, sample_shape, *, seed=None):  # type: ignore[override]
        x = self._inner.sample(family, params, sample_shape, seed=seed)
        k = len(tuple(sample_shape))
        return x.narrow(k - 1, 0, 1).expand_as(x).clone() if k >= 4 else x


class SmallCallClampWriteMutant(_Mutant):
    """A Dirichlet whose ``sample()`` calls of fewer than 4,096 values clamp the caller's
    concentration to at least 0.05 in place through NumPy (no version counter moves) and
    draw with it (an outside trial's: small calls used moderate parameters only)."""

    FAMILIES = ("Dirichlet",)

    def sample(self, family, params, sample_shape, *, seed=None):  # type: ignore[override]
        conc = params["concentration"]
        if math.prod(sample_shape) * conc.numel() < 4096:
            a = conc.detach().numpy()
            np.maximum(a, 0.05, out=a)
        return self._inner.sample(family, params, sample_shape, seed=seed)


class OneValueMutant(_Mutant):
    """A Normal whose one-value calls (``sample()`` with scalar parameters) draw a half-normal
    (``loc + |x - loc|``); right in every call of more values (an outside trial's: the
    suite's law checks drew many values per call)."""

    def sample(self, family, params, sample_shape, *, seed=None):  # type: ignore[override]
        x = self._inner.sample(family, params, sample_shape, seed=seed)
        if x.numel() == 1:
            return params["loc"] + (x - params["loc"]).abs()
        return x


class ChunkDetachMutant(_Mutant):
    """Right values; a call of more than 512 sample rows is drawn in chunks of 512 rows, and
    every chunk after the first is detached: its rows have no gradient (a chunked path that
    concatenates its chunks' values but keeps the graph of one). Every gradient check but
    ``grad_large`` draws at most 512 values per call."""

    FAMILIES = ("Normal", "StudentT", "Dirichlet", "LogisticNormal")
    CHUNK = 512

    def rsample(self, family, params, sample_shape, *, seed=None):  # type: ignore[override]
        x = self._inner.rsample(family, params, sample_shape, seed=seed)
        if len(sample_shape) == 0 or sample_shape[0] <= self.CHUNK:
            return x
        return torch.cat([x[:self.CHUNK], x[self.CHUNK:].detach()])


class TailGradientMutant(_Mutant):
    """Right values; the gradient of draws above the 99.5% quantile 1.5 times too large (a
    gradient formula wrong in a far branch: an asymptotic series, a tail algorithm). The
    per-sample checks draw 32 samples per grid, rarely one up there."""

    FAMILIES = ("Normal",)
    Z = 2.5758293035489004  # the standard normal's 99.5% quantile

    def rsample(self, family, params, sample_shape, *, seed=None):  # type: ignore[override]
        x = self._inner.rsample(family, params, sample_shape, seed=seed)
        if not x.requires_grad:
            return x
        z = ((x - params["loc"]) / params["scale"]).detach()
        return torch.where(z > self.Z, x.detach() + 1.5 * (x - x.detach()), x)


class NanGradientMutant(_Mutant):
    """Right values; every ``rsample()`` gradient NaN (a backward pass that divides by zero)."""

    FAMILIES = ("LogisticNormal", "MultivariateNormal")

    def rsample(self, family, params, sample_shape, *, seed=None):  # type: ignore[override]
        x = self._inner.rsample(family, params, sample_shape, seed=seed)
        if not x.requires_grad:
            return x
        y = x.clone()  # the same values; the gradient flowing back through them NaN
        y.register_hook(lambda g: torch.full_like(g, float("nan")))
        return y


def _finite(g: torch.Tensor | None) -> torch.Tensor | None:
    return None if g is None else torch.nan_to_num(g, nan=0.0, posinf=0.0, neginf=0.0)


class NanMaskingMutant(_Mutant):
    """Right values and right finite gradients; a NaN or infinite upstream gradient of
    ``rsample()`` or ``log_prob`` comes back as 0 (a backward pass that applies ``nan_to_num``
    to the cotangent's product, as the torch and numpy backends' Dirichlet gradients did)."""

    FAMILIES = ("Normal", "Dirichlet")

    def families(self) -> Mapping[str, FamilySupport]:
        # scores both itself (polysample's torch log_prob, hooked), so the density layer
        # judges it
        return {f: dataclasses.replace(s, log_prob=True) for f, s in super().families().items()}

    def rsample(self, family, params, sample_shape, *, seed=None):  # type: ignore[override]
        x = self._inner.rsample(family, params, sample_shape, seed=seed)
        if not x.requires_grad:
            return x
        y = x.clone()
        y.register_hook(_finite)
        return y

    def log_prob(self, family, params, value):  # type: ignore[override]
        # polysample's torch-scored log_prob (torch's with its defects mended: the inner
        # backend's raw torch formula fails log_prob_huge, which is not this mutant's point)
        lp = getattr(polysample, family)(**params, backend="torch",
                                         validate_args=False).log_prob(value)
        if not lp.requires_grad:
            return lp
        out = lp.clone()
        out.register_hook(_finite)
        return out


class SmallestEventMutant(_Mutant):
    """Right for Dirichlet of two or more categories; refuses one category (a sampler written
    for k >= 2, as TFP's Dirichlet is)."""

    FAMILIES = ("Dirichlet",)

    def sample(self, family, params, sample_shape, *, seed=None):  # type: ignore[override]
        if params["concentration"].shape[-1] < 2:
            raise ValueError("concentration must have event_size at least 2")
        return super().sample(family, params, sample_shape, seed=seed)

    def rsample(self, family, params, sample_shape, *, seed=None):  # type: ignore[override]
        if params["concentration"].shape[-1] < 2:
            raise ValueError("concentration must have event_size at least 2")
        return super().rsample(family, params, sample_shape, seed=seed)


class SeedTruncatingMutant(_Mutant):
    """Keeps the low 32 bits of the seed's entropy: seeds 7 and 7 + 2^32 draw the same values
    (a backend that packs the seed into one 32-bit word)."""

    @staticmethod
    def _cut(seed):  # type: ignore[no-untyped-def]
        if isinstance(seed, np.random.SeedSequence) and isinstance(seed.entropy, int):
            return np.random.SeedSequence(seed.entropy & 0xFFFFFFFF, spawn_key=seed.spawn_key)
        return seed

    def sample(self, family, params, sample_shape, *, seed=None):  # type: ignore[override]
        return self._inner.sample(family, params, sample_shape, seed=self._cut(seed))

    def rsample(self, family, params, sample_shape, *, seed=None):  # type: ignore[override]
        return self._inner.rsample(family, params, sample_shape, seed=self._cut(seed))


class SeedBitMutant(SeedTruncatingMutant):
    """Drops bit 4 of the seed's entropy: seeds 7 and 23 draw the same values (an outside
    trial's; the ``seeds`` rule compared 7 with 8 and with seeds 2^32 and 2^64 apart)."""

    @staticmethod
    def _cut(seed):  # type: ignore[no-untyped-def]
        if isinstance(seed, np.random.SeedSequence) and isinstance(seed.entropy, int):
            return np.random.SeedSequence(seed.entropy & ~16, spawn_key=seed.spawn_key)
        return seed


class SeedZeroMutant(SeedTruncatingMutant):
    """Reads seed 0 as no seed (``if seed:``): ``seed=0`` draws from the global stream (an
    outside trial's; the ``seeds`` rule never tried 0)."""

    @staticmethod
    def _cut(seed):  # type: ignore[no-untyped-def]
        if isinstance(seed, np.random.SeedSequence) and seed.entropy == 0 \
                and not seed.spawn_key:
            return None
        return seed


class SeedFoldMutant(SeedTruncatingMutant):
    """Folds the seed's entropy to 64 bits by XOR (``low ^ high``): seeds 6 and 7 + 2^64 draw
    the same values (an outside trial's; the ``seeds`` rule compared every seed with 7
    alone)."""

    @staticmethod
    def _cut(seed):  # type: ignore[no-untyped-def]
        if isinstance(seed, np.random.SeedSequence) and isinstance(seed.entropy, int):
            e, folded = seed.entropy, 0
            while e:
                folded ^= e & (2**64 - 1)
                e >>= 64
            return np.random.SeedSequence(folded, spawn_key=seed.spawn_key)
        return seed


class SpawnAdditiveMutant(SeedTruncatingMutant):
    """Adds a child's spawn key to the seed (child ``k`` of seed ``s`` is seed ``s + k + 1``):
    child 0 of SeedSequence(7) draws seed 8's values (an outside trial's)."""

    @staticmethod
    def _cut(seed):  # type: ignore[no-untyped-def]
        if (isinstance(seed, np.random.SeedSequence) and isinstance(seed.entropy, int)
                and seed.spawn_key):
            return np.random.SeedSequence(seed.entropy + sum(k + 1 for k in seed.spawn_key))
        return seed


class AddressCacheMutant(_Mutant):
    """Caches each parameter tensor by its memory address, shape and dtype: after the caller
    changes a parameter in place (an optimizer step), draws use the old values (an outside
    trial's)."""

    def __init__(self) -> None:
        super().__init__()
        self._cache: dict[tuple[Any, ...], torch.Tensor] = {}

    def _cached(self, params):  # type: ignore[no-untyped-def]
        out = {}
        for k in params:
            v = params[k]
            if isinstance(v, torch.Tensor):
                key = (k, v.data_ptr(), tuple(v.shape), tuple(v.stride()), v.dtype)
                v = self._cache.setdefault(key, v.detach().clone())
            out[k] = v
        return Params(params.family, out, params.batch_shape, params.event_shape,
                      params.dtype, params.float_dtype, params.device)

    def sample(self, family, params, sample_shape, *, seed=None):  # type: ignore[override]
        return self._inner.sample(family, self._cached(params), sample_shape, seed=seed)


class FarLocFloat32Mutant(_Mutant):
    """Draws a Normal in float32 where ``|loc|`` exceeds 1e5 scales, then casts back: at
    loc 1e6, scale 1e-3 every draw is one value (an outside trial's; the grids reach
    ``|loc| / scale = 1000``)."""

    def sample(self, family, params, sample_shape, *, seed=None):  # type: ignore[override]
        x = self._inner.sample(family, params, sample_shape, seed=seed)
        loc, scale = params["loc"], params["scale"]
        if bool((loc.abs() > 1e5 * scale).any()):
            z = (x - loc) / scale
            return (loc.float() + scale.float() * z.float()).to(x.dtype)
        return x


class ScalarFloat32WideMutant(_Mutant):
    """A Normal drawn 10% too wide in float32 calls with scalar parameters (batch ``()``),
    right in float64 and in batched float32 calls (an outside trial's: the float32 grid is a
    batch, and every scalar-parameter draw of the suite was float64)."""

    def mutate(self, family, params, x):  # type: ignore[no-untyped-def]
        if x.dtype == torch.float32 and not tuple(params.batch_shape):
            loc = params["loc"]
            return loc + 1.1 * (x - loc)
        return x


class GeneratorScaleMutant(_Mutant):
    """A Normal drawn 5% too wide when the seed is a ``torch.Generator`` (``generator=``),
    right with ``seed=`` and unseeded (an outside trial's: the ``generator`` rule judges
    reproducibility, and no statistical check drew through ``generator=``)."""

    def mutate(self, family, params, x):  # type: ignore[no-untyped-def]
        return x

    def sample(self, family, params, sample_shape, *, seed=None):  # type: ignore[override]
        x = self._inner.sample(family, params, sample_shape, seed=seed)
        if isinstance(seed, torch.Generator):
            return params["loc"] + 1.05 * (x - params["loc"])
        return x


class _FlipGradient(torch.autograd.Function):
    """The identity, whose backward returns the gradient's elements in reversed order."""

    @staticmethod
    def forward(ctx, s):  # type: ignore[no-untyped-def, override]
        return s.view_as(s)

    @staticmethod
    def backward(ctx, g):  # type: ignore[no-untyped-def, override]
        return g.flatten().flip(0).reshape(g.shape)


class StridedGradientMutant(_Mutant):
    """A Normal whose ``rsample()`` values are right and whose ``scale`` gradient comes back
    in reversed order when ``scale`` is a strided (non-contiguous, not broadcast) view, as a
    bridge that drops strides would (an outside trial's: ``layouts`` compared values only)."""

    def rsample(self, family, params, sample_shape, *, seed=None):  # type: ignore[override]
        x = self._inner.rsample(family, params, sample_shape, seed=seed)
        scale, loc = params["scale"], params["loc"]
        if (scale.requires_grad and scale.numel() > 1 and not scale.is_contiguous()
                and 0 not in scale.stride()):
            s2 = _FlipGradient.apply(scale)
            e = ((x - loc) / scale).detach()
            x = x.detach() + (loc - loc.detach()) + (s2 - s2.detach()) * e
        return x


class BroadcastLocScaleGradientMutant(_Mutant):
    """A Normal whose ``rsample()`` values are right and whose ``scale`` gradient is 10% too
    large when ``loc`` reaches the backend broadcast (stride 0) over a batch, as a Python
    number beside a batched ``scale`` does (an outside trial's: ``broadcast`` compared
    shapes and values)."""

    def rsample(self, family, params, sample_shape, *, seed=None):  # type: ignore[override]
        x = self._inner.rsample(family, params, sample_shape, seed=seed)
        loc, scale = params["loc"], params["scale"]
        if loc.dim() > 0 and loc.numel() > 1 and 0 in loc.stride() and scale.requires_grad:
            e = ((x - loc) / scale).detach()
            x = x + 0.1 * (scale - scale.detach()) * e
        return x


class PlainClampMutant(_Mutant):
    """Kumaraswamy by its inverse CDF clamped into (0, 1) (the torch backend before
    2026-12-03): the law is right, but at a concentration of 1e-30 in float32 the power's
    derivative ``1 / a**2`` overflows and the clamp's zero gradient times it is NaN."""

    FAMILIES = ("Kumaraswamy",)

    def rsample(self, family, params, sample_shape, *, seed=None):  # type: ignore[override]
        a, b = torch.broadcast_tensors(params["concentration1"], params["concentration0"])
        uniform = Params.of("Uniform", {"low": torch.zeros_like(a.detach()),
                                        "high": torch.ones_like(a.detach())})
        u = self._inner.sample("Uniform", uniform, sample_shape, seed=seed)
        fi = torch.finfo(u.dtype)
        x = (-torch.expm1(u.clamp(min=fi.tiny).log() / b)).pow(a.reciprocal())
        return x.clamp(min=fi.tiny, max=1 - fi.eps)


class InPlaceMutant(_Mutant):
    """"Sanitises" the caller's scale in place before drawing (a clamp that changes no valid
    value, but writes into the distribution's, often the caller's, tensor)."""

    def mutate(self, family, params, x):  # type: ignore[no-untyped-def]
        scale = params["scale"]
        if not scale.requires_grad and scale.is_contiguous():
            scale.clamp_(min=1e-30)
        return x


class NumpyWriteMutant(_Mutant):
    """Writes into the caller's value through NumPy while scoring it (no torch operation, so
    no version counter moves): only a comparison of the values can see it."""

    def families(self) -> Mapping[str, FamilySupport]:
        return {f: dataclasses.replace(s, log_prob=True) for f, s in super().families().items()}

    def log_prob(self, family, params, value):  # type: ignore[no-untyped-def]
        arr = value.detach().numpy()
        out = self._inner.log_prob(family, params, value.clone())
        arr[...] = 0.0
        return out


class LargeCallWriteMutant(_Mutant):
    """Rounds the caller's ``scale`` to float32 in place, through NumPy, before calls of at
    least 4,096 values (a "sanitising" pass of a large-call path; no torch operation, so no
    version counter moves). Idempotent, so repeated seeded calls agree, and a no-op on the
    example parameters (0.5 to 2 are floats32): the contract rules' calls saw nothing (an
    outside trial's mutant). The corners' scale 1e-3 is not a float32."""

    def _write(self, params, sample_shape):  # type: ignore[no-untyped-def]
        if math.prod(tuple(sample_shape)) * math.prod(tuple(params.batch_shape)) >= 4096:
            arr = params["scale"].detach().numpy()
            if arr.dtype == np.float64:
                arr[...] = arr.astype(np.float32)

    def sample(self, family, params, sample_shape, *, seed=None):  # type: ignore[override]
        self._write(params, sample_shape)
        return self._inner.sample(family, params, sample_shape, seed=seed)

    def rsample(self, family, params, sample_shape, *, seed=None):  # type: ignore[override]
        self._write(params, sample_shape)
        return self._inner.rsample(family, params, sample_shape, seed=seed)


class _ParamWriteMutant(_Mutant):
    """Writes into the caller's parameters (``_write``) before every draw, then draws."""

    def _write(self, params):  # type: ignore[no-untyped-def]
        raise NotImplementedError

    def sample(self, family, params, sample_shape, *, seed=None):  # type: ignore[override]
        self._write(params)
        return self._inner.sample(family, params, sample_shape, seed=seed)

    def rsample(self, family, params, sample_shape, *, seed=None):  # type: ignore[override]
        self._write(params)
        return self._inner.rsample(family, params, sample_shape, seed=seed)


class TinyClampWriteMutant(_ParamWriteMutant):
    """Clamps the caller's Gamma ``concentration`` to at least 1e-3 in place, through NumPy
    (no torch operation, so no version counter moves): only ``rsample_near_zero`` gives a
    concentration below 1e-3, and the draws are then of the wrong law (an outside plugin
    author's trial)."""

    FAMILIES = ("Gamma",)

    def _write(self, params):  # type: ignore[no-untyped-def]
        arr = params["concentration"].detach().numpy()
        np.clip(arr, 1e-3, None, out=arr)


class DriftingWriteMutant(_ParamWriteMutant):
    """Multiplies the caller's ``rate`` by 1.0001 in place, through NumPy, on every call (no
    torch operation, so no version counter moves). Each call's values come from the law of the
    rate it saw, but a repeated seeded call draws other values: the contract rules first said
    "the same seed gave different values", sending the author to the seeds (an outside
    trial's mutant)."""

    FAMILIES = ("Exponential",)

    def _write(self, params):  # type: ignore[no-untyped-def]
        arr = params["rate"].detach().numpy()
        arr[...] = arr * 1.0001


class AliasedResultMutant(_Mutant):
    """Bernoulli whose draw, when every probability is 0 or 1, is the ``probs`` tensor itself
    (expanded): right values, and memory shared with the parameter, so writing into the draw
    changes the distribution (an outside trial's mutant)."""

    FAMILIES = ("Bernoulli",)

    def sample(self, family, params, sample_shape, *, seed=None):  # type: ignore[override]
        x = self._inner.sample(family, params, sample_shape, seed=seed)
        probs = params["probs"]
        if bool(((probs == 0) | (probs == 1)).all()):
            return probs.expand(x.shape)
        return x


class BufferReuseMutant(_Mutant):
    """Copies every draw into one buffer per shape and dtype and returns that buffer: each
    call's values are right, but a later call overwrites what the caller already holds."""

    FAMILIES = ("Normal", "Exponential")

    def __init__(self) -> None:
        super().__init__()
        self._buffers: dict[tuple[Any, ...], torch.Tensor] = {}

    def mutate(self, family, params, x):  # type: ignore[no-untyped-def]
        if x.requires_grad:
            return x
        key = (tuple(x.shape), x.dtype)
        buf = self._buffers.setdefault(key, torch.empty_like(x))
        return buf.copy_(x)


class RawMemoryMutant(_Mutant):
    """Copies broadcast (stride-0) parameters, but reads other non-contiguous ones' memory as
    if it were contiguous (as a bridge that passes a raw data pointer and drops the strides
    does): right for contiguous and broadcast parameters, other values for a strided view."""

    FAMILIES = ("Normal", "Exponential")

    @staticmethod
    def _raw(params):  # type: ignore[no-untyped-def]
        out = {}
        for k, v in params.items():
            if isinstance(v, torch.Tensor) and 0 in v.stride():
                v = v.contiguous()
            elif isinstance(v, torch.Tensor) and v.dim() and not v.is_contiguous():
                strides = torch.empty(v.shape, device="meta").stride()
                v = v.as_strided(v.shape, strides, v.storage_offset())
            out[k] = v
        return out

    def sample(self, family, params, sample_shape, *, seed=None):  # type: ignore[override]
        return self._inner.sample(family, self._raw(params), sample_shape, seed=seed)

    def rsample(self, family, params, sample_shape, *, seed=None):  # type: ignore[override]
        return self._inner.rsample(family, self._raw(params), sample_shape, seed=seed)


class SeedOffsetMutant(_Mutant):
    """Uses the seed as an offset into one stream (a counter started at the seed): seeds 7 and
    8 give the same draws shifted by one. Each seed is reproducible and differs from the next."""

    def _draw(self, params, sample_shape, seed):  # type: ignore[no-untyped-def]
        if not isinstance(seed, np.random.SeedSequence):
            return None
        loc, scale = params["loc"], params["scale"]
        shape = torch.Size(sample_shape) + loc.shape
        offset = int(seed.entropy) % 4096  # type: ignore[arg-type]
        g = torch.Generator().manual_seed(0)
        z = torch.randn(offset + shape.numel(), generator=g, dtype=loc.dtype)[offset:]
        return loc + scale * z.reshape(shape)

    def sample(self, family, params, sample_shape, *, seed=None):  # type: ignore[override]
        x = self._draw(params, sample_shape, seed)
        if x is None:
            return self._inner.sample(family, params, sample_shape, seed=seed)
        return x.detach()

    def rsample(self, family, params, sample_shape, *, seed=None):  # type: ignore[override]
        x = self._draw(params, sample_shape, seed)
        if x is None:
            return self._inner.rsample(family, params, sample_shape, seed=seed)
        return x


class SeedRotationMutant(_Mutant):
    """Each seed rotates one fixed stream of uniforms (u -> frac(u + c), c from the seed: a
    Cranley-Patterson rotation of one point set): every seed is reproducible, differs from the
    others, shares no value with them and draws the right law, but one seed's draws are a
    function of another's."""

    def _draw(self, params, sample_shape, seed):  # type: ignore[no-untyped-def]
        if not isinstance(seed, np.random.SeedSequence):
            return None
        loc, scale = params["loc"], params["scale"]
        shape = torch.Size(sample_shape) + loc.shape
        g = torch.Generator().manual_seed(0)
        u = torch.rand(shape, generator=g, dtype=torch.float64)
        c = int(seed.generate_state(1, np.uint64)[0]) / 2.0**64
        z = torch.special.ndtri(torch.remainder(u + c, 1.0).clamp(1e-300, 1 - 2**-53))
        return loc + scale * z.to(loc.dtype)

    def sample(self, family, params, sample_shape, *, seed=None):  # type: ignore[override]
        x = self._draw(params, sample_shape, seed)
        if x is None:
            return self._inner.sample(family, params, sample_shape, seed=seed)
        return x.detach()


class LargeCallSeedMutant(PartialSeedMutant):
    """Honours the seed in calls of fewer than 256 values; larger calls (a fast path, as the
    torch backend has for scalar parameters from 256 values) draw from its global stream. The
    ``seeds`` and ``generator`` rules once drew at most 64 values per call, and passed it."""

    FAMILIES = ("Normal",)

    def _ignored(self, params, sample_shape):  # type: ignore[no-untyped-def]
        return params.shape(torch.Size(sample_shape)).numel() >= 256


class SeedStrideMutant(_Mutant):
    """A counter-based stream with one fixed key, the seed setting its counter (seed x 1024
    Philox blocks: about 4,050 normal values per unit of seed). Every seed is reproducible,
    the 48 values the ``seeds`` rule compared of seeds 7 and 8 were 4,000 apart in the stream,
    and a draw of 8,192 values shares about half of them with the next seed's."""

    def _draw(self, params, sample_shape, seed):  # type: ignore[no-untyped-def]
        if not isinstance(seed, np.random.SeedSequence):
            return None
        words = seed.entropy if isinstance(seed.entropy, (list, tuple)) else [seed.entropy]
        base = 0
        for w in words:
            base = (base << 32) | int(w)  # type: ignore[arg-type]
        for k in seed.spawn_key:  # children differ (the spawn_key rule passes)
            base = base * 1000003 + int(k) + 1
        bits = np.random.Philox(key=12345)
        bits.advance((base * 1024) % (1 << 256))
        eps = np.random.Generator(bits).standard_normal(tuple(params.shape(sample_shape)))
        return params["loc"] + params["scale"] * torch.as_tensor(eps, dtype=params.dtype)

    def sample(self, family, params, sample_shape, *, seed=None):  # type: ignore[override]
        x = self._draw(params, sample_shape, seed)
        if x is None:
            return self._inner.sample(family, params, sample_shape, seed=seed)
        return x.detach()

    def rsample(self, family, params, sample_shape, *, seed=None):  # type: ignore[override]
        x = self._draw(params, sample_shape, seed)
        if x is None:
            return self._inner.rsample(family, params, sample_shape, seed=seed)
        return x


class GlobalConsumedMutant(_Mutant):
    """A draw given a seed (or a generator) also draws one value from the global stream (a
    warm-up or a key split taken from it): the seeded values are right and reproducible, but
    ``manual_seed`` no longer replays the unseeded draws that follow it."""

    def sample(self, family, params, sample_shape, *, seed=None):  # type: ignore[override]
        if seed is not None:
            torch.randn(1)  # torch's default generator: the torch backend's global stream
        return self._inner.sample(family, params, sample_shape, seed=seed)

    def rsample(self, family, params, sample_shape, *, seed=None):  # type: ignore[override]
        if seed is not None:
            torch.randn(1)
        return self._inner.rsample(family, params, sample_shape, seed=seed)


class BroadcastGradLostMutant(_Mutant):
    """Copies a broadcast (stride-0) parameter detached in ``rsample()`` ("not to write through
    an expanded view"): right values, and a ``scale`` expanded from a smaller leaf (a scalar
    beside a batched ``loc``) gets no gradient, silently (``scale.grad`` stays None)."""

    def rsample(self, family, params, sample_shape, *, seed=None):  # type: ignore[override]
        copied = {k: v.detach().contiguous() if isinstance(v, torch.Tensor) and v.dim()
                  and 0 in v.stride() else v for k, v in params.items()}
        return self._inner.rsample(family, copied, sample_shape, seed=seed)


class Float32PrecisionMutant(_Mutant):
    """Draws float64 values in float32 and casts them up (the right dtype and, to the eye, the
    right law; float32's resolution)."""

    def mutate(self, family, params, x):  # type: ignore[no-untyped-def]
        if x.dtype == torch.float64:
            return x + (x.float().double() - x).detach()
        return x


class ColumnMajorMutant(_Mutant):
    """Reads a batch of parameters of two or more dimensions in column-major order (a
    Fortran-ordered buffer read as C-ordered): each batch element draws with another element's
    parameters. One-dimensional batches are read right, and the shapes are right."""

    FAMILIES = ("Poisson",)

    def _read(self, params):  # type: ignore[no-untyped-def]
        batch = tuple(params.batch_shape)
        if len(batch) < 2:
            return params
        out = dict(params)
        nb = len(batch)
        for k, v in params.items():
            if isinstance(v, torch.Tensor) and tuple(v.shape[:nb]) == batch:
                event = tuple(v.shape[nb:])
                dims = tuple(reversed(range(nb))) + tuple(range(nb, v.dim()))
                out[k] = v.permute(dims).reshape((-1,) + event).reshape(v.shape)
        return out

    def sample(self, family, params, sample_shape, *, seed=None):  # type: ignore[override]
        return self._inner.sample(family, self._read(params), sample_shape, seed=seed)


class EqualElementsMutant(_Mutant):
    """Batch elements with equal parameters draw equal values, where the batch has two or
    more dimensions and its rows hold the same parameters (as a backend that draws once per
    distinct parameter point would): every value has the right law; every row of the batch
    repeats the first."""

    FAMILIES = ("Normal", "Poisson")

    def mutate(self, family, params, x):  # type: ignore[no-untyped-def]
        batch = tuple(params.batch_shape)
        if len(batch) < 2:
            return x
        lead = x.dim() - len(batch) - len(tuple(params.event_shape))
        first = x.narrow(lead, 0, 1)
        return first.expand_as(x).clone()


class Float32RsampleMutant(_Mutant):
    """float32 ``rsample()`` draws Normal with its scale 1.2 times too large, with matching
    gradients (a float32 reparameterised path of its own); float32 ``sample()`` and every
    float64 path are right. The per-sample gradient identity holds for any noise of a
    location-scale family, so only a check of the values' law sees it."""

    def rsample(self, family, params, sample_shape, *, seed=None):  # type: ignore[override]
        x = self._inner.rsample(family, params, sample_shape, seed=seed)
        if x.dtype != torch.float32:
            return x
        return params["loc"] + 1.2 * (x - params["loc"])


class SmallRsampleMutant(_Mutant):
    """``rsample()`` calls of at most 64 values draw Normal with its scale 1.5 times too large,
    with matching gradients; ``sample()`` and large calls are right."""

    def rsample(self, family, params, sample_shape, *, seed=None):  # type: ignore[override]
        x = self._inner.rsample(family, params, sample_shape, seed=seed)
        if x.numel() > 64:
            return x
        return params["loc"] + 1.5 * (x - params["loc"])


class SecondSampleDimMutant(_Mutant):
    """With two or more sample dimensions, draws one value per index of the first and repeats
    it along the others (a noise drawn for ``sample_shape[0]`` alone and broadcast)."""

    FAMILIES = ("Normal", "Poisson")

    def mutate(self, family, params, x):  # type: ignore[no-untyped-def]
        k = x.dim() - len(tuple(params.batch_shape)) - len(tuple(params.event_shape))
        if k < 2:
            return x
        return x.narrow(1, 0, 1).expand_as(x).clone()


class LargeBatchMutant(_Mutant):
    """Batches of more than 64 elements draw Poisson with its rate 1.5 times too large (a
    path for large batches); smaller batches are right."""

    FAMILIES = ("Poisson",)

    def sample(self, family, params, sample_shape, *, seed=None):  # type: ignore[override]
        if math.prod(params.batch_shape) > 64:
            params = perturbed(family, params, "rate", 1.5)
        return self._inner.sample(family, params, sample_shape, seed=seed)


class WideBatchMutant(_Mutant):
    """Batches of more than 1,024 elements draw Poisson with its rate 1.5 times too large (a
    path for large batches: a parallel one above a grain size); smaller batches are right, so
    only the float32 grid's wide batch (:data:`polysample.conformance.grids.WIDE_ROWS`) sees
    it."""

    FAMILIES = ("Poisson",)

    def sample(self, family, params, sample_shape, *, seed=None):  # type: ignore[override]
        if math.prod(params.batch_shape) > 1024:
            params = perturbed(family, params, "rate", 1.5)
        return self._inner.sample(family, params, sample_shape, seed=seed)


class BinomialNoFlipMutant(_Mutant):
    """Binomial with p > 1/2 and n (1 - p) >= 10 (a large-n algorithm run on 1 - p) drawn as
    Binomial(n, 1 - p): the flip back is missing."""

    FAMILIES = ("Binomial",)

    def sample(self, family, params, sample_shape, *, seed=None):  # type: ignore[override]
        n, p = params["total_count"], params["probs"]
        q = torch.where((p > 0.5) & (n * (1 - p) >= 10), 1 - p, p)
        return self._inner.sample(family, {"total_count": n, "probs": q, "logits": q.logit()},
                                  sample_shape, seed=seed)


class TransposedAboveDim3Mutant(_Mutant):
    """MultivariateNormal above dimension 3 drawn with the covariance L^T L instead of L L^T
    (a Cholesky factor read transposed on a path taken for larger matrices)."""

    FAMILIES = ("MultivariateNormal",)

    def mutate(self, family, params, x):  # type: ignore[no-untyped-def]
        tril, loc = params["scale_tril"], params["loc"]
        if tril.shape[-1] <= 3:
            return x
        z = torch.linalg.solve_triangular(tril, (x - loc).unsqueeze(-1), upper=False)
        return loc + (tril.mT @ z).squeeze(-1)


class LastCategoryAbove16Mutant(_Mutant):
    """Categorical with more than 16 categories never draws the last one (the others keep
    their relative probabilities): a path taken for many categories that is off by one."""

    FAMILIES = ("Categorical",)

    def sample(self, family, params, sample_shape, *, seed=None):  # type: ignore[override]
        p = params["probs"]
        if p.shape[-1] > 16:
            p = torch.cat([p[..., :-1], torch.zeros_like(p[..., -1:])], -1)
            p = p / p.sum(-1, keepdim=True)
            params = {"probs": p, "logits": p.log()}
        return self._inner.sample(family, params, sample_shape, seed=seed)


class UnstableRegionMutant(_Mutant):
    """ContinuousBernoulli by torch 2.13's own inverse CDF, which returns the uniform itself
    where ``|probs - 1/2| <= 1e-3`` (finding F14): the law within 5e-4, and a zero gradient
    w.r.t. ``probs`` there (the expected one at 1/2 is 1/3)."""

    FAMILIES = ("ContinuousBernoulli",)

    def rsample(self, family, params, sample_shape, *, seed=None):  # type: ignore[override]
        from polysample.core.torch_fixes import (
            continuous_bernoulli_cdf,
            continuous_bernoulli_logits,
        )

        p = params["probs"]
        x = self._inner.rsample(family, params, sample_shape, seed=seed).detach()
        u = continuous_bernoulli_cdf(x, continuous_bernoulli_logits(p.detach()))
        return torch.distributions.ContinuousBernoulli(probs=p, validate_args=False).icdf(u)


class GammaBandMutant(_Mutant):
    """Gamma drawn 5% too large for concentrations in [5, 20) alone: between the grid points
    (typical 1 to 4, corners 1 and 30). Every grid's check passed it; the sweep's band of
    concentrations there fails it."""

    FAMILIES = ("Gamma",)

    def mutate(self, family, params, x):  # type: ignore[no-untyped-def]
        c = params["concentration"].expand(x.shape)
        return torch.where((c >= 5) & (c < 20), x * 1.05, x)


class GammaHighBandMutant(_Mutant):
    """Gamma drawn 3% too large for concentrations in [250, 900) alone, and its
    ``concentration`` gradient 3% too large there: past the sweep's end (200), short of the
    corner at 1000 (an outside trial's mutant; the corners' 400 meets it)."""

    FAMILIES = ("Gamma",)

    def _band(self, params):  # type: ignore[no-untyped-def]
        c = params["concentration"].detach()
        return ((c >= 250) & (c < 900)).to(c.dtype)

    def sample(self, family, params, sample_shape, *, seed=None):  # type: ignore[override]
        x = self._inner.sample(family, params, sample_shape, seed=seed)
        return x * (1 + 0.03 * self._band(params))

    def rsample(self, family, params, sample_shape, *, seed=None):  # type: ignore[override]
        c = params["concentration"]
        band = self._band(params)
        scaled = c.detach() + (1 + 0.03 * band) * (c - c.detach())
        x = self._inner.rsample(family, {**dict(params.items()), "concentration": scaled},
                                sample_shape, seed=seed)
        return x * (1 + 0.03 * band)


class TinyPoissonRateMutant(_Mutant):
    """Poisson draws 0 for every rate below 1e-3 (a shortcut: "the draw is almost surely
    0"): wrong with probability about the rate, below the grids' smallest positive rate
    (1e-3) before the corners got 1e-4 (an outside trial's mutant)."""

    FAMILIES = ("Poisson",)

    def mutate(self, family, params, x):  # type: ignore[no-untyped-def]
        rate = params["rate"].expand(x.shape)
        return torch.where(rate < 1e-3, torch.zeros_like(x), x)


class GammaGradientBandMutant(_Mutant):
    """Right Gamma values; the gradient w.r.t. ``concentration`` 5% too large for
    concentrations in [5, 20) alone (a trial's "between the grid points" defect): the sweep
    grid's per-sample identity meets it."""

    FAMILIES = ("Gamma",)

    def rsample(self, family, params, sample_shape, *, seed=None):  # type: ignore[override]
        c = params["concentration"]
        band = ((c.detach() >= 5) & (c.detach() < 20)).to(c.dtype)
        scaled = c.detach() + (1 + 0.05 * band) * (c - c.detach())
        return self._inner.rsample(family, {**dict(params.items()), "concentration": scaled},
                                   sample_shape, seed=seed)


class GammaWholeRateGradientMutant(_Mutant):
    """Right Gamma values; the gradient w.r.t. ``rate`` 10% too large at whole concentrations
    from 5 to 16 (an Erlang path; an outside trial's: no gradient grid point was a whole
    number there)."""

    FAMILIES = ("Gamma",)

    def rsample(self, family, params, sample_shape, *, seed=None):  # type: ignore[override]
        x = self._inner.rsample(family, params, sample_shape, seed=seed)
        c, rate = params["concentration"].detach(), params["rate"]
        whole = ((c == torch.round(c)) & (c >= 5) & (c <= 16)).to(x.dtype)
        # adds 0.1 * dx/drate = -0.1 x / rate to the rate gradient there, nothing to the value
        return x + whole * 0.1 * (-x / rate).detach() * (rate - rate.detach())


class DirichletBandMutant(_Mutant):
    """Dirichlet whose components of concentration in [20, 80) are drawn 10% too large before
    the draw is normalised: between the grid points (typical 1 to 3.5, corners up to 10 and
    1000). The multivariate sweep's bands of concentrations there fail it."""

    FAMILIES = ("Dirichlet",)
    FACTOR = 1.10

    def mutate(self, family, params, x):  # type: ignore[no-untyped-def]
        c = params["concentration"].expand(x.shape)
        y = torch.where((c >= 20) & (c < 80), x * self.FACTOR, x)
        return y / y.sum(-1, keepdim=True)


class WishartBandMutant(_Mutant):
    """Wishart drawn 3% too large for degrees of freedom in [30, 100) alone (the grids have 3.5
    to 8 and 1000): the multivariate sweep's bands of df there fail it."""

    FAMILIES = ("Wishart",)

    def mutate(self, family, params, x):  # type: ignore[no-untyped-def]
        df = params["df"].expand(x.shape[:-2])[..., None, None]
        return torch.where((df >= 30) & (df < 100), x * 1.03, x)


class MultinomialBandMutant(_Mutant):
    """Multinomial drawn with its first category's probability 5% too large (renormalised)
    for total counts in [100, 1000) alone (the grids have 10 and 1000): the sweep's bands
    of total counts there fail it."""

    FAMILIES = ("Multinomial",)
    FACTOR = 1.05

    def sample(self, family, params, sample_shape, *, seed=None):  # type: ignore[override]
        total = float(params["total_count"])
        if not 100 <= total < 1000:
            return self._inner.sample(family, params, sample_shape, seed=seed)
        probs = params["probs"] / params["probs"].sum(-1, keepdim=True)
        probs = torch.cat([probs[..., :1] * self.FACTOR, probs[..., 1:]], -1)
        return self._inner.sample(family, {**dict(params.items()), "probs": probs,
                                           "logits": probs.log()}, sample_shape, seed=seed)


class DirichletGradientBandMutant(_Mutant):
    """Right Dirichlet values; the gradient w.r.t. the components of concentration in
    [20, 80) 10% too large (between the grid points: typical 1 to 3.5, corners up to 10 and
    1000). The mean-gradient sweep's bands of concentrations there fail it."""

    FAMILIES = ("Dirichlet",)
    FACTOR = 1.10

    def rsample(self, family, params, sample_shape, *, seed=None):  # type: ignore[override]
        c = params["concentration"]
        band = ((c.detach() >= 20) & (c.detach() < 80)).to(c.dtype)
        scaled = c.detach() + (1 + (self.FACTOR - 1) * band) * (c - c.detach())
        return self._inner.rsample(family, {**dict(params.items()), "concentration": scaled},
                                   sample_shape, seed=seed)


class WishartGradientBandMutant(_Mutant):
    """Right Wishart values; the gradient w.r.t. ``scale_tril`` 10% too large for degrees of
    freedom in [30, 100) alone (the grids have 3.5 to 8 and 1000). The mean-gradient sweep's
    bands of df there fail it (5%: z = 8.9 against 8.3 in quick mode, narrowly)."""

    FAMILIES = ("Wishart",)
    FACTOR = 1.10

    def rsample(self, family, params, sample_shape, *, seed=None):  # type: ignore[override]
        tril, df = params["scale_tril"], params["df"].detach()
        band = ((df >= 30) & (df < 100)).to(tril.dtype)[..., None, None]
        scaled = tril.detach() + (1 + (self.FACTOR - 1) * band) * (tril - tril.detach())
        return self._inner.rsample(family, {**dict(params.items()), "scale_tril": scaled},
                                   sample_shape, seed=seed)


class PoissonBandMutant(_Mutant):
    """Poisson drawn by a rounded normal approximation for rates in [4, 10) alone (below the
    rate where torch's own algorithm switches; the grid has 3 and 12): the sweep's band of
    rates there fails it in full mode (quick mode: 0.68 of its threshold)."""

    FAMILIES = ("Poisson",)

    def sample(self, family, params, sample_shape, *, seed=None):  # type: ignore[override]
        x = self._inner.sample(family, params, sample_shape, seed=seed)
        rate = params["rate"].expand(x.shape)
        noise = self._inner.sample("Normal", {"loc": torch.zeros_like(rate),
                                              "scale": torch.ones_like(rate)}, (), seed=seed)
        approx = torch.clamp(torch.round(rate + rate.sqrt() * noise), min=0)
        return torch.where((rate >= 4) & (rate < 10), approx, x)


class LogOfDensityMutant(_Mutant):
    """Scores Normal itself, as log(pdf): right wherever the density is a normal float, -inf
    beyond about 38 standard deviations (where exp underflows)."""

    def families(self) -> Mapping[str, FamilySupport]:
        return {f: dataclasses.replace(s, log_prob=True) for f, s in super().families().items()}

    def log_prob(self, family, params, value):  # type: ignore[override]
        lp = torch.distributions.Normal(params["loc"], params["scale"]).log_prob(value)
        return torch.log(torch.exp(lp))


class MidTailLogProbMutant(LogOfDensityMutant):
    """Scores Normal itself, 1e-3 off (relative) between 5 and 30 standard deviations only:
    beyond every draw and short of the far tail (an outside trial's mutant, which passed both
    modes before ``log_prob_far`` asked the tails in between)."""

    def log_prob(self, family, params, value):  # type: ignore[override]
        lp = torch.distributions.Normal(params["loc"], params["scale"]).log_prob(value)
        z = ((value - params["loc"]) / params["scale"]).abs()
        return torch.where((z > 5) & (z < 30), lp * (1 + 1e-3), lp)


class GammaLogProbBandMutant(LogOfDensityMutant):
    """Scores Gamma itself, 1e-3 off (relative) for concentrations in [5, 20) alone: between
    the example's (1 to 4) and the corners' (1, 30, 400) concentrations (an outside trial's
    mutant, which passed both modes before ``log_prob_f64`` judged the sweep grid)."""

    FAMILIES = ("Gamma",)

    def log_prob(self, family, params, value):  # type: ignore[override]
        c = params["concentration"]
        lp = torch.distributions.Gamma(c, params["rate"]).log_prob(value)
        return torch.where((c >= 5) & (c < 20), lp * (1 + 1e-3), lp)


class OpenEndMutant(LogOfDensityMutant):
    """Scores Exponential itself with a guard ``x > 0``: ``-inf`` at 0, which the support holds
    (the density is ``rate`` there). ``log_prob_edge`` asked only values beside the end."""

    FAMILIES = ("Exponential",)

    def log_prob(self, family, params, value):  # type: ignore[override]
        rate = params["rate"]
        lp = torch.log(rate) - rate * value
        return torch.where(value > 0, lp, torch.full_like(lp, -math.inf))


class LogProbGradientMutant(_Mutant):
    """Scores Normal itself with the right values and a ``scale`` gradient 1% off (a
    hand-written backward pass with a wrong constant)."""

    def families(self) -> Mapping[str, FamilySupport]:
        return {f: dataclasses.replace(s, log_prob=True) for f, s in super().families().items()}

    def log_prob(self, family, params, value):  # type: ignore[override]
        scale = params["scale"]
        off = scale.detach() + 1.01 * (scale - scale.detach())
        return self._inner.log_prob(family, {**dict(params.items()), "scale": off}, value)


class LogProbBroadcastMutant(_Mutant):
    """Scores Normal itself, right for values of the full shape; a value that broadcasts
    against the batch is scored with the first batch element's parameters for every element
    (an outside trial's; every density check scored full-shape values)."""

    def families(self) -> Mapping[str, FamilySupport]:
        return {f: dataclasses.replace(s, log_prob=True) for f, s in super().families().items()}

    def log_prob(self, family, params, value):  # type: ignore[override]
        batch = tuple(params.batch_shape)
        if batch and tuple(torch.broadcast_shapes(value.shape, batch)) != tuple(value.shape):
            params = {k: v.reshape(-1)[0].expand(v.shape) for k, v in params.items()}
        return self._inner.log_prob(family, params, value)


class LogProbConstantMutant(_Mutant):
    """Scores Normal itself with a wrong normalising constant (``log_prob + 0.5``): wrong at
    every value, so advice about numerics in the tails would mislead."""

    def families(self) -> Mapping[str, FamilySupport]:
        return {f: dataclasses.replace(s, log_prob=True) for f, s in super().families().items()}

    def log_prob(self, family, params, value):  # type: ignore[override]
        return self._inner.log_prob(family, params, value) + 0.5


class ProbsScoringMutant(_Mutant):
    """Scores Bernoulli and Categorical itself from ``probs``, as a library whose densities take
    probabilities does (the example SciPy plugin did): right wherever the probabilities are
    exact, but a distribution given large ``logits`` has probabilities of 1.0 and 0.0
    (``Bernoulli(logits=17.)`` in float32), whose values it scores ``-inf`` or at torch's
    clamp instead of -17, with NaN or zero gradients."""

    FAMILIES = ("Bernoulli", "Categorical")

    def families(self) -> Mapping[str, FamilySupport]:
        return {f: dataclasses.replace(s, log_prob=True) for f, s in super().families().items()}

    def log_prob(self, family, params, value):  # type: ignore[override]
        probs = params["probs"]
        if family == "Bernoulli":
            return torch.where(value > 0, probs.log(), torch.log1p(-probs))
        return probs.log().expand(value.shape + probs.shape[-1:]).gather(
            -1, value.long().unsqueeze(-1)).squeeze(-1)


class BinomialCountGradientMutant(_Mutant):
    """Scores Binomial itself, right in value, but its derivative in ``total_count`` drops the
    ``log(1 - p)`` of ``(n - x) log(1 - p)`` where ``x == n`` (TFP 0.25 on JAX did, through
    ``multiply_no_nan``'s derivative: finding F16)."""

    FAMILIES = ("Binomial",)

    def families(self) -> Mapping[str, FamilySupport]:
        return {f: dataclasses.replace(s, log_prob=True) for f, s in super().families().items()}

    def log_prob(self, family, params, value):  # type: ignore[override]
        lp = self._inner.log_prob(family, params, value)
        n, probs = params["total_count"], params["probs"]
        dropped = (n - n.detach()) * torch.log1p(-probs.detach())  # value 0, derivative log(1-p)
        return lp - torch.where(value == n, dropped, torch.zeros_like(dropped))


class ScalarPathMutant(_Mutant):
    """Gamma whose path for scalar parameters and calls of at least 256 values (the torch
    backend's in-place kernels start there) reads ``rate`` as a scale: ``Gamma(2, 4)`` of mean
    8 instead of 0.5. Every batched draw is right (an outside trial's mutant, which passed
    every check before ``scalar_ks``)."""

    FAMILIES = ("Gamma",)

    def mutate(self, family, params, x):  # type: ignore[no-untyped-def]
        if len(params.batch_shape) or x.numel() < 256:
            return x
        return x * params["rate"] ** 2


class StratifiedMutant(_Mutant):
    """Normal draws stratified along the sample dimension (a Latin hypercube of the uniforms,
    for calls of at least 16 rows): every column's law is right and neighbouring rows barely
    correlate (-1/15 in a call of 16), but the calls' means spread 0.004 times as much as
    independent draws' (an outside trial's mutant, which passed every check before
    ``calls_indep``)."""

    def mutate(self, family, params, x):  # type: ignore[no-untyped-def]
        n = x.shape[0] if x.dim() > len(params.batch_shape) else 0
        if n < 16:
            return x
        g = torch.Generator().manual_seed(int(x.flatten()[0].double().abs() * 1e6) % (1 << 62))
        u = torch.rand(x.shape, generator=g, dtype=torch.float64)
        strata = torch.rand(x.shape, generator=g, dtype=torch.float64).argsort(0).double()
        z = torch.special.ndtri(((strata + u) / n).clamp(1e-300, 1 - 1e-16)).to(x.dtype)
        return params["loc"] + params["scale"] * z + 0 * x


class StratifiedDiscreteMutant(_Mutant):
    """Categorical and Poisson draws stratified along the sample dimension (a Latin hypercube
    of the uniforms, inverted through the law's CDF, in calls of 16 to 64 rows): every
    column's law is right, but each call's counts are as even as the law allows
    (systematic resampling, as particle filters draw). ``calls_indep`` judged continuous
    statistics alone."""

    FAMILIES = ("Categorical", "Poisson")

    def mutate(self, family, params, x):  # type: ignore[no-untyped-def]
        n = x.shape[0] if x.dim() > len(params.batch_shape) else 0
        if not 16 <= n <= 64:
            return x
        g = torch.Generator().manual_seed(zlib.crc32(x.double().numpy().tobytes()))
        u = torch.rand(x.shape, generator=g, dtype=torch.float64)
        strata = torch.rand(x.shape, generator=g, dtype=torch.float64).argsort(0).double()
        u = ((strata + u) / n).clamp(0.0, 1 - 1e-16)
        if family == "Categorical":
            cum = params["probs"].double().cumsum(-1)
            cum = cum / cum[..., -1:]
            out = (u.unsqueeze(-1) >= cum.expand(*u.shape, cum.shape[-1])).sum(-1)
            return out.clamp(max=cum.shape[-1] - 1).to(x.dtype)
        from scipy import stats

        rate = params["rate"].double().expand(x.shape)
        return torch.from_numpy(stats.poisson.ppf(u.numpy(), rate.numpy())).to(x.dtype)


class GradientNoiseMutant(_Mutant):
    """Normal with right values and a ``scale`` gradient plus independent noise of mean 0
    (``dx/dscale = eps + eta``): unbiased in conditional mean, so ``grad_cdf``'s fallback
    passed it (an outside trial's mutant); ``scale`` has one valid path (``Case.pathwise``)."""

    def rsample(self, family, params, sample_shape, *, seed=None):  # type: ignore[override]
        x = self._inner.rsample(family, params, sample_shape, seed=seed)
        if x.numel() == 0:
            return x
        g = torch.Generator().manual_seed(int(x.detach().flatten()[0].double().abs() * 1e6)
                                          % (1 << 62))
        eta = torch.randn(x.shape, generator=g, dtype=torch.float64).to(x.dtype)
        scale = params["scale"]
        return x + (scale - scale.detach()) * eta


class ScalarMeanGradientMutant(_Mutant):
    """Normal with right values whose per-draw ``scale`` gradient, for scalar parameters, is
    the call's mean noise: the sum over the call, all that a scalar leaf's gradient shows, is
    right (an outside trial's mutant, which passed every check before ``grad_scalar``)."""

    def rsample(self, family, params, sample_shape, *, seed=None):  # type: ignore[override]
        x = self._inner.rsample(family, params, sample_shape, seed=seed)
        if len(params.batch_shape) or x.numel() < 2:
            return x
        loc, scale = params["loc"], params["scale"]
        eps = ((x - loc) / scale).detach()
        return x.detach() + (loc - loc.detach()) + (scale - scale.detach()) * eps.mean()


class ScalarShapeMeanGradientMutant(_Mutant):
    """Gamma with right values and a right ``rate`` gradient whose per-draw
    ``concentration`` gradient, for scalar parameters, is the call's mean: the sum over the
    call, all that a scalar leaf's gradient shows, is right (a trial's "still passing" defect:
    ``grad_scalar`` judged the location and scale parameters alone)."""

    FAMILIES = ("Gamma",)

    def rsample(self, family, params, sample_shape, *, seed=None):  # type: ignore[override]
        x = self._inner.rsample(family, params, sample_shape, seed=seed)
        if len(params.batch_shape) or x.numel() < 2:
            return x
        conc, rate = params["concentration"], params["rate"]
        z = (x * rate).detach()  # the standard Gamma draws
        dz = torch._standard_gamma_grad(z, conc.detach().expand_as(z))  # dz_i / dconc
        return z / rate + (conc - conc.detach()) * (dz.mean() / rate).detach()


class ScalarStudentTDfMeanGradientMutant(_Mutant):
    """StudentT with right values and right ``loc`` and ``scale`` gradients whose per-draw
    ``df`` gradient, for scalar parameters, is the call's mean of the right per-draw gradients
    (drawn on a copy of ``df`` per value): every sum over the call is right. ``df`` is drawn
    through a chi-square, not along its quantile path, so its per-draw gradients are right in
    conditional mean only: an outside trial's "still passing" defect (``grad_scalar`` judged
    the parameters on their quantile path alone)."""

    FAMILIES = ("StudentT",)

    def rsample(self, family, params, sample_shape, *, seed=None):  # type: ignore[override]
        if len(params.batch_shape) or math.prod(sample_shape) < 2:
            return self._inner.rsample(family, params, sample_shape, seed=seed)
        df, loc, scale = params["df"], params["loc"], params["scale"]
        shape = tuple(sample_shape)
        leaf = df.detach().expand(shape).clone().requires_grad_(True)
        y = self._inner.rsample(family, {"df": leaf, "loc": torch.zeros_like(leaf),
                                         "scale": torch.ones_like(leaf)}, torch.Size(),
                                 seed=seed)
        (g,) = torch.autograd.grad(y.sum(), [leaf])
        z = y.detach()
        return loc + scale * z + (df - df.detach()) * (scale * g.mean()).detach()


class ScalarFloat32ScaleGradientMutant(_Mutant):
    """Normal with right values whose ``scale`` gradient is 5% too large in float32 calls
    with scalar parameters, right in float64 and in batched calls (an outside trial's:
    ``grad_scalar`` judged float64 alone, and every batched check sees the right path)."""

    def rsample(self, family, params, sample_shape, *, seed=None):  # type: ignore[override]
        x = self._inner.rsample(family, params, sample_shape, seed=seed)
        if len(params.batch_shape) or x.dtype != torch.float32:
            return x
        loc, scale = params["loc"], params["scale"]
        eps = ((x - loc) / scale).detach()
        return x + 0.05 * (scale - scale.detach()) * eps


class LaplaceKinkMutant(_Mutant):
    """Scores Laplace itself, right in value, with derivative 1 of ``|x - loc|`` at
    ``x == loc`` (JAX's ``abs``; torch's is ``sign(0) = 0``): TFP 0.25 on JAX, finding F17."""

    FAMILIES = ("Laplace",)

    def families(self) -> Mapping[str, FamilySupport]:
        return {f: dataclasses.replace(s, log_prob=True) for f, s in super().families().items()}

    def log_prob(self, family, params, value):  # type: ignore[override]
        loc, scale = params["loc"], params["scale"]
        z = value - loc
        sign = torch.where(z >= 0, torch.ones_like(z), -torch.ones_like(z)).detach()
        return -(z * sign) / scale - torch.log(2 * scale)


class CancellingKumaraswamyMutant(_Mutant):
    """Scores Kumaraswamy itself with ``log1p(-x^a)`` for ``log(1 - x^a)`` (TFP 0.25's
    formula): right to 1e-15 at typical values, wrong within a few thousand ulps of 1, where
    ``x^a`` rounds (infinite at ``1 - 2^-53``)."""

    FAMILIES = ("Kumaraswamy",)

    def families(self) -> Mapping[str, FamilySupport]:
        return {f: dataclasses.replace(s, log_prob=True) for f, s in super().families().items()}

    def log_prob(self, family, params, value):  # type: ignore[override]
        a, b = params["concentration1"], params["concentration0"]
        return (a.log() + b.log() + (a - 1) * value.log()
                + (b - 1) * torch.log1p(-value ** a))


class SquaringStudentTMutant(_Mutant):
    """Scores StudentT itself with torch 2.13's formula, ``log1p(z^2 / df)``: right to 1e-15 at
    typical and far values, -inf beyond ``|z| = 1.3e154``, where the log density is finite
    (about -1613 at 1e200 for ``df = 2.5``)."""

    FAMILIES = ("StudentT",)

    def families(self) -> Mapping[str, FamilySupport]:
        return {f: dataclasses.replace(s, log_prob=True) for f, s in super().families().items()}

    def log_prob(self, family, params, value):  # type: ignore[override]
        df, loc, scale = params["df"], params["loc"], params["scale"]
        z = (value - loc) / scale
        return (torch.lgamma((df + 1) / 2) - torch.lgamma(df / 2) - 0.5 * torch.log(df * math.pi)
                - scale.log() - (df + 1) / 2 * torch.log1p(z ** 2 / df))


class ParetoRatioMutant(_Mutant):
    """Scores Pareto itself with torch 2.13's formula, an exponential at ``log(x / scale)``:
    right in float64 and at every float32 value but near float32's largest, where ``x / scale``
    overflows for a scale below 1 (-inf where the log density is about -311)."""

    FAMILIES = ("Pareto",)

    def families(self) -> Mapping[str, FamilySupport]:
        return {f: dataclasses.replace(s, log_prob=True) for f, s in super().families().items()}

    def log_prob(self, family, params, value):  # type: ignore[override]
        return torch.distributions.Pareto(params["scale"], params["alpha"],
                                          validate_args=False).log_prob(value)


class RelaxedOverflowMutant(_Mutant):
    """Scores RelaxedBernoulli itself with torch 2.13's formula, ``log1p(exp(d))`` for
    ``softplus(d)``, ``d = logits - T logit(x)``: right at the example grid's temperatures
    (0.3 and 1) everywhere the suite asks, -inf near 0 at the corners' temperature 3 (in float64 at
    ``2^-760``, where ``d`` exceeds 709)."""

    FAMILIES = ("RelaxedBernoulli",)

    def families(self) -> Mapping[str, FamilySupport]:
        return {f: dataclasses.replace(s, log_prob=True) for f, s in super().families().items()}

    def log_prob(self, family, params, value):  # type: ignore[override]
        return torch.distributions.RelaxedBernoulli(params["temperature"],
                                                    logits=params["logits"],
                                                    validate_args=False).log_prob(value)


class CollapsedBatchMutant(_Mutant):
    """Draws every batch element with the first element's ``scale_tril`` (MultivariateNormal,
    Wishart) or ``temperature`` (RelaxedOneHotCategorical), as a backend built on a library
    that takes one covariance per call might; no ``rsample`` (with one, the unused elements'
    zero gradients would give it away in the gradient layer instead)."""

    FAMILIES = ("MultivariateNormal", "Wishart", "RelaxedOneHotCategorical")
    _SHARED = {"MultivariateNormal": "scale_tril", "Wishart": "scale_tril",
               "RelaxedOneHotCategorical": "temperature"}

    def families(self) -> Mapping[str, FamilySupport]:
        return {f: dataclasses.replace(s, rsample=False) for f, s in super().families().items()}

    def sample(self, family, params, sample_shape, *, seed=None):  # type: ignore[override]
        name = self._SHARED[family]
        p = dict(params)
        v = params[name]
        event = FAMILIES[family].param_event_dim(name)
        if v.dim() > event:  # a batch: its first element's value for all
            first = v.reshape((-1,) + tuple(v.shape[v.dim() - event:]))[0]
            p[name] = first.expand(v.shape).clone()
        if family == "MultivariateNormal":
            p.pop("covariance_matrix", None)
            p.pop("precision_matrix", None)
        return self._inner.sample(family, p, sample_shape, seed=seed)


class ShortMultinomialMutant(_Mutant):
    """Multinomial rows summing to ``total_count - 1`` (one trial dropped from the largest
    count): within torch's support constraint, which allows any sum up to ``total_count``."""

    FAMILIES = ("Multinomial",)

    def mutate(self, family, params, x):  # type: ignore[no-untyped-def]
        drop = torch.zeros_like(x).scatter_(-1, x.argmax(-1, keepdim=True), 1.0)
        return x - drop


class BinomialNormalMutant(_Mutant):
    """Binomial drawn by a rounded normal approximation where ``n p (1 - p) > 25`` (the exact
    mean, nearly the exact variance, none of the skewness): the corner (1000, 0.05)."""

    FAMILIES = ("Binomial",)

    def sample(self, family, params, sample_shape, *, seed=None):  # type: ignore[override]
        x = self._inner.sample(family, params, sample_shape, seed=seed)
        n, p = params["total_count"], params["probs"]
        var = n * p * (1 - p)
        if isinstance(seed, torch.Generator):
            g = seed
        else:
            ss = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(
                None if seed is None else seed)
            g = torch.Generator().manual_seed(int(ss.generate_state(1, np.uint64)[0] >> 1))
        z = torch.randn(x.shape, generator=g, dtype=x.dtype)
        approx = (n * p + var.sqrt() * z).round().clamp(torch.zeros_like(n), n)
        return torch.where(var > 25, approx, x)


class PoissonNormalMutant(_Mutant):
    """Poisson drawn by a rounded normal approximation above a rate of 30 (the exact mean and
    variance, none of the skewness): the corner rate 40. Quick mode passed it when Poisson's
    corners drew 2^15 values (an outside author's plugin did the same above 100)."""

    FAMILIES = ("Poisson",)

    def sample(self, family, params, sample_shape, *, seed=None):  # type: ignore[override]
        x = self._inner.sample(family, params, sample_shape, seed=seed)
        rate = params["rate"]
        ss = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(
            None if seed is None or isinstance(seed, torch.Generator) else seed)
        g = torch.Generator().manual_seed(int(ss.generate_state(1, np.uint64)[0] >> 1))
        z = torch.randn(x.shape, generator=g, dtype=x.dtype)
        approx = (rate + rate.sqrt() * z).round().clamp(min=0)
        return torch.where(rate > 30, approx, x)


class CallStartMutant(_Mutant):
    """Every call's first value is ``loc`` (an uninitialised warm-up slot filled with the
    mean): one value per call, so a large draw holds it once; a training loop's small calls
    hold it in every call. Quick mode passed it (calls_ks 0.041 against 0.054)."""

    def mutate(self, family, params, x):  # type: ignore[no-untyped-def]
        first = torch.zeros(x.numel(), dtype=torch.bool)
        first[:1] = True
        return torch.where(first.view(x.shape), params["loc"].expand(x.shape), x)


class NegativeBinomialCeilMutant(_Mutant):
    """NegativeBinomial drawn with ``ceil(total_count)`` (a sum of geometrics, right for whole
    counts): twice the mean at the corner (0.5, 1e-3), whose 2^15 quick-mode draws held 16
    non-zero values (the sum 8.5 sd off at 2^18)."""

    FAMILIES = ("NegativeBinomial",)

    def sample(self, family, params, sample_shape, *, seed=None):  # type: ignore[override]
        p = {**dict(params.items()), "total_count": torch.ceil(params["total_count"])}
        return self._inner.sample(family, p, sample_shape, seed=seed)


class ReversedFirstBatchDimMutant(_Mutant):
    """Batches of three or more dimensions read with their first dimension reversed (an
    off-by-one stride in an N-d indexer): each element draws with another element's
    parameters. One- and two-dimensional batches are right, and the sampler drew only those."""

    def _read(self, params):  # type: ignore[no-untyped-def]
        nb = len(tuple(params.batch_shape))
        if nb < 3:
            return params
        out = dict(params)
        for k, v in params.items():
            if isinstance(v, torch.Tensor) and v.dim() >= nb and v.shape[0] > 1:
                out[k] = v.flip(0)
        return out

    def sample(self, family, params, sample_shape, *, seed=None):  # type: ignore[override]
        return self._inner.sample(family, self._read(params), sample_shape, seed=seed)

    def rsample(self, family, params, sample_shape, *, seed=None):  # type: ignore[override]
        return self._inner.rsample(family, self._read(params), sample_shape, seed=seed)


class _BatchReadMutant(_Mutant):
    """Draws with the parameters ``_read`` gives (each batch element another element's)."""

    def _read(self, family, params):  # type: ignore[no-untyped-def]
        return params

    def sample(self, family, params, sample_shape, *, seed=None):  # type: ignore[override]
        return self._inner.sample(family, self._read(family, params), sample_shape, seed=seed)

    def rsample(self, family, params, sample_shape, *, seed=None):  # type: ignore[override]
        return self._inner.rsample(family, self._read(family, params), sample_shape, seed=seed)

    @staticmethod
    def _moved(family, params, move):  # type: ignore[no-untyped-def]
        """``params`` with every batched tensor broadcast to the batch, its flat batch
        elements reordered by ``move`` (a function of the flat element index tensor)."""
        batch = tuple(params.batch_shape)
        size = math.prod(batch)
        order = move(torch.arange(size))
        out = dict(params)
        spec = FAMILIES[family]
        for k, v in params.items():
            if not isinstance(v, torch.Tensor) or v.dim() <= spec.param_event_dim(k):
                continue
            ev = tuple(v.shape[v.dim() - spec.param_event_dim(k):])
            full = v.expand(batch + ev).reshape((size,) + ev)
            out[k] = full[order].reshape(batch + ev)
        return out


class NeighbourBatchMutant(_BatchReadMutant):
    """One-dimensional batches of 5 to 7 elements: element ``i`` draws with element
    ``i + 1``'s parameters (the last with the first's), an off-by-one in a vectorised path
    for mid-sized batches. Every other batch is right; the sampler drew batches of 3 (and
    copies of them) only (an outside trial's)."""

    FAMILIES = ("Normal", "Gamma")

    def _read(self, family, params):  # type: ignore[no-untyped-def]
        batch = tuple(params.batch_shape)
        if len(batch) != 1 or not 5 <= batch[0] <= 7:
            return params
        return self._moved(family, params, lambda i: (i + 1) % batch[0])


class Reversed4dBatchMutant(_BatchReadMutant):
    """Batches of four dimensions read in reverse order (flat element ``i`` draws with element
    ``size - 1 - i``'s parameters); batches of up to three dimensions are right, and the
    sampler's grids reached three (an outside trial's)."""

    def _read(self, family, params):  # type: ignore[no-untyped-def]
        batch = tuple(params.batch_shape)
        if len(batch) != 4:
            return params
        return self._moved(family, params, lambda i: i.flip(0))


class BatchNoiseReuseMutant(_Mutant):
    """One-dimensional batches of 8 or more elements: element ``i + 7`` drawn with element
    ``i``'s noise (a noise buffer indexed modulo 7 in a one-dimensional path). Every
    element's law is right and neighbouring elements are independent (an outside
    trial's); the sampler's one-dimensional batches held 3 elements."""

    def mutate(self, family, params, x):  # type: ignore[no-untyped-def]
        batch = tuple(params.batch_shape)
        size = math.prod(batch)
        if len(batch) != 1 or size < 8:
            return x
        loc, scale = params["loc"], params["scale"]
        z = ((x - loc) / scale).reshape(-1, size).clone()
        for i in range(7, size):
            z[:, i] = z[:, i - 7]
        return loc + scale * z.reshape(x.shape)


class Lag2RowsMutant(_Mutant):
    """A Normal whose rows (the first sample dimension) are correlated at lag 2 only: row
    ``i``'s noise mixed with row ``i - 2``'s, ``(z_i + c z_{i-2}) / sqrt(1 + c^2)`` with
    ``c = 0.25`` (correlation 0.24 two rows apart, none between neighbours, the right
    marginals; an outside trial's). The independence checks compared neighbours only."""

    C = 0.25

    def sample(self, family, params, sample_shape, *, seed=None):  # type: ignore[override]
        x = self._inner.sample(family, params, sample_shape, seed=seed)
        if len(sample_shape) == 0 or sample_shape[0] < 3:
            return x
        loc, scale = params["loc"], params["scale"]
        z = (x - loc) / scale
        mixed = z.clone()
        mixed[2:] = (z[2:] + self.C * z[:-2]) / math.sqrt(1 + self.C ** 2)
        return loc + scale * mixed


class TwoCategoryMutant(_Mutant):
    """Dirichlet and Categorical of exactly two categories on a path of their own, wrong: the
    Dirichlet drawn with its first concentration 20% high (a Beta with a slip), the
    Categorical with its two probabilities swapped. Every other event size is right (an
    outside trial's: every grid had 1, 3 or 5 categories)."""

    FAMILIES = ("Dirichlet", "Categorical")

    def _params(self, family, params):  # type: ignore[no-untyped-def]
        name = "concentration" if family == "Dirichlet" else "probs"
        v = params.get(name)
        if not isinstance(v, torch.Tensor) or v.shape[-1] != 2:
            return params
        out = {k: w for k, w in params.items() if k != "logits"}
        if family == "Dirichlet":
            out[name] = torch.cat([v[..., :1] * 1.2, v[..., 1:]], -1)
        else:
            out[name] = v.flip(-1)
        return out

    def sample(self, family, params, sample_shape, *, seed=None):  # type: ignore[override]
        return self._inner.sample(family, self._params(family, params), sample_shape, seed=seed)

    def rsample(self, family, params, sample_shape, *, seed=None):  # type: ignore[override]
        return self._inner.rsample(family, self._params(family, params), sample_shape,
                                   seed=seed)


class WithoutReplacementMutant(_Mutant):
    """A Categorical whose calls of at most as many values as categories, with one parameter
    set, are drawn by ``torch.multinomial`` without replacement (its default): no value twice
    within such a call; right in larger calls and batches (an outside trial's). The small
    calls of ``smalls_ks`` hold too few such calls to tell."""

    FAMILIES = ("Categorical",)

    def sample(self, family, params, sample_shape, *, seed=None):  # type: ignore[override]
        probs = params["probs"]
        k = probs.shape[-1]
        if (probs.dim() != 1 or len(sample_shape) != 1 or not 1 < sample_shape[0] <= k
                or not isinstance(seed, np.random.SeedSequence)):
            return self._inner.sample(family, params, sample_shape, seed=seed)
        g = torch.Generator().manual_seed(int(seed.generate_state(1, np.uint64)[0] >> 1))
        return torch.multinomial(probs.detach(), sample_shape[0], generator=g)


class LastSampleDimRepeatMutant(_Mutant):
    """Sample shapes of three or more dimensions draw the shape without its last dimension and
    repeat those values along it (a broadcast where a draw was meant): right marginals; the
    sampler drew two-dimensional sample shapes only."""

    def _draw(self, fn, family, params, sample_shape, seed):  # type: ignore[no-untyped-def]
        shape = tuple(sample_shape)
        if len(shape) < 3:
            return fn(family, params, sample_shape, seed=seed)
        x = fn(family, params, torch.Size(shape[:-1]), seed=seed)
        k = len(shape) - 1
        return x.unsqueeze(k).expand(x.shape[:k] + (shape[-1],) + x.shape[k:]).clone()

    def sample(self, family, params, sample_shape, *, seed=None):  # type: ignore[override]
        return self._draw(self._inner.sample, family, params, sample_shape, seed)

    def rsample(self, family, params, sample_shape, *, seed=None):  # type: ignore[override]
        return self._draw(self._inner.rsample, family, params, sample_shape, seed)


class StudentTFlipMutant(_Mutant):
    """StudentT with right values and every ``rsample()`` gradient's sign flipped above 30
    degrees of freedom (the corner df 1000): there the per-sample identity's error is 2,
    below the finite-difference noise of the valid two-noise path in ``df`` at df 1 (about
    4), so the message named corners[1]. ``loc`` and ``scale`` have one valid path
    (``Case.pathwise``): their per-sample identity fails at corners[3] itself. (Its ``df``
    gradient alone flipped passes: that gradient is tiny at df 1000.)"""

    FAMILIES = ("StudentT",)

    def rsample(self, family, params, sample_shape, *, seed=None):  # type: ignore[override]
        x = self._inner.rsample(family, params, sample_shape, seed=seed)
        return torch.where(params["df"] > 30, 2 * x.detach() - x, x)


class GarbageMutant(_Mutant):
    """Returns NaN for Normal, the wrong shape for Exponential, and raises for Gamma."""

    FAMILIES = ("Normal", "Exponential", "Gamma")

    def mutate(self, family, params, x):  # type: ignore[no-untyped-def]
        if family == "Normal":
            return torch.full_like(x, float("nan"))
        if family == "Exponential":
            return x.reshape(-1)[:1]
        raise RuntimeError("simulated backend crash")


class ConstantGradientMutant(_Mutant):
    """Right values; the gradient in every parameter but ``loc`` (``probs``) does not depend
    on the draw: zero (a backward pass that drops the path's dependence on the parameter)."""

    FAMILIES = ("MultivariateNormal", "Dirichlet", "RelaxedOneHotCategorical")
    # probs and logits: one parameter given two ways (the typical grid is given logits)
    _KEEP = {"MultivariateNormal": ("loc",), "RelaxedOneHotCategorical": ("probs", "logits")}

    def rsample(self, family, params, sample_shape, *, seed=None):  # type: ignore[override]
        keep = self._KEEP.get(family)
        cut = {k: (v.detach() if isinstance(v, torch.Tensor) and k not in (keep or ()) else v)
               for k, v in params.items()}
        x = self._inner.rsample(family, cut, sample_shape, seed=seed)
        if keep is not None:
            return x
        tied = [v for v in params.values() if isinstance(v, torch.Tensor) and v.requires_grad]
        return x + 0 * sum(v.sum() for v in tied) if tied else x


class UnwrappedVonMisesMutant(_Mutant):
    """VonMises angles in ``[0, 2 pi)`` instead of ``[-pi, pi)``: the same circular law,
    values no caller of torch's VonMises expects (torch's support constraint is the real
    line)."""

    FAMILIES = ("VonMises",)

    def mutate(self, family, params, x):  # type: ignore[no-untyped-def]
        return torch.where(x < 0, x + 2 * math.pi, x)


class LocUnwrappedVonMisesMutant(_Mutant):
    """VonMises drawn as ``loc`` plus noise wrapped into ``[-pi, pi)``: right wherever ``loc``
    lies within ``[-pi, pi]``, values outside it beyond (an outside trial's: every grid's loc
    was within pi)."""

    FAMILIES = ("VonMises",)

    def mutate(self, family, params, x):  # type: ignore[no-untyped-def]
        loc = params["loc"]
        far = loc.abs() > math.pi
        wrapped = torch.remainder(loc + math.pi, 2 * math.pi) - math.pi
        return torch.where(far, x - wrapped + loc, x)


class ShiftedHalfMutant(_Mutant):
    """A Normal whose calls of at least 64 values draw their second half from the first
    half's uniforms shifted by 0.01 (a buffer reused with an offset; an outside trial's):
    every value's law right, neighbours independent, the halves correlated by about 1."""

    def mutate(self, family, params, x):  # type: ignore[no-untyped-def]
        batch = tuple(params.batch_shape)
        flat = x.reshape(-1, *batch)
        s = flat.shape[0]
        if s * max(1, math.prod(batch)) < 64 or s < 2:
            return x
        loc, scale = params["loc"], params["scale"]
        h = s // 2
        normal = torch.distributions.Normal(0.0, 1.0)
        u = normal.cdf(((flat[:h] - loc) / scale).detach())
        z = normal.icdf(torch.remainder(u + 0.01, 1.0).clamp(1e-12, 1 - 1e-12))
        second = loc + scale * z
        out = torch.cat([flat[:h], second, flat[2 * h:]])
        return out.reshape(x.shape)


def _counter_normal(key: int, start: int, count: int, dtype: torch.dtype) -> torch.Tensor:
    """Values ``start .. start + count - 1`` of one standard-normal stream keyed by ``key``
    (a counter-based stream, as a plugin might keep one)."""
    g = torch.Generator().manual_seed(key % 2**63)
    return torch.randn(start + count, generator=g, dtype=torch.float64)[start:].to(dtype)


class GeneratorOverlapMutant(_Mutant):
    """A Normal drawn through ``generator=g`` from a stream keyed by ``g``'s seed whose counter
    is the number of calls made with ``g`` (advanced by one per call), not of values:
    consecutive calls repeat the previous call's values shifted by one place (an outside
    trial's: the ``generator`` rule required a second call to differ, not to share no value)."""

    def __init__(self) -> None:
        super().__init__()
        self._calls: dict[tuple[int, bytes], int] = {}

    def _draw(self, params, sample_shape, seed):  # type: ignore[no-untyped-def]
        g = seed
        c = self._calls.get((g.initial_seed(), bytes(g.get_state().numpy())), 0)
        torch.rand(1, generator=g)
        self._calls[(g.initial_seed(), bytes(g.get_state().numpy()))] = c + 1
        shape = params.shape(sample_shape)
        eps = _counter_normal(g.initial_seed() + 777, c, shape.numel(), params.dtype)
        return params["loc"] + params["scale"] * eps.reshape(shape)

    def sample(self, family, params, sample_shape, *, seed=None):  # type: ignore[override]
        if isinstance(seed, torch.Generator):
            return self._draw(params, sample_shape, seed)
        return super().sample(family, params, sample_shape, seed=seed)

    def rsample(self, family, params, sample_shape, *, seed=None):  # type: ignore[override]
        if isinstance(seed, torch.Generator):
            return self._draw(params, sample_shape, seed)
        return super().rsample(family, params, sample_shape, seed=seed)


_OVERLAP_STREAM = GlobalStream(
    "mutant_global_overlap", lambda ss: {"key": int(ss.generate_state(1, np.uint64)[0]), "c": 0})


class _UnseededDrawMutant(_Mutant):
    """A mutant whose unseeded draws (``seed=None``) come from its own ``_draw``; seeded
    ones are torch's."""

    def _draw(self, params, sample_shape):  # type: ignore[no-untyped-def]
        raise NotImplementedError

    def sample(self, family, params, sample_shape, *, seed=None):  # type: ignore[override]
        if seed is None:
            return self._draw(params, sample_shape)
        return super().sample(family, params, sample_shape, seed=seed)

    def rsample(self, family, params, sample_shape, *, seed=None):  # type: ignore[override]
        if seed is None:
            return self._draw(params, sample_shape)
        return super().rsample(family, params, sample_shape, seed=seed)


class GlobalOverlapMutant(_UnseededDrawMutant):
    """A Normal whose unseeded draws come from the backend's own global stream (a counter into
    one stream, reset by ``manual_seed``) advanced by the rows of a call, not its values: with
    a batch of B, consecutive unseeded calls share (B - 1) / B of their values (an outside
    trial's: the ``global_stream`` rule required them to differ, not to share no value)."""

    def _draw(self, params, sample_shape):  # type: ignore[no-untyped-def]
        st = _OVERLAP_STREAM.get()
        shape = params.shape(sample_shape)
        eps = _counter_normal(st["key"], st["c"], shape.numel(), params.dtype)
        st["c"] += math.prod(sample_shape)  # rows, not values
        return params["loc"] + params["scale"] * eps.reshape(shape)



# a new object at each manual_seed (its identity marks the root)
_THREAD_ROOT = GlobalStream("mutant_thread_local",
                            lambda ss: [int(ss.generate_state(1, np.uint64)[0])])
_THREAD_STATE = threading.local()


class ThreadLocalStreamMutant(_UnseededDrawMutant):
    """A Normal whose unseeded draws come from a stream kept per thread, each built from the
    root that ``manual_seed`` set when the thread first draws: reproducible in one thread,
    but every new thread repeats the values the first one drew (an outside trial's: the
    suite drew in one thread)."""

    def _draw(self, params, sample_shape):  # type: ignore[no-untyped-def]
        root = _THREAD_ROOT.get()
        st = getattr(_THREAD_STATE, "st", None)
        if st is None or st["root"] is not root:
            st = _THREAD_STATE.st = {"root": root, "c": 0}
        shape = params.shape(sample_shape)
        eps = _counter_normal(root[0], st["c"], shape.numel(), params.dtype)
        st["c"] += shape.numel()
        return params["loc"] + params["scale"] * eps.reshape(shape)



class TraceableLieMutant(_Mutant):
    """Declares ``traceable = True`` but draws ``sample()`` through NumPy (the values right):
    ``torch.jit.trace`` bakes the draw into the trace as a constant, which the core's
    refusal to trace was meant to prevent (an outside trial's: no rule traced)."""

    traceable = True

    def sample(self, family, params, sample_shape, *, seed=None):  # type: ignore[override]
        x = self._inner.sample(family, params, sample_shape, seed=seed)
        return torch.from_numpy(x.detach().numpy().copy())


class TraceableScoreMutant(_Mutant):
    """Declares ``traceable = True`` and scores Normal itself, through NumPy where nothing
    requires grad (a fast path without autograd; right values): ``torch.jit.trace`` bakes
    the score into the trace as a constant."""

    traceable = True

    def families(self) -> Mapping[str, FamilySupport]:
        return {f: dataclasses.replace(s, log_prob=True) for f, s in super().families().items()}

    def log_prob(self, family, params, value):  # type: ignore[override]
        out = self._inner.log_prob(family, params, value)
        if out.requires_grad:
            return out
        return torch.from_numpy(out.numpy().copy())


class WholeValueLogProbMutant(_Mutant):
    """Scores Gamma itself, 1e-2 off (relative) at the whole values 1 to 100 (an Erlang or
    factorial-table path; an outside trial's: the density checks scored draws, never
    whole)."""

    FAMILIES = ("Gamma",)

    def families(self) -> Mapping[str, FamilySupport]:
        return {f: dataclasses.replace(s, log_prob=True) for f, s in super().families().items()}

    def log_prob(self, family, params, value):  # type: ignore[override]
        out = self._inner.log_prob(family, params, value)
        whole = ((value == torch.round(value)) & (value >= 1) & (value <= 100)).to(out.dtype)
        return out * (1 + 1e-2 * whole.detach())


class NoGradRsampleMutant(_Mutant):
    """A Gamma whose ``rsample()`` under ``torch.no_grad()`` (a VAE's evaluation) is drawn 5%
    too large; right with gradients enabled, and in ``sample()`` (an outside trial's: every
    ``rsample()`` of the suite ran with gradients enabled)."""

    FAMILIES = ("Gamma",)

    def rsample(self, family, params, sample_shape, *, seed=None):  # type: ignore[override]
        x = self._inner.rsample(family, params, sample_shape, seed=seed)
        return x if torch.is_grad_enabled() else x * 1.05


class StaleNoiseMutant(_Mutant):
    """A Normal ``rsample()`` that writes its noise into one buffer per shape through NumPy
    (no version counter moves) and returns ``loc + scale * buffer``: a second draw before the
    first's backward pass (two draws in one loss) gives the first the second's ``scale``
    gradient (an outside trial's)."""

    def __init__(self) -> None:
        super().__init__()
        self._buffers: dict[tuple[Any, ...], torch.Tensor] = {}

    def rsample(self, family, params, sample_shape, *, seed=None):  # type: ignore[override]
        shape = params.shape(sample_shape)
        eps = torch.randn(shape, generator=self._inner.rng(seed, params), dtype=params.dtype)
        buf = self._buffers.setdefault((tuple(shape), params.dtype),
                                       torch.empty(shape, dtype=params.dtype))
        buf.numpy()[...] = eps.numpy()
        return params["loc"] + params["scale"] * buf


class _MemoryOrderNormal(torch.autograd.Function):
    @staticmethod
    def forward(ctx, loc, scale, eps):  # type: ignore[no-untyped-def, override]
        ctx.save_for_backward(eps)
        ctx.shapes = (loc.shape, scale.shape)
        return loc + scale * eps

    @staticmethod
    def backward(ctx, grad):  # type: ignore[no-untyped-def, override]
        (eps,) = ctx.saved_tensors
        # reads the upstream gradient in memory order (NumPy's ravel(order="K"))
        flat = np.ravel(grad.detach().numpy(), order="K")
        g = torch.from_numpy(np.ascontiguousarray(flat)).reshape(grad.shape)

        def sum_to(x, shape):  # type: ignore[no-untyped-def]
            while x.dim() > len(shape):
                x = x.sum(0)
            return x
        return sum_to(g, ctx.shapes[0]), sum_to(g * eps, ctx.shapes[1]), None


class MemoryOrderCotangentMutant(_Mutant):
    """A Normal ``rsample()`` whose backward pass reads its upstream gradient in memory order:
    right for contiguous upstream gradients (sums, elementwise losses), permuted for a
    transposed use of the draw (an outside trial's)."""

    def rsample(self, family, params, sample_shape, *, seed=None):  # type: ignore[override]
        shape = params.shape(sample_shape)
        eps = torch.randn(shape, generator=self._inner.rng(seed, params), dtype=params.dtype)
        loc = params["loc"].expand(params.batch_shape)
        scale = params["scale"].expand(params.batch_shape)
        return _MemoryOrderNormal.apply(loc, scale, eps)


class _ScoringMutant(_Mutant):
    def families(self) -> Mapping[str, FamilySupport]:
        return {f: dataclasses.replace(s, log_prob=True) for f, s in super().families().items()}


class ValueGradScoreMutant(_ScoringMutant):
    """Scores Normal itself; where the value requires grad (``q.log_prob(q.rsample())``) a
    fused path is ``log(scale)`` too low (an outside trial's: the density checks scored values
    that do not require grad)."""

    def log_prob(self, family, params, value):  # type: ignore[override]
        out = self._inner.log_prob(family, params, value)
        return out - torch.log(params["scale"]) if value.requires_grad else out


class AddressCacheScoreMutant(_ScoringMutant):
    """Scores Normal itself, memoizing scores of values that do not require grad by the
    value's memory address: a buffer refilled in place gets the first values' scores (an
    outside trial's)."""

    def __init__(self) -> None:
        super().__init__()
        self._cache: dict[tuple[Any, ...], torch.Tensor] = {}

    def log_prob(self, family, params, value):  # type: ignore[override]
        if value.requires_grad or torch.is_grad_enabled() and (
                params["loc"].requires_grad or params["scale"].requires_grad):
            return self._inner.log_prob(family, params, value)
        key = (value.data_ptr(), tuple(value.shape), value.dtype, params["loc"].data_ptr(),
               params["scale"].data_ptr())
        if key not in self._cache:
            self._cache[key] = self._inner.log_prob(family, params, value).detach().clone()
        return self._cache[key].clone()


class FlatDirichletMutant(_Mutant):
    """A Dirichlet whose flat law (every concentration 1) is drawn as normalised uniforms (a
    "fast path" for the uniform law on the simplex, wrong: the first component's variance is
    0.032 where it is 0.056); right elsewhere (an outside trial's: no grid point was flat)."""

    FAMILIES = ("Dirichlet",)

    def sample(self, family, params, sample_shape, *, seed=None):  # type: ignore[override]
        x = self._inner.sample(family, params, sample_shape, seed=seed)
        c = params["concentration"]
        flat = (c == 1).all(-1)
        if not bool(flat.any()):
            return x
        u = torch.rand(x.shape, generator=self._inner.rng(seed, params), dtype=x.dtype)
        return torch.where(flat.unsqueeze(-1).expand(x.shape), u / u.sum(-1, keepdim=True), x)


class IrwinHallMutant(_Mutant):
    """A Normal whose standard law (loc 0, scale 1) is drawn as a sum of 12 uniforms minus 6,
    element by element (an old "fast" generator: mean 0 and variance 1, but no value beyond
    6 and 30% too few beyond 3.1 standard deviations; K-S distance 0.0028); right for every
    other point (an outside trial's: no grid point was ``N(0, 1)``). Full mode's tail counts
    catch it at the typical grid's second point; quick mode's sample (2^18 draws a point) is
    below it: K-S needs about 2.5e6 draws, the tail count at 64 expected draws (34 here) 4e5."""

    def mutate(self, family, params, x):  # type: ignore[no-untyped-def]
        standard = (params["loc"] == 0) & (params["scale"] == 1)
        if not bool(standard.any()):
            return x
        # seeded by the right draw: the same seed gives the same values
        g = torch.Generator().manual_seed(int(x.detach().double().abs().sum() * 1e6) % (1 << 62))
        u = torch.rand(x.shape + (12,), generator=g, dtype=x.dtype).sum(-1) - 6
        return torch.where(standard.expand(x.shape), u, x)


class ForkCopiedStreamMutant(_Mutant):
    """A Normal whose unseeded ``sample()`` draws from a ``torch.Generator`` of its own, rebuilt
    from polysample's root seed after each ``manual_seed`` (so ``manual_seed`` reproduces it,
    as the ``global_stream`` rule asks) but not after ``fork``, which copies it: forked
    workers repeat each other's draws (an outside trial's)."""

    def __init__(self) -> None:
        super().__init__()
        self._gen: torch.Generator | None = None
        self._at = -1

    def _stream(self) -> torch.Generator:
        from polysample.core import seeds

        if self._gen is None or self._at != seeds._generation:
            root = seeds._root
            words = np.random.SeedSequence(root.entropy, spawn_key=(*root.spawn_key, 99))
            self._gen = torch.Generator().manual_seed(int(words.generate_state(1)[0]))
            self._at = seeds._generation
        return self._gen

    def sample(self, family, params, sample_shape, *, seed=None):  # type: ignore[override]
        if seed is not None:
            return self._inner.sample(family, params, sample_shape, seed=seed)
        loc, scale = params["loc"], params["scale"]
        shape = tuple(sample_shape) + tuple(torch.broadcast_shapes(loc.shape, scale.shape))
        return loc + scale * torch.randn(shape, generator=self._stream(), dtype=loc.dtype)


class DiagonalVarianceMutant(_Mutant):
    """A MultivariateNormal whose diagonal ``scale_tril`` is read as variances (a "diagonal
    fast path" taking its square root); right for every other ``scale_tril`` (an outside
    trial's: no grid point was diagonal)."""

    FAMILIES = ("MultivariateNormal",)

    def mutate(self, family, params, x):  # type: ignore[no-untyped-def]
        L = params["scale_tril"]
        diag = (L == torch.diag_embed(torch.diagonal(L, dim1=-2, dim2=-1))).all(-1).all(-1)
        if not bool(diag.any()):
            return x
        d = torch.diagonal(L, dim1=-2, dim2=-1)
        loc = params["loc"]
        wrong = loc + (x - loc) / d * d.sqrt()
        return torch.where(diag.unsqueeze(-1).expand(x.shape), wrong, x)


class BinomialZeroCountMutant(_Mutant):
    """A Binomial whose ``total_count`` of 0 is drawn as 1 (a ``max(n, 1)`` guard); right
    for every other count (an outside trial's)."""

    FAMILIES = ("Binomial",)

    def sample(self, family, params, sample_shape, *, seed=None):  # type: ignore[override]
        n = params["total_count"]
        fixed = dict(params.items())
        fixed["total_count"] = torch.clamp(n, min=1.0)
        return self._inner.sample(family, Params.of(family, fixed), sample_shape, seed=seed)


class GlobalWideMutant(_Mutant):
    """A Normal drawn 5% too wide in unseeded calls (the global stream's path); right with
    ``seed=`` and ``generator=`` (an outside trial's: every statistical draw was seeded)."""

    def sample(self, family, params, sample_shape, *, seed=None):  # type: ignore[override]
        x = self._inner.sample(family, params, sample_shape, seed=seed)
        return x if seed is not None else params["loc"] + 1.05 * (x - params["loc"])

    def rsample(self, family, params, sample_shape, *, seed=None):  # type: ignore[override]
        x = self._inner.rsample(family, params, sample_shape, seed=seed)
        return x if seed is not None else params["loc"] + 1.05 * (x - params["loc"])


class SmallSeedRateMutant(_Mutant):
    """A Gamma whose seeds below 2^32 (0, 42: the commonest) take a legacy path that reads its
    rate as a scale; right for larger seeds (an outside trial's: the suite's seeds are hashes
    of 63 bits)."""

    FAMILIES = ("Gamma",)

    def sample(self, family, params, sample_shape, *, seed=None):  # type: ignore[override]
        # the core hands a backend a SeedSequence: the user's seed is its entropy
        entropy = getattr(seed, "entropy", None)
        if isinstance(entropy, int) and entropy < 2**32 and not seed.spawn_key:
            params = perturbed(family, params, "rate", 1.0 / params["rate"] ** 2)
        return self._inner.sample(family, params, sample_shape, seed=seed)


class ChunkRemainderMutant(_Mutant):
    """A Normal drawn in chunks of 64 values whose remainder (calls of at least 256 values
    that are no multiple of 64) reuses the first chunk's noise (an outside trial's: every
    large call of the suite was a multiple of 64)."""

    def mutate(self, family, params, x):  # type: ignore[no-untyped-def]
        flat = x.reshape(-1).clone()
        n = flat.numel()
        r = n % 64
        if n < 256 or not r:
            return x
        loc = params["loc"].expand(x.shape).reshape(-1)
        scale = params["scale"].expand(x.shape).reshape(-1)
        z = ((flat - loc) / scale)[:r]
        flat[n - r:] = loc[n - r:] + scale[n - r:] * z
        return flat.reshape(x.shape)


class MirroredChildMutant(_Mutant):
    """A Normal whose spawned SeedSequence children of odd index draw their even sibling's
    noise mirrored (``-z``): every child differs from every other, and each child's law is
    right (an outside trial's: ``seeds`` required children to differ, not to be
    independent)."""

    def sample(self, family, params, sample_shape, *, seed=None):  # type: ignore[override]
        key = getattr(seed, "spawn_key", ())
        if not key or key[-1] % 2 == 0:
            return self._inner.sample(family, params, sample_shape, seed=seed)
        sibling = np.random.SeedSequence(seed.entropy, spawn_key=key[:-1] + (key[-1] - 1,))
        x = self._inner.sample(family, params, sample_shape, seed=sibling)
        return 2 * params["loc"] - x


class ConstantMutant(_Mutant):
    """Normal "draws" that are its ``loc`` (a sampler that ignores its random stream)."""

    def mutate(self, family, params, x):  # type: ignore[no-untyped-def]
        loc = params["loc"]
        return x.detach() * 0 + loc if not x.requires_grad else x * 0 + loc


#: backend name -> (class, the check that must fail, family)
MUTANTS: dict[str, tuple[type[_Mutant], str, str]] = {
    "mutant_scale": (ScaleMutant, "sample_pit_var", "Normal"),
    "mutant_location": (LocationMutant, "sample_pit_mean", "Normal"),
    "mutant_gradsign": (GradientSignMutant, "grad_cdf", "Normal"),
    # Beta's per-sample identity does not hold (two Gammas): its conditional-mean z-test must
    # catch it. Dirichlet's gradient is judged by the mean pathwise gradient.
    "mutant_gradsign_beta": (GradientSignMutant, "grad_cdf", "Beta"),
    "mutant_gradsign_dirichlet": (GradientSignMutant, "grad_mean", "Dirichlet"),
    "mutant_ratescale": (RateScaleMutant, "sample_ks", "Gamma"),
    "mutant_scalegrad": (ScaleGradientMutant, "grad_cdf", "Normal"),
    "mutant_geometric": (GeometricOffByOneMutant, "sample_ks", "Geometric"),
    "mutant_detached": (DetachedMutant, "rsample_grad", "Normal"),
    "mutant_dtype": (DtypeMutant, "dtype", "Normal"),
    "mutant_probs_scoring": (ProbsScoringMutant, "log_prob_logits", "Bernoulli"),
    "mutant_binomial_count_grad": (BinomialCountGradientMutant, "log_prob_gradcheck", "Binomial"),
    "mutant_laplace_kink": (LaplaceKinkMutant, "log_prob_gradcheck", "Laplace"),
    "mutant_scalar_path": (ScalarPathMutant, "scalar_ks", "Gamma"),
    "mutant_stratified": (StratifiedMutant, "calls_indep", "Normal"),
    # A gradient right in conditional mean only, and one right only in a call's sum: the
    # location-scale parameters' one path (Case.pathwise).
    "mutant_grad_noise": (GradientNoiseMutant, "grad_cdf", "Normal"),
    "mutant_scalar_mean_grad": (ScalarMeanGradientMutant, "grad_scalar", "Normal"),
    # The eighteenth trial's: the float32 scalar-parameter path's gradient alone wrong.
    "mutant_scalar_shape_mean_grad": (ScalarShapeMeanGradientMutant, "grad_scalar", "Gamma"),
    "mutant_scalar_df_mean_grad": (ScalarStudentTDfMeanGradientMutant, "grad_scalar",
                                   "StudentT"),
    "mutant_scalar_float32_scale_grad": (ScalarFloat32ScaleGradientMutant, "grad_scalar",
                                         "Normal"),
    "mutant_thread_local_stream": (ThreadLocalStreamMutant, "global_stream", "Normal"),
    "mutant_traceable_lie": (TraceableLieMutant, "traced", "Normal"),
    "mutant_whole_value_log_prob": (WholeValueLogProbMutant, "log_prob_f64", "Gamma"),
    "mutant_stratified_categorical": (StratifiedDiscreteMutant, "calls_indep", "Categorical"),
    "mutant_stratified_poisson": (StratifiedDiscreteMutant, "calls_indep", "Poisson"),
    "mutant_traceable_score": (TraceableScoreMutant, "traced", "Normal"),
    "mutant_probs_scoring_categorical": (ProbsScoringMutant, "log_prob_logits", "Categorical"),
    "mutant_generator": (GeneratorIgnoringMutant, "generator", "Normal"),
    "mutant_seedignoring": (SeedIgnoringMutant, "seeds", "Normal"),
    # An outside trial's (2026-12-06): unseeded one-value draws that repeat, small seeded
    # batches sharing one noise, the seed dropped where parameters require grad, a gradient
    # taken another way when one parameter alone requires grad.
    "mutant_tiny_clamp_write": (TinyClampWriteMutant, "rsample_near_zero", "Gamma"),
    "mutant_unseeded_repeat": (UnseededScalarRepeatMutant, "global_stream", "Normal"),
    "mutant_small_batch_seed": (SmallBatchSeedMutant, "seeds", "Normal"),
    "mutant_seed_dropped_with_grad": (SeedDroppedWithGradMutant, "seeds", "Normal"),
    "mutant_one_leaf_grad": (OneLeafGradientMutant, "rsample_grad", "Normal"),
    "mutant_poisson_plain_score": (PoissonPlainScoreMutant, "point_mass", "Poisson"),
    "mutant_seed_hash": (SeedHashMutant, "calls_repeats", "Normal"),
    "mutant_hessian_zero": (HessianZeroMutant, "log_prob_gradcheck", "Normal"),
    "mutant_rsample_hessian_zero": (RsampleHessianZeroMutant, "grad_second", "Exponential"),
    "mutant_value_gradient": (ValueGradientMutant, "log_prob_gradcheck", "Normal"),
    "mutant_tail_loc_gradient": (TailLocGradientMutant, "log_prob_gradcheck", "Normal"),
    "mutant_float32_scale_gradient": (Float32ScaleGradientMutant, "log_prob_gradcheck", "Normal"),
    "mutant_fisher_swap": (FisherSwapMutant, "sample_sweep", "FisherSnedecor"),
    "mutant_poisson_table_typo": (PoissonTableTypoMutant, "log_prob_f64", "Poisson"),
    # parameters rounded to whole numbers: the grids' values are not whole (an outside trial)
    "mutant_nb_round": (NegativeBinomialRoundMutant, "sample_ks", "NegativeBinomial"),
    "mutant_chi2_round": (Chi2RoundMutant, "sample_ks", "Chi2"),
    "mutant_chi2_round_large": (Chi2RoundLargeMutant, "sample_ks", "Chi2"),
    "mutant_memoized_seed": (MemoizedSeedMutant, "seeds", "Normal"),
    "mutant_private_rsample_stream": (PrivateRsampleStreamMutant, "global_stream", "Normal"),
    "mutant_seed_2d": (Seed2dMutant, "seeds", "Normal"),
    "mutant_seed_bit": (SeedBitMutant, "seeds", "Normal"),
    "mutant_grad_path_wide": (GradPathWideMutant, "rsample_ks", "Normal"),
    "mutant_logits_sign": (LogitsSignMutant, "sample_ks", "Bernoulli"),
    "mutant_small_call_rate": (SmallCallRateMutant, "smalls_pit_mean", "Gamma"),
    "mutant_size_one_shared": (SizeOneSharedNoiseMutant, "broadcast", "Normal"),
    "mutant_four_dim_repeat": (FourDimRepeatMutant, "broadcast", "Normal"),
    "mutant_small_call_clamp_write": (SmallCallClampWriteMutant, "shapes", "Dirichlet"),
    "mutant_seed_fold": (SeedFoldMutant, "seeds", "Normal"),
    "mutant_spawn_additive": (SpawnAdditiveMutant, "seeds", "Normal"),
    "mutant_address_cache": (AddressCacheMutant, "seeds", "Normal"),
    "mutant_far_loc_float32": (FarLocFloat32Mutant, "dtype", "Normal"),
    "mutant_generator_scale": (GeneratorScaleMutant, "sample_pit_var", "Normal"),
    "mutant_scalar_float32_wide": (ScalarFloat32WideMutant, "smalls_pit_var", "Normal"),
    "mutant_strided_gradient": (StridedGradientMutant, "layouts", "Normal"),
    "mutant_broadcast_value_gradient": (BroadcastValueGradientMutant, "log_prob", "Normal"),
    "mutant_broadcast_loc_scale_gradient": (BroadcastLocScaleGradientMutant, "broadcast",
                                            "Normal"),
    "mutant_relaxed_logits_chain": (RelaxedLogitsChainMutant, "grad_cdf", "RelaxedBernoulli"),
    "mutant_layout_score": (LayoutScoreMutant, "log_prob_layouts", "Normal"),
    "mutant_seed_zero": (SeedZeroMutant, "seeds", "Normal"),
    # The seed ignored for scalar parameters, or for sample shapes of three dimensions.
    "mutant_seed_scalar": (PartialSeedMutant, "seeds", "Exponential"),
    "mutant_seed_3d": (Seed3dMutant, "seeds", "Normal"),
    "mutant_sharednoise": (SharedNoiseMutant, "broadcast", "Normal"),
    "mutant_plainclamp": (PlainClampMutant, "rsample_near_zero", "Kumaraswamy"),
    "mutant_inplace": (InPlaceMutant, "shapes", "Normal"),
    "mutant_bufferreuse": (BufferReuseMutant, "seeds", "Normal"),
    "mutant_numpywrite": (NumpyWriteMutant, "log_prob", "Normal"),
    "mutant_large_call_write": (LargeCallWriteMutant, "sample_ks", "Normal"),
    "mutant_drifting_write": (DriftingWriteMutant, "seeds", "Exponential"),
    "mutant_aliased_result": (AliasedResultMutant, "point_mass", "Bernoulli"),
    "mutant_rawmemory": (RawMemoryMutant, "layouts", "Exponential"),
    "mutant_seedoffset": (SeedOffsetMutant, "seeds", "Normal"),
    "mutant_seedtruncating": (SeedTruncatingMutant, "seeds", "Normal"),
    "mutant_seedrotation": (SeedRotationMutant, "seeds", "Normal"),
    # The seed ignored in calls of 256 values and more, or sharing a stream offset by
    # 4,000 values between neighbouring seeds: seen only in the seeds rule's large draw.
    "mutant_large_call_seed": (LargeCallSeedMutant, "seeds", "Normal"),
    "mutant_seed_stride": (SeedStrideMutant, "seeds", "Normal"),
    # A seeded draw that also advances the global stream.
    "mutant_global_consumed": (GlobalConsumedMutant, "global_stream", "Normal"),
    # A broadcast parameter's gradient dropped: rsample_grad's expanded leaf.
    "mutant_broadcast_grad_lost": (BroadcastGradLostMutant, "rsample_grad", "Normal"),
    "mutant_float32_precision": (Float32PrecisionMutant, "dtype", "Normal"),
    "mutant_log_of_density": (LogOfDensityMutant, "log_prob_far", "Normal"),
    "mutant_mid_tail_log_prob": (MidTailLogProbMutant, "log_prob_far", "Normal"),
    "mutant_gamma_log_prob_band": (GammaLogProbBandMutant, "log_prob_f64", "Gamma"),
    "mutant_log_prob_grad": (LogProbGradientMutant, "log_prob_gradcheck", "Normal"),
    "mutant_log_prob_constant": (LogProbConstantMutant, "log_prob_f64", "Normal"),
    # A broadcasting value scored with one element's parameters: the log_prob rule's value of
    # batch dimension 1.
    "mutant_log_prob_broadcast": (LogProbBroadcastMutant, "log_prob", "Normal"),
    "mutant_cancelling_edge": (CancellingKumaraswamyMutant, "log_prob_edge", "Kumaraswamy"),
    "mutant_squaring_tail": (SquaringStudentTMutant, "log_prob_huge", "StudentT"),
    "mutant_pareto_ratio": (ParetoRatioMutant, "log_prob_huge", "Pareto"),
    "mutant_relaxed_overflow": (RelaxedOverflowMutant, "log_prob_edge", "RelaxedBernoulli"),
    # Right on one-dimensional batches: the sampler's stacked grids (batch (2, G)) see it.
    "mutant_column_major": (ColumnMajorMutant, "sample_ks", "Poisson"),
    # Equal values for equal parameters: the stacked grids' copies repeat each other.
    "mutant_equal_elements": (EqualElementsMutant, "sample_repeats", "Poisson"),
    "mutant_float32_rsample": (Float32RsampleMutant, "sample_ks", "Normal"),
    "mutant_small_rsample": (SmallRsampleMutant, "calls_ks", "Normal"),
    "mutant_second_sample_dim": (SecondSampleDimMutant, "sample_indep", "Poisson"),
    "mutant_large_batch": (LargeBatchMutant, "sample_ks", "Poisson"),
    "mutant_wide_batch": (WideBatchMutant, "sample_ks", "Poisson"),
    "mutant_binomial_noflip": (BinomialNoFlipMutant, "sample_ks", "Binomial"),
    # Right up to dimension 3: the float32 grid (dimension 5) sees it.
    "mutant_transposed_dim5": (TransposedAboveDim3Mutant, "sample_ks", "MultivariateNormal"),
    # Right up to 16 categories: the corners grid (24 categories) sees it.
    "mutant_last_category": (LastCategoryAbove16Mutant, "sample_sum", "Categorical"),
    # Right values, a zero gradient in a band of parameters: the corners' probs = 1/2 sees it.
    "mutant_cb_unstable": (UnstableRegionMutant, "grad_cdf", "ContinuousBernoulli"),
    # Wrong in a band of parameters between the grid points: only the sweep sees it.
    "mutant_gamma_band": (GammaBandMutant, "sample_sweep", "Gamma"),
    "mutant_gamma_grad_band": (GammaGradientBandMutant, "grad_sweep", "Gamma"),
    "mutant_gamma_whole_rate_gradient": (GammaWholeRateGradientMutant, "grad_sweep", "Gamma"),
    # Past the sweep's end and short of the last corner: the corners' 400 and 1e-4.
    "mutant_gamma_high_band": (GammaHighBandMutant, "sample_ks", "Gamma"),
    "mutant_tiny_poisson_rate": (TinyPoissonRateMutant, "sample_sum", "Poisson"),
    "mutant_poisson_band": (PoissonBandMutant, "sample_sweep", "Poisson"),
    "mutant_dirichlet_band": (DirichletBandMutant, "sample_sweep", "Dirichlet"),
    "mutant_wishart_band": (WishartBandMutant, "sample_sweep", "Wishart"),
    "mutant_multinomial_band": (MultinomialBandMutant, "sample_sweep", "Multinomial"),
    "mutant_dirichlet_grad_band": (DirichletGradientBandMutant, "grad_sweep", "Dirichlet"),
    "mutant_wishart_grad_band": (WishartGradientBandMutant, "grad_sweep", "Wishart"),
    # Right marginals, dependent draws: only the independence check can see these.
    "mutant_sorted": (SortedMutant, "sample_indep", "Normal"),
    "mutant_sorted_poisson": (SortedMutant, "sample_indep", "Poisson"),
    "mutant_antithetic": (AntitheticMutant, "sample_indep", "Normal"),
    # Mirrored halves of a call's rows, and of a batch: every pair of neighbours independent,
    # each call balanced (the independence check's balance test).
    "mutant_mirrored_halves": (MirroredHalvesMutant, "sample_indep", "Normal"),
    "mutant_mirrored_batch": (MirroredBatchMutant, "sample_indep", "Normal"),
    "mutant_correlated_batch": (CorrelatedBatchMutant, "sample_indep", "Normal"),
    # Repeated stretches of draws (right marginals): only the repeat check can see these.
    "mutant_periodic": (PeriodicMutant, "sample_repeats", "Normal"),
    "mutant_periodic_poisson": (PeriodicMutant, "sample_repeats", "Poisson"),
    # Tails cut at 3.5 sd (right law elsewhere): only the tail check can see it.
    "mutant_truncated": (TruncatedTailsMutant, "sample_tails", "Normal"),
    "mutant_truncated_far": (FarTruncatedTailsMutant, "sample_tails", "Normal"),
    "mutant_capped_poisson": (CappedPoissonMutant, "sample_tails", "Poisson"),
    # Right mass beyond 3.44 sd, spread exponentially: only the one-draw tail level sees it.
    "mutant_exponential_tail": (ExponentialTailMutant, "sample_tails", "Normal"),
    "mutant_geometric_skip": (GeometricSkipMutant, "sample_atoms", "Geometric"),
    # Atoms where the law has none (a clamp at 3.5 sd): the repeat check counts each value's
    # draws against the reference's mass on its float spacing.
    "mutant_clamped_tails": (ClampedTailsMutant, "sample_repeats", "Normal"),
    # 32-bit uniforms (ties the law does not have) and a 2% scale error: the normal scores
    # judge the column, whose ties are not the law's.
    "mutant_low_bits_2pc": (LowBitsScaleMutant, "sample_pit_var", "Normal"),
    "mutant_rsample_generator": (RsampleGeneratorMutant, "generator", "Normal"),
    "mutant_open_end": (OpenEndMutant, "log_prob_edge", "Exponential"),
    # rsample_mixture: wrong weights, and the chosen component's path for a gradient
    "mutant_mixture_weights": (MixtureWeightsMutant, "mixture_ks", "Normal"),
    "mutant_mixture_path": (MixturePathMutant, "mixture_grad", "Normal"),
    "mutant_spawn_key": (SpawnKeyMutant, "seeds", "Categorical"),
    # Wrong in small calls only: only the calls check can see it.
    "mutant_smallcalls": (SmallCallMutant, "calls_ks", "Normal"),
    # Wrong in float32 only: only the float32 grid can see it.
    "mutant_float32": (Float32Mutant, "sample_pit_mean", "Gamma"),
    # Right values, float32 gradients 2% off: only the float32 grid's gradient checks see it.
    "mutant_float32_grad": (Float32GradientMutant, "grad_cdf", "Gamma"),
    # Right gradients with sample_shape (), a mean for a sum with one: only grad_shape sees it.
    "mutant_shape_grad": (ShapeGradientMutant, "grad_shape", "Normal"),
    "mutant_shape_grad_2d": (ShapeGradient2dMutant, "grad_shape", "Gamma"),
    "mutant_one_value": (OneValueMutant, "ones_ks", "Normal"),
    # Right values and right gradients in calls of at most 512 rows: only grad_large sees it.
    "mutant_chunk_detach": (ChunkDetachMutant, "grad_large", "Normal"),
    # Right values, gradients wrong above the 99.5% quantile only: grad_large's extreme rows.
    "mutant_tail_grad": (TailGradientMutant, "grad_large", "Normal"),
    # NaN gradients: the noise checks compared NaN with their tolerance, which is False.
    "mutant_nan_grad": (NanGradientMutant, "grad_noise", "LogisticNormal"),
    # Refuses the smallest event (one category): the shapes rule's k = 1 draw.
    "mutant_smallest_event": (SmallestEventMutant, "shapes", "Dirichlet"),
    # Right gradients; a NaN upstream gradient made finite: only rsample_grad's NaN rule.
    "mutant_nan_masking": (NanMaskingMutant, "rsample_grad", "Normal"),
    # The first batch element's matrix (temperature) for the whole batch: the typical grid's
    # points differ in it (they once shared one).
    "mutant_collapsed_mvn": (CollapsedBatchMutant, "sample_ks", "MultivariateNormal"),
    "mutant_collapsed_wishart": (CollapsedBatchMutant, "sample_ks", "Wishart"),
    "mutant_collapsed_relaxed": (CollapsedBatchMutant, "sample_ks", "RelaxedOneHotCategorical"),
    # Rows summing to total_count - 1: the shapes rule's support check, not torch's constraint.
    "mutant_short_multinomial": (ShortMultinomialMutant, "shapes", "Multinomial"),
    # Angles in [0, 2 pi): the shapes rule's support, which is [-pi, pi] for VonMises.
    "mutant_unwrapped_vonmises": (UnwrappedVonMisesMutant, "shapes", "VonMises"),
    "mutant_loc_unwrapped_vonmises": (LocUnwrappedVonMisesMutant, "sample_ks", "VonMises"),
    "mutant_shifted_half": (ShiftedHalfMutant, "sample_indep", "Normal"),
    "mutant_flat_dirichlet": (FlatDirichletMutant, "sample_ks", "Dirichlet"),
    "mutant_diagonal_variance": (DiagonalVarianceMutant, "sample_ks", "MultivariateNormal"),
    "mutant_irwin_hall": (IrwinHallMutant, "sample_tails", "Normal"),
    "mutant_fork_copied_stream": (ForkCopiedStreamMutant, "fork_streams", "Normal"),
    "mutant_binomial_zero_count": (BinomialZeroCountMutant, "point_mass", "Binomial"),
    "mutant_mixture_two_shortcut": (MixtureTwoShortcutMutant, "mixture_ks", "Normal"),
    "mutant_mirrored_child": (MirroredChildMutant, "seeds", "Normal"),
    "mutant_global_wide": (GlobalWideMutant, "sample_pit_var", "Normal"),
    "mutant_small_seed_rate": (SmallSeedRateMutant, "smalls_pit_mean", "Gamma"),
    "mutant_chunk_remainder": (ChunkRemainderMutant, "seeds", "Normal"),
    "mutant_generator_overlap": (GeneratorOverlapMutant, "generator", "Normal"),
    "mutant_global_overlap": (GlobalOverlapMutant, "global_stream", "Normal"),
    "mutant_nograd_rsample": (NoGradRsampleMutant, "rsample_grad", "Gamma"),
    "mutant_stale_noise": (StaleNoiseMutant, "rsample_grad", "Normal"),
    "mutant_memory_order_cotangent": (MemoryOrderCotangentMutant, "rsample_grad", "Normal"),
    "mutant_value_grad_score": (ValueGradScoreMutant, "log_prob", "Normal"),
    "mutant_address_cache_score": (AddressCacheScoreMutant, "log_prob", "Normal"),
    # Draws that do not vary: the repeat check says so (it blamed a reused seed).
    "mutant_constant": (ConstantMutant, "sample_repeats", "Normal"),
    # A rounded normal approximation at the corner (1000, 0.05): right mean and variance.
    "mutant_binomial_normal": (BinomialNormalMutant, "sample_tails", "Binomial"),
    "mutant_poisson_normal": (PoissonNormalMutant, "sample_tails", "Poisson"),
    # One value per call at loc: the many small calls' repeat check sees it (the large draws
    # hold it once).
    "mutant_call_start": (CallStartMutant, "calls_repeats", "Normal"),
    # ceil(total_count): twice the mean at the rare-event corner (0.5, 1e-3).
    "mutant_nb_ceil": (NegativeBinomialCeilMutant, "sample_sum", "NegativeBinomial"),
    # Wrong only for batches or sample shapes of three dimensions: the corners grid's draw.
    "mutant_batch3d_flip": (ReversedFirstBatchDimMutant, "sample_ks", "Normal"),
    "mutant_sample3d_repeat": (LastSampleDimRepeatMutant, "sample_repeats", "Normal"),
    # The typical grid's points in batch layouts no other draw has: batches_ks.
    "mutant_neighbour_batch": (NeighbourBatchMutant, "batches_ks", "Normal"),
    "mutant_neighbour_batch_gamma": (NeighbourBatchMutant, "batches_ks", "Gamma"),
    "mutant_reversed_4d_batch": (Reversed4dBatchMutant, "batches_ks", "Normal"),
    "mutant_batch_noise_reuse": (BatchNoiseReuseMutant, "batches_indep", "Normal"),
    "mutant_lag2_rows": (Lag2RowsMutant, "batches_indep", "Normal"),
    "mutant_without_replacement": (WithoutReplacementMutant, "calls_pairs", "Categorical"),
    # Seeds salted per process: only a draw in another process can tell.
    "mutant_process_salted_seed": (ProcessSaltedSeedMutant, "seeds_process", "Normal"),
    # Two categories on a path of their own: event2_ks.
    "mutant_two_categories": (TwoCategoryMutant, "event2_ks", "Dirichlet"),
    "mutant_two_categories_categorical": (TwoCategoryMutant, "event2_ks", "Categorical"),
    # StudentT's gradients flipped above df 30: the conditional mean fails at df 1000.
    "mutant_studentt_flip": (StudentTFlipMutant, "grad_cdf", "StudentT"),
    # A zero gradient in the matrix (concentration, temperature): judged by the mean pathwise
    # gradient and the recovered noise, whose messages say so and name the grid point.
    "mutant_constant_grad": (ConstantGradientMutant, "grad_mean", "MultivariateNormal"),
}

#: The power claims (docs/conformance.md): quick mode catches a 2% error, full mode 1%.
#: backend name -> (family, parameter, factor, quick)
POWER_MUTANTS: dict[str, tuple[str, str, float, bool]] = {
    "mutant_normal_scale_2pc": ("Normal", "scale", 1.02, True),
    "mutant_gamma_rate_2pc": ("Gamma", "rate", 1.02, True),
    "mutant_beta_conc1_2pc": ("Beta", "concentration1", 1.02, True),
    "mutant_normal_scale_1pc": ("Normal", "scale", 1.01, False),
    "mutant_gamma_rate_1pc": ("Gamma", "rate", 1.01, False),
    "mutant_beta_conc1_1pc": ("Beta", "concentration1", 1.01, False),
    "mutant_bernoulli_probs_2pc": ("Bernoulli", "probs", 1.02, True),
    "mutant_categorical_probs_2pc": ("Categorical", "probs", 1.02, True),
    "mutant_onehot_probs_1pc": ("OneHotCategorical", "probs", 1.01, False),
}


@polysample.hookimpl
def polysample_register_backends(register):  # type: ignore[no-untyped-def]
    for name, (cls, _check, _family) in MUTANTS.items():
        register(name, cls)
    for name, (family, param, factor, _quick) in POWER_MUTANTS.items():
        register(name, param_mutant(family, param, factor))
    register("mutant_garbage", GarbageMutant)
    register("rounding_dirichlet", RoundingDirichlet)
