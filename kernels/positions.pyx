"""Positions from fills: per (account, instrument) quantity, average cost, realized and unrealized P&L,
with contract multipliers read from the log's InstrumentDefined events, and multi-leg groups.

Accounting is average cost (the convention of NautilusTrader's netting positions and of LEAN's
holdings). For a fill of signed quantity f at price p on a position of quantity q and average cost a,
with contract multiplier m:

* q == 0 or f has the sign of q (the position grows): a <- (a * |q| + p * |f|) / |q + f|.
* f against q, |f| < |q| (reduces): realized += (p - a) * |f| * sign(q) * m; a unchanged.
* f against q, |f| >= |q| (closes or flips): realized += (p - a) * |q| * sign(q) * m; the remainder
  q + f, if any, opens at a = p. A remainder within QTY_EPS (relative) of zero is a close, so float
  dust such as 0.3 - 0.1 - 0.2 never opens a phantom position.

realized_pnl is gross; commissions accumulate apart (net = realized - commission). Unrealized P&L is
(mark - a) * q * m, where the mark is the later, in log order, of the instrument's last trade price and
last quote mid; marks only mark, a fill never reads them (nor moves them). A flat position has
unrealized 0; an open one without any mark yet has NaN.

Groups: a fill with a nonzero position_id also applies to the leg (position_id, account, instrument),
a position of its own inside the group, so a group's P&L is exact even when two groups share an
(account, instrument). Account positions and legs go through the same position_apply(), so a leg that
only one group trades equals its account position bit for bit.

Instruments never defined in the processed range (a replay started fresh after the definitions) get
multiplier 1."""

import struct

import numpy as np

from libc.math cimport NAN, fabs, isfinite
from libc.stdint cimport uint8_t, uint32_t, uint64_t
from libc.stdlib cimport calloc, free, realloc
from libc.string cimport memcpy, memmove, memset
from argus.kernels.records cimport (
    RecordHeader, TradePayload, QuotePayload, FillPayload, HEADER_SIZE, T_INSTRUMENT_DEFINED, payload_of,
)
from argus.kernels.reducer cimport Reducer
from argus.kernels.outputs cimport OutputBuffer
from argus.kernels.protowire cimport pw_double, pw_uint64
from argus.kernels.positions cimport InstrumentMarks, Position, GroupLeg, PositionOut

from argus.kernels.reducer import SnapshotError

#: InstrumentDefined's field number of `double multiplier` (protos/argus/v1/events.proto).
MULTIPLIER_FIELD = 8
#: Relative tolerance under which a remaining quantity counts as flat.
QTY_EPS = 1e-12
cdef double _QTY_EPS = QTY_EPS
cdef uint32_t _MULTIPLIER_FIELD = MULTIPLIER_FIELD

# The numpy description of PositionOut (one output row); tests/kernels check it against the struct.
POSITION_FIELDS = (
    ("offset", "<u8"),
    ("ts_recv", "<i8"),
    ("account_id", "<u4"),
    ("instrument_id", "<u4"),
    ("position_id", "<u8"),
    ("fill_qty", "<f8"),
    ("fill_price", "<f8"),
    ("quantity", "<f8"),
    ("avg_cost", "<f8"),
    ("realized_pnl", "<f8"),
    ("commission", "<f8"),
    ("multiplier", "<f8"),
    ("mark", "<f8"),
    ("unrealized_pnl", "<f8"),
)

#: Rows of PositionReducer.positions().
POSITIONS_DTYPE = np.dtype([
    ("account_id", "<u4"), ("instrument_id", "<u4"), ("quantity", "<f8"), ("avg_cost", "<f8"),
    ("realized_pnl", "<f8"), ("commission", "<f8"), ("net_pnl", "<f8"), ("multiplier", "<f8"),
    ("mark", "<f8"), ("unrealized_pnl", "<f8"), ("fills", "<u8"),
])

#: Rows of PositionReducer.legs().
LEGS_DTYPE = np.dtype([
    ("position_id", "<u8"), ("account_id", "<u4"), ("instrument_id", "<u4"), ("quantity", "<f8"),
    ("avg_cost", "<f8"), ("realized_pnl", "<f8"), ("commission", "<f8"), ("multiplier", "<f8"),
    ("mark", "<f8"), ("unrealized_pnl", "<f8"), ("fills", "<u8"),
])

