"""argus.connectors.files: column and time rules, bad rows, line numbers, and one atomic append per
file, on small files written here (expected values worked out by hand) and on real files."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from argus.connectors import files
from argus.connectors.files import (
    BadRowsError,
    FileIngestError,
    FileIngestOptions,
    ingest_csv,
    ingest_parquet,
)
from argus.errors import EventValidationError
from argus.events import codec, layout
from argus.events.types import AggressorSide, EventType, InstrumentKind

S = 1_000_000_000  # ns per second
MIN = 60 * S


def records(log, event_type: EventType, from_offset: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(offsets, structured records) of one fixed-width event type from an offset, in log order."""
    offsets, raw = [], []
    for chunk in log.chunks(from_offset):
        for off, rec in codec.iter_records(chunk.body, chunk.first_offset):
            if chunk.start <= off < chunk.stop and int.from_bytes(rec[4:6], "little") == event_type:
                offsets.append(off)
                raw.append(bytes(rec))
    return np.asarray(offsets, dtype=np.int64), np.frombuffer(b"".join(raw), dtype=layout.RECORD_DTYPES[event_type])


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_bytes(text.encode())
    return str(path)


def ns(text: str) -> int:
    """ns since the epoch of an ISO time with its offset (independent of the importer's parsing)."""
    return pd.Timestamp(text).value


# -- options and columns --------------------------------------------------------------------------


def test_parse_timeframe_units_give_expected_nanoseconds():
    assert files.parse_timeframe("1m") == MIN
    assert files.parse_timeframe("5min") == 5 * MIN
    assert files.parse_timeframe("1h") == 3600 * S
    assert files.parse_timeframe("1d") == 86_400 * S
    assert files.parse_timeframe("30s") == 30 * S
    for bad in ("1M", "0m", "m", "1y", ""):
        with pytest.raises(FileIngestError):
            files.parse_timeframe(bad)


def test_parse_mapping_target_aliases_and_bad_pairs():
    assert files.parse_mapping("timestamp=t, ts_recv = local_timestamp,size=amount") == {
        "ts_event": "t", "ts_recv": "local_timestamp", "size": "amount"}
    with pytest.raises(FileIngestError, match="TARGET=COLUMN"):
        files.parse_mapping("ts_event")
    with pytest.raises(FileIngestError, match="not a target field"):
        files.parse_mapping("bogus=x")


def test_options_bad_values_are_refused_before_reading():
    with pytest.raises(FileIngestError, match="tz"):
        FileIngestOptions(tz="Mars/Olympus")
    with pytest.raises(FileIngestError, match="kind"):
        FileIngestOptions(kind="options")  # type: ignore[arg-type]
    with pytest.raises(FileIngestError, match="names"):
        FileIngestOptions(header=False)


def test_resolve_columns_bom_spaces_and_case_are_ignored(shared_data):
    with open(shared_data / "optopsy__SPX_2018.csv", newline="", encoding="utf-8") as fh:
        raw_header = next(csv.reader(fh))
    assert raw_header[0].startswith("\ufeff") and " exchange" in raw_header  # the quirks under test
    table = files.read_csv(shared_data / "optopsy__SPX_2018.csv", FileIngestOptions())
    resolved = files.resolve_columns(list(table.frame.columns), {"ts_event": "QUOTEDATE"}, None)
    assert resolved["ts_event"] == "quotedate"
    assert files.normalize(table.frame.columns[0]) == "underlying"
    assert files.normalize(" exchange") == "exchange"
    assert resolved["bid"] == "bid" and resolved["ask"] == "ask" and resolved["volume"] == "volume"
    assert files.detect_kind(resolved) == "quotes"


def test_detect_kind_columns_pick_quotes_then_bars_then_trades():
    assert files.detect_kind(files.resolve_columns(["Time", "Bid_Price", "ASK_PRICE"], {}, None)) == "quotes"
    assert files.detect_kind(files.resolve_columns(["date", "Open", "High", "Low", "Close"], {}, None)) == "bars"
    assert files.detect_kind(files.resolve_columns(["timestamp", "price", "qty"], {}, None)) == "trades"
    with pytest.raises(FileIngestError, match="cannot tell"):
        files.detect_kind(files.resolve_columns(["timestamp", "foo"], {}, None))


