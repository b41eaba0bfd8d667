"""Conversions between argus.v1 messages and the log's records: the only place the API touches both.

A batch arrives either as `records` (the log's binary layout, passed through as is and validated by
the log) or as argus.v1.Event messages, encoded here into the same records."""

from __future__ import annotations

import numpy as np

from argus.errors import EventValidationError
from argus.events import codec, layout
from argus.events.codec import Event
from argus.events.layout import HEADER_DTYPE, HEADER_SIZE, OPTION_ROW_DTYPE
from argus.events.types import PROTOBUF_PAYLOAD_TYPES, EventType
from argus.v1 import events_pb2

#: The Event oneof field of each event type (its lower-case name).
PAYLOAD_FIELD: dict[EventType, str] = {t: t.name.lower() for t in EventType if t != EventType.UNSPECIFIED}
_TYPE_OF_FIELD = {name: t for t, name in PAYLOAD_FIELD.items()}
_ROW_FIELDS = [name for name, _ in layout.OPTION_ROW]


def event_to_record(msg: events_pb2.Event, index: int = 0) -> bytes:
    """The record bytes of one argus.v1.Event (its offset is ignored)."""
    which = msg.WhichOneof("payload")
    if which is None:
        raise EventValidationError(index, "UNSPECIFIED", "payload", None, "one of the Event payload fields")
    t = _TYPE_OF_FIELD[which]
    h = msg.header
    if h.type not in (0, int(t)):
        raise EventValidationError(index, t.name, "header.type", h.type, f"{int(t)} to match the '{which}' payload")
    payload = getattr(msg, which)
    common = dict(type=t, ts_event=h.ts_event, ts_recv=h.ts_recv, instrument_id=h.instrument_id,
                  version=h.version or layout.SCHEMA_VERSION[t])
    if t in PROTOBUF_PAYLOAD_TYPES:
        raw = payload.SerializeToString(deterministic=True)
        head = np.zeros(1, dtype=HEADER_DTYPE)
        head["length"] = layout.padded(HEADER_SIZE + len(raw))
        head["type"] = int(t)
        head["version"] = common["version"]
        head["instrument_id"] = h.instrument_id
        head["payload_len"] = len(raw)
        head["ts_event"] = h.ts_event
        head["ts_recv"] = h.ts_recv
        body = head.tobytes() + raw
        return body + b"\0" * (layout.padded(len(body)) - len(body))
    if t == EventType.OPTION_CHAIN_SNAPSHOT:
        rows = np.zeros(len(payload.rows), dtype=OPTION_ROW_DTYPE)
        for i, r in enumerate(payload.rows):
            for name in _ROW_FIELDS:
                if not name.startswith("_"):
                    rows[name][i] = getattr(r, name)
        return codec.encode_option_chain(h.instrument_id, h.ts_event, h.ts_recv, payload.underlying_price,
                                         payload.source, rows)
    data = {f.name: getattr(payload, f.name) for f in payload.DESCRIPTOR.fields}
    return codec.encode(Event(data=data, **common))


def events_to_body(batch: events_pb2.EventBatch) -> bytes:
    """The body of records of a batch of argus.v1.Event messages."""
    return b"".join(event_to_record(e, i) for i, e in enumerate(batch.events))


def record_to_event(offset: int, record: memoryview | bytes) -> events_pb2.Event:
    """The argus.v1.Event of one record at `offset`."""
    view = memoryview(record).cast("B")
    head = np.frombuffer(view, dtype=HEADER_DTYPE, count=1)[0]
    t = EventType(int(head["type"]))
    msg = events_pb2.Event(offset=offset)
    msg.header.CopyFrom(events_pb2.RecordHeader(
        length=int(head["length"]), type=int(t), version=int(head["version"]), flags=int(head["flags"]),
        instrument_id=int(head["instrument_id"]), payload_len=int(head["payload_len"]),
        ts_event=int(head["ts_event"]), ts_recv=int(head["ts_recv"])))
    field = PAYLOAD_FIELD[t]
    if t in PROTOBUF_PAYLOAD_TYPES:
        getattr(msg, field).ParseFromString(bytes(view[HEADER_SIZE:HEADER_SIZE + int(head["payload_len"])]))
        return msg
    event = codec.decode(view)
    if t == EventType.OPTION_CHAIN_SNAPSHOT:
        chain = msg.option_chain_snapshot
        chain.underlying_price = event.data["underlying_price"]
        chain.n_rows = len(event.data["rows"])
        chain.source = event.data["source"]
        for row in event.data["rows"]:
            chain.rows.add(**{n: row[n].item() for n in _ROW_FIELDS if not n.startswith("_")})
        return msg
    getattr(msg, field).CopyFrom(getattr(events_pb2, type(getattr(msg, field)).__name__)(**event.data))
    return msg


def body_to_events(body: memoryview | bytes, first_offset: int, start: int, stop: int) -> events_pb2.EventBatch:
    """argus.v1.Event messages of the records of a body with offsets in [start, stop)."""
    batch = events_pb2.EventBatch()
    for offset, record in codec.iter_records(body, first_offset):
        if start <= offset < stop:
            batch.events.append(record_to_event(offset, record))
    return batch


def slice_records(body: memoryview | bytes, first_offset: int, start: int, stop: int) -> bytes:
    """The bytes of the records of a body with offsets in [start, stop)."""
    view = memoryview(body).cast("B")
    if start == first_offset and stop >= first_offset + _count(view):
        return bytes(view)
    from argus.kernels import codec as _kcodec

    positions = _kcodec.index_records(view)
    lo = int(positions[start - first_offset])
    hi = int(positions[stop - first_offset]) if stop - first_offset < len(positions) else len(view)
    return bytes(view[lo:hi])


def _count(view: memoryview) -> int:
    from argus.kernels import codec as _kcodec

    return len(_kcodec.index_records(view))
