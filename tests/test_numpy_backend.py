"""The numpy backend: contract, NumPy parameterization traps, forks, implicit-gradient accuracy.

The large one-sample statistical checks against SciPy live in the conformance suite and run on
this backend too; the statistical assertions here are targeted at one translation each, with
fixed seeds and thresholds of 8 standard errors or more (false-failure probability below 1e-15
per assertion; each test states the effect it detects, which is many times larger).
"""

from __future__ import annotations

import importlib
import multiprocessing as mp
import os
import sys

import numpy as np
import pytest
import torch

import polysample as ps
from polysample.core.backend import FamilySupport
from polysample.core.errors import (
    InvalidParameterError,
    NotReparameterizableError,
    PolysampleError,
    UnsupportedFamilyError,
)
from polysample.core.families import FAMILIES

nb = importlib.import_module("polysample.backends.numpy_backend")
implicit = importlib.import_module("polysample.core.implicit")
BACKEND = ps.load_backend("numpy")

DISCRETE = {"Bernoulli", "Binomial", "Categorical", "OneHotCategorical", "Geometric",
            "NegativeBinomial", "Poisson", "Multinomial"}


def _cases() -> dict[str, dict[str, object]]:
    """Batched parameters (batch shape (2, 3) or (2,) + event) for every supported family."""
    t = torch.tensor
    c3 = t([[0.5, 1.0, 3.0], [2.0, 0.7, 10.0]])
    probs = t([[0.2, 0.5, 0.9], [0.0, 1.0, 0.3]])
    cat = t([[0.0, 0.5, 0.5, 0.0], [0.25, 0.25, 0.25, 0.25]])
    return {
        "Normal": dict(loc=t([[0.0, 1.0, -2.0], [3.0, 0.5, 0.0]]), scale=c3),
        "LogNormal": dict(loc=torch.zeros(2, 3), scale=c3 / 3),
        "HalfNormal": dict(scale=c3),
        "Uniform": dict(low=torch.zeros(2, 3), high=c3),
        "Exponential": dict(rate=c3),
        "Gamma": dict(concentration=c3, rate=c3.flip(-1)),
        "Chi2": dict(df=c3),
        "InverseGamma": dict(concentration=c3, rate=c3.flip(-1)),
        "Beta": dict(concentration1=c3, concentration0=c3.flip(-1)),
        "Dirichlet": dict(concentration=cat + 0.5),
        "StudentT": dict(df=c3, loc=torch.zeros(2, 3), scale=c3),
        "Cauchy": dict(loc=torch.zeros(2, 3), scale=c3),
        "HalfCauchy": dict(scale=c3),
        "Laplace": dict(loc=torch.zeros(2, 3), scale=c3),
        "Gumbel": dict(loc=torch.zeros(2, 3), scale=c3),
        "Weibull": dict(scale=c3, concentration=c3.flip(-1)),
        "Pareto": dict(scale=c3, alpha=c3.flip(-1)),
        "Kumaraswamy": dict(concentration1=c3, concentration0=c3.flip(-1)),
        "GeneralizedPareto": dict(loc=torch.zeros(2, 3), scale=c3,
                                  concentration=t([[-0.3, 0.0, 0.4], [0.0, 0.2, -0.1]])),
        "VonMises": dict(loc=torch.zeros(2, 3), concentration=c3),
        "FisherSnedecor": dict(df1=c3, df2=c3.flip(-1) + 1),
        "ContinuousBernoulli": dict(probs=t([[0.2, 0.5, 0.9], [0.01, 0.499, 0.7]])),
        "LogisticNormal": dict(loc=torch.zeros(2, 3), scale=torch.ones(2, 3)),
        "MultivariateNormal": dict(loc=torch.zeros(2, 3),
                                   scale_tril=t([[1.0, 0.0, 0.0], [0.5, 1.0, 0.0],
                                                 [0.1, 0.2, 2.0]])),
        "LowRankMultivariateNormal": dict(loc=torch.zeros(2, 3), cov_factor=torch.ones(3, 1),
                                          cov_diag=torch.ones(3)),
        "Wishart": dict(df=t([4.0, 7.5]), scale_tril=torch.eye(3)),
        "Bernoulli": dict(probs=probs),
        "Binomial": dict(total_count=t([[0.0, 5.0, 10.0], [3.0, 1.0, 100.0]]), probs=probs),
        "Categorical": dict(probs=cat),
        "OneHotCategorical": dict(probs=cat),
        "OneHotCategoricalStraightThrough": dict(probs=cat),
        "Geometric": dict(probs=t([[0.2, 0.5, 0.9], [0.01, 1.0, 0.3]])),
        "NegativeBinomial": dict(total_count=t([[0.0, 5.0, 10.0], [3.0, 1.0, 2.5]]),
                                 probs=t([[0.2, 0.5, 0.9], [0.0, 0.1, 0.3]])),
        "Poisson": dict(rate=t([[0.0, 1.0, 5.0], [1e3, 0.1, 30.0]])),
        "Multinomial": dict(total_count=12, probs=cat),
        "RelaxedBernoulli": dict(temperature=t(0.5), probs=probs),
        "RelaxedOneHotCategorical": dict(temperature=t(0.7), probs=cat),
    }


