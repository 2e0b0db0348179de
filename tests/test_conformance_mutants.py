"""A suite that cannot fail proves nothing: each mutant backend (tests/mutants.py, loaded
through the public plugin hook) must FAIL the suite, on the check meant to catch it.

The power mutants carry the design claims (docs/conformance.md, "Power"): quick mode catches a
2% error in a Normal scale, a Gamma rate, a Beta concentration and a Bernoulli probability;
full mode catches 1%. Fixed seeds: each assertion is deterministic.
"""

from __future__ import annotations

import json
import pathlib
import re
import sys

import pytest
import torch

import polysample as ps
from polysample.conformance import check_backend, check_backends
from polysample.conformance.api import plan
from polysample.conformance.runner import Runner

sys.path.insert(0, str(pathlib.Path(__file__).parent))
import mutants  # noqa: E402

LAYERS = {
    "log_prob_logits": ("density",),
    "log_prob_layouts": ("density",),
    "sample_pit_var": ("sampler",),
    "sample_pit_mean": ("sampler",),
    "sample_ks": ("sampler",),
    "rsample_ks": ("sampler",),
    "sample_indep": ("sampler",),
    "sample_repeats": ("sampler",),
    "sample_tails": ("sampler",),
    "sample_atoms": ("sampler",),
    "sample_sum": ("sampler",),
    "mixture_ks": ("sampler",),
    "sample_sweep": ("sampler",),
    "grad_sweep": ("gradient",),
    "mixture_grad": ("gradient",),
    "calls_ks": ("sampler",),
    "scalar_ks": ("sampler",),
    "ones_ks": ("sampler",),
    "smalls_ks": ("sampler",),
    "batches_ks": ("sampler",),
    "batches_indep": ("sampler",),
    "event2_ks": ("sampler",),
    "smalls_pit_mean": ("sampler",),
    "smalls_pit_var": ("sampler",),
    "calls_indep": ("sampler",),
    "calls_pairs": ("sampler",),
    "calls_repeats": ("sampler",),
    "grad_cdf": ("gradient",),
    "grad_mean": ("gradient",),
    "grad_shape": ("gradient",),
    "grad_large": ("gradient",),
    "grad_noise": ("gradient",),
    "grad_scalar": ("gradient",),
    "grad_second": ("gradient",),
    "rsample_grad": ("semantics",),
    "point_mass": ("semantics",),
    "dtype": ("semantics",),
    "log_prob_far": ("density",),
    "log_prob_edge": ("density",),
    "log_prob_huge": ("density",),
    "log_prob_gradcheck": ("density",),
    "log_prob_f64": ("density",),
    "generator": ("semantics",),
    "global_stream": ("semantics",),
    "broadcast": ("semantics",),
    "rsample_near_zero": ("semantics",),
    "shapes": ("semantics",),
    "seeds": ("semantics",),
    "seeds_process": ("semantics",),
    "fork_streams": ("semantics",),
    "log_prob": ("semantics",),
    "layouts": ("semantics",),
    "traced": ("semantics",),
}


@pytest.fixture
def with_mutants(monkeypatch):
    monkeypatch.setenv("POLYSAMPLE_PLUGINS", "mutants")
    ps.refresh()
    yield
    monkeypatch.delenv("POLYSAMPLE_PLUGINS")
    ps.refresh()


#: Mutants whose own test below makes a stronger claim (caught in quick mode, by the named
#: z-test): running the full-mode suite on them too would only repeat it, 16 s slower.
_OWN_TEST = {"mutant_gradsign_beta", "mutant_sorted", "mutant_sorted_poisson",
             "mutant_antithetic", "mutant_correlated_batch", "mutant_float32",
             "mutant_periodic", "mutant_periodic_poisson", "mutant_smallcalls",
             "mutant_float32_grad", "mutant_shape_grad", "mutant_chunk_detach",
             "mutant_tail_grad", "mutant_nan_grad", "mutant_exponential_tail",
             "mutant_nan_masking", "mutant_wide_batch", "mutant_cancelling_edge",
             "mutant_squaring_tail", "mutant_pareto_ratio", "mutant_relaxed_overflow",
             "mutant_binomial_normal", "mutant_poisson_normal", "mutant_constant_grad",
             "mutant_log_prob_grad", "mutant_constant",
             "mutant_log_prob_constant", "mutant_call_start", "mutant_nb_ceil",
             "mutant_batch3d_flip", "mutant_sample3d_repeat", "mutant_studentt_flip",
             "mutant_gamma_band", "mutant_gamma_grad_band", "mutant_dirichlet_band",
             "mutant_wishart_band", "mutant_dirichlet_grad_band", "mutant_wishart_grad_band",
             "mutant_multinomial_band", "mutant_large_call_seed", "mutant_seed_stride",
             "mutant_global_consumed", "mutant_broadcast_grad_lost", "mutant_mirrored_halves",
             "mutant_mirrored_batch"}


#: Mutants below quick mode's power, judged in full mode: a Normal shifted by 1% of its standard
#: deviation (quick mode's claim is 2%: the power mutants) and a Poisson wrong only between two
#: of the quick sweep's rates (0.68 of its threshold in quick mode), and a Chi2 whose df is
#: rounded above 30 (only the corner df 1000.5 meets it: a shift of 0.011 sd), and a standard
#: normal drawn as a sum of 12 uniforms (its tails 30% short beyond 3.1 sd: the tail count of 64
#: expected draws needs about 4e5 draws a point, quick mode has 2^18). Every other mutant must
#: fail quick mode, the mode ``make demo`` runs (and full mode, whose samples are larger).
_FULL_MODE = {"mutant_location", "mutant_poisson_band", "mutant_chi2_round_large",
              "mutant_irwin_hall"}


@pytest.mark.parametrize("name", sorted(set(mutants.MUTANTS) - _OWN_TEST))
def test_suite_fails_each_mutant_on_the_right_check(with_mutants, name):
    # The intended check's items alone (every grid of it), run as the suite's runner runs them:
    # the rest of the layer would cost 2-3 times as much and prove nothing more here.
    _cls, check, family = mutants.MUTANTS[name]
    assert name in ps.backend_names()  # registered through the plugin hook
    items = [c for c in plan(name, [family], LAYERS[check]) if c.name == check]
    assert items, f"{name}: no {check} check of {family} planned"
    runner = Runner(quick=name not in _FULL_MODE)
    results = [runner.run(c) for c in items]
    assert not [r for r in results if r.status == "error"], [r.message for r in results]
    caught = [r for r in results if r.status == "fail"]
    assert caught, f"{name}: expected {check} to fail; it passed: " + \
        "; ".join(f"{r.id}: {r.message}" for r in results)
    if caught[0].alpha is not None:
        assert caught[0].statistic > caught[0].threshold


@pytest.mark.parametrize("name", ["mutant_sorted", "mutant_sorted_poisson", "mutant_antithetic",
                                  "mutant_correlated_batch", "mutant_mirrored_halves",
                                  "mutant_mirrored_batch", "mutant_shifted_half"])
def test_dependent_draws_with_the_right_marginals_fail_the_independence_check_alone(
        with_mutants, name):
    # Sorted draws, antithetic pairs and correlated batch elements keep every column's law:
    # the marginal checks pass them, the independence check fails them, in quick mode.
    _cls, check, family = mutants.MUTANTS[name]
    report = check_backend(name, families=[family], layers=("sampler",), quick=True)
    failed = {r.check for r in report.failures}
    expected = {"sample_indep", "rsample_indep"} if family == "Normal" else {"sample_indep"}
    if name in ("mutant_sorted", "mutant_sorted_poisson", "mutant_antithetic",
                "mutant_correlated_batch"):
        # the batch-layout draw's elements and rows within each call are compared too
        expected.add("batches_indep")
    if name == "mutant_antithetic":
        # antithetic pairs balance each call too: the calls' means spread too little
        expected.add("calls_indep")
    if name == "mutant_sorted_poisson":
        # sorted counts come in long runs of one value: stretches that independent draws
        # would not repeat, so the repeat check fails them too
        expected.add("sample_repeats")
    assert failed == expected, [(r.id, r.message) for r in report.failures]
    caught = next(r for r in report.failures if r.check == check)
    assert caught.statistic > caught.threshold
    assert "draws are not independent" in caught.message
    if name == "mutant_correlated_batch":
        assert "between grid points" in caught.message and "loc=" in caught.message
    if name == "mutant_antithetic":
        assert "between neighbouring draws" in caught.message
    if name == "mutant_mirrored_halves":
        # every neighbouring pair independent; each draw paired with the one half a block on
        # (its mirror) correlates by -1
        assert "rows apart (the two halves of a batch element's rows" in caught.message, \
            caught.message
        assert caught.statistic > 5 * caught.threshold
    if name == "mutant_mirrored_batch":
        # every neighbouring pair independent: the balance test (an exact density bound)
        what = "the copies of each grid point (batch elements of one call)"
        assert f"{what} balance each other" in caught.message, caught.message
        assert caught.details["balance"], caught.details


@pytest.mark.parametrize("name", ["mutant_periodic", "mutant_periodic_poisson"])
def test_repeated_draws_with_the_right_marginals_fail_the_repeat_check(with_mutants, name):
    # Each call's first quarter of draws repeated four times: every column's law is right and
    # neighbouring draws are independent, so the marginal checks pass (a continuous column
    # then has ties, which before this check only made the suite skip its normal scores); the
    # independence check's pairs half a block apart are equal draws (correlation 1).
    _cls, check, family = mutants.MUTANTS[name]
    report = check_backend(name, families=[family], layers=("sampler",), quick=True)
    failed = {r.check for r in report.failures}
    # Normal's calls of 16 rows repeat their first 4 rows too: the calls' repeat check
    # (and the batch-layout draw's rows within each call: a row equals the row a quarter on;
    # and a Poisson's calls of two values repeat their first: calls_pairs)
    expected = ({"sample_repeats", "rsample_repeats", "calls_repeats", "sample_indep",
                 "rsample_indep", "batches_indep"} if family == "Normal"
                else {"sample_repeats", "sample_indep", "batches_indep", "calls_pairs"})
    assert failed == expected, [(r.id, r.message) for r in report.failures]
    grids = {"typical", "corners", "float32"} | ({"edges"} if family == "Poisson" else set())
    assert {r.grid for r in report.failures if r.check.endswith("_repeats")} == grids
    caught = next(r for r in report.failures if r.check == check and r.grid == "typical")
    assert caught.statistic > caught.threshold
    assert "repeats its draws" in caught.message
    # the typical grid's 2^18 draws per point are 32 copies of 8,192 rows (runner.stacked):
    # the call's quarter is 2,048 rows of each copy
    assert "the first at row 0 and again at row 2048" in caught.message, caught.message


