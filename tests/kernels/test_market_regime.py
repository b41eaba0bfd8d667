"""Composite market regime: RegimeReducer, BocpdReducer, RiskFlowReducer and MarketRegimeReducer under one
BarFanout (driven by feed_listener), checked against an independent Python evaluation of the documented
rule on the upstream reducers' own output rows; changes, degradation with missing inputs, snapshots and
validation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from argus.kernels.bars import BAR_FIELDS, BarFanout
from argus.kernels.bocpd import BocpdReducer
from argus.kernels.bocpd import config_hash as bocpd_hash
from argus.kernels.market_regime import (
    MARKET_REGIME_DTYPE,
    MARKET_REGIME_FIELDS,
    MarketRegime,
    MarketRegimeReducer,
    check_market_regime_layout,
    feed_listener,
    market_regime_layout_info,
)
from argus.kernels.reducer import SnapshotError
from argus.kernels.regimes import RegimeReducer, TrendRegime, VolRegime
from argus.kernels.riskflow import RiskFlowReducer
from argus.kernels.riskflow import config_hash as riskflow_hash

BAR_DTYPE = np.dtype(list(BAR_FIELDS))
MINUTE = 60_000_000_000
HASH = b"\5" * 32
INDEX, ASIA, EUROPE, FX = 0, (1, 2), (3,), (4,)
UNKNOWN, RISK_ON, NEUTRAL, RISK_OFF = (int(MarketRegime.MARKET_UNKNOWN), int(MarketRegime.MARKET_RISK_ON),
                                       int(MarketRegime.MARKET_NEUTRAL), int(MarketRegime.MARKET_RISK_OFF))
LOW, NORMAL, HIGH, EXTREME = (int(VolRegime.VOL_LOW), int(VolRegime.VOL_NORMAL), int(VolRegime.VOL_HIGH),
                              int(VolRegime.VOL_EXTREME))
UP, DOWN = int(TrendRegime.TREND_UP), int(TrendRegime.TREND_DOWN)
REGIME_PARAMS = dict(rv_period=5, history=60, min_history=10, adx_period=5, ema_period=5)


def stream(seed: int, n: int = 1500) -> np.ndarray:
    """Minute bars of the index (spec 0 and 1) and the components (spec 0, some missing), in time order;
    the index goes through calm-up, volatile-down and calm segments, the components follow it loosely."""
    rng = np.random.default_rng(seed)
    seg = n // 3
    drift = np.concatenate([np.full(seg, 0.002), np.full(seg, -0.003), np.full(n - 2 * seg, 0.0005)])
    vol = np.concatenate([np.full(seg, 0.002), np.full(seg, 0.02), np.full(n - 2 * seg, 0.004)])
    index_ret = drift + rng.normal(0, 1, n) * vol
    price = {INDEX: 100.0, 1: 50.0, 2: 20.0, 3: 80.0, 4: 150.0, 9: 10.0}
    items = []
    for t in range(n):
        order = [1, 2, 3, 4, 9, INDEX]
        rng.shuffle(order)
        for iid in order:
            if iid != INDEX and rng.random() < 0.3:
                continue                     # missing component bars
            r = index_ret[t] if iid == INDEX else 0.5 * index_ret[t] + rng.normal(0, 0.003)
            old = price[iid]
            price[iid] = old * math.exp(r)
            items.append((t, iid, 0, old, price[iid]))
            if iid == INDEX and t % 5 == 4:
                items.append((t, iid, 1, old, price[iid]))
    bars = np.zeros(len(items), dtype=BAR_DTYPE)
    for i, (t, iid, spec, old, close) in enumerate(items):
        b = bars[i]
        b["offset"], b["instrument_id"], b["spec"] = i, iid, spec
        b["ts_start"], b["ts_end"] = t * MINUTE, (t + 1) * MINUTE
        b["open"], b["close"], b["vwap"] = old, close, close
        b["high"], b["low"] = max(old, close) * 1.001, min(old, close) * 0.999
        b["volume"], b["trade_count"] = 1.0, 1
    return bars


def build(use=("regimes", "bocpd", "flow"), **kw):
    regimes = RegimeReducer("regimes", HASH, 2, **REGIME_PARAMS)
    bocpd = BocpdReducer("bocpd", bocpd_hash(2, hazard_lambda=100.0), 2, hazard_lambda=100.0)
    flow = RiskFlowReducer("risk_flow", riskflow_hash(2, 0, ASIA, EUROPE, FX), 2, 0, ASIA, EUROPE, FX)
    market = MarketRegimeReducer("market_regime", HASH, 2, INDEX, 0,
                                 regimes=regimes if "regimes" in use else None,
                                 bocpd=bocpd if "bocpd" in use else None,
                                 risk_flow=flow if "flow" in use else None, **kw)
    # the market regime reads the others' current state: it comes last
    return [regimes, bocpd, flow, market]


def drain_all(reducers) -> dict:
    return {name: buf.drain() for r in reducers for name, buf in r.outputs()}


def run(reducers, bars) -> dict:
    feed_listener(BarFanout(reducers), bars)
    return drain_all(reducers)


def reference(out: dict, has=("regimes", "bocpd", "flow"), flow_threshold=0.005, change_threshold=0.5):
    """The documented rule, evaluated in Python from the upstream rows. Returns (vol, trend, pc, flow,
    regime, changed) per index bar."""
    reg = out["regimes"]
    reg = reg[(reg["instrument_id"] == INDEX) & (reg["spec"] == 0)]
    boc = out["bocpd"]
    boc = boc[(boc["instrument_id"] == INDEX) & (boc["spec"] == 0)]
    rf = out["risk_flow"]
    n = len(reg)
    vol = reg["vol_regime"].astype(int) if "regimes" in has else np.zeros(n, int)
    trend = reg["trend_regime"].astype(int) if "regimes" in has else np.zeros(n, int)
    pc = boc["p_change"] if "bocpd" in has else np.full(n, np.nan)
    flow = np.full(n, np.nan)
    if "flow" in has:
        # the flow of the last risk_flow row before the index bar (offsets are the stream order)
        k = np.searchsorted(rf["offset"], reg["offset"]) - 1
        flow = np.where(k >= 0, rf["value"][np.maximum(k, 0)], np.nan)
    regime, changed, prev = [], [], UNKNOWN
    for v, t, p, f in zip(vol, trend, pc, flow, strict=True):
        if "regimes" in has and (v == 0 or t == 0):
            g = UNKNOWN
        elif v == EXTREME or (v == HIGH and t == DOWN) or (not math.isnan(f) and f < -flow_threshold) \
                or (not math.isnan(p) and p > change_threshold and t != UP):
            g = RISK_OFF
        elif v in (LOW, NORMAL) and t == UP and (math.isnan(f) or f >= 0) and (math.isnan(p) or p <= change_threshold):
            g = RISK_ON
        else:
            g = NEUTRAL
        regime.append(g)
        changed.append(int(g != prev))
        prev = g
    return vol, trend, pc, flow, np.array(regime), np.array(changed), reg["offset"]


def check_against_reference(out: dict, **kw) -> np.ndarray:
    rows, changes = out["market_regime"], out["market_regime_changes"]
    vol, trend, pc, flow, regime, changed, offsets = reference(out, **kw)
    assert rows["offset"].tolist() == offsets.tolist()
    assert (rows["instrument_id"] == INDEX).all()
    np.testing.assert_array_equal(rows["vol_regime"], vol)
    np.testing.assert_array_equal(rows["trend_regime"], trend)
    np.testing.assert_array_equal(rows["p_change"], pc)        # NaNs compare equal here
    np.testing.assert_array_equal(rows["flow"], flow)
    np.testing.assert_array_equal(rows["regime"], regime)
    np.testing.assert_array_equal(rows["changed"], changed)
    assert changes.tobytes() == rows[rows["changed"] != 0].tobytes()
    return rows


def test_row_layout_matches_market_regime_fields() -> None:
    check_market_regime_layout()
    size, offsets = market_regime_layout_info()
    assert size == MARKET_REGIME_DTYPE.itemsize == 40
    assert [name for name, _ in MARKET_REGIME_FIELDS] == list(offsets)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_composite_follows_the_rule_on_the_upstream_rows(seed: int) -> None:
    reducers = build()
    bars = stream(seed)
    rows = check_against_reference(run(reducers, bars))
    assert len(rows) == np.count_nonzero((bars["instrument_id"] == INDEX) & (bars["spec"] == 0))
    seen = set(rows["regime"].tolist())
    assert seen == {UNKNOWN, RISK_ON, NEUTRAL, RISK_OFF}, seen       # the data exercises the rule
    assert rows["regime"][0] == UNKNOWN and (rows["changed"] != 0).sum() >= 2


@pytest.mark.parametrize("use", [(), ("regimes",), ("bocpd",), ("flow",), ("bocpd", "flow"), ("regimes", "flow")])
def test_missing_inputs_degrade_as_documented(use) -> None:
    reducers = build(use=use)
    rows = check_against_reference(run(reducers, stream(3)), has=use)
    if "regimes" not in use:
        assert RISK_ON not in rows["regime"] and UNKNOWN not in rows["regime"]
        assert (rows["vol_regime"] == 0).all() and (rows["trend_regime"] == 0).all()
    if not use:
        assert (rows["regime"] == NEUTRAL).all()


def test_other_thresholds_follow_the_rule() -> None:
    reducers = build(flow_threshold=0.0, change_threshold=0.2)
    check_against_reference(run(reducers, stream(4)), flow_threshold=0.0, change_threshold=0.2)


def test_placed_before_its_inputs_it_sees_the_previous_state() -> None:
    # The documented ordering matters: first in the fan-out it reads the state before this bar's update.
    reducers = build()
    feed_listener(BarFanout([reducers[3]] + reducers[:3]), stream(5))
    out = drain_all(reducers)
    assert out["market_regime"]["trend_regime"][1:].tolist() != reference(out)[1][1:].tolist() or \
        out["market_regime"]["vol_regime"].tolist() != reference(out)[0].tolist()


@pytest.mark.parametrize("k", [0, 1, 1777, 4000])
def test_snapshot_restore_continue_equals_uninterrupted(k: int) -> None:
    bars = stream(6)
    whole = build()
    expected = run(whole, bars)
    first = build()
    head = run(first, bars[:k])
    snaps = [r.snapshot() for r in first]
    second = build()
    for r, s in zip(second, snaps, strict=True):
        r.restore(s)
        assert r.snapshot() == s
    tail = run(second, bars[k:])
    for name in expected:
        assert np.concatenate([head[name], tail[name]]).tobytes() == expected[name].tobytes(), name
    for a, b in zip(whole, second, strict=True):
        assert a.state_digest() == b.state_digest()


def test_snapshot_of_another_configuration_or_damaged_state_is_refused() -> None:
    market = build()[3]
    snap = market.snapshot()
    with pytest.raises(SnapshotError, match="layout"):
        build(flow_threshold=0.01)[3].restore(snap)
    with pytest.raises(SnapshotError, match="layout"):
        build(use=("regimes",))[3].restore(snap)
    layout = market.state_parts()[0]
    with pytest.raises(SnapshotError, match="damaged"):
        market.load_state_parts([layout, (7).to_bytes(8, "little") + bytes(8)])


@pytest.mark.parametrize(("kwargs", "message"), [
    (dict(n_bar_specs=0), "'n_bar_specs' = 0 must be an integer >= 1"),
    (dict(index_id=-1), "'index_id' = -1 must be an instrument id"),
    (dict(spec=3), "'spec' = 3 must be a bar spec index in \\[0, n_bar_specs = 3\\)"),
    (dict(spec=2, n_bar_specs=3, regimes=True), "'spec' = 2 must be < the regimes reducer's n_bar_specs = 2"),
    (dict(flow_threshold=-0.1), "'flow_threshold' = -0.1 must be a finite number >= 0"),
    (dict(change_threshold=1.5), "'change_threshold' = 1.5 must be a probability in \\[0, 1\\]"),
])
def test_bad_configuration_is_refused_naming_field_value_and_rule(kwargs: dict, message: str) -> None:
    args = dict(n_bar_specs=3, index_id=0, spec=0)
    args.update(kwargs)
    regimes = RegimeReducer("regimes", HASH, 2) if args.pop("regimes", None) else None
    with pytest.raises(ValueError, match=message):
        MarketRegimeReducer("market_regime", HASH, args["n_bar_specs"], args["index_id"], args["spec"],
                            regimes=regimes, **{k: v for k, v in args.items()
                                                if k not in ("n_bar_specs", "index_id", "spec")})


def test_feed_bars_bar_by_bar_after_the_inputs_equals_the_fanout_and_refuses_bad_input() -> None:
    # feed_bars feeds only this reducer: fed one bar at a time after its inputs, it gives the fan-out's rows.
    bars = stream(7, 200)
    expected = run(build(), bars)
    reducers = build()
    for i in range(len(bars)):
        for r in reducers:
            r.feed_bars(bars[i:i + 1])
    got = drain_all(reducers)
    for name in expected:
        assert got[name].tobytes() == expected[name].tobytes(), name
    market = reducers[3]
    with pytest.raises(ValueError, match="BAR_FIELDS"):
        market.feed_bars(np.zeros(2))
    bad = bars[:1].copy()
    bad["spec"] = 5
    with pytest.raises(ValueError, match="bar spec = 5 must be < n_bar_specs = 2"):
        market.feed_bars(bad)
    with pytest.raises(TypeError, match="closed bars"):
        market.apply_record(b"\0" * 32, 0)
