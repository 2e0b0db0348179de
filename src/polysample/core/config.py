"""Choosing a backend: the one resolver, with its precedence written down in one place.

For a draw of family ``F`` the backend is, strongest first:

1. the per-call ``backend=`` (constructor argument of the distribution);
2. the innermost :func:`use_backend` context (a ``contextvars.ContextVar``: threads and asyncio
   tasks do not see each other's contexts);
3. :func:`set_backend` (process-wide);
4. the ``POLYSAMPLE_BACKEND`` environment variable;
5. the configuration file: ``[tool.polysample.families] F = "..."``, then
   ``[tool.polysample] backend = "..."`` in the nearest ``pyproject.toml`` that has a
   ``[tool.polysample]`` table, or a ``polysample.toml`` (same keys at top level), searching from
   the working directory upwards (``POLYSAMPLE_CONFIG`` names a file explicitly);
6. ``"torch"``.

If the chosen backend lacks ``F``, the fallback chain (``fallback = [...]`` in the file, or
``POLYSAMPLE_FALLBACK="a,b"``) is tried in order. The environment is read at each resolution
(cheap), the file on first need and then cached; :func:`reload_config` reads it again.
A bad value raises :class:`ConfigError` naming its source.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import inspect
import os
import threading
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .backend import Backend
from .errors import ConfigError, UnknownBackendError, UnsupportedFamilyError, did_you_mean
from .families import FAMILIES
from .plugins import registry

__all__ = [
    "DEFAULT_BACKEND",
    "Resolution",
    "backend_for",
    "FileConfig",
    "get_backend",
    "set_backend",
    "use_backend",
    "reload_config",
    "file_config",
    "resolve_backend_name",
    "resolve_backend",
    "backend_options",
]

DEFAULT_BACKEND = "torch"

_context: contextvars.ContextVar[str | Backend | None] = contextvars.ContextVar(
    "polysample_backend", default=None
)
_global: str | Backend | None = None
_file_lock = threading.Lock()
_file: FileConfig | None = None


@dataclass(frozen=True)
class FileConfig:
    """The ``[tool.polysample]`` settings of one file (empty when no file was found)."""

    path: Path | None = None
    section: str = ""  # "[tool.polysample]" or "" for a polysample.toml
    backend: str | None = None
    families: Mapping[str, str] = field(default_factory=dict)
    fallback: tuple[str, ...] = ()
    options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def source(self, key: str) -> str:
        where = f"{self.section}.{key}" if self.section else key
        return f"{self.path}, key {where}"


def _check_name(value: object, source: str) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(
            f"Expected a backend name (a non-empty string) at {source}. Received: {value!r}. "
            'Write the name as a quoted string, e.g. "numpy".'
        )
    return value


def _parse(path: Path, table: Mapping[str, Any], section: str) -> FileConfig:
    def src(key: str) -> str:
        return f"{path}, key {section + '.' if section else ''}{key}"

    if not isinstance(table, Mapping):
        raise ConfigError(
            f"Expected a table at {path} [{section}]. Received: {table!r}. Write the settings "
            f"as keys of that table, e.g.\n[{section}]\nbackend = \"numpy\"")
    backend = table.get("backend")
    if backend is not None:
        _check_name(backend, src("backend"))
    fams = table.get("families", {})
    if not isinstance(fams, Mapping):
        raise ConfigError(f"Expected a table of family = backend at {src('families')}. "
                          f"Received: {fams!r}. Write it as a table, e.g. "
                          f"[{section + '.' if section else ''}families] with lines such as "
                          'Gamma = "numpy".')
    for fam, name in fams.items():
        if fam not in FAMILIES:
            raise ConfigError(
                f"Unknown family {fam!r} at {src('families')}. Expected one of: "
                f"{', '.join(sorted(FAMILIES))}.{did_you_mean(fam, sorted(FAMILIES))}"
            )
        _check_name(name, src(f"families.{fam}"))
    installed = sorted(registry.entries())
    for fam, name in fams.items():
        if name not in installed:
            raise ConfigError(
                f"{src(f'families.{fam}')} names backend {name!r}, which is not installed. "
                f"Expected one of: {', '.join(installed)}.{did_you_mean(name, installed)} "
                "Install the plugin that provides it, or fix the name."
            )
    fallback = table.get("fallback", [])
    if isinstance(fallback, str) or not isinstance(fallback, list):
        raise ConfigError(
            f"Expected a list of backend names at {src('fallback')}, e.g. "
            f'fallback = ["numpy", "torch"]. Received: {fallback!r}.'
        )
    for name in fallback:
        _check_name(name, src("fallback"))
        if name not in installed:
            raise ConfigError(
                f"{src('fallback')} names backend {name!r}, which is not installed. Expected "
                f"some of: {', '.join(installed)}.{did_you_mean(name, installed)} Install the "
                "plugin that provides it, or fix the name."
            )
    known = {"backend", "families", "fallback"}
    options = {k: v for k, v in table.items() if k not in known}
    for k, v in options.items():
        if not isinstance(v, Mapping):
            raise ConfigError(
                f"Unknown key {src(k)} = {v!r}. Expected one of: backend, families, fallback, "
                "or a table of backend options such as [tool.polysample.tfp]."
                f"{did_you_mean(k, sorted(known))}"
            )
        if k == "tool" and not section:
            raise ConfigError(
                f"Unknown table [tool] in {path}: a polysample.toml takes its settings at the "
                "top level (backend = \"numpy\", [families], fallback = [...]), without the "
                "[tool.polysample] of a pyproject.toml. Move them out of [tool.polysample].")
        if k not in installed:
            raise ConfigError(
                f"Unknown table [{section + '.' if section else ''}{k}] in {path}. Expected "
                "[families] or a table of options named after an installed backend "
                f"({', '.join(installed)}).{did_you_mean(k, ['families'] + installed)}"
            )
    cfg = FileConfig(path, section, backend, dict(fams), tuple(fallback), options)
    entries = registry.entries()
    for k in options:  # the tables of backends already loaded (the others: when they load)
        instance = entries[k].instance
        if instance is not None and instance.options is not None:
            _check_options(cfg, k, instance.options)
    return cfg


def _load_file(path: Path) -> FileConfig | None:
    try:
        raw = path.read_bytes()
        # A UTF-8 byte-order mark (Windows editors write one) is not TOML: read past it.
        data = tomllib.loads(raw.removeprefix(b"\xef\xbb\xbf").decode("utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"Malformed TOML in {path}: {exc}. Fix the file's syntax.") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"Malformed TOML in {path}: not UTF-8 text ({exc.reason} at byte "
                          f"{exc.start}). Save the file as UTF-8.") from exc
    except OSError as exc:
        raise ConfigError(f"Cannot read configuration file {path}: {exc}.") from exc
    if path.name == "pyproject.toml":
        tool = data.get("tool", {})
        if "polysample" not in tool:
            return None
        return _parse(path, tool["polysample"], "tool.polysample")
    return _parse(path, data, "")


def _find_file() -> FileConfig:
    explicit = os.environ.get("POLYSAMPLE_CONFIG")
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise ConfigError(
                f"POLYSAMPLE_CONFIG (environment variable) names {explicit!r}, which is not a "
                "file. Point it at a polysample.toml or pyproject.toml, or unset it."
            )
        return _load_file(path) or FileConfig(path, "tool.polysample")
    try:
        here = Path.cwd().resolve()
    except OSError as exc:  # the working directory was deleted (or cannot be read)
        raise ConfigError(
            f"Cannot search the working directory for polysample.toml or pyproject.toml: "
            f"{exc.strerror or exc} (was it deleted?). Change to an existing directory, name "
            "the file with POLYSAMPLE_CONFIG, or set what the file would: the backend with "
            "backend=..., ps.set_backend(...) or POLYSAMPLE_BACKEND, the fallback chain with "
            "POLYSAMPLE_FALLBACK."
        ) from exc
    for directory in (here, *here.parents):
        for fname in ("polysample.toml", "pyproject.toml"):
            candidate = directory / fname
            if candidate.is_file():
                cfg = _load_file(candidate)
                if cfg is not None:
                    return cfg
    return FileConfig()


#: POLYSAMPLE_CONFIG when ``_file`` was read: another value makes the next resolution read
#: the file it names (the environment is read at every resolution).
_file_env: str | None = None


def file_config() -> FileConfig:
    """The configuration file's settings (read on first call, then cached; read again when
    ``POLYSAMPLE_CONFIG`` changes, or after :func:`reload_config`)."""
    global _file, _file_env
    env = _read_config_env()
    if _file is None or env != _file_env:
        with _file_lock:
            if _file is None or env != _file_env:
                _file = _find_file()
                _file_env = env
    return _file


def reload_config() -> None:
    """Forget the cached configuration file; the next resolution reads it again."""
    global _file
    with _file_lock:
        _file = None


def _validate_known(name: str, source: str) -> str:
    if name not in registry.entries():
        raise ConfigError(
            f"{source} names backend {name!r}, which is not installed. Expected one of: "
            f"{', '.join(sorted(registry.entries()))}."
            f"{did_you_mean(name, sorted(registry.entries()))} Install the plugin that provides "
            "it, or fix the name."
        )
    return name


def set_backend(name: str | Backend | None) -> None:
    """Set the process-wide backend: a name or a ``Backend`` instance (``None`` clears it).
    Raises ``UnknownBackendError`` for a name nobody registered."""
    global _global
    if name is not None:
        require_registered(name)
    _global = name


def require_registered(name: object) -> None:
    """Raise ``UnknownBackendError`` for a name no plugin registered (a ``Backend`` passes)
    or for anything that is not a name (a list, a number)."""
    if isinstance(name, Backend):
        return
    if not isinstance(name, str):
        raise UnknownBackendError(
            f"Expected a backend name (str) or a polysample.Backend instance. Received: "
            f"{name!r} of type {type(name).__name__}. Available backends: "
            f"{', '.join(sorted(registry.entries()))}."
        )
    if name not in registry.entries():
        registry.load(name)  # raises UnknownBackendError


class use_backend(contextlib.ContextDecorator):  # noqa: N801 - a function to its callers
    """Within the ``with`` block (this thread / asyncio task only), draw with ``name`` (a
    backend name or a ``Backend`` instance). Also a decorator: each call of the decorated
    function draws with ``name``.

    One object is one block: entering it again while it is active raises ``ConfigError``
    (write ``with ps.use_backend(...)`` for each block); blocks nest.
    """

    def __init__(self, name: str | Backend) -> None:
        self.name = name
        self._token: contextvars.Token[str | Backend | None] | None = None

    def _recreate_cm(self) -> use_backend:  # a decorated function's calls: a block each
        return use_backend(self.name)

    def __call__(self, func: Any) -> Any:
        """The decorator. A coroutine function's body runs in the block (while it runs: the
        block is the task's); a generator's or an async generator's body too, each time it
        resumes, and not between its yields (the caller's code there keeps its own backend).
        ContextDecorator's wrapper entered and left the block when the coroutine or
        generator object was made, before the body ran: it drew on the default backend."""
        name = self.name
        if inspect.isasyncgenfunction(func):
            @functools.wraps(func)
            async def agen(*args: Any, **kwargs: Any) -> Any:
                inner = func(*args, **kwargs)
                send: Any = None
                thrown: BaseException | None = None
                while True:
                    with use_backend(name):
                        try:
                            item = await (inner.athrow(thrown) if thrown is not None
                                          else inner.asend(send))
                        except StopAsyncIteration:
                            return
                    try:
                        send, thrown = (yield item), None
                    except GeneratorExit:
                        with use_backend(name):
                            await inner.aclose()
                        raise
                    except BaseException as exc:  # noqa: BLE001 - thrown into the body
                        send, thrown = None, exc
            return agen
        if inspect.iscoroutinefunction(func):
            @functools.wraps(func)
            async def coro(*args: Any, **kwargs: Any) -> Any:
                with use_backend(name):
                    return await func(*args, **kwargs)
            return coro
        if inspect.isgeneratorfunction(func):
            @functools.wraps(func)
            def gen(*args: Any, **kwargs: Any) -> Any:
                inner = func(*args, **kwargs)
                send: Any = None
                thrown: BaseException | None = None
                while True:
                    with use_backend(name):
                        try:
                            item = inner.throw(thrown) if thrown is not None \
                                else inner.send(send)
                        except StopIteration as stop:
                            return stop.value
                    try:
                        send, thrown = (yield item), None
                    except GeneratorExit:
                        with use_backend(name):
                            inner.close()
                        raise
                    except BaseException as exc:  # noqa: BLE001 - thrown into the body
                        send, thrown = None, exc
            return gen
        return super().__call__(func)

    def __enter__(self) -> str | Backend:
        require_registered(self.name)
        if self._token is not None:
            raise ConfigError(
                f"This use_backend({self.name!r}) block is already active: one use_backend(...) "
                "object is entered once. Write a new `with ps.use_backend(...)` for each block "
                "(blocks nest).")
        self._token = _context.set(self.name)
        return self.name

    def __exit__(self, *exc: object) -> None:
        token, self._token = self._token, None
        if token is not None:
            _context.reset(token)


def _label(choice: str | Backend) -> str:
    return choice if isinstance(choice, str) else (choice.name or type(choice).__name__)


def _choose(family: str | None, explicit: str | Backend | None) -> tuple[str | Backend, str]:
    """The backend (name or instance) chosen for ``family`` and by which source, before
    fallbacks. The precedence of the module docstring, in one place."""
    if explicit is not None:
        return explicit, "backend= argument"
    ctx = _context.get()
    if ctx is not None:
        return ctx, "use_backend()"
    if _global is not None:
        return _global, "set_backend()"
    env = os.environ.get("POLYSAMPLE_BACKEND")
    if env is not None and env.strip():
        return _validate_known(env.strip(), "POLYSAMPLE_BACKEND (environment variable)"), \
            "POLYSAMPLE_BACKEND"
    cfg = file_config()
    if family is not None and family in cfg.families:
        src = cfg.source(f"families.{family}")
        return _validate_known(cfg.families[family], src), src
    if cfg.backend is not None:
        src = cfg.source("backend")
        return _validate_known(cfg.backend, src), src
    return DEFAULT_BACKEND, "default"


def resolve_backend_name(family: str | None = None,
                         explicit: str | Backend | None = None) -> tuple[str, str]:
    """The backend name for ``family`` and the source that chose it (before fallbacks)."""
    choice, source = _choose(family, explicit)
    return _label(choice), source


def get_backend() -> str:
    """The name of the backend a draw would use now, ignoring per-family overrides and
    fallbacks (:func:`backend_for` answers for one family)."""
    return resolve_backend_name(None)[0]


@dataclass(frozen=True)
class Resolution:
    """Which backend draws a family under the current configuration, and why.

    Attributes:
        family: the family asked about.
        name: the backend that will draw it.
        source: what chose the first candidate (``backend= argument``, ``use_backend()``,
            ``set_backend()``, ``POLYSAMPLE_BACKEND``, a configuration file and key, or
            ``default``).
        chosen: the first candidate; differs from ``name`` when a fallback draws instead.
        fallback: the fallback chain that was consulted (empty when none was needed).
        backend: the loaded ``Backend``.
    """

    family: str
    name: str
    source: str
    chosen: str
    fallback: tuple[str, ...]
    backend: Backend = field(repr=False, compare=False)

    def explain(self) -> str:
        if self.name == self.chosen:
            return f"{self.family} is drawn by {self.name!r}, chosen by {self.source}."
        return (f"{self.family} is drawn by {self.name!r}: {self.chosen!r} (chosen by "
                f"{self.source}) does not support it, so the fallback chain "
                f"{list(self.fallback)} picked {self.name!r}.")


def backend_for(family: str, backend: str | Backend | None = None) -> Resolution:
    """Which backend draws ``family`` now (``backend=`` as a distribution would pass it), and
    from which source: the same resolution as a draw, fallbacks included.

    Raises as a draw would (``UnsupportedFamilyError`` when nothing supports the family).
    """
    from .families import family_spec

    family_spec(family)  # an unknown family raises, listing the known ones
    b, chosen, source, chain = _resolve(family, backend)
    return Resolution(family, _label(b), source, chosen, chain, b)


def _fallback_chain() -> tuple[tuple[str, str], ...]:
    env = os.environ.get("POLYSAMPLE_FALLBACK")
    if env is not None and env.strip():
        names = [n.strip() for n in env.split(",") if n.strip()]
        if not names:
            raise ConfigError(
                f"POLYSAMPLE_FALLBACK (environment variable) is {env!r}, which names no backend. "
                "Expected comma-separated backend names, e.g. POLYSAMPLE_FALLBACK=torch,numpy; "
                "unset it to use the configuration file's fallback.")
        return tuple((_validate_known(n, "POLYSAMPLE_FALLBACK (environment variable)"), n)
                     for n in names)
    cfg = file_config()
    return tuple((_validate_known(n, cfg.source("fallback")), n) for n in cfg.fallback)


# resolve_backend runs on every draw. Its answer depends only on the inputs in the cache key
# below, on the cached file configuration (a new object after reload_config) and on the
# registry's entries (a new dict after every refresh or registration); a hit checks both by
# identity (the cache holds them, so their ids cannot be reused), so it is exact. Only answers
# whose first choice supports the family are cached: fallbacks (POLYSAMPLE_FALLBACK) never are.
_resolved: dict[tuple[Any, ...], tuple[Mapping[str, Any], FileConfig | None, Backend]] = {}
_RESOLVED_MAX = 4096
# The same answers for an explicit backend name: name -> (registry entries, family -> backend).
_by_name: dict[str, tuple[Mapping[str, Any], dict[str, Backend]]] = {}


def _env_reader(name: str) -> Any:
    """A fast ``os.environ.get(name)`` for the per-draw path.

    ``os.environ.get`` of an unset variable raises and catches a KeyError inside ``_Environ``
    (about 1 us); reading CPython's underlying mapping directly is ~10x cheaper and sees every
    change made through ``os.environ`` (``monkeypatch.setenv`` included). Falls back to
    ``os.environ.get`` where that mapping is not available.
    """
    environ: Any = os.environ
    data = getattr(environ, "_data", None)
    encodekey = getattr(environ, "encodekey", None)
    decodevalue = getattr(environ, "decodevalue", None)
    if not isinstance(data, dict) or encodekey is None or decodevalue is None:
        return lambda: os.environ.get(name)
    key = encodekey(name)

    def read() -> str | None:
        raw = data.get(key)
        return None if raw is None else decodevalue(raw)  # type: ignore[no-any-return]

    return read


_read_backend_env = _env_reader("POLYSAMPLE_BACKEND")
_read_config_env = _env_reader("POLYSAMPLE_CONFIG")


def _resolution_key(family: str, explicit: str | Backend | None) -> tuple[Any, ...] | None:
    if explicit is not None:
        return (family, 0, explicit)
    ctx = _context.get()
    if ctx is not None:
        return (family, 1, ctx)
    if _global is not None:
        return (family, 2, _global)
    env = _read_backend_env()
    if env is not None and env.strip():
        return (family, 3, env)
    if _file is None or _read_config_env() != _file_env:
        return None  # the file is not read yet (or another one is named): the slow way
    return (family, 4, id(_file))


def _resolve(family: str, explicit: str | Backend | None
             ) -> tuple[Backend, str, str, tuple[str, ...]]:
    """The backend that draws ``family``, the first candidate's name, its source and the
    fallback chain consulted (empty when the first candidate supports the family)."""
    choice, source = _choose(family, explicit)
    if isinstance(choice, Backend):
        backend = choice
    else:
        try:
            backend = registry.load(choice)
        except UnknownBackendError:
            if source in ("backend= argument", "use_backend()", "set_backend()"):
                raise
            raise ConfigError(f"{source} names unknown backend {choice!r}.") from None
    label = _label(choice)
    if family in backend.families():
        return backend, label, source, ()
    chain = tuple(fb for fb, _ in _fallback_chain())
    tried = [label]
    for fb in chain:
        if fb in tried:
            continue
        tried.append(fb)
        candidate = registry.load(fb)
        if family in candidate.families():
            return candidate, label, source, chain
    why = getattr(backend, "omitted", {}).get(family)
    env = os.environ.get("POLYSAMPLE_FALLBACK")
    chain_source = ("POLYSAMPLE_FALLBACK (environment variable)" if env is not None and env.strip()
                    else file_config().source("fallback"))
    raise UnsupportedFamilyError(
        f"Backend {label!r} (chosen by {source}) does not support {family!r}"
        + (f" ({why.rstrip('.')})" if why else "")
        + (f", nor does any backend of the fallback chain {list(chain)} ({chain_source})"
           if chain else "")
        + ". Choose another backend with backend=..., or configure a fallback chain "
        "(POLYSAMPLE_FALLBACK=torch, or fallback = [\"torch\"] in the configuration file: "
        "under [tool.polysample] in pyproject.toml, at the top of polysample.toml)."
    )


def resolve_backend(family: str, explicit: str | Backend | None = None) -> Backend:
    """The loaded backend that will draw ``family``, fallbacks applied.

    ``explicit`` may be a name or a ``Backend`` instance (registered or not). Raises
    ``UnknownBackendError``/``BackendUnavailableError`` for the chosen backend and
    ``UnsupportedFamilyError`` when neither it nor any fallback supports ``family``.
    """
    if explicit.__class__ is str:
        # backend="name" (the commonest call): two lookups by string, no key tuple to hash.
        by_name = _by_name.get(explicit)  # type: ignore[arg-type]
        if by_name is not None and by_name[0] is registry._entries:
            answer = by_name[1].get(family)
            if answer is not None:
                return answer
    elif isinstance(explicit, Backend) and family in explicit.families():
        return explicit
    key = (family, 0, explicit) if explicit is not None else _resolution_key(family, None)
    # The registry's cached entries without taking its lock (a plain attribute read is atomic);
    # entries() builds them when they are not there yet.
    entries = registry._entries
    if entries is None:
        entries = registry.entries()
    file_snapshot = _file
    if key is not None:
        hit = _resolved.get(key)
        if hit is not None and hit[0] is entries and hit[1] is file_snapshot:
            return hit[2]
    backend, _, _, chain = _resolve(family, explicit)
    if explicit.__class__ is str and not chain:
        by_name = _by_name.get(explicit)  # type: ignore[arg-type]
        if by_name is None or by_name[0] is not entries:
            by_name = _by_name[explicit] = (entries, {})  # type: ignore[index]
        by_name[1][family] = backend
    if key is not None and not chain:  # answers through a fallback are never cached
        if len(_resolved) >= _RESOLVED_MAX:
            _resolved.clear()
        _resolved[key] = (entries, file_snapshot, backend)
    return backend


def check_backend_options(backend_name: str, known: Mapping[str, str]) -> None:
    """Refuse a ``[tool.polysample.<backend_name>]`` key that the backend does not read
    (``known``: its options; empty for a backend that takes none), for backends that declare
    their options (``Backend.options``). Run when the backend loads if the file was read
    (loading a backend never reads the file: ``backend="torch"`` draws without it), else when
    the file is read (:func:`_parse`)."""
    if _file is not None:
        _check_options(_file, backend_name, known)


def _check_options(cfg: FileConfig, backend_name: str, known: Mapping[str, str]) -> None:
    opts = cfg.options.get(backend_name)
    if not opts:
        return
    if not known:
        table = f"{cfg.section + '.' if cfg.section else ''}{backend_name}"
        raise ConfigError(
            f"Backend {backend_name!r} takes no options, but {cfg.path} sets "
            f"{', '.join(f'{table}.{k}' for k in opts)} in [{table}]. Remove that table"
            + (" (the TFP backends' options, such as substrate, are under [tool.polysample.tfp])"
               if backend_name.startswith("tfp") else "") + "."
        )
    for key in opts:
        if key not in known:
            raise ConfigError(
                f"Unknown option {cfg.source(f'{backend_name}.{key}')}. Expected one of: "
                + ", ".join(f"{k} ({v})" for k, v in known.items())
                + f".{did_you_mean(key, list(known))}"
            )


def backend_options(backend_name: str, known: Mapping[str, str] | None = None
                    ) -> tuple[Mapping[str, Any], str]:
    """The ``[tool.polysample.<backend_name>]`` table and a description of where it came from.

    ``known`` (option name -> what it does) makes an unknown key a ``ConfigError`` naming the
    file and key, with a "did you mean" (a misspelt option must not be silently ignored).
    """
    cfg = file_config()
    opts = cfg.options.get(backend_name, {})
    where = cfg.source(backend_name) if cfg.path else "defaults"
    if known is not None:
        _check_options(cfg, backend_name, known)
    return opts, where
