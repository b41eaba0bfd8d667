"""`argusctl options surface` (argus.options.surface over the latest chain of the log)."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pytest
from click.testing import CliRunner

from argus.cli.main import cli
from argus.connectors.synthetic import SyntheticConfig, write_synthetic_market
from argus.log import EventLog
from argus.options.pop import _ny_date, latest_chain
from argus.options.surface import surface_from_chain

TOP_KEYS = ["symbol", "snapshot_offset", "ts", "spot", "rate", "z", "expiries"]
EXPIRY_KEYS = {"expiry", "years", "forward", "forward_from_parity", "svi", "rmse", "success", "atm_iv", "quotes",
               "anomalies"}
ANOMALY_KEYS = {"strike", "right", "iv_mid", "iv_fit", "robust_z", "flags", "flag_names"}


def run(args, data):
    return CliRunner().invoke(cli, ["--data", str(data), "options", "surface", *args])


@pytest.fixture(scope="module")
def market(tmp_path_factory):
    data = tmp_path_factory.mktemp("surf")
    with EventLog.open(data / "log") as lg:
        write_synthetic_market(lg, SyntheticConfig(seed=5, symbols=("SPY",), start=dt.date(2024, 3, 4), days=1,
                                                   options=True, events_per_day=1000))
        chain = latest_chain(lg, "SPY")
    return data, chain


def test_surface_json_keys_and_one_fit_per_expiry(market):
    data, chain = market
    res = run(["--symbol", "SPY", "--json"], data)
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert list(out) == TOP_KEYS
    assert out["symbol"] == "SPY" and out["snapshot_offset"] == chain.offset and out["z"] == 4.0
    live = [_ny_date(int(e)) for e in np.unique(chain.rows["expiry_ns"]) if int(e) > chain.ts_event]
    assert [e["expiry"] for e in out["expiries"]] == live
    assert len(out["expiries"]) >= 2
    for e in out["expiries"]:
        assert set(e) == EXPIRY_KEYS
        assert set(e["svi"]) == {"a", "b", "rho", "m", "sigma"}
        assert e["success"] and e["rmse"] >= 0 and 0.01 < e["atm_iv"] < 2 and e["forward"] > 0
        for a in e["anomalies"]:
            assert set(a) == ANOMALY_KEYS and a["right"] in ("put", "call") and a["flags"] & 7
    # The anomalies are exactly the flagged records of surface_from_chain.
    res_direct = surface_from_chain(chain.rows, chain.spot, chain.ts_event, r=0.05, z_threshold=4.0)
    assert sum(len(e["anomalies"]) for e in out["expiries"]) == len(res_direct.flagged())


def test_surface_deterministic_and_text(market):
    data, _ = market
    a = run(["--symbol", "SPY", "--json", "--z", "3"], data)
    b = run(["--symbol", "SPY", "--json", "--z", "3"], data)
    assert a.exit_code == 0 and a.output == b.output
    text = run(["--symbol", "SPY"], data)
    assert text.exit_code == 0 and "SPY chain at offset" in text.output and "atm_iv=" in text.output


def test_surface_errors(market):
    data, _ = market
    res = run(["--symbol", "NOPE"], data)
    assert res.exit_code == 3 and "'NOPE' is not in the log" in res.output
    res = run(["--symbol", "SPY", "--at-offset", "0"], data)  # before the first chain
    assert res.exit_code == 3 and "no option chain of 'SPY'" in res.output
