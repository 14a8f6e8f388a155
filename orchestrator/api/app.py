"""The FastAPI application: create_app(settings) wires Redis, the routers and the error shape."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import redis
from fastapi import FastAPI

from orchestrator.api.auth import ApiKeyMiddleware, ScopeTable
from orchestrator.api.deps import configured_token
from orchestrator.api.errors import BodyLimitMiddleware, install_error_handlers
from orchestrator.api.models import UPLOADS_PATH
from orchestrator.api.ratelimit import KeyRateLimiter
from orchestrator.api.routes import audit, keys, runs, schedules, service, sweeps, uploads
from orchestrator.api.sse import StreamSlots, stream_resources
from orchestrator.api.ui import PREFIX as UI_PREFIX
from orchestrator.api.ui import cookie_caller, install_ui
from orchestrator.api.ui.session import Sessions
from orchestrator.azure.gateway import AzureGateway
from orchestrator.chain.queue import CHAIN_QUEUE
from orchestrator.observability.logs import (
    configure_logging,
    route_uvicorn_logs,
    secrets_from_settings,
)
from orchestrator.observability.prometheus import OrchestratorCollector, build_registry
from orchestrator.settings import Settings, get_settings
from orchestrator.store import RunStore
from orchestrator.store.apikeys import KeyRing
from orchestrator.store.connection import RedisTarget, redis_client

logger = logging.getLogger("orchestrator.api")

UNAUTHENTICATED_WARNING = (
    "ORCH_API_TOKEN is not set and ORCH_API_ALLOW_UNAUTHENTICATED is on: "
    "the API accepts requests from anyone who can reach it"
)
# Fail fast when Redis is down (a 503, not a hanging request); reads must
# still outlast the event stream's blocking XREAD.
CONNECT_TIMEOUT_SECONDS = 2.0
SOCKET_TIMEOUT_SECONDS = 15.0
# A manifest of MAX_MANIFEST_FILES entries, each a path of up to 1 KiB plus a digest.
MANIFEST_MAX_BYTES = 16 * 1024 * 1024


# Every router the app serves, in this order; the middleware reads their scopes.
ROUTERS = (
    service.router,
    runs.router,
    uploads.router,
    schedules.router,
    sweeps.router,
    keys.router,
    audit.router,
)


class ApiConfigError(RuntimeError):
    """The API refuses to start with these settings."""


def _redis_client(target: RedisTarget) -> redis.Redis:
    return redis_client(
        target,
        socket_connect_timeout=CONNECT_TIMEOUT_SECONDS,
        socket_timeout=SOCKET_TIMEOUT_SECONDS,
    )


def _stream_redis_client(target: RedisTarget, max_streams: int) -> redis.Redis:
    """The event streams' own client: a bounded pool (a stream waits for a connection
    rather than opening one more), apart from the pool every other route uses."""
    return redis_client(
        target,
        max_connections=stream_resources(max_streams),
        pool_timeout=CONNECT_TIMEOUT_SECONDS,
        socket_connect_timeout=CONNECT_TIMEOUT_SECONDS,
        socket_timeout=SOCKET_TIMEOUT_SECONDS,
    )


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    authenticated = configured_token(settings) is not None
    if not authenticated and not settings.api_allow_unauthenticated:
        raise ApiConfigError(
            "ORCH_API_TOKEN is not set (or empty): set it, or set "
            "ORCH_API_ALLOW_UNAUTHENTICATED=true to serve without authentication "
            "(local development only)"
        )
    client = _redis_client(settings.redis_target)
    store = RunStore(client)
    stream_client = _stream_redis_client(settings.redis_target, settings.api_max_streams)
    # The Celery broker is the same Redis today; pinged and measured on its own
    # so /healthz and queue depth stay right if it ever moves.
    broker = client

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Here, not in create_app: uvicorn applies its own logging config after the app
        # is built and before startup; this takes its loggers over again.
        configure_logging(settings.log_level, secrets=secrets_from_settings(settings))
        route_uvicorn_logs()
        if not authenticated:
            logger.warning(UNAUTHENTICATED_WARNING)
        yield
        client.close()
        stream_client.close()

    app = FastAPI(
        title="batchai-orchestrator",
        version="1",
        summary="Asynchronous Azure Batch AI training runs over HTTP.",
        description=(
            "Submit a run and get its id at once; follow it with GET /v1/runs/{id} or its "
            "Server-Sent Events; fetch its outputs when it has succeeded. Every route except "
            "/healthz, /docs and /openapi.json needs `Authorization: Bearer <ORCH_API_TOKEN>` "
            "or `Bearer <an API key>` whose scopes include the route's (403 names the one "
            "lacking); a key over its rate gets 429 with Retry-After. "
            'Errors are `{"message": "<field>: <problem>", "detail": ...}`.'
        ),
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.store = store
    # Uploads and outputs go through the share: the API and the workers share no disk.
    app.state.gateway = AzureGateway(settings)
    keyring = KeyRing(client, store.keys)
    app.state.keyring = keyring
    app.state.broker = broker
    app.state.stream_store = RunStore(stream_client)
    app.state.stream_slots = StreamSlots(
        settings.api_max_streams, settings.api_max_streams_per_client
    )
    app.state.registry = build_registry(OrchestratorCollector(store, broker, CHAIN_QUEUE))
    install_error_handlers(app)
    app.add_middleware(
        BodyLimitMiddleware,
        max_bytes=settings.api_max_body_bytes,
        by_prefix=[
            (f"{UPLOADS_PATH}/content/", settings.input_max_bytes),
            (UPLOADS_PATH, MANIFEST_MAX_BYTES),
        ],
    )
    # The dashboard (api/ui/): its own login; its session cookie also reads the API.
    sessions = Sessions(client, store.keys, keyring, configured_token(settings))

    # Added last, so it runs first: a caller without a credential, the scope or
    # rate left is answered before the body limit, the body parser or any route
    # sees the request.
    app.add_middleware(
        ApiKeyMiddleware,
        token=configured_token(settings),
        keyring=keyring,
        limiter=KeyRateLimiter(settings.redis_url, client, store.keys.rate_limit_prefix),
        scopes=ScopeTable(ROUTERS),
        own_auth_prefix=UI_PREFIX,
        other_caller=cookie_caller(sessions),
    )
    for router in ROUTERS:
        app.include_router(router)
    install_ui(app, sessions)
    return app
