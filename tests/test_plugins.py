"""Plugins: discovery (built-ins, entry points, POLYSAMPLE_PLUGINS), failures, laziness.

Entry points are tested in a subprocess whose ``PYTHONPATH`` holds a plugin module and a
``<name>.dist-info/`` directory (METADATA + entry_points.txt): that is exactly how an installed
distribution looks to ``importlib.metadata``. The example third-party package
``examples/polysample-scipy`` is tested this way (or as installed, where ``make venv`` installed
it), and its backend passes the contract tests (its whole conformance run is in
``tests/test_scipy_plugin.py``).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
import torch

import polysample as ps
from polysample.core import plugins

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "polysample-scipy"
EXAMPLE_SRC = EXAMPLE / "src"

pytestmark = pytest.mark.usefixtures("fresh_registry")

_BACKEND_SOURCE = '''
import torch
import polysample

class {cls}(polysample.Backend):
    def families(self):
        return {{"Normal": polysample.FamilySupport(sample=True, rsample=False)}}

    def sample(self, family, params, sample_shape, *, seed=None):
        loc = params["loc"]
        g = torch.Generator().manual_seed(0) if seed is not None else None
        eps = torch.randn(tuple(sample_shape) + tuple(loc.shape), generator=g, dtype=loc.dtype)
        return loc + params["scale"] * eps
'''


def write_plugin(directory: Path, module: str, backend: str, *, extra: str = "",
                 factory: str | None = None) -> Path:
    """Write a plugin module registering ``backend``; returns its path."""
    cls = "B_" + module
    source = (
        _BACKEND_SOURCE.format(cls=cls) + "\n" + textwrap.dedent(extra) + "\n\n"
        "@polysample.hookimpl\n"
        "def polysample_register_backends(register):\n"
        f"    register({backend!r}, {factory or cls})\n"
    )
    path = directory / f"{module}.py"
    path.write_text(source)
    return path


def write_dist_info(directory: Path, dist: str, entry_points: dict[str, str]) -> None:
    """A minimal installed distribution: ``<dist>-0.1.dist-info`` with its entry points."""
    info = directory / f"{dist.replace('-', '_')}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    lines = ["[polysample]"] + [f"{k} = {v}" for k, v in entry_points.items()]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")


def run_python(code: str, pythonpath: list[Path], **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("POLYSAMPLE_")}
    environ["PYTHONPATH"] = os.pathsep.join(str(p) for p in pythonpath)
    environ.update(env)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=environ, timeout=120)


# --------------------------------------------------------------------------- built-ins
def test_builtin_torch_backend_is_registered_through_the_hook() -> None:
    assert "polysample.backends.torch_backend" in plugins.DEFAULT_PLUGINS
    info = {b.name: b for b in ps.backends()}["torch"]
    assert info.status == "available"
    assert "built-in" in info.source
    assert info.families == 38 and info.version == torch.__version__


# --------------------------------------------------------------------------- POLYSAMPLE_PLUGINS
def test_polysample_plugins_variable_loads_a_module(tmp_path, monkeypatch) -> None:
    write_plugin(tmp_path, "throwaway_plugin", "throwaway")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("POLYSAMPLE_PLUGINS", " throwaway_plugin , ")
    ps.refresh()
    assert "throwaway" in ps.backend_names()
    x = ps.Normal(torch.zeros(2), 1.0, backend="throwaway").sample((3,), seed=1)
    assert x.shape == (3, 2)
    row = {b.name: b for b in ps.backends()}["throwaway"]
    assert row.status == "available" and "POLYSAMPLE_PLUGINS" in row.source


def test_plugin_that_raises_on_import_warns_and_is_unavailable(tmp_path, monkeypatch) -> None:
    (tmp_path / "exploding_plugin.py").write_text("raise RuntimeError('boom at import')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("POLYSAMPLE_PLUGINS", "exploding_plugin")
    ps.refresh()
    with pytest.warns(RuntimeWarning, match="exploding_plugin.*boom at import"):
        names = ps.backend_names()
    assert "torch" in names  # the others keep working
    assert ps.Normal(0.0, 1.0, backend="torch").sample().shape == ()
    with pytest.raises(ps.BackendUnavailableError, match="exploding_plugin") as info:
        ps.load_backend("exploding_plugin")
    assert isinstance(info.value.__cause__, RuntimeError)
    row = {b.name: b for b in ps.backends()}["exploding_plugin"]
    assert row.status == "broken" and "boom at import" in row.error


@pytest.mark.parametrize(("source", "reason"), [
    ("def polysample_register_backends(register):\n    register('quiet', object)\n",
     "defines polysample_register_backends without the @hookimpl marker"),
    ("import polysample\n@polysample.hookimpl\n"
     "def polysample_register_backend(register):\n    register('quiet', object)\n",
     "marks polysample_register_backend with @hookimpl, which is not a polysample hook. "
     "Did you mean 'polysample_register_backends'"),
    ("X = 1\n", "has no hook implementation polysample_register_backends"),
    ("import polysample\n@polysample.hookimpl\n"
     "def polysample_register_backends(register):\n    pass\n",
     "called register\\(\\) for no backend"),
], ids=["unmarked", "misspelt", "no-hook", "registers-nothing"])
def test_plugin_that_registers_nothing_warns_and_is_broken(tmp_path, monkeypatch, request,
                                                            source, reason) -> None:
    """A plugin module that loads but registers no backend (the hook unmarked or misspelt, or
    calling register() for nothing) is not silently ignored: a warning, a broken row, and
    selecting it (or an unknown name) says which plugin could not be used and why."""
    module = "quiet_plugin_" + request.node.callspec.id.replace("-", "_")  # one per case
    (tmp_path / f"{module}.py").write_text(source.replace("quiet_plugin", module))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("POLYSAMPLE_PLUGINS", module)
    ps.refresh()
    with pytest.warns(RuntimeWarning, match=f"{module}.*{reason}"):
        names = ps.backend_names()
    assert module in names and "quiet" not in names
    row = {b.name: b for b in ps.backends()}[module]
    assert row.status == "broken"
    with pytest.raises(ps.BackendUnavailableError, match=f"{module}.*{reason}"):
        ps.load_backend(module)
    with pytest.raises(ps.UnknownBackendError,
                       match=f"Plugins that could not be used.*{module}") as info:
        ps.load_backend("quiet")
    usable = str(info.value).split("Expected one of: ")[1].split(".")[0]
    assert module not in usable and "torch" in usable


def test_factory_raising_import_error_makes_backend_unavailable(tmp_path, monkeypatch) -> None:
    extra = "def needs_lib():\n    raise ImportError('No module named fancylib')"
    write_plugin(tmp_path, "needy_plugin", "needy", extra=extra, factory="needs_lib")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("POLYSAMPLE_PLUGINS", "needy_plugin")
    ps.refresh()
    assert "needy" in ps.backend_names()  # registered: the factory has not run
    with pytest.raises(ps.BackendUnavailableError, match="needy.*fancylib") as info:
        ps.Normal(0.0, 1.0, backend="needy").sample()
    assert isinstance(info.value.__cause__, ImportError)
    row = {b.name: b for b in ps.backends()}["needy"]
    assert row.status == "unavailable" and "fancylib" in row.error
    assert ps.Normal(0.0, 1.0).sample().shape == ()  # the default backend is unaffected


def test_a_duplicate_backend_name_is_an_error_naming_both_modules(tmp_path, monkeypatch) -> None:
    # DESIGN section 4: "Two plugins registering one name: an error naming both modules."
    # Which one drew used to depend on the order plugins load in (the first won, with a
    # warning); now selecting the name fails, and every other backend keeps working.
    write_plugin(tmp_path, "dup_one", "twin")
    write_plugin(tmp_path, "dup_two", "twin")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("POLYSAMPLE_PLUGINS", "dup_one,dup_two")
    ps.refresh()
    with pytest.warns(RuntimeWarning, match="twin") as rec:
        names = ps.backend_names()
    assert "dup_one" in str(rec[0].message) and "dup_two" in str(rec[0].message)
    assert "twin" in names and "torch" in names  # nothing else is taken down
    with pytest.raises(ps.BackendUnavailableError) as info:
        ps.Normal(0.0, 1.0, backend="twin").sample()
    msg = str(info.value)
    assert "dup_one" in msg and "dup_two" in msg and "Uninstall or disable" in msg, msg
    with pytest.raises(ps.BackendUnavailableError, match="dup_two"):
        ps.load_backend("twin")
    rows = [b for b in ps.backends() if b.name == "twin"]
    assert [r.status for r in rows] == ["disabled", "unavailable"]
    assert "dup_two" in rows[0].source and "duplicate" in rows[0].error
    # a mapping by name says what selecting the name does
    row = {b.name: b for b in ps.backends()}["twin"]
    assert row.status == "unavailable" and "dup_one" in row.error and "dup_two" in row.error
    assert ps.Normal(0.0, 1.0, backend="torch").sample().shape == ()
    assert ps.Normal(0.0, 1.0).sample().shape == ()


def test_a_misspelt_family_in_families_is_a_load_error_naming_plugin_and_name(
        tmp_path, monkeypatch) -> None:
    write_plugin(tmp_path, "typo_plugin", "typo")
    src = (tmp_path / "typo_plugin.py").read_text().replace('"Normal": polysample', '"Studentt": polysample')
    (tmp_path / "typo_plugin.py").write_text(src)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("POLYSAMPLE_PLUGINS", "typo_plugin")
    ps.refresh()
    with pytest.raises(ps.BackendUnavailableError, match="Studentt") as info:
        ps.load_backend("typo")
    assert "Did you mean 'StudentT'?" in str(info.value) and "typo_plugin" in str(info.value)
    row = {b.name: b for b in ps.backends()}["typo"]
    assert row.status == "unavailable" and "Studentt" in row.error
    assert ps.Normal(0.0, 1.0).sample().shape == ()  # the others keep working


def test_backend_factory_runs_only_on_first_use(tmp_path, monkeypatch) -> None:
    extra = textwrap.dedent('''
        CALLS = []
        def counted():
            CALLS.append(1)
            return B_lazy_plugin()
    ''')
    write_plugin(tmp_path, "lazy_plugin", "lazy", extra=extra, factory="counted")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("POLYSAMPLE_PLUGINS", "lazy_plugin")
    ps.refresh()
    import lazy_plugin  # type: ignore[import-not-found]

    assert "lazy" in ps.backend_names()
    d = ps.Normal(0.0, 1.0, backend="lazy")
    assert lazy_plugin.CALLS == []
    d.sample()
    d.sample()
    assert lazy_plugin.CALLS == [1]


def test_register_backend_and_unregister() -> None:
    class Tiny(ps.Backend):
        def families(self):  # type: ignore[no-untyped-def]
            return {}

    ps.register_backend("tiny", Tiny)
    try:
        assert ps.load_backend("tiny").name == "tiny"
    finally:
        ps.unregister_backend("tiny")
    with pytest.raises(ps.UnknownBackendError):
        ps.load_backend("tiny")


# --------------------------------------------------------------------------- entry points
def _example_entry_points() -> dict[str, str]:
    data = tomllib.loads((EXAMPLE / "pyproject.toml").read_text())
    return dict(data["project"]["entry-points"]["polysample"])


def _install_example(directory: Path) -> None:
    """The example's entry point as installed: the real installation where ``make venv`` made
    one, else a ``.dist-info`` in ``directory`` (two would register the name twice)."""
    eps = _example_entry_points()
    if not any(ep.name == "scipy" and ep.value == eps["scipy"]
               for ep in metadata.entry_points(group="polysample")):
        write_dist_info(directory, "polysample-scipy", eps)


def test_installed_example_plugin_is_found_through_its_entry_point(tmp_path) -> None:
    assert _example_entry_points() == {"scipy": "polysample_scipy"}
    _install_example(tmp_path)
    code = textwrap.dedent('''
        import json, polysample as ps
        row = {b.name: b for b in ps.backends()}.get("scipy")
        x = ps.Normal(0.0, 1.0, backend="scipy").sample((4,), seed=3)
        print(json.dumps({"status": row.status, "source": row.source, "shape": list(x.shape)}))
    ''')
    out = run_python(code, [tmp_path, EXAMPLE_SRC])
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["status"] == "available"
    assert "polysample-scipy" in result["source"]
    assert result["shape"] == [4]


def test_disable_plugin_autoload_skips_entry_points(tmp_path) -> None:
    _install_example(tmp_path)
    # The variable is read at discovery: one process checks both settings via refresh().
    code = textwrap.dedent('''
        import os, polysample as ps
        on = "scipy" in ps.backend_names()
        os.environ["POLYSAMPLE_DISABLE_PLUGIN_AUTOLOAD"] = "1"
        ps.refresh()
        off = "scipy" in ps.backend_names()
        print(on, off, "torch" in ps.backend_names())
    ''')
    out = run_python(code, [tmp_path, EXAMPLE_SRC])
    assert out.stdout.strip() == "True False True", out.stderr


def test_broken_entry_point_warns_naming_its_distribution(tmp_path) -> None:
    (tmp_path / "broken_ep_plugin.py").write_text("import not_installed_dependency_xyz\n")
    write_dist_info(tmp_path, "broken-dist", {"brokenep": "broken_ep_plugin"})
    code = textwrap.dedent('''
        import warnings, polysample as ps
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            names = ps.backend_names()
        msgs = [str(w.message) for w in caught if w.category is RuntimeWarning]
        assert any("broken-dist" in m and "broken_ep_plugin" in m for m in msgs), msgs
        assert "torch" in names
        try:
            ps.load_backend("brokenep")
        except ps.BackendUnavailableError as exc:
            assert isinstance(exc.__cause__, ImportError)
            print("ok")
    ''')
    out = run_python(code, [tmp_path])
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


# --------------------------------------------------------------------------- example backend
def _load_example_package():  # type: ignore[no-untyped-def]
    """``polysample_scipy`` from the checkout (installed or not), without touching sys.path."""
    name = "polysample_scipy"
    if name in sys.modules:
        return sys.modules[name]
    pkg = EXAMPLE_SRC / name
    spec = importlib.util.spec_from_file_location(name, pkg / "__init__.py",
                                                  submodule_search_locations=[str(pkg)])
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


_example = _load_example_package()


@pytest.fixture
def example_backend():  # type: ignore[no-untyped-def]
    # An instance: the suite and backend= take one as it is, installed or not.
    return _example.ScipyBackend()


def test_example_plugin_passes_the_shipped_contract(example_backend) -> None:
    # The same rules the built-in backends pass (tests/test_contract.py), from the shipped suite.
    from polysample.conformance import check_backend

    report = check_backend(example_backend, layers=("semantics",))
    assert report.results and report.ok, report.summary()


def test_example_plugin_global_stream_follows_manual_seed(example_backend) -> None:
    d = ps.Gamma(2.0, 1.0, backend=example_backend)
    ps.manual_seed(5)
    a = d.sample((8,))
    ps.manual_seed(5)
    assert torch.equal(a, d.sample((8,)))


def test_the_builtin_backend_modules_import_by_their_dotted_paths() -> None:
    # polysample.backends is the function backends(); `import a.b.c as x` reads attribute c of
    # it, which failed with ImportError (an outside trial): docs/plugins.md names these paths.
    import polysample.backends.numpy_backend as nb
    import polysample.backends.torch_backend as tb

    assert tb.TorchBackend.name == "torch" and nb.__name__ == "polysample.backends.numpy_backend"
    assert [b.name for b in ps.backends()] == [b.name for b in ps.core.plugins.backends()]
    with pytest.raises(AttributeError, match="no attribute or module 'nope'"):
        ps.backends.nope  # noqa: B018