@pytest.mark.parametrize("quick", [True, False])
@pytest.mark.parametrize("name,says,expected", [
    # K-S and the normal scores weigh every draw alike: a Normal with no draw beyond 3.5 sd
    # (4.7e-4 of its mass) passed both modes before the tail check (mean zeta^2 moves by 2.4
    # of its standard deviations at n = 2^18).
    ("mutant_truncated", "cut short", None),
    # A ziggurat's tail beyond 3.44 sd drawn as 3.44 + Exp(1): the mass beyond 3.44 sd is
    # right, so the levels of 64 and 256 expected draws, K-S and the normal scores pass; beyond
    # the 1/n quantile (4.6 sd in quick mode, 4.9 in full) about 30 times the one expected.
    ("mutant_exponential_tail", "far too heavy", 1.0),
])
def test_tails_cut_or_far_too_heavy_fail_the_tail_check_alone(with_mutants, quick, name, says,
                                                             expected):
    report = check_backend(name, families=["Normal"], layers=("sampler",), quick=quick)
    assert report.failures and {r.check for r in report.failures} == {
        "sample_tails", "rsample_tails"}, report.summary()
    for r in report.failures:
        assert says in r.message, r.message
        if expected is not None:
            # the level of one expected draw per point, or the extremes pooled over the
            # grid's points (64 expected beyond 4.2 sd in quick mode: 162 drawn)
            assert r.details["worst_expected"] == pytest.approx(expected) or (
                r.details.get("pooled") and r.details["worst_count"] > 2 * 64), r.details


def test_tails_cut_beyond_every_columns_level_fail_the_pooled_tail_level(with_mutants):
    # Cut at 3.7 sd: about 29 draws per point beyond it in quick mode, fewer than the columns'
    # 64-draw level reaches; the three points' extremes pooled expect 64 beyond 3.77 sd.
    report = check_backend("mutant_truncated_far", families=["Normal"], layers=("sampler",),
                           quick=True)
    assert {r.check for r in report.failures} == {"sample_tails", "rsample_tails"}, \
        report.summary()
    for r in report.failures:
        assert "pooled over the 3 points of" in r.message and "cut short" in r.message
        assert r.details["pooled"] == 3 and r.details["worst_count"] == 0


def test_a_backward_pass_that_masks_a_nan_cotangent_fails_rsample_grad_alone(with_mutants):
    # Right values and finite gradients; a NaN upstream gradient came back 0, as the torch and
    # numpy backends' Dirichlet (and torch's Beta) gradients did: a NaN loss gave finite
    # updates. Every other check passes it.
    report = check_backend("mutant_nan_masking", families=["Normal", "Dirichlet"],
                           layers=("semantics", "density", "gradient"), quick=True)
    assert {(r.family, r.check) for r in report.failures} == {
        ("Normal", "rsample_grad"), ("Dirichlet", "rsample_grad"),
        ("Normal", "log_prob_gradcheck"), ("Dirichlet", "log_prob_gradcheck")}, report.summary()
    for r in report.failures:
        assert "NaN upstream gradient" in r.message and "came back finite" in r.message, r.message


def test_a_capped_count_fails_the_tail_check_where_ks_and_the_sum_pass(with_mutants):
    # Poisson draws capped at rate + 4 sd: on the typical grid (rates 0.5 to 3) K-S and the
    # exact sum test pass; the count at or beyond the upper tail level is 0 where 64 or more
    # are expected.
    report = check_backend("mutant_capped_poisson", families=["Poisson"], layers=("sampler",),
                           quick=True)
    typical = {r.check: r for r in report.results if r.grid == "typical"}
    assert typical["sample_tails"].status == "fail", report.summary()
    assert "upper tail" in typical["sample_tails"].message
    assert "cut short" in typical["sample_tails"].message
    assert typical["sample_ks"].status == typical["sample_sum"].status == "pass"


def test_a_count_never_drawn_fails_the_atom_check_alone(with_mutants):
    # Geometric(0.2) never draws 20 (604 draws expected at n = 2^18): K-S, the exact sum and
    # the tail counts stay within their noise.
    report = check_backend("mutant_geometric_skip", families=["Geometric"],
                           layers=("sampler",), quick=True)
    assert {r.check for r in report.failures} == {"sample_atoms"}, report.summary()
    assert any("value = 20" in r.message and " 0 times" in r.message for r in report.failures)


def test_a_backend_wrong_in_small_calls_alone_fails_the_calls_checks_alone(with_mutants):
    # Normal's scale 1.5 times too large in calls of at most 64 values only: every large draw
    # is right, so only the typical grid drawn in calls of 16 rows (quick mode) and its first
    # point in calls of 2 to 64 values fail, in their law and spread (the one-value calls'
    # K-S check is for gross errors: a scale 1.5 times too large moves it by less than its
    # threshold).
    report = check_backend("mutant_smallcalls", families=["Normal"], layers=("sampler",),
                           quick=True)
    assert [r.id for r in report.failures] == ["mutant_smallcalls-Normal-typical-calls_ks",
                                               "mutant_smallcalls-Normal-typical-smalls_ks",
                                               "mutant_smallcalls-Normal-typical-smalls_pit_var"], [
        r.id for r in report.failures]
    caught = report.failures[0]
    assert caught.statistic > caught.threshold and caught.n == 256 * 16
    assert "sample() in calls of 16 rows" in caught.message and "loc=" in caught.message


def test_a_sampler_wrong_between_the_grid_points_fails_the_sweep_alone(with_mutants):
    # Gamma 5% too large for concentrations in [5, 20) only: the grids' points (1 to 4, 30,
    # 1000, ...) pass it; the sweep's band of concentrations there fails it in quick mode,
    # and the message names the band.
    report = check_backend("mutant_gamma_band", families=["Gamma"], layers=("sampler",),
                           quick=True)
    assert [r.id for r in report.failures] == ["mutant_gamma_band-Gamma-sweep-sample_sweep"]
    caught = report.failures[0]
    assert caught.statistic > caught.threshold
    assert "concentration in [" in caught.message and "concentration in [" in caught.point
    lo, hi = (float(v) for v in caught.point.split("[")[1].rstrip("]").split(", "))
    assert lo < 20 and hi > 5  # the band holds the defect


def test_an_impossible_sweep_draw_is_named_for_what_it_is(with_mutants):
    # FisherSnedecor with df1 and df2 swapped where df1 > df2: draws of 1e-17 where the law
    # has no mass to speak of. The message said "outside the support or not finite".
    report = check_backend("mutant_fisher_swap", families=["FisherSnedecor"],
                           layers=("sampler",), quick=True)
    caught = next(r for r in report.failures if r.check == "sample_sweep")
    assert "impossible under the reference law" in caught.message
    assert "puts no probability" in caught.message and "not finite" not in caught.message
    assert "df1=" in caught.point


@pytest.mark.parametrize("name, family, swept, lo_max, hi_min", [
    ("mutant_dirichlet_band", "Dirichlet", "concentration[", 80, 20),
    ("mutant_wishart_band", "Wishart", "df in [", 100, 30),
    # a whole number that torch takes for the whole batch: 16 values, each drawn in a call
    ("mutant_multinomial_band", "Multinomial", "total_count in [", 1000, 100),
])
def test_a_multivariate_sampler_wrong_between_the_grid_points_fails_the_sweep_alone(
        with_mutants, name, family, swept, lo_max, hi_min):
    # A Dirichlet's components of concentration in [20, 80) 5% too large before normalising,
    # a Wishart 3% too large for df in [30, 100): every grid's point passes them; the sweep's
    # bands of their statistics (marginals, projections) there fail them in quick mode, and
    # the message names the band and the statistic.
    report = check_backend(name, families=[family], layers=("sampler",), quick=True)
    assert [r.id for r in report.failures] == [f"{name}-{family}-sweep-sample_sweep"], [
        (r.id, r.message) for r in report.failures]
    caught = report.failures[0]
    assert caught.statistic > caught.threshold
    assert swept in caught.message and swept in caught.point
    lo, hi = (float(v) for v in caught.point.split(" in [")[1].split("]")[0].split(", "))
    assert lo < lo_max and hi > hi_min  # the band holds the defect
    assert "16 at each of" in caught.message
    assert caught.details["statistics"]  # which statistics were judged


def test_a_gradient_wrong_between_the_grid_points_fails_the_sweep_grid_alone(with_mutants):
    # Right values; the concentration gradient 5% off in [5, 20) only: every grid point's
    # identity holds; the sweep grid's point in the band fails it, and is named.
    report = check_backend("mutant_gamma_grad_band", families=["Gamma"],
                           layers=("gradient",), quick=True)
    assert [r.id for r in report.failures] == [
        "mutant_gamma_grad_band-Gamma-sweep-grad_sweep"], [r.id for r in report.failures]
    caught = report.failures[0]
    assert caught.statistic > caught.threshold
    conc = float(caught.point.split("concentration=")[1].split(",")[0])
    assert 5 <= conc < 20, caught.point
    # the message tells a defect in a band from one everywhere: the points of [5, 20) alone
    off = [z for z in caught.details["residual_z_per_point"] if abs(z) > 7.9]
    assert f"{len(off)} of the 32 points are off alone" in caught.message
    assert 3 <= len(off) <= 8, caught.details["residual_z_per_point"]


