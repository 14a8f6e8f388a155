"""A real Redis Sentinel deployment on loopback: a master, a replica and one Sentinel.

Built from the devstack's RedisServer (free ports, a password in a 0600 config
file, readiness read from the log, no sleeps). The Sentinel runs
`redis-server <config> --sentinel` with a quorum of 1, so `SENTINEL FAILOVER`
promotes the replica at once. Every wait polls a condition against a deadline.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Self, TypeVar

import redis

from orchestrator.devstack.redis_server import RedisServer

MASTER_NAME = "orchmaster"
WAIT_SECONDS = 30.0
POLL_SECONDS = 0.05
# An upper bound on a planned failover's write pause; released as soon as
# the old master is a replica (about 1 s).
PAUSE_MS = 10_000

T = TypeVar("T")


def poll_until(what: str, probe: Callable[[], T | None], timeout: float = WAIT_SECONDS) -> T:
    """Poll `probe` until it returns something truthy; AssertionError after `timeout`."""
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            value = probe()
        except redis.RedisError as exc:
            last_error = exc
        else:
            if value:
                return value
        time.sleep(POLL_SECONDS)
    raise AssertionError(f"{what}: not within {timeout:g}s (last error: {last_error})")


class SentinelServer(RedisServer):
    """`redis-server --sentinel` monitoring `master_port` under `master_name`."""

    ready_marker = b"+monitor master"

    def __init__(self, master_port: int, master_password: str, master_name: str) -> None:
        super().__init__(
            extra_config=[
                f"sentinel monitor {master_name} 127.0.0.1 {master_port} 1",
                f"sentinel auth-pass {master_name} {master_password}",
                f"sentinel down-after-milliseconds {master_name} 1000",
                f"sentinel failover-timeout {master_name} 10000",
            ]
        )

    def _command(self, data_dir: Path) -> list[str]:
        # The Sentinel rewrites its config file (it must be writable: it is ours).
        return [*super()._command(data_dir), "--sentinel"]

    @property
    def address(self) -> str:
        """host:port, for a sentinel:// entry."""
        return f"127.0.0.1:{self.port}"


class SentinelDeployment:
    """Master + replica (same password) + one Sentinel (its own password)."""

    def __init__(self, master_name: str = MASTER_NAME) -> None:
        self.master_name = master_name
        self.master = RedisServer()
        self.replica: RedisServer | None = None
        self.sentinel: SentinelServer | None = None

    def start(self) -> Self:
        self.master.start()
        password = self.master.password
        self.replica = RedisServer(
            password=password,
            extra_config=[f"replicaof 127.0.0.1 {self.master.port}", f"masterauth {password}"],
        ).start()
        self.sentinel = SentinelServer(self.master.port, password, self.master_name).start()
        self.wait_until_replicated()
        return self

    def stop(self) -> None:
        for server in (self.sentinel, self.replica, self.master):
            if server is not None:
                server.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # ---------------------------------------------------------------- addresses
    @property
    def password(self) -> str:
        return self.master.password

    @property
    def sentinel_password(self) -> str:
        assert self.sentinel is not None
        return self.sentinel.password

    def url(self, db: int = 0) -> str:
        """The REDIS_URL naming this deployment (data-node password, database)."""
        assert self.sentinel is not None
        return f"sentinel://:{self.password}@{self.sentinel.address}/{db}"

    def sentinel_client(self) -> redis.Redis:
        assert self.sentinel is not None
        return redis.Redis(
            port=self.sentinel.port,
            password=self.sentinel.password,
            decode_responses=True,
            socket_timeout=5,
        )

    def master_port(self) -> int:
        """The master's port, as the Sentinel sees it now."""
        with self.sentinel_client() as client:
            _, port = client.execute_command(
                "SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.master_name
            )
        return int(port)

    # -------------------------------------------------------------------- waits
    def wait_until_replicated(self) -> None:
        """Until the Sentinel knows a replica whose link to the master is up
        (a failover needs one)."""

        def replica_known() -> bool:
            with self.sentinel_client() as client:
                replicas = client.execute_command("SENTINEL", "REPLICAS", self.master_name)
            return any(
                _fields(replica).get("master-link-status") == "ok"
                and "s_down" not in _fields(replica).get("flags", "")
                for replica in replicas
            )

        poll_until("the Sentinel sees a synced replica", replica_known)

    def failover(self, *, pause_writes: bool = False) -> RedisServer:
        """SENTINEL FAILOVER with the master alive; returns the new master once
        the Sentinel has switched to it and the old master is a replica.

        Without `pause_writes`, the Sentinel turns the old master into a replica
        about 10 s after the switch; until then a client still connected to it
        writes there, and those writes are dropped when it resyncs from the new
        master (Sentinel's split-brain window).

        `pause_writes` is the README's planned failover, which loses no
        acknowledged write: CLIENT PAUSE WRITE on the old master, SENTINEL
        FAILOVER, and as soon as the Sentinel has switched: REPLICAOF the new
        master and CLIENT KILL TYPE normal on the old one, CLIENT UNPAUSE. The
        paused writes lose their connection unexecuted, and the clients
        reconnect to the new master."""
        old, new = self._servers_by_role()
        with _client(old) as paused:
            if pause_writes:
                paused.execute_command("CLIENT", "PAUSE", str(PAUSE_MS), "WRITE")
            with self.sentinel_client() as client:
                client.execute_command("SENTINEL", "FAILOVER", self.master_name)
            self.wait_for_switch(new)
            if pause_writes:
                paused.execute_command("REPLICAOF", "127.0.0.1", str(new.port))
                # As the Sentinel does when it demotes a master: a pooled
                # connection would otherwise stay on the replica (kombu's
                # pipelines get READONLY there forever instead of reconnecting).
                paused.execute_command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
                paused.execute_command("CLIENT", "UNPAUSE")
        poll_until(f"the old master ({old.port}) is a replica", lambda: _role(old) == "slave")
        return new

    def kill_master(self) -> RedisServer:
        """Stop the master's process (an outage) and return the replica once the
        Sentinel has promoted it (down-after 1 s, quorum 1)."""
        old, new = self._servers_by_role()
        old.stop()
        self.wait_for_switch(new)
        return new

    def _servers_by_role(self) -> tuple[RedisServer, RedisServer]:
        assert self.replica is not None
        if self.master_port() == self.master.port:
            return self.master, self.replica
        return self.replica, self.master

    def wait_for_switch(self, new: RedisServer) -> None:
        def switched() -> bool:
            with self.sentinel_client() as client:
                state = client.sentinel_master(self.master_name)
            return int(state["port"]) == new.port and _role(new) == "master"

        poll_until(f"the Sentinel switches to {new.port}", switched)


def _client(server: RedisServer) -> redis.Redis:
    return redis.Redis(port=server.port, password=server.password, socket_timeout=5)


def _role(server: RedisServer) -> str:
    with _client(server) as client:
        role: bytes = client.execute_command("ROLE")[0]
    return role.decode()


def _fields(flat: object) -> dict[str, str]:
    """SENTINEL REPLICAS returns each replica as a dict (RESP3) or a flat list."""
    if isinstance(flat, dict):
        return {str(k): str(v) for k, v in flat.items()}
    assert isinstance(flat, list)
    return {str(flat[i]): str(flat[i + 1]) for i in range(0, len(flat), 2)}
