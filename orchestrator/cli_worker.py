"""`orchestrator worker`, `orchestrator beat`, `orchestrator flower`: Celery
processes running this project's app (workers/app.py) on the chain queue."""

from __future__ import annotations

import os
import socket
from typing import Annotated, Any

import typer

from orchestrator.cli_app import CliError, app

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def _celery_app() -> Any:
    from workers.app import app as celery_app

    return celery_app


def _check_level(loglevel: str) -> str:
    if loglevel.upper() not in LOG_LEVELS:
        raise CliError(f"--loglevel must be one of {', '.join(LOG_LEVELS)}, got {loglevel!r}")
    return loglevel.upper()


def _json_logging(level: str) -> None:
    """JSON logs from the first line: Celery warns (e.g. about running as
    root) before its setup_logging signal fires."""
    import logging

    from orchestrator.logs import configure_logging, secrets_from_settings
    from orchestrator.settings import get_settings

    configure_logging(level, secrets=secrets_from_settings(get_settings()))
    logging.captureWarnings(True)


@app.command("worker")
def worker_command(
    concurrency: Annotated[
        int, typer.Option("--concurrency", "-c", help="Worker processes (prefork pool).")
    ] = 2,
    loglevel: Annotated[str, typer.Option("--loglevel", "-l", help="DEBUG/INFO/...")] = "INFO",
    pool: Annotated[str, typer.Option(help="Celery pool: prefork, solo or threads.")] = "prefork",
    name: Annotated[
        str | None, typer.Option(help="Node name (default: unique per process).")
    ] = None,
) -> None:
    """Run a Celery worker consuming the chain queue (batchai)."""
    from orchestrator.enqueue import CHAIN_QUEUE

    if concurrency < 1:
        raise CliError(f"--concurrency must be at least 1, got {concurrency}")
    if pool not in ("prefork", "solo", "threads"):
        raise CliError(f"--pool must be prefork, solo or threads, got {pool!r}")
    level = _check_level(loglevel)
    os.environ.setdefault("ORCH_LOG_LEVEL", level)
    node = name or f"orch-{os.getpid()}@{socket.gethostname()}"
    _json_logging(level)
    _celery_app().worker_main(
        [
            # No ASCII-art banner: every line a worker prints is a JSON log line.
            "--quiet",
            "worker",
            f"--loglevel={level}",
            f"--concurrency={concurrency}",
            f"--pool={pool}",
            f"--queues={CHAIN_QUEUE}",
            f"--hostname={node}",
            # Mingle/gossip sync state between workers; the chain keeps its
            # state in the run store, so they would only add startup latency.
            "--without-mingle",
            "--without-gossip",
        ]
    )


@app.command("beat")
def beat_command(
    loglevel: Annotated[str, typer.Option("--loglevel", "-l")] = "INFO",
    schedule: Annotated[
        str, typer.Option(help="Where beat keeps its schedule state.")
    ] = ".orchestrator/celerybeat-schedule",
) -> None:
    """Run Celery beat: sends batchai.reap every ORCH_REAPER_INTERVAL_SECONDS."""
    level = _check_level(loglevel)
    _json_logging(level)
    directory = os.path.dirname(schedule)
    if directory:
        os.makedirs(directory, exist_ok=True)
    _celery_app().start(["beat", f"--loglevel={level}", f"--schedule={schedule}"])


@app.command("flower")
def flower_command(
    port: Annotated[int, typer.Option(help="Port of the Flower web UI.")] = 5555,
    address: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
) -> None:
    """Run Flower (Celery's web monitor) for the chain's workers and tasks."""
    if not 1 <= port <= 65535:
        raise CliError(f"--port must be between 1 and 65535, got {port}")
    _celery_app().start(["flower", f"--port={port}", f"--address={address}"])
