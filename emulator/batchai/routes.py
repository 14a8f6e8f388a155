"""Batch AI HTTP routes for api-versions 2018-05-01 and 2017-09-01-preview: request in,
response out, ARM errors and the long-running-operation protocol. Field checks are in
validation.py, state and rules in models.py, response bodies in shapes.py."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from emulator.batchai import output_files, shapes, validation
from emulator.batchai.models import BatchAIState
from emulator.batchai.records import API_2018, API_PREVIEW, ClusterKey, JobKey, Operation, stamp
from emulator.core import EmulatorContext
from emulator.errors import BadRequest, NotFound
from emulator.http import Request, Response, Router, json_response

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

            router.add(method, pattern, operation, "arm", frozenset(versions))(guarded)
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

    # --------------------------------------------------------------- clusters

    def workspace_scope(params: Params, preview: bool) -> tuple[str | None, str]:
        """(group, workspace key) a cluster or file server lives in: preview, the group
        (None on subscription-wide lists) and workspace ""; else the workspace, which must exist."""
        if preview:
            return params.get("rg"), ""
        state.workspace(params["sub"], params["rg"], params["workspaceName"])
        return params["rg"], params["workspaceName"].lower()

    def scoped_key(params: Params, preview: bool, name_param: str) -> ClusterKey:
        _, ws = workspace_scope(params, preview)
        return (params["sub"].lower(), params["rg"].lower(), ws, params[name_param].lower())

    def cluster_key(params: Params, preview: bool) -> ClusterKey:
        return scoped_key(params, preview, "clusterName")

    def cluster_body(key: ClusterKey, params: Params) -> dict[str, Any]:
        return shapes.cluster(state.cluster(key))

    def location_of(body: dict[str, Any], params: Params, preview: bool) -> str:
        if preview:
            return validation.json_string(body, "location", required=True)
        # 2018-05-01 child resources live where their workspace lives.
        return state.workspace(params["sub"], params["rg"], params["workspaceName"]).location

    def create_cluster(request: Request, params: Params, preview: bool) -> Response:
        key = cluster_key(params, preview)
        body = validation.json_object(request.json(), "body")
        properties = validation.json_object(body.get("properties"), "properties")
        validation.json_string(properties, "vmSize", "properties.vmSize", required=True)
        users = validation.json_object(
            properties.get("userAccountSettings"), "properties.userAccountSettings"
        )
        validation.json_string(
            users, "adminUserName", "properties.userAccountSettings.adminUserName", required=True
        )
        validation.check_scale(properties.get("scaleSettings"), required=False)
        node_setup = properties.get("nodeSetup")
        if node_setup is not None:
            node_setup = validation.json_object(node_setup, "properties.nodeSetup")
            validation.check_mounts(
                node_setup.get("mountVolumes"), "properties.nodeSetup.mountVolumes"
            )
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
            validation.tags(body),
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
        body = validation.json_object(request.json() or {}, "body")
        properties = validation.json_object(body.get("properties") or {}, "properties")
        scale = properties.get("scaleSettings")
        if scale is not None:
            validation.check_scale(scale, required=True)
        cluster = state.update_cluster(key, scale)
        if preview and "tags" in body:
            cluster.tags = validation.tags(body)
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
        return json_response(200, shapes.logins(state.cluster(cluster_key(params, preview)).nodes))

    def list_clusters(request: Request, params: Params, preview: bool) -> Response:
        items = state.list_clusters(params["sub"], *workspace_scope(params, preview))
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
        body = validation.json_object(request.json(), "body")
        properties = validation.json_object(body.get("properties"), "properties")
        validation.check_job(properties)
        location = location_of(body, params, preview)
        cluster_ref = validation.json_object(properties.get("cluster"), "properties.cluster")
        cluster_id = validation.json_string(
            cluster_ref, "id", "properties.cluster.id", required=True
        )
        target = validation.parse_cluster_id(cluster_id, params, preview)
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
            validation.tags(body),
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
        state.terminate_job(job_key(params, preview))  # synchronous: done when it returns
        op = state.start_operation("Jobs_Terminate", lambda: True)
        return accepted(request, params, op, 202, with_location=False)

    def job_logins(request: Request, params: Params, preview: bool) -> Response:
        j = state.job(job_key(params, preview))
        cluster = state.clusters.get(j.cluster_key)
        nodes = [n for n in cluster.nodes if n.job == j.key] if cluster else []
        return json_response(200, shapes.logins(nodes))

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
            raise BadRequest(
                "InvalidParameter", "outputdirectoryid: the query parameter is required"
            )
        expiry = validation.int_query(request, "linkexpiryinminutes", 60, 5, 600)
        limit = validation.int_query(request, "maxresults", 1000, 1, 1000)
        subdir = request.query.get("directory", ".")
        return json_response(
            200,
            shapes.page(
                output_files.list_files(
                    ctx, j, directory_id, subdir, expiry, limit, request.base_url, preview
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
        return scoped_key(params, preview, "fileServerName")

    def server_body(key: ClusterKey) -> dict[str, Any]:
        return shapes.file_server(state.file_server(key))

    def create_server(request: Request, params: Params, preview: bool) -> Response:
        key = server_key(params, preview)
        body = validation.json_object(request.json(), "body")
        properties = validation.json_object(body.get("properties"), "properties")
        validation.json_string(properties, "vmSize", "properties.vmSize", required=True)
        validation.json_object(properties.get("sshConfiguration"), "properties.sshConfiguration")
        validation.json_object(properties.get("dataDisks"), "properties.dataDisks")
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
            validation.tags(body),
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
        items = state.list_file_servers(params["sub"], *workspace_scope(params, preview))
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
