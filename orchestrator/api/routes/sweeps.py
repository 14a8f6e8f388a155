"""/v1/sweeps: hyperparameter sweeps (driven by chain/sweeps.py; trials are runs)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Body, HTTPException, Query, Response
from fastapi.responses import StreamingResponse

from orchestrator.api.auth import Caller
from orchestrator.api.deps import (
    CancelAccess,
    IdempotencyKey,
    ReadAccess,
    SettingsDep,
    StoreDep,
    SubmitAccess,
)
from orchestrator.api.errors import ERROR_RESPONSES, field_error
from orchestrator.chain.sweep_view import sweep_view
from orchestrator.chain.sweeps import cancel_sweep, submit_sweep
from orchestrator.domain.sweep import SweepError, parse_sweep
from orchestrator.inputs.checks import InputRejected
from orchestrator.store import IdempotencyConflict, RunStore
from orchestrator.store.sweeps import SweepNotFound, SweepRecord

SWEEPS_PATH = "/v1/sweeps"
router = APIRouter(prefix=SWEEPS_PATH, tags=["sweeps"])
_ERRORS = ERROR_RESPONSES
_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "No such sweep"}}
# How often the event stream looks at the sweep's record.
EVENTS_POLL_SECONDS = 1.0


def _get(store: RunStore, sweep_id: str) -> SweepRecord:
    try:
        return store.sweeps.get(sweep_id)
    except SweepNotFound as exc:
        raise HTTPException(404, f"sweep_id: {exc}") from None


def _accepted(record: SweepRecord) -> dict[str, Any]:
    return {
        "sweep_id": record.sweep_id,
        "status": record.status.value,
        "links": {
            "self": f"{SWEEPS_PATH}/{record.sweep_id}",
            "trials": f"/v1/runs?sweep={record.sweep_id}",
            "events": f"{SWEEPS_PATH}/{record.sweep_id}/events",
            "cancel": f"{SWEEPS_PATH}/{record.sweep_id}/cancel",
        },
    }


@router.post(
    "",
    status_code=202,
    responses={
        **_ERRORS,
        200: {"description": "Same Idempotency-Key and body: that sweep"},
        409: {"description": "Idempotency-Key already used with another body"},
    },
)
def submit(
    caller: Annotated[Caller, SubmitAccess],
    store: StoreDep,
    settings: SettingsDep,
    response: Response,
    body: Annotated[dict[str, Any], Body()],
    idempotency_key: IdempotencyKey = None,
) -> dict[str, Any]:
    """Start a sweep (docs/sweeps.md); answers at once with its id. The trial is
    inline (a path means nothing to the API); its inputs are checked like a run's."""
    try:
        spec = parse_sweep(body)
    except SweepError as exc:
        raise field_error(("body",), str(exc)) from None
    try:
        record, created = submit_sweep(
            spec,
            store=store,
            input_roots=settings.input_roots,
            idempotency_key=idempotency_key,
            submitted_by=caller.name,
        )
    except InputRejected as exc:
        raise field_error(("body", "trial", *exc.field), str(exc)) from None
    except IdempotencyConflict as exc:
        raise HTTPException(409, f"{exc.field}: {exc}") from None
    if not created:
        response.status_code = 200
    return _accepted(record)


@router.get("", responses=_ERRORS, dependencies=[ReadAccess])
def list_sweeps(store: StoreDep, limit: Annotated[int, Query(ge=1, le=200)] = 50) -> dict[str, Any]:
    """Sweeps, newest first."""
    return {"items": [sweep_view(r) for r in store.sweeps.recent(limit=limit)], "next_cursor": None}


@router.get("/{sweep_id}", responses={**_ERRORS, **_NOT_FOUND}, dependencies=[ReadAccess])
def get_sweep(sweep_id: str, store: StoreDep) -> dict[str, Any]:
    """Status, counts by status, the best trial and the leaderboard."""
    return sweep_view(_get(store, sweep_id))


@router.post(
    "/{sweep_id}/cancel",
    status_code=202,
    responses={**_ERRORS, **_NOT_FOUND, 409: {"description": "The sweep has already ended"}},
    dependencies=[CancelAccess],
)
def cancel(sweep_id: str, store: StoreDep) -> dict[str, Any]:
    """Cancel the sweep: every trial is cancelled, then its cluster deleted."""
    record = _get(store, sweep_id)
    if record.terminal:
        raise HTTPException(409, f"sweep_id: sweep {sweep_id!r} has already ended")
    return sweep_view(cancel_sweep(store, sweep_id))


@router.get(
    "/{sweep_id}/events",
    dependencies=[ReadAccess],
    response_class=StreamingResponse,
    responses={
        **_ERRORS,
        **_NOT_FOUND,
        200: {
            "description": "text/event-stream: a `sweep` event (the sweep as GET shows it) "
            "each time it changes; ends once the sweep has ended",
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
        },
    },
)
async def events(sweep_id: str, store: StoreDep) -> StreamingResponse:
    await anyio.to_thread.run_sync(_get, store, sweep_id)
    return StreamingResponse(
        _sweep_events(store, sweep_id),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _sweep_events(store: RunStore, sweep_id: str) -> AsyncIterator[bytes]:
    seen: float | None = None
    while True:
        record = await anyio.to_thread.run_sync(store.sweeps.get, sweep_id)
        if record.updated_at != seen:
            seen = record.updated_at
            data = json.dumps(sweep_view(record), separators=(",", ":"))
            yield f"event: sweep\ndata: {data}\n\n".encode()
        if record.terminal:
            return
        await anyio.sleep(EVENTS_POLL_SECONDS)
