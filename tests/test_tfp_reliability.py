"""Issue 12, the TFP backend's own items: each test fails without its fix, on tfp and tfp-tf.

Kept small: one compiled program or two per test (JAX compiles in 0.05-2 s each); the 1e7
draws are only where a rare event is the point (zero-probability Bernoulli outcomes).
"""

from __future__ import annotations

import math
import os
import select
import time

import pytest
import torch

import polysample as ps
from conftest import AVAILABLE

TFP_BACKENDS = [pytest.param(b, marks=pytest.mark.skipif(
    b not in AVAILABLE, reason=f"backend {b!r} is not available here")) for b in ("tfp", "tfp-tf")]
pytestmark = [pytest.mark.parametrize("backend", TFP_BACKENDS)]


# ---- item 1: outcomes of probability exactly 0
def test_categorical_never_draws_a_category_of_probability_zero(backend: str) -> None:
    p = torch.zeros(100_000)
    p[0] = 1.0
    x = ps.Categorical(probs=p, backend=backend).sample((2000,), seed=0)
    assert x.dtype == torch.int64 and (x == 0).all()  # before: indices drawn from the zeros
    q = torch.tensor([[0.0, 0.5, 0.0, 0.5, 0.0], [0.0, 0.0, 0.0, 0.0, 1.0]])
    y = ps.Categorical(probs=q, backend=backend).sample((5000,), seed=1)
    assert y.shape == (5000, 2)
    assert ((y[:, 0] == 1) | (y[:, 0] == 3)).all() and (y[:, 1] == 4).all()
    assert 0.45 < float((y[:, 0] == 1).double().mean()) < 0.55


def test_one_hot_categorical_never_draws_a_category_of_probability_zero(backend: str) -> None:
    # A smoke test: it shares Categorical's inversion (tested above); catching the clamped
    # logits' 1e-7 here would need 1e8 one-hot values.
    x = ps.OneHotCategorical(probs=torch.tensor([0.0, 1.0, 0.0]), backend=backend).sample(
        (1000,), seed=0)
    assert (x[:, 1] == 1).all() and (x.sum(-1) == 1).all()


@pytest.mark.parametrize("p,impossible", [(0.0, 1.0), (1.0, 0.0)])
def test_bernoulli_of_probability_zero_or_one_is_constant(backend: str, p: float,
                                                          impossible: float) -> None:
    d = ps.Bernoulli(probs=torch.tensor(p), backend=backend)
    x = d.sample((10_000_000,), seed=3)  # tfp drew 2 ones in 1e7 from probs=0
    assert not (x == impossible).any()


def test_multinomial_puts_no_counts_on_cells_of_probability_zero(backend: str) -> None:
    x = ps.Multinomial(10**6, probs=torch.tensor([1.0, 0.0, 0.0]), backend=backend).sample(
        (20,), seed=0)
    assert (x[:, 0] == 10**6).all() and (x[:, 1:] == 0).all()  # tfp-tf: counts on zeros


def test_binomial_of_probability_zero_or_one(backend: str) -> None:
    d = ps.Binomial(torch.tensor(5.0), probs=torch.tensor([0.0, 1.0]), backend=backend)
    x = d.sample((100_000,), seed=0)
    assert (x[:, 0] == 0).all() and (x[:, 1] == 5).all()
    # clamped logits gave probability 1.2e-7 per trial: about 1.2 nonzero counts in 2e6
    # draws (test_reliability.py draws 1e7; 1e7 in float64 take 14 s on JAX here)
    y = ps.Binomial(torch.tensor(5.0), probs=torch.tensor(0.0), backend=backend).sample(
        (2_000_000,), seed=1)
    assert not y.any()


# ---- item 2: support edges
def test_gamma_with_a_tiny_concentration_draws_no_zeros(backend: str) -> None:
    d = ps.Gamma(torch.tensor(1e-3), torch.tensor(1.0), backend=backend)
    x = d.sample((20_000,), seed=0)
    assert (x > 0).all()  # before: 92% exact zeros in float32
    assert torch.isfinite(d.log_prob(x)).all()