def test_resolve_columns_trades_volume_is_size_and_aliases_map():
    resolved = files.resolve_columns(["ts", "Price", "Volume", "Id", "Side"], {}, "trades")
    assert resolved == {"ts_event": "ts", "price": "Price", "size": "Volume", "trade_id": "Id", "side": "Side"}


# -- time -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "expected"), [
    ("1582329602", 1582329602 * S),  # seconds
    ("1582329602111", 1582329602111 * 1_000_000),  # milliseconds
    ("1582329602111000", 1582329602111000 * 1_000),  # microseconds
    ("1582329602111000123", 1582329602111000123),  # nanoseconds, no float rounding
    ("1582329602.5", 1582329602 * S + S // 2),  # fractional seconds
])
def test_parse_times_epoch_unit_guessed_from_magnitude(value, expected):
    got, status = files.parse_times(pd.Series([value], dtype="str"), FileIngestOptions())
    assert status.tolist() == [0] and got.tolist() == [expected]


def test_parse_times_explicit_unit_overrides_guess():
    got, _ = files.parse_times(pd.Series(["1000"], dtype="str"), FileIngestOptions(ts_unit="ms"))
    assert got.tolist() == [1000 * 1_000_000]


def test_parse_times_offsets_converted_and_naive_localized():
    series = pd.Series(["2024-01-15 10:00:00+01:00", "2024-07-15 10:00:00+02:00", "2024-01-15T09:00:00Z",
                        "2024-07-15 10:00:00"], dtype="str")
    got, status = files.parse_times(series, FileIngestOptions(tz="America/New_York"))
    assert status.tolist() == [0, 0, 0, 0]
    # 10:00 CET and 10:00 CEST are 09:00 and 08:00 UTC; 10:00 EDT (summer, UTC-4) is 14:00 UTC.
    assert got.tolist() == [ns("2024-01-15T09:00Z"), ns("2024-07-15T08:00Z"), ns("2024-01-15T09:00Z"),
                            ns("2024-07-15T14:00Z")]


def test_parse_times_yyyymmdd_integers_are_dates_not_seconds():
    got, status = files.parse_times(pd.Series(["20240102", "20240103"], dtype="str"), FileIngestOptions())
    assert status.tolist() == [0, 0]
    assert got.tolist() == [ns("2024-01-02T00:00Z"), ns("2024-01-03T00:00Z")]


def test_parse_times_us_dates_and_explicit_day_first_format():
    got, _ = files.parse_times(pd.Series(["01/02/2018", "01/31/2018"], dtype="str"), FileIngestOptions())
    assert got.tolist() == [ns("2018-01-02T00:00Z"), ns("2018-01-31T00:00Z")]
    got, _ = files.parse_times(pd.Series(["01/02/2018"], dtype="str"), FileIngestOptions(ts_format="%d/%m/%Y"))
    assert got.tolist() == [ns("2018-02-01T00:00Z")]


def test_ingest_csv_dst_gap_and_fold_in_local_zone_are_bad_rows(tmp_path, log):
    path = write(tmp_path, "dst.csv", "date,time,price,size\n"
                 "2006-03-26,01:59:00,10,1\n"
                 "2006-03-26,02:30:00,10,1\n"  # clocks jump 02:00 -> 03:00 CET->CEST: does not exist
                 "2006-10-29,02:30:00,10,1\n"  # 03:00 CEST -> 02:00 CET: happens twice
                 "2006-10-29,03:30:00,10,1\n")
    with pytest.raises(BadRowsError) as err:
        ingest_csv(log, path, FileIngestOptions(symbol="X", tz="Europe/Berlin"))
    assert err.value.count == 2
    assert err.value.rows == [
        (f"{path}:3", "date+time = '2006-03-26 02:30:00' does not exist in Europe/Berlin (DST change)"),
        (f"{path}:4", "date+time = '2006-10-29 02:30:00' is ambiguous in Europe/Berlin (DST change)"),
    ]
    summary = ingest_csv(log, path, FileIngestOptions(symbol="X", tz="Europe/Berlin", skip_bad=True))
    _, recs = records(log, EventType.TRADE)
    assert summary.bad_rows_skipped == 2
    # 01:59 CET = 00:59 UTC; 03:30 CET (after the fold) = 02:30 UTC.
    assert recs["ts_event"].tolist() == [ns("2006-03-26T00:59Z"), ns("2006-10-29T02:30Z")]


