"""Implied-volatility surface: per-expiry raw SVI fits, static-arbitrage checks and quote anomalies.

The code lives in `argus.analytics.surface` (numpy and scipy, below the projection engine, so the options
projection of `argusctl replay` can use it); this module is its public name in the options layer.
"""

from __future__ import annotations

from argus.analytics.surface import (
    ANOMALY_DTYPE,
    FLAG_BUTTERFLY,
    FLAG_CALENDAR,
    FLAG_NO_FIT,
    FLAG_OUTLIER,
    MAD_SCALE,
    MIN_FIT_POINTS,
    YEAR_NS,
    IVAgreement,
    SurfaceResult,
    SviFit,
    butterfly_g,
    butterfly_violations,
    calendar_violations,
    fit_svi,
    iv_agreement,
    surface_from_chain,
    svi_derivatives,
    svi_total_variance,
)

__all__ = ["ANOMALY_DTYPE", "FLAG_BUTTERFLY", "FLAG_CALENDAR", "FLAG_NO_FIT", "FLAG_OUTLIER", "MAD_SCALE",
           "MIN_FIT_POINTS", "YEAR_NS", "IVAgreement", "SurfaceResult", "SviFit", "butterfly_g",
           "butterfly_violations", "calendar_violations", "fit_svi", "iv_agreement", "surface_from_chain",
           "svi_derivatives", "svi_total_variance"]
