"""Fixtures: one in-process emulator per test session, its state reset between tests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from emulator.testing import RunningEmulator, arm_client, file_service, start_emulator


@pytest.fixture(scope="session")
def emulator_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningEmulator]:
    with start_emulator(tmp_path_factory.mktemp("emulator")) as running:
        yield running


@pytest.fixture
def emulator(emulator_session: RunningEmulator) -> Iterator[RunningEmulator]:
    emulator_session.reset(state=True)
    yield emulator_session
    emulator_session.reset(state=True)


@pytest.fixture
def arm(emulator: RunningEmulator) -> Any:
    return arm_client(emulator.env)


@pytest.fixture
def files(emulator: RunningEmulator) -> Any:
    return file_service(emulator.env)
