"""Batch AI rules: the node and job state machines, scheduling, allocation and preemption
faults, and launching and reaping job processes. BatchAIState (models.py) holds the
records and serves the resource operations; it inherits these rules from Scheduler.

Nothing here takes the lock: callers hold BatchAIState.lock. Time is ctx.config.clock
(monotonic seconds), so tests can drive provisioning, preemption and maxWallClockTime.
"""

from __future__ import annotations

import shutil
import threading
from pathlib import Path
from typing import Any

from emulator.batchai import runner
from emulator.batchai.records import (
    API_2018,
    Cluster,
    ClusterKey,
    FileServer,
    Job,
    JobKey,
    Node,
    utcnow,
)
from emulator.core import EmulatorContext

# A preempted job is killed this long after it started (a lowpriority node is lost).
PREEMPT_AFTER_SECONDS = 0.5

_PRIORITY_RANK = {"high": 0, "normal": 1, "low": 2}


class Scheduler:
    """The rules; the records they change are BatchAIState's."""

    ctx: EmulatorContext
    lock: threading.RLock
    clusters: dict[ClusterKey, Cluster]
    jobs: dict[JobKey, Job]
    file_servers: dict[ClusterKey, FileServer]
    runs_dir: Path
    job_user: runner.JobUser | None

    # ------------------------------------------------------------------ allocation

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
            ready_at = self.ctx.config.clock() + self.ctx.config.provision_seconds
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

    def file_server_dir(self, server: FileServer) -> Path:
        path = self.runs_dir / "fileservers" / server.uid
        path.mkdir(parents=True, exist_ok=True)
        return path

    # ------------------------------------------------------------------ advance

    def advance(self) -> None:
        """Move every cluster and job forward to the present."""
        with self.lock:
            now = self.ctx.config.clock()
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
            ready_at = self.ctx.config.clock() + self.ctx.config.provision_seconds
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
        job.started_at = self.ctx.config.clock()
        running = sum(j.execution_state == "running" for j in self.jobs.values())
        self.ctx.stats.record_peak("jobs_running", running)
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
            if self.job_user is not None:
                runner.hand_over(
                    self.job_user,
                    [
                        job.layout.root,
                        job.layout.stdouterr_dir,
                        *job.layout.output_dirs.values(),
                        *(mount.target for mount in cluster_mounts + job_mounts),
                    ],
                    within=self.ctx.config.data_dir,
                )
            prep = (job.properties.get("jobPreparation") or {}).get("commandLine")
            if prep:
                job.phase = "prep"
                job.process = runner.start(
                    ["/bin/sh", "-c", str(prep)],
                    job.layout,
                    "stdout-job_prep.txt",
                    "stderr-job_prep.txt",
                    self.job_user,
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
            job.process = runner.start(argv, job.layout, "stdout.txt", "stderr.txt", self.job_user)
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
