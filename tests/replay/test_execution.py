"""The pessimistic execution simulator (argus.replay.execution): hand-worked cases for every rule and
hypothesis invariants over random quote and bar streams."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from argus.events.layout import OPTION_ROW_DTYPE
from argus.events.types import OptionRight
from argus.replay.execution import (
    BarExecution,
    CancelReport,
    CostModel,
    ExecutionInputError,
    FillReport,
    Order,
    QuoteExecution,
    RejectReport,
    fill_spread,
    settle_spread,
)


def order(oid=1, side=1, qty=100.0, off=10, ts=1_000, **kw) -> Order:
    return Order(order_id=oid, instrument_id=kw.pop("inst", 7), side=side, quantity=qty, decision_offset=off,
                 decision_ts=ts, **kw)


def fills(reports) -> list[FillReport]:
    return [r for r in reports if isinstance(r, FillReport)]


def cancels(reports) -> list[CancelReport]:
    return [r for r in reports if isinstance(r, CancelReport)]


# ----------------------------------------------------------------------------------------- CostModel


def test_slipped_price_applies_bps_then_ticks_against_the_trader():
    c = CostModel(slippage_bps=10, slippage_ticks=2, tick_size=0.01)
    # buy: 100 * (1 + 0.001) = 100.1, + 2 * 0.01 = 100.12; sell: 100 * 0.999 = 99.9, - 0.02 = 99.88
    assert c.slipped_price(100.0, 1) == pytest.approx(100.12, abs=1e-12)
    assert c.slipped_price(100.0, -1) == pytest.approx(99.88, abs=1e-12)


def test_cost_multiplier_scales_slippage_commission_minimum_and_fee():
    c = CostModel(slippage_bps=10, slippage_ticks=2, commission_per_share=0.01, commission_min=1.0,
                  fee_per_order=0.5, cost_multiplier=2.0)
    # 100 * 1.002 = 100.2, + 2 * 2 * 0.01 = 100.24
    assert c.slipped_price(100.0, 1) == pytest.approx(100.24, abs=1e-12)
    assert c.commission(100.0, 10) == pytest.approx(0.2)  # 2 * 10 * 0.01
    assert c.order_charge(0.2, 0.0, True) == pytest.approx((2.0, 1.0))  # min 2 * 1.0, fee 2 * 0.5


def test_commission_is_rate_on_value_plus_per_share_or_per_contract():
    c = CostModel(commission_rate=0.001, commission_per_share=0.005, commission_per_contract=0.65)
    # 100 shares at 100.12: 100 * (0.10012 + 0.005) = 10.512
    assert c.commission(100.12, 100) == pytest.approx(10.512)
    assert c.commission(100.12, -100) == pytest.approx(10.512)  # unsigned
    # 3 contracts at 1.50 (x100): 3 * (0.001 * 150 + 0.65) = 2.4
    assert c.commission(1.5, 3, contracts=True, multiplier=100) == pytest.approx(2.4)


def test_order_minimum_is_paid_by_the_first_fill_and_later_fills_pay_their_own():
    c = CostModel(commission_min=1.0, fee_per_order=0.5)
    assert c.order_charge(0.3, 0.0, True) == (1.0, 0.5)   # max(0.3, 1.0), fee on the first fill
    assert c.order_charge(0.3, 1.0, False) == (0.3, 0.0)  # the order total is already >= the minimum
    assert c.order_charge(1.2, 0.0, True) == (1.2, 0.5)


@pytest.mark.parametrize(("name", "value", "rule"), [
    ("slippage_bps", -1, "slippage_bps = -1: must be >= 0"),
    ("slippage_ticks", math.nan, "slippage_ticks = nan: must be finite"),
    ("tick_size", 0.0, "tick_size = 0.0: must be > 0"),
    ("commission_rate", math.inf, "commission_rate = inf: must be finite"),
    ("commission_min", -0.5, "commission_min = -0.5: must be >= 0"),
    ("cost_multiplier", "2", "cost_multiplier = '2': must be a number"),
])
def test_cost_model_refuses_bad_values_naming_the_field(name, value, rule):
    with pytest.raises(ValueError, match=rule.replace(".", r"\.")):
        CostModel(**{name: value})


# ----------------------------------------------------------------------------------------- submission


@pytest.mark.parametrize(("kw", "field"), [
    ({"qty": 0.0}, "quantity = 0.0"),
    ({"qty": math.nan}, "quantity = nan"),
    ({"qty": -5.0}, "quantity = -5.0"),
    ({"side": 0}, "side = 0"),
    ({"side": 2}, "side = 2"),
    ({"order_type": "limit"}, "limit_price = nan"),
    ({"order_type": "limit", "limit_price": -1.0}, "limit_price = -1.0"),
    ({"order_type": "stop", "stop_price": math.inf}, "stop_price = inf"),
    ({"order_type": "trailing"}, "order_type = 'trailing'"),
    ({"time_in_force": "fok"}, "time_in_force = 'fok'"),
    ({"off": -1}, "decision_offset = -1"),
])
@pytest.mark.parametrize("engine", [BarExecution, QuoteExecution])
def test_submit_refuses_bad_orders_naming_the_field(engine, kw, field):
    ex = engine(CostModel())
    rej = ex.submit(order(**kw))
    assert isinstance(rej, RejectReport)
    assert rej.reason.startswith(field) and "must" in rej.reason
    assert ex.working() == []


def test_submit_refuses_a_duplicate_order_id_and_working_is_in_id_order():
    ex = BarExecution(CostModel())
    assert ex.submit(order(oid=5)) is None
    assert ex.submit(order(oid=2)) is None
    assert "order_id = 5" in ex.submit(order(oid=5)).reason
    assert [o.order_id for o in ex.working()] == [2, 5]


def test_submit_accepts_numpy_numbers_and_refuses_a_bool_side():
    ex = BarExecution(CostModel())
    assert ex.submit(Order(np.int64(1), np.int64(7), 1, np.float64(5.0), np.int64(3), np.int64(9))) is None
    assert ex.submit(order(oid=2, side=True)).reason.startswith("side = True")


def test_cancel_returns_the_leftover_and_unknown_ids_give_none():
    ex = QuoteExecution(CostModel())
    ex.submit(order(qty=300))
    ex.on_quote(7, 11, 2_000, 2_000, 10.00, 10.02, 100, 100)  # 100 of 300 filled
    rep = ex.cancel(1, 12, 2_100, "user")
    assert rep == CancelReport(1, 12, 2_100, "user", 200.0)
    assert ex.cancel(1, 13, 2_200, "again") is None
    assert ex.working() == []


def test_engines_refuse_bad_settings_naming_the_field():
    with pytest.raises(ValueError, match="latency_ns = -1"):
        QuoteExecution(CostModel(), latency_ns=-1)
    with pytest.raises(ValueError, match="stale_after_ns = nan"):
        QuoteExecution(CostModel(), stale_after_ns=math.nan)
    with pytest.raises(ValueError, match="costs = "):
        BarExecution({"slippage_bps": 1})
    with pytest.raises(ValueError, match="multiplier = 0"):
        BarExecution(CostModel(), multiplier=0)


# ----------------------------------------------------------------------------------------- bars


def test_bars_market_order_never_fills_at_the_decision_bar_and_fills_at_next_open_slipped():
    c = CostModel(slippage_bps=10, slippage_ticks=1, commission_rate=0.001)
    ex = BarExecution(c)
    ex.submit(order(off=10))
    assert ex.on_bar(7, 10, 1_000, 50.0, 52.0, 49.0, 51.0) == []  # the decision bar itself
    assert ex.on_bar(8, 11, 1_100, 50.0, 52.0, 49.0, 51.0) == []  # another instrument
    (f,) = ex.on_bar(7, 12, 1_200, 50.0, 52.0, 49.0, 51.0)
    # 50 * 1.001 = 50.05, + 1 tick = 50.06; commission 0.001 * 50.06 * 100 = 5.006; slippage 0.06 * 100
    assert (f.offset, f.ts, f.source, f.ref_price) == (12, 1_200, "bar_open", 50.0)
    assert f.price == pytest.approx(50.06, abs=1e-12)
    assert f.quantity == 100.0
    assert f.commission == pytest.approx(5.006)
    assert f.slippage_cost == pytest.approx(6.0)
    assert ex.working() == []


def test_bars_slippage_is_not_clipped_to_the_bar_range():
    ex = BarExecution(CostModel(slippage_bps=20))
    ex.submit(order(side=-1))
    (f,) = ex.on_bar(7, 11, 0, 50.0, 51.0, 50.0, 50.5)
    assert f.price == pytest.approx(49.9)  # 50 * 0.998, below the bar's low of 50
    assert f.quantity == -100.0


@pytest.mark.parametrize(("side", "stop", "bar", "ref"), [
    (1, 51.0, (50.0, 52.0, 49.0, 51.5), 51.0),   # buy stop touched inside the bar: at the stop
    (1, 51.0, (53.0, 54.0, 52.5, 53.5), 53.0),   # gapped above: at the (worse) open
    (-1, 48.0, (49.0, 49.5, 47.5, 48.0), 48.0),  # sell stop touched: at the stop
    (-1, 48.0, (47.0, 47.5, 46.0, 46.5), 47.0),  # gapped below: at the (worse) open
    (1, 51.0, (50.0, 51.0, 49.0, 50.5), 51.0),   # high == stop triggers
])
def test_bars_stop_fills_at_the_worse_of_stop_and_open_plus_slippage(side, stop, bar, ref):
    ex = BarExecution(CostModel(slippage_ticks=1))
    ex.submit(order(side=side, order_type="stop", stop_price=stop))
    (f,) = ex.on_bar(7, 11, 0, *bar)
    assert f.source == "bar_stop" and f.ref_price == ref
    assert f.price == pytest.approx(ref + side * 0.01, abs=1e-12)


def test_bars_stop_not_reached_keeps_working():
    ex = BarExecution(CostModel())
    ex.submit(order(order_type="stop", stop_price=51.0))
    assert ex.on_bar(7, 11, 0, 50.0, 50.99, 49.0, 50.5) == []
    assert len(ex.working()) == 1


@pytest.mark.parametrize(("side", "limit", "bar", "price"), [
    (1, 49.0, (50.0, 51.0, 49.0, 50.0), None),     # low touches the limit: not through, no fill
    (1, 49.0, (50.0, 51.0, 48.99, 50.0), 49.0),    # traded through: at the limit
    (1, 49.0, (48.5, 49.5, 48.0, 49.0), 48.5),     # opened through: at the open
    (-1, 52.0, (50.0, 52.0, 49.0, 51.0), None),    # high touches: no fill
    (-1, 52.0, (50.0, 52.01, 49.0, 51.0), 52.0),   # through: at the limit
    (-1, 52.0, (53.0, 53.5, 52.5, 53.0), 53.0),    # opened through: at the open
])
def test_bars_limit_fills_only_when_traded_through_without_slippage(side, limit, bar, price):
    ex = BarExecution(CostModel(slippage_bps=50, slippage_ticks=3, commission_per_share=0.01))
    ex.submit(order(side=side, order_type="limit", limit_price=limit))
    reps = ex.on_bar(7, 11, 0, *bar)
    if price is None:
        assert reps == [] and len(ex.working()) == 1
    else:
        (f,) = reps
        assert (f.price, f.ref_price, f.slippage_cost, f.source, f.liquidity) == (price, price, 0.0,
                                                                                   "bar_limit", "maker")
        assert f.commission == pytest.approx(1.0)  # 100 * 0.01


def test_bars_ioc_gets_only_the_next_bar_then_is_canceled():
    ex = BarExecution(CostModel())
    ex.submit(order(order_type="limit", limit_price=40.0, time_in_force="ioc"))
    assert ex.on_bar(7, 10, 0, 50.0, 51.0, 39.0, 50.0) == []  # decision bar: not its chance
    (c,) = ex.on_bar(7, 11, 5, 50.0, 51.0, 49.0, 50.0)
    assert c == CancelReport(1, 11, 5, "ioc: not filled by the next bar", 100.0)
    assert ex.on_bar(7, 12, 6, 50.0, 51.0, 39.0, 50.0) == []


def test_bars_day_order_is_canceled_by_a_bar_of_a_later_session():
    ex = BarExecution(CostModel())
    ex.submit(order(order_type="limit", limit_price=40.0, time_in_force="day"))
    ex.submit(order(oid=2, order_type="limit", limit_price=40.0))  # gtc stays
    assert ex.on_bar(7, 11, 0, 50.0, 51.0, 49.0, 50.0, session=3) == []  # pins session 3
    assert ex.on_bar(7, 12, 0, 50.0, 51.0, 49.0, 50.0, session=3) == []
    # session 4 trades through 40, but the day order has expired before it is tried
    reps = ex.on_bar(7, 13, 9, 45.0, 46.0, 39.0, 45.0, session=4)
    assert isinstance(reps[0], CancelReport) and reps[0].order_id == 1 and reps[0].leftover == 100.0
    assert isinstance(reps[1], FillReport) and reps[1].order_id == 2 and reps[1].price == 40.0


def test_bars_day_order_with_an_explicit_session_expires_on_the_first_bar_of_another():
    ex = BarExecution(CostModel())
    ex.submit(order(time_in_force="day", session=1))
    (c,) = ex.on_bar(7, 11, 0, 50.0, 51.0, 49.0, 50.0, session=2)
    assert isinstance(c, CancelReport)


def test_bars_invalid_bar_is_refused_naming_the_field():
    ex = BarExecution(CostModel())
    with pytest.raises(ExecutionInputError, match="open = nan"):
        ex.on_bar(7, 11, 0, math.nan, 51.0, 49.0, 50.0)
    with pytest.raises(ExecutionInputError, match="low/high"):
        ex.on_bar(7, 11, 0, 48.0, 51.0, 49.0, 50.0)


def test_bars_commission_minimum_and_fee_on_a_single_fill():
    ex = BarExecution(CostModel(commission_per_share=0.005, commission_min=1.0, fee_per_order=0.25))
    ex.submit(order(qty=10))
    (f,) = ex.on_bar(7, 11, 0, 50.0, 51.0, 49.0, 50.0)
    assert f.commission == pytest.approx(1.25) and f.fee == 0.25  # max(0.05, 1.0) + 0.25


# ----------------------------------------------------------------------------------------- quotes


def test_quotes_market_buy_waits_for_latency_and_a_later_offset_then_takes_the_ask():
    ex = QuoteExecution(CostModel(), latency_ns=500)
    ex.submit(order(off=10, ts=1_000))
    assert ex.on_quote(7, 10, 2_000, 2_000, 10.00, 10.02, 100, 100) == []  # decision offset
    assert ex.on_quote(7, 11, 1_499, 1_499, 10.00, 10.02, 100, 100) == []  # before decision + latency
    (f,) = ex.on_quote(7, 12, 1_500, 1_500, 10.00, 10.02, 100, 100)
    assert (f.price, f.ref_price, f.quantity, f.offset, f.ts, f.source) == (10.02, 10.02, 100.0, 12, 1_500,
                                                                            "quote")


def test_quotes_market_sell_at_the_bid_minus_slippage():
    ex = QuoteExecution(CostModel(slippage_bps=10))
    ex.submit(order(side=-1, qty=50))
    (f,) = ex.on_quote(7, 11, 2_000, 2_000, 10.00, 10.02, 100, 100)
    assert f.price == pytest.approx(9.99) and f.quantity == -50.0  # 10.00 * 0.999
    assert f.slippage_cost == pytest.approx(0.5)  # 0.01 * 50


def test_quotes_partial_fills_up_to_displayed_size_then_rest_keeps_working():
    ex = QuoteExecution(CostModel())
    ex.submit(order(qty=300))
    (f1,) = ex.on_quote(7, 11, 2_000, 2_000, 10.00, 10.02, 500, 100)
    assert (f1.quantity, f1.remaining) == (100.0, 200.0)
    (f2,) = ex.on_quote(7, 12, 2_100, 2_100, 10.01, 10.03, 500, 500)
    assert (f2.price, f2.quantity, f2.remaining) == (10.03, 200.0, 0.0)
    assert ex.working() == []


def test_quotes_ioc_cancels_the_rest_after_its_first_quote():
    ex = QuoteExecution(CostModel())
    ex.submit(order(qty=300, time_in_force="ioc"))
    f, c = ex.on_quote(7, 11, 2_000, 2_000, 10.00, 10.02, 500, 100)
    assert f.quantity == 100.0 and c.leftover == 200.0 and c.order_id == 1
    assert ex.working() == []


def test_quotes_displayed_size_is_shared_by_orders_on_the_same_quote():
    ex = QuoteExecution(CostModel())
    ex.submit(order(oid=1, qty=80))
    ex.submit(order(oid=2, qty=80))
    f1, f2 = ex.on_quote(7, 11, 2_000, 2_000, 10.00, 10.02, 0, 100)
    assert (f1.order_id, f1.quantity, f2.order_id, f2.quantity) == (1, 80.0, 2, 20.0)


@pytest.mark.parametrize("quote", [
    (0.0, 10.02, 100, 100),        # bid <= 0
    (10.00, -1.0, 100, 100),       # ask <= 0
    (10.03, 10.02, 100, 100),      # crossed
    (math.nan, 10.02, 100, 100),   # non-finite
    (10.00, math.inf, 100, 100),
    (10.00, 10.02, 100, math.nan),
])
def test_quotes_unusable_quote_gives_no_fill(quote):
    ex = QuoteExecution(CostModel())
    ex.submit(order())
    assert ex.on_quote(7, 11, 2_000, 2_000, *quote) == []
    assert len(ex.working()) == 1


def test_quotes_stale_quote_gives_no_fill():
    ex = QuoteExecution(CostModel(), stale_after_ns=1_000)
    ex.submit(order())
    assert ex.on_quote(7, 11, 5_001, 4_000, 10.00, 10.02, 100, 100) == []  # 1001 ns old
    (f,) = ex.on_quote(7, 12, 5_100, 4_100, 10.00, 10.02, 100, 100)       # exactly 1000 ns: usable
    assert f.price == 10.02


def test_quotes_zero_displayed_size_gives_no_fill():
    ex = QuoteExecution(CostModel())
    ex.submit(order())
    assert ex.on_quote(7, 11, 2_000, 2_000, 10.00, 10.02, 100, 0) == []


def test_quotes_limit_rests_and_fills_only_on_trades_strictly_through_it():
    ex = QuoteExecution(CostModel(slippage_bps=10))
    ex.submit(order(order_type="limit", limit_price=10.00))
    assert ex.on_trade(7, 11, 2_000, 9.90, 1_000) == []                  # before its arrival quote
    assert ex.on_quote(7, 12, 2_100, 2_100, 9.98, 10.01, 100, 100) == []  # not marketable: rests
    assert ex.on_quote(7, 13, 2_200, 2_200, 9.97, 10.00, 100, 100) == []  # resting: quotes do not fill
    assert ex.on_trade(7, 14, 2_300, 10.00, 500) == []                   # at the limit: not through
    (f1,) = ex.on_trade(7, 15, 2_400, 9.99, 30)
    assert (f1.price, f1.quantity, f1.source, f1.liquidity) == (10.0, 30.0, "trade_through", "maker")
    assert f1.slippage_cost == 0.0
    (f2,) = ex.on_trade(7, 16, 2_500, 9.98, 1_000)
    assert (f2.price, f2.quantity, f2.remaining) == (10.0, 70.0, 0.0)


def test_quotes_trade_size_is_shared_by_resting_limits_in_id_order():
    ex = QuoteExecution(CostModel())
    ex.submit(order(oid=1, qty=60, order_type="limit", limit_price=10.00))
    ex.submit(order(oid=2, qty=60, order_type="limit", limit_price=10.00))
    ex.on_quote(7, 11, 2_000, 2_000, 9.98, 10.01, 100, 100)  # both rest
    f1, f2 = ex.on_trade(7, 12, 2_100, 9.99, 100)
    assert (f1.order_id, f1.quantity, f2.order_id, f2.quantity) == (1, 60.0, 2, 40.0)


def test_quotes_marketable_limit_takes_the_ask_up_to_size_with_slippage_capped_at_the_limit():
    ex = QuoteExecution(CostModel(slippage_bps=100))
    ex.submit(order(qty=80, order_type="limit", limit_price=10.05))
    (f,) = ex.on_quote(7, 11, 2_000, 2_000, 10.00, 10.02, 100, 50)
    # 10.02 * 1.01 = 10.1202 > 10.05: capped at the limit; 50 (ask_size) of 80
    assert (f.price, f.ref_price, f.quantity, f.source) == (10.05, 10.02, 50.0, "quote")
    (f2,) = ex.on_trade(7, 12, 2_100, 10.04, 100)  # the 30 left rest at 10.05
    assert (f2.price, f2.quantity) == (10.05, 30.0)


def test_quotes_marketable_sell_limit_takes_the_bid():
    ex = QuoteExecution(CostModel())
    ex.submit(order(side=-1, qty=40, order_type="limit", limit_price=10.00))
    (f,) = ex.on_quote(7, 11, 2_000, 2_000, 10.01, 10.03, 40, 10)
    assert (f.price, f.quantity) == (10.01, -40.0)


def test_quotes_resting_sell_limit_fills_on_a_trade_strictly_above():
    ex = QuoteExecution(CostModel())
    ex.submit(order(side=-1, order_type="limit", limit_price=10.10))
    ex.on_quote(7, 11, 2_000, 2_000, 10.00, 10.02, 100, 100)
    assert ex.on_trade(7, 12, 2_100, 10.10, 100) == []
    (f,) = ex.on_trade(7, 13, 2_200, 10.11, 100)
    assert (f.price, f.quantity) == (10.10, -100.0)


def test_quotes_ioc_limit_does_not_rest():
    ex = QuoteExecution(CostModel())
    ex.submit(order(order_type="limit", limit_price=10.00, time_in_force="ioc"))
    (c,) = ex.on_quote(7, 11, 2_000, 2_000, 9.98, 10.01, 100, 100)
    assert c.leftover == 100.0
    assert ex.on_trade(7, 12, 2_100, 9.90, 100) == []


def test_quotes_ioc_on_an_unusable_first_quote_is_canceled():
    ex = QuoteExecution(CostModel())
    ex.submit(order(time_in_force="ioc"))
    (c,) = ex.on_quote(7, 11, 2_000, 2_000, 10.05, 10.02, 100, 100)
    assert c.reason == "ioc: quote unusable" and c.leftover == 100.0


def test_quotes_stop_triggers_on_the_touch_then_acts_as_market():
    ex = QuoteExecution(CostModel())
    ex.submit(order(oid=1, qty=150, order_type="stop", stop_price=10.10))
    ex.submit(order(oid=2, side=-1, order_type="stop", stop_price=9.90))
    assert ex.on_quote(7, 11, 2_000, 2_000, 10.05, 10.08, 100, 100) == []
    (f,) = ex.on_quote(7, 12, 2_100, 2_100, 10.08, 10.10, 100, 100)  # ask touches 10.10
    assert (f.order_id, f.price, f.quantity) == (1, 10.10, 100.0)
    (g,) = ex.on_quote(7, 13, 2_200, 2_200, 10.00, 10.05, 100, 100)  # triggered: market at the ask
    assert (g.order_id, g.price, g.quantity) == (1, 10.05, 50.0)
    (h,) = ex.on_quote(7, 14, 2_300, 2_300, 9.90, 9.95, 100, 100)   # bid touches 9.90
    assert (h.order_id, h.price, h.quantity) == (2, 9.90, -100.0)


def test_quotes_day_orders_expire_when_the_harness_says_so():
    ex = QuoteExecution(CostModel())
    ex.submit(order(oid=1, time_in_force="day"))
    ex.submit(order(oid=2))
    (c,) = ex.expire_day_orders(50, 9_000)
    assert (c.order_id, c.offset, c.ts, c.leftover) == (1, 50, 9_000, 100.0)
    assert [o.order_id for o in ex.working()] == [2]


def test_quotes_commission_minimum_is_charged_across_partial_fills():
    ex = QuoteExecution(CostModel(commission_per_share=0.005, commission_min=1.0, fee_per_order=0.1))
    ex.submit(order(qty=300))
    (f1,) = ex.on_quote(7, 11, 2_000, 2_000, 10.00, 10.02, 0, 100)
    (f2,) = ex.on_quote(7, 12, 2_100, 2_100, 10.00, 10.02, 0, 200)
    # first: max(100 * 0.005 = 0.5, 1.0) + 0.1 fee; second: its own 200 * 0.005 = 1.0
    assert f1.commission == pytest.approx(1.1) and f1.fee == pytest.approx(0.1)
    assert f2.commission == pytest.approx(1.0) and f2.fee == 0.0


# ----------------------------------------------------------------------------------------- options

DAY = 86_400_000_000_000


def chain(*rows) -> np.ndarray:
    """Rows (strike, right, bid, ask, bid_size, ask_size) of a chain expiring on day 30."""
    a = np.zeros(len(rows), dtype=OPTION_ROW_DTYPE)
    for i, (k, right, bid, ask, bs, asz) in enumerate(rows):
        a[i]["expiry_ns"] = 30 * DAY
        a[i]["strike"] = k
        a[i]["right"] = right
        a[i]["bid"], a[i]["ask"], a[i]["bid_size"], a[i]["ask_size"] = bid, ask, bs, asz
        a[i]["iv"], a[i]["delta"] = 0.2, -0.3
        a[i]["contract_id"] = 100 + i
    return a


P, C = int(OptionRight.PUT), int(OptionRight.CALL)


def put_spread():
    rows = chain((95.0, P, 1.20, 1.30, 10, 10), (90.0, P, 0.50, 0.60, 10, 10))
    return rows, [(rows[0], -1), (rows[1], 1)]


def spread_fill(legs, **kw):
    args = {"chain_offset": 40, "chain_ts_recv": 20 * DAY, "now_ts": 20 * DAY + 1_000, "max_age_ns": 5_000,
            "costs": CostModel(commission_per_contract=0.65), "quantity": 2}
    args.update(kw)
    return fill_spread(legs, **args)


def test_spread_fills_each_leg_at_the_natural_price_with_per_contract_commission():
    _, legs = put_spread()
    short, long = spread_fill(legs, order_id=9)
    # sell the 95 put at its bid 1.20, buy the 90 put at its ask 0.60: credit (1.20 - 0.60) * 2 * 100 = 120
    assert (short.price, short.quantity, short.instrument_id, short.order_id) == (1.20, -2.0, 100, 9)
    assert (long.price, long.quantity, long.instrument_id) == (0.60, 2.0, 101)
    assert (short.offset, short.ts, short.source) == (40, 20 * DAY, "chain")
    assert -(short.price * short.quantity + long.price * long.quantity) * 100 == pytest.approx(120.0)
    assert short.commission == pytest.approx(1.30) and long.commission == pytest.approx(1.30)  # 0.65 * 2


def test_spread_minimum_and_fee_are_charged_once_for_the_whole_spread():
    _, legs = put_spread()
    costs = CostModel(commission_per_contract=0.65, commission_min=2.0, fee_per_order=1)
    a, b = spread_fill(legs, costs=costs)
    assert a.commission == pytest.approx(3.0)  # max(1.30, 2.0) + 1.0
    assert b.commission == pytest.approx(1.30)


def test_spread_slippage_moves_each_leg_against_the_trader():
    _, legs = put_spread()
    a, b = spread_fill(legs, costs=CostModel(slippage_ticks=1))
    assert a.price == pytest.approx(1.19) and b.price == pytest.approx(0.61)
    assert a.slippage_cost == pytest.approx(2.0)  # 0.01 * 2 * 100


@pytest.mark.parametrize(("change", "reason"), [
    ({"now_ts": 20 * DAY + 5_001}, "stale chain"),
    ({"now_ts": 20 * DAY - 1}, "no lookahead"),
])
def test_spread_on_a_stale_or_future_chain_is_rejected(change, reason):
    _, legs = put_spread()
    rej = spread_fill(legs, **change)
    assert isinstance(rej, RejectReport) and reason in rej.reason


@pytest.mark.parametrize(("field", "value", "text"), [
    ("bid", 0.0, "bid = 0.0"),
    ("ask", math.nan, "ask = nan"),
    ("ask", 1.10, "ask = 1.1: must be >= bid"),
    ("delta", math.nan, "delta = nan"),
    ("iv", math.nan, "iv = nan"),
    ("bid_size", 1.0, "bid_size = 1.0: must be >= quantity"),
    ("expiry_ns", 20 * DAY, "expiry_ns"),
    ("right", 0, "right = 0"),
])
def test_spread_with_a_bad_leg_is_rejected_all_or_none(field, value, text):
    rows, legs = put_spread()
    rows[0][field] = value
    rej = spread_fill(legs)
    assert isinstance(rej, RejectReport)
    assert rej.reason.startswith("legs[0]") and text in rej.reason


def test_spread_buy_leg_needs_ask_size():
    rows, legs = put_spread()
    rows[1]["ask_size"] = 1.0
    rows[1]["bid_size"] = 0.0  # irrelevant to a buy leg
    rej = spread_fill(legs)
    assert isinstance(rej, RejectReport) and "legs[1]" in rej.reason and "ask_size = 1.0" in rej.reason


def test_spread_bad_arguments_raise_naming_the_field():
    _, legs = put_spread()
    with pytest.raises(ValueError, match="quantity = 0"):
        spread_fill(legs, quantity=0)
    with pytest.raises(ValueError, match=r"legs\[0\].side = 0"):
        spread_fill([(legs[0][0], 0)])


@pytest.mark.parametrize(("close", "cash"), [
    (92.0, -600.0),    # short 95 put 3 ITM: -3 * 2 * 100
    (88.0, -1000.0),   # -7 * 200 + 2 * 200: the max loss (width 5) * 200
    (100.0, 0.0),      # both out of the money
    (95.0, 0.0),       # at the money: worthless
])
def test_cash_settlement_pays_intrinsic_against_the_close(close, cash):
    _, legs = put_spread()
    s = settle_spread(legs, 2, close, style="cash")
    assert s.cash == pytest.approx(cash) and s.shares == 0.0 and s.value == pytest.approx(cash)


def test_physical_settlement_assigns_the_short_put_and_exercises_the_long_put():
    _, legs = put_spread()
    s = settle_spread(legs, 2, 92.0, style="physical")
    # short 95 put assigned: buy 200 shares at 95 = -19,000 cash; the 90 put expires
    assert (s.shares, s.cash) == (200.0, -19_000.0)
    assert s.value == pytest.approx(-600.0)  # 200 * 92 - 19,000
    assert [leg.exercised for leg in s.legs] == [True, False]
    s = settle_spread(legs, 2, 88.0, style="physical")
    # buy 200 at 95 (assigned), sell 200 at 90 (exercised): flat, -1,000
    assert (s.shares, s.cash) == (0.0, -1_000.0)


def test_physical_settlement_of_calls():
    rows = chain((100.0, C, 1, 1, 1, 1), (105.0, C, 1, 1, 1, 1))
    s = settle_spread([(rows[0], 1), (rows[1], -1)], 1, 110.0, style="physical")
    # long 100 call: buy 100 at 100; short 105 call assigned: sell 100 at 105 -> flat, +500 cash
    assert (s.shares, s.cash, s.value) == (0.0, 500.0, 500.0)
    s = settle_spread([(rows[0], -1)], 3, 103.0, style="physical")
    assert (s.shares, s.cash) == (-300.0, 30_000.0)


def test_settlement_refuses_bad_arguments():
    _, legs = put_spread()
    with pytest.raises(ValueError, match="style = 'american'"):
        settle_spread(legs, 1, 90.0, style="american")
    with pytest.raises(ValueError, match="underlying_close = nan"):
        settle_spread(legs, 1, math.nan)


@given(
    strikes=st.lists(st.tuples(st.integers(50, 150), st.sampled_from([C, P]), st.sampled_from([1, -1])),
                     min_size=1, max_size=4),
    close=st.integers(40, 160),
    qty=st.integers(1, 10),
)
@settings(max_examples=100, deadline=None)
def test_physical_settlement_is_worth_the_cash_settlement(strikes, close, qty):
    rows = chain(*[(float(k), r, 1, 1, 1, 1) for k, r, _ in strikes])
    legs = [(rows[i], s) for i, (_, _, s) in enumerate(strikes)]
    cash = settle_spread(legs, qty, float(close), style="cash")
    phys = settle_spread(legs, qty, float(close), style="physical")
    assert phys.value == pytest.approx(cash.cash, abs=1e-6)


# ----------------------------------------------------------------------------------------- properties

prices = st.integers(900, 1100).map(lambda x: x / 100)
sizes = st.sampled_from([0, 1, 5, 20, 100])


@st.composite
def quote_streams(draw):
    """Random interleaved quotes and trades of instrument 7 (offsets dense from 0, ts_recv rising), some
    unusable, and random orders decided at random offsets (submitted up front: the engine itself must keep
    them away from earlier data)."""
    n = draw(st.integers(1, 40))
    events = []
    ts = 0
    for off in range(n):
        ts += draw(st.integers(0, 300))
        if draw(st.booleans()):
            mid = draw(prices)
            half = draw(st.integers(0, 5)) / 100
            bid, ask = mid - half, mid + half
            if draw(st.integers(0, 9)) == 0:
                bid, ask = ask + 0.01, bid  # crossed
            age = draw(st.sampled_from([0, 50, 2_000]))
            events.append(("q", off, ts, ts - age, bid, ask, draw(sizes), draw(sizes)))
        else:
            events.append(("t", off, ts, draw(prices), draw(st.sampled_from([1, 10, 50]))))
    orders = []
    for oid in range(draw(st.integers(1, 6))):
        d = draw(st.integers(0, n - 1))
        kind = draw(st.sampled_from(["market", "limit", "stop"]))
        orders.append(Order(
            order_id=oid, instrument_id=7, side=draw(st.sampled_from([1, -1])),
            quantity=float(draw(st.integers(1, 150))),
            decision_offset=d, decision_ts=events[d][2], order_type=kind,
            limit_price=draw(prices) if kind == "limit" else math.nan,
            stop_price=draw(prices) if kind == "stop" else math.nan,
            time_in_force=draw(st.sampled_from(["gtc", "day", "ioc"])),
        ))
    return events, orders


@given(stream=quote_streams(), latency=st.sampled_from([0, 100, 1_000]),
       slip=st.sampled_from([0.0, 5.0]))
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_quote_fills_are_never_better_than_the_touch_early_or_larger_than_shown(stream, latency, slip):
    events, orders = stream
    ex = QuoteExecution(CostModel(slippage_bps=slip, commission_per_share=0.01), latency_ns=latency,
                        stale_after_ns=1_000)
    by_id = {o.order_id: o for o in orders}
    for o in orders:
        assert ex.submit(o) is None
    got: list[FillReport] = []
    for ev in events:
        if ev[0] == "q":
            _, off, ts, ts_event, bid, ask, bsz, asz = ev
            reps = ex.on_quote(7, off, ts, ts_event, bid, ask, bsz, asz)
            fs = fills(reps)
            usable = bid > 0 and ask >= bid and ts - ts_event <= 1_000
            if not usable:
                assert fs == []
            for f in fs:
                assert f.source == "quote" and f.offset == off and f.ts == ts
                if f.quantity > 0:
                    assert f.price >= ask and f.ref_price == ask
                else:
                    assert f.price <= bid and f.ref_price == bid
                if ask > bid:
                    assert f.price != (bid + ask) / 2
            assert sum(f.quantity for f in fs if f.quantity > 0) <= asz
            assert -sum(f.quantity for f in fs if f.quantity < 0) <= bsz
        else:
            _, off, ts, price, size = ev
            fs = fills(ex.on_trade(7, off, ts, price, size))
            for f in fs:
                o = by_id[f.order_id]
                assert f.source == "trade_through" and o.order_type == "limit" and f.price == o.limit_price
                assert (price < o.limit_price) if f.quantity > 0 else (price > o.limit_price)
            assert sum(abs(f.quantity) for f in fs) <= size
        for f in fs:
            o = by_id[f.order_id]
            assert f.ts >= o.decision_ts + latency and f.offset > o.decision_offset
            assert math.copysign(1, f.quantity) == o.side
            assert f.commission == pytest.approx(0.01 * abs(f.quantity))
        got.extend(fs)
    for o in orders:
        total = sum(abs(f.quantity) for f in got if f.order_id == o.order_id)
        assert total <= o.quantity
        assert total == pytest.approx(o.filled)
        if o.time_in_force == "ioc":
            assert o not in ex.working() or not any(e[1] > o.decision_offset and e[0] == "q"
                                                    and e[2] >= o.decision_ts + latency for e in events)


@st.composite
def bar_streams(draw):
    n = draw(st.integers(1, 30))
    bars = []
    for off in range(n):
        o, c = draw(prices), draw(prices)
        hi = max(o, c) + draw(st.integers(0, 50)) / 100
        lo = min(o, c) - draw(st.integers(0, 50)) / 100
        bars.append((off, 1_000 * off, o, hi, lo, c, off // 5))
    orders = []
    for oid in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["market", "limit", "stop"]))
        orders.append(Order(
            order_id=oid, instrument_id=7, side=draw(st.sampled_from([1, -1])),
            quantity=float(draw(st.integers(1, 500))), decision_offset=draw(st.integers(0, n - 1)),
            decision_ts=0, order_type=kind, limit_price=draw(prices) if kind == "limit" else math.nan,
            stop_price=draw(prices) if kind == "stop" else math.nan,
            time_in_force=draw(st.sampled_from(["gtc", "day", "ioc"])),
        ))
    return bars, orders


@given(stream=bar_streams(), bps=st.sampled_from([0.0, 5.0, 12.5]), ticks=st.sampled_from([0.0, 1.0, 3.0]),
       mult=st.sampled_from([0.5, 1.0, 2.0]))
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_bar_fills_come_only_from_later_bars_and_market_fills_are_open_plus_slippage(stream, bps, ticks,
                                                                                     mult):
    bars, orders = stream
    costs = CostModel(slippage_bps=bps, slippage_ticks=ticks, commission_rate=0.001, commission_min=0.5,
                      cost_multiplier=mult)
    ex = BarExecution(costs)
    by_id = {o.order_id: o for o in orders}
    for o in orders:
        assert ex.submit(o) is None
    for off, ts, op, hi, lo, cl, session in bars:
        for f in fills(ex.on_bar(7, off, ts, op, hi, lo, cl, session)):
            o = by_id[f.order_id]
            assert f.offset == off > o.decision_offset
            assert f.quantity == o.side * o.quantity  # bars fill completely
            if o.order_type == "market":
                expected = op * (1 + o.side * bps * 1e-4 * mult) + o.side * ticks * 0.01 * mult
                assert f.price == expected and f.ref_price == op and f.source == "bar_open"
            elif o.order_type == "limit":
                assert (f.price <= o.limit_price) if o.side == 1 else (f.price >= o.limit_price)
                assert (lo < o.limit_price) if o.side == 1 else (hi > o.limit_price)
            else:
                assert o.side * (f.ref_price - o.stop_price) >= 0 and o.side * (f.ref_price - op) >= 0
            assert o.side * (f.price - f.ref_price) >= 0  # slippage only ever against the trader
            raw = 0.001 * f.price * o.quantity * mult  # commission on the slipped price
            assert f.commission == pytest.approx(max(raw, 0.5 * mult), rel=1e-12)
