"""Parquet export of the derived store: bars.parquet, indicators.parquet, positions.parquet.

Columns (every file also has `config_hash`):
  bars.parquet        symbol, timeframe, ts_start, ts_end, open, high, low, close, volume, vwap,
                      trade_count, first_ts, last_ts, session, offset, instrument_id
  indicators.parquet  symbol, timeframe, ts_start, ts_end, offset, instrument_id, then one column per
                      indicator (sma_20, ema_12, ...); NaN before an indicator's warm-up ends
  positions.parquet   symbol, account_id, position_id, offset, ts_recv, fill_qty, fill_price, quantity,
                      avg_cost, realized_pnl, commission, multiplier, mark, unrealized_pnl (one row per fill)
  regimes.parquet, regime_changes.parquet, bocpd.parquet, outcomes.parquet, sessions.parquet
                      symbol and timeframe where the rows name an instrument and a bar spec, then the
                      output's own fields (see the reducers in kernels/)
One row per instrument, timeframe and bar end (per fill for positions), in log-offset order. Times
are int64 ns UTC.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from argus.projections.config import ProjectionConfig
from argus.projections.store import DerivedStore

_BAR_COLUMNS = ("ts_start", "ts_end", "open", "high", "low", "close", "volume", "vwap", "trade_count", "first_ts",
                "last_ts", "session", "offset", "instrument_id")


def _public(arr: np.ndarray) -> dict[str, np.ndarray]:
    """The row fields as columns; a fixed-size array field (e.g. hmm's prob[8]) becomes prob_0, prob_1, ..."""
    cols: dict[str, np.ndarray] = {}
    for n in arr.dtype.names:
        if n.startswith("_"):
            continue
        values = arr[n]
        if values.ndim > 1:
            for i in range(values.shape[1]):
                cols[f"{n}_{i}"] = values[:, i]
        else:
            cols[n] = values
    return cols


def export_parquet(store: DerivedStore, config: ProjectionConfig, dtypes: dict[str, np.dtype],
                   symbols: dict[int, str], out_dir: str | Path) -> dict[str, int]:
    """Write the Parquet files of every output in the store; returns rows written per file."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    labels = np.array([b.label for b in config.bars] or [""], dtype=object)
    meta = {b"argus_config_hash": config.config_hash.hex().encode(), b"argus_config": config.canonical_json().encode()}
    written: dict[str, int] = {}

    def sym(ids: np.ndarray) -> list[str | None]:
        return [symbols.get(int(i)) for i in ids]

    def save(name: str, cols: dict[str, object]) -> None:
        cols["config_hash"] = [config.config_hash.hex()] * len(next(iter(cols.values())))
        table = pa.table(cols).replace_schema_metadata(meta)
        pq.write_table(table, out / f"{name}.parquet")
        written[f"{name}.parquet"] = table.num_rows

    bars = store.rows("bars", dtypes["bars"]) if "bars" in dtypes else None
    if bars is not None:
        cols: dict[str, object] = {"symbol": sym(bars["instrument_id"]), "timeframe": labels[bars["spec"]].tolist()}
        cols.update({c: bars[c] for c in _BAR_COLUMNS})
        save("bars", cols)
    if "indicators" in dtypes and bars is not None:
        ind = store.rows("indicators", dtypes["indicators"])
        # Each indicator row belongs to the bar closed by the same event, instrument and spec.
        key = {(int(o), int(i), int(s)): k for k, (o, i, s) in
               enumerate(zip(bars["offset"], bars["instrument_id"], bars["spec"], strict=True))}
        idx = np.array([key[(int(o), int(i), int(s))] for o, i, s in
                        zip(ind["offset"], ind["instrument_id"], ind["spec"], strict=True)], dtype=np.int64)
        cols = {"symbol": sym(ind["instrument_id"]), "timeframe": labels[ind["spec"]].tolist(),
                "ts_start": bars["ts_start"][idx] if len(idx) else np.zeros(0, np.int64),
                "ts_end": ind["ts_end"], "offset": ind["offset"], "instrument_id": ind["instrument_id"]}
        cols.update({n: ind[n] for n in ind.dtype.names if n not in ("offset", "instrument_id", "spec", "ts_end")
                     and not n.startswith("_")})
        save("indicators", cols)
    for name, dtype in dtypes.items():
        if name in ("bars", "indicators"):
            continue
        # Every other output (positions, regimes, regime_changes, bocpd, outcomes, sessions): its own
        # fields, with the symbol and timeframe spelled out where the rows carry their ids.
        arr = store.rows(name, dtype)
        cols = {}
        if "instrument_id" in arr.dtype.names:
            cols["symbol"] = sym(arr["instrument_id"])
        if "spec" in arr.dtype.names:
            cols["timeframe"] = labels[arr["spec"]].tolist() if len(arr) else []
        cols.update(_public(arr))
        if not cols:
            continue
        save(name, cols)
    return written


def export_outcomes(engine, symbols: dict[int, str], out_dir: str | Path) -> dict[str, int]:
    """outcomes.parquet: the emitted outcomes (status 1 complete, 2 gap) from the derived store, then the
    windows still open at the end of the replay (status 3 incomplete, partial figures)."""
    config = engine.config
    reducer = next(r for r in engine.projections.listeners if r.name == "outcomes")
    dtype = dict(reducer.outputs())["outcomes"].dtype
    done = engine.store.rows("outcomes", dtype)
    pending = np.asarray(reducer.pending())
    rows = np.concatenate([done, pending.astype(dtype)]) if len(pending) else done
    labels = np.array([b.label for b in config.bars] or [""], dtype=object)
    cols: dict[str, object] = {"symbol": [symbols.get(int(i)) for i in rows["instrument_id"]],
                               "timeframe": labels[rows["spec"]].tolist() if len(rows) else []}
    cols.update(_public(rows))
    cols["config_hash"] = [config.config_hash.hex()] * len(rows)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(cols), out / "outcomes.parquet")
    return {"outcomes.parquet": len(rows), "complete": int(len(done)), "incomplete": int(len(pending))}
