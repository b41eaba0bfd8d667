"""Stationary block bootstrap of trades, slippage sensitivity, regime-subset stress (argus.research.bootstrap)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from arch.bootstrap import StationaryBootstrap, optimal_block_length
from hypothesis import given, settings
from hypothesis import strategies as st

from argus.research.bootstrap import (
    bootstrap_trades,
    max_drawdown,
    politis_white_block_length,
    regime_subset_stress,
    slippage_sensitivity,
)


def _ar1_pnl(n: int, mean: float, seed: int, phi: float = 0.5) -> np.ndarray:
    rng = np.random.default_rng(seed)
    e = rng.normal(0.0, 1.0, n)
    x = np.empty(n)
    x[0] = e[0]
    for i in range(1, n):
        x[i] = phi * x[i - 1] + e[i]
    return mean + x


def test_paths_and_block_length_equal_a_direct_arch_call_with_the_same_seed() -> None:
    pnl = _ar1_pnl(300, 0.2, seed=11)
    res = bootstrap_trades(pnl, starting_equity=1000.0, n_paths=300, seed=7)
    b = float(optimal_block_length(pnl)["stationary"].iloc[0])
    assert res.block_length == b > 1.0  # autocorrelated P&L asks for blocks
    bs = StationaryBootstrap(b, pnl, seed=np.random.default_rng(7))
    paths = np.array([args[0] for args, _ in bs.bootstrap(300)])
    assert np.array_equal(res.final_pnl, paths.sum(axis=1))
    equity = 1000.0 + np.cumsum(paths, axis=1)
    dd = max_drawdown(np.column_stack([np.full(300, 1000.0), equity]))
    assert np.array_equal(res.max_drawdown, dd)
    assert res.edge_le_zero_probability == np.mean(paths.mean(axis=1) <= 0)


def test_same_seed_same_result_and_another_seed_differs() -> None:
    pnl = _ar1_pnl(120, 0.1, seed=2)
    a = bootstrap_trades(pnl, starting_equity=100.0, n_paths=200, seed=3)
    b = bootstrap_trades(pnl, starting_equity=100.0, n_paths=200, seed=3)
    c = bootstrap_trades(pnl, starting_equity=100.0, n_paths=200, seed=4)
    assert np.array_equal(a.final_pnl, b.final_pnl) and a.drawdown_quantiles == b.drawdown_quantiles
    assert not np.array_equal(a.final_pnl, c.final_pnl)


def test_max_drawdown_by_hand() -> None:
    assert max_drawdown(np.array([100.0, 120.0, 90.0, 130.0, 65.0])) == pytest.approx(0.5)
    assert max_drawdown(np.array([[1.0, 2.0, 3.0], [2.0, 1.0, 1.5]])).tolist() == [0.0, 0.5]


def test_constant_winning_trades_give_certain_profit_and_no_drawdown() -> None:
    res = bootstrap_trades(np.ones(50), starting_equity=100.0, n_paths=100, seed=0)
    assert res.block_length == 1.0  # Politis-White is undefined for a constant series
    assert np.all(res.final_pnl == 50.0) and np.all(res.max_drawdown == 0.0)
    assert res.ruin_probability == 0.0 and res.edge_le_zero_probability == 0.0


def test_constant_losing_trades_are_ruin_by_hand() -> None:
    res = bootstrap_trades(-np.ones(60), starting_equity=100.0, n_paths=50, seed=0, ruin=0.5)
    assert np.all(res.final_pnl == -60.0)
    assert res.max_drawdown == pytest.approx(np.full(50, 0.6))  # peak 100 (the start), trough 40
    assert res.ruin_probability == 1.0 and res.edge_le_zero_probability == 1.0
    assert res.worst_mean_final_pnl == -60.0 and res.worst_mean_max_drawdown == pytest.approx(0.6)
    assert bootstrap_trades(-np.ones(60), starting_equity=100.0, n_paths=10, ruin=0.7).ruin_probability == 0.0


def test_worst_decile_and_quantiles_are_read_from_the_paths() -> None:
    pnl = _ar1_pnl(200, 0.05, seed=9)
    res = bootstrap_trades(pnl, starting_equity=200.0, n_paths=500, seed=1, worst_fraction=0.1)
    order = np.argsort(res.final_pnl, kind="stable")[:50]
    assert res.worst_mean_final_pnl == pytest.approx(res.final_pnl[order].mean())
    assert res.worst_mean_max_drawdown == pytest.approx(res.max_drawdown[order].mean())
    assert res.worst_mean_final_pnl < res.final_pnl.mean()
    assert res.drawdown_quantiles[0.95] == pytest.approx(np.quantile(res.max_drawdown, 0.95))
    qs = [res.drawdown_quantiles[q] for q in (0.5, 0.9, 0.95, 0.99)]
    assert qs == sorted(qs)


def test_planted_edge_versus_noise() -> None:
    edge = bootstrap_trades(_ar1_pnl(250, 0.6, seed=5), starting_equity=500.0, n_paths=1000, seed=0)
    assert edge.edge_le_zero_probability < 0.02
    noise_pnl = _ar1_pnl(250, 0.0, seed=5)
    noise_pnl -= noise_pnl.mean()  # exactly no edge in the sample
    noise = bootstrap_trades(noise_pnl, starting_equity=500.0, n_paths=1000, seed=0)
    assert 0.35 < noise.edge_le_zero_probability < 0.65
    assert noise.drawdown_quantiles[0.5] > edge.drawdown_quantiles[0.5]


def test_ruin_probability_grows_as_the_ruin_threshold_tightens() -> None:
    pnl = _ar1_pnl(200, 0.0, seed=8)
    probs = [bootstrap_trades(pnl, starting_equity=40.0, n_paths=300, seed=2, ruin=r).ruin_probability
             for r in (0.9, 0.5, 0.25, 0.1)]
    assert probs == sorted(probs) and probs[-1] > probs[0]


def test_bootstrap_refuses_bad_inputs() -> None:
    with pytest.raises(ValueError):
        bootstrap_trades(np.ones(1), starting_equity=1.0)
    with pytest.raises(ValueError):
        bootstrap_trades(np.ones(5), starting_equity=0.0)
    with pytest.raises(ValueError):
        bootstrap_trades(np.ones(5), starting_equity=1.0, ruin=0.0)
    with pytest.raises(ValueError):
        bootstrap_trades(np.ones(5), starting_equity=1.0, block_length=0.5)
    assert politis_white_block_length(np.zeros(10)) == 1.0


def test_slippage_sensitivity_by_hand() -> None:
    res = slippage_sensitivity(np.array([10.0, -2.0, 5.0]), np.array([1.0, 1.0, 1.0]))
    assert res.multipliers.tolist() == [1.0, 1.25, 1.5, 2.0]
    assert res.net_pnl == pytest.approx([10.0, 9.25, 8.5, 7.0])
    assert res.net_per_trade == pytest.approx(np.array([10.0, 9.25, 8.5, 7.0]) / 3)
    assert res.break_even_multiplier == pytest.approx(13 / 3)
    assert slippage_sensitivity(np.array([1.0]), np.array([0.0])).break_even_multiplier == math.inf
    assert math.isnan(slippage_sensitivity(np.array([-1.0]), np.array([0.0])).break_even_multiplier)
    assert slippage_sensitivity(np.array([1.0, 1.0]), np.array([1.0, 2.0])).break_even_multiplier < 1.0
    with pytest.raises(ValueError):
        slippage_sensitivity(np.array([1.0]), np.array([-1.0]))


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.floats(-100, 100), st.floats(0.01, 10)), min_size=1, max_size=30))
def test_net_pnl_is_zero_at_the_break_even_multiplier(trades: list[tuple[float, float]]) -> None:
    g, c = np.array(trades).T
    res = slippage_sensitivity(g, c, multipliers=[0.0])
    at = slippage_sensitivity(g, c, multipliers=[res.break_even_multiplier])
    assert at.net_pnl[0] == pytest.approx(0.0, abs=1e-9 * (np.abs(g).sum() + c.sum()))
    assert res.net_pnl[0] == pytest.approx(g.sum())


def test_regime_subset_stress_by_hand() -> None:
    r = np.array([0.1, -0.1, 0.05, -0.2])
    lab = np.array(["bull", "bear", "bull", "crash"])
    res = regime_subset_stress(r, lab, {"bear", "crash"}, periods_per_year=1)
    assert res.hostile_share == 0.5
    assert res.hostile.n_periods == 2 and res.hostile.total == pytest.approx(-0.3)
    assert res.hostile.annual_return == pytest.approx(-0.15)
    assert res.hostile.sharpe == pytest.approx(-0.15 / np.std([-0.1, -0.2], ddof=1))
    assert res.hostile.max_drawdown == pytest.approx(0.28)  # 1 -> 0.9 -> 0.72
    assert res.full.n_periods == 4 and res.full.total == pytest.approx(-0.15)
    # 1.1, 0.99, 1.0395, 0.8316: peak 1.1, trough 0.8316
    assert res.full.max_drawdown == pytest.approx(1 - 0.8316 / 1.1)
    none = regime_subset_stress(r, lab, {"sideways-with-a-long-name"})
    assert none.hostile.n_periods == 0 and math.isnan(none.hostile.sharpe) and none.hostile_share == 0.0


def test_hostile_regimes_expose_a_strategy_that_only_wins_in_calm_markets() -> None:
    rng = np.random.default_rng(4)
    lab = np.repeat(np.array([0, 1, 0, 2]), 250)
    r = rng.normal(0.001, 0.01, 1000) - 0.003 * (lab == 2)
    res = regime_subset_stress(r, lab, [2])
    assert res.full.sharpe > 0 > res.hostile.sharpe
    assert res.hostile_share == 0.25
