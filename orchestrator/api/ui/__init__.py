"""The web dashboard under /ui/: server-rendered pages (Jinja2), a little plain
JavaScript that keeps them live by polling fragments, and uPlot for the charts,
all served from this package (no CDN, no build).

Its own authentication: /ui/login turns the bearer token (or an API key) into a
session cookie (session.py); the API's middleware lets /ui/ through and, for GETs,
accepts the same cookie, so a page's links to the JSON API work in the browser.
"""

from __future__ import annotations

import anyio
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.types import Scope

from orchestrator.api.auth import Caller, OtherCaller
from orchestrator.api.ui import login, runs, schedules, sweeps
from orchestrator.api.ui.common import (
    HERE,
    LOGIN_PATH,
    PREFIX,
    LoginRequired,
    UiError,
    error_page,
    see_other,
)
from orchestrator.api.ui.session import COOKIE_NAME, Sessions

__all__ = ["PREFIX", "cookie_caller", "install_ui"]

# Fragments the pages fetch: without a session they answer 401 (the page's
# script then goes to the login form), not a redirect to a page.
_FRAGMENT_SUFFIXES = ("/rows", "/live", "/log")


def _is_ui_path(path: str) -> bool:
    return path == PREFIX or path.startswith(f"{PREFIX}/")


async def _login_required(request: Request, exc: Exception) -> Response:
    if request.method == "GET" and not request.url.path.endswith(_FRAGMENT_SUFFIXES):
        return see_other(LOGIN_PATH)
    return JSONResponse({"message": "log in again", "login": LOGIN_PATH}, status_code=401)


async def _ui_error(request: Request, exc: Exception) -> HTMLResponse:
    assert isinstance(exc, UiError)
    return error_page(request, exc.status_code, exc.message)


def install_ui(app: FastAPI, sessions: Sessions) -> None:
    """Serve the dashboard under /ui/ from `app`."""
    app.state.ui_sessions = sessions
    app.state.sweep_reader = sweeps.StoreSweeps(app.state.store)
    for router in (login.router, runs.router, schedules.router, sweeps.router):
        app.include_router(router)
    app.mount(f"{PREFIX}/static", StaticFiles(directory=HERE / "static"), name="ui-static")
    app.add_exception_handler(LoginRequired, _login_required)
    app.add_exception_handler(UiError, _ui_error)


def session_caller(sessions: Sessions, method: str, path: str, cookie: str | None) -> Caller | None:
    """The caller of a dashboard session, for a GET of the JSON API made with its
    cookie (a link on a page); None otherwise (actions need the bearer token)."""
    if cookie is None or method not in ("GET", "HEAD") or _is_ui_path(path):
        return None
    session = sessions.get(cookie)
    return session.caller if session is not None else None


def cookie_caller(sessions: Sessions) -> OtherCaller:
    """ApiKeyMiddleware's `other_caller`: the dashboard session a GET's cookie names."""

    async def caller(scope: Scope) -> Caller | None:
        cookie = cookie_value(scope.get("headers", []))
        if cookie is None:
            return None
        return await anyio.to_thread.run_sync(
            session_caller, sessions, scope["method"], scope["path"], cookie
        )

    return caller


def cookie_value(headers: list[tuple[bytes, bytes]]) -> str | None:
    """The dashboard session cookie of a request's raw headers, if any."""
    for name, value in headers:
        if name != b"cookie":
            continue
        for part in value.decode("latin-1").split(";"):
            key, _, found = part.strip().partition("=")
            if key == COOKIE_NAME and found:
                return found
    return None
