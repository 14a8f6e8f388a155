"""Jobs_ListOutputFiles: the files of a job's output directory, with SAS download URLs."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from emulator.batchai.records import Job
from emulator.core import EmulatorContext
from emulator.errors import BadRequest


def list_files(
    ctx: EmulatorContext,
    job: Job,
    directory_id: str,
    subdir: str,
    expiry_minutes: int,
    limit: int,
    base_url: str,
    preview: bool,
) -> list[dict[str, Any]]:
    """Called under the Batch AI lock (every route is), so the job cannot change meanwhile."""
    layout = job.layout
    known = {d["id"].lower() for d in job.properties.get("outputDirectories") or []}
    if directory_id.lower() != "stdouterr" and directory_id.lower() not in known:
        raise BadRequest(
            "InvalidParameter",
            f"outputdirectoryid: the job has no output directory '{directory_id}'",
        )
    if layout is None:
        return []  # the job has not started: nothing has been written yet
    if directory_id.lower() == "stdouterr":
        root = layout.stdouterr_dir
    else:
        root = next(p for i, p in layout.output_dirs.items() if i.lower() == directory_id.lower())
    folder = (root / subdir).resolve()
    if not folder.is_relative_to(root.resolve()):
        raise BadRequest("InvalidParameter", "directory: must stay inside the output directory")
    if not folder.is_dir():
        return []
    items: list[dict[str, Any]] = []
    entries = [e for e in sorted(folder.iterdir(), key=lambda p: p.name) if not e.is_symlink()]
    for entry in entries[:limit]:
        # A symlink the job wrote is never listed: its target may be anything the
        # job's user can read, or another run's files on the same share.
        if entry.is_dir():
            if not preview:
                items.append({"name": entry.name, "fileType": "directory"})
            continue
        url = _download_url(ctx, job.shares, entry, base_url, expiry_minutes)
        info = entry.stat()
        item: dict[str, Any] = {
            "name": entry.name,
            "downloadUrl": url,
            "properties": {
                "lastModified": _mtime(info.st_mtime),
                "contentLength": info.st_size,
            },
        }
        if not preview:
            item["fileType"] = "file"
        items.append(item)
    return items


def _download_url(
    ctx: EmulatorContext, shares: dict[str, Path], path: Path, base_url: str, minutes: int
) -> str:
    for share, root in shares.items():
        resolved_root = root.resolve()
        if path.is_relative_to(resolved_root):
            relative = path.relative_to(resolved_root).as_posix()
            return ctx.file_shares.sas_url(base_url, share, relative, minutes * 60)
    raise BadRequest(
        "InvalidParameter",
        "outputdirectoryid: files can be listed only for output directories on an Azure File "
        "share mount",
    )


def _mtime(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
