"""SVI fits, static-arbitrage checks and quote anomalies (argus.options.surface), on synthetic and real SPX data."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest

from argus.analytics.black_scholes import price as bs_price
from argus.connectors.option_chains import OptionChainOptions, ingest_option_chains
from argus.events.types import EventType
from argus.log import EventLog
from argus.options.surface import (
    ANOMALY_DTYPE,
    FLAG_CALENDAR,
    FLAG_OUTLIER,
    butterfly_g,
    butterfly_violations,
    calendar_violations,
    fit_svi,
    iv_agreement,
    surface_from_chain,
    svi_total_variance,
)

# Gatheral & Jacquier (2014), example 3.1 (Axel Vogt's parameters, T = 1): butterfly arbitrage.
GJ_ARB = (-0.0410, 0.1331, 0.3060, 0.3586, 0.4153)  # a, b, rho, m, sigma
CLEAN = (0.02, 0.1, -0.4, 0.05, 0.15)


def _call_density(params, k):
    """d²C/dK² of undiscounted calls (F = 1, T = 1) priced with the SVI slice's vol, by central differences."""
    strikes = np.exp(k)
    h = 1e-3
    c = [bs_price(1.0, strikes + d, 1.0, np.sqrt(svi_total_variance(np.log(strikes + d), *params)), 0.0, 0.0, True)
         for d in (-h, 0.0, h)]
    return (c[0] - 2 * c[1] + c[2]) / (h * h)


def test_svi_round_trip_recovers_parameters():
    truth = (0.01, 0.2, -0.5, 0.02, 0.1)
    k = np.linspace(-0.6, 0.4, 41)
    fit = fit_svi(k, svi_total_variance(k, *truth))
    assert fit.success
    assert fit.rmse < 1e-9
    np.testing.assert_allclose(fit.params, truth, atol=1e-5)
    assert fit.a + fit.b * fit.sigma * np.sqrt(1 - fit.rho**2) >= 0


def test_fit_svi_too_few_points_is_not_a_success():
    assert not fit_svi([0.0, 0.1], [0.01, 0.02]).success


def test_butterfly_g_clean_set_is_arbitrage_free():
    k = np.linspace(-1.5, 1.5, 601)
    assert butterfly_g(k, CLEAN).min() >= 0
    assert not butterfly_violations(CLEAN, k).any()
    assert (_call_density(CLEAN, k) > -1e-6).all()


def test_butterfly_g_detects_gatheral_jacquier_arbitrage_and_density_agrees():
    k = np.linspace(-1.5, 1.5, 601)
    g = butterfly_g(k, GJ_ARB)
    bad = butterfly_violations(GJ_ARB, k)
    assert bad.any() and g.min() < 0
    density = _call_density(GJ_ARB, k)
    # Where g < 0 clearly, calls are concave in strike (negative density); where g > 0 clearly, convex.
    assert (density[g < -1e-3] < 0).all()
    assert (density[g > 1e-3] > 0).all()


def test_calendar_violation_detected():
    k = np.linspace(-0.5, 0.5, 21)
    short = (0.01, 0.1, -0.3, 0.0, 0.1)
    long_ok = (0.03, 0.1, -0.3, 0.0, 0.1)
    later_bad = (0.005, 0.1, -0.3, 0.0, 0.1)  # below the 1st expiry everywhere
    out = calendar_violations({1: short, 2: long_ok}, k)
    assert not out[1].any() and not out[2].any()
    out = calendar_violations({3: later_bad, 1: short, 2: long_ok}, k)
    assert not out[1].any() and not out[2].any() and out[3].all()


def _synthetic_chain(ts_ns: int, expiries, spot=100.0):
    rows = []
    dtype = np.dtype([("expiry_ns", "<i8"), ("strike", "<f8"), ("bid", "<f8"), ("ask", "<f8"), ("iv", "<f8"),
                      ("right", "<u2")])
    for e, params in expiries:
        t = (e - ts_ns) / (365.0 * 86400e9)
        for strike in np.arange(60.0, 141.0, 2.5):
            vol = np.sqrt(svi_total_variance(np.log(strike / spot), *params) / t)
            for right in (1, 2):
                p = float(bs_price(spot, strike, t, vol, 0.0, 0.0, right == 1))
                rows.append((e, strike, p * 0.995, p * 1.005, vol, right))
    return np.array(rows, dtype=dtype)


