"""Round trips and performance metrics of a finished backtest.

A round trip runs from the fill that opens a position from flat to the fill that brings it back to
flat (a fill that flips the position closes one trip and opens the next with the remainder; its
commission is split pro rata). P&L is net of commissions; `mae`/`mfe` are the worst and best unrealized
P&L over the bars from the entry fill's bar to the exit fill's bar (extremes of their lows and highs).
A position still open at the end is a trip with exit_reason "open", marked at the last close.

Metrics use the equity curve sampled at every closed bar, reduced to one value per New York calendar
day (the last) for return statistics, so intraday and daily runs are comparable:
sharpe = mean/std(ddof=1) x sqrt(252) of daily returns; sortino = mean / sqrt(mean(min(r, 0)^2)) x
sqrt(252); max_drawdown = max(1 - equity / running peak) over every sample (a fraction); its duration in
days from the peak to the recovery (or the end); cagr over the calendar span; calmar = cagr /
max_drawdown; turnover = traded value / mean equity per year; exposure = the fraction of samples with
a nonzero position. A statistic without enough data is None, never a made-up number.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["compute_metrics", "round_trips"]

_YEAR_NS = 365.25 * 86_400e9
_TRADE_COLUMNS = ("symbol", "side", "qty", "entry_ts", "entry_price", "exit_ts", "exit_price", "pnl", "commission",
                  "slippage_cost", "mae", "mfe", "exit_reason", "entry_offset", "exit_offset")


def round_trips(fills: list[dict[str, Any]], bars: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]],
                multipliers: dict[str, float], last_close: dict[str, float] | None = None) -> dict[str, np.ndarray]:
    """Round trips from fills (in fill order). `bars[symbol]` = (offsets, highs, lows) of its closed bars."""
    out: dict[str, list] = {k: [] for k in _TRADE_COLUMNS}
    open_trips: dict[str, dict[str, Any]] = {}
    for f in fills:
        sym, q, p = f["symbol"], float(f["quantity"]), float(f["price"])
        left, comm, slip = q, float(f["commission"]), float(f["slippage_cost"])
        while abs(left) > 1e-12:
            t = open_trips.get(sym)
            share = abs(left) / abs(q)
            if t is None:
                t = open_trips[sym] = {"side": 1 if left > 0 else -1, "pos": 0.0, "qty": 0.0, "entry_value": 0.0,
                                       "entry_qty": 0.0, "exit_value": 0.0, "exit_qty": 0.0, "commission": 0.0,
                                       "slippage_cost": 0.0, "entry_ts": f["ts"], "entry_offset": f["offset"]}
            if (left > 0) == (t["side"] > 0):  # grows
                t["entry_value"] += abs(left) * p
                t["entry_qty"] += abs(left)
                t["pos"] += left
                t["qty"] = max(t["qty"], abs(t["pos"]))
                t["commission"] += comm * share
                t["slippage_cost"] += slip * share
                left = 0.0
                continue
            c = min(abs(left), abs(t["pos"]))
            part = c / abs(q)
            t["exit_value"] += c * p
            t["exit_qty"] += c
            t["pos"] += math.copysign(c, left)
            t["commission"] += comm * part
            t["slippage_cost"] += slip * part
            left -= math.copysign(c, left)
            if abs(t["pos"]) <= 1e-12:
                _close(out, sym, t, f["ts"], f["offset"], f.get("reason", ""), bars.get(sym), multipliers.get(sym, 1.0))
                del open_trips[sym]
    for sym in sorted(open_trips):
        t = open_trips[sym]
        mark = (last_close or {}).get(sym, math.nan)
        t["exit_value"] += abs(t["pos"]) * mark
        t["exit_qty"] += abs(t["pos"])
        _close(out, sym, t, -1, -1, "open", bars.get(sym), multipliers.get(sym, 1.0))
    cols = {k: np.array(v) for k, v in out.items()}
    if not out["symbol"]:
        cols = {k: np.empty(0, dtype=object if k in ("symbol", "exit_reason") else float) for k in _TRADE_COLUMNS}
    return cols


def _close(out: dict[str, list], sym: str, t: dict[str, Any], ts: int, offset: int, reason: str,
           bars: tuple[np.ndarray, np.ndarray, np.ndarray] | None, mult: float) -> None:
    entry = t["entry_value"] / t["entry_qty"]
    exit_ = t["exit_value"] / t["exit_qty"] if t["exit_qty"] else math.nan
    side, qty = t["side"], t["qty"]
    pnl = side * (t["exit_value"] - entry * t["exit_qty"]) * mult - t["commission"]
    mae = mfe = math.nan
    if bars is not None and len(bars[0]):
        offs, highs, lows = bars
        lo = np.searchsorted(offs, t["entry_offset"])
        hi = len(offs) if offset < 0 else np.searchsorted(offs, offset, side="right")
        if hi > lo:
            best = highs[lo:hi].max() if side > 0 else lows[lo:hi].min()
            worst = lows[lo:hi].min() if side > 0 else highs[lo:hi].max()
            mfe = max(0.0, side * (best - entry) * qty * mult)
            mae = min(0.0, side * (worst - entry) * qty * mult)
    for k, v in (("symbol", sym), ("side", side), ("qty", qty), ("entry_ts", t["entry_ts"]), ("entry_price", entry),
                 ("exit_ts", ts), ("exit_price", exit_), ("pnl", pnl), ("commission", t["commission"]),
                 ("slippage_cost", t["slippage_cost"]), ("mae", mae), ("mfe", mfe), ("exit_reason", reason),
                 ("entry_offset", t["entry_offset"]), ("exit_offset", offset)):
        out[k].append(v)


def _opt(x: float) -> float | None:
    return float(x) if x is not None and math.isfinite(x) else None


def compute_metrics(equity: np.ndarray, trades: dict[str, np.ndarray], cash: float,
                    fills: list[dict[str, Any]], multipliers: dict[str, float] | None = None) -> dict[str, Any]:
    m: dict[str, Any] = dict.fromkeys(("sharpe", "sortino", "calmar", "cagr", "max_drawdown", "max_drawdown_days",
                                       "win_rate", "profit_factor", "expectancy", "exposure", "turnover"))
    closed = trades["exit_reason"] != "open" if len(trades["symbol"]) else np.zeros(0, bool)
    pnl = np.asarray(trades["pnl"], float)[closed] if len(closed) else np.empty(0)
    m["trades"] = int(len(pnl))
    if len(pnl):
        wins, losses = pnl[pnl > 0], pnl[pnl < 0]
        m["win_rate"] = float(len(wins) / len(pnl))
        m["expectancy"] = float(pnl.mean())
        m["profit_factor"] = _opt(wins.sum() / -losses.sum()) if len(losses) else None
    if len(equity) == 0:
        return m
    eq = np.concatenate([[cash], equity["equity"]])
    peak = np.maximum.accumulate(eq)
    dd = 1.0 - eq / peak
    m["max_drawdown"] = float(dd.max())
    ts = np.concatenate([[equity["ts"][0]], equity["ts"]])
    k = int(dd.argmax())
    if dd[k] > 0:
        start = int(np.flatnonzero(eq[: k + 1] == peak[k])[0])
        rec = np.flatnonzero(eq[k:] >= peak[k])
        end = k + int(rec[0]) if len(rec) else len(eq) - 1
        m["max_drawdown_days"] = float((ts[end] - ts[start]) / 86_400e9)
    else:
        m["max_drawdown_days"] = 0.0
    m["exposure"] = float(np.mean(equity["gross_exposure"] > 0))
    days = pd.to_datetime(equity["ts"], utc=True).tz_convert("America/New_York").date
    daily = pd.Series(equity["equity"]).groupby(np.asarray(days)).last().to_numpy()
    r = np.diff(np.concatenate([[cash], daily])) / np.concatenate([[cash], daily])[:-1]
    if len(r) >= 2 and r.std(ddof=1) > 0:
        m["sharpe"] = float(r.mean() / r.std(ddof=1) * math.sqrt(252))
    down = math.sqrt(float(np.mean(np.minimum(r, 0.0) ** 2))) if len(r) else 0.0
    if len(r) >= 2 and down > 0:
        m["sortino"] = float(r.mean() / down * math.sqrt(252))
    years = (int(equity["ts"][-1]) - int(equity["ts"][0])) / _YEAR_NS
    final = float(equity["equity"][-1])
    if years > 0 and final > 0:
        m["cagr"] = float((final / cash) ** (1 / years) - 1)
        traded = sum(abs(f["quantity"] * f["price"]) * (multipliers or {}).get(f["symbol"], 1.0) for f in fills)
        m["turnover"] = float(traded / float(np.mean(equity["equity"])) / years)
        if m["max_drawdown"] > 0:
            m["calmar"] = m["cagr"] / m["max_drawdown"]
    return m
