"""Vertical credit spreads and iron condors from one option chain, priced at the natural price.

`credit_spreads(rows, spot, filt, now_ns)` lists every short/long pair of the same expiry and right
(puts: long strike below the short strike; calls: above) that passes a `SpreadFilter`;
`iron_condors(rows, spot, put_filter, call_filter, now_ns)` combines a put and a call credit spread of
the same expiry whose strikes do not overlap.

Conventions
-----------
- Natural pricing only, never mids: a spread is sold by selling the short leg at its bid and buying
  the long leg at its ask, so credit = short.bid - long.ask. Only positive credits are candidates.
- A leg is quoted when bid and ask are finite, ask > 0 and ask >= bid >= 0; the short leg also needs
  bid > 0. Unquoted legs are excluded.
- spread % of a leg = (ask - bid) / mid with mid = (bid + ask) / 2 (so 2.0 for a zero bid).
- Liquidity per leg: open_interest >= min_open_interest; size is the size on the side we trade
  (bid_size for the short leg, which we sell, ask_size for the long leg, which we buy) >= min_size.
- Delta is the row's (vendor) delta; where it is NaN it is computed from the row's iv with
  `argus.analytics.black_scholes.greeks` at spot, t = (expiry_ns - now_ns) / YEAR_NS (365-day
  year) and the given r, q; the `delta_computed` output field says so. Without now_ns, or with a NaN
  or non-positive iv, or t <= 0, the delta stays NaN and a delta filter excludes the row.
- short distance = how far OTM the short strike is, as a fraction of spot:
  (spot - K) / spot for puts, (K - spot) / spot for calls.
- max loss = width - credit; breakeven = short strike - credit (puts) or + credit (calls).
- Rows must hold one quote per (expiry, right, strike); reconcile several sources first
  (`argus.options.consensus`).
- Output is sorted by credit_to_width descending, then expiry, right, short strike, long strike:
  the same input gives the same bytes.

Pure numpy; nothing here reads global state.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from argus.analytics.black_scholes import greeks
from argus.events.layout import OPTION_ROW_DTYPE
from argus.events.types import OptionRight

#: One calendar year in ns (the convention of the synthetic market).
YEAR_NS = 365 * 86_400 * 1_000_000_000

SPREAD_DTYPE = np.dtype(
    [
        ("expiry_ns", "<i8"),
        ("right", "<u2"),  # OptionRight
        ("delta_computed", "u1"),  # 1 when short_delta came from the row iv, not the vendor
        ("short_strike", "<f8"),
        ("long_strike", "<f8"),
        ("width", "<f8"),
        ("credit", "<f8"),  # short.bid - long.ask
        ("credit_to_width", "<f8"),
        ("max_loss", "<f8"),  # width - credit
        ("short_delta", "<f8"),
        ("short_iv", "<f8"),
        ("long_iv", "<f8"),
        ("short_spread_pct", "<f8"),
        ("long_spread_pct", "<f8"),
        ("min_open_interest", "<f8"),
        ("breakeven", "<f8"),
        ("short_contract_id", "<u4"),
        ("long_contract_id", "<u4"),
    ]
)

CONDOR_DTYPE = np.dtype(
    [
        ("expiry_ns", "<i8"),
        ("put_long_strike", "<f8"),
        ("put_short_strike", "<f8"),
        ("call_short_strike", "<f8"),
        ("call_long_strike", "<f8"),
        ("put_width", "<f8"),
        ("call_width", "<f8"),
        ("put_credit", "<f8"),
        ("call_credit", "<f8"),
        ("credit", "<f8"),  # put_credit + call_credit
        ("max_loss", "<f8"),  # max(put_width, call_width) - credit
        ("credit_to_width", "<f8"),  # credit / max width
        ("put_short_delta", "<f8"),
        ("call_short_delta", "<f8"),
        ("lower_breakeven", "<f8"),
        ("upper_breakeven", "<f8"),
        ("min_open_interest", "<f8"),
    ]
)

_RIGHTS = {"put": (int(OptionRight.PUT),), "call": (int(OptionRight.CALL),)}
_RIGHTS["both"] = _RIGHTS["put"] + _RIGHTS["call"]


@dataclass(frozen=True)
class SpreadFilter:
    """What a credit spread must satisfy. Ranges are inclusive (lo, hi); None disables a criterion.

    short_delta is on |delta|; short_distance on the OTM fraction of spot (see the module doc).
    widths is a set of exact widths (matched to 1e-9 relative); width_range a (lo, hi) range; both
    apply when both are given. expiries is a set of expiry_ns; min_days / max_days bound the days to
    expiry (need now_ns).
    """

    right: str = "put"
    short_delta: tuple[float, float] | None = (0.10, 0.30)
    short_distance: tuple[float, float] | None = None
    widths: tuple[float, ...] | None = None
    width_range: tuple[float, float] | None = None
    min_credit_to_width: float = 0.0
    max_spread_pct: float = math.inf
    min_open_interest: float = 0.0
    min_size: float = 0.0
    expiries: tuple[int, ...] | None = None
    min_days: float | None = None
    max_days: float | None = None

    def __post_init__(self) -> None:
        if self.right not in _RIGHTS:
            raise ValueError("right must be 'put', 'call' or 'both'")
        for name in ("short_delta", "short_distance", "width_range"):
            rng = getattr(self, name)
            if rng is not None and (len(rng) != 2 or rng[0] > rng[1]):
                raise ValueError(f"{name} must be a (lo, hi) range with lo <= hi")


def _in(x: np.ndarray, rng: tuple[float, float] | None) -> np.ndarray:
    if rng is None:
        return np.ones(x.shape, dtype=bool)
    return (x >= rng[0]) & (x <= rng[1])


def _deltas(rows: np.ndarray, spot: float, now_ns: int | None, r: float, q: float):
    delta = rows["delta"].astype(np.float64)
    missing = np.isnan(delta)
    if now_ns is not None and missing.any():
        t = (rows["expiry_ns"][missing] - np.int64(now_ns)) / YEAR_NS
        iv = rows["iv"][missing]
        ok = np.isfinite(iv) & (iv > 0) & (t > 0)
        g = greeks(
            spot,
            rows["strike"][missing],
            np.where(ok, t, 1.0),
            np.where(ok, iv, 0.2),
            r,
            q,
            rows["right"][missing] == OptionRight.CALL,
        )
        delta[missing] = np.where(ok, g.delta, np.nan)
        computed = missing.copy()
        computed[missing] = ok
    else:
        computed = np.zeros(delta.shape, dtype=bool)
    return delta, computed


def credit_spreads(
    rows: np.ndarray,
    spot: float,
    filt: SpreadFilter,
    now_ns: int | None = None,
    *,
    r: float = 0.0,
    q: float = 0.0,
) -> np.ndarray:
    """Every credit spread of `rows` (OPTION_ROW_DTYPE) passing `filt`, as a SPREAD_DTYPE array."""
    rows = np.asarray(rows)
    if rows.dtype != OPTION_ROW_DTYPE:
        raise TypeError("rows must have OPTION_ROW_DTYPE")
    if not (math.isfinite(spot) and spot > 0):
        raise ValueError("spot must be finite and positive")
    if (filt.min_days is not None or filt.max_days is not None) and now_ns is None:
        raise ValueError("min_days / max_days need now_ns")
    rows = rows[np.isin(rows["right"], _RIGHTS[filt.right])]
    if filt.expiries is not None:
        rows = rows[np.isin(rows["expiry_ns"], np.asarray(filt.expiries, dtype=np.int64))]
    if now_ns is not None:
        days = (rows["expiry_ns"] - np.int64(now_ns)) / (86_400 * 1e9)
        keep = days > 0
        if filt.min_days is not None:
            keep &= days >= filt.min_days
        if filt.max_days is not None:
            keep &= days <= filt.max_days
        rows = rows[keep]
    rows = rows[np.lexsort((rows["strike"], rows["right"], rows["expiry_ns"]))]
    if len(rows) > 1:
        same = (
            (rows["expiry_ns"][1:] == rows["expiry_ns"][:-1])
            & (rows["right"][1:] == rows["right"][:-1])
            & (rows["strike"][1:] == rows["strike"][:-1])
        )
        if same.any():
            raise ValueError("rows hold several quotes of one contract; reconcile sources first")

    bid, ask, k = rows["bid"], rows["ask"], rows["strike"]
    with np.errstate(invalid="ignore", divide="ignore"):
        quoted = np.isfinite(bid) & np.isfinite(ask) & (ask > 0) & (bid >= 0) & (ask >= bid)
        spread_pct = np.where(quoted, (ask - bid) / ((ask + bid) / 2.0), np.nan)
    liquid = quoted & (spread_pct <= filt.max_spread_pct) & (rows["open_interest"] >= filt.min_open_interest)
    is_call = rows["right"] == OptionRight.CALL
    delta, computed = _deltas(rows, spot, now_ns, r, q)
    distance = np.where(is_call, k - spot, spot - k) / spot
    short_ok = (
        liquid
        & (bid > 0)
        & (rows["bid_size"] >= filt.min_size)
        & _in(np.abs(delta), filt.short_delta)
        & _in(distance, filt.short_distance)
    )
    long_ok = liquid & (rows["ask_size"] >= filt.min_size)

    si, li = np.nonzero(short_ok)[0], np.nonzero(long_ok)[0]
    if len(si) == 0 or len(li) == 0:
        return np.zeros(0, dtype=SPREAD_DTYPE)
    # All (short, long) pairs; O(n_short * n_long) of one chain, which is small.
    s, lg = (a.ravel() for a in np.meshgrid(si, li, indexing="ij"))
    pair = (rows["expiry_ns"][s] == rows["expiry_ns"][lg]) & (rows["right"][s] == rows["right"][lg])
    pair &= np.where(is_call[s], k[lg] > k[s], k[lg] < k[s])
    s, lg = s[pair], lg[pair]
    width = np.abs(k[lg] - k[s])
    credit = bid[s] - ask[lg]
    ctw = credit / width
    keep = (credit > 0) & (ctw >= filt.min_credit_to_width) & _in(width, filt.width_range)
    if filt.widths is not None:
        ws = np.asarray(filt.widths, dtype=np.float64)
        keep &= np.any(np.abs(width[:, None] - ws[None, :]) <= 1e-9 * np.maximum(1.0, ws[None, :]), axis=1)
    s, lg, width, credit, ctw = s[keep], lg[keep], width[keep], credit[keep], ctw[keep]

    out = np.zeros(len(s), dtype=SPREAD_DTYPE)
    out["expiry_ns"] = rows["expiry_ns"][s]
    out["right"] = rows["right"][s]
    out["delta_computed"] = computed[s]
    out["short_strike"] = k[s]
    out["long_strike"] = k[lg]
    out["width"] = width
    out["credit"] = credit
    out["credit_to_width"] = ctw
    out["max_loss"] = width - credit
    out["short_delta"] = delta[s]
    out["short_iv"] = rows["iv"][s]
    out["long_iv"] = rows["iv"][lg]
    out["short_spread_pct"] = spread_pct[s]
    out["long_spread_pct"] = spread_pct[lg]
    out["min_open_interest"] = np.minimum(rows["open_interest"][s], rows["open_interest"][lg])
    out["breakeven"] = np.where(is_call[s], k[s] + credit, k[s] - credit)
    out["short_contract_id"] = rows["contract_id"][s]
    out["long_contract_id"] = rows["contract_id"][lg]
    order = np.lexsort(
        (out["long_strike"], out["short_strike"], out["right"], out["expiry_ns"], -out["credit_to_width"])
    )
    return out[order]


def iron_condors(
    rows: np.ndarray,
    spot: float,
    put_filter: SpreadFilter,
    call_filter: SpreadFilter,
    now_ns: int | None = None,
    *,
    r: float = 0.0,
    q: float = 0.0,
    min_credit_to_width: float = 0.0,
) -> np.ndarray:
    """Every iron condor: a put credit spread (put_filter) and a call credit spread (call_filter) of the
    same expiry with put short strike < call short strike; credit is the sum of the two natural
    credits, max loss = max(put width, call width) - credit. The filters' `right` is overridden.

    Sorted by credit_to_width (credit / max width) descending, then expiry and the four strikes."""
    puts = credit_spreads(rows, spot, replace(put_filter, right="put"), now_ns, r=r, q=q)
    calls = credit_spreads(rows, spot, replace(call_filter, right="call"), now_ns, r=r, q=q)
    if len(puts) == 0 or len(calls) == 0:
        return np.zeros(0, dtype=CONDOR_DTYPE)
    p, c = (a.ravel() for a in np.meshgrid(np.arange(len(puts)), np.arange(len(calls)), indexing="ij"))
    ok = (puts["expiry_ns"][p] == calls["expiry_ns"][c]) & (
        puts["short_strike"][p] < calls["short_strike"][c]
    )
    p, c = p[ok], c[ok]
    P, C = puts[p], calls[c]
    out = np.zeros(len(p), dtype=CONDOR_DTYPE)
    out["expiry_ns"] = P["expiry_ns"]
    out["put_long_strike"] = P["long_strike"]
    out["put_short_strike"] = P["short_strike"]
    out["call_short_strike"] = C["short_strike"]
    out["call_long_strike"] = C["long_strike"]
    out["put_width"] = P["width"]
    out["call_width"] = C["width"]
    out["put_credit"] = P["credit"]
    out["call_credit"] = C["credit"]
    credit = P["credit"] + C["credit"]
    wmax = np.maximum(P["width"], C["width"])
    out["credit"] = credit
    out["max_loss"] = wmax - credit
    out["credit_to_width"] = credit / wmax
    out["put_short_delta"] = P["short_delta"]
    out["call_short_delta"] = C["short_delta"]
    out["lower_breakeven"] = P["short_strike"] - credit
    out["upper_breakeven"] = C["short_strike"] + credit
    out["min_open_interest"] = np.minimum(P["min_open_interest"], C["min_open_interest"])
    out = out[out["credit_to_width"] >= min_credit_to_width]
    order = np.lexsort(
        (
            out["call_long_strike"],
            out["call_short_strike"],
            out["put_short_strike"],
            out["put_long_strike"],
            out["expiry_ns"],
            -out["credit_to_width"],
        )
    )
    return out[order]
