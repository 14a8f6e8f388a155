"""Schedule firing rules on fakeredis with a fake clock and a fake enqueue."""

from __future__ import annotations

import pytest
import redis

from orchestrator.chain.schedules import fire_due_schedules, trigger_now
from orchestrator.chain.steps import StepContext
from orchestrator.domain.schedule import TickOutcome, parse_schedule
from orchestrator.domain.spec import RunSpec
from orchestrator.domain.status import RunStatus
from orchestrator.settings import Settings
from orchestrator.store import RunStore
from orchestrator.store.schedules import (
    EvictingRedis,
    ScheduleBook,
    ScheduleExists,
    require_no_eviction,
)
from tests.support.chain_fakes import FakeGateway

T0 = 2_000_000_000.0  # a multiple of 10: every-10s ticks fall on T0, T0+10, ...
RUN = {"name": "mnist", "job": {"toolkit": "custom", "command": "echo hi"}}


class Enqueue:
    """Creates the run (idempotently, like enqueue_run) without a broker."""

    def __init__(self) -> None:
        self.created: list[str] = []

    def __call__(self, spec: RunSpec, store: RunStore, key: str) -> str:
        record, created = store.create_run(spec, idempotency_key=key)
        if created:
            self.created.append(record.run_id)
        return record.run_id


@pytest.fixture
def ctx(fake_redis: redis.Redis) -> StepContext:
    return StepContext(Settings(), RunStore(fake_redis), FakeGateway(), lambda: T0)


def add(ctx: StepContext, now: float = T0 - 1, **fields: object) -> ScheduleBook:
    book = ScheduleBook(ctx.store.redis, ctx.store.keys)
    data: dict[str, object] = {"name": "s", "trigger": {"every": "10s"}, "run": RUN}
    data.update(fields)
    book.put(parse_schedule(data), mode="create", now=now)
    return book


def outcomes(book: ScheduleBook) -> list[tuple[str, str]]:
    return [(e.tick[-9:-1], e.outcome.value) for e in reversed(book.history("s"))]


def test_each_tick_fires_once_whoever_and_however_often_looks(ctx: StepContext) -> None:
    book = add(ctx, concurrency_policy="allow")
    enqueue = Enqueue()
    for now in (T0, T0 + 0.25, T0 + 0.5, T0 + 10, T0 + 10.1, T0 + 20):
        for worker in ("w1", "w2"):
            fire_due_schedules(ctx, now, worker=worker, enqueue=enqueue)
    assert len(enqueue.created) == 3
    assert [o for _, o in outcomes(book)] == ["ran"] * 3
    run = ctx.store.get(enqueue.created[0])
    assert run.spec.tags == {"schedule": "s", "trigger_time": "2033-05-18T03:33:20Z"}


def test_a_claimer_that_died_mid_tick_leaves_the_tick_to_the_next_one(ctx: StepContext) -> None:
    book = add(ctx, concurrency_policy="allow")
    enqueue = Enqueue()
    # The dead worker claimed T0 and enqueued its run, but never recorded or advanced it.
    assert book.claim_tick("s", T0, "dead", 10)
    enqueue(book.get("s").spec.run_spec_for(T0), ctx.store, f"schedule:s:{_iso(T0)}")
    assert fire_due_schedules(ctx, T0 + 5, enqueue=enqueue) == []  # claim still held
    # Its claim expires (in Redis time; the fake clock does not move Redis').
    ctx.store.redis.delete(ctx.store.keys.schedule_tick_claim("s", _iso(T0)))
    fired = fire_due_schedules(ctx, T0 + 10.5, enqueue=enqueue)
    assert [(f.entry.outcome, f.entry.tick) for f in fired] == [
        (TickOutcome.RAN, _iso(T0)),  # found by its idempotency key, not run again
        (TickOutcome.RAN, _iso(T0 + 10)),
    ]
    assert len(enqueue.created) == 2


def test_downtime_fires_only_the_latest_tick_within_the_deadline(ctx: StepContext) -> None:
    book = add(ctx, concurrency_policy="allow", starting_deadline="5s")
    enqueue = Enqueue()
    fire_due_schedules(ctx, T0 + 42, enqueue=enqueue)  # down 42 s: T0..T0+40 due
    assert [o for _, o in outcomes(book)] == ["missed"] * 4 + ["ran"]
    assert len(enqueue.created) == 1
    assert book.get("s").next_tick == T0 + 50


def test_downtime_past_the_deadline_records_every_tick_missed(ctx: StepContext) -> None:
    book = add(ctx, concurrency_policy="allow", starting_deadline="5s", history_limit=3)
    enqueue = Enqueue()
    fire_due_schedules(ctx, T0 + 48, enqueue=enqueue)
    assert enqueue.created == []
    assert [o for _, o in outcomes(book)] == ["missed"] * 3  # history_limit kept
    assert book.get("s").next_tick == T0 + 50


def test_forbid_skips_while_the_last_run_is_active(ctx: StepContext) -> None:
    book = add(ctx, concurrency_policy="forbid")
    enqueue = Enqueue()
    fire_due_schedules(ctx, T0, enqueue=enqueue)
    fire_due_schedules(ctx, T0 + 10, enqueue=enqueue)
    assert [o for _, o in outcomes(book)] == ["ran", "skipped"]
    assert book.history("s")[0].previous_run_id == enqueue.created[0]


