# Positions from fills (DESIGN.md §5): per (account, instrument) quantity, average cost, realized and
# unrealized P&L with contract multipliers from InstrumentDefined, and multi-leg groups by position id.
from libc.stdint cimport int64_t, uint32_t, uint64_t
from argus.kernels.outputs cimport OutputBuffer
from argus.kernels.reducer cimport Reducer

# Per instrument (indexed by the dense instrument id). No padding: snapshot bytes are the struct bytes.
cdef struct InstrumentMarks:
    double multiplier       # contract multiplier from InstrumentDefined (field 8); 1 when never defined
    double last_trade       # price of the last Trade; NaN before the first
    double last_mid         # (bid + ask) / 2 of the last Quote; NaN before the first
    double mark             # the later (in log order) of last_trade and last_mid; NaN before either
    int64_t mark_ts         # ts_recv of the event that set mark; 0 before

# One position (average-cost accounting). All zeros is the empty position.
cdef struct Position:
    double quantity         # signed: > 0 long, < 0 short
    double avg_cost         # quantity-weighted average entry price of the open quantity; 0 when flat
    double realized_pnl     # gross realized P&L in currency (price * quantity * multiplier)
    double commission       # commissions and fees paid (rebates negative)
    uint64_t fills          # fills applied; a position with fills is listed even when flat

# One leg of a multi-leg group: the fills of one (position_id, account, instrument), as a position of
# its own. Kept in one C array sorted by (position_id, account_id, instrument_id).
cdef struct GroupLeg:
    uint64_t position_id
    uint32_t account_id
    uint32_t instrument_id
    Position pos

# One output row per Fill, after it is applied. Declared for numpy as POSITION_FIELDS in positions.pyx;
# a test checks both.
cdef struct PositionOut:
    uint64_t offset         # log offset of the Fill
    int64_t ts_recv         # ts_recv of the Fill
    uint32_t account_id
    uint32_t instrument_id
    uint64_t position_id    # the Fill's group (0 for a plain position)
    double fill_qty         # signed fill quantity
    double fill_price
    double quantity         # position quantity after the fill
    double avg_cost         # average cost after the fill (0 when flat)
    double realized_pnl     # cumulative gross realized P&L of the (account, instrument) position
    double commission       # cumulative commission of the (account, instrument) position
    double multiplier
    double mark             # the instrument's mark at that moment (NaN when none)
    double unrealized_pnl   # (mark - avg_cost) * quantity * multiplier; 0 when flat, NaN without a mark


# Apply a fill to a position (average cost); the one helper for account positions and group legs.
cdef void position_apply(Position* p, double qty, double price, double commission, double multiplier) noexcept nogil
# Unrealized P&L of a position at a mark: 0 when flat, NaN when the mark is NaN.
cdef double position_unrealized(const Position* p, double mark, double multiplier) noexcept nogil


cdef class PositionReducer(Reducer):
    cdef InstrumentMarks* inst      # cap_instruments entries, all initialized
    cdef uint32_t cap_instruments
    cdef uint32_t* accounts         # account id of each slot, in first-appearance order
    cdef uint32_t n_accounts
    cdef uint32_t cap_accounts
    cdef Position* pos              # cap_accounts * cap_instruments, indexed slot * cap_instruments + iid
    cdef GroupLeg* leg_data         # n_legs, sorted by (position_id, account_id, instrument_id)
    cdef Py_ssize_t n_legs
    cdef Py_ssize_t cap_legs
    cdef readonly OutputBuffer out  # "positions": one PositionOut per Fill

    # Grow the account arrays to hold n slots (new position rows zeroed); 0 on success.
    cdef int grow_accounts(self, uint32_t n) noexcept nogil
    # The slot of an account id (added when new); -1 when it could not grow.
    cdef Py_ssize_t account_slot(self, uint32_t account_id) noexcept nogil
    # Lower bound of (position_id, account_id, instrument_id) in leg_data (binary search).
    cdef Py_ssize_t leg_index(self, uint64_t position_id, uint32_t account_id, uint32_t instrument_id) noexcept nogil
    # The group leg of (position_id, account_id, instrument_id) (inserted when new); NULL when it could not grow.
    cdef GroupLeg* group_leg(self, uint64_t position_id, uint32_t account_id, uint32_t instrument_id) noexcept nogil
