"""The typer application every command module registers on (see cli.py)."""

from __future__ import annotations

import typer

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
