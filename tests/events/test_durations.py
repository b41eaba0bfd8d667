"""Timeframe strings to nanoseconds and back."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from argus.events.durations import format_duration, parse_duration


@pytest.mark.parametrize(("text", "ns"), [("1s", 10**9), ("30s", 30 * 10**9), ("1m", 60 * 10**9),
                                          ("5min", 300 * 10**9), ("1h", 3600 * 10**9), ("1d", 86_400 * 10**9),
                                          ("1w", 7 * 86_400 * 10**9), (" 15 m ", 900 * 10**9), ("250ms", 250 * 10**6)])
def test_parse_duration_gives_nanoseconds(text: str, ns: int) -> None:
    assert parse_duration(text) == ns


@pytest.mark.parametrize("text", ["", "0m", "-1m", "1mo", "1y", "m", "1.5m"])
def test_parse_duration_refuses_bad_text_naming_the_field(text: str) -> None:
    with pytest.raises(ValueError, match="bars\\[2\\] = "):
        parse_duration(text, "bars[2]")


@given(st.integers(min_value=1, max_value=10**6), st.sampled_from(["s", "m", "h", "d", "w", "ms", "us", "ns"]))
def test_format_then_parse_is_the_identity(count: int, unit: str) -> None:
    ns = parse_duration(f"{count}{unit}")
    assert parse_duration(format_duration(ns)) == ns


def test_format_picks_the_largest_whole_unit() -> None:
    assert format_duration(300 * 10**9) == "5m" and format_duration(90 * 10**9) == "90s"
    assert format_duration(86_400 * 10**9) == "1d"
