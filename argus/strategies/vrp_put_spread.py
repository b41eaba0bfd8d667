"""`vrp_put_spread`: sell put credit spreads when implied volatility is rich against realized volatility.

Once per New York day, on the first option chain snapshot of the underlying, with no spread already
open or working on it:
1. gates: the market regime is not risk_off; ATM implied volatility (the mean of the call and put iv
   of the strike nearest spot, on the expiry nearest 30 days inside the DTE window) exceeds realized
   volatility (the standard deviation of the last `rv_days` daily log returns of the underlying's
   closes, x sqrt(252)) by `iv_rv_threshold`;
2. candidates: argus.options.spreads.credit_spreads — puts, |short delta| within ±0.05 of
   `short_delta`, width `width`, credit/width >= `min_credit_to_width`, each leg's bid/ask spread <=
   `max_spread_pct` of its mid and open interest >= `min_open_interest`, DTE in [min_dte, max_dte];
   the pick is the candidate whose |delta| is nearest the target, then the best credit/width;
3. probability of profit: Heston Monte Carlo (argus.options.pop.spread_pop, calibrated to the chain,
   20,000 paths, seed = the chain's log offset) or, with pop_model=lognormal, the lognormal PoP at the
   short strike's iv; it must reach `pop_threshold`.
The spread carries exits: a profit target (% of the credit), a stop (multiple of the credit), and a
close `exit_days` days before expiry; otherwise it settles at expiry (argus.replay.options_book).
"""

from __future__ import annotations

import datetime as dt
import math
from zoneinfo import ZoneInfo

import numpy as np

from argus.strategies.base import Param, SpreadExits, SpreadIntent, SpreadLeg, Strategy

__all__ = ["VrpPutSpread"]

NEW_YORK = ZoneInfo("America/New_York")
_DAY_NS = 86_400 * 10**9


