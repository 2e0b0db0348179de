"""Every Python example of the documentation runs: each page under docs/ and README.md.

A page is a notebook: its ```python blocks run in order, in one fresh namespace, with the
repository root as working directory; each page is one test, whose id is the page's path. A
line ``--8<-- "path"`` inside a block (pymdownx.snippets, as on the site) is replaced by that
file (``--8<-- "path:name"``: the lines between the file's ``[start:name]`` and ``[end:name]``
section markers), so a script included in a page runs as part of the page. ```toml blocks, their
snippets included, must parse.
Console blocks (```console, ```bash, ```text) are not executed (the command line has its own
tests in tests/test_cli.py).

A block that must not run is marked by an HTML comment right before its fence:
``<!-- skip-snippet: reason -->``. Skipped blocks are counted per page against
:data:`EXPECTED_SKIPS`, so nothing is skipped silently.

Generated files: docs/examples/gradient_variance.py, included in docs/sampling-and-gradients.md,
writes the plot docs/assets/generated/gradient_variance.png when that page runs, and
docs/examples/validation_report.py (docs/conformance.md) the example validation report; the
page's test then checks that each file is new and what it should be (:data:`GENERATED`). ``mkdocs build`` (docs/hooks.py) runs the script itself when the PNG is
missing or stale.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

import polysample as ps

ROOT = Path(__file__).resolve().parent.parent
PAGES = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "docs").rglob("*.md"))
PAGES.append("README.md")

#: page -> number of blocks marked ``<!-- skip-snippet: reason -->`` (none may be unmarked).
#: docs/plugins.md shows sections of the example plugin's modules, which its own tests run.
EXPECTED_SKIPS: dict[str, int] = {"docs/plugins.md": 10}

#: generated file -> the page whose run writes it (docs/hooks.py runs the same scripts)
GENERATED = {
    "docs/assets/generated/gradient_variance.png": "docs/sampling-and-gradients.md",
    "docs/assets/generated/validation-example.html": "docs/conformance.md",
    "docs/assets/generated/validation-example.json": "docs/conformance.md",
}

_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^`\n]*)$")
_SKIP = re.compile(r"<!--\s*skip-snippet:\s*(?P<reason>.*?)\s*-->")
_SNIPPET = re.compile(
    r"""^\s*--8<--\s+["'](?P<path>[^"':]+)(?::(?P<section>[a-z][-_0-9a-z]*))?["']\s*$""")
#: A section marker in an included file (pymdownx.snippets removes them from what it includes).
_SECTION = re.compile(r"--8<--\s+\[\s*(?P<kind>start|end)\s*:\s*(?P<name>[a-z][-_0-9a-z]*)\s*\]")


@dataclass
class Block:
    page: str
    line: int  # 1-based line of the first code line in the page
    lang: str
    code: str
    skip_reason: str | None = None


def blocks(page: str) -> list[Block]:
    """The fenced blocks of a page, with their language and skip marker."""
    lines = (ROOT / page).read_text(encoding="utf-8").splitlines()
    out: list[Block] = []
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, fence, info = m["indent"], m["fence"], m["info"].strip()
        lang = info.split()[0].lower() if info else ""
        # The skip marker: the nearest non-blank line above the fence.
        j = i - 1
        while j >= 0 and not lines[j].strip():
            j -= 1
        marker = _SKIP.search(lines[j]) if j >= 0 else None
        body: list[str] = []
        k = i + 1
        while k < len(lines):
            close = lines[k].strip()
            if close.startswith(fence[0] * len(fence)) and not close.strip(fence[0]):
                break
            body.append(lines[k][len(indent):] if lines[k].startswith(indent) else lines[k])
            k += 1
        else:
            raise AssertionError(f"{page}:{i + 1}: unclosed {fence} fence")
        out.append(Block(page, i + 2, lang, "\n".join(body) + "\n",
                         marker["reason"] if marker else None))
        i = k + 1
    return out


def _snippet(m: re.Match[str]) -> str:
    """The text a --8<-- line includes: the file, or one section of it, without markers."""
    lines = (ROOT / m["path"]).read_text(encoding="utf-8").splitlines(keepends=True)
    if m["section"] is None:
        return "".join(line for line in lines if not _SECTION.search(line))
    out, inside = [], False
    for line in lines:
        marker = _SECTION.search(line)
        if marker and marker["name"] == m["section"]:
            if marker["kind"] == "end" and inside:
                return "".join(out)
            inside = inside or marker["kind"] == "start"
        elif inside and not marker:
            out.append(line)
    raise AssertionError(f"{m['path']}: no section {m['section']!r} (or it is not closed)")


def _expand_snippets(block: Block) -> tuple[str, str, int]:
    """(code, filename, first line) to compile; --8<-- lines are replaced by their files."""
    lines = block.code.splitlines()
    included = [_SNIPPET.match(line) for line in lines]
    if len(lines) == 1 and included[0] and included[0]["section"] is None:
        path = included[0]["path"]
        return _snippet(included[0]), str(ROOT / path), 1
    if not any(included):
        return block.code, str(ROOT / block.page), block.line
    code = "\n".join(_snippet(m) if m else line for line, m in zip(lines, included))
    return code, f"{ROOT / block.page}:{block.line} (with snippets)", 1


def _python(b: Block) -> bool:
    return b.lang in ("python", "py", "python3")


def run_page(page: str) -> dict[str, object]:
    """Run a page's Python blocks in order in one namespace; return counts and timing."""
    ns: dict[str, object] = {"__name__": "__main__"}
    ran, skipped, t0 = 0, [], time.perf_counter()
    for b in blocks(page):
        if b.lang == "toml":
            tomllib.loads(_expand_snippets(b)[0])  # a configuration example must at least parse
            continue
        if not _python(b):
            continue
        if b.skip_reason is not None:
            assert b.skip_reason, f"{page}:{b.line}: skip-snippet needs a reason"
            skipped.append(f"{page}:{b.line}: {b.skip_reason}")
            continue
        code, filename, first = _expand_snippets(b)
        exec(compile("\n" * (first - 1) + code, filename, "exec"), ns)  # noqa: S102
        ran += 1
    return {"ran": ran, "skipped": skipped, "seconds": time.perf_counter() - t0}


