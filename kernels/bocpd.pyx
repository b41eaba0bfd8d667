"""Bayesian online change-point detection on closed bars (Adams & MacKay 2007).

R. P. Adams and D. J. C. MacKay, "Bayesian Online Changepoint Detection", arXiv:0710.3742 (2007): the
posterior over the run length r_t (bars since the last change point) is updated once per observation,

    P(r_t = r + 1, x_1:t) = P(r_{t-1} = r, x_1:t-1) * pi_r(x_t) * (1 - h)          (growth)
    P(r_t = 0,     x_1:t) = sum_r P(r_{t-1} = r, x_1:t-1) * pi_r(x_t) * h          (change point)

then normalised by the evidence P(x_t | x_1:t-1) = sum of both. Here x_t is the log return
log(close_t / close_{t-1}) of the bars of one (instrument, bar spec); the observation model is Gaussian
with unknown mean and precision under a Normal-Gamma prior (mu0, kappa0, alpha0, beta0), so pi_r is the
Student-t posterior predictive of the run's data (A&M section 2.3): nu = 2 a_r degrees of freedom,
location mu_r, scale^2 = beta_r (k_r + 1) / (a_r k_r). The hazard is constant, h = 1 / hazard_lambda.

Sufficient statistics: a run of r observations has k_r = kappa0 + r and a_r = alpha0 + r / 2 (functions
of r only, tabulated with lgamma once per reducer), so a slot stores only mu_r and beta_r per run length.

Truncation (O(R_max) per step): run lengths 0..R_max are tracked and R_max means "at least R_max". The
growth mass from r = R_max - 1 and from r = R_max (which would become R_max + 1) both go into r = R_max
(added in log space), so no probability is dropped and the posterior still sums to 1. The statistics of
the r = R_max bucket are those grown from r = R_max - 1, i.e. of the last R_max returns: a sliding window.

Work in log space: the slot keeps log P(r_t = r | x_1:t) (normalised every step with a log-sum-exp
around the maximum), so nothing underflows however unlikely a return is under the long runs.

p_change (documented definition): with a constant hazard, P(r_t = 0 | x_1:t) = h at every step (the
change-point mass is h times the evidence, and the evidence is the normaliser), so it carries no signal.
The output reports instead p_change = P(r_t < CHANGE_WINDOW | x_1:t), the posterior mass on runs shorter
than CHANGE_WINDOW (5) bars: the probability that a change point happened within the last 5 returns. It
jumps towards 1 within a few bars of a change and stays near h * CHANGE_WINDOW inside a long regime.
map_run_length is the argmax of the posterior (the smallest r on ties).

Rows: one "bocpd" row per closed bar. The first bar of a slot only sets the previous close; a bar whose
close is not finite and > 0 is not used (the slot is left unchanged). Both give a row with p_change and
log_return NaN and map_run_length -1. The evaluation order is fixed (ascending r for the sums, no
parallel reductions), so the same bars give byte-identical rows, live, in replay or after a snapshot.
"""

import hashlib
import json
import struct

import numpy as np

from libc.math cimport NAN, exp, isfinite, lgamma, log, log1p, M_PI
from libc.stdint cimport int64_t, uint8_t, uint32_t, uint64_t
from libc.stdlib cimport free, malloc, realloc
from libc.string cimport memcpy, memset
from argus.kernels.bars cimport BarOut, SlottedListener
from argus.kernels.outputs cimport OutputBuffer
from argus.kernels.reducer cimport Reducer

from argus.kernels.bars import BAR_FIELDS
from argus.kernels.reducer import SnapshotError

BAR_DTYPE = np.dtype(list(BAR_FIELDS))

