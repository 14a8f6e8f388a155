"""Who is calling, what they may do and how often, as ASGI middleware: it answers
401, 403 and 429 before anything reads the request body, so a caller without the
right credentials learns nothing from validation errors, cannot make the API parse
(or buffer) what it sends, and a refused request writes nothing.

A caller is the bootstrap admin (ORCH_API_TOKEN) or a named key (store/apikeys.py),
looked up by its digest in Redis on every request -- no per-process cache, so a
revoke holds at once on every API process. The scope a route needs is declared
on the route itself (deps.requires); the middleware finds the route the request
will reach (ScopeTable) and reads that declaration, and the route's dependency
checks it again (which is also what documents the bearer scheme in OpenAPI).
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import anyio
import redis
from fastapi import APIRouter
from fastapi.dependencies.models import Dependant
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Receive, Scope, Send

from orchestrator.api.errors import REDIS_RETRY_AFTER_SECONDS, error_response
from orchestrator.api.ratelimit import KeyRateLimiter
from orchestrator.domain.access import (
    ALL_SCOPES,
    ANONYMOUS_NAME,
    BOOTSTRAP_NAME,
    RateLimit,
    grants,
)
from orchestrator.domain.access import Scope as AccessScope
from orchestrator.domain.notify import NotifySpec
from orchestrator.store.apikeys import KeyRing

logger = logging.getLogger("orchestrator.api")

# Open to anyone: load balancers probe /healthz; the docs describe, they do not act.
PUBLIC_PATHS = frozenset({"/healthz", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"})
UNAUTHORIZED_MESSAGE = (
    "missing, wrong or revoked bearer token (Authorization: Bearer <ORCH_API_TOKEN or an API key>)"
)


@dataclass(frozen=True)
class Caller:
    """The authenticated caller: a name (for audit), its scopes and its rate."""

    name: str
    scopes: frozenset[AccessScope]
    rate: RateLimit | None = None
    notify: NotifySpec | None = None  # the key's default webhook subscription

    def may(self, scope: AccessScope) -> bool:
        return grants(self.scopes, scope)


BOOTSTRAP = Caller(BOOTSTRAP_NAME, ALL_SCOPES)
ANONYMOUS = Caller(ANONYMOUS_NAME, ALL_SCOPES)


class ScopeCheck:
    """Marks a route as needing `scope` (see deps.requires); the middleware reads it."""

    def __init__(self, scope: AccessScope) -> None:
        self.scope = scope


def lacks_scope_message(caller: Caller, scope: AccessScope) -> str:
    return f"scope: key {caller.name!r} lacks the {scope.value!r} scope"


def over_rate_message(caller: Caller, retry_after: int) -> str:
    return (
        f"rate: key {caller.name!r} is over its limit of {caller.rate}; retry after {retry_after} s"
    )


def bearer_token(authorization: str) -> str | None:
    scheme, _, given = authorization.strip().partition(" ")
    return given.strip() if scheme.lower() == "bearer" and given.strip() else None


def _declared_scope(dependant: Dependant) -> AccessScope | None:
    for dependency in dependant.dependencies:
        if isinstance(dependency.call, ScopeCheck):
            return dependency.call.scope
        found = _declared_scope(dependency)
        if found is not None:
            return found
    return None


class ScopeTable:
    """Each route of the given routers with the scope it declares, matched the way
    the router will match the request (the routers' own routes, so no reliance on
    how an app flattens the routers it includes)."""

    def __init__(self, routers: Sequence[APIRouter]) -> None:
        self.routes: list[tuple[BaseRoute, AccessScope | None]] = []
        for router in routers:
            for route in router.routes:
                dependant = getattr(route, "dependant", None)
                declared = _declared_scope(dependant) if dependant is not None else None
                self.routes.append((route, declared))

    def required(self, scope: Scope) -> AccessScope | None:
        """The scope declared by the route this request reaches; None when it reaches
        none (the router then answers 404 or 405, which need no scope)."""
        for route, declared in self.routes:
            match, _ = route.matches(scope)
            if match is Match.FULL:
                return declared
        return None


# Who a request without a bearer token is by other means (the dashboard's
# session cookie, api/ui/), or None.
OtherCaller = Callable[[Scope], Awaitable["Caller | None"]]


class ApiKeyMiddleware:
    """401 without a known credential, 403 without the route's scope, 429 over the
    key's rate, for every HTTP request outside PUBLIC_PATHS; otherwise the caller
    goes to the route in `request.state.caller`.

    `token` None: serving unauthenticated (asked for explicitly): a request
    without a known key is the anonymous caller, with every scope.

    Paths under `own_auth_prefix` (the dashboard) authenticate themselves; a
    request without a bearer token is `other_caller`'s, when it names one."""

    def __init__(
        self,
        app: ASGIApp,
        token: str | None,
        keyring: KeyRing,
        limiter: KeyRateLimiter,
        scopes: ScopeTable,
        own_auth_prefix: str | None = None,
        other_caller: OtherCaller | None = None,
    ) -> None:
        self.app = app
        self.own_auth_prefix = own_auth_prefix
        self.other_caller = other_caller
        self.token = token
        self.scopes = scopes
        self.keyring = keyring
        self.limiter = limiter

    async def identify(self, authorization: str) -> Caller | None:
        given = bearer_token(authorization)
        if given is None:
            return ANONYMOUS if self.token is None else None
        # Constant-time comparison, so response timing does not leak the token.
        if self.token is not None and hmac.compare_digest(given.encode(), self.token.encode()):
            return BOOTSTRAP  # no Redis round trip for the bootstrap token
        # The lookup blocks on Redis: in a thread, as the sync routes run.
        key = await anyio.to_thread.run_sync(self.keyring.authenticate, given)
        if key is not None:
            return Caller(key.name, key.scopes, key.rate, key.notify)
        return ANONYMOUS if self.token is None else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in PUBLIC_PATHS or self._own_auth(scope):
            await self.app(scope, receive, send)
            return
        authorization = ""
        for name, value in scope.get("headers", ()):
            if name == b"authorization":
                authorization = value.decode("latin-1")
                break
        try:
            refusal = await self._check(scope, authorization)
        except (
            redis.exceptions.ConnectionError,
            redis.exceptions.TimeoutError,
            redis.exceptions.BusyLoadingError,
        ) as exc:
            # The exception text can carry the Redis URL (and its password): the type only.
            logger.warning("redis unavailable while authenticating: %s", type(exc).__name__)
            refusal = error_response(
                503,
                "run store unavailable (Redis is not reachable); retry later",
                headers={"Retry-After": str(REDIS_RETRY_AFTER_SECONDS)},
            )
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _own_auth(self, scope: Scope) -> bool:
        prefix = self.own_auth_prefix
        path: str = scope["path"]
        return prefix is not None and (path == prefix or path.startswith(f"{prefix}/"))

    async def _check(self, scope: Scope, authorization: str) -> Any:
        """None when the request may go on (the caller is then in scope["state"])."""
        caller = None
        if self.other_caller is not None and bearer_token(authorization) is None:
            caller = await self.other_caller(scope)
        caller = caller or await self.identify(authorization)
        if caller is None:
            return error_response(401, UNAUTHORIZED_MESSAGE, headers={"WWW-Authenticate": "Bearer"})
        needed = self.scopes.required(scope)
        if needed is not None and not caller.may(needed):
            return error_response(403, lacks_scope_message(caller, needed))
        if caller.rate is not None:
            rate = caller.rate
            retry_after = await anyio.to_thread.run_sync(self.limiter.hit, caller.name, rate)
            if retry_after is not None:
                return error_response(
                    429,
                    over_rate_message(caller, retry_after),
                    headers={"Retry-After": str(retry_after)},
                )
        scope.setdefault("state", {})["caller"] = caller
        return None
