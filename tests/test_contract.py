"""The sample/rsample contract (DESIGN.md section 1), checked on every available backend.

Each test is one rule, parametrized over ``(backend, family)`` for every family the backend's
``families()`` claims (see ``conftest.family_cases``). The test functions take no fixtures, so
``test_plugins`` runs the same rules on the example third-party plugin.
"""

from __future__ import annotations

import pickle
from typing import Any

import numpy as np
import pytest
import torch
import torch.distributions as td

import polysample as ps
from conftest import family_cases
from polysample.conformance.grids import example_params, grad_leaves
from polysample.core.backend import FamilySupport
from polysample.core.families import FAMILIES

#: One sample shape for (almost) every rule: compiled backends then reuse one sampler per
#: family and dtype. 16 draws of a batch of 2 make an accidental tie between two different
#: streams negligible even for Bernoulli (and the seeds are fixed, so nothing is random).
N = (16,)

ALL = family_cases()
RSAMPLE = family_cases(lambda f, s: s.rsample)
NO_RSAMPLE = family_cases(lambda f, s: not s.rsample)


def _support(backend: str, family: str) -> FamilySupport:
    return ps.load_backend(backend).families()[family]


def make(backend: str, family: str, batch_shape: tuple[int, ...] = (2,),
         dtype: torch.dtype = torch.float32, grad: bool = False) -> tuple[Any, dict[str, Any]]:
    """``polysample.<family>(..., backend=backend)`` from the example parameters.

    With ``grad=True`` the floating parameters the backend reparameterizes become leaves that
    require grad; returns the distribution and those leaves.
    """
    params = example_params(family, batch_shape, dtype)
    leaves: dict[str, Any] = {}
    if grad:
        leaves = grad_leaves(family, params)
        allowed = _support(backend, family).rsample_params
        if allowed is not None:
            for name in list(leaves):
                if name not in allowed:
                    params[name] = params[name].detach()
                    del leaves[name]
    return getattr(ps, family)(**params, backend=backend), leaves


def _expected_dtype(family: str, dtype: torch.dtype) -> torch.dtype:
    return torch.int64 if FAMILIES[family].kind == "index" else dtype


# --------------------------------------------------------------------------- shapes and dtypes
@pytest.mark.parametrize("backend,family", ALL)
def test_shape_is_sample_shape_plus_batch_shape_plus_event_shape(backend: str, family: str) -> None:
    support = _support(backend, family)
    for sample_shape, batch_shape in [((), ()), (N, (2, 3))]:
        d, _ = make(backend, family, batch_shape)
        assert d.batch_shape == batch_shape
        expected = torch.Size(sample_shape) + d.batch_shape + d.event_shape
        assert d.sample(sample_shape, seed=0).shape == expected
        if support.rsample:
            assert d.rsample(sample_shape, seed=0).shape == expected


def broadcastable(family: str) -> bool:
    """Univariate families with two batched parameters (so one can be (2, 1), one (3,))."""
    return FAMILIES[family].univariate and sum(
        1 for p in example_params(family, (2, 3)).values()
        if isinstance(p, torch.Tensor) and p.dim() == 2
    ) >= 2


BROADCAST = family_cases(lambda f, s: broadcastable(f))


@pytest.mark.parametrize("backend,family", BROADCAST)
def test_batched_parameters_broadcast(backend: str, family: str) -> None:
    params = example_params(family, (2, 3))
    first, second = [k for k, v in params.items() if isinstance(v, torch.Tensor) and v.dim() == 2][:2]
    params[first] = params[first][:, :1].clone()   # shape (2, 1)
    params[second] = params[second][0].clone()     # shape (3,)
    d = getattr(ps, family)(**params, backend=backend)
    assert d.batch_shape == (2, 3)
    assert d.sample(N, seed=1).shape == N + (2, 3)
    if _support(backend, family).rsample:
        assert d.rsample(N, seed=1).shape == N + (2, 3)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("backend,family", ALL)
def test_dtype_follows_parameters(backend: str, family: str, dtype: torch.dtype) -> None:
    d, _ = make(backend, family, (2,), dtype)
    expected = _expected_dtype(family, dtype)
    x = d.sample(N, seed=0)
    assert x.dtype == expected and x.device == torch.device("cpu")
    if _support(backend, family).rsample:
        assert d.rsample(N, seed=0).dtype == expected


# --------------------------------------------------------------------------- gradients
@pytest.mark.parametrize("backend,family", ALL)
def test_sample_never_requires_grad(backend: str, family: str) -> None:
    d, leaves = make(backend, family, grad=True)
    assert leaves or FAMILIES[family].kind != "continuous"
    x = d.sample(N)
    assert not x.requires_grad
    assert x.grad_fn is None


