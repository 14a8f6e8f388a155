"""Keys across real API processes: two `orchestrator api` processes on one Redis.
A key revoked through one is refused by the other at once; a rate limit is counted
once for both; a `read` key's submit is refused on either, naming `submit`."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.integration

TOKEN = "keys-e2e-token-0123456789"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}
STARTUP_SECONDS = 30.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_until_serving(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the API exited with {process.returncode}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)  # a readiness poll, not a timing assertion
    raise AssertionError(f"the API at {url} did not start in {STARTUP_SECONDS} s")


@pytest.fixture
def two_apis(redis_url: str, tmp_path: Path) -> Iterator[tuple[str, str]]:
    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "ORCH_API_TOKEN": TOKEN,
        "ORCH_ARTIFACTS_DIR": str(tmp_path / "artifacts"),
        "ORCH_LOG_LEVEL": "WARNING",
    }
    processes: list[subprocess.Popen[bytes]] = []
    urls: list[str] = []
    try:
        for _ in range(2):
            port = _free_port()
            process = subprocess.Popen(
                [sys.executable, "-m", "orchestrator.cli", "api", "--port", str(port)],
                env=env,
                cwd=tmp_path,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            processes.append(process)
            urls.append(f"http://127.0.0.1:{port}")
        for url, process in zip(urls, processes, strict=True):
            _wait_until_serving(url, process)
        yield urls[0], urls[1]
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()


def _create(url: str, name: str, scopes: list[str], rate: str | None = None) -> str:
    response = httpx.post(
        f"{url}/v1/keys", headers=ADMIN, json={"name": name, "scopes": scopes, "rate": rate}
    )
    assert response.status_code == 201, response.text
    return str(response.json()["key"])


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_a_key_revoked_on_one_process_is_refused_by_the_other_at_once(
    two_apis: tuple[str, str],
) -> None:
    first, second = two_apis
    key = _create(first, "svc", ["read"])
    assert httpx.get(f"{second}/v1/runs", headers=_bearer(key)).status_code == 200
    assert httpx.delete(f"{first}/v1/keys/svc", headers=ADMIN).status_code == 204
    refused = httpx.get(f"{second}/v1/runs", headers=_bearer(key))
    assert refused.status_code == 401
    assert key not in refused.text


def test_a_read_key_cannot_submit_on_either_process(two_apis: tuple[str, str]) -> None:
    first, second = two_apis
    key = _create(first, "dashboard", ["read"])
    for url in (first, second):
        response = httpx.post(f"{url}/v1/runs", headers=_bearer(key), json={"spec": {}})
        assert response.status_code == 403
        assert response.json()["message"] == "scope: key 'dashboard' lacks the 'submit' scope"
    assert httpx.get(f"{first}/v1/runs", headers=ADMIN).json()["items"] == []


def test_the_rate_is_counted_once_for_both_processes(two_apis: tuple[str, str]) -> None:
    first, second = two_apis
    key = _create(first, "svc", ["read"], rate="3/minute")
    statuses = [
        httpx.get(f"{url}/v1/runs", headers=_bearer(key)).status_code
        for url in (first, second, first, second)
    ]
    assert statuses == [200, 200, 200, 429]
