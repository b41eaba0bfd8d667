"""`argusctl ingest csv` and `argusctl ingest parquet`: parse the options, call
argus.connectors.files, print the summary."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from argus.cli.output import emit, log_dir

_EPILOG = """\b
Columns are matched case-insensitively, surrounding spaces stripped: timestamp (or datetime,
or a date and a time column), open, high, low, close, volume, price, size (or quantity, qty,
amount), bid, ask, bid_size, ask_size (or bid_amount, ask_amount), symbol, side (buy/sell),
buyer_maker, trade_id (or id), trade_count. Map others with --columns TARGET=COLUMN,... where
TARGET is one of ts_event, ts_recv, date, time, symbol, price, size, trade_id, side,
buyer_maker, bid, ask, bid_size, ask_size, open, high, low, close, volume, trade_count.

\b
Time: numeric epochs use --ts-unit, or a unit guessed from the largest value
(< 1e11 s, < 1e14 ms, < 1e17 us, else ns; 8-digit YYYYMMDD integers are dates).
Strings are read as ISO-8601, else in the format inferred from the first other value,
or with --ts-format. Values with a UTC offset are converted to UTC; naive values are
local times in --tz (default UTC), and a local time that a DST change makes ambiguous
or nonexistent is a bad row. Without a receive-time column (ts_recv), ts_recv = ts_event.
Bars: --bar-time start (default) means the file's time is the bar's open; the event's
ts_event is the bar's end (open + --timeframe).

\b
The whole file is one atomic append. A bad row refuses the file (FILE:LINE: reason;
exit code 3) unless --skip-bad, which skips and counts bad rows. Rows keep file order.
"""


def _common_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The options both file formats share."""
    options = [
        click.option("--kind", type=click.Choice(["trades", "quotes", "bars"]), default=None,
                     help="What the rows are. Default: from the columns (bid+ask -> quotes, "
                          "open/high/low/close -> bars, price -> trades)."),
        click.option("--columns", "columns", default=None, metavar="TARGET=COLUMN,...",
                     help="Map file columns to fields, e.g. ts_event=timestamp,ts_recv=local_timestamp,size=amount."),
        click.option("--names", default=None, metavar="A,B,...",
                     help="Column names replacing the file's header (for a header that does not match its rows)."),
        click.option("--symbol", default=None,
                     help="Instrument symbol of every row. Required unless the file has a symbol column "
                          "(then one instrument per distinct symbol)."),
        click.option("--timeframe", default=None, help="Bar length, e.g. 1m, 5m, 1h, 1d (required for bars)."),
        click.option("--bar-time", type=click.Choice(["start", "end"]), default="start", show_default=True,
                     help="Whether the file's bar time is the bar's open or close."),
        click.option("--ts-unit", type=click.Choice(["s", "ms", "us", "ns"]), default=None,
                     help="Unit of numeric epoch timestamps. Default: guessed from their magnitude."),
        click.option("--ts-format", default=None, help="strptime format of string timestamps, e.g. %d/%m/%Y."),
        click.option("--tz", default="UTC", show_default=True, help="Time zone of naive timestamps."),
        click.option("--instrument-kind", type=click.Choice(["equity", "future", "fx", "crypto", "index"]),
                     default="equity", show_default=True, help="Kind recorded for new instruments."),
        click.option("--venue", default="", help="Venue recorded for new instruments."),
        click.option("--currency", default="", help="Quote currency recorded for new instruments."),
        click.option("--multiplier", type=float, default=1.0, show_default=True,
                     help="Contract multiplier recorded for new instruments."),
        click.option("--skip-bad", is_flag=True, help="Skip bad rows (and count them) instead of refusing the file."),
        click.option("--json", "as_json", is_flag=True, help="Print one JSON object."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _options(**kw: Any):
    from argus.connectors.files import FileIngestError, FileIngestOptions, parse_mapping, parse_names

    try:
        return FileIngestOptions(
            kind=kw["kind"], columns=parse_mapping(kw["columns"]), names=parse_names(kw["names"]),
            header=kw.get("header", True), delimiter=kw.get("delimiter", ","), symbol=kw["symbol"],
            timeframe=kw["timeframe"], bar_time=kw["bar_time"], ts_unit=kw["ts_unit"], ts_format=kw["ts_format"],
            tz=kw["tz"], instrument_kind=kw["instrument_kind"], venue=kw["venue"], currency=kw["currency"],
            multiplier=kw["multiplier"], skip_bad=kw["skip_bad"])
    except FileIngestError as exc:
        raise click.UsageError(str(exc)) from exc


def _run(ctx: click.Context, path: str, reader: str, options, as_json: bool) -> None:
    from argus.connectors import files
    from argus.log import EventLog

    ingest = files.ingest_csv if reader == "csv" else files.ingest_parquet
    with EventLog.open(log_dir(ctx)) as log:
        summary = ingest(log, path, options)
    out = summary.to_dict()
    if not as_json:
        out["symbols"] = ",".join(summary.symbols)
        shown = out.pop("bad_rows_shown")
        for line in shown:
            click.echo(f"skipped {line}", err=True)
    emit(out, as_json)


@click.command("csv", epilog=_EPILOG)
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@_common_options
@click.option("--no-header", "no_header", is_flag=True, help="The first line is data (then --names is required).")
@click.option("--delimiter", default=",", show_default=True, help="Field separator.")
@click.pass_context
def csv_command(ctx: click.Context, path: str, as_json: bool, no_header: bool, **kw: Any) -> None:
    """Ingest trades, quotes or bars from a CSV file (one atomic append)."""
    _run(ctx, path, "csv", _options(header=not no_header, **kw), as_json)


@click.command("parquet", epilog=_EPILOG)
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@_common_options
@click.pass_context
def parquet_command(ctx: click.Context, path: str, as_json: bool, **kw: Any) -> None:
    """Ingest trades, quotes or bars from a Parquet file (one atomic append)."""
    _run(ctx, path, "parquet", _options(**kw), as_json)
