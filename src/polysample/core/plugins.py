"""Backend discovery and loading: the plugin manager and the backend registry.

Discovery order: the built-in backends (registered through the same hook as everyone else,
from :data:`DEFAULT_PLUGINS`), entry points in group ``polysample`` (skipped when
``POLYSAMPLE_DISABLE_PLUGIN_AUTOLOAD=1``), then the modules named in ``POLYSAMPLE_PLUGINS``.
A plugin that fails to import, has no ``polysample_register_backends`` hook implementation or
registers no backend gives a ``RuntimeWarning`` and is remembered as broken (under its entry
point's name, or its module path): selecting it raises ``BackendUnavailableError`` with the
cause chained. Two plugins registering one name
give a ``RuntimeWarning``, and selecting that name raises ``BackendUnavailableError`` naming both
modules (the other backends keep working). Backends are instantiated on first
use and cached; :func:`refresh` forgets everything (tests, or after installing a plugin).
"""

from __future__ import annotations

import importlib
import os
import threading
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from types import ModuleType
from typing import Any

import pluggy

from . import hookspecs
from .backend import Backend
from .errors import BackendUnavailableError, ConfigError, UnknownBackendError, did_you_mean

__all__ = [
    "DEFAULT_PLUGINS",
    "BackendEntry",
    "BackendInfo",
    "registry",
    "load_backend",
    "backends",
    "backend_names",
    "refresh",
    "register_backend",
]

#: The built-in backends, registered through the public hook like any third-party plugin.
DEFAULT_PLUGINS: tuple[str, ...] = (
    "polysample.backends.torch_backend",
    "polysample.backends.numpy_backend",
    "polysample.backends.tfp",
    "polysample.backends.auto",
)

ENTRY_POINT_GROUP = "polysample"


@dataclass
class BackendEntry:
    """One registered name: where it came from, and how to build it."""

    name: str
    factory: Callable[[], Any] | None
    source: str  # module (and distribution) that registered it
    error: BaseException | None = None  # set for a plugin that failed to import
    instance: Backend | None = None
    module: str = ""  # the plugin module
    distribution: str = ""  # the installed distribution that provides it, if known
    dist_version: str = ""
    disabled: str = ""  # why a registration was set aside (a duplicate name)
    conflict: str = ""  # set when another plugin registered this name too: selecting it fails


@dataclass(frozen=True)
class BackendInfo:
    """A row of :func:`polysample.backends`."""

    name: str
    version: str
    status: str  # "available", "unavailable", "broken" or "disabled" (a duplicate name)
    families: int
    rsample_families: int
    source: str
    error: str = ""
    family_names: tuple[str, ...] = field(default=())
    module: str = ""
    distribution: str = ""
    dist_version: str = ""