@pytest.mark.parametrize("name, family, swept, lo_max, hi_min", [
    ("mutant_dirichlet_grad_band", "Dirichlet", "concentration[", 80, 20),
    ("mutant_wishart_grad_band", "Wishart", "df in [", 100, 30),
])
def test_a_multivariate_gradient_wrong_between_the_grid_points_fails_the_sweep_alone(
        with_mutants, name, family, swept, lo_max, hi_min):
    # Right values; a Dirichlet's gradient in its components of concentration in [20, 80)
    # 10% too large, a Wishart's scale_tril gradient 10% too large for df in [30, 100): every
    # grid point's mean gradient is right; the mean-gradient sweep's bands there fail them in
    # quick mode, and the message names the band and the parameter.
    report = check_backend(name, families=[family], layers=("gradient",), quick=True)
    assert [r.id for r in report.failures] == [f"{name}-{family}-sweep-grad_sweep"], [
        (r.id, r.message) for r in report.failures]
    caught = report.failures[0]
    assert caught.statistic > caught.threshold
    assert swept in caught.message and swept in caught.point
    lo, hi = (float(v) for v in caught.point.split(" in [")[1].split("]")[0].split(", "))
    assert lo < lo_max and hi > hi_min  # the band holds the defect
    assert "(its own objective)" in caught.message
    assert "16 gradients at each of 4096 points" in caught.message


def test_a_backend_wrong_in_float32_alone_fails_the_float32_grid_alone(with_mutants):
    # Gamma's rate off by 4% in float32 only: the float64 grids pass it, the float32 grid (the
    # typical parameters in float32, a quarter of the draws) fails it, in quick mode.
    report = check_backend("mutant_float32", families=["Gamma"], layers=("sampler",),
                           quick=True)
    assert {r.grid for r in report.failures} == {"float32"}, [r.id for r in report.failures]
    caught = {r.check: r for r in report.failures}
    assert "sample_pit_mean" in caught and "sample_ks" in caught, sorted(caught)
    assert caught["sample_pit_mean"].statistic > caught["sample_pit_mean"].threshold
    assert "rate=" in caught["sample_pit_mean"].message  # names the float32 grid point
    assert not any(r.check.startswith("rsample") for r in report.results
                   if r.grid == "float32")  # sample() only on that grid (the error budget)


def test_float32_gradients_2_percent_off_fail_the_float32_grids_gradient_checks_alone(
        with_mutants):
    # Right values, right float64 gradients: every check passed this backend before the
    # gradient layer judged the float32 grid (per-sample tolerance 1e-2 there, 5e-3 in float64).
    # grad_scalar judges the float32 grid too (its scalar-parameter calls in float32).
    report = check_backend("mutant_float32_grad", families=["Normal", "Gamma"], quick=True)
    assert sorted(r.id for r in report.failures) == [
        "mutant_float32_grad-Gamma-float32-grad_cdf",
        "mutant_float32_grad-Gamma-float32-grad_scalar",
        "mutant_float32_grad-Normal-float32-grad_cdf",
        "mutant_float32_grad-Normal-float32-grad_scalar"], [r.id for r in report.failures]
    for r in report.failures:  # by the per-sample identity, then its conditional mean
        assert r.statistic > r.threshold, (r.id, r.statistic, r.threshold)
        assert "float32[" in r.message and "=" in r.message  # names the grid point


def test_a_wrong_reduction_over_the_sample_shape_fails_the_sample_shape_checks_alone(with_mutants):
    # Right values, right gradients with sample_shape (): every other check draws that way,
    # and passed this backend, whose gradient with a sample shape is the samples' mean. The
    # large call's gradient (1024 rows) is the mean too, and so is grad_scalar's weighted sum
    # (scalar parameters, 8,192 rows).
    report = check_backend("mutant_shape_grad", families=["Normal"], quick=True)
    assert sorted(r.id for r in report.failures) == [
        "mutant_shape_grad-Normal-example-grad_large",
        "mutant_shape_grad-Normal-example-grad_shape",
        "mutant_shape_grad-Normal-float32-grad_scalar",
        "mutant_shape_grad-Normal-typical-grad_scalar"], [r.id for r in report.failures]
    caught = next(r for r in report.failures if r.check == "grad_shape")
    assert caught.statistic > caught.threshold and caught.n == 32 * 16
    assert "rsample((16,))'s gradient" in caught.message


def test_independent_draws_of_a_wrong_law_are_not_called_dependent(with_mutants):
    # Gamma drawn with scale = rate: the PITs' means are far from 0, so their products are too.
    # The independence check fails (its null is "independent draws of the reference law"), and
    # says that the law may be the cause instead of blaming dependence alone.
    report = check_backend("mutant_ratescale", families=["Gamma"], layers=("sampler",),
                           quick=True)
    indep = [r for r in report.failures if r.check == "sample_indep"]
    assert indep, [r.id for r in report.failures]
    assert all("not independent draws of the reference law" in r.message
               and "see the K-S check" in r.message for r in indep), indep[0].message


def test_writing_into_inputs_or_reusing_a_result_buffer_fails_with_what_to_fix(with_mutants):
    report = check_backends(["mutant_inplace", "mutant_bufferreuse", "mutant_numpywrite"],
                            families=["Normal"], quick=True, layers=("semantics",))
    by = {r.id: r for r in report.results}
    inplace = by["mutant_inplace-Normal-example-shapes"]
    assert inplace.status == "fail"
    assert "BackendContractError" in inplace.message
    assert "modified scale in place during sample()" in inplace.message
    reuse = by["mutant_bufferreuse-Normal-example-seeds"]
    assert reuse.status == "fail"
    assert "a later call changed the values an earlier call had returned" in reuse.message
    numpy_write = by["mutant_numpywrite-Normal-example-log_prob"]
    assert numpy_write.status == "fail"
    assert "log_prob() changed the values of value" in numpy_write.message
    # Every value the buffer-reusing backend returns is right when it is returned.
    assert by["mutant_bufferreuse-Normal-example-shapes"].status == "pass"


def test_a_backend_reading_raw_memory_fails_the_layouts_rule_alone(with_mutants):
    # Broadcast parameters it copies, so shapes, broadcast and expand pass; a strided parameter
    # it reads as if contiguous, so it draws from other values: only `layouts` sees it.
    report = check_backend("mutant_rawmemory", layers=("semantics",), quick=True)
    assert {(r.family, r.check) for r in report.failures} == {
        ("Normal", "layouts"), ("Exponential", "layouts")}, report.summary()
    assert all("strided" in r.message and "drew other values" in r.message
               and "raw memory" in r.message for r in report.failures)


def test_rules_comparing_seeded_draws_blame_the_ignored_seed_not_their_route(with_mutants):
    # wrap, pickle and layouts compare two routes to one seeded draw: a backend that ignores
    # seeds fails them, and each must name the seed as the cause, not wrapping, pickling or
    # memory layouts (an outside plugin author was sent to "read parameters through their
    # strides" for an ignored seed).
    report = check_backend("mutant_seedignoring", families=["Normal"], layers=("semantics",),
                           quick=True)
    failed = {r.check: r.message for r in report.failures}
    assert {"seeds", "generator", "wrap", "pickle", "layouts"} <= set(failed), report.summary()
    for rule in ("wrap", "pickle", "layouts"):
        assert "drew different values twice" in failed[rule], failed[rule]
        assert "seeds rule" in failed[rule] and "strides" not in failed[rule], failed[rule]


@pytest.mark.parametrize("factor", [-1.0, 0.0, 1.05])
def test_a_gradient_wrong_by_an_odd_function_of_x_fails_the_conditional_mean_test(
        with_mutants, monkeypatch, factor):
    # A scale gradient with its sign flipped (or none, or 5% too large) fails the per-sample
    # identity; its residual is odd in x - loc, and the fallback tested only the mean of the
    # residuals weighted by an even function of x: it averaged out, and these passed both
    # modes. Each quartile of F(x) is tested too now.
    monkeypatch.setattr(mutants.ScaleGradientMutant, "FACTOR", factor)
    # StudentT's df is drawn through a chi-square (not monotone in one noise): its true
    # residuals are noise of order one, beside which 5% is below the test's power.
    families = ["Normal", "Laplace", "Cauchy"] + (["StudentT"] if factor <= 0 else [])
    report = check_backend("mutant_scalegrad", families=families, layers=("gradient",),
                           quick=True)
    failed = {(r.family, r.check) for r in report.failures}
    assert {(f, "grad_cdf") for f in families} <= failed, report.summary()


def test_a_wrong_gradient_fails_the_conditional_mean_test_drawn_in_calls(with_mutants):
    # Where the per-sample identity fails, the verdict comes from the conditional-mean z-test
    # over 2 000 samples (quick mode), drawn in 63 calls of 32: with the sign flipped it must
    # fail there too. torch's own Beta gradient passes.
    bad = check_backend("mutant_gradsign_beta", families=["Beta"], layers=("gradient",),
                        quick=True)
    caught = [r for r in bad.failures if r.check == "grad_cdf"]
    assert caught and all("conditional mean over 2000 samples" in r.message for r in caught), \
        [r.message for r in caught]
    good = check_backend("torch", families=["Beta"], layers=("gradient",), quick=True)
    assert good.ok, good.summary()
    # statistic and threshold mean another thing there than on a pass: the result says which
    # (an outside trial read a |z| as a relative error); the relative errors are given too
    assert all(r.details["statistic"].startswith("|z| of the residuals' conditional mean")
               and r.details["per_sample_max_rel_error"] for r in caught)
    passed = [r for r in good.results if r.check == "grad_cdf" and r.status == "pass"]
    assert passed and all(r.details["statistic"].startswith("max relative error")
                          or r.details["statistic"].startswith("|z|") for r in passed)
    assert any(r.details["statistic"].startswith("max relative error") for r in passed)


