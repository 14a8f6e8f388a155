"""What every command module uses: CliError (one error line, a non-zero exit) and
open_store (the run store, checked to be reachable)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from orchestrator.client import OrchestratorClient
    from orchestrator.store import RunStore


# How long a command waits for Redis before one error line (`--connect-timeout`).
DEFAULT_CONNECT_TIMEOUT = 5.0
connect_timeout_seconds = DEFAULT_CONNECT_TIMEOUT


class CliError(Exception):
    """A user-facing failure: printed as one `error: ...` line, exit status 1."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def open_store() -> RunStore:
    """The run store at the configured REDIS_URL, checked to be reachable.

    Commands print their result on stdout; log lines go to stderr, warnings
    only, so a user sees the result rather than the chatter.
    """
    import redis

    from orchestrator.observability.logs import (
        configure_logging,
        redact_text,
        secrets_from_settings,
    )
    from orchestrator.settings import get_settings
    from orchestrator.store import RunStore
    from orchestrator.store.connection import redis_client

    settings = get_settings()
    configure_logging("WARNING", secrets=secrets_from_settings(settings))
    url = redact_text(settings.redis_url)
    try:
        client = redis_client(
            settings.redis_target,
            socket_connect_timeout=connect_timeout_seconds,
            socket_timeout=max(30.0, connect_timeout_seconds),
        )
    except ValueError as exc:
        raise CliError(f"REDIS_URL {url} is not a Redis URL: {redact_text(str(exc))}") from None
    try:
        client.ping()
    except redis.RedisError as exc:
        raise CliError(
            f"cannot reach Redis at {url} within {connect_timeout_seconds:g}s ({exc}); "
            "start the stack with `orchestrator up`, or set REDIS_URL"
        ) from None
    return RunStore(client)


def api_client() -> OrchestratorClient | None:
    """A client of the API at ORCH_API_URL (token ORCH_API_TOKEN), or None when unset."""
    from orchestrator.client import OrchestratorClient
    from orchestrator.settings import get_settings

    settings = get_settings()
    if not settings.api_url:
        return None
    token = settings.api_token.get_secret_value() if settings.api_token else None
    return OrchestratorClient(
        settings.api_url, token=token, timeout=max(30.0, connect_timeout_seconds)
    )
