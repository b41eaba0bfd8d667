"""The backtest fast path (argus.replay.fast) against the general harness (run_backtest(fast=False)):
the same numbers, tables and run-log digest for sma_cross through its numpy batch callback and its
built-in Cython kernel, on synthetic multi-instrument logs (with rejections by buying power and by the
trades-per-day cap, shorts, multipliers, costs) and on the real ORCL file; independent of block size."""

from __future__ import annotations

import numpy as np
import pytest

from argus.events import codec
from argus.events.types import EventType
from argus.log import EventLog
from argus.log.store import instrument_event
from argus.replay import fast
from argus.replay.backtest import run_backtest
from argus.replay.settings import BacktestConfig, ExecutionSettings
from argus.strategies.base import Strategy, Target
from argus.strategies.sma_cross import SmaCross

DAY = 86_400 * 10**9
T0 = 1_704_153_600 * 10**9  # 2024-01-02 00:00 UTC


def write_bar_log(path, n_instruments: int, n_bars: int, *, seed: int = 1, interval: int = DAY,
                  multipliers: dict[int, float] | None = None) -> list[str]:
    """A log of `n_instruments` instruments with provider Bar events (a seeded random walk in cents),
    one bar per instrument per interval, interleaved in time."""
    rng = np.random.default_rng(seed)
    symbols = [f"S{k:03d}" for k in range(n_instruments)]
    steps = rng.normal(0.0, 0.02, size=(n_bars, n_instruments))
    close = np.round(50.0 * np.exp(np.cumsum(steps, axis=0)) + 10.0, 2)
    prev = np.vstack([close[:1], close[:-1]])
    open_ = np.round(prev * np.exp(rng.normal(0.0, 0.005, size=close.shape)), 2)
    high = np.round(np.maximum(open_, close) * (1 + np.abs(rng.normal(0, 0.01, size=close.shape))), 2)
    low = np.round(np.minimum(open_, close) * (1 - np.abs(rng.normal(0, 0.01, size=close.shape))), 2)
    ts = T0 + (np.arange(n_bars)[:, None] + 1) * interval + np.zeros((1, n_instruments), np.int64)
    iid = np.broadcast_to(np.arange(n_instruments, dtype=np.uint32), close.shape)
    recs = codec.encode_columns(EventType.BAR, iid.reshape(-1), ts.reshape(-1), ts.reshape(-1),
                                open=open_.reshape(-1), high=high.reshape(-1), low=low.reshape(-1),
                                close=close.reshape(-1), volume=1000.0, interval_ns=interval)
    with EventLog(path, durability="fast") as log:
        log.append([instrument_event(k, s, multiplier=(multipliers or {}).get(k, 1.0))
                    for k, s in enumerate(symbols)])
        step = 20_000
        for lo in range(0, len(recs), step):
            log.append(recs[lo:lo + step])
    return symbols


def assert_same_run(a, b) -> None:
    """Two BacktestResults are the same run: digest, counts, numbers and every table, to the bit."""
    assert a.digest == b.digest
    assert a.run_id == b.run_id
    for k in ("config_hash", "events", "bars", "trades", "orders", "rejected", "fills", "final_equity",
              "total_commission"):
        assert getattr(a, k) == getattr(b, k), k
    assert a.metrics == b.metrics
    for table in ("trades", "fills", "equity"):
        ta, tb = a.tables[table], b.tables[table]
        assert set(ta) == set(tb), table
        for col in ta:
            x, y = np.asarray(ta[col]), np.asarray(tb[col])
            assert x.shape == y.shape, (table, col)
            if x.dtype.kind == "f":
                np.testing.assert_array_equal(x, y, err_msg=f"{table}.{col}")
            else:
                assert x.tolist() == y.tolist(), (table, col)


@pytest.fixture(scope="module")
def daily(tmp_path_factory):
    path = tmp_path_factory.mktemp("fast") / "log"
    return path, write_bar_log(path, 6, 400, seed=3, multipliers={2: 2.0})


@pytest.fixture(scope="module")
def minutes(tmp_path_factory):
    path = tmp_path_factory.mktemp("fast_min") / "log"
    return path, write_bar_log(path, 3, 3000, seed=5, interval=60 * 10**9)


def _run(path, cfg, strategy_factory, **kw):
    with EventLog(path, readonly=True) as log:
        if kw.pop("general", False):
            return run_backtest(log, cfg, strategy_factory(), fast=False)
        return fast.run_fast(log, cfg, strategy_factory(), **kw)


