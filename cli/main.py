"""`argusctl`: the command line of Argus. Commands parse, call the library, and print.

Exit codes: 0 ok; 1 a check failed (e.g. `log verify` found errors); 2 usage error; 3 bad input
(a refused event or row); 4 any other Argus error (log locked, corrupt log, missing log).
"""

from __future__ import annotations

import os
import sys

import click

from argus.cli import backtest, demo, ingest, live, log, options, outcomes, regimes, replay, research, serve

EXIT_CHECK_FAILED = 1
EXIT_BAD_INPUT = 3
EXIT_ERROR = 4


class ArgusGroup(click.Group):
    """Turns Argus errors into one clear line on stderr (a traceback only with --debug)."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except click.exceptions.Exit:
            raise
        except (click.ClickException, click.Abort):
            raise
        except Exception as exc:  # noqa: BLE001 - the one place errors become exit codes
            from argus.errors import ArgusError, EventValidationError

            if ctx.obj and ctx.obj.get("debug"):
                raise
            if isinstance(exc, EventValidationError | ValueError):
                code = EXIT_BAD_INPUT
            elif isinstance(exc, ArgusError | FileNotFoundError):
                code = EXIT_ERROR
            else:
                raise
            click.echo(f"argusctl: error: {exc}", err=True)
            sys.exit(code)


@click.group(cls=ArgusGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--data", "data", default=lambda: os.environ.get("ARGUS_DATA", "./argus-data"), show_default="./argus-data",
              help="Data directory holding the event log (env ARGUS_DATA).")
@click.option("--debug", is_flag=True, help="Show tracebacks.")
@click.pass_context
def cli(ctx: click.Context, data: str, debug: bool) -> None:
    """Argus: an event-sourced trading-research kernel."""
    ctx.ensure_object(dict)
    ctx.obj["data"] = data
    ctx.obj["debug"] = debug


cli.add_command(log.log)
cli.add_command(ingest.ingest)
cli.add_command(replay.replay)
cli.add_command(outcomes.outcomes)
cli.add_command(regimes.regimes)
cli.add_command(serve.serve)
cli.add_command(live.live)
cli.add_command(options.options)
cli.add_command(demo.demo)
cli.add_command(backtest.backtest)
cli.add_command(backtest.signals)
cli.add_command(research.research)


def main() -> None:
    cli(prog_name="argusctl")


if __name__ == "__main__":
    main()
