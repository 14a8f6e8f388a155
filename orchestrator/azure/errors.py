"""What a failed Azure call becomes: TransientAzureError (retry the step later,
with the server's Retry-After) or PermanentAzureError (end the run with a
FailureReason). Messages are redacted: they never carry a secret.
"""

from __future__ import annotations

import re
from typing import Any

import requests
from azure.common import AzureException, AzureHttpError
from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    ServiceRequestError,
    ServiceResponseError,
)

from orchestrator.domain.status import FailureReason
from orchestrator.observability.logs import redact_text


class AzureGatewayError(Exception):
    """Base of the classified errors; messages never contain secrets."""

    def __init__(self, message: str, *, request_id: str | None = None) -> None:
        super().__init__(message)
        self.request_id = request_id


class TransientAzureError(AzureGatewayError):
    """Worth retrying later: throttling, 5xx, connection errors."""

    def __init__(
        self, message: str, *, retry_after: float | None = None, request_id: str | None = None
    ) -> None:
        super().__init__(message, request_id=request_id)
        self.retry_after = retry_after


class PermanentAzureError(AzureGatewayError):
    """Retrying cannot help; the run ends failed with `reason`."""

    def __init__(
        self, message: str, *, reason: FailureReason, request_id: str | None = None
    ) -> None:
        super().__init__(message, request_id=request_id)
        self.reason = reason


_QUOTA_CODES = re.compile(r"quota|limitexceeded|corequota", re.IGNORECASE)


def _parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def classify_status(
    status: int,
    message: str,
    *,
    code: str = "",
    retry_after: float | None = None,
    request_id: str | None = None,
) -> AzureGatewayError:
    """The classified error for an HTTP failure status."""
    text = redact_text(f"{code + ': ' if code else ''}{message}")[:500]
    if status == 429 or status >= 500 or status == 408:
        return TransientAzureError(
            f"HTTP {status}: {text}", retry_after=retry_after, request_id=request_id
        )
    if _QUOTA_CODES.search(code) or _QUOTA_CODES.search(message[:200]):
        return PermanentAzureError(
            f"HTTP {status}: {text}", reason=FailureReason.QUOTA, request_id=request_id
        )
    if status in (401, 403):
        return PermanentAzureError(
            f"HTTP {status}: {text}", reason=FailureReason.AUTH, request_id=request_id
        )
    if status == 400:
        return PermanentAzureError(
            f"HTTP {status}: {text}", reason=FailureReason.INVALID_SPEC, request_id=request_id
        )
    return PermanentAzureError(
        f"HTTP {status}: {text}", reason=FailureReason.AZURE_ERROR, request_id=request_id
    )


def classify(exc: BaseException, request_id: str | None = None) -> AzureGatewayError:
    """Map any SDK / transport exception to Transient or Permanent."""
    if isinstance(exc, AzureGatewayError):
        return exc
    if isinstance(exc, ClientAuthenticationError) and exc.response is None:
        return PermanentAzureError(
            f"authentication failed: {redact_text(str(exc))[:300]}",
            reason=FailureReason.AUTH,
            request_id=request_id,
        )
    if isinstance(exc, HttpResponseError) and exc.response is not None:
        headers: Any = getattr(exc.response, "headers", {})
        code = ""
        if exc.error is not None and exc.error.code:
            code = str(exc.error.code)
        message = exc.error.message if exc.error is not None and exc.error.message else exc.reason
        return classify_status(
            exc.status_code or 0,
            str(message or ""),
            code=code,
            retry_after=_parse_retry_after(headers.get("Retry-After")),
            request_id=headers.get("x-ms-request-id") or request_id,
        )
    if isinstance(exc, ServiceRequestError | ServiceResponseError | AzureError):
        return TransientAzureError(
            f"connection error: {redact_text(str(exc))[:300]}", request_id=request_id
        )
    if isinstance(exc, AzureHttpError):
        return classify_status(
            int(exc.status_code or 0),
            str(exc).splitlines()[0] if str(exc) else "",
            code=getattr(exc, "error_code", "") or "",
            request_id=request_id,
        )
    if isinstance(exc, AzureException | requests.ConnectionError | requests.Timeout):
        return TransientAzureError(
            f"connection error: {redact_text(str(exc))[:300]}", request_id=request_id
        )
    if isinstance(exc, requests.HTTPError) and exc.response is not None:
        return classify_status(
            exc.response.status_code,
            exc.response.reason or "",
            retry_after=_parse_retry_after(exc.response.headers.get("Retry-After")),
            request_id=exc.response.headers.get("x-ms-request-id") or request_id,
        )
    if isinstance(exc, OSError | requests.RequestException):
        return TransientAzureError(
            f"I/O error: {redact_text(str(exc))[:300]}", request_id=request_id
        )
    raise exc
