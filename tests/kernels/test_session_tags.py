"""SessionTagReducer and the global session partition (argus.projections.sessions).

Expected boundaries are written by hand in UTC from the exchanges' published hours (US regular session
09:30-16:00 New York, 13:00 on early closes; DST switches 2024-03-10 in the US, 2024-03-31 in the UK);
the reducer must agree record by record and chunk by chunk, and from a snapshot."""

from __future__ import annotations

import hashlib
import warnings

import numpy as np
import pandas as pd
import pytest

from argus.events import codec
from argus.events.codec import Event
from argus.events.layout import NO_INSTRUMENT
from argus.events.types import EventType
from argus.kernels.session_tags import SESSION_FIELDS, SessionTagReducer, layout_info
from argus.projections import sessions as ss
from argus.projections.sessions import (
    SESSION_ASIA,
    SESSION_EUROPE,
    SESSION_HOLIDAY,
    SESSION_NAMES,
    SESSION_US_POST,
    SESSION_US_PRE,
    SESSION_US_REGULAR,
    SESSION_WEEKEND,
    global_session_segments,
    label_at,
)

MIN = 60 * 1_000_000_000
CFG = hashlib.blake2b(b"session tags test", digest_size=32).digest()
SEG, LAB = global_session_segments("2023-12-01", "2025-01-31")
ROW = np.dtype(list(SESSION_FIELDS))


def utc(s: str) -> int:
    return pd.Timestamp(s, tz="UTC").value


def reducer() -> SessionTagReducer:
    return SessionTagReducer("sessions", CFG, SEG, LAB)


def lab(s: str) -> int:
    got = int(label_at([utc(s)], SEG, LAB)[0])
    assert reducer().label_at(utc(s)) == got
    return got


def test_row_layout_matches_session_fields():
    size, offsets = layout_info()
    assert size == ROW.itemsize == 24
    assert offsets == {n: ROW.fields[n][1] for n in ROW.names}


def test_dst_switch_moves_the_us_sessions_in_utc():
    # Week before the US switch: EST, regular 14:30-21:00 UTC.
    assert lab("2024-03-04 14:29:59") == SESSION_US_PRE
    assert lab("2024-03-04 14:30") == SESSION_US_REGULAR
    assert lab("2024-03-04 20:59:59") == SESSION_US_REGULAR
    assert lab("2024-03-04 21:00") == SESSION_US_POST
    assert lab("2024-03-04 09:00") == SESSION_US_PRE  # 04:00 EST
    assert lab("2024-03-04 08:59") == SESSION_EUROPE  # from 08:00 London (GMT)
    assert lab("2024-03-04 07:59") == SESSION_ASIA
    # After the switch: EDT, regular 13:30-20:00 UTC; pre-market from 08:00 UTC = 08:00 London, so no Europe.
    assert lab("2024-03-11 13:29:59") == SESSION_US_PRE
    assert lab("2024-03-11 13:30") == SESSION_US_REGULAR
    assert lab("2024-03-11 19:59:59") == SESSION_US_REGULAR
    assert lab("2024-03-11 20:00") == SESSION_US_POST
    assert lab("2024-03-11 07:59") == SESSION_ASIA
    assert lab("2024-03-11 08:00") == SESSION_US_PRE
    assert lab("2024-03-12 00:00") == SESSION_ASIA   # 20:00 EDT
    # After the UK switch too: Europe is back, 07:00-08:00 UTC.
    assert lab("2024-04-02 07:00") == SESSION_EUROPE
    assert lab("2024-04-02 06:59") == SESSION_ASIA


def test_holiday_keeps_asia_and_europe_and_makes_us_hours_holiday():
    # Good Friday 2024-03-29: XNYS closed.
    assert lab("2024-03-29 03:00") == SESSION_ASIA
    for t in ("2024-03-29 08:00", "2024-03-29 14:00", "2024-03-29 22:00", "2024-03-29 23:59"):
        assert lab(t) == SESSION_HOLIDAY, t
    assert lab("2024-03-30 00:00") == SESSION_WEEKEND  # Friday 20:00 EDT
    # Thanksgiving 2024-11-28 (a Thursday, in EST).
    assert lab("2024-11-28 08:30") == SESSION_EUROPE
    assert lab("2024-11-28 09:00") == SESSION_HOLIDAY
    assert lab("2024-11-29 01:00") == SESSION_ASIA


