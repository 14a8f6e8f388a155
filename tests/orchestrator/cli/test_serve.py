"""The REDIS_URL checks `orchestrator worker` / `beat` make before exec'ing Celery."""

from __future__ import annotations

import pytest

from orchestrator.cli.common import CliError
from orchestrator.cli.serve import check_redis_url
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
