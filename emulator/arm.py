"""ARM resource groups (Microsoft.Resources) and the async-operation status endpoint.

Implements core.ResourceGroups. A delete answers 202 with a Location header; the
cascade (every on_delete callback, e.g. Batch AI killing job processes) runs in
a background thread and the Location URL answers 202 until it is done, then 200.
"""

from __future__ import annotations

import logging
import re
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from emulator.core import EmulatorContext
from emulator.errors import BadRequest, Conflict, NotFound
from emulator.http import Request, Response, Router, json_response

log = logging.getLogger("emulator.arm")

# Resource-group api-versions between the quickstart era's SDK and the current one.
RESOURCE_GROUP_API_VERSIONS = frozenset(
    {
        "2017-05-10",
        "2018-02-01",
        "2018-05-01",
        "2019-03-01",
        "2019-05-01",
        "2019-05-10",
        "2019-07-01",
        "2019-08-01",
        "2019-10-01",
        "2020-06-01",
        "2020-08-01",
        "2020-10-01",
        "2021-01-01",
        "2021-04-01",
        "2022-09-01",
        "2023-07-01",
        "2024-03-01",
        "2024-07-01",
        "2024-11-01",
        "2025-03-01",
        "2025-04-01",
    }
)
_GROUP_NAME = re.compile(r"[-\w._()]{1,90}")
# azure-core's pollers honour retry-after-ms; a short interval keeps LROs fast locally.
POLL_HEADERS = {"Retry-After-ms": "100"}

SUB = r"/subscriptions/(?P<subscription>[^/]+)"
GROUP = SUB + r"/resourcegroups/(?P<group>[^/]+)"
# Paths that are ARM even when no route matches (never fall through to Files).
ARM_PREFIXES = ("/subscriptions", "/providers", "/tenants")


@dataclass
class ResourceGroup:
    subscription_id: str
    name: str
    location: str
    tags: dict[str, str] = field(default_factory=dict)
    managed_by: str | None = None
    deleting: bool = False

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": f"/subscriptions/{self.subscription_id}/resourceGroups/{self.name}",
            "name": self.name,
            "type": "Microsoft.Resources/resourceGroups",
            "location": self.location,
            "properties": {"provisioningState": "Deleting" if self.deleting else "Succeeded"},
        }
        if self.tags:
            body["tags"] = self.tags
        if self.managed_by:
            body["managedBy"] = self.managed_by
        return body


