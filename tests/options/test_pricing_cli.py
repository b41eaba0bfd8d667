"""`argusctl options price` and `argusctl options pop` (argus.options.pricing / argus.options.pop)."""

from __future__ import annotations

import datetime as dt
import json
import time

import numpy as np
import pytest
from click.testing import CliRunner

from argus.cli.main import cli
from argus.connectors.synthetic import SyntheticConfig, write_synthetic_market
from argus.events.types import OptionRight
from argus.log import EventLog
from argus.options import gpu

LEWIS = ["--spot", "100", "--strike", "100", "--years", "1", "--rate", "0.01", "--div", "0.02", "--v0", "0.04",
         "--kappa", "4", "--theta", "0.25", "--sigma", "1", "--rho", "-0.5", "--right", "call"]
LEWIS_CALL = 16.070154917028834
PRICE_KEYS = ["price", "stderr", "method", "device"]
POP_KEYS = {"symbol", "snapshot_offset", "ts", "spot", "expiry", "right", "short", "long", "credit", "width",
            "max_loss", "heston", "fit_rmse", "feller", "pop", "pop_se", "expected_pnl", "expected_pnl_se",
            "p_touch", "p_touch_se", "p_max_loss", "p_max_loss_se", "q05", "q50", "q95", "lognormal_pop",
            "seconds", "device"}


def run(args, data="unused"):
    return CliRunner().invoke(cli, ["--data", str(data), "options", *args])


def run_json(args, data="unused"):
    res = run([*args, "--json"], data)
    assert res.exit_code == 0, res.output
    return json.loads(res.output)


def test_price_heston_analytic_lewis():
    out = run_json(["price", "--model", "heston", "--method", "analytic", *LEWIS])
    assert list(out) == PRICE_KEYS
    assert abs(out["price"] - LEWIS_CALL) < 1e-8
    assert out["stderr"] is None and out["method"] == "analytic" and out["device"] == "cpu"


def test_price_heston_mc_within_three_stderr():
    out = run_json(["price", "--model", "heston", "--method", "mc", "--paths", "100000", "--steps", "64",
                    "--seed", "1", *LEWIS])
    assert list(out) == PRICE_KEYS
    assert out["method"] == "mc" and out["stderr"] > 0
    assert abs(out["price"] - LEWIS_CALL) < 3 * out["stderr"]


def test_price_bs_hull():
    out = run_json(["price", "--model", "bs", "--spot", "42", "--strike", "40", "--years", "0.5", "--rate", "0.1",
                    "--vol", "0.2", "--right", "call"])
    assert list(out) == PRICE_KEYS
    assert abs(out["price"] - 4.759) < 1e-3 and out["stderr"] is None
    put = run_json(["price", "--model", "bs", "--spot", "42", "--strike", "40", "--years", "0.5", "--rate", "0.1",
                    "--vol", "0.2", "--right", "put"])
    assert abs(put["price"] - 0.8086) < 1e-3


def test_price_devices():
    # analytic prices are computed on the CPU whatever the device
    assert run_json(["price", "--model", "bs", "--spot", "42", "--strike", "40", "--years", "0.5", "--vol", "0.2",
                     "--device", "auto"])["device"] == "cpu"
    if not gpu.available():
        res = run(["price", "--model", "bs", "--spot", "42", "--strike", "40", "--years", "0.5", "--vol", "0.2",
                   "--device", "gpu"])
        assert res.exit_code == 3 and "device gpu: unavailable" in res.output and "--device cpu" in res.output
    res = run(["price", "--model", "heston", *LEWIS[:4], "--years", "1"])
    assert res.exit_code == 3 and "--v0" in res.output


def test_price_device_auto_uses_the_gpu_twin_when_present(monkeypatch):
    # plumbing only: a pretend device whose "GPU" Monte Carlo is the CPU kernel
    from argus.kernels import heston_mc

    monkeypatch.setattr(gpu, "available", lambda: True)
    monkeypatch.setattr(gpu, "unavailable_reason", lambda: None)
    calls = []

    def fake(*a, **k):
        calls.append(a)
        return heston_mc.mc_european(*a, **k)

    monkeypatch.setattr(gpu, "mc_european", fake)
    mc = ["price", "--model", "heston", "--method", "mc", "--paths", "2000", "--steps", "8", *LEWIS]
    cpu = run_json([*mc, "--device", "cpu"])
    for dev in ("auto", "gpu"):
        out = run_json([*mc, "--device", dev])
        assert out["device"] == "gpu" and out["price"] == cpu["price"] and out["stderr"] == cpu["stderr"]
    assert len(calls) == 2 and cpu["device"] == "cpu"
    out = run_json(["price", "--model", "heston", "--method", "analytic", *LEWIS, "--device", "gpu"])
    assert out["device"] == "cpu"  # nothing ran on the GPU


