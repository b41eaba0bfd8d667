"""Import end-of-day option chains (one row per contract and quote date) as OptionChainSnapshot events.

One snapshot per (underlying, quote date), in date order; its rows are the contracts quoted that day,
in file order. The whole file is one atomic append (DESIGN.md §1.6), preceded by the InstrumentDefined
events of underlyings the log does not know yet. Rows are checked before anything is written; a bad
row refuses the file with `file:line: reason`, or is skipped and counted with `skip_bad`.

Columns (matched like argus.connectors.files: case-insensitive, BOM and surrounding spaces stripped,
inner spaces or hyphens as `_`): underlying, underlying_last, optionroot, type, expiration, quotedate,
strike, bid, ask, bid_size, ask_size, volume, openinterest, impliedvol, delta, gamma, theta, vega
(see ALIASES for accepted synonyms); `columns` maps target -> file column for anything else.

Times. ts_event = ts_recv = the quote date at `snapshot_time` in `tz`; expiry_ns = the expiry date at
`expiry_time` in America/New_York (US listed options expire on New York time). All ns since the epoch, UTC.

Values are stored as the vendor gave them, never edited: vendor greeks keep the vendor's units (for
optopsy/Historical Option Data files vega is per 1.00 of vol and theta appears to be per year), and
placeholder IVs (e.g. 0.30 on same-day expiries) are kept. Missing IV, greeks or open interest are NaN;
missing sizes are 0. Zero bids are valid. Rows refused: unparseable dates, a type that is not
call/put (C/P), strike <= 0, negative bid or ask, ask < bid, an expiry before the quote date, and
non-numeric values.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from argus.connectors.files import (
    INSTRUMENT_KINDS,
    BadRowsError,
    FileIngestError,
    FileIngestOptions,
    RowChecks,
    Table,
    check_timezone,
    normalize,
    numeric,
    parse_times,
    read_csv,
)
from argus.events import codec
from argus.events.layout import NO_INSTRUMENT, OPTION_ROW_DTYPE
from argus.events.types import InstrumentKind, OptionRight, OptionSource
from argus.log.store import EventLog, instrument_event

#: Accepted (normalized) file column names of each target field, in order of preference.
ALIASES: dict[str, tuple[str, ...]] = {
    "underlying": ("underlying", "underlying_symbol", "symbol", "ticker"),
    "underlying_last": ("underlying_last", "underlying_price", "spot", "underlying_close"),
    "optionroot": ("optionroot", "option_root", "root", "option_symbol"),
    "type": ("type", "right", "put_call", "call_put", "cp_flag", "option_type"),
    "expiration": ("expiration", "expiry", "expiration_date", "expiry_date", "exdate"),
    "quotedate": ("quotedate", "quote_date", "date", "trade_date", "data_date"),
    "strike": ("strike", "strike_price"),
    "bid": ("bid", "bid_price"),
    "ask": ("ask", "ask_price", "offer"),
    "bid_size": ("bid_size", "bidsize"),
    "ask_size": ("ask_size", "asksize"),
    "volume": ("volume",),
    "openinterest": ("openinterest", "open_interest", "oi"),
    "impliedvol": ("impliedvol", "implied_vol", "implied_volatility", "iv"),
    "delta": ("delta",),
    "gamma": ("gamma",),
    "theta": ("theta",),
    "vega": ("vega",),
}
TARGETS: tuple[str, ...] = tuple(ALIASES)

#: Option sources a file may declare (--source).
SOURCES: dict[str, OptionSource] = {
    "vendor": OptionSource.VENDOR_FILE,
    "synthetic": OptionSource.SYNTHETIC,
    "stream": OptionSource.STREAM,
    "broker": OptionSource.BROKER,
}
#: Underlyings recorded as INDEX when no instrument kind is given.
INDEX_SYMBOLS = frozenset({"SPX", "SPXW", "XSP", "NDX", "NDXP", "RUT", "RUTW", "VIX", "VIXW", "DJX", "OEX", "XEO"})
EXPIRY_TZ = "America/New_York"
_RIGHTS = {"call": OptionRight.CALL, "c": OptionRight.CALL, "put": OptionRight.PUT, "p": OptionRight.PUT}
_TIME_RE = re.compile(r"(\d{1,2}):(\d{2})(?::(\d{2}))?")
_SHOWN_BAD_ROWS = 5


def target_name(name: str) -> str:
    """The target field a --columns key names (a target or one of its aliases)."""
    key = normalize(name)
    if key in ALIASES:
        return key
    for target, names in ALIASES.items():
        if key in names:
            return target
    raise FileIngestError(f"columns: {name!r} is not a target field; targets are {', '.join(TARGETS)}")


def parse_columns(text: str | None) -> dict[str, str]:
    """`target=column,...` (the --columns option) as a dict of target -> file column."""
    out: dict[str, str] = {}
    for part in (text or "").split(","):
        if not part.strip():
            continue
        target, sep, column = part.partition("=")
        if not sep or not target.strip() or not column.strip():
            raise FileIngestError(f"columns: {part.strip()!r} must be TARGET=COLUMN, e.g. quotedate=date")
        out[target_name(target)] = column.strip()
    return out


def parse_time_of_day(text: str) -> pd.Timedelta:
    """HH:MM or HH:MM:SS as the offset from midnight."""
    m = _TIME_RE.fullmatch(text.strip())
    if not m or int(m[1]) > 23 or int(m[2]) > 59 or int(m[3] or 0) > 59:
        raise FileIngestError(f"time {text!r} must be HH:MM or HH:MM:SS, e.g. 16:00")
    return pd.Timedelta(hours=int(m[1]), minutes=int(m[2]), seconds=int(m[3] or 0))


def osi_symbol(root: str, expiry: dt.date | str, right: OptionRight | str | int, strike: float) -> str:
    """The 21-character OSI symbol: root padded to 6, YYMMDD, C or P, strike x 1000 in 8 digits.

    >>> osi_symbol("SPXW", dt.date(2018, 1, 19), "put", 2700)
    'SPXW  180119P02700000'
    """
    root = root.strip().upper()
    if not 1 <= len(root) <= 6:
        raise ValueError(f"root {root!r} must be 1 to 6 characters")
    day = dt.date.fromisoformat(expiry) if isinstance(expiry, str) else expiry
    if isinstance(right, str):
        r = _RIGHTS.get(right.strip().lower())
    else:
        r = OptionRight(int(right))
    if r not in (OptionRight.CALL, OptionRight.PUT):
        raise ValueError(f"right {right!r} must be call or put")
    milli = round(float(strike) * 1000)
    if not 0 < milli < 10 ** 8:
        raise ValueError(f"strike {strike!r} must be > 0 and < 100000")
    return f"{root:<6}{day:%y%m%d}{'C' if r == OptionRight.CALL else 'P'}{milli:08d}"


@dataclass(frozen=True)
class OptionChainOptions:
    """How to read one option chain file. See the module docstring."""

    columns: Mapping[str, str] = field(default_factory=dict)  # target -> file column
    symbol: str | None = None  # underlying symbol of every row (else the file's underlying column)
    date_format: str = "%m/%d/%Y"
    tz: str = EXPIRY_TZ  # zone of the snapshot time
    snapshot_time: str = "16:00"
    expiry_time: str = "16:00"  # New York time
    source: str = "vendor"
    instrument_kind: str | None = None  # None: index for INDEX_SYMBOLS, else equity
    skip_bad: bool = False
    delimiter: str = ","
    encoding: str = "utf-8-sig"

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise FileIngestError(f"source = {self.source!r} must be one of {', '.join(SOURCES)}")
        if self.instrument_kind is not None and self.instrument_kind not in INSTRUMENT_KINDS:
            raise FileIngestError(f"instrument_kind = {self.instrument_kind!r} must be one of "
                                  f"{', '.join(INSTRUMENT_KINDS)}")
        if self.symbol is not None and (not self.symbol.strip() or self.symbol != self.symbol.strip()):
            raise FileIngestError(f"symbol = {self.symbol!r} must be non-empty with no surrounding spaces")
        check_timezone(self.tz)
        parse_time_of_day(self.snapshot_time)
        parse_time_of_day(self.expiry_time)
        for target in self.columns:
            target_name(target)


@dataclass
class OptionChainSummary:
    """What one import wrote. Offsets are None when nothing was written."""

    path: str
    rows: int
    contracts: int
    snapshots: int
    events: int
    instruments_defined: int
    symbols: list[str]
    first_date: str | None
    last_date: str | None
    bad_rows_skipped: int
    first_offset: int | None
    last_offset: int | None
    bad_rows_shown: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _resolve(table: Table, mapping: Mapping[str, str]) -> dict[str, str]:
    by_name: dict[str, str] = {}
    for raw in table.frame.columns:
        by_name.setdefault(normalize(raw), str(raw))
    out: dict[str, str] = {}
    for target, column in mapping.items():
        raw = by_name.get(normalize(column))
        if raw is None:
            raise FileIngestError(f"columns: {target}={column}: the file has no column {column!r} "
                                  f"(columns: {', '.join(map(str, table.frame.columns))})")
        out[target_name(target)] = raw
    used = set(out.values())
    for target, names in ALIASES.items():
        if target in out:
            continue
        for name in names:
            raw = by_name.get(name)
            if raw is not None and raw not in used:
                out[target] = raw
                used.add(raw)
                break
    return out


def _text(series: pd.Series) -> pd.Series:
    return series.astype("str").str.strip().where(series.notna(), "")


def _dates(table: Table, column: str, at: pd.Timedelta, tz: str, fmt: str,
           checks: RowChecks) -> tuple[np.ndarray, np.ndarray]:
    """(day number since the epoch, ns UTC of that day at `at` in tz) of a date column."""
    text = _text(table.frame[column])
    parsed = pd.to_datetime(text, format=fmt, errors="coerce")
    checks.flag(parsed.isna().to_numpy(), lambda i: f"{column} = {text.iat[i]!r} is not a date in format {fmt}")
    days = parsed.to_numpy(dtype="datetime64[ns]").astype("datetime64[D]").astype(np.int64)
    ns, status = parse_times(parsed + at, FileIngestOptions(tz=tz))
    checks.flag(status != 0, lambda i: f"{column} = {text.iat[i]!r} at {at} does not exist or is ambiguous in {tz}")
    return days, ns


def _optional(series: pd.Series | None, n: int, label: str, checks: RowChecks, *,
              non_negative: bool = False, default: float = np.nan) -> np.ndarray:
    """A column that may be absent or blank (-> default); text and infinities are bad rows."""
    if series is None:
        return np.full(n, default)
    values = pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    blank = (series.isna() | (series.astype("str").str.strip() == "")).to_numpy(dtype=bool)
    checks.flag(np.isnan(values) & ~blank, lambda i: f"{label} = {series.iat[i]!r} is not a number")
    checks.flag(np.isinf(values), lambda i: f"{label} = {float(values[i])!r} must be finite")
    if non_negative:
        checks.flag(values < 0, lambda i: f"{label} = {float(values[i])!r} must be >= 0")
    return np.where(blank, default, values)


@dataclass
class _Checked:
    underlying: np.ndarray  # object array of str
    quote_day: np.ndarray
    ts: np.ndarray
    underlying_price: np.ndarray
    rows: np.ndarray  # OPTION_ROW_DTYPE
    checks: RowChecks


def check_rows(table: Table, options: OptionChainOptions) -> _Checked:
    """Resolve the columns, parse and check every row; no row is dropped here."""
    frame, n = table.frame, len(table.frame)
    resolved = _resolve(table, options.columns)
    need = ["type", "expiration", "quotedate", "strike", "bid", "ask"]
    missing = [t for t in need if t not in resolved]
    if missing:
        raise FileIngestError(f"{table.path}: no column for {', '.join(missing)} (columns: "
                              f"{', '.join(map(str, frame.columns))}); map one with --columns {missing[0]}=COLUMN")
    col = resolved.get
    checks = RowChecks(n)
    if options.symbol is not None:
        if col("underlying"):
            distinct = _text(frame[resolved["underlying"]]).unique()
            if len(distinct) > 1:
                raise FileIngestError(f"{table.path}: symbol = {options.symbol!r} was given but the file's "
                                      f"{resolved['underlying']!r} column holds {len(distinct)} underlyings")
        underlying = np.full(n, options.symbol, dtype=object)
    elif col("underlying"):
        text = _text(frame[resolved["underlying"]])
        checks.flag((text == "").to_numpy(), lambda i: f"{resolved['underlying']} is missing")
        underlying = text.to_numpy(dtype=object)
    else:
        raise FileIngestError(f"{table.path}: the file has no underlying column; pass symbol (--symbol)")
    quote_day, ts = _dates(table, resolved["quotedate"], parse_time_of_day(options.snapshot_time), options.tz,
                           options.date_format, checks)
    expiry_day, expiry_ns = _dates(table, resolved["expiration"], parse_time_of_day(options.expiry_time),
                                   EXPIRY_TZ, options.date_format, checks)
    e, q = resolved["expiration"], resolved["quotedate"]
    checks.flag(expiry_day < quote_day, lambda i: f"{e} = {frame[e].iat[i]!r} is before {q} = {frame[q].iat[i]!r}")
    kind = _text(frame[resolved["type"]]).str.lower()
    right = kind.map({k: int(v) for k, v in _RIGHTS.items()}).to_numpy(dtype=np.float64, na_value=np.nan)
    checks.flag(np.isnan(right), lambda i: f"{resolved['type']} = {kind.iat[i]!r} is not call or put (C/P)")
    strike = numeric(frame[resolved["strike"]], resolved["strike"], checks, "positive")
    bid = numeric(frame[resolved["bid"]], resolved["bid"], checks, "non_negative")
    ask = numeric(frame[resolved["ask"]], resolved["ask"], checks, "non_negative")
    a, b = resolved["ask"], resolved["bid"]
    checks.flag(ask < bid, lambda i: f"{a} = {float(ask[i])!r} < {b} = {float(bid[i])!r}")

    def opt(target: str, **kw: Any) -> np.ndarray:
        return _optional(frame[resolved[target]] if col(target) else None, n, resolved.get(target, target),
                         checks, **kw)

    spot = opt("underlying_last", non_negative=True)
    checks.flag(spot == 0, lambda i: f"{resolved['underlying_last']} = 0.0 must be > 0")
    rows = np.zeros(n, dtype=OPTION_ROW_DTYPE)
    rows["expiry_ns"] = expiry_ns
    rows["strike"] = strike
    rows["bid"] = bid
    rows["ask"] = ask
    rows["bid_size"] = opt("bid_size", non_negative=True, default=0.0)
    rows["ask_size"] = opt("ask_size", non_negative=True, default=0.0)
    rows["open_interest"] = opt("openinterest", non_negative=True)
    rows["iv"] = opt("impliedvol")
    for greek in ("delta", "gamma", "vega", "theta"):
        rows[greek] = opt(greek)
    rows["right"] = np.nan_to_num(right).astype(np.uint16)
    rows["source"] = int(SOURCES[options.source])
    rows["contract_id"] = NO_INSTRUMENT
    return _Checked(underlying, quote_day, ts, spot, rows, checks)


def _kind(symbol: str, options: OptionChainOptions) -> InstrumentKind:
    if options.instrument_kind is not None:
        return INSTRUMENT_KINDS[options.instrument_kind]
    return InstrumentKind.INDEX if symbol.upper() in INDEX_SYMBOLS else InstrumentKind.EQUITY


def ingest_option_chains(log: EventLog, path: str | Path, options: OptionChainOptions | None = None,
                         ) -> OptionChainSummary:
    """Import one CSV file of end-of-day option chains as one atomic append (or raise, writing nothing)."""
    options = options or OptionChainOptions()
    table = read_csv(path, FileIngestOptions(delimiter=options.delimiter, encoding=options.encoding))
    checked = check_rows(table, options)
    bad = checked.checks.bad
    shown = [(table.where(i), checked.checks.reason(i)) for i in np.flatnonzero(bad)[:_SHOWN_BAD_ROWS].tolist()]
    if bad.any() and not options.skip_bad:
        raise BadRowsError(table.path, int(bad.sum()), shown)
    keep = np.flatnonzero(~bad)
    symbols = checked.underlying[keep]
    codes, uniques = pd.factorize(pd.Series(symbols, dtype=object), sort=False)
    days = checked.quote_day[keep]
    # Snapshots in date order, then underlying in first-appearance order; rows keep file order.
    order = np.lexsort((np.arange(len(keep)), codes, days))
    info = log.info()
    ids: list[int] = []
    new: list[str] = []
    records: list[bytes] = []
    first_ts = int(checked.ts[keep[order[0]]]) if len(keep) else 1
    for symbol in uniques.tolist():
        existing = log.instrument_id(symbol)
        if existing is None:
            existing = info.instruments + len(new)
            new.append(symbol)
            records.append(codec.encode(instrument_event(existing, symbol, kind=_kind(symbol, options), ts=first_ts)))
        ids.append(existing)
    snapshots = 0
    if len(keep):
        sorted_keep, sorted_codes, sorted_days = keep[order], codes[order], days[order]
        group = np.flatnonzero(np.diff(sorted_codes) != 0) + 1
        group = np.union1d(group, np.flatnonzero(np.diff(sorted_days) != 0) + 1)
        for part, code in zip(np.split(sorted_keep, group), np.split(sorted_codes, group), strict=True):
            first = int(part[0])
            spots = checked.underlying_price[part]
            spot = float(spots[np.isfinite(spots)][0]) if np.isfinite(spots).any() else float("nan")
            ts = int(checked.ts[first])
            records.append(codec.encode_option_chain(ids[int(code[0])], ts, ts, spot, int(SOURCES[options.source]),
                                                     checked.rows[part]))
            snapshots += 1
    result = log.append(b"".join(records), expected_head=info.head) if records else None
    dates = sorted(set(days.tolist()))

    def day(d: int) -> str:
        return str(np.datetime64(d, "D"))

    return OptionChainSummary(
        path=table.path, rows=len(table.frame), contracts=len(keep), snapshots=snapshots, events=len(records),
        instruments_defined=len(new), symbols=[str(s) for s in uniques.tolist()],
        first_date=day(dates[0]) if dates else None, last_date=day(dates[-1]) if dates else None,
        bad_rows_skipped=int(bad.sum()),
        first_offset=result.first_offset if result and result.count else None,
        last_offset=result.first_offset + result.count - 1 if result and result.count else None,
        bad_rows_shown=[f"{w}: {r}" for w, r in shown])


__all__ = ["ALIASES", "OptionChainOptions", "OptionChainSummary", "check_rows", "ingest_option_chains",
           "osi_symbol", "parse_columns", "parse_time_of_day"]
