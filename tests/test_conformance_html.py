"""The HTML report renders in a real browser (headless Chromium) with its plots.

Skipped when Chromium is missing, unless CI is set (then it fails: .ci/run installs it).
"""

from __future__ import annotations

import re

import pytest

from browser import chromium, flags, run
from polysample.conformance import check_backends
from polysample.conformance.html import render_html, write_html

# One worker runs this module: the report (the module fixture below) is made once, not per worker.
pytestmark = pytest.mark.xdist_group("html-report")


@pytest.fixture(scope="module")
def report():
    # A continuous family with rsample, a discrete one (whose rsample checks are skipped, with
    # their reason) and a second continuous one: every kind of section and plot, at a fifteenth
    # of the time Dirichlet took here (14.6 s of checks).
    return check_backends(["torch", "numpy"] if _has("numpy") else ["torch"],
                          families=["Normal", "Poisson", "Exponential"], quick=True,
                          layers=("sampler", "gradient", "agreement"))


def _has(name: str) -> bool:
    import polysample as ps

    try:
        ps.load_backend(name)
    except ps.PolysampleError:
        return False
    return True


def test_html_is_self_contained_with_plots_versions_and_gradients(report):
    page = render_html(report)
    assert page.startswith("<!DOCTYPE html>")
    assert not re.search(r"""(src|href)=['"]https?://""", page)  # no external resources
    assert page.count("data:image/png;base64,") >= 3
    for lib in ("torch", "numpy", "scipy", "matplotlib"):
        assert f"<td>{lib}</td>" in page
    assert "Gradient checks" in page
    assert "Backends &times; families" in page
    # what was not judged is on the page too, with its reason (not in the JSON alone)
    skipped = [r for r in report.results if r.status == "skip"]
    assert skipped
    assert f"{skipped[0].id}: " in page and "skipped check" in page


def test_report_renders_in_headless_chromium_with_every_plot_decoded(report, tmp_path):
    browser = chromium()
    path = tmp_path / "report.html"
    write_html(report, str(path))
    # --dump-dom after load: each <img> reports naturalWidth once decoded; a small script in a
    # copy of the page writes them into the DOM so that the dump shows them.
    probe = tmp_path / "probe.html"
    probe.write_text(path.read_text().replace(
        "</body>",
        "<script>window.addEventListener('load',()=>{const w=[...document.images]"
        ".map(i=>i.naturalWidth);const p=document.createElement('pre');p.id='probe';"
        "p.textContent='IMG'+'WIDTHS='+w.join(',');document.body.appendChild(p);});</script></body>"))
    res = run([browser, *flags(tmp_path), "--virtual-time-budget=5000", "--dump-dom",
               probe.as_uri()])
    m = re.search(r"IMGWIDTHS=([0-9,]*)", res.stdout)
    assert m, res.stderr[-2000:]
    widths = [int(w) for w in m.group(1).split(",") if w]
    assert len(widths) >= 3 and all(w > 100 for w in widths), widths


def test_report_screenshot_is_not_blank(report, tmp_path):
    browser = chromium()
    path = tmp_path / "report.html"
    write_html(report, str(path))
    shot = tmp_path / "shot.png"
    res = run([browser, *flags(tmp_path), f"--screenshot={shot}", "--window-size=1400,1800",
               path.as_uri()])
    assert shot.exists(), res.stderr[-2000:]
    from matplotlib.image import imread

    img = imread(str(shot))
    assert img.shape[0] >= 1000 and img.shape[1] >= 1000
    assert img[..., :3].std() > 0.05  # content, not a blank page
