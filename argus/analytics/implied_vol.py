"""Vectorised, robust Black–Scholes(–Merton) implied volatility with reason codes.

`implied_vol(price, s, k, t, r, q, right)` returns `(vol, reason)`: float64 volatilities (NaN unless
the reason is OK) and a small-int array of `IVReason` codes, both of the broadcast shape of the inputs.

Method
------
1. Normalise. With forward F = s·e^{(r-q)t} and discount D = e^{-rt}, the undiscounted price is
   c = price / D. Its time value (c minus the forward intrinsic value) is, by put–call parity, the
   undiscounted price of the *out-of-the-money* option at the same strike; only that number is
   inverted, which avoids solving on the tiny sensitivity of a deep in-the-money price. Dividing by
   √(F·K) gives β = b(x, v) with x = -|ln(F/K)| <= 0 and v = σ√t, where
   b(x, v) = e^{x/2} N(x/v + v/2) - e^{-x/2} N(x/v - v/2) is the normalised OTM call
   (an OTM put at log-moneyness x equals an OTM call at -x). The reachable range is 0 < β < e^{x/2}.
2. Classify (first match wins): non-finite or non-positive s, k, non-finite price, r, q, t →
   BAD_INPUT; t <= 0 → NO_TIME_VALUE; time value below -tol → BELOW_INTRINSIC (negative prices
   included); undiscounted price >= F (call) or >= K (put) → ABOVE_MAX; |time value| <= tol →
   NO_TIME_VALUE (the price is at intrinsic: no information), tol = 16·eps·(c + [ITM]·max(F, K)).
3. Solve b(x, v) = β for v with a safeguarded Newton iteration (Numerical Recipes' `rtsafe` rule:
   take the Newton step when it lands inside the bracket and at least halves the previous step,
   otherwise bisect), the bracket shrinking with the sign of the objective at every iterate, as in
   Jäckel's "Let's be rational" split at the inflexion point v_c = √(2|x|):
   - β < b(x, v_c): bracket [0, v_c], objective ln b(x, v) - ln β (b is ~ exp(-x²/2v²) there, and
     ln b is concave in v, so Newton is well behaved from v_c), start at v_c;
   - otherwise: bracket [v_c, v_hi] (v_hi doubled until b(x, v_hi) >= β, at most 2^12), objective
     b(x, v) - β (concave in v there), start at v_c.
   Iteration stops per element when a step is below max(1e-14·√t, 4·eps·v) (i.e. |Δσ| < 1e-14
   where the float resolution of v allows) or after 100 iterations; the bracket alone guarantees
   convergence (bisection from a width <= 2^12 reaches that step size well inside 100 iterations).
   Converged elements are masked out of further work.

Accuracy
--------
The solver converges to the float resolution of b, so the error in σ is about
(price rounding) / vega, the rounding being ~eps·price for an OTM price and ~eps·max(s, k) for an
ITM one. Define "the price carries information" as vega >= 1e-8·s and
vega·1e-10 >= 10·eps·(price + [ITM]·max(s, k)). There the round trip price → implied_vol reproduces
σ to better than 1e-10 (measured max 6e-12 on the test grid s = 100, k in 50..200,
t in {1/365, 7/365, 0.25, 1, 5}, σ in {0.05, 0.2, 0.8, 2}, which is ~65 % informative; at most 41
iterations, ~7 on average), checked against this package's prices, QuantLib's prices and QuantLib's
impliedVolatility, and by a hypothesis property. Elsewhere the answer is still the root of the float
objective, but the price does not determine σ to 1e-10.
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np
from scipy.special import ndtr

from argus.analytics.black_scholes import right_sign

_INV_SQRT_2PI = 0.3989422804014327
_EPS = np.finfo(np.float64).eps
MAX_ITERATIONS = 100
_V_CAP = 4096.0


class IVReason(IntEnum):
    """Why `implied_vol` did or did not return a volatility."""

    OK = 0
    BELOW_INTRINSIC = 1  # price below the (discounted forward) intrinsic value, negative prices included
    ABOVE_MAX = 2  # price >= s·e^{-qt} (call) or >= k·e^{-rt} (put): no volatility reaches it
    NO_TIME_VALUE = 3  # t <= 0, or the price equals intrinsic within rounding: no information on vol
    BAD_INPUT = 4  # non-finite inputs, s <= 0 or k <= 0


def _norm_otm_call(x: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """b(x, v) and db/dv for x <= 0, v > 0 (the normalised undiscounted OTM call)."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        h = x / v
        d1 = h + 0.5 * v
        d2 = h - 0.5 * v
        b = np.exp(0.5 * x) * ndtr(d1) - np.exp(-0.5 * x) * ndtr(d2)
        db = np.exp(0.5 * x) * _INV_SQRT_2PI * np.exp(-0.5 * d1 * d1)
    b = np.where(v > 0, np.maximum(b, 0.0), 0.0)
    db = np.where(v > 0, db, 0.0)
    return b, db


