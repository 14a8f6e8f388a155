# Over 400 lines (about 440): BatchAIState is one store of six record kinds behind one
# lock, and every public method takes that lock; split across modules, the lock discipline
# would be too. The rules that move nodes and jobs forward are already in scheduler.py.
"""Batch AI state: the workspaces, experiments, clusters, jobs, file servers and
long-running operations of both api-versions, their create/get/list/delete, cascading
deletes and reset. The records are in records.py; the rules that move nodes and jobs
forward (scheduling, faults, processes) are in scheduler.py, which BatchAIState inherits.

Every public method takes the lock; `advance()` moves time forward (nodes become idle,
queued jobs start, finished processes are reaped) and is called by the background
ticker and at the start of each request.
"""

from __future__ import annotations

import copy
import json
import shutil
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from emulator.batchai import runner
from emulator.batchai.records import (
    API_2018,
    Cluster,
    ClusterKey,
    Experiment,
    FileServer,
    Job,
    JobKey,
    Operation,
    Workspace,
    max_wall_clock,
    not_found,
    split_secrets,
    utcnow,
)
from emulator.batchai.scheduler import Scheduler
from emulator.core import EmulatorContext
from emulator.errors import BadRequest, Conflict

# Long-running operation records older than this are forgotten (status GET then 404s).
OPERATION_RETENTION_SECONDS = 3600

R = TypeVar("R")


def _find(store: dict[Any, R], key: Any, kind: str, name: str) -> R:
    found = store.get(key)
    if found is None:
        raise not_found(kind, name)
    return found


def _in_scope(store: dict[Any, R], sub: str, group: str | None, *rest: str) -> list[R]:
    """The records of a subscription, of one group (None: any), whose next key parts are rest."""
    return [
        record
        for key, record in store.items()
        if key[0] == sub.lower()
        and (group is None or key[1] == group.lower())
        and key[2 : 2 + len(rest)] == rest
    ]


def _scale_target(scale: dict[str, Any], current: int | None) -> int:
    """Node count asked for: manual targetNodeCount, or auto scale's initialNodeCount (at
    creation, current None) or the current count, clamped to minimum/maximumNodeCount."""
    auto = scale.get("autoScale")
    if auto is None:
        return int((scale.get("manual") or {}).get("targetNodeCount") or 0)
    wanted = int(auto.get("initialNodeCount") or 0) if current is None else current
    return min(max(wanted, int(auto["minimumNodeCount"])), int(auto["maximumNodeCount"]))


