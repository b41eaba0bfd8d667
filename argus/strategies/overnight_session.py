"""`overnight_session`: hold the backtest's instruments from one global session transition to the next
occurrence of another (DESIGN.md §5, the session tags of argus.projections.sessions), gated by the
global risk flow and the market regime.

Transitions. `entry` and `exit` name the session being ENTERED: with the defaults (entry us_post, exit
us_regular) the strategy buys at the US close (us_regular → us_post, 16:00 New York, 13:00 on a half
day) and sells at the next US open (→ us_regular, 09:30); exit asia sells at the Asia open (20:00 New
York), exit europe at the Europe open (08:00 London), exit us_pre at 04:00 New York. The exit is the
NEXT transition into `exit` after the entry, whatever lies between. The callback is on_session, fired
by the first record (trade, quote, provider bar or Clock event, of any instrument) whose ts_event lies
in the new session; that record also closes the last bar of the old session (a provider bar ending
at 16:00 has ts_event 16:00, already us_post), so deciding "at the last regular-session bar" and "at
the transition" are the same instant here. The first label of the data (none -> x) is not a
transition: a log that starts inside the entry session does not enter until its next occurrence.

Gates (entries only; exits always happen): the latest global risk flow (ctx.risk_flow()) must be
>= `min_risk_flow`, a NaN flow (no component has a return yet, or none in the log) passes or blocks
per `flow_missing`; and the latest market regime of `regime_index` must not be risk_off ("unknown"
during warm-up passes). Both projections are switched on by `uses`.

Weekends and holidays (`weekend`, the same for XNYS holidays, when the partition has a `holiday`
segment instead of us_pre/us_regular/us_post):
- hold: keep the position across the closure until the exit transition (an entry at Friday's close
  with exit asia is sold at the Sunday 20:00 New York Asia open, the weekend → asia handover);
- flat: also exit at the transition into weekend (Friday 20:00 New York) or holiday;
- skip: make no entry when a weekend or holiday segment lies between the entry and the next exit
  transition. This reads the session calendar (argus.projections.sessions.global_session_segments),
  which is known in advance like any exchange schedule; it is not market data, so no lookahead.

Crypto. The labels are global: a 24/7 instrument gets the same transitions as an equity (crypto is
tagged, not exempt), and its bars go on through post-market, Asia, Europe and the weekend, so its
orders fill right after the transition; the weekend → asia handover (Sunday 20:00 New York) is where a
crypto position held with `weekend` hold meets the reopening of the other markets.

Fills in bars mode. An order decided at a transition fills at the open of the instrument's NEXT bar
after the record that fired it (never at the decision bar's close; argus.replay.execution), so:
- intraday bars of an instrument that trades in the session entered (crypto, FX, futures, equities with
  extended-hours data): the fill is the first bar of the new session, one bar interval after the
  transition at worst (e.g. a 1m bar: the 16:00-16:01 post-market bar's open);
- an equity with regular-hours bars only has no bar between 16:00 and the next 09:30: a US-close entry
  fills at the NEXT day's first regular bar open, and an exit decided in the night (asia, europe,
  us_pre) also fills at that open, so the overnight gap is not captured (buy and sell at the same
  open, paying the costs twice). Use extended-hours data, quote mode (`--fill quote`: the first quote
  at or after the transition + latency), or exit us_regular with a buy decided earlier;
- daily bars: every decision fills at the next daily bar's open, a day later: this strategy needs
  intraday bars (or quotes).
"""

from __future__ import annotations

import math

import numpy as np

from argus.strategies.base import Param, Strategy, Target

__all__ = ["OvernightSession"]

_SESSIONS = ("asia", "europe", "us_pre", "us_regular", "us_post")
_CLOSURES = ("weekend", "holiday")


class OvernightSession(Strategy):
    name = "overnight_session"
    description = "hold from one session transition (e.g. the US close) to the next occurrence of another"
    family = "session"
    instrument_kinds = frozenset({"equity", "index", "crypto", "fx", "future"})
    max_trades_per_day = 2.0
    uses = frozenset({"sessions", "market_regime"})
    params = (
        Param("entry", "str", "us_post", choices=_SESSIONS,
              doc="enter at the transition into this session (us_post = the US close)"),
        Param("exit", "str", "us_regular", choices=_SESSIONS,
              doc="exit at the next transition into this session (us_regular = the next US open)"),
        Param("direction", "str", "long", choices=("long", "short"), doc="side of the position"),
        Param("weekend", "str", "hold", choices=("hold", "flat", "skip"),
              doc="across weekends/holidays: hold, exit when one starts, or skip entries spanning one"),
        Param("min_risk_flow", "float", 0.0, low=-0.05, high=0.05, step=0.0025,
              doc="enter only when the global risk flow is >= this"),
        Param("flow_missing", "str", "pass", choices=("pass", "block"),
              doc="what a NaN risk flow (no data yet) does to entries"),
        Param("regime_index", "str", "SPY", doc="index whose market regime gates entries (risk_off blocks)"),
    )

    def __init__(self, filters=None, **params):
        super().__init__(filters, **params)
        if self.p["entry"] == self.p["exit"]:
            raise ValueError(f"parameter exit = {self.p['exit']!r}: must differ from entry ({self.p['entry']!r})")
        self._holding = False
        self._symbols: tuple[str, ...] = ()

    def on_start(self, ctx) -> None:
        self._symbols = tuple(ctx.symbols)

    def gates_open(self, ctx) -> tuple[bool, str]:
        """(entries allowed, why not) from the market regime and the risk flow at now."""
        regime = ctx.market_regime()
        if regime == "risk_off":
            return False, "market regime risk_off"
        flow = ctx.risk_flow()
        if math.isnan(flow):
            return self.p["flow_missing"] == "pass", "risk flow missing"
        if flow < self.p["min_risk_flow"]:
            return False, f"risk flow {flow:.4g} < {self.p['min_risk_flow']:g}"
        return True, ""

    def closure_before_exit(self, now: int) -> bool:
        """Whether a weekend or holiday segment starts after `now` and before the next transition into
        the exit session (from the session calendar)."""
        from argus.projections.config import SESSION_RANGE
        from argus.projections.sessions import SESSION_NAMES, global_session_segments

        segments, labels = global_session_segments(*SESSION_RANGE)
        code = {v: k for k, v in SESSION_NAMES.items()}
        i = int(np.searchsorted(segments[:, 0], now, side="right")) - 1
        exit_code, closures = code[self.p["exit"]], {code[c] for c in _CLOSURES}
        for j in range(max(i + 1, 0), len(labels)):
            if labels[j] == exit_code:
                return False
            if labels[j] in closures:
                return True
        return False

    def on_session(self, ctx, before: str, after: str):
        if before == "none":  # the first label of the data (or time outside the calendar): not a transition
            return None
        out = []
        p = self.p
        if self._holding and (after == p["exit"] or (p["weekend"] == "flat" and after in _CLOSURES)):
            self._holding = False
            reason = f"exit: {before} -> {after}"
            out += [Target(s, 0.0, reason=reason) for s in self._symbols]
        if not self._holding and after == p["entry"]:
            ok, why = self.gates_open(ctx)
            if ok and p["weekend"] == "skip" and self.closure_before_exit(ctx.now):
                ok = False
            if ok:
                self._holding = True
                units = 1.0 if p["direction"] == "long" else -1.0
                reason = f"entry: {before} -> {after}"
                out += [Target(s, units, reason=reason) for s in self._symbols]
        return out or None
