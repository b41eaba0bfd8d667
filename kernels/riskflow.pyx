"""Global risk flow on closed bars: a weighted blend of Asia, Europe and FX (USD/JPY) returns.

The RiskFlowReducer is a BarListener: the bar reducer (or a BarFanout) calls on_bar_closed() for every
bar it emits, live or in replay, and feed_bars() does the same from an array of BAR_FIELDS rows. Only
bars of the configured bar spec `spec` and of a configured component instrument change anything.

Rules (the state is per component instrument, in flat C arrays, in configuration order)
    * A component's return is close / previous close - 1, both of that instrument and spec; its first
      bar only sets the previous close. A bar whose close is not finite or <= 0 changes no state (it
      still emits a row, with the current values).
    * Each component keeps only its latest return. A group's return r_g is the mean (summed in
      configuration order) of the latest returns of its instruments that have one; NaN when none has.
      The FX group's value is fx_sign * mean(USD/JPY returns): with fx_sign = +1 (default) a rising
      USD/JPY (yen weakening) is risk-on.
    * A group is present when at least one of its instruments has a return. With W = sum of w_g over the
      present groups, the effective weights are e_g = w_g / W for present groups and 0 for the others
      (weights redistributed), and flow = sum over present g, in the order Asia, Europe, FX, of e_g * r_g.
      While W = 0 (no group present, or only zero-weight ones) the flow is NaN and every e_g is 0.
    * No lookahead: a bar is handed over when it closes, so its end is <= the time of the event being
      processed (the reducer's `now`); the flow only ever uses bars that closed at or before now.

Outputs
    "risk_flow": one RISKFLOW_FIELDS row on every bar of a component instrument and of spec `spec`
    (the derived metric), with the groups, their effective weights and their instrument counts.
    current_value() gives the flow of the current state (that of the last row), NaN before any.
"""

import hashlib
import json
import math
import struct

import numpy as np

from libc.math cimport NAN, isfinite
from libc.stdint cimport int64_t, uint8_t, uint32_t, uint64_t
from libc.stdlib cimport calloc, free
from libc.string cimport memcpy
from argus.kernels.bars cimport BarOut, BarListener
from argus.kernels.outputs cimport OutputBuffer
from argus.kernels.reducer cimport Reducer

from argus.kernels.bars import BAR_FIELDS
from argus.kernels.reducer import SnapshotError

BAR_DTYPE = np.dtype(list(BAR_FIELDS))
DEFAULT_WEIGHTS = (0.4, 0.4, 0.2)
MAX_GROUP = 255                 # instruments per group (the n_* columns are u1)
MAX_ID = 0xFFFFFFFE             # 0xFFFFFFFF is "no instrument"

#: numpy description of RiskFlowRow (the rows of "risk_flow").
RISKFLOW_FIELDS = (
    ("offset", "<u8"),
    ("ts_end", "<i8"),
    ("value", "<f8"),
    ("asia", "<f8"),
    ("europe", "<f8"),
    ("fx", "<f8"),
    ("w_asia", "<f8"),
    ("w_europe", "<f8"),
    ("w_fx", "<f8"),
    ("n_asia", "u1"),
    ("n_europe", "u1"),
    ("n_fx", "u1"),
    ("_pad", "V1"),
    ("instrument_id", "<u4"),
)
RISKFLOW_DTYPE = np.dtype(list(RISKFLOW_FIELDS))
_HEAD = struct.Struct("<IIq4d")


def riskflow_layout_info():
    """Size and field offsets of RiskFlowRow, for the layout check against RISKFLOW_FIELDS."""
    cdef RiskFlowRow r
    cdef size_t base = <size_t>&r
    return sizeof(RiskFlowRow), {
        "offset": <size_t>&r.offset - base, "ts_end": <size_t>&r.ts_end - base, "value": <size_t>&r.value - base,
        "asia": <size_t>&r.asia - base, "europe": <size_t>&r.europe - base, "fx": <size_t>&r.fx - base,
        "w_asia": <size_t>&r.w_asia - base, "w_europe": <size_t>&r.w_europe - base,
        "w_fx": <size_t>&r.w_fx - base, "n_asia": <size_t>&r.n_asia - base,
        "n_europe": <size_t>&r.n_europe - base, "n_fx": <size_t>&r.n_fx - base, "_pad": <size_t>&r._pad - base,
        "instrument_id": <size_t>&r.instrument_id - base,
    }


