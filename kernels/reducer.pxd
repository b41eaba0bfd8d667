# The reducer protocol (DESIGN.md §5): a ChunkWalker with per-instrument state in C arrays, typed
# output buffers, a running digest of its outputs, and deterministic snapshot()/restore().
from libc.stdint cimport int64_t, uint32_t, uint64_t
from argus.kernels.records cimport RecordHeader
from argus.kernels.walker cimport ChunkWalker

cdef class Reducer(ChunkWalker):
    cdef readonly str name              # projection name, e.g. "bars"
    cdef readonly bytes config_hash     # BLAKE2b-256 of the canonical configuration
    cdef readonly uint64_t next_offset  # offset after the last record applied
    cdef readonly uint64_t events       # records applied since the empty state
    cdef readonly uint32_t n_instruments  # per-instrument arrays hold this many ids
    cdef readonly int64_t now           # ts_recv of the record being applied (the only clock)
    cdef bint failed                    # an allocation failed inside a nogil callback

    cdef void dispatch(self, uint64_t offset, const RecordHeader* h) noexcept nogil
    # Grow every per-instrument array to hold n ids (new entries zeroed); 0 on success.
    cdef int grow(self, uint32_t n) noexcept nogil
