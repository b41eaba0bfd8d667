"""Argus: an event-sourced trading-research kernel (see DESIGN.md).

`argus.open(path)` opens the event log at a directory; everything else is derived from it."""

from __future__ import annotations

__version__ = "0.1.0"


def open(path, **kwargs):  # noqa: A001 - the documented entry point, `argus.open(path)`
    """Open the event log at `path` (see argus.log.EventLog for the options)."""
    from argus.log import EventLog

    return EventLog.open(path, **kwargs)