CASES = _cases()
SUPPORTED = sorted(BACKEND.families())


def make(family: str, dtype: torch.dtype = torch.float32, grad: bool = False):
    kwargs = {}
    for k, v in CASES[family].items():
        if isinstance(v, torch.Tensor):
            v = v.to(dtype).clone()
            if grad and v.is_floating_point():
                v.requires_grad_(True)
        kwargs[k] = v
    return getattr(ps, family)(**kwargs, backend="numpy"), kwargs


# ---------------------------------------------------------------- registration and families
def test_registered_through_plugin_hook():
    assert isinstance(BACKEND, nb.NumpyBackend)
    assert BACKEND.version() == np.__version__


def test_every_torch_family_is_supported_or_documented_as_omitted():
    fams = BACKEND.families()
    assert set(fams) | set(nb.OMITTED) == set(FAMILIES)
    assert not set(fams) & set(nb.OMITTED)
    assert set(CASES) == set(fams)


def test_log_prob_is_scored_by_torch():
    assert all(isinstance(s, FamilySupport) and s.log_prob is False
               for s in BACKEND.families().values())
    d = ps.Gamma(torch.tensor([2.0, 0.5]), torch.tensor([1.0, 3.0]), backend="numpy")
    x = d.sample((5,), seed=1)
    ref = torch.distributions.Gamma(torch.tensor([2.0, 0.5]), torch.tensor([1.0, 3.0]))
    torch.testing.assert_close(d.log_prob(x), ref.log_prob(x))


def test_rsample_flags_follow_torch_except_none():
    for name, support in BACKEND.families().items():
        assert support.rsample == FAMILIES[name].reparameterized, name


def test_omitted_family_raises_unsupported():
    d = ps.LKJCholesky(3, torch.tensor(2.0), backend="numpy")
    with pytest.raises(UnsupportedFamilyError):
        d.sample()
    with pytest.raises(UnsupportedFamilyError, match="LKJ"):
        BACKEND.sample("LKJCholesky", {"dim": 3, "concentration": torch.tensor(2.0)},
                       torch.Size(), seed=None)


@pytest.mark.parametrize("family", sorted(n for n, s in BACKEND.families().items() if not s.rsample))
def test_rsample_of_non_reparameterizable_family_raises(family):
    d, _ = make(family)
    with pytest.raises(NotReparameterizableError):
        d.rsample((2,))
    with pytest.raises(NotReparameterizableError):
        BACKEND.rsample(family, d._ps_params(), torch.Size((2,)), seed=None)


# ---------------------------------------------------------------- contract, every family
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("family", SUPPORTED)
def test_contract(family, dtype):
    d, kwargs = make(family, dtype, grad=True)
    shape = torch.Size((4, 5)) + d.batch_shape + d.event_shape
    x = d.sample((4, 5), seed=11)
    assert x.shape == shape
    assert x.dtype == (torch.int64 if family == "Categorical" else dtype)
    assert x.device == torch.device("cpu")
    assert not x.requires_grad
    assert not torch.isnan(x.double()).any()
    # same seed => same values; a SeedSequence and a torch.Generator are reproducible too
    assert torch.equal(x, d.sample((4, 5), seed=11))
    ss = np.random.SeedSequence(5)
    assert torch.equal(d.sample((3,), seed=ss), d.sample((3,), seed=ss))
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    assert torch.equal(d.sample((3,), generator=g1), d.sample((3,), generator=g2))
    # two unseeded calls differ (enough values that a tie is impossible in practice)
    big = (200,)
    assert not torch.equal(d.sample(big), d.sample(big))
    if not BACKEND.families()[family].rsample:
        return
    y = d.rsample((4, 5), seed=11)
    assert y.shape == shape and y.dtype == dtype and y.requires_grad
    assert torch.equal(y.detach(), d.rsample((4, 5), seed=11).detach())
    y.double().square().sum().backward()
    for name, v in kwargs.items():
        if isinstance(v, torch.Tensor) and v.requires_grad:
            assert v.grad is not None, name
            assert torch.isfinite(v.grad).all(), (name, v.grad)