class _Registry:
    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._entries: dict[str, BackendEntry] | None = None
        self._extra: list[tuple[str, Callable[[], Any], str]] = []
        self.disabled: list[BackendEntry] = []

    # -------------------------------------------------------------- discovery
    def _discover(self) -> dict[str, BackendEntry]:
        pm = pluggy.PluginManager(hookspecs.PROJECT)
        pm.add_hookspecs(hookspecs)
        entries: dict[str, BackendEntry] = {}
        failed: list[tuple[str, str, BaseException]] = []

        def load_module(path: str, what: str) -> ModuleType | None:
            try:
                return importlib.import_module(path)
            except Exception as exc:  # a broken plugin must not break the others
                warnings.warn(
                    f"polysample plugin {path!r} ({what}) failed to import and was skipped: "
                    f"{type(exc).__name__}: {exc}",
                    RuntimeWarning,
                    stacklevel=4,
                )
                failed.append((path, what, exc))
                return None

        # module, source, dist, version, and the name a plugin that registers nothing is
        # remembered under (its entry point's name, or its module path)
        modules: list[tuple[ModuleType, str, str, str, str]] = []
        for path in DEFAULT_PLUGINS:
            mod = load_module(path, "built-in")
            if mod is not None:
                modules.append((mod, f"{path} (built-in)", "polysample", _version("polysample"),
                                path))
        if not _autoload_disabled():
            for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
                dist = ep.dist.name if ep.dist is not None else "unknown distribution"
                what = f"entry point {ep.name!r} of {dist}"
                try:
                    mod = ep.load()
                except Exception as exc:
                    warnings.warn(
                        f"polysample plugin {ep.value!r} ({what}) failed to import and was "
                        f"skipped: {type(exc).__name__}: {exc}",
                        RuntimeWarning,
                        stacklevel=3,
                    )
                    failed.append((ep.name, what, exc))
                    continue
                dist_version = ep.dist.version if ep.dist is not None else ""
                modules.append((mod, f"{ep.value} ({what})", dist, dist_version, ep.name))
        for path in filter(None, (p.strip() for p in os.environ.get("POLYSAMPLE_PLUGINS", "").split(","))):
            mod = load_module(path, "POLYSAMPLE_PLUGINS")
            if mod is not None:
                modules.append((mod, f"{path} (POLYSAMPLE_PLUGINS)", "", "", path))
        disabled: list[BackendEntry] = []

        def add(name: str, factory: Callable[[], Any] | None, source: str,
                module: str = "", dist: str = "", dist_version: str = "") -> None:
            if not isinstance(name, str) or not name:
                warnings.warn(f"polysample plugin {source} registered a backend with the name "
                              f"{name!r}; expected a non-empty string. It was skipped.",
                              RuntimeWarning, stacklevel=4)
                return
            entry = BackendEntry(name, factory, source, module=module, distribution=dist,
                                 dist_version=dist_version)
            if name in entries:
                # Neither registration is used: which of the two draws would depend on the
                # order plugins load in. Selecting the name is an error naming both modules;
                # every other backend keeps working (one bad plugin must not take
                # `polysample backends` down).
                first = entries[name]
                entry.disabled = (f"duplicate name: {first.source} registered {name!r} "
                                  "first")
                disabled.append(entry)
                sources = [first.source] + [e.source for e in disabled if e.name == name]
                first.conflict = (
                    f"Backend {name!r} is registered by {len(sources)} plugins: "
                    f"{'; '.join(sources)}. Which one draws would depend on the order plugins "
                    "load in, so neither is used. Uninstall or disable all but one of them "
                    "(POLYSAMPLE_DISABLE_PLUGIN_AUTOLOAD=1 skips entry points; "
                    "POLYSAMPLE_PLUGINS lists modules), or register one under another name.")
                warnings.warn(
                    f"Two plugins register the backend name {name!r}: {first.source} and "
                    f"{source}. Selecting {name!r} raises an error until one of them is "
                    "uninstalled or disabled (POLYSAMPLE_DISABLE_PLUGIN_AUTOLOAD=1 skips entry "
                    "points).",
                    RuntimeWarning, stacklevel=4)
                return
            if factory is not None and not callable(factory):
                entry.factory = None
                entry.error = TypeError(
                    f"{source} registered backend {name!r} with {factory!r}, which is not a "
                    "Backend class or a zero-argument callable.")
            entries[name] = entry

        for mod, source, dist, dist_version, key in modules:
            if pm.is_registered(mod):
                continue
            pm.register(mod, name=source)
            impls = [impl for impl in pm.hook.polysample_register_backends.get_hookimpls()
                     if impl.plugin is mod]
            if not impls:
                # Loaded, but nothing to call: without a word, its backends would be "unknown"
                # although the package is installed.
                problem = LookupError(_no_hook_reason(mod))
                warnings.warn(f"polysample plugin {source} was skipped: {problem}",
                              RuntimeWarning, stacklevel=3)
                failed.append((key, source, problem))
                continue
            calls = 0

            def register(n: str, f: Callable[[], Any], _s: str = source,
                         _m: str = mod.__name__, _d: str = dist, _v: str = dist_version) -> None:
                nonlocal calls
                calls += 1
                add(n, f, _s, _m, _d, _v)

            for impl in impls:
                try:
                    impl.function(register=register)
                except Exception as exc:  # a hook that raises: that plugin's names only
                    warnings.warn(f"polysample plugin {source} raised in "
                                  f"polysample_register_backends and was skipped: "
                                  f"{type(exc).__name__}: {exc}", RuntimeWarning, stacklevel=3)
                    calls = -1
            if calls == 0:
                problem = LookupError(
                    "its polysample_register_backends hook ran but called register() for no "
                    "backend. Call register(name, factory) once per backend "
                    "(docs/plugins.md, Registration).")
                warnings.warn(f"polysample plugin {source} registered no backend: {problem}",
                              RuntimeWarning, stacklevel=3)
                failed.append((key, source, problem))
        for name, factory, source in self._extra:
            add(name, factory, source, getattr(factory, "__module__", ""))
        self.disabled = disabled
        for name, what, error in failed:
            # Remember the broken plugin under its entry-point (or module) name.
            if name not in entries:
                entries[name] = BackendEntry(name, None, what, error, module=name)
        return entries

    def entries(self) -> dict[str, BackendEntry]:
        with self._lock:
            if self._entries is None:
                self._entries = self._discover()
            return self._entries

    def refresh(self) -> None:
        with self._lock:
            self._entries = None

    def register(self, name: str, factory: Callable[[], Any], source: str) -> None:
        with self._lock:
            self._extra.append((name, factory, source))
            self._entries = None

    def unregister(self, name: str) -> None:
        with self._lock:
            self._extra = [e for e in self._extra if e[0] != name]
            self._entries = None

    # -------------------------------------------------------------- loading
    def load(self, name: str) -> Backend:
        entries = self.entries()
        entry = entries.get(name)
        if entry is None:
            if not isinstance(name, str):
                raise UnknownBackendError(
                    f"Expected a backend name (str). Received: {name!r} of type "
                    f"{type(name).__name__}. Available backends: {', '.join(sorted(entries))}."
                )
            usable = sorted(n for n, e in entries.items() if e.factory is not None)
            broken = sorted(e.source if n in e.source else f"{n} ({e.source})"
                            for n, e in entries.items() if e.factory is None)
            unusable = (f" Plugins that could not be used (polysample backends --verbose says "
                        f"why): {', '.join(broken)}." if broken else "")
            raise UnknownBackendError(
                f"Unknown backend {name!r}. Expected one of: {', '.join(usable)}."
                f"{did_you_mean(name, sorted(entries))}{unusable} Install a plugin that "
                "provides it (pip install ...), or list its module in POLYSAMPLE_PLUGINS."
            )
        if entry.conflict:
            raise BackendUnavailableError(entry.conflict)
        if entry.instance is not None:
            return entry.instance
        with self._lock:
            if entry.instance is not None:
                return entry.instance
            if entry.factory is None:
                raise BackendUnavailableError(
                    f"Backend {name!r} comes from a plugin that could not be used "
                    f"({entry.source}): {type(entry.error).__name__}: "
                    f"{str(entry.error).rstrip('.')}. Fix or uninstall that plugin."
                ) from entry.error
            try:
                instance = entry.factory()
                if not isinstance(instance, Backend):
                    raise TypeError(
                        f"expected a polysample.Backend instance, got {type(instance).__name__}"
                    )
                instance.check_available()
                check_family_names(instance)
            except (BackendUnavailableError, ConfigError):
                raise  # a bad configuration is the user's to fix: its own error, unwrapped
            except Exception as exc:
                raise BackendUnavailableError(
                    f"Backend {name!r} ({entry.source}) failed to load: "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
            instance.name = name
            if instance.options is not None:
                from .config import check_backend_options

                check_backend_options(name, instance.options)
            entry.instance = instance
            return instance


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"", "0", "false", "no", "off"}


