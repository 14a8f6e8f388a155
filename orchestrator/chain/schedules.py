"""Firing schedules from every worker's chain clock: exactly one run per tick.

Each clock tick, `fire_due_schedules` reads the schedules whose next tick has
come (store/schedules.py) and, for each, tries to claim that tick (SET NX PX,
`CLAIM_SECONDS`). The claimer decides the tick's outcome, enqueues its run
under the idempotency key `schedule:<name>:<tick ISO>`, records the tick in
the history (first record wins) and moves the schedule to its next tick with
a compare-and-set. Whatever happens between those writes:

- two workers: only one holds the claim; the other does nothing;
- a claimer killed mid-tick: its claim expires, the next claimer redoes the
  tick; the idempotency key returns the run already created, if any;
- downtime: only the newest tick that is due can fire, and only within
  starting_deadline; every older one is recorded `missed` (never a burst).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import redis

from orchestrator.chain.cancel import RunAlreadyEnded, cancel_run
from orchestrator.chain.enqueue import enqueue_run
from orchestrator.domain.schedule import ConcurrencyPolicy, ScheduleSpec, TickOutcome, iso
from orchestrator.domain.spec import RunSpec
from orchestrator.domain.sweep import SweepSpec
from orchestrator.observability.logs import get_logger
from orchestrator.settings import Settings
from orchestrator.store import IdempotencyConflict, RunNotFound, RunStore
from orchestrator.store.connection import RedisTarget
from orchestrator.store.schedules import ScheduleBook, ScheduleNotFound, ScheduleState, TickEntry
from orchestrator.store.sweeps import SweepNotFound

# How long a claimer owns a tick. A claimer that died mid-tick delays the tick
# by at most this, so it must stay under the shortest period (1 s) or a kill
# turns the ticks in between into `missed`. A claimer merely slower than this is
# harmless: the idempotency key, the first history record and the
# compare-and-set on the next tick make a second claimer's work a no-op.
CLAIM_SECONDS = 0.9
# Fire times `schedule show` and GET /v1/schedules/{name} list ahead.
NEXT_FIRE_TIMES = 5
# Buckets of the tick -> enqueue latency histogram (seconds).
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

# (spec, store, idempotency key) -> the id of the run (or sweep) started; the
# worker's is enqueue_run on its broker (submit_sweep for a sweep target).
Enqueue = Callable[[RunSpec, RunStore, str], str]
EnqueueSweep = Callable[[SweepSpec, RunStore, str], str]


class SchedulerContext(Protocol):
    """What firing a tick needs: settings, the store and a clock -- no gateway,
    a tick only enqueues a run. A worker's StepContext is one; the API and the
    CLI build a ScheduleContext."""

    @property
    def settings(self) -> Settings: ...
    @property
    def store(self) -> RunStore: ...
    @property
    def clock(self) -> Callable[[], float]: ...


@dataclass(frozen=True)
class ScheduleContext:
    settings: Settings
    store: RunStore
    clock: Callable[[], float] = time.time


def idempotency_key(name: str, tick_iso: str) -> str:
    return f"schedule:{name}:{tick_iso}"


def submitter(spec: RunSpec) -> str | None:
    """`schedule:<name>` for a run a schedule fired (run_spec_for tags it so)."""
    name = spec.tags.get("schedule")
    return f"schedule:{name}" if name else None


def broker_enqueue(broker_url: RedisTarget | str, input_roots: Sequence[Path] = ()) -> Enqueue:
    def enqueue(spec: RunSpec, store: RunStore, key: str) -> str:
        try:
            record, _ = enqueue_run(
                spec,
                store=store,
                broker_url=broker_url,
                idempotency_key=key,
                input_roots=input_roots,
                submitted_by=submitter(spec),
            )
        except IdempotencyConflict:
            # The schedule was edited between a dead claimer's enqueue and this
            # retry: the tick already has its run, with the spec of that moment.
            existing = ScheduleBook(store.redis, store.keys).run_for_key(key)
            if existing is None:
                raise
            return existing
        return record.run_id

    return enqueue


def sweep_submitter(input_roots: Sequence[Path] = ()) -> EnqueueSweep:
    def enqueue(spec: SweepSpec, store: RunStore, key: str) -> str:
        # Imported here: chain.sweeps imports the steps, which a producer of
        # runs (the API firing a manual tick) never needs otherwise.
        from orchestrator.chain.sweeps import submit_sweep

        record, _ = submit_sweep(
            spec,
            store=store,
            input_roots=input_roots,
            idempotency_key=key,
            submitted_by=submitter(spec.trial),
        )
        return record.sweep_id

    return enqueue


def _started_for_key(store: RunStore, spec: ScheduleSpec, key: str) -> str | None:
    """The run (or sweep) a tick's idempotency key already started, if any."""
    if spec.sweep is not None:
        return store.sweeps.id_for_key(key)
    return ScheduleBook(store.redis, store.keys).run_for_key(key)


