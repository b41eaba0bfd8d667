"""PositionReducer: average-cost accounting, multipliers from the log, marks, accounts, multi-leg groups,
live == replay, snapshots; and the nogil protobuf wire reader it uses for InstrumentDefined."""

from __future__ import annotations

import hashlib
import math
import struct
from pathlib import Path

import numpy as np
import pytest
from google.protobuf.message import DecodeError
from hypothesis import given, settings
from hypothesis import strategies as st

from argus.events.codec import Event, encode, iter_records
from argus.events.types import EventType, InstrumentKind
from argus.kernels.positions import (
    MULTIPLIER_FIELD,
    POSITION_FIELDS,
    PositionReducer,
    position_layout_info,
    wire_double,
    wire_uint64,
)
from argus.kernels.reducer import SnapshotError
from argus.log import EventLog
from argus.log.store import instrument_event
from argus.v1 import events_pb2

CFG = hashlib.blake2b(b"positions-test", digest_size=32).digest()
T0 = 1_700_000_000_000_000_000


def reducer() -> PositionReducer:
    return PositionReducer("positions", CFG)


def fill(iid: int, qty: float, price: float, *, commission: float = 0.0, account: int = 1, position_id: int = 0,
         ts: int = T0) -> Event:
    return Event(EventType.FILL, ts, ts, iid, {"price": price, "quantity": qty, "commission": commission,
                                               "account_id": account, "position_id": position_id})


def trade(iid: int, price: float, ts: int = T0) -> Event:
    return Event(EventType.TRADE, ts, ts, iid, {"price": price, "size": 1.0})


def quote(iid: int, bid: float, ask: float, ts: int = T0) -> Event:
    return Event(EventType.QUOTE, ts, ts, iid, {"bid": bid, "ask": ask, "bid_size": 1.0, "ask_size": 1.0})


def option(iid: int, symbol: str) -> Event:
    return instrument_event(iid, symbol, kind=InstrumentKind.OPTION, multiplier=100.0)


def live(events: list[Event], r: PositionReducer | None = None, first_offset: int = 0):
    """Apply events one record at a time (the live path); returns the reducer and its drained rows."""
    r = r or reducer()
    for i, e in enumerate(events):
        r.apply_record(encode(e), first_offset + i)
    return r, r.out.drain()


def replay(log: EventLog, from_offset: int = 0):
    """Apply a log chunk by chunk (the replay path)."""
    r = reducer()
    parts = []
    for c in log.chunks(from_offset):
        r.apply_chunk(c.body, c.first_offset, c.start, c.stop)
        parts.append(r.out.drain())
    return r, np.concatenate(parts) if parts else r.out.drain()


def net_total(r: PositionReducer) -> float:
    p = r.positions()
    return float(np.sum(p["realized_pnl"] + p["unrealized_pnl"] - p["commission"]))


# -- layout -----------------------------------------------------------------------------------------


def test_position_struct_matches_position_fields() -> None:
    size, offsets = position_layout_info()
    dtype = np.dtype(list(POSITION_FIELDS))
    assert size == dtype.itemsize
    assert offsets == {name: dtype.fields[name][1] for name in dtype.names}
    assert reducer().out.dtype == dtype


# -- accounting -------------------------------------------------------------------------------------


def test_average_cost_grows_reduces_and_flips_at_the_fill_price() -> None:
    r, rows = live([instrument_event(0, "AAPL"), fill(0, 100, 10.0), fill(0, 100, 12.0), fill(0, -150, 13.0),
                    fill(0, -100, 9.0)])
    assert rows["offset"].tolist() == [1, 2, 3, 4]
    assert rows["quantity"].tolist() == [100, 200, 50, -50]
    assert rows["avg_cost"].tolist() == [10.0, 11.0, 11.0, 9.0]
    # sell 150 @ 13 against avg 11 realizes 300; sell 100 @ 9 closes 50 at -2 (-100) and opens short 50 @ 9.
    assert rows["realized_pnl"].tolist() == [0.0, 0.0, 300.0, 200.0]
    assert rows["fill_qty"].tolist() == [100, 100, -150, -100]
    assert rows["fill_price"].tolist() == [10.0, 12.0, 13.0, 9.0]
    pos = r.positions()
    assert len(pos) == 1 and pos[0]["quantity"] == -50 and pos[0]["avg_cost"] == 9.0
    assert pos[0]["realized_pnl"] == 200.0 and pos[0]["fills"] == 4


