"""argus.v1.OptionsService against a real in-process server: SpreadPop, Surface, WatchAnomalies."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

import grpc
import numpy as np
import pytest
from grpc import aio

from argus.api.server import start_server
from argus.connectors.synthetic import SyntheticConfig, write_synthetic_market
from argus.events import codec
from argus.events.types import EventType, OptionRight
from argus.log import EventLog
from argus.options.pop import _ny_date, latest_chain, spread_pop
from argus.options.surface import surface_from_chain
from argus.v1 import event_log_service_pb2 as log_pb
from argus.v1 import event_log_service_pb2_grpc as log_pb_grpc
from argus.v1 import options_service_pb2 as pb
from argus.v1 import options_service_pb2_grpc as pb_grpc
from tests.api.conftest import TIMEOUT

PATHS = 20_000
FIT_EVALS = 4  # a short Heston fit: the numbers only have to agree with the library's


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """A two-day synthetic SPY log with option chains: one chunk (one append) per day."""
    path = tmp_path_factory.mktemp("optsrc") / "log"
    with EventLog.open(path) as lg:
        write_synthetic_market(lg, SyntheticConfig(seed=5, symbols=("SPY",), start=dt.date(2024, 3, 4), days=2,
                                                   options=True, events_per_day=1000))
        chunks = [bytes(c.body) for c in lg.chunks()]
    assert len(chunks) == 2
    lg = EventLog.open(path, readonly=True)
    yield {"path": path, "log": lg, "day1": chunks[0], "day2": chunks[1],
           "day1_head": codec_count(chunks[0])}
    lg.close()


def codec_count(body: bytes) -> int:
    return sum(1 for _ in codec.iter_records(body, 0))


def chain_offsets(body: bytes, first_offset: int) -> list[int]:
    return [off for off, rec in codec.iter_records(body, first_offset)
            if int.from_bytes(rec[4:6], "little") == EventType.OPTION_CHAIN_SNAPSHOT]


def with_server(tmp: Path, source, body):
    """A server over a log holding day one; run `await body(options_stub, log_stub)`."""
    with EventLog.open(tmp / "log") as lg:
        lg.append(source["day1"])

    async def main():
        server = await start_server(tmp / "log", port=0, projections=False)
        try:
            async with aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
                stubs = pb_grpc.OptionsServiceStub(channel), log_pb_grpc.EventLogServiceStub(channel)
                return await asyncio.wait_for(body(*stubs), TIMEOUT)
        finally:
            await server.stop(grace=2)

    return asyncio.run(main())


def day1_chain(source):
    return latest_chain(source["log"], "SPY", source["day1_head"] - 1)


def spread_args(chain):
    exp_ns = int(np.unique(chain.rows["expiry_ns"])[1])
    puts = chain.rows[(chain.rows["expiry_ns"] == exp_ns) & (chain.rows["right"] == int(OptionRight.PUT))]
    strikes = np.sort(puts["strike"])
    below = strikes[strikes < 0.98 * chain.spot]
    return _ny_date(exp_ns), float(below[-1]), float(below[-6])


def test_spread_pop_equals_library(tmp_path, source):
    chain = day1_chain(source)
    expiry, short, long_ = spread_args(chain)
    want = spread_pop(chain, expiry, short, long_, "put", paths=PATHS, fit_evals=FIT_EVALS)

    async def body(stub, _):
        req = pb.SpreadPopRequest(symbol="SPY", short_strike=short, long_strike=long_, expiry=expiry,
                                  right=OptionRight.PUT, paths=PATHS, fit_evals=FIT_EVALS)
        return await stub.SpreadPop(req, timeout=TIMEOUT), await stub.SpreadPop(req, timeout=TIMEOUT)

    got, again = with_server(tmp_path, source, body)
    assert got.snapshot_offset == chain.offset and got.seed == chain.offset and got.paths == PATHS
    for name in ("pop", "pop_se", "expected_pnl", "expected_pnl_se", "p_touch", "p_touch_se", "p_max_loss",
                 "p_max_loss_se", "q05", "q50", "q95", "lognormal_pop", "credit", "width", "max_loss", "div"):
        assert getattr(got, name) == want[name], name
        assert getattr(again, name) == getattr(got, name), name
    assert got.short_strike == short and got.long_strike == long_ and got.right == OptionRight.PUT
    assert got.heston.v0 == want["heston"]["v0"] and got.device == want["device"]
    assert got.expiry == expiry and got.symbol == "SPY"


def test_spread_pop_seed_and_errors(tmp_path, source):
    chain = day1_chain(source)
    expiry, short, long_ = spread_args(chain)
    want = spread_pop(chain, expiry, short, long_, "put", paths=PATHS, seed=11, fit_evals=FIT_EVALS)

    async def body(stub, _):
        base = dict(symbol="SPY", short_strike=short, long_strike=long_, expiry=expiry, paths=PATHS,
                    fit_evals=FIT_EVALS)
        seeded = await stub.SpreadPop(pb.SpreadPopRequest(**base, seed=11), timeout=TIMEOUT)
        errors = {}
        for label, kw in {"symbol": dict(symbol="NOPE"), "expiry": dict(expiry="2030-01-18"),
                          "format": dict(expiry="18/01/2030"), "strike": dict(short_strike=short + 0.37),
                          "stale": dict(max_age_ns=1)}.items():
            with pytest.raises(aio.AioRpcError) as err:
                await stub.SpreadPop(pb.SpreadPopRequest(**{**base, **kw}), timeout=TIMEOUT)
            errors[label] = (err.value.code(), err.value.details())
        return seeded, errors

    seeded, errors = with_server(tmp_path, source, body)
    assert seeded.seed == 11 and seeded.pop == want["pop"]
    assert errors["symbol"][0] == grpc.StatusCode.NOT_FOUND and "field 'symbol' = 'NOPE'" in errors["symbol"][1]
    assert errors["expiry"][0] == grpc.StatusCode.NOT_FOUND and "field 'expiry' = '2030-01-18'" in errors["expiry"][1]
    assert errors["format"][0] == grpc.StatusCode.INVALID_ARGUMENT and "YYYY-MM-DD" in errors["format"][1]
    assert errors["strike"][0] == grpc.StatusCode.INVALID_ARGUMENT and "is not listed" in errors["strike"][1]
    assert errors["stale"][0] == grpc.StatusCode.FAILED_PRECONDITION and "stale chain" in errors["stale"][1]


def test_surface_one_fit_per_expiry(tmp_path, source):
    chain = day1_chain(source)
    res = surface_from_chain(chain.rows, chain.spot, chain.ts_event, r=0.05, z_threshold=3.0)

    async def body(stub, _):
        got = await stub.Surface(pb.SurfaceRequest(symbol="SPY", z=3.0), timeout=TIMEOUT)
        with pytest.raises(aio.AioRpcError) as err:
            await stub.Surface(pb.SurfaceRequest(symbol="NOPE"), timeout=TIMEOUT)
        return got, err.value.code()

    got, code = with_server(tmp_path, source, body)
    assert code == grpc.StatusCode.NOT_FOUND
    assert got.snapshot_offset == chain.offset and got.symbol == "SPY" and got.spot == chain.spot
    assert [f.expiry_ns for f in got.fits] == sorted(res.fits)
    assert len(got.fits) == len({int(e) for e in chain.rows["expiry_ns"] if int(e) > chain.ts_event}) >= 2
    atm = res.atm_iv()
    for f in got.fits:
        assert f.success and f.a == res.fits[f.expiry_ns].a and f.atm_iv == atm[f.expiry_ns]
        assert f.expiry == _ny_date(f.expiry_ns) and f.quotes > 0
    flagged = res.flagged()
    assert [(a.expiry_ns, a.strike, a.right, a.flags) for a in got.anomalies] == \
        [(int(r["expiry_ns"]), float(r["strike"]), int(r["right"]), int(r["flags"])) for r in flagged]


def test_watch_anomalies_of_appended_chains(tmp_path, source):
    first = source["day1_head"]
    offsets = chain_offsets(source["day2"], first)
    assert offsets

    async def body(stub, log_stub):
        stream = stub.WatchAnomalies(pb.WatchAnomaliesRequest(symbol="SPY", from_offset=first, z=3.0),
                                     timeout=TIMEOUT)
        await log_stub.Append(log_pb.AppendRequest(records=source["day2"]), timeout=TIMEOUT)
        got = []
        async for msg in stream:
            got.append(msg)
            if len(got) == len(offsets):
                break
        stream.cancel()
        with pytest.raises(aio.AioRpcError) as err:
            async for _ in stub.WatchAnomalies(pb.WatchAnomaliesRequest(symbol="NOPE"), timeout=TIMEOUT):
                pass
        return got, err.value.code()

    got, code = with_server(tmp_path, source, body)
    assert code == grpc.StatusCode.NOT_FOUND
    assert [m.snapshot_offset for m in got] == offsets
    total = 0
    for m in got:
        chain = latest_chain(source["log"], "SPY", m.snapshot_offset)
        assert chain.offset == m.snapshot_offset and m.ts == chain.ts_event and m.symbol == "SPY"
        flagged = surface_from_chain(chain.rows, chain.spot, chain.ts_event, r=0.05, z_threshold=3.0).flagged()
        assert [(a.expiry_ns, a.strike, a.right, a.flags) for a in m.anomalies] == \
            [(int(r["expiry_ns"]), float(r["strike"]), int(r["right"]), int(r["flags"])) for r in flagged]
        np.testing.assert_array_equal([a.robust_z for a in m.anomalies], flagged["robust_z"])
        total += len(m.anomalies)
    assert total > 0
