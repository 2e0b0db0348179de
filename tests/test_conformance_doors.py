"""The doors of the conformance suite refuse what ``polysample validate`` refuses, and read the
expected-failure files it reads (the ninth outside trial's findings 1, 2 and 11)."""

from __future__ import annotations

import json
import pathlib
import re

import pytest

import polysample as ps
from polysample.conformance import (
    NothingToCheckError,
    UnknownLayerError,
    check_backend,
    check_backends,
    load_declarations,
    parametrize_with_checks,
    parse_declarations,
)
from polysample.conformance.expected import Declaration

DOCS = pathlib.Path(__file__).resolve().parent.parent / "docs"


# ============================================================ JSON declarations (finding 1)
def test_a_json_list_of_declaration_objects_is_read_as_tables(tmp_path):
    # The JSON twin of TOML's [[expected_failure]] tables was read as short-form keys: five
    # declarations of backends called "backend", "family", ...
    path = tmp_path / "known.json"
    path.write_text(json.dumps([
        {"backend": "torch", "family": "Normal", "grid": "typical", "check": "sample_ks",
         "reason": "why"},
        {"backend": "numpy", "family": "Gamma", "mode": "full", "strict": False,
         "reason": "rare"},
    ]))
    assert load_declarations(path) == [
        Declaration("torch", "Normal", "typical", "sample_ks", "why"),
        Declaration("numpy", "Gamma", "*", "*", "rare", "full", False)]


@pytest.mark.parametrize("entry,message", [
    ({"backend": "torch", "reasn": "r"}, "declaration 2 of the list: unknown key 'reasn'"),
    ({"backend": "torch", "family": "Nromal", "reason": "r"},
     "declaration 2 of the list (torch-Nromal): unknown family 'Nromal'"),
    ({"family": "Normal", "reason": "r"}, "declaration 2 of the list: needs backend"),
    ({"backend": "torch", "strict": "no", "reason": "r"}, "strict must be true or false"),
    ({"torch-Normal-typical": "r"}, "unknown key 'torch-Normal-typical', a short-form "
                                    "declaration in a list of declaration objects"),
])
def test_a_json_list_entry_is_validated_as_a_toml_table_is(tmp_path, entry, message):
    path = tmp_path / "known.json"
    path.write_text(json.dumps([{"backend": "torch", "reason": "fine"}, entry]))
    with pytest.raises(ValueError) as info:
        load_declarations(path)
    assert str(info.value).startswith(str(path)) and message in str(info.value), info.value


@pytest.mark.parametrize("data,received", [
    (42, "Received int 42"),
    ("torch-Normal", "Received str 'torch-Normal'"),
    ([["torch-Normal-typical"]], "declaration 1 of the list: expected an object"),
    ([{"torch-Normal": "r"}, 7], "declaration 1 of the list: unknown key 'torch-Normal'"),
    ([[{"backend": "torch", "reason": "r"}]], "Received list"),
    ({"expected_failure": "torch"}, "\"expected_failure\" must hold a list of declaration "
                                    "tables"),
])
def test_any_other_json_shape_is_refused_saying_what_was_expected(tmp_path, data, received):
    path = tmp_path / "known.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="[Ee]xpected") as info:
        load_declarations(path)
    assert received in str(info.value) and str(path) in str(info.value), info.value


def test_the_json_forms_still_read_short_form_keys_and_expected_failure_tables():
    short = parse_declarations({"torch-Normal-typical-sample_ks": "a"})
    tables = parse_declarations({"expected_failure": [
        {"backend": "torch", "family": "Normal", "grid": "typical", "check": "sample_ks",
         "reason": "a"}]})
    assert short == tables == [Declaration("torch", "Normal", "typical", "sample_ks", "a")]


def test_the_json_declaration_examples_of_the_docs_are_accepted():
    text = (DOCS / "plugins.md").read_text(encoding="utf-8")
    blocks = re.findall(r"^```json\n(.*?)^```", text, re.M | re.S)
    assert len(blocks) >= 2
    for block in blocks:
        assert parse_declarations(json.loads(block), "docs/plugins.md")


def test_check_backend_applies_a_list_of_declaration_tables():
    report = check_backend("torch", families=["Normal"], layers=["semantics"], quick=True,
                           expected_failures=[{"backend": "torch", "family": "Normal",
                                               "check": "seeds", "reason": "stale on purpose"}])
    assert [r.id for r in report.stale] == ["torch-Normal-example-seeds"]


# ============================================================ usage errors (finding 2)
@pytest.mark.parametrize("door", ["check_backend", "check_backends", "parametrize_with_checks"])
@pytest.mark.parametrize("layers,bad,hint", [
    (["sampling"], "'sampling'", "Did you mean 'sampler'?"),
    (["semantics", "gradiant"], "'gradiant'", "Did you mean 'gradient'?"),
])
def test_an_unknown_layer_is_a_usage_error_naming_it_and_the_known_layers(door, layers, bad,
                                                                         hint):
    run = {"check_backend": lambda: check_backend("torch", "Normal", layers=layers),
           "check_backends": lambda: check_backends(["torch"], "Normal", layers=layers),
           "parametrize_with_checks": lambda: parametrize_with_checks(["torch"], "Normal",
                                                                      layers=layers)}[door]
    with pytest.raises(UnknownLayerError) as info:
        run()
    message = str(info.value)
    assert isinstance(info.value, ValueError) and isinstance(info.value, NothingToCheckError)
    assert f"unknown layer {bad}." in message and hint in message, message
    assert "Expected some of: semantics, density, sampler, gradient, agreement." in message


@pytest.mark.parametrize("door", ["check_backend", "check_backends", "parametrize_with_checks"])
def test_an_unregistered_backend_name_raises_as_load_backend_does(door):
    with pytest.raises(ps.UnknownBackendError) as expected:
        ps.load_backend("trch")
    # (one family and layer: a door that does not refuse the name returns soon, and fails)
    run = {"check_backend": lambda: check_backend("trch", "Normal", layers=["semantics"]),
           "check_backends": lambda: check_backends(["torch", "trch"], "Normal",
                                                    layers=["semantics"]),
           "parametrize_with_checks": lambda: parametrize_with_checks(["trch"], "Normal")}[door]
    with pytest.raises(ps.UnknownBackendError) as info:
        run()
    assert str(info.value) == str(expected.value)
    assert "Did you mean 'torch'?" in str(info.value)


def test_an_unregistered_backend_name_is_refused_before_the_agreement_only_selection():
    # check_backend with the agreement layer alone has nothing to check; the typo comes first
    with pytest.raises(ps.UnknownBackendError, match="Unknown backend 'trch'"):
        check_backend("trch", layers=["agreement"])


# ============================================================ the table (finding 11)
def test_a_backend_that_fails_to_load_is_not_loaded_in_the_table_not_unsupported():
    class Broken(ps.Backend):
        def check_available(self) -> None:
            raise RuntimeError("missing dependency")

    ps.register_backend("broken_doors", Broken)
    try:
        report = check_backends(["broken_doors", "torch"], families=["Normal"],
                                layers=("semantics",), quick=True)
    finally:
        ps.unregister_backend("broken_doors")
    assert [r.id for r in report.failures] == ["broken_doors-*-all-load"]  # still a failure
    assert report.cell("broken_doors", "Normal") == "not loaded"
    assert report.cell("torch", "Normal") == "pass"
    row = [line for line in report.table().splitlines() if line.startswith("Normal")]
    assert row and "not loaded" in row[0] and "unsupported" not in row[0], report.table()