CASES = {
    "costs": dict(params={"fast": 5, "slow": 20}, qty=10, cash=1_000_000.0,
                  execution=ExecutionSettings(commission_rate=0.001, slippage_bps=5.0, slippage_ticks=1.0,
                                              commission_per_share=0.005, commission_min=1.0, fee_per_order=0.25)),
    "buying_power": dict(params={"fast": 3, "slow": 10}, qty=40, cash=6_000.0,
                         execution=ExecutionSettings(commission_rate=0.0005, slippage_bps=2.0)),
    "short": dict(params={"fast": 4, "slow": 15, "allow_short": True}, qty=3, cash=50_000.0, leverage=2.0,
                  execution=ExecutionSettings(commission_rate=0.001, cost_multiplier=2.0)),
}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("engine", ["python", "builtin"])
def test_fast_path_equals_general_path_on_synthetic_bars(daily, case, engine):
    path, symbols = daily
    c = CASES[case]
    cfg = BacktestConfig(strategy="sma_cross", symbols=tuple(symbols), timeframe="1d", **c)
    general = _run(path, cfg, lambda: SmaCross(**c["params"]), general=True)
    quick = _run(path, cfg, lambda: SmaCross(**c["params"]), engine=engine)
    assert general.fills > 50
    if case == "buying_power":
        assert general.rejected > 0
    assert_same_run(general, quick)


def test_trades_per_day_cap_is_enforced_alike(minutes):
    path, symbols = minutes
    cfg = BacktestConfig(strategy="sma_cross", symbols=tuple(symbols), timeframe="1m", qty=1, params={"fast": 2,
                         "slow": 4}, execution=ExecutionSettings(slippage_bps=1.0))
    general = _run(path, cfg, lambda: SmaCross(fast=2, slow=4), general=True)
    assert general.rejected > 0  # more than 2 x max_trades_per_day entries a day were asked for
    for engine in ("python", "builtin"):
        assert_same_run(general, _run(path, cfg, lambda: SmaCross(fast=2, slow=4), engine=engine))


@pytest.mark.parametrize("block", [1, 7, 1000])
def test_block_size_does_not_change_the_run(daily, block):
    path, symbols = daily
    c = CASES["costs"]
    cfg = BacktestConfig(strategy="sma_cross", symbols=tuple(symbols), timeframe="1d", **c)
    whole = _run(path, cfg, lambda: SmaCross(**c["params"]), engine="python")
    assert whole is not None and whole.fills > 10  # a run with trades: the comparison has teeth
    for engine in ("python", "builtin"):
        assert_same_run(whole, _run(path, cfg, lambda: SmaCross(**c["params"]), engine=engine, max_block=block))
    assert_same_run(whole, _run(path, cfg, lambda: SmaCross(**c["params"]), engine="builtin", mode="event"))


def test_run_backtest_takes_the_fast_path_and_a_subset_of_symbols(daily):
    path, symbols = daily
    cfg = BacktestConfig(strategy="sma_cross", symbols=(symbols[4], symbols[1]), timeframe="1d", qty=5,
                         execution=ExecutionSettings(commission_rate=0.001))
    assert fast.eligible(cfg, SmaCross())
    with EventLog(path, readonly=True) as log:
        default = run_backtest(log, cfg, SmaCross())
        general = run_backtest(log, cfg, SmaCross(), fast=False)
    assert_same_run(general, default)


def test_ineligible_runs_are_recognised():
    cfg = BacktestConfig(strategy="sma_cross", symbols=("A",))
    assert fast.eligible(cfg, SmaCross())
    assert not fast.eligible(BacktestConfig(strategy="sma_cross", symbols=("A",), sizing="vol_target"), SmaCross())
    assert not fast.eligible(BacktestConfig(strategy="sma_cross", symbols=("A",),
                                            execution=ExecutionSettings(fill="quote")), SmaCross())

    class PerBar(Strategy):
        name = "per_bar"

    class WithFills(SmaCross):
        def on_fill(self, ctx, fill):
            return None

    assert not fast.eligible(cfg, PerBar())
    assert not fast.eligible(cfg, WithFills())
    with pytest.raises(ValueError, match="engine"):
        fast.eligible(cfg, SmaCross(), engine="gpu")


