"""Record builders shared by the log tests."""

from __future__ import annotations

import numpy as np

from argus.events import codec
from argus.events.types import EventType

TS = 1_700_000_000_000_000_000


def trades(n: int, first_trade_id: int = 0, instrument_id: int = 0) -> np.ndarray:
    """n trade records whose trade_id counts up from first_trade_id (so tests can check placement)."""
    ids = np.arange(first_trade_id, first_trade_id + n, dtype=np.uint64)
    ts = TS + ids.astype(np.int64)
    return codec.encode_columns(EventType.TRADE, instrument_id, ts, ts, price=100.0 + (ids % 7), size=1.0,
                                trade_id=ids)


def trade_ids(log, from_offset: int = 0) -> np.ndarray:
    """trade_id of every trade record in the log from an offset, in log order."""
    dtype = codec.layout.RECORD_DTYPES[EventType.TRADE]
    out = []
    for chunk in log.chunks(from_offset):
        for off, rec in codec.iter_records(chunk.body, chunk.first_offset):
            if chunk.start <= off < chunk.stop and int.from_bytes(rec[4:6], "little") == EventType.TRADE:
                out.append(int(np.frombuffer(rec, dtype=dtype, count=1)[0]["trade_id"]))
    return np.asarray(out, dtype=np.int64)