def test_half_day_ends_the_regular_session_at_1300_new_york():
    assert lab("2024-11-29 14:30") == SESSION_US_REGULAR
    assert lab("2024-11-29 17:59:59") == SESSION_US_REGULAR
    assert lab("2024-11-29 18:00") == SESSION_US_POST
    assert lab("2024-11-30 00:59") == SESSION_US_POST
    assert lab("2024-11-30 01:00") == SESSION_WEEKEND


def test_weekend_runs_from_friday_2000_to_sunday_2000_new_york():
    assert lab("2024-03-09 12:00") == SESSION_WEEKEND
    assert lab("2024-03-09 00:59") == SESSION_US_POST   # Friday 19:59 EST
    assert lab("2024-03-09 01:00") == SESSION_WEEKEND
    assert lab("2024-03-10 23:59") == SESSION_WEEKEND   # DST began Sunday: 20:00 EDT = 00:00 UTC Monday
    assert lab("2024-03-11 00:00") == SESSION_ASIA
    assert lab("2020-01-01 00:00") == 0  # outside the table


def clocks(start: str, days: int) -> list[Event]:
    t0 = utc(start)
    return [Event(EventType.CLOCK, ts_event=t0 + i * MIN, ts_recv=t0 + i * MIN, instrument_id=NO_INSTRUMENT)
            for i in range(days * 1440)]


def body_of(events: list[Event]) -> bytes:
    return codec.concat(codec.encode(e) for e in events)


