"""Rendering helpers shared by the commands: JSON for scripts, aligned text for people."""

from __future__ import annotations

import json
import os
from typing import Any

import click


def log_dir(ctx: click.Context) -> str:
    """The event log's directory inside the data directory."""
    return os.path.join(ctx.obj["data"], "log")


def emit(obj: dict[str, Any], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(obj, sort_keys=False))
    else:
        width = max((len(k) for k in obj), default=0)
        for key, value in obj.items():
            click.echo(f"{key:<{width}}  {value}")
