"""The one way a process turns REDIS_URL into a Redis client.

REDIS_URL names either one Redis server (redis://, rediss://, unix://, read by
redis-py's from_url) or a Redis Sentinel deployment, in the form kombu's
sentinel transport reads, so that the Celery broker and the run store name the
same Redis with one URL:

    sentinel://[:PASSWORD@]HOST[:PORT][;sentinel://[:PASSWORD@]HOST[:PORT]...][/DB]

Each `sentinel://` entry is one Sentinel (port 26379 by default); the password,
user and database are the Redis data nodes' (master and replicas), as kombu
reads them. The master's name (SENTINEL MONITOR <name> ...) is not in the URL,
as kombu does not read it from there: it is ORCH_REDIS_SENTINEL_MASTER, and a
password of the Sentinels themselves (their requirepass) is
ORCH_REDIS_SENTINEL_PASSWORD. A Sentinel client asks the Sentinels for the
current master whenever it opens a connection, and at most every
MASTER_CHECK_SECONDS as it hands one out (FollowingSentinelConnectionPool), and
drops its connections when the master moved or turned into a replica, so a
failover looks to the caller like a Redis restart: a few failed commands, then
the new master. (Celery's broker connections are kombu's, given the master name
through broker_transport_options; see orchestrator/chain/queue.py.)
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

import redis
from redis.sentinel import MasterNotFoundError, Sentinel, SentinelConnectionPool

SENTINEL_SCHEME = "sentinel"
DEFAULT_SENTINEL_PORT = 26379
# The name Redis' own sentinel.conf, the Redis docs, kombu's and Celery's
# examples and the common Helm charts give the monitored master: a stock
# Sentinel deployment works without setting ORCH_REDIS_SENTINEL_MASTER.
DEFAULT_SENTINEL_MASTER = "mymaster"
# How often, at most, a client re-asks the Sentinels which node is the master
# when it takes a connection (see FollowingSentinelConnectionPool).
MASTER_CHECK_SECONDS = 0.5


class RedisUrlError(ValueError):
    """REDIS_URL is neither a Redis URL nor a sentinel:// list."""


@dataclass(frozen=True)
class SentinelUrl:
    """A parsed sentinel:// REDIS_URL."""

    sentinels: tuple[tuple[str, int], ...]
    db: int = 0
    username: str | None = None
    password: str | None = field(default=None, repr=False)


def is_sentinel_url(url: str) -> bool:
    return url.strip().lower().startswith(f"{SENTINEL_SCHEME}://")


def parse_sentinel_url(url: str) -> SentinelUrl:
    """The Sentinels, database and data-node credentials of a sentinel:// URL.

    The database may be given on any one entry (kombu reads it from the first;
    `sentinel://a:1;sentinel://b:2/3` is also written); two different ones are
    refused, as are credentials that differ between entries.
    """
    entries = [entry.strip() for entry in url.split(";")]
    if not entries or any(not entry for entry in entries):
        raise RedisUrlError("an empty entry in a sentinel:// list (a stray ';'?)")
    sentinels: list[tuple[str, int]] = []
    dbs: set[int] = set()
    credentials: set[tuple[str | None, str | None]] = set()
    for entry in entries:
        parts = urlsplit(entry)
        if parts.scheme.lower() != SENTINEL_SCHEME:
            raise RedisUrlError(
                f"every entry of a sentinel list must be sentinel://host:port, got {parts.scheme}://"
            )
        if parts.query or parts.fragment:
            raise RedisUrlError("a sentinel:// entry takes no ?query or #fragment")
        try:
            host, port = parts.hostname, parts.port
        except ValueError as exc:  # a port that is not a number
            raise RedisUrlError(f"a sentinel:// entry has a bad port ({exc})") from None
        if not host:
            raise RedisUrlError("a sentinel:// entry has no host")
        sentinels.append((host, port or DEFAULT_SENTINEL_PORT))
        path = parts.path.strip("/")
        if path:
            if not path.isdigit():
                raise RedisUrlError(f"the database must be a number, got /{path}")
            dbs.add(int(path))
        username = unquote(parts.username) if parts.username else None
        password = unquote(parts.password) if parts.password is not None else None
        if username or password:
            credentials.add((username, password))
    if len(dbs) > 1:
        raise RedisUrlError(f"the sentinel:// entries name different databases: {sorted(dbs)}")
    if len(credentials) > 1:
        raise RedisUrlError("the sentinel:// entries carry different credentials")
    username, password = credentials.pop() if credentials else (None, None)
    return SentinelUrl(
        sentinels=tuple(sentinels),
        db=dbs.pop() if dbs else 0,
        username=username,
        password=password,
    )


