"""The synthetic market (argus.connectors.synthetic) and the Black–Scholes helpers it prices options with.

Real LMDB logs under tmp_path; small volumes (events_per_day override) and 1–2 days keep it fast."""

from __future__ import annotations

import datetime as dt
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from argus.analytics.black_scholes import greeks, implied_vol, price
from argus.cli.main import cli
from argus.connectors import synthetic as syn
from argus.connectors.synthetic import SyntheticConfig, write_synthetic_market
from argus.events import codec, layout
from argus.events.layout import NO_INSTRUMENT
from argus.events.types import AggressorSide, EventType, OptionRight, OptionSource
from argus.kernels import codec as kcodec
from argus.log import EventLog

NY = "America/New_York"
SMALL = 20_000


# -- helpers -------------------------------------------------------------------------------------


@dataclass
class Loaded:
    body: bytes
    heads: np.ndarray  # HEADER_DTYPE, one per record, in log order
    quotes: np.ndarray  # RECORD_DTYPES[QUOTE], in log order
    trades: np.ndarray
    chains: list  # decoded OptionChainSnapshot events, in log order


def load(path: Path) -> Loaded:
    """Every record of a log, as numpy arrays (no Python object per event)."""
    with EventLog.open(path, readonly=True) as lg:
        body = b"".join(bytes(c.body) for c in lg.chunks())
    pos = kcodec.index_records(memoryview(body))
    u8 = np.frombuffer(body, np.uint8)
    heads = u8[pos[:, None] + np.arange(layout.HEADER_SIZE)].copy().view(layout.HEADER_DTYPE).ravel()

    def fixed(t: EventType) -> np.ndarray:
        dtype = layout.RECORD_DTYPES[t]
        p = pos[heads["type"] == t]
        return u8[p[:, None] + np.arange(dtype.itemsize)].copy().view(dtype).ravel()

    chains = [codec.decode(body[p: p + int(h["length"])])
              for p, h in zip(pos.tolist(), heads, strict=True) if h["type"] == EventType.OPTION_CHAIN_SNAPSHOT]
    return Loaded(body, heads, fixed(EventType.QUOTE), fixed(EventType.TRADE), chains)


def ny(ns: np.ndarray) -> pd.DatetimeIndex:
    return pd.to_datetime(np.asarray(ns, dtype=np.int64), utc=True).tz_convert(NY)


def minutes_of_day(ns: np.ndarray) -> np.ndarray:
    t = ny(ns)
    return np.asarray(t.hour * 60 + t.minute + t.second / 60.0)


def write(path: Path, **kw) -> syn.SyntheticSummary:
    cfg = dict(seed=11, symbols=("SPY",), start=dt.date(2024, 3, 4), days=1, events_per_day=5_000)
    cfg.update(kw)
    with EventLog.open(path) as lg:
        return write_synthetic_market(lg, SyntheticConfig(**cfg))


def chain_head(path: Path) -> bytes:
    with EventLog.open(path, readonly=True) as lg:
        return lg.chain_head()


@pytest.fixture(scope="module")
def market(tmp_path_factory):
    """SPY and IBIT over 2024-03-28 and 2024-04-01 (Good Friday and a weekend between), with options."""
    path = tmp_path_factory.mktemp("synthetic") / "log"
    summary = write(path, seed=11, symbols=("SPY", "IBIT"), start=dt.date(2024, 3, 28), days=2, options=True,
                    events_per_day=SMALL)
    return path, summary, load(path)


# -- Black–Scholes ---------------------------------------------------------------------------------


def test_black_scholes_hull_example_matches_textbook_values():
    # Hull, Options, Futures and Other Derivatives, example 15.6: S=42, K=40, r=10%, sigma=20%, T=0.5.
    assert price(42, 40, 0.5, 0.2, 0.1, 0.0, True) == pytest.approx(4.76, abs=0.005)
    assert price(42, 40, 0.5, 0.2, 0.1, 0.0, False) == pytest.approx(0.81, abs=0.005)
    # Hull's greeks example: S=49, K=50, r=5%, sigma=20%, T=20/52 (delta 0.522, gamma 0.066,
    # vega 12.1 per 1.00 vol, theta -4.31 per year).
    g = greeks(49, 50, 20 / 52, 0.2, 0.05, 0.0, True)
    assert float(g.delta) == pytest.approx(0.522, abs=0.001)
    assert float(g.gamma) == pytest.approx(0.066, abs=0.001)
    assert float(g.vega) == pytest.approx(12.1, abs=0.05)
    assert float(g.theta) == pytest.approx(-4.31, abs=0.01)


