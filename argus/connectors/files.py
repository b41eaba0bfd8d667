"""Import trades, quotes and bars from CSV and Parquet files into the event log.

One file is one atomic append (DESIGN.md §1.6): the InstrumentDefined events of the symbols the log
does not know yet come first, then one record per good row, in file order (log order is processing
order, §1.2; rows are never sorted). Every row is checked here, before anything is written, with the
same rules the log applies (argus/kernels/codec.pyx) plus those only a file can break (missing values,
unparseable or DST-ambiguous times); a bad row refuses the whole file with `file:line: reason`, or is
skipped when `skip_bad` is set.

Columns. Header names are matched case-insensitively, with surrounding whitespace (and a UTF-8 BOM)
stripped and inner spaces or hyphens read as `_`. Each target field has a list of accepted names
(ALIASES); `columns` maps target -> file column for anything else. Targets:

  ts_event, ts_recv, date, time, symbol            every kind
  price, size, trade_id, side, buyer_maker         trades
  bid, ask, bid_size, ask_size                     quotes
  open, high, low, close, volume, trade_count      bars

Time. A timestamp column holds numeric epochs (unit from `ts_unit`, else guessed from the largest
magnitude: < 1e11 seconds, < 1e14 milliseconds, < 1e17 microseconds, else nanoseconds; 8-digit
integers that read as YYYYMMDD dates are dates), datetime values (Parquet), or strings (ISO-8601 first,
then the format pandas infers from the first other value, or `ts_format`). A separate `date` and `time`
pair is joined as "date time". Values with a UTC offset are converted to UTC; naive ones are local
times in `tz` (default UTC), and a local time that a DST change makes ambiguous or nonexistent is a
bad row. Everything is stored as int64 ns since the Unix epoch, UTC. Without a receive-time column,
ts_recv = ts_event.

Bars. The file's time is the bar's open time (`bar_time="start"`, the default) or its close time
(`"end"`); the Bar event's ts_event is the bar's end, so a bar is never seen before it closed, and its
interval_ns is the timeframe.
"""

from __future__ import annotations

import csv
import io
import math
import re
import sys
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from tqdm import tqdm

from argus.errors import ArgusError
from argus.events import codec
from argus.events.durations import parse_duration
from argus.events.types import AggressorSide, EventType, InstrumentKind
from argus.log.store import EventLog, instrument_event

Kind = Literal["trades", "quotes", "bars"]
BarTime = Literal["start", "end"]

KINDS: tuple[str, ...] = ("trades", "quotes", "bars")

#: Nanoseconds per unit of a numeric epoch.
TS_UNITS: dict[str, int] = {"s": 1_000_000_000, "ms": 1_000_000, "us": 1_000, "ns": 1}

#: Instrument kinds a file import may declare (options need contract terms a flat file lacks).
INSTRUMENT_KINDS: dict[str, InstrumentKind] = {
    "equity": InstrumentKind.EQUITY,
    "future": InstrumentKind.FUTURE,
    "fx": InstrumentKind.FX,
    "crypto": InstrumentKind.CRYPTO,
    "index": InstrumentKind.INDEX,
}

#: Accepted (normalized) file column names of each target field, in order of preference.
ALIASES: dict[str, tuple[str, ...]] = {
    "ts_event": ("ts_event", "timestamp", "datetime", "date_time", "timestamp_utc", "ts"),
    "ts_recv": ("ts_recv",),
    "date": ("date",),
    "time": ("time",),
    "symbol": ("symbol", "ticker", "instrument"),
    "price": ("price", "trade_price"),
    "size": ("size", "quantity", "qty", "amount", "trade_size"),
    "trade_id": ("trade_id", "id", "tradeid"),
    "side": ("side", "aggressor", "aggressor_side", "taker_side"),
    "buyer_maker": ("buyer_maker", "is_buyer_maker", "isbuyermaker"),
    "bid": ("bid", "bid_price", "best_bid", "bidprice"),
    "ask": ("ask", "ask_price", "best_ask", "askprice", "offer", "offer_price"),
    "bid_size": ("bid_size", "bid_amount", "bid_qty", "bid_quantity", "bid_volume", "bidsize"),
    "ask_size": ("ask_size", "ask_amount", "ask_qty", "ask_quantity", "ask_volume", "asksize", "offer_size"),
    "open": ("open",),
    "high": ("high",),
    "low": ("low",),
    "close": ("close",),
    "volume": ("volume", "vol"),
    "trade_count": ("trade_count", "trades", "num_trades", "number_of_trades", "n_trades", "count"),
}
TARGETS: tuple[str, ...] = tuple(ALIASES)

_REQUIRED: dict[str, tuple[str, ...]] = {
    "trades": ("price", "size"),
    "quotes": ("bid", "ask"),
    "bars": ("open", "high", "low", "close"),
}
_EVENT_TYPE: dict[str, EventType] = {"trades": EventType.TRADE, "quotes": EventType.QUOTE, "bars": EventType.BAR}
#: Columns read as text from a CSV (so that no epoch loses digits to a float, and no id is mangled).
_TEXT_TARGETS = ("ts_event", "ts_recv", "date", "time", "symbol", "side", "buyer_maker", "trade_id")

_NUMBER_RE = r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?"
_INTEGER_RE = r"[+-]?\d+"
_AWARE_RE = r"(?:[zZ]|[+-]\d{2}:?\d{2}|\s*(?:UTC|GMT|utc|gmt))$"
_INT64_MAX = np.iinfo(np.int64).max
_SHOWN_BAD_ROWS = 5


class FileIngestError(ArgusError, ValueError):
    """A file cannot be imported as asked (unknown columns, a header that does not match its rows,
    a bad option); nothing was written."""


