"""The newcomer's demo: a synthetic market with options in a fresh data directory, every projection replayed,
and a summary of what Argus derived from it.

`run_demo(data_dir, DemoConfig(...))`:
1. refuses a data directory whose log already holds events (`DemoError`, naming the path);
2. writes the seeded synthetic market with option chains (`write_synthetic_market`);
3. replays every projection of the default configuration plus the options projection (PoP and IV-anomaly
   records of the first symbol's snapshots at 10:00 and 15:30 New York time), written to
   `<data>/projections.yaml` (which `argusctl replay` uses there by default), into the derived store;
4. reads "regimes now" from the derived store: per symbol the last vol/trend regime and BOCPD p_change on
   5m bars, and the last market regime row;
5. lists the top put credit spreads of the first symbol's latest chain (`SpreadFilter()` defaults,
   natural credit, best credit/width first) with a Heston PoP beside the lognormal PoP. The Heston model is
   calibrated once on the whole chain (every expiry at least a day out, as `spread_pop(fit="all")`) and
   that one parameter set prices every candidate by Monte Carlo (seed = the snapshot's offset), so the
   calibration, not the candidates, sets the run time;
6. lists the chain's flagged IV anomalies (`surface_from_chain(...).flagged()`), largest |robust z| first;
7. backtests sma_cross (6/24) on the first symbol's 5-minute bars with quote fills 50 ms after each
   decision; the run log is written under <data>/runs/<run_id>/ (`argusctl backtest show RUN`).

Everything is seeded: the same configuration gives the same numbers (timings aside).
"""

from __future__ import annotations

import datetime as dt
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from argus.errors import ArgusError

__all__ = ["DemoConfig", "DemoError", "run_demo"]

VOL_REGIMES = ("unknown", "low", "normal", "high", "extreme")
TREND_REGIMES = ("unknown", "up", "down", "range")
MARKET_REGIMES = ("unknown", "risk-on", "neutral", "risk-off")
REGIME_TIMEFRAME = "5m"
#: The projection configuration file of a data directory (argusctl replay's default when present).
DATA_CONFIG = "projections.yaml"
#: The New York times of day of the snapshots the demo's options projection analyses (two a day keeps
#: the demo short; every snapshot of three symbols would take minutes on two cores).
DEMO_OPTION_TIMES = ("10:00", "15:30")


class DemoError(ArgusError):
    """The demo cannot run here (e.g. the data directory's log already holds events)."""


@dataclass(frozen=True)
class DemoConfig:
    seed: int = 7
    symbols: tuple[str, ...] = ("SPY", "QQQ", "IBIT")
    start: dt.date = dt.date(2024, 3, 4)
    days: int = 5
    top: int = 5
    paths: int = 100_000
    device: str = "cpu"  # the spreads' Monte Carlo: "cpu", "gpu" or "auto"; the replay always runs on the CPU
    events_per_day: int | None = None  # default: the synthetic feed's default
    fit_evals: int = 20

    def __post_init__(self) -> None:
        if isinstance(self.symbols, str):
            object.__setattr__(self, "symbols", tuple(s.strip() for s in self.symbols.split(",") if s.strip()))
        if self.top < 1:
            raise ValueError(f"top = {self.top!r} must be >= 1")
        if self.paths < 1000:
            raise ValueError(f"paths = {self.paths!r} must be >= 1000")


def demo_projection_yaml(symbol: str, top: int) -> str:
    """The demo's projection configuration: the defaults plus the options projection on `symbol`."""
    times = ", ".join(f'"{t}"' for t in DEMO_OPTION_TIMES)
    return ("# argusctl demo: the default projections plus PoP and IV-anomaly records (argus.projections.options)\n"
            f"options: {{symbols: [{symbol}], times: [{times}], top: {int(top)}, paths: 20000}}\n")


def _name(names: tuple[str, ...], code: int) -> str:
    return names[code] if 0 <= code < len(names) else str(code)


def _finite(x: float) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


