"""`up` and `demo`: the whole stack in one process group, on a laptop."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer
from rich.console import Console

from orchestrator.cli.common import CliError
from orchestrator.cli.context import (
    CONTEXT_DIR,
    CONTEXT_FILE,
    StackContext,
    read_context,
    write_context,
)
from orchestrator.cli.render import error_text, status_text
from orchestrator.devstack.redis_server import free_port
from orchestrator.devstack.stack import Stack, StackConfig, StackError
from orchestrator.observability.logs import redact_text

DEFAULT_HOME = Path(".orchestrator")
# A laptop demo wants snappy polling; production keeps the Settings defaults.
DEMO_ENV = {
    "ORCH_POLL_INITIAL_SECONDS": "0.5",
    "ORCH_POLL_MAX_SECONDS": "2",
}


def examples_dir() -> Path:
    """examples/ of the source checkout this package runs from."""
    folder = Path(__file__).resolve().parents[2] / "examples" / "mnist"
    if not (folder / "run.yaml").is_file():
        raise CliError(f"the demo needs examples/mnist of a source checkout; not found at {folder}")
    return folder


def _stop_on_sigterm() -> None:
    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """Whether `port` can be listened on now (checked before anything starts,
    so a taken port is one line naming it rather than a dead API child)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def _refuse_a_second_stack(home: Path) -> None:
    running = read_context(home / CONTEXT_FILE)
    if running is not None and running.running:
        redis_url = redact_text(running.env.get("REDIS_URL", "?"))
        raise CliError(
            f"a stack is already running from {home} (pid {running.pid}, REDIS_URL={redis_url}); "
            f"stop it (Ctrl-C in its terminal, or kill {running.pid}) or use another --home"
        )


def _context_of(stack: Stack, home: Path) -> StackContext:
    """What a CLI command in this folder needs to reach the stack (cli/context.py)."""
    keys = ["REDIS_URL", "ORCH_ARTIFACTS_DIR"]
    if stack.emulator is not None:
        keys += list(stack.emulator.env)  # AZURE_*, REQUESTS_CA_BUNDLE: for live job logs
    return StackContext(
        path=home / CONTEXT_FILE,
        pid=os.getpid(),
        home=home,
        env={key: stack.env[key] for key in keys if key in stack.env},
        api_url=stack.api_url,
        api_token_file=str(stack.api_token_file.resolve()) if stack.api_url else None,
    )


def up_command(
    home: Annotated[
        Path,
        typer.Option(
            metavar="FOLDER",
            help="Folder for Redis data, emulator data, logs and the CLI's context.",
        ),
    ] = DEFAULT_HOME,
    api_port: Annotated[
        int,
        typer.Option("--api-port", metavar="PORT", min=0, max=65535, help="API port; 0 = no API."),
    ] = 8000,
    concurrency: Annotated[int, typer.Option(metavar="N", min=1, help="Worker concurrency.")] = 2,
    provision_seconds: Annotated[
        float,
        typer.Option(
            "--provision-seconds", metavar="SECONDS", min=0, help="Emulated node boot time."
        ),
    ] = 0.0,
) -> None:
    """Run Redis, the emulator (without Azure credentials), API, worker and beat until Ctrl-C.

    Commands run in this folder or below then use this stack (`orchestrator context`).
    """
    from orchestrator.settings import get_settings

    home = home.resolve()
    _refuse_a_second_stack(home)
    if api_port and not port_is_free(api_port):
        raise CliError(
            f"port {api_port} is in use; choose another with `orchestrator up --api-port N` "
            "(0 = no API)"
        )
    _stop_on_sigterm()
    config = StackConfig(
        home=home,
        api_port=api_port,
        worker_concurrency=concurrency,
        provision_seconds=provision_seconds,
        # Absolute, so every child and every CLI command finds the same folder.
        extra_env={"ORCH_ARTIFACTS_DIR": str(get_settings().artifacts_dir)},
    )
    stack = Stack(config)
    context: StackContext | None = None
    try:
        stack.start()
        context = _context_of(stack, home)
        write_context(context)
        # A user-supplied REDIS_URL may carry a password: never on the terminal.
        typer.echo(f"REDIS_URL={redact_text(stack.env['REDIS_URL'])}")
        if "AZURE_ARM_ENDPOINT" in stack.env:
            typer.echo(f"AZURE_ARM_ENDPOINT={stack.env['AZURE_ARM_ENDPOINT']}")
        if stack.api_url:
            typer.echo(f"API: {stack.api_url}/docs (bearer token in {stack.api_token_file})")
            typer.echo(f"dashboard: {stack.api_url}/ui/ (log in with that token)")
        if home.name == CONTEXT_DIR:
            typer.echo(f"context: {context.path} (commands run in {home.parent} or below use it)")
        else:
            typer.echo(
                f"context: {context.path} (not found by commands: the folder is not named "
                f"{CONTEXT_DIR}; elsewhere set REDIS_URL)"
            )
        typer.echo(f"logs: {stack.logs_dir}/  -- Ctrl-C stops everything")
        stopped = threading.Event()
        while not stopped.wait(1.0):
            dead = stack.dead_child()
            if dead is not None:
                raise CliError(
                    f"{dead.name} exited with {dead.process.returncode}; see {dead.log_path}"
                )
    except StackError as exc:
        raise CliError(str(exc)) from None
    except KeyboardInterrupt:
        typer.echo("stopping...")
    finally:
        if context is not None:
            context.path.unlink(missing_ok=True)
        stack.stop()


