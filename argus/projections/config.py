"""Projection configuration: which bars, which indicators, positions, snapshot interval.

Read from YAML (or a dict), validated with errors that name the field, the value and the rule, and
reduced to canonical JSON whose BLAKE2b-256 is the configuration hash stamped on every output and
snapshot. Example (also the default):

    calendar: XNYS          # exchange calendar of session bars and the session-anchored VWAP
    extended_hours: false   # session bars cover regular hours (true: 04:00-20:00 New York)
    bars: [1m, 5m]          # time bars from trades; also {kind: session}, {kind: volume, threshold: 1e4},
                            # {kind: dollar, threshold: 1e6}, {kind: time, interval: 1h, source: provider}
    indicators: default     # or a list such as [{kind: sma, period: 20}, {kind: rsi, period: 14}]
    quality: {}             # bar data-quality flags: stale_quote_ns, outlier_z, outlier_window
    sessions: true          # session tags (Asia, Europe, US pre/regular/post, weekend, holiday) and transitions
    regimes: {}             # volatility and trend regimes (false to turn off; a mapping sets parameters)
    bocpd: {}               # Bayesian online change points on bar returns (hazard_lambda, max_run, priors)
    outcomes: {}            # forward return, run-up, drawdown per closed bar (horizons, session_end)
    hmm: {}                 # Gaussian HMM forward filter; parameters from `hmm` ConfigRecorded events in the log
    risk_flow: {}           # 0.4 Asia + 0.4 Europe + 0.2 FX (symbols and weights configurable), on bars of `spec`
    market_regime: {}       # risk-on / neutral / risk-off of `index` (default SPY) on bars of `spec`
    positions: true
    options: false          # PoP and IV-anomaly records from OptionChainSnapshot events (off by default;
                            # true or a mapping, see OPTIONS_DEFAULTS and argus.projections.options)
    snapshot_every: 100000  # events between snapshots

The `options` section (every field optional; `options: true` takes the defaults):

    symbols: all            # or a list, e.g. [SPY]; symbols not in the log are ignored
    right: put              # credit spreads of puts or calls
    top: 5                  # spreads per snapshot, best natural credit/width first
    short_delta: [0.10, 0.30]  # |delta| range of the short leg
    dte: [7, 60]            # days-to-expiry range of the candidates
    rate: 0.05              # risk-free rate of the fit, the Monte Carlo and the IV inversion
    paths: 20000            # Monte Carlo paths per spread (seed = the snapshot's log offset)
    steps: null             # time steps (null: max(16, ceil(50 T)))
    fit: expiry             # Heston fit to the spread's expiry, or `all` expiries at least a day out
    fit_evals: 20           # most function evaluations of one Heston fit
    max_age: 15m            # a snapshot received more than this after its ts_event is stale: skipped
    times: null             # or New York times of day, e.g. ["10:00", "15:30"]: only snapshots taken then
    anomalies: true         # the SVI surface's flagged quotes (option_anomalies)
    z: 4.0                  # robust z above which a quote is an outlier
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from argus.events.durations import format_duration, parse_duration

DEFAULT_SNAPSHOT_EVERY = 100_000
SESSION_RANGE = ("2000-01-01", "2035-12-31")  # the session table spans a fixed range: the hash must not depend on the log
_KINDS = ("time", "session", "volume", "dollar")
#: The components of the global risk flow (DESIGN.md §5): Asia and Europe equity ETFs, and USD/JPY.
RISK_FLOW_GROUPS = {"asia": ("EWJ", "FXI", "EWT", "EWY", "INDA"), "europe": ("EWG", "EWU", "FEZ", "EWL"),
                    "fx": ("USD/JPY",)}
_SOURCES = ("trades", "provider")


#: Defaults of the `options` section (see the module doc).
OPTIONS_DEFAULTS: dict[str, Any] = {"symbols": "all", "right": "put", "top": 5, "short_delta": [0.10, 0.30],
                                    "dte": [7, 60], "rate": 0.05, "paths": 20_000, "steps": None, "fit": "expiry",
                                    "fit_evals": 20, "max_age": "15m", "times": None, "anomalies": True, "z": 4.0}


class ConfigError(ValueError):
    """A projection configuration broke a rule; the message names the field and the value."""


@dataclass(frozen=True)
class BarSpecConfig:
    kind: str
    source: str = "trades"
    interval_ns: int = 0
    origin_ns: int = 0
    threshold: float = 0.0

    @property
    def label(self) -> str:
        """The `timeframe` column of this spec's bars."""
        suffix = "" if self.source == "trades" else "@provider"
        if self.kind == "time":
            return format_duration(self.interval_ns) + suffix
        if self.kind == "session":
            return "1d" + suffix
        return f"{self.kind}{self.threshold:g}" + suffix

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "source": self.source, "interval_ns": self.interval_ns,
                "origin_ns": self.origin_ns, "threshold": self.threshold}