class VrpPutSpread(Strategy):
    name = "vrp_put_spread"
    description = "sell put credit spreads when ATM IV exceeds realized vol, regime permitting, PoP-gated"
    family = "options_income"
    instrument_kinds = frozenset({"equity", "index"})
    max_trades_per_day = 1.0
    uses = frozenset({"chains", "market_regime"})
    params = (
        Param("iv_rv_threshold", "float", 0.02, low=-1.0, high=2.0, doc="ATM IV minus realized vol needed"),
        Param("rv_days", "int", 20, low=2, high=260, doc="daily returns in the realized volatility"),
        Param("min_dte", "float", 20.0, low=0.0, high=400.0, doc="days to expiry, lower bound"),
        Param("max_dte", "float", 45.0, low=0.0, high=400.0, doc="days to expiry, upper bound"),
        Param("short_delta", "float", 0.20, low=0.05, high=0.5, doc="target |delta| of the short put"),
        Param("width", "float", 5.0, low=0.01, high=1000.0, doc="strike distance of the legs"),
        Param("min_credit_to_width", "float", 0.10, low=0.0, high=1.0),
        Param("max_spread_pct", "float", 0.5, low=0.0, high=2.0, doc="max (ask - bid) / mid per leg"),
        Param("min_open_interest", "float", 10.0, low=0.0, high=1e9),
        Param("pop_threshold", "float", 0.65, low=0.0, high=1.0, doc="minimum probability of profit"),
        Param("pop_model", "str", "heston", choices=("heston", "lognormal")),
        Param("profit_target_pct", "float", 50.0, low=1.0, high=100.0, doc="close at this % of the credit kept"),
        Param("stop_multiple", "float", 2.0, low=1.01, high=20.0, doc="close when the cost to close reaches this x credit"),
        Param("exit_days", "float", 5.0, low=0.0, high=100.0, doc="close this many days before expiry"),
    )

    def __init__(self, filters=None, **params):
        super().__init__(filters, **params)
        if self.p["min_dte"] > self.p["max_dte"]:
            raise ValueError(f"parameter min_dte = {self.p['min_dte']}: must be <= max_dte ({self.p['max_dte']})")
        self._daily: dict[str, dict[dt.date, float]] = {}
        self._decided: dict[str, dt.date] = {}
        self.last_decision: dict | None = None  # why the latest daily decision came out as it did

    def on_bar(self, ctx, bar):
        day = dt.datetime.fromtimestamp(bar.ts_end / 1e9, tz=NEW_YORK).date()
        self._daily.setdefault(bar.symbol, {})[day] = bar.close  # the last close of each day
        return None

    def realized_vol(self, symbol: str, before: dt.date) -> float:
        closes = [c for d, c in sorted(self._daily.get(symbol, {}).items()) if d < before]
        n = self.p["rv_days"]
        if len(closes) < n + 1:
            return math.nan
        r = np.diff(np.log(np.asarray(closes[-(n + 1):])))
        return float(np.std(r, ddof=1) * math.sqrt(252))

    def on_chain(self, ctx, chain):
        sym = chain.symbol
        day = dt.datetime.fromtimestamp(chain.ts_recv / 1e9, tz=NEW_YORK).date()
        if self._decided.get(sym) == day or ctx.open_spreads(sym):
            return None
        self._decided[sym] = day
        decision = self.decide(ctx, chain, day)
        self.last_decision = decision
        return decision.get("intent")

    def decide(self, ctx, chain, day: dt.date) -> dict:
        from argus.options.spreads import SpreadFilter, credit_spreads

        p = self.p
        if ctx.market_regime() == "risk_off":
            return {"skip": "market regime risk_off"}
        rows = chain.rows
        days = (rows["expiry_ns"] - chain.ts_recv) / _DAY_NS
        window = rows[(days >= p["min_dte"]) & (days <= p["max_dte"])]
        if not len(window):
            return {"skip": "no expiry in the DTE window"}
        expiries = np.unique(window["expiry_ns"])
        target = expiries[np.argmin(np.abs((expiries - chain.ts_recv) / _DAY_NS - 30.0))]
        near = window[window["expiry_ns"] == target]
        atm_k = near["strike"][np.argmin(np.abs(near["strike"] - chain.spot))]
        ivs = near["iv"][(near["strike"] == atm_k) & np.isfinite(near["iv"])]
        atm_iv = float(ivs.mean()) if len(ivs) else math.nan
        rv = self.realized_vol(chain.symbol, day)
        if not (math.isfinite(atm_iv) and math.isfinite(rv)):
            return {"skip": "no ATM iv or not enough history for realized vol", "atm_iv": atm_iv, "rv": rv}
        if atm_iv - rv < p["iv_rv_threshold"]:
            return {"skip": "iv - rv below threshold", "atm_iv": atm_iv, "rv": rv}
        d = p["short_delta"]
        filt = SpreadFilter(right="put", short_delta=(max(0.0, d - 0.05), d + 0.05), widths=(p["width"],),
                            min_credit_to_width=p["min_credit_to_width"], max_spread_pct=p["max_spread_pct"],
                            min_open_interest=p["min_open_interest"], min_days=p["min_dte"], max_days=p["max_dte"])
        cands = credit_spreads(rows, chain.spot, filt, chain.ts_recv)
        if not len(cands):
            return {"skip": "no candidate passes the filters", "atm_iv": atm_iv, "rv": rv}
        order = np.lexsort((cands["short_strike"], cands["expiry_ns"], -cands["credit_to_width"],
                            np.abs(np.abs(cands["short_delta"]) - d)))
        best = cands[order[0]]
        pop = self.pop(chain, best)
        if not pop >= p["pop_threshold"]:
            return {"skip": "pop below threshold", "pop": pop, "atm_iv": atm_iv, "rv": rv}
        e = int(best["expiry_ns"])
        legs = (SpreadLeg(e, float(best["short_strike"]), "put", -1), SpreadLeg(e, float(best["long_strike"]), "put", 1))
        exits = SpreadExits(p["profit_target_pct"], p["stop_multiple"], p["exit_days"])
        reason = f"iv {atm_iv:.3f} - rv {rv:.3f}; pop {pop:.3f}; credit {float(best['credit']):.2f}"
        return {"intent": SpreadIntent(chain.symbol, legs, 1.0, exits, reason), "pop": pop, "atm_iv": atm_iv,
                "rv": rv}

    def pop(self, chain, best) -> float:
        if self.p["pop_model"] == "lognormal":
            t = (int(best["expiry_ns"]) - chain.ts_recv) / (365 * _DAY_NS)
            iv = float(best["short_iv"])
            be = float(best["breakeven"])
            if not (t > 0 and iv > 0 and be > 0):
                return math.nan
            # P(S_T > breakeven) under the risk-neutral lognormal (rate 0: conservative drift).
            z = (math.log(chain.spot / be) - 0.5 * iv * iv * t) / (iv * math.sqrt(t))
            return 0.5 * math.erfc(-z / math.sqrt(2.0))
        from argus.options.pop import spread_pop

        expiry = dt.datetime.fromtimestamp(int(best["expiry_ns"]) / 1e9, tz=NEW_YORK).date().isoformat()
        out = spread_pop(chain, expiry, float(best["short_strike"]), float(best["long_strike"]), "put", paths=20_000,
                         seed=chain.offset)
        return float(out["pop"])

