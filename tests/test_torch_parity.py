"""Cases from an independent torch-parity trial (2026-12-05): what torch code does with
``torch.distributions`` that polysample's classes refused or answered differently."""

from __future__ import annotations

import inspect

import pytest
import torch
import torch.distributions as td

import polysample as ps
from conftest import AVAILABLE
from polysample.conformance import check_backend
from polysample.core.params import Params

BACKENDS = [b for b in ("torch", "numpy", "tfp", "tfp-tf", "scipy") if b in AVAILABLE]


@pytest.mark.parametrize("backend", BACKENDS)
def test_wishart_with_a_python_number_df_and_a_batch_of_matrices(backend: str) -> None:
    # torch keeps a Python-number df as a 0-d tensor beside the batch (2,): the scipy plugin
    # read it per batch element and raised a raw IndexError.
    cov = torch.tensor([[2.0, 0.3], [0.3, 1.5]]).expand(2, 2, 2)
    d = ps.Wishart(4.0, covariance_matrix=cov, backend=backend)
    assert d.sample((3,)).shape == (3, 2, 2, 2)
    assert d.log_prob(torch.eye(2)).shape == (2,)


def test_params_reach_backends_broadcast_to_the_batch_shape() -> None:
    cov = torch.tensor([[2.0, 0.3], [0.3, 1.5]]).expand(2, 2, 2)
    d = td.Wishart(4.0, covariance_matrix=cov)
    assert d.df.shape == ()  # torch's own attribute is not broadcast
    p = Params("Wishart", d, d.batch_shape, d.event_shape, torch.float32, torch.float32,
               torch.device("cpu"))
    assert p["df"].shape == (2,) and p["scale_tril"].shape == (2, 2, 2)
    # a temperature of fewer dimensions than its event rank stays as given
    r = td.RelaxedOneHotCategorical(0.5, probs=torch.ones(2, 3) / 3)
    q = Params("RelaxedOneHotCategorical", r, r.batch_shape, r.event_shape, torch.float32,
               torch.float32, torch.device("cpu"))
    assert q["temperature"].shape == ()


def test_the_broadcast_rule_tries_each_parameter_without_batch_dimensions() -> None:
    report = check_backend("torch", families=["Wishart", "Uniform"], layers=("semantics",))
    msgs = {r.family: r.message for r in report.results if r.check == "broadcast"}
    assert "each of df, scale_tril without batch dimensions" in msgs["Wishart"]
    assert "each of low, high without batch dimensions" in msgs["Uniform"]


@pytest.mark.parametrize("backend", ["torch", "numpy"])
def test_a_sample_shape_of_0d_integer_tensors_is_taken_as_torch_takes_it(backend: str) -> None:
    n = torch.tensor(2)
    assert td.Normal(0.0, 1.0).sample((n,)).shape == (2,)
    d = ps.Normal(0.0, 1.0, backend=backend)
    assert d.sample((n, torch.tensor(3, dtype=torch.int32))).shape == (2, 3)
    for bad in [(torch.tensor(2.0),), (True,), (torch.tensor(True),)]:
        with pytest.raises(ps.InvalidParameterTypeError):
            d.sample(bad)
    with pytest.raises(ps.InvalidParameterRuntimeError):
        d.sample((torch.tensor(-1),))


def test_classes_show_torchs_constructor_signature_with_backend() -> None:
    for name in ("Normal", "Wishart", "Multinomial", "Chi2"):
        ours = inspect.signature(getattr(ps, name))
        theirs = inspect.signature(getattr(td, name))
        assert list(ours.parameters)[:-1] == list(theirs.parameters), name
        backend = ours.parameters["backend"]
        assert backend.kind is inspect.Parameter.KEYWORD_ONLY and backend.default is None


def test_a_temperature_of_the_wrong_shape_is_told_the_shape_that_works() -> None:
    probs = torch.tensor([[1.0, 3.0, 4.0], [1.0, 1.0, 8.0]])
    with pytest.raises(ps.InvalidParameterRuntimeError, match=r"shape \(2, 1\) "
                       r"\(temperature.reshape\(2, 1\)\)"):
        ps.RelaxedOneHotCategorical(torch.tensor([0.5, 2.0]), probs=probs)
    assert ps.RelaxedOneHotCategorical(torch.tensor([[0.5], [2.0]]),
                                       probs=probs).rsample().shape == (2, 3)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("family,params,value", [
    ("Gamma", {"concentration": torch.tensor([2.0]), "rate": torch.tensor(1.0)},
     torch.tensor([0.5, 1.0], dtype=torch.float64)),
    ("Uniform", {"low": torch.tensor([0.0, 0.25]), "high": torch.tensor(2.0)},
     torch.tensor([0.5, 1.0], dtype=torch.float64)),
    ("Normal", {"loc": torch.tensor([0.5]), "scale": torch.tensor(1.0)},
     torch.tensor([0.5, 1.0], dtype=torch.float64)),
    ("Bernoulli", {"probs": torch.tensor([0.3], dtype=torch.float64)},
     torch.tensor([0.0, 1.0])),
])
def test_log_prob_of_a_value_of_another_dtype_has_torchs_dtype(
        backend: str, family: str, params: dict, value: torch.Tensor) -> None:
    # torch casts the value to the parameters' dtype for Gamma and Uniform (float32 results),
    # promotes for Normal (float64) and scores Bernoulli's float32 value in float32: the
    # result's dtype was each backend's own promotion on tfp, tfp-tf and scipy.
    want = getattr(td, family)(**params).log_prob(value)
    got = getattr(ps, family)(**params, backend=backend).log_prob(value)
    assert got.dtype == want.dtype
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


class _MyNormal(td.Normal):
    pass


@pytest.mark.parametrize("backend", ["torch", "numpy"])
def test_combinators_take_components_polysample_does_not_route(backend: str) -> None:
    with pytest.raises(ps.UnsupportedFamilyError):
        ps.wrap(_MyNormal(0.0, 1.0))  # wrap itself still refuses: a subclass may draw its way
    base = _MyNormal(torch.zeros(3), 1.0)
    ind = ps.Independent(base, 1, backend=backend)
    assert ind.sample((2,)).shape == (2, 3)
    torch.testing.assert_close(ind.log_prob(torch.zeros(3)),
                               td.Independent(base, 1).log_prob(torch.zeros(3)))
    state = torch.get_rng_state()
    a, b = ind.sample((4,), seed=7), ind.sample((4,), seed=7)
    assert torch.equal(a, b) and not torch.equal(a, ind.sample((4,), seed=8))
    assert torch.equal(torch.get_rng_state(), state)  # seeded draws leave torch's stream alone
    g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    assert torch.equal(ind.sample(generator=g1), ind.sample(generator=g2))
    mix = ps.MixtureSameFamily(td.Categorical(torch.ones(3)), base, backend=backend)
    assert mix.sample((5,)).shape == (5,)
    assert torch.equal(mix.sample((5,), seed=1), mix.sample((5,), seed=1))
    with pytest.raises(ps.NotReparameterizableError):
        mix.rsample()
    tr = ps.TransformedDistribution(base, [td.ExpTransform()], backend=backend)
    assert (tr.rsample(seed=3) > 0).all()