def test_ingest_csv_no_receive_column_sets_ts_recv_to_ts_event(tmp_path, log):
    path = write(tmp_path, "t.csv", "timestamp,price,size\n2024-01-02T10:00:00Z,5,1\n2024-01-02T10:00:01Z,6,2\n")
    ingest_csv(log, path, FileIngestOptions(symbol="X"))
    _, recs = records(log, EventType.TRADE)
    assert recs["ts_event"].tolist() == [ns("2024-01-02T10:00:00Z"), ns("2024-01-02T10:00:01Z")]
    assert np.array_equal(recs["ts_recv"], recs["ts_event"])


# -- bars -----------------------------------------------------------------------------------------


def test_ingest_csv_bar_time_start_and_end_place_bar_end(tmp_path, log):
    path = write(tmp_path, "b.csv", "time,open,high,low,close,volume\n2024-01-02 10:00:00,1,2,0.5,1.5,7\n")
    ingest_csv(log, path, FileIngestOptions(symbol="S", timeframe="5m"))
    ingest_csv(log, path, FileIngestOptions(symbol="E", timeframe="5m", bar_time="end"))
    _, recs = records(log, EventType.BAR)
    start = ns("2024-01-02T10:00Z")
    assert recs["ts_event"].tolist() == [start + 5 * MIN, start]
    assert recs["ts_recv"].tolist() == [start + 5 * MIN, start]  # never seen before the bar closed
    assert recs["interval_ns"].tolist() == [5 * MIN, 5 * MIN]
    assert recs[0]["open"] == 1 and recs[0]["high"] == 2 and recs[0]["low"] == 0.5 and recs[0]["close"] == 1.5
    assert recs[0]["volume"] == 7


def test_ingest_csv_bars_without_timeframe_are_refused(tmp_path, log):
    path = write(tmp_path, "b.csv", "time,open,high,low,close\n2024-01-02 10:00:00,1,2,0.5,1.5\n")
    with pytest.raises(FileIngestError, match="timeframe"):
        ingest_csv(log, path, FileIngestOptions(symbol="S"))
    assert log.head() == 0


def test_ingest_csv_backtrader_minutes_names_and_berlin_tz_give_cet_bars(shared_data, log):
    path = shared_data / "backtrader__2006-01-02-volume-min-001.txt"
    with pytest.raises(FileIngestError, match=r":2: the row has 8 fields but the header gives 7"):
        ingest_csv(log, path, FileIngestOptions(symbol="FDAX", timeframe="1m"))
    names = ["date", "time", "open", "high", "low", "close", "volume", "openinterest"]
    summary = ingest_csv(log, path, FileIngestOptions(names=names, symbol="FDAX", timeframe="1m",
                                                      tz="Europe/Berlin", instrument_kind="future"))
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))[1:]
    offsets, recs = records(log, EventType.BAR)
    assert summary.rows == len(rows) == len(recs) == 30889
    assert summary.events == len(rows) + 1 and offsets.tolist() == list(range(1, len(rows) + 1))
    # Line 2: 2006-01-02 09:01:00 in Berlin is CET (UTC+1): the bar opens 08:01 UTC and ends 08:02 UTC.
    assert rows[0][:2] == ["2006-01-02", "09:01:00"]
    assert recs[0]["ts_event"] == ns("2006-01-02T08:02:00Z")
    assert [recs[0][f] for f in ("open", "high", "low", "close", "volume")] == [3602.0, 3603.0, 3597.0, 3599.0, 5699.0]
    # The last line, 2006-02-27 22:00 CET, ends at 21:01 UTC; every bar is open + 1h - 1h + 1m apart.
    assert rows[-1][:2] == ["2006-02-27", "22:00:00"]
    assert recs[-1]["ts_event"] == ns("2006-02-27T21:01:00Z")
    local = pd.to_datetime([f"{d} {t}" for d, t, *_ in rows]).tz_localize("Europe/Berlin").tz_convert("UTC")
    assert np.array_equal(recs["ts_event"], local.as_unit("ns").asi8 + MIN)
    assert recs["close"].tolist() == [float(r[5]) for r in rows]


