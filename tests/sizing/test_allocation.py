"""AllocationEngine: hand-worked books, then hypothesis over random books that no cap is ever exceeded."""

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from argus.sizing import AllocationConfig, AllocationEngine, StrategyRisk
from argus.sizing.allocation import REASONS


def book(alloc):
    return {(line.strategy, line.play): (line.weight, line.reason) for line in alloc.lines}


def test_request_within_all_caps_is_kept():
    alloc = AllocationEngine().allocate(1e6, {("a", "x"): 0.05, ("a", "y"): -0.03})
    assert book(alloc) == {("a", "x"): (0.05, "requested"), ("a", "y"): (-0.03, "requested")}
    assert [line.notional for line in alloc.lines] == [50_000.0, -30_000.0]


def test_per_play_cap_defaults_to_7_percent_both_sides():
    alloc = AllocationEngine().allocate(1e6, {("a", "x"): 0.10, ("a", "y"): -0.20, ("a", "z"): 0.05})
    assert book(alloc) == {
        ("a", "x"): (0.07, "per_play_cap"),
        ("a", "y"): (-0.07, "per_play_cap"),
        ("a", "z"): (0.05, "requested"),
    }


def test_strategy_budget_scales_its_plays_proportionally():
    cfg = AllocationConfig(strategy_budgets={"a": 0.10})
    alloc = AllocationEngine(cfg).allocate(1e6, {("a", "x"): 0.07, ("a", "y"): 0.05, ("b", "x"): 0.07})
    w = alloc.weights
    assert w[("a", "x")] == pytest.approx(0.07 * 0.10 / 0.12, rel=1e-12)
    assert w[("a", "y")] == pytest.approx(0.05 * 0.10 / 0.12, rel=1e-12)
    assert w[("b", "x")] == 0.07  # no budget for b: only the gross cap applies
    assert alloc.lines[0].reason == "strategy_budget"
    assert alloc.lines[2].reason == "requested"


def test_default_strategy_budget_applies_to_unnamed_strategies():
    cfg = AllocationConfig(strategy_budgets={"a": 0.5}, default_strategy_budget=0.04)
    alloc = AllocationEngine(cfg).allocate(1.0, {("a", "x"): 0.07, ("b", "x"): 0.06, ("b", "y"): 0.02})
    assert alloc.weights[("a", "x")] == 0.07
    assert alloc.strategy_gross("b") <= 0.04
    assert alloc.weights[("b", "x")] == pytest.approx(0.03, rel=1e-12)


def test_gross_cap_scales_the_whole_book_proportionally():
    cfg = AllocationConfig(gross_cap=0.10)
    alloc = AllocationEngine(cfg).allocate(1.0, {("a", "x"): 0.06, ("b", "y"): -0.06})
    assert alloc.weights[("a", "x")] == pytest.approx(0.05, rel=1e-12)
    assert alloc.weights[("b", "y")] == pytest.approx(-0.05, rel=1e-12)
    assert {line.reason for line in alloc.lines} == {"gross_cap"}
    assert alloc.gross <= 0.10


def test_per_play_cap_then_gross_cap_lists_both_reasons():
    cfg = AllocationConfig(gross_cap=0.10)
    alloc = AllocationEngine(cfg).allocate(1.0, {("a", "x"): 0.50, ("a", "y"): 0.07})
    assert alloc.lines[0].reasons == ("per_play_cap", "gross_cap")
    assert alloc.lines[0].reason == "gross_cap"
    assert alloc.weights[("a", "x")] == pytest.approx(0.05, rel=1e-12)


def test_max_change_limits_each_move():
    cfg = AllocationConfig(max_change=0.02)
    alloc = AllocationEngine(cfg).allocate(
        1.0, {("a", "x"): 0.05, ("a", "y"): 0.0}, {("a", "x"): 0.0, ("a", "y"): 0.05}
    )
    assert alloc.weights[("a", "x")] == pytest.approx(0.02)
    assert alloc.weights[("a", "y")] == pytest.approx(0.03)
    assert {line.reason for line in alloc.lines} == {"max_change"}


