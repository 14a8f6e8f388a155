"""Shared fixtures and the test layering.

Two layers:

* unit (`pytest -m "not integration"`): the store and chain rules on fakeredis,
  in memory, Lua scripts included (fakeredis runs them with lupa). No
  redis-server is started.
* integration: anything that needs a real redis-server (a Celery/kombu broker,
  an app or CLI that opens Redis by URL, the devstack itself) uses the session
  `redis_server` fixture; one server per session, a clean database per test.

The layering is enforced here, not left to each file: every test whose fixture
closure includes `redis_server` (or the emulator subprocess), and the few that
start long-lived processes by hand (PROCESS_TESTS), are marked `integration`;
a test not marked so may not start a RedisServer.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NoReturn

import fakeredis
import lupa  # noqa: F401  (fakeredis' Lua support; without it EVALSHA fails)
import pytest
import redis

from orchestrator.devstack.redis_server import RedisServer
from tests.support.sentinel import SentinelDeployment

# Fixtures that start a real service process: a test using one is integration.
INTEGRATION_FIXTURES = frozenset({"redis_server", "emulator_process", "sentinel_deployment"})

# Tests that start long-lived processes by hand, where no fixture shows it; they
# are end-to-end too and would cost the unit layer minutes. (Node id prefixes;
# tests/test_markers.py checks that each still matches a test.)
PROCESS_TESTS = (
    "tests/examples/",  # the example training scripts, run on torch
    "tests/emulator/test_cli.py::",  # `orchestrator emulator` as a process
    "tests/emulator/test_server.py::test_emulator_process_serves_the_sdks",
)


def is_integration(item: pytest.Item) -> bool:
    return bool(
        INTEGRATION_FIXTURES.intersection(getattr(item, "fixturenames", ()))
        or item.nodeid.startswith(PROCESS_TESTS)
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if is_integration(item):
            item.add_marker(pytest.mark.integration)


def _refuse_to_start(self: RedisServer) -> NoReturn:
    raise AssertionError(
        "a test not marked integration started a redis-server: "
        "use the fake_redis fixture, or mark the test integration"
    )


@pytest.fixture(autouse=True)
def _unit_tests_start_no_redis_server(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    if request.node.get_closest_marker("integration") is None:
        monkeypatch.setattr(RedisServer, "start", _refuse_to_start)


# ------------------------------------------------------------- unit: fakeredis
@pytest.fixture
def fake_server() -> fakeredis.FakeServer:
    """An in-memory Redis for one test. More clients of it (a second connection,
    decode_responses=True): fakeredis.FakeRedis(server=fake_server, ...)."""
    return fakeredis.FakeServer()


@pytest.fixture
def fake_redis(fake_server: fakeredis.FakeServer) -> Iterator[redis.Redis]:
    """A fakeredis client, empty for each test, bytes responses like the real client
    (and Celery's). Lua (EVAL/EVALSHA, register_script) runs on lupa."""
    client = fakeredis.FakeRedis(server=fake_server)
    try:
        yield client
    finally:
        client.close()


# ------------------------------------------------------ integration: real Redis
@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A real redis-server on a free port, for the whole session."""
    with RedisServer() as server:
        yield server


@pytest.fixture
def redis_url(redis_server: RedisServer) -> Iterator[str]:
    """URL of the session's Redis, emptied (FLUSHALL) before the test."""
    client = redis.Redis.from_url(redis_server.url)
    try:
        client.flushall()
    finally:
        client.close()
    yield redis_server.url


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    """A client of the clean database (bytes responses, like Celery's)."""
    client = redis.Redis.from_url(redis_url)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def sentinel_deployment() -> Iterator[SentinelDeployment]:
    """A Redis master, its replica and a Sentinel on free loopback ports, per test
    (a test may fail the master over)."""
    with SentinelDeployment() as deployment:
        yield deployment
