"""Configuration and the shared context that every emulated service sees.

The server builds one EmulatorContext, then calls `register(router, ctx)` of every
service module (emulator.arm, emulator.files, emulator.batchai, emulator.control).
Cross-service contracts (a resource-group delete cascading into Batch AI, a job
reading the share a cluster mounts, SAS URLs in list_output_files) go through the
Protocols below; ARM and Files serve the stores the server put in the context.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from emulator.faults import FaultRule

DEFAULT_SUBSCRIPTION_ID = "00000000-0000-0000-0000-000000000000"
# Not "devstoreaccount1": azure-storage-file refuses that (Azurite) account name outright.
DEFAULT_STORAGE_ACCOUNT = "batchaiemulator"


@dataclass
class EmulatorConfig:
    data_dir: Path
    host: str = "127.0.0.1"
    port: int = 0  # 0 = pick a free port
    provision_seconds: float = 0.0  # preparing -> idle delay for new nodes
    python: str = sys.executable  # interpreter that runs job scripts
    seed: int = 0  # drives every random fault decision
    subscription_id: str = DEFAULT_SUBSCRIPTION_ID
    storage_account: str = DEFAULT_STORAGE_ACCOUNT
    # Base64 account key; generated once per data dir and kept there when None.
    storage_key: str | None = None
    env_file: Path | None = None
    # Bearer token for ARM, Batch AI and /_emulator/*; generated once per data dir
    # (<data-dir>/access-token) when None.
    access_token: str | None = None
    # When the emulator runs as root, job processes run as this user (None: as root).
    # Their run, mount and output folders are handed to it.
    job_user: str | None = "nobody"
    # Name clients use to reach the emulator from elsewhere (e.g. "emulator" as a
    # compose service): added to the certificate and used in the advertised URLs.
    public_host: str | None = None
    # Monotonic seconds: when new nodes become idle, when a preempted run is killed and
    # when maxWallClockTime expires. Tests pass a clock they advance themselves.
    clock: Callable[[], float] = time.monotonic


class Stats(Protocol):
    """Counters served at GET /_emulator/stats."""

    def record_request(self, operation: str, outcome: str) -> None:
        """outcome: the HTTP status as a string ("200", "404"), or "fault:<kind>"."""

    def record_resource(self, event: str, kind: str) -> None:
        """event: "created" | "deleted"; kind: "resource_group", "cluster", "job", ..."""

    def record_peak(self, name: str, value: int) -> None:
        """Keep the highest `value` seen for `name` (e.g. "jobs": jobs existing at once)."""

    def add_bytes_uploaded(self, count: int) -> None: ...

    def add_bytes_downloaded(self, count: int) -> None: ...

    def snapshot(self) -> dict[str, Any]:
        """Everything counted so far (the body of GET /_emulator/stats)."""
        ...

    def clear(self) -> None: ...


class Faults(Protocol):
    """Deterministic (seeded) fault decisions, set by flags or POST /_emulator/faults."""

    def roll(self, kind: str, operation: str) -> bool:
        """True when a fault of `kind` should hit this `operation` now.

        Kinds decided by the server per request: "throttle" (429 + Retry-After),
        "error500", "error503", "drop" (connection closed without a response).
        Kinds decided by the Batch AI model: "node_unusable" (per cluster, nodes
        go unusable instead of idle), "allocation_failure" (per cluster create/
        resize: allocation fails with an AllocationFailed error), "preemption"
        (per running job on a lowpriority cluster). `operation` is the spec
        operationId, or for model faults the operation that triggered them.
        """
        ...

    def rules(self) -> list[dict[str, Any]]:
        """The active rules as JSON (GET /_emulator/faults)."""
        ...

    def set_rules(self, rules: list[FaultRule]) -> None: ...

    def clear(self) -> None: ...


class ResourceGroups(Protocol):
    def exists(self, subscription_id: str, name: str) -> bool:
        """True while the group exists and is not being deleted."""
        ...

    def location(self, subscription_id: str, name: str) -> str | None: ...

    def on_delete(self, callback: Callable[[str, str], None]) -> None:
        """Register callback(subscription_id, resource_group) run when a group is deleted."""


class FileShares(Protocol):
    def share_root(self, share: str) -> Path:
        """Directory on disk that holds the share's tree (the same bytes jobs see mounted)."""
        ...

    def share_exists(self, share: str) -> bool: ...

    def sas_url(self, base_url: str, share: str, path: str, expiry_seconds: int = 3600) -> str:
        """A read-only, signed download URL for one file of a share."""
        ...


@dataclass
class EmulatorContext:
    config: EmulatorConfig
    stats: Stats
    faults: Faults
    resource_groups: ResourceGroups
    file_shares: FileShares
    # Run by POST /_emulator/reset with state, and when the server stops, in reverse order
    # of registration: services register after the platform services (ARM, Files) whose
    # state they use, so Batch AI kills its job processes before the shares are cleared.
    reset_hooks: list[Callable[[], None]] = field(default_factory=list)
    shutdown_hooks: list[Callable[[], None]] = field(default_factory=list)