def test_held_play_that_is_not_requested_is_requested_at_zero():
    cfg = AllocationConfig(max_change=0.02)
    alloc = AllocationEngine(cfg).allocate(1.0, {}, {("a", "x"): 0.05})
    assert alloc.lines[0].requested == 0.0
    assert alloc.weights[("a", "x")] == pytest.approx(0.03)


def test_slow_cuts_do_not_let_growing_plays_break_the_gross_cap():
    # current (0.07, 0, 0), target (0, 0.035, 0.035), gross cap 0.07, max change 0.02.
    # Max change alone gives (0.05, 0.02, 0.02): 0.09 > 0.07. The smallest reachable book is
    # (0.05, 0, 0), so lambda = (0.09 - 0.07) / (0.09 - 0.05) = 0.5: (0.05, 0.01, 0.01).
    cfg = AllocationConfig(gross_cap=0.07, max_change=0.02)
    requested = {("a", "x"): 0.0, ("a", "y"): 0.035, ("a", "z"): 0.035}
    alloc = AllocationEngine(cfg).allocate(1.0, requested, {("a", "x"): 0.07})
    w = alloc.weights
    assert w[("a", "x")] == pytest.approx(0.05, rel=1e-12)
    assert w[("a", "y")] == pytest.approx(0.01, rel=1e-12)
    assert w[("a", "z")] == pytest.approx(0.01, rel=1e-12)
    assert alloc.gross <= 0.07
    assert alloc.lines[0].reasons == ("max_change",)
    assert alloc.lines[1].reasons == ("max_change", "gross_cap")


def test_slow_cuts_within_a_strategy_respect_its_budget():
    cfg = AllocationConfig(strategy_budgets={"a": 0.07}, max_change=0.02)
    requested = {("a", "x"): 0.0, ("a", "y"): 0.035, ("a", "z"): 0.035}
    alloc = AllocationEngine(cfg).allocate(1.0, requested, {("a", "x"): 0.07})
    assert alloc.strategy_gross("a") <= 0.07
    assert alloc.lines[2].reason == "strategy_budget"


def test_breached_strategy_goes_to_zero_at_once_despite_max_change():
    cfg = AllocationConfig(max_change=0.01)
    alloc = AllocationEngine(cfg).allocate(
        1.0, {("a", "x"): 0.05, ("b", "x"): 0.05}, {("a", "x"): 0.05, ("b", "x"): 0.05}, breached=["a"]
    )
    assert book(alloc)[("a", "x")] == (0.0, "strategy_breached_risk_cap")
    assert book(alloc)[("b", "x")] == (0.05, "requested")
    assert alloc.breached == ("a",)


def test_drawdown_beyond_its_limit_breaches():
    risk = {
        "a": StrategyRisk(drawdown=0.25, drawdown_limit=0.20),
        "b": StrategyRisk(drawdown=0.20, drawdown_limit=0.20),  # at the limit is not beyond it
        "c": StrategyRisk(drawdown=math.nan, drawdown_limit=0.20),  # unknown risk: fail safe
    }
    requested = {("a", "x"): 0.05, ("b", "x"): 0.05, ("c", "x"): 0.05}
    alloc = AllocationEngine().allocate(1.0, requested, risk=risk)
    assert alloc.weights == {("a", "x"): 0.0, ("b", "x"): 0.05, ("c", "x"): 0.0}
    assert alloc.breached == ("a", "c")


def test_caps_win_over_max_change_for_one_play():
    cfg = AllocationConfig(max_change=0.05)
    alloc = AllocationEngine(cfg).allocate(1.0, {("a", "x"): 0.0}, {("a", "x"): 0.20})
    assert alloc.weights[("a", "x")] == 0.07  # 0.13 in one step: the cap cannot wait


def test_caps_win_over_max_change_for_the_book():
    # Current book (0.07, 0.07) breaks a 0.10 gross cap; max change 0.01 could only reach (0.06, 0.06).
    cfg = AllocationConfig(gross_cap=0.10, max_change=0.01)
    held = {("a", "x"): 0.07, ("a", "y"): 0.07}
    alloc = AllocationEngine(cfg).allocate(1.0, held, held)
    assert alloc.weights[("a", "x")] == pytest.approx(0.05, rel=1e-12)
    assert alloc.weights[("a", "y")] == pytest.approx(0.05, rel=1e-12)
    assert alloc.gross <= 0.10
    assert {line.reason for line in alloc.lines} == {"gross_cap"}