#: Rows of PositionReducer.groups().
GROUPS_DTYPE = np.dtype([
    ("position_id", "<u8"), ("legs", "<u4"), ("open_legs", "<u4"), ("net_quantity", "<f8"),
    ("realized_pnl", "<f8"), ("commission", "<f8"), ("net_pnl", "<f8"), ("unrealized_pnl", "<f8"),
    ("fills", "<u8"),
])

_COUNTS = struct.Struct("<IIq")


def position_layout_info():
    """Size and field offsets of PositionOut, for the layout test against POSITION_FIELDS."""
    cdef PositionOut r
    cdef size_t base = <size_t>&r
    return sizeof(PositionOut), {
        "offset": <size_t>&r.offset - base, "ts_recv": <size_t>&r.ts_recv - base,
        "account_id": <size_t>&r.account_id - base, "instrument_id": <size_t>&r.instrument_id - base,
        "position_id": <size_t>&r.position_id - base, "fill_qty": <size_t>&r.fill_qty - base,
        "fill_price": <size_t>&r.fill_price - base, "quantity": <size_t>&r.quantity - base,
        "avg_cost": <size_t>&r.avg_cost - base, "realized_pnl": <size_t>&r.realized_pnl - base,
        "commission": <size_t>&r.commission - base, "multiplier": <size_t>&r.multiplier - base,
        "mark": <size_t>&r.mark - base, "unrealized_pnl": <size_t>&r.unrealized_pnl - base,
    }


def wire_double(const uint8_t[::1] message, uint32_t field, double default=NAN):
    """The double field `field` of a serialized protobuf message (kernels/protowire.pxd), or default
    when it is absent or the message is malformed."""
    if message.shape[0] == 0:
        return default
    return pw_double(&message[0], message.shape[0], field, default)


def wire_uint64(const uint8_t[::1] message, uint32_t field, uint64_t default=0):
    """The varint field `field` of a serialized protobuf message, or default (see wire_double)."""
    if message.shape[0] == 0:
        return default
    return pw_uint64(&message[0], message.shape[0], field, default)


# -- accounting (shared by account positions and group legs) ---------------------------------------

cdef void position_apply(Position* p, double qty, double price, double commission,
                         double multiplier) noexcept nogil:
    cdef double q = p.quantity
    cdef double rest
    p.fills += 1
    p.commission += commission
    if q == 0.0 or (q > 0.0) == (qty > 0.0):
        # Opens or grows: quantity-weighted average cost.
        rest = q + qty
        p.avg_cost = price if q == 0.0 else (p.avg_cost * fabs(q) + price * fabs(qty)) / fabs(rest)
        p.quantity = rest
        return
    rest = q + qty
    if fabs(qty) < fabs(q) and fabs(rest) > _QTY_EPS * fabs(q):
        # Reduces: realize the closed quantity at the fill price against the average cost.
        p.realized_pnl += (price - p.avg_cost) * fabs(qty) * (1.0 if q > 0.0 else -1.0) * multiplier
        p.quantity = rest
        return
    # Closes the whole old position; the remainder (if any) opens at the fill price.
    p.realized_pnl += (price - p.avg_cost) * fabs(q) * (1.0 if q > 0.0 else -1.0) * multiplier
    if fabs(rest) > _QTY_EPS * fabs(q) and fabs(qty) > fabs(q):
        p.quantity = rest
        p.avg_cost = price
    else:
        p.quantity = 0.0
        p.avg_cost = 0.0


cdef double position_unrealized(const Position* p, double mark, double multiplier) noexcept nogil:
    if p.quantity == 0.0:
        return 0.0
    return (mark - p.avg_cost) * p.quantity * multiplier


cdef inline void marks_init(InstrumentMarks* m) noexcept nogil:
    m.multiplier = 1.0
    m.last_trade = NAN
    m.last_mid = NAN
    m.mark = NAN
    m.mark_ts = 0


