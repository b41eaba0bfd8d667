"""Heston analytic prices against published references, edge cases, and chain calibration."""

from __future__ import annotations

import cmath
import math
import warnings

import numpy as np
import pytest
from scipy.integrate import IntegrationWarning, quad

from argus.analytics import black_scholes as bs
from argus.analytics.heston import CalibrationResult, HestonParams, calibrate_heston, heston_price

# Lewis (2000) table (REFERENCES.md): S=100, T=1, r=0.01, q=0.02.
LEWIS = HestonParams(v0=0.04, kappa=4.0, theta=0.25, sigma=1.0, rho=-0.5)
LEWIS_K = np.array([80.0, 90.0, 100.0, 110.0, 120.0])
LEWIS_PUTS = np.array([7.958878113256768, 12.017966707346305, 17.055270961270109,
                       23.017825898442801, 29.811026202682472])
LEWIS_CALLS = np.array([26.774758743998854, 20.933349000596710, 16.070154917028834,
                        12.132211516709845, 9.024913483457836])
LEWIS_IVS = np.array([0.44647, 0.43463, 0.42449, 0.41581, 0.40841])
# Fang & Oosterlee (2008), corrected digits (REFERENCES.md).
FO = HestonParams(v0=0.0175, kappa=1.5768, theta=0.0398, sigma=0.5751, rho=-0.5711)


def _lewis_quad(S, K, T, r, q, p: HestonParams, call=True) -> float:
    """Independent oracle: textbook little-trap CF (Albrecher et al. 2007) with scalar cmath,
    Lewis integral by scipy's adaptive quad at tight tolerance."""

    def cf(u: complex) -> complex:
        b = p.kappa - p.rho * p.sigma * 1j * u
        d = cmath.sqrt(b * b + p.sigma ** 2 * (1j * u + u * u))
        g = (b - d) / (b + d)
        e = cmath.exp(-d * T)
        C = p.kappa * p.theta / p.sigma ** 2 * ((b - d) * T - 2.0 * cmath.log((1 - g * e) / (1 - g)))
        D = (b - d) / p.sigma ** 2 * (1 - e) / (1 - g * e)
        return cmath.exp(C + D * p.v0)

    F = S * math.exp((r - q) * T)
    x = math.log(F / K)

    def f(u: float) -> float:
        return (cmath.exp(1j * u * x) * cf(u - 0.5j)).real / (u * u + 0.25)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", IntegrationWarning)
        val, _ = quad(f, 0.0, np.inf, epsabs=1e-13, epsrel=1e-13, limit=2000)
    c = S * math.exp(-q * T) - math.sqrt(F * K) * math.exp(-r * T) / math.pi * val
    return c if call else c - S * math.exp(-q * T) + K * math.exp(-r * T)


def test_lewis_table_calls_and_puts_to_1e_8():
    calls = heston_price(100.0, LEWIS_K, 1.0, 0.01, 0.02, LEWIS, "call")
    puts = heston_price(100.0, LEWIS_K, 1.0, 0.01, 0.02, LEWIS, "put")
    assert calls.shape == (5,)
    np.testing.assert_allclose(calls, LEWIS_CALLS, rtol=0, atol=1e-8)
    np.testing.assert_allclose(puts, LEWIS_PUTS, rtol=0, atol=1e-8)
    # Mixed rights in one call, vectorised.
    mixed = heston_price(100.0, LEWIS_K, 1.0, 0.01, 0.02, LEWIS, ["c", "p", "CALL", "put", "C"])
    np.testing.assert_allclose(mixed, [LEWIS_CALLS[0], LEWIS_PUTS[1], LEWIS_CALLS[2], LEWIS_PUTS[3],
                                       LEWIS_CALLS[4]], rtol=0, atol=1e-8)
    as_bool = heston_price(100.0, LEWIS_K, 1.0, 0.01, 0.02, LEWIS, np.array([True, False] * 2 + [True]))
    np.testing.assert_allclose(as_bool, mixed, rtol=0, atol=1e-12)


@pytest.mark.parametrize(("T", "ref"), [(1.0, 5.785155434376), (10.0, 22.318945791154)])
def test_fang_oosterlee_to_1e_8(T, ref):
    assert abs(float(heston_price(100.0, 100.0, T, 0.0, 0.0, FO, "call")) - ref) < 1e-8


