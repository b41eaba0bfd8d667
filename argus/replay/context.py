"""What a strategy may see during a backtest: now, its positions and cash, and closed-bar history.

Everything here was emitted at or before now (the ts_recv of the record being processed); the harness
appends a bar to the history only after the bar reducer has closed it, so a strategy that asks for the
bar still forming gets the last closed one or nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["BarView", "QuoteView", "StrategyContext"]


@dataclass(frozen=True, slots=True)
class BarView:
    """One closed bar as a strategy sees it."""

    symbol: str
    instrument_id: int
    offset: int  # the log offset of the record that closed the bar
    ts_start: int
    ts_end: int
    session: int
    open: float
    high: float
    low: float
    close: float
    volume: float


@dataclass(frozen=True, slots=True)
class QuoteView:
    """One quote as a strategy sees it."""

    symbol: str
    offset: int
    ts_event: int
    ts_recv: int
    bid: float
    ask: float
    bid_size: float
    ask_size: float


class _Series:
    """A growing float64 buffer (amortised doubling); `view()` is the filled part."""

    __slots__ = ("data", "n")

    def __init__(self) -> None:
        self.data = np.empty(256)
        self.n = 0

    def append(self, x: float) -> None:
        if self.n == len(self.data):
            self.data = np.concatenate([self.data, np.empty(len(self.data))])
        self.data[self.n] = x
        self.n += 1

    def view(self) -> np.ndarray:
        return self.data[: self.n]


@dataclass
class StrategyContext:
    """The harness's view for strategies. Read-only for them by convention; the harness updates it."""

    symbols: tuple[str, ...]
    cash: float
    now: int = 0
    offset: int = -1
    positions: dict[str, float] = field(default_factory=dict)
    last_price: dict[str, float] = field(default_factory=dict)
    _closes: dict[str, _Series] = field(default_factory=dict)
    _regime: dict[str, object] = field(default_factory=dict)
    _market_regime: str = "unknown"
    _risk_flow: float = float("nan")
    _session_label: str = ""
    _chains: dict[str, object] = field(default_factory=dict)
    _options_value: float = 0.0
    _open_spreads: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for s in self.symbols:
            self.positions.setdefault(s, 0.0)
            self._closes.setdefault(s, _Series())

    def position(self, symbol: str) -> float:
        """Signed quantity held (shares or contracts)."""
        return self.positions[symbol]

    @property
    def equity(self) -> float:
        """Cash plus positions marked at their last closed bar's close plus open option spreads at their
        last mid marks."""
        return (self.cash + sum(q * self.last_price.get(s, 0.0) for s, q in self.positions.items() if q)
                + self._options_value)

    def closes(self, symbol: str, n: int | None = None) -> np.ndarray:
        """The closes of the last `n` closed bars of `symbol` (all by default), oldest first; a view."""
        v = self._closes[symbol].view()
        return v if n is None else v[max(0, len(v) - n):]

    def regime(self, symbol: str):
        """The latest regime row of `symbol` emitted at or before now, or None."""
        return self._regime.get(symbol)

    def chain(self, symbol: str):
        """The latest option chain snapshot of `symbol` at or before now (argus.options.pop.Chain), or None."""
        return self._chains.get(symbol)

    def open_spreads(self, symbol: str) -> int:
        """How many option spreads on `symbol` are open or have an opening order working."""
        return self._open_spreads.get(symbol, 0)

    def market_regime(self) -> str:
        """The latest market regime label ("risk_on", "neutral", "risk_off"; "unknown" before the first)."""
        return self._market_regime

    def risk_flow(self) -> float:
        """The latest global risk flow value at or before now (NaN before the first)."""
        return self._risk_flow

    def session_label(self) -> str:
        return self._session_label

    # -- harness side --------------------------------------------------------------------------

    def _bar_closed(self, bar: BarView) -> None:
        self._closes[bar.symbol].append(bar.close)
        self.last_price[bar.symbol] = bar.close