#: numpy description of a "bocpd" output row (BocpdOut in bocpd.pxd); bocpd_layout_info() checks it.
BOCPD_FIELDS = (
    ("offset", "<u8"),
    ("instrument_id", "<u4"),
    ("spec", "<u4"),
    ("ts_end", "<i8"),
    ("p_change", "<f8"),
    ("map_run_length", "<i8"),
    ("log_return", "<f8"),
)
BOCPD_DTYPE = np.dtype(list(BOCPD_FIELDS))

#: p_change = P(run length < CHANGE_WINDOW): see the module docstring.
cdef enum:
    CHANGE_WINDOW = 5
CHANGE_WINDOW_BARS = CHANGE_WINDOW
MIN_MAX_RUN = 2 * CHANGE_WINDOW
MAX_MAX_RUN = 100000
_LAYOUT = struct.Struct("<Iqqq")


def bocpd_layout_info():
    """Size and field offsets of BocpdOut, for the layout test against BOCPD_FIELDS."""
    cdef BocpdOut b
    cdef size_t base = <size_t>&b
    return sizeof(BocpdOut), {
        "offset": <size_t>&b.offset - base, "instrument_id": <size_t>&b.instrument_id - base,
        "spec": <size_t>&b.spec - base, "ts_end": <size_t>&b.ts_end - base,
        "p_change": <size_t>&b.p_change - base, "map_run_length": <size_t>&b.map_run_length - base,
        "log_return": <size_t>&b.log_return - base,
    }


def config_hash(int n_bar_specs, double hazard_lambda=250.0, int max_run=300, double mu0=0.0,
                double kappa0=1.0, double alpha0=1.0, double beta0=1e-4) -> bytes:
    """BLAKE2b-256 of the canonical configuration (the same arguments as BocpdReducer after the name)."""
    canon = json.dumps({"kind": "bocpd", "n_bar_specs": n_bar_specs, "hazard_lambda": float(hazard_lambda).hex(),
                        "max_run": max_run, "mu0": float(mu0).hex(), "kappa0": float(kappa0).hex(),
                        "alpha0": float(alpha0).hex(), "beta0": float(beta0).hex()}, sort_keys=True)
    return hashlib.blake2b(canon.encode(), digest_size=32).digest()


def _bad(str field, value, str rule):
    return ValueError(f"bocpd: field '{field}' = {value!r} must be {rule}")