class BadRowsError(FileIngestError):
    """Rows of a file broke a rule; nothing was written. `rows` holds (location, reason) of the first
    few, `count` how many there were."""

    def __init__(self, path: str, count: int, rows: list[tuple[str, str]]):
        self.path = path
        self.count = count
        self.rows = rows
        lines = [f"{where}: {reason}" for where, reason in rows]
        more = f" ({count - len(rows)} more not shown)" if count > len(rows) else ""
        lines.append(f"{path}: {count} bad row{'s' if count != 1 else ''}{more}; nothing was written "
                     "(skip_bad / --skip-bad skips bad rows)")
        super().__init__("\n".join(lines))


@dataclass(frozen=True)
class FileIngestOptions:
    """How to read one file. See the module docstring for the column and time rules."""

    kind: Kind | None = None  # None: bid+ask -> quotes, open/high/low/close -> bars, price -> trades
    columns: Mapping[str, str] = field(default_factory=dict)  # target -> file column
    names: Sequence[str] | None = None  # replaces the file's header row (CSV) or column names (Parquet)
    header: bool = True  # CSV: False when the first line is data (then `names` is required)
    delimiter: str = ","
    encoding: str = "utf-8-sig"
    symbol: str | None = None  # required unless the file has a symbol column
    timeframe: str | None = None  # bars: "1m", "5m", "1h", "1d", ...
    bar_time: BarTime = "start"
    ts_unit: str | None = None  # numeric epochs: s, ms, us or ns; None guesses from the magnitude
    ts_format: str | None = None  # strptime format of string timestamps; None: ISO-8601, then inferred
    tz: str = "UTC"  # zone of naive timestamps
    instrument_kind: str = "equity"
    venue: str = ""
    currency: str = ""
    multiplier: float = 1.0
    skip_bad: bool = False
    progress: bool | None = None  # None: a progress bar only when stderr is a terminal

    def __post_init__(self) -> None:
        _check_options(self)


@dataclass
class IngestSummary:
    """What one import wrote. Offsets are None when nothing was written."""

    path: str
    kind: str
    rows: int
    events: int
    instruments_defined: int
    symbols: list[str]
    bad_rows_skipped: int
    first_offset: int | None
    last_offset: int | None
    bad_rows_shown: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Table:
    """The rows of a file as read, with the location (line or row number) of each for error messages."""

    path: str
    frame: pd.DataFrame
    locations: np.ndarray  # int64, one per row
    unit: Literal["line", "row"]  # "line": physical line in a text file (header = 1); "row": 1-based row

    def where(self, i: int) -> str:
        n = int(self.locations[i])
        return f"{self.path}:{n}" if self.unit == "line" else f"{self.path}:row {n}"


# -- options -------------------------------------------------------------------------------------


def _check_options(o: FileIngestOptions) -> None:
    if o.kind is not None and o.kind not in KINDS:
        raise FileIngestError(f"kind = {o.kind!r} must be one of {', '.join(KINDS)}")
    if o.ts_unit is not None and o.ts_unit not in TS_UNITS:
        raise FileIngestError(f"ts_unit = {o.ts_unit!r} must be one of {', '.join(TS_UNITS)}")
    if o.bar_time not in ("start", "end"):
        raise FileIngestError(f"bar_time = {o.bar_time!r} must be 'start' or 'end'")
    if o.instrument_kind not in INSTRUMENT_KINDS:
        raise FileIngestError(f"instrument_kind = {o.instrument_kind!r} must be one of {', '.join(INSTRUMENT_KINDS)}")
    if not (math.isfinite(o.multiplier) and o.multiplier > 0):
        raise FileIngestError(f"multiplier = {o.multiplier!r} must be finite and > 0")
    if o.symbol is not None and (not o.symbol.strip() or o.symbol != o.symbol.strip()):
        raise FileIngestError(f"symbol = {o.symbol!r} must be non-empty with no surrounding spaces")
    if not o.header and not o.names:
        raise FileIngestError("a file without a header row needs names (--names)")
    if o.timeframe is not None:
        parse_timeframe(o.timeframe)
    check_timezone(o.tz)
    for target in o.columns:
        target_name(target)


def check_timezone(tz: str) -> str:
    """The zone name if pandas knows it; raises FileIngestError otherwise."""
    try:
        pd.Timestamp("2000-01-01").tz_localize(tz)
    except Exception as exc:  # noqa: BLE001 - pytz, zoneinfo and dateutil raise different errors
        raise FileIngestError(f"tz = {tz!r} must be a time zone name such as 'UTC' or 'Europe/Berlin'") from exc
    return tz


def parse_timeframe(text: str) -> int:
    """A bar timeframe such as "30s", "1m", "5min", "1h", "1d" or "1w", in nanoseconds.

    Months and years are refused: they have no fixed length."""
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise FileIngestError(str(exc)) from None


def parse_mapping(text: str | None) -> dict[str, str]:
    """`target=column,target=column` (the --columns option) as a dict of target -> file column."""
    out: dict[str, str] = {}
    if not text:
        return out
    for part in text.split(","):
        if not part.strip():
            continue
        target, sep, column = part.partition("=")
        if not sep or not target.strip() or not column.strip():
            raise FileIngestError(f"columns: {part.strip()!r} must be TARGET=COLUMN, e.g. ts_recv=local_timestamp")
        out[target_name(target)] = column.strip()
    return out


def parse_names(text: str | None) -> list[str] | None:
    """`a,b,c` (the --names option) as a list of column names, or None."""
    if not text:
        return None
    names = [n.strip() for n in text.split(",")]
    if any(not n for n in names):
        raise FileIngestError(f"names = {text!r} must be comma-separated non-empty names")
    return names


