"""The ``polysample`` command: backends, sample, validate wiring, exit codes, one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import polysample as ps
from polysample.cli import main

EXAMPLE_SRC = Path(__file__).resolve().parents[1] / "examples" / "polysample-scipy" / "src"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_backends_table_lists_every_backend(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "backends")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["name", "version", "status", "families", "rsample", "source"]
    torch_row = next(line.split() for line in lines if line.startswith("torch "))
    assert torch_row[1:5] == [torch.__version__, "available", "38", "28"]
    for info in ps.backends():
        assert any(line.startswith(info.name + " ") for line in lines)


def test_backends_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "backends", "--json")
    rows = {r["name"]: r for r in json.loads(out)}
    assert code == 0 and rows["torch"]["status"] == "available" and rows["torch"]["families"] == 38


def test_backends_shows_a_broken_plugin_with_its_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    fresh_registry: None,
) -> None:
    (tmp_path / "cli_broken_plugin.py").write_text("raise RuntimeError('kaput')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("POLYSAMPLE_PLUGINS", "cli_broken_plugin")
    ps.refresh()
    with pytest.warns(RuntimeWarning, match="cli_broken_plugin"):
        code, out, _ = run(capsys, "backends")
    assert code == 0
    assert any(line.startswith("cli_broken_plugin") and " broken " in line
               for line in out.splitlines())
    assert "cli_broken_plugin (broken): RuntimeError: kaput" in out


def test_sample_prints_values_reproducibly(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ("sample", "Normal", "--param", "loc=0", "--param", "scale=1", "-n", "5", "--seed", "3")
    code, out, _ = run(capsys, *argv)
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "Normal(loc=0, scale=1).sample((5,)) on backend 'torch', seed 3"
    values = [float(v) for v in lines[1:]]
    expected = ps.Normal(torch.tensor(0.0), torch.tensor(1.0)).sample((5,), seed=3)
    assert values == pytest.approx(expected.tolist(), rel=1e-5)
    assert run(capsys, *argv)[1] == out


def test_sample_json_with_list_params_backend_and_rsample(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "sample", "Gamma", "-p", "concentration=[1.5, 3]", "-p", "rate=2",
                       "-n", "4", "--backend", "torch", "--seed", "0", "--rsample", "--json")
    assert code == 0
    result = json.loads(out)
    assert result["backend"] == "torch" and result["method"] == "rsample"
    assert torch.tensor(result["values"]).shape == (4, 2)
    assert set(result["grad"]) == {"concentration", "rate"}


def test_sample_rsample_prints_gradients(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "sample", "Normal", "-p", "loc=[0,1]", "-p", "scale=1", "-n", "3",
                       "--rsample")
    assert code == 0
    assert "d(sum)/d(loc) = [3, 3]" in out  # d/d loc of the sum of 3 draws per component


def test_sample_integer_parameter(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "sample", "Multinomial", "-p", "total_count=10",
                       "-p", "probs=[0.2,0.8]", "--seed", "1", "--json")
    assert code == 0 and sum(json.loads(out)["values"][0]) == 10


@pytest.mark.parametrize("argv,code,message", [
    (["sample", "Gauss"], 2, "Unknown family 'Gauss'. Expected one of: Bernoulli"),
    # an outside trial: `backends --explain Gama` had the did-you-mean, `sample Gama` not
    (["sample", "Gama"], 2, "Did you mean 'Gamma'?"),
    # argparse's own errors (an outside trial): its usage block and "polysample sample: error:"
    (["sample", "Normal", "--seed", "1.5"], 2, "invalid int value: '1.5'. Run 'polysample "
                                               "sample --help' for the options."),
    (["sample", "Normal", "-n", "abc"], 2, "invalid int value: 'abc'"),
    (["sample"], 2, "the following arguments are required: family"),
    (["bakends"], 2, "invalid choice: 'bakends'"),
    (["bakends"], 2, "Did you mean 'backends'? Run 'polysample --help' for the options."),
    (["validate", "--backend", "nope", "--quick"], 2, "unknown backend 'nope'"),
    (["sample", "Normal", "-p", "loc"], 2, "Expected --param NAME=VALUE"),
    (["sample", "Normal", "-p", "loc=abc"], 2, "number or a JSON list"),
    (["sample", "Normal", "-p", 'loc="x"'], 2, "number or a (nested) list"),
    # a ragged list: torch.tensor's ValueError was a traceback
    (["sample", "Categorical", "-p", "probs=[[0.5,0.5],[1]]"], 2, "rectangular (nested) list"),
    (["sample", "Normal", "-p", "loc=0", "-p", "scale=-1"], 2,
     "Invalid parameters for polysample.Normal"),
    (["sample", "Normal", "-p", "loc=0", "-p", "sigma=1"], 2,
     "Unknown parameter 'sigma' of Normal. Expected --param with one of: loc, scale."),
    # an outside trial: these said "a number or a JSON list", which gave no hint
    (["sample", "Gamma", "-p", "concentration=nan", "-p", "rate=1"], 2,
     "non-finite: concentration"),
    (["sample", "Gamma", "-p", "concentration=-inf", "-p", "rate=1"], 2,
     "non-finite: concentration"),
    (["sample", "Gamma", "-p", "validate_args=False"], 2,
     "validate_args is not a parameter of Gamma: the command always validates"),
    (["sample", "Gamma", "-p", "backend=numpy"], 2,
     "backend is not a parameter of Gamma: give the backend with --backend NAME"),
    (["sample", "Normal", "-p", "loc=0", "-p", "scale=1", "--backend", "nope"], 2,
     "Unknown backend 'nope'"),
    (["sample", "Normal", "-p", "loc=0", "-p", "scale=1", "--seed", "-1"], 2,
     "non-negative seed"),
    (["sample", "Normal", "-p", "loc=0", "-p", "scale=1", "-n", "-2"], 2, "non-negative count"),
    (["sample", "Multinomial", "-p", "total_count=2.5", "-p", "probs=[0.5,0.5]"], 2,
     "to be an integer"),
    # an outside trial (2026-12-07): a RecursionError traceback, and torch's bare
    # RuntimeError from a finiteness check of a 70-dimensional tensor
    (["sample", "Normal", "-p", "loc=" + "[" * 5000 + "1" + "]" * 5000, "-p", "scale=1"], 2,
     "of at most 64 levels"),
    (["sample", "Normal", "-p", "loc=" + "[" * 70 + "1" + "]" * 70, "-p", "scale=1"], 2,
     "of at most 64 levels (torch's limit of dimensions). Received: 70 levels."),
    (["sample", "Bernoulli", "-p", "probs=0.3", "--rsample"], 1,
     "Bernoulli has no reparameterized sampler"),
    # In the command line's words, with the backends that can (not "backend= argument").
    (["sample", "LKJCholesky", "-p", "dim=3", "-p", "concentration=1", "--backend", "numpy"], 2,
     "Backend 'numpy' (--backend) does not support 'LKJCholesky' (NumPy has no LKJ sampler"),
    (["sample", "LKJCholesky", "-p", "dim=3", "-p", "concentration=1", "--backend", "numpy"], 2,
     "torch; pass one with --backend."),
])
def test_errors_are_one_line_with_exit_status(
    capsys: pytest.CaptureFixture[str], argv: list[str], code: int, message: str
) -> None:
    got, out, err = run(capsys, *argv)
    assert got == code
    assert err.startswith("polysample: error: ") and err.count("\n") == 1, err
    assert message in err
    assert "Traceback" not in err and out == ""


def test_usage_errors_from_argparse_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "frobnicate")[0] == 2
    assert run(capsys)[0] == 2
    assert run(capsys, "sample", "Normal", "-n", "many")[0] == 2
    code, out, _ = run(capsys, "--help")
    assert code == 0 and "validate" in out and "backends" in out


def test_validate_is_wired(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "validate", "--help")
    assert code == 0 and "--backend" in out


def test_validate_unknown_backend_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "validate", "--backend", "nope", "--quick")
    assert code == 2 and "nope" in err


def test_python_dash_m_polysample_in_a_subprocess() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("POLYSAMPLE_")}
    env["PYTHONPATH"] = str(EXAMPLE_SRC)
    env["POLYSAMPLE_PLUGINS"] = "polysample_scipy"
    script = (
        "import sys\n"
        "from polysample.cli import main\n"
        "code = main(['backends'])\n"
        "assert code == 0\n"
        # Listing instantiates the example backend, which imports SciPy only to draw.
        "assert 'scipy' not in sys.modules, 'polysample backends imported scipy'\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "scipy" in done.stdout
    done = subprocess.run(
        [sys.executable, "-m", "polysample", "sample", "Normal", "-p", "loc=1", "-p", "scale=2",
         "-n", "2", "--backend", "scipy", "--seed", "4"],
        capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Normal(loc=1, scale=2).sample((2,)) on backend 'scipy'")
    bad = subprocess.run([sys.executable, "-m", "polysample", "sample", "Gauss"],
                         capture_output=True, text=True, env=env, timeout=120)
    assert bad.returncode == 2 and bad.stderr.startswith("polysample: error: Unknown family")


def test_backends_verbose_shows_distribution_module_and_errors(capsys) -> None:
    from polysample.cli import main

    assert main(["backends", "--verbose"]) == 0
    out = capsys.readouterr().out
    assert "torch: available" in out and "distribution: polysample" in out
    assert "module: polysample.backends.torch_backend" in out


def test_backends_explain_names_the_backend_and_the_source(capsys, monkeypatch) -> None:
    from polysample.cli import main

    monkeypatch.setenv("POLYSAMPLE_BACKEND", "numpy")
    assert main(["backends", "--explain", "Gamma"]) == 0
    assert "Gamma is drawn by 'numpy', chosen by POLYSAMPLE_BACKEND" in capsys.readouterr().out
    assert main(["backends", "--explain", "Gama"]) == 2
    assert "Did you mean 'Gamma'?" in capsys.readouterr().err


def test_backends_explain_says_where_auto_routes_each_operation(capsys, monkeypatch) -> None:
    from polysample.cli import main

    monkeypatch.setenv("POLYSAMPLE_BACKEND", "auto")
    routes = ps.load_backend("auto").routes()["Normal"]  # type: ignore[attr-defined]
    assert main(["backends", "--explain", "Normal"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "Normal is drawn by 'auto', chosen by POLYSAMPLE_BACKEND."
    assert out[1].startswith("It routes each call of Normal by operation and size: ")
    for op, choice in routes.items():  # every operation, every backend of its route, in order
        segs = [f"{b!r}" for _, b in choice.segments]
        assert f"{op} to {segs[0]}" in out[1]
        for (n, b) in choice.segments[1:]:
            assert f"{b!r} from {n:,}" in out[1]
    monkeypatch.setenv("POLYSAMPLE_BACKEND", "numpy")  # a backend that draws: one line
    assert main(["backends", "--explain", "Normal"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 1


def test_ctrl_c_an_unwritable_scaffold_path_and_an_empty_family_are_one_line(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path) -> None:
    # an outside trial: a KeyboardInterrupt traceback from `polysample sample`, a
    # FileNotFoundError traceback from new-backend, and `--explain ''` printing the table
    import polysample.cli as cli

    def interrupted(args: object) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_cmd_sample", interrupted)
    parser = cli.build_parser(with_validate=False)
    monkeypatch.setattr(cli, "build_parser", lambda with_validate: parser)
    for action in parser._subparsers._group_actions:  # type: ignore[union-attr]
        action.choices["sample"].set_defaults(func=interrupted)
    assert main(["sample", "Normal", "-p", "loc=0", "-p", "scale=1"]) == 130
    assert capsys.readouterr().err == "polysample: interrupted\n"
    monkeypatch.undo()
    blocker = tmp_path / "file"
    blocker.write_text("")
    code, out, err = run(capsys, "new-backend", "mine", "--path", str(blocker / "sub"))
    assert code == 2 and err.startswith("polysample: error: Cannot write") and \
        "Traceback" not in err and err.count("\n") == 1, err
    code, out, err = run(capsys, "backends", "--explain", "")
    assert code == 2 and "Unknown family ''" in err and out == "", (out, err)