def _regimes_now(store, dtypes: dict, config, symbols: dict[int, str]) -> tuple[dict, dict | None]:
    labels = [b.label for b in config.bars]
    spec = labels.index(REGIME_TIMEFRAME) if REGIME_TIMEFRAME in labels else len(labels) - 1
    now: dict[str, dict] = {sym: {"timeframe": labels[spec] if labels else None} for sym in symbols.values()}
    if "regimes" in dtypes:
        rows = store.rows("regimes", dtypes["regimes"])
        for iid, sym in symbols.items():
            mine = rows[(rows["instrument_id"] == iid) & (rows["spec"] == spec)]
            if len(mine):
                last = mine[-1]
                now[sym].update(ts_end=int(last["ts_end"]), vol_regime=_name(VOL_REGIMES, int(last["vol_regime"])),
                                trend_regime=_name(TREND_REGIMES, int(last["trend_regime"])),
                                rv_percentile=_finite(last["rv_percentile"]), adx=_finite(last["adx"]))
    if "bocpd" in dtypes:
        rows = store.rows("bocpd", dtypes["bocpd"])
        for iid, sym in symbols.items():
            mine = rows[(rows["instrument_id"] == iid) & (rows["spec"] == spec)]
            if len(mine):
                now[sym].update(p_change=_finite(mine[-1]["p_change"]),
                                map_run_length=int(mine[-1]["map_run_length"]))
    market = None
    if "market_regime" in dtypes:
        rows = store.rows("market_regime", dtypes["market_regime"])
        if len(rows):
            last = rows[-1]
            market = {"index": symbols.get(int(last["instrument_id"]), str(int(last["instrument_id"]))),
                      "ts_end": int(last["ts_end"]), "regime": _name(MARKET_REGIMES, int(last["regime"])),
                      "p_change": _finite(last["p_change"]), "flow": _finite(last["flow"])}
    return now, market


def _ny_date(ns: int) -> str:
    from argus.options.pop import _ny_date as ny

    return ny(int(ns))


def _calibrate(chain, rate: float, q: float, fit_evals: int):
    """One Heston fit to the chain's OTM mids, every expiry at least a day out (spread_pop's fit="all")."""
    from argus.analytics.heston import calibrate_heston
    from argus.events.types import OptionRight
    from argus.options.pop import YEAR_NS

    cal = chain.rows
    cal_t = (cal["expiry_ns"] - chain.ts_event) / YEAR_NS
    mid = 0.5 * (cal["bid"] + cal["ask"])
    fwd = chain.spot * np.exp((rate - q) * cal_t)
    is_call = cal["right"] == int(OptionRight.CALL)
    otm = np.where(is_call, cal["strike"] >= fwd, cal["strike"] < fwd)
    ok = (cal["bid"] > 0) & (cal["ask"] >= cal["bid"]) & np.isfinite(mid) & otm & (cal_t >= 1.0 / 365.0)
    if ok.sum() < 5:
        raise ValueError(f"only {int(ok.sum())} usable OTM quotes for the Heston fit (need 5)")
    weights = np.minimum(1.0 / np.maximum(cal["ask"][ok] - cal["bid"][ok], 0.01), 100.0)
    res = calibrate_heston(chain.spot, rate, q, cal["strike"][ok], cal_t[ok], mid[ok],
                           np.where(is_call[ok], "call", "put"), weights=weights,
                           xtol=1e-6, ftol=1e-6, gtol=1e-6, max_nfev=int(fit_evals))
    return res, int(ok.sum())


