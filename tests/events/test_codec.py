"""Round trips of every event type, the columnar encoder against the one-event encoder, and the
validation rules at the boundary."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from argus.errors import EventValidationError
from argus.events import codec
from argus.events.codec import Event
from argus.events.layout import NO_INSTRUMENT, OPTION_ROW_DTYPE
from argus.events.types import EventType, InstrumentKind
from argus.log.store import instrument_event

TS = 1_700_000_000_000_000_000


def option_rows(n: int) -> np.ndarray:
    rows = np.zeros(n, dtype=OPTION_ROW_DTYPE)
    rows["expiry_ns"] = TS + 86_400_000_000_000 * 7
    rows["strike"] = np.linspace(90, 110, n)
    rows["bid"] = 1.0
    rows["ask"] = 1.1
    rows["iv"] = np.nan
    rows["right"] = 1 + (np.arange(n) % 2)
    rows["contract_id"] = NO_INSTRUMENT
    return rows


def sample_events() -> list[Event]:
    """One event of every type, instrument 0 defined first."""
    return [
        instrument_event(0, "SPY", kind=InstrumentKind.EQUITY, ts=TS, venue="ARCX", currency="USD", tick_size=0.01),
        Event(EventType.TRADE, TS + 1, TS + 2, 0, {"price": 501.25, "size": 100.0, "trade_id": 77, "aggressor": 1}),
        Event(EventType.QUOTE, TS + 3, TS + 4, 0, {"bid": 501.2, "ask": 501.3, "bid_size": 5.0, "ask_size": 7.0}),
        Event(EventType.BAR, TS + 5, TS + 6, 0, {"open": 500.0, "high": 502.0, "low": 499.0, "close": 501.0,
                                                 "volume": 1e6, "interval_ns": 60_000_000_000, "trade_count": 42}),
        Event(EventType.OPTION_CHAIN_SNAPSHOT, TS + 7, TS + 8, 0,
              {"underlying_price": 501.0, "source": 1, "rows": option_rows(5)}),
        Event(EventType.EXTERNAL_METRIC, TS + 9, TS + 10, NO_INSTRUMENT,
              {"name": "risk_flow.usdjpy", "value": -0.25, "unit": "z"}),
        Event(EventType.CLOCK, TS + 11, TS + 11),
        Event(EventType.SIGNAL, TS + 12, TS + 12, 0, {"signal_id": "s1", "strategy_id": "vrp", "config_hash": "ab",
                                                      "target_quantity": -2.0, "reason": "iv rich"}),
        Event(EventType.ORDER_SUBMITTED, TS + 13, TS + 13, 0, {"order_id": 9, "signal_id": "s1", "side": 2,
                                                               "order_type": 2, "quantity": 2.0, "limit_price": 1.5,
                                                               "time_in_force": 1, "account_id": 3}),
        Event(EventType.ORDER_ACCEPTED, TS + 14, TS + 14, 0, {"order_id": 9, "venue_order_id": "X-1"}),
        Event(EventType.ORDER_REJECTED, TS + 15, TS + 15, 0, {"order_id": 10, "reason": "risk"}),
        Event(EventType.ORDER_CANCELED, TS + 16, TS + 16, 0, {"order_id": 9, "reason": "tif",
                                                              "leftover_quantity": 1.0}),
        Event(EventType.FILL, TS + 17, TS + 17, 0, {"price": 1.45, "quantity": -1.0, "commission": 0.65,
                                                    "order_id": 9, "fill_id": 1, "position_id": 5,
                                                    "account_id": 3, "liquidity": 2}),
        Event(EventType.CONFIG_RECORDED, TS + 18, TS + 18, NO_INSTRUMENT,
              {"name": "backtest", "config_hash": "cafe", "config_json": '{"a": 1}'}),
        Event(EventType.ANNOTATION, TS + 19, TS + 19, NO_INSTRUMENT, {"text": "hello", "tags": ["a", "b"]}),
    ]


def assert_same_event(a: Event, b: Event) -> None:
    assert (a.type, a.ts_event, a.ts_recv, a.instrument_id, a.version) == (
        b.type, b.ts_event, b.ts_recv, b.instrument_id, b.version)
    for key, value in a.data.items():
        got = b.data[key]
        if isinstance(value, np.ndarray):
            assert value.dtype == got.dtype and value.tobytes() == got.tobytes()  # NaN-safe
        elif isinstance(value, list):
            assert list(got) == value
        else:
            assert got == value, key


def test_every_event_type_is_in_the_sample() -> None:
    assert {e.type for e in sample_events()} == set(EventType) - {EventType.UNSPECIFIED}


@pytest.mark.parametrize("event", sample_events(), ids=lambda e: e.type.name)
def test_round_trip_of_every_event_type_gives_the_same_event(event: Event) -> None:
    raw = codec.encode(event)
    assert len(raw) % 8 == 0
    assert_same_event(event, codec.decode(raw))


def test_round_trip_through_the_log_gives_the_same_events_at_dense_offsets(log) -> None:
    events = sample_events()
    result = log.append(events)
    assert list(result.offsets) == list(range(len(events)))
    decoded = list(log.events(0))
    assert [off for off, _ in decoded] == list(range(len(events)))
    for original, (_, got) in zip(events, decoded, strict=True):
        assert_same_event(original, got)


finite_price = st.floats(min_value=1e-6, max_value=1e9, allow_nan=False, allow_infinity=False)


@settings(max_examples=50, deadline=None)
@given(prices=st.lists(finite_price, min_size=1, max_size=50), data=st.data())
def test_columnar_encoding_equals_one_event_encoding(prices: list[float], data) -> None:
    n = len(prices)
    sizes = data.draw(st.lists(finite_price, min_size=n, max_size=n))
    ts = np.arange(n, dtype=np.int64) + TS
    recs = codec.encode_columns(EventType.TRADE, 3, ts, ts + 5, price=prices, size=sizes, trade_id=np.arange(n))
    one_by_one = codec.concat(
        codec.encode(Event(EventType.TRADE, int(ts[i]), int(ts[i]) + 5, 3,
                           {"price": prices[i], "size": sizes[i], "trade_id": i})) for i in range(n))
    assert recs.tobytes() == one_by_one


BAD_RECORDS = [
    (EventType.TRADE, {"price": float("nan"), "size": 1.0}, "price"),
    (EventType.TRADE, {"price": -1.0, "size": 1.0}, "price"),
    (EventType.TRADE, {"price": 0.0, "size": 1.0}, "price"),
    (EventType.TRADE, {"price": 1.0, "size": 0.0}, "size"),
    (EventType.TRADE, {"price": 1.0, "size": 1.0, "aggressor": 7}, "aggressor"),
    (EventType.QUOTE, {"bid": 10.0, "ask": 9.0, "bid_size": 1, "ask_size": 1}, "ask"),
    (EventType.QUOTE, {"bid": math.inf, "ask": math.inf, "bid_size": 1, "ask_size": 1}, "bid"),
    (EventType.QUOTE, {"bid": 1.0, "ask": 2.0, "bid_size": -1, "ask_size": 1}, "bid_size"),
    (EventType.BAR, {"open": 10.0, "high": 9.0, "low": 8.0, "close": 9.5, "volume": 1, "interval_ns": 60}, "high"),
    (EventType.BAR, {"open": 10.0, "high": 11.0, "low": 10.5, "close": 10.7, "volume": 1, "interval_ns": 60}, "low"),
    (EventType.BAR, {"open": 10.0, "high": 11.0, "low": 9.0, "close": 10.0, "volume": 1, "interval_ns": 0},
     "interval_ns"),
    (EventType.FILL, {"price": 1.0, "quantity": 0.0}, "quantity"),
]


@pytest.mark.parametrize(("event_type", "data", "field"), BAD_RECORDS)
def test_bad_value_is_refused_naming_the_field_and_value(event_type, data, field) -> None:
    good = codec.encode(instrument_event(0, "X"))
    bad = codec.encode(Event(event_type, TS, TS, 0, data))
    with pytest.raises(EventValidationError) as err:
        codec.validate_body(good + bad, 0)
    assert err.value.index == 1
    assert err.value.field == field
    assert f"'{field}'" in str(err.value) and event_type.name in str(err.value)


def test_reference_to_an_undefined_instrument_is_refused() -> None:
    bad = codec.encode(Event(EventType.TRADE, TS, TS, 0, {"price": 1.0, "size": 1.0}))
    with pytest.raises(EventValidationError, match="instrument_id"):
        codec.validate_body(bad, 0)


def test_instrument_definition_must_take_the_next_dense_id() -> None:
    with pytest.raises(EventValidationError, match="next dense instrument id"):
        codec.validate_body(codec.encode(instrument_event(5, "X")), 2)
    assert codec.validate_body(codec.encode(instrument_event(2, "X")), 2).n_instruments == 3


def test_non_positive_timestamps_and_unknown_types_are_refused() -> None:
    raw = bytearray(codec.encode(Event(EventType.CLOCK, TS, TS)))
    raw[4] = 99  # type id
    with pytest.raises(EventValidationError, match="'type'"):
        codec.validate_body(bytes(raw), 0)
    with pytest.raises(EventValidationError, match="ts_recv"):
        codec.validate_body(codec.encode(Event(EventType.CLOCK, TS, 0)), 0)


def test_truncated_record_is_refused() -> None:
    raw = codec.encode(Event(EventType.CLOCK, TS, TS))
    with pytest.raises(EventValidationError, match="length"):
        codec.validate_body(raw + raw[:16], 0)


def test_option_row_with_ask_below_bid_is_refused() -> None:
    rows = option_rows(3)
    rows["ask"][1] = 0.5
    raw = codec.encode_option_chain(0, TS, TS, 100.0, 1, rows)
    with pytest.raises(EventValidationError, match=r"rows\.ask"):
        codec.validate_body(codec.encode(instrument_event(0, "X")) + raw, 0)


def test_garbage_protobuf_payload_is_refused() -> None:
    raw = bytearray(codec.encode(Event(EventType.ANNOTATION, TS, TS, NO_INSTRUMENT, {"text": "abc"})))
    raw[32] = 0xFF  # an invalid tag byte
    with pytest.raises(EventValidationError, match="payload"):
        codec.validate_body(bytes(raw), 0)


def test_option_row_with_negative_open_interest_is_refused() -> None:
    rows = option_rows(2)
    rows["open_interest"][0] = -5.0
    raw = codec.encode_option_chain(0, TS, TS, 100.0, 1, rows)
    with pytest.raises(EventValidationError, match="open_interest"):
        codec.validate_body(codec.encode(instrument_event(0, "X")) + raw, 0)
