"""`argusctl regimes fit-hmm`: the fitted parameters are recorded in the log and used from there on."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from click.testing import CliRunner

from argus.analytics.hmm import from_json
from argus.cli.main import cli
from argus.connectors.synthetic import SyntheticConfig, write_synthetic_market
from argus.events.types import EventType
from argus.log import EventLog
from argus.projections.config import load_config
from argus.projections.engine import ProjectionEngine
from argus.projections.store import DerivedStore


def test_fit_hmm_records_parameters_that_replays_use_only_after_their_offset(tmp_path: Path) -> None:
    log_dir = tmp_path / "log"
    with EventLog.open(log_dir) as log:
        write_synthetic_market(log, SyntheticConfig(seed=3, symbols=("SPY",), start=dt.date(2024, 3, 4), days=2,
                                                    events_per_day=4000))
    res = CliRunner().invoke(cli, ["--data", str(tmp_path), "regimes", "fit-hmm", "--symbol", "SPY",
                                   "--timeframe", "5m", "--json"])
    assert res.exit_code == 0, res.output
    fit = json.loads(res.output)
    params = from_json(json.dumps(fit["params"]))
    assert list(params.variances) == sorted(params.variances)  # states ordered by variance
    with EventLog.open(log_dir) as log:
        recorded = next(e for off, e in log.events(fit["offset"], 1))
        assert recorded.type == EventType.CONFIG_RECORDED and recorded.data["name"] == "hmm"
        write_synthetic_market(log, SyntheticConfig(seed=4, symbols=("SPY",), start=dt.date(2024, 3, 6), days=1,
                                                    events_per_day=4000))
    config = load_config({"bars": ["5m"]})
    with EventLog.open(log_dir, readonly=True) as log:
        engine = ProjectionEngine(log, config)
        engine.store = DerivedStore.for_config(tmp_path, config.config_hash, engine.projections.output_names())
        result = engine.replay()
        rows = engine.store.rows("hmm", dict(engine.projections.hmm.outputs())["hmm"].dtype)
        assert [off for off, _ in engine.projections.hmm.params_sets()] == [fit["offset"]]
        engine.store.close()
    assert len(rows) == result.projections["hmm"].outputs > 0
    # Rows come only from bars closed after the parameters were recorded, and name that offset.
    assert (rows["offset"] > fit["offset"]).all()
    assert (rows["params_offset"] == fit["offset"]).all()
