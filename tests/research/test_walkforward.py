"""Walk-forward evaluation, parameter-stability penalty and regime sensitivity (argus.research.walkforward)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from argus.research.splits import walk_forward_folds
from argus.research.walkforward import (
    annualised_return,
    parameter_stability,
    regime_sensitivity,
    sharpe_ratio,
    walk_forward,
)


def test_sharpe_and_annualised_return_by_hand() -> None:
    r = np.array([0.01, 0.02, 0.03])
    assert sharpe_ratio(r) == pytest.approx(0.02 / 0.01 * math.sqrt(252))
    assert annualised_return(r, 12) == pytest.approx(0.24)
    assert np.allclose(sharpe_ratio(np.column_stack([r, 2 * r]), 1), [2.0, 2.0])
    assert math.isnan(sharpe_ratio(np.array([0.01])))
    assert math.isnan(sharpe_ratio(np.full(5, 0.01)))  # no dispersion: no Sharpe ratio


def test_walk_forward_hand_worked_selection_and_efficiency() -> None:
    r = np.array([
        [0.01, 0.02], [0.01, 0.02],
        [0.02, 0.01], [0.02, 0.01],
        [-0.01, 0.03], [-0.01, 0.03],
        [0.00, 0.01], [0.00, 0.01],
    ])
    folds = walk_forward_folds(8, train_size=2, test_size=2)
    res = walk_forward(r, folds, metric="annual_return", periods_per_year=1)
    assert [f.selected for f in res.folds] == [1, 0, 1]
    assert [f.is_annual_return for f in res.folds] == pytest.approx([0.02, 0.02, 0.03])
    assert [f.oos_annual_return for f in res.folds] == pytest.approx([0.01, -0.01, 0.01])
    assert [f.efficiency for f in res.folds] == pytest.approx([0.5, -0.5, 1 / 3])
    assert res.oos_returns == pytest.approx([0.01, 0.01, -0.01, -0.01, 0.01, 0.01])
    assert res.oos_index.tolist() == [2, 3, 4, 5, 6, 7]
    # Stitched OOS mean 0.01/3 over the test-weighted mean IS 0.07/3.
    assert res.efficiency == pytest.approx(1 / 7)
    assert res.oos_annual_return == pytest.approx(0.01 / 3)


def test_walk_forward_ties_pick_the_lowest_column_and_nan_scores_are_skipped() -> None:
    r = np.array([[np.nan, 0.01, 0.01], [np.nan, 0.01, 0.01], [0.5, 0.02, 0.03], [0.5, 0.02, 0.03]])
    res = walk_forward(r, walk_forward_folds(4, 2, 2), metric="annual_return", periods_per_year=1)
    assert res.folds[0].selected == 1


def test_walk_forward_efficiency_is_nan_without_in_sample_profit() -> None:
    r = np.array([[-0.01], [-0.02], [0.01], [0.02]])
    res = walk_forward(r, walk_forward_folds(4, 2, 2), metric="annual_return")
    assert math.isnan(res.folds[0].efficiency) and math.isnan(res.efficiency)


def test_walk_forward_accepts_a_callable_metric_and_refuses_bad_folds() -> None:
    r = np.random.default_rng(0).normal(0, 0.01, (40, 3))
    r[:, 2] += 0.01
    res = walk_forward(r, walk_forward_folds(40, 10, 10), metric=lambda block: block.sum(axis=0))
    assert all(f.selected == 2 for f in res.folds)
    with pytest.raises(ValueError):
        walk_forward(r, walk_forward_folds(80, 10, 10))
    with pytest.raises(ValueError):
        walk_forward(r, [])


def test_planted_edge_survives_walk_forward_and_noise_does_not() -> None:
    rng = np.random.default_rng(42)
    t, n = 2000, 20
    folds = walk_forward_folds(t, train_size=250, test_size=125)
    noise = rng.normal(0.0, 0.01, (t, n))
    planted = noise.copy()
    planted[:, 7] += 0.003  # annual Sharpe about 4.8
    edge = walk_forward(planted, folds)
    assert np.mean([f.selected == 7 for f in edge.folds]) > 0.8
    assert edge.oos_score > 3.0 and edge.efficiency > 0.5
    pure = walk_forward(noise, folds)
    assert abs(pure.oos_score) < 1.0 and pure.efficiency < 0.3
    # In-sample winners among noise look good in sample and decay out of sample.
    assert np.mean([f.is_score for f in pure.folds]) > 1.5


def test_stability_rule_by_hand_in_one_dimension() -> None:
    res = parameter_stability(np.array([0.0, 1.0, 0.0]))
    assert res.neighbour_median.tolist() == [1.0, 0.0, 1.0]
    assert res.stable_score.tolist() == [0.0, 0.0, 0.0]
    assert res.killed.tolist() == [False, True, False]
    assert not parameter_stability(np.array([0.5, 1.0, 0.5])).killed.any()  # exactly half: kept
    assert parameter_stability(np.array([0.49, 1.0, 0.49])).killed.tolist() == [False, True, False]
    assert not parameter_stability(np.array([2.0])).killed.any()  # no neighbours: cannot judge
    holes = parameter_stability(np.array([np.nan, 1.0, 0.0, 0.0]))  # NaN (failed) points are ignored
    assert np.isnan(holes.stable_score[0]) and holes.neighbour_median[1] == 0.0 and holes.killed[1]


def test_lone_spike_is_killed_and_a_plateau_survives() -> None:
    rng = np.random.default_rng(3)
    spike = rng.normal(0.1, 0.01, (7, 7))
    spike[3, 4] = 2.5
    res = parameter_stability(spike)
    assert res.killed[3, 4] and res.killed.sum() == 1
    assert res.stable_score[3, 4] < 0.3
    plateau = spike.copy()
    plateau[2:5, 3:6] = 2.0 + rng.normal(0, 0.05, (3, 3))
    plateau[3, 4] = 2.5
    res = parameter_stability(plateau)
    assert not res.killed[3, 4]
    assert res.stable_score[3, 4] == pytest.approx(np.median(np.delete(plateau[2:5, 3:6].ravel(), 4)))
    corner = np.full((4, 4), 0.1)
    corner[0, 0] = 3.0
    assert parameter_stability(corner).killed[0, 0]


def test_stability_radius_two_looks_further() -> None:
    s = np.array([0.0, 0.0, 1.0, 1.0, 1.0, 0.0, 0.0])
    assert not parameter_stability(s).killed[3]
    res2 = parameter_stability(s, radius=2)
    assert res2.neighbour_median[3] == 0.5 and not res2.killed[3]


@settings(max_examples=50, deadline=None)
@given(arrays(np.float64, st.tuples(st.integers(1, 5), st.integers(1, 5)),
              elements=st.floats(-3, 3, allow_nan=False)))
def test_stable_score_never_exceeds_the_score_and_only_positive_scores_die(grid: np.ndarray) -> None:
    res = parameter_stability(grid)
    assert np.all(res.stable_score <= grid)
    assert np.all(grid[res.killed] > 0)
    assert not parameter_stability(np.full(grid.shape, 1.0)).killed.any()


def test_regime_sensitivity_by_hand() -> None:
    r = np.array([0.01, 0.01, 0.03, 0.02, 0.03, 0.5])
    lab = np.array(["a", "b", "a", "b", "b", "c"])
    res = regime_sensitivity(r, lab, periods_per_year=1)
    assert res.labels.tolist() == ["a", "b", "c"]
    assert res.counts.tolist() == [2, 3, 1]
    assert res.values[:2] == pytest.approx([math.sqrt(2), 2.0])
    assert math.isnan(res.values[2])  # one period is below min_periods
    assert res.score == pytest.approx((2.0 - math.sqrt(2)) / 2)
    assert res.worst_label == "a" and res.worst_value == pytest.approx(math.sqrt(2))


def test_a_strategy_alike_in_every_regime_scores_zero_and_one_that_fails_in_one_scores_high() -> None:
    base = np.random.default_rng(5).normal(0.001, 0.01, 300)
    alike = regime_sensitivity(np.tile(base, 3), np.repeat([0, 1, 2], 300))
    assert alike.score == pytest.approx(0.0, abs=1e-9)
    fragile = np.tile(base, 3)
    fragile[600:] -= 0.003
    res = regime_sensitivity(fragile, np.repeat([0, 1, 2], 300))
    assert res.worst_label == 2 and res.score > 1.0
