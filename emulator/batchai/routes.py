"""Batch AI HTTP routes for api-versions 2018-05-01 and 2017-09-01-preview: request in,
response out, ARM errors and the long-running-operation protocol. This module serves
the operation status/result, operations, usages, workspace and experiment routes and
registers the rest: clusters and file servers (cluster_routes.py), jobs (job_routes.py);
what they share is in routing.py. Field checks are in validation.py, state and rules in
models.py and scheduler.py, response bodies in shapes.py."""

from __future__ import annotations

from typing import Any

from emulator.batchai import cluster_routes, job_routes, shapes, validation
from emulator.batchai.models import BatchAIState
from emulator.batchai.records import stamp
from emulator.batchai.routing import (
    BOTH,
    EXP,
    GROUP,
    LOCATIONS,
    NEW,
    SEG,
    SUB,
    WS,
    BatchAIRoutes,
    Params,
)
from emulator.core import EmulatorContext
from emulator.http import Request, Response, Router, json_response


def register(router: Router, ctx: EmulatorContext, state: BatchAIState) -> None:
    api = BatchAIRoutes(router, ctx, state)
    route, accepted = api.route, api.accepted
    both, new = BOTH, NEW

    @route("GET", rf"{LOCATIONS}/operationstatuses/(?P<op>{SEG})", "OperationStatuses_Get", both)
    def operation_status(request: Request, params: Params) -> Response:
        op = state.operation(params["op"])
        body: dict[str, Any] = {
            "id": request.path,
            "name": op.op_id,
            "status": "Succeeded" if op.ended else "InProgress",
            "startTime": stamp(op.started),
        }
        if op.ended:
            body["endTime"] = stamp(op.ended)
            return json_response(200, body)
        return json_response(200, body, {"Retry-After": "1"})

    @route("GET", rf"{LOCATIONS}/operationresults/(?P<op>{SEG})", "OperationResults_Get", both)
    def operation_result(request: Request, params: Params) -> Response:
        op = state.operation(params["op"])
        if not op.ended:
            return Response(
                202, b"", {"Location": request.base_url + request.raw_path, "Retry-After": "1"}
            )
        result = op.result()
        return json_response(200, result) if result is not None else Response(204)

    # -------------------------------------------------------- operations/usages

    @route("GET", r"/providers/Microsoft\.BatchAI/operations", "Operations_List", both)
    def list_operations(request: Request, params: Params) -> Response:
        return json_response(200, shapes.page(shapes.OPERATIONS))

    @route("GET", rf"{LOCATIONS}/usages", "Usages_List", new)
    def list_usages(request: Request, params: Params) -> Response:
        sub = params["sub"].lower()
        clusters = [c for k, c in state.clusters.items() if k[0] == sub]
        dedicated = sum(
            shapes.vcpus(c.vm_size) * len(c.nodes) for c in clusters if not c.low_priority
        )
        low = sum(shapes.vcpus(c.vm_size) * len(c.nodes) for c in clusters if c.low_priority)
        rows = [
            ("Clusters", len(clusters), 200),
            ("Total Cluster Dedicated Regional vCPUs", dedicated, 600),
            ("Total Cluster LowPriority Regional vCPUs", low, 600),
        ]
        return json_response(
            200,
            shapes.page(
                [
                    {
                        "unit": "Count",
                        "currentValue": current,
                        "limit": limit,
                        "name": {"value": name, "localizedValue": name},
                    }
                    for name, current, limit in rows
                ]
            ),
        )

    # ------------------------------------------------------------- workspaces

    @route("GET", rf"{SUB}/providers/Microsoft\.BatchAI/workspaces", "Workspaces_List", new)
    def list_workspaces(request: Request, params: Params) -> Response:
        items = state.list_workspaces(params["sub"], None)
        return json_response(200, shapes.page([shapes.workspace(w) for w in items]))

    @route("GET", rf"{GROUP}/workspaces", "Workspaces_ListByResourceGroup", new)
    def list_workspaces_by_group(request: Request, params: Params) -> Response:
        items = state.list_workspaces(params["sub"], params["rg"])
        return json_response(200, shapes.page([shapes.workspace(w) for w in items]))

    @route("PUT", WS, "Workspaces_Create", new)
    def create_workspace(request: Request, params: Params) -> Response:
        body = validation.json_object(request.json(), "body")
        location = validation.json_string(body, "location", required=True)
        tags = validation.tags(body)
        ws, _ = state.put_workspace(
            params["sub"], params["rg"], params["workspaceName"], location, tags
        )
        op = state.start_operation("Workspaces_Create", lambda: True, lambda: shapes.workspace(ws))
        return accepted(
            request, {**params, "location_hint": ws.location}, op, 200, shapes.workspace(ws)
        )

    @route("PATCH", WS, "Workspaces_Update", new)
    def update_workspace(request: Request, params: Params) -> Response:
        body = validation.json_object(request.json() or {}, "body")
        ws = state.workspace(params["sub"], params["rg"], params["workspaceName"])
        if "tags" in body:
            ws.tags = validation.tags(body)
        return json_response(200, shapes.workspace(ws))

    @route("GET", WS, "Workspaces_Get", new)
    def get_workspace(request: Request, params: Params) -> Response:
        ws = state.workspace(params["sub"], params["rg"], params["workspaceName"])
        return json_response(200, shapes.workspace(ws))

    @route("DELETE", WS, "Workspaces_Delete", new)
    def delete_workspace(request: Request, params: Params) -> Response:
        if not state.delete_workspace(params["sub"], params["rg"], params["workspaceName"]):
            return Response(204)
        return accepted(
            request, params, state.start_operation("Workspaces_Delete", lambda: True), 202
        )

    # ------------------------------------------------------------ experiments

    @route("GET", rf"{WS}/experiments", "Experiments_ListByWorkspace", new)
    def list_experiments(request: Request, params: Params) -> Response:
        items = state.list_experiments(params["sub"], params["rg"], params["workspaceName"])
        return json_response(200, shapes.page([shapes.experiment(e) for e in items]))

    @route("PUT", EXP, "Experiments_Create", new)
    def create_experiment(request: Request, params: Params) -> Response:
        if request.body:
            validation.json_object(request.json(), "body")
        exp, _ = state.put_experiment(
            params["sub"], params["rg"], params["workspaceName"], params["experimentName"]
        )
        op = state.start_operation(
            "Experiments_Create", lambda: True, lambda: shapes.experiment(exp)
        )
        return accepted(request, params, op, 200, shapes.experiment(exp))

    @route("GET", EXP, "Experiments_Get", new)
    def get_experiment(request: Request, params: Params) -> Response:
        exp = state.experiment(
            params["sub"], params["rg"], params["workspaceName"], params["experimentName"]
        )
        return json_response(200, shapes.experiment(exp))

    @route("DELETE", EXP, "Experiments_Delete", new)
    def delete_experiment(request: Request, params: Params) -> Response:
        if not state.delete_experiment(
            params["sub"], params["rg"], params["workspaceName"], params["experimentName"]
        ):
            return Response(204)
        return accepted(
            request, params, state.start_operation("Experiments_Delete", lambda: True), 202
        )

    cluster_routes.register(api)
    job_routes.register(api)
