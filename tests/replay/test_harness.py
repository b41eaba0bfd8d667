"""The backtest harness's contracts on a synthetic market: no lookahead, fills only after the decision,
determinism (run id, digest, event-at-a-time = chunked), the run log's content and bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from argus.cli.main import cli
from argus.events.types import EventType
from argus.log import EventLog
from argus.replay.backtest import run_backtest
from argus.replay.settings import BacktestConfig, ExecutionSettings
from argus.strategies.base import Exits, Strategy, Target


@pytest.fixture(scope="module")
def market(tmp_path_factory):
    data = tmp_path_factory.mktemp("market")
    res = CliRunner().invoke(cli, ["--data", str(data), "ingest", "synthetic", "--seed", "3", "--symbols", "SPY,QQQ",
                                   "--days", "4", "--events-per-day", "3000", "--json"])
    assert res.exit_code == 0, res.output
    return data


class Flipper(Strategy):
    """Every 5th bar of a symbol flips it between long and flat (with a stop and a target attached);
    records what it saw so the tests can check the harness."""

    name = "flipper"
    max_trades_per_day = 50.0

    def __init__(self, **params):
        super().__init__(**params)
        self.n: dict[str, int] = {}
        self.seen: list[tuple[int, int, int]] = []  # (bar ts_end, now, offset)
        self.decisions: list[int] = []

    def on_bar(self, ctx, bar):
        self.seen.append((bar.ts_end, ctx.now, ctx.offset))
        assert ctx.closes(bar.symbol)[-1] == bar.close  # the history holds closed bars only, this one last
        self.n[bar.symbol] = self.n.get(bar.symbol, 0) + 1
        if self.n[bar.symbol] % 5:
            return None
        self.decisions.append(ctx.offset)
        units = 0.0 if ctx.position(bar.symbol) else 1.0
        return Target(bar.symbol, units, exits=Exits(stop_loss_pct=0.3, take_profit_pct=0.3))


def run(market, mode="chunk", fill="next_open", runs_dir=None):
    cfg = BacktestConfig(strategy="flipper", symbols=("SPY", "QQQ"), timeframe="5m", qty=10,
                         execution=ExecutionSettings(fill=fill, latency_ms=20, slippage_bps=1,
                                                     commission_per_share=0.005))
    strat = Flipper()
    with EventLog(market / "log", readonly=True) as lg:
        return run_backtest(lg, cfg, strat, mode=mode, runs_dir=runs_dir), strat


@pytest.mark.parametrize("fill", ["next_open", "quote"])
def test_no_lookahead_and_fills_after_the_decision(market, fill):
    res, strat = run(market, fill=fill)
    assert res.fills > 20
    seen = np.array(strat.seen)
    assert (seen[:, 0] <= seen[:, 1]).all()  # a bar reaches the strategy only once it has ended
    assert (np.diff(seen[:, 2]) >= 0).all()  # in log order
    fills = res.tables["fills"]
    decisions = np.array(sorted(strat.decisions))
    entry = fills["reason"] == "target"
    # every target fill is priced from a record after some decision, and after the latest one before it
    for off in fills["offset"][entry]:
        before = decisions[decisions < off]
        assert len(before) and off > before[-1]
    if fill == "quote":
        assert set(fills["source"]) <= {"quote", "trade_through"}
    else:
        assert set(fills["source"]) <= {"bar_open", "bar_stop", "bar_limit"}


def test_same_run_same_id_and_bytes_and_event_mode_equals_chunked(market, tmp_path):
    a, _ = run(market, runs_dir=tmp_path)
    b, _ = run(market, runs_dir=tmp_path)  # the stored run is compared, not replaced
    c, _ = run(market, mode="event")
    assert a.run_id == b.run_id == c.run_id
    assert a.digest == b.digest == c.digest
    assert a.final_equity == c.final_equity
    with EventLog(tmp_path / a.run_id / "log", readonly=True) as lg:
        events = list(lg.events(0))
    assert events[0][1].type == EventType.CONFIG_RECORDED
    cfg = json.loads(events[0][1].data["config_json"])
    assert cfg["config"]["strategy"] == "flipper" and cfg["market"]["to_offset"] > 0
    types = [e.type for _, e in events]
    assert types.count(EventType.FILL) == a.fills
    assert types.count(EventType.ORDER_SUBMITTED) == a.orders
    # positions from the run log's fills: the positions reducer ends where the harness does
    from argus.kernels.positions import PositionReducer

    pr = PositionReducer("positions", b"\0" * 32)
    with EventLog(tmp_path / a.run_id / "log", readonly=True) as lg:
        for chunk in lg.chunks():
            pr.apply_chunk(chunk.body, chunk.first_offset, chunk.start, chunk.stop)
    rows = pr.outputs()[0][1].drain()
    final = {}
    for r in rows:
        final[int(r["instrument_id"])] = float(r["quantity"])
    fills = a.tables["fills"]
    for iid, sym in enumerate(("SPY", "QQQ")):
        assert final.get(iid, 0.0) == pytest.approx(float(fills["quantity"][fills["symbol"] == sym].sum()))


def test_cli_backtest_show_verify_and_bad_input(market):
    base = ["--data", str(market), "backtest"]
    r = CliRunner().invoke(cli, [*base, "--strategy", "sma_cross", "--params", "fast=3,slow=8", "--symbols", "SPY",
                                 "--timeframe", "5m", "--qty", "10", "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert set(out["metrics"]) >= {"sharpe", "sortino", "max_drawdown", "cagr", "win_rate", "profit_factor",
                                   "exposure", "turnover"}
    r2 = CliRunner().invoke(cli, [*base, "verify", out["run_id"][:8], "--json"])
    assert r2.exit_code == 0 and json.loads(r2.output)["ok"] is True
    r3 = CliRunner().invoke(cli, [*base, "show", out["run_id"], "--json"])
    assert json.loads(r3.output)["digest"] == out["digest"]
    bad = CliRunner().invoke(cli, [*base, "--strategy", "sma_cross", "--symbols", "NOPE"])
    assert bad.exit_code == 3 and "'NOPE' is not defined" in bad.output
    bad = CliRunner().invoke(cli, [*base, "--strategy", "sma_cross", "--symbols", "SPY", "--params", "fast=x"])
    assert bad.exit_code == 3 and "parameter fast = 'x': must be of type int" in bad.output
