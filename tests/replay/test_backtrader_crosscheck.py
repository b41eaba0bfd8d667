"""`sma_cross` against backtrader (the oracle) on the real ORCL daily file (issue #8 item 8).

Both sides: fast 10, slow 30, long-only, 100 shares, orders decided at the close and filled at the next
bar's open, commission 0.1% of traded value, cash 100,000; without slippage and with 5 bps. backtrader's
Yahoo CSV feed would adjust prices to Adj Close and round them, and its slippage would be clipped to the
bar's range: all three are switched off so both simulate the same market."""

from __future__ import annotations

import datetime as dt

import pytest
from click.testing import CliRunner

from argus.cli.main import cli
from argus.log import EventLog
from argus.replay.backtest import run_backtest
from argus.replay.settings import BacktestConfig, ExecutionSettings
from argus.strategies.registry import default_registry

bt = pytest.importorskip("backtrader")

ORCL = "backtrader__orcl-1995-2014.txt"


@pytest.fixture(scope="module")
def orcl_log(tmp_path_factory, request):
    from tests.conftest import SHARED_DATA

    path = SHARED_DATA / ORCL
    if not path.exists():
        pytest.skip(f"{path} is absent")
    data = tmp_path_factory.mktemp("orcl")
    res = CliRunner().invoke(cli, ["--data", str(data), "ingest", "csv", str(path), "--symbol", "ORCL",
                                   "--timeframe", "1d", "--json"])
    assert res.exit_code == 0, res.stderr
    return data / "log", path


def backtrader_run(path, slippage_bps: float):
    class SmaCross(bt.Strategy):
        def __init__(self):
            self.cross = bt.ind.CrossOver(bt.ind.SMA(period=10), bt.ind.SMA(period=30))
            self.fills = []

        def next(self):
            if not self.position:
                if self.cross > 0:
                    self.buy(size=100)
            elif self.cross < 0:
                self.close()

        def notify_order(self, order):
            if order.status == order.Completed:
                self.fills.append((bt.num2date(order.executed.dt).date(), order.executed.price, order.executed.size))

    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(bt.feeds.YahooFinanceCSVData(dataname=str(path), adjclose=False, round=False))
    cerebro.addstrategy(SmaCross)
    cerebro.broker.setcash(100_000.0)
    cerebro.broker.setcommission(commission=0.001)
    if slippage_bps:
        cerebro.broker.set_slippage_perc(slippage_bps / 1e4, slip_open=True, slip_limit=True, slip_match=True,
                                         slip_out=True)
    strat = cerebro.run()[0]
    return strat.fills, cerebro.broker.getvalue()


@pytest.mark.parametrize("slippage_bps", [0.0, 5.0])
def test_sma_cross_matches_backtrader(orcl_log, slippage_bps):
    log_path, csv_path = orcl_log
    expected_fills, expected_value = backtrader_run(csv_path, slippage_bps)
    cfg = BacktestConfig(strategy="sma_cross", symbols=("ORCL",), params={"fast": 10, "slow": 30}, timeframe="1d",
                         qty=100, cash=100_000.0,
                         execution=ExecutionSettings(commission_rate=0.001, slippage_bps=slippage_bps))
    with EventLog(log_path, readonly=True) as log:
        res = run_backtest(log, cfg, default_registry().create("sma_cross", cfg.params))
    fills = res.tables["fills"]
    # A daily bar of day D opens at D 00:00 UTC in the log (it ends at D+1 00:00, its ts_event).
    got = [(dt.datetime.fromtimestamp(int(t) / 1e9, tz=dt.UTC).date(), float(p), float(q))
           for t, p, q in zip(fills["ts"], fills["price"], fills["quantity"], strict=True)]
    assert len(expected_fills) > 150  # ~97 round trips over 20 years: the comparison has teeth
    assert [f[0] for f in got] == [f[0] for f in expected_fills]
    assert [f[2] for f in got] == [float(f[2]) for f in expected_fills]
    for (_, p, _), (_, q, _) in zip(got, expected_fills, strict=True):
        assert p == pytest.approx(q, abs=1e-9)
    assert res.final_equity == pytest.approx(expected_value, abs=1e-6)
    # The trades table: round trips alternate buy/sell fills, net P&L adds up to the equity change.
    trades = res.tables["trades"]
    assert sum(trades["pnl"]) == pytest.approx(res.final_equity - 100_000.0, abs=1e-6)
