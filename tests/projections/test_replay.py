"""Golden-log determinism: the same log and configuration give the same digests in every process,
from every offset, in both feeding modes, and the derived store is rebuilt byte for byte."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xxhash
from click.testing import CliRunner

from argus.cli.main import cli
from argus.log import EventLog
from argus.projections.config import load_config
from argus.projections.engine import ProjectionEngine
from argus.projections.store import DerivedStore
from tests.golden.build import CONFIG, DIGESTS, build_golden_log

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def golden(tmp_path_factory, request) -> Path:
    shared = ROOT.parent / "shared" / "data"
    if not shared.is_dir():
        pytest.skip(f"the golden log includes real data from {shared}, which is absent")
    return build_golden_log(tmp_path_factory.mktemp("golden") / "log")


@pytest.fixture(scope="module")
def config():
    return load_config(CONFIG)


@pytest.fixture(scope="module")
def full(golden: Path, config, tmp_path_factory):
    """A full replay with a derived store: its result, store directory and every stored row."""
    data = tmp_path_factory.mktemp("derived")
    with EventLog.open(golden, readonly=True) as log:
        engine = ProjectionEngine(log, config)
        engine.store = DerivedStore.for_config(data, config.config_hash, engine.projections.output_names())
        result = engine.replay()
        dtypes = engine.projections.dtypes()
        rows = {name: engine.store.rows(name, dt) for name, dt in dtypes.items()}
        items = list(engine.store.items())
        engine.store.close()
    return result, data, rows, items


def _replay(golden: Path, config, data: Path | None, **kwargs):
    with EventLog.open(golden, readonly=True) as log:
        engine = ProjectionEngine(log, config)
        if data is not None:
            engine.store = DerivedStore.for_config(data, config.config_hash, engine.projections.output_names())
        try:
            return engine.replay(**kwargs)
        finally:
            if engine.store is not None:
                engine.store.close()


def test_golden_log_is_what_the_digests_were_made_from(golden: Path) -> None:
    expected = json.loads(DIGESTS.read_text())
    with EventLog.open(golden, readonly=True) as log:
        assert log.chain_head().hex() == expected["chain_head"], "the golden log itself changed"
        assert log.head() == expected["events"]


DIGEST_SCRIPT = """
import json, sys
from argus.log import EventLog
from argus.projections.config import load_config
from argus.projections.engine import ProjectionEngine
with EventLog.open(sys.argv[1], readonly=True) as log:
    r = ProjectionEngine(log, load_config(sys.argv[2])).replay()
