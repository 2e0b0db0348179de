"""The core combinators (Independent, TransformedDistribution, MixtureSameFamily) on every backend.

They are built in the core on top of the base families, so each backend that draws Normal and
Categorical gets them without backend code. ``MixtureSameFamily.rsample`` exists only where
the component's backend names the component family in ``mixture_components()``.
"""

from __future__ import annotations

import pickle

import pytest
import torch
import torch.distributions as td

import polysample as ps
from conftest import AVAILABLE

BACKENDS = [b for b in AVAILABLE
            if {"Normal", "Categorical"} <= set(ps.load_backend(b).families())]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


def _loc() -> torch.Tensor:
    return torch.linspace(-1.0, 1.0, 6).reshape(2, 3).requires_grad_(True)


def _mixture(backend: str) -> ps.MixtureSameFamily:
    logits = torch.tensor([[0.0, 1.0, -1.0], [0.5, 0.5, 0.0]])
    comp = ps.Normal(_loc(), torch.full((2, 3), 0.5), backend=backend)
    return ps.MixtureSameFamily(ps.Categorical(logits=logits, backend=backend), comp)


def test_independent_shapes_gradients_seeds(backend: str) -> None:
    loc = _loc()
    d = ps.Independent(ps.Normal(loc, 1.0, backend=backend), 1)
    assert d.batch_shape == (2,) and d.event_shape == (3,)
    x = d.sample((4,), seed=1)
    assert x.shape == (4, 2, 3) and not x.requires_grad
    assert torch.equal(x, d.sample((4,), seed=1))
    r = d.rsample((4,), seed=1)
    assert r.requires_grad
    (g,) = torch.autograd.grad(r.sum(), [loc])
    assert torch.equal(g, torch.full((2, 3), 4.0))
    torch.testing.assert_close(
        d.log_prob(x), td.Independent(td.Normal(loc, 1.0), 1).log_prob(x))


def test_independent_wraps_a_torch_base_with_its_backend(backend: str) -> None:
    d = ps.Independent(td.Normal(torch.zeros(2, 3), 1.0), 1, backend=backend)
    assert isinstance(d.base_dist, ps.Normal) and d.base_dist.backend == backend
    assert d.sample((2,), seed=0).shape == (2, 2, 3)


def test_transformed_distribution_sample_rsample_log_prob(backend: str) -> None:
    loc = _loc()
    transforms = [td.ExpTransform(), td.AffineTransform(1.0, 2.0)]
    d = ps.TransformedDistribution(ps.Normal(loc, 0.5, backend=backend), transforms)
    x = d.sample((5,), seed=2)
    assert x.shape == (5, 2, 3) and not x.requires_grad and (x > 1.0).all()
    assert torch.equal(x, d.sample((5,), seed=2))
    r = d.rsample((5,), seed=2)
    assert r.requires_grad
    assert torch.autograd.grad(r.sum(), [loc])[0].shape == (2, 3)
    reference = td.TransformedDistribution(td.Normal(loc, 0.5), transforms)
    torch.testing.assert_close(d.log_prob(x), reference.log_prob(x))


def test_mixture_same_family_sample(backend: str) -> None:
    d = _mixture(backend)
    assert d.batch_shape == (2,) and d.event_shape == ()
    x = d.sample((7,), seed=3)
    assert x.shape == (7, 2) and not x.requires_grad
    assert torch.equal(x, d.sample((7,), seed=3))
    g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    assert torch.equal(d.sample((7,), generator=g1), d.sample((7,), generator=g2))
    torch.testing.assert_close(d.log_prob(x), td.MixtureSameFamily(
        td.Categorical(logits=d.mixture_distribution.logits),
        td.Normal(d.component_distribution.loc, d.component_distribution.scale)).log_prob(x))


def test_mixture_same_family_rsample_where_the_backend_offers_it(backend: str) -> None:
    d = _mixture(backend)
    offered = "Normal" in ps.load_backend(backend).mixture_components()
    assert d.has_rsample is offered
    if not offered:
        with pytest.raises(ps.NotReparameterizableError, match="MixtureSameFamily of Normal"):
            d.rsample((3,))
        return
    loc = d.component_distribution.loc
    r = d.rsample((3,), seed=4)
    assert r.shape == (3, 2) and r.requires_grad
    assert torch.autograd.grad(r.sum(), [loc])[0].shape == (2, 3)
    assert torch.equal(r, d.rsample((3,), seed=4))


