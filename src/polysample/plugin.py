"""The plugin kit: everything a backend author needs, in one stable place.

Import from here, not from polysample's internal modules (which may move)::

    from polysample.plugin import (Params, Row, TableBackend, GlobalStream, hookimpl,
                                   seed_sequence_from)

* **The interface**: :class:`Backend` (the base class), :class:`FamilySupport` (what a backend
  offers per family), :class:`Params` (what a draw receives: the parameters and the shapes,
  dtype and device the result must have), :class:`TableBackend` with :class:`Row` and the
  :data:`Drawer` signature (a backend whose families are rows of a table), :data:`Seed`.
* **Registration**: :data:`hookimpl` marks ``polysample_register_backends(register)``;
  :func:`backend_options` reads the backend's ``[tool.polysample.<name>]`` table.
* **Seeds**: :class:`GlobalStream` (a backend's global stream, reseeded by
  ``polysample.manual_seed`` and after ``fork``), :func:`seed_sequence_from` (a per-call seed or
  a ``torch.Generator`` as a ``numpy.random.SeedSequence``), :func:`torch_generator_from`,
  :func:`global_seed_sequence`, :func:`as_seed_sequence`.
* **Implicit reparameterization** for libraries that draw Gamma/Beta/Dirichlet values outside
  torch: :class:`ImplicitGamma`, :class:`ImplicitLogGamma`, :class:`ImplicitBeta`,
  :class:`ImplicitDirichlet` and the numerics :func:`standard_gamma_dz_dalpha`,
  :func:`beta_dx_da`, :func:`betainc`, :func:`exclusive_sum`.
* **Families**: :data:`FAMILIES` (torch's families, their canonical parameters and kinds) and
  :class:`FamilySpec`.
* **Errors** a backend raises: :class:`BackendUnavailableError`, :class:`UnsupportedFamilyError`,
  :class:`NotReparameterizableError`, :class:`InvalidParameterError`,
  :class:`BackendContractError`, :class:`ConfigError`, :class:`PolysampleError`.

Every name in ``__all__`` is documented in ``docs/plugins.md`` (a test checks it); changes to
them are announced in the changelog.
"""

from __future__ import annotations

from .core.backend import Backend, Drawer, FamilySupport, Row, Seed, TableBackend
from .core.config import backend_options
from .core.errors import (
    BackendContractError,
    BackendUnavailableError,
    ConfigError,
    InvalidParameterError,
    NotReparameterizableError,
    PolysampleError,
    UnsupportedFamilyError,
)
from .core.families import FAMILIES, FamilySpec
from .core.hookspecs import hookimpl
from .core.implicit import (
    ImplicitBeta,
    ImplicitDirichlet,
    ImplicitGamma,
    ImplicitLogGamma,
    beta_dx_da,
    betainc,
    exclusive_sum,
    standard_gamma_dz_dalpha,
)
from .core.params import Params
from .core.seeds import (
    GlobalStream,
    as_seed_sequence,
    global_seed_sequence,
    seed_sequence_from,
    torch_generator_from,
)

__all__ = [
    # the interface
    "Backend", "FamilySupport", "Params", "TableBackend", "Row", "Drawer", "Seed",
    # registration and configuration
    "hookimpl", "backend_options",
    # seeds
    "GlobalStream", "seed_sequence_from", "torch_generator_from", "global_seed_sequence",
    "as_seed_sequence",
    # implicit reparameterization
    "ImplicitGamma", "ImplicitLogGamma", "ImplicitBeta", "ImplicitDirichlet",
    "standard_gamma_dz_dalpha", "beta_dx_da", "betainc", "exclusive_sum",
    # families
    "FAMILIES", "FamilySpec",
    # errors
    "PolysampleError", "BackendUnavailableError", "UnsupportedFamilyError",
    "NotReparameterizableError", "InvalidParameterError", "BackendContractError",
    "ConfigError",
]
