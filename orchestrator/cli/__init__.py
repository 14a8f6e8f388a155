"""Console entry point. Every failure is one line on stderr and a non-zero exit."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from orchestrator import __version__
from orchestrator.cli import (
    common,
    context,
    emulator,
    keys,
    runs,
    schedule,
    serve,
    stack,
    sweep,
    view,
)
from orchestrator.cli.common import CliError
from orchestrator.cli.terminal import one_line
from orchestrator.settings import SettingsError
from orchestrator.store import StoreError

app = typer.Typer(
    name="orchestrator",
    help="Asynchronous Azure Batch AI training runs, and a local emulator to run them on.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

# Every command, wired here and nowhere else, in the order `--help` lists them,
# with the one line `--help` shows for it (whole at 80 columns).
COMMANDS: tuple[tuple[str, Callable[..., Any], str], ...] = (
    ("submit", runs.submit_command, "Enqueue a training run; print its id (--wait: follow it)."),
    ("status", runs.status_command, "Show a run's status, error and steps (--json: the record)."),
    ("cancel", runs.cancel_command, "Cancel a run (a running job is terminated, then cleaned up)."),
    ("runs", view.runs_command, "List runs, newest first (filter by status, name or tag)."),
    ("watch", view.watch_command, "Live view of a run's steps and job log until it ends."),
    ("logs", view.logs_command, "Print a run's job stdout or stderr (--follow: while it runs)."),
    ("outputs", view.outputs_command, "List a run's collected files, or copy them (--download)."),
    ("up", stack.up_command, "Run the whole local stack (Redis, emulator, API, worker, beat)."),
    ("demo", stack.demo_command, "Train the MNIST example end to end on a throwaway stack."),
    ("api", serve.api_command, "Serve the HTTP API (OpenAPI at /docs)."),
    ("worker", serve.worker_command, "Run a Celery worker that executes the runs' steps."),
    ("beat", serve.beat_command, "Run Celery beat: schedules the reaper of leftover resources."),
    ("flower", serve.flower_command, "Run Flower, Celery's web monitor of workers and tasks."),
    ("emulator", emulator.emulator_command, "Serve the local Batch AI + Azure Files emulator."),
    ("context", context.context_command, "Show which stack commands run here talk to."),
)
for command_name, command, short_help in COMMANDS:
    app.command(command_name, short_help=short_help)(command)
# `orchestrator schedule add|ls|show|pause|resume|trigger|rm`: a group of its own.
app.add_typer(schedule.app, name="schedule")
# `orchestrator sweep submit|status|watch|cancel|plot|ls`.
app.add_typer(sweep.app, name="sweep")
# `orchestrator keys create|ls|revoke`: the API's keys, straight on Redis.
app.add_typer(keys.app, name="keys")

# Commands that start a stack of their own: a context found here must not
# point them at another stack's Redis.
STARTS_ITS_OWN_STACK = frozenset({"up", "demo", "emulator"})


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"orchestrator {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    ctx: typer.Context,
    connect_timeout: Annotated[
        float,
        typer.Option(
            "--connect-timeout",
            min=0.1,
            metavar="SECONDS",
            help="Give up on an unreachable Redis after this many seconds (one error line).",
        ),
    ] = common.DEFAULT_CONNECT_TIMEOUT,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Asynchronous Azure Batch AI training runs, and a local emulator to run them on."""
    common.connect_timeout_seconds = connect_timeout
    if ctx.invoked_subcommand not in STARTS_ITS_OWN_STACK:
        from orchestrator.settings import get_settings

        context.active_context = context.apply_context(os.environ, Path.cwd())
        get_settings.cache_clear()


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
        # One line, and safe on a terminal: a message may quote a job's output.
        print(f"error: {one_line(str(exc))}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except (StoreError, SettingsError) as exc:
        print(f"error: {one_line(str(exc))}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
    sys.exit(result if isinstance(result, int) else 0)


if __name__ == "__main__":
    main()
