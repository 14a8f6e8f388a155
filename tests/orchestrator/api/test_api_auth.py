from __future__ import annotations

import logging

import pytest
from fastapi.testclient import TestClient

from orchestrator.api import ApiConfigError, create_app
from orchestrator.settings import Settings
from tests.support.api import TOKEN, run_request

UNAUTHORIZED = (
    "missing, wrong or revoked bearer token (Authorization: Bearer <ORCH_API_TOKEN or an API key>)"
)


@pytest.fixture
def anonymous(settings: Settings) -> TestClient:
    return TestClient(create_app(settings))


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/v1/runs"),
        ("GET", "/v1/runs"),
        ("GET", "/v1/runs/abc"),
        ("POST", "/v1/runs/abc/cancel"),
        ("GET", "/v1/runs/abc/events"),
        ("GET", "/v1/runs/abc/outputs"),
        ("GET", "/v1/runs/abc/outputs/model.bin"),
        ("GET", "/metrics"),
    ],
)
@pytest.mark.parametrize("authorization", [None, "Bearer wrong-token", f"Basic {TOKEN}", TOKEN])
def test_protected_routes_are_401_without_the_right_token(
    anonymous: TestClient, method: str, path: str, authorization: str | None
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    response = anonymous.request(method, path, headers=headers, json=run_request())
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    # The one error shape, naming the header and the scheme that were expected
    # (and never the token itself).
    assert response.json() == {"message": UNAUTHORIZED, "detail": UNAUTHORIZED}
    assert TOKEN not in response.text


def test_the_right_token_passes(anonymous: TestClient) -> None:
    response = anonymous.get("/v1/runs", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200
    assert response.json() == {"items": [], "next_cursor": None}


@pytest.mark.parametrize("path", ["/healthz", "/docs", "/openapi.json"])
def test_health_and_docs_are_open(anonymous: TestClient, path: str) -> None:
    assert anonymous.get(path).status_code == 200


def test_openapi_documents_the_bearer_scheme(anonymous: TestClient) -> None:
    schema = anonymous.get("/openapi.json").json()
    assert schema["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    assert "RunRequest" in schema["components"]["schemas"]


def test_refuses_to_start_without_a_token(redis_url: str) -> None:
    with pytest.raises(ApiConfigError, match="ORCH_API_TOKEN"):
        create_app(Settings(redis_url=redis_url, api_token=None))


def test_unauthenticated_when_asked_for_and_warns(
    redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(redis_url=redis_url, api_token=None, api_allow_unauthenticated=True)
    with caplog.at_level(logging.WARNING), TestClient(create_app(settings)) as client:
        assert client.get("/v1/runs").status_code == 200
    assert any("ORCH_API_TOKEN is not set" in record.message for record in caplog.records)


def test_an_empty_token_counts_as_no_token(redis_url: str) -> None:
    with pytest.raises(ApiConfigError, match="ORCH_API_TOKEN"):
        create_app(Settings(redis_url=redis_url, api_token=""))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (b'{"spec": ', "application/json"),  # malformed JSON
        (b'{"spec": {"name": 1}}', "application/json"),  # well-formed, invalid
        (b"x" * (64 * 1024), "application/json"),  # over the body limit
        (b"not json at all", "text/plain"),
    ],
)
@pytest.mark.parametrize("authorization", [None, "Bearer wrong-token"])
def test_authentication_runs_before_the_body_is_read(
    anonymous: TestClient, content: bytes, content_type: str, authorization: str | None
) -> None:
    headers = {"Content-Type": content_type}
    if authorization:
        headers["Authorization"] = authorization
    response = anonymous.post("/v1/runs", content=content, headers=headers)
    assert response.status_code == 401, response.text
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert response.json()["message"].startswith("missing, wrong or revoked bearer token")


def test_the_scheme_name_is_case_insensitive(anonymous: TestClient) -> None:
    response = anonymous.get("/v1/runs", headers={"Authorization": f"bearer {TOKEN}"})
    assert response.status_code == 200
