"""Probability of profit of a vertical credit spread from the latest option chain in the log.

`latest_chain(log, symbol, at_offset=None)` finds the newest OptionChainSnapshot of `symbol` at or before
`at_offset` (default: the head) with a fast record scan (argus.kernels.codec.record_positions), decoding
only the match. It returns a `Chain` with the snapshot's offset, clocks, spot and rows, and `ref_ts_recv`,
the ts_recv of the log's last event at or before `at_offset` — the reference of the staleness guard.

`spread_pop(chain, expiry, short, long, right, ...)`:
- rows of `expiry` (its New York calendar date); the short and long strikes must be listed for `right`;
- natural credit = bid(short) - ask(long), per share; width = |short - long|, max_loss = width - credit;
- time to expiry T = (expiry_ns - snapshot ts_event) / 365 days;
- rates: `rate` is given (default 0.05, the synthetic feed's rate — pass the real one); the dividend
  yield `div`, when None, is implied by put–call parity at the expiry's strikes nearest the money
  (median of r - ln(F/S)/T with F = K + e^{rT}(C_mid - P_mid)), 0 when no pair quotes both sides;
- Heston calibration (argus.analytics.heston.calibrate_heston) to the snapshot's mid prices of OTM
  contracts (puts K < F, calls K >= F) with bid > 0, ask >= bid and a finite mid, weights
  1/max(ask - bid, 0.01) (capped at 100), on the requested expiry only (fit="expiry", the default) or on
  every expiry at least one day out (fit="all"), with at most `fit_evals` (default 20) function
  evaluations and tolerances 1e-6 — the fit dominates the run time (each evaluation prices the chain
  with finite-difference Jacobians), the Monte Carlo at 200,000 paths takes about 0.1 s;
- Monte Carlo (argus.kernels.heston_mc.mc_spread) with `paths` (default 200,000) and `steps`
  (default max(16, ceil(50 T))), seed = the snapshot's log offset unless `seed` is given, so the same
  log and arguments give the same numbers;
- beside it the lognormal PoP: P(the P&L at expiry > 0), i.e. S_T beyond the breakeven, under the
  risk-neutral lognormal with the short strike's IV (the row's iv, else implied from its mid, else the
  ATM IV).
"""

from __future__ import annotations

import datetime as dt
import math
import time
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import numpy as np

from argus.events.layout import HEADER_DTYPE
from argus.events.types import EventType, OptionRight

__all__ = ["Chain", "StaleChainError", "latest_chain", "spread_pop"]

NEW_YORK = ZoneInfo("America/New_York")
YEAR_NS = 365 * 86_400 * 1_000_000_000
DAY_NS = 86_400 * 1_000_000_000


class StaleChainError(ValueError):
    """The latest chain is older than the allowed age."""


@dataclass(frozen=True)
class Chain:
    symbol: str
    offset: int
    ts_event: int
    ts_recv: int
    spot: float
    rows: np.ndarray  # OPTION_ROW_DTYPE
    ref_ts_recv: int  # ts_recv of the log's last event at or before the requested offset

    @property
    def age_ns(self) -> int:
        return self.ref_ts_recv - self.ts_recv

    def expiries(self) -> list[str]:
        return sorted({_ny_date(int(e)) for e in np.unique(self.rows["expiry_ns"])})


def _ny_date(ns: int) -> str:
    return dt.datetime.fromtimestamp(ns / 1e9, tz=NEW_YORK).date().isoformat()


def latest_chain(log, symbol: str, at_offset: int | None = None, max_age_ns: int | None = None) -> Chain:
    """The newest OptionChainSnapshot of `symbol` at offset <= at_offset (default: the last event).

    Raises ValueError for an unknown symbol or when there is none, StaleChainError when it is older than
    max_age_ns relative to the ts_recv of the log's last event at or before at_offset."""
    from argus.events import codec
    from argus.kernels import codec as kcodec

    iid = log.instrument_id(symbol)
    if iid is None:
        raise ValueError(f"symbol {symbol!r} is not in the log")
    head = log.head()
    if head == 0:
        raise ValueError("the log is empty")
    last = head - 1 if at_offset is None else min(int(at_offset), head - 1)
    if last < 0:
        raise ValueError(f"at_offset={at_offset!r}: must be >= 0")
    found: tuple[int, bytes] | None = None
    ref_ts = None
    want = int(EventType.OPTION_CHAIN_SNAPSHOT)
    with log.reader() as r:
        for c in r.chunks(0, last + 1):
            body = np.frombuffer(c.body, dtype=np.uint8)
            all_pos = kcodec.index_records(body)
            end_idx = c.stop - 1 - c.first_offset
            p_end = int(all_pos[end_idx])
            ref_ts = int(np.frombuffer(body, dtype=HEADER_DTYPE, count=1, offset=p_end)[0]["ts_recv"])
            pos = kcodec.record_positions(body, want)
            if pos.size == 0:
                continue
            idx = np.searchsorted(all_pos, pos)
            offs = c.first_offset + idx
            for p, off in zip(pos[::-1].tolist(), offs[::-1].tolist(), strict=True):
                if not (c.start <= off < c.stop):
                    continue
                h = np.frombuffer(body, dtype=HEADER_DTYPE, count=1, offset=p)[0]
                if int(h["instrument_id"]) == iid:
                    found = (int(off), bytes(body[p:p + int(h["length"])]))
                    break
    if found is None:
        raise ValueError(f"no option chain of {symbol!r} in the log at or before offset {last}")
    off, rec = found
    ev = codec.decode(rec)
    chain = Chain(symbol=symbol, offset=off, ts_event=ev.ts_event, ts_recv=ev.ts_recv,
                  spot=float(ev.data["underlying_price"]), rows=ev.data["rows"], ref_ts_recv=int(ref_ts))
    if max_age_ns is not None and chain.age_ns > max_age_ns:
        raise StaleChainError(f"stale chain: the latest {symbol} option chain (offset {off}) is "
                              f"{chain.age_ns / 1e9:.0f}s older than the log's last event, over the "
                              f"allowed {max_age_ns / 1e9:g}s (--max-age)")
    return chain


