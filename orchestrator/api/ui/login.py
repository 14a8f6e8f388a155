"""/ui/login and /ui/logout: the bearer token (or an API key) for a session cookie."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from orchestrator.api.ui.common import (
    PREFIX,
    ActionDep,
    FormDep,
    optional_session,
    page,
    see_other,
    sessions,
)
from orchestrator.api.ui.session import COOKIE_NAME, COOKIE_PATH, SESSION_SECONDS

logger = logging.getLogger("orchestrator.api")
router = APIRouter(prefix=PREFIX, include_in_schema=False)
WRONG_TOKEN = "That token was not accepted."


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request) -> Any:
    if optional_session(request) is not None:
        return see_other(f"{PREFIX}/")
    return page(request, "login.html", None, title="Log in", error=None)


@router.post("/login", response_class=HTMLResponse)
def login(request: Request, fields: FormDep) -> Any:
    found = sessions(request).authenticate(fields.get("token", ""))
    if found is None:
        logger.info("dashboard login refused")  # never the token, nor a hint of it
        return page(request, "login.html", None, status_code=401, title="Log in",
                    error=WRONG_TOKEN)  # fmt: skip
    caller, digest = found
    session_id = sessions(request).open(caller, digest)
    logger.info("dashboard login by %s", caller.name)
    response = see_other(f"{PREFIX}/")
    response.set_cookie(
        COOKIE_NAME,
        session_id,
        max_age=SESSION_SECONDS,
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=_secure(request),
    )
    return response


@router.post("/logout")
def logout(request: Request, session: ActionDep) -> RedirectResponse:
    sessions(request).close(request.cookies.get(COOKIE_NAME))
    response = see_other(f"{PREFIX}/login")
    response.delete_cookie(
        COOKIE_NAME, path=COOKIE_PATH, httponly=True, samesite="strict", secure=_secure(request)
    )
    return response
