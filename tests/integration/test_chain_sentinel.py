"""The chain through Redis Sentinel: REDIS_URL=sentinel://..., for the Celery broker
(producer and `orchestrator worker`) and the run store alike, and a failover of
the master in the middle of a run (issue 9, item 6)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from emulator.testing import EmulatorProcess
from orchestrator.devstack.redis_server import RedisServer
from orchestrator.domain.status import RunStatus
from orchestrator.store import RunRecord
from orchestrator.store.connection import RedisTarget
from tests.support.chain_stack import Stack, wait_for
from tests.support.sentinel import SentinelDeployment

pytestmark = pytest.mark.integration


@pytest.fixture
def sentinel_stack(
    emulator_process: EmulatorProcess, sentinel_deployment: SentinelDeployment, tmp_path: Path
) -> Iterator[Stack]:
    emulator_process.reset(state=True)
    target = RedisTarget(
        sentinel_deployment.url(),
        sentinel_master=sentinel_deployment.master_name,
        sentinel_password=sentinel_deployment.sentinel_password,
    )
    stack = Stack(emulator_process, target, tmp_path)
    try:
        yield stack
    finally:
        stack.close()
        emulator_process.clear_faults()


def created_and_deleted(stack: Stack) -> tuple[int, int, int, int]:
    resources = stack.stats()["resources"]
    created, deleted = resources["created"], resources["deleted"]
    return (
        int(created.get("cluster", 0)),
        int(created.get("job", 0)),
        int(deleted.get("cluster", 0)),
        int(deleted.get("job", 0)),
    )


def test_a_run_succeeds_with_broker_and_store_behind_sentinel(
    sentinel_stack: Stack, sentinel_deployment: SentinelDeployment
) -> None:
    sentinel_stack.start_worker()
    run_id = sentinel_stack.submit()
    record = sentinel_stack.wait_terminal(run_id)

    assert record.status is RunStatus.SUCCEEDED, record.error
    assert created_and_deleted(sentinel_stack) == (1, 1, 1, 1)
    # The worker found the master through the Sentinel: its queue and the run are there.
    assert sentinel_stack.client.connection_pool.get_master_address() == (
        "127.0.0.1",
        sentinel_deployment.master.port,
    )


def run_through(stack: Stack, event: Callable[[], RedisServer]) -> RunRecord:
    """A run whose job lasts 3 s; `event` happens while the job runs."""
    stack.start_worker()
    run_id = stack.submit(stack.spec(seconds=3))
    wait_for(
        lambda: stack.store.get(run_id).status is RunStatus.RUNNING,
        60,
        "the run's job to be submitted",
    )
    event()
    return stack.wait_terminal(run_id)


def test_a_run_survives_the_loss_of_its_redis_master(
    sentinel_stack: Stack, sentinel_deployment: SentinelDeployment
) -> None:
    record = run_through(sentinel_stack, sentinel_deployment.kill_master)

    assert record.status is RunStatus.SUCCEEDED, record.error
    # Exactly once: one cluster and one job, both deleted again (nothing left).
    assert created_and_deleted(sentinel_stack) == (1, 1, 1, 1)
    assert sentinel_deployment.master_port() != sentinel_deployment.master.port


def test_a_run_survives_a_planned_failover_with_writes_paused(
    sentinel_stack: Stack, sentinel_deployment: SentinelDeployment
) -> None:
    record = run_through(sentinel_stack, lambda: sentinel_deployment.failover(pause_writes=True))

    assert record.status is RunStatus.SUCCEEDED, record.error
    assert created_and_deleted(sentinel_stack) == (1, 1, 1, 1)
    assert sentinel_deployment.master_port() != sentinel_deployment.master.port


def test_a_run_survives_a_bare_sentinel_failover_of_a_live_master(
    sentinel_stack: Stack, sentinel_deployment: SentinelDeployment
) -> None:
    """No write pause: the old master accepts writes until the Sentinel demotes it,
    about 10 s after the switch. The store's clients re-ask the Sentinels every
    0.5 s (FollowingSentinelConnectionPool), so the run's progress reaches the new
    master; without that the run failed 3 times out of 3 ('job ... disappeared':
    its record went back to poll_job after the job had been deleted)."""
    record = run_through(sentinel_stack, sentinel_deployment.failover)

    assert record.status is RunStatus.SUCCEEDED, record.error
    assert created_and_deleted(sentinel_stack) == (1, 1, 1, 1)
    assert sentinel_deployment.master_port() != sentinel_deployment.master.port
