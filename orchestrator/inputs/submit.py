"""Before a run is created: each local path of its spec uploaded, and replaced
by ``upload:<id>``. The client, the CLI and enqueue_spec_dict run this on the
submitter's machine, so no worker ever reads the submitter's disk."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from orchestrator.domain.inputs import UPLOAD_PREFIX, InputKind, Manifest
from orchestrator.domain.spec import RunSpec
from orchestrator.inputs.local import LocalInputError, scan


class Uploader(Protocol):
    """Where uploads go: the share directly (ShareUploads) or through the API."""

    def missing(self, manifest: Manifest) -> list[str]: ...
    def put_file(self, digest: str, source: Path) -> int: ...
    def commit(self, manifest: Manifest) -> str: ...


@dataclass(frozen=True)
class UploadReport:
    files: int = 0
    sent_files: int = 0
    sent_bytes: int = 0


def upload_path(path: Path, uploader: Uploader) -> tuple[str, UploadReport]:
    """Upload a local file or folder; returns (upload id, what was sent)."""
    local = scan(path)
    sent = sent_bytes = 0
    for digest in uploader.missing(local.manifest):
        sent_bytes += uploader.put_file(digest, local.sources[digest])
        sent += 1
    upload_id = uploader.commit(local.manifest)
    return upload_id, UploadReport(len(local.manifest.files), sent, sent_bytes)


def upload_local_inputs(spec: RunSpec, uploader: Uploader) -> tuple[RunSpec, UploadReport]:
    """The spec with every path input uploaded and named by its upload id.

    Raises LocalInputError (naming the input) for a path that cannot be uploaded.
    """
    replaced: dict[str, str] = {}
    files = sent = sent_bytes = 0
    for input_id, ref in spec.input_refs().items():
        if ref.kind is not InputKind.PATH:
            continue
        try:
            upload_id, report = upload_path(Path(ref.value), uploader)
        except LocalInputError as exc:
            raise LocalInputError(f"inputs.{input_id}: {exc}") from None
        replaced[input_id] = UPLOAD_PREFIX + upload_id
        files += report.files
        sent += report.sent_files
        sent_bytes += report.sent_bytes
    if not replaced:
        return spec, UploadReport()
    return spec.with_inputs(replaced), UploadReport(files, sent, sent_bytes)