@pytest.mark.parametrize("name", sorted(mutants.POWER_MUTANTS))
def test_power_claims_a_small_parameter_error_fails_the_suite(with_mutants, name):
    # The claim is about the typical grid (docs/conformance.md, "Power"): its sampler checks
    # alone run here, as the suite's runner runs them (the other grids' would triple the time).
    family, param, factor, quick = mutants.POWER_MUTANTS[name]
    items = [c for c in plan(name, [family], ("sampler",)) if c.grid == "typical"]
    runner = Runner(quick=quick)
    results = [runner.run(c) for c in items]
    assert not [r for r in results if r.status == "error"], [r.message for r in results]
    caught = [r for r in results if r.status == "fail"]
    assert caught, f"{'quick' if quick else 'full'} mode missed {family} {param} x{factor}"
    # The message names the grid point with its parameter values (the typical grid's
    # probabilities are drawn as logits: grids.as_logits).
    named = ("probs=", "logits=") if param == "probs" else (f"{param}=",)
    assert any(n in r.message for r in caught for n in named), caught[0].message


def test_power_mutants_are_honest_with_the_right_factor(with_mutants, monkeypatch):
    # Control: the same wrapper with factor 1 passes the same checks.
    cls = mutants.param_mutant("Gamma", "rate", 1.0)
    report = check_backend(cls(), families=["Gamma"], layers=("sampler",), quick=True)
    assert report.ok, report.summary()


def test_the_unmutated_wrapper_passes_the_same_checks(with_mutants, monkeypatch):
    # The mutants' defects, not their wrapping, are what fails: the identity mutant passes.
    monkeypatch.setattr(mutants.ScaleMutant, "mutate", mutants._Mutant.mutate)
    ps.refresh()
    report = check_backend("mutant_scale", families=["Normal"], layers=("sampler",))
    assert report.ok, report.summary()


def test_a_backend_returning_garbage_fails_cleanly_and_the_run_goes_on(with_mutants, tmp_path):
    saved = []

    def on_result(rep):
        saved.append(len(rep.results))
        (tmp_path / "r.json").write_text(rep.to_json())

    report = check_backends(["mutant_garbage", "torch"], families=["Normal", "Exponential"],
                            quick=True, layers=("semantics", "sampler"), on_result=on_result)
    by = {r.id: r for r in report.results}
    assert by["mutant_garbage-Normal-typical-sample_ks"].status == "fail"
    assert "non-finite" in by["mutant_garbage-Normal-typical-sample_ks"].message
    # which grid points drew them, with their parameters
    assert "in 3 of its 3 columns, the first at typical[0] (loc=" in \
        by["mutant_garbage-Normal-typical-sample_ks"].message
    assert "BackendContractError" in by["mutant_garbage-Exponential-example-shapes"].message
    torch_results = [r for r in report.results if r.backend == "torch"]
    assert torch_results and all(r.status == "pass" for r in torch_results)
    data = json.loads((tmp_path / "r.json").read_text())
    assert len(data["checks"]) == len(report.results) and data["complete"]
    assert saved[0] < saved[-1]  # written incrementally, not only at the end


def test_a_raising_backend_is_reported_and_does_not_stop_the_run(with_mutants):
    report = check_backends(["mutant_garbage", "torch"], families=["Gamma"], quick=True,
                            layers=("semantics",))
    failed = [r for r in report.failures if r.backend == "mutant_garbage"]
    assert failed and all("simulated backend crash" in r.message for r in failed)
    assert all(r.status == "pass" for r in report.results if r.backend == "torch")


def test_a_failure_is_located_in_the_backends_code_not_in_polysamples(with_mutants):
    # Gamma raises in the mutant's own code: located there. Exponential returns the wrong
    # shape: the core's BackendContractError says so, with no location inside polysample's
    # core (an outside author read "(at distributions.py:608)" as a pointer into the library).
    report = check_backends(["mutant_garbage"], families=["Gamma", "Exponential"], quick=True,
                            layers=("semantics",))
    by = {r.id: r.message for r in report.results}
    crash = by["mutant_garbage-Gamma-example-shapes"]
    assert "simulated backend crash (at mutants.py:" in crash, crash
    contract = by["mutant_garbage-Exponential-example-shapes"]
    assert "BackendContractError" in contract and "(at " not in contract, contract
    # the call that broke the contract is named
    assert contract.startswith("sample(()) with batch_shape (): BackendContractError"), contract


def test_a_backend_that_fails_to_load_is_one_failed_check():
    class Broken(ps.Backend):
        def check_available(self):
            raise RuntimeError("missing dependency")

    ps.register_backend("broken_test", Broken)
    try:
        report = check_backends(["broken_test", "torch"], families=["Normal"], quick=True,
                                layers=("semantics",))
    finally:
        ps.unregister_backend("broken_test")
    assert [r.id for r in report.failures] == ["broken_test-*-all-load"]
    assert "missing dependency" in report.failures[0].message


def test_declared_expected_failure_is_xfail_and_keeps_the_report_ok(with_mutants):
    report = check_backend("mutant_geometric", families=["Geometric"], layers=("sampler",),
                           quick=True, expected_failures={"mutant_geometric-Geometric":
                                                          "off by one on purpose"})
    assert report.ok
    assert {r.status for r in report.results} <= {"xfail", "xpass"}
    assert any(r.status == "xfail" and r.reason == "off by one on purpose"
               and r.covered_by == "mutant_geometric-Geometric" for r in report.results)


def test_a_declared_failure_that_passes_is_reported_as_stale():
    report = check_backend("torch", families=["Normal"], layers=("semantics",),
                           expected_failures={"torch-Normal-example-seeds": "no longer true"})
    assert [r.id for r in report.stale] == ["torch-Normal-example-seeds"]
    assert "STALE" in report.summary()


def test_agreement_layer_compares_backends_pairwise(with_mutants):
    report = check_backends(["torch", "mutant_ratescale"], families=["Gamma"], quick=True,
                            layers=("sampler", "agreement"))
    agree = {r.id: r for r in report.results if r.layer == "agreement"}
    assert "torch+mutant_ratescale-Gamma-typical-agree_pit_mean" in agree
    assert any(r.status == "fail" for r in agree.values())


def test_a_declared_draw_covers_the_agreement_checks_that_compare_it(with_mutants):
    # A known defect of one backend's family must not turn the cross-backend checks red.
    report = check_backends(["torch", "mutant_ratescale"], families=["Gamma"], quick=True,
                            layers=("sampler", "agreement"),
                            expected_failures={"mutant_ratescale-Gamma": "rate read as scale"})
    assert report.ok, report.summary()
    agree = [r for r in report.results if r.layer == "agreement" and r.status == "xfail"]
    assert agree and all(r.covered_by.startswith("mutant_ratescale-Gamma") and
                         "compares" in r.covered_by for r in agree)
    # Passing agreement checks stay passes (they are not stale declarations).
    assert not any(r.status == "xpass" for r in report.results if r.layer == "agreement")


def test_declarations_match_fields_not_substrings(with_mutants):
    # A backend named "mytorch" is not covered by a "torch" declaration ...
    bad = mutants.param_mutant("Normal", "scale", 1.5)()
    bad.name = "mytorch"
    report = check_backend(bad, families=["Normal"], layers=("sampler",), quick=True,
                           expected_failures={"torch-Normal": "torch's, not mytorch's"})
    assert not report.ok and all(r.status == "fail" for r in report.failures)
    # ... and "tfp" does not cover "tfp-tf", whose hyphen is no field separator.
    from polysample.conformance.expected import parse_declarations

    [d_tfp, d_tf] = parse_declarations({"tfp-Dirichlet-corners-sample_ks": "a",
                                        "tfp-tf-Dirichlet": "b"})
    assert (d_tfp.backend, d_tfp.family, d_tfp.grid, d_tfp.check) == \
        ("tfp", "Dirichlet", "corners", "sample_ks")
    assert (d_tf.backend, d_tf.family, d_tf.grid, d_tf.check) == ("tfp-tf", "Dirichlet", "*", "*")


def test_check_backend_judges_an_unregistered_instance_without_registering_it():
    from polysample.backends.torch_backend import TorchBackend

    before = ps.backend_names()
    inst = TorchBackend()
    report = check_backend(inst, families=["Exponential"], layers=("semantics",))
    assert report.ok and report.results
    assert all(r.backend == "torch" for r in report.results)  # its own name attribute
    assert ps.backend_names() == before


def test_an_instance_with_a_misspelt_family_fails_as_a_registered_one_would_load():
    # Registered, a families() key that is no torch family stops the backend from loading; an
    # instance judged directly gets the same check (a failed "load" check naming the key), not
    # a green report that silently dropped the family.
    from polysample.backends.torch_backend import TorchBackend
    from polysample.conformance import parametrize_with_checks

    class Misspelt(TorchBackend):
        def families(self):
            fams = dict(super().families())
            fams["Gama"] = fams.pop("Gamma")
            return fams

    report = check_backend(Misspelt(), families=["Exponential"], layers=("semantics",))
    assert not report.ok
    [load] = [r for r in report.results if r.check == "load"]
    assert load.status == "fail" and "'Gama'" in load.message and "Did you mean 'Gamma'" \
        in load.message
    mark = parametrize_with_checks([Misspelt()], families=["Exponential"])
    [param] = [p for p in mark.args[1] if p.id.endswith("-all-load")]
    with pytest.raises(AssertionError, match="'Gama'"):
        param.values[0]()