def _spreads(chain, top: int, paths: int, rate: float, fit_evals: int, device: str = "cpu") -> dict:
    from argus.analytics.black_scholes import implied_vol
    from argus.options.pop import YEAR_NS, _implied_div, _lognormal_pop
    from argus.options.pricing import mc_functions
    from argus.options.spreads import SpreadFilter, credit_spreads

    t0 = time.perf_counter()
    rows = chain.rows
    by_expiry: dict[int, float] = {}

    def div(expiry_ns: int) -> float:
        if expiry_ns not in by_expiry:
            t = (expiry_ns - chain.ts_event) / YEAR_NS
            by_expiry[expiry_ns] = _implied_div(rows[rows["expiry_ns"] == expiry_ns], chain.spot, t, rate)
        return by_expiry[expiry_ns]

    mc_spread = mc_functions(device)[1]  # the replay above ran on the CPU; only these spreads use `device`
    filt = SpreadFilter()
    cands = credit_spreads(rows, chain.spot, filt, now_ns=chain.ts_event, r=rate, q=0.0)
    n_all = len(cands)
    # The dividend of the calibration: implied at the nearest expiry at least a day out.
    future = np.unique(rows["expiry_ns"][rows["expiry_ns"] - chain.ts_event >= YEAR_NS / 365])
    q_fit = div(int(future[0])) if len(future) else 0.0
    out = {"symbol": chain.symbol, "snapshot_offset": chain.offset, "ts": chain.ts_event, "spot": chain.spot,
           "right": filt.right, "filter_short_delta": list(filt.short_delta) if filt.short_delta else None,
           "rate": rate, "candidates_total": n_all, "candidates": []}
    if n_all == 0:
        out["seconds"] = time.perf_counter() - t0
        return out
    t_fit = time.perf_counter()
    fitres, fit_n = _calibrate(chain, rate, q_fit, fit_evals)
    hp = fitres.params
    out["heston"] = {"v0": hp.v0, "kappa": hp.kappa, "theta": hp.theta, "sigma": hp.sigma, "rho": hp.rho,
                     "div": q_fit, "fit_n": fit_n, "fit_rmse": fitres.rmse, "feller": bool(fitres.feller_ok),
                     "seconds": time.perf_counter() - t_fit}
    for c in cands[:top]:
        e = int(c["expiry_ns"])
        t = (e - chain.ts_event) / YEAR_NS
        q = div(e)
        short, long, credit = float(c["short_strike"]), float(c["long_strike"]), float(c["credit"])
        iv = float(c["short_iv"])
        if not (math.isfinite(iv) and iv > 0):
            leg = rows[(rows["expiry_ns"] == e) & (rows["contract_id"] == c["short_contract_id"])]
            iv = float(implied_vol(0.5 * (leg["bid"][0] + leg["ask"][0]), chain.spot, short, t, rate, q, False)) \
                if len(leg) else float("nan")
        if not (math.isfinite(iv) and iv > 0):
            iv = 0.2
        steps = max(16, math.ceil(50 * t))
        mc = mc_spread(chain.spot, rate, q, hp.v0, hp.kappa, hp.theta, hp.sigma, hp.rho, t, short, long, "put",
                       credit, int(paths), steps, int(chain.offset))
        out["candidates"].append({
            "expiry": _ny_date(e), "days": t * 365.0, "short": short, "long": long, "width": float(c["width"]),
            "credit": credit, "credit_to_width": float(c["credit_to_width"]), "max_loss": float(c["max_loss"]),
            "breakeven": float(c["breakeven"]), "short_delta": _finite(c["short_delta"]),
            "pop_heston": float(mc["pop"]), "pop_heston_se": float(mc["pop_se"]),
            "pop_lognormal": float(_lognormal_pop(chain.spot, t, rate, q, iv, short, long, "put", credit)),
            "lognormal_iv": iv, "expected_pnl": float(mc["expected_pnl"]), "p_touch": float(mc["p_touch"]),
        })
    out["paths"] = int(paths)
    out["seconds"] = time.perf_counter() - t0
    return out


def _anomalies(chain, rate: float, top: int) -> dict:
    from argus.events.types import OptionRight
    from argus.options.surface import FLAG_BUTTERFLY, FLAG_CALENDAR, FLAG_OUTLIER, surface_from_chain

    t0 = time.perf_counter()
    surf = surface_from_chain(chain.rows, chain.spot, chain.ts_event, r=rate)
    flagged = surf.flagged()
    order = np.argsort(-np.abs(np.nan_to_num(flagged["robust_z"])), kind="stable")
    recs = []
    for r in flagged[order][:top]:
        f = int(r["flags"])
        recs.append({"expiry": _ny_date(int(r["expiry_ns"])), "strike": float(r["strike"]),
                     "right": "call" if int(r["right"]) == int(OptionRight.CALL) else "put",
                     "iv_mid": _finite(r["iv_mid"]), "iv_fit": _finite(r["iv_fit"]),
                     "residual": _finite(r["residual"]), "robust_z": _finite(r["robust_z"]),
                     "flags": [n for bit, n in ((FLAG_OUTLIER, "outlier"), (FLAG_BUTTERFLY, "butterfly"),
                                                (FLAG_CALENDAR, "calendar")) if f & bit]})
    return {"symbol": chain.symbol, "snapshot_offset": chain.offset, "quotes": int(len(surf.records)),
            "expiries": len(surf.fits), "flagged": int(len(flagged)), "top": recs,
            "seconds": time.perf_counter() - t0}


def _backtest(data_dir: str | os.PathLike, symbol: str) -> dict:
    """sma_cross (6/24) on the first symbol's 5-minute bars, filled at the touch of the first quote 50 ms
    after each decision, $0.005 a share: the run is written under <data>/runs/<run_id>/."""
    from argus.log import EventLog
    from argus.replay.backtest import run_backtest
    from argus.replay.settings import BacktestConfig, ExecutionSettings
    from argus.strategies.registry import default_registry

    strategy = default_registry().create("sma_cross", {"fast": 6, "slow": 24})
    cfg = BacktestConfig(strategy="sma_cross", symbols=(symbol,), params=strategy.p, timeframe="5m", qty=100,
                         execution=ExecutionSettings(fill="quote", latency_ms=50, commission_per_share=0.005))
    runs = Path(data_dir) / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    with EventLog(Path(data_dir) / "log", readonly=True) as lg:
        res = run_backtest(lg, cfg, strategy, runs_dir=runs)
    m = res.metrics
    return {"strategy": "sma_cross fast=6 slow=24", "symbol": symbol, "timeframe": "5m", "fill": "quote +50ms",
            "run_id": res.run_id, "trades": res.trades, "fills": res.fills, "final_equity": res.final_equity,
            "total_commission": res.total_commission, "sharpe": m.get("sharpe"), "max_drawdown": m.get("max_drawdown"),
            "win_rate": m.get("win_rate"), "digest": res.digest, "seconds": res.seconds}


