"""`argusctl ingest csv` and `argusctl ingest parquet`."""

from __future__ import annotations

import click


@click.command("csv")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.pass_context
def csv_command(ctx: click.Context, path: str) -> None:
    """Ingest trades, quotes or bars from a CSV file."""
    raise click.ClickException("not implemented yet")


@click.command("parquet")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.pass_context
def parquet_command(ctx: click.Context, path: str) -> None:
    """Ingest trades, quotes or bars from a Parquet file."""
    raise click.ClickException("not implemented yet")
