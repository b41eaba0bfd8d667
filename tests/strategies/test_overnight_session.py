"""`overnight_session` on hand-made logs of hourly provider bars (timeframe 1h), open = 100 + k for
bar k = [t0 + k h, t0 + (k + 1) h), which has ts_event t0 + (k + 1) h. The session tags are those of
argus.projections.sessions in January 2024 (New York on EST = UTC-5, London on GMT = UTC):

    asia [20:00 NY = 01:00 UTC, 08:00 UTC)   europe [08:00, 09:00 UTC)   us_pre [09:00, 14:30 UTC)
    us_regular [14:30, 21:00 UTC)            us_post [21:00, 01:00 UTC)
    weekend [Friday 20:00 NY = Saturday 01:00 UTC, Sunday 20:00 NY = Monday 01:00 UTC)

A transition fires at the first bar whose ts_event lies in the new session; the decision there fills
at the next bar's open (bar k + 1: price 101 + k)."""

from __future__ import annotations

import datetime as dt
import math

import pytest

from argus.events.types import InstrumentKind
from argus.strategies.overnight_session import OvernightSession
from argus.strategies.registry import FAMILIES, default_registry
from tests.strategies.logs import HOUR, S, backtest, fills, write_bars

MONDAY = int(dt.datetime(2024, 1, 8, tzinfo=dt.UTC).timestamp()) * S
FRIDAY = int(dt.datetime(2024, 1, 19, tzinfo=dt.UTC).timestamp()) * S  # Monday the 22nd is a normal session


def ramp(n: int) -> list[tuple[float, float]]:
    return [(100.0 + k, 100.5 + k) for k in range(n)]


@pytest.fixture(scope="module")
def weekdays(tmp_path_factory):
    """Monday 2024-01-08 00:00 UTC to Wednesday 18:00 UTC (66 bars) of QQQ, and EWJ (the risk flow's
    only component here): flat at 50 except its bar 43 (ending Tuesday 20:00 UTC) closes at 49, a
    return of -2%, and it stays at 49 (return 0) from bar 44 on."""
    path = tmp_path_factory.mktemp("weekdays") / "log"
    ewj = [(50.0, 50.0 if k < 43 else 49.0) for k in range(66)]
    return write_bars(path, MONDAY, HOUR, {"QQQ": ramp(66), "EWJ": ewj})


@pytest.fixture(scope="module")
def no_flow(tmp_path_factory):
    """The same QQQ without any risk-flow component: the flow stays NaN."""
    return write_bars(tmp_path_factory.mktemp("noflow") / "log", MONDAY, HOUR, {"QQQ": ramp(66)})


@pytest.fixture(scope="module")
def weekend(tmp_path_factory):
    """Friday 2024-01-19 00:00 UTC to Monday 16:00 UTC (88 bars) of a 24/7 crypto instrument."""
    path = tmp_path_factory.mktemp("weekend") / "log"
    return write_bars(path, FRIDAY, HOUR, {"BTC": ramp(88)}, kinds={"BTC": InstrumentKind.CRYPTO})


# Monday's US close: bar 20 (ending 21:00 UTC) is the first us_post bar -> buy at bar 21's open 121.
# Tuesday's US open: bar 38 (ending Tuesday 15:00 UTC, 14:30 lies inside it) -> sell at bar 39's open 139.
# Tuesday's close: bar 44 -> buy at 145; Wednesday's open: bar 62 -> sell at 163.
BOTH_NIGHTS = [("QQQ", 10.0, 121.0), ("QQQ", -10.0, 139.0), ("QQQ", 10.0, 145.0), ("QQQ", -10.0, 163.0)]


def test_negative_risk_flow_blocks_the_entry_but_not_the_exit(weekdays):
    # Monday 21:00: EWJ's latest return is 0 (flow 0 >= 0): enter. Tuesday 15:00: exit (gates do not apply).
    # Tuesday 21:00: EWJ's bar 43 returned -2% (flow -0.02 < 0): no entry (EWJ's bar 44 comes after QQQ's).
    res = backtest(weekdays, "overnight_session", ("QQQ",), {})
    assert fills(res) == BOTH_NIGHTS[:2]
    assert res.final_equity == pytest.approx(100_000 + (139 - 121) * 10)
    assert res.tables["fills"]["reason"].tolist() == ["entry: us_regular -> us_post", "exit: us_pre -> us_regular"]


def test_a_lower_flow_threshold_lets_both_nights_trade(weekdays):
    res = backtest(weekdays, "overnight_session", ("QQQ",), {"min_risk_flow": -0.05})
    assert fills(res) == BOTH_NIGHTS
    assert res.final_equity == pytest.approx(100_000 + 180 + 180)


def test_weekend_skip_does_not_block_weekday_nights(weekdays):
    res = backtest(weekdays, "overnight_session", ("QQQ",), {"min_risk_flow": -0.05, "weekend": "skip"})
    assert fills(res) == BOTH_NIGHTS


def test_short_direction_sells_at_the_close_and_buys_back_at_the_open(weekdays):
    res = backtest(weekdays, "overnight_session", ("QQQ",), {"min_risk_flow": -0.05, "direction": "short"})
    assert fills(res) == [(s, -q, p) for s, q, p in BOTH_NIGHTS]
    assert res.tables["trades"]["side"].tolist() == [-1, -1]
    assert res.final_equity == pytest.approx(100_000 - 360)


