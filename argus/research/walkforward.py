"""Walk-forward evaluation of a parameter sweep, the parameter-stability penalty and regime sensitivity.

Inputs are per-period returns: a T × N matrix, one column per configuration of the sweep (fractional
returns, or P&L per period: every statistic here is additive, nothing compounds).

Statistics (NaN where there are too few periods or no dispersion, never a made-up number):
annualised return = mean per-period return × periods_per_year; Sharpe = mean / std(ddof=1) ×
sqrt(periods_per_year).

Walk-forward (Pardo, *The Evaluation and Optimization of Trading Strategies*, 2008, ch. 11): in each fold
the configuration with the best in-sample score is selected (ties and NaNs: the lowest column index among
the best finite scores; if no score is finite, column 0); its out-of-sample returns are kept. Fold
efficiency = OOS annualised return / IS annualised return of the selected configuration; the run's
walk-forward efficiency = annualised return of the stitched OOS series / the mean of the folds' IS
annualised returns weighted by their test lengths (so each fold's IS and OOS count alike). An efficiency
is NaN when its IS annualised return is ≤ 0 (there is no in-sample profit to retain).

Parameter stability: scores on a grid (an array whose axes are the ordered parameter axes). The
neighbours of a grid point are the points at Chebyshev distance ≤ `radius` (edges truncated), NaNs
ignored. The stable score of a point is min(score, median of its neighbours): a plateau keeps its value,
a lone peak falls to the level of its neighbours. A point is killed when its score is positive and its
neighbours' median is below `min_ratio` × score (default 0.5: the neighbourhood must keep at least half
of the peak). A point without finite neighbours cannot be judged and is neither penalised nor killed.

Regime sensitivity: the metric (annualised Sharpe by default) computed on the periods of each regime
label separately; the score is the population standard deviation of those per-regime values across the
regimes that have at least `min_periods` periods (0 for a strategy that behaves alike in every regime).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from argus.research.splits import WalkForwardFold

__all__ = [
    "FoldResult",
    "RegimeSensitivity",
    "StabilityResult",
    "WalkForwardResult",
    "annualised_return",
    "parameter_stability",
    "regime_sensitivity",
    "sharpe_ratio",
    "walk_forward",
]

Metric = Callable[[np.ndarray], np.ndarray]


def annualised_return(returns: np.ndarray, periods_per_year: float = 252.0) -> np.ndarray:
    """Mean per-period return × periods_per_year along axis 0 (NaN for no periods)."""
    r = np.asarray(returns, dtype=np.float64)
    if r.shape[0] == 0:
        return np.full(r.shape[1:], np.nan)
    return r.mean(axis=0) * periods_per_year


def sharpe_ratio(returns: np.ndarray, periods_per_year: float = 252.0) -> np.ndarray:
    """mean / std(ddof=1) × sqrt(periods_per_year) along axis 0; NaN with < 2 periods or zero dispersion."""
    r = np.asarray(returns, dtype=np.float64)
    if r.shape[0] < 2:
        return np.full(r.shape[1:], np.nan)
    mean = r.mean(axis=0)
    sd = r.std(axis=0, ddof=1)
    # A zero or round-off dispersion (constant returns) has no Sharpe ratio.
    tiny = sd <= 1e-14 * np.maximum(np.abs(mean), 1e-300)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(tiny, np.nan, mean / np.where(tiny, 1.0, sd) * np.sqrt(periods_per_year))
    return out


def _metric(metric: str | Metric, periods_per_year: float) -> Metric:
    if callable(metric):
        return metric
    if metric == "sharpe":
        return lambda r: sharpe_ratio(r, periods_per_year)
    if metric == "annual_return":
        return lambda r: annualised_return(r, periods_per_year)
    raise ValueError(f"unknown metric {metric!r}: use 'sharpe', 'annual_return' or a callable")


def _select(scores: np.ndarray) -> int:
    finite = np.isfinite(scores)
    if not finite.any():
        return 0
    return int(np.argmax(np.where(finite, scores, -np.inf)))


@dataclass(frozen=True)
class FoldResult:
    """One fold: the selected column, its IS and OOS scores and annualised returns, and the fold efficiency."""

    fold: int
    selected: int
    is_score: float
    oos_score: float
    is_annual_return: float
    oos_annual_return: float
    efficiency: float


@dataclass(frozen=True)
class WalkForwardResult:
    """Per-fold results, the stitched OOS returns of the selected configurations (with their period
    indices), the walk-forward efficiency and the OOS score and annualised return of the stitched series."""

    folds: tuple[FoldResult, ...]
    oos_returns: np.ndarray
    oos_index: np.ndarray
    efficiency: float
    oos_score: float
    oos_annual_return: float


def walk_forward(returns: np.ndarray, folds: Sequence[WalkForwardFold], *, metric: str | Metric = "sharpe",
                 periods_per_year: float = 252.0) -> WalkForwardResult:
    """Select in sample, evaluate out of sample, fold by fold. `returns` is T × N (rows: periods); the folds'
    windows index its rows. `metric` is 'sharpe', 'annual_return' or a callable mapping a (t × n) block to
    n scores (higher is better)."""
    r = np.asarray(returns, dtype=np.float64)
    if r.ndim != 2:
        raise ValueError(f"returns must be a T x N matrix, got shape {r.shape}")
    if not folds:
        raise ValueError("walk_forward needs at least one fold")
    score = _metric(metric, periods_per_year)
    results, oos_parts, idx_parts, is_ann, weights = [], [], [], [], []
    for f in folds:
        if not (0 <= f.train_start < f.train_stop <= f.test_start < f.test_stop <= r.shape[0]):
            raise ValueError(f"fold {f.index} does not fit {r.shape[0]} periods with its test after its training")
        is_block, oos_block = r[f.train], r[f.test]
        is_scores = np.asarray(score(is_block), dtype=np.float64)
        j = _select(is_scores)
        is_a = float(annualised_return(is_block[:, j], periods_per_year))
        oos_a = float(annualised_return(oos_block[:, j], periods_per_year))
        results.append(FoldResult(f.index, j, float(is_scores[j]), float(score(oos_block[:, [j]])[0]), is_a, oos_a,
                                  oos_a / is_a if is_a > 0 else np.nan))
        oos_parts.append(oos_block[:, j])
        idx_parts.append(np.arange(f.test_start, f.test_stop))
        is_ann.append(is_a)
        weights.append(f.test_stop - f.test_start)
    oos = np.concatenate(oos_parts)
    mean_is = float(np.average(is_ann, weights=weights))
    oos_a = float(annualised_return(oos, periods_per_year))
    return WalkForwardResult(tuple(results), oos, np.concatenate(idx_parts), oos_a / mean_is if mean_is > 0 else np.nan,
                             float(score(oos[:, None])[0]), oos_a)


@dataclass(frozen=True)
class StabilityResult:
    """Per grid point (arrays shaped like the grid): neighbours' median, stable score, and the kill flag."""

    neighbour_median: np.ndarray
    stable_score: np.ndarray
    killed: np.ndarray
    min_ratio: float
    radius: int


