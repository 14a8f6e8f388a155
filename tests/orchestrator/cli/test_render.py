from __future__ import annotations

import io

from rich.console import Console

from orchestrator.cli.render import format_seconds, run_view, runs_table
from orchestrator.domain.spec import parse_spec
from orchestrator.domain.status import RunStatus, Step, StepState
from orchestrator.store import RunRecord, StepRecord

SPEC = parse_spec({"name": "demo", "job": {"script": "a.py"}, "inputs": {"A": "/tmp"}})


def render(renderable: object) -> str:
    out = io.StringIO()
    Console(file=out, width=120, color_system=None).print(renderable)
    return out.getvalue()


def record_with_steps() -> RunRecord:
    record = RunRecord(
        run_id="abc123",
        spec=SPEC,
        status=RunStatus.RUNNING,
        spec_fingerprint=SPEC.fingerprint(),
        created_at=100.0,
        updated_at=100.0,
    )
    record.steps[Step.ENSURE_RESOURCE_GROUP] = StepRecord(
        state=StepState.DONE, attempts=1, started_at=100.0, finished_at=101.5
    )
    record.steps[Step.POLL_JOB] = StepRecord(state=StepState.WAITING, attempts=3, started_at=110.0)
    return record


def test_run_view_shows_all_eight_steps_with_states_and_elapsed_times() -> None:
    text = render(run_view(record_with_steps(), ["epoch 1", "epoch 2"], now=115.0))
    for step in Step:
        assert step.value in text
    assert "1.5s" in text  # finished step: finished - started
    assert "5.0s" in text  # waiting step: now - started
    assert "waiting" in text and "done" in text and "pending" in text
    assert "epoch 2" in text
    assert "running" in text


def test_a_long_log_line_takes_one_screen_line_and_is_never_folded() -> None:
    long_path = "Model saved to /" + "/".join(f"segment{i:02d}" for i in range(30)) + "/model.pt"
    text = render(run_view(record_with_steps(), ["epoch 1", long_path, "done"], now=115.0))
    lines = text.splitlines()
    log_lines = [line for line in lines if "Model saved to" in line]
    assert len(log_lines) == 1 and "…" in log_lines[0]  # cut, not folded onto the next line
    following = lines[lines.index(log_lines[0]) + 1]
    assert "done" in following and "segment" not in following


def test_runs_table_lists_each_run() -> None:
    text = render(runs_table([record_with_steps()]))
    assert "abc123" in text and "demo" in text and "running" in text


def test_runs_table_keeps_run_id_and_status_whole_in_80_columns() -> None:
    record = record_with_steps().model_copy(
        update={"run_id": "0123456789abcdef", "status": RunStatus.SUCCEEDED}
    )
    out = io.StringIO()
    Console(file=out, width=80, color_system=None).print(runs_table([record]))
    assert "0123456789abcdef" in out.getvalue()
    assert "succeeded" in out.getvalue()
    assert max(len(line) for line in out.getvalue().splitlines()) <= 80


def test_format_seconds() -> None:
    assert format_seconds(None) == ""
    assert format_seconds(2.25) == "2.2s"
    assert format_seconds(125) == "2m05s"
