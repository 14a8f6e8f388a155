"""The chain clock: waits in the due index, claimed once, sent when due."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
import redis

from orchestrator.chain.clock import (
    RETENTION_PASS_SECONDS,
    ChainClock,
    deliver,
    expire_runs_if_my_turn,
    redrive_if_my_turn,
    send_due,
)
from orchestrator.chain.runner import Dispatch
from orchestrator.chain.steps import StepContext
from orchestrator.domain.spec import parse_spec
from orchestrator.domain.status import RunStatus, Step
from orchestrator.settings import Settings
from orchestrator.store import RunStore
from tests.support.chain_fakes import FakeClock, FakeGateway

NOW = 2_000_000_000.0
SPEC = {"name": "kept", "job": {"script": "a.py"}, "inputs": {"A": "/tmp"}}


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


# ------------------------------------------------------------------ retention
def ended_run(store: RunStore, run_id: str) -> None:
    store.create_run(parse_spec(SPEC), run_id=run_id)
    store.transition(run_id, RunStatus.CANCELLED)


def test_one_worker_deletes_expired_runs_per_interval(ctx: StepContext) -> None:
    # The fake clock is years after the run ended, past the 30-day default.
    ended_run(ctx.store, "old")
    assert expire_runs_if_my_turn(ctx, "worker-a") == ["old"]
    assert ctx.store.redis.get(ctx.store.keys.retention_turn) == b"worker-a"
    ended_run(ctx.store, "older")
    assert expire_runs_if_my_turn(ctx, "worker-b") == []  # not b's turn within the interval
    assert ctx.store.exists("older")


def test_runs_are_kept_forever_when_retention_is_never(fake_redis: redis.Redis) -> None:
    settings = Settings.model_validate({"ORCH_RUN_RETENTION": "never"})
    ctx = StepContext(settings, RunStore(fake_redis), FakeGateway(), FakeClock(NOW))
    ended_run(ctx.store, "old")
    assert expire_runs_if_my_turn(ctx, "worker-a") == []
    assert ctx.store.exists("old")


def test_a_run_within_its_retention_is_kept(ctx: StepContext) -> None:
    ended_run(ctx.store, "recent")
    assert isinstance(ctx.clock, FakeClock)
    ctx.clock.now = ctx.store.get("recent").created_at + 3600  # an hour after it ended
    assert expire_runs_if_my_turn(ctx, "worker-a") == []
    assert ctx.store.exists("recent")


def test_the_clock_tick_deletes_expired_runs(ctx: StepContext) -> None:
    ended_run(ctx.store, "old")
    clock = ChainClock(lambda: ctx, [].append, "worker-a")
    clock.tick()
    assert not ctx.store.exists("old")
    # The next pass is RETENTION_PASS_SECONDS away on this worker's clock.
    ended_run(ctx.store, "second")
    ctx.store.redis.delete(ctx.store.keys.retention_turn)
    clock.tick()
    assert ctx.store.exists("second")
    assert isinstance(ctx.clock, FakeClock)
    ctx.clock.now += RETENTION_PASS_SECONDS
    clock.tick()
    assert not ctx.store.exists("second")


def test_the_clock_thread_runs_the_retention_pass(
    ctx: StepContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    swept = threading.Event()
    real = ctx.store.delete_expired_runs

    def delete_expired_runs(finished_before: float, limit: int = 1000) -> list[str]:
        deleted = real(finished_before, limit)
        swept.set()
        return deleted

    monkeypatch.setattr(ctx.store, "delete_expired_runs", delete_expired_runs)
    ended_run(ctx.store, "old")
    clock = ChainClock(lambda: ctx, [].append, "worker-a")
    clock.start()
    try:
        assert swept.wait(timeout=30), "the clock thread never swept"
    finally:
        clock.stop()
    assert not ctx.store.exists("old")
