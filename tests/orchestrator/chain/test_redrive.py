"""The re-driver: steps that lost their worker are sent again, and only those."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from orchestrator.chain.cancel import cancel_run
from orchestrator.chain.lease import Lease
from orchestrator.chain.redrive import redrive
from orchestrator.chain.runner import Dispatch, run_step
from orchestrator.chain.steps import StepContext
from orchestrator.domain.spec import parse_spec
from orchestrator.domain.status import FailureReason, RunStatus, Step, StepState
from orchestrator.settings import Settings
from orchestrator.store import RunStore
from tests.support.chain_fakes import FakeClock, FakeGateway

NOW = 2_000_000_000.0


@pytest.fixture
def ctx(fake_redis: redis.Redis) -> Iterator[StepContext]:
    yield StepContext(Settings(), RunStore(fake_redis), FakeGateway(), FakeClock(NOW))


def _spec(tmp_path: Path):  # type: ignore[no-untyped-def]
    (tmp_path / "train.py").write_text("")
    return parse_spec(
        {"name": "nightly", "job": {"script": "train.py"}, "inputs": {"CODE": str(tmp_path)}}
    )


def _stalled_since(ctx: StepContext, run_id: str) -> None:
    """Move the clock past the re-drive threshold of the run's last change."""
    assert isinstance(ctx.clock, FakeClock)
    ctx.clock.now = ctx.store.get(run_id).updated_at + ctx.settings.redrive_after_seconds + 1


def test_redrives_a_run_whose_message_was_lost(ctx: StepContext, tmp_path: Path) -> None:
    record, _ = ctx.store.create_run(_spec(tmp_path))
    ctx.store.mark_dispatched(record.run_id)
    # Right after dispatch nothing is stalled.
    assert isinstance(ctx.clock, FakeClock)
    ctx.clock.now = ctx.store.get(record.run_id).updated_at + 1
    assert redrive(ctx) == []

    _stalled_since(ctx, record.run_id)
    [dispatch] = redrive(ctx)
    assert dispatch.step is Step.ENSURE_RESOURCE_GROUP
    # The re-sent message is the expected one: the chain accepts it.
    following = run_step(ctx, dispatch.step, record.run_id, dispatch.task_id)
    assert following is not None and following.step is Step.PREPARE_SHARE
    # A second pass right away does not send it again.
    ctx.clock.now = ctx.store.get(record.run_id).updated_at + 1
    assert redrive(ctx) == []


def test_a_run_with_a_decided_ending_is_redriven_to_cleanup(
    ctx: StepContext, tmp_path: Path
) -> None:
    record, _ = ctx.store.create_run(_spec(tmp_path))
    ctx.store.mark_dispatched(record.run_id)
    ctx.store.decide_ending(record.run_id, RunStatus.FAILED, FailureReason.TIMEOUT, "slow")
    _stalled_since(ctx, record.run_id)
    [dispatch] = redrive(ctx)
    assert dispatch.step is Step.CLEANUP


def test_a_cancelled_run_whose_message_was_lost_ends_cancelled(
    ctx: StepContext, tmp_path: Path
) -> None:
    record, _ = ctx.store.create_run(_spec(tmp_path))
    ctx.store.mark_dispatched(record.run_id)
    first = run_step(ctx, Step.ENSURE_RESOURCE_GROUP, record.run_id, "first")
    assert first is not None and first.step is Step.PREPARE_SHARE
    # Cancelled while prepare_share's message is lost: nothing acts on the flag.
    cancel_run(ctx.store, record.run_id)
    _stalled_since(ctx, record.run_id)
    dispatch: Dispatch | None
    [dispatch] = redrive(ctx)
    for _ in range(10):
        if dispatch is None:
            break
        dispatch = run_step(ctx, dispatch.step, record.run_id, dispatch.task_id)
    final = ctx.store.get(record.run_id)
    assert (final.status, final.reason) == (RunStatus.CANCELLED, FailureReason.CANCELLED)


def test_a_step_whose_lease_is_held_is_not_redriven(ctx: StepContext, tmp_path: Path) -> None:
    record, _ = ctx.store.create_run(_spec(tmp_path))
    ctx.store.mark_dispatched(record.run_id)
    ctx.store.set_step(record.run_id, Step.ENSURE_RESOURCE_GROUP, StepState.RUNNING, task_id="t1")
    _stalled_since(ctx, record.run_id)
    lease = Lease.acquire(ctx.store.redis, ctx.store.keys, record.run_id, "t1", 30)
    assert lease is not None
    with lease:
        assert redrive(ctx) == []  # a long step whose worker is alive and renewing
    [dispatch] = redrive(ctx)  # the worker is gone: its lease with it
    assert (dispatch.step, dispatch.task_id) == (Step.ENSURE_RESOURCE_GROUP, "t1")


def test_a_scheduled_wait_is_not_redriven(ctx: StepContext, tmp_path: Path) -> None:
    record, _ = ctx.store.create_run(_spec(tmp_path))
    ctx.store.mark_dispatched(record.run_id)
    ctx.store.set_step(record.run_id, Step.ENSURE_RESOURCE_GROUP, StepState.WAITING, task_id="w1")
    ctx.store.due.schedule("w1", {"step": "ensure_resource_group"}, NOW + 3600)
    _stalled_since(ctx, record.run_id)
    assert redrive(ctx) == []
    assert ctx.store.due.claim(NOW + 3600) == [{"step": "ensure_resource_group"}]
    [dispatch] = redrive(ctx)  # claimed but never sent: its claimer died
    assert dispatch.task_id == "w1"