@pytest.mark.parametrize("family", SUPPORTED)
def test_scalar_parameters_and_empty_sample_shape(family):
    # batch shape () and sample_shape (): the smallest case has no dims to permute or reshape
    kwargs = {}
    for k, v in CASES[family].items():
        kwargs[k] = v.reshape(-1, *v.shape[len(v.shape) - _event_rank(family, k):])[0] \
            if isinstance(v, torch.Tensor) and v.dim() > _event_rank(family, k) else v
    d = getattr(ps, family)(**kwargs, backend="numpy")
    assert d.batch_shape == torch.Size()
    assert d.sample(seed=1).shape == d.event_shape
    if d.has_rsample:
        assert d.rsample(seed=1).shape == d.event_shape


def _event_rank(family: str, name: str) -> int:
    """Trailing dims of a parameter that are not batch dims."""
    if name in ("scale_tril",):
        return 2
    if name == "cov_factor":
        return 2
    if name in ("loc", "cov_diag") and family in ("MultivariateNormal", "LogisticNormal",
                                                  "LowRankMultivariateNormal"):
        return 1
    if name in ("probs", "logits") and family in ("Categorical", "OneHotCategorical",
                                                  "OneHotCategoricalStraightThrough",
                                                  "Multinomial", "RelaxedOneHotCategorical"):
        return 1
    if name == "concentration" and family == "Dirichlet":
        return 1
    return 0


@pytest.mark.parametrize("family", ["Normal", "Gamma", "Uniform", "Exponential"])
def test_float32_draws_are_zero_copy(family, monkeypatch):
    seen = []
    real = torch.from_numpy

    def spy(arr):
        t = real(arr)
        seen.append((arr.dtype, t.data_ptr()))
        return t

    monkeypatch.setattr(nb.torch, "from_numpy", spy)
    d, _ = make(family)
    x = d.sample((1000,), seed=2)
    assert seen and seen[0][0] == np.float32
    assert x.data_ptr() == seen[0][1], "the NumPy buffer is returned, not a copy"


def test_global_stream_follows_manual_seed():
    d = ps.Normal(torch.zeros(3), 1.0, backend="numpy")
    ps.manual_seed(123)
    a = d.sample((10,))
    ps.manual_seed(123)
    b = d.sample((10,))
    assert torch.equal(a, b)
    gen = np.random.Generator(np.random.PCG64(ps.core.seeds.global_seed_sequence("numpy")))
    ps.manual_seed(123)
    expected = torch.from_numpy(gen.standard_normal((10, 3), dtype=np.float32))
    assert torch.equal(d.sample((10,)), expected)


# ---------------------------------------------------------------- NumPy parameterization traps
N_TRAP = 200_000


def _z(x: torch.Tensor, mean: float, var: float) -> float:
    return float((x.double().mean() - mean) / (var / x.numel()) ** 0.5)


def test_trap_geometric_counts_failures_not_trials():
    p = 0.3
    x = ps.Geometric(torch.tensor(p), backend="numpy").sample((N_TRAP,), seed=1)
    assert x.min() == 0  # NumPy's trial count starts at 1
    # torch mean (1-p)/p = 2.33; NumPy's trials would give 1/p = 3.33 (an offset of 190 s.e.)
    assert abs(_z(x, (1 - p) / p, (1 - p) / p**2)) < 8


def test_trap_negative_binomial_uses_one_minus_p():
    n, p = 4.0, 0.8
    x = ps.NegativeBinomial(torch.tensor(n), torch.tensor(p), backend="numpy").sample(
        (N_TRAP,), seed=2)
    # torch: successes before n failures, mean n p / (1 - p) = 16; NumPy's n(1-p)/p = 1.
    assert abs(_z(x, n * p / (1 - p), n * p / (1 - p) ** 2)) < 8


def test_trap_pareto_is_type_one_not_lomax():
    scale, alpha = 2.0, 5.0
    x = ps.Pareto(torch.tensor(scale), torch.tensor(alpha), backend="numpy").sample(
        (N_TRAP,), seed=3)
    assert x.min() >= scale  # Lomax * scale would start at 0
    mean = alpha * scale / (alpha - 1)
    var = scale**2 * alpha / ((alpha - 1) ** 2 * (alpha - 2))
    assert abs(_z(x, mean, var)) < 8
    r = ps.Pareto(torch.tensor(scale), torch.tensor(alpha), backend="numpy").rsample(
        (N_TRAP,), seed=3)
    assert r.min() >= scale and abs(_z(r, mean, var)) < 8


@pytest.mark.parametrize("method", ["sample", "rsample"])
def test_trap_gamma_rate_is_not_numpy_scale(method):
    k, rate = 3.0, 4.0
    d = ps.Gamma(torch.tensor(k), torch.tensor(rate), backend="numpy")
    x = getattr(d, method)((N_TRAP,), seed=4)
    # scale=rate would give mean 12 instead of 0.75
    assert abs(_z(x, k / rate, k / rate**2)) < 8


