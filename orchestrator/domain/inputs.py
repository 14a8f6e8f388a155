"""What a value of `inputs.<ID>` names, and the manifest of an upload.

A value is one of three kinds:

- ``upload:<id>``: files a submitter uploaded; <id> is the SHA-256 of the
  upload's manifest (its files' paths, sizes and SHA-256s), so the same files
  are the same upload whoever sends them.
- ``share:<path>``: a folder already on the configured file share (an ETL's
  output); nothing is uploaded, its files are copied server-side into the
  run's own share.
- a path: on the submitter's side (client, CLI, enqueue_spec_dict) a local
  file or folder, uploaded before the run is created; once a spec reaches the
  store it can only mean a folder of the workers' machines, allowed only under
  ORCH_INPUT_ROOTS and checked again by the worker before it reads.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path, PurePosixPath
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

UPLOAD_PREFIX = "upload:"
SHARE_PREFIX = "share:"
SHA256_PATTERN = r"^[0-9a-f]{64}$"
_SHA256 = re.compile(SHA256_PATTERN)
MAX_MANIFEST_FILES = 10_000
MAX_ENTRY_PATH_LENGTH = 1024


class InputKind(StrEnum):
    UPLOAD = "upload"  # uploaded content, by manifest digest
    SHARE = "share"  # a folder on the file share, copied server-side for the run
    PATH = "path"  # a local path (submitter) or a worker path (allow-listed)


@dataclass(frozen=True)
class InputRef:
    kind: InputKind
    value: str  # the upload id, the share path, or the path

    def __str__(self) -> str:
        if self.kind is InputKind.UPLOAD:
            return UPLOAD_PREFIX + self.value
        if self.kind is InputKind.SHARE:
            return SHARE_PREFIX + self.value
        return self.value


def relative_share_path(text: str) -> str:
    """A share-relative folder path, normalised; ValueError for ``..``, ``.``,
    absolute or empty parts, backslashes and NUL."""
    if "\\" in text or "\0" in text:
        raise ValueError("a share path must not contain backslashes or NUL")
    parts = text.strip("/").split("/")
    if text.startswith("/") or any(part in ("", ".", "..") for part in parts):
        raise ValueError("a share path is relative, without empty, '.' or '..' parts")
    return "/".join(parts)


def parse_input(text: str) -> InputRef:
    """The kind and value of an input; ValueError saying what is wrong."""
    if text.startswith(UPLOAD_PREFIX):
        digest = text[len(UPLOAD_PREFIX) :]
        if not _SHA256.fullmatch(digest):
            raise ValueError("upload: must be followed by an upload id (64 hex digits)")
        return InputRef(InputKind.UPLOAD, digest)
    if text.startswith(SHARE_PREFIX):
        return InputRef(InputKind.SHARE, relative_share_path(text[len(SHARE_PREFIX) :]))
    if not text or "\0" in text:
        raise ValueError("must be a path, share:<path> or upload:<id>")
    return InputRef(InputKind.PATH, text)


class InputRefused(ValueError):
    """A worker path outside ORCH_INPUT_ROOTS (or otherwise unsafe); says why."""


def allowed_worker_path(text: str, roots: list[Path]) -> Path:
    """The resolved path of a worker input, if it lies under an allowed root.

    Refused: relative paths, ``..`` anywhere, and anything whose real path
    (symlinks resolved) is outside every root. Runs at submission and again
    on the worker just before it reads."""
    if not roots:
        raise InputRefused(
            "paths on the workers' machines are not allowed (ORCH_INPUT_ROOTS is empty); "
            "upload the data (the client and the CLI do) or name it on the share (share:<path>)"
        )
    path = PurePosixPath(text)
    if not path.is_absolute() or ".." in path.parts:
        raise InputRefused("must be an absolute path without '..' under ORCH_INPUT_ROOTS")
    real = Path(text).resolve()
    for root in roots:
        if real.is_relative_to(root.resolve()):
            return real
    raise InputRefused("is not under ORCH_INPUT_ROOTS (symlinks resolved)")


# ------------------------------------------------------------------ manifests
def _entry_path(text: str) -> str:
    if len(text) > MAX_ENTRY_PATH_LENGTH:
        raise ValueError(f"must be at most {MAX_ENTRY_PATH_LENGTH} characters")
    if text.startswith("/") or re.match(r"^[A-Za-z]:", text):
        raise ValueError("must be a relative path, not an absolute one")
    if "\\" in text or "\0" in text or any(ord(c) < 32 for c in text):
        raise ValueError("must not contain backslashes or control characters")
    parts = text.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise ValueError("must not contain empty, '.' or '..' parts")
    return text


class ManifestEntry(BaseModel):
    """One file of an upload: where it goes under the input folder, and its content."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str
    sha256: Annotated[str, Field(pattern=SHA256_PATTERN)]
    size: Annotated[int, Field(ge=0)]
    # Only regular files are uploaded: a symlink or a device would let the
    # manifest name something other than the bytes sent.
    type: Literal["file"] = "file"

    @field_validator("path")
    @classmethod
    def _safe_path(cls, value: str) -> str:
        return _entry_path(value)


class Manifest(BaseModel):
    """An upload: its files, sorted by path. Its id is the SHA-256 of the canonical form."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    files: Annotated[list[ManifestEntry], Field(min_length=1, max_length=MAX_MANIFEST_FILES)]

    @model_validator(mode="after")
    def _distinct_paths(self) -> Manifest:
        paths = [entry.path for entry in self.files]
        seen = set(paths)
        if len(seen) != len(paths):
            raise ValueError("files: two entries have the same path")
        for path in paths:
            parent = path.rpartition("/")[0]
            while parent:
                if parent in seen:
                    raise ValueError(f"files: {parent!r} is both a file and a folder")
                parent = parent.rpartition("/")[0]
        return self

    @property
    def total_bytes(self) -> int:
        return sum(entry.size for entry in self.files)

    def canonical(self) -> str:
        entries = sorted(
            ({"path": e.path, "sha256": e.sha256, "size": e.size} for e in self.files),
            key=lambda e: str(e["path"]),
        )
        return json.dumps({"files": entries}, sort_keys=True, separators=(",", ":"))

    @property
    def upload_id(self) -> str:
        return hashlib.sha256(self.canonical().encode()).hexdigest()