@pytest.mark.parametrize("backend,family", RSAMPLE)
def test_rsample_is_differentiable_in_every_parameter_that_requires_grad(
    backend: str, family: str
) -> None:
    d, leaves = make(backend, family, (2,), torch.float64, grad=True)
    assert leaves, "a reparameterized family must have a differentiable parameter"
    x = d.rsample(N, seed=0)
    assert x.requires_grad
    grads = torch.autograd.grad(x.sum(), list(leaves.values()), allow_unused=True)
    for name, g in zip(leaves, grads):
        assert g is not None, f"rsample() of {family} on {backend} ignores {name}"
        assert g.shape == leaves[name].shape
        assert torch.isfinite(g).all(), f"non-finite gradient w.r.t. {name}"


@pytest.mark.parametrize("backend,family", NO_RSAMPLE)
def test_rsample_raises_not_reparameterizable(backend: str, family: str) -> None:
    d, _ = make(backend, family)
    with pytest.raises(ps.NotReparameterizableError, match=family) as info:
        d.rsample(N)
    assert isinstance(info.value, NotImplementedError)
    assert "sample()" in str(info.value)  # names the alternative


@pytest.mark.parametrize("backend,family", ALL)
def test_has_rsample_reports_the_backend(backend: str, family: str) -> None:
    d, _ = make(backend, family)
    assert d.has_rsample is _support(backend, family).rsample


# --------------------------------------------------------------------------- seeds
@pytest.mark.parametrize("backend,family", ALL)
def test_same_seed_gives_identical_values(backend: str, family: str) -> None:
    d, _ = make(backend, family)
    a = d.sample(N, seed=7)
    assert torch.equal(a, d.sample(N, seed=7))
    assert torch.equal(a, d.sample(N, seed=np.random.SeedSequence(7)))
    assert not torch.equal(a, d.sample(N, seed=8))
    if _support(backend, family).rsample:
        r = d.rsample(N, seed=7)
        assert torch.equal(r, d.rsample(N, seed=7))


@pytest.mark.parametrize("backend,family", ALL)
def test_two_unseeded_calls_differ(backend: str, family: str) -> None:
    ps.manual_seed(1234)  # a fixed global stream: the test is deterministic
    d, _ = make(backend, family)
    assert not torch.equal(d.sample(N), d.sample(N))


@pytest.mark.parametrize("backend,family", ALL)
def test_torch_generator_is_reproducible_and_advances(backend: str, family: str) -> None:
    d, _ = make(backend, family)
    g1 = torch.Generator().manual_seed(3)
    g2 = torch.Generator().manual_seed(3)
    a = d.sample(N, generator=g1)
    assert torch.equal(a, d.sample(N, generator=g2))
    assert not torch.equal(a, d.sample(N, generator=g1))


# --------------------------------------------------------------------------- log_prob
@pytest.mark.parametrize("backend,family", ALL)
def test_log_prob_matches_torch(backend: str, family: str) -> None:
    params = example_params(family, (2,), torch.float64)
    d = getattr(ps, family)(**params, backend=backend)
    x = d.sample(N, seed=1)
    try:
        expected = getattr(td, family)(**params).log_prob(x)
    except RuntimeError as exc:  # torch itself cannot score this case: nothing to compare
        pytest.skip(f"torch.distributions.{family}.log_prob fails in float64: {exc}")
    got = d.log_prob(x)
    assert isinstance(got, torch.Tensor) and got.shape == expected.shape
    torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-9)


# --------------------------------------------------------------------------- torch interop
@pytest.mark.parametrize("backend,family", ALL)
def test_expand_keeps_the_backend(backend: str, family: str) -> None:
    d, _ = make(backend, family, (2,))
    e = d.expand((4, 2))
    assert type(e) is type(d)
    assert e.backend == backend
    assert e.batch_shape == (4, 2)
    assert e.sample(N, seed=0).shape == N + (4, 2) + d.event_shape


@pytest.mark.parametrize("backend,family", ALL)
def test_wrap_routes_a_torch_distribution(backend: str, family: str) -> None:
    params = example_params(family, (2,))
    original = getattr(td, family)(**params)
    w = ps.wrap(original, backend=backend)
    assert isinstance(w, getattr(ps, family)) and isinstance(w, getattr(td, family))
    assert w.backend == backend
    direct = getattr(ps, family)(**params, backend=backend)
    assert torch.equal(w.sample(N, seed=11), direct.sample(N, seed=11))


@pytest.mark.parametrize("backend,family", ALL)
def test_pickle_roundtrip_keeps_backend_and_draws(backend: str, family: str) -> None:
    d, _ = make(backend, family)
    e = pickle.loads(pickle.dumps(d))
    assert type(e) is type(d) and e.backend == backend
    assert torch.equal(e.sample(N, seed=5), d.sample(N, seed=5))


def test_every_family_has_a_polysample_class_subclassing_torch() -> None:
    for family in FAMILIES:
        cls = getattr(ps, family)
        assert issubclass(cls, getattr(td, family)), family
        assert family in ps.__all__


def test_matrix_covers_the_torch_backend() -> None:
    # Guard against an empty parametrization silently testing nothing.
    assert "torch" in {p.values[0] for p in ALL}  # type: ignore[attr-defined]
    assert len([p for p in ALL if p.values[0] == "torch"]) == len(FAMILIES)  # type: ignore[attr-defined]
