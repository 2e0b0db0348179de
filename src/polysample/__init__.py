"""polysample: one PyTorch-style ``sample()``/``rsample()`` API, drawn by the library you choose.

Importing polysample is light: TensorFlow, JAX, SciPy and matplotlib are imported only when
their backend or the conformance report is first used.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from typing import Any

# The subpackage polysample.backends is imported first, so that the function
# polysample.backends() bound below is not replaced by the subpackage when a built-in backend
# module is imported later (the import system sets the parent's attribute only on first load).
from . import backends as _backends_package  # noqa: F401
from .core.backend import Backend, FamilySupport
from .core.config import backend_for, get_backend, reload_config, set_backend, use_backend
from .core.distributions import (
    Bernoulli,
    Beta,
    Binomial,
    Categorical,
    Cauchy,
    Chi2,
    ContinuousBernoulli,
    Dirichlet,
    Exponential,
    FisherSnedecor,
    Gamma,
    GeneralizedPareto,
    Geometric,
    Gumbel,
    HalfCauchy,
    HalfNormal,
    Independent,
    InverseGamma,
    Kumaraswamy,
    Laplace,
    LKJCholesky,
    LogisticNormal,
    LogNormal,
    LowRankMultivariateNormal,
    MixtureSameFamily,
    Multinomial,
    MultivariateNormal,
    NegativeBinomial,
    Normal,
    OneHotCategorical,
    OneHotCategoricalStraightThrough,
    Pareto,
    Poisson,
    RelaxedBernoulli,
    RelaxedOneHotCategorical,
    StudentT,
    TransformedDistribution,
    Uniform,
    VonMises,
    Weibull,
    Wishart,
    wrap,
)
from .core.errors import (
    BackendContractError,
    BackendUnavailableError,
    ConfigError,
    InvalidParameterError,
    InvalidParameterNotImplementedError,
    InvalidParameterRuntimeError,
    InvalidParameterTypeError,
    NotReparameterizableError,
    NotTraceableError,
    PolysampleError,
    SampleTooLargeError,
    UnknownBackendError,
    UnsupportedFamilyError,
)
from .core.hookspecs import hookimpl
from .core.plugins import (
    BackendInfo,
    backend_names,
    load_backend,
    refresh,
    register_backend,
    unregister_backend,
)
from .core.seeds import manual_seed

__version__ = "0.1.0"

from .core.plugins import backends as _backends_function


class _Backends:
    """``polysample.backends()``, the registered backends (:func:`polysample.core.plugins.backends`),
    which is also the dotted path of the built-in backends' modules: ``import
    polysample.backends.torch_backend as tb`` failed with ``ImportError`` while the name was a
    plain function (an outside trial), and works now, as ``from polysample.backends import
    numpy_backend`` does."""

    def __init__(self, function: Callable[[], list[BackendInfo]]) -> None:
        functools.update_wrapper(self, function)
        self._function = function

    def __call__(self) -> list[BackendInfo]:
        return self._function()

    def __repr__(self) -> str:
        return repr(self._function)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        try:
            return importlib.import_module(f"{__name__}.backends.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.backends.{name}":
                raise
            raise AttributeError(f"polysample.backends has no attribute or module {name!r}"
                                 ) from None


backends = _Backends(_backends_function)

__all__ = [
    # distributions (torch.distributions names)
    "Bernoulli", "Beta", "Binomial", "Categorical", "Cauchy", "Chi2", "ContinuousBernoulli",
    "Dirichlet", "Exponential", "FisherSnedecor", "Gamma", "GeneralizedPareto", "Geometric",
    "Gumbel", "HalfCauchy", "HalfNormal", "Independent", "InverseGamma", "Kumaraswamy",
    "LKJCholesky", "Laplace", "LogNormal", "LogisticNormal", "LowRankMultivariateNormal",
    "MixtureSameFamily", "Multinomial", "MultivariateNormal", "NegativeBinomial", "Normal",
    "OneHotCategorical", "OneHotCategoricalStraightThrough", "Pareto", "Poisson",
    "RelaxedBernoulli", "RelaxedOneHotCategorical", "StudentT", "TransformedDistribution",
    "Uniform", "VonMises", "Weibull", "Wishart",
    # routing and configuration
    "wrap", "get_backend", "backend_for", "set_backend", "use_backend", "reload_config",
    "manual_seed",
    # backends and plugins
    "Backend", "FamilySupport", "BackendInfo", "hookimpl", "backends", "backend_names",
    "load_backend", "register_backend", "unregister_backend", "refresh",
    # errors
    "PolysampleError", "UnknownBackendError", "BackendUnavailableError",
    "UnsupportedFamilyError", "NotReparameterizableError", "ConfigError",
    "InvalidParameterError", "BackendContractError", "InvalidParameterTypeError",
    "InvalidParameterRuntimeError", "InvalidParameterNotImplementedError", "NotTraceableError",
    "SampleTooLargeError",
    "__version__",
]
