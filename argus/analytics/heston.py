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
expiries, whose characteristic function decays slowly, get a longer domain instead of a truncation bias.
Panels are 4 wide near u = 0 (where 1/(u^2 + 1/4) peaks), then each 1.5 times wider up to 64 and up to
12 / max|x|, so the oscillation e^{iux} of far strikes is resolved (within 3e-13 of even width-4 panels
on a grid of 1-day to 5-year expiries, for a tenth of the nodes on short expiries).

Calibration fits (v0, kappa, theta, sigma, rho) to a chain by weighted least squares
(scipy.optimize.least_squares, trust-region reflective, with bounds) with an analytic Jacobian: the
little-trap characteristic function is differentiated in closed form (`heston_cf_grad`) and integrated
on the same nodes as the price, whose domain and cos/sin matrices are cached per expiry for the whole
fit (rebuilt, 25% longer, only when the parameters need a longer domain). One evaluation is then one
characteristic function and its gradient on the nodes and one matrix product.

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
_FIRST_WIDTH = 4.0  # the first Gauss–Legendre panels (64 nodes each)
_GROWTH = 1.5  # each later panel this much wider than the last ...
_MAX_WIDTH = 64.0  # ... up to this (and to 12 / max |ln(F/K)|): the integrand varies slowly in u


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
    return _cf(u, T, params, grad=False)[0]


def heston_cf_grad(u, T: float, params: HestonParams) -> tuple[np.ndarray, np.ndarray]:
    """(phi, dphi): the characteristic function and its partial derivatives with respect to
    (v0, kappa, theta, sigma, rho), shape (5, *u.shape), by differentiating the little-trap form
    analytically (the same stable intermediates as `heston_cf`)."""
    return _cf(u, T, params, grad=True)


def _cf(u, T: float, params: HestonParams, grad: bool):
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
    phi = np.exp(C + D * v0)
    if not grad:
        return phi, None
    # Derivatives through b = kappa - rho sigma iu, d = sqrt(b^2 + sigma^2 a) and sigma itself, with
    # B = (b - d)/sigma^2 = -a/(b + d), h = g/sigma^2 = -a/(b + d)^2, M = log_term/sigma^2 (all stable as
    # sigma -> 0): dB = -h (db + dd), dh = -2 h (db + dd)/(b + d), dg/sigma^2 = dh (+ 2h/sigma for sigma),
    # dM = [-(dg e + g de)/(1 - g e) + dg/(1 - g)]/sigma^2 (- 2M/sigma for sigma), de = -T e dd,
    # C = kappa theta (B T - 2M), D = B (1 - e)/(1 - g e).
    one_minus_ge = 1.0 - g * e
    one_minus_g = 1.0 - g
    Y = one_minus_e / one_minus_ge
    base = b_minus_d_over_s2 * T - 2.0 * log_over_s2
    dphi = np.empty((5, *u.shape), dtype=np.complex128)
    dphi[0] = D * phi  # v0
    dphi[2] = kappa * base * phi  # theta
    zero = 0.0
    for j, db, explicit_sigma in ((1, 1.0 + zero * u, False), (3, -rho * iu, True), (4, -sigma * iu, False)):
        dd = (b * db + (sigma * a if explicit_sigma else 0.0)) / d
        s_sum = db + dd
        dB = -h * s_sum
        dh = -2.0 * h * s_sum / bd
        dg_s2 = dh + (2.0 * h / sigma if explicit_sigma else 0.0)
        de = -T * e * dd
        dM = -(dg_s2 * e + h * de) / one_minus_ge + dg_s2 / one_minus_g
        if explicit_sigma:
            dM = dM - 2.0 * log_over_s2 / sigma
        dC = kappa * theta * (dB * T - 2.0 * dM) + (base * theta if j == 1 else 0.0)
        dY = (-de * one_minus_ge + one_minus_e * (sigma * sigma * dg_s2 * e + g * de)) / (one_minus_ge * one_minus_ge)
        dD = dB * Y + b_minus_d_over_s2 * dY
        dphi[j] = (dC + dD * v0) * phi
    return phi, dphi


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


_ENV_GRID = np.geomspace(1e-2, 1e7, 400)


def _panels(T: float, params: HestonParams, x_max: float) -> tuple[float, float]:
    """(widest panel, upper end U) of the integration domain [0, U] of one expiry."""
    # Envelope of the integrand, relative to sqrt(F K): |phi(u - i/2)| / (u^2 + 1/4).
    grid = _ENV_GRID
    env = np.abs(heston_cf(grid - 0.5j, T, params)) / (grid * grid + 0.25)
    big = np.nonzero(env * grid > _TAIL_TOL)[0]
    upper = float(grid[min(big[-1] + 1, grid.size - 1)]) if big.size else 1.0
    return min(_MAX_WIDTH, 12.0 / max(x_max, 1e-12)), max(upper, 1.0)