def check_riskflow_layout():
    """Raise AssertionError unless RISKFLOW_FIELDS describes RiskFlowRow exactly (8-byte aligned)."""
    size, offsets = riskflow_layout_info()
    if RISKFLOW_DTYPE.itemsize != size or size % 8:
        raise AssertionError(f"RISKFLOW_FIELDS = {RISKFLOW_DTYPE.itemsize} bytes, RiskFlowRow = {size} "
                             f"(multiple of 8)")
    for name in RISKFLOW_DTYPE.names:
        if RISKFLOW_DTYPE.fields[name][1] != offsets[name]:
            raise AssertionError(f"RISKFLOW_FIELDS '{name}' at {RISKFLOW_DTYPE.fields[name][1]}, "
                                 f"RiskFlowRow at {offsets[name]}")


check_riskflow_layout()


def _bad(str field, value, str rule):
    return ValueError(f"risk_flow: field '{field}' = {value!r} must be {rule}")


def _ids(str field, ids) -> tuple:
    try:
        ids = tuple(ids)
    except TypeError:
        raise _bad(field, ids, "a sequence of instrument ids") from None
    if len(ids) > MAX_GROUP:
        raise _bad(field, ids, f"at most {MAX_GROUP} instrument ids")
    for v in ids:
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not 0 <= v <= MAX_ID:
            raise _bad(field, ids, f"instrument ids, integers in [0, {MAX_ID}] (bad: {v!r})")
    return tuple(int(v) for v in ids)


def parse_config(int n_bar_specs, int spec, asia_ids, europe_ids, fx_ids, weights=DEFAULT_WEIGHTS,
                 fx_sign=1.0) -> dict:
    """The validated configuration; ValueError naming the field, its value and the rule otherwise."""
    if n_bar_specs < 1:
        raise _bad("n_bar_specs", n_bar_specs, "an integer >= 1")
    if not 0 <= spec < n_bar_specs:
        raise _bad("spec", spec, f"a bar spec index in [0, n_bar_specs = {n_bar_specs})")
    groups = (_ids("asia_ids", asia_ids), _ids("europe_ids", europe_ids), _ids("fx_ids", fx_ids))
    seen = {}
    for field, ids in zip(("asia_ids", "europe_ids", "fx_ids"), groups):
        for v in ids:
            if v in seen:
                raise _bad(field, ids, f"disjoint from every other component id (instrument {v} is also in "
                           f"{seen[v]})")
            seen[v] = field
    if not seen:
        raise _bad("asia_ids", groups[0], "non-empty, or europe_ids or fx_ids non-empty (no component)")
    try:
        w = tuple(weights)
    except TypeError:
        raise _bad("weights", weights, "3 numbers (asia, europe, fx)") from None
    if len(w) != 3 or any(isinstance(x, bool) or not isinstance(x, (int, float, np.integer, np.floating))
                          for x in w):
        raise _bad("weights", weights, "3 numbers (asia, europe, fx)")
    w = tuple(float(x) for x in w)
    if not all(math.isfinite(x) and x >= 0.0 for x in w) or sum(w) <= 0.0:
        raise _bad("weights", weights, "finite and >= 0 with a positive sum")
    if isinstance(fx_sign, bool) or not isinstance(fx_sign, (int, float, np.integer, np.floating)) \
            or not math.isfinite(fx_sign):
        raise _bad("fx_sign", fx_sign, "a finite number")
    return {"n_bar_specs": int(n_bar_specs), "spec": int(spec), "asia_ids": groups[0], "europe_ids": groups[1],
            "fx_ids": groups[2], "weights": w, "fx_sign": float(fx_sign)}