@pytest.fixture(scope="module")
def timings(request):
    """Collects per-page timings; printed at the end of the module."""
    times: dict[str, dict[str, object]] = {}
    yield times
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is None or capture is None or not times:
        return
    lines = ["", "documentation examples (page: blocks run, skipped, seconds):"]
    lines += [f"  {page}: {t['ran']} run, {len(t['skipped'])} skipped, {t['seconds']:.1f} s"
              for page, t in times.items()]
    total = sum(float(t["seconds"]) for t in times.values())  # type: ignore[arg-type]
    lines.append(f"  total: {total:.1f} s")
    with capture.global_and_fixture_disabled():
        for line in lines:
            reporter.write_line(line)


@pytest.fixture
def page_sandbox(monkeypatch):
    """The repository root as working directory; environment, backend and RNG restored after."""
    monkeypatch.chdir(ROOT)
    environ, argv, path = dict(os.environ), list(sys.argv), list(sys.path)
    rng = torch.get_rng_state()
    registered = set(ps.backend_names())
    yield
    for name in set(ps.backend_names()) - registered:  # a page's example backend
        ps.unregister_backend(name)
    os.environ.clear()
    os.environ.update(environ)
    sys.argv[:], sys.path[:] = argv, path
    torch.set_rng_state(rng)
    ps.set_backend(None)
    ps.reload_config()
    import matplotlib.pyplot as plt

    plt.close("all")


