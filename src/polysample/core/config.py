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
import os
import threading
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .backend import Backend
from .errors import ConfigError, UnknownBackendError, UnsupportedFamilyError
from .families import FAMILIES
from .plugins import registry

__all__ = [
    "DEFAULT_BACKEND",
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

_context: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "polysample_backend", default=None
)
_global: str | None = None
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
            f"Expected a backend name (a non-empty string) at {source}. Received: {value!r}."
        )
    return value


def _parse(path: Path, table: Mapping[str, Any], section: str) -> FileConfig:
    def src(key: str) -> str:
        return f"{path}, key {section + '.' if section else ''}{key}"

    if not isinstance(table, Mapping):
        raise ConfigError(f"Expected a table at {path} [{section}]. Received: {table!r}.")
    backend = table.get("backend")
    if backend is not None:
        _check_name(backend, src("backend"))
    fams = table.get("families", {})
    if not isinstance(fams, Mapping):
        raise ConfigError(f"Expected a table of family = backend at {src('families')}. "
                          f"Received: {fams!r}.")
    for fam, name in fams.items():
        if fam not in FAMILIES:
            raise ConfigError(
                f"Unknown family {fam!r} at {src('families')}. Expected one of: "
                f"{', '.join(sorted(FAMILIES))}."
            )
        _check_name(name, src(f"families.{fam}"))
    fallback = table.get("fallback", [])
    if isinstance(fallback, str) or not isinstance(fallback, list):
        raise ConfigError(
            f"Expected a list of backend names at {src('fallback')}, e.g. "
            f'fallback = ["numpy", "torch"]. Received: {fallback!r}.'
        )
    for name in fallback:
        _check_name(name, src("fallback"))
    known = {"backend", "families", "fallback"}
    options = {k: v for k, v in table.items() if k not in known}
    for k, v in options.items():
        if not isinstance(v, Mapping):
            raise ConfigError(
                f"Unknown key {src(k)} = {v!r}. Expected one of: backend, families, fallback, "
                "or a table of backend options such as [tool.polysample.tfp]."
            )
    return FileConfig(path, section, backend, dict(fams), tuple(fallback), options)


def _load_file(path: Path) -> FileConfig | None:
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"Malformed TOML in {path}: {exc}. Fix the file's syntax.") from exc
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
    here = Path.cwd().resolve()
    for directory in (here, *here.parents):
        for fname in ("polysample.toml", "pyproject.toml"):
            candidate = directory / fname
            if candidate.is_file():
                cfg = _load_file(candidate)
                if cfg is not None:
                    return cfg
    return FileConfig()


def file_config() -> FileConfig:
    """The configuration file's settings (read on first call, then cached)."""
    global _file
    if _file is None:
        with _file_lock:
            if _file is None:
                _file = _find_file()
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
        )
    return name


def set_backend(name: str | None) -> None:
    """Set the process-wide backend (``None`` clears it). Raises ``UnknownBackendError``."""
    global _global
    if name is not None:
        _require_registered(name)
    _global = name


def _require_registered(name: object) -> None:
    if not isinstance(name, str) or name not in registry.entries():
        registry.load(name)  # type: ignore[arg-type]  # raises UnknownBackendError


@contextlib.contextmanager
def use_backend(name: str) -> Iterator[str]:
    """Within the ``with`` block (this thread / asyncio task only), draw with ``name``."""
    _require_registered(name)
    token = _context.set(name)
    try:
        yield name
    finally:
        _context.reset(token)


def resolve_backend_name(family: str | None = None, explicit: str | None = None) -> tuple[str, str]:
    """The backend name for ``family`` and the source that chose it (before fallbacks)."""
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


def get_backend() -> str:
    """The name of the backend a draw would use now (ignoring per-family overrides)."""
    return resolve_backend_name(None)[0]


def _fallback_chain() -> tuple[tuple[str, str], ...]:
    env = os.environ.get("POLYSAMPLE_FALLBACK")
    if env is not None and env.strip():
        names = [n.strip() for n in env.split(",") if n.strip()]
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


def _resolution_key(family: str, explicit: str | None) -> tuple[Any, ...] | None:
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
    if _file is None:
        return None  # the file is not read yet: resolve the slow way (which reads it)
    return (family, 4, id(_file))


def resolve_backend(family: str, explicit: str | Backend | None = None) -> Backend:
    """The loaded backend that will draw ``family``, fallbacks applied.

    ``explicit`` may be a ``Backend`` instance (registered or not): it draws ``family`` if it
    supports it. Raises ``UnknownBackendError``/``BackendUnavailableError`` for the chosen
    backend and ``UnsupportedFamilyError`` when neither it nor any fallback supports ``family``.
    """
    if isinstance(explicit, Backend):
        if family in explicit.families():
            return explicit
        raise UnsupportedFamilyError(
            f"Backend {explicit.name or type(explicit).__name__!r} (passed as backend=) does "
            f"not support {family!r}. Expected one of the families its families() lists: "
            f"{', '.join(sorted(explicit.families()))}."
        )
    key = _resolution_key(family, explicit)
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
    name, source = resolve_backend_name(family, explicit)
    try:
        backend = registry.load(name)
    except UnknownBackendError:
        if source in ("backend= argument", "use_backend()", "set_backend()"):
            raise
        raise ConfigError(f"{source} names unknown backend {name!r}.") from None
    if family in backend.families():
        if key is not None:
            if len(_resolved) >= _RESOLVED_MAX:
                _resolved.clear()
            _resolved[key] = (entries, file_snapshot, backend)
        return backend
    tried = [name]
    for fb, _ in _fallback_chain():
        if fb in tried:
            continue
        tried.append(fb)
        candidate = registry.load(fb)
        if family in candidate.families():
            return candidate
    why = getattr(backend, "omitted", {}).get(family)
    raise UnsupportedFamilyError(
        f"Backend {name!r} (chosen by {source}) does not support {family!r}"
        + (f" ({why})" if why else "")
        + (f", nor do the fallbacks {tried[1:]}" if len(tried) > 1 else "")
        + ". Choose another backend with backend=..., or configure a fallback chain "
        "(fallback = [\"torch\"] under [tool.polysample], or POLYSAMPLE_FALLBACK=torch)."
    )


def backend_options(backend_name: str) -> tuple[Mapping[str, Any], str]:
    """The ``[tool.polysample.<backend_name>]`` table and a description of where it came from."""
    cfg = file_config()
    opts = cfg.options.get(backend_name, {})
    return opts, (cfg.source(backend_name) if cfg.path else "defaults")
