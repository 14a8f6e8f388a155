"""The run store's read side: filtered, paged listing and counts by status.

Every query walks one index (store/keys.py) and reads the records in one
pipelined round trip; nothing here writes.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, cast

import redis

from orchestrator.domain.ids import validate_run_id
from orchestrator.domain.naming import SWEEP_TAG
from orchestrator.domain.status import RunStatus
from orchestrator.store.errors import InvalidCursor
from orchestrator.store.keys import Keys
from orchestrator.store.records import RunRecord

# Index members read per round trip.
LIST_PAGE = 200


def text(value: Any) -> str:
    """A Redis answer as str, whether the client decodes responses or not."""
    return value.decode() if isinstance(value, bytes) else str(value)


class RunListing:
    redis: redis.Redis
    keys: Keys

    def list_runs(
        self,
        *,
        status: RunStatus | None = None,
        tag: tuple[str, str] | None = None,
        name: str | None = None,
        submitted_by: str | None = None,
        sweep: str | None = None,
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
            index = self.keys.status_index(status)
        elif name is not None:
            index = self.keys.name_index(name)
        elif submitted_by is not None:
            index = self.keys.submitter_index(submitted_by)
        elif tag is not None:
            index = self.keys.tag_index(*tag)
        elif sweep is not None:
            index = self.keys.tag_index(SWEEP_TAG, sweep)
        else:
            index = self.keys.runs
        position = _decode_cursor(cursor) if cursor else None

        def matches(record: RunRecord) -> bool:
            return (
                (status is None or record.status == status)
                and (name is None or record.spec.name == name)
                and (tag is None or record.spec.tags.get(tag[0]) == tag[1])
                and (submitted_by is None or record.submitted_by == submitted_by)
                and (sweep is None or record.sweep_id == sweep)
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
                run_id = text(member)
                # Ties in created_at are ordered by run id (descending): skip
                # what the previous page already returned.
                if position and score == position[0] and run_id >= position[1]:
                    continue
                candidates.append((run_id, score))
            if not candidates:
                return found, None
            records = self.get_many([run_id for run_id, _ in candidates])
            for (run_id, score), record in zip(candidates, records, strict=True):
                position = (score, run_id)
                if record is not None and matches(record):
                    found.append(record)
                    if len(found) == limit:
                        return found, _encode_cursor(position)
            if len(batch) < LIST_PAGE:
                return found, None

    def get_many(self, run_ids: list[str]) -> list[RunRecord | None]:
        """The records of `run_ids` (None where absent), in one round trip."""
        pipe = self.redis.pipeline(transaction=False)
        for run_id in run_ids:
            pipe.hget(self.keys.run(run_id), "data")
        return [
            RunRecord.model_validate_json(data) if data is not None else None
            for data in pipe.execute()
        ]

    def run_ids(self) -> Iterator[str]:
        """Every run id, oldest first (paged, so memory stays flat)."""
        start = 0
        while True:
            page = self.redis.zrange(self.keys.runs, start, start + LIST_PAGE - 1)
            yield from (text(member) for member in page)
            if len(page) < LIST_PAGE:
                return
            start += LIST_PAGE

    def count_by_status(self) -> dict[RunStatus, int]:
        pipe = self.redis.pipeline(transaction=False)
        for status in RunStatus:
            pipe.zcard(self.keys.status_index(status))
        return dict(zip(RunStatus, (int(n) for n in pipe.execute()), strict=True))


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
