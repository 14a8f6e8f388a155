"""Dependencies shared by the routers, as `Annotated` aliases (SettingsDep, StoreDep, ...)
and the scope each route needs (ReadAccess, SubmitAccess, CancelAccess, AdminAccess)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Header, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from orchestrator.api.auth import (
    UNAUTHORIZED_MESSAGE,
    Caller,
    ScopeCheck,
    lacks_scope_message,
)
from orchestrator.azure.gateway import Gateway
from orchestrator.domain.access import Scope
from orchestrator.inputs.uploads import ShareUploads
from orchestrator.settings import Settings
from orchestrator.store import RunStore
from orchestrator.store.apikeys import KeyRing


# The dependencies below are `async def` although they only read app.state:
# FastAPI runs a sync dependency in a worker thread, a hop to the thread pool and
# back on every request (measured in benchmarks/enqueue_throughput.py).
def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _store(request: Request) -> RunStore:
    store: RunStore = request.app.state.store
    return store


def _gateway(request: Request) -> Gateway:
    gateway: Gateway = request.app.state.gateway
    return gateway


async def get_settings(request: Request) -> Settings:
    return _settings(request)


async def get_store(request: Request) -> RunStore:
    return _store(request)


async def get_gateway(request: Request) -> Gateway:
    return _gateway(request)


async def get_uploads(request: Request) -> ShareUploads:
    settings = _settings(request)
    return ShareUploads(
        gateway=_gateway(request),
        book=_store(request).uploads,
        share=settings.azure_file_share,
        max_bytes=settings.input_max_bytes,
    )


async def get_keyring(request: Request) -> KeyRing:
    keyring: KeyRing = request.app.state.keyring
    return keyring


# A submission's key: the same key with the same body answers what the first
# request created (200); with another body, 409.
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=200,
        description="The same key with the same body returns what the first request "
        "created; with a different body, 409.",
    ),
]

SettingsDep = Annotated[Settings, Depends(get_settings)]
StoreDep = Annotated[RunStore, Depends(get_store)]
GatewayDep = Annotated[Gateway, Depends(get_gateway)]
UploadsDep = Annotated[ShareUploads, Depends(get_uploads)]
KeyRingDep = Annotated[KeyRing, Depends(get_keyring)]

# auto_error=False: a missing header is answered by the middleware (401 with
# WWW-Authenticate), not by HTTPBearer's own 403.
_bearer = HTTPBearer(
    auto_error=False, description="ORCH_API_TOKEN, or an API key (`orchestrator keys create`)"
)


def configured_token(settings: Settings) -> str | None:
    """The API token, or None when unset or empty (an empty token would match no header)."""
    token = settings.api_token.get_secret_value() if settings.api_token is not None else ""
    return token or None


def get_caller(request: Request) -> Caller:
    """The caller ApiKeyMiddleware authenticated; 401 if none did."""
    caller = getattr(request.state, "caller", None)
    if not isinstance(caller, Caller):
        raise HTTPException(401, UNAUTHORIZED_MESSAGE, headers={"WWW-Authenticate": "Bearer"})
    return caller


CallerDep = Annotated[Caller, Depends(get_caller)]


class _RequireScope(ScopeCheck):
    """The route needs `scope`: checked by the middleware before the body is read,
    and here again (a second check costs nothing; this one documents the scheme)."""

    # async: pure CPU, so FastAPI runs it on the loop instead of hopping to a
    # worker thread and back (a sync dependency costs that on every request).
    async def __call__(
        self,
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> Caller:
        caller = get_caller(request)
        if not caller.may(self.scope):
            raise HTTPException(403, lacks_scope_message(caller, self.scope))
        return caller


def requires(scope: Scope) -> Any:
    return Depends(_RequireScope(scope))


ReadAccess = requires(Scope.READ)
SubmitAccess = requires(Scope.SUBMIT)
CancelAccess = requires(Scope.CANCEL)
AdminAccess = requires(Scope.ADMIN)
