"""A run that got as far as a job keeps the job's stdout/stderr whatever its
ending, and a failed job's error quotes the end of its stderr. Driven without
Celery against a real Redis store and the in-memory gateway."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from orchestrator.chain.cancel import cancel_run
from orchestrator.chain.runner import Dispatch, run_step
from orchestrator.chain.steps import STDERR_TAIL_CHARS, StepContext, stderr_tail
from orchestrator.domain.spec import RunSpec, parse_spec
from orchestrator.domain.status import FailureReason, RunStatus, Step
from orchestrator.observability.logs import register_secret
from orchestrator.settings import Settings
from orchestrator.store import RunStore
from tests.support.chain_fakes import FakeGateway


@pytest.fixture
def gateway() -> FakeGateway:
    return FakeGateway()


@pytest.fixture
def ctx(redis_url: str, tmp_path: Path, gateway: FakeGateway) -> Iterator[StepContext]:
    client = redis.Redis.from_url(redis_url)
    settings = Settings(
        ORCH_ARTIFACTS_DIR=str(tmp_path / "artifacts"), ORCH_INPUT_ROOTS=str(tmp_path)
    )
    yield StepContext(settings, RunStore(client), gateway, lambda: 1_000_000.0)
    client.close()


def _spec(tmp_path: Path) -> RunSpec:
    code = tmp_path / "code"
    code.mkdir(exist_ok=True)
    (code / "train.py").write_text("print('hi')\n")
    return parse_spec(
        {"name": "logs", "job": {"script": "train.py"}, "inputs": {"CODE": str(code)}}
    )


def _drive(
    ctx: StepContext, dispatch: Dispatch | None, until: Step | None = None
) -> Dispatch | None:
    steps = 0
    while dispatch is not None and dispatch.step is not until:
        steps += 1
        assert steps < 100, "the chain did not end"
        dispatch = run_step(ctx, dispatch.step, dispatch.run_id, dispatch.task_id)
    return dispatch


def test_a_failed_job_keeps_its_logs_and_its_error_quotes_stderr(
    ctx: StepContext, gateway: FakeGateway, tmp_path: Path
) -> None:
    gateway.job_states, gateway.exit_code = ["failed"], 2
    gateway.stderr_text = b"Traceback (most recent call last):\n  boom\nValueError: bad lr\n\n"
    record, _ = ctx.store.create_run(_spec(tmp_path))
    _drive(ctx, Dispatch(Step.ENSURE_RESOURCE_GROUP, record.run_id, "first"))

    final = ctx.store.get(record.run_id)
    assert (final.status, final.reason) == (RunStatus.FAILED, FailureReason.JOB_FAILED)
    assert final.error is not None
    assert final.error.endswith(
        "exit code 2; stderr: Traceback (most recent call last): | boom | ValueError: bad lr"
    )
    run_dir = ctx.settings.artifacts_dir / record.run_id
    assert (run_dir / "stderr.txt").read_bytes() == gateway.stderr_text
    assert (run_dir / "stdout.txt").is_file()
    assert {"stdout.txt", "stderr.txt"} <= set(final.outputs)
    # Collected once, while the job existed; cleanup did not fetch them again.
    assert gateway.calls["list_output_files"] == 1
    assert not gateway.jobs


def test_a_cancelled_run_keeps_the_logs_of_its_job(
    ctx: StepContext, gateway: FakeGateway, tmp_path: Path
) -> None:
    gateway.job_states = ["running"]
    gateway.stderr_text = b"warming up\n"
    record, _ = ctx.store.create_run(_spec(tmp_path))
    polling = _drive(
        ctx, Dispatch(Step.ENSURE_RESOURCE_GROUP, record.run_id, "first"), Step.POLL_JOB
    )
    assert polling is not None
    waiting = run_step(ctx, polling.step, record.run_id, polling.task_id)
    cancel_run(ctx.store, record.run_id)
    _drive(ctx, waiting)

    final = ctx.store.get(record.run_id)
    assert final.status is RunStatus.CANCELLED
    run_dir = ctx.settings.artifacts_dir / record.run_id
    assert (run_dir / "stdout.txt").read_bytes() == b"accuracy=0.5\n"
    assert (run_dir / "stderr.txt").read_bytes() == b"warming up\n"
    assert {"stdout.txt", "stderr.txt"} <= set(final.outputs)
    # Listed before the job was deleted.
    assert gateway.calls["list_output_files"] == 1 and not gateway.jobs


def test_a_run_that_never_created_a_job_has_no_logs_to_collect(
    ctx: StepContext, gateway: FakeGateway, tmp_path: Path
) -> None:
    record, _ = ctx.store.create_run(_spec(tmp_path))
    first = run_step(ctx, Step.ENSURE_RESOURCE_GROUP, record.run_id, "first")
    cancel_run(ctx.store, record.run_id)
    _drive(ctx, first)
    assert ctx.store.get(record.run_id).status is RunStatus.CANCELLED
    assert gateway.calls["list_output_files"] == 0


def test_stderr_tail_is_the_last_lines_bounded_and_redacted(tmp_path: Path) -> None:
    log = tmp_path / "stderr.txt"
    assert stderr_tail(log) == ""
    register_secret("hunter2-secret-value")
    log.write_text("".join(f"line {n}\n" for n in range(20)) + "password hunter2-secret-value\n")
    assert stderr_tail(log) == "line 16 | line 17 | line 18 | line 19 | password ***"
    log.write_text("x" * 5000 + "\n")
    tail = stderr_tail(log)
    assert len(tail) == STDERR_TAIL_CHARS and tail.startswith("…")
