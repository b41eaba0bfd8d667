"""Per-contract implied-volatility consensus across several quote sources, with provenance.

`consensus(quotes, now_ns, policy, ...)` reduces a CONSENSUS_QUOTE_DTYPE array (quotes of many
contracts from several `OptionSource`s) to one CONSENSUS_DTYPE row per contract.

Rules
-----
- A contract is (expiry_ns, strike, right): different expiries are never combined.
- Eligible quotes: ts_recv <= now_ns (no look-ahead), now_ns - ts_recv <= max_age_ns when given, and a
  finite iv > 0. For `blended`, a source whose weight is 0 (or absent from `weights`) is not eligible.
- Per (contract, source) only the latest eligible quote counts (greatest ts_recv; exact ties are
  broken by the larger iv, then bid, then ask, so the result does not depend on input order).
- The sources left are the contract's *used* sources: `sources_used` is their bitmask
  (bit 1 << OptionSource), `n_sources` their count, `discrepancy` = max - min of their IVs and
  `rel_discrepancy` = discrepancy / median IV. A contract with no used source gives no row.
- Policies (the consensus iv always lies within [min, max] of the used sources' IVs):
  - PREFER_PRIMARY: the primary source's IV when present, else the freshest other source's
    (greatest ts_recv, ties to the lowest source id). `chosen_source` names it.
  - WINNER_BASED: the source whose IV best reprices the contract's mid: smallest
    |BS(spot, K, t, iv) - mid| / vega (the repricing error in vol units), with t =
    (expiry_ns - now_ns) / YEAR_NS, rate r and yield q. The mid and spot are those of the freshest
    used quote with a valid two-sided market (finite bid >= 0, ask > 0, ask >= bid, finite
    underlying > 0), ties to the lowest source id. Ties in error go to the lowest source id. Where
    no mid exists or every error is non-finite (t <= 0, zero vega) the PREFER_PRIMARY rule is used and
    `fallback` is 1.
  - BLENDED: the weighted mean of the used sources' IVs, weights per source (default equal)
    renormalised over the sources present. `chosen_source` is 0.
- `ts_recv` of an output row: the chosen quote's (PREFER_PRIMARY, WINNER_BASED), the latest used
  quote's (BLENDED).
- Output rows are sorted by (expiry_ns, right, strike).

Pure numpy; nothing here reads global state.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import IntEnum

import numpy as np

from argus.analytics.black_scholes import greeks
from argus.events.types import OptionRight, OptionSource

_I64_MIN = np.iinfo(np.int64).min
_I64_MAX = np.iinfo(np.int64).max

#: One calendar year in ns (the convention of the synthetic market).
YEAR_NS = 365 * 86_400 * 1_000_000_000

CONSENSUS_QUOTE_DTYPE = np.dtype(
    [
        ("expiry_ns", "<i8"),
        ("strike", "<f8"),
        ("right", "<u2"),  # OptionRight
        ("source", "<u2"),  # OptionSource
        ("ts_recv", "<i8"),
        ("iv", "<f8"),
        ("bid", "<f8"),
        ("ask", "<f8"),
        ("underlying", "<f8"),  # spot when quoted (NaN if unknown); used by WINNER_BASED only
    ]
)

CONSENSUS_DTYPE = np.dtype(
    [
        ("expiry_ns", "<i8"),
        ("strike", "<f8"),
        ("right", "<u2"),
        ("policy", "u1"),  # ConsensusPolicy
        ("fallback", "u1"),  # 1 when WINNER_BASED fell back to PREFER_PRIMARY
        ("iv", "<f8"),
        ("sources_used", "<u4"),  # bitmask of 1 << OptionSource
        ("chosen_source", "<u2"),  # OptionSource, 0 for BLENDED
        ("n_sources", "<u2"),
        ("discrepancy", "<f8"),  # max - min IV of the used sources
        ("rel_discrepancy", "<f8"),  # discrepancy / median IV of the used sources
        ("ts_recv", "<i8"),
    ]
)


class ConsensusPolicy(IntEnum):
    PREFER_PRIMARY = 1
    WINNER_BASED = 2
    BLENDED = 3


def _policy(p) -> ConsensusPolicy:
    if isinstance(p, str):
        return ConsensusPolicy[p.upper()]
    return ConsensusPolicy(p)


def _first_of_groups(group: np.ndarray) -> np.ndarray:
    """Indices of the first element of each run of equal values in a sorted array."""
    if len(group) == 0:
        return np.zeros(0, dtype=np.intp)
    return np.concatenate(([0], np.nonzero(group[1:] != group[:-1])[0] + 1))


def consensus(
    quotes: np.ndarray,
    now_ns: int,
    policy: ConsensusPolicy | str = ConsensusPolicy.PREFER_PRIMARY,
    primary_source: int = OptionSource.STREAM,
    weights: Mapping[int, float] | None = None,
    max_age_ns: int | None = None,
    *,
    r: float = 0.0,
    q: float = 0.0,
) -> np.ndarray:
    """One consensus IV per contract (CONSENSUS_DTYPE); see the module doc for the rules."""
    quotes = np.asarray(quotes)
    if quotes.dtype != CONSENSUS_QUOTE_DTYPE:
        raise TypeError("quotes must have CONSENSUS_QUOTE_DTYPE")
    pol = _policy(policy)
    now = np.int64(now_ns)
    keep = (quotes["ts_recv"] <= now) & np.isfinite(quotes["iv"]) & (quotes["iv"] > 0)
    if max_age_ns is not None:
        keep &= (now - quotes["ts_recv"]) <= np.int64(max_age_ns)
    w_of_source = np.ones(65536)
    if weights is not None:
        w_of_source[:] = 0.0
        for src, w in weights.items():
            if not (np.isfinite(w) and w >= 0):
                raise ValueError("weights must be finite and non-negative")
            w_of_source[int(src)] = float(w)
    if pol is ConsensusPolicy.BLENDED:
        keep &= w_of_source[quotes["source"]] > 0
    qs = quotes[keep]

    # Latest quote per (contract, source): sort ascending, keep the last of each run.
    order = np.lexsort(
        (
            qs["ask"],
            qs["bid"],
            qs["iv"],
            qs["ts_recv"],
            qs["source"],
            qs["strike"],
            qs["right"],
            qs["expiry_ns"],
        )
    )
    qs = qs[order]
    if len(qs):
        last = np.concatenate(
            (
                (qs["expiry_ns"][1:] != qs["expiry_ns"][:-1])
                | (qs["right"][1:] != qs["right"][:-1])
                | (qs["strike"][1:] != qs["strike"][:-1])
                | (qs["source"][1:] != qs["source"][:-1]),
                [True],
            )
        )
        qs = qs[last]
    # qs is now sorted by (expiry, right, strike, source), one row per (contract, source).
    n = len(qs)
    newc = np.ones(n, dtype=bool)
    if n:
        newc[1:] = (
            (qs["expiry_ns"][1:] != qs["expiry_ns"][:-1])
            | (qs["right"][1:] != qs["right"][:-1])
            | (qs["strike"][1:] != qs["strike"][:-1])
        )
    group = np.cumsum(newc) - 1
    starts = np.nonzero(newc)[0]
    n_groups = len(starts)
    out = np.zeros(n_groups, dtype=CONSENSUS_DTYPE)
    if n_groups == 0:
        return out
    iv = qs["iv"]
    src = qs["source"].astype(np.int64)
    ts = qs["ts_recv"]
    out["expiry_ns"] = qs["expiry_ns"][starts]
    out["strike"] = qs["strike"][starts]
    out["right"] = qs["right"][starts]
    out["policy"] = int(pol)
    out["sources_used"] = np.bitwise_or.reduceat((np.int64(1) << src).astype(np.uint32), starts)
    out["n_sources"] = np.diff(np.append(starts, n))
    lo, hi = np.minimum.reduceat(iv, starts), np.maximum.reduceat(iv, starts)
    out["discrepancy"] = hi - lo
    # Median per group: iv sorted within group.
    by_iv = np.lexsort((iv, group))
    cnt = out["n_sources"].astype(np.intp)
    med = 0.5 * (iv[by_iv][starts + (cnt - 1) // 2] + iv[by_iv][starts + cnt // 2])
    out["rel_discrepancy"] = (hi - lo) / med

    def pick(score: np.ndarray) -> np.ndarray:
        """Per group, the row index with the smallest score, ties to the lowest source id."""
        o = np.lexsort((src, score, group))
        return o[_first_of_groups(group[o])]

    # PREFER_PRIMARY: primary first, then freshest.
    primary_pick = pick(np.where(src == int(primary_source), _I64_MIN, -ts))
    if pol is ConsensusPolicy.BLENDED:
        w = w_of_source[src]
        out["iv"] = np.add.reduceat(w * iv, starts) / np.add.reduceat(w, starts)
        out["iv"] = np.clip(out["iv"], lo, hi)  # guard the last-ulp rounding of the mean
        out["chosen_source"] = 0
        out["ts_recv"] = np.maximum.reduceat(ts, starts)
        return out
    chosen = primary_pick
    if pol is ConsensusPolicy.WINNER_BASED:
        bid, ask, und = qs["bid"], qs["ask"], qs["underlying"]
        with np.errstate(invalid="ignore"):
            valid = (
                np.isfinite(bid)
                & np.isfinite(ask)
                & (bid >= 0)
                & (ask > 0)
                & (ask >= bid)
                & np.isfinite(und)
                & (und > 0)
            )
        mref = pick(np.where(valid, -ts, _I64_MAX))
        has_mid = valid[mref]
        mid = ((bid + ask) / 2.0)[mref][group]
        spot = np.where(has_mid, und[mref], 1.0)[group]
        t = (qs["expiry_ns"] - now) / YEAR_NS
        g = greeks(spot, qs["strike"], np.maximum(t, 0.0), iv, r, q, qs["right"] == OptionRight.CALL)
        with np.errstate(divide="ignore", invalid="ignore"):
            err = np.abs(g.price - mid) / g.vega
        err = np.where(np.isfinite(err) & has_mid[group] & (t > 0), err, np.inf)
        win = pick(err)
        ok = np.isfinite(err[win])
        chosen = np.where(ok, win, primary_pick)
        out["fallback"] = ~ok
    out["iv"] = iv[chosen]
    out["chosen_source"] = src[chosen]
    out["ts_recv"] = ts[chosen]
    return out
