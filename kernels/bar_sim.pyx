"""Bars-mode simulation of target positions, one block of closed bars per call (the backtest fast path,
argus.replay.fast).

For each bar, in emission order, exactly what argus.replay.backtest._Run does for a strategy that
answers with market `Target`s under fixed sizing (bars mode, `next_open`):

1. The working market order of the bar's instrument, if it was decided at an earlier offset, fills at
   this bar's open slipped adversely (CostModel.slipped_price: bps first, then ticks, x
   cost_multiplier); commission = m x |q| x (rate x |price| + per_share), at least the order minimum,
   plus the per-order fee (CostModel.commission / order_charge). Position, cash, commission and
   slippage totals are updated as _Run._fill does (a position within 1e-9 relative of zero is zero).
2. The bar's close becomes the instrument's last price.
3. The bar's target (NaN: none) becomes an order of desired - position - pending (ignored below
   1e-12). An entry (desired != 0) is refused when the instrument already had 2 x max_trades_per_day
   orders accepted that day (the caller's day number of the bar: the New York date of its ts_recv),
   or when it would lift gross exposure above equity x
   leverage (and above the gross before it); `status` says why.
4. The bar's equity row: cash + sum(position x last), gross = sum(|position| x last x multiplier),
   over the instruments with a position, in index order.

Every sum is Python's builtin sum() of the same terms in the same order (plain left to right, or
Neumaier-compensated as CPython >= 3.12 does), so the numbers are the general path's to the bit.
Cases the general path handles but this kernel does not (two working orders on one instrument, a day
going backwards) stop the call with STATUS_UNSUPPORTED; the caller then runs the general path.
"""

import numpy as np

from libc.math cimport fabs, isfinite, isnan
from libc.stdint cimport int8_t, int32_t, int64_t, uint8_t

STATUS_OK = 0
STATUS_BAD_BAR = 1
STATUS_UNSUPPORTED = 2
#: order status codes (o_status)
ACCEPTED = 0
REJECTED_TRADES_PER_DAY = 1
REJECTED_BUYING_POWER = 2


cdef inline void sum_add(PySum* s, double x, bint neumaier) noexcept nogil:
    """One item of builtin sum() (CPython's float loop; Neumaier's improved Kahan-Babuska from 3.12)."""
    cdef double t
    if not neumaier:
        s.f = s.f + x
        return
    t = s.f + x
    if fabs(s.f) >= fabs(x):
        s.c += (s.f - t) + x
    else:
        s.c += (x - t) + s.f
    s.f = t


cdef inline double sum_result(PySum* s, bint neumaier) noexcept nogil:
    if neumaier and s.c != 0.0 and isfinite(s.c):
        return s.f + s.c
    return s.f


