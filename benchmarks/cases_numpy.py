"""The accuracy of the numpy backend's implicit-reparameterization gradients.

``python benchmarks/cases_numpy.py --accuracy`` prints the table of ``docs/backends/numpy.md``
(needs SciPy): the maximum relative error of ``dz/dθ`` from this backend and from PyTorch's own
``_standard_gamma_grad``/``_dirichlet_grad``, against the finite-difference CDF identity with
SciPy's CDF. (Timings moved to ``polysample bench``.)
"""

from __future__ import annotations

import sys

import numpy as np
import torch


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
        print("Run this file with --accuracy; timings: `polysample bench --backend numpy`.")
