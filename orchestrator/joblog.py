"""Reading a job's stdout/stderr while it runs, and after it was collected.

While the job runs, its stdouterr files grow on the cluster's file share; they
are read through the gateway by byte offset, so each call fetches only what is
new. Once collect_outputs has copied them into the artifacts folder, the same
offsets continue there (the bytes are the same).
"""

from __future__ import annotations

import time
from collections import deque
from pathlib import Path

from orchestrator.artifacts import LogStream, RunArtifacts
from orchestrator.azure.errors import AzureGatewayError
from orchestrator.azure.gateway import AzureGateway, Gateway
from orchestrator.domain.naming import azure_names
from orchestrator.domain.status import RunStatus, Step
from orchestrator.settings import Settings
from orchestrator.store import RunRecord

# One read fetches at most this much, so a huge log cannot stall a live view.
MAX_READ_BYTES = 1 << 20


class JobLogReader:
    def __init__(
        self,
        settings: Settings,
        stream: LogStream = "stdout",
        gateway: Gateway | None = None,
        min_live_interval: float = 2.0,
    ) -> None:
        self.settings = settings
        # A live read costs two storage requests; a view redrawing several
        # times a second still reads the share at most this often.
        self.min_live_interval = min_live_interval
        self._next_live_read = 0.0
        self.stream: LogStream = stream
        self.file_name = f"{stream}.txt"
        self._gateway = gateway
        self._url: str | None = None
        self.offset = 0

    def collected_path(self, run_id: str) -> Path:
        return RunArtifacts.of(self.settings.artifacts_dir, run_id).log(self.stream)

    def read_new(self, record: RunRecord) -> str:
        """Text appended since the previous call ("" when nothing new or not readable yet)."""
        return self.read_new_bytes(record).decode("utf-8", errors="replace")

    def read_new_bytes(self, record: RunRecord) -> bytes:
        """The bytes appended since the previous call, as the job wrote them."""
        collected = self.collected_path(record.run_id)
        if collected.is_file():
            with collected.open("rb") as log:
                log.seek(self.offset)
                data = log.read()
        elif self._job_started(record) and time.monotonic() >= self._next_live_read:
            self._next_live_read = time.monotonic() + self.min_live_interval
            data = self._read_live(record)
        else:
            data = b""
        self.offset += len(data)
        return data

    @staticmethod
    def _job_started(record: RunRecord) -> bool:
        return record.status is RunStatus.RUNNING and Step.POLL_JOB in record.steps

    def _read_live(self, record: RunRecord) -> bytes:
        # Best effort: a log that cannot be read now (job not started on its
        # node, a throttled call) is read on the next call instead.
        try:
            gateway = self._gateway or AzureGateway(self.settings)
            self._gateway = gateway
            if self._url is None:
                names = azure_names(
                    record.run_id, record.spec, self.settings, record.sweep_id
                )
                files = gateway.list_output_files(names, "stdouterr")
                self._url = next(
                    (f.download_url for f in files if f.name.endswith(self.file_name)), None
                )
                if self._url is None:
                    return b""
            size = gateway.file_size(self._url)
            if size <= self.offset:
                return b""
            end = min(size, self.offset + MAX_READ_BYTES) - 1
            return gateway.read_range(self._url, self.offset, end)
        except AzureGatewayError:
            return b""


class LogTail:
    """The last N lines of a job's log, fed by a JobLogReader."""

    def __init__(self, reader: JobLogReader, lines: int = 12) -> None:
        self.reader = reader
        self.lines: deque[str] = deque(maxlen=lines)
        self._partial = ""

    def update(self, record: RunRecord) -> list[str]:
        text = self._partial + self.reader.read_new(record)
        *complete, self._partial = text.split("\n")
        # After a carriage return (a progress bar redrawing its line), what
        # the job's own terminal would show: the last redraw.
        self.lines.extend(line.rstrip("\r").rsplit("\r", 1)[-1] for line in complete)
        return list(self.lines)
