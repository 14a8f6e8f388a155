"""Batch AI state and rules: node and job state machines, scheduling, faults, cascading
deletes and long-running operations, for both api-versions (the records themselves are
in records.py).

Every public method takes the lock; `advance()` moves time forward (nodes become idle,
queued jobs start, finished processes are reaped) and is called by the background
ticker and at the start of each request.
"""

from __future__ import annotations

import copy
import json
import shutil
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from emulator.batchai import runner
from emulator.batchai.durations import DEFAULT_MAX_WALL_CLOCK, parse_seconds, to_iso
from emulator.batchai.records import (
    API_2018,
    Cluster,
    ClusterKey,
    Experiment,
    FileServer,
    Job,
    JobKey,
    Node,
    Operation,
    Workspace,
    not_found,
    utcnow,
)
from emulator.core import EmulatorContext
from emulator.errors import BadRequest, Conflict

# A preempted job is killed this long after it started (a lowpriority node is lost).
PREEMPT_AFTER_SECONDS = 0.5
# Long-running operation records older than this are forgotten (status GET then 404s).
OPERATION_RETENTION_SECONDS = 3600

_PRIORITY_RANK = {"high": 0, "normal": 1, "low": 2}


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


class BatchAIState:
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

    def _resize(self, cluster: Cluster, target: int, operation: str) -> None:
        cluster.target = target
        cluster.errors = []
        grow = target - len(cluster.nodes)
        if grow > 0:
            if self.ctx.faults.roll("allocation_failure", operation):
                cluster.errors = [
                    {
                        "code": "AllocationFailed",
                        "message": f"Allocation of {grow} {cluster.vm_size} node(s) failed: "
                        "no capacity for the requested VM size in the region.",
                    }
                ]
                self._set_allocation(cluster, "steady")
                return
            cluster.nodes_unusable = self.ctx.faults.roll("node_unusable", operation)
            ready_at = time.monotonic() + self.ctx.config.provision_seconds
            for _ in range(grow):
                cluster.nodes.append(Node(self._node_id(cluster), "preparing", ready_at))
            self._set_allocation(cluster, "resizing")
        elif grow < 0:
            self._shrink(cluster)

    def _node_id(self, cluster: Cluster) -> str:
        cluster.next_node += 1
        return f"tvm-{abs(hash(cluster.key)) % 10**10}_{cluster.next_node}-emulator"

    def _shrink(self, cluster: Cluster) -> None:
        """Remove the nodes above the target: those without work first, then running ones
        per nodeDeallocationOption (waitforjobcompletion keeps them until their job ends:
        every advance calls this again while the cluster is above its target)."""
        order = {"preparing": 0, "unusable": 1, "idle": 2, "running": 3}
        excess = len(cluster.nodes) - cluster.target
        victims = sorted(cluster.nodes, key=lambda n: order[n.state])[:excess]
        option = str(
            ((cluster.properties.get("scaleSettings") or {}).get("manual") or {}).get(
                "nodeDeallocationOption", "requeue"
            )
        ).lower()
        for node in victims:
            if node.state == "running" and node.job in self.jobs:
                job = self.jobs[node.job]
                if option in ("waitforjobcompletion", "jobcompletion"):
                    continue
                if option == "terminate":
                    self._finish(job, "failed", None, "JobTerminated", "Node deallocated.")
                else:
                    self._stop(job)
                    self._requeue(job)
            if node in cluster.nodes:
                cluster.nodes.remove(node)
        if len(cluster.nodes) > cluster.target:
            self._set_allocation(cluster, "resizing")

    def _set_allocation(self, cluster: Cluster, state: str) -> None:
        if cluster.allocation_state != state:
            cluster.allocation_state = state
            cluster.allocation_time = utcnow()

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
            secrets = {
                str(s["name"]): str(s.get("value", "")) for s in properties.get("secrets") or []
            }
            public = copy.deepcopy(properties)
            if "secrets" in public:
                public["secrets"] = [{"name": s["name"]} for s in public["secrets"]]
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
            wall = str((properties.get("constraints") or {}).get("maxWallClockTime") or "")
            try:
                wall_seconds = parse_seconds(wall) if wall else parse_seconds("P7D")
            except ValueError as exc:
                raise BadRequest(
                    "InvalidParameter", f"properties.constraints.maxWallClockTime: {exc}"
                ) from exc
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
                max_wall_clock=to_iso(wall_seconds) if wall else DEFAULT_MAX_WALL_CLOCK,
                created=utcnow(),
                segment=segment,
                uid=job_uid,
                resource_id=resource_id,
            )
            self.jobs[key] = job
            self.ctx.stats.record_resource("created", "job")
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

    def file_server_dir(self, server: FileServer) -> Path:
        path = self.runs_dir / "fileservers" / server.uid
        path.mkdir(parents=True, exist_ok=True)
        return path

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

    # ------------------------------------------------------------------ advance

    def advance(self) -> None:
        """Move every cluster and job forward to the present."""
        with self.lock:
            now = time.monotonic()
            # Jobs first: nodes a finished job frees are removed (cluster above its
            # target) before the scheduler could hand them to another job.
            for job in list(self.jobs.values()):
                if job.execution_state == "running":
                    self._advance_job(job, now)
            for cluster in self.clusters.values():
                self._advance_cluster(cluster, now)
            self._schedule()

    def _advance_cluster(self, cluster: Cluster, now: float) -> None:
        if cluster.provisioning_state == "creating":
            cluster.provisioning_state = "succeeded"
            cluster.provisioning_time = utcnow()
        for node in cluster.nodes:
            if node.state == "preparing" and node.ready_at <= now:
                node.state = "unusable" if cluster.nodes_unusable else "idle"
        if len(cluster.nodes) > cluster.target:
            self._shrink(cluster)
        if (
            cluster.allocation_state == "resizing"
            and not cluster.count("preparing")
            and len(cluster.nodes) <= cluster.target
        ):
            self._set_allocation(cluster, "steady")
        self._autoscale(cluster)

    def _autoscale(self, cluster: Cluster) -> None:
        auto = (cluster.properties.get("scaleSettings") or {}).get("autoScale")
        if not auto:
            return
        demand = sum(
            j.node_count
            for j in self.jobs.values()
            if j.cluster_key == cluster.key and j.execution_state in ("queued", "running")
        )
        if cluster.autoscale_initial and not demand:
            return
        low, high = int(auto["minimumNodeCount"]), int(auto["maximumNodeCount"])
        wanted = min(max(demand, low), high)
        if demand:
            cluster.autoscale_initial = False
        unusable = cluster.count("unusable")
        usable = len(cluster.nodes) - unusable
        if wanted > usable:  # grow for queued work
            self._resize(cluster, wanted + unusable, "Clusters_Update")
        elif wanted < usable and not cluster.count("running") and not cluster.count("preparing"):
            self._resize(cluster, wanted + unusable, "Clusters_Update")  # idle: shrink back

    def _advance_job(self, job: Job, now: float) -> None:
        if job.process is None:
            return
        if now - job.started_at > job.max_wall_seconds:
            self._finish(
                job,
                "failed",
                None,
                "MaxWallClockTimeExpiry",
                f"The job exceeded its maxWallClockTime ({job.max_wall_clock}) and was killed.",
            )
            return
        if job.preempt and now - job.started_at >= PREEMPT_AFTER_SECONDS:
            self._preempt(job)
            return
        code = job.process.poll()
        if code is None:
            return
        job.process = None
        if job.phase == "prep":
            if code != 0:
                self._finish(job, "failed", code, "JobPreparationFailed", "Job preparation failed.")
                return
            self._start_main(job)
            return
        if code == 0:
            self._finish(job, "succeeded", 0)
        else:
            self._finish(job, "failed", code, "JobFailed", "Job failed with non-zero exit code")

    def _preempt(self, job: Job) -> None:
        """A lowpriority node was taken back: the run is killed and the job requeued.

        Spec (JobProperties.executionState): "queued - ... A job enters this state when
        it is created, or when it is awaiting a retry after a failed run"; the nodes are
        reallocated (preparing again) as Batch does for preempted lowpriority nodes.
        """
        cluster = self.clusters.get(job.cluster_key)
        self._stop(job)
        self._requeue(job)
        if cluster:
            ready_at = time.monotonic() + self.ctx.config.provision_seconds
            preempted = [n for n in cluster.nodes if n.job is None and n.state == "idle"]
            for node in preempted[: job.node_count]:
                node.state = "preparing"
                node.ready_at = ready_at
            self._set_allocation(cluster, "resizing")

    def _requeue(self, job: Job) -> None:
        job.set_state("queued")
        job.preempt = False
        job.start_time = None

    def _schedule(self) -> None:
        queued = sorted(
            (j for j in self.jobs.values() if j.execution_state == "queued"),
            key=lambda j: (_PRIORITY_RANK.get(_priority(j), 1), j.created),
        )
        for job in queued:
            cluster = self.clusters.get(job.cluster_key)
            if cluster is None:
                continue
            idle = [n for n in cluster.nodes if n.state == "idle"]
            if len(idle) < job.node_count:
                continue
            for node in idle[: job.node_count]:
                node.state = "running"
                node.job = job.key
            cluster.autoscale_initial = False
            self._launch(job, cluster)

    def _launch(self, job: Job, cluster: Cluster) -> None:
        job.attempts += 1
        job.errors = []
        job.exit_code = None
        job.end_time = None
        job.start_time = utcnow()
        job.set_state("running")
        job.started_at = time.monotonic()
        job.preempt = cluster.low_priority and self.ctx.faults.roll("preemption", "Jobs_Create")
        try:
            cluster_mounts = self._mounts(cluster.properties.get("nodeSetup") or {}, cluster)
            job_mounts = self._mounts(job.properties, cluster)
            job.shares = {m.share: m.target for m in cluster_mounts + job_mounts if m.share}
            job.layout = runner.build_layout(
                root=self.runs_dir / "runs" / f"{job.uid}-{job.attempts}",
                job_name=job.name,
                properties=job.properties,
                secrets=job.secrets,
                cluster_mounts=cluster_mounts,
                job_mounts=job_mounts,
                vm_size=cluster.vm_size,
                output_segment=job.segment,
                stdouterr_subdir="stdouterr" if job.api_version == API_2018 else "",
            )
            runner.prepare_output_dirs(job.layout)
            prep = (job.properties.get("jobPreparation") or {}).get("commandLine")
            if prep:
                job.phase = "prep"
                job.process = runner.start(
                    ["/bin/sh", "-c", str(prep)],
                    job.layout,
                    "stdout-job_prep.txt",
                    "stderr-job_prep.txt",
                )
            else:
                self._start_main(job)
        except runner.LaunchError as exc:
            self._finish(job, "failed", None, exc.code, exc.message)
        except OSError as exc:
            self._finish(job, "failed", None, "JobLaunchFailed", f"cannot prepare the job: {exc}")

    def _start_main(self, job: Job) -> None:
        assert job.layout is not None
        try:
            argv = runner.main_command(job.properties, job.layout.env, self.ctx.config.python)
            job.phase = "main"
            job.process = runner.start(argv, job.layout, "stdout.txt", "stderr.txt")
        except runner.LaunchError as exc:
            self._finish(job, "failed", None, exc.code, exc.message)

    def _mounts(self, holder: dict[str, Any], cluster: Cluster) -> list[runner.Mount]:
        volumes = holder.get("mountVolumes") or {}
        mounts: list[runner.Mount] = []
        for share in volumes.get("azureFileShares") or []:
            name = runner.share_name(str(share.get("azureFileUrl", "")))
            if not self.ctx.file_shares.share_exists(name):
                raise runner.LaunchError(
                    "MountFailed",
                    f"Azure File share '{name}' (azureFileUrl {share.get('azureFileUrl')}) "
                    "does not exist.",
                )
            root = self.ctx.file_shares.share_root(name)
            mounts.append(runner.Mount(str(share["relativeMountPath"]), root, name))
        for ref in volumes.get("fileServers") or []:
            server_name = str((ref.get("fileServer") or {}).get("id", "")).rstrip("/")
            server_name = server_name.rsplit("/", 1)[-1].lower()
            server = self.file_servers.get((*cluster.key[:3], server_name))
            target = (
                self.file_server_dir(server)
                if server
                else self.runs_dir / "fileservers" / "missing" / server_name
            )
            target.mkdir(parents=True, exist_ok=True)
            source = str(ref.get("sourceDirectory") or "").strip("/")
            mounts.append(
                runner.Mount(str(ref["relativeMountPath"]), target / source if source else target)
            )
        return mounts

    def _stop(self, job: Job) -> None:
        """Kill the job's process (if any) and give its nodes back."""
        if job.process is not None:
            job.process.kill()
            job.process = None
        cluster = self.clusters.get(job.cluster_key)
        if cluster:
            for node in cluster.nodes:
                if node.job == job.key:
                    node.job = None
                    node.state = "idle"

    def _finish(
        self,
        job: Job,
        state: str,
        exit_code: int | None,
        error_code: str | None = None,
        message: str = "",
    ) -> None:
        """End the job's run: its process is killed (if any) and its nodes given back."""
        self._stop(job)
        job.phase = ""
        job.exit_code = exit_code
        job.end_time = utcnow()
        job.errors = [{"code": error_code, "message": message}] if error_code else []
        job.set_state(state)

    def _remove_run_dir(self, job: Job) -> None:
        for attempt in range(1, job.attempts + 1):
            shutil.rmtree(self.runs_dir / "runs" / f"{job.uid}-{attempt}", ignore_errors=True)


def _priority(job: Job) -> str:
    value = job.properties.get("schedulingPriority")
    if value is None and "priority" in job.properties:  # preview: integer, higher first
        number = int(job.properties.get("priority") or 0)
        return "high" if number > 0 else "low" if number < 0 else "normal"
    return str(value or "normal").lower()


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True)
