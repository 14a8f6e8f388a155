"""Batch AI HTTP routes for api-versions 2018-05-01 and 2017-09-01-preview: request in,
response out. Validation, ARM errors and the long-running-operation protocol live here;
state and rules live in models.py."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from emulator.batchai import shapes
from emulator.batchai.models import (
    API_2018,
    API_PREVIEW,
    BatchAIState,
    ClusterKey,
    Job,
    JobKey,
    Operation,
    stamp,
)
from emulator.batchai.runner import toolkit_of
from emulator.core import EmulatorContext
from emulator.http import HttpError, Request, Response, Router, json_response

_NAME = re.compile(r"^[-\w_]+$")
_SEG = r"[^/]+"
SUB = rf"/subscriptions/(?P<sub>{_SEG})"
GROUP = rf"{SUB}/resourceGroups/(?P<rg>{_SEG})/providers/Microsoft\.BatchAI"
WS = rf"{GROUP}/workspaces/(?P<workspaceName>{_SEG})"
EXP = rf"{WS}/experiments/(?P<experimentName>{_SEG})"
LOCATIONS = rf"{SUB}/providers/Microsoft\.BatchAI/locations/(?P<location>{_SEG})"
# Path parameters that name Batch AI resources (spec: ^[-\w_]+$, 1-64 characters).
_NAMED = ("workspaceName", "experimentName", "clusterName", "jobName", "fileServerName")

Params = dict[str, str]
Handler = Callable[[Request, Params], Response]


def register(router: Router, ctx: EmulatorContext, state: BatchAIState) -> None:
    def route(
        method: str, pattern: str, operation: str, versions: tuple[str, ...]
    ) -> Callable[[Handler], Handler]:
        def wrap(handler: Handler) -> Handler:
            def guarded(request: Request, params: Params) -> Response:
                _check_api_version(request, versions)
                for field in _NAMED:
                    if field in params:
                        _check_name(field, params[field])
                if "rg" in params and not ctx.resource_groups.exists(params["sub"], params["rg"]):
                    raise HttpError(
                        404,
                        "ResourceGroupNotFound",
                        f"Resource group '{params['rg']}' could not be found.",
                    )
                state.advance()
                return handler(request, params)

            router.add(method, pattern, operation, "arm")(guarded)
            return handler

        return wrap

    both = (API_2018, API_PREVIEW)
    new = (API_2018,)
    old = (API_PREVIEW,)

    # ------------------------------------------------------------ LRO plumbing

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

    @route("GET", rf"{LOCATIONS}/operationstatuses/(?P<op>{_SEG})", "OperationStatuses_Get", both)
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

    @route("GET", rf"{LOCATIONS}/operationresults/(?P<op>{_SEG})", "OperationResults_Get", both)
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
        body = _object(request.json(), "body")
        location = _string(body, "location", required=True)
        tags = _tags(body)
        ws, _ = state.put_workspace(
            params["sub"], params["rg"], params["workspaceName"], location, tags
        )
        op = state.start_operation("Workspaces_Create", lambda: True, lambda: shapes.workspace(ws))
        return accepted(
            request, {**params, "location_hint": ws.location}, op, 200, shapes.workspace(ws)
        )

    @route("PATCH", WS, "Workspaces_Update", new)
    def update_workspace(request: Request, params: Params) -> Response:
        body = _object(request.json() or {}, "body")
        ws = state.workspace(params["sub"], params["rg"], params["workspaceName"])
        if "tags" in body:
            with state.lock:
                ws.tags = _tags(body)
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
            _object(request.json(), "body")
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

    # --------------------------------------------------------------- clusters

    def cluster_key(params: Params, preview: bool) -> ClusterKey:
        ws = "" if preview else params["workspaceName"]
        if not preview:
            state.workspace(params["sub"], params["rg"], ws)
        return (
            params["sub"].lower(),
            params["rg"].lower(),
            ws.lower(),
            params["clusterName"].lower(),
        )

    def cluster_body(key: ClusterKey, params: Params) -> dict[str, Any]:
        return shapes.cluster(state.cluster(key))

    def location_of(body: dict[str, Any], params: Params, preview: bool) -> str:
        if preview:
            return _string(body, "location", required=True)
        # 2018-05-01 child resources live where their workspace lives.
        return state.workspace(params["sub"], params["rg"], params["workspaceName"]).location

    def create_cluster(request: Request, params: Params, preview: bool) -> Response:
        key = cluster_key(params, preview)
        body = _object(request.json(), "body")
        properties = _object(body.get("properties"), "properties")
        _string(properties, "vmSize", "properties.vmSize", required=True)
        users = _object(properties.get("userAccountSettings"), "properties.userAccountSettings")
        _string(
            users, "adminUserName", "properties.userAccountSettings.adminUserName", required=True
        )
        _check_scale(properties.get("scaleSettings"), required=False)
        location = location_of(body, params, preview)
        resource_id = shapes.child_id(
            params["sub"],
            params["rg"],
            params.get("workspaceName", ""),
            "clusters",
            params["clusterName"],
        )
        state.put_cluster(
            key,
            params["clusterName"],
            API_PREVIEW if preview else API_2018,
            location,
            _tags(body),
            properties,
            resource_id,
        )
        op = state.start_operation(
            "Clusters_Create",
            lambda: (
                key not in state.clusters or state.clusters[key].provisioning_state != "creating"
            ),
            lambda: cluster_body(key, params) if key in state.clusters else None,
        )
        return accepted(
            request, {**params, "location_hint": location}, op, 200, cluster_body(key, params)
        )

    def update_cluster(request: Request, params: Params, preview: bool) -> Response:
        key = cluster_key(params, preview)
        body = _object(request.json() or {}, "body")
        properties = _object(body.get("properties") or {}, "properties")
        scale = properties.get("scaleSettings")
        if scale is not None:
            _check_scale(scale, required=True)
        cluster = state.update_cluster(key, scale)
        if preview and "tags" in body:
            with state.lock:
                cluster.tags = _tags(body)
        return json_response(200, cluster_body(key, params))

    def get_cluster(request: Request, params: Params, preview: bool) -> Response:
        return json_response(200, cluster_body(cluster_key(params, preview), params))

    def delete_cluster(request: Request, params: Params, preview: bool) -> Response:
        if not state.delete_cluster(cluster_key(params, preview)):
            return Response(204)
        return accepted(
            request, params, state.start_operation("Clusters_Delete", lambda: True), 202
        )

    def cluster_logins(request: Request, params: Params, preview: bool) -> Response:
        c = state.cluster(cluster_key(params, preview))
        return json_response(
            200,
            shapes.page(
                [
                    {"nodeId": n.node_id, "ipAddress": "127.0.0.1", "port": 50000 + i}
                    for i, n in enumerate(c.nodes)
                ]
            ),
        )

    def list_clusters(request: Request, params: Params, preview: bool) -> Response:
        if preview:
            items = state.list_clusters(params["sub"], params.get("rg"), "")
        else:
            state.workspace(params["sub"], params["rg"], params["workspaceName"])
            items = state.list_clusters(
                params["sub"], params["rg"], params["workspaceName"].lower()
            )
        return json_response(200, shapes.page([shapes.cluster(c) for c in items]))

    for preview, base, versions in ((False, WS, new), (True, GROUP, old)):
        one = rf"{base}/clusters/(?P<clusterName>{_SEG})"
        for method, pattern, operation, handler in (
            ("PUT", one, "Clusters_Create", create_cluster),
            ("PATCH", one, "Clusters_Update", update_cluster),
            ("GET", one, "Clusters_Get", get_cluster),
            ("DELETE", one, "Clusters_Delete", delete_cluster),
            (
                "POST",
                rf"{one}/listRemoteLoginInformation",
                "Clusters_ListRemoteLoginInformation",
                cluster_logins,
            ),
            (
                "GET",
                rf"{base}/clusters",
                "Clusters_ListByResourceGroup" if preview else "Clusters_ListByWorkspace",
                list_clusters,
            ),
        ):
            route(method, pattern, operation, versions)(_bind(handler, preview))
    route("GET", rf"{SUB}/providers/Microsoft\.BatchAI/clusters", "Clusters_List", old)(
        _bind(list_clusters, True)
    )

    # ------------------------------------------------------------------- jobs

    def job_key(params: Params, preview: bool) -> JobKey:
        sub, group = params["sub"].lower(), params["rg"].lower()
        if preview:
            return (sub, group, "", "", params["jobName"].lower())
        state.experiment(
            params["sub"], params["rg"], params["workspaceName"], params["experimentName"]
        )
        return (
            sub,
            group,
            params["workspaceName"].lower(),
            params["experimentName"].lower(),
            params["jobName"].lower(),
        )

    def create_job(request: Request, params: Params, preview: bool) -> Response:
        key = job_key(params, preview)
        body = _object(request.json(), "body")
        properties = _object(body.get("properties"), "properties")
        _check_job(properties)
        location = location_of(body, params, preview)
        cluster_ref = _object(properties.get("cluster"), "properties.cluster")
        cluster_id = _string(cluster_ref, "id", "properties.cluster.id", required=True)
        target = _parse_cluster_id(cluster_id, params, preview)
        if preview:
            resource_id = shapes.child_id(
                params["sub"], params["rg"], "", "jobs", params["jobName"]
            )
        else:
            resource_id = (
                shapes.child_id(
                    params["sub"],
                    params["rg"],
                    params["workspaceName"],
                    "experiments",
                    params["experimentName"],
                )
                + f"/jobs/{params['jobName']}"
            )
        j, _ = state.put_job(
            key,
            params["jobName"],
            API_PREVIEW if preview else API_2018,
            location,
            _tags(body),
            properties,
            target,
            cluster_id,
            resource_id,
        )
        op = state.start_operation(
            "Jobs_Create", lambda: True, lambda: shapes.job(j) if key in state.jobs else None
        )
        return accepted(request, {**params, "location_hint": location}, op, 200, shapes.job(j))

    def get_job(request: Request, params: Params, preview: bool) -> Response:
        return json_response(200, shapes.job(state.job(job_key(params, preview))))

    def delete_job(request: Request, params: Params, preview: bool) -> Response:
        if not state.delete_job(job_key(params, preview)):
            return Response(204)
        return accepted(request, params, state.start_operation("Jobs_Delete", lambda: True), 202)

    def terminate_job(request: Request, params: Params, preview: bool) -> Response:
        j = state.terminate_job(job_key(params, preview))
        op = state.start_operation(
            "Jobs_Terminate", lambda: j.execution_state not in ("running", "terminating")
        )
        return accepted(request, params, op, 202, with_location=False)

    def job_logins(request: Request, params: Params, preview: bool) -> Response:
        j = state.job(job_key(params, preview))
        cluster = state.clusters.get(j.cluster_key)
        nodes = [n for n in cluster.nodes if n.job == j.key] if cluster else []
        return json_response(
            200,
            shapes.page(
                [
                    {"nodeId": n.node_id, "ipAddress": "127.0.0.1", "port": 50000 + i}
                    for i, n in enumerate(nodes)
                ]
            ),
        )

    def list_jobs(request: Request, params: Params, preview: bool) -> Response:
        if preview:
            items = state.list_jobs(params["sub"], params.get("rg"), "", "")
        else:
            state.experiment(
                params["sub"], params["rg"], params["workspaceName"], params["experimentName"]
            )
            items = state.list_jobs(
                params["sub"],
                params["rg"],
                params["workspaceName"].lower(),
                params["experimentName"].lower(),
            )
        return json_response(200, shapes.page([shapes.job(j) for j in items]))

    def list_output_files(request: Request, params: Params, preview: bool) -> Response:
        j = state.job(job_key(params, preview))
        directory_id = request.query.get("outputdirectoryid")
        if not directory_id:
            raise HttpError(
                400, "InvalidParameter", "outputdirectoryid: the query parameter is required"
            )
        expiry = _int_query(request, "linkexpiryinminutes", 60, 5, 600)
        limit = _int_query(request, "maxresults", 1000, 1, 1000)
        subdir = request.query.get("directory", ".")
        return json_response(
            200,
            shapes.page(
                _output_files(
                    ctx, state, j, directory_id, subdir, expiry, limit, request.base_url, preview
                )
            ),
        )

    for preview, base, versions in ((False, EXP, new), (True, GROUP, old)):
        one = rf"{base}/jobs/(?P<jobName>{_SEG})"
        for method, pattern, operation, handler in (
            ("PUT", one, "Jobs_Create", create_job),
            ("GET", one, "Jobs_Get", get_job),
            ("DELETE", one, "Jobs_Delete", delete_job),
            ("POST", rf"{one}/terminate", "Jobs_Terminate", terminate_job),
            ("POST", rf"{one}/listOutputFiles", "Jobs_ListOutputFiles", list_output_files),
            (
                "POST",
                rf"{one}/listRemoteLoginInformation",
                "Jobs_ListRemoteLoginInformation",
                job_logins,
            ),
            (
                "GET",
                rf"{base}/jobs",
                "Jobs_ListByResourceGroup" if preview else "Jobs_ListByExperiment",
                list_jobs,
            ),
        ):
            route(method, pattern, operation, versions)(_bind(handler, preview))
    route("GET", rf"{SUB}/providers/Microsoft\.BatchAI/jobs", "Jobs_List", old)(
        _bind(list_jobs, True)
    )

    # ----------------------------------------------------------- file servers

    def server_key(params: Params, preview: bool) -> ClusterKey:
        ws = "" if preview else params["workspaceName"]
        if not preview:
            state.workspace(params["sub"], params["rg"], ws)
        return (
            params["sub"].lower(),
            params["rg"].lower(),
            ws.lower(),
            params["fileServerName"].lower(),
        )

    def server_body(key: ClusterKey) -> dict[str, Any]:
        return shapes.file_server(state.file_server(key))

    def create_server(request: Request, params: Params, preview: bool) -> Response:
        key = server_key(params, preview)
        body = _object(request.json(), "body")
        properties = _object(body.get("properties"), "properties")
        _string(properties, "vmSize", "properties.vmSize", required=True)
        _object(properties.get("sshConfiguration"), "properties.sshConfiguration")
        _object(properties.get("dataDisks"), "properties.dataDisks")
        location = location_of(body, params, preview)
        resource_id = shapes.child_id(
            params["sub"],
            params["rg"],
            params.get("workspaceName", ""),
            "fileservers",
            params["fileServerName"],
        )
        state.put_file_server(
            key,
            params["fileServerName"],
            API_PREVIEW if preview else API_2018,
            location,
            _tags(body),
            properties,
            resource_id,
        )
        op = state.start_operation("FileServers_Create", lambda: True, lambda: server_body(key))
        return accepted(request, {**params, "location_hint": location}, op, 200, server_body(key))

    def get_server(request: Request, params: Params, preview: bool) -> Response:
        return json_response(200, server_body(server_key(params, preview)))

    def delete_server(request: Request, params: Params, preview: bool) -> Response:
        if not state.delete_file_server(server_key(params, preview)):
            return Response(204)
        return accepted(
            request, params, state.start_operation("FileServers_Delete", lambda: True), 202
        )

    def list_servers(request: Request, params: Params, preview: bool) -> Response:
        if preview:
            items = state.list_file_servers(params["sub"], params.get("rg"), "")
        else:
            state.workspace(params["sub"], params["rg"], params["workspaceName"])
            items = state.list_file_servers(
                params["sub"], params["rg"], params["workspaceName"].lower()
            )
        return json_response(200, shapes.page([shapes.file_server(f) for f in items]))

    for preview, base, versions in ((False, WS, new), (True, GROUP, old)):
        one = rf"{base}/fileServers/(?P<fileServerName>{_SEG})"
        for method, pattern, operation, handler in (
            ("PUT", one, "FileServers_Create", create_server),
            ("GET", one, "FileServers_Get", get_server),
            ("DELETE", one, "FileServers_Delete", delete_server),
            (
                "GET",
                rf"{base}/fileServers",
                "FileServers_ListByResourceGroup" if preview else "FileServers_ListByWorkspace",
                list_servers,
            ),
        ):
            route(method, pattern, operation, versions)(_bind(handler, preview))
    route("GET", rf"{SUB}/providers/Microsoft\.BatchAI/fileServers", "FileServers_List", old)(
        _bind(list_servers, True)
    )


def _bind(handler: Callable[[Request, Params, bool], Response], preview: bool) -> Handler:
    def bound(request: Request, params: Params) -> Response:
        return handler(request, params, preview)

    return bound


# ------------------------------------------------------------------ validation


def _check_api_version(request: Request, versions: tuple[str, ...]) -> None:
    version = request.query.get("api-version")
    if version not in versions:
        shown = f"'{version}'" if version else "(missing)"
        raise HttpError(
            400,
            "InvalidApiVersionParameter",
            f"The api-version {shown} is invalid for this Batch AI path. The supported "
            f"versions are '{', '.join(versions)}'.",
        )


def _check_name(field: str, value: str) -> None:
    if not 1 <= len(value) <= 64 or not _NAME.match(value):
        raise HttpError(
            400,
            "InvalidParameter",
            f"{field}: '{value[:80]}' is invalid; names can only contain alphanumeric "
            "characters, dash (-) and underscore (_), and must be 1 through 64 characters long.",
        )


def _object(value: Any, field: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise HttpError(400, "InvalidParameter", f"{field}: a JSON object is required")
    return value


def _string(
    holder: dict[str, Any], key: str, field: str | None = None, required: bool = False
) -> str:
    value = holder.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value):
        raise HttpError(400, "InvalidParameter", f"{field or key}: a non-empty string is required")
    return value


def _int(
    holder: dict[str, Any], key: str, field: str, minimum: int = 0, required: bool = True
) -> int:
    value = holder.get(key)
    if value is None and not required:
        return minimum
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise HttpError(400, "InvalidParameter", f"{field}: an integer >= {minimum} is required")
    return value


def _int_query(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise HttpError(400, "InvalidParameter", f"{name}: must be an integer from {low} to {high}")
    return value


def _tags(body: dict[str, Any]) -> dict[str, str]:
    tags = body.get("tags") or {}
    if not isinstance(tags, dict) or not all(isinstance(v, str) for v in tags.values()):
        raise HttpError(400, "InvalidParameter", "tags: an object of strings is required")
    return dict(tags)


def _check_scale(scale: Any, required: bool) -> None:
    if scale is None and not required:
        return
    scale = _object(scale, "properties.scaleSettings")
    manual, auto = scale.get("manual"), scale.get("autoScale")
    if (manual is None) == (auto is None):
        raise HttpError(
            400,
            "InvalidParameter",
            "properties.scaleSettings: exactly one of manual or autoScale must be given",
        )
    if manual is not None:
        _int(
            _object(manual, "properties.scaleSettings.manual"),
            "targetNodeCount",
            "properties.scaleSettings.manual.targetNodeCount",
        )
        return
    auto = _object(auto, "properties.scaleSettings.autoScale")
    low = _int(auto, "minimumNodeCount", "properties.scaleSettings.autoScale.minimumNodeCount")
    high = _int(auto, "maximumNodeCount", "properties.scaleSettings.autoScale.maximumNodeCount")
    _int(
        auto,
        "initialNodeCount",
        "properties.scaleSettings.autoScale.initialNodeCount",
        required=False,
    )
    if high < low:
        raise HttpError(
            400,
            "InvalidParameter",
            "properties.scaleSettings.autoScale.maximumNodeCount: must be >= minimumNodeCount",
        )


def _check_job(properties: dict[str, Any]) -> None:
    _int(properties, "nodeCount", "properties.nodeCount", minimum=1)
    _string(properties, "stdOutErrPathPrefix", "properties.stdOutErrPathPrefix", required=True)
    toolkit = toolkit_of(properties)
    if toolkit is None:
        raise HttpError(
            400,
            "InvalidParameter",
            "properties: one toolkit settings object (e.g. cntkSettings, customToolkitSettings) "
            "is required",
        )
    settings = properties[toolkit]
    if toolkit == "cntkSettings" and (
        str(settings.get("languageType", "Python")).lower() == "brainscript"
        or (settings.get("configFilePath") and not settings.get("pythonScriptFilePath"))
    ):
        raise HttpError(
            400,
            "InvalidParameter",
            "properties.cntkSettings.configFilePath: BrainScript CNTK jobs are not supported "
            "by the emulator (no cntk binary); use languageType Python with pythonScriptFilePath",
        )
    for index, item in enumerate(properties.get("inputDirectories") or []):
        item = _object(item, f"properties.inputDirectories[{index}]")
        _string(item, "id", f"properties.inputDirectories[{index}].id", required=True)
        _string(item, "path", f"properties.inputDirectories[{index}].path", required=True)
    for index, item in enumerate(properties.get("outputDirectories") or []):
        item = _object(item, f"properties.outputDirectories[{index}]")
        _string(item, "id", f"properties.outputDirectories[{index}].id", required=True)
        _string(
            item, "pathPrefix", f"properties.outputDirectories[{index}].pathPrefix", required=True
        )
    for field in ("environmentVariables", "secrets"):
        for index, item in enumerate(properties.get(field) or []):
            item = _object(item, f"properties.{field}[{index}]")
            _string(item, "name", f"properties.{field}[{index}].name", required=True)


_CLUSTER_ID = re.compile(
    r"/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)/providers/Microsoft\.BatchAI/"
    r"(?:workspaces?/(?P<ws>[^/]+)/)?clusters/(?P<name>[^/]+)/?",
    re.IGNORECASE,
)


def _parse_cluster_id(cluster_id: str, params: Params, preview: bool) -> ClusterKey:
    found = _CLUSTER_ID.fullmatch(cluster_id.strip())
    if not found:
        raise HttpError(
            400,
            "InvalidParameter",
            "properties.cluster.id: not a Batch AI cluster resource id "
            "(/subscriptions/../resourceGroups/../providers/Microsoft.BatchAI/.../clusters/..)",
        )
    ws = "" if preview else (found.group("ws") or params["workspaceName"])
    return (
        found.group("sub").lower(),
        found.group("rg").lower(),
        ws.lower(),
        found.group("name").lower(),
    )


# ----------------------------------------------------------------- output files


def _output_files(
    ctx: EmulatorContext,
    state: BatchAIState,
    job: Job,
    directory_id: str,
    subdir: str,
    expiry_minutes: int,
    limit: int,
    base_url: str,
    preview: bool,
) -> list[dict[str, Any]]:
    with state.lock:
        layout = job.layout
        known = {d["id"].lower() for d in job.properties.get("outputDirectories") or []}
        if directory_id.lower() != "stdouterr" and directory_id.lower() not in known:
            raise HttpError(
                400,
                "InvalidParameter",
                f"outputdirectoryid: the job has no output directory '{directory_id}'",
            )
        if layout is None:
            return []  # the job has not started: nothing has been written yet
        if directory_id.lower() == "stdouterr":
            root = layout.stdouterr_dir
        else:
            root = next(
                p for i, p in layout.output_dirs.items() if i.lower() == directory_id.lower()
            )
        shares = dict(job.shares)
    folder = (root / subdir).resolve()
    if not folder.is_relative_to(root.resolve()):
        raise HttpError(400, "InvalidParameter", "directory: must stay inside the output directory")
    if not folder.is_dir():
        return []
    items: list[dict[str, Any]] = []
    for entry in sorted(folder.iterdir(), key=lambda p: p.name)[:limit]:
        if entry.is_dir():
            if not preview:
                items.append({"name": entry.name, "fileType": "directory"})
            continue
        url = _download_url(ctx, shares, entry.resolve(), base_url, expiry_minutes)
        info = entry.stat()
        item: dict[str, Any] = {
            "name": entry.name,
            "downloadUrl": url,
            "properties": {
                "lastModified": _mtime(info.st_mtime),
                "contentLength": info.st_size,
            },
        }
        if not preview:
            item["fileType"] = "file"
        items.append(item)
    return items


def _download_url(
    ctx: EmulatorContext, shares: dict[str, Path], path: Path, base_url: str, minutes: int
) -> str:
    for share, root in shares.items():
        resolved_root = root.resolve()
        if path.is_relative_to(resolved_root):
            relative = path.relative_to(resolved_root).as_posix()
            return ctx.file_shares.sas_url(base_url, share, relative, minutes * 60)
    raise HttpError(
        400,
        "InvalidParameter",
        "outputdirectoryid: files can be listed only for output directories on an Azure File "
        "share mount",
    )


def _mtime(seconds: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
