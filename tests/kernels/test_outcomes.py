"""Outcomes of closed bars: hand-computed figures, a pandas oracle, no lookahead, gap status, pending
windows, per-(instrument, spec) state, snapshots and validation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from argus.kernels.bars import BAR_FIELDS
from argus.kernels.outcomes import (
    OUTCOME_DTYPE,
    OUTCOME_FIELDS,
    STATUS_COMPLETE,
    STATUS_GAP,
    STATUS_INCOMPLETE,
    STATUS_TRUNCATED,
    OutcomeReducer,
    config_hash,
    outcome_layout_info,
    state_sizes,
)
from argus.kernels.reducer import SnapshotError

BAR_DTYPE = np.dtype(list(BAR_FIELDS))
MINUTE = 60_000_000_000
GAP = 1  # bars.pxd FLAG_GAP


# -- helpers -------------------------------------------------------------------------------------

def make_bars(close, high=None, low=None, session=1, flags=0, instrument: int = 0, spec: int = 0,
              offsets=None) -> np.ndarray:
    close = np.asarray(close, dtype=float)
    n = len(close)
    bars = np.zeros(n, dtype=BAR_DTYPE)
    bars["offset"] = np.arange(n) * 2 + 7 if offsets is None else offsets
    bars["instrument_id"] = instrument
    bars["spec"] = spec
    bars["ts_start"] = np.arange(n) * MINUTE
    bars["ts_end"] = bars["ts_start"] + MINUTE
    bars["session"] = session
    bars["open"] = close
    bars["high"] = close if high is None else high
    bars["low"] = close if low is None else low
    bars["close"] = close
    bars["volume"] = 1.0
    bars["vwap"] = close
    bars["trade_count"] = 1
    bars["flags"] = flags
    return bars


def random_bars(seed: int, n: int, **kw) -> np.ndarray:
    rng = np.random.default_rng(seed)
    close = 50.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, n)))
    high = close * (1 + np.abs(rng.normal(0.0, 0.005, n)))
    low = close * (1 - np.abs(rng.normal(0.0, 0.005, n)))
    lengths = rng.integers(1, 40, n)                         # sessions of 1 to 39 bars
    session = np.repeat(np.arange(1, n + 1) * 1000, lengths)[:n]
    flags = np.where(rng.random(n) < 0.03, GAP, 0) | np.where(rng.random(n) < 0.05, 8, 0)
    return make_bars(close, high, low, session=session, flags=flags, **kw)


def new_reducer(n_bar_specs: int = 1, horizons=(1, 5, 20), session_end: bool = True,
                session_cap: int = 2000) -> OutcomeReducer:
    return OutcomeReducer("outcomes", config_hash(horizons, session_end, session_cap), n_bar_specs,
                          horizons=horizons, session_end=session_end, session_cap=session_cap)


def run(reducer: OutcomeReducer, bars: np.ndarray) -> np.ndarray:
    reducer.feed_bars(bars)
    return reducer.outputs()[0][1].drain()


def oracle(bars: np.ndarray, horizons, session_end: bool = True) -> dict[tuple[int, int], tuple]:
    """{(ref_offset, horizon): (offset, status, fwd, runup, drawdown, end_ts)} of the completed windows
    of one (instrument, spec), from pandas rolling windows shifted forward."""
    df = pd.DataFrame({k: bars[k] for k in ("offset", "ts_end", "session", "high", "low", "close")})
    df["gap"] = (bars["flags"] & GAP).astype(np.int64)
    c = df["close"]
    out = {}
    for h in horizons:
        fwd = c.shift(-h) / c - 1
        up = df["high"].rolling(h).max().shift(-h) / c - 1
        dn = df["low"].rolling(h).min().shift(-h) / c - 1
        gap = (df["gap"].rolling(h).max().shift(-h) + df["gap"]) > 0
        done_off = df["offset"].shift(-h)
        done_ts = df["ts_end"].shift(-h)
        for i in range(len(df) - h):
            status = STATUS_GAP if gap[i] else STATUS_COMPLETE
            out[(int(df["offset"][i]), h)] = (int(done_off[i]), status, fwd[i], up[i], dn[i], int(done_ts[i]))
    if session_end:
        g = df.groupby("session", sort=False)
        rev = df.iloc[::-1].groupby("session", sort=False)
        after_hi = rev["high"].transform(lambda s: s.cummax().shift(1)).iloc[::-1]
        after_lo = rev["low"].transform(lambda s: s.cummin().shift(1)).iloc[::-1]
        after_gap = rev["gap"].transform(lambda s: s.cummax().shift(1)).iloc[::-1].fillna(0)
        last_close = g["close"].transform("last")
        starts = np.flatnonzero(np.r_[True, df["session"].to_numpy()[1:] != df["session"].to_numpy()[:-1]])
        next_start = {int(s): int(e) for s, e in zip(starts[:-1], starts[1:], strict=True)}
        first_of = np.maximum.accumulate(np.where(np.isin(np.arange(len(df)), starts), np.arange(len(df)), 0))
        for i in range(len(df)):
            nxt = next_start.get(int(first_of[i]))
            if nxt is None or df["session"][i] == 0:
                continue
            status = STATUS_GAP if (after_gap[i] + df["gap"][i]) > 0 else STATUS_COMPLETE
            out[(int(df["offset"][i]), 0)] = (int(df["offset"][nxt]), status, last_close[i] / c[i] - 1,
                                              after_hi[i] / c[i] - 1, after_lo[i] / c[i] - 1,
                                              int(df["ts_end"][nxt]))
    return out


def assert_matches_oracle(rows: np.ndarray, expected: dict) -> None:
    assert len(rows) == len(expected)
    for r in rows:
        key = (int(r["ref_offset"]), int(r["horizon"]))
        off, status, fwd, up, dn, end_ts = expected[key]
        assert (int(r["offset"]), int(r["status"]), int(r["end_ts"])) == (off, status, end_ts), key
        np.testing.assert_allclose([r["forward_return"], r["max_runup"], r["max_drawdown"]], [fwd, up, dn],
                                   rtol=0, atol=1e-12, equal_nan=True, err_msg=str(key))


# -- layout and hand-computed figures -------------------------------------------------------------

def test_row_dtype_matches_the_c_struct_and_is_8_byte_aligned() -> None:
    size, offsets = outcome_layout_info()
    assert OUTCOME_DTYPE.itemsize == size == 72
    assert {name: OUTCOME_DTYPE.fields[name][1] for name, _ in OUTCOME_FIELDS} == offsets
    assert size % 8 == 0 and all(OUTCOME_DTYPE.fields[n][1] % 8 == 0 for n in OUTCOME_DTYPE.names
                                 if OUTCOME_DTYPE.fields[n][0].itemsize == 8)
    assert state_sizes() == (48, 56, 24)


def test_hand_computed_outcomes_for_horizons_1_3_and_session_end() -> None:
    close = [10.0, 11.0, 12.0, 9.0, 10.0, 13.0]
    high = [11.0, 12.0, 13.0, 10.0, 11.0, 14.0]
    low = [9.0, 10.0, 11.0, 8.0, 9.0, 12.0]
    bars = make_bars(close, high, low, session=[1, 1, 1, 1, 2, 2], offsets=[0, 2, 4, 6, 8, 10])
    rows = run(new_reducer(horizons=(1, 3)), bars)
    got = [(int(r["offset"]), int(r["ref_offset"]), int(r["horizon"]), r["forward_return"], r["max_runup"],
            r["max_drawdown"]) for r in rows]
    expected = [
        (2, 0, 1, 11 / 10 - 1, 12 / 10 - 1, 10 / 10 - 1),
        (4, 2, 1, 12 / 11 - 1, 13 / 11 - 1, 11 / 11 - 1),
        (6, 0, 3, 9 / 10 - 1, 13 / 10 - 1, 8 / 10 - 1),
        (6, 4, 1, 9 / 12 - 1, 10 / 12 - 1, 8 / 12 - 1),
        # bar 4 opens session 2: it completes ref 1 at h=3 and the session-end windows of refs 0..3
        (8, 0, 0, 9 / 10 - 1, 13 / 10 - 1, 8 / 10 - 1),
        (8, 2, 3, 10 / 11 - 1, 13 / 11 - 1, 8 / 11 - 1),
        (8, 2, 0, 9 / 11 - 1, 13 / 11 - 1, 8 / 11 - 1),
        (8, 4, 0, 9 / 12 - 1, 10 / 12 - 1, 8 / 12 - 1),
        (8, 6, 1, 10 / 9 - 1, 11 / 9 - 1, 9 / 9 - 1),
        (8, 6, 0, 0.0, np.nan, np.nan),                   # the session's last bar: an empty window
        (10, 4, 3, 13 / 12 - 1, 14 / 12 - 1, 8 / 12 - 1),
        (10, 8, 1, 13 / 10 - 1, 14 / 10 - 1, 12 / 10 - 1),
    ]
    assert [g[:3] for g in got] == [e[:3] for e in expected]
    np.testing.assert_allclose([g[3:] for g in got], [e[3:] for e in expected], rtol=0, atol=1e-15)
    assert set(rows["status"]) == {STATUS_COMPLETE}
    assert list(rows["end_ts"]) == [int(bars["ts_end"][list(bars["offset"]).index(o)]) for o in rows["offset"]]
    assert list(rows["ref_ts_end"]) == [int(bars["ts_end"][list(bars["offset"]).index(o)])
                                        for o in rows["ref_offset"]]


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("horizons", [(1, 5, 20), (3, 1, 7)])
def test_random_series_matches_a_pandas_oracle(seed: int, horizons) -> None:
    bars = random_bars(seed, 700)
    rows = run(new_reducer(horizons=horizons), bars)
    assert_matches_oracle(rows, oracle(bars, horizons))


def test_rows_of_one_completing_bar_come_oldest_reference_first_then_configured_horizons() -> None:
    horizons = (3, 1, 7)
    bars = random_bars(4, 400)
    rows = run(new_reducer(horizons=horizons), bars)
    order = {h: i for i, h in enumerate(horizons)} | {0: len(horizons)}
    for off in np.unique(rows["offset"]):
        mine = rows[rows["offset"] == off]
        keys = [(int(r["ref_offset"]), order[int(r["horizon"])]) for r in mine]
        assert keys == sorted(keys)
    assert np.all(np.diff(rows["offset"].astype(np.int64)) >= 0)


def test_no_row_is_emitted_before_its_window_completes() -> None:
    bars = random_bars(7, 500)
    r = new_reducer()
    offsets = [int(o) for o in bars["offset"]]
    index = {o: i for i, o in enumerate(offsets)}
    for i in range(len(bars)):                               # live: one bar at a time
        rows = run(r, bars[i:i + 1])
        assert np.all(rows["offset"] == offsets[i])
        assert np.all(rows["end_ts"] == bars["ts_end"][i])
        assert np.all(rows["offset"] > rows["ref_offset"])
        for row in rows:
            ref = index[int(row["ref_offset"])]
            if row["horizon"] > 0:
                assert i == ref + row["horizon"]
            else:                                            # the first bar of the next session
                assert bars["session"][i] != bars["session"][ref]
                assert np.all(bars["session"][ref:i] == bars["session"][ref])


# -- status ---------------------------------------------------------------------------------------

def test_a_gap_flag_in_the_window_or_the_reference_gives_gap_status() -> None:
    flags = [0] * 10
    flags[4] = GAP | 8
    bars = make_bars(np.arange(10.0) + 10, session=[1] * 6 + [2] * 4, flags=flags, offsets=np.arange(10))
    rows = run(new_reducer(horizons=(1, 3)), bars)
    for r in rows:
        ref, h = int(r["ref_offset"]), int(r["horizon"])
        last = ref + h if h else 5
        assert r["status"] == (STATUS_GAP if ref <= 4 <= last else STATUS_COMPLETE), (ref, h)
        assert np.isfinite(r["forward_return"])              # still computed
    other = run(new_reducer(horizons=(1, 3)), make_bars(np.arange(10.0) + 10, flags=8 | 2, offsets=np.arange(10)))
    assert set(other["status"]) == {STATUS_COMPLETE}         # only FLAG_GAP counts


# -- pending --------------------------------------------------------------------------------------

def test_pending_gives_incomplete_rows_for_the_last_bars_and_changes_nothing() -> None:
    close = [10.0, 11.0, 12.0, 9.0, 10.0, 13.0]
    high = [11.0, 12.0, 13.0, 10.0, 11.0, 14.0]
    low = [9.0, 10.0, 11.0, 8.0, 9.0, 12.0]
    bars = make_bars(close, high, low, session=[1, 1, 1, 1, 2, 2], offsets=[0, 2, 4, 6, 8, 10])
    r = new_reducer(horizons=(1, 3))
    run(r, bars)
    digest = r.state_digest()
    p = r.pending()
    assert p.dtype == OUTCOME_DTYPE
    assert set(p["status"]) == {STATUS_INCOMPLETE}
    assert np.all(p["offset"] == 10) and np.all(p["end_ts"] == bars["ts_end"][-1])
    got = [(int(x["ref_offset"]), int(x["horizon"])) for x in p]
    assert got == [(6, 3), (8, 3), (8, 0), (10, 1), (10, 3), (10, 0)]
    np.testing.assert_allclose(p[0][["forward_return", "max_runup", "max_drawdown"]].tolist(),
                               [13 / 9 - 1, 14 / 9 - 1, 9 / 9 - 1], atol=1e-15)
    np.testing.assert_allclose(p[2][["forward_return", "max_runup", "max_drawdown"]].tolist(),
                               [13 / 10 - 1, 14 / 10 - 1, 12 / 10 - 1], atol=1e-15)
    assert np.all(np.isnan(p[3:][["forward_return", "max_runup", "max_drawdown"]].tolist()))
    assert r.state_digest() == digest and len(r.outputs()[0][1]) == 0
    # the pending rows become those emitted (with their final figures) once the windows complete
    more = make_bars([13.0, 14.0, 15.0], session=3, offsets=[12, 14, 16])
    rows = run(r, more)
    assert {(int(x["ref_offset"]), int(x["horizon"])) for x in rows} >= set(got[:3])
    assert len(new_reducer().pending()) == 0


def test_pending_matches_the_oracle_on_a_longer_series() -> None:
    bars = random_bars(11, 300)
    r = new_reducer(horizons=(2, 6))
    run(r, bars[:250])
    p = r.pending()
    done = oracle(bars, (2, 6))
    # every pending row is a window not complete at bar 249, and every such window is pending
    emitted = {k for k, v in done.items() if v[0] <= int(bars["offset"][249])}
    all_refs = {(int(o), h) for o in bars["offset"][:250] for h in (2, 6, 0)}
    assert {(int(x["ref_offset"]), int(x["horizon"])) for x in p} == all_refs - emitted


def test_bar_reducer_listener_path_equals_feed_bars(shared_data: Path, tmp_path: Path) -> None:
    # The engine's path: provider minute bars in the log -> BarReducer (5-min roll-up) -> on_bar_closed.
    from argus.connectors.files import FileIngestOptions, ingest_csv
    from argus.kernels.bars import BarReducer
    from argus.log import EventLog

    path = shared_data / "nautilus_trader__6EH4.XCME_1min_bars_20240101_20240131.csv"
    bar_specs = [{"kind": "time", "source": "provider", "interval_ns": 5 * MINUTE}]
    listener = new_reducer()
    bar_reducer = BarReducer("bars", b"\2" * 32, bar_specs, listener=listener)
    with EventLog.open(tmp_path / "log") as log:
        ingest_csv(log, path, FileIngestOptions(kind="bars", timeframe="1m", symbol="6EH4",
                                                columns={"ts_event": "timestamp_utc"}))
        for c in log.chunks(0, None):
            bar_reducer.apply_chunk(c.body, c.first_offset, c.start, c.stop)
    bars = bar_reducer.outputs()[0][1].drain()
    rows = listener.outputs()[0][1].drain()
    assert len(bars) > 1000
    assert rows.tobytes() == run(new_reducer(), bars).tobytes()
    assert listener.next_offset == bars["offset"][-1] + 1 and listener.events == len(bars)
    assert_matches_oracle(rows, oracle(bars, (1, 5, 20)))


# -- per-(instrument, spec) state ---------------------------------------------------------------

def test_two_instruments_and_two_specs_are_kept_apart() -> None:
    parts = [random_bars(20 + k, 200, instrument=iid, spec=spec) for k, (iid, spec) in
             enumerate([(0, 0), (0, 1), (3, 0), (3, 1)])]
    bars = np.empty(800, dtype=BAR_DTYPE)
    for k, p in enumerate(parts):
        bars[k::4] = p
    bars["offset"] = np.arange(800) * 3 + 1
    rows = run(new_reducer(n_bar_specs=2), bars)
    for k, (iid, spec) in enumerate([(0, 0), (0, 1), (3, 0), (3, 1)]):
        mine = rows[(rows["instrument_id"] == iid) & (rows["spec"] == spec)]
        alone = run(new_reducer(n_bar_specs=2), bars[k::4])
        assert mine.tobytes() == alone.tobytes()
        assert_matches_oracle(mine, oracle(bars[k::4], (1, 5, 20)))


# -- session end ----------------------------------------------------------------------------------

def test_session_zero_has_no_session_end_outcome() -> None:
    bars = make_bars(np.arange(1.0, 30.0), session=0)
    r = new_reducer()
    rows = run(r, bars)
    assert 0 not in set(rows["horizon"])
    assert 0 not in set(r.pending()["horizon"])


def test_a_session_longer_than_session_cap_truncates_the_oldest_windows() -> None:
    close = np.arange(1.0, 11.0)
    bars = make_bars(close, session=[5] * 9 + [6], offsets=np.arange(10))
    rows = run(new_reducer(horizons=(), session_cap=4), bars)
    trunc = rows[rows["status"] == STATUS_TRUNCATED]
    # bars 4..8 each push out the oldest reference, whose window is the 4 bars after it
    assert list(trunc["ref_offset"]) == [0, 1, 2, 3, 4] and list(trunc["offset"]) == [4, 5, 6, 7, 8]
    np.testing.assert_allclose(trunc["forward_return"], (close[4:9] / close[0:5]) - 1, atol=1e-15)
    np.testing.assert_allclose(trunc["max_runup"], (close[4:9] / close[0:5]) - 1, atol=1e-15)
    np.testing.assert_allclose(trunc["max_drawdown"], (close[1:6] / close[0:5]) - 1, atol=1e-15)
    rest = rows[rows["status"] != STATUS_TRUNCATED]
    assert list(rest["ref_offset"]) == [5, 6, 7, 8] and set(rest["offset"]) == {9}
    np.testing.assert_allclose(rest["forward_return"], close[8] / close[5:9] - 1, atol=1e-15)


# -- snapshots ------------------------------------------------------------------------------------

@pytest.mark.parametrize("k", [0, 1, 7, 20, 21, 63, 250, 599, 600])
@pytest.mark.parametrize("cap", [2000, 5])
def test_snapshot_restore_continue_gives_identical_rows_and_digest(k: int, cap: int) -> None:
    a, b = random_bars(30, 300, instrument=0), random_bars(31, 300, instrument=2, spec=1)
    bars = np.empty(600, dtype=BAR_DTYPE)
    bars[0::2], bars[1::2] = a, b
    bars["offset"] = np.arange(600) * 3 + 10

    whole = new_reducer(n_bar_specs=2, session_cap=cap)
    expected = run(whole, bars)

    first = new_reducer(n_bar_specs=2, session_cap=cap)
    head = run(first, bars[:k])
    snap = first.snapshot()
    second = new_reducer(n_bar_specs=2, session_cap=cap)
    second.restore(snap)
    assert second.state_digest() == first.state_digest()
    assert second.pending().tobytes() == first.pending().tobytes()
    tail = run(second, bars[k:])
    assert np.concatenate([head, tail]).tobytes() == expected.tobytes()
    assert second.state_digest() == whole.state_digest()
    assert second.outputs()[0][1].digest() == whole.outputs()[0][1].digest()
    assert (second.next_offset, second.events, second.now, second.n_instruments) == \
        (whole.next_offset, whole.events, whole.now, whole.n_instruments)
    assert second.pending().tobytes() == whole.pending().tobytes()


def test_snapshot_of_another_configuration_is_refused() -> None:
    r = new_reducer()
    run(r, random_bars(1, 50))
    snap = r.snapshot()
    with pytest.raises(SnapshotError, match="config_hash"):
        new_reducer(horizons=(1, 5)).restore(snap)
    other = OutcomeReducer("outcomes", config_hash(), 1, horizons=(1, 5, 21))
    with pytest.raises(SnapshotError, match="layout"):
        other.restore(snap)


def test_a_damaged_session_count_is_refused_and_leaves_the_reducer_whole() -> None:
    r = new_reducer()
    run(r, random_bars(1, 50))
    parts = r.state_parts()
    heads = bytearray(parts[1])
    heads[16:24] = (10**6).to_bytes(8, "little")             # sess_count of slot 0
    digest = r.state_digest()
    with pytest.raises(SnapshotError, match="sess_count"):
        r.load_state_parts([parts[0], bytes(heads), parts[2], parts[3]])
    assert r.state_digest() == digest
    with pytest.raises(SnapshotError, match="session bars"):
        r.load_state_parts([parts[0], parts[1], parts[2], parts[3] + b"\0"])
    with pytest.raises(SnapshotError, match="state parts"):
        r.load_state_parts(parts[:3])
    assert r.state_digest() == digest


# -- validation and inputs ------------------------------------------------------------------------

@pytest.mark.parametrize(("kwargs", "message"), [
    ({"n_bar_specs": 0}, r"n_bar_specs = 0 must be >= 1"),
    ({"horizons": (1, 0)}, r"horizons\[1\] = 0 must be an integer in \[1, 10000\]"),
    ({"horizons": (1, 10001)}, r"horizons\[1\] = 10001 must be"),
    ({"horizons": (2.5,)}, r"horizons\[0\] = 2.5 must be an integer"),
    ({"horizons": (True,)}, r"horizons\[0\] = True must be an integer"),
    ({"horizons": (3, 3)}, r"horizons\[1\] = 3 must be unique"),
    ({"horizons": "15"}, r"horizons = '15' must be a sequence"),
    ({"horizons": (), "session_end": False}, r"at least one horizon"),
    ({"session_end": 1}, r"session_end = 1 must be a bool"),
    ({"session_cap": 0}, r"session_cap = 0 must be an integer in \[1, 1000000\]"),
])
def test_bad_configuration_is_refused_naming_field_value_and_rule(kwargs, message) -> None:
    args = {"n_bar_specs": 1} | kwargs
    n = args.pop("n_bar_specs")
    with pytest.raises(ValueError, match=message):
        OutcomeReducer("outcomes", b"\0" * 32, n, **args)


def test_feed_bars_refuses_other_dtypes_and_unknown_bar_specs() -> None:
    r = new_reducer()
    with pytest.raises(ValueError, match="BAR_FIELDS"):
        r.feed_bars(np.zeros(3))
    with pytest.raises(ValueError, match="bar spec = 1 must be < n_bar_specs = 1"):
        r.feed_bars(make_bars([1.0, 2.0], spec=1))
    with pytest.raises(TypeError, match="fed closed bars"):
        r.apply_chunk(b"\0" * 64, 0)
    with pytest.raises(TypeError, match="fed closed bars"):
        r.apply_record(b"\0" * 32, 0)
    with pytest.raises(ValueError, match="config_hash"):
        OutcomeReducer("outcomes", b"short", 1)


def test_bookkeeping_follows_the_bars() -> None:
    bars = make_bars([1.0] * 4, instrument=9, offsets=[5, 8, 9, 20])
    r = new_reducer()
    run(r, bars)
    assert (r.next_offset, r.events, r.now, r.n_instruments) == (21, 4, 4 * MINUTE, 10)
    assert r.horizons == (1, 5, 20) and r.session_end and r.session_cap == 2000
