"""Layer 1, semantics: every rule of the sample/rsample contract a backend can break.

No statistics: each check is deterministic (fixed seeds) and fails with certainty when the rule
is broken. The rules (DESIGN.md section 1): shape ``sample_shape + batch_shape + event_shape``
(with broadcast batched parameters), dtype and device follow the parameters, ``sample`` never
tracks gradients, ``rsample`` is differentiable in every parameter that requires grad (or raises
``NotReparameterizableError`` where the backend does not claim it) with finite values and no NaN
gradient even at shape parameters of 1e-30 (``rsample_near_zero``), ``has_rsample`` tells which,
same seed gives identical values (int, ``SeedSequence``, ``torch.Generator``; in large calls
too) and neighbouring seeds share no values, unseeded calls draw from the global stream that
``manual_seed`` seeds and seeded calls leave it untouched, ``log_prob`` scores the backend's own
samples (as torch does, where the backend scores them itself), ``expand``/``wrap``/pickling keep
the backend, non-contiguous parameters and values count by their values, not their memory layout
(``layouts``), invalid parameters raise ``InvalidParameterError``, and parameters at which
the law is one value draw that value, in new memory (``point_mass``).

One small sample shape (16 draws of a batch of 2) serves most rules, so backends that compile a
program per shape compile few.
"""

from __future__ import annotations

import atexit
import contextlib
import math
import pickle
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
import torch.distributions as td

from ...core.backend import FamilySupport
from ...core.errors import (
    BackendContractError,
    InvalidParameterError,
    NotReparameterizableError,
    for_author,
)
from ...core.families import FAMILIES
from ...core.seeds import preserved_global_seed
from ..cases import CASES
from ..grids import example_params, grids, rsample_leaves
from ..model import Check, CheckFailure, Outcome, Skip
from ..runner import (
    SCALAR_VALUES,
    Runner,
    Target,
    make,
    nan_cotangent,
    outside_support,
    scalar_rows,
)
from ..stats import ALPHA_REPEAT

__all__ = ["checks", "N", "N_WIDE"]

#: The sample shape of most rules.
N = (16,)
#: The sample shape of the rules whose batch has 6 or 8 elements (``shapes``, ``broadcast``,
#: ``expand``): at
#: most 64 values, like the other rules' draws (a backend that compiles per size class, as TFP
#: does, then runs one program for all of them).
N_WIDE = (8,)
#: The (sample shape, batch shape) pairs of the ``shapes`` rule: no batch and no sample shape
#: (one value), a sample dimension over a 2-d batch, and a 2-d sample shape with a trailing 1
#: over a 1-d batch. One value, then 48 and 16: a backend that compiles per size class, as TFP
#: on JAX does (1, 8, 64, ... rows), runs two programs for them, not three.
SHAPE_CASES: tuple[tuple[tuple[int, ...], tuple[int, ...]], ...] = (
    ((), ()), (N_WIDE, (2, 3)), ((8, 1), (2,)))
#: The sample shapes of the ``broadcast`` rule's independence part (one parameter point
#: expanded to a batch of 6): one dimension, a trailing dimension of size 1, four dimensions.
#: At most 48 values, one shape bucket on TFP.
INDEPENDENT_SHAPES: tuple[tuple[int, ...], ...] = (N_WIDE, (4, 1), (2, 1, 2, 2))
#: The values of the large call of the ``seeds`` and ``generator`` rules: a sample of
#: scalar parameters (batch ``()``) in float64 of at least this many values
#: (:func:`_seed_calls`). Their other calls draw at most 64 values, and a backend whose
#: fast path for large calls forgot the seed passed (the torch backend has such paths from
#: 256 values for scalar parameters); 8,192 values also span a seed used as an offset into
#: one stream of up to about 8,000 values per unit of seed (:data:`NEAR_SEEDS`). float64, so
#: that independent draws share no value by chance. One shape per family, and so one program
#: each on TFP's JAX substrate (calls of more than 512 values compile a program per shape):
#: both rules, ``sample`` and ``rsample``, every seed, run it.
LARGE_SEED_VALUES = SCALAR_VALUES
#: The (sample shape, batch shape) calls of the ``seeds`` and ``generator`` rules besides
#: ``(N, (2,))`` and the large call: no batch (a distribution of scalar parameters, the
#: commonest call), one value, and a three-dimensional sample shape over a 2-d batch. A
#: backend that honoured the seed for the example batch alone (and drew from its global stream
#: for scalar parameters or for sample shapes of three dimensions) passed; then a
#: two-dimensional sample shape (one that ignored the seed for 2-d shapes passed: an outside
#: trial). Sizes of 1, 64, 48 and 64 values: the size classes the ``shapes`` rule already
#: draws. ``sample()`` with another seed must differ only where the call draws at least 32
#: values (fewer may repeat by chance for a discrete law).
#: The bits flipped in seed 7 by the ``seeds`` rule: each such seed must draw other values.
SEED_BITS = tuple(range(16))

SEED_CASES: tuple[tuple[tuple[int, ...], tuple[int, ...]], ...] = (
    ((64,), ()), ((), ()), ((2, 4, 1), (2, 3)), ((4, 8), (2,)))


def _seed_set_apart(d: Any) -> None:
    """The draws of :data:`SEED_SET` and of SeedSequence 6, 7 and 8's first three children
    are pairwise different (``sample()``)."""
    seen: dict[bytes, str] = {}
    seeds: list[tuple[str, Any]] = [(str(s), s) for s in SEED_SET]
    for root in (6, 7, 8):
        seeds += [(f"child {i} of SeedSequence({root})", kid)
                  for i, kid in enumerate(np.random.SeedSequence(root).spawn(3))]
    for label, seed in seeds:
        key = d.sample(SEED_SET_SHAPE, seed=seed).detach().cpu().numpy().tobytes()
        if key in seen:
            raise CheckFailure(
                f"sample({SEED_SET_SHAPE}): seeds {seen[key]} and {label} gave identical "
                "values: two seeds share a stream (a seed folded or cut to fewer bits, a "
                "spawn key added to the seed). Derive the stream from the whole SeedSequence "
                "the backend receives (its generate_state() mixes in every bit and the "
                "spawn_key).")
        seen[key] = label


def _after_update(t: Target, family: str, params: dict[str, Any], d: Any) -> None:
    """After the caller's parameters change in place (``optimizer.step()``), the same seed
    draws what a new distribution of the new values draws (a backend that cached parameters
    by their memory address drew from the old values). The example batch's two elements are
    swapped in place: valid values, other than before. For the families whose distribution
    holds the caller's tensors themselves (Normal, Gamma, ...: where torch derives what it
    keeps, an in-place change is not a new law even on torch)."""
    spec = FAMILIES[family]
    held = vars(d)
    if "probs" in spec.params or not all(
            isinstance(held.get(k), torch.Tensor) and held[k].shape == v.shape
            and held[k].untyped_storage().data_ptr() == v.untyped_storage().data_ptr()
            for k, v in params.items() if isinstance(v, torch.Tensor)):
        # torch derives what it keeps from these parameters (Beta's Dirichlet, logits from
        # probs, cached lazily): an in-place change reaches some of it and not the rest
        return
    batched = [k for k, v in params.items()
               if isinstance(v, torch.Tensor) and v.dim() > spec.param_event_dim(k)]
    before = d.sample(N, seed=7).detach()
    with torch.no_grad():
        for k in batched:
            params[k].copy_(params[k].flip(0))
    now = {k: (v.detach().clone() if isinstance(v, torch.Tensor) else v)
           for k, v in params.items()}
    got = d.sample(N, seed=7).detach()
    want = make(family, now, t).sample(N, seed=7).detach()
    with torch.no_grad():  # the example values again, for the rule's later calls
        for k in batched:
            params[k].copy_(params[k].flip(0))
    if not _equal(got, want):
        stale = " (the values drawn before the update)" if _equal(got, before) else ""
        raise CheckFailure(
            f"sample({N}, seed=7) after the parameters were changed in place (the two batch "
            f"elements swapped, as an optimizer step changes a parameter) drew other values "
            f"than a new distribution of the new values{stale}: read the parameters at every "
            "call; never cache them by memory address or by object")


def _seed_calls(family: str) -> list[tuple[tuple[int, ...], tuple[int, ...], torch.dtype]]:
    """The (sample shape, batch shape, dtype) calls of the ``seeds`` and ``generator`` rules
    besides ``(N, (2,))``: :data:`SEED_CASES` in float32, then the large call, float64 draws
    of :data:`LARGE_SEED_VALUES` values or just more (a Wishart's 3 x 3 matrices: 911
    draws), so that a family with a large event costs no more than a univariate one."""
    # the shape of the sampler layer's scalar_ks draws: one program on TFP serves both
    return [(s, b, torch.float32) for s, b in SEED_CASES] + [
        ((ODD_VALUES,), (), torch.float64), ((scalar_rows(family),), (), torch.float64)]


#: A call of the ``seeds`` and ``generator`` rules of a size that is no multiple of 64 (and at
#: least 256): every other call of the suite is one (or small), and a backend whose chunked
#: generation refilled the remainder with the first chunk's noise passed (an outside trial).
#: Its draws must hold no value twice (a continuous family in float64). Within TFP's shape
#: bucket of 512 rows.
ODD_VALUES = 500


def _repeated_within(family: str, call: str, x: torch.Tensor) -> None:
    """A continuous family's float64 draw holds no value twice across its events (the values
    within one event may repeat: a Wishart matrix is symmetric); a few repeats are allowed
    for laws that put mass on a float spacing."""
    if FAMILIES[family].kind != "continuous" or x.dtype != torch.float64 or x.dim() == 0:
        return
    rows = x.detach().reshape(x.shape[0], -1).numpy()
    values = np.concatenate([np.unique(r[np.isfinite(r) & (r != np.round(r))]) for r in rows])
    repeats = values.size - np.unique(values).size
    if repeats > max(2, values.size // 1000):
        raise CheckFailure(
            f"sample{call} holds {repeats} values twice (of {values.size}), where independent "
            "float64 draws hold none: part of the call reuses another part's noise (the "
            "remainder of a chunked draw refilled from its first chunk?)")


#: The seeds whose large draws (:data:`LARGE_SEED_VALUES`) are compared with seed 7's: its
#: neighbours 8 and 6 (6 is also 7 with one bit cleared). Each must draw other values than
#: seed 7; for a continuous family they must share almost none of them
#: (:func:`_shared_values`): a seed used as an offset or a counter into one stream (seed x
#: stride) shares most of them wherever the stride is shorter than the draw, and a seed whose
#: low bits are dropped (shifted out, masked) draws seed 7's values again for seed 6.
NEAR_SEEDS = (8, 6)
#: The seeds whose draws must all differ from each other (the ``seeds`` rule), beside the
#: children of SeedSequence 6, 7 and 8 (:func:`_seed_set_apart`): neighbours, one bit apart,
#: above 32 and 64 bits, and pairs that a seed folded to 64 bits (``6`` and ``7 + 2^64``) or a
#: spawn key added to the seed (child 0 of 7 and seed 8) would merge. Each was compared with
#: seed 7 alone: a backend that folded its seed, or added the spawn key, passed.
SEED_SET = tuple(dict.fromkeys(
    (0, 1, 6, 7, 8, 9, 7 + 2**32, 6 + 2**32, 7 + 2**64, 6 + 2**64, 8 + 2**64,
     2**64 - 1, 2**64, 2**63) + tuple(7 ^ (1 << b) for b in range(16))))
# (Not 7 + 2^128: NumPy's SeedSequence pads the entropy words to four before it appends the
# spawn key, so that seed's words are child 1 of SeedSequence(7)'s: the same stream by design.)
#: Values per draw of the seed set: 32 rows of a batch of 2, the size class of the other
#: rules' draws (two equal draws of a discrete law by chance: at most about 2^-40).
SEED_SET_SHAPE = (32,)

#: The ``dtype`` rule's far location, in float64 (the location-scale families but
#: :data:`_LOG_LOC`): 1e9 scales from 0, where float32 (resolution 0.06 at 1e6) holds no
#: noise and float64 (1.2e-10) all of it; 64 draws must hold at least 48 distinct values.
FAR_LOC = 1e6
FAR_SCALE = 1e-3
FAR_SHAPE = (64,)
#: Families whose ``loc`` is a log-scale location (LogNormal: exp(1e6) overflows).
_LOG_LOC = frozenset({"LogNormal"})

#: The fraction of a large draw's distinct values that a near seed's draw may share with it.
#: Independent float64 draws of 8,192 values share one with a chance of about 1e-8 (values
#: of a 32-bit resolution, about 0.02); a stride of 4,050 values per seed shares half.
SHARED_MAX = 1 / 64


#: The smallest event size the ``shapes`` rule draws each family with an event dimension at
#: (the ``k`` of its example parameters; 1 unless the family needs more).
SMALLEST_EVENT = {"LKJCholesky": 2}


#: The families with parameters at which the law is one value (a probability of 0 or 1, a
#: rate of 0), for the ``point_mass`` rule: the draws must be that value, in new memory (a
#: backend returned the ``probs`` tensor itself as a Bernoulli draw there).
POINT_MASS = ("Bernoulli", "Binomial", "Geometric", "NegativeBinomial", "Poisson",
              "Categorical", "OneHotCategorical", "OneHotCategoricalStraightThrough",
              "Multinomial")


#: How far from 0 ``point_mass`` lets the log probability of the law's one value be (float32:
#: torch's logits of a probability of 1 are finite, 87.3, whose ``log1p(exp(-87.3))`` is 1e-38).
POINT_MASS_ATOL = 1e-6


def point_mass_case(family: str) -> tuple[dict[str, Any], torch.Tensor]:
    """Float32 parameters of a batch of 2 (the example's event size; 3 for Binomial, whose
    ``total_count`` of 0 is one more case) at which ``family``'s law is one value, and that
    value per batch element."""
    ex = example_params(family, (2,), torch.float32)
    f32 = torch.float32
    if family == "Bernoulli":
        return {"probs": torch.tensor([0.0, 1.0])}, torch.tensor([0.0, 1.0])
    if family == "Binomial":
        # ... and a total_count of 0, whatever the probability (drawn as 1: an outside trial)
        n = ex["total_count"]
        zero = torch.zeros((), dtype=f32)
        return ({"total_count": torch.stack([n[0], n[1], zero]),
                 "probs": torch.tensor([0.0, 1.0, 0.5])}, torch.stack([zero, n[1], zero]))
    if family == "Geometric":
        return {"probs": torch.tensor([1.0, 1.0])}, torch.zeros(2)
    if family == "NegativeBinomial":
        return {"total_count": ex["total_count"], "probs": torch.zeros(2)}, torch.zeros(2)
    if family == "Poisson":
        return {"rate": torch.zeros(2)}, torch.zeros(2)
    k = ex["probs"].shape[-1]
    eye = torch.eye(k, dtype=f32)[[0, k - 1]]
    if family == "Categorical":
        return {"probs": eye}, torch.tensor([0.0, k - 1.0])
    if family == "Multinomial":
        return {"total_count": ex["total_count"], "probs": eye}, eye * ex["total_count"]
    return {"probs": eye}, eye  # the one-hot families


def _describe(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v.tolist() if isinstance(v, torch.Tensor) else v}"
                     for k, v in params.items())