def test_zero_budget_strategy_gets_nothing():
    cfg = AllocationConfig(strategy_budgets={"a": 0.0})
    alloc = AllocationEngine(cfg).allocate(1.0, {("a", "x"): 0.05})
    assert book(alloc) == {("a", "x"): (0.0, "strategy_budget")}


def test_to_json_has_a_fixed_shape_and_round_trips():
    cfg = AllocationConfig(gross_cap=0.5, strategy_budgets={"b": 0.2, "a": 0.3}, max_change=0.05)
    alloc = AllocationEngine(cfg).allocate(
        2e6, {("b", "y"): -0.04, ("a", "x"): 0.10}, {("a", "x"): 0.01}, breached=["c"]
    )
    doc = alloc.to_json()
    assert list(doc) == ["equity", "gross", "config", "strategies", "allocations"]
    assert list(doc["config"]["strategy_budgets"]) == ["a", "b"]
    assert [s["strategy"] for s in doc["strategies"]] == ["a", "b", "c"]
    assert doc["strategies"][2] == {"strategy": "c", "budget": None, "gross": 0.0, "breached": True}
    first = doc["allocations"][0]
    assert list(first) == [
        "strategy", "play", "requested", "current", "weight", "change", "notional", "reason", "reasons"
    ]  # fmt: skip
    assert first["weight"] == pytest.approx(0.06)  # 0.07 capped, then 0.01 + max change 0.05
    assert first["reasons"] == ["per_play_cap", "max_change"]
    assert first["notional"] == pytest.approx(120_000.0)
    assert json.loads(alloc.dumps()) == doc
    assert alloc.dumps().endswith("}\n")