def test_closing_exactly_leaves_a_flat_position_that_is_still_listed() -> None:
    r, rows = live([instrument_event(0, "X"), fill(0, -3, 20.0), fill(0, 3, 18.0)])
    assert rows["quantity"].tolist() == [-3, 0]
    assert rows["avg_cost"].tolist() == [20.0, 0.0]
    assert rows["realized_pnl"].tolist() == [0.0, 6.0]  # short 3 @ 20 covered @ 18
    assert rows["unrealized_pnl"].tolist()[1] == 0.0  # flat: nothing to mark, even with no mark yet
    pos = r.positions()
    assert pos["quantity"].tolist() == [0.0] and pos["realized_pnl"].tolist() == [6.0]


def test_float_dust_after_partial_closes_does_not_open_a_phantom_position() -> None:
    _, rows = live([instrument_event(0, "BTC"), fill(0, 0.3, 100.0), fill(0, -0.1, 110.0), fill(0, -0.2, 120.0)])
    assert rows["quantity"][-1] == 0.0 and rows["avg_cost"][-1] == 0.0
    assert rows["realized_pnl"][-1] == pytest.approx(0.1 * 10 + 0.2 * 20, rel=1e-12)


def test_commissions_accumulate_apart_from_gross_realized_pnl() -> None:
    r, rows = live([instrument_event(0, "AAPL"), fill(0, 100, 10.0, commission=1.0), fill(0, -40, 11.0, commission=0.5),
                    fill(0, -60, 12.0, commission=0.75)])
    assert rows["commission"].tolist() == [1.0, 1.5, 2.25]
    assert rows["realized_pnl"].tolist() == [0.0, 40.0, 160.0]  # gross, commissions not subtracted
    pos = r.positions()[0]
    assert pos["net_pnl"] == 160.0 - 2.25 and pos["commission"] == 2.25


def test_option_multiplier_comes_from_instrument_defined_in_the_log(log: EventLog) -> None:
    log.append([instrument_event(0, "SPY"), option(1, "SPY   240621C00500000")])
    log.append([fill(1, 2, 1.50, commission=1.30), trade(1, 1.80), fill(1, -2, 2.00, commission=1.30),
                fill(0, 10, 500.0)])
    r, rows = replay(log)
    assert rows["multiplier"].tolist() == [100.0, 100.0, 1.0]
    assert rows["unrealized_pnl"][0] != rows["unrealized_pnl"][0]  # no mark yet: NaN
    assert rows["realized_pnl"][1] == pytest.approx(0.50 * 2 * 100)
    assert r.multiplier(1) == 100.0 and r.multiplier(0) == 1.0
    pos = r.positions()
    assert pos["multiplier"].tolist() == [1.0, 100.0]


def test_fill_for_an_instrument_never_defined_in_the_replayed_range_uses_multiplier_one(log: EventLog) -> None:
    log.append([option(0, "SPY   240621P00450000")])
    log.append([fill(0, 1, 3.0), fill(0, -1, 4.0)])
    full, full_rows = replay(log)
    fresh, fresh_rows = replay(log, from_offset=1)  # started fresh mid-log, after the definition
    assert full_rows["multiplier"].tolist() == [100.0, 100.0] and full_rows["realized_pnl"][-1] == 100.0
    assert fresh_rows["multiplier"].tolist() == [1.0, 1.0] and fresh_rows["realized_pnl"][-1] == 1.0
    assert fresh_rows["offset"].tolist() == [1, 2]


# -- marks ------------------------------------------------------------------------------------------