def test_contract_rules_name_a_parameter_write_before_blaming_the_seed(with_mutants):
    # A backend that writes into a parameter through NumPy on every call makes a repeated
    # seeded call draw other values: the rules that compare seeded draws name the write (the
    # cause), not "the same seed gave different values" or the global stream (its symptoms).
    report = check_backend("mutant_drifting_write", families=["Exponential"],
                           layers=("semantics",), quick=True)
    by_check = {r.check: r for r in report.failures}
    for check in ("seeds", "global_stream", "generator"):
        assert "changed the values of rate, which the caller passed" in \
            by_check[check].message, (check, by_check[check].message)
    assert not any("the same seed gave different values" in r.message
                   or "did not reproduce" in r.message for r in report.failures), \
        [(r.id, r.message) for r in report.failures]


def test_a_backend_ignoring_seeds_is_told_so_by_the_rules_that_compare_seeded_draws(
        with_mutants):
    # rsample_grad compares an expanded leaf with a contiguous one drawn with the same seed:
    # without "same seed, same values" it says that, not "read broadcast parameters through
    # their strides" (as wrap, pickle and layouts do).
    report = check_backend("mutant_seedignoring", families=["Normal"], layers=("semantics",),
                           quick=True)
    by_check = {r.check: r for r in report.failures}
    for check in ("rsample_grad", "wrap", "pickle", "layouts"):
        assert "does not derive its draws from the seed" in by_check[check].message, check
    assert "strides" not in by_check["rsample_grad"].message


def test_the_table_tells_a_family_without_checks_from_an_unsupported_one():
    # The agreement layer alone has no check of Bernoulli: both backends claim it, so the
    # table says "no checks", not "unsupported" (which numpy's LKJCholesky is).
    from polysample.conformance import check_backends

    r = check_backends(["torch", "numpy"], families=["Bernoulli", "Normal", "LKJCholesky"],
                       layers=["agreement"], quick=True)
    assert r.cell("torch", "Bernoulli") == r.cell("numpy", "Bernoulli") == "no checks"
    assert r.cell("numpy", "LKJCholesky") == "unsupported"
    assert r.cell("torch", "Normal") == "pass"


def test_a_full_mode_declaration_applies_to_full_runs_only(with_mutants):
    # A defect only full mode's samples detect: quick runs ignore the declaration (their pass
    # is no stale xpass), full runs expect the failure.
    decl = {"expected_failure": [{"backend": "torch", "family": "Normal", "grid": "example",
                                  "check": "seeds", "mode": "full", "reason": "full only"}]}
    quick = check_backend("torch", families=["Normal"], layers=("semantics",), quick=True,
                          expected_failures=decl)
    assert quick.ok and not quick.stale
    full = check_backend("torch", families=["Normal"], layers=("semantics",),
                         expected_failures=decl)
    assert [r.id for r in full.stale] == ["torch-Normal-example-seeds"]
    from polysample.conformance.expected import parse_declarations

    [d] = parse_declarations(decl)
    assert d.mode == "full" and d.applies_to(quick=False) and not d.applies_to(quick=True)
    with pytest.raises(ValueError, match="mode must be"):
        parse_declarations({"expected_failure": [{"backend": "torch", "mode": "fast",
                                                  "reason": "x"}]})


def test_a_declaration_that_is_not_strict_expects_the_failure_without_calling_a_pass_stale(
        with_mutants):
    # strict = false: a defect that a sample shows or not depending on the seed. A failure is
    # xfail, a pass stays a pass (no stale declaration); strict declarations report the pass.
    from polysample.conformance.expected import parse_declarations

    def decl(strict: bool, backend: str) -> dict:
        return {"expected_failure": [{"backend": backend, "family": "Normal",
                                      "check": "seeds", "strict": strict, "reason": "rare"}]}

    passing = check_backend("torch", families=["Normal"], layers=("semantics",),
                            expected_failures=decl(False, "torch"))
    assert passing.ok and not passing.stale
    assert {r.status for r in passing.results if r.check == "seeds"} == {"pass"}
    strict = check_backend("torch", families=["Normal"], layers=("semantics",),
                           expected_failures=decl(True, "torch"))
    assert [r.id for r in strict.stale] == ["torch-Normal-example-seeds"]
    # (a backend that ignores generator= draws from the global stream: global_stream fails too)
    failing = check_backend("mutant_generator", families=["Normal"], layers=("semantics",),
                            expected_failures={"expected_failure": [
                                {"backend": "mutant_generator", "family": "Normal",
                                 "check": check, "strict": False, "reason": "rare"}
                                for check in ("generator", "global_stream")]})
    assert failing.ok and [r.status for r in failing.results
                           if r.check in ("generator", "global_stream")] == ["xfail", "xfail"]
    [d] = parse_declarations(decl(False, "torch"))
    assert d.strict is False
    with pytest.raises(ValueError, match="strict must be true or false"):
        parse_declarations({"expected_failure": [{"backend": "torch", "strict": "no",
                                                  "reason": "x"}]})


def test_a_batch_read_column_major_fails_the_stacked_grids_not_the_calls(with_mutants):
    # Poisson (sample only, so no gradient check sees the batch order): every shape is right
    # and one-dimensional batches are read right. The sampler draws each grid as the batch
    # (2, G) (runner.stacked): the mixed grid points fail its distribution checks, while the
    # calls draw (one-dimensional batches) passes.
    report = check_backend("mutant_column_major", families=["Poisson"], layers=("sampler",),
                           quick=True)
    failed = {r.check for r in report.failures}
    assert {"sample_ks", "sample_atoms"} <= failed, sorted(failed)
    assert "calls_ks" not in failed
    assert {r.grid for r in report.failures} >= {"typical", "float32"}


def test_a_multivariate_sampler_wrong_above_dimension_3_fails_the_float32_grid_alone(
        with_mutants):
    report = check_backend("mutant_transposed_dim5", families=["MultivariateNormal"],
                           layers=("sampler",), quick=True)
    assert {r.grid for r in report.failures} == {"float32"}, [r.id for r in report.failures]
    caught = [r for r in report.failures if r.check == "sample_ks"]
    assert caught and "scale_tril=[[0.5, 0, 0, 0, 0]" in caught[0].message


def test_a_sampler_wrong_on_wide_batches_fails_the_float32_grid_alone(with_mutants):
    # Right on batches of up to 1,024 elements: every grid but float32, whose copies make a
    # batch of thousands (grids.WIDE_ROWS rows each), and the small calls. The sweep's draw,
    # a batch of 2^18 parameter points, is wide too, and fails it.
    from polysample.conformance.grids import WIDE_ROWS
    from polysample.conformance.runner import STACKED_COPIES

    report = check_backend("mutant_wide_batch", families=["Poisson"], layers=("sampler",),
                           quick=True)
    assert {r.grid for r in report.failures} == {"float32", "sweep"}, [
        r.id for r in report.failures]
    assert any(r.check == "sample_ks" for r in report.failures)
    # the layout the mutant needs: the stacked grids stay at 32 copies
    assert STACKED_COPIES * 6 <= 1024 < 65536 // WIDE_ROWS * 3


def test_the_seeds_rules_descent_tail_is_exact():
    import itertools
    import math

    from polysample.conformance.layers.semantics import _descent_tail

    for m in (2, 3, 5, 7):
        counts = [0] * m
        for perm in itertools.permutations(range(m)):
            counts[sum(perm[i + 1] < perm[i] for i in range(m - 1))] += 1
        for k in range(m):
            dev = abs(k - (m - 1) / 2)
            want = sum(c for j, c in enumerate(counts) if abs(j - (m - 1) / 2) >= dev)
            assert _descent_tail(m, k) == pytest.approx(want / math.factorial(m))


def test_a_log_prob_computed_as_log_pdf_fails_the_far_and_huge_checks_alone(with_mutants):
    # Right to 1e-15 at the typical draws (log_prob_f64, log_prob_f32 and gradcheck pass):
    # only where the density underflows float64 (about 38 sd out, and at 1e30) is it -inf.
    report = check_backend("mutant_log_of_density", families=["Normal"], layers=("density",))
    assert {r.check for r in report.failures} == {"log_prob_far", "log_prob_huge"}, [
        r.id for r in report.failures]
    assert "got -inf, want -800" in report.failures[0].message


def test_a_log_prob_cancelling_near_an_end_fails_log_prob_edge_alone(with_mutants):
    # TFP 0.25's Kumaraswamy formula, log1p(-x^a): right to 1e-15 at the typical draws (the
    # other density checks pass), inf or 2% off within a few ulps of 1.
    report = check_backend("mutant_cancelling_edge", families=["Kumaraswamy"],
                           layers=("density",))
    assert {r.check for r in report.failures} == {"log_prob_edge"}, [
        r.id for r in report.failures]
    assert "near an end of the support" in report.failures[0].message
    assert "concentration1=" in report.failures[0].message


def test_a_log_prob_squaring_the_standardized_value_fails_log_prob_huge_alone(with_mutants):
    # torch 2.13's StudentT formula: right at typical and far values (log_prob_far asks where
    # the density is exp(-800), z about 1e87 for df = 2.5), -inf beyond |z| = 1.3e154.
    report = check_backend("mutant_squaring_tail", families=["StudentT"], layers=("density",))
    assert {r.check for r in report.failures} == {"log_prob_huge"}, [
        r.id for r in report.failures]
    assert "at a huge value" in report.failures[0].message
    assert "df=" in report.failures[0].message
    assert {r.check for r in report.results if r.status == "pass"} >= {
        "log_prob_f64", "log_prob_f32", "log_prob_far", "log_prob_gradcheck"}


def test_a_standardized_value_overflowing_in_float32_fails_log_prob_huge_alone(with_mutants):
    # torch 2.13's Pareto: log(x / scale), right in float64 and at typical float32 values;
    # at float32's largest value x / scale overflows for the grid's scale 0.5.
    report = check_backend("mutant_pareto_ratio", families=["Pareto"], layers=("density",))
    assert {r.check for r in report.failures} == {"log_prob_huge"}, [
        r.id for r in report.failures]
    message = report.failures[0].message
    assert message.startswith("float32 log_prob at a huge value"), message
    assert "3.4028234" in message and "scale=0.5" in message, message


