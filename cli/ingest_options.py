"""`argusctl ingest options-csv`: parse the options, call argus.connectors.option_chains, print the summary."""

from __future__ import annotations

from typing import Any

import click

from argus.cli.output import emit, log_dir

_EPILOG = """\b
One OptionChainSnapshot per (underlying, quote date), in date order; the whole file is one
atomic append, preceded by the InstrumentDefined event of a new underlying (kind index for
SPX-like symbols unless --instrument-kind). Columns are matched case-insensitively, spaces and
a BOM stripped: underlying, underlying_last, optionroot, type (call/put or C/P), expiration,
quotedate, strike, bid, ask, bid_size, ask_size, volume, openinterest, impliedvol, delta,
gamma, theta, vega. Map others with --columns TARGET=COLUMN,...

\b
ts_event = ts_recv = quote date at --snapshot-time in --tz; expiry_ns = expiry date at
--expiry-time in America/New_York. IV and greeks are stored as the vendor gave them
(placeholder IVs included; vendor units). A bad row refuses the file (FILE:LINE: reason;
exit code 3) unless --skip-bad, which skips and counts bad rows.
"""


@click.command("options-csv", epilog=_EPILOG)
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("--columns", default=None, metavar="TARGET=COLUMN,...",
              help="Map file columns to fields, e.g. quotedate=date,impliedvol=iv.")
@click.option("--symbol", default=None, help="Underlying symbol of every row (default: the underlying column).")
@click.option("--date-format", default="%m/%d/%Y", show_default=True, help="strptime format of the dates.")
@click.option("--tz", default="America/New_York", show_default=True, help="Time zone of the snapshot time.")
@click.option("--snapshot-time", default="16:00", show_default=True, help="Time of day of each snapshot (in --tz).")
@click.option("--expiry-time", default="16:00", show_default=True, help="Time of day of expiry (New York).")
@click.option("--source", type=click.Choice(["vendor", "synthetic", "stream", "broker"]), default="vendor",
              show_default=True, help="OptionSource recorded in the snapshots.")
@click.option("--instrument-kind", type=click.Choice(["equity", "future", "fx", "crypto", "index"]), default=None,
              help="Kind of a new underlying. Default: index for SPX-like symbols, else equity.")
@click.option("--skip-bad", is_flag=True, help="Skip bad rows (and count them) instead of refusing the file.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
def options_csv_command(ctx: click.Context, path: str, as_json: bool, **kw: Any) -> None:
    """Ingest end-of-day option chains from a CSV file (one atomic append)."""
    from argus.connectors.files import FileIngestError
    from argus.connectors.option_chains import OptionChainOptions, ingest_option_chains, parse_columns
    from argus.log import EventLog

    try:
        options = OptionChainOptions(
            columns=parse_columns(kw["columns"]), symbol=kw["symbol"], date_format=kw["date_format"], tz=kw["tz"],
            snapshot_time=kw["snapshot_time"], expiry_time=kw["expiry_time"], source=kw["source"],
            instrument_kind=kw["instrument_kind"], skip_bad=kw["skip_bad"])
    except FileIngestError as exc:
        raise click.UsageError(str(exc)) from exc
    with EventLog.open(log_dir(ctx)) as log:
        summary = ingest_option_chains(log, path, options)
    out = summary.to_dict()
    if not as_json:
        out["symbols"] = ",".join(summary.symbols)
        for line in out.pop("bad_rows_shown"):
            click.echo(f"skipped {line}", err=True)
    emit(out, as_json)
