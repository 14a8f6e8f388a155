"""What every dashboard page shares: the templates, the session a page needs, the
CSRF-checked form of an action, and the HTML answers for what went wrong."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qs

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from orchestrator.api.ui import views
from orchestrator.api.ui.session import COOKIE_NAME, CSRF_FIELD, Session, Sessions
from orchestrator.domain.access import Scope

HERE = Path(__file__).parent
PREFIX = "/ui"
LOGIN_PATH = f"{PREFIX}/login"
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
# A form of the dashboard is a few short fields: a larger body is refused unread.
MAX_FORM_BYTES = 16 * 1024

templates = Jinja2Templates(directory=HERE / "templates")
templates.env.filters["when"] = views.when
templates.env.filters["size"] = views.human_size
templates.env.globals["status_class"] = views.status_class


class LoginRequired(Exception):
    """No live session: pages redirect to the login form, fragments answer 401."""


class UiError(Exception):
    """A page's refusal, answered as an HTML page (the API's errors are JSON)."""

    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message


def sessions(request: Request) -> Sessions:
    found: Sessions = request.app.state.ui_sessions
    return found


def optional_session(request: Request) -> Session | None:
    return sessions(request).get(request.cookies.get(COOKIE_NAME))


def require_session(request: Request) -> Session:
    session = optional_session(request)
    if session is None:
        raise LoginRequired()
    if not session.caller.may(Scope.READ):
        raise UiError(403, "this key lacks the 'read' scope")
    return session


SessionDep = Annotated[Session, Depends(require_session)]


async def form_fields(request: Request) -> dict[str, str]:
    """An urlencoded form's fields (first value of each); bounded in size."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise UiError(413, "form too large")
    parsed = parse_qs(body.decode("utf-8", errors="replace"), keep_blank_values=True)
    return {name: values[0] for name, values in parsed.items()}


FormDep = Annotated[dict[str, str], Depends(form_fields)]


def action_session(session: SessionDep, fields: FormDep) -> Session:
    """The session of a POST action whose form carries the session's CSRF token."""
    if not session.csrf_ok(fields.get(CSRF_FIELD)):
        raise UiError(403, "the form is stale or forged (CSRF check failed): reload the page")
    return session


ActionDep = Annotated[Session, Depends(action_session)]


def require_scope(session: Session, scope: Scope) -> None:
    if not session.caller.may(scope):
        raise UiError(403, f"key {session.caller.name!r} lacks the {scope.value!r} scope")


def page(
    request: Request,
    name: str,
    session: Session | None,
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    """A page of the dashboard (full pages and fragments alike)."""
    context.setdefault("title", "")
    response = templates.TemplateResponse(
        request,
        name,
        {"session": session, "csrf_field": CSRF_FIELD, "prefix": PREFIX, **context},
        status_code=status_code,
    )
    no_store(response)
    return response


def no_store(response: Response) -> None:
    """Pages show live state and carry a CSRF token: never cached."""
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["X-Frame-Options"] = "DENY"
    # Scripts and styles from /ui/static only: a value that escaped escaping runs nothing.
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY


def see_other(path: str) -> RedirectResponse:
    return RedirectResponse(path, status_code=303)


def error_page(request: Request, status_code: int, message: str) -> HTMLResponse:
    return page(
        request,
        "error.html",
        optional_session(request),
        status_code=status_code,
        title="Error",
        message=message,
    )