def _dist(t: Target, family: str, support: FamilySupport, batch: tuple[int, ...] = (2,),
          dtype: torch.dtype = torch.float32, grad: bool = False) -> tuple[Any, dict[str, Any]]:
    """The family from its example parameters; with ``grad`` the parameters the backend
    reparameterizes are leaves that require grad (returned)."""
    params = example_params(family, batch, dtype)
    leaves: dict[str, Any] = {}
    if grad:
        leaves = rsample_leaves(family, params, support.rsample_params)
    return make(family, params, t), leaves


#: The value of a shape parameter (``Case.tiny``) in the ``rsample_near_zero`` rule: valid, and
#: far below where derivatives such as ``log(U) / a**2`` or ``1 / a**2`` overflow float32
#: (about 1e-19), which made the gradients NaN (a zero cotangent times inf).
NEAR_ZERO = 1e-30
#: Its sample shape: 512 values over the batch of 2, the size of the gradient layer's calls,
#: so a backend that compiles per size class (TFP on JAX) runs programs it already has.
N_NEAR_ZERO = (256,)


def _near_zero(t: Target, family: str, support: FamilySupport, name: str,
               dtype: torch.dtype) -> None:
    """``rsample`` of the example parameters with ``name`` at :data:`NEAR_ZERO`: the values are
    finite (a draw past the float range is held at its end) and no gradient is NaN."""
    params = example_params(family, (2,), dtype)
    params[name] = torch.full_like(params[name], NEAR_ZERO)
    leaves = rsample_leaves(family, params, support.rsample_params)
    where = f"at {name} = {NEAR_ZERO:g} ({str(dtype).removeprefix('torch.')})"
    given = _copies(params)
    x = make(family, params, t).rsample(N_NEAR_ZERO, seed=0)
    _inputs_intact(f"rsample() {where}", params, given)
    bad = ~torch.isfinite(x.detach())
    if bad.any():
        raise CheckFailure(f"rsample() {where} returned {int(bad.sum())} non-finite values of "
                           f"{x.numel()} (e.g. {x.detach()[bad][:3].tolist()}): hold draws past "
                           "the float range at its end")
    if not leaves or not x.requires_grad:
        return
    # log1p(|x|): a bounded, non-zero cotangent for every draw, including those held at the
    # range's end
    grads = torch.autograd.grad(torch.log1p(x.abs()).sum(), list(leaves.values()),
                                allow_unused=True)
    for k, g in zip(leaves, grads):
        if g is not None and torch.isnan(g).any():
            raise CheckFailure(f"rsample() {where}: the gradient w.r.t. {k} is NaN for "
                               f"{int(torch.isnan(g).sum())} of its {g.numel()} elements")