def test_black_scholes_put_call_parity_holds_with_dividends():
    s, t, r, q = 100.0, 0.75, 0.04, 0.02
    k = np.linspace(60, 140, 17)
    sigma = np.linspace(0.1, 0.6, 17)
    c = price(s, k, t, sigma, r, q, True)
    p = price(s, k, t, sigma, r, q, False)
    np.testing.assert_allclose(c - p, s * math.exp(-q * t) - k * math.exp(-r * t), atol=1e-10)


def test_black_scholes_greeks_match_finite_differences():
    s, k, t, sig, r, q = 100.0, np.array([80.0, 100.0, 125.0]), 0.4, 0.3, 0.03, 0.01
    for call in (True, False):
        g = greeks(s, k, t, sig, r, q, call)
        h = 1e-3
        up, dn = price(s + h, k, t, sig, r, q, call), price(s - h, k, t, sig, r, q, call)
        np.testing.assert_allclose(g.delta, (up - dn) / (2 * h), atol=1e-6)
        np.testing.assert_allclose(g.gamma, (up - 2 * g.price + dn) / h**2, atol=1e-4)
        vega = (price(s, k, t, sig + 1e-5, r, q, call) - price(s, k, t, sig - 1e-5, r, q, call)) / 2e-5
        np.testing.assert_allclose(g.vega, vega, rtol=1e-6)
        # theta per year: the price change as calendar time passes (time to expiry shrinks)
        theta = (price(s, k, t - 1e-5, sig, r, q, call) - price(s, k, t + 1e-5, sig, r, q, call)) / 2e-5
        np.testing.assert_allclose(g.theta, theta, rtol=1e-5)


def test_black_scholes_implied_vol_recovers_the_pricing_vol():
    k = np.array([80.0, 95.0, 100.0, 110.0, 130.0])
    sig = np.array([0.45, 0.3, 0.25, 0.22, 0.2])
    for call in (True, False):
        p = price(100.0, k, 0.25, sig, 0.05, 0.01, call)
        np.testing.assert_allclose(implied_vol(p, 100.0, k, 0.25, 0.05, 0.01, call), sig, atol=1e-8)
    assert np.isnan(implied_vol(0.0, 100.0, 50.0, 0.25, 0.0, 0.0, True))  # below intrinsic


def test_black_scholes_expired_option_is_worth_intrinsic_value():
    g = greeks(105.0, np.array([100.0, 110.0]), 0.0, 0.2, 0.05, 0.0, True)
    np.testing.assert_allclose(g.price, [5.0, 0.0])
    np.testing.assert_allclose(g.gamma, [0.0, 0.0])


# -- configuration and calendar --------------------------------------------------------------------


def test_config_bad_values_raise_errors_naming_the_field():
    base = dict(seed=1, symbols=("SPY",), start=dt.date(2024, 3, 4), days=1)
    for change, field in [({"days": 0}, "days"), ({"symbols": ("SPY", "SPY")}, "symbols"), ({"symbols": ()}, "symbols"),
                          ({"seed": -1}, "seed"), ({"clock_ns": 0}, "clock_ns"), ({"symbols": (" SPY",)}, "symbol"),
                          ({"events_per_day": 10}, "events_per_day")]:
        with pytest.raises(ValueError, match=field):
            SyntheticConfig(**{**base, **change})


def test_parse_interval_units_give_ns_and_garbage_is_refused():
    assert syn.parse_interval("1m") == 60 * syn.NS
    assert syn.parse_interval("30s") == 30 * syn.NS
    assert syn.parse_interval("1h") == 3600 * syn.NS
    for bad in ("0m", "5x", "", "m"):
        with pytest.raises(ValueError, match="interval"):
            syn.parse_interval(bad)


def test_sessions_across_dst_switch_keep_new_york_wall_times():
    before, after = syn.trading_sessions(dt.date(2024, 3, 8), 2)  # Friday, then Monday after the switch
    assert (before.date, after.date) == (dt.date(2024, 3, 8), dt.date(2024, 3, 11))
    for s in (before, after):
        assert minutes_of_day([s.start_ns, s.open_ns, s.close_ns, s.post_end_ns, s.end_ns]).tolist() == [
            240, 570, 960, 1200, 1200]
    # the same wall times are an hour earlier in UTC after the switch
    assert pd.Timestamp(before.open_ns, tz="UTC").hour == 14 and pd.Timestamp(after.open_ns, tz="UTC").hour == 13


