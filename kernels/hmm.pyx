"""The forward filter of a Gaussian hidden Markov model on closed bars, online in the reducer.

For each (instrument, bar spec) the observation is the log return x_t = log(close_t / close_{t-1}) of
consecutive closed bars, and the reducer keeps the filtered distribution alpha_t(j) = P(s_t = j | x_1:t):

    alpha_1(j) ~ startprob_j * N(x_1; mu_j, var_j)
    alpha_t(j) ~ [sum_i alpha_{t-1}(i) A_ij] * N(x_t; mu_j, var_j)          (normalised to sum 1)

The parameters (startprob, A = transmat, means, variances; argus.analytics.hmm.HmmParams) come from a
fit done in research and recorded in the log (a ConfigRecorded event carrying the canonical JSON of
argus.analytics.hmm.to_json); the engine hands them over with set_params(offset, json), so a replay uses
exactly those numbers. Their states are ordered by variance (state 0 the calmest), so labels are stable.

Parameter sets: set_params(offset, json) schedules a set that takes effect for the bars whose offset is
>= offset. Sets must come in strictly increasing offset order and not before the bars already applied
(offset >= next_offset); at most HMM_MAX_SETS (16) per reducer. They are part of the snapshot. When the
set that applies to a slot changes, its filter restarts: the next return uses startprob (the previous
close is kept, so no return is lost).

Rows: one "hmm" row per closed bar that has a usable return (its close and the previous usable close of
the slot are finite and > 0) while a parameter set is active. There are no rows before the first set is
active (the previous close is tracked all the same, so the first bar after it already gives a row), and
none for a bar whose close is unusable (it leaves the slot unchanged). `state` is the argmax of prob (the
lowest index on ties), prob[j] is NaN for j >= n_states, params_offset the offset of the set used.

Numerics: the emission densities are scaled by their maximum over states (exp(log N_j - max_k log N_k))
before the product, so nothing underflows for an unlikely return; the scaling cancels in the
normalisation. Should the normalising sum still be 0 (a return impossible under every predicted state)
the filter keeps the predicted distribution. Sums run in ascending state order with no parallel
reductions, so the same bars give byte-identical rows, live, in replay or after a snapshot.
"""

import hashlib
import json
import struct

import numpy as np

from libc.math cimport NAN, exp, isfinite, log, M_PI
from libc.stdint cimport int64_t, uint8_t, uint32_t, uint64_t
from libc.stdlib cimport free, realloc
from libc.string cimport memcpy, memset
from argus.kernels.bars cimport BarOut, SlottedListener
from argus.kernels.outputs cimport OutputBuffer
from argus.kernels.reducer cimport Reducer

from argus.kernels.bars import BAR_FIELDS
from argus.kernels.reducer import SnapshotError

BAR_DTYPE = np.dtype(list(BAR_FIELDS))

#: numpy description of an "hmm" output row (HmmOut in hmm.pxd); hmm_layout_info() checks it.
HMM_FIELDS = (
    ("offset", "<u8"),
    ("instrument_id", "<u4"),
    ("spec", "<u4"),
    ("ts_end", "<i8"),
    ("state", "u1"),
    ("n_states", "u1"),
    ("_pad", "V6"),
    ("log_return", "<f8"),
    ("prob", "<f8", (8,)),
    ("params_offset", "<u8"),
)
HMM_DTYPE = np.dtype(list(HMM_FIELDS))
MAX_STATES = HMM_MAX_STATES
MAX_SETS = HMM_MAX_SETS
_LAYOUT = struct.Struct("<IIIII")


def hmm_layout_info():
    """Size and field offsets of HmmOut, for the layout test against HMM_FIELDS."""
    cdef HmmOut b
    cdef size_t base = <size_t>&b
    return sizeof(HmmOut), {
        "offset": <size_t>&b.offset - base, "instrument_id": <size_t>&b.instrument_id - base,
        "spec": <size_t>&b.spec - base, "ts_end": <size_t>&b.ts_end - base,
        "state": <size_t>&b.state - base, "n_states": <size_t>&b.n_states - base,
        "_pad": <size_t>&b._pad[0] - base, "log_return": <size_t>&b.log_return - base,
        "prob": <size_t>&b.prob[0] - base, "params_offset": <size_t>&b.params_offset - base,
    }


