"""Deploy-gate statistics: published values, oracles (skfolio, ffn, arch, scipy) and invariants.

Reference values: /work/shared/REFERENCES.md ("Sharpe-ratio statistics"), from Bailey & López de Prado
(2014); every other value is computed by hand in the comments next to it.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps

from argus.research import stats as S

HYP = settings(max_examples=150, deadline=None)

# The DSR example of Bailey & López de Prado (2014), converted to per-day figures (250 days a year).
DAYS = 250
SR_DAY = 2.5 / math.sqrt(DAYS)  # 0.1581139
V_DAY = 0.5 / DAYS  # 0.002: a variance scales with the number of periods


# --------------------------------------------------------------------------------------------------------
# Published values
# --------------------------------------------------------------------------------------------------------


def test_dsr_reproduces_the_paper_example_with_100_trials() -> None:
    # SR0 = sqrt(0.002) * [(1 - 0.5772157) * z(0.99) + 0.5772157 * z(1 - 1/(100 e))]
    #     = 0.0447214 * [0.4227843 * 2.3263479 + 0.5772157 * 2.2801893] = 0.0447214 * 2.5306 = 0.113172.
    # Variance factor 1 - (-3)(0.1581139) + (10 - 1)/4 * 0.025 = 1 + 0.4743416 + 0.05625 = 1.5305916.
    # z = (0.1581139 - 0.1131720) * sqrt(1249) / sqrt(1.5305916) = 0.0449419 * 35.341194 / 1.2371708
    #   = 1.283816 -> Phi = 0.9004.
    sr0 = S.expected_max_sharpe(V_DAY, 100)
    assert sr0 == pytest.approx(0.1132, abs=5e-5)
    assert sr0 == pytest.approx(0.113172, abs=1e-6)
    dsr = S.deflated_sharpe_ratio(SR_DAY, V_DAY, 100, 1250, -3.0, 10.0)
    assert dsr == pytest.approx(0.9004, abs=5e-5)


def test_dsr_reproduces_the_paper_example_with_46_trials() -> None:
    # SR0 = 0.0447214 * [0.4227843 * z(1 - 1/46) + 0.5772157 * z(1 - 1/(46 e))]
    #     = 0.0447214 * [0.4227843 * 2.0191 + 0.5772157 * 1.9300] = 0.100362;
    # z = (0.1581139 - 0.1003624) * 35.341194 / 1.2371708 = 1.64973 -> Phi = 0.9505.
    assert S.expected_max_sharpe(V_DAY, 46) == pytest.approx(0.100362, abs=1e-6)
    assert S.deflated_sharpe_ratio(SR_DAY, V_DAY, 46, 1250, -3.0, 10.0) == pytest.approx(0.9505, abs=5e-5)


def test_dsr_equals_psr_against_sr0_of_the_example() -> None:
    sr0 = S.expected_max_sharpe(V_DAY, 100)
    assert S.probabilistic_sharpe_ratio(SR_DAY, sr0, 1250, -3.0, 10.0) == S.deflated_sharpe_ratio(
        SR_DAY, V_DAY, 100, 1250, -3.0, 10.0
    )


def test_psr_of_normal_returns_matches_the_hand_value() -> None:
    # SR = 0.1 per period, SR* = 0, T = 101, skew 0, kurtosis 3: factor = 1 + 2/4 * 0.01 = 1.005,
    # z = 0.1 * sqrt(100) / sqrt(1.005) = 0.9975093; Phi(0.9975093) = Phi(1) - 0.0024907 * phi(1)
    # = 0.8413447 - 0.0024907 * 0.2419707 = 0.840742 (to first order).
    assert S.probabilistic_sharpe_ratio(0.1, 0.0, 101, 0.0, 3.0) == pytest.approx(0.840741, abs=2e-6)
    assert S.probabilistic_sharpe_ratio(0.07, 0.07, 500, -1.0, 6.0) == 0.5


def test_min_trl_matches_the_hand_values() -> None:
    # Normal returns, SR = 0.1, SR* = 0, alpha = 0.05: 1 + 1.005 * (1.6448536 / 0.1)^2
    # = 1 + 1.005 * 270.5543 = 272.9071 observations.
    assert S.min_track_record_length(0.1, 0.0, 0.0, 3.0, 0.05) == pytest.approx(272.9071, abs=1e-3)
    # The DSR example against SR0: 1 + 1.5305916 * (1.6448536 / 0.0449419)^2 = 1 + 1.5305916 * 1339.5204
    # = 2051.27 days: the paper's 1250 days are too few for 95%, consistent with DSR = 0.90 < 0.95.
    sr0 = S.expected_max_sharpe(V_DAY, 100)
    assert S.min_track_record_length(SR_DAY, sr0, -3.0, 10.0, 0.05) == pytest.approx(2051.27, abs=0.01)


def test_min_trl_is_infinite_without_an_edge() -> None:
    assert S.min_track_record_length(0.05, 0.05, 0.0, 3.0) == math.inf
    assert S.min_track_record_length(0.01, 0.05, 0.0, 3.0) == math.inf


# --------------------------------------------------------------------------------------------------------
# Oracles
# --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("variance", "n_trials"), [(0.002, 100), (0.002, 46), (1e-4, 2), (0.01, 7.5), (3e-3, 5000)])
def test_expected_max_sharpe_matches_skfolio_and_ffn(variance: float, n_trials: float) -> None:
    measures = pytest.importorskip("skfolio.measures")
    ours = S.expected_max_sharpe(variance, n_trials)
    assert ours == pytest.approx(measures.expected_max_sharpe_ratio(n_trials, math.sqrt(variance)), rel=1e-12)
    ffn_core = pytest.importorskip("ffn.core")
    assert ours == pytest.approx(ffn_core.calc_expected_max_sharpe(n_trials, math.sqrt(variance)), rel=1e-12)


def test_psr_and_dsr_from_returns_match_skfolio() -> None:
    measures = pytest.importorskip("skfolio.measures")
    rng = np.random.default_rng(3)
    returns = rng.standard_t(4, 2000) * 0.01 + 0.0007
    trials = rng.normal(0.0, 0.03, 40)
    m = S.sharpe_moments(returns)
    psr = S.probabilistic_sharpe_ratio(m.sr, 0.01, m.n_obs, m.skew, m.kurtosis)
    assert psr == pytest.approx(measures.probabilistic_sharpe_ratio(returns, 0.01), rel=1e-10)
    dsr = S.deflated_sharpe_ratio(m.sr, np.var(trials, ddof=1), len(trials), m.n_obs, m.skew, m.kurtosis)
    assert dsr == pytest.approx(measures.deflated_sharpe_ratio(returns, trials), rel=1e-10)


def test_sharpe_moments_use_plain_kurtosis() -> None:
    x = np.random.default_rng(0).exponential(1.0, 5000) - 0.9
    m = S.sharpe_moments(x)
    assert m.sr == pytest.approx(x.mean() / x.std(ddof=1))
    assert m.skew == pytest.approx(sps.skew(x))
    assert m.kurtosis == pytest.approx(sps.kurtosis(x) + 3.0)  # excess + 3
    assert m.n_obs == 5000


# --------------------------------------------------------------------------------------------------------
# Validation and edge cases
# --------------------------------------------------------------------------------------------------------


def test_expected_max_sharpe_is_zero_without_selection_and_never_negative() -> None:
    assert S.expected_max_sharpe(0.002, 1) == 0.0
    assert S.expected_max_sharpe(0.0, 100) == 0.0
    # The asymptotic formula is negative for N = 1.1 (0.4228 * z(0.0909) + 0.5772 * z(0.6656) < 0): floored.
    assert S.expected_max_sharpe(0.002, 1.1) == 0.0
    with pytest.raises(ValueError, match="n_trials"):
        S.expected_max_sharpe(0.002, 0.5)
    with pytest.raises(ValueError, match="sr_variance"):
        S.expected_max_sharpe(-1.0, 10)


def test_psr_rejects_moments_that_no_distribution_has() -> None:
    # Excess kurtosis 0 passed as kurtosis: 1 - 3 * 0.5 + (0 - 1) / 4 * 0.25 < 0.
    with pytest.raises(ValueError, match="excess"):
        S.probabilistic_sharpe_ratio(0.5, 0.0, 100, 3.0, 0.0)
    with pytest.raises(ValueError, match="n_obs"):
        S.probabilistic_sharpe_ratio(0.1, 0.0, 1, 0.0, 3.0)


def test_psr_broadcasts_over_arrays() -> None:
    out = S.probabilistic_sharpe_ratio(np.array([0.0, 0.05, 0.1]), 0.0, 252, 0.0, 3.0)
    assert isinstance(out, np.ndarray) and out.shape == (3,)
    assert out[0] == 0.5 and np.all(np.diff(out) > 0)


# --------------------------------------------------------------------------------------------------------
# Invariants (hypothesis)
# --------------------------------------------------------------------------------------------------------

# Per-period Sharpe ratios of realistic size and moments of real distributions (kurtosis >= 1 + skew^2).
# On this domain d PSR / d SR > 0 (1 - skew (SR + SR*) / 2 + (kurt - 1) / 4 SR SR* >= 1 - 0.6 - 0.315 > 0).
srs = st.floats(-0.3, 0.3)
skews = st.floats(-2.0, 2.0)
extra_kurtosis = st.floats(0.0, 10.0)
n_obs = st.integers(2, 100_000)


@HYP
@given(a=srs, b=srs, bench=srs, skew=skews, extra=extra_kurtosis, n=n_obs)
def test_psr_is_monotone_in_sr(a: float, b: float, bench: float, skew: float, extra: float, n: int) -> None:
    kurt = 1.0 + skew**2 + extra
    lo, hi = min(a, b), max(a, b)
    assert S.probabilistic_sharpe_ratio(lo, bench, n, skew, kurt) <= S.probabilistic_sharpe_ratio(
        hi, bench, n, skew, kurt
    ) + 1e-15


@HYP
@given(sr=srs, skew=skews, extra=extra_kurtosis, n=n_obs, variance=st.floats(1e-8, 0.05),
       trials=st.floats(1.5, 1e5))
def test_dsr_never_exceeds_psr_against_zero(sr: float, skew: float, extra: float, n: int, variance: float,
                                             trials: float) -> None:
    kurt = 1.0 + skew**2 + extra
    dsr = S.deflated_sharpe_ratio(sr, variance, trials, n, skew, kurt)
    psr0 = S.probabilistic_sharpe_ratio(sr, 0.0, n, skew, kurt)
    assert 0.0 <= dsr <= psr0 <= 1.0


@HYP
@given(sr=st.floats(0.01, 0.3), gap=st.floats(0.005, 0.2), skew=skews, extra=extra_kurtosis,
       alpha=st.floats(0.001, 0.3))
def test_psr_at_min_trl_is_one_minus_alpha(sr: float, gap: float, skew: float, extra: float, alpha: float) -> None:
    kurt = 1.0 + skew**2 + extra
    trl = S.min_track_record_length(sr, sr - gap, skew, kurt, alpha)
    assert trl > 1.0
    assert S.probabilistic_sharpe_ratio(sr, sr - gap, trl, skew, kurt) == pytest.approx(1.0 - alpha, abs=1e-9)


# --------------------------------------------------------------------------------------------------------
# Effective number of trials
# --------------------------------------------------------------------------------------------------------

METHODS = ["effective_rank", "li_ji", "average_correlation"]


@pytest.mark.parametrize("method", METHODS)
def test_identical_trials_count_once(method: str) -> None:
    base = np.random.default_rng(1).standard_normal((500, 1))
    assert S.effective_number_of_trials(np.repeat(base, 12, axis=1), method) == pytest.approx(1.0, abs=1e-9)


@pytest.mark.parametrize("method", METHODS)
def test_independent_trials_count_nearly_fully(method: str) -> None:
    x = np.random.default_rng(2).standard_normal((2000, 20))
    n_eff = S.effective_number_of_trials(x, method)
    assert 19.0 <= n_eff <= 20.0


def test_clusters_of_identical_trials_count_as_clusters() -> None:
    # Four independent series, each tried five times: eigenvalues ~ (5, 5, 5, 5, 0 x 16).
    base = np.random.default_rng(3).standard_normal((1000, 4))
    x = np.repeat(base, 5, axis=1)
    assert S.effective_number_of_trials(x, "effective_rank") == pytest.approx(4.0, abs=0.05)
    assert 4.0 <= S.effective_number_of_trials(x, "li_ji") <= 8.0  # fractional parts add up to 1 per cluster
    # Mean off-diagonal correlation ~ 40 / 190 = 0.21: 0.21 + 0.79 * 20 ~ 16 (blind to the clusters).
    assert S.effective_number_of_trials(x, "average_correlation") == pytest.approx(16.0, abs=0.6)


def test_effective_number_of_trials_rejects_bad_input() -> None:
    x = np.random.default_rng(4).standard_normal((100, 3))
    with pytest.raises(ValueError, match="unknown method"):
        S.effective_number_of_trials(x, "pca")
    x[:, 1] = 0.5
    with pytest.raises(ValueError, match="dispersion"):
        S.effective_number_of_trials(x)


# --------------------------------------------------------------------------------------------------------
# Probability of backtest overfitting
# --------------------------------------------------------------------------------------------------------


def _pbo_by_hand(x: np.ndarray, n_splits: int) -> float:
    """Straight CSCV loop (Bailey, Borwein, López de Prado & Zhu 2017, §2), independent of the vectorised code."""
    rows = (x.shape[0] // n_splits) * n_splits
    blocks = np.array_split(np.arange(rows), n_splits)
    logits = []
    for chosen in itertools.combinations(range(n_splits), n_splits // 2):
        is_rows = np.concatenate([blocks[i] for i in chosen])
        oos_rows = np.concatenate([blocks[i] for i in range(n_splits) if i not in chosen])
        r_is = x[is_rows].mean(0) / x[is_rows].std(0, ddof=1)
        r_oos = x[oos_rows].mean(0) / x[oos_rows].std(0, ddof=1)
        omega = sps.rankdata(r_oos)[np.argmax(r_is)] / (x.shape[1] + 1)
        logits.append(math.log(omega / (1 - omega)))
    return float(np.mean(np.array(logits) <= 0))


def test_pbo_matches_a_direct_cscv_loop() -> None:
    x = np.random.default_rng(11).standard_normal((303, 9)) * 0.01 + 0.0005  # 303 % 6 = 3 rows dropped
    assert S.probability_of_backtest_overfitting(x, n_splits=6) == _pbo_by_hand(x, 6)


def test_pbo_matches_ffn() -> None:
    ffn_core = pytest.importorskip("ffn.core")
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(12)
    x = rng.standard_normal((405, 15)) * 0.01
    x[:, 4] += 0.002
    for n_splits in (4, 8):
        expected = ffn_core.calc_prob_backtest_overfitting(pd.DataFrame(x), n_blocks=n_splits)
        assert S.probability_of_backtest_overfitting(x, n_splits=n_splits) == pytest.approx(expected, abs=1e-12)


def test_pbo_of_pure_noise_is_near_one_half() -> None:
    # One CSCV run on noise is itself noisy (spread ~0.2 here), so average 16 seeded searches.
    pbos = [
        S.probability_of_backtest_overfitting(np.random.default_rng(seed).standard_normal((400, 20)), n_splits=10)
        for seed in range(16)
    ]
    assert 0.4 <= float(np.mean(pbos)) <= 0.65
    # And the default 16 splits, 12,870 combinations, on one larger search.
    assert 0.3 <= S.probability_of_backtest_overfitting(np.random.default_rng(99).standard_normal((1000, 30))) <= 0.7


def test_pbo_of_a_planted_edge_among_noise_is_near_zero() -> None:
    x = np.random.default_rng(5).standard_normal((1000, 20))
    x[:, 3] += 0.3  # per-period Sharpe 0.3 against 19 zero-mean trials
    assert S.probability_of_backtest_overfitting(x) <= 0.01


def test_pbo_is_deterministic() -> None:
    x = np.random.default_rng(6).standard_normal((320, 6))
    x[:160, 2] = 0.0
    a = S.probability_of_backtest_overfitting(x, n_splits=8)
    assert a == S.probability_of_backtest_overfitting(x.copy(), n_splits=8)
    assert 0.0 <= a <= 1.0


def test_pbo_scores_a_half_without_trades_as_zero_sharpe() -> None:
    # Two splits, two combinations. Column 2 did not trade in the first half (Sharpe 0 there, not NaN)
    # and earned well in the second; columns 0 and 1 lost in the first half. First half in sample:
    # column 2 wins with 0 against negatives and ranks first out of sample; second half in sample: it
    # wins again and its 0 ranks first among the losers. Both logits > 0, so PBO = 0.
    rng = np.random.default_rng(15)
    x = rng.standard_normal((200, 3)) * 0.01
    x[:100, :2] -= 0.01
    x[:100, 2] = 0.0
    x[100:, 2] += 0.02
    assert S.probability_of_backtest_overfitting(x + 0.003, n_splits=2) == 0.0  # flat but earning: +inf
    assert S.probability_of_backtest_overfitting(x, n_splits=2) == 0.0


@pytest.mark.parametrize("n_splits", [0, 3, 7, True, 2.0])
def test_pbo_rejects_odd_or_non_integer_splits(n_splits) -> None:
    with pytest.raises(ValueError, match="n_splits"):
        S.probability_of_backtest_overfitting(np.zeros((100, 3)) + np.arange(100)[:, None], n_splits=n_splits)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(2, 8), half=st.integers(1, 3), edge=st.floats(0.0, 0.5))
def test_pbo_is_a_probability(seed: int, n: int, half: int, edge: float) -> None:
    x = np.random.default_rng(seed).standard_normal((60, n))
    x[:, 0] += edge
    assert 0.0 <= S.probability_of_backtest_overfitting(x, n_splits=2 * half) <= 1.0


# --------------------------------------------------------------------------------------------------------
# Reality Check and SPA
# --------------------------------------------------------------------------------------------------------


def test_reality_check_and_spa_pvalues_are_uniform_under_the_null() -> None:
    rc, spa = [], []
    for seed in range(50):
        rng = np.random.default_rng(100 + seed)
        candidates, benchmark = rng.standard_normal((250, 3)), rng.standard_normal(250)
        rc.append(S.reality_check(candidates, benchmark, reps=200, seed=seed).pvalue)
        spa.append(S.spa_test(candidates, benchmark, reps=200, seed=seed).pvalue)
    for pvalues in (rc, spa):
        assert 0.35 <= float(np.mean(pvalues)) <= 0.65
        assert sps.kstest(pvalues, "uniform").pvalue > 0.01


def test_planted_edge_gives_small_pvalues() -> None:
    rng = np.random.default_rng(7)
    x = rng.standard_normal((500, 5))
    x[:, 2] += 0.25
    for test in (S.reality_check, S.spa_test):
        result = test(x, 0.0, reps=500, seed=1)
        assert result.pvalue <= 0.01
        assert result.best == 2 and result.n_models == 5 and result.n_obs == 500 and result.reps == 500


def test_spa_is_not_drowned_by_poor_volatile_candidates_as_the_rc_is() -> None:
    # One good candidate (t ~ 2.9) among 20 poor, very volatile ones: their bootstrap maxima swamp the
    # non-studentised RC, while the SPA studentises them and leaves them out of the recentring.
    rng = np.random.default_rng(8)
    good = rng.standard_normal((600, 1)) + 0.12
    poor = rng.standard_normal((600, 20)) * 8.0 - 1.0
    x = np.hstack([good, poor])
    rc = S.reality_check(x, 0.0, block_size=1.0, reps=500, seed=2)
    spa = S.spa_test(x, 0.0, block_size=1.0, reps=500, seed=2)
    assert spa.pvalue < 0.05 < rc.pvalue
    assert spa.studentized and not rc.studentized


def test_bootstrap_tests_are_deterministic_for_a_seed() -> None:
    x = np.random.default_rng(9).standard_normal((200, 4)) + 0.05
    a = S.spa_test(x, 0.0, reps=300, seed=42)
    assert a == S.spa_test(x, 0.0, reps=300, seed=42)
    assert a.as_dict()["pvalues"].keys() == {"lower", "consistent", "upper"}


def test_default_block_size_is_politis_white_on_the_differentials() -> None:
    arch_bootstrap = pytest.importorskip("arch.bootstrap")
    rng = np.random.default_rng(10)
    e = rng.standard_normal((800, 2))
    ar = np.empty_like(e)
    ar[0] = e[0]
    for t in range(1, len(e)):  # AR(1), phi = 0.6: dependent differentials need blocks > 1
        ar[t] = 0.6 * ar[t - 1] + e[t]
    bench = rng.standard_normal(800) * 0.1
    table = arch_bootstrap.optimal_block_length(ar - bench[:, None])
    column = "stationary" if "stationary" in table.columns else "b_sb"
    result = S.reality_check(ar, bench, reps=50, seed=0)
    assert result.block_size == pytest.approx(float(table[column].mean()))
    assert result.block_size > 2.0


def test_stationary_bootstrap_variance_matches_arch() -> None:
    arch_bootstrap = pytest.importorskip("arch.bootstrap")
    rng = np.random.default_rng(13)
    d = rng.standard_normal((300, 3)).cumsum(axis=0) * 0.1 + rng.standard_normal((300, 3))
    spa = arch_bootstrap.SPA(np.zeros(300), -d, block_size=6.5)
    if not hasattr(spa, "_compute_variance"):
        pytest.skip("arch no longer exposes its SPA variance step")
    spa._compute_variance()
    np.testing.assert_allclose(S.stationary_bootstrap_variance(d, 6.5), spa._loss_diff_var, rtol=1e-10)


def test_bootstrap_tests_reject_bad_arguments() -> None:
    x = np.random.default_rng(14).standard_normal((100, 2))
    with pytest.raises(ValueError, match="benchmark_returns"):
        S.reality_check(x, np.zeros(99))
    with pytest.raises(ValueError, match="reps"):
        S.spa_test(x, 0.0, reps=0)
    with pytest.raises(ValueError, match="block_size"):
        S.spa_test(x, 0.0, block_size=0.5)


# --------------------------------------------------------------------------------------------------------
# Gates
# --------------------------------------------------------------------------------------------------------

GATES = {"spa_pvalue_max": 0.05, "min_trades": 30, "dsr_min": 0.95, "psr_min": 0.95, "pbo_max": 0.5}


def test_gates_record_name_value_threshold_and_direction_in_a_fixed_order() -> None:
    values = {"dsr": 0.9004, "psr": 0.99, "pbo": 0.12, "spa_pvalue": 0.03, "trades": 52, "sharpe": 1.1}
    results = S.apply_gates(values, GATES)
    assert [r.name for r in results] == ["dsr_min", "min_trades", "pbo_max", "psr_min", "spa_pvalue_max"]
    assert results == S.apply_gates(dict(reversed(list(values.items()))), dict(reversed(list(GATES.items()))))
    dsr = results[0]
    assert (dsr.metric, dsr.value, dsr.threshold, dsr.direction, dsr.passed) == ("dsr", 0.9004, 0.95, "min", False)
    assert dsr.reason == "dsr_min: dsr = 0.9004 < 0.95"
    assert [r.passed for r in results[1:]] == [True, True, True, True]
    assert results[2].direction == "max" and results[2].as_dict()["metric"] == "pbo"


def test_gate_boundaries_pass_and_nan_fails() -> None:
    results = S.apply_gates({"dsr": 0.95, "pbo": 0.5, "psr": math.nan}, {"dsr_min": 0.95, "pbo_max": 0.5,
                                                                        "psr_min": 0.95})
    assert [r.passed for r in results] == [True, True, False]


def test_gates_refuse_missing_values_and_unparseable_names() -> None:
    with pytest.raises(KeyError, match="trades"):
        S.apply_gates({"dsr": 1.0}, {"dsr_min": 0.95, "min_trades": 30})
    with pytest.raises(ValueError, match="METRIC_min"):
        S.apply_gates({"dsr": 1.0}, {"dsr": 0.95})
    with pytest.raises(ValueError, match="non-finite"):
        S.apply_gates({"dsr": 1.0}, {"dsr_min": math.nan})