@pytest.mark.parametrize("method", ["sample", "rsample"])
def test_trap_weibull_scale_multiplies_numpys_one_parameter_draw(method):
    import math

    scale, k = 10.0, 2.0
    d = ps.Weibull(torch.tensor(scale), torch.tensor(k), backend="numpy")
    x = getattr(d, method)((N_TRAP,), seed=5)
    mean = scale * math.gamma(1 + 1 / k)
    var = scale**2 * (math.gamma(1 + 2 / k) - math.gamma(1 + 1 / k) ** 2)
    assert abs(_z(x, mean, var)) < 8


@pytest.mark.parametrize("method", ["sample", "rsample"])
def test_trap_chi2_is_gamma_half_df_rate_half(method):
    df = 3.0
    x = getattr(ps.Chi2(torch.tensor(df), backend="numpy"), method)((N_TRAP,), seed=6)
    assert abs(_z(x, df, 2 * df)) < 8


@pytest.mark.parametrize("family", ["Beta", "Poisson", "StudentT", "Gamma", "Normal", "Binomial"])
def test_trap_float64_parameters_give_full_float64_values(family):
    d, _ = make(family, torch.float64)
    x = d.sample((2000,), seed=7)
    assert x.dtype == torch.float64
    if family in ("Poisson", "Binomial"):
        return  # integer counts are exact in either precision
    # float64 draws are not float32 values cast up (which NumPy's defaults would invite)
    frac = (x.float().double() != x).double().mean()
    assert frac > 0.99


def test_trap_float32_parameters_give_float32():
    for family in ("Beta", "Poisson", "Cauchy", "Geometric"):
        d, _ = make(family, torch.float32)
        assert d.sample((3,), seed=1).dtype == torch.float32


# ---------------------------------------------------------------- edge parameters
def test_probabilities_exactly_zero_and_one():
    p = torch.tensor([0.0, 1.0])
    assert torch.equal(ps.Bernoulli(p, backend="numpy").sample((1000,), seed=1),
                       p.expand(1000, 2))
    b = ps.Binomial(torch.tensor([7.0, 7.0]), p, backend="numpy").sample((1000,), seed=1)
    assert torch.equal(b, torch.tensor([0.0, 7.0]).expand(1000, 2))
    g = ps.Geometric(torch.tensor([1.0]), backend="numpy").sample((100,), seed=1)
    assert torch.equal(g, torch.zeros(100, 1))
    nbin = ps.NegativeBinomial(torch.tensor([3.0]), torch.tensor([0.0]),
                               backend="numpy").sample((100,), seed=1)
    assert torch.equal(nbin, torch.zeros(100, 1))
    cat = ps.Categorical(torch.tensor([0.0, 0.3, 0.0, 0.7, 0.0]), backend="numpy")
    idx = cat.sample((20_000,), seed=1)
    assert set(idx.unique().tolist()) == {1, 3}
    oh = ps.OneHotCategorical(torch.tensor([[1.0, 0.0, 0.0]]), backend="numpy")
    assert torch.equal(oh.sample((50,), seed=1), torch.tensor([1.0, 0.0, 0.0]).expand(50, 1, 3))
    m = ps.Multinomial(10, torch.tensor([0.0, 1.0, 0.0]), backend="numpy").sample((50,), seed=1)
    assert torch.equal(m, torch.tensor([0.0, 10.0, 0.0]).expand(50, 3))
    rb = ps.RelaxedBernoulli(torch.tensor(0.1), probs=p, backend="numpy").rsample((100,), seed=1)
    assert torch.isfinite(rb).all() and (rb > 0).all() and (rb < 1).all()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("family,params", [
    ("Gamma", dict(concentration=[1e-3, 1e-2, 1e4, 1e8], rate=[1.0, 1e-3, 1.0, 1e3])),
    ("Chi2", dict(df=[1e-3, 1e-2, 1e4, 1e8])),
    ("InverseGamma", dict(concentration=[1e-2, 0.1, 1e4, 1e8], rate=[1.0, 1.0, 1.0, 1.0])),
    ("Beta", dict(concentration1=[1e-3, 1e-2, 1e4, 1e6], concentration0=[1e-3, 1e5, 1e-2, 1e6])),
    ("Dirichlet", dict(concentration=[[1e-3, 1e-3, 1e-3, 1e-3], [1e-2, 30.0, 1e4, 1e6]])),
    ("StudentT", dict(df=[1e-2, 0.5, 1e4, 1e8], loc=[0.0] * 4, scale=[1.0] * 4)),
    # (heavy tails: parameters whose draws stay finite; an inf draw makes 0 * inf in any chain)
    ("FisherSnedecor", dict(df1=[1e-2, 1.0, 1e4, 1e8], df2=[1e8, 1.0, 1e4, 0.5])),
])
def test_extreme_concentrations_are_finite_with_finite_gradients(family, params, dtype):
    kwargs = {k: torch.tensor(v, dtype=dtype, requires_grad=True) for k, v in params.items()}
    d = getattr(ps, family)(**kwargs, backend="numpy")
    x = d.sample((500,), seed=8)
    assert not torch.isnan(x).any()
    y = d.rsample((500,), seed=8)
    assert not torch.isnan(y).any()
    assert torch.isfinite(y).all() or family in ("InverseGamma", "StudentT", "FisherSnedecor")
    if family in ("Gamma", "Beta", "Dirichlet"):
        assert torch.isfinite(y).all() and (y > 0).all()
    # Values beyond 1e30 are left out of the loss (their gradients multiply a zero cotangent,
    # which must still not make NaN): StudentT(0.01) in float32 draws +-3.4e38 for 40% of its
    # values, and 500 per-draw derivatives of that size (d y / d scale = y) overflow the sum.
    torch.where(torch.isfinite(y) & (y.abs() < 1e30), y, 0).sum().backward()
    for k, v in kwargs.items():
        assert v.grad is not None and not torch.isnan(v.grad).any(), k


