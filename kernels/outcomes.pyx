"""Outcomes of closed bars: what happened after each bar, emitted only once it is known.

The OutcomeReducer is a BarListener: the bar reducer calls on_bar_closed() for every bar it emits,
live or in replay, and feed_bars() does the same from an array of BAR_FIELDS rows. Every closed bar of
an (instrument, bar spec) is a reference bar; for each configured horizon its window is

  * horizon h (bars): the h bars of the same (instrument, spec) after the reference, whatever their
    session. It completes when the h-th of them closes.
  * session end (horizon code 0): the bars after the reference with the reference's BarOut.session.
    It completes when a bar of another session arrives (the first bar of the next session). Bars with
    session 0 (unknown) are no reference of a session-end outcome. A session is remembered for at most
    session_cap bars: when one more bar of the same session arrives with session_cap bars buffered,
    the oldest reference is emitted with status TRUNCATED (4) and its window is the session_cap bars
    after it (a bounded state: session_cap * 56 bytes per slot at most, grown as used).

The outcome of a window: forward_return = close of the window's last bar / reference close - 1,
max_runup = max high over the window / reference close - 1, max_drawdown = min low over the window /
reference close - 1. A session-end window can be empty (the reference closed its session): then
forward_return = 0 and max_runup = max_drawdown = NaN.

A row is emitted when its window completes, in the call for the completing bar: offset and end_ts are
the completing bar's offset and ts_end (for session end, the first bar of the next session), never the
reference's, so no row exists before its outcome is known. Status COMPLETE (1), or GAP (2) when the
reference or a bar of the window carries FLAG_GAP. Rows of one completing bar come in a fixed order:
reference bars oldest first, then horizons in the configured order (session end last).
pending() gives, without changing anything, the windows still open at the end of the log with the
figures so far (status INCOMPLETE, 3); they are never part of the output.
"""

import hashlib
import json
import math
import struct

import numpy as np

from libc.math cimport NAN, INFINITY
from libc.stdint cimport int32_t, int64_t, uint8_t, uint32_t, uint64_t
from libc.stdlib cimport free, malloc, realloc
from libc.string cimport memcpy, memmove, memset
from argus.kernels.bars cimport BarOut, BarListener, FLAG_GAP
from argus.kernels.outputs cimport OutputBuffer
from argus.kernels.reducer cimport Reducer

from argus.kernels.bars import BAR_FIELDS
from argus.kernels.reducer import SnapshotError

BAR_DTYPE = np.dtype(list(BAR_FIELDS))

# The numpy description of OutcomeRow (one output row); a test checks it against the struct.
OUTCOME_FIELDS = (
    ("offset", "<u8"),
    ("instrument_id", "<u4"),
    ("spec", "<u4"),
    ("ref_offset", "<u8"),
    ("ref_ts_end", "<i8"),
    ("horizon", "<i4"),
    ("status", "u1"),
    ("_pad", "V3"),
    ("forward_return", "<f8"),
    ("max_runup", "<f8"),
    ("max_drawdown", "<f8"),
    ("end_ts", "<i8"),
)
OUTCOME_DTYPE = np.dtype(list(OUTCOME_FIELDS))

STATUS_COMPLETE = OUTCOME_COMPLETE
STATUS_GAP = OUTCOME_GAP
STATUS_INCOMPLETE = OUTCOME_INCOMPLETE
STATUS_TRUNCATED = OUTCOME_TRUNCATED
SESSION_END = 0
DEFAULT_HORIZONS = (1, 5, 20)
DEFAULT_SESSION_CAP = 2000
MAX_HORIZON = 10000
MAX_SESSION_CAP = 1000000
_INT64_MIN = -(1 << 63)


def outcome_layout_info():
    """Size and field offsets of OutcomeRow, for the layout test against OUTCOME_FIELDS."""
    cdef OutcomeRow r
    cdef size_t base = <size_t>&r
    return sizeof(OutcomeRow), {
        "offset": <size_t>&r.offset - base, "instrument_id": <size_t>&r.instrument_id - base,
        "spec": <size_t>&r.spec - base, "ref_offset": <size_t>&r.ref_offset - base,
        "ref_ts_end": <size_t>&r.ref_ts_end - base, "horizon": <size_t>&r.horizon - base,
        "status": <size_t>&r.status - base, "_pad": <size_t>&r._pad[0] - base,
        "forward_return": <size_t>&r.forward_return - base, "max_runup": <size_t>&r.max_runup - base,
        "max_drawdown": <size_t>&r.max_drawdown - base, "end_ts": <size_t>&r.end_ts - base,
    }


