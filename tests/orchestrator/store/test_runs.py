"""RunStore rules on fakeredis: the same Lua scripts (compare-and-set, create,
append) as on a real server, run by fakeredis on lupa, with real threads racing."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import fakeredis
import pytest
import redis

from orchestrator.domain.spec import RunSpec, parse_spec
from orchestrator.domain.status import FailureReason, RunStatus, Step, StepState
from orchestrator.observability.logs import register_secret
from orchestrator.store import (
    IdempotencyConflict,
    IllegalTransition,
    RunNotFound,
    RunRecord,
    RunStore,
)

BASE = {
    "name": "mnist",
    "job": {"script": "train.py"},
    "inputs": {"SAMPLE": "/data/sample"},
}


def make_spec(**patch: object) -> RunSpec:
    return parse_spec({**BASE, **patch})


@pytest.fixture
def store(fake_redis: redis.Redis) -> RunStore:
    return RunStore(fake_redis, namespace="test")


def walk_to(store: RunStore, run_id: str, *path: RunStatus) -> RunRecord:
    record = store.get(run_id)
    for status in path:
        record = store.transition(run_id, status)
    return record


# ---------------------------------------------------------------- create / get
def test_create_and_get(store: RunStore) -> None:
    record, created = store.create_run(make_spec(), run_id="first")
    assert created
    got = store.get("first")
    assert got == record
    assert got.status is RunStatus.QUEUED
    assert got.spec_fingerprint == make_spec().fingerprint()
    assert set(got.steps) == set(Step)
    assert all(step.state is StepState.PENDING for step in got.steps.values())
    assert not got.dispatched and not got.cancel_requested and got.finished_at is None


def test_generated_id_when_none_given(store: RunStore) -> None:
    record, created = store.create_run(make_spec())
    assert created and len(record.run_id) == 16
    assert store.get(record.run_id).run_id == record.run_id


def test_get_unknown_run(store: RunStore) -> None:
    with pytest.raises(RunNotFound):
        store.get("nope")
    with pytest.raises(RunNotFound):
        store.transition("nope", RunStatus.PROVISIONING)
    with pytest.raises(RunNotFound):
        store.append_event("nope", "x")


def test_idempotent_create_by_key(store: RunStore) -> None:
    first, created = store.create_run(make_spec(), idempotency_key="req-1")
    again, created_again = store.create_run(make_spec(), idempotency_key="req-1")
    assert created and not created_again
    assert again.run_id == first.run_id
    assert list(store.run_ids()) == [first.run_id]
    with pytest.raises(IdempotencyConflict):
        store.create_run(make_spec(parameters={"lr": 0.1}), idempotency_key="req-1")
    with pytest.raises(IdempotencyConflict):
        store.create_run(make_spec(), idempotency_key="req-1", run_id="someone-else")


def test_idempotent_create_by_run_id(store: RunStore) -> None:
    store.create_run(make_spec(), run_id="nightly-1")
    again, created = store.create_run(make_spec(), run_id="nightly-1")
    assert not created and again.run_id == "nightly-1"
    with pytest.raises(IdempotencyConflict):
        store.create_run(make_spec(tags={"x": "y"}), run_id="nightly-1")


def test_concurrent_creates_with_one_key_make_one_run(store: RunStore) -> None:
    results = run_in_threads(8, lambda: store.create_run(make_spec(), idempotency_key="k"))
    assert len({record.run_id for record, _ in results}) == 1
    assert sum(created for _, created in results) == 1
    assert store.count_by_status()[RunStatus.QUEUED] == 1


def test_invalid_run_id_refused(store: RunStore) -> None:
    with pytest.raises(ValueError, match="run_id"):
        store.create_run(make_spec(), run_id="Not_Valid")


# ----------------------------------------------------------------- transitions
def test_legal_path_and_terminal_finish(store: RunStore) -> None:
    store.create_run(make_spec(), run_id="r")
    record = walk_to(
        store,
        "r",
        RunStatus.PROVISIONING,
        RunStatus.RUNNING,
        RunStatus.COLLECTING,
        RunStatus.SUCCEEDED,
    )
    assert record.status is RunStatus.SUCCEEDED
    assert record.finished_at is not None
    assert store.get("r") == record


def test_illegal_transition_refused_and_nothing_written(store: RunStore) -> None:
    store.create_run(make_spec(), run_id="r")
    before = store.get("r")
    with pytest.raises(IllegalTransition) as raised:
        store.transition("r", RunStatus.SUCCEEDED)
    assert raised.value.current is RunStatus.QUEUED
    assert store.get("r") == before
    walk_to(store, "r", RunStatus.FAILED)
    with pytest.raises(IllegalTransition):
        store.transition("r", RunStatus.PROVISIONING)


def test_transition_with_expected_status_is_compare_and_set(store: RunStore) -> None:
    store.create_run(make_spec(), run_id="r")
    walk_to(store, "r", RunStatus.PROVISIONING)
    # Legal from provisioning, but the caller saw the run queued: refused.
    with pytest.raises(IllegalTransition):
        store.transition("r", RunStatus.CANCELLED, expected=RunStatus.QUEUED)
    assert store.get("r").status is RunStatus.PROVISIONING
    record = store.transition("r", RunStatus.CANCELLED, expected=RunStatus.PROVISIONING)
    assert record.status is RunStatus.CANCELLED


def test_cancelled_defaults_its_reason(store: RunStore) -> None:
    store.create_run(make_spec(), run_id="r")
    record = store.transition("r", RunStatus.CANCELLED)
    assert record.reason is FailureReason.CANCELLED and record.finished_at is not None


def test_same_status_is_a_noop(store: RunStore) -> None:
    store.create_run(make_spec(), run_id="r")
    first = store.transition("r", RunStatus.PROVISIONING)
    again = store.transition("r", RunStatus.PROVISIONING)
    assert again == first  # not even updated_at moved
    assert [e.kind for e in store.read_events("r")].count("status") == 2  # queued, provisioning


def test_failure_reason_and_error_recorded_and_redacted(store: RunStore) -> None:
    register_secret("s3cr3t-storage-key-value")
    store.create_run(make_spec(), run_id="r")
    record = store.transition(
        "r",
        RunStatus.FAILED,
        reason=FailureReason.AUTH,
        error="403 with key s3cr3t-storage-key-value; Authorization: Bearer abc.def",
    )
    assert record.reason is FailureReason.AUTH
    assert record.error is not None
    assert "s3cr3t" not in record.error and "abc.def" not in record.error
    assert "403" in record.error


def test_racing_transitions_exactly_one_wins(store: RunStore) -> None:
    """Threads race FAILED vs CANCELLED from RUNNING: exactly one terminal outcome."""
    for round_ in range(5):
        race_to_terminal(store, f"race-{round_}")


def race_to_terminal(store: RunStore, run_id: str) -> None:
    store.create_run(make_spec(), run_id=run_id)
    walk_to(store, run_id, RunStatus.PROVISIONING, RunStatus.RUNNING)
    targets = [RunStatus.FAILED, RunStatus.CANCELLED] * 4

    def attempt(i: int) -> str:
        try:
            return f"{targets[i].value}:{store.transition(run_id, targets[i]).status.value}"
        except IllegalTransition:
            return f"{targets[i].value}:refused"

    outcomes = run_in_threads(len(targets), attempt, indexed=True)
    final = store.get(run_id).status
    # Every call aiming at the winner reports it (same status again is a no-op);
    # every call aiming at the other terminal status is refused.
    loser = RunStatus.CANCELLED if final is RunStatus.FAILED else RunStatus.FAILED
    assert sorted(outcomes) == sorted(
        [f"{final.value}:{final.value}"] * 4 + [f"{loser.value}:refused"] * 4
    )
    statuses = [e.data["status"] for e in store.read_events(run_id) if e.kind == "status"]
    assert statuses == ["queued", "provisioning", "running", final.value]


# ---------------------------------------------------------------------- update
def test_concurrent_updates_lose_nothing(store: RunStore) -> None:
    store.create_run(make_spec(), run_id="r")
    per_thread, threads = 15, 6

    def add_outputs(i: int) -> None:
        for n in range(per_thread):

            def mutate(record: RunRecord, i: int = i, n: int = n) -> None:
                record.outputs.append(f"t{i}/{n}")
                record.metrics["count"] = record.metrics.get("count", 0) + 1

            store.update("r", mutate)

    run_in_threads(threads, add_outputs, indexed=True)
    record = store.get("r")
    assert len(record.outputs) == len(set(record.outputs)) == per_thread * threads
    assert record.metrics["count"] == per_thread * threads


def test_a_write_between_read_and_compare_and_set_forces_a_retry(
    store: RunStore, fake_redis: redis.Redis
) -> None:
    """Deterministic lost race: the compare-and-set script refuses the stale copy,
    the change is re-applied to the fresh record, and nothing is lost."""
    store.create_run(make_spec(), run_id="r")
    seen: list[list[str]] = []

    def mutate(record: RunRecord) -> None:
        seen.append(list(record.outputs))
        if len(seen) == 1:  # another writer gets in after this read
            store.update("r", lambda other: other.outputs.append("theirs"))
        record.outputs.append("mine")

    record = store.update("r", mutate)
    assert seen == [[], ["theirs"]]
    assert record.outputs == store.get("r").outputs == ["theirs", "mine"]
    assert fake_redis.hget(store.keys.run("r"), "version") == b"3"  # created, theirs, mine


def test_update_may_not_change_status(store: RunStore) -> None:
    store.create_run(make_spec(), run_id="r")

    def sneaky(record: RunRecord) -> None:
        record.status = RunStatus.SUCCEEDED

    with pytest.raises(ValueError, match="transition"):
        store.update("r", sneaky)
    assert store.get("r").status is RunStatus.QUEUED


def test_update_resources_metrics(store: RunStore) -> None:
    store.create_run(make_spec(), run_id="r")

    def mutate(record: RunRecord) -> None:
        record.resources["cluster"] = "orch-r"
        record.metric_series["train_loss"] = [0.5, 0.25]

    record = store.update("r", mutate)
    assert store.get("r").resources == {"cluster": "orch-r"}
    assert record.metric_series["train_loss"] == [0.5, 0.25]


def test_set_step_lifecycle(store: RunStore) -> None:
    store.create_run(make_spec(), run_id="r")
    record = store.set_step(
        "r", Step.WAIT_FOR_NODES, StepState.RUNNING, task_id="t-1", attempt=True
    )
    step = record.steps[Step.WAIT_FOR_NODES]
    assert (step.state, step.attempts, step.task_id) == (StepState.RUNNING, 1, "t-1")
    assert step.started_at is not None and record.current_step is Step.WAIT_FOR_NODES
    record = store.set_step(
        "r", Step.WAIT_FOR_NODES, StepState.WAITING, detail={"idle": 0}, attempt=True
    )
    record = store.set_step("r", Step.WAIT_FOR_NODES, StepState.DONE, detail={"idle": 2})
    step = record.steps[Step.WAIT_FOR_NODES]
    assert step.attempts == 2 and step.detail == {"idle": 2} and step.finished_at is not None
    assert step.started_at is not None and step.finished_at >= step.started_at
    kinds = [(e.kind, e.data.get("state")) for e in store.read_events("r") if e.kind == "step"]
    assert kinds == [("step", "running"), ("step", "waiting"), ("step", "done")]


def test_decide_ending_first_decision_wins(store: RunStore) -> None:
    store.create_run(make_spec(), run_id="r")
    first = store.decide_ending("r", RunStatus.FAILED, FailureReason.QUOTA, "no cores")
    second = store.decide_ending("r", RunStatus.CANCELLED, FailureReason.CANCELLED)
    assert first.ending is not None and second.ending == first.ending
    assert second.ending.status is RunStatus.FAILED
    assert second.status is RunStatus.QUEUED  # deciding is not transitioning
    with pytest.raises(ValueError):
        store.decide_ending("r", RunStatus.RUNNING)


def test_request_cancel_and_mark_dispatched(store: RunStore) -> None:
    store.create_run(make_spec(), run_id="r")
    assert store.request_cancel("r").cancel_requested
    assert store.mark_dispatched("r").dispatched
    store.request_cancel("r")
    store.mark_dispatched("r")
    kinds = [e.kind for e in store.read_events("r")]
    assert kinds.count("cancel_requested") == 1 and kinds.count("dispatched") == 1


# ---------------------------------------------------------------------- events
def test_events_replay_after(store: RunStore) -> None:
    store.create_run(make_spec(), run_id="r")
    ids = [store.append_event("r", "log", line=f"l{n}") for n in range(5)]
    everything = store.read_events("r")
    assert [e.kind for e in everything] == ["status"] + ["log"] * 5
    assert everything[0].data["status"] == "queued"
    after_second = store.read_events("r", after=ids[1])
    assert [e.data["line"] for e in after_second] == ["l2", "l3", "l4"]
    assert [e.id for e in store.read_events("r", after=ids[1], count=2)] == ids[2:4]
    assert store.read_events("r", after=ids[-1]) == []


def test_blocking_read_returns_a_new_event(
    store: RunStore, fake_server: fakeredis.FakeServer
) -> None:
    store.create_run(make_spec(), run_id="r")
    last = store.read_events("r")[-1].id
    # A second connection, as another process would have (XREAD BLOCK holds it).
    reader = RunStore(fakeredis.FakeRedis(server=fake_server), namespace="test")
    received: list[list[str]] = []
    started = threading.Event()

    def wait_for_event() -> None:
        started.set()
        received.append([e.kind for e in reader.read_events("r", after=last, block_ms=10_000)])

    thread = threading.Thread(target=wait_for_event)
    thread.start()
    started.wait()
    store.transition("r", RunStatus.PROVISIONING)
    thread.join(timeout=15)
    assert not thread.is_alive()
    assert received == [["status"]]


def test_blocking_read_times_out_empty(store: RunStore) -> None:
    store.create_run(make_spec(), run_id="r")
    last = store.read_events("r")[-1].id
    assert store.read_events("r", after=last, block_ms=1) == []


# --------------------------------------------------------------------- queries
def test_list_filters_and_paging(store: RunStore) -> None:
    for n in range(7):
        store.create_run(
            make_spec(name="sweep" if n % 2 else "mnist", tags={"team": "a" if n < 4 else "b"}),
            run_id=f"run-{n}",
        )
    walk_to(store, "run-3", RunStatus.PROVISIONING)
    walk_to(store, "run-5", RunStatus.CANCELLED)

    everything, cursor = store.list_runs(limit=100)
    assert [r.run_id for r in everything] == [f"run-{n}" for n in reversed(range(7))]
    assert cursor is None

    pages: list[str] = []
    cursor = None
    while True:
        page, cursor = store.list_runs(limit=3, cursor=cursor)
        assert len(page) <= 3
        pages += [r.run_id for r in page]
        if cursor is None:
            break
    assert pages == [r.run_id for r in everything]

    queued, _ = store.list_runs(status=RunStatus.QUEUED)
    assert {r.run_id for r in queued} == {"run-0", "run-1", "run-2", "run-4", "run-6"}
    sweeps, _ = store.list_runs(name="sweep")
    assert [r.run_id for r in sweeps] == ["run-5", "run-3", "run-1"]
    team_b, _ = store.list_runs(tag=("team", "b"))
    assert [r.run_id for r in team_b] == ["run-6", "run-5", "run-4"]
    both, _ = store.list_runs(status=RunStatus.QUEUED, tag=("team", "a"), name="sweep")
    assert [r.run_id for r in both] == ["run-1"]
    first, cursor = store.list_runs(tag=("team", "a"), limit=2)
    rest, end = store.list_runs(tag=("team", "a"), limit=2, cursor=cursor)
    assert [r.run_id for r in first + rest] == ["run-3", "run-2", "run-1", "run-0"]
    assert end is not None  # a full page: the caller learns it is over on the next call
    assert store.list_runs(tag=("team", "a"), cursor=end) == ([], None)
    with pytest.raises(ValueError, match="cursor"):
        store.list_runs(cursor="garbage")


def test_paging_with_equal_created_at(store: RunStore, fake_redis: redis.Redis) -> None:
    for n in range(5):
        store.create_run(make_spec(), run_id=f"tie-{n}")
    # Force identical timestamps: ties must still page without loss or repeats.
    fake_redis.zadd("test:runs", {f"tie-{n}": 1000.0 for n in range(5)})
    seen: list[str] = []
    cursor = None
    while True:
        page, cursor = store.list_runs(limit=2, cursor=cursor)
        seen += [r.run_id for r in page]
        if cursor is None:
            break
    assert sorted(seen) == [f"tie-{n}" for n in range(5)] and len(seen) == 5


def test_count_by_status_and_run_ids(store: RunStore) -> None:
    for n in range(4):
        store.create_run(make_spec(), run_id=f"c{n}")
    walk_to(store, "c0", RunStatus.PROVISIONING, RunStatus.RUNNING)
    walk_to(store, "c1", RunStatus.FAILED)
    counts = store.count_by_status()
    assert counts[RunStatus.QUEUED] == 2
    assert counts[RunStatus.RUNNING] == 1
    assert counts[RunStatus.FAILED] == 1
    assert counts[RunStatus.PROVISIONING] == 0
    assert set(counts) == set(RunStatus)
    assert sorted(store.run_ids()) == ["c0", "c1", "c2", "c3"]


def test_namespaces_are_separate(store: RunStore, fake_redis: redis.Redis) -> None:
    other = RunStore(fake_redis, namespace="other")
    store.create_run(make_spec(), run_id="same")
    with pytest.raises(RunNotFound):
        other.get("same")
    assert list(other.run_ids()) == []


def test_works_with_decoded_responses(fake_server: fakeredis.FakeServer) -> None:
    client = fakeredis.FakeRedis(server=fake_server, decode_responses=True)
    decoded = RunStore(client)
    decoded.create_run(make_spec(), run_id="d")
    decoded.transition("d", RunStatus.PROVISIONING)
    assert [e.kind for e in decoded.read_events("d")] == ["status", "status"]
    assert decoded.list_runs()[0][0].run_id == "d"
    client.close()


# ---------------------------------------------------------------------- helpers
def run_in_threads(count: int, target: Callable[..., object], *, indexed: bool = False) -> list:  # type: ignore[type-arg]
    """Start `count` threads together (behind a barrier); return their results."""
    barrier = threading.Barrier(count)
    results: list[object] = [None] * count
    errors: list[BaseException] = []

    def body(i: int) -> None:
        barrier.wait()
        try:
            results[i] = target(i) if indexed else target()
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=body, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    if errors:
        raise errors[0]
    return results


@pytest.fixture(autouse=True)
def _no_leaked_threads() -> Iterator[None]:
    before = threading.active_count()
    yield
    assert threading.active_count() <= before


# ------------------------------------------------------------------- audit
def test_submitted_by_is_recorded_and_filtered_on(store: RunStore) -> None:
    store.create_run(make_spec(), run_id="a1", submitted_by="svc-a")
    store.create_run(make_spec(), run_id="b1", submitted_by="svc-b")
    store.create_run(make_spec(), run_id="a2", submitted_by="svc-a")
    store.create_run(make_spec(), run_id="old")  # before keys existed
    assert store.get("a1").submitted_by == "svc-a"
    assert store.get("old").submitted_by is None
    page, _ = store.list_runs(submitted_by="svc-a")
    assert sorted(r.run_id for r in page) == ["a1", "a2"]
    page, _ = store.list_runs(submitted_by="svc-a", name="other")
    assert page == []
    page, _ = store.list_runs(submitted_by="nobody")
    assert page == []


def test_a_cancel_event_names_who_asked(store: RunStore) -> None:
    store.create_run(make_spec(), run_id="r")
    store.request_cancel("r", by="ops")
    events = [e for e in store.read_events("r") if e.kind == "cancel_requested"]
    assert [e.data for e in events] == [{"by": "ops"}]
