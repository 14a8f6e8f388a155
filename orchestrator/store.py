"""The run store: one record per run in Redis, changed only by compare-and-set.

Redis layout (``ns`` is the namespace, "orch" by default):

- ``ns:run:<run_id>``            HASH  ``data`` (RunRecord as JSON), ``version`` (int,
                                        +1 on every write), ``fingerprint`` (spec hash)
- ``ns:runs``                    ZSET  run_id scored by created_at (all runs; newest first)
- ``ns:idx:status:<status>``     ZSET  run_id by created_at, one per RunStatus
- ``ns:idx:name:<spec.name>``    ZSET  run_id by created_at
- ``ns:idx:tag:<sha1(k\\0v)>``    ZSET  run_id by created_at, one per tag key/value pair
- ``ns:idem:<sha256(key)>``      STRING the run_id created under an idempotency key
- ``ns:events:<run_id>``         STREAM fields ``kind``, ``ts``, ``data`` (JSON); capped
                                        at about EVENTS_MAXLEN entries

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

import hashlib
import json
import time
from collections.abc import Callable, Iterator
from typing import Any, cast

import redis
from pydantic import BaseModel, Field

from orchestrator.ids import new_run_id, validate_run_id
from orchestrator.logs import redact_text
from orchestrator.spec import RunSpec
from orchestrator.status import (
    STEP_ORDER,
    TERMINAL,
    FailureReason,
    RunStatus,
    Step,
    StepState,
    can_transition,
)

EVENTS_MAXLEN = 1000
# Attempts of one compare-and-set before giving up; a lost race costs one
# re-read, so reaching this means something rewrites the run in a loop.
CAS_ATTEMPTS = 100
LIST_PAGE = 200

_FINISHED_STEP_STATES = frozenset({StepState.DONE, StepState.FAILED, StepState.SKIPPED})
_ACTIVE_STEP_STATES = frozenset({StepState.RUNNING, StepState.WAITING})


class StoreError(Exception):
    """Base of the store's errors."""


class RunNotFound(StoreError, LookupError):
    def __init__(self, run_id: str) -> None:
        super().__init__(f"run {run_id!r} not found")
        self.run_id = run_id


class IllegalTransition(StoreError):
    def __init__(self, run_id: str, current: RunStatus, target: RunStatus) -> None:
        super().__init__(f"run {run_id!r} cannot go from {current} to {target}")
        self.run_id = run_id
        self.current = current
        self.target = target


class IdempotencyConflict(StoreError):
    """The idempotency key or run id is already used by a run with a different spec.

    `field` is the one in conflict: "run_id" or "Idempotency-Key".
    """

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


class InvalidCursor(StoreError, ValueError):
    """A list_runs cursor this store did not return."""


class StoreContention(StoreError):
    """A compare-and-set lost CAS_ATTEMPTS races in a row."""


class StepRecord(BaseModel):
    state: StepState = StepState.PENDING
    attempts: int = 0
    task_id: str | None = None
    started_at: float | None = None
    finished_at: float | None = None
    error: str | None = None
    detail: dict[str, Any] = Field(default_factory=dict)


class Ending(BaseModel):
    """The terminal outcome decided for a run, recorded before cleanup runs."""

    status: RunStatus
    reason: FailureReason | None = None
    error: str | None = None
    decided_at: float


class RunRecord(BaseModel):
    run_id: str
    spec: RunSpec
    status: RunStatus = RunStatus.QUEUED
    reason: FailureReason | None = None
    error: str | None = None
    current_step: Step | None = None
    steps: dict[Step, StepRecord] = Field(default_factory=dict)
    # Azure ids and names of what the run created or adopted.
    resources: dict[str, str] = Field(default_factory=dict)
    # Paths relative to the run's artifacts directory.
    outputs: list[str] = Field(default_factory=list)
    metrics: dict[str, float] = Field(default_factory=dict)
    metric_series: dict[str, list[float]] = Field(default_factory=dict)
    ending: Ending | None = None
    cancel_requested: bool = False
    idempotency_key: str | None = None
    spec_fingerprint: str
    dispatched: bool = False
    created_at: float
    updated_at: float
    finished_at: float | None = None

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    def step(self, step: Step) -> StepRecord:
        """The record of one step (a pending one if never touched)."""
        return self.steps.get(step) or StepRecord()


