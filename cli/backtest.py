"""`argusctl backtest`: run a strategy over the market log with pessimistic execution; show and verify
finished runs."""

from __future__ import annotations

import sys

import click

from argus.cli.output import emit, log_dir


def _params(text: str | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in (text or "").split(","))):
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"{part!r}: expected key=value", param_hint="--params")
        out[key.strip()] = value.strip()
    return out


def _bound(text: str | None, name: str, end: bool) -> tuple[int | None, int | None]:
    from argus.replay.settings import parse_bound

    try:
        return parse_bound(text, end=end)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint=name) from None


@click.group(invoke_without_command=True)
@click.option("--strategy", help="Strategy name (see --list).")
@click.option("--list", "list_", is_flag=True, help="List the strategies and their parameters.")
@click.option("--params", default=None, help="Strategy parameters: k=v,k=v (defaults for the rest).")
@click.option("--symbols", default=None, help="Comma-separated symbols.")
@click.option("--timeframe", default="1d", show_default=True, help="Bar length (1m, 5m, 1h, 1d) or session.")
@click.option("--bar-source", type=click.Choice(["auto", "trades", "provider"]), default="auto", show_default=True,
              help="Bars from the provider's Bar events or built from trades (auto: provider when present).")
@click.option("--from", "from_", default=None, help="First log offset or date (YYYY-MM-DD, UTC).")
@click.option("--to", "to", default=None, help="End log offset (exclusive) or last date (inclusive).")
@click.option("--fill", type=click.Choice(["next_open", "quote"]), default="next_open", show_default=True,
              help="Fill market orders at the next bar's open, or at the touch of the first quote after latency.")
