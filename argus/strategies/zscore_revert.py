"""`zscore_revert`: mean reversion of one instrument, or of a pair's spread, on closed bars.

Signal. Over the last `lookback` closed bars (the current one included):

- single (pair = false): x = close; each backtest symbol is traded on its own;
- pair (pair = true, exactly two symbols): x = log(A) − β·log(B), taken only at the bar ends where
  both legs closed a bar (a bar end that only one leg has is skipped). A is the backtest symbol
  defined first in the market log (the order of `ctx.symbols`, instrument-id order), B the other. β is
  the fixed `beta` when it is not 0, else the rolling OLS slope of log(A) on log(B) (with an intercept)
  over the same `lookback` aligned bars: β = Σ(b − b̄)(a − ā) / Σ(b − b̄)². The spread window is
  recomputed with the current β, so its deviation from its mean is the OLS residual.

z = (x_t − mean) / std with the population standard deviation (ddof = 0, as TA-Lib's STDDEV and
Bollinger bands); no signal before `lookback` values, nor when std is 0 (or β cannot be estimated).

Rules, per symbol (single) or for the spread (pair), evaluated on every closed bar:

- flat: z > entry_z goes short (−1 unit), z < −entry_z long (+1 unit); with a stop, only while
  |z| < stop_z (never entering a position already past its stop);
- long: exit when z ≥ −exit_z (back within exit_z of the mean, or through it); if z is then beyond
  +entry_z it reverses to short at once. Short mirrors it (exit when z ≤ exit_z, reverse below
  −entry_z). So exit_z = 0 exits at the mean crossing, and |z| < exit_z always exits;
- stop (stop_z > 0): a long with z < −stop_z, a short with z > stop_z, goes flat; after a stop there is
  no new entry until |z| has come back to ≤ entry_z (no immediate re-entry into the same move).

A pair position of +1 is long the spread: +1 unit of A and −β·(close_A / close_B) units of B, so both
legs carry the notional that log(A) − β·log(B) weights (with fixed sizing, qty shares of A and a
fractional qty·β·A/B shares of B). The hedge is set at entry and kept until the exit (no rebalancing).
With kelly or vol_target sizing the harness sizes each leg from its own volatility, so the legs no
longer carry the β-weighted notionals: trade pairs with fixed sizing.
Orders are targets; in bars mode they fill at each leg's next bar open (argus.replay.execution).
"""

from __future__ import annotations

import math
from collections import deque

from argus.strategies.base import Param, Strategy, Target

__all__ = ["ZScoreRevert", "next_side"]


def next_side(side: int, z: float, entry_z: float, exit_z: float, stop_z: float,
              cooldown: bool) -> tuple[int, str, bool]:
    """(new side, reason, cooldown) from the current side (−1, 0, +1) and z; the rules of the module
    docstring. `stop_z` 0 means no stop. Pure: the tests check it directly."""
    stop = stop_z > 0.0
    if cooldown and abs(z) <= entry_z:
        cooldown = False
    if side == 1:
        if stop and z < -stop_z:
            return 0, f"stop: z {z:.4g} < -{stop_z:g}", True
        if z >= -exit_z:
            if z > entry_z and not (stop and z >= stop_z):
                return -1, f"reverse: z {z:.4g} > {entry_z:g}", cooldown
            return 0, f"exit: z {z:.4g} >= -{exit_z:g}", cooldown
        return 1, "", cooldown
    if side == -1:
        if stop and z > stop_z:
            return 0, f"stop: z {z:.4g} > {stop_z:g}", True
        if z <= exit_z:
            if z < -entry_z and not (stop and z <= -stop_z):
                return 1, f"reverse: z {z:.4g} < -{entry_z:g}", cooldown
            return 0, f"exit: z {z:.4g} <= {exit_z:g}", cooldown
        return -1, "", cooldown
    if cooldown or (stop and abs(z) >= stop_z):
        return 0, "", cooldown
    if z > entry_z:
        return -1, f"entry: z {z:.4g} > {entry_z:g}", cooldown
    if z < -entry_z:
        return 1, f"entry: z {z:.4g} < -{entry_z:g}", cooldown
    return 0, "", cooldown


def zscore(values) -> float:
    """z of the last value against the window's mean and population std; NaN when std is 0."""
    n = len(values)
    mean = math.fsum(values) / n
    var = math.fsum((v - mean) ** 2 for v in values) / n
    if not var > 0.0:
        return math.nan
    return (values[-1] - mean) / math.sqrt(var)