def check_generated(name: str, since: float) -> None:
    """The file exists, was written after ``since``, and is what it should be."""
    path = ROOT / name
    assert path.exists(), f"{GENERATED[name]} did not write {name}"
    assert path.stat().st_mtime >= since - 1, f"{name} was not rewritten by {GENERATED[name]}"
    if path.suffix == ".png":  # a plot, not a blank canvas
        from matplotlib.image import imread

        pixels = imread(str(path))
        assert pixels.shape[0] >= 300 and pixels.shape[1] >= 600, pixels.shape
        assert pixels[..., :3].std() > 0.05
    elif path.suffix == ".html":
        text = path.read_text(encoding="utf-8")
        assert "polysample validation report" in text and "data:image/png;base64," in text
    elif path.suffix == ".json":
        assert json.loads(path.read_text(encoding="utf-8"))["ok"] is True


def _pages() -> list[object]:
    # The pages that write generated files run on the worker that builds the site
    # (tests/test_docs_site.py, xdist group "docs-site"), before it: the build then finds the
    # files fresh and does not run the scripts a second time, and never rewrites a file while a
    # page's test checks it.
    writers = set(GENERATED.values())
    return [pytest.param(p, marks=pytest.mark.xdist_group("docs-site")) if p in writers else p
            for p in PAGES]


@pytest.mark.parametrize("page", _pages())
def test_page_examples_run(page, page_sandbox, timings):
    start = time.time()
    result = run_page(page)
    timings[page] = result
    assert len(result["skipped"]) == EXPECTED_SKIPS.get(page, 0), (
        f"{page}: skipped blocks {result['skipped']}; expected {EXPECTED_SKIPS.get(page, 0)}. "
        "Make the example runnable, or declare the skip in EXPECTED_SKIPS."
    )
    for name, source in GENERATED.items():
        if source == page:  # the generated files this page shows are this run's output
            check_generated(name, start)


def test_every_page_is_collected_and_readme_has_examples():
    assert "README.md" in PAGES and "docs/sampling-and-gradients.md" in PAGES
    assert any(_python(b) for b in blocks("README.md"))
    for page in ["docs/getting-started.md", "docs/sampling-and-gradients.md",
                 "docs/configuration.md", "docs/seeds.md", "docs/conformance.md"]:
        assert any(_python(b) for b in blocks(page)), page