cdef inline bint key_less(uint64_t pid_a, uint32_t acc_a, uint32_t iid_a,
                          uint64_t pid_b, uint32_t acc_b, uint32_t iid_b) noexcept nogil:
    if pid_a != pid_b:
        return pid_a < pid_b
    if acc_a != acc_b:
        return acc_a < acc_b
    return iid_a < iid_b


cdef class PositionReducer(Reducer):
    """Positions per (account, instrument) from Fill events, marked by trades and quote mids, with
    multi-leg groups by position_id. Output "positions": one PositionOut row per Fill."""

    def __init__(self, str name, bytes config_hash):
        Reducer.__init__(self, name, config_hash)
        self.out = OutputBuffer(np.dtype(list(POSITION_FIELDS)))

    def __dealloc__(self):
        free(self.inst)
        free(self.accounts)
        free(self.pos)
        free(self.leg_data)

    # -- growth -----------------------------------------------------------------------------------

    cdef int grow(self, uint32_t n) noexcept nogil:
        cdef uint32_t new_cap
        cdef uint32_t i
        cdef InstrumentMarks* inst
        cdef Position* pos
        if n <= self.cap_instruments:
            return 0
        new_cap = n
        if new_cap < 16:
            new_cap = 16
        if self.cap_instruments <= 0x7FFFFFFF and new_cap < 2 * self.cap_instruments:
            new_cap = 2 * self.cap_instruments
        inst = <InstrumentMarks*>realloc(self.inst, <size_t>new_cap * sizeof(InstrumentMarks))
        if inst == NULL:
            return -1
        self.inst = inst
        memset(inst + self.cap_instruments, 0, <size_t>(new_cap - self.cap_instruments) * sizeof(InstrumentMarks))
        for i in range(self.cap_instruments, new_cap):
            marks_init(&inst[i])
        if self.cap_accounts:
            # Rows are slot-major: re-lay every account's row at the new stride.
            pos = <Position*>calloc(<size_t>self.cap_accounts * new_cap, sizeof(Position))
            if pos == NULL:
                return -1
            for i in range(self.n_accounts):
                memcpy(pos + <size_t>i * new_cap, self.pos + <size_t>i * self.cap_instruments,
                       <size_t>self.cap_instruments * sizeof(Position))
            free(self.pos)
            self.pos = pos
        self.cap_instruments = new_cap
        return 0

    cdef int grow_accounts(self, uint32_t n) noexcept nogil:
        cdef uint32_t new_cap
        cdef uint32_t* accounts
        cdef Position* pos
        if n <= self.cap_accounts:
            return 0
        new_cap = 4 if self.cap_accounts < 4 else self.cap_accounts
        while new_cap < n:
            new_cap *= 2
        accounts = <uint32_t*>realloc(self.accounts, <size_t>new_cap * sizeof(uint32_t))
        if accounts == NULL:
            return -1
        self.accounts = accounts
        if self.cap_instruments:
            pos = <Position*>realloc(self.pos, <size_t>new_cap * self.cap_instruments * sizeof(Position))
            if pos == NULL:
                return -1
            self.pos = pos
            memset(pos + <size_t>self.cap_accounts * self.cap_instruments, 0,
                   <size_t>(new_cap - self.cap_accounts) * self.cap_instruments * sizeof(Position))
        self.cap_accounts = new_cap
        return 0

    cdef Py_ssize_t account_slot(self, uint32_t account_id) noexcept nogil:
        cdef uint32_t s
        for s in range(self.n_accounts):
            if self.accounts[s] == account_id:
                return s
        if self.grow_accounts(self.n_accounts + 1) != 0:
            return -1
        self.accounts[self.n_accounts] = account_id
        self.n_accounts += 1
        return self.n_accounts - 1

    cdef Py_ssize_t leg_index(self, uint64_t position_id, uint32_t account_id, uint32_t instrument_id) noexcept nogil:
        """Lower bound of the key in legs (binary search)."""
        cdef Py_ssize_t lo = 0
        cdef Py_ssize_t hi = self.n_legs
        cdef Py_ssize_t mid
        cdef GroupLeg* g
        while lo < hi:
            mid = (lo + hi) >> 1
            g = &self.leg_data[mid]
            if key_less(g.position_id, g.account_id, g.instrument_id, position_id, account_id, instrument_id):
                lo = mid + 1
            else:
                hi = mid
        return lo

    cdef GroupLeg* group_leg(self, uint64_t position_id, uint32_t account_id, uint32_t instrument_id) noexcept nogil:
        cdef Py_ssize_t i = self.leg_index(position_id, account_id, instrument_id)
        cdef Py_ssize_t new_cap
        cdef GroupLeg* legs
        cdef GroupLeg* g
        if i < self.n_legs:
            g = &self.leg_data[i]
            if g.position_id == position_id and g.account_id == account_id and g.instrument_id == instrument_id:
                return g
        if self.n_legs == self.cap_legs:
            new_cap = 16 if self.cap_legs < 16 else 2 * self.cap_legs
            legs = <GroupLeg*>realloc(self.leg_data, new_cap * sizeof(GroupLeg))
            if legs == NULL:
                return NULL
            self.leg_data = legs
            self.cap_legs = new_cap
        memmove(&self.leg_data[i + 1], &self.leg_data[i], (self.n_legs - i) * sizeof(GroupLeg))
        g = &self.leg_data[i]
        memset(g, 0, sizeof(GroupLeg))
        g.position_id = position_id
        g.account_id = account_id
        g.instrument_id = instrument_id
        self.n_legs += 1
        return g

    # -- callbacks (hot path) ---------------------------------------------------------------------

    cdef void on_trade(self, uint64_t offset, const RecordHeader* h, const TradePayload* p) noexcept nogil:
        cdef InstrumentMarks* m
        if h.instrument_id >= self.n_instruments or not (isfinite(p.price) and p.price > 0.0):
            return
        m = &self.inst[h.instrument_id]
        m.last_trade = p.price
        m.mark = p.price
        m.mark_ts = h.ts_recv

    cdef void on_quote(self, uint64_t offset, const RecordHeader* h, const QuotePayload* p) noexcept nogil:
        cdef InstrumentMarks* m
        cdef double mid
        if h.instrument_id >= self.n_instruments:
            return
        if not (isfinite(p.bid) and isfinite(p.ask) and p.bid > 0.0 and p.ask >= p.bid):
            return  # a one-sided or crossed quote does not mark
        mid = 0.5 * (p.bid + p.ask)
        m = &self.inst[h.instrument_id]
        m.last_mid = mid
        m.mark = mid
        m.mark_ts = h.ts_recv

    cdef void on_other(self, uint64_t offset, const RecordHeader* h) noexcept nogil:
        cdef double mult
        if h.type != T_INSTRUMENT_DEFINED or h.instrument_id >= self.n_instruments:
            return
        if h.length < HEADER_SIZE or h.payload_len > h.length - HEADER_SIZE:
            return
        mult = pw_double(<const uint8_t*>payload_of(h), h.payload_len, _MULTIPLIER_FIELD, 1.0)
        self.inst[h.instrument_id].multiplier = mult if (isfinite(mult) and mult > 0.0) else 1.0

    cdef void on_fill(self, uint64_t offset, const RecordHeader* h, const FillPayload* p) noexcept nogil:
        cdef uint32_t iid = h.instrument_id
        cdef Py_ssize_t slot
        cdef Position* pos
        cdef GroupLeg* leg
        cdef InstrumentMarks* m
        cdef PositionOut* row
        if iid >= self.n_instruments or not (isfinite(p.price) and isfinite(p.quantity) and p.quantity != 0.0):
            return
        slot = self.account_slot(p.account_id)
        if slot < 0:
            self.failed = True
            return
        m = &self.inst[iid]
        pos = &self.pos[<size_t>slot * self.cap_instruments + iid]
        position_apply(pos, p.quantity, p.price, p.commission, m.multiplier)
        if p.position_id != 0:
            leg = self.group_leg(p.position_id, p.account_id, iid)
            if leg == NULL:
                self.failed = True
                return
            position_apply(&leg.pos, p.quantity, p.price, p.commission, m.multiplier)
        row = <PositionOut*>self.out.push()
        row.offset = offset
        row.ts_recv = h.ts_recv
        row.account_id = p.account_id
        row.instrument_id = iid
        row.position_id = p.position_id
        row.fill_qty = p.quantity
        row.fill_price = p.price
        row.quantity = pos.quantity
        row.avg_cost = pos.avg_cost
        row.realized_pnl = pos.realized_pnl
        row.commission = pos.commission
        row.multiplier = m.multiplier
        row.mark = m.mark
        row.unrealized_pnl = position_unrealized(pos, m.mark, m.multiplier)

    # -- read models (Python level) ---------------------------------------------------------------

    def outputs(self):
        return [("positions", self.out)]

    def multiplier(self, uint32_t instrument_id):
        """The contract multiplier of an instrument (1 when never defined)."""
        return self.inst[instrument_id].multiplier if instrument_id < self.n_instruments else 1.0

    def mark(self, uint32_t instrument_id):
        """(mark, ts_recv of the event that set it) of an instrument; (NaN, 0) before any."""
        if instrument_id >= self.n_instruments:
            return NAN, 0
        return self.inst[instrument_id].mark, self.inst[instrument_id].mark_ts

    def positions(self):
        """Every (account, instrument) with at least one fill, flat ones included, sorted by
        (account_id, instrument_id), as a structured array of POSITIONS_DTYPE."""
        cdef uint32_t s, i
        cdef Py_ssize_t k = 0
        cdef Position* p
        cdef InstrumentMarks* m
        n = 0
        for s in range(self.n_accounts):
            for i in range(self.n_instruments):
                n += self.pos[<size_t>s * self.cap_instruments + i].fills != 0
        out = np.zeros(n, dtype=POSITIONS_DTYPE)
        for s in range(self.n_accounts):
            for i in range(self.n_instruments):
                p = &self.pos[<size_t>s * self.cap_instruments + i]
                if p.fills == 0:
                    continue
                m = &self.inst[i]
                out[k] = (self.accounts[s], i, p.quantity, p.avg_cost, p.realized_pnl, p.commission,
                          p.realized_pnl - p.commission, m.multiplier, m.mark,
                          position_unrealized(p, m.mark, m.multiplier), p.fills)
                k += 1
        return out[np.argsort(out, order=("account_id", "instrument_id"), kind="stable")]

    def legs(self):
        """Every group leg, sorted by (position_id, account_id, instrument_id), as LEGS_DTYPE rows."""
        cdef Py_ssize_t k
        cdef GroupLeg* g
        cdef InstrumentMarks* m
        out = np.zeros(self.n_legs, dtype=LEGS_DTYPE)
        for k in range(self.n_legs):
            g = &self.leg_data[k]
            m = &self.inst[g.instrument_id]
            out[k] = (g.position_id, g.account_id, g.instrument_id, g.pos.quantity, g.pos.avg_cost,
                      g.pos.realized_pnl, g.pos.commission, m.multiplier, m.mark,
                      position_unrealized(&g.pos, m.mark, m.multiplier), g.pos.fills)
        return out

    def groups(self):
        """Per nonzero position_id, sums over its legs (in leg order): realized, commission, net and
        unrealized P&L (NaN when an open leg has no mark), net quantity, legs and open legs."""
        cdef Py_ssize_t k = 0
        cdef Py_ssize_t j
        cdef GroupLeg* g
        cdef InstrumentMarks* m
        rows = []
        while k < self.n_legs:
            pid = self.leg_data[k].position_id
            n_legs = n_open = 0
            fills = 0
            qty = realized = commission = unrealized = 0.0
            j = k
            while j < self.n_legs and self.leg_data[j].position_id == pid:
                g = &self.leg_data[j]
                m = &self.inst[g.instrument_id]
                n_legs += 1
                n_open += g.pos.quantity != 0.0
                fills += g.pos.fills
                qty += g.pos.quantity
                realized += g.pos.realized_pnl
                commission += g.pos.commission
                unrealized += position_unrealized(&g.pos, m.mark, m.multiplier)
                j += 1
            rows.append((pid, n_legs, n_open, qty, realized, commission, realized - commission, unrealized, fills))
            k = j
        return np.array(rows, dtype=GROUPS_DTYPE)

    # -- snapshots --------------------------------------------------------------------------------

    def state_parts(self):
        """[counts, instruments, accounts, positions (n_accounts x n_instruments), legs]: the used
        part of each array, so the bytes do not depend on capacities."""
        cdef uint32_t s
        rows = [(<char*>(self.pos + <size_t>s * self.cap_instruments))[:self.n_instruments * sizeof(Position)]
                for s in range(self.n_accounts)] if self.n_instruments else []
        return [
            _COUNTS.pack(self.n_accounts, self.n_instruments, self.n_legs),
            (<char*>self.inst)[:self.n_instruments * sizeof(InstrumentMarks)] if self.n_instruments else b"",
            (<char*>self.accounts)[:self.n_accounts * sizeof(uint32_t)] if self.n_accounts else b"",
            b"".join(rows),
            (<char*>self.leg_data)[:self.n_legs * sizeof(GroupLeg)] if self.n_legs else b"",
        ]

    def load_state_parts(self, parts):
        cdef uint32_t s, n_accounts, n_instruments
        cdef Py_ssize_t n_legs
        cdef const uint8_t[::1] view
        cdef GroupLeg* legs
        cdef const GroupLeg* check
        cdef Py_ssize_t k
        if len(parts) != 5:
            raise SnapshotError(f"reducer '{self.name}': {len(parts)} state parts, positions has 5")
        if len(parts[0]) != _COUNTS.size:
            raise SnapshotError(f"reducer '{self.name}': counts part = {len(parts[0])} bytes must be {_COUNTS.size}")
        n_accounts, n_instruments, n_legs = _COUNTS.unpack(parts[0])
        if n_instruments != self.n_instruments:
            raise SnapshotError(f"reducer '{self.name}': state holds {n_instruments} instruments, "
                                f"the snapshot header {self.n_instruments}")
        if n_legs < 0:
            raise SnapshotError(f"reducer '{self.name}': legs = {n_legs} must be >= 0")
        expect = (n_instruments * sizeof(InstrumentMarks), n_accounts * sizeof(uint32_t),
                  <size_t>n_accounts * n_instruments * sizeof(Position), n_legs * sizeof(GroupLeg))
        for what, blob, size in zip(("instruments", "accounts", "positions", "legs"), parts[1:], expect, strict=True):
            if len(blob) != size:
                raise SnapshotError(f"reducer '{self.name}': {what} part = {len(blob)} bytes must be {size}")
        if n_legs:
            view = parts[4]
            check = <const GroupLeg*>&view[0]
            for k in range(n_legs):
                if check[k].position_id == 0 or check[k].instrument_id >= n_instruments or (
                        k and not key_less(check[k - 1].position_id, check[k - 1].account_id, check[k - 1].instrument_id,
                                           check[k].position_id, check[k].account_id, check[k].instrument_id)):
                    raise SnapshotError(f"reducer '{self.name}': group leg {k} is out of order or names no instrument")
        if self.grow(n_instruments) != 0 or self.grow_accounts(n_accounts) != 0:
            raise MemoryError(f"reducer '{self.name}' could not grow its state")
        if n_legs > self.cap_legs:
            legs = <GroupLeg*>realloc(self.leg_data, n_legs * sizeof(GroupLeg))
            if legs == NULL:
                raise MemoryError(f"reducer '{self.name}' could not grow its state")
            self.leg_data = legs
            self.cap_legs = n_legs
        # Replace everything: the reducer may have held state before.
        for s in range(self.cap_instruments):
            marks_init(&self.inst[s])
        if n_instruments:
            view = parts[1]
            memcpy(self.inst, &view[0], view.shape[0])
        if self.cap_accounts and self.cap_instruments:
            memset(self.pos, 0, <size_t>self.cap_accounts * self.cap_instruments * sizeof(Position))
        if n_accounts:
            view = parts[2]
            memcpy(self.accounts, &view[0], view.shape[0])
            if n_instruments:
                view = parts[3]
                for s in range(n_accounts):
                    memcpy(self.pos + <size_t>s * self.cap_instruments,
                           &view[<size_t>s * n_instruments * sizeof(Position)], n_instruments * sizeof(Position))
        self.n_accounts = n_accounts
        if n_legs:
            view = parts[4]
            memcpy(self.leg_data, &view[0], view.shape[0])
        self.n_legs = n_legs
