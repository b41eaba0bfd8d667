"""Output buffers of the reducers, and the block-chained digest of what they emitted.

The digest must come out the same whether rows are drained one event at a time (live) or one chunk
at a time (replay), and must survive a snapshot. So rows are hashed in blocks of exactly ROWS_PER_BLOCK
rows, chained (chain = BLAKE2b(chain || block)); the rows of the unfinished block are kept and travel
in snapshots. digest() = BLAKE2b(chain || pending rows)."""

import hashlib

import numpy as np

from libc.stdlib cimport malloc, realloc, free
from libc.string cimport memset, memcpy

ROWS_PER_BLOCK = 1024


class BlockDigest:
    """BLAKE2b over a row stream, canonical whatever the drain sizes, restorable from (chain, pending)."""

    __slots__ = ("itemsize", "chain", "pending")

    def __init__(self, itemsize: int, chain: bytes = b"\0" * 32, pending: bytes = b""):
        self.itemsize = itemsize
        self.chain = chain
        self.pending = bytearray(pending)

    def update(self, rows) -> None:
        """Add rows (any buffer of whole rows)."""
        view = memoryview(rows).cast("B")
        block = ROWS_PER_BLOCK * self.itemsize
        if self.pending:
            take = min(len(view), block - len(self.pending))
            self.pending += view[:take]
            view = view[take:]
            if len(self.pending) < block:
                return
            self.chain = self._link(self.chain, self.pending)
            self.pending = bytearray()
        full = len(view) - len(view) % block
        chain = self.chain
        for start in range(0, full, block):  # whole blocks straight from the caller's buffer
            chain = self._link(chain, view[start:start + block])
        self.chain = chain
        self.pending += view[full:]

    @staticmethod
    def _link(chain: bytes, block) -> bytes:
        h = hashlib.blake2b(chain, digest_size=32)
        h.update(block)
        return h.digest()

    def digest(self) -> bytes:
        return hashlib.blake2b(self.chain + bytes(self.pending), digest_size=32).digest()

    def state(self) -> bytes:
        return self.chain + bytes(self.pending)

    @classmethod
    def from_state(cls, itemsize: int, state: bytes) -> "BlockDigest":
        return cls(itemsize, bytes(state[:32]), bytes(state[32:]))


cdef class OutputBuffer:
    """Rows of one numpy dtype, pushed by a reducer without the GIL, drained by the engine."""

    def __cinit__(self, dtype, Py_ssize_t capacity=4096):
        self.dtype = np.dtype(dtype)
        self.itemsize = self.dtype.itemsize
        self.cap = max(capacity, 16)
        self.data = <uint8_t*>malloc(self.cap * self.itemsize)
        self.scratch = <uint8_t*>malloc(self.itemsize)
        if self.data == NULL or self.scratch == NULL:
            raise MemoryError()
        self.n = 0
        self._digest = BlockDigest(self.itemsize)

    def __dealloc__(self):
        free(self.data)
        free(self.scratch)

    cdef void* push(self) noexcept nogil:
        """A zeroed slot for one more row."""
        cdef uint8_t* grown
        cdef uint8_t* slot
        if self.n == self.cap:
            grown = <uint8_t*>realloc(self.data, 2 * self.cap * self.itemsize)
            if grown == NULL:
                self.failed = True
                memset(self.scratch, 0, self.itemsize)
                return self.scratch
            self.data = grown
            self.cap *= 2
        slot = self.data + self.n * self.itemsize
        memset(slot, 0, self.itemsize)
        self.n += 1
        self.rows_emitted += 1
        return slot

    def __len__(self):
        return self.n

    def drain(self):
        """The rows pushed since the last drain, as a structured array (a copy); they enter the digest."""
        if self.failed:
            raise MemoryError("an output buffer could not grow; rows were lost")
        out = np.empty(self.n, dtype=self.dtype)
        if self.n:
            memcpy(<void*><Py_ssize_t>out.ctypes.data, self.data, self.n * self.itemsize)
            self._digest.update(out)
        self.n = 0
        return out

    def digest(self) -> bytes:
        """BLAKE2b-256 of every row drained so far (drain first to include pending rows)."""
        return self._digest.digest()

    def digest_state(self) -> bytes:
        return self._digest.state()

    def restore_digest(self, state: bytes, rows_emitted: int) -> None:
        self._digest = BlockDigest.from_state(self.itemsize, state)
        self.rows_emitted = rows_emitted
        self.n = 0
