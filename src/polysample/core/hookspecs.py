"""Hook specifications for polysample plugins (pluggy project ``"polysample"``).

Writing a backend plugin::

    import polysample

    class MyBackend(polysample.Backend):
        name = "mybackend"
        ...

    @polysample.hookimpl
    def polysample_register_backends(register):
        register("mybackend", MyBackend)   # a class or zero-argument factory; nothing heavy yet

Expose the module under the ``polysample`` entry-point group in your ``pyproject.toml``::

    [project.entry-points.polysample]
    mybackend = "mypackage.polysample_plugin"

or list it in ``POLYSAMPLE_PLUGINS`` (comma-separated import paths). Then run the conformance
suite on it: ``polysample validate --backend mybackend``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pluggy

PROJECT = "polysample"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

#: ``register(name, factory)``: ``factory`` is a Backend subclass or a zero-argument callable.
Register = Callable[[str, Callable[[], Any]], None]


@hookspec
def polysample_register_backends(register: Register) -> None:
    """Register backends by calling ``register(name, factory)`` once per backend."""
