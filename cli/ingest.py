"""`argusctl ingest csv|parquet|synthetic`."""

from __future__ import annotations

import click

from argus.cli.ingest_files import csv_command, parquet_command
from argus.cli.ingest_options import options_csv_command
from argus.cli.ingest_synthetic import synthetic_command


@click.group()
def ingest() -> None:
    """Write market data into the event log."""


ingest.add_command(csv_command)
ingest.add_command(parquet_command)
ingest.add_command(synthetic_command)
ingest.add_command(options_csv_command)