# -- bad rows and line numbers --------------------------------------------------------------------

QUOTES = (
    "timestamp,bid,ask,bid_size,ask_size\r\n"  # line 1
    "2024-01-02T10:00:00Z,100.0,100.5,1,2\r\n"  # 2
    "\r\n"  # 3: blank
    "2024-01-02T10:00:01Z,100.0,99.5,1,2\r\n"  # 4: crossed
    "   \r\n"  # 5: blank
    "2024-01-02T10:00:02Z,,100.5,1,2\r\n"  # 6: bid missing
    "2024-01-02T10:00:03Z,0,100.5,1,2\r\n"  # 7: zero bid
    "2024-01-02T10:00:04Z,100.0,-1,1,2\r\n"  # 8: negative ask
    "not-a-time,100.0,100.5,1,2\r\n"  # 9: bad timestamp
    "2024-01-02T10:00:05Z,100.0,100.5,nan,2\r\n"  # 10: bid_size NaN
    "2024-01-02T10:00:06Z,abc,100.5,1,2\r\n"  # 11: not a number
    "2024-01-02T10:00:07Z,100.25,100.75,3,4\r\n"  # 12
)


def test_ingest_csv_bad_rows_named_with_file_line_and_reason_nothing_written(tmp_path, log):
    log.define_instrument("OTHER")
    head, chain = log.head(), log.chain_head()
    path = write(tmp_path, "data.csv", QUOTES)
    with pytest.raises(BadRowsError) as err:
        ingest_csv(log, path, FileIngestOptions(symbol="Q"))
    assert isinstance(err.value, ValueError) and err.value.count == 7  # lines 4, 6, 7, 8, 9, 10, 11
    message = str(err.value)
    assert message.splitlines()[0] == f"{path}:4: ask = 99.5 < bid = 100.0"
    assert f"{path}:6: bid is missing" in message
    assert f"{path}:7: bid = 0.0 must be > 0" in message
    assert f"{path}:8: ask = -1.0 must be > 0" in message
    assert f"{path}:9: timestamp = 'not-a-time' is not a timestamp" in message
    assert "2 more not shown" in message and "nothing was written" in message
    assert log.head() == head and log.chain_head() == chain and log.instrument_id("Q") is None


def test_ingest_csv_skip_bad_writes_good_rows_and_counts_bad(tmp_path, log):
    path = write(tmp_path, "data.csv", QUOTES)
    summary = ingest_csv(log, path, FileIngestOptions(symbol="Q", skip_bad=True))
    assert (summary.rows, summary.bad_rows_skipped, summary.events) == (9, 7, 3)  # 1 definition + 2 quotes
    assert len(summary.bad_rows_shown) == 5  # the first five, in file order
    assert summary.bad_rows_shown[-1] == f"{path}:9: timestamp = 'not-a-time' is not a timestamp"
    _, recs = records(log, EventType.QUOTE)
    assert recs["bid"].tolist() == [100.0, 100.25] and recs["ask_size"].tolist() == [2.0, 4.0]
    assert log.verify().ok


def test_ingest_csv_nan_and_text_values_are_bad_rows(tmp_path, log):
    lines = QUOTES.splitlines(keepends=True)
    path = write(tmp_path, "tail.csv", lines[0] + lines[9] + lines[10])  # lines 10 and 11 of QUOTES
    with pytest.raises(BadRowsError) as err:
        ingest_csv(log, path, FileIngestOptions(symbol="Q"))
    assert err.value.rows == [(f"{path}:2", "bid_size is missing"), (f"{path}:3", "bid = 'abc' is not a number")]