def _solve(x: np.ndarray, beta: np.ndarray, tol_v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """v with b(x, v) = beta, for 0 < beta < e^{x/2}; also the iteration count per element."""
    v_c = np.sqrt(-2.0 * x)
    b_c, _ = _norm_otm_call(x, v_c)
    lower = beta < b_c
    lo = np.where(lower, 0.0, v_c)
    hi = np.where(lower, v_c, np.maximum(2.0 * v_c, 1.0))
    need = ~lower
    while np.any(need):
        b_hi, _ = _norm_otm_call(x[need], hi[need])
        grow = b_hi < beta[need]
        idx = np.flatnonzero(need)
        hi[idx[grow]] *= 2.0
        need[idx[~grow]] = False
        need &= hi < _V_CAP
    log_beta = np.log(beta)
    v = v_c.copy()
    step_old = hi - lo
    step = step_old.copy()
    iters = np.zeros(x.shape, dtype=np.int64)
    live = np.ones(x.shape, dtype=bool)
    for _ in range(MAX_ITERATIONS):
        idx = np.flatnonzero(live)
        if idx.size == 0:
            break
        xi, vi, bi = x[idx], v[idx], beta[idx]
        lw = lower[idx]
        b, db = _norm_otm_call(xi, vi)
        with np.errstate(divide="ignore", invalid="ignore"):
            f = np.where(lw, np.log(b) - log_beta[idx], b - bi)
            df = np.where(lw, db / b, db)
        lo_i = np.where(f < 0, vi, lo[idx])
        hi_i = np.where(f > 0, vi, hi[idx])
        lo[idx], hi[idx] = lo_i, hi_i
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            newton = vi - f / df
        use_newton = (
            np.isfinite(newton)
            & (newton > lo_i)
            & (newton < hi_i)
            & (np.abs(2.0 * f) <= np.abs(step_old[idx] * df))
        )
        mid = 0.5 * (lo_i + hi_i)
        v_new = np.where(use_newton, newton, mid)
        v_new = np.where(f == 0, vi, v_new)
        dv = np.abs(v_new - vi)
        step_old[idx] = step[idx]
        step[idx] = dv
        v[idx] = v_new
        iters[idx] += 1
        tol_i = np.maximum(tol_v[idx], 4.0 * _EPS * v_new)
        done = (dv <= tol_i) | (hi_i - lo_i <= tol_i)
        live[idx[done]] = False
    return v, iters


def implied_vol(price, s, k, t, r=0.0, q=0.0, right=True, *, return_iterations: bool = False):
    """Implied Black–Scholes–Merton volatility of European option prices, vectorised.

    `right` is as in `argus.analytics.black_scholes.right_sign` (bool, ±1 or 'call'/'put').
    Returns `(vol, reason)` (and the per-element iteration counts if `return_iterations`):
    vol is NaN wherever reason != IVReason.OK. See the module docstring for the method and accuracy.
    """
    price, s, k, t, r, q = (np.asarray(a, dtype=np.float64) for a in (price, s, k, t, r, q))
    price, s, k, t, r, q, sign = (
        np.array(a, dtype=np.float64) for a in np.broadcast_arrays(price, s, k, t, r, q, right_sign(right))
    )
    shape = price.shape
    reason = np.full(shape, int(IVReason.OK), dtype=np.int8)
    finite = (
        np.isfinite(price)
        & np.isfinite(s)
        & np.isfinite(k)
        & np.isfinite(t)
        & np.isfinite(r)
        & np.isfinite(q)
    )
    bad = ~finite | ~(s > 0) | ~(k > 0)
    # Safe placeholders where the input is bad or expired, so nothing below warns.
    ok_in = ~bad & (t > 0)
    s_, k_, t_ = (np.where(ok_in, a, 1.0) for a in (s, k, t))
    r_, q_, p_ = (np.where(ok_in, a, 0.0) for a in (r, q, price))
    log_fk = np.log(s_ / k_) + (r_ - q_) * t_
    fwd = s_ * np.exp((r_ - q_) * t_)
    undisc = p_ * np.exp(r_ * t_)
    intrinsic = np.maximum(sign * (fwd - k_), 0.0)
    time_value = undisc - intrinsic
    # Rounding of the price: relative for an OTM price, of the size of max(F, K) for an ITM one.
    tol = 16.0 * _EPS * (np.abs(undisc) + np.where(intrinsic > 0, np.maximum(fwd, k_), 0.0))
    upper = np.where(sign > 0, fwd, k_)

    reason[bad] = IVReason.BAD_INPUT
    todo = reason == IVReason.OK
    reason[todo & (t <= 0)] = IVReason.NO_TIME_VALUE
    todo = reason == IVReason.OK
    reason[todo & (time_value < -tol)] = IVReason.BELOW_INTRINSIC
    todo = reason == IVReason.OK
    reason[todo & (undisc >= upper * (1.0 - 4.0 * _EPS))] = IVReason.ABOVE_MAX
    todo = reason == IVReason.OK
    reason[todo & (time_value <= tol)] = IVReason.NO_TIME_VALUE
    todo = reason == IVReason.OK

    vol = np.full(shape, np.nan)
    iters = np.zeros(shape, dtype=np.int64)
    if np.any(todo):
        x = -np.abs(log_fk[todo])
        root_fk = np.sqrt(fwd[todo] * k_[todo])
        beta = time_value[todo] / root_fk
        beta = np.minimum(beta, np.exp(0.5 * x) * (1.0 - _EPS))
        sqrt_t = np.sqrt(t_[todo])
        v, n = _solve(x, beta, 1e-14 * sqrt_t)
        vol[todo] = v / sqrt_t
        iters[todo] = n
    if return_iterations:
        return vol, reason, iters
    return vol, reason
