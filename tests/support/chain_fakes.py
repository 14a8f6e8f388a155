"""An in-memory stand-in for AzureGateway, for step and chain unit tests."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from orchestrator.azure.errors import PermanentAzureError
from orchestrator.azure.files import ShareNotFound
from orchestrator.azure.gateway import Gateway
from orchestrator.azure.types import AzureResource, JobState, NodeCounts, OutputFile, ShareFile
from orchestrator.domain.naming import AzureNames
from orchestrator.domain.spec import RunSpec


@dataclass
class FakeGateway:
    node_counts: list[NodeCounts] = field(default_factory=list)  # one per poll, last repeats
    job_states: list[str] = field(default_factory=lambda: ["running", "succeeded"])
    exit_code: int = 0
    fail_on: dict[str, Exception] = field(default_factory=dict)
    calls: Counter[str] = field(default_factory=Counter)
    share_md5: dict[str, str] = field(default_factory=dict)
    clusters: set[str] = field(default_factory=set)
    jobs: set[str] = field(default_factory=set)
    last_request_id: str | None = "req-1"
    # The job's stderr.txt; None lists no stderr at all (stdout.txt only).
    stderr_text: bytes | None = None
    # More files of every output directory (after sub/model.bin).
    extra_outputs: list[OutputFile] = field(default_factory=list)

    def _call(self, name: str) -> None:
        self.calls[name] += 1
        if name in self.fail_on:
            raise self.fail_on[name]

    def ensure_resource_group(self, name: str) -> None:
        self._call("ensure_resource_group")

    def ensure_workspace(self, rg: str, ws: str) -> bool:
        self._call("ensure_workspace")
        return True

    def ensure_experiment(self, rg: str, ws: str, ex: str) -> bool:
        self._call("ensure_experiment")
        return True

    def ensure_share(self, share: str) -> None:
        self._call("ensure_share")

    def ensure_directory(self, share: str, path: str) -> None:
        self._call("ensure_directory")

    def file_md5(self, share: str, directory: str, name: str) -> str | None:
        self._call("file_md5")
        path = f"{directory}/{name}"
        return self.share_md5.get(path) or self.share_complete.get(path)

    def upload_file(self, share: str, directory: str, name: str, local: Path, md5: str) -> None:
        self._call("upload_file")
        self.share_md5[f"{directory}/{name}"] = md5
        self.share_files[f"{directory}/{name}"] = local.read_bytes()
        self.share_complete[f"{directory}/{name}"] = md5

    # ------------------------------------------- content on the share (in memory)
    # share-relative path -> bytes, and -> Content-MD5 once complete
    share_files: dict[str, bytes] = field(default_factory=dict)
    share_complete: dict[str, str] = field(default_factory=dict)
    deleted_shares: list[str] = field(default_factory=list)

    def copy_file(
        self, share: str, source: str, directory: str, name: str, *, source_share: str = ""
    ) -> None:
        self._call("copy_file")
        if source not in self.share_files:
            raise ShareNotFound(source)
        target = f"{directory}/{name}"
        self.share_files[target] = self.share_files[source]
        if source in self.share_complete:
            self.share_complete[target] = self.share_complete[source]

    def list_tree(self, share: str, path: str, *, with_md5: bool = False) -> list[ShareFile]:
        self._call("list_tree")
        prefix = path.strip("/") + "/"
        found = [
            ShareFile(
                name[len(prefix) :],
                len(body),
                self.share_complete.get(name) if with_md5 else None,
            )
            for name, body in sorted(self.share_files.items())
            if name.startswith(prefix)
        ]
        if not found:
            raise ShareNotFound(path)
        return found

    def share_file(self, share: str, path: str) -> ShareFile | None:
        self._call("share_file")
        if path not in self.share_files:
            return None
        return ShareFile(path, len(self.share_files[path]), self.share_complete.get(path))

    def iter_file(self, share: str, path: str, size: int) -> Iterator[bytes]:
        self._call("iter_file")
        yield self.share_files[path][:size]

    def create_empty_file(self, share: str, path: str, size: int) -> None:
        self._call("create_empty_file")
        self.share_files[path] = bytes(size)
        self.share_complete.pop(path, None)

    def write_range(self, share: str, path: str, start: int, data: bytes) -> None:
        self._call("write_range")
        body = self.share_files[path]
        self.share_files[path] = body[:start] + data + body[start + len(data) :]

    def set_md5(self, share: str, path: str, md5: str) -> None:
        self._call("set_md5")
        self.share_complete[path] = md5

    def delete_file(self, share: str, path: str) -> None:
        self._call("delete_file")
        self.share_files.pop(path, None)
        self.share_complete.pop(path, None)
        self.share_md5.pop(path, None)

    def delete_share(self, share: str) -> None:
        # One dict holds every share's files here: a run share's are what is not
        # in the configured share's folders (uploads/, etl data, ...).
        self._call("delete_share")
        self.deleted_shares.append(share)
        for name in [n for n in self.share_files if n.startswith(("inputs/", "outputs/"))]:
            self.delete_file(share, name)

    def delete_tree(self, share: str, path: str) -> int:
        self._call("delete_tree")
        prefix = path.strip("/") + "/"
        doomed = [name for name in self.share_files if name.startswith(prefix)]
        for name in doomed:
            self.delete_file(share, name)
        return len(doomed)

    def ensure_cluster(self, names: AzureNames, spec: RunSpec) -> bool:
        self._call("ensure_cluster")
        adopted = names.cluster in self.clusters
        self.clusters.add(names.cluster)
        return adopted

    def get_cluster_nodes(self, names: AzureNames) -> NodeCounts:
        self._call("get_cluster_nodes")
        if not self.node_counts:
            return NodeCounts(1, 0, 0, 0, 0, 1, "steady")
        return self.node_counts.pop(0) if len(self.node_counts) > 1 else self.node_counts[0]

    def create_job(self, names: AzureNames, spec: RunSpec, *, known_absent: bool = False) -> bool:
        self._call("create_job")
        adopted = names.job in self.jobs
        self.jobs.add(names.job)
        return adopted

    def get_job(self, names: AzureNames) -> JobState:
        self._call("get_job")
        if names.job not in self.jobs:
            raise PermanentAzureError(
                "job disappeared",
                reason=__import__(
                    "orchestrator.domain.status", fromlist=["FailureReason"]
                ).FailureReason.AZURE_ERROR,
            )
        state = self.job_states.pop(0) if len(self.job_states) > 1 else self.job_states[0]
        return JobState(state, self.exit_code if state == "failed" else None, [], None, None)

    def list_jobs(self, rg: str, ws: str, experiment: str) -> dict[str, JobState]:
        self._call("list_jobs")
        state = self.job_states[0]
        return {job: JobState(state, None, [], None, None) for job in sorted(self.jobs)}

    def terminate_job(self, names: AzureNames) -> None:
        self._call("terminate_job")

    def job_exists(self, names: AzureNames) -> bool:
        self._call("job_exists")
        return names.job in self.jobs

    def cluster_exists(self, names: AzureNames) -> bool:
        self._call("cluster_exists")
        return names.cluster in self.clusters

    def delete_job(self, rg: str, ws: str, ex: str, job: str) -> None:
        self._call("delete_job")
        self.deleted.append(job)
        self.jobs.discard(job)

    def delete_cluster(self, rg: str, ws: str, cluster: str) -> None:
        self._call("delete_cluster")
        self.deleted.append(cluster)
        self.clusters.discard(cluster)

    def list_output_files(
        self, names: AzureNames, output_id: str, directory: str = "."
    ) -> list[OutputFile]:
        self._call("list_output_files")
        if output_id == "stdouterr":
            logs = [OutputFile("stdout.txt", "https://x/stdout", False)]
            if self.stderr_text is not None:
                logs.append(OutputFile("stderr.txt", "https://x/stderr", False))
            return logs
        return [
            OutputFile("sub", None, True),
            OutputFile("sub/model.bin", "https://x/model", False),
            *self.extra_outputs,
        ]

    def download(self, url: str, dest: Path) -> int:
        self._call("download")
        dest.parent.mkdir(parents=True, exist_ok=True)
        body = self._body(url)
        dest.write_bytes(body)
        return len(body)

    def file_size(self, url: str) -> int:
        self._call("file_size")
        return len(self._body(url))

    def read_range(self, url: str, start: int, end: int) -> bytes:
        self._call("read_range")
        return self._body(url)[start : end + 1]

    def _body(self, url: str) -> bytes:
        if url.endswith("stderr"):
            return self.stderr_text or b""
        return b"accuracy=0.5\n" if url.endswith("stdout") else b"weights"

    # --------------------------------------------------------- reaper
    listed_clusters: list[AzureResource] = field(default_factory=list)
    listed_jobs: list[AzureResource] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)

    def list_clusters(self, rg: str, ws: str) -> list[AzureResource]:
        self._call("list_clusters")
        return self.listed_clusters

    def list_job_resources(self, rg: str, ws: str) -> list[AzureResource]:
        self._call("list_job_resources")
        return self.listed_jobs


class FakeClock:
    """A StepContext clock the test moves by hand (ctx.clock.now += ...)."""

    def __init__(self, now: float = 2_000_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


# Checked by mypy (tests.support is in its packages): the fake is a Gateway.
_FAKE_IS_A_GATEWAY: type[Gateway] = FakeGateway
