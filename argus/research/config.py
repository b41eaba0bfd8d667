"""The research configuration: what to sweep, on which data, with which costs, folds and gates.

Read from YAML and validated with pydantic; an error names the field path, the value and the rule.
Parameter grids take, per parameter, a list of values, a scalar (fixed), a range `{start, stop, step}`
(stop included when the steps land on it), a log range `{log: [lo, hi], num: n}` (n values evenly
spaced in log), or `auto` (the range the strategy declares, `auto_points` values). Parameters a grid
leaves out keep the strategy's defaults. The expansion is deterministic: strategies in the order given,
then the product of the parameters in declaration order.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

__all__ = ["ConfigError", "ResearchConfig", "expand_grid", "load_research_config"]


class ConfigError(ValueError):
    """A research configuration broke a rule; the message names the field and the value."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RangeSpec(_Strict):
    start: float
    stop: float
    step: float = Field(gt=0)

    @model_validator(mode="after")
    def _order(self) -> RangeSpec:
        if self.stop < self.start:
            raise ValueError(f"stop ({self.stop}) must be >= start ({self.start})")
        if (self.stop - self.start) / self.step > 10_000:
            raise ValueError("the range holds more than 10,000 values")
        return self

    def values(self) -> list[float]:
        n = int(math.floor((self.stop - self.start) / self.step + 1e-9)) + 1
        return [round(self.start + i * self.step, 12) for i in range(n)]


class LogRangeSpec(_Strict):
    log: tuple[float, float]
    num: int = Field(ge=1, le=10_000)

    @field_validator("log")
    @classmethod
    def _positive(cls, v: tuple[float, float]) -> tuple[float, float]:
        if not (0 < v[0] <= v[1]):
            raise ValueError("must be [lo, hi] with 0 < lo <= hi")
        return v

    def values(self) -> list[float]:
        return [float(x) for x in np.geomspace(self.log[0], self.log[1], self.num)]


ParamSpec = RangeSpec | LogRangeSpec | list[Any] | Literal["auto"] | int | float | bool | str


class StrategySweep(_Strict):
    name: str
    grid: dict[str, ParamSpec] = Field(default_factory=dict)
    auto_points: int = Field(default=5, ge=2, le=100)


class DataWindow(_Strict):
    symbols: list[str] = Field(min_length=1)
    timeframe: str = "1d"
    bar_source: Literal["auto", "trades", "provider"] = "auto"
    start: str | int | None = Field(default=None, alias="from")
    end: str | int | None = Field(default=None, alias="to")
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class ExecutionConfig(_Strict):
    fill: Literal["next_open", "quote"] = "next_open"
    latency_ms: float = Field(default=0.0, ge=0)
    slippage_bps: float = Field(default=0.0, ge=0)
    slippage_ticks: float = Field(default=0.0, ge=0)
    tick_size: float = Field(default=0.01, gt=0)
    commission_rate: float = Field(default=0.0, ge=0)
    commission_per_share: float = Field(default=0.0, ge=0)
    commission_per_contract: float = Field(default=0.0, ge=0)
    commission_min: float = Field(default=0.0, ge=0)
    cash: float = Field(default=100_000.0, gt=0)
    qty: float = Field(default=100.0, gt=0)


class FoldsConfig(_Strict):
    """Walk-forward folds over New York trading days (rolling or anchored), and combinatorially
    purged cross-validation (groups of days; purge by each trade's exit, embargo in days)."""

    kind: Literal["rolling", "anchored"] = "rolling"
    n: int = Field(default=4, ge=1, le=100)
    train_fraction: float = Field(default=0.5, gt=0, lt=1)
    purge_days: int = Field(default=0, ge=0)
    embargo_days: int = Field(default=0, ge=0)
    cpcv_groups: int = Field(default=6, ge=2, le=20)
    cpcv_test_groups: int = Field(default=2, ge=1)

    @model_validator(mode="after")
    def _groups(self) -> FoldsConfig:
        if self.cpcv_test_groups >= self.cpcv_groups:
            raise ValueError(f"cpcv_test_groups ({self.cpcv_test_groups}) must be < cpcv_groups ({self.cpcv_groups})")
        return self


class SearchConfig(_Strict):
    """`grid` runs every configuration of the grids; `optuna` runs `trials` TPE trials (seeded, resumable
    through its journal file) over the first strategy's grid ranges, on top of no grid."""

    kind: Literal["grid", "optuna"] = "grid"
    trials: int = Field(default=50, ge=1, le=100_000)
    seed: int = Field(default=0, ge=0)
    metric: Literal["sharpe", "sortino", "calmar", "cagr"] = "sharpe"


