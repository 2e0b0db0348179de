"""The documentation site builds and renders in a real browser (headless Chromium).

The site is built with ``mkdocs build --strict`` into a temporary directory and served over
HTTP on localhost (Material's search loads its index with ``fetch``, which ``file://`` pages
cannot do). The server injects a probe script at the top of every HTML page's ``<head>``: it
records ``console.error`` calls, uncaught errors, unhandled promise rejections and resources
that fail to load, and after the ``load`` event writes them, with every image's
``naturalWidth``, into a ``<pre>`` that ``--dump-dom`` prints. The server also records every
request, so a page that asks for a missing file fails.

Skipped when Chromium (or MkDocs) is missing, unless CI is set: then it fails.
"""

from __future__ import annotations

import html
import json
import os
import re
import subprocess
import sys
import threading
import time
from functools import partial
from html.parser import HTMLParser
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

import polysample as ps
from browser import chromium, flags, in_ci, run
from polysample.core.families import FAMILIES

ROOT = Path(__file__).resolve().parent.parent
# One worker runs this module: the site (the module fixture below) is built once, not per worker.
pytestmark = pytest.mark.xdist_group("docs-site")

PROBE = """<script>(function () {
  var problems = [];
  var consoleError = console.error;
  console.error = function () {
    problems.push("console.error: " + Array.prototype.map.call(arguments, String).join(" "));
    return consoleError.apply(console, arguments);
  };
  window.addEventListener("error", function (e) {
    var t = e.target;
    if (t && t !== window && (t.src || t.href)) problems.push("failed to load: " + (t.src || t.href));
    else problems.push("uncaught: " + e.message);
  }, true);
  window.addEventListener("unhandledrejection", function (e) {
    problems.push("unhandled rejection: " + e.reason);
  });
  window.addEventListener("load", function () {
    setTimeout(function () {
      var out = document.createElement("pre");
      out.id = "polysample-probe";
      out.textContent = "PROBE" + JSON.stringify({
        problems: problems,
        images: Array.prototype.map.call(document.images, function (i) {
          return {src: i.currentSrc || i.src, width: i.naturalWidth};
        })
      }) + "EBORP";
      document.body.appendChild(out);
    }, 1000);
  });
})();</script>"""


class _Handler(SimpleHTTPRequestHandler):
    """Serves the built site, injects :data:`PROBE` into HTML pages, records each request."""

    requests: list[tuple[str, int]]

    def do_GET(self) -> None:
        path = Path(self.translate_path(self.path))
        if path.is_dir():
            path = path / "index.html"
        if path.suffix == ".html" and path.is_file():
            body = path.read_text(encoding="utf-8").replace("<head>", "<head>" + PROBE, 1)
            data = body.encode("utf-8")
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        super().do_GET()

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        self.requests.append((self.path, int(code) if str(code).isdigit() else 0))

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """``mkdocs build --strict`` of this checkout into a temporary directory."""
    try:
        import mkdocs  # noqa: F401
    except ImportError:
        if in_ci():
            pytest.fail("MkDocs is required in CI (the docs extra: pip install -e '.[docs]')")
        pytest.skip("MkDocs is not installed (pip install -e '.[docs]')")
    out = tmp_path_factory.mktemp("site")
    # As `make docs` runs it; docs/hooks.py puts this checkout's src/ first on sys.path.
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    t0 = time.perf_counter()
    res = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(out)],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-5000:]
    print(f"mkdocs build --strict: {time.perf_counter() - t0:.1f} s")
    return out


@pytest.fixture(scope="module")
def server(site):
    """(base URL, request log) of an HTTP server on localhost serving the built site."""
    log: list[tuple[str, int]] = []
    handler = partial(type("Handler", (_Handler,), {"requests": log}), directory=str(site))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", log
    httpd.shutdown()
    httpd.server_close()


def render(url: str, tmp_path: Path) -> tuple[str, dict]:
    """The DOM of ``url`` after load, and the probe's findings."""
    browser = chromium()
    res = run([browser, *flags(tmp_path), "--enable-logging=stderr", "--v=0",
               "--virtual-time-budget=10000", "--dump-dom", url])
    m = re.search(r"PROBE(\{.*?\})EBORP", res.stdout, re.S)  # not the script's own text
    assert m, f"no probe output for {url}: {res.stderr[-3000:]}"
    found = json.loads(html.unescape(m.group(1)))
    # Uncaught errors also reach the browser's own console log (stderr with --enable-logging).
    found["problems"] += [line for line in res.stderr.splitlines()
                          if ":CONSOLE" in line and "Uncaught" in line]
    return res.stdout, found