def test_an_overflowing_logit_fails_log_prob_edge_at_the_corners_alone(with_mutants):
    # torch 2.13's RelaxedBernoulli: log1p(exp(d)) overflows near 0 only where the
    # temperature is large (the corners' 3), not at the example grid's 0.5.
    report = check_backend("mutant_relaxed_overflow", families=["RelaxedBernoulli"],
                           layers=("density",))
    assert [(r.check, r.grid) for r in report.failures] == [("log_prob_edge", "corners")], [
        r.id for r in report.failures]
    assert "temperature=3" in report.failures[0].message, report.failures[0].message


def test_huge_points_lie_in_the_support_on_each_open_side():
    import torch

    from polysample.conformance.layers.density import HUGE_VALUES, huge_points

    values = HUGE_VALUES[torch.float64]
    x, inside = huge_points(torch.distributions.Normal(torch.zeros(2, dtype=torch.float64), 1.0))
    assert x.shape == (2 * len(values), 2) and bool(inside.all()) and x.dtype == torch.float64
    assert sorted(x[:, 0].tolist()) == sorted([s * h for h in values for s in (1, -1)])
    x, inside = huge_points(torch.distributions.Gamma(torch.ones(3, dtype=torch.float64), 1.0))
    assert inside.sum(0).tolist() == [len(values)] * 3  # the positive ones only
    assert bool((x[inside] > 0).all())
    assert huge_points(torch.distributions.Beta(torch.tensor([2.0]), torch.tensor([3.0]))) is None
    x, inside = huge_points(torch.distributions.Normal(torch.zeros(1), 1.0), torch.float32)
    assert x.dtype == torch.float32 and float(x.max()) == torch.finfo(torch.float32).max


def test_edge_points_lie_inside_near_each_finite_end():
    import torch

    from polysample.conformance.layers.density import EDGE_STEPS, edge_points

    beta = torch.distributions.Beta(torch.tensor([0.5, 2.0], dtype=torch.float64),
                                    torch.tensor([0.5, 3.0], dtype=torch.float64))
    x, inside = edge_points(beta)
    # the lower end itself first (torch's unit interval holds it), then beside each end
    low = len(EDGE_STEPS) + 1
    assert x.shape == (2 * len(EDGE_STEPS) + 1, 2) and bool(inside.all())
    assert x[0].tolist() == [0.0, 0.0]
    assert 0 < float(x[1:low].max()) <= 2.0 ** -380  # just above 0
    assert float(x[low:].min()) >= 1 - 2.0 ** -20  # just below 1
    assert 1 - 2.0 ** -52 in x[low:, 0].tolist()
    pareto = torch.distributions.Pareto(torch.tensor([2.0], dtype=torch.float64),
                                        torch.tensor([3.0], dtype=torch.float64))
    x, inside = edge_points(pareto)
    assert x.shape == (len(EDGE_STEPS) + 1, 1) and bool(inside.all())
    assert x[:, 0].tolist() == [2.0] + [2.0 + 2.0 * 2.0 ** -k for k in EDGE_STEPS]
    assert edge_points(torch.distributions.Normal(0.0, 1.0)) is None


def test_far_points_reach_the_level_in_the_support_only():
    import numpy as np
    from scipy import stats

    from polysample.conformance.layers.density import FAR_LOG_DENSITY, far_points

    draws = np.array([[-1.0, 0.5], [1.0, 2.0]])
    law = stats.norm(np.array([0.0, 1.0]), np.array([1.0, 0.5]))
    xs, found = far_points(law, draws, lambda x: np.ones(x.shape, bool))
    assert found.all()
    lp = law.logpdf(xs)
    assert np.all((lp <= FAR_LOG_DENSITY) & (lp >= 2 * FAR_LOG_DENSITY)), lp
    assert np.all(xs[0] < draws.min(0)) and np.all(xs[1] > draws.max(0))
    # a support that ends (x >= 0): the lower side is not found, its value stays inside
    xs, found = far_points(stats.expon(), np.array([[0.5], [2.0]]), lambda x: x >= 0)
    assert found.tolist() == [[False], [True]] and xs[0, 0] == 1.25


@pytest.mark.parametrize("name", ["mutant_float32_rsample", "mutant_small_rsample"])
def test_a_wrong_rsample_law_in_float32_or_small_calls_fails_on_its_columns(with_mutants,
                                                                            name):
    # The per-sample gradient identity holds for any noise of a location-scale family: only
    # the law of the values shows these. The float32 grid and the small calls are judged on
    # sample() and, as more columns of the same checks, on rsample().
    report = check_backend(name, families=["Normal"], layers=("sampler", "gradient"),
                           quick=True)
    grid, check = ("float32", "sample_ks") if name == "mutant_float32_rsample" else (
        "typical", "calls_ks")
    assert {r.grid for r in report.failures} == {grid}, [r.id for r in report.failures]
    caught = [r for r in report.failures if r.check == check]
    assert caught and "by rsample()" in caught[0].message, [r.id for r in report.failures]
    assert not any(r.layer == "gradient" for r in report.failures)


def test_gradients_detached_after_a_first_chunk_fail_the_large_call_checks_alone(
        with_mutants):
    # Right values, and right gradients in every call of at most 512 sample rows: every other
    # gradient check draws so. One call of 1024 rows on 32 parameter copies (65,536 values)
    # sees the rows after the first chunk without gradient, on each kind of reference: the
    # per-sample identity (Normal; StudentT, whose df path is not monotone in one noise), the
    # analytic mean gradient (Dirichlet) and the noise's invariance (LogisticNormal). So does
    # grad_scalar's call of 8,192 rows, for the location-scale families.
    report = check_backend("mutant_chunk_detach", quick=True)
    assert sorted(r.id for r in report.failures) == sorted(
        [f"mutant_chunk_detach-{f}-example-grad_large"
         for f in ("Dirichlet", "LogisticNormal", "Normal", "StudentT")]
        + [f"mutant_chunk_detach-{f}-{g}-grad_scalar" for f in ("Normal", "StudentT")
           for g in ("typical", "float32")]), \
        report.summary()
    for r in report.failures:
        if r.check == "grad_scalar":
            assert "with scalar parameters is wrong" in r.message, r.message
            continue
        assert r.statistic > r.threshold
        assert "rsample((1024,)) on a batch of (32, 2)" in r.message, r.message
        if r.family != "LogisticNormal":  # a t-test at the pooled alpha
            assert r.alpha is not None and r.alpha < 1e-13
            assert r.statistic > 4 * r.threshold, (r.id, r.statistic, r.threshold)


def test_gradients_wrong_above_the_99_5_percent_quantile_fail_the_large_call_checks_alone(
        with_mutants):
    # Right values; Normal's gradients 1.5 times too large for draws above the 99.5% quantile.
    # grad_cdf's 32 samples per grid found none up there in either mode, and the sums of
    # grad_large average the few they hold; its most extreme row of each column, judged by the
    # per-sample identity, finds them, and grad_scalar's 256 weighted rows of 8,192 hold some.
    report = check_backend("mutant_tail_grad", families=["Normal"], quick=True)
    assert [r.id for r in report.failures] == ["mutant_tail_grad-Normal-typical-grad_scalar",
                                               "mutant_tail_grad-Normal-float32-grad_scalar",
                                               "mutant_tail_grad-Normal-example-grad_large"], [
        r.id for r in report.failures]
    caught = report.failures[2]
    assert "at the most extreme row of a column" in caught.message, caught.message
    assert caught.statistic == pytest.approx(0.5) and caught.threshold == 5e-3
    full = check_backend("mutant_tail_grad", families=["Normal"], layers=("gradient",),
                         quick=False)
    assert [r.id for r in full.failures] == [r.id for r in report.failures], [
        r.id for r in full.failures]


def test_nan_gradients_fail_every_gradient_check(with_mutants):
    # Right values, NaN gradients: grad_noise compared the NaN ratio with its tolerance and
    # grad_mean its NaN z with its threshold (both False: no failure), and passed them.
    report = check_backend("mutant_nan_grad", families=["LogisticNormal", "MultivariateNormal"],
                           layers=("gradient",), quick=True)
    failed = {(r.family, r.grid, r.check) for r in report.failures}
    assert failed == {(r.family, r.grid, r.check) for r in report.results}, report.summary()
    assert ("MultivariateNormal", "typical", "grad_mean") in failed
    assert ("LogisticNormal", "typical", "grad_noise") in failed
    for r in report.failures:
        if r.check in ("grad_noise", "grad_mean"):
            assert "nan" in r.message or "inf" in r.message, r.message


class _WideUniform(mutants._Mutant):
    """Uniform drawn 2% past ``high``: values where the reference CDF is 1."""

    FAMILIES = ("Uniform",)
    name = "wide_uniform"

    def mutate(self, family, params, x):  # type: ignore[no-untyped-def]
        return params["low"] + (x - params["low"]) * 1.02


def test_values_where_the_reference_cdf_is_0_or_1_fail_naming_the_grid_point():
    report = check_backend(_WideUniform(), families=["Uniform"], layers=("sampler",),
                           quick=True)
    pit = [r for r in report.failures if r.check in ("sample_pit_mean", "sample_pit_var")]
    assert pit, report.summary()
    for r in pit:
        # which method drew them, how many, and the grid point's parameter values
        assert re.match(r"sample\(\)( and rsample\(\))?( with generator=| from the global "
                        r"stream)?( \(which drew the same values\))? drew ", r.message), r.message
        assert f"where the reference CDF is 0 or 1, the first at {r.grid}[" in r.message
        assert "low=" in r.point and "high=" in r.point and r.point in r.message, r.message