def normalize(name: object) -> str:
    """A column name as matched: BOM and surrounding whitespace stripped, lower case, spaces and
    hyphens as '_'."""
    text = str(name).replace("\ufeff", "").strip().lower()
    return re.sub(r"[\s\-]+", "_", text)


def target_name(name: str) -> str:
    """The target field a --columns key names (a target or one of its aliases, e.g. timestamp)."""
    key = normalize(name)
    if key in ALIASES:
        return key
    for target, names in ALIASES.items():
        if key in names:
            return target
    raise FileIngestError(f"columns: {name!r} is not a target field; targets are {', '.join(TARGETS)}")


# -- reading -------------------------------------------------------------------------------------


def read_csv(path: str | Path, options: FileIngestOptions) -> Table:
    """Read a CSV file into a Table (timestamp, id and text columns as strings).

    Blank lines are skipped; each row's physical line number (header = line 1) is kept."""
    path = str(path)
    data = Path(path).read_bytes()
    header = 0 if options.header else None
    names = list(options.names) if options.names else None
    kwargs: dict[str, Any] = dict(sep=options.delimiter, header=header, names=names, index_col=False,
                                  encoding=options.encoding, skip_blank_lines=True)
    try:
        head = pd.read_csv(io.BytesIO(data), nrows=0, **kwargs)
        _check_field_count(path, data, options, [str(c) for c in head.columns])
        text_cols = [raw for raw in _text_columns(list(head.columns), options)]
        with warnings.catch_warnings():
            warnings.simplefilter("error", pd.errors.ParserWarning)
            frame = pd.read_csv(io.BytesIO(data), dtype={c: "str" for c in text_cols}, **kwargs)
    except (pd.errors.ParserError, pd.errors.ParserWarning, UnicodeDecodeError) as exc:
        raise FileIngestError(f"{path}: cannot read it as CSV: {exc}".rstrip()) from exc
    except pd.errors.EmptyDataError as exc:
        raise FileIngestError(f"{path}: the file is empty") from exc
    lines = _data_lines(data, options.header)
    if len(lines) != len(frame):
        lines = _data_lines_by_csv(data, options)
    if len(lines) != len(frame):  # no honest line numbers: fall back to row numbers
        return Table(path, frame, np.arange(1, len(frame) + 1, dtype=np.int64), "row")
    return Table(path, frame, lines, "line")


def read_parquet(path: str | Path, options: FileIngestOptions) -> Table:
    """Read a Parquet file into a Table; locations are 1-based row numbers."""
    path = str(path)
    try:
        frame = pd.read_parquet(path, engine="pyarrow")
    except Exception as exc:  # noqa: BLE001 - pyarrow raises several types for a bad file
        raise FileIngestError(f"{path}: cannot read it as Parquet: {exc}") from exc
    if options.names:
        if len(options.names) != len(frame.columns):
            raise FileIngestError(f"{path}: names gives {len(options.names)} names but the file has "
                                  f"{len(frame.columns)} columns ({', '.join(map(str, frame.columns))})")
        frame.columns = list(options.names)
    return Table(path, frame.reset_index(drop=True), np.arange(1, len(frame) + 1, dtype=np.int64), "row")


def _text_columns(raw_columns: list[str], options: FileIngestOptions) -> list[str]:
    """The raw names of the columns to read as text (timestamps, symbol, side, ids)."""
    resolved = resolve_columns(raw_columns, options.columns, options.kind, strict=False)
    return [resolved[t] for t in _TEXT_TARGETS if t in resolved]


def _check_field_count(path: str, data: bytes, options: FileIngestOptions, columns: list[str]) -> None:
    """Refuse a file whose first data row has more or fewer fields than there are column names
    (pandas would silently shift or drop fields)."""
    rows = csv.reader(io.StringIO(data[:1 << 16].decode(options.encoding, errors="replace")),
                      delimiter=options.delimiter)
    seen = 0
    for row in rows:
        if not row or all(not f.strip() for f in row) and len(row) <= 1:
            continue
        seen += 1
        if options.header and seen == 1:
            continue
        if len(row) != len(columns):
            named = "names" if options.names else "the header"
            raise FileIngestError(
                f"{path}:{rows.line_num}: the row has {len(row)} fields but {named} gives {len(columns)} "
                f"({', '.join(columns)}); name every field with names (--names)")
        return


def _data_lines(data: bytes, has_header: bool) -> np.ndarray:
    """1-based physical line numbers of the non-blank data lines (vectorised; one record per line)."""
    arr = np.frombuffer(data, dtype=np.uint8)
    if len(arr) == 0:
        return np.zeros(0, dtype=np.int64)
    newlines = np.flatnonzero(arr == 10)
    starts = np.concatenate(([0], newlines + 1))
    ends = np.concatenate((newlines, [len(arr)]))
    if starts[-1] == len(arr):  # the file ends with a newline: no line after it
        starts, ends = starts[:-1], ends[:-1]
    whitespace = np.zeros(256, dtype=bool)
    whitespace[[9, 10, 11, 12, 13, 32]] = True
    nonempty = ends > starts
    first = np.where(nonempty, arr[np.minimum(starts, len(arr) - 1)], 32)
    blank = ~nonempty
    doubtful = np.flatnonzero(nonempty & whitespace[first])  # lines starting with whitespace: look closer
    for i in doubtful.tolist():
        blank[i] = not data[starts[i]:ends[i]].strip()
    lines = np.flatnonzero(~blank).astype(np.int64) + 1
    return lines[1:] if has_header else lines


def _data_lines_by_csv(data: bytes, options: FileIngestOptions) -> np.ndarray:
    """Line numbers by the csv module, for files whose quoted fields hold newlines."""
    reader = csv.reader(io.StringIO(data.decode(options.encoding, errors="replace"), newline=""),
                        delimiter=options.delimiter)
    lines: list[int] = []
    end = 0
    for row in reader:
        start = end + 1
        end = reader.line_num
        if row and not (len(row) == 1 and not row[0].strip()):
            lines.append(start)
    return np.asarray(lines[1:] if options.header else lines, dtype=np.int64)


