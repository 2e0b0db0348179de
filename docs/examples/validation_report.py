"""A small cross-library validation run and its reports (the example of docs/conformance.md).

Run from the repository root: python docs/examples/validation_report.py
It writes docs/assets/generated/validation-example.html and validation-example.json.
"""

from pathlib import Path

from polysample.conformance import check_backends
from polysample.conformance.html import write_html

OUT = Path("docs/assets/generated")

# Two backends, three families, quick mode: every layer, plus the cross-backend agreement checks.
report = check_backends(["torch", "numpy"], families=["Normal", "Gamma", "Poisson"], quick=True)
print(report.table())
print(report.summary())
for result in report.results[:3] + [r for r in report.results if r.check == "sample_ks"][:2]:
    print(result.id, result.status, result.statistic, result.threshold, result.message)
assert report.ok, [f.id for f in report.failures]

OUT.mkdir(parents=True, exist_ok=True)
write_html(report, str(OUT / "validation-example.html"))
(OUT / "validation-example.json").write_text(report.to_json())
print(f"wrote {OUT / 'validation-example.html'} and {OUT / 'validation-example.json'}")
