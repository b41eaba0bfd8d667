"""The reducer base class: bookkeeping shared by every reducer, and its snapshot format.

Both paths go through dispatch(): apply_record() for one record (live) and apply_chunk() for a chunk
(replay), so they cannot drift. A snapshot is

    b"ARGS" | u16 format | name | config_hash | next_offset | events | n_instruments | now
    | state parts (subclass) | output digests | BLAKE2b-256 of everything before it

with every variable-length field prefixed by its u32 length. The same state gives the same bytes."""

import hashlib
import struct

from libc.stdint cimport int64_t, uint8_t, uint32_t, uint64_t
from argus.kernels.records cimport RecordHeader, HEADER_SIZE, NO_INSTRUMENT
from argus.kernels.walker cimport ChunkWalker
from argus.kernels.outputs cimport OutputBuffer

from argus.errors import ArgusError

SNAPSHOT_MAGIC = b"ARGS"
SNAPSHOT_FORMAT = 1
_FIXED = struct.Struct("<QQIq")
_LEN = struct.Struct("<I")


class SnapshotError(ArgusError):
    """A snapshot is damaged, of another format, or of another reducer or configuration."""


def _put(parts: list, blob: bytes) -> None:
    parts.append(_LEN.pack(len(blob)))
    parts.append(blob)


def _take(view: memoryview, pos: int) -> tuple[bytes, int]:
    (n,) = _LEN.unpack_from(view, pos)
    pos += 4
    if pos + n > len(view):
        raise SnapshotError(f"snapshot field at byte {pos} claims {n} bytes past the end")
    return bytes(view[pos:pos + n]), pos + n


