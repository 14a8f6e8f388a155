"""/v1/schedules: nightly retraining defined at runtime (fired by chain/schedules.py)."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Body, Header, HTTPException, Request, Response

from orchestrator.api.auth import Caller
from orchestrator.api.deps import AdminAccess, ReadAccess, SettingsDep, StoreDep
from orchestrator.api.errors import ERROR_RESPONSES, field_error
from orchestrator.chain.schedules import ScheduleContext, schedule_view, trigger_now
from orchestrator.domain.schedule import ScheduleSpec, parse_schedule
from orchestrator.inputs.checks import InputRejected, check_inputs
from orchestrator.settings import Settings
from orchestrator.store import RunStore
from orchestrator.store.schedules import (
    ScheduleBook,
    ScheduleExists,
    ScheduleNotFound,
    ScheduleState,
)

# Reading needs `read`; creating, changing and firing need `admin` (deps.py).
router = APIRouter(prefix="/v1/schedules", tags=["schedules"])
Admin = Annotated[Caller, AdminAccess]
_ERRORS = ERROR_RESPONSES
_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "No such schedule"}}
_CONFLICT: dict[int | str, dict[str, Any]] = {409: {"description": "The name is taken (use PUT)"}}


def _book(store: Any) -> ScheduleBook:
    return ScheduleBook(store.redis, store.keys)


def _parse(data: Any, store: RunStore, settings: Settings) -> ScheduleSpec:
    spec = parse_schedule(data)  # ScheduleError is a SpecError: a 422 naming the field
    try:
        # Every tick's run names these inputs: refused now rather than at 2 a.m.
        check_inputs(
            spec.run_template,
            input_roots=settings.input_roots,
            book=store.uploads,
            now=time.time(),
        )
    except InputRejected as exc:
        where = ("sweep", "trial") if spec.sweep is not None else ("run",)
        raise field_error(("body", *where, *exc.field), str(exc)) from None
    return spec


def _get(book: ScheduleBook, name: str) -> ScheduleState:
    try:
        return book.get(name)
    except ScheduleNotFound as exc:
        raise HTTPException(404, f"name: {exc}") from None


@router.post("", status_code=201, responses={**_ERRORS, **_CONFLICT})
def create_schedule(
    caller: Admin,
    store: StoreDep,
    settings: SettingsDep,
    body: Annotated[dict[str, Any], Body()],
) -> dict[str, Any]:
    """Create a schedule; an existing name is a 409 (use PUT to change it)."""
    book = _book(store)
    try:
        state = book.put(_parse(body, store, settings), mode="create", by=caller.name)
    except ScheduleExists as exc:
        raise HTTPException(409, f"name: {exc}") from None
    return schedule_view(book, state)


@router.put("/{name}", responses=_ERRORS)
def put_schedule(
    name: str,
    caller: Admin,
    store: StoreDep,
    settings: SettingsDep,
    body: Annotated[dict[str, Any], Body()],
) -> dict[str, Any]:
    """Create or replace the schedule `name` (the body's name must match)."""
    if body.get("name", name) != name:
        raise field_error(("body", "name"), "must match the name in the path")
    book = _book(store)
    spec = _parse({**body, "name": name}, store, settings)
    return schedule_view(book, book.put(spec, mode="replace", by=caller.name))


@router.get("", responses=_ERRORS, dependencies=[ReadAccess])
def list_schedules(store: StoreDep) -> dict[str, Any]:
    book = _book(store)
    items = []
    for name in book.names():
        try:
            items.append(schedule_view(book, book.get(name)))
        except ScheduleNotFound:
            continue
    return {"items": items}


@router.get("/{name}", responses={**_ERRORS, **_NOT_FOUND}, dependencies=[ReadAccess])
def get_schedule(name: str, store: StoreDep) -> dict[str, Any]:
    book = _book(store)
    return schedule_view(book, _get(book, name))


@router.post("/{name}/pause", responses={**_ERRORS, **_NOT_FOUND})
def pause_schedule(name: str, caller: Admin, store: StoreDep) -> dict[str, Any]:
    book = _book(store)
    _get(book, name)
    return schedule_view(book, book.set_suspended(name, True, by=caller.name))


@router.post("/{name}/resume", responses={**_ERRORS, **_NOT_FOUND})
def resume_schedule(name: str, caller: Admin, store: StoreDep) -> dict[str, Any]:
    book = _book(store)
    _get(book, name)
    return schedule_view(book, book.set_suspended(name, False, by=caller.name))


@router.post(
    "/{name}/trigger",
    status_code=202,
    responses={**_ERRORS, **_NOT_FOUND},
    dependencies=[AdminAccess],
)
def trigger_schedule(
    name: str,
    store: StoreDep,
    request: Request,
    response: Response,
    idempotency_key: Annotated[
        str | None, Header(alias="Idempotency-Key", min_length=1, max_length=200)
    ] = None,
) -> dict[str, Any]:
    """Fire the schedule now (policy ignored); the same Idempotency-Key returns the same run."""
    book = _book(store)
    _get(book, name)
    settings = request.app.state.settings
    ctx = ScheduleContext(settings=settings, store=store)
    entry = trigger_now(ctx, name, request_key=idempotency_key)
    return entry.to_json()


@router.delete(
    "/{name}", status_code=204, responses={**_ERRORS, **_NOT_FOUND}, dependencies=[AdminAccess]
)
def delete_schedule(name: str, store: StoreDep) -> Response:
    try:
        _book(store).delete(name)
    except ScheduleNotFound as exc:
        raise HTTPException(404, f"name: {exc}") from None
    return Response(status_code=204)
