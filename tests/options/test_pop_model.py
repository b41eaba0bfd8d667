"""Why the Heston PoP of the synthetic chains sits far above the lognormal PoP: the chains' skew.

The synthetic feed (argus.connectors.synthetic) quotes IV = atm * (1 + skew z + smile z^2) with z the
standardised moneyness ln(K/F) / (atm sqrt(T)): a steep put skew at every expiry. Under any smile the
risk-neutral probability of finishing above K is -e^{rT} dC/dK = N(d2) - e^{rT} vega dIV/dK, above the
lognormal N(d2) when the skew is negative. That smile-implied (model-free) PoP is the reference: the
Heston PoP must be close to it, the lognormal PoP at the short strike's IV is not."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from argus.analytics import black_scholes as bs
from argus.analytics.spreads import SpreadFilter, credit_spreads
from argus.events.types import OptionRight
from argus.log import EventLog
from argus.options.pop import _ny_date, latest_chain, spread_pop
from tests.golden.build import build_options_log


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    path: Path = build_options_log(tmp_path_factory.mktemp("pop") / "log")
    with EventLog.open(path, readonly=True) as log:
        return latest_chain(log, "SPY")


def _smile_pop(chain, expiry_ns: int, t: float, q: float, breakeven: float, r: float = 0.05) -> float:
    """1 - P(S_T < breakeven) = 1 - e^{rT} dP/dK, P(K) the put at the quoted IV interpolated in K."""
    puts = chain.rows[(chain.rows["expiry_ns"] == expiry_ns) & (chain.rows["right"] == int(OptionRight.PUT))]
    order = np.argsort(puts["strike"])
    k, iv = puts["strike"][order], puts["iv"][order]

    def put(x: float) -> float:
        return float(bs.price(chain.spot, x, t, float(np.interp(x, k, iv)), r, q, False))

    h = 0.25
    return 1.0 - math.exp(r * t) * (put(breakeven + h) - put(breakeven - h)) / (2 * h)


def test_heston_pop_follows_the_smile_the_lognormal_pop_does_not(chain) -> None:
    cands = credit_spreads(chain.rows, chain.spot, SpreadFilter(min_days=7, max_days=60), now_ns=chain.ts_event,
                           r=0.05)[:3]
    assert len(cands) == 3
    for c in cands:
        out = spread_pop(chain, _ny_date(int(c["expiry_ns"])), float(c["short_strike"]), float(c["long_strike"]),
                         "put", paths=100_000)
        smile = _smile_pop(chain, int(c["expiry_ns"]), out["years"], out["div"], out["short"] - out["credit"])
        # The skew puts the smile-implied PoP well above the lognormal one ...
        assert smile - out["lognormal_pop"] > 0.05
        # ... and the Heston PoP near it: within 0.03 (the fit's misfit of this smile; see README), far
        # closer than the lognormal PoP.
        assert abs(out["pop"] - smile) < 0.03
        assert abs(out["pop"] - smile) < 0.5 * abs(out["lognormal_pop"] - smile)
