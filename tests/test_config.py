"""Choosing a backend: precedence, lazy reading, file discovery, fallbacks, isolation, errors.

Precedence, strongest first: ``backend=`` > ``use_backend`` > ``set_backend`` >
``POLYSAMPLE_BACKEND`` > ``[tool.polysample.families]`` > ``[tool.polysample] backend`` >
``"torch"``. The autouse ``clean_config`` fixture gives each test an empty environment and a
fresh temporary working directory.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

import polysample as ps
from polysample.core.config import backend_options, resolve_backend, resolve_backend_name
from polysample.core.plugins import registry

DRAWN_BY: list[str] = []
NAMES = ("cfg-arg", "cfg-ctx", "cfg-set", "cfg-env", "cfg-fam", "cfg-file", "cfg-narrow")


def _recording_backend(label: str) -> type[ps.Backend]:
    """A Normal-only backend that records which backend drew."""

    class Recording(ps.Backend):
        def families(self):  # type: ignore[no-untyped-def]
            return {"Normal": ps.FamilySupport(sample=True)}

        def sample(self, family, params, sample_shape, *, seed=None):  # type: ignore[no-untyped-def]
            DRAWN_BY.append(label)
            return torch.zeros(tuple(sample_shape) + tuple(params["loc"].shape))

    return Recording


@pytest.fixture(scope="module", autouse=True)
def recording_backends() -> Iterator[None]:
    for name in NAMES:
        ps.register_backend(name, _recording_backend(name), source="tests/test_config.py")
    yield
    for name in NAMES:
        ps.unregister_backend(name)


def drawn_by(dist: object = None) -> str:
    """Draw once from a Normal and return the name of the backend that drew it."""
    DRAWN_BY.clear()
    (dist or ps.Normal(0.0, 1.0)).sample()  # type: ignore[attr-defined]
    assert len(DRAWN_BY) == 1
    return DRAWN_BY[0]


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


# --------------------------------------------------------------------------- precedence
def test_default_backend_is_torch() -> None:
    assert ps.get_backend() == "torch"
    assert resolve_backend_name("Normal") == ("torch", "default")


def test_each_source_beats_the_next(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path / "pyproject.toml", '[tool.polysample]\nbackend = "cfg-file"\n'
          '[tool.polysample.families]\nNormal = "cfg-fam"\n')
    monkeypatch.setenv("POLYSAMPLE_BACKEND", "cfg-env")
    ps.set_backend("cfg-set")
    with ps.use_backend("cfg-ctx"):
        assert drawn_by(ps.Normal(0.0, 1.0, backend="cfg-arg")) == "cfg-arg"
        assert drawn_by() == "cfg-ctx"
    assert drawn_by() == "cfg-set"
    ps.set_backend(None)
    assert drawn_by() == "cfg-env"
    monkeypatch.delenv("POLYSAMPLE_BACKEND")
    assert drawn_by() == "cfg-fam"
    # the family override applies to its family only
    assert resolve_backend_name("Gamma")[0] == "cfg-file"
    assert ps.get_backend() == "cfg-file"
    (tmp_path / "pyproject.toml").unlink()
    ps.reload_config()
    assert ps.get_backend() == "torch"


def test_resolution_reports_its_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = write(tmp_path / "polysample.toml", 'backend = "cfg-file"\n')
    assert resolve_backend_name("Normal") == ("cfg-file", f"{cfg.resolve()}, key backend")
    monkeypatch.setenv("POLYSAMPLE_BACKEND", "cfg-env")
    assert resolve_backend_name("Normal") == ("cfg-env", "POLYSAMPLE_BACKEND")


def test_set_backend_none_clears_and_get_backend_reports() -> None:
    ps.set_backend("cfg-set")
    assert ps.get_backend() == "cfg-set"
    ps.set_backend(None)
    assert ps.get_backend() == "torch"


def test_use_backend_nests_and_restores() -> None:
    with ps.use_backend("cfg-ctx") as name:
        assert name == "cfg-ctx"
        with ps.use_backend("cfg-arg"):
            assert ps.get_backend() == "cfg-arg"
        assert ps.get_backend() == "cfg-ctx"
    assert ps.get_backend() == "torch"


def test_backend_argument_is_kept_by_the_distribution() -> None:
    d = ps.Normal(0.0, 1.0, backend="cfg-arg")
    assert d.backend == "cfg-arg"
    with ps.use_backend("cfg-ctx"):
        assert drawn_by(d) == "cfg-arg"


# --------------------------------------------------------------------------- laziness
def test_environment_is_read_at_use_not_import(monkeypatch: pytest.MonkeyPatch) -> None:
    assert ps.get_backend() == "torch"
    monkeypatch.setenv("POLYSAMPLE_BACKEND", "cfg-env")
    assert ps.get_backend() == "cfg-env"
    monkeypatch.setenv("POLYSAMPLE_BACKEND", "  ")  # blank means unset
    assert ps.get_backend() == "torch"


def test_file_is_read_on_first_use_then_cached_until_reload(tmp_path: Path) -> None:
    # Written after import, before the first resolution: it takes effect.
    cfg = write(tmp_path / "pyproject.toml", '[tool.polysample]\nbackend = "cfg-file"\n')
    assert ps.get_backend() == "cfg-file"
    cfg.write_text('[tool.polysample]\nbackend = "cfg-narrow"\n')
    assert ps.get_backend() == "cfg-file"  # cached
    ps.reload_config()
    assert ps.get_backend() == "cfg-narrow"


# --------------------------------------------------------------------------- discovery
def test_polysample_toml_is_preferred_to_pyproject_in_one_directory(tmp_path: Path) -> None:
    write(tmp_path / "pyproject.toml", '[tool.polysample]\nbackend = "cfg-file"\n')
    write(tmp_path / "polysample.toml", 'backend = "cfg-narrow"\n')
    assert ps.get_backend() == "cfg-narrow"


def test_search_goes_upwards_and_skips_pyproject_without_section(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path / "pyproject.toml", '[tool.polysample]\nbackend = "cfg-file"\n')
    write(tmp_path / "a" / "pyproject.toml", '[project]\nname = "inner"\n')
    (tmp_path / "a" / "b").mkdir()
    monkeypatch.chdir(tmp_path / "a" / "b")
    ps.reload_config()
    assert ps.get_backend() == "cfg-file"
    write(tmp_path / "a" / "polysample.toml", 'backend = "cfg-narrow"\n')
    ps.reload_config()
    assert ps.get_backend() == "cfg-narrow"  # the nearest file wins


def test_polysample_config_names_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path / "pyproject.toml", '[tool.polysample]\nbackend = "cfg-file"\n')
    other = write(tmp_path / "elsewhere" / "settings.toml", 'backend = "cfg-narrow"\n')
    monkeypatch.setenv("POLYSAMPLE_CONFIG", str(other))
    assert ps.get_backend() == "cfg-narrow"


def test_polysample_config_missing_file_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POLYSAMPLE_CONFIG", "/nonexistent/polysample.toml")
    with pytest.raises(ps.ConfigError, match="POLYSAMPLE_CONFIG.*not a file"):
        ps.get_backend()


def test_backend_options_table_and_source(tmp_path: Path) -> None:
    cfg = write(tmp_path / "pyproject.toml",
                '[tool.polysample]\nbackend = "torch"\n[tool.polysample.tfp]\nsubstrate = "jax"\n')
    options, source = backend_options("tfp")
    assert dict(options) == {"substrate": "jax"}
    assert str(cfg.resolve()) in source and "tool.polysample.tfp" in source
    assert backend_options("numpy")[0] == {}


# --------------------------------------------------------------------------- fallback
def test_fallback_chain_from_file(tmp_path: Path) -> None:
    write(tmp_path / "polysample.toml", 'backend = "cfg-narrow"\nfallback = ["cfg-file", "torch"]\n')
    assert resolve_backend("Normal").name == "cfg-narrow"
    assert resolve_backend("Gamma").name == "torch"  # cfg-file lacks Gamma too
    assert ps.Gamma(2.0, 1.0).sample((3,)).shape == (3,)


def test_missing_family_without_fallback_raises(tmp_path: Path) -> None:
    write(tmp_path / "polysample.toml", 'backend = "cfg-narrow"\n')
    with pytest.raises(ps.UnsupportedFamilyError, match="cfg-narrow.*Gamma.*fallback"):
        ps.Gamma(2.0, 1.0).sample()


def test_fallback_variable_beats_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path / "polysample.toml", 'backend = "cfg-narrow"\nfallback = ["cfg-file"]\n')
    monkeypatch.setenv("POLYSAMPLE_FALLBACK", "cfg-file, torch")
    assert resolve_backend("Gamma").name == "torch"
    monkeypatch.setenv("POLYSAMPLE_FALLBACK", "cfg-file")
    with pytest.raises(ps.UnsupportedFamilyError,
                       match=r"fallback chain \['cfg-file'\] \(POLYSAMPLE_FALLBACK"):
        resolve_backend("Gamma")
    # A chain holding only the chosen backend is named too (it was tried, uselessly).
    monkeypatch.setenv("POLYSAMPLE_FALLBACK", "cfg-narrow")
    with pytest.raises(ps.UnsupportedFamilyError, match=r"fallback chain \['cfg-narrow'\]"):
        resolve_backend("Gamma")


# --------------------------------------------------------------------------- isolation
def test_use_backend_in_one_thread_is_invisible_in_another() -> None:
    entered, checked = threading.Event(), threading.Event()
    seen: dict[str, str] = {}

    def worker() -> None:
        with ps.use_backend("cfg-ctx"):
            seen["worker"] = ps.get_backend()
            entered.set()
            checked.wait(10)

    with ps.use_backend("cfg-arg"):
        t = threading.Thread(target=worker)
        t.start()
        assert entered.wait(10)
        seen["main"] = ps.get_backend()
        checked.set()
        t.join(10)
        inner: dict[str, str] = {}
        t2 = threading.Thread(target=lambda: inner.setdefault("b", ps.get_backend()))
        t2.start()
        t2.join(10)
    assert seen == {"worker": "cfg-ctx", "main": "cfg-arg"}
    assert inner == {"b": "torch"}  # a new thread does not inherit the context


def test_use_backend_in_asyncio_tasks_is_isolated() -> None:
    async def task(name: str) -> list[str]:
        with ps.use_backend(name):
            out = []
            for _ in range(3):
                await asyncio.sleep(0)  # interleave with the other task
                out.append(ps.get_backend())
            return out

    async def main() -> tuple[list[str], list[str], str]:
        a, b = await asyncio.gather(task("cfg-ctx"), task("cfg-arg"))
        return a, b, ps.get_backend()

    a, b, after = asyncio.run(main())
    assert a == ["cfg-ctx"] * 3 and b == ["cfg-arg"] * 3 and after == "torch"


def test_a_file_saved_with_a_byte_order_mark_is_read(tmp_path: Path) -> None:
    # An outside trial: Windows editors save UTF-8 with a BOM, which tomllib refused as
    # "Invalid statement (at line 1, column 1)" in a file that looks valid.
    write(tmp_path / "polysample.toml", b'\xef\xbb\xbfbackend = "cfg-file"\n')
    ps.reload_config()
    assert ps.get_backend() == "cfg-file"


# --------------------------------------------------------------------------- errors
BAD_FILES = [
    ("malformed", "pyproject.toml", "[tool.polysample\nbackend = 'x'\n", "Malformed TOML"),
    # tomllib's UnicodeDecodeError was raw
    ("not-utf8", "polysample.toml", b'backend = "numpy\xff"\n', "not UTF-8 text"),
    ("backend-not-string", "pyproject.toml", "[tool.polysample]\nbackend = 3\n",
     "tool.polysample.backend"),
    ("backend-empty", "polysample.toml", 'backend = ""\n', "key backend"),
    ("unknown-backend", "pyproject.toml", '[tool.polysample]\nbackend = "nope"\n',
     "tool.polysample.backend.*'nope'.*not installed"),
    ("unknown-family", "pyproject.toml", '[tool.polysample.families]\nGauss = "torch"\n',
     "Unknown family 'Gauss'.*tool.polysample.families"),
    ("family-backend-not-string", "polysample.toml", "[families]\nNormal = 1\n",
     "families.Normal"),
    ("fallback-string", "pyproject.toml", '[tool.polysample]\nfallback = "torch"\n',
     "list of backend names.*tool.polysample.fallback"),
    ("fallback-unknown", "polysample.toml", 'backend = "cfg-narrow"\nfallback = ["nope"]\n',
     "key fallback.*'nope'"),
    ("unknown-key", "pyproject.toml", "[tool.polysample]\nbakend = 'torch'\n",
     "tool.polysample.bakend"),
]


@pytest.mark.parametrize("fname,text,match", [b[1:] for b in BAD_FILES],
                         ids=[b[0] for b in BAD_FILES])
def test_bad_configuration_file_raises_config_error_naming_file_and_key(
    tmp_path: Path, fname: str, text: str | bytes, match: str
) -> None:
    path = write(tmp_path / fname, text)
    with pytest.raises(ps.ConfigError, match=match) as info:
        ps.Gamma(2.0, 1.0).sample()
    assert str(path.resolve()) in str(info.value)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("var", ["POLYSAMPLE_BACKEND", "POLYSAMPLE_FALLBACK"])
def test_bad_environment_value_raises_config_error_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, var: str
) -> None:
    monkeypatch.setenv(var, "no-such-backend")
    if var == "POLYSAMPLE_FALLBACK":
        ps.set_backend("cfg-narrow")  # Gamma then needs the fallback chain
    with pytest.raises(ps.ConfigError, match=f"{var}.*no-such-backend.*Expected one of"):
        ps.Gamma(2.0, 1.0).sample()


def test_set_and_use_backend_reject_unknown_names() -> None:
    with pytest.raises(ps.UnknownBackendError, match="nope.*Expected one of"):
        ps.set_backend("nope")
    with pytest.raises(ps.UnknownBackendError):
        with ps.use_backend("nope"):
            pass
    with pytest.raises(ps.UnknownBackendError, match="str"):
        ps.set_backend(3)  # type: ignore[arg-type]
    assert ps.get_backend() == "torch"


# --------------------------------------------------------------------------- loud, not silent
def test_a_misspelt_table_is_a_config_error_with_a_did_you_mean() -> None:
    write(Path("pyproject.toml"), '[tool.polysample]\nbackend = "torch"\n'
                                  '[tool.polysample.familes]\nGamma = "numpy"\n')
    with pytest.raises(ps.ConfigError, match=r"familes.*Did you mean 'families'"):
        ps.Normal(0.0, 1.0).sample()


def test_an_unknown_backend_option_is_a_config_error_with_a_did_you_mean() -> None:
    write(Path("pyproject.toml"), '[tool.polysample.tfp]\nsubstrat = "jax"\n')
    with pytest.raises(ps.ConfigError, match=r"substrat.*Did you mean 'substrate'"):
        backend_options("tfp", {"substrate": "jax or tensorflow"})


def test_a_bad_fallback_entry_fails_when_the_config_is_read() -> None:
    write(Path("pyproject.toml"), '[tool.polysample]\nfallback = ["nmupy"]\n')
    with pytest.raises(ps.ConfigError, match=r"fallback.*nmupy.*Did you mean 'numpy'"):
        ps.Normal(0.0, 1.0).sample()  # Normal needs no fallback: the file is still checked


def test_backend_for_says_which_backend_draws_a_family_and_why() -> None:
    write(Path("pyproject.toml"), '[tool.polysample]\nbackend = "numpy"\nfallback = ["torch"]\n'
                                  '[tool.polysample.families]\nNormal = "cfg-fam"\n')
    r = ps.backend_for("Normal")
    assert r.name == "cfg-fam" and "families.Normal" in r.source
    r = ps.backend_for("LKJCholesky")  # numpy lacks it: the fallback draws
    assert (r.name, r.chosen, r.fallback) == ("torch", "numpy", ("torch",))
    assert "fallback" in r.explain() and "numpy" in r.explain()
    with ps.use_backend("cfg-ctx"):
        assert ps.backend_for("Normal").source == "use_backend()"
    with pytest.raises(ps.UnsupportedFamilyError, match="Normall"):
        ps.backend_for("Normall")


def test_a_backend_instance_is_accepted_wherever_a_name_is() -> None:
    inst = _recording_backend("inst")()
    inst.name = "inst"
    ps.set_backend(inst)
    assert drawn_by() == "inst" and ps.get_backend() == "inst"
    ps.set_backend(None)
    with ps.use_backend(inst):
        assert drawn_by() == "inst"
    assert drawn_by(ps.Normal(0.0, 1.0, backend=inst)) == "inst"


def test_backend_names_given_to_constructors_are_checked_where_they_are_given() -> None:
    # As set_backend and use_backend check theirs: not at the first draw, far from the typo.
    with pytest.raises(ps.UnknownBackendError, match="'nmupy'.*Expected one of.*numpy"):
        ps.Normal(0.0, 1.0, backend="nmupy")
    with pytest.raises(ps.UnknownBackendError, match="'nmupy'"):
        ps.wrap(torch.distributions.Normal(0.0, 1.0), backend="nmupy")
    with pytest.raises(ps.UnknownBackendError, match="'nmupy'"):
        ps.MixtureSameFamily(torch.distributions.Categorical(torch.ones(2)),
                             ps.Normal(torch.zeros(2), 1.0), backend="nmupy")
    # A registered backend is not loaded at construction: one that cannot load says so when
    # it is first used.
    def broken() -> ps.Backend:
        raise ImportError("no such library")

    ps.register_backend("cfg-broken", broken)
    try:
        d = ps.Normal(0.0, 1.0, backend="cfg-broken")
        with pytest.raises(ps.BackendUnavailableError, match="cfg-broken"):
            d.sample()
    finally:
        ps.unregister_backend("cfg-broken")


def test_the_environment_and_the_files_mistakes_are_config_errors(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # An outside trial's findings: each was silent, lazy or a raw exception.
    # A new POLYSAMPLE_CONFIG is read at the next resolution, without reload_config().
    a, b = tmp_path / "a.toml", tmp_path / "b.toml"
    write(a, 'backend = "numpy"\n')
    write(b, 'backend = "cfg-ctx"\n')
    monkeypatch.setenv("POLYSAMPLE_CONFIG", str(a))
    assert ps.get_backend() == "numpy"
    monkeypatch.setenv("POLYSAMPLE_CONFIG", str(b))
    assert ps.get_backend() == "cfg-ctx"
    # A families entry naming no installed backend, when the file is read.
    write(a, '[families]\nGamma = "nmupy"\n')
    monkeypatch.setenv("POLYSAMPLE_CONFIG", str(a))
    with pytest.raises(ps.ConfigError, match=r"families.Gamma names backend 'nmupy'.*numpy"):
        ps.get_backend()
    # Options for a backend that takes none: when it loads after the file was read, or when
    # the file is read after it loaded (loading never reads the file itself).
    loaded = ps.load_backend("numpy")
    monkeypatch.setattr(registry.entries()["numpy"], "instance", None)
    write(a, '[numpy]\nseed = 3\n')
    ps.reload_config()
    assert ps.get_backend() == "torch"
    with pytest.raises(ps.ConfigError, match=r"'numpy' takes no options.*numpy.seed"):
        ps.load_backend("numpy")
    monkeypatch.setattr(registry.entries()["numpy"], "instance", loaded)
    ps.reload_config()
    with pytest.raises(ps.ConfigError, match=r"'numpy' takes no options.*numpy.seed"):
        ps.get_backend()
    monkeypatch.delenv("POLYSAMPLE_CONFIG")
    ps.reload_config()
    # Names that are not strings.
    for bad in (["numpy"], 3):
        with pytest.raises(ps.UnknownBackendError, match="Expected a backend name"):
            ps.set_backend(bad)  # type: ignore[arg-type]
        with pytest.raises(ps.UnknownBackendError, match="Expected a backend name"):
            with ps.use_backend(bad):  # type: ignore[arg-type]
                pass


def test_a_deleted_working_directory_is_a_config_error(tmp_path: Path) -> None:
    import subprocess
    import sys

    code = ("import os, tempfile, polysample as ps\n"
            "d = tempfile.mkdtemp(); os.chdir(d); os.rmdir(d)\n"
            "try:\n    ps.get_backend()\n"
            "except ps.ConfigError as e:\n    print('ConfigError', e)\n"
            "print(ps.Normal(0., 1., backend='torch').sample().shape)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, env={k: v for k, v in os.environ.items()
                                            if not k.startswith("POLYSAMPLE_")})
    assert done.returncode == 0, done.stderr
    assert "ConfigError Cannot search the working directory" in done.stdout
    assert "POLYSAMPLE_CONFIG" in done.stdout and "torch.Size([])" in done.stdout


@pytest.mark.parametrize("value,disabled", [("1", True), ("TRUE", True), ("On", True),
                                            ("yes", True), ("", False), ("0", False),
                                            ("off", False), ("No", False)])
def test_the_autoload_switch_reads_the_usual_spellings(value: str, disabled: bool,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from polysample.core.plugins import _autoload_disabled

    monkeypatch.setenv("POLYSAMPLE_DISABLE_PLUGIN_AUTOLOAD", value)
    assert _autoload_disabled() is disabled


def test_another_autoload_value_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from polysample.core.plugins import _autoload_disabled

    monkeypatch.setenv("POLYSAMPLE_DISABLE_PLUGIN_AUTOLOAD", "maybe")
    with pytest.raises(ps.ConfigError, match="POLYSAMPLE_DISABLE_PLUGIN_AUTOLOAD.*'maybe'"):
        _autoload_disabled()


def test_the_second_trials_mistakes_get_messages_that_say_what_to_do(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # An outside trial of the resolver (2026-12-06): each message lacked the fix, or gave one
    # that did not apply.
    write(Path("pyproject.toml"), '[tool]\npolysample = "numpy"\n')
    with pytest.raises(ps.ConfigError, match=r'Received: .numpy.\. Write the settings as keys '
                                             r'of that table, e\.g\.\n\[tool\.polysample\]\n'
                                             r'backend = "numpy"'):
        ps.get_backend()
    Path("pyproject.toml").unlink()
    write(Path("polysample.toml"), '[tool.polysample]\nbackend = "numpy"\n')
    ps.reload_config()
    with pytest.raises(ps.ConfigError, match=r"\[tool\].*polysample.toml takes its settings at "
                                             r"the top level.*without the \[tool.polysample\]"):
        ps.get_backend()
    write(Path("polysample.toml"), 'fallback = ["trch"]\n')
    ps.reload_config()
    with pytest.raises(ps.ConfigError, match=r"'trch'.*Did you mean 'torch'\? Install the "
                                             r"plugin that provides it, or fix the name"):
        ps.get_backend()
    Path("polysample.toml").unlink()
    ps.reload_config()
    # separators alone name no backend: an error, not an empty chain hiding the file's
    monkeypatch.setenv("POLYSAMPLE_FALLBACK", ",")
    ps.set_backend("cfg-narrow")  # Gamma then needs the fallback chain
    with pytest.raises(ps.ConfigError, match=r"POLYSAMPLE_FALLBACK.*names no backend"):
        ps.Gamma(2.0, 1.0).sample()
    ps.set_backend(None)
    # another case, stray spaces or a typo: a did-you-mean wherever a name is given
    for name in ("NUMPY", " numpy", "nmupy"):
        with pytest.raises(ps.UnknownBackendError, match="Did you mean 'numpy'"):
            ps.set_backend(name)
        with pytest.raises(ps.UnknownBackendError, match="Did you mean 'numpy'"):
            ps.Normal(0.0, 1.0, backend=name)
    # NumPy's generator is named as NumPy's; manual_seed's advice is manual_seed's
    import numpy as np

    with pytest.raises(ps.InvalidParameterError,
                       match=r"Received: numpy\.random\.Generator\. Pass a torch\.Generator"):
        ps.Normal(0.0, 1.0).sample(generator=np.random.default_rng(0))
    with pytest.raises(ps.InvalidParameterError, match=r"polysample\.manual_seed\(7\)") as info:
        ps.manual_seed(1.5)  # type: ignore[arg-type]
    assert "generator" not in str(info.value)


def test_one_use_backend_object_is_one_block_and_a_decorator() -> None:
    block = ps.use_backend("cfg-ctx")
    with block:
        with pytest.raises(ps.ConfigError, match="already active.*a new `with ps.use_backend"):
            with block:
                pass
        assert drawn_by() == "cfg-ctx"  # the failed entry left the active block alone
        with ps.use_backend("cfg-set"):  # blocks nest
            assert drawn_by() == "cfg-set"
        assert drawn_by() == "cfg-ctx"
    with block:  # entered again once left
        assert drawn_by() == "cfg-ctx"

    @ps.use_backend("cfg-env")
    def draw(depth: int) -> str:
        return draw(depth - 1) if depth else drawn_by()

    assert draw(2) == "cfg-env"  # each call (recursion too) is a block of its own
    assert ps.get_backend() == "torch"


def test_use_backend_decorates_coroutines_and_generators_while_their_bodies_run() -> None:
    # ContextDecorator entered and left the block when the coroutine or generator object was
    # made: the body then drew on the default backend, silently (an outside trial)
    import asyncio

    @ps.use_backend("cfg-ctx")
    async def coro() -> str:
        await asyncio.sleep(0)
        return drawn_by()

    @ps.use_backend("cfg-ctx")
    def gen() -> Any:
        got = yield drawn_by()
        assert got == "sent"
        try:
            yield drawn_by()
        except KeyError:
            yield f"caught in {drawn_by()}"
        return "done"

    @ps.use_backend("cfg-ctx")
    async def agen() -> Any:
        await asyncio.sleep(0)
        yield drawn_by()
        yield drawn_by()

    assert asyncio.run(coro()) == "cfg-ctx"
    g = gen()
    assert next(g) == "cfg-ctx"
    assert ps.get_backend() == "torch"  # between yields, the caller's own backend
    assert g.send("sent") == "cfg-ctx"
    assert g.throw(KeyError("k")) == "caught in cfg-ctx"
    with pytest.raises(StopIteration) as stop:
        next(g)
    assert stop.value.value == "done"

    async def consume() -> list[str]:
        out = []
        async for name in agen():
            out.append(name)
            out.append(ps.get_backend())
        return out

    assert asyncio.run(consume()) == ["cfg-ctx", "torch", "cfg-ctx", "torch"]
    assert ps.get_backend() == "torch"
