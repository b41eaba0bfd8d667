"""argus.v1.OptionsService: spread PoP, the SVI surface and a stream of quote anomalies (argus.options).

The servicer reads the server's log: `latest_chain` finds the chain, `spread_pop` and `surface_from_chain`
do the work. Calibration, Monte Carlo, SVI fits and the record scans run in worker threads
(asyncio.to_thread), never on the event loop. WatchAnomalies follows the log with EventLog.subscribe and
pulls the next chunk only once the previous responses are sent, so a slow client is fed as it reads.

Status codes:
  NOT_FOUND            unknown symbol, no option chain of the symbol, expiry not in the chain
  INVALID_ARGUMENT     malformed fields (expiry format, equal or unlisted strikes, fit, ...)
  FAILED_PRECONDITION  the latest chain is older than max_age_ns
  UNAVAILABLE          the server is shutting down
"""

from __future__ import annotations

import asyncio
import datetime as dt
import math

import grpc
import numpy as np
import structlog
from grpc import aio

from argus.api.refusals import Refused, abort, next_or_closing
from argus.events.types import EventType, OptionRight
from argus.log import EventLog
from argus.options.pop import DAY_NS, Chain, StaleChainError, _ny_date, latest_chain, spread_pop
from argus.options.surface import SurfaceResult, surface_from_chain
from argus.v1 import options_service_pb2 as pb
from argus.v1 import options_service_pb2_grpc as pb_grpc

DEFAULT_RATE = 0.05
DEFAULT_Z = 4.0
DEFAULT_PATHS = 200_000

log = structlog.get_logger("argus.api.options")


def _max_age(request) -> int | None:
    if not request.HasField("max_age_ns"):
        return DAY_NS
    return request.max_age_ns if request.max_age_ns > 0 else None


def _opt(request, name: str, default):
    return getattr(request, name) if request.HasField(name) else default


def _chain(event_log: EventLog, symbol: str, at_offset: int | None, max_age_ns: int | None) -> Chain:
    if not symbol:
        raise Refused(grpc.StatusCode.INVALID_ARGUMENT, "field 'symbol' = '' must name a symbol")
    if event_log.instrument_id(symbol) is None:
        raise Refused(grpc.StatusCode.NOT_FOUND, f"field 'symbol' = {symbol!r} is not in the log")
    try:
        return latest_chain(event_log, symbol, at_offset, max_age_ns=max_age_ns)
    except StaleChainError as exc:
        raise Refused(grpc.StatusCode.FAILED_PRECONDITION, f"{exc} (field 'max_age_ns')") from None
    except ValueError as exc:
        raise Refused(grpc.StatusCode.NOT_FOUND, f"field 'symbol' = {symbol!r}: {exc}") from None


def anomalies_of(res: SurfaceResult) -> list[pb.Anomaly]:
    out = []
    for r in res.flagged():
        out.append(pb.Anomaly(
            expiry=_ny_date(int(r["expiry_ns"])), expiry_ns=int(r["expiry_ns"]), strike=float(r["strike"]),
            right=int(r["right"]), k=float(r["k"]), iv_mid=float(r["iv_mid"]), iv_bid=float(r["iv_bid"]),
            iv_ask=float(r["iv_ask"]), iv_fit=float(r["iv_fit"]), residual=float(r["residual"]),
            robust_z=float(r["robust_z"]), flags=int(r["flags"])))
    return out


def fits_of(res: SurfaceResult) -> list[pb.ExpiryFit]:
    atm = res.atm_iv()
    out = []
    for e in sorted(res.fits):
        f = res.fits[e]
        out.append(pb.ExpiryFit(
            expiry=_ny_date(e), expiry_ns=e, years=res.t[e], forward=res.forwards[e],
            forward_from_parity=bool(res.forward_from_parity[e]), a=f.a, b=f.b, rho=f.rho, m=f.m, sigma=f.sigma,
            rmse=f.rmse, success=bool(f.success), atm_iv=atm[e], quotes=int(np.sum(res.records["expiry_ns"] == e))))
    return out


def surface_of(chain: Chain, rate: float, z: float) -> SurfaceResult:
    return surface_from_chain(chain.rows, chain.spot, chain.ts_event, r=rate, z_threshold=z)


