"""Thread-safe counters behind GET /_emulator/stats (implements core.Stats)."""

from __future__ import annotations

import threading
from collections import defaultdict
from typing import Any


class StatsRecorder:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: defaultdict[str, defaultdict[str, int]] = defaultdict(
            lambda: defaultdict(int)
        )
        self._resources: dict[str, defaultdict[str, int]] = {
            "created": defaultdict(int),
            "deleted": defaultdict(int),
        }
        self._bytes_uploaded = 0
        self._bytes_downloaded = 0
        self._peaks: defaultdict[str, int] = defaultdict(int)

    def record_request(self, operation: str, outcome: str) -> None:
        with self._lock:
            self._requests[operation][outcome] += 1

    def record_resource(self, event: str, kind: str) -> None:
        with self._lock:
            self._resources.setdefault(event, defaultdict(int))[kind] += 1

    def record_peak(self, name: str, value: int) -> None:
        with self._lock:
            self._peaks[name] = max(self._peaks[name], value)

    def add_bytes_uploaded(self, count: int) -> None:
        with self._lock:
            self._bytes_uploaded += count

    def add_bytes_downloaded(self, count: int) -> None:
        with self._lock:
            self._bytes_downloaded += count

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "requests": {op: dict(outcomes) for op, outcomes in self._requests.items()},
                "resources": {event: dict(kinds) for event, kinds in self._resources.items()},
                "bytes_uploaded": self._bytes_uploaded,
                "bytes_downloaded": self._bytes_downloaded,
                # Highest counts seen at once since the last clear ("jobs": jobs that
                # existed, "jobs_running": jobs running).
                "peaks": dict(self._peaks),
            }

    def clear(self) -> None:
        with self._lock:
            self._requests.clear()
            for kinds in self._resources.values():
                kinds.clear()
            self._bytes_uploaded = 0
            self._bytes_downloaded = 0
            self._peaks.clear()
