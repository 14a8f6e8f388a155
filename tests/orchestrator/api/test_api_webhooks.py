"""`notify` on submission: https only, no private destinations (422 naming notify.url),
a named key needed; a queued run cancelled over HTTP announces its webhook as a task."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator

import pytest
import redis
from fastapi.testclient import TestClient

from orchestrator.api import create_app
from orchestrator.chain.queue import CHAIN_QUEUE, WEBHOOK_QUEUE
from orchestrator.chain.webhooks import DELIVER_TASK
from orchestrator.settings import Settings
from tests.support.api import AUTH, bearer, create_key, run_request


def _with_notify(url: str) -> dict[str, object]:
    return {**run_request(), "notify": {"url": url}}


@pytest.fixture
def key(client: TestClient) -> str:
    return str(create_key(client, "svc", ["submit", "read", "cancel"])["key"])


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/hook",
        "https://10.0.0.1/hook",
        "https://169.254.169.254/latest/meta-data",
        "https://localhost:8443/hook",
    ],
)
def test_private_webhook_urls_are_422_naming_notify_url(
    client: TestClient, redis_client: redis.Redis, key: str, url: str
) -> None:
    response = client.post("/v1/runs", headers=bearer(key), json=_with_notify(url))
    assert response.status_code == 422
    assert response.json()["message"].startswith("notify.url: host ")
    assert "loopback, link-local or private" in response.json()["message"]
    assert redis_client.llen(CHAIN_QUEUE) == 0


def test_a_plain_http_url_is_422_naming_notify_url(client: TestClient, key: str) -> None:
    response = client.post(
        "/v1/runs", headers=bearer(key), json=_with_notify("http://example.com/h")
    )
    assert response.status_code == 422
    assert response.json()["message"].startswith("notify.url: must be an https:// URL")


def test_the_bootstrap_token_cannot_ask_for_webhooks(client: TestClient) -> None:
    response = client.post("/v1/runs", json=_with_notify("https://93.184.216.34/h"))
    assert response.status_code == 422
    assert response.json()["message"].startswith("notify: needs a named API key")


@pytest.fixture
def lab(settings: Settings) -> Iterator[TestClient]:
    lab_settings = settings.model_copy(update={"webhook_allow_private": True})
    with TestClient(create_app(lab_settings), headers=AUTH) as test_client:
        yield test_client


def _deliver_tasks(client: redis.Redis) -> list[list[object]]:
    messages = [json.loads(item) for item in client.lrange(WEBHOOK_QUEUE, 0, -1)]
    return [
        json.loads(base64.b64decode(m["body"]))[0]
        for m in messages
        if m["headers"]["task"] == DELIVER_TASK
    ]


def test_a_cancelled_queued_run_announces_its_webhook_once(
    lab: TestClient, redis_client: redis.Redis
) -> None:
    key = create_key(lab, "svc", ["submit", "read", "cancel"])["key"]
    accepted = lab.post("/v1/runs", headers=bearer(key), json=_with_notify("https://127.0.0.1:9/h"))
    assert accepted.status_code == 202, accepted.text
    run_id = accepted.json()["run_id"]
    assert lab.get(f"/v1/runs/{run_id}").json()["notify"]["url"] == "https://127.0.0.1:9/h"
    assert lab.post(f"/v1/runs/{run_id}/cancel", headers=bearer(key)).status_code == 202
    assert lab.post(f"/v1/runs/{run_id}/cancel", headers=bearer(key)).status_code == 409
    assert _deliver_tasks(redis_client) == [[run_id, "run.cancelled", 1]]
    deliveries = lab.get(f"/v1/runs/{run_id}/deliveries", headers=bearer(key))
    assert deliveries.json() == {"run_id": run_id, "items": []}  # no worker here


def test_a_key_default_subscription_applies_unless_the_submission_has_its_own(
    lab: TestClient,
) -> None:
    response = lab.post(
        "/v1/keys",
        json={"name": "svc", "scopes": ["submit"], "notify": {"url": "https://127.0.0.1:9/d"}},
    )
    assert response.status_code == 201, response.text
    assert response.json()["notify"]["url"] == "https://127.0.0.1:9/d"
    key = response.json()["key"]
    plain = lab.post("/v1/runs", headers=bearer(key), json=run_request()).json()["run_id"]
    own = lab.post(
        "/v1/runs", headers=bearer(key), json=_with_notify("https://127.0.0.1:9/own")
    ).json()["run_id"]
    assert lab.get(f"/v1/runs/{plain}").json()["notify"]["url"] == "https://127.0.0.1:9/d"
    assert lab.get(f"/v1/runs/{own}").json()["notify"]["url"] == "https://127.0.0.1:9/own"


def test_a_key_default_subscription_to_a_private_address_is_422(client: TestClient) -> None:
    response = client.post(
        "/v1/keys",
        json={"name": "svc", "scopes": ["submit"], "notify": {"url": "https://10.0.0.1/h"}},
    )
    assert response.status_code == 422
    assert response.json()["message"].startswith("notify.url: host '10.0.0.1' resolves to")
    assert client.get("/v1/keys").json()["items"] == []
