"""Promote a research run's allocation into the market log.

The allocation (RUN_DIR/allocations.json, with the run's results digest) becomes one ConfigRecorded
event named "allocation"; its config hash is BLAKE2b-256 of the canonical JSON. The append is idempotent
(producer id "research-promote:<hash>"), so promoting twice records it once."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from argus.events.codec import Event
from argus.events.types import EventType
from argus.log import EventLog

__all__ = ["promote_allocation"]


def promote_allocation(log: EventLog, run_dir: str | Path) -> dict[str, Any]:
    run = Path(run_dir)
    allocation = json.loads((run / "allocations.json").read_text())
    summary = json.loads((run / "summary.json").read_text())
    doc = {"run": summary.get("name"), "results_digest": summary.get("results_digest"), "allocation": allocation}
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"))
    digest = hashlib.blake2b(text.encode(), digest_size=32).hexdigest()
    with log.reader() as reader:  # the event's time: the log's latest ts_recv (no wall clock)
        last = max((c.header.max_ts_recv for c in reader.chunks(max(0, log.head() - 1))), default=1)
    event = Event(EventType.CONFIG_RECORDED, ts_event=last, ts_recv=last,
                  data={"name": "allocation", "config_hash": digest, "config_json": text})
    result = log.append([event], producer_id=f"research-promote:{digest[:32]}", sequence=0)
    return {"offset": result.first_offset, "duplicate": result.duplicate, "config_hash": digest,
            "allocations": len(allocation.get("allocations", []))}
