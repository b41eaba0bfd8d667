"""The options projection: PoP and IV-anomaly records from the OptionChainSnapshot events of the log
(issue 6, item 8; DESIGN.md §5, §6).

For every OptionChainSnapshot of a configured symbol (and, when `times` is set, taken at one of those New
York times of day) whose age at decision time (its own `ts_recv` minus its `ts_event`) is at most
`max_age`, the projection emits, at the snapshot's offset:

- `option_pop`: the `top` credit spreads of the chain by the candidate filter of
  `argus.analytics.spreads.credit_spreads` (right, |short delta| range, days-to-expiry range; natural
  credit; best credit/width first), each with the Heston Monte Carlo probability of profit and P&L
  statistics computed exactly as `argus.options.pop.spread_pop` does (`vertical_pop` below is that
  computation), with seed = the snapshot's offset, beside the lognormal PoP. One calibration per distinct
  (expiry, dividend) of the candidates (fit="expiry") or per dividend (fit="all") is shared by them.
- `option_anomalies`: the flagged quotes of the chain's SVI surface (`surface_from_chain(...).flagged()`:
  robust-z outliers, butterfly and calendar violations), one row per quote.

The projection is a pure function of each snapshot record and the configuration: no state across events
(its snapshot holds only the running digests of what it emitted), no wall clock, and randomness only from
the counter-based Philox stream keyed by the snapshot's offset. So chunk and event mode, and a replay from
any offset, give the same rows. It runs in Python (the numerics are numpy/scipy and the Cython Monte Carlo
kernel); it only decodes OptionChainSnapshot records, found by the Cython record scan.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import struct
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

from argus.events.layout import HEADER_DTYPE
from argus.events.types import EventType, OptionRight
from argus.kernels.outputs import BlockDigest

__all__ = ["OPTION_ANOMALY_DTYPE", "OPTION_POP_DTYPE", "OptionsProjection", "implied_div", "lognormal_pop",
           "vertical_pop"]

YEAR_NS = 365 * 86_400 * 1_000_000_000
NEW_YORK = ZoneInfo("America/New_York")
_SNAPSHOT_MAGIC = b"ARGO"
_SNAPSHOT_FORMAT = 1

#: status of an option_pop row
POP_OK = 0
POP_NO_FIT = 1  # fewer than 5 usable OTM quotes for the Heston fit: Monte Carlo fields are NaN

OPTION_POP_DTYPE = np.dtype([
    ("offset", "<u8"),  # the snapshot's log offset (also the Monte Carlo seed)
    ("instrument_id", "<u4"),
    ("rank", "<u2"),  # 0 = best credit/width
    ("right", "<u2"),  # OptionRight
    ("ts_event", "<i8"),  # the snapshot's ts_event
    ("expiry_ns", "<i8"),
    ("short_strike", "<f8"),
    ("long_strike", "<f8"),
    ("width", "<f8"),
    ("credit", "<f8"),  # natural: short.bid - long.ask
    ("max_loss", "<f8"),
    ("spot", "<f8"),
    ("years", "<f8"),  # time to expiry, ACT/365 from ts_event
    ("div", "<f8"),  # dividend yield implied by put-call parity at the expiry
    ("v0", "<f8"),
    ("kappa", "<f8"),
    ("theta", "<f8"),
    ("sigma", "<f8"),
    ("rho", "<f8"),
    ("fit_rmse", "<f8"),
    ("pop", "<f8"),  # Heston Monte Carlo P(P&L at expiry > 0)
    ("pop_se", "<f8"),
    ("expected_pnl", "<f8"),
    ("expected_pnl_se", "<f8"),
    ("p_touch", "<f8"),  # P(the path touches the short strike before expiry)
    ("p_touch_se", "<f8"),
    ("p_max_loss", "<f8"),
    ("p_max_loss_se", "<f8"),
    ("q05", "<f8"),
    ("q50", "<f8"),
    ("q95", "<f8"),
    ("lognormal_pop", "<f8"),
    ("lognormal_iv", "<f8"),
    ("seed", "<u8"),
    ("paths", "<u4"),
    ("steps", "<u4"),
    ("fit_n", "<u4"),
    ("status", "u1"),  # POP_OK or POP_NO_FIT
    ("feller", "u1"),
    ("_pad", "<u2"),
])

OPTION_ANOMALY_DTYPE = np.dtype([
    ("offset", "<u8"),  # the snapshot's log offset
    ("instrument_id", "<u4"),
    ("right", "<u2"),
    ("_pad", "<u2"),
    ("ts_event", "<i8"),
    ("expiry_ns", "<i8"),
    ("strike", "<f8"),
    ("k", "<f8"),  # ln(K / F)
    ("iv", "<f8"),  # the quote's mid IV
    ("iv_fit", "<f8"),  # the expiry's SVI fit at k
    ("residual", "<f8"),
    ("robust_z", "<f8"),
    ("flags", "<u4"),  # argus.analytics.surface FLAG_* bits
    ("_pad2", "<u4"),
])


# -- the numerics of one vertical (shared with argus.options.pop.spread_pop) ------------------------


def implied_div(rows: np.ndarray, spot: float, t: float, r: float) -> float:
    """Median dividend yield implied by put–call parity at the strikes nearest the money (0 if none)."""
    calls = rows[rows["right"] == int(OptionRight.CALL)]
    puts = rows[rows["right"] == int(OptionRight.PUT)]
    common, ic, ip = np.intersect1d(calls["strike"], puts["strike"], return_indices=True)
    if common.size == 0:
        return 0.0
    c, p = calls[ic], puts[ip]
    ok = (c["bid"] > 0) & (p["bid"] > 0) & (c["ask"] >= c["bid"]) & (p["ask"] >= p["bid"])
    if not ok.any():
        return 0.0
    k = common[ok]
    diff = 0.5 * (c["bid"][ok] + c["ask"][ok]) - 0.5 * (p["bid"][ok] + p["ask"][ok])
    near = np.argsort(np.abs(k - spot))[:5]
    fwd = k[near] + math.exp(r * t) * diff[near]
    fwd = fwd[fwd > 0]
    if fwd.size == 0:
        return 0.0
    return float(np.median(r - np.log(fwd / spot) / t))


def lognormal_pop(spot, t, r, q, iv, short, long, right, credit) -> float:
    """P(P&L at expiry > 0) for the vertical under a risk-neutral lognormal S_T with volatility iv."""
    from scipy.stats import norm

    put = right == "put"
    # P&L is monotone in S_T between its values at S -> 0 and S -> inf.
    pnl0 = credit - short + long if put else credit
    pnl_inf = credit if put else credit + short - long
    if min(pnl0, pnl_inf) > 0:
        return 1.0
    if max(pnl0, pnl_inf) <= 0:
        return 0.0
    if put:
        be = short - credit if short > long else long + credit
    else:
        be = short + credit if short < long else long - credit
    d2 = (math.log(spot / be) + (r - q - 0.5 * iv * iv) * t) / (iv * math.sqrt(t))
    p_above = float(norm.cdf(d2))
    return p_above if pnl_inf > 0 else 1.0 - p_above


def _calibrate(rows, spot, ts_event, expiry_ns, rate, q, fit, fit_evals):
    """The Heston fit of spread_pop: OTM mids with bid > 0, weights 1/max(spread, 0.01) capped at 100, of
    the expiry (fit="expiry") or of every expiry at least a day out (fit="all"). (result, n) or (None, n)."""
    from argus.analytics.heston import calibrate_heston

    cal = rows if fit == "all" else rows[rows["expiry_ns"] == expiry_ns]
    cal_t = (cal["expiry_ns"] - ts_event) / YEAR_NS
    mid = 0.5 * (cal["bid"] + cal["ask"])
    fwd = spot * np.exp((rate - q) * cal_t)
    is_call = cal["right"] == int(OptionRight.CALL)
    otm = np.where(is_call, cal["strike"] >= fwd, cal["strike"] < fwd)
    ok = (cal["bid"] > 0) & (cal["ask"] >= cal["bid"]) & np.isfinite(mid) & otm
    ok &= cal_t >= (1.0 / 365.0 if fit == "all" else 0.0)
    ok &= cal_t > 0
    n = int(ok.sum())
    if n < 5:
        return None, n
    weights = np.minimum(1.0 / np.maximum(cal["ask"][ok] - cal["bid"][ok], 0.01), 100.0)
    res = calibrate_heston(spot, rate, q, cal["strike"][ok], cal_t[ok], mid[ok],
                           np.where(is_call[ok], "call", "put"), weights=weights,
                           xtol=1e-6, ftol=1e-6, gtol=1e-6, max_nfev=int(fit_evals))
    return res, n


def vertical_pop(rows: np.ndarray, spot: float, ts_event: int, expiry_ns: int, short: float, long: float,
                 right: str, *, offset: int, rate: float = 0.05, div: float | None = None, paths: int = 200_000,
                 steps: int | None = None, seed: int | None = None, fit: str = "expiry", fit_evals: int = 20,
                 calibrations: dict | None = None, mc_spread=None) -> dict:
    """PoP and P&L statistics of the vertical (short `short`, long `long`, both `right`, expiring at
    `expiry_ns`) from one chain's rows (OPTION_ROW_DTYPE); see argus.options.pop for the method.
    `calibrations` (a dict) caches fits by (fit, expiry, dividend) across calls on the same chain.
    `mc_spread`: the Monte Carlo (default the CPU kernel, argus.kernels.heston_mc.mc_spread, which the
    projection always uses; argus.options.pop passes the GPU twin for --device gpu).
    Raises ValueError when a strike is not listed or too few quotes support the fit."""
    from argus.analytics.black_scholes import implied_vol

    if mc_spread is None:
        from argus.kernels.heston_mc import mc_spread

    if right not in ("put", "call"):
        raise ValueError(f"right={right!r}: must be 'put' or 'call'")
    if fit not in ("expiry", "all"):
        raise ValueError(f"fit={fit!r}: must be 'expiry' or 'all'")
    short, long = float(short), float(long)
    if short == long:
        raise ValueError("short and long strikes must differ")
    sel = rows[rows["expiry_ns"] == expiry_ns]
    t = (int(expiry_ns) - int(ts_event)) / YEAR_NS
    if not t > 0:
        raise ValueError("the expiry is not after the snapshot time")
    code = int(OptionRight.PUT if right == "put" else OptionRight.CALL)
    side = sel[sel["right"] == code]

    def leg(k: float) -> np.void:
        m = side[np.isclose(side["strike"], k, rtol=0, atol=1e-9)]
        if m.size == 0:
            raise ValueError(f"strike {k:g} {right} is not listed for that expiry; listed: "
                             f"{', '.join(f'{x:g}' for x in np.sort(side['strike']))}")
        return m[0]

    rs, rl = leg(short), leg(long)
    credit = float(rs["bid"] - rl["ask"])
    q = implied_div(sel, spot, t, rate) if div is None else float(div)
    key = (fit, int(expiry_ns) if fit == "expiry" else None, q, float(rate), int(fit_evals))
    cache = {} if calibrations is None else calibrations
    if key not in cache:
        cache[key] = _calibrate(rows, spot, ts_event, int(expiry_ns), rate, q, fit, fit_evals)
    fitres, fit_n = cache[key]
    if fitres is None:
        raise ValueError(f"only {fit_n} usable OTM quotes for the Heston fit (need 5)")
    hp = fitres.params

    # Lognormal PoP with the short strike's IV (the row's, else implied from its mid, else the ATM IV).
    iv = float(rs["iv"])
    if not (math.isfinite(iv) and iv > 0):
        iv = float(implied_vol(0.5 * (rs["bid"] + rs["ask"]), spot, short, t, rate, q, right == "call"))
    if not (math.isfinite(iv) and iv > 0):
        atm = side[np.argmin(np.abs(side["strike"] - spot))]
        iv = float(atm["iv"]) if math.isfinite(atm["iv"]) and atm["iv"] > 0 else 0.2
    ln_pop = lognormal_pop(spot, t, rate, q, iv, short, long, right, credit)

    n_steps = max(16, math.ceil(50 * t)) if steps is None else int(steps)
    mc_seed = int(offset) if seed is None else int(seed)
    mc = mc_spread(spot, rate, q, hp.v0, hp.kappa, hp.theta, hp.sigma, hp.rho, t, short, long, right, credit,
                   int(paths), n_steps, mc_seed)
    return {"years": t, "credit": credit, "width": abs(short - long), "max_loss": abs(short - long) - credit,
            "div": q, "params": hp, "fit": fitres, "fit_n": fit_n, "mc": mc, "lognormal_pop": ln_pop,
            "lognormal_iv": iv, "steps": n_steps, "seed": mc_seed}


# -- the projection ---------------------------------------------------------------------------------


class _Buffer:
    """Rows of one output between drains, and the block-chained digest of every row drained
    (argus.kernels.outputs.BlockDigest: the same whatever the drain sizes)."""

    def __init__(self, dtype: np.dtype):
        self.dtype = dtype
        self.parts: list[np.ndarray] = []
        self.rows_emitted = 0
        self.digest = BlockDigest(dtype.itemsize)

    def push(self, rows: np.ndarray) -> None:
        if len(rows):
            self.parts.append(rows)
            self.rows_emitted += len(rows)

    def __len__(self) -> int:
        return sum(len(p) for p in self.parts)

    def drain(self) -> np.ndarray:
        out = np.concatenate(self.parts) if self.parts else np.zeros(0, self.dtype)
        self.parts = []
        if len(out):
            self.digest.update(out)
        return out


class OptionsProjection:
    """Walked like a reducer (apply_chunk / apply_record, outputs, snapshot / restore, state_digest) by
    argus.projections.engine; see the module doc. `params` is the validated `options` section of the
    projection configuration; `symbol_ids` maps the log's symbols to instrument ids."""

    def __init__(self, name: str, config_hash: bytes, params: dict[str, Any], symbol_ids: dict[str, int]):
        from argus.events.durations import parse_duration

        self.name = name
        self.config_hash = config_hash
        self.params = params
        symbols = params["symbols"]
        self.instruments = None if symbols == "all" else {symbol_ids[s] for s in symbols if s in symbol_ids}
        self.max_age_ns = parse_duration(params["max_age"], "options.max_age")
        self.times = None if params["times"] is None else {tuple(int(x) for x in t.split(":"))
                                                           for t in params["times"]}
        self.pop = _Buffer(OPTION_POP_DTYPE)
        self.anomalies = _Buffer(OPTION_ANOMALY_DTYPE)
        self._snap_type = int(EventType.OPTION_CHAIN_SNAPSHOT)

    def outputs(self) -> list[tuple[str, _Buffer]]:
        return [("option_pop", self.pop), ("option_anomalies", self.anomalies)]

    # -- feeding ----------------------------------------------------------------------------------

    def apply_chunk(self, body, first_offset: int, lo: int, hi: int) -> None:
        from argus.events.codec import positions_of_type

        offsets, positions = positions_of_type(body, first_offset, EventType.OPTION_CHAIN_SNAPSHOT, lo, hi)
        if not len(offsets):
            return
        view = memoryview(body).cast("B")
        for off, pos in zip(offsets.tolist(), positions.tolist(), strict=True):
            length = int.from_bytes(view[pos:pos + 4], "little")
            self._snapshot(view[pos:pos + length], off)

    def apply_record(self, record, offset: int) -> None:
        if int.from_bytes(record[4:6], "little") == self._snap_type:
            self._snapshot(record, offset)

    def _wanted(self, iid: int, ts_event: int, ts_recv: int) -> bool:
        if self.instruments is not None and iid not in self.instruments:
            return False
        if ts_recv - ts_event > self.max_age_ns:  # stale at decision time (now = the event's ts_recv)
            return False
        if self.times is not None:
            local = dt.datetime.fromtimestamp(ts_event // 1_000_000_000, tz=NEW_YORK)
            if (local.hour, local.minute) not in self.times:
                return False
        return True

    def _snapshot(self, record, offset: int) -> None:
        from argus.events import codec

        head = np.frombuffer(record, dtype=HEADER_DTYPE, count=1)[0]
        iid, ts_event, ts_recv = int(head["instrument_id"]), int(head["ts_event"]), int(head["ts_recv"])
        if not self._wanted(iid, ts_event, ts_recv):
            return
        event = codec.decode(record)
        spot = float(event.data["underlying_price"])
        rows = event.data["rows"]
        if not (math.isfinite(spot) and spot > 0) or len(rows) == 0:
            return
        self.pop.push(self.pop_rows(rows, spot, ts_event, offset, iid))
        if self.params["anomalies"]:
            self.anomalies.push(self.anomaly_rows(rows, spot, ts_event, offset, iid))

    # -- the records of one snapshot ----------------------------------------------------------------

    def candidates(self, rows: np.ndarray, spot: float, ts_event: int) -> np.ndarray:
        from argus.analytics.spreads import SpreadFilter, credit_spreads

        p = self.params
        filt = SpreadFilter(right=p["right"], short_delta=tuple(p["short_delta"]), min_days=p["dte"][0],
                            max_days=p["dte"][1])
        return credit_spreads(rows, spot, filt, now_ns=ts_event, r=p["rate"], q=0.0)[:p["top"]]

    def pop_rows(self, rows: np.ndarray, spot: float, ts_event: int, offset: int, iid: int) -> np.ndarray:
        p = self.params
        cands = self.candidates(rows, spot, ts_event)
        out = np.zeros(len(cands), OPTION_POP_DTYPE)
        cache: dict = {}
        for i, c in enumerate(cands):
            r = out[i]
            r["offset"], r["instrument_id"], r["rank"], r["right"] = offset, iid, i, c["right"]
            r["ts_event"], r["expiry_ns"], r["spot"] = ts_event, c["expiry_ns"], spot
            r["short_strike"], r["long_strike"] = c["short_strike"], c["long_strike"]
            r["width"], r["credit"], r["max_loss"] = c["width"], c["credit"], c["max_loss"]
            r["seed"], r["paths"] = offset, p["paths"]
            try:
                res = vertical_pop(rows, spot, ts_event, int(c["expiry_ns"]), float(c["short_strike"]),
                                   float(c["long_strike"]), p["right"], offset=offset, rate=p["rate"],
                                   paths=p["paths"], steps=p["steps"], fit=p["fit"], fit_evals=p["fit_evals"],
                                   calibrations=cache)
            except ValueError:  # too few quotes for the fit
                r["status"] = POP_NO_FIT
                for name in OPTION_POP_DTYPE.names:
                    if OPTION_POP_DTYPE[name].kind == "f" and name not in (
                            "short_strike", "long_strike", "width", "credit", "max_loss", "spot"):
                        r[name] = np.nan
                continue
            hp, mc = res["params"], res["mc"]
            r["years"], r["div"] = res["years"], res["div"]
            r["v0"], r["kappa"], r["theta"], r["sigma"], r["rho"] = hp.v0, hp.kappa, hp.theta, hp.sigma, hp.rho
            r["fit_rmse"], r["fit_n"], r["feller"] = res["fit"].rmse, res["fit_n"], res["fit"].feller_ok
            for name in ("pop", "pop_se", "expected_pnl", "expected_pnl_se", "p_touch", "p_touch_se", "p_max_loss",
                         "p_max_loss_se", "q05", "q50", "q95"):
                r[name] = mc[name]
            r["lognormal_pop"], r["lognormal_iv"] = res["lognormal_pop"], res["lognormal_iv"]
            r["steps"] = res["steps"]
        return out

    def anomaly_rows(self, rows: np.ndarray, spot: float, ts_event: int, offset: int, iid: int) -> np.ndarray:
        from argus.analytics.surface import surface_from_chain

        flagged = surface_from_chain(rows, spot, ts_event, r=self.params["rate"], z_threshold=self.params["z"]
                                     ).flagged()
        out = np.zeros(len(flagged), OPTION_ANOMALY_DTYPE)
        out["offset"], out["instrument_id"], out["ts_event"] = offset, iid, ts_event
        for name in ("right", "expiry_ns", "strike", "k", "iv_fit", "residual", "robust_z", "flags"):
            out[name] = flagged[name]
        out["iv"] = flagged["iv_mid"]
        return out

    # -- engine protocol ------------------------------------------------------------------------------

    def _check(self) -> None:
        """Nothing deferred to raise (the engine calls this on listeners)."""

    def snapshot(self) -> bytes:
        """Versioned, checksummed bytes: the name, the configuration hash and per output the rows emitted
        and the digest state (the projection keeps no other state between events)."""
        parts = [_SNAPSHOT_MAGIC, struct.pack("<H", _SNAPSHOT_FORMAT), struct.pack("<H", len(self.name)),
                 self.name.encode(), self.config_hash]
        for out_name, buf in self.outputs():
            if len(buf):
                raise ValueError(f"projection '{self.name}': output '{out_name}' has {len(buf)} undrained rows")
            state = buf.digest.state()
            parts += [struct.pack("<QI", buf.rows_emitted, len(state)), state]
        body = b"".join(parts)
        return body + hashlib.blake2b(body, digest_size=32).digest()

    def restore(self, blob) -> None:
        blob = bytes(blob)
        body, check = blob[:-32], blob[-32:]
        if blob[:4] != _SNAPSHOT_MAGIC or hashlib.blake2b(body, digest_size=32).digest() != check:
            raise ValueError(f"projection '{self.name}': not a valid options snapshot (magic or checksum)")
        (fmt,) = struct.unpack_from("<H", body, 4)
        if fmt != _SNAPSHOT_FORMAT:
            raise ValueError(f"options snapshot format = {fmt} is not one this build reads ({_SNAPSHOT_FORMAT})")
        (n,) = struct.unpack_from("<H", body, 6)
        pos = 8 + n
        if body[8:pos].decode() != self.name or body[pos:pos + 32] != self.config_hash:
            raise ValueError(f"projection '{self.name}': the snapshot is of another projection or configuration")
        pos += 32
        restored = []
        for _, buf in self.outputs():
            rows, size = struct.unpack_from("<QI", body, pos)
            pos += 12
            restored.append((buf, rows, body[pos:pos + size]))
            pos += size
        for buf, rows, state in restored:
            buf.parts, buf.rows_emitted = [], rows
            buf.digest = BlockDigest.from_state(buf.dtype.itemsize, state)

    def state_digest(self) -> bytes:
        return hashlib.blake2b(self.snapshot(), digest_size=32).digest()