@dataclass(frozen=True)
class FiredTick:
    schedule: str
    entry: TickEntry


def fire_due_schedules(
    ctx: SchedulerContext,
    now: float,
    *,
    worker: str = "",
    enqueue: Enqueue | None = None,
    enqueue_sweep: EnqueueSweep | None = None,
) -> list[FiredTick]:
    """Process every schedule whose next tick is due at `now`; returns what was recorded."""
    book = ScheduleBook(ctx.store.redis, ctx.store.keys)
    enqueue = enqueue or broker_enqueue(ctx.settings.redis_target, ctx.settings.input_roots)
    fired: list[FiredTick] = []
    for name in book.due_names(now):
        try:
            state = book.get(name)
        except ScheduleNotFound:
            continue  # deleted since the index was read
        if state.spec.suspend or state.next_tick is None or state.next_tick > now:
            continue
        if not book.claim_tick(name, state.next_tick, worker, CLAIM_SECONDS):
            continue
        fired += _process(ctx, book, state, now, enqueue, enqueue_sweep)
    return fired


def _process(
    ctx: SchedulerContext,
    book: ScheduleBook,
    state: ScheduleState,
    now: float,
    enqueue: Enqueue,
    enqueue_sweep: EnqueueSweep | None = None,
) -> list[FiredTick]:
    spec = state.spec
    assert state.next_tick is not None
    ticks = spec.trigger.ticks_between(state.next_tick, now)
    fired: list[FiredTick] = []
    # Keep only what the history can hold: older ticks would be trimmed anyway.
    older, latest = ticks[-spec.history_limit - 1 : -1], ticks[-1] if ticks else None
    for tick in older:
        fired.append(_record(ctx, book, spec, tick, _missed_or_ran(ctx, spec, tick)))
    if latest is not None:
        if now - latest > spec.starting_deadline_seconds:
            entry = _missed_or_ran(ctx, spec, latest)
        else:
            entry = fire_tick(
                ctx, book, state, latest, enqueue, now=now, enqueue_sweep=enqueue_sweep
            )
        fired.append(_record(ctx, book, spec, latest, entry))
    after = max(now, latest) if latest is not None else now
    book.advance(spec.name, state.next_tick, spec.trigger.next_after(after))
    return fired


def _missed_or_ran(ctx: SchedulerContext, spec: ScheduleSpec, tick: float) -> TickEntry:
    # A claimer that died after enqueueing left the run: the tick did run.
    tick_iso = iso(tick)
    started = _started_for_key(ctx.store, spec, idempotency_key(spec.name, tick_iso))
    if started is not None:
        return _ran(spec, tick_iso, TickOutcome.RAN, started)
    return TickEntry(tick_iso, TickOutcome.MISSED, recorded_at=time.time())


def _ran(
    spec: ScheduleSpec,
    tick_iso: str,
    outcome: TickOutcome,
    started: str,
    previous: str | None = None,
    manual: bool = False,
) -> TickEntry:
    is_sweep = spec.sweep is not None
    return TickEntry(
        tick_iso,
        outcome,
        None if is_sweep else started,
        recorded_at=time.time(),
        previous_run_id=previous,
        manual=manual,
        sweep_id=started if is_sweep else None,
    )


def _active(store: RunStore, spec: ScheduleSpec, started: str | None) -> bool:
    """Whether the run (or sweep) a previous tick started is still going."""
    if started is None:
        return False
    try:
        if spec.sweep is not None:
            return not store.sweeps.get(started).terminal
        return not store.get(started).terminal
    except (RunNotFound, SweepNotFound):
        return False


def fire_tick(
    ctx: SchedulerContext,
    book: ScheduleBook,
    state: ScheduleState,
    tick: float,
    enqueue: Enqueue,
    *,
    now: float,
    key: str | None = None,
    manual: bool = False,
    enqueue_sweep: EnqueueSweep | None = None,
) -> TickEntry:
    """Apply the concurrency policy to the tick and enqueue its run (idempotently)."""
    spec = state.spec
    tick_iso = iso(tick)
    key = key or idempotency_key(spec.name, tick_iso)
    existing = _started_for_key(ctx.store, spec, key)
    previous = state.last_run_id
    outcome = TickOutcome.RAN
    if existing is None and not manual and _active(ctx.store, spec, previous):
        assert previous is not None
        if spec.concurrency_policy is ConcurrencyPolicy.FORBID:
            return TickEntry(
                tick_iso, TickOutcome.SKIPPED, recorded_at=time.time(), previous_run_id=previous
            )
        if spec.concurrency_policy is ConcurrencyPolicy.REPLACE:
            _cancel_previous(ctx, spec, previous)
            outcome = TickOutcome.REPLACED
    if spec.sweep is not None:
        submit = enqueue_sweep or sweep_submitter(ctx.settings.input_roots)
        started = submit(spec.sweep_spec_for(tick), ctx.store, key)
    else:
        started = enqueue(spec.run_spec_for(tick), ctx.store, key)
    book.set_last_run(spec.name, tick, started)
    _observe_latency(ctx.store.redis, book, time.time() - tick if not manual else None)
    previous_started = previous if outcome is TickOutcome.REPLACED else None
    return _ran(spec, tick_iso, outcome, started, previous_started, manual)


