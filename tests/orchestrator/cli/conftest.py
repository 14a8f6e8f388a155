"""Fixtures of the CLI tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from orchestrator.settings import get_settings


@pytest.fixture
def env(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """REDIS_URL of the session's Redis, for commands run in this process."""
    monkeypatch.setenv("REDIS_URL", redis_url)
    get_settings.cache_clear()
    yield redis_url
    get_settings.cache_clear()
