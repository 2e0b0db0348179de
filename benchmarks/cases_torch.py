"""polysample[torch] against ``torch.distributions``: the same objects, the same sizes, one run.

Large draws (1e7 values; 1e6 with ``--quick``) measure the samplers themselves; scalar draws on
prebuilt objects measure polysample's per-call overhead (backend resolution, output checks);
``rsample`` + ``backward`` measures the pathwise-gradient path end to end.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.distributions as td
from harness import Comparison

import polysample as ps


def _large(quick: bool) -> int:
    return 10**6 if quick else 10**7


def _pair(family: str, sample_shape: tuple[int, ...], params: dict[str, torch.Tensor],
          method: str = "sample") -> tuple[Callable[[], object], Callable[[], object]]:
    """(baseline fn, candidate fn) drawing ``sample_shape`` from prebuilt objects."""
    base = getattr(td, family)(**params)
    cand = getattr(ps, family)(**params, backend="torch")
    shape = torch.Size(sample_shape)
    return (lambda: getattr(base, method)(shape)), (lambda: getattr(cand, method)(shape))


def comparisons(quick: bool) -> list[Comparison]:
    n = _large(quick)
    size = "1e6" if quick else "1e7"
    t = torch.tensor
    out: list[Comparison] = []

    # ---------------------------------------------------------------- large draws
    b, c = _pair("Normal", (n,), {"loc": t(1.5), "scale": t(2.0)})
    gen = torch.Generator().manual_seed(0)
    cand_g = ps.Normal(t(1.5), t(2.0), backend="torch")
    out.append(Comparison(
        f"Normal.sample {size}", "torch.distributions", b,
        {"polysample[torch]": c,
         "polysample[torch] generator=": lambda: cand_g.sample((n,), generator=gen)},
        goal="<= 0.67x (>= 1.5x faster)",
    ))
    batch = 1000
    b, c = _pair("Normal", (n // batch,), {"loc": torch.linspace(-1, 1, batch),
                                           "scale": torch.linspace(0.5, 2, batch)})
    out.append(Comparison(f"Normal.sample {size}, batch 1000", "torch.distributions", b,
                          {"polysample[torch]": c}, goal="<= 0.67x"))
    b, c = _pair("Normal", (n,), {"loc": t(1.5), "scale": t(2.0)}, "rsample")
    out.append(Comparison(f"Normal.rsample {size} (no grad)", "torch.distributions", b,
                          {"polysample[torch]": c}, goal="<= 1.0x"))
    for family, params in (
        ("Gamma", {"concentration": t(2.0), "rate": t(1.5)}),
        ("Bernoulli", {"probs": t(0.3)}),
        ("Exponential", {"rate": t(2.0)}),
        ("Uniform", {"low": t(-1.0), "high": t(3.0)}),
        ("LogNormal", {"loc": t(0.0), "scale": t(0.5)}),
    ):
        b, c = _pair(family, (n,), params)
        out.append(Comparison(f"{family}.sample {size}", "torch.distributions", b,
                              {"polysample[torch]": c}, goal="<= 1.0x"))

    # ---------------------------------------------------------------- per-call overhead
    for family, params, method in (
        ("Normal", {"loc": t(0.0), "scale": t(1.0)}, "sample"),
        ("Normal", {"loc": t(0.0), "scale": t(1.0)}, "rsample"),
        ("Gamma", {"concentration": t(2.0), "rate": t(1.0)}, "sample"),
        ("Bernoulli", {"probs": t(0.3)}, "sample"),
    ):
        b, c = _pair(family, (), params, method)
        out.append(Comparison(f"{family}.{method}() scalar, per call", "torch.distributions",
                              b, {"polysample[torch]": c}, goal="<= 1.3x"))

    # ---------------------------------------------------------------- gradients
    m = n // 10
    loc = t(0.5, requires_grad=True)
    scale = t(1.5, requires_grad=True)
    base = td.Normal(loc, scale)
    cand = ps.Normal(loc, scale, backend="torch")

    def base_fn() -> None:
        base.rsample((m,)).square().mean().backward()

    def cand_fn() -> None:
        cand.rsample((m,)).square().mean().backward()

    out.append(Comparison(f"Normal.rsample {'1e5' if quick else '1e6'} + backward",
                          "torch.distributions", base_fn, {"polysample[torch]": cand_fn},
                          goal="<= 1.05x"))
    return out
