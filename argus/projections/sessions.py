"""Exchange session tables for the bar reducer: int64 (n, 2) arrays of [open_ns, close_ns) in ns UTC.

- An exchange calendar (exchange_calendars name, e.g. "XNYS", "XNAS", "XCME"): one row per trading
  session, regular hours by default, with the calendar's early closes. DST is the calendar's business:
  the rows are UTC instants, so a New York open is 14:30 UTC in winter and 13:30 UTC in summer.
- `extended=True` (US equity calendars only, i.e. those whose zone is America/New_York): the
  pre-market open at 04:00 New York time to the end of the post-market, four hours after the regular
  close and at most 20:00 New York time (so 20:00 on a normal day and 17:00 on a 13:00 early close).
- "24/7": one session per UTC calendar day [00:00, 24:00), every day (crypto).

The table covers the sessions whose date lies in [start, end] (both inclusive). The same arguments
always give the same array: it depends only on the calendar's rules, never on the clock or the cache.
"""

from __future__ import annotations

import datetime as dt
import warnings
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

CONTINUOUS = "24/7"
NEW_YORK = ZoneInfo("America/New_York")
DAY_NS = 86_400 * 1_000_000_000
HOUR_NS = 3_600 * 1_000_000_000


def _date(value: str | dt.date | None, name: str) -> dt.date:
    if value is None:
        raise ValueError(f"{name} = None must be a date (YYYY-MM-DD or datetime.date)")
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        raise ValueError(f"{name} = {value!r} must be a date (YYYY-MM-DD or datetime.date)") from None


def _ny_ns(day: dt.date, hour: int) -> int:
    """ns UTC of a whole hour of New York wall time on a day (DST-correct)."""
    return int(dt.datetime(day.year, day.month, day.day, hour, tzinfo=NEW_YORK).timestamp()) * 1_000_000_000


def session_table(calendar: str = "XNYS", start: str | dt.date | None = None, end: str | dt.date | None = None,
                  extended: bool = False) -> np.ndarray:
    """[open_ns, close_ns) of every session dated in [start, end], as a C-contiguous int64 (n, 2) array."""
    first, last = _date(start, "start"), _date(end, "end")
    if last < first:
        raise ValueError(f"end = {last.isoformat()} must not be before start = {first.isoformat()}")
    if calendar == CONTINUOUS:
        if extended:
            raise ValueError("extended = True applies to US equity calendars, not to '24/7'")
        epoch = dt.date(1970, 1, 1)
        days = np.arange((first - epoch).days, (last - epoch).days + 1, dtype=np.int64)
        return np.ascontiguousarray(np.stack([days * DAY_NS, (days + 1) * DAY_NS], axis=1))

    import exchange_calendars as xcals

    with warnings.catch_warnings():  # pandas deprecation notices raised inside exchange_calendars
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        try:
            cal = xcals.get_calendar(calendar, start=(first - dt.timedelta(days=7)).isoformat(),
                                     end=(last + dt.timedelta(days=7)).isoformat())
        except xcals.errors.InvalidCalendarName:
            raise ValueError(f"calendar = {calendar!r} must be an exchange_calendars name (e.g. 'XNYS') "
                             f"or {CONTINUOUS!r}") from None
        if extended and str(cal.tz) != "America/New_York":
            raise ValueError(f"extended = True needs a US equity calendar in America/New_York; "
                             f"calendar = {calendar!r} is in {cal.tz}")
        sched = cal.schedule.loc[pd.Timestamp(first):pd.Timestamp(last)]
        opens = sched["open"].to_numpy(dtype="datetime64[ns]").astype(np.int64)
        closes = sched["close"].to_numpy(dtype="datetime64[ns]").astype(np.int64)
        days = [ts.date() for ts in sched.index]
    if extended:
        opens = np.array([_ny_ns(d, 4) for d in days], dtype=np.int64)
        closes = np.minimum(closes + 4 * HOUR_NS, np.array([_ny_ns(d, 20) for d in days], dtype=np.int64))
    out = np.empty((len(days), 2), dtype=np.int64)
    out[:, 0] = opens
    out[:, 1] = closes
    return out


