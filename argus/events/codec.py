"""Encode and decode records (argus.events.layout), and validate a body of records at the boundary.

Two paths: one `Event` at a time (round trips, CLI output, rare events), and whole numpy columns at
once (`encode_columns`) for ingestion, where a batch of fixed-width records is one structured array
whose bytes are the body. Both produce the same bytes for the same events.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message

from argus.errors import EventValidationError
from argus.events import layout
from argus.events.layout import (
    HEADER_DTYPE,
    HEADER_SIZE,
    NO_INSTRUMENT,
    OPTION_CHAIN_HEAD_DTYPE,
    OPTION_ROW_DTYPE,
)
from argus.events.types import PROTOBUF_PAYLOAD_TYPES, EventType
from argus.kernels import codec as _kcodec
from argus.v1 import events_pb2

#: The protobuf message class of each variable event type.
MESSAGES: dict[EventType, type[Message]] = {
    EventType.INSTRUMENT_DEFINED: events_pb2.InstrumentDefined,
    EventType.EXTERNAL_METRIC: events_pb2.ExternalMetric,
    EventType.SIGNAL: events_pb2.Signal,
    EventType.ORDER_SUBMITTED: events_pb2.OrderSubmitted,
    EventType.ORDER_ACCEPTED: events_pb2.OrderAccepted,
    EventType.ORDER_REJECTED: events_pb2.OrderRejected,
    EventType.ORDER_CANCELED: events_pb2.OrderCanceled,
    EventType.CONFIG_RECORDED: events_pb2.ConfigRecorded,
    EventType.ANNOTATION: events_pb2.Annotation,
}


@dataclass(frozen=True)
class Event:
    """One event: header fields plus payload fields by name.

    For OptionChainSnapshot, `data` holds `underlying_price`, `source` and `rows` (a structured array
    of OPTION_ROW_DTYPE). For protobuf-payload types it holds the message's fields (see MESSAGES)."""

    type: EventType
    ts_event: int
    ts_recv: int
    instrument_id: int = NO_INSTRUMENT
    data: Mapping[str, Any] = field(default_factory=dict)
    version: int = 1


@dataclass(frozen=True)
class BodyInfo:
    """What validation learned of a body: its size, time range and the instruments it defines."""

    count: int
    n_instruments: int
    min_ts_recv: int
    max_ts_recv: int
    instruments: list[tuple[int, str]]  # (id, symbol) of each InstrumentDefined, in order


def _header(event_type: EventType, payload_len: int, instrument_id: int, ts_event: int, ts_recv: int,
            version: int) -> np.ndarray:
    h = np.zeros(1, dtype=HEADER_DTYPE)
    h["length"] = layout.padded(HEADER_SIZE + payload_len)
    h["type"] = int(event_type)
    h["version"] = version
    h["instrument_id"] = instrument_id
    h["payload_len"] = payload_len
    h["ts_event"] = ts_event
    h["ts_recv"] = ts_recv
    return h


def _pad(raw: bytes) -> bytes:
    return raw + b"\0" * (layout.padded(len(raw)) - len(raw))


def encode(event: Event) -> bytes:
    """The record bytes of one event (header, payload, padding)."""
    t = EventType(event.type)
    if t in layout.FIXED_PAYLOADS:
        rec = np.zeros(1, dtype=layout.RECORD_DTYPES[t])
        for name, _ in layout.FIXED_PAYLOADS[t]:
            if not name.startswith("_"):
                rec[name] = event.data.get(name, 0)
        head = _header(t, rec.dtype.itemsize - HEADER_SIZE, event.instrument_id, event.ts_event, event.ts_recv,
                       event.version)
        for name in HEADER_DTYPE.names:
            rec[name] = head[name]
        return rec.tobytes()
    if t == EventType.OPTION_CHAIN_SNAPSHOT:
        rows = np.asarray(event.data.get("rows", np.zeros(0, OPTION_ROW_DTYPE)), dtype=OPTION_ROW_DTYPE)
        return encode_option_chain(event.instrument_id, event.ts_event, event.ts_recv,
                                   event.data.get("underlying_price", math.nan), event.data.get("source", 0), rows)
    if t in PROTOBUF_PAYLOAD_TYPES:
        msg = MESSAGES[t](**dict(event.data))
        payload = msg.SerializeToString(deterministic=True)
        head = _header(t, len(payload), event.instrument_id, event.ts_event, event.ts_recv, event.version)
        return _pad(head.tobytes() + payload)
    raise EventValidationError(-1, t.name, "type", int(t), "a known EventType id (1..15)")


