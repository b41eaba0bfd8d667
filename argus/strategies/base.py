"""The strategy API: declared parameters, families, intents and timing filters.

A strategy sees only what the projection engine has emitted at or before now (the ts_recv of the event
being processed): closed bars, regime rows, option chains already in the log. It never reads the wall
clock and never sees the bar still forming, because the harness calls it with rows that carry the
offset of the record that emitted them, in offset order. It answers with intents:

- `Target(symbol, units)`: hold `units` position units (the harness's sizer turns units into shares or
  contracts: fixed quantity, Kelly or volatility target);
- `OrderIntent(symbol, units, order_type, ...)`: one order, market, limit or stop;

either with attached `Exits` (take profit, stop loss, time exit, exit at session end).

The same object runs in a backtest and live; its parameters are declared (`Param`) with types,
defaults and ranges, from which the research lab expands grids.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

__all__ = [
    "DayOfWeek",
    "Exits",
    "OrderIntent",
    "Param",
    "RegimeGate",
    "SessionFilter",
    "SpreadExits",
    "SpreadIntent",
    "SpreadLeg",
    "Strategy",
    "Target",
    "TimingFilter",
    "resolve_params",
    "signal_id",
]

NEW_YORK = ZoneInfo("America/New_York")
_TYPES = {"int": int, "float": float, "bool": bool, "str": str}


@dataclass(frozen=True)
class Param:
    """A declared strategy parameter. `low`/`high`/`step` give the research range of numeric ones,
    `choices` the allowed values of the others."""

    name: str
    type: str  # "int" | "float" | "bool" | "str"
    default: Any
    low: float | None = None
    high: float | None = None
    step: float | None = None
    choices: tuple = ()
    doc: str = ""

    def coerce(self, value: Any) -> Any:
        """`value` as this parameter's type, or ValueError naming the parameter, the value and the rule."""
        kind = _TYPES[self.type]
        try:
            if kind is bool and isinstance(value, str):
                if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError
                out = value.lower() in ("true", "1", "yes")
            elif kind is int and isinstance(value, float):
                if not value.is_integer():
                    raise ValueError
                out = int(value)
            elif kind is int and isinstance(value, bool):
                raise ValueError
            else:
                out = kind(value)
        except (TypeError, ValueError):
            raise ValueError(f"parameter {self.name} = {value!r}: must be of type {self.type}") from None
        if kind is float and not math.isfinite(out):
            raise ValueError(f"parameter {self.name} = {value!r}: must be finite")
        if self.low is not None and out < self.low:
            raise ValueError(f"parameter {self.name} = {out!r}: must be >= {self.low}")
        if self.high is not None and out > self.high:
            raise ValueError(f"parameter {self.name} = {out!r}: must be <= {self.high}")
        if self.choices and out not in self.choices:
            raise ValueError(f"parameter {self.name} = {out!r}: must be one of {', '.join(map(str, self.choices))}")
        return out


def resolve_params(declared: Sequence[Param], given: Mapping[str, Any]) -> dict[str, Any]:
    """Defaults overlaid with `given`, each coerced and range-checked; unknown names are refused."""
    names = {p.name for p in declared}
    unknown = sorted(set(given) - names)
    if unknown:
        raise ValueError(f"parameter {unknown[0]}: unknown (declared: {', '.join(sorted(names)) or 'none'})")
    return {p.name: p.coerce(given[p.name]) if p.name in given else p.default for p in declared}


@dataclass(frozen=True)
class Exits:
    """Exits attached to an entry. Percentages are of the entry fill price; `max_bars` counts closed bars
    of the instrument after the entry fill; `session_end` exits on the last bar of the session."""

    take_profit_pct: float | None = None
    stop_loss_pct: float | None = None
    max_bars: int | None = None
    session_end: bool = False

    def __post_init__(self) -> None:
        for name in ("take_profit_pct", "stop_loss_pct"):
            v = getattr(self, name)
            if v is not None and not (math.isfinite(v) and v > 0):
                raise ValueError(f"exits.{name} = {v!r}: must be a finite number > 0")
        if self.max_bars is not None and self.max_bars < 1:
            raise ValueError(f"exits.max_bars = {self.max_bars!r}: must be >= 1")