def test_surface_from_synthetic_chain_flags_calendar_and_outlier():
    ts = 0
    day = 86400 * 10**9
    e1, e2 = 30 * day, 60 * day
    rows = _synthetic_chain(ts, [(e1, (0.004, 0.04, -0.5, 0.0, 0.1)), (e2, (0.001, 0.04, -0.5, 0.0, 0.1))])
    bump = (rows["expiry_ns"] == e2) & (rows["strike"] == 120.0) & (rows["right"] == 1)
    rows["bid"][bump] *= 1.5
    rows["ask"][bump] *= 1.5
    res = surface_from_chain(rows, 100.0, ts)
    rec = res.records
    assert rec.dtype == ANOMALY_DTYPE
    assert all(f.success for f in res.fits.values())
    assert abs(res.forwards[e1] - 100.0) < 1e-6
    first = rec["expiry_ns"] == e1
    assert np.nanmax(np.abs(rec["residual"][first])) < 1e-3
    assert (rec["flags"][~first] & FLAG_CALENDAR).any()  # the later expiry has less total variance
    hit = rec[(rec["expiry_ns"] == e2) & (rec["strike"] == 120.0)]
    assert hit["flags"][0] & FLAG_OUTLIER


# ---- real data: optopsy SPX 2018 (SPXW end of day, one expiry a day) ----

_CACHE: dict = {}


def _snapshots(path):
    if path not in _CACHE:
        import tempfile

        with tempfile.TemporaryDirectory() as d:
            log = EventLog.open(f"{d}/log")
            try:
                ingest_option_chains(log, path, OptionChainOptions(symbol="SPX"))
                snaps = {}
                for _, ev in log.events():
                    if ev.type == EventType.OPTION_CHAIN_SNAPSHOT:
                        day = pd.Timestamp(ev.ts_event, tz="UTC").tz_convert("America/New_York").date().isoformat()
                        snaps[day] = (np.array(ev.data["rows"]), float(ev.data["underlying_price"]), ev.ts_event)
            finally:
                log.close()
        _CACHE[path] = snaps
    return _CACHE[path]


@pytest.fixture
def spx(shared_data):
    path = shared_data / "optopsy__SPX_2018.csv"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    return _snapshots(str(path))


DAYS = ("2018-01-02", "2018-02-05", "2018-02-06")


def test_spx_surface_fits_agreement_and_vol_jump(spx):
    out = {}
    for day in DAYS:
        rows, spot, ts = spx[day]
        res = surface_from_chain(rows, spot, ts)
        (e, fit), = res.fits.items()
        assert fit.success
        atm_w = float(svi_total_variance(0.0, *fit.params))
        rec = res.records
        ok = np.isfinite(rec["residual"])
        iv_rmse = float(np.sqrt(np.mean(rec["residual"][ok] ** 2)))
        agree = iv_agreement(rows, spot, ts, surface=res)
        n_flag = int((rec["flags"] != 0).sum())
        out[day] = (fit.rmse, atm_w, iv_rmse, agree, res.atm_iv()[e], n_flag, len(rec))
        print(day, f"rmse_w={fit.rmse:.2e} atm_w={atm_w:.2e} rmse_iv={iv_rmse:.4f} atm_iv={res.atm_iv()[e]:.4f} "
              f"agree={agree} flagged={n_flag}/{len(rec)}")
        assert iv_rmse < 0.03  # median-quality fit in vol terms (wings included)
        assert agree.count > 100
        assert n_flag < 0.1 * len(rec)
    # Calm day and the day after the spike: mid IV within 2 vol points of the vendor's (median).
    assert out["2018-01-02"][3].median < 0.02
    assert out["2018-02-06"][3].median < 0.02
    # On 02-05 the vendor's IVs use the stale close (2648.98) as forward while the option quotes imply
    # ~2629 (put-call parity): their puts and calls disagree with each other, so agreement is looser.
    assert out["2018-02-05"][3].median < 0.05
    assert out["2018-01-02"][0] < 1e-3
    # The volatility regime change: ATM IV after the 2018-02-05 selloff far above early January's.
    assert out["2018-02-06"][4] > 2 * out["2018-01-02"][4]
    assert out["2018-02-05"][4] > out["2018-02-06"][4] > out["2018-01-02"][4]


def test_spx_anomaly_records_are_deterministic(spx):
    for day in DAYS:
        rows, spot, ts = spx[day]
        a = surface_from_chain(rows, spot, ts).records
        b = surface_from_chain(rows.copy(), spot, ts).records
        assert hashlib.sha256(a.tobytes()).digest() == hashlib.sha256(b.tobytes()).digest()


def test_spx_expiry_day_placeholder_chain_has_no_surface(spx):
    rows, spot, ts = spx["2018-01-31"]  # every contract expires that day, vendor IV 0.30 placeholders
    res = surface_from_chain(rows, spot, ts)
    assert len(res.records) == 0
    assert iv_agreement(rows, spot, ts).count == 0
