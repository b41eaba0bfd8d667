"""vrp_put_spread's gates and pick on hand-made chains (the PoP against scipy's normal CDF)."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pytest
from scipy.stats import norm

from argus.events.layout import OPTION_ROW_DTYPE
from argus.events.types import OptionRight
from argus.options.pop import Chain
from argus.replay.context import BarView, StrategyContext
from argus.strategies.registry import default_registry
from argus.strategies.vrp_put_spread import VrpPutSpread

DAY = 86_400 * 10**9
NOW = int(dt.datetime(2024, 3, 20, 14, 0, tzinfo=dt.UTC).timestamp()) * 10**9
EXPIRY = NOW + 30 * DAY


def chain(iv: float = 0.30) -> Chain:
    """Puts 85..100 step 5 around spot 100, one expiry 30 days out, bids/asks such that the 90/85 spread
    has credit 0.60 (0.95 bid - 0.35 ask) and |delta| 0.20 at the 90 strike."""
    quotes = {100.0: (3.9, 4.1, -0.50), 95.0: (2.0, 2.2, -0.33), 90.0: (0.95, 1.05, -0.20), 85.0: (0.30, 0.35, -0.10)}
    rows = np.zeros(len(quotes) + 1, dtype=OPTION_ROW_DTYPE)
    for row, (k, (bid, ask, delta)) in zip(rows, quotes.items(), strict=False):
        row["expiry_ns"], row["strike"], row["right"] = EXPIRY, k, int(OptionRight.PUT)
        row["bid"], row["ask"], row["bid_size"], row["ask_size"] = bid, ask, 50, 50
        row["open_interest"], row["iv"], row["delta"] = 500, iv, delta
    call = rows[-1]  # an ATM call, so the ATM iv is the mean of the call and put at 100
    call["expiry_ns"], call["strike"], call["right"] = EXPIRY, 100.0, int(OptionRight.CALL)
    call["bid"], call["ask"], call["bid_size"], call["ask_size"] = 3.9, 4.1, 50, 50
    call["open_interest"], call["iv"], call["delta"] = 500, iv, 0.5
    return Chain("XYZ", 1000, NOW, NOW, 100.0, rows, NOW)


def strategy(**params) -> tuple[VrpPutSpread, StrategyContext]:
    s = VrpPutSpread(**{"rv_days": 5, "pop_model": "lognormal", "min_open_interest": 0, **params})
    ctx = StrategyContext(symbols=("XYZ",), cash=100_000.0)
    ctx._market_regime = "neutral"
    closes = [100.0, 101.0, 99.5, 100.5, 100.0, 100.8]  # six daily closes: five returns
    for i, c in enumerate(closes):
        t = NOW - (len(closes) - i) * DAY
        s.on_bar(ctx, BarView("XYZ", 0, i, t - DAY, t, 0, c, c, c, c, 1.0))
    return s, ctx


def realized(closes) -> float:
    r = np.diff(np.log(closes))
    return float(np.std(r, ddof=1) * math.sqrt(252))


def test_sells_the_spread_nearest_the_target_delta_when_iv_exceeds_rv():
    s, ctx = strategy(pop_threshold=0.5)
    out = s.decide(ctx, chain(), dt.date(2024, 3, 20))
    rv = realized([100.0, 101.0, 99.5, 100.5, 100.0, 100.8])
    assert out["rv"] == pytest.approx(rv)
    assert out["atm_iv"] == pytest.approx(0.30)
    intent = out["intent"]
    assert [(lg.strike, lg.side) for lg in intent.legs] == [(90.0, -1), (85.0, 1)]
    # Lognormal PoP: P(S_T > breakeven 90 - 0.60) with the short strike's iv, zero drift.
    t = 30 / 365
    z = (math.log(100.0 / 89.4) - 0.5 * 0.09 * t) / (0.3 * math.sqrt(t))
    assert out["pop"] == pytest.approx(norm.cdf(z), abs=1e-12)
    assert intent.exits.profit_target_pct == 50.0 and intent.exits.stop_multiple == 2.0


def test_gates_block_entries():
    s, ctx = strategy(pop_threshold=0.5)
    ctx._market_regime = "risk_off"
    assert s.decide(ctx, chain(), dt.date(2024, 3, 20)) == {"skip": "market regime risk_off"}
    s, ctx = strategy(pop_threshold=0.5)
    assert s.decide(ctx, chain(iv=0.05), dt.date(2024, 3, 20))["skip"] == "iv - rv below threshold"
    s, ctx = strategy(pop_threshold=0.99)
    assert s.decide(ctx, chain(), dt.date(2024, 3, 20))["skip"] == "pop below threshold"
    s, ctx = strategy(pop_threshold=0.5, rv_days=20)  # not enough history
    assert "not enough history" in s.decide(ctx, chain(), dt.date(2024, 3, 20))["skip"]


def test_one_decision_per_day_and_none_while_a_spread_is_open():
    s, ctx = strategy(pop_threshold=0.5)
    assert s.on_chain(ctx, chain()) is not None
    assert s.on_chain(ctx, chain()) is None  # same New York day
    s, ctx = strategy(pop_threshold=0.5)
    ctx._open_spreads = {"XYZ": 1}
    assert s.on_chain(ctx, chain()) is None


def test_registered_and_parameters_validated():
    assert "vrp_put_spread" in default_registry().names()
    with pytest.raises(ValueError, match="min_dte"):
        VrpPutSpread(min_dte=50, max_dte=40)
    with pytest.raises(ValueError, match="pop_model"):
        VrpPutSpread(pop_model="magic")
