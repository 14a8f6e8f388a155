"""`orchestrator emulator`: run the local Batch AI + Azure Files endpoint."""

from __future__ import annotations

import errno
import sys
from pathlib import Path
from typing import Annotated

import typer

from orchestrator.cli.common import CliError


def emulator_command(
    host: Annotated[
        str, typer.Option(metavar="ADDRESS", help="Address to listen on.")
    ] = "127.0.0.1",
    port: Annotated[
        int,
        typer.Option(
            metavar="PORT", min=0, max=65535, help="Port to listen on; 0 picks a free one."
        ),
    ] = 0,
    data_dir: Annotated[
        Path,
        typer.Option(
            "--data-dir", metavar="FOLDER", help="Where shares, job outputs and the CA live."
        ),
    ] = Path(".emulator"),
    env_file: Annotated[
        Path | None,
        typer.Option("--env-file", metavar="FILE", help="Also write the KEY=VALUE lines here."),
    ] = None,
    provision_seconds: Annotated[
        float,
        typer.Option(
            "--provision-seconds",
            metavar="SECONDS",
            min=0,
            help="Seconds a new node stays preparing.",
        ),
    ] = 0.0,
    python: Annotated[
        str,
        typer.Option("--python", metavar="INTERPRETER", help="Interpreter that runs job scripts."),
    ] = sys.executable,
    seed: Annotated[
        int, typer.Option(metavar="N", help="Seed for every injected-fault decision.")
    ] = 0,
    fault: Annotated[
        list[str] | None,
        typer.Option(
            "--fault",
            metavar="KIND:RATE[:OPS]",
            help="Inject a fault: KIND:RATE[:OPERATIONS] (repeatable), e.g. throttle:0.2:arm.",
        ),
    ] = None,
    public_host: Annotated[
        str | None,
        typer.Option(
            "--public-host",
            metavar="HOST",
            help="Host name other machines use to reach it (added to the certificate and URLs).",
        ),
    ] = None,
) -> None:
    """Serve the emulator in the foreground until interrupted."""
    from emulator.core import EmulatorConfig
    from emulator.envfile import EnvValueError
    from emulator.faults import FaultRuleError, parse_flag
    from emulator.server import serve_forever

    try:
        rules = [parse_flag(text) for text in fault or []]
    except FaultRuleError as exc:
        raise CliError(str(exc)) from exc
    config = EmulatorConfig(
        data_dir=data_dir,
        host=host,
        port=port,
        provision_seconds=provision_seconds,
        python=python,
        seed=seed,
        env_file=env_file,
        public_host=public_host,
    )
    try:
        serve_forever(config, rules)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise CliError(
                f"port {port} on {host} is in use; choose another with "
                "`orchestrator emulator --port N` (0 picks a free one)"
            ) from None
        # e.g. the data dir is not writable.
        raise CliError(f"cannot start the emulator: {exc.strerror or exc}") from exc
    except EnvValueError as exc:
        # A value the env file cannot carry safely (e.g. a data dir path with a quote).
        raise CliError(f"cannot write the env file: {exc}") from exc