def state_sizes():
    """sizeof(RingBar), sizeof(SessBar), sizeof(SlotHead): the raw records of the snapshot."""
    return sizeof(RingBar), sizeof(SessBar), sizeof(SlotHead)


def parse_outcomes(horizons=DEFAULT_HORIZONS, session_end=True, session_cap=DEFAULT_SESSION_CAP):
    """The validated configuration as a dict; ValueError naming field, value and rule otherwise."""
    if isinstance(horizons, (str, bytes)) or not hasattr(horizons, "__iter__"):
        raise ValueError(f"horizons = {horizons!r} must be a sequence of integers in [1, {MAX_HORIZON}]")
    clean = []
    for i, h in enumerate(horizons):
        if isinstance(h, bool) or not isinstance(h, (int, np.integer)) or not 1 <= h <= MAX_HORIZON:
            raise ValueError(f"horizons[{i}] = {h!r} must be an integer in [1, {MAX_HORIZON}] "
                             f"(session end is session_end=True, not 0)")
        if int(h) in clean:
            raise ValueError(f"horizons[{i}] = {h!r} must be unique (it appears twice)")
        clean.append(int(h))
    if not isinstance(session_end, (bool, np.bool_)):
        raise ValueError(f"session_end = {session_end!r} must be a bool")
    if not clean and not session_end:
        raise ValueError("horizons = [] must name at least one horizon when session_end is False")
    if isinstance(session_cap, bool) or not isinstance(session_cap, (int, np.integer)) \
            or not 1 <= session_cap <= MAX_SESSION_CAP:
        raise ValueError(f"session_cap = {session_cap!r} must be an integer in [1, {MAX_SESSION_CAP}]")
    return {"horizons": clean, "session_end": bool(session_end), "session_cap": int(session_cap)}


def config_hash(horizons=DEFAULT_HORIZONS, session_end=True, session_cap=DEFAULT_SESSION_CAP,
                bytes upstream=b""):
    """BLAKE2b-256 of the canonical configuration (sorted-key JSON), chained to the bar reducer's hash."""
    canonical = json.dumps({"outcomes": parse_outcomes(horizons, session_end, session_cap)},
                           sort_keys=True, separators=(",", ":"))
    return hashlib.blake2b(upstream + canonical.encode(), digest_size=32).digest()


cdef inline void put_row(OutcomeRow* row, const BarOut* bar, uint64_t ref_offset, int64_t ref_ts_end,
                         int32_t horizon, uint32_t flags, double ref_close, double last_close,
                         double hi, double lo, bint empty) noexcept nogil:
    row.offset = bar.offset
    row.instrument_id = bar.instrument_id
    row.spec = bar.spec
    row.ref_offset = ref_offset
    row.ref_ts_end = ref_ts_end
    row.horizon = horizon
    row.status = OUTCOME_GAP if flags & FLAG_GAP else OUTCOME_COMPLETE
    row.forward_return = last_close / ref_close - 1.0
    if empty:
        row.max_runup = NAN
        row.max_drawdown = NAN
    else:
        row.max_runup = hi / ref_close - 1.0
        row.max_drawdown = lo / ref_close - 1.0
    row.end_ts = bar.ts_end