@pytest.mark.parametrize("name,family,point", [
    # Binomial(1000, 0.05) drawn by a rounded normal approximation: the right mean, nearly
    # the right variance, no skewness. Quick mode passed it with 2^15 draws at the corners
    # (tail count z 6.3 against 7.7, an outside tester's trial); Binomial's corners draw 2^18.
    ("mutant_binomial_normal", "Binomial", "total_count=1000, probs=0.05"),
    # Poisson above a rate of 30 likewise (an outside author's plugin did it above 100, where
    # the corners' next rate, 1000, is too nearly normal to tell): the corner rate 40, whose
    # lower tail holds 2.4 times the reference's draws; Poisson's corners draw 2^18 too.
    ("mutant_poisson_normal", "Poisson", "rate=40"),
])
def test_a_normal_approximation_at_a_count_corner_fails_in_quick_mode(with_mutants, name,
                                                                      family, point):
    report = check_backend(name, families=[family], layers=("sampler",), quick=True)
    caught = {(r.grid, r.check) for r in report.failures}
    assert ("corners", "sample_tails") in caught and {g for g, _ in caught} == {"corners"}, caught
    tails = next(r for r in report.failures if r.check == "sample_tails")
    assert point in tails.message, tails.message


def test_a_value_every_call_starts_with_fails_the_calls_repeat_check_in_quick_mode(with_mutants):
    # Normal's first value of every call is loc: a large draw holds it once (every other
    # check passes), the typical grid drawn in 256 calls of 16 rows holds it 256 times (and
    # every one-value call is loc: ones_ks).
    report = check_backend("mutant_call_start", families=["Normal"], layers=("sampler",),
                           quick=True)
    assert [r.id for r in report.failures] == ["mutant_call_start-Normal-typical-calls_repeats",
                                               "mutant_call_start-Normal-typical-ones_ks"], [
        r.id for r in report.failures]
    r = report.failures[0]
    assert "value = -0.5 256 times at typical[0] (loc=-0.5, scale=0.5)" in r.message, r.message
    assert "in calls of 16 rows" in r.message and r.statistic > r.threshold


def test_a_doubled_mean_at_a_rare_event_corner_fails_in_quick_mode(with_mutants):
    # NegativeBinomial drawn with ceil(total_count): at the corner (0.5, 1e-3) a draw is
    # non-zero once in 2,000, and 2^15 draws (the corners' size before) held 16 of them:
    # quick mode passed. Every count family's corners draw 2^18 in quick mode.
    report = check_backend("mutant_nb_ceil", families=["NegativeBinomial"],
                           layers=("sampler",), quick=True)
    caught = {(r.grid, r.check) for r in report.failures}
    # (the sweep fails it too, in its band of total counts from 0.1 to 0.24, and since the
    # typical total counts are not whole, 2.5 to 8.5, the typical and float32 grids)
    assert ("corners", "sample_sum") in caught, caught
    assert {g for g, _ in caught} == {"corners", "sweep", "typical", "float32"}, caught
    r = next(r for r in report.failures if r.check == "sample_sum" and r.grid == "corners")
    assert "total_count=0.5, probs=0.001" in r.message and r.n == 1 << 18, r.message
    # the difference and the sum's sd, not only two sums that may print alike (an outside
    # trial's Poisson at rate 1e15: "is 2.62144e+20, expected 2.62144e+20")
    assert "a difference of +" in r.message and "standard deviation" in r.message, r.message


@pytest.mark.parametrize("name,checks", [
    # the first batch dimension reversed in batches of three dimensions: every element draws
    # with another's parameters
    ("mutant_batch3d_flip", {"sample_ks", "rsample_ks"}),
    # values repeated along the last of three sample dimensions: right marginals
    ("mutant_sample3d_repeat", {"sample_repeats", "rsample_repeats", "sample_indep",
                                "rsample_indep"}),
])
def test_a_backend_wrong_only_in_three_dimensions_fails_the_corners_grid_in_quick_mode(
        with_mutants, name, checks):
    # Every draw of the sampler had a two-dimensional batch and sample shape: both passed.
    # The corners grid now draws the batch (G, 2, 16) with the sample shape (n / 128, 2, 2);
    # batches_ks also lays the typical grid out in four and five dimensions.
    report = check_backend(name, families=["Normal"], layers=("sampler",), quick=True)
    failed = {(r.grid, r.check) for r in report.failures}
    assert {g for g, c in failed if not c.startswith("batches_")} == {"corners"}, failed
    assert (("typical", "batches_ks") in failed) == (name == "mutant_batch3d_flip"), failed
    assert checks <= {c for _, c in failed}, failed
    r = next(r for r in report.failures if r.check == sorted(checks)[-1])
    assert r.statistic > r.threshold and "corners" in r.message, r.message


def test_a_location_scale_gradient_failure_names_the_grid_point_it_comes_from(with_mutants):
    # StudentT's gradients with their sign flipped above df 30 (the corner df 1000): the
    # message named corners[1] (df 1), where the per-sample identity's largest error was
    # (finite-difference noise of the valid two-noise path in df, larger than the flipped
    # gradients' error of 2). loc and scale have one valid path: their per-sample identity
    # fails, at the point where it fails, with no conditional-mean fallback.
    report = check_backend("mutant_studentt_flip", families=["StudentT"],
                           layers=("gradient",), quick=True)
    r = next(r for r in report.failures if r.check == "grad_cdf" and r.grid == "corners")
    assert r.point.startswith("corners[3] (df=1000"), r.point
    assert "is wrong at corners[3] (df=1000" in r.message, r.message
    assert "parameter of location or scale" in r.message, r.message
    assert r.details["fixed_draw_by_draw"] == ["loc", "scale"], r.details


def test_gradient_failures_name_the_grid_point_and_a_gradient_without_spread(with_mutants):
    # A gradient that does not depend on the draw (zero here) has no spread: its z and t
    # statistics are infinite, which told a reader nothing ("|z| = inf"). The messages say
    # what the gradient is in every draw, and name the failing element's grid point with its
    # parameter values (they named only "scale_tril[0, 0, 0]").
    report = check_backend("mutant_constant_grad", layers=("gradient",), quick=True,
                           families=["MultivariateNormal", "Dirichlet",
                                     "RelaxedOneHotCategorical"])
    failed = {(r.family, r.check, r.grid): r.message for r in report.failures}
    msg = failed[("MultivariateNormal", "grad_mean", "typical")]
    assert "the pathwise gradient is 0 in every one of the 2000 draws, the same in each" in msg, msg
    assert "scale_tril[0, 0, 0] at typical[0] (loc=[" in msg and "inf" not in msg, msg
    msg = failed[("Dirichlet", "grad_mean", "corners")]
    assert "concentration[0, 0] at corners[0] (concentration=[0.01, 0.01, 0.01])" in msg, msg
    msg = failed[("Dirichlet", "grad_large", "example")]
    assert "at example[0] (concentration=[" in msg and "in every one of the 32 copies" in msg
    msg = failed[("RelaxedOneHotCategorical", "grad_noise", "typical")]
    assert "moves with temperature[0, 0] at typical[0] (temperature=[" in msg, msg


def test_log_prob_gradcheck_names_the_partial_derivative_that_fails(with_mutants):
    # gradcheck says only "failed" (or prints two whole Jacobians): the message names the
    # parameter element, its grid point, the value and both derivatives.
    report = check_backend("mutant_log_prob_grad", families=["Normal"], layers=("density",),
                           quick=True)
    assert {r.check for r in report.failures} == {"log_prob_gradcheck"}, report.summary()
    msg = report.failures[0].message
    assert "d log_prob/d scale[" in msg and "at example[" in msg and "loc=" in msg, msg
    assert "backward pass" in msg and "central difference" in msg, msg


@pytest.mark.parametrize("name,says,also", [
    # torch's constraints are wider than these families' values (VonMises: the real line;
    # Multinomial: any sum up to total_count): the suite judges the family's support and
    # says which values left it, and how many (it printed torch's constraint and the first
    # six values, in support or not).
    ("mutant_unwrapped_vonmises", "1 of 1 values outside the support [-pi, pi], e.g. [", ()),
    ("mutant_short_multinomial", "outside the support (counts summing to total_count = ", ()),
    # The seeds rule tried one call (sample_shape (16,), batch (2,)): a backend that drew
    # scalar parameters, or 3-d sample shapes, from its global stream passed it.
    ("mutant_seed_scalar", "with batch_shape (): the same seed gave different values",
     ("generator",)),
    ("mutant_seed_3d", "((2, 4, 1)) with batch_shape (2, 3): the same seed gave different",
     ("generator",)),
])
def test_semantics_failures_name_what_and_where(with_mutants, name, says, also):
    _cls, check, family = mutants.MUTANTS[name]
    report = check_backend(name, families=[family], layers=("semantics",), quick=True)
    caught = {r.check: r.message for r in report.failures}
    assert says in caught[check] and set(also) <= set(caught), caught


@pytest.mark.parametrize("name,failed,says", [
    # A fast path for calls of 256 values and more that forgets the seed: the seeds and
    # generator rules drew at most 64 values per call.
    ("mutant_large_call_seed", {"seeds", "generator"},
     "sample((500,)) with batch_shape () in float64: the same seed gave different values"),
    # Seed 8's stream starts about 4,050 values after seed 7's: the 48 values compared before
    # shared none, the large call's 8,192 share half.
    ("mutant_seed_stride", {"seeds"}, "seeds 7 and 8 share 4210 of the 8192 distinct values"),
    # A seeded draw that also draws from the global stream: manual_seed then replays
    # the unseeded draws only where no seeded draw came between.
    ("mutant_global_consumed", {"global_stream"},
     "sample((16,), seed=5) advanced the global stream: manual_seed(1234), sample((16,), "
     "seed=5), then an unseeded sample() drew other values"),
    # A stride-0 parameter copied detached: right values, .grad None (layouts, which compares
    # the gradients of expanded parameters with their copies', sees it too).
    ("mutant_broadcast_grad_lost", {"rsample_grad", "layouts"},
     "with loc given as one leaf of shape () expanded over the batch (2,) (a stride-0 view) "
     "carries no gradient to it"),
])
def test_seed_and_broadcast_gradient_defects_fail_their_semantics_rule_alone(
        with_mutants, name, failed, says):
    # An outside trial's backends that passed every layer in both modes; each now fails its
    # semantics rule and nothing else (every layer, quick mode: the semantics layer has no
    # statistics, so full mode judges it alike).
    _cls, check, family = mutants.MUTANTS[name]
    report = check_backend(name, families=[family], quick=True)
    caught = {r.check: r.message for r in report.failures}
    assert set(caught) == failed, report.summary()
    assert says in caught[check], caught[check]


