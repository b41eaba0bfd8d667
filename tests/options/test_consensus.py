import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from argus.analytics.black_scholes import price
from argus.events.types import OptionRight, OptionSource
from argus.options.consensus import (
    CONSENSUS_QUOTE_DTYPE,
    YEAR_NS,
    ConsensusPolicy,
    consensus,
)

DAY = 86_400 * 1_000_000_000
NOW = 1_700_000_000 * 1_000_000_000
EXP = NOW + 30 * DAY
EXP2 = NOW + 60 * DAY
STREAM, VENDOR, BROKER = int(OptionSource.STREAM), int(OptionSource.VENDOR_FILE), int(OptionSource.BROKER)
C, P = int(OptionRight.CALL), int(OptionRight.PUT)


def quotes(*qs):
    """qs: (source, ts_recv, iv[, bid, ask, underlying, expiry, strike, right])."""
    out = np.zeros(len(qs), dtype=CONSENSUS_QUOTE_DTYPE)
    for i, q in enumerate(qs):
        src, ts, iv, bid, ask, und, exp, k, right = (
            *q,
            *(np.nan, np.nan, np.nan, EXP, 100.0, C)[len(q) - 3 :],
        )
        out[i] = (exp, k, right, src, ts, iv, bid, ask, und)
    return out


def one(out):
    assert len(out) == 1
    return out[0]


def test_prefer_primary():
    q = quotes((STREAM, NOW - 5, 0.20), (VENDOR, NOW - 1, 0.25), (BROKER, NOW - 2, 0.22))
    r = one(consensus(q, NOW, "prefer_primary", primary_source=STREAM))
    assert r["iv"] == 0.20 and r["chosen_source"] == STREAM and r["ts_recv"] == NOW - 5
    assert r["sources_used"] == (1 << STREAM) | (1 << VENDOR) | (1 << BROKER)
    assert r["n_sources"] == 3 and r["policy"] == ConsensusPolicy.PREFER_PRIMARY
    assert r["discrepancy"] == pytest.approx(0.05)
    assert r["rel_discrepancy"] == pytest.approx(0.05 / 0.22)


def test_prefer_primary_falls_back_to_freshest():
    q = quotes((VENDOR, NOW - 1, 0.25), (BROKER, NOW - 2, 0.22))
    r = one(consensus(q, NOW, ConsensusPolicy.PREFER_PRIMARY, primary_source=STREAM))
    assert r["iv"] == 0.25 and r["chosen_source"] == VENDOR


def test_latest_quote_per_source():
    q = quotes((STREAM, NOW - 10, 0.30), (STREAM, NOW - 3, 0.21), (STREAM, NOW - 7, 0.40))
    r = one(consensus(q, NOW, "prefer_primary"))
    assert r["iv"] == 0.21 and r["n_sources"] == 1 and r["discrepancy"] == 0.0


def test_future_quotes_ignored():
    q = quotes((STREAM, NOW + 1, 0.50), (VENDOR, NOW, 0.25))
    r = one(consensus(q, NOW, "prefer_primary"))
    assert r["iv"] == 0.25 and r["sources_used"] == 1 << VENDOR
    assert len(consensus(quotes((STREAM, NOW + 1, 0.5)), NOW, "blended")) == 0


def test_stale_quotes_ignored_with_max_age():
    q = quotes((STREAM, NOW - 100, 0.20), (VENDOR, NOW - 5, 0.25))
    assert one(consensus(q, NOW, "prefer_primary"))["iv"] == 0.20
    r = one(consensus(q, NOW, "prefer_primary", max_age_ns=10))
    assert r["iv"] == 0.25 and r["n_sources"] == 1


def test_expiries_never_mixed():
    q = quotes(
        (STREAM, NOW - 1, 0.20, np.nan, np.nan, np.nan, EXP, 100.0, C),
        (VENDOR, NOW - 1, 0.30, np.nan, np.nan, np.nan, EXP2, 100.0, C),
    )
    for pol in ConsensusPolicy:
        out = consensus(q, NOW, pol)
        assert list(out["expiry_ns"]) == [EXP, EXP2]
        assert list(out["iv"]) == [0.20, 0.30]
        assert np.all(out["discrepancy"] == 0.0) and np.all(out["n_sources"] == 1)


