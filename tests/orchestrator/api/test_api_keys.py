"""Named API keys over HTTP: scopes (403 naming the scope, before the body is read),
revocation across API instances, rate limits shared through Redis, submitted_by
and the audit trail. Real Redis (the session's), in-process apps."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from pydantic import SecretStr

from orchestrator.api import create_app
from orchestrator.api.app import ROUTERS
from orchestrator.api.auth import PUBLIC_PATHS, ScopeTable
from orchestrator.chain.queue import CHAIN_QUEUE
from orchestrator.settings import Settings
from orchestrator.store import RunStore
from tests.support.api import AUTH, bearer, create_key, run_request

ALL_BUT = {
    "read": ["submit", "cancel"],
    "submit": ["read", "cancel"],
    "cancel": ["read", "submit"],
    "admin": ["read", "submit", "cancel"],
}
SCHEDULE = {
    "name": "nightly",
    "trigger": {"every": "1h"},
    "run": run_request()["spec"],
}
# Every route a key can reach, with the scope it needs.
ROUTES: list[tuple[str, str, str, Any]] = [
    ("GET", "/v1/runs", "read", None),
    ("GET", "/v1/runs/r1", "read", None),
    ("GET", "/v1/runs/r1/events", "read", None),
    ("GET", "/v1/runs/r1/outputs", "read", None),
    ("GET", "/v1/runs/r1/outputs/model.bin", "read", None),
    ("GET", "/v1/runs/r1/deliveries", "read", None),
    ("GET", "/metrics", "read", None),
    ("GET", "/v1/schedules", "read", None),
    ("GET", "/v1/schedules/nightly", "read", None),
    ("GET", "/v1/sweeps", "read", None),
    ("GET", "/v1/sweeps/sw1", "read", None),
    ("GET", "/v1/sweeps/sw1/events", "read", None),
    ("POST", "/v1/runs", "submit", run_request()),
    ("POST", "/v1/uploads", "submit", {"files": [{"path": "a", "sha256": "0" * 64, "size": 1}]}),
    ("PUT", "/v1/uploads/content/" + "0" * 64, "submit", None),
    ("POST", "/v1/sweeps", "submit", {"name": "x"}),
    ("POST", "/v1/runs/r1/cancel", "cancel", None),
    ("POST", "/v1/sweeps/sw1/cancel", "cancel", None),
    ("POST", "/v1/schedules", "admin", SCHEDULE),
    ("PUT", "/v1/schedules/nightly", "admin", SCHEDULE),
    ("POST", "/v1/schedules/nightly/pause", "admin", None),
    ("POST", "/v1/schedules/nightly/resume", "admin", None),
    ("POST", "/v1/schedules/nightly/trigger", "admin", None),
    ("DELETE", "/v1/schedules/nightly", "admin", None),
    ("POST", "/v1/keys", "admin", {"name": "x", "scopes": ["read"]}),
    ("GET", "/v1/keys", "admin", None),
    ("GET", "/v1/keys/x", "admin", None),
    ("DELETE", "/v1/keys/x", "admin", None),
    ("GET", "/v1/audit", "admin", None),
]


@pytest.fixture
def anonymous(settings: Settings) -> Iterator[TestClient]:
    """A client without credentials (each request brings its own)."""
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@pytest.fixture
def second_app(settings: Settings) -> Iterator[TestClient]:
    """Another API instance on the same Redis, as a second API process would be."""
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def _runs(client: redis.Redis) -> int:
    return int(client.zcard(RunStore(client).keys.runs))


@pytest.mark.parametrize(("method", "path", "needed", "body"), ROUTES)
def test_a_key_without_the_scope_gets_403_naming_it(
    client: TestClient,
    anonymous: TestClient,
    method: str,
    path: str,
    needed: str,
    body: Any,
) -> None:
    key = create_key(client, "limited", ALL_BUT[needed])["key"]
    response = anonymous.request(method, path, headers=bearer(key), json=body)
    assert response.status_code == 403, response.text
    message = response.json()["message"]
    assert message == f"scope: key 'limited' lacks the '{needed}' scope"
    assert key not in response.text


@pytest.mark.parametrize(("method", "path", "needed", "body"), ROUTES)
def test_a_key_with_the_scope_passes_the_check(
    client: TestClient,
    anonymous: TestClient,
    method: str,
    path: str,
    needed: str,
    body: Any,
) -> None:
    key = create_key(client, "able", [needed])["key"]
    response = anonymous.request(method, path, headers=bearer(key), json=body)
    # 404 (no such run / schedule / key) is fine: the check let it through.
    assert response.status_code not in (401, 403, 429), response.text


def test_every_route_declares_its_scope() -> None:
    """A route added without a scope would be open to every key: refuse that."""
    table = ScopeTable(ROUTERS)
    declared = [
        (method, route.path)
        for router in ROUTERS
        for route in router.routes
        if isinstance(route, APIRoute) and route.path not in PUBLIC_PATHS
        for method in route.methods
    ]
    assert len(declared) == len(ROUTES)
    for method, path in declared:
        concrete = path.replace("{run_id}", "r1").replace("{name}", "x")
        concrete = concrete.replace("{sweep_id}", "sw1")
        concrete = concrete.replace("{path:path}", "f")
        scope = {"type": "http", "path": concrete, "method": method, "root_path": ""}
        assert table.required(scope) is not None, f"{method} {path} declares no scope"


@pytest.mark.parametrize(("method", "path", "needed", "body"), ROUTES)
def test_the_middleware_finds_the_scope_of_each_route(
    method: str, path: str, needed: str, body: Any
) -> None:
    scope = {"type": "http", "path": path, "method": method, "root_path": ""}
    needed_scope = ScopeTable(ROUTERS).required(scope)
    assert needed_scope is not None and needed_scope.value == needed


def test_admin_implies_every_scope(client: TestClient, anonymous: TestClient) -> None:
    key = create_key(client, "ops", ["admin"])["key"]
    assert anonymous.get("/v1/runs", headers=bearer(key)).status_code == 200
    assert anonymous.post("/v1/runs", headers=bearer(key), json=run_request()).status_code == 202


def test_the_scope_is_checked_before_the_body_is_read(
    client: TestClient, anonymous: TestClient, redis_client: redis.Redis, settings: Settings
) -> None:
    key = create_key(client, "reader", ["read"])["key"]
    headers = {**bearer(key), "Content-Type": "application/json"}
    malformed = anonymous.post("/v1/runs", headers=headers, content=b"{not json")
    assert malformed.status_code == 403  # not 422: the body was never parsed
    oversized = anonymous.post(
        "/v1/runs", headers=headers, content=b"x" * (settings.api_max_body_bytes + 1)
    )
    assert oversized.status_code == 403  # not 413
    assert _runs(redis_client) == 0
    assert redis_client.llen(CHAIN_QUEUE) == 0


def test_create_shows_the_key_once_and_never_again(
    client: TestClient, anonymous: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        created = create_key(client, "dashboard", ["read"], rate="10/s")
        assert set(created) == {
            "name",
            "key",
            "scopes",
            "rate",
            "signing_secret",
            "created_at",
            "last_used_at",
            "notify",
        }
        assert (created["scopes"], created["rate"]) == (["read"], "10/second")
        assert anonymous.get("/v1/runs", headers=bearer(created["key"])).status_code == 200
        listed = client.get("/v1/keys")
        one = client.get("/v1/keys/dashboard")
        audit = client.get("/v1/audit")
    assert listed.status_code == one.status_code == audit.status_code == 200
    assert listed.json()["items"][0]["name"] == "dashboard"
    assert one.json()["last_used_at"] is not None
    for text in (listed.text, one.text, audit.text, caplog.text):
        assert created["key"] not in text
        assert created["signing_secret"] not in text


def test_bad_key_requests_are_422_naming_the_field(client: TestClient) -> None:
    cases = [
        ({"name": "Bad Name", "scopes": ["read"]}, "name: "),
        ({"name": "admin", "scopes": ["read"]}, "name: 'admin' is reserved"),
        ({"name": "ok", "scopes": ["write"]}, "scopes: unknown scope 'write'"),
        ({"name": "ok", "scopes": []}, "scopes: at least one scope is needed"),
        ({"name": "ok", "scopes": ["read"], "rate": "fast"}, "rate: 'fast' is not a rate"),
    ]
    for body, message in cases:
        response = client.post("/v1/keys", json=body)
        assert response.status_code == 422, body
        assert response.json()["message"].startswith(message), response.json()
    assert client.get("/v1/keys").json()["items"] == []


def test_a_taken_name_is_409(client: TestClient) -> None:
    create_key(client, "svc", ["read"])
    response = client.post("/v1/keys", json={"name": "svc", "scopes": ["read"]})
    assert response.status_code == 409
    assert response.json()["message"].startswith("name: a key named 'svc' already exists")


def test_a_revoked_key_is_refused_at_once_by_every_api_instance(
    client: TestClient, anonymous: TestClient, second_app: TestClient
) -> None:
    key = create_key(client, "svc", ["read"])["key"]
    assert second_app.get("/v1/runs", headers=bearer(key)).status_code == 200
    assert client.delete("/v1/keys/svc").status_code == 204
    for app in (anonymous, second_app):
        response = app.get("/v1/runs", headers=bearer(key))
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"] == "Bearer"
    assert client.delete("/v1/keys/svc").status_code == 404


def test_over_the_rate_is_429_with_retry_after_and_nothing_written(
    client: TestClient, anonymous: TestClient, redis_client: redis.Redis
) -> None:
    key = create_key(client, "burst", ["submit"], rate="3/minute")["key"]
    answers = [
        anonymous.post("/v1/runs", headers=bearer(key), json=run_request()) for _ in range(4)
    ]
    assert [a.status_code for a in answers] == [202, 202, 202, 429]
    refused = answers[-1]
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert refused.json()["message"].startswith("rate: key 'burst' is over its limit of 3/minute")
    assert _runs(redis_client) == 3
    assert redis_client.llen(CHAIN_QUEUE) == 3
    # The bootstrap token has no limit, and other keys have their own.
    assert client.get("/v1/runs").status_code == 200
    other = create_key(client, "other", ["read"], rate="3/minute")["key"]
    assert anonymous.get("/v1/runs", headers=bearer(other)).status_code == 200


def test_the_rate_is_shared_by_every_api_instance(
    client: TestClient, anonymous: TestClient, second_app: TestClient
) -> None:
    key = create_key(client, "shared", ["read"], rate="3/minute")["key"]
    statuses = [
        anonymous.get("/v1/runs", headers=bearer(key)).status_code,
        second_app.get("/v1/runs", headers=bearer(key)).status_code,
        anonymous.get("/v1/runs", headers=bearer(key)).status_code,
        second_app.get("/v1/runs", headers=bearer(key)).status_code,
    ]
    assert statuses == [200, 200, 200, 429]


def test_submitted_by_is_on_every_run_and_filters(
    client: TestClient, anonymous: TestClient
) -> None:
    vision = create_key(client, "vision", ["submit", "read"])["key"]
    speech = create_key(client, "speech", ["submit", "read"])["key"]
    ids: dict[str, list[str]] = {"vision": [], "speech": [], "admin": []}
    for name, headers in (("vision", bearer(vision)), ("speech", bearer(speech))) * 2:
        answer = anonymous.post("/v1/runs", headers=headers, json=run_request())
        ids[name].append(answer.json()["run_id"])
    ids["admin"].append(client.post("/v1/runs", json=run_request()).json()["run_id"])
    for name, run_ids in ids.items():
        page = client.get("/v1/runs", params={"submitted_by": name}).json()["items"]
        assert sorted(item["run_id"] for item in page) == sorted(run_ids)
        assert {item["submitted_by"] for item in page} == {name}
        for run_id in run_ids:
            assert client.get(f"/v1/runs/{run_id}").json()["submitted_by"] == name


def test_a_cancel_is_an_event_with_the_key_name(
    client: TestClient, anonymous: TestClient, store: RunStore
) -> None:
    run_id = client.post("/v1/runs", json=run_request()).json()["run_id"]
    key = create_key(client, "canceller", ["cancel"])["key"]
    assert anonymous.post(f"/v1/runs/{run_id}/cancel", headers=bearer(key)).status_code == 202
    cancels = [e.data for e in store.read_events(run_id) if e.kind == "cancel_requested"]
    assert cancels == [{"by": "canceller"}]


def test_key_changes_are_audited_with_the_name_of_who_made_them(
    client: TestClient, anonymous: TestClient
) -> None:
    ops = create_key(client, "ops", ["admin"])["key"]
    response = anonymous.post(
        "/v1/keys", headers=bearer(ops), json={"name": "svc", "scopes": ["read"]}
    )
    assert response.status_code == 201
    assert anonymous.delete("/v1/keys/svc", headers=bearer(ops)).status_code == 204
    events = client.get("/v1/audit").json()["items"]
    assert [(e["kind"], e["data"]["name"], e["data"]["by"]) for e in events] == [
        ("key.revoked", "svc", "ops"),
        ("key.created", "svc", "ops"),
        ("key.created", "ops", "admin"),
    ]


def test_schedules_record_who_created_and_changed_them(
    client: TestClient, anonymous: TestClient
) -> None:
    ops = create_key(client, "ops", ["admin"])["key"]
    assert client.post("/v1/schedules", json=SCHEDULE).status_code == 201
    assert anonymous.post("/v1/schedules/nightly/pause", headers=bearer(ops)).status_code == 200
    view = client.get("/v1/schedules/nightly").json()
    assert (view["submitted_by"], view["updated_by"]) == ("admin", "ops")


def test_keys_work_when_serving_without_a_token(redis_url: str, settings: Settings) -> None:
    with TestClient(create_app(settings), headers=AUTH) as admin:
        key = create_key(admin, "svc", ["submit"])["key"]
    open_settings = settings.model_copy(
        update={"api_token": None, "api_allow_unauthenticated": True}
    )
    with TestClient(create_app(open_settings)) as open_api:
        named = open_api.post("/v1/runs", headers=bearer(key), json=run_request()).json()
        nobody = open_api.post("/v1/runs", json=run_request()).json()
        assert open_api.get(f"/v1/runs/{named['run_id']}").json()["submitted_by"] == "svc"
        assert open_api.get(f"/v1/runs/{nobody['run_id']}").json()["submitted_by"] == "anonymous"


def test_redis_down_while_looking_up_a_key_is_503(settings: Settings) -> None:
    down = settings.model_copy(
        update={"redis_url": "redis://127.0.0.1:1/0", "api_token": SecretStr("tok-0123456789")}
    )
    with TestClient(create_app(down)) as api:
        response = api.get("/v1/runs", headers=bearer("orch_" + "A" * 43))
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
