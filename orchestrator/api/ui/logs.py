"""The job log the run page tails: live from the cluster's share while the job
runs (joblog.JobLogReader), then the collected stdout.txt from the run's share,
as `orchestrator logs` reads it. Read by byte offset, so each poll fetches only
what is new; the first read of a long log starts near its end."""

from __future__ import annotations

from dataclasses import dataclass

from orchestrator.azure.errors import AzureGatewayError
from orchestrator.azure.gateway import Gateway
from orchestrator.joblog import JobLogReader
from orchestrator.settings import Settings
from orchestrator.store import RunRecord

# A first read shows at most the last TAIL_BYTES; a poll reads at most READ_BYTES.
TAIL_BYTES = 64 * 1024
READ_BYTES = 256 * 1024
# A collected log larger than this is not streamed into a page (download it).
MAX_COLLECTED_BYTES = 32 * 1024 * 1024
LOG_NAME = "stdout.txt"


@dataclass(frozen=True)
class LogChunk:
    text: str
    offset: int  # where the next read starts
    done: bool  # nothing more will come (the run ended and its log was read)


def _collected(record: RunRecord, settings: Settings, gateway: Gateway, offset: int) -> LogChunk:
    stored = record.output_files.get(LOG_NAME)
    if stored is None or not stored.share_path:
        return LogChunk("", offset, True)
    share = stored.share or settings.azure_file_share
    found = gateway.share_file(share, stored.share_path)
    if found is None or found.size > MAX_COLLECTED_BYTES:
        return LogChunk("", offset, True)
    start = max(offset, found.size - TAIL_BYTES) if offset == 0 else offset
    if start >= found.size:
        return LogChunk("", found.size, True)
    data = b"".join(gateway.iter_file(share, stored.share_path, found.size))
    end = min(found.size, start + READ_BYTES)
    return LogChunk(data[start:end].decode("utf-8", errors="replace"), end, end >= found.size)


def read_log(record: RunRecord, settings: Settings, gateway: Gateway, offset: int) -> LogChunk:
    """What the job's stdout holds after `offset` (best effort: "" when unreadable)."""
    try:
        if record.terminal or LOG_NAME in record.output_files:
            return _collected(record, settings, gateway, offset)
        reader = JobLogReader(settings, "stdout", gateway=gateway, min_live_interval=0)
        reader.offset = offset
        data = reader.read_new_bytes(record)[:READ_BYTES]
        return LogChunk(data.decode("utf-8", errors="replace"), offset + len(data), False)
    except (AzureGatewayError, OSError):
        return LogChunk("", offset, record.terminal)
