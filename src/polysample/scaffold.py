"""``polysample new-backend NAME``: write a plugin package that passes the conformance suite.

The package holds a :class:`~polysample.plugin.TableBackend` with one family (Normal, drawn by
NumPy from polysample's seeds, reparameterized in torch), the entry point that registers it, and
a conformance test through the pytest plugin. ``pip install -e`` it and run ``pytest``: the
suite passes for what the backend declares, before the author writes anything else. Add a
family by adding a row to ``table``.
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

__all__ = ["write_scaffold", "files"]

_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,38}[a-z0-9]$")


def files(name: str) -> dict[str, str]:
    """The package's files (relative path -> text) for a backend called ``name``."""
    if not _NAME.match(name) or "--" in name or "__" in name:
        raise ValueError(
            f"Expected a backend name of lower-case letters, digits, '-' or '_', starting with a "
            f"letter (e.g. mybackend). Received: {name!r}.")
    pkg = "polysample_" + name.replace("-", "_")
    cls = "".join(part.capitalize() for part in re.split(r"[-_]", name)) + "Backend"
    from . import __version__

    pyproject = f'''\
        [build-system]
        requires = ["hatchling>=1.21"]
        build-backend = "hatchling.build"

        [project]
        name = "polysample-{name}"
        version = "0.1.0"
        description = "A polysample backend: {name}."
        requires-python = ">=3.11"
        dependencies = ["polysample>={__version__}", "numpy>=1.26"]

        [project.optional-dependencies]
        test = ["pytest>=8", "scipy>=1.11"]

        # polysample finds the backend through this entry point.
        [project.entry-points.polysample]
        {name} = "{pkg}"

        [tool.hatch.build.targets.wheel]
        packages = ["src/{pkg}"]

        [tool.pytest.ini_options]
        testpaths = ["tests"]
        # The conformance suite runs on this backend (polysample's pytest plugin).
        polysample_backend = ["{name}"]
        polysample_quick = true
        # Known failures, each with its reason: see docs/plugins.md ("Expected failures").
        # polysample_expected_failures = "known_failures.toml"
        '''
    module = f'''\
        """The {name!r} polysample backend.

        One family to start from: Normal, drawn by NumPy from polysample's seeds. Add a family
        by writing a drawer and a row in ``{cls}.table``; run ``pytest`` (the conformance suite)
        after each one.
        """

        from __future__ import annotations

        import numpy as np
        import torch

        from polysample.plugin import (
            GlobalStream,
            Params,
            Row,
            Seed,
            TableBackend,
            hookimpl,
            seed_sequence_from,
        )

        __all__ = ["{cls}"]

        _STREAM = GlobalStream("{name}", lambda ss: np.random.Generator(np.random.PCG64(ss)))


        def _normal(p: Params, sample_shape: torch.Size, rng: np.random.Generator,
                    reparam: bool) -> torch.Tensor:
            # Parameter-free noise from NumPy; the differentiable transform in torch.
            eps = rng.standard_normal(tuple(p.shape(sample_shape)))
            eps_t = torch.from_numpy(eps).to(dtype=p.dtype, device=p.device)
            return p["loc"] + p["scale"] * eps_t


        class {cls}(TableBackend):
            """Draws with NumPy; rsample gradients by torch."""

            name = "{name}"
            table = {{
                "Normal": Row(draw=_normal, rsample=True, note="NumPy noise, torch transform"),
            }}

            def version(self) -> str:
                return np.__version__

            def rng(self, seed: Seed, params: Params) -> np.random.Generator:
                # None: this backend's global stream (polysample.manual_seed seeds it); a
                # SeedSequence or torch.Generator: a fresh generator (same seed, same values).
                if seed is None:
                    return _STREAM.get()
                return np.random.Generator(np.random.PCG64(seed_sequence_from(seed)))


        @hookimpl
        def polysample_register_backends(register):  # type: ignore[no-untyped-def]
            register("{name}", {cls})
        '''
    conftest = '''\
        pytest_plugins = ["polysample.conformance.pytest_plugin"]
        '''
    test = f'''\
        """The polysample conformance suite on the {name!r} backend: one test per check
        (ids are check ids, e.g. ``pytest -k "{name}-Normal-typical"``)."""


        def test_polysample_conformance(polysample_check):
            polysample_check()
        '''
    readme = f'''\
        # polysample-{name}

        A [polysample](https://pypi.org/project/polysample/) backend.

        ```console
        pip install -e .          # registers the backend {name!r} (entry point group "polysample")
        pytest                    # the polysample conformance suite on it
        polysample validate --backend {name} --quick --html report.html
        ```

        Add a family: write a drawer `fn(params, sample_shape, rng, reparam)` in
        `src/{pkg}/__init__.py`, add a `Row` for it to `{cls}.table`, run `pytest`.
        '''
    return {
        "pyproject.toml": textwrap.dedent(pyproject),
        f"src/{pkg}/__init__.py": textwrap.dedent(module),
        "tests/conftest.py": textwrap.dedent(conftest),
        "tests/test_conformance.py": textwrap.dedent(test),
        "README.md": textwrap.dedent(readme),
    }


def write_scaffold(name: str, path: str | None = None) -> Path:
    """Write the package for backend ``name`` to ``path`` (default ``./polysample-<name>``);
    refuses to overwrite existing files."""
    root = Path(path) if path else Path.cwd() / f"polysample-{name}"
    content = files(name)
    existing = [rel for rel in content if (root / rel).exists()]
    if existing:
        raise FileExistsError(f"{root} already holds {', '.join(existing)}; choose another "
                              "--path or remove them.")
    for rel, text in content.items():
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    return root
