"""Batch AI cluster and file server routes, for both api-versions (2018-05-01 under a
workspace, 2017-09-01-preview directly in a resource group)."""

from __future__ import annotations

from typing import Any

from emulator.batchai import shapes, validation
from emulator.batchai.records import API_2018, API_PREVIEW, ClusterKey
from emulator.batchai.routing import GROUP, NEW, OLD, SEG, SUB, WS, BatchAIRoutes, Params, bind
from emulator.http import Request, Response, json_response


def register(api: BatchAIRoutes) -> None:
    state, route, accepted = api.state, api.route, api.accepted
    workspace_scope, scoped_key, location_of = api.workspace_scope, api.scoped_key, api.location_of
    new, old = NEW, OLD

    def cluster_key(params: Params, preview: bool) -> ClusterKey:
        return scoped_key(params, preview, "clusterName")

    def cluster_body(key: ClusterKey, params: Params) -> dict[str, Any]:
        return shapes.cluster(state.cluster(key))

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
        one = rf"{base}/clusters/(?P<clusterName>{SEG})"
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
            route(method, pattern, operation, versions)(bind(handler, preview))
    route("GET", rf"{SUB}/providers/Microsoft\.BatchAI/clusters", "Clusters_List", old)(
        bind(list_clusters, True)
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
        one = rf"{base}/fileServers/(?P<fileServerName>{SEG})"
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
            route(method, pattern, operation, versions)(bind(handler, preview))
    route("GET", rf"{SUB}/providers/Microsoft\.BatchAI/fileServers", "FileServers_List", old)(
        bind(list_servers, True)
    )