def test_exit_at_the_asia_open(weekdays):
    # Monday's close (bar 20) -> buy 121; Asia open Monday 20:00 NY = Tuesday 01:00 UTC: bar 24 -> sell 125.
    res = backtest(weekdays, "overnight_session", ("QQQ",), {"exit": "asia"})
    assert fills(res) == [("QQQ", 10.0, 121.0), ("QQQ", -10.0, 125.0)]


@pytest.mark.parametrize("missing, expected", [("pass", BOTH_NIGHTS), ("block", [])])
def test_missing_risk_flow_passes_or_blocks_entries(no_flow, missing, expected):
    res = backtest(no_flow, "overnight_session", ("QQQ",), {"flow_missing": missing})
    assert fills(res) == expected


@pytest.mark.parametrize("policy, exit_at, expected", [
    # Friday's close: bar 20 -> buy at 121. Held over the weekend to Monday's US open (Monday 15:00 UTC is
    # 87 h after Friday 00:00: bar 86) -> sell at 187.
    ("hold", "us_regular", [("BTC", 10.0, 121.0), ("BTC", -10.0, 187.0)]),
    # exit asia: the weekend -> asia handover, Sunday 20:00 NY = Monday 01:00 UTC = 73 h: bar 72 -> 173.
    ("hold", "asia", [("BTC", 10.0, 121.0), ("BTC", -10.0, 173.0)]),
    # flat: out when the weekend starts, Friday 20:00 NY = Saturday 01:00 UTC = 25 h: bar 24 -> 125.
    ("flat", "us_regular", [("BTC", 10.0, 121.0), ("BTC", -10.0, 125.0)]),
    # skip: a weekend lies between Friday's close and the next US open: no entry at all.
    ("skip", "us_regular", []),
])
def test_weekend_policies_on_a_crypto_instrument(weekend, policy, exit_at, expected):
    res = backtest(weekend, "overnight_session", ("BTC",), {"weekend": policy, "exit": exit_at,
                                                            "flow_missing": "pass"})
    assert fills(res) == expected


class FakeCtx:
    def __init__(self, regime: str, flow: float):
        self.symbols = ("QQQ", "IWM")
        self.now = MONDAY + 21 * HOUR
        self._regime, self._flow = regime, flow

    def market_regime(self) -> str:
        return self._regime

    def risk_flow(self) -> float:
        return self._flow


@pytest.mark.parametrize("regime, flow, allowed", [
    ("risk_off", 0.01, False), ("neutral", 0.01, True), ("risk_on", 0.0, True), ("unknown", 0.0, True),
    ("risk_on", -0.001, False), ("risk_off", math.nan, False), ("neutral", math.nan, True),
])
def test_gates_risk_off_regime_and_risk_flow(regime, flow, allowed):
    assert OvernightSession().gates_open(FakeCtx(regime, flow))[0] is allowed


def test_risk_off_blocks_entries_and_still_exits_every_symbol():
    s = OvernightSession()
    s.on_start(FakeCtx("risk_on", 0.01))
    out = s.on_session(FakeCtx("risk_on", 0.01), "us_regular", "us_post")
    assert [(t.symbol, t.units) for t in out] == [("QQQ", 1.0), ("IWM", 1.0)]
    out = s.on_session(FakeCtx("risk_off", -0.03), "us_pre", "us_regular")
    assert [(t.symbol, t.units) for t in out] == [("QQQ", 0.0), ("IWM", 0.0)]
    assert s.on_session(FakeCtx("risk_off", -0.03), "us_regular", "us_post") is None


@pytest.mark.parametrize("params, name", [
    ({"entry": "us_post", "exit": "us_post"}, "exit"),
    ({"entry": "lunch"}, "entry"),
    ({"weekend": "maybe"}, "weekend"),
    ({"min_risk_flow": 0.2}, "min_risk_flow"),
    ({"flow_missing": "ignore"}, "flow_missing"),
    ({"direction": "sideways"}, "direction"),
    ({"entry_at": "close"}, "entry_at"),
])
def test_parameter_errors_name_the_parameter(params, name):
    with pytest.raises(ValueError, match=f"parameter {name}"):
        default_registry().create("overnight_session", params)


def test_registry_accepts_it_in_the_session_family():
    cls = default_registry().get("overnight_session")
    assert cls is OvernightSession and cls.family == "session"
    assert len(cls.params) <= FAMILIES["session"].max_params
    assert {"sessions", "market_regime"} <= cls.uses


def test_the_first_label_of_the_data_is_not_a_transition():
    s = OvernightSession(entry="asia", exit="europe")
    s.on_start(FakeCtx("risk_on", 0.01))
    assert s.on_session(FakeCtx("risk_on", 0.01), "none", "asia") is None
    assert [t.units for t in s.on_session(FakeCtx("risk_on", 0.01), "us_post", "asia")] == [1.0, 1.0]


def test_event_at_a_time_gives_the_same_run_as_chunked(weekdays):
    params = {"min_risk_flow": -0.05, "exit": "asia"}
    chunked = backtest(weekdays, "overnight_session", ("QQQ",), params)
    event = backtest(weekdays, "overnight_session", ("QQQ",), params, mode="event")
    assert len(chunked.tables["fills"]["price"]) == 4
    assert (event.run_id, event.digest) == (chunked.run_id, chunked.digest)
