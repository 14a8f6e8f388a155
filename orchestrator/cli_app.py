"""The typer application every command module registers on (see cli.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from orchestrator.store import RunStore

app = typer.Typer(
    name="orchestrator",
    help="Asynchronous Azure Batch AI training runs, and a local emulator to run them on.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


class CliError(Exception):
    """A user-facing failure: printed as one `error: ...` line, exit status 1."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def open_store() -> RunStore:
    """The run store at the configured REDIS_URL, checked to be reachable."""
    import redis

    from orchestrator.settings import get_settings
    from orchestrator.store import RunStore

    settings = get_settings()
    client = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=5)
    try:
        client.ping()
    except redis.RedisError as exc:
        raise CliError(f"cannot reach Redis at {redacted_url(settings.redis_url)}: {exc}") from None
    return RunStore(client)


def redacted_url(url: str) -> str:
    """A URL fit for messages: any password is replaced by ***."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username or ''}:***@{parts.hostname}" + (
        f":{parts.port}" if parts.port else ""
    )
    return urlunsplit(parts._replace(netloc=netloc))
