"""The API with REDIS_URL=sentinel://...: it enqueues on the Sentinels' master,
answers 503 while there is none, and follows the promoted replica."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient
from pydantic import SecretStr

from orchestrator.api import create_app
from orchestrator.chain.queue import CHAIN_QUEUE
from orchestrator.settings import Settings
from tests.support.api import AUTH, TOKEN, run_request
from tests.support.sentinel import SentinelDeployment, poll_until


@pytest.fixture
def sentinel_client(
    sentinel_deployment: SentinelDeployment, tmp_path: Path
) -> Iterator[TestClient]:
    settings = Settings(
        REDIS_URL=sentinel_deployment.url(1),
        ORCH_REDIS_SENTINEL_MASTER=sentinel_deployment.master_name,
        ORCH_REDIS_SENTINEL_PASSWORD=sentinel_deployment.sentinel_password,
        ORCH_ARTIFACTS_DIR=str(tmp_path / "artifacts"),
        ORCH_API_TOKEN=SecretStr(TOKEN),
    )
    with TestClient(create_app(settings), headers=AUTH) as client:
        yield client


def queued(port: int, deployment: SentinelDeployment) -> int:
    with redis.Redis(port=port, password=deployment.password, db=1) as server:
        return int(server.llen(CHAIN_QUEUE))


def test_the_api_enqueues_on_the_master_and_follows_a_promotion(
    sentinel_client: TestClient, sentinel_deployment: SentinelDeployment
) -> None:
    assert sentinel_client.get("/healthz").status_code == 200
    created = sentinel_client.post("/v1/runs", json=run_request())
    assert created.status_code == 202
    run_id = created.json()["run_id"]
    # The first step's task message is in the chain queue on the master (db 1).
    assert queued(sentinel_deployment.master.port, sentinel_deployment) == 1
    assert sentinel_client.get(f"/v1/runs/{run_id}").json()["run_id"] == run_id
    replica = sentinel_deployment.replica
    assert replica is not None
    poll_until("the replica has the run", lambda: queued(replica.port, sentinel_deployment) == 1)

    # The master goes away, and (for now) the Sentinel does not promote the replica.
    with sentinel_deployment.sentinel_client() as sentinel:
        sentinel.sentinel_set(sentinel_deployment.master_name, "down-after-milliseconds", 600_000)
        sentinel_deployment.master.stop()
        # No master: 503 with Retry-After, not a hang or a 500.
        down = sentinel_client.get(f"/v1/runs/{run_id}")
        assert down.status_code == 503 and "Retry-After" in down.headers
        sentinel.execute_command("SENTINEL", "FAILOVER", sentinel_deployment.master_name)
    new_master = sentinel_deployment.replica
    assert new_master is not None
    sentinel_deployment.wait_for_switch(new_master)
    poll_until("the API answers again", lambda: sentinel_client.get("/healthz").status_code == 200)
    assert sentinel_client.get(f"/v1/runs/{run_id}").json()["run_id"] == run_id
    again = sentinel_client.post("/v1/runs", json=run_request(name="after-failover"))
    assert again.status_code == 202
    assert queued(new_master.port, sentinel_deployment) == 2
