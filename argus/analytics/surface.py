"""Implied-volatility surface: per-expiry raw SVI fits, static-arbitrage checks and quote anomalies.

Raw SVI (Gatheral 2004) gives the total implied variance w = σ_imp²·T at log-moneyness k = ln(K/F):

    w(k) = a + b·(ρ·(k - m) + √((k - m)² + σ²)),   b >= 0, |ρ| < 1, σ > 0, a + b·σ·√(1 - ρ²) >= 0

(the last condition is min_k w(k) >= 0). `fit_svi` fits it by `scipy.optimize.least_squares` in the
reparametrisation (c, b, ρ, m, σ) with c = a + b·σ·√(1-ρ²) = min w, so every constraint is a box bound;
a few fixed, data-scaled starts are tried and the best kept (deterministic).

Static arbitrage (Gatheral & Jacquier 2014, "Arbitrage-free SVI volatility surfaces"):
- butterfly: the risk-neutral density is proportional to
  g(k) = (1 - k·w'/(2w))² - (w'²/4)·(1/w + 1/4) + w''/2, so a slice is free of butterfly arbitrage
  iff g(k) >= 0 for every k (`butterfly_g`, `butterfly_violations`);
- calendar: total variance must be non-decreasing in expiry at every k (`calendar_violations`).

`surface_from_chain(rows, spot, ts_ns)` takes one OptionChainSnapshot's rows (OPTION_ROW_DTYPE):
per expiry it estimates the forward from put–call parity of near-ATM pairs (else spot·e^{(r-q)T}),
inverts bid, ask and mid of the out-of-the-money quotes to IV with `argus.analytics.implied_vol`
(quotes with a zero bid get no bid or mid IV), fits one SVI slice to the chosen side's total variance,
and emits one derived anomaly record per OTM quote (ANOMALY_DTYPE): residual IV (quote - fit), its
robust z score within the expiry ((x - median) / (1.4826·MAD)) and flag bits (FLAG_*).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
from scipy.optimize import least_squares

from argus.analytics.implied_vol import IVReason, implied_vol
from argus.events.types import OptionRight

#: Year fraction of one nanosecond (ACT/365).
YEAR_NS = 365.0 * 86400.0 * 1e9
MAD_SCALE = 1.4826
MIN_FIT_POINTS = 5

# Anomaly flag bits.
FLAG_OUTLIER = 1  # |robust z| of the residual IV above the threshold
FLAG_BUTTERFLY = 2  # the expiry's SVI fit has g(k) < 0 at the quote's k
FLAG_CALENDAR = 4  # the fit's total variance at the quote's k is below an earlier expiry's
FLAG_NO_FIT = 8  # too few valid quotes in the expiry (or the fit failed): no fitted IV

ANOMALY_DTYPE = np.dtype([
    ("expiry_ns", "<i8"),
    ("strike", "<f8"),
    ("right", "<u2"),
    ("k", "<f8"),  # ln(K / F)
    ("iv_mid", "<f8"),
    ("iv_bid", "<f8"),
    ("iv_ask", "<f8"),
    ("iv_vendor", "<f8"),
    ("iv_fit", "<f8"),
    ("residual", "<f8"),  # quote IV (the side fitted) - iv_fit
    ("robust_z", "<f8"),
    ("flags", "<u4"),
])


class SviFit(NamedTuple):
    a: float
    b: float
    rho: float
    m: float
    sigma: float
    rmse: float  # in total variance
    success: bool

    @property
    def params(self) -> tuple[float, float, float, float, float]:
        return (self.a, self.b, self.rho, self.m, self.sigma)


def _params(p) -> tuple[float, float, float, float, float]:
    if isinstance(p, SviFit):
        return p.params
    a, b, rho, m, sigma = (float(x) for x in p)
    return a, b, rho, m, sigma


def svi_total_variance(k, a, b, rho, m, sigma) -> np.ndarray:
    """Raw SVI total variance w(k) = a + b(ρ(k-m) + √((k-m)² + σ²))."""
    x = np.asarray(k, dtype=np.float64) - m
    return a + b * (rho * x + np.sqrt(x * x + sigma * sigma))


def svi_derivatives(k, params) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(w, w', w'') of an SVI slice at k."""
    a, b, rho, m, sigma = _params(params)
    x = np.asarray(k, dtype=np.float64) - m
    root = np.sqrt(x * x + sigma * sigma)
    w = a + b * (rho * x + root)
    w1 = b * (rho + x / root)
    w2 = b * sigma * sigma / root**3
    return w, w1, w2


