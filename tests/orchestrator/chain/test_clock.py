"""The chain clock: waits in the due index, claimed once, sent when due."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from orchestrator.chain.clock import deliver, redrive_if_my_turn, send_due
from orchestrator.chain.runner import Dispatch
from orchestrator.chain.steps import StepContext
from orchestrator.domain.status import Step
from orchestrator.settings import Settings
from orchestrator.store import RunStore
from tests.support.chain_fakes import FakeClock, FakeGateway

NOW = 2_000_000_000.0


@pytest.fixture
def ctx(fake_redis: redis.Redis) -> Iterator[StepContext]:
    yield StepContext(Settings(), RunStore(fake_redis), FakeGateway(), FakeClock(NOW))


def test_a_dispatch_without_countdown_is_sent_at_once(ctx: StepContext) -> None:
    sent: list[Dispatch] = []
    now = Dispatch(Step.PREPARE_SHARE, "run-1", "t1")
    deliver(ctx, now, sent.append)
    assert sent == [now] and len(ctx.store.due) == 0


def test_a_wait_is_sent_when_due_and_only_once(ctx: StepContext) -> None:
    sent: list[Dispatch] = []
    wait = Dispatch(Step.POLL_JOB, "run-1", "t2", countdown=5, retries=2)
    deliver(ctx, wait, sent.append)
    assert sent == [] and ctx.store.due.scheduled("t2")
    assert isinstance(ctx.clock, FakeClock)
    ctx.clock.now += 4.9
    assert send_due(ctx, sent.append) == 0
    ctx.clock.now += 0.2
    assert send_due(ctx, sent.append) == 1
    assert sent == [Dispatch(Step.POLL_JOB, "run-1", "t2", retries=2)]
    assert send_due(ctx, sent.append) == 0  # claimed: no second send
    assert not ctx.store.due.scheduled("t2")


def test_scheduling_the_same_task_again_moves_it(ctx: StepContext) -> None:
    sent: list[Dispatch] = []
    deliver(ctx, Dispatch(Step.POLL_JOB, "run-1", "t3", countdown=1), sent.append)
    deliver(ctx, Dispatch(Step.POLL_JOB, "run-1", "t3", countdown=60), sent.append)
    assert isinstance(ctx.clock, FakeClock)
    ctx.clock.now += 2
    assert send_due(ctx, sent.append) == 0 and len(ctx.store.due) == 1


def test_one_worker_redrives_per_interval(ctx: StepContext) -> None:
    sent: list[Dispatch] = []
    redrive_if_my_turn(ctx, sent.append, "worker-a")
    assert ctx.store.redis.get(ctx.store.keys.redrive_turn) == b"worker-a"
    redrive_if_my_turn(ctx, sent.append, "worker-b")  # not b's turn within the interval
    assert ctx.store.redis.get(ctx.store.keys.redrive_turn) == b"worker-a"
