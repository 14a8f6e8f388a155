"""Event streams are capped, in all and per client, and use their own Redis connections:
at the cap, /healthz and the runs routes still answer."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from contextlib import ExitStack, closing
from pathlib import Path

import httpx
import pytest
import redis
from pydantic import SecretStr

from orchestrator.api import create_app
from orchestrator.domain.spec import parse_spec
from orchestrator.settings import Settings
from orchestrator.store import RunStore
from tests.support.api import AUTH, TOKEN, run_request
from tests.support.live_server import serve


def settings_with(redis_url: str, tmp_path: Path, streams: int, per_client: int) -> Settings:
    return Settings(
        redis_url=redis_url,
        artifacts_dir=tmp_path,
        api_token=SecretStr(TOKEN),
        api_max_streams=streams,
        api_max_streams_per_client=per_client,
    )


@pytest.fixture
def run_id(redis_url: str) -> Iterator[str]:
    with closing(redis.Redis.from_url(redis_url)) as connection:
        record, _ = RunStore(connection).create_run(parse_spec(run_request()["spec"]))
        yield record.run_id  # queued: its stream stays open, waiting for events


def open_stream(url: str, run_id: str) -> tuple[socket.socket, int]:
    """A raw connection asking for the run's events; (socket, HTTP status)."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=30)
    request = (
        f"GET /v1/runs/{run_id}/events HTTP/1.1\r\nHost: {host}\r\n"
        f"Authorization: Bearer {TOKEN}\r\nAccept: text/event-stream\r\n\r\n"
    )
    sock.sendall(request.encode())
    received = b""
    while b"\r\n" not in received:
        chunk = sock.recv(4096)
        if not chunk:
            break
        received += chunk
    return sock, int(received.split(b" ", 2)[1])


def test_streams_past_the_cap_are_503_and_the_api_keeps_answering(
    redis_url: str, tmp_path: Path, run_id: str
) -> None:
    cap = 100
    settings = settings_with(redis_url, tmp_path, streams=cap, per_client=1000)
    with serve(create_app(settings)) as url, ExitStack() as open_sockets:
        statuses = []
        for _ in range(150):
            sock, status = open_stream(url, run_id)
            open_sockets.callback(sock.close)
            statuses.append(status)
        assert statuses.count(200) == cap
        assert statuses.count(503) == 150 - cap
        with httpx.Client(base_url=url, headers=AUTH, timeout=30) as client:
            assert client.get("/healthz").status_code == 200
            assert client.get(f"/v1/runs/{run_id}").status_code == 200
            assert client.get("/v1/runs").status_code == 200
            refused = client.get(f"/v1/runs/{run_id}/events")
            assert refused.status_code == 503
            assert refused.headers["Retry-After"]
            assert "event streams" in refused.json()["message"]
        open_sockets.close()
        # Closed streams give their slots back (bounded wait for the server to notice).
        deadline = time.monotonic() + 60
        status = 503
        while status != 200 and time.monotonic() < deadline:
            sock, status = open_stream(url, run_id)
            sock.close()
        assert status == 200


def test_one_client_gets_at_most_its_share(redis_url: str, tmp_path: Path, run_id: str) -> None:
    settings = settings_with(redis_url, tmp_path, streams=100, per_client=3)
    with serve(create_app(settings)) as url, ExitStack() as open_sockets:
        statuses = []
        for _ in range(4):
            sock, status = open_stream(url, run_id)
            open_sockets.callback(sock.close)
            statuses.append(status)
        assert statuses == [200, 200, 200, 429]
