"""Heston (1993) stochastic-volatility model: analytic European prices and chain calibration.

Pricing uses Lewis's (2000) single-integral representation

    C = S e^{-qT} - sqrt(F K) e^{-rT} / pi * int_0^inf Re[e^{iux} phi(u - i/2)] / (u^2 + 1/4) du,

with F = S e^{(r-q)T}, x = ln(F/K) and phi the characteristic function of ln(S_T / F), written in the
"little Heston trap" form of Albrecher, Mayer, Schoutens & Tistaert (2007), which never crosses the
branch cut of the complex logarithm (so long maturities with a high vol-of-vol are safe). The terms
that read (kappa - rho sigma iu - d) / sigma^2 are rewritten as -(iu + u^2) / (b + d), and the log term
is evaluated with an accurate complex log1p, so sigma -> 0 tends smoothly to Black–Scholes with the
time-averaged variance instead of producing 0/0. Puts come from put–call parity.

The integral is computed with composite Gauss–Legendre (64 nodes a panel) on [0, U], the nodes and the
characteristic function shared across all strikes of one expiry. U is set per expiry from the decay of
the integrand's envelope |phi(u - i/2)| / (u^2 + 1/4) (the tail beyond U is below 1e-15 of S), so short
expiries, whose characteristic function decays slowly, get a longer domain instead of a truncation bias;
the panel width shrinks with |x| so the oscillation e^{iux} of far strikes is resolved.

Calibration fits (v0, kappa, theta, sigma, rho) to a chain by weighted least squares
(scipy.optimize.least_squares, trust-region reflective, with bounds).

Pure numpy and scipy; no Argus imports.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
from scipy.optimize import least_squares

from argus.analytics.black_scholes import implied_vol

__all__ = [
    "CalibrationResult",
    "HestonParams",
    "calibrate_heston",
    "heston_cf",
    "heston_price",
]

_GL_N = 64
_GL_X, _GL_W = np.polynomial.legendre.leggauss(_GL_N)
_GL_X = 0.5 * (_GL_X + 1.0)  # nodes on [0, 1]
_GL_W = 0.5 * _GL_W
_TAIL_TOL = 1e-16  # envelope * u below this (relative to sqrt(F K)) ends the domain
_MAX_PANELS = 4000


@dataclass(frozen=True)
class HestonParams:
    """Heston parameters: initial variance v0, mean reversion kappa, long-run variance theta,
    vol-of-vol sigma, correlation rho. v0, kappa, theta, sigma > 0 (sigma may be tiny); -1 < rho < 1."""

    v0: float
    kappa: float
    theta: float
    sigma: float
    rho: float

    def __post_init__(self) -> None:
        for name in ("v0", "kappa", "theta", "sigma", "rho"):
            value = getattr(self, name)
            try:
                fvalue = float(value)
            except (TypeError, ValueError):
                raise TypeError(f"HestonParams.{name}={value!r}: must be a real number") from None
            if not math.isfinite(fvalue):
                raise ValueError(f"HestonParams.{name}={value!r}: must be finite")
            object.__setattr__(self, name, fvalue)
        for name in ("v0", "kappa", "theta", "sigma"):
            value = getattr(self, name)
            if not value > 0.0:
                raise ValueError(f"HestonParams.{name}={value!r}: must be > 0")
        if not -1.0 < self.rho < 1.0:
            raise ValueError(f"HestonParams.rho={self.rho!r}: must satisfy -1 < rho < 1")

    @property
    def feller_ratio(self) -> float:
        """2 kappa theta / sigma^2 (>= 1 when the Feller condition holds)."""
        return 2.0 * self.kappa * self.theta / (self.sigma * self.sigma)

    @property
    def feller(self) -> tuple[bool, float]:
        """(2 kappa theta >= sigma^2, 2 kappa theta / sigma^2): the variance stays off zero when True."""
        return bool(2.0 * self.kappa * self.theta >= self.sigma * self.sigma), self.feller_ratio

    def as_array(self) -> np.ndarray:
        return np.array([self.v0, self.kappa, self.theta, self.sigma, self.rho])


def _log1p(z: np.ndarray) -> np.ndarray:
    """Accurate complex log(1 + z) (numpy's complex log1p drops the real part for tiny z)."""
    z = np.asarray(z, dtype=np.complex128)
    small = np.abs(z) < 1e-3
    zs = np.where(small, z, 0.0)
    series = zs * (1.0 - zs * (0.5 - zs * (1.0 / 3.0 - zs * (0.25 - zs * (0.2 - zs / 6.0)))))
    with np.errstate(divide="ignore", invalid="ignore"):
        direct = np.log(1.0 + np.where(small, 0.0, z))
    return np.where(small, series, direct)


def heston_cf(u, T: float, params: HestonParams) -> np.ndarray:
    """E[exp(i u ln(S_T / F))] for complex u (little-trap form, stable as sigma -> 0)."""
    u = np.asarray(u, dtype=np.complex128)
    v0, kappa, theta, sigma, rho = params.v0, params.kappa, params.theta, params.sigma, params.rho
    iu = 1j * u
    a = iu + u * u  # iu + u^2
    b = kappa - rho * sigma * iu
    d = np.sqrt(b * b + sigma * sigma * a)  # principal root, Re(d) >= 0
    bd = b + d
    b_minus_d_over_s2 = -a / bd  # (b - d) / sigma^2 without cancellation
    h = -a / (bd * bd)  # g / sigma^2, g = (b - d) / (b + d)
    g = sigma * sigma * h
    e = np.exp(-d * T)
    one_minus_e = -np.expm1(-d * T)
    # ln((1 - g e) / (1 - g)) = log1p(g (1 - e) / (1 - g)); divided by sigma^2 via h.
    z = g * one_minus_e / (1.0 - g)
    log_term = _log1p(z)
    # log_term / sigma^2, accurate when z is tiny (sigma -> 0): use series in z = sigma^2 * w.
    w = h * one_minus_e / (1.0 - g)
    small = np.abs(z) < 1e-3
    ws = np.where(small, w, 0.0)
    zs = np.where(small, z, 0.0)
    log_over_s2_small = ws * (1.0 - zs * (0.5 - zs * (1.0 / 3.0 - zs * (0.25 - zs * 0.2))))
    with np.errstate(divide="ignore", invalid="ignore"):
        log_over_s2 = np.where(small, log_over_s2_small, log_term / (sigma * sigma))
    C = kappa * theta * (b_minus_d_over_s2 * T - 2.0 * log_over_s2)
    D = b_minus_d_over_s2 * one_minus_e / (1.0 - g * e)
    return np.exp(C + D * v0)


def _parse_rights(right, shape) -> np.ndarray:
    """True for calls: accepts bools or strings 'call'/'c'/'put'/'p' (any case), scalar or array."""
    arr = np.asarray(right)
    if arr.dtype == bool:
        out = arr
    elif arr.dtype.kind in "US":
        low = np.char.lower(arr.astype(str))
        is_c = np.isin(low, ("c", "call"))
        is_p = np.isin(low, ("p", "put"))
        if not np.all(is_c | is_p):
            bad = arr[~(is_c | is_p)].ravel()[0]
            raise ValueError(f"right={bad!r}: must be 'call'/'c' or 'put'/'p' (or a bool is_call)")
        out = is_c
    else:
        raise TypeError(f"right={right!r}: must be a bool is_call or 'call'/'put' strings")
    return np.broadcast_to(out, shape)


def _domain(T: float, params: HestonParams, x_max: float) -> tuple[np.ndarray, np.ndarray]:
    """Gauss–Legendre nodes and weights on [0, U] for one expiry."""
    # Envelope of the integrand, relative to sqrt(F K): |phi(u - i/2)| / (u^2 + 1/4).
    grid = np.geomspace(1e-2, 1e7, 400)
    env = np.abs(heston_cf(grid - 0.5j, T, params)) / (grid * grid + 0.25)
    big = np.nonzero(env * grid > _TAIL_TOL)[0]
    upper = float(grid[min(big[-1] + 1, grid.size - 1)]) if big.size else 1.0
    upper = max(upper, 1.0)
    width = min(4.0, 12.0 / max(x_max, 1e-12))
    n_panels = int(math.ceil(upper / width))
    if n_panels > _MAX_PANELS:
        width = upper / _MAX_PANELS
        n_panels = _MAX_PANELS
    edges = np.linspace(0.0, n_panels * width, n_panels + 1)
    lo = edges[:-1, None]
    step = np.diff(edges)[:, None]
    nodes = (lo + step * _GL_X[None, :]).ravel()
    weights = (step * _GL_W[None, :]).ravel()
    return nodes, weights


def heston_price(S: float, K, T: float, r: float, q: float, params: HestonParams, right="call") -> np.ndarray:
    """Heston price of European options on one expiry, vectorised over strikes K (and rights).

    `right` is 'call'/'put' (or 'c'/'p', or a bool is_call), a scalar or an array broadcasting with K.
    Returns an ndarray of the broadcast shape.
    """
    if not isinstance(params, HestonParams):
        raise TypeError(f"params={params!r}: must be a HestonParams")
    S = float(S)
    T = float(T)
    r = float(r)
    q = float(q)
    if not (S > 0 and math.isfinite(S)):
        raise ValueError(f"S={S!r}: must be > 0 and finite")
    if not (T > 0 and math.isfinite(T)):
        raise ValueError(f"T={T!r}: must be > 0 and finite")
    K = np.asarray(K, dtype=np.float64)
    if np.any(~(K > 0)) or np.any(~np.isfinite(K)):
        raise ValueError(f"K={K!r}: strikes must be > 0 and finite")
    shape = np.broadcast_shapes(K.shape, np.shape(right))
    is_call = _parse_rights(right, shape)
    K = np.broadcast_to(K, shape)
    F = S * math.exp((r - q) * T)
    disc = math.exp(-r * T)
    kf = K.ravel()
    x = np.log(F / kf)
    nodes, weights = _domain(T, params, float(np.max(np.abs(x))) if x.size else 0.0)
    phi = heston_cf(nodes - 0.5j, T, params) * (weights / (nodes * nodes + 0.25))
    # Re[e^{iux} phi] = cos(ux) Re(phi) - sin(ux) Im(phi), summed over nodes for every strike.
    ux = np.outer(x, nodes)
    integral = np.cos(ux) @ phi.real - np.sin(ux) @ phi.imag
    call = S * math.exp(-q * T) - np.sqrt(F * kf) * disc / math.pi * integral
    put = call - S * math.exp(-q * T) + kf * disc
    out = np.where(is_call.ravel(), call, put)
    return out.reshape(shape)


@dataclass(frozen=True)
class CalibrationResult:
    params: HestonParams
    rmse: float  # weighted root-mean-square price error at the optimum
    max_abs_error: float  # largest unweighted |model - market|
    iterations: int  # function evaluations used by least_squares
    seconds: float  # wall time (time.perf_counter)
    feller_ok: bool
    feller_ratio: float
    success: bool
    message: str


_DEFAULT_BOUNDS = (
    np.array([1e-4, 1e-3, 1e-4, 1e-3, -0.999]),
    np.array([4.0, 20.0, 4.0, 5.0, 0.999]),
)


def calibrate_heston(S, r, q, strikes, expiries, market_prices, rights, weights=None, x0=None, bounds=None,
                     *, xtol: float = 1e-12, ftol: float = 1e-12, gtol: float = 1e-12,
                     max_nfev: int = 500) -> CalibrationResult:
    """Fit (v0, kappa, theta, sigma, rho) to a chain by weighted least squares (scipy trf, bounded).

    strikes, expiries, market_prices, rights (and weights, e.g. vega or 1/spread) are equal-length
    arrays, one entry per option. Residuals are weights * (model - market). x0 defaults to a
    deterministic start from the at-the-money implied volatility: v0 = theta = iv^2, kappa = 2,
    sigma = 0.5, rho = -0.5 (clipped into the bounds). bounds is (lower, upper), each 5 values.
    """
    strikes = np.asarray(strikes, dtype=np.float64).ravel()
    expiries = np.asarray(expiries, dtype=np.float64).ravel()
    market = np.asarray(market_prices, dtype=np.float64).ravel()
    n = strikes.size
    if expiries.size != n or market.size != n:
        raise ValueError(f"strikes ({n}), expiries ({expiries.size}) and market_prices ({market.size}) "
                         "must have the same length")
    if n < 5:
        raise ValueError(f"{n} options: need at least 5 to fit 5 parameters")
    is_call = _parse_rights(rights, (n,))
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=np.float64).ravel()
    if w.size != n or np.any(~np.isfinite(w)) or np.any(w < 0):
        raise ValueError("weights: must be finite, >= 0, one per option")
    lower, upper = (_DEFAULT_BOUNDS if bounds is None else
                    (np.asarray(bounds[0], dtype=np.float64), np.asarray(bounds[1], dtype=np.float64)))
    if x0 is None:
        F = S * np.exp((r - q) * expiries)
        atm = int(np.argmin(np.abs(np.log(strikes / F)) + 1e-3 * expiries))
        iv = float(implied_vol(market[atm], S, strikes[atm], expiries[atm], r, q, bool(is_call[atm])))
        if not np.isfinite(iv):
            iv = 0.2
        x0 = np.array([iv * iv, 2.0, iv * iv, 0.5, -0.5])
    x0 = np.clip(np.asarray(x0, dtype=np.float64), lower + 1e-12, upper - 1e-12)
    groups = [(T, np.nonzero(expiries == T)[0]) for T in np.unique(expiries)]

    def model(x: np.ndarray) -> np.ndarray:
        p = HestonParams(*x)
        out = np.empty(n)
        for T, idx in groups:
            out[idx] = heston_price(S, strikes[idx], T, r, q, p, is_call[idx])
        return out

    def residuals(x: np.ndarray) -> np.ndarray:
        return w * (model(x) - market)

    start = time.perf_counter()
    res = least_squares(residuals, x0, bounds=(lower, upper), method="trf", x_scale="jac",
                        xtol=xtol, ftol=ftol, gtol=gtol, max_nfev=max_nfev)
    seconds = time.perf_counter() - start
    params = HestonParams(*res.x)
    err = model(res.x) - market
    ok, ratio = params.feller
    return CalibrationResult(
        params=params,
        rmse=float(np.sqrt(np.mean(res.fun ** 2))),
        max_abs_error=float(np.max(np.abs(err))),
        iterations=int(res.nfev),
        seconds=seconds,
        feller_ok=ok,
        feller_ratio=ratio,
        success=bool(res.success),
        message=str(res.message),
    )
