"""`orchestrator flower` serves Celery's monitor for this app."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request

import pytest

from orchestrator.devstack.redis_server import free_port
from tests.support.chain_stack import wait_for

pytestmark = pytest.mark.integration


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthcheck", timeout=2) as answer:
            return bool(answer.read() == b"OK")
    except OSError:
        return False


def test_flower_serves_for_the_chain_app(redis_url: str) -> None:
    port = free_port()
    env = dict(os.environ, REDIS_URL=redis_url)
    flower = subprocess.Popen(
        [sys.executable, "-m", "orchestrator.cli", "flower", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for(lambda: _healthy(port), 60, "flower to answer its healthcheck")
    finally:
        flower.terminate()
        output = flower.communicate(timeout=30)[0].decode(errors="replace")
    assert "batchai.poll_job" in output  # it loaded this app's tasks
