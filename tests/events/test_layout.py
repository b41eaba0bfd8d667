"""Every second description of the record layouts agrees with argus.events.layout."""

from __future__ import annotations

import numpy as np
import pytest
from google.protobuf.descriptor import FieldDescriptor

from argus.events import layout, types
from argus.kernels.codec import layout_info
from argus.v1 import events_pb2

DECLARED = {
    "HEADER": layout.HEADER,
    "TRADE": layout.TRADE,
    "QUOTE": layout.QUOTE,
    "BAR": layout.BAR,
    "FILL": layout.FILL,
    "OPTION_CHAIN_HEAD": layout.OPTION_CHAIN_HEAD,
    "OPTION_ROW": layout.OPTION_ROW,
    "CHUNK_HEADER": layout.CHUNK_HEADER,
}

# The protobuf type each layout dtype may be described by.
PROTO_TYPES = {
    "<f8": {FieldDescriptor.TYPE_DOUBLE},
    "<i8": {FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_SINT64, FieldDescriptor.TYPE_SFIXED64},
    "<u8": {FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_FIXED64},
    "<u4": {FieldDescriptor.TYPE_UINT32, FieldDescriptor.TYPE_ENUM},
    "<u2": {FieldDescriptor.TYPE_ENUM, FieldDescriptor.TYPE_UINT32},
    "u1": {FieldDescriptor.TYPE_UINT32},
}


@pytest.mark.parametrize("name", sorted(DECLARED))
def test_cython_struct_matches_declared_layout(name: str) -> None:
    size, offsets = layout_info()[name]
    dtype = layout.dtype_of(DECLARED[name])
    assert size == dtype.itemsize
    assert offsets == {field: dtype.fields[field][1] for field in dtype.names}


def test_record_dtypes_are_header_plus_payload_and_8_byte_aligned() -> None:
    for event_type, payload in layout.FIXED_PAYLOADS.items():
        dtype = layout.RECORD_DTYPES[event_type]
        assert dtype.itemsize == layout.HEADER_SIZE + layout.dtype_of(payload).itemsize
        assert dtype.itemsize % 8 == 0
    assert layout.HEADER_SIZE == 32
    assert layout.OPTION_ROW_DTYPE.itemsize % 8 == 0
    assert layout.OPTION_CHAIN_HEAD_DTYPE.itemsize % 8 == 0


@pytest.mark.parametrize(
    ("message", "fields"),
    [
        (events_pb2.RecordHeader, layout.HEADER),
        (events_pb2.Trade, layout.TRADE),
        (events_pb2.Quote, layout.QUOTE),
        (events_pb2.Bar, layout.BAR),
        (events_pb2.Fill, layout.FILL),
        (events_pb2.OptionRow, layout.OPTION_ROW),
    ],
)
def test_protobuf_message_describes_the_same_fields(message, fields) -> None:
    proto = {f.name: f.type for f in message.DESCRIPTOR.fields}
    declared = {name: code for name, code in fields if not name.startswith("_")}
    assert set(proto) == set(declared)
    for name, code in declared.items():
        expected = PROTO_TYPES["<u4" if code == "<u2" and name == "type" else code]
        assert proto[name] in expected, f"{message.DESCRIPTOR.name}.{name}"


def test_option_chain_message_carries_the_head_fields() -> None:
    proto = {f.name for f in events_pb2.OptionChainSnapshot.DESCRIPTOR.fields}
    assert {name for name, _ in layout.OPTION_CHAIN_HEAD} <= proto
    assert "rows" in proto


@pytest.mark.parametrize(
    ("py_enum", "proto_enum", "prefix"),
    [
        (types.EventType, events_pb2.EventType, "EVENT_TYPE_"),
        (types.InstrumentKind, events_pb2.InstrumentKind, "INSTRUMENT_KIND_"),
        (types.OptionRight, events_pb2.OptionRight, "OPTION_RIGHT_"),
        (types.AggressorSide, events_pb2.AggressorSide, "AGGRESSOR_SIDE_"),
        (types.OptionSource, events_pb2.OptionSource, "OPTION_SOURCE_"),
    ],
)
def test_python_enums_mirror_protobuf_enums(py_enum, proto_enum, prefix: str) -> None:
    proto = {name.removeprefix(prefix): value for name, value in proto_enum.items()}
    assert proto == {m.name: m.value for m in py_enum}


def test_every_event_type_has_a_payload_message_in_the_envelope() -> None:
    oneof = {f.name for f in events_pb2.Event.DESCRIPTOR.oneofs_by_name["payload"].fields}
    for t in types.EventType:
        if t != types.EventType.UNSPECIFIED:
            assert t.name.lower() in oneof


def test_codec_header_struct_matches_the_declared_header():
    from argus.events import codec

    assert codec._HEADER_STRUCT.size == layout.HEADER_SIZE
    rec = np.zeros(1, dtype=layout.HEADER_DTYPE)
    values = (40, 7, 1, 0, 3, 8, 123456789, 987654321)
    for (name, _), v in zip(layout.HEADER, values, strict=True):
        rec[name] = v
    assert codec._HEADER_STRUCT.unpack_from(rec.tobytes(), 0) == values