def test_mark_is_the_later_of_last_trade_and_quote_mid_and_fills_never_use_it() -> None:
    r, rows = live([
        instrument_event(0, "AAPL"),
        fill(0, 10, 100.0, ts=T0 + 1),      # no mark yet: unrealized NaN
        trade(0, 101.0, ts=T0 + 2),
        fill(0, 10, 102.0, ts=T0 + 3),      # mark = last trade 101; avg from fill prices only: 101
        quote(0, 103.0, 105.0, ts=T0 + 4),  # a quote after the trade moves the mark to its mid, 104
        fill(0, -5, 110.0, ts=T0 + 5),      # realizes at the fill price 110, not at the mark
        trade(0, 99.0, ts=T0 + 6),          # a trade after the quote moves it back
        fill(0, 1, 50.0, ts=T0 + 7),        # a fill far from the mark neither uses nor moves it
    ])
    assert math.isnan(rows["mark"][0]) and math.isnan(rows["unrealized_pnl"][0])
    assert rows["mark"].tolist()[1:] == [101.0, 104.0, 99.0]
    assert rows["avg_cost"].tolist()[:3] == [100.0, 101.0, 101.0]
    assert rows["realized_pnl"][2] == (110.0 - 101.0) * 5
    assert rows["unrealized_pnl"][1] == 0.0  # 20 @ 101 marked at 101
    assert rows["unrealized_pnl"][2] == (104.0 - 101.0) * 15
    assert r.mark(0) == (99.0, T0 + 6)
    pos = r.positions()[0]
    assert pos["mark"] == 99.0
    assert pos["unrealized_pnl"] == pytest.approx((99.0 - pos["avg_cost"]) * 16)


# -- accounts and groups ----------------------------------------------------------------------------


def test_two_accounts_on_the_same_instrument_are_kept_apart_and_listed_in_id_order() -> None:
    r, rows = live([instrument_event(0, "AAPL"), instrument_event(1, "MSFT"), fill(0, 100, 10.0, account=7),
                    fill(0, -30, 12.0, account=3), fill(0, -50, 11.0, account=7), fill(1, 5, 300.0, account=3),
                    fill(0, 30, 13.0, account=3)])
    assert rows["account_id"].tolist() == [7, 3, 7, 3, 3]
    pos = r.positions()
    assert [(a, i) for a, i in zip(pos["account_id"].tolist(), pos["instrument_id"].tolist(), strict=True)] == [
        (3, 0), (3, 1), (7, 0)]
    by = {(int(p["account_id"]), int(p["instrument_id"])): p for p in pos}
    assert by[7, 0]["quantity"] == 50 and by[7, 0]["avg_cost"] == 10.0 and by[7, 0]["realized_pnl"] == 50.0
    assert by[3, 0]["quantity"] == 0 and by[3, 0]["realized_pnl"] == -30.0
    assert by[3, 1]["quantity"] == 5


def iron_condor(pid: int = 42, account: int = 1) -> list[Event]:
    return [
        instrument_event(0, "SPY"),
        option(1, "SPY   240621P00480000"), option(2, "SPY   240621P00490000"),
        option(3, "SPY   240621C00510000"), option(4, "SPY   240621C00520000"),
        # Open: long 480 put, short 490 put, short 510 call, long 520 call.
        fill(1, 1, 1.00, commission=0.65, account=account, position_id=pid),
        fill(2, -1, 2.00, commission=0.65, account=account, position_id=pid),
        fill(3, -1, 2.10, commission=0.65, account=account, position_id=pid),
        fill(4, 1, 0.90, commission=0.65, account=account, position_id=pid),
        fill(0, 100, 500.0, account=account),  # a plain position beside the group
        quote(1, 0.50, 0.60), quote(2, 1.10, 1.30), quote(3, 1.00, 1.20), quote(4, 0.30, 0.40),
    ]