def test_rights_and_strikes_separate_and_sorted():
    q = quotes(
        (STREAM, NOW - 1, 0.20, np.nan, np.nan, np.nan, EXP, 105.0, P),
        (STREAM, NOW - 1, 0.21, np.nan, np.nan, np.nan, EXP, 100.0, P),
        (STREAM, NOW - 1, 0.22, np.nan, np.nan, np.nan, EXP, 100.0, C),
    )
    out = consensus(q, NOW, "blended")
    assert list(zip(out["right"], out["strike"], strict=True)) == [(C, 100.0), (P, 100.0), (P, 105.0)]


def test_blended_weights_and_renormalisation():
    q = quotes((STREAM, NOW - 1, 0.20), (VENDOR, NOW - 2, 0.30), (BROKER, NOW - 3, 0.40))
    r = one(consensus(q, NOW, "blended"))
    assert r["iv"] == pytest.approx(0.30) and r["chosen_source"] == 0 and r["ts_recv"] == NOW - 1
    w = {STREAM: 3.0, VENDOR: 1.0, BROKER: 0.0}
    r = one(consensus(q, NOW, "blended", weights=w))
    assert r["iv"] == pytest.approx((3 * 0.20 + 1 * 0.30) / 4)
    assert r["sources_used"] == (1 << STREAM) | (1 << VENDOR) and r["n_sources"] == 2
    # Stream missing: the vendor alone carries the whole weight.
    r = one(consensus(q[1:], NOW, "blended", weights=w))
    assert r["iv"] == pytest.approx(0.30)


def test_winner_based_picks_best_repricer():
    t = (EXP - NOW) / YEAR_NS
    mid = float(price(100.0, 100.0, t, 0.23))
    q = quotes(
        (STREAM, NOW - 1, 0.20, mid - 0.05, mid + 0.05, 100.0),
        (VENDOR, NOW - 5, 0.24),
        (BROKER, NOW - 9, 0.30),
    )
    r = one(consensus(q, NOW, "winner_based"))
    assert r["chosen_source"] == VENDOR and r["iv"] == 0.24 and r["fallback"] == 0
    assert r["ts_recv"] == NOW - 5 and r["policy"] == ConsensusPolicy.WINNER_BASED


def test_winner_based_falls_back_without_mid():
    q = quotes((STREAM, NOW - 9, 0.20), (VENDOR, NOW - 1, 0.24))
    r = one(consensus(q, NOW, "winner_based"))
    assert r["fallback"] == 1 and r["chosen_source"] == STREAM


def test_invalid_ivs_ignored_and_deterministic():
    q = quotes((STREAM, NOW - 1, np.nan), (VENDOR, NOW - 1, 0.0), (BROKER, NOW - 1, 0.3))
    r = one(consensus(q, NOW, "prefer_primary"))
    assert r["sources_used"] == 1 << BROKER
    a = consensus(q, NOW, "winner_based").tobytes()
    assert a == consensus(q[::-1].copy(), NOW, "winner_based").tobytes()


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from([STREAM, VENDOR, BROKER]),
            st.integers(-20, 5),
            st.floats(0.01, 3.0),
            st.floats(0.0, 20.0),
            st.floats(0.0, 5.0),
            st.sampled_from([EXP, EXP2]),
            st.sampled_from([90.0, 100.0]),
        ),
        min_size=1,
        max_size=12,
    ),
    st.sampled_from(list(ConsensusPolicy)),
)
def test_consensus_iv_within_used_sources(rows, pol):
    q = quotes(*[(s, NOW + dt, iv, b, b + w, 100.0, e, k, C) for s, dt, iv, b, w, e, k in rows])
    out = consensus(q, NOW, pol, weights={STREAM: 2.0, VENDOR: 1.0, BROKER: 0.5})
    assert (
        out.tobytes()
        == consensus(q[::-1].copy(), NOW, pol, weights={STREAM: 2.0, VENDOR: 1.0, BROKER: 0.5}).tobytes()
    )
    live = q[q["ts_recv"] <= NOW]
    for r in out:
        m = (live["expiry_ns"] == r["expiry_ns"]) & (live["strike"] == r["strike"])
        used = live[m]
        latest = {}
        for x in used[np.argsort(used["ts_recv"], kind="stable")]:
            latest.setdefault(int(x["source"]), []).append(x)
        ivs = []
        for s, xs in latest.items():
            assert r["sources_used"] & (1 << s)
            tmax = max(int(x["ts_recv"]) for x in xs)
            ivs.append(max(float(x["iv"]) for x in xs if int(x["ts_recv"]) == tmax))
        assert min(ivs) <= r["iv"] <= max(ivs)
        assert r["discrepancy"] == pytest.approx(max(ivs) - min(ivs))
        assert r["n_sources"] == len(ivs) and r["ts_recv"] <= NOW
