"""/v1/runs: submit, read, list and cancel runs; follow their events; fetch their outputs."""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Annotated, Any
from urllib.parse import quote

import anyio
from fastapi import APIRouter, Header, HTTPException, Query, Request, Response
from fastapi.responses import StreamingResponse

from orchestrator.api.auth import Caller
from orchestrator.api.deps import (
    CancelAccess,
    GatewayDep,
    IdempotencyKey,
    ReadAccess,
    SettingsDep,
    StoreDep,
    SubmitAccess,
)
from orchestrator.api.errors import ERROR_RESPONSES, field_error
from orchestrator.api.models import (
    RUNS_PATH,
    OutputFile,
    OutputList,
    RunAccepted,
    RunLinks,
    RunPage,
    RunRequest,
    RunView,
)
from orchestrator.api.sse import (
    SlotStreamingResponse,
    StreamSlots,
    run_event_stream,
    stream_limiter,
)
from orchestrator.artifacts import OutsideArtifacts, RunArtifacts
from orchestrator.chain import cancel, webhooks
from orchestrator.chain.enqueue import enqueue_run
from orchestrator.domain.access import ANONYMOUS_NAME, BOOTSTRAP_NAME
from orchestrator.domain.notify import NotifySpec
from orchestrator.domain.status import RunStatus
from orchestrator.inputs.checks import InputRejected
from orchestrator.settings import Settings
from orchestrator.store import IdempotencyConflict, InvalidCursor, RunRecord

# Each route declares the scope it needs (deps.py); the middleware enforces it
# before the body is read (auth.py).
router = APIRouter(prefix=RUNS_PATH, tags=["runs"])

_ERRORS = ERROR_RESPONSES
_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "No such run"}}

MAX_STREAM_ID_PART = 2**64 - 1
LastEventId = Annotated[
    str | None,
    Header(
        alias="Last-Event-ID",
        pattern=r"^\d{1,20}-\d{1,20}$",
        description="Resume after this event id (sent by EventSource on reconnect).",
    ),
]


def _check_notify(notify: NotifySpec, caller: Caller, settings: Settings) -> None:
    if caller.name in (BOOTSTRAP_NAME, ANONYMOUS_NAME):
        raise field_error(
            ("body", "notify"),
            "needs a named API key: deliveries are signed with its signing secret",
        )
    try:
        webhooks.check_destination(notify.url, allow_private=settings.webhook_allow_private)
    except webhooks.WebhookRefused as exc:
        raise field_error(("body", "notify", "url"), str(exc)) from None


def _accepted(record: RunRecord) -> RunAccepted:
    return RunAccepted(
        run_id=record.run_id, status=record.status, links=RunLinks.for_run(record.run_id)
    )