def assert_page_ok(url: str, dom: str, found: dict, log: list[tuple[str, int]]) -> None:
    assert not found["problems"], f"{url}: {found['problems']}"
    broken = [i for i in found["images"] if i["width"] == 0]
    assert not broken, f"{url}: images that did not load: {broken}"
    failed = [(path, code) for path, code in log if code >= 400]
    assert not failed, f"requests that failed while rendering {url}: {failed}"
    assert re.search(r"<article[^>]*>.*?<h1", dom, re.S), f"{url}: no article title"


class _Matrix(HTMLParser):
    """Rows of the table inside ``<div class="capability-matrix">``, as lists of cell texts."""

    def __init__(self) -> None:
        super().__init__()
        self.depth = 0  # div nesting inside the matrix div; 0 = outside
        self.rows: list[list[str]] = []
        self.cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "div":
            if self.depth:
                self.depth += 1
            elif "capability-matrix" in (dict(attrs).get("class") or "").split():
                self.depth = 1
        elif self.depth and tag == "tr":
            self.rows.append([])
        elif self.depth and tag in ("td", "th"):
            self.cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "div" and self.depth:
            self.depth -= 1
        elif self.depth and tag in ("td", "th") and self.cell is not None:
            self.rows[-1].append(" ".join("".join(self.cell).split()))
            self.cell = None

    def handle_data(self, data: str) -> None:
        if self.cell is not None:
            self.cell.append(data)


def test_the_site_builds_with_strict_checks(site):
    """`make test` relies on this test for the `mkdocs build --strict` that `make docs` runs
    (without a browser, too: the page tests below skip outside CI when Chromium is missing)."""
    pages = {p.relative_to(site).as_posix() for p in site.rglob("index.html")}
    assert "index.html" in pages
    assert {"getting-started/index.html", "conformance/index.html"} <= pages, sorted(pages)


def test_home_page_renders(server, tmp_path):
    base, log = server
    log.clear()
    dom, found = render(base + "/", tmp_path)
    assert_page_ok(base + "/", dom, found, log)
    assert "sample()" in dom and "rsample()" in dom


def test_sampling_and_gradients_page_renders_with_its_plot_and_code(server, tmp_path):
    base, log = server
    log.clear()
    url = base + "/sampling-and-gradients/"
    dom, found = render(url, tmp_path)
    assert_page_ok(url, dom, found, log)
    plots = [i for i in found["images"] if i["src"].endswith("/gradient_variance.png")]
    assert plots and plots[0]["width"] >= 600, found["images"]
    text = html.unescape(re.sub(r"<[^>]+>", "", dom))
    assert "def score_function(make, n, seed):" in text  # the example script itself ...
    assert "--8<--" not in text  # ... not the snippet line that includes it


def test_capability_matrix_has_a_row_per_family_and_a_column_per_backend(server, tmp_path):
    base, log = server
    log.clear()
    url = base + "/backends/"
    dom, found = render(url, tmp_path)
    assert_page_ok(url, dom, found, log)
    parser = _Matrix()
    parser.feed(dom)
    header, *rows = parser.rows
    assert header[0] == "family"
    backends = ps.backends()
    assert len(header) == 1 + len(backends)
    for info, title in zip(backends, header[1:]):
        assert title.startswith(info.name), (info.name, title)
    families = set(FAMILIES)
    for info in backends:
        if info.status == "available":
            families |= set(ps.load_backend(info.name).families())
    assert sorted(r[0] for r in rows) == sorted(families)
    assert all(len(r) == len(header) and all(r) for r in rows), rows
    normal = next(r for r in rows if r[0] == "Normal")
    assert all("rsample" in cell for cell in normal[1:]), normal
    bernoulli = next(r for r in rows if r[0] == "Bernoulli")
    assert not any("rsample" in cell for cell in bernoulli[1:]), bernoulli


def test_the_probe_catches_a_broken_page(server, site, tmp_path):
    """The checks above can fail: a missing image, a console error and a 404 are all seen."""
    base, log = server
    (site / "broken.html").write_text(
        "<html><head><title>x</title></head><body><img src='missing.png'>"
        "<script>console.error('boom')</script></body></html>")
    log.clear()
    dom, found = render(base + "/broken.html", tmp_path)
    assert any("boom" in p for p in found["problems"]), found
    assert any("missing.png" in p for p in found["problems"]), found
    assert [i["width"] for i in found["images"]] == [0]
    assert ("/missing.png", 404) in log