def _implied_div(rows: np.ndarray, spot: float, t: float, r: float) -> float:
    """Median dividend yield implied by put–call parity at the strikes nearest the money (0 if none)."""
    calls = rows[rows["right"] == int(OptionRight.CALL)]
    puts = rows[rows["right"] == int(OptionRight.PUT)]
    common, ic, ip = np.intersect1d(calls["strike"], puts["strike"], return_indices=True)
    if common.size == 0:
        return 0.0
    c, p = calls[ic], puts[ip]
    ok = (c["bid"] > 0) & (p["bid"] > 0) & (c["ask"] >= c["bid"]) & (p["ask"] >= p["bid"])
    if not ok.any():
        return 0.0
    k = common[ok]
    diff = 0.5 * (c["bid"][ok] + c["ask"][ok]) - 0.5 * (p["bid"][ok] + p["ask"][ok])
    near = np.argsort(np.abs(k - spot))[:5]
    fwd = k[near] + math.exp(r * t) * diff[near]
    fwd = fwd[fwd > 0]
    if fwd.size == 0:
        return 0.0
    return float(np.median(r - np.log(fwd / spot) / t))


def _lognormal_pop(spot, t, r, q, iv, short, long, right, credit) -> float:
    """P(P&L at expiry > 0) for the vertical under a risk-neutral lognormal S_T with volatility iv."""
    from scipy.stats import norm

    put = right == "put"
    # P&L is monotone in S_T between its values at S -> 0 and S -> inf.
    pnl0 = credit - short + long if put else credit
    pnl_inf = credit if put else credit + short - long
    if min(pnl0, pnl_inf) > 0:
        return 1.0
    if max(pnl0, pnl_inf) <= 0:
        return 0.0
    if put:
        be = short - credit if short > long else long + credit
    else:
        be = short + credit if short < long else long - credit
    d2 = (math.log(spot / be) + (r - q - 0.5 * iv * iv) * t) / (iv * math.sqrt(t))
    p_above = float(norm.cdf(d2))
    return p_above if pnl_inf > 0 else 1.0 - p_above


