"""Which stack a CLI command talks to: the one `orchestrator up` runs here.

`up` writes its connection settings to `<home>/context.json` (home is
`.orchestrator` by default, mode 0600: it holds the emulator's storage key).
Every other command, run in that folder or below, finds the nearest
`.orchestrator/context.json` and uses its settings -- unless the environment
(or a `.env` file in the working folder) sets REDIS_URL: then the user named a
stack explicitly, and a context must not mix in another stack's folders.
A context whose `up` process is gone is ignored.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CONTEXT_DIR = ".orchestrator"
CONTEXT_FILE = "context.json"


@dataclass(frozen=True)
class StackContext:
    path: Path  # the context.json file
    pid: int  # of the `orchestrator up` process
    home: Path
    env: dict[str, str] = field(default_factory=dict)
    api_url: str | None = None
    api_token_file: str | None = None

    @property
    def running(self) -> bool:
        return pid_alive(self.pid)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def write_context(context: StackContext) -> None:
    """Write `context` to its path, readable by its owner only."""
    document: dict[str, Any] = {
        "pid": context.pid,
        "home": str(context.home),
        "api_url": context.api_url,
        "api_token_file": context.api_token_file,
        "env": context.env,
    }
    context.path.parent.mkdir(parents=True, exist_ok=True)
    # Created 0600 before anything is written: the env holds a storage key.
    descriptor = os.open(context.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(descriptor, 0o600)  # O_CREAT leaves an existing file's mode alone
    with os.fdopen(descriptor, "w") as handle:
        json.dump(document, handle, indent=2)


def read_context(path: Path) -> StackContext | None:
    """The context at `path`; None when missing or unreadable (never fatal)."""
    try:
        document = json.loads(path.read_text())
        return StackContext(
            path=path,
            pid=int(document["pid"]),
            home=Path(document["home"]),
            env={str(k): str(v) for k, v in dict(document.get("env") or {}).items()},
            api_url=document.get("api_url"),
            api_token_file=document.get("api_token_file"),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def find_context(start: Path) -> StackContext | None:
    """The nearest `.orchestrator/context.json` in `start` or a parent folder."""
    for folder in (start, *start.parents):
        path = folder / CONTEXT_DIR / CONTEXT_FILE
        if path.is_file():
            return read_context(path)
    return None


def _dotenv_sets_redis_url(folder: Path) -> bool:
    try:
        text = (folder / ".env").read_text()
    except OSError:
        return False
    return re.search(r"^\s*(export\s+)?REDIS_URL\s*=", text, flags=re.MULTILINE) is not None


def explicit_stack(environ: Mapping[str, str], cwd: Path) -> bool:
    """The user named a Redis (environment or .env): no context applies."""
    return bool(environ.get("REDIS_URL")) or _dotenv_sets_redis_url(cwd)


def apply_context(environ: MutableMapping[str, str], cwd: Path) -> StackContext | None:
    """Fill `environ` from the nearest running stack's context; the context used, if any.

    Only unset variables are filled: the environment always wins, except that
    the emulator's CA bundle comes with the emulator's endpoint.
    """
    if explicit_stack(environ, cwd):
        return None
    context = find_context(cwd)
    if context is None or not context.running:
        return None
    filled = {key for key in context.env if key not in environ}
    for key in filled:
        environ[key] = context.env[key]
    # The emulator's CA comes with its endpoint: an ambient bundle (a system one,
    # as many machines set) cannot verify the emulator's certificate.
    if "AZURE_ARM_ENDPOINT" in filled and "REQUESTS_CA_BUNDLE" in context.env:
        environ["REQUESTS_CA_BUNDLE"] = context.env["REQUESTS_CA_BUNDLE"]
    return context


# The context the running command uses (set by the root callback), for `context`.
active_context: StackContext | None = None


def context_command() -> None:
    """Print which stack the commands run here talk to, and where that comes from."""
    import typer

    from orchestrator.observability.logs import redact_text
    from orchestrator.settings import get_settings

    settings = get_settings()
    redis_url = f"REDIS_URL={redact_text(settings.redis_url)}"
    if active_context is not None:
        typer.echo(
            f"stack: `orchestrator up` (pid {active_context.pid}) from {active_context.home}"
        )
        typer.echo(f"context: {active_context.path}")
        typer.echo(redis_url)
        if active_context.api_url:
            typer.echo(f"API: {active_context.api_url} (token in {active_context.api_token_file})")
        typer.echo(f"artifacts: {settings.artifacts_dir}")
        return
    cwd = Path.cwd()
    if explicit_stack(os.environ, cwd):
        source = "the environment" if os.environ.get("REDIS_URL") else f"{cwd / '.env'}"
        typer.echo(f"stack: named by {source}")
    else:
        found = find_context(cwd)
        if found is not None:
            typer.echo(
                f"stack: none running; {found.path} is left from `orchestrator up` "
                f"(pid {found.pid}, gone): start it again with `orchestrator up`"
            )
        else:
            typer.echo(
                f"stack: none found in {cwd} or above (no {CONTEXT_DIR}/{CONTEXT_FILE}); "
                "the default below applies; `orchestrator up` starts one"
            )
    typer.echo(redis_url)
    typer.echo(f"artifacts: {settings.artifacts_dir}")