def test_sessions_on_early_close_day_end_regular_hours_at_1300():
    (s,) = syn.trading_sessions(dt.date(2024, 11, 29), 1)
    assert s.early_close
    assert minutes_of_day([s.open_ns, s.close_ns, s.post_end_ns, s.end_ns]).tolist() == [570, 780, 1020, 1200]


def test_option_expiries_on_good_friday_week_move_to_thursday():
    cal = syn._calendar(dt.date(2024, 3, 25), 5)
    exp = syn.option_expiries(dt.date(2024, 3, 25), cal)
    assert dt.date(2024, 3, 28) in exp and dt.date(2024, 3, 29) not in exp  # Good Friday: Thursday expiry
    assert dt.date(2024, 4, 5) in exp and dt.date(2024, 4, 12) in exp  # weeklies
    assert dt.date(2024, 4, 19) in exp  # April's third Friday (March's is past)
    assert all(e > dt.date(2024, 3, 25) for e in exp) and exp == sorted(exp)


def test_symbol_profile_unknown_symbol_is_stable_and_hash_derived():
    a, b = syn.symbol_profile("ZZQX"), syn.symbol_profile("ZZQX")
    assert a == b and a.key == b.key
    assert 10.0 <= a.price <= 800.0 and 0.18 <= a.vol <= 0.6
    assert syn.symbol_profile("ZZQY").price != a.price
    assert (syn.symbol_profile("SPY").price, syn.symbol_profile("QQQ").price, syn.symbol_profile("IBIT").price) == (
        500.0, 430.0, 40.0)


# -- determinism -------------------------------------------------------------------------------------


def test_write_same_seed_twice_gives_identical_chain_head_and_bytes(tmp_path):
    kw = dict(seed=5, symbols=("SPY", "QQQ"), days=2, options=True)
    a, b = write(tmp_path / "a", **kw), write(tmp_path / "b", **kw)
    assert a == b
    assert chain_head(tmp_path / "a") == chain_head(tmp_path / "b") != bytes(32)
    assert load(tmp_path / "a").body == load(tmp_path / "b").body
    with EventLog.open(tmp_path / "a", readonly=True) as lg:
        assert lg.verify().chain_head == a.chain_head


def test_write_different_seed_gives_different_chain_head_and_prices(tmp_path):
    write(tmp_path / "a", seed=5)
    write(tmp_path / "b", seed=6)
    assert chain_head(tmp_path / "a") != chain_head(tmp_path / "b")
    qa, qb = load(tmp_path / "a").quotes, load(tmp_path / "b").quotes
    assert qa["bid"][-1] != qb["bid"][-1]


def test_write_adding_a_symbol_leaves_the_first_symbols_events_unchanged(tmp_path):
    write(tmp_path / "a", symbols=("SPY",))
    write(tmp_path / "b", symbols=("SPY", "IBIT"))
    qa, qb = load(tmp_path / "a").quotes, load(tmp_path / "b").quotes
    spy_b = qb[qb["instrument_id"] == 0]
    assert len(qa) == len(spy_b) and (qa == spy_b).all()


def test_write_on_existing_log_appends_and_reuses_instrument_ids(tmp_path):
    first = write(tmp_path / "log", symbols=("SPY",))
    second = write(tmp_path / "log", symbols=("SPY", "QQQ"), start=dt.date(2024, 3, 5))
    assert (first.instruments_defined, second.instruments_defined) == (1, 1)
    assert second.symbols == {"SPY": 0, "QQQ": 1} and second.instruments == 2
    assert second.first_offset == first.last_offset + 1
    with EventLog.open(tmp_path / "log", readonly=True) as lg:
        assert lg.verify().ok and lg.symbols() == {0: "SPY", 1: "QQQ"}


def test_write_default_volume_is_50k_to_150k_events_per_symbol_day(tmp_path):
    s = write(tmp_path / "log", events_per_day=syn.DEFAULT_EVENTS_PER_DAY)
    assert 50_000 <= s.quotes + s.trades <= 150_000


# -- the market ---------------------------------------------------------------------------------------


def test_market_fresh_log_verifies_ok_and_summary_matches_info(market):
    path, summary, data = market
    with EventLog.open(path, readonly=True) as lg:
        report, info = lg.verify(), lg.info()
    assert report.ok, report.errors
    assert summary.events == info.events == len(data.heads) == summary.last_offset + 1
    assert summary.instruments == info.instruments == 2 and summary.first_offset == 0
    assert summary.quotes == len(data.quotes) and summary.trades == len(data.trades)
    assert report.chain_head == summary.chain_head
    heads = data.heads
    assert heads["type"][0] == EventType.INSTRUMENT_DEFINED and heads["type"][1] == EventType.INSTRUMENT_DEFINED


