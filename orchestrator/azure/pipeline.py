"""How every SDK request is sent: the credential, a bounded inline retry, and
a count of each attempt by operation and outcome (with its x-ms-request-id)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from azure.core.credentials import AccessToken
from azure.core.pipeline import PipelineRequest, PipelineResponse
from azure.core.pipeline.policies import RetryPolicy, SansIOHTTPPolicy
from azure.storage.common.retry import ExponentialRetry
from prometheus_client import Counter

from orchestrator.azure.operations import request_operation

# A single SDK call may retry inline, but never sleep longer than this: longer
# waits (a throttling Retry-After of 30 s) go back to Celery as a countdown so
# the worker process is free meanwhile.
MAX_INLINE_RETRY_SLEEP_SECONDS = 2.0
INLINE_RETRY_TOTAL = 2

# The storage SDK logs every non-2xx answer at ERROR, including the expected
# 404 of "does this file exist yet"; the gateway classifies and logs failures.
logging.getLogger("azure.storage.common.storageclient").setLevel(logging.CRITICAL)
# azure-core logs every request and response at INFO; the step logs say what
# happened (with the x-ms-request-id), and the counter below counts requests.
logging.getLogger("azure.core.pipeline.policies.http_logging_policy").setLevel(logging.WARNING)
logging.getLogger("azure.identity").setLevel(logging.WARNING)

AZURE_REQUESTS = Counter(
    "orchestrator_azure_requests_total",
    "Requests the orchestrator sent to Azure (or the emulator), by operation and outcome.",
    ["operation", "outcome"],
)


class StaticTokenCredential:
    """A fixed bearer token: the emulator's own (AZURE_EMULATOR_TOKEN)."""

    def __init__(self, token: str) -> None:
        self._token = token

    def get_token(
        self,
        *scopes: str,
        claims: str | None = None,
        tenant_id: str | None = None,
        enable_cae: bool = False,
        **kwargs: Any,
    ) -> AccessToken:
        return AccessToken(self._token, int(time.time()) + 3600)


class BoundedRetryPolicy(RetryPolicy):  # type: ignore[type-arg]
    """azure-core's RetryPolicy, but a Retry-After longer than the cap is not
    slept inline: the response is handed back so the caller can reschedule."""

    def __init__(self, max_sleep: float = MAX_INLINE_RETRY_SLEEP_SECONDS, **kwargs: Any) -> None:
        kwargs.setdefault("retry_total", INLINE_RETRY_TOTAL)
        kwargs.setdefault("retry_backoff_factor", 0.3)
        kwargs.setdefault("retry_backoff_max", max_sleep)
        super().__init__(**kwargs)
        self._max_sleep = max_sleep

    def is_retry(self, settings: dict[str, Any], response: PipelineResponse[Any, Any]) -> bool:
        retry_after = self.get_retry_after(response)
        if retry_after is not None and retry_after > self._max_sleep:
            return False
        return bool(super().is_retry(settings, response))

    def _sleep_for_retry(self, response: PipelineResponse[Any, Any], transport: Any) -> bool:
        retry_after = self.get_retry_after(response)
        if retry_after:
            transport.sleep(min(retry_after, self._max_sleep))
            return True
        return False


class RequestRecorder:
    """Counts requests per operation/outcome and remembers the last x-ms-request-id."""

    def __init__(self, sink: Callable[[str, str], None] | None = None) -> None:
        self._local = threading.local()
        # Optional extra destination (orchestrator.observability.azure_stats: a Redis hash
        # shared by all workers, read by the API's /metrics).
        self.sink = sink

    @property
    def last_request_id(self) -> str | None:
        value: str | None = getattr(self._local, "request_id", None)
        return value

    def record(self, operation: str, outcome: str, request_id: str | None) -> None:
        AZURE_REQUESTS.labels(operation=operation, outcome=outcome).inc()
        if self.sink is not None:
            self.sink(operation, outcome)
        # Even None: an attempt that got no answer must not keep an earlier
        # request's id, which would then be blamed for this failure.
        self._local.request_id = request_id

    def forget_request_id(self) -> None:
        """Start of a gateway call: no id until one of its requests answers."""
        self._local.request_id = None


class CountingPolicy(SansIOHTTPPolicy[Any, Any]):
    """Per-retry pipeline policy: every attempt is counted, with its outcome."""

    def __init__(self, recorder: RequestRecorder) -> None:
        self._recorder = recorder

    def on_response(
        self, request: PipelineRequest[Any], response: PipelineResponse[Any, Any]
    ) -> None:
        self._recorder.record(
            request_operation(request),
            str(response.http_response.status_code),
            response.http_response.headers.get("x-ms-request-id"),
        )

    def on_exception(self, request: PipelineRequest[Any]) -> None:
        self._recorder.record(request_operation(request), "error", None)


_STORAGE_RETRY = ExponentialRetry(
    initial_backoff=0.2, increment_base=2, max_attempts=INLINE_RETRY_TOTAL, random_jitter_range=0
)


def bounded_storage_retry(context: Any) -> float | None:
    """Storage SDK retry hook: its ExponentialRetry (which rewinds bodies and
    counts attempts), with each sleep capped; longer waits go back to Celery."""
    interval = _STORAGE_RETRY.retry(context)
    return None if interval is None else min(float(interval), MAX_INLINE_RETRY_SLEEP_SECONDS)
