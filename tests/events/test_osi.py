"""OSI option symbols against the OCC's published format and examples."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from argus.events.osi import osi_symbol, parse_osi
from argus.events.types import OptionRight


def test_occ_examples():
    # OCC's examples: SPX put, 22 Nov 2014, strike 19.50; an SPXW put from the real 2018 file.
    assert osi_symbol("SPX", dt.date(2014, 11, 22), "put", 19.5) == "SPX   141122P00019500"
    assert osi_symbol("SPXW", dt.date(2018, 2, 16), OptionRight.PUT, 2650) == "SPXW  180216P02650000"
    assert parse_osi("SPXW  180216P02650000") == ("SPXW", dt.date(2018, 2, 16), "put", 2650.0)


def test_expiry_instant_uses_the_new_york_date():
    # 2024-03-08 16:00 New York (EST) = 21:00 UTC; 2024-03-15 16:00 (EDT) = 20:00 UTC.
    assert osi_symbol("SPY", 1709931600 * 10**9, OptionRight.CALL, 477.5)[6:12] == "240308"
    assert osi_symbol("SPY", 1710532800 * 10**9, OptionRight.CALL, 477.5) == "SPY   240315C00477500"


def test_bad_input_names_the_field():
    with pytest.raises(ValueError, match="root"):
        osi_symbol("TOOLONGX", dt.date(2024, 1, 1), "put", 1)
    with pytest.raises(ValueError, match="strike"):
        osi_symbol("SPY", dt.date(2024, 1, 1), "put", 0.0001)
    with pytest.raises(ValueError, match="right"):
        osi_symbol("SPY", dt.date(2024, 1, 1), 0, 1)
    with pytest.raises(ValueError, match="not an OSI"):
        parse_osi("SPY 240315 C 477.5")


@given(st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=1, max_size=6),
       st.dates(dt.date(2000, 1, 1), dt.date(2099, 12, 31)), st.sampled_from(["call", "put"]),
       st.integers(1, 99_999_999))
def test_round_trip(root, day, right, thousandths):
    sym = osi_symbol(root, day, right, thousandths / 1000)
    assert len(sym) == 21
    assert parse_osi(sym) == (root, day, right, thousandths / 1000)
