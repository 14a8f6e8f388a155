"""The dashboard's sweeps: the list, a sweep's page (counts, leaderboard, charts), Cancel.

The pages read sweeps in the JSON shape of GET /v1/sweeps/{id} (a SweepView),
through a SweepReader the app is given (`app.state.sweep_reader`); without one,
the pages say this server has no sweeps.
"""

from __future__ import annotations

from typing import Any, Protocol

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from orchestrator.api.ui import views
from orchestrator.api.ui.common import (
    PREFIX,
    ActionDep,
    SessionDep,
    UiError,
    page,
    require_scope,
    see_other,
)
from orchestrator.chain.sweep_view import sweep_view
from orchestrator.chain.sweeps import cancel_sweep
from orchestrator.domain.access import Scope
from orchestrator.store import RunStore
from orchestrator.store.sweeps import SweepNotFound as StoredSweepNotFound

router = APIRouter(prefix=PREFIX, include_in_schema=False)
API_PATH = "/v1/sweeps"
TERMINAL = frozenset({"succeeded", "failed", "cancelled"})


class SweepNotFound(LookupError):
    pass


class SweepReader(Protocol):
    """Sweeps as the API gives them (dicts in the SweepView JSON shape)."""

    def list(self) -> list[dict[str, Any]]: ...

    def get(self, sweep_id: str) -> dict[str, Any]:
        """The sweep's view; SweepNotFound if there is none."""
        ...

    def cancel(self, sweep_id: str, by: str) -> None: ...


def _reader(request: Request) -> SweepReader:
    reader: SweepReader | None = getattr(request.app.state, "sweep_reader", None)
    if reader is None:
        raise UiError(404, "this server has no sweeps")
    return reader


def _get(reader: SweepReader, sweep_id: str) -> dict[str, Any]:
    try:
        return reader.get(sweep_id)
    except SweepNotFound:
        raise UiError(404, f"no sweep {sweep_id!r}") from None


@router.get("/sweeps", response_class=HTMLResponse)
def sweeps_page(request: Request, session: SessionDep) -> Any:
    sweeps = [
        {**sweep, "counts": sorted((sweep.get("counts") or {}).items())}
        for sweep in _reader(request).list()
    ]
    return page(request, "sweeps.html", session, title="Sweeps", sweeps=sweeps, api_path=API_PATH)


def _sweep_context(sweep: dict[str, Any]) -> dict[str, Any]:
    summary = views.sweep_summary(sweep)
    chart_data = {
        "goal": summary["objective"].get("goal", "minimize"),
        "metric": summary["objective"].get("primary_metric", ""),
        "parameters": summary["parameters"],
        "terminal": sweep.get("status") in TERMINAL,
        "trials": [
            {
                "index": trial.get("index"),
                "run_id": trial.get("run_id"),
                "status": trial.get("status"),
                "value": trial.get("value"),
                "series": trial.get("series") or [],
                "stopped_at": trial.get("stopped_at_interval"),
                "parameters": trial.get("parameters") or {},
                "best": trial["best"],
            }
            for trial in summary["trials"]
        ],
    }
    return {"sweep": sweep, "chart_data": chart_data, **summary}


@router.get("/sweeps/{sweep_id}", response_class=HTMLResponse)
def sweep_page(request: Request, sweep_id: str, session: SessionDep) -> Any:
    sweep = _get(_reader(request), sweep_id)
    return page(
        request,
        "sweep.html",
        session,
        title=f"Sweep {sweep.get('name') or sweep_id}",
        api_path=f"{API_PATH}/{sweep_id}",
        can_cancel=session.caller.may(Scope.CANCEL) and sweep.get("status") not in TERMINAL,
        **_sweep_context(sweep),
    )


@router.get("/sweeps/{sweep_id}/live", response_class=HTMLResponse)
def sweep_live(request: Request, sweep_id: str, session: SessionDep) -> Any:
    """The sweep page's changing part alone: what the page fetches to stay live."""
    sweep = _get(_reader(request), sweep_id)
    return page(request, "sweep_live.html", session, **_sweep_context(sweep))


@router.post("/sweeps/{sweep_id}/cancel")
def sweep_cancel(request: Request, sweep_id: str, session: ActionDep) -> RedirectResponse:
    require_scope(session, Scope.CANCEL)
    reader = _reader(request)
    _get(reader, sweep_id)
    reader.cancel(sweep_id, by=session.caller.name)
    return see_other(f"{PREFIX}/sweeps/{sweep_id}")


class StoreSweeps:
    """The SweepReader of the API's own store: the views GET /v1/sweeps gives."""

    def __init__(self, store: RunStore) -> None:
        self.store = store

    def list(self) -> list[dict[str, Any]]:
        return [sweep_view(record) for record in self.store.sweeps.recent(limit=50)]

    def get(self, sweep_id: str) -> dict[str, Any]:
        try:
            return sweep_view(self.store.sweeps.get(sweep_id))
        except StoredSweepNotFound:
            raise SweepNotFound(sweep_id) from None

    def cancel(self, sweep_id: str, by: str) -> None:
        if not self.store.sweeps.get(sweep_id).terminal:
            cancel_sweep(self.store, sweep_id)
