"""Transport-neutral request/response types and the route table.

Routes are plain functions (request in, response out); the server module owns
sockets, TLS, fault injection and statistics, the model modules own state.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

Service = Literal["arm", "files", "control"]


class Headers(dict[str, str]):
    """Case-insensitive header map (keys are stored lower-cased)."""

    def __init__(self, items: dict[str, str] | None = None) -> None:
        super().__init__()
        for key, value in (items or {}).items():
            self[key] = value

    def __setitem__(self, key: str, value: str) -> None:
        super().__setitem__(key.lower(), value)

    def __getitem__(self, key: str) -> str:
        return super().__getitem__(key.lower())

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and super().__contains__(key.lower())

    def get(self, key: str, default: Any = None) -> Any:
        return super().get(key.lower(), default)


@dataclass
class Request:
    method: str
    path: str  # percent-decoded URL path, without the query string
    raw_path: str  # the request target exactly as sent (path + query), for signatures
    query: dict[str, str]  # decoded query parameters; a repeated key keeps its last value
    headers: Headers
    body: bytes = b""
    base_url: str = ""  # scheme://host:port the client used, for absolute URLs in responses

    def json(self) -> Any:
        """The body as JSON; raises HttpError(400) when it is not."""
        if not self.body:
            return None
        try:
            return json.loads(self.body)
        except ValueError as exc:
            raise HttpError(
                400, "InvalidRequestContent", f"request body is not valid JSON: {exc}"
            ) from exc


@dataclass
class Response:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


class HttpError(Exception):
    """Raised by a route to answer with an error body in its service's shape."""

    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


def json_response(status: int, obj: Any, headers: dict[str, str] | None = None) -> Response:
    out = {"Content-Type": "application/json; charset=utf-8"}
    out.update(headers or {})
    return Response(status, json.dumps(obj).encode(), out)


def arm_error(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> Response:
    """The ARM error envelope: {"error": {"code", "message"}}."""
    return json_response(status, {"error": {"code": code, "message": message}}, headers)


Handler = Callable[[Request, dict[str, str]], Response]


@dataclass(frozen=True)
class Route:
    method: str
    pattern: re.Pattern[str]
    handler: Handler
    operation: str  # spec operationId, e.g. "Clusters_Create"; the key of stats and faults
    service: Service


class Router:
    """Ordered route table; the first route whose method and pattern match wins."""

    def __init__(self) -> None:
        self.routes: list[Route] = []

    def add(
        self, method: str, pattern: str, operation: str, service: Service = "arm"
    ) -> Callable[[Handler], Handler]:
        compiled = re.compile(pattern, re.IGNORECASE if service == "arm" else 0)

        def register(handler: Handler) -> Handler:
            self.routes.append(Route(method.upper(), compiled, handler, operation, service))
            return handler

        return register

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        for route in self.routes:
            if route.method != method.upper():
                continue
            found = route.pattern.fullmatch(path)
            if found:
                return route, {k: v for k, v in found.groupdict().items() if v is not None}
        return None
