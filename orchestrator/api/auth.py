"""The bearer-token check, as ASGI middleware: it answers 401 before anything reads the
request body, so an unauthenticated caller learns nothing from validation errors and
cannot make the API parse (or buffer) what it sends.

The routes also declare require_token (deps.py): that is what documents the scheme in
OpenAPI, and a second check costs nothing.
"""

from __future__ import annotations

import hmac

from starlette.types import ASGIApp, Receive, Scope, Send

from orchestrator.api.errors import error_response

# Open to anyone: load balancers probe /healthz; the docs describe, they do not act.
PUBLIC_PATHS = frozenset({"/healthz", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"})
UNAUTHORIZED_MESSAGE = "missing or wrong bearer token (Authorization: Bearer <ORCH_API_TOKEN>)"


def bearer_token_matches(authorization: str, expected: str) -> bool:
    scheme, _, given = authorization.strip().partition(" ")
    # Constant-time comparison, so response timing does not leak the token.
    return scheme.lower() == "bearer" and hmac.compare_digest(
        given.strip().encode(), expected.encode()
    )


class BearerTokenMiddleware:
    """401 for every HTTP request outside PUBLIC_PATHS without the right bearer token."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in PUBLIC_PATHS:
            await self.app(scope, receive, send)
            return
        authorization = ""
        for name, value in scope.get("headers", ()):
            if name == b"authorization":
                authorization = value.decode("latin-1")
                break
        if not bearer_token_matches(authorization, self.token):
            response = error_response(
                401, UNAUTHORIZED_MESSAGE, headers={"WWW-Authenticate": "Bearer"}
            )
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)
