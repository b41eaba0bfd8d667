"""The projection engine: feeds the reducers from the log, drains their outputs into the derived
store, takes snapshots, and reports digests (DESIGN.md §1.4, §5).

Replay from offset N restores the newest snapshot at or before N, applies [snapshot, N) silently
(outputs dropped), then processes [N, M): outputs with offsets >= N are written and digested.
Snapshots are taken at every multiple of `snapshot_every`, exactly at that offset, whatever the
chunking, so a replay cut anywhere restores the same state.

Digests: `state_digest` is BLAKE2b-256 over every reducer's state digest, in a fixed order;
`outputs_digest` is BLAKE2b-256 over each output's name and the XXH3-128 of its rows emitted at
offsets >= N (XXH3 because the rows are already hashed once with BLAKE2b by the reducers' running
digests, and a replay should not pay for that twice).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import xxhash

from argus.events import codec
from argus.events.types import EventType
from argus.kernels import codec as _kcodec
from argus.kernels.bars import BAR_FIELDS, BarFanout, BarReducer
from argus.kernels.indicators import IndicatorReducer
from argus.kernels.positions import PositionReducer
from argus.log import EventLog
from argus.projections.config import ProjectionConfig
from argus.projections.store import DerivedStore

Mode = Literal["chunk", "event"]


@dataclass
class ProjectionReport:
    outputs: int
    digest: str


@dataclass
class ReplayResult:
    from_offset: int
    to_offset: int
    events: int
    seconds: float
    events_per_s: float
    state_digest: str
    outputs_digest: str
    config_hash: str
    restored_from: int | None
    projections: dict[str, ProjectionReport] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"from_offset": self.from_offset, "to_offset": self.to_offset, "events": self.events,
                "seconds": self.seconds, "events_per_s": self.events_per_s, "state_digest": self.state_digest,
                "outputs_digest": self.outputs_digest, "config_hash": self.config_hash,
                "restored_from": self.restored_from,
                "projections": {k: {"outputs": v.outputs, "digest": v.digest} for k, v in self.projections.items()}}


class Projections:
    """The reducers of one configuration, in a fixed order, and what each emits.

    Walked reducers are fed log records; listeners are fed the bars the bar reducer closes, in order."""

    def __init__(self, config: ProjectionConfig, symbol_ids: dict[str, int] | None = None):
        h = config.config_hash
        self.config = config
        self.walked: list = []  # reducers fed with log records, in order
        self.listeners: list = []  # reducers fed with closed bars, in order
        self.indicators = None
        self.hmm = None
        ids = symbol_ids or {}
        labels = [b.label for b in config.bars]
        if config.bars:
            n_specs = len(config.bars)
            if config.indicators:
                self.indicators = IndicatorReducer("indicators", h, [dict(s) for s in config.indicators], n_specs)
                self.listeners.append(self.indicators)
            if config.regimes is not None:
                from argus.kernels.regimes import RegimeReducer

                self.listeners.append(RegimeReducer("regimes", h, n_specs, **config.regimes))
            if config.bocpd is not None:
                from argus.kernels.bocpd import BocpdReducer

                self.listeners.append(BocpdReducer("bocpd", h, n_specs, **config.bocpd))
            if config.outcomes is not None:
                from argus.kernels.outcomes import OutcomeReducer

                self.listeners.append(OutcomeReducer("outcomes", h, n_specs, **config.outcomes))
            if config.hmm is not None:
                from argus.kernels.hmm import HmmReducer

                self.hmm = HmmReducer("hmm", h, n_specs)
                self.listeners.append(self.hmm)
            risk_flow = None
            if config.risk_flow is not None:
                from argus.kernels.riskflow import RiskFlowReducer

                rf = config.risk_flow
                # Symbols not (yet) defined in the log are left out of their group.
                groups = {g: [ids[s] for s in rf[g] if s in ids] for g in ("asia", "europe", "fx")}
            if config.risk_flow is not None and any(groups.values()):  # none of its symbols in the log: off
                risk_flow = RiskFlowReducer("risk_flow", h, n_specs, labels.index(rf["spec"]), groups["asia"],
                                            groups["europe"], groups["fx"],
                                            **{k: v for k, v in rf.items() if k in ("weights", "fx_sign")})
                self.listeners.append(risk_flow)
            if config.market_regime is not None and config.market_regime["index"] in ids:
                from argus.kernels.market_regime import MarketRegimeReducer

                mr = config.market_regime
                by_name = {r.name: r for r in self.listeners}
                self.listeners.append(MarketRegimeReducer(
                    "market_regime", h, n_specs, ids[mr["index"]], labels.index(mr["spec"]),
                    regimes=by_name.get("regimes"), bocpd=by_name.get("bocpd"), risk_flow=risk_flow,
                    **{k: v for k, v in mr.items() if k in ("flow_threshold", "change_threshold")}))
            listener = None
            if len(self.listeners) == 1:
                listener = self.listeners[0]
            elif self.listeners:
                listener = BarFanout(self.listeners)
            kwargs = {} if config.quality is None else {"quality": dict(config.quality)}
            self.bars = BarReducer("bars", h, [b.as_dict() for b in config.bars], config.sessions(), listener,
                                   **kwargs)
            self.walked.append(self.bars)
        if config.sessions_tags:
            from argus.kernels.session_tags import SessionTagReducer

            segments, labels = config.session_segments()
            self.walked.append(SessionTagReducer("sessions", h, segments, labels))
        if config.positions:
            self.positions = PositionReducer("positions", h)
            self.walked.append(self.positions)
        self.options = None
        if config.options is not None:
            from argus.projections.options import OptionsProjection

            self.options = OptionsProjection("options", h, config.options, ids)
            self.walked.append(self.options)
        # Snapshot and digest order: the walked reducers, then the listeners.
        self.all = [*self.walked, *self.listeners]

    def output_names(self) -> list[str]:
        return [name for r in self.all for name, _ in r.outputs()]

    def buffers(self) -> list[tuple[str, object]]:
        return [(name, buf) for r in self.all for name, buf in r.outputs()]

    def dtypes(self) -> dict[str, np.dtype]:
        return {name: buf.dtype for name, buf in self.buffers()}

    def state_digest(self) -> bytes:
        h = hashlib.blake2b(digest_size=32)
        for r in self.all:
            h.update(r.state_digest())
        return h.digest()


class ProjectionEngine:
    """Runs a configuration's reducers over a log; outputs and snapshots go to a derived store."""

    def __init__(self, log: EventLog, config: ProjectionConfig, store: DerivedStore | None = None):
        self.log = log
        self.config = config
        self.store = store
        self.projections = Projections(config, self._symbol_ids())

    def _symbol_ids(self) -> dict[str, int]:
        return {sym: iid for iid, sym in self.log.symbols().items()}

    def replay(self, from_offset: int = 0, to_offset: int | None = None, *, fresh: bool = False,
               mode: Mode = "chunk", snapshots: bool = True,
               progress: Callable[[int], None] | None = None) -> ReplayResult:
        """Process [from_offset, to_offset) (to the head by default) and report digests."""
        head = self.log.head()
        stop = head if to_offset is None else min(to_offset, head)
        if from_offset > stop:
            raise ValueError(f"from_offset = {from_offset} must be <= to_offset ({stop}) and the head ({head})")
        self.projections = Projections(self.config, self._symbol_ids())
        restored = None
        if not fresh and from_offset > 0:
            restored = self._restore_newest(from_offset)
            start = 0 if restored is None else restored
            self._run(start, from_offset, mode, keep=False, snapshots=snapshots)
        digests = {name: xxhash.xxh3_128() for name in self.projections.output_names()}
        counts = dict.fromkeys(digests, 0)
        t0 = time.perf_counter()
        self._run(from_offset, stop, mode, keep=True, snapshots=snapshots, digests=digests, counts=counts,
                  progress=progress)
        seconds = time.perf_counter() - t0
        total = hashlib.blake2b(digest_size=32)
        reports = {}
        for name, h in digests.items():
            total.update(name.encode() + b"\0" + h.digest())
            reports[name] = ProjectionReport(counts[name], h.hexdigest())
        events = stop - from_offset
        return ReplayResult(from_offset, stop, events, seconds, events / seconds if seconds > 0 else 0.0,
                            self.projections.state_digest().hex(), total.hexdigest(),
                            self.config.config_hash.hex(), restored, reports)

    def stream(self, from_offset: int = 0, to_offset: int | None = None, *, mode: Mode = "chunk",
               resume: bool = False) -> Iterator[tuple[object, dict[str, np.ndarray]]]:
        """Run fresh reducers over [from_offset, to_offset) without touching the store, yielding each
        chunk with the rows its records emitted: what a consumer (a backtest) may know once the chunk's
        records have been processed. Every row carries the offset of the record that emitted it.
        `resume` keeps the reducers of the previous call (whose range must end at from_offset), for a
        consumer that follows a growing log."""
        head = self.log.head()
        stop = head if to_offset is None else min(to_offset, head)
        if not resume:
            self.projections = Projections(self.config, self._symbol_ids())
        with self.log.reader() as reader:
            for chunk in reader.chunks(from_offset, stop):
                lo, hi = max(chunk.start, from_offset), min(chunk.stop, stop)
                if self.projections.hmm is not None:
                    self._register_hmm_params(chunk, lo, hi)
                self._apply(self.projections.walked, chunk, lo, hi, mode)
                yield chunk, {name: buf.drain() for name, buf in self.projections.buffers()}

    def _restore_newest(self, offset: int) -> int | None:
        """Restore every reducer from the newest offset <= `offset` at which all have a snapshot."""
        if self.store is None:
            return None
        common = None
        for r in self.projections.all:
            offs = {k for k in self.store.snapshot_offsets(r.name) if k <= offset}
            common = offs if common is None else common & offs
        if not common:
            return None
        k = max(common)
        for r in self.projections.all:
            r.restore(self.store.snapshot(r.name, k))
        return k

    def _run(self, start: int, stop: int, mode: Mode, *, keep: bool, snapshots: bool,
             digests: dict | None = None, counts: dict | None = None,
             progress: Callable[[int], None] | None = None) -> None:
        with self.log.reader() as reader:
            for chunk in reader.chunks(start, stop):
                self._process(chunk, mode, keep=keep, snapshots=snapshots, digests=digests, counts=counts,
                              progress=progress)

    def _process(self, chunk, mode: Mode, *, keep: bool, snapshots: bool, digests: dict | None = None,
                 counts: dict | None = None, progress: Callable[[int], None] | None = None) -> dict[str, np.ndarray]:
        """Apply a chunk's [start, stop) records; returns the rows emitted."""
        every = self.config.snapshot_every
        emitted: dict[str, list[np.ndarray]] = {}
        lo = chunk.start
        while lo < chunk.stop:
            # Cut at the next snapshot offset so snapshots sit at exact multiples of `every`.
            boundary = (lo // every + 1) * every
            hi = min(chunk.stop, boundary)
            if self.projections.hmm is not None:
                self._register_hmm_params(chunk, lo, hi)
            self._apply(self.projections.walked, chunk, lo, hi, mode)
            rows = self._drain(keep, digests, counts, snapshot_at=hi if snapshots and hi % every == 0 else None)
            for name, arr in rows.items():
                if len(arr):
                    emitted.setdefault(name, []).append(arr)
            if progress is not None:
                progress(hi - lo)
            lo = hi
        return {name: np.concatenate(parts) for name, parts in emitted.items()}

    async def follow(self, from_offset: int = 0, *, mode: Mode = "chunk",
                     poll_interval: float = 0.05) -> AsyncIterator[tuple[int, dict[str, np.ndarray]]]:
        """The live tail: restore and replay silently up to from_offset, then apply every chunk as it
        lands in the log, writing outputs and snapshots like a replay. Yields (next offset, rows emitted)
        after each chunk; runs until the caller stops iterating."""
        self.projections = Projections(self.config, self._symbol_ids())
        start = self._restore_newest(from_offset) if from_offset > 0 else None
        self._run(start or 0, from_offset, mode, keep=False, snapshots=True)
        async for chunk in self.log.subscribe(from_offset, poll_interval=poll_interval):
            rows = self._process(chunk, mode, keep=True, snapshots=True,
                                 digests={n: xxhash.xxh3_128() for n in self.projections.output_names()},
                                 counts=dict.fromkeys(self.projections.output_names(), 0))
            yield chunk.stop, rows

    def _register_hmm_params(self, chunk, lo: int, hi: int) -> None:
        """Give the HMM filter every `hmm` ConfigRecorded event of [lo, hi) before the records are
        applied: a parameter set takes effect for bars closed at or after its own offset, in replay and
        live alike."""
        hmm = self.projections.hmm
        for offset, name, config_json in configs_in(chunk, lo, hi):
            if name == "hmm" and offset not in {o for o, _ in hmm.params_sets()}:
                hmm.set_params(offset, config_json)

    def _apply(self, walked: list, chunk, lo: int, hi: int, mode: Mode) -> None:
        if mode == "chunk":
            for r in walked:
                r.apply_chunk(chunk.body, chunk.first_offset, lo, hi)
        else:
            # The live path: one record at a time, every reducer per record (as events arrive live).
            for offset, record in codec.iter_records(chunk.body, chunk.first_offset):
                if lo <= offset < hi:
                    for r in walked:
                        r.apply_record(record, offset)
        for listener in self.projections.listeners:
            listener._check()  # a listener cannot raise inside the bar reducer's callback

    def _drain(self, keep: bool, digests: dict | None, counts: dict | None,
               snapshot_at: int | None) -> dict[str, np.ndarray]:
        rows = {name: buf.drain() for name, buf in self.projections.buffers()}
        if keep:
            for name, arr in rows.items():
                if len(arr):
                    digests[name].update(arr)
                    counts[name] += len(arr)
        snaps = None
        if snapshot_at is not None and self.store is not None:
            snaps = {r.name: (snapshot_at, r.snapshot()) for r in self.projections.all}
        if self.store is not None and ((keep and any(len(a) for a in rows.values())) or snaps):
            self.store.write(rows if keep else {}, snaps, self.config.canonical_json())
        return rows if keep else {}


BAR_DTYPE = np.dtype(list(BAR_FIELDS))


def configs_in(chunk, lo: int, hi: int) -> list[tuple[int, str, str]]:
    """(offset, name, config_json) of the ConfigRecorded events of a chunk with offsets in [lo, hi)."""
    body = memoryview(chunk.body).cast("B")
    positions = _kcodec.record_positions(body, int(EventType.CONFIG_RECORDED))
    if not len(positions):
        return []
    index = _kcodec.index_records(body)
    out = []
    for pos in positions.tolist():
        offset = chunk.first_offset + int(np.searchsorted(index, pos))
        if lo <= offset < hi:
            event = codec.decode(body[pos:pos + int.from_bytes(body[pos:pos + 4], "little")])
            out.append((offset, event.data.get("name", ""), event.data.get("config_json", "")))
    return out
