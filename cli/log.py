"""`argusctl log info|verify|cat|tail`."""

from __future__ import annotations

import json
import sys

import click

from argus.cli.output import emit, log_dir


@click.group()
def log() -> None:
    """Inspect the event log."""


def _open(ctx: click.Context):
    from argus.log import EventLog

    return EventLog.open(log_dir(ctx), readonly=True)


@log.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
def info(ctx: click.Context, as_json: bool) -> None:
    """Head, event and chunk counts, size, time range and instruments."""
    with _open(ctx) as lg:
        i = lg.info()
    emit({"head": i.head, "events": i.events, "chunks": i.chunks, "bytes": i.bytes,
          "first_ts_recv": i.first_ts_recv, "last_ts_recv": i.last_ts_recv, "instruments": i.instruments}, as_json)


@log.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
def verify(ctx: click.Context, as_json: bool) -> None:
    """Check every chunk's checksum, the hash chain, dense offsets and every record. Exit 1 if not ok."""
    with _open(ctx) as lg:
        report = lg.verify()
    emit({"ok": report.ok, "events": report.events, "chunks": report.chunks, "chain_head": report.chain_head,
          "errors": report.errors}, as_json)
    if not report.ok:
        sys.exit(1)


def _print_events(lg, from_offset: int, limit: int | None, as_json: bool, symbols: dict[int, str]) -> int:
    from argus.events.codec import to_json_dict
    from argus.events.types import EventType

    last = from_offset
    for offset, event in lg.events(from_offset, limit):
        if event.type == EventType.INSTRUMENT_DEFINED:
            symbols[event.instrument_id] = event.data["symbol"]
        row = to_json_dict(offset, event, symbols.get(event.instrument_id))
        if as_json:
            click.echo(json.dumps(row))
        else:
            fields = " ".join(f"{k}={v}" for k, v in row.items() if k not in ("offset", "type", "symbol"))
            click.echo(f"{offset:>10} {event.type.name:<22} {row['symbol'] or '-':<12} {fields}")
        last = offset + 1
    return last


@log.command()
@click.option("--from-offset", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--limit", type=click.IntRange(min=0), default=None, help="At most this many events.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.pass_context
def cat(ctx: click.Context, from_offset: int, limit: int | None, as_json: bool) -> None:
    """Print events from an offset."""
    with _open(ctx) as lg:
        _print_events(lg, from_offset, limit, as_json, lg.symbols())


@log.command()
@click.option("--from-offset", type=click.IntRange(min=0), default=None, help="Default: the current head.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.option("--poll", type=float, default=0.2, show_default=True, help="Seconds between looks at the head.")
@click.pass_context
def tail(ctx: click.Context, from_offset: int | None, as_json: bool, poll: float) -> None:
    """Follow the live log (Ctrl-C to stop)."""
    import asyncio

    from argus.events.codec import decode, iter_records, to_json_dict
    from argus.events.types import EventType

    async def follow(lg) -> None:
        symbols = lg.symbols()
        start = lg.head() if from_offset is None else from_offset
        async for chunk in lg.subscribe(start, poll_interval=poll):
            for offset, rec in iter_records(chunk.body, chunk.first_offset):
                if not chunk.start <= offset < chunk.stop:
                    continue
                event = decode(rec)
                if event.type == EventType.INSTRUMENT_DEFINED:
                    symbols[event.instrument_id] = event.data["symbol"]
                row = to_json_dict(offset, event, symbols.get(event.instrument_id))
                click.echo(json.dumps(row) if as_json else f"{offset:>10} {event.type.name:<22} {row}")

    with _open(ctx) as lg:
        try:
            asyncio.run(follow(lg))
        except KeyboardInterrupt:
            pass
