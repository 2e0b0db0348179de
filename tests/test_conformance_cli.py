"""``polysample validate`` (the subcommand registered by polysample.conformance.cli)."""

from __future__ import annotations

import argparse
import json
import pathlib
import sys

import pytest

import polysample as ps
from polysample.conformance.cli import register

sys.path.insert(0, str(pathlib.Path(__file__).parent))


def validate(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="polysample")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["validate", *argv])
    return int(args.func(args))


def test_passing_run_exits_0_and_writes_a_complete_json_report(tmp_path, capsys):
    out = tmp_path / "r.json"
    code = validate("--backend", "torch", "--family", "Normal", "--quick", "--json", str(out))
    assert code == 0
    data = json.loads(out.read_text())
    assert data["ok"] and data["mode"] == "quick" and "weaker power" in data["mode_note"]
    assert {"torch", "numpy", "scipy", "python"} <= set(data["versions"])
    stat = [c for c in data["checks"] if c["alpha"] is not None]
    assert stat
    for c in stat:
        for key in ("id", "statistic", "threshold", "n", "seed", "alpha", "detectable"):
            assert c[key] is not None, (c["id"], key)
    assert all(c["id"].startswith("torch-Normal-") for c in data["checks"])
    table = capsys.readouterr().out
    assert "Normal" in table and "pass" in table


@pytest.mark.parametrize("every,writes", [(1e9, 2), (0.0, 5)])
def test_the_json_report_is_rewritten_at_most_every_json_every_seconds_and_at_the_end(
        tmp_path, monkeypatch, every, writes):
    import polysample.conformance.cli as cli
    from polysample.conformance.report import Report

    written: list[tuple[int, bool]] = []
    real = Report.write_json

    def spy(self, path):
        written.append((len(self.results), self.complete))
        real(self, path)

    monkeypatch.setattr(Report, "write_json", spy)
    monkeypatch.setattr(cli, "JSON_EVERY", every)
    out = tmp_path / "r.json"
    # three units (Normal, Gamma, Exponential); the first is written at once
    assert validate("--backend", "torch", "--family", "Normal", "--family", "Gamma",
                    "--family", "Exponential", "--layer", "semantics", "--quick",
                    "--json", str(out)) == 0
    assert len(written) == writes, written
    data = json.loads(out.read_text())
    assert data["complete"] and written[-1] == (data["done"], True)