def _check_expiry(chain: Chain, expiry: str) -> None:
    try:
        dt.date.fromisoformat(expiry)
    except ValueError:
        raise Refused(grpc.StatusCode.INVALID_ARGUMENT, f"field 'expiry' = {expiry!r} is not YYYY-MM-DD") from None
    listed = chain.expiries()
    if expiry not in listed:
        raise Refused(grpc.StatusCode.NOT_FOUND, f"field 'expiry' = {expiry!r} is not in the {chain.symbol} chain "
                                                 f"at offset {chain.offset}; listed: {', '.join(listed)}")


def _pop(event_log: EventLog, request: pb.SpreadPopRequest, device: str = "auto") -> pb.SpreadPopResponse:
    right = {OptionRight.UNSPECIFIED: "put", OptionRight.PUT: "put", OptionRight.CALL: "call"}.get(request.right)
    if right is None:
        raise Refused(grpc.StatusCode.INVALID_ARGUMENT, f"field 'right' = {request.right} must be an OptionRight")
    fit = {pb.HESTON_FIT_UNSPECIFIED: "expiry", pb.HESTON_FIT_EXPIRY: "expiry", pb.HESTON_FIT_ALL: "all"}.get(request.fit)
    if fit is None:
        raise Refused(grpc.StatusCode.INVALID_ARGUMENT, f"field 'fit' = {request.fit} must be a HestonFit (0 to 2)")
    if request.paths == 1:
        raise Refused(grpc.StatusCode.INVALID_ARGUMENT, "field 'paths' = 1 must be 0 or >= 2")
    for name in ("short_strike", "long_strike"):
        v = getattr(request, name)
        if not (math.isfinite(v) and v > 0):
            raise Refused(grpc.StatusCode.INVALID_ARGUMENT, f"field {name!r} = {v!r} must be a positive strike")
    if request.short_strike == request.long_strike:
        raise Refused(grpc.StatusCode.INVALID_ARGUMENT,
                      f"field 'long_strike' = {request.long_strike:g} must differ from 'short_strike'")
    chain = _chain(event_log, request.symbol, _opt(request, "at_offset", None), _max_age(request))
    _check_expiry(chain, request.expiry)
    try:
        out = spread_pop(chain, request.expiry, request.short_strike, request.long_strike, right,
                         rate=_opt(request, "rate", DEFAULT_RATE), div=_opt(request, "div", None),
                         paths=request.paths or DEFAULT_PATHS, steps=request.steps or None,
                         seed=_opt(request, "seed", None), fit=fit, fit_evals=request.fit_evals or 20, device=device)
    except ValueError as exc:
        raise Refused(grpc.StatusCode.INVALID_ARGUMENT, str(exc)) from None
    h = out["heston"]
    return pb.SpreadPopResponse(
        symbol=out["symbol"], snapshot_offset=out["snapshot_offset"], ts=out["ts"], spot=out["spot"],
        expiry=out["expiry"], years=out["years"],
        right=int(OptionRight.PUT if out["right"] == "put" else OptionRight.CALL),
        short_strike=out["short"], long_strike=out["long"], credit=out["credit"], width=out["width"],
        max_loss=out["max_loss"], rate=out["rate"], div=out["div"],
        heston=pb.HestonParams(v0=h["v0"], kappa=h["kappa"], theta=h["theta"], sigma=h["sigma"], rho=h["rho"]),
        fit_rmse=out["fit_rmse"], feller=bool(out["feller"]), pop=out["pop"], pop_se=out["pop_se"],
        expected_pnl=out["expected_pnl"], expected_pnl_se=out["expected_pnl_se"], p_touch=out["p_touch"],
        p_touch_se=out["p_touch_se"], p_max_loss=out["p_max_loss"], p_max_loss_se=out["p_max_loss_se"],
        q05=out["q05"], q50=out["q50"], q95=out["q95"], lognormal_pop=out["lognormal_pop"],
        lognormal_iv=out["lognormal_iv"], paths=out["paths"], steps=out["steps"], seed=out["seed"],
        device=out["device"], seconds=out["seconds"])


def _surface(event_log: EventLog, request: pb.SurfaceRequest) -> pb.SurfaceResponse:
    chain = _chain(event_log, request.symbol, _opt(request, "at_offset", None), _max_age(request))
    res = surface_of(chain, _opt(request, "rate", DEFAULT_RATE), _opt(request, "z", DEFAULT_Z))
    return pb.SurfaceResponse(symbol=chain.symbol, snapshot_offset=chain.offset, ts=chain.ts_event, spot=chain.spot,
                              fits=fits_of(res), anomalies=anomalies_of(res))


