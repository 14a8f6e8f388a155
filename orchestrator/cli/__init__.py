"""Console entry point. Every failure is one line on stderr and a non-zero exit."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import typer

from orchestrator.cli import emulator, runs, schedule, serve, stack, view
from orchestrator.cli.common import CliError
from orchestrator.settings import SettingsError
from orchestrator.store import StoreError

app = typer.Typer(
    name="orchestrator",
    help="Asynchronous Azure Batch AI training runs, and a local emulator to run them on.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

# Every command, wired here and nowhere else, in the order `--help` lists them.
COMMANDS: tuple[tuple[str, Callable[..., Any]], ...] = (
    ("submit", runs.submit_command),
    ("status", runs.status_command),
    ("cancel", runs.cancel_command),
    ("runs", view.runs_command),
    ("watch", view.watch_command),
    ("logs", view.logs_command),
    ("outputs", view.outputs_command),
    ("up", stack.up_command),
    ("demo", stack.demo_command),
    ("api", serve.api_command),
    ("worker", serve.worker_command),
    ("beat", serve.beat_command),
    ("flower", serve.flower_command),
    ("emulator", emulator.emulator_command),
)
for command_name, command in COMMANDS:
    app.command(command_name)(command)
app.add_typer(schedule.app, name="schedule")


@app.callback()
def _root() -> None:
    """Asynchronous Azure Batch AI training runs, and a local emulator to run them on."""


def main(argv: list[str] | None = None) -> None:
    try:
        result = app(args=argv, prog_name="orchestrator", standalone_mode=False)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        print("error: interrupted", file=sys.stderr)
        sys.exit(130)
    except typer.TyperException as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":
            ctx = getattr(exc, "ctx", None)
            print(ctx.get_help() if ctx is not None else "usage: orchestrator COMMAND")
            sys.exit(0)
        print(f"error: {exc.format_message()}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except CliError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except (StoreError, SettingsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
    sys.exit(result if isinstance(result, int) else 0)


if __name__ == "__main__":
    main()