def test_failing_backend_exits_1(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("POLYSAMPLE_PLUGINS", "mutants")
    ps.refresh()
    try:
        code = validate("--backend", "mutant_geometric", "--family", "Geometric", "--quick",
                        "--layer", "sampler")
    finally:
        monkeypatch.delenv("POLYSAMPLE_PLUGINS")
        ps.refresh()
    assert code == 1
    out = capsys.readouterr()
    assert "FAILED mutant_geometric-Geometric" in out.out
    assert "FAIL mutant_geometric-Geometric" in out.err  # progress names it as it happens


def test_expected_failures_file_turns_a_failure_into_exit_0(tmp_path, monkeypatch):
    ef = tmp_path / "known.toml"
    ef.write_text('"mutant_geometric-Geometric" = "off by one on purpose"\n')
    monkeypatch.setenv("POLYSAMPLE_PLUGINS", "mutants")
    ps.refresh()
    try:
        code = validate("--backend", "mutant_geometric", "--family", "Geometric", "--quick",
                        "--layer", "sampler", "--expected-failures", str(ef))
    finally:
        monkeypatch.delenv("POLYSAMPLE_PLUGINS")
        ps.refresh()
    assert code == 0


def test_known_upstream_defects_are_declared_by_default(tmp_path):
    # TFP 0.25's GeneralizedPareto gradient is 0 in concentration at 0 (finding F3): validate
    # reports the failing check as an expected failure with the reason from
    # known_failures.toml, exit 0.
    out = tmp_path / "r.json"
    code = validate("--backend", "tfp-tf", "--family", "GeneralizedPareto", "--quick",
                    "--layer", "gradient", "--json", str(out))
    data = json.loads(out.read_text())
    xfails = [c for c in data["checks"] if c["status"] == "xfail"]
    assert code == 0
    assert [c["id"] for c in xfails] == ["tfp-tf-GeneralizedPareto-corners-grad_cdf"]
    assert "F3" in xfails[0]["reason"]


@pytest.mark.parametrize("argv,message", [
    (("--backend", "nosuch"), "unknown backend 'nosuch'"),
    (("--family", "Normall"), "unknown family 'Normall'. Did you mean 'Normal'?"),
    (("--layer", "colour"), "unknown layer"),
    (("--json", "/nonexistent-dir/r.json"), "does not exist"),
    (("--html", "/proc/version"), "Cannot write the HTML report"),
    (("--expected-failures", "/nonexistent.toml"), "cannot read --expected-failures"),
])
def test_usage_errors_exit_2_with_a_clear_message(argv, message, capsys):
    assert validate(*argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_an_unknown_layer_gets_the_python_doors_message_with_a_did_you_mean(capsys):
    assert validate("--backend", "torch", "--layer", "sampling") == 2
    err = capsys.readouterr().err
    assert "unknown layer 'sampling'. Did you mean 'sampler'? Expected some of: semantics, " \
        "density, sampler, gradient, agreement." in err, err


def test_a_json_list_of_declaration_objects_is_validated_naming_the_entry(tmp_path, capsys):
    # The JSON twin of [[expected_failure]] tables was read as short-form keys: a run with
    # five warnings about backends called "backend", "family", ... and nothing declared.
    path = tmp_path / "known.json"
    path.write_text('[{"backend": "torch", "family": "Normal", "reasn": "r"}]')
    assert validate("--backend", "torch", "--family", "Normal", "--quick",
                    "--expected-failures", str(path)) == 2
    err = capsys.readouterr().err
    assert "cannot read --expected-failures" in err and \
        "declaration 1 of the list: unknown key 'reasn'" in err and "Traceback" not in err, err


def test_vary_seed_changes_seeds_and_is_recorded(tmp_path):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    assert validate("--backend", "torch", "--family", "Exponential", "--quick", "--layer",
                    "sampler", "--json", str(a)) == 0
    assert validate("--backend", "torch", "--family", "Exponential", "--quick", "--layer",
                    "sampler", "--vary-seed", "7", "--json", str(b)) == 0
    da, db = json.loads(a.read_text()), json.loads(b.read_text())
    assert db["vary_seed_salt"] == 7 and da["vary_seed_salt"] == 0
    assert [c["seed"] for c in da["checks"]] != [c["seed"] for c in db["checks"]]


def test_progress_is_plain_text_when_not_a_tty(capsys):
    validate("--backend", "torch", "--family", "Normal", "--quick", "--layer", "semantics")
    err = capsys.readouterr().err
    assert "validate:" in err and "\r" not in err


def test_polysample_command_wires_validate(tmp_path):
    import subprocess

    res = subprocess.run([sys.executable, "-m", "polysample", "validate", "--backend", "torch",
                          "--family", "Normal", "--quick", "--layer", "semantics", "--json",
                          str(tmp_path / "r.json")], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert json.loads((tmp_path / "r.json").read_text())["ok"]


def test_ctrl_c_ends_the_run_cleanly_with_a_partial_report_marked_incomplete(tmp_path):
    import signal
    import subprocess
    import time

    def interruptible() -> None:
        # A child inherits an ignored or blocked SIGINT (Python then installs no handler for
        # it): this test's process may have got one from an earlier test or from the test
        # runner. Once in a full run under load the child ignored the signal and ran to the end.
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})

    js, page = tmp_path / "r.json", tmp_path / "r.html"
    proc = subprocess.Popen([sys.executable, "-m", "polysample", "validate", "--backend",
                             "torch", "--quick", "--json", str(js), "--html", str(page)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=interruptible)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # wait until some checks are recorded
        if js.exists() and js.stat().st_size and json.loads(js.read_text())["done"] > 20:
            break
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    assert "Traceback" not in err and "interrupted after" in err
    data = json.loads(js.read_text())
    assert data["complete"] is False and data["ok"] is False
    assert 0 < data["done"] < data["planned"]
    text = page.read_text()
    assert "INCOMPLETE" in text and len(text) > 1000


def test_validating_a_family_the_backend_does_not_support_is_a_usage_error(capsys):
    assert validate("--backend", "numpy", "--family", "LKJCholesky", "--quick") == 2
    err = capsys.readouterr().err
    assert "does not support 'LKJCholesky'" in err and "Traceback" not in err


def test_failures_name_the_grid_point_with_its_parameter_values(monkeypatch, capsys):
    monkeypatch.setenv("POLYSAMPLE_PLUGINS", "mutants")
    ps.refresh()
    try:
        validate("--backend", "mutant_geometric", "--family", "Geometric", "--quick",
                 "--layer", "sampler")
    finally:
        monkeypatch.delenv("POLYSAMPLE_PLUGINS")
        ps.refresh()
    out = capsys.readouterr().out
    assert "at typical[" in out and "probs=" in out


def test_profile_prints_where_the_time_went(capsys):
    assert validate("--backend", "torch", "--family", "Normal", "--quick", "--profile") == 0
    out = capsys.readouterr().out
    assert "profile:" in out and "by layer:" in out and "drawing" in out


def test_show_grids_lists_every_family_with_its_points(capsys):
    assert validate("--show-grids") == 0
    out = capsys.readouterr().out
    assert "Gamma corners" in out and "concentration=0.01" in out and "n = " in out


def test_show_grids_takes_families_and_says_each_grids_dtype_and_layers(capsys):
    assert validate("--show-grids", "--family", "Categorical") == 0
    out = capsys.readouterr().out
    heads = [line for line in out.splitlines() if not line.startswith(" ")]
    assert heads and all(h.startswith("Categorical ") for h in heads), heads
    assert "Categorical typical (float64; n = " in out
    # the edges grid is float32 (a probability of 1e-7 is then below float32's epsilon)
    assert ("Categorical edges (float32; n = 262144 quick, 1048576 full; judged by the sampler "
            "and agreement layers only)") in out
    assert "(100000 values); float32" in out
    assert validate("--show-grids", "--family", "Nope") == 2


def test_show_grids_gives_the_sweep_ranges_and_points(capsys):
    assert validate("--show-grids", "--family", "Gamma", "--family", "Poisson") == 0
    out = capsys.readouterr().out
    assert ("Gamma sweep (concentration from 0.05 to 200 (log scale), rate from 0.1 to 10 "
            "(log scale)): these 32 points judged by grad_sweep; sample_sweep draws once at "
            "each of 262144 quick, 1048576 full points") in out
    # a count family has no pathwise gradient: its sweep is sample_sweep's alone
    assert "Poisson sweep (rate from 0.01 to 1000 (log scale)): sample_sweep draws" in out


def test_show_grids_gives_a_multivariate_familys_swept_elements(capsys):
    assert validate("--show-grids", "--family", "Dirichlet") == 0
    out = capsys.readouterr().out
    assert ("Dirichlet sweep (concentration[0] from 0.1 to 100 (log scale), concentration[1] "
            "from 0.1 to 100 (log scale), concentration[2] from 0.1 to 100 (log scale); the "
            "other parameters at their example values): sample_sweep draws 16 values at each "
            "of 4096 quick, 16384 full points of these ranges") in out
    assert "Dirichlet typical" in out  # the grids follow
    # the gradient sweep's points, and the noise families' invariance
    assert ("; grad_sweep 16 pathwise gradients at each of 4096 quick, 16384 full points of "
            "them") in out
    assert validate("--show-grids", "--family", "LogisticNormal", "--family", "Multinomial") == 0
    out = capsys.readouterr().out
    assert "; grad_sweep the noise's invariance at 32 points of them" in out
    assert "total_count from 1 to 10000 (log scale)" in out
    assert "(total_count: 8 whole values, each drawn in a call of its own)" in out


def test_the_sweep_draws_a_python_number_parameter_one_value_a_call():
    # Multinomial's total_count is one Python int for a whole batch: the sweep spreads 8
    # whole values over its range, an eighth of the points each, and draws each apart.
    import numpy as np
    import torch

    from polysample.conformance.cases import INT_SWEEP_LEVELS, sweep_groups, sweep_params

    params = sweep_params("Multinomial", 4096)
    counts = params["total_count"].numpy()
    assert INT_SWEEP_LEVELS == 8 and len(np.unique(counts)) == 8
    assert counts.min() >= 1 and counts.max() <= 10000 and (counts == np.round(counts)).all()
    groups = sweep_groups("Multinomial", params, 4096)
    assert len(groups) == 8
    assert sorted(np.concatenate([i for i, _ in groups]).tolist()) == list(range(4096))
    for idx, sub in groups:
        assert isinstance(sub["total_count"], int) and idx.size == 512
        assert (counts[idx] == sub["total_count"]).all()
        assert torch.equal(sub["probs"], params["probs"][torch.as_tensor(idx)])
    # a family without such a parameter: one group, its parameters as they were
    lowrank = sweep_params("LowRankMultivariateNormal", 4096)
    [(idx, same)] = sweep_groups("LowRankMultivariateNormal", lowrank, 4096)
    assert idx.size == 4096 and same is lowrank


def test_a_grid_point_in_another_dtype_than_float64_says_so():
    import torch

    from polysample.conformance.grids import grid_points

    assert grid_points("Normal", {"loc": torch.zeros(2), "scale": torch.ones(2)}) == [
        "loc=0, scale=1; float32"] * 2
    assert grid_points("Normal", {"loc": torch.zeros(1, dtype=torch.float64), "scale": 1.0}
                       ) == ["loc=0, scale=1"]


def test_default_backends_claiming_none_of_the_families_are_named_not_judged(capsys):
    # Without --backend, every registered backend: the SciPy plugin claims no Relaxed family,
    # and was once a usage error ("nothing to validate") that stopped the whole run.
    assert validate("--family", "RelaxedBernoulli", "--layer", "semantics", "--quick") == 0
    captured = capsys.readouterr()
    assert "not checked: scipy (claiming none of RelaxedBernoulli)" in captured.err
    assert "RelaxedBernoulli" in captured.out
    # named explicitly, a backend claiming none of them is still refused (usage error)
    assert validate("--backend", "scipy", "--family", "RelaxedBernoulli", "--quick") == 2
    assert "nothing to validate" in capsys.readouterr().err


def test_the_report_is_the_same_on_a_dask_cluster_as_serially(tmp_path):
    pytest.importorskip("distributed")
    a, b = tmp_path / "serial.json", tmp_path / "dask.json"
    # (one backend, two families: tests/test_dask_validate.py compares the reports of two
    # backends check for check; this is the command line's road to the cluster)
    argv = ("--backend", "torch", "--family", "Exponential", "--family", "Geometric", "--quick")
    assert validate(*argv, "--json", str(a)) == 0
    assert validate(*argv, "--workers", "2", "--json", str(b)) == 0
    da, db = json.loads(a.read_text()), json.loads(b.read_text())

    def strip(c):  # timings differ, nothing else may
        d = {k: v for k, v in c.items() if k != "seconds"}
        d["details"] = {k: v for k, v in c["details"].items() if k != "draw_seconds"}
        return d

    assert [strip(c) for c in da["checks"]] == [strip(c) for c in db["checks"]]
    assert db["scheduler"].startswith("dask (2 workers)")


def test_progress_eta_weighs_checks_by_their_expected_cost():
    import io
    import re
    from types import SimpleNamespace

    from polysample.conformance.cli import _Progress, check_weight, eta_seconds

    assert eta_seconds(10.0, 0.5, 100.0) is None  # under 1% done: no estimate yet
    assert eta_seconds(10.0, 50.0, 100.0) == pytest.approx(10.0)
    compiled = frozenset({"tfp"})
    assert check_weight("sampler", "torch", compiled) > 10 * check_weight("semantics", "torch",
                                                                           compiled)
    assert check_weight("gradient", "tfp", compiled) > check_weight("gradient", "torch", compiled)

    # 100 cheap semantics checks, then 100 sampler checks: half of the checks done is not half
    # of the time (counting checks said ETA 10 s here; the weights say about 100 s).
    results = ([SimpleNamespace(layer="semantics", backend="torch", status="pass", id=f"s{i}")
                for i in range(100)] +
               [SimpleNamespace(layer="sampler", backend="torch", status="pass", id=f"k{i}")
                for i in range(100)])
    stream = io.StringIO()
    p = _Progress(stream, 200, [check_weight(r.layer, r.backend, compiled) for r in results],
                  lambda r: check_weight(r.layer, r.backend, compiled))
    p.t0 -= 10.0  # ten seconds elapsed
    for i, r in enumerate(results[:101]):
        p.last = 0.0  # a line for every check
        p(i + 1, 200, r)
    lines = stream.getvalue().splitlines()
    assert "ETA estimating" in lines[0] and lines[0].startswith("validate: 1/200 checks")
    eta = float(re.search(r"ETA (\d+) s", lines[-1]).group(1))  # type: ignore[union-attr]
    done = 100 * check_weight("semantics", "torch", compiled) + check_weight("sampler", "torch",
                                                                             compiled)
    left = 99 * check_weight("sampler", "torch", compiled)
    assert eta == pytest.approx(10.0 * left / done, rel=0.05)
    assert eta > 50
    p(200, 200, results[-1])
    assert "ETA 0 s" in stream.getvalue().splitlines()[-1]


def test_eta_model_does_not_let_a_backends_first_check_set_its_ratio_alone():
    # A warm run: every check takes its prior, but a process's first draw on a backend imports
    # its library (seconds, counted as OUTLIER priors). The ratio of that backend's layers not
    # measured yet followed that one check: "ETA 1950 s" at 33 s into a run of 134 s.
    from polysample.conformance.cli import EtaModel

    kinds = ([("a", "semantics")] * 400 + [("a", "sampler")] * 400
             + [("b", "semantics")] * 400 + [("b", "sampler")] * 400)
    priors = [2.0] * 400 + [50.0] * 400 + [2.0] * 400 + [50.0] * 400
    m = EtaModel(kinds, priors, workers=1, classes={"a": "eager", "b": "eager"})
    for _ in range(400):
        m.add(("a", "semantics"), 2.0, 0.002)
    for _ in range(200):
        m.add(("a", "sampler"), 50.0, 0.05)
    truth = 200 * 0.05 + 400 * 0.002 + 400 * 0.05  # what is left, at the priors
    before = m.eta()
    assert before == pytest.approx(truth, rel=0.02)
    m.add(("b", "semantics"), 2.0, 5.0)  # the import: counted as 20 ms, ten priors
    after = m.eta()
    assert after is not None and after < 1.5 * truth, (after, truth)  # was 7.6 x
    for _ in range(100):  # b's own checks then set its ratio
        m.add(("b", "semantics"), 2.0, 0.002)
    assert m.eta() == pytest.approx(truth - 101 * 0.002, rel=0.05)


def test_eta_model_learns_each_kinds_cost_from_the_finished_checks():
    import io
    import re
    from types import SimpleNamespace

    from polysample.conformance.cli import EtaModel, _Progress

    kinds = [("x", "semantics")] * 100 + [("x", "sampler")] * 100 + [("y", "sampler")] * 10
    priors = [1.0] * 100 + [50.0] * 100 + [50.0] * 10  # milliseconds
    m = EtaModel(kinds, priors, workers=1, classes={"x": "compiled", "y": "compiled"})
    assert m.eta() is None  # nothing measured
    m.add(("x", "semantics"), 1.0, 0.01)
    assert m.eta() is None  # under 1% of the plan's priors
    for _ in range(99):
        m.add(("x", "semantics"), 1.0, 0.01)  # ten times the prior: a cold cache, say
    # the sampler checks, not measured yet, follow their backend (and class): about 10 x 50 ms
    # each (the measured 100 checks outweigh the prior's pseudo-checks nine to one)
    first = m.eta()
    assert first is not None and 110 * 0.05 * 9 <= first <= 110 * 0.5
    m.workers = 2
    assert m.eta() == pytest.approx(first / 2)
    m.workers = 1
    for _ in range(50):
        m.add(("x", "sampler"), 50.0, 0.1)  # twice the prior: the kind's own ratio takes over
    eta = m.eta()
    assert eta is not None and 50 * 0.1 < 50 * 0.1 + 10 * 0.05 * 2 <= eta < 50 * 0.5
    # unknown kinds (a load failure) and missing timings are ignored
    m.add(("z", "load"), 1.0, 5.0)
    m.add(("x", "sampler"), 50.0, float("nan"))
    assert m.eta() == pytest.approx(eta)
    # a one-time cost (an import in a first draw) counts for at most OUTLIER priors
    o = EtaModel([("x", "semantics")] * 200, [10.0] * 200)
    for _ in range(10):
        o.add(("x", "semantics"), 10.0, 0.01)
    o.add(("x", "semantics"), 10.0, 60.0)  # counted as 0.1 s
    assert o.eta() == pytest.approx(189 * 0.01 * (0.2 / 0.11), rel=0.01)  # uncapped: 1,000 s

    # _Progress prints the model's estimate
    stream = io.StringIO()
    results = [SimpleNamespace(layer="semantics", backend="x", family="F", status="pass",
                               id=f"s{i}", seconds=0.01) for i in range(3)]
    model = EtaModel([("x", "semantics")] * 6, [1.0] * 6)
    p = _Progress(stream, 6, [1.0] * 6, lambda r: 1.0, model)
    for i, r in enumerate(results):
        p.last = 0.0
        p(i + 1, 6, r)
    eta = float(re.search(r"ETA (\d+(?:\.\d+)?) s", stream.getvalue().splitlines()[-1])
                .group(1))  # type: ignore[union-attr]
    left = model.eta()
    assert left is not None and eta == pytest.approx(left, abs=0.5)
    assert 0.02 < left <= 3 * 0.01  # three checks at about the measured ten priors each


@pytest.mark.parametrize("measured", [
    # ms per check (family weight 1) in a cold and in a warm `make demo` of 2026-12-04
    {"semantics": (1.3, 68.5), "density": (4.9, 27.5), "sampler": (15.0, 49.4),
     "gradient": (27.4, 202.7), "agreement": (0.4, 0.4)},
    {"semantics": (1.3, 21.3), "density": (4.9, 16.8), "sampler": (13.7, 23.3),
     "gradient": (23.8, 50.4), "agreement": (0.5, 0.5)},
], ids=["cold", "warm"])
def test_the_first_eta_learnt_from_semantics_checks_holds_for_the_other_layers(measured):
    # Early in a run only semantics checks have finished (a cluster starts with the compiled
    # backends' units). Their measured-to-prior ratio is what the ETA applies to the sampler
    # and gradient checks still to come: with priors off by a different factor per layer the
    # first estimate was two to three times too long ("ETA 988 s" 15 s into a 118 s run).
    from polysample.conformance.cli import EtaModel, check_weight

    compiled = frozenset({"tfp"})
    counts = {"semantics": 1162, "density": 180, "sampler": 1698, "gradient": 116}
    kinds = [("tfp", layer) for layer, k in counts.items() for _ in range(k)]
    kinds += [("torch", layer) for layer, k in counts.items() for _ in range(k)]
    priors = [check_weight(layer, b, compiled) for b, layer in kinds]
    m = EtaModel(kinds, priors, workers=1, classes={"tfp": "compiled", "torch": "eager"})
    true = {kind: measured[kind[1]][1 if kind[0] == "tfp" else 0] / 1000 for kind in set(kinds)}
    done = [i for i, k in enumerate(kinds) if k[1] == "semantics"][:400]
    for i in done:
        m.add(kinds[i], priors[i], true[kinds[i]])
    finished = set(done)
    left = sum(true[k] for i, k in enumerate(kinds) if i not in finished)
    eta = m.eta()
    assert eta is not None and left / 1.5 < eta < 1.5 * left, (eta, left)


def _torch_plan(layers: tuple[str, ...]) -> list:
    from polysample.conformance.api import targets
    from polysample.conformance.runner import generate_checks

    ts, _ = targets(["torch"])
    return list(generate_checks(ts, None, layers))


def test_a_checks_prior_follows_its_share_of_the_draw_and_the_modes_sample_size():
    from polysample.conformance.cases import sample_size
    from polysample.conformance.cli import CHECK_MS, check_weight

    none: frozenset[str] = frozenset()
    ks = check_weight("sampler", "torch", none, "Normal", "sample_ks", "typical", quick=True)
    pit = check_weight("sampler", "torch", none, "Normal", "sample_pit_mean", "typical", True)
    assert ks > 20 * pit  # the check that draws pays for the draw
    for grid in ("typical", "corners", "float32"):
        full = check_weight("sampler", "torch", none, "Normal", "sample_ks", grid, quick=False)
        quick = check_weight("sampler", "torch", none, "Normal", "sample_ks", grid, quick=True)
        assert full / quick == pytest.approx(
            sample_size("Normal", grid, False) / sample_size("Normal", grid, True))
    assert check_weight("gradient", "torch", none, "Gamma", "grad_mean", "typical", False) == \
        pytest.approx(10 * check_weight("gradient", "torch", none, "Gamma", "grad_mean",
                                        "typical", True))
    # the shares average to about one over a backend's sampler checks, so that CHECK_MS (the
    # layer's mean cost per check, calibrated on whole runs) still holds
    plan = _torch_plan(("sampler",))
    mean = sum(check_weight(c.layer, c.backend, none, c.family, c.name, c.grid) /
               check_weight(c.layer, c.backend, none, c.family) for c in plan) / len(plan)
    assert 0.8 < mean < 1.25, mean
    assert CHECK_MS["sampler"][0] > 10 * CHECK_MS["semantics"][0]


def test_a_full_runs_eta_counts_the_draws_of_its_larger_samples():
    # A full run draws four to thirty-two times more per sampler check than a quick run, and
    # one check of each grid (sample_ks) makes the draw. With one prior per layer and mode,
    # the checks that draw counted for at most OUTLIER priors: a full run of the four built-in
    # backends (416 s) was said to need 189 s more at 95 s and 73 s more at 283 s. Here, the
    # mean seconds per check of torch and numpy in that run, each check's cost following its
    # grid's sample size: the estimate halfway through is within 25% of the time left.
    from polysample.conformance.cases import sample_size
    from polysample.conformance.cli import EtaModel, check_weight

    measured = {"sample_ks": 0.735, "rsample_ks": 0.306, "calls_ks": 0.122,
                "sample_repeats": 0.053, "rsample_repeats": 0.006, "sample_sum": 0.036,
                "rsample_sum": 0.114, "sample_indep": 0.0096, "rsample_indep": 0.0012,
                "sample_pit_mean": 0.012, "sample_pit_var": 0.021,
                "rsample_pit_mean": 0.015, "rsample_pit_var": 0.027}

    def true(c) -> float:
        if c.layer == "semantics":
            return 0.0013
        n = sample_size(c.family, c.grid, False) / sample_size(c.family, "typical", False)
        return measured.get(c.name, 0.02) * n

    none: frozenset[str] = frozenset()
    plan = _torch_plan(("semantics", "sampler"))
    priors = [check_weight(c.layer, c.backend, none, c.family, c.name, c.grid, quick=False)
              for c in plan]
    m = EtaModel([(c.backend, c.layer) for c in plan], priors, classes={"torch": "eager"})
    half = len(plan) // 2
    for c, prior in zip(plan[:half], priors[:half]):
        m.add((c.backend, c.layer), prior, true(c))
    left = sum(true(c) for c in plan[half:])
    eta = m.eta()
    assert eta is not None and left / 1.25 < eta < 1.25 * left, (eta, left)


def test_the_eta_learns_a_clusters_unit_whole_not_from_its_first_result():
    # A cluster delivers a unit's results at once; a line printed in the middle of them saw a
    # backend's first check (its import: seconds) without the unit's other checks, and said
    # "ETA 341 s" 25 s into a 121 s run. With ``settled`` the model learns at unit ends.
    import io
    import re
    from types import SimpleNamespace

    from polysample.conformance.cli import EtaModel, _Progress

    def run(settled: bool) -> list[float]:
        kinds = [("a", "semantics")] * 100 + [("b", "semantics")] * 100
        m = EtaModel(kinds, [100.0] * 200, workers=1, classes={"a": "eager", "b": "eager"})
        stream = io.StringIO()
        p = _Progress(stream, 200, [100.0] * 200, lambda r: 100.0, m, settled=settled)

        def result(b: str, seconds: float) -> SimpleNamespace:
            return SimpleNamespace(layer="semantics", backend=b, status="pass", id=b,
                                   seconds=seconds)

        done = 0
        for _ in range(50):
            done += 1
            p(done, 200, result("a", 0.1))
        p.settle()
        for i in range(50):  # b's unit: the first check imports b's library
            p.last = 0.0 if i == 0 else p.last  # a line right after the first result
            done += 1
            p(done, 200, result("b", 5.0 if i == 0 else 0.1))
        p.settle()
        p.last = 0.0
        p(done + 1, 200, result("a", 0.1))
        return [float(x) for x in re.findall(r"ETA (\d+(?:\.\d+)?) s", stream.getvalue())]

    settled = run(True)
    # mid-unit: the estimate of the last unit's end (150 checks of 0.1 s left); after it,
    # 99 checks of 0.1 s left, the import counted as ten priors at most
    assert settled[-2] == pytest.approx(150 * 0.1, rel=0.05), settled
    assert settled[-1] == pytest.approx(99 * 0.1, rel=0.25), settled
    eager = run(False)
    assert eager[-2] > 3 * settled[-2], eager  # what a line in the middle of a unit said


def test_report_paths_are_neither_created_nor_truncated_before_the_run_writes_them(
        tmp_path, monkeypatch, capsys):
    import polysample.conformance.api as api

    j, h = tmp_path / "r.json", tmp_path / "r.html"
    # a usage error found after the paths were checked leaves nothing behind
    assert validate("--backend", "numpy", "--family", "LKJCholesky", "--quick",
                    "--json", str(j), "--html", str(h)) == 2
    assert not j.exists() and not h.exists()
    assert list(tmp_path.iterdir()) == []  # no temporary file left either
    # during the run neither report exists until it is written whole (no 0-byte files)
    real = api.check_backends
    seen = []

    def spy(*args, **kwargs):
        seen.append((j.exists(), h.exists()))
        return real(*args, **kwargs)

    monkeypatch.setattr(api, "check_backends", spy)
    h.write_text("old report")  # an existing report is not truncated before the end
    real_html = __import__("polysample.conformance.html", fromlist=["render_html"])

    def html_check(report, **kw):
        assert h.read_text() == "old report"
        return "<html>new</html>"

    monkeypatch.setattr(real_html, "render_html", html_check)
    assert validate("--backend", "torch", "--family", "Normal", "--layer", "semantics",
                    "--quick", "--json", str(j), "--html", str(h)) == 0
    assert seen == [(False, True)]
    assert h.read_text() == "<html>new</html>" and json.loads(j.read_text())["ok"]


@pytest.mark.parametrize("make,option,message", [
    (lambda d: (d / "quick.html").write_text("x") and str(d / "quick.html" / "x.json"),
     "--json", "is a file, not a directory"),
    (lambda d: str(d / "quick.html" / "sub" / "x.json") if (d / "quick.html").write_text("x")
     else "", "--html", "is a file, not a directory"),
    (lambda d: str(d / "nodir" / "x.json"), "--json", "does not exist"),
    (lambda d: str(d), "--json", "it is a directory"),
    (lambda d: "-", "--json", "standard output is not supported"),
    (lambda d: "-", "--html", "standard output is not supported"),
], ids=["file-as-dir", "file-as-grandparent", "missing-dir", "a-dir", "json-stdout",
        "html-stdout"])
def test_an_unwritable_report_path_says_why(tmp_path, capsys, make, option, message):
    path = make(tmp_path)
    assert validate("--backend", "torch", "--family", "Normal", "--quick", option, path) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.splitlines()) == 1


def test_a_selection_with_no_check_is_a_usage_error_not_a_pass(tmp_path, capsys):
    out = tmp_path / "a.json"
    # the agreement layer needs two backends: zero checks used to exit 0, "ok": true
    assert validate("--backend", "torch", "--quick", "--layer", "agreement",
                    "--json", str(out)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "Expected at least one check" in err and "layers agreement" in err
    assert "second backend" in err
    assert not out.exists()


def test_the_python_doors_refuse_a_selection_with_no_check():
    from polysample.conformance import NothingToCheckError, check_backend, check_backends
    from polysample.conformance.report import Report

    with pytest.raises(NothingToCheckError, match="second backend"):
        check_backends(["torch"], ["Normal"], quick=True, layers=("agreement",))
    with pytest.raises(NothingToCheckError, match="second backend"):
        check_backend("torch", ["Normal"], quick=True, layers=("agreement",))
    with pytest.raises(NothingToCheckError, match="at least one layer"):
        check_backends(["torch"], ["Normal"], quick=True, layers=())
    # a report of zero checks is never ok, complete or not
    assert not Report(complete=True).ok and not Report(complete=True).to_dict()["ok"]


def test_the_parametrize_door_refuses_a_selection_with_no_check():
    from polysample.conformance import NothingToCheckError, parametrize_with_checks

    with pytest.raises(NothingToCheckError, match="second backend"):
        parametrize_with_checks(["torch"], ["Normal"], quick=True, layers=("agreement",))


@pytest.mark.parametrize("text,message", [
    ('[[expected_failure]]\nbackend = "torch"\nfamily = "Normal"\ncheck = "sample_kss"\n'
     'reason = "r"\n', "entry 1 (torch-Normal-*-sample_kss): unknown check 'sample_kss'"),
    ('[[expected_failure]]\nbackend = "torch"\ngrid = "typicl"\nreason = "r"\n',
     "unknown grid 'typicl'"),
    ('"torch-Normal-typicl-sample_ks" = "r"\n',
     "key 'torch-Normal-typicl-sample_ks': unknown grid 'typicl'"),
    ('"torch-Normal-typical-sample_kss" = "r"\n', "unknown check 'sample_kss'"),
    ('[[expected_failure]]\nbackend = "torch"\nreasn = "r"\n', "unknown key 'reasn'"),
    ('[[expected_failure]]\nbackend = "torch"\nfamily = "Normal"\nreason = "r"\n\n'
     '"tfp-VonMises-typical-grad_cdf" = "r"\n',
     "before the first [[expected_failure]] table"),
])
def test_declarations_naming_nothing_the_suite_knows_are_usage_errors(tmp_path, capsys, text,
                                                                     message):
    known = tmp_path / "known.toml"
    known.write_text(text)
    assert validate("--backend", "torch", "--family", "Normal", "--quick", "--layer",
                    "semantics", "--expected-failures", str(known)) == 2
    err = capsys.readouterr().err
    assert message in err and "known.toml" in err and len(err.splitlines()) == 1, err
    if "unknown grid" in message:  # the known values are listed, the sweep and example too
        assert "sweep" in err and "example" in err and "typical" in err


def test_a_declaration_of_an_unregistered_backend_warns_and_is_noted(tmp_path, capsys):
    known, out = tmp_path / "known.toml", tmp_path / "r.json"
    known.write_text('[[expected_failure]]\nbackend = "trail"\nreason = "r"\n')
    assert validate("--backend", "torch", "--family", "Normal", "--quick", "--layer",
                    "semantics", "--expected-failures", str(known), "--json", str(out)) == 0
    err = capsys.readouterr().err
    warned = [line for line in err.splitlines() if "warning" in line]
    # one line; the built-in file's tfp declarations match nothing here and are no warning
    assert len(warned) == 1 and "'trail'" in warned[0] and "not registered" in warned[0], err
    assert any("'trail'" in n for n in json.loads(out.read_text())["notes"])


def test_the_python_doors_validate_declarations_and_note_unregistered_backends():
    from polysample.conformance import Declaration, check_backend
    from polysample.conformance.api import UnmatchedDeclarationWarning

    with pytest.raises(ValueError, match="unknown grid 'typicl'.*sweep"):
        check_backend("torch", ["Normal"], {"torch-Normal-typicl": "r"}, quick=True,
                      layers=("semantics",))
    with pytest.raises(ValueError, match="unknown check 'sample_kss'"):
        check_backend("torch", ["Normal"], [Declaration("torch", check="sample_kss")],
                      quick=True, layers=("semantics",))
    with pytest.warns(UnmatchedDeclarationWarning, match="'trail'"):
        report = check_backend("torch", ["Normal"], {"trail": "r"}, quick=True,
                               layers=("semantics",))
    assert report.ok and any("'trail'" in n for n in report.notes)


def test_a_declaration_that_covers_no_check_of_its_backend_and_family_warns_in_every_door(
        tmp_path, capsys):
    # an outside plugin author's declarations (2026-12-07): a check the family does not have
    # on that backend, and a grid the family does not have, were accepted and never reported
    from polysample.conformance import check_backend, parametrize_with_checks
    from polysample.conformance.api import UnmatchedDeclarationWarning

    idle = {"numpy-Bernoulli-typical-rsample_ks": "Bernoulli has no rsample"}
    with pytest.warns(UnmatchedDeclarationWarning, match="covers no check of this run.*"
                      "sample_ks"):
        report = check_backend("numpy", ["Bernoulli"], idle, quick=True, layers=("sampler",))
    assert report.ok and any("'numpy-Bernoulli-typical-rsample_ks'" in n for n in report.notes)
    with pytest.warns(UnmatchedDeclarationWarning, match="covers no check"):
        parametrize_with_checks(["numpy"], ["Bernoulli"], idle, quick=True, layers=("sampler",))
    # a declaration that covers a check is no warning (nor is one of a family not run)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", UnmatchedDeclarationWarning)
        parametrize_with_checks(["numpy"], ["Bernoulli"], {
            "numpy-Bernoulli-typical-sample_ks": "r", "numpy-Normal": "r"}, quick=True,
            layers=("sampler",))
    known = tmp_path / "known.toml"
    known.write_text('"numpy-Bernoulli-typical-rsample_ks" = "r"\n')
    assert validate("--backend", "numpy", "--family", "Bernoulli", "--quick", "--layer",
                    "semantics", "--expected-failures", str(known)) == 0
    err = capsys.readouterr().err
    assert "warning" in err and "covers no check of this run" in err, err
    # a grid the family never has is refused outright, as an unknown grid is
    with pytest.raises(ValueError, match="grid 'edges' is no grid of family 'Bernoulli'.*"
                       "typical"):
        check_backend("numpy", ["Bernoulli"], [{"backend": "numpy", "family": "Bernoulli",
                                                "grid": "edges", "reason": "r"}],
                      quick=True, layers=("semantics",))
    # a pattern some family's grid matches (Binomial's) is no error; in a run of the
    # semantics layer only (grid "example") it covers nothing, and says so
    with pytest.warns(UnmatchedDeclarationWarning, match="its grids in this run are example"):
        check_backend("numpy", ["Bernoulli"], [{"backend": "numpy", "family": "B*",
                                                "grid": "edges", "reason": "r"}],
                      quick=True, layers=("semantics",))


def test_check_backend_takes_the_path_of_a_declarations_file(tmp_path):
    # the CLI and the pytest plugin take a path; check_backend read one as a list of letters
    from polysample.conformance import check_backend

    known = tmp_path / "known.toml"
    known.write_text('"torch-Normal-example-shapes" = "declared"\n')
    for given in (known, str(known)):
        report = check_backend("torch", ["Normal"], given, quick=True, layers=("semantics",))
        assert [r.id for r in report.stale] == ["torch-Normal-example-shapes"]
    with pytest.raises(ValueError, match="no file .*missing.toml.*TOML or JSON"):
        check_backend("torch", ["Normal"], str(tmp_path / "missing.toml"), quick=True,
                      layers=("semantics",))


def test_the_doors_apply_the_builtin_known_failures_once_and_on_request_not():
    from polysample.conformance import check_backend, known_failures
    from polysample.conformance.api import declarations

    builtin = known_failures()
    own = {"torch-LKJCholesky-typical-sample_ks": "mine"}
    decls, warn = declarations(own, True, False, [])
    assert decls[0].reason == "mine" and len(decls) == len(builtin) + 1 and not warn
    # passed explicitly too (as tests/test_conformance_backends.py does): each once
    assert declarations(builtin, True, False, [])[0] == builtin
    assert declarations(None, False, False, [])[0] == []
    # check_backend applies them as `polysample validate` does (TFP's GeneralizedPareto: F3)
    kw = {"families": ["GeneralizedPareto"], "quick": True, "layers": ("gradient",)}
    default = check_backend("tfp-tf", **kw)
    assert default.ok and {r.id for r in default.results if r.status == "xfail"}
    bare = check_backend("tfp-tf", **kw, known_failures=False)
    assert not bare.ok and {r.id for r in bare.failures} == {
        r.id for r in default.results if r.status == "xfail"}


def test_a_backend_or_family_given_twice_is_checked_once(tmp_path):
    out = tmp_path / "r.json"
    assert validate("--backend", "torch", "--backend", "torch", "--family", "Normal",
                    "--family", "Normal", "--layer", "semantics", "--quick",
                    "--json", str(out)) == 0
    data = json.loads(out.read_text())
    ids = [c["id"] for c in data["checks"]]
    assert len(ids) == len(set(ids)) == data["planned"] and data["backends"] == ["torch"]
    from polysample.conformance import check_backends

    report = check_backends(["torch", "torch"], ["Normal"], quick=True, layers=("semantics",))
    assert len(report.results) == len(ids) and report.backends == ["torch"]


def test_families_may_be_one_name_and_anything_else_is_a_clear_type_error():
    from polysample.conformance import check_backend, plan

    report = check_backend("torch", families="Normal", quick=True, layers=("semantics",))
    assert report.families == ["Normal"] and report.ok
    assert {c.family for c in plan("torch", "Gamma", layers=("semantics",))} == {"Gamma"}
    with pytest.raises(TypeError, match=r'families=\["Normal"\]'):
        check_backend("torch", families=3, quick=True, layers=("semantics",))


def test_a_live_fail_line_that_is_cut_says_so():
    import io

    from polysample.conformance.cli import FAIL_LINE, _Progress
    from polysample.conformance.model import CheckResult

    stream = io.StringIO()
    progress = _Progress(stream, 2)
    long = CheckResult("b-Normal-typical-sample_ks", "b", "Normal", "typical", "sample_ks",
                       "sampler", "fail", message="x" * (FAIL_LINE + 50))
    short = CheckResult("b-Normal-typical-sample_sum", "b", "Normal", "typical", "sample_sum",
                        "sampler", "fail", message="short message")
    progress(1, 2, long)
    progress(2, 2, short)
    lines = [line for line in stream.getvalue().splitlines() if line.startswith("FAIL")]
    assert lines[0].endswith("x...") and len(lines[0]) < FAIL_LINE + 40
    assert lines[1].endswith("short message")


def test_the_summary_names_the_expected_failures():
    from polysample.conformance.model import CheckResult
    from polysample.conformance.report import Report

    results = [CheckResult(f"b-Normal-typical-c{i}", "b", "Normal", "typical", f"c{i}",
                           "sampler", "xfail", reason="why", covered_by="b-Normal")
               for i in range(25)]
    report = Report(results=results, complete=True, planned=25)
    text = report.summary()
    assert "xfail b-Normal-typical-c0 (declared b-Normal: why)" in text
    assert "xfail b-Normal-typical-c19 " in text and "c20 " not in text
    assert "5 more expected failures" in text and "JSON report" in text


def test_the_summary_lists_one_error_raised_in_many_checks_of_a_family_once():
    from polysample.conformance.model import CheckResult
    from polysample.conformance.report import Report

    def result(check: str, message: str, family: str = "Poisson") -> CheckResult:
        return CheckResult(f"b-{family}-typical-{check}", "b", family, "typical", check,
                           "sampler", "fail", message=message)

    raised = "raised BackendContractError: Backend 'b' broke the sample() contract"
    results = [result("dtype", "drew float32 values"), result("sample_ks", raised + " (1)")]
    results += [result(f"c{i}", raised + f" ({i})") for i in range(15)]
    results += [result("sample_ks", raised, "Normal"),
                result("sample_sum", "raised ValueError: another error")]
    text = Report(results=results, complete=True, planned=len(results)).summary()
    failed = [line for line in text.splitlines() if line.startswith("FAILED")]
    # the first of the group in full, its own failure kept, other families and errors apart
    assert failed == [
        "FAILED b-Poisson-typical-dtype: drew float32 values",
        f"FAILED b-Poisson-typical-sample_ks: {raised} (1)",
        f"FAILED b-Normal-typical-sample_ks: {raised}",
        "FAILED b-Poisson-typical-sample_sum: raised ValueError: another error"]
    assert ("... and 15 more checks of b Poisson raised BackendContractError: typical-c0, "
            "typical-c1,") in text
    assert "typical-c11 and 3 more (each in the JSON report)" in text
    assert "typical-c12" not in text


def test_show_grids_lists_only_the_families_the_backend_supports(capsys):
    assert validate("--show-grids", "--backend", "scipy") == 0
    heads = {line.split()[0] for line in capsys.readouterr().out.splitlines()
             if not line.startswith(" ")}
    from polysample.core.plugins import load_backend

    claimed = {f for f, s in load_backend("scipy").families().items() if s.sample}
    assert heads and heads <= claimed and "RelaxedBernoulli" not in heads
    assert validate("--show-grids", "--backend", "scipy", "--family", "RelaxedBernoulli") == 2
    assert "no grids to show" in capsys.readouterr().err