def butterfly_g(k, params) -> np.ndarray:
    """Gatheral's density function g(k); the slice is butterfly-arbitrage free iff g >= 0 everywhere.

    Where w(k) <= 0 (no positive variance) g is -inf."""
    w, w1, w2 = svi_derivatives(k, params)
    k = np.asarray(k, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        g = (1.0 - k * w1 / (2.0 * w)) ** 2 - 0.25 * w1 * w1 * (1.0 / w + 0.25) + 0.5 * w2
    return np.where(w > 0, g, -np.inf)


def butterfly_violations(params, k_grid, tol: float = 1e-12) -> np.ndarray:
    """Boolean mask over k_grid: True where g(k) < -tol (butterfly arbitrage)."""
    return butterfly_g(k_grid, params) < -tol


def calendar_violations(fits_by_expiry: Mapping, k_grid, tol: float = 1e-12) -> dict:
    """{expiry: boolean mask over k_grid}, True where that expiry's total variance is below the
    total variance of some earlier expiry (keys are ordered: expiry ns or year fractions)."""
    k_grid = np.asarray(k_grid, dtype=np.float64)
    out = {}
    running = np.full(k_grid.shape, -np.inf)
    for key in sorted(fits_by_expiry):
        w = svi_total_variance(k_grid, *_params(fits_by_expiry[key]))
        out[key] = w < running - tol
        running = np.maximum(running, w)
    return out


def _to_raw(z: np.ndarray) -> tuple[float, float, float, float, float]:
    c, b, rho, m, sigma = (float(v) for v in z)
    return c - b * sigma * np.sqrt(1.0 - rho * rho), b, rho, m, sigma


def _grid_starts(k, w, sw, lo, hi, n_keep: int = 3) -> list[np.ndarray]:
    """Quasi-explicit starts (Zeliade): for (m, σ) on a fixed grid w is linear in (a, bρ, b); solve that
    weighted linear least squares, project onto the constraints, keep the n_keep cheapest."""
    span = float(k[-1] - k[0]) or 1e-3
    cands = []
    for m in np.linspace(float(k[0]) - 0.25 * span, float(k[-1]) + 0.25 * span, 13):
        x = k - m
        for sigma in span * np.geomspace(0.01, 2.0, 10):
            design = np.column_stack([np.ones_like(k), x, np.sqrt(x * x + sigma * sigma)]) * sw[:, None]
            (a, d, c), *_ = np.linalg.lstsq(design, sw * w, rcond=None)
            b = max(float(c), 1e-8)
            rho = float(np.clip(d / b, -0.99, 0.99))
            z = np.clip(np.array([a + b * sigma * np.sqrt(1 - rho * rho), b, rho, m, sigma]), lo, hi)
            cost = float(np.sum((sw * (svi_total_variance(k, *_to_raw(z)) - w)) ** 2))
            cands.append((cost, len(cands), z))
    cands.sort(key=lambda t: (t[0], t[1]))
    return [np.clip(z, lo + 1e-12 * (hi - lo), hi - 1e-12 * (hi - lo)) for _, _, z in cands[:n_keep]]


def fit_svi(k, w, weights=None, *, loss: str = "linear") -> SviFit:
    """Least-squares raw SVI fit of total variances w at log-moneyness k (a few fixed starts, best kept).

    Constraints: b >= 0, |ρ| <= 0.999, σ >= 1e-4, a + bσ√(1-ρ²) >= 0. rmse is the (weighted) root mean
    square error in total variance (unweighted). weights multiply the squared residuals. success is False with fewer than 5 finite points."""
    k = np.asarray(k, dtype=np.float64).ravel()
    w = np.asarray(w, dtype=np.float64).ravel()
    sw = np.ones_like(k) if weights is None else np.sqrt(np.asarray(weights, dtype=np.float64).ravel())
    ok = np.isfinite(k) & np.isfinite(w) & np.isfinite(sw) & (sw > 0)
    k, w, sw = k[ok], w[ok], sw[ok]
    nan = float("nan")
    if len(k) < MIN_FIT_POINTS:
        return SviFit(nan, nan, nan, nan, nan, nan, False)
    order = np.argsort(k, kind="stable")
    k, w, sw = k[order], w[order], sw[order]
    span = max(float(k[-1] - k[0]), 1e-3)
    wmax = max(float(w.max()), 1e-8)
    lo = np.array([0.0, 0.0, -0.999, float(k[0]) - 2 * span, 1e-4 * span])
    hi = np.array([wmax * 2 + 1e-8, 1000.0 * wmax / span + 10.0, 0.999, float(k[-1]) + 2 * span, 10.0 * span])
    starts = _grid_starts(k, w, sw, lo, hi)

    def resid(z):
        return sw * (svi_total_variance(k, *_to_raw(z)) - w)

    best = None
    for z0 in starts:
        r = least_squares(resid, z0, bounds=(lo, hi), loss=loss, f_scale=max(1e-3 * wmax, 1e-12),
                          x_scale="jac", ftol=1e-15, xtol=1e-15, gtol=1e-15, max_nfev=500)
        cost = float(np.sum(resid(r.x) ** 2))
        if best is None or cost < best[0]:
            best = (cost, r)
    cost, r = best
    a, b, rho, m, sigma = _to_raw(r.x)
    rmse = float(np.sqrt(np.mean((svi_total_variance(k, a, b, rho, m, sigma) - w) ** 2)))
    return SviFit(a, b, rho, m, sigma, rmse, bool(r.status >= 0 and np.isfinite(rmse)))


@dataclass
class SurfaceResult:
    ts_ns: int
    spot: float
    price: str
    fits: dict = field(default_factory=dict)  # expiry_ns -> SviFit
    forwards: dict = field(default_factory=dict)  # expiry_ns -> forward
    forward_from_parity: dict = field(default_factory=dict)  # expiry_ns -> bool
    t: dict = field(default_factory=dict)  # expiry_ns -> year fraction
    records: np.ndarray = field(default_factory=lambda: np.zeros(0, ANOMALY_DTYPE))

    def atm_iv(self) -> dict:
        """{expiry_ns: fitted IV at k = 0}."""
        out = {}
        for e, f in self.fits.items():
            w0 = float(svi_total_variance(0.0, *f.params))
            out[e] = float(np.sqrt(w0 / self.t[e])) if f.success and w0 > 0 else float("nan")
        return out

    def flagged(self, flag: int = FLAG_OUTLIER | FLAG_BUTTERFLY | FLAG_CALENDAR) -> np.ndarray:
        return self.records[(self.records["flags"] & flag) != 0]


def _iv(px, spot, strike, t, r, q_eff, is_call, valid) -> np.ndarray:
    vol, reason = implied_vol(np.where(valid, px, np.nan), spot, strike, t, r, q_eff, is_call)
    return np.where(valid & (reason == int(IVReason.OK)), vol, np.nan)


def _forward(strike, bid, ask, is_call, spot, t, r, q) -> tuple[float, bool]:
    """Forward from put-call parity C - P = e^{-rT}(F - K) of the pairs nearest the money."""
    good = (bid > 0) & (ask >= bid)
    mid = 0.5 * (bid + ask)
    calls = dict(zip(strike[good & is_call].tolist(), mid[good & is_call].tolist(), strict=True))
    puts = dict(zip(strike[good & ~is_call].tolist(), mid[good & ~is_call].tolist(), strict=True))
    both = sorted(set(calls) & set(puts))
    if not both:
        return spot * np.exp((r - q) * t), False
    diff = np.array([calls[K] - puts[K] for K in both])
    ks = np.array(both)
    near = np.argsort(np.abs(diff), kind="stable")[:5]
    f = np.median(ks[near] + np.exp(r * t) * diff[near])
    return float(f), True


def _robust_z(x: np.ndarray) -> np.ndarray:
    z = np.full(x.shape, np.nan)
    ok = np.isfinite(x)
    if ok.sum() == 0:
        return z
    med = np.median(x[ok])
    mad = MAD_SCALE * np.median(np.abs(x[ok] - med))
    z[ok] = (x[ok] - med) / max(mad, 1e-12)
    return z


def surface_from_chain(rows: np.ndarray, spot: float, ts_ns: int, r: float = 0.0, q: float = 0.0,
                       price: str = "mid", z_threshold: float = 4.0, weights: str | None = "iv",
                       ) -> SurfaceResult:
    """The SVI surface and the per-quote anomaly records of one option chain snapshot (see the module
    docstring). price: the side fitted ('mid', 'bid' or 'ask'). Expiries at or before ts_ns are skipped.
    weights: 'iv' (squared total-variance residuals / w, i.e. roughly least squares in IV), None (uniform in
    total variance) or 'spread' (1 / (bid-ask IV spread)², 0 where unknown)."""
    if price not in ("mid", "bid", "ask"):
        raise ValueError(f"price must be 'mid', 'bid' or 'ask', not {price!r}")
    res = SurfaceResult(ts_ns=int(ts_ns), spot=float(spot), price=price)
    parts = []
    for e in np.unique(rows["expiry_ns"]):
        sel = rows[rows["expiry_ns"] == e]
        t = (int(e) - int(ts_ns)) / YEAR_NS
        if t <= 0:
            continue
        sel = sel[np.lexsort((sel["right"], sel["strike"]))]
        strike = sel["strike"].astype(np.float64)
        bid, ask = sel["bid"].astype(np.float64), sel["ask"].astype(np.float64)
        is_call = sel["right"] == int(OptionRight.CALL)
        fwd, parity = _forward(strike, bid, ask, is_call, spot, t, r, q)
        q_eff = r - np.log(fwd / spot) / t
        otm = np.where(is_call, strike >= fwd, strike < fwd)
        sel, strike, bid, ask, is_call = sel[otm], strike[otm], bid[otm], ask[otm], is_call[otm]
        has_bid = bid > 0
        iv_mid = _iv(0.5 * (bid + ask), spot, strike, t, r, q_eff, is_call, has_bid & (ask >= bid))
        iv_bid = _iv(bid, spot, strike, t, r, q_eff, is_call, has_bid)
        iv_ask = _iv(ask, spot, strike, t, r, q_eff, is_call, ask > 0)
        iv_q = {"mid": iv_mid, "bid": iv_bid, "ask": iv_ask}[price]
        k = np.log(strike / fwd)
        wgt = None
        if weights == "iv":  # squared residuals / w: roughly least squares in implied vol
            wgt = 1.0 / np.maximum(iv_q * iv_q * t, 1e-12)
        elif weights == "spread":
            spread = np.where(np.isfinite(iv_ask - iv_bid), iv_ask - iv_bid, np.nan)
            wgt = 1.0 / np.maximum(spread, 1e-3) ** 2
            wgt = np.where(np.isfinite(wgt), wgt, 0.0)
        fit = fit_svi(k, iv_q * iv_q * t, wgt)
        rec = np.zeros(len(sel), ANOMALY_DTYPE)
        rec["expiry_ns"] = e
        rec["strike"] = strike
        rec["right"] = sel["right"]
        rec["k"] = k
        rec["iv_mid"], rec["iv_bid"], rec["iv_ask"] = iv_mid, iv_bid, iv_ask
        rec["iv_vendor"] = sel["iv"]
        flags = np.zeros(len(sel), np.uint32)
        if fit.success:
            w_fit = svi_total_variance(k, *fit.params)
            with np.errstate(invalid="ignore"):
                iv_fit = np.sqrt(np.where(w_fit > 0, w_fit, np.nan) / t)
            rec["iv_fit"] = iv_fit
            resid = iv_q - iv_fit
            rec["residual"] = resid
            z = _robust_z(resid)
            rec["robust_z"] = z
            flags |= np.where(np.abs(np.nan_to_num(z)) > z_threshold, FLAG_OUTLIER, 0).astype(np.uint32)
            flags |= np.where(butterfly_violations(fit, k), FLAG_BUTTERFLY, 0).astype(np.uint32)
        else:
            rec["iv_fit"] = rec["residual"] = rec["robust_z"] = np.nan
            flags |= FLAG_NO_FIT
        rec["flags"] = flags
        res.fits[int(e)], res.forwards[int(e)], res.t[int(e)] = fit, fwd, t
        res.forward_from_parity[int(e)] = parity
        parts.append(rec)
    records = np.concatenate(parts) if parts else np.zeros(0, ANOMALY_DTYPE)
    ok_fits = {e: f for e, f in res.fits.items() if f.success}
    if len(ok_fits) > 1:
        for e in ok_fits:
            here = records["expiry_ns"] == e
            mask = calendar_violations(ok_fits, records["k"][here])[e]
            records["flags"][np.flatnonzero(here)[mask]] |= FLAG_CALENDAR
    res.records = records
    return res


class IVAgreement(NamedTuple):
    median: float  # of |iv_mid - iv_vendor|
    p90: float
    count: int
    within_spread: float  # fraction of those quotes whose vendor IV lies in [iv_bid, iv_ask]


def iv_agreement(rows: np.ndarray, spot: float, ts_ns: int, r: float = 0.0, q: float = 0.0,
                 surface: SurfaceResult | None = None) -> IVAgreement:
    """|iv_mid - vendor IV| over the OTM quotes with a valid mid IV and a real vendor IV (finite, > 0;
    expiries at or before ts_ns, whose vendor IV is a placeholder, never get a mid IV)."""
    rec = (surface or surface_from_chain(rows, spot, ts_ns, r, q)).records
    ok = np.isfinite(rec["iv_mid"]) & np.isfinite(rec["iv_vendor"]) & (rec["iv_vendor"] > 0)
    d = np.abs(rec["iv_mid"][ok] - rec["iv_vendor"][ok])
    if d.size == 0:
        return IVAgreement(float("nan"), float("nan"), 0, float("nan"))
    inside = (rec["iv_vendor"][ok] >= rec["iv_bid"][ok]) & (rec["iv_vendor"][ok] <= rec["iv_ask"][ok])
    return IVAgreement(float(np.median(d)), float(np.quantile(d, 0.9)), int(d.size), float(inside.mean()))


__all__ = ["ANOMALY_DTYPE", "FLAG_BUTTERFLY", "FLAG_CALENDAR", "FLAG_NO_FIT", "FLAG_OUTLIER", "IVAgreement",
           "SurfaceResult", "SviFit", "butterfly_g", "butterfly_violations", "calendar_violations", "fit_svi",
           "iv_agreement", "surface_from_chain", "svi_derivatives", "svi_total_variance"]