def _cancel_previous(ctx: SchedulerContext, spec: ScheduleSpec, previous: str) -> None:
    """replace: cancel what the previous tick started (its chain, or its sweep,
    cleans up before it ends)."""
    if spec.sweep is not None:
        from orchestrator.chain.sweeps import cancel_sweep

        with contextlib.suppress(SweepNotFound):
            cancel_sweep(ctx.store, previous)
        return
    with contextlib.suppress(RunAlreadyEnded, RunNotFound):
        cancel_run(
            ctx.store, previous, by=f"schedule:{spec.name}", broker_url=ctx.settings.redis_url
        )


def _record(
    ctx: SchedulerContext, book: ScheduleBook, spec: ScheduleSpec, tick: float, entry: TickEntry
) -> FiredTick:
    if book.record(spec.name, tick, entry, spec.history_limit):
        # Counted once per tick: a second claimer's record is refused.
        with contextlib.suppress(redis.RedisError):
            ctx.store.redis.hincrby(book.keys.schedule_tick_stats, entry.outcome.value, 1)
        get_logger(component="schedules", schedule=spec.name).info(
            "schedule_tick", tick=entry.tick, outcome=entry.outcome.value, run_id=entry.run_id
        )
    return FiredTick(spec.name, entry)


def _observe_latency(client: redis.Redis, book: ScheduleBook, seconds: float | None) -> None:
    if seconds is None:
        return
    bucket = next((str(b) for b in LATENCY_BUCKETS if seconds <= b), "+Inf")
    key = book.keys.schedule_latency_stats
    # Metrics must never fail a tick.
    with contextlib.suppress(redis.RedisError):
        pipe = client.pipeline(transaction=False)
        pipe.hincrby(key, bucket, 1)
        pipe.hincrbyfloat(key, "sum", max(0.0, seconds))
        pipe.hincrby(key, "count", 1)
        pipe.execute()


def trigger_now(
    ctx: SchedulerContext,
    name: str,
    *,
    request_key: str | None,
    enqueue: Enqueue | None = None,
    enqueue_sweep: EnqueueSweep | None = None,
) -> TickEntry:
    """A manual tick at the current time; the same `request_key` returns the same run.

    Manual ticks do not move the schedule and ignore its concurrency policy:
    someone asked for this run explicitly.
    """
    book = ScheduleBook(ctx.store.redis, ctx.store.keys)
    state = book.get(name)
    now = ctx.clock()
    key = f"schedule:{name}:manual:{request_key}" if request_key else None
    if key is not None:
        existing = _started_for_key(ctx.store, state.spec, key)
        if existing is not None:
            for entry in book.history(name):
                if existing in (entry.run_id, entry.sweep_id):
                    return entry
            return _ran(state.spec, iso(now), TickOutcome.RAN, existing, manual=True)
    # Millisecond tick: two manual triggers in one second are two ticks.
    tick = round(now, 3)
    entry = fire_tick(
        ctx,
        book,
        state,
        tick,
        enqueue or broker_enqueue(ctx.settings.redis_target, ctx.settings.input_roots),
        now=now,
        key=key or idempotency_key(name, iso(tick) + "-manual"),
        manual=True,
        enqueue_sweep=enqueue_sweep,
    )
    book.record(name, tick, entry, state.spec.history_limit)
    return entry


def schedule_view(book: ScheduleBook, state: ScheduleState) -> dict[str, Any]:
    """The JSON the API and `schedule show --json` give: definition, the next
    fire times in the schedule's zone, and the tick history."""
    spec = state.spec
    upcoming = [] if spec.suspend else spec.trigger.upcoming(time.time(), NEXT_FIRE_TIMES)
    return {
        "name": spec.name,
        "definition": spec.model_dump(mode="json"),
        "suspended": spec.suspend,
        "next_fire_times": [moment.isoformat() for moment in upcoming],
        "last_run_id": state.last_run_id,
        "submitted_by": state.submitted_by,
        "updated_by": state.updated_by,
        "history": [entry.to_json() for entry in book.history(spec.name)],
    }
