"""Bad input gets the documented polysample error, never a raw library exception.

One table of bad inputs, run on every available backend (each case only where the backend
offers its family). ``pytest.raises`` with the polysample class fails on a raw ``ValueError``
or ``RuntimeError`` from torch, NumPy or TFP.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch

import polysample as ps
from conftest import AVAILABLE

NAN = float("nan")

def _sample_with(**kwargs: Any) -> Callable[[str], Any]:
    shape = kwargs.pop("shape")
    return lambda b: ps.Normal(0.0, 1.0, backend=b).sample(shape, **kwargs)


def _relaxed(family: str, temperature: Any) -> Callable[[str], Any]:
    return lambda b: getattr(ps, family)(temperature, probs=torch.tensor([0.3, 0.7]), backend=b)


# (id, family, action(backend) -> anything, error, regex the message must contain)
Case = tuple[str, str, Callable[[str], Any], type, str]

CASES: list[Case] = [
    # parameters
    ("negative-scale", "Normal", lambda b: ps.Normal(0.0, -1.0, backend=b),
     ps.InvalidParameterError, "scale"),
    ("negative-rate-tensor", "Gamma",
     lambda b: ps.Gamma(torch.tensor([1.0, 2.0]), torch.tensor([1.0, -2.0]), backend=b),
     ps.InvalidParameterError, "rate"),
    ("probs-above-one", "Bernoulli", lambda b: ps.Bernoulli(probs=1.5, backend=b),
     ps.InvalidParameterError, "probs"),
    ("probs-below-zero", "Binomial",
     lambda b: ps.Binomial(10, probs=torch.tensor([-0.1]), backend=b),
     ps.InvalidParameterError, "probs"),
    ("probs-not-summing", "Categorical",
     lambda b: ps.Categorical(probs=torch.tensor([0.5, -0.5, 1.0]), backend=b),
     ps.InvalidParameterError, "probs"),
    ("nan-loc", "Normal", lambda b: ps.Normal(NAN, 1.0, backend=b),
     ps.InvalidParameterError, "loc"),
    ("nan-concentration", "Beta",
     lambda b: ps.Beta(torch.tensor([NAN]), torch.tensor([1.0]), backend=b),
     ps.InvalidParameterError, "polysample.Beta"),
    ("unbroadcastable-shapes", "Normal",
     lambda b: ps.Normal(torch.zeros(2), torch.ones(3), backend=b),
     ps.InvalidParameterError, "size of tensor"),
    ("wrong-event-shape", "MultivariateNormal",
     lambda b: ps.MultivariateNormal(torch.zeros(3), scale_tril=torch.eye(2), backend=b),
     ps.InvalidParameterError, "loc.*event size 2.*Received: loc of shape \\(3,\\)"),
    # A wrong type is named with the argument (torch's ValueError names none; Multinomial's
    # says "inhomogeneous total_count is not supported"), as the TypeError subclass.
    ("string-parameter", "Normal", lambda b: ps.Normal("zero", 1.0, backend=b),
     ps.InvalidParameterTypeError, "expected loc to be a number or a torch.Tensor. Received: "
     "str 'zero'"),
    ("none-parameter", "Exponential", lambda b: ps.Exponential(None, backend=b),
     ps.InvalidParameterTypeError, "expected rate to be a number or a torch.Tensor. Received: "
     "NoneType None"),
    # A draw of no values still needs a torch shape: sizes are 64-bit (raw TypeError and
    # RuntimeError of torch.empty before).
    ("empty-draw-dimension-beyond-int64", "Normal",
     lambda b: ps.Normal(torch.zeros(3), 1.0, backend=b).sample((0, 2**64)),
     ps.InvalidParameterTypeError, "holds no values, but torch's tensor sizes are 64-bit"),
    ("empty-batch-dimension-beyond-int64", "Normal",
     lambda b: ps.Normal(torch.zeros(0), 1.0, backend=b).rsample((2**63,)),
     ps.InvalidParameterTypeError, "Received: sample_shape=.9223372036854775808,.."),
    ("empty-draw-size-overflow", "Normal",
     lambda b: ps.Normal(torch.zeros(0), 1.0, backend=b).sample((2**62, 4)),
     ps.InvalidParameterRuntimeError, "the product of the nonzero ones, is beyond 2..63 - 1"),
    ("list-parameter", "Normal", lambda b: ps.Normal([0.0, 1.0], 1.0, backend=b),
     ps.InvalidParameterTypeError, "Received: list .0.0, 1.0.. Give loc as a number or a tensor"),
    # torch broadcasts Python numbers only: its ValueError named no argument (an outside trial)
    ("numpy-scalar-parameter", "Normal", lambda b: ps.Normal(np.float32(0.0), 1.0, backend=b),
     ps.InvalidParameterTypeError, "Received: float32 .*Give loc as a Python number"),
    ("string-total-count", "Multinomial",
     lambda b: ps.Multinomial("a", probs=torch.ones(2) / 2, backend=b),
     ps.InvalidParameterTypeError, "expected total_count to be a number or a torch.Tensor"),
    ("none-total-count", "Multinomial",
     lambda b: ps.Multinomial(None, probs=torch.ones(2) / 2, backend=b),
     ps.InvalidParameterTypeError, "expected total_count to be a number or a torch.Tensor"),
    # torch checks no temperature: zero drew NaN, a negative one a reflected law, silently
    *[(f"temperature-{name}", family,
       _relaxed(family, t),
       ps.InvalidParameterError, "temperature must be positive")
      for family in ("RelaxedBernoulli", "RelaxedOneHotCategorical")
      for name, t in [("zero", 0.0), ("negative", -1.0),
                      ("tensor-with-a-zero", torch.tensor([0.5, 0.0]))]],
    # sample_shape
    *[(f"sample-shape-{name}", "Normal",
       _sample_with(shape=shape),
       ps.InvalidParameterError, "Expected sample_shape")
      for name, shape in [("negative", (-1,)), ("negative-int", -3), ("float", (2.5,)),
                          ("float-scalar", 2.0), ("string", "10"), ("none", None),
                          ("bool", True), ("nested", ((2,),))]],
    ("rsample-shape-negative", "Normal",
     lambda b: ps.Normal(0.0, 1.0, backend=b).rsample((3, -1)),
     ps.InvalidParameterError, "Expected sample_shape"),
    # seeds
    *[(f"seed-{name}", "Normal",
       _sample_with(shape=(2,), seed=seed),
       ps.InvalidParameterError, "seed")
      for name, seed in [("negative", -5), ("float", 1.5), ("string", "7"), ("bool", False),
                         ("list", [1, 2]), ("numpy-negative", np.int64(-1))]],
    ("seed-and-generator", "Normal",
     lambda b: ps.Normal(0.0, 1.0, backend=b).rsample(seed=1, generator=torch.Generator()),
     ps.InvalidParameterError, "not both"),
    ("generator-not-a-generator", "Normal",
     lambda b: ps.Normal(0.0, 1.0, backend=b).sample(generator=np.random.default_rng(0)),
     ps.InvalidParameterError, "torch.Generator"),
    # backend names
    ("unknown-backend", "Normal",
     lambda b: ps.Normal(0.0, 1.0, backend=b + "-does-not-exist").sample(),
     ps.UnknownBackendError, "Unknown backend"),
    ("unknown-backend-context", "Normal",
     lambda b: ps.use_backend(b + "-does-not-exist").__enter__(),
     ps.UnknownBackendError, "Expected one of"),
    # log_prob
    ("log-prob-float", "Normal", lambda b: ps.Normal(0.0, 1.0, backend=b).log_prob(0.3),
     ps.InvalidParameterError, "torch.Tensor"),
    ("log-prob-list", "Normal", lambda b: ps.Normal(0.0, 1.0, backend=b).log_prob([0.3]),
     ps.InvalidParameterError, "torch.Tensor"),
    # torch.distributions.Gamma converts a value itself (so polysample.Gamma accepts an
    # ndarray, tests/test_torch_compat.py); Normal, like most families, refuses one.
    ("log-prob-ndarray", "Normal",
     lambda b: ps.Normal(2.0, 1.0, backend=b).log_prob(np.ones(2)),
     ps.InvalidParameterError, "torch.Tensor"),
    ("log-prob-negative-for-exponential", "Exponential",
     lambda b: ps.Exponential(1.0, backend=b).log_prob(torch.tensor([-1.0])),
     ps.InvalidParameterError, "support"),
    ("log-prob-fraction-for-poisson", "Poisson",
     lambda b: ps.Poisson(2.0, backend=b).log_prob(torch.tensor(1.5)),
     ps.InvalidParameterError, "support"),
    ("log-prob-outside-unit-interval", "Beta",
     lambda b: ps.Beta(2.0, 2.0, backend=b).log_prob(torch.tensor(1.5)),
     ps.InvalidParameterError, "support"),
    ("log-prob-unbroadcastable", "Normal",
     lambda b: ps.Normal(torch.zeros(3), 1.0, backend=b).log_prob(torch.zeros(2)),
     ps.InvalidParameterError, "broadcastable"),
    # torch's icdf returns NaN for probabilities outside [0, 1] (validate_args on: refused)
    ("icdf-outside-the-unit-interval", "Normal",
     lambda b: ps.Normal(torch.zeros(3), 1.0, backend=b).icdf(torch.tensor([0.5, 2.0, NAN])),
     ps.InvalidParameterError, r"probabilities in \[0, 1\]. Received: \[2.0, nan\]"),
    # torch's expand raised a raw RuntimeError for a shape the batch does not broadcast to
    ("expand-to-an-unbroadcastable-shape", "Normal",
     lambda b: ps.Normal(torch.zeros(3), 1.0, backend=b).expand((2, 4)),
     ps.InvalidParameterRuntimeError, r"Cannot expand Normal of batch shape \(3,\)"),
    # torch checks only the upper bound of reinterpreted_batch_ndims: -1 gave an Independent
    # whose log_prob summed nothing
    ("independent-negative-ndims", "Normal",
     lambda b: ps.Independent(ps.Normal(torch.zeros(2, 3), 1.0, backend=b), -1),
     ps.InvalidParameterError, "non-negative int.*Received: int -1"),
    ("independent-float-ndims", "Normal",
     lambda b: ps.Independent(ps.Normal(torch.zeros(2, 3), 1.0, backend=b), 1.5),
     ps.InvalidParameterTypeError, "non-negative int.*Received: float 1.5"),
    ("expand-independent", "Normal",
     lambda b: ps.Independent(ps.Normal(torch.zeros(2, 3), 1.0, backend=b), 1).expand((5,)),
     ps.InvalidParameterRuntimeError, "Cannot expand"),
    # An outside hostile-input trial (2026-12-06): torch's expand kept -1 in the batch shape,
    # and the draws then broke the object's shapes (BackendContractError on torch and tfp)
    ("expand-negative-size", "Gamma",
     lambda b: ps.Gamma(torch.ones(3), 1.0, backend=b).expand((-1,)),
     ps.InvalidParameterRuntimeError, "sizes must be non-negative"),
    # ... parameters on two devices: the torch backend drew CPU numbers from a meta scale
    ("parameters-on-two-devices", "Normal",
     lambda b: ps.Normal(torch.zeros(3), torch.ones(3, device="meta"), validate_args=False,
                         backend=b).sample(),
     ps.InvalidParameterRuntimeError, "different devices: loc on cpu, scale on meta"),
    # ... a non-square scale_tril let through by validate_args=False
    ("non-square-scale-tril-unvalidated", "Wishart",
     lambda b: ps.Wishart(torch.tensor(4.0), scale_tril=torch.ones(2, 3), validate_args=False,
                          backend=b),
     ps.InvalidParameterError, "expected scale_tril to be square"),
    ("non-square-scale-tril-unvalidated-mvn", "MultivariateNormal",
     lambda b: ps.MultivariateNormal(torch.zeros(3), scale_tril=torch.ones(2, 3),
                                     validate_args=False, backend=b),
     ps.InvalidParameterError, "expected scale_tril to be square"),
    # ... an unbroadcastable value, unvalidated: another class on the backends that score
    ("log-prob-unbroadcastable-unvalidated", "Normal",
     lambda b: ps.Normal(torch.zeros(3), 1.0, validate_args=False, backend=b).log_prob(
         torch.zeros(2)),
     ps.InvalidParameterRuntimeError, "Invalid value for Normal.log_prob"),
    # ... a meta value for parameters with values: torch's bare NotImplementedError (Gamma)
    ("meta-value-for-parameters-with-values", "Gamma",
     lambda b: ps.Gamma(torch.ones(3), 1.0, backend=b).log_prob(torch.ones(3, device="meta")),
     ps.InvalidParameterRuntimeError, "a meta tensor"),
    # ... a result of more than 64 dimensions: a raw RuntimeError on torch
    ("sample-shape-beyond-64-dimensions", "Normal",
     lambda b: ps.Normal(torch.zeros(2), 1.0, backend=b).sample((1,) * 70),
     ps.InvalidParameterError, "at most 64 dimensions"),
]

PARAMS = [
    pytest.param(backend, action, error, pattern, id=f"{backend}-{cid}")
    for backend in AVAILABLE
    for cid, family, action, error, pattern in CASES
    if family in ps.load_backend(backend).families()
]


@pytest.mark.parametrize("backend,action,error,pattern", PARAMS)
def test_bad_input_raises_the_documented_error(
    backend: str, action: Callable[[str], Any], error: type, pattern: str
) -> None:
    with pytest.raises(error, match=pattern) as info:
        action(backend)
    assert isinstance(info.value, ps.PolysampleError)


# ============================================================ complex numbers
def _complex_cases() -> list[Any]:
    from polysample.conformance.grids import example_params
    from polysample.core.families import FAMILIES

    out = []
    for family in sorted(FAMILIES):
        params = example_params(family, (2,))
        for name, value in params.items():
            if isinstance(value, torch.Tensor) and value.is_floating_point():
                out.append(pytest.param(family, name, id=f"{family}-{name}"))
    return out


@pytest.mark.parametrize("validate", [True, False])
@pytest.mark.parametrize("family,name", _complex_cases())
def test_a_complex_parameter_is_refused_at_construction(family: str, name: str,
                                                        validate: bool) -> None:
    # torch failed in a different way per family (NotImplementedError, a complex draw that
    # broke the backend contract), and Binomial and NegativeBinomial drew from the real part
    from polysample.conformance.grids import example_params

    params = example_params(family, (2,))
    params[name] = params[name].to(torch.complex64)
    with pytest.raises(ps.InvalidParameterTypeError, match=f"real parameters.*{name}"):
        getattr(ps, family)(**params, validate_args=validate)


def test_a_complex_python_number_is_refused() -> None:
    with pytest.raises(ps.InvalidParameterTypeError, match=r"complex number \(1\+2j\)"):
        ps.Normal(1 + 2j, 1.0)


@pytest.mark.parametrize("method", ["log_prob", "cdf", "icdf"])
@pytest.mark.parametrize("backend", [b for b in AVAILABLE if b in ("torch", "numpy", "tfp")])
def test_a_complex_value_is_refused_by_the_scoring_methods(backend: str, method: str) -> None:
    # torch scored Normal's complex values as complex numbers and Gamma's as -inf; tfp took the
    # real part
    value = torch.full((2,), 0.5, dtype=torch.complex64)
    for d in (ps.Normal(0.0, 1.0, backend=backend), ps.Gamma(2.0, 1.0, backend=backend)):
        for validate in (True, False):
            d._validate_args = validate
            with pytest.raises(ps.InvalidParameterTypeError, match="expected a real value"):
                getattr(d, method)(value)


@pytest.mark.parametrize("backend", ["torch", "numpy"])
def test_a_one_dimensional_integer_tensor_is_a_sample_shape_as_in_torch(backend):
    # torch.distributions takes torch.Size(tensor): code passing a tensor shape runs unchanged
    want = torch.distributions.Normal(0.0, 1.0).sample(torch.tensor([2, 3])).shape
    d = ps.Normal(0.0, 1.0, backend=backend)
    assert d.sample(torch.tensor([2, 3])).shape == want == (2, 3)
    assert d.rsample(np.array([4])).shape == (4,)
    for bad in (torch.tensor([2.0]), torch.tensor(4), torch.tensor([True]), np.array([[2]])):
        with pytest.raises(ps.InvalidParameterTypeError, match="Expected sample_shape"):
            d.sample(bad)
    with pytest.raises(ps.InvalidParameterRuntimeError, match="Expected sample_shape"):
        d.sample(torch.tensor([-1]))


@pytest.mark.parametrize("backend", AVAILABLE)
def test_values_outside_the_law_score_alike_on_every_backend(backend):
    # An outside trial: values torch's support check lets through scored differently per
    # backend (TFP's Multinomial gave [1, 1] of total 3 a probability of 1.5, torch 0.5 as if
    # the total were 2; TFP's and SciPy's Uniform scored its `high` as inside; TFP's
    # Categorical gave an index out of range a probability of 1; SciPy's wrapped -1 around).
    if backend == "auto":
        pytest.skip("routes to the others")
    two = torch.tensor([0.5, 0.5])
    assert ps.Multinomial(3, two, backend=backend).log_prob(torch.tensor([1.0, 1.0])) == -math.inf
    assert ps.Multinomial(3, two, backend=backend).log_prob(
        torch.tensor([1.0, 2.0])).item() == pytest.approx(math.log(0.375))
    assert ps.Uniform(0.0, 1.0, backend=backend).log_prob(torch.tensor([1.0, 0.5])).tolist() == [
        -math.inf, 0.0]
    for validate in (True, False):
        d = ps.Categorical(torch.tensor([0.25, 0.75]), validate_args=validate, backend=backend)
        for bad in ([2], [-1]):
            with pytest.raises(ps.InvalidParameterError, match=r"category indices in \[0, 2\)"):
                d.log_prob(torch.tensor(bad))


@pytest.mark.parametrize("backend", AVAILABLE)
def test_bool_values_are_scored_as_numbers_and_indices_on_every_backend(backend):
    # torch's Bernoulli.log_prob raised on a bool tensor ("subtraction with two bool
    # tensors") where TFP's scored it; TFP's Categorical refused one that torch takes.
    if backend == "auto":
        pytest.skip("routes to the others")
    b = ps.Bernoulli(torch.tensor([0.3, 0.6]), backend=backend)
    assert b.log_prob(torch.tensor([True, False])).tolist() == pytest.approx(
        [math.log(0.3), math.log(0.4)], rel=1e-6)
    c = ps.Categorical(torch.tensor([0.25, 0.75]), backend=backend)
    assert c.log_prob(torch.tensor([True, False])).tolist() == pytest.approx(
        [math.log(0.75), math.log(0.25)], rel=1e-6)


@pytest.mark.parametrize("backend", AVAILABLE)
def test_meta_tensors_are_scored_as_torch_scores_them_on_every_backend(backend):
    # tfp, tfp-tf and scipy raised their library's error (Tensor.item(), "Cannot copy out of
    # meta tensor"); torch's formula gives the meta result's shape
    fams = ps.load_backend(backend).families()
    for family, make, value in (
            ("Normal", lambda m: ps.Normal(torch.zeros(3, device=m), torch.ones(3, device=m),
                                          validate_args=False, backend=backend),
             torch.zeros(2, 3, device="meta")),
            ("Gamma", lambda m: ps.Gamma(torch.ones(3, device=m), torch.ones(3, device=m),
                                        validate_args=False, backend=backend),
             torch.ones(3, device="meta"))):
        if family not in fams:
            continue
        out = make("meta").log_prob(value)
        assert out.is_meta and out.shape == torch.broadcast_shapes(value.shape, (3,))


_WRONG_SIDE = {
    "Normal(scale=-1)": (lambda b: ps.Normal(0.0, torch.tensor(-1.0), validate_args=False,
                                             backend=b), "scale must be at least 0.0"),
    "Bernoulli(1.5)": (lambda b: ps.Bernoulli(torch.tensor(1.5), validate_args=False, backend=b),
                       "probs must be in [0.0, 1.0]"),
    "Bernoulli(-0.5)": (lambda b: ps.Bernoulli(torch.tensor(-0.5), validate_args=False,
                                               backend=b), "probs must be in [0.0, 1.0]"),
    "Categorical([-1, 1, 1])": (lambda b: ps.Categorical(torch.tensor([-1.0, 1.0, 1.0]),
                                                         validate_args=False, backend=b),
                                "probs must be non-negative in every entry"),
    "Gamma(-1)": (lambda b: ps.Gamma(torch.tensor(-1.0), 1.0, validate_args=False, backend=b),
                  "concentration must be at least 0.0"),
    "MultivariateNormal(upper scale_tril)": (
        lambda b: ps.MultivariateNormal(torch.zeros(2), scale_tril=torch.tensor([[1.0, 5.0],
                                                                                  [0.0, 1.0]]),
                                        validate_args=False, backend=b),
        "scale_tril must be lower triangular"),
}


@pytest.mark.parametrize("backend", AVAILABLE)
@pytest.mark.parametrize("case", sorted(_WRONG_SIDE))
def test_validate_args_false_refuses_the_wrong_side_of_a_bound_alike_at_every_size(backend,
                                                                                   case):
    # An outside trial: with validate_args=False, Bernoulli(1.5) drew ones on numpy and the tfp
    # backends and raised on torch; torch's Normal(0, -1) drew 255 values and raised for 256;
    # auto answered by the size of the call; the tfp backends read the lower triangle only.
    make, said = _WRONG_SIDE[case]
    for n in (3, 300, 10_000):
        with pytest.raises(ps.InvalidParameterRuntimeError) as info:
            make(backend).sample((n,), seed=1)
        assert isinstance(info.value, RuntimeError) and said in str(info.value)
        assert "validate_args=False" in str(info.value)


@pytest.mark.parametrize("backend", AVAILABLE)
def test_validate_args_false_draws_on_a_bound_as_torch_does(backend):
    x = ps.Normal(torch.tensor(2.0), torch.tensor(0.0), validate_args=False,
                  backend=backend).sample((300,), seed=1)
    assert torch.equal(x, torch.full((300,), 2.0))


def test_a_row_of_zero_probabilities_is_named_as_such():
    with pytest.raises(ps.InvalidParameterError, match="all 0 gives NaN"):
        ps.Categorical(torch.zeros(3), validate_args=False).sample()


@pytest.mark.parametrize("dim", [2.5, 3.0, torch.tensor(3.0)], ids=["2.5", "3.0", "tensor"])
def test_a_fractional_lkj_dim_is_named(dim):
    # torch's TypeError ("torch.Size() takes an iterable of 'int'") named no argument
    with pytest.raises(ps.InvalidParameterTypeError, match="expected dim.*to be an int") as info:
        ps.LKJCholesky(dim, torch.tensor(1.0))
    assert isinstance(info.value, TypeError)


def test_numpy_scalars_where_torch_takes_them() -> None:
    # np.float64 is a Python float; LKJCholesky's dim is not broadcast (torch takes np.int64)
    assert ps.Normal(np.float64(0.5), 1.0).sample((2,), seed=1).dtype == torch.float32
    assert ps.LKJCholesky(np.int64(3), 1.0).sample((2,), seed=1).shape == (2, 3, 3)
    with pytest.raises(ps.InvalidParameterTypeError, match="total_count"):
        ps.Multinomial(np.int64(10), torch.tensor([0.5, 0.5]))


def test_an_out_of_support_message_is_bounded() -> None:
    # torch's message prints the whole value tensor (1,000 zeros: about 24 KB, an outside
    # trial); polysample's quotes it cut at a word boundary
    with pytest.raises(ps.InvalidParameterError, match="outside|support") as info:
        ps.LogNormal(0.0, 1.0).log_prob(torch.zeros(1000))
    assert len(str(info.value)) < 1500 and "Expected what" in str(info.value)


def test_a_parameter_of_more_than_64_dimensions_is_refused_naming_torchs_limit() -> None:
    # torch's reductions refuse such a tensor with a bare RuntimeError (an outside trial: it
    # came from polysample's own finiteness check)
    deep = torch.zeros([1] * 70)
    with pytest.raises(ps.InvalidParameterRuntimeError, match="at most 64 dimensions.*70"):
        ps.Normal(deep, 1.0)
    with pytest.raises(RuntimeError):
        ps.Normal(0.0, scale=torch.ones([1] * 65))