def test_ingest_csv_bar_inconsistencies_and_zero_trade_size_are_bad_rows(tmp_path, log):
    bars = write(tmp_path, "bars.csv", "date,open,high,low,close\n"
                 "2024-01-02,10,11,9,10.5\n"
                 "2024-01-03,10,9.5,9,9.2\n"  # high < open
                 "2024-01-04,10,11,10.2,10.5\n"  # low > open
                 "2024-01-05,10,11,12,10.5\n")  # high < low
    with pytest.raises(BadRowsError) as err:
        ingest_csv(log, bars, FileIngestOptions(symbol="B", timeframe="1d"))
    assert [r for _, r in err.value.rows] == ["high = 9.5 < open = 10.0", "low = 10.2 > open = 10.0",
                                             "high = 11.0 < low = 12.0"]
    trades = write(tmp_path, "trades.csv", "timestamp,price,size\n1700000000,10,0\n1700000001,10,1\n")
    with pytest.raises(BadRowsError, match=r"trades.csv:2: size = 0.0 must be > 0"):
        ingest_csv(log, trades, FileIngestOptions(symbol="T"))
    assert log.head() == 0


def test_read_csv_quoted_newline_keeps_physical_line_numbers(tmp_path, log):
    path = write(tmp_path, "q.csv", 'timestamp,price,size,note\n1700000000,10,1,"two\nlines"\n\n1700000001,-1,1,x\n')
    with pytest.raises(BadRowsError) as err:
        ingest_csv(log, path, FileIngestOptions(symbol="T"))
    assert err.value.rows == [(f"{path}:5", "price = -1.0 must be > 0")]


def test_ingest_csv_names_replace_header_line_numbers_unchanged(tmp_path, log):
    path = write(tmp_path, "n.csv", "junk header\n1700000000,10,1\n1700000001,0,1\n")
    with pytest.raises(BadRowsError) as err:
        ingest_csv(log, path, FileIngestOptions(symbol="T", names=["ts", "price", "qty"]))
    assert err.value.rows == [(f"{path}:3", "price = 0.0 must be > 0")]
    headless = write(tmp_path, "h.csv", "1700000000,10,1\n1700000001,0,1\n")
    with pytest.raises(BadRowsError) as err:
        ingest_csv(log, headless, FileIngestOptions(symbol="T", names=["ts", "price", "qty"], header=False))
    assert err.value.rows == [(f"{headless}:2", "price = 0.0 must be > 0")]


# -- instruments, order and atomicity -------------------------------------------------------------


def test_ingest_csv_symbol_column_defines_instruments_in_first_appearance_order(tmp_path, log):
    existing = log.define_instrument("AAA")
    path = write(tmp_path, "s.csv", "symbol,timestamp,price,size,id,side\n"
                 "ZZZ,1700000000000,10,1,7,buy\n"
                 "AAA,1700000000001,11,2,x-9,SELL\n"
                 "MMM,1700000000002,12,3,8,unknown\n"
                 "ZZZ,1700000000003,13,4,,sell\n")
    summary = ingest_csv(log, path, FileIngestOptions(instrument_kind="crypto", venue="TEST"))
    assert summary.symbols == ["ZZZ", "AAA", "MMM"] and summary.instruments_defined == 2
    assert log.symbols() == {existing: "AAA", 1: "ZZZ", 2: "MMM"}
    defined = [e for _, e in log.events(1, 2)]
    assert [e.type for e in defined] == [EventType.INSTRUMENT_DEFINED] * 2
    assert defined[0].data["kind"] == InstrumentKind.CRYPTO and defined[0].data["venue"] == "TEST"
    offsets, recs = records(log, EventType.TRADE)
    assert offsets.tolist() == [3, 4, 5, 6]  # after the two definitions, in file order
    assert recs["instrument_id"].tolist() == [1, existing, 2, 1]
    assert recs["price"].tolist() == [10, 11, 12, 13]
    assert recs["trade_id"].tolist() == [7, 0, 8, 0]  # ids that are not integers become 0
    assert recs["aggressor"].tolist() == [AggressorSide.BUYER, AggressorSide.SELLER, AggressorSide.UNSPECIFIED,
                                          AggressorSide.SELLER]
    assert recs["ts_event"].tolist() == [(1700000000000 + k) * 1_000_000 for k in range(4)]


