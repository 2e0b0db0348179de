"""A self-contained HTML report: matrix, per-family plots against SciPy, gradients, versions.

Plots are drawn with matplotlib's Agg backend and embedded as base64 PNG, so the report is one
file with no external resources.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .model import CdfCurves, GradErrors
from .report import Report, write_atomic
from .stats import ALPHA_CHECK, ALPHA_TOTAL

__all__ = ["write_html", "render_html", "PlotMap"]

_COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2"]
_STATUS_CSS = {"pass": "pass", "FAIL": "fail", "xfail": "xfail", "unsupported": "unsup",
               "no checks": "unsup", "not loaded": "fail"}

_CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:0;color:#222;
background:#f6f7f9}
header{background:#1d2733;color:#fff;padding:18px 28px}
header h1{margin:0 0 4px 0;font-size:22px}
header .sub{opacity:.8;font-size:13px}
main{padding:18px 28px;max-width:1400px}
.badge{display:inline-block;padding:3px 10px;border-radius:12px;font-weight:600;font-size:13px}
.ok{background:#2e7d32;color:#fff}.notok{background:#c62828;color:#fff}
table{border-collapse:collapse;font-size:13px;background:#fff}
th,td{border:1px solid #dde1e6;padding:4px 8px;text-align:left}
th{background:#eef1f5}
td.pass{background:#e6f4ea;color:#1e6b32}td.fail{background:#fde7e7;color:#b71c1c;
font-weight:600}td.xfail{background:#fff4e0;color:#8a5a00}td.unsup{color:#999}
section.family{background:#fff;border:1px solid #dde1e6;border-radius:6px;margin:16px 0;
padding:12px 16px}
section.family h2{margin:0 0 8px 0;font-size:18px}
.plots{display:flex;flex-wrap:wrap;gap:10px}
.plots figure{margin:0}.plots figcaption{font-size:12px;color:#555;max-width:420px}
.fails{font-size:12px;font-family:ui-monospace,Menlo,monospace;white-space:pre-wrap;
background:#fff8f8;border-left:3px solid #c62828;padding:6px 10px;margin:8px 0}
.xfails{font-size:12px;background:#fffaf0;border-left:3px solid #e0a000;padding:6px 10px;
margin:8px 0}
.grid2{display:flex;gap:24px;flex-wrap:wrap;align-items:flex-start}
.small{font-size:12px;color:#555}
"""


def _png(fig: Any) -> str:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    buf = io.BytesIO()
    FigureCanvasAgg(fig).print_png(buf)
    return base64.b64encode(buf.getvalue()).decode()


_STYLES: list[Any] = ["-", "--", ":", "-.", (0, (5, 1)), (0, (1, 1)), (0, (3, 1, 1, 1))]


def _plot(curves: list[CdfCurves], backends: list[str], title: str) -> str:
    """One figure: each backend's curves in its colour, grid point ``[j]`` in line style ``j``
    (the legend has one entry per backend and per grid point), and the DKWM band.

    Drawn on a bare ``Figure`` with fixed margins (no pyplot, no tight layout, no second
    render for a tight bounding box): a report holds about a hundred of these.
    """
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    fig = Figure(figsize=(4.6, 2.9), dpi=90)
    fig.subplots_adjust(left=0.15, right=0.98, bottom=0.15, top=0.9)
    ax = fig.add_subplot()
    band, points, shown = 0.0, 0, []
    for c in curves:
        i = backends.index(c.backend) if c.backend in backends else 0
        color = _COLORS[i % len(_COLORS)]
        q = np.asarray(c.q)
        for j, dev in enumerate(c.curves):
            ax.plot(q, dev, color=color, lw=1.1, alpha=0.85, ls=_STYLES[j % len(_STYLES)])
        band = max(band, c.threshold)
        points = max(points, len(c.curves))
        shown.append((c.backend, color, any(c.tie_corrected)))
    if band:
        ax.axhspan(-band, band, color="#9e9e9e", alpha=0.18, lw=0)
    ax.axhline(0, color="#444", lw=0.6)
    ax.set_xlabel("quantile level q of the draw", fontsize=8)
    ax.set_ylabel("F_scipy - F_draws at x_q", fontsize=8)
    ax.set_title(title, fontsize=9)
    ax.tick_params(labelsize=7)
    handles: list[Any] = [Line2D([], [], color=col, lw=1.5,
                                 label=b + (" (tie-corrected)" if tie else ""))
                          for b, col, tie in shown]
    handles += [Line2D([], [], color="#555", lw=1.1, ls=_STYLES[j % len(_STYLES)],
                       label=f"point [{j}]") for j in range(points)]
    if band:
        handles.append(Patch(color="#9e9e9e", alpha=0.3, label="DKWM threshold"))
    ax.legend(handles=handles, fontsize=6, loc="upper right", frameon=False, ncol=2)
    return _png(fig)


