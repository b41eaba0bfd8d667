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
  evaluations and tolerances 1e-6 (analytic Jacobian: a few hundredths of a second for one expiry; the
  Monte Carlo at 200,000 paths takes about 0.1 s);
- Monte Carlo (argus.kernels.heston_mc.mc_spread on the CPU, its twin argus.options.gpu.mc_spread on a
  GPU: `device` "auto" | "cpu" | "gpu", see argus.options.pricing.resolve_device; both draw the same
  random numbers) with `paths` (default 200,000) and `steps` (default max(16, ceil(50 T))), seed = the
  snapshot's log offset unless `seed` is given, so the same log and arguments give the same numbers;
- beside it the lognormal PoP: P(the P&L at expiry > 0), i.e. S_T beyond the breakeven, under the
  risk-neutral lognormal with the short strike's IV (the row's iv, else implied from its mid, else the
  ATM IV).

The computation itself is `argus.projections.options.vertical_pop`, which the options projection of
`argusctl replay` runs on every analysed snapshot: the same chain, spread and arguments give the same
numbers here and in the projection's `option_pop` records.  The projection always runs the CPU kernel
(replay stays CPU-deterministic; its configuration has no device); on the CPU device this command gives
the projection's numbers bit for bit, and the GPU twin is designed to as well (same paths, same chunked
summation order; see argus.options.gpu).
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import numpy as np

from argus.events.layout import HEADER_DTYPE
from argus.events.osi import osi_symbol
from argus.events.types import EventType
from argus.projections.options import implied_div, lognormal_pop, vertical_pop

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


# The numerics live below the projection engine (the options projection of `argusctl replay` runs the same
# code); the old private names stay for existing callers.
_implied_div = implied_div
_lognormal_pop = lognormal_pop


def spread_pop(chain: Chain, expiry: str, short: float, long: float, right: str = "put", *, rate: float = 0.05,
               div: float | None = None, paths: int = 200_000, steps: int | None = None, seed: int | None = None,
               fit: str = "expiry", fit_evals: int = 20, device: str = "auto") -> dict:
    """PoP and P&L statistics of the vertical (short `short`, long `long`, same `right`); see the module doc."""
    from argus.options.pricing import mc_functions, resolve_device

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
    if not exp_ns > chain.ts_event:
        raise ValueError(f"expiry {expiry} is not after the snapshot time")
    try:
        res = vertical_pop(rows, chain.spot, chain.ts_event, exp_ns, short, long, right, offset=chain.offset,
                           rate=rate, div=div, paths=paths, steps=steps, seed=seed, fit=fit, fit_evals=fit_evals,
                           mc_spread=mc_functions(dev)[1])
    except ValueError as err:
        raise ValueError(str(err).replace("for that expiry", f"for {expiry}")) from None
    hp, mc, fitres = res["params"], res["mc"], res["fit"]
    t, credit, width, q, iv, n_steps, mc_seed = (res["years"], res["credit"], res["width"], res["div"],
                                                 res["lognormal_iv"], res["steps"], res["seed"])
    ln_pop = res["lognormal_pop"]
    spot = chain.spot
    fit_n = res["fit_n"]
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
        "short_symbol": osi_symbol(chain.symbol[:6], exp_ns, right, short),
        "long_symbol": osi_symbol(chain.symbol[:6], exp_ns, right, long),
        "credit": credit,
        "width": width,
        "max_loss": width - credit,
        "rate": rate,
        "div": q,
        "heston": {"v0": hp.v0, "kappa": hp.kappa, "theta": hp.theta, "sigma": hp.sigma, "rho": hp.rho},
        "fit": fit,
        "fit_n": int(fit_n),
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
