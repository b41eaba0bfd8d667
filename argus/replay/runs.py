"""Finished runs under `<data>/runs/<run_id>/`: show, verify (rerun and compare), export to Parquet.

A run directory holds `log/` (the run log: ConfigRecorded, instruments, signals, orders, fills) and
`summary.json` (the result as `argusctl backtest --json` prints it). Verification reads the recorded
configuration back from the run log's first event, reruns the backtest on the market log and compares
run ids and digests (the run log's chain head)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from argus.events.types import EventType
from argus.log import EventLog
from argus.replay.backtest import BacktestResult, run_backtest
from argus.replay.settings import BacktestConfig
from argus.strategies.registry import StrategyRegistry, default_registry

__all__ = ["export_run", "recorded_config", "run_dir", "show_run", "verify_run"]


def run_dir(data: str | Path, run: str) -> Path:
    """The directory of run `run` (its id, or a unique prefix of it)."""
    runs = Path(data) / "runs"
    exact = runs / run
    if exact.is_dir():
        return exact
    found = sorted(p for p in runs.glob(f"{run}*") if p.is_dir() and len(run) >= 6) if runs.is_dir() else []
    if len(found) != 1:
        raise FileNotFoundError(f"run {run!r}: {'no such run' if not found else 'ambiguous prefix'} in {runs}")
    return found[0]


def show_run(data: str | Path, run: str) -> dict[str, Any]:
    return json.loads((run_dir(data, run) / "summary.json").read_text())


def recorded_config(path: Path) -> dict[str, Any]:
    """The canonical configuration document recorded first in a run log."""
    with EventLog(path / "log", readonly=True) as lg:
        _, first = next(lg.events(0, limit=1))
    if first.type != EventType.CONFIG_RECORDED or first.data.get("name") != "backtest":
        raise ValueError(f"run log {path}: the first event is {first.type.name}, not the backtest's ConfigRecorded")
    return json.loads(first.data["config_json"])


def verify_run(market: EventLog, data: str | Path, run: str,
               registry: StrategyRegistry | None = None) -> dict[str, Any]:
    """Rerun a recorded backtest and compare: {"run_id", "ok", "digest", "rerun_digest", ...}."""
    path = run_dir(data, run)
    doc = recorded_config(path)
    cfg = BacktestConfig.from_dict(doc["config"])
    strategy = (registry or default_registry()).create(cfg.strategy, cfg.params)
    stored = json.loads((path / "summary.json").read_text())
    rerun = run_backtest(market, cfg, strategy)
    ok = rerun.run_id == path.name and rerun.digest == stored["digest"]
    return {"run_id": path.name, "ok": ok, "rerun_run_id": rerun.run_id, "digest": stored["digest"],
            "rerun_digest": rerun.digest, "final_equity": stored["final_equity"],
            "rerun_final_equity": rerun.final_equity}


def export_run(result: BacktestResult, out_dir: str | Path) -> dict[str, str]:
    """Write trades.parquet, fills.parquet and equity.parquet; returns {table: path}."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = {}
    for name in ("trades", "fills", "equity"):
        cols = result.tables[name]
        table = pa.table({k: _arrow(v, k) for k, v in cols.items()})
        path = out / f"{name}.parquet"
        pq.write_table(table, path)
        written[name] = str(path)
    return written


def _arrow(values: np.ndarray, name: str):
    import pyarrow as pa

    arr = np.asarray(values)
    if name in ("ts", "entry_ts", "exit_ts"):
        ints = arr.astype(np.int64)
        return pa.array(np.where(ints < 0, np.iinfo(np.int64).min, ints).astype("datetime64[ns]"),
                        type=pa.timestamp("ns", tz="UTC"), mask=ints < 0)
    if arr.dtype.kind in "OU":
        return pa.array(arr.astype(str).tolist(), type=pa.string())
    return pa.array(arr)