def test_iron_condor_group_pnl_is_the_sum_of_its_legs() -> None:
    r, _ = live(iron_condor())
    g = r.groups()
    assert len(g) == 1 and g[0]["position_id"] == 42 and g[0]["legs"] == 4 and g[0]["open_legs"] == 4
    assert g[0]["net_quantity"] == 0.0 and g[0]["fills"] == 4
    # Open credit 2.00 + 2.10 - 1.00 - 0.90 = 2.20; marks 0.55, 1.20, 1.10, 0.35 cost 1.40 to close.
    assert g[0]["unrealized_pnl"] == pytest.approx((2.20 - 1.40) * 100)
    assert g[0]["commission"] == pytest.approx(4 * 0.65)
    assert g[0]["realized_pnl"] == 0.0
    # Close every leg at other prices.
    r, rows = live([fill(1, -1, 0.40, commission=0.65, position_id=42), fill(2, 1, 1.00, commission=0.65, position_id=42),
                    fill(3, 1, 0.95, commission=0.65, position_id=42), fill(4, -1, 0.25, commission=0.65, position_id=42)],
                   r, first_offset=14)
    g = r.groups()[0]
    legs = r.legs()
    assert g["open_legs"] == 0 and g["unrealized_pnl"] == 0.0
    assert g["realized_pnl"] == pytest.approx(((0.40 - 1.00) + (2.00 - 1.00) + (2.10 - 0.95) + (0.25 - 0.90)) * 100)
    assert g["realized_pnl"] == sum(legs["realized_pnl"].tolist())
    assert g["commission"] == pytest.approx(8 * 0.65) and g["net_pnl"] == g["realized_pnl"] - g["commission"]
    # Only this group trades those legs: each leg equals its account position, bit for bit.
    pos = {int(p["instrument_id"]): p for p in r.positions()}
    for leg in legs:
        p = pos[int(leg["instrument_id"])]
        for name in ("quantity", "avg_cost", "realized_pnl", "commission", "fills"):
            assert leg[name] == p[name]
    assert 0 not in legs["instrument_id"].tolist()  # the plain position is in no group


def test_groups_sharing_an_instrument_keep_their_own_legs() -> None:
    r, _ = live([option(0, "SPY   240621C00500000"), fill(0, 1, 2.0, position_id=2), fill(0, 1, 4.0, position_id=1),
                 fill(0, -1, 5.0, position_id=2), trade(0, 3.0)])
    g = {int(x["position_id"]): x for x in r.groups()}
    assert g[2]["realized_pnl"] == 300.0 and g[2]["unrealized_pnl"] == 0.0  # bought @ 2, sold @ 5
    assert g[1]["realized_pnl"] == 0.0 and g[1]["unrealized_pnl"] == -100.0  # 1 @ 4 marked at 3
    pos = r.positions()[0]  # the account position averages both: 1 @ 3, realized (5 - 3) * 100
    assert pos["quantity"] == 1 and pos["avg_cost"] == 3.0 and pos["realized_pnl"] == 200.0
    assert r.legs()["position_id"].tolist() == [1, 2]


# -- live == replay, snapshots ----------------------------------------------------------------------


def mixed_events(n: int, seed: int = 7) -> list[Event]:
    rng = np.random.default_rng(seed)
    events: list[Event] = [instrument_event(0, "AAPL"), option(1, "AAPL  240621C00200000"), instrument_event(2, "ES",
                           kind=InstrumentKind.FUTURE, multiplier=50.0)]
    for k in range(n):
        ts = T0 + 1000 * k
        iid = int(rng.integers(0, 3))
        u = rng.random()
        px = float(np.round(rng.uniform(1, 200), 2))
        if u < 0.3:
            events.append(trade(iid, px, ts))
        elif u < 0.5:
            events.append(quote(iid, px, px + 0.05, ts))
        else:
            events.append(fill(iid, float(rng.choice([-3, -2, -1, 1, 2, 3])), px, commission=float(rng.choice([0, 0.65])),
                               account=int(rng.choice([1, 2, 9])), position_id=int(rng.choice([0, 0, 5, 11])), ts=ts))
    return events


