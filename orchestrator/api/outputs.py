"""The run's artifacts on disk (`<artifacts_dir>/<run_id>/`), and nothing outside them."""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

from fastapi import HTTPException

from orchestrator.api.models import OutputFile


def run_artifacts_dir(artifacts_dir: Path, run_id: str) -> Path:
    return (artifacts_dir / run_id).resolve()


def list_output_files(root: Path) -> list[OutputFile]:
    """Every regular file under root (sorted), skipping symlinks that lead outside it."""
    if not root.is_dir():
        return []
    files: list[OutputFile] = []
    for folder, _dirs, names in os.walk(root):  # does not follow symlinked folders
        for name in names:
            path = Path(folder) / name
            target = path.resolve()
            if target.is_relative_to(root) and target.is_file():
                files.append(
                    OutputFile(path=path.relative_to(root).as_posix(), size=target.stat().st_size)
                )
    return sorted(files, key=lambda item: item.path)


def resolve_output(root: Path, relative: str) -> Path:
    """The file `relative` names inside root: 400 for a path that tries to leave
    it, 404 for anything that is not a regular file inside it (symlinks included)."""
    parts = PurePosixPath(relative).parts
    if not parts or relative.startswith("/") or ".." in parts or "\0" in relative:
        raise HTTPException(400, "path: must be a relative path inside the run's outputs")
    target = (root / relative).resolve()
    if not target.is_relative_to(root) or not target.is_file():
        raise HTTPException(404, f"path: no output file {relative!r} in this run")
    return target