@dataclass(frozen=True)
class ProjectionConfig:
    bars: tuple[BarSpecConfig, ...]
    indicators: tuple[dict[str, Any], ...]
    positions: bool = True
    quality: dict[str, Any] | None = None  # None: the bar reducer's defaults
    sessions_tags: bool = False
    regimes: dict[str, Any] | None = None  # None: off
    bocpd: dict[str, Any] | None = None
    outcomes: dict[str, Any] | None = None
    hmm: dict[str, Any] | None = None
    risk_flow: dict[str, Any] | None = None
    market_regime: dict[str, Any] | None = None
    options: dict[str, Any] | None = None  # None: off
    calendar: str = "XNYS"
    extended_hours: bool = False
    snapshot_every: int = DEFAULT_SNAPSHOT_EVERY
    _hash: bytes = field(default=b"", compare=False, repr=False)

    def canonical(self) -> dict[str, Any]:
        """What the hash covers (snapshot_every does not change any output, so it is left out). `options`
        appears only when it is on, so the hashes of configurations without it are unchanged."""
        out = {"version": 2, "bars": [b.as_dict() for b in self.bars], "indicators": list(self.indicators),
               "positions": self.positions, "calendar": self.calendar, "extended_hours": self.extended_hours,
               "session_range": list(SESSION_RANGE), "quality": self.quality, "sessions": self.sessions_tags,
               "regimes": self.regimes, "bocpd": self.bocpd, "outcomes": self.outcomes, "hmm": self.hmm,
               "risk_flow": self.risk_flow, "market_regime": self.market_regime}
        if self.options is not None:
            out["options"] = self.options
        return out

    def canonical_json(self) -> str:
        return json.dumps(self.canonical(), sort_keys=True, separators=(",", ":"))

    @property
    def config_hash(self) -> bytes:
        """BLAKE2b-256 of the canonical JSON and of the session table it implies."""
        if not self._hash:
            h = hashlib.blake2b(self.canonical_json().encode(), digest_size=32)
            if self.needs_sessions:
                h.update(self.sessions().tobytes())
            if self.sessions_tags:
                segments, labels = self.session_segments()
                h.update(segments.tobytes())
                h.update(labels.tobytes())
            object.__setattr__(self, "_hash", h.digest())
        return self._hash

    @property
    def needs_sessions(self) -> bool:
        return bool(self.bars)

    def sessions(self) -> np.ndarray:
        from argus.projections.sessions import session_table

        cached = getattr(self, "_sessions", None)
        if cached is None:
            cached = session_table(self.calendar, SESSION_RANGE[0], SESSION_RANGE[1], extended=self.extended_hours)
            object.__setattr__(self, "_sessions", cached)
        return cached


    def session_segments(self) -> tuple[np.ndarray, np.ndarray]:
        """The global session partition (segments, labels) of the session tags."""
        from argus.projections.sessions import global_session_segments

        cached = getattr(self, "_segments", None)
        if cached is None:
            cached = global_session_segments(SESSION_RANGE[0], SESSION_RANGE[1])
            object.__setattr__(self, "_segments", cached)
        return cached


def _section(raw: dict[str, Any], name: str, default_on: bool) -> dict[str, Any] | None:
    """A projection switched by `name: true|false` or configured by `name: {params}`."""
    value = raw.get(name, default_on)
    if value is True or value == {}:
        return {}
    if value is False or value is None:
        return None
    if not isinstance(value, dict):
        raise ConfigError(f"{name} = {value!r} must be true, false or a mapping of parameters")
    return dict(sorted(value.items()))


def _number(name: str, value: Any, rule: str, ok) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value) or not ok(value):
        raise ConfigError(f"options.{name} = {value!r} must be {rule}")
    return float(value)