@dataclass(frozen=True)
class Target:
    """Hold `units` position units of `symbol` (0 = flat; negative = short)."""

    symbol: str
    units: float
    exits: Exits | None = None
    reason: str = ""


@dataclass(frozen=True)
class OrderIntent:
    """One order of `units` position units (signed: positive buys)."""

    symbol: str
    units: float
    order_type: str = "market"  # market | limit | stop
    limit_price: float = math.nan
    stop_price: float = math.nan
    time_in_force: str = "gtc"  # gtc | day | ioc
    exits: Exits | None = None
    reason: str = ""


@dataclass(frozen=True)
class SpreadLeg:
    """One option leg: expiry instant (ns UTC, as in the chain rows), strike, right and side (+1 buy)."""

    expiry_ns: int
    strike: float
    right: str  # "put" | "call"
    side: int

    def __post_init__(self) -> None:
        if self.right not in ("put", "call"):
            raise ValueError(f"leg.right = {self.right!r}: must be put or call")
        if self.side not in (1, -1):
            raise ValueError(f"leg.side = {self.side!r}: must be +1 (buy) or -1 (sell)")


@dataclass(frozen=True)
class SpreadExits:
    """Exits of an option spread: close when the natural cost to close falls to (1 - profit_target_pct%)
    of the credit, rises to stop_multiple x the credit, or `days_before_expiry` days before expiry."""

    profit_target_pct: float | None = None
    stop_multiple: float | None = None
    days_before_expiry: float | None = None

    def __post_init__(self) -> None:
        if self.profit_target_pct is not None and not 0 < self.profit_target_pct <= 100:
            raise ValueError(f"exits.profit_target_pct = {self.profit_target_pct!r}: must be in (0, 100]")
        if self.stop_multiple is not None and not self.stop_multiple > 1:
            raise ValueError(f"exits.stop_multiple = {self.stop_multiple!r}: must be > 1")
        if self.days_before_expiry is not None and not self.days_before_expiry >= 0:
            raise ValueError(f"exits.days_before_expiry = {self.days_before_expiry!r}: must be >= 0")


@dataclass(frozen=True)
class SpreadIntent:
    """Open an option spread on `symbol`'s chain: `units` position units (contracts per leg under fixed
    sizing), filled all-or-none at the natural price on the next chain snapshot."""

    symbol: str
    legs: tuple[SpreadLeg, ...]
    units: float = 1.0
    exits: SpreadExits | None = None
    reason: str = ""


class TimingFilter:
    """A gate on new entries (exits always pass). Filters compose with &, | and ~."""

    def allows(self, ctx, symbol: str) -> bool:  # pragma: no cover - interface
        raise NotImplementedError

    def __and__(self, other: TimingFilter) -> TimingFilter:
        return _Combined(self, other, all)

    def __or__(self, other: TimingFilter) -> TimingFilter:
        return _Combined(self, other, any)

    def __invert__(self) -> TimingFilter:
        return _Not(self)


@dataclass(frozen=True)
class _Combined(TimingFilter):
    a: TimingFilter
    b: TimingFilter
    how: Any

    def allows(self, ctx, symbol: str) -> bool:
        return self.how((self.a.allows(ctx, symbol), self.b.allows(ctx, symbol)))


@dataclass(frozen=True)
class _Not(TimingFilter):
    a: TimingFilter

    def allows(self, ctx, symbol: str) -> bool:
        return not self.a.allows(ctx, symbol)


@dataclass(frozen=True)
class DayOfWeek(TimingFilter):
    """Entries only on these New York weekdays (0 = Monday) of now."""

    days: frozenset[int]

    def allows(self, ctx, symbol: str) -> bool:
        return dt.datetime.fromtimestamp(ctx.now / 1e9, tz=NEW_YORK).weekday() in self.days


@dataclass(frozen=True)
class SessionFilter(TimingFilter):
    """Entries only while the global session label at now is one of `labels` (argus.projections.sessions)."""

    labels: frozenset[str]

    def allows(self, ctx, symbol: str) -> bool:
        return ctx.session_label() in self.labels


