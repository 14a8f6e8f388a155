from __future__ import annotations

import json
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient
from kombu.exceptions import OperationalError
from pydantic import ValidationError

from orchestrator.api import create_app
from orchestrator.chain import enqueue
from orchestrator.chain.queue import CHAIN_QUEUE
from orchestrator.domain.status import RunStatus
from orchestrator.settings import Settings
from orchestrator.store import RunStore
from tests.support.api import AUTH, run_request


def test_submit_answers_202_with_links_and_enqueues_the_first_step(
    client: TestClient, redis_client: redis.Redis
) -> None:
    response = client.post("/v1/runs", json=run_request())
    assert response.status_code == 202
    body = response.json()
    run_id = body["run_id"]
    assert body["status"] == "queued"
    assert body["links"] == {
        "self": f"/v1/runs/{run_id}",
        "events": f"/v1/runs/{run_id}/events",
        "outputs": f"/v1/runs/{run_id}/outputs",
        "cancel": f"/v1/runs/{run_id}/cancel",
    }
    assert redis_client.llen(CHAIN_QUEUE) == 1
    record = client.get(body["links"]["self"]).json()
    assert record["run_id"] == run_id
    assert record["dispatched"] is True
    assert record["spec"]["inputs"] == {"SAMPLE": "share:data/mnist"}


def test_parameters_are_merged_over_the_spec(client: TestClient) -> None:
    body = {**run_request(parameters={"epochs": 1, "lr": 0.1}), "parameters": {"epochs": 3}}
    run_id = client.post("/v1/runs", json=body).json()["run_id"]
    assert client.get(f"/v1/runs/{run_id}").json()["spec"]["parameters"] == {
        "epochs": 3,
        "lr": 0.1,
    }


def test_same_idempotency_key_and_body_is_the_same_run(
    client: TestClient, redis_client: redis.Redis
) -> None:
    key = {"Idempotency-Key": "nightly-2026-11-27"}
    first = client.post("/v1/runs", json=run_request(), headers=key)
    again = client.post("/v1/runs", json=run_request(), headers=key)
    assert first.status_code == 202
    assert again.status_code == 200
    assert again.json()["run_id"] == first.json()["run_id"]
    assert redis_client.llen(CHAIN_QUEUE) == 1  # dispatched once
    other = client.post("/v1/runs", json=run_request(), headers={"Idempotency-Key": "other"})
    assert other.json()["run_id"] != first.json()["run_id"]


def test_same_idempotency_key_with_another_body_is_409(client: TestClient) -> None:
    key = {"Idempotency-Key": "sweep-7"}
    assert client.post("/v1/runs", json=run_request(), headers=key).status_code == 202
    conflict = client.post(
        "/v1/runs", json={**run_request(), "parameters": {"lr": 0.5}}, headers=key
    )
    assert conflict.status_code == 409
    assert conflict.json()["message"].startswith("Idempotency-Key:")


