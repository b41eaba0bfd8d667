"""Rewrite tests/golden/digests.json and options_digests.json, saying why:
`python -m tests.golden.regenerate --why "..."` (a file whose digests did not change is left as it is).

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
from tests.golden.build import (
    CONFIG,
    DIGESTS,
    OPTIONS_CONFIG,
    OPTIONS_DIGESTS,
    build_golden_log,
    build_options_log,
)


def golden_digests(work: Path, build=build_golden_log, config: Path = CONFIG) -> dict:
    log_path = build(work / "log")
    with EventLog.open(log_path, readonly=True) as log:
        result = ProjectionEngine(log, load_config(config)).replay()
        return {"chain_head": log.chain_head().hex(), "events": log.head(), "config_hash": result.config_hash,
                "state_digest": result.state_digest, "outputs_digest": result.outputs_digest,
                "projections": {k: {"outputs": v.outputs, "digest": v.digest} for k, v in result.projections.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--why", required=True, help="why the golden digests change")
    args = parser.parse_args()
    for path, build, config in ((DIGESTS, build_golden_log, CONFIG),
                                (OPTIONS_DIGESTS, build_options_log, OPTIONS_CONFIG)):
        with tempfile.TemporaryDirectory() as tmp:
            digests = golden_digests(Path(tmp), build, config)
        old = json.loads(path.read_text()) if path.is_file() else {}
        if {k: v for k, v in old.items() if k != "why"} == digests:
            print(f"{path.name}: unchanged")  # keep the file, and the reason it last changed
            continue
        digests["why"] = args.why
        path.write_text(json.dumps(digests, indent=2, sort_keys=True) + "\n")
        print(f"{path.name}:", json.dumps(digests, indent=2, sort_keys=True))


if __name__ == "__main__":
    main()
