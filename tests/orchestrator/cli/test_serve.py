"""The worker's Celery arguments: which queues `orchestrator worker --queues` consumes."""

from __future__ import annotations

import pytest

from orchestrator.chain.queue import CHAIN_QUEUE, WEBHOOK_QUEUE
from orchestrator.cli.serve import LogLevel, Pool, Queues, worker_args


@pytest.mark.parametrize(
    ("queues", "expected"),
    [
        (None, f"--queues={CHAIN_QUEUE},{WEBHOOK_QUEUE}"),
        (Queues.ALL, f"--queues={CHAIN_QUEUE},{WEBHOOK_QUEUE}"),
        (Queues.STEPS, f"--queues={CHAIN_QUEUE}"),
        (Queues.WEBHOOKS, f"--queues={WEBHOOK_QUEUE}"),
    ],
)
def test_the_worker_consumes_the_queues_asked_for(queues: Queues | None, expected: str) -> None:
    args = worker_args(2, LogLevel.INFO, Pool.PREFORK, "node", queues)
    assert [arg for arg in args if arg.startswith("--queues=")] == [expected]
