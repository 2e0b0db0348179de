"""What the conformance suite detects: small parameter errors, family by family.

For every continuous univariate family and every parameter that sets a scale, rate,
concentration or shape, a backend that draws with that parameter off by a factor ``1 + e``
(``e = 2%`` in quick mode, ``1%`` in full mode) is run through the sampler layer; so is one
whose draws are shifted by ``e`` standard deviations (the scale parameter where the standard
deviation is infinite); for the discrete families, ``probs`` off by the same factor. Each row
says whether the suite failed it (it should) and on which check.

The backends are the torch backend with one defect (as ``tests/mutants.py``). Not a test: the
figures go into ``docs/conformance.md``. Usage::

    python benchmarks/power_table.py [--quick-only] [--family Gamma ...]
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import torch

from polysample.backends.torch_backend import TorchBackend
from polysample.conformance import check_backend
from polysample.core.backend import Backend
from polysample.core.families import FAMILIES

#: Parameters that are not scales, rates, concentrations or probabilities (locations are
#: tested by the shift; integer counts are not perturbed).
_SKIP = {"loc", "low", "high", "logits", "total_count", "dim"}


class _Perturbed(Backend):
    """The torch backend drawing ``family`` with ``param`` multiplied by ``factor``, or its
    draws shifted by ``shift`` standard deviations."""

    def __init__(self, family: str, param: str | None, factor: float, shift: float):
        self._inner = TorchBackend()
        self.family, self.param, self.factor, self.shift = family, param, factor, shift
        self.name = f"power-{family}-{param or 'shift'}"

    def families(self) -> Any:
        return {self.family: self._inner.families()[self.family]}

    def _params(self, params: Any) -> Any:
        if self.param is None:
            return params
        p = dict(params)
        p[self.param] = params[self.param] * self.factor
        if self.param == "probs":
            p["logits"] = torch.logit(p["probs"])
        return p

    def _draw(self, method: str, params: Any, shape: torch.Size, seed: Any) -> torch.Tensor:
        x = getattr(self._inner, method)(self.family, self._params(params), shape, seed=seed)
        if self.shift:
            d = getattr(torch.distributions, self.family)(
                **{k: params[k] for k in FAMILIES[self.family].params if k != "logits"},
                validate_args=False)
            sd = d.stddev
            sd = torch.where(torch.isfinite(sd), sd, params.get("scale", torch.ones_like(sd)))
            x = x + self.shift * sd
        return x

    def sample(self, family: str, params: Any, sample_shape: torch.Size, *, seed: Any = None
               ) -> torch.Tensor:
        return self._draw("sample", params, sample_shape, seed)

    def rsample(self, family: str, params: Any, sample_shape: torch.Size, *, seed: Any = None
                ) -> torch.Tensor:
        return self._draw("rsample", params, sample_shape, seed)


def rows(families: list[str], modes: list[bool]) -> list[tuple[str, str, str, str, float]]:
    out = []
    for family in families:
        spec = FAMILIES[family]
        if not spec.univariate or family in ("Categorical",):
            continue
        params = [p for p in spec.params if p not in _SKIP]
        if spec.kind == "discrete":
            params = [p for p in params if p == "probs"]
        cases: list[tuple[str | None, float]] = [(p, 0.0) for p in params]
        if spec.kind == "continuous":
            cases.append((None, 1.0))
        for quick in modes:
            e = 0.02 if quick else 0.01
            for param, shift in cases:
                b = _Perturbed(family, param, 1 + e, shift * e)
                t0 = time.perf_counter()
                report = check_backend(b, layers=("sampler",), quick=quick)
                fails = sorted({f"{r.grid} {r.check}" for r in report.failures})
                what = f"{param} x{1 + e:g}" if param else f"shift +{e:g} sd"
                out.append((family, "quick" if quick else "full", what,
                            ", ".join(fails) if fails else "NOT DETECTED",
                            time.perf_counter() - t0))
                print(f"{out[-1][0]:20s} {out[-1][1]:5s} {out[-1][2]:22s} {out[-1][3]} "
                      f"({out[-1][4]:.1f} s)", file=sys.stderr, flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--family", action="append")
    ap.add_argument("--quick-only", action="store_true")
    args = ap.parse_args()
    families = args.family or sorted(FAMILIES)
    modes = [True] if args.quick_only else [True, False]
    table = rows(families, modes)
    print("| family | mode | error | failed checks |")
    print("|---|---|---|---|")
    for family, mode, what, fails, _ in table:
        print(f"| {family} | {mode} | {what} | {fails} |")
    missed = [r for r in table if r[3] == "NOT DETECTED"]
    print(f"\n{len(table) - len(missed)} of {len(table)} errors detected; "
          f"{sum(r[4] for r in table):.0f} s", file=sys.stderr)



if __name__ == "__main__":
    main()