cdef class BarSim:
    """Simulator state for `n` instruments; `run` advances it by one block of bars."""

    def __init__(self, int n, double[::1] multipliers, *, double cash, double qty, double slippage_bps,
                 double slippage_ticks, double tick_size, double commission_rate, double commission_per_share,
                 double commission_min, double fee_per_order, double cost_multiplier, double leverage,
                 double max_trades_per_day, bint neumaier):
        if multipliers.shape[0] != n:
            raise ValueError(f"multipliers: {multipliers.shape[0]} values for {n} instruments")
        self.n = n
        self.cash = cash
        self.total_commission = 0.0
        self.total_slippage = 0.0
        self.next_order = 1
        self.n_orders = self.n_rejected = self.n_bars = 0
        self.qty, self.bps, self.ticks, self.tick = qty, slippage_bps, slippage_ticks, tick_size
        self.rate, self.per_share, self.cmin, self.fee = commission_rate, commission_per_share, commission_min, \
            fee_per_order
        self.m, self.leverage, self.cap2 = cost_multiplier, leverage, max_trades_per_day * 2
        self.neumaier = neumaier
        self.pos = np.zeros(n)
        self.pending = np.zeros(n)
        self.last = np.zeros(n)
        self.mult = np.array(multipliers, dtype=np.float64)
        self.wqty = np.zeros(n)
        self.wid = np.zeros(n, dtype=np.int64)
        self.wdec = np.zeros(n, dtype=np.int64)
        self.day = np.full(n, np.iinfo(np.int64).min, dtype=np.int64)
        self.daycount = np.zeros(n, dtype=np.int64)
        self.active = np.zeros(n, dtype=np.int32)
        self.n_active = 0
        self.sum_eq = self.sum_gr = 0.0

    @property
    def positions(self):
        return np.asarray(self.pos).copy()

    @property
    def last_prices(self):
        return np.asarray(self.last).copy()

    cdef void _reactive(self) noexcept nogil:
        cdef int k
        self.n_active = 0
        for k in range(self.n):
            if self.pos[k] != 0.0:
                self.active[self.n_active] = k
                self.n_active += 1

    cdef double _equity(self) noexcept nogil:
        """ctx.equity: cash + sum(q * last for nonzero q)."""
        cdef PySum s
        cdef int j, k
        if self.n_active == 0:
            return self.cash
        s.f = 0.0
        s.c = 0.0
        for j in range(self.n_active):
            k = self.active[j]
            sum_add(&s, self.pos[k] * self.last[k], self.neumaier)
        return self.cash + sum_result(&s, self.neumaier)

    cdef double _gross(self, int sym, double extra) noexcept nogil:
        """sum(|q + (extra if k == sym else 0.0) + pending| * last * multiplier) over every instrument."""
        cdef PySum s
        cdef int k
        s.f = 0.0
        s.c = 0.0
        for k in range(self.n):
            sum_add(&s, fabs((self.pos[k] + (extra if k == sym else 0.0)) + self.pending[k]) * self.last[k]
                    * self.mult[k], self.neumaier)
        return sum_result(&s, self.neumaier)

    def run(self, const int32_t[::1] sym, const int64_t[::1] offset, const int64_t[::1] day,
            const double[::1] open, const double[::1] high, const double[::1] low, const double[::1] close,
            const double[::1] target, double[::1] eq_out, double[::1] cash_out, double[::1] gross_out,
            int64_t[::1] f_bar, int64_t[::1] f_order, double[::1] f_price, double[::1] f_qty, double[::1] f_comm,
            double[::1] f_slip, int64_t[::1] o_bar, int64_t[::1] o_id, double[::1] o_qty, int8_t[::1] o_status,
            double[::1] o_gross, double[::1] o_limit):
        """Advance over the block's bars (arrays of one length; `sym` is the dense run index, `day` the
        day the trades-per-day cap counts the bar's orders in (argus.replay.fast: the New York date of
        the ts_recv of the record that closed the bar), `target` the units decided at the bar's close,
        NaN for none). Writes one equity row per bar and one record per fill and per order (outputs sized
        at least the block). Returns (fills, orders, status, index of the bar that stopped the call)."""
        cdef Py_ssize_t nb = sym.shape[0], i
        cdef Py_ssize_t nf = 0, no = 0
        cdef int s, j, k, status = 0
        cdef int8_t ostat
        cdef double q, aq, side, p, o, raw, floor_, comm, slip, prev, newp, u, desired, delta, ga, lim, eq, gr
        cdef int64_t d, oid
        cdef PySum se, sg
        cdef bint fill
        sizes = {"offset": offset.shape[0], "day": day.shape[0], "open": open.shape[0], "high": high.shape[0],
                 "low": low.shape[0], "close": close.shape[0], "target": target.shape[0],
                 "eq_out": eq_out.shape[0], "cash_out": cash_out.shape[0], "gross_out": gross_out.shape[0]}
        for name, size in sizes.items():
            if size != nb:
                raise ValueError(f"{name}: {size} rows for {nb} bars")
        if min(f_bar.shape[0], f_order.shape[0], f_price.shape[0], f_qty.shape[0], f_comm.shape[0],
               f_slip.shape[0], o_bar.shape[0], o_id.shape[0], o_qty.shape[0], o_status.shape[0],
               o_gross.shape[0], o_limit.shape[0]) < nb:
            raise ValueError(f"output arrays must hold at least {nb} rows")
        for i in range(nb):
            if sym[i] < 0 or sym[i] >= self.n:
                raise ValueError(f"sym[{i}] = {sym[i]}: must be in [0, {self.n})")
        i = 0
        with nogil:
            while i < nb:
                s = sym[i]
                o = open[i]
                fill = False
                if not (isfinite(o) and o > 0 and isfinite(high[i]) and high[i] > 0 and isfinite(low[i])
                        and low[i] > 0 and isfinite(close[i]) and close[i] > 0) \
                        or low[i] > (close[i] if close[i] < o else o) or high[i] < (close[i] if close[i] > o else o):
                    status = 1
                    break
                # 1. the working order of this instrument fills at the open
                if self.wid[s] != 0 and offset[i] > self.wdec[s]:
                    q = self.wqty[s]
                    side = 1.0 if q > 0 else -1.0
                    aq = fabs(q)
                    p = o * (1.0 + side * self.bps * 1e-4 * self.m)
                    p = p + side * self.ticks * self.tick * self.m
                    raw = self.m * aq * (self.rate * fabs(p) * 1.0 + self.per_share)
                    floor_ = self.cmin * self.m - 0.0
                    comm = floor_ if floor_ > raw else raw
                    comm = comm + self.fee * self.m
                    slip = fabs(p - o) * aq * 1.0
                    q = side * aq
                    prev = self.pos[s]
                    newp = prev + q
                    if fabs(newp) < 1e-9 * (fabs(prev) if fabs(prev) > 1.0 else 1.0):
                        newp = 0.0
                    self.pos[s] = newp
                    self.pending[s] -= q
                    self.cash -= q * p * self.mult[s] + comm
                    self.total_commission += comm
                    self.total_slippage += slip
                    f_bar[nf] = i
                    f_order[nf] = self.wid[s]
                    self.wid[s] = 0
                    f_price[nf] = p
                    f_qty[nf] = q
                    f_comm[nf] = comm
                    f_slip[nf] = slip
                    nf += 1
                    fill = True
                    if (prev == 0.0) != (newp == 0.0):
                        self._reactive()
                # 2. the bar closes
                self.last[s] = close[i]
                self.n_bars += 1
                # 3. the strategy's target
                u = target[i]
                if not isnan(u):
                    desired = 0.0 if u == 0 else u * self.qty
                    delta = (desired - self.pos[s]) - self.pending[s]
                    if fabs(delta) >= 1e-12:
                        if not isfinite(delta):  # the simulator would refuse it: the general path's business
                            status = 2
                            break
                        d = day[i]
                        if self.day[s] > d:
                            status = 2
                            break
                        oid = self.next_order
                        ostat = 0
                        ga = lim = 0.0
                        if desired != 0.0:
                            if (self.daycount[s] if self.day[s] == d else 0) >= self.cap2:
                                ostat = 1
                            else:
                                ga = self._gross(s, delta)
                                eq = self._equity()
                                lim = (0.0 if 0.0 > eq else eq) * self.leverage
                                if ga > lim * (1.0 + 1e-9) and ga > self._gross(s, 0.0):
                                    ostat = 2
                        if ostat == 0:
                            if self.wid[s] != 0:
                                status = 2
                                break
                            if self.day[s] == d:
                                self.daycount[s] += 1
                            else:
                                self.day[s] = d
                                self.daycount[s] = 1
                            self.pending[s] += delta
                            self.wid[s] = oid
                            self.wqty[s] = delta
                            self.wdec[s] = offset[i]
                        else:
                            self.n_rejected += 1
                        self.next_order += 1
                        self.n_orders += 1
                        o_bar[no] = i
                        o_id[no] = oid
                        o_qty[no] = delta
                        o_status[no] = ostat
                        o_gross[no] = ga
                        o_limit[no] = lim
                        no += 1
                # 4. the equity row: sums left to right over the instruments with a position, kept from
                # the previous bar unless a fill or this bar's close changed one of their terms
                if fill or self.pos[s] != 0.0:
                    se.f = se.c = sg.f = sg.c = 0.0
                    for j in range(self.n_active):
                        k = self.active[j]
                        sum_add(&se, self.pos[k] * self.last[k], self.neumaier)
                        sum_add(&sg, fabs(self.pos[k]) * self.last[k] * self.mult[k], self.neumaier)
                    self.sum_eq = sum_result(&se, self.neumaier)
                    self.sum_gr = sum_result(&sg, self.neumaier)
                if self.n_active == 0:
                    eq = self.cash
                    gr = 0.0
                else:
                    eq = self.cash + self.sum_eq
                    gr = self.sum_gr
                eq_out[i] = eq
                cash_out[i] = self.cash
                gross_out[i] = gr
                i += 1
        return nf, no, status, i
