"""Stable operation names for the requests the SDKs send, close to the REST
spec's operationIds (Clusters_Create, Jobs_Get, File_PutRange ...): the labels
of the request counters and of the emulator's own statistics."""

from __future__ import annotations

import re
from typing import Any

from azure.core.pipeline import PipelineRequest

_ARM_SEGMENT = re.compile(r"/(resourcegroups|workspaces|experiments|clusters|jobs)(?:/([^/]+))?")


def arm_operation(method: str, path: str) -> str:
    """A stable operation name for an ARM request, close to the spec's operationIds."""
    lowered = path.lower()
    kinds = _ARM_SEGMENT.findall(lowered)
    if not kinds:
        return f"ARM_{method.upper()}"
    kind, name = kinds[-1]
    noun = {
        "resourcegroups": "ResourceGroups",
        "workspaces": "Workspaces",
        "experiments": "Experiments",
        "clusters": "Clusters",
        "jobs": "Jobs",
    }[kind]
    if lowered.endswith("/listoutputfiles"):
        return "Jobs_ListOutputFiles"
    if lowered.endswith("/terminate"):
        return "Jobs_Terminate"
    verb = {
        "PUT": "Create",
        "GET": "Get" if name else "List",
        "HEAD": "CheckExistence",
        "DELETE": "Delete",
        "PATCH": "Update",
    }.get(method.upper(), method.upper())
    if noun == "ResourceGroups" and verb == "Create":
        verb = "CreateOrUpdate"
    return f"{noun}_{verb}"


def request_operation(request: PipelineRequest[Any]) -> str:
    """arm_operation of a pipeline request, from its path (no host, no query)."""
    http_request = request.http_request
    path = http_request.url.split("?", 1)[0].split("://", 1)[-1]
    path = "/" + path.split("/", 1)[1] if "/" in path else "/"
    return arm_operation(http_request.method, path)


def storage_operation(request: Any) -> str:
    if request is None:
        return "File_Unknown"
    query = dict(getattr(request, "query", {}) or {})
    comp = query.get("comp")
    restype = query.get("restype")
    method = str(getattr(request, "method", "")).upper()
    if restype == "share":
        return {"PUT": "Share_Create", "GET": "Share_GetProperties", "DELETE": "Share_Delete"}.get(
            method, f"Share_{method}"
        )
    if restype == "directory":
        if comp == "list":
            return "Directory_List"
        return {"PUT": "Directory_Create", "GET": "Directory_GetProperties"}.get(
            method, f"Directory_{method}"
        )
    if comp == "range":
        return "File_PutRange"
    if comp == "properties":
        return "File_SetProperties"
    headers = getattr(request, "headers", {}) or {}
    if method == "PUT" and any(str(h).lower() == "x-ms-copy-source" for h in headers):
        return "File_Copy"
    return {
        "PUT": "File_Create",
        "HEAD": "File_GetProperties",
        "GET": "File_Download",
        "DELETE": "File_Delete",
    }.get(method, f"File_{method}")
