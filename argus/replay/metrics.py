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
    simple = _simple_round_trips(fills, bars, multipliers, last_close)
    if simple is not None:
        return simple
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


def _simple_round_trips(fills: list[dict[str, Any]], bars: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]],
                        multipliers: dict[str, float], last_close: dict[str, float] | None) -> dict | None:
    """round_trips, vectorised, when every trip is one opening fill from flat and (unless still open) one
    fill of exactly the opposite quantity (e.g. fixed-quantity long-only or long/flat runs); None
    otherwise. The same numbers to the bit: each expression repeats the loop's arithmetic for that case
    (a share of 1.0, sums starting from 0.0), and max/min are exact in any order."""
    n = len(fills)
    if not n:
        return None
    sym_of = [f["symbol"] for f in fills]
    q = np.array([float(f["quantity"]) for f in fills])
    if not np.all(np.abs(q) > 1e-12):
        return None
    by_sym: dict[str, list[int]] = {}
    for i, s in enumerate(sym_of):
        by_sym.setdefault(s, []).append(i)
    entries, exits, open_entries = [], [], []
    for s, idx in by_sym.items():
        ix = np.asarray(idx)
        e, x = ix[0::2], ix[1::2]
        if not np.array_equal(q[x], -q[e[:len(x)]]):
            return None
        entries.append(e[:len(x)])
        exits.append(x)
        if len(e) > len(x):
            open_entries.append((s, int(e[-1])))
    e = np.concatenate(entries)
    x = np.concatenate(exits)
    order = np.argsort(x, kind="stable")  # trips close in fill order
    e, x = e[order], x[order]
    open_entries.sort()  # open trips after, by symbol
    e = np.concatenate([e, np.array([i for _, i in open_entries], dtype=np.int64)]).astype(np.int64)
    n_closed = len(x)
    p = np.array([float(f["price"]) for f in fills])
    comm = np.array([float(f["commission"]) for f in fills])
    slip = np.array([float(f["slippage_cost"]) for f in fills])
    syms = [sym_of[i] for i in e.tolist()]
    absq = np.abs(q[e])
    side = np.where(q[e] > 0, 1, -1)
    mark = np.array([(last_close or {}).get(s, math.nan) for s, _ in open_entries], dtype=np.float64)
    exit_p = np.concatenate([p[x], mark])
    entry_value, exit_value = absq * p[e], absq * exit_p
    entry = entry_value / absq
    exit_ = exit_value / absq
    commission = np.concatenate([comm[e[:n_closed]] + comm[x], comm[e[n_closed:]]])
    slippage = np.concatenate([slip[e[:n_closed]] + slip[x], slip[e[n_closed:]]])
    mult = np.array([multipliers.get(s, 1.0) for s in syms], dtype=np.float64)
    pnl = side * (exit_value - entry * absq) * mult - commission
    entry_offset = np.array([fills[i]["offset"] for i in e.tolist()], dtype=np.int64)
    exit_offset = np.concatenate([np.array([fills[i]["offset"] for i in x.tolist()], dtype=np.int64),
                                  np.full(len(open_entries), -1, np.int64)])
    mae, mfe = np.full(len(e), math.nan), np.full(len(e), math.nan)
    names = {s: c for c, s in enumerate(dict.fromkeys(syms))}
    code = np.array([names[s] for s in syms], dtype=np.int64)
    order = np.argsort(code, kind="stable")
    bounds = np.searchsorted(code[order], np.arange(len(names) + 1))
    for c, s in enumerate(names):
        b = bars.get(s)
        if b is None or not len(b[0]):
            continue
        offs, highs, lows = b
        k = order[bounds[c]:bounds[c + 1]]
        lo = np.searchsorted(offs, entry_offset[k])
        hi = np.where(exit_offset[k] < 0, len(offs), np.searchsorted(offs, exit_offset[k], side="right"))
        ok = hi > lo
        k, lo, hi = k[ok], lo[ok], hi[ok]
        if not len(k):
            continue
        cut = np.column_stack([lo, hi]).reshape(-1)
        top = np.maximum.reduceat(np.append(highs, -np.inf), cut)[0::2]
        bottom = np.minimum.reduceat(np.append(lows, np.inf), cut)[0::2]
        sd = side[k]
        best, worst = np.where(sd > 0, top, bottom), np.where(sd > 0, bottom, top)
        up = sd * (best - entry[k]) * absq[k] * mult[k]
        down = sd * (worst - entry[k]) * absq[k] * mult[k]
        mfe[k] = np.where(up > 0.0, up, 0.0)  # max(0.0, up)
        mae[k] = np.where(down < 0.0, down, 0.0)  # min(0.0, down)
    cols = {"symbol": syms, "side": side.tolist(), "qty": absq.tolist(),
            "entry_ts": [fills[i]["ts"] for i in e.tolist()], "entry_price": entry.tolist(),
            "exit_ts": [fills[i]["ts"] for i in x.tolist()] + [-1] * len(open_entries),
            "exit_price": exit_.tolist(), "pnl": pnl.tolist(), "commission": commission.tolist(),
            "slippage_cost": slippage.tolist(), "mae": mae.tolist(), "mfe": mfe.tolist(),
            "exit_reason": [fills[i].get("reason", "") for i in x.tolist()] + ["open"] * len(open_entries),
            "entry_offset": [fills[i]["offset"] for i in e.tolist()],
            "exit_offset": [fills[i]["offset"] for i in x.tolist()] + [-1] * len(open_entries)}
    return {k: np.array(cols[k]) for k in _TRADE_COLUMNS}


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
    # New York calendar days as day numbers of the local wall time (ordered as the dates themselves)
    utc = pd.DatetimeIndex(np.asarray(equity["ts"], dtype=np.int64).view("datetime64[ns]"), tz="UTC")
    local = utc.tz_convert("America/New_York").tz_localize(None)
    days = np.asarray(local, dtype="datetime64[ns]").view(np.int64) // 86_400_000_000_000
    values = np.asarray(equity["equity"], dtype=np.float64)
    if len(days) and np.all(days[1:] >= days[:-1]) and not np.isnan(values).any():
        daily = values[np.r_[np.flatnonzero(days[1:] != days[:-1]), len(days) - 1]]  # each day's last
    else:  # out of order or with gaps: pandas' groupby-last (which skips NaN)
        daily = pd.Series(values).groupby(days).last().to_numpy()
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