def test_caller_chosen_run_id(client: TestClient) -> None:
    body = {**run_request(), "run_id": "nightly-42"}
    assert client.post("/v1/runs", json=body).json()["run_id"] == "nightly-42"
    assert client.post("/v1/runs", json=body).status_code == 200
    changed = {**run_request(name="other"), "run_id": "nightly-42"}
    conflict = client.post("/v1/runs", json=changed)
    assert conflict.status_code == 409
    assert conflict.json()["message"].startswith("run_id:")
    # A fresh Idempotency-Key does not make the conflict the key's.
    conflict = client.post("/v1/runs", json=changed, headers={"Idempotency-Key": "fresh"})
    assert conflict.status_code == 409
    assert conflict.json()["message"].startswith("run_id:")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (run_request(bogus=1), "spec.bogus: Extra inputs are not permitted"),
        ({**run_request(), "extra": 1}, "extra: Extra inputs are not permitted"),
        (
            run_request(job={"toolkit": "caffe", "script": "a.py"}),
            "spec.job.toolkit: Input should be 'cntk'",
        ),
        (
            run_request(cluster={"node_count": "two"}),
            "spec.cluster.node_count: Input should be a valid integer",
        ),
        (
            run_request(inputs={"SAMPLE": "./sample"}),
            "spec.inputs.SAMPLE: paths on the workers' machines are not allowed",
        ),
        ({"spec": {"job": {"script": "a.py"}}}, "spec.name: Field required"),
        ({**run_request(), "run_id": "UPPER"}, "run_id: String should match pattern"),
        ({**run_request(), "parameters": {"lr": [1]}}, "parameters.lr"),
        ([1, 2], "body: Input should be a valid dictionary"),
    ],
)
def test_bad_input_is_422_naming_the_field(
    client: TestClient, redis_client: redis.Redis, body: Any, message: str
) -> None:
    response = client.post("/v1/runs", json=body)
    assert response.status_code == 422, response.text
    assert message in response.json()["message"]
    assert all("input" not in item for item in response.json()["detail"])
    assert redis_client.llen(CHAIN_QUEUE) == 0  # nothing half-done


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (run_request(tags={f"k{i}": "" for i in range(13_000)}), "spec.tags: at most 50 tags"),
        (
            run_request(job={"script": "a.py", "max_wall_clock": "P9999999999D"}),
            "spec.job.max_wall_clock: must be at most 30 days",
        ),
        ({**run_request(), "parameters": {f"p{i}": 1 for i in range(101)}}, "parameters:"),
        ({**run_request(), "parameters": {"note": "x" * 1025}}, "parameters.note"),
    ],
)
def test_oversized_specs_are_422_naming_the_field(
    settings: Settings, redis_client: redis.Redis, body: Any, message: str
) -> None:
    # The default body limit (256 KiB), which 13,000 short tags fit under.
    roomy = settings.model_copy(update={"api_max_body_bytes": 256 * 1024})
    assert len(json.dumps(body)) < roomy.api_max_body_bytes
    with TestClient(create_app(roomy), headers=AUTH) as client:
        response = client.post("/v1/runs", json=body)
    assert response.status_code == 422, response.text[:300]
    assert message in response.json()["message"]
    assert redis_client.llen(CHAIN_QUEUE) == 0


def test_malformed_json_is_422_not_500(client: TestClient) -> None:
    response = client.post(
        "/v1/runs", content=b'{"spec": ', headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json()["message"].startswith("body: malformed JSON")


@pytest.mark.parametrize("number", [b"NaN", b"Infinity", b"1e400"])
def test_non_finite_parameters_are_422_not_500(
    client: TestClient, redis_client: redis.Redis, number: bytes
) -> None:
    # Python's JSON decoder accepts these; the stored record could not hold them.
    for body in (
        b'{"spec": {"name": "n", "job": {"script": "a.py"}, "inputs": {"A": "/data"}}, '
        b'"parameters": {"lr": ' + number + b"}}",
        b'{"spec": {"name": "n", "job": {"script": "a.py"}, "inputs": {"A": "/data"}, '
        b'"parameters": {"lr": ' + number + b"}}}",
    ):
        response = client.post(
            "/v1/runs", content=body, headers={"Content-Type": "application/json"}
        )
        assert response.status_code == 422, response.text
        assert "parameters.lr" in response.json()["message"]
    assert redis_client.llen(CHAIN_QUEUE) == 0
    assert client.get("/v1/runs").status_code == 200


def test_unknown_run_is_404_naming_run_id(client: TestClient) -> None:
    for path in ("/v1/runs/nope", "/v1/runs/nope/outputs", "/v1/runs/nope/events"):
        response = client.get(path)
        assert response.status_code == 404
        assert response.json()["message"].startswith("run_id:")
    assert client.post("/v1/runs/nope/cancel").status_code == 404


def test_list_filters_and_pages(client: TestClient, store: RunStore) -> None:
    ids = [
        client.post("/v1/runs", json=run_request(name=f"net-{i % 2}", tags={"i": str(i)})).json()[
            "run_id"
        ]
        for i in range(5)
    ]
    store.transition(ids[0], RunStatus.CANCELLED)

    page = client.get("/v1/runs", params={"limit": 2}).json()
    seen = [item["run_id"] for item in page["items"]]
    while page["next_cursor"]:
        page = client.get("/v1/runs", params={"limit": 2, "cursor": page["next_cursor"]}).json()
        seen += [item["run_id"] for item in page["items"]]
    assert sorted(seen) == sorted(ids) and len(seen) == 5

    by_name = client.get("/v1/runs", params={"name": "net-1"}).json()["items"]
    assert {item["run_id"] for item in by_name} == {ids[1], ids[3]}
    by_tag = client.get("/v1/runs", params={"tag": "i=2"}).json()["items"]
    assert [item["run_id"] for item in by_tag] == [ids[2]]
    by_status = client.get("/v1/runs", params={"status": "cancelled"}).json()["items"]
    assert [item["run_id"] for item in by_status] == [ids[0]]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": 0}, "query.limit"),
        ({"limit": 201}, "query.limit"),
        ({"status": "sleeping"}, "query.status"),
        ({"tag": "no-equals-sign"}, "query.tag"),
        ({"cursor": "garbage"}, "query.cursor"),
    ],
)
def test_bad_list_query_is_422_naming_the_parameter(
    client: TestClient, params: dict[str, Any], field: str
) -> None:
    response = client.get("/v1/runs", params=params)
    assert response.status_code == 422
    assert response.json()["message"].startswith(f"{field}:")


