"""Sizing and allocation (DESIGN.md §7): forecasts to weights (fractional Kelly, volatility target,
fail-safe zero), option contracts from a risk budget, and capped, reasoned capital allocation."""

from argus.sizing.allocation import (
    Allocation,
    AllocationConfig,
    AllocationEngine,
    AllocationLine,
    StrategyRisk,
)
from argus.sizing.contracts import max_loss_per_contract, option_contracts
from argus.sizing.forecast import Forecast
from argus.sizing.kelly import (
    DEFAULT_KELLY_FRACTION,
    KELLY_FRACTION_RANGE,
    check_kelly_fraction,
    fractional_kelly,
    kelly_binary,
    kelly_full,
    kelly_growth,
)
from argus.sizing.position_size import SizeDecision, SizingConfig, size_from_values, size_position

__all__ = [
    "DEFAULT_KELLY_FRACTION",
    "KELLY_FRACTION_RANGE",
    "Allocation",
    "AllocationConfig",
    "AllocationEngine",
    "AllocationLine",
    "Forecast",
    "SizeDecision",
    "SizingConfig",
    "StrategyRisk",
    "check_kelly_fraction",
    "fractional_kelly",
    "kelly_binary",
    "kelly_full",
    "kelly_growth",
    "max_loss_per_contract",
    "option_contracts",
    "size_from_values",
    "size_position",
]
