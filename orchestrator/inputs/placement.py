"""prepare_share's work: each input of a run placed where its job reads it.

Every input goes into the run's own share (names.run_share, the only storage
its job mounts), under ``inputs/<ID>``:

- upload:   each file copied server-side from ``uploads/sha256/<digest>`` of the
            configured share (nothing travels through the worker)
- share:    each file of that folder of the configured share copied server-side,
            and its listing (names, sizes, MD5) recorded
- a path:   a folder of the worker's machine, only under ORCH_INPUT_ROOTS (checked
            again here, with symlinks resolved), uploaded

Every action is idempotent: a redelivered step copies again over the same
names, and skips uploading a worker file whose Content-MD5 already matches.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from orchestrator.azure.files import ShareNotFound, md5_base64
from orchestrator.azure.gateway import Gateway
from orchestrator.azure.types import ShareFile
from orchestrator.domain.inputs import InputKind, InputRef, InputRefused, allowed_worker_path
from orchestrator.domain.naming import AzureNames, upload_blob_path
from orchestrator.inputs.local import LocalInputError, scan
from orchestrator.store.records import InputRecord
from orchestrator.store.uploads import UploadBook

# A share: input's record keeps at most this many listing entries (with the
# count and the digest of all of them): the record stays small.
LISTING_LIMIT = 1000


class InputProblem(ValueError):
    """An input that cannot be placed; the message names it (inputs.<ID>: ...)."""


@dataclass(frozen=True)
class Placement:
    inputs: dict[str, InputRecord]
    copied: int = 0
    uploaded: int = 0
    uploaded_bytes: int = 0
    skipped: int = 0


def listing_digest(files: list[ShareFile]) -> str:
    lines = "".join(f"{f.path}\t{f.size}\t{f.md5 or ''}\n" for f in files)
    return hashlib.sha256(lines.encode()).hexdigest()


@dataclass
class InputPlacer:
    gateway: Gateway
    book: UploadBook
    names: AzureNames
    input_roots: list[Path]
    copied: int = 0
    uploaded: int = 0
    uploaded_bytes: int = 0
    skipped: int = 0

    @property
    def share(self) -> str:
        """The run's own share, where every input is placed."""
        return self.names.run_share

    def place_all(self, refs: dict[str, InputRef]) -> Placement:
        self.gateway.ensure_share(self.share)
        self.gateway.ensure_directory(self.share, self.names.output_prefix)
        records: dict[str, InputRecord] = {}
        for input_id, ref in refs.items():
            try:
                records[input_id] = self.place(input_id, ref)
            except (InputRefused, LocalInputError, InputProblem) as exc:
                raise InputProblem(f"inputs.{input_id}: {exc}") from None
        return Placement(records, self.copied, self.uploaded, self.uploaded_bytes, self.skipped)

    def place(self, input_id: str, ref: InputRef) -> InputRecord:
        if ref.kind is InputKind.UPLOAD:
            return self._copy_upload(input_id, ref)
        if ref.kind is InputKind.SHARE:
            return self._copy_share_folder(input_id, ref)
        return self._upload_worker_path(input_id, ref)

    def _ensure_parent_dirs(self, folder: str, paths: list[str]) -> None:
        parents = {f"{folder}/{p}".rpartition("/")[0] for p in paths} | {folder}
        for directory in sorted(parents):
            self.gateway.ensure_directory(self.share, directory)

    def _copy_upload(self, input_id: str, ref: InputRef) -> InputRecord:
        manifest = self.book.get(ref.value)
        if manifest is None:
            raise InputProblem(f"upload {ref.value} does not exist (never completed, or expired)")
        folder = self.names.input_dir(input_id)
        self._ensure_parent_dirs(folder, [entry.path for entry in manifest.files])
        common = self.names.share
        for entry in manifest.files:
            stored = self.gateway.share_file(common, upload_blob_path(entry.sha256))
            if stored is None or stored.md5 is None:
                raise InputProblem(f"the content of {entry.path} is no longer on the share")
            self._copy(common, upload_blob_path(entry.sha256), f"{folder}/{entry.path}")
        return InputRecord(
            kind=InputKind.UPLOAD,
            ref=str(ref),
            digest=ref.value,
            files=len(manifest.files),
            bytes=manifest.total_bytes,
        )

    def _copy(self, source_share: str, source: str, target: str) -> None:
        directory, _, name = target.rpartition("/")
        # Copied even when a redelivered step did it before: a server-side copy
        # costs one request, as a check whether it is needed would.
        self.gateway.copy_file(self.share, source, directory, name, source_share=source_share)
        self.copied += 1

    def _copy_share_folder(self, input_id: str, ref: InputRef) -> InputRecord:
        common = self.names.share
        try:
            files = self.gateway.list_tree(common, ref.value, with_md5=True)
        except ShareNotFound:
            raise InputProblem(f"share:{ref.value} is not a folder of the share") from None
        folder = self.names.input_dir(input_id)
        self._ensure_parent_dirs(folder, [f.path for f in files])
        for item in files:
            self._copy(common, f"{ref.value}/{item.path}", f"{folder}/{item.path}")
        return InputRecord(
            kind=InputKind.SHARE,
            ref=str(ref),
            digest=listing_digest(files),
            files=len(files),
            bytes=sum(f.size for f in files),
            listing=[{"path": f.path, "size": f.size, "md5": f.md5} for f in files[:LISTING_LIMIT]],
        )

    def _upload_worker_path(self, input_id: str, ref: InputRef) -> InputRecord:
        local = scan(allowed_worker_path(ref.value, self.input_roots))
        folder = self.names.input_dir(input_id)
        self._ensure_parent_dirs(folder, [entry.path for entry in local.manifest.files])
        for entry in local.manifest.files:
            source = local.sources[entry.sha256]
            md5 = md5_base64(source)
            directory, _, name = f"{folder}/{entry.path}".rpartition("/")
            if self.gateway.file_md5(self.share, directory, name) == md5:
                self.skipped += 1
                continue
            self.gateway.upload_file(self.share, directory, name, source, md5)
            self.uploaded += 1
            self.uploaded_bytes += entry.size
        return InputRecord(
            kind=InputKind.PATH,
            ref=str(ref),
            digest=local.manifest.upload_id,
            files=len(local.manifest.files),
            bytes=local.manifest.total_bytes,
        )