@pytest.mark.parametrize(
    ("call", "pattern"),
    [
        (lambda e: e.allocate(0.0, {}), r"equity=0\.0: must be > 0"),
        (lambda e: e.allocate(1.0, {("a", "x"): math.nan}), r"requested\[\('a', 'x'\)\]=nan: must be finite"),
        (lambda e: e.allocate(1.0, {"ax": 0.1}), r"requested key 'ax': must be a \(strategy, play\) tuple"),
        (lambda e: e.allocate(1.0, {}, {("a", 1): 0.1}), r"current key \('a', 1\)"),
        (lambda e: e.allocate(1.0, {}, risk={"a": 0.3}), r"risk\['a'\]=0\.3: must be a StrategyRisk"),
    ],
)
def test_bad_allocation_input_is_refused(call, pattern):
    with pytest.raises(ValueError, match=pattern):
        call(AllocationEngine())


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"per_play_cap": 0.0}, r"per_play_cap=0\.0: must be > 0"),
        ({"gross_cap": -1.0}, r"gross_cap=-1\.0: must be > 0"),
        ({"max_change": 0.0}, r"max_change=0\.0: must be > 0"),
        ({"strategy_budgets": {"a": -0.1}}, r"strategy_budgets\['a'\]=-0\.1: must be >= 0"),
        ({"strategy_budgets": (("a", 0.1), ("a", 0.2))}, r"strategy_budgets\['a'\]: given twice"),
        ({"default_strategy_budget": math.inf}, r"default_strategy_budget=inf: must be finite"),
    ],
)
def test_bad_allocation_config_is_refused(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        AllocationConfig(**kwargs)


def test_strategy_risk_is_checked():
    with pytest.raises(ValueError, match=r"drawdown_limit=0\.0: must be > 0"):
        StrategyRisk(0.1, 0.0)
    with pytest.raises(ValueError, match=r"drawdown=-0\.1: must be >= 0"):
        StrategyRisk(-0.1, 0.2)


# ---- properties -------------------------------------------------------------------------------------

STRATS = ["a", "b", "c"]
KEYS = [(s, f"p{i}") for s in STRATS for i in range(4)]
weights_st = st.dictionaries(
    st.sampled_from(KEYS), st.floats(-0.5, 0.5, allow_subnormal=False), max_size=len(KEYS)
)


@st.composite
def configs(draw):
    budgets = draw(st.dictionaries(st.sampled_from(STRATS), st.floats(0.0, 0.4)))
    return AllocationConfig(
        per_play_cap=draw(st.floats(0.005, 0.2)),
        gross_cap=draw(st.floats(0.005, 1.0)),
        strategy_budgets=budgets,
        default_strategy_budget=draw(st.none() | st.floats(0.0, 0.4)),
        max_change=draw(st.none() | st.floats(0.0005, 0.2)),
    )


def legalise(cfg, weights):
    """An independent way to make a book that keeps the caps: clip, then shrink each strategy and the
    book by a factor with a margin, so the sums are below the caps whatever the rounding."""
    out = {k: max(-cfg.per_play_cap, min(cfg.per_play_cap, v)) for k, v in weights.items()}
    for s in STRATS:
        budget = cfg.budget_for(s)
        total = math.fsum(abs(v) for k, v in out.items() if k[0] == s)
        if budget is not None and total > budget:
            out = {k: v * budget / total * 0.999 if k[0] == s else v for k, v in out.items()}
    total = math.fsum(abs(v) for v in out.values())
    if total > cfg.gross_cap:
        out = {k: v * cfg.gross_cap / total * 0.999 for k, v in out.items()}
    return out


def check_caps(cfg, alloc, breached):
    for line in alloc.lines:
        assert abs(line.weight) <= cfg.per_play_cap
        assert line.reason in REASONS
        if line.strategy in breached:
            assert line.weight == 0.0
        if line.reason == "requested":
            assert line.weight == line.requested
    for s in STRATS:
        budget = cfg.budget_for(s)
        if budget is not None:
            assert alloc.strategy_gross(s) <= budget
    assert alloc.gross <= cfg.gross_cap


@settings(max_examples=300, deadline=None)
@given(
    cfg=configs(),
    requested=weights_st,
    held=weights_st,
    breached=st.sets(st.sampled_from(STRATS), max_size=2),
    equity=st.floats(1.0, 1e9),
)
def test_no_cap_is_exceeded_and_max_change_holds_from_a_legal_book(cfg, requested, held, breached, equity):
    current = legalise(cfg, held)
    alloc = AllocationEngine(cfg).allocate(equity, requested, current, breached=sorted(breached))
    check_caps(cfg, alloc, breached)
    if cfg.max_change is not None:
        for line in alloc.lines:
            if line.strategy not in breached:
                assert abs(line.weight - line.current) <= cfg.max_change
    for line in alloc.lines:
        assert line.notional == line.weight * equity


@settings(max_examples=300, deadline=None)
@given(cfg=configs(), requested=weights_st, current=weights_st, breached=st.sets(st.sampled_from(STRATS)))
def test_caps_hold_even_from_a_book_that_breaks_them(cfg, requested, current, breached):
    alloc = AllocationEngine(cfg).allocate(1.0, requested, current, breached=breached)
    check_caps(cfg, alloc, breached)


@settings(max_examples=100, deadline=None)
@given(
    cfg=configs(),
    requested=weights_st,
    held=weights_st,
    breached=st.lists(st.sampled_from(STRATS)),
    data=st.data(),
)
def test_output_does_not_depend_on_input_order(cfg, requested, held, breached, data):
    current = legalise(cfg, held)
    engine = AllocationEngine(cfg)
    first = engine.allocate(1e6, requested, current, breached=breached).dumps()
    shuffled_req = dict(data.draw(st.permutations(list(requested.items()))))
    shuffled_cur = dict(data.draw(st.permutations(list(current.items()))))
    shuffled_breached = data.draw(st.permutations(breached))
    assert engine.allocate(1e6, shuffled_req, shuffled_cur, breached=shuffled_breached).dumps() == first


@settings(max_examples=100, deadline=None)
@given(cfg=configs(), held=weights_st)
def test_a_legal_book_requested_again_is_left_alone(cfg, held):
    current = legalise(cfg, held)
    alloc = AllocationEngine(cfg).allocate(1.0, current, current)
    assert alloc.weights == {k: v + 0.0 for k, v in sorted(current.items())}
    assert {line.reason for line in alloc.lines} <= {"requested"}