def _autoload_disabled() -> bool:
    """``POLYSAMPLE_DISABLE_PLUGIN_AUTOLOAD``: 1/true/yes/on (any case) skip the entry points,
    unset, empty or 0/false/no/off load them; another value is a ``ConfigError``."""
    raw = os.environ.get("POLYSAMPLE_DISABLE_PLUGIN_AUTOLOAD", "")
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConfigError(
        "Expected POLYSAMPLE_DISABLE_PLUGIN_AUTOLOAD (environment variable) to be 1, true, yes "
        f"or on (skip the plugins' entry points) or 0, false, no, off or empty (load them). "
        f"Received: {raw!r}. Set one of those values, or unset it."
    )


def check_family_names(backend: Backend) -> None:
    """A backend's ``families()`` must name torch families: a typo would otherwise drop the
    family silently (and the conformance suite would never test it)."""
    from .errors import did_you_mean
    from .families import FAMILIES

    fams = backend.families()
    if not isinstance(fams, Mapping):
        raise TypeError(f"families() returned {type(fams).__name__}; expected a mapping of "
                        "torch family names to FamilySupport")
    unknown = [f for f in fams if f not in FAMILIES]
    if unknown:
        hints = "".join(did_you_mean(f, sorted(FAMILIES)) for f in unknown)
        raise ValueError(
            f"families() names {', '.join(map(repr, unknown))}, which "
            f"{'is not a torch family' if len(unknown) == 1 else 'are not torch families'}."
            f"{hints} Expected names from torch.distributions: {', '.join(sorted(FAMILIES))}."
        )


