"""`argusctl log info|verify|cat|tail` against a real log."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from click.testing import CliRunner

from argus.cli.main import cli
from argus.events.codec import Event
from argus.events.types import EventType
from argus.log import EventLog
from tests.log.helpers import TS, trades


def run(data: Path, *args: str):
    return CliRunner().invoke(cli, ["--data", str(data), *args])


def make_log(data: Path, n: int = 20) -> None:
    with EventLog.open(data / "log") as lg:
        lg.define_instrument("SPY", ts=TS)
        lg.append(trades(n, 1))
        lg.append([Event(EventType.QUOTE, TS + 99, TS + 100, 0, {"bid": 1.0, "ask": 1.5, "bid_size": 2, "ask_size": 3})])


def test_log_info_json_reports_the_documented_keys(tmp_path: Path) -> None:
    make_log(tmp_path)
    res = run(tmp_path, "log", "info", "--json")
    assert res.exit_code == 0, res.output
    info = json.loads(res.output)
    assert list(info) == ["head", "events", "chunks", "bytes", "first_ts_recv", "last_ts_recv", "instruments"]
    assert (info["head"], info["events"], info["chunks"], info["instruments"]) == (22, 22, 3, 1)
    assert info["first_ts_recv"] == TS and info["last_ts_recv"] == TS + 100


def test_log_info_on_a_missing_log_is_one_clear_line_with_exit_4(tmp_path: Path) -> None:
    res = run(tmp_path, "log", "info")
    assert res.exit_code == 4
    assert res.output.strip().startswith("argusctl: error: no event log at")
    assert "Traceback" not in res.output


def test_log_verify_json_is_ok_then_reports_corruption_with_exit_1(tmp_path: Path) -> None:
    make_log(tmp_path, 2000)
    res = run(tmp_path, "log", "verify", "--json")
    assert res.exit_code == 0
    report = json.loads(res.output)
    assert report["ok"] is True and report["events"] == 2002 and report["errors"] == []
    assert len(report["chain_head"]) == 64
    mdb = tmp_path / "log" / "data.mdb"
    raw = bytearray(mdb.read_bytes())
    at = raw.find((1500).to_bytes(8, "little"))  # trade_id 1500 inside the first chunk body
    raw[at] ^= 0xFF
    mdb.write_bytes(bytes(raw))
    res = run(tmp_path, "log", "verify", "--json")
    assert res.exit_code == 1
    report = json.loads(res.output)
    assert report["ok"] is False and any("checksum" in e for e in report["errors"])


def test_log_cat_json_prints_one_object_per_event_with_payload_fields(tmp_path: Path) -> None:
    make_log(tmp_path)
    res = run(tmp_path, "log", "cat", "--from-offset", "19", "--limit", "5", "--json")
    assert res.exit_code == 0, res.output
    rows = [json.loads(line) for line in res.output.splitlines()]
    assert [r["offset"] for r in rows] == [19, 20, 21]
    assert rows[0]["type"] == "TRADE" and rows[0]["symbol"] == "SPY"
    assert rows[0]["trade_id"] == 19 and rows[0]["price"] == 100.0 + 19 % 7 and rows[0]["ts_recv"] == TS + 19
    assert rows[2] == {"offset": 21, "type": "QUOTE", "ts_event": TS + 99, "ts_recv": TS + 100, "symbol": "SPY",
                       "bid": 1.0, "ask": 1.5, "bid_size": 2.0, "ask_size": 3.0}
    first = json.loads(run(tmp_path, "log", "cat", "--limit", "1", "--json").output)
    assert first["type"] == "INSTRUMENT_DEFINED" and first["symbol"] == "SPY"


def test_log_tail_follows_events_appended_by_another_process(tmp_path: Path) -> None:
    make_log(tmp_path, 3)
    proc = subprocess.Popen([sys.executable, "-m", "argus.cli.main", "--data", str(tmp_path), "log", "tail",
                             "--from-offset", "2", "--json", "--poll", "0.02"], stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(0.5)
        with EventLog.open(tmp_path / "log") as lg:
            lg.append(trades(3, 5))
        offsets = [json.loads(proc.stdout.readline())["offset"] for _ in range(6)]
        assert offsets == [2, 3, 4, 5, 6, 7]  # catch-up, then the live tail, no gap and no duplicate
    finally:
        proc.kill()
        proc.wait()


def test_help_loads_neither_pandas_nor_grpc() -> None:
    code = ("import sys\nfrom argus.cli.main import cli\ntry:\n    cli(['--help'])\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in ('pandas', 'grpc', 'cupy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"