def encode_option_chain(instrument_id: int, ts_event: int, ts_recv: int, underlying_price: float, source: int,
                        rows: np.ndarray) -> bytes:
    """One OptionChainSnapshot record from its rows (a structured array of OPTION_ROW_DTYPE)."""
    head = np.zeros(1, dtype=OPTION_CHAIN_HEAD_DTYPE)
    head["underlying_price"] = underlying_price
    head["n_rows"] = len(rows)
    head["source"] = source
    payload = head.tobytes() + np.ascontiguousarray(rows, dtype=OPTION_ROW_DTYPE).tobytes()
    h = _header(EventType.OPTION_CHAIN_SNAPSHOT, len(payload), instrument_id, ts_event, ts_recv,
                layout.SCHEMA_VERSION[EventType.OPTION_CHAIN_SNAPSHOT])
    return _pad(h.tobytes() + payload)


def encode_columns(event_type: EventType, instrument_id: int | np.ndarray, ts_event: np.ndarray,
                   ts_recv: np.ndarray, **columns: np.ndarray | float | int) -> np.ndarray:
    """A structured array of fixed-width records, one per row; `.tobytes()` of it is a body.

    Payload fields not given are 0."""
    t = EventType(event_type)
    ts_event = np.asarray(ts_event, dtype=np.int64)
    recs = np.zeros(len(ts_event), dtype=layout.RECORD_DTYPES[t])
    recs["length"] = recs.dtype.itemsize
    recs["type"] = int(t)
    recs["version"] = layout.SCHEMA_VERSION[t]
    recs["instrument_id"] = instrument_id
    recs["payload_len"] = recs.dtype.itemsize - HEADER_SIZE
    recs["ts_event"] = ts_event
    recs["ts_recv"] = ts_recv
    names = {name for name, _ in layout.FIXED_PAYLOADS[t]}
    for name, values in columns.items():
        if name not in names:
            raise EventValidationError(-1, t.name, name, None, f"one of {sorted(n for n in names if n[0] != '_')}")
        recs[name] = values
    return recs


def validate_body(body: bytes | memoryview | np.ndarray, n_instruments: int) -> BodyInfo:
    """Check every record of a body; raise EventValidationError on the first bad one.

    `n_instruments` is how many instruments the log already defines: references must be below it and
    each InstrumentDefined must take the next id."""
    view = memoryview(body).cast("B")
    count, n_after, lo, hi, variable = _kcodec.validate_body(view, n_instruments)
    instruments: list[tuple[int, str]] = []
    if len(variable):
        positions = None  # record indexes, computed only for an error message

        def index_of(pos: int) -> int:
            nonlocal positions
            if positions is None:
                positions = _kcodec.index_records(view)
            return int(np.searchsorted(positions, pos))

        for pos in variable.tolist():
            _, type_id, _, _, instrument_id, payload_len, _, _ = _HEADER_STRUCT.unpack_from(view, pos)
            t = _EVENT_TYPE[type_id]
            payload = view[pos + HEADER_SIZE: pos + HEADER_SIZE + payload_len]
            try:
                msg = MESSAGES[t].FromString(payload)
            except DecodeError as exc:
                raise EventValidationError(index_of(pos), t.name, "payload", f"{len(payload)} bytes",
                                           f"a serialized argus.v1.{MESSAGES[t].__name__}") from exc
            if t == EventType.INSTRUMENT_DEFINED:
                _check_instrument(index_of(pos), instrument_id, msg)
                instruments.append((instrument_id, msg.symbol))
    return BodyInfo(count, n_after, lo, hi, instruments)


#: The record header (layout.HEADER) for struct: length, type, version, flags, instrument, payload_len,
#: ts_event, ts_recv. tests/events/test_layout.py checks it against the declared layout.
_HEADER_STRUCT = struct.Struct("<IHBBIIqq")
_EVENT_TYPE = {int(t): t for t in EventType}


def _check_instrument(index: int, header_id: int, msg: Message) -> None:
    name = "INSTRUMENT_DEFINED"
    if msg.instrument_id != header_id:
        raise EventValidationError(index, name, "instrument_id", msg.instrument_id,
                                   f"equal to the record header's instrument_id ({header_id})")
    if not msg.symbol or msg.symbol != msg.symbol.strip():
        raise EventValidationError(index, name, "symbol", msg.symbol, "non-empty with no surrounding spaces")
    if not (math.isfinite(msg.multiplier) and msg.multiplier > 0):
        raise EventValidationError(index, name, "multiplier", msg.multiplier, "finite and > 0")


def iter_records(body: bytes | memoryview, first_offset: int) -> Iterator[tuple[int, memoryview]]:
    """(offset, record view) for each record of a body."""
    view = memoryview(body).cast("B")
    positions = _kcodec.index_records(view)
    for i, pos in enumerate(positions.tolist()):
        length = int.from_bytes(view[pos:pos + 4], "little")
        yield first_offset + i, view[pos:pos + length]


