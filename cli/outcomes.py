"""`argusctl outcomes`: forward returns, run-ups and drawdowns of every closed bar, to Parquet."""

from __future__ import annotations

import click

from argus.cli.output import emit, log_dir


@click.command()
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Projection configuration (YAML); its `outcomes` section sets the horizons.")
@click.option("--export", "export_dir", type=click.Path(file_okay=False), required=True,
              help="Write outcomes.parquet here (complete and gap outcomes, then the pending ones).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
def outcomes(ctx: click.Context, config_path: str | None, export_dir: str, as_json: bool) -> None:
    """Replay the log (from the newest snapshot) and export the outcome engine's rows, including the
    windows still incomplete at the end of the log (status 3)."""
    from argus.log import EventLog
    from argus.projections.config import load_config
    from argus.projections.engine import ProjectionEngine
    from argus.projections.export import export_outcomes
    from argus.projections.store import DerivedStore

    config = load_config(config_path)
    if config.outcomes is None:
        raise click.UsageError("the configuration turns outcomes off (outcomes: false)")
    with EventLog.open(log_dir(ctx), readonly=True) as lg:
        engine = ProjectionEngine(lg, config)
        engine.store = DerivedStore.for_config(ctx.obj["data"], config.config_hash,
                                               engine.projections.output_names())
        result = engine.replay()
        written = export_outcomes(engine, lg.symbols(), export_dir)
        engine.store.close()
    emit({"to_offset": result.to_offset, "config_hash": result.config_hash, **written}, as_json)
