"""What the gateway answers: plain values, no SDK models."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class NodeCounts:
    idle: int
    preparing: int
    unusable: int
    running: int
    leaving: int
    target: int
    allocation_state: str
    errors: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class JobState:
    execution_state: str  # queued | running | terminating | succeeded | failed
    exit_code: int | None
    errors: list[str]
    start_time: datetime | None
    end_time: datetime | None

    @property
    def runtime_seconds(self) -> float | None:
        if self.start_time and self.end_time:
            return (self.end_time - self.start_time).total_seconds()
        return None


@dataclass(frozen=True)
class OutputFile:
    name: str  # path relative to the output directory
    download_url: str | None
    is_directory: bool
    size: int | None = None
    # Where the file lies on the share (from its download URL), for serving it later.
    share_path: str | None = None


@dataclass(frozen=True)
class ShareFile:
    """A file of the share: its path relative to the listed folder, size and Content-MD5."""

    path: str
    size: int
    md5: str | None = None


@dataclass(frozen=True)
class AzureResource:
    name: str
    created: datetime | None
    experiment: str | None = None  # jobs only
