"""The real stack for chain tests: a redis-server (tests/conftest.py), the
emulator as a subprocess (`orchestrator emulator`), and `orchestrator worker`
subprocesses with their environment pointing at both."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from emulator.testing import EmulatorProcess
from tests.support.chain_stack import Stack


@pytest.fixture(scope="session")
def emulator_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorProcess]:
    with EmulatorProcess(
        tmp_path_factory.mktemp("emulator"), "--provision-seconds", "0"
    ) as emulator:
        yield emulator


@pytest.fixture
def stack(emulator_process: EmulatorProcess, redis_url: str, tmp_path: Path) -> Iterator[Stack]:
    # Every test starts from an empty emulator: no resources, stats or faults.
    emulator_process.reset(state=True)
    stack = Stack(emulator_process, redis_url, tmp_path)
    try:
        yield stack
    finally:
        stack.close()
        emulator_process.clear_faults()
