"""`argusctl live --source synthetic|tape|alpaca`: stream a live source into the log (or a server)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import signal

import click

from argus.cli.output import emit, log_dir


@click.command("live")
@click.option("--source", type=click.Choice(["synthetic", "tape", "alpaca"]), required=True, help="The live source.")
@click.option("--symbols", default="SPY,QQQ,IBIT", show_default=True, help="Comma-separated symbols (synthetic, alpaca).")
@click.option("--speed", type=click.FloatRange(min=0), default=1.0, show_default=True,
              help="Times real time (synthetic, tape); 0: as fast as possible.")
@click.option("--clock", "clock_text", default="1s", show_default=True, help="Clock event interval (e.g. 1s, 1m).")
@click.option("--duration", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Stop after this many seconds of live time (default: until the source ends or Ctrl-C).")
@click.option("--server", default=None, metavar="HOST:PORT", help="Append through an Argus server instead of the local log.")
@click.option("--token", default=None, envvar="ARGUS_TOKEN", help="Bearer token of the server (env ARGUS_TOKEN).")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="synthetic: seed.")
@click.option("--start", type=click.DateTime(formats=["%Y-%m-%d"]), default="2024-03-04", show_default=True,
              help="synthetic: first day (the first XNYS session on or after it).")
@click.option("--days", type=click.IntRange(min=1), default=1, show_default=True, help="synthetic: trading days.")
@click.option("--events-per-day", type=click.IntRange(min=1000), default=None,
              help="synthetic: expected quotes + trades per symbol per day (default 80000).")
@click.option("--from-log", "from_log", default=None, metavar="DIR", help="tape: a recorded event log directory.")
@click.option("--csv", "csv_path", default=None, metavar="FILE", help="tape: a CSV file (read as `ingest csv` reads it).")
@click.option("--kind", type=click.Choice(["trades", "quotes", "bars"]), default=None, help="tape --csv: row kind.")
@click.option("--symbol", default=None, help="tape --csv: the symbol when the file has no symbol column.")
@click.option("--timeframe", default=None, help="tape --csv: bar length (bars).")
@click.option("--tz", default="UTC", show_default=True, help="tape --csv: time zone of naive timestamps.")
@click.option("--url", default=None, help="alpaca: stream URL (default wss://stream.data.alpaca.markets/v2/iex).")
@click.option("--key", default=None, help="alpaca: API key id (default env APCA_API_KEY_ID).")
@click.option("--secret", default=None, help="alpaca: API secret (default env APCA_API_SECRET_KEY).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
def live(ctx: click.Context, source: str, symbols: str, speed: float, clock_text: str, duration: float | None,
         server: str | None, token: str | None, seed: int, start: dt.datetime, days: int,
         events_per_day: int | None, from_log: str | None, csv_path: str | None, kind: str | None,
         symbol: str | None, timeframe: str | None, tz: str, url: str | None, key: str | None,
         secret: str | None, as_json: bool) -> None:
    """Stream a live source, writing Clock events every --clock, until --duration or Ctrl-C; then print
    a summary (events, clocks, gaps, skipped)."""
    from argus.connectors import live as lv

    try:
        clock_ns = lv.parse_clock_interval(clock_text)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--clock") from None
    syms = tuple(s.strip() for s in symbols.split(",") if s.strip())
    if source == "tape" and (from_log is None) == (csv_path is None):
        raise click.UsageError("--source tape needs exactly one of --from-log DIR or --csv FILE")

    async def main(sink: lv.Sink) -> lv.LiveStats:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signal.SIGINT, stop.set)
        try:
            clock = lv.WallClock()
            common = dict(speed=speed, clock_ns=clock_ns, duration_s=duration, stop=stop)
            if source == "synthetic":
                from argus.connectors.synthetic import DEFAULT_EVENTS_PER_DAY, SyntheticConfig

                config = SyntheticConfig(seed=seed, symbols=syms, start=start.date(), days=days,
                                         events_per_day=events_per_day or DEFAULT_EVENTS_PER_DAY)
                return await lv.run_synthetic(config, sink, clock, **common)
            if source == "tape":
                if from_log is not None:
                    return await lv.run_tape_log(from_log, sink, clock, **common)
                from argus.connectors.files import FileIngestOptions

                options = FileIngestOptions(kind=kind, symbol=symbol, timeframe=timeframe, tz=tz)
                return await lv.run_tape_csv(csv_path, sink, clock, options=options, **common)
            from argus.connectors import alpaca

            return await alpaca.run_alpaca(sink, clock, url=url or alpaca.DEFAULT_URL, key=key, secret=secret,
                                           symbols=syms, clock_ns=clock_ns, duration_s=duration, stop=stop)
        finally:
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.remove_signal_handler(signal.SIGINT)

    if server is not None:
        from argus.client.client import ArgusClient

        stats = asyncio.run(main(lv.ServerSink(lambda: ArgusClient.connect(server, token=token))))
    else:
        from argus.log import EventLog

        with EventLog.open(log_dir(ctx)) as lg:
            stats = asyncio.run(main(lv.LogSink(lg)))
    out = stats.as_dict()
    if not as_json:
        out["gap_intervals"] = "; ".join(f"{g['start_ns']}..{g['end_ns']} ({g['duration_s']:.3f}s)"
                                         for g in out["gap_intervals"]) or "-"
        out["skip_reasons"] = ",".join(f"{k}={v}" for k, v in out["skip_reasons"].items()) or "-"
        out["errors"] = "; ".join(out["errors"]) or "-"
    emit(out, as_json)
