# Protobuf wire-format readers for the protobuf payloads of the log (InstrumentDefined, ...), usable
# without the GIL and without a Python object: a bounds-checked scan of the top-level fields of one
# serialized message (https://protobuf.dev/programming-guides/encoding/). Malformed input (a truncated
# varint or value, a length past the end, field number 0, a group or reserved wire type) never reads out
# of bounds: the scan stops and the caller's default comes back. As in protobuf, the last occurrence of
# a scalar field wins, and an occurrence with another wire type is an unknown field (skipped).
from libc.stdint cimport uint8_t, uint32_t, uint64_t
from libc.string cimport memcpy

cdef enum:
    PW_VARINT = 0       # int32/64, uint32/64, sint, bool, enum
    PW_FIXED64 = 1      # double, fixed64, sfixed64
    PW_LEN = 2          # string, bytes, sub-messages, packed repeated
    PW_FIXED32 = 5      # float, fixed32, sfixed32
    PW_MALFORMED = -2   # pw_find: the message is malformed
    PW_ABSENT = -1      # pw_find: no occurrence of the field with that wire type


cdef inline Py_ssize_t pw_varint(const uint8_t* buf, Py_ssize_t n, Py_ssize_t pos, uint64_t* out) noexcept nogil:
    """Read the varint at buf[pos]; the position after it, or -1 when truncated or over 10 bytes."""
    cdef uint64_t v = 0
    cdef int shift = 0
    cdef uint8_t b
    while pos < n and shift <= 63:
        b = buf[pos]
        pos += 1
        v |= (<uint64_t>(b & 0x7F)) << shift
        if b < 0x80:
            out[0] = v
            return pos
        shift += 7
    return -1


cdef inline Py_ssize_t pw_skip(const uint8_t* buf, Py_ssize_t n, Py_ssize_t pos, int wire_type) noexcept nogil:
    """The position after the value of wire_type at buf[pos], or -1 when it is malformed."""
    cdef uint64_t length
    if wire_type == PW_VARINT:
        return pw_varint(buf, n, pos, &length)
    if wire_type == PW_FIXED64:
        return pos + 8 if n - pos >= 8 else -1
    if wire_type == PW_FIXED32:
        return pos + 4 if n - pos >= 4 else -1
    if wire_type == PW_LEN:
        pos = pw_varint(buf, n, pos, &length)
        if pos < 0 or length > <uint64_t>(n - pos):
            return -1
        return pos + <Py_ssize_t>length
    return -1  # groups (3, 4) are not written by proto3; 6 and 7 do not exist


cdef inline Py_ssize_t pw_find(const uint8_t* buf, Py_ssize_t n, uint32_t field, int wire_type) noexcept nogil:
    """Position of the value of the last occurrence of `field` with `wire_type` in the message
    buf[0:n]; PW_ABSENT when none, PW_MALFORMED when the message does not parse to its end."""
    cdef Py_ssize_t pos = 0
    cdef Py_ssize_t found = PW_ABSENT
    cdef Py_ssize_t after
    cdef uint64_t key
    cdef int wt
    if buf == NULL or n < 0:
        return PW_MALFORMED
    while pos < n:
        pos = pw_varint(buf, n, pos, &key)
        if pos < 0 or (key >> 3) == 0 or (key >> 3) > 536870911:
            return PW_MALFORMED
        wt = <int>(key & 7)
        after = pw_skip(buf, n, pos, wt)
        if after < 0:
            return PW_MALFORMED
        if (key >> 3) == field and wt == wire_type:
            found = pos
        pos = after
    return found


cdef inline double pw_double(const uint8_t* buf, Py_ssize_t n, uint32_t field, double default) noexcept nogil:
    """The double field `field` (wire type 1) of the message buf[0:n], or default when it is absent or
    the message is malformed."""
    cdef double v
    cdef Py_ssize_t pos = pw_find(buf, n, field, PW_FIXED64)
    if pos < 0:
        return default
    memcpy(&v, buf + pos, 8)  # little-endian, like every layout of the log
    return v


cdef inline uint64_t pw_uint64(const uint8_t* buf, Py_ssize_t n, uint32_t field, uint64_t default) noexcept nogil:
    """The varint field `field` (wire type 0: uint32/64, enum, bool) of the message buf[0:n], or default
    when it is absent or the message is malformed."""
    cdef uint64_t v
    cdef Py_ssize_t pos = pw_find(buf, n, field, PW_VARINT)
    if pos < 0:
        return default
    pw_varint(buf, n, pos, &v)
    return v