def config_hash(int n_bar_specs) -> bytes:
    """BLAKE2b-256 of the canonical configuration. The parameter sets are state (from the log), not
    configuration."""
    canon = json.dumps({"kind": "hmm", "n_bar_specs": n_bar_specs}, sort_keys=True)
    return hashlib.blake2b(canon.encode(), digest_size=32).digest()


def _bad(str field, value, str rule):
    return ValueError(f"hmm: field '{field}' = {value!r} must be {rule}")


cdef void _fill_set(HmmSet* s, uint64_t offset, params):
    cdef Py_ssize_t i, j, k = len(params.means)
    memset(s, 0, sizeof(HmmSet))
    s.offset = offset
    s.n_states = k
    for i in range(k):
        s.startprob[i] = params.startprob[i]
        s.means[i] = params.means[i]
        s.variances[i] = params.variances[i]
        s.lognorm[i] = -0.5 * log(2.0 * M_PI * s.variances[i])
        for j in range(k):
            s.transmat[i * HMM_MAX_STATES + j] = params.transmat[i, j]


cdef class HmmReducer(SlottedListener):
    """HmmReducer(name, config_hash, n_bar_specs): the forward filter of Gaussian HMMs on closed bars.

    Output "hmm": one HMM_FIELDS row per closed bar with a return, once a parameter set is active (see
    the module docstring). Parameters: set_params(offset, json)."""

    def __init__(self, str name, bytes config_hash, int n_bar_specs):
        Reducer.__init__(self, name, config_hash)
        if self.out is not None:
            raise RuntimeError("HmmReducer.__init__ called twice")
        if n_bar_specs < 1:
            raise _bad("n_bar_specs", n_bar_specs, "an integer >= 1")
        self.n_bar_specs = n_bar_specs
        self.dstride = 1 + HMM_MAX_STATES
        self.istride = 3
        self.set_json = []
        self.out = OutputBuffer(HMM_DTYPE)


    # -- parameter sets ------------------------------------------------------------------------------

    def set_params(self, uint64_t offset, str params_json):
        """Schedule the parameters `params_json` (argus.analytics.hmm.to_json) for the bars with offset >=
        `offset`. Offsets must increase strictly from set to set and be >= next_offset; at most 16 sets."""
        from argus.analytics.hmm import from_json, to_json
        if self.n_sets >= HMM_MAX_SETS:
            raise _bad("params_offset", offset, f"one of at most {HMM_MAX_SETS} parameter sets per reducer "
                                                f"({self.n_sets} are scheduled)")
        if self.n_sets and offset <= self.sets[self.n_sets - 1].offset:
            raise _bad("params_offset", offset, f"> the previous set's offset {self.sets[self.n_sets - 1].offset} "
                                                f"(sets come in increasing offset order)")
        if offset < self.next_offset:
            raise _bad("params_offset", offset, f">= next_offset = {self.next_offset} (bars before it are applied)")
        params = from_json(params_json)
        _fill_set(&self.sets[self.n_sets], offset, params)
        self.set_json.append((offset, to_json(params)))
        self.n_sets += 1

    def params_sets(self):
        """[(offset, canonical json)] of the scheduled parameter sets, in offset order."""
        return list(self.set_json)

    # -- the filter ----------------------------------------------------------------------------------

    cdef void step(self, const HmmSet* p, double x, double* alpha, bint first, HmmOut* row) noexcept nogil:
        cdef Py_ssize_t i, j, k = p.n_states, best = 0
        cdef double lb[8]
        cdef double pred[8]
        cdef double m = -1.0e308, dev, acc, total
        for j in range(k):
            dev = x - p.means[j]
            lb[j] = p.lognorm[j] - 0.5 * dev * dev / p.variances[j]
            if lb[j] > m:
                m = lb[j]
        for j in range(k):
            if first:
                pred[j] = p.startprob[j]
            else:
                acc = 0.0
                for i in range(k):
                    acc += alpha[i] * p.transmat[i * HMM_MAX_STATES + j]
                pred[j] = acc
        total = 0.0
        for j in range(k):
            alpha[j] = pred[j] * exp(lb[j] - m)
            total += alpha[j]
        if total > 0.0 and isfinite(total):
            for j in range(k):
                alpha[j] = alpha[j] / total
        else:
            for j in range(k):
                alpha[j] = pred[j]
        for j in range(HMM_MAX_STATES):
            if j < k:
                row.prob[j] = alpha[j]
                if alpha[j] > alpha[best]:
                    best = j
            else:
                row.prob[j] = NAN
        row.state = <uint8_t>best
        row.n_states = <uint8_t>k
        row.log_return = x
        row.params_offset = p.offset

    cdef void on_bar_closed(self, const BarOut* bar) noexcept nogil:
        cdef uint32_t iid = bar.instrument_id
        cdef double* d
        cdef int64_t* s
        cdef HmmOut* row
        cdef double close = bar.close
        cdef int i, idx = -1
        if self.slot_of(bar, &d, &s) != 0:
            return
        for i in range(self.n_sets):
            if self.sets[i].offset <= bar.offset:
                idx = i
        if s[1] != idx + 1:  # another set applies: the filter restarts from startprob
            s[1] = idx + 1
            s[2] = 0
        if isfinite(close) and close > 0.0:
            if s[0] > 0 and idx >= 0:
                row = <HmmOut*>self.out.push()
                row.offset = bar.offset
                row.instrument_id = iid
                row.spec = bar.spec
                row.ts_end = bar.ts_end
                self.step(&self.sets[idx], log(close / d[0]), d + 1, s[2] == 0, row)
                s[2] += 1
            d[0] = close
            s[0] += 1
        self.next_offset = bar.offset + 1
        self.now = bar.ts_end
        self.events += 1

    def outputs(self):
        return [("hmm", self.out)]

    # -- snapshots -----------------------------------------------------------------------------------

    def _layout(self):
        return _LAYOUT.pack(self.n_bar_specs, self.dstride, self.istride, HMM_MAX_STATES, HMM_MAX_SETS)

    def state_parts(self):
        """[layout, parameter sets (canonical JSON), doubles, int64s]: raw little-endian slot arrays."""
        sets = json.dumps([[o, t] for o, t in self.set_json], separators=(",", ":")).encode()
        return [self._layout(), sets, *self.slot_parts()]

    def load_state_parts(self, parts):
        from argus.analytics.hmm import from_json, to_json
        cdef Py_ssize_t slots = <Py_ssize_t>self.n_instruments * self.n_bar_specs
        cdef Py_ssize_t sn = slots * self.istride * sizeof(int64_t)
        cdef const uint8_t[::1] sview
        cdef Py_ssize_t i
        if len(parts) != 4:
            raise SnapshotError(f"reducer '{self.name}': snapshot has {len(parts)} state parts, this build 4")
        if bytes(parts[0]) != self._layout():
            raise SnapshotError(f"reducer '{self.name}': snapshot state layout differs from this "
                                f"configuration's (bar specs or state sizes)")
        self.check_slot_parts(parts[2], parts[3])
        try:
            entries = json.loads(bytes(parts[1]).decode())
            if not isinstance(entries, list) or len(entries) > HMM_MAX_SETS:
                raise ValueError(f"a list of at most {HMM_MAX_SETS} sets")
            parsed = []
            for entry in entries:
                offset, text = entry
                if not isinstance(offset, int) or not 0 <= offset < 2 ** 64 or not isinstance(text, str):
                    raise ValueError("[offset, json] pairs")
                if parsed and offset <= parsed[len(parsed) - 1][0]:
                    raise ValueError("sets in increasing offset order")
                params = from_json(text)
                if to_json(params) != text:
                    raise ValueError("canonical parameter JSON")
                parsed.append((offset, text, params))
        except (ValueError, TypeError, UnicodeDecodeError) as exc:
            raise SnapshotError(f"reducer '{self.name}': snapshot parameter sets are invalid ({exc})") from None
        sview = bytes(parts[3])
        if sn:
            for i in range(slots):
                active = (<const int64_t*>&sview[0])[i * self.istride + 1]
                if not 0 <= active <= len(parsed):
                    raise SnapshotError(f"reducer '{self.name}': snapshot slot {i} names parameter set "
                                        f"{active - 1} of {len(parsed)}")
        # Everything checked: only now change the reducer.
        for i, (offset, text, params) in enumerate(parsed):
            _fill_set(&self.sets[i], offset, params)
        self.n_sets = len(parsed)
        self.set_json = [(offset, text) for offset, text, _ in parsed]
        self.load_slot_parts(parts[2], parts[3])
