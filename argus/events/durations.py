"""Durations written the way traders write timeframes: "30s", "1m", "5min", "1h", "1d", "1w"."""

from __future__ import annotations

import re

_DURATION = re.compile(r"^\s*(\d+)\s*(ns|us|ms|s|sec|m|min|h|hr|d|w)\s*$")
UNIT_NS = {"ns": 1, "us": 1_000, "ms": 1_000_000, "s": 1_000_000_000, "sec": 1_000_000_000,
           "m": 60_000_000_000, "min": 60_000_000_000, "h": 3_600_000_000_000, "hr": 3_600_000_000_000,
           "d": 86_400_000_000_000, "w": 604_800_000_000_000}
_LABELS = (("w", UNIT_NS["w"]), ("d", UNIT_NS["d"]), ("h", UNIT_NS["h"]), ("m", UNIT_NS["m"]),
           ("s", UNIT_NS["s"]), ("ms", UNIT_NS["ms"]), ("us", UNIT_NS["us"]), ("ns", 1))


def parse_duration(text: str, field: str = "timeframe") -> int:
    """Nanoseconds of a positive duration such as "1m"; months and years are refused (no fixed length)."""
    m = _DURATION.match(str(text))
    if not m or int(m.group(1)) <= 0:
        raise ValueError(f"{field} = {text!r} must be a positive count and a unit "
                         "(ns, us, ms, s, m or min, h, d, w), e.g. 1m, 5m, 1h, 1d")
    return int(m.group(1)) * UNIT_NS[m.group(2)]


def format_duration(ns: int) -> str:
    """The shortest label of a duration: 300_000_000_000 -> "5m"."""
    for unit, size in _LABELS:
        if ns % size == 0:
            return f"{ns // size}{unit}"
    raise AssertionError("unreachable: every duration is a whole number of ns")
