"""The ``auto`` backend: routes only to conforming backends, deterministically, from a table
that can be corrupt or stale without breaking anything."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch

import polysample as ps
from polysample.backends import routing
from polysample.backends.auto import AutoBackend
from polysample.core.backend import FamilySupport
from polysample.core.families import FAMILIES

sys.path.insert(0, str(Path(__file__).parent))
from mutants import DtypeMutant  # noqa: E402


def _cand(backend: str, overhead: float, per_value: float, verdict: str = "pass") -> dict:
    return {"backend": backend, "overhead_s": overhead, "per_value_s": per_value,
            "verdict": verdict, "detail": "test"}


def _table(routes: dict[str, dict[str, list[dict]]], versions: dict[str, str] | None = None
           ) -> dict[str, Any]:
    return {"schema": routing.SCHEMA,
            "versions": routing.installed_versions() if versions is None else versions,
            "created": "2026-12-01T00:00:00+00:00", "machine": "test",
            "routes": {f: {op: {"candidates": c} for op, c in ops.items()}
                       for f, ops in routes.items()}}


def _auto(data: dict[str, Any]) -> AutoBackend:
    return AutoBackend(routing.RoutingTable.from_dict(data, "test table"))


@pytest.fixture
def routes_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Write a table where ``auto`` reads the user's table (POLYSAMPLE_ROUTES)."""
    path = tmp_path / "routes.json"
    monkeypatch.setenv("POLYSAMPLE_ROUTES", str(path))

    def write(data: Any) -> Path:
        path.write_text(data if isinstance(data, str) else json.dumps(data))
        return path
    return write


# ---------------------------------------------------------------------- never a failing backend
def test_a_backend_whose_verdict_is_not_pass_is_never_routed_to_however_fast() -> None:
    auto = _auto(_table({"Normal": {"sample": [_cand("numpy", 0.0, 0.0, "fail"),
                                               _cand("torch", 1.0, 1.0)]}}))
    for n in (1, 10, 10**6, 10**9):
        assert auto.backend_for("Normal", "sample", n).name == "torch"
    assert "conformance: fail" in auto.routes()["Normal"]["sample"].excluded["numpy"]


def test_a_declared_upstream_failure_excludes_the_backend_from_that_family(
        monkeypatch: pytest.MonkeyPatch) -> None:
    decl = routing.DeclaredFailure("numpy", "Gamma", "a known upstream defect")
    monkeypatch.setattr(routing, "declared_failures", lambda *a: [decl])
    auto = _auto(_table({"Gamma": {"sample": [_cand("numpy", 0.0, 0.0), _cand("torch", 1, 1)]},
                         "Normal": {"sample": [_cand("numpy", 0.0, 0.0), _cand("torch", 1, 1)]}}))
    assert auto.backend_for("Gamma", "sample", 10**6).name == "torch"
    assert "declared failure" in auto.routes()["Gamma"]["sample"].excluded["numpy"]
    assert auto.backend_for("Normal", "sample", 10**6).name == "numpy"  # other families: kept


def test_the_packaged_declarations_are_honoured_even_by_a_table_that_predates_them() -> None:
    # tfp declares GeneralizedPareto's zero gradient in concentration at 0 (known_failures.toml,
    # finding F3); a table with a "pass" verdict for it still must not route it to tfp.
    auto = _auto(_table({"GeneralizedPareto": {"sample": [_cand("tfp", 0, 0)]}}))
    assert "GeneralizedPareto" not in auto.families()
    assert "declared failure" in auto.omitted["GeneralizedPareto"]
    with pytest.raises(ps.UnsupportedFamilyError, match="declared failure"):
        ps.GeneralizedPareto(0.0, 1.0, 0.1, backend=auto).sample()


def test_a_family_with_no_qualifying_backend_is_not_offered_and_the_error_says_why() -> None:
    auto = _auto(_table({"Normal": {"sample": [_cand("torch", 0, 0, "fail")]}}))
    assert "Normal" not in auto.families()
    with pytest.raises(ps.UnsupportedFamilyError, match="no backend qualifies"):
        ps.Normal(0.0, 1.0, backend=auto).sample()