def test_replace_cancels_the_last_run_then_starts(ctx: StepContext) -> None:
    book = add(ctx, concurrency_policy="replace")
    enqueue = Enqueue()
    fire_due_schedules(ctx, T0, enqueue=enqueue)
    fire_due_schedules(ctx, T0 + 10, enqueue=enqueue)
    assert [o for _, o in outcomes(book)] == ["ran", "replaced"]
    assert ctx.store.get(enqueue.created[0]).status is RunStatus.CANCELLED
    assert len(enqueue.created) == 2


def test_paused_schedules_do_not_fire_and_resume_from_now(ctx: StepContext) -> None:
    book = add(ctx, concurrency_policy="allow")
    enqueue = Enqueue()
    book.set_suspended("s", True, now=T0 - 1)
    fire_due_schedules(ctx, T0 + 30, enqueue=enqueue)
    assert enqueue.created == []
    book.set_suspended("s", False, now=T0 + 31)
    assert book.get("s").next_tick == T0 + 40


def test_an_edit_keeping_the_trigger_keeps_a_due_tick(ctx: StepContext) -> None:
    book = add(ctx, concurrency_policy="allow")
    spec = parse_schedule(
        {"name": "s", "trigger": {"every": "10s"}, "run": RUN, "parameters": {"a": 1}}
    )
    book.put(spec, mode="replace", now=T0 + 1)  # T0 fell due a second ago
    assert book.get("s").next_tick == T0
    with pytest.raises(ScheduleExists):
        book.put(spec, mode="create")


def test_a_manual_trigger_is_idempotent_per_request_key(ctx: StepContext) -> None:
    add(ctx)
    enqueue = Enqueue()
    first = trigger_now(ctx, "s", request_key="k1", enqueue=enqueue)
    again = trigger_now(ctx, "s", request_key="k1", enqueue=enqueue)
    assert first.run_id == again.run_id and len(enqueue.created) == 1


def test_an_evicting_redis_is_refused(fake_redis: redis.Redis) -> None:
    class Evicting:
        def info(self, section: str) -> dict[str, str]:
            return {"maxmemory_policy": "allkeys-lru"}

    with pytest.raises(EvictingRedis, match="maxmemory-policy is allkeys-lru"):
        require_no_eviction(Evicting())  # type: ignore[arg-type]


def _iso(tick: float) -> str:
    from orchestrator.domain.schedule import iso

    return iso(tick)


SWEEP = {
    "name": "nightly-lr",
    "trial": RUN,
    "search_space": {"lr": {"type": "choice", "values": [0.1, 0.2]}},
    "sampling_algorithm": "grid",
    "objective": {"primary_metric": "loss", "goal": "minimize"},
    "limits": {"max_total_trials": 2, "max_concurrent_trials": 2},
}


def test_a_sweep_target_starts_one_sweep_per_tick_with_the_trigger_in_its_trials(
    ctx: StepContext,
) -> None:
    book = add(
        ctx,
        run=None,
        sweep=SWEEP,
        concurrency_policy="allow",
        parameters={"data_date": "{trigger_date}"},
    )
    for now in (T0, T0 + 0.5, T0 + 10):
        for worker in ("w1", "w2"):
            fire_due_schedules(ctx, now, worker=worker)
    entries = list(reversed(book.history("s")))
    assert [e.outcome for e in entries] == [TickOutcome.RAN, TickOutcome.RAN]
    assert all(e.run_id is None and e.sweep_id for e in entries)
    sweeps = {r.sweep_id: r for r in ctx.store.sweeps.all()}
    assert set(sweeps) == {e.sweep_id for e in entries}, "one sweep per tick, none twice"
    first = sweeps[entries[0].sweep_id or ""]
    assert first.spec.trial.parameters["data_date"] == "2033-05-18"
    assert first.spec.trial.tags == {"schedule": "s", "trigger_time": "2033-05-18T03:33:20Z"}
    assert first.submitted_by == "schedule:s"


def test_forbid_and_replace_apply_to_the_previous_sweep(ctx: StepContext) -> None:
    book = add(ctx, run=None, sweep=SWEEP, concurrency_policy="forbid")
    fire_due_schedules(ctx, T0)
    fire_due_schedules(ctx, T0 + 10)
    assert [o for _, o in outcomes(book)] == ["ran", "skipped"]
    ScheduleBook(ctx.store.redis, ctx.store.keys).delete("s")

    book = add(ctx, now=T0 + 19, run=None, sweep=SWEEP, concurrency_policy="replace")
    fire_due_schedules(ctx, T0 + 20)
    fire_due_schedules(ctx, T0 + 30)
    first, second = reversed(book.history("s"))
    assert second.outcome is TickOutcome.REPLACED
    assert second.previous_run_id == first.sweep_id
    assert ctx.store.sweeps.get(first.sweep_id or "").cancel_requested


@pytest.mark.parametrize(
    "fields", [{"run": RUN, "sweep": SWEEP}, {"run": None}], ids=["both", "neither"]
)
def test_a_schedule_names_exactly_one_target(ctx: StepContext, fields: dict[str, object]) -> None:
    from orchestrator.domain.schedule import ScheduleError

    with pytest.raises(ScheduleError, match=r"^run: give exactly one of run .* or sweep"):
        parse_schedule({"name": "s", "trigger": {"every": "10s"}, **fields})