def _grad_table(report: Report, family: str) -> str | None:
    rows = [e for r in report.results if r.family == family
            for e in r.evidence if isinstance(e, GradErrors)]
    if not rows:
        return None
    out = ["<table><tr><th>backend</th><th>grid</th><th>parameter</th><th>measure</th>"
           "<th>value</th><th>threshold</th></tr>"]
    for e in sorted(rows, key=lambda e: (e.backend, e.grid)):
        for k, v in e.values.items():
            out.append(f"<tr><td>{html.escape(e.backend)}</td><td>{e.grid}</td>"
                       f"<td>{html.escape(k)}</td><td>{html.escape(e.measure)}</td>"
                       f"<td>{v:.3g}</td><td>{html.escape(e.threshold)}</td></tr>")
    out.append("</table>")
    return "".join(out)


def _failure_text(r: Any) -> str:
    text = f"{r.id}: {r.message}"
    if r.statistic is not None:
        text += (f"\n    statistic={r.statistic:.6g} threshold={_g(r.threshold)} n={r.n} "
                 f"seed={r.seed} alpha_i={_g(r.alpha)} detectable={_g(r.detectable)}")
    return text


#: ``pmap(fn, jobs)``: ``[fn(job) for job in jobs]``, in order, computed anywhere (the CLI passes
#: its Dask cluster's map, so that the plots are drawn on the workers).
PlotMap = Callable[[Callable[[Any], str], list[Any]], Sequence[str]]


