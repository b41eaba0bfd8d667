"""Backtest configuration: the strategy, its parameters, the data window, execution and sizing.

A configuration reduces to canonical JSON (sorted keys, no whitespace) together with the identity of
the market log range it reads; the run id is BLAKE2b-128 of those bytes, so the same backtest on the
same log always has the same id and writes the same run log.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any

from argus.replay.execution import CostModel

__all__ = ["BacktestConfig", "ExecutionSettings", "FORMAT_VERSION", "parse_bound", "run_id_of"]

FORMAT_VERSION = 2  # bumped when a run log's content changes for the same configuration
_FILLS = ("next_open", "quote")
_SIZING = ("fixed", "kelly", "vol_target")


def _check(name: str, value: float, rule: str, ok: bool) -> None:
    if not ok:
        raise ValueError(f"{name} = {value!r}: {rule}")


@dataclass(frozen=True)
class ExecutionSettings:
    """How orders fill (argus.replay.execution): `next_open` fills market orders at the next bar's open;
    `quote` at the touch of the first quote at or after decision time + latency."""

    fill: str = "next_open"
    latency_ms: float = 0.0
    slippage_bps: float = 0.0
    slippage_ticks: float = 0.0
    tick_size: float = 0.01
    commission_rate: float = 0.0
    commission_per_share: float = 0.0
    commission_per_contract: float = 0.0
    commission_min: float = 0.0
    fee_per_order: float = 0.0
    cost_multiplier: float = 1.0
    stale_quote_ms: float | None = None
    max_chain_age_ms: float = 3_600_000.0  # option spreads: no fill from a chain older than this at decision

    def __post_init__(self) -> None:
        _check("fill", self.fill, f"must be one of {', '.join(_FILLS)}", self.fill in _FILLS)
        _check("latency_ms", self.latency_ms, "must be a finite number >= 0",
               math.isfinite(self.latency_ms) and self.latency_ms >= 0)
        if self.stale_quote_ms is not None:
            _check("stale_quote_ms", self.stale_quote_ms, "must be > 0", self.stale_quote_ms > 0)
        self.costs()  # validates the cost fields

    def costs(self) -> CostModel:
        return CostModel(slippage_bps=self.slippage_bps, slippage_ticks=self.slippage_ticks, tick_size=self.tick_size,
                         commission_rate=self.commission_rate, commission_per_share=self.commission_per_share,
                         commission_per_contract=self.commission_per_contract, commission_min=self.commission_min,
                         fee_per_order=self.fee_per_order, cost_multiplier=self.cost_multiplier)


@dataclass(frozen=True)
class BacktestConfig:
    """One backtest. `timeframe` is a bar label: a duration such as 1m, 5m, 1h, 1d, or `session`
    (exchange sessions). `bar_source` "auto" uses the provider's Bar events when the log holds any for
    the symbols, trades otherwise. The window is [from_offset, to_offset) of the log, further cut to
    bars whose end lies in [from_ts, to_ts) when those are given."""

    strategy: str
    symbols: tuple[str, ...]
    params: dict[str, Any] = field(default_factory=dict)
    timeframe: str = "1d"
    bar_source: str = "auto"
    from_offset: int = 0
    to_offset: int | None = None
    from_ts: int | None = None
    to_ts: int | None = None
    cash: float = 100_000.0
    qty: float = 1.0
    sizing: str = "fixed"
    leverage: float = 1.0
    execution: ExecutionSettings = field(default_factory=ExecutionSettings)

    def __post_init__(self) -> None:
        _check("symbols", self.symbols, "must name at least one symbol", len(self.symbols) > 0)
        _check("bar_source", self.bar_source, "must be auto, trades or provider",
               self.bar_source in ("auto", "trades", "provider"))
        _check("cash", self.cash, "must be a finite number > 0", math.isfinite(self.cash) and self.cash > 0)
        _check("qty", self.qty, "must be a finite number > 0", math.isfinite(self.qty) and self.qty > 0)
        _check("sizing", self.sizing, f"must be one of {', '.join(_SIZING)}", self.sizing in _SIZING)
        _check("leverage", self.leverage, "must be a finite number > 0",
               math.isfinite(self.leverage) and self.leverage > 0)
        _check("from_offset", self.from_offset, "must be >= 0", self.from_offset >= 0)
        if self.to_offset is not None:
            _check("to_offset", self.to_offset, f"must be > from_offset ({self.from_offset})",
                   self.to_offset > self.from_offset)

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["symbols"] = list(self.symbols)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BacktestConfig:
        d = dict(d)
        d["symbols"] = tuple(d["symbols"])
        d["execution"] = ExecutionSettings(**d.get("execution", {}))
        return cls(**d)

    def canonical(self, market_identity: dict[str, Any]) -> str:
        """The canonical JSON recorded first in the run log."""
        doc = {"format": FORMAT_VERSION, "kind": "backtest", "config": self.as_dict(), "market": market_identity}
        return json.dumps(doc, sort_keys=True, separators=(",", ":"))


def parse_bound(value: str | int | None, *, end: bool) -> tuple[int | None, int | None]:
    """(offset, ts) of a window bound: an integer is a log offset; a date YYYY-MM-DD a UTC day, whose
    end (end=True: the day is included) or start is the bound."""
    if value is None:
        return None, None
    if isinstance(value, int) or (isinstance(value, str) and value.isdigit()):
        return int(value), None
    try:
        day = dt.date.fromisoformat(str(value))
    except ValueError:
        raise ValueError(f"{'to' if end else 'from'} = {value!r}: expected a log offset or a date YYYY-MM-DD") from None
    if end:
        day += dt.timedelta(days=1)
    return None, int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp()) * 10**9


def run_id_of(canonical_json: str) -> str:
    return hashlib.blake2b(canonical_json.encode(), digest_size=16).hexdigest()