cdef class BocpdReducer(SlottedListener):
    """BocpdReducer(name, config_hash, n_bar_specs, hazard_lambda=250.0, max_run=300, mu0=0.0,
    kappa0=1.0, alpha0=1.0, beta0=1e-4): change points in the log returns of closed bars.

    Output "bocpd": one BOCPD_FIELDS row per closed bar (see the module docstring for p_change)."""

    def __init__(self, str name, bytes config_hash, int n_bar_specs, double hazard_lambda=250.0,
                 int max_run=300, double mu0=0.0, double kappa0=1.0, double alpha0=1.0, double beta0=1e-4):
        cdef Py_ssize_t r
        cdef double a, k
        Reducer.__init__(self, name, config_hash)
        if self.lconst != NULL:
            raise RuntimeError("BocpdReducer.__init__ called twice")
        if n_bar_specs < 1:
            raise _bad("n_bar_specs", n_bar_specs, "an integer >= 1")
        if not (isfinite(hazard_lambda) and hazard_lambda > 1.0):
            raise _bad("hazard_lambda", hazard_lambda, "a finite number > 1 (hazard h = 1 / hazard_lambda < 1)")
        if not MIN_MAX_RUN <= max_run <= MAX_MAX_RUN:
            raise _bad("max_run", max_run, f"an integer in [{MIN_MAX_RUN}, {MAX_MAX_RUN}]")
        if not isfinite(mu0):
            raise _bad("mu0", mu0, "a finite number")
        if not (isfinite(kappa0) and kappa0 > 0.0):
            raise _bad("kappa0", kappa0, "a finite number > 0")
        if not (isfinite(alpha0) and alpha0 > 0.0):
            raise _bad("alpha0", alpha0, "a finite number > 0")
        if not (isfinite(beta0) and beta0 > 0.0):
            raise _bad("beta0", beta0, "a finite number > 0")
        self.n_bar_specs = n_bar_specs
        self.hazard_lambda = hazard_lambda
        self.max_run = max_run
        self.mu0 = mu0
        self.kappa0 = kappa0
        self.alpha0 = alpha0
        self.beta0 = beta0
        self.log_h = log(1.0 / hazard_lambda)
        self.log_1mh = log1p(-1.0 / hazard_lambda)
        self.lconst = <double*>malloc((max_run + 1) * sizeof(double))
        self.apow = <double*>malloc((max_run + 1) * sizeof(double))
        self.qfac = <double*>malloc((max_run + 1) * sizeof(double))
        self.kap = <double*>malloc((max_run + 1) * sizeof(double))
        if self.lconst == NULL or self.apow == NULL or self.qfac == NULL or self.kap == NULL:
            raise MemoryError()
        for r in range(max_run + 1):
            k = kappa0 + <double>r
            a = alpha0 + 0.5 * <double>r
            self.kap[r] = k
            self.apow[r] = a + 0.5
            self.qfac[r] = k / (2.0 * (k + 1.0))
            self.lconst[r] = lgamma(a + 0.5) - lgamma(a) - 0.5 * log(2.0 * M_PI * (k + 1.0) / k)
        self.dstride = 1 + 3 * (max_run + 1)
        self.istride = 2
        self.out = OutputBuffer(BOCPD_DTYPE)

    def __dealloc__(self):
        free(self.lconst)
        free(self.apow)
        free(self.qfac)
        free(self.kap)

    cdef void step(self, double x, double* d, int64_t* s, BocpdOut* row) noexcept nogil:
        # One Adams & MacKay (2007, Algorithm 1) update with observation x. Slot layout: d[0] previous
        # close, then lw[0..R] = log P(r_t = r | x_1:t), mu[0..R], beta[0..R]; s[1] = returns used.
        # Before the update run lengths 0..A-1 are live, A = min(s[1], R) + 1 (a new slot has lw[0] = 0,
        # i.e. P(r_0 = 0) = 1, with the prior statistics).
        cdef int64_t R = self.max_run
        cdef double* lw = d + 1
        cdef double* mu = lw + (R + 1)
        cdef double* beta = mu + (R + 1)
        cdef int64_t A, r, top, best
        cdef double dev, t, m, total, log_ev, hi, lo, p, bestv
        if s[1] == 0:
            lw[0] = 0.0
            mu[0] = self.mu0
            beta[0] = self.beta0
        A = s[1] + 1
        if A > R + 1:
            A = R + 1
        # 1. Joint log-probabilities t_r = log P(r_{t-1} = r | x_1:t-1) + log pi_r(x_t) (step 3 of A&M's
        #    Algorithm 1), written over lw; the Student-t log predictive with tabulated constants.
        m = -1.0e308
        for r in range(A):
            dev = x - mu[r]
            t = lw[r] + self.lconst[r] - 0.5 * log(beta[r]) - self.apow[r] * log1p(self.qfac[r] * dev * dev / beta[r])
            lw[r] = t
            if t > m:
                m = t
        # 2. The evidence log P(x_t | x_1:t-1) (A&M step 6), a log-sum-exp in ascending r.
        total = 0.0
        for r in range(A):
            total += exp(lw[r] - m)
        log_ev = m + log(total)
        # 3. Growth (A&M step 4) into r + 1, normalised; statistics grown with x (A&M step 8), in
        #    descending r so that everything is done in place. Truncation: r = R gathers the growth of
        #    R - 1 and R (see the module docstring).
        top = A - 1
        if A == R + 1:
            hi = lw[R - 1]
            lo = lw[R]
            if lo > hi:
                hi, lo = lo, hi
            lw[R] = hi + log1p(exp(lo - hi)) + self.log_1mh - log_ev
            dev = x - mu[R - 1]
            mu[R] = (self.kap[R - 1] * mu[R - 1] + x) / (self.kap[R - 1] + 1.0)
            beta[R] = beta[R - 1] + self.qfac[R - 1] * dev * dev
            top = R - 2
        r = top
        while r >= 0:
            lw[r + 1] = lw[r] + self.log_1mh - log_ev
            dev = x - mu[r]
            mu[r + 1] = (self.kap[r] * mu[r] + x) / (self.kap[r] + 1.0)
            beta[r + 1] = beta[r] + self.qfac[r] * dev * dev
            r -= 1
        # 4. The change point (A&M step 5): its normalised mass is exactly h; a new run has the prior.
        lw[0] = self.log_h
        mu[0] = self.mu0
        beta[0] = self.beta0
        s[1] += 1
        A += 1
        if A > R + 1:
            A = R + 1
        # 5. Outputs: p_change = P(r_t < CHANGE_WINDOW), the MAP run length (first maximum).
        p = 0.0
        best = 0
        bestv = lw[0]
        for r in range(A):
            if r < CHANGE_WINDOW:
                p += exp(lw[r])
            if lw[r] > bestv:
                bestv = lw[r]
                best = r
        row.p_change = p
        row.map_run_length = best
        row.log_return = x

    cdef double p_change_of(self, uint32_t iid, uint32_t spec) noexcept nogil:
        """P(r_t < CHANGE_WINDOW) of the slot's current posterior, with the operations of step() (so it
        equals the last p_change the slot emitted); NaN before any return, or for an unknown slot."""
        cdef uint64_t slot
        cdef double* lw
        cdef int64_t* s
        cdef int64_t A, r
        cdef double p = 0.0
        if iid >= self.n_instruments or spec >= self.n_bar_specs:
            return NAN
        slot = <uint64_t>iid * self.n_bar_specs + spec
        s = self.istate + slot * self.istride
        if s[1] == 0:
            return NAN
        lw = self.dstate + slot * self.dstride + 1
        A = s[1] + 1
        if A > self.max_run + 1:
            A = self.max_run + 1
        for r in range(A):
            if r < CHANGE_WINDOW:
                p += exp(lw[r])
        return p

    cdef void on_bar_closed(self, const BarOut* bar) noexcept nogil:
        cdef uint32_t iid = bar.instrument_id
        cdef double* d
        cdef int64_t* s
        cdef BocpdOut* row
        cdef double close = bar.close
        if self.slot_of(bar, &d, &s) != 0:
            return
        row = <BocpdOut*>self.out.push()
        row.offset = bar.offset
        row.instrument_id = iid
        row.spec = bar.spec
        row.ts_end = bar.ts_end
        row.p_change = NAN
        row.map_run_length = -1
        row.log_return = NAN
        if isfinite(close) and close > 0.0:
            if s[0] > 0:
                self.step(log(close / d[0]), d, s, row)
            d[0] = close
            s[0] += 1
        self.next_offset = bar.offset + 1
        self.now = bar.ts_end
        self.events += 1

    def outputs(self):
        return [("bocpd", self.out)]

    def _layout(self):
        return _LAYOUT.pack(self.n_bar_specs, self.max_run, self.dstride, self.istride)

    def state_parts(self):
        """[layout, doubles, int64s]: the slots of the n_instruments instruments, raw little-endian."""
        return [self._layout(), *self.slot_parts()]

    def load_state_parts(self, parts):
        if len(parts) != 3:
            raise SnapshotError(f"reducer '{self.name}': snapshot has {len(parts)} state parts, this build 3")
        if bytes(parts[0]) != self._layout():
            raise SnapshotError(f"reducer '{self.name}': snapshot state layout differs from this "
                                f"configuration's (bar specs, max_run or state sizes)")
        self.load_slot_parts(parts[1], parts[2])
