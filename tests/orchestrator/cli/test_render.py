from __future__ import annotations

import io

from rich.console import Console

from orchestrator.cli.render import (
    error_text,
    format_seconds,
    relative_to_artifacts,
    run_view,
    runs_table,
)
from orchestrator.domain.spec import parse_spec
from orchestrator.domain.status import STEP_ORDER, FailureReason, RunStatus, Step, StepState
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


def test_runs_table_keeps_run_id_status_and_reason_whole_in_80_columns() -> None:
    record = record_with_steps().model_copy(
        update={
            "run_id": "0123456789abcdef",
            "status": RunStatus.FAILED,
            "reason": FailureReason.ALLOCATION_FAILED,
            "current_step": Step.ENSURE_RESOURCE_GROUP,
            "spec": SPEC.model_copy(update={"name": "a-rather-long-spec-name-for-mnist"}),
        }
    )
    out = io.StringIO()
    Console(file=out, width=80, color_system=None).print(runs_table([record]))
    assert "0123456789abcdef" in out.getvalue()
    assert "failed" in out.getvalue()
    assert "allocation_failed" in out.getvalue()
    assert max(len(line) for line in out.getvalue().splitlines()) <= 80


def cancelled_during_the_job() -> RunRecord:
    record = record_with_steps().model_copy(
        update={
            "status": RunStatus.CANCELLED,
            "reason": FailureReason.CANCELLED,
            "error": "cancelled by request",
        }
    )
    record.steps[Step.POLL_JOB] = StepRecord(state=StepState.SKIPPED, attempts=3)
    record.steps[Step.CLEANUP] = StepRecord(state=StepState.DONE, attempts=1)
    return record


def test_a_cancel_reads_cancelled_by_request_not_as_an_error() -> None:
    record = cancelled_during_the_job()
    view = render(run_view(record, now=115.0))
    assert "cancelled by request" in view and "error" not in view
    table = render(runs_table([record]))
    assert "by request" in table


def test_steps_a_finished_run_never_ran_show_skipped() -> None:
    text = render(run_view(cancelled_during_the_job(), now=115.0))
    rows = {step: line for line in text.splitlines() for step in STEP_ORDER if step.value in line}
    assert "skipped" in rows[Step.COLLECT_OUTPUTS] and "skipped" in rows[Step.SUBMIT_JOB]
    assert "done" in rows[Step.CLEANUP]
    assert "pending" not in text
    # While the run goes on, a step not reached yet is pending.
    assert "pending" in render(run_view(record_with_steps(), now=115.0))


def test_format_seconds() -> None:
    assert format_seconds(None) == ""
    assert format_seconds(2.25) == "2.2s"
    assert format_seconds(125) == "2m05s"


def test_job_output_paths_in_log_lines_read_as_the_artifacts_name_them() -> None:
    node_path = "/mnt/batch/azfiles/runs/abc/job-1/outputs/MODEL/ConvNet_MNIST.pt"
    assert relative_to_artifacts(f"Model saved to {node_path}", ["MODEL"]) == (
        "Model saved to outputs/MODEL/ConvNet_MNIST.pt"
    )
    # Another output id, or a path that is not an output, is left alone.
    assert (
        relative_to_artifacts("wrote /a/outputs/MODELS/x", ["MODEL"]) == "wrote /a/outputs/MODELS/x"
    )
    assert relative_to_artifacts("read /data/train.txt", ["MODEL"]) == "read /data/train.txt"


def test_a_job_quoting_error_is_one_line_without_escape_sequences() -> None:
    record = record_with_steps()
    record.status = RunStatus.FAILED
    record.reason = FailureReason.JOB_FAILED
    record.error = "job failed; stderr: \x1b]0;pwned\x07\x1b[2JValueError\nbad lr"
    assert error_text(record) == "job failed; stderr: ValueError bad lr"
    out = io.StringIO()
    Console(file=out, width=120, force_terminal=True).print(run_view(record))
    assert "pwned" not in out.getvalue() and "\x1b[2J" not in out.getvalue()
