"""MkDocs hooks (``hooks:`` in mkdocs.yml): the parts of the site generated from the code.

* The capability matrix. ``<!-- capability-matrix -->`` in a page is replaced by a table of
  families x backends built from the plugin registry (``polysample.backends()`` and each
  backend's ``families()``), so it cannot drift from what the backends claim.
* The plots and the example report. Each script of ``GENERATED`` is run before the pages are
  collected when one of its outputs is missing or older than the script or any module of
  ``src/polysample``; the script writes its outputs under ``docs/assets/generated/``
  (gitignored). The page that shows the outputs includes the script (``--8<--``, so the page
  shows exactly the code that runs), and ``tests/test_docs.py`` runs the page, script included,
  and checks the outputs: a plot on the site is always the output of code the tests run.

The site documents the checkout it is built from: ``src/`` goes first on ``sys.path`` here and
on the scripts' ``PYTHONPATH``, whatever polysample is installed in the environment.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from pathlib import Path

from mkdocs.exceptions import PluginError

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src"

MATRIX_MARKER = "<!-- capability-matrix -->"
#: script (relative to the repository root) -> the files it writes
GENERATED = {
    "docs/examples/gradient_variance.py": ["docs/assets/generated/gradient_variance.png"],
    "docs/examples/validation_report.py": ["docs/assets/generated/validation-example.html",
                                           "docs/assets/generated/validation-example.json"],
}

log = logging.getLogger("mkdocs.hooks.polysample")


def on_config(config):
    # Here, not at import: MkDocs restores sys.path after importing a hook module.
    if str(SRC) not in sys.path:
        sys.path.insert(0, str(SRC))
    return config


# ---------------------------------------------------------------------------- plots
def _stale(outputs: list[Path], script: Path) -> bool:
    if not all(p.exists() for p in outputs):
        return True
    inputs = [script, *SRC.joinpath("polysample").rglob("*.py")]
    newest_input = max(p.stat().st_mtime for p in inputs)
    return any(p.stat().st_mtime < newest_input for p in outputs)


def run_script(script: str) -> None:
    """Run one script from the repository root with this checkout's ``src`` importable."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SRC), env.get("PYTHONPATH")]))
    env.setdefault("MPLBACKEND", "Agg")
    t0 = time.perf_counter()
    res = subprocess.run([sys.executable, script], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=600)
    if res.returncode != 0:
        raise PluginError(f"{script} failed (exit {res.returncode}):\n{res.stdout}{res.stderr}")
    log.info("ran %s in %.1f s", script, time.perf_counter() - t0)


def on_pre_build(config) -> None:
    for script, outputs in GENERATED.items():
        paths = [ROOT / p for p in outputs]
        if _stale(paths, ROOT / script):
            run_script(script)
        missing = [str(p) for p, path in zip(outputs, paths) if not path.exists()]
        if missing:
            raise PluginError(f"{script} ran but did not write {missing}")


# ---------------------------------------------------------------------------- capability matrix
def _md(text: str) -> str:
    """One line of text that cannot break a Markdown table row."""
    return " ".join(str(text).split()).replace("|", "\\|")


def _cell(support) -> str:
    if support is None:
        return "—"
    parts = []
    if support.sample:
        parts.append("sample")
    if support.rsample:
        if support.rsample_params is not None:
            parts.append(f"rsample ({', '.join(f'`{p}`' for p in sorted(support.rsample_params))})")
        else:
            parts.append("rsample")
    if support.log_prob:
        parts.append("log_prob")
    return " · ".join(parts) or "—"


def capability_matrix() -> str:
    """The families x backends table in Markdown, with the backends' notes below it."""
    import polysample as ps
    from polysample.core.families import FAMILIES

    if not Path(ps.__file__).resolve().is_relative_to(SRC):
        raise PluginError(f"the matrix must describe {SRC}, but polysample was imported from "
                          f"{ps.__file__} (imported before docs/hooks.py put src/ first?)")
    infos = ps.backends()
    tables = {}
    for info in infos:
        if info.status == "available":
            tables[info.name] = ps.load_backend(info.name).families()
    families = sorted(set(FAMILIES).union(*tables.values()), key=str.lower)

    header = ["family"]
    for info in infos:
        if info.status == "available":
            header.append(f"`{info.name}`<br>{info.version}")
        else:
            header.append(f"`{info.name}`<br>*{info.status}*")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for fam in families:
        row = [f"`{fam}`"]
        for info in infos:
            if info.name in tables:
                row.append(_cell(tables[info.name].get(fam)))
            else:
                row.append("not installed" if info.status == "unavailable" else info.status)
        lines.append("| " + " | ".join(row) + " |")

    out = ['<div class="capability-matrix" markdown>', "", *lines, "", "</div>", ""]
    notes = [(fam, name, sup.note) for name, table in tables.items()
             for fam, sup in sorted(table.items()) if sup.note]
    if notes:
        out += ["Notes the backends give with their families (`FamilySupport.note`):", "",
                "| family | backend | note |", "|---|---|---|"]
        out += [f"| `{fam}` | `{name}` | {_md(note)} |" for fam, name, note in sorted(notes)]
        out.append("")
    missing = [info for info in infos if info.status != "available"]
    for info in missing:
        out.append(f"- `{info.name}` is {info.status} where this site was built: {_md(info.error)}")
    return "\n".join(out)


def on_page_markdown(markdown: str, page, config, files) -> str:
    if MATRIX_MARKER in markdown:
        markdown = markdown.replace(MATRIX_MARKER, capability_matrix())
    return markdown
