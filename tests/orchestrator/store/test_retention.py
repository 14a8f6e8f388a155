"""Deleting ended runs past their retention (store/retention.py, lua/delete_run.lua),
on fakeredis: the same Lua script as on a real server."""

from __future__ import annotations

import json
import time

import pytest
import redis

from orchestrator.domain.spec import parse_spec
from orchestrator.domain.status import TERMINAL, RunStatus
from orchestrator.store import RunStore
from orchestrator.store import retention as retention_module

SPEC = {"name": "mnist", "job": {"script": "train.py"}, "inputs": {"SAMPLE": "/data"}}
# Finish times after the runs' real creation times (the candidates are found by
# creation time, and a run cannot finish before it was created).
OLD = time.time() + 10_000
CUTOFF = OLD + 1000
LATE = OLD + 2000
TO_END = {
    RunStatus.SUCCEEDED: [RunStatus.PROVISIONING, RunStatus.RUNNING, RunStatus.COLLECTING],
    RunStatus.FAILED: [RunStatus.PROVISIONING],
    RunStatus.CANCELLED: [],
}


@pytest.fixture
def store(fake_redis: redis.Redis) -> RunStore:
    return RunStore(fake_redis, namespace="test")


def new_run(store: RunStore, run_id: str, **spec: object) -> str:
    idempotency_key = spec.pop("idempotency_key", None)
    store.create_run(
        parse_spec({**SPEC, **spec}),
        run_id=run_id,
        idempotency_key=idempotency_key if isinstance(idempotency_key, str) else None,
    )
    return run_id


def end(store: RunStore, run_id: str, status: RunStatus, finished_at: float) -> None:
    """End the run with `status`, as if it had finished at `finished_at`."""
    for step in [*TO_END[status], status]:
        store.transition(run_id, step)
    store.update(run_id, lambda r: setattr(r, "finished_at", finished_at))


def keys_of(fake_redis: redis.Redis) -> set[str]:
    return {key.decode() for key in fake_redis.keys("test:*")}


def index_members(fake_redis: redis.Redis) -> set[tuple[str, str]]:
    """(index, run id) for every entry of every run index."""
    found = set()
    for key in keys_of(fake_redis):
        if key == "test:runs" or key.startswith("test:idx:"):
            found |= {(key, member.decode()) for member in fake_redis.zrange(key, 0, -1)}
    return found


def test_an_ended_run_past_its_retention_is_deleted_whole(
    store: RunStore, fake_redis: redis.Redis
) -> None:
    new_run(store, "old", tags={"team": "vision", "sweep": "lr"}, idempotency_key="nightly-1")
    end(store, "old", RunStatus.SUCCEEDED, finished_at=OLD)
    assert keys_of(fake_redis) >= {"test:run:old", "test:events:old", "test:runs"}
    assert store.delete_expired_runs(finished_before=OLD + 0.5) == ["old"]
    # Record, events, idempotency key, and every index (empty sets vanish).
    assert keys_of(fake_redis) == set()
    assert not store.exists("old")
    # The idempotency key is free again: a new submission creates a new run.
    _, created = store.create_run(parse_spec(SPEC), idempotency_key="nightly-1")
    assert created


def test_runs_finished_at_or_after_the_cutoff_are_kept(
    store: RunStore, fake_redis: redis.Redis
) -> None:
    for status in TERMINAL:
        new_run(store, f"old-{status.value}")
        end(store, f"old-{status.value}", status, finished_at=OLD)
        new_run(store, f"recent-{status.value}")
        end(store, f"recent-{status.value}", status, finished_at=CUTOFF)
    kept = {f"recent-{status.value}" for status in TERMINAL}
    entries_of_kept = {entry for entry in index_members(fake_redis) if entry[1] in kept}

    assert store.delete_expired_runs(finished_before=OLD) == []  # not strictly before
    deleted = store.delete_expired_runs(finished_before=CUTOFF)
    assert sorted(deleted) == sorted(f"old-{status.value}" for status in TERMINAL)
    assert {record.run_id for record in store.list_runs(limit=100)[0]} == kept
    assert index_members(fake_redis) == entries_of_kept
    for run_id in kept:
        assert store.read_events(run_id)  # their streams untouched


def test_runs_that_have_not_ended_are_never_deleted(
    store: RunStore, fake_redis: redis.Redis
) -> None:
    new_run(store, "queued")
    new_run(store, "running")
    store.transition("running", RunStatus.PROVISIONING)
    store.transition("running", RunStatus.RUNNING)
    before = {key: fake_redis.dump(key) for key in keys_of(fake_redis)}
    far_future = 1e12
    assert store.delete_expired_runs(finished_before=far_future) == []
    # Even asked one by one, and even when an index wrongly lists it as ended.
    fake_redis.zadd(store.keys.status_index(RunStatus.SUCCEEDED), {"running": 1.0})
    assert store.delete_expired_runs(finished_before=far_future) == []
    fake_redis.zrem(store.keys.status_index(RunStatus.SUCCEEDED), "running")
    assert not store.delete_run_if_expired("queued", far_future)
    assert {key: fake_redis.dump(key) for key in keys_of(fake_redis)} == before