class ResourceGroupStore:
    """In-memory resource groups; names are case-insensitive as in ARM."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._groups: dict[tuple[str, str], ResourceGroup] = {}
        self._delete_callbacks: list[Callable[[str, str], None]] = []
        self._operations: dict[str, threading.Event] = {}

    def exists(self, subscription_id: str, name: str) -> bool:
        """False from the moment a delete starts, as GET and HEAD answer: nothing new may be
        created in a group whose cascade may already have run."""
        group = self.get(subscription_id, name)
        return group is not None and not group.deleting

    def location(self, subscription_id: str, name: str) -> str | None:
        group = self.get(subscription_id, name)
        return group.location if group else None

    def on_delete(self, callback: Callable[[str, str], None]) -> None:
        self._delete_callbacks.append(callback)

    def remove_on_delete(self, callback: Callable[[str, str], None]) -> None:
        self._delete_callbacks.remove(callback)

    def get(self, subscription_id: str, name: str) -> ResourceGroup | None:
        with self._lock:
            return self._groups.get((subscription_id.lower(), name.lower()))

    def put(self, group: ResourceGroup) -> bool:
        """Store the group; True when it did not exist before."""
        key = (group.subscription_id.lower(), group.name.lower())
        with self._lock:
            existing = self._groups.get(key)
            if existing is not None:
                # ARM keeps the original casing of the name.
                group.name = existing.name
            self._groups[key] = group
            return existing is None

    def list(self, subscription_id: str) -> list[ResourceGroup]:
        with self._lock:
            return [g for (sub, _), g in self._groups.items() if sub == subscription_id.lower()]

    def start_delete(self, group: ResourceGroup, on_done: Callable[[], None]) -> str:
        """Run the cascade in the background; returns the operation id to poll."""
        operation_id = uuid.uuid4().hex
        done = threading.Event()
        with self._lock:
            group.deleting = True
            self._operations[operation_id] = done

        def cascade() -> None:
            try:
                for callback in list(self._delete_callbacks):
                    try:
                        callback(group.subscription_id, group.name)
                    except Exception:
                        # One service failing its cleanup must not block the others.
                        log.exception("resource group delete callback failed")
            finally:
                with self._lock:
                    self._groups.pop((group.subscription_id.lower(), group.name.lower()), None)
                on_done()
                done.set()

        threading.Thread(target=cascade, name=f"delete-rg-{group.name}", daemon=True).start()
        return operation_id

    def operation_done(self, operation_id: str) -> bool | None:
        """None when the operation is unknown."""
        with self._lock:
            event = self._operations.get(operation_id)
        return None if event is None else event.is_set()

    def wait_idle(self, timeout: float) -> None:
        with self._lock:
            events = list(self._operations.values())
        for event in events:
            event.wait(timeout)

    def clear(self) -> None:
        with self._lock:
            self._groups.clear()
            self._operations.clear()


def register(router: Router, ctx: EmulatorContext) -> None:
    """Serve the resource groups in ctx.resource_groups (which must be a ResourceGroupStore:
    the server builds it before any service registers, since Batch AI subscribes to its
    deletes), and claim every unmatched ARM path."""
    store = ctx.resource_groups
    if not isinstance(store, ResourceGroupStore):
        raise TypeError("arm.register: ctx.resource_groups must be an arm.ResourceGroupStore")
    versions = RESOURCE_GROUP_API_VERSIONS

    def reset() -> None:
        # A delete still cascading would otherwise re-remove a group created after reset.
        store.wait_idle(timeout=10)
        store.clear()

    ctx.reset_hooks.append(reset)
    ctx.shutdown_hooks.append(lambda: store.wait_idle(timeout=10))
    router.add_dispatcher("arm", _claim_unmatched, frozenset({"Arm_Unmatched"}))

    def group_or_404(sub: str, name: str) -> ResourceGroup:
        group = store.get(sub, name)
        if group is None or group.deleting:
            raise NotFound("ResourceGroupNotFound", f"Resource group '{name}' could not be found.")
        return group

    @router.add("PUT", GROUP, "ResourceGroups_CreateOrUpdate", api_versions=versions)
    def create_or_update(request: Request, params: dict[str, str]) -> Response:
        name = params["group"]
        if not _GROUP_NAME.fullmatch(name) or name.endswith("."):
            raise BadRequest(
                "InvalidResourceGroupName",
                f"resourceGroupName '{name}' is invalid: use up to 90 letters, digits, "
                "'-', '_', '.', '(' or ')', not ending in '.'.",
            )
        body = request.json()
        if not isinstance(body, dict):
            raise BadRequest("InvalidRequestContent", "the request body must be a JSON object")
        location = body.get("location")
        if not isinstance(location, str) or not location:
            raise BadRequest(
                "LocationRequired", "The location property is required for this definition."
            )
        tags = body.get("tags") or {}
        if not isinstance(tags, dict) or not all(isinstance(v, str) for v in tags.values()):
            raise BadRequest("InvalidRequestContent", "tags must be an object of strings")
        existing = store.get(params["subscription"], name)
        if existing is not None and existing.deleting:
            raise Conflict(
                "ResourceGroupBeingDeleted",
                f"The resource group '{existing.name}' is in deprovisioning state and cannot "
                "perform this operation.",
            )
        if existing is not None and existing.location.lower() != location.lower():
            raise Conflict(
                "InvalidResourceGroupLocation",
                f"Invalid resource group location '{location}'. The Resource group already "
                f"exists in location '{existing.location}'.",
            )
        group = ResourceGroup(
            params["subscription"], name, location, dict(tags), body.get("managedBy")
        )
        created = store.put(group)
        if created:
            ctx.stats.record_resource("created", "resource_group")
        return json_response(201 if created else 200, group.to_json())

    @router.add("GET", GROUP, "ResourceGroups_Get", api_versions=versions)
    def get(request: Request, params: dict[str, str]) -> Response:
        return json_response(200, group_or_404(params["subscription"], params["group"]).to_json())

    @router.add("HEAD", GROUP, "ResourceGroups_CheckExistence", api_versions=versions)
    def check_existence(request: Request, params: dict[str, str]) -> Response:
        return Response(204 if store.exists(params["subscription"], params["group"]) else 404)

    @router.add("DELETE", GROUP, "ResourceGroups_Delete", api_versions=versions)
    def delete(request: Request, params: dict[str, str]) -> Response:
        group = store.get(params["subscription"], params["group"])
        if group is None:
            # ARM answers a delete of a missing group with 404 as well.
            group_or_404(params["subscription"], params["group"])
            raise AssertionError("unreachable")
        if group.deleting:
            return Response(202, headers=dict(POLL_HEADERS))
        operation_id = store.start_delete(
            group, lambda: ctx.stats.record_resource("deleted", "resource_group")
        )
        location = (
            f"{request.base_url}/subscriptions/{params['subscription']}/operationresults/"
            f"{operation_id}?api-version={request.query['api-version']}"
        )
        return Response(202, headers={"Location": location, **POLL_HEADERS})

    @router.add("GET", SUB + r"/resourcegroups", "ResourceGroups_List", api_versions=versions)
    def list_groups(request: Request, params: dict[str, str]) -> Response:
        groups = [g.to_json() for g in store.list(params["subscription"]) if not g.deleting]
        return json_response(200, {"value": groups})

    @router.add(
        "GET", SUB + r"/operationresults/(?P<operation>[0-9a-f]+)", "ResourceGroups_DeleteStatus"
    )
    def operation_result(request: Request, params: dict[str, str]) -> Response:
        done = store.operation_done(params["operation"])
        if done is None:
            raise NotFound("NotFound", f"Operation '{params['operation']}' was not found.")
        if not done:
            return Response(
                202, headers={"Location": request.base_url + request.raw_path, **POLL_HEADERS}
            )
        return Response(200)


def _claim_unmatched(request: Request) -> tuple[str, Callable[[Request], Response]] | None:
    """Paths under ARM's roots that no route serves are ARM's 400/404, never a share path."""
    if request.path.lower().startswith(ARM_PREFIXES):
        return "Arm_Unmatched", _not_found
    return None


def _not_found(request: Request) -> Response:
    path = request.path
    lowered = path.lower()
    if "/providers/" in lowered:
        namespace = path[lowered.index("/providers/") + len("/providers/") :].split("/")[0]
        raise BadRequest(
            "InvalidResourceType",
            f"The resource type could not be found in the namespace '{namespace}' for api "
            f"version '{request.query.get('api-version', '')}'.",
        )
    raise NotFound("NotFound", f"No route matches {request.method} {path}.")
