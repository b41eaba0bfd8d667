"""Input checks shared by the sizing modules: each error names the field, the value and the rule."""

from __future__ import annotations

import math


def number(name: str, value: object) -> float:
    """`value` as a float; refuses bools, non-numbers and NaN/inf."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name}={value!r}: must be a finite number")
    out = float(value)
    if not math.isfinite(out):
        raise ValueError(f"{name}={value!r}: must be finite")
    return out


def positive(name: str, value: object) -> float:
    out = number(name, value)
    if out <= 0.0:
        raise ValueError(f"{name}={value!r}: must be > 0")
    return out


def non_negative(name: str, value: object) -> float:
    out = number(name, value)
    if out < 0.0:
        raise ValueError(f"{name}={value!r}: must be >= 0")
    return out


def is_missing(value: object) -> bool:
    """None or a float NaN: the marker of a missing input (fail-safe sizing treats it as no data)."""
    return value is None or (isinstance(value, float) and math.isnan(value))