def _expanded_leaves(t: Target, family: str, support: FamilySupport) -> list[str]:
    """``rsample()``'s gradient reaches a parameter given as a smaller leaf expanded over the
    batch (``one.expand(2, ...)``, a stride-0 view, as a scalar ``scale`` beside a batched
    ``loc`` becomes): each batched reparameterized parameter in turn, the others contiguous
    leaves. The draw must equal that of contiguous leaves of the same values (the first batch
    element's, repeated) with the same seed, and the leaf's gradient the gradient of the
    contiguous leaf summed over the batch. A backend that copied broadcast parameters detached
    gave right values and no gradient, silently (the output still required grad through the
    other parameters). Float64, ``N`` values and seed 0, as the rule's first draw: the same
    programs on a backend that compiles per shape. Returns the parameters tried."""
    spec = FAMILIES[family]
    base = example_params(family, (2,), torch.float64)
    names = rsample_leaves(family, dict(base), support.rsample_params)
    # the first batch element of every batched parameter, repeated over the batch
    firsts: dict[str, torch.Tensor] = {}
    for k, v in base.items():
        nb = v.dim() - spec.param_event_dim(k) if isinstance(v, torch.Tensor) and \
            k in spec.params else 0
        if nb > 0:
            firsts[k] = v[(0,) * nb]
            base[k] = firsts[k].expand(v.shape).clone()

    def draw(expanded: str | None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        params = dict(base)
        leaves = rsample_leaves(family, params, support.rsample_params)
        if expanded is not None:
            one = firsts[expanded].clone().requires_grad_(True)
            params[expanded] = one.expand(base[expanded].shape)
            leaves[expanded] = one
        x = make(family, params, t).rsample(N, seed=0)
        if not x.requires_grad:
            return x.detach(), {}
        # weighted: the plain sum of a simplex's components is constant, its gradient 0
        w = torch.linspace(1.0, 2.0, x.numel(), dtype=x.dtype).reshape(x.shape)
        grads = torch.autograd.grad((x * w).sum(), list(leaves.values()), allow_unused=True)
        return x.detach(), {k: g for k, g in zip(leaves, grads) if g is not None}

    want, want_grads = draw(None)
    tried = []
    for name in (k for k in names if k in firsts):
        shape = tuple(firsts[name].shape)
        given = (f"{name} given as one leaf of shape {shape} expanded over the batch "
                 f"{tuple(base[name].shape[:base[name].dim() - len(shape)])} (a stride-0 view)")
        got, grads = draw(name)
        if not _close(got, want) and not _close(draw(None)[0], want):
            raise CheckFailure(
                f"rsample({N}) with seed 0 drew different values twice, so this rule (which "
                "compares a parameter given as an expanded leaf with a contiguous one, drawn "
                "with the same seed) cannot judge its own property: the backend does not derive "
                "its draws from the seed it receives (see the seeds rule). Fix that first.")
        if not _close(got, want):
            raise CheckFailure(
                f"rsample({N}) with {given} drew other values than with a contiguous leaf of "
                f"the same values and the same seed: e.g. {got.flatten()[:3].tolist()} against "
                f"{want.flatten()[:3].tolist()}. Read broadcast parameters through their strides")
        if name not in grads:
            raise CheckFailure(
                f"rsample({N}) with {given} carries no gradient to it (its .grad stays None), "
                "where a contiguous leaf of the same values gets one: the backend drops the "
                "gradient of a broadcast parameter (copies it detached?). Keep the autograd "
                "graph through every parameter, expanded ones included (.contiguous() and "
                ".clone() keep it; .detach(), .numpy() and torch.tensor() drop it)")
        if name not in want_grads:
            continue  # no gradient even as a contiguous leaf: the rule's first test says so
        g = grads[name]
        ref = want_grads[name].sum(tuple(range(want_grads[name].dim() - len(shape))))
        tol = 1e-9 * (1.0 + float(ref.abs().nan_to_num(posinf=0.0, neginf=0.0).max()))
        if g.shape != ref.shape or not torch.allclose(g, ref, rtol=1e-6, atol=tol,
                                                      equal_nan=True):
            raise CheckFailure(
                f"rsample({N}) with {given}: its gradient is {g.flatten()[:3].tolist()}, where "
                f"a contiguous leaf of the same values gets {ref.flatten()[:3].tolist()} "
                "(summed over the batch; rtol 1e-6): the gradient of a broadcast parameter "
                "must be the sum of its elements' gradients, as torch's expand gives")
        tried.append(name)
    return tried


def _expected_dtype(family: str, dtype: torch.dtype) -> torch.dtype:
    return torch.int64 if FAMILIES[family].kind == "index" else dtype


def _equal(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and bool(torch.equal(a, b))


def _seeded(d: Any, method: str, seed: int, rule: str) -> torch.Tensor:
    """``d.<method>(N, seed=seed)``, after checking that the seed repeats it.

    The rules that compare two routes to the same draw (``wrap``, ``pickle``, ``layouts``)
    need "same seed, same values" first: without it they would blame their route for what the
    ``seeds`` rule finds, so they say so instead.
    """
    a = getattr(d, method)(N, seed=seed).detach()
    if not _equal(a, getattr(d, method)(N, seed=seed).detach()):
        raise CheckFailure(
            f"{method}() with seed {seed} drew different values twice, so the {rule} rule "
            "(which compares two ways to the same seeded draw) cannot judge its own property: "
            "the backend does not derive its draws from the seed it receives (see the seeds "
            "rule). Fix that first.")
    return a


def _copies(tensors: dict[str, Any]) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in tensors.items() if isinstance(v, torch.Tensor)}


def _inputs_intact(what: str, tensors: dict[str, Any], given: dict[str, torch.Tensor]) -> None:
    """The tensors a call was given hold the values they had (the core sees in-place torch
    operations by their version counters; this sees any write, through NumPy or DLPack too)."""
    def same(a: torch.Tensor, b: torch.Tensor) -> bool:  # NaN where NaN was
        return _equal(a, b) or (a.is_floating_point() and a.shape == b.shape and
                                torch.allclose(a, b, rtol=0, atol=0, equal_nan=True))

    changed = [k for k, v in given.items() if not same(tensors[k].detach(), v)]
    if changed:
        raise CheckFailure(f"{what} changed the values of {', '.join(changed)}, which the "
                           "caller passed: a backend must not write into the tensors it is "
                           "given (they are the caller's); compute on copies")


def _kept_intact(what: str, earlier: torch.Tensor, kept: torch.Tensor) -> None:
    """An earlier result still holds its values after later calls (a backend that returns a
    buffer it reuses, or keeps writing to, changes what the caller already holds). ``what``
    names the calls (``"sample()"``). The rules that compare two calls' values run it where
    they find them identical: a reused buffer makes them so, and is the cause to name."""
    if not _equal(earlier.detach(), kept):
        raise CheckFailure(_reused(what))


def _new_memory(what: str, first: torch.Tensor, second: torch.Tensor) -> None:
    """Two calls' results do not share memory (docs/plugins.md: a new tensor from every
    call): a backend that cached its seeded results and returned the same tensor again gave
    the right values, and a caller's in-place change to one result showed in the next."""
    if first.numel() and first.untyped_storage().data_ptr() == \
            second.untyped_storage().data_ptr():
        raise CheckFailure(
            f"two calls of {what} returned tensors that share memory (the same tensor, or "
            "views of one buffer: a cached result?): a caller's in-place change to one result "
            "then shows in the other. Return a new tensor from every call (docs/plugins.md)")


def _reused(what: str) -> str:
    return (f"{what}: a later call changed the values an earlier call had returned: the "
            "backend returns a buffer it reuses or writes to again. Return a new tensor from "
            "every call")


def _strided(v: torch.Tensor) -> torch.Tensor:
    """``v``'s values in a non-contiguous view (every other element of a zero-filled buffer)."""
    out = v.new_zeros(v.shape + (2,))[..., 0]
    out.copy_(v)
    return out


def _expanded(v: torch.Tensor) -> torch.Tensor:
    """The first batch element of ``v`` expanded over the batch (stride 0)."""
    return v[:1].expand_as(v)


#: The parameter layouts of the ``layouts`` rule: how a view is made from a contiguous tensor.
LAYOUTS: tuple[tuple[str, Callable[[torch.Tensor], torch.Tensor]], ...] = (
    ("strided (every other element of a buffer)", _strided),
    ("expanded (stride 0 over the batch)", _expanded),
)


def _layout_gradients(t: Target, family: str, support: FamilySupport,
                      params: dict[str, Any]) -> None:
    """``rsample()`` with each parameter given as a view (:data:`LAYOUTS`) of a leaf has the
    gradient it has with a contiguous copy of that view (a backend that returned a strided
    parameter's gradient in memory order, reversed, drew the right values and passed:
    an outside trial). The objective weighs every value by a fixed random weight."""
    names = list(rsample_leaves(family, dict(params), support.rsample_params))
    names = [k for k in names if params[k].dim() > 0]
    if not names:
        return
    for how, view in LAYOUTS:
        xs, gs = [], []
        for contiguous in (False, True):
            leaves = {k: params[k].detach().clone().requires_grad_(True) for k in names}
            given = dict(params)
            for k, leaf in leaves.items():
                v = view(leaf)
                given[k] = v.contiguous() if contiguous else v
            with torch.enable_grad():
                x = make(family, given, t).rsample(N, seed=9)
                w = torch.randn(x.shape, generator=torch.Generator().manual_seed(9),
                                dtype=torch.float64).to(x.dtype)
                grads = torch.autograd.grad((w * x).sum(), [leaves[k] for k in names],
                                            allow_unused=True)
            xs.append(x.detach())
            gs.append(grads)
        if not _close(xs[0], xs[1]):
            continue  # the values differ: the value comparison above names that
        for k, g, want in zip(names, gs[0], gs[1]):
            same = (g is None and want is None) or (
                g is not None and want is not None and _close(g, want))
            if not same:
                raise CheckFailure(
                    f"rsample() with {k} given {how} drew the values of a contiguous copy, but "
                    f"its gradient differs from the copy's: "
                    f"{None if g is None else g.flatten()[:4].tolist()} against "
                    f"{None if want is None else want.flatten()[:4].tolist()} (the same "
                    "seed and weights). Take gradients through the view's strides (torch "
                    "indexing, .contiguous()), not its memory order")


def _close(a: torch.Tensor, b: torch.Tensor) -> bool:
    """The same values up to rounding: a different memory layout may take another BLAS path
    (a last-bit change), never another value. Counts and indices: exactly equal."""
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if not a.is_floating_point():
        return bool(torch.equal(a, b))
    tol = 64 * torch.finfo(a.dtype).eps
    scale = 1.0 + float(b.abs().nan_to_num(posinf=0.0, neginf=0.0).max()) if b.numel() else 1.0
    return bool(torch.allclose(a, b, rtol=tol, atol=tol * scale, equal_nan=True))


def _streams_apart(t: Target, family: str, seeds: tuple[Any, Any] = (7, 8),
                   names: tuple[str, str] = ("seed 7", "seed 8")) -> None:
    """Draws of a continuous family with seeds 7 and 8 share no more than half their values
    (apart from a value at the same place in both, as the constant entries of a Cholesky
    factor): two nearby seeds give one stream shifted (the seed used as an offset, a counter
    started at the seed), whose draws overlap almost entirely. One parameter point expanded
    over the ``broadcast`` rule's batch, so a shifted noise gives the same values whatever the
    shift. Coinciding float values of independent draws are rare (about 1e-4 of 48 x 48 pairs
    in float32)."""
    if FAMILIES[family].kind != "continuous":
        return
    d = make(family, example_params(family, ()), t).expand((2, 3))
    x = d.sample(N_WIDE, seed=seeds[0]).flatten().numpy()
    y = d.sample(N_WIDE, seed=seeds[1]).flatten().numpy()
    moved = y != x
    shared = int(np.isin(y[moved], x).sum())
    if shared > moved.sum() // 2:
        raise CheckFailure(
            f"sample(): {shared} of the {int(moved.sum())} values drawn with {names[1]} were "
            f"also drawn with {names[0]}: their streams overlap (is the seed an offset "
            "into one stream?). Derive each seed's stream from the whole seed (a "
            "SeedSequence, a hashed or split key)")
    if not FAMILIES[family].univariate:
        return  # the entries of a vector draw have different laws: their ranks would pair up
    # Paired by place, the two seeds' draws are independent: in the order of seed 7's values,
    # seed 8's fall (descend) about half the time. A seed that only rotates, shifts or mirrors
    # one stream (y = g(x) with g monotone in a few pieces) gives almost none, or almost all.
    m = x.size
    falls = int((np.diff(y[np.argsort(x, kind="stable")]) < 0).sum())
    p = _descent_tail(m, falls)
    if p < SEEDS_ALPHA:
        raise CheckFailure(
            f"sample(): {names[1]}'s values, taken in the order of {names[0]}'s (paired by "
            f"place), fall {falls} times in {m - 1} steps, where independent draws fall "
            f"{(m - 1) / 2:g} +- {((m + 1) / 12) ** 0.5:.2g} times (P = {p:.2g} or less): "
            "one seed's draws are a function of the other's (a seed that rotates, shifts or "
            "mirrors one stream). Derive each seed's stream from the whole seed (a "
            "SeedSequence, a hashed or split key)")


def _distinct(x: torch.Tensor) -> np.ndarray:
    """The distinct finite non-integer values of a draw, sorted (integers are the constant
    zeros and ones of a Cholesky factor, or a draw held at an end of a unit interval)."""
    v = x.detach().flatten().double().numpy()
    return np.unique(v[np.isfinite(v) & (v != np.round(v))])


def _shared_values(family: str, call: str, first: torch.Tensor, seed: int,
                   other: torch.Tensor) -> None:
    """The large draw of seed ``seed`` shares at most :data:`SHARED_MAX` of seed 7's distinct
    values (a continuous family in float64: independent draws share essentially none). Seeds
    7 and ``seed`` with overlapping streams (a seed used as an offset, a counter started at
    the seed) share every value of the overlap; the 48 values :func:`_streams_apart` compares
    miss a stride of more than 48 values. Counted by sorting (``np.intersect1d``)."""
    if FAMILIES[family].kind != "continuous":
        return  # counts and indices repeat by chance
    mine = _distinct(first)
    shared = np.intersect1d(mine, _distinct(other), assume_unique=True).size
    if shared > SHARED_MAX * mine.size:
        raise CheckFailure(
            f"sample{call}: seeds 7 and {seed} share {shared} of the {mine.size} distinct "
            f"values seed 7 drew, where independent float64 draws share essentially none "
            f"(more than {SHARED_MAX * mine.size:.0f} fails): their streams overlap (is the "
            "seed an offset or a counter into one stream?). Derive each seed's stream from "
            "the whole seed (a SeedSequence's generate_state(), a hashed or split key)")


def _overlapping(family: str, first: torch.Tensor, other: torch.Tensor) -> str:
    """Empty, or how many of ``first``'s distinct values ``other`` shares where independent
    draws share essentially none: more than :data:`SHARED_MAX` of them in float64, more than a
    quarter in float32 (32 float32 values share one with a chance of about 1e-5; a quarter of
    them, essentially never). Only for continuous families (counts repeat by chance)."""
    if FAMILIES[family].kind != "continuous":
        return ""
    mine = _distinct(first)
    if not mine.size:
        return ""
    shared = np.intersect1d(mine, _distinct(other), assume_unique=True).size
    limit = (SHARED_MAX if first.dtype == torch.float64 else 0.25) * mine.size
    return f"{shared} of its {mine.size} distinct values" if shared > limit else ""


def _in_thread(fn: Callable[[], torch.Tensor]) -> torch.Tensor:
    """``fn()`` run in a new thread (joined before returning); what it raises is raised here."""
    import threading

    box: dict[str, Any] = {}

    def work() -> None:
        try:
            box["x"] = fn()
        except BaseException as exc:  # re-raised in the caller's thread
            box["exc"] = exc

    th = threading.Thread(target=work, name="polysample-conformance")
    th.start()
    th.join()
    if "exc" in box:
        raise box["exc"]
    return box["x"]


#: The chance that a backend whose seeds give independent draws fails the descent test of
#: ``seeds`` (two-sided, exact).
SEEDS_ALPHA = 1e-9
#: Unseeded one-value calls of ``global_stream``: independent draws all equal with a chance
#: of ``P(v)^63`` (below :data:`SEEDS_ALPHA` where ``P(v) <= 0.72``). A continuous law's
#: draws never repeat, so :data:`UNSEEDED_CALLS_CONTINUOUS` of them suffice.
UNSEEDED_CALLS = 64
UNSEEDED_CALLS_CONTINUOUS = 8
#: The batch of one parameter point the ``seeds`` and ``generator`` rules draw (seeded): its
#: elements must not repeat each other (a backend that loops over small batches reusing the
#: seed gave them one noise).
SMALL_BATCH = 3


#: Rows of each traced draw of the ``traced`` rule: two draws of a batch of 2 at other
#: parameters (the typical grid's points 0, 1 and 1, 2) with one seed share every value with
#: a chance far below ``SEEDS_ALPHA`` for every family's typical points.
TRACED_ROWS = 64


def _traced(t: Target, family: str, support: FamilySupport) -> Outcome:
    """A backend that declares ``traceable = True`` records its computation under
    ``torch.jit.trace``: the traced ``sample``/``rsample`` give other values for other
    parameters and at each call, and the traced ``log_prob`` scores as the eager one at
    other parameters. A computation made outside torch is baked into the trace as a
    constant (torch warns, and the traced function returns the values of the tracing call
    ever after)."""
    import warnings

    import polysample

    typical = next(g for g in grids(family) if g.label == "typical")
    params = typical.build(torch.float64)
    names = [k for k, v in params.items()
             if isinstance(v, torch.Tensor) and v.is_floating_point()]
    if not names:
        raise Skip("no floating-point tensor parameter to trace")

    def points(sl: slice) -> dict[str, Any]:
        return {k: v[sl] if isinstance(v, torch.Tensor) and v.dim() else v
                for k, v in params.items()}

    pa, pb = points(slice(0, 2)), points(slice(1, 3))
    value = make(family, pa, t).sample((4,), seed=3)
    args_a = tuple(pa[k] for k in names)
    args_b = tuple(pb[k] for k in names)

    def traced_fn(m: str) -> Callable[..., torch.Tensor]:
        def f(*ts: torch.Tensor) -> torch.Tensor:
            d = make(family, {**pa, **dict(zip(names, ts))}, t, validate=False)
            return d.log_prob(value) if m == "log_prob" else getattr(d, m)((TRACED_ROWS,))

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's TracerWarnings: what the rule judges
            return torch.jit.trace(f, args_a, check_trace=False)

    methods = ["sample"] + (["rsample"] if support.rsample else [])
    with preserved_global_seed():
        for m in methods:
            tr = traced_fn(m)
            polysample.manual_seed(5)
            xa = tr(*args_a).detach()
            polysample.manual_seed(5)
            xb = tr(*args_b).detach()
            xc = tr(*args_a).detach()
            call = f"torch.jit.trace of {m}(({TRACED_ROWS},)) on a batch of 2"
            if _equal(xa, xb):
                raise CheckFailure(
                    f"{call} returned the same values for other parameters (the typical "
                    f"grid's points 1, 2 instead of 0, 1; {', '.join(names)} traced): the "
                    "draw was recorded as a constant. The backend declares traceable = True, "
                    "which promises a computation of torch operations that the trace "
                    "records; draw with torch operations, or set traceable = False (the "
                    "core then refuses to trace, saying why)")
            if _equal(xa, xc):
                raise CheckFailure(
                    f"{call} returned the same values at its next call, unseeded: the draw "
                    "was recorded as a constant. The backend declares traceable = True: "
                    "draw with torch operations, or set traceable = False")
    tr = traced_fn("log_prob")
    got = tr(*args_b).detach()
    want = make(family, pb, t, validate=False).log_prob(value).detach()
    if got.shape != want.shape or not torch.allclose(got, want, rtol=1e-6, atol=1e-9,
                                                     equal_nan=True):
        raise CheckFailure(
            f"torch.jit.trace of log_prob at other parameters (the typical grid's points 1, 2 "
            f"instead of 0, 1) scored {_head(got)}, the eager log_prob {_head(want)}: the "
            "score was recorded as a constant. The backend declares traceable = True: score "
            "with torch operations, or set traceable = False")
    return Outcome(f"torch.jit.trace records {', '.join(methods)} and log_prob: other "
                   "parameters and later calls give other values")


def _equal_by_chance(family: str, params: dict[str, Any], value: torch.Tensor,
                     times: int = 1) -> float:
    """The chance that ``times`` independent draws of ``family`` at ``params`` (one parameter
    point) each repeat ``value``: 0 for a continuous law, else the product of its
    probabilities to the power ``times`` (torch's own ``log_prob``: no backend program)."""
    if FAMILIES[family].kind == "continuous":
        return 0.0
    with torch.no_grad():
        plain = {k: v.detach() if isinstance(v, torch.Tensor) else v for k, v in params.items()}
        law = getattr(td, family)(**plain, validate_args=False)
        lp = float(law.log_prob(value).double().sum()) * times
    return math.exp(min(lp, 0.0))


def _batch_apart(family: str, call: str, params: dict[str, Any], x: torch.Tensor) -> None:
    """``x``, a seeded draw of shape ``N + (SMALL_BATCH,) + event`` of one parameter point
    (``params``) expanded over a batch, has no two batch elements alike (unless a discrete law
    makes that likely: their chance, :func:`_equal_by_chance`, at least
    :data:`SEEDS_ALPHA`)."""
    cols = x.detach().movedim(len(N), 0)
    for i in range(SMALL_BATCH):
        for j in range(i + 1, SMALL_BATCH):
            if not torch.equal(cols[i], cols[j]):
                continue
            chance = _equal_by_chance(family, params, cols[i])
            if chance < SEEDS_ALPHA:
                raise CheckFailure(
                    f"{call} with one parameter point over a batch of {SMALL_BATCH}: batch "
                    f"elements {i} and {j} drew identical values {_head(cols[i])} (chance "
                    f"{chance:.2g} for independent draws): the elements of a seeded batch share "
                    "one noise (a loop over the batch that restarts the stream from the seed "
                    "for each element?). Draw the whole batch from one stream, or derive each "
                    "element's stream from the seed and the element's index")


#: How far the gradient of a seeded ``rsample()`` with one parameter requiring grad may be
#: from the one with all of them (float64; the same draw, rounding only).
ONE_LEAF_RTOL = 1e-6


def _one_leaf_at_a_time(t: Target, family: str, support: FamilySupport, d: Any,
                        x: torch.Tensor, grads: dict[str, torch.Tensor]) -> None:
    """The ``rsample_grad`` draw (float64, batch (2,), seed 0) again with one parameter at a
    time requiring grad: the same values, and the gradient it had with all of them (a model
    that learns the scale alone is the common case; a backend that took another path there
    was 2% off and passed every statistical check)."""
    if len(grads) < 2:
        return
    for name, want in grads.items():
        params = example_params(family, (2,), torch.float64)
        leaves = rsample_leaves(family, params, support.rsample_params)
        for other in leaves:
            if other != name:
                params[other] = params[other].detach()
        y = make(family, params, t).rsample(N, seed=0)
        if not _equal(y.detach(), x.detach()):
            _seeded(d, "rsample", 0, "rsample_grad")  # the seed first, if it is the cause
            raise CheckFailure(
                f"rsample({N}, seed=0) with only {name} requiring grad drew other values than "
                "with every parameter requiring grad: the seed must decide the values, "
                "whatever requires grad")
        if not y.requires_grad:
            raise CheckFailure(f"rsample() is detached when {name} alone requires grad")
        (got,) = torch.autograd.grad(y.sum(), leaves[name], allow_unused=True)
        if got is None:
            raise CheckFailure(f"rsample() carries no gradient to {name} when it alone "
                               "requires grad")
        err = ((got - want).abs() / (want.abs() + 1e-300)).nan_to_num(nan=math.inf)
        bad = ~torch.isclose(got, want, rtol=ONE_LEAF_RTOL, atol=1e-12)
        if bool(bad.any()):
            i = int((err * bad).flatten().argmax())
            raise CheckFailure(
                f"rsample()'s gradient w.r.t. {name} is {float(got.flatten()[i]):.10g} when "
                f"{name} alone requires grad and {float(want.flatten()[i]):.10g} when every "
                f"parameter does (element {i}, relative difference {float(err.flatten()[i]):.3g}"
                f" > {ONE_LEAF_RTOL:g}; same seed, same draw): a path taken when only some "
                "parameters require grad computes another gradient. Compute each parameter's "
                "gradient the same way whatever else requires grad")


def _grad_path_agrees(d: Any, x: torch.Tensor, leaves: dict[str, torch.Tensor],
                      grads: dict[str, torch.Tensor]) -> None:
    """``rsample(N, seed=0)`` (``x``, with ``grads`` of its sum) draws the same values under
    ``torch.no_grad()``; its gradients are the same when another ``rsample()`` comes between
    the draw and its backward pass (a noise buffer the next call overwrites), and an upstream
    gradient given as a non-contiguous tensor gives what its contiguous copy gives (a backward
    pass that reads it in memory order)."""
    with torch.no_grad():
        quiet = d.rsample(N, seed=0)
    if not _equal(x.detach(), quiet):
        raise CheckFailure(
            f"rsample({N}, seed=0) drew other values under torch.no_grad() than with "
            "gradients enabled: the seed must decide the values whatever the grad mode (is "
            "another sampler, or another stream, taken when no gradient is recorded?)")
    names = list(leaves)
    first = d.rsample(N, seed=0)
    d.rsample(N, seed=1)  # another draw before first's backward pass
    # (the graph kept: a distribution derives some parameters from the leaves at its
    # construction, Chi2's Gamma concentration, and every draw's graph shares that part)
    again = torch.autograd.grad(first.sum(), [leaves[k] for k in names], allow_unused=True,
                                retain_graph=True)
    for k, g in zip(names, again):
        if g is None or not _close(g, grads[k]):
            raise CheckFailure(
                f"rsample({N}, seed=0)'s gradient w.r.t. {k} changed when another rsample() "
                "came between the draw and its backward pass: the backward pass must use "
                "what its own draw kept (a noise buffer the next call overwrites?)")
    if x.dim() < 2:
        return
    w = torch.linspace(0.5, 2.0, x.numel(), dtype=x.dtype).reshape(x.shape)
    # the same values in another memory order: a transposed copy, transposed back
    w_strided = w.transpose(0, 1).contiguous().transpose(0, 1)
    want = torch.autograd.grad(x, [leaves[k] for k in names], grad_outputs=w,
                               allow_unused=True, retain_graph=True)
    got = torch.autograd.grad(x, [leaves[k] for k in names], grad_outputs=w_strided,
                              allow_unused=True, retain_graph=True)
    for k, g, h in zip(names, want, got):
        if g is not None and (h is None or not _close(h, g)):
            raise CheckFailure(
                f"rsample()'s gradient w.r.t. {k} differs when the upstream gradient is a "
                "non-contiguous tensor (a transposed view) from when it is its contiguous "
                "copy: the backward pass reads its incoming gradient in memory order? Index "
                "it by position (or call .contiguous() first)")


def _value_refilled(d: Any, x: torch.Tensor, got: torch.Tensor) -> None:
    """``log_prob`` of a value tensor refilled in place (an evaluation loop's
    ``buf.copy_(next_batch)``) scores the new values (a backend that memoized scores by the
    value's memory address returned the first batch's), and a value that requires grad scores
    as the same value that does not (a fused path for it was off by log(scale))."""
    other = d.sample(N, seed=2)
    if _equal(other, x):
        return
    buf = x.clone()
    first = d.log_prob(buf)
    if not _close(first, got):
        raise CheckFailure("log_prob of a copy of the values differs from log_prob of the "
                           "values themselves")
    buf.copy_(other)  # in place: same memory, new values
    if not _close(d.log_prob(buf), d.log_prob(other.clone())):
        raise CheckFailure(
            "log_prob of a value tensor refilled in place (copy_) gave other scores than "
            "log_prob of a new tensor holding the same values: the backend keyed a cache on "
            "the value's memory (data_ptr) and returned the earlier values' scores. Key "
            "nothing on memory addresses (the tensor's version counter changes in place)")
    if x.is_floating_point():
        with torch.enable_grad():
            xg = x.detach().clone().requires_grad_(True)
            scored = d.log_prob(xg)
        if not _close(scored.detach(), got.detach()):
            raise CheckFailure(
                "log_prob of values that require grad differs from log_prob of the same "
                f"values that do not (max difference "
                f"{float((scored.detach() - got.detach()).abs().max()):.3g}): the path for "
                "a value that requires grad (q.log_prob(q.rsample()) in an ELBO) computes "
                "another function")


def _head(x: torch.Tensor) -> str:
    v = x.detach().flatten()[:4].tolist()
    return f"{v}{'...' if x.numel() > 4 else ''}"


def _descent_tail(m: int, k: int) -> float:
    """P(|D - (m - 1)/2| >= |k - (m - 1)/2|) for the descents D of a uniformly random
    permutation of m elements (Eulerian numbers, exact)."""
    row = [1]
    for n in range(2, m + 1):
        row = [(j + 1) * (row[j] if j < len(row) else 0) + (n - j) * (row[j - 1] if j else 0)
               for j in range(n)]
    dev = abs(k - (m - 1) / 2)
    hit = sum(a for j, a in enumerate(row) if abs(j - (m - 1) / 2) >= dev)
    return hit / math.factorial(m)


#: The lower precisions a draw of each float dtype must not be confined to.
LOWER_PRECISIONS: dict[torch.dtype, tuple[torch.dtype, ...]] = {
    torch.float64: (torch.float32,),
    torch.float32: (torch.float16, torch.bfloat16),
}


def _full_precision(family: str, method: str, x: torch.Tensor) -> None:
    """Draws of a continuous family carry their dtype's precision: a float64 draw computed in
    float32 (or a float32 one in half precision) and cast up has the right dtype and the
    right law to the eye, and the resolution of the lower one. A value drawn at full
    precision is exactly representable in the lower one with probability about 2^-29
    (float64 in float32) or 2^-13 (float32 in float16); integer values (the constant zeros
    and ones of a Cholesky factor) are left out. The rule fails when more than half of the
    other values are."""
    if FAMILIES[family].kind != "continuous" or not x.is_floating_point():
        return
    v = x.flatten()
    v = v[torch.isfinite(v) & (v != torch.round(v))]
    if v.numel() < 8:
        return
    for low in LOWER_PRECISIONS.get(v.dtype, ()):
        exact = int((v.to(low).to(v.dtype) == v).sum())
        if exact > v.numel() // 2:
            raise CheckFailure(
                f"{method}() with {str(v.dtype).removeprefix('torch.')} parameters drew "
                f"{exact} of {v.numel()} non-integer values that are exactly "
                f"{str(low).removeprefix('torch.')} values: the draws were computed in "
                f"{str(low).removeprefix('torch.')} and cast up (about 1 in "
                f"{round(torch.finfo(low).eps / torch.finfo(v.dtype).eps):,} full-precision "
                "draws is one). Draw in the parameters' dtype")


#: Parameters that never set the batch shape: torch's Relaxed families take it from
#: ``probs``/``logits`` alone, and a ``temperature`` must broadcast to it.
_NOT_BATCHING = frozenset({"temperature"})


def _broadcast_value(d: Any, x: torch.Tensor, k: int) -> None:
    """``log_prob`` of a value that broadcasts against the batch (its batch dimension of size
    1: the first element's draws) must equal ``log_prob`` of that value expanded to the
    batch's shape: every batch element scored with its own parameters. A backend that scored
    a broadcasting value with one element's parameters for all passed every check, which
    score values of the full shape."""
    v = x.narrow(k, 0, 1)
    full = v.expand(x.shape)
    try:
        got, want = d.log_prob(v), d.log_prob(full.contiguous())
    except (ValueError, RuntimeError) as exc:  # a value outside another element's support
        if "support" in str(exc).lower():
            return
        raise
    if got.shape != want.shape:
        raise CheckFailure(
            f"log_prob of a value of shape {tuple(v.shape)}, which broadcasts against the batch "
            f"{tuple(d.batch_shape)}, has shape {tuple(got.shape)}; the value expanded to "
            f"{tuple(full.shape)} scores with shape {tuple(want.shape)}: broadcast the value "
            "with the batch as torch does")
    if not _close(got, want):
        bad = ~torch.isclose(got, want, equal_nan=True)
        i = tuple(int(j) for j in bad.nonzero()[0]) if bad.any() else ()
        raise CheckFailure(
            f"log_prob of a value of shape {tuple(v.shape)}, which broadcasts against the batch "
            f"{tuple(d.batch_shape)}, differs from log_prob of the same value expanded to "
            f"{tuple(full.shape)}: {float(got[i]):.6g} against {float(want[i]):.6g} at index "
            f"{list(i)}. Score every batch element with its own parameters (broadcast the value "
            "with the batch, as torch does)")
    if FAMILIES[d._ps_family].kind != "continuous" or not x.is_floating_point():
        return
    # ... and so must its gradient in the value: the broadcast value's is the sum over the
    # batch of the expanded value's (one divided by the batch size passed: an outside trial)
    leaf = v.detach().clone().requires_grad_(True)
    leaf2 = v.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        g = torch.autograd.grad(d.log_prob(leaf).sum(), leaf, allow_unused=True)[0]
        g2 = torch.autograd.grad(d.log_prob(leaf2.expand(x.shape).contiguous()).sum(), leaf2,
                                 allow_unused=True)[0]
    if g2 is not None and (g is None or not _close(g, g2)):
        raise CheckFailure(
            f"log_prob of a value of shape {tuple(v.shape)}, which broadcasts against the batch "
            f"{tuple(d.batch_shape)}, scores as the expanded value, but its gradient in the "
            f"value differs: {None if g is None else g.flatten()[:3].tolist()} against "
            f"{g2.flatten()[:3].tolist()} (the sum over the batch of the expanded value's). "
            "Broadcast the value with torch operations, so that autograd sums its gradient")


def _batching(family: str, params: dict[str, Any]) -> list[str]:
    """The parameters of the ``(2, 3)`` example batch that set the batch shape."""
    return [k for k, v in params.items()
            if isinstance(v, torch.Tensor) and v.dim() == 2 and k not in _NOT_BATCHING]


def _broadcastable(family: str) -> bool:
    """Univariate families with two batched parameters (one can be (2, 1), another (3,))."""
    return FAMILIES[family].univariate and len(
        _batching(family, example_params(family, (2, 3)))) >= 2


def _unbatched_parameters(t: Target, family: str, support: FamilySupport,
                          methods: tuple[str, ...]) -> list[str]:
    """Each parameter of the ``(2, 3)`` example batch given without its batch dimensions (a
    Python number, one vector or matrix for the whole batch) while the others keep them: torch
    keeps such a parameter unbatched (a ``df`` of 0 dimensions beside a batch of covariance
    matrices), and a backend that reads every parameter per batch element failed there, in
    ``sample`` and ``log_prob``. Parameter points torch itself refuses are left out."""
    params = example_params(family, (2, 3))
    lead = [k for k, v in params.items()
            if isinstance(v, torch.Tensor) and tuple(v.shape[:2]) == (2, 3)]
    if len(lead) < 2:
        return []
    tried = []
    for name in lead:
        if all(k in _NOT_BATCHING for k in lead if k != name):
            continue  # a temperature does not set the batch shape (torch's Relaxed* laws)
        p = dict(params)
        one = params[name][0, 0].clone()
        # A Python number where the parameter has no event dimensions: torch keeps some as
        # given (Wishart's df), where a 0-d tensor would be broadcast.
        p[name] = float(one) if one.dim() == 0 else one
        try:
            getattr(td, family)(**p, validate_args=True)
        except ValueError:
            continue  # e.g. one Uniform low above some of the highs
        d = make(family, p, t)
        want = N_WIDE + (2, 3) + tuple(d.event_shape)
        given = f"{name} = {p[name]!r} (a Python number)" if one.dim() == 0 else \
            f"{name} of shape {tuple(one.shape)} (no batch dimensions)"
        given += " beside the other parameters' batch (2, 3)"
        x = None
        for m in methods:
            x = getattr(d, m)(N_WIDE, seed=3)
            if x.shape != want:
                raise CheckFailure(f"{m}({N_WIDE}) with {given} returned shape "
                                   f"{tuple(x.shape)}; expected {want}. A parameter without "
                                   "batch dimensions broadcasts against the others, as in torch")
        if support.log_prob and x is not None:
            lp = d.log_prob(x.detach())
            if lp.shape != N_WIDE + (2, 3):
                raise CheckFailure(f"log_prob() of a {want} draw with {given} returned shape "
                                   f"{tuple(lp.shape)}; expected {N_WIDE + (2, 3)}")
        if support.rsample:
            _unbatched_gradients(t, family, support, p, params, name, given)
        tried.append(name)
    return [f"each of {', '.join(tried)} without batch dimensions"] if tried else []


def _unbatched_gradients(t: Target, family: str, support: FamilySupport, p: dict[str, Any],
                         params: dict[str, Any], name: str, given: str) -> None:
    """``rsample()`` with parameter ``name`` unbatched (``p``) has, in the other parameters,
    the gradient it has with ``name`` expanded to the batch (a backend whose ``scale``
    gradient was 10% off beside a Python-number ``loc`` drew the right values and passed: an
    outside trial). Compared where the two draws' values agree."""
    full = dict(params)
    one = torch.as_tensor(p[name], dtype=params[name].dtype)
    full[name] = one.expand(params[name].shape).clone()  # the same values, batched
    names = [k for k in rsample_leaves(family, dict(params), support.rsample_params)
             if k != name]
    if not names:
        return
    xs, gs = [], []
    for case in (p, full):
        leaves = {k: params[k].detach().clone().requires_grad_(True) for k in names}
        with torch.enable_grad():
            x = make(family, {**case, **leaves}, t).rsample(N_WIDE, seed=3)
            w = torch.randn(x.shape, generator=torch.Generator().manual_seed(3),
                            dtype=torch.float64).to(x.dtype)
            gs.append(torch.autograd.grad((w * x).sum(), [leaves[k] for k in names],
                                          allow_unused=True))
        xs.append(x.detach())
    if not _close(xs[0], xs[1]):
        return
    for k, g, want in zip(names, *gs):
        if (g is None) != (want is None) or (g is not None and not _close(g, want)):
            raise CheckFailure(
                f"rsample({N_WIDE}) with {given} drew the values it draws with {name} "
                f"expanded to the batch, but its gradient in {k} differs: "
                f"{None if g is None else g.flatten()[:3].tolist()} against "
                f"{None if want is None else want.flatten()[:3].tolist()} (the same seed and "
                "weights). A parameter's gradient does not depend on how another is given")


#: ``seeds_process``: the seed drawn with, and how long the other process may take (it imports
#: the backend's libraries and loads or compiles its programs).
PROCESS_SEED = 7
PROCESS_TIMEOUT = 600


def _process_family(t: Target) -> str:
    """The family ``seeds_process`` draws on ``t``: Normal where the backend has it."""
    families = t.families()
    return "Normal" if "Normal" in families else min(families)


class _OtherProcess:
    """The Python process ``seeds_process`` draws in (``python -m
    polysample.conformance._process_draw``), started on first use with a random hash seed and
    this process's ``sys.path``, and kept for the next backend: a new interpreter costs 3 s
    (torch's import) and up to 10 s (TensorFlow's), a request a few milliseconds once its
    backend is loaded there. A change of ``sys.path``, of the interpreter or of a
    ``POLYSAMPLE_*`` variable starts a new one; so does a request that fails or times out."""

    def __init__(self) -> None:
        self.proc: Any = None
        self.key: Any = None
        self.lock = threading.Lock()

    def _start(self, key: Any) -> None:
        import os
        import subprocess

        self.close()
        env = dict(os.environ, PYTHONHASHSEED="random",
                   PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "polysample.conformance._process_draw"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
        self.key = key

    def close(self) -> None:
        """End the process and close both pipes (a pipe left to the garbage collector warns
        with a ResourceWarning, inside whichever check is running then)."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        with contextlib.suppress(Exception):
            proc.stdin.close()
        with contextlib.suppress(Exception):
            proc.wait(timeout=5)
        if proc.poll() is None:
            proc.kill()
            with contextlib.suppress(Exception):
                proc.wait(timeout=5)
        with contextlib.suppress(Exception):
            proc.stdout.close()

    def request(self, payload: bytes, timeout: float) -> Any:
        """The answer to ``payload`` (see :mod:`.._process_draw`); TimeoutError past
        ``timeout`` seconds, EOFError where the process ended without one."""
        import os

        from .._process_draw import read_message, write_message

        key = (sys.executable, tuple(sys.path),
               tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith("POLYSAMPLE"))))
        with self.lock:
            if self.proc is None or self.proc.poll() is not None or self.key != key:
                self._start(key)
            proc = self.proc
            answer: list[Any] = []

            def talk() -> None:
                try:
                    write_message(proc.stdin, payload)
                    answer.append(read_message(proc.stdout))
                except (EOFError, OSError) as exc:
                    answer.append(exc)

            worker = threading.Thread(target=talk, daemon=True)
            worker.start()
            worker.join(timeout)
            if not answer:
                self.close()
                raise TimeoutError
            if isinstance(answer[0], Exception) or answer[0][0] != "ok":
                self.close()  # the next request starts afresh
            if isinstance(answer[0], Exception):
                raise EOFError(str(answer[0]))
            return answer[0]


_OTHER = _OtherProcess()
atexit.register(_OTHER.close)


def _seeds_in_another_process(t: Target, family: str, support: FamilySupport) -> Outcome:
    """The same seed gives the same values in another Python process (DESIGN 6: same backend,
    same seed, same arguments, identical values). Every other rule draws in one process: a
    backend that mixed Python's ``hash()`` into its seeds (a per-process salt for strings)
    passed them all (an outside trial). The backend object is pickled to another interpreter
    (:class:`_OtherProcess`: its own random hash seed, this process's ``sys.path``), which
    draws the example distribution with the seed by each method; a backend that cannot be
    pickled or rebuilt there is not judged (skipped, with the reason)."""
    methods = ("sample", "rsample") if support.rsample else ("sample",)
    d = make(family, example_params(family, (2,)), t)
    here = {m: getattr(d, m)(N, seed=PROCESS_SEED).detach().cpu() for m in methods}
    try:
        payload = pickle.dumps((t, family, N, PROCESS_SEED, methods))
    except Exception as exc:  # noqa: BLE001 - whatever stops pickling, the rule cannot run
        raise Skip(f"the backend object cannot be pickled ({type(exc).__name__}: {exc}): "
                   "not judged in another process") from None
    try:
        answer = _OTHER.request(payload, PROCESS_TIMEOUT)
    except TimeoutError:
        raise CheckFailure(f"drawing sample({N}, seed={PROCESS_SEED}) in another process took "
                           f"more than {PROCESS_TIMEOUT} s") from None
    except EOFError as exc:
        raise Skip(f"the other process ended without an answer ({exc}): not judged") from None
    if answer[0] != "ok":
        _, loaded, message = answer
        if not loaded:
            raise Skip(f"the backend could not be rebuilt in another process ({message}): not "
                       "judged there")
        raise CheckFailure(f"drawing sample({N}, seed={PROCESS_SEED}) in another process "
                           f"failed: {message}")
    there = answer[1]
    for m in methods:
        if not _equal(here[m], there[m]):
            raise CheckFailure(
                f"{m}({N}, seed={PROCESS_SEED}) drew other values in another Python process "
                f"({_head(there[m])} there, {_head(here[m])} here): the same backend, seed "
                "and arguments must give the same values in every process. Derive the "
                "stream from the seed alone: not from hash() (salted per process), id(), "
                "the time or the process id")
    return Outcome(f"{' and '.join(f'{m}()' for m in methods)} with seed={PROCESS_SEED}: "
                   "the same values in another Python process (another hash seed)")


#: ``fork_streams``: the values each process draws, and how long a forked child may take (it
#: draws with what the parent has loaded: milliseconds, unless its libraries hang after
#: ``fork``, as JAX's and TensorFlow's threads do).
FORK_N = (64,)
FORK_TIMEOUT = 30.0


def _draw_in_fork(d: Any, timeout: float) -> tuple[str, Any]:
    """``d.sample(FORK_N)`` in a child forked from this process, unseeded: ``("ok", values)``,
    ``("error", (type name, message, is a polysample error))`` or ``("timeout", None)``."""
    import os
    import select

    sys.stdout.flush()
    sys.stderr.flush()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: draw, answer, and leave without the parent's exit handlers
        code = 0
        try:
            os.close(r)
            try:
                answer: Any = ("ok", d.sample(FORK_N).detach().cpu().numpy())
            except BaseException as exc:  # noqa: BLE001 - the parent reports what it was
                from ...core.errors import PolysampleError

                answer = ("error", (type(exc).__name__, str(exc)[:500],
                                    isinstance(exc, PolysampleError)))
            with os.fdopen(w, "wb") as out:
                out.write(pickle.dumps(answer))
        except BaseException:  # noqa: BLE001 - nothing may escape a forked child
            code = 1
        finally:
            os._exit(code)
    os.close(w)
    chunks: list[bytes] = []
    try:
        with os.fdopen(r, "rb") as inp:
            end = time.monotonic() + timeout
            while True:
                left = end - time.monotonic()
                if left <= 0 or not select.select([inp], [], [], left)[0]:
                    return ("timeout", None)
                chunk = os.read(inp.fileno(), 1 << 16)
                if not chunk:
                    break
                chunks.append(chunk)
    finally:
        with contextlib.suppress(OSError):
            if os.waitpid(pid, os.WNOHANG) == (0, 0):  # still running: a hung child
                os.kill(pid, 9)
                os.waitpid(pid, 0)
    if not chunks:
        return ("error", ("no answer", "the forked child ended without one", False))
    return pickle.loads(b"".join(chunks))  # type: ignore[no-any-return]


def _fork_streams(t: Target, family: str, support: FamilySupport) -> Outcome:
    """Processes forked from one parent (a ``multiprocessing`` child, a PyTorch
    ``DataLoader`` worker) do not repeat each other's unseeded draws, nor the parent's (DESIGN
    6). ``fork`` copies the parent's memory, a backend's own generator with it: a backend that
    keeps its global stream in a generator of its own, not re-derived in a forked child,
    passed every other rule (an outside trial). Two children forked after the parent's first
    unseeded draw each draw ``sample(FORK_N)`` unseeded, and so does the parent after them.
    A backend that refuses to draw in a forked child with a polysample error (the TFP
    backends: JAX and TensorFlow do not survive ``fork``) is not judged, nor one whose child
    does not answer within ``FORK_TIMEOUT`` seconds."""
    import os

    import polysample

    if not hasattr(os, "fork") or sys.platform == "win32":
        raise Skip("no os.fork on this platform: not judged")
    params = example_params(family, (2,))
    d = make(family, params, t)
    with preserved_global_seed():
        polysample.manual_seed(2468)
        d.sample(FORK_N)  # the parent's stream in use before the fork
        answers = [_draw_in_fork(d, FORK_TIMEOUT) for _ in range(2)]
        parent = d.sample(FORK_N).detach().cpu()
    for kind, what in answers:
        if kind == "timeout":
            raise Skip(f"a forked child did not draw within {FORK_TIMEOUT:g} s (libraries "
                       "whose threads do not survive fork hang there): not judged. Raise a "
                       "polysample error in a forked child instead of hanging")
        if kind == "error":
            kind_name, message, ours = what
            if ours:
                raise Skip(f"the backend refuses to draw in a forked child ({kind_name}: "
                           f"{message}): not judged")
            raise CheckFailure(f"sample({FORK_N}) in a forked child raised {kind_name}: "
                               f"{message}. A backend that cannot draw after fork raises a "
                               "polysample error (BackendUnavailableError) saying so")
    first, second = (torch.from_numpy(np.asarray(a[1])) for a in answers)
    chance = _equal_by_chance(family, params, parent)
    pairs = (("the two forked children", first, second), ("a forked child and its parent",
                                                          first, parent),
             ("a forked child and its parent", second, parent))
    for who, a, b in pairs:
        if _equal(a.to(b.dtype), b) and chance < ALPHA_REPEAT:
            raise CheckFailure(
                f"{who} drew the same unseeded values ({_head(a)}): fork copies the "
                "parent's memory, a generator of the backend's own with it. Re-derive the "
                "global stream in a forked child (polysample.plugin.GlobalStream does; or "
                "os.register_at_fork), as the built-in backends do (docs/seeds.md)")
    return Outcome(f"sample({FORK_N}) unseeded in two forked children and in their parent: "
                   "three different draws")


def checks(t: Target, family: str, support: FamilySupport) -> Iterator[Check]:
    name = t.name

    def check(rule: str, fn: Callable[[Runner], Outcome]) -> Check:
        return Check(name, family, "example", rule, "semantics", False, fn)

    def shapes(r: Runner) -> Outcome:
        for sample_shape, batch in SHAPE_CASES:
            d, _ = _dist(t, family, support, batch)
            if tuple(d.batch_shape) != batch:
                raise CheckFailure(f"batch_shape {tuple(d.batch_shape)}, expected {batch}")
            want = torch.Size(sample_shape) + d.batch_shape + d.event_shape
            methods = ("sample", "rsample") if support.rsample else ("sample",)
            for m in methods:
                try:
                    x = getattr(d, m)(sample_shape, seed=0)
                except BackendContractError as exc:  # name the call that broke the contract
                    raise CheckFailure(f"{m}({sample_shape}) with batch_shape {batch}: "
                                       f"BackendContractError: {for_author(exc)}") from exc
                if x.shape != want:
                    raise CheckFailure(f"{m}({sample_shape}) with batch_shape {batch} returned "
                                       f"shape {tuple(x.shape)}; expected {tuple(want)}")
                outside = outside_support(d, x.detach())
                if outside:
                    raise CheckFailure(f"{m}({sample_shape}) with batch_shape {batch} "
                                       f"returned {outside}")
        done = "sample_shape + batch_shape + event_shape, values in the support"
        # The corners grid's extreme parameters in a small call leave the caller's tensors as
        # they were (a Dirichlet that clamped small concentrations in place through NumPy, in
        # calls below 4,096 values only, passed: the sampler layer draws corners in large
        # calls, the small calls of every rule use moderate parameters). Its values are judged
        # by the sampler layer.
        corners = next((g for g in grids(family) if g.label == "corners"), None)
        if corners is not None:
            params = corners.build(torch.float64)
            given = _copies(params)
            dc = make(family, params, t)
            # at most 64 values: the size class of the other rules' draws
            rows = (max(1, 64 // max(1, math.prod(dc.batch_shape))),)
            for m in methods:
                getattr(dc, m)(rows, seed=0)
                _inputs_intact(f"{m}({rows}) at the corners grid", params, given)
            done += "; the corners grid's parameters intact after a small call"
        if not d.event_shape:
            return Outcome(done)
        # The smallest event (a Dirichlet of one category, a 1x1 Wishart): a valid
        # distribution that samplers written for k >= 2 refuse (TFP's Dirichlet did).
        k = SMALLEST_EVENT.get(family, 1)
        d = make(family, example_params(family, (2,), torch.float32, k), t)
        want = torch.Size((3,)) + d.batch_shape + d.event_shape
        for m in methods:
            x = getattr(d, m)((3,), seed=0)
            outside = outside_support(d, x.detach()) if x.shape == want else ""
            if x.shape != want or outside:
                raise CheckFailure(
                    f"{m}((3,)) at the smallest event size (k = {k}, event_shape "
                    f"{tuple(d.event_shape)}) returned shape {tuple(x.shape)} (expected "
                    f"{tuple(want)}), " + (outside or f"values {x.flatten()[:6].tolist()}"))
        return Outcome(f"{done}; also at event size k = {k} (event_shape {tuple(d.event_shape)})")

    yield check("shapes", shapes)

    def broadcast(r: Runner) -> Outcome:
        methods = ("sample", "rsample") if support.rsample else ("sample",)
        done = []
        if _broadcastable(family):
            params = example_params(family, (2, 3))
            first, second = _batching(family, params)[:2]
            params[first] = params[first][:, :1].clone()   # shape (2, 1)
            params[second] = params[second][0].clone()     # shape (3,)
            d = make(family, params, t)
            for m in methods:
                x = getattr(d, m)(N_WIDE, seed=1)
                if x.shape != N_WIDE + (2, 3):
                    raise CheckFailure(f"{m}() with {first} of shape (2, 1) and {second} of "
                                       f"shape (3,) returned shape {tuple(x.shape)}; expected "
                                       f"{N_WIDE + (2, 3)}")
            done.append(f"{first} (2, 1) and {second} (3,) broadcast to (2, 3)")
        done.extend(_unbatched_parameters(t, family, support, methods))
        # One parameter point expanded over a batch: every batch element is its own draw
        # (a noise drawn without the batch dimensions and broadcast would repeat one column).
        # Also with a sample dimension of size 1 and with four sample dimensions (a backend
        # that shared one noise across the batch there, or repeated values along the last of
        # four sample dimensions, passed: an outside trial); a continuous family's draws
        # along the sample dimensions are distinct too.
        d0 = make(family, example_params(family, ()), t).expand((2, 3))
        continuous = FAMILIES[family].kind == "continuous"
        for m in methods:
            for shape in INDEPENDENT_SHAPES:
                x = getattr(d0, m)(shape, seed=2).detach()
                rows = math.prod(shape)
                cols = x.reshape(rows, 6, -1).transpose(0, 1).reshape(6, -1)
                distinct = len({tuple(c.tolist()) for c in cols})
                need = 6 if continuous else 2
                if distinct < need:
                    raise CheckFailure(
                        f"{m}({shape}) of one parameter point expanded to batch_shape (2, 3) "
                        f"gave only {distinct} distinct batch elements over {rows} draws: "
                        "batch elements must be drawn independently (is the noise missing "
                        "the batch dimensions?)")
                per = x.reshape(rows, 6, -1)
                same = min(len({tuple(v.tolist()) for v in per[:, j]}) for j in range(6))
                if continuous and same < rows:
                    raise CheckFailure(
                        f"{m}({shape}) of one parameter point expanded to batch_shape (2, 3) "
                        f"repeated values along the sample dimensions: a batch element has "
                        f"only {same} distinct values in {rows} draws of a continuous law "
                        "(every position of the sample shape is its own draw)")
        done.append("batch elements and sample positions drawn independently (sample shapes "
                    + ", ".join(str(s) for s in INDEPENDENT_SHAPES) + ")")
        return Outcome("; ".join(done))

    yield check("broadcast", broadcast)

    def dtypes(r: Runner) -> Outcome:
        for dtype in (torch.float32, torch.float64):
            d, _ = _dist(t, family, support, (2,), dtype)
            want = _expected_dtype(family, dtype)
            methods = ("sample", "rsample") if support.rsample else ("sample",)
            for m in methods:
                x = getattr(d, m)(N, seed=0)
                if x.dtype != want or x.device != torch.device("cpu"):
                    raise CheckFailure(f"{m}() with {dtype} parameters returned dtype "
                                       f"{x.dtype} on {x.device}; expected {want} on cpu")
                _full_precision(family, m, x.detach())
            lp = d.log_prob(x)
            if lp.dtype != dtype:
                raise CheckFailure(f"log_prob() with {dtype} parameters (and values drawn from "
                                   f"them) returned dtype {lp.dtype}; expected {dtype}, as "
                                   f"torch.distributions.{family} returns")
        done = ("dtype and device of draws and log_prob follow the parameters (float32, "
                "float64); draws carry their dtype's precision")
        if {"loc", "scale"} <= CASES[family].pathwise and family not in _LOG_LOC:
            # A location far from 0 in units of the scale, in float64: a backend that drew
            # in float32 there returned one value for every draw (an outside trial; the grids
            # reach |loc| / scale = 1000, where float32 still resolves the noise)
            pf = example_params(family, (), torch.float64)
            pf["loc"] = torch.tensor(FAR_LOC, dtype=torch.float64)
            pf["scale"] = torch.tensor(FAR_SCALE, dtype=torch.float64)
            far = make(family, pf, t)
            for m in ("sample", "rsample") if support.rsample else ("sample",):
                x = getattr(far, m)(FAR_SHAPE, seed=0).detach()
                distinct = int(torch.unique(x).numel())
                if distinct < FAR_SHAPE[0] * 3 // 4:
                    raise CheckFailure(
                        f"{m}({FAR_SHAPE}) at loc = {FAR_LOC:g}, scale = {FAR_SCALE:g} "
                        f"(float64) drew {distinct} distinct values of {FAR_SHAPE[0]} (e.g. "
                        f"{x[:3].tolist()}): the noise is lost at a location far from 0 in "
                        "units of the scale (computed in float32?). Compute loc + scale * "
                        "noise in the parameters' dtype")
            done += (f"; distinct draws at loc = {FAR_LOC:g}, scale = {FAR_SCALE:g}")
        return Outcome(done)

    yield check("dtype", dtypes)

    def no_grad(r: Runner) -> Outcome:
        d, leaves = _dist(t, family, support, grad=True)
        x = d.sample(N, seed=2)
        if x.requires_grad or x.grad_fn is not None:
            raise CheckFailure(f"sample() tracks gradients although it must not (parameters "
                               f"{sorted(leaves)} require grad)")
        return Outcome("sample() never requires grad")

    yield check("sample_no_grad", no_grad)

    if support.rsample:
        def rsample_grad(r: Runner) -> Outcome:
            d, leaves = _dist(t, family, support, (2,), torch.float64, grad=True)
            if not leaves:
                raise Skip("no parameter with a pathwise gradient")
            x = d.rsample(N, seed=0)
            if not x.requires_grad:
                raise CheckFailure(f"rsample() is detached although {sorted(leaves)} require "
                                   "grad")
            grads = torch.autograd.grad(x.sum(), list(leaves.values()), allow_unused=True,
                                        retain_graph=True)
            for k, g in zip(leaves, grads):
                if g is None:
                    raise CheckFailure(f"rsample() carries no gradient to {k}")
                if g.shape != leaves[k].shape:
                    raise CheckFailure(f"the gradient w.r.t. {k} has shape {tuple(g.shape)}; "
                                       f"expected {tuple(leaves[k].shape)}")
                if not torch.isfinite(g).all():
                    raise CheckFailure(f"rsample() gives non-finite gradients w.r.t. {k}")
            _one_leaf_at_a_time(t, family, support, d, x, dict(zip(leaves, grads)))
            _grad_path_agrees(d, x, leaves, dict(zip(leaves, grads)))
            nan_cotangent(x, leaves, f"rsample({tuple(N)})")
            expanded = _expanded_leaves(t, family, support)
            return Outcome(f"rsample() differentiable in {sorted(leaves)}; a NaN upstream "
                           "gradient comes back NaN; the same values under no_grad; the same "
                           "gradients after another draw and with a non-contiguous upstream "
                           "gradient" + (
                               f"; {', '.join(expanded)} expanded from one leaf get the "
                               "gradient a contiguous leaf gets" if expanded else "")
                           + ("; each parameter alone requiring grad gets the same gradient"
                              if len(leaves) > 1 else ""))

        yield check("rsample_grad", rsample_grad)

        tiny = sorted(CASES[family].tiny) if family in CASES else []
        if tiny:
            def rsample_near_zero(r: Runner) -> Outcome:
                for name in tiny:
                    for dtype in (torch.float32, torch.float64):
                        _near_zero(t, family, support, name, dtype)
                return Outcome(f"rsample() at {', '.join(tiny)} = {NEAR_ZERO:g} (float32 and "
                               "float64): finite values, no NaN gradient, parameters unchanged")

            yield check("rsample_near_zero", rsample_near_zero)
    else:
        def rsample_raises(r: Runner) -> Outcome:
            d, _ = _dist(t, family, support)
            try:
                d.rsample(N)
            except NotReparameterizableError as exc:
                if not isinstance(exc, NotImplementedError) or "sample()" not in str(exc):
                    raise CheckFailure("rsample() raised NotReparameterizableError without "
                                       "naming the alternatives (sample() with log_prob())"
                                       ) from None
                return Outcome("rsample() raises NotReparameterizableError naming sample()")
            raise CheckFailure("rsample() did not raise NotReparameterizableError although the "
                               "backend does not claim rsample for this family")

        yield check("rsample_raises", rsample_raises)

    def has_rsample(r: Runner) -> Outcome:
        d, _ = _dist(t, family, support)
        if d.has_rsample is not support.rsample:
            raise CheckFailure(f"has_rsample is {d.has_rsample!r}; the backend claims "
                               f"rsample={support.rsample}")
        return Outcome(f"has_rsample is {support.rsample}")

    yield check("has_rsample", has_rsample)

    def seeds(r: Runner) -> Outcome:
        params = example_params(family, (2,))
        given = _copies(params)
        d = make(family, params, t)
        a = d.sample(N, seed=7)
        kept = a.clone()
        # a write into the parameters changes the next call's values: name it, not the seed
        _inputs_intact(f"sample({N}, seed=7)", params, given)
        again = d.sample(N, seed=7)
        if not _equal(a, again):
            raise CheckFailure("sample(): the same seed gave different values")
        if not _equal(a, d.sample(N, seed=np.random.SeedSequence(7))):
            raise CheckFailure("sample(): seed=7 and seed=SeedSequence(7) gave different values")
        b = d.sample(N, seed=8)
        _kept_intact("sample()", a, kept)
        _new_memory(f"sample({N}, seed=7)", a, again)  # (a reused buffer is named above)
        if _equal(a, b):
            raise CheckFailure("sample(): seeds 7 and 8 gave identical values")
        for power in (32, 64):  # seeds that differ only above 32 or 64 bits
            if _equal(a, d.sample(N, seed=7 + 2**power)):
                raise CheckFailure(
                    f"sample(): seeds 7 and 7 + 2^{power} gave identical values: the seed is "
                    f"cut to {power} bits. Derive the stream from the whole seed (the "
                    "SeedSequence the backend receives: its generate_state(), or spawn()).")
        for bit in SEED_BITS:  # seeds one bit apart (a backend that dropped bit 4 passed)
            if _equal(a, d.sample(N, seed=7 ^ (1 << bit))):
                raise CheckFailure(
                    f"sample(): seeds 7 and {7 ^ (1 << bit)} (7 with bit {bit} flipped) gave "
                    "identical values: a bit of the seed is lost. Derive the stream from the "
                    "whole seed (the SeedSequence the backend receives).")
        zero = d.sample(N, seed=0)
        if not _equal(zero, d.sample(N, seed=0)):
            raise CheckFailure(
                "sample(): seed=0 gave different values twice: 0 is a seed like any other "
                "(a test `if seed:` reads it as no seed; use `if seed is not None:`).")
        if _equal(zero, a):
            raise CheckFailure("sample(): seeds 0 and 7 gave identical values")
        kids = np.random.SeedSequence(7).spawn(2)
        k0 = d.sample(N, seed=kids[0])
        for what, other in (("SeedSequence(7)", a),
                            ("its other child", d.sample(N, seed=kids[1]))):
            if _equal(k0, other):
                raise CheckFailure(
                    f"sample(): a child of SeedSequence(7) (spawn_key (0,), from spawn()) and "
                    f"{what} gave identical values: the seed's spawn_key is ignored. Derive "
                    "the stream from the whole SeedSequence the backend receives (its "
                    "generate_state() mixes in the spawn_key); polysample draws a mixture's "
                    "component index and its components with two children of one seed.")
        _streams_apart(t, family)
        # ... and two children of one SeedSequence (an odd child that mirrored its sibling
        # passed: spawned children were only required to differ; an outside trial)
        _streams_apart(t, family, tuple(np.random.SeedSequence(7).spawn(2)),  # type: ignore[arg-type]
                       ("child 0 of SeedSequence(7)", "child 1"))
        _seed_set_apart(d)
        _after_update(t, family, params, d)
        given = _copies(params)
        # the same parameters requiring grad: sample() draws the same values
        pg = {k: v.detach().clone().requires_grad_(True)
              if isinstance(v, torch.Tensor) and v.is_floating_point() else v
              for k, v in params.items()}
        if not _equal(a, make(family, pg, t).sample(N, seed=7)):
            raise CheckFailure(
                f"sample({N}, seed=7) drew other values when the parameters require grad than "
                "when they do not: the seed must decide the values, whatever requires grad "
                "(is the seed dropped, or another stream taken, on a path for parameters that "
                "require grad?)")
        point = example_params(family, ())
        small = make(family, point, t).expand((SMALL_BATCH,))
        for m in ("sample", "rsample") if support.rsample else ("sample",):
            _batch_apart(family, f"{m}({N}, seed=7)", point,
                         getattr(small, m)(N, seed=7))
        if support.rsample:
            ra = d.rsample(N, seed=7)
            kept = ra.detach().clone()
            _inputs_intact(f"rsample({N}, seed=7)", params, given)
            rb = d.rsample(N, seed=7)
            if not _equal(ra, rb):
                raise CheckFailure("rsample(): the same seed gave different values")
            d.rsample(N, seed=8)
            _kept_intact("rsample()", ra, kept)
            _new_memory(f"rsample({N}, seed=7)", ra, rb)
        _inputs_intact("sample() and rsample()", params, given)
        methods = ("sample", "rsample") if support.rsample else ("sample",)
        calls = _seed_calls(family)
        for shape, batch, dtype in calls:
            large = (shape, batch, dtype) == calls[-1]
            pe = example_params(family, batch, dtype)
            kept_e = _copies(pe)
            e = make(family, pe, t)
            call = f"({shape}) with batch_shape {batch}" + (
                f" in {str(dtype).removeprefix('torch.')}" if dtype != torch.float32 else "")
            for m in methods:
                first = getattr(e, m)(shape, seed=7).detach()
                # a write into the parameters (in large calls only, say) changes the next
                # call's values: name it, not the seed
                _inputs_intact(f"{m}{call}", pe, kept_e)
                if not _equal(first, getattr(e, m)(shape, seed=7).detach()):
                    raise CheckFailure(f"{m}{call}: the same seed gave different values (with "
                                       f"sample_shape {N} and batch_shape (2,) it did not): "
                                       "honour the seed in every call (a fast path for "
                                       "large calls or scalar parameters included)")
                if m == "sample":
                    _repeated_within(family, call, first)
                if m != "sample" or first.numel() < 32:
                    continue
                for near in NEAR_SEEDS if large else (8,):
                    other = e.sample(shape, seed=near)
                    if _equal(first, other):
                        raise CheckFailure(f"sample{call}: seeds 7 and {near} gave identical "
                                           "values (are low bits of the seed dropped?): derive "
                                           "the stream from the whole seed")
                    if large:
                        _shared_values(family, call, first, near, other)
        return Outcome("same seed => identical values (also with parameters that require "
                       "grad); another seed => different values "
                       "(no overlapping streams), the elements of a small batch apart, also "
                       "without a batch, for one value, for "
                       f"a 3-d sample shape and for {LARGE_SEED_VALUES:,} values (where seeds "
                       f"{' and '.join(map(str, NEAR_SEEDS))} differ from seed 7 and, for a "
                       "continuous family, share almost none of its values); "
                       "a later call leaves earlier results unchanged; parameters unchanged")

    yield check("seeds", seeds)

    if family == _process_family(t):
        def seeds_process(r: Runner) -> Outcome:
            return _seeds_in_another_process(t, family, support)

        yield check("seeds_process", seeds_process)

        def fork_streams(r: Runner) -> Outcome:
            return _fork_streams(t, family, support)

        yield check("fork_streams", fork_streams)

    def global_stream(r: Runner) -> Outcome:
        import polysample

        params = example_params(family, (2,))
        given = _copies(params)
        d = make(family, params, t)
        methods = ("sample", "rsample") if support.rsample else ("sample",)
        # A seeded or generator= draw uses its own stream and leaves the global one untouched
        # (docs/seeds.md: after manual_seed, a seeded draw in between does not change the
        # unseeded draws). A backend that took a key, a warm-up value or a split from the
        # global stream for a seeded draw passed the replay test, which draws no seeded value.
        seeded = [(m, {"seed": 5}, "seed=5") for m in methods] + [
            (m, {"generator": torch.Generator().manual_seed(5)},
             "generator=torch.Generator().manual_seed(5)") for m in methods]
        after = []
        with preserved_global_seed():
            polysample.manual_seed(1234)
            a = d.sample(N)
            kept = a.clone()
            b = d.sample(N)
            aliased = not _equal(a, kept)  # b was written into a's memory: a reused buffer
            polysample.manual_seed(1234)
            c = d.sample(N)
            # The same two calls, each in a thread of its own, one after the other: the
            # global stream is one per process, shared by its threads (docs/seeds.md). A
            # backend whose threads each built their own stream from the root passed.
            polysample.manual_seed(1234)
            threaded = [_in_thread(lambda: d.sample(N)) for _ in range(2)]
            if support.rsample:
                # rsample() draws from the global stream too (a backend whose unseeded
                # rsample() kept a private stream that manual_seed never reset passed)
                polysample.manual_seed(1234)
                ra = d.rsample(N).detach()
                rb = d.rsample(N).detach()
                polysample.manual_seed(1234)
                rc = d.rsample(N).detach()
            for m, how, said in seeded:
                polysample.manual_seed(1234)
                getattr(d, m)(N, **how)
                after.append((f"{m}({N}, {said})", d.sample(N)))
        point = example_params(family, ())
        scalar = make(family, point, t)
        repeats: dict[str, torch.Tensor] = {}
        reused: dict[str, bool] = {}
        calls = (UNSEEDED_CALLS_CONTINUOUS if FAMILIES[family].kind == "continuous"
                 else UNSEEDED_CALLS)
        with preserved_global_seed():
            polysample.manual_seed(4321)
            for m in methods:
                first = getattr(scalar, m)().detach()
                kept_first = first.clone()
                xs = [first] + [getattr(scalar, m)().detach() for _ in range(calls - 1)]
                if all(_equal(xs[0], x) for x in xs[1:]):
                    repeats[m] = xs[0]
                    reused[m] = not _equal(first, kept_first)
        # a write into the parameters changes later calls' values: name it, not the stream
        _inputs_intact(f"sample({N})", params, given)
        if _equal(a, b):
            if aliased:
                raise CheckFailure(_reused(f"two unseeded calls of sample({N})"))
            raise CheckFailure("two unseeded calls gave identical values")
        both = "" if aliased else _overlapping(family, a, b)
        if both:
            raise CheckFailure(
                f"two unseeded calls of sample({N}) with batch_shape (2,): the second repeats "
                f"{both} of the first: the global stream advanced too little between them (by "
                "rows rather than values?). Advance it past every value a call draws")
        for m, x in repeats.items():
            if reused[m]:
                raise CheckFailure(_reused(f"{calls} unseeded calls of {m}() with scalar "
                                           "parameters"))
            chance = _equal_by_chance(family, point, x, calls - 1)
            if chance < SEEDS_ALPHA:
                raise CheckFailure(
                    f"{calls} unseeded calls of {m}() with scalar parameters all drew "
                    f"{_head(x)} (chance {chance:.2g} for independent draws): unseeded "
                    "one-value draws do not advance the global stream (a generator built again "
                    "from the seed at each call?). Draw them from the backend's GlobalStream "
                    "(docs/plugins.md), as larger calls do")
        if not _equal(a, c):
            raise CheckFailure("manual_seed(1234) did not reproduce the unseeded draws: the "
                               "backend's global stream must be derived from polysample's seed")
        if not (_equal(a, threaded[0]) and _equal(b, threaded[1])):
            same = ("the second thread repeated the first thread's values"
                    if _equal(threaded[0], threaded[1]) else "other values")
            raise CheckFailure(
                f"manual_seed(1234), then two unseeded calls of sample({N}), each in a new "
                "thread, one after the other, did not draw what the same two calls draw in one "
                f"thread ({same}). "
                "The global stream is one per process, shared by its threads as torch's "
                "default generator is (docs/seeds.md): keep it in the backend's GlobalStream, "
                "not in thread-local state")
        if support.rsample:
            if _equal(ra, rb):
                raise CheckFailure("two unseeded calls of rsample() gave identical values")
            if not _equal(ra, rc):
                raise CheckFailure(
                    "manual_seed(1234) did not reproduce the unseeded rsample() draws (it did "
                    "reproduce sample()'s): unseeded rsample() must draw from the backend's "
                    "global stream too, derived from polysample's seed (docs/plugins.md)")
        for what, x in after:
            if not _equal(a, x):
                raise CheckFailure(
                    f"{what} advanced the global stream: manual_seed(1234), {what}, then an "
                    "unseeded sample() drew other values than manual_seed(1234) and the "
                    "unseeded sample() alone. A seeded or generator= draw must leave the global "
                    "stream untouched (docs/seeds.md): draw it from a stream built from its "
                    "seed or generator alone (take no key, warm-up value or split from the "
                    "global stream)")
        return Outcome("unseeded calls advance a global stream that manual_seed reproduces "
                       f"({calls} one-value calls included"
                       + ("; rsample() too" if support.rsample else "") + "); "
                       "seeded and generator= draws leave it untouched")

    yield check("global_stream", global_stream)

    if getattr(t.backend, "traceable", False):
        def traced(r: Runner) -> Outcome:
            return _traced(t, family, support)

        yield check("traced", traced)

    def generator(r: Runner) -> Outcome:
        methods = ("sample", "rsample") if support.rsample else ("sample",)
        for shape, batch, dtype in ((N, (2,), torch.float32),
                                    *(c for c in _seed_calls(family) if c[0])):
            pd = example_params(family, batch, dtype)
            kept_d = _copies(pd)
            d = make(family, pd, t)
            # The large call (float64) with sample() alone: the seeds rule draws it with
            # rsample() too, and each large draw costs milliseconds on every family.
            for m in methods if dtype == torch.float32 else ("sample",):
                call = f"{m}({shape}) with batch_shape {batch}" + (
                    f" in {str(dtype).removeprefix('torch.')}" if dtype != torch.float32 else "")

                def draw(g: torch.Generator, _m: str = m, _d: Any = d,
                         _shape: tuple[int, ...] = shape) -> torch.Tensor:
                    return getattr(_d, _m)(_shape, generator=g).detach()

                g1 = torch.Generator().manual_seed(3)
                g2 = torch.Generator().manual_seed(3)
                a = draw(g1)
                kept = a.clone()
                _inputs_intact(f"generator=, {call}", pd, kept_d)
                if not _equal(a, draw(g2)):
                    raise CheckFailure(f"generator=, {call}: two generators in the same state "
                                       "gave different values")
                # Identical values below may be one reused buffer (a later call wrote its
                # values into the earlier result): that is the cause to name, not the generator.
                second = draw(g1)
                if _equal(a, second):
                    _kept_intact(f"generator=, {call}", a, kept)
                    raise CheckFailure(f"generator=, {call}: the generator did not advance (a "
                                       "second draw from it repeated the first)")
                both = _overlapping(family, a, second)
                if both:
                    _kept_intact(f"generator=, {call}", a, kept)
                    raise CheckFailure(
                        f"generator=, {call}: a second draw from the generator repeats "
                        f"{both} of the first: the generator advanced too little (by rows "
                        "rather than values?) and the two draws overlap. Advance it past "
                        "every value a call draws")
                if _equal(a, draw(torch.Generator().manual_seed(4))):
                    _kept_intact(f"generator=, {call}", a, kept)
                    raise CheckFailure(f"generator=, {call}: generators seeded 3 and 4 gave "
                                       "identical values (the generator is ignored)")
        point = example_params(family, ())
        small = make(family, point, t).expand((SMALL_BATCH,))
        for m in methods:
            _batch_apart(family, f"{m}({N}, generator=...)", point,
                         getattr(small, m)(N, generator=torch.Generator().manual_seed(3)))
        return Outcome(f"generator= is reproducible and advances in {' and '.join(methods)}(), "
                       "the elements of a small batch apart, "
                       "also without a batch, for a 3-d sample shape and for "
                       f"{LARGE_SEED_VALUES:,} values")

    yield check("generator", generator)

    def log_prob(r: Runner) -> Outcome:
        params = example_params(family, (2,), torch.float64)
        d = make(family, params, t)
        x = d.sample(N, seed=1)
        given = _copies(params)
        given["value"] = x.clone()
        got = d.log_prob(x)
        _inputs_intact("log_prob()", {**params, "value": x}, given)
        if not isinstance(got, torch.Tensor):
            raise CheckFailure(f"log_prob returned {type(got).__name__}")
        want_shape = torch.Size(N) + d.batch_shape
        if got.shape != want_shape:
            raise CheckFailure(f"log_prob of {tuple(x.shape)} samples has shape "
                               f"{tuple(got.shape)}; expected {tuple(want_shape)}")
        if not torch.isfinite(got).all():
            raise CheckFailure(f"log_prob of the backend's own samples is not finite: "
                               f"{got.flatten()[:6].tolist()} at {x.flatten()[:6].tolist()}")
        _broadcast_value(d, x, len(N))
        _value_refilled(d, x, got)
        if support.log_prob:
            try:
                expected = getattr(td, family)(**params).log_prob(x)
            except (RuntimeError, ValueError) as exc:
                return Outcome(f"finite at own samples (torch cannot score them: {exc})")
            err = (got - expected).abs().max().item()
            if not torch.allclose(got, expected, rtol=1e-6, atol=1e-9):
                raise CheckFailure(f"log_prob differs from torch.distributions.{family}: max "
                                   f"abs difference {err:.3g} (rtol 1e-6)", statistic=err)
            return Outcome(f"finite at own samples and equal to torch's (max diff {err:.2g})")
        return Outcome("finite at the backend's own samples (scored by torch)")

    yield check("log_prob", log_prob)

    def expand(r: Runner) -> Outcome:
        d, _ = _dist(t, family, support, (2,))
        e = d.expand((4, 2))
        if type(e) is not type(d) or e.backend is not d.backend:
            raise CheckFailure("expand() lost the class or the backend")
        x = e.sample(N_WIDE, seed=0)
        want = torch.Size(N_WIDE) + torch.Size((4, 2)) + d.event_shape
        if x.shape != want:
            raise CheckFailure(f"expand((4, 2)).sample({N_WIDE}) has shape "
                               f"{tuple(x.shape)}; expected {tuple(want)}")
        return Outcome("expand() keeps the class and the backend")

    yield check("expand", expand)

    def wrap(r: Runner) -> Outcome:
        import polysample

        params = example_params(family, (2,))
        w = polysample.wrap(getattr(td, family)(**params), backend=t.backend)
        direct = make(family, params, t)
        if not _equal(w.sample(N, seed=11), _seeded(direct, "sample", 11, "wrap")):
            raise CheckFailure("wrap(torch distribution) draws differ from the polysample "
                               "class with the same parameters and seed")
        return Outcome("wrap() routes a torch distribution to the backend")

    yield check("wrap", wrap)

    def pickles(r: Runner) -> Outcome:
        d, _ = _dist(t, family, support)
        e = pickle.loads(pickle.dumps(d))
        if type(e) is not type(d):
            raise CheckFailure("pickling lost the class")
        if not _equal(e.sample(N, seed=5), _seeded(d, "sample", 5, "pickle")):
            raise CheckFailure("a pickled copy draws different values with the same seed")
        return Outcome("a pickled copy keeps the backend and draws the same values")

    yield check("pickle", pickles)

    def layouts(r: Runner) -> Outcome:
        # The core hands the backend the distribution's tensors as they are: broadcasting makes
        # stride-0 views, and a caller's slice or transpose is non-contiguous. A backend that
        # reads a tensor's memory as if it were contiguous (a raw data pointer, a bridge that
        # drops the strides) draws from other parameters, or crashes.
        methods = ("sample", "rsample") if support.rsample else ("sample",)
        params = example_params(family, (2,))
        for how, view in LAYOUTS:
            viewed = {k: view(v) if isinstance(v, torch.Tensor) and v.dim() else v
                      for k, v in params.items()}
            plain = {k: v.contiguous() if isinstance(v, torch.Tensor) else v
                     for k, v in viewed.items()}
            given = _copies(viewed)
            d, ref = make(family, viewed, t), make(family, plain, t)
            for m in methods:
                got = getattr(d, m)(N, seed=9).detach()
                want = _seeded(ref, m, 9, "layouts")
                if not _close(got, want):
                    raise CheckFailure(
                        f"{m}() with {how} parameters drew other values than with contiguous "
                        f"copies of them (same values, same seed): e.g. {got.flatten()[:3].tolist()} "
                        f"against {want.flatten()[:3].tolist()}. Read parameters through "
                        "their strides (torch indexing, .contiguous(), .numpy()), not their "
                        "raw memory")
            _inputs_intact(f"sample() with {how} parameters", viewed, given)
        d = make(family, params, t)
        x = d.sample(N, seed=9)
        if not _close(d.log_prob(_strided(x)), d.log_prob(x)):
            raise CheckFailure("log_prob() of a strided value differs from log_prob() of a "
                               "contiguous copy: read the value through its strides")
        done = ("strided and expanded parameters draw as their contiguous copies; a strided "
                "value scores as its copy")
        if support.rsample:
            _layout_gradients(t, family, support, params)
            done += "; rsample() gradients of strided and expanded parameters are the copies'"
        return Outcome(done)

    yield check("layouts", layouts)

    def invalid(r: Runner) -> Outcome:
        import polysample

        params = example_params(family, (2,), torch.float32)
        constrained = getattr(td, family)(**example_params(family, (2,), torch.float32)
                                          ).arg_constraints
        key = next(k for k in params if isinstance(params[k], torch.Tensor) and k in constrained)
        params[key] = torch.full_like(params[key], float("nan"))
        try:
            getattr(polysample, family)(**params, backend=t.backend, validate_args=True)
        except InvalidParameterError:
            return Outcome(f"NaN {key} raises InvalidParameterError")
        raise CheckFailure(f"NaN {key} did not raise InvalidParameterError")

    yield check("invalid_params", invalid)

    if family in POINT_MASS:
        def point_mass(r: Runner) -> Outcome:
            params, want = point_mass_case(family)
            given = _copies(params)
            d = make(family, params, t)
            methods = ("sample", "rsample") if support.rsample else ("sample",)
            for m in methods:
                x = getattr(d, m)((16,), seed=0).detach()
                expected = want.to(x.dtype).expand(x.shape)
                if not _equal(x, expected):
                    bad = (x != expected).reshape(16, -1).any(0).nonzero().flatten().tolist()
                    raise CheckFailure(
                        f"{m}() with parameters of a law of one value ({_describe(params)}) "
                        f"drew other values: {x.reshape(16, -1)[:, bad[0]].tolist()[:4]} at "
                        f"batch element {bad[0]}, where every draw is "
                        f"{expected.reshape(16, -1)[0, bad[0]].item():g}")
            # the one value has probability 1: log_prob 0 (a score such as
            # k log(rate) - rate - lgamma(k + 1) was NaN at rate 0)
            lp = d.log_prob(want.to(x.dtype)).detach()
            if not bool((lp.abs() <= POINT_MASS_ATOL).all()):
                i = int(torch.where(lp.isnan(), math.inf, lp.abs()).flatten().argmax())
                raise CheckFailure(
                    f"log_prob of the law's one value at {_describe(params)} is "
                    f"{lp.flatten().tolist()}, where it is 0 (probability 1; batch element "
                    f"{i}): score the ends of the parameters' range too (0 log 0 = 0: "
                    "xlogy, xlog1py)")
            _inputs_intact(" and ".join(f"{m}()" for m in methods), params, given)
            return Outcome(f"the law's one value at {_describe(params)}, in new memory, "
                           "with log_prob 0")

        yield check("point_mass", point_mass)
