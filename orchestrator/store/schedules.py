"""Schedules in Redis: definitions, their next tick, tick claims and history.

Layout in keys.py. A schedule is one hash; the due index (`schedules:due`, a
sorted set by next tick) is what every worker's chain clock reads each tick.
Firing a tick is a claim (SET NX PX on the tick's key) followed by a
compare-and-set of `next_tick` (lua/advance_schedule.lua); the tick's run is
enqueued under an idempotency key derived from the tick, so a second claimer
(after the first one died, or stalled past its claim) finds the same run.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any, Literal, cast

import redis

from orchestrator.domain.schedule import ScheduleSpec, TickOutcome, iso
from orchestrator.store.errors import StoreError
from orchestrator.store.keys import Keys
from orchestrator.store.listing import text
from orchestrator.store.lua import load_script


class ScheduleNotFound(StoreError):
    def __init__(self, name: str) -> None:
        super().__init__(f"no schedule named {name!r}")
        self.name = name


class ScheduleExists(StoreError):
    def __init__(self, name: str) -> None:
        super().__init__(f"a schedule named {name!r} already exists (use PUT to change it)")
        self.name = name


@dataclass(frozen=True)
class ScheduleState:
    spec: ScheduleSpec
    next_tick: float | None
    last_run_id: str | None
    last_tick: float | None
    created_at: float
    updated_at: float
    # The name of the key that created it, and of the one that changed it last.
    submitted_by: str | None = None
    updated_by: str | None = None


@dataclass(frozen=True)
class TickEntry:
    tick: str  # UTC ISO of the tick
    outcome: TickOutcome
    run_id: str | None = None
    recorded_at: float = 0.0
    # replace: the run cancelled; forbid: the run that was still active.
    previous_run_id: str | None = None
    manual: bool = False
    # A schedule of a sweep: the sweep the tick started (run_id is then None).
    sweep_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "tick": self.tick,
            "outcome": self.outcome.value,
            "run_id": self.run_id,
            "sweep_id": self.sweep_id,
            "recorded_at": self.recorded_at,
            "previous_run_id": self.previous_run_id,
            "manual": self.manual,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TickEntry:
        return cls(
            tick=data["tick"],
            outcome=TickOutcome(data["outcome"]),
            run_id=data.get("run_id"),
            recorded_at=float(data.get("recorded_at", 0.0)),
            previous_run_id=data.get("previous_run_id"),
            manual=bool(data.get("manual", False)),
            sweep_id=data.get("sweep_id"),
        )


class EvictingRedis(StoreError):
    """Redis may evict keys: a claim, an idempotency key or a run could vanish."""


def require_no_eviction(client: redis.Redis) -> None:
    """Raise EvictingRedis unless Redis' maxmemory-policy is noeviction.

    Read from INFO (allowed where CONFIG is disabled, as on managed Redis).
    Any other policy can drop keys under memory pressure (volatile-* the ones
    with a TTL, such as tick claims), and an evicted idempotency key would let
    a tick run twice.
    """
    policy = str(client.info("memory").get("maxmemory_policy", "noeviction"))
    if policy != "noeviction":
        raise EvictingRedis(
            f"Redis maxmemory-policy is {policy}, which can evict keys (schedules could "
            "fire a tick twice or lose runs): set maxmemory-policy noeviction"
        )


Mode = Literal["create", "replace", "update"]


class ScheduleBook:
    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self.redis = client
        self.keys = keys
        self._put = client.register_script(load_script("put_schedule"))
        self._advance = client.register_script(load_script("advance_schedule"))
        self._record = client.register_script(load_script("record_tick"))

    # ------------------------------------------------------------ definitions
    def put(
        self,
        spec: ScheduleSpec,
        *,
        mode: Mode,
        now: float | None = None,
        restart: bool = False,
        by: str | None = None,
    ) -> ScheduleState:
        """Store `spec`. A new trigger (or `restart`, as on resume) starts from
        the next tick after now; otherwise the stored next tick is kept.
        `by` (a key's name) becomes updated_by, and submitted_by when it creates."""
        now = time.time() if now is None else now
        next_tick = spec.trigger.next_after(now)
        outcome = text(
            self._put(
                keys=[self.keys.schedule(spec.name), self.keys.schedules, self.keys.schedules_due],
                args=[
                    spec.name,
                    mode,
                    spec.model_dump_json(),
                    "" if next_tick is None else repr(next_tick),
                    "0" if restart else "1",
                    spec.trigger.model_dump_json(),
                    repr(now),
                    "1" if spec.suspend else "0",
                    by or "",
                ],
            )
        )
        if outcome == "exists":
            raise ScheduleExists(spec.name)
        if outcome == "missing":
            raise ScheduleNotFound(spec.name)
        return self.get(spec.name)

    def get(self, name: str) -> ScheduleState:
        raw = cast(dict[bytes, bytes], self.redis.hgetall(self.keys.schedule(name)))
        if not raw or b"definition" not in raw:
            raise ScheduleNotFound(name)
        fields = {text(k): text(v) for k, v in raw.items()}

        def number(field: str) -> float | None:
            value = fields.get(field, "")
            return float(value) if value else None

        return ScheduleState(
            spec=ScheduleSpec.model_validate_json(fields["definition"]),
            next_tick=number("next_tick"),
            last_run_id=fields.get("last_run_id") or None,
            last_tick=number("last_tick"),
            created_at=number("created_at") or 0.0,
            updated_at=number("updated_at") or 0.0,
            submitted_by=fields.get("submitted_by") or None,
            updated_by=fields.get("updated_by") or None,
        )

    def names(self) -> list[str]:
        return [text(name) for name in self.redis.zrange(self.keys.schedules, 0, -1)]

    def delete(self, name: str) -> None:
        history, order = self.keys.schedule_history(name)
        pipe = self.redis.pipeline(transaction=True)
        pipe.delete(self.keys.schedule(name), history, order)
        pipe.zrem(self.keys.schedules, name)
        pipe.zrem(self.keys.schedules_due, name)
        deleted = pipe.execute()[0]
        if not deleted:
            raise ScheduleNotFound(name)

    def set_suspended(
        self, name: str, suspended: bool, now: float | None = None, by: str | None = None
    ) -> ScheduleState:
        state = self.get(name)
        spec = state.spec.model_copy(update={"suspend": suspended})
        # Resuming starts from the next tick after now: ticks while paused are
        # not owed (they are not recorded as missed either).
        return self.put(spec, mode="update", now=now, restart=not suspended, by=by)

    # ---------------------------------------------------------------- firing
    def due_names(self, now: float, limit: int = 100) -> list[str]:
        names = self.redis.zrangebyscore(self.keys.schedules_due, "-inf", now, start=0, num=limit)
        return [text(name) for name in names]

    def claim_tick(self, name: str, tick: float, worker: str, ttl_seconds: float) -> bool:
        """Whoever sets the tick's key processes it; it expires so that a
        claimer that dies mid-tick leaves the tick to the next one."""
        key = self.keys.schedule_tick_claim(name, iso(tick))
        ttl_ms = max(1, int(ttl_seconds * 1000))
        return bool(self.redis.set(key, worker, nx=True, px=ttl_ms))

    def advance(self, name: str, processed_tick: float, next_tick: float | None) -> bool:
        moved = self._advance(
            keys=[self.keys.schedule(name), self.keys.schedules_due],
            args=[name, repr(processed_tick), "" if next_tick is None else repr(next_tick)],
        )
        return bool(moved)

    def set_last_run(self, name: str, tick: float, run_id: str) -> None:
        self.redis.hset(
            self.keys.schedule(name), mapping={"last_run_id": run_id, "last_tick": repr(tick)}
        )

    def record(self, name: str, tick: float, entry: TickEntry, limit: int) -> bool:
        history, order = self.keys.schedule_history(name)
        recorded = self._record(
            keys=[history, order],
            args=[entry.tick, json.dumps(entry.to_json(), separators=(",", ":")), tick, limit],
        )
        return bool(recorded)

    def history(self, name: str) -> list[TickEntry]:
        """Newest first."""
        history, order = self.keys.schedule_history(name)
        ticks = [text(t) for t in self.redis.zrevrange(order, 0, -1)]
        if not ticks:
            return []
        raw = cast(list[bytes | None], self.redis.hmget(history, ticks))
        return [TickEntry.from_json(json.loads(item)) for item in raw if item is not None]

    def run_for_key(self, idempotency_key: str) -> str | None:
        """The run created under `idempotency_key`, if any."""
        raw = self.redis.get(self.keys.idempotency(idempotency_key))
        return text(raw) if raw is not None else None
