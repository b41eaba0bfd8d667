"""Vectorised Black–Scholes prices and greeks against QuantLib and finite differences."""

from __future__ import annotations

import numpy as np
import pytest

from argus.analytics.black_scholes import greeks, price, right_sign

S, R, Q = 100.0, 0.03, 0.015
STRIKES = np.array([50.0, 60.0, 70.0, 80.0, 90.0, 95.0, 100.0, 105.0, 110.0, 125.0, 150.0, 175.0, 200.0])
DAYS = np.array([1, 7, 91, 365, 1825])  # Actual/365 Fixed: 1/365, 7/365, ~0.25, 1 and 5 years
VOLS = np.array([0.05, 0.2, 0.8, 2.0])
FIELDS = ("price", "delta", "gamma", "vega", "theta", "rho")


def _quantlib_grid():
    ql = pytest.importorskip("QuantLib")
    today = ql.Date(15, 1, 2025)
    ql.Settings.instance().evaluationDate = today
    dc = ql.Actual365Fixed()
    vol = ql.SimpleQuote(0.2)
    process = ql.BlackScholesMertonProcess(
        ql.QuoteHandle(ql.SimpleQuote(S)),
        ql.YieldTermStructureHandle(ql.FlatForward(today, Q, dc)),
        ql.YieldTermStructureHandle(ql.FlatForward(today, R, dc)),
        ql.BlackVolTermStructureHandle(
            ql.BlackConstantVol(today, ql.NullCalendar(), ql.QuoteHandle(vol), dc)
        ),
    )
    engine = ql.AnalyticEuropeanEngine(process)
    out = {f: np.empty((len(STRIKES), len(DAYS), len(VOLS), 2)) for f in FIELDS}
    for i, k in enumerate(STRIKES):
        for j, d in enumerate(DAYS):
            for c, kind in enumerate((ql.Option.Call, ql.Option.Put)):
                opt = ql.VanillaOption(
                    ql.PlainVanillaPayoff(kind, float(k)), ql.EuropeanExercise(today + int(d))
                )
                opt.setPricingEngine(engine)
                for m, sig in enumerate(VOLS):
                    vol.setValue(float(sig))
                    for f, fn in zip(
                        FIELDS, (opt.NPV, opt.delta, opt.gamma, opt.vega, opt.theta, opt.rho), strict=True
                    ):
                        out[f][i, j, m, c] = fn()
    return out


def _ours():
    k = STRIKES[:, None, None, None]
    t = (DAYS / 365.0)[None, :, None, None]
    sig = VOLS[None, None, :, None]
    right = np.array([1, -1])[None, None, None, :]
    return greeks(S, k, t, sig, R, Q, right)


def test_prices_and_greeks_match_quantlib_analytic_european_engine():
    ref = _quantlib_grid()
    ours = _ours()
    # Absolute floors: the size of each quantity times ~1e-12 (prices and their rounding scale with S).
    floors = {"price": 1e-10, "delta": 1e-12, "gamma": 1e-12, "vega": 1e-10, "theta": 1e-9, "rho": 1e-10}
    for f in FIELDS:
        got = getattr(ours, f)
        assert np.all(np.isfinite(got)), f
        np.testing.assert_allclose(got, ref[f], rtol=1e-10, atol=floors[f], err_msg=f)


