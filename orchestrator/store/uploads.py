"""Uploads in Redis: committed manifests, and when each upload and each stored
content was last used (what upload retention reads).

The content itself is on the file share (``uploads/sha256/<digest>``); a
manifest is stored only once every file it names is complete there, so a run
can never reference an upload that was interrupted.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import redis

from orchestrator.domain.inputs import Manifest
from orchestrator.store.keys import Keys


class UploadBook:
    def __init__(self, client: redis.Redis, keys: Keys | None = None) -> None:
        self.redis = client
        self.keys = keys or Keys()

    def commit(self, manifest: Manifest, now: float) -> str:
        """Store the manifest (idempotent: the id is its digest) and mark it and
        its contents used now. Returns the upload id."""
        upload_id = manifest.upload_id
        pipe = self.redis.pipeline(transaction=True)
        pipe.set(self.keys.upload(upload_id), manifest.canonical())
        self._mark_used(pipe, manifest, now)
        pipe.execute()
        return upload_id

    def _mark_used(self, pipe: redis.client.Pipeline, manifest: Manifest, now: float) -> None:
        pipe.zadd(self.keys.uploads, {manifest.upload_id: now})
        pipe.zadd(self.keys.upload_blobs, {entry.sha256: now for entry in manifest.files})

    def get(self, upload_id: str) -> Manifest | None:
        raw = self.redis.get(self.keys.upload(upload_id))
        return Manifest.model_validate_json(raw) if raw is not None else None

    def touch(self, manifests: Iterable[Manifest], now: float) -> None:
        """Mark uploads (and their contents) used now, as a run naming them is created."""
        pipe = self.redis.pipeline(transaction=True)
        for manifest in manifests:
            self._mark_used(pipe, manifest, now)
        pipe.execute()

    def touch_blob(self, digest: str, now: float) -> None:
        """Mark a content used now, before its bytes are written: a write cut short
        leaves a file the retention sweep still knows about."""
        self.redis.zadd(self.keys.upload_blobs, {digest: now})

    def unused_since(self, before: float) -> tuple[list[str], list[str]]:
        """(upload ids, content digests) last used before `before`."""
        uploads = self.redis.zrangebyscore(self.keys.uploads, 0, before)
        blobs = self.redis.zrangebyscore(self.keys.upload_blobs, 0, before)
        return _texts(uploads), _texts(blobs)

    def forget_upload(self, upload_id: str) -> None:
        pipe = self.redis.pipeline(transaction=True)
        pipe.delete(self.keys.upload(upload_id))
        pipe.zrem(self.keys.uploads, upload_id)
        pipe.execute()

    def unused_since_check(self, digest: str, before: float) -> bool:
        """True while a content's last use is still before `before`."""
        score = self.redis.zscore(self.keys.upload_blobs, digest)
        return score is None or score < before

    def forget_blob(self, digest: str, before: float) -> bool:
        """Drop a content's entry unless it was used again since `before` (then
        it must stay on the share): True when dropped."""
        if not self.unused_since_check(digest, before):
            return False
        self.redis.zrem(self.keys.upload_blobs, digest)
        return True


def _texts(members: Any) -> list[str]:
    return [m.decode() if isinstance(m, bytes) else str(m) for m in members]