@router.post(
    "",
    status_code=202,
    response_model=RunAccepted,
    responses={
        **_ERRORS,
        200: {"model": RunAccepted, "description": "Same Idempotency-Key and body: that run"},
        409: {"description": "Idempotency-Key (or run_id) already used with another body"},
        413: {"description": "Body larger than ORCH_API_MAX_BODY_BYTES"},
    },
)
def submit_run(
    body: RunRequest,
    caller: Annotated[Caller, SubmitAccess],
    store: StoreDep,
    settings: SettingsDep,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> RunAccepted:
    """Create a run and enqueue its first step; answers at once with the run id.

    Inputs are `upload:<id>` (see /v1/uploads), `share:<path>`, or a path on the
    workers' machines under ORCH_INPUT_ROOTS; anything else is a 422 naming it."""
    if body.notify is not None:
        _check_notify(body.notify, caller, settings)
    spec = body.spec.with_parameters(body.parameters) if body.parameters else body.spec
    try:
        record, created = enqueue_run(
            spec,
            store=store,
            broker_url=settings.redis_target,
            run_id=body.run_id,
            idempotency_key=idempotency_key,
            input_roots=settings.input_roots,
            submitted_by=caller.name,
            # A submission's own notify, else the key's default subscription.
            notify=body.notify or caller.notify,
        )
    except IdempotencyConflict as exc:
        raise HTTPException(409, f"{exc.field}: {exc}") from None
    except InputRejected as exc:
        raise field_error(("body", "spec", *exc.field), str(exc)) from None
    if not created:
        response.status_code = 200
    return _accepted(record)


@router.get("", response_model=RunPage, responses=_ERRORS, dependencies=[ReadAccess])
def list_runs(
    store: StoreDep,
    status: RunStatus | None = None,
    tag: Annotated[
        str | None, Query(pattern=r"^[^=]+=.*$", description="key=value of spec.tags")
    ] = None,
    name: Annotated[str | None, Query(max_length=64)] = None,
    submitted_by: Annotated[
        str | None, Query(max_length=200, description="Name of the key that submitted the run")
    ] = None,
    sweep: Annotated[
        str | None, Query(max_length=64, description="Only the trials of this sweep")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> RunPage:
    """Runs, newest first, filtered by status, tag, name, submitter and sweep; page
    with `cursor`."""
    tag_pair = tuple(tag.split("=", 1)) if tag is not None else None
    try:
        records, next_cursor = store.list_runs(
            status=status,
            tag=(tag_pair[0], tag_pair[1]) if tag_pair else None,
            name=name,
            submitted_by=submitted_by,
            sweep=sweep,
            limit=limit,
            cursor=cursor,
        )
    except InvalidCursor as exc:
        raise field_error(("query", "cursor"), str(exc)) from None
    return RunPage(items=[RunView.of(record) for record in records], next_cursor=next_cursor)


@router.get(
    "/{run_id}",
    response_model=RunView,
    responses={**_ERRORS, **_NOT_FOUND},
    dependencies=[ReadAccess],
)
def get_run(run_id: str, store: StoreDep) -> RunView:
    return RunView.of(store.get(run_id))


@router.post(
    "/{run_id}/cancel",
    status_code=202,
    response_model=RunView,
    responses={**_ERRORS, **_NOT_FOUND, 409: {"description": "The run has already ended"}},
)
def cancel_run(
    run_id: str, caller: Annotated[Caller, CancelAccess], store: StoreDep, settings: SettingsDep
) -> RunView:
    """Cancel the run: a queued run ends at once; a started one is flagged, and the
    chain terminates its job and cleans up before it ends cancelled."""
    try:
        return RunView.of(
            cancel.cancel_run(store, run_id, by=caller.name, broker_url=settings.redis_url)
        )
    except cancel.RunAlreadyEnded as exc:
        raise HTTPException(409, f"run_id: {exc}") from None


@router.get(
    "/{run_id}/events",
    dependencies=[ReadAccess],
    response_class=StreamingResponse,
    responses={
        **_ERRORS,
        **_NOT_FOUND,
        429: {"description": "Too many open event streams from this client; Retry-After"},
        200: {
            "description": "text/event-stream: `id`, `event` (the kind) and `data` "
            "(the event as JSON) per event; ends after the run's terminal status",
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
        },
    },
)
async def stream_events(
    run_id: str, store: StoreDep, request: Request, last_event_id: LastEventId = None
) -> StreamingResponse:
    """Replay the run's events (after Last-Event-ID), then stream new ones until it ends.

    429 past the per-client cap of open streams, 503 past the server's (Retry-After)."""
    if last_event_id is not None and any(
        int(part) > MAX_STREAM_ID_PART for part in last_event_id.split("-")
    ):
        # Redis stream ids are two unsigned 64-bit numbers; a larger one would
        # make the read fail after the stream has started.
        raise field_error(["header", "Last-Event-ID"], "is not an event id of this stream")
    slots: StreamSlots = request.app.state.stream_slots
    client = request.client.host if request.client else "unknown"
    slots.acquire(client)
    try:
        record = await anyio.to_thread.run_sync(store.get, run_id)
        events = run_event_stream(
            request.app.state.stream_store,  # the streams' own bounded connection pool
            run_id,
            after=last_event_id or "0",
            terminal=record.terminal,
            limiter=stream_limiter(request.app.state),
        )
    except BaseException:
        slots.release(client)
        raise
    return SlotStreamingResponse(
        events,
        slots,
        client,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@router.get(
    "/{run_id}/outputs",
    response_model=OutputList,
    responses={**_ERRORS, **_NOT_FOUND},
    dependencies=[ReadAccess],
)
def list_outputs(run_id: str, store: StoreDep) -> OutputList:
    """The run's collected files (empty until its outputs are collected). They are
    served from the file share, where the job wrote them: any API process can."""
    record = store.get(run_id)
    files = [
        OutputFile(path=path, size=stored.size)
        for path, stored in sorted(record.output_files.items())
    ]
    return OutputList(run_id=run_id, files=files)


@router.get(
    "/{run_id}/outputs/{path:path}",
    dependencies=[ReadAccess],
    response_class=StreamingResponse,
    responses={
        **_ERRORS,
        **_NOT_FOUND,
        200: {"content": {"application/octet-stream": {}}},
        400: {"description": "Path leaves the run's outputs"},
        410: {"description": "Deleted from the share by output retention"},
    },
)
def download_output(
    run_id: str, path: str, store: StoreDep, settings: SettingsDep, gateway: GatewayDep
) -> StreamingResponse:
    """Stream one output file from the share, in ranges of at most 4 MiB."""
    record = store.get(run_id)
    try:
        RunArtifacts.check_relative(path)
    except OutsideArtifacts:
        raise HTTPException(400, "path: must be a relative path inside the run's outputs") from None
    stored = record.output_files.get(path)
    if stored is None or not stored.share_path:
        raise HTTPException(404, f"path: no output file {path!r} in this run")
    share = stored.share or settings.azure_file_share
    found = gateway.share_file(share, stored.share_path)
    if found is None:
        raise HTTPException(410, f"path: {path!r} is no longer on the share (output retention)")
    name = PurePosixPath(path).name
    return StreamingResponse(
        gateway.iter_file(share, stored.share_path, found.size),
        media_type="application/octet-stream",
        headers={
            "Content-Length": str(found.size),
            "Content-Disposition": _attachment(name),
        },
    )


def _attachment(name: str) -> str:
    """A Content-Disposition naming the file, safe for any name (RFC 6266 / 5987)."""
    ascii_name = "".join(c if 32 <= ord(c) < 127 and c not in '"\\' else "_" for c in name)
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name, safe='')}"


@router.get(
    "/{run_id}/deliveries",
    responses={**_ERRORS, **_NOT_FOUND},
    dependencies=[ReadAccess],
)
def list_deliveries(run_id: str, store: StoreDep) -> dict[str, Any]:
    """The run's webhook delivery attempts, oldest first: webhook id, attempt, status
    code, latency and outcome (never a body)."""
    store.get(run_id)
    return {"run_id": run_id, "items": webhooks.deliveries(store, run_id)}
