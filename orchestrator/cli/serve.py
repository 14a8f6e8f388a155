"""The long-running processes: `orchestrator api | worker | beat | flower`.

The Celery ones replace this process with `python -m workers <celery args>`, so
the CLI never imports the workers package (workers depend on the core, and the
CLI only launches them) and the process keeps its pid and process group.
"""

from __future__ import annotations

import os
import socket
import sys
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

from orchestrator.cli.common import CliError

if TYPE_CHECKING:
    from orchestrator.store.connection import RedisTarget

PORT = typer.Option(min=1, max=65535, metavar="PORT", help="Port to listen on.")


class LogLevel(StrEnum):
    DEBUG = "DEBUG"
    INFO = "INFO"
    WARNING = "WARNING"
    ERROR = "ERROR"


class Queues(StrEnum):
    ALL = "all"
    STEPS = "steps"
    WEBHOOKS = "webhooks"


class Pool(StrEnum):
    PREFORK = "prefork"
    SOLO = "solo"
    THREADS = "threads"


LogLevelOption = Annotated[
    LogLevel, typer.Option("--loglevel", "-l", case_sensitive=False, help="Log level.")
]


def api_command(
    host: Annotated[
        str, typer.Option(metavar="ADDRESS", help="Address to listen on.")
    ] = "127.0.0.1",
    port: Annotated[int, PORT] = 8000,
    workers: Annotated[
        int,
        typer.Option(
            metavar="N", min=1, help="uvicorn worker processes (each builds its own app)."
        ),
    ] = 1,
) -> None:
    """Serve the HTTP API (OpenAPI at /docs) until interrupted.

    Needs ORCH_API_TOKEN, or ORCH_API_ALLOW_UNAUTHENTICATED=true for local development.
    """
    import uvicorn

    from orchestrator.api import ApiConfigError, create_app
    from orchestrator.api.app import UNAUTHENTICATED_WARNING
    from orchestrator.api.deps import configured_token
    from orchestrator.settings import get_settings

    settings = get_settings()
    try:
        application = create_app(settings)  # also checks the settings before serving
    except ApiConfigError as exc:
        raise CliError(str(exc)) from None
    if configured_token(settings) is None:
        typer.echo(f"warning: {UNAUTHENTICATED_WARNING}", err=True)
    log_level = settings.log_level.lower()
    if workers == 1:
        uvicorn.run(application, host=host, port=port, log_level=log_level)
    else:
        uvicorn.run(
            "orchestrator.api:create_app",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_level=log_level,
        )


def check_redis_url(target: RedisTarget | str) -> None:
    """One error line for a REDIS_URL that is not one: Celery would otherwise
    print a traceback, or retry a malformed broker address forever."""
    from orchestrator.observability.logs import redact_text
    from orchestrator.store.connection import RedisTarget, redis_client

    url = RedisTarget.of(target).url
    try:
        redis_client(target).close()  # parses only: no connection is made
    except ValueError as exc:
        raise CliError(
            f"REDIS_URL {redact_text(url)!r} is not a Redis URL ({redact_text(str(exc))}); "
            "e.g. redis://127.0.0.1:6379/0 or sentinel://s1:26379;sentinel://s2:26379/0"
        ) from None


# A worker or beat started beside Redis (compose, a reboot) waits for it this
# long by default, saying so every WAIT_REPORT_SECONDS, then gives up in one line.
DEFAULT_WAIT_FOR_REDIS_SECONDS = 60.0
WAIT_REPORT_SECONDS = 5.0

WaitForRedisOption = Annotated[
    float,
    typer.Option(
        "--wait-for-redis",
        min=0,
        metavar="SECONDS",
        help="Wait this long for an unreachable Redis (a line every 5 s), then exit 1.",
    ),
]


def wait_for_redis(target: RedisTarget | str, seconds: float) -> None:
    """Return once Redis (for sentinel://, the current master) answers; CliError
    after `seconds` of trying."""
    import threading
    import time

    import redis

    from orchestrator.observability.logs import redact_text
    from orchestrator.store.connection import RedisTarget, redis_client

    shown = redact_text(RedisTarget.of(target).url)
    client = redis_client(target, socket_connect_timeout=2, socket_timeout=5)
    deadline = time.monotonic() + seconds
    next_report = time.monotonic() + WAIT_REPORT_SECONDS
    pause = threading.Event()
    try:
        while True:
            try:
                client.ping()
                return
            except redis.RedisError as exc:
                now = time.monotonic()
                if now >= deadline:
                    raise CliError(
                        f"cannot reach Redis at {shown} after {seconds:g}s ({exc}); "
                        "start it, or fix REDIS_URL"
                    ) from None
                if now >= next_report:
                    typer.echo(f"waiting for Redis at {shown}: {exc}", err=True)
                    next_report = now + WAIT_REPORT_SECONDS
            pause.wait(0.5)
    finally:
        client.close()