def test_calibration_runs_the_suite_and_leaves_out_a_backend_that_fails_it(
        tmp_path: Path) -> None:
    from polysample.bench.calibrate import calibrate

    ps.register_backend("mutant_dtype_auto", DtypeMutant)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            table = calibrate(["torch", "mutant_dtype_auto"], ["Normal"], smoke=True)
        verdicts = {c.backend: c.verdict for c in table.route("Normal", "sample").candidates}
        assert verdicts == {"torch": "pass", "mutant_dtype_auto": "fail"}
        auto = AutoBackend(table)
        for n in (1, 10**3, 10**7):
            assert auto.backend_for("Normal", "sample", n).name == "torch"
            assert auto.backend_for("Normal", "rsample", n).name == "torch"
    finally:
        ps.unregister_backend("mutant_dtype_auto")


def test_the_shipped_defaults_route_only_to_backends_that_passed() -> None:
    table = routing.load_defaults()
    auto = AutoBackend(table)
    assert auto.families(), "the shipped table routes no family"
    for family, ops in auto.routes().items():
        for op, choice in ops.items():
            for c in choice.route.candidates:
                if c.backend in choice.eligible:
                    assert c.verdict == "pass", (family, op, c)
                    assert routing.declared(c.backend, family,
                                            routing.declared_failures()) is None


# ---------------------------------------------------------------------- gradients and flags
def test_rsample_goes_only_to_a_backend_that_reparameterizes_the_family() -> None:
    # numpy does not reparameterize VonMises; a table that lists it anyway must not use it.
    auto = _auto(_table({"VonMises": {"sample": [_cand("numpy", 0, 0), _cand("torch", 1, 1)],
                                      "rsample": [_cand("numpy", 0, 0)]}}))
    assert auto.families()["VonMises"].rsample is False
    assert "does not reparameterize" in auto.routes()["VonMises"]["rsample"].excluded["numpy"]
    with pytest.raises(ps.NotReparameterizableError):
        ps.VonMises(0.0, 1.0, backend=auto).rsample()


def test_families_flags_are_honest() -> None:
    auto = _auto(_table({
        "Normal": {"sample": [_cand("torch", 0, 0)], "rsample": [_cand("numpy", 0, 0)]},
        "Gamma": {"sample": [_cand("numpy", 0, 0)]},
    }))
    fams = auto.families()
    assert fams["Normal"] == FamilySupport(sample=True, rsample=True, log_prob=False,
                                           rsample_params=None, note=fams["Normal"].note)
    assert fams["Gamma"].rsample is False and fams["Gamma"].log_prob is False
    assert set(fams) == {"Normal", "Gamma"}


def test_rsample_through_auto_keeps_gradients_and_seeds_pass_through() -> None:
    auto = _auto(_table({"Gamma": {"sample": [_cand("numpy", 0, 0)],
                                   "rsample": [_cand("numpy", 0, 0)]}}))
    conc = torch.tensor([2.0, 3.0], requires_grad=True)
    x = ps.Gamma(conc, 1.0, backend=auto).rsample((4,), seed=5)
    y = ps.Gamma(conc.detach(), 1.0, backend="numpy").rsample((4,), seed=5)
    assert torch.equal(x.detach(), y)  # the routed backend's values for that seed
    x.sum().backward()
    assert conc.grad is not None and torch.all(conc.grad > 0)


def test_log_prob_is_scored_by_torch_when_the_route_leaves_scoring_to_torch() -> None:
    auto = _auto(_table({"Normal": {"sample": [_cand("numpy", 0, 0)],
                                    "log_prob": [_cand("torch", 0, 0)]}}))
    d = ps.Normal(torch.tensor(0.5), torch.tensor(2.0), backend=auto)
    x = torch.linspace(-3, 3, 7)
    assert torch.allclose(d.log_prob(x), torch.distributions.Normal(0.5, 2.0).log_prob(x))


