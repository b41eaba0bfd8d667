# Record layouts of the log, as C structs. The declaration of record is argus/events/layout.py; these
# structs are a second description of it and tests/events/test_layout.py checks every size and offset
# against it (through argus.kernels.codec.layout_info).
from libc.stdint cimport int64_t, uint8_t, uint16_t, uint32_t, uint64_t

cdef enum:
    HEADER_SIZE = 32
    CHUNK_HEADER_SIZE = 96
    NO_INSTRUMENT = 0xFFFFFFFF

# Event type ids (argus.events.types.EventType).
cdef enum EventTypeId:
    T_UNSPECIFIED = 0
    T_INSTRUMENT_DEFINED = 1
    T_TRADE = 2
    T_QUOTE = 3
    T_BAR = 4
    T_OPTION_CHAIN_SNAPSHOT = 5
    T_EXTERNAL_METRIC = 6
    T_CLOCK = 7
    T_SIGNAL = 8
    T_ORDER_SUBMITTED = 9
    T_ORDER_ACCEPTED = 10
    T_ORDER_REJECTED = 11
    T_ORDER_CANCELED = 12
    T_FILL = 13
    T_CONFIG_RECORDED = 14
    T_ANNOTATION = 15
    T_MAX = 15

cdef struct RecordHeader:
    uint32_t length           # total record bytes, multiple of 8
    uint16_t type             # EventTypeId
    uint8_t version           # payload schema version
    uint8_t flags             # reserved
    uint32_t instrument_id    # dense id or NO_INSTRUMENT
    uint32_t payload_len      # payload bytes before padding
    int64_t ts_event          # ns UTC at the source
    int64_t ts_recv           # ns UTC at Argus

cdef struct TradePayload:
    double price
    double size
    uint64_t trade_id
    uint32_t aggressor
    uint32_t _reserved

cdef struct QuotePayload:
    double bid
    double ask
    double bid_size
    double ask_size

cdef struct BarPayload:
    double open
    double high
    double low
    double close
    double volume
    int64_t interval_ns
    uint64_t trade_count

cdef struct FillPayload:
    double price
    double quantity
    double commission
    uint64_t order_id
    uint64_t fill_id
    uint64_t position_id
    uint32_t account_id
    uint32_t liquidity

cdef struct OptionChainHead:
    double underlying_price
    uint32_t n_rows
    uint32_t source

cdef struct OptionRow:
    int64_t expiry_ns
    double strike
    double bid
    double ask
    double bid_size
    double ask_size
    double open_interest
    double iv
    double delta
    double gamma
    double vega
    double theta
    uint16_t right
    uint16_t source
    uint32_t contract_id

cdef struct ChunkHeader:
    char magic[4]
    uint16_t format_version
    uint16_t flags
    uint32_t count
    uint32_t body_len
    uint64_t first_offset
    int64_t min_ts_recv
    int64_t max_ts_recv
    uint8_t body_checksum[16]
    uint8_t prev_hash[32]
    uint64_t _reserved


cdef inline const void* payload_of(const RecordHeader* h) noexcept nogil:
    """The payload that follows a record header."""
    return <const void*>((<const uint8_t*>h) + HEADER_SIZE)