# -- columns -------------------------------------------------------------------------------------


def resolve_columns(raw_columns: Sequence[str], mapping: Mapping[str, str], kind: str | None, *,
                    strict: bool = True) -> dict[str, str]:
    """target -> raw column name of the file, from the explicit mapping first, then the aliases.

    With strict, a mapping that names a missing column, or two file columns that normalize to the
    same name, is an error."""
    by_name: dict[str, list[str]] = {}
    for raw in raw_columns:
        by_name.setdefault(normalize(raw), []).append(str(raw))

    def lookup(name: str) -> str | None:
        found = by_name.get(normalize(name))
        if found and len(found) > 1 and strict:
            raise FileIngestError(f"columns {found} are the same name once case and spaces are ignored")
        return found[0] if found else None

    out: dict[str, str] = {}
    for target, column in mapping.items():
        raw = lookup(column)
        if raw is None:
            if strict:
                raise FileIngestError(f"columns: {target}={column}: the file has no column {column!r} "
                                      f"(columns: {', '.join(map(str, raw_columns))})")
            continue
        out[target_name(target)] = raw
    used = set(out.values())
    for target, names in ALIASES.items():
        if target in out:
            continue
        for name in names:
            raw = by_name.get(name)
            if raw and raw[0] not in used:
                out[target] = lookup(name) or raw[0]
                used.add(raw[0])
                break
    if (kind or detect_kind(out, raise_error=False)) == "trades" and "size" not in out and "volume" in out:
        out["size"] = out.pop("volume")
    return out


def detect_kind(resolved: Mapping[str, str], *, raise_error: bool = True, path: str = "") -> str | None:
    """trades, quotes or bars from the resolved columns: bid+ask -> quotes; open/high/low/close -> bars;
    price -> trades."""
    if "bid" in resolved and "ask" in resolved:
        return "quotes"
    if all(t in resolved for t in ("open", "high", "low", "close")):
        return "bars"
    if "price" in resolved:
        return "trades"
    if raise_error:
        raise FileIngestError(f"{path}: cannot tell trades, quotes or bars from the columns "
                              f"({', '.join(resolved.values()) or 'none recognised'}); pass kind (--kind) "
                              "and map columns (--columns)")
    return None


def _timestamp_source(resolved: Mapping[str, str], mapping: Mapping[str, str]) -> tuple[str, ...]:
    """The column(s) holding the event time: ts_event, or a date and time pair, or a date or time."""
    targets = {target_name(t) for t in mapping}
    explicit_date = "date" in targets or "time" in targets
    if "ts_event" in resolved and not (explicit_date and "ts_event" not in targets):
        return (resolved["ts_event"],)
    if "date" in resolved and "time" in resolved:
        return (resolved["date"], resolved["time"])
    for target in ("date", "time"):
        if target in resolved:
            return (resolved[target],)
    return ()


# -- row checks ----------------------------------------------------------------------------------


class RowChecks:
    """The first rule each row broke (0 = none), with a message built only for rows that are shown."""

    def __init__(self, n: int):
        self.code = np.zeros(n, dtype=np.int32)
        self._messages: list[Callable[[int], str]] = []

    def flag(self, mask: np.ndarray, message: Callable[[int], str]) -> None:
        """Mark the rows of `mask` not already bad with this reason."""
        new = np.asarray(mask, dtype=bool) & (self.code == 0)
        if new.any():
            self._messages.append(message)
            self.code[new] = len(self._messages)

    @property
    def bad(self) -> np.ndarray:
        return self.code != 0

    def reason(self, i: int) -> str:
        return self._messages[int(self.code[i]) - 1](i)


def _fmt(value: Any) -> str:
    if isinstance(value, float | np.floating):
        return repr(float(value))
    return repr(value)


def _raw(series: pd.Series, i: int) -> Any:
    value = series.iat[i]
    return value.item() if isinstance(value, np.generic) else value


def _missing(series: pd.Series) -> np.ndarray:
    missing = series.isna().to_numpy(dtype=bool)
    if pd.api.types.is_string_dtype(series.dtype) or series.dtype == object:
        missing = missing | (series.astype("str").str.strip() == "").to_numpy(dtype=bool, na_value=True)
    return missing


def numeric(series: pd.Series, label: str, checks: RowChecks, rule: Literal["positive", "non_negative"]) -> np.ndarray:
    """A column as float64, flagging missing, non-numeric, non-finite and out-of-rule values."""
    values = pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    missing = _missing(series)
    checks.flag(missing, lambda i: f"{label} is missing")
    checks.flag(np.isnan(values), lambda i: f"{label} = {_fmt(_raw(series, i))} is not a number")
    checks.flag(~np.isfinite(values), lambda i: f"{label} = {_fmt(values[i])} must be finite")
    if rule == "positive":
        checks.flag(values <= 0, lambda i: f"{label} = {_fmt(values[i])} must be > 0")
    else:
        checks.flag(values < 0, lambda i: f"{label} = {_fmt(values[i])} must be >= 0")
    return values


# -- timestamps ----------------------------------------------------------------------------------

# Status of each parsed timestamp.
_OK, _MISSING, _UNPARSEABLE, _AMBIGUOUS, _NONEXISTENT, _OUT_OF_RANGE = range(6)


def _guess_unit(values: np.ndarray) -> str:
    """s, ms, us or ns from the largest magnitude of numeric epochs."""
    finite = np.abs(values[np.isfinite(values)]) if values.dtype.kind == "f" else np.abs(values)
    top = float(finite.max()) if len(finite) else 0.0
    if top < 1e11:
        return "s"
    if top < 1e14:
        return "ms"
    if top < 1e17:
        return "us"
    return "ns"