@dataclass(frozen=True)
class RegimeGate(TimingFilter):
    """Entries only when the latest market regime row (at or before now) is not in `blocked` (e.g. risk-off)."""

    blocked: frozenset[str] = frozenset({"risk_off"})

    def allows(self, ctx, symbol: str) -> bool:
        return ctx.market_regime() not in self.blocked


def signal_id(strategy_id: str, config_hash: str, offset: int, index: int = 0) -> str:
    """Deterministic id of a signal: BLAKE2b-128 of strategy id, config hash, offset and its index there."""
    return hashlib.blake2b(f"{strategy_id}\0{config_hash}\0{offset}\0{index}".encode(), digest_size=16).hexdigest()


class Strategy:
    """Base class. Subclasses set `name`, `params`, `family`, and override the callbacks they need.

    Callbacks receive `ctx` (argus.replay.context.StrategyContext: now, positions, cash, closed-bar
    history, regimes, chains) and return None, one intent or a sequence of intents."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    params: ClassVar[tuple[Param, ...]] = ()
    family: ClassVar[str] = "any"
    instrument_kinds: ClassVar[frozenset[str]] = frozenset({"equity"})
    max_trades_per_day: ClassVar[float] = 1.0
    #: projections the strategy reads besides bars: "regimes", "market_regime", "sessions", "chains", "quotes"
    uses: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, filters: TimingFilter | None = None, **params: Any):
        self.p: dict[str, Any] = resolve_params(self.params, params)
        self.filters = filters

    @classmethod
    def strategy_id(cls) -> str:
        return cls.name

    def on_start(self, ctx) -> None:
        """Called once before the first event."""

    def on_bar(self, ctx, bar) -> Any:
        """A bar of one of the strategy's symbols closed (bar: argus.replay.context.BarView)."""
        return None

    def on_quote(self, ctx, quote) -> Any:
        return None

    def on_regime(self, ctx, symbol: str, regime: dict) -> Any:
        """The volatility/trend regime of `symbol` (vol, trend, rv, rv_percentile, adx) at a bar close."""
        return None

    def on_session(self, ctx, before: str, after: str) -> Any:
        """A global session transition (argus.projections.sessions names: asia, europe, us_pre, ...)."""
        return None

    def on_chain(self, ctx, chain) -> Any:
        """A new option chain snapshot of one of the strategy's symbols (argus.options.pop.Chain);
        needs "chains" in `uses`."""
        return None

    def on_fill(self, ctx, fill) -> Any:
        return None

    def on_bars(self, ctx, block: BarBlock) -> TargetBlock | Any:
        """Batch form of `on_bar` (argus.replay.fast): the closed bars one log chunk emitted, in emission
        order, and for each the target units decided at its close (NaN: no intent), as a TargetBlock or
        a float array. A decision may use only the bars up to and including its own, so the batch
        strategy carries its own state across blocks; `ctx` holds positions, cash and prices as of the
        start of the block (not updated bar by bar, and without closed-bar history). Decisions must
        not depend on fills. None (the default): not a batch strategy."""
        return None


@dataclass(frozen=True)
class BarBlock:
    """Closed bars in emission order, as columns (`on_bars`). `sym` indexes `symbols` (the backtest's
    symbols in the run's instrument order); `offset` and `ts` are the log offset and ts_recv of the
    record that closed each bar."""

    symbols: tuple[str, ...]
    sym: Any  # int32 array
    offset: Any
    ts: Any
    ts_start: Any
    ts_end: Any
    open: Any
    high: Any
    low: Any
    close: Any
    volume: Any

    def __len__(self) -> int:
        return len(self.sym)


@dataclass(frozen=True)
class TargetBlock:
    """The answer of `on_bars`: target units per bar (NaN: none) and optionally a reason code per bar
    (an index into `reasons`, -1 for none), recorded in the Signal events."""

    units: Any  # float64 array
    code: Any = None  # int8 array or None
    reasons: tuple[str, ...] = ()