def test_greeks_match_finite_differences_on_a_grid():
    k = STRIKES[:, None, None, None]
    t = np.array([7 / 365, 0.25, 1.0, 5.0])[None, :, None, None]
    sig = VOLS[None, None, :, None]
    right = np.array(["call", "put"])[None, None, None, :]
    g = greeks(S, k, t, sig, R, Q, right)
    hs, hv, ht, hr = 1e-3, 1e-5, 1e-6, 1e-6
    fd_delta = (price(S + hs, k, t, sig, R, Q, right) - price(S - hs, k, t, sig, R, Q, right)) / (2 * hs)
    fd_gamma = (
        price(S + hs, k, t, sig, R, Q, right)
        - 2 * price(S, k, t, sig, R, Q, right)
        + price(S - hs, k, t, sig, R, Q, right)
    ) / hs**2
    fd_vega = (price(S, k, t, sig + hv, R, Q, right) - price(S, k, t, sig - hv, R, Q, right)) / (2 * hv)
    fd_theta = -(price(S, k, t + ht, sig, R, Q, right) - price(S, k, t - ht, sig, R, Q, right)) / (2 * ht)
    fd_rho = (price(S, k, t, sig, R + hr, Q, right) - price(S, k, t, sig, R - hr, Q, right)) / (2 * hr)
    np.testing.assert_allclose(g.delta, fd_delta, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(g.gamma, fd_gamma, rtol=1e-3, atol=1e-5)
    np.testing.assert_allclose(g.vega, fd_vega, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(g.theta, fd_theta, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(g.rho, fd_rho, rtol=1e-6, atol=1e-6)


def test_rights_accept_bools_signs_and_strings():
    k = np.array([90.0, 110.0])
    want = greeks(S, k, 0.5, 0.3, R, Q, np.array([True, False]))
    for right in (np.array([1, -1]), np.array([1.0, -1.0]), np.array(["call", "put"]), np.array(["C", " p"])):
        np.testing.assert_array_equal(greeks(S, k, 0.5, 0.3, R, Q, right).price, want.price)
    assert price(S, 100.0, 0.5, 0.3, R, Q, "put") == price(S, 100.0, 0.5, 0.3, R, Q, False)
    assert price(S, 100.0, 0.5, 0.3, R, Q, -1) == price(S, 100.0, 0.5, 0.3, R, Q, False)
    np.testing.assert_array_equal(right_sign(["call", "put", "c"]), [1.0, -1.0, 1.0])
    for bad in (0, 2, "straddle", np.array([1, 0])):
        with pytest.raises(ValueError):
            right_sign(bad)


def test_zero_time_and_zero_vol_give_discounted_forward_intrinsic_without_nan():
    k = STRIKES
    for call in (1, -1):
        expired = greeks(S, k, 0.0, 0.3, R, Q, call)
        np.testing.assert_allclose(expired.price, np.maximum(call * (S - k), 0.0))
        no_vol = greeks(S, k, 2.0, 0.0, R, Q, call)
        fwd_intr = np.maximum(call * (S * np.exp(-2 * Q) - k * np.exp(-2 * R)), 0.0)
        np.testing.assert_allclose(no_vol.price, fwd_intr, rtol=1e-15)
        itm = fwd_intr > 0
        np.testing.assert_allclose(no_vol.delta, np.where(itm, call * np.exp(-2 * Q), 0.0))
        np.testing.assert_allclose(no_vol.rho, np.where(itm, call * k * 2.0 * np.exp(-2 * R), 0.0))
        # The zero-vol limit is the small-vol limit.
        tiny = greeks(S, k, 2.0, 1e-9, R, Q, call)
        np.testing.assert_allclose(tiny.price, no_vol.price, atol=1e-12)
        np.testing.assert_allclose(tiny.theta, no_vol.theta, atol=1e-9)
        for g in (expired, no_vol):
            for f in FIELDS:
                assert np.all(np.isfinite(getattr(g, f))), f
            np.testing.assert_array_equal(g.gamma, 0.0)
            np.testing.assert_array_equal(g.vega, 0.0)


def test_extreme_valid_inputs_give_no_nan():
    k = np.array([1e-6, 1.0, 100.0, 1e6])[:, None]
    sig = np.array([1e-12, 1e-3, 10.0, 100.0])[None, :]
    for t in (1e-12, 1 / 365, 50.0):
        for call in (True, False):
            g = greeks(S, k, t, sig, R, Q, call)
            for f in FIELDS:
                assert np.all(np.isfinite(getattr(g, f))), (f, t, call)
