"""The test layering (tests/conftest.py): `pytest -m "not integration"` never
starts a redis-server; the store and chain rules run in it, on fakeredis."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.devstack.redis_server import RedisServer
from tests.conftest import INTEGRATION_FIXTURES, PROCESS_TESTS, is_integration

ROOT = Path(__file__).resolve().parent.parent


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


def test_not_integration_selects_the_fake_backed_rules_and_no_real_server() -> None:
    targets = [
        "tests/orchestrator/store/test_runs.py",
        "tests/orchestrator/chain",
        "tests/orchestrator/devstack",
        "tests/orchestrator/api/test_api_service.py",
        "tests/orchestrator/api/test_api_events.py",
    ]
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
         "-m", "not integration", *targets],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    selected = [line for line in proc.stdout.splitlines() if "::" in line]
    files = {line.split("::")[0] for line in selected}
    # The store and chain rules are unit tests: on fakeredis, Lua included.
    assert "tests/orchestrator/store/test_runs.py" in files
    assert "tests/orchestrator/chain/test_runner.py" in files
    assert "tests/orchestrator/chain/test_reaper.py" in files
    # What needs a real server is not: the broker, the app by URL, the server itself,
    # and the tests that start one by hand.
    assert "tests/orchestrator/chain/test_enqueue.py::test_enqueue_sends_first_step_once" not in (
        selected
    )
    assert not [n for n in selected if "devstack" in n or "test_api_" in n], selected


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
