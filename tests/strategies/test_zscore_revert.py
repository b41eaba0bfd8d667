"""`zscore_revert` on hand-made logs of hourly provider bars (timeframe 1h: each provider bar is one
closed bar, at its own offset). Every z below is worked out by hand with the population std over
`lookback` closes, the current one included; a window of three equal values and one different last
value always has z = ±√3 = ±1.732 (dev 3d/4, std √3·d/4), and one whose different value is not the
last gives the last value z = ∓1/√3 = ∓0.577. Orders decided at bar k fill at bar k+1's open."""

from __future__ import annotations

import math

import numpy as np
import pytest

from argus.strategies.registry import FAMILIES, default_registry
from argus.strategies.zscore_revert import ZScoreRevert, next_side, ols_beta, zscore
from tests.strategies.logs import HOUR, S, backtest, fills, write_bars

T0 = 1_704_700_800 * S  # 2024-01-08 08:00 UTC


def test_zscore_matches_the_hand_computed_population_z():
    assert zscore([100, 100, 100, 104]) == pytest.approx(math.sqrt(3))
    assert zscore([100, 100, 104, 100]) == pytest.approx(-1 / math.sqrt(3))
    # [100, 104, 100, 94]: mean 99.5, var (0.25 + 20.25 + 0.25 + 30.25) / 4 = 12.75, z = -5.5 / √12.75
    assert zscore([100, 104, 100, 94]) == pytest.approx(-5.5 / math.sqrt(12.75))
    assert math.isnan(zscore([5.0, 5.0, 5.0]))


def test_single_instrument_goes_short_above_entry_z_then_long_below_minus_entry_z(tmp_path):
    # lookback 4, entry 1.5, exit 0.5; commission 0.1% of traded value, 10 shares a unit.
    #   bar 3: [100, 100, 100, 104] z = +1.732 > 1.5  -> short; fills at bar 4's open 103 (sell 10)
    #   bar 4: [100, 100, 104, 100] z = -0.577 <= 0.5 -> exit; fills at bar 5's open 101 (buy 10)
    #   bar 5: [100, 104, 100, 94]  z = -5.5/√12.75 = -1.540 < -1.5 -> long; bar 6's open 95 (buy 10)
    #   bar 6: [104, 100, 94, 99]   mean 99.25, z = -0.25/√12.6875 = -0.070 >= -0.5 -> exit; bar 7's open 98
    closes = [100, 100, 100, 104, 100, 94, 99, 99]
    opens = [100, 100, 100, 100, 103, 101, 95, 98]
    write_bars(tmp_path / "log", T0, HOUR, {"AAA": list(zip(opens, closes, strict=True))})
    res = backtest(tmp_path / "log", "zscore_revert", ("AAA",), {"lookback": 4, "entry_z": 1.5, "exit_z": 0.5},
                   commission_rate=0.001)
    got = fills(res)
    assert got == [("AAA", -10.0, 103.0), ("AAA", 10.0, 101.0), ("AAA", 10.0, 95.0), ("AAA", -10.0, 98.0)]
    positions = np.cumsum([q for _, q, _ in got]).tolist()
    assert positions == [-10.0, 0.0, 10.0, 0.0]  # a short, flat, a long, flat
    trades = res.tables["trades"]
    assert trades["side"].tolist() == [-1, 1]
    # short: (103 - 101) x 10 = 20, commissions 1.03 + 1.01; long: (98 - 95) x 10 = 30, 0.95 + 0.98
    assert trades["pnl"].tolist() == pytest.approx([20 - 2.04, 30 - 1.93])
    assert res.total_commission == pytest.approx(3.97)
    assert res.final_equity == pytest.approx(100_000 + 50 - 3.97)