def test_the_script_itself_refuses_a_run_that_has_not_ended(store: RunStore) -> None:
    # The Python side reads before the script runs; the script checks again.
    new_run(store, "running")
    store.transition("running", RunStatus.PROVISIONING)
    version = store.redis.hget(store.keys.run("running"), "version")
    assert isinstance(version, bytes)
    assert not store._run_script("running", version.decode(), 1e12, [store.keys.runs])
    assert store.exists("running")


def test_a_run_changed_since_it_was_read_is_kept(store: RunStore) -> None:
    new_run(store, "racing")
    end(store, "racing", RunStatus.FAILED, finished_at=OLD)
    version = store.redis.hget(store.keys.run("racing"), "version")
    assert isinstance(version, bytes)
    store.update("racing", lambda r: r.outputs.append("stderr.txt"))  # a write in between
    assert not store._run_script("racing", version.decode(), CUTOFF, [store.keys.runs])
    assert store.exists("racing")
    assert store.delete_run_if_expired("racing", CUTOFF)  # read again: it goes


def test_a_run_whose_lease_is_held_is_kept(store: RunStore) -> None:
    new_run(store, "leased")
    end(store, "leased", RunStatus.CANCELLED, finished_at=OLD)
    store.redis.set(store.keys.lock("leased"), "task-1", px=60_000)
    assert store.delete_expired_runs(finished_before=CUTOFF) == []
    store.redis.delete(store.keys.lock("leased"))
    assert store.delete_expired_runs(finished_before=CUTOFF) == ["leased"]


def test_an_idempotency_key_now_naming_another_run_is_left_alone(
    store: RunStore, fake_redis: redis.Redis
) -> None:
    new_run(store, "first", idempotency_key="shared")
    end(store, "first", RunStatus.SUCCEEDED, finished_at=OLD)
    key = store.keys.idempotency("shared")
    fake_redis.set(key, "second")  # e.g. re-pointed by hand
    assert store.delete_expired_runs(finished_before=CUTOFF) == ["first"]
    assert fake_redis.get(key) == b"second"


def test_index_entries_without_a_record_are_cleaned(
    store: RunStore, fake_redis: redis.Redis
) -> None:
    fake_redis.zadd(store.keys.status_index(RunStatus.FAILED), {"ghost": 10.0})
    fake_redis.zadd(store.keys.runs, {"ghost": 10.0})
    assert store.delete_expired_runs(finished_before=CUTOFF) == ["ghost"]
    assert keys_of(fake_redis) == set()


def test_an_unreadable_record_is_never_deleted_blind(
    store: RunStore, fake_redis: redis.Redis
) -> None:
    new_run(store, "odd")
    end(store, "odd", RunStatus.SUCCEEDED, finished_at=OLD)
    data = json.loads(fake_redis.hget(store.keys.run("odd"), "data") or b"{}")
    data["status"] = "from-the-future"
    fake_redis.hset(store.keys.run("odd"), "data", json.dumps(data))
    assert store.delete_expired_runs(finished_before=CUTOFF) == []
    assert fake_redis.exists(store.keys.run("odd"))


def test_a_sweep_deletes_at_most_its_limit_and_pages_past_kept_runs(
    store: RunStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(retention_module, "RETENTION_PAGE", 2)
    # Created in this order; the long-running ones finished after the cutoff,
    # so each page of candidates (by creation time) starts with kept runs.
    for number in range(9):
        run_id = f"run-{number}"
        new_run(store, run_id)
        end(store, run_id, RunStatus.SUCCEEDED, finished_at=LATE if number % 3 == 0 else OLD)
    expired = [f"run-{n}" for n in range(9) if n % 3]
    first = store.delete_expired_runs(finished_before=CUTOFF, limit=4)
    assert first == expired[:4]
    second = store.delete_expired_runs(finished_before=CUTOFF, limit=4)
    assert second == expired[4:]
    assert store.delete_expired_runs(finished_before=CUTOFF) == []
    assert {r.run_id for r in store.list_runs(limit=100)[0]} == {"run-0", "run-3", "run-6"}


def test_the_script_runs_on_a_real_redis_server(redis_client: redis.Redis) -> None:
    # cjson and the key/argument layout as a real server runs them (integration).
    store = RunStore(redis_client, namespace="test")
    new_run(store, "old", tags={"team": "vision"}, idempotency_key="nightly-1")
    end(store, "old", RunStatus.FAILED, finished_at=OLD)
    new_run(store, "live")
    assert store.delete_expired_runs(finished_before=LATE) == ["old"]
    assert not store.delete_run_if_expired("live", 1e12)
    assert keys_of(redis_client) == {
        "test:run:live",
        "test:events:live",
        "test:runs",
        "test:idx:status:queued",
        "test:idx:name:mnist",
    }