class BatchAIState(Scheduler):
    def __init__(self, ctx: EmulatorContext) -> None:
        self.ctx = ctx
        self.lock = threading.RLock()
        self.workspaces: dict[tuple[str, str, str], Workspace] = {}
        self.experiments: dict[tuple[str, str, str, str], Experiment] = {}
        self.clusters: dict[ClusterKey, Cluster] = {}
        self.jobs: dict[JobKey, Job] = {}
        self.file_servers: dict[ClusterKey, FileServer] = {}
        self.operations: dict[str, Operation] = {}
        self.runs_dir = Path(ctx.config.data_dir) / "batchai"
        self.job_user = runner.resolve_job_user(ctx.config.job_user)

    def _put(
        self, store: dict[Any, R], key: Any, kind: str, make: Callable[[], R]
    ) -> tuple[R, bool]:
        """The record under key, else a new one (counted created): (record, created)."""
        existing = store.get(key)
        if existing is not None:
            return existing, False
        record = store[key] = make()
        self.ctx.stats.record_resource("created", kind)
        return record, True

    # ---------------------------------------------------------------- workspaces

    def put_workspace(
        self, sub: str, group: str, name: str, location: str, tags: dict[str, str]
    ) -> tuple[Workspace, bool]:
        with self.lock:
            key = (sub.lower(), group.lower(), name.lower())
            return self._put(
                self.workspaces,
                key,
                "workspace",
                lambda: Workspace(sub, group, name, location, tags, utcnow()),
            )

    def workspace(self, sub: str, group: str, name: str) -> Workspace:
        with self.lock:
            return _find(
                self.workspaces, (sub.lower(), group.lower(), name.lower()), "workspace", name
            )

    def list_workspaces(self, sub: str, group: str | None) -> list[Workspace]:
        with self.lock:
            return _in_scope(self.workspaces, sub, group)

    def delete_workspace(self, sub: str, group: str, name: str) -> bool:
        with self.lock:
            key = (sub.lower(), group.lower(), name.lower())
            if key not in self.workspaces:
                return False
            self._delete_scope(*key)
            del self.workspaces[key]
            self.ctx.stats.record_resource("deleted", "workspace")
            return True

    def _delete_scope(self, sub: str, group: str, workspace: str) -> None:
        """Delete what a workspace (or, with workspace "", a preview group scope) holds."""
        for job_key in [k for k in self.jobs if k[:3] == (sub, group, workspace)]:
            self._delete_job(job_key)
        for exp_key in [k for k in self.experiments if k[:3] == (sub, group, workspace)]:
            del self.experiments[exp_key]
            self.ctx.stats.record_resource("deleted", "experiment")
        for cluster_key in [k for k in self.clusters if k[:3] == (sub, group, workspace)]:
            self._delete_cluster(cluster_key)
        for fs_key in [k for k in self.file_servers if k[:3] == (sub, group, workspace)]:
            del self.file_servers[fs_key]
            self.ctx.stats.record_resource("deleted", "file_server")

    # --------------------------------------------------------------- experiments

    def put_experiment(self, sub: str, group: str, ws: str, name: str) -> tuple[Experiment, bool]:
        with self.lock:
            workspace = self.workspace(sub, group, ws)
            key = (sub.lower(), group.lower(), ws.lower(), name.lower())
            return self._put(
                self.experiments,
                key,
                "experiment",
                lambda: Experiment(sub, group, workspace.name, name, utcnow()),
            )

    def experiment(self, sub: str, group: str, ws: str, name: str) -> Experiment:
        with self.lock:
            self.workspace(sub, group, ws)
            key = (sub.lower(), group.lower(), ws.lower(), name.lower())
            return _find(self.experiments, key, "experiment", name)

    def list_experiments(self, sub: str, group: str, ws: str) -> list[Experiment]:
        with self.lock:
            self.workspace(sub, group, ws)
            return _in_scope(self.experiments, sub, group, ws.lower())

    def delete_experiment(self, sub: str, group: str, ws: str, name: str) -> bool:
        with self.lock:
            self.workspace(sub, group, ws)
            key = (sub.lower(), group.lower(), ws.lower(), name.lower())
            if key not in self.experiments:
                return False
            for job_key in [k for k in self.jobs if k[:4] == key]:
                self._delete_job(job_key)
            del self.experiments[key]
            self.ctx.stats.record_resource("deleted", "experiment")
            return True

    # ------------------------------------------------------------------ clusters

    def put_cluster(
        self,
        key: ClusterKey,
        name: str,
        api_version: str,
        location: str,
        tags: dict[str, str],
        properties: dict[str, Any],
        resource_id: str,
    ) -> tuple[Cluster, bool]:
        with self.lock:
            cluster, created = self._put(
                self.clusters,
                key,
                "cluster",
                lambda: Cluster(
                    key,
                    name,
                    api_version,
                    location,
                    tags,
                    copy.deepcopy(properties),
                    utcnow(),
                    resource_id=resource_id,
                ),
            )
            if created:
                target = _scale_target(properties.get("scaleSettings") or {}, None)
                self._resize(cluster, target, "Clusters_Create")
            return cluster, created

    def cluster(self, key: ClusterKey) -> Cluster:
        with self.lock:
            return _find(self.clusters, key, "cluster", key[3])

    def list_clusters(self, sub: str, group: str | None, ws: str) -> list[Cluster]:
        with self.lock:
            return _in_scope(self.clusters, sub, group, ws)

    def update_cluster(self, key: ClusterKey, scale: dict[str, Any] | None) -> Cluster:
        with self.lock:
            cluster = self.cluster(key)
            if scale:
                cluster.properties["scaleSettings"] = copy.deepcopy(scale)
                if "autoScale" in scale:
                    cluster.autoscale_initial = False
                target = _scale_target(scale, len(cluster.nodes))
                self._resize(cluster, target, "Clusters_Update")
            return cluster

    def delete_cluster(self, key: ClusterKey) -> bool:
        with self.lock:
            if key not in self.clusters:
                return False
            self._delete_cluster(key)
            return True

    def _delete_cluster(self, key: ClusterKey) -> None:
        for job in self.jobs.values():
            if job.cluster_key == key and job.execution_state in ("queued", "running"):
                self._finish(
                    job, "failed", None, "ClusterDeleted", "The job's cluster was deleted."
                )
        del self.clusters[key]
        self.ctx.stats.record_resource("deleted", "cluster")

    # ---------------------------------------------------------------------- jobs

    def put_job(
        self,
        key: JobKey,
        name: str,
        api_version: str,
        location: str,
        tags: dict[str, str],
        properties: dict[str, Any],
        cluster_key: ClusterKey,
        cluster_id: str,
        resource_id: str,
    ) -> tuple[Job, bool]:
        with self.lock:
            public, secrets = split_secrets(properties)
            existing = self.jobs.get(key)
            if existing:
                if (
                    _canonical(existing.properties) != _canonical(public)
                    or existing.secrets != secrets
                ):
                    raise Conflict(
                        "Conflict",
                        f"Job '{name}' already exists with different properties; a job's "
                        "definition cannot be changed (delete it first).",
                    )
                return existing, False
            if cluster_key not in self.clusters:
                raise BadRequest(
                    "InvalidParameter",
                    f"properties.cluster.id: cluster '{cluster_key[3]}' does not exist",
                )
            wall_seconds, wall_text = max_wall_clock(properties)
            job_uid = str(uuid.uuid4())
            sub, group, ws, exp, _ = key
            if api_version == API_2018:
                workspace = self.workspaces[(sub, group, ws)]
                experiment = self.experiments[(sub, group, ws, exp)]
                segment = (
                    f"{workspace.subscription}/{workspace.group}/workspaces/{workspace.name}/"
                    f"{workspace.uid}/experiments/{experiment.name}/{experiment.uid}/jobs/"
                    f"{name}/{job_uid}"
                )
            else:
                segment = f"{sub}/{group}/jobs/{name}/{job_uid}"
            job = Job(
                key=key,
                name=name,
                api_version=api_version,
                location=location,
                tags=tags,
                properties=public,
                secrets=secrets,
                cluster_key=cluster_key,
                cluster_id=cluster_id,
                node_count=int(properties.get("nodeCount") or 1),
                max_wall_seconds=wall_seconds,
                max_wall_clock=wall_text,
                created=utcnow(),
                segment=segment,
                uid=job_uid,
                resource_id=resource_id,
            )
            self.jobs[key] = job
            self.ctx.stats.record_resource("created", "job")
            self.ctx.stats.record_peak("jobs", len(self.jobs))
            self._schedule()
            return job, True

    def job(self, key: JobKey) -> Job:
        with self.lock:
            return _find(self.jobs, key, "job", key[4])

    def list_jobs(self, sub: str, group: str | None, ws: str, exp: str) -> list[Job]:
        with self.lock:
            return _in_scope(self.jobs, sub, group, ws, exp)

    def delete_job(self, key: JobKey) -> bool:
        with self.lock:
            if key not in self.jobs:
                return False
            self._delete_job(key)
            return True

    def _delete_job(self, key: JobKey) -> None:
        job = self.jobs.pop(key)
        self._stop(job)
        self._remove_run_dir(job)
        self.ctx.stats.record_resource("deleted", "job")

    def terminate_job(self, key: JobKey) -> Job:
        """Kill a queued or running job (it ends failed); a finished job is left as it is."""
        with self.lock:
            job = self.job(key)
            if job.execution_state in ("queued", "running"):
                self._finish(job, "failed", None, "JobTerminated", "The job was terminated.")
            return job

    # -------------------------------------------------------------- file servers

    def put_file_server(
        self,
        key: ClusterKey,
        name: str,
        api_version: str,
        location: str,
        tags: dict[str, str],
        properties: dict[str, Any],
        resource_id: str,
    ) -> tuple[FileServer, bool]:
        with self.lock:
            return self._put(
                self.file_servers,
                key,
                "file_server",
                lambda: FileServer(
                    key,
                    name,
                    api_version,
                    location,
                    tags,
                    copy.deepcopy(properties),
                    utcnow(),
                    resource_id=resource_id,
                ),
            )

    def file_server(self, key: ClusterKey) -> FileServer:
        with self.lock:
            return _find(self.file_servers, key, "file server", key[3])

    def list_file_servers(self, sub: str, group: str | None, ws: str) -> list[FileServer]:
        with self.lock:
            return _in_scope(self.file_servers, sub, group, ws)

    def delete_file_server(self, key: ClusterKey) -> bool:
        with self.lock:
            if self.file_servers.pop(key, None) is None:
                return False
            self.ctx.stats.record_resource("deleted", "file_server")
            return True

    # ---------------------------------------------------------------- operations

    def start_operation(
        self,
        name: str,
        is_done: Callable[[], bool],
        result: Callable[[], dict[str, Any] | None] = lambda: None,
    ) -> Operation:
        with self.lock:
            # Clients poll an operation within seconds; old records only cost memory.
            horizon = utcnow().timestamp() - OPERATION_RETENTION_SECONDS
            for op_id in [k for k, o in self.operations.items() if o.started.timestamp() < horizon]:
                del self.operations[op_id]
            op = Operation(str(uuid.uuid4()), name, utcnow(), is_done, result)
            self.operations[op.op_id] = op
            return op

    def operation(self, op_id: str) -> Operation:
        with self.lock:
            op = _find(self.operations, op_id, "operation", op_id)
            if op.ended is None and op.is_done():
                op.ended = utcnow()
            return op

    # --------------------------------------------------------------- lifecycle

    def delete_resource_group(self, sub: str, group: str) -> None:
        with self.lock:
            scopes = {k[:3] for k in self.clusters} | {k[:3] for k in self.jobs}
            scopes |= {k[:3] for k in self.file_servers}
            for scope in scopes:
                if scope[:2] == (sub.lower(), group.lower()) and scope[2] == "":
                    self._delete_scope(*scope)
            for key in [k for k in self.workspaces if k[:2] == (sub.lower(), group.lower())]:
                self.delete_workspace(*key)

    def reset(self) -> None:
        with self.lock:
            for job in self.jobs.values():
                self._stop(job)
            for store in (self.workspaces, self.experiments, self.clusters, self.jobs):
                store.clear()
            self.file_servers.clear()
            self.operations.clear()
            shutil.rmtree(self.runs_dir / "runs", ignore_errors=True)

    def shutdown(self) -> None:
        with self.lock:
            for job in self.jobs.values():
                self._stop(job)


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True)
