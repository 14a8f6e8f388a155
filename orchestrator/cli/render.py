"""Terminal renderings of runs (rich), shared by `watch`, `demo` and `runs`."""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from typing import NamedTuple

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from orchestrator.cli.terminal import one_line
from orchestrator.domain.status import STEP_ORDER, FailureReason, RunStatus, Step, StepState
from orchestrator.store import RunRecord

STATE_STYLE: dict[StepState, str] = {
    StepState.PENDING: "dim",
    StepState.RUNNING: "bold yellow",
    StepState.WAITING: "yellow",
    StepState.DONE: "green",
    StepState.FAILED: "bold red",
    StepState.SKIPPED: "dim",
}
STATUS_STYLE: dict[RunStatus, str] = {
    RunStatus.SUCCEEDED: "bold green",
    RunStatus.FAILED: "bold red",
    RunStatus.CANCELLED: "bold magenta",
}


def cancelled_by_request(record: RunRecord) -> bool:
    return record.status is RunStatus.CANCELLED and record.reason in (None, FailureReason.CANCELLED)


def status_text(record: RunRecord) -> str:
    """The status as a user reads it: `cancelled by request`, `failed (job_failed)`."""
    if cancelled_by_request(record):
        return "cancelled by request"
    if record.reason:
        return f"{record.status.value} ({record.reason.value})"
    return record.status.value


def reason_text(record: RunRecord) -> str:
    """The reason column of `runs`: why a run ended, `by request` for a cancel."""
    if cancelled_by_request(record):
        return "by request"
    return record.reason.value if record.reason else ""


def error_text(record: RunRecord) -> str | None:
    """The run's error as one line safe to print (it may quote the job's stderr),
    unless it only repeats that the user cancelled it."""
    if cancelled_by_request(record) or record.error is None:
        return None
    return one_line(record.error)


def shown_step_state(record: RunRecord, step: Step) -> StepState:
    """A step's state as shown: on a finished run, a step that never ran was skipped
    (the store leaves it pending: nothing ever started it)."""
    state = record.steps[step].state if step in record.steps else StepState.PENDING
    if record.terminal and state is StepState.PENDING:
        return StepState.SKIPPED
    return state


def relative_to_artifacts(line: str, output_ids: Sequence[str]) -> str:
    """A job log line with the job's output paths as the run's artifacts name them.

    A job writes its outputs to `<share mount>/.../outputs/<OUTPUT_ID>/...` on
    its node (the emulator mirrors it); collect_outputs copies them to
    `<artifacts>/<run>/outputs/<OUTPUT_ID>/...`. Showing `outputs/MODEL/model.pt`
    names a file the user can open, where the node's path names nothing local.
    """
    for output_id in output_ids:
        line = re.sub(
            rf"(?<![\w.])/\S*/outputs/{re.escape(output_id)}(?=/|\b)", f"outputs/{output_id}", line
        )
    return line


def format_seconds(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes}m{rest:02d}s"


def step_elapsed(started: float | None, finished: float | None, now: float) -> float | None:
    if started is None:
        return None
    return (finished or now) - started


def run_title(record: RunRecord) -> Text:
    title = Text(f"run {record.run_id} ({record.spec.name}): ")
    title.append(status_text(record), style=STATUS_STYLE.get(record.status, "bold"))
    return title


def steps_table(record: RunRecord, now: float | None = None) -> Table:
    """The eight steps with their state, attempts and elapsed time."""
    now = time.time() if now is None else now
    table = Table(show_header=True, header_style="bold", expand=False)
    table.add_column("#", justify="right")
    table.add_column("step")
    table.add_column("state")
    table.add_column("attempts", justify="right")
    table.add_column("elapsed", justify="right")
    for row in step_rows(record, now):
        table.add_row(
            str(row.number),
            row.step.value,
            Text(row.state.value, style=STATE_STYLE[row.state]),
            str(row.attempts) if row.attempts else "",
            format_seconds(row.elapsed),
        )
    return table


class StepRow(NamedTuple):
    number: int  # 1-based
    step: Step
    state: StepState  # as shown (shown_step_state)
    attempts: int
    elapsed: float | None
    error: str | None


def step_rows(record: RunRecord, now: float) -> list[StepRow]:
    """The eight steps as `watch` and the dashboard show them."""
    rows = []
    for number, step in enumerate(STEP_ORDER, start=1):
        found = record.steps.get(step)
        elapsed = step_elapsed(found.started_at, found.finished_at, now) if found else None
        attempts = found.attempts if found else 0
        error = found.error if found else None
        rows.append(StepRow(number, step, shown_step_state(record, step), attempts, elapsed, error))
    return rows


def run_view(record: RunRecord, log_lines: Sequence[str] = (), now: float | None = None) -> Panel:
    """The live view: steps, then the error or the job's last log lines."""
    parts: list[RenderableType] = [steps_table(record, now)]
    error = error_text(record)
    if error:
        parts.append(Text(f"error: {error}", style="red"))
    if log_lines:
        # One screen line per log line, cut with an ellipsis: a long path folded
        # inside a box cannot be copied. Full lines: `orchestrator logs RUN`.
        tail = Text("\n".join(log_lines), no_wrap=True, overflow="ellipsis")
        parts.append(Panel(tail, title="job log (last lines)"))
    return Panel(Group(*parts), title=run_title(record), expand=False)


def runs_table(records: Sequence[RunRecord]) -> Table:
    table = Table(show_header=True, header_style="bold")
    # The run id is what users copy: never shortened, whatever the width.
    id_width = max((len(r.run_id) for r in records), default=6)
    table.add_column("run id", no_wrap=True, min_width=id_width)
    table.add_column("name")
    table.add_column("status", no_wrap=True, min_width=len("cancelled"))
    reason_width = max((len(reason_text(r)) for r in records), default=len("reason"))
    table.add_column("reason", no_wrap=True, min_width=reason_width)
    # The rest may wrap in a narrow terminal rather than lose the id, status or reason.
    for column in ("step", "created", "duration"):
        table.add_column(column)
    for record in records:
        created = time.strftime("%m-%d %H:%M:%S", time.localtime(record.created_at))
        duration = (record.finished_at or time.time()) - record.created_at
        table.add_row(
            record.run_id,
            record.spec.name,
            Text(record.status.value, style=STATUS_STYLE.get(record.status, "")),
            reason_text(record),
            record.current_step.value if record.current_step else "",
            created,
            format_seconds(duration),
        )
    return table