def test_market_ts_recv_non_decreasing_and_never_before_ts_event(market):
    _, _, data = market
    h = data.heads
    assert (np.diff(h["ts_recv"]) >= 0).all()
    assert (h["ts_recv"] >= h["ts_event"]).all()
    lat = (h["ts_recv"] - h["ts_event"])[np.isin(h["type"], [EventType.QUOTE, EventType.TRADE])]
    assert 0 < np.median(lat) < 1_000_000  # a feed latency of microseconds, not zero, not seconds


def test_market_quotes_have_positive_bid_below_ask_on_the_tick(market):
    q = market[2].quotes
    assert len(q) > 10_000
    assert (q["bid"] > 0).all() and (q["bid"] < q["ask"]).all()
    for col in ("bid", "ask"):
        cents = q[col] * 100
        assert np.abs(cents - np.round(cents)).max() < 1e-6
        assert (q[col] == np.round(cents) / 100).all()  # exactly the double nearest the decimal price
    assert (q["bid_size"] > 0).all() and (q["bid_size"] % 100 == 0).all()


def test_market_trades_hit_the_prevailing_quote_on_the_aggressor_side(market):
    q, t = market[2].quotes, market[2].trades
    for iid in (0, 1):
        qq, tt = q[q["instrument_id"] == iid], t[t["instrument_id"] == iid]
        assert (np.diff(qq["ts_event"]) >= 0).all()
        j = np.searchsorted(qq["ts_event"], tt["ts_event"], side="right") - 1
        assert (j >= 0).all()
        buy = tt["aggressor"] == AggressorSide.BUYER
        assert set(np.unique(tt["aggressor"]).tolist()) == {AggressorSide.BUYER, AggressorSide.SELLER}
        assert (tt["price"][buy] == qq["ask"][j[buy]]).all()
        assert (tt["price"][~buy] == qq["bid"][j[~buy]]).all()
        assert (np.diff(tt["trade_id"].astype(np.int64)) > 0).all()
        size = tt["size"]
        assert (size > 0).all() and np.percentile(size, 99) > 10 * np.median(size)  # heavy tail


def test_market_over_good_friday_has_no_event_on_holiday_or_weekend(market):
    _, summary, data = market
    assert (summary.first_day, summary.last_day, summary.days) == ("2024-03-28", "2024-04-01", 2)
    dates = set(ny(data.heads["ts_event"]).date)
    assert dates == {dt.date(2024, 3, 28), dt.date(2024, 4, 1)}


def test_market_events_stay_in_04_to_20_and_regular_hours_are_densest(market):
    h = market[2].heads
    mkt = h[np.isin(h["type"], [EventType.QUOTE, EventType.TRADE])]
    m = minutes_of_day(mkt["ts_event"])
    assert m.min() >= 240 and m.max() < 1200
    pre, rth, post = (m < 570), (m >= 570) & (m < 960), (m >= 960)
    rate = [x.sum() / minutes for x, minutes in ((pre, 330), (rth, 390), (post, 240))]
    assert rate[0] > 0 and rate[2] > 0  # extended hours trade ...
    assert rate[0] < 0.1 * rate[1] and rate[2] < 0.1 * rate[1]  # ... but far less
    # denser at the open and the close than at midday
    first, midday, last = ((m >= a) & (m < b) for a, b in ((570, 600), (750, 780), (930, 960)))
    assert first.sum() > 1.5 * midday.sum() and last.sum() > 1.2 * midday.sum()


def test_market_spreads_are_wider_outside_regular_hours(market):
    q = market[2].quotes
    spy = q[q["instrument_id"] == 0]
    m = minutes_of_day(spy["ts_event"])
    ticks = np.round((spy["ask"] - spy["bid"]) * 100)
    rth = (m >= 570) & (m < 960)
    assert ticks[~rth].mean() > 1.5 * ticks[rth].mean()


def test_market_overnight_first_trade_of_day_two_differs_from_last_of_day_one(market):
    t = market[2].trades
    for iid in (0, 1):
        tt = t[t["instrument_id"] == iid]
        days = ny(tt["ts_event"]).date
        last_1 = tt["price"][days == dt.date(2024, 3, 28)][-1]
        first_2 = tt["price"][days == dt.date(2024, 4, 1)][0]
        assert first_2 != last_1


