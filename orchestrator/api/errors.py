"""One error shape for every failure: ``{"message": "<one line>", "detail": ...}``.

``message`` is for people and always names the offending field when there is
one (``spec.job.toolkit: Input should be 'cntk', ...``); ``detail`` keeps
FastAPI's machine-readable form (a string, or a list of ``{loc, msg, type}``).
Validation details never echo the submitted input back, so nothing a caller
sent (or a secret in it) is reflected into responses or logs.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import redis
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from kombu.exceptions import OperationalError as BrokerUnavailable
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from orchestrator.azure.errors import AzureGatewayError, TransientAzureError
from orchestrator.domain.spec import SpecError
from orchestrator.store import RunNotFound, StoreContention

logger = logging.getLogger("orchestrator.api")

# The answers every authenticated route may give, for the OpenAPI document.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing, wrong or revoked bearer token"},
    403: {"description": "The key lacks the scope this route needs (named in the message)"},
    429: {"description": "The key is over its rate limit; retry after Retry-After seconds"},
    502: {"description": "The file share (Azure Files) refused the request"},
    503: {"description": "Redis or the file share unreachable; retry after Retry-After seconds"},
}

# Seconds a client should wait before retrying while Redis is unreachable.
REDIS_RETRY_AFTER_SECONDS = 5


def error_response(
    status_code: int,
    message: str,
    detail: Any = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse(
        {"message": message, "detail": message if detail is None else detail},
        status_code=status_code,
        headers=headers,
    )


def field_error(loc: Sequence[str | int], message: str) -> RequestValidationError:
    """A 422 for a check done outside pydantic, in the same shape as pydantic's."""
    return RequestValidationError([{"loc": tuple(loc), "msg": message, "type": "value_error"}])


def _field_path(loc: Sequence[Any]) -> str:
    # "body" is where the field sits in the request, not part of its name.
    parts = [str(part) for part in loc]
    if parts and parts[0] == "body":
        parts = parts[1:]
    return ".".join(parts) or "body"


def describe_validation_errors(errors: Sequence[Any]) -> tuple[str, list[dict[str, Any]]]:
    """The one-line message and the input-free detail list for validation errors."""
    detail: list[dict[str, Any]] = []
    problems: list[str] = []
    for item in errors:
        loc = list(item.get("loc", ()))
        msg = str(item.get("msg", "invalid value")).removeprefix("Value error, ")
        detail.append({"loc": loc, "msg": msg, "type": item.get("type", "value_error")})
        if item.get("type") == "json_invalid":  # loc is (body, character offset)
            problems.append(f"body: malformed JSON at character {loc[-1]}")
            continue
        problems.append(f"{_field_path(loc)}: {msg}")
    return "; ".join(problems) or "invalid request", detail


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    message, detail = describe_validation_errors(exc.errors())
    return error_response(422, message, detail)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    message = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
    return error_response(exc.status_code, message, headers=exc.headers)


async def _spec_error(request: Request, exc: Exception) -> JSONResponse:
    # SpecError messages already start with the field path ("job.toolkit: ...");
    # `detail` keeps the documented 422 shape (a list, as pydantic's errors).
    message = str(exc)
    return error_response(
        422, message, detail=[{"loc": ["body"], "msg": message, "type": "value_error"}]
    )


async def _run_not_found(request: Request, exc: Exception) -> JSONResponse:
    return error_response(404, f"run_id: {exc}")


async def _redis_unavailable(request: Request, exc: Exception) -> JSONResponse:
    # The exception text can carry the Redis URL (and its password): log the type only.
    logger.warning(
        "redis unavailable during %s %s: %s", request.method, request.url.path, type(exc).__name__
    )
    return error_response(
        503,
        "run store unavailable (Redis is not reachable); retry later",
        headers={"Retry-After": str(REDIS_RETRY_AFTER_SECONDS)},
    )


async def _share_error(request: Request, exc: Exception) -> JSONResponse:
    # Gateway errors are already redacted (orchestrator/azure/errors.py).
    logger.warning("file share error during %s %s: %s", request.method, request.url.path, exc)
    if isinstance(exc, TransientAzureError):
        return error_response(
            503,
            f"file share unavailable, retry later: {exc}",
            headers={"Retry-After": str(max(1, round(exc.retry_after or 5)))},
        )
    return error_response(502, f"the file share refused the request: {exc}")


async def _broker_unavailable(request: Request, exc: Exception) -> JSONResponse:
    # The run may be created but not yet dispatched: the same request again (same
    # Idempotency-Key) dispatches it, and the reaper does if nobody retries.
    logger.warning("broker unavailable during %s %s", request.method, request.url.path)
    return error_response(
        503,
        "task broker unavailable; retry with the same Idempotency-Key",
        headers={"Retry-After": str(REDIS_RETRY_AFTER_SECONDS)},
    )


async def _contention(request: Request, exc: Exception) -> JSONResponse:
    # Many writers raced on one run; a retry a moment later succeeds.
    return error_response(503, f"run_id: {exc}; retry", headers={"Retry-After": "1"})


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(SpecError, _spec_error)
    app.add_exception_handler(RunNotFound, _run_not_found)
    app.add_exception_handler(StoreContention, _contention)
    app.add_exception_handler(BrokerUnavailable, _broker_unavailable)
    app.add_exception_handler(AzureGatewayError, _share_error)
    app.add_exception_handler(redis.exceptions.ConnectionError, _redis_unavailable)
    app.add_exception_handler(redis.exceptions.TimeoutError, _redis_unavailable)
    app.add_exception_handler(redis.exceptions.BusyLoadingError, _redis_unavailable)


# ----------------------------------------------------------------- body limit
class BodyTooLarge(StarletteHTTPException):
    """Raised from receive(); an HTTPException so FastAPI's body parsing lets it through."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body exceeds the limit of {limit} bytes")


class BodyLimitMiddleware:
    """413 for bodies over `max_bytes`: by Content-Length before reading, and by
    counting the bytes actually received (chunked or lying clients)."""

    def __init__(
        self, app: ASGIApp, max_bytes: int, by_prefix: Sequence[tuple[str, int]] = ()
    ) -> None:
        self.app = app
        self.default_max_bytes = max_bytes
        # (path prefix, limit): the first match wins (uploads carry data, not specs).
        self.by_prefix = tuple(by_prefix)

    def _limit(self, path: str) -> int:
        for prefix, limit in self.by_prefix:
            if path.startswith(prefix):
                return limit
        return self.default_max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        max_bytes = self._limit(scope["path"])
        declared = _content_length(scope)
        if declared == -1:
            await error_response(400, "Content-Length header is not a number")(scope, receive, send)
            return
        if declared is not None and declared > max_bytes:
            await self._too_large(scope, receive, send, max_bytes)
            return

        received = 0
        response_started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > max_bytes:
                    raise BodyTooLarge(max_bytes)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            # Normally the exception handlers answer it; this catches reads
            # made outside a route (before the handlers are in the stack).
            if response_started:
                raise
            await self._too_large(scope, receive, send, max_bytes)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        exc = BodyTooLarge(limit)
        await error_response(413, str(exc.detail))(scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    """Declared body size; None when absent, -1 when malformed."""
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return -1
    return None
