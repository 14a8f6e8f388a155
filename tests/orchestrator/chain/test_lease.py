"""The step lease: renewed while held, lost when taken, and a lost lease writes nothing."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import redis

from orchestrator.chain.lease import Lease
from orchestrator.chain.runner import run_step
from orchestrator.chain.steps import StepContext
from orchestrator.domain.spec import parse_spec
from orchestrator.domain.status import Step, StepState
from orchestrator.settings import Settings
from orchestrator.store import Keys, RunStore
from tests.support.chain_fakes import FakeGateway


@pytest.fixture
def client(fake_redis: redis.Redis) -> redis.Redis:
    return fake_redis


def test_one_holder_at_a_time_and_release_frees_it(client: redis.Redis) -> None:
    keys = Keys()
    first = Lease.acquire(client, keys, "run-1", "task-a", 30)
    assert first is not None
    assert Lease.acquire(client, keys, "run-1", "task-b", 30) is None
    first.release()
    second = Lease.acquire(client, keys, "run-1", "task-b", 30)
    assert second is not None
    second.release()


def test_the_heartbeat_keeps_a_short_lease_alive(client: redis.Redis) -> None:
    keys = Keys()
    lease = Lease.acquire(client, keys, "run-1", "task-a", 0.3)
    assert lease is not None
    with lease:
        # Wait for three renewals by watching the key's TTL being pushed back up.
        renewed = threading.Event()
        for _ in range(200):
            ttl = int(client.pttl(keys.lock("run-1")))
            if ttl > 250:  # just renewed (a renewal every 100 ms resets it to 300)
                renewed.set()
                break
            renewed.wait(0.01)
        assert renewed.is_set()
        assert not lease.lost and client.get(keys.lock("run-1")) == b"task-a"
    assert client.get(keys.lock("run-1")) is None


def test_a_taken_lease_is_lost_and_never_deleted_for_the_new_owner(client: redis.Redis) -> None:
    keys = Keys()
    lease = Lease.acquire(client, keys, "run-1", "task-a", 0.3)
    assert lease is not None
    client.set(keys.lock("run-1"), "task-b")  # it expired and another worker took it
    for _ in range(200):
        if lease.lost:
            break
        threading.Event().wait(0.01)
    assert lease.lost
    lease.release()
    assert client.get(keys.lock("run-1")) == b"task-b"


def test_a_step_whose_lease_was_lost_records_nothing(client: redis.Redis, tmp_path: Path) -> None:
    (tmp_path / "train.py").write_text("")
    spec = parse_spec({"name": "n", "job": {"script": "train.py"}, "inputs": {"C": str(tmp_path)}})
    taken = threading.Event()

    def stall_past_the_lease(ctx: StepContext, step: Step, run_id: str) -> None:
        # The worker stalls; its lease expires and another worker takes the run.
        client.set(ctx.store.keys.lock(run_id), "another-task")
        for _ in range(300):
            if taken.wait(0.01):
                break

    settings = Settings(ORCH_LEASE_SECONDS=0.3)
    ctx = StepContext(settings, RunStore(client), FakeGateway(), after_step_work=None)
    ctx.after_step_work = stall_past_the_lease
    record, _ = ctx.store.create_run(spec)
    ctx.store.mark_dispatched(record.run_id)
    assert run_step(ctx, Step.ENSURE_RESOURCE_GROUP, record.run_id, "t1") is None
    after = ctx.store.get(record.run_id).step(Step.ENSURE_RESOURCE_GROUP)
    assert after.state is StepState.RUNNING  # the outcome (DONE) was not written
    assert client.get(ctx.store.keys.lock(record.run_id)) == b"another-task"
