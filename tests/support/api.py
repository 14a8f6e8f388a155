"""API test support: a valid request body, and fixtures for an app on the session's
real Redis (clean per test) with a TestClient that carries the token.

The fixtures are registered by this folder's conftest.py and by the client tests.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient
from pydantic import SecretStr

from orchestrator.api import create_app
from orchestrator.settings import Settings
from orchestrator.store import RunStore

TOKEN = "test-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def run_request(**spec_changes: Any) -> dict[str, Any]:
    """A valid POST /v1/runs body; keyword arguments replace spec fields."""
    spec: dict[str, Any] = {
        "name": "mnist-convnet",
        "job": {"script": "ConvNet_MNIST.py", "args": ["$AZ_BATCHAI_INPUT_SAMPLE"]},
        "inputs": {"SAMPLE": "share:data/mnist"},
        "outputs": ["MODEL"],
        "tags": {"team": "vision"},
    }
    spec.update(spec_changes)
    return {"spec": spec}


@pytest.fixture
def settings(redis_url: str, tmp_path: Path) -> Settings:
    return Settings(
        redis_url=redis_url,
        artifacts_dir=tmp_path / "artifacts",
        api_token=SecretStr(TOKEN),
        api_max_body_bytes=16 * 1024,
    )


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings), headers=AUTH) as test_client:
        yield test_client


@pytest.fixture
def store(redis_url: str) -> Iterator[RunStore]:
    connection = redis.Redis.from_url(redis_url)
    try:
        yield RunStore(connection)
    finally:
        connection.close()


def create_key(
    client: TestClient, name: str, scopes: list[str], rate: str | None = None
) -> dict[str, Any]:
    """POST /v1/keys with `client`'s (admin) credentials; the created key's JSON."""
    response = client.post("/v1/keys", json={"name": name, "scopes": scopes, "rate": rate})
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}
