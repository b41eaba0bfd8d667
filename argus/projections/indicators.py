"""Configuration of the indicators projection: validated specs, column names, lookbacks, config hash.

A configuration is a list of mappings, typically from YAML::

    indicators:
      - {kind: sma, period: 20}
      - {kind: macd, fast: 12, slow: 26, signal: 9}
      - {kind: bbands, period: 20, nbdev: 2.0}
      - {kind: rv, period: 20, periods_per_year: 252}

parse_indicators() turns it into normalised spec dicts (every parameter present, defaults filled in, in
a fixed key order) that argus.kernels.indicators.IndicatorReducer takes, or raises IndicatorConfigError
naming the index, the field, the value and the rule. Definitions and warm-up follow TA-Lib; lookback()
is the number of bars before the first value (TA-Lib's lookback for the TA-Lib indicators).
"""

from __future__ import annotations

import hashlib
import json
import math
import numbers
from collections.abc import Mapping, Sequence
from typing import Any

from argus.errors import ArgusError

MAX_PERIOD = 100_000  # TA-Lib's bound on a period

# kind -> {field: (type, default or None when required, minimum)}, in the order of the spec dict.
_INT, _POS = "int", "pos"
SCHEMA: dict[str, dict[str, tuple[str, Any, int]]] = {
    "sma": {"period": (_INT, None, 1)},
    "ema": {"period": (_INT, None, 1)},
    "rsi": {"period": (_INT, 14, 1)},
    "macd": {"fast": (_INT, 12, 1), "slow": (_INT, 26, 2), "signal": (_INT, 9, 1)},
    "atr": {"period": (_INT, 14, 1)},
    "bbands": {"period": (_INT, 20, 1), "nbdev": (_POS, 2.0, 0)},
    "adx": {"period": (_INT, 14, 1)},
    "vwap": {},
    "rv": {"period": (_INT, 20, 2), "periods_per_year": (_POS, 252.0, 0)},
}


class IndicatorConfigError(ArgusError, ValueError):
    """An indicator configuration broke a rule; the message names index, field, value and rule."""

    def __init__(self, index: int, kind: str | None, field: str, value: object, rule: str):
        self.index = index
        self.kind = kind
        self.field = field
        self.value = value
        self.rule = rule
        where = "indicators" if index < 0 else f"indicator {index}" + (f" ({kind})" if kind else "")
        super().__init__(f"{where}: field '{field}' = {value!r} must be {rule}")


def _int_field(index: int, kind: str, field: str, value: object, low: int) -> int:
    rule = f"an integer in [{low}, {MAX_PERIOD}]"
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise IndicatorConfigError(index, kind, field, value, rule)
    if not low <= int(value) <= MAX_PERIOD:
        raise IndicatorConfigError(index, kind, field, value, rule)
    return int(value)


def _pos_field(index: int, kind: str, field: str, value: object) -> float:
    rule = "a finite number > 0"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise IndicatorConfigError(index, kind, field, value, rule)
    if not math.isfinite(float(value)) or float(value) <= 0:
        raise IndicatorConfigError(index, kind, field, value, rule)
    return float(value)


def parse_spec(item: object, index: int = 0) -> dict[str, Any]:
    """One mapping -> a normalised spec dict ({"kind": ..., params in schema order})."""
    if not isinstance(item, Mapping):
        raise IndicatorConfigError(index, None, "kind", item, "given in a mapping like {kind: sma, period: 20}")
    raw_kind = item.get("kind")
    kind = raw_kind.lower() if isinstance(raw_kind, str) else raw_kind
    if kind not in SCHEMA:
        raise IndicatorConfigError(index, None, "kind", raw_kind, f"one of {', '.join(SCHEMA)}")
    fields = SCHEMA[kind]
    for key in item:
        if key != "kind" and key not in fields:
            known = ", ".join(fields) or "none"
            raise IndicatorConfigError(index, kind, str(key), item[key], f"absent: {kind} has the fields {known}")
    spec: dict[str, Any] = {"kind": kind}
    for field, (typ, default, low) in fields.items():
        if field not in item:
            if default is None:
                raise IndicatorConfigError(index, kind, field, None, f"given (an integer in [{low}, {MAX_PERIOD}])")
            value: object = default
        else:
            value = item[field]
        spec[field] = _int_field(index, kind, field, value, low) if typ == _INT else _pos_field(index, kind, field, value)
    if kind == "macd" and spec["fast"] >= spec["slow"]:
        raise IndicatorConfigError(index, kind, "fast", spec["fast"], f"< slow = {spec['slow']}")
    return spec


