"""`argusctl replay`: rebuild projections from the log, from any offset, and print digests."""

from __future__ import annotations

import sys

import click

from argus.cli.output import emit, log_dir


@click.command()
@click.option("--from-offset", type=click.IntRange(min=0), default=0, show_default=True,
              help="Restore the newest snapshot at or before N, replay silently to N, then process from N.")
@click.option("--to-offset", type=click.IntRange(min=0), default=None, help="Stop before this offset (default: head).")
@click.option("--fresh", is_flag=True, help="Start from empty state at --from-offset instead of a snapshot.")
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Projection configuration (YAML); default: DATA/projections.yaml when it exists (argusctl demo "
                   "writes one), else 1m and 5m bars, default indicators, regimes, positions.")
@click.option("--mode", type=click.Choice(["chunk", "event"]), default="chunk", show_default=True,
              help="Feed reducers a chunk at a time (replay) or an event at a time (the live path).")
@click.option("--export", "export_dir", type=click.Path(file_okay=False), default=None,
              help="Write one Parquet file per output (bars, indicators, positions, ..., option_pop, "
                   "option_anomalies) to this directory.")
@click.option("--no-store", is_flag=True, help="Do not write outputs or snapshots to the derived store.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
def replay(ctx: click.Context, from_offset: int, to_offset: int | None, fresh: bool, config_path: str | None,
           mode: str, export_dir: str | None, no_store: bool, as_json: bool) -> None:
    """Replay the log through the projections and print the state and output digests."""
    from argus.log import EventLog
    from argus.projections.config import load_config
    from argus.projections.engine import ProjectionEngine
    from argus.projections.export import export_parquet
    from argus.projections.store import DerivedStore

    if config_path is None:
        from pathlib import Path

        default = Path(ctx.obj["data"]) / "projections.yaml"
        config_path = default if default.is_file() else None
    config = load_config(config_path)
    with EventLog.open(log_dir(ctx), readonly=True) as lg:
        engine = ProjectionEngine(lg, config)
        store = None if no_store else DerivedStore.for_config(ctx.obj["data"], config.config_hash,
                                                              engine.projections.output_names())
        engine.store = store
        bar = None
        if sys.stderr.isatty():
            from tqdm import tqdm

            bar = tqdm(total=(to_offset or lg.head()) - from_offset, unit="ev", unit_scale=True, file=sys.stderr)
        try:
            result = engine.replay(from_offset, to_offset, fresh=fresh, mode=mode,
                                   progress=bar.update if bar is not None else None)
        finally:
            if bar is not None:
                bar.close()
        out = result.as_dict()
        if export_dir is not None:
            if store is None:
                raise click.UsageError("--export needs the derived store (drop --no-store)")
            out["exported"] = export_parquet(store, config, engine.projections.dtypes(), lg.symbols(), export_dir)
        if store is not None:
            store.close()
    if not as_json:
        out["projections"] = ", ".join(f"{k}: {v['outputs']} outputs" for k, v in out["projections"].items())
    emit(out, as_json)