def _looks_yyyymmdd(values: np.ndarray) -> bool:
    """True when every value is an integer that reads as a YYYYMMDD date (1900..2199)."""
    if len(values) == 0 or values.dtype.kind not in "iu":
        return False
    v = values.astype(np.int64)
    year, month, day = v // 10000, v // 100 % 100, v % 100
    return bool(np.all((year >= 1900) & (year < 2200) & (month >= 1) & (month <= 12) & (day >= 1) & (day <= 31)))


def _epochs_to_ns(values: np.ndarray, unit: str, status: np.ndarray, where: np.ndarray) -> np.ndarray:
    """Numeric epochs (at `where`) in ns; too large ones get _OUT_OF_RANGE."""
    factor = TS_UNITS[unit]
    out = np.zeros(len(status), dtype=np.int64)
    if values.dtype.kind == "f":
        scaled = values * factor
        ok = np.abs(scaled) < 9.2e18
        out[where[ok]] = np.round(scaled[ok]).astype(np.int64)
    else:
        ints = values.astype(np.int64) if values.dtype.kind == "i" else values
        ok = np.abs(ints.astype(np.float64)) <= _INT64_MAX // factor
        out[where[ok]] = ints[ok].astype(np.int64) * factor
    status[where[~ok]] = _OUT_OF_RANGE
    return out


def _datetimes_to_ns(dt: pd.Series | pd.DatetimeIndex) -> tuple[np.ndarray, np.ndarray]:
    """(ns since the epoch UTC, ok mask) of datetime values (tz-aware ones as UTC, naive as is)."""
    index = pd.DatetimeIndex(dt)
    if index.tz is not None:
        index = index.tz_convert("UTC").tz_localize(None)
    raw = index.to_numpy().view(np.int64)
    ok = ~index.isna()
    factor = TS_UNITS[np.datetime_data(index.dtype)[0]]
    ok &= np.abs(raw.astype(np.float64)) <= _INT64_MAX // factor
    return np.where(ok, raw, 0) * factor, ok


def _localize(naive: pd.Series, tz: str) -> tuple[np.ndarray, np.ndarray]:
    """(ns UTC, status) of naive wall-clock times in zone tz; DST gaps and folds get their status."""
    status = np.where(naive.isna().to_numpy(), _UNPARSEABLE, _OK)
    if tz.upper() == "UTC":
        ns, ok = _datetimes_to_ns(naive)
        status[~ok & (status == _OK)] = _OUT_OF_RANGE
        return ns, status
    index = pd.DatetimeIndex(naive)
    local = index.tz_localize(tz, ambiguous="NaT", nonexistent="NaT")
    ns, ok = _datetimes_to_ns(local)
    failed = np.flatnonzero(~ok & (status == _OK))
    if len(failed):
        retry = index[failed].tz_localize(tz, ambiguous=np.ones(len(failed), dtype=bool), nonexistent="NaT")
        status[failed] = np.where(retry.isna(), _NONEXISTENT, _AMBIGUOUS)
    return ns, status


