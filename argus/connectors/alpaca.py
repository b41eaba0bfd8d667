"""Alpaca market-data stream v2 (trades, quotes, minute bars) as a live source, over aiohttp websockets.

Protocol (https://docs.alpaca.markets/docs/streaming-market-data): on connect the server sends
`[{"T":"success","msg":"connected"}]`; the client sends `{"action":"auth","key":..,"secret":..}` and gets
`[{"T":"success","msg":"authenticated"}]` (or `[{"T":"error","code":402,"msg":"auth failed"}]`); then
`{"action":"subscribe","trades":[..],"quotes":[..],"bars":[..]}`, answered by a `{"T":"subscription",..}`
message. Data messages are JSON arrays of objects:

  trade {"T":"t","S":sym,"i":id,"x":exch,"p":price,"s":size,"t":time,"c":[..],"z":tape}
  quote {"T":"q","S":sym,"bx":..,"bp":bid,"bs":bidsize,"ax":..,"ap":ask,"as":asksize,"t":time,..}
  bar   {"T":"b","S":sym,"o":..,"h":..,"l":..,"c":..,"v":..,"t":bar start,"n":trades,"vw":vwap}
  error {"T":"error","code":..,"msg":..}

Mapping: Trade (price, size, trade_id = i, aggressor unknown), Quote (bid, ask, sizes), Bar (minute
bars: ts_event = t + 60 s, the bar's close, interval_ns = 60 s, trade_count = n). ts_event is parsed
from "t" (RFC 3339, up to nanoseconds); ts_recv comes from the live clock. Each symbol is defined
(EQUITY, USD) the first time it is seen. Bad messages (unknown fields, crossed quotes, non-positive
prices or sizes, a bar whose high/low do not bound it, an unparseable time) are counted by reason in
`LiveStats.skip_reasons` and never written.

Reconnect: a dropped connection (closed by the server, reset, or any network error) is retried after
an exponential backoff, bounded by `Backoff.maximum` and `Backoff.max_attempts`, jittered by a
`random.Random(seed)` (seeded, so the delays of a run are reproducible); the client then re-authenticates
and re-subscribes. Each disconnected interval (from the moment the drop was seen to the moment the
subscription was confirmed again, on the live clock) is a `Gap` in the stats and one Annotation event in
the log (ts_event = gap start, ts_recv = gap end, tags "gap", "reconnect" and the bounds in ns). An
authentication error is not retried: `AlpacaAuthError`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import math
import os
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp

from argus.connectors.live import NS, Clock, Gap, LiveStats, LiveWriter, Sink, format_ns
from argus.errors import ArgusError
from argus.events import codec
from argus.events.types import EventType, InstrumentKind

DEFAULT_URL = "wss://stream.data.alpaca.markets/v2/iex"
BAR_NS = 60 * NS
#: Error codes after which the stream cannot go on (authentication, limits, subscription rights).
FATAL_CODES = frozenset({401, 402, 403, 404, 406, 409})


class AlpacaError(ArgusError):
    """The stream refused the client or broke its protocol."""


class AlpacaAuthError(AlpacaError):
    """The stream refused the key and secret (not retried)."""


class _Dropped(Exception):
    """The connection went away."""


@dataclass(frozen=True)
class Backoff:
    """Reconnect delays: initial * 2**(attempt-1), at most `maximum` seconds, times a jitter factor in
    [1 - jitter, 1] from a generator seeded with `seed`; `max_attempts` consecutive failures give up."""

    initial: float = 0.5
    maximum: float = 30.0
    jitter: float = 0.5
    max_attempts: int | None = 20
    seed: int = 0

    def delays(self):
        rng = random.Random(self.seed)
        attempt = 0
        while self.max_attempts is None or attempt < self.max_attempts:
            attempt += 1
            base = min(self.maximum, self.initial * 2 ** (attempt - 1))
            yield base * (1.0 - self.jitter * rng.random())


def credentials(key: str | None, secret: str | None) -> tuple[str, str]:
    """The key and secret: given, or from APCA_API_KEY_ID / APCA_API_SECRET_KEY."""
    key = key or os.environ.get("APCA_API_KEY_ID")
    secret = secret or os.environ.get("APCA_API_SECRET_KEY")
    if not key or not secret:
        raise ValueError("alpaca needs --key/--secret or APCA_API_KEY_ID / APCA_API_SECRET_KEY")
    return key, secret


def parse_time(text: Any) -> int:
    """ns UTC of an RFC 3339 time such as 2021-02-22T15:51:44.208123456Z (or with an offset)."""
    if not isinstance(text, str) or "T" not in text:
        raise ValueError(f"t = {text!r} is not an RFC 3339 time")
    s = text.strip()
    if s.endswith(("Z", "z")):
        body, offset = s[:-1], "+00:00"
    elif len(s) > 6 and s[-6] in "+-" and s[-3] == ":":
        body, offset = s[:-6], s[-6:]
    else:
        raise ValueError(f"t = {text!r} has no UTC offset")
    frac_ns = 0
    if "." in body:
        body, frac = body.split(".", 1)
        if not frac.isdigit() or len(frac) > 9:
            raise ValueError(f"t = {text!r} has a bad fraction of a second")
        frac_ns = int(frac.ljust(9, "0"))
    secs = dt.datetime.fromisoformat(body + offset)
    return int(secs.timestamp()) * NS + frac_ns


def _positive(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x) and x > 0


def _non_negative(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x) and x >= 0


class AlpacaStream:
    """One run of the Alpaca stream into a LiveWriter."""

    def __init__(self, writer: LiveWriter, *, url: str = DEFAULT_URL, key: str, secret: str,
                 trades: Sequence[str] = (), quotes: Sequence[str] = (), bars: Sequence[str] = (),
                 backoff: Backoff | None = None, handshake_timeout: float = 10.0):
        self.writer = writer
        self.url = url
        self.key = key
        self.secret = secret
        self.subscription = {"trades": list(trades), "quotes": list(quotes), "bars": list(bars)}
        self.backoff = backoff or Backoff()
        self.handshake_timeout = handshake_timeout
        self.market_events = 0

    @property
    def stats(self) -> LiveStats:
        return self.writer.stats

    # -- messages --------------------------------------------------------------------------------

    def handle(self, item: Any, ts_recv: int) -> None:
        """Write one data message (or count it as skipped)."""
        if not isinstance(item, dict):
            self.stats.skip("not an object")
            return
        kind = item.get("T")
        if kind == "error":
            code, msg = item.get("code"), item.get("msg")
            if code in FATAL_CODES:
                raise (AlpacaAuthError if code in (401, 402, 404) else AlpacaError)(
                    f"alpaca stream error {code}: {msg}")
            self.stats.errors.append(f"{code}: {msg}")
            return
        if kind in ("success", "subscription"):
            return
        if kind not in ("t", "q", "b"):
            self.stats.skip(f"message type {kind!r}")
            return
        symbol = item.get("S")
        if not isinstance(symbol, str) or not symbol or symbol != symbol.strip():
            self.stats.skip("symbol")
            return
        try:
            ts = parse_time(item.get("t"))
        except (ValueError, OverflowError):
            self.stats.skip("time")
            return
        if kind == "t":
            record = self._trade(item, symbol, ts, ts_recv)
        elif kind == "q":
            record = self._quote(item, symbol, ts, ts_recv)
        else:
            record = self._bar(item, symbol, ts, ts_recv)
        if record is not None:
            self.writer.add(record)
            self.market_events += 1

    def _iid(self, symbol: str, ts_recv: int) -> int:
        return self.writer.instrument(symbol, ts_recv, kind=InstrumentKind.EQUITY, multiplier=1.0, currency="USD")

    def _trade(self, m: dict, symbol: str, ts: int, ts_recv: int) -> bytes | None:
        price, size, tid = m.get("p"), m.get("s"), m.get("i", 0)
        if not _positive(price):
            self.stats.skip("trade price")
            return None
        if not _positive(size):
            self.stats.skip("trade size")
            return None
        if not isinstance(tid, int) or isinstance(tid, bool) or not (0 <= tid < 2**64):
            self.stats.skip("trade id")
            return None
        iid = self._iid(symbol, ts_recv)
        return codec.encode_columns(EventType.TRADE, iid, [ts], [ts_recv], price=price, size=size,
                                    trade_id=tid).tobytes()

    def _quote(self, m: dict, symbol: str, ts: int, ts_recv: int) -> bytes | None:
        bid, ask, bs, as_ = m.get("bp"), m.get("ap"), m.get("bs", 0), m.get("as", 0)
        if not (_positive(bid) and _positive(ask)):
            self.stats.skip("quote price")
            return None
        if ask < bid:
            self.stats.skip("crossed quote")
            return None
        if not (_non_negative(bs) and _non_negative(as_)):
            self.stats.skip("quote size")
            return None
        iid = self._iid(symbol, ts_recv)
        return codec.encode_columns(EventType.QUOTE, iid, [ts], [ts_recv], bid=bid, ask=ask, bid_size=bs,
                                    ask_size=as_).tobytes()

    def _bar(self, m: dict, symbol: str, ts: int, ts_recv: int) -> bytes | None:
        o, h, lo, c = (m.get(k) for k in ("o", "h", "l", "c"))
        v, n = m.get("v", 0), m.get("n", 0)
        if not all(_positive(x) for x in (o, h, lo, c)):
            self.stats.skip("bar price")
            return None
        if h < max(o, lo, c) or lo > min(o, c):
            self.stats.skip("bar range")
            return None
        if not _non_negative(v) or not isinstance(n, int) or isinstance(n, bool) or n < 0:
            self.stats.skip("bar volume")
            return None
        iid = self._iid(symbol, ts_recv)
        return codec.encode_columns(EventType.BAR, iid, [ts + BAR_NS], [ts_recv], open=o, high=h, low=lo, close=c,
                                    volume=v, interval_ns=BAR_NS, trade_count=n).tobytes()

    # -- the connection --------------------------------------------------------------------------

    async def _receive_json(self, ws: aiohttp.ClientWebSocketResponse, timeout: float | None) -> list:
        msg = await ws.receive(timeout=timeout)
        if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED,
                        aiohttp.WSMsgType.ERROR):
            raise _Dropped(f"connection closed ({msg.type.name})")
        if msg.type not in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
            return []
        try:
            data = json.loads(msg.data)
        except (ValueError, UnicodeDecodeError):
            self.stats.skip("not JSON")
            return []
        return data if isinstance(data, list) else [data]

    async def _expect(self, ws, what: str) -> None:
        try:
            items = await self._receive_json(ws, self.handshake_timeout)
        except TimeoutError:
            raise _Dropped(f"no {what!r} message within {self.handshake_timeout}s") from None
        for item in items:
            if isinstance(item, dict) and item.get("T") == "error":
                code, msg = item.get("code"), item.get("msg")
                cls = AlpacaAuthError if what == "authenticated" or code in (401, 402, 404) else AlpacaError
                raise cls(f"alpaca stream error {code}: {msg} (waiting for {what!r})")
            if isinstance(item, dict) and item.get("T") == "success" and item.get("msg") == what:
                return
        raise AlpacaError(f"alpaca stream: expected [{{'T': 'success', 'msg': {what!r}}}], got {items!r}")

    async def _session(self, session: aiohttp.ClientSession, on_subscribed) -> None:
        async with session.ws_connect(self.url, autoping=True, heartbeat=30.0) as ws:
            await self._expect(ws, "connected")
            await ws.send_str(json.dumps({"action": "auth", "key": self.key, "secret": self.secret}))
            await self._expect(ws, "authenticated")
            await ws.send_str(json.dumps({"action": "subscribe", **self.subscription}))
            on_subscribed()
            while True:
                items = await self._receive_json(ws, None)
                now = self.writer.now()
                for item in items:
                    self.handle(item, now)
                await self.writer.flush()
                if self._done():
                    return

    def _done(self) -> bool:
        if self.stop is not None and self.stop.is_set():
            return True
        if self.max_events is not None and self.market_events >= self.max_events:
            return True
        return self.deadline_ns is not None and self.writer.clock.peek_ns() >= self.deadline_ns

    async def run(self, *, duration_s: float | None = None, max_events: int | None = None,
                  stop: asyncio.Event | None = None) -> LiveStats:
        """Stream until `duration_s` (live clock), `max_events` market events, or `stop` is set."""
        clock: Clock = self.writer.clock
        self.stop = stop
        self.max_events = max_events
        self.deadline_ns = None if duration_s is None else clock.peek_ns() + int(duration_s * NS)
        gap_start: int | None = None
        delays = None
        connected_once = False

        def on_subscribed() -> None:
            nonlocal gap_start, delays, connected_once
            connected_once = True
            delays = None
            if gap_start is not None:
                end = self.writer.now()
                gap = Gap(gap_start, end)
                self.stats.gaps.append(gap)
                self.writer.annotate(
                    f"gap {format_ns(gap.start_ns)}\u2013{format_ns(gap.end_ns)} (reconnect)", gap.start_ns, end,
                    ["gap", "reconnect", f"start_ns={gap.start_ns}", f"end_ns={gap.end_ns}",
                     f"duration_ns={gap.duration_ns}"])
                gap_start = None

        async with aiohttp.ClientSession() as session:
            while not self._done():
                try:
                    task = asyncio.ensure_future(self._session(session, on_subscribed))
                    waiters = [task]
                    if stop is not None:
                        waiters.append(asyncio.ensure_future(stop.wait()))
                    if self.deadline_ns is not None and clock.realtime:
                        waiters.append(asyncio.ensure_future(clock.sleep_until(self.deadline_ns)))
                    try:
                        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
                    finally:
                        for w in waiters:
                            if not w.done():
                                w.cancel()
                        await asyncio.gather(*waiters, return_exceptions=True)
                    if not task.cancelled():
                        task.result()  # raises what the session raised
                    if self._done() or task.cancelled():
                        break
                    raise _Dropped("server closed the stream")
                except AlpacaError:
                    raise
                except (_Dropped, aiohttp.ClientError, ConnectionError, OSError, TimeoutError) as exc:
                    if self._done():
                        break
                    if connected_once and gap_start is None:
                        gap_start = self.writer.now()
                        self.stats.reconnects += 1
                    if delays is None:
                        delays = self.backoff.delays()
                    delay = next(delays, None)
                    if delay is None:
                        raise AlpacaError(f"alpaca stream: gave up after {self.backoff.max_attempts} reconnect "
                                          f"attempts ({exc})") from exc
                    await self.writer.flush()
                    await clock.sleep(delay)
        return self.stats


async def run_alpaca(sink: Sink, clock: Clock, *, url: str = DEFAULT_URL, key: str | None = None,
                     secret: str | None = None, symbols: Sequence[str] = (), trades: bool = True,
                     quotes: bool = True, bars: bool = True, clock_ns: int = NS, duration_s: float | None = None,
                     max_events: int | None = None, stop: asyncio.Event | None = None,
                     backoff: Backoff | None = None) -> LiveStats:
    """Stream Alpaca's trades, quotes and minute bars of `symbols` into `sink` (see the module docstring)."""
    key, secret = credentials(key, secret)
    if not symbols:
        raise ValueError("symbols = () must name at least one symbol")
    stats = LiveStats("alpaca")
    writer = LiveWriter(sink, clock, stats, clock_ns=clock_ns)
    stream = AlpacaStream(writer, url=url, key=key, secret=secret, trades=symbols if trades else (),
                          quotes=symbols if quotes else (), bars=symbols if bars else (), backoff=backoff)
    async with writer.running():
        await stream.run(duration_s=duration_s, max_events=max_events, stop=stop)
    return stats
