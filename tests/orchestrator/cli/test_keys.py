"""`orchestrator keys create | ls | revoke` against a real Redis, and the key working
(then refused) on the API."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient
from pydantic import SecretStr

from orchestrator.api import create_app
from orchestrator.settings import Settings
from orchestrator.store.apikeys import key_digest
from tests.support.cli import run_cli


def test_create_json_ls_and_revoke(
    env: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run_cli(
        ["keys", "create", "dashboard", "--scopes", "read", "--rate", "10/s", "--json"], capsys
    )
    assert code == 0
    created = json.loads(out)
    assert set(created) == {"name", "key", "scopes", "rate", "signing_secret"}
    assert (created["name"], created["scopes"], created["rate"]) == (
        "dashboard",
        ["read"],
        "10/second",
    )
    api = create_app(Settings(redis_url=env, artifacts_dir=tmp_path, api_token=SecretStr("t" * 20)))
    headers = {"Authorization": f"Bearer {created['key']}"}
    with TestClient(api) as client:
        assert client.get("/v1/runs", headers=headers).status_code == 200

        code, out, _ = run_cli(["keys", "ls"], capsys)
        assert code == 0
        assert out.startswith("dashboard  read  rate 10/second  created ")
        assert created["key"] not in out
        code, out, _ = run_cli(["keys", "ls", "--json"], capsys)
        assert [key["name"] for key in json.loads(out)] == ["dashboard"]
        assert created["key"] not in out and key_digest(created["key"]) not in out

        code, out, _ = run_cli(["keys", "revoke", "dashboard"], capsys)
        assert (code, out) == (0, "dashboard  revoked\n")
        assert client.get("/v1/runs", headers=headers).status_code == 401
    events = redis.Redis.from_url(env).xrange("orch:audit")
    assert [json.loads(fields[b"data"])["by"] for _id, fields in events] == ["cli", "cli"]


def test_create_prints_the_key_alone_on_stdout(
    env: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_cli(["keys", "create", "svc", "--scopes", "submit,read"], capsys)
    assert code == 0
    assert out.startswith("orch_") and out.count("\n") == 1
    assert "read,submit" in err and "neither is shown again" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["keys", "create", "Bad Name", "--scopes", "read"], "error: name: 'Bad Name' is not"),
        (["keys", "create", "svc", "--scopes", "write"], "error: scopes: unknown scope 'write'"),
        (["keys", "create", "svc", "--scopes", "read", "--rate", "lots"], "error: rate: 'lots'"),
        (["keys", "revoke", "nobody"], "error: name: no key named 'nobody'"),
        (
            ["keys", "create", "svc", "--scopes", "submit", "--notify-url", "http://x.example/h"],
            "error: --notify-url: must be an https:// URL",
        ),
        (
            ["keys", "create", "svc", "--scopes", "submit", "--notify-url", "https://10.0.0.1/h"],
            "error: --notify-url: host '10.0.0.1' resolves to 10.0.0.1",
        ),
        (
            ["keys", "create", "svc", "--scopes", "submit", "--notify-events", "run.failed"],
            "error: --notify-events: needs --notify-url",
        ),
        (
            [
                "keys",
                "create",
                "svc",
                "--scopes",
                "submit",
                "--notify-url",
                "https://93.184.216.34/h",
                "--notify-events",
                "run.started",
            ],
            "error: --notify-events: ",
        ),
    ],
)
def test_bad_input_is_one_error_line_and_a_non_zero_exit(
    env: str, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code, out, err = run_cli(argv, capsys)
    assert code == 1
    assert out == ""
    assert len(err.strip().splitlines()) == 1 and err.startswith(message), err


def test_a_taken_name_is_an_error(env: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(["keys", "create", "svc", "--scopes", "read"], capsys)[0] == 0
    code, _, err = run_cli(["keys", "create", "svc", "--scopes", "read"], capsys)
    assert code == 1
    assert err.startswith("error: name: a key named 'svc' already exists")