def _parse_attempts(text: pd.Series, fmt: str | None, utc: bool) -> list[tuple[np.ndarray, pd.Series]]:
    """(positions, parsed values) of datetime strings: with fmt; or ISO-8601 first and then, for the
    values ISO-8601 could not read, the format pandas infers from the first of them (NaT when unreadable)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        if fmt:
            return [(np.arange(len(text)), pd.to_datetime(text, format=fmt, errors="coerce", utc=utc))]
        parsed = pd.to_datetime(text, format="ISO8601", errors="coerce", utc=utc)
        failed = parsed.isna().to_numpy() & text.notna().to_numpy()
        attempts = [(np.flatnonzero(~failed), parsed[~failed])]
        if failed.any():
            attempts.append((np.flatnonzero(failed), pd.to_datetime(text[failed], errors="coerce", utc=utc)))
    return attempts


def _string_times(text: pd.Series, options: FileIngestOptions) -> tuple[np.ndarray, np.ndarray]:
    """(ns UTC, status) of datetime strings: offsets converted to UTC, naive ones localized in tz."""
    n = len(text)
    ns = np.zeros(n, dtype=np.int64)
    status = np.full(n, _OK, dtype=np.int64)
    aware = text.str.contains(_AWARE_RE, regex=True).to_numpy(dtype=bool, na_value=False)
    for group, utc in ((np.flatnonzero(aware), True), (np.flatnonzero(~aware), False)):
        if len(group) == 0:
            continue
        try:
            attempts = _parse_attempts(text.iloc[group].reset_index(drop=True), options.ts_format, utc)
        except (OverflowError, ValueError):  # e.g. mixed offsets pandas cannot reconcile
            status[group] = _UNPARSEABLE
            continue
        for where, parsed in attempts:
            if utc:
                part, ok = _datetimes_to_ns(parsed)
                st = np.where(parsed.isna().to_numpy(), _UNPARSEABLE, np.where(ok, _OK, _OUT_OF_RANGE))
            else:
                part, st = _localize(parsed, options.tz)
            ns[group[where]] = part
            status[group[where]] = st
    return ns, status


def _numeric_text_times(text: pd.Series, blank: np.ndarray,
                        options: FileIngestOptions) -> tuple[np.ndarray, np.ndarray] | None:
    """(ns UTC, status) when the non-blank strings are numbers (epochs or YYYYMMDD), or when ts_unit
    says they should be; None when they are datetime strings."""
    if options.ts_format:
        return None
    is_number = text.str.fullmatch(_NUMBER_RE).to_numpy(dtype=bool, na_value=False)
    if not is_number.any() or (options.ts_unit is None and not (is_number | blank).all()):
        return None
    status = np.where(is_number, _OK, _UNPARSEABLE)
    where = np.flatnonzero(is_number)
    sub = text.iloc[where]
    if sub.str.fullmatch(_INTEGER_RE).all():
        values = pd.to_numeric(sub, errors="coerce").to_numpy()
        if values.dtype.kind == "f":  # beyond 64 bits
            status[where] = _OUT_OF_RANGE
            return np.zeros(len(text), dtype=np.int64), status
    else:
        values = pd.to_numeric(sub, errors="coerce").to_numpy(dtype=np.float64)
    return _numeric_times(values, where, status, options)


def _numeric_times(values: np.ndarray, where: np.ndarray, status: np.ndarray,
                   options: FileIngestOptions) -> tuple[np.ndarray, np.ndarray]:
    """(ns UTC, status) of numbers at `where`: YYYYMMDD dates when they all look so, else epochs."""
    if options.ts_unit is None and _looks_yyyymmdd(values):
        dates = pd.Series(values.astype(np.int64).astype(str))
        dt = pd.to_datetime(dates, format="%Y%m%d", errors="coerce")
        part, st = _localize(dt, options.tz)
        ns = np.zeros(len(status), dtype=np.int64)
        ns[where], status[where] = part, st
        return ns, status
    unit = options.ts_unit or _guess_unit(values)
    return _epochs_to_ns(values, unit, status, where), status


def parse_times(series: pd.Series, options: FileIngestOptions) -> tuple[np.ndarray, np.ndarray]:
    """(ns UTC, status) of one timestamp column of any type: datetimes, numbers or strings."""
    dtype = series.dtype
    if isinstance(dtype, pd.DatetimeTZDtype) or dtype.kind == "M":
        if isinstance(dtype, pd.DatetimeTZDtype):
            ns, ok = _datetimes_to_ns(series)
            status = np.where(series.isna().to_numpy(), _MISSING, np.where(ok, _OK, _OUT_OF_RANGE))
            return ns, status
        ns, status = _localize(series, options.tz)
        status[series.isna().to_numpy()] = _MISSING
        return ns, status
    missing = _missing(series)
    if dtype.kind in "iuf":
        status = np.where(missing, _MISSING, _OK)
        where = np.flatnonzero(~missing)
        return _numeric_times(series.to_numpy()[where], where, status, options)
    text = series.astype("str").str.strip()
    parsed = _numeric_text_times(text, missing, options)
    if parsed is None:
        parsed = _string_times(text, options)
    ns, status = parsed
    status[missing] = _MISSING
    return ns, status


def _time_column(table: Table, sources: tuple[str, ...], options: FileIngestOptions,
                 checks: RowChecks) -> np.ndarray:
    """The ns UTC times of one or two (date, time) columns, flagging bad rows in checks."""
    frame = table.frame
    if len(sources) == 2:
        date, time = (frame[s].astype("str").str.strip() for s in sources)
        series = (date + " " + time).where(~(_missing(frame[sources[0]]) | _missing(frame[sources[1]])))
        label = f"{sources[0]}+{sources[1]}"
    else:
        series = frame[sources[0]]
        label = sources[0]
    ns, status = parse_times(series, options)
    reasons = {
        _MISSING: lambda i: f"{label} is missing",
        _UNPARSEABLE: lambda i: f"{label} = {_fmt(_raw(series, i))} is not a timestamp",
        _AMBIGUOUS: lambda i: f"{label} = {_fmt(_raw(series, i))} is ambiguous in {options.tz} (DST change)",
        _NONEXISTENT: lambda i: f"{label} = {_fmt(_raw(series, i))} does not exist in {options.tz} (DST change)",
        _OUT_OF_RANGE: lambda i: f"{label} = {_fmt(_raw(series, i))} is out of the int64 ns range",
    }
    for code, message in reasons.items():
        checks.flag(status == code, message)
    checks.flag(ns <= 0, lambda i: f"{label} = {_fmt(_raw(series, i))} must be after 1970-01-01T00:00:00Z")
    return ns


# -- payload fields ------------------------------------------------------------------------------


def trade_ids(series: pd.Series) -> np.ndarray:
    """Trade ids as uint64; values that are not non-negative integers become 0."""
    out = np.zeros(len(series), dtype=np.uint64)
    if series.dtype.kind in "iu":
        values = series.to_numpy()
        keep = values >= 0
        out[keep] = values[keep].astype(np.uint64)
        return out
    if series.dtype.kind == "f":
        values = series.to_numpy(dtype=np.float64)
        keep = np.isfinite(values) & (values >= 0) & (values == np.floor(values)) & (values < 2.0 ** 64)
        out[keep] = values[keep].astype(np.uint64)
        return out
    text = series.astype("str").str.strip()
    digits = np.flatnonzero(text.str.fullmatch(r"\d{1,19}").to_numpy(dtype=bool, na_value=False))
    if len(digits):
        values = pd.to_numeric(text.iloc[digits], errors="coerce").to_numpy()
        if values.dtype.kind in "iu":
            out[digits] = values.astype(np.uint64)
    return out


_SIDES = {"buy": AggressorSide.BUYER, "b": AggressorSide.BUYER, "buyer": AggressorSide.BUYER,
          "bid": AggressorSide.BUYER, "sell": AggressorSide.SELLER, "s": AggressorSide.SELLER,
          "seller": AggressorSide.SELLER, "ask": AggressorSide.SELLER, "offer": AggressorSide.SELLER,
          "unknown": AggressorSide.UNSPECIFIED, "none": AggressorSide.UNSPECIFIED, "": AggressorSide.UNSPECIFIED}
_TRUE = {"true", "t", "1", "yes", "y", "1.0"}
_FALSE = {"false", "f", "0", "no", "n", "0.0"}


def aggressor_from_side(series: pd.Series, label: str, checks: RowChecks) -> np.ndarray:
    """buy/sell (and b/s, buyer/seller) -> BUYER/SELLER; empty or 'unknown' -> UNSPECIFIED."""
    text = series.astype("str").str.strip().str.lower().where(~_missing(series), "")
    codes = text.map({k: int(v) for k, v in _SIDES.items()}).to_numpy(dtype=np.float64, na_value=np.nan)
    out = np.nan_to_num(codes, nan=-1.0).astype(np.int64)
    checks.flag(out < 0, lambda i: f"{label} = {_fmt(_raw(series, i))} is not buy or sell")
    return np.maximum(out, 0).astype(np.uint32)


def aggressor_from_buyer_maker(series: pd.Series, label: str, checks: RowChecks) -> np.ndarray:
    """buyer_maker true -> the seller was the aggressor (SELLER); false -> BUYER; empty -> UNSPECIFIED."""
    missing = _missing(series)
    text = series.astype("str").str.strip().str.lower()
    is_true = text.isin(_TRUE).to_numpy(dtype=bool)
    is_false = text.isin(_FALSE).to_numpy(dtype=bool)
    checks.flag(~(is_true | is_false | missing), lambda i: f"{label} = {_fmt(_raw(series, i))} is not true or false")
    out = np.zeros(len(series), dtype=np.uint32)
    out[is_true & ~missing] = int(AggressorSide.SELLER)
    out[is_false & ~missing] = int(AggressorSide.BUYER)
    return out


# -- building the batch --------------------------------------------------------------------------


@dataclass
class Rows:
    """The checked columns of a file, one entry per row (bad rows included until filtered)."""

    kind: str
    ts_event: np.ndarray
    ts_recv: np.ndarray
    symbols: np.ndarray  # object array of str
    fields: dict[str, np.ndarray | int]
    checks: RowChecks


def _symbols(table: Table, resolved: Mapping[str, str], options: FileIngestOptions,
             checks: RowChecks) -> np.ndarray:
    """The symbol of each row: options.symbol, or the file's symbol column (stripped)."""
    n = len(table.frame)
    column = resolved.get("symbol")
    if options.symbol is not None:
        if column is not None:
            distinct = table.frame[column].dropna().astype("str").str.strip().unique()
            if len(distinct) > 1:
                raise FileIngestError(f"{table.path}: symbol = {options.symbol!r} was given but the file's "
                                      f"{column!r} column holds {len(distinct)} symbols; drop --symbol")
        return np.full(n, options.symbol, dtype=object)
    if column is None:
        raise FileIngestError(f"{table.path}: the file has no symbol column; pass symbol (--symbol)")
    series = table.frame[column]
    checks.flag(_missing(series), lambda i: f"{column} is missing")
    return series.astype("str").str.strip().to_numpy(dtype=object)