def test_draws_that_do_not_vary_are_not_blamed_on_a_seed(with_mutants):
    # A column holding one value in every row repeats every window, as a reused seed does:
    # the repeat check said "A seed, generator state or buffer reused within one call does
    # this". It names the column, its grid point and value instead.
    report = check_backend("mutant_constant", families=["Normal"], layers=("sampler",),
                           quick=True)
    caught = {(r.check, r.grid): r.message for r in report.failures}
    msg = caught[("sample_repeats", "typical")]
    assert "do not vary: value at typical[0] (loc=-0.5, scale=0.5) is -0.5 in every one" in msg
    assert "seed" not in msg, msg
    assert ("sample_ks", "typical") in caught


def test_a_dirichlet_one_rounding_unit_off_passes(with_mutants):
    # Components one ulp high sum to 1 + 1 ulp (within torch's simplex constraint): a correct
    # sampler's rounding. The suite read a part's sum of 1 + 1 ulp as beyond the support.
    report = check_backend("rounding_dirichlet", families=["Dirichlet"], layers=("sampler",),
                           quick=True)
    assert report.ok, [(r.id, r.message) for r in report.failures]


def test_a_ks_failure_says_where_the_gap_is_and_plots_the_failing_statistic(with_mutants):
    # The message names the value at which the draws' CDF departs most from the reference's,
    # and the failing statistic's curves reach the report even where it is not one of the
    # statistics always plotted (the plot showed another, inside its band).
    report = check_backend("mutant_collapsed_mvn", families=["MultivariateNormal"],
                           layers=("sampler",), quick=True)
    for r in report.failures:
        if not r.check.endswith("_ks"):
            continue
        assert "the largest gap is at " in r.message and "where the reference CDF is " in \
            r.message, r.message
        plotted = [e.label for e in r.evidence if type(e).__name__ == "CdfCurves"]
        assert any(f" of {label.split(',')[0]} at " in r.message for label in plotted), (
            r.id, r.message, plotted)


def test_density_advice_follows_the_cause(with_mutants):
    # A wrong normalising constant fails the far-tail, edge and huge-value checks too: their
    # advice about numerics ("compute log_prob in log space, not as log(pdf)") misled an
    # outside author whose formula was in log space. Where log_prob misses at typical values
    # too, they say so; a numerical defect (log of the density) still gets the advice.
    report = check_backend("mutant_log_prob_constant", families=["Normal"],
                           layers=("density",), quick=True)
    failed = {r.check: r.message for r in report.failures}
    assert "log_prob_f64" in failed and "log_prob_far" in failed, failed
    for check in ("log_prob_far", "log_prob_huge"):
        if check in failed:
            assert "misses the reference at typical values too" in failed[check]
            assert "log(pdf)" not in failed[check] and "standardize" not in failed[check]
    numeric = check_backend("mutant_log_of_density", families=["Normal"], layers=("density",),
                            quick=True)
    far = next(r.message for r in numeric.failures if r.check == "log_prob_far")
    assert "not as log(pdf)" in far, far


def test_normal_score_failures_say_which_way_the_draws_are_off(with_mutants):
    # "|mean zeta^2 - 1| = 0.0318" did not say whether the draws were too wide or too narrow.
    report = check_backend("mutant_scale", families=["Normal"], layers=("sampler",),
                           quick=True)
    msg = next(r.message for r in report.failures if r.check == "sample_pit_var")
    assert "the draws are more spread than the reference law" in msg, msg
    report = check_backend("mutant_location", families=["Normal"], layers=("sampler",))
    msg = next(r.message for r in report.failures if r.check == "sample_pit_mean")
    assert "the draws lie above the reference law" in msg, msg


def test_the_report_lists_the_families_it_judged_when_none_were_asked(with_mutants):
    # The JSON report's "families" was [] when no --family was given.
    report = check_backend("mutant_constant_grad", layers=("semantics",), quick=True)
    assert report.families == ["Dirichlet", "MultivariateNormal", "RelaxedOneHotCategorical"]
    assert json.loads(report.to_json())["families"] == report.families


def test_every_generated_check_name_is_one_declarations_are_validated_against(with_mutants):
    # CHECK_NAMES is what an expected-failure declaration's check may name (a misspelt one is
    # refused): a check added to a layer must be added there too.
    from polysample.conformance.api import targets
    from polysample.conformance.expected import known_grids
    from polysample.conformance.model import CHECK_NAMES
    from polysample.conformance.runner import generate_checks

    names = [n for n in ps.backend_names() if n.startswith("mutant_")]
    ts, _ = targets(["torch", "numpy", "scipy", *names])
    checks = list(generate_checks(ts, None, ("semantics", "density", "sampler", "gradient")))
    checks += generate_checks(ts[:2], None, ("agreement",))
    made = {c.name for c in checks} | {"load"}
    assert made == CHECK_NAMES, (made - CHECK_NAMES, CHECK_NAMES - made)
    assert {"mixture_ks", "mixture_grad", "log_prob_f64", "sample_sweep"} <= made
    assert {c.grid for c in checks} | {"all"} == set(known_grids())


def test_a_contract_error_in_the_suite_advises_the_author_not_the_user():
    from polysample.core.errors import AUTHOR_ADVICE, USER_ADVICE

    report = check_backend(mutants.DtypeMutant(), families="Normal", quick=True,
                           layers=["sampler"], known_failures=False)
    raised = [r for r in report.failures if r.message.startswith("raised BackendContractError")]
    assert raised, report.summary()
    assert all(r.message.endswith(AUTHOR_ADVICE) for r in raised), raised[0].message
    assert USER_ADVICE not in report.summary()
    # a user's call still gets the user's advice
    x = torch.tensor([2.0], dtype=torch.float64)
    with pytest.raises(ps.BackendContractError, match=re.escape(USER_ADVICE)):
        ps.Normal(x, 1.0, backend=mutants.DtypeMutant()).sample()


def test_a_seed_hashed_to_few_bits_is_named_a_seed_collision(with_mutants):
    # Each of calls_repeats' calls has its own seed: a 12-bit hash makes two of them one
    # stream, and the message says so (it said "reused within one call").
    report = check_backend("mutant_seed_hash", families=["Normal"], layers=["sampler"],
                           quick=True)
    caught = [r for r in report.failures if r.check == "calls_repeats"]
    assert caught, [r.id for r in report.failures]
    assert "drawn with different seeds" in caught[0].message, caught[0].message
    assert "hashed or cut to too few bits" in caught[0].message


@pytest.mark.parametrize("family", ["Bernoulli", "Categorical"])
def test_logits_clamped_as_torch_derives_them_fail_the_logits_check(monkeypatch, family):
    # Finding F19: polysample derives exact logits from small probs; with torch's derivation
    # back (probs clamped to [eps, 1 - eps]), a backend that scores from the logits it is
    # handed (tfp here) fails the check's second half, and only it.
    from torch.distributions.utils import probs_to_logits

    from conftest import AVAILABLE
    from polysample.core import torch_fixes

    if "tfp" not in AVAILABLE:
        pytest.skip("tfp is not available")
    monkeypatch.setattr(torch_fixes, "binary_logits",
                        lambda p: probs_to_logits(p, is_binary=True))
    monkeypatch.setattr(torch_fixes, "categorical_logits", probs_to_logits)
    report = check_backend("tfp", families=[family], layers=["density"], known_failures=False)
    assert {r.check for r in report.failures} == {"log_prob_logits"}, report.summary()
    message = report.failures[0].message
    assert "given probs" in message and "probs_to_logits" in message, message
    assert "at probs = 1e-30" in message or "at probs = [1e-30, " in message, message


@pytest.mark.parametrize("family", ["Bernoulli", "Categorical"])
def test_scoring_from_probs_fails_the_logits_check_alone(with_mutants, family):
    # Exact at the grids' probabilities (the other density checks pass it); given large
    # logits, the probabilities round to 1.0 and 0.0 and the scores to -inf.
    report = check_backend("mutant_probs_scoring", families=[family], layers=["density"],
                           known_failures=False)
    assert {r.check for r in report.failures} == {"log_prob_logits"}, report.summary()
    message = report.failures[0].message
    assert "given logits" in message and "Score from the logits in log space" in message
    assert "at logits = " in message and report.failures[0].point


def test_a_traceable_backend_that_computes_outside_torch_fails_the_traced_rule_alone(
        with_mutants):
    # traceable = True lets torch.jit.trace record the backend's computation; one made in
    # NumPy is baked into the trace as a constant: the draw, and the score (the traced
    # log_prob at other parameters must be the eager one).
    for name, says in (("mutant_traceable_lie", "the draw was recorded as a constant"),
                       ("mutant_traceable_score", "the score was recorded as a constant")):
        report = check_backend(name, families=["Normal"], quick=True)
        assert [r.check for r in report.failures] == ["traced"], report.summary()
        assert says in report.failures[0].message, report.failures[0].message
    # a backend that does not declare itself traceable has no such rule; torch passes it
    assert "traced" not in {r.check for r in check_backend(
        "numpy", families=["Normal"], layers=["semantics"], quick=True).results}
    torch_report = check_backend("torch", families=["Normal"], layers=["semantics"],
                                 quick=True)
    assert [r.status for r in torch_report.results if r.check == "traced"] == ["pass"]
