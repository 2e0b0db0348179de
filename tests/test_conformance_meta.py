"""Meta-tests: the conformance suite's own statistics, references and error budget."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

import polysample as ps
from polysample.conformance import check_backend, design_assertions, plan
from polysample.conformance.cases import CASES, projections, sample_size
from polysample.conformance.layers.sampler import INDEPENDENCE_ROWS
from polysample.conformance.runner import Runner
from polysample.conformance.stats import (
    ALPHA_CHECK,
    ALPHA_TOTAL,
    MAX_STATISTICAL_CHECKS,
    REPEAT_CHECKS_PER_SLOT,
    budget_slots,
    dkwm_detectable,
    dkwm_threshold,
    ks_continuous,
    ks_integer,
    mean_z_test,
    norm_isf,
    paired_t_test,
    pit_mean_test,
    pit_var_test,
    product_mean_test,
    product_mean_threshold,
    seed_for,
    sum_tail_test,
    tail_count_test,
    two_sample_z_test,
    z_test,
    z_threshold,
)


def test_dkwm_threshold_is_massarts_bound():
    n, alpha = 10_000, 1e-3
    eps = dkwm_threshold(n, alpha)
    assert eps == pytest.approx(math.sqrt(math.log(2 / alpha) / (2 * n)))
    assert 2 * math.exp(-2 * n * eps**2) == pytest.approx(alpha)


def test_dkwm_constant_at_the_budget_matches_conformance_md():
    # CONFORMANCE.md: alpha_i ~ 3e-9 gives the DKWM constant 3.19.
    assert dkwm_threshold(1, 3e-9) == pytest.approx(3.19, abs=0.01)


def test_dkwm_detectable_adds_the_miss_rate_threshold():
    assert dkwm_detectable(1000, 1e-6, 1e-3) == pytest.approx(
        dkwm_threshold(1000, 1e-6) + dkwm_threshold(1000, 1e-3))


def test_ks_continuous_matches_scipy_kstest():
    x = np.random.default_rng(0).uniform(size=(500, 3))
    xs = np.sort(x, axis=0)
    d = ks_continuous(xs, xs)
    for j in range(3):
        assert d[j] == pytest.approx(stats.kstest(x[:, j], "uniform").statistic, rel=1e-12)


def test_ks_integer_matches_a_brute_force_supremum():
    rng = np.random.default_rng(1)
    x = rng.poisson(3.0, size=(400, 2)).astype(float)
    law = stats.poisson(np.array([3.0, 3.5]))
    d = ks_integer(x, lambda k, j: stats.poisson(3.0 if j == 0 else 3.5).cdf(k), law.cdf)
    grid = np.arange(-1, 40)
    for j, mu in enumerate((3.0, 3.5)):
        emp = np.array([(x[:, j] <= k).mean() for k in grid])
        emp_left = np.array([(x[:, j] < k).mean() for k in grid])
        brute = max(np.max(np.abs(emp - stats.poisson(mu).cdf(grid))),
                    np.max(np.abs(emp_left - stats.poisson(mu).cdf(grid - 1))))
        assert d[j] == pytest.approx(brute, abs=1e-12)


def test_ks_integer_per_column_path_agrees_with_the_vectorised_one():
    x = np.random.default_rng(2).binomial(20, 0.3, size=(300, 2)).astype(float)
    law = stats.binom(20, np.array([0.3, 0.3]))
    a = ks_integer(x, lambda k, j: stats.binom(20, 0.3).cdf(k), law.cdf)
    b = ks_integer(x, lambda k, j: stats.binom(20, 0.3).cdf(k))
    np.testing.assert_allclose(a, b, atol=1e-12)


def test_the_sampler_statistics_keep_each_column_contiguous_and_equal_a_plain_sort():
    # Reductions along axis 0 of a C-ordered (n, m) array stride over the columns (10-40x
    # slower with few columns): the sorted draw, its CDF and normal scores are Fortran-ordered,
    # with the same values as np.sort of the C-ordered draw.
    from polysample.conformance.layers.sampler import _sorted_columns, continuous_stats
    from polysample.conformance.reference import Normal, Projection

    x = np.random.default_rng(4).normal(size=(2000, 3))
    keep = x.copy()
    xs = _sorted_columns(x)
    assert xs.flags.f_contiguous and not np.shares_memory(xs, x)
    np.testing.assert_array_equal(xs, np.sort(keep, axis=0))
    np.testing.assert_array_equal(x, keep)
    loc, scale = np.zeros(3), np.array([1.0, 2.0, 0.5])
    c = continuous_stats(Projection("value", x, Normal(loc, scale)))
    assert c["zeta"].flags.f_contiguous
    ref = np.sort(keep, axis=0)
    np.testing.assert_allclose(c["ks"], ks_continuous(ref, stats.norm.cdf(ref, loc, scale)),
                               rtol=1e-12)
    np.testing.assert_allclose(c["zeta"], (ref - loc) / scale, rtol=1e-9, atol=1e-9)


def test_norm_isf_matches_scipy():
    for p in (0.4, 1e-3, 1e-9, 2.5e-10, 1e-15):
        assert norm_isf(p) == pytest.approx(stats.norm.isf(p), rel=1e-9)


def test_z_test_rejects_beyond_the_two_sided_threshold():
    thr = z_threshold(1e-6)
    assert thr == pytest.approx(stats.norm.isf(0.5e-6))
    assert z_test(0.0, 0.0, 1.0, 1e-6).ok
    assert z_test(thr * 0.99, 0.0, 1.0, 1e-6).ok
    assert not z_test(thr * 1.01, 0.0, 1.0, 1e-6).ok
    assert not z_test(-thr * 1.01, 0.0, 1.0, 1e-6).ok


def test_z_test_false_failure_rate_is_nominal():
    # 2e5 z-tests on true nulls at alpha = 1e-2: the rejection rate is 1e-2 within 5 sigma.
    rng = np.random.default_rng(3)
    means = rng.standard_normal((200_000, 25)).mean(1)
    thr = z_threshold(1e-2)
    rate = np.mean(np.abs(means / (1 / 5)) > thr)
    assert abs(rate - 1e-2) < 5 * math.sqrt(1e-2 / 200_000)


def test_seeds_are_derived_from_check_ids():
    assert seed_for("torch-Normal-typical-sample") == seed_for("torch-Normal-typical-sample")
    assert seed_for("torch-Normal-typical-sample") != seed_for("numpy-Normal-typical-sample")
    assert seed_for("a", salt=1) != seed_for("a")
    assert 0 <= seed_for("x") < 2**63


def test_error_budget_is_split_over_the_statistical_checks():
    from polysample.conformance.stats import ALPHA_REPEAT

    assert ALPHA_CHECK * MAX_STATISTICAL_CHECKS == pytest.approx(ALPHA_TOTAL)
    assert ALPHA_REPEAT * REPEAT_CHECKS_PER_SLOT == pytest.approx(ALPHA_CHECK)
    assert budget_slots(["sample_ks", "sample_pit_mean"]) == 2
    assert budget_slots(["sample_ks"] + ["sample_repeats"] * REPEAT_CHECKS_PER_SLOT) == 2
    assert budget_slots(["sample_repeats"] * (REPEAT_CHECKS_PER_SLOT + 1)) == 2
    assert budget_slots(["sample_sweep", "grad_sweep", "grad_large", "sample_tails"]) == 1


def test_full_matrix_stays_within_the_error_budget():
    # Every statistical check of every built-in backend, with the agreement checks between all
    # of them, must fit the Bonferroni budget (a third-party plugin, such as the example scipy
    # backend installed beside them, adds its own checks to a run of all backends).
    from polysample.conformance.api import targets
    from polysample.conformance.runner import generate_checks

    builtin = [n for n in ("torch", "numpy", "tfp", "tfp-tf") if _loads(n)]
    assert builtin[:2] == ["torch", "numpy"]
    ts, _ = targets(builtin)
    checks = [c for c in generate_checks(ts) if c.statistical]
    stat = budget_slots(c.name for c in checks)
    assert stat <= MAX_STATISTICAL_CHECKS, stat
    repeats = sum(c.name.endswith("_repeats") for c in checks)
    tails = sum(c.name.endswith("_tails") for c in checks)
    atoms = sum(c.name.endswith("_atoms") for c in checks)
    large = sum(c.name == "grad_large" for c in checks)
    sweeps = sum(c.name in ("sample_sweep", "grad_sweep") for c in checks)
    assert large > 0 and sweeps > 0
    # the repeat, tail, atom, large-call gradient and sweep checks take three slots
    pooled = repeats + tails + atoms + large + sweeps
    assert 0 < pooled <= 3 * REPEAT_CHECKS_PER_SLOT, (repeats, tails, atoms, large, sweeps)
    if len(builtin) == 4:  # the float32 grid is sample() only to fit (with rsample: 4,411)
        assert (stat, repeats, tails, atoms, large, sweeps) == (
            3975, 852, 701, 128, 106, 257), (stat, repeats, tails, atoms, large, sweeps)


def _loads(name: str) -> bool:
    try:
        ps.load_backend(name)
    except ps.PolysampleError:
        return False
    return True


def test_design_assertions_hold_in_both_modes():
    full, quick = design_assertions(False), design_assertions(True)
    assert full["normal_scale"] < 1.01 ** 2 - 1 and full["normal_location"] < 0.01
    assert quick["normal_scale"] < 1.02 ** 2 - 1 and quick["normal_location"] < 0.02
    # Categorical count tests: a 2% (1%) error in the typical grid's smallest probability,
    # 4/15, moves the category's mean by 0.02 sqrt(4/11) (0.01 sqrt(4/11)) standard deviations.
    assert quick["categorical_count"] < 0.02 * (4 / 11) ** 0.5
    assert full["categorical_count"] < 0.01 * (4 / 11) ** 0.5


def test_quick_mode_has_the_same_alpha_and_weaker_power():
    full, quick = design_assertions(False), design_assertions(True)
    assert quick["alpha_per_check"] == full["alpha_per_check"]
    assert quick["normal_scale"] > full["normal_scale"]


def test_pit_tests_have_their_nominal_false_failure_rate():
    # Exact tests: at alpha = 1e-2 on 4e4 null columns, the rejection rate is 1e-2 +- 5 sigma.
    rng = np.random.default_rng(5)
    z = rng.standard_normal((50, 40_000))
    for test in (pit_mean_test(z, 1e-2), pit_var_test(z, 1e-2)):
        rate = np.mean(test.ratio > 1)
        assert abs(rate - 1e-2) < 5 * math.sqrt(1e-2 / 40_000), rate


def test_product_mean_test_holds_its_level_on_independent_pits_continuous_and_discrete():
    # Bernstein's bound is exact (conservative): at alpha = 1e-2 over 4e4 null columns of
    # 200 products the rejection rate stays below 1e-2, for uniform PITs and for the mid-PITs
    # of a Poisson(0.7), whose mean is exactly 1/2 (and variance below 1/12).
    rng = np.random.default_rng(11)
    a, b = rng.random((2, 200, 40_000)) - 0.5
    assert np.mean(product_mean_test(a, b, 1e-2).ratio > 1) < 1e-2
    law = stats.poisson(0.7)
    k = rng.poisson(0.7, (2, 200, 40_000))
    # F at -1, 0, ..., max k, looked up: the same values as law.cdf at each count, 50x faster
    cdf = law.cdf(np.arange(-1, k.max() + 1))
    mid = 0.5 * (cdf[k + 1] + cdf[k]) - 0.5
    assert abs(mid.mean()) < 5 * 0.5 / math.sqrt(mid.size)
    assert np.mean(product_mean_test(mid[0], mid[1], 1e-2).ratio > 1) < 1e-2
    # and it is not vacuous: close above the normal approximation's threshold (12 x mean
    # product has standard deviation 1/sqrt(k)), closer at the check's k and alpha
    for k, alpha, slack in ((200, 1e-2, 1.5), (8192, 1e-11, 1.15)):
        normal = z_threshold(alpha) / math.sqrt(k)
        assert normal < 12 * product_mean_threshold(k, alpha) < slack * normal


def test_product_mean_test_catches_sorted_antithetic_and_correlated_pits():
    rng = np.random.default_rng(12)
    u = rng.random((16_384, 3)) - 0.5
    alpha = 1e-11
    s = np.sort(u, axis=0)
    assert not product_mean_test(s[0::2], s[1::2], alpha).ok  # sorted: correlation ~1
    assert not product_mean_test(u[0::2], -u[0::2], alpha).ok  # antithetic: -1
    z = rng.standard_normal((16_384, 2))
    pit = stats.norm.cdf(np.stack([z[:, 0], 0.5 * z[:, 0] + 0.75 ** 0.5 * z[:, 1]], 1)) - 0.5
    t = product_mean_test(pit[:, :1], pit[:, 1:], alpha)
    assert not t.ok and t.detectable < 0.48  # PIT correlation of rho = 0.5: 0.483
    assert product_mean_test(u[0::2], u[1::2], alpha).ok


def test_pit_var_test_detects_a_scale_error_at_its_stated_power():
    n, alpha = 100_000, 1e-8
    t = pit_var_test(np.random.default_rng(6).standard_normal((n, 1)) * 1.02, alpha)
    assert not t.ok and t.detectable < 1.02 ** 2 - 1


def test_mean_z_test_with_skewness_correction_holds_its_level_on_skewed_terms():
    # Exponential terms (skewness 2): 4e4 null means of 200 terms at alpha = 1e-2.
    rng = np.random.default_rng(7)
    x = rng.standard_exponential((200, 40_000))
    rate = np.mean(mean_z_test(x, 1.0, 1e-2).ratio > 1)
    assert rate < 1e-2 + 5 * math.sqrt(1e-2 / 40_000), rate


def test_sum_tail_test_is_exact_for_binomial_sums():
    rng = np.random.default_rng(8)
    n, p = 100, np.full(40_000, 0.3)
    sums = rng.binomial(n, p).astype(float)
    rate = np.mean(sum_tail_test(sums, stats.binom(n, p), 1e-2, n).ratio > 1)
    assert rate <= 1e-2 + 5 * math.sqrt(1e-2 / 40_000), rate


def test_tail_count_test_holds_its_level_on_normal_scores():
    # 10 000 null columns of 2048 scores at alpha = 1e-2 (levels of 64 and 256 expected draws:
    # p = 1/32 and 1/8). The counts are exactly binomial: the rate stays at or below alpha.
    z = np.random.default_rng(11).standard_normal((2048, 10_000))
    rate = np.mean(tail_count_test(z, 1e-2).ratio > 1)
    assert rate <= 1e-2 + 5 * math.sqrt(1e-2 / 10_000), rate


def test_tail_count_test_finds_its_stated_deficit_and_a_cut_tail():
    n, alpha = 16_384, 1e-8
    rng = np.random.default_rng(12)
    z = rng.standard_normal((n, 1000))
    t = tail_count_test(z, alpha)
    assert t.ok and 0 < t.detectable < 1
    # The lower tail beyond the largest level's quantile thinned by the stated deficit: found
    # with probability 1 - MISS_RATE (at least 99% of 1000 columns here).
    q = norm_isf(256 / n)
    thin = (z < -q) & (rng.random(z.shape) < t.detectable)
    found = np.mean(tail_count_test(np.where(thin, 0.0, z), alpha).ratio > 1)
    assert found >= 0.99, found
    # Cut beyond 3.5 sd at the suite's quick n, one column: no draw where 64 are expected.
    x = np.random.default_rng(13).standard_normal((1 << 18, 1))
    cut = tail_count_test(np.clip(x, -3.5, 3.5) * (np.abs(x) < 3.5), alpha)
    assert not cut.ok and cut.estimate[0] < 0.1 and cut.deviation[0] < 0


def test_tail_count_test_finds_a_far_tail_too_heavy_at_one_expected_draw():
    # A ziggurat's tail beyond R = 3.44 sd drawn as R + Exp(1): the mass beyond R is right, so
    # the counts where 64 and 256 draws are expected stay within their noise; beyond the 1/n
    # quantile (4.6 sd at the suite's quick n) about 30 draws fall where 1 is expected.
    n, alpha, r = 1 << 18, 1e-13, 3.442619855899
    z = np.random.default_rng(14).standard_normal((n, 1))
    tail = stats.norm.sf(np.abs(z)) / stats.norm.sf(r)
    zig = np.where(np.abs(z) > r, np.sign(z) * (r - np.log(tail)), z)
    assert tail_count_test(z, alpha).ok
    assert tail_count_test(zig, alpha, counts=(64, 256)).ok
    t = tail_count_test(zig, alpha)
    assert not t.ok and t.estimate[0] > 10 and t.deviation[0] > 0


def test_two_sample_z_test_compares_means_of_unit_variance_terms():
    t = two_sample_z_test(np.array([0.01]), np.array([0.0]), 1.0, 10_000, 10_000, 1e-6)
    assert t.statistic[0] == pytest.approx(0.01 / math.sqrt(2 / 10_000))


def test_paired_t_test_holds_its_level_with_32_pairs_where_the_normal_quantile_does_not():
    # 32 pairs of independent normal terms, 40,000 columns, alpha = 1e-3: Student's t with 31
    # degrees of freedom holds the level; the normal quantile (3.29) would reject 0.27%.
    rng = np.random.default_rng(9)
    a, b = rng.standard_normal((32, 40_000)), rng.standard_normal((32, 40_000))
    t = paired_t_test(a, b, 1e-3)
    rate = np.mean(t.ratio > 1)
    assert rate < 1e-3 + 5 * math.sqrt(1e-3 / 40_000), rate
    assert np.mean(t.statistic > z_threshold(1e-3)) > 2e-3  # what z would have rejected
    # correlated pairs are allowed (the pairs need only be independent of each other)
    c = rng.standard_normal((32, 40_000))
    rate = np.mean(paired_t_test(c + 0.1 * a, c + 0.1 * b, 1e-3).ratio > 1)
    assert rate < 1e-3 + 5 * math.sqrt(1e-3 / 40_000), rate


def test_paired_t_test_passes_rounding_and_fails_a_5pc_difference_of_equal_draws():
    rng = np.random.default_rng(10)
    g = 3.0 + rng.standard_normal((32, 3))  # per-call gradients, signal-to-noise 3
    assert paired_t_test(g, g, 1e-10).statistic.tolist() == [0.0, 0.0, 0.0]
    assert (paired_t_test(g * (1 + 1e-12), g, 1e-10).ratio == 0).all()  # rounding
    t = paired_t_test(1.05 * g, g, 1e-10)  # the same draws, the gradient 5% off
    assert (t.ratio > 1).all(), t.statistic


def test_paired_t_tests_detectable_is_never_below_the_tolerance_it_passes():
    # an outside trial: equal pairs (a correct backend) gave a detectable of 2.3e-10 although
    # a mean difference within exact_tol of the scale passes whatever the spread
    rng = np.random.default_rng(11)
    g = 0.4 + 0.1 * rng.standard_normal((32, 2))
    t = paired_t_test(g * (1 + 1e-15), g, 1e-3, exact_tol=5e-3)
    assert t.detectable >= 5e-3 * (1 + np.abs(g.mean(0))).max()
    off = paired_t_test(g * (1 + 1e-3), g, 1e-3, exact_tol=5e-3)  # 0.1% off passes: within the tolerance
    assert (off.ratio == 0).all() and off.detectable > np.abs(off.estimate).max()


@pytest.mark.parametrize("family,params", [
    ("Normal", {"loc": np.array([0.0, 1.0]), "scale": np.array([1.0, 2.0])}),
    ("Gamma", {"concentration": np.array([0.5, 3.0]), "rate": np.array([1.0, 2.0])}),
    ("Kumaraswamy", {"concentration1": np.array([0.5, 3.0]),
                     "concentration0": np.array([2.0, 0.7])}),
    ("ContinuousBernoulli", {"probs": np.array([0.1, 0.8])}),
    ("RelaxedBernoulli", {"temperature": np.array([0.5, 2.0]), "probs": np.array([0.3, 0.6])}),
    ("VonMises", {"loc": np.array([0.5, -2.0]), "concentration": np.array([1.0, 4.0])}),
])
def test_closed_form_references_integrate_their_densities(family, params):
    law = CASES[family].law(params)
    # Interior intervals: the trapezoid rule needs a bounded density.
    lo, hi = (-3.1, 3.1) if family == "VonMises" else (0.05, 0.95) \
        if family in ("Kumaraswamy", "ContinuousBernoulli", "RelaxedBernoulli") else (0.2, 3.0)
    x = np.linspace(lo, hi, 20001)[:, None] * np.ones((1, 2))
    pdf = law.pdf(x)
    integral = np.concatenate([np.zeros((1, 2)), np.cumsum((pdf[1:] + pdf[:-1]) / 2 *
                                                           np.diff(x, axis=0), axis=0)])
    np.testing.assert_allclose(law.cdf(x) - law.cdf(x[:1]), integral, atol=2e-4)
    np.testing.assert_allclose(law.cdf(x) + law.sf(x), 1.0, atol=1e-12)


_TAIL_SAFE = {  # family: (params, mpmath log density of one value at one column's params)
    "Laplace": ({"loc": np.array([-0.5, 2.0]), "scale": np.array([0.5, 3.0])},
                lambda m, x, p: -abs(x - p["loc"]) / p["scale"] - m.log(2 * p["scale"])),
    "HalfCauchy": ({"scale": np.array([0.5, 1e3])},
                   lambda m, x, p: m.log(2 / (m.pi * p["scale"])) - m.log1p((x / p["scale"]) ** 2)),
    "StudentT": ({"df": np.array([2.5, 0.5]), "loc": np.array([-0.5, 1.0]),
                  "scale": np.array([0.5, 1e-3])},
                 lambda m, x, p: m.loggamma((p["df"] + 1) / 2) - m.loggamma(p["df"] / 2)
                 - m.log(m.sqrt(p["df"] * m.pi) * p["scale"])
                 - (p["df"] + 1) / 2 * m.log1p(((x - p["loc"]) / p["scale"]) ** 2 / p["df"])),
    "Pareto": ({"scale": np.array([0.5, 1e-2]), "alpha": np.array([2.5, 50.0])},
               lambda m, x, p: m.log(p["alpha"]) + p["alpha"] * m.log(p["scale"])
               - (p["alpha"] + 1) * m.log(x)),
}


@pytest.mark.parametrize("family", sorted(_TAIL_SAFE))
def test_tail_safe_references_agree_with_scipy_and_stay_finite_at_huge_values(family):
    import mpmath

    params, exact = _TAIL_SAFE[family]
    law = CASES[family].law(params)
    # typical values: SciPy's own log density, to rounding
    x = law.ppf(np.linspace(0.001, 0.999, 41)[:, None] * np.ones((1, 2)))
    np.testing.assert_allclose(law.logpdf(x), law.law.logpdf(x), rtol=1e-12, atol=1e-12)
    # huge values (where SciPy's is -inf): the exact value, at 50 digits
    huge = np.array([1e30, 1e100, 1e200, 1e300])[:, None] * np.ones((1, 2))
    got = law.logpdf(huge)
    with np.errstate(all="ignore"):
        assert not np.isfinite(law.law.logpdf(huge)).all()  # what SciPy 1.15 gives
    mpmath.mp.dps = 50
    for (i, j), v in np.ndenumerate(huge):
        p = {k: mpmath.mpf(float(a[j])) for k, a in params.items()}
        want = float(exact(mpmath, mpmath.mpf(float(v)), p))
        assert got[i, j] == pytest.approx(want, rel=1e-14), (family, v, j)


def test_relaxed_bernoulli_reference_log_density_is_finite_where_the_density_underflows():
    law = CASES["RelaxedBernoulli"].law({"temperature": np.array([3.0, 0.5]),
                                         "probs": np.array([0.95, 0.3])})
    x = np.array([[1e-3, 1e-3], [0.3, 0.3], [0.9, 0.9], [1 - 1e-9, 1 - 1e-9]])
    np.testing.assert_allclose(law.logpdf(x), np.log(law.pdf(x)), rtol=1e-12)
    tiny = np.array([[4.060706939705039e-115, 4.060706939705039e-115]])
    assert law.pdf(tiny)[0, 0] == 0.0  # underflows
    # T log x dominates: log T - log x + (T logit x - logit p) - 2 softplus(...) ~ (T - 1) log x
    assert law.logpdf(tiny)[0, 0] == pytest.approx(-528.63768, rel=1e-7)


def test_projections_of_a_multivariate_normal_are_normal():
    rng = np.random.default_rng(4)
    tril = np.array([[1.0, 0, 0], [0.5, 2.0, 0], [-1.0, 0.3, 0.5]])
    x = rng.standard_normal((20_000, 1, 3)) @ tril.T + np.array([1.0, -2.0, 0.0])
    p = {"loc": np.array([[1.0, -2.0, 0.0]]), "scale_tril": tril[None]}
    for pr in projections("MultivariateNormal", p, x, (1,), rng):
        xs = np.sort(pr.values, axis=0)
        assert ks_continuous(xs, pr.law.cdf(xs))[0] < dkwm_threshold(20_000, 1e-6)


def test_runner_reports_a_raising_check_as_failed_not_crashed():
    check = plan("torch", ["Normal"], ("semantics",))[0]
    check.fn = lambda r: (_ for _ in ()).throw(RuntimeError("boom"))  # type: ignore[assignment]
    res = Runner().run(check)
    assert res.status == "fail" and "RuntimeError: boom" in res.message


def test_every_family_of_the_table_has_grids_a_reference_and_a_gradient_check_if_reparameterized():
    from polysample.conformance.grids import grids
    from polysample.core.families import FAMILIES

    for family, spec in FAMILIES.items():
        c = CASES[family]
        assert c.project is not None, family
        assert grids(family)[0].label == "typical"
        if spec.reparameterized:
            assert c.gradient is not None, family


def test_json_report_is_strict_json_even_with_infinite_statistics():
    import json

    from polysample.conformance.model import CheckResult
    from polysample.conformance.report import Report

    r = Report(results=[CheckResult("b-F-g-c", "b", "F", "g", "c", "sampler", "fail",
                                    statistic=float("inf"), details={"x": float("nan")})],
               complete=True)
    data = json.loads(r.to_json())
    assert data["checks"][0]["statistic"] == "inf" and not data["ok"]


def test_json_report_text_is_the_report_as_it_grows_one_check_per_line():
    import json

    from polysample.conformance.model import CheckResult
    from polysample.conformance.report import Report

    r = Report(planned=3)
    assert json.loads(r.to_json())["checks"] == []
    for i, status in enumerate(["pass", "fail", "skip"]):
        # Each result's text is made once and reused by later writes; the document always
        # equals the report's current dict, in both layouts.
        r.results.append(CheckResult(f"b-F-g-c{i}", "b", "F", "g", f"c{i}", "sampler", status,
                                     statistic=float(i), details={"d": [i, float("inf")]}))
        for indent in (1, None):
            text = r.to_json(indent)
            assert json.loads(text) == json.loads(json.dumps(r.to_dict(), default=str))
    lines = r.to_json().splitlines()
    assert sum(line.lstrip().startswith('{"id": ') for line in lines) == 3
    r.complete = True
    assert json.loads(r.to_json())["counts"] == {"pass": 1, "fail": 1, "skip": 1}


def test_an_incomplete_report_is_never_ok():
    from polysample.conformance.model import CheckResult
    from polysample.conformance.report import Report

    r = Report(results=[CheckResult("b-F-g-c", "b", "F", "g", "c", "sampler", "pass")],
               planned=10, complete=False)
    data = r.to_dict()
    assert not r.ok and data["ok"] is False and data["complete"] is False
    assert data["planned"] == 10 and data["done"] == 1 and "INCOMPLETE" in r.summary()


class _RsampleScaled(ps.Backend):
    """torch's Normal, with only rsample()'s values scaled by 5% (sample() is right)."""

    def __init__(self) -> None:
        from polysample.backends.torch_backend import TorchBackend

        self._inner = TorchBackend()

    def version(self) -> str:
        return "test"

    def families(self):  # type: ignore[no-untyped-def]
        return {"Normal": self._inner.families()["Normal"]}

    def sample(self, family, params, sample_shape, *, seed=None):  # type: ignore[no-untyped-def]
        return self._inner.sample(family, params, sample_shape, seed=seed)

    def rsample(self, family, params, sample_shape, *, seed=None):  # type: ignore[no-untyped-def]
        x = self._inner.rsample(family, params, sample_shape, seed=seed)
        return params["loc"] + 1.05 * (x - params["loc"])

    def log_prob(self, family, params, value):  # type: ignore[no-untyped-def]
        return self._inner.log_prob(family, params, value)


def test_rsample_draws_equal_to_sample_draws_share_their_statistics_and_others_do_not():
    # torch's rsample values are its sample values for the same seed: computed once, said so.
    good = check_backend("torch", families=["Normal"], quick=True, layers=("sampler",))
    assert good.ok, good.summary()
    ks = {r.check: r for r in good.results if r.grid == "typical"}
    assert ks["rsample_ks"].details["values_equal_sample"] is True
    assert "equal sample()'s" in ks["rsample_ks"].message
    # the sample draw's details do not carry the question (False there misled a reader)
    assert "values_equal_sample" not in ks["sample_ks"].details
    assert ks["rsample_ks"].seed == ks["sample_ks"].seed
    # A backend whose rsample alone is wrong: its rsample draws are judged on their own.
    bad = check_backend(_RsampleScaled(), families=["Normal"], quick=True, layers=("sampler",))
    failed = {r.check for r in bad.results if r.status == "fail"}
    assert {"rsample_ks", "rsample_pit_var"} <= failed, bad.summary()
    # sample() is right: its checks pass, but for the float32 grid's, whose draw has
    # rsample() columns too (runner.Draw.parts): those fail there, and say so
    sample_fails = [r for r in bad.results if r.status == "fail" and r.check.startswith("sample_")]
    assert {r.grid for r in sample_fails} == {"float32"}, bad.summary()
    assert all("by rsample()" in r.message for r in sample_fails), bad.summary()
    assert not any(r.details.get("values_equal_sample") for r in bad.results
                   if r.check == "rsample_ks")


def test_agreement_checks_never_draw_again_even_after_a_skipped_normal_score_check(monkeypatch):
    from polysample.conformance import check_backends
    from polysample.conformance.runner import Runner

    made: list[tuple[str, str, str, str]] = []
    original = Runner._draw

    def counting(self, t, family, grid, method):  # type: ignore[no-untyped-def]
        made.append((t.name, family, grid.label, method))
        return original(self, t, family, grid, method)

    monkeypatch.setattr(Runner, "_draw", counting)
    # Dirichlet's edges grid has ties at float64 resolution in every column: its normal-score
    # checks skip, and the agreement checks must still find the (empty) summaries kept.
    report = check_backends(["torch", "numpy"], families=["Dirichlet"], quick=True,
                            layers=("sampler", "agreement"))
    skipped = [r for r in report.results if r.grid == "edges" and r.check == "sample_pit_mean"]
    assert skipped and all(r.status == "skip" for r in skipped), report.summary()
    assert any(r.layer == "agreement" and r.grid == "edges" for r in report.results)
    assert len(made) == len(set(made)), sorted(made)


def test_per_sample_gradient_samples_are_drawn_in_calls_of_one_shape(monkeypatch):
    # A z-test of 2 000 per-sample gradients draws them in calls of at most 512 values (170
    # parameter copies of a 3-point grid), the per-sample checks' 32 samples in calls of at
    # most 64, each call with its own seed derived from the check's, so a compiling backend
    # runs one program per size class instead of compiling one per sample size.
    from polysample.backends.torch_backend import TorchBackend
    from polysample.conformance import check_backend
    from polysample.conformance.layers.gradient import chunk_seeds, copies_per_call

    assert copies_per_call(3, 2000) == 170 and copies_per_call(100, 32) == 1
    assert copies_per_call(3, 32) == 21 and copies_per_call(1, 32) == 32
    assert copies_per_call(1, 20) == 20 and copies_per_call(1000, 2000) == 1
    assert chunk_seeds(7, 32, 32) == [7]
    seeds = chunk_seeds(7, 2000, 21)
    assert len(seeds) == 96 and seeds[0] == 7 and len(set(seeds)) == 96
    assert seeds == chunk_seeds(7, 2000, 21) and chunk_seeds(8, 2000, 21)[1:] != seeds[1:]

    calls: list[tuple[str, tuple[int, ...], object]] = []
    original = TorchBackend.rsample

    def recording(self, family, params, sample_shape, *, seed=None):  # type: ignore[no-untyped-def]
        x = original(self, family, params, sample_shape, seed=seed)
        calls.append((family, tuple(x.shape), seed))
        return x

    monkeypatch.setattr(TorchBackend, "rsample", recording)
    report = check_backend("torch", families=["Dirichlet"], layers=("gradient",), quick=True)
    assert report.ok, report.summary()
    # grad_shape draws the example parameters (a batch of 2): a first draw of 16 rows, then
    # 32 pairs of calls, the sample shape (4, 4) against 16 parameter copies
    shaped = [c for c in calls if c[1][:2] == (16, 2)]
    assert len(shaped) == 1 + 32, len(shaped)
    assert len([c for c in calls if c[1][:3] == (4, 4, 2)]) == 32
    calls = [c for c in calls if c[1][:2] != (16, 2) and c[1][:3] != (4, 4, 2)]
    # grad_large draws one call of 1024 rows on 32 copies of the example parameters
    assert [c[1] for c in calls if c[1][:2] == (1024, 32)] == [(1024, 32, 2, 3)]
    calls = [c for c in calls if c[1][:2] != (1024, 32)]
    # grad_sweep draws 16 calls of one value at each of its 4,096 points
    assert [c[1] for c in calls if c[1][:2] == (1, 4096)] == [(1, 4096, 3)] * 16
    calls = [c for c in calls if c[1][:2] != (1, 4096)]
    judged = [r for r in report.results if r.check == "grad_mean"]
    assert judged and all(r.n == 2000 for r in judged), [(r.id, r.n) for r in judged]
    # Dirichlet's typical grid has 3 points (batch (k, 3), event 3): 170 copies a call, 12
    # calls; its corners 4 (the flat law joined them): 128 copies a call, 16 calls.
    assert copies_per_call(4, 2000) == 128
    assert {shape[:2] for _, shape, _ in calls} == {(170, 3), (128, 4)}, calls
    assert len(calls) == sum(16 if r.grid == "corners" else 12 for r in judged), [
        r.grid for r in judged]
    assert len({repr(seed) for *_, seed in calls}) == len(calls)


def test_per_sample_gradients_of_calls_that_do_not_depend_on_a_parameter_are_zeros_of_its_shape():
    # A backend whose draw ignores scale_tril in every other call: those calls' gradients are
    # zeros of the parameter copy's shape (not of the draw's), so the z-test judges them.
    import torch

    from polysample.backends.torch_backend import TorchBackend
    from polysample.conformance.grids import grids
    from polysample.conformance.layers.gradient import _per_sample_draws
    from polysample.conformance.runner import Target

    class Half(TorchBackend):
        calls = 0

        def rsample(self, family, params, sample_shape, *, seed=None):  # type: ignore[no-untyped-def]
            x = super().rsample(family, params, sample_shape, seed=seed)
            Half.calls += 1
            if Half.calls % 2 == 0:
                loc = params["loc"]
                x = loc + (x - loc).detach()
            return x

    backend = Half()
    t = Target("half", backend)
    grid = grids("MultivariateNormal")[0]
    params = grid.build(torch.float64)
    x, grads, _ = _per_sample_draws(t, "MultivariateNormal", params,
                                    backend.families()["MultivariateNormal"], 2000, 3,
                                    lambda x: x)
    g = grads["scale_tril"]
    assert x.shape[0] == 2000 and g is not None
    assert g.shape == (2000,) + tuple(params["scale_tril"].shape[-3:])
    assert Half.calls > 2 and (g.flatten(1).abs().sum(1) == 0).any()
    assert grads["loc"] is not None and grads["loc"].shape == (2000,) + tuple(x.shape[1:])


def test_fast_cdf_equals_scipys_cdf_on_every_continuous_statistic_of_every_family(monkeypatch):
    # The sampler layer's CDF: SciPy's cdf without its per-element bookkeeping. Same values,
    # bit for bit, on draws of every grid of every family (their SciPy laws included).
    from polysample.conformance.grids import grids
    from polysample.conformance.reference import fast_cdf
    from polysample.conformance.runner import Target
    from polysample.core.families import FAMILIES
    from polysample.core.plugins import load_backend

    runner, target = Runner(quick=True), Target("torch", load_backend("torch"))
    # Only the first 4000 values of each statistic are compared: a draw of 2^13 rows per grid
    # point (instead of the sampler's 2^16 and more) has them, at an eighth of the time.
    monkeypatch.setattr("polysample.conformance.cases.sample_size", lambda *a: 1 << 13)
    scipy_laws, families = set(), 0
    for family in CASES:
        if FAMILIES[family].kind != "continuous" or CASES[family].project is None:
            continue
        families += 1
        for grid in grids(family):
            d = runner._draw(target, family, grid, "sample")
            for p in d.projections:
                if p.discrete:
                    continue
                x = np.sort(p.values[:4000], axis=0)
                want = np.asarray(p.law.cdf(x), np.float64)
                assert np.array_equal(fast_cdf(p.law, x), want, equal_nan=True), (family, p.label)
                if isinstance(getattr(p.law, "dist", None), stats.rv_continuous):
                    scipy_laws.add(p.law.dist.name)
        runner.release()
    assert families >= 25 and len(scipy_laws) >= 15, (families, sorted(scipy_laws))


@pytest.mark.parametrize("law, x", [
    (stats.gamma([0.5, 2.0], scale=[1.0, 3.0]), [[0.0, 1.0], [np.nan, 2.0], [-1.0, np.inf]]),
    (stats.beta([0.5, 2.0], [1.0, 3.0]), [[0.0, 1.0], [0.5, 1.5], [1e-300, 1 - 1e-16]]),
    (stats.gamma([-1.0, 2.0]), [[0.5, 1.0]]),  # an invalid parameter: NaN in its column
    (stats.genpareto([-0.5, 0.5]), [[1.0, 3.0], [2.0, 0.1], [2.5, 4.0]]),
    (stats.uniform([0.0, 1.0], [1.0, 2.0]), [[0.0, 1.0], [1.0, 3.0]]),
])
def test_fast_cdf_falls_back_to_scipy_on_boundaries_nans_and_invalid_parameters(law, x):
    from polysample.conformance.reference import fast_cdf

    x = np.asarray(x, np.float64)
    with np.errstate(all="ignore"):
        want = np.asarray(law.cdf(x), np.float64)
    assert np.array_equal(fast_cdf(law, x), want, equal_nan=True)


def test_fast_cdf_skips_scipys_bookkeeping_inside_the_support():
    from polysample.conformance.reference import fast_cdf

    law = stats.gamma([0.5, 2.0], scale=[1.0, 3.0])
    x = np.array([[0.1, 1.0], [2.0, 5.0]])
    want = law.cdf(x)

    def refuse(_x):
        raise AssertionError("SciPy's cdf was called")

    law.cdf = refuse
    assert np.array_equal(fast_cdf(law, x), want)


def test_multivariate_checks_detect_a_location_shift_of_2pc_quick_and_1pc_full():
    # MultivariateNormal has the most statistics per grid point (3 axes, 8 projections), so
    # the smallest alpha per statistic of the multivariate families. A shift of the first
    # coordinate by e standard deviations moves its axis's mean normal score by e.
    r = check_backend("torch", families=["MultivariateNormal"], quick=True, layers=("sampler",))
    res = next(x for x in r.results if x.grid == "typical" and x.check == "sample_pit_mean")
    assert res.status == "pass" and res.detectable < 0.02, res
    n_full = sample_size("MultivariateNormal", "typical", False)
    # The same test at full mode's n (detectable scales as n^-1/2 at a fixed alpha).
    assert res.detectable * (res.n / n_full) ** 0.5 < 0.01, (res.detectable, res.n, n_full)


def test_a_draws_continuous_statistics_keep_only_their_normal_scores():
    # A multivariate draw has eleven statistics of n x 3 values; with the sorted values and
    # their CDF kept beside the normal scores a full-mode draw held 1.1 GB. What the checks
    # read is computed once, and the n x m intermediates are dropped.
    from polysample.conformance.layers.sampler import continuous_stats

    n, rng = 20_000, np.random.default_rng(3)
    p = {k: v.numpy() for k, v in CASES["MultivariateNormal"].example(
        (3,), torch.float64, 3).items()}
    x = np.asarray(torch.distributions.MultivariateNormal(
        torch.as_tensor(p["loc"]), scale_tril=torch.as_tensor(p["scale_tril"])).sample((n,)))
    for pr in projections("MultivariateNormal", p, x, (3,), rng):
        values = pr.values.copy()
        c = continuous_stats(pr)
        assert pr.values.shape == (0, 3)
        big = [k for k, v in c.items() if isinstance(v, np.ndarray) and v.size >= n]
        assert sorted(big) == ["pit_head", "zeta"], sorted(c)
        # the independence check's rows: the first ones, in the order drawn
        assert c["pit_head"].shape == (min(n, INDEPENDENCE_ROWS), 3)
        np.testing.assert_allclose(c["pit_head"],
                                   pr.law.cdf(values[:INDEPENDENCE_ROWS]) - 0.5, atol=1e-12)
        xs = np.sort(values, axis=0)
        np.testing.assert_array_equal(c["ks"], ks_continuous(xs, pr.law.cdf(xs)))
        np.testing.assert_allclose(np.sort(c["zeta"], axis=0),
                                   stats.norm.ppf(pr.law.cdf(xs)), atol=1e-9)
        assert continuous_stats(pr) is c  # computed once


# ---------------------------------------------------------------------- the float32 grid
def _float32_projection(values: np.ndarray, law, res=np.float32):  # type: ignore[no-untyped-def]
    from polysample.conformance.reference import Projection

    return Projection("value", np.asarray(values, dtype=np.float64)[:, None], law,
                      resolution=res)


def test_float32_draws_tie_by_rounding_and_keep_their_normal_scores():
    # 2^16 float32 normal draws tie by rounding alone (a 24-bit mantissa). At the draw's own
    # resolution those ties carry no mass (below COARSE_MASS on each value's float32 spacing)
    # and the column keeps its normal scores, with no unexplained atom. Read as float64 draws,
    # the ties are not the law's either (it has no mass on a float64 spacing): the column
    # keeps its normal scores, and the repeat check judges its most repeated value: a pair,
    # which the bound's floor of 1e-15 on the band mass lets pass.
    from polysample.conformance.layers.sampler import _atom_bound, continuous_stats

    x = np.random.default_rng(3).standard_normal(1 << 16).astype(np.float32)
    xs = np.sort(x)
    assert np.any(xs[1:] == xs[:-1])
    law = stats.norm(np.zeros(1), np.ones(1))
    as64 = continuous_stats(_float32_projection(x, law, np.float64))
    assert not as64["ties"].any()
    ((j, value, count, mass),) = as64["atoms"]
    assert j == 0 and count == 2 and mass < 1e-15
    assert 1e-7 < _atom_bound(len(x), count, mass) < 1e-5
    c = continuous_stats(_float32_projection(x, law))
    assert not c["ties"].any() and np.all(np.isfinite(c["zeta"]))
    ((_, _, count32, mass32),) = c["atoms"]
    assert _atom_bound(len(x), count32, mass32) > 1e-3  # rounding's pairs and triples


def test_the_atom_bound_holds_for_the_draws_of_a_coarse_law():
    # The bound C(n, c) m^(c-1) against the multiplicities independent draws really reach: a
    # law on 2^20 equally likely values (mass 2^-20 each) drawn 2^16 times, over 20 seeds.
    from polysample.conformance.layers.sampler import _atom_bound, _most_repeated

    n, k = 1 << 16, 1 << 20
    for seed in range(20):
        x = np.sort(np.random.default_rng(seed).integers(0, k, n).astype(np.float64))
        _, count = _most_repeated(x)
        assert _atom_bound(n, count, 1.0 / k / 4) > 1e-3, (seed, count)
    assert _atom_bound(n, 1, 1e-3) == 1.0
    assert _most_repeated(np.array([1.0, 2.0, 2.0, 2.0, 3.0, 3.0])) == (2.0, 3)


def test_float32_draws_flushed_to_zero_count_as_ties_with_the_float32_band():
    # A float32 Gamma(0.01) flushes draws below float32's smallest normal float to 0 (42% of
    # the mass): that column keeps the tie rule (no normal scores), and its K-S distance, with
    # each value standing for its float32 band, passes.
    from polysample.conformance.layers.sampler import continuous_stats
    from polysample.conformance.stats import dkwm_threshold

    law = stats.gamma(np.full(1, 0.01))
    x = law.rvs(size=(1 << 14, 1), random_state=np.random.default_rng(4))[:, 0]
    x32 = np.where(x < np.finfo(np.float32).tiny, 0.0, x).astype(np.float32)
    assert np.mean(x32 == 0) > 0.3
    c = continuous_stats(_float32_projection(x32, law))
    assert c["ties"].all()
    assert c["ks"][0] <= dkwm_threshold(1 << 14, 1e-6)


def test_a_float32_angle_rounded_past_pi_stands_for_the_top_of_the_support():
    # float32(pi) = 3.14159274 > pi: torch's and TFP's float32 VonMises return it for angles
    # just below pi. Read modulo 2 pi it was an angle just above -pi (F ~ 0, a K-S distance of
    # 1); it is the top of [-pi, pi) (F = 1), and its normal score is that of its float32 band.
    from polysample.conformance.layers.sampler import continuous_stats
    from polysample.conformance.reference import VonMises

    top = float(np.float32(np.pi))
    law = VonMises(np.zeros(1), np.full(1, 2.0))
    assert law.cdf(np.array([[top]]))[0, 0] == 1.0
    assert law.cdf(np.array([[-top]]))[0, 0] == 0.0
    assert law.cdf(np.array([[top - 2 * np.pi]]))[0, 0] < 1e-6  # far past: still modulo 2 pi
    x = np.append(np.linspace(-3.0, 3.0, 4095), top).astype(np.float32)
    c = continuous_stats(_float32_projection(x, law))
    assert np.all(np.isfinite(c["zeta"])) and c["zeta"].max() > 5


# ---------------------------------------------------------------------- the repeat check
def _brute_repeats(x: np.ndarray, k: int) -> int:
    windows = [tuple(map(tuple, x[i:i + k] + 0.0)) for i in range(len(x) - k + 1)]
    return len(windows) - len(set(windows))


@pytest.mark.parametrize("k", [1, 2, 5, 9])
@pytest.mark.parametrize("m", [1, 3])
def test_repeated_windows_counts_what_a_brute_force_count_finds(k, m):
    from polysample.conformance.stats import repeated_windows

    x = np.random.default_rng(10 * k + m).integers(0, 2, size=(400, m)).astype(np.float64)
    x[::7] *= -1.0  # -0.0 equals 0.0
    count, pair = repeated_windows(x, k)
    assert count == _brute_repeats(x, k)
    if count:
        i, j = pair
        assert i < j and np.array_equal(x[i:i + k] + 0.0, x[j:j + k] + 0.0)
        # no earlier window repeats before row j
        assert all(_brute_repeats(x[:jj + k], k) == 0 for jj in range(j))
    else:
        assert pair is None


def test_a_hash_collision_is_never_counted_as_a_repeat(monkeypatch):
    # With every window hashed alike, each candidate pair is compared value by value.
    from polysample.conformance import stats as st

    monkeypatch.setattr(st, "_mix64", lambda z: np.zeros_like(z))
    x = np.arange(64, dtype=np.float64)[:, None]
    assert st.repeated_windows(x, 3) == (0, None)
    y = np.concatenate([x, x[:5]])
    assert st.repeated_windows(y, 3) == (3, (0, 64))
    z = np.concatenate([x, x[:5], x[10:14]])  # two repeated windows interleaved in one group
    assert st.repeated_windows(z, 3) == (5, (0, 64))


def test_the_repeat_bound_holds_and_the_window_is_the_shortest_within_alpha():
    from polysample.conformance.stats import repeat_bound, repeat_window, repeated_windows

    # Bernoulli(0.5) rows: q = p = 1/2, where the bound is the expected number of equal pairs
    # of windows exactly. Of 16 rows among 2,000, that is 30.5; the mean count of repeated
    # windows over 40 seeds stays below it (within four standard errors) and near it.
    n, k = 2000, 16
    bound = repeat_bound(n, k, 0.5, 0.5)
    counts = [repeated_windows(np.random.default_rng(s).integers(0, 2, (n, 1)).astype(float),
                               k)[0] for s in range(40)]
    assert 0.8 * bound <= np.mean(counts) <= bound + 4 * math.sqrt(bound / 40)
    k = repeat_window(n, 0.5, 0.5, 1e-6)
    assert k is not None and repeat_bound(n, k, 0.5, 0.5) <= 1e-6 < repeat_bound(n, k - 1, 0.5, 0.5)
    assert repeat_window(n, 1.0, 1.0, 1e-6) is None  # one value: no window is unlikely


def test_independent_draws_with_ties_pass_the_repeat_check_and_repeated_ones_fail():
    # A float32 Gamma(0.01) draw flushes 42% of its values to 0 and float32 normal draws tie by
    # rounding: their ties are the reference's, and windows of a few rows never repeat. The
    # same draws with their first half repeated fail, naming the rows.
    from polysample.conformance.layers.sampler import _repeat_check
    from polysample.conformance.model import CheckFailure
    from polysample.conformance.reference import Projection
    from polysample.conformance.runner import Draw

    rng = np.random.default_rng(5)
    gamma = stats.gamma(np.full(2, 0.01))
    g = gamma.rvs(size=(1 << 14, 2), random_state=rng)
    g32 = np.where(g < np.finfo(np.float32).tiny, 0.0, g).astype(np.float32)
    z32 = rng.standard_normal((1 << 16, 3)).astype(np.float32)
    cases = [(g32, gamma), (z32, stats.norm(np.zeros(3), np.ones(3)))]
    for x, law in cases:
        def draw(values: np.ndarray, law=law) -> Draw:  # type: ignore[no-untyped-def]
            pr = Projection("value", values.astype(np.float64), law, resolution=np.float32)
            return Draw(len(values), 0, [pr], True, ["a", "b", "c"], 0.0)

        out = _repeat_check(draw(x), _grid("float32"), "sample")
        assert out.statistic == 0.0 and out.details["window_rows"] >= 1
        half = len(x) // 2
        with pytest.raises(CheckFailure, match=f"the first at row 0 and again at row {half}"):
            _repeat_check(draw(np.concatenate([x[:half], x[:half]])), _grid("float32"),
                          "sample")


def _grid(label: str):  # type: ignore[no-untyped-def]
    from polysample.conformance.grids import grids

    return next(g for g in grids("Normal") if g.label == label)


def test_freeze_gives_scipys_frozen_law_without_copying_the_distribution():
    from polysample.conformance.reference import freeze

    a, b = np.array([0.5, 2.0, 30.0]), np.array([0.7, 2.0, 0.1])
    x = np.linspace(0.001, 0.999, 11)[:, None]
    ours, theirs = freeze(stats.beta, a, b), stats.beta(a, b)
    assert type(ours) is type(theirs) and ours.dist is stats.beta  # shared, not copied
    for method in ("cdf", "sf", "pdf", "logpdf", "ppf"):
        assert np.array_equal(getattr(ours, method)(x), getattr(theirs, method)(x)), method
    assert np.array_equal(ours.mean(), theirs.mean())
    assert np.array_equal(ours.support(), theirs.support())
    k = np.arange(-1, 12)[:, None]
    ours, theirs = freeze(stats.binom, 10, np.array([0.1, 0.5])), stats.binom(10, [0.1, 0.5])
    assert type(ours) is type(theirs)
    for method in ("cdf", "sf", "pmf"):
        assert np.array_equal(getattr(ours, method)(k), getattr(theirs, method)(k)), method
    # anything that is not a SciPy distribution is called as it is
    assert freeze(lambda *args: ("called", args), 1, 2) == ("called", (1, 2))


def test_rsample_columns_join_a_sample_draw_only_where_their_values_differ():
    # torch's rsample() draws its sample() values for the same seed: the float32 grid and the
    # small calls are judged once, at the alpha of one set of columns; a backend whose
    # rsample() differs gets the rsample() values as more columns (see the test above).
    from polysample.conformance.grids import grids
    from polysample.conformance.runner import Runner, Target
    from polysample.core.plugins import load_backend

    r = Runner(quick=True)
    t = Target("torch", load_backend("torch"))
    f32 = next(g for g in grids("Normal") if g.label == "float32")
    for method in ("sample", "calls"):
        d = r.draw(t, "Normal", f32 if method == "sample" else grids("Normal")[0], method)
        assert d.parts == () and "(which drew the same values)" in d.called, d.called
        assert all(p.values.shape[1] == 3 for p in d.projections)
    t2 = Target("scaled", _RsampleScaled())
    d = Runner(quick=True).draw(t2, "Normal", f32, "sample")
    # (the float32 grid is drawn through generator=, which its labels say)
    assert d.parts == ("sample() with generator=", "rsample() with generator=")
    assert all(p.values.shape[1] == 6 for p in d.projections)
    assert d.point("float32", 4).startswith("float32[1] (") and d.point(
        "float32", 4).endswith("by rsample() with generator=")


def test_noise_motion_is_the_worst_ratio_over_copies_and_nan_is_never_within_tolerance():
    # grad_noise and grad_large's noise check share this: a NaN total derivative used to
    # compare False with the tolerance in grad_noise, and so passed.
    from polysample.conformance.layers.gradient import _noise_motion

    partial = torch.tensor([[1.0, -2.0], [4.0, 0.5]])
    worst, where, errs = _noise_motion(
        ["loc", "scale"], [torch.tensor([[0.0, 0.2], [0.0, 0.0]]), None], [partial, partial])
    # named with the element that moves most (copy 0, element 1: 0.2 / 2)
    assert (worst, where) == (pytest.approx(0.1), "loc[1]") and errs == {
        "loc": pytest.approx(0.1), "scale": 0.0}
    worst, where, _ = _noise_motion(["loc"], [torch.tensor([[float("nan"), 0.0]])],
                                    [torch.tensor([[1.0, 1.0]])])
    assert math.isnan(worst) and where == "loc[0]"
    assert _noise_motion(["loc"], [None], [None]) == (0.0, "", {})


def test_ks_location_is_where_the_distance_is_attained():
    # Four values against a uniform law: F(x_(i)) - i/n is -0.15, -0.3, -0.45, -0.1, so the
    # draws' CDF exceeds the reference's most just after 0.3 (0.75 against 0.3): D = 0.45.
    from polysample.conformance.layers.sampler import _ks_with_ulp

    xs = np.array([[0.1], [0.2], [0.3], [0.9]])
    D, at = _ks_with_ulp(xs, xs.copy(), np.array([False]), None)
    assert D[0] == pytest.approx(0.45)
    assert at[:, 0].tolist() == pytest.approx([0.3, 0.3, 0.75])
    # below the reference: values bunched high; just before 0.9 the draws' CDF is 0 and F 0.85
    xs = np.array([[0.85], [0.9], [0.95], [0.99]])
    D, at = _ks_with_ulp(xs, xs.copy(), np.array([False]), None)
    assert D[0] == pytest.approx(0.85) and at[:, 0].tolist() == pytest.approx([0.85, 0.85, 0.0])


def test_a_floored_tail_probability_is_not_printed_as_a_measured_z():
    from polysample.conformance.stats import Z_MAX, norm_isf, z_text

    assert z_text(6.25) == "z = 6.25"
    assert Z_MAX == norm_isf(1e-300) and z_text(Z_MAX).startswith("z > 36")


def test_the_independence_check_spends_no_alpha_on_categories_of_probability_zero():
    # The Categorical corners have 24 categories, 42 of their 96 (point, category) indicators
    # of probability 0 (a constant PIT: their products cannot leave the bound). With them the
    # check's alpha was split over 200 tests at three points (serial and batch neighbours of
    # every column); without them over 74, over 149 since a fourth point (24 equal
    # probabilities) joined, and over 207 since each column's halves are paired too.
    from polysample.conformance.stats import ALPHA_CHECK

    report = check_backend("torch", families=["Categorical"], layers=("sampler",), quick=True)
    (indep,) = [r for r in report.results if r.grid == "corners" and r.check == "sample_indep"]
    assert indep.status == "pass", indep.message
    # (207 tests: the zero-probability columns would add more than a hundred)
    assert ALPHA_CHECK / indep.alpha == pytest.approx(207, abs=0.5), indep.alpha


@pytest.mark.parametrize("k", [1, 2, 3, 8])
@pytest.mark.parametrize("count", [1, 3, 12])
def test_the_balance_bound_holds_for_sums_of_independent_uniforms(k, count):
    # The independence check's balance test fails a draw when sum Z_j^2 over its blocks has
    # P <= alpha by a density bound (a ball's volume times the largest density of a
    # standardized sum of k uniforms, sqrt(1/6) at k = 2). Simulated: the bound is never below
    # the frequency seen (200,000 draws, seed fixed), at thresholds of alpha 1e-2 and 1e-3.
    from polysample.conformance.layers.sampler import balance_log_bound, balance_threshold

    rng = np.random.default_rng(20261206 + 7 * k + count)
    reps = 200_000
    s = rng.random((reps, count, k)).sum(-1) - k / 2
    total = (12.0 / k * s ** 2).sum(-1)
    for alpha in (1e-2, 1e-3):
        t = balance_threshold(count, alpha)
        assert balance_log_bound(t, count) == pytest.approx(np.log(alpha))
        seen = float(np.mean(total <= t))
        # the frequency's own noise: 5 standard deviations of a binomial at alpha
        assert seen <= alpha + 5 * np.sqrt(alpha / reps), (seen, alpha, t)
    assert balance_log_bound(0.0, count) == -np.inf


@pytest.mark.parametrize("salt", [1, 40, 66, 122, 135, 138, 144])
def test_grad_cdf_reference_steps_stay_local_at_large_locations_and_small_scales(salt):
    # An outside trial: at the corners (loc 0, scale 1e-3) and (loc 1000, scale 1) the finite
    # difference's first step was 20 standard deviations, and two extrapolations from steps
    # across the whole law agreed by chance near |z| = 0.6: the unchanged torch backend failed
    # grad_cdf ("dx/dloc = 1, expected 1.0356") at these 7 of 150 salts.
    report = check_backend("torch", families=["Normal"], quick=True, salt=salt,
                           layers=["gradient"])
    assert report.ok, report.summary()
    grad_cdf = [r for r in report.results if r.check == "grad_cdf" and r.grid == "corners"]
    assert grad_cdf and all(r.status == "pass" for r in grad_cdf)


def test_grad_cdf_reference_derivative_is_exact_where_the_first_step_spans_the_law():
    from polysample.conformance.layers.gradient import _fd_derivative

    # Normal(1000, 1): dF/dloc = -pdf(x), for x across the law (z up to +-5)
    z = np.linspace(-5.0, 5.0, 201)
    xn = 1000.0 + z
    p = {"loc": np.full_like(xn, 1000.0), "scale": np.ones_like(xn)}
    F = stats.norm.cdf(z)
    est, rel = _fd_derivative("Normal", p, "loc", xn, F > 0.5)
    ok = rel < 1e-4
    assert ok.mean() > 0.9
    np.testing.assert_allclose(est[ok], -stats.norm.pdf(z[ok]), rtol=1e-5, atol=1e-12)


# ============================================================ messages that name the cause
def test_grad_scalar_states_the_plain_relative_error_and_names_its_statistic():
    # A gradient 5% off was reported as "relative error 0.0119": the statistic divides by the
    # size of the weighted sum's terms, not by |expected|. The message now gives both.
    import pathlib
    import sys

    sys.path.insert(0, str(pathlib.Path(__file__).parent))
    import mutants

    class FivePercentScaleGradient(mutants.ScaleGradientMutant):
        FACTOR = 1.05

    [check] = [c for c in plan(FivePercentScaleGradient(), "Normal", ["gradient"])
               if c.name == "grad_scalar" and c.grid == "typical"]
    res = Runner(quick=True).run(check)
    assert res.status == "fail", res.message
    assert "relative error |got - expected| / |expected| = 0.05." in res.message, res.message
    assert "sum_i |w_i dx_i/dscale| = " in res.message and \
        f": {res.statistic:.3g} > 0.005" in res.message, res.message


def test_a_reused_output_buffer_is_named_by_every_rule_that_sees_identical_draws(monkeypatch):
    # seeds named it; generator said "did not advance" and global_stream "two unseeded calls
    # gave identical values", sending the author to the seeding code.
    monkeypatch.setenv("POLYSAMPLE_PLUGINS", "mutants")
    ps.refresh()
    try:
        report = check_backend("mutant_bufferreuse", families=["Normal"],
                               layers=["semantics"], quick=True)
    finally:
        monkeypatch.delenv("POLYSAMPLE_PLUGINS")
        ps.refresh()
    by_check = {r.check: r.message for r in report.failures}
    assert set(by_check) == {"seeds", "global_stream", "generator"}, by_check
    for check, message in by_check.items():
        assert "a later call changed the values an earlier call had returned" in message and \
            "Return a new tensor from every call" in message, (check, message)
        assert "did not advance" not in message and "gave identical values" not in message


def test_sweep_cell_of_the_largest_float_below_one_reaches_the_end_of_the_support() -> None:
    """A value rounded to the largest float below the end of its support stands for the law's
    mass up to that end. Its cell's upper end (two spacings up) lies past the end, where the
    closed form is NaN: it is moved back to the end itself (F = 1), not to the value (the
    sweep failed a correct float32 RelaxedBernoulli at temperature 0.12, 15% of whose draws
    round to 1 - 2^-24)."""
    from scipy import special

    from polysample.conformance.layers.sweep import randomized_pit
    from polysample.conformance.reference import RelaxedBernoulli

    top = np.float32(1) - np.float32(2.0**-24)
    law = lambda p: RelaxedBernoulli(p["t"], p["p"])  # noqa: E731
    p = {"t": np.full(2, 0.12), "p": np.full(2, 0.5)}
    x = np.array([top, top], np.float32)
    u, w = randomized_pit(law, p, x, False, np.array([0.0, 1.0]))
    below = np.nextafter(np.nextafter(top, np.float32(0)), np.float32(0))
    assert w[1] == 0.0 and u[1] == 1.0  # V = 1: the cell's top, the end of the support
    assert w[0] == pytest.approx(float(RelaxedBernoulli(0.12, 0.5).sf(np.float64(below))))
    assert w[0] > 0.1  # the mass the cell stands for: 15% of the law

    # statistically: exact draws rounded to float32 and held at the largest float below 1
    # (and at least tiny) are uniform under the randomized PIT (2^18 draws; the mean square
    # of the normal scores is 1 within 6 standard errors: sd sqrt(2 / n) = 0.0028)
    n = 1 << 18
    rng = np.random.default_rng(7)
    t = rng.uniform(0.1, 0.15, n)
    q = rng.uniform(0.2, 0.8, n)
    e = rng.uniform(size=n)
    x64 = special.expit((special.logit(q) + special.logit(e)) / t)
    info = np.finfo(np.float32)
    xs = np.clip(x64.astype(np.float32), info.tiny, top)
    assert (xs == top).mean() > 0.1
    u, w = randomized_pit(law, {"t": t, "p": q}, xs, False, rng.uniform(size=n))
    z = np.where(u < 0.5, special.ndtri(u), -special.ndtri(w))
    assert abs(np.mean(z**2) - 1) < 6 * math.sqrt(2 / n), np.mean(z**2)
    assert abs(np.mean(z)) < 6 / math.sqrt(n), np.mean(z)


def test_the_suite_builds_distributions_with_gradients_enabled() -> None:
    # torch derives Beta's Dirichlet from the parameters: built under no_grad (as the sampler
    # layer's draws were), it held no graph back to them and rsample() drew off the learnt
    # path; the core now refuses a backend's detached result only where the values it reads
    # require grad.
    from polysample.conformance.runner import Target, make

    leaf = torch.tensor([2.0, 3.0], dtype=torch.float64, requires_grad=True)
    target = Target("torch", ps.load_backend("torch"))
    with torch.no_grad():
        d = make("Beta", {"concentration1": leaf, "concentration0": torch.ones(2).double()},
                 target)
    assert d.rsample((4,), seed=1).requires_grad
    with torch.no_grad():  # built by hand under no_grad: no gradient to give, no error
        plain = ps.Beta(leaf, torch.ones(2).double(), backend="torch")
    assert not plain.rsample((4,), seed=1).requires_grad


# ============================================================ calls_indep on discrete laws
@pytest.mark.parametrize("law", [stats.bernoulli(0.2), stats.poisson(0.5), stats.binom(20, 0.7)],
                         ids=["bernoulli", "poisson", "binomial"])
def test_the_call_spread_of_discrete_mid_pits_has_mean_one_and_holds_its_bounds(law):
    # calls_indep judges a discrete statistic on its centred mid-PITs, with the variance,
    # kurtosis and peak summed over the law: under independent draws the spread (the mean of
    # k m^2 / Var over the calls) has mean 1 exactly, and its exact bounds hold at their alpha.
    from polysample.conformance.layers.sampler import _call_spread_bounds, _mid_pit_moments
    from polysample.conformance.reference import Projection

    pr = Projection("value", np.zeros((0, 1)), law, discrete=True, column=lambda j: law)
    var, kurt, peak = _mid_pit_moments(pr, 0)
    rng = np.random.default_rng(20261207)
    reps, calls, k = 300, 256, 16
    x = law.rvs(size=(reps, calls, k), random_state=rng).astype(np.float64)
    g = 0.5 * (law.cdf(x) + law.cdf(x - 1)) - 0.5
    assert abs(g.mean()) < 5 * math.sqrt(var / g.size)
    assert g.var() == pytest.approx(var, rel=0.02)
    spread = k * (g.mean(axis=2) ** 2).mean(axis=1) / var
    sd = math.sqrt((2 + (kurt - 3) / k) / calls)  # of one run's spread
    assert abs(spread.mean() - 1) < 5 * sd / math.sqrt(reps)
    low, high = _call_spread_bounds(calls, k, 1e-2, kurt, peak)
    # each side's chance at most 1e-2 (the bounds are conservative: far fewer)
    assert (spread < low).mean() <= 0.03 and (spread > high).mean() <= 0.03
    # a call drawn by systematic resampling (stratified uniforms through the law's quantile)
    u = (rng.permuted(np.tile(np.arange(k), (reps, calls, 1)), axis=2)
         + rng.random((reps, calls, k))) / k
    xs = law.ppf(u)
    gs = 0.5 * (law.cdf(xs) + law.cdf(xs - 1)) - 0.5
    strat = k * (gs.mean(axis=2) ** 2).mean(axis=1) / var
    assert (strat < _call_spread_bounds(calls, k, 1e-13, kurt, peak)[0]).all()


def test_mid_pit_moments_are_exact_and_leave_out_laws_of_nearly_one_value():
    from polysample.conformance.layers.sampler import _mid_pit_moments
    from polysample.conformance.reference import Projection

    def moments(law):
        return _mid_pit_moments(Projection("v", np.zeros((0, 1)), law, discrete=True,
                                           column=lambda j: law), 0)

    p = 0.3  # a Bernoulli's mid-PITs are -p/2 (probability 1 - p) and (1 - p)/2 (p)
    var, kurt, peak = moments(stats.bernoulli(p))
    assert var == pytest.approx(p * (1 - p) / 4, rel=1e-12)
    assert kurt == pytest.approx(((1 - p) * p ** 4 + p * (1 - p) ** 4) / 16
                                 / (p * (1 - p) / 4) ** 2, rel=1e-12)
    assert peak == pytest.approx(((1 - p) / 2) ** 2 / var, rel=1e-12)
    assert moments(stats.poisson(1e-12)) is None  # one value all but surely


def test_seeds_process_restarts_its_other_process_without_leaking_a_pipe(monkeypatch):
    # The other process is kept between backends and started anew when a POLYSAMPLE_*
    # variable changes. The old one's stdout pipe was left to the garbage collector, whose
    # ResourceWarning then landed in whichever check ran (a Dask test's serial run reported a
    # "warnings" detail its cluster run had not).
    import gc
    import warnings

    from polysample.conformance.layers import semantics

    check = next(c for c in plan("torch", ["Normal"], ("semantics",))
                 if c.name == "seeds_process")
    assert Runner(quick=True).run(check).status == "pass"
    first = semantics._OTHER.proc
    monkeypatch.setenv("POLYSAMPLE_TEST_RESTART", "1")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = Runner(quick=True).run(check)
        gc.collect()
    assert result.status == "pass" and not result.details.get("warnings"), result.details
    assert semantics._OTHER.proc is not first
    assert first.poll() is not None and first.stdout.closed and first.stdin.closed
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)]


def _fork_rule(backend):
    """``fork_streams`` of ``backend`` (an instance), run as the suite runs it."""
    report = check_backend(backend, "Normal", quick=True, layers=("semantics",))
    return next(r for r in report.results if r.check == "fork_streams")


def _forked_normal(draw_in_child):
    """A torch-backed Normal whose unseeded draws call ``draw_in_child()`` in a forked child."""
    import os

    from polysample.backends.torch_backend import TorchBackend

    class Forked(TorchBackend):
        def __init__(self) -> None:
            super().__init__()
            self._pid = os.getpid()

        def families(self):  # type: ignore[no-untyped-def]
            return {"Normal": super().families()["Normal"]}

        def sample(self, family, params, sample_shape, *, seed=None):  # type: ignore[override]
            if seed is None and os.getpid() != self._pid:
                draw_in_child()
            return super().sample(family, params, sample_shape, seed=seed)

    return Forked()


def test_fork_streams_passes_the_builtin_streams_and_skips_a_refusal_with_its_reason():
    from polysample.core.errors import BackendUnavailableError

    assert _fork_rule(ps.load_backend("torch")).status == "pass"
    assert _fork_rule(ps.load_backend("numpy")).status == "pass"

    def refuse():
        raise BackendUnavailableError("this library cannot draw in a forked child")

    r = _fork_rule(_forked_normal(refuse))
    assert r.status == "skip" and "refuses to draw in a forked child" in r.message
    assert "this library cannot draw in a forked child" in r.message


def test_fork_streams_fails_another_error_in_the_child_and_skips_a_hang(monkeypatch):
    import time

    from polysample.conformance.layers import semantics

    def crash():
        raise RuntimeError("thread pool lost after fork")

    r = _fork_rule(_forked_normal(crash))
    assert r.status == "fail" and "RuntimeError: thread pool lost after fork" in r.message
    assert "BackendUnavailableError" in r.message
    monkeypatch.setattr(semantics, "FORK_TIMEOUT", 0.5)
    r = _fork_rule(_forked_normal(lambda: time.sleep(60)))
    assert r.status == "skip" and "did not draw within 0.5 s" in r.message
