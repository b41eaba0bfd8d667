"""`argusctl demo`: one small run, checked against `log info`, `log verify` and `replay` on the same data."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from argus.cli.main import cli

SMALL = ["--days", "1", "--symbols", "SPY", "--paths", "20000", "--top", "3", "--events-per-day", "5000"]


def _run(data, *args):
    return CliRunner().invoke(cli, ["--data", str(data), *args], catch_exceptions=False)


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    data = tmp_path_factory.mktemp("demo")
    res = _run(data, "demo", *SMALL, "--json")
    assert res.exit_code == 0, res.output
    return data, json.loads(res.output)


def test_json_keys_and_counts_match_the_log(demo_run):
    data, out = demo_run
    for key in ("data", "device", "market", "log", "outputs", "digests", "regimes_now", "market_regime", "spreads",
                "anomalies", "seconds"):
        assert key in out
    assert out["device"] == "cpu"
    info = json.loads(_run(data, "log", "info", "--json").output)
    assert out["log"]["events"] == info["events"] > 0
    assert out["log"]["chunks"] == info["chunks"]
    assert out["log"]["head"] == info["head"]
    verify = json.loads(_run(data, "log", "verify", "--json").output)
    assert verify["ok"] and out["digests"]["chain_head"] == verify["chain_head"]
    assert out["market"]["option_snapshots"] > 0


def test_digests_match_an_independent_replay(demo_run):
    data, out = demo_run
    res = _run(data, "replay", "--no-store", "--json")
    assert res.exit_code == 0, res.output
    rep = json.loads(res.output)
    assert out["digests"]["state"] == rep["state_digest"]
    assert out["digests"]["outputs"] == rep["outputs_digest"]
    assert out["digests"]["config_hash"] == rep["config_hash"]
    assert out["outputs"] == {k: v["outputs"] for k, v in rep["projections"].items()}
    assert out["outputs"]["bars"] > 0
    # The options projection (PoP and IV-anomaly records of SPY's 10:00 and 15:30 chains) is part of it.
    assert out["outputs"]["option_pop"] > 0 and "option_anomalies" in out["outputs"]
    assert out["config"].endswith("projections.yaml")


def test_regimes_now(demo_run):
    _, out = demo_run
    spy = out["regimes_now"]["SPY"]
    assert spy["timeframe"] == "5m"
    assert spy["vol_regime"] in ("unknown", "low", "normal", "high", "extreme")
    assert spy["trend_regime"] in ("unknown", "up", "down", "range")
    assert spy["p_change"] is None or 0.0 <= spy["p_change"] <= 1.0
    if out["market_regime"] is not None:
        assert out["market_regime"]["regime"] in ("unknown", "risk-on", "neutral", "risk-off")


def test_spreads_sorted_with_pops_in_unit_interval(demo_run):
    _, out = demo_run
    sp = out["spreads"]
    assert sp["symbol"] == "SPY"
    cands = sp["candidates"]
    assert 0 < len(cands) <= 3
    ctw = [c["credit_to_width"] for c in cands]
    assert ctw == sorted(ctw, reverse=True)
    for c in cands:
        assert 0.0 <= c["pop_heston"] <= 1.0 and 0.0 <= c["pop_lognormal"] <= 1.0
        assert c["short"] > c["long"] and c["credit"] > 0
        assert c["max_loss"] == pytest.approx(c["width"] - c["credit"])
    assert sp["paths"] == 20000 and "heston" in sp
    an = out["anomalies"]
    assert an["flagged"] >= len(an["top"]) and len(an["top"]) <= 3
    zs = [abs(a["robust_z"]) for a in an["top"] if a["robust_z"] is not None]
    assert zs == sorted(zs, reverse=True)


def test_backtest_summary_is_a_verifiable_run(demo_run):
    data, out = demo_run
    bt = out["backtest"]
    assert bt["fills"] == 2 * bt["trades"] or bt["fills"] == 2 * bt["trades"] - 1  # a last trip may be open
    shown = json.loads(_run(data, "backtest", "show", bt["run_id"], "--json").output)
    assert shown["digest"] == bt["digest"] and shown["final_equity"] == bt["final_equity"]
    verified = json.loads(_run(data, "backtest", "verify", bt["run_id"], "--json").output)
    assert verified["ok"]


def test_second_run_in_the_same_dir_is_refused(demo_run):
    data, _ = demo_run
    res = CliRunner().invoke(cli, ["--data", str(data), "demo", *SMALL])
    assert res.exit_code == 4
    assert "fresh data directory" in res.output and str(data / "log") in res.output


def test_gpu_is_refused_before_writing(tmp_path):
    from argus.options import gpu

    if gpu.available():
        pytest.skip("a CUDA device is present: --device gpu is not refused")
    res = CliRunner().invoke(cli, ["--data", str(tmp_path), "demo", *SMALL, "--device", "gpu"])
    assert res.exit_code != 0 and "device gpu: unavailable" in res.output
    assert not (tmp_path / "log").exists()


def test_text_mode_prints_the_sections(tmp_path):
    res = _run(tmp_path, "demo", *SMALL)
    assert res.exit_code == 0, res.output
    for section in ("== market", "== log", "== replay", "== digests", "== regimes now",
                    "== top put credit spreads", "== IV anomalies", "== backtest"):
        assert section in res.output
    assert "PoP heston" in res.output and "PoP lognorm" in res.output
