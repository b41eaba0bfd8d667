"""Global risk flow: hand-computed values (all groups, a missing group, FX sign, ignored bars), rows only
on component bars, snapshots and validation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from argus.kernels.bars import BAR_FIELDS
from argus.kernels.reducer import SnapshotError
from argus.kernels.riskflow import (
    RISKFLOW_DTYPE,
    RISKFLOW_FIELDS,
    RiskFlowReducer,
    check_riskflow_layout,
    config_hash,
    riskflow_layout_info,
)

BAR_DTYPE = np.dtype(list(BAR_FIELDS))
MINUTE = 60_000_000_000
ASIA, EUROPE, FX = (1, 2), (3,), (4,)


def make_bars(items) -> np.ndarray:
    """items: (instrument, close[, spec]) in stream order; offsets and minutes follow the order."""
    bars = np.zeros(len(items), dtype=BAR_DTYPE)
    for i, item in enumerate(items):
        iid, close = item[0], item[1]
        spec = item[2] if len(item) > 2 else 0
        bars[i]["offset"] = i
        bars[i]["instrument_id"] = iid
        bars[i]["spec"] = spec
        bars[i]["ts_start"] = i * MINUTE
        bars[i]["ts_end"] = (i + 1) * MINUTE
        for f in ("open", "high", "low", "close", "vwap"):
            bars[i][f] = close
        bars[i]["volume"] = 1.0
        bars[i]["trade_count"] = 1
    return bars


def new_reducer(n_bar_specs=2, spec=0, asia=ASIA, europe=EUROPE, fx=FX, **kw) -> RiskFlowReducer:
    h = config_hash(n_bar_specs, spec, asia, europe, fx, **kw)
    return RiskFlowReducer("risk_flow", h, n_bar_specs, spec, asia, europe, fx, **kw)


def run(reducer: RiskFlowReducer, bars: np.ndarray) -> np.ndarray:
    reducer.feed_bars(bars)
    return reducer.outputs()[0][1].drain()


def test_row_layout_matches_riskflow_fields() -> None:
    check_riskflow_layout()
    size, offsets = riskflow_layout_info()
    assert size == RISKFLOW_DTYPE.itemsize == 80
    assert [name for name, _ in RISKFLOW_FIELDS] == list(offsets)
    assert all(RISKFLOW_DTYPE.fields[n][1] == offsets[n] for n in offsets)


def test_flow_by_hand_with_groups_appearing_and_ignored_bars() -> None:
    reducer = new_reducer()
    bars = make_bars([
        (1, 100.0), (2, 50.0), (3, 10.0), (4, 150.0),   # first bars: no returns yet
        (9, 77.0),                                      # not a component: ignored
        (1, 500.0, 1),                                  # another spec: ignored
        (1, 101.0),                                     # asia1 +1%: only Asia present
        (3, 10.2),                                      # europe +2%: Asia and Europe, 0.5 / 0.5
        (4, 151.5),                                     # USD/JPY +1%: all groups, 0.4 / 0.4 / 0.2
        (2, 49.0),                                      # asia2 -2%: Asia mean -0.5%
    ])
    rows = run(reducer, bars)
    assert rows["offset"].tolist() == [0, 1, 2, 3, 6, 7, 8, 9]
    assert rows["instrument_id"].tolist() == [1, 2, 3, 4, 1, 3, 4, 2]
    assert rows["ts_end"].tolist() == [(o + 1) * MINUTE for o in rows["offset"]]
    assert np.isnan(rows["value"][:4]).all() and (rows["w_asia"][:4] == 0).all()
    assert (rows["n_asia"][:4] == 0).all() and (rows["n_fx"][:4] == 0).all()
    r_a1, r_e, r_fx, r_a2 = 101.0 / 100.0 - 1, 10.2 / 10.0 - 1, 151.5 / 150.0 - 1, 49.0 / 50.0 - 1
    asia = (r_a1 + r_a2) / 2
    expected = [
        (r_a1, r_a1, math.nan, math.nan, 1.0, 0.0, 0.0, 1, 0, 0),
        (0.5 * r_a1 + 0.5 * r_e, r_a1, r_e, math.nan, 0.5, 0.5, 0.0, 1, 1, 0),
        (0.4 * r_a1 + 0.4 * r_e + 0.2 * r_fx, r_a1, r_e, r_fx, 0.4, 0.4, 0.2, 1, 1, 1),
        (0.4 * asia + 0.4 * r_e + 0.2 * r_fx, asia, r_e, r_fx, 0.4, 0.4, 0.2, 2, 1, 1),
    ]
    for row, exp in zip(rows[4:], expected, strict=True):
        got = [row[f] for f in ("value", "asia", "europe", "fx", "w_asia", "w_europe", "w_fx", "n_asia",
                                "n_europe", "n_fx")]
        np.testing.assert_allclose(got, exp, rtol=1e-12, atol=1e-15)
    assert reducer.current_flow() == rows["value"][-1]
    assert reducer.events == len(bars) and reducer.next_offset == len(bars) and reducer.now == len(bars) * MINUTE


def test_fx_sign_flips_the_fx_signal() -> None:
    bars = make_bars([(4, 150.0), (4, 151.5)])
    plus = run(new_reducer(), bars)
    minus = run(new_reducer(fx_sign=-1.0), bars)
    assert plus["fx"][-1] == pytest.approx(0.01) and minus["fx"][-1] == pytest.approx(-0.01)
    # FX alone: the weight goes entirely to FX
    assert plus["value"][-1] == pytest.approx(0.01) and plus["w_fx"][-1] == 1.0
    assert minus["value"][-1] == pytest.approx(-0.01)


def test_missing_group_redistributes_and_zero_weight_group_alone_is_nan() -> None:
    bars = make_bars([(1, 100.0), (4, 100.0), (1, 102.0), (4, 101.0)])
    rows = run(new_reducer(weights=(0.5, 0.3, 0.2)), bars)
    # Europe missing: 0.5 / 0.7 and 0.2 / 0.7
    assert rows["w_asia"][-1] == pytest.approx(0.5 / 0.7) and rows["w_fx"][-1] == pytest.approx(0.2 / 0.7)
    assert rows["w_europe"][-1] == 0.0 and np.isnan(rows["europe"][-1])
    assert rows["value"][-1] == pytest.approx((0.5 * 0.02 + 0.2 * 0.01) / 0.7)
    rows = run(new_reducer(weights=(1.0, 1.0, 0.0)), make_bars([(4, 100.0), (4, 101.0)]))
    assert np.isnan(rows["value"]).all() and (rows[["w_asia", "w_europe", "w_fx"]].tolist()[-1] == (0, 0, 0))
    assert rows["fx"][-1] == pytest.approx(0.01) and rows["n_fx"][-1] == 1


def test_bad_closes_emit_a_row_and_change_no_state() -> None:
    rows = run(new_reducer(), make_bars([(1, 100.0), (1, 110.0), (1, math.nan), (1, -1.0), (1, 121.0)]))
    assert len(rows) == 5
    assert rows["asia"][2] == rows["asia"][1] == rows["asia"][3] == pytest.approx(0.1)
    assert rows["asia"][4] == pytest.approx(0.1)      # 121 / 110 - 1: the bad closes were skipped


def random_stream(rng: np.random.Generator, n: int) -> np.ndarray:
    ids = np.array([1, 2, 3, 4, 0, 7])
    items, price = [], {int(i): 100.0 for i in ids}
    for _ in range(n):
        iid = int(rng.choice(ids))
        price[iid] *= math.exp(rng.normal(0, 0.01))
        items.append((iid, price[iid], int(rng.integers(0, 2))))
    return make_bars(items)


def test_rows_only_on_component_bars_of_the_spec() -> None:
    bars = random_stream(np.random.default_rng(1), 500)
    rows = run(new_reducer(), bars)
    mask = np.isin(bars["instrument_id"], ASIA + EUROPE + FX) & (bars["spec"] == 0)
    assert rows["offset"].tolist() == bars["offset"][mask].tolist()
    assert (rows["n_asia"] <= 2).all() and (rows["n_europe"] <= 1).all()
    w = rows[["w_asia", "w_europe", "w_fx"]].tolist()
    for (a, e, f), v in zip(w, rows["value"], strict=True):
        assert (a + e + f == pytest.approx(1.0)) if not math.isnan(v) else (a == e == f == 0)


@pytest.mark.parametrize("k", [0, 1, 137, 499])
def test_snapshot_restore_continue_equals_uninterrupted(k: int) -> None:
    bars = random_stream(np.random.default_rng(2), 500)
    whole = new_reducer()
    expected = run(whole, bars)
    first = new_reducer()
    head = run(first, bars[:k])
    snap = first.snapshot()
    second = new_reducer()
    second.restore(snap)
    assert second.snapshot() == snap
    tail = run(second, bars[k:])
    assert np.concatenate([head, tail]).tobytes() == expected.tobytes()
    assert second.state_digest() == whole.state_digest()
    assert second.outputs()[0][1].digest() == whole.outputs()[0][1].digest()


def test_snapshot_of_another_configuration_or_damaged_state_is_refused() -> None:
    a = new_reducer()
    run(a, random_stream(np.random.default_rng(3), 50))
    snap = a.snapshot()
    other = RiskFlowReducer("risk_flow", a.config_hash, 2, 0, ASIA, EUROPE, FX, weights=(0.5, 0.3, 0.2))
    with pytest.raises(SnapshotError, match="layout"):
        other.restore(snap)
    parts = a.state_parts()
    bad = np.frombuffer(parts[2], dtype="<i8").copy()
    bad[1] = bad[0] + 1
    with pytest.raises(SnapshotError, match="damaged"):
        new_reducer().load_state_parts([parts[0], parts[1], bad.tobytes()])
    with pytest.raises(SnapshotError, match="bytes"):
        new_reducer().load_state_parts([parts[0], parts[1][:-8], parts[2]])


@pytest.mark.parametrize(("kwargs", "message"), [
    (dict(n_bar_specs=0), "'n_bar_specs' = 0 must be an integer >= 1"),
    (dict(spec=2), "'spec' = 2 must be a bar spec index in \\[0, n_bar_specs = 2\\)"),
    (dict(spec=-1), "'spec' = -1 must be"),
    (dict(weights=(0.4, -0.1, 0.2)), "'weights' = \\(0.4, -0.1, 0.2\\) must be finite and >= 0 with a positive sum"),
    (dict(weights=(0.0, 0.0, 0.0)), "'weights' = \\(0.0, 0.0, 0.0\\) must be finite and >= 0 with a positive sum"),
    (dict(weights=(0.4, 0.4)), "'weights' = \\(0.4, 0.4\\) must be 3 numbers"),
    (dict(weights=(0.4, math.nan, 0.2)), "'weights' .* must be finite"),
    (dict(europe=(3, 1)), "'europe_ids' = \\(3, 1\\) must be disjoint .*instrument 1 is also in asia_ids"),
    (dict(fx=(4, 4)), "'fx_ids' = \\(4, 4\\) must be disjoint"),
    (dict(asia=(-1,)), "'asia_ids' = \\(-1,\\) must be instrument ids"),
    (dict(asia=(), europe=(), fx=()), "'asia_ids' = \\(\\) must be non-empty"),
    (dict(fx_sign=math.inf), "'fx_sign' = inf must be a finite number"),
])
def test_bad_configuration_is_refused_naming_field_value_and_rule(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        new_reducer(**kwargs)


def test_feed_bars_refuses_other_dtypes_unknown_specs_and_log_records() -> None:
    reducer = new_reducer()
    with pytest.raises(ValueError, match="BAR_FIELDS"):
        reducer.feed_bars(np.zeros(3))
    with pytest.raises(ValueError, match="bar spec = 5 must be < n_bar_specs = 2"):
        reducer.feed_bars(make_bars([(1, 100.0, 5)]))
    with pytest.raises(TypeError, match="closed bars"):
        new_reducer().apply_record(b"\0" * 32, 0)
    assert math.isnan(new_reducer().current_flow())
