"""Errors: the hierarchy, and a clear message (expected / received / what to do) at each raise site.

The core also guards the user against a backend that breaks the contract: each way of breaking
it below (wrong type, shape, dtype, a tracked ``sample``, a detached ``rsample``) raises
``BackendContractError`` naming the backend.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import torch
import torch.distributions as td

import polysample as ps
from polysample.core.families import family_spec

HIERARCHY = [
    ("UnknownBackendError", ValueError),
    ("BackendUnavailableError", ImportError),
    ("UnsupportedFamilyError", NotImplementedError),
    ("NotReparameterizableError", NotImplementedError),
    ("ConfigError", ValueError),
    ("InvalidParameterError", ValueError),
    ("InvalidParameterTypeError", ValueError),
    ("InvalidParameterTypeError", TypeError),
    ("InvalidParameterRuntimeError", ValueError),
    ("InvalidParameterRuntimeError", RuntimeError),
    ("BackendContractError", RuntimeError),
    ("NotTraceableError", RuntimeError),
]


@pytest.mark.parametrize("name,builtin", HIERARCHY,
                         ids=[f"{h[0]}-{h[1].__name__}" for h in HIERARCHY])
def test_error_is_exported_and_subclasses_polysample_error_and_builtin(
    name: str, builtin: type
) -> None:
    cls = getattr(ps, name)
    assert name in ps.__all__
    assert issubclass(cls, ps.PolysampleError) and issubclass(cls, builtin)


def test_polysample_error_is_an_exception() -> None:
    assert issubclass(ps.PolysampleError, Exception) and "PolysampleError" in ps.__all__


# --------------------------------------------------------------------------- messages
def _unknown_family() -> None:
    family_spec("Gauss")


def _broken_factory() -> None:
    def factory() -> ps.Backend:
        raise ImportError("No module named 'fancylib'")

    ps.register_backend("err-needs-fancylib", factory)
    try:
        ps.load_backend("err-needs-fancylib")
    finally:
        ps.unregister_backend("err-needs-fancylib")


class _Subclass(td.Normal):
    pass


# (id, call, error, regexes the message must contain: expected, received, what to do)
RAISE_SITES: list[tuple[str, Callable[[], Any], type, list[str]]] = [
    ("unknown-backend", lambda: ps.set_backend("nope"), ps.UnknownBackendError,
     ["Unknown backend 'nope'", "Expected one of: .*torch", "POLYSAMPLE_PLUGINS"]),
    ("backend-not-a-string", lambda: ps.Normal(0.0, 1.0, backend=3),  # type: ignore[arg-type]
     ps.UnknownBackendError, ["Expected backend= to be a backend name", "Received: 3"]),
    ("backend-unavailable", _broken_factory, ps.BackendUnavailableError,
     ["err-needs-fancylib", "failed to load", "ImportError.*fancylib"]),
    ("unknown-family", _unknown_family, ps.UnsupportedFamilyError,
     ["Unknown family 'Gauss'", "Expected one of .*Normal"]),
    ("wrap-subclass", lambda: ps.wrap(_Subclass(0.0, 1.0)), ps.UnsupportedFamilyError,
     ["Cannot wrap .*_Subclass", "torch.distributions classes themselves"]),
    ("wrap-not-a-distribution", lambda: ps.wrap(3), ps.InvalidParameterError,  # type: ignore[arg-type]
     ["Expected a torch.distributions.Distribution", "Received: int"]),
    ("not-reparameterizable", lambda: ps.Poisson(2.0).rsample(), ps.NotReparameterizableError,
     ["Poisson", "backend 'torch'", "sample\\(\\) with log_prob\\(\\)", "Relaxed"]),
    ("invalid-parameter", lambda: ps.Normal(0.0, -1.0), ps.InvalidParameterError,
     ["Invalid parameters for polysample.Normal", "scale", "GreaterThan",
      "Expected parameters of torch.distributions.Normal"]),
    ("sample-shape", lambda: ps.Normal(0.0, 1.0).sample((-2,)), ps.InvalidParameterError,
     ["Expected sample_shape to be a tuple", "Received: \\(-2,\\)", "e.g. \\(1000,\\)"]),
    ("seed-type", lambda: ps.Normal(0.0, 1.0).sample(seed=1.5), ps.InvalidParameterError,
     ["Expected seed to be a non-negative int", "Received: seed=1.5", "Pass e.g. seed=7"]),
    ("seed-negative", lambda: ps.Normal(0.0, 1.0).sample(seed=-1), ps.InvalidParameterError,
     ["Expected a non-negative seed", "Received: seed=-1", "Use a value >= 0"]),
    ("seed-and-generator",
     lambda: ps.Normal(0.0, 1.0).sample(seed=1, generator=torch.Generator()),
     ps.InvalidParameterError, ["either seed= or generator=, not both", "Received: seed=1"]),
    ("generator-type", lambda: ps.Normal(0.0, 1.0).sample(generator=3),  # type: ignore[arg-type]
     ps.InvalidParameterError, ["Expected generator to be a torch.Generator", "Received: int"]),
    ("log-prob-non-tensor", lambda: ps.Normal(0.0, 1.0).log_prob(0.5),  # type: ignore[arg-type]
     ps.InvalidParameterError,
     ["Expected value to be a torch.Tensor", "Received: float", "torch.as_tensor"]),
    ("log-prob-support", lambda: ps.Exponential(1.0).log_prob(torch.tensor(-1.0)),
     ps.InvalidParameterError, ["Invalid value for Exponential.log_prob", "support"]),
    ("manual-seed", lambda: ps.manual_seed("x"), ps.InvalidParameterError,  # type: ignore[arg-type]
     ["Expected seed", "Received: seed='x'"]),
]


@pytest.mark.parametrize("call,error,patterns", [r[1:] for r in RAISE_SITES],
                         ids=[r[0] for r in RAISE_SITES])
def test_raise_site_message_says_expected_received_and_what_to_do(
    call: Callable[[], Any], error: type, patterns: list[str]
) -> None:
    with pytest.raises(error) as info:
        call()
    message = str(info.value)
    for pattern in patterns:
        assert re.search(pattern, message), (pattern, message)


def test_config_error_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POLYSAMPLE_BACKEND", "nope")
    with pytest.raises(ps.ConfigError, match=r"POLYSAMPLE_BACKEND \(environment variable\) "
                       r"names backend 'nope'.*Expected one of: .*torch"):
        ps.Normal(0.0, 1.0).sample()


def test_backend_unavailable_chains_the_cause() -> None:
    with pytest.raises(ps.BackendUnavailableError) as info:
        _broken_factory()
    assert isinstance(info.value.__cause__, ImportError)


# --------------------------------------------------------------------------- broken backends
class _Broken(ps.Backend):
    """Draws Normal with torch, then breaks the contract in one way."""

    mode = ""

    def families(self):  # type: ignore[no-untyped-def]
        return {"Normal": ps.FamilySupport(sample=True, rsample=True)}

    def _good(self, params: Any, sample_shape: torch.Size) -> torch.Tensor:
        loc, scale = params["loc"], params["scale"]
        if self.mode == "inplace":  # "sanitising" the caller's tensor
            scale.clamp_(min=1e-30)
        return loc + scale * torch.randn(tuple(sample_shape) + tuple(loc.shape), dtype=loc.dtype)

    def sample(self, family, params, sample_shape, *, seed=None):  # type: ignore[no-untyped-def]
        x = self._good(params, sample_shape)
        if self.mode == "type":
            return x.numpy()
        if self.mode == "shape":
            return x.reshape(-1, 1)
        if self.mode == "dtype":
            return x.double()
        if self.mode == "grad":
            return x.detach().requires_grad_(True)
        if self.mode == "alias":  # loc itself, expanded: a view of the caller's tensor
            return params["loc"].expand(x.shape)
        return x

    def rsample(self, family, params, sample_shape, *, seed=None):  # type: ignore[no-untyped-def]
        x = self._good(params, sample_shape)
        if self.mode == "alias":
            return params["loc"].expand(x.shape)
        return x.detach() if self.mode == "detached" else x


BROKEN = [
    ("type", "sample", "returned ndarray from sample\\(\\)"),
    ("shape", "sample", "expected shape \\(3, 2\\).*received shape \\(6, 1\\)"),
    ("dtype", "sample", "expected shape .* dtype torch.float32.*received .* torch.float64"),
    ("grad", "sample", "requires grad from sample\\(\\)"),
    ("detached", "rsample", "detached tensor from rsample\\(\\)"),
    ("inplace", "sample", "modified scale in place during sample\\(\\) for Normal"),
    ("inplace", "rsample", "modified scale in place during rsample\\(\\) for Normal"),
    ("alias", "sample", "from sample\\(\\) for Normal a tensor that shares memory with the "
     "parameter loc"),
    ("alias", "rsample", "shares memory with the parameter loc"),
]


@pytest.fixture
def broken_backend() -> Iterator[type[_Broken]]:
    ps.register_backend("broken", _Broken)
    yield _Broken
    ps.unregister_backend("broken")
    _Broken.mode = ""


@pytest.mark.parametrize("mode,method,pattern", BROKEN, ids=[b[0] for b in BROKEN])
def test_backend_breaking_the_contract_raises_backend_contract_error(
    broken_backend: type[_Broken], mode: str, method: str, pattern: str
) -> None:
    loc = torch.zeros(2, requires_grad=True)
    d = ps.Normal(loc, torch.ones(2), backend="broken")
    getattr(d, method)((3,))  # the well-behaved backend passes
    broken_backend.mode = mode
    with pytest.raises(ps.BackendContractError, match=pattern) as info:
        getattr(d, method)((3,))
    assert "'broken'" in str(info.value)


class _ScoreWriter(ps.Backend):
    """Scores Normal with torch after writing into the value it was given."""

    def families(self):  # type: ignore[no-untyped-def]
        return {"Normal": ps.FamilySupport(sample=True, log_prob=True)}

    def sample(self, family, params, sample_shape, *, seed=None):  # type: ignore[no-untyped-def]
        return params["loc"] + params["scale"] * torch.randn(
            tuple(sample_shape) + tuple(params["loc"].shape))

    def log_prob(self, family, params, value):  # type: ignore[no-untyped-def]
        value.nan_to_num_(0.0)
        return torch.distributions.Normal(params["loc"], params["scale"]).log_prob(value)


def test_a_backend_writing_into_the_scored_value_raises_backend_contract_error() -> None:
    ps.register_backend("scorewriter", _ScoreWriter)
    try:
        value = torch.tensor([0.5, -1.0])
        d = ps.Normal(torch.zeros(2), torch.ones(2), backend="scorewriter")
        with pytest.raises(ps.BackendContractError,
                           match="'scorewriter' modified value in place during log_prob"):
            d.log_prob(value)
        d.sample((3,))  # drawing touches nothing: no error
    finally:
        ps.unregister_backend("scorewriter")


def test_inference_tensors_and_lazily_computed_parameters_are_not_reported() -> None:
    # Inference tensors keep no version counter; probs computed from logits during the call is
    # torch's own new tensor, not the caller's.
    with torch.inference_mode():
        loc = torch.zeros(3)
    assert ps.Normal(loc, 1.0, backend="torch").sample((2,)).shape == (2, 3)
    for backend in ("torch", "numpy"):
        x = ps.Bernoulli(logits=torch.zeros(4), backend=backend).sample((5,))
        assert x.shape == (5, 4)


class _LogitsWriter(_ScoreWriter):
    """Reparameterizes mixtures of Normals after normalising the mixture logits in place."""

    def families(self):  # type: ignore[no-untyped-def]
        return {"Normal": ps.FamilySupport(sample=True, rsample=True)}

    def rsample(self, family, params, sample_shape, *, seed=None):  # type: ignore[no-untyped-def]
        return self.sample(family, params, sample_shape, seed=seed)

    def mixture_components(self):  # type: ignore[no-untyped-def]
        return frozenset({"Normal"})

    def rsample_mixture(self, mixture_logits, component, sample_shape, *, seed=None):  # type: ignore[no-untyped-def]
        mixture_logits.sub_(mixture_logits.logsumexp(-1, keepdim=True))
        return torch.zeros(tuple(sample_shape) + tuple(component.batch_shape[:-1]))


def test_a_backend_writing_into_the_mixture_logits_raises_backend_contract_error() -> None:
    ps.register_backend("logitswriter", _LogitsWriter)
    try:
        logits = torch.tensor([1.0, 2.0])
        mix = ps.MixtureSameFamily(ps.Categorical(logits=logits),
                                   ps.Normal(torch.zeros(2), torch.ones(2),
                                             backend="logitswriter"))
        with pytest.raises(ps.BackendContractError,
                           match="'logitswriter' modified mixture logits in place during "
                                 "rsample\\(\\) for MixtureSameFamily of Normal"):
            mix.rsample((3,))
    finally:
        ps.unregister_backend("logitswriter")


class _Refuser(ps.Backend):
    """Draws Gamma, refusing a non-positive concentration as its library does: with its own
    :class:`InvalidParameterError` (mode "own") or with a long raw ``ValueError`` ("raw")."""

    name = "refuser"
    mode = "own"

    def families(self):  # type: ignore[no-untyped-def]
        return {"Gamma": ps.FamilySupport(sample=True)}

    def sample(self, family, params, sample_shape, *, seed=None):  # type: ignore[no-untyped-def]
        if bool((params["concentration"] <= 0).any()):
            if self.mode == "own":
                raise ps.InvalidParameterError("refuser: concentration must be > 0, got -1")
            raise ValueError("shape < 0 " + "because the library says so " * 30)
        return torch.ones(tuple(sample_shape) + tuple(params.batch_shape))


def test_a_backends_own_invalid_parameter_error_reaches_the_user_unchanged() -> None:
    # 0: on the constraint's bound (concentration > 0), which the core leaves to the backend
    d = ps.Gamma(torch.tensor(0.0), torch.tensor(1.0), validate_args=False,
                 backend=_Refuser())
    with pytest.raises(ps.InvalidParameterError) as info:
        d.sample()
    assert str(info.value) == "refuser: concentration must be > 0, got -1"


def test_a_backends_long_raw_error_is_quoted_cut_at_a_word_and_ended() -> None:
    backend = _Refuser()
    backend.mode = "raw"
    d = ps.Gamma(torch.tensor(0.0), torch.tensor(1.0), validate_args=False, backend=backend)
    with pytest.raises(ps.InvalidParameterError) as info:
        d.sample()
    text = str(info.value)
    assert "parameter concentration is outside its constraint" in text
    # the library's message, cut after a whole word, marked, and ended before the next sentence
    assert "failed on it: shape < 0 because the library says so" in text
    assert " because ... Expected concentration" in text and len(text) < 700
    assert isinstance(info.value.__cause__, ValueError)


@pytest.mark.parametrize("text,expected", [
    ("short", "short."), ("ends.", "ends."), ("a\n  b", "a b."), ("", "."),
    ("word " * 100, ("word " * 60).strip() + " ..."),
], ids=["short", "ended", "lines", "empty", "long"])
def test_quoted_keeps_another_librarys_message_on_one_line_and_ended(text: str,
                                                                     expected: str) -> None:
    from polysample.core.errors import quoted

    assert quoted(text) == expected


def test_an_argument_outside_its_constraint_is_named_even_where_torch_names_its_own():
    # torch's Beta checks an inner Dirichlet: its message names "concentration" of
    # "Dirichlet", arguments the caller never gave
    with pytest.raises(ps.InvalidParameterError, match=r"outside their constraints: "
                       r"concentration1 \(GreaterThan\(lower_bound=0\.0\)\)"):
        ps.Beta(-0.5, 1.0)
    with pytest.raises(ps.InvalidParameterError, match="outside their constraints: scale"):
        ps.Normal(0.0, torch.tensor([1.0, -1.0]))


def test_not_reparameterizable_names_the_alternatives_that_apply():
    # a continuous family: no relaxed family to suggest, the backends that reparameterize it
    with pytest.raises(ps.NotReparameterizableError) as info:
        ps.VonMises(0.0, 1.0, backend="numpy").rsample()
    msg = str(info.value)
    assert "log_prob()" in msg and "Relaxed" not in msg
    others = [b.name for b in ps.backends() if b.status == "available"
              and "VonMises" in b.family_names and b.name != "numpy"
              and ps.load_backend(b.name).families()["VonMises"].rsample]
    assert others and all(name in msg for name in others), (others, msg)
    # a discrete family: the relaxed families, and no backend to suggest
    with pytest.raises(ps.NotReparameterizableError,
                       match="RelaxedBernoulli.*No registered backend reparameterizes Poisson"):
        ps.Poisson(1.0, backend="torch").rsample()


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_a_constructor_torch_cannot_run_in_half_precision_says_so_as_torch_does(dtype):
    # An outside trial: a float16 covariance matrix was reported as invalid parameters
    # (InvalidParameterRuntimeError); the parameters are valid, torch lacks the kernel, and
    # torch itself raises NotImplementedError.
    eye, zeros = torch.eye(2, dtype=dtype), torch.zeros(2, dtype=dtype)
    cases = [("MultivariateNormal", {"loc": zeros, "covariance_matrix": eye}, "scale_tril"),
             ("MultivariateNormal", {"loc": zeros, "precision_matrix": eye}, "scale_tril"),
             ("Wishart", {"df": torch.tensor(3.0, dtype=dtype), "covariance_matrix": eye},
              "scale_tril"),
             ("LowRankMultivariateNormal", {"loc": zeros, "cov_factor": eye[:, :1],
                                            "cov_diag": torch.ones(2, dtype=dtype)}, None)]
    for family, kwargs, instead in cases:
        with pytest.raises(NotImplementedError) as info:
            getattr(ps, family)(**kwargs)
        assert isinstance(info.value, ps.UnsupportedFamilyError), family
        msg = str(info.value)
        assert "not implemented" in msg and "float32 parameters" in msg, msg
        assert (instead is None) == ("Pass scale_tril" not in msg), msg
        if instead:  # the way out it names works in this dtype
            other = {k: v for k, v in kwargs.items() if not k.endswith("_matrix")}
            d = getattr(ps, family)(**other, scale_tril=eye)
            assert d.log_prob(d.sample((2,))).dtype == dtype
    # invalid as well (a NaN): the invalid parameter is what is reported
    with pytest.raises(ps.InvalidParameterError, match="non-finite: loc"):
        ps.LowRankMultivariateNormal(torch.tensor([math.nan, 0.5], dtype=dtype), eye[:, :1],
                                     torch.ones(2, dtype=dtype), validate_args=False)


def test_rsample_params_naming_probs_covers_logits_and_nothing_else():
    # probs and logits are one parameter given two ways: a backend that reparameterizes probs
    # reparameterizes a distribution built from logits (the gradient layer's typical grid is
    # given logits); a parameter it does not name still refuses.
    import dataclasses

    from polysample.backends.torch_backend import TorchBackend

    class ProbsOnly(TorchBackend):
        def families(self):  # type: ignore[no-untyped-def]
            inner = dict(super().families())
            inner["RelaxedBernoulli"] = dataclasses.replace(
                inner["RelaxedBernoulli"], rsample_params=frozenset({"probs"}))
            return inner

    ps.register_backend("probs-only", ProbsOnly)
    try:
        logits = torch.tensor([0.3, -1.0], dtype=torch.float64, requires_grad=True)
        x = ps.RelaxedBernoulli(torch.tensor(0.5, dtype=torch.float64), logits=logits,
                                backend="probs-only").rsample(seed=1)
        x.sum().backward()
        assert logits.grad is not None and torch.all(logits.grad != 0)
        temperature = torch.tensor(0.5, dtype=torch.float64, requires_grad=True)
        with pytest.raises(ps.NotReparameterizableError, match=r"\['probs'\].*temperature"):
            ps.RelaxedBernoulli(temperature, logits=logits.detach(),
                                backend="probs-only").rsample(seed=1)
    finally:
        ps.unregister_backend("probs-only")
    support = ps.FamilySupport(rsample=True, rsample_params=frozenset({"logits"}))
    assert support.reparameterizes("probs") and not support.reparameterizes("temperature")
    assert not ps.FamilySupport(rsample=False).reparameterizes("probs")


@pytest.mark.parametrize("family,kwargs,learnt", [
    ("Beta", {"concentration1": 2.0, "concentration0": 3.0}, "concentration0"),
    ("LogNormal", {"loc": 0.0, "scale": 1.0}, "scale"),
    ("RelaxedBernoulli", {"temperature": 0.5, "logits": 0.3}, "logits"),
    ("Chi2", {"df": 3.0}, "df"),
])
def test_a_detached_rsample_is_refused_where_torch_keeps_the_parameters_elsewhere(
        family: str, kwargs: dict, learnt: str) -> None:
    # torch keeps Beta's concentrations in a Dirichlet, LogNormal's and the relaxed families'
    # parameters in a base distribution: reading them by name found none that required grad,
    # and a backend's detached rsample() (or a gradient in a parameter it does not
    # reparameterize) went through silently.
    import dataclasses

    from polysample.backends.torch_backend import TorchBackend

    class Detaching(TorchBackend):
        def rsample(self, family, params, sample_shape, *, seed=None):  # type: ignore[override]
            return super().rsample(family, params, sample_shape, seed=seed).detach()

    class OthersOnly(TorchBackend):
        def families(self):  # type: ignore[no-untyped-def]
            inner = dict(super().families())
            names = frozenset(family_spec(family).params) - {learnt, "probs", "logits"}
            inner[family] = dataclasses.replace(inner[family], rsample_params=names)
            return inner

    args = {k: torch.tensor(v, dtype=torch.float64, requires_grad=k == learnt)
            for k, v in kwargs.items()}
    ps.register_backend("detaching", Detaching)
    ps.register_backend("others-only", OthersOnly)
    try:
        with pytest.raises(ps.BackendContractError, match=rf"detached tensor.*\['{learnt}'\]"):
            getattr(ps, family)(**args, backend="detaching").rsample((2,))
        with pytest.raises(ps.NotReparameterizableError, match=rf"\['{learnt}'\] require grad"):
            getattr(ps, family)(**args, backend="others-only").rsample((2,))
        # expand() keeps what requires grad
        with pytest.raises(ps.NotReparameterizableError, match=rf"\['{learnt}'\] require grad"):
            getattr(ps, family)(**args, backend="others-only").expand((3,)).rsample()
    finally:
        ps.unregister_backend("detaching")
        ps.unregister_backend("others-only")