def ols_beta(a, b) -> float:
    """Slope of a on b (with an intercept); NaN when b does not vary."""
    n = len(a)
    ma, mb = math.fsum(a) / n, math.fsum(b) / n
    sxx = math.fsum((y - mb) ** 2 for y in b)
    if not sxx > 0.0:
        return math.nan
    return math.fsum((y - mb) * (x - ma) for x, y in zip(a, b, strict=True)) / sxx


class ZScoreRevert(Strategy):
    name = "zscore_revert"
    description = "mean reversion of a close (or a pair's log spread) on its rolling z-score; goes short too"
    family = "mean_reversion"
    instrument_kinds = frozenset({"equity", "index", "crypto", "fx", "future"})
    max_trades_per_day = 8.0
    params = (
        Param("lookback", "int", 20, low=3, high=2000, step=1,
              doc="bars in the rolling mean/std (and the OLS hedge ratio of a pair)"),
        Param("entry_z", "float", 2.0, low=0.1, high=10.0, step=0.25, doc="enter when |z| exceeds this"),
        Param("exit_z", "float", 0.5, low=0.0, high=10.0, step=0.25,
              doc="exit when z is back within this of the mean (or through it); < entry_z"),
        Param("stop_z", "float", 0.0, low=0.0, high=20.0, step=0.5,
              doc="exit when |z| exceeds this against the position; 0 = no stop; else > entry_z"),
        Param("pair", "bool", False, doc="trade the log spread of the two symbols instead of each alone"),
        Param("beta", "float", 0.0, low=-10.0, high=10.0, step=0.1,
              doc="fixed hedge ratio of the pair spread; 0 = rolling OLS over lookback"),
    )

    def __init__(self, filters=None, **params):
        super().__init__(filters, **params)
        p = self.p
        if p["exit_z"] >= p["entry_z"]:
            raise ValueError(f"parameter exit_z = {p['exit_z']!r}: must be < entry_z ({p['entry_z']!r})")
        if p["stop_z"] != 0.0 and p["stop_z"] <= p["entry_z"]:
            raise ValueError(f"parameter stop_z = {p['stop_z']!r}: must be 0 (no stop) or > entry_z "
                             f"({p['entry_z']!r})")
        self._side: dict[str, int] = {}
        self._cooldown: dict[str, bool] = {}
        self._legs: tuple[str, str] | None = None
        self._last: dict[str, tuple[int, float]] = {}  # pair: symbol -> (ts_end, close) of its last bar
        self._la: deque[float] = deque(maxlen=p["lookback"])
        self._lb: deque[float] = deque(maxlen=p["lookback"])
        self._last_aligned = -1

    def on_start(self, ctx) -> None:
        if self.p["pair"]:
            if len(ctx.symbols) != 2:
                raise ValueError(f"parameter pair = True: needs exactly two symbols, got {len(ctx.symbols)} "
                                 f"({', '.join(ctx.symbols)})")
            self._legs = (ctx.symbols[0], ctx.symbols[1])

    def on_bar(self, ctx, bar):
        if self._legs is not None:
            return self._on_pair_bar(ctx, bar)
        n = self.p["lookback"]
        closes = ctx.closes(bar.symbol, n)
        if len(closes) < n:
            return None
        return self._step(bar.symbol, zscore(closes.tolist()), lambda side: [Target(bar.symbol, float(side))])

    def _on_pair_bar(self, ctx, bar):
        a, b = self._legs
        self._last[bar.symbol] = (bar.ts_end, bar.close)
        other = b if bar.symbol == a else a
        mine = self._last.get(other)
        if mine is None or mine[0] != bar.ts_end or bar.ts_end == self._last_aligned:
            return None
        self._last_aligned = bar.ts_end
        pa, pb = self._last[a][1], self._last[b][1]
        if not (pa > 0 and pb > 0):
            return None
        self._la.append(math.log(pa))
        self._lb.append(math.log(pb))
        if len(self._la) < self.p["lookback"]:
            return None
        beta = self.p["beta"] or ols_beta(self._la, self._lb)
        if not math.isfinite(beta):
            return None
        z = zscore([x - beta * y for x, y in zip(self._la, self._lb, strict=True)])

        def legs(side: int) -> list[Target]:
            hedge = 0.0 if side == 0 else -side * beta * pa / pb
            return [Target(a, float(side)), Target(b, hedge)]

        return self._step("pair", z, legs)

    def _step(self, key: str, z: float, targets):
        if not math.isfinite(z):
            return None
        p = self.p
        side = self._side.get(key, 0)
        new, reason, self._cooldown[key] = next_side(side, z, p["entry_z"], p["exit_z"], p["stop_z"],
                                                     self._cooldown.get(key, False))
        if new == side:
            return None
        self._side[key] = new
        return [Target(t.symbol, t.units, reason=reason) for t in targets(new)]
