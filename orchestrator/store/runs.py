# Over 400 lines (about 430): every write of a run goes through _compare_and_set,
# and the rules of those writes (transitions, steps, endings) read best beside it.
# The read side is in listing.py.
"""The run store: one record per run in Redis, changed only by compare-and-set.

The keys are built in store/keys.py; the Lua scripts are in store/lua/.

A run's status is read in one atomic command (HGET data), as arq derives a job's
status. Every write is a Lua script that checks the version read before the
change, writes the record, moves the run between status indexes and appends the
events describing the change -- all or nothing. A lost race re-reads and
re-applies the change (optimistic concurrency), so concurrent workers, the API
and the reaper never overwrite each other's updates.

Status changes are only legal along status.TRANSITIONS (the SkyPilot way:
transitions are data, enforced here); steps, resources, outputs and metrics go
through update(), which may not touch the status.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any, cast

import redis

from orchestrator.domain.ids import new_run_id, validate_run_id
from orchestrator.domain.notify import NotifySpec
from orchestrator.domain.spec import RunSpec
from orchestrator.domain.status import (
    STEP_ORDER,
    TERMINAL,
    FailureReason,
    RunStatus,
    Step,
    StepState,
    can_transition,
)
from orchestrator.observability.logs import redact_text
from orchestrator.store.connection import RedisTarget, redis_client
from orchestrator.store.due import DueIndex
from orchestrator.store.errors import (
    IdempotencyConflict,
    IllegalTransition,
    RunNotFound,
    StoreContention,
)
from orchestrator.store.keys import DEFAULT_NAMESPACE, Keys
from orchestrator.store.listing import RunListing, text
from orchestrator.store.lua import load_script
from orchestrator.store.records import Ending, RunEvent, RunRecord, StepRecord
from orchestrator.store.retention import RunRetention
from orchestrator.store.runtimes import JobRuntimes
from orchestrator.store.sweeps import SweepBook
from orchestrator.store.uploads import UploadBook

# Attempts of one compare-and-set before giving up; a lost race costs one
# re-read, so reaching this means something rewrites the run in a loop.
CAS_ATTEMPTS = 100

_FINISHED_STEP_STATES = frozenset({StepState.DONE, StepState.FAILED, StepState.SKIPPED})
_ACTIVE_STEP_STATES = frozenset({StepState.RUNNING, StepState.WAITING})


def _dump(data: dict[str, Any]) -> str:
    return json.dumps(data, default=str, separators=(",", ":"))


def _clean_error(error: str | None) -> str | None:
    # Errors often quote Azure responses; scrub secrets before they are stored.
    return None if error is None else redact_text(error)


_Event = tuple[str, dict[str, Any]]


def _change_events(before: RunRecord, after: RunRecord) -> list[_Event]:
    """The "status" and "step" events describing the difference of two records."""
    events: list[_Event] = []
    if before.status != after.status:
        events.append(
            (
                "status",
                {
                    "status": after.status.value,
                    "previous": before.status.value,
                    "reason": after.reason.value if after.reason else None,
                    "error": after.error,
                },
            )
        )
    for step in STEP_ORDER:
        old, new = before.step(step), after.step(step)
        if (old.state, old.attempts, old.error) != (new.state, new.attempts, new.error):
            events.append(
                (
                    "step",
                    {
                        "step": step.value,
                        "state": new.state.value,
                        "attempts": new.attempts,
                        "error": new.error,
                    },
                )
            )
    return events


class RunStore(RunListing, RunRetention):
    """Writes (all through _compare_and_set) and events; the read-side queries
    are RunListing's (store/listing.py), the deletion of expired runs
    RunRetention's (store/retention.py)."""

    def __init__(self, redis: redis.Redis, namespace: str = DEFAULT_NAMESPACE) -> None:
        self.redis = redis
        self.namespace = namespace
        self.keys = Keys(namespace)
        self.due = DueIndex(redis, self.keys)
        self.uploads = UploadBook(redis, self.keys)
        self.sweeps = SweepBook(redis, self.keys)
        self.runtimes = JobRuntimes(redis, self.keys)
        self._create = self.redis.register_script(load_script("create_run"))
        self._cas = self.redis.register_script(load_script("compare_and_set"))
        self._append = self.redis.register_script(load_script("append_event"))

    @classmethod
    def from_url(cls, redis_url: RedisTarget | str, namespace: str = DEFAULT_NAMESPACE) -> RunStore:
        """A store on its own client of `redis_url` (a URL or Settings.redis_target)."""
        return cls(redis_client(redis_url), namespace=namespace)

    # --------------------------------------------------------------- create/read
    def create_run(
        self,
        spec: RunSpec,
        *,
        run_id: str | None = None,
        idempotency_key: str | None = None,
        submitted_by: str | None = None,
        notify: NotifySpec | None = None,
        sweep_id: str | None = None,
        dispatch: Callable[[str], tuple[str, str]] | None = None,
    ) -> tuple[RunRecord, bool]:
        """Create a queued run atomically; (record, created).

        The same idempotency key (or run id) with the same spec returns the
        existing run and created=False; with a different spec it raises
        IdempotencyConflict.

        `dispatch(run_id)` gives (the broker's queue key, the first task's
        message): the script pushes that message when it creates the run, which
        is then recorded dispatched: one round trip, and no run created but not
        sent. Nothing is pushed when the run already existed.
        """
        run_id_given = run_id is not None
        run_id = validate_run_id(run_id) if run_id is not None else new_run_id()
        fingerprint = spec.fingerprint()
        first_task = dispatch(run_id) if dispatch is not None else None
        now = time.time()
        record = RunRecord(
            run_id=run_id,
            spec=spec,
            steps={step: StepRecord() for step in STEP_ORDER},
            idempotency_key=idempotency_key,
            submitted_by=submitted_by,
            notify=notify,
            sweep_id=sweep_id,
            spec_fingerprint=fingerprint,
            created_at=now,
            updated_at=now,
            dispatched=first_task is not None,
        )
        keys = [
            self.keys.run(run_id),
            # Unused placeholder when there is no key (the script checks ARGV[5]).
            self.keys.idempotency(idempotency_key) if idempotency_key is not None else "-",
            self.keys.events(run_id),
            first_task[0] if first_task is not None else "-",  # unused unless ARGV[9]
            self.keys.status_index(RunStatus.QUEUED),
            *self.keys.run_indexes(spec.name, spec.tags, submitted_by),
        ]
        event = {"status": RunStatus.QUEUED.value, "previous": None, "reason": None, "error": None}
        result = cast(
            list[Any],
            self._create(
                keys=keys,
                args=[
                    run_id,
                    record.model_dump_json(),
                    fingerprint,
                    repr(now),
                    "1" if idempotency_key is not None else "0",
                    "status",
                    repr(now),
                    _dump(event),
                    first_task[1] if first_task is not None else "",
                ],
            ),
        )
        outcome = text(result[0])
        if outcome == "created":
            return record, True
        if outcome == "conflict":
            raise IdempotencyConflict(
                f"run {run_id!r} already exists with a different spec", field="run_id"
            )
        if outcome == "idem":
            existing = self.get(text(result[1]))
            if existing.spec_fingerprint != fingerprint:
                raise IdempotencyConflict(
                    "idempotency key already used for a run with a different spec "
                    f"(run {existing.run_id!r})",
                    field="Idempotency-Key",
                )
            if run_id_given and run_id != existing.run_id:
                raise IdempotencyConflict(
                    f"idempotency key already used for run {existing.run_id!r}, not {run_id!r}",
                    field="Idempotency-Key",
                )
            return existing, False
        return self.get(run_id), False

    def get(self, run_id: str) -> RunRecord:
        """The run's record, read in one atomic command; RunNotFound if absent."""
        data = self.redis.hget(self.keys.run(run_id), "data")
        if data is None:
            raise RunNotFound(run_id)
        return RunRecord.model_validate_json(data)

    def exists(self, run_id: str) -> bool:
        return bool(self.redis.exists(self.keys.run(run_id)))

    # ------------------------------------------------------------------ writes
    def _compare_and_set(
        self, run_id: str, change: Callable[[RunRecord], list[_Event] | None]
    ) -> RunRecord:
        """Read, change a copy, write it back if nobody wrote in between; retry otherwise.

        `change` mutates the record in place and returns extra events (beyond
        the status/step events derived from the difference), or None.
        Nothing is written when the change leaves the record as it was.
        """
        key = self.keys.run(run_id)
        for _ in range(CAS_ATTEMPTS):
            data, version = self.redis.hmget(key, ["data", "version"])
            if data is None or version is None:
                raise RunNotFound(run_id)
            before = RunRecord.model_validate_json(data)
            after = before.model_copy(deep=True)
            extra = change(after) or []
            if after == before and not extra:
                return before
            after.updated_at = time.time()
            events = [*_change_events(before, after), *extra]
            args: list[Any] = [
                text(version),
                after.model_dump_json(),
                run_id,
                repr(after.created_at),
            ]
            for kind, payload in events:
                args += [kind, repr(after.updated_at), _dump(payload)]
            written = self._cas(
                keys=[
                    key,
                    self.keys.events(run_id),
                    self.keys.status_index(before.status),
                    self.keys.status_index(after.status),
                ],
                args=args,
            )
            if written == 1:
                return after
            if written == -1:
                raise RunNotFound(run_id)
        raise StoreContention(f"run {run_id!r}: {CAS_ATTEMPTS} concurrent writes in a row")

    def update(self, run_id: str, mutate: Callable[[RunRecord], None]) -> RunRecord:
        """Apply `mutate` to the run atomically (retried on a lost race).

        `mutate` may be called more than once, on a fresh copy each time, so it
        must be a pure function of the record. It may not change the status
        (only transition() does) nor the run's identity.
        """

        def change(record: RunRecord) -> None:
            frozen = (record.run_id, record.status, record.spec_fingerprint, record.created_at)
            mutate(record)
            if (record.run_id, record.status, record.spec_fingerprint, record.created_at) != (
                frozen
            ):
                raise ValueError("update() may not change status or identity; use transition()")

        return self._compare_and_set(run_id, change)

    def transition(
        self,
        run_id: str,
        target: RunStatus,
        *,
        reason: FailureReason | None = None,
        error: str | None = None,
        expected: RunStatus | None = None,
    ) -> RunRecord:
        """Move the run to `target` if TRANSITIONS allows it from its current status.

        The same status again is a no-op; anything else illegal raises
        IllegalTransition, and so does a current status other than `expected`
        when one is given (compare-and-set on the status itself). Terminal
        statuses set finished_at.
        """

        def change(record: RunRecord) -> None:
            if record.status == target:
                return
            if expected is not None and record.status != expected:
                raise IllegalTransition(run_id, record.status, target)
            if not can_transition(record.status, target):
                raise IllegalTransition(run_id, record.status, target)
            record.status = target
            cancelled = target is RunStatus.CANCELLED
            record.reason = FailureReason.CANCELLED if reason is None and cancelled else reason
            record.error = _clean_error(error)
            if target in TERMINAL:
                record.finished_at = time.time()
                record.current_step = None

        return self._compare_and_set(run_id, change)

    def set_step(
        self,
        run_id: str,
        step: Step,
        state: StepState,
        *,
        task_id: str | None = None,
        error: str | None = None,
        detail: dict[str, Any] | None = None,
        attempt: bool = False,
    ) -> RunRecord:
        """Record a step's state; `detail` is merged, `attempt` counts one more attempt."""

        def change(record: RunRecord) -> None:
            now = time.time()
            current = record.step(step).model_copy(deep=True)
            current.state = state
            if attempt:
                current.attempts += 1
            if task_id is not None:
                current.task_id = task_id
            if error is not None:
                current.error = _clean_error(error)
            elif state is StepState.DONE:
                current.error = None
            if detail:
                current.detail.update(detail)
            if state in _ACTIVE_STEP_STATES:
                current.started_at = current.started_at or now
                current.finished_at = None
                if not record.terminal:
                    record.current_step = step
            elif state in _FINISHED_STEP_STATES and current.finished_at is None:
                current.finished_at = now
            record.steps[step] = current

        return self._compare_and_set(run_id, change)

    def decide_ending(
        self,
        run_id: str,
        status: RunStatus,
        reason: FailureReason | None = None,
        error: str | None = None,
    ) -> RunRecord:
        """Record the run's terminal outcome before cleanup; the first decision wins."""
        if status not in TERMINAL:
            raise ValueError(f"an ending must be terminal, not {status}")

        def change(record: RunRecord) -> list[_Event] | None:
            if record.ending is not None:
                return None
            record.ending = Ending(
                status=status, reason=reason, error=_clean_error(error), decided_at=time.time()
            )
            return [("ending", record.ending.model_dump(mode="json"))]

        return self._compare_and_set(run_id, change)

    def request_cancel(self, run_id: str, by: str | None = None) -> RunRecord:
        """Flag the run for cancellation (the chain acts on it); no-op once terminal.

        The `cancel_requested` event carries `by`, the name of who asked."""

        def change(record: RunRecord) -> list[_Event] | None:
            if record.cancel_requested or record.terminal:
                return None
            record.cancel_requested = True
            return [("cancel_requested", {"by": by} if by else {})]

        return self._compare_and_set(run_id, change)

    def mark_dispatched(self, run_id: str) -> RunRecord:
        def change(record: RunRecord) -> list[_Event] | None:
            if record.dispatched:
                return None
            record.dispatched = True
            return [("dispatched", {})]

        return self._compare_and_set(run_id, change)

    # ------------------------------------------------------------------ events
    def append_event(self, run_id: str, kind: str, **data: Any) -> str:
        """Append one event to the run's stream; returns its id. RunNotFound if no run."""
        event_id = self._append(
            keys=[self.keys.run(run_id), self.keys.events(run_id)],
            args=[kind, repr(time.time()), _dump(data)],
        )
        if event_id is None:
            raise RunNotFound(run_id)
        return text(event_id)

    def read_events(
        self,
        run_id: str,
        after: str = "0",
        block_ms: int | None = None,
        count: int = 100,
    ) -> list[RunEvent]:
        """Events after the id `after` (exclusive), oldest first.

        With block_ms, waits up to that long for a first new event (XREAD BLOCK).
        """
        response = self.redis.xread({self.keys.events(run_id): after}, count=count, block=block_ms)
        events: list[RunEvent] = []
        for _stream, entries in _stream_entries(response):
            for entry_id, fields in entries:
                values = {text(k): text(v) for k, v in fields.items()}
                events.append(
                    RunEvent(
                        id=text(entry_id),
                        kind=values.get("kind", ""),
                        data=json.loads(values.get("data", "{}")),
                        ts=float(values.get("ts", "0")),
                    )
                )
        return events


def _stream_entries(response: Any) -> list[tuple[Any, list[tuple[Any, dict[Any, Any]]]]]:
    # RESP2 answers XREAD with a list of [stream, entries]; RESP3 with a dict.
    if not response:
        return []
    if isinstance(response, dict):
        return [(stream, entries) for stream, entries in response.items()]
    return [(stream, entries) for stream, entries in response]
