"""Fit the HMM state filter's parameters on a log's bars and record them in the log.

The fit (Baum–Welch, argus.analytics.hmm) runs once, in research; its parameters are appended as a
ConfigRecorded event named "hmm", so every replay of the log filters with exactly those numbers from
that offset on (bars closed earlier are never filtered with them: no lookahead)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from argus.analytics.hmm import HmmParams, fit_gaussian_hmm, to_json
from argus.events.codec import Event
from argus.events.layout import NO_INSTRUMENT
from argus.events.types import EventType
from argus.kernels.bars import BarReducer
from argus.log import EventLog
from argus.projections.config import ProjectionConfig


@dataclass(frozen=True)
class HmmFit:
    params: HmmParams
    params_json: str
    offset: int  # where the ConfigRecorded event was appended
    bars: int  # bars the fit used


def closes_of(log: EventLog, config: ProjectionConfig, symbol: str, timeframe: str) -> np.ndarray:
    """Closes of one symbol's bars of one timeframe of the configuration, from a bars-only replay."""
    labels = [b.label for b in config.bars]
    if timeframe not in labels:
        raise ValueError(f"timeframe = {timeframe!r} must be one of the configuration's bar timeframes {labels}")
    iid = log.instrument_id(symbol)
    if iid is None:
        raise ValueError(f"symbol = {symbol!r} is not defined in the log")
    bars = BarReducer("bars", config.config_hash, [b.as_dict() for b in config.bars], config.sessions())
    spec = labels.index(timeframe)
    closes = []
    with log.reader() as reader:
        for chunk in reader.chunks(0):
            bars.apply_chunk(chunk.body, chunk.first_offset, chunk.start, chunk.stop)
            rows = bars.out.drain()
            closes.append(rows["close"][(rows["instrument_id"] == iid) & (rows["spec"] == spec)])
    return np.concatenate(closes) if closes else np.zeros(0)


def fit_and_record_hmm(log: EventLog, config: ProjectionConfig, symbol: str, timeframe: str, *, n_states: int = 2,
                       seed: int = 0) -> HmmFit:
    """Fit a Gaussian HMM on the log returns of a symbol's bars and append it as ConfigRecorded("hmm")."""
    closes = closes_of(log, config, symbol, timeframe)
    closes = closes[closes > 0]
    if len(closes) < 10 * n_states + 1:
        raise ValueError(f"{symbol} {timeframe}: {len(closes)} bars must be at least {10 * n_states + 1} "
                         f"to fit {n_states} states")
    params = fit_gaussian_hmm(np.diff(np.log(closes)), n_states=n_states, seed=seed)
    text = to_json(params)
    ts = log.info().last_ts_recv or 1  # the log's own clock: the fit is known once the data is
    event = Event(EventType.CONFIG_RECORDED, ts, ts, NO_INSTRUMENT,
                  {"name": "hmm", "config_hash": hashlib.blake2b(text.encode(), digest_size=32).hexdigest(),
                   "config_json": text})
    result = log.append([event])
    return HmmFit(params, text, result.first_offset, len(closes))
