"""Chunks: the unit of storage. One LMDB value holds a 96-byte header and a body of consecutive
records. The header carries the XXH3-128 checksum of the body and the chain hash (BLAKE2b-256) of the
previous chunk's header, so the log is a verifiable hash chain; the chain hash of the newest chunk is
kept in the log's meta table, which covers the last header too.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass

import numpy as np
import xxhash

from argus.errors import CorruptLogError
from argus.events.layout import CHUNK_FORMAT_VERSION, CHUNK_HEADER_DTYPE, CHUNK_HEADER_SIZE, CHUNK_MAGIC

ZERO_HASH = b"\0" * 32
# The same layout as CHUNK_HEADER_DTYPE (checked in tests/log/test_chunk.py), packed without numpy.
_HEADER = struct.Struct("<4sHHIIQqq16s32sQ")
_SUM_AT, _SUM_END = 40, 56  # where body_checksum sits in the header


@dataclass(frozen=True)
class ChunkHeader:
    """The decoded header of a chunk."""

    count: int
    body_len: int
    first_offset: int
    min_ts_recv: int
    max_ts_recv: int
    body_checksum: bytes
    prev_hash: bytes

    @property
    def end(self) -> int:
        """Offset after the chunk's last record."""
        return self.first_offset + self.count


@dataclass(frozen=True)
class Chunk:
    """A chunk's records: `body` (a memoryview, zero-copy inside a reader, or bytes) and the offset
    range [start, stop) of the records the caller asked for (a sub-range of the chunk)."""

    header: ChunkHeader
    body: memoryview | bytes
    start: int
    stop: int

    @property
    def first_offset(self) -> int:
        return self.header.first_offset


def chunk_key(first_offset: int) -> bytes:
    """Big-endian keys sort in offset order, so LMDB appends and range scans stay sequential."""
    return first_offset.to_bytes(8, "big")


def chain_hash(header: bytes | memoryview) -> bytes:
    return hashlib.blake2b(header, digest_size=32).digest()


def build_chunk(body: bytes | memoryview, count: int, first_offset: int, min_ts_recv: int, max_ts_recv: int,
                prev_hash: bytes) -> tuple[bytes, bytes]:
    """The stored value of a chunk and its chain hash."""
    head = _HEADER.pack(CHUNK_MAGIC, CHUNK_FORMAT_VERSION, 0, count, len(body), first_offset, min_ts_recv,
                        max_ts_recv, ZERO_HASH[:16], prev_hash, 0)
    digest = _checksum(head, body)
    head = b"".join((head[:_SUM_AT], digest, head[_SUM_END:]))
    return b"".join((head, body)), chain_hash(head)


def _checksum(head: bytes | memoryview, body: bytes | memoryview) -> bytes:
    """XXH3-128 over the header (less the checksum field itself) and the body, so that a damaged
    header field is caught by a read as surely as a damaged record."""
    h = xxhash.xxh3_128()
    h.update(head[:_SUM_AT])
    h.update(head[_SUM_END:CHUNK_HEADER_SIZE])
    h.update(body)
    return h.digest()


def parse_chunk(key: bytes, value: bytes | memoryview, verify_checksum: bool = True) -> tuple[ChunkHeader, memoryview]:
    """Header and body view of a stored chunk; CorruptLogError if it is malformed or fails its checksum."""
    view = memoryview(value).cast("B") if not isinstance(value, memoryview) else value
    where = f"chunk at offset {int.from_bytes(key, 'big')}"
    if len(view) < CHUNK_HEADER_SIZE:
        raise CorruptLogError(f"{where}: {len(view)} bytes, shorter than the {CHUNK_HEADER_SIZE}-byte header")
    h = np.frombuffer(view, dtype=CHUNK_HEADER_DTYPE, count=1)[0]
    if bytes(h["magic"]) != CHUNK_MAGIC:
        raise CorruptLogError(f"{where}: magic = {bytes(h['magic'])!r} must be {CHUNK_MAGIC!r}")
    if int(h["format_version"]) != CHUNK_FORMAT_VERSION:
        raise CorruptLogError(f"{where}: format_version = {int(h['format_version'])} is not one this build reads")
    header = ChunkHeader(int(h["count"]), int(h["body_len"]), int(h["first_offset"]), int(h["min_ts_recv"]),
                         int(h["max_ts_recv"]), bytes(h["body_checksum"]).ljust(16, b"\0"),
                         bytes(h["prev_hash"]).ljust(32, b"\0"))
    if header.first_offset != int.from_bytes(key, "big"):
        raise CorruptLogError(f"{where}: header first_offset = {header.first_offset} does not match its key")
    if CHUNK_HEADER_SIZE + header.body_len != len(view):
        raise CorruptLogError(f"{where}: body_len = {header.body_len} but the value holds "
                              f"{len(view) - CHUNK_HEADER_SIZE} body bytes")
    body = view[CHUNK_HEADER_SIZE:]
    if verify_checksum and _checksum(view, body) != header.body_checksum:
        raise CorruptLogError(f"{where}: checksum mismatch (torn or corrupted chunk)")
    return header, body


def header_bytes(value: bytes | memoryview) -> bytes:
    return bytes(memoryview(value)[:CHUNK_HEADER_SIZE])
