"""enqueue against a real Redis: the message is inspected in the broker's list."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
import redis

from orchestrator.chain.enqueue import enqueue_run, enqueue_spec_dict
from orchestrator.chain.queue import CHAIN_QUEUE, send_step, step_message, task_name
from orchestrator.domain.spec import SpecError, parse_spec
from orchestrator.domain.status import Step
from orchestrator.inputs.checks import InputRejected
from orchestrator.store import IdempotencyConflict, RunStore

# A share: input: enqueueing checks it at the worker, not here (no Azure call).
SPEC = {"name": "mnist", "job": {"script": "train.py"}, "inputs": {"SAMPLE": "share:data/sample"}}


def queued_messages(client: redis.Redis) -> list[dict[str, Any]]:
    """The kombu messages waiting in the chain queue (a Redis list), decoded."""
    messages = []
    for raw in client.lrange(CHAIN_QUEUE, 0, -1):
        envelope = json.loads(raw)
        assert envelope["content-type"] == "application/json"
        body = json.loads(base64.b64decode(envelope["body"]))
        messages.append({"task": envelope["headers"]["task"], "args": body[0], "raw": envelope})
    return messages


def test_task_names() -> None:
    assert task_name(Step.ENSURE_RESOURCE_GROUP) == "batchai.ensure_resource_group"
    assert task_name(Step.CLEANUP) == "batchai.cleanup"


def test_enqueue_sends_first_step_once(redis_url: str, redis_client: redis.Redis) -> None:
    store = RunStore(redis_client)
    spec = parse_spec(SPEC)
    record, created = enqueue_run(spec, store=store, broker_url=redis_url, idempotency_key="k1")
    assert created and record.dispatched
    assert store.get(record.run_id).dispatched
    messages = queued_messages(redis_client)
    assert [(m["task"], m["args"]) for m in messages] == [
        ("batchai.ensure_resource_group", [record.run_id])
    ]
    assert messages[0]["raw"]["properties"]["delivery_info"]["routing_key"] == CHAIN_QUEUE

    again, created_again = enqueue_run(
        spec, store=store, broker_url=redis_url, idempotency_key="k1"
    )
    assert not created_again and again.run_id == record.run_id
    assert redis_client.llen(CHAIN_QUEUE) == 1  # not sent again

    with pytest.raises(IdempotencyConflict):
        enqueue_run(
            spec.with_parameters({"lr": 0.5}),
            store=store,
            broker_url=redis_url,
            idempotency_key="k1",
        )
    assert redis_client.llen(CHAIN_QUEUE) == 1


def test_undispatched_run_is_sent_on_reenqueue(redis_url: str, redis_client: redis.Redis) -> None:
    store = RunStore(redis_client)
    spec = parse_spec(SPEC)
    # A producer that died after creating the run but before sending.
    store.create_run(spec, run_id="half-done")
    assert redis_client.llen(CHAIN_QUEUE) == 0
    record, created = enqueue_run(spec, store=store, broker_url=redis_url, run_id="half-done")
    assert not created and record.dispatched
    assert [m["args"] for m in queued_messages(redis_client)] == [["half-done"]]


def test_enqueue_spec_dict(redis_url: str, redis_client: redis.Redis) -> None:
    record, created = enqueue_spec_dict(
        SPEC, redis_url=redis_url, run_id="svc-1", parameters={"epochs": 3}
    )
    assert created and record.run_id == "svc-1"
    stored = RunStore(redis_client).get("svc-1")
    assert stored.spec.parameters == {"epochs": 3}
    assert [m["args"] for m in queued_messages(redis_client)] == [["svc-1"]]
    _, created_again = enqueue_spec_dict(
        SPEC, redis_url=redis_url, run_id="svc-1", parameters={"epochs": 3}
    )
    assert not created_again and redis_client.llen(CHAIN_QUEUE) == 1
    with pytest.raises(SpecError, match="job"):
        enqueue_spec_dict({"name": "x"}, redis_url=redis_url)
    with pytest.raises(ValueError, match="run_id"):
        enqueue_spec_dict(SPEC, redis_url=redis_url, run_id="Bad Id")
    assert redis_client.llen(CHAIN_QUEUE) == 1


def test_a_worker_path_outside_the_allowed_roots_is_refused_and_nothing_is_written(
    redis_url: str, redis_client: redis.Redis, tmp_path: Path
) -> None:
    store = RunStore(redis_client)
    allowed = tmp_path / "allowed"
    (allowed / "data").mkdir(parents=True)
    (tmp_path / "secret").mkdir()
    (allowed / "escape").symlink_to(tmp_path / "secret")
    refused = {
        "/etc": "not under ORCH_INPUT_ROOTS",
        str(allowed / "escape"): "not under ORCH_INPUT_ROOTS",  # a symlink out of the root
        f"{allowed}/../secret": "without '..'",
        "/proc/self/environ": "not under ORCH_INPUT_ROOTS",
        "relative/path": "absolute path",
    }
    for path, why in refused.items():
        spec = parse_spec({**SPEC, "inputs": {"SAMPLE": path}})
        with pytest.raises(InputRejected, match=why) as caught:
            enqueue_run(spec, store=store, broker_url=redis_url, input_roots=[allowed])
        assert caught.value.field == ("inputs", "SAMPLE")
    with pytest.raises(InputRejected, match="ORCH_INPUT_ROOTS is empty"):
        enqueue_run(
            parse_spec({**SPEC, "inputs": {"SAMPLE": str(allowed / "data")}}),
            store=store,
            broker_url=redis_url,
        )
    assert redis_client.llen(CHAIN_QUEUE) == 0 and store.list_runs()[0] == []
    _, created = enqueue_run(
        parse_spec({**SPEC, "inputs": {"SAMPLE": str(allowed / "data")}}),
        store=store,
        broker_url=redis_url,
        input_roots=[allowed],
    )
    assert created and redis_client.llen(CHAIN_QUEUE) == 1


def test_an_upload_that_was_never_committed_is_refused(
    redis_url: str, redis_client: redis.Redis
) -> None:
    store = RunStore(redis_client)
    spec = parse_spec({**SPEC, "inputs": {"SAMPLE": "upload:" + "ab" * 32}})
    with pytest.raises(InputRejected, match="does not exist") as caught:
        enqueue_run(spec, store=store, broker_url=redis_url)
    assert caught.value.dotted == "inputs.SAMPLE"
    assert redis_client.llen(CHAIN_QUEUE) == 0


def test_step_message_is_what_celery_sends(redis_client: redis.Redis, redis_url: str) -> None:
    """The message enqueue_run pushes from its store script is Celery's own, field for field."""
    send_step(redis_url, Step.ENSURE_RESOURCE_GROUP, "run-1")
    (celery_raw,) = redis_client.lrange(CHAIN_QUEUE, 0, -1)
    celery = json.loads(celery_raw)
    task_id, ours_raw = step_message(Step.ENSURE_RESOURCE_GROUP, "run-1")
    ours = json.loads(ours_raw)
    assert base64.b64decode(ours["body"]) == base64.b64decode(celery["body"])
    assert {k: v for k, v in ours.items() if k not in ("body", "headers", "properties")} == {
        k: v for k, v in celery.items() if k not in ("body", "headers", "properties")
    }
    per_message = {"id", "root_id", "origin", "correlation_id", "reply_to", "delivery_tag"}
    for part in ("headers", "properties"):
        assert ours[part].keys() == celery[part].keys()
        assert {k: v for k, v in ours[part].items() if k not in per_message} == {
            k: v for k, v in celery[part].items() if k not in per_message
        }
    assert ours["headers"]["id"] == ours["headers"]["root_id"] == task_id
    assert ours["properties"]["correlation_id"] == task_id


def test_enqueue_writes_and_queues_in_one_script(redis_url: str, redis_client: redis.Redis) -> None:
    """One round trip: the run, its events (status, dispatched) and its task together."""
    store = RunStore(redis_client)
    before = redis_client.info("commandstats")
    record, created = enqueue_run(parse_spec(SPEC), store=store, broker_url=redis_url)
    after = redis_client.info("commandstats")
    assert created and record.dispatched and store.get(record.run_id).dispatched
    assert [m["args"] for m in queued_messages(redis_client)] == [[record.run_id]]
    assert [event.kind for event in store.read_events(record.run_id)] == ["status", "dispatched"]

    def calls(stats: dict[str, Any], command: str) -> int:
        return int(stats.get(f"cmdstat_{command}", {}).get("calls", 0))

    assert calls(after, "evalsha") - calls(before, "evalsha") == 1
    assert calls(after, "lpush") - calls(before, "lpush") == 1  # inside the script
    assert calls(after, "get") == calls(before, "get")  # no read-modify-write after it
