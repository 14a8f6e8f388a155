"""A run's collected files: `<artifacts_dir>/<run_id>/`, and nothing outside it.

One rule for every reader and writer: collect_outputs writes here, the log
reader, the CLI and the API read here, all through RunArtifacts, so they agree
on the folder, on what is listed, and on which paths may be served.

Layout: ``stdout.txt`` and ``stderr.txt`` (the job's logs) at the top, and
``outputs/<OUTPUT_ID>/...`` for every output directory of the spec.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Literal

LogStream = Literal["stdout", "stderr"]


class OutsideArtifacts(ValueError):
    """A path that tries to leave the run's folder (absolute, `..`, NUL)."""


class ArtifactNotFound(LookupError):
    """No regular file by that path inside the run's folder (symlinks out included)."""


@dataclass(frozen=True)
class ArtifactFile:
    path: str  # relative to the run's folder, with "/" separators
    size: int


@dataclass(frozen=True)
class RunArtifacts:
    root: Path

    @classmethod
    def of(cls, artifacts_dir: Path, run_id: str) -> RunArtifacts:
        return cls((artifacts_dir / run_id).resolve())

    def log(self, stream: LogStream) -> Path:
        return self.root / f"{stream}.txt"

    def output_dir(self, output_id: str) -> Path:
        return self.root / "outputs" / output_id

    @staticmethod
    def safe_relative(name: str) -> Path:
        """A name from a remote listing as a relative path that cannot escape
        its folder: empty, `.` and `..` parts are dropped."""
        parts = [p for p in Path(name).parts if p not in ("", ".", "..", "/")]
        return Path(*parts) if parts else Path("_")

    def files(self) -> list[ArtifactFile]:
        """Every regular file inside the folder, sorted; symlinks leading out are skipped."""
        if not self.root.is_dir():
            return []
        found: list[ArtifactFile] = []
        for folder, _dirs, names in os.walk(self.root):  # does not follow symlinked folders
            for name in names:
                path = Path(folder) / name
                target = path.resolve()
                if target.is_relative_to(self.root) and target.is_file():
                    relative = path.relative_to(self.root).as_posix()
                    found.append(ArtifactFile(relative, target.stat().st_size))
        return sorted(found, key=lambda item: item.path)

    @staticmethod
    def check_relative(relative: str) -> None:
        """OutsideArtifacts for a path that tries to leave the run's folder."""
        parts = PurePosixPath(relative).parts
        if not parts or relative.startswith("/") or ".." in parts or "\0" in relative:
            raise OutsideArtifacts(relative)

    def resolve(self, relative: str) -> Path:
        """The regular file `relative` names inside the folder.

        Raises OutsideArtifacts for a path that tries to leave it, and
        ArtifactNotFound for anything that is not a regular file inside it.
        """
        self.check_relative(relative)
        target = (self.root / relative).resolve()
        if not target.is_relative_to(self.root) or not target.is_file():
            raise ArtifactNotFound(relative)
        return target
