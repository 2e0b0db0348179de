"""Reparameterized mixtures: ``MixtureSameFamily.rsample()`` of the component families a backend
names in ``mixture_components()`` (its optional ``rsample_mixture``, docs/plugins.md).

``MixtureSameFamily.sample()`` is the core's (a Categorical index, then the components, with two
children of one seed: the ``seeds`` rule judges the spawned children); ``rsample()`` is the
backend's own code, which no other check reaches. For each such component family:

* ``mixture_ks`` (sampler layer, statistical): the K-S distance of ``rsample()`` draws of three
  three-component mixtures (the family's example parameters, a batch of ``(3, 3)``, with mixture
  weights from fixed logits) from the mixture's CDF ``sum_k w_k F_k(x)`` (torch's component CDFs
  in float64), against the DKWM threshold at alpha_i split over the three mixtures.
* ``mixture_grad`` (gradient layer): the pathwise gradient of a weighted sum of draws against the
  implicit-reparameterization identity ``dx/dtheta = -(dF/dtheta)(x) / f(x)`` of the mixture's
  CDF ``F`` and density ``f`` (the gradient a reparameterized mixture has: TFP's
  ``MixtureSameFamily(reparameterize=True)`` computes it so), in every component parameter the
  backend reparameterizes and in the mixture logits.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch

from ...core.backend import FamilySupport
from ..grids import example_params, rsample_leaves
from ..model import Check, CheckFailure, Outcome, Skip
from ..runner import Runner, Target
from ..stats import ALPHA_CHECK, dkwm_threshold, ks_continuous

#: The three mixtures' logits: unequal weights, one mixture nearly a single component.
#: Three components each: a mixture code written for two (a shortcut ``index = u < sigmoid(l1 -
#: l0)``) never drew a third, and passed while every test mixture had two (an outside trial).
LOGITS = ((0.0, 0.7, -0.5), (1.5, -1.0, 0.3), (-2.5, 0.5, -2.5))
#: The components of each mixture.
COMPONENTS = len(LOGITS[0])
#: Draws per mixture of ``mixture_ks`` (full, quick).
KS_N = (1 << 17, 1 << 15)
#: Draws per mixture of ``mixture_grad``, and its tolerance: the identity is exact; the
#: reference's finite differences are not where the CDF has a kink (Laplace's at ``loc``: 1.1e-6
#: on TFP-on-TensorFlow, the largest of 16 seeds and eight families; most below 1e-7).
GRAD_N = 256
GRAD_RTOL = 1e-4
#: ``mixture_grad`` judges the draws whose mixture CDF lies in ``[CENTRAL_TAIL, 1 - CENTRAL_TAIL]``.
CENTRAL_TAIL = 1e-3


def mixture_families(t: Target) -> frozenset[str]:
    """The component families ``t`` reparameterizes mixtures of (none when it cannot say)."""
    try:
        return frozenset(t.backend.mixture_components())
    except Exception:  # noqa: BLE001 - a broken backend: its other checks say so
        return frozenset()


def _mixture(t: Target, family: str, params: dict[str, Any], logits: torch.Tensor) -> Any:
    import polysample

    cat = polysample.Categorical(logits=logits, backend=t.backend, validate_args=False)
    comp = getattr(polysample, family)(**params, backend=t.backend, validate_args=False)
    return polysample.MixtureSameFamily(cat, comp)


def _reference(family: str, params: dict[str, Any], logits: torch.Tensor
               ) -> tuple[Callable[[torch.Tensor], torch.Tensor], Any]:
    """The mixture's CDF (a function of values of shape ``(n, 3)``) and torch's mixture, from
    the same tensors (so both are differentiable in them)."""
    comp = getattr(torch.distributions, family)(**params, validate_args=False)
    weights = torch.softmax(logits, -1)

    def cdf(x: torch.Tensor) -> torch.Tensor:
        return (weights * comp.cdf(x.unsqueeze(-1))).sum(-1)

    mix = torch.distributions.MixtureSameFamily(
        torch.distributions.Categorical(logits=logits, validate_args=False), comp,
        validate_args=False)
    return cdf, mix


def _points(family: str, params: dict[str, Any], logits: torch.Tensor) -> list[str]:
    out = []
    w = torch.softmax(logits.detach(), -1)
    for j in range(w.shape[0]):
        parts = [f"weights=({', '.join(f'{float(x):.3g}' for x in w[j])})"]
        for name, v in params.items():
            if isinstance(v, torch.Tensor) and v.dim() >= 2:
                parts.append(f"{name}=({', '.join(f'{float(x):.4g}' for x in v[j])})")
        out.append(f"mixture[{j}] of {family} ({', '.join(parts)})")
    return out


def _central_difference(fn: Callable[[dict[str, Any]], torch.Tensor], params: dict[str, Any],
                        name: str) -> torch.Tensor:
    """d fn / d params[name], element by element: central differences of steps ``h`` and
    ``h / 2`` (``h`` = 1e-3 of the element's size), Richardson-extrapolated (error O(h^4))."""
    base = params[name]
    out = torch.zeros_like(base)
    flat = out.view(-1)
    for i in range(base.numel()):
        h = 1e-3 * max(abs(float(base.view(-1)[i])), 1e-3)

        def at(step: float, i: int = i) -> float:
            q = base.clone()
            q.view(-1)[i] += step
            return float(fn({**params, name: q}))

        d1 = (at(h) - at(-h)) / (2 * h)
        d2 = (at(h / 2) - at(-h / 2)) / h
        flat[i] = (4 * d2 - d1) / 3
    return out


def _mixture_ks(t: Target, family: str) -> Callable[[Runner], Outcome]:
    def fn(r: Runner) -> Outcome:
        n = KS_N[1 if r.quick else 0]
        seed = r.seed(f"{t.name}-{family}-example-mixture_ks")
        params = example_params(family, (3, COMPONENTS), torch.float64)
        logits = torch.tensor(LOGITS, dtype=torch.float64)
        d = _mixture(t, family, params, logits)
        with torch.no_grad():
            x = d.rsample((n,), seed=seed).detach()
        if tuple(x.shape) != (n, 3):
            raise CheckFailure(f"MixtureSameFamily.rsample(({n},)) returned shape "
                               f"{tuple(x.shape)}, expected {(n, 3)}")
        if not bool(torch.isfinite(x).all()):
            raise CheckFailure(f"MixtureSameFamily.rsample() of {family} returned "
                               f"{int((~torch.isfinite(x)).sum())} non-finite values")
        cdf, _ = _reference(family, params, logits)
        xs = torch.sort(x.double(), 0).values
        with torch.no_grad():
            F = cdf(xs).numpy()
        D = ks_continuous(xs.numpy(), F)
        alpha = ALPHA_CHECK / D.size
        thr = dkwm_threshold(n, alpha)
        j = int(np.argmax(D))
        pts = _points(family, params, logits)
        out = Outcome(statistic=float(D[j]), threshold=thr, n=n, seed=seed, alpha=alpha,
                      detectable=thr, point=pts[j],
                      details={"ks": [float(v) for v in D]})
        if D[j] > thr:
            raise CheckFailure(
                f"MixtureSameFamily.rsample(): the K-S distance of the draws of {pts[j]} from "
                f"the mixture's CDF (sum of weight x {family}.cdf) is {D[j]:.4g}, above the "
                f"DKWM threshold {thr:.4g} (n={n}, alpha_i={alpha:.2g} per mixture): "
                "rsample_mixture draws from another law (the weights, or the components' "
                "parameters, read wrongly)", out)
        out.message = (f"rsample() of 3 mixtures of {family}: K-S at most {D.max():.3g} "
                       f"(threshold {thr:.3g}, n={n})")
        return out
    return fn


def _mixture_grad(t: Target, family: str, support: FamilySupport
                  ) -> Callable[[Runner], Outcome]:
    def fn(r: Runner) -> Outcome:
        seed = r.seed(f"{t.name}-{family}-example-mixture_grad")
        params = example_params(family, (3, COMPONENTS), torch.float64)
        leaves = rsample_leaves(family, params, support.rsample_params)
        logits = torch.tensor(LOGITS, dtype=torch.float64, requires_grad=True)
        leaves = {**leaves, "mixture logits": logits}
        d = _mixture(t, family, params, logits)
        x = d.rsample((GRAD_N,), seed=seed)
        if not x.requires_grad:
            raise CheckFailure("MixtureSameFamily.rsample() returned a tensor without a "
                               "gradient (requires_grad False): rsample_mixture must keep the "
                               "parameters' graph")
        v = x.detach().double()
        fixed = {k: (p.detach() if isinstance(p, torch.Tensor) else p)
                 for k, p in params.items()}
        cdf, mix = _reference(family, fixed, logits.detach())
        with torch.no_grad():
            f = mix.log_prob(v).exp()
            central = (cdf(v) - 0.5).abs() <= 0.5 - CENTRAL_TAIL
        # Weights at random, 0 in the tails: there F is 1 - S (or S) within rounding, and
        # neither its finite differences nor a backend's own implicit gradient resolve S.
        c = torch.as_tensor(np.random.default_rng(seed).uniform(0.5, 1.5, (GRAD_N, 3)))
        c = torch.where(central, c, torch.zeros_like(c))
        names = list(leaves)
        got = torch.autograd.grad((c * x.double()).sum(), [leaves[k] for k in names],
                                  allow_unused=True)
        if not bool((f > 0).all()):
            raise Skip("a draw where the mixture's density underflows: the identity divides "
                       "by it")

        def score(p: dict[str, Any], lg: torch.Tensor) -> torch.Tensor:
            # sum_i c_i F(x_i) / f(x_i): its derivative in a parameter is minus the identity's
            return (c * _reference(family, p, lg)[0](v) / f).sum()

        want = []
        for k in names:
            if k == "mixture logits":  # softmax of the logits: differentiable in torch
                lg = logits.detach().clone().requires_grad_(True)
                (g,) = torch.autograd.grad(-score(fixed, lg), [lg])
            else:  # torch's CDFs are not all differentiable in their parameters (Gamma)
                g = -_central_difference(lambda q: score(q, logits.detach()), fixed, k)
            want.append(g)
        worst, where = 0.0, ""
        for name, g, w in zip(names, got, want):
            g = torch.zeros_like(leaves[name]) if g is None else g
            w = torch.zeros_like(leaves[name]) if w is None else w
            scale = float(w.abs().max()) + 1e-300
            err = ((g - w).abs() / (w.abs() + 1e-3 * scale)).flatten()
            e = int(err.argmax())
            if float(err[e]) > worst or not where:
                idx = np.unravel_index(e, tuple(w.shape))
                worst = float(err[e])
                where = (f"{name}[{', '.join(str(int(i)) for i in idx)}]: got "
                         f"{float(g.flatten()[e]):.10g}, the identity gives "
                         f"{float(w.flatten()[e]):.10g}")
        out = Outcome(statistic=worst, threshold=GRAD_RTOL, n=GRAD_N, seed=seed,
                      details={"leaves": names})
        if not np.isfinite(worst) or worst > GRAD_RTOL:
            raise CheckFailure(
                f"MixtureSameFamily.rsample() of {family}: the gradient of a weighted sum of "
                f"{GRAD_N} draws of 3 mixtures differs from the implicit-reparameterization "
                f"identity dx/dtheta = -(dF/dtheta)(x) / f(x) of the mixture's CDF F and "
                f"density f: {where} (relative error {worst:.3g} > {GRAD_RTOL:g})", out)
        out.message = (f"rsample()'s gradient in {', '.join(names)} equals the mixture's "
                       f"implicit-reparameterization identity (max rel. error {worst:.2g})")
        return out
    return fn


def sampler_checks(t: Target, family: str, support: FamilySupport) -> Iterator[Check]:
    if family in mixture_families(t):
        yield Check(t.name, family, "example", "mixture_ks", "sampler", True,
                    _mixture_ks(t, family))


def gradient_checks(t: Target, family: str, support: FamilySupport) -> Iterator[Check]:
    if family in mixture_families(t):
        yield Check(t.name, family, "example", "mixture_grad", "gradient", False,
                    _mixture_grad(t, family, support))