cdef class Reducer(ChunkWalker):
    """Base of every reducer. Subclasses implement grow(), the on_* callbacks, outputs(),
    state_parts() and load_state_parts()."""

    def __init__(self, str name, bytes config_hash):
        if len(config_hash) != 32:
            raise ValueError(f"config_hash = {len(config_hash)} bytes must be 32 (BLAKE2b-256)")
        self.name = name
        self.config_hash = config_hash

    cdef int grow(self, uint32_t n) noexcept nogil:
        return 0

    cdef void dispatch(self, uint64_t offset, const RecordHeader* h) noexcept nogil:
        # Instruments are dense ids; state for an id appears the first time any record names it, so a
        # reducer started fresh in the middle of the log (replay --fresh) needs no earlier definition.
        cdef uint32_t iid = h.instrument_id
        if iid != NO_INSTRUMENT and iid >= self.n_instruments:
            if self.grow(iid + 1) != 0:
                self.failed = True
                return
            self.n_instruments = iid + 1
        self.now = h.ts_recv
        ChunkWalker.dispatch(self, offset, h)
        self.next_offset = offset + 1
        self.events += 1

    def apply_record(self, const uint8_t[::1] record, uint64_t offset):
        """The live path: apply one record (its bytes) that sits at `offset` in the log."""
        if record.shape[0] < HEADER_SIZE:
            raise ValueError(f"record = {record.shape[0]} bytes must hold a 32-byte header")
        cdef const RecordHeader* h = <const RecordHeader*>&record[0]
        if h.length < HEADER_SIZE or h.length > record.shape[0] or h.payload_len > h.length - HEADER_SIZE:
            raise ValueError(f"record length = {h.length} (payload_len {h.payload_len}) must fit the "
                             f"{record.shape[0]} bytes given")
        with nogil:
            self.dispatch(offset, <const RecordHeader*>&record[0])
        self._check()

    def apply_chunk(self, const uint8_t[::1] body, uint64_t first_offset, uint64_t start=0,
                    uint64_t stop=0xFFFFFFFFFFFFFFFF):
        """The replay path: apply the records of a chunk body with offsets in [start, stop)."""
        cdef uint64_t end = first_offset
        if body.shape[0]:
            with nogil:
                end = self.walk_ptr(&body[0], body.shape[0], first_offset, start, stop)
        self._check()
        return end

    def _check(self):
        if self.failed:
            raise MemoryError(f"reducer '{self.name}' could not grow its state")

    # -- subclass hooks (Python level: called once per snapshot, never per record) ----------------

    def outputs(self):
        """[(name, OutputBuffer)] in a fixed order."""
        return []

    def state_parts(self):
        """The reducer's state as a list of bytes (raw C arrays), in a fixed order."""
        return []

    def load_state_parts(self, parts):
        """Inverse of state_parts()."""

    # -- snapshots --------------------------------------------------------------------------------

    def snapshot(self) -> bytes:
        """Versioned, checksummed, deterministic bytes of the whole state, outputs drained."""
        cdef OutputBuffer buf
        parts = [SNAPSHOT_MAGIC, struct.pack("<H", SNAPSHOT_FORMAT)]
        _put(parts, self.name.encode())
        _put(parts, self.config_hash)
        parts.append(_FIXED.pack(self.next_offset, self.events, self.n_instruments, self.now))
        state = self.state_parts()
        parts.append(_LEN.pack(len(state)))
        for blob in state:
            _put(parts, bytes(blob))
        outs = self.outputs()
        parts.append(_LEN.pack(len(outs)))
        for out_name, buf in outs:
            if len(buf):
                raise SnapshotError(f"reducer '{self.name}': output '{out_name}' has {len(buf)} undrained rows")
            _put(parts, out_name.encode())
            parts.append(struct.pack("<Q", buf.rows_emitted))
            _put(parts, buf.digest_state())
        body = b"".join(parts)
        return body + hashlib.blake2b(body, digest_size=32).digest()

    def restore(self, snapshot) -> None:
        """Load a snapshot of a reducer with the same name and configuration."""
        cdef OutputBuffer buf
        view = memoryview(snapshot).cast("B")
        if len(view) < 6 + 32 or bytes(view[:4]) != SNAPSHOT_MAGIC:
            raise SnapshotError("not an Argus reducer snapshot (magic must be b'ARGS')")
        body, check = view[:-32], bytes(view[-32:])
        if hashlib.blake2b(body, digest_size=32).digest() != check:
            raise SnapshotError(f"reducer '{self.name}': snapshot checksum mismatch (damaged snapshot)")
        (fmt,) = struct.unpack_from("<H", body, 4)
        if fmt != SNAPSHOT_FORMAT:
            raise SnapshotError(f"snapshot format = {fmt} is not one this build reads ({SNAPSHOT_FORMAT})")
        name, pos = _take(body, 6)
        if name.decode() != self.name:
            raise SnapshotError(f"snapshot of reducer '{name.decode()}' cannot restore reducer '{self.name}'")
        config_hash, pos = _take(body, pos)
        if config_hash != self.config_hash:
            raise SnapshotError(f"reducer '{self.name}': snapshot config_hash = {config_hash.hex()[:16]}... "
                                f"must equal this configuration's {self.config_hash.hex()[:16]}...")
        next_offset, events, n_instruments, now = _FIXED.unpack_from(body, pos)
        pos += _FIXED.size
        (n_parts,) = _LEN.unpack_from(body, pos)
        pos += 4
        state = []
        for _ in range(n_parts):
            blob, pos = _take(body, pos)
            state.append(blob)
        (n_outs,) = _LEN.unpack_from(body, pos)
        pos += 4
        outs = dict(self.outputs())
        if n_outs != len(outs):
            raise SnapshotError(f"reducer '{self.name}': snapshot has {n_outs} outputs, this build {len(outs)}")
        restored = []
        for _ in range(n_outs):
            out_name, pos = _take(body, pos)
            (rows,) = struct.unpack_from("<Q", body, pos)
            pos += 8
            digest_state, pos = _take(body, pos)
            restored.append((out_name.decode(), rows, digest_state))
        # Everything parsed: only now change the reducer.
        if self.grow(n_instruments) != 0:
            raise MemoryError(f"reducer '{self.name}' could not grow its state")
        previous = self.n_instruments
        self.n_instruments = n_instruments  # load_state_parts sizes its arrays by it
        try:
            self.load_state_parts(state)
        except BaseException:
            self.n_instruments = previous
            raise
        for out_name, rows, digest_state in restored:
            if out_name not in outs:
                raise SnapshotError(f"reducer '{self.name}': snapshot output '{out_name}' is unknown")
            buf = outs[out_name]
            buf.restore_digest(digest_state, rows)
        self.next_offset = next_offset
        self.events = events
        self.now = now

    def state_digest(self) -> bytes:
        """BLAKE2b-256 of the snapshot: equal states give equal digests."""
        return hashlib.blake2b(self.snapshot(), digest_size=32).digest()
