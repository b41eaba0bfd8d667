"""`argusctl ingest synthetic`."""

from __future__ import annotations

import click


@click.command("synthetic")
@click.pass_context
def synthetic_command(ctx: click.Context) -> None:
    """Write a seeded synthetic market (quotes, trades, clocks, option chains)."""
    raise click.ClickException("not implemented yet")
