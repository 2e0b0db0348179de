"""A self-contained HTML report: matrix, per-family plots against SciPy, gradients, versions.

Plots are drawn with matplotlib's Agg backend and embedded as base64 PNG, so the report is one
file with no external resources.
"""

from __future__ import annotations

import base64
import html
import io
from typing import Any

from .report import Report
from .stats import ALPHA_CHECK, dkwm_threshold

__all__ = ["write_html", "render_html"]

_COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2"]
_STATUS_CSS = {"pass": "pass", "FAIL": "fail", "xfail": "xfail", "unsupported": "unsup"}

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
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode()


def _plot(entry: dict[str, Any], backends: list[str], title: str, n_by_backend: dict[str, int]
          ) -> str:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    q = entry["q"]
    fig, ax = plt.subplots(figsize=(4.4, 2.7))
    worst_band = 0.0
    for i, b in enumerate(backends):
        dev = entry["backends"].get(b)
        if dev is None:
            continue
        color = _COLORS[i % len(_COLORS)]
        for j in range(dev.shape[1]):
            ax.plot(q, dev[:, j], color=color, lw=1.1, alpha=0.85,
                    label=b if j == 0 else None)
        n = n_by_backend.get(b)
        if n:
            worst_band = max(worst_band, dkwm_threshold(n, ALPHA_CHECK / max(dev.shape[1], 1)))
    if worst_band:
        ax.axhspan(-worst_band, worst_band, color="#9e9e9e", alpha=0.18, lw=0,
                   label="DKWM threshold")
    ax.axhline(0, color="#444", lw=0.6)
    ax.set_xlabel("quantile level q of the draw", fontsize=8)
    ax.set_ylabel("F_scipy - F_draws at x_q", fontsize=8)
    ax.set_title(title, fontsize=9)
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=7, loc="upper right", frameon=False)
    fig.tight_layout()
    data = _png(fig)
    plt.close(fig)
    return data


def _grad_plot(report: Report, family: str, backends: list[str]) -> str | None:
    rows = [(b, g, errs) for (b, f, g), errs in report.grad_errors.items() if f == family]
    if not rows:
        return None
    out = ["<table><tr><th>backend</th><th>grid</th><th>parameter</th><th>measure</th>"
           "<th>value</th><th>threshold</th></tr>"]
    for b, g, entry in sorted(rows, key=lambda r: (r[0], r[1])):
        for k, v in entry["values"].items():
            out.append(f"<tr><td>{html.escape(b)}</td><td>{g}</td><td>{html.escape(k)}</td>"
                       f"<td>{entry['measure']}</td><td>{v:.3g}</td>"
                       f"<td>{entry['threshold']}</td></tr>")
    out.append("</table>")
    return "".join(out)


def render_html(report: Report) -> str:
    """The report as one self-contained HTML document."""
    import matplotlib

    matplotlib.use("Agg", force=True)  # before the versions table, which lists matplotlib
    backends = list(report.backends)
    fams = sorted({r.family for r in report.results if r.family != "*"})
    d = report.to_dict()
    counts = ", ".join(f"{v} {k}" for k, v in sorted(report.counts().items()))
    badge = ('<span class="badge ok">all checks passed</span>' if report.ok else
             f'<span class="badge notok">{len(report.failures)} failed</span>')
    mode = ("quick mode: smaller samples, same alpha per check, weaker power" if report.quick
            else "full mode")
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>polysample validation "
             f"report</title><style>{_CSS}</style></head><body>",
             f"<header><h1>polysample validation report</h1><div class='sub'>{badge} &nbsp; "
             f"{len(report.results)} checks ({counts}) in {report.seconds:.1f} s &middot; "
             f"{mode} &middot; total false-failure budget {d['error_budget']['alpha_total']:g}, "
             f"alpha per check {ALPHA_CHECK:.2g}</div></header><main>"]
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
    parts.append("</table><p class='small'>Each curve: one parameter point of a grid; the "
                 "grey band is the DKWM threshold. A curve leaving the band is a failed K-S "
                 "check.</p></div></div>")
    if report.failures:
        parts.append("<div class='fails'><b>Failed checks</b>\n" + html.escape("\n".join(
            f"{r.id}: {r.message[:300]}" for r in report.failures)) + "</div>")
    if report.stale:
        parts.append("<div class='xfails'><b>Stale expected failures</b> (declared, but "
                     "passed: remove them)<br>" + "<br>".join(
                         f"{html.escape(r.id)} &mdash; {html.escape(r.reason)}"
                         for r in report.stale) + "</div>")
    broken = [r for r in report.results if r.family == "*"]
    for r in broken:
        parts.append(f"<div class='fails'>{html.escape(r.id)}: {html.escape(r.message)}</div>")
    n_by = {}
    for r in report.results:
        if r.check == "sample_ks" and r.n:
            n_by[(r.backend, r.family, r.grid)] = r.n
    for f in fams:
        rs = [r for r in report.results if r.family == f]
        parts.append(f"<section class='family' id='{f}'><h2>{f}</h2>")
        status = " &middot; ".join(
            f"{html.escape(b)}: <b>{report.cell(b, f)}</b>" for b in backends)
        parts.append(f"<div class='small'>{status}</div><div class='plots'>")
        for (fam, grid, label), entry in sorted(report.plots.items()):
            if fam != f:
                continue
            nb = {b: n_by.get((b, f, grid), 0) for b in backends}
            img = _plot(entry, backends, f"{f} · {grid} · {label}", nb)
            ties = (" Some points have ties at float64 resolution (mass below the float "
                    "spacing): their K-S check allows one ulp." if entry.get("ties") else "")
            parts.append(f"<figure><img alt='{f} {grid} CDF deviation' "
                         f"src='data:image/png;base64,{img}'><figcaption>{grid}: draws of "
                         f"each backend against SciPy's CDF ({label}).{ties}</figcaption>"
                         "</figure>")
        parts.append("</div>")
        g = _grad_plot(report, f, backends)
        if g:
            parts.append("<h4>Gradient checks</h4>" + g)
        fails = [r for r in rs if r.status == "fail"]
        if fails:
            txt = "\n".join(
                f"{r.id}: {r.message}" + (f"\n    statistic={r.statistic:.6g} threshold="
                                          f"{_g(r.threshold)} n={r.n} seed={r.seed} alpha_i="
                                          f"{_g(r.alpha)} detectable={_g(r.detectable)}"
                                          if r.statistic is not None else "")
                for r in fails)
            parts.append(f"<div class='fails'>{html.escape(txt)}</div>")
        xf = [r for r in rs if r.status in ("xfail", "xpass")]
        if xf:
            parts.append("<div class='xfails'>" + "<br>".join(
                f"{'expected failure' if r.status == 'xfail' else 'STALE (passed)'}: "
                f"{html.escape(r.id)} &mdash; {html.escape(r.reason)}" for r in xf) + "</div>")
        parts.append("</section>")
    parts.append("</main></body></html>")
    return "".join(parts)


def _g(x: float | None) -> str:
    return "-" if x is None else f"{x:.3g}"


def write_html(report: Report, path: str) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(render_html(report))

