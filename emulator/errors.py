"""The emulator's one error family, and the one place errors become responses.

A route raises an EmulatorError (or one of the per-status subclasses below); the server
renders it in the shape its service speaks: the ARM envelope {"error": {"code",
"message"}} as JSON for ARM, Batch AI and the control endpoints, the Azure Storage
<Error><Code/><Message/></Error> XML plus an x-ms-error-code header for Files.
Injected faults are errors of this family too (fault_error).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Literal
from xml.sax.saxutils import escape

if TYPE_CHECKING:
    from emulator.http import Response, Service

Shape = Literal["arm", "storage"]


class EmulatorError(Exception):
    """An error answer: HTTP status, service error code, message, extra headers."""

    status = 500

    def __init__(
        self,
        code: str,
        message: str,
        headers: dict[str, str] | None = None,
        *,
        status: int | None = None,
    ) -> None:
        super().__init__(message)
        if status is not None:
            self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})


class BadRequest(EmulatorError):
    status = 400


class Unauthorized(EmulatorError):
    status = 401


class Forbidden(EmulatorError):
    status = 403


class NotFound(EmulatorError):
    status = 404


class Conflict(EmulatorError):
    status = 409


class PayloadTooLarge(EmulatorError):
    status = 413


class RangeNotSatisfiable(EmulatorError):
    status = 416


class TooManyRequests(EmulatorError):
    status = 429


class InternalError(EmulatorError):
    status = 500


class ServiceUnavailable(EmulatorError):
    status = 503


def shape_of(service: Service) -> Shape:
    return "storage" if service == "files" else "arm"


def render(error: EmulatorError, service: Service, method: str) -> Response:
    """The response for an error raised while serving `service`."""
    # Imported here: emulator.http raises errors of this module (Request.json, versions).
    from emulator.http import Response

    if shape_of(service) == "storage":
        headers = {
            "x-ms-error-code": error.code,
            "Content-Type": "application/xml",
            **error.headers,
        }
        # A HEAD answer has no body; the client reads x-ms-error-code.
        body = b"" if method == "HEAD" else storage_error_body(error.code, error.message)
        return Response(error.status, body, headers)
    return Response(
        error.status,
        json.dumps({"error": {"code": error.code, "message": error.message}}).encode(),
        {"Content-Type": "application/json; charset=utf-8", **error.headers},
    )


def storage_error_body(code: str, message: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        f"<Error><Code>{escape(code)}</Code><Message>{escape(message)}</Message></Error>"
    ).encode()


def internal_error() -> InternalError:
    """What an unexpected exception in a route answers (details go to the log only)."""
    return InternalError("InternalError", "The server encountered an internal error.")


def fault_error(kind: str, service: Service, retry_after: int) -> EmulatorError:
    """The error an injected request fault (throttle, error500, error503) answers with, in
    the codes each real service uses: Storage throttles with 503 ServerBusy, ARM with 429."""
    retry = {"Retry-After": str(retry_after)}
    storage = shape_of(service) == "storage"
    if kind == "throttle":
        if storage:
            return ServiceUnavailable("ServerBusy", "The server is busy (throttled).", retry)
        return TooManyRequests(
            "TooManyRequests", "The request is being throttled (emulated fault).", retry
        )
    if kind == "error500":
        return InternalError(
            "InternalError" if storage else "InternalServerError",
            "The server encountered an internal error (emulated fault).",
        )
    return ServiceUnavailable(
        "ServerBusy" if storage else "ServiceUnavailable",
        "The service is unavailable (emulated fault).",
        retry,
    )