cdef class OutcomeReducer(BarListener):
    """OutcomeReducer(name, config_hash, n_bar_specs, horizons=(1, 5, 20), session_end=True,
    session_cap=2000): forward return, run-up and drawdown of closed bars (see the module docstring).

    Output "outcomes": rows of OUTCOME_FIELDS, emitted when their window completes."""

    def __init__(self, str name, bytes config_hash, int n_bar_specs, horizons=DEFAULT_HORIZONS,
                 session_end=True, session_cap=DEFAULT_SESSION_CAP):
        cdef Py_ssize_t i, j, t
        Reducer.__init__(self, name, config_hash)
        if self.hz != NULL or self.of_len != NULL:
            raise RuntimeError("OutcomeReducer.__init__ called twice")
        if n_bar_specs < 1:
            raise ValueError(f"n_bar_specs = {n_bar_specs} must be >= 1")
        cfg = parse_outcomes(horizons, session_end, session_cap)
        hs = cfg["horizons"]
        self.n_hz = len(hs)
        self.hmax = max(hs) if hs else 0
        self.ring_len = self.hmax + 1
        self.session_end = cfg["session_end"]
        self.session_cap = cfg["session_cap"]
        self.n_bar_specs = n_bar_specs
        self.horizons = tuple(hs)
        n = max(self.n_hz, 1)
        self.hz = <int64_t*>malloc(n * sizeof(int64_t))
        self.by_age = <Py_ssize_t*>malloc(n * sizeof(Py_ssize_t))
        self.of_len = <Py_ssize_t*>malloc((self.hmax + 1) * sizeof(Py_ssize_t))
        self.cmax = <double*>malloc(n * sizeof(double))
        self.cmin = <double*>malloc(n * sizeof(double))
        self.cflags = <uint32_t*>malloc(n * sizeof(uint32_t))
        if (self.hz == NULL or self.by_age == NULL or self.of_len == NULL or self.cmax == NULL
                or self.cmin == NULL or self.cflags == NULL):
            raise MemoryError()
        for t in range(self.hmax + 1):
            self.of_len[t] = -1
        for i, h in enumerate(hs):
            self.hz[i] = h
            self.of_len[h] = i
        for j, i in enumerate(sorted(range(self.n_hz), key=lambda k: -hs[k])):
            self.by_age[j] = i
        self.out = OutputBuffer(OUTCOME_DTYPE)

    def __dealloc__(self):
        cdef uint64_t i
        if self.sess != NULL:
            for i in range(<uint64_t>self.cap * self.n_bar_specs):
                free(self.sess[i])
        free(self.sess)
        free(self.sess_alloc)
        free(self.heads)
        free(self.ring)
        free(self.hz)
        free(self.by_age)
        free(self.of_len)
        free(self.cmax)
        free(self.cmin)
        free(self.cflags)

    cdef int grow(self, uint32_t n) noexcept nogil:
        """Hold at least n instruments (new slots zeroed); 0 on success."""
        cdef uint64_t new_cap, old_slots, new_slots
        cdef SlotHead* heads
        cdef RingBar* ring
        cdef SessBar** sess
        cdef int64_t* alloc
        if n <= self.cap:
            return 0
        new_cap = 2 * <uint64_t>self.cap
        if new_cap < n:
            new_cap = n
        if new_cap > <uint64_t>0xFFFFFFFFU:
            new_cap = <uint64_t>0xFFFFFFFFU
        old_slots = <uint64_t>self.cap * self.n_bar_specs
        new_slots = new_cap * self.n_bar_specs
        heads = <SlotHead*>realloc(self.heads, new_slots * sizeof(SlotHead))
        if heads == NULL:
            return -1
        self.heads = heads
        ring = <RingBar*>realloc(self.ring, new_slots * self.ring_len * sizeof(RingBar))
        if ring == NULL:
            return -1
        self.ring = ring
        sess = <SessBar**>realloc(self.sess, new_slots * sizeof(SessBar*))
        if sess == NULL:
            return -1
        self.sess = sess
        alloc = <int64_t*>realloc(self.sess_alloc, new_slots * sizeof(int64_t))
        if alloc == NULL:
            return -1
        self.sess_alloc = alloc
        memset(heads + old_slots, 0, (new_slots - old_slots) * sizeof(SlotHead))
        memset(ring + old_slots * self.ring_len, 0, (new_slots - old_slots) * self.ring_len * sizeof(RingBar))
        memset(sess + old_slots, 0, (new_slots - old_slots) * sizeof(SessBar*))
        memset(alloc + old_slots, 0, (new_slots - old_slots) * sizeof(int64_t))
        self.cap = <uint32_t>new_cap
        return 0

    cdef int reserve(self, uint64_t slot, int64_t n) noexcept nogil:
        """Room for n session bars in the slot's buffer (doubling, at most session_cap); 0 on success."""
        cdef int64_t want
        cdef SessBar* buf
        if n <= self.sess_alloc[slot]:
            return 0
        want = 2 * self.sess_alloc[slot]
        if want < 16:
            want = 16
        if want < n:
            want = n
        if want > self.session_cap:
            want = self.session_cap
        buf = <SessBar*>realloc(self.sess[slot], want * sizeof(SessBar))
        if buf == NULL:
            return -1
        self.sess[slot] = buf
        self.sess_alloc[slot] = want
        return 0

    cdef void on_bar_closed(self, const BarOut* bar) noexcept nogil:
        cdef uint32_t iid = bar.instrument_id
        cdef uint64_t slot
        cdef SlotHead* head
        cdef RingBar* ring
        cdef RingBar* rb
        cdef SessBar* buf
        cdef SessBar* e
        cdef OutcomeRow* row
        cdef int64_t n, d, depth, idx, h, count, i, si, s_end, ref_seq
        cdef Py_ssize_t a, j
        cdef double hi, lo, x
        cdef uint32_t fl
        cdef bint complete = False, trunc = False
        if self.failed:
            return
        if bar.spec >= self.n_bar_specs:
            self.bad_spec = True
            self.bad_spec_value = bar.spec
            self.failed = True
            return
        if iid >= self.n_instruments:
            if self.grow(iid + 1) != 0:
                self.failed = True
                return
            self.n_instruments = iid + 1
        slot = <uint64_t>iid * self.n_bar_specs + bar.spec
        head = &self.heads[slot]
        ring = self.ring + slot * self.ring_len
        n = head.nbars

        # 1. the new bar enters the ring; windows of each horizon, newest bar backwards
        idx = n % self.ring_len
        rb = &ring[idx]
        rb.close = bar.close
        rb.high = bar.high
        rb.low = bar.low
        rb.ts_end = bar.ts_end
        rb.offset = bar.offset
        rb.flags = bar.flags
        rb._reserved = 0
        depth = self.hmax if self.hmax < n else n
        hi = -INFINITY
        lo = INFINITY
        fl = 0
        for d in range(depth):              # bars n, n-1, ..., n-depth+1
            rb = &ring[idx]
            if rb.high > hi:
                hi = rb.high
            if rb.low < lo:
                lo = rb.low
            fl = fl | rb.flags
            j = self.of_len[d + 1]
            if j >= 0:
                self.cmax[j] = hi
                self.cmin[j] = lo
                self.cflags[j] = fl
            idx = idx - 1 if idx > 0 else self.ring_len - 1

        # 2. the session: the new bar completes (another session) or truncates (buffer full) windows
        count = head.sess_count
        buf = self.sess[slot]
        if self.session_end and count > 0:
            if bar.session != head.session:
                complete = True
                # suffixes in place: high, low, _reserved become max high, min low, flags of the bars after
                hi = -INFINITY
                lo = INFINITY
                fl = 0
                for i in range(count - 1, -1, -1):
                    e = &buf[i]
                    x = e.high
                    e.high = hi
                    if x > hi:
                        hi = x
                    x = e.low
                    e.low = lo
                    if x < lo:
                        lo = x
                    e._reserved = fl
                    fl = fl | e.flags
            elif count == self.session_cap:
                trunc = True
        s_end = count if complete else (1 if trunc else 0)

        # 3. emit, references oldest first, horizons in configured order (session end last)
        a = 0
        while a < self.n_hz and self.hz[self.by_age[a]] > n:
            a += 1
        si = 0
        while a < self.n_hz or si < s_end:
            if a < self.n_hz and (si >= s_end or n - self.hz[self.by_age[a]] <= buf[si].seq):
                j = self.by_age[a]
                h = self.hz[j]
                rb = &ring[(n - h) % self.ring_len]
                put_row(<OutcomeRow*>self.out.push(), bar, rb.offset, rb.ts_end, <int32_t>h,
                        self.cflags[j] | rb.flags, rb.close, bar.close, self.cmax[j], self.cmin[j], False)
                a += 1
            else:
                e = &buf[si]
                if complete:
                    put_row(<OutcomeRow*>self.out.push(), bar, e.offset, e.ts_end, 0, e.flags | e._reserved,
                            e.close, buf[count - 1].close, e.high, e.low, si == count - 1)
                else:                       # truncated: the session_cap bars after the oldest reference
                    hi = bar.high
                    lo = bar.low
                    fl = bar.flags
                    for i in range(1, count):
                        if buf[i].high > hi:
                            hi = buf[i].high
                        if buf[i].low < lo:
                            lo = buf[i].low
                        fl = fl | buf[i].flags
                    row = <OutcomeRow*>self.out.push()
                    put_row(row, bar, e.offset, e.ts_end, 0, e.flags | fl, e.close, bar.close, hi, lo, False)
                    row.status = OUTCOME_TRUNCATED
                si += 1

        # 4. the new bar joins the session buffer
        if complete:
            count = 0
        elif trunc:
            memmove(buf, buf + 1, (count - 1) * sizeof(SessBar))
            count -= 1
        if self.session_end:
            if bar.session != 0:
                if count == 0:
                    head.session = bar.session
                if self.reserve(slot, count + 1) != 0:
                    self.failed = True
                    return
                e = &self.sess[slot][count]
                e.close = bar.close
                e.high = bar.high
                e.low = bar.low
                e.ts_end = bar.ts_end
                e.offset = bar.offset
                e.seq = n
                e.flags = bar.flags
                e._reserved = 0
                count += 1
            elif count == 0:
                head.session = 0
        head.sess_count = count
        head.nbars = n + 1
        self.next_offset = bar.offset + 1
        self.now = bar.ts_end
        self.events += 1

    def pending(self):
        """The windows still open at the end of the log, with their figures so far (status INCOMPLETE):
        per (instrument, spec), references oldest first, horizons in configured order. offset and end_ts
        are those of the slot's last bar; an empty window so far has NaN figures. Changes nothing."""
        cdef uint64_t slot, nslots = <uint64_t>self.n_instruments * self.n_bar_specs
        cdef SlotHead* head
        cdef RingBar* ring
        cdef RingBar* rb
        cdef RingBar* last
        cdef SessBar* buf
        cdef int64_t lastseq, r, k, h, i, count
        cdef Py_ssize_t j
        cdef double hi, lo, ref_close
        rows = []
        for slot in range(nslots):
            head = &self.heads[slot]
            if head.nbars == 0:
                continue
            ring = self.ring + slot * self.ring_len
            lastseq = head.nbars - 1
            last = &ring[lastseq % self.ring_len]
            iid, spec = slot // self.n_bar_specs, slot % self.n_bar_specs
            items = []
            for j in range(self.n_hz):
                h = self.hz[j]
                for r in range(max(0, lastseq - h + 1), lastseq + 1):
                    rb = &ring[r % self.ring_len]
                    ref_close = rb.close
                    hi = -INFINITY
                    lo = INFINITY
                    for k in range(r + 1, lastseq + 1):
                        if ring[k % self.ring_len].high > hi:
                            hi = ring[k % self.ring_len].high
                        if ring[k % self.ring_len].low < lo:
                            lo = ring[k % self.ring_len].low
                    if r == lastseq:
                        figs = (NAN, NAN, NAN)
                    else:
                        figs = (last.close / ref_close - 1.0, hi / ref_close - 1.0, lo / ref_close - 1.0)
                    items.append((r, j, rb.offset, rb.ts_end, h) + figs)
            count = head.sess_count
            if self.session_end and count:
                buf = self.sess[slot]
                hi = -INFINITY
                lo = INFINITY
                suffix = []
                for i in range(count - 1, -1, -1):
                    ref_close = buf[i].close
                    if i == count - 1:
                        figs = (NAN, NAN, NAN)
                    else:
                        figs = (buf[count - 1].close / ref_close - 1.0, hi / ref_close - 1.0,
                                lo / ref_close - 1.0)
                    suffix.append((buf[i].seq, self.n_hz, buf[i].offset, buf[i].ts_end, 0) + figs)
                    if buf[i].high > hi:
                        hi = buf[i].high
                    if buf[i].low < lo:
                        lo = buf[i].low
                items.extend(suffix)
            items.sort(key=lambda t: (t[0], t[1]))
            for _, _, ref_offset, ref_ts_end, h, fr, up, dn in items:
                rows.append((last.offset, iid, spec, ref_offset, ref_ts_end, h, OUTCOME_INCOMPLETE, b"\0\0\0",
                             fr, up, dn, last.ts_end))
        return np.array(rows, dtype=OUTCOME_DTYPE)

    def _check(self):
        if self.bad_spec:
            raise ValueError(f"reducer '{self.name}': bar spec = {self.bad_spec_value} must be < "
                             f"n_bar_specs = {self.n_bar_specs}; the reducer stopped and must be rebuilt")
        Reducer._check(self)

    def outputs(self):
        return [("outcomes", self.out)]

    def _layout(self):
        return struct.pack(f"<IIqqBq{self.n_hz}q", self.n_bar_specs, <uint32_t>self.n_hz, self.hmax,
                           self.ring_len, self.session_end, self.session_cap, *self.horizons) \
            + struct.pack("<III", sizeof(SlotHead), sizeof(RingBar), sizeof(SessBar))

    def state_parts(self):
        """[layout, slot heads, rings, session bars]: the slots of the n_instruments instruments, raw
        little-endian; the session bars are each slot's sess_count bars, slot after slot."""
        cdef uint64_t slot, slots = <uint64_t>self.n_instruments * self.n_bar_specs
        cdef Py_ssize_t hn = slots * sizeof(SlotHead)
        cdef Py_ssize_t rn = slots * self.ring_len * sizeof(RingBar)
        heads = (<char*>self.heads)[:hn] if hn else b""
        ring = (<char*>self.ring)[:rn] if rn else b""
        sess = []
        for slot in range(slots):
            if self.heads[slot].sess_count:
                sess.append((<char*>self.sess[slot])[:self.heads[slot].sess_count * sizeof(SessBar)])
        return [self._layout(), heads, ring, b"".join(sess)]

    def load_state_parts(self, parts):
        cdef uint64_t slot, slots = <uint64_t>self.n_instruments * self.n_bar_specs
        cdef Py_ssize_t hn = slots * sizeof(SlotHead)
        cdef Py_ssize_t rn = slots * self.ring_len * sizeof(RingBar)
        cdef Py_ssize_t pos = 0, nbytes
        cdef const uint8_t[::1] hview
        cdef const uint8_t[::1] rview
        cdef const uint8_t[::1] sview
        cdef const SlotHead* h
        if len(parts) != 4:
            raise SnapshotError(f"reducer '{self.name}': snapshot has {len(parts)} state parts, this build 4")
        if bytes(parts[0]) != self._layout():
            raise SnapshotError(f"reducer '{self.name}': snapshot state layout differs from this "
                                f"configuration's (bar specs, horizons, session_end, session_cap or sizes)")
        if len(parts[1]) != hn or len(parts[2]) != rn:
            raise SnapshotError(f"reducer '{self.name}': snapshot state = {len(parts[1])} + {len(parts[2])} bytes "
                                f"must be {hn} + {rn} for {self.n_instruments} instruments")
        hbytes, sbytes = bytes(parts[1]), bytes(parts[3])
        total = 0
        if hn:
            hview = hbytes
            for slot in range(slots):
                h = <const SlotHead*>&hview[slot * sizeof(SlotHead)]
                if h.nbars < 0 or h.sess_count < 0 or h.sess_count > self.session_cap \
                        or h.sess_count > h.nbars or (h.sess_count and not self.session_end):
                    raise SnapshotError(f"reducer '{self.name}': snapshot slot {slot}: nbars = {h.nbars}, "
                                        f"sess_count = {h.sess_count} must satisfy 0 <= sess_count <= "
                                        f"min(nbars, session_cap = {self.session_cap})")
                total += h.sess_count
        if len(sbytes) != total * sizeof(SessBar):
            raise SnapshotError(f"reducer '{self.name}': snapshot session bars = {len(sbytes)} bytes must be "
                                f"{total * sizeof(SessBar)} ({total} bars)")
        if hn:  # reserve every buffer first: a failure leaves the old state whole
            for slot in range(slots):
                h = <const SlotHead*>&hview[slot * sizeof(SlotHead)]
                if self.reserve(slot, h.sess_count) != 0:
                    raise MemoryError(f"reducer '{self.name}' could not grow its state")
        if self.cap:
            memset(self.heads, 0, <size_t>self.cap * self.n_bar_specs * sizeof(SlotHead))
            memset(self.ring, 0, <size_t>self.cap * self.n_bar_specs * self.ring_len * sizeof(RingBar))
        if hn:
            memcpy(self.heads, &hview[0], hn)
        if rn:
            rview = bytes(parts[2])
            memcpy(self.ring, &rview[0], rn)
        if total:
            sview = sbytes
            for slot in range(slots):
                nbytes = self.heads[slot].sess_count * sizeof(SessBar)
                if nbytes:
                    memcpy(self.sess[slot], &sview[pos], nbytes)
                    pos += nbytes
        self.bad_spec = False
        self.failed = False