class RobustnessConfig(_Strict):
    top: int = Field(default=5, ge=1, le=100)
    bootstrap_paths: int = Field(default=1000, ge=10, le=100_000)
    seed: int = Field(default=0, ge=0)
    ruin: float = Field(default=0.3, gt=0, lt=1)
    worst_fraction: float = Field(default=0.1, gt=0, lt=1)
    cost_multipliers: list[float] = Field(default_factory=lambda: [1.0, 1.25, 1.5, 2.0])
    hostile_regimes: list[str] = Field(default_factory=lambda: ["risk_off"])
    regimes: bool = True  # record each day's market and volatility regime (one per-bar pass: slower)
    reps: int = Field(default=1000, ge=10, le=100_000)  # Reality Check / SPA bootstrap replications


class AllocationConfig(_Strict):
    per_play_cap: float = Field(default=0.07, gt=0, le=1)
    gross_cap: float = Field(default=1.0, gt=0)
    strategy_budget: float | None = Field(default=None, gt=0, le=1)
    max_change: float | None = Field(default=None, gt=0)
    equity: float = Field(default=100_000.0, gt=0)


class ResearchConfig(_Strict):
    name: str = "research"
    data: DataWindow
    strategies: list[StrategySweep] = Field(min_length=1)
    execution: ExecutionConfig = Field(default_factory=ExecutionConfig)
    folds: FoldsConfig = Field(default_factory=FoldsConfig)
    search: SearchConfig = Field(default_factory=SearchConfig)
    gates: dict[str, float] = Field(default_factory=lambda: {"dsr_min": 0.95, "min_trades": 10.0})
    robustness: RobustnessConfig = Field(default_factory=RobustnessConfig)
    allocation: AllocationConfig = Field(default_factory=AllocationConfig)

    @field_validator("gates")
    @classmethod
    def _gate_names(cls, v: dict[str, float]) -> dict[str, float]:
        known = {"dsr_min", "psr_min", "min_trades", "max_drawdown_max", "pbo_max", "spa_pvalue_max",
                 "stability_min", "sharpe_min", "wfe_min"}
        for name, value in v.items():
            if name not in known:
                raise ValueError(f"gate {name!r} is unknown (known: {', '.join(sorted(known))})")
            if not math.isfinite(value):
                raise ValueError(f"gate {name} = {value!r} must be finite")
        return v

    def canonical(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)


def load_research_config(source: str | Path | dict[str, Any]) -> ResearchConfig:
    """A validated configuration from a YAML file path, YAML text or a dict."""
    if isinstance(source, dict):
        raw = source
    else:
        import yaml

        text = Path(source).read_text() if isinstance(source, Path) or (
            isinstance(source, str) and "\n" not in source and Path(source).exists()) else str(source)
        raw = yaml.safe_load(text)
        if not isinstance(raw, dict):
            raise ConfigError(f"research config: expected a mapping at the top, got {type(raw).__name__}")
    try:
        return ResearchConfig.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        # pydantic names union members in the location (e.g. "function-after[...]"): keep the field path
        where = ".".join(str(p) for p in err["loc"] if not (isinstance(p, str) and ("[" in p or p in (
            "RangeSpec", "LogRangeSpec", "list[any]", "literal['auto']", "int", "float", "bool", "str"))))
        where = where or "config"
        value = err.get("input")
        raise ConfigError(f"{where} = {value!r}: {err['msg']}") from None


def _values(spec: Any, param, auto_points: int) -> list[Any]:
    if isinstance(spec, RangeSpec | LogRangeSpec):
        vals = spec.values()
    elif spec == "auto":
        if param.low is None or param.high is None:
            if param.type == "bool":
                return [False, True]
            if param.choices:
                return list(param.choices)
            raise ConfigError(f"grid.{param.name} = 'auto': the strategy declares no range for it")
        vals = list(np.linspace(param.low, param.high, auto_points))
    elif isinstance(spec, list):
        vals = list(spec)
    else:
        vals = [spec]
    out = []
    for v in vals:
        if param.type == "int" and isinstance(v, float):
            v = int(round(v))
        out.append(param.coerce(v))
    return list(dict.fromkeys(out))  # unique, in order


def expand_grid(sweep: StrategySweep, strategy_cls) -> list[dict[str, Any]]:
    """Every parameter combination of a sweep, validated by constructing the strategy; combinations the
    strategy refuses (e.g. fast >= slow) are left out."""
    declared = {p.name: p for p in strategy_cls.params}
    unknown = sorted(set(sweep.grid) - set(declared))
    if unknown:
        raise ConfigError(f"strategies.{sweep.name}.grid.{unknown[0]}: not a parameter of {sweep.name} "
                          f"(declared: {', '.join(declared)})")
    names = [n for n in declared if n in sweep.grid]
    axes = [_values(sweep.grid[n], declared[n], sweep.auto_points) for n in names]
    combos = []
    for values in itertools.product(*axes):
        params = dict(zip(names, values, strict=True))
        try:
            strategy_cls(**params)
        except ValueError:
            continue
        combos.append(params)
    return combos