class RunEvent(BaseModel):
    id: str
    kind: str
    data: dict[str, Any]
    ts: float


# KEYS: run, idem (or a placeholder), events, runs index, status/name/tag indexes...
# ARGV: run_id, data, fingerprint, created_at, has_idem, event kind, event ts, event data
_CREATE = """
if ARGV[5] == '1' then
  local existing = redis.call('GET', KEYS[2])
  if existing then return {'idem', existing} end
end
if redis.call('EXISTS', KEYS[1]) == 1 then
  if redis.call('HGET', KEYS[1], 'fingerprint') ~= ARGV[3] then return {'conflict'} end
  if ARGV[5] == '1' then redis.call('SET', KEYS[2], ARGV[1], 'NX') end
  return {'exists'}
end
redis.call('HSET', KEYS[1], 'data', ARGV[2], 'version', 1, 'fingerprint', ARGV[3])
if ARGV[5] == '1' then redis.call('SET', KEYS[2], ARGV[1]) end
for i = 4, #KEYS do redis.call('ZADD', KEYS[i], ARGV[4], ARGV[1]) end
redis.call('XADD', KEYS[3], 'MAXLEN', '~', MAXLEN_, '*',
           'kind', ARGV[6], 'ts', ARGV[7], 'data', ARGV[8])
return {'created'}
""".replace("MAXLEN_", str(EVENTS_MAXLEN))

# KEYS: run, events, old status index, new status index
# ARGV: expected version, data, run_id, created_at, then (kind, ts, data) per event
_CAS = """
local version = redis.call('HGET', KEYS[1], 'version')
if not version then return -1 end
if version ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'data', ARGV[2], 'version', tonumber(version) + 1)
if KEYS[3] ~= KEYS[4] then
  redis.call('ZREM', KEYS[3], ARGV[3])
  redis.call('ZADD', KEYS[4], ARGV[4], ARGV[3])
end
for i = 5, #ARGV, 3 do
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', MAXLEN_, '*',
             'kind', ARGV[i], 'ts', ARGV[i + 1], 'data', ARGV[i + 2])
end
return 1
""".replace("MAXLEN_", str(EVENTS_MAXLEN))

# KEYS: run, events. ARGV: kind, ts, data. Refuses events of unknown runs.
_APPEND_EVENT = """
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
return redis.call('XADD', KEYS[2], 'MAXLEN', '~', MAXLEN_, '*',
                  'kind', ARGV[1], 'ts', ARGV[2], 'data', ARGV[3])
""".replace("MAXLEN_", str(EVENTS_MAXLEN))


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


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


