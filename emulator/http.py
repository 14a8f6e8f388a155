"""Transport-neutral request/response types, the route table and the api-version check.

Routes are plain functions (request in, response out); the server module owns
sockets, TLS, fault injection and statistics, the model modules own state. A service
registers its routes with `register(router, ctx)`: ARM-style routes through Router.add
(with the api-versions they accept), a service that picks its operation from more than
the path (Files: restype/comp query parameters) through Router.add_dispatcher.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from emulator.errors import BadRequest

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
        """The body as JSON; raises errors.BadRequest when it is not."""
        if not self.body:
            return None
        try:
            return json.loads(self.body)
        except ValueError as exc:
            raise BadRequest(
                "InvalidRequestContent", f"request body is not valid JSON: {exc}"
            ) from exc


@dataclass
class Response:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


def json_response(status: int, obj: Any, headers: dict[str, str] | None = None) -> Response:
    out = {"Content-Type": "application/json; charset=utf-8"}
    out.update(headers or {})
    return Response(status, json.dumps(obj).encode(), out)


Handler = Callable[[Request, dict[str, str]], Response]
# A dispatcher returns (operation, handler) for the requests its service serves.
Dispatcher = Callable[[Request], tuple[str, Callable[[Request], Response]] | None]


def require_api_version(request: Request, supported: frozenset[str]) -> None:
    """The one api-version check (?api-version=), applied by Router.add to every route
    registered with api_versions; the errors are ARM's, whatever the provider."""
    version = request.query.get("api-version")
    if not version:
        raise BadRequest(
            "MissingApiVersionParameter",
            "The api-version query parameter (?api-version=) is required for all requests.",
        )
    if version not in supported:
        raise BadRequest(
            "InvalidApiVersionParameter",
            f"The api-version '{version}' is invalid. The supported versions are "
            f"'{', '.join(sorted(supported, reverse=True))}'.",
        )


@dataclass(frozen=True)
class Route:
    method: str
    pattern: re.Pattern[str]
    handler: Handler  # with the api-version check in front when the route declares versions
    operation: str  # spec operationId, e.g. "Clusters_Create"; the key of stats and faults
    service: Service


class Router:
    """Ordered route table; the first route whose method and pattern match wins. Requests
    no route matches go to the dispatchers, in the order they were added."""

    def __init__(self) -> None:
        self.routes: list[Route] = []
        self.dispatchers: list[tuple[Service, Dispatcher]] = []
        self._services: dict[str, Service] = {}  # operation -> service

    def add(
        self,
        method: str,
        pattern: str,
        operation: str,
        service: Service = "arm",
        api_versions: frozenset[str] | None = None,
    ) -> Callable[[Handler], Handler]:
        """Register the decorated handler; with api_versions, a request whose ?api-version=
        is missing or not one of them is answered 400 before the handler runs."""
        compiled = re.compile(pattern, re.IGNORECASE if service == "arm" else 0)

        def register(handler: Handler) -> Handler:
            served = handler if api_versions is None else _versioned(handler, api_versions)
            self.routes.append(Route(method.upper(), compiled, served, operation, service))
            self._services.setdefault(operation, service)
            return handler

        return register

    def add_dispatcher(
        self, service: Service, dispatch: Dispatcher, operations: frozenset[str]
    ) -> None:
        """operations: every name dispatch may return (service_of knows them up front)."""
        self.dispatchers.append((service, dispatch))
        for operation in operations:
            self._services.setdefault(operation, service)

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        for route in self.routes:
            if route.method != method.upper():
                continue
            found = route.pattern.fullmatch(path)
            if found:
                return route, {k: v for k, v in found.groupdict().items() if v is not None}
        return None

    def dispatch(
        self, request: Request
    ) -> tuple[str, Service, Callable[[Request], Response]] | None:
        for service, dispatch in self.dispatchers:
            found = dispatch(request)
            if found is not None:
                operation, handler = found
                return operation, service, handler
        return None

    def service_of(self, operation: str) -> Service | None:
        return self._services.get(operation)


def _versioned(handler: Handler, supported: frozenset[str]) -> Handler:
    def checked(request: Request, params: dict[str, str]) -> Response:
        require_api_version(request, supported)
        return handler(request, params)

    return checked