def positions_of_type(body: bytes | memoryview, first_offset: int, event_type: EventType,
                      lo: int | None = None, hi: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(offsets, byte positions) of a body's records of one type with offsets in [lo, hi), found by the
    Cython scan without decoding the others."""
    view = memoryview(body).cast("B")
    positions = np.asarray(_kcodec.record_positions(view, int(event_type)), dtype=np.int64)
    if not len(positions):
        return np.empty(0, np.int64), positions
    offsets = first_offset + np.searchsorted(np.asarray(_kcodec.index_records(view)), positions)
    keep = np.ones(len(offsets), bool)
    if lo is not None:
        keep &= offsets >= lo
    if hi is not None:
        keep &= offsets < hi
    return offsets[keep], positions[keep]


def fixed_records(body: bytes | memoryview, first_offset: int, event_type: EventType,
                  lo: int | None = None, hi: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(offsets, records) of a body's fixed-layout records of one type with offsets in [lo, hi): the
    records as one structured array of layout.RECORD_DTYPES[event_type] (header and payload), copied."""
    dtype = layout.RECORD_DTYPES[event_type]
    offsets, positions = positions_of_type(body, first_offset, event_type, lo, hi)
    raw = np.frombuffer(memoryview(body).cast("B"), dtype=np.uint8)
    gathered = raw[positions[:, None] + np.arange(dtype.itemsize)] if len(positions) else np.empty((0, dtype.itemsize),
                                                                                                   np.uint8)
    return offsets, np.ascontiguousarray(gathered).view(dtype).reshape(-1)


def decode(record: bytes | memoryview) -> Event:
    """The Event of one record's bytes."""
    view = memoryview(record).cast("B")
    head = np.frombuffer(view, dtype=HEADER_DTYPE, count=1)[0]
    t = EventType(int(head["type"]))
    common = dict(type=t, ts_event=int(head["ts_event"]), ts_recv=int(head["ts_recv"]),
                  instrument_id=int(head["instrument_id"]), version=int(head["version"]))
    payload = view[HEADER_SIZE: HEADER_SIZE + int(head["payload_len"])]
    if t in layout.FIXED_PAYLOADS:
        rec = np.frombuffer(view, dtype=layout.RECORD_DTYPES[t], count=1)[0]
        data = {name: rec[name].item() for name, _ in layout.FIXED_PAYLOADS[t] if not name.startswith("_")}
        return Event(data=data, **common)
    if t == EventType.OPTION_CHAIN_SNAPSHOT:
        head_rec = np.frombuffer(payload, dtype=OPTION_CHAIN_HEAD_DTYPE, count=1)[0]
        rows = np.frombuffer(payload, dtype=OPTION_ROW_DTYPE, count=int(head_rec["n_rows"]),
                             offset=OPTION_CHAIN_HEAD_DTYPE.itemsize).copy()
        return Event(data={"underlying_price": float(head_rec["underlying_price"]),
                           "source": int(head_rec["source"]), "rows": rows}, **common)
    msg = MESSAGES[t].FromString(bytes(payload))
    data = json_format.MessageToDict(msg, preserving_proto_field_name=True, always_print_fields_with_no_presence=True,
                                     use_integers_for_enums=True)
    # json_format writes 64-bit integers as strings; give them back as ints.
    for f in msg.DESCRIPTOR.fields:
        if f.name in data and f.cpp_type in (f.CPPTYPE_INT64, f.CPPTYPE_UINT64):
            data[f.name] = int(data[f.name])
    return Event(data=data, **common)


def decode_body(body: bytes | memoryview, first_offset: int) -> list[tuple[int, Event]]:
    """(offset, Event) for every record of a body."""
    return [(off, decode(rec)) for off, rec in iter_records(body, first_offset)]


def concat(records: Iterable[bytes]) -> bytes:
    """A body made of encoded records, in order."""
    return b"".join(records)


def to_json_dict(offset: int, event: Event, symbol: str | None) -> dict[str, Any]:
    """A JSON-ready dict of an event: offset, type, clocks, symbol and its payload fields."""
    out: dict[str, Any] = {"offset": offset, "type": event.type.name, "ts_event": event.ts_event,
                           "ts_recv": event.ts_recv, "symbol": symbol}
    for key, value in event.data.items():
        if key == "rows":
            out[key] = [{n: _json_number(r[n].item()) for n in value.dtype.names} for r in value]
        else:
            out[key] = _json_number(value)
    return out


def _json_number(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
