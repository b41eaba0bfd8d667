"""SessionTagReducer: the global session label at each record's ts_event, and a row per change.

Time is global: records of every instrument (crypto included), Clock events and records without an
instrument all count. Each record's ts_event is looked up in the partition table (segments [start, end)
ns UTC, contiguous and sorted, with uint8 labels; see argus.projections.sessions): a cursor moves
forward through the table (the next two segments are tried first), and a binary search finds the
segment when time jumps (back, or far ahead). An instant outside the table has label 0. When the label
differs from the current one, a SESSION_FIELDS row (offset, ts_event, from_label, to_label) goes to the
output "sessions" and the label becomes current; the first record applied emits 0 -> its label.
Out-of-order ts_event can therefore emit a change back and forth: the rows follow log order.

State (snapshot): the current label and the cursor. The same log gives the same rows, record by record
(apply_record) or by chunks (apply_chunk), from offset 0 or from a snapshot."""

import struct

import numpy as np

from libc.stdint cimport int64_t, uint8_t, uint64_t
from libc.stdlib cimport malloc, free
from argus.kernels.records cimport RecordHeader
from argus.kernels.reducer cimport Reducer
from argus.kernels.outputs cimport OutputBuffer

from argus.kernels.reducer import SnapshotError

# The numpy description of SessionChange (one output row); a test checks it against the struct.
SESSION_FIELDS = (
    ("offset", "<u8"),
    ("ts_event", "<i8"),
    ("from_label", "u1"),
    ("to_label", "u1"),
    ("_pad", "V6"),
)

_STATE = struct.Struct("<Bxxxxxxxq")


def layout_info():
    """Size and field offsets of SessionChange, for the layout test against SESSION_FIELDS."""
    cdef SessionChange c
    cdef size_t base = <size_t>&c
    return sizeof(SessionChange), {
        "offset": <size_t>&c.offset - base, "ts_event": <size_t>&c.ts_event - base,
        "from_label": <size_t>&c.from_label - base, "to_label": <size_t>&c.to_label - base,
        "_pad": <size_t>&c._pad - base,
    }


cdef class SessionTagReducer(Reducer):
    """SessionTagReducer(name, config_hash, segments, labels): segments an int64 (n, 2) array of
    [start_ns, end_ns), contiguous and sorted; labels a uint8-compatible (n,) array of labels 1..255."""

    def __init__(self, str name, bytes config_hash, segments, labels):
        cdef Py_ssize_t i
        Reducer.__init__(self, name, config_hash)
        seg = np.asarray(segments)
        lab = np.asarray(labels)
        if seg.ndim != 2 or seg.shape[1] != 2 or seg.shape[0] == 0:
            raise ValueError(f"segments shape = {seg.shape} must be (n, 2) with n >= 1: [start_ns, end_ns) per row")
        if seg.dtype.kind not in "iu":
            raise ValueError(f"segments dtype = {seg.dtype} must be an integer type (int64 ns UTC)")
        if lab.shape != (seg.shape[0],):
            raise ValueError(f"labels shape = {lab.shape} must be ({seg.shape[0]},): one label per segment")
        if lab.dtype.kind not in "iu" or (lab.size and (lab.min() < 1 or lab.max() > 255)):
            raise ValueError(f"labels = {lab.dtype} in [{lab.min()}, {lab.max()}] must be integers in [1, 255]")
        seg = np.ascontiguousarray(seg, dtype=np.int64)
        bad = np.flatnonzero(seg[:, 0] >= seg[:, 1])
        if len(bad):
            i = int(bad[0])
            raise ValueError(f"segments[{i}] = [{seg[i, 0]}, {seg[i, 1]}) must have start < end")
        bad = np.flatnonzero(seg[1:, 0] != seg[:-1, 1])
        if len(bad):
            i = int(bad[0]) + 1
            raise ValueError(f"segments[{i}] start = {seg[i, 0]} must equal segments[{i - 1}] end = "
                             f"{seg[i - 1, 1]} (contiguous, sorted)")
        self.n_segments = seg.shape[0]
        self.starts = <int64_t*>malloc(self.n_segments * sizeof(int64_t))
        self.ends = <int64_t*>malloc(self.n_segments * sizeof(int64_t))
        self.labels = <uint8_t*>malloc(self.n_segments * sizeof(uint8_t))
        if self.starts == NULL or self.ends == NULL or self.labels == NULL:
            raise MemoryError()
        for i in range(self.n_segments):
            self.starts[i] = seg[i, 0]
            self.ends[i] = seg[i, 1]
            self.labels[i] = <uint8_t>int(lab[i])
        self.out = OutputBuffer(np.dtype(list(SESSION_FIELDS)))

    def __dealloc__(self):
        free(self.starts)
        free(self.ends)
        free(self.labels)

    cdef Py_ssize_t find(self, int64_t ts, Py_ssize_t hint) noexcept nogil:
        """Index of the segment holding ts, or -1 outside the table."""
        cdef Py_ssize_t n = self.n_segments, lo, hi, mid
        if ts < self.starts[0] or ts >= self.ends[n - 1]:
            return -1
        if 0 <= hint < n and self.starts[hint] <= ts:
            if ts < self.ends[hint]:
                return hint
            if hint + 1 < n and ts < self.ends[hint + 1]:
                return hint + 1
            if hint + 2 < n and ts < self.ends[hint + 2]:
                return hint + 2
        # Invariant: starts[lo] <= ts < (hi == n or starts[hi]).
        lo = 0
        hi = n
        while hi - lo > 1:
            mid = lo + (hi - lo) // 2
            if self.starts[mid] <= ts:
                lo = mid
            else:
                hi = mid
        return lo

    cdef void dispatch(self, uint64_t offset, const RecordHeader* h) noexcept nogil:
        cdef Py_ssize_t j = self.find(h.ts_event, self.cursor)
        cdef uint8_t label = 0
        cdef SessionChange* row
        if j >= 0:
            self.cursor = j
            label = self.labels[j]
        if label != self.current:
            row = <SessionChange*>self.out.push()
            row.offset = offset
            row.ts_event = h.ts_event
            row.from_label = self.current
            row.to_label = label
            self.current = label
        Reducer.dispatch(self, offset, h)

    def label_at(self, int64_t ts):
        """The label of an instant (0 outside the table); changes no state."""
        cdef Py_ssize_t j = self.find(ts, -1)
        return 0 if j < 0 else int(self.labels[j])

    @property
    def n_segment_rows(self):
        return self.n_segments

    def outputs(self):
        return [("sessions", self.out)]

    def state_parts(self):
        return [_STATE.pack(self.current, self.cursor)]

    def load_state_parts(self, parts):
        if len(parts) != 1 or len(parts[0]) != _STATE.size:
            raise SnapshotError(f"reducer '{self.name}': session tag state = {[len(p) for p in parts]} bytes "
                                f"must be one part of {_STATE.size}")
        current, cursor = _STATE.unpack(parts[0])
        if not (0 <= cursor < self.n_segments):
            raise SnapshotError(f"reducer '{self.name}': cursor = {cursor} must be in [0, {self.n_segments})")
        self.current = current
        self.cursor = cursor
