"""`orchestrator demo --sweep`: examples/mnist/sweep.yaml on the demo's stack,
followed live as a leaderboard, ending with the best test error and a plot."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import typer
from rich.console import Console
from rich.live import Live

from orchestrator.cli.common import CliError
from orchestrator.store import RunStore

REFRESH_SECONDS = 1.0


def run_sweep_demo(
    console: Console, sweep_file: Path, store: RunStore, home: Path, started: float
) -> None:
    from orchestrator.chain.enqueue import direct_uploads
    from orchestrator.chain.sweep_view import sweep_view
    from orchestrator.chain.sweeps import submit_sweep
    from orchestrator.cli.sweep_render import leaderboard_table, plot_sweep
    from orchestrator.domain.status import SWEEP_TERMINAL
    from orchestrator.domain.sweep import load_sweep
    from orchestrator.inputs.submit import upload_local_inputs
    from orchestrator.settings import get_settings

    spec = load_sweep(sweep_file)
    # The trial's data goes to the share once, for every trial.
    trial, _ = upload_local_inputs(spec.trial, direct_uploads(get_settings(), store))
    record, _ = submit_sweep(spec.model_copy(update={"trial": trial}), store=store)
    limits = spec.limits
    console.print(
        f"[bold]3/4[/] submitted sweep {record.sweep_id}: {limits.max_total_trials} trials, "
        f"{limits.max_concurrent_trials} at once, on one cluster"
    )
    pause = threading.Event()
    view = sweep_view(store.sweeps.get(record.sweep_id))
    with Live(leaderboard_table(view), console=console, auto_refresh=False) as live:
        while view["status"] not in SWEEP_TERMINAL:
            pause.wait(REFRESH_SECONDS)
            view = sweep_view(store.sweeps.get(record.sweep_id))
            live.update(leaderboard_table(view), refresh=True)

    console.print("\n[bold]4/4[/] result")
    plot = (home / f"sweep-{record.sweep_id}.png").resolve()
    plot_sweep(view, plot)
    best = view["best"]
    lines = [f"  status:     {view['status']}"]
    if best is not None:
        params = ", ".join(
            f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
            for k, v in best["parameters"].items()
        )
        lines.append(f"  best trial: {best['run_id']} ({params})")
        trial = next(t for t in view["trials"] if t["run_id"] == best["run_id"])
        error = trial["metrics"].get("test_error", best["value"])
        lines.append(f"  test error: {error:.2%} (held-out digits, best trial)")
    lines.append(f"  plot:       {plot}")
    lines.append(f"  wall time:  {time.monotonic() - started:.1f}s")
    typer.echo("\n".join(lines))
    if view["status"] != "succeeded":
        raise CliError(f"the demo sweep ended {view['status']}: {view.get('error') or ''}")
