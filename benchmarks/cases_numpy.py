"""polysample[numpy] against calling NumPy directly (plus ``torch.from_numpy``), and its
``rsample`` + ``backward`` against polysample[torch].

Large draws (1e7 values; 1e6 with ``--quick``) in float32: the baseline is what a user would
write by hand for a float32 tensor, NumPy's own float32 path where it has one and ``astype``
where it does not, with the location-scale arithmetic done in place by NumPy. The gradient
cases (1e6; 1e5 with ``--quick``) draw, sum and backpropagate to the parameters.

``python benchmarks/cases_numpy.py --accuracy`` prints the implicit-gradient accuracy table of
``docs/backends/numpy.md`` (needs SciPy): the maximum relative error of ``dz/dθ`` from this
backend and from PyTorch's own ``_standard_gamma_grad``/``_dirichlet_grad``, against the
finite-difference CDF identity with SciPy's CDF.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import Comparison  # noqa: E402

import polysample as ps  # noqa: E402


def _large(quick: bool) -> int:
    return 10**6 if quick else 10**7


def _numpy_normal(rng: np.random.Generator, n: int) -> Callable[[], object]:
    def fn() -> object:
        x = rng.standard_normal(n, dtype=np.float32)
        x *= np.float32(2.0)
        x += np.float32(1.5)
        return torch.from_numpy(x)
    return fn


def _numpy_gamma(rng: np.random.Generator, n: int) -> Callable[[], object]:
    def fn() -> object:
        x = rng.standard_gamma(2.0, n, dtype=np.float32)
        x /= np.float32(1.5)
        return torch.from_numpy(x)
    return fn


def _grad_case(family: str, params: dict[str, float], m: int, backend: str) -> Callable[[], object]:
    leaves = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    shape = torch.Size((m,))

    def fn() -> object:
        for v in leaves.values():
            v.grad = None
        x = getattr(ps, family)(**leaves, backend=backend).rsample(shape)
        x.sum().backward()
        return x
    return fn


def comparisons(quick: bool) -> list[Comparison]:
    n = _large(quick)
    size = "1e6" if quick else "1e7"
    t = torch.tensor
    rng = np.random.default_rng(0)
    base = "numpy + torch.from_numpy"
    out: list[Comparison] = []

    def cand(family: str, **params: torch.Tensor) -> Callable[[], object]:
        d = getattr(ps, family)(**params, backend="numpy")
        shape = torch.Size((n,))
        return lambda: d.sample(shape)

    out.append(Comparison(f"Normal.sample {size} f32", base, _numpy_normal(rng, n),
                          {"polysample[numpy]": cand("Normal", loc=t(1.5), scale=t(2.0))},
                          goal="<= 1.05x"))
    out.append(Comparison(f"Gamma.sample {size} f32", base, _numpy_gamma(rng, n),
                          {"polysample[numpy]": cand("Gamma", concentration=t(2.0),
                                                     rate=t(1.5))},
                          goal="<= 1.05x"))
    out.append(Comparison(
        f"Beta.sample {size} f32", base,
        lambda: torch.from_numpy(rng.beta(2.0, 3.0, n).astype(np.float32)),
        {"polysample[numpy]": cand("Beta", concentration1=t(2.0), concentration0=t(3.0))},
        goal="<= 1.05x"))
    out.append(Comparison(
        f"Poisson.sample {size} f32", base,
        lambda: torch.from_numpy(rng.poisson(4.0, n).astype(np.float32)),
        {"polysample[numpy]": cand("Poisson", rate=t(4.0))},
        goal="<= 1.05x"))
    out.append(Comparison(
        f"Bernoulli.sample {size} f32", base,
        lambda: torch.from_numpy((rng.random(n, dtype=np.float32) < np.float32(0.3))
                                 .astype(np.float32)),
        {"polysample[numpy]": cand("Bernoulli", probs=t(0.3))},
        goal="<= 1.05x"))

    m = n // 10
    msize = "1e5" if quick else "1e6"
    for family, params in (("Normal", {"loc": 0.5, "scale": 1.5}),
                           ("Gamma", {"concentration": 2.0, "rate": 1.5})):
        out.append(Comparison(
            f"{family}.rsample+backward {msize}", "polysample[torch]",
            _grad_case(family, params, m, "torch"),
            {"polysample[numpy]": _grad_case(family, params, m, "numpy")},
            goal="<= 1.2x"))
    return out


# ---------------------------------------------------------------------- accuracy table
def accuracy_table(per_point: int = 200, seed: int = 0) -> str:
    """Max relative error of implicit gradients, this backend vs PyTorch's, against SciPy."""
    import importlib

    import scipy.special as sp
    import scipy.stats as st

    nb = importlib.import_module("polysample.backends.numpy_backend")
    rng = np.random.default_rng(seed)
    rows = ["| family | concentration | polysample[numpy] | torch |", "|---|---|---|---|"]

    def rel(got: np.ndarray, ref: np.ndarray) -> float:
        ok = np.isfinite(ref) & (ref != 0)
        return float(np.max(np.abs(got[ok] - ref[ok]) / np.abs(ref[ok])))

    for a in (1e-2, 3e-2, 0.1, 0.3, 1.0, 3.0, 10.0, 100.0, 1e3, 1e4):
        z = np.maximum(rng.standard_gamma(a, per_point), 1e-300)
        eps = 3e-5 * a / (1 + a**0.5)
        lower = z < a
        d_f = np.where(lower, sp.gammainc(a + eps, z) - sp.gammainc(a - eps, z),
                       sp.gammaincc(a - eps, z) - sp.gammaincc(a + eps, z)) / (2 * eps)
        ref = -d_f / st.gamma.pdf(z, a)
        zt = torch.from_numpy(z)
        at = torch.full_like(zt, a)
        mine = nb.standard_gamma_dz_dalpha(zt, at).numpy()
        theirs = torch._standard_gamma_grad(at, zt).numpy()
        rows.append(f"| Gamma | {a:g} | {rel(mine, ref):.1e} | {rel(theirs, ref):.1e} |")

    for a, b in ((1e-2, 1e-2), (0.1, 1.0), (1.0, 1.0), (1.0, 1e2), (10.0, 10.0), (1e2, 1e3),
                 (1e4, 1e-2), (1e4, 1.0), (1e4, 1e4), (1e-2, 1e4)):
        x = np.clip(rng.beta(a, b, per_point), 1e-300, 1 - 1e-16)
        ea = 3e-5 * a / (1 + a**0.5)
        pdf = st.beta.pdf(x, a, b)
        lo = x < a / (a + b)
        d_f = np.where(lo, sp.betainc(a + ea, b, x) - sp.betainc(a - ea, b, x),
                       sp.betaincc(a - ea, b, x) - sp.betaincc(a + ea, b, x)) / (2 * ea)
        ref = -d_f / pdf
        xt = torch.from_numpy(x)
        mine = nb.beta_dx_da(xt, torch.tensor(a, dtype=torch.float64),
                             torch.tensor(b, dtype=torch.float64))[0].numpy()
        # PyTorch's Beta is Dirichlet((a, b))[0]; its gradient w.r.t. a (b fixed) is
        # _dirichlet_grad(x, a, a + b) * (1 - x) (see torch.distributions.dirichlet).
        theirs = (torch._dirichlet_grad(xt, torch.full_like(xt, a), torch.full_like(xt, a + b))
                  * (1 - xt)).numpy()
        rows.append(f"| Beta (d/da) | a={a:g}, b={b:g} | {rel(mine, ref):.1e} | "
                    f"{rel(theirs, ref):.1e} |")
    return "\n".join(rows)


if __name__ == "__main__":
    if "--accuracy" in sys.argv:
        print(accuracy_table())
    else:
        print("Run benchmarks/bench_backends.py --only numpy, or this file with --accuracy.")