def spec_columns(spec: Mapping[str, Any]) -> list[str]:
    """Output column names of one normalised spec."""
    kind = spec["kind"]
    if kind == "macd":
        params = (spec["fast"], spec["slow"], spec["signal"])
        suffix = "" if params == (12, 26, 9) else "_{}_{}_{}".format(*params)
        return [f"macd{suffix}", f"macd_signal{suffix}", f"macd_hist{suffix}"]
    if kind == "bbands":
        n = spec["period"]
        return [f"bb_upper_{n}", f"bb_middle_{n}", f"bb_lower_{n}"]
    if kind == "vwap":
        return ["vwap"]
    return [f"{kind}_{spec['period']}"]


def parse_indicators(items: object) -> list[dict[str, Any]]:
    """A list of mappings -> normalised spec dicts; refuses bad input and duplicate column names."""
    if isinstance(items, (str, bytes, Mapping)) or not isinstance(items, Sequence):
        raise IndicatorConfigError(-1, None, "indicators", items, "a list of mappings like [{kind: sma, period: 20}]")
    if not items:
        raise IndicatorConfigError(-1, None, "indicators", items, "a non-empty list")
    specs = [parse_spec(item, index) for index, item in enumerate(items)]
    seen: dict[str, int] = {}
    for index, spec in enumerate(specs):
        for column in spec_columns(spec):
            if column in seen:
                raise IndicatorConfigError(index, spec["kind"], "kind", spec["kind"],
                                           f"unique: its column '{column}' is already given by indicator {seen[column]}")
            seen[column] = index
    return specs


# The name argus.projections.config imports.
parse_indicator_specs = parse_indicators


def column_names(specs: Sequence[Mapping[str, Any]]) -> list[str]:
    """The f8 output columns of a configuration, in spec order."""
    return [column for spec in parse_indicators(list(specs)) for column in spec_columns(spec)]


def lookback(spec: Mapping[str, Any]) -> int:
    """Bars before the first value (TA-Lib's lookback for the TA-Lib indicators)."""
    s = parse_spec(spec)
    kind = s["kind"]
    if kind in ("sma", "ema", "bbands"):
        return s["period"] - 1
    if kind in ("rsi", "atr", "rv"):
        return s["period"]
    if kind == "macd":
        return (s["slow"] - 1) + (s["signal"] - 1)
    if kind == "adx":
        return 2 * s["period"] - 1
    return 0  # vwap


def config_hash(specs: Sequence[Mapping[str, Any]], upstream: bytes = b"") -> bytes:
    """BLAKE2b-256 of the canonical configuration (normalised specs as sorted-key JSON), chained to the
    configuration hash of the reducer that feeds the bars (upstream), as the reducer's config_hash."""
    canonical = json.dumps({"indicators": parse_indicators(list(specs))}, sort_keys=True, separators=(",", ":"))
    return hashlib.blake2b(upstream + canonical.encode(), digest_size=32).digest()


DEFAULT_INDICATORS: list[dict[str, Any]] = parse_indicators([
    {"kind": "sma", "period": 20},
    {"kind": "ema", "period": 12},
    {"kind": "ema", "period": 26},
    {"kind": "rsi", "period": 14},
    {"kind": "macd", "fast": 12, "slow": 26, "signal": 9},
    {"kind": "atr", "period": 14},
    {"kind": "bbands", "period": 20, "nbdev": 2.0},
    {"kind": "adx", "period": 14},
    {"kind": "vwap"},
    {"kind": "rv", "period": 20, "periods_per_year": 252},
])