def test_numpy_exceptions_are_wrapped():
    # A negative rate, handed to the backend directly (the core refuses it): NumPy raises.
    # (Large rates, 1e30, are drawn since issue 12: tests/test_reliability.py.)
    with pytest.raises(InvalidParameterError, match="NumPy could not draw Poisson") as info:
        BACKEND.sample("Poisson", {"rate": torch.tensor([-1.0])}, torch.Size((2,)), seed=None)
    assert isinstance(info.value, PolysampleError)
    assert isinstance(info.value.__cause__, ValueError)


def test_sample_is_detached_even_outside_no_grad():
    loc = torch.zeros(3, requires_grad=True)
    params = {"loc": loc, "scale": torch.ones(3)}
    out = BACKEND.sample("Normal", params, torch.Size((2,)), seed=None)
    assert not out.requires_grad


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("family", ["Normal", "Gamma", "Beta", "Dirichlet", "Poisson",
                                    "Categorical", "MultivariateNormal", "Wishart"])
def test_parameters_on_cuda(family):
    d, kwargs = make(family, grad=True)
    kwargs = {k: (v.detach().cuda().requires_grad_(v.requires_grad)
                  if isinstance(v, torch.Tensor) else v) for k, v in kwargs.items()}
    d = getattr(ps, family)(**kwargs, backend="numpy")
    x = d.sample((7,), seed=1)
    assert x.device.type == "cuda"
    assert torch.equal(x.cpu(), make(family)[0].sample((7,), seed=1))
    if d.has_rsample:
        y = d.rsample((7,), seed=1)
        assert y.device.type == "cuda"
        y.sum().backward()


# ---------------------------------------------------------------- forked processes
def _child_draw(queue):
    d = ps.Normal(torch.zeros(4), 1.0, backend="numpy")
    queue.put((d.sample((8,)).tolist(), d.sample((2,), seed=99).tolist()))


