"""Response bodies for both api-versions, shaped as the spec's definitions say.

2018-05-01 clusters, experiments, jobs and file servers are ProxyResources (id, name,
type); 2017-09-01-preview ones are Resources and also carry location and tags.
Secrets (storage keys, passwords, secret values) are never echoed back.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from emulator.batchai.records import (
    API_2018,
    Cluster,
    Experiment,
    FileServer,
    Job,
    Node,
    Workspace,
    stamp,
)
from emulator.batchai.runner import TOOL_TYPES, toolkit_of

PROVIDER = "Microsoft.BatchAI"
_SECRET_KEYS = {"accountKey", "adminUserPassword", "password", "instrumentationKey"}


def scrub(value: Any) -> Any:
    """A copy without secret values (keys and secrets[].value removed)."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if key in _SECRET_KEYS:
                continue
            if key == "secrets" and isinstance(item, list):
                out[key] = [{k: v for k, v in s.items() if k == "name"} for s in item]
                continue
            out[key] = scrub(item)
        return out
    if isinstance(value, list):
        return [scrub(item) for item in value]
    return copy.deepcopy(value)


def group_prefix(sub: str, group: str) -> str:
    return f"/subscriptions/{sub}/resourceGroups/{group}/providers/{PROVIDER}"


def workspace_id(ws: Workspace) -> str:
    return f"{group_prefix(ws.subscription, ws.group)}/workspaces/{ws.name}"


def workspace(ws: Workspace) -> dict[str, Any]:
    return {
        "id": workspace_id(ws),
        "name": ws.name,
        "type": f"{PROVIDER}/workspaces",
        "location": ws.location,
        "tags": ws.tags,
        "properties": {
            "creationTime": stamp(ws.created),
            "provisioningState": "succeeded",
            "provisioningStateTransitionTime": stamp(ws.created),
        },
    }


def experiment(exp: Experiment) -> dict[str, Any]:
    return {
        "id": f"{group_prefix(exp.subscription, exp.group)}/workspaces/{exp.workspace}"
        f"/experiments/{exp.name}",
        "name": exp.name,
        "type": f"{PROVIDER}/workspaces/experiments",
        "properties": {
            "creationTime": stamp(exp.created),
            "provisioningState": "succeeded",
            "provisioningStateTransitionTime": stamp(exp.created),
        },
    }


def _envelope(
    resource_id: str, name: str, kind: str, api_version: str, location: str, tags: dict[str, str]
) -> dict[str, Any]:
    if api_version == API_2018:
        return {"id": resource_id, "name": name, "type": f"{PROVIDER}/workspaces/{kind}"}
    return {
        "id": resource_id,
        "name": name,
        "type": f"{PROVIDER}/{kind}",
        "location": location,
        "tags": tags,
    }


def child_id(sub: str, group: str, workspace_name: str, kind: str, name: str) -> str:
    """Id of a cluster/file server/preview job: under the workspace, or (preview) the group."""
    middle = f"/workspaces/{workspace_name}" if workspace_name else ""
    return f"{group_prefix(sub, group)}{middle}/{kind}/{name}"


def cluster(c: Cluster) -> dict[str, Any]:
    body = _envelope(
        c.resource_id,
        c.name,
        "clusters",
        c.api_version,
        c.location,
        c.tags,
    )
    properties = scrub(c.properties)
    properties.setdefault("vmPriority", "dedicated")
    properties.update(
        {
            "creationTime": stamp(c.created),
            "provisioningState": c.provisioning_state,
            "provisioningStateTransitionTime": stamp(c.provisioning_time),
            "allocationState": c.allocation_state,
            "allocationStateTransitionTime": stamp(c.allocation_time),
            "currentNodeCount": len(c.nodes),
            "nodeStateCounts": {
                "idleNodeCount": c.count("idle"),
                "runningNodeCount": c.count("running"),
                "preparingNodeCount": c.count("preparing"),
                "unusableNodeCount": c.count("unusable"),
                "leavingNodeCount": 0,
            },
        }
    )
    if c.errors:
        properties["errors"] = copy.deepcopy(c.errors)
    body["properties"] = properties
    return body


def job(j: Job) -> dict[str, Any]:
    body = _envelope(
        j.resource_id,
        j.name,
        "experiments/jobs" if j.api_version == API_2018 else "jobs",
        j.api_version,
        j.location,
        j.tags,
    )
    properties = scrub(j.properties)
    toolkit = toolkit_of(j.properties)
    if j.api_version == API_2018:
        properties.setdefault("schedulingPriority", "normal")
        properties["jobOutputDirectoryPathSegment"] = j.segment
    else:
        properties.setdefault("priority", 0)
    properties["cluster"] = {"id": j.cluster_id}
    if toolkit:
        properties["toolType"] = TOOL_TYPES[toolkit]
    properties["constraints"] = {"maxWallClockTime": j.max_wall_clock}
    info: dict[str, Any] = {}
    if j.start_time:
        info["startTime"] = stamp(j.start_time)
    if j.end_time:
        info["endTime"] = stamp(j.end_time)
    if j.exit_code is not None:
        info["exitCode"] = j.exit_code
    if j.errors:
        info["errors"] = copy.deepcopy(j.errors)
    properties.update(
        {
            "creationTime": stamp(j.created),
            "provisioningState": "succeeded",
            "provisioningStateTransitionTime": stamp(j.provisioning_time),
            "executionState": j.execution_state,
            "executionStateTransitionTime": stamp(j.execution_time),
        }
    )
    if info or j.api_version == API_2018:
        properties["executionInfo"] = info
    body["properties"] = properties
    return body


def file_server(f: FileServer) -> dict[str, Any]:
    body = _envelope(f.resource_id, f.name, "fileservers", f.api_version, f.location, f.tags)
    properties = scrub(f.properties)
    properties.update(
        {
            "mountSettings": {
                "mountPoint": "/data",
                "fileServerPublicIP": "127.0.0.1",
                "fileServerInternalIP": "127.0.0.1",
            },
            "creationTime": stamp(f.created),
            "provisioningState": "succeeded",
            "provisioningStateTransitionTime": stamp(f.created),
        }
    )
    if f.api_version != API_2018:
        properties["mountSettings"]["fileServerType"] = "nfs"
    body["properties"] = properties
    return body


def vcpus(vm_size: str) -> int:
    """Cores of a size from its name (STANDARD_NC6 -> 6); 1 when the name has no number."""
    found = re.search(r"(\d+)", vm_size.split("_", 1)[-1])
    return int(found.group(1)) if found else 1


def page(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {"value": items}


def logins(nodes: list[Node]) -> dict[str, Any]:
    """listRemoteLoginInformation: one entry per node, all on this host."""
    return page(
        [
            {"nodeId": n.node_id, "ipAddress": "127.0.0.1", "port": 50000 + i}
            for i, n in enumerate(nodes)
        ]
    )


OPERATIONS = [
    {
        "name": f"{PROVIDER}/{resource}/{verb}",
        "display": {
            "provider": "Microsoft Batch AI",
            "resource": resource,
            "operation": f"{verb} {resource}",
            "description": f"{verb.capitalize()} Batch AI {resource}",
        },
        "origin": "user,system",
    }
    for resource in ("workspaces", "experiments", "clusters", "jobs", "fileservers")
    for verb in ("read", "write", "delete")
]
