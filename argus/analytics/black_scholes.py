"""Vectorised Black–Scholes(–Merton) for European options with a continuous rate and dividend yield.

Every function broadcasts its array arguments (numpy rules). Conventions:

- `t` is the time to expiry in years; `sigma` the annualised volatility; `r` the continuously
  compounded rate; `q` the continuous dividend yield.
- `is_call` (the option right) is True/False, +1/-1, or 'call'/'put' ('c'/'p', any case), or an array
  of any of these; see `right_sign`.
- vega is per 1.00 of volatility (divide by 100 for "per vol point"); theta is per year (divide by 365
  for "per calendar day") and is the derivative of the price with respect to calendar time passing;
  rho is per 1.00 of rate (the derivative with respect to r, q held fixed).
- At expiry (t <= 0) or with zero volatility the price is the discounted intrinsic value of the forward,
  delta is 0 or ±e^{-qt}, gamma and vega are 0, and theta and rho are those of the discounted forward
  intrinsic value (0 when it is 0 or t <= 0). No NaN comes out for finite s, k > 0, sigma >= 0.

The robust implied-volatility solver is `argus.analytics.implied_vol.implied_vol`; `implied_vol` here
is the simple bisection the synthetic market uses.

Pure numpy and scipy.special; nothing here reads global state.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy.special import ndtr

_INV_SQRT_2PI = 0.3989422804014327


class Greeks(NamedTuple):
    price: np.ndarray
    delta: np.ndarray
    gamma: np.ndarray
    vega: np.ndarray
    theta: np.ndarray
    rho: np.ndarray


_CALL_NAMES = frozenset({"call", "c"})
_PUT_NAMES = frozenset({"put", "p"})


def right_sign(right) -> np.ndarray:
    """+1.0 for a call, -1.0 for a put: from bools, +1/-1 numbers or 'call'/'put' strings (arrays too)."""
    a = np.asarray(right)
    if a.dtype == bool:
        return np.where(a, 1.0, -1.0)
    if a.dtype.kind in "iuf":
        if not np.all((a == 1) | (a == -1)):
            raise ValueError("a numeric option right must be +1 (call) or -1 (put)")
        return a.astype(np.float64)
    if a.dtype.kind in "USO":
        low = np.char.lower(np.char.strip(a.astype(str)))
        is_c = np.isin(low, list(_CALL_NAMES))
        is_p = np.isin(low, list(_PUT_NAMES))
        if not np.all(is_c | is_p):
            raise ValueError("an option right must be 'call'/'c' or 'put'/'p'")
        return np.where(is_c, 1.0, -1.0)
    raise ValueError(f"cannot read an option right from dtype {a.dtype}")


def _pdf(x: np.ndarray) -> np.ndarray:
    return _INV_SQRT_2PI * np.exp(-0.5 * x * x)


def d1_d2(s, k, t, sigma, r=0.0, q=0.0) -> tuple[np.ndarray, np.ndarray]:
    """The d1 and d2 of Black–Scholes (NaN where t <= 0 or sigma <= 0)."""
    s, k, t, sigma, r, q = (np.asarray(x, dtype=np.float64) for x in (s, k, t, sigma, r, q))
    vol_t = sigma * np.sqrt(np.maximum(t, 0.0))
    with np.errstate(divide="ignore", invalid="ignore"):
        d1 = (np.log(s / k) + (r - q + 0.5 * sigma * sigma) * t) / vol_t
    d1 = np.where(vol_t > 0, d1, np.nan)
    return d1, d1 - vol_t


def greeks(s, k, t, sigma, r=0.0, q=0.0, is_call=True) -> Greeks:
    """Price, delta, gamma, vega (per 1.00 vol), theta (per year) and rho (per 1.00 rate) of Europeans."""
    s, k, t, sigma, r, q = (np.asarray(x, dtype=np.float64) for x in (s, k, t, sigma, r, q))
    s, k, t, sigma, r, q, sign = np.broadcast_arrays(s, k, t, sigma, r, q, right_sign(is_call))
    live = (t > 0) & (sigma > 0)
    tt = np.where(live, t, 1.0)
    vv = np.where(live, sigma, 1.0)
    sqrt_t = np.sqrt(tt)
    d1, d2 = d1_d2(s, k, tt, vv, r, q)
    disc_q = np.exp(-q * np.maximum(t, 0.0))
    disc_r = np.exp(-r * np.maximum(t, 0.0))
    nd1 = ndtr(sign * d1)
    nd2 = ndtr(sign * d2)
    pdf1 = _pdf(d1)
    price = sign * (s * disc_q * nd1 - k * disc_r * nd2)
    delta = sign * disc_q * nd1
    gamma = disc_q * pdf1 / (s * vv * sqrt_t)
    vega = s * disc_q * pdf1 * sqrt_t
    theta = -s * disc_q * pdf1 * vv / (2.0 * sqrt_t) + sign * (q * s * disc_q * nd1 - r * k * disc_r * nd2)
    rho = sign * k * tt * disc_r * nd2
    # Expired or zero-vol: discounted intrinsic value of the forward.
    fwd_intr = np.maximum(sign * (s * disc_q - k * disc_r), 0.0)
    itm = sign * (s * disc_q - k * disc_r) > 0
    dead_theta = np.where(itm & (t > 0), sign * (q * s * disc_q - r * k * disc_r), 0.0)
    dead_rho = np.where(itm & (t > 0), sign * k * np.maximum(t, 0.0) * disc_r, 0.0)
    return Greeks(
        price=np.where(live, price, fwd_intr),
        delta=np.where(live, delta, np.where(itm, sign * disc_q, 0.0)),
        gamma=np.where(live, gamma, 0.0),
        vega=np.where(live, vega, 0.0),
        theta=np.where(live, theta, dead_theta),
        rho=np.where(live, rho, dead_rho),
    )


def price(s, k, t, sigma, r=0.0, q=0.0, is_call=True) -> np.ndarray:
    """Black–Scholes price of European calls (is_call True) or puts."""
    return greeks(s, k, t, sigma, r, q, is_call).price


def implied_vol(
    target, s, k, t, r=0.0, q=0.0, is_call=True, *, lo: float = 1e-4, hi: float = 5.0, iterations: int = 100
) -> np.ndarray:
    """The volatility whose Black–Scholes price equals `target` (vectorised bisection).

    NaN where the target lies outside the prices at `lo` and `hi` (e.g. below intrinsic value)."""
    target = np.asarray(target, dtype=np.float64)
    shape = np.broadcast_shapes(target.shape, *(np.shape(x) for x in (s, k, t, r, q, is_call)))
    a = np.full(shape, lo)
    b = np.full(shape, hi)
    p_lo = price(s, k, t, a, r, q, is_call)
    p_hi = price(s, k, t, b, r, q, is_call)
    ok = (target >= p_lo) & (target <= p_hi)
    for _ in range(iterations):
        mid = 0.5 * (a + b)
        above = price(s, k, t, mid, r, q, is_call) > target
        b = np.where(above, mid, b)
        a = np.where(above, a, mid)
    return np.where(ok, 0.5 * (a + b), np.nan)