def test_minute_clocks_over_three_days_emit_each_transition_at_its_boundary():
    r = reducer()
    events = clocks("2024-03-07 00:00", 3)  # Thursday .. Saturday
    r.apply_chunk(body_of(events), 0)
    rows = r.out.drain()
    t0, t1 = events[0].ts_event, events[-1].ts_event
    i = np.flatnonzero((SEG[:, 0] > t0) & (SEG[:, 0] <= t1))
    assert rows["ts_event"][1:].tolist() == SEG[i, 0].tolist()
    assert rows["to_label"][1:].tolist() == LAB[i].tolist()
    assert rows["from_label"][1:].tolist() == rows["to_label"][:-1].tolist()
    assert (rows["offset"] == (rows["ts_event"] - t0) // MIN).all()
    names = [SESSION_NAMES[x] for x in rows["to_label"]]
    assert names == ["us_post",                                                 # Wednesday 19:00 EST
                     "asia", "europe", "us_pre", "us_regular", "us_post",       # Thursday
                     "asia", "europe", "us_pre", "us_regular", "us_post",       # Friday
                     "weekend"]
    assert rows["from_label"][0] == 0
    got = {(pd.Timestamp(int(t), tz="UTC").strftime("%a %H:%M"), SESSION_NAMES[x])
           for t, x in zip(rows["ts_event"], rows["to_label"], strict=True)}
    assert {("Thu 14:30", "us_regular"), ("Thu 21:00", "us_post"), ("Fri 01:00", "asia"), ("Fri 08:00", "europe"),
            ("Fri 09:00", "us_pre"), ("Sat 01:00", "weekend")} <= got


def mixed_events() -> list[Event]:
    """Clocks, trades of an equity and of a crypto instrument, and a step back in time."""
    rng = np.random.default_rng(3)
    t = utc("2024-03-28 00:00")
    out = []
    for _ in range(3_000):
        t += int(rng.integers(0, 4 * MIN))
        kind = rng.random()
        ts = t - (int(rng.integers(0, 600 * MIN)) if rng.random() < 0.01 else 0)
        if kind < 0.3:
            out.append(Event(EventType.CLOCK, ts_event=ts, ts_recv=ts, instrument_id=NO_INSTRUMENT))
        else:
            out.append(Event(EventType.TRADE, ts_event=ts, ts_recv=ts, instrument_id=int(rng.integers(0, 2)) * 7,
                             data={"price": 1.0, "size": 1.0}))
    return out


def test_live_equals_chunk_and_rows_follow_the_labels():
    events = mixed_events()
    body = body_of(events)
    live, replay = reducer(), reducer()
    for off, rec in codec.iter_records(body, 0):
        live.apply_record(rec, off)
    replay.apply_chunk(body, 0)
    a, b = live.out.drain(), replay.out.drain()
    assert len(a) > 20 and a.tobytes() == b.tobytes()
    assert live.state_digest() == replay.state_digest()
    labels = label_at([e.ts_event for e in events], SEG, LAB)
    change = np.flatnonzero(np.diff(np.concatenate([[0], labels.astype(int)])) != 0)
    assert a["offset"].tolist() == change.tolist()
    assert a["to_label"].tolist() == labels[change].tolist()
    assert live.current == labels[-1]


@pytest.mark.parametrize("k", [0, 1, 777, 1_500, 2_999, 3_000])
def test_snapshot_restore_at_k_continues_identically(k):
    body = body_of(mixed_events())
    full = reducer()
    full.apply_chunk(body, 0)
    want = full.out.drain()
    first = reducer()
    first.apply_chunk(body, 0, 0, k)
    got_first = first.out.drain()
    second = reducer()
    second.restore(first.snapshot())
    assert second.state_digest() == first.state_digest() and second.current == first.current
    for off, rec in codec.iter_records(body, 0):
        if off >= k:
            second.apply_record(rec, off)
    assert np.concatenate([got_first, second.out.drain()]).tobytes() == want.tobytes()
    assert second.state_digest() == full.state_digest()


def test_partition_2000_2035_is_contiguous_and_complete():
    seg, labels = global_session_segments("2000-01-01", "2035-12-31")
    assert seg.dtype == np.int64 and labels.dtype == np.uint8 and seg.flags.c_contiguous
    assert (seg[:, 0] < seg[:, 1]).all()
    assert (seg[1:, 0] == seg[:-1, 1]).all()  # no gap, no overlap
    assert (labels[1:] != labels[:-1]).all()  # runs merged: every boundary is a label change
    assert set(np.unique(labels).tolist()) == set(range(1, 8))
    assert seg[0, 0] == utc("2000-01-01 01:00")   # Friday 1999-12-31 20:00 EST
    assert seg[-1, 1] == utc("2036-01-01 01:00")  # Monday 2035-12-31 20:00 EST
    import exchange_calendars as xcals
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sched = xcals.get_calendar("XNYS", start="2000-01-01", end="2035-12-31").schedule
    regular = seg[labels == SESSION_US_REGULAR]
    assert len(regular) == len(sched)
    assert np.array_equal(regular[:, 0], sched["open"].to_numpy(dtype="datetime64[ns]").astype(np.int64))
    assert np.array_equal(regular[:, 1], sched["close"].to_numpy(dtype="datetime64[ns]").astype(np.int64))
    SessionTagReducer("sessions", CFG, seg, labels)  # the reducer accepts the whole table


def test_label_at_and_the_reducer_agree_on_random_instants():
    r = reducer()
    ts = np.random.default_rng(1).integers(SEG[0, 0] - MIN, SEG[-1, 1] + MIN, 500)
    got = label_at(ts, SEG, LAB)
    assert [r.label_at(int(t)) for t in ts] == got.tolist()
    inner = ts[(ts >= utc("2024-01-02")) & (ts < utc("2024-12-30"))]
    assert np.array_equal(label_at(inner), label_at(inner, SEG, LAB))  # the table built around the instants
    assert {ss.SESSION_ASIA, ss.SESSION_EUROPE, ss.SESSION_US_PRE} <= set(got.tolist())


@pytest.mark.parametrize(("segments", "labels", "match"), [
    (np.zeros((0, 2), np.int64), np.zeros(0, np.uint8), r"segments shape = \(0, 2\)"),
    (np.array([[0, 10], [11, 20]]), np.array([1, 2]), r"segments\[1\] start = 11 must equal segments\[0\] end = 10"),
    (np.array([[0, 10], [10, 10]]), np.array([1, 2]), r"segments\[1\] = \[10, 10\) must have start < end"),
    (np.array([[0, 10]]), np.array([0]), r"must be integers in \[1, 255\]"),
    (np.array([[0, 10]]), np.array([1, 2]), r"labels shape = \(2,\)"),
    (np.array([[0.0, 10.0]]), np.array([1]), r"segments dtype = float64"),
])
def test_bad_tables_are_refused(segments, labels, match):
    with pytest.raises(ValueError, match=match):
        SessionTagReducer("sessions", CFG, segments, labels)
