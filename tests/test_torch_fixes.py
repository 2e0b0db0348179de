"""Defects of torch.distributions that polysample's classes mend on every backend."""

from __future__ import annotations

import pytest
import torch

import polysample as ps


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_generalized_pareto_scores_float64_values(dtype):
    loc, scale = torch.tensor([0.0, 1.0], dtype=dtype), torch.tensor([1.0, 2.0], dtype=dtype)
    conc = torch.tensor([0.0, 0.3], dtype=dtype)
    d = ps.GeneralizedPareto(loc, scale, conc)
    x = torch.tensor([[0.5, 1.5], [2.0, 4.0]], dtype=dtype)
    if dtype == torch.float64:  # torch 2.13 itself raises here (the defect mended)
        with pytest.raises(RuntimeError, match="Double did not match Float"):
            torch.distributions.GeneralizedPareto(loc, scale, conc).log_prob(x)
    ref = torch.distributions.GeneralizedPareto(loc.float(), scale.float(), conc.float())
    got = d.log_prob(x)
    assert got.dtype == dtype
    torch.testing.assert_close(got.float(), ref.log_prob(x.float()), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(d.cdf(x).float(), ref.cdf(x.float()), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(d.log_survival_function(x).float(),
                               ref.log_survival_function(x.float()), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("family,kwargs", [
    ("RelaxedBernoulli", dict(probs=torch.tensor([0.3, 0.6]))),
    ("RelaxedOneHotCategorical", dict(probs=torch.tensor([0.2, 0.3, 0.5]))),
])
def test_relaxed_log_prob_with_a_python_number_temperature(family: str, kwargs: dict) -> None:
    d = getattr(ps, family)(0.5, **kwargs)
    x = d.sample((4,), seed=0)
    with pytest.raises((AttributeError, TypeError)):  # torch 2.13 itself (the defect mended)
        getattr(torch.distributions, family)(0.5, **kwargs).log_prob(x)
    ref = getattr(torch.distributions, family)(torch.tensor(0.5), **kwargs)
    torch.testing.assert_close(d.log_prob(x), ref.log_prob(x))
    assert d.temperature == 0.5 and not isinstance(d.temperature, torch.Tensor)


def test_lkj_cholesky_of_an_empty_batch_keeps_torchs_checks_and_validation_setting() -> None:
    # torch's constructor builds an inner Beta with the default validation, which raises on
    # zero elements (the fix builds it unchecked for an empty batch only)
    with pytest.raises(RuntimeError, match="0 elements"):
        torch.distributions.LKJCholesky(3, torch.ones(0), validate_args=False)
    for validate in (None, True, False):
        d = ps.LKJCholesky(3, torch.ones(0, 2, dtype=torch.float64), validate_args=validate)
        assert d.batch_shape == (0, 2) and d.event_shape == (3, 3)
        assert d._validate_args is (validate is not False)
        assert d._beta.concentration0.shape == (0, 2, 3)
    with pytest.raises(ps.InvalidParameterError, match="dim"):
        ps.LKJCholesky(1, torch.ones(0))
    with pytest.raises(ps.InvalidParameterError, match="concentration"):
        ps.LKJCholesky(3, -torch.ones(1))
