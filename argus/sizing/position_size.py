"""Position size from a forecast: fractional Kelly or volatility target, clipped, failing safe to zero.

`size_position(forecast, config, sigma_ref=..., data_gap=...)` returns a `SizeDecision(weight, reason,
detail)`: the signed weight (fraction of equity) and why it is that number, so the harness can log it.

The rule, in order (the first that applies decides the reason):

1. Fail safe to zero (weight 0.0):
   - `data_gap`: the caller says the inputs are stale or have a hole;
   - `missing_input:<field>`: no forecast, or (via `size_from_values`) a field is None or NaN;
   - `zero_sigma`: σ = 0 (or σ² underflows to 0) — no risk estimate, so no size (Kelly would divide
     by zero);
   - `uncertainty_spike`: σ > `spike_multiple` · `sigma_ref` (a reference volatility such as the
     long-run estimate); when volatility jumps the forecast is least trustworthy;
   - `no_edge`: μ_eff = 0 (zero confidence, or the cost eats the whole forecast);
   - `short_not_allowed`: μ_eff < 0 and `allow_short` is off.
2. Shrink μ toward zero: μ_net = sign(μ)·max(|μ| − cost, 0), μ_eff = confidence · μ_net
   (costs never flip the direction; confidence 0 means no position, 1 means believe all of μ_net).
3. Raw weight, reason `kelly` or `vol_target`:
   - `method="kelly"`: w = c · μ_eff / σ² (fractional Kelly, Kelly 1956 / Thorp 2006; c checked by
     `check_kelly_fraction`: [0.10, 0.50], quarter by default, 1.0 only with `allow_full_kelly`);
   - `method="vol_target"`: w = confidence · sign(μ_net) · target_vol / σ (the forecast gives the
     direction and the confidence the scale; the size makes the position's volatility target_vol).
4. Volatility-target overlay (method `kelly` with `target_vol` set): |w| ≤ target_vol / σ, so that no
   position's own volatility exceeds the target; reason `vol_target` when it binds.
5. Clip to ±`w_max`; reason `w_max` when it binds.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from argus.sizing import _checks
from argus.sizing.forecast import Forecast
from argus.sizing.kelly import DEFAULT_KELLY_FRACTION, check_kelly_fraction

METHODS = ("kelly", "vol_target")

#: Every reason a SizeDecision can carry (`missing_input` is followed by ":<field>").
REASONS = (
    "data_gap",
    "missing_input",
    "zero_sigma",
    "uncertainty_spike",
    "no_edge",
    "short_not_allowed",
    "kelly",
    "vol_target",
    "w_max",
)


@dataclass(frozen=True)
class SizingConfig:
    """How forecasts become weights. Checked on construction; see the module docstring for the rule."""

    method: str = "kelly"
    kelly_fraction: float = DEFAULT_KELLY_FRACTION
    allow_full_kelly: bool = False
    target_vol: float | None = None
    w_max: float = 1.0
    spike_multiple: float = 3.0
    allow_short: bool = True

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"method={self.method!r}: must be one of {', '.join(METHODS)}")
        if not isinstance(self.allow_full_kelly, bool):
            raise ValueError(f"allow_full_kelly={self.allow_full_kelly!r}: must be a bool")
        if not isinstance(self.allow_short, bool):
            raise ValueError(f"allow_short={self.allow_short!r}: must be a bool")
        c = check_kelly_fraction(self.kelly_fraction, allow_full_kelly=self.allow_full_kelly)
        object.__setattr__(self, "kelly_fraction", c)
        if self.target_vol is not None:
            object.__setattr__(self, "target_vol", _checks.positive("target_vol", self.target_vol))
        elif self.method == "vol_target":
            raise ValueError("target_vol=None: method 'vol_target' needs a target_vol > 0")
        object.__setattr__(self, "w_max", _checks.positive("w_max", self.w_max))
        spike = _checks.number("spike_multiple", self.spike_multiple)
        if spike < 1.0:
            raise ValueError(f"spike_multiple={self.spike_multiple!r}: must be >= 1")
        object.__setattr__(self, "spike_multiple", spike)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class SizeDecision:
    """A signed weight (fraction of equity) and the reason for it (one of REASONS); `detail` is prose."""

    weight: float
    reason: str
    detail: str = ""

    def to_dict(self) -> dict:
        return {"weight": self.weight, "reason": self.reason, "detail": self.detail}


def _zero(reason: str, detail: str) -> SizeDecision:
    return SizeDecision(0.0, reason, detail)


def size_position(
    forecast: Forecast | None,
    config: SizingConfig | None = None,
    *,
    sigma_ref: float | None = None,
    data_gap: bool = False,
) -> SizeDecision:
    """The weight for one forecast, with its reason (module docstring). Never raises on data
    conditions (gap, missing forecast, NaN sigma_ref); raises ValueError on a bad sigma_ref (<= 0, inf)."""
    config = SizingConfig() if config is None else config
    if data_gap:
        return _zero("data_gap", "inputs are stale or have a gap")
    if forecast is None:
        return _zero("missing_input:forecast", "no forecast")
    if sigma_ref is not None and _checks.is_missing(sigma_ref):
        return _zero("missing_input:sigma_ref", "sigma_ref is NaN")
    if sigma_ref is not None:
        sigma_ref = _checks.positive("sigma_ref", sigma_ref)
    sigma = forecast.sigma
    if sigma * sigma == 0.0:  # also a sigma so small that its square underflows
        return _zero("zero_sigma", f"sigma = {sigma!r}: no risk estimate")
    if sigma_ref is not None and sigma > config.spike_multiple * sigma_ref:
        return _zero(
            "uncertainty_spike", f"sigma {sigma!r} > {config.spike_multiple!r} x sigma_ref {sigma_ref!r}"
        )
    mu_eff = forecast.mu_eff
    if mu_eff == 0.0:
        return _zero(
            "no_edge",
            f"mu_eff = confidence {forecast.confidence!r} x net mu {forecast.mu_net!r} = 0 "
            f"(mu {forecast.mu!r}, cost {forecast.cost!r})",
        )
    if mu_eff < 0.0 and not config.allow_short:
        return _zero("short_not_allowed", f"mu_eff {mu_eff!r} < 0 and allow_short is off")

    if config.method == "kelly":
        weight = config.kelly_fraction * mu_eff / (sigma * sigma)
        reason = "kelly"
        detail = f"{config.kelly_fraction!r} x mu_eff {mu_eff!r} / sigma^2 {sigma * sigma!r}"
        if config.target_vol is not None:
            bound = config.target_vol / sigma
            if abs(weight) > bound:
                weight = math.copysign(bound, weight)
                reason = "vol_target"
                detail += f"; capped at target_vol {config.target_vol!r} / sigma {sigma!r}"
    else:
        assert config.target_vol is not None  # checked by SizingConfig
        weight = math.copysign(forecast.confidence * config.target_vol / sigma, mu_eff)
        reason = "vol_target"
        detail = (
            f"confidence {forecast.confidence!r} x target_vol {config.target_vol!r} / sigma {sigma!r}, "
            f"sign of mu_eff {mu_eff!r}"
        )
    if abs(weight) > config.w_max:
        detail += f"; clipped from {weight!r} to +-w_max {config.w_max!r}"
        weight = math.copysign(config.w_max, weight)
        reason = "w_max"
    return SizeDecision(weight, reason, detail)


def size_from_values(
    mu: float | None,
    sigma: float | None,
    edge: float | None = 0.0,
    cost: float | None = 0.0,
    confidence: float | None = 1.0,
    config: SizingConfig | None = None,
    *,
    sigma_ref: float | None = None,
    data_gap: bool = False,
) -> SizeDecision:
    """`size_position` from raw numbers, where None or NaN in a field means *missing*: the weight is
    zero with reason `missing_input:<field>` (the first missing field in signature order). Values that
    are present but invalid (σ < 0, confidence outside [0, 1], ±inf) are still refused with ValueError:
    those are bugs, not data gaps."""
    if data_gap:
        return _zero("data_gap", "inputs are stale or have a gap")
    values = {"mu": mu, "sigma": sigma, "edge": edge, "cost": cost, "confidence": confidence}
    for name, value in values.items():
        if _checks.is_missing(value):
            return _zero(f"missing_input:{name}", f"{name} is {value!r}")
    forecast = Forecast(mu, sigma, edge, cost, confidence)  # type: ignore[arg-type]
    return size_position(forecast, config, sigma_ref=sigma_ref)
