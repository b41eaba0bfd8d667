import math

import numpy as np
import pytest

from argus.analytics.black_scholes import greeks
from argus.events.layout import OPTION_ROW_DTYPE
from argus.events.types import OptionRight, OptionSource
from argus.options.spreads import YEAR_NS, SpreadFilter, credit_spreads, iron_condors

DAY = 86_400 * 1_000_000_000
NOW = 1_700_000_000 * 1_000_000_000
EXP = NOW + 30 * DAY
EXP2 = NOW + 60 * DAY
SPOT = 100.0
P, C = int(OptionRight.PUT), int(OptionRight.CALL)


def row(strike, bid, ask, delta, right=P, expiry=EXP, oi=1000.0, size=10.0, iv=0.2, cid=0):
    r = np.zeros(1, dtype=OPTION_ROW_DTYPE)
    r["expiry_ns"], r["strike"], r["bid"], r["ask"] = expiry, strike, bid, ask
    r["bid_size"] = r["ask_size"] = size
    r["open_interest"], r["iv"], r["delta"] = oi, iv, delta
    r["right"], r["source"], r["contract_id"] = right, int(OptionSource.SYNTHETIC), cid
    return r


def chain(*rs):
    return np.concatenate(rs)


def put_chain():
    return chain(
        row(95.0, 1.50, 1.60, -0.30),
        row(90.0, 0.60, 0.70, -0.15),
        row(85.0, 0.20, 0.30, -0.07),
    )


ALL = SpreadFilter(right="put", short_delta=None)


def test_natural_pricing_not_mid():
    out = credit_spreads(put_chain(), SPOT, SpreadFilter(short_delta=(0.25, 0.35), widths=(5.0,)))
    assert len(out) == 1
    s = out[0]
    assert (s["short_strike"], s["long_strike"], s["width"]) == (95.0, 90.0, 5.0)
    assert s["credit"] == pytest.approx(1.50 - 0.70)  # short bid - long ask; mid would give 0.90
    assert s["max_loss"] == pytest.approx(5.0 - 0.80)
    assert s["credit_to_width"] == pytest.approx(0.80 / 5.0)
    assert s["breakeven"] == pytest.approx(95.0 - 0.80)
    assert s["short_spread_pct"] == pytest.approx(0.10 / 1.55)
    assert s["short_delta"] == -0.30


def test_all_pairs_and_sorting():
    out = credit_spreads(put_chain(), SPOT, ALL)
    pairs = [(s["short_strike"], s["long_strike"]) for s in out]
    assert sorted(pairs) == [(90.0, 85.0), (95.0, 85.0), (95.0, 90.0)]
    assert np.all(np.diff(out["credit_to_width"]) <= 0)


def test_delta_filter():
    out = credit_spreads(put_chain(), SPOT, SpreadFilter(short_delta=(0.10, 0.20)))
    assert set(out["short_strike"]) == {90.0}


def test_distance_filter():
    out = credit_spreads(put_chain(), SPOT, SpreadFilter(short_delta=None, short_distance=(0.08, 0.12)))
    assert set(out["short_strike"]) == {90.0}


def test_width_filters():
    assert set(
        credit_spreads(put_chain(), SPOT, SpreadFilter(short_delta=None, widths=(10.0,)))["width"]
    ) == {10.0}
    out = credit_spreads(put_chain(), SPOT, SpreadFilter(short_delta=None, width_range=(0.0, 6.0)))
    assert set(out["width"]) == {5.0}


def test_credit_to_width_filter():
    # ctw: 95/90 0.16, 95/85 0.12, 90/85 0.06
    out = credit_spreads(put_chain(), SPOT, SpreadFilter(short_delta=None, min_credit_to_width=0.10))
    assert sorted(zip(out["short_strike"], out["long_strike"], strict=True)) == [(95.0, 85.0), (95.0, 90.0)]


def test_spread_pct_filter_per_leg():
    rows = chain(row(95.0, 1.50, 1.60, -0.3), row(90.0, 0.30, 0.90, -0.15))  # 90 leg spread 100 %
    assert len(credit_spreads(rows, SPOT, SpreadFilter(short_delta=None))) == 1
    assert len(credit_spreads(rows, SPOT, SpreadFilter(short_delta=None, max_spread_pct=0.5))) == 0


def test_open_interest_filter_per_leg():
    rows = chain(row(95.0, 1.50, 1.60, -0.3), row(90.0, 0.60, 0.70, -0.15, oi=5.0))
    assert len(credit_spreads(rows, SPOT, SpreadFilter(short_delta=None, min_open_interest=10))) == 0
    out = credit_spreads(rows, SPOT, SpreadFilter(short_delta=None, min_open_interest=5))
    assert out["min_open_interest"][0] == 5.0


def test_size_filter_uses_traded_side():
    rows = chain(row(95.0, 1.50, 1.60, -0.3), row(90.0, 0.60, 0.70, -0.15))
    rows["ask_size"][0] = 0.0  # the short leg's ask size does not matter: we sell at the bid
    assert len(credit_spreads(rows, SPOT, SpreadFilter(short_delta=None, min_size=5))) == 1
    rows["ask_size"][1] = 1.0  # the long leg's ask size does
    assert len(credit_spreads(rows, SPOT, SpreadFilter(short_delta=None, min_size=5))) == 0


def test_unquoted_legs_excluded():
    rows = chain(row(95.0, 0.0, 1.60, -0.3), row(90.0, 0.60, 0.70, -0.15), row(85.0, 0.1, np.nan, -0.07))
    out = credit_spreads(rows, SPOT, ALL)
    assert len(out) == 0  # 95 short has no bid; 85 long has no ask; 90/85 needs the 85 ask


