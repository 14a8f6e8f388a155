"""What the dashboard's templates show of a run, a schedule or a sweep: plain
values, worked out here so the templates only lay them out. Texts and colours
follow the CLI (cli/render.py)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from orchestrator.cli.render import format_seconds, reason_text, step_rows
from orchestrator.domain.status import RunStatus, StepState
from orchestrator.store import RunRecord

# The CSS class of each status and step state: the CLI's colours (cli/render.py).
STATUS_CLASS: dict[str, str] = {
    RunStatus.QUEUED: "st-queued",
    RunStatus.PROVISIONING: "st-active",
    RunStatus.RUNNING: "st-active",
    RunStatus.COLLECTING: "st-active",
    RunStatus.SUCCEEDED: "st-ok",
    RunStatus.FAILED: "st-bad",
    RunStatus.CANCELLED: "st-cancel",
}
STATE_CLASS: dict[StepState, str] = {
    StepState.PENDING: "st-dim",
    StepState.RUNNING: "st-active",
    StepState.WAITING: "st-wait",
    StepState.DONE: "st-ok",
    StepState.FAILED: "st-bad",
    StepState.SKIPPED: "st-dim",
}
OUTCOME_CLASS = {"ran": "st-ok", "skipped": "st-dim", "replaced": "st-cancel", "missed": "st-bad"}


def status_class(status: str) -> str:
    return STATUS_CLASS.get(status, "st-queued")


def when(epoch: float | None) -> str:
    """A moment as UTC, to the second ("" for none)."""
    if epoch is None:
        return ""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S")


def duration(record: RunRecord, now: float | None = None) -> str:
    end = record.finished_at if record.terminal else (time.time() if now is None else now)
    return format_seconds((end or record.updated_at) - record.created_at)


def run_row(record: RunRecord) -> dict[str, Any]:
    """One line of the runs table."""
    return {
        "run_id": record.run_id,
        "name": record.spec.name,
        "status": record.status.value,
        "status_class": status_class(record.status),
        "reason": reason_text(record),
        "step": record.current_step.value if record.current_step else "",
        "created": when(record.created_at),
        "duration": duration(record),
        "tags": sorted(record.spec.tags.items()),
    }


def timeline(record: RunRecord, now: float | None = None) -> list[dict[str, Any]]:
    """The eight steps: state, attempts and elapsed time (as `orchestrator watch`)."""
    now = time.time() if now is None else now
    return [
        {
            "number": row.number,
            "name": row.step.value,
            "state": row.state.value,
            "state_class": STATE_CLASS[row.state],
            "attempts": row.attempts,
            "elapsed": format_seconds(row.elapsed),
            "error": row.error,
            "current": record.current_step is row.step and not record.terminal,
        }
        for row in step_rows(record, now)
    ]


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


def sweep_summary(sweep: dict[str, Any]) -> dict[str, Any]:
    """A sweep view (GET /v1/sweeps/{id}) with what the page adds: the leaderboard
    in objective order, the best trial flagged, the parameter names charted."""
    objective = sweep.get("objective") or {}
    best_run = (sweep.get("best") or {}).get("run_id")
    trials = list(sweep.get("trials") or [])
    parameters = sorted({name for trial in trials for name in (trial.get("parameters") or {})})
    return {
        "objective": objective,
        "trials": [{**trial, "best": trial.get("run_id") == best_run} for trial in trials],
        "parameters": parameters,
        "counts": sorted((sweep.get("counts") or {}).items()),
    }
