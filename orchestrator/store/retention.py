"""Deleting ended runs once their retention has passed (settings.run_retention_seconds).

A run that finished before the cutoff is deleted whole by one Lua script
(lua/delete_run.lua): its record, its event stream, its idempotency key and
every index entry (keys.run_indexes and the status indexes). The script checks
again what was read here -- the record's version, a terminal status, a
finish before the cutoff, no step lease held -- so a run that is not
terminal, or changed in between, is never touched.

Candidates come from the terminal status indexes, scored by creation time: a
run finished before the cutoff was created before it too.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any, cast

import redis
from pydantic import ValidationError
from redis.commands.core import Script

from orchestrator.domain.status import TERMINAL, RunStatus
from orchestrator.store.keys import Keys
from orchestrator.store.listing import text
from orchestrator.store.lua import load_script
from orchestrator.store.records import RunRecord

# Index members read per round trip while looking for expired runs.
RETENTION_PAGE = 200


class RunRetention:
    redis: redis.Redis
    keys: Keys

    @cached_property
    def _delete_run(self) -> Script:
        return self.redis.register_script(load_script("delete_run"))

    def delete_expired_runs(self, finished_before: float, limit: int = 1000) -> list[str]:
        """Delete up to `limit` ended runs that finished before `finished_before`
        (epoch seconds); returns their ids, oldest-created first per status."""
        deleted: list[str] = []
        for status in sorted(TERMINAL, key=lambda s: s.value):
            index = self.keys.status_index(status)
            skipped = 0  # candidates kept: the next page starts after them
            while len(deleted) < limit:
                page = self.redis.zrangebyscore(
                    index, "-inf", f"({finished_before!r}", start=skipped, num=RETENTION_PAGE
                )
                for member in page:
                    run_id = text(member)
                    if self.delete_run_if_expired(run_id, finished_before):
                        deleted.append(run_id)
                        if len(deleted) == limit:
                            break
                    else:
                        skipped += 1
                if len(page) < RETENTION_PAGE:
                    break
        return deleted

    def delete_run_if_expired(self, run_id: str, finished_before: float) -> bool:
        """Delete the run if it is terminal and finished before `finished_before`;
        True if it was deleted (or only stale index entries of it were left)."""
        data, version = self.redis.hmget(self.keys.run(run_id), ["data", "version"])
        if data is None or version is None:
            # Index entries without a record: cleaned from the indexes it names.
            indexes = [*self._status_indexes(), self.keys.runs]
            return self._run_script(run_id, "", finished_before, indexes)
        try:
            record = RunRecord.model_validate_json(data)
        except ValidationError:
            return False  # not a record this code can read: never deleted blind
        finished = record.finished_at if record.finished_at is not None else record.updated_at
        if not record.terminal or finished >= finished_before:
            return False
        indexes = [
            *self._status_indexes(),
            *self.keys.run_indexes(record.spec.name, record.spec.tags, record.submitted_by),
        ]
        idempotency = (
            self.keys.idempotency(record.idempotency_key)
            if record.idempotency_key is not None
            else "-"
        )
        return self._run_script(run_id, text(version), finished_before, indexes, idempotency)

    def _status_indexes(self) -> list[str]:
        # Every status, not only the run's: a stale entry anywhere goes too.
        return [self.keys.status_index(status) for status in RunStatus]

    def _run_script(
        self,
        run_id: str,
        version: str,
        finished_before: float,
        indexes: list[str],
        idempotency: str = "-",
    ) -> bool:
        outcome = self._delete_run(
            keys=[
                self.keys.run(run_id),
                self.keys.events(run_id),
                self.keys.lock(run_id),
                idempotency,
                *indexes,
            ],
            args=[
                run_id,
                version,
                repr(finished_before),
                *sorted(status.value for status in TERMINAL),
            ],
        )
        return text(cast(Any, outcome)) in ("deleted", "gone")
