"""The dashboard's schedules: the list, one schedule's history, Pause/Resume/Trigger."""

from __future__ import annotations

import secrets
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from orchestrator.api.ui import views
from orchestrator.api.ui.common import (
    PREFIX,
    ActionDep,
    FormDep,
    SessionDep,
    UiError,
    page,
    require_scope,
    see_other,
)
from orchestrator.chain.schedules import ScheduleContext, schedule_view, trigger_now
from orchestrator.domain.access import Scope
from orchestrator.store import RunStore
from orchestrator.store.schedules import ScheduleBook, ScheduleNotFound

router = APIRouter(prefix=PREFIX, include_in_schema=False)
API_PATH = "/v1/schedules"


def _book(request: Request) -> ScheduleBook:
    store: RunStore = request.app.state.store
    return ScheduleBook(store.redis, store.keys)


def _view(book: ScheduleBook, name: str) -> dict[str, Any]:
    try:
        view = schedule_view(book, book.get(name))
    except ScheduleNotFound:
        raise UiError(404, f"no schedule {name!r}") from None
    return _decorate(view)


def _decorate(view: dict[str, Any]) -> dict[str, Any]:
    """The API's schedule view, with what the page shows of it."""
    trigger = view["definition"]["trigger"]
    history = [
        {**entry, "outcome_class": views.OUTCOME_CLASS.get(entry["outcome"], "st-dim")}
        for entry in view["history"]
    ]
    return {
        **view,
        "trigger_text": (
            f"cron {trigger['cron']} ({trigger.get('time_zone', 'UTC')})"
            if trigger.get("cron")
            else f"every {trigger.get('every')}"
        ),
        "next_fire": view["next_fire_times"][0] if view["next_fire_times"] else "",
        "last": history[0] if history else None,
        "history": history,
        "policy": view["definition"].get("concurrency_policy", ""),
    }


@router.get("/schedules", response_class=HTMLResponse)
def schedules_page(request: Request, session: SessionDep) -> Any:
    book = _book(request)
    items = []
    for name in book.names():
        try:
            items.append(_decorate(schedule_view(book, book.get(name))))
        except ScheduleNotFound:
            continue  # deleted meanwhile
    return page(
        request,
        "schedules.html",
        session,
        title="Schedules",
        schedules=items,
        api_path=API_PATH,
        can_admin=session.caller.may(Scope.ADMIN),
    )


@router.get("/schedules/{name}", response_class=HTMLResponse)
def schedule_page(request: Request, name: str, session: SessionDep) -> Any:
    schedule = _view(_book(request), name)
    return page(
        request,
        "schedule.html",
        session,
        title=f"Schedule {name}",
        schedule=schedule,
        api_path=f"{API_PATH}/{name}",
        can_admin=session.caller.may(Scope.ADMIN),
    )


@router.post("/schedules/{name}/{action}")
def schedule_action(
    request: Request,
    name: str,
    action: Literal["pause", "resume", "trigger"],
    session: ActionDep,
    fields: FormDep,
) -> RedirectResponse:
    """Pause, resume or fire the schedule now; back to where the form was."""
    require_scope(session, Scope.ADMIN)
    book = _book(request)
    _view(book, name)  # 404 for an unknown schedule
    if action == "trigger":
        ctx = ScheduleContext(settings=request.app.state.settings, store=request.app.state.store)
        # A fresh key per click: each click fires once, a resubmitted form too.
        trigger_now(ctx, name, request_key=f"ui-{secrets.token_hex(8)}")
    else:
        book.set_suspended(name, action == "pause", by=session.caller.name)
    # Back to the page the form was on: the list, or the schedule's own page.
    back = f"/{name}" if fields.get("back") == "schedule" else ""
    return see_other(f"{PREFIX}/schedules{back}")
