"""Every public name of the plugin kit is documented on the page "Write a backend".

The kit is ``polysample.plugin.__all__``, the hook, and the public members authors use or
implement: ``Backend``'s methods, the fields of ``FamilySupport``, ``Row``, ``FamilySpec`` and
``Params``, ``TableBackend``'s ``table``/``omitted``/``rng``. Each must appear on
``docs/plugins.md`` as code (inside backticks or a code block), so a name added to the kit
without documentation fails here.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

import polysample.plugin as kit
from polysample.core.hookspecs import polysample_register_backends

PAGE = Path(__file__).resolve().parents[1] / "docs" / "plugins.md"


def _code(text: str) -> str:
    """The page's code: inline code spans and fenced blocks."""
    fenced = re.findall(r"^```[^\n]*\n(.*?)^```", text, flags=re.M | re.S)
    inline = re.findall(r"`([^`\n]+)`", re.sub(r"^```.*?^```", "", text, flags=re.M | re.S))
    return "\n".join(fenced + inline)


CODE = _code(PAGE.read_text(encoding="utf-8"))


def _documented(name: str) -> bool:
    return re.search(rf"(?<!\w){re.escape(name)}(?!\w)", CODE) is not None


def _members() -> list[str]:
    names = [polysample_register_backends.__name__]
    names += [m for m in vars(kit.Backend) if not m.startswith("_")]
    for cls in (kit.FamilySupport, kit.Row, kit.FamilySpec):
        names += [f.name for f in dataclasses.fields(cls)]
    names += [p for p in ("univariate", "tensor_params")]
    names += [s for s in kit.Params.__slots__ if not s.startswith("_")]
    names += [m for m in ("shape", "spec", "of") if hasattr(kit.Params, m)]
    names += ["table", "omitted", "rng"]
    return sorted(set(names))


@pytest.mark.parametrize("name", sorted(kit.__all__))
def test_every_kit_name_is_documented(name: str) -> None:
    assert _documented(name), (
        f"polysample.plugin.{name} is not documented in docs/plugins.md: add it (as `code`) "
        "with its arguments and when the core calls it, in 'The plugin kit, name by name'.")


@pytest.mark.parametrize("name", _members())
def test_every_member_an_author_uses_is_documented(name: str) -> None:
    assert _documented(name), f"{name!r} (a kit member) is not documented in docs/plugins.md"


def test_the_check_can_fail() -> None:
    assert not _documented("not_a_kit_name")
    assert _documented("GlobalStream") and not _documented("Stream")


@pytest.mark.parametrize("name", sorted(kit.__all__))
def test_kit_docstrings_say_what_they_mean_without_sending_to_internal_modules(name: str) -> None:
    # help(polysample.plugin.Backend) said "See the module docstring for the contract": the
    # module was polysample.core.backend, which the kit tells authors not to import.
    doc = getattr(getattr(kit, name), "__doc__", None) or ""
    assert "module docstring" not in doc, (name, doc[:200])


def test_backend_and_params_docstrings_hold_the_contract() -> None:
    assert "Contract for implementers" in (kit.Backend.__doc__ or "")
    assert "batch_shape" in (kit.Params.__doc__ or "") and "float_dtype" in kit.Params.__doc__