def test_combinators_wrap_expand_and_pickle_keep_the_backend(backend: str) -> None:
    wrapped = ps.wrap(td.Independent(td.Normal(torch.zeros(2, 3), 1.0), 1), backend=backend)
    assert isinstance(wrapped, ps.Independent) and wrapped.base_dist.backend == backend
    expanded = wrapped.expand((4, 2))
    assert expanded.base_dist.backend == backend
    assert expanded.sample((), seed=0).shape == (4, 2, 3)
    mix = ps.wrap(td.MixtureSameFamily(td.Categorical(torch.ones(3)),
                                       td.Normal(torch.zeros(3), 1.0)), backend=backend)
    assert mix.component_distribution.backend == backend
    assert mix.mixture_distribution.backend == backend
    for d in (wrapped, mix):
        again = pickle.loads(pickle.dumps(d))
        assert torch.equal(again.sample((3,), seed=9), d.sample((3,), seed=9))


def test_combinators_route_through_the_configured_backend(backend: str) -> None:
    with ps.use_backend(backend):
        d = ps.Independent(ps.Normal(torch.zeros(3), 1.0), 1)
        assert d.sample((2,), seed=5).shape == (2, 3)
        assert torch.equal(d.sample((2,), seed=5),
                           ps.Normal(torch.zeros(3), 1.0, backend=backend).sample((2,), seed=5))


def test_a_mixture_backend_applies_to_components_that_chose_none() -> None:
    # The combinator's backend= reaches polysample components without one of their own,
    # and the caller's component object is left as it was.
    comp = ps.Normal(torch.zeros(2, 3, requires_grad=True), 1.0)
    cat = ps.Categorical(logits=torch.zeros(2, 3))
    mix = ps.MixtureSameFamily(cat, comp, backend="numpy")
    assert mix.component_distribution.backend == "numpy" and comp.backend is None
    assert mix.mixture_distribution.backend == "numpy"
    assert torch.equal(mix.sample((4,), seed=1), mix.sample((4,), seed=1))


def test_a_component_with_another_backend_is_an_error_naming_both() -> None:
    comp = ps.Normal(torch.zeros(3), 1.0, backend="torch")
    with pytest.raises(ps.InvalidParameterError, match="numpy.*torch|torch.*numpy"):
        ps.Independent(comp, 1, backend="numpy")


def test_mixture_backend_draws_rsample_with_gradients_on_the_named_backend() -> None:
    if "tfp" not in {b.name for b in ps.backends() if b.status == "available"}:
        pytest.skip("tfp is not installed")
    loc = torch.zeros(3, requires_grad=True)
    mix = ps.MixtureSameFamily(ps.Categorical(logits=torch.zeros(3)), ps.Normal(loc, 1.0),
                               backend="tfp")
    r = mix.rsample((5,), seed=2)
    assert r.shape == (5,) and r.requires_grad
    (g,) = torch.autograd.grad(r.sum(), [loc])
    assert g.shape == (3,) and torch.isfinite(g).all() and g.abs().sum() > 0


@pytest.mark.parametrize("backend", ["torch", "numpy"])
def test_combinator_log_prob_refusals_are_polysample_errors(backend):
    # An outside trial: torch's raw ValueError (a value outside the support) and
    # AttributeError (a Python float) came through TransformedDistribution and
    # MixtureSameFamily, where the families raise InvalidParameterError.
    exp = torch.distributions.transforms.ExpTransform()
    t = ps.TransformedDistribution(ps.Normal(0.0, 1.0, backend=backend), [exp])
    with pytest.raises(ps.InvalidParameterError, match="TransformedDistribution.log_prob"):
        t.log_prob(torch.tensor(-1.0))
    with pytest.raises(ps.InvalidParameterError, match="TransformedDistribution.log_prob"):
        ps.TransformedDistribution(ps.Normal(0.0, 1.0, backend=backend), []).log_prob(0.5)
    m = ps.MixtureSameFamily(ps.Categorical(torch.ones(2), backend=backend),
                             ps.Gamma(torch.ones(2), 1.0, backend=backend))
    with pytest.raises(ps.InvalidParameterError, match="MixtureSameFamily.log_prob"):
        m.log_prob(torch.tensor(-1.0))
    assert torch.isfinite(t.log_prob(torch.tensor(2.0)))


