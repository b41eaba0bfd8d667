"""run_many: one replay pass for many strategy instances gives each the result it gets alone."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from argus.cli.main import cli
from argus.log import EventLog
from argus.replay.backtest import run_backtest
from argus.replay.fanout import run_many
from argus.replay.settings import BacktestConfig, ExecutionSettings
from argus.strategies.registry import default_registry


@pytest.fixture(scope="module")
def market(tmp_path_factory):
    data = tmp_path_factory.mktemp("fanout")
    res = CliRunner().invoke(cli, ["--data", str(data), "ingest", "synthetic", "--seed", "5", "--symbols",
                                   "SPY,QQQ,EWJ,EWG,USD/JPY", "--days", "4", "--events-per-day", "2000", "--json"])
    assert res.exit_code == 0, res.output
    return data / "log"


CASES = [("sma_cross", {"fast": 3, "slow": 8}), ("sma_cross", {"fast": 5, "slow": 13, "allow_short": True}),
         ("zscore_revert", {"lookback": 10, "entry_z": 1.5}), ("overnight_session", {})]


def test_one_pass_equals_separate_runs(market):
    reg = default_registry()
    ex = ExecutionSettings(slippage_bps=2, commission_per_share=0.005)
    cfgs = [BacktestConfig(strategy=name, symbols=("SPY", "QQQ"), params=reg.create(name, p).p, timeframe="5m",
                           qty=10, execution=ex) for name, p in CASES]
    with EventLog(market, readonly=True) as lg:
        together = run_many(lg, cfgs, [reg.create(c.strategy, c.params) for c in cfgs])
        alone = [run_backtest(lg, c, reg.create(c.strategy, c.params)) for c in cfgs]
    assert [r.fills for r in together] == [r.fills for r in alone]
    assert any(r.fills for r in together)
    for a, b in zip(together, alone, strict=True):
        assert (a.run_id, a.digest, a.final_equity, a.metrics) == (b.run_id, b.digest, b.final_equity, b.metrics)


def test_runs_of_one_pass_must_share_the_window(market):
    reg = default_registry()
    a = BacktestConfig(strategy="sma_cross", symbols=("SPY",), timeframe="5m")
    b = BacktestConfig(strategy="sma_cross", symbols=("SPY",), timeframe="1m")
    with EventLog(market, readonly=True) as lg, pytest.raises(ValueError, match="timeframe"):
        run_many(lg, [a, b], [reg.create("sma_cross"), reg.create("sma_cross")])
