"""`argusctl ingest csv|parquet` on the real files of ../shared/data: every stored value is compared
with the file read by the csv module (or pyarrow), and `log verify` is ok after each import."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from argus.cli.main import cli
from argus.events import codec, layout
from argus.events.types import AggressorSide, EventType, InstrumentKind
from argus.log import EventLog

US = 1_000  # ns per microsecond
TARDIS_TIMES = "ts_event=timestamp,ts_recv=local_timestamp"


def run(data: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["--data", str(data), *args])
    return result.exit_code, result.stdout, result.stderr


def ingest(data: Path, fmt: str, path: Path, *args: str) -> dict:
    code, out, err = run(data, "ingest", fmt, str(path), "--json", *args)
    assert code == 0, err
    return json.loads(out)


def assert_verified(data: Path) -> None:
    code, out, _ = run(data, "log", "verify", "--json")
    report = json.loads(out)
    assert code == 0 and report["ok"] and report["errors"] == []


def records(data: Path, event_type: EventType) -> tuple[np.ndarray, np.ndarray]:
    """(offsets, structured records) of one fixed-width type, in log order."""
    offsets, raw = [], []
    with EventLog.open(data / "log", readonly=True) as log:
        for chunk in log.chunks():
            for off, rec in codec.iter_records(chunk.body, chunk.first_offset):
                if chunk.start <= off < chunk.stop and int.from_bytes(rec[4:6], "little") == event_type:
                    offsets.append(off)
                    raw.append(bytes(rec))
    return np.asarray(offsets, dtype=np.int64), np.frombuffer(b"".join(raw), dtype=layout.RECORD_DTYPES[event_type])


def instruments(data: Path) -> list[dict]:
    with EventLog.open(data / "log", readonly=True) as log:
        return [dict(e.data) for _, e in log.events() if e.type == EventType.INSTRUMENT_DEFINED]


def source_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8-sig") as fh:
        return list(csv.DictReader(fh))


def head(data: Path) -> int:
    with EventLog.open(data / "log", readonly=True) as log:
        return log.head()


def test_ingest_csv_tardis_trades_with_columns_matches_every_row(shared_data, tmp_path):
    path = shared_data / "nautilus_trader__tardis-trades.csv"
    rows = source_rows(path)
    summary = ingest(tmp_path, "csv", path, "--columns", f"{TARDIS_TIMES},size=amount", "--instrument-kind", "crypto")
    assert (summary["kind"], summary["rows"], summary["events"]) == ("trades", 9999, 10000)
    assert (summary["instruments_defined"], summary["first_offset"], summary["last_offset"]) == (1, 0, 9999)
    [instrument] = instruments(tmp_path)
    assert instrument["symbol"] == "BTCUSDT" == rows[0]["symbol"] and instrument["kind"] == InstrumentKind.CRYPTO
    offsets, recs = records(tmp_path, EventType.TRADE)
    assert offsets.tolist() == list(range(1, len(rows) + 1))  # file order, right after the definition
    assert recs["ts_event"].tolist() == [int(r["timestamp"]) * US for r in rows]
    assert recs["ts_recv"].tolist() == [int(r["local_timestamp"]) * US for r in rows]
    assert recs["price"].tolist() == [float(r["price"]) for r in rows]
    assert recs["size"].tolist() == [float(r["amount"]) for r in rows]
    assert recs["trade_id"].tolist() == [int(r["id"]) for r in rows]
    sides = {"buy": AggressorSide.BUYER, "sell": AggressorSide.SELLER}
    assert recs["aggressor"].tolist() == [sides[r["side"]] for r in rows]
    assert {r["side"] for r in rows} == {"buy", "sell"}
    # Hand check of line 2 of the file.
    assert rows[0]["timestamp"] == "1582329602111000" and recs[0]["ts_event"] == 1582329602111000000
    assert_verified(tmp_path)


def test_ingest_csv_tardis_quotes_with_columns_matches_every_row(shared_data, tmp_path):
    path = shared_data / "nautilus_trader__tardis-quotes.csv"
    rows = source_rows(path)
    ingest(tmp_path, "csv", path, "--columns",
           f"{TARDIS_TIMES},bid=bid_price,ask=ask_price,bid_size=bid_amount,ask_size=ask_amount")
    _, recs = records(tmp_path, EventType.QUOTE)
    assert len(recs) == len(rows) == 9999
    assert recs["ts_event"].tolist() == [int(r["timestamp"]) * US for r in rows]
    assert recs["ts_recv"].tolist() == [int(r["local_timestamp"]) * US for r in rows]
    for field, column in (("bid", "bid_price"), ("ask", "ask_price"), ("bid_size", "bid_amount"),
                          ("ask_size", "ask_amount")):
        assert recs[field].tolist() == [float(r[column]) for r in rows]
    assert_verified(tmp_path)


def test_ingest_csv_truefx_quotes_without_sizes_store_zero_sizes(shared_data, tmp_path):
    path = shared_data / "nautilus_trader__truefx-usdjpy-ticks.csv"
    rows = source_rows(path)
    summary = ingest(tmp_path, "csv", path, "--symbol", "USD/JPY", "--instrument-kind", "fx")
    assert summary["kind"] == "quotes" and summary["events"] == len(rows) + 1 == 1001
    _, recs = records(tmp_path, EventType.QUOTE)
    assert recs["bid"].tolist() == [float(r["bid"]) for r in rows]
    assert recs["ask"].tolist() == [float(r["ask"]) for r in rows]
    assert not recs["bid_size"].any() and not recs["ask_size"].any()
    # Line 2: "2013-01-01 22:00:00.295000+00:00" -> 1357077600 s + 295 ms.
    assert rows[0]["timestamp"] == "2013-01-01 22:00:00.295000+00:00"
    assert recs[0]["ts_event"] == 1357077600_295_000_000 == recs[0]["ts_recv"]
    assert instruments(tmp_path)[0]["kind"] == InstrumentKind.FX
    assert_verified(tmp_path)


def test_ingest_parquet_binance_quotes_symbol_column_defines_one_instrument(shared_data, tmp_path):
    path = shared_data / "nautilus_trader__binance-btcusdt-quotes.parquet"
    table = pq.read_table(path).to_pydict()
    summary = ingest(tmp_path, "parquet", path)
    assert summary["symbols"] == ["BTC/USDT"] and summary["events"] == len(table["bid"]) + 1 == 452
    _, recs = records(tmp_path, EventType.QUOTE)
    for field in ("bid", "ask", "bid_size", "ask_size"):
        assert recs[field].tolist() == table[field]
    expected_ts = [int(pd.Timestamp(t).value) for t in table["timestamp"]]
    assert recs["ts_event"].tolist() == expected_ts
    assert_verified(tmp_path)


def test_ingest_csv_orcl_daily_bars_end_one_day_after_the_date(shared_data, tmp_path):
    path = shared_data / "backtrader__orcl-1995-2014.txt"
    rows = source_rows(path)
    summary = ingest(tmp_path, "csv", path, "--symbol", "ORCL", "--timeframe", "1d")
    assert summary["kind"] == "bars" and summary["rows"] == len(rows) == 5036
    _, recs = records(tmp_path, EventType.BAR)
    # 1995-01-03 is 9133 days after 1970-01-01; its bar ends at midnight UTC of 1995-01-04.
    assert rows[0]["Date"] == "1995-01-03" and recs[0]["ts_event"] == 9134 * 86_400 * 10**9
    assert recs["interval_ns"].tolist() == [86_400 * 10**9] * len(rows)
    assert recs["close"].tolist() == [float(r["Close"]) for r in rows]  # Close, not Adj Close
    assert recs["volume"].tolist() == [float(r["Volume"]) for r in rows]
    assert_verified(tmp_path)


def test_ingest_csv_backtrader_minutes_names_date_time_and_berlin_tz(shared_data, tmp_path):
    path = shared_data / "backtrader__2006-01-02-volume-min-001.txt"
    code, _, err = run(tmp_path, "ingest", "csv", str(path), "--symbol", "FDAX", "--timeframe", "1m")
    assert code == 3 and "the row has 8 fields but the header gives 7" in err
    summary = ingest(tmp_path, "csv", path, "--names", "date,time,open,high,low,close,volume,openinterest",
                     "--symbol", "FDAX", "--timeframe", "1m", "--tz", "Europe/Berlin")
    assert summary["events"] == 30890 and summary["first_offset"] == 0
    _, recs = records(tmp_path, EventType.BAR)
    # 2006-01-02 09:01 CET (UTC+1; the file holds January and February only, all winter time) opens
    # at 08:01 UTC and ends at 08:02 UTC = 1136160000 s (midnight UTC) + 8 h 2 min.
    assert recs[0]["ts_event"] == (1136160000 + 8 * 3600 + 2 * 60) * 10**9
    assert_verified(tmp_path)


def test_ingest_csv_bad_row_refused_with_file_line_reason_and_log_untouched(shared_data, tmp_path):
    ingest(tmp_path, "csv", shared_data / "nautilus_trader__truefx-usdjpy-ticks.csv", "--symbol", "USD/JPY")
    before = head(tmp_path)
    bad = tmp_path / "data.csv"
    bad.write_text("timestamp,bid,ask\n2024-01-02T10:00:00Z,100.0,100.5\n\n2024-01-02T10:00:01Z,100.0,99.5\n"
                   "yesterday,100.0,100.5\n2024-01-02T10:00:02Z,nan,100.5\n")
    code, out, err = run(tmp_path, "ingest", "csv", str(bad), "--symbol", "NEW")
    assert code == 3 and out == ""
    assert f"{bad}:4: ask = 99.5 < bid = 100.0" in err
    assert f"{bad}:5: timestamp = 'yesterday' is not a timestamp" in err
    assert f"{bad}:6: bid is missing" in err
    assert head(tmp_path) == before
    code, out, err = run(tmp_path, "ingest", "csv", str(bad), "--symbol", "NEW", "--skip-bad", "--json")
    summary = json.loads(out)
    assert code == 0 and summary["bad_rows_skipped"] == 3 and summary["events"] == 2
    assert head(tmp_path) == before + 2
    assert_verified(tmp_path)


def test_ingest_csv_text_summary_and_help_document_defaults(shared_data, tmp_path):
    code, out, _ = run(tmp_path, "ingest", "csv", str(shared_data / "backtrader__ticksample.csv"),
                       "--symbol", "TICK", "--timeframe", "1s")
    assert code == 0 and "events               136" in out and "symbols              TICK" in out
    code, out, _ = run(tmp_path, "ingest", "csv", "--help")
    flat = " ".join(out.split())
    assert code == 0 and "ts_recv = ts_event" in flat and "--skip-bad" in flat and "< 1e11 s" in flat
    code, _, err = run(tmp_path, "ingest", "parquet", str(shared_data / "backtrader__ticksample.csv"),
                       "--timeframe", "1x")
    assert code == 2 and "timeframe" in err


@pytest.mark.parametrize("args", [["--kind", "trades"], ["--columns", "ts_event=nope"]])
def test_ingest_csv_missing_columns_exit_3_and_write_nothing(shared_data, tmp_path, args):
    code, _, err = run(tmp_path, "ingest", "csv", str(shared_data / "nautilus_trader__truefx-usdjpy-ticks.csv"),
                       "--symbol", "X", *args)
    assert code == 3 and "argusctl: error:" in err
    assert not (tmp_path / "log" / "data.mdb").exists() or head(tmp_path) == 0
