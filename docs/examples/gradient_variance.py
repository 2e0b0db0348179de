"""Estimate d/dθ E[f(x)] two ways, check both against the exact value, plot their variance.

x ~ Normal(θ, 1) on the torch backend and x ~ Gamma(θ, 1) on the numpy backend, f(x) = x².
Pathwise: rsample() and backward(). Score function: sample(), log_prob() and backward().
Run from the repository root: python docs/examples/gradient_variance.py
It writes docs/assets/generated/gradient_variance.png, the plot of docs/sampling-and-gradients.md.
"""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

import polysample as ps  # noqa: E402

THETA = 1.5
REPEATS = 400  # independent estimates per sample size: their spread is the estimator's variance
SIZES = [10, 30, 100, 300, 1000, 3000]
OUT = Path("docs/assets/generated/gradient_variance.png")


def f(x):
    return x**2


def pathwise(make, n, seed):
    theta = torch.full((REPEATS,), THETA, requires_grad=True)  # one copy of θ per repeat
    x = make(theta).rsample((n,), seed=seed)  # shape (n, REPEATS), differentiable in θ
    f(x).mean(0).sum().backward()  # theta.grad[r] = repeat r's estimate
    return theta.grad


def score_function(make, n, seed):
    theta = torch.full((REPEATS,), THETA, requires_grad=True)
    d = make(theta)
    x = d.sample((n,), seed=seed)  # no gradient flows through x
    (f(x) * d.log_prob(x)).mean(0).sum().backward()  # mean of f(x) · ∂θ log p(x; θ)
    return theta.grad


# case: (distribution of x given θ, exact d/dθ E[x²], exact variance of one pathwise and of
# one score-function term where known). E[x²] = θ² + 1 for Normal(θ, 1), θ² + θ for Gamma(θ, 1).
# Normal: Var(2x) = 4 and Var(x²(x - θ)) = θ⁴ + 14θ² + 15.
CASES = {
    "x ~ Normal(θ, 1), torch backend": (
        lambda t: ps.Normal(t, 1.0, backend="torch"), 2 * THETA, (4.0, THETA**4 + 14 * THETA**2 + 15)),
    "x ~ Gamma(θ, 1), numpy backend": (
        lambda t: ps.Gamma(t, 1.0, backend="numpy"), 2 * THETA + 1, None),
}
ESTIMATORS = {"pathwise (rsample)": pathwise, "score function (sample + log_prob)": score_function}

fig, axes = plt.subplots(1, len(CASES), figsize=(10, 4), sharey=True)
for ax, (case, (make, exact, exact_var)) in zip(axes, CASES.items()):
    per_sample_var = {}
    for label, estimator in ESTIMATORS.items():
        variances = []
        for n in SIZES:
            est = estimator(make, n, seed=n)
            # Unbiased: the mean of REPEATS estimates is within 5 standard errors of the truth.
            stderr = est.std() / REPEATS**0.5
            assert abs(est.mean() - exact) < 5 * stderr, (case, label, n, est.mean(), exact)
            variances.append(est.var().item())
        # Var of a mean of n i.i.d. terms is (variance of one term) / n.
        per_sample_var[label] = sum(v * n for v, n in zip(variances, SIZES)) / len(SIZES)
        ax.loglog(SIZES, variances, "o-", label=label)
    path, score = per_sample_var.values()
    assert path < score, (case, per_sample_var)
    if exact_var:  # measured per-term variances within 15% of the closed forms
        assert all(abs(v / e - 1) < 0.15 for v, e in zip((path, score), exact_var)), (case, exact_var)
    print(f"{case}: d/dθ E[x²] = {exact}; variance per sample: pathwise {path:.2f}, "
          f"score function {score:.2f} ({score / path:.1f}x)")
    ax.set_title(case)
    ax.set_xlabel("number of samples n")
    ax.grid(True, which="both", alpha=0.3)
axes[0].set_ylabel(f"variance of the estimate of d/dθ E[x²] at θ = {THETA}")
axes[0].legend()
fig.tight_layout()
OUT.parent.mkdir(parents=True, exist_ok=True)
fig.savefig(OUT, dpi=100)
print(f"wrote {OUT}")