class RunStore:
    def __init__(self, redis: redis.Redis, namespace: str = "orch") -> None:
        self.redis = redis
        self.namespace = namespace
        self._create = self.redis.register_script(_CREATE)
        self._cas = self.redis.register_script(_CAS)
        self._append = self.redis.register_script(_APPEND_EVENT)

    @classmethod
    def from_url(cls, redis_url: str, namespace: str = "orch") -> RunStore:
        """A store on its own client of `redis_url`."""
        return cls(redis.Redis.from_url(redis_url), namespace=namespace)

    # ------------------------------------------------------------------ keys
    def _run_key(self, run_id: str) -> str:
        return f"{self.namespace}:run:{run_id}"

    def _events_key(self, run_id: str) -> str:
        return f"{self.namespace}:events:{run_id}"

    @property
    def _runs_key(self) -> str:
        return f"{self.namespace}:runs"

    def _status_key(self, status: RunStatus) -> str:
        return f"{self.namespace}:idx:status:{status.value}"

    def _name_key(self, name: str) -> str:
        return f"{self.namespace}:idx:name:{name}"

    def _tag_key(self, key: str, value: str) -> str:
        digest = hashlib.sha1(f"{key}\0{value}".encode(), usedforsecurity=False).hexdigest()
        return f"{self.namespace}:idx:tag:{digest}"

    def _idem_key(self, key: str) -> str:
        return f"{self.namespace}:idem:{hashlib.sha256(key.encode()).hexdigest()}"

    # --------------------------------------------------------------- create/read
    def create_run(
        self,
        spec: RunSpec,
        *,
        run_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> tuple[RunRecord, bool]:
        """Create a queued run atomically; (record, created).

        The same idempotency key (or run id) with the same spec returns the
        existing run and created=False; with a different spec it raises
        IdempotencyConflict.
        """
        run_id_given = run_id is not None
        run_id = validate_run_id(run_id) if run_id is not None else new_run_id()
        fingerprint = spec.fingerprint()
        now = time.time()
        record = RunRecord(
            run_id=run_id,
            spec=spec,
            steps={step: StepRecord() for step in STEP_ORDER},
            idempotency_key=idempotency_key,
            spec_fingerprint=fingerprint,
            created_at=now,
            updated_at=now,
        )
        keys = [
            self._run_key(run_id),
            # Unused placeholder when there is no key (the script checks ARGV[5]).
            self._idem_key(idempotency_key) if idempotency_key is not None else "-",
            self._events_key(run_id),
            self._runs_key,
            self._status_key(RunStatus.QUEUED),
            self._name_key(spec.name),
            *(self._tag_key(k, v) for k, v in spec.tags.items()),
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
                ],
            ),
        )
        outcome = _text(result[0])
        if outcome == "created":
            return record, True
        if outcome == "conflict":
            raise IdempotencyConflict(
                f"run {run_id!r} already exists with a different spec", field="run_id"
            )
        if outcome == "idem":
            existing = self.get(_text(result[1]))
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
        data = self.redis.hget(self._run_key(run_id), "data")
        if data is None:
            raise RunNotFound(run_id)
        return RunRecord.model_validate_json(data)

    def exists(self, run_id: str) -> bool:
        return bool(self.redis.exists(self._run_key(run_id)))

    # ------------------------------------------------------------------ writes
    def _compare_and_set(
        self, run_id: str, change: Callable[[RunRecord], list[_Event] | None]
    ) -> RunRecord:
        """Read, change a copy, write it back if nobody wrote in between; retry otherwise.

        `change` mutates the record in place and returns extra events (beyond
        the status/step events derived from the difference), or None.
        Nothing is written when the change leaves the record as it was.
        """
        key = self._run_key(run_id)
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
                _text(version),
                after.model_dump_json(),
                run_id,
                repr(after.created_at),
            ]
            for kind, payload in events:
                args += [kind, repr(after.updated_at), _dump(payload)]
            written = self._cas(
                keys=[
                    key,
                    self._events_key(run_id),
                    self._status_key(before.status),
                    self._status_key(after.status),
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

    def request_cancel(self, run_id: str) -> RunRecord:
        """Flag the run for cancellation (the chain acts on it); no-op once terminal."""

        def change(record: RunRecord) -> list[_Event] | None:
            if record.cancel_requested or record.terminal:
                return None
            record.cancel_requested = True
            return [("cancel_requested", {})]

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
            keys=[self._run_key(run_id), self._events_key(run_id)],
            args=[kind, repr(time.time()), _dump(data)],
        )
        if event_id is None:
            raise RunNotFound(run_id)
        return _text(event_id)

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
        response = self.redis.xread({self._events_key(run_id): after}, count=count, block=block_ms)
        events: list[RunEvent] = []
        for _stream, entries in _stream_entries(response):
            for entry_id, fields in entries:
                values = {_text(k): _text(v) for k, v in fields.items()}
                events.append(
                    RunEvent(
                        id=_text(entry_id),
                        kind=values.get("kind", ""),
                        data=json.loads(values.get("data", "{}")),
                        ts=float(values.get("ts", "0")),
                    )
                )
        return events

    # ----------------------------------------------------------------- queries
    def list_runs(
        self,
        *,
        status: RunStatus | None = None,
        tag: tuple[str, str] | None = None,
        name: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> tuple[list[RunRecord], str | None]:
        """Runs newest first, filtered; returns (page, cursor of the next page or None).

        Walks the most selective index and checks the other filters on the
        records themselves.
        """
        if limit < 1:
            raise ValueError("limit must be at least 1")
        if status is not None:
            index = self._status_key(status)
        elif name is not None:
            index = self._name_key(name)
        elif tag is not None:
            index = self._tag_key(*tag)
        else:
            index = self._runs_key
        position = _decode_cursor(cursor) if cursor else None

        def matches(record: RunRecord) -> bool:
            return (
                (status is None or record.status == status)
                and (name is None or record.spec.name == name)
                and (tag is None or record.spec.tags.get(tag[0]) == tag[1])
            )

        found: list[RunRecord] = []
        while True:
            top: float | str = position[0] if position else "+inf"
            batch = cast(
                list[tuple[Any, float]],
                self.redis.zrevrangebyscore(
                    index, top, "-inf", start=0, num=LIST_PAGE, withscores=True
                ),
            )
            candidates: list[tuple[str, float]] = []
            for member, score in batch:
                run_id = _text(member)
                # Ties in created_at are ordered by run id (descending): skip
                # what the previous page already returned.
                if position and score == position[0] and run_id >= position[1]:
                    continue
                candidates.append((run_id, score))
            if not candidates:
                return found, None
            records = self._get_many([run_id for run_id, _ in candidates])
            for (run_id, score), record in zip(candidates, records, strict=True):
                position = (score, run_id)
                if record is not None and matches(record):
                    found.append(record)
                    if len(found) == limit:
                        return found, _encode_cursor(position)
            if len(batch) < LIST_PAGE:
                return found, None

    def _get_many(self, run_ids: list[str]) -> list[RunRecord | None]:
        pipe = self.redis.pipeline(transaction=False)
        for run_id in run_ids:
            pipe.hget(self._run_key(run_id), "data")
        return [
            RunRecord.model_validate_json(data) if data is not None else None
            for data in pipe.execute()
        ]

    def run_ids(self) -> Iterator[str]:
        """Every run id, oldest first (paged, so memory stays flat)."""
        start = 0
        while True:
            page = self.redis.zrange(self._runs_key, start, start + LIST_PAGE - 1)
            yield from (_text(member) for member in page)
            if len(page) < LIST_PAGE:
                return
            start += LIST_PAGE

    def count_by_status(self) -> dict[RunStatus, int]:
        pipe = self.redis.pipeline(transaction=False)
        for status in RunStatus:
            pipe.zcard(self._status_key(status))
        return dict(zip(RunStatus, (int(n) for n in pipe.execute()), strict=True))


def _stream_entries(response: Any) -> list[tuple[Any, list[tuple[Any, dict[Any, Any]]]]]:
    # RESP2 answers XREAD with a list of [stream, entries]; RESP3 with a dict.
    if not response:
        return []
    if isinstance(response, dict):
        return [(stream, entries) for stream, entries in response.items()]
    return [(stream, entries) for stream, entries in response]


def _encode_cursor(position: tuple[float, str]) -> str:
    return f"{position[0]!r}:{position[1]}"


def _decode_cursor(cursor: str) -> tuple[float, str]:
    score, sep, run_id = cursor.partition(":")
    try:
        if not sep:
            raise ValueError
        return float(score), validate_run_id(run_id)
    except ValueError:
        raise InvalidCursor(f"cursor {cursor!r} is not one this store returned") from None