def test_put_call_parity():
    K = np.linspace(50.0, 200.0, 31)
    for T in (1 / 52, 0.5, 5.0):
        c = heston_price(100.0, K, T, 0.03, 0.01, FO, "call")
        p = heston_price(100.0, K, T, 0.03, 0.01, FO, "put")
        np.testing.assert_allclose(c - p, 100.0 * math.exp(-0.01 * T) - K * math.exp(-0.03 * T), atol=1e-12)
        assert np.all(c >= -1e-12) and np.all(p >= -1e-12)


def test_lewis_implied_vols_slope_down():
    ivs = bs.implied_vol(LEWIS_CALLS, 100.0, LEWIS_K, 1.0, 0.01, 0.02, True)
    model_ivs = bs.implied_vol(heston_price(100.0, LEWIS_K, 1.0, 0.01, 0.02, LEWIS, "call"),
                               100.0, LEWIS_K, 1.0, 0.01, 0.02, True)
    np.testing.assert_allclose(model_ivs, LEWIS_IVS, atol=1e-4)
    np.testing.assert_allclose(model_ivs, ivs, atol=1e-9)
    assert np.all(np.diff(model_ivs) < 0)  # rho < 0: downward skew


def test_little_trap_long_maturity_high_vol_of_vol_matches_quad():
    p = HestonParams(v0=0.04, kappa=0.5, theta=0.04, sigma=1.0, rho=-0.9)
    K = np.array([60.0, 100.0, 160.0])
    for T in (10.0, 30.0):
        got = heston_price(100.0, K, T, 0.02, 0.0, p, "call")
        assert np.all(np.isfinite(got))
        ref = [_lewis_quad(100.0, k, T, 0.02, 0.0, p) for k in K]
        np.testing.assert_allclose(got, ref, rtol=0, atol=1e-8)


def test_short_expiry_has_no_truncation_bias():
    T = 1 / 52
    K = np.array([85.0, 95.0, 100.0, 103.0, 115.0])
    got = heston_price(100.0, K, T, 0.01, 0.02, LEWIS, "call")
    ref = [_lewis_quad(100.0, k, T, 0.01, 0.02, LEWIS) for k in K]
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-9)
    # One-day expiry, near the money: still well above zero and matching the oracle.
    day = float(heston_price(100.0, 100.0, 1 / 365, 0.01, 0.02, LEWIS, "call"))
    assert abs(day - _lewis_quad(100.0, 100.0, 1 / 365, 0.01, 0.02, LEWIS)) < 1e-9


def test_matches_quantlib_when_available():
    ql = pytest.importorskip("QuantLib")
    today = ql.Date(1, 1, 2020)
    ql.Settings.instance().evaluationDate = today
    dc = ql.Actual365Fixed()
    for days in (7, 365, 3650):
        T = days / 365.0
        rts = ql.YieldTermStructureHandle(ql.FlatForward(today, 0.01, dc))
        dts = ql.YieldTermStructureHandle(ql.FlatForward(today, 0.02, dc))
        proc = ql.HestonProcess(rts, dts, ql.QuoteHandle(ql.SimpleQuote(100.0)), LEWIS.v0, LEWIS.kappa,
                                LEWIS.theta, LEWIS.sigma, LEWIS.rho)
        engine = ql.AnalyticHestonEngine(ql.HestonModel(proc), 1e-13, 100000)
        for k in (70.0, 100.0, 130.0):
            for right, qr in (("call", ql.Option.Call), ("put", ql.Option.Put)):
                opt = ql.VanillaOption(ql.PlainVanillaPayoff(qr, k), ql.EuropeanExercise(today + days))
                opt.setPricingEngine(engine)
                got = float(heston_price(100.0, k, T, 0.01, 0.02, LEWIS, right))
                assert abs(got - opt.NPV()) < 1e-9, (days, k, right)