def _domain(T: float, params: HestonParams, x_max: float) -> tuple[np.ndarray, np.ndarray]:
    """Gauss–Legendre nodes and weights on [0, U] for one expiry."""
    return _nodes(*_panels(T, params, x_max))


def _nodes(cap: float, upper: float) -> tuple[np.ndarray, np.ndarray]:
    """Composite Gauss–Legendre on [0, >= upper]: panels of width 4 near 0, where 1/(u^2 + 1/4) peaks, then
    each 1.5 times wider than the last up to `cap` (set by the oscillation e^{iux} of the farthest strike);
    at most _MAX_PANELS panels (evenly spaced when the domain needs more)."""
    first = min(_FIRST_WIDTH, cap)
    edges = [0.0]
    width = first
    while edges[-1] < upper and len(edges) <= _MAX_PANELS:
        edges.append(edges[-1] + width)
        width = min(width * _GROWTH, cap)
    if edges[-1] < upper:
        edges = list(np.linspace(0.0, upper, _MAX_PANELS + 1))
    edges = np.asarray(edges)
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


class _ExpiryGroup:
    """The options of one expiry during a calibration: the Gauss–Legendre domain and the cos/sin matrices
    of the Lewis integral are cached and reused while the domain the parameters need fits inside the
    cached one (a longer domain only adds a negligible tail), so an evaluation costs one characteristic
    function and its gradient on the nodes plus two matrix products."""

    def __init__(self, S, K, T, r, q, is_call, idx):
        self.S, self.K, self.T, self.idx = S, K, float(T), idx
        self.F = S * math.exp((r - q) * T)
        self.disc = math.exp(-r * T)
        self.x = np.log(self.F / K)
        self.x_max = float(np.max(np.abs(self.x)))
        self.coef = np.sqrt(self.F * K) * self.disc / math.pi
        self.intrinsic = np.where(is_call, S * math.exp(-q * T), K * self.disc)  # call: S e^{-qT}; put: K e^{-rT}
        self.panels: tuple[float, float] | None = None

    def price_and_jacobian(self, p: HestonParams) -> tuple[np.ndarray, np.ndarray]:
        cap, upper = _panels(self.T, p, self.x_max)
        if self.panels is None or upper > self.panels[1]:
            self.panels = (cap, 1.25 * upper)  # room to grow: fewer rebuilds as the parameters move
            self.nodes, weights = _nodes(*self.panels)
            self.kernel = weights / (self.nodes * self.nodes + 0.25)
            ux = np.outer(self.x, self.nodes)
            self.trig = np.hstack([np.cos(ux), -np.sin(ux)])  # (n, 2N): Re[e^{iux} f] = [cos, -sin] @ [Re f; Im f]
        phi, dphi = heston_cf_grad(self.nodes - 0.5j, self.T, p)
        n_nodes = self.nodes.size
        f = np.empty((2 * n_nodes, 6))  # columns: phi, then d phi / d(v0, kappa, theta, sigma, rho)
        f[:n_nodes, 0], f[n_nodes:, 0] = phi.real, phi.imag
        f[:n_nodes, 1:], f[n_nodes:, 1:] = dphi.real.T, dphi.imag.T
        f *= np.concatenate([self.kernel, self.kernel])[:, None]
        integrals = self.trig @ f  # (n, 6), one BLAS product
        # call = S e^{-qT} - coef * I; put = call - S e^{-qT} + K e^{-rT} = K e^{-rT} - coef * I.
        price = self.intrinsic - self.coef * integrals[:, 0]
        return price, -self.coef[:, None] * integrals[:, 1:]


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
    groups = [_ExpiryGroup(S, strikes[idx], T, r, q, is_call[idx], idx) for T in np.unique(expiries)
              for idx in [np.nonzero(expiries == T)[0]]]
    cache: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # the last point: prices and Jacobian

    def evaluate(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        key = x.tobytes()
        if key not in cache:
            p = HestonParams(*x)
            out, jac = np.empty(n), np.empty((n, 5))
            for g in groups:
                out[g.idx], jac[g.idx] = g.price_and_jacobian(p)
            cache.clear()
            cache[key] = (out, jac)
        return cache[key]

    def residuals(x: np.ndarray) -> np.ndarray:
        return w * (evaluate(x)[0] - market)

    def jacobian(x: np.ndarray) -> np.ndarray:
        return w[:, None] * evaluate(x)[1]

    start = time.perf_counter()
    res = least_squares(residuals, x0, jac=jacobian, bounds=(lower, upper), method="trf", x_scale="jac",
                        xtol=xtol, ftol=ftol, gtol=gtol, max_nfev=max_nfev)
    seconds = time.perf_counter() - start
    params = HestonParams(*res.x)
    err = evaluate(res.x)[0] - market
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
