"""Strategy classes by name, and the families that bound what a strategy may be.

A family caps the instruments a strategy may trade, how many parameters it may declare (every extra
parameter is another degree of freedom to overfit with) and how often it may trade. The registry
refuses a strategy class that exceeds its family; the harness enforces the instruments and the trading
frequency while it runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from argus.strategies.base import Strategy

__all__ = ["FAMILIES", "Family", "StrategyRegistry", "default_registry"]


@dataclass(frozen=True)
class Family:
    name: str
    instrument_kinds: frozenset[str]
    max_params: int
    max_trades_per_day: float


FAMILIES: dict[str, Family] = {f.name: f for f in (
    Family("trend", frozenset({"equity", "index", "crypto", "fx", "future"}), 6, 4.0),
    Family("mean_reversion", frozenset({"equity", "index", "crypto", "fx", "future"}), 8, 8.0),
    Family("session", frozenset({"equity", "index", "crypto", "fx", "future"}), 8, 4.0),
    Family("options_income", frozenset({"equity", "index"}), 14, 2.0),
)}


class StrategyRegistry:
    """Strategy classes by name; `register` refuses a class that exceeds its family."""

    def __init__(self, families: dict[str, Family] | None = None):
        self.families = dict(FAMILIES if families is None else families)
        self._classes: dict[str, type[Strategy]] = {}

    def register(self, cls: type[Strategy]) -> type[Strategy]:
        name = cls.name
        if not name or not name.isidentifier():
            raise ValueError(f"strategy name = {name!r}: must be a non-empty identifier")
        if name in self._classes and self._classes[name] is not cls:
            raise ValueError(f"strategy name = {name!r}: already registered")
        fam = self.families.get(cls.family)
        if fam is None:
            raise ValueError(f"strategy {name}: family = {cls.family!r} is not one of {', '.join(sorted(self.families))}")
        if len(cls.params) > fam.max_params:
            raise ValueError(f"strategy {name}: declares {len(cls.params)} parameters; family {fam.name} allows at "
                             f"most {fam.max_params}")
        extra = sorted(set(cls.instrument_kinds) - fam.instrument_kinds)
        if extra:
            raise ValueError(f"strategy {name}: instrument kind {extra[0]!r} is not allowed in family {fam.name} "
                             f"({', '.join(sorted(fam.instrument_kinds))})")
        if cls.max_trades_per_day > fam.max_trades_per_day:
            raise ValueError(f"strategy {name}: max_trades_per_day = {cls.max_trades_per_day:g} exceeds family "
                             f"{fam.name}'s {fam.max_trades_per_day:g}")
        self._classes[name] = cls
        return cls

    def names(self) -> list[str]:
        return sorted(self._classes)

    def get(self, name: str) -> type[Strategy]:
        try:
            return self._classes[name]
        except KeyError:
            raise ValueError(f"strategy = {name!r}: unknown (registered: {', '.join(self.names())})") from None

    def create(self, name: str, params: dict[str, Any] | None = None) -> Strategy:
        return self.get(name)(**(params or {}))


def default_registry() -> StrategyRegistry:
    """A registry holding the strategies Argus ships."""
    from argus.strategies.overnight_session import OvernightSession
    from argus.strategies.sma_cross import SmaCross
    from argus.strategies.vrp_put_spread import VrpPutSpread
    from argus.strategies.zscore_revert import ZScoreRevert

    reg = StrategyRegistry()
    for cls in (SmaCross, OvernightSession, ZScoreRevert, VrpPutSpread):
        reg.register(cls)
    return reg
