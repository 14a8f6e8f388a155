"""Request validation for the Batch AI routes: resource names and body fields (the
api-version is checked by emulator.http.Router). Every error is a 400 whose message
names the offending field."""

from __future__ import annotations

import re
from typing import Any

from emulator.batchai.records import ClusterKey
from emulator.batchai.runner import toolkit_of
from emulator.errors import BadRequest
from emulator.http import Request

_NAME = re.compile(r"^[-\w_]+$")
Params = dict[str, str]


def check_name(field: str, value: str) -> None:
    if not 1 <= len(value) <= 64 or not _NAME.match(value):
        raise BadRequest(
            "InvalidParameter",
            f"{field}: '{value[:80]}' is invalid; names can only contain alphanumeric "
            "characters, dash (-) and underscore (_), and must be 1 through 64 characters long.",
        )


def json_object(value: Any, field: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise BadRequest("InvalidParameter", f"{field}: a JSON object is required")
    return value


def json_string(
    holder: dict[str, Any], key: str, field: str | None = None, required: bool = False
) -> str:
    value = holder.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value):
        raise BadRequest("InvalidParameter", f"{field or key}: a non-empty string is required")
    return value


def json_int(
    holder: dict[str, Any], key: str, field: str, minimum: int = 0, required: bool = True
) -> int:
    value = holder.get(key)
    if value is None and not required:
        return minimum
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise BadRequest("InvalidParameter", f"{field}: an integer >= {minimum} is required")
    return value


def int_query(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise BadRequest("InvalidParameter", f"{name}: must be an integer from {low} to {high}")
    return value


def tags(body: dict[str, Any]) -> dict[str, str]:
    tags = body.get("tags") or {}
    if not isinstance(tags, dict) or not all(isinstance(v, str) for v in tags.values()):
        raise BadRequest("InvalidParameter", "tags: an object of strings is required")
    return dict(tags)


def check_scale(scale: Any, required: bool) -> None:
    if scale is None and not required:
        return
    scale = json_object(scale, "properties.scaleSettings")
    manual, auto = scale.get("manual"), scale.get("autoScale")
    if (manual is None) == (auto is None):
        raise BadRequest(
            "InvalidParameter",
            "properties.scaleSettings: exactly one of manual or autoScale must be given",
        )
    if manual is not None:
        json_int(
            json_object(manual, "properties.scaleSettings.manual"),
            "targetNodeCount",
            "properties.scaleSettings.manual.targetNodeCount",
        )
        return
    auto = json_object(auto, "properties.scaleSettings.autoScale")
    low = json_int(auto, "minimumNodeCount", "properties.scaleSettings.autoScale.minimumNodeCount")
    high = json_int(auto, "maximumNodeCount", "properties.scaleSettings.autoScale.maximumNodeCount")
    json_int(
        auto,
        "initialNodeCount",
        "properties.scaleSettings.autoScale.initialNodeCount",
        required=False,
    )
    if high < low:
        raise BadRequest(
            "InvalidParameter",
            "properties.scaleSettings.autoScale.maximumNodeCount: must be >= minimumNodeCount",
        )


_MOUNT_PATH = re.compile(r"^[\w.-]+(/[\w.-]+)*/?$")


def check_mounts(volumes: Any, field: str) -> None:
    """relativeMountPath must stay under the mount root (it becomes a symlink there)."""
    if volumes is None:
        return
    volumes = json_object(volumes, field)
    for kind in ("azureFileShares", "azureBlobFileSystems", "fileServers", "unmanagedFileSystems"):
        for index, item in enumerate(volumes.get(kind) or []):
            where = f"{field}.{kind}[{index}]"
            item = json_object(item, where)
            path = json_string(
                item, "relativeMountPath", f"{where}.relativeMountPath", required=True
            )
            if not _MOUNT_PATH.match(path) or ".." in path.split("/"):
                raise BadRequest(
                    "InvalidParameter",
                    f"{where}.relativeMountPath: must be a relative path without '..'",
                )
            if kind == "azureFileShares":
                json_string(item, "azureFileUrl", f"{where}.azureFileUrl", required=True)


def check_job(properties: dict[str, Any]) -> None:
    check_mounts(properties.get("mountVolumes"), "properties.mountVolumes")
    json_int(properties, "nodeCount", "properties.nodeCount", minimum=1)
    json_string(properties, "stdOutErrPathPrefix", "properties.stdOutErrPathPrefix", required=True)
    toolkit = toolkit_of(properties)
    if toolkit is None:
        raise BadRequest(
            "InvalidParameter",
            "properties: one toolkit settings object (e.g. cntkSettings, customToolkitSettings) "
            "is required",
        )
    settings = properties[toolkit]
    if toolkit == "cntkSettings" and (
        str(settings.get("languageType", "Python")).lower() == "brainscript"
        or (settings.get("configFilePath") and not settings.get("pythonScriptFilePath"))
    ):
        raise BadRequest(
            "InvalidParameter",
            "properties.cntkSettings.configFilePath: BrainScript CNTK jobs are not supported "
            "by the emulator (no cntk binary); use languageType Python with pythonScriptFilePath",
        )
    for index, item in enumerate(properties.get("inputDirectories") or []):
        item = json_object(item, f"properties.inputDirectories[{index}]")
        json_string(item, "id", f"properties.inputDirectories[{index}].id", required=True)
        json_string(item, "path", f"properties.inputDirectories[{index}].path", required=True)
    for index, item in enumerate(properties.get("outputDirectories") or []):
        item = json_object(item, f"properties.outputDirectories[{index}]")
        json_string(item, "id", f"properties.outputDirectories[{index}].id", required=True)
        json_string(
            item, "pathPrefix", f"properties.outputDirectories[{index}].pathPrefix", required=True
        )
    for field in ("environmentVariables", "secrets"):
        for index, item in enumerate(properties.get(field) or []):
            item = json_object(item, f"properties.{field}[{index}]")
            json_string(item, "name", f"properties.{field}[{index}].name", required=True)


_CLUSTER_ID = re.compile(
    r"/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)/providers/Microsoft\.BatchAI/"
    r"(?:workspaces?/(?P<ws>[^/]+)/)?clusters/(?P<name>[^/]+)/?",
    re.IGNORECASE,
)


def parse_cluster_id(cluster_id: str, params: Params, preview: bool) -> ClusterKey:
    found = _CLUSTER_ID.fullmatch(cluster_id.strip())
    if not found:
        raise BadRequest(
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
