"""A local file or folder as an upload manifest: every regular file with its
SHA-256 and size. Symlinks and device files are refused, naming the entry: an
upload carries bytes a submitter owns, never what a link points at."""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from orchestrator.domain.inputs import Manifest, ManifestEntry


class LocalInputError(ValueError):
    """A local input that cannot be uploaded; the message names the entry."""


@dataclass(frozen=True)
class LocalFiles:
    manifest: Manifest
    # content digest -> one local file holding that content
    sources: dict[str, Path]


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _regular(path: Path, shown: str) -> os.stat_result:
    info = path.lstat()
    if stat.S_ISLNK(info.st_mode):
        raise LocalInputError(f"{shown} is a symlink; only regular files are uploaded")
    if not stat.S_ISREG(info.st_mode) and not stat.S_ISDIR(info.st_mode):
        raise LocalInputError(f"{shown} is not a regular file (a device, socket or pipe)")
    return info


def scan(path: Path) -> LocalFiles:
    """The manifest of `path`: a single file under its own name, or a folder's
    files by their paths inside it."""
    if not path.exists() and not path.is_symlink():
        raise LocalInputError(f"{path} does not exist")
    info = _regular(path, str(path))
    found: list[tuple[str, Path]] = []
    if stat.S_ISREG(info.st_mode):
        found.append((path.name, path))
    else:
        for folder, dirs, files in os.walk(path):  # never descends into symlinked folders
            for name in sorted(dirs):
                _regular(Path(folder) / name, str(Path(folder) / name))
            for name in sorted(files):
                file = Path(folder) / name
                _regular(file, str(file))
                found.append((file.relative_to(path).as_posix(), file))
    if not found:
        raise LocalInputError(f"{path} holds no files")
    sources: dict[str, Path] = {}
    entries = []
    for relative, file in sorted(found):
        digest = sha256_of(file)
        sources.setdefault(digest, file)
        entries.append(ManifestEntry(path=relative, sha256=digest, size=file.stat().st_size))
    try:
        return LocalFiles(Manifest(files=entries), sources)
    except ValidationError as exc:
        problem = exc.errors()[0]
        where = ".".join(str(part) for part in problem["loc"])
        raise LocalInputError(f"{path}: {where}: {problem['msg']}") from None