def test_non_positive_credit_excluded():
    rows = chain(row(95.0, 0.50, 1.60, -0.3), row(90.0, 0.40, 0.70, -0.15))
    assert len(credit_spreads(rows, SPOT, ALL)) == 0


def test_calls_and_both_and_expiry_filter():
    rows = chain(
        put_chain(),
        row(105.0, 1.40, 1.50, 0.28, right=C),
        row(110.0, 0.50, 0.60, 0.14, right=C),
        row(95.0, 1.50, 1.60, -0.30, expiry=EXP2),
        row(90.0, 0.60, 0.70, -0.15, expiry=EXP2),
    )
    calls = credit_spreads(rows, SPOT, SpreadFilter(right="call", short_delta=None))
    assert len(calls) == 1 and calls[0]["long_strike"] == 110.0 and calls[0]["right"] == C
    assert calls[0]["breakeven"] == pytest.approx(105.0 + 0.80)
    both = credit_spreads(rows, SPOT, SpreadFilter(right="both", short_delta=None))
    assert set(both["right"]) == {P, C}
    only2 = credit_spreads(rows, SPOT, SpreadFilter(short_delta=None, expiries=(EXP2,)))
    assert set(only2["expiry_ns"]) == {EXP2}
    near = credit_spreads(rows, SPOT, SpreadFilter(short_delta=None, max_days=45), now_ns=NOW)
    assert set(near["expiry_ns"]) == {EXP}
    # never pairs across expiries
    assert np.all(both["width"] == np.abs(both["short_strike"] - both["long_strike"]))
    assert len(credit_spreads(rows, SPOT, SpreadFilter(short_delta=None))) == 3 + 1


def test_delta_fallback_from_iv():
    rows = put_chain()
    rows["delta"][0] = np.nan
    t = (EXP - NOW) / YEAR_NS
    expected = float(greeks(SPOT, 95.0, t, 0.2, is_call=False).delta)
    out = credit_spreads(rows, SPOT, SpreadFilter(short_delta=(0.0, 1.0)), now_ns=NOW)
    s = out[out["short_strike"] == 95.0]
    assert len(s) == 2 and np.all(s["delta_computed"] == 1)
    assert s["short_delta"][0] == pytest.approx(expected)
    assert np.all(out[out["short_strike"] == 90.0]["delta_computed"] == 0)
    # Without now_ns the delta cannot be computed: the row fails a delta filter.
    assert 95.0 not in credit_spreads(rows, SPOT, SpreadFilter(short_delta=(0.0, 1.0)))["short_strike"]


def test_duplicate_contracts_rejected():
    with pytest.raises(ValueError):
        credit_spreads(chain(put_chain(), put_chain()), SPOT, ALL)


def test_determinism_and_order_independence():
    rows = chain(put_chain(), row(105.0, 1.4, 1.5, 0.28, right=C), row(110.0, 0.5, 0.6, 0.14, right=C))
    f = SpreadFilter(right="both", short_delta=None)
    a = credit_spreads(rows, SPOT, f).tobytes()
    assert a == credit_spreads(rows.copy(), SPOT, f).tobytes()
    assert a == credit_spreads(rows[::-1].copy(), SPOT, f).tobytes()


def test_iron_condor_credit_and_max_loss():
    rows = chain(
        put_chain(),
        row(105.0, 1.40, 1.50, 0.28, right=C),
        row(115.0, 0.20, 0.25, 0.06, right=C),
    )
    out = iron_condors(
        rows,
        SPOT,
        SpreadFilter(short_delta=(0.25, 0.35), widths=(5.0,)),
        SpreadFilter(short_delta=(0.25, 0.35)),
    )
    assert len(out) == 1
    ic = out[0]
    put_credit, call_credit = 1.50 - 0.70, 1.40 - 0.25
    assert ic["credit"] == pytest.approx(put_credit + call_credit)
    assert ic["max_loss"] == pytest.approx(10.0 - (put_credit + call_credit))
    assert (
        ic["put_long_strike"],
        ic["put_short_strike"],
        ic["call_short_strike"],
        ic["call_long_strike"],
    ) == (90.0, 95.0, 105.0, 115.0)
    assert ic["lower_breakeven"] == pytest.approx(95.0 - ic["credit"])
    assert ic["upper_breakeven"] == pytest.approx(105.0 + ic["credit"])


def test_iron_condor_needs_same_expiry_and_no_overlap():
    rows = chain(
        put_chain(),
        row(105.0, 1.40, 1.50, 0.28, right=C, expiry=EXP2),
        row(110.0, 0.50, 0.60, 0.14, right=C, expiry=EXP2),
        row(92.0, 4.0, 4.1, 0.7, right=C),  # call short below the put shorts: overlapping
        row(96.0, 1.0, 1.1, 0.6, right=C),
    )
    out = iron_condors(rows, SPOT, ALL, SpreadFilter(short_delta=None))
    assert np.all(out["put_short_strike"] < out["call_short_strike"])
    assert set(out["expiry_ns"]) <= {EXP}
    for ic in out:
        assert not (ic["call_short_strike"] == 92.0 and ic["put_short_strike"] >= 92.0)


def test_filter_validation():
    with pytest.raises(ValueError):
        SpreadFilter(right="straddle")
    with pytest.raises(ValueError):
        SpreadFilter(short_delta=(0.3, 0.1))
    assert math.isinf(SpreadFilter().max_spread_pct)