def _integer(name: str, value: Any, lo: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < lo:
        raise ConfigError(f"options.{name} = {value!r} must be an integer >= {lo}")
    return int(value)


def _range(name: str, value: Any, lo: float, hi: float) -> list[float]:
    if (not isinstance(value, list | tuple) or len(value) != 2
            or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
            or not lo <= value[0] <= value[1] <= hi):
        raise ConfigError(f"options.{name} = {value!r} must be a [low, high] pair with {lo:g} <= low <= high <= {hi:g}")
    return [float(value[0]), float(value[1])]


def _options_section(raw: Any) -> dict[str, Any] | None:
    """The validated `options` section with every default filled in (None: off)."""
    if raw is None or raw is False:
        return None
    if raw is True:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"options = {raw!r} must be true, false or a mapping of parameters")
    unknown = set(raw) - set(OPTIONS_DEFAULTS)
    if unknown:
        raise ConfigError(f"options: unknown field(s) {sorted(unknown)} (known: {', '.join(sorted(OPTIONS_DEFAULTS))})")
    o = {**OPTIONS_DEFAULTS, **raw}
    symbols = o["symbols"]
    if isinstance(symbols, str) and symbols != "all":
        symbols = [s.strip() for s in symbols.split(",") if s.strip()]
    if symbols != "all" and (not isinstance(symbols, list) or not symbols
                             or not all(isinstance(s, str) and s for s in symbols)):
        raise ConfigError(f"options.symbols = {o['symbols']!r} must be 'all' or a non-empty list of symbols")
    o["symbols"] = symbols if symbols == "all" else sorted(set(symbols))
    if o["right"] not in ("put", "call"):
        raise ConfigError(f"options.right = {o['right']!r} must be 'put' or 'call'")
    o["top"] = _integer("top", o["top"], 1)
    o["short_delta"] = _range("short_delta", o["short_delta"], 0.0, 1.0)
    o["dte"] = _range("dte", o["dte"], 0.0, 36500.0)
    o["rate"] = _number("rate", o["rate"], "a finite number in [-1, 1]", lambda v: -1 <= v <= 1)
    o["paths"] = _integer("paths", o["paths"], 1000)
    if o["steps"] is not None:
        o["steps"] = _integer("steps", o["steps"], 1)
    if o["fit"] not in ("expiry", "all"):
        raise ConfigError(f"options.fit = {o['fit']!r} must be 'expiry' or 'all'")
    o["fit_evals"] = _integer("fit_evals", o["fit_evals"], 1)
    try:
        age = parse_duration(str(o["max_age"]), "options.max_age")
    except ValueError as err:
        raise ConfigError(str(err)) from None
    o["max_age"] = format_duration(age)
    times = o["times"]
    if times is not None:
        if not isinstance(times, list) or not times:
            raise ConfigError(f"options.times = {times!r} must be null or a non-empty list of HH:MM times")
        norm = []
        for t in times:
            try:
                hh, mm = (int(x) for x in str(t).split(":"))
                if not (0 <= hh < 24 and 0 <= mm < 60):
                    raise ValueError
            except ValueError:
                raise ConfigError(f"options.times: {t!r} must be a New York time of day HH:MM") from None
            norm.append(f"{hh:02d}:{mm:02d}")
        o["times"] = sorted(set(norm))
    if not isinstance(o["anomalies"], bool):
        raise ConfigError(f"options.anomalies = {o['anomalies']!r} must be true or false")
    o["z"] = _number("z", o["z"], "a number > 0", lambda v: v > 0)
    return dict(sorted(o.items()))


def _bar_spec(index: int, raw: Any) -> BarSpecConfig:
    where = f"bars[{index}]"
    if isinstance(raw, str):
        text = raw.strip()
        if text in ("session", "1d-session"):
            return BarSpecConfig(kind="session")
        return BarSpecConfig(kind="time", interval_ns=parse_duration(text, where))
    if not isinstance(raw, dict):
        raise ConfigError(f"{where} = {raw!r} must be a timeframe like '1m' or a mapping with a kind")
    kind = raw.get("kind", "time")
    if kind not in _KINDS:
        raise ConfigError(f"{where}.kind = {kind!r} must be one of {', '.join(_KINDS)}")
    source = raw.get("source", "trades")
    if source not in _SOURCES:
        raise ConfigError(f"{where}.source = {source!r} must be one of {', '.join(_SOURCES)}")
    unknown = set(raw) - {"kind", "source", "interval", "origin", "threshold"}
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {sorted(unknown)}")
    if kind == "time":
        if "interval" not in raw:
            raise ConfigError(f"{where}.interval is required for time bars (e.g. 5m)")
        origin = parse_duration(raw["origin"], f"{where}.origin") if raw.get("origin") else 0
        return BarSpecConfig("time", source, parse_duration(raw["interval"], f"{where}.interval"), origin)
    if kind == "session":
        return BarSpecConfig("session", source)
    if source != "trades":
        raise ConfigError(f"{where}.source = {source!r}: {kind} bars are built from trades only")
    threshold = raw.get("threshold")
    if not isinstance(threshold, int | float) or isinstance(threshold, bool) or not threshold > 0:
        raise ConfigError(f"{where}.threshold = {threshold!r} must be a number > 0")
    return BarSpecConfig(kind, "trades", threshold=float(threshold))


