"""`orchestrator sweep submit | status | watch | cancel | plot | ls`.

Through the API when ORCH_API_URL is set, else straight through Redis (the
trial's local inputs are then uploaded to the share with this machine's Azure
settings), like `submit`.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Annotated, Any

import typer

from orchestrator.cli.common import CliError, api_client, open_store

app = typer.Typer(help="Hyperparameter sweeps: many trials on one cluster.", no_args_is_help=True)
SweepId = Annotated[str, typer.Argument(metavar="SWEEP_ID")]
Json = Annotated[bool, typer.Option("--json", help="Print JSON.")]
# How often `watch` and `--wait` read the sweep.
REFRESH_SECONDS = 1.0
# Never set: its wait() is the pause between two reads, interruptible by Ctrl-C.
_pause = threading.Event()


def _view(sweep_id: str) -> dict[str, Any]:
    client = api_client()
    if client is not None:
        with client:
            return client.get_sweep(sweep_id)
    from orchestrator.chain.sweep_view import sweep_view
    from orchestrator.store.sweeps import SweepNotFound

    try:
        return sweep_view(open_store().sweeps.get(sweep_id))
    except SweepNotFound as exc:
        raise CliError(str(exc)) from None


def _submit(path: Path) -> str:
    from orchestrator.azure.errors import AzureGatewayError
    from orchestrator.domain.sweep import SweepError, load_sweep
    from orchestrator.inputs.checks import InputRejected
    from orchestrator.inputs.local import LocalInputError

    try:
        spec = load_sweep(path)
    except SweepError as exc:
        raise CliError(f"invalid sweep: {exc}") from None
    client = api_client()
    if client is not None:
        from orchestrator.client import ApiError

        try:
            with client:
                return client.submit_sweep(path)
        except ApiError as exc:
            raise CliError(str(exc)) from None
    from orchestrator.chain.enqueue import direct_uploads
    from orchestrator.chain.sweeps import submit_sweep
    from orchestrator.domain.access import CLI_NAME
    from orchestrator.inputs.submit import upload_local_inputs
    from orchestrator.settings import get_settings

    store = open_store()
    settings = get_settings()
    try:
        trial, _ = upload_local_inputs(spec.trial, direct_uploads(settings, store))
        spec = spec.model_copy(update={"trial": trial})
        record, _ = submit_sweep(
            spec, store=store, input_roots=settings.input_roots, submitted_by=CLI_NAME
        )
    except InputRejected as exc:
        raise CliError(f"invalid sweep: trial.{exc.dotted}: {exc}") from None
    except LocalInputError as exc:
        raise CliError(str(exc)) from None
    except AzureGatewayError as exc:
        raise CliError(f"cannot upload the trial's inputs: {exc}") from None
    return record.sweep_id


def _wait(sweep_id: str, quiet: bool) -> dict[str, Any]:
    from orchestrator.domain.status import SWEEP_TERMINAL

    while True:
        view = _view(sweep_id)
        if view["status"] in SWEEP_TERMINAL:
            return view
        if not quiet:
            counts = " ".join(f"{k}={v}" for k, v in sorted(view["counts"].items()))
            typer.echo(f"{sweep_id} {view['status']} {counts}", err=True)
        _pause.wait(REFRESH_SECONDS)


@app.command("submit")
def submit_command(
    sweep: Annotated[Path, typer.Argument(metavar="SWEEP.yaml", help="Sweep spec.")],
    wait: Annotated[bool, typer.Option("--wait", help="Wait until the sweep ends.")] = False,
    as_json: Json = False,
) -> None:
    """Start a sweep; prints its id (with --wait, then its leaderboard)."""
    sweep_id = _submit(sweep)
    if not wait:
        print(json.dumps({"sweep_id": sweep_id}) if as_json else sweep_id)
        return
    if not as_json:
        print(sweep_id)
    view = _wait(sweep_id, quiet=as_json)
    _show(view, as_json)
    if view["status"] != "succeeded":
        raise typer.Exit(1)


@app.command("status")
def status_command(sweep_id: SweepId, as_json: Json = False) -> None:
    """Status, counts, the best trial and the leaderboard."""
    _show(_view(sweep_id), as_json)


@app.command("ls")
def ls_command(as_json: Json = False) -> None:
    """Sweeps, newest first."""
    from orchestrator.chain.sweep_view import sweep_view

    client = api_client()
    if client is not None:
        with client:
            items = client.list_sweeps()
    else:
        items = [sweep_view(r) for r in open_store().sweeps.recent()]
    if as_json:
        print(json.dumps(items, indent=2))
        return
    for item in items:
        best = item["best"]["value"] if item["best"] else None
        print(f"{item['sweep_id']}  {item['status']:<9}  {item['name']}  best={best}")


@app.command("cancel")
def cancel_command(sweep_id: SweepId) -> None:
    """Cancel every trial, then delete the sweep's cluster."""
    from orchestrator.domain.status import SWEEP_TERMINAL

    view = _view(sweep_id)
    if view["status"] in SWEEP_TERMINAL:
        raise CliError(f"sweep {sweep_id!r} has already ended ({view['status']})")
    client = api_client()
    if client is not None:
        with client:
            client.cancel_sweep(sweep_id)
    else:
        from orchestrator.chain.sweeps import cancel_sweep

        cancel_sweep(open_store(), sweep_id)
    print(f"{sweep_id} cancel requested")


@app.command("watch")
def watch_command(sweep_id: SweepId) -> None:
    """A live leaderboard until the sweep ends."""
    from rich.console import Console
    from rich.live import Live

    from orchestrator.cli.sweep_render import leaderboard_table
    from orchestrator.domain.status import SWEEP_TERMINAL

    view = _view(sweep_id)
    with Live(leaderboard_table(view), console=Console(), auto_refresh=False) as live:
        while view["status"] not in SWEEP_TERMINAL:
            _pause.wait(REFRESH_SECONDS)
            view = _view(sweep_id)
            live.update(leaderboard_table(view), refresh=True)


@app.command("plot")
def plot_command(
    sweep_id: SweepId,
    out: Annotated[Path, typer.Option("--out", metavar="FILE.png", help="PNG to write.")],
) -> None:
    """The primary metric of every trial against its interval (PNG)."""
    from orchestrator.cli.sweep_render import plot_sweep

    if out.suffix.lower() != ".png":
        raise CliError(f"--out: {out} must be a .png file")
    if not out.parent.is_dir():
        raise CliError(f"--out: folder {out.parent} does not exist")
    plot_sweep(_view(sweep_id), out)
    print(out)


def _show(view: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(view, indent=2))
        return
    from rich.console import Console

    from orchestrator.cli.sweep_render import leaderboard_table

    Console().print(leaderboard_table(view))
