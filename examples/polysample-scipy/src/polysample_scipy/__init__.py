"""The ``scipy`` polysample backend: ``scipy.stats`` draws and scores, torch differentiates.

* ``sample()`` draws with ``scipy.stats.<law>.rvs(..., random_state=numpy.random.Generator)``,
  the Generator seeded from polysample's seed (:meth:`ScipyBackend.rng`), in float64, and hands
  back a tensor of the parameters' dtype and device.
* ``rsample()`` keeps the randomness in SciPy and the differentiable part in torch: explicit
  transforms of parameter-free SciPy noise (``loc + scale * eps``, inverse CDFs), implicit
  reparameterization of SciPy's Gamma, Beta and Dirichlet draws (:mod:`.draws`).
* ``log_prob()`` is SciPy's ``logpdf``/``logpmf`` with analytic derivatives in backward
  (:mod:`.scores`), except for the probability families, which torch scores from ``logits``.
* Families SciPy has no law for are left out, with the reason (:data:`OMITTED`).

SciPy is imported on the first draw: polysample registers and lists the backend without it.
Registered through the ``polysample_register_backends`` hook, found through the entry point
``scipy = "polysample_scipy"`` (group ``polysample``) in this package's ``pyproject.toml``.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util

import numpy as np
import torch

from polysample.plugin import (
    BackendUnavailableError,
    GlobalStream,
    Params,
    PolysampleError,
    Row,
    Seed,
    TableBackend,
    hookimpl,
    seed_sequence_from,
)

from . import draws, scores

__all__ = ["ScipyBackend", "OMITTED", "polysample_register_backends"]

__version__ = "0.1.0"

# --8<-- [start:omitted]
#: torch families left out, and why (the error a user gets for one says it).
OMITTED: dict[str, str] = {
    "ContinuousBernoulli": "scipy.stats has no continuous Bernoulli distribution (the torch and "
                           "numpy backends draw it)",
    "Kumaraswamy": "scipy.stats has no Kumaraswamy distribution (the torch and numpy backends "
                   "draw it)",
    "LKJCholesky": "scipy.stats has no LKJ distribution (the torch and tfp backends draw it)",
    "LogisticNormal": "scipy.stats has no logistic-normal distribution (the torch and numpy "
                      "backends draw it)",
    "RelaxedBernoulli": "scipy.stats has no relaxed (Concrete) Bernoulli distribution (the "
                        "torch and numpy backends draw it)",
    "RelaxedOneHotCategorical": "scipy.stats has no relaxed (Concrete) one-hot categorical "
                                "distribution (the torch and numpy backends draw it)",
}
# --8<-- [end:omitted]

#: Shown by ``polysample backends`` and in the capability matrix.
NOTES: dict[str, str] = {
    "Gamma": "scipy.stats.gamma; rsample by implicit reparameterization",
    "Chi2": "scipy.stats.chi2; rsample by implicit reparameterization of its Gamma",
    "InverseGamma": "scipy.stats.invgamma; rsample by implicit reparameterization; below "
                    "concentration 0.5 from log-space Gamma draws",
    "StudentT": "scipy.stats.t; rsample: df gradient by implicit reparameterization; below df 1 "
                "from log-space Gamma draws",
    "FisherSnedecor": "scipy.stats.f; rsample by implicit reparameterization of both Chi2; "
                      "below df 1 from log-space Gamma draws",
    "Beta": "scipy.stats.beta; rsample by implicit reparameterization",
    "Dirichlet": "scipy.stats.dirichlet (one parameter point at a time); implicit rsample; "
                 "wrong below concentration 0.1 (NumPy's sampler: known_failures.toml)",
    "Wishart": "scipy.stats.wishart (one parameter point at a time); rsample by Bartlett; "
               "singular draws redrawn, as on torch",
    "VonMises": "scipy.stats.vonmises, wrapped to [-pi, pi); no rsample",
    "Categorical": "inversion of scipy.stats.uniform draws (memory: draws + categories)",
}


# --8<-- [start:row]
def _row(family: str) -> Row:
    """The table row of ``family``: its drawer, whether it reparameterizes, its scorer."""

    def draw(p: Params, sample_shape: torch.Size, rng: np.random.Generator,
             reparam: bool) -> torch.Tensor:
        try:
            if reparam:
                return draws.rsample(family, p, sample_shape, rng)
            return draws.sample(family, p, sample_shape, rng)
        except ValueError as exc:  # SciPy's "domain error in arguments" and the like
            if isinstance(exc, PolysampleError):
                raise
            raise draws.invalid(family, p, exc) from exc

    return Row(draw=draw, rsample=family in draws.RSAMPLE,
               log_prob=scores.log_prob(family) if family in scores.SCORES else None,
               note=NOTES.get(family, ""))
# --8<-- [end:row]


# --8<-- [start:backend]
class ScipyBackend(TableBackend):
    """Draws and scores with ``scipy.stats``; rsample and log_prob gradients by torch."""

    name = "scipy"
    table = {family: _row(family) for family in draws.LAWS}
    omitted = OMITTED

    def check_available(self) -> None:
        # Cheap: finds SciPy without importing it (the first draw imports it).
        if importlib.util.find_spec("scipy") is None:
            raise BackendUnavailableError(
                "The scipy backend needs SciPy, which is not installed. Install it with "
                "`pip install scipy` (or `pip install polysample-scipy`, which requires it).")

    def version(self) -> str:
        return importlib.metadata.version("scipy")

    def rng(self, seed: Seed, params: Params) -> np.random.Generator:
        # None: this backend's global stream (polysample.manual_seed reseeds it, and a forked
        # process re-derives it); a SeedSequence or a torch.Generator: a fresh Generator, so
        # the same seed gives the same values.
        if seed is None:
            return _STREAM.get()
        return np.random.Generator(np.random.PCG64(seed_sequence_from(seed)))


_STREAM = GlobalStream("scipy", lambda ss: np.random.Generator(np.random.PCG64(ss)))


@hookimpl
def polysample_register_backends(register):  # type: ignore[no-untyped-def]
    register("scipy", ScipyBackend)  # a class: nothing is built until the backend is used
# --8<-- [end:backend]