def test_block_parser_handles_markers_snippets_and_indentation(tmp_path, monkeypatch):
    page = tmp_path / "page.md"
    page.write_text(
        "text\n\n<!-- skip-snippet: needs a GPU -->\n\n```python\nraise SystemExit\n```\n\n"
        '- item\n\n    ```python title="x"\n    y = 1\n    ```\n\n```console\n$ ls\n```\n'
        '```python\n--8<-- "snip.py"\n```\n'
    )
    (tmp_path / "snip.py").write_text("z = 2\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    found = blocks("page.md")
    assert [(b.lang, b.skip_reason) for b in found] == [
        ("python", "needs a GPU"), ("python", None), ("console", None), ("python", None)]
    assert found[1].code == "y = 1\n" and found[1].line == 12
    result = run_page("page.md")
    assert result["ran"] == 2 and result["skipped"] == ["page.md:6: needs a GPU"]
    assert _expand_snippets(found[3])[0] == "z = 2\n"



def test_snippet_sections_are_included_without_markers_and_toml_blocks_expand(tmp_path,
                                                                                monkeypatch):
    (tmp_path / "mod.py").write_text(
        "a = 1\n# --8<-- [start:two]\nb = 2\n# --8<-- [start:inner]\nc = 3\n"
        "# --8<-- [end:inner]\n# --8<-- [end:two]\n")
    (tmp_path / "conf.toml").write_text("# --8<-- [start:t]\nx = 1\n# --8<-- [end:t]\n")
    (tmp_path / "page.md").write_text(
        '```python\n--8<-- "mod.py:two"\nassert (b, c) == (2, 3)\n```\n\n'
        '```python\n--8<-- "mod.py"\n```\n\n```toml\n--8<-- "conf.toml:t"\n```\n'
        '```python\n--8<-- "mod.py:nope"\n```\n')
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    found = blocks("page.md")
    assert _expand_snippets(found[0])[0] == "b = 2\nc = 3\n\nassert (b, c) == (2, 3)"
    assert _expand_snippets(found[1])[0] == "a = 1\nb = 2\nc = 3\n"
    assert tomllib.loads(_expand_snippets(found[2])[0]) == {"x": 1}
    with pytest.raises(AssertionError, match="no section 'nope'"):
        _expand_snippets(found[3])

def _hooks():
    pytest.importorskip("mkdocs")
    import importlib.util

    spec = importlib.util.spec_from_file_location("docs_hooks", ROOT / "docs" / "hooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_capability_matrix_shows_rsample_parameters_and_missing_backends():
    hooks = _hooks()
    support = ps.FamilySupport(sample=True, rsample=True, rsample_params=frozenset({"loc"}))
    assert hooks._cell(support) == "sample · rsample (`loc`)"
    assert hooks._cell(ps.FamilySupport(sample=True, log_prob=True)) == "sample · log_prob"
    assert hooks._cell(None) == "—"

    def missing():
        raise ps.BackendUnavailableError("needs the package somelib (pip install somelib)")

    ps.register_backend("not-here", missing)
    try:
        table = hooks.capability_matrix()
    finally:
        ps.unregister_backend("not-here")
    def cells(prefix):
        line = next(row for row in table.splitlines() if row.startswith(prefix))
        return [c.strip() for c in line.strip(" |").split(" | ")]

    header, normal = cells("| family"), cells("| `Normal`")
    column = header.index("`not-here`<br>*unavailable*")
    assert normal[column] == "not installed"
    assert "`not-here` is unavailable where this site was built" in table


def _is_declarations(b: Block) -> bool:
    return b.lang == "toml" and ("[[expected_failure]]" in b.code
                                 or re.search(r'^"[^"]+-[A-Z]\w*[^"]*"\s*=', b.code, re.M))


def test_the_expected_failure_examples_are_accepted_as_written():
    # docs/conformance.md once put a short-form line after a [[expected_failure]] header, where
    # TOML reads it into that table: the file was refused.
    from polysample.conformance import parse_declarations

    found = 0
    for page in PAGES:
        for b in blocks(page):
            if _is_declarations(b):
                found += 1
                decls = parse_declarations(tomllib.loads(b.code), f"{page}:{b.line}")
                assert decls, (page, b.line)
    assert found >= 1


def test_the_parametrize_with_checks_example_passes_when_run(tmp_path):
    import subprocess

    (block,) = [b for b in blocks("docs/conformance.md")
                if b.lang == "python" and "@parametrize_with_checks(" in b.code]
    (tmp_path / "test_example.py").write_text(block.code)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]))
    res = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          "-p", "no:randomly", "test_example.py"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout[-3000:]
    # the numbers the page gives
    assert "8 passed, 1 xfailed" in res.stdout, res.stdout[-3000:]


def test_examples_that_start_a_local_cluster_guard_it_for_scripts():
    # Run as a script, a LocalCluster's spawned workers import it: an unguarded cluster start
    # in a docs example failed (each worker started a cluster of its own).
    found = 0
    scripts = [p for p in (ROOT / "docs" / "examples").glob("*.py")]
    sources = [(f"{b.page}:{b.line}", b.code) for page in PAGES for b in blocks(page)
               if b.lang == "python"] + [(str(p), p.read_text()) for p in scripts]
    for where, code in sources:
        for m in re.finditer(r"^(?P<indent>[ \t]*)\S.*\bLocalCluster\(", code, re.M):
            found += 1
            before = code[:m.start()]
            assert re.search(r'^if __name__ == "__main__":', before, re.M) or \
                re.search(r"^def \w+\(", before, re.M), f"{where}: LocalCluster( unguarded"
            assert m.group("indent"), f"{where}: LocalCluster( at module level"
    assert found >= 2
