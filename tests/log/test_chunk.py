"""Chunk headers: the struct packing agrees with the declared layout, and damage is detected."""

from __future__ import annotations

import numpy as np
import pytest
import xxhash

from argus.errors import CorruptLogError
from argus.events.layout import CHUNK_HEADER_DTYPE, CHUNK_HEADER_SIZE
from argus.log.chunk import ZERO_HASH, build_chunk, chain_hash, chunk_key, parse_chunk
from tests.log.helpers import trades


def test_packed_header_matches_the_declared_dtype() -> None:
    body = trades(10, 1).tobytes()
    prev = bytes(range(32))
    value, h = build_chunk(body, 10, 1, 11, 20, prev)
    assert len(value) == CHUNK_HEADER_SIZE + len(body)
    rec = np.frombuffer(value, dtype=CHUNK_HEADER_DTYPE, count=1)[0]
    assert bytes(rec["magic"]) == b"ARGC" and int(rec["format_version"]) == 1
    assert (int(rec["count"]), int(rec["body_len"]), int(rec["first_offset"])) == (10, len(body), 1)
    assert (int(rec["min_ts_recv"]), int(rec["max_ts_recv"])) == (11, 20)
    assert value[40:56] == xxhash.xxh3_128_digest(value[:40] + value[56:])
    assert value[56:88] == prev
    assert h == chain_hash(value[:CHUNK_HEADER_SIZE])


def test_parse_returns_the_header_and_body_it_was_built_from() -> None:
    body = trades(3, 7).tobytes()
    value, _ = build_chunk(body, 3, 7, 1, 2, ZERO_HASH)
    header, view = parse_chunk(chunk_key(7), value)
    assert bytes(view) == body and header.end == 10 and header.prev_hash == ZERO_HASH


@pytest.mark.parametrize("position", [0, 10, 50, CHUNK_HEADER_SIZE + 5])
def test_any_damaged_byte_is_detected(position: int) -> None:
    value, _ = build_chunk(trades(3, 7).tobytes(), 3, 7, 1, 2, ZERO_HASH)
    damaged = bytearray(value)
    damaged[position] ^= 0x10
    with pytest.raises(CorruptLogError):
        parse_chunk(chunk_key(7), bytes(damaged))
