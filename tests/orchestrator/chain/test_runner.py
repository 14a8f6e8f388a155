"""The chain runner and step functions, driven without Celery, against the store
on fakeredis (its Lua scripts included) and an in-memory gateway."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from orchestrator.azure.errors import PermanentAzureError
from orchestrator.azure.types import NodeCounts
from orchestrator.chain.cancel import cancel_run
from orchestrator.chain.runner import Dispatch, run_step
from orchestrator.chain.steps import StepContext, poll_countdown
from orchestrator.domain.spec import RunSpec, parse_spec
from orchestrator.domain.status import STEP_ORDER, FailureReason, RunStatus, Step, StepState
from orchestrator.settings import Settings
from orchestrator.store import RunStore
from tests.support.chain_fakes import FakeClock, FakeGateway


@pytest.fixture
def ctx(fake_redis: redis.Redis, tmp_path: Path) -> Iterator[StepContext]:
    settings = Settings(
        ORCH_ARTIFACTS_DIR=str(tmp_path / "artifacts"),
        ORCH_INPUT_ROOTS=str(tmp_path),
        ORCH_POLL_INITIAL_SECONDS=1,
        ORCH_POLL_BACKOFF=2,
        ORCH_POLL_MAX_SECONDS=5,
        ORCH_NODE_WAIT_TIMEOUT_SECONDS=60,
    )
    yield StepContext(settings, RunStore(fake_redis), FakeGateway(), FakeClock(1_000_000.0))


def _spec(tmp_path: Path, **overrides: Any) -> RunSpec:
    code = tmp_path / "code"
    code.mkdir(exist_ok=True)
    (code / "train.py").write_text("print('hi')\n")
    data: dict[str, Any] = {
        "name": "unit",
        "job": {"script": "train.py"},
        "inputs": {"CODE": str(code)},
        "outputs": ["MODEL"],
    }
    data.update(overrides)
    return parse_spec(data)


def _drive(ctx: StepContext, run_id: str, first: Dispatch | None = None) -> list[Dispatch]:
    """Run dispatches one after another (as the workers would), returning them all."""
    seen: list[Dispatch] = []
    dispatch = first or Dispatch(Step.ENSURE_RESOURCE_GROUP, run_id, "first")
    while dispatch is not None:
        seen.append(dispatch)
        assert len(seen) < 100, "the chain did not end"
        dispatch = run_step(ctx, dispatch.step, run_id, dispatch.task_id)
    return seen


def _gateway(ctx: StepContext) -> FakeGateway:
    gateway = ctx.gateway
    assert isinstance(gateway, FakeGateway)
    return gateway


def test_happy_path_runs_every_step_once_and_succeeds(ctx: StepContext, tmp_path: Path) -> None:
    record, _ = ctx.store.create_run(_spec(tmp_path))
    _drive(ctx, record.run_id)

    final = ctx.store.get(record.run_id)
    assert final.status is RunStatus.SUCCEEDED
    assert all(final.step(s).state is StepState.DONE for s in STEP_ORDER)
    assert final.outputs == ["outputs/MODEL/sub/model.bin", "stdout.txt"]
    assert final.metrics == {"accuracy": 0.5}
    gateway = _gateway(ctx)
    assert gateway.calls["ensure_cluster"] == gateway.calls["create_job"] == 1
    assert gateway.calls["delete_cluster"] == gateway.calls["delete_job"] == 1
    assert not gateway.clusters and not gateway.jobs
    run_dir = ctx.settings.artifacts_dir / record.run_id
    assert (run_dir / "outputs" / "MODEL" / "sub" / "model.bin").read_bytes() == b"weights"


def test_stale_and_duplicate_messages_do_nothing(ctx: StepContext, tmp_path: Path) -> None:
    record, _ = ctx.store.create_run(_spec(tmp_path))
    nxt = run_step(ctx, Step.ENSURE_RESOURCE_GROUP, record.run_id, "first")
    assert nxt is not None and nxt.step is Step.PREPARE_SHARE
    calls = dict(_gateway(ctx).calls)

    # A second first-task (another id) is stale; the same message again finds
    # its step done and the next one already sent.
    assert run_step(ctx, Step.ENSURE_RESOURCE_GROUP, record.run_id, "other") is None
    resent = run_step(ctx, Step.ENSURE_RESOURCE_GROUP, record.run_id, "first")
    assert resent == Dispatch(Step.PREPARE_SHARE, record.run_id, nxt.task_id)
    # A message for the next step with the wrong id is dropped.
    assert run_step(ctx, Step.PREPARE_SHARE, record.run_id, "bogus") is None
    assert dict(_gateway(ctx).calls) == calls

    run_step(ctx, Step.PREPARE_SHARE, record.run_id, nxt.task_id)
    # Once the next step has started, the finished step re-sends nothing.
    assert run_step(ctx, Step.ENSURE_RESOURCE_GROUP, record.run_id, "first") is None


def test_a_locked_run_is_retried_later_with_the_same_message(
    ctx: StepContext, tmp_path: Path
) -> None:
    record, _ = ctx.store.create_run(_spec(tmp_path))
    ctx.store.redis.set(f"orch:lock:{record.run_id}", "someone-else")
    again = run_step(ctx, Step.ENSURE_RESOURCE_GROUP, record.run_id, "first")
    assert again is not None and (again.task_id, again.countdown) == ("first", 1.0)
    assert sum(_gateway(ctx).calls.values()) == 0


def test_poll_countdown_backs_off_to_the_maximum(ctx: StepContext) -> None:
    assert [poll_countdown(ctx.settings, n) for n in range(5)] == [1, 2, 4, 5, 5]
    short = ctx.settings.model_copy(update={"visibility_timeout_seconds": 4})
    assert poll_countdown(short, 10) == 2  # never near the visibility timeout


def test_waiting_for_the_job_reschedules_with_growing_countdowns(
    ctx: StepContext, tmp_path: Path
) -> None:
    _gateway(ctx).job_states = ["queued", "running", "running", "running", "succeeded"]
    record, _ = ctx.store.create_run(_spec(tmp_path))
    dispatches = _drive(ctx, record.run_id)
    polls = [d.countdown for d in dispatches if d.step is Step.POLL_JOB and d.countdown]
    assert polls == [1, 2, 4, 5]
    assert ctx.store.get(record.run_id).status is RunStatus.SUCCEEDED


def test_failed_job_ends_failed_after_cleanup(ctx: StepContext, tmp_path: Path) -> None:
    gateway = _gateway(ctx)
    gateway.job_states, gateway.exit_code = ["failed"], 3
    record, _ = ctx.store.create_run(_spec(tmp_path))
    _drive(ctx, record.run_id)
    final = ctx.store.get(record.run_id)
    assert (final.status, final.reason) == (RunStatus.FAILED, FailureReason.JOB_FAILED)
    assert "exit code 3" in (final.error or "")
    assert final.step(Step.POLL_JOB).state is StepState.FAILED
    assert final.step(Step.COLLECT_OUTPUTS).state is StepState.SKIPPED  # never reached
    assert not gateway.clusters and not gateway.jobs


def test_permanent_azure_error_fails_with_its_reason(ctx: StepContext, tmp_path: Path) -> None:
    _gateway(ctx).fail_on["ensure_cluster"] = PermanentAzureError(
        "cores quota exceeded", reason=FailureReason.QUOTA
    )
    record, _ = ctx.store.create_run(_spec(tmp_path))
    _drive(ctx, record.run_id)
    final = ctx.store.get(record.run_id)
    assert (final.status, final.reason) == (RunStatus.FAILED, FailureReason.QUOTA)


@pytest.mark.parametrize(
    ("counts", "reason"),
    [
        (NodeCounts(0, 0, 1, 0, 0, 1, "steady"), FailureReason.ALLOCATION_FAILED),
        (
            NodeCounts(0, 0, 0, 0, 0, 1, "steady", ["AllocationFailed: no capacity"]),
            FailureReason.ALLOCATION_FAILED,
        ),
    ],
)
def test_nodes_that_cannot_come_up_fail_the_run(
    ctx: StepContext, tmp_path: Path, counts: NodeCounts, reason: FailureReason
) -> None:
    _gateway(ctx).node_counts = [counts]
    record, _ = ctx.store.create_run(_spec(tmp_path))
    _drive(ctx, record.run_id)
    final = ctx.store.get(record.run_id)
    assert (final.status, final.reason) == (RunStatus.FAILED, reason)
    assert _gateway(ctx).calls["create_job"] == 0
    assert not _gateway(ctx).clusters


def test_waiting_for_nodes_times_out(ctx: StepContext, tmp_path: Path) -> None:
    _gateway(ctx).node_counts = [NodeCounts(0, 1, 0, 0, 0, 1, "resizing")]
    record, _ = ctx.store.create_run(_spec(tmp_path))
    dispatch: Dispatch | None = Dispatch(Step.ENSURE_RESOURCE_GROUP, record.run_id, "first")
    while dispatch is not None and dispatch.step is not Step.CLEANUP:
        dispatch = run_step(ctx, dispatch.step, record.run_id, dispatch.task_id)
        assert isinstance(ctx.clock, FakeClock)
        ctx.clock.now += 10  # each poll: ten seconds later
    _drive(ctx, record.run_id, dispatch)
    final = ctx.store.get(record.run_id)
    assert (final.status, final.reason) == (RunStatus.FAILED, FailureReason.TIMEOUT)
    assert final.step(Step.WAIT_FOR_NODES).attempts >= 6


def test_missing_input_is_an_invalid_spec(ctx: StepContext, tmp_path: Path) -> None:
    spec = _spec(tmp_path, inputs={"CODE": str(tmp_path / "nowhere")})
    record, _ = ctx.store.create_run(spec)
    _drive(ctx, record.run_id)
    final = ctx.store.get(record.run_id)
    assert (final.status, final.reason) == (RunStatus.FAILED, FailureReason.INVALID_SPEC)
    assert "inputs.CODE" in (final.error or "")
    assert _gateway(ctx).calls["ensure_cluster"] == 0
    # The steps it never reached say so, in the record the API and `status --json` show.
    states = {step: final.step(step).state for step in Step}
    assert states[Step.PREPARE_SHARE] is StepState.FAILED
    assert {states[s] for s in (Step.CREATE_CLUSTER, Step.POLL_JOB, Step.COLLECT_OUTPUTS)} == {
        StepState.SKIPPED
    }
    assert states[Step.CLEANUP] is StepState.DONE


def test_a_redelivered_prepare_share_uploads_nothing_again(
    ctx: StepContext, tmp_path: Path
) -> None:
    record, _ = ctx.store.create_run(_spec(tmp_path))
    run_step(ctx, Step.ENSURE_RESOURCE_GROUP, record.run_id, "first")
    step_task = ctx.store.get(record.run_id).step(Step.PREPARE_SHARE).task_id
    assert step_task is not None
    run_step(ctx, Step.PREPARE_SHARE, record.run_id, step_task)
    assert _gateway(ctx).calls["upload_file"] == 1
    # The same step again (a redelivered message): every file is already there.
    ctx.store.set_step(record.run_id, Step.PREPARE_SHARE, StepState.RUNNING)
    from orchestrator.chain.steps import prepare_share

    outcome = prepare_share(ctx, record.run_id)
    assert _gateway(ctx).calls["upload_file"] == 1
    assert getattr(outcome, "detail", {})["skipped"] == 1
    assert ctx.store.get(record.run_id).inputs["CODE"].files == 1


def test_cleanup_deletes_the_runs_own_input_copies(ctx: StepContext, tmp_path: Path) -> None:
    record, _ = ctx.store.create_run(_spec(tmp_path))
    _drive(ctx, record.run_id)
    gateway = _gateway(ctx)
    assert gateway.calls["upload_file"] == 1  # the input was on the share...
    assert gateway.calls["delete_tree"] == 1  # ...and is gone after cleanup
    assert not [p for p in gateway.share_files if p.startswith(f"inputs/unit/{record.run_id}/")]


def test_cancel_during_the_job_terminates_it_and_cleans_up(
    ctx: StepContext, tmp_path: Path
) -> None:
    _gateway(ctx).job_states = ["running"]
    record, _ = ctx.store.create_run(_spec(tmp_path))
    dispatch: Dispatch | None = Dispatch(Step.ENSURE_RESOURCE_GROUP, record.run_id, "first")
    while dispatch is not None and dispatch.step is not Step.POLL_JOB:
        dispatch = run_step(ctx, dispatch.step, record.run_id, dispatch.task_id)
    assert dispatch is not None
    dispatch = run_step(ctx, dispatch.step, record.run_id, dispatch.task_id)  # waiting
    cancel_run(ctx.store, record.run_id)
    _drive(ctx, record.run_id, dispatch)
    final = ctx.store.get(record.run_id)
    assert (final.status, final.reason) == (RunStatus.CANCELLED, FailureReason.CANCELLED)
    gateway = _gateway(ctx)
    assert gateway.calls["terminate_job"] == 1
    assert not gateway.clusters and not gateway.jobs


def test_cancel_brings_a_waiting_poll_forward_to_now(ctx: StepContext, tmp_path: Path) -> None:
    """A poll may wait minutes (ORCH_POLL_MAX_SECONDS): a cancel must not."""
    _gateway(ctx).job_states = ["running"]
    record, _ = ctx.store.create_run(_spec(tmp_path))
    dispatch: Dispatch | None = Dispatch(Step.ENSURE_RESOURCE_GROUP, record.run_id, "first")
    while dispatch is not None and dispatch.step is not Step.POLL_JOB:
        dispatch = run_step(ctx, dispatch.step, record.run_id, dispatch.task_id)
    assert dispatch is not None
    waiting = run_step(ctx, dispatch.step, record.run_id, dispatch.task_id)
    assert waiting is not None and waiting.countdown > 0
    far = 10_000_000_000.0
    ctx.store.due.schedule(waiting.task_id, {"step": "poll_job", "run_id": record.run_id}, far)
    cancel_run(ctx.store, record.run_id)
    due = ctx.store.redis.zscore(ctx.store.keys.due, waiting.task_id)
    assert due is not None and due < far, "the waiting poll was not brought forward"


def test_cancel_of_a_queued_run_ends_it_without_touching_azure(
    ctx: StepContext, tmp_path: Path
) -> None:
    record, _ = ctx.store.create_run(_spec(tmp_path))
    assert cancel_run(ctx.store, record.run_id).status is RunStatus.CANCELLED
    assert run_step(ctx, Step.ENSURE_RESOURCE_GROUP, record.run_id, "first") is None
    assert sum(_gateway(ctx).calls.values()) == 0


def test_a_shared_cluster_is_adopted_and_never_deleted(ctx: StepContext, tmp_path: Path) -> None:
    gateway = _gateway(ctx)
    gateway.clusters.add("warm-pool")
    spec = _spec(tmp_path, cluster={"policy": "shared", "name": "warm-pool"})
    record, _ = ctx.store.create_run(spec)
    _drive(ctx, record.run_id)
    final = ctx.store.get(record.run_id)
    assert final.status is RunStatus.SUCCEEDED
    assert final.step(Step.CREATE_CLUSTER).detail["adopted"] is True
    assert gateway.clusters == {"warm-pool"}
    assert gateway.calls["delete_cluster"] == 0


def test_a_job_running_past_the_timeout_is_terminated_and_fails(
    ctx: StepContext, tmp_path: Path
) -> None:
    ctx.settings = ctx.settings.model_copy(update={"job_timeout_seconds": 30})
    _gateway(ctx).job_states = ["running"]
    record, _ = ctx.store.create_run(_spec(tmp_path))
    dispatch: Dispatch | None = Dispatch(Step.ENSURE_RESOURCE_GROUP, record.run_id, "first")
    while dispatch is not None and dispatch.step is not Step.CLEANUP:
        dispatch = run_step(ctx, dispatch.step, record.run_id, dispatch.task_id)
        assert isinstance(ctx.clock, FakeClock)
        ctx.clock.now += 10
    _drive(ctx, record.run_id, dispatch)
    final = ctx.store.get(record.run_id)
    assert (final.status, final.reason) == (RunStatus.FAILED, FailureReason.TIMEOUT)
    assert _gateway(ctx).calls["terminate_job"] == 1
    assert not _gateway(ctx).jobs and not _gateway(ctx).clusters


@pytest.mark.parametrize("cleanup_state", [StepState.DONE, StepState.FAILED])
def test_a_failed_run_whose_worker_died_after_cleanup_finished_still_ends(
    ctx: StepContext, tmp_path: Path, cleanup_state: StepState
) -> None:
    gateway = _gateway(ctx)
    gateway.job_states, gateway.exit_code = ["failed"], 3
    record, _ = ctx.store.create_run(_spec(tmp_path))
    dispatch: Dispatch | None = Dispatch(Step.ENSURE_RESOURCE_GROUP, record.run_id, "first")
    while dispatch is not None and dispatch.step is not Step.CLEANUP:
        dispatch = run_step(ctx, dispatch.step, record.run_id, dispatch.task_id)
    assert dispatch is not None
    # The worker recorded cleanup's outcome, then died before ending the run;
    # the broker redelivers the same cleanup message.
    ctx.store.set_step(record.run_id, Step.CLEANUP, cleanup_state, task_id=dispatch.task_id)
    assert run_step(ctx, Step.CLEANUP, record.run_id, dispatch.task_id) is None
    final = ctx.store.get(record.run_id)
    assert (final.status, final.reason) == (RunStatus.FAILED, FailureReason.JOB_FAILED)