@dataclass(frozen=True)
class RedisTarget:
    """Where Redis is: REDIS_URL plus what a sentinel:// URL cannot carry.

    Hashable, so a cached producer per target works; Settings.redis_target
    builds it. A bare URL string is accepted wherever a target is, and means
    the default master name and no Sentinel password.
    """

    url: str
    sentinel_master: str = DEFAULT_SENTINEL_MASTER
    sentinel_password: str | None = field(default=None, repr=False)

    @classmethod
    def of(cls, target: RedisTarget | str) -> RedisTarget:
        return target if isinstance(target, RedisTarget) else cls(target)

    @property
    def is_sentinel(self) -> bool:
        return is_sentinel_url(self.url)

    def sentinel_kwargs(self) -> dict[str, Any] | None:
        """Connection arguments for the Sentinel nodes (None: redis-py's default,
        which copies the socket timeouts of the data-node connections)."""
        return {"password": self.sentinel_password} if self.sentinel_password else None

    def broker_url(self) -> str:
        """The URL for Celery: REDIS_URL itself, except that a sentinel list names
        its database on the first entry, the one kombu reads it from."""
        if not self.is_sentinel:
            return self.url
        parsed = parse_sentinel_url(self.url)
        entries = [entry.strip() for entry in self.url.split(";")]
        bare = [entry.split("://", 1)[1].split("/", 1)[0] for entry in entries]
        bare[0] = f"{bare[0]}/{parsed.db}"
        return ";".join(f"{SENTINEL_SCHEME}://{entry}" for entry in bare)

    def broker_transport_options(self) -> dict[str, Any]:
        """kombu's transport options for this target: the master name (and the
        Sentinels' password) for sentinel://, nothing for a single server."""
        if not self.is_sentinel:
            return {}
        options: dict[str, Any] = {"master_name": self.sentinel_master}
        sentinel_kwargs = self.sentinel_kwargs()
        if sentinel_kwargs is not None:
            options["sentinel_kwargs"] = sentinel_kwargs
        return options


def redis_client(
    target: RedisTarget | str,
    *,
    max_connections: int | None = None,
    pool_timeout: float | None = None,
    **connection_kwargs: Any,
) -> redis.Redis:
    """A client of `target`: every Redis client of the orchestrator is built here.

    `connection_kwargs` are redis-py's (socket_timeout, socket_connect_timeout...).
    With `max_connections`, the pool blocks (up to `pool_timeout` seconds) for a
    free connection instead of opening one more. For sentinel:// the client is
    bound to the current master, found through the Sentinels on every new
    connection. Raises RedisUrlError (a ValueError) for a malformed URL; no
    connection is made here.
    """
    target = RedisTarget.of(target)
    blocking: dict[str, Any] = {}
    if max_connections is not None:
        blocking = {"max_connections": max_connections, "timeout": pool_timeout}
    if not target.is_sentinel:
        try:
            if blocking:
                pool = redis.BlockingConnectionPool.from_url(
                    target.url, **blocking, **connection_kwargs
                )
                return redis.Redis(connection_pool=pool)
            return redis.Redis.from_url(target.url, **connection_kwargs)
        except ValueError as exc:
            raise RedisUrlError(str(exc)) from None
    parsed = parse_sentinel_url(target.url)
    sentinel = Sentinel(  # type: ignore[no-untyped-call]
        list(parsed.sentinels),
        sentinel_kwargs=_sentinel_node_kwargs(target, connection_kwargs),
        db=parsed.db,
        username=parsed.username,
        password=parsed.password,
        **connection_kwargs,
    )
    pool_class = BlockingSentinelConnectionPool if blocking else FollowingSentinelConnectionPool
    client: redis.Redis = sentinel.master_for(  # type: ignore[no-untyped-call]
        target.sentinel_master,
        redis_class=redis.Redis,
        connection_pool_class=pool_class,
        **blocking,
    )
    return client


def _sentinel_node_kwargs(
    target: RedisTarget, connection_kwargs: dict[str, Any]
) -> dict[str, Any] | None:
    own = target.sentinel_kwargs()
    if own is None:
        return None
    # redis-py copies the socket timeouts only when sentinel_kwargs is unset.
    sockets = {k: v for k, v in connection_kwargs.items() if k.startswith("socket_")}
    return {**sockets, **own}


class FollowingSentinelConnectionPool(SentinelConnectionPool):
    """A Sentinel pool that notices a switch of master while its connections live.

    redis-py asks the Sentinels for the master only when it opens a connection,
    so pooled connections stay on a demoted master that is still alive: after a
    `SENTINEL FAILOVER`, the Sentinel turns the old master into a replica only
    about 10 s after the switch, and writes sent there meanwhile are dropped
    when it resyncs. This pool re-asks, at most every MASTER_CHECK_SECONDS, as
    it hands out a connection; on a change redis-py closes the idle connections,
    so writes reach the new master within about that long after the switch.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[no-untyped-call]
        self._next_master_check = 0.0
        self._check_lock = threading.Lock()

    def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        now = time.monotonic()
        if now >= self._next_master_check and self._check_lock.acquire(blocking=False):
            try:
                self._next_master_check = now + MASTER_CHECK_SECONDS
                # Closes the idle connections when the master moved.
                self.get_master_address()  # type: ignore[no-untyped-call]
            except (MasterNotFoundError, redis.ConnectionError, redis.TimeoutError):
                pass  # no answer now: the connection attempt below says so
            finally:
                self._check_lock.release()
        return super().get_connection(*args, **kwargs)


class BlockingSentinelConnectionPool(FollowingSentinelConnectionPool, redis.BlockingConnectionPool):
    """FollowingSentinelConnectionPool with BlockingConnectionPool's cap: a caller
    waits for a free connection rather than opening one more (the API's event
    streams).

    SentinelConnectionPool.__init__ passes max_connections and timeout on to
    BlockingConnectionPool.__init__ (next in the MRO), and takes connections
    through its get_connection/release.
    """
