"""`argusctl ingest options-csv` and argus.connectors.option_chains on the real optopsy SPX file."""

from __future__ import annotations

import csv
import datetime as dt
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from argus.cli.main import cli
from argus.connectors.option_chains import osi_symbol
from argus.events.layout import NO_INSTRUMENT
from argus.events.types import EventType, InstrumentKind, OptionRight, OptionSource
from argus.log import EventLog

SPX = "optopsy__SPX_2018.csv"


def ingest(tmp_path: Path, path: Path, *args: str):
    return CliRunner().invoke(cli, ["--data", str(tmp_path / "data"), "ingest", "options-csv", str(path), *args])


def events(tmp_path: Path):
    with EventLog.open(tmp_path / "data" / "log", readonly=True) as log:
        return [e for _, e in log.events()]


def ny_ns(day: str, hhmm: str = "16:00") -> int:
    """ns UTC of a MM/DD/YYYY date at a New York time (independent of the importer's parsing)."""
    return pd.Timestamp(dt.datetime.strptime(f"{day} {hhmm}", "%m/%d/%Y %H:%M"), tz="America/New_York").value


def test_ingest_real_spx_chains_through_cli(tmp_path, shared_data):
    path = shared_data / SPX
    with open(path, newline="", encoding="utf-8-sig") as f:
        file_rows = list(csv.DictReader(f))
    res = ingest(tmp_path, path, "--symbol", "SPX", "--json")
    assert res.exit_code == 0, res.output
    summary = json.loads(res.output)
    assert summary["rows"] == len(file_rows) == 14438 and summary["bad_rows_skipped"] == 0
    assert summary["snapshots"] == 40 and summary["contracts"] == 14438

    evs = events(tmp_path)
    assert evs[0].type == EventType.INSTRUMENT_DEFINED and evs[0].data["kind"] == InstrumentKind.INDEX
    snaps = evs[1:]
    assert len(snaps) == 40 and all(e.type == EventType.OPTION_CHAIN_SNAPSHOT for e in snaps)
    dates = sorted({r["quotedate"] for r in file_rows}, key=lambda d: dt.datetime.strptime(d, "%m/%d/%Y"))
    assert [e.ts_event for e in snaps] == [ny_ns(d) for d in dates]
    assert all(e.ts_recv == e.ts_event for e in snaps)
    assert sum(len(e.data["rows"]) for e in snaps) == len(file_rows)

    # spot check: a put on 2018-02-05 (the volatility spike), against the file read with csv
    day = "02/05/2018"
    todays = [r for r in file_rows if r["quotedate"] == day]
    want = next(r for r in todays if r["type"] == "put" and float(r["bid"]) > 0)
    snap = snaps[dates.index(day)]
    assert len(snap.data["rows"]) == len(todays)
    assert snap.data["underlying_price"] == float(want["underlying_last"])
    assert snap.data["source"] == OptionSource.VENDOR_FILE
    rows = snap.data["rows"]
    row = rows[(rows["strike"] == float(want["strike"])) & (rows["right"] == OptionRight.PUT)][0]
    assert row["bid"] == float(want["bid"]) and row["ask"] == float(want["ask"])
    assert row["iv"] == float(want["impliedvol"]) and row["delta"] == float(want["delta"])
    assert row["vega"] == float(want["vega"]) and row["theta"] == float(want["theta"])
    assert row["open_interest"] == float(want["openinterest"])
    assert row["expiry_ns"] == ny_ns(want["expiration"])
    assert row["bid_size"] == 0 and row["ask_size"] == 0
    assert row["source"] == OptionSource.VENDOR_FILE and row["contract_id"] == NO_INSTRUMENT

    # vendor values kept as given: zero bids and same-day placeholder IVs
    all_rows = np.concatenate([e.data["rows"] for e in snaps])
    assert int((all_rows["bid"] == 0).sum()) == sum(float(r["bid"]) == 0 for r in file_rows) == 1902
    last = snaps[-1].data["rows"]
    assert np.all(last["iv"] == 0.30) and np.all(last["expiry_ns"] == ny_ns("02/28/2018"))

    res = CliRunner().invoke(cli, ["--data", str(tmp_path / "data"), "log", "verify", "--json"])
    assert res.exit_code == 0 and json.loads(res.output)["ok"] is True


BAD = (
    "Underlying,Underlying_Last,OptionRoot,Type,Expiration,QuoteDate,Strike,Bid,Ask,IV\n"
    "XYZ,100,XYZ,call,01/19/2018,01/02/2018,100,1.0,1.2,0.2\n"   # 2: good
    "XYZ,100,XYZ,P,01/19/2018,13/45/2018,100,1.0,1.2,0.2\n"      # 3: bad date
    "XYZ,100,XYZ,put,01/19/2018,01/02/2018,0,1.0,1.2,0.2\n"      # 4: strike 0
    "XYZ,100,XYZ,put,01/19/2018,01/02/2018,90,1.3,1.2,0.2\n"     # 5: ask < bid
    "XYZ,100,XYZ,put,01/19/2018,01/02/2018,95,-0.1,1.2,0.2\n"    # 6: negative bid
    "XYZ,100,XYZ,put,01/01/2018,01/02/2018,95,0,1.2,\n"          # 7: expiry before quote date
    "XYZ,100,XYZ,C,01/19/2018,01/03/2018,105,0,0.5,\n"           # 8: good (zero bid, no iv)
)


def test_bad_rows_refused_with_file_line_reason_and_nothing_written(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text(BAD)
    res = ingest(tmp_path, path, "--columns", "impliedvol=IV")
    assert res.exit_code == 3
    for line, reason in [(3, "QuoteDate = '13/45/2018' is not a date"), (4, "Strike = 0.0 must be > 0"),
                         (5, "Ask = 1.2 < Bid = 1.3"), (6, "Bid = -0.1 must be >= 0"),
                         (7, "Expiration = '01/01/2018' is before QuoteDate = '01/02/2018'")]:
        assert f"{path}:{line}: {reason}" in res.output
    assert "5 bad rows" in res.output
    assert not (tmp_path / "data" / "log").exists() or events(tmp_path) == []


def test_skip_bad_counts_and_keeps_good_rows(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text(BAD)
    res = ingest(tmp_path, path, "--columns", "impliedvol=IV", "--skip-bad", "--json")
    assert res.exit_code == 0, res.output
    summary = json.loads(res.output)
    assert summary["bad_rows_skipped"] == 5 and summary["contracts"] == 2 and summary["snapshots"] == 2
    evs = events(tmp_path)
    assert evs[0].data["symbol"] == "XYZ" and evs[0].data["kind"] == InstrumentKind.EQUITY
    first, second = evs[1].data["rows"], evs[2].data["rows"]
    assert first["iv"][0] == 0.2 and first["right"][0] == OptionRight.CALL
    assert second["bid"][0] == 0 and math.isnan(second["iv"][0]) and second["right"][0] == OptionRight.CALL
    assert math.isnan(second["open_interest"][0])
    assert evs[2].ts_event == ny_ns("01/03/2018")


def test_osi_symbol():
    assert osi_symbol("SPXW", dt.date(2018, 1, 19), "P", 2700) == "SPXW  180119P02700000"
    assert osi_symbol("spx", "2018-02-16", OptionRight.CALL, 2712.5) == "SPX   180216C02712500"
    with pytest.raises(ValueError):
        osi_symbol("SPXW", dt.date(2018, 1, 19), "x", 2700)
