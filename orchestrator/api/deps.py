"""Dependencies shared by the routers, as `Annotated` aliases (SettingsDep, StoreDep, ...)."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from orchestrator.azure.gateway import Gateway
from orchestrator.inputs.uploads import ShareUploads
from orchestrator.settings import Settings
from orchestrator.store import RunStore


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_store(request: Request) -> RunStore:
    store: RunStore = request.app.state.store
    return store


def get_gateway(request: Request) -> Gateway:
    gateway: Gateway = request.app.state.gateway
    return gateway


def get_uploads(request: Request) -> ShareUploads:
    settings = get_settings(request)
    return ShareUploads(
        gateway=get_gateway(request),
        book=get_store(request).uploads,
        share=settings.azure_file_share,
        max_bytes=settings.input_max_bytes,
    )


SettingsDep = Annotated[Settings, Depends(get_settings)]
StoreDep = Annotated[RunStore, Depends(get_store)]
GatewayDep = Annotated[Gateway, Depends(get_gateway)]
UploadsDep = Annotated[ShareUploads, Depends(get_uploads)]

# auto_error=False: a missing header is answered by require_token (401 with
# WWW-Authenticate), not by HTTPBearer's own 403.
_bearer = HTTPBearer(auto_error=False, description="ORCH_API_TOKEN as a bearer token")


def configured_token(settings: Settings) -> str | None:
    """The API token, or None when unset or empty (an empty token would match no header)."""
    token = settings.api_token.get_secret_value() if settings.api_token is not None else ""
    return token or None


def require_token(
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """401 unless the request carries `Authorization: Bearer <ORCH_API_TOKEN>`.

    Without a configured token the app only starts when unauthenticated access
    was asked for explicitly (see create_app), so then every request passes.
    """
    expected = configured_token(settings)
    if expected is None:
        return
    given = credentials.credentials if credentials is not None else ""
    # Constant-time comparison, so response timing does not leak the token.
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise HTTPException(
            status_code=401,
            detail="missing or wrong bearer token (Authorization: Bearer <ORCH_API_TOKEN>)",
            headers={"WWW-Authenticate": "Bearer"},
        )


AuthDep = Depends(require_token)