def test_a_long_whose_z_overshoots_past_entry_z_reverses_to_short_in_one_order(tmp_path):
    #   bar 3: [100, 100, 100, 96] z = -1.732 -> long; fills at bar 4's open 97 (buy 10)
    #   bar 4: [100, 100, 96, 106] mean 100.5, z = 5.5/√12.75 = +1.540 > 1.5 -> short: sell 20 at bar 5's open 105
    #   bar 5: [100, 96, 106, 100] z = -0.5/√12.75 = -0.140 <= 0.5 -> exit: buy 10 at bar 6's open 101
    closes = [100, 100, 100, 96, 106, 100, 100]
    opens = [100, 100, 100, 100, 97, 105, 101]
    write_bars(tmp_path / "log", T0, HOUR, {"AAA": list(zip(opens, closes, strict=True))})
    res = backtest(tmp_path / "log", "zscore_revert", ("AAA",), {"lookback": 4, "entry_z": 1.5, "exit_z": 0.5})
    assert fills(res) == [("AAA", 10.0, 97.0), ("AAA", -20.0, 105.0), ("AAA", 10.0, 101.0)]
    # long 97 -> 105: +80; short 105 -> 101: +40
    assert res.tables["trades"]["pnl"].tolist() == pytest.approx([80.0, 40.0])
    assert res.final_equity == pytest.approx(100_120.0)


def test_pair_with_fixed_beta_shorts_the_spread_with_a_value_hedged_leg(tmp_path):
    # spread = log A - 1·log B with B = 50 throughout, so its z is that of log A:
    #   bar 3: log A window [l100, l100, l100, l110] z = +1.732 > 1.5 -> short the spread:
    #          A -1 unit (sell 10), B +β·A/B = 110/50 = 2.2 units (buy 22); evaluated at B's bar 3 (the
    #          second leg to close), both fill at their bar 4 opens: A 108, B 50
    #   bar 4: [l100, l100, l110, l100] z = -0.577 -> exit both at bar 5's opens: A 103, B 50
    a = list(zip([100, 100, 100, 100, 108, 103], [100, 100, 100, 110, 100, 100], strict=True))
    b = [(50.0, 50.0)] * 6
    write_bars(tmp_path / "log", T0, HOUR, {"AAA": a, "BBB": b})
    res = backtest(tmp_path / "log", "zscore_revert", ("BBB", "AAA"),
                   {"lookback": 4, "entry_z": 1.5, "exit_z": 0.5, "pair": True, "beta": 1.0})
    got = fills(res)
    assert [(s, round(q, 9), p) for s, q, p in got] == [
        ("AAA", -10.0, 108.0), ("BBB", 22.0, 50.0), ("AAA", 10.0, 103.0), ("BBB", -22.0, 50.0)]
    assert res.final_equity == pytest.approx(100_050.0)  # A's short: (108 - 103) x 10; B flat in price


def test_pair_with_one_symbol_is_refused_naming_pair(tmp_path):
    write_bars(tmp_path / "log", T0, HOUR, {"AAA": [(100.0, 100.0)] * 3})
    with pytest.raises(ValueError, match="parameter pair"):
        backtest(tmp_path / "log", "zscore_revert", ("AAA",), {"pair": True})


def test_ols_beta_and_the_pair_z_agree_with_numpy():
    rng = np.random.default_rng(3)
    b = np.log(50 + np.cumsum(rng.normal(size=30)))
    a = 0.2 + 1.7 * b + rng.normal(scale=0.01, size=30)
    slope, intercept = np.polyfit(b, a, 1)
    assert ols_beta(a.tolist(), b.tolist()) == pytest.approx(slope, rel=1e-9)
    resid = a - slope * b - intercept
    spread = (a - slope * b).tolist()
    assert zscore(spread) == pytest.approx(resid[-1] / resid.std(), rel=1e-7)
    assert math.isnan(ols_beta([1.0, 2.0], [3.0, 3.0]))