def test_run_log_is_written_and_rerun_to_the_same_bytes(daily, tmp_path):
    path, symbols = daily
    cfg = BacktestConfig(strategy="sma_cross", symbols=tuple(symbols), timeframe="1d", qty=5)
    with EventLog(path, readonly=True) as log:
        a = fast.run_fast(log, cfg, SmaCross(), runs_dir=tmp_path)
        b = run_backtest(log, cfg, SmaCross(), runs_dir=tmp_path, fast=False)  # same id, checked digest
    assert a.run_dir == b.run_dir and a.digest == b.digest


def test_fast_path_equals_general_path_on_orcl(tmp_path):
    from click.testing import CliRunner

    from argus.cli.main import cli
    from tests.conftest import SHARED_DATA

    src = SHARED_DATA / "backtrader__orcl-1995-2014.txt"
    if not src.exists():
        pytest.skip(f"{src} is absent")
    res = CliRunner().invoke(cli, ["--data", str(tmp_path), "ingest", "csv", str(src), "--symbol", "ORCL",
                                   "--timeframe", "1d", "--json"])
    assert res.exit_code == 0, res.stderr
    for bps in (0.0, 5.0):
        cfg = BacktestConfig(strategy="sma_cross", symbols=("ORCL",), params={"fast": 10, "slow": 30}, qty=100,
                             execution=ExecutionSettings(commission_rate=0.001, slippage_bps=bps))
        general = _run(tmp_path / "log", cfg, lambda: SmaCross(fast=10, slow=30), general=True)
        assert general.fills > 150
        for engine in ("python", "builtin"):
            assert_same_run(general, _run(tmp_path / "log", cfg, lambda: SmaCross(fast=10, slow=30), engine=engine))


def test_kernel_refuses_a_bad_bar_with_the_simulators_error(tmp_path):
    from argus.kernels.bar_sim import STATUS_BAD_BAR, BarSim

    sim = BarSim(1, np.ones(1), cash=1e5, qty=1, slippage_bps=0, slippage_ticks=0, tick_size=0.01,
                 commission_rate=0, commission_per_share=0, commission_min=0, fee_per_order=0, cost_multiplier=1,
                 leverage=1, max_trades_per_day=1, neumaier=False)
    one, f, i64 = np.ones(1), (lambda: np.empty(1)), (lambda: np.empty(1, np.int64))
    res = sim.run(np.zeros(1, np.int32), np.zeros(1, np.int64), np.ones(1, np.int64), one, one, 2 * one, one,
                  np.full(1, np.nan), f(), f(), f(), i64(), i64(), f(), f(), f(), f(), i64(), i64(), f(),
                  np.empty(1, np.int8), f(), f())
    assert res[2] == STATUS_BAD_BAR and res[3] == 0


def test_new_york_days_match_the_harness_day_by_day():
    import datetime as dt

    from argus.replay.backtest import _NEW_YORK, _ny_day

    rng = np.random.default_rng(2)
    # New York midnights around DST changes and ordinary days, 1995..2030, and instants a few ns / us / s
    # either side (where ts / 1e9 rounds across midnight), plus random instants.
    days = [dt.date(1995, 1, 3) + dt.timedelta(days=int(k)) for k in rng.integers(0, 13_000, 300)]
    days += [dt.date(2024, 3, 10), dt.date(2024, 3, 11), dt.date(2024, 11, 3), dt.date(2024, 11, 4)]
    mid = np.array([int(dt.datetime(d.year, d.month, d.day, tzinfo=_NEW_YORK).timestamp()) * 10**9 for d in days])
    near = (mid[:, None] + np.array([-10**9, -1000, -501, -500, -499, -1, 0, 1, 499, 500, 501, 1000])).reshape(-1)
    ts = np.concatenate([near, rng.integers(790_000_000 * 10**9, 1_900_000_000 * 10**9, 2000)])
    got = fast.NyDays()(ts)
    assert got.tolist() == [_ny_day(int(t)).toordinal() for t in ts]


def test_new_york_midnights_across_dst_changes_in_any_window():
    import datetime as dt

    from argus.replay.backtest import _NEW_YORK

    days = fast.NyDays()
    for lo in (dt.date(2024, 3, 1), dt.date(2024, 3, 20), dt.date(2023, 10, 15)):
        for span in (1, 9, 12, 40, 400):
            o = lo.toordinal()
            got = days._midnights(o, o + span)
            want = [int(dt.datetime.combine(dt.date.fromordinal(o + k), dt.time(), tzinfo=_NEW_YORK).timestamp())
                    * 1_000_000 for k in range(span)]
            assert got.tolist() == want, (lo, span)