@pytest.mark.parametrize("T", [1 / 52, 1.0, 10.0])
def test_vanishing_vol_of_vol_is_black_scholes_with_average_variance(T):
    p = HestonParams(v0=0.04, kappa=1.5, theta=0.09, sigma=1e-8, rho=-0.7)
    vbar = p.theta + (p.v0 - p.theta) * (1 - math.exp(-p.kappa * T)) / (p.kappa * T)
    K = np.array([70.0, 90.0, 100.0, 110.0, 140.0])
    for right, is_call in (("call", True), ("put", False)):
        got = heston_price(100.0, K, T, 0.03, 0.01, p, right)
        ref = bs.price(100.0, K, T, math.sqrt(vbar), 0.03, 0.01, is_call)
        assert np.all(np.isfinite(got))
        np.testing.assert_allclose(got, ref, rtol=0, atol=1e-7)


def test_feller_property():
    ok, ratio = FO.feller
    assert not ok and ratio == pytest.approx(2 * 1.5768 * 0.0398 / 0.5751 ** 2)
    assert HestonParams(0.04, 2.0, 0.04, 0.3, -0.5).feller == (True, pytest.approx(2 * 2 * 0.04 / 0.09))


@pytest.mark.parametrize(("field", "value", "rule"), [
    ("v0", 0.0, "> 0"), ("kappa", -1.0, "> 0"), ("theta", 0.0, "> 0"), ("sigma", 0.0, "> 0"),
    ("rho", 1.0, "-1 < rho < 1"), ("rho", -1.0, "-1 < rho < 1"), ("v0", float("nan"), "finite"),
])
def test_bad_parameters_refused(field, value, rule):
    kwargs = dict(v0=0.04, kappa=1.0, theta=0.04, sigma=0.5, rho=-0.5)
    kwargs[field] = value
    with pytest.raises(ValueError) as err:
        HestonParams(**kwargs)
    msg = str(err.value)
    assert field in msg and repr(value) in msg and rule in msg


def test_bad_inputs_refused():
    with pytest.raises(ValueError, match="right"):
        heston_price(100.0, 100.0, 1.0, 0.0, 0.0, FO, "straddle")
    with pytest.raises(ValueError, match="T="):
        heston_price(100.0, 100.0, 0.0, 0.0, 0.0, FO, "call")
    with pytest.raises(ValueError, match="K="):
        heston_price(100.0, [100.0, -1.0], 1.0, 0.0, 0.0, FO, "call")


def _chain(p: HestonParams):
    S, r, q = 100.0, 0.02, 0.01
    expiries = np.repeat([0.25, 1.0, 2.0], 9)
    strikes = np.tile(np.linspace(70.0, 130.0, 9), 3)
    rights = np.where(strikes >= 100.0, "call", "put")
    prices = np.empty(27)
    for T in (0.25, 1.0, 2.0):
        m = expiries == T
        prices[m] = heston_price(S, strikes[m], T, r, q, p, rights[m])
    return S, r, q, strikes, expiries, prices, rights


@pytest.mark.parametrize("true", [
    HestonParams(v0=0.04, kappa=2.0, theta=0.06, sigma=0.4, rho=-0.6),  # Feller holds
    HestonParams(v0=0.0175, kappa=1.5768, theta=0.0398, sigma=0.5751, rho=-0.5711),  # Feller fails
])
def test_calibration_recovers_parameters(true):
    S, r, q, strikes, expiries, prices, rights = _chain(true)
    vega = bs.greeks(S, strikes, expiries, 0.2, r, q, True).vega
    res = calibrate_heston(S, r, q, strikes, expiries, prices, rights, weights=1.0 / vega)
    assert isinstance(res, CalibrationResult)
    assert res.success, res.message
    np.testing.assert_allclose(res.params.as_array(), true.as_array(), atol=1e-3)
    assert res.rmse < 1e-6 and res.max_abs_error < 1e-5
    assert res.feller_ok == true.feller[0]
    assert res.feller_ratio == pytest.approx(res.params.feller_ratio)
    assert 0.0 < res.seconds < 10.0 and res.iterations > 0


def test_calibration_deterministic_and_validates():
    true = HestonParams(v0=0.04, kappa=2.0, theta=0.06, sigma=0.4, rho=-0.6)
    S, r, q, strikes, expiries, prices, rights = _chain(true)
    a = calibrate_heston(S, r, q, strikes, expiries, prices, rights)
    b = calibrate_heston(S, r, q, strikes, expiries, prices, rights)
    assert a.params == b.params and a.iterations == b.iterations
    with pytest.raises(ValueError, match="same length"):
        calibrate_heston(S, r, q, strikes, expiries[:-1], prices, rights)