@pytest.mark.parametrize("side, z, cooldown, expected", [
    (0, 2.5, False, (-1, False)),    # short above entry
    (0, -2.5, False, (1, False)),    # long below -entry
    (0, 1.9, False, (0, False)),     # inside the band: nothing
    (0, 3.5, False, (0, False)),     # past the stop: no entry into a position already stopped out
    (1, -1.0, False, (1, False)),    # long, not yet back within exit_z
    (1, -0.4, False, (0, False)),    # long, back within exit_z: exit
    (1, 2.5, False, (-1, False)),    # long overshoots through the mean past entry: reverse
    (1, -3.2, False, (0, True)),     # long past -stop_z: stop, cool down
    (-1, 3.2, False, (0, True)),     # short past +stop_z: stop
    (-1, 0.4, False, (0, False)),    # short back within exit_z: exit
    (0, -2.5, True, (0, True)),      # cooling down after a stop: no re-entry while |z| > entry_z
    (0, -1.5, True, (0, False)),     # |z| back to <= entry_z: the cool-down ends
])
def test_next_side_rules(side, z, cooldown, expected):
    new, _, cool = next_side(side, z, entry_z=2.0, exit_z=0.5, stop_z=3.0, cooldown=cooldown)
    assert (new, cool) == expected


@pytest.mark.parametrize("params, name", [
    ({"exit_z": 2.5, "entry_z": 2.0}, "exit_z"),
    ({"stop_z": 1.5, "entry_z": 2.0}, "stop_z"),
    ({"lookback": 2}, "lookback"),
    ({"lookback": "x"}, "lookback"),
    ({"entry_z": -1.0}, "entry_z"),
    ({"beta": 11.0}, "beta"),
    ({"pair": "maybe"}, "pair"),
    ({"window": 5}, "window"),
])
def test_parameter_errors_name_the_parameter(params, name):
    with pytest.raises(ValueError, match=f"parameter {name}"):
        default_registry().create("zscore_revert", params)


def test_registry_accepts_it_in_the_mean_reversion_family():
    reg = default_registry()
    cls = reg.get("zscore_revert")
    assert cls is ZScoreRevert and cls.family == "mean_reversion"
    assert len(cls.params) <= FAMILIES["mean_reversion"].max_params
    s = reg.create("zscore_revert", {"lookback": "30", "pair": "true", "beta": "0"})
    assert s.p == {"lookback": 30, "entry_z": 2.0, "exit_z": 0.5, "stop_z": 0.0, "pair": True, "beta": 0.0}


def test_pair_with_rolling_ols_beta_trades_and_event_mode_gives_the_same_run(tmp_path):
    # B a slow zigzag, A = B^1.5 times a wiggle: the OLS beta is near 1.5 and the residual swings enough to
    # cross ±1.2 and 0.3; the point is the same bytes chunked or event at a time, and both legs trading.
    n = 60
    b = [50 + 5 * math.sin(k / 4) for k in range(n)]
    a = [bk ** 1.5 / 10 * (1 + 0.01 * math.sin(k * 1.7)) for k, bk in enumerate(b)]
    write_bars(tmp_path / "log", T0, HOUR, {"AAA": [(x, x) for x in a], "BBB": [(x, x) for x in b]})
    params = {"lookback": 10, "entry_z": 1.2, "exit_z": 0.3, "pair": True}
    chunked = backtest(tmp_path / "log", "zscore_revert", ("AAA", "BBB"), params)
    event = backtest(tmp_path / "log", "zscore_revert", ("AAA", "BBB"), params, mode="event")
    assert (event.run_id, event.digest) == (chunked.run_id, chunked.digest)
    got = fills(chunked)
    assert {s for s, _, _ in got} == {"AAA", "BBB"} and len(got) >= 4
    for (sa, qa, _), (sb, qb, _) in zip(got[::2], got[1::2], strict=True):  # legs in opposite directions
        assert (sa, sb) == ("AAA", "BBB") and qa * qb < 0