def spread_pop(chain: Chain, expiry: str, short: float, long: float, right: str = "put", *, rate: float = 0.05,
               div: float | None = None, paths: int = 200_000, steps: int | None = None, seed: int | None = None,
               fit: str = "expiry", fit_evals: int = 20, device: str = "auto") -> dict:
    """PoP and P&L statistics of the vertical (short `short`, long `long`, same `right`); see the module doc."""
    from argus.analytics.black_scholes import implied_vol
    from argus.analytics.heston import calibrate_heston
    from argus.kernels.heston_mc import mc_spread
    from argus.options.pricing import resolve_device

    start = time.perf_counter()
    dev = resolve_device(device)
    right = str(right).strip().lower()
    right = {"p": "put", "c": "call"}.get(right, right)
    if right not in ("put", "call"):
        raise ValueError(f"right={right!r}: must be 'put' or 'call'")
    if fit not in ("expiry", "all"):
        raise ValueError(f"fit={fit!r}: must be 'expiry' or 'all'")
    short, long = float(short), float(long)
    if short == long:
        raise ValueError("short and long strikes must differ")
    rows = chain.rows
    exp_dates = np.array([_ny_date(int(e)) for e in rows["expiry_ns"]])
    sel = rows[exp_dates == expiry]
    if sel.size == 0:
        raise ValueError(f"expiry {expiry} is not in the {chain.symbol} chain at offset {chain.offset}; "
                         f"listed: {', '.join(chain.expiries())}")
    exp_ns = int(sel["expiry_ns"][0])
    t = (exp_ns - chain.ts_event) / YEAR_NS
    if not t > 0:
        raise ValueError(f"expiry {expiry} is not after the snapshot time")
    code = int(OptionRight.PUT if right == "put" else OptionRight.CALL)
    side = sel[sel["right"] == code]

    def leg(k: float) -> np.void:
        m = side[np.isclose(side["strike"], k, rtol=0, atol=1e-9)]
        if m.size == 0:
            raise ValueError(f"strike {k:g} {right} is not listed for {expiry}; listed: "
                             f"{', '.join(f'{x:g}' for x in np.sort(side['strike']))}")
        return m[0]

    rs, rl = leg(short), leg(long)
    credit = float(rs["bid"] - rl["ask"])
    width = abs(short - long)
    spot = chain.spot
    q = _implied_div(sel, spot, t, rate) if div is None else float(div)

    # Calibration set.
    cal = rows if fit == "all" else sel
    cal_t = (cal["expiry_ns"] - chain.ts_event) / YEAR_NS
    mid = 0.5 * (cal["bid"] + cal["ask"])
    fwd = spot * np.exp((rate - q) * cal_t)
    is_call = cal["right"] == int(OptionRight.CALL)
    otm = np.where(is_call, cal["strike"] >= fwd, cal["strike"] < fwd)
    ok = (cal["bid"] > 0) & (cal["ask"] >= cal["bid"]) & np.isfinite(mid) & otm
    ok &= cal_t >= (1.0 / 365.0 if fit == "all" else 0.0)
    ok &= cal_t > 0
    if ok.sum() < 5:
        raise ValueError(f"only {int(ok.sum())} usable OTM quotes for the Heston fit (need 5)")
    weights = np.minimum(1.0 / np.maximum(cal["ask"][ok] - cal["bid"][ok], 0.01), 100.0)
    fitres = calibrate_heston(spot, rate, q, cal["strike"][ok], cal_t[ok], mid[ok],
                              np.where(is_call[ok], "call", "put"), weights=weights,
                              xtol=1e-6, ftol=1e-6, gtol=1e-6, max_nfev=int(fit_evals))
    hp = fitres.params

    # Lognormal PoP with the short strike's IV.
    iv = float(rs["iv"])
    if not (math.isfinite(iv) and iv > 0):
        iv = float(implied_vol(0.5 * (rs["bid"] + rs["ask"]), spot, short, t, rate, q, right == "call"))
    if not (math.isfinite(iv) and iv > 0):
        atm = side[np.argmin(np.abs(side["strike"] - spot))]
        iv = float(atm["iv"]) if math.isfinite(atm["iv"]) and atm["iv"] > 0 else 0.2
    ln_pop = _lognormal_pop(spot, t, rate, q, iv, short, long, right, credit)

    n_steps = max(16, math.ceil(50 * t)) if steps is None else int(steps)
    mc_seed = chain.offset if seed is None else int(seed)
    mc = mc_spread(spot, rate, q, hp.v0, hp.kappa, hp.theta, hp.sigma, hp.rho, t, short, long, right, credit,
                   int(paths), n_steps, mc_seed)
    return {
        "symbol": chain.symbol,
        "snapshot_offset": chain.offset,
        "ts": chain.ts_event,
        "ts_recv": chain.ts_recv,
        "spot": spot,
        "expiry": expiry,
        "years": t,
        "right": right,
        "short": short,
        "long": long,
        "credit": credit,
        "width": width,
        "max_loss": width - credit,
        "rate": rate,
        "div": q,
        "heston": {"v0": hp.v0, "kappa": hp.kappa, "theta": hp.theta, "sigma": hp.sigma, "rho": hp.rho},
        "fit": fit,
        "fit_n": int(ok.sum()),
        "fit_rmse": fitres.rmse,
        "fit_max_abs_error": fitres.max_abs_error,
        "feller": fitres.feller_ok,
        "feller_ratio": fitres.feller_ratio,
        "pop": mc["pop"],
        "pop_se": mc["pop_se"],
        "expected_pnl": mc["expected_pnl"],
        "expected_pnl_se": mc["expected_pnl_se"],
        "p_touch": mc["p_touch"],
        "p_touch_se": mc["p_touch_se"],
        "p_max_loss": mc["p_max_loss"],
        "p_max_loss_se": mc["p_max_loss_se"],
        "q05": mc["q05"],
        "q50": mc["q50"],
        "q95": mc["q95"],
        "lognormal_pop": ln_pop,
        "lognormal_iv": iv,
        "paths": mc["n_paths"],
        "steps": n_steps,
        "seed": mc_seed,
        "seconds": time.perf_counter() - start,
        "device": dev,
    }
