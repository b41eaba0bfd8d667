"""`argusctl regimes fit-hmm`: fit the HMM state filter and record its parameters in the log."""

from __future__ import annotations

import json

import click

from argus.cli.output import emit, log_dir


@click.group()
def regimes() -> None:
    """Regime models recorded in the log."""


@regimes.command("fit-hmm")
@click.option("--symbol", required=True, help="Instrument whose bar returns the HMM is fitted on (e.g. SPY).")
@click.option("--timeframe", required=True, help="One of the configuration's bar timeframes (e.g. 5m, 1d).")
@click.option("--states", type=click.IntRange(2, 8), default=2, show_default=True)
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Projection configuration (YAML) whose bars are used.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
def fit_hmm(ctx: click.Context, symbol: str, timeframe: str, states: int, seed: int, config_path: str | None,
            as_json: bool) -> None:
    """Fit a Gaussian HMM (Baum–Welch, states ordered by variance) on a symbol's bar returns and append
    it to the log as ConfigRecorded("hmm"): replays filter with it from that offset on."""
    from argus.log import EventLog
    from argus.projections.config import load_config
    from argus.projections.hmm_fit import fit_and_record_hmm

    config = load_config(config_path)
    with EventLog.open(log_dir(ctx)) as lg:
        fit = fit_and_record_hmm(lg, config, symbol, timeframe, n_states=states, seed=seed)
    emit({"offset": fit.offset, "bars": fit.bars, "params": json.loads(fit.params_json)}, as_json)
