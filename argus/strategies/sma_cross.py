"""`sma_cross`: the fast/slow simple-moving-average crossover, the baseline every user compares against.

The cross is backtrader's rule (bt.ind.CrossOver): fast − slow changes sign against its last nonzero
value, so touching without crossing is no signal and a flat stretch does not reset the sign. Long-only
by default: an up-cross goes long `units` (1), a down-cross goes flat; with allow_short the down-cross
goes short instead. Averages are exact sums (math.fsum) of the last `fast`/`slow` closes, as backtrader
computes them, so both agree to the last bit on the same closes.
"""

from __future__ import annotations

import math

from argus.strategies.base import Param, Strategy, Target

__all__ = ["SmaCross"]


class SmaCross(Strategy):
    name = "sma_cross"
    description = "fast/slow SMA crossover (backtrader's crossover rule); long-only unless allow_short"
    family = "trend"
    instrument_kinds = frozenset({"equity", "index", "crypto", "fx", "future"})
    max_trades_per_day = 2.0
    params = (
        Param("fast", "int", 10, low=1, high=500, step=1, doc="bars in the fast average"),
        Param("slow", "int", 30, low=2, high=2000, step=1, doc="bars in the slow average (> fast)"),
        Param("allow_short", "bool", False, doc="go short on a down-cross instead of flat"),
    )

    def __init__(self, filters=None, **params):
        super().__init__(filters, **params)
        if self.p["fast"] >= self.p["slow"]:
            raise ValueError(f"parameter fast = {self.p['fast']}: must be < slow ({self.p['slow']})")
        self._last_nz: dict[str, float] = {}

    def on_bar(self, ctx, bar):
        fast, slow = self.p["fast"], self.p["slow"]
        closes = ctx.closes(bar.symbol, slow)
        if len(closes) < slow:
            return None
        diff = math.fsum(closes[slow - fast:]) / fast - math.fsum(closes) / slow
        last = self._last_nz.get(bar.symbol)
        if diff != 0.0 or last is None:
            self._last_nz[bar.symbol] = diff
        if last is None:
            return None
        if last < 0 < diff:
            return Target(bar.symbol, 1.0, reason="fast crossed above slow")
        if last > 0 > diff:
            return Target(bar.symbol, -1.0 if self.p["allow_short"] else 0.0, reason="fast crossed below slow")
        return None