def _payload(table: Table, kind: str, resolved: Mapping[str, str], options: FileIngestOptions,
             checks: RowChecks) -> dict[str, np.ndarray | int]:
    """The payload columns of each kind, checked with the log's own rules."""
    frame = table.frame
    col = resolved.get

    def number(target: str, rule: Literal["positive", "non_negative"]) -> np.ndarray:
        return numeric(frame[resolved[target]], resolved[target], checks, rule)

    if kind == "trades":
        price, size = number("price", "positive"), number("size", "positive")
        if col("side"):
            aggressor = aggressor_from_side(frame[resolved["side"]], resolved["side"], checks)
        elif col("buyer_maker"):
            aggressor = aggressor_from_buyer_maker(frame[resolved["buyer_maker"]], resolved["buyer_maker"], checks)
        else:
            aggressor = np.zeros(len(frame), dtype=np.uint32)
        ids = trade_ids(frame[resolved["trade_id"]]) if col("trade_id") else np.zeros(len(frame), np.uint64)
        return {"price": price, "size": size, "trade_id": ids, "aggressor": aggressor}
    if kind == "quotes":
        bid, ask = number("bid", "positive"), number("ask", "positive")
        zeros = np.zeros(len(frame))
        bid_size = number("bid_size", "non_negative") if col("bid_size") else zeros
        ask_size = number("ask_size", "non_negative") if col("ask_size") else zeros
        b, a = resolved["bid"], resolved["ask"]
        checks.flag(ask < bid, lambda i: f"{a} = {_fmt(ask[i])} < {b} = {_fmt(bid[i])}")
        return {"bid": bid, "ask": ask, "bid_size": bid_size, "ask_size": ask_size}
    o, h, low, c = (number(t, "positive") for t in ("open", "high", "low", "close"))
    names = {t: resolved[t] for t in ("open", "high", "low", "close")}
    checks.flag(h < low, lambda i: f"{names['high']} = {_fmt(h[i])} < {names['low']} = {_fmt(low[i])}")
    for other, values in (("open", o), ("close", c)):
        checks.flag(h < values, lambda i, t=other, v=values: f"{names['high']} = {_fmt(h[i])} < {names[t]} = {_fmt(v[i])}")
        checks.flag(low > values, lambda i, t=other, v=values: f"{names['low']} = {_fmt(low[i])} > {names[t]} = {_fmt(v[i])}")
    volume = number("volume", "non_negative") if col("volume") else np.zeros(len(frame))
    counts = np.zeros(len(frame), dtype=np.uint64)
    if col("trade_count"):
        raw_counts = number("trade_count", "non_negative")
        counts = np.where(np.isfinite(raw_counts), np.floor(np.nan_to_num(raw_counts)), 0).astype(np.uint64)
    interval = parse_timeframe(options.timeframe or "")
    return {"open": o, "high": h, "low": low, "close": c, "volume": volume, "interval_ns": interval,
            "trade_count": counts}