@click.option("--latency-ms", type=float, default=0.0, show_default=True)
@click.option("--slippage-bps", type=float, default=0.0, show_default=True)
@click.option("--slippage-ticks", type=float, default=0.0, show_default=True)
@click.option("--tick-size", type=float, default=0.01, show_default=True)
@click.option("--commission-rate", type=float, default=0.0, show_default=True, help="Fraction of traded value.")
@click.option("--commission-per-share", type=float, default=0.0, show_default=True)
@click.option("--commission-per-contract", type=float, default=0.0, show_default=True)
@click.option("--commission-min", type=float, default=0.0, show_default=True, help="Minimum per order.")
@click.option("--cost-multiplier", type=float, default=1.0, show_default=True)
@click.option("--stale-quote-ms", type=float, default=None, help="Quotes older than this never fill (quote mode).")
@click.option("--cash", type=float, default=100_000.0, show_default=True)
@click.option("--qty", type=float, default=None, help="Shares or contracts per position unit (fixed sizing).")
@click.option("--sizing", type=click.Choice(["fixed", "kelly", "vol_target"]), default="fixed", show_default=True)
@click.option("--export", "export_dir", type=click.Path(file_okay=False), default=None,
              help="Write trades.parquet, fills.parquet and equity.parquet here.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
def backtest(ctx: click.Context, strategy: str | None, list_: bool, params: str | None, symbols: str | None,
             timeframe: str, bar_source: str, from_: str | None, to: str | None, fill: str, latency_ms: float,
             slippage_bps: float, slippage_ticks: float, tick_size: float, commission_rate: float,
             commission_per_share: float, commission_per_contract: float, commission_min: float,
             cost_multiplier: float, stale_quote_ms: float | None, cash: float, qty: float | None, sizing: str,
             export_dir: str | None, as_json: bool) -> None:
    """Backtest a strategy on the market log; the run is written under <data>/runs/<run_id>/."""
    if ctx.invoked_subcommand is not None:
        return
    from argus.strategies.registry import default_registry

    registry = default_registry()
    if list_:
        out = {name: {p.name: {"type": p.type, "default": p.default, "low": p.low, "high": p.high, "doc": p.doc}
                      for p in registry.get(name).params} for name in registry.names()}
        emit(out, as_json)
        return
    if not strategy or not symbols:
        raise click.UsageError("--strategy and --symbols are required (or a subcommand: show, verify)")
    from argus.log import EventLog
    from argus.replay.backtest import run_backtest
    from argus.replay.runs import export_run
    from argus.replay.settings import BacktestConfig, ExecutionSettings

    from_offset, from_ts = _bound(from_, "--from", end=False)
    to_offset, to_ts = _bound(to, "--to", end=True)
    execution = ExecutionSettings(fill=fill, latency_ms=latency_ms, slippage_bps=slippage_bps,
                                  slippage_ticks=slippage_ticks, tick_size=tick_size, commission_rate=commission_rate,
                                  commission_per_share=commission_per_share,
                                  commission_per_contract=commission_per_contract, commission_min=commission_min,
                                  cost_multiplier=cost_multiplier, stale_quote_ms=stale_quote_ms)
    strat = registry.create(strategy, _params(params))
    cfg = BacktestConfig(strategy=strategy, symbols=tuple(s.strip() for s in symbols.split(",") if s.strip()),
                         params=strat.p, timeframe=timeframe, bar_source=bar_source, from_offset=from_offset or 0,
                         to_offset=to_offset, from_ts=from_ts, to_ts=to_ts, cash=cash, qty=qty or 1.0,
                         sizing=sizing, execution=execution)
    from pathlib import Path

    runs = Path(ctx.obj["data"]) / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    with EventLog.open(log_dir(ctx), readonly=True) as lg:
        bar = None
        if sys.stderr.isatty() and not as_json:
            from tqdm import tqdm

            bar = tqdm(total=(cfg.to_offset or lg.head()) - cfg.from_offset, unit="ev", unit_scale=True,
                       file=sys.stderr)
        try:
            result = run_backtest(lg, cfg, strat, runs_dir=runs, progress=bar.update if bar is not None else None)
        finally:
            if bar is not None:
                bar.close()
    out = result.as_dict()
    if export_dir is not None:
        out["exported"] = export_run(result, export_dir)
    emit(out, as_json)


@backtest.command()
@click.argument("run")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
def show(ctx: click.Context, run: str, as_json: bool) -> None:
    """Print a finished run's summary."""
    from argus.replay.runs import show_run

    emit(show_run(ctx.obj["data"], run), as_json)


@backtest.command()
@click.argument("run")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
def verify(ctx: click.Context, run: str, as_json: bool) -> None:
    """Rerun a finished run from its recorded configuration and compare digests (exit 1 on a mismatch)."""
    from argus.log import EventLog
    from argus.replay.runs import verify_run

    with EventLog.open(log_dir(ctx), readonly=True) as lg:
        out = verify_run(lg, ctx.obj["data"], run)
    emit(out, as_json)
    if not out["ok"]:
        sys.exit(1)


@click.command("signals")
@click.option("--strategy", required=True, help="Strategy name (argusctl backtest --list).")
@click.option("--params", default=None, help="Strategy parameters: k=v,k=v.")
@click.option("--symbols", required=True, help="Comma-separated symbols.")
@click.option("--timeframe", default="1d", show_default=True, help="Bar length (1m, 5m, 1h, 1d) or session.")
@click.option("--from", "from_", type=click.IntRange(min=0), default=0, show_default=True, help="First log offset.")
@click.option("--qty", type=float, default=1.0, show_default=True, help="Shares or contracts per position unit.")
@click.option("--follow", is_flag=True, help="Keep following the log as it grows (Ctrl-C or --duration to stop).")
@click.option("--duration", type=click.FloatRange(min=0, min_open=True), default=None,
              help="With --follow: stop after this many seconds.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
def signals(ctx: click.Context, strategy: str, params: str | None, symbols: str, timeframe: str, from_: int,
            qty: float, follow: bool, duration: float | None, as_json: bool) -> None:
    """Run a strategy on the market log and append its Signal events to it (live: with --follow).
    Idempotent: a rerun appends no signal twice."""
    import time

    from argus.log import EventLog
    from argus.replay.settings import BacktestConfig
    from argus.replay.signals import run_signals
    from argus.strategies.registry import default_registry

    strat = default_registry().create(strategy, _params(params))
    cfg = BacktestConfig(strategy=strategy, symbols=tuple(s.strip() for s in symbols.split(",") if s.strip()),
                         params=strat.p, timeframe=timeframe, from_offset=from_, qty=qty)
    deadline = None if duration is None else time.monotonic() + duration
    with EventLog.open(log_dir(ctx)) as lg:
        try:
            out = run_signals(lg, cfg, strat, follow=follow,
                              should_stop=None if deadline is None else (lambda: time.monotonic() >= deadline))
        except KeyboardInterrupt:
            out = {"stopped": "interrupted"}
    emit(out, as_json)
