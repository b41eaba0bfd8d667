# A typed, growable output buffer of fixed-size rows (a C array), drained into numpy by the engine.
# Rows are zeroed when pushed, so padding bytes (and so digests) are deterministic.
from libc.stdint cimport uint8_t, uint64_t

cdef class OutputBuffer:
    cdef uint8_t* data          # n rows of itemsize bytes
    cdef Py_ssize_t itemsize
    cdef Py_ssize_t n
    cdef Py_ssize_t cap
    cdef bint failed            # an allocation failed; drain() raises MemoryError
    cdef uint8_t* scratch       # where rows go after a failed allocation (never read)
    cdef readonly object dtype  # numpy dtype of one row
    cdef readonly uint64_t rows_emitted
    cdef object _digest         # BlockDigest of every row drained

    cdef void* push(self) noexcept nogil
