"""/v1/audit: key changes (created, revoked), each with the name of the key that
made it (admin scope). Cancels are on each run's own events (`cancel_requested`)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from orchestrator.api.deps import AdminAccess, KeyRingDep
from orchestrator.api.errors import ERROR_RESPONSES
from orchestrator.store.apikeys import AUDIT_READ_LIMIT

router = APIRouter(prefix="/v1/audit", tags=["keys"])


@router.get("", responses=ERROR_RESPONSES, dependencies=[AdminAccess])
def audit_events(
    keyring: KeyRingDep, limit: Annotated[int, Query(ge=1, le=AUDIT_READ_LIMIT)] = 100
) -> dict[str, Any]:
    """Newest first: `{"items": [{"id", "kind", "ts", "data": {"name", "by", ...}}]}`."""
    return {"items": [event.to_json() for event in keyring.audit(limit)]}
