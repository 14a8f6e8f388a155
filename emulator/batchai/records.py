"""Batch AI records: what a workspace, experiment, cluster (and its nodes), job, file
server and long-running operation hold. The rules that change them are in models.py.

A preview (2017-09-01-preview) resource has workspace "" (and a preview job experiment
""), which keeps the two api-versions' scopes apart; keys are lower-cased (ARM names are
case-insensitive), records keep the name as first written.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from emulator.batchai import runner
from emulator.batchai.durations import DEFAULT_MAX_WALL_CLOCK, parse_seconds, to_iso
from emulator.errors import BadRequest, NotFound

API_2018 = "2018-05-01"
API_PREVIEW = "2017-09-01-preview"

ClusterKey = tuple[str, str, str, str]  # subscription, group, workspace ("" = preview), name
JobKey = tuple[str, str, str, str, str]  # subscription, group, workspace, experiment, name


def utcnow() -> datetime:
    return datetime.now(UTC)


def stamp(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def split_secrets(properties: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """(job properties without secret values, secret values by name): only the first is
    ever returned or compared in public."""
    secrets = {str(s["name"]): str(s.get("value", "")) for s in properties.get("secrets") or []}
    public = copy.deepcopy(properties)
    if "secrets" in public:
        public["secrets"] = [{"name": s["name"]} for s in public["secrets"]]
    return public, secrets


def max_wall_clock(properties: dict[str, Any]) -> tuple[float, str]:
    """(seconds, ISO 8601 text) of constraints.maxWallClockTime (default 7 days)."""
    wall = str((properties.get("constraints") or {}).get("maxWallClockTime") or "")
    try:
        seconds = parse_seconds(wall) if wall else parse_seconds("P7D")
    except ValueError as exc:
        raise BadRequest(
            "InvalidParameter", f"properties.constraints.maxWallClockTime: {exc}"
        ) from exc
    return seconds, to_iso(seconds) if wall else DEFAULT_MAX_WALL_CLOCK


def not_found(kind: str, name: str) -> NotFound:
    return NotFound("ResourceNotFound", f"The {kind} '{name}' was not found.")


@dataclass
class Node:
    node_id: str
    state: str  # preparing | idle | running | unusable
    ready_at: float
    job: JobKey | None = None


@dataclass
class Workspace:
    subscription: str
    group: str
    name: str
    location: str
    tags: dict[str, str]
    created: datetime
    uid: str = field(default_factory=lambda: str(uuid.uuid4()))


@dataclass
class Experiment:
    subscription: str
    group: str
    workspace: str
    name: str
    created: datetime
    uid: str = field(default_factory=lambda: str(uuid.uuid4()))


@dataclass
class Cluster:
    key: ClusterKey
    name: str
    api_version: str
    location: str
    tags: dict[str, str]
    properties: dict[str, Any]  # as submitted (secrets are scrubbed on the way out)
    created: datetime
    provisioning_state: str = "creating"
    provisioning_time: datetime = field(default_factory=utcnow)
    allocation_state: str = "resizing"
    allocation_time: datetime = field(default_factory=utcnow)
    errors: list[dict[str, Any]] = field(default_factory=list)
    nodes: list[Node] = field(default_factory=list)
    target: int = 0
    nodes_unusable: bool = False  # the node_unusable fault hit the last resize
    autoscale_initial: bool = True  # initialNodeCount holds until a job has been scheduled
    next_node: int = 0
    resource_id: str = ""

    @property
    def vm_size(self) -> str:
        return str(self.properties.get("vmSize", ""))

    @property
    def low_priority(self) -> bool:
        return str(self.properties.get("vmPriority", "dedicated")).lower() == "lowpriority"

    def count(self, state: str) -> int:
        return sum(1 for node in self.nodes if node.state == state)


@dataclass
class Job:
    key: JobKey
    name: str
    api_version: str
    location: str
    tags: dict[str, str]
    properties: dict[str, Any]  # as submitted, minus secret values
    secrets: dict[str, str]
    cluster_key: ClusterKey
    cluster_id: str
    node_count: int
    max_wall_seconds: float
    max_wall_clock: str
    created: datetime
    segment: str
    uid: str
    provisioning_time: datetime = field(default_factory=utcnow)
    execution_state: str = "queued"
    execution_time: datetime = field(default_factory=utcnow)
    start_time: datetime | None = None
    end_time: datetime | None = None
    exit_code: int | None = None
    errors: list[dict[str, Any]] = field(default_factory=list)
    process: runner.RunningProcess | None = None
    phase: str = ""  # "prep" | "main" while running
    layout: runner.JobLayout | None = None
    started_at: float = 0.0
    preempt: bool = False
    attempts: int = 0
    shares: dict[str, Path] = field(default_factory=dict)  # mounted share name -> root
    resource_id: str = ""

    def set_state(self, state: str) -> None:
        self.execution_state = state
        self.execution_time = utcnow()


@dataclass
class FileServer:
    key: ClusterKey
    name: str
    api_version: str
    location: str
    tags: dict[str, str]
    properties: dict[str, Any]
    created: datetime
    uid: str = field(default_factory=lambda: str(uuid.uuid4()))
    resource_id: str = ""


@dataclass
class Operation:
    """A long-running operation served at .../locations/{loc}/operationstatuses/{id}."""

    op_id: str
    name: str
    started: datetime
    is_done: Callable[[], bool]
    result: Callable[[], dict[str, Any] | None]  # body for operationresults once done
    ended: datetime | None = None