def test_live_records_and_replayed_chunks_give_identical_outputs_and_digests(tmp_path: Path) -> None:
    events = mixed_events(240)
    with EventLog.open(tmp_path / "log") as log:
        for a in range(0, len(events), 37):  # several chunks, cut at arbitrary places
            log.append(events[a:a + 37])
        chunk_r, chunk_rows = replay(log)
        rec_r = reducer()
        rec_parts = []
        for c in log.chunks():
            for off, rec in iter_records(c.body, c.first_offset):
                rec_r.apply_record(bytes(rec), off)
                rec_parts.append(rec_r.out.drain())  # drained per event, as the live engine does
    rec_rows = np.concatenate(rec_parts)
    assert len(chunk_rows) > 100
    assert rec_rows.tobytes() == chunk_rows.tobytes()
    assert rec_r.out.digest() == chunk_r.out.digest()
    assert rec_r.state_digest() == chunk_r.state_digest()
    assert rec_r.positions().tobytes() == chunk_r.positions().tobytes()
    assert rec_r.groups().tobytes() == chunk_r.groups().tobytes()


def test_snapshot_at_every_offset_then_continue_is_identical() -> None:
    records = [encode(e) for e in mixed_events(90, seed=3)]
    whole = reducer()
    for off, rec in enumerate(records):
        whole.apply_record(rec, off)
    whole_rows = whole.out.drain()
    for k in range(len(records) + 1):
        head = reducer()
        for off in range(k):
            head.apply_record(records[off], off)
        rows = [head.out.drain()]
        tail = reducer()
        tail.restore(head.snapshot())
        assert tail.state_digest() == head.state_digest()
        for off in range(k, len(records)):
            tail.apply_record(records[off], off)
        rows.append(tail.out.drain())
        assert np.concatenate(rows).tobytes() == whole_rows.tobytes()
        assert tail.out.digest() == whole.out.digest()
        assert tail.state_digest() == whole.state_digest(), k
        assert tail.groups().tobytes() == whole.groups().tobytes()


def test_restore_replaces_any_state_the_reducer_held() -> None:
    records = [encode(e) for e in mixed_events(60, seed=5)]
    for k in (2, 20):  # a snapshot with fewer instruments, then one with fewer accounts and legs
        a = reducer()
        for off in range(k):
            a.apply_record(records[off], off)
        a.out.drain()
        b = reducer()
        for off, rec in enumerate(records):
            b.apply_record(rec, off)
        b.out.drain()
        b.restore(a.snapshot())
        assert b.state_digest() == a.state_digest()
        for off in range(k, len(records)):
            a.apply_record(records[off], off)
            b.apply_record(records[off], off)
        assert b.out.drain().tobytes() == a.out.drain().tobytes()
        assert b.state_digest() == a.state_digest()
        assert b.positions().tobytes() == a.positions().tobytes()


def test_load_state_parts_refuses_parts_of_the_wrong_length() -> None:
    r, _ = live(iron_condor())
    parts = r.state_parts()
    for i in range(1, len(parts)):
        bad = list(parts)
        bad[i] = parts[i][:-1]
        with pytest.raises(SnapshotError, match="bytes must be"):
            r.load_state_parts(bad)
    with pytest.raises(SnapshotError, match="state parts"):
        r.load_state_parts(parts[:-1])
    legs = bytearray(parts[4])
    legs[:8] = struct.pack("<Q", 0)  # a leg with no position id
    with pytest.raises(SnapshotError, match="group leg 0"):
        r.load_state_parts([*parts[:4], bytes(legs)])
    r.load_state_parts(parts)  # the good parts still load


# -- invariant: P&L equals cash flow ----------------------------------------------------------------

MULTS = (1.0, 100.0, 50.0)
fills_strategy = st.lists(
    st.tuples(
        st.integers(0, 2),                                               # instrument
        st.one_of(st.integers(-20, 20).filter(bool).map(float),
                  st.decimals("-5", "5", places=2).filter(bool).map(float)),  # signed quantity
        st.decimals("0.05", "500", places=2).map(float),                 # price
        st.sampled_from([0.0, 0.65, 1.0, -0.1]),                         # commission (rebate too)
        st.sampled_from([1, 2]),                                         # account
        st.sampled_from([0, 3, 8]),                                      # position id
        st.one_of(st.none(), st.decimals("0.05", "500", places=2).map(float)),  # a trade before the fill
    ),
    min_size=1, max_size=40)


