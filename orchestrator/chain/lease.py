"""A step's lease on its run: held while the step executes, renewed by a
heartbeat, and lost when the holder stops renewing (it died or stalled).

The lease replaces a lock that lasted the broker's visibility timeout. Held
for `lease_seconds` and renewed every third of that, it expires soon after its
worker dies, so the re-driver can hand the step to another worker within
seconds; a holder that was only slow finds it lost and stops before writing,
so a step never executes twice at once.
"""

from __future__ import annotations

import threading
from types import TracebackType

import redis

from orchestrator.store import Keys
from orchestrator.store.lua import load_script


class Lease:
    def __init__(self, client: redis.Redis, key: str, owner: str, ttl_seconds: float) -> None:
        self.redis = client
        self.key = key
        self.owner = owner
        self.ttl_ms = max(1, int(ttl_seconds * 1000))
        self._lost = threading.Event()
        self._stop = threading.Event()
        self._heartbeat: threading.Thread | None = None

    @classmethod
    def acquire(
        cls, client: redis.Redis, keys: Keys, run_id: str, owner: str, ttl_seconds: float
    ) -> Lease | None:
        """The run's lease for `owner`, or None while someone else holds it."""
        lease = cls(client, keys.lock(run_id), owner, ttl_seconds)
        if not client.set(lease.key, owner, nx=True, px=lease.ttl_ms):
            return None
        lease._heartbeat = threading.Thread(
            target=lease._renew_until_released, name=f"lease-{run_id}", daemon=True
        )
        lease._heartbeat.start()
        return lease

    @property
    def lost(self) -> bool:
        """True once a renewal found the lease gone or taken: stop, write nothing."""
        return self._lost.is_set()

    def _renew_until_released(self) -> None:
        renew = self.redis.register_script(load_script("renew_lease"))
        interval = self.ttl_ms / 3000
        while not self._stop.wait(interval):
            try:
                held = renew(keys=[self.key], args=[self.owner, self.ttl_ms])
            except redis.RedisError:
                continue  # Redis away for a moment: the next beat tries again
            if not held:
                self._lost.set()
                return

    def release(self) -> None:
        self._stop.set()
        if self._heartbeat is not None:
            self._heartbeat.join()
        release = self.redis.register_script(load_script("release_lease"))
        release(keys=[self.key], args=[self.owner])

    def __enter__(self) -> Lease:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