def test_a_transform_that_adds_event_dimensions_keeps_seed_and_generator(backend: str) -> None:
    # torch's TransformedDistribution wraps the base in its own Independent when a transform
    # needs more event dimensions (StickBreakingTransform): that Independent drew the
    # polysample base from the backend's global stream, ignoring seed= and generator=.
    d = ps.TransformedDistribution(ps.Normal(torch.zeros(2, 3), torch.ones(2, 3)),
                                   [td.StickBreakingTransform()], backend=backend)
    assert torch.equal(d.sample((5,), seed=1), d.sample((5,), seed=1))
    assert not torch.equal(d.sample((5,), seed=1), d.sample((5,), seed=2))
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    assert torch.equal(d.sample((5,), generator=g1), d.sample((5,), generator=g2))
    direct = ps.Normal(torch.zeros(2, 3), torch.ones(2, 3), backend=backend).sample((5,), seed=1)
    assert torch.allclose(d.sample((5,), seed=1), td.StickBreakingTransform()(direct))
    assert repr(d) == f"TransformedDistribution(backend: {backend!r})"


@pytest.mark.parametrize("family, kw", [
    ("Categorical", {"logits": torch.zeros(0)}),
    ("Categorical", {"probs": torch.zeros(2, 0)}),
    ("OneHotCategorical", {"probs": torch.zeros(0)}),
    ("OneHotCategoricalStraightThrough", {"logits": torch.zeros(3, 0)}),
    ("RelaxedOneHotCategorical", {"temperature": torch.tensor(0.5), "probs": torch.zeros(0)}),
    ("Multinomial", {"total_count": 3, "probs": torch.zeros(0)}),
    ("Dirichlet", {"concentration": torch.ones(0)}),
])
def test_a_family_with_no_category_is_refused_on_every_backend(backend: str, family: str,
                                                               kw: dict) -> None:
    # torch, NumPy and auto returned category 0, which does not exist; TFP a contract error
    if family not in ps.load_backend(backend).families():
        pytest.skip(f"{backend} has no {family}")
    with pytest.raises(ps.InvalidParameterError, match="at least one category"):
        getattr(ps, family)(**kw, backend=backend)
    # an empty batch of categories is not that
    assert ps.Categorical(probs=torch.ones(0, 3), backend=backend).sample((2,)).shape == (2, 0)


@pytest.mark.parametrize("weights, components, batch", [
    ((1, 3), (2, 3), (2,)), ((2, 3), (1, 3), (2,)), ((3,), (2, 3), (2,)), ((2, 1, 3), (4, 3), (2, 4)),
])
def test_mixture_weights_broadcast_against_components(backend: str, weights, components,
                                                      batch) -> None:
    # torch takes the component's batch for the mixture's: sample((4,)) had shape (4, 1) for a
    # batch of 2, or raised a raw RuntimeError; polysample expands both to their common batch
    m = ps.MixtureSameFamily(ps.Categorical(logits=torch.randn(weights)),
                             ps.Normal(torch.randn(components), 1.0), backend=backend)
    assert tuple(m.batch_shape) == batch
    x = m.sample((4,), seed=0)
    assert tuple(x.shape) == (4,) + batch
    assert tuple(m.log_prob(x).shape) == (4,) + batch
    if m.has_rsample:
        loc = torch.randn(components).requires_grad_(True)
        r = ps.MixtureSameFamily(ps.Categorical(logits=torch.randn(weights)),
                                 ps.Normal(loc, 1.0), backend=backend).rsample((4,), seed=0)
        assert tuple(r.shape) == (4,) + batch
        r.sum().backward()
        assert loc.grad is not None and torch.isfinite(loc.grad).all()


def test_mixture_rsample_refuses_non_finite_weights_and_draws_half_precision(backend) -> None:
    loc = torch.tensor([0.0, 1.0], requires_grad=True)
    bad = ps.MixtureSameFamily(
        ps.Categorical(logits=torch.tensor([0.0, float("nan")]), validate_args=False),
        ps.Normal(loc, 1.0), backend=backend)
    if not bad.has_rsample:
        pytest.skip(f"{backend} has no reparameterized mixture of Normal")
    with pytest.raises(ps.InvalidParameterError, match="must be finite"):
        bad.rsample((3,), seed=0)  # the backend returned NaN draws with gradients
    for dtype in (torch.float16, torch.bfloat16):
        half = torch.tensor([0.0, 1.0], dtype=dtype, requires_grad=True)
        m = ps.MixtureSameFamily(ps.Categorical(logits=torch.zeros(2, dtype=dtype)),
                                 ps.Normal(half, torch.ones(2, dtype=dtype)), backend=backend)
        x = m.rsample((8,), seed=0)
        assert x.dtype == dtype and torch.isfinite(x).all()
        x.sum().backward()
        assert half.grad is not None and half.grad.dtype == dtype
        assert float(half.grad.float().sum()) == pytest.approx(8.0, rel=1e-2)  # d sum / d loc