def _sum312(items, start=0):
    """CPython >= 3.12's builtin sum() over floats (Neumaier's compensated summation), in Python."""
    import math

    it = iter(items)
    result = start
    for x in it:
        if not isinstance(x, float):
            result = result + x
            continue
        f, c = result + x, 0.0
        for y in it:
            t = f + y
            c += (f - t) + y if abs(f) >= abs(y) else (y - t) + f
            f = t
        return f + c if c and math.isfinite(c) else f
    return result


def test_the_kernel_follows_python_312_sum_when_asked(daily, monkeypatch):
    """Whatever builtin sum() the harness runs under, the kernel repeats it: here the general path runs
    with 3.12's compensated sum() and the kernel with its Neumaier mode."""
    import argus.replay.backtest as backtest_mod
    import argus.replay.context as context_mod

    path, symbols = daily
    c = CASES["short"]
    cfg = BacktestConfig(strategy="sma_cross", symbols=tuple(symbols), timeframe="1d", **c)
    monkeypatch.setattr(backtest_mod, "sum", _sum312, raising=False)
    monkeypatch.setattr(context_mod, "sum", _sum312, raising=False)
    monkeypatch.setattr(fast, "NEUMAIER_SUM", True)
    general = _run(path, cfg, lambda: SmaCross(**c["params"]), general=True)
    assert general.fills > 10
    assert_same_run(general, _run(path, cfg, lambda: SmaCross(**c["params"]), engine="builtin"))


@pytest.mark.parametrize("seed", range(6))
def test_random_configurations_agree(daily, seed):
    """Random windows, costs, sizes, leverage and windows lengths: the fast path is the general path."""
    path, symbols = daily
    rng = np.random.default_rng(seed)
    fast_n = int(rng.integers(1, 8))
    params = {"fast": fast_n, "slow": fast_n + int(rng.integers(1, 25)), "allow_short": bool(rng.integers(0, 2))}
    picked = tuple(str(s) for s in rng.choice(symbols, size=int(rng.integers(1, len(symbols) + 1)), replace=False))
    window = {}
    if rng.random() < 0.5:
        window = {"from_ts": T0 + int(rng.integers(0, 100)) * DAY, "to_ts": T0 + int(rng.integers(200, 420)) * DAY}
    elif rng.random() < 0.5:
        window = {"from_offset": int(rng.integers(0, 300)), "to_offset": int(rng.integers(1200, 2500))}
    cfg = BacktestConfig(
        strategy="sma_cross", symbols=picked, timeframe="1d", params=params, qty=float(rng.integers(1, 60)),
        cash=float(rng.choice([2_000.0, 20_000.0, 1e6])), leverage=float(rng.choice([0.5, 1.0, 3.0])), **window,
        execution=ExecutionSettings(commission_rate=float(rng.choice([0.0, 0.001])),
                                    slippage_bps=float(rng.choice([0.0, 3.0])),
                                    slippage_ticks=float(rng.choice([0.0, 2.0])),
                                    commission_min=float(rng.choice([0.0, 1.5])),
                                    cost_multiplier=float(rng.choice([1.0, 2.5]))))
    general = _run(path, cfg, lambda: SmaCross(**params), general=True)
    assert general.bars > 0 and general.fills + general.rejected <= general.orders  # no fill without an order
    for engine in ("python", "builtin"):
        fast_run = _run(path, cfg, lambda: SmaCross(**params), engine=engine, max_block=int(rng.integers(1, 500)))
        assert fast_run is not None, "the kernel handed the run back to the general path"
        assert_same_run(general, fast_run)


def test_a_run_the_kernel_cannot_express_falls_back_to_the_general_path(daily):
    """A target of infinite units is the simulator's to refuse: the kernel hands the run back (None) and
    run_backtest runs the general path, with the same result as asking for it."""
    path, symbols = daily

    class Infinite(Strategy):
        name = "infinite"

        def on_bar(self, ctx, bar):
            return Target(bar.symbol, np.inf) if bar.offset == 100 else None

        def on_bars(self, ctx, block):
            return np.where(np.asarray(block.offset) == 100, np.inf, np.nan)

    cfg = BacktestConfig(strategy="infinite", symbols=tuple(symbols), timeframe="1d")
    with EventLog(path, readonly=True) as log:
        assert fast.eligible(cfg, Infinite())
        assert fast.run_fast(log, cfg, Infinite()) is None
        res = run_backtest(log, cfg, Infinite())
        assert_same_run(run_backtest(log, cfg, Infinite(), fast=False), res)
    assert res.rejected == 1
