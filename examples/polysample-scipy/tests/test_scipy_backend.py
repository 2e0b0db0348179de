"""What the scipy backend promises beyond the conformance suite (tests/test_conformance.py)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest
import torch
from polysample_scipy import OMITTED, ScipyBackend
from polysample_scipy.scores import SCORES

import polysample as ps
from polysample.conformance import example_params

BACKEND = ScipyBackend()  # judged as an instance: no registration needed


def test_registering_and_listing_the_backend_does_not_import_scipy() -> None:
    code = ("import sys, polysample_scipy as m\n"
            "b = m.ScipyBackend(); b.check_available()\n"
            "print(len(b.families()), b.version() != '', 'scipy' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["32", "True", "False"]


def test_every_torch_family_is_offered_or_left_out_with_a_reason() -> None:
    offered = set(BACKEND.families())
    assert offered.isdisjoint(OMITTED)
    assert offered | set(OMITTED) == set(ps.plugin.FAMILIES)
    with pytest.raises(ps.UnsupportedFamilyError, match="scipy.stats has no LKJ"):
        ps.LKJCholesky(3, 1.0, backend=BACKEND).sample()


def test_a_missing_scipy_makes_the_backend_unavailable(monkeypatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "scipy" else real(name, *a))
    with pytest.raises(ps.BackendUnavailableError, match="pip install scipy"):
        BACKEND.check_available()


def test_scipy_rejecting_parameters_is_an_invalid_parameter_error() -> None:
    # Beyond what torch's constructor validates: SciPy refuses a negative total_count.
    d = ps.NegativeBinomial(torch.tensor(-1.0), torch.tensor(0.5), backend=BACKEND,
                            validate_args=False)
    with pytest.raises(ps.InvalidParameterError, match="SciPy could not draw NegativeBinomial"):
        d.sample((2,), seed=0)


def test_a_binomial_count_past_int64_is_refused_with_what_to_do() -> None:
    # SciPy draws int64 counts: 1e20 cast to int64 was negative, and SciPy's message spoke of
    # a "scale parameter".
    d = ps.Binomial(torch.tensor([10.0, 1e20], dtype=torch.float64), torch.tensor(0.3),
                    backend=BACKEND)
    with pytest.raises(ps.InvalidParameterError,
                       match=r"total_count below 2\^63.*Received total_count = 1e\+20.*torch"):
        d.sample((2,), seed=0)
    assert ps.Binomial(torch.tensor(1e18, dtype=torch.float64), torch.tensor(0.5),
                       backend=BACKEND).sample(seed=0).item() > 4e17


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_student_t_draws_past_the_float_range_are_held_at_its_ends(dtype) -> None:
    # SciPy's t overflows to +-inf at small df: about half the draws at df = 1e-3.
    x = ps.StudentT(torch.tensor(1e-3, dtype=dtype), backend=BACKEND).sample((1000,), seed=0)
    big = torch.finfo(dtype).max
    assert torch.isfinite(x).all()
    assert (x == big).any() and (x == -big).any()


def _leaves(params: dict) -> dict[str, torch.Tensor]:
    out = {}
    for name, value in params.items():
        if isinstance(value, torch.Tensor) and value.is_floating_point():
            params[name] = out[name] = value.detach().clone().requires_grad_(True)
    return out


@pytest.mark.parametrize("family", sorted(SCORES))
def test_log_prob_and_its_gradients_equal_torchs(family: str) -> None:
    """SciPy's density, and the derivatives written in scores.py, against torch's autograd of
    torch's log_prob (polysample's torch backend: torch.distributions with its mended defects):
    in the value and in every floating parameter, including those the suite's gradcheck leaves
    out (scale_tril, probs, total_count)."""
    params = example_params(family, (2,), torch.float64)
    leaves = _leaves(params)
    reference = getattr(ps, family)(**params, backend="torch")
    value = reference.sample((3,), seed=0)
    continuous = ps.plugin.FAMILIES[family].kind == "continuous"
    if continuous:
        value.requires_grad_(True)
        leaves = {**leaves, "value": value}
    ours = getattr(ps, family)(**params, backend=BACKEND).log_prob(value)
    theirs = reference.log_prob(value)
    # rtol: torch's log I0 (VonMises) is a polynomial approximation good to about 1e-8.
    torch.testing.assert_close(ours, theirs, rtol=1e-7, atol=1e-10)
    names = list(leaves)
    got = torch.autograd.grad(ours.sum(), [leaves[k] for k in names], allow_unused=True)
    want = torch.autograd.grad(theirs.sum(), [leaves[k] for k in names], allow_unused=True)
    for name, g, w in zip(names, got, want):
        w = torch.zeros_like(leaves[name]) if w is None else w
        assert g is not None, f"no gradient to {name}"
        if name == "scale_tril":
            # Only the lower triangle is a parameter. torch's Wishart (cholesky_solve) also
            # returns a gradient above the diagonal, which the density does not depend on.
            assert not g.triu(1).any()
            g, w = g.tril(), w.tril()
        torch.testing.assert_close(g, w, rtol=1e-6, atol=1e-8, msg=f"d log_prob / d {name}")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_probability_families_given_large_logits_score_exactly(dtype):
    # SciPy's logpmf takes probabilities, which round to 1.0 for logits of 17 in float32:
    # these families are scored by torch, from the logits (-17, gradient -1; it was -inf, NaN).
    assert not {"Bernoulli", "Binomial", "Geometric", "NegativeBinomial", "Categorical",
                "OneHotCategorical", "Multinomial"} & set(SCORES)
    logits = torch.tensor(17.0, dtype=dtype, requires_grad=True)
    lp = ps.Bernoulli(logits=logits, backend=BACKEND).log_prob(torch.tensor(0.0, dtype=dtype))
    lp.backward()
    assert lp.item() == pytest.approx(-17.0, rel=1e-6) and logits.grad.item() == pytest.approx(-1.0)
    cat = ps.Categorical(logits=torch.tensor([0.0, -100.0, 100.0], dtype=dtype), backend=BACKEND)
    assert cat.log_prob(torch.tensor(1)).item() == pytest.approx(-200.0, rel=1e-6)
