"""`argusctl ingest synthetic`."""

from __future__ import annotations

import datetime as dt
import sys

import click

from argus.cli.output import emit, log_dir


@click.command("synthetic")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Seed of every random draw.")
@click.option("--symbols", default="SPY,QQQ,IBIT", show_default=True, help="Comma-separated symbols.")
@click.option("--start", type=click.DateTime(formats=["%Y-%m-%d"]), default="2024-03-04", show_default=True,
              help="First day (YYYY-MM-DD); the first XNYS session on or after it.")
@click.option("--days", type=click.IntRange(min=1), default=5, show_default=True, help="Trading days to write.")
@click.option("--options", is_flag=True, help="Also write option chain snapshots every 30 minutes.")
@click.option("--clock", default="1m", show_default=True, help="Clock event interval (e.g. 30s, 1m, 5m, 1h).")
@click.option("--events-per-day", type=click.IntRange(min=1000), default=None,
              help="Expected quotes + trades per symbol per day (default 80000).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
def synthetic_command(ctx: click.Context, seed: int, symbols: str, start: dt.datetime, days: int, options: bool,
                      clock: str, events_per_day: int | None, as_json: bool) -> None:
    """Write a seeded synthetic market (quotes, trades, clocks, option chains).

    The same seed and options on a fresh log give byte-identical chunks (the same chain head)."""
    from argus.connectors.synthetic import (
        DEFAULT_EVENTS_PER_DAY,
        SyntheticConfig,
        parse_interval,
        write_synthetic_market,
    )
    from argus.log import EventLog

    try:
        clock_ns = parse_interval(clock)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--clock") from None
    config = SyntheticConfig(seed=seed, symbols=tuple(s.strip() for s in symbols.split(",") if s.strip()),
                             start=start.date(), days=days, options=options, clock_ns=clock_ns,
                             events_per_day=events_per_day or DEFAULT_EVENTS_PER_DAY)
    with EventLog.open(log_dir(ctx)) as lg:
        summary = write_synthetic_market(lg, config, progress=sys.stderr.isatty())
    out = summary.as_dict()
    if not as_json:
        out["symbols"] = ",".join(f"{s}={i}" for s, i in summary.symbols.items())
    emit(out, as_json)
