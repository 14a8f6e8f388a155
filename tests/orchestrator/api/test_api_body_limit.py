from __future__ import annotations

import json
from collections.abc import Iterator

import redis
from fastapi.testclient import TestClient

from orchestrator.chain.queue import CHAIN_QUEUE
from tests.support.api import run_request

LIMIT = 16 * 1024  # the settings fixture's api_max_body_bytes
TOO_LARGE = f"request body exceeds the limit of {LIMIT} bytes"


def _oversized_body() -> bytes:
    body = run_request(tags={"padding": "x" * LIMIT})
    return json.dumps(body).encode()


def test_declared_content_length_over_the_limit_is_413(
    client: TestClient, redis_client: redis.Redis
) -> None:
    response = client.post(
        "/v1/runs", content=_oversized_body(), headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 413
    assert response.json() == {"message": TOO_LARGE, "detail": TOO_LARGE}
    assert redis_client.llen(CHAIN_QUEUE) == 0


def test_streamed_body_over_the_limit_is_413(client: TestClient, redis_client: redis.Redis) -> None:
    body = _oversized_body()

    def chunks() -> Iterator[bytes]:  # no Content-Length: chunked transfer
        for start in range(0, len(body), 1024):
            yield body[start : start + 1024]

    response = client.post(
        "/v1/runs", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 413
    # The counted-bytes path answers in the same error shape, naming the limit.
    assert response.json() == {"message": TOO_LARGE, "detail": TOO_LARGE}
    assert redis_client.llen(CHAIN_QUEUE) == 0


def test_body_under_the_limit_passes(client: TestClient, redis_client: redis.Redis) -> None:
    # Padding in job.args: tags are capped at 256 characters (spec bounds).
    padding = {"script": "ConvNet_MNIST.py", "args": ["x" * (LIMIT // 2)]}
    body = json.dumps(run_request(job=padding)).encode()
    response = client.post("/v1/runs", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 202
    accepted = response.json()
    assert accepted["status"] == "queued"
    # The whole body was read: the padding that took it near the limit is in the run.
    run = client.get(accepted["links"]["self"]).json()
    assert run["spec"]["job"]["args"] == ["x" * (LIMIT // 2)]
    assert redis_client.llen(CHAIN_QUEUE) == 1


def test_malformed_content_length_is_400(client: TestClient, redis_client: redis.Redis) -> None:
    response = client.post("/v1/runs", content=b"{}", headers={"Content-Length": "ten"})
    assert response.status_code == 400
    message = "Content-Length header is not a number"
    assert response.json() == {"message": message, "detail": message}
    assert redis_client.llen(CHAIN_QUEUE) == 0