@pytest.mark.skipif(not hasattr(os, "fork") or sys.platform == "darwin", reason="needs fork")
def test_forked_processes_do_not_repeat_streams():
    ps.manual_seed(2024)
    d = ps.Normal(torch.zeros(4), 1.0, backend="numpy")
    d.sample((3,))  # the parent's stream exists before the fork
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_child_draw, args=(queue,)) for _ in range(3)]
    for p in procs:
        p.start()
    results = [queue.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    parent = d.sample((8,)).tolist()
    streams = [r[0] for r in results] + [parent]
    assert len({str(s) for s in streams}) == 4, "two processes drew the same values"
    seeded = {str(r[1]) for r in results} | {str(d.sample((2,), seed=99).tolist())}
    assert len(seeded) == 1, "seed= must give the same values in every process"


class _DrawDataset(torch.utils.data.Dataset):
    def __len__(self):
        return 4

    def __getitem__(self, i):
        return ps.Normal(torch.zeros(3), 1.0, backend="numpy").sample((5,))


@pytest.mark.skipif(not hasattr(os, "fork") or sys.platform == "darwin", reason="needs fork")
def test_dataloader_workers_do_not_repeat_streams():
    ps.manual_seed(7)
    loader = torch.utils.data.DataLoader(_DrawDataset(), batch_size=1, num_workers=2,
                                         multiprocessing_context="fork")
    batches = [b[0] for b in loader]
    # worker 0 serves items 0 and 2, worker 1 items 1 and 3: items 0 and 1 are each worker's
    # first draw, which would be identical if the workers shared the parent's stream.
    flat = {str(b.tolist()) for b in batches}
    assert len(flat) == 4
    assert not torch.equal(batches[0], batches[1])


# ---------------------------------------------------------------- implicit gradient accuracy
# Per-sample CDF identity dz/dθ = -(∂F/∂θ)(z; θ) / p(z; θ), ∂F/∂θ by a central difference of
# SciPy's CDF with a small step (3e-5·θ/(1+√θ): truncation and round-off both below 1e-7), on
# the smaller tail. No sampling noise: the gradients are compared value by value.
CONC = [1e-2, 3e-2, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0, 1e3, 1e4]


def _rel_err(got: np.ndarray, ref: np.ndarray) -> float:
    ok = np.isfinite(ref) & (ref != 0)
    assert ok.mean() > 0.95
    return float(np.max(np.abs(got[ok] - ref[ok]) / np.abs(ref[ok])))


def _scipy_gamma_dz(z: np.ndarray, a: np.ndarray) -> np.ndarray:
    sp = pytest.importorskip("scipy.special")
    st = pytest.importorskip("scipy.stats")
    eps = 3e-5 * a / (1 + np.sqrt(a))
    lower = z < a
    d_f = np.where(lower, sp.gammainc(a + eps, z) - sp.gammainc(a - eps, z),
                   sp.gammaincc(a - eps, z) - sp.gammaincc(a + eps, z)) / (2 * eps)
    return -d_f / st.gamma.pdf(z, a)


def _scipy_beta_dx(x: np.ndarray, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    sp = pytest.importorskip("scipy.special")
    st = pytest.importorskip("scipy.stats")
    ea, eb = 3e-5 * a / (1 + np.sqrt(a)), 3e-5 * b / (1 + np.sqrt(b))
    pdf = st.beta.pdf(x, a, b)
    lower = x < a / (a + b)

    def d(fp, fm, gp, gm, e):
        # the upper tail through the complement, so that no difference cancels against 1
        return np.where(lower, fp - fm, gm - gp) / (2 * e)

    da = d(sp.betainc(a + ea, b, x), sp.betainc(a - ea, b, x),
           sp.betaincc(a + ea, b, x), sp.betaincc(a - ea, b, x), ea)
    db = d(sp.betainc(a, b + eb, x), sp.betainc(a, b - eb, x),
           sp.betaincc(a, b + eb, x), sp.betaincc(a, b - eb, x), eb)
    return -da / pdf, -db / pdf


def _per_sample_grad(family, kwargs, wrt, dtype=torch.float64):
    params = {k: torch.tensor(v, dtype=dtype, requires_grad=(k == wrt)) for k, v in kwargs.items()}
    x = getattr(ps, family)(**params, backend="numpy").rsample(seed=31)
    # each batch element is one sample with its own parameter: grad of the sum is per sample
    x.sum().backward()
    return x.detach().numpy(), params[wrt].grad.numpy()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
def test_gamma_implicit_gradient_accuracy(dtype):
    a = np.repeat(CONC, 20)
    rate = np.full_like(a, 2.5)
    x, g = _per_sample_grad("Gamma", dict(concentration=a, rate=rate), "concentration", dtype)
    # Draws below the smallest normal float are clamped to it (as torch does); the value returned
    # there is not the one drawn, so the identity is checked on the others (all of f64's).
    drawn = x > torch.finfo(dtype).tiny
    z = x[drawn].astype(np.float64) * rate[drawn]  # the standard Gamma draw
    ref = _scipy_gamma_dz(z, a[drawn]) / rate[drawn]
    assert drawn.sum() > 0.9 * x.size
    assert _rel_err(g[drawn].astype(np.float64), ref) <= (5e-4 if dtype == torch.float32 else 1e-6)


def test_chi2_implicit_gradient_accuracy():
    df = np.repeat(np.array(CONC) * 2, 20)
    x, g = _per_sample_grad("Chi2", dict(df=df), "df")
    ref = _scipy_gamma_dz(x / 2, df / 2)  # x = 2 Gamma(df/2): dx/d(df) = dz/da
    assert _rel_err(g, ref) <= 1e-6


def test_inverse_gamma_gradient_follows_from_gamma():
    a = np.repeat([0.1, 1.0, 10.0, 1e3], 10)
    x, g = _per_sample_grad("InverseGamma", dict(concentration=a, rate=np.ones_like(a)),
                            "concentration")
    ref = -_scipy_gamma_dz(1 / x, a) * x**2
    assert _rel_err(g, ref) <= 1e-6



@pytest.mark.parametrize("shape", [1e10, 1e12])
def test_gamma_implicit_gradient_at_large_concentrations(shape):
    # Against the normal limit dz/da = (z + a) / (2a), exact to O(1/a) (1e-10 here). With
    # lgamma's cancellation in the density the error was 4.3e-5 at 1e10 and 6e-3 at 1e12.
    one = torch.ones((), dtype=torch.float64)
    a = torch.full((400,), shape, dtype=torch.float64, requires_grad=True)  # exact path
    z = ps.Gamma(a, one, backend="numpy").rsample(seed=2)
    (got,) = torch.autograd.grad(z.sum(), a)
    ref = (z.detach() + shape) / (2 * shape)
    assert float(((got - ref) / ref).abs().max()) <= 1e-5
    a = torch.tensor(shape, dtype=torch.float64, requires_grad=True)  # tabulated path
    z = ps.Gamma(a, one, backend="numpy").rsample((40_000,), seed=2)
    (got,) = torch.autograd.grad(z.sum(), a)
    ref = float(((z.detach() + shape) / (2 * shape)).sum())
    assert abs(float(got) - ref) / ref <= 1e-6

BETA_GRID = [1e-2, 0.1, 1.0, 10.0, 1e2, 1e3, 1e4]


def test_beta_implicit_gradient_accuracy():
    a, b = (np.repeat(v.ravel(), 6) for v in np.meshgrid(BETA_GRID, BETA_GRID))
    params = {"concentration1": torch.tensor(a, requires_grad=True),
              "concentration0": torch.tensor(b, requires_grad=True)}
    x = ps.Beta(**params, backend="numpy").rsample(seed=5)
    x.sum().backward()
    xs = x.detach().numpy()
    ref_a, ref_b = _scipy_beta_dx(xs, a, b)
    assert _rel_err(params["concentration1"].grad.numpy(), ref_a) <= 1e-3
    assert _rel_err(params["concentration0"].grad.numpy(), ref_b) <= 1e-3



def test_beta_implicit_gradient_at_large_shapes_matches_the_closed_form():
    # Beta(a, 1) is U^(1/a): dx/da = -x log(x) / a exactly. Before log B(a, b) was taken from
    # Stirling's series and the better conditioned tail differenced, the median error was 0.9%
    # at 1e6 and 125% at 1e8, and draws below the mean were off by up to 96% at 1e8. (dx/db is
    # the same function with the shapes exchanged; its closed form at moderate shapes is
    # checked above. Each direction costs seconds here: the continued fractions converge slowly.)
    shape = 1e8
    big = torch.full((50,), shape, dtype=torch.float64, requires_grad=True)
    x = ps.Beta(big, torch.ones((), dtype=torch.float64), backend="numpy").rsample(seed=3)
    (got,) = torch.autograd.grad(x.sum(), big)
    xs = x.detach().numpy()
    ref = -xs * np.log(xs) / shape
    rel = np.abs(got.numpy() - ref) / np.abs(ref)
    assert np.median(rel) <= 1e-6 and rel.max() <= 1e-3, (np.median(rel), rel.max())

def test_dirichlet_implicit_gradient_matches_marginal_beta_identity():
    rng = np.random.default_rng(0)
    alpha = np.exp(rng.uniform(np.log(1e-2), np.log(1e4), size=(60, 3)))
    conc = torch.tensor(alpha, requires_grad=True)
    x = ps.Dirichlet(conc, backend="numpy").rsample(seed=9)
    xs = x.detach().numpy()
    for i in range(3):
        # dx_i/dα_i: x_i is Beta(α_i, Σ_{j≠i} α_j) and the second shape does not move
        conc.grad = None
        x[:, i].sum().backward(retain_graph=True)
        rest = alpha.sum(1) - alpha[:, i]
        ref, _ = _scipy_beta_dx(xs[:, i], alpha[:, i], rest)
        assert _rel_err(conc.grad[:, i].numpy(), ref) <= 1e-3
        # the other components absorb the change: the simplex is preserved
        conc.grad = None
        x.sum(-1).sum().backward(retain_graph=True)
        assert np.abs(conc.grad.numpy()).max() < 1e-8


def test_betainc_matches_scipy():
    sp = pytest.importorskip("scipy.special")
    rng = np.random.default_rng(3)
    a = np.exp(rng.uniform(-4, 9, 400))
    b = np.exp(rng.uniform(-4, 9, 400))
    x = rng.beta(a, b).clip(1e-300, 1 - 1e-16)
    got = nb.betainc(torch.tensor(x), torch.tensor(a), torch.tensor(b)).numpy()
    np.testing.assert_allclose(got, sp.betainc(a, b, x), rtol=1e-8, atol=1e-300)


# ---------------------------------------------------------------- pathwise gradients, explicit
def test_location_scale_gradients_are_the_noise():
    loc = torch.tensor(1.0, requires_grad=True)
    scale = torch.tensor(2.0, requires_grad=True)
    x = ps.Normal(loc, scale, backend="numpy").rsample((1000,), seed=4)
    x.sum().backward()
    eps = (x.detach() - 1.0) / 2.0
    assert loc.grad == 1000
    torch.testing.assert_close(scale.grad, eps.sum())


def test_straight_through_gradient_is_the_identity_on_probs():
    probs = torch.tensor([0.2, 0.3, 0.5], requires_grad=True)
    x = ps.OneHotCategoricalStraightThrough(probs, backend="numpy").rsample((4,), seed=1)
    assert set(x.detach().sum(-1).tolist()) == {1.0}
    (x * torch.tensor([1.0, 2.0, 3.0])).sum().backward()
    # probs are normalized by torch, so the gradient is projected to sum zero
    assert probs.grad is not None and torch.isfinite(probs.grad).all()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
def test_gamma_gradient_table_matches_exact_derivative(dtype):
    # Many draws sharing few concentrations take the tabulated path (8 draws per node or more);
    # it must agree with the exact per-draw derivative. The worst case is a tiny concentration
    # in float64, whose log z spans about 700 (measured 4e-6); elsewhere it is below 1e-6.
    rng = np.random.default_rng(12)
    np_dtype = np.float32 if dtype == torch.float32 else np.float64
    alpha = torch.tensor([1e-3, 0.3, 2.0, 1e4], dtype=dtype)
    n = implicit._TABLE_NODES * 8
    z = torch.from_numpy(rng.standard_gamma(alpha.numpy(), (n, 4)).astype(np_dtype))
    z = z.clamp(min=torch.finfo(dtype).tiny)
    for log in (False, True):
        tab = nb.standard_gamma_dz_dalpha(z, alpha, log=log, dtype=torch.float64)
        exact = implicit._gamma_dz_exact(z.double(), alpha.double().expand(z.shape), log)
        rel = ((tab - exact).abs() / exact.abs()).max()
        assert rel < (1e-5 if dtype == torch.float64 else 2e-5), (log, float(rel))


def test_gamma_rsample_gradient_on_the_table_path_is_the_sum_of_exact_ones():
    conc = torch.tensor(2.0, dtype=torch.float64, requires_grad=True)
    x = ps.Gamma(conc, torch.tensor(1.0, dtype=torch.float64), backend="numpy").rsample(
        (implicit._TABLE_NODES * 8,), seed=3)
    x.sum().backward()
    exact = implicit._gamma_dz_exact(x.detach(), torch.full_like(x, 2.0), False).sum()
    torch.testing.assert_close(conc.grad, exact, rtol=1e-7, atol=0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
def test_beta_values_stay_strictly_inside_the_unit_interval(dtype):
    # Beta(2, 0.01) puts nearly all its mass within 1e-30 of 1, which rounds to 1.0
    d = ps.Beta(torch.tensor(2.0, dtype=dtype), torch.tensor(0.01, dtype=dtype), backend="numpy")
    x = d.sample((1000,), seed=1)
    assert (x < 1).all() and (x > 0).all()
    assert torch.isfinite(d.log_prob(x)).all()


def test_dirichlet_small_concentrations_do_not_flush_components_to_zero():
    # Marginal Beta(0.01, 0.02): P(x < 1e-300) = 6.7e-4 (SciPy). Stick breaking with NumPy's
    # beta (and NumPy's own dirichlet) returns exactly 0 in about 45% of draws.
    conc = torch.full((3,), 0.01, dtype=torch.float64)
    x = ps.Dirichlet(conc, backend="numpy").sample((100_000,), seed=1)
    frac = (x[:, 2] < 1e-300).double().mean().item()
    assert frac < 2e-3  # expected 67 of 1e5 (s.d. 8); 200 is 16 s.d. away
    torch.testing.assert_close(x.sum(-1), torch.ones(100_000, dtype=torch.float64))


@pytest.mark.parametrize("family", ["RelaxedOneHotCategorical", "RelaxedBernoulli"])
def test_float32_relaxed_draws_reach_below_eps_and_stay_inside_the_unit_interval(family):
    # The components were held at float32 eps (1.2e-7), which cut the law's log-ratio tails:
    # at temperature 0.5, about 3.5e-4 of the draws have a component below it. They are held
    # at the smallest normal float only (torch's own sampler, in log space, reaches 1e-38).
    logits = torch.zeros(3 if family == "RelaxedOneHotCategorical" else 1)
    if family == "RelaxedBernoulli":
        logits = logits[0]
    d = getattr(ps, family)(torch.tensor(0.5), logits=logits, backend="numpy")
    x = d.rsample((100_000,), seed=3)
    tiny, eps = torch.finfo(torch.float32).tiny, torch.finfo(torch.float32).eps
    assert x.dtype == torch.float32 and bool(torch.isfinite(x).all())
    assert x.min() >= tiny and x.max() <= 1 - eps
    assert int((x < eps).sum()) > 10
