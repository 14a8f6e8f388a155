"""The reaper: leaked resources of ended or unknown runs, and stalled runs."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis

from orchestrator.azure.errors import PermanentAzureError
from orchestrator.azure.types import AzureResource
from orchestrator.chain.cancel import cancel_run
from orchestrator.chain.reaper import reap, stale_after_seconds
from orchestrator.chain.runner import Dispatch, run_step
from orchestrator.chain.steps import StepContext
from orchestrator.domain.spec import parse_spec
from orchestrator.domain.status import FailureReason, RunStatus, Step
from orchestrator.settings import Settings
from orchestrator.store import RunStore
from tests.support.chain_fakes import FakeGateway

NOW = 2_000_000_000.0
GRACE = 600.0


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def ctx(fake_redis: redis.Redis, tmp_path: Path) -> Iterator[StepContext]:
    settings = Settings(ORCH_REAPER_GRACE_SECONDS=GRACE, ORCH_VISIBILITY_TIMEOUT_SECONDS=60)
    yield StepContext(settings, RunStore(fake_redis), FakeGateway(), Clock())


def _created(age: float) -> datetime:
    return datetime.fromtimestamp(NOW - age, tz=UTC)


def _spec(tmp_path: Path):  # type: ignore[no-untyped-def]
    (tmp_path / "train.py").write_text("")
    return parse_spec(
        {"name": "nightly", "job": {"script": "train.py"}, "inputs": {"CODE": str(tmp_path)}}
    )


def test_reaps_old_resources_of_ended_and_unknown_runs_only(
    ctx: StepContext, tmp_path: Path
) -> None:
    live, _ = ctx.store.create_run(_spec(tmp_path), run_id="live-run")
    ended, _ = ctx.store.create_run(_spec(tmp_path), run_id="ended-run")
    ctx.store.transition(ended.run_id, RunStatus.FAILED, reason=FailureReason.JOB_FAILED)
    gateway = ctx.gateway
    assert isinstance(gateway, FakeGateway)
    gateway.listed_clusters = [
        AzureResource("orch-live-run", _created(3600)),  # its run is still going
        AzureResource("orch-ended-run", _created(3600)),  # leaked by an ended run
        AzureResource("orch-ghost-run", _created(3600)),  # run unknown to the store
        AzureResource("orch-young-ghost", _created(60)),  # within the grace period
        AzureResource("warm-pool", _created(99999)),  # shared: never ours to reap
    ]
    gateway.listed_jobs = [
        AzureResource("nightly-ended-run", _created(3600), experiment="nightly"),
        AzureResource("nightly-live-run", _created(3600), experiment="nightly"),
    ]
    reap(ctx)
    assert sorted(gateway.deleted) == ["nightly-ended-run", "orch-ended-run", "orch-ghost-run"]
    assert ctx.store.get(live.run_id).status is RunStatus.QUEUED


def test_redrives_a_run_whose_message_was_lost(ctx: StepContext, tmp_path: Path) -> None:
    record, _ = ctx.store.create_run(_spec(tmp_path))
    ctx.store.mark_dispatched(record.run_id)
    # Right after dispatch nothing is stalled.
    assert isinstance(ctx.clock, Clock)
    ctx.clock.now = ctx.store.get(record.run_id).updated_at + 1
    assert reap(ctx) == []

    ctx.clock.now += stale_after_seconds(ctx) + 1
    [dispatch] = reap(ctx)
    assert dispatch.step is Step.ENSURE_RESOURCE_GROUP
    # The re-sent message is the expected one: the chain accepts it.
    following = run_step(ctx, dispatch.step, record.run_id, dispatch.task_id)
    assert following is not None and following.step is Step.PREPARE_SHARE
    # A second sweep right away does not send it again.
    ctx.clock.now = ctx.store.get(record.run_id).updated_at + 1
    assert reap(ctx) == []


def test_a_run_with_a_decided_ending_is_redriven_to_cleanup(
    ctx: StepContext, tmp_path: Path
) -> None:
    record, _ = ctx.store.create_run(_spec(tmp_path))
    ctx.store.mark_dispatched(record.run_id)
    ctx.store.decide_ending(record.run_id, RunStatus.FAILED, FailureReason.TIMEOUT, "slow")
    assert isinstance(ctx.clock, Clock)
    ctx.clock.now = ctx.store.get(record.run_id).updated_at + stale_after_seconds(ctx) + 1
    [dispatch] = reap(ctx)
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
    assert isinstance(ctx.clock, Clock)
    ctx.clock.now = ctx.store.get(record.run_id).updated_at + stale_after_seconds(ctx) + 1
    dispatch: Dispatch | None
    [dispatch] = reap(ctx)
    for _ in range(10):
        if dispatch is None:
            break
        dispatch = run_step(ctx, dispatch.step, record.run_id, dispatch.task_id)
    final = ctx.store.get(record.run_id)
    assert (final.status, final.reason) == (RunStatus.CANCELLED, FailureReason.CANCELLED)


@pytest.mark.parametrize("failing", ["delete_job", "list_job_resources"])
def test_a_job_the_reaper_cannot_delete_does_not_stop_it_reaping_clusters(
    ctx: StepContext, failing: str
) -> None:
    gateway = ctx.gateway
    assert isinstance(gateway, FakeGateway)
    gateway.listed_jobs = [AzureResource("nightly-ghost-run", _created(3600), "nightly")]
    gateway.listed_clusters = [AzureResource("orch-ghost-run", _created(3600))]
    gateway.fail_on[failing] = PermanentAzureError("HTTP 409", reason=FailureReason.AZURE_ERROR)
    reap(ctx)
    assert gateway.deleted == ["orch-ghost-run"]
