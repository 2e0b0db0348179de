"""The ``tfp`` and ``tfp-tf`` backends: TensorFlow Probability 0.25 behind polysample.

* ``tfp`` runs TFP on its JAX substrate by default, or on TensorFlow when configured:
  ``[tool.polysample.tfp] substrate = "tensorflow"`` in ``pyproject.toml`` (or
  ``polysample.toml``), or the environment variable ``POLYSAMPLE_TFP_SUBSTRATE`` (which wins over
  the file). Values: ``"jax"`` or ``"tensorflow"``.
* ``tfp-tf`` always runs on TensorFlow (so the conformance suite covers both substrates).

Importing this module, instantiating either backend and calling ``families()`` import neither
JAX nor TensorFlow: the substrate is imported on the first draw or ``log_prob``.
See ``docs/backends/tfp.md``.
"""

from __future__ import annotations

from typing import Any

from ...core.hookspecs import hookimpl

__all__ = ["polysample_register_backends"]


def _make_tfp() -> Any:
    from .backend import TfpBackend

    return TfpBackend(substrate=None)


def _make_tfp_tf() -> Any:
    from .backend import TfpBackend

    backend = TfpBackend(substrate="tensorflow")
    backend.options = {}  # the TFP backends' options are [tool.polysample.tfp]'s
    return backend


@hookimpl
def polysample_register_backends(register):  # type: ignore[no-untyped-def]
    register("tfp", _make_tfp)
    register("tfp-tf", _make_tfp_tf)
