"""Robustness of realized trades: stationary block bootstrap, slippage sensitivity, regime-subset stress.

Bootstrap (Politis & Romano, "The Stationary Bootstrap", JASA 1994, through ``arch.bootstrap``): the
sequence of realized trade P&L (currency, net of costs, in exit order) is resampled `n_paths` times with
``arch.bootstrap.StationaryBootstrap``, whose mean block length is chosen by Politis & White (2004, with
the Patton, Politis & White 2009 correction: ``arch.bootstrap.optimal_block_length``, column
"stationary"; at least 1, and 1 when it is undefined, e.g. for constant P&L). Each path has as many
trades as the sample and starts from `starting_equity`. Per path: final P&L (sum), max drawdown as a
fraction of the running peak equity (the starting equity counts as a peak), and ruin (the equity at
some trade is below (1 − ruin) × starting equity). The worst paths are the ceil(worst_fraction × n)
paths with the lowest final P&L (stable order). The probability that the edge is ≤ 0 is the share of
paths whose mean trade P&L is ≤ 0. With the same seed, the paths are exactly arch's.

Slippage sensitivity: net(m) = Σ gross − m · Σ costs for each cost multiplier m; the break-even multiplier
is Σ gross / Σ costs (costs linear in m), +inf when there are no costs and the gross P&L is positive, NaN
when there are neither costs nor positive gross P&L. A break-even below 1 means the strategy loses at
today's costs.

Regime-subset stress: the statistics of a per-period return series restricted to the periods whose regime
label is hostile (concatenated in time order), beside the same statistics over all periods.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Collection, Sequence
from dataclasses import dataclass

import numpy as np
from arch.bootstrap import StationaryBootstrap, optimal_block_length

from argus.research.walkforward import annualised_return, sharpe_ratio

__all__ = [
    "BootstrapResult",
    "PeriodStats",
    "RegimeStress",
    "SlippageSensitivity",
    "bootstrap_trades",
    "max_drawdown",
    "politis_white_block_length",
    "regime_subset_stress",
    "slippage_sensitivity",
]


def politis_white_block_length(pnl: np.ndarray) -> float:
    """Politis–White mean block length for the stationary bootstrap (≥ 1; 1 when undefined)."""
    x = np.asarray(pnl, dtype=np.float64)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        b = float(optimal_block_length(x)["stationary"].iloc[0])
    return max(1.0, b) if math.isfinite(b) else 1.0


def max_drawdown(equity: np.ndarray) -> np.ndarray:
    """max(1 − equity / running peak) along the last axis (a fraction)."""
    e = np.asarray(equity, dtype=np.float64)
    peak = np.maximum.accumulate(e, axis=-1)
    return np.max(1.0 - e / peak, axis=-1)


@dataclass(frozen=True)
class BootstrapResult:
    """Bootstrap of trade P&L: settings, per-path final P&L and max drawdown, and the summaries."""

    n_paths: int
    n_trades: int
    block_length: float
    seed: int
    starting_equity: float
    final_pnl: np.ndarray
    max_drawdown: np.ndarray
    drawdown_quantiles: dict[float, float]
    ruin: float
    ruin_probability: float
    worst_fraction: float
    worst_mean_final_pnl: float
    worst_mean_max_drawdown: float
    edge_le_zero_probability: float


def bootstrap_trades(pnl: np.ndarray, *, starting_equity: float, n_paths: int = 1000, seed: int = 0,
                     ruin: float = 0.5, worst_fraction: float = 0.1,
                     quantiles: Sequence[float] = (0.5, 0.9, 0.95, 0.99),
                     block_length: float | None = None) -> BootstrapResult:
    """Stationary block bootstrap of realized trade P&L (rules in the module docstring); deterministic for a
    seed (``np.random.default_rng(seed)`` drives arch)."""
    x = np.asarray(pnl, dtype=np.float64)
    if x.ndim != 1 or x.size < 2:
        raise ValueError(f"pnl must be 1-D with at least 2 trades, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("pnl must be finite")
    if not (starting_equity > 0 and math.isfinite(starting_equity)):
        raise ValueError(f"starting_equity must be positive, got {starting_equity!r}")
    if isinstance(n_paths, bool) or int(n_paths) != n_paths or n_paths < 1:
        raise ValueError(f"n_paths must be an integer >= 1, got {n_paths!r}")
    if not 0.0 < ruin <= 1.0:
        raise ValueError(f"ruin must lie in (0, 1], got {ruin!r}")
    if not 0.0 < worst_fraction <= 1.0:
        raise ValueError(f"worst_fraction must lie in (0, 1], got {worst_fraction!r}")
    b = politis_white_block_length(x) if block_length is None else float(block_length)
    if not b >= 1.0:
        raise ValueError(f"block_length must be >= 1, got {block_length!r}")
    bs = StationaryBootstrap(b, x, seed=np.random.default_rng(seed))
    paths = np.empty((int(n_paths), x.size))
    for i, (args, _) in enumerate(bs.bootstrap(int(n_paths))):
        paths[i] = args[0]
    equity = starting_equity + np.cumsum(paths, axis=1)
    dd = max_drawdown(np.concatenate([np.full((paths.shape[0], 1), float(starting_equity)), equity], axis=1))
    final = paths.sum(axis=1)
    ruined = equity.min(axis=1) < (1.0 - ruin) * starting_equity
    n_worst = math.ceil(worst_fraction * paths.shape[0])
    worst = np.argsort(final, kind="stable")[:n_worst]
    return BootstrapResult(
        n_paths=int(n_paths), n_trades=int(x.size), block_length=b, seed=int(seed),
        starting_equity=float(starting_equity), final_pnl=final, max_drawdown=dd,
        drawdown_quantiles={float(q): float(np.quantile(dd, q)) for q in quantiles},
        ruin=float(ruin), ruin_probability=float(ruined.mean()), worst_fraction=float(worst_fraction),
        worst_mean_final_pnl=float(final[worst].mean()), worst_mean_max_drawdown=float(dd[worst].mean()),
        edge_le_zero_probability=float(np.mean(paths.mean(axis=1) <= 0.0)),
    )


@dataclass(frozen=True)
class SlippageSensitivity:
    """Net P&L (total and per trade) at each cost multiplier, and the break-even multiplier."""

    multipliers: np.ndarray
    net_pnl: np.ndarray
    net_per_trade: np.ndarray
    gross_pnl: float
    costs: float
    break_even_multiplier: float


def slippage_sensitivity(gross_pnl: np.ndarray, costs: np.ndarray,
                         multipliers: Sequence[float] = (1.0, 1.25, 1.5, 2.0)) -> SlippageSensitivity:
    """Net result of the trades when every trade's costs (commission + slippage, ≥ 0) are scaled by m."""
    g = np.asarray(gross_pnl, dtype=np.float64)
    c = np.asarray(costs, dtype=np.float64)
    if g.ndim != 1 or c.shape != g.shape:
        raise ValueError(f"gross_pnl and costs must be 1-D of one length, got {g.shape} and {c.shape}")
    if np.any(c < 0) or not (np.all(np.isfinite(c)) and np.all(np.isfinite(g))):
        raise ValueError("costs must be finite and non-negative, gross P&L finite")
    m = np.asarray(multipliers, dtype=np.float64)
    gs, cs = float(g.sum()), float(c.sum())
    net = gs - m * cs
    if cs > 0:
        be = gs / cs
    else:
        be = math.inf if gs > 0 else math.nan
    per_trade = net / g.size if g.size else np.full(m.shape, np.nan)
    return SlippageSensitivity(m, net, per_trade, gs, cs, be)


