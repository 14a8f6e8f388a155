"""Live metrics of a sweep's running trials: read from each job's stdout on its
share, by byte offset, so every tick fetches only the bytes printed since.

Only complete lines are parsed (the offset stays at the last newline), with
the run's own metrics parser, so a trial's live series is the series its run
record gets once collected. The stdout download URL carries a SAS signature:
it is kept in this process's memory only, never in a record.
"""

from __future__ import annotations

from orchestrator.azure.errors import AzureGatewayError
from orchestrator.azure.gateway import Gateway
from orchestrator.azure.job_params import STDOUTERR_OUTPUT_ID
from orchestrator.domain.naming import AzureNames
from orchestrator.observability.training_metrics import parse_metrics

# At most this much is read per trial per tick: a chatty job cannot stall a tick.
MAX_READ_BYTES = 1 << 20
# Stdout URLs by job name, in this worker process (bounded: a sweep has at most
# max_concurrent_trials running at once, and finished ones are dropped).
_STDOUT_URLS: dict[str, str] = {}
_MAX_URLS = 4096


def read_new_values(
    gateway: Gateway, names: AzureNames, metric: str, offset: int
) -> tuple[list[float], int]:
    """Values of `metric` printed after byte `offset` of the job's stdout, and
    the new offset. Best effort: what cannot be read now is read next tick."""
    try:
        url = _STDOUT_URLS.get(names.job)
        if url is None:
            files = gateway.list_output_files(names, STDOUTERR_OUTPUT_ID)
            url = next(
                (f.download_url for f in files if f.name.endswith("stdout.txt") and f.download_url),
                None,
            )
            if url is None:
                return [], offset
            if len(_STDOUT_URLS) >= _MAX_URLS:
                _STDOUT_URLS.clear()
            _STDOUT_URLS[names.job] = url
        size = gateway.file_size(url)
        if size <= offset:
            return [], offset
        end = min(size, offset + MAX_READ_BYTES) - 1
        data = gateway.read_range(url, offset, end)
    except AzureGatewayError:
        return [], offset
    complete = data.rfind(b"\n") + 1
    if complete == 0:
        # No full line yet; a line longer than a whole read is skipped.
        return [], offset + (len(data) if len(data) >= MAX_READ_BYTES else 0)
    parsed = parse_metrics(data[:complete].decode("utf-8", errors="replace"))
    return list(parsed.series.get(metric, [])), offset + complete


def forget(job: str) -> None:
    _STDOUT_URLS.pop(job, None)
