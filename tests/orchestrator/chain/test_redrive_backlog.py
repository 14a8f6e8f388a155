"""The re-driver with many runs: checks pipelined per batch, a queued message is
slow and not lost, and a long pass spaces out the next one."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from orchestrator.chain import clock as chain_clock
from orchestrator.chain.queue import CHAIN_QUEUE
from orchestrator.chain.redrive import CHECK_BATCH, redrive
from orchestrator.chain.runner import Dispatch
from orchestrator.chain.steps import StepContext
from orchestrator.domain.spec import parse_spec
from orchestrator.domain.status import Step
from orchestrator.settings import Settings
from orchestrator.store import RunStore
from tests.support.chain_fakes import FakeClock, FakeGateway

NOW = 2_000_000_000.0


@pytest.fixture
def ctx(fake_redis: redis.Redis) -> Iterator[StepContext]:
    yield StepContext(Settings(), RunStore(fake_redis), FakeGateway(), FakeClock(NOW))


def _stalled_runs(ctx: StepContext, tmp_path: Path, count: int) -> list[str]:
    (tmp_path / "train.py").write_text("")
    spec = parse_spec(
        {"name": "many", "job": {"script": "train.py"}, "inputs": {"CODE": str(tmp_path)}}
    )
    run_ids = []
    for _ in range(count):
        record, _ = ctx.store.create_run(spec)
        ctx.store.mark_dispatched(record.run_id)
        run_ids.append(record.run_id)
    assert isinstance(ctx.clock, FakeClock)
    ctx.clock.now = ctx.store.get(run_ids[-1]).updated_at + ctx.settings.redrive_after_seconds + 1
    return run_ids


def test_a_message_still_in_the_queue_is_not_sent_again(ctx: StepContext, tmp_path: Path) -> None:
    queued, lost = _stalled_runs(ctx, tmp_path, 2)
    # Both lost their first message; give each an expected task id by one pass.
    first = {d.run_id: d.task_id for d in redrive(ctx)}
    assert set(first) == {queued, lost}
    # One message is in the broker's queue behind others (a backlog), one is gone.
    ctx.store.redis.lpush(CHAIN_QUEUE, json.dumps({"headers": {"id": first[queued]}}))
    ctx.store.redis.lpush(CHAIN_QUEUE, b"not a kombu message")
    assert isinstance(ctx.clock, FakeClock)
    ctx.clock.now += ctx.settings.redrive_after_seconds + 1
    assert [(d.run_id, d.step) for d in redrive(ctx)] == [(lost, Step.ENSURE_RESOURCE_GROUP)]


def test_more_runs_than_one_batch_are_all_checked(ctx: StepContext, tmp_path: Path) -> None:
    run_ids = _stalled_runs(ctx, tmp_path, CHECK_BATCH + 3)
    assert sorted(d.run_id for d in redrive(ctx)) == sorted(run_ids)


def test_a_long_pass_holds_the_turn_longer(
    ctx: StepContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [100.0]

    def slow_pass(ctx: StepContext) -> list[Dispatch]:  # a pass that takes 3 s
        now[0] += 3.0
        return []

    monkeypatch.setattr(chain_clock.time, "monotonic", lambda: now[0])
    monkeypatch.setattr(chain_clock, "redrive", slow_pass)
    chain_clock.redrive_if_my_turn(ctx, lambda dispatch: None, "worker-a")
    ttl_ms = ctx.store.redis.pttl(ctx.store.keys.redrive_turn)
    assert 3 * chain_clock.REDRIVE_SPACING * 1000 - 100 < ttl_ms <= 15_000
    # Another worker's turn comes only then, not after ORCH_REDRIVE_INTERVAL_SECONDS.
    assert chain_clock.redrive_if_my_turn(ctx, lambda dispatch: None, "worker-b") == 0


def test_a_message_a_worker_just_took_is_not_sent_again_but_an_old_one_is(
    ctx: StepContext, tmp_path: Path
) -> None:
    taken, dead = _stalled_runs(ctx, tmp_path, 2)
    first = {d.run_id: d.task_id for d in redrive(ctx)}
    assert isinstance(ctx.clock, FakeClock)
    ctx.clock.now += ctx.settings.redrive_after_seconds + 1
    # kombu's unacked hash and index: one delivery just now (its step is about to take
    # the lease), one long ago (a worker that died holding it).
    for tag, run_id, delivered in (
        ("tag-now", taken, ctx.clock.now - 1),
        ("tag-old", dead, ctx.clock.now - ctx.settings.redrive_after_seconds - 5),
    ):
        message = {"headers": {"id": first[run_id]}}
        ctx.store.redis.hset("unacked", tag, json.dumps([message, "", CHAIN_QUEUE]))
        ctx.store.redis.zadd("unacked_index", {tag: delivered})
    assert [d.run_id for d in redrive(ctx)] == [dead]