# ---------------------------------------------------------------------- determinism
def test_the_choice_depends_on_the_table_and_the_size_only() -> None:
    data = _table({"Normal": {"sample": [_cand("torch", 1e-5, 2e-9), _cand("numpy", 2.00005e-5, 1e-9)]}})
    a, b = _auto(data), _auto(data)
    # The costs cross at n - 1 = 10,000.05: torch up to 10,001 values, numpy from 10,002.
    assert a.routes()["Normal"]["sample"].segments == ((1, "torch"), (10_002, "numpy"))
    for n in (1, 100, 10_000, 10_001, 10_002, 10**6):
        assert a.backend_for("Normal", "sample", n) is b.backend_for("Normal", "sample", n)
    assert a.backend_for("Normal", "sample", 10_001).name == "torch"
    assert a.backend_for("Normal", "sample", 10_002).name == "numpy"


def test_ties_are_broken_by_name() -> None:
    auto = _auto(_table({"Normal": {"sample": [_cand("torch", 1, 1), _cand("numpy", 1, 1)]}}))
    assert auto.backend_for("Normal", "sample", 5).name == "numpy"


_RUN = """
import json, warnings
warnings.simplefilter("error")
import torch, polysample as ps
auto = ps.load_backend("auto")
d = ps.Normal(torch.zeros(3), 1.0, backend="auto")
print(json.dumps({"segments": {f: {op: list(c.segments) for op, c in ops.items()}
                               for f, ops in auto.routes().items()},
                  "values": d.sample((5000,), seed=3).sum().item(),
                  "small": d.sample((2,), seed=3).tolist()}))
"""


def test_the_choice_and_the_values_are_stable_across_runs_with_the_same_table(
        routes_file: Any) -> None:
    path = routes_file(_table({"Normal": {
        "sample": [_cand("torch", 1e-5, 2e-9), _cand("numpy", 2.00005e-5, 1e-9)]}}))
    env = {**os.environ, "POLYSAMPLE_ROUTES": str(path)}
    outs = [subprocess.run([sys.executable, "-c", _RUN], capture_output=True, text=True,
                           env=env, timeout=120) for _ in range(2)]
    for o in outs:
        assert o.returncode == 0, o.stderr
    first, second = (json.loads(o.stdout.strip().splitlines()[-1]) for o in outs)
    assert first == second
    assert first["segments"]["Normal"]["sample"] == [[1, "torch"], [10002, "numpy"]]


# ---------------------------------------------------------------------- bad tables
@pytest.mark.parametrize("content", [
    "{ not json",
    json.dumps([1, 2, 3]),
    json.dumps({"schema": 999, "versions": {}, "routes": {}}),
    json.dumps({"schema": routing.SCHEMA, "versions": {}, "routes": {"Nromal": {}}}),
    json.dumps({"schema": routing.SCHEMA, "versions": {},
                "routes": {"Normal": {"sample": {"candidates": [{"backend": "torch"}]}}}}),
    json.dumps({"schema": routing.SCHEMA, "versions": {}, "routes": {"Normal": {"sample": {
        "candidates": [{"backend": "torch", "overhead_s": -1, "per_value_s": 0}]}}}}),
], ids=["not-json", "not-an-object", "other-schema", "unknown-family", "missing-costs",
        "negative-cost"])
def test_a_corrupt_table_warns_and_the_shipped_defaults_are_used(routes_file: Any,
                                                                 content: str) -> None:
    path = routes_file(content)
    with pytest.warns(RuntimeWarning, match="is not used because it is corrupt") as w:
        table = routing.load()
    assert str(path) in str(w[0].message) and "--calibrate" in str(w[0].message)
    assert table.source == "shipped defaults"
    assert any("set aside" in n for n in table.notes)


def test_a_stale_table_warns_names_the_version_and_the_shipped_defaults_are_used(
        routes_file: Any) -> None:
    versions = {**routing.installed_versions(), "torch": "1.0.0"}
    routes_file(_table({"Normal": {"sample": [_cand("numpy", 0, 0)]}}, versions))
    with pytest.warns(RuntimeWarning, match=r"stale: torch 1\.0\.0 when measured"):
        table = routing.load()
    assert table.source == "shipped defaults"


