"""The golden log: made reproducibly from a seeded synthetic market, real files from ../shared/data
and a deterministic list of fills. `python -m tests.golden.regenerate --why "..."` rewrites the
checked-in digests; nothing else does."""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

import numpy as np

from argus.analytics.hmm import HmmParams, to_json
from argus.connectors.files import FileIngestOptions, ingest_csv
from argus.connectors.synthetic import SyntheticConfig, write_synthetic_market
from argus.events import codec
from argus.events.codec import Event
from argus.events.layout import NO_INSTRUMENT
from argus.events.types import EventType
from argus.log import EventLog

GOLDEN = Path(__file__).resolve().parent
CONFIG = GOLDEN / "projections.yaml"
DIGESTS = GOLDEN / "digests.json"
#: The options projection's golden log (one seeded synthetic day of SPY with option chains), its
#: configuration and digests: kept apart from the main golden log so that its digests stay as they were.
OPTIONS_CONFIG = GOLDEN / "options.yaml"
OPTIONS_DIGESTS = GOLDEN / "options_digests.json"
SHARED = GOLDEN.parents[2] / "shared" / "data"


def build_golden_log(path: Path, shared: Path = SHARED) -> Path:
    """Write the golden log at `path` (a fresh directory); returns the path."""
    with EventLog.open(path, max_chunk_bytes=64 << 10) as log:  # small chunks: many chunk boundaries
        # EWJ (Asia) and EWG (Europe) feed the global risk flow; SPY is the market regime's index.
        write_synthetic_market(log, SyntheticConfig(seed=11, symbols=("SPY", "QQQ", "EWJ", "EWG"),
                                                    start=dt.date(2024, 3, 7), days=1, events_per_day=6000))
        log.append([_hmm_params_event()])
        write_synthetic_market(log, SyntheticConfig(seed=12, symbols=("SPY", "QQQ", "EWJ", "EWG"),
                                                    start=dt.date(2024, 3, 8), days=1, events_per_day=6000))
        ingest_csv(log, shared / "nautilus_trader__tardis-trades.csv",
                   FileIngestOptions(kind="trades", ts_unit="us", instrument_kind="crypto",
                                     columns={"ts_event": "timestamp", "ts_recv": "local_timestamp", "size": "amount"},
                                     progress=False))
        ingest_csv(log, shared / "nautilus_trader__6EH4.XCME_1min_bars_20240101_20240131.csv",
                   FileIngestOptions(kind="bars", symbol="6EH4", timeframe="1m", instrument_kind="future",
                                     columns={"ts_event": "timestamp_utc"}, progress=False))
        log.append(_fills(log))
    return path


def build_options_log(path: Path) -> Path:
    """The options golden log at `path`: one synthetic day of SPY with option chains every 30 minutes
    (14 snapshots), small chunks so that snapshots and chunk cuts fall between the chains."""
    with EventLog.open(path, max_chunk_bytes=64 << 10) as log:
        write_synthetic_market(log, SyntheticConfig(seed=21, symbols=("SPY",), start=dt.date(2024, 3, 7), days=1,
                                                    events_per_day=3000, options=True))
    return path


def _hmm_params_event() -> Event:
    """A 2-state HMM for 5-minute returns, recorded after the first day: the filter starts there."""
    params = HmmParams(startprob=np.array([0.5, 0.5]), transmat=np.array([[0.98, 0.02], [0.05, 0.95]]),
                       means=np.array([0.0001, -0.0002]), variances=np.array([1e-6, 9e-6]))
    text = to_json(params)
    ts = 1_709_856_000_000_000_000  # 2024-03-08 00:00 UTC
    return Event(EventType.CONFIG_RECORDED, ts, ts, NO_INSTRUMENT,
                 {"name": "hmm", "config_hash": hashlib.blake2b(text.encode(), digest_size=32).hexdigest(),
                  "config_json": text})


def _fills(log: EventLog) -> bytes:
    """40 fills over two accounts: SPY, QQQ and BTCUSDT, some grouped by a position id."""
    ids = [log.instrument_id(s) for s in ("SPY", "QQQ", "BTCUSDT")]
    base_price = {ids[0]: 510.0, ids[1]: 440.0, ids[2]: 9700.0}
    ts0 = 1_709_928_000_000_000_000  # 2024-03-08 20:00 UTC
    body = []
    for i in range(40):
        iid = ids[i % 3]
        qty = float((i % 7) - 3 or 2) * (0.1 if iid == ids[2] else 10)
        price = base_price[iid] * (1 + 0.001 * ((i * 37) % 11 - 5))
        ts = ts0 + i * 1_000_000_000
        rec = codec.encode_columns(EventType.FILL, iid, np.array([ts]), np.array([ts]), price=price, quantity=qty,
                                   commission=0.5, order_id=1000 + i, fill_id=i + 1,
                                   position_id=(i // 4 + 1) if i % 2 else 0, account_id=1 + i % 2, liquidity=2)
        body.append(rec.tobytes())
    return b"".join(body)
