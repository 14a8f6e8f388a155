"""What every Batch AI route shares: path patterns, the route wrapper (resource-name
checks, resource-group existence, the model lock; the api-version is checked by the
Router), the long-running-operation headers and the scopes clusters and file servers
live in. routes.py, cluster_routes.py and job_routes.py register the routes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from emulator.batchai import validation
from emulator.batchai.models import BatchAIState
from emulator.batchai.records import API_2018, API_PREVIEW, ClusterKey, Operation
from emulator.core import EmulatorContext
from emulator.errors import NotFound
from emulator.http import Request, Response, Router, json_response

SEG = r"[^/]+"
SUB = rf"/subscriptions/(?P<sub>{SEG})"
GROUP = rf"{SUB}/resourceGroups/(?P<rg>{SEG})/providers/Microsoft\.BatchAI"
WS = rf"{GROUP}/workspaces/(?P<workspaceName>{SEG})"
EXP = rf"{WS}/experiments/(?P<experimentName>{SEG})"
LOCATIONS = rf"{SUB}/providers/Microsoft\.BatchAI/locations/(?P<location>{SEG})"
# Path parameters that name Batch AI resources (spec: ^[-\w_]+$, 1-64 characters).
_NAMED = ("workspaceName", "experimentName", "clusterName", "jobName", "fileServerName")

BOTH = (API_2018, API_PREVIEW)
NEW = (API_2018,)
OLD = (API_PREVIEW,)

Params = dict[str, str]
Handler = Callable[[Request, Params], Response]
PreviewHandler = Callable[[Request, Params, bool], Response]


class BatchAIRoutes:
    """The router, context and state the Batch AI route modules register against."""

    def __init__(self, router: Router, ctx: EmulatorContext, state: BatchAIState) -> None:
        self.router = router
        self.ctx = ctx
        self.state = state

    def route(
        self, method: str, pattern: str, operation: str, versions: tuple[str, ...]
    ) -> Callable[[Handler], Handler]:
        ctx, state = self.ctx, self.state

        def wrap(handler: Handler) -> Handler:
            def guarded(request: Request, params: Params) -> Response:
                for field in _NAMED:
                    if field in params:
                        validation.check_name(field, params[field])
                if "rg" in params and not ctx.resource_groups.exists(params["sub"], params["rg"]):
                    raise NotFound(
                        "ResourceGroupNotFound",
                        f"Resource group '{params['rg']}' could not be found.",
                    )
                # Under the lock, the ticker cannot change what a response describes.
                with state.lock:
                    state.advance()
                    return handler(request, params)

            self.router.add(method, pattern, operation, "arm", frozenset(versions))(guarded)
            return handler

        return wrap

    @staticmethod
    def accepted(
        request: Request,
        params: Params,
        op: Operation,
        status: int,
        body: dict[str, Any] | None = None,
        with_location: bool = True,
    ) -> Response:
        location = params.get("location_hint", "eastus")
        base = (
            f"{request.base_url}/subscriptions/{params['sub']}/providers/Microsoft.BatchAI/"
            f"locations/{location}"
        )
        version = request.query["api-version"]
        headers = {
            "Azure-AsyncOperation": f"{base}/operationstatuses/{op.op_id}?api-version={version}",
            "Retry-After": "1",
        }
        if with_location:
            headers["Location"] = f"{base}/operationresults/{op.op_id}?api-version={version}"
        if body is None:
            return Response(status, b"", headers)
        return json_response(status, body, headers)

    def workspace_scope(self, params: Params, preview: bool) -> tuple[str | None, str]:
        """(group, workspace key) a cluster or file server lives in: preview, the group
        (None on subscription-wide lists) and workspace ""; else the workspace, which must exist."""
        if preview:
            return params.get("rg"), ""
        self.state.workspace(params["sub"], params["rg"], params["workspaceName"])
        return params["rg"], params["workspaceName"].lower()

    def scoped_key(self, params: Params, preview: bool, name_param: str) -> ClusterKey:
        _, ws = self.workspace_scope(params, preview)
        return (params["sub"].lower(), params["rg"].lower(), ws, params[name_param].lower())

    def location_of(self, body: dict[str, Any], params: Params, preview: bool) -> str:
        if preview:
            return validation.json_string(body, "location", required=True)
        # 2018-05-01 child resources live where their workspace lives.
        return self.state.workspace(params["sub"], params["rg"], params["workspaceName"]).location


def bind(handler: PreviewHandler, preview: bool) -> Handler:
    def bound(request: Request, params: Params) -> Response:
        return handler(request, params, preview)

    return bound
