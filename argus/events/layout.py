"""The log's binary layouts, declared once.

Every record is a 32-byte header followed by a payload, padded to a multiple of 8 bytes. Market-data
payloads have the fixed layouts below; variable events carry the serialized bytes of their protobuf
message. Every other description of these layouts (the numpy dtypes derived here, the structs in
kernels/records.pxd, the messages in protos/argus/v1/events.proto) is checked against this module by
tests/events/test_layout.py.

All integers and floats are little-endian.
"""

from __future__ import annotations

import numpy as np

from argus.events.types import EventType

Fields = tuple[tuple[str, str], ...]

#: Instrument id of events that have no instrument (Clock, ConfigRecorded, ...).
NO_INSTRUMENT = 0xFFFFFFFF

HEADER: Fields = (
    ("length", "<u4"),  # total record bytes, padded to a multiple of 8
    ("type", "<u2"),  # EventType id
    ("version", "u1"),  # payload schema version
    ("flags", "u1"),  # reserved, 0
    ("instrument_id", "<u4"),  # dense id, NO_INSTRUMENT when none
    ("payload_len", "<u4"),  # exact payload bytes before padding
    ("ts_event", "<i8"),  # ns UTC at the source
    ("ts_recv", "<i8"),  # ns UTC at Argus
)

TRADE: Fields = (
    ("price", "<f8"),
    ("size", "<f8"),
    ("trade_id", "<u8"),
    ("aggressor", "<u4"),  # AggressorSide
    ("_reserved", "<u4"),
)

QUOTE: Fields = (
    ("bid", "<f8"),
    ("ask", "<f8"),
    ("bid_size", "<f8"),
    ("ask_size", "<f8"),
)

BAR: Fields = (
    ("open", "<f8"),
    ("high", "<f8"),
    ("low", "<f8"),
    ("close", "<f8"),
    ("volume", "<f8"),
    ("interval_ns", "<i8"),
    ("trade_count", "<u8"),
)

FILL: Fields = (
    ("price", "<f8"),
    ("quantity", "<f8"),
    ("commission", "<f8"),
    ("order_id", "<u8"),
    ("fill_id", "<u8"),
    ("position_id", "<u8"),
    ("account_id", "<u4"),
    ("liquidity", "<u4"),  # Liquidity
)

CLOCK: Fields = ()

#: The fixed part of an OptionChainSnapshot payload; n_rows OPTION_ROWs follow it.
OPTION_CHAIN_HEAD: Fields = (
    ("underlying_price", "<f8"),
    ("n_rows", "<u4"),
    ("source", "<u4"),  # OptionSource
)

OPTION_ROW: Fields = (
    ("expiry_ns", "<i8"),
    ("strike", "<f8"),
    ("bid", "<f8"),
    ("ask", "<f8"),
    ("bid_size", "<f8"),
    ("ask_size", "<f8"),
    ("open_interest", "<f8"),
    ("iv", "<f8"),
    ("delta", "<f8"),
    ("gamma", "<f8"),
    ("vega", "<f8"),
    ("theta", "<f8"),
    ("right", "<u2"),  # OptionRight
    ("source", "<u2"),  # OptionSource
    ("contract_id", "<u4"),  # instrument id of the contract, NO_INSTRUMENT when not interned
)

#: Payload layouts of the fixed-width event types.
FIXED_PAYLOADS: dict[EventType, Fields] = {
    EventType.TRADE: TRADE,
    EventType.QUOTE: QUOTE,
    EventType.BAR: BAR,
    EventType.FILL: FILL,
    EventType.CLOCK: CLOCK,
}

#: Current schema version of each event type's payload.
SCHEMA_VERSION: dict[EventType, int] = {t: 1 for t in EventType if t != EventType.UNSPECIFIED}

CHUNK_HEADER: Fields = (
    ("magic", "S4"),  # b"ARGC"
    ("format_version", "<u2"),
    ("flags", "<u2"),  # reserved, 0
    ("count", "<u4"),  # records in the body
    ("body_len", "<u4"),  # body bytes
    ("first_offset", "<u8"),  # log offset of the first record
    ("min_ts_recv", "<i8"),
    ("max_ts_recv", "<i8"),
    ("body_checksum", "S16"),  # XXH3-128 of the rest of the header, then the body
    ("prev_hash", "S32"),  # chain hash of the previous chunk (zeros for the first)
    ("_reserved", "<u8"),
)

CHUNK_MAGIC = b"ARGC"
CHUNK_FORMAT_VERSION = 1


def dtype_of(fields: Fields) -> np.dtype:
    """A packed numpy dtype with exactly these fields in this order."""
    return np.dtype(list(fields)) if fields else np.dtype([])


def record_dtype(event_type: EventType) -> np.dtype:
    """The full record (header + payload) dtype of a fixed-width event type."""
    return np.dtype(list(HEADER) + list(FIXED_PAYLOADS[event_type]))


HEADER_DTYPE = dtype_of(HEADER)
HEADER_SIZE = HEADER_DTYPE.itemsize
OPTION_CHAIN_HEAD_DTYPE = dtype_of(OPTION_CHAIN_HEAD)
OPTION_ROW_DTYPE = dtype_of(OPTION_ROW)
CHUNK_HEADER_DTYPE = dtype_of(CHUNK_HEADER)
CHUNK_HEADER_SIZE = CHUNK_HEADER_DTYPE.itemsize
RECORD_DTYPES: dict[EventType, np.dtype] = {t: record_dtype(t) for t in FIXED_PAYLOADS}


def padded(n: int) -> int:
    """n rounded up to a multiple of 8 (records are 8-byte aligned)."""
    return (n + 7) & ~7