def demo_command(
    home: Annotated[
        Path, typer.Option(metavar="FOLDER", help="Folder for the demo's stack.")
    ] = DEFAULT_HOME / "demo",
    epochs: Annotated[
        int | None, typer.Option(metavar="N", min=1, help="Override the training epochs.")
    ] = None,
    sweep: Annotated[
        bool,
        typer.Option(
            "--sweep", help="Run examples/mnist/sweep.yaml instead: a leaderboard and a plot."
        ),
    ] = False,
) -> None:
    """Start the embedded stack, train the MNIST ConvNet through every step, show the result."""
    from orchestrator.chain.enqueue import direct_uploads, enqueue_run
    from orchestrator.cli.view import watch_run
    from orchestrator.domain.spec import load_spec
    from orchestrator.domain.status import RunStatus
    from orchestrator.inputs.submit import upload_local_inputs
    from orchestrator.settings import get_settings

    _stop_on_sigterm()
    console = Console()
    folder = examples_dir()
    started = time.monotonic()
    console.print("[bold]1/4[/] preparing the digits data set")
    prepared = subprocess.run(
        [sys.executable, str(folder / "prepare_data.py"), "--out", str(folder / "sample")],
        capture_output=True,
        text=True,
    )
    if prepared.returncode != 0:
        raise CliError(f"preparing the data failed: {prepared.stderr.strip().splitlines()[-1:]}")
    spec = load_spec(folder / "run.yaml")
    if epochs is not None:
        spec = spec.with_parameters({"epochs": epochs})

    console.print("[bold]2/4[/] starting Redis, the emulator, API, worker and beat")
    artifacts = (home / "artifacts").resolve()
    config = StackConfig(
        home=home,
        api_port=free_port(),
        with_beat=True,
        extra_env={**DEMO_ENV, "ORCH_ARTIFACTS_DIR": str(artifacts)},
    )
    try:
        with Stack(config) as stack:
            # This process reads the same settings as its children.
            os.environ.update(stack.env)
            get_settings.cache_clear()
            from orchestrator.cli.common import open_store

            store = open_store()
            if sweep:
                from orchestrator.cli.sweep_demo import run_sweep_demo

                console.print(f"     API: {stack.api_url}/docs (token in {stack.api_token_file})")
                run_sweep_demo(console, folder / "sweep.yaml", store, home, started)
                return
            # As any submitter does: the data goes to the share first, by content.
            spec, _ = upload_local_inputs(spec, direct_uploads(get_settings(), store))
            record, _ = enqueue_run(spec, store=store, broker_url=stack.env["REDIS_URL"])
            console.print(f"[bold]3/4[/] submitted run {record.run_id}; following its steps")
            console.print(f"     API: {stack.api_url}/docs (token in {stack.api_token_file})")
            final = watch_run(record.run_id, console)
    except StackError as exc:
        raise CliError(str(exc)) from None

    elapsed = time.monotonic() - started
    console.print("\n[bold]4/4[/] result")
    run_dir = artifacts / final.run_id
    # The stack is stopped by now: the summary names files, never its (dead) URLs.
    lines = [f"  status:     {status_text(final)}"]
    if "test_error" in final.metrics:
        lines.append(f"  test error: {final.metrics['test_error']:.2%} (held-out digits)")
    models = sorted(run_dir.glob("outputs/MODEL/**/*.pt"))
    if models:
        lines.append(f"  model file: {models[0]}")
    lines.append(f"  job log:    {run_dir / 'stdout.txt'}")
    lines.append(f"  stack logs: {(home / 'logs').resolve()}")
    lines.append(f"  wall time:  {elapsed:.1f}s")
    typer.echo("\n".join(lines))
    if final.status is not RunStatus.SUCCEEDED:
        raise CliError(
            f"the demo run ended {final.status.value}: {error_text(final) or final.reason}"
        )
    typer.echo("\n".join(["", "Next steps:", *next_steps(folder)]))


def _shown(path: Path) -> str:
    """`path` relative to the working folder when inside it (short, copyable)."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _command_name() -> str:
    """`orchestrator` when the shell finds this very CLI, else its path in the venv."""
    script = Path(sys.executable).parent / "orchestrator"
    found = shutil.which("orchestrator")
    if found is not None and Path(found).resolve() == script.resolve():
        return "orchestrator"
    return _shown(script)


def next_steps(example: Path) -> list[str]:
    """What to do after the demo: a stack that stays up, a run of one's own, the docs."""
    command = _command_name()
    return [
        f"  1. {command} up   (a stack that keeps running; Ctrl-C stops it)",
        f"  2. {command} submit {_shown(example / 'run.yaml')} --wait   (in another terminal)",
        f"  3. open {_shown(example.parents[1] / 'README.md')}   (the CLI, run specs, real Azure)",
    ]
