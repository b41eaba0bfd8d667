"""Rewrite tests/golden/digests.json, saying why: `python -m tests.golden.regenerate --why "..."`.

Run it only when a change is meant to change the projections' outputs or state (a new reducer field,
a fixed bug); the reason is stored beside the digests and shows in the diff."""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from argus.log import EventLog
from argus.projections.config import load_config
from argus.projections.engine import ProjectionEngine
from tests.golden.build import CONFIG, DIGESTS, build_golden_log


def golden_digests(work: Path) -> dict:
    log_path = build_golden_log(work / "log")
    with EventLog.open(log_path, readonly=True) as log:
        result = ProjectionEngine(log, load_config(CONFIG)).replay()
        return {"chain_head": log.chain_head().hex(), "events": log.head(), "config_hash": result.config_hash,
                "state_digest": result.state_digest, "outputs_digest": result.outputs_digest,
                "projections": {k: {"outputs": v.outputs, "digest": v.digest} for k, v in result.projections.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--why", required=True, help="why the golden digests change")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        digests = golden_digests(Path(tmp))
    digests["why"] = args.why
    DIGESTS.write_text(json.dumps(digests, indent=2, sort_keys=True) + "\n")
    print(json.dumps(digests, indent=2, sort_keys=True))


if __name__ == "__main__":
    main()