def _minute_abs_return_acf(quotes: np.ndarray | None, r: np.ndarray | None = None) -> tuple[float, np.ndarray]:
    """Mean autocorrelation (lags 1..5) of absolute 1-minute mid returns in regular hours, and the returns."""
    if r is None:
        r = _minute_returns(quotes)
    a = np.abs(r) - np.abs(r).mean()
    return float(np.mean([a[:-k] @ a[k:] / (a @ a) for k in range(1, 6)])), r


def _minute_returns(quotes: np.ndarray) -> np.ndarray:
    mid = (quotes["bid"] + quotes["ask"]) / 2
    minute = quotes["ts_event"] // (60 * syn.NS)
    last = np.flatnonzero(np.diff(minute) != 0)  # the last quote of each minute
    mins, px = minute[last], mid[last]
    m = minutes_of_day(mins * 60 * syn.NS)
    rth = (m >= 570) & (m < 959)
    return np.diff(np.log(px))[(np.diff(mins) == 1) & rth[:-1] & rth[1:]]


def test_market_one_minute_abs_returns_show_volatility_clustering(market):
    q = market[2].quotes
    for iid in (0, 1):
        acf, r = _minute_abs_return_acf(q[q["instrument_id"] == iid])
        assert len(r) > 600
        # i.i.d. returns give 0 +- about 1/sqrt(5 n) (= 0.016 here): the same returns shuffled must not cluster
        shuffled, _ = _minute_abs_return_acf(None, np.random.default_rng(0).permutation(r))
        assert acf > 0.05 and abs(shuffled) < 0.05


def test_market_clock_events_at_every_minute_from_0400_to_2000(market):
    h = market[2].heads
    clocks = h[h["type"] == EventType.CLOCK]
    assert (clocks["instrument_id"] == NO_INSTRUMENT).all() and (clocks["ts_event"] == clocks["ts_recv"]).all()
    expected = np.concatenate([np.arange(syn.ny_ns(d, 4), syn.ny_ns(d, 20) + 1, 60 * syn.NS)
                               for d in (dt.date(2024, 3, 28), dt.date(2024, 4, 1))])
    assert np.array_equal(clocks["ts_event"], expected)
    assert len(expected) == 2 * 961


def test_write_clock_30s_gives_a_clock_every_30_seconds(tmp_path):
    s = write(tmp_path / "log", clock_ns=syn.parse_interval("30s"))
    h = load(tmp_path / "log").heads
    clocks = h["ts_event"][h["type"] == EventType.CLOCK]
    assert s.clocks == len(clocks) == 16 * 120 + 1
    assert (np.diff(clocks) == 30 * syn.NS).all()


def test_write_early_close_day_has_no_events_after_post_market_and_chains_until_1300(tmp_path):
    write(tmp_path / "log", start=dt.date(2024, 11, 29), options=True)
    data = load(tmp_path / "log")
    h = data.heads
    m = minutes_of_day(h["ts_event"][np.isin(h["type"], [EventType.QUOTE, EventType.TRADE])])
    assert m.max() < 17 * 60  # post-market 13:00-17:00 on an early-close day
    assert ((m >= 570) & (m < 780)).sum() > 10 * ((m >= 780) & (m < 1020)).sum()
    snaps = minutes_of_day([c.ts_event for c in data.chains])
    assert snaps.tolist() == [570 + 30 * k for k in range(8)]  # 09:30 .. 13:00


# -- option chains ------------------------------------------------------------------------------------


def test_market_option_chains_every_30_minutes_in_regular_hours(market):
    _, summary, data = market
    assert summary.option_snapshots == len(data.chains) == 2 * 2 * 14
    for c in data.chains:
        assert c.instrument_id in (0, 1)
    m = minutes_of_day([c.ts_event for c in data.chains])
    assert sorted(set(m.tolist())) == [570 + 30 * k for k in range(14)]  # 09:30 .. 16:00