@dataclass(frozen=True)
class PeriodStats:
    """Statistics of a per-period return series: periods, total (sum), annualised return, Sharpe, and the
    max drawdown (fraction) of the compounded equity."""

    n_periods: int
    total: float
    annual_return: float
    sharpe: float
    max_drawdown: float


def _period_stats(r: np.ndarray, periods_per_year: float) -> PeriodStats:
    if r.size == 0:
        return PeriodStats(0, 0.0, math.nan, math.nan, math.nan)
    equity = np.concatenate(([1.0], np.cumprod(1.0 + r)))
    return PeriodStats(int(r.size), float(r.sum()), float(annualised_return(r, periods_per_year)),
                       float(sharpe_ratio(r, periods_per_year)), float(max_drawdown(equity)))


@dataclass(frozen=True)
class RegimeStress:
    """The statistics over all periods and over the hostile periods only, and the hostile share of periods."""

    full: PeriodStats
    hostile: PeriodStats
    hostile_share: float


def regime_subset_stress(returns: np.ndarray, labels: np.ndarray, hostile: Collection[object], *,
                         periods_per_year: float = 252.0) -> RegimeStress:
    """Statistics restricted to the periods whose regime label is in `hostile` (fractional returns)."""
    r = np.asarray(returns, dtype=np.float64)
    lab = np.asarray(labels)
    if r.ndim != 1 or lab.shape != r.shape:
        raise ValueError(f"returns and labels must be 1-D of one length, got {r.shape} and {lab.shape}")
    bad = set(hostile)
    mask = np.array([x in bad for x in lab.tolist()], dtype=bool)
    return RegimeStress(_period_stats(r, periods_per_year), _period_stats(r[mask], periods_per_year),
                        float(mask.mean()) if r.size else math.nan)