def test_gamma_rsample_clamped_keeps_its_gradient(backend: str) -> None:
    # The clamp is straight-through: the pathwise gradient is TFP's own. (TFP's gradient at
    # a draw that underflowed to exactly 0 is NaN, clamped or not: small enough here.)
    a = torch.tensor(0.5, requires_grad=True)
    d = ps.Gamma(a, torch.tensor(1.0), backend=backend)
    x = d.rsample((1000,), seed=0)
    assert (x > 0).all() and x.requires_grad
    x.sum().backward()
    assert a.grad is not None and torch.isfinite(a.grad) and a.grad > 0
    b = torch.tensor(1e-3, requires_grad=True)
    y = ps.Gamma(b, torch.tensor(1.0), backend=backend).rsample((1000,), seed=0)
    assert (y > 0).all()


def test_beta_with_tiny_concentrations_stays_inside_zero_one(backend: str) -> None:
    d = ps.Beta(torch.tensor(0.01), torch.tensor(0.01), backend=backend)
    x = d.sample((20_000,), seed=0)
    assert (x > 0).all() and (x < 1).all()  # before: exact 0 and 1 (about 60%)
    assert torch.isfinite(d.log_prob(x)).all()


def test_dirichlet_rows_are_on_the_simplex_for_log_prob(backend: str) -> None:
    d = ps.Dirichlet(torch.full((4,), 1e-3), backend=backend)
    x = d.sample((20_000,), seed=0)
    assert (x > 0).all()
    lp = d.log_prob(x)  # before: rows off by 6e-5, refused by torch's simplex check
    assert not torch.isnan(lp).any() and not torch.isinf(lp).any()


def test_dirichlet_rsample_keeps_its_gradient(backend: str) -> None:
    c = torch.tensor([0.5, 1.0, 2.0], requires_grad=True)
    x = ps.Dirichlet(c, backend=backend).rsample((64,), seed=0)
    (x[:, 0] * 3.0).sum().backward()
    assert c.grad is not None and torch.isfinite(c.grad).all() and (c.grad != 0).any()


# ---- item 3: Binomial with a billion trials in float32
def test_float32_binomial_with_a_billion_trials(backend: str) -> None:
    n = 1 << 15
    x = ps.Binomial(torch.tensor(1e9), torch.tensor(0.3), backend=backend).sample(
        (n,), seed=3)
    assert x.dtype == torch.float32
    x = x.double()
    var = 1e9 * 0.3 * 0.7
    z = (float(x.mean()) - 3e8) / math.sqrt(var / n)
    assert abs(z) < 5, z  # before (tfp): 9 standard errors off
    ratio = float(((x - 3e8) ** 2).mean()) / var
    assert abs(ratio - 1) < 6 * math.sqrt(2 / n), ratio  # before: 1.27


# ---- item 4: Categorical memory
def test_categorical_draws_in_memory_of_draws_plus_categories(backend: str) -> None:
    k, n = 100_000, 200_000  # before: 2e10 Gumbel values asked of XLA (320 GB)
    p = torch.full((k,), 1.0 / k, dtype=torch.float64)
    x = ps.Categorical(probs=p, backend=backend).sample((n,), seed=0)
    assert x.shape == (n,) and x.min() >= 0 and x.max() < k
    assert abs(float(x.double().mean()) - (k - 1) / 2) < 5 * k / math.sqrt(12 * n)


def test_categorical_tails_are_drawn_in_float64(backend: str) -> None:
    k, n = 100_000, 1 << 17
    p = torch.full((k,), 1e-7)
    p[0] = 1 - 1e-7 * (k - 1)
    x = ps.Categorical(probs=p, backend=backend).sample((n,), seed=12)
    tail = 1 - float(p.double()[0] / p.double().sum())
    z = (float((x != 0).double().mean()) - tail) / math.sqrt(tail * (1 - tail) / n)
    assert abs(z) < 5, z


def test_an_allocation_failure_is_sample_too_large(backend: str) -> None:
    from polysample.backends.tfp.backend import _wrap

    class XlaRuntimeError(RuntimeError):
        pass

    exc = XlaRuntimeError("RESOURCE_EXHAUSTED: Out of memory allocating 343597383680 bytes.")
    err = _wrap(exc, "Categorical", "sample", "jax")
    assert isinstance(err, ps.SampleTooLargeError) and isinstance(err, MemoryError)
    assert "bug in the tfp backend" not in str(err)


