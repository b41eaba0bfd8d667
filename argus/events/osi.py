"""OCC option symbols (OSI, the Options Symbology Initiative, 2010): the root padded to six characters,
the expiration date YYMMDD, C or P, and the strike in thousandths on eight digits, e.g.
"SPXW  180216P02650000" is the SPXW put of 2018-02-16 struck at 2650.

The date is the New York calendar date of the expiry instant (a row's expiry_ns), so a 16:00 New York
expiry keeps its trading date whatever the UTC offset."""

from __future__ import annotations

import datetime as dt
import re
from zoneinfo import ZoneInfo

from argus.events.types import OptionRight

__all__ = ["osi_symbol", "parse_osi"]

NEW_YORK = ZoneInfo("America/New_York")
_OSI = re.compile(r"^(?P<root>[A-Z0-9.]{1,6}) *(?P<date>\d{6})(?P<cp>[CP])(?P<strike>\d{8})$")


def osi_symbol(root: str, expiry: int | dt.date, right: int | str, strike: float) -> str:
    """The OSI symbol of a contract; `expiry` is a date or ns since the epoch (UTC)."""
    root = root.strip().upper()
    if not 1 <= len(root) <= 6:
        raise ValueError(f"root = {root!r}: must be 1 to 6 characters")
    day = expiry if isinstance(expiry, dt.date) else dt.datetime.fromtimestamp(expiry / 1e9, tz=NEW_YORK).date()
    if isinstance(right, str):
        cp = {"call": "C", "c": "C", "put": "P", "p": "P"}.get(right.lower())
    else:
        cp = {int(OptionRight.CALL): "C", int(OptionRight.PUT): "P"}.get(int(right))
    if cp is None:
        raise ValueError(f"right = {right!r}: must be call or put")
    thousandths = round(strike * 1000)
    if not 0 < thousandths < 10**8 or abs(thousandths - strike * 1000) > 1e-6 * max(1.0, strike):
        raise ValueError(f"strike = {strike!r}: must be > 0, below 100,000 and a multiple of 0.001")
    return f"{root:<6}{day:%y%m%d}{cp}{thousandths:08d}"


def parse_osi(symbol: str) -> tuple[str, dt.date, str, float]:
    """(root, expiration date, "call" | "put", strike) of an OSI symbol (years 2000-2099)."""
    m = _OSI.match(symbol.strip().upper() if len(symbol.strip()) < 21 else symbol.upper())
    if m is None:
        raise ValueError(f"symbol = {symbol!r}: not an OSI option symbol (ROOT YYMMDD C|P STRIKE*1000, 8 digits)")
    d = m["date"]  # OSI began in 2010: the two-digit year is 20YY
    try:
        day = dt.date(2000 + int(d[:2]), int(d[2:4]), int(d[4:]))
    except ValueError:
        raise ValueError(f"symbol = {symbol!r}: {d} is not a date YYMMDD") from None
    return m["root"], day, "call" if m["cp"] == "C" else "put", int(m["strike"]) / 1000
