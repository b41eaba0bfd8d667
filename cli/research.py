"""`argusctl research`: sweeps, deploy gates, robustness, allocation and the offline report."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from argus.cli.output import emit, log_dir


@click.group()
def research() -> None:
    """Parameter sweeps with deploy gates that kill the lucky configurations."""


@research.command()
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
def init(path: str, force: bool) -> None:
    """Write a commented example configuration (24 configurations on the synthetic market)."""
    from importlib.resources import files

    target = Path(path)
    if target.exists() and not force:
        raise click.UsageError(f"{path} exists (use --force to overwrite)")
    target.write_text((files("argus.research") / "templates" / "research.example.yaml").read_text())
    click.echo(f"wrote {path}")


@research.command()
@click.argument("config", type=click.Path(exists=True, dir_okay=False))
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Run directory (default: <data>/research/<name>); rerunning resumes it.")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="Local worker processes (1: serial).")
@click.option("--cluster", default=None, metavar="tcp://HOST:PORT", help="Run the sweep on this Dask scheduler.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
def run(ctx: click.Context, config: str, out_dir: str | None, workers: int, cluster: str | None,
        as_json: bool) -> None:
    """Sweep, gate, stress and allocate; write the run directory (docs/research-run-dir.md)."""
    from argus.research.config import load_research_config
    from argus.research.runner import run_research

    cfg = load_research_config(Path(config))
    out = Path(out_dir) if out_dir else Path(ctx.obj["data"]) / "research" / cfg.name
    bar = None
    state: dict = {}

    def on_plan(n: int) -> None:
        if sys.stderr.isatty() and not as_json:
            from tqdm import tqdm

            state["bar"] = tqdm(total=n, unit="cfg", file=sys.stderr)

    def progress(k: int) -> None:
        if state.get("bar") is not None:
            state["bar"].update(k)

    try:
        summary = run_research(cfg, ctx.obj["data"], out, workers=workers, cluster=cluster, progress=progress,
                               on_plan=on_plan)
    finally:
        bar = state.get("bar")
        if bar is not None:
            bar.close()
    keys = ("run_dir", "configs", "folds", "seconds", "configs_per_s", "survivors", "killed", "results_digest")
    out_doc = {k: summary[k] for k in keys}
    if not as_json:
        out_doc["stats"] = summary["stats"]
        out_doc["trials"] = summary["trials"]
    emit(out_doc, as_json)


@research.command()
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
def report(run_dir: str) -> None:
    """Write RUN_DIR/report.html: one self-contained page that opens offline."""
    from argus.research.report import write_report

    click.echo(str(write_report(run_dir)))


@research.command()
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
def promote(ctx: click.Context, run_dir: str, as_json: bool) -> None:
    """Append the run's allocation to the market log as a ConfigRecorded event (exactly once), so that
    live trading and later replays use exactly it."""
    from argus.log import EventLog
    from argus.research.promote import promote_allocation

    with EventLog.open(log_dir(ctx)) as lg:
        emit(promote_allocation(lg, run_dir), as_json)
