"""The test layering (tests/conftest.py): `pytest -m "not integration"` never
starts a redis-server; the store and chain rules run in it, on fakeredis."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.devstack.redis_server import RedisServer
from tests.conftest import INTEGRATION_FIXTURES, PROCESS_TESTS, is_integration

ROOT = Path(__file__).resolve().parent.parent
UNIT_ON_FAKEREDIS = {
    "tests/orchestrator/store/test_runs.py",
    "tests/orchestrator/chain/test_runner.py",
    "tests/orchestrator/chain/test_reaper.py",
}


def test_this_run_keeps_real_servers_in_the_integration_layer(
    request: pytest.FixtureRequest,
) -> None:
    """Whatever this run selected: a test that uses redis_server (or the emulator
    process) is marked integration, so `-m "not integration"` holds none."""
    for item in request.session.items:
        if INTEGRATION_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            assert item.get_closest_marker("integration"), item.nodeid
        if item.get_closest_marker("integration") is None:
            assert not INTEGRATION_FIXTURES.intersection(getattr(item, "fixturenames", ()))


def test_the_store_and_chain_rules_are_unit_tests(request: pytest.FixtureRequest) -> None:
    """They run in `-m "not integration"` (on fakeredis, Lua included), among the
    tests this run collected; none of them needs a real server."""
    rules = [i for i in request.session.items if i.nodeid.split("::")[0] in UNIT_ON_FAKEREDIS]
    for item in rules:
        assert not is_integration(item), item.nodeid
    if rules:
        assert any("fake_redis" in getattr(i, "fixturenames", ()) for i in rules)


def test_each_process_test_prefix_still_names_a_test() -> None:
    for prefix in PROCESS_TESTS:
        path, _, name = prefix.partition("::")
        assert (ROOT / path).exists(), prefix
        if name:
            assert f"def {name}(" in (ROOT / path).read_text(), prefix


def test_a_unit_test_may_not_start_a_redis_server(request: pytest.FixtureRequest) -> None:
    assert not is_integration(request.node)
    with pytest.raises(AssertionError, match="fake_redis"):
        RedisServer().start()
