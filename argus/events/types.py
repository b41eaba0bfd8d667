"""Event type ids and the small enums stored in payloads (mirrors of argus.v1 enums, checked by tests)."""

from __future__ import annotations

from enum import IntEnum


class EventType(IntEnum):
    """Type id stored in every record header; ids are never reused."""

    UNSPECIFIED = 0
    INSTRUMENT_DEFINED = 1
    TRADE = 2
    QUOTE = 3
    BAR = 4
    OPTION_CHAIN_SNAPSHOT = 5
    EXTERNAL_METRIC = 6
    CLOCK = 7
    SIGNAL = 8
    ORDER_SUBMITTED = 9
    ORDER_ACCEPTED = 10
    ORDER_REJECTED = 11
    ORDER_CANCELED = 12
    FILL = 13
    CONFIG_RECORDED = 14
    ANNOTATION = 15


class InstrumentKind(IntEnum):
    UNSPECIFIED = 0
    EQUITY = 1
    FUTURE = 2
    OPTION = 3
    FX = 4
    CRYPTO = 5
    INDEX = 6


class OptionRight(IntEnum):
    UNSPECIFIED = 0
    CALL = 1
    PUT = 2


class AggressorSide(IntEnum):
    UNSPECIFIED = 0
    BUYER = 1
    SELLER = 2


class OptionSource(IntEnum):
    UNSPECIFIED = 0
    SYNTHETIC = 1
    VENDOR_FILE = 2
    STREAM = 3
    BROKER = 4


#: Event types whose payload is the serialized protobuf message of the same name.
PROTOBUF_PAYLOAD_TYPES: frozenset[EventType] = frozenset(
    {
        EventType.INSTRUMENT_DEFINED,
        EventType.EXTERNAL_METRIC,
        EventType.SIGNAL,
        EventType.ORDER_SUBMITTED,
        EventType.ORDER_ACCEPTED,
        EventType.ORDER_REJECTED,
        EventType.ORDER_CANCELED,
        EventType.CONFIG_RECORDED,
        EventType.ANNOTATION,
    }
)

#: Event types that refer to an instrument defined earlier in the log.
INSTRUMENT_TYPES: frozenset[EventType] = frozenset(
    {EventType.TRADE, EventType.QUOTE, EventType.BAR, EventType.OPTION_CHAIN_SNAPSHOT, EventType.FILL}
)
