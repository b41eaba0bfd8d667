"""No lookahead: perturb every event after offset k, and nothing any projection emitted at or before k
may change (DESIGN.md §1.3)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from argus.events import layout
from argus.events.codec import iter_records
from argus.events.types import EventType
from argus.log import EventLog
from argus.projections.config import load_config
from argus.projections.engine import ProjectionEngine
from argus.projections.store import DerivedStore
from tests.golden.build import CONFIG, build_golden_log

ROOT = Path(__file__).resolve().parents[2]
SCALED = {EventType.TRADE: ("price",), EventType.QUOTE: ("bid", "ask"), EventType.BAR: ("open", "high", "low", "close")}


def perturbed(record: memoryview, factor: float) -> bytes:
    """The record with its prices scaled (and sizes doubled): still valid, clearly different."""
    raw = bytearray(record)
    t = EventType(int.from_bytes(raw[4:6], "little"))
    if t in SCALED:
        rec = np.frombuffer(raw, dtype=layout.RECORD_DTYPES[t], count=1).copy()
        for name in SCALED[t]:
            rec[name] *= factor
        if t == EventType.TRADE:
            rec["size"] *= 2
        raw = bytearray(rec.tobytes())
    return bytes(raw)


def outputs(log_path: Path, data: Path) -> dict[str, np.ndarray]:
    config = load_config(CONFIG)
    with EventLog.open(log_path, readonly=True) as log:
        engine = ProjectionEngine(log, config)
        engine.store = DerivedStore.for_config(data, config.config_hash, engine.projections.output_names())
        engine.replay()
        rows = {name: engine.store.rows(name, dt) for name, dt in engine.projections.dtypes().items()}
        engine.store.close()
    return rows


@pytest.fixture(scope="module")
def golden(tmp_path_factory) -> Path:
    if not (ROOT.parent / "shared" / "data").is_dir():
        pytest.skip("the golden log includes real data from ../shared/data, which is absent")
    return build_golden_log(tmp_path_factory.mktemp("golden") / "log")


@pytest.mark.parametrize("k", [2_500, 20_000, 33_333, 60_000])
def test_perturbing_events_after_k_changes_nothing_emitted_at_or_before_k(golden: Path, tmp_path: Path,
                                                                            k: int) -> None:
    with EventLog.open(golden, readonly=True) as src:
        records = [bytes(r) for c in src.chunks(0) for _, r in iter_records(c.body, c.first_offset)]
    changed = tmp_path / "changed"
    with EventLog.open(changed) as log:
        log.append(b"".join(records[: k + 1]))
        log.append(b"".join(perturbed(memoryview(r), 1.01) for r in records[k + 1:]))
    base = outputs(golden, tmp_path / "d1")
    other = outputs(changed, tmp_path / "d2")
    differs_after = False
    for name, rows in base.items():
        early, early_other = rows[rows["offset"] <= k], other[name][other[name]["offset"] <= k]
        assert early.tobytes() == early_other.tobytes(), f"{name}: an output at or before {k} changed"
        differs_after |= rows[rows["offset"] > k].tobytes() != other[name][other[name]["offset"] > k].tobytes()
    assert differs_after, "the perturbation changed nothing at all: the test would prove nothing"
