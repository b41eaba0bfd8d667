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
