"""Vertical credit spreads and iron condors from one option chain, priced at the natural price.

The code lives in `argus.analytics.spreads` (pure numpy, below the projection engine, so the options
projection of `argusctl replay` can use it); this module is its public name in the options layer.
"""

from __future__ import annotations

from argus.analytics.spreads import (
    CONDOR_DTYPE,
    SPREAD_DTYPE,
    YEAR_NS,
    SpreadFilter,
    credit_spreads,
    iron_condors,
)

__all__ = ["CONDOR_DTYPE", "SPREAD_DTYPE", "YEAR_NS", "SpreadFilter", "credit_spreads", "iron_condors"]
