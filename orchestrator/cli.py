"""Console entry point. Every failure is one line on stderr and a non-zero exit."""

from __future__ import annotations

import sys

import typer

# Command modules register themselves on the shared app when imported.
import orchestrator.cli_api
import orchestrator.cli_runs
import orchestrator.cli_worker  # noqa: F401
from orchestrator import cli_emulator, cli_stack, cli_view  # noqa: F401
from orchestrator.cli_app import CliError, app
from orchestrator.settings import SettingsError
from orchestrator.store import StoreError


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
