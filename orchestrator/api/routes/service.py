"""Service endpoints: /healthz (open, for load balancers) and /metrics (Prometheus)."""

from __future__ import annotations

import redis
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from orchestrator.api.deps import ReadAccess
from orchestrator.api.errors import REDIS_RETRY_AFTER_SECONDS
from orchestrator.api.models import Health

router = APIRouter(tags=["service"])


def _ping(client: redis.Redis) -> str:
    try:
        client.ping()
    except redis.exceptions.RedisError:
        return "unreachable"
    return "ok"


@router.get(
    "/healthz",
    response_model=Health,
    responses={503: {"model": Health, "description": "Redis or the broker is unreachable"}},
)
def healthz(request: Request) -> JSONResponse:
    """200 when the run store's Redis and the Celery broker both answer PING."""
    state = request.app.state
    health = Health(status="ok", redis=_ping(state.store.redis), broker=_ping(state.broker))
    if "unreachable" in (health.redis, health.broker):
        health.status = "unavailable"
        return JSONResponse(
            health.model_dump(),
            status_code=503,
            headers={"Retry-After": str(REDIS_RETRY_AFTER_SECONDS)},
        )
    return JSONResponse(health.model_dump())


@router.get(
    "/metrics",
    dependencies=[ReadAccess],
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}, 401: {}, 403: {}, 429: {}, 503: {}},
)
def metrics(request: Request) -> Response:
    """Prometheus text format (see orchestrator.observability.prometheus for each family)."""
    return Response(generate_latest(request.app.state.registry), media_type=CONTENT_TYPE_LATEST)
