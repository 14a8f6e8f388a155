"""Content-addressed uploads on the file share, through the gateway.

Each distinct content is one file, ``uploads/sha256/<digest>``, complete once
its Content-MD5 is set: that is written last, after every range and after the
SHA-256 of what arrived was checked against the name. A write cut short leaves
a file without it, which counts as missing (the next upload rewrites it) and
which upload retention deletes. An upload is then its manifest, committed in
Redis only when every content it names is complete.
"""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from orchestrator.azure.files import RANGE_BYTES
from orchestrator.azure.gateway import Gateway
from orchestrator.domain.inputs import Manifest
from orchestrator.domain.naming import upload_blob_path
from orchestrator.store.uploads import UploadBook


class UploadRejected(ValueError):
    """Upload content that does not match what was announced; says which field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class UploadTooLarge(UploadRejected):
    """Over ORCH_INPUT_MAX_BYTES."""


class UploadIncomplete(UploadRejected):
    """A commit naming content that is not (or no longer) on the share."""

    def __init__(self, missing: list[str]) -> None:
        super().__init__(
            "files", f"{len(missing)} file(s) are not uploaded yet, e.g. sha256 {missing[0]}"
        )
        self.missing = missing


@dataclass
class BlobWriter:
    """Writes one content to the share in ranges of at most 4 MiB, hashing as it goes."""

    uploads: ShareUploads
    digest: str
    size: int
    written: int = 0
    _sha256: hashlib._Hash = field(default_factory=hashlib.sha256)
    _md5: hashlib._Hash = field(default_factory=lambda: hashlib.md5(usedforsecurity=False))

    @property
    def path(self) -> str:
        return upload_blob_path(self.digest)

    def write(self, data: bytes) -> None:
        if len(data) > RANGE_BYTES:
            raise ValueError("write at most 4 MiB at a time")
        if self.written + len(data) > self.size:
            raise UploadRejected("body", f"is longer than the {self.size} bytes announced")
        if data:
            self.uploads.gateway.write_range(self.uploads.share, self.path, self.written, data)
        self._sha256.update(data)
        self._md5.update(data)
        self.written += len(data)

    def finish(self) -> None:
        """Mark the content complete, or delete it when it is not what was announced."""
        if self.written != self.size or self._sha256.hexdigest() != self.digest:
            self.abort()
            what = (
                f"has {self.written} bytes, not the {self.size} announced"
                if self.written != self.size
                else "does not match its sha256"
            )
            raise UploadRejected("body", what)
        md5 = base64.b64encode(self._md5.digest()).decode("ascii")
        self.uploads.gateway.set_md5(self.uploads.share, self.path, md5)

    def abort(self) -> None:
        self.uploads.gateway.delete_file(self.uploads.share, self.path)


@dataclass
class ShareUploads:
    gateway: Gateway
    book: UploadBook
    share: str
    max_bytes: int
    clock: Callable[[], float] = time.time

    def check_size(self, manifest: Manifest) -> None:
        if manifest.total_bytes > self.max_bytes:
            raise UploadTooLarge(
                "files",
                f"total {manifest.total_bytes} bytes is over the limit of {self.max_bytes} "
                "(ORCH_INPUT_MAX_BYTES)",
            )

    def is_stored(self, digest: str) -> bool:
        found = self.gateway.share_file(self.share, upload_blob_path(digest))
        return found is not None and found.md5 is not None

    def missing(self, manifest: Manifest) -> list[str]:
        """Digests of the manifest's contents not yet complete on the share, sorted."""
        self.check_size(manifest)
        digests = sorted({entry.sha256 for entry in manifest.files})
        return [digest for digest in digests if not self.is_stored(digest)]

    def open_blob(self, digest: str, size: int) -> BlobWriter | None:
        """A writer for one content, or None when it is already complete (nothing to send)."""
        if size > self.max_bytes:
            raise UploadTooLarge(
                "Content-Length", f"{size} bytes is over the limit of {self.max_bytes}"
            )
        if self.is_stored(digest):
            self.book.touch_blob(digest, self.clock())
            return None
        self.book.touch_blob(digest, self.clock())
        self.gateway.ensure_share(self.share)
        self.gateway.ensure_directory(self.share, upload_blob_path(digest).rpartition("/")[0])
        self.gateway.create_empty_file(self.share, upload_blob_path(digest), size)
        return BlobWriter(self, digest, size)

    def put_file(self, digest: str, source: Path) -> int:
        """Upload a local file as the content `digest`; returns the bytes sent."""
        writer = self.open_blob(digest, source.stat().st_size)
        if writer is None:
            return 0
        with source.open("rb") as handle:
            for chunk in iter(lambda: handle.read(RANGE_BYTES), b""):
                writer.write(chunk)
        writer.finish()
        return writer.written

    def commit(self, manifest: Manifest) -> str:
        """Store the manifest once every content is complete; returns the upload id."""
        absent = self.missing(manifest)
        if absent:
            raise UploadIncomplete(absent)
        return self.book.commit(manifest, self.clock())
