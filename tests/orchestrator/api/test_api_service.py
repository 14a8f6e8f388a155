from __future__ import annotations

import time
from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from orchestrator.api import create_app
from orchestrator.chain.queue import CHAIN_QUEUE
from orchestrator.chain.schedules import ScheduleContext, fire_due_schedules, trigger_now
from orchestrator.devstack.redis_server import RedisServer
from orchestrator.domain.schedule import TickOutcome, parse_schedule
from orchestrator.domain.spec import RunSpec
from orchestrator.domain.status import RunStatus, Step, StepState
from orchestrator.settings import Settings
from orchestrator.store import RunStore
from orchestrator.store.schedules import ScheduleBook
from tests.support.api import AUTH, TOKEN, run_request


def test_healthz_is_ok_when_redis_answers(client: TestClient) -> None:
    response = client.get("/healthz", headers={"Authorization": ""})
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "redis": "ok", "broker": "ok"}


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_metrics_expose_runs_queue_steps_and_azure_requests(
    client: TestClient, store: RunStore, redis_client: redis.Redis
) -> None:
    first = client.post("/v1/runs", json=run_request()).json()["run_id"]
    client.post("/v1/runs", json=run_request(name="second"))
    store.set_step(first, Step.ENSURE_RESOURCE_GROUP, StepState.RUNNING)
    store.set_step(first, Step.ENSURE_RESOURCE_GROUP, StepState.DONE)
    store.transition(first, RunStatus.CANCELLED)
    redis_client.hincrby(store.keys.azure_requests, "create_cluster|ok", 3)

    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples = _samples(response.text)
    assert samples[("orchestrator_runs", (("status", "queued"),))] == 1
    assert samples[("orchestrator_runs", (("status", "cancelled"),))] == 1
    assert samples[("orchestrator_queue_depth", (("queue", CHAIN_QUEUE),))] == 2
    step = (("step", "ensure_resource_group"),)
    assert samples[("orchestrator_step_duration_seconds_count", step)] == 1
    assert samples[("orchestrator_step_duration_seconds_count", (("step", "cleanup"),))] == 0
    azure = (("operation", "create_cluster"), ("outcome", "ok"))
    assert samples[("orchestrator_azure_requests_total", azure)] == 3

    # No schedule has ticked yet: the schedule families are there, at zero.
    for outcome in ("ran", "skipped", "replaced", "missed"):
        assert samples[("orchestrator_schedule_ticks_total", (("outcome", outcome),))] == 0
    assert samples[("orchestrator_schedule_tick_to_enqueue_seconds_count", ())] == 0

    # A run is observed once: scraping again does not count it twice.
    again = _samples(client.get("/metrics").text)
    assert again[("orchestrator_step_duration_seconds_count", step)] == 1


def test_metrics_expose_schedule_ticks_and_tick_to_enqueue_latency(
    client: TestClient, store: RunStore
) -> None:
    # A forbid schedule fired by the workers' code (a broker-less enqueue): the
    # first tick runs, the next is skipped while that run is still queued.
    # Its ticks are over 100 s in the past, so the run is enqueued over 100 s late.
    tick = (int(time.time()) // 10) * 10 - 120.0
    book = ScheduleBook(store.redis, store.keys)
    definition = {"name": "s", "trigger": {"every": "10s"}, "run": run_request()["spec"]}
    book.put(parse_schedule(definition), mode="create", now=tick - 1)
    ctx = ScheduleContext(settings=Settings(), store=store)

    def enqueue(spec: RunSpec, store: RunStore, key: str) -> str:
        return store.create_run(spec, idempotency_key=key)[0].run_id

    fired = fire_due_schedules(ctx, tick, worker="w1", enqueue=enqueue)
    fired += fire_due_schedules(ctx, tick + 10, worker="w1", enqueue=enqueue)
    assert [f.entry.outcome for f in fired] == [TickOutcome.RAN, TickOutcome.SKIPPED]
    # Another worker looking at the same ticks counts nothing more.
    assert fire_due_schedules(ctx, tick + 10, worker="w2", enqueue=enqueue) == []
    trigger_now(ctx, "s", request_key="manual", enqueue=enqueue)  # counted nowhere

    samples = _samples(client.get("/metrics").text)
    ticks = {
        outcome: samples[("orchestrator_schedule_ticks_total", (("outcome", outcome),))]
        for outcome in ("ran", "skipped", "replaced", "missed")
    }
    assert ticks == {"ran": 1, "skipped": 1, "replaced": 0, "missed": 0}
    latency = "orchestrator_schedule_tick_to_enqueue_seconds"
    assert samples[(f"{latency}_count", ())] == 1
    assert samples[(f"{latency}_bucket", (("le", "60.0"),))] == 0
    assert samples[(f"{latency}_bucket", (("le", "+Inf"),))] == 1
    assert 120 <= samples[(f"{latency}_sum", ())] < 600


@pytest.mark.integration  # starts (and stops) a redis-server of its own
def test_redis_down_is_503_with_retry_after(tmp_path: Path) -> None:
    server = RedisServer().start()
    settings = Settings(
        redis_url=server.url,
        api_token=SecretStr(TOKEN),
        artifacts_dir=tmp_path,
    )
    try:
        with TestClient(create_app(settings), headers=AUTH) as client:
            run_id = client.post("/v1/runs", json=run_request()).json()["run_id"]
            server.stop()

            for method, path in [
                ("POST", "/v1/runs"),
                ("GET", f"/v1/runs/{run_id}"),
                ("GET", "/v1/runs"),
                ("POST", f"/v1/runs/{run_id}/cancel"),
                ("GET", f"/v1/runs/{run_id}/events"),
                ("GET", "/metrics"),
                ("GET", "/healthz"),
            ]:
                response = client.request(method, path, json=run_request())
                assert response.status_code == 503, (method, path, response.text)
                assert response.headers["Retry-After"] == "5"
                assert "redis://" not in response.text
    finally:
        server.stop()
