"""`orchestrator worker` / `beat` before they exec Celery: the REDIS_URL checks, and
which queues `orchestrator worker --queues` consumes."""

from __future__ import annotations

import pytest

from orchestrator.chain.queue import CHAIN_QUEUE, WEBHOOK_QUEUE
from orchestrator.cli.common import CliError
from orchestrator.cli.serve import LogLevel, Pool, Queues, check_redis_url, worker_args
from orchestrator.devstack.redis_server import free_port
from orchestrator.store.connection import RedisTarget


def test_a_sentinel_url_passes_the_check_without_connecting() -> None:
    # Nothing listens on these ports: the check parses only.
    check_redis_url(RedisTarget(f"sentinel://:pw@127.0.0.1:{free_port()}/0", "orch"))
    check_redis_url("redis://127.0.0.1:1/0")


@pytest.mark.parametrize(
    "url", ["sentinel://:s3cret@s1:1;redis://s2:2", "sentinel://:s3cret@s1:1/x", "http://h"]
)
def test_a_malformed_url_is_one_line_without_its_password(url: str) -> None:
    with pytest.raises(CliError) as caught:
        check_redis_url(url)
    message = str(caught.value)
    assert "is not a Redis URL" in message and "\n" not in message
    assert "s3cret" not in message


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