def load_config(source: str | Path | dict[str, Any] | None = None) -> ProjectionConfig:
    """A validated configuration from a YAML file path, a YAML string, a dict, or None (the default)."""
    from argus.projections.indicators import DEFAULT_INDICATORS, parse_indicator_specs

    if source is None:
        raw: dict[str, Any] = {}
    elif isinstance(source, dict):
        raw = dict(source)
    else:
        import yaml

        text = Path(source).read_text() if isinstance(source, Path) or Path(str(source)).is_file() else str(source)
        raw = yaml.safe_load(text) or {}
        if not isinstance(raw, dict):
            raise ConfigError(f"projection config must be a mapping, not {type(raw).__name__}")
    known = {"bars", "indicators", "positions", "calendar", "extended_hours", "snapshot_every", "quality",
             "sessions", "regimes", "bocpd", "outcomes", "hmm", "risk_flow", "market_regime", "options"}
    unknown = set(raw) - known
    if unknown:
        raise ConfigError(f"unknown field(s) {sorted(unknown)} (known: {', '.join(sorted(known))})")
    bars_raw = raw.get("bars", ["1m", "5m"])
    if not isinstance(bars_raw, list):
        raise ConfigError(f"bars = {bars_raw!r} must be a list")
    bars = tuple(_bar_spec(i, b) for i, b in enumerate(bars_raw))
    labels = [b.label for b in bars]
    if len(set(labels)) != len(labels):
        raise ConfigError(f"bars = {labels} must not repeat a timeframe")
    ind_raw = raw.get("indicators", "default")
    if ind_raw == "default":
        indicators = tuple(DEFAULT_INDICATORS)
    elif ind_raw in (None, False, "none", []):
        indicators = ()
    else:
        indicators = tuple(parse_indicator_specs(ind_raw))
    if indicators and not bars:
        raise ConfigError("indicators need at least one bar spec in bars")
    every = raw.get("snapshot_every", DEFAULT_SNAPSHOT_EVERY)
    if not isinstance(every, int) or isinstance(every, bool) or every < 1:
        raise ConfigError(f"snapshot_every = {every!r} must be an integer >= 1")
    calendar = raw.get("calendar", "XNYS")
    if not isinstance(calendar, str) or not calendar:
        raise ConfigError(f"calendar = {calendar!r} must be a calendar name such as XNYS or 24/7")
    names = ("regimes", "bocpd", "outcomes", "hmm", "risk_flow", "market_regime")
    listeners = {name: _section(raw, name, bool(bars)) for name in names}
    if not bars and any(v is not None for v in listeners.values()):
        raise ConfigError(f"{', '.join(names)} need at least one bar spec in bars")
    for name in ("risk_flow", "market_regime"):
        section = listeners[name]
        if section is not None:
            spec = section.setdefault("spec", labels[-1])
            if spec not in labels:
                raise ConfigError(f"{name}.spec = {spec!r} must be one of the bar timeframes {labels}")
    if listeners["risk_flow"] is not None:
        rf = listeners["risk_flow"]
        for group, default in RISK_FLOW_GROUPS.items():
            members = rf.setdefault(group, list(default))
            if not isinstance(members, list) or not all(isinstance(m, str) and m for m in members):
                raise ConfigError(f"risk_flow.{group} = {members!r} must be a list of symbols")
        listeners["risk_flow"] = dict(sorted(rf.items()))
    if listeners["market_regime"] is not None:
        mr = listeners["market_regime"]
        mr.setdefault("index", "SPY")
        if listeners["regimes"] is None:
            raise ConfigError("market_regime needs regimes (its volatility and trend inputs)")
        listeners["market_regime"] = dict(sorted(mr.items()))
    quality = raw.get("quality")
    if quality is not None and not isinstance(quality, dict):
        raise ConfigError(f"quality = {quality!r} must be a mapping of parameters")
    return ProjectionConfig(bars=bars, indicators=indicators, positions=bool(raw.get("positions", True)),
                            quality=dict(sorted(quality.items())) if quality else None,
                            sessions_tags=bool(raw.get("sessions", True)), regimes=listeners["regimes"],
                            bocpd=listeners["bocpd"], outcomes=listeners["outcomes"], hmm=listeners["hmm"],
                            risk_flow=listeners["risk_flow"], market_regime=listeners["market_regime"],
                            options=_options_section(raw.get("options")), calendar=calendar,
                            extended_hours=bool(raw.get("extended_hours", False)),
                            snapshot_every=every)
