"""`argusctl options`: price one European option, the probability of profit of a vertical spread, the IV surface.

Commands parse, call argus.options (pricing.price_option, pop.latest_chain / pop.spread_pop,
surface.surface_from_chain) and print.
"""

from __future__ import annotations

import click

from argus.cli.output import emit, log_dir

_DEVICE = click.Choice(["auto", "cpu", "gpu"])
_DEVICE_HELP = ("Where the Heston Monte Carlo runs: gpu (CUDA through cupy, the same kernel and random numbers as "
                "the CPU), cpu, or auto (gpu when cupy and a CUDA device are present, else cpu). Refused for gpu "
                "without one.")


@click.group()
def options() -> None:
    """Option pricing and spread probabilities."""


@options.command()
@click.option("--model", type=click.Choice(["bs", "heston"]), required=True)
@click.option("--spot", type=float, required=True)
@click.option("--strike", type=float, required=True)
@click.option("--years", type=float, required=True, help="Time to expiry in years.")
@click.option("--rate", type=float, default=0.0, show_default=True)
@click.option("--div", type=float, default=0.0, show_default=True, help="Continuous dividend yield.")
@click.option("--right", type=click.Choice(["call", "put"]), default="call", show_default=True)
@click.option("--vol", type=float, default=None, help="Black–Scholes volatility (--model bs).")
@click.option("--v0", type=float, default=None)
@click.option("--kappa", type=float, default=None)
@click.option("--theta", type=float, default=None)
@click.option("--sigma", type=float, default=None)
@click.option("--rho", type=float, default=None)
@click.option("--method", type=click.Choice(["analytic", "mc"]), default="analytic", show_default=True)
@click.option("--paths", type=click.IntRange(min=2), default=200_000, show_default=True)
@click.option("--steps", type=click.IntRange(min=1), default=None, help="Default max(16, ceil(50 T)).")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--device", type=_DEVICE, default="auto", show_default=True, help=_DEVICE_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def price(model, spot, strike, years, rate, div, right, vol, v0, kappa, theta, sigma, rho, method, paths, steps,
          seed, device, as_json) -> None:
    """Price a European option: {"price", "stderr", "method", "device"}."""
    from argus.options.pricing import price_option

    out = price_option(model, spot=spot, strike=strike, years=years, rate=rate, div=div, right=right, vol=vol,
                       v0=v0, kappa=kappa, theta=theta, sigma=sigma, rho=rho, method=method, paths=paths,
                       steps=steps, seed=seed, device=device)
    emit(out, as_json)


@options.command()
@click.option("--symbol", required=True)
@click.option("--short", "short", type=float, required=True, help="Short strike.")
@click.option("--long", "long_", type=float, required=True, help="Long strike.")
@click.option("--expiry", required=True, help="Expiry date YYYY-MM-DD (New York).")
@click.option("--right", type=click.Choice(["put", "call"]), default="put", show_default=True)
@click.option("--at-offset", type=click.IntRange(min=0), default=None, help="Latest chain at or before N (default head).")
@click.option("--max-age", default="1d", show_default=True,
              help="Refuse a chain older than this relative to the log's last event (e.g. 1d, 30m).")
@click.option("--rate", type=float, default=0.05, show_default=True)
@click.option("--div", type=float, default=None, help="Dividend yield (default: implied by put–call parity).")
@click.option("--fit", type=click.Choice(["expiry", "all"]), default="expiry", show_default=True,
              help="Calibrate Heston to the requested expiry or to all expiries.")
@click.option("--fit-evals", type=click.IntRange(min=1), default=20, show_default=True,
              help="Most function evaluations of the Heston fit.")