@pytest.fixture(scope="module")
def market(tmp_path_factory):
    data = tmp_path_factory.mktemp("opt")
    with EventLog.open(data / "log") as lg:
        write_synthetic_market(lg, SyntheticConfig(seed=5, symbols=("SPY",), start=dt.date(2024, 3, 4), days=1,
                                                   options=True, events_per_day=2000))
        from argus.options.pop import latest_chain

        chain = latest_chain(lg, "SPY")
    rows = chain.rows
    exp_ns = int(np.unique(rows["expiry_ns"])[1])  # the second expiry (a week or more out)
    puts = rows[(rows["expiry_ns"] == exp_ns) & (rows["right"] == int(OptionRight.PUT))]
    strikes = np.sort(puts["strike"])
    below = strikes[strikes < 0.98 * chain.spot]
    short, long_ = float(below[-1]), float(below[-6])
    expiry = chain.expiries()[1]
    args = ["pop", "--symbol", "SPY", "--short", f"{short:g}", "--long", f"{long_:g}", "--expiry", expiry,
            "--right", "put"]
    t0 = time.perf_counter()
    first = run_json(args, data)
    wall = time.perf_counter() - t0
    return dict(data=data, args=args, first=first, wall=wall, chain=chain, short=short, long=long_)


def test_pop_keys_and_ranges(market):
    out = market["first"]
    assert POP_KEYS <= set(out)
    assert out["symbol"] == "SPY" and out["right"] == "put" and out["device"] == "cpu"
    assert out["snapshot_offset"] == market["chain"].offset
    assert out["short"] == market["short"] and out["long"] == market["long"]
    assert set(out["heston"]) == {"v0", "kappa", "theta", "sigma", "rho"}
    assert 0.0 <= out["pop"] <= 1.0 and 0.0 <= out["lognormal_pop"] <= 1.0
    assert 0.0 <= out["p_max_loss"] <= 1.0 - out["pop"] + 1e-12  # max loss is a loss: P(loss) = 1 - pop
    assert 0.0 <= out["p_touch"] <= 1.0
    assert out["width"] == pytest.approx(abs(market["short"] - market["long"]))
    assert out["max_loss"] == pytest.approx(out["width"] - out["credit"])
    assert -out["max_loss"] - 1e-9 <= out["q05"] <= out["q50"] <= out["q95"] <= out["credit"] + 1e-9
    assert out["seed"] == out["snapshot_offset"] and out["paths"] == 200_000


def test_pop_deterministic_and_fast(market):
    again = run_json(market["args"], market["data"])
    a = {k: v for k, v in market["first"].items() if k != "seconds"}
    b = {k: v for k, v in again.items() if k != "seconds"}
    assert a == b
    print(f"options pop at 200,000 paths: {market['wall']:.2f} s wall, {market['first']['seconds']:.2f} s reported")
    assert market["wall"] < 10.0


def test_pop_stale_refused(market):
    res = run([*market["args"], "--max-age", "1s"], market["data"])
    assert res.exit_code in (3, 4)
    assert "stale chain" in res.output and "--max-age" in res.output


def test_pop_unknown_symbol_and_expiry(market):
    args = list(market["args"])
    res = run([*args[:2], "NOPE", *args[3:]], market["data"])
    assert res.exit_code in (3, 4) and "'NOPE' is not in the log" in res.output
    i = args.index("--expiry")
    res = run([*args[:i + 1], "2030-01-18", *args[i + 2:]], market["data"])
    assert res.exit_code in (3, 4) and "expiry 2030-01-18 is not in the SPY chain" in res.output
    res = run([*args[:i + 1], "18/01/2030", *args[i + 2:]], market["data"])
    assert res.exit_code == 2
    if not gpu.available():
        res = run([*args, "--device", "gpu"], market["data"])
        assert res.exit_code == 3 and "device gpu: unavailable" in res.output
