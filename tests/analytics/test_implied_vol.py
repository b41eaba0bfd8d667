"""The robust implied-volatility solver: round trips, QuantLib as oracle, reason codes, properties."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from argus.analytics.black_scholes import greeks, price
from argus.analytics.implied_vol import MAX_ITERATIONS, IVReason, implied_vol

EPS = np.finfo(np.float64).eps
S, R, Q = 100.0, 0.03, 0.015
STRIKES = np.geomspace(50.0, 200.0, 41)
TIMES = np.array([1 / 365, 7 / 365, 0.25, 1.0, 5.0])
VOLS = np.array([0.05, 0.2, 0.8, 2.0])


def informative(g, s, k, t, r, q, right):
    """Where the price determines the vol to 1e-10: vega above 1e-8·s and 1e-10·vega above the price
    rounding (relative for an OTM price, of the size of max(s, k) for an ITM one)."""
    sign = np.where(np.asarray(right) > 0, 1.0, -1.0)
    itm = sign * (s * np.exp(-q * t) - k * np.exp(-r * t)) > 0
    noise = EPS * (g.price + np.where(itm, np.maximum(s, k), 0.0))
    return (g.vega >= 1e-8 * s) & (g.vega * 1e-10 >= 10.0 * noise)


def _grid():
    k = STRIKES[:, None, None, None]
    t = TIMES[None, :, None, None]
    sig = VOLS[None, None, :, None]
    right = np.array([1, -1])[None, None, None, :]
    return k, t, sig, right


def test_round_trip_on_grid_is_accurate_to_1e_10_wherever_the_price_carries_information():
    k, t, sig, right = _grid()
    g = greeks(S, k, t, sig, R, Q, right)
    vol, reason, iters = implied_vol(g.price, S, k, t, R, Q, right, return_iterations=True)
    info = informative(g, S, k, t, R, Q, right)
    coverage = info.mean()
    assert coverage > 0.6  # measured 0.653: deep ITM/OTM short-dated, low-vol points carry no information
    assert np.all(reason[info] == IVReason.OK)
    assert np.max(np.abs(vol - sig)[info]) < 1e-10
    assert iters.max() < MAX_ITERATIONS
    # Everywhere else the solver still answers OK or says the price is at intrinsic (underflowed time value).
    assert set(np.unique(reason[~info])) <= {IVReason.OK, IVReason.NO_TIME_VALUE}
    assert np.all(np.isnan(vol[reason != IVReason.OK]))
    # And the vol it returns reprices to within the price's rounding.
    ok = reason == IVReason.OK
    back = price(S, k, t, np.where(ok, vol, 0.2), R, Q, right)
    np.testing.assert_allclose(back[ok], np.broadcast_to(g.price, ok.shape)[ok], rtol=1e-12, atol=1e-12 * S)


def test_quantlib_prices_invert_to_the_pricing_vol():
    ql = pytest.importorskip("QuantLib")
    today = ql.Date(15, 1, 2025)
    ql.Settings.instance().evaluationDate = today
    dc = ql.Actual365Fixed()
    vol_q = ql.SimpleQuote(0.2)
    process = ql.BlackScholesMertonProcess(
        ql.QuoteHandle(ql.SimpleQuote(S)),
        ql.YieldTermStructureHandle(ql.FlatForward(today, Q, dc)),
        ql.YieldTermStructureHandle(ql.FlatForward(today, R, dc)),
        ql.BlackVolTermStructureHandle(
            ql.BlackConstantVol(today, ql.NullCalendar(), ql.QuoteHandle(vol_q), dc)
        ),
    )
    engine = ql.AnalyticEuropeanEngine(process)
    rows = []
    for k in (60.0, 80.0, 95.0, 100.0, 110.0, 140.0, 200.0):
        for days in (7, 91, 365, 1825):
            for kind, sign in ((ql.Option.Call, 1), (ql.Option.Put, -1)):
                opt = ql.VanillaOption(ql.PlainVanillaPayoff(kind, k), ql.EuropeanExercise(today + days))
                opt.setPricingEngine(engine)
                for sig in (0.1, 0.3, 0.8, 2.0):
                    vol_q.setValue(sig)
                    npv = opt.NPV()
                    ql_iv = np.nan
                    if npv > 1e-6:
                        vol_q.setValue(0.5)
                        ql_iv = opt.impliedVolatility(npv, process, 1e-14, 1000, 1e-4, 4.0)
                    rows.append((npv, k, days / 365.0, sign, sig, ql_iv))
    npv, k, t, sign, sig, ql_iv = (np.array(c) for c in zip(*rows, strict=True))
    vol, reason = implied_vol(npv, S, k, t, R, Q, sign)
    g = greeks(S, k, t, sig, R, Q, sign)
    # QuantLib's tiny OTM prices are accurate to ~eps·S absolute (not relative): that is their rounding.
    info = informative(g, S, k, t, R, Q, sign) & (g.vega * 1e-10 >= 10.0 * EPS * np.maximum(S, k))
    assert info.mean() > 0.7
    assert np.all(reason[info] == IVReason.OK)
    assert np.max(np.abs(vol - sig)[info]) < 1e-10
    # QuantLib's own solver (Brent) as a second oracle, where it converged.
    both = info & np.isfinite(ql_iv)
    assert both.sum() > 100
    assert np.max(np.abs(vol - ql_iv)[both]) < 1e-10


def test_reason_codes_and_nan_outside_no_arbitrage_bounds():
    t, k = 0.5, 100.0
    df_r, df_q = np.exp(-R * t), np.exp(-Q * t)
    call_intr = S * df_q - k * df_r
    cases = [
        # (price, s, k, t, right, reason)
        (call_intr - 1e-3, S, k, t, 1, IVReason.BELOW_INTRINSIC),
        (-0.01, S, 120.0, t, 1, IVReason.BELOW_INTRINSIC),
        (-0.01, S, 80.0, t, -1, IVReason.BELOW_INTRINSIC),
        (S * df_q, S, k, t, 1, IVReason.ABOVE_MAX),
        (S * df_q + 1.0, S, k, t, 1, IVReason.ABOVE_MAX),
        (k * df_r, S, k, t, -1, IVReason.ABOVE_MAX),
        (5.0, S, k, 0.0, 1, IVReason.NO_TIME_VALUE),
        (5.0, S, k, -0.1, -1, IVReason.NO_TIME_VALUE),
        (0.0, S, 150.0, t, 1, IVReason.NO_TIME_VALUE),
        (call_intr, S, k, t, 1, IVReason.NO_TIME_VALUE),
        (np.nan, S, k, t, 1, IVReason.BAD_INPUT),
        (5.0, 0.0, k, t, 1, IVReason.BAD_INPUT),
        (5.0, S, -1.0, t, 1, IVReason.BAD_INPUT),
        (5.0, np.inf, k, t, 1, IVReason.BAD_INPUT),
        (price(S, k, t, 0.25, R, Q, 1), S, k, t, 1, IVReason.OK),
    ]
    p, s, kk, tt, right, want = (np.array(c) for c in zip(*cases, strict=True))
    vol, reason = implied_vol(p, s, kk, tt, R, Q, right)
    assert reason.dtype.kind == "i"
    np.testing.assert_array_equal(reason, want)
    assert np.all(np.isnan(vol[want != IVReason.OK]))
    assert vol[-1] == pytest.approx(0.25, abs=1e-12)
    # Scalars in, 0-d arrays out; strings accepted for the right.
    v, why = implied_vol(float(price(S, 90.0, 1.0, 0.3, R, Q, "put")), S, 90.0, 1.0, R, Q, "put")
    assert why == IVReason.OK and abs(float(v) - 0.3) < 1e-12


def test_calls_and_puts_related_by_parity_give_the_same_vol():
    k = STRIKES
    t = 0.75
    call = price(S, k, t, 0.35, R, Q, 1)
    put_from_parity = call - S * np.exp(-Q * t) + k * np.exp(-R * t)
    v_call, r_call = implied_vol(call, S, k, t, R, Q, "call")
    v_put, r_put = implied_vol(put_from_parity, S, k, t, R, Q, "put")
    assert np.all(r_call == IVReason.OK) and np.all(r_put == IVReason.OK)
    np.testing.assert_allclose(v_call, 0.35, atol=1e-11)
    np.testing.assert_allclose(v_put, v_call, atol=1e-11)


@settings(max_examples=300, deadline=None)
@given(
    s=st.floats(1.0, 1e4),
    moneyness=st.floats(-1.2, 1.2),
    t=st.floats(1 / 365, 10.0),
    sig=st.floats(0.01, 3.0),
    r=st.floats(-0.02, 0.12),
    q=st.floats(0.0, 0.08),
    right=st.sampled_from([1, -1]),
)
def test_property_round_trip_reproduces_price_where_vega_is_above_the_floor(
    s, moneyness, t, sig, r, q, right
):
    k = s * np.exp(moneyness)
    g = greeks(s, k, t, sig, r, q, right)
    vol, reason = implied_vol(g.price, s, k, t, r, q, right)
    if informative(g, s, k, t, r, q, right):
        assert reason == IVReason.OK
        assert abs(float(vol) - sig) < 1e-10
        back = float(price(s, k, t, float(vol), r, q, right))
        assert back == pytest.approx(float(g.price), rel=1e-10)
    else:
        assert reason in (IVReason.OK, IVReason.NO_TIME_VALUE)