# -- global session tags ---------------------------------------------------------------------------
#
# global_session_segments() partitions time into labelled, contiguous, sorted segments [start, end) in
# ns UTC. The partition is built per calendar day D (New York date) as one block
# [20:00 New York on D-1, 20:00 New York on D):
#
#   Saturday, Sunday:   the whole block is WEEKEND, so WEEKEND = [Friday 20:00 NY, Sunday 20:00 NY);
#                       "Sunday's Asia open" is Sunday 20:00 New York.
#   Monday..Friday:     ASIA        [20:00 NY on D-1, 08:00 Europe/London on D)
#                       EUROPE      [08:00 London, 04:00 NY)   (empty, so absent, in the weeks when the
#                                                               US and UK DST switches differ)
#                       US_PRE      [04:00 NY, XNYS open)      (09:30 NY; the calendar's open)
#                       US_REGULAR  [XNYS open, XNYS close)    (16:00 NY; 13:00 on early closes)
#                       US_POST     [XNYS close, 20:00 NY)
#   XNYS holiday (a Monday..Friday that is not an XNYS session): ASIA and EUROPE keep their labels
#                       (those markets trade) and [04:00 NY, 20:00 NY) is one HOLIDAY segment.
#
# US labels take priority where zones overlap (08:00 London is never after 04:00 New York). Tokyo's
# 09:00-15:00 session lies inside ASIA except, in the northern winter, its first hour (09:00 Tokyo =
# 19:00 NY EST), which is still US_POST. Adjacent segments with the same label are merged, so a label
# change is always a segment boundary. All wall times are converted with zoneinfo (DST-correct); the
# regular open and close come from exchange_calendars XNYS. Instants outside the table get SESSION_NONE.

SESSION_NONE = 0
SESSION_ASIA = 1
SESSION_EUROPE = 2
SESSION_US_PRE = 3
SESSION_US_REGULAR = 4
SESSION_US_POST = 5
SESSION_WEEKEND = 6
SESSION_HOLIDAY = 7
SESSION_NAMES = {
    SESSION_NONE: "none", SESSION_ASIA: "asia", SESSION_EUROPE: "europe", SESSION_US_PRE: "us_pre",
    SESSION_US_REGULAR: "us_regular", SESSION_US_POST: "us_post", SESSION_WEEKEND: "weekend",
    SESSION_HOLIDAY: "holiday",
}
LONDON = ZoneInfo("Europe/London")


def _wall_ns(days: pd.DatetimeIndex, offset: pd.Timedelta, zone: ZoneInfo) -> np.ndarray:
    """ns UTC of wall time (midnight of each day + offset) in a zone. The wall times used (04:00, 08:00,
    20:00) are never in a DST gap or fold."""
    local = (days + offset).tz_localize(zone, ambiguous="raise", nonexistent="raise")
    return local.tz_convert("UTC").tz_localize(None).to_numpy(dtype="datetime64[ns]").astype(np.int64)


_SEGMENT_CACHE: dict[tuple[dt.date, dt.date], tuple[np.ndarray, np.ndarray]] = {}


