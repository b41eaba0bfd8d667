"""Regimes on closed bars: realized volatility and its percentile against numpy, ADX and the EMA slope
against TA-Lib (the oracle), the hysteresis rules against independent references, outputs, per
(instrument, spec) state, snapshots and validation."""

from __future__ import annotations

import re

import numpy as np
import pytest
import talib

from argus.kernels.bars import BAR_FIELDS
from argus.kernels.reducer import SnapshotError
from argus.kernels.regimes import (
    DEFAULT_PARAMS,
    REGIME_DTYPE,
    REGIME_FIELDS,
    RegimeChanged,
    RegimeReducer,
    TrendRegime,
    VolRegime,
    check_regime_layout,
    parse_params,
    regime_layout_info,
)

BAR_DTYPE = np.dtype(list(BAR_FIELDS))
MINUTE = 60_000_000_000
HASH = b"\7" * 32
LOW, NORMAL, HIGH, EXTREME = (int(VolRegime.VOL_LOW), int(VolRegime.VOL_NORMAL), int(VolRegime.VOL_HIGH),
                              int(VolRegime.VOL_EXTREME))
UP, DOWN, RANGE = int(TrendRegime.TREND_UP), int(TrendRegime.TREND_DOWN), int(TrendRegime.TREND_RANGE)


# -- helpers -------------------------------------------------------------------------------------

def make_bars(close, high=None, low=None, instrument: int = 0, spec: int = 0) -> np.ndarray:
    close = np.asarray(close, dtype=float)
    n = len(close)
    bars = np.zeros(n, dtype=BAR_DTYPE)
    bars["offset"] = np.arange(n)
    bars["instrument_id"] = instrument
    bars["spec"] = spec
    bars["ts_start"] = np.arange(n) * MINUTE
    bars["ts_end"] = bars["ts_start"] + MINUTE
    opn = np.concatenate([[close[0]], close[:-1]])
    bars["open"] = opn
    bars["high"] = np.maximum(opn, close) * 1.001 if high is None else high
    bars["low"] = np.minimum(opn, close) * 0.999 if low is None else low
    bars["close"] = close
    bars["volume"] = 1.0
    bars["vwap"] = close
    bars["trade_count"] = 1
    return bars


def walk(rng: np.random.Generator, vols, start: float = 100.0, drift=0.0) -> np.ndarray:
    """Closes, high and low of a random walk with per-bar log-return std `vols` (array) and drift."""
    vols = np.asarray(vols, dtype=float)
    r = rng.normal(0.0, 1.0, len(vols)) * vols + drift
    close = start * np.exp(np.cumsum(r))
    opn = np.concatenate([[start], close[:-1]])
    high = np.maximum(opn, close) * (1 + np.abs(rng.normal(0.0, vols / 2)))
    low = np.minimum(opn, close) * (1 - np.abs(rng.normal(0.0, vols / 2)))
    return make_bars(close, high, low)


def new_reducer(n_bar_specs: int = 1, **params) -> RegimeReducer:
    return RegimeReducer("regimes", HASH, n_bar_specs, **params)


