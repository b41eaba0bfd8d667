"""argus.v1.Event messages and log records convert into each other without loss."""

from __future__ import annotations

import pytest

from argus.api.convert import body_to_events, event_to_record, events_to_body, record_to_event, slice_records
from argus.errors import EventValidationError
from argus.events import codec
from argus.v1 import events_pb2
from tests.events.test_codec import assert_same_event, sample_events


@pytest.mark.parametrize("event", sample_events(), ids=lambda e: e.type.name)
def test_record_to_message_to_record_is_byte_identical(event) -> None:
    record = codec.encode(event)
    msg = record_to_event(7, record)
    assert msg.offset == 7 and msg.header.type == int(event.type)
    again = event_to_record(events_pb2.Event.FromString(msg.SerializeToString()))
    assert again == record
    assert_same_event(event, codec.decode(again))


def test_batches_round_trip_and_slices_keep_exact_offsets() -> None:
    body = codec.concat(codec.encode(e) for e in sample_events())
    batch = body_to_events(body, 100, 103, 108)
    assert [e.offset for e in batch.events] == [103, 104, 105, 106, 107]
    assert events_to_body(batch) == slice_records(body, 100, 103, 108)
    assert slice_records(body, 100, 100, 10**9) == body


def test_message_whose_header_type_disagrees_with_its_payload_is_refused() -> None:
    msg = events_pb2.Event(header=events_pb2.RecordHeader(type=3, ts_event=1, ts_recv=1),
                           trade=events_pb2.Trade(price=1.0, size=1.0))
    with pytest.raises(EventValidationError, match="header.type"):
        event_to_record(msg)
    with pytest.raises(EventValidationError, match="payload"):
        event_to_record(events_pb2.Event())