def config_hash(int n_bar_specs, int spec, asia_ids, europe_ids, fx_ids, weights=DEFAULT_WEIGHTS,
                fx_sign=1.0) -> bytes:
    """BLAKE2b-256 of the canonical (validated) configuration."""
    clean = parse_config(n_bar_specs, spec, asia_ids, europe_ids, fx_ids, weights, fx_sign)
    blob = json.dumps({"reducer": "risk_flow", **{k: list(v) if isinstance(v, tuple) else v
                                                  for k, v in clean.items()}}, sort_keys=True)
    return hashlib.blake2b(blob.encode(), digest_size=32).digest()


cdef class RiskFlowReducer(BarListener):
    """RiskFlowReducer(name, config_hash, n_bar_specs, spec, asia_ids, europe_ids, fx_ids,
    weights=(0.4, 0.4, 0.2), fx_sign=1.0): the global risk flow of the module docstring, on bars of spec
    `spec`. Output "risk_flow" (RISKFLOW_FIELDS), one row per component bar."""

    def __init__(self, str name, bytes config_hash, int n_bar_specs, int spec, asia_ids, europe_ids, fx_ids,
                 weights=DEFAULT_WEIGHTS, double fx_sign=1.0):
        cdef Py_ssize_t i
        Reducer.__init__(self, name, config_hash)
        if self.out is not None:
            raise RuntimeError("RiskFlowReducer.__init__ called twice")
        clean = parse_config(n_bar_specs, spec, asia_ids, europe_ids, fx_ids, weights, fx_sign)
        self.n_bar_specs = n_bar_specs
        self.spec = spec
        self.fx_sign = fx_sign
        self.asia_ids, self.europe_ids, self.fx_ids = clean["asia_ids"], clean["europe_ids"], clean["fx_ids"]
        self.weights = clean["weights"]
        for i in range(3):
            self.w[i] = self.weights[i]
        members = [(v, GROUP_ASIA) for v in self.asia_ids] + [(v, GROUP_EUROPE) for v in self.europe_ids] \
            + [(v, GROUP_FX) for v in self.fx_ids]
        self.n_comp = len(members)
        self.ids = <uint32_t*>calloc(self.n_comp, sizeof(uint32_t))
        self.group = <uint8_t*>calloc(self.n_comp, sizeof(uint8_t))
        self.dstate = <double*>calloc(2 * self.n_comp, sizeof(double))
        self.istate = <int64_t*>calloc(2 * self.n_comp, sizeof(int64_t))
        if self.ids == NULL or self.group == NULL or self.dstate == NULL or self.istate == NULL:
            raise MemoryError()
        for i, (v, g) in enumerate(members):
            self.ids[i] = v
            self.group[i] = g
        self.out = OutputBuffer(RISKFLOW_DTYPE)

    def __dealloc__(self):
        free(self.ids)
        free(self.group)
        free(self.dstate)
        free(self.istate)

    @property
    def dtype(self):
        return RISKFLOW_DTYPE

    cdef void compute(self, RiskFlowRow* row) noexcept nogil:
        cdef double sums[3]
        cdef int64_t cnt[3]
        cdef double r[3]
        cdef double e[3]
        cdef double total_w = 0.0, value
        cdef Py_ssize_t i
        cdef int g
        for g in range(N_GROUPS):
            sums[g] = 0.0
            cnt[g] = 0
            e[g] = 0.0
        for i in range(self.n_comp):
            if self.istate[2 * i + 1] > 0:
                g = self.group[i]
                sums[g] += self.dstate[2 * i + 1]
                cnt[g] += 1
        for g in range(N_GROUPS):
            r[g] = sums[g] / <double>cnt[g] if cnt[g] > 0 else NAN
            if cnt[g] > 0:
                total_w += self.w[g]
        r[GROUP_FX] = self.fx_sign * r[GROUP_FX]
        value = NAN
        if total_w > 0.0:
            value = 0.0
            for g in range(N_GROUPS):
                if cnt[g] > 0:
                    e[g] = self.w[g] / total_w
                    value += e[g] * r[g]
        row.value = value
        row.asia = r[GROUP_ASIA]
        row.europe = r[GROUP_EUROPE]
        row.fx = r[GROUP_FX]
        row.w_asia = e[GROUP_ASIA]
        row.w_europe = e[GROUP_EUROPE]
        row.w_fx = e[GROUP_FX]
        row.n_asia = <uint8_t>cnt[GROUP_ASIA]
        row.n_europe = <uint8_t>cnt[GROUP_EUROPE]
        row.n_fx = <uint8_t>cnt[GROUP_FX]

    cdef double current_value(self) noexcept nogil:
        cdef RiskFlowRow row
        self.compute(&row)
        return row.value

    cdef void on_bar_closed(self, const BarOut* bar) noexcept nogil:
        cdef Py_ssize_t i, k = -1
        cdef double close = bar.close
        cdef RiskFlowRow* row
        if self.failed:
            return
        if bar.spec >= self.n_bar_specs:
            self.bad_spec = True
            self.bad_spec_value = bar.spec
            self.failed = True
            return
        self.next_offset = bar.offset + 1
        self.now = bar.ts_end
        self.events += 1
        if bar.spec != self.spec:
            return
        for i in range(self.n_comp):
            if self.ids[i] == bar.instrument_id:
                k = i
                break
        if k < 0:
            return
        if isfinite(close) and close > 0.0:
            if self.istate[2 * k] > 0:
                self.dstate[2 * k + 1] = close / self.dstate[2 * k] - 1.0
                self.istate[2 * k + 1] += 1
            self.dstate[2 * k] = close
            self.istate[2 * k] += 1
        row = <RiskFlowRow*>self.out.push()
        row.offset = bar.offset
        row.ts_end = bar.ts_end
        row.instrument_id = bar.instrument_id
        self.compute(row)

    def _check(self):
        if self.bad_spec:
            raise ValueError(f"reducer '{self.name}': bar spec = {self.bad_spec_value} must be < "
                             f"n_bar_specs = {self.n_bar_specs}; the reducer stopped and must be rebuilt")
        Reducer._check(self)

    def current_flow(self) -> float:
        """current_value() from Python."""
        return self.current_value()

    def outputs(self):
        return [("risk_flow", self.out)]

    def _layout(self):
        ids = np.array(self.asia_ids + self.europe_ids + self.fx_ids, dtype="<u4").tobytes()
        return _HEAD.pack(self.n_bar_specs, self.spec, self.n_comp, *self.weights, self.fx_sign) \
            + struct.pack("<3I", len(self.asia_ids), len(self.europe_ids), len(self.fx_ids)) + ids

    def state_parts(self):
        """[layout, doubles (previous close, last return per component), int64s (bars, returns)]."""
        cdef Py_ssize_t n = 2 * self.n_comp
        return [self._layout(), (<char*>self.dstate)[:n * sizeof(double)],
                (<char*>self.istate)[:n * sizeof(int64_t)]]

    def load_state_parts(self, parts):
        cdef Py_ssize_t n = 2 * self.n_comp
        cdef const uint8_t[::1] dview
        cdef const uint8_t[::1] sview
        if len(parts) != 3:
            raise SnapshotError(f"reducer '{self.name}': snapshot has {len(parts)} state parts, this build 3")
        if bytes(parts[0]) != self._layout():
            raise SnapshotError(f"reducer '{self.name}': snapshot state layout differs from this "
                                f"configuration's (spec, components, weights or fx_sign)")
        if len(parts[1]) != n * sizeof(double) or len(parts[2]) != n * sizeof(int64_t):
            raise SnapshotError(f"reducer '{self.name}': snapshot state = {len(parts[1])} + {len(parts[2])} bytes "
                                f"must be {n * sizeof(double)} + {n * sizeof(int64_t)}")
        ints = np.frombuffer(bytes(parts[2]), dtype="<i8").reshape(self.n_comp, 2)
        if ints.size and (ints.min() < 0 or (ints[:, 1] > ints[:, 0]).any()):
            raise SnapshotError(f"reducer '{self.name}': snapshot counters must be >= 0 with returns <= bars "
                                f"(damaged state)")
        dview = bytes(parts[1])
        sview = bytes(parts[2])
        memcpy(self.dstate, &dview[0], n * sizeof(double))
        memcpy(self.istate, &sview[0], n * sizeof(int64_t))
        self.bad_spec = False
        self.failed = False