def run(reducer: RegimeReducer, bars: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    reducer.feed_bars(bars)
    (_, rows), (_, changes) = reducer.outputs()
    return rows.drain(), changes.drain()


def rv_reference(close: np.ndarray, n: int, ppy: float) -> np.ndarray:
    r = np.diff(np.log(close))
    out = np.full(len(close), np.nan)
    out[n:] = np.lib.stride_tricks.sliding_window_view(r, n).std(axis=1, ddof=1) * np.sqrt(ppy)
    return out


def percentile_reference(rv: np.ndarray, history: int, min_history: int) -> np.ndarray:
    """Fraction of the last `history` rv values (current included) that are <= the current one."""
    out = np.full(len(rv), np.nan)
    valid = np.flatnonzero(~np.isnan(rv))
    for j, i in enumerate(valid):
        window = rv[valid[max(0, j - history + 1):j + 1]]
        if len(window) >= min_history:
            out[i] = np.count_nonzero(window <= rv[i]) / len(window)
    return out


def zones(pct: np.ndarray, low=0.25, high=0.75, extreme=0.95) -> np.ndarray:
    """The classifier without hysteresis (0 where the percentile is NaN)."""
    z = np.select([pct < low, pct <= high, pct <= extreme, pct > extreme], [LOW, NORMAL, HIGH, EXTREME], 0)
    return z.astype(np.uint8)


def vol_hysteresis_reference(pct, low=0.25, high=0.75, extreme=0.95, band=0.05) -> np.ndarray:
    """The documented rule, written independently in Python."""
    up = {NORMAL: low + band, HIGH: high + band, EXTREME: min(extreme + band, 1.0)}
    down = {LOW: low - band, NORMAL: high - band, HIGH: extreme - band}
    z = zones(pct, low, high, extreme)
    out, cur = [], 0
    for p, zone in zip(pct, z, strict=True):
        if zone == 0:
            pass
        elif cur == 0 or zone == cur:
            cur = int(zone)
        elif zone > cur:
            cur = next((r for r in range(zone, cur, -1) if p >= up[r]), cur)
        else:
            cur = next((r for r in range(zone, cur) if p <= down[r]), cur)
        out.append(cur)
    return np.array(out, dtype=np.uint8)


def trend_reference(adx, slope, enter=25.0, exit_=20.0) -> np.ndarray:
    out, cur = [], 0
    for a, s in zip(adx, slope, strict=True):
        if np.isnan(a) or np.isnan(s):
            pass
        elif cur in (UP, DOWN):
            if a < exit_:
                cur = RANGE
            elif a >= enter and ((cur == UP and s < 0) or (cur == DOWN and s > 0)):
                cur = DOWN if cur == UP else UP
        else:
            cur = UP if (a >= enter and s > 0) else DOWN if (a >= enter and s < 0) else RANGE
        out.append(cur)
    return np.array(out, dtype=np.uint8)


def switches(x: np.ndarray) -> int:
    x = x[x != 0]
    return int(np.count_nonzero(np.diff(x.astype(int))))


# -- layout and outputs --------------------------------------------------------------------------

def test_row_layout_is_regime_row_and_8_byte_aligned() -> None:
    check_regime_layout()
    size, offsets = regime_layout_info()
    assert size == REGIME_DTYPE.itemsize == 72
    assert {name: REGIME_DTYPE.fields[name][1] for name in REGIME_DTYPE.names} == offsets
    assert [name for name, _ in REGIME_FIELDS if not name.startswith("_")] == [
        "offset", "instrument_id", "spec", "ts_end", "rv", "rv_percentile", "vol_regime", "trend_regime",
        "adx", "ema_slope", "changed"]
    r = new_reducer()
    assert [name for name, _ in r.outputs()] == ["regimes", "regime_changes"]
    assert all(buf.dtype == REGIME_DTYPE for _, buf in r.outputs())


# -- values against numpy and TA-Lib -----------------------------------------------------------------

@pytest.mark.parametrize(("seed", "params"), [
    (1, {}), (2, {"rv_period": 5, "periods_per_year": 252 * 390, "history": 50, "min_history": 10}),
    (3, {"rv_period": 2, "history": 2, "min_history": 1}),
])
def test_rv_and_percentile_match_numpy_and_are_never_nan_after_warm_up(seed: int, params) -> None:
    q = parse_params(**params)
    bars = walk(np.random.default_rng(seed), np.full(900, 0.01))
    rows, _ = run(new_reducer(**params), bars)
    expected = rv_reference(bars["close"], q["rv_period"], q["periods_per_year"])
    assert np.array_equal(np.isnan(rows["rv"]), np.isnan(expected))
    assert np.isnan(rows["rv"][:q["rv_period"]]).all() and np.isfinite(rows["rv"][q["rv_period"]:]).all()
    np.testing.assert_allclose(rows["rv"], expected, rtol=1e-9, atol=1e-12)   # atol: two nearly equal returns
    pct = percentile_reference(rows["rv"], q["history"], q["min_history"])   # ranks of the kernel's own rv
    assert np.array_equal(rows["rv_percentile"], pct, equal_nan=True)
    first = q["rv_period"] + q["min_history"] - 1
    assert np.isnan(rows["rv_percentile"][:first]).all() and np.isfinite(rows["rv_percentile"][first:]).all()
    assert (rows["vol_regime"][:first] == 0).all() and (rows["vol_regime"][first:] > 0).all()
    # the ranks of numpy's rv agree too (rv to rounding: compare away from ties)
    np.testing.assert_allclose(percentile_reference(expected, q["history"], q["min_history"]), pct, atol=0.05)


@pytest.mark.parametrize(("seed", "adx_period", "ema_period", "slope_bars"), [(4, 14, 20, 1), (5, 5, 7, 3),
                                                                            (6, 2, 2, 10)])
def test_adx_and_ema_slope_match_talib(seed, adx_period, ema_period, slope_bars) -> None:
    bars = walk(np.random.default_rng(seed), np.full(700, 0.015))
    bars["close"][200:230] = bars["high"][200:230] = bars["low"][200:230] = bars["close"][200]   # flat stretch
    rows, _ = run(new_reducer(adx_period=adx_period, ema_period=ema_period, slope_bars=slope_bars), bars)
    adx = talib.ADX(bars["high"], bars["low"], bars["close"], adx_period)
    assert np.array_equal(np.isnan(rows["adx"]), np.isnan(adx))
    np.testing.assert_allclose(rows["adx"], adx, rtol=1e-9, atol=0)
    ema = talib.EMA(bars["close"], ema_period)
    slope = np.full(len(ema), np.nan)
    slope[slope_bars:] = ema[slope_bars:] - ema[:-slope_bars]
    assert np.array_equal(np.isnan(rows["ema_slope"]), np.isnan(slope))
    np.testing.assert_allclose(rows["ema_slope"], slope, rtol=1e-9, atol=1e-9 * np.max(bars["close"]))
    assert np.array_equal(rows["trend_regime"], trend_reference(adx, rows["ema_slope"]))


def test_real_minute_bars_through_the_bar_reducer_match_numpy_talib_and_the_rules(shared_data, tmp_path) -> None:
    # The engine's path: provider minute bars in the log -> BarReducer (5-min roll-up) -> on_bar_closed.
    from argus.connectors.files import FileIngestOptions, ingest_csv
    from argus.kernels.bars import BarReducer
    from argus.log import EventLog

    path = shared_data / "nautilus_trader__6EH4.XCME_1min_bars_20240101_20240131.csv"
    params = {"periods_per_year": 252 * 288.0, "history": 500, "min_history": 100}
    listener = new_reducer(**params)
    bar_reducer = BarReducer("bars", b"\2" * 32, [{"kind": "time", "source": "provider", "interval_ns": 5 * MINUTE}],
                             listener=listener)
    with EventLog.open(tmp_path / "log") as log:
        ingest_csv(log, path, FileIngestOptions(kind="bars", timeframe="1m", symbol="6EH4",
                                                columns={"ts_event": "timestamp_utc"}))
        for c in log.chunks(0, None):
            bar_reducer.apply_chunk(c.body, c.first_offset, c.start, c.stop)
    bars = bar_reducer.outputs()[0][1].drain()
    rows = listener.outputs()[0][1].drain()
    assert len(bars) > 1000
    assert rows.tobytes() == run(new_reducer(**params), bars)[0].tobytes()
    np.testing.assert_allclose(rows["rv"], rv_reference(bars["close"], 20, 252 * 288.0), rtol=1e-9, atol=1e-12)
    adx = talib.ADX(bars["high"], bars["low"], bars["close"], 14)
    np.testing.assert_allclose(rows["adx"], adx, rtol=1e-9, atol=0)
    assert np.array_equal(rows["trend_regime"], trend_reference(adx, rows["ema_slope"]))
    assert np.array_equal(rows["vol_regime"], vol_hysteresis_reference(rows["rv_percentile"]))
    assert set(np.unique(rows["vol_regime"][200:])) == {LOW, NORMAL, HIGH, EXTREME}
    assert set(np.unique(rows["trend_regime"][200:])) == {UP, DOWN, RANGE}


# -- volatility regime ---------------------------------------------------------------------------------

def test_vol_regime_goes_up_in_a_volatile_segment_and_back_down_after_it() -> None:
    vols = np.concatenate([np.full(500, 0.004), np.full(200, 0.03), np.full(400, 0.004)])
    rows, _ = run(new_reducer(), walk(np.random.default_rng(8), vols))
    vol = rows["vol_regime"]
    volatile = vol[500 + 20:700]          # once the rv window is inside the segment
    calm_after = vol[700 + 20:700 + 180]  # while the history still remembers the volatile segment
    assert np.mean(volatile >= HIGH) > 0.8 and (volatile >= NORMAL).all()
    assert (vol[500:520] == EXTREME).any()
    assert (calm_after <= NORMAL).all() and np.mean(calm_after == LOW) > 0.8
    # the whole story as runs: ... -> HIGH/EXTREME -> ... -> LOW
    story = [(i, int(v)) for i, v in enumerate(vol[:880]) if i >= 480 and v != vol[i - 1]]   # (bar, new regime)
    assert vol[499] in (LOW, NORMAL)
    assert story[0][1] == EXTREME and 500 <= story[0][0] < 510
    after = [(i, v) for i, v in story if i >= 700]
    assert after[0][1] <= NORMAL and after[0][0] < 720 and after[1][1] == LOW


@pytest.mark.parametrize("seed", [9, 10, 11])
def test_hysteresis_switches_less_than_the_plain_classifier(seed: int) -> None:
    # A stationary series: the rv percentile wanders across the thresholds and hovers near them.
    bars = walk(np.random.default_rng(seed), np.full(3000, 0.01))
    rows, _ = run(new_reducer(), bars)
    pct = percentile_reference(rv_reference(bars["close"], 20, 252.0), 252, 60)   # numpy, independently
    plain = zones(pct)
    hyst = rows["vol_regime"]
    assert switches(hyst) < 0.7 * switches(plain)
    assert np.array_equal(hyst, vol_hysteresis_reference(rows["rv_percentile"]))
    # near a threshold (within band) the regime never switches
    near = np.abs(rows["rv_percentile"] - 0.75) < 0.05
    assert near.sum() > 50
    hold = near[1:] & near[:-1]
    assert (hyst[1:][hold] == hyst[:-1][hold]).all()
    # band = 0 is the plain classifier
    rows0, _ = run(new_reducer(band=0.0), bars)
    assert np.array_equal(rows0["vol_regime"], zones(rows0["rv_percentile"]))
    assert switches(rows0["vol_regime"]) > switches(hyst)


@pytest.mark.parametrize("params", [{"low": 0.1, "high": 0.5, "extreme": 0.8, "band": 0.08},
                                    {"band": 0.2, "low": 0.3, "high": 0.6, "extreme": 0.8},
                                    {"history": 40, "min_history": 40, "band": 0.01}])
def test_vol_regime_follows_the_documented_rule_for_other_parameters(params) -> None:
    vols = np.concatenate([np.full(300, 0.01), np.full(100, 0.03), np.full(300, 0.005), np.full(300, 0.01)])
    rows, _ = run(new_reducer(**params), walk(np.random.default_rng(12), vols))
    q = parse_params(**params)
    expected = vol_hysteresis_reference(rows["rv_percentile"], q["low"], q["high"], q["extreme"], q["band"])
    assert np.array_equal(rows["vol_regime"], expected)


# -- trend regime --------------------------------------------------------------------------------

@pytest.mark.parametrize(("drift", "expected"), [(0.01, UP), (-0.01, DOWN)])
def test_strong_trend_gives_trend_up_or_down(drift: float, expected: int) -> None:
    bars = walk(np.random.default_rng(13), np.full(400, 0.003), drift=drift)
    rows, _ = run(new_reducer(), bars)
    trend = rows["trend_regime"]
    assert (trend[:27] == 0).all() and (trend[27:] > 0).all()
    assert np.mean(trend[60:] == expected) > 0.95 and trend[-1] == expected


def test_noise_gives_range() -> None:
    rng = np.random.default_rng(14)
    close = 100.0 * np.exp(rng.normal(0.0, 0.01, 1500))            # no memory: no trend
    rows, _ = run(new_reducer(), make_bars(close))
    trend = rows["trend_regime"]
    assert np.mean(trend[27:] == RANGE) > 0.9
    adx = talib.ADX(*(make_bars(close)[k] for k in ("high", "low", "close")), 14)
    assert np.array_equal(trend, trend_reference(adx, rows["ema_slope"]))


def test_trend_reverses_only_with_the_opposite_slope_and_adx_above_enter() -> None:
    rng = np.random.default_rng(15)
    drift = np.concatenate([np.full(150, 0.01), np.full(150, -0.01), np.zeros(300)])
    r = rng.normal(0.0, 0.003, 600) + drift
    bars = make_bars(100.0 * np.exp(np.cumsum(r)))
    rows, _ = run(new_reducer(), bars)
    trend = rows["trend_regime"]
    assert trend[140] == UP and trend[290] == DOWN
    runs = [int(v) for i, v in enumerate(trend) if v and (i == 0 or v != trend[i - 1])]
    assert UP in runs and DOWN in runs and runs.index(UP) < runs.index(DOWN)
    adx = talib.ADX(bars["high"], bars["low"], bars["close"], 14)
    assert np.array_equal(trend, trend_reference(adx, rows["ema_slope"]))
    for p in ({"adx_enter": 30.0, "adx_exit": 10.0}, {"adx_enter": 20.0, "adx_exit": 20.0}):
        rows2, _ = run(new_reducer(**p), bars)
        assert np.array_equal(rows2["trend_regime"], trend_reference(adx, rows2["ema_slope"], p["adx_enter"],
                                                                     p["adx_exit"]))


# -- changes -------------------------------------------------------------------------------------

def test_regime_changes_are_the_rows_with_changed_bits() -> None:
    vols = np.concatenate([np.full(400, 0.005), np.full(150, 0.03), np.full(400, 0.005)])
    drift = np.concatenate([np.full(300, 0.004), np.zeros(650)])
    rng = np.random.default_rng(16)
    bars = walk(rng, vols, drift=drift)
    rows, changes = run(new_reducer(), bars)
    assert changes.tobytes() == rows[rows["changed"] != 0].tobytes()
    prev_vol = np.concatenate([[0], rows["vol_regime"][:-1]])
    prev_trend = np.concatenate([[0], rows["trend_regime"][:-1]])
    bits = (rows["vol_regime"] != prev_vol) * int(RegimeChanged.CHANGED_VOL) + \
        (rows["trend_regime"] != prev_trend) * int(RegimeChanged.CHANGED_TREND)
    assert np.array_equal(rows["changed"], bits)
    assert (changes["changed"] & 1).sum() >= 3 and (changes["changed"] & 2).sum() >= 2
    assert changes[0]["changed"] == 2 and changes[0]["trend_regime"] != 0   # leaving UNKNOWN is a change
    assert rows.view(np.uint8).reshape(len(rows), -1)[:, [42, 43, 44, 45, 46, 47, 65, 66, 67, 68, 69, 70, 71]].max() == 0


# -- state per (instrument, spec) --------------------------------------------------------------------

def four_streams(rng: np.random.Generator) -> tuple[np.ndarray, list[np.ndarray]]:
    parts = []
    for iid, spec, vol, drift in ((0, 0, 0.01, 0.0), (0, 1, 0.02, 0.003), (3, 0, 0.005, -0.003), (3, 1, 0.03, 0.0)):
        b = walk(rng, np.full(500, vol), start=10.0 * (iid + 1) + spec, drift=drift)
        b["instrument_id"], b["spec"] = iid, spec
        parts.append(b)
    owner = rng.permutation(np.repeat(np.arange(4), 500))
    bars = np.empty(2000, dtype=BAR_DTYPE)
    for k in range(4):
        bars[owner == k] = parts[k]
    bars["offset"] = np.arange(2000) * 2 + 7
    return bars, [bars[owner == k] for k in range(4)]


def test_two_instruments_and_two_specs_are_kept_apart() -> None:
    bars, parts = four_streams(np.random.default_rng(17))
    rows, changes = run(new_reducer(n_bar_specs=2, history=100, min_history=30), bars)
    assert np.array_equal(rows["offset"], bars["offset"])
    for part in parts:
        alone, _ = run(new_reducer(n_bar_specs=2, history=100, min_history=30), part)
        mine = rows[(rows["instrument_id"] == part["instrument_id"][0]) & (rows["spec"] == part["spec"][0])]
        assert mine.tobytes() == alone.tobytes()
    assert changes.tobytes() == rows[rows["changed"] != 0].tobytes()


# -- snapshots -----------------------------------------------------------------------------------

@pytest.mark.parametrize("k", [0, 1, 25, 90, 333, 1001, 1999, 2000])
def test_snapshot_restore_continue_equals_uninterrupted(k: int) -> None:
    bars, _ = four_streams(np.random.default_rng(18))
    params = {"history": 100, "min_history": 30, "slope_bars": 3}
    whole = new_reducer(2, **params)
    expected, expected_changes = run(whole, bars)
    first = new_reducer(2, **params)
    head, head_changes = run(first, bars[:k])
    snap = first.snapshot()
    second = new_reducer(2, **params)
    second.restore(snap)
    assert second.state_digest() == first.state_digest()
    tail, tail_changes = run(second, bars[k:])
    assert np.concatenate([head, tail]).tobytes() == expected.tobytes()
    assert np.concatenate([head_changes, tail_changes]).tobytes() == expected_changes.tobytes()
    assert second.state_digest() == whole.state_digest()
    assert [b.digest() for _, b in second.outputs()] == [b.digest() for _, b in whole.outputs()]
    assert (second.next_offset, second.events, second.now, second.n_instruments) == (
        whole.next_offset, whole.events, whole.now, whole.n_instruments)


def test_snapshot_of_other_parameters_or_damaged_state_is_refused() -> None:
    r = new_reducer()
    run(r, walk(np.random.default_rng(19), np.full(100, 0.01)))
    snap = r.snapshot()
    with pytest.raises(SnapshotError, match="layout"):
        new_reducer(history=100).restore(snap)                 # same config_hash bytes, other parameters
    with pytest.raises(SnapshotError, match="layout"):
        new_reducer(n_bar_specs=2).restore(snap)
    layout, dbytes, sbytes = r.state_parts()
    ints = np.frombuffer(sbytes, dtype="<i8").copy()
    ints[3] = 252                                              # history ring position past the ring
    with pytest.raises(SnapshotError, match=re.escape("history ring position = 252 must be in [0, 251]")):
        r.load_state_parts([layout, dbytes, ints.tobytes()])
    ints[3], ints[8] = 0, 5                                    # no vol regime 5
    with pytest.raises(SnapshotError, match="vol regime = 5"):
        r.load_state_parts([layout, dbytes, ints.tobytes()])
    with pytest.raises(SnapshotError, match="bytes"):
        r.load_state_parts([layout, dbytes[:-8], sbytes])
    assert r.state_parts() == [layout, dbytes, sbytes]         # refused loads changed nothing


# -- input handling ------------------------------------------------------------------------------

def test_bad_prices_change_no_state_and_repeat_the_last_row() -> None:
    bars = walk(np.random.default_rng(20), np.full(300, 0.01))
    bad = np.insert(bars, 150, bars[149])
    bad["close"][150] = np.nan
    bad2 = np.insert(bad, 200, bars[198])
    bad2["close"][200] = -1.0
    rows, _ = run(new_reducer(), bars)
    got, _ = run(new_reducer(), bad2)
    keep = np.ones(len(bad2), dtype=bool)
    keep[[150, 200]] = False
    cols = ["rv", "rv_percentile", "vol_regime", "trend_regime", "adx", "ema_slope", "changed"]
    assert got[keep][cols].tobytes() == rows[cols].tobytes()
    for i in (150, 200):
        assert got[i][cols[:-1]].tobytes() == got[i - 1][cols[:-1]].tobytes() and got[i]["changed"] == 0


def test_feed_bars_refuses_other_dtypes_unknown_specs_and_log_records() -> None:
    r = new_reducer(n_bar_specs=2)
    with pytest.raises(ValueError, match="must be the BAR_FIELDS dtype"):
        r.feed_bars(np.zeros(3, dtype=[("close", "<f8")]))
    bars = make_bars([1.0, 1.1, 1.2])
    bars["spec"][2] = 2
    with pytest.raises(ValueError, match="bar spec = 2 must be < n_bar_specs = 2"):
        r.feed_bars(bars)
    with pytest.raises(TypeError, match="fed closed bars"):
        new_reducer().apply_chunk(b"\0" * 64, 0)
    with pytest.raises(TypeError, match="fed closed bars"):
        new_reducer().apply_record(b"\0" * 32, 0)


def test_bookkeeping_follows_the_bars() -> None:
    bars = make_bars([1.0, 1.1, 1.2, 1.3], instrument=9)
    bars["offset"] = [5, 8, 9, 20]
    r = new_reducer()
    run(r, bars)
    assert (r.next_offset, r.events, r.now, r.n_instruments) == (21, 4, 4 * MINUTE, 10)


def test_defaults_are_the_documented_ones() -> None:
    assert parse_params() == DEFAULT_PARAMS == {
        "rv_period": 20, "periods_per_year": 252.0, "history": 252, "min_history": 60,
        "low": 0.25, "high": 0.75, "extreme": 0.95, "band": 0.05,
        "adx_period": 14, "ema_period": 20, "slope_bars": 1, "adx_enter": 25.0, "adx_exit": 20.0}
    assert new_reducer(history=100).params["history"] == 100


@pytest.mark.parametrize(("params", "message"), [
    ({"rv_period": 1}, "field 'rv_period' = 1 must be an integer in [2, 100000]"),
    ({"rv_period": 2.5}, "field 'rv_period' = 2.5 must be an integer"),
    ({"history": True}, "field 'history' = True must be an integer"),
    ({"min_history": 0}, "field 'min_history' = 0 must be an integer in [1, 100000]"),
    ({"min_history": 300}, "field 'min_history' = 300 must be <= history = 252"),
    ({"adx_period": 1}, "field 'adx_period' = 1 must be an integer in [2, 100000]"),
    ({"ema_period": 100001}, "field 'ema_period' = 100001 must be an integer in [2, 100000]"),
    ({"slope_bars": 0}, "field 'slope_bars' = 0 must be an integer in [1, 100000]"),
    ({"periods_per_year": 0}, "field 'periods_per_year' = 0.0 must be > 0"),
    ({"periods_per_year": float("nan")}, "field 'periods_per_year' = nan must be a finite number"),
    ({"low": 0.0}, "field 'low' = 0.0 must be such that 0 < low < high < extreme < 1"),
    ({"high": 0.2}, "field 'high' = 0.2 must be such that 0 < low < high < extreme < 1"),
    ({"extreme": 1.0}, "field 'extreme' = 1.0 must be such that 0 < low < high < extreme < 1"),
    ({"band": -0.01}, "field 'band' = -0.01 must be >= 0, < every zone width"),
    ({"band": 0.2}, "field 'band' = 0.2 must be >= 0, < every zone width (< 0.2)"),
    ({"band": 0.06}, "field 'band' = 0.06 must be >= 0, < every zone width (< 0.2) and <= 1 - extreme"),
    ({"adx_exit": 30.0}, "field 'adx_enter' = 25.0 must be such that 0 <= adx_exit <= adx_enter <= 100"),
    ({"adx_exit": -1}, "field 'adx_exit' = -1.0 must be such that 0 <= adx_exit <= adx_enter <= 100"),
    ({"adx_enter": 101, "adx_exit": 20}, "field 'adx_enter' = 101.0 must be such that 0 <= adx_exit"),
    ({"adx_enter": "25"}, "field 'adx_enter' = '25' must be a finite number"),
    ({"perod": 3}, "field 'perod' = 3 must be absent (regime parameters: rv_period, periods_per_year"),
])
def test_bad_parameters_are_refused_naming_field_value_and_rule(params, message) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        new_reducer(**params)


def test_bad_constructor_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match=re.escape("field 'n_bar_specs' = 0 must be >= 1")):
        new_reducer(n_bar_specs=0)
    with pytest.raises(ValueError, match="config_hash = 3 bytes must be 32"):
        RegimeReducer("regimes", b"abc", 1)
