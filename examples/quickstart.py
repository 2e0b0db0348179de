"""polysample quick start: run with `python examples/quickstart.py` (or `make demo`).

Shows sample(), rsample() with a gradient, switching backends, seeds and wrap().
"""

from __future__ import annotations

import warnings

import torch

import polysample as ps


def main() -> None:
    # 1. sample(): same constructor as torch.distributions, drawn by the configured backend.
    d = ps.Normal(loc=torch.zeros(3), scale=1.0)
    x = d.sample((2,))
    print(f"1. ps.Normal(0, 1).sample((2,)) on {ps.get_backend()!r}: shape {tuple(x.shape)}")
    print(f"   {x}")

    # 2. rsample(): gradients flow back to the torch parameters, whichever library drew.
    rate = torch.tensor(2.0, requires_grad=True)
    z = ps.Gamma(3.0, rate).rsample((10_000,), seed=0)
    z.mean().backward()
    print(f"2. d mean(Gamma(3, rate).rsample()) / d rate = {rate.grad.item():.4f} "
          f"(exact: -3 / rate**2 = {-3 / 2.0**2:.4f})")

    # 3. Switch backend: per call, in a block, or process-wide.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a broken optional plugin only warns
        available = [b.name for b in ps.backends() if b.status == "available"]
    print(f"3. available backends: {', '.join(available)}")
    for name in [b for b in ("torch", "numpy") if b in available]:
        with ps.use_backend(name):
            loc = torch.tensor(1.0, requires_grad=True)
            y = ps.Normal(loc, 2.0).rsample((5,), seed=1)
            (g,) = torch.autograd.grad(y.sum(), [loc])
            print(f"   {name:>5}: {[round(v, 3) for v in y.tolist()]}  d sum/d loc = {g.item():.0f}")

    # 4. Seeds: same backend + same seed => identical values; manual_seed seeds every backend.
    a = ps.Beta(2.0, 3.0).sample((4,), seed=7)
    b = ps.Beta(2.0, 3.0).sample((4,), seed=7)
    ps.manual_seed(0)
    c = ps.Poisson(4.0).sample((4,))
    ps.manual_seed(0)
    print(f"4. seed=7 twice identical: {torch.equal(a, b)}; after manual_seed(0) twice "
          f"identical: {torch.equal(c, ps.Poisson(4.0).sample((4,)))}")

    # 5. wrap(): route an existing torch distribution (no copy of its parameters).
    td_dist = torch.distributions.Dirichlet(torch.tensor([1.0, 2.0, 3.0]))
    backend = "numpy" if "numpy" in available else "torch"
    w = ps.wrap(td_dist, backend=backend)
    s = w.sample((2,), seed=3)
    print(f"5. wrap(Dirichlet) on {backend!r}: isinstance of torch class: "
          f"{isinstance(w, torch.distributions.Dirichlet)}; rows sum to {s.sum(-1).tolist()}")

    # 6. Not reparameterizable: a clear error naming the alternatives.
    try:
        ps.Bernoulli(0.3).rsample()
    except ps.NotReparameterizableError as exc:
        print(f"6. Bernoulli.rsample(): {type(exc).__name__}: {str(exc)[:90]}...")


if __name__ == "__main__":
    main()