@click.option("--paths", type=click.IntRange(min=2), default=200_000, show_default=True)
@click.option("--steps", type=click.IntRange(min=1), default=None, help="Default max(16, ceil(50 T)).")
@click.option("--seed", type=click.IntRange(min=0), default=None, help="Default: the snapshot's log offset.")
@click.option("--device", type=_DEVICE, default="auto", show_default=True, help=_DEVICE_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
def pop(ctx, symbol, short, long_, expiry, right, at_offset, max_age, rate, div, fit, fit_evals, paths, steps, seed,
        device, as_json) -> None:
    """Probability of profit of a vertical spread from the latest option chain in the log."""
    import datetime as dt

    from argus.events.durations import parse_duration
    from argus.log import EventLog
    from argus.options.pop import latest_chain, spread_pop
    from argus.options.pricing import resolve_device

    try:
        dt.date.fromisoformat(expiry)
    except ValueError:
        raise click.BadParameter(f"{expiry!r} is not YYYY-MM-DD", param_hint="--expiry") from None
    resolve_device(device)
    max_age_ns = parse_duration(max_age, "--max-age")
    with EventLog.open(log_dir(ctx), readonly=True) as lg:
        chain = latest_chain(lg, symbol, at_offset, max_age_ns=max_age_ns)
    out = spread_pop(chain, expiry, short, long_, right, rate=rate, div=div, paths=paths, steps=steps, seed=seed,
                     fit=fit, fit_evals=fit_evals, device=device)
    if not as_json:
        out["heston"] = ", ".join(f"{k}={v:.6g}" for k, v in out["heston"].items())
    emit(out, as_json)


def _num(x) -> float | None:
    """A float for JSON (None for NaN / inf)."""
    x = float(x)
    return x if x == x and abs(x) != float("inf") else None


def surface_report(chain, rate: float, z: float) -> dict:
    """The surface of a chain as one JSON-able dict: per expiry the SVI fit and its flagged anomalies."""
    from argus.options import surface as sf
    from argus.options.pop import _ny_date

    names = ((sf.FLAG_OUTLIER, "outlier"), (sf.FLAG_BUTTERFLY, "butterfly"), (sf.FLAG_CALENDAR, "calendar"),
             (sf.FLAG_NO_FIT, "no_fit"))
    res = sf.surface_from_chain(chain.rows, chain.spot, chain.ts_event, r=rate, z_threshold=z)
    atm = res.atm_iv()
    flagged = res.flagged()
    expiries = []
    for e in sorted(res.fits):
        f = res.fits[e]
        rows = flagged[flagged["expiry_ns"] == e]
        expiries.append({
            "expiry": _ny_date(e),
            "years": res.t[e],
            "forward": res.forwards[e],
            "forward_from_parity": bool(res.forward_from_parity[e]),
            "svi": {k: _num(v) for k, v in zip(("a", "b", "rho", "m", "sigma"), f.params, strict=True)},
            "rmse": _num(f.rmse),
            "success": bool(f.success),
            "atm_iv": _num(atm[e]),
            "quotes": int((res.records["expiry_ns"] == e).sum()),
            "anomalies": [{"strike": float(r["strike"]), "right": "call" if int(r["right"]) == 1 else "put",
                           "iv_mid": _num(r["iv_mid"]), "iv_fit": _num(r["iv_fit"]),
                           "robust_z": _num(r["robust_z"]), "flags": int(r["flags"]),
                           "flag_names": [n for bit, n in names if int(r["flags"]) & bit]} for r in rows],
        })
    return {"symbol": chain.symbol, "snapshot_offset": chain.offset, "ts": chain.ts_event, "spot": chain.spot,
            "rate": rate, "z": z, "expiries": expiries}


@options.command()
@click.option("--symbol", required=True)
@click.option("--at-offset", type=click.IntRange(min=0), default=None, help="Latest chain at or before N (default head).")
@click.option("--max-age", default="1d", show_default=True,
              help="Refuse a chain older than this relative to the log's last event (e.g. 1d, 30m).")
@click.option("--rate", type=float, default=0.05, show_default=True)
@click.option("--z", "z", type=click.FloatRange(min=0, min_open=True), default=4.0, show_default=True,
              help="Robust z score above which a quote is an outlier.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
def surface(ctx, symbol, at_offset, max_age, rate, z, as_json) -> None:
    """SVI implied-volatility surface of the latest option chain: fits per expiry and flagged anomalies."""
    import json

    from argus.events.durations import parse_duration
    from argus.log import EventLog
    from argus.options.pop import latest_chain

    max_age_ns = parse_duration(max_age, "--max-age")
    with EventLog.open(log_dir(ctx), readonly=True) as lg:
        chain = latest_chain(lg, symbol, at_offset, max_age_ns=max_age_ns)
    out = surface_report(chain, rate, z)
    if as_json:
        click.echo(json.dumps(out))
        return
    click.echo(f"{out['symbol']} chain at offset {out['snapshot_offset']}  spot {out['spot']:.4f}  "
               f"rate {rate:g}  z {z:g}")
    for e in out["expiries"]:
        s = e["svi"]
        fmt = (lambda v: "nan" if v is None else f"{v:.6g}")  # noqa: E731
        click.echo(f"{e['expiry']}  T={e['years']:.4f}  F={e['forward']:.4f}  atm_iv={fmt(e['atm_iv'])}  "
                   f"rmse={fmt(e['rmse'])}  a={fmt(s['a'])} b={fmt(s['b'])} rho={fmt(s['rho'])} "
                   f"m={fmt(s['m'])} sigma={fmt(s['sigma'])}  quotes={e['quotes']}  anomalies={len(e['anomalies'])}")
        for a in e["anomalies"]:
            click.echo(f"    {a['strike']:>10g} {a['right']:<4}  iv_mid={fmt(a['iv_mid'])}  iv_fit={fmt(a['iv_fit'])}  "
                       f"z={fmt(a['robust_z'])}  flags={','.join(a['flag_names'])}")