def check_rows(table: Table, options: FileIngestOptions) -> Rows:
    """Resolve the columns, parse and check every row; no row is dropped here."""
    columns = [str(c) for c in table.frame.columns]
    resolved = resolve_columns(columns, options.columns, options.kind)
    kind = options.kind or detect_kind(resolved, path=table.path)
    assert kind is not None
    missing = [t for t in _REQUIRED[kind] if t not in resolved]
    if missing:
        raise FileIngestError(f"{table.path}: no column for {', '.join(missing)} of {kind} (columns: "
                              f"{', '.join(columns)}); map one with --columns {missing[0]}=COLUMN")
    if kind == "bars" and not options.timeframe:
        raise FileIngestError(f"{table.path}: bars need their timeframe (--timeframe, e.g. 1m, 1h, 1d)")
    time_sources = _timestamp_source(resolved, options.columns)
    if not time_sources:
        raise FileIngestError(f"{table.path}: no timestamp column (columns: {', '.join(columns)}); "
                              "map one with --columns ts_event=COLUMN")
    checks = RowChecks(len(table.frame))
    ts_event = _time_column(table, time_sources, options, checks)
    if kind == "bars":
        interval = parse_timeframe(options.timeframe or "")
        if options.bar_time == "start":
            ts_event = ts_event + interval
    if "ts_recv" in resolved:
        ts_recv = _time_column(table, (resolved["ts_recv"],), options, checks)
    else:
        ts_recv = ts_event
    symbols = _symbols(table, resolved, options, checks)
    fields = _payload(table, kind, resolved, options, checks)
    return Rows(kind, ts_event, ts_recv, symbols, fields, checks)


def _bad_rows_shown(table: Table, checks: RowChecks) -> list[tuple[str, str]]:
    bad = np.flatnonzero(checks.bad)[:_SHOWN_BAD_ROWS]
    return [(table.where(i), checks.reason(i)) for i in bad.tolist()]


@dataclass
class Batch:
    """One file's records, ready for one append."""

    body: bytes
    events: int
    new_symbols: list[str]
    symbols: list[str]
    expected_head: int


def build_batch(log: EventLog, rows: Rows, keep: np.ndarray, options: FileIngestOptions) -> Batch:
    """InstrumentDefined events for new symbols (next dense ids), then one record per kept row."""
    info = log.info()
    symbols = rows.symbols[keep]
    codes, uniques = pd.factorize(pd.Series(symbols, dtype=object), sort=False)
    ids = np.zeros(len(uniques), dtype=np.uint32)
    new_symbols: list[str] = []
    ts_recv = rows.ts_recv[keep]
    first_ts = int(ts_recv[0]) if len(ts_recv) else 1
    instruments: list[bytes] = []
    for k, symbol in enumerate(uniques.tolist()):
        existing = log.instrument_id(symbol)
        if existing is None:
            existing = info.instruments + len(new_symbols)
            new_symbols.append(symbol)
            instruments.append(codec.encode(instrument_event(
                existing, symbol, kind=INSTRUMENT_KINDS[options.instrument_kind], ts=first_ts,
                multiplier=options.multiplier, venue=options.venue, currency=options.currency)))
        ids[k] = existing
    payload = {name: (v[keep] if isinstance(v, np.ndarray) else v) for name, v in rows.fields.items()}
    recs = codec.encode_columns(_EVENT_TYPE[rows.kind], ids[codes], rows.ts_event[keep], ts_recv, **payload)
    body = b"".join(instruments) + recs.tobytes()
    return Batch(body, len(instruments) + len(recs), new_symbols, [str(s) for s in uniques.tolist()], info.head)


# -- the whole import ----------------------------------------------------------------------------


def ingest_table(log: EventLog, table: Table, options: FileIngestOptions) -> IngestSummary:
    """Check every row of a table and append its events to the log at once (or raise, writing nothing)."""
    show = sys.stderr.isatty() if options.progress is None else options.progress
    with tqdm(total=3, desc=f"ingest {Path(table.path).name}", unit="step", file=sys.stderr,
              disable=not show, leave=False) as bar:
        bar.set_postfix_str("checking rows")
        rows = check_rows(table, options)
        bar.update()
        bad = rows.checks.bad
        shown = _bad_rows_shown(table, rows.checks)
        if bad.any() and not options.skip_bad:
            raise BadRowsError(table.path, int(bad.sum()), shown)
        bar.set_postfix_str("encoding")
        batch = build_batch(log, rows, ~bad, options)
        bar.update()
        bar.set_postfix_str("appending")
        result = log.append(batch.body, expected_head=batch.expected_head) if batch.events else None
        bar.update()
    first = result.first_offset if result and result.count else None
    last = result.first_offset + result.count - 1 if result and result.count else None
    return IngestSummary(path=table.path, kind=rows.kind, rows=len(table.frame), events=batch.events,
                         instruments_defined=len(batch.new_symbols), symbols=batch.symbols,
                         bad_rows_skipped=int(bad.sum()), first_offset=first, last_offset=last,
                         bad_rows_shown=[f"{w}: {r}" for w, r in shown])


def ingest_csv(log: EventLog, path: str | Path, options: FileIngestOptions | None = None) -> IngestSummary:
    """Import one CSV file of trades, quotes or bars as one atomic append."""
    options = options or FileIngestOptions()
    return ingest_table(log, read_csv(path, options), options)


def ingest_parquet(log: EventLog, path: str | Path, options: FileIngestOptions | None = None) -> IngestSummary:
    """Import one Parquet file of trades, quotes or bars as one atomic append."""
    options = options or FileIngestOptions()
    return ingest_table(log, read_parquet(path, options), options)