def _plot_job(job: tuple[list[CdfCurves], list[str], str]) -> str:
    """:func:`_plot` of one job (a picklable function of one argument, for ``pmap``)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    return _plot(*job)


def render_html(report: Report, pmap: PlotMap | None = None) -> str:
    """The report as one self-contained HTML document (an incomplete run says so up front).

    The plots (about 80 for the built-in backends, 0.1 s each) are drawn by ``pmap`` when
    given (see :data:`PlotMap`), here otherwise.
    """
    import matplotlib

    matplotlib.use("Agg", force=True)  # before the versions table, which lists matplotlib
    backends = list(report.backends)
    fams = sorted({r.family for r in report.results if r.family != "*"})
    counts = ", ".join(f"{v} {k}" for k, v in sorted(report.counts().items()))
    if not report.complete:
        badge = (f'<span class="badge notok">INCOMPLETE: {len(report.results)} of '
                 f'{report.planned} checks ran</span>')
    elif report.ok:
        badge = '<span class="badge ok">all checks passed</span>'
    else:
        badge = f'<span class="badge notok">{len(report.failures)} failed</span>'
    mode = ("quick mode: smaller samples, same alpha per check, weaker power" if report.quick
            else "full mode")
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>polysample validation "
             f"report</title><style>{_CSS}</style></head><body>",
             f"<header><h1>polysample validation report</h1><div class='sub'>{badge} &nbsp; "
             f"{len(report.results)} checks ({counts}) in {report.seconds:.1f} s &middot; "
             f"{mode} &middot; total false-failure budget {ALPHA_TOTAL:g}, "
             f"alpha per check {ALPHA_CHECK:.2g}</div></header><main>"]
    if not report.complete:
        parts.append(f"<div class='fails'><b>This run was interrupted</b>: "
                     f"{report.planned - len(report.results)} planned checks did not run, so "
                     "this page is not a verdict.</div>")
    # matrix
    parts.append("<div class='grid2'><div><h3>Backends &times; families</h3><table><tr>"
                 "<th>family</th>" + "".join(f"<th>{html.escape(b)}</th>" for b in backends)
                 + "</tr>")
    for f in fams:
        parts.append(f"<tr><td><a href='#{f}'>{f}</a></td>")
        for b in backends:
            c = report.cell(b, f)
            parts.append(f"<td class='{_STATUS_CSS.get(c, '')}'>{c}</td>")
        parts.append("</tr>")
    parts.append("</table></div>")
    # versions
    parts.append("<div><h3>Versions</h3><table><tr><th>library</th><th>version</th></tr>")
    from .report import library_versions

    for k, v in {**report.versions, **library_versions()}.items():
        parts.append(f"<tr><td>{html.escape(k)}</td><td>{html.escape(v)}</td></tr>")
    for k, v in report.backend_versions.items():
        parts.append(f"<tr><td>backend {html.escape(k)}</td><td>{html.escape(v)}</td></tr>")
    parts.append("</table><p class='small'>Each curve: one grid point of a grid (its parameter "
                 "values are listed under the plot); the grey band is the DKWM threshold. A "
                 "curve leaving the band is a failed K-S check. Where a draw has ties at float "
                 "resolution the curve shows the tie-corrected deviation the check used."
                 "</p></div></div>")
    if report.failures:
        parts.append("<div class='fails'><b>Failed checks</b>\n" + html.escape("\n".join(
            _failure_text(r) for r in report.failures)) + "</div>")
    if report.stale:
        parts.append("<div class='xfails'><b>Stale expected failures</b> (declared, but "
                     "passed: remove them)<br>" + "<br>".join(
                         f"{html.escape(r.id)} &mdash; {html.escape(r.covered_by)}: "
                         f"{html.escape(r.reason)}" for r in report.stale) + "</div>")
    for note in report.notes:
        parts.append(f"<p class='small'>note: {html.escape(note)}</p>")
    for r in report.results:
        if r.family == "*":
            parts.append(f"<div class='fails'>{html.escape(r.id)}: "
                         f"{html.escape(r.message)}</div>")
    curves: dict[tuple[str, str, str], list[CdfCurves]] = {}
    for r in report.results:
        for e in r.evidence:
            if isinstance(e, CdfCurves):
                curves.setdefault((e.family, e.grid, e.label), []).append(e)
    keys = sorted(curves)
    jobs = [(curves[k], backends, f"{k[0]} · {k[1]} · {k[2]}") for k in keys]
    pngs = dict(zip(keys, (pmap or _serial)(_plot_job, jobs)))
    for f in fams:
        rs = [r for r in report.results if r.family == f]
        parts.append(f"<section class='family' id='{f}'><h2>{f}</h2>")
        status = " &middot; ".join(
            f"{html.escape(b)}: <b>{report.cell(b, f)}</b>" for b in backends)
        parts.append(f"<div class='small'>{status}</div><div class='plots'>")
        for (fam, grid, label), cs in sorted(curves.items()):
            if fam != f:
                continue
            img = pngs[(fam, grid, label)]
            points = "<br>".join(f"[{j}] {html.escape(p)}" for j, p in enumerate(cs[0].points))
            ties = (" Tie-corrected curves: the draw has ties at float resolution (mass below "
                    "the float spacing); the check allows one ulp there."
                    if any(any(c.tie_corrected) for c in cs) else "")
            parts.append(f"<figure><img alt='{f} {grid} CDF deviation' "
                         f"src='data:image/png;base64,{img}'><figcaption>{grid}: draws of "
                         f"each backend against SciPy's CDF ({label}).{ties}<br>"
                         f"{points}</figcaption></figure>")
        parts.append("</div>")
        g = _grad_table(report, f)
        if g:
            parts.append("<h4>Gradient checks</h4>" + g)
        fails = [r for r in rs if r.status == "fail"]
        if fails:
            parts.append(f"<div class='fails'>"
                         f"{html.escape(chr(10).join(_failure_text(r) for r in fails))}</div>")
        xf = [r for r in rs if r.status in ("xfail", "xpass")]
        if xf:
            parts.append("<div class='xfails'>" + "<br>".join(
                f"{'expected failure' if r.status == 'xfail' else 'STALE (passed)'}: "
                f"{html.escape(r.id)} &mdash; covered by {html.escape(r.covered_by)}: "
                f"{html.escape(r.reason)}" for r in xf) + "</div>")
        skipped = [r for r in rs if r.status == "skip"]
        if skipped:
            # What was not judged, and why (a tail holding too few draws, a capability the
            # backend does not claim): collapsed, but on the page, not in the JSON alone.
            parts.append(f"<details class='small'><summary>{len(skipped)} skipped "
                         f"check{'s' if len(skipped) != 1 else ''} (not judged)</summary>"
                         + "<br>".join(f"{html.escape(r.id)}: {html.escape(r.message)}"
                                       for r in skipped) + "</details>")
        parts.append("</section>")
    parts.append("</main></body></html>")
    return "".join(parts)


def _serial(fn: Callable[[Any], str], jobs: list[Any]) -> list[str]:
    return [fn(job) for job in jobs]


def _g(x: float | None) -> str:
    return "-" if x is None else f"{x:.3g}"


def write_html(report: Report, path: str) -> None:
    """Write the report atomically (never a half-written file)."""
    write_atomic(path, render_html(report))