@pytest.mark.parametrize("p", [
    HestonParams(v0=0.04, kappa=4.0, theta=0.25, sigma=1.0, rho=-0.5),
    HestonParams(v0=0.004, kappa=4.3, theta=0.157, sigma=2.34, rho=-0.7),
    HestonParams(v0=0.03, kappa=2.0, theta=0.04, sigma=1e-3, rho=0.3),  # sigma near its lower bound
])
@pytest.mark.parametrize("T", [3 / 365, 0.5, 5.0])
def test_analytic_gradient_of_the_characteristic_function_matches_finite_differences(p, T):
    from argus.analytics.heston import heston_cf, heston_cf_grad

    u = np.array([0.0, 0.3, 1.7, 10.0, 55.0, 400.0]) - 0.5j
    phi, dphi = heston_cf_grad(u, T, p)
    np.testing.assert_array_equal(phi, heston_cf(u, T, p))
    x = p.as_array()
    for j in range(5):
        h = 1e-5 * max(abs(x[j]), 1e-2)
        up, dn = x.copy(), x.copy()
        up[j] += h
        dn[j] -= h
        fd = (heston_cf(u, T, HestonParams(*up)) - heston_cf(u, T, HestonParams(*dn))) / (2 * h)
        np.testing.assert_allclose(dphi[j], fd, rtol=1e-6, atol=1e-9 * max(np.max(np.abs(fd)), 1.0))


def test_calibration_prices_and_jacobian_match_heston_price_and_finite_differences():
    from argus.analytics.heston import _ExpiryGroup

    p = HestonParams(v0=0.0175, kappa=1.5768, theta=0.0398, sigma=0.5751, rho=-0.5711)
    K = np.linspace(70.0, 130.0, 13)
    is_call = K >= 100.0
    for T in (7 / 365, 0.25, 2.0):
        g = _ExpiryGroup(100.0, K, T, 0.02, 0.01, is_call, np.arange(K.size))
        price, jac = g.price_and_jacobian(p)
        np.testing.assert_allclose(price, heston_price(100.0, K, T, 0.02, 0.01, p, is_call), rtol=0, atol=1e-10)
        x = p.as_array()
        for j in range(5):
            h = 1e-5 * abs(x[j])
            up, dn = x.copy(), x.copy()
            up[j] += h
            dn[j] -= h
            fd = (heston_price(100.0, K, T, 0.02, 0.01, HestonParams(*up), is_call)
                  - heston_price(100.0, K, T, 0.02, 0.01, HestonParams(*dn), is_call)) / (2 * h)
            # rtol 1e-5 of each slope; atol: the rounding noise of the price difference over 2h.
            np.testing.assert_allclose(jac[:, j], fd, rtol=1e-5, atol=1e-12 / h)


def test_calibration_of_a_short_dated_chain_is_fast_and_exact():
    """A weekly and a monthly expiry (the slow case of the Lewis integral): recovered to 1e-3 in well under
    a second with the analytic Jacobian (the finite-difference Jacobian took seconds)."""
    true = HestonParams(v0=0.03, kappa=3.0, theta=0.05, sigma=0.7, rho=-0.7)
    S, r, q = 100.0, 0.05, 0.01
    expiries = np.repeat([7 / 365, 30 / 365], 11)
    strikes = np.tile(np.linspace(90.0, 110.0, 11), 2)
    rights = np.where(strikes >= 100.0, "call", "put")
    prices = np.concatenate([heston_price(S, strikes[:11], 7 / 365, r, q, true, rights[:11]),
                             heston_price(S, strikes[11:], 30 / 365, r, q, true, rights[11:])])
    res = calibrate_heston(S, r, q, strikes, expiries, prices, rights)
    assert res.success and res.max_abs_error < 1e-6
    np.testing.assert_allclose(res.params.as_array(), true.as_array(), rtol=1e-3, atol=1e-4)
    assert res.seconds < 2.0