# ---- item 5: a fork of a process that started the substrate
@pytest.mark.filterwarnings("ignore:os.fork")
def test_a_forked_child_raises_instead_of_hanging(backend: str) -> None:
    ps.Normal(0.0, 1.0, backend=backend).sample(seed=0)  # the substrate starts here
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.close(read)
        try:
            ps.Normal(0.0, 1.0, backend=backend).sample(seed=0)
            msg = b"drew"
        except ps.BackendUnavailableError as exc:
            msg = b"ok" if "spawn" in str(exc) else b"no spawn advice"
        except BaseException as exc:  # noqa: BLE001
            msg = type(exc).__name__.encode()
        os.write(write, msg)
        os._exit(0)
    os.close(write)
    try:
        ready, _, _ = select.select([read], [], [], 60)
        answer = os.read(read, 100) if ready else b"hung"
    finally:
        os.close(read)
        if not ready:
            os.kill(pid, 9)
        os.waitpid(pid, 0)
    assert answer == b"ok"


# ---- item 6: the caller's problems named as theirs
@pytest.mark.parametrize("loc,scale", [(torch.float64, torch.float32),
                                       (torch.float32, torch.float64)])
def test_mixed_float_dtypes_draw_as_on_torch(backend: str, loc: torch.dtype,
                                             scale: torch.dtype) -> None:
    d = ps.Normal(torch.tensor([0.0, 10.0], dtype=loc), torch.tensor(1.0, dtype=scale),
                  backend=backend)
    want = ps.Normal(torch.tensor([0.0, 10.0], dtype=loc), torch.tensor(1.0, dtype=scale),
                     backend="torch").sample((3,)).dtype
    x = d.sample((1000,), seed=0)
    assert x.dtype == want and x.shape == (1000, 2)
    assert abs(float(x[:, 1].mean()) - 10) < 0.2
    r = d.rsample((4,), seed=0)
    assert r.dtype == want


def test_integer_parameters_draw(backend: str) -> None:
    x = ps.Normal(torch.tensor(0), torch.tensor(1), backend=backend).sample((5,), seed=0)
    assert x.dtype == torch.get_default_dtype() and torch.isfinite(x).all()


def test_a_draw_beyond_int32_elements_is_refused_before_drawing(backend: str) -> None:
    if backend == "tfp":
        pytest.skip("JAX indexes shapes in int64")
    d = ps.Bernoulli(probs=torch.tensor(0.5), backend=backend)
    t = time.perf_counter()
    # 2**32 values (before, "Dimension ... must be >= 0"); 16 GiB of float32, which the core
    # refuses first where less memory than that is available now
    with pytest.raises(ps.SampleTooLargeError, match="int32|memory available"):
        d.sample((1 << 16, 1 << 16))
    assert time.perf_counter() - t < 5


# ---- item 7: log_prob promotes as torch does
def test_log_prob_of_a_float64_value_is_float64(backend: str) -> None:
    d = ps.Normal(torch.tensor(0.0), torch.tensor(1.0), backend=backend)
    value = torch.tensor([0.5, 1e-10], dtype=torch.float64)
    lp = d.log_prob(value)
    want = torch.distributions.Normal(torch.tensor(0.0), torch.tensor(1.0)).log_prob(value)
    assert lp.dtype == want.dtype == torch.float64
    assert torch.allclose(lp, want)


# ---- item 8: a non-integer total_count without validation
def test_binomial_non_integer_count_is_truncated_as_torch_does(backend: str) -> None:
    d = ps.Binomial(torch.tensor(2.5), torch.tensor(0.5), validate_args=False, backend=backend)
    x = d.sample((20_000,), seed=0)
    # torch.binomial draws from floor(total_count): whole counts in 0..2, mean 1
    assert (x == x.round()).all() and x.min() >= 0 and x.max() <= 2
    assert abs(float(x.mean()) - 1.0) < 0.05


# ---- item 9: integer probabilities
def test_bernoulli_with_integer_probs_draws_as_on_torch(backend: str) -> None:
    d = ps.Bernoulli(probs=torch.tensor([0, 1]), backend=backend)
    x = d.sample((1000,), seed=0)
    assert x.dtype == torch.get_default_dtype()
    assert (x[:, 0] == 0).all() and (x[:, 1] == 1).all()
