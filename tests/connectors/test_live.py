"""Live sources: synthetic and tape with a fake clock (deterministic), the Alpaca stream adapter against a
loopback aiohttp server speaking its documented protocol, and `argusctl live`."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from pathlib import Path

import numpy as np
import pytest
from aiohttp import WSMsgType, web
from click.testing import CliRunner

from argus.cli.main import cli
from argus.connectors import alpaca, live
from argus.connectors.synthetic import SyntheticConfig, write_synthetic_market
from argus.events import codec
from argus.events.types import EventType
from argus.log import EventLog

NS = 1_000_000_000
START = 1_750_000_000 * NS  # the fake clock's first reading (2025-06-15)
CONFIG = SyntheticConfig(seed=7, symbols=("SPY", "QQQ"), start=dt.date(2024, 3, 4), days=1, events_per_day=1000)


def events(lg: EventLog) -> list:
    return [ev for _, ev in lg.events()]


def synthetic_live(path: Path, *, speed: float = 0.0, step_ns: int = 5_000_000) -> live.LiveStats:
    with EventLog.open(path, durability="fast") as lg:
        return asyncio.run(live.run_synthetic(CONFIG, live.LogSink(lg), live.FakeClock(START, step_ns),
                                              speed=speed, clock_ns=NS))


def test_synthetic_speed0_is_deterministic_and_writes_clocks(tmp_path: Path):
    a = synthetic_live(tmp_path / "a")
    b = synthetic_live(tmp_path / "b")
    assert a.as_dict() == b.as_dict()
    with EventLog.open(tmp_path / "a", readonly=True) as la, EventLog.open(tmp_path / "b", readonly=True) as lb:
        assert live.records_of(la) == live.records_of(lb)
        assert la.chain_head() == lb.chain_head()
        evs = events(la)
        clocks = live.clock_times(la)
    assert a.events > 1000 and a.instruments_defined == 2 and a.clocks == len(clocks) > 5
    # Clock events at every multiple of the interval, in ts order, with ts_event == ts_recv.
    assert np.all(clocks % NS == 0) and np.all(np.diff(clocks) == NS)
    recv = np.asarray([e.ts_recv for e in evs])
    assert np.all(np.diff(recv) >= 0)
    assert all(e.ts_event == e.ts_recv for e in evs if e.type == EventType.CLOCK)
    # Each event is stamped right after the clocks it passed: no clock is later than the next event.
    for i, e in enumerate(evs[:-1]):
        if e.type == EventType.CLOCK:
            assert evs[i + 1].ts_recv >= e.ts_recv


def test_synthetic_live_differs_from_ingested_only_in_recv_and_clocks(tmp_path: Path):
    synthetic_live(tmp_path / "live")
    with EventLog.open(tmp_path / "ingested", durability="fast") as lg:
        write_synthetic_market(lg, CONFIG)
    with EventLog.open(tmp_path / "live", readonly=True) as ll, EventLog.open(tmp_path / "ingested", readonly=True) as li:
        def market(lg):
            return [(e.type, e.instrument_id, e.ts_event, dict(e.data)) for e in events(lg)
                    if e.type not in (EventType.CLOCK, EventType.INSTRUMENT_DEFINED)]

        assert market(ll) == market(li)
        assert ll.symbols() == li.symbols()


def test_synthetic_paced_by_speed_on_the_fake_clock(tmp_path: Path):
    stats = synthetic_live(tmp_path / "a", speed=3600.0, step_ns=0)  # one market hour per live second
    with EventLog.open(tmp_path / "a", readonly=True) as lg:
        evs = [e for e in events(lg) if e.type in (EventType.QUOTE, EventType.TRADE)]
    # live elapsed ~ market elapsed / speed (the sleeps move the fake clock)
    market = (evs[-1].ts_event - evs[0].ts_event) / 3600.0
    elapsed = evs[-1].ts_recv - evs[0].ts_recv
    assert abs(elapsed - market) < 0.01 * market + NS
    assert stats.clocks >= int(market / NS) - 1


def test_tape_from_log_keeps_ts_event_and_order(tmp_path: Path):
    with EventLog.open(tmp_path / "rec", durability="fast") as lg:
        write_synthetic_market(lg, CONFIG)
        original = [e for e in events(lg) if e.type != EventType.CLOCK]
    with EventLog.open(tmp_path / "out", durability="fast") as out:
        out.define_instrument("OTHER")  # ids are re-mapped onto the target log
        stats = asyncio.run(live.run_tape_log(tmp_path / "rec", live.LogSink(out), live.FakeClock(START, 2_000_000),
                                              speed=0.0, clock_ns=NS))
        replayed = [e for e in events(out)[1:] if e.type != EventType.CLOCK]
        clocks = live.clock_times(out)
        symbols = out.symbols()
    assert stats.events == len(original) - 2 and stats.instruments_defined == 2
    def market(evs):
        return [(e.type, e.ts_event) for e in evs if e.type != EventType.INSTRUMENT_DEFINED]

    assert market(replayed) == market(original)
    assert [e.type for e in replayed[:2]] == [EventType.INSTRUMENT_DEFINED] * 2
    assert [symbols[e.instrument_id] for e in replayed if e.type != EventType.INSTRUMENT_DEFINED][:50] == \
        [{0: "SPY", 1: "QQQ"}[e.instrument_id] for e in original if e.type != EventType.INSTRUMENT_DEFINED][:50]
    assert len(clocks) == stats.clocks > 0 and np.all(np.diff(clocks) == NS)
    recv = [e.ts_recv for e in replayed]
    assert recv == sorted(recv) and recv[0] >= START


def test_tape_duration_stops_on_the_live_clock(tmp_path: Path):
    with EventLog.open(tmp_path / "rec", durability="fast") as lg:
        write_synthetic_market(lg, CONFIG)
    with EventLog.open(tmp_path / "out", durability="fast") as out:
        stats = asyncio.run(live.run_tape_log(tmp_path / "rec", live.LogSink(out), live.FakeClock(START, 0),
                                              speed=60.0, clock_ns=NS, duration_s=30.0))
    assert stats.clocks == 30 and stats.last_ts_recv == START + 30 * NS
    assert 0 < stats.events < 1000


# -- alpaca ---------------------------------------------------------------------------------------

TRADE = {"T": "t", "S": "AAPL", "i": 52983525029461, "x": "V", "p": 126.55, "s": 1,
         "t": "2021-02-22T15:51:44.208123456Z", "c": ["@", "I"], "z": "C"}
QUOTE = {"T": "q", "S": "AAPL", "bx": "V", "bp": 126.50, "bs": 3, "ax": "V", "ap": 126.60, "as": 5,
         "t": "2021-02-22T15:51:45.335689322Z", "c": ["R"], "z": "C"}
CROSSED = {**QUOTE, "bp": 126.70, "ap": 126.60}
BAR = {"T": "b", "S": "SPY", "o": 388.985, "h": 389.13, "l": 388.975, "c": 389.12, "v": 49378,
       "t": "2021-02-22T19:15:00Z", "n": 461, "vw": 389.062639}
TRADE2 = {**TRADE, "i": 52983525029462, "p": 126.57, "t": "2021-02-22T15:51:50.5Z"}
QUOTE2 = {**QUOTE, "bp": 126.55, "ap": 126.58, "t": "2021-02-22T15:51:51+00:00"}


class FakeAlpaca:
    """A loopback server speaking the Alpaca market-data stream v2 protocol."""

    def __init__(self, key: str = "k", secret: str = "s"):
        self.key, self.secret = key, secret
        self.connections = 0
        self.subscriptions: list[dict] = []
        self.auths: list[dict] = []

    async def handler(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.connections += 1
        n = self.connections
        await ws.send_json([{"T": "success", "msg": "connected"}])
        auth = json.loads((await ws.receive()).data)
        self.auths.append(auth)
        if auth != {"action": "auth", "key": self.key, "secret": self.secret}:
            await ws.send_json([{"T": "error", "code": 402, "msg": "auth failed"}])
            await ws.close()
            return ws
        await ws.send_json([{"T": "success", "msg": "authenticated"}])
        sub = json.loads((await ws.receive()).data)
        self.subscriptions.append(sub)
        await ws.send_json([{"T": "subscription", **{k: sub.get(k, []) for k in ("trades", "quotes", "bars")}}])
        if n == 1:
            await ws.send_json([TRADE, QUOTE])
            await ws.send_json([CROSSED, BAR])
            await ws.close()  # drop mid-stream
            return ws
        await ws.send_json([TRADE2, QUOTE2])
        async for msg in ws:  # until the client goes
            if msg.type == WSMsgType.CLOSE:
                break
        return ws


async def _with_server(fake: FakeAlpaca, body):
    app = web.Application()
    app.router.add_get("/v2/iex", fake.handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    try:
        return await asyncio.wait_for(body(f"http://127.0.0.1:{port}/v2/iex"), 15)
    finally:
        await runner.cleanup()


def test_parse_time():
    assert alpaca.parse_time("2021-02-22T15:51:44.208123456Z") == 1614009104 * NS + 208123456
    assert alpaca.parse_time("2021-02-22T15:51:44.2Z") == 1614009104 * NS + 200_000_000
    assert alpaca.parse_time("2021-02-22T10:51:44-05:00") == 1614009104 * NS
    for bad in ("nope", "2021-02-22T15:51:44", "2021-02-22T15:51:44.1234567890Z", 5):
        with pytest.raises(ValueError):
            alpaca.parse_time(bad)


def test_alpaca_stream_reconnects_and_records_the_gap(tmp_path: Path):
    fake = FakeAlpaca()
    with EventLog.open(tmp_path / "log", durability="fast") as lg:
        async def body(url):
            return await alpaca.run_alpaca(
                live.LogSink(lg), live.FakeClock(START, 1_000_000), url=url, key="k", secret="s",
                symbols=["AAPL", "SPY"], clock_ns=NS, max_events=5, backoff=alpaca.Backoff(initial=0.5, seed=3))

        stats = asyncio.run(_with_server(fake, body))
        evs = events(lg)
        symbols = lg.symbols()
    assert fake.connections == 2
    assert fake.subscriptions == [{"action": "subscribe", "trades": ["AAPL", "SPY"], "quotes": ["AAPL", "SPY"],
                                   "bars": ["AAPL", "SPY"]}] * 2
    assert stats.skipped == 1 and stats.skip_reasons == {"crossed quote": 1}
    assert stats.reconnects == 1 and len(stats.gaps) == 1
    assert sorted(symbols.values()) == ["AAPL", "SPY"] and stats.instruments_defined == 2
    ids = {s: i for i, s in symbols.items()}

    trades = [e for e in evs if e.type == EventType.TRADE]
    quotes = [e for e in evs if e.type == EventType.QUOTE]
    bars = [e for e in evs if e.type == EventType.BAR]
    assert [(t.instrument_id, t.ts_event, t.data["price"], t.data["size"], t.data["trade_id"]) for t in trades] == [
        (ids["AAPL"], 1614009104 * NS + 208123456, 126.55, 1.0, 52983525029461),
        (ids["AAPL"], 1614009110 * NS + 500_000_000, 126.57, 1.0, 52983525029462)]
    assert [(q.ts_event, q.data["bid"], q.data["ask"], q.data["bid_size"], q.data["ask_size"]) for q in quotes] == [
        (1614009105 * NS + 335689322, 126.50, 126.60, 3.0, 5.0), (1614009111 * NS, 126.55, 126.58, 3.0, 5.0)]
    (bar,) = bars
    start = int(dt.datetime(2021, 2, 22, 19, 15, tzinfo=dt.UTC).timestamp()) * NS
    assert bar.instrument_id == ids["SPY"] and bar.ts_event == start + 60 * NS
    assert (bar.data["open"], bar.data["high"], bar.data["low"], bar.data["close"], bar.data["volume"],
            bar.data["interval_ns"], bar.data["trade_count"]) == (388.985, 389.13, 388.975, 389.12, 49378.0,
                                                                 60 * NS, 461)
    assert all(e.ts_recv >= START for e in evs)
    assert [e.ts_recv for e in evs] == sorted(e.ts_recv for e in evs)

    (gap,) = stats.gaps
    (note,) = [e for e in evs if e.type == EventType.ANNOTATION]
    assert 0.25 * NS <= gap.duration_ns <= 0.6 * NS  # the jittered first backoff, on the fake clock
    assert note.ts_event == gap.start_ns and note.ts_recv == gap.end_ns
    assert note.data["text"] == f"gap {live.format_ns(gap.start_ns)}\u2013{live.format_ns(gap.end_ns)} (reconnect)"
    assert f"duration_ns={gap.duration_ns}" in note.data["tags"]
    # the gap lies between the events of the two connections
    order = [e.type for e in evs if e.type not in (EventType.CLOCK, EventType.INSTRUMENT_DEFINED)]
    assert order == [EventType.TRADE, EventType.QUOTE, EventType.BAR, EventType.ANNOTATION, EventType.TRADE,
                     EventType.QUOTE]


def test_alpaca_wrong_key_stops_with_a_clear_error(tmp_path: Path):
    fake = FakeAlpaca()
    with EventLog.open(tmp_path / "log", durability="fast") as lg:
        async def body(url):
            return await alpaca.run_alpaca(live.LogSink(lg), live.FakeClock(START), url=url, key="wrong", secret="s",
                                           symbols=["AAPL"], max_events=1)

        with pytest.raises(alpaca.AlpacaAuthError, match="402: auth failed"):
            asyncio.run(_with_server(fake, body))
        assert [e.type for e in events(lg)] in ([], [EventType.CLOCK])
    assert fake.connections == 1 and fake.auths == [{"action": "auth", "key": "wrong", "secret": "s"}]


def test_alpaca_gives_up_after_bounded_attempts(tmp_path: Path):
    with EventLog.open(tmp_path / "log", durability="fast") as lg:
        async def body():
            return await alpaca.run_alpaca(live.LogSink(lg), live.FakeClock(START), url="http://127.0.0.1:9/v2/iex",
                                           key="k", secret="s", symbols=["AAPL"],
                                           backoff=alpaca.Backoff(max_attempts=2))

        with pytest.raises(alpaca.AlpacaError, match="gave up after 2"):
            asyncio.run(asyncio.wait_for(body(), 15))


def test_backoff_is_bounded_and_seeded():
    a = list(alpaca.Backoff(initial=0.5, maximum=4.0, max_attempts=8, seed=1).delays())
    assert a == list(alpaca.Backoff(initial=0.5, maximum=4.0, max_attempts=8, seed=1).delays())
    assert a != list(alpaca.Backoff(initial=0.5, maximum=4.0, max_attempts=8, seed=2).delays())
    assert len(a) == 8 and all(0.25 <= d <= 4.0 for d in a) and a[-1] >= 2.0


# -- the CLI --------------------------------------------------------------------------------------


def test_cli_live_synthetic_summary(tmp_path: Path):
    args = ["--data", str(tmp_path), "live", "--source", "synthetic", "--symbols", "SPY", "--speed", "0",
            "--events-per-day", "1000", "--duration", "60", "--clock", "1s", "--json"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["source"] == "synthetic" and summary["gaps"] == 0 and summary["skipped"] == 0
    assert summary["events"] > 500 and summary["instruments_defined"] == 1
    with EventLog.open(tmp_path / "log", readonly=True) as lg:
        assert lg.info().events == summary["events"] + summary["clocks"] + 1
        assert lg.verify().ok
    text = CliRunner().invoke(cli, ["--data", str(tmp_path / "b"), "live", "--source", "synthetic", "--symbols",
                                    "SPY", "--speed", "0", "--events-per-day", "1000", "--duration", "60"])
    assert text.exit_code == 0 and "events" in text.stdout and "clocks" in text.stdout


def test_cli_live_tape_needs_a_source(tmp_path: Path):
    result = CliRunner().invoke(cli, ["--data", str(tmp_path), "live", "--source", "tape"])
    assert result.exit_code == 2 and "--from-log" in result.output


def test_records_carry_the_live_clock(tmp_path: Path):
    synthetic_live(tmp_path / "a")
    with EventLog.open(tmp_path / "a", readonly=True) as lg:
        recs = live.records_of(lg)
    first = codec.decode(recs[0])
    assert first.ts_recv >= START


def test_server_sink_appends_through_the_client(tmp_path: Path):
    from argus.api.server import start_server
    from argus.client.client import ArgusClient

    async def main():
        server = await start_server(tmp_path / "srv", port=0)
        try:
            target = f"127.0.0.1:{server.port}"
            first = await live.run_synthetic(CONFIG, live.ServerSink(lambda: ArgusClient.connect(target)),
                                             live.FakeClock(START, 5_000_000), speed=0.0, duration_s=2.0)
            # a second run finds the symbols already defined on the server
            second = await live.run_synthetic(CONFIG, live.ServerSink(lambda: ArgusClient.connect(target)),
                                              live.FakeClock(START + 10 * NS, 5_000_000), speed=0.0, duration_s=1.0)
            async with await ArgusClient.connect(target) as client:
                got = [ev async for _, ev in client.read()]
            return first, second, got
        finally:
            await server.stop(grace=2)

    first, second, got = asyncio.run(asyncio.wait_for(main(), 30))
    assert first.instruments_defined == 2 and second.instruments_defined == 0
    assert first.clocks == 2 and second.clocks == 1
    assert len(got) == first.last_offset + 1 + second.last_offset - second.first_offset + 1
    assert [e for e in got if e.type == EventType.INSTRUMENT_DEFINED][1].data["symbol"] == "QQQ"