def test_ingest_csv_whole_file_is_one_append(tmp_path, log, monkeypatch):
    path = write(tmp_path, "s.csv", "symbol,timestamp,price,size\nA,1700000000,1,1\nB,1700000001,2,1\n")
    calls = []
    real = log.append
    monkeypatch.setattr(log, "append", lambda batch, **kw: calls.append(kw) or real(batch, **kw))
    summary = ingest_csv(log, path)
    assert len(calls) == 1 and calls[0]["expected_head"] == 0
    assert (summary.first_offset, summary.last_offset, summary.events) == (0, 3, 4)


def test_ingest_csv_symbol_option_with_many_file_symbols_is_refused(tmp_path, log):
    path = write(tmp_path, "s.csv", "symbol,timestamp,price,size\nA,1700000000,1,1\nB,1700000001,2,1\n")
    with pytest.raises(FileIngestError, match="2 symbols"):
        ingest_csv(log, path, FileIngestOptions(symbol="X"))
    nosym = write(tmp_path, "n.csv", "timestamp,price,size\n1700000000,1,1\n")
    with pytest.raises(FileIngestError, match="symbol"):
        ingest_csv(log, nosym)
    assert log.head() == 0


def test_ingest_csv_empty_body_writes_nothing(tmp_path, log):
    path = write(tmp_path, "e.csv", "timestamp,price,size\n")
    summary = ingest_csv(log, path, FileIngestOptions(symbol="X"))
    assert (summary.events, summary.first_offset, summary.last_offset) == (0, None, None)
    assert log.head() == 0 and log.instrument_id("X") is None


def test_ingest_csv_progress_hidden_when_stderr_not_a_terminal(tmp_path, log, capsys):
    path = write(tmp_path, "t.csv", "timestamp,price,size\n1700000000,1,1\n")
    ingest_csv(log, path, FileIngestOptions(symbol="X"))
    assert capsys.readouterr().err == ""


def test_bad_rows_error_is_an_argus_value_error():
    err = BadRowsError("f.csv", 1, [("f.csv:2", "price is missing")])
    assert isinstance(err, ValueError) and not isinstance(err, EventValidationError)
    assert str(err).startswith("f.csv:2: price is missing\n")


# -- real files -----------------------------------------------------------------------------------


def test_ingest_parquet_binance_trades_buyer_maker_gives_aggressor(shared_data, log):
    path = shared_data / "nautilus_trader__binance-btcusdt-trades.parquet"
    source = pd.read_parquet(path)
    summary = ingest_parquet(log, path, FileIngestOptions(symbol="BTCUSDT", instrument_kind="crypto"))
    _, recs = records(log, EventType.TRADE)
    assert summary.events == len(source) + 1 == 2002
    assert set(source["buyer_maker"].unique()) == {"True", "False"}
    expected = np.where(source["buyer_maker"] == "True", AggressorSide.SELLER, AggressorSide.BUYER)
    assert np.array_equal(recs["aggressor"], expected)
    assert np.array_equal(recs["trade_id"], source["trade_id"].to_numpy().astype(np.uint64))
    assert np.array_equal(recs["price"], source["price"]) and np.array_equal(recs["size"], source["quantity"])
    assert recs["ts_event"][0] == ns("2021-01-08T00:00:00.278Z")


def test_ingest_csv_6eh4_bars_naive_utc_end_is_start_plus_minute(shared_data, log):
    path = shared_data / "nautilus_trader__6EH4.XCME_1min_bars_20240101_20240131.csv"
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    ingest_csv(log, path, FileIngestOptions(symbol="6EH4", timeframe="1m", instrument_kind="future"))
    _, recs = records(log, EventType.BAR)
    assert len(recs) == len(rows) == 29996
    assert rows[0]["timestamp_utc"] == "2024-01-01 23:01:00"
    assert recs[0]["ts_event"] == ns("2024-01-01T23:02:00Z")
    starts = pd.to_datetime([r["timestamp_utc"] for r in rows]).as_unit("ns").asi8
    assert np.array_equal(recs["ts_event"], starts + MIN)
    for field in ("open", "high", "low", "close", "volume"):
        assert recs[field].tolist() == [float(r[field]) for r in rows]