print(json.dumps({"state_digest": r.state_digest, "outputs_digest": r.outputs_digest, "config_hash": r.config_hash}))
"""


def test_golden_digests_match_in_two_processes_with_different_hash_seeds(golden: Path) -> None:
    expected = json.loads(DIGESTS.read_text())
    for seed in ("1", "4242"):
        env = dict(os.environ, PYTHONHASHSEED=seed)
        out = subprocess.run([sys.executable, "-c", DIGEST_SCRIPT, str(golden), str(CONFIG)], env=env, cwd=ROOT,
                             capture_output=True, text=True, check=True).stdout
        got = json.loads(out)
        assert got == {k: expected[k] for k in ("state_digest", "outputs_digest", "config_hash")}, seed


def test_full_replay_emits_every_kind_of_output(full) -> None:
    result, _, rows, _ = full
    assert set(rows) == {"bars", "indicators", "positions", "sessions", "regimes", "regime_changes", "bocpd",
                         "outcomes", "hmm", "risk_flow", "market_regime", "market_regime_changes"}
    assert all(len(r) > 0 for r in rows.values())
    assert result.projections["positions"].outputs == 40
    specs = set(np.unique(rows["bars"]["spec"]).tolist())
    assert specs == {0, 1, 2, 3, 4}, "every bar spec of the golden configuration produced bars"


def test_event_at_a_time_equals_chunk_at_a_time(golden: Path, config, full) -> None:
    result = _replay(golden, config, None, mode="event")
    assert (result.state_digest, result.outputs_digest) == (full[0].state_digest, full[0].outputs_digest)


def _rows_digest(rows: dict[str, np.ndarray], k: int) -> str:
    """The outputs_digest of the rows a replay from offset k must emit (rows at offsets >= k)."""
    total = hashlib.blake2b(digest_size=32)
    for name in rows:
        arr = rows[name]
        total.update(name.encode() + b"\0" + xxhash.xxh3_128_digest(arr[arr["offset"] >= k].tobytes()))
    return total.hexdigest()


def test_replay_from_any_offset_restores_a_snapshot_and_matches_the_full_replay(golden: Path, config, full) -> None:
    result, data, rows, _ = full
    head = result.to_offset
    with EventLog.open(golden, readonly=True) as log:
        chunk_starts = [c.first_offset for c in log.chunks(0)]
    offsets = sorted({1, 4999, 5000, 5001, 12_345, chunk_starts[3], chunk_starts[7] + 1, head // 2, head - 41,
                      head - 1, *chunk_starts[10:60:7]})
    for k in offsets:
        r = _replay(golden, config, data, from_offset=k)
        if k < config.snapshot_every:
            assert r.restored_from is None  # no snapshot yet: replayed silently from 0
        else:
            assert r.restored_from is not None and k - config.snapshot_every < r.restored_from <= k
            assert r.restored_from % config.snapshot_every == 0
        assert r.state_digest == result.state_digest, k
        assert r.outputs_digest == _rows_digest(rows, k), k


def test_fresh_replay_from_an_offset_starts_from_empty_state(golden: Path, config, full) -> None:
    result = full[0]
    r = _replay(golden, config, None, from_offset=result.to_offset // 2, fresh=True)
    assert r.restored_from is None
    assert r.state_digest != result.state_digest  # it never saw the first half


def test_deleting_the_derived_store_and_replaying_reproduces_it_byte_for_byte(golden: Path, config, full,
                                                                              tmp_path: Path) -> None:
    _, data, _, items = full
    copy = tmp_path / "again"
    _replay(golden, config, copy)
    store = DerivedStore.for_config(copy, config.config_hash, list(full[2]), readonly=True)
    try:
        assert list(store.items()) == items
    finally:
        store.close()
    shutil.rmtree(copy)


def test_replay_cli_prints_the_documented_json(golden: Path, tmp_path: Path, full) -> None:
    data = tmp_path / "data"
    shutil.copytree(golden, data / "log")
    res = CliRunner().invoke(cli, ["--data", str(data), "replay", "--config", str(CONFIG), "--json",
                                   "--export", str(tmp_path / "pq")])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    for key in ("from_offset", "to_offset", "events", "seconds", "events_per_s", "state_digest", "outputs_digest",
                "config_hash", "projections"):
        assert key in out
    assert out["state_digest"] == full[0].state_digest
    assert {"bars.parquet", "indicators.parquet", "positions.parquet", "regimes.parquet",
            "outcomes.parquet"} <= set(out["exported"])
    import pyarrow.parquet as pq

    bars = pq.read_table(tmp_path / "pq" / "bars.parquet").to_pandas()
    assert {"symbol", "timeframe", "ts_start", "ts_end", "config_hash"} <= set(bars.columns)
    assert set(bars["timeframe"]) == {"1m", "5m", "1d", "dollar5e+06", "15m@provider"}
    assert (bars["config_hash"] == out["config_hash"]).all()
    ind = pq.read_table(tmp_path / "pq" / "indicators.parquet").to_pandas()
    assert list(ind.columns[6:20]) == ["sma_20", "ema_12", "ema_26", "rsi_14", "macd", "macd_signal", "macd_hist",
                                       "atr_14", "bb_upper_20", "bb_middle_20", "bb_lower_20", "adx_14", "vwap",
                                       "rv_20"]
    again = CliRunner().invoke(cli, ["--data", str(data), "replay", "--config", str(CONFIG), "--json",
                                     "--from-offset", str(out["to_offset"] // 3)])
    assert json.loads(again.output)["state_digest"] == out["state_digest"]


def test_live_tail_gives_the_same_outputs_and_state_as_a_replay(golden: Path, config, full, tmp_path: Path) -> None:
    """Events appended while the engine follows the tail end in the same state as a full replay."""
    import asyncio

    from argus.events.codec import iter_records

    result, _, rows, _ = full
    live = tmp_path / "live"
    with EventLog.open(golden, readonly=True) as src:
        records = [bytes(rec) for c in src.chunks(0) for _, rec in iter_records(c.body, c.first_offset)]
    with EventLog.open(live) as log:
        log.append(b"".join(records[:20_000]))

        async def main() -> dict[str, list[np.ndarray]]:
            engine = ProjectionEngine(log, config)
            seen: dict[str, list[np.ndarray]] = {}
            position = 0

            async def produce() -> None:
                for a in range(20_000, len(records), 7_000):  # appended in batches while following
                    log.append(b"".join(records[a:a + 7_000]))
                    await asyncio.sleep(0.001)

            producer = asyncio.create_task(produce())
            async for position, emitted in engine.follow(0, poll_interval=0.01):
                for name, arr in emitted.items():
                    seen.setdefault(name, []).append(arr)
                if position == len(records):
                    break
            await producer
            assert engine.projections.state_digest().hex() == result.state_digest
            return seen

        seen = asyncio.run(main())
    for name, parts in seen.items():
        assert np.concatenate(parts).tobytes() == rows[name].tobytes(), name