@settings(max_examples=150, deadline=None)
@given(fills=fills_strategy, final=st.tuples(*[st.decimals("0.05", "500", places=2).map(float)] * 3))
def test_realized_plus_unrealized_minus_commission_equals_cash_flow_pnl(fills, final) -> None:
    events: list[Event] = [instrument_event(i, f"I{i}", multiplier=m) for i, m in enumerate(MULTS)]
    cash: dict[tuple[int, int], float] = {}
    qty: dict[tuple[int, int], float] = {}
    gcash: dict[int, float] = {}
    gqty: dict[tuple[int, int, int], float] = {}
    scale = 1.0
    for iid, q, p, c, acc, pid, tp in fills:
        if tp is not None:
            events.append(trade(iid, tp))
        events.append(fill(iid, q, p, commission=c, account=acc, position_id=pid))
        flow = -q * p * MULTS[iid] - c
        cash[acc, iid] = cash.get((acc, iid), 0.0) + flow
        qty[acc, iid] = qty.get((acc, iid), 0.0) + q
        if pid:
            gcash[pid] = gcash.get(pid, 0.0) + flow
            gqty[pid, acc, iid] = gqty.get((pid, acc, iid), 0.0) + q
        scale += abs(q * p * MULTS[iid]) + abs(c)
    events += [trade(i, final[i]) for i in range(3)]
    r, rows = live(events)
    assert len(rows) == len(fills)
    expected = sum(cash.values()) + sum(q * final[i] * MULTS[i] for (_, i), q in qty.items())
    assert net_total(r) == pytest.approx(expected, rel=0, abs=1e-6 * scale)
    for (acc, iid), q in qty.items():
        p = r.positions()
        row = p[(p["account_id"] == acc) & (p["instrument_id"] == iid)][0]
        assert row["quantity"] == pytest.approx(q, abs=1e-9)
        assert row["realized_pnl"] + row["unrealized_pnl"] - row["commission"] == pytest.approx(
            cash[acc, iid] + q * final[iid] * MULTS[iid], rel=0, abs=1e-6 * scale)
    for g in r.groups():
        pid = int(g["position_id"])
        want = gcash[pid] + sum(q * final[i] * MULTS[i] for (gp, _, i), q in gqty.items() if gp == pid)
        assert g["realized_pnl"] + g["unrealized_pnl"] - g["commission"] == pytest.approx(want, rel=0, abs=1e-6 * scale)
    assert sorted(int(x) for x in r.groups()["position_id"]) == sorted(gcash)


# -- the protobuf wire reader -----------------------------------------------------------------------


def defined(**kw) -> bytes:
    fields = {"instrument_id": 3, "symbol": "SPY   240621C00500000", "kind": 3, "underlying_id": 0, "expiry_ns": T0,
              "strike": 500.0, "right": 1, "venue": "XCBO", "currency": "USD", "tick_size": 0.01, **kw}
    return events_pb2.InstrumentDefined(**fields).SerializeToString(deterministic=True)


def test_wire_reader_reads_the_multiplier_of_a_protobuf_encoded_instrument_defined() -> None:
    raw = defined(multiplier=100.0)
    assert wire_double(raw, MULTIPLIER_FIELD) == 100.0
    assert wire_double(raw, 6) == 500.0  # strike
    assert wire_double(raw, 11) == 0.01  # tick_size, after the string fields
    assert wire_uint64(raw, 1) == 3 and wire_uint64(raw, 5) == T0
    assert wire_double(raw, 2, default=-1.0) == -1.0  # symbol is not a double: absent as one


def test_wire_reader_without_the_multiplier_field_returns_the_default() -> None:
    raw = defined()
    assert events_pb2.InstrumentDefined.FromString(raw).multiplier == 0.0
    assert math.isnan(wire_double(raw, MULTIPLIER_FIELD))
    assert wire_double(raw, MULTIPLIER_FIELD, default=1.0) == 1.0
    assert wire_double(b"", MULTIPLIER_FIELD, default=1.0) == 1.0