def global_session_segments(start: str | dt.date, end: str | dt.date) -> tuple[np.ndarray, np.ndarray]:
    """(segments, labels): the session partition of the New York dates [start, end] (both inclusive),
    i.e. of [20:00 NY on start - 1 day, 20:00 NY on end). segments is a read-only C-contiguous int64
    (n, 2) array of [start_ns, end_ns) in UTC, contiguous (segments[i, 1] == segments[i + 1, 0]) and
    sorted; labels a read-only uint8 (n,) array of SESSION_* values. See the comment above for the rules."""
    first, last = _date(start, "start"), _date(end, "end")
    if last < first:
        raise ValueError(f"end = {last.isoformat()} must not be before start = {first.isoformat()}")
    cached = _SEGMENT_CACHE.get((first, last))
    if cached is not None:
        return cached

    import exchange_calendars as xcals

    with warnings.catch_warnings():  # pandas deprecation notices raised inside exchange_calendars
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        cal = xcals.get_calendar("XNYS", start=(first - dt.timedelta(days=7)).isoformat(),
                                 end=(last + dt.timedelta(days=7)).isoformat())
        sched = cal.schedule.loc[pd.Timestamp(first):pd.Timestamp(last)]
        days = pd.date_range(pd.Timestamp(first), pd.Timestamp(last), freq="D")
        sched = sched.reindex(days)
        opens = sched["open"].to_numpy(dtype="datetime64[ns]").astype(np.int64)
        closes = sched["close"].to_numpy(dtype="datetime64[ns]").astype(np.int64)
        is_session = ~sched["open"].isna().to_numpy()
    hour = pd.Timedelta(hours=1)
    b = np.empty((len(days), 6), dtype=np.int64)
    b[:, 0] = _wall_ns(days, -4 * hour, NEW_YORK)  # 20:00 NY on the day before
    b[:, 1] = _wall_ns(days, 8 * hour, LONDON)
    b[:, 2] = _wall_ns(days, 4 * hour, NEW_YORK)
    b[:, 3] = np.where(is_session, opens, b[:, 2])
    b[:, 4] = np.where(is_session, closes, b[:, 2])
    b[:, 5] = _wall_ns(days, 20 * hour, NEW_YORK)
    weekend = days.day_of_week.to_numpy() >= 5
    holiday = ~weekend & ~is_session
    labels = np.empty((len(days), 5), dtype=np.uint8)
    labels[:] = (SESSION_ASIA, SESSION_EUROPE, SESSION_US_PRE, SESSION_US_REGULAR, SESSION_US_POST)
    labels[weekend] = SESSION_WEEKEND
    labels[holiday, 2:] = SESSION_HOLIDAY
    b[weekend, 1:5] = b[weekend, 0:1]
    if np.any(np.diff(b, axis=1) < 0):
        i = int(np.flatnonzero(np.any(np.diff(b, axis=1) < 0, axis=1))[0])
        raise ValueError(f"session boundaries of {days[i].date()} = {b[i].tolist()} must be non-decreasing")
    starts, ends, labs = b[:, :5].ravel(), b[:, 1:].ravel(), labels.ravel()
    keep = ends > starts
    starts, ends, labs = starts[keep], ends[keep], labs[keep]
    # Merge runs of one label.
    first_of_run = np.ones(len(labs), dtype=bool)
    first_of_run[1:] = labs[1:] != labs[:-1]
    idx = np.flatnonzero(first_of_run)
    seg = np.empty((len(idx), 2), dtype=np.int64)
    seg[:, 0] = starts[idx]
    seg[:-1, 1] = starts[idx[1:]]
    seg[-1, 1] = ends[-1]
    out_labels = np.ascontiguousarray(labs[idx])
    seg.setflags(write=False)
    out_labels.setflags(write=False)
    _SEGMENT_CACHE[(first, last)] = (seg, out_labels)
    return seg, out_labels


def label_at(ts_ns, segments: np.ndarray | None = None, labels: np.ndarray | None = None) -> np.ndarray:
    """SESSION_* label of each ns UTC instant (SESSION_NONE outside the table). Without a table, the
    partition of the dates around the instants is built."""
    ts = np.asarray(ts_ns, dtype=np.int64)
    if segments is None or labels is None:
        if ts.size == 0:
            return np.zeros(ts.shape, dtype=np.uint8)
        lo = pd.Timestamp(int(ts.min()), unit="ns").date() - dt.timedelta(days=1)
        hi = pd.Timestamp(int(ts.max()), unit="ns").date() + dt.timedelta(days=1)
        segments, labels = global_session_segments(lo, hi)
    i = np.searchsorted(segments[:, 0], ts, side="right") - 1
    inside = (i >= 0) & (ts < segments[np.clip(i, 0, None), 1])
    return np.where(inside, labels[np.clip(i, 0, None)], SESSION_NONE).astype(np.uint8)
