"""uvicorn's access and error lines go through the same JSON logging and redaction as
everything else, and access lines carry no query string."""

from __future__ import annotations

import json
import logging
import socket
from typing import Any

import httpx
import pytest

from orchestrator.api import create_app
from orchestrator.settings import Settings
from tests.support.api import AUTH, TOKEN
from tests.support.live_server import serve

QUERY_SECRET = "query-secret-value-0123456789"


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_uvicorn_logs_are_json_redacted_and_without_query_strings(
    settings: Settings, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    # The test's own HTTP client logs the URLs it requests; only the server's lines count.
    caplog.set_level(logging.WARNING, logger="httpx")
    with serve(create_app(settings), log_level="info") as url:
        with httpx.Client(base_url=url, timeout=30) as client:
            assert client.get(f"/healthz?token={QUERY_SECRET}").status_code == 200
            assert client.get(f"/v1/runs?cursor={QUERY_SECRET}", headers=AUTH).status_code in (
                200,
                422,
            )
        # Not HTTP at all: uvicorn's error logger reports it.
        host, port = url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=30) as sock:
            sock.sendall(b"\x00\x01 not http " + TOKEN.encode() + b"\r\n\r\n")
            sock.recv(4096)
    out, err = capsys.readouterr()
    assert QUERY_SECRET not in out + err
    assert TOKEN not in out + err
    lines = json_lines(err)
    access = [line["event"] for line in lines if line.get("logger") == "uvicorn.access"]
    assert any('"GET /healthz HTTP/1.1" 200' in event for event in access), access
    assert any('"GET /v1/runs HTTP/1.1"' in event for event in access), access
    assert any(line.get("logger") == "uvicorn.error" for line in lines), lines
    assert "uvicorn.access" not in out  # nothing left on uvicorn's own stdout handler
