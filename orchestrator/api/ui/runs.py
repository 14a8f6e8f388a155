"""The dashboard's runs: the table (live), a run's page (live), its Cancel."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse

from orchestrator.api.models import RUNS_PATH
from orchestrator.api.ui import views
from orchestrator.api.ui.common import (
    PREFIX,
    ActionDep,
    SessionDep,
    UiError,
    no_store,
    page,
    require_scope,
    see_other,
)
from orchestrator.api.ui.logs import read_log
from orchestrator.chain import cancel
from orchestrator.domain.access import Scope
from orchestrator.domain.status import RunStatus
from orchestrator.store import InvalidCursor, RunNotFound, RunRecord, RunStore

router = APIRouter(prefix=PREFIX, include_in_schema=False)
PAGE_SIZE = 50


def _store(request: Request) -> RunStore:
    store: RunStore = request.app.state.store
    return store


def _get(request: Request, run_id: str) -> RunRecord:
    try:
        return _store(request).get(run_id)
    except RunNotFound:
        raise UiError(404, f"no run {run_id!r}") from None


class RunFilters:
    """The runs table's filters, as query parameters (the form submits them by GET)."""

    def __init__(
        self,
        status: Annotated[str, Query(max_length=20)] = "",
        tag: Annotated[str, Query(max_length=300)] = "",
        schedule: Annotated[str, Query(max_length=100)] = "",
        sweep: Annotated[str, Query(max_length=100)] = "",
        cursor: Annotated[str, Query(max_length=200)] = "",
    ) -> None:
        self.status = status.strip()
        self.tag = tag.strip()
        self.schedule = schedule.strip()
        self.sweep = sweep.strip()
        self.cursor = cursor.strip()

    def query(self, **changes: str) -> dict[str, str]:
        values = {"status": self.status, "tag": self.tag, "schedule": self.schedule}
        values.update(sweep=self.sweep, cursor=self.cursor)
        values.update(changes)
        return {name: value for name, value in values.items() if value}

    def api_query(self) -> dict[str, str]:
        """The same filters as GET /v1/runs takes them."""
        found = self.query(cursor="")
        if "schedule" in found:
            found["submitted_by"] = f"schedule:{found.pop('schedule')}"
        return found


def list_filtered(store: RunStore, filters: RunFilters) -> tuple[list[RunRecord], str | None]:
    """The page of runs the filters select; UiError(422) naming a bad filter."""
    try:
        status = RunStatus(filters.status) if filters.status else None
    except ValueError:
        raise UiError(422, f"status: no such status {filters.status!r}") from None
    tag: tuple[str, str] | None = None
    if filters.tag:
        key, equals, value = filters.tag.partition("=")
        if not equals or not key:
            raise UiError(422, "tag: write it key=value")
        tag = (key, value)
    try:
        return store.list_runs(
            status=status,
            tag=tag,
            submitted_by=f"schedule:{filters.schedule}" if filters.schedule else None,
            limit=PAGE_SIZE,
            cursor=filters.cursor or None,
            sweep=filters.sweep or None,
        )
    except InvalidCursor:
        raise UiError(422, "cursor: not a cursor of this list (start again)") from None


Filters = Annotated[RunFilters, Depends()]


@router.get("/", response_class=HTMLResponse)
def runs_page(request: Request, session: SessionDep, filters: Filters) -> Any:
    records, next_cursor = list_filtered(_store(request), filters)
    return page(
        request,
        "runs.html",
        session,
        title="Runs",
        rows=[views.run_row(r) for r in records],
        filters=filters,
        statuses=[s.value for s in RunStatus],
        next_cursor=next_cursor,
        api_path=RUNS_PATH,
    )


@router.get("/runs/rows", response_class=HTMLResponse)
def runs_rows(request: Request, session: SessionDep, filters: Filters) -> Any:
    """The table's rows alone: what the page fetches to stay live."""
    records, _ = list_filtered(_store(request), filters)
    return page(request, "runs_rows.html", session, rows=[views.run_row(r) for r in records])


def _run_context(record: RunRecord) -> dict[str, Any]:
    outputs = [
        {"path": path, "size": stored.size, "href": f"{RUNS_PATH}/{record.run_id}/outputs/{path}"}
        for path, stored in sorted(record.output_files.items())
    ]
    return {
        "run": record,
        "row": views.run_row(record),
        "steps": views.timeline(record),
        "outputs": outputs,
        "inputs": sorted(record.inputs.items()),
        "live_data": {
            "status": record.status.value,
            "terminal": record.terminal,
            "series": record.metric_series,
        },
    }


@router.get("/runs/{run_id}", response_class=HTMLResponse)
def run_page(request: Request, run_id: str, session: SessionDep) -> Any:
    record = _get(request, run_id)
    return page(
        request,
        "run.html",
        session,
        title=f"Run {record.run_id}",
        api_path=f"{RUNS_PATH}/{record.run_id}",
        can_cancel=session.caller.may(Scope.CANCEL) and not record.terminal,
        **_run_context(record),
    )


@router.get("/runs/{run_id}/live", response_class=HTMLResponse)
def run_live(request: Request, run_id: str, session: SessionDep) -> Any:
    """The run page's changing part alone: what the page fetches to stay live."""
    record = _get(request, run_id)
    return page(request, "run_live.html", session, **_run_context(record))


@router.get("/runs/{run_id}/log")
def run_log(
    request: Request,
    run_id: str,
    session: SessionDep,
    offset: Annotated[int, Query(ge=0, le=2**53)] = 0,
) -> JSONResponse:
    """{text, offset, done}: the job's stdout after `offset` (text, shown as text)."""
    record = _get(request, run_id)
    state = request.app.state
    chunk = read_log(record, state.settings, state.gateway, offset)
    response = JSONResponse({"text": chunk.text, "offset": chunk.offset, "done": chunk.done})
    no_store(response)
    return response


@router.post("/runs/{run_id}/cancel")
def cancel_run(request: Request, run_id: str, session: ActionDep) -> RedirectResponse:
    require_scope(session, Scope.CANCEL)
    settings = request.app.state.settings
    try:
        cancel.cancel_run(
            _store(request), run_id, by=session.caller.name, broker_url=settings.redis_url
        )
    except RunNotFound:
        raise UiError(404, f"no run {run_id!r}") from None
    except cancel.RunAlreadyEnded:
        pass  # ended meanwhile: the page shows how
    return see_other(f"{PREFIX}/runs/{run_id}")
