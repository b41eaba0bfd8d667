"""`argusctl serve`: the gRPC server of the event log (argus.api.server)."""

from __future__ import annotations

import sys

import click

from argus.cli.output import log_dir


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind (loopback unless told otherwise).")
@click.option("--port", default=50051, show_default=True, type=click.IntRange(0, 65535),
              help="Port to bind; 0 picks a free one (printed on the first line).")
@click.option("--token", "tokens", multiple=True, envvar="ARGUS_TOKEN",
              help="Read-write bearer token (repeatable; env ARGUS_TOKEN). Without any token, no auth.")
@click.option("--read-token", "read_tokens", multiple=True, help="Read-only bearer token (repeatable).")
@click.option("--tls-cert", type=click.Path(exists=True, dir_okay=False), help="PEM certificate chain (with --tls-key).")
@click.option("--tls-key", type=click.Path(exists=True, dir_okay=False), help="PEM private key (with --tls-cert).")
@click.option("--durability", type=click.Choice(["safe", "fast"]), default="safe", show_default=True,
              help="safe: an acknowledged append survives a machine crash; fast: a process crash.")
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Projection configuration (YAML) of the live projections; default: the default "
                   "configuration without risk_flow and market_regime.")
@click.option("--no-projections", is_flag=True, help="Do not run the live projections (no ProjectionService).")
@click.pass_context
def serve(ctx: click.Context, host: str, port: int, tokens: tuple[str, ...], read_tokens: tuple[str, ...],
          tls_cert: str | None, tls_key: str | None, durability: str, config_path: str | None,
          no_projections: bool) -> None:
    """Serve the event log over gRPC (EventLogService, ProjectionService, health, reflection) until SIGINT
    or SIGTERM. The live projections keep their outputs and snapshots in DATA/derived/ and resume from
    their newest snapshot on a restart.

    Prints `listening on HOST:PORT` (one line) once it accepts calls; logs go to stderr as JSON lines."""
    import asyncio

    from argus.api.server import TlsFiles, configure_logging
    from argus.api.server import serve as run_server

    if (tls_cert is None) != (tls_key is None):
        raise click.UsageError("--tls-cert and --tls-key go together")
    if no_projections and config_path is not None:
        raise click.UsageError("--config configures the projections: drop it or --no-projections")
    config = None
    if config_path is not None:
        from argus.projections.config import ConfigError, load_config

        try:
            config = load_config(config_path)
        except ConfigError as exc:
            raise click.BadParameter(str(exc), param_hint="--config") from exc
    configure_logging()

    def ready(bound: int) -> None:
        click.echo(f"listening on {host}:{bound}")
        sys.stdout.flush()

    asyncio.run(run_server(log_dir(ctx), host, port, tokens=list(tokens), read_tokens=list(read_tokens),
                           tls=TlsFiles(tls_cert, tls_key) if tls_cert else None, durability=durability,
                           ready=ready, projections=not no_projections, projection_config=config))