def chain_snapshots(chunk, instrument_id: int | None) -> list[tuple[int, int, bytes]]:
    """(offset, instrument_id, record) of the OptionChainSnapshots in a chunk's [start, stop)."""
    from argus.events.layout import HEADER_DTYPE
    from argus.kernels import codec as kcodec

    body = np.frombuffer(chunk.body, dtype=np.uint8)
    pos = kcodec.record_positions(body, int(EventType.OPTION_CHAIN_SNAPSHOT))
    if pos.size == 0:
        return []
    offs = chunk.first_offset + np.searchsorted(kcodec.index_records(body), pos)
    out = []
    for p, off in zip(pos.tolist(), offs.tolist(), strict=True):
        if not (chunk.start <= off < chunk.stop):
            continue
        h = np.frombuffer(body, dtype=HEADER_DTYPE, count=1, offset=p)[0]
        iid = int(h["instrument_id"])
        if instrument_id is None or iid == instrument_id:
            out.append((int(off), iid, bytes(body[p:p + int(h["length"])])))
    return out


def _watch_batch(event_log: EventLog, chunk, instrument_id: int | None, rate: float, z: float,
                 symbols: dict[int, str]) -> list[pb.WatchAnomaliesResponse]:
    from argus.events import codec

    out = []
    for off, iid, rec in chain_snapshots(chunk, instrument_id):
        if iid not in symbols:
            symbols.update(event_log.symbols())
        ev = codec.decode(rec)
        chain = Chain(symbol=symbols.get(iid, str(iid)), offset=off, ts_event=ev.ts_event, ts_recv=ev.ts_recv,
                      spot=float(ev.data["underlying_price"]), rows=ev.data["rows"], ref_ts_recv=ev.ts_recv)
        res = surface_of(chain, rate, z)
        out.append(pb.WatchAnomaliesResponse(symbol=chain.symbol, snapshot_offset=off, ts=chain.ts_event,
                                             spot=chain.spot, anomalies=anomalies_of(res)))
    return out


class OptionsServicer(pb_grpc.OptionsServiceServicer):
    """argus.v1.OptionsService over the server's EventLog.

    `device`: where SpreadPop's Monte Carlo runs ("auto": a CUDA GPU through argus.options.gpu when one is
    present, else the CPU; "cpu"; "gpu"), resolved once here so that a "gpu" server without a device fails at
    start; each response's `device` field says which one ran."""

    def __init__(self, event_log: EventLog, closing: asyncio.Event, device: str = "auto"):
        from argus.options.pricing import resolve_device

        self.log = event_log
        self.closing = closing
        self.device = resolve_device(device)

    def _check_open(self) -> None:
        if self.closing.is_set():
            raise Refused(grpc.StatusCode.UNAVAILABLE, "the server is shutting down")

    async def _abort(self, context: aio.ServicerContext, exc: BaseException, method: str) -> None:
        await abort(context, exc, method, log)

    async def SpreadPop(self, request, context):  # noqa: N802 - gRPC method name
        try:
            self._check_open()
            return await asyncio.to_thread(_pop, self.log, request, self.device)
        except Exception as exc:  # noqa: BLE001 - every error becomes a status
            await self._abort(context, exc, "SpreadPop")

    async def Surface(self, request, context):  # noqa: N802
        try:
            self._check_open()
            return await asyncio.to_thread(_surface, self.log, request)
        except Exception as exc:  # noqa: BLE001
            await self._abort(context, exc, "Surface")

    async def WatchAnomalies(self, request, context):  # noqa: N802
        subscription = None
        try:
            self._check_open()
            iid = None
            if request.symbol:
                iid = self.log.instrument_id(request.symbol)
                if iid is None:
                    raise Refused(grpc.StatusCode.NOT_FOUND, f"field 'symbol' = {request.symbol!r} is not in the log")
            head = self.log.head()
            start = request.from_offset if request.HasField("from_offset") else head
            if start > head:
                raise Refused(grpc.StatusCode.OUT_OF_RANGE,
                              f"field 'from_offset' = {start} must be <= the log's head ({head})")
            rate, z = _opt(request, "rate", DEFAULT_RATE), _opt(request, "z", DEFAULT_Z)
            symbols = self.log.symbols()
            subscription = self.log.subscribe(start)
            while True:
                chunk = await next_or_closing(subscription, self.closing,
                                              "the server is shutting down: watch again to resume")
                for msg in await asyncio.to_thread(_watch_batch, self.log, chunk, iid, rate, z, symbols):
                    yield msg
        except Exception as exc:  # noqa: BLE001
            await self._abort(context, exc, "WatchAnomalies")
        finally:
            if subscription is not None:
                await subscription.aclose()