def parameter_stability(scores: np.ndarray, *, radius: int = 1, min_ratio: float = 0.5) -> StabilityResult:
    """Parameter-stability penalty over a grid of scores (rule in the module docstring). `scores` has one axis
    per ordered parameter (reshape a product-ordered flat list with `np.reshape(flat, shape)`)."""
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim == 0:
        raise ValueError("scores must have at least one grid axis")
    if isinstance(radius, bool) or int(radius) != radius or radius < 1:
        raise ValueError(f"radius must be an integer >= 1, got {radius!r}")
    if not 0.0 <= min_ratio <= 1.0:
        raise ValueError(f"min_ratio must lie in [0, 1], got {min_ratio!r}")
    offsets = [o for o in np.ndindex(*(2 * radius + 1,) * s.ndim) if any(v != radius for v in o)]
    padded = np.pad(s, radius, constant_values=np.nan)
    stack = np.stack([padded[tuple(slice(o_k, o_k + n) for o_k, n in zip(o, s.shape, strict=True))]
                      for o in offsets])
    has = np.isfinite(stack).any(axis=0)
    med = np.full(s.shape, np.nan)
    if has.any():
        med[has] = np.nanmedian(stack[:, has], axis=0)
    stable = np.where(has & np.isfinite(s), np.fmin(s, med), s)
    killed = has & np.isfinite(s) & (s > 0) & (med < min_ratio * s)
    return StabilityResult(med, stable, killed, float(min_ratio), int(radius))


@dataclass(frozen=True)
class RegimeSensitivity:
    """Per regime label (sorted): its number of periods and the metric on its periods (NaN below
    `min_periods`); the score (std across the regimes that qualify), the worst regime and its metric."""

    labels: np.ndarray
    counts: np.ndarray
    values: np.ndarray
    score: float
    worst_label: object
    worst_value: float


def regime_sensitivity(returns: np.ndarray, labels: np.ndarray, *, metric: str | Metric = "sharpe",
                       periods_per_year: float = 252.0, min_periods: int = 2) -> RegimeSensitivity:
    """Dispersion of a metric across regime labels for one configuration's per-period returns."""
    r = np.asarray(returns, dtype=np.float64)
    lab = np.asarray(labels)
    if r.ndim != 1 or lab.shape != r.shape:
        raise ValueError(f"returns and labels must be 1-D of one length, got {r.shape} and {lab.shape}")
    score = _metric(metric, periods_per_year)
    uniq = np.unique(lab)
    counts = np.array([int(np.sum(lab == u)) for u in uniq], dtype=np.int64)
    values = np.array([float(score(r[lab == u][:, None])[0]) if c >= min_periods else np.nan
                       for u, c in zip(uniq, counts, strict=True)])
    ok = np.isfinite(values)
    if not ok.any():
        return RegimeSensitivity(uniq, counts, values, np.nan, None, np.nan)
    w = int(np.argmin(np.where(ok, values, np.inf)))
    worst = uniq[w].item() if isinstance(uniq[w], np.generic) else uniq[w]
    return RegimeSensitivity(uniq, counts, values, float(np.std(values[ok])), worst, float(values[w]))