class _MyNormal(td.Normal):
    """A subclass polysample does not route: it draws itself."""


def test_wrap_takes_components_as_the_constructors_do() -> None:
    # backend= of wrap() reaches the components that chose none
    mix = ps.MixtureSameFamily(ps.Categorical(logits=torch.zeros(3)),
                               ps.Normal(torch.zeros(3), 1.0))
    w = ps.wrap(mix, backend="numpy")
    assert w.component_distribution.backend == "numpy"
    assert w.mixture_distribution.backend == "numpy"
    assert mix.component_distribution.backend is None  # the caller's object is left alone
    assert torch.equal(w.sample((4,), seed=1),
                       ps.MixtureSameFamily(ps.Categorical(logits=torch.zeros(3)),
                                            ps.Normal(torch.zeros(3), 1.0),
                                            backend="numpy").sample((4,), seed=1))
    # a component that chose another backend: the constructor's error
    with pytest.raises(ps.InvalidParameterError, match="Conflicting backends.*base_distribution"):
        ps.wrap(ps.Independent(ps.Normal(torch.zeros(3), 1.0, backend="torch"), 1),
                backend="numpy")
    # a component polysample does not route is kept, as the constructors keep it
    ind = ps.wrap(td.Independent(_MyNormal(torch.zeros(3), 1.0), 1), backend="numpy")
    assert isinstance(ind, ps.Independent) and isinstance(ind.base_dist, _MyNormal)
    assert torch.equal(ind.sample((2,), seed=5), ind.sample((2,), seed=5))
    m = ps.wrap(td.MixtureSameFamily(td.Categorical(logits=torch.zeros(3)),
                                     _MyNormal(torch.zeros(3), 1.0)))
    assert m.sample((2,), seed=1).shape == (2,)
    with pytest.raises(ps.UnsupportedFamilyError):  # the distribution itself: still refused
        ps.wrap(_MyNormal(torch.zeros(3), 1.0))


def test_wrap_keeps_the_backend_a_distribution_chose_and_combinators_say_theirs() -> None:
    # an outside trial: wrap(numpy distribution, backend="torch") returned a torch copy
    # without a word, and combinators had no .backend (their repr named it)
    d = ps.Normal(torch.zeros(2), 1.0, backend="numpy")
    with pytest.raises(ps.InvalidParameterError, match="Conflicting backends.*'torch'.*'numpy'"):
        ps.wrap(d, backend="torch")
    assert ps.wrap(d, backend="numpy").backend == "numpy"  # the same one: fine
    assert ps.wrap(ps.Normal(0.0, 1.0), backend="numpy").backend == "numpy"  # none chosen
    assert ps.Independent(d, 1).backend is None
    assert ps.Independent(ps.Normal(torch.zeros(2), 1.0), 1, backend="numpy").backend == "numpy"
    mix = ps.MixtureSameFamily(ps.Categorical(logits=torch.zeros(2)),
                               ps.Normal(torch.zeros(2), 1.0), backend="numpy")
    assert mix.backend == "numpy"
    t = ps.TransformedDistribution(ps.Normal(0.0, 1.0), [td.ExpTransform()], backend="numpy")
    assert t.backend == "numpy" and ps.LogNormal(0.0, 1.0, backend="numpy").backend == "numpy"


def test_meta_parameters_with_a_seed_draw_meta_values_on_the_torch_backend() -> None:
    loc = torch.zeros(3, device="meta")
    d = ps.Independent(ps.Normal(loc, torch.ones(3, device="meta"), validate_args=False), 1,
                       backend="torch")
    for kw in ({"seed": 0}, {}, {"generator": torch.Generator()}):
        x = d.sample((4,), **kw)
        assert x.is_meta and x.shape == (4, 3)