def run_demo(data_dir: str | os.PathLike, config: DemoConfig | None = None, *, progress: bool = False) -> dict:
    """Run the demo in `data_dir` (see the module doc) and return its summary as one JSON-able dict."""
    from argus.connectors.synthetic import (
        DEFAULT_EVENTS_PER_DAY,
        DEFAULT_RATE,
        SyntheticConfig,
        write_synthetic_market,
    )
    from argus.log import EventLog
    from argus.options.pop import latest_chain
    from argus.options.pricing import resolve_device
    from argus.projections.config import load_config
    from argus.projections.engine import ProjectionEngine
    from argus.projections.store import DerivedStore

    cfg = config or DemoConfig()
    device = resolve_device(cfg.device)  # refuse gpu before writing anything
    syn = SyntheticConfig(seed=cfg.seed, symbols=tuple(cfg.symbols), start=cfg.start, days=cfg.days, options=True,
                          events_per_day=cfg.events_per_day or DEFAULT_EVENTS_PER_DAY)
    t0 = time.perf_counter()
    log_path = os.path.join(os.fspath(data_dir), "log")
    with EventLog.open(log_path) as lg:
        head = lg.head()
        if head > 0:
            raise DemoError(f"the log at {log_path} already holds {head} events: the demo needs a fresh data "
                            "directory (pass another --data, or remove this one)")
        t = time.perf_counter()
        summary = write_synthetic_market(lg, syn, progress=progress)
        ingest_s = time.perf_counter() - t

        # The default projections plus the options projection (DEMO_OPTIONS), written to <data>/projections.yaml,
        # the configuration `argusctl replay` uses in this data directory when given no --config.
        config_path = os.path.join(os.fspath(data_dir), DATA_CONFIG)
        with open(config_path, "w") as fh:
            fh.write(demo_projection_yaml(syn.symbols[0], cfg.top))
        pconf = load_config(Path(config_path))
        engine = ProjectionEngine(lg, pconf)
        store = DerivedStore.for_config(os.fspath(data_dir), pconf.config_hash, engine.projections.output_names())
        engine.store = store
        try:
            result = engine.replay()
            dtypes = engine.projections.dtypes()
            symbols = {iid: sym for iid, sym in lg.symbols().items() if sym in syn.symbols}
            regimes, market = _regimes_now(store, dtypes, pconf, symbols)
        finally:
            store.close()
        info = lg.info()
        chain_head = lg.chain_head().hex()
        chain = latest_chain(lg, syn.symbols[0])
    spreads = _spreads(chain, cfg.top, cfg.paths, DEFAULT_RATE, cfg.fit_evals, device)
    anomalies = _anomalies(chain, DEFAULT_RATE, cfg.top)
    backtest = _backtest(data_dir, syn.symbols[0])
    return {
        "data": os.fspath(data_dir),
        "config": config_path,
        "device": device,
        "market": {"seed": cfg.seed, "symbols": list(syn.symbols), "days": summary.days,
                   "first_day": summary.first_day, "last_day": summary.last_day, "quotes": summary.quotes,
                   "trades": summary.trades, "clocks": summary.clocks, "option_snapshots": summary.option_snapshots,
                   "option_rows": summary.option_rows, "seconds": ingest_s},
        "log": {"events": info.events, "chunks": info.chunks, "head": info.head, "bytes": info.bytes},
        "outputs": {name: rep.outputs for name, rep in result.projections.items()},
        "digests": {"state": result.state_digest, "outputs": result.outputs_digest,
                    "config_hash": result.config_hash, "chain_head": chain_head},
        "replay": {"events": result.events, "seconds": result.seconds, "events_per_s": result.events_per_s},
        "regimes_now": regimes,
        "market_regime": market,
        "spreads": spreads,
        "anomalies": anomalies,
        "backtest": backtest,
        "seconds": time.perf_counter() - t0,
    }
