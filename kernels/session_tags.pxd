# Session tags: the global session label (Asia, Europe, US pre/regular/post, weekend, holiday) at each
# record's ts_event, from a partition table (argus.projections.sessions.global_session_segments), and a
# row per label change.
from libc.stdint cimport int64_t, uint8_t, uint64_t
from argus.kernels.records cimport RecordHeader
from argus.kernels.reducer cimport Reducer
from argus.kernels.outputs cimport OutputBuffer

# One label change (an output row). Declared for numpy as SESSION_FIELDS in session_tags.pyx.
cdef struct SessionChange:
    uint64_t offset         # log offset of the record whose ts_event is in the new segment
    int64_t ts_event        # that record's ts_event
    uint8_t from_label      # the previous label (0 before the first record, or outside the table)
    uint8_t to_label        # the new label
    uint8_t _pad[6]

cdef class SessionTagReducer(Reducer):
    cdef int64_t* starts            # n_segments segment starts, sorted
    cdef int64_t* ends              # their ends (exclusive)
    cdef uint8_t* labels            # their labels
    cdef Py_ssize_t n_segments
    cdef readonly uint8_t current   # label of the last record applied (0 before any)
    cdef Py_ssize_t cursor          # segment index of the last lookup (search hint)
    cdef readonly OutputBuffer out  # output "sessions": one SESSION_FIELDS row per label change

    cdef Py_ssize_t find(self, int64_t ts, Py_ssize_t hint) noexcept nogil
    cdef void dispatch(self, uint64_t offset, const RecordHeader* h) noexcept nogil
