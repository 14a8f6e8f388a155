"""Batch AI job routes, for both api-versions (2018-05-01 under an experiment,
2017-09-01-preview directly in a resource group)."""

from __future__ import annotations

from emulator.batchai import output_files, shapes, validation
from emulator.batchai.records import API_2018, API_PREVIEW, JobKey
from emulator.batchai.routing import EXP, GROUP, NEW, OLD, SEG, SUB, BatchAIRoutes, Params, bind
from emulator.errors import BadRequest
from emulator.http import Request, Response, json_response


def register(api: BatchAIRoutes) -> None:
    state, route, accepted, ctx = api.state, api.route, api.accepted, api.ctx
    location_of = api.location_of
    new, old = NEW, OLD

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
        one = rf"{base}/jobs/(?P<jobName>{SEG})"
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
            route(method, pattern, operation, versions)(bind(handler, preview))
    route("GET", rf"{SUB}/providers/Microsoft\.BatchAI/jobs", "Jobs_List", old)(
        bind(list_jobs, True)
    )
