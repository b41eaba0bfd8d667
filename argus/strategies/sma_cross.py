"""`sma_cross`: the fast/slow simple-moving-average crossover, the baseline every user compares against.

The cross is backtrader's rule (bt.ind.CrossOver): fast − slow changes sign against its last nonzero
value, so touching without crossing is no signal and a flat stretch does not reset the sign. Long-only
by default: an up-cross goes long `units` (1), a down-cross goes flat; with allow_short the down-cross
goes short instead.

Each average is the left-to-right sum of the last `fast` (`slow`) closes, oldest first, divided by the
window length: one fixed evaluation order that the per-bar callback (`on_bar`), the numpy batch
callback (`on_bars`) and the built-in Cython kernel (argus.kernels.sma_cross, `builtin_kernel`) all
follow, so the three decide the same bars to the bit. (backtrader sums with math.fsum; the two orders
agree on the ORCL cross-check, tests/replay/test_backtrader_crosscheck.py.)

Three ways to run the same strategy, all with identical fills, equity and run log:

- `on_bar`: one closed bar at a time (the general harness, argus.replay.backtest);
- `on_bars`: a block of closed bars at once, in numpy (argus.replay.fast, `engine="python"`);
- `builtin_kernel`: the Cython kernel, every instrument in one nogil pass (argus.replay.fast, the
  default engine when the run is eligible).
"""

from __future__ import annotations

import numpy as np

from argus.strategies.base import BarBlock, Param, Strategy, Target, TargetBlock

__all__ = ["SmaCross"]


def _lsum(x: np.ndarray) -> float:
    """x[0] + x[1] + ... left to right (numpy's cumsum is sequential; np.sum is pairwise)."""
    return float(np.cumsum(x)[-1])


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
    #: the reasons of its signals, by code (TargetBlock.code, argus.kernels.sma_cross UP / DOWN)
    REASONS = ("fast crossed above slow", "fast crossed below slow")

    def __init__(self, filters=None, **params):
        super().__init__(filters, **params)
        if self.p["fast"] >= self.p["slow"]:
            raise ValueError(f"parameter fast = {self.p['fast']}: must be < slow ({self.p['slow']})")
        self._last_nz: dict[str, float] = {}
        self._batch: dict[str, np.ndarray] | None = None

    def on_start(self, ctx) -> None:
        self._last_nz = {}
        self._batch = None

    def on_bar(self, ctx, bar):
        fast, slow = self.p["fast"], self.p["slow"]
        closes = ctx.closes(bar.symbol, slow)
        if len(closes) < slow:
            return None
        diff = _lsum(closes[slow - fast:]) / fast - _lsum(closes) / slow
        last = self._last_nz.get(bar.symbol)
        if diff != 0.0 or last is None:
            self._last_nz[bar.symbol] = diff
        if last is None:
            return None
        if last < 0 < diff:
            return Target(bar.symbol, 1.0, reason=self.REASONS[0])
        if last > 0 > diff:
            return Target(bar.symbol, -1.0 if self.p["allow_short"] else 0.0, reason=self.REASONS[1])
        return None

    def builtin_kernel(self, n_symbols: int):
        """The Cython kernel deciding the same targets for `n_symbols` instruments (argus.replay.fast)."""
        from argus.kernels.sma_cross import SmaCrossKernel

        return SmaCrossKernel(n_symbols, self.p["fast"], self.p["slow"], bool(self.p["allow_short"]))

    def on_bars(self, ctx, block: BarBlock) -> TargetBlock:
        """The targets of a block of closed bars, in numpy: per instrument, the block's closes behind a
        tail of the previous slow - 1, windowed sums by shifted adds (left to right, as on_bar), and
        the crossing rule against the last nonzero difference carried from the previous block."""
        fast, slow = self.p["fast"], self.p["slow"]
        n = len(block.symbols)
        tail_len = slow - 1
        st = self._batch
        if st is None:
            st = self._batch = {"tail": np.full((n, tail_len), np.nan), "seen": np.zeros(n, np.int64),
                                "last": np.full(n, np.nan)}
        sym = np.asarray(block.sym, dtype=np.int64)
        nb = len(sym)
        units = np.full(nb, np.nan)
        code = np.full(nb, -1, dtype=np.int8)
        if nb == 0:
            return TargetBlock(units, code, self.REASONS)
        order = np.argsort(sym, kind="stable")
        ss = sym[order]
        counts = np.bincount(sym, minlength=n)
        seg = counts + tail_len
        starts = np.concatenate([[0], np.cumsum(seg)[:-1]])
        total = int(seg.sum())
        x = np.empty(total)
        x[(starts[:, None] + np.arange(tail_len)).reshape(-1)] = st["tail"].reshape(-1)
        first = np.concatenate([[0], np.cumsum(counts)[:-1]])
        rank = np.arange(nb) - first[ss]
        pos = starts[ss] + tail_len + rank
        x[pos] = np.asarray(block.close, dtype=np.float64)[order]
        diff = _window_sums(x, fast)[pos - fast + 1] / fast - _window_sums(x, slow)[pos - slow + 1] / slow
        valid = st["seen"][ss] + rank + 1 >= slow
        vi = np.flatnonzero(valid)
        vs, vd = ss[vi], diff[vi]
        nv = len(vi)
        if nv:
            new_seg = np.ones(nv, bool)
            new_seg[1:] = vs[1:] != vs[:-1]
            seg_start = np.maximum.accumulate(np.where(new_seg, np.arange(nv), 0))
            carried = st["last"][vs]
            stored = (vd != 0.0) | (new_seg & np.isnan(carried))
            latest = np.maximum.accumulate(np.where(stored, np.arange(nv), -1))
            before = np.concatenate([[-1], latest[:-1]])
            prev = np.where(before >= seg_start, vd[np.maximum(before, 0)], carried)
            up = (prev < 0) & (vd > 0)
            down = (prev > 0) & (vd < 0)
            at = order[vi]
            units[at[up]] = 1.0
            code[at[up]] = 0
            units[at[down]] = -1.0 if self.p["allow_short"] else 0.0
            code[at[down]] = 1
            seg_end = np.append(np.flatnonzero(new_seg)[1:], nv) - 1
            end_latest = latest[seg_end]
            has = end_latest >= seg_start[seg_end]
            st["last"][vs[seg_end[has]]] = vd[end_latest[has]]
        st["seen"] += counts
        st["tail"] = x[(starts + seg - tail_len)[:, None] + np.arange(tail_len)]
        return TargetBlock(units, code, self.REASONS)


def _window_sums(x: np.ndarray, w: int) -> np.ndarray:
    """s[k] = x[k] + x[k+1] + ... + x[k+w-1], left to right, for k in [0, len(x) - w]."""
    m = len(x) - w + 1
    s = x[:m].copy()
    for j in range(1, w):
        s += x[j:j + m]
    return s