def test_a_current_user_table_is_used(routes_file: Any) -> None:
    routes_file(_table({"Normal": {"sample": [_cand("numpy", 0, 0)]}}))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        table = routing.load()
    assert table.source == "user table"
    assert list(table.routes) == ["Normal"]


def test_drawing_with_a_corrupt_user_table_works(routes_file: Any,
                                                 fresh_registry: None) -> None:
    routes_file("{ not json")
    with pytest.warns(RuntimeWarning, match="corrupt"):
        x = ps.Normal(torch.zeros(2), 1.0, backend="auto").sample((3,))
    assert x.shape == (3, 2)


def test_an_unusable_shipped_table_falls_back_to_torch(monkeypatch: pytest.MonkeyPatch,
                                                       tmp_path: Path) -> None:
    bad = tmp_path / "defaults.json"
    bad.write_text("{")
    monkeypatch.setattr(routing, "DEFAULTS_PATH", bad)
    with pytest.warns(RuntimeWarning, match="routes every family to the torch backend"):
        table = routing.load_defaults()
    auto = AutoBackend(table)
    assert auto.backend_for("Gamma", "sample", 10).name == "torch"


def test_a_backend_that_is_not_installed_is_skipped() -> None:
    auto = _auto(_table({"Normal": {"sample": [_cand("nosuchbackend", 0, 0),
                                               _cand("torch", 1, 1)]}}))
    assert auto.backend_for("Normal", "sample", 10).name == "torch"
    assert "not available" in auto.routes()["Normal"]["sample"].excluded["nosuchbackend"]


# ---------------------------------------------------------------------- registration, CLI
def test_auto_is_registered_like_the_built_ins_and_loads_no_framework() -> None:
    from polysample.core import plugins

    assert "polysample.backends.auto" in plugins.DEFAULT_PLUGINS
    info = {b.name: b for b in ps.backends()}["auto"]
    assert info.status == "available" and info.families > 0
    assert info.version.startswith("routes: ")


def test_every_shipped_route_draws_with_the_contract() -> None:
    auto = ps.load_backend("auto")
    from polysample.conformance.grids import example_params

    for family in sorted(auto.families()):
        d = getattr(ps, family)(**example_params(family, (2,)), backend="auto")
        for n in (1, 3000):
            x = d.sample((n,))
            assert x.shape == (n, *d.batch_shape, *d.event_shape), family
            assert not x.requires_grad


def test_backends_routes_shows_each_route_with_figures_and_verdicts(
        capsys: pytest.CaptureFixture[str], routes_file: Any) -> None:
    from polysample.cli import main

    routes_file(_table({"Normal": {"sample": [_cand("torch", 1e-5, 2e-9),
                                              _cand("numpy", 2e-5, 1e-9, "fail")]}}))
    assert main(["backends", "--routes"]) == 0
    out = capsys.readouterr().out
    assert "Routing table: user table" in out
    assert "sample   -> torch" in out
    assert "10 us + 2 ns/value" in out and "conformance pass (test)" in out
    assert "excluded: conformance: fail (test)" in out
    assert main(["backends", "--routes", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    cands = data["routes"]["Normal"]["sample"]["candidates"]
    assert [c["eligible"] for c in cands] == [True, False]
    assert data["table"]["source"] == "user table"


def test_every_family_of_the_table_is_a_torch_family() -> None:
    assert set(routing.load_defaults().routes) <= set(FAMILIES)


def test_validate_checks_the_backends_auto_routes_to_not_auto_itself() -> None:
    from polysample.conformance.cli import default_backends

    assert ps.load_backend("auto").router is True
    names = default_backends()
    assert "auto" not in names and {"torch", "numpy"} <= set(names)
    # named explicitly, it is checked like any backend (its draws through the routes)
    from polysample.conformance import check_backend

    report = check_backend("auto", ["Normal"], quick=True, layers=("semantics",))
    assert report.ok, report.summary()
