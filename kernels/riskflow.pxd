# Global risk flow (DESIGN.md §5): 0.4 x Asia return + 0.4 x Europe return + 0.2 x FX risk signal, with
# the weights redistributed over the groups present. Fed closed bars (BarListener); state per component
# instrument in flat C arrays. The exact rules are in riskflow.pyx's module docstring.
from libc.stdint cimport int64_t, uint8_t, uint32_t, uint64_t
from argus.kernels.bars cimport BarOut, BarListener
from argus.kernels.outputs cimport OutputBuffer

cdef enum:  # component groups (RiskFlowReducer.group[i])
    GROUP_ASIA = 0
    GROUP_EUROPE = 1
    GROUP_FX = 2
    N_GROUPS = 3

# One output row ("risk_flow"). Declared for numpy as RISKFLOW_FIELDS in riskflow.pyx;
# riskflow_layout_info() and a test check both. 80 bytes, 8-byte aligned; the pad is zero.
cdef struct RiskFlowRow:
    uint64_t offset         # log offset of the component bar (BarOut.offset)
    int64_t ts_end          # its end (BarOut.ts_end)
    double value            # the flow; NaN while no group with a positive weight has a return
    double asia             # mean return of the Asia instruments with a return (NaN when none)
    double europe           # same for Europe
    double fx               # fx_sign * mean USD/JPY return (NaN when none)
    double w_asia           # effective (redistributed) weights: w_g / sum of present w; 0 when absent
    double w_europe
    double w_fx
    uint8_t n_asia          # instruments of the group with a return so far
    uint8_t n_europe
    uint8_t n_fx
    uint8_t _pad
    uint32_t instrument_id  # the component whose bar closed

cdef class RiskFlowReducer(BarListener):
    cdef readonly uint32_t n_bar_specs  # bar specs per instrument (BarOut.spec < n_bar_specs)
    cdef readonly uint32_t spec         # only bars of this spec count
    cdef readonly double fx_sign        # FX signal = fx_sign * USD/JPY return
    cdef double w[3]                    # configured weights (asia, europe, fx)
    cdef Py_ssize_t n_comp              # component instruments
    cdef uint32_t* ids                  # n_comp ids: asia, then europe, then fx (configuration order)
    cdef uint8_t* group                 # n_comp RiskFlowGroup
    cdef double* dstate                 # n_comp * 2: previous close, last return
    cdef int64_t* istate                # n_comp * 2: usable bars seen, returns computed
    cdef OutputBuffer out               # "risk_flow"
    cdef bint bad_spec                  # a bar named a spec >= n_bar_specs (self.failed is set too)
    cdef uint32_t bad_spec_value
    cdef readonly tuple asia_ids, europe_ids, fx_ids
    cdef readonly tuple weights

    cdef void on_bar_closed(self, const BarOut* bar) noexcept nogil
    # Fill row.value .. row.n_fx from the current component state (a pure function of it).
    cdef void compute(self, RiskFlowRow* row) noexcept nogil
    # The flow from the current state (NaN before any return): what the market regime reads. It equals
    # the value of the last row emitted, since only component bars change the state.
    cdef double current_value(self) noexcept nogil
