"""`argusctl demo`: a synthetic market with options in a fresh data directory, every projection replayed, and a
summary: counts, digests, regimes now, the top put credit spreads with Heston and lognormal PoP, IV anomalies."""

from __future__ import annotations

import datetime as dt
import json
import sys

import click


def _fmt(x, spec: str = ".4f") -> str:
    return "-" if x is None else format(x, spec)


def _text(out: dict) -> None:
    echo = click.echo
    m = out["market"]
    echo(f"Argus demo in {out['data']} (device {out['device']}, {out['seconds']:.1f}s)")
    echo("")
    echo(f"== market: seed {m['seed']}, {', '.join(m['symbols'])}, {m['days']} days {m['first_day']}..{m['last_day']}")
    echo(f"  quotes {m['quotes']}  trades {m['trades']}  clocks {m['clocks']}  "
         f"option snapshots {m['option_snapshots']} ({m['option_rows']} rows)")
    lg = out["log"]
    echo(f"== log: {lg['events']} events in {lg['chunks']} chunks ({lg['bytes']} bytes)")
    echo(f"== replay: {out['replay']['events']} events in {out['replay']['seconds']:.2f}s")
    for name, n in out["outputs"].items():
        echo(f"  {name:<22} {n}")
    echo("== digests")
    for name, d in out["digests"].items():
        echo(f"  {name:<12} {d}")
    echo("== regimes now")
    for sym, r in out["regimes_now"].items():
        echo(f"  {sym:<6} {r.get('timeframe') or '-'}  vol {r.get('vol_regime', '-'):<8} "
             f"trend {r.get('trend_regime', '-'):<8} p_change {_fmt(r.get('p_change'))}")
    mr = out["market_regime"]
    if mr is not None:
        echo(f"  market ({mr['index']}): {mr['regime']}  p_change {_fmt(mr['p_change'])}  flow {_fmt(mr['flow'])}")
    sp = out["spreads"]
    echo(f"== top put credit spreads: {sp['symbol']} chain at offset {sp['snapshot_offset']}, spot {sp['spot']:.2f} "
         f"({sp['candidates_total']} candidates, natural credit)")
    if "heston" in sp:
        h = sp["heston"]
        echo(f"  Heston (one fit, {h['fit_n']} quotes, {h['seconds']:.1f}s): v0 {h['v0']:.4f} kappa {h['kappa']:.3f} "
             f"theta {h['theta']:.4f} sigma {h['sigma']:.3f} rho {h['rho']:.3f}; {sp['paths']} paths")
    if sp["candidates"]:
        echo(f"  {'expiry':<10} {'short':>8} {'long':>8} {'credit':>7} {'c/w':>6} {'delta':>7} "
             f"{'PoP heston':>10} {'PoP lognorm':>11}")
        for c in sp["candidates"]:
            echo(f"  {c['expiry']:<10} {c['short']:>8g} {c['long']:>8g} {c['credit']:>7.2f} "
                 f"{c['credit_to_width']:>6.3f} {_fmt(c['short_delta'], '7.3f')} {c['pop_heston']:>10.3f} "
                 f"{c['pop_lognormal']:>11.3f}")
    else:
        echo("  none pass the default filter")
    an = out["anomalies"]
    echo(f"== IV anomalies: {an['symbol']} chain, {an['quotes']} OTM quotes in {an['expiries']} expiries, "
         f"{an['flagged']} flagged")
    if not an["top"]:
        echo("  none flagged (outlier, butterfly or calendar)")
    for a in an["top"]:
        echo(f"  {a['expiry']} {a['strike']:>8g} {a['right']:<4} iv {_fmt(a['iv_mid'])} fit {_fmt(a['iv_fit'])} "
             f"z {_fmt(a['robust_z'], '.2f')} {','.join(a['flags'])}")


def _backtest_text(bt: dict) -> None:
    echo = click.echo
    echo(f"== backtest: {bt['strategy']} on {bt['symbol']} {bt['timeframe']} bars, fills at the touch "
         f"({bt['fill']}), $0.005/share")
    echo(f"  run {bt['run_id']}: {bt['trades']} round trips, {bt['fills']} fills, final equity "
         f"{bt['final_equity']:.2f}, commission {bt['total_commission']:.2f}, Sharpe {_fmt(bt['sharpe'], '.2f')}, "
         f"max drawdown {_fmt(bt['max_drawdown'], '.4f')}")
    echo(f"  argusctl backtest show {bt['run_id'][:8]}  |  argusctl backtest verify {bt['run_id'][:8]}")


@click.command()
@click.option("--seed", type=click.IntRange(min=0), default=7, show_default=True, help="Seed of the synthetic market.")
@click.option("--symbols", default="SPY,QQQ,IBIT", show_default=True,
              help="Comma-separated symbols; the first one's option chain is analysed.")
@click.option("--start", type=click.DateTime(formats=["%Y-%m-%d"]), default="2024-03-04", show_default=True,
              help="First day (YYYY-MM-DD).")
@click.option("--days", type=click.IntRange(min=1), default=5, show_default=True, help="Trading days to write.")
@click.option("--top", type=click.IntRange(min=1), default=5, show_default=True,
              help="Spread candidates and IV anomalies to show.")
@click.option("--paths", type=click.IntRange(min=1000), default=100_000, show_default=True,
              help="Heston Monte Carlo paths per spread.")
@click.option("--device", type=click.Choice(["auto", "cpu", "gpu"]), default="cpu", show_default=True,
              help="Where the spreads' Heston Monte Carlo runs (auto = gpu when cupy and a CUDA device are "
                   "present, else cpu); the replay always runs on the CPU.")
@click.option("--events-per-day", type=click.IntRange(min=1000), default=None, hidden=True,
              help="Expected quotes + trades per symbol per day (default 80000).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
def demo(ctx: click.Context, seed: int, symbols: str, start: dt.datetime, days: int, top: int, paths: int,
         device: str, events_per_day: int | None, as_json: bool) -> None:
    """Run the whole pipeline on a synthetic market in a fresh data directory (--data) and summarise it:
    events, bars and other outputs, digests, regimes now, the top put credit spreads with Heston and
    lognormal PoP, and the flagged IV anomalies. Refuses a data directory whose log holds events."""
    from argus.demo import DemoConfig, run_demo

    config = DemoConfig(seed=seed, symbols=tuple(s.strip() for s in symbols.split(",") if s.strip()),
                        start=start.date(), days=days, top=top, paths=paths, device=device,
                        events_per_day=events_per_day)
    out = run_demo(ctx.obj["data"], config, progress=sys.stderr.isatty() and not as_json)
    if as_json:
        click.echo(json.dumps(out))
    else:
        _text(out)
        _backtest_text(out["backtest"])