def test_an_unreadable_record_is_a_server_error_not_the_cursors_fault(
    client: TestClient, store: RunStore, redis_client: redis.Redis
) -> None:
    run_id = client.post("/v1/runs", json=run_request()).json()["run_id"]
    redis_client.hset(store.keys.run(run_id), "data", "{}")
    with pytest.raises(ValidationError):  # a 500, not a 422 naming query.cursor
        client.get("/v1/runs")


def test_cancel_ends_a_queued_run_at_once_then_409(client: TestClient) -> None:
    run_id = client.post("/v1/runs", json=run_request()).json()["run_id"]
    response = client.post(f"/v1/runs/{run_id}/cancel")
    assert response.status_code == 202
    assert (response.json()["status"], response.json()["reason"]) == ("cancelled", "cancelled")
    ended = client.post(f"/v1/runs/{run_id}/cancel")
    assert ended.status_code == 409
    assert "already ended" in ended.json()["message"]


def test_cancel_flags_a_started_run_for_the_chain(client: TestClient, store: RunStore) -> None:
    run_id = client.post("/v1/runs", json=run_request()).json()["run_id"]
    store.transition(run_id, RunStatus.PROVISIONING)
    response = client.post(f"/v1/runs/{run_id}/cancel")
    assert response.status_code == 202
    assert response.json()["status"] == "provisioning"
    assert store.get(run_id).cancel_requested


def test_broker_failure_is_503_and_the_same_request_later_dispatches_the_run(
    client: TestClient, store: RunStore, redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broker_down(*args: object, **kwargs: object) -> str:
        raise OperationalError("connection refused")

    key = {"Idempotency-Key": "broker-blip"}
    with monkeypatch.context() as patch:
        # A broker apart from the store: the run is written, then its task sent
        # (on one Redis both are one script, which a failure leaves undone).
        patch.setattr(enqueue, "_same_redis", lambda *args: False)
        patch.setattr(enqueue, "send_step", broker_down)
        failed = client.post("/v1/runs", json=run_request(), headers=key)
    assert failed.status_code == 503
    assert failed.headers["Retry-After"] == "5"
    assert redis_client.llen(CHAIN_QUEUE) == 0

    retried = client.post("/v1/runs", json=run_request(), headers=key)
    assert retried.status_code == 200  # the run created by the first attempt
    assert store.get(retried.json()["run_id"]).dispatched
    assert redis_client.llen(CHAIN_QUEUE) == 1