def test_wire_reader_on_every_truncation_returns_the_value_only_when_protobuf_parses() -> None:
    raw = defined(multiplier=100.0)
    for cut in range(len(raw) + 1):
        try:
            msg = events_pb2.InstrumentDefined.FromString(raw[:cut])
        except DecodeError:
            expected = -1.0
        else:
            expected = msg.multiplier if msg.multiplier else -1.0
        assert wire_double(raw[:cut], MULTIPLIER_FIELD, default=-1.0) == expected, cut


def test_wire_reader_refuses_overlong_varints_lengths_past_the_end_and_field_zero() -> None:
    value = struct.pack("<d", 7.0)
    assert wire_double(b"\x41" + value, 8) == 7.0
    assert wire_double(b"\x41" + value + b"\x41" + struct.pack("<d", 9.0), 8) == 9.0  # last one wins
    assert wire_double(b"\x40\x07" + b"\x41" + value, 8) == 7.0  # field 8 as a varint is an unknown field
    assert wire_double(b"\x41" + value + b"\x12\x05abc", 8, default=-1.0) == -1.0  # length past the end
    assert wire_double(b"\x41" + value + b"\x08" + b"\xff" * 11, 8, default=-1.0) == -1.0  # 11-byte varint
    assert wire_double(b"\x01" + value, 8, default=-1.0) == -1.0  # field number 0
    assert wire_double(b"\x43" + b"\x41" + value, 8, default=-1.0) == -1.0  # a group (not written by proto3)


def _varint(v: int) -> bytes:
    out = bytearray()
    while True:
        b, v = v & 0x7F, v >> 7
        out.append(b | (0x80 if v else 0))
        if not v:
            return bytes(out)


wire_field = st.one_of(
    st.tuples(st.integers(1, 20), st.just(0), st.integers(0, 2**64 - 1)),
    st.tuples(st.integers(1, 20), st.just(1), st.floats(allow_nan=False)),
    st.tuples(st.integers(1, 20), st.just(2), st.binary(max_size=12)),
    st.tuples(st.integers(1, 20), st.just(5), st.integers(0, 2**32 - 1)),
)


def _encode_fields(fields) -> bytes:
    out = bytearray()
    for number, wt, value in fields:
        out += _varint(number << 3 | wt)
        if wt == 0:
            out += _varint(value)
        elif wt == 1:
            out += struct.pack("<d", value)
        elif wt == 2:
            out += _varint(len(value)) + value
        else:
            out += struct.pack("<I", value)
    return bytes(out)


@settings(max_examples=200, deadline=None)
@given(fields=st.lists(wire_field, max_size=12), cut=st.integers(0, 400))
def test_wire_reader_agrees_with_protobuf_on_random_messages_and_their_truncations(fields, cut) -> None:
    raw = _encode_fields(fields)
    for data in (raw, raw[:cut]):
        got = wire_double(data, MULTIPLIER_FIELD, default=-1.0)  # never reads out of bounds, whatever data is
        try:
            msg = events_pb2.InstrumentDefined.FromString(data)
        except DecodeError:
            continue  # protobuf refuses it (a cut field, a symbol that is not UTF-8): nothing to compare
        if msg.multiplier == 0.0:
            assert got in (-1.0, 0.0)  # absent (the default) or written as 0
        else:
            assert got == msg.multiplier


def test_reducer_falls_back_to_multiplier_one_on_a_damaged_or_missing_field() -> None:
    # Records built by hand (apply_record does not validate): a definition without field 8, and one
    # whose payload is truncated inside field 8.
    good = encode(instrument_event(0, "OPT", multiplier=100.0))
    header = bytearray(good[:32])
    payloads = [defined(instrument_id=0), defined(instrument_id=0) + b"\x41" + struct.pack("<d", 100.0)[:4]]
    for payload in payloads:
        h = bytearray(header)
        padded = payload + b"\0" * (-len(payload) % 8)
        struct.pack_into("<I", h, 0, 32 + len(padded))
        struct.pack_into("<I", h, 12, len(payload))
        r = reducer()
        r.apply_record(bytes(h) + padded, 0)
        assert r.multiplier(0) == 1.0
    r = reducer()
    r.apply_record(good, 0)
    assert r.multiplier(0) == 100.0