def test_market_option_rows_are_valid_and_expire_fridays_or_holiday_thursdays_at_1600(market):
    for c in market[2].chains:
        rows = c.data["rows"]
        assert c.data["source"] == OptionSource.SYNTHETIC and len(rows) > 50
        assert (rows["source"] == OptionSource.SYNTHETIC).all() and (rows["contract_id"] == NO_INSTRUMENT).all()
        assert set(np.unique(rows["right"]).tolist()) == {OptionRight.CALL, OptionRight.PUT}
        assert (rows["strike"] > 0).all() and (rows["bid"] >= 0).all() and (rows["bid"] <= rows["ask"]).all()
        assert (rows["bid_size"] >= 0).all() and (rows["open_interest"] >= 0).all()
        assert (rows["expiry_ns"] > c.ts_event).all()
        exp = ny(np.unique(rows["expiry_ns"]))
        assert (exp.hour == 16).all() and (exp.minute == 0).all()
        assert set(exp.day_of_week) <= {3, 4} and len(exp) >= 4
        for col in ("iv", "delta", "gamma", "vega", "theta"):
            assert np.isfinite(rows[col]).all()


def _chain_inputs(chain, symbol: str):
    rows = chain.data["rows"]
    s = chain.data["underlying_price"]
    t = (rows["expiry_ns"] - chain.ts_event) / syn.YEAR_NS
    return rows, s, t, syn.DEFAULT_RATE, syn.symbol_profile(symbol).dividend_yield


def test_market_option_put_iv_at_low_strike_exceeds_call_iv_at_high_strike(market):
    for c in market[2].chains:
        rows, s, t, r, q = _chain_inputs(c, "SPY" if c.instrument_id == 0 else "IBIT")
        for e in np.unique(rows["expiry_ns"]):
            ex = rows[rows["expiry_ns"] == e]
            fwd = s * math.exp((r - q) * float(t[rows["expiry_ns"] == e][0]))
            lo = ex["strike"][ex["strike"] <= 0.97 * fwd].max()
            hi = ex["strike"][ex["strike"] >= 1.03 * fwd].min()
            put_lo = ex["iv"][(ex["strike"] == lo) & (ex["right"] == OptionRight.PUT)][0]
            call_hi = ex["iv"][(ex["strike"] == hi) & (ex["right"] == OptionRight.CALL)][0]
            assert put_lo > call_hi


def test_market_option_quotes_bracket_black_scholes_and_put_call_parity(market):
    for c in market[2].chains:
        rows, s, t, r, q = _chain_inputs(c, "SPY" if c.instrument_id == 0 else "IBIT")
        call = rows["right"] == OptionRight.CALL
        g = greeks(s, rows["strike"], t, rows["iv"], r, q, call)
        assert (rows["bid"] <= g.price + 1e-9).all() and (g.price <= rows["ask"] + 1e-9).all()
        np.testing.assert_allclose(rows["delta"], g.delta, atol=1e-12)
        np.testing.assert_allclose(rows["vega"], g.vega, rtol=1e-12)
        # rows come in (call, put) pairs per (expiry, strike): parity within the quoted prices
        c_rows, p_rows = rows[0::2], rows[1::2]
        assert (c_rows["right"] == OptionRight.CALL).all() and (p_rows["strike"] == c_rows["strike"]).all()
        tt = t[0::2]
        parity = s * np.exp(-q * tt) - c_rows["strike"] * np.exp(-r * tt)
        assert (c_rows["bid"] - p_rows["ask"] <= parity + 1e-9).all()
        assert (parity <= c_rows["ask"] - p_rows["bid"] + 1e-9).all()


# -- CLI ------------------------------------------------------------------------------------------------


def test_cli_ingest_synthetic_json_summary_matches_log_info(tmp_path):
    runner = CliRunner()
    res = runner.invoke(cli, ["--data", str(tmp_path), "ingest", "synthetic", "--seed", "3", "--symbols", "SPY,IBIT",
                              "--start", "2024-03-04", "--days", "1", "--options", "--clock", "5m",
                              "--events-per-day", "5000", "--json"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.output)
    info = json.loads(runner.invoke(cli, ["--data", str(tmp_path), "log", "info", "--json"]).output)
    verify = json.loads(runner.invoke(cli, ["--data", str(tmp_path), "log", "verify", "--json"]).output)
    assert summary["events"] == info["events"] == summary["last_offset"] + 1
    assert summary["instruments"] == info["instruments"] == 2
    assert summary["symbols"] == {"SPY": 0, "IBIT": 1}
    assert summary["clocks"] == 16 * 12 + 1 and summary["option_snapshots"] == 2 * 14
    assert verify["ok"] and verify["chain_head"] == summary["chain_head"]


def test_cli_ingest_synthetic_bad_clock_is_a_usage_error(tmp_path):
    res = CliRunner().invoke(cli, ["--data", str(tmp_path), "ingest", "synthetic", "--clock", "soon"])
    assert res.exit_code == 2 and "--clock" in res.output