def _no_hook_reason(mod: ModuleType) -> str:
    """Why a plugin module offers no ``polysample_register_backends`` hook implementation:
    the hook without ``@hookimpl``, another function marked ``@hookimpl`` (a misspelt hook
    name), or nothing of the kind."""
    hook = "polysample_register_backends"
    marker = f"{hookspecs.PROJECT}_impl"  # the attribute pluggy's HookimplMarker sets
    marked = sorted(n for n, v in vars(mod).items()
                    if callable(v) and getattr(v, marker, None) is not None and n != hook)
    what = f"module {mod.__name__!r} has no hook implementation {hook}(register)"
    if callable(vars(mod).get(hook)):
        return (f"{what}: it defines {hook} without the @hookimpl marker. Decorate it with "
                "@hookimpl (from polysample.plugin import hookimpl).")
    if marked:
        return (f"{what}: it marks {', '.join(marked)} with @hookimpl, which "
                f"{'is not a polysample hook' if len(marked) == 1 else 'are not polysample hooks'}"
                f".{did_you_mean(marked[0], [hook])} The one hook is {hook}(register).")
    near = did_you_mean(next((n for n in vars(mod) if n.startswith("polysample_")), ""), [hook])
    return (f"{what}.{near} Define it at module level, decorated with @hookimpl "
            "(docs/plugins.md, Registration).")


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return ""


registry = _Registry()


def load_backend(name: str) -> Backend:
    """The :class:`Backend` instance registered as ``name`` (instantiated once, then cached).

    Raises ``UnknownBackendError`` for a name nobody registered and
    ``BackendUnavailableError`` (cause chained) when it is registered but cannot load.
    """
    return registry.load(name)


def backend_names() -> list[str]:
    """Names of every registered backend, loadable or not."""
    return sorted(registry.entries())


def register_backend(name: str, factory: Callable[[], Any], *, source: str = "register_backend()") -> None:
    """Register a backend programmatically (for tests and notebooks; plugins use the hook)."""
    registry.register(name, factory, source)


def unregister_backend(name: str) -> None:
    """Remove a backend registered with :func:`register_backend`."""
    registry.unregister(name)


def refresh() -> None:
    """Forget discovered plugins and loaded backends; the next use discovers them again."""
    registry.refresh()


def backends() -> list[BackendInfo]:
    """Every registered backend with its version, status and families, by name.

    A name that two plugins registered appears once per registration: first the later ones
    (status ``"disabled"``, with the reason), then the first (status ``"unavailable"``: selecting
    the name raises :class:`BackendUnavailableError` naming every module that registered it),
    so that a mapping built from the rows (``{r.name: r for r in backends()}``) says what
    selecting the name does."""
    rows = []
    for name, entry in sorted(registry.entries().items()):
        if entry.factory is None:
            rows.append(BackendInfo(name, "", "broken", 0, 0, entry.source,
                                    f"{type(entry.error).__name__}: {entry.error}",
                                    module=entry.module, distribution=entry.distribution,
                                    dist_version=entry.dist_version))
            continue
        try:
            b = registry.load(name)
        except (BackendUnavailableError, ConfigError) as exc:
            rows.append(BackendInfo(name, "", "unavailable", 0, 0, entry.source,
                                    f"{type(exc).__name__}: {exc}" if isinstance(exc, ConfigError)
                                    else str(exc),
                                    module=entry.module, distribution=entry.distribution,
                                    dist_version=entry.dist_version))
            continue
        fams = b.families()
        rows.append(BackendInfo(
            name, b.version(), "available", len(fams),
            sum(1 for s in fams.values() if s.rsample), entry.source,
            family_names=tuple(sorted(fams)), module=entry.module,
            distribution=entry.distribution, dist_version=entry.dist_version,
        ))
    for entry in registry.disabled:
        row = BackendInfo(entry.name, "", "disabled", 0, 0, entry.source, entry.disabled,
                          module=entry.module, distribution=entry.distribution,
                          dist_version=entry.dist_version)
        at = next((i for i, r in enumerate(rows) if r.name == entry.name), len(rows))
        rows.insert(at, row)
    return rows