def _exec_celery(
    level: LogLevel, celery_args: list[str], wait_seconds: float = DEFAULT_WAIT_FOR_REDIS_SECONDS
) -> NoReturn:
    from orchestrator.settings import get_settings

    settings = get_settings()  # a bad setting is one error line here, before the exec
    check_redis_url(settings.redis_target)
    wait_for_redis(settings.redis_target, wait_seconds)
    os.environ["ORCH_LOG_LEVEL"] = level.value
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable, "-m", "workers", *celery_args])


def worker_command(
    concurrency: Annotated[
        int,
        typer.Option(
            "--concurrency", "-c", metavar="N", min=1, help="Worker processes (prefork pool)."
        ),
    ] = 2,
    loglevel: LogLevelOption = LogLevel.INFO,
    wait_for_redis_seconds: WaitForRedisOption = DEFAULT_WAIT_FOR_REDIS_SECONDS,
    pool: Annotated[Pool, typer.Option(help="Celery pool.")] = Pool.PREFORK,
    name: Annotated[
        str | None, typer.Option(metavar="NAME", help="Node name (default: unique per process).")
    ] = None,
    queues: Annotated[
        Queues,
        typer.Option(help="Queues: steps and webhooks, or one (a worker of its own for hooks)."),
    ] = Queues.ALL,
) -> None:
    """Run a Celery worker consuming the chain queue (batchai) and webhook deliveries."""
    node = name or f"orch-{os.getpid()}@{socket.gethostname()}"
    _exec_celery(
        loglevel, worker_args(concurrency, loglevel, pool, node, queues), wait_for_redis_seconds
    )


def worker_args(
    concurrency: int, loglevel: LogLevel, pool: Pool, node: str, queues: Queues | None = None
) -> list[str]:
    """The Celery arguments of a chain worker (the test worker reuses them)."""
    from orchestrator.chain.queue import CHAIN_QUEUE, WEBHOOK_QUEUE

    consumed = {
        Queues.ALL: [CHAIN_QUEUE, WEBHOOK_QUEUE],
        Queues.STEPS: [CHAIN_QUEUE],
        Queues.WEBHOOKS: [WEBHOOK_QUEUE],
    }[queues or Queues.ALL]

    return [
        # No ASCII-art banner: every line a worker prints is a JSON log line.
        "--quiet",
        "worker",
        f"--loglevel={loglevel.value}",
        f"--concurrency={concurrency}",
        f"--pool={pool.value}",
        f"--queues={','.join(consumed)}",
        f"--hostname={node}",
        # Mingle/gossip sync state between workers; the chain keeps its
        # state in the run store, so they would only add startup latency.
        "--without-mingle",
        "--without-gossip",
    ]


def beat_command(
    loglevel: LogLevelOption = LogLevel.INFO,
    wait_for_redis_seconds: WaitForRedisOption = DEFAULT_WAIT_FOR_REDIS_SECONDS,
    schedule: Annotated[
        str, typer.Option(metavar="FILE", help="Where beat keeps its schedule state.")
    ] = ".orchestrator/celerybeat-schedule",
) -> None:
    """Run Celery beat: sends batchai.reap every ORCH_REAPER_INTERVAL_SECONDS."""
    directory = os.path.dirname(schedule)
    if directory:
        os.makedirs(directory, exist_ok=True)
    beat_args = ["beat", f"--loglevel={loglevel.value}", f"--schedule={schedule}"]
    _exec_celery(loglevel, beat_args, wait_for_redis_seconds)


def flower_command(
    port: Annotated[
        int, typer.Option(metavar="PORT", min=1, max=65535, help="Port of the Flower web UI.")
    ] = 5555,
    address: Annotated[
        str, typer.Option(metavar="ADDRESS", help="Address to listen on.")
    ] = "127.0.0.1",
) -> None:
    """Run Flower (Celery's web monitor) for the chain's workers and tasks."""
    _exec_celery(LogLevel.INFO, ["flower", f"--port={port}", f"--address={address}"])
