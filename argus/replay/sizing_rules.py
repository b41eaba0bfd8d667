"""From a strategy's position units to a quantity: fixed, Kelly or volatility target (argus.sizing).

- fixed: units x `qty` (shares or contracts);
- vol_target: units x weight x equity / (price x multiplier), weight = target volatility / realized
  volatility of the last `VOL_WINDOW` bar returns (annualised with `BARS_PER_YEAR`), clipped to ±1;
- kelly: units x the fractional Kelly weight (quarter Kelly, capped by the same volatility target) of the
  last returns' |mean| and variance,
  clipped to ±1, x equity / (price x multiplier).

Too few returns, a non-finite price or a zero volatility size to 0 (fail safe): no position rather than
a guess."""

from __future__ import annotations

import math

import numpy as np

VOL_WINDOW = 20
BARS_PER_YEAR = 252.0
TARGET_VOL = 0.15


def quantity(cfg, units: float, price: float, equity: float, returns: np.ndarray, multiplier: float) -> float:
    if units == 0:
        return 0.0
    if cfg.sizing == "fixed":
        return float(units) * cfg.qty
    from argus.sizing import SizingConfig, size_from_values

    recent = returns[-VOL_WINDOW:]
    if len(recent) < VOL_WINDOW or not math.isfinite(price) or price <= 0 or equity <= 0:
        return 0.0
    sigma = float(np.std(recent, ddof=1)) * math.sqrt(BARS_PER_YEAR)
    # The sign of the position is the strategy's (its units); the sizer decides the magnitude only.
    mu = abs(float(np.mean(recent))) * BARS_PER_YEAR if cfg.sizing == "kelly" else 1.0
    config = SizingConfig(method=cfg.sizing, target_vol=TARGET_VOL, w_max=1.0)
    weight = abs(size_from_values(mu, sigma, config=config).weight)
    return float(units) * math.floor(weight * equity / (price * multiplier))
