"""Sweeps in Redis: one record per sweep, its due index, and the batch poll cache.

Layout in keys.py. A sweep's record is one JSON value, written only by the
worker holding the sweep's lease (one tick at a time) and by a cancel request,
so a WATCH/MULTI compare-and-set is enough. The due index (`sweeps:due`, a
sorted set by next tick) is what every worker's chain clock reads; a claim
pushes the sweep's score forward by CLAIM_SECONDS, so a tick lost with its
worker falls due again after that. The poll cache holds what the sweep's one
listing call per interval saw (job states, cluster nodes); the trials' steps
read it instead of calling Azure each.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any, cast

import redis
from pydantic import BaseModel, Field

from orchestrator.domain.status import (
    SWEEP_TERMINAL,
    SWEEP_TRANSITIONS,
    FailureReason,
    RunStatus,
    SweepStatus,
)
from orchestrator.domain.sweep import SweepSpec
from orchestrator.store.errors import IdempotencyConflict, StoreContention, StoreError
from orchestrator.store.keys import Keys
from orchestrator.store.listing import text
from orchestrator.store.lua import load_script
from orchestrator.store.records import InputRecord

CAS_ATTEMPTS = 50
# A claimed tick that never finished (its worker died) falls due again after this.
CLAIM_SECONDS = 30.0
CLAIM_BATCH = 50


class SweepNotFound(StoreError):
    def __init__(self, sweep_id: str) -> None:
        super().__init__(f"no sweep {sweep_id!r}")
        self.sweep_id = sweep_id


class IllegalSweepTransition(StoreError):
    pass


def new_sweep_id() -> str:
    """`sw` and 12 hex characters: trial run ids `<sweep_id>-<index>` stay valid run ids."""
    return "sw" + uuid.uuid4().hex[:12]


class TrialRecord(BaseModel):
    index: int
    run_id: str
    parameters: dict[str, Any]
    # Mirrored from the trial's run record by every tick.
    status: RunStatus = RunStatus.QUEUED
    reason: FailureReason | None = None
    # The primary metric at each interval (one printed value is one interval),
    # read live from the job's stdout, then from the collected run's metrics.
    series: list[float] = Field(default_factory=list)
    value: float | None = None
    metrics: dict[str, float] = Field(default_factory=dict)
    log_offset: int = 0
    live_read_at: float | None = None  # last read of the job's stdout while it ran
    # Stopped by the early termination policy, at this interval.
    stopped_at_interval: int | None = None
    enqueued: bool = False
    started_at: float | None = None  # the job started running (seen in the listing)
    # From the listing (Azure's clock): when the job started, and how long it ran.
    job_started_at: float | None = None
    job_seconds: float | None = None
    ended_at: float | None = None

    @property
    def active(self) -> bool:
        return self.status not in (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED)


class SweepEnding(BaseModel):
    status: SweepStatus
    reason: str | None = None
    error: str | None = None


class SweepRecord(BaseModel):
    sweep_id: str
    spec: SweepSpec
    status: SweepStatus = SweepStatus.QUEUED
    reason: str | None = None
    error: str | None = None
    # Decided before the trials are drained and the cluster deleted.
    ending: SweepEnding | None = None
    cancel_requested: bool = False
    trials: list[TrialRecord] = Field(default_factory=list)
    # What the sweep provisioned once for all its trials.
    resources: dict[str, str] = Field(default_factory=dict)
    provisioned: bool = False
    # The trial's inputs, placed once on the sweep's share for every trial.
    inputs: dict[str, InputRecord] = Field(default_factory=dict)
    cluster_deleted: bool = False
    inputs_deleted: bool = False
    # Node-seconds the early termination saved: for each stopped trial, the
    # mean runtime of the completed trials minus its own.
    node_seconds_saved: float = 0.0
    fingerprint: str
    idempotency_key: str | None = None
    submitted_by: str | None = None
    created_at: float
    updated_at: float
    started_at: float | None = None
    finished_at: float | None = None

    @property
    def terminal(self) -> bool:
        return self.status in SWEEP_TERMINAL

    def trial(self, index: int) -> TrialRecord | None:
        return self.trials[index] if 0 <= index < len(self.trials) else None

    def counts(self) -> dict[str, int]:
        found: dict[str, int] = {}
        for trial in self.trials:
            found[trial.status.value] = found.get(trial.status.value, 0) + 1
        return found


class SweepBook:
    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self.redis = client
        self.keys = keys
        self._claim = client.register_script(load_script("claim_due_sweeps"))
        self._take_slot = client.register_script(load_script("take_sweep_slot"))
        self._pass_slots = client.register_script(load_script("pass_sweep_slots"))

    # ------------------------------------------------------------- create/read
    def create(
        self,
        spec: SweepSpec,
        *,
        idempotency_key: str | None = None,
        submitted_by: str | None = None,
        now: float | None = None,
    ) -> tuple[SweepRecord, bool]:
        """A new queued sweep, due at once; (record, created). The same
        idempotency key returns the sweep it made (IdempotencyConflict for
        another spec)."""
        now = time.time() if now is None else now
        record = SweepRecord(
            sweep_id=new_sweep_id(),
            spec=spec,
            fingerprint=spec.fingerprint(),
            idempotency_key=idempotency_key,
            submitted_by=submitted_by,
            created_at=now,
            updated_at=now,
        )
        if idempotency_key is not None:
            claimed = self.redis.set(
                self.keys.sweep_idempotency(idempotency_key), record.sweep_id, nx=True
            )
            if not claimed:
                existing_id = text(self.redis.get(self.keys.sweep_idempotency(idempotency_key)))
                existing = self.get(existing_id)
                if existing.fingerprint != record.fingerprint:
                    raise IdempotencyConflict(
                        "idempotency key already used for a sweep with a different spec "
                        f"(sweep {existing_id!r})",
                        field="Idempotency-Key",
                    )
                return existing, False
        pipe = self.redis.pipeline(transaction=True)
        pipe.set(self.keys.sweep(record.sweep_id), record.model_dump_json())
        pipe.zadd(self.keys.sweeps, {record.sweep_id: now})
        pipe.zadd(self.keys.sweeps_due, {record.sweep_id: now})
        pipe.execute()
        return record, True

    def id_for_key(self, idempotency_key: str) -> str | None:
        """The sweep created under `idempotency_key`, if any."""
        raw = self.redis.get(self.keys.sweep_idempotency(idempotency_key))
        return None if raw is None else text(raw)

    def get(self, sweep_id: str) -> SweepRecord:
        data = self.redis.get(self.keys.sweep(sweep_id))
        if data is None:
            raise SweepNotFound(sweep_id)
        return SweepRecord.model_validate_json(data)

    def recent(self, limit: int = 50, before: float | None = None) -> list[SweepRecord]:
        """Sweeps newest first (created before `before`, when given)."""
        top: float | str = f"({before}" if before is not None else "+inf"
        ids = [
            text(m)
            for m in cast(
                list[Any], self.redis.zrevrangebyscore(self.keys.sweeps, top, "-inf", 0, limit)
            )
        ]
        if not ids:
            return []
        raw = cast(list[Any], self.redis.mget([self.keys.sweep(i) for i in ids]))
        return [SweepRecord.model_validate_json(r) for r in raw if r is not None]

    def ids(self) -> Iterator[str]:
        for member in self.redis.zscan_iter(self.keys.sweeps):
            yield text(member[0])

    def all(self, batch: int = 200) -> Iterator[SweepRecord]:
        """Every sweep, read `batch` records per round trip."""
        ids = list(self.ids())
        for start in range(0, len(ids), batch):
            chunk = ids[start : start + batch]
            raw = cast(list[Any], self.redis.mget([self.keys.sweep(i) for i in chunk]))
            yield from (SweepRecord.model_validate_json(r) for r in raw if r is not None)

    def delete_expired(self, before: float, limit: int) -> list[str]:
        """Delete up to `limit` ended sweeps that finished before `before` (their
        trials are runs, deleted by the runs' own retention)."""
        doomed = [
            r.sweep_id
            for r in self.all()
            if r.terminal and r.finished_at is not None and r.finished_at < before
        ][:limit]
        for sweep_id in doomed:
            pipe = self.redis.pipeline(transaction=True)
            pipe.delete(
                self.keys.sweep(sweep_id),
                self.keys.sweep_poll(sweep_id),
                *self._slot_keys(sweep_id),
            )
            pipe.zrem(self.keys.sweeps, sweep_id)
            pipe.zrem(self.keys.sweeps_due, sweep_id)
            pipe.execute()
        return doomed

    # ------------------------------------------------------------------ writes
    def update(self, sweep_id: str, mutate: Callable[[SweepRecord], None]) -> SweepRecord:
        """Apply `mutate` to the current record with WATCH/MULTI (retried on a race)."""
        key = self.keys.sweep(sweep_id)
        for _ in range(CAS_ATTEMPTS):
            with self.redis.pipeline(transaction=True) as pipe:
                try:
                    pipe.watch(key)  # type: ignore[no-untyped-call]  # untyped in redis-py
                    data = pipe.get(key)
                    if data is None:
                        raise SweepNotFound(sweep_id)
                    record = SweepRecord.model_validate_json(data)
                    mutate(record)
                    record.updated_at = time.time()
                    pipe.multi()
                    pipe.set(key, record.model_dump_json())
                    if record.terminal:
                        pipe.zrem(self.keys.sweeps_due, sweep_id)
                    pipe.execute()
                    return record
                except redis.WatchError:
                    continue
        raise StoreContention(f"sweep {sweep_id!r} kept changing; gave up after retries")

    def transition(self, sweep_id: str, status: SweepStatus, **fields: Any) -> SweepRecord:
        def change(record: SweepRecord) -> None:
            if record.status is status:
                return
            if status not in SWEEP_TRANSITIONS[record.status]:
                raise IllegalSweepTransition(
                    f"sweep {sweep_id!r} cannot go from {record.status} to {status}"
                )
            record.status = status
            for name, value in fields.items():
                setattr(record, name, value)

        return self.update(sweep_id, change)

    def request_cancel(self, sweep_id: str) -> SweepRecord:
        def change(record: SweepRecord) -> None:
            if not record.terminal:
                record.cancel_requested = True

        record = self.update(sweep_id, change)
        self.nudge(sweep_id)
        return record

    # ---------------------------------------------------------------- due index
    def claim_due(self, now: float, limit: int = CLAIM_BATCH) -> list[str]:
        """Sweeps whose tick is due; each is pushed CLAIM_SECONDS ahead for its claimer."""
        claimed = cast(
            list[Any],
            self._claim(keys=[self.keys.sweeps_due], args=[now, now + CLAIM_SECONDS, limit]),
        )
        return [text(c) for c in claimed]

    def schedule(self, sweep_id: str, at: float) -> None:
        """The sweep's next tick at `at` (only while it is in the due index)."""
        self.redis.zadd(self.keys.sweeps_due, {sweep_id: at}, xx=True)

    def nudge(self, sweep_id: str, now: float | None = None) -> None:
        """Bring the sweep's next tick forward to now (a trial ended, a cancel came)."""
        now = time.time() if now is None else now
        self.redis.zadd(self.keys.sweeps_due, {sweep_id: now}, xx=True, lt=True)

    def unschedule(self, sweep_id: str) -> None:
        self.redis.zrem(self.keys.sweeps_due, sweep_id)

    def due_at(self, sweep_id: str) -> float | None:
        score = self.redis.zscore(self.keys.sweeps_due, sweep_id)
        return None if score is None else float(score)

    # -------------------------------------------------------------------- slots
    def _slot_keys(self, sweep_id: str) -> list[str]:
        return [
            self.keys.sweep_slots(sweep_id),
            self.keys.sweep_slot_queue(sweep_id),
            self.keys.sweep_slot_limit(sweep_id),
        ]

    def set_slot_limit(self, sweep_id: str, limit: int) -> None:
        self.redis.set(self.keys.sweep_slot_limit(sweep_id), limit)

    def take_slot(self, sweep_id: str, run_id: str, index: int) -> bool:
        """True when the trial holds one of the sweep's slots (it may submit its
        job); else it waits in index order for one (lua/take_sweep_slot.lua)."""
        taken = self._take_slot(keys=self._slot_keys(sweep_id), args=[run_id, index])
        return bool(taken)

    def pass_slots(self, sweep_id: str, ended: list[str]) -> list[str]:
        """Free the slots of `ended` trials and give free slots to the lowest
        waiting trials, atomically; the run ids given one now."""
        granted = cast(list[Any], self._pass_slots(keys=self._slot_keys(sweep_id), args=ended))
        return [text(g) for g in granted]

    def slots(self, sweep_id: str) -> set[str]:
        members = cast(set[Any], self.redis.smembers(self.keys.sweep_slots(sweep_id)))
        return {text(m) for m in members}

    # --------------------------------------------------------------- poll cache
    def put_poll(self, sweep_id: str, snapshot: dict[str, Any]) -> None:
        """What the sweep's listing saw this interval; expires if the sweep stops polling."""
        self.redis.set(
            self.keys.sweep_poll(sweep_id), json.dumps(snapshot, separators=(",", ":")), ex=3600
        )

    def poll(self, sweep_id: str) -> dict[str, Any] | None:
        raw = self.redis.get(self.keys.sweep_poll(sweep_id))
        return None if raw is None else cast(dict[str, Any], json.loads(raw))

    def delete_poll(self, sweep_id: str) -> None:
        self.redis.delete(self.keys.sweep_poll(sweep_id))
