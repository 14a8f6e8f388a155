"""REDIS_URL parsing and the one Redis client factory (no server: nothing connects).

The same factory against a real Sentinel deployment, with failovers, is in
test_connection_sentinel.py.
"""

from __future__ import annotations

from typing import Any

import pytest
import redis

from orchestrator.chain.queue import base_config, worker_config
from orchestrator.observability.logs import secrets_from_settings
from orchestrator.settings import Settings
from orchestrator.store.connection import (
    DEFAULT_SENTINEL_MASTER,
    BlockingSentinelConnectionPool,
    FollowingSentinelConnectionPool,
    RedisTarget,
    RedisUrlError,
    SentinelUrl,
    is_sentinel_url,
    parse_sentinel_url,
    redis_client,
)

TWO_SENTINELS = "sentinel://:pw@s1:26380;sentinel://:pw@s2/3"


# ------------------------------------------------------------------- parsing
def test_a_sentinel_list_gives_every_sentinel_the_database_and_the_password() -> None:
    assert parse_sentinel_url(TWO_SENTINELS) == SentinelUrl(
        sentinels=(("s1", 26380), ("s2", 26379)), db=3, username=None, password="pw"
    )


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sentinel://s1", SentinelUrl(sentinels=(("s1", 26379),))),
        ("sentinel://s1:1/0;sentinel://s2:2", SentinelUrl(sentinels=(("s1", 1), ("s2", 2)))),
        (
            "SENTINEL://user:p%40ss@s1:1/2;sentinel://user:p%40ss@s2:2",
            SentinelUrl(sentinels=(("s1", 1), ("s2", 2)), db=2, username="user", password="p@ss"),
        ),
        # The password on one entry only (as people write it) is the data nodes' too.
        (
            "sentinel://s1:1;sentinel://:pw@s2:2/1",
            SentinelUrl((("s1", 1), ("s2", 2)), 1, None, "pw"),
        ),
    ],
)
def test_sentinel_url_forms(url: str, expected: SentinelUrl) -> None:
    assert parse_sentinel_url(url) == expected


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("sentinel://s1:1;", "empty entry"),
        ("sentinel://s1:1;;sentinel://s2:2", "empty entry"),
        ("sentinel://s1:1;redis://s2:2", "every entry"),
        ("sentinel://:26379", "no host"),
        ("sentinel://s1:port", "bad port"),
        ("sentinel://s1:1/zero", "must be a number"),
        ("sentinel://s1:1/1;sentinel://s2:2/2", "different databases"),
        ("sentinel://:a@s1:1;sentinel://:b@s2:2", "different credentials"),
        ("sentinel://s1:1/0?master_name=x", r"no \?query"),
    ],
)
def test_malformed_sentinel_urls_are_refused_with_the_reason(url: str, problem: str) -> None:
    with pytest.raises(RedisUrlError, match=problem):
        parse_sentinel_url(url)


def test_only_sentinel_urls_are_sentinel_urls() -> None:
    assert is_sentinel_url(" sentinel://s1") and is_sentinel_url("Sentinel://s1")
    for url in ("redis://h", "rediss://h", "unix:///tmp/redis.sock", "sentinels://h"):
        assert not is_sentinel_url(url)


def test_the_sentinel_password_is_not_in_the_repr() -> None:
    target = RedisTarget("sentinel://s1", sentinel_password="hush-hush")
    assert "hush-hush" not in repr(target)
    assert "pw" not in repr(parse_sentinel_url(TWO_SENTINELS))


# ------------------------------------------------------------------- Celery
def test_kombu_gets_the_database_on_the_first_sentinel_entry() -> None:
    # kombu reads the virtual host (the db) from the first entry only.
    target = RedisTarget(TWO_SENTINELS)
    assert target.broker_url() == "sentinel://:pw@s1:26380/3;sentinel://:pw@s2"
    plain = "redis://:pw@h:6379/4"
    assert RedisTarget(plain).broker_url() == plain


def test_kombu_gets_the_master_name_and_the_sentinels_password() -> None:
    assert RedisTarget("redis://h").broker_transport_options() == {}
    assert RedisTarget("sentinel://s1").broker_transport_options() == {
        "master_name": DEFAULT_SENTINEL_MASTER
    }
    target = RedisTarget("sentinel://s1", sentinel_master="orch", sentinel_password="sp")
    assert target.broker_transport_options() == {
        "master_name": "orch",
        "sentinel_kwargs": {"password": "sp"},
    }


def sentinel_settings(**extra: Any) -> Settings:
    return Settings(
        REDIS_URL=TWO_SENTINELS,
        ORCH_REDIS_SENTINEL_MASTER="orch",
        ORCH_REDIS_SENTINEL_PASSWORD="sp",
        **extra,
    )


def test_producers_and_workers_both_follow_the_sentinels() -> None:
    settings = sentinel_settings(ORCH_VISIBILITY_TIMEOUT_SECONDS=120)
    producer = base_config(settings.redis_target)
    worker = worker_config(settings)
    for config in (producer, worker):
        assert config["broker_url"] == "sentinel://:pw@s1:26380/3;sentinel://:pw@s2"
        options = config["broker_transport_options"]
        assert options["master_name"] == "orch"
        assert options["sentinel_kwargs"] == {"password": "sp"}
    # The worker's own transport options are kept beside the Sentinel's.
    assert worker["broker_transport_options"]["visibility_timeout"] == 120
    assert "result_backend" not in worker  # no result backend to point at the master


def test_settings_build_the_target_and_redact_the_sentinel_password() -> None:
    settings = sentinel_settings()
    assert settings.redis_target == RedisTarget(TWO_SENTINELS, "orch", "sp")
    assert "sp" in secrets_from_settings(settings)
    assert Settings().redis_target == RedisTarget("redis://127.0.0.1:6379/0")
    assert Settings().redis_sentinel_master == DEFAULT_SENTINEL_MASTER
    with pytest.raises(ValueError, match=r"ORCH_REDIS_SENTINEL_MASTER|redis_sentinel_master"):
        Settings(ORCH_REDIS_SENTINEL_MASTER="")


# ------------------------------------------------------------------ factory
def test_a_plain_url_gives_a_plain_client() -> None:
    client = redis_client("redis://:pw@h:6380/2", socket_timeout=3)
    kwargs = client.connection_pool.connection_kwargs
    assert (kwargs["host"], kwargs["port"], kwargs["db"], kwargs["password"]) == (
        "h",
        6380,
        2,
        "pw",
    )
    assert kwargs["socket_timeout"] == 3
    assert type(client.connection_pool) is redis.ConnectionPool
    unix = redis_client("unix:///tmp/r.sock?db=1").connection_pool.connection_kwargs
    assert (unix["path"], unix["db"]) == ("/tmp/r.sock", 1)


def test_a_capped_plain_client_blocks_for_a_connection() -> None:
    pool = redis_client("redis://h", max_connections=7, pool_timeout=2).connection_pool
    assert isinstance(pool, redis.BlockingConnectionPool)
    assert (pool.max_connections, pool.timeout) == (7, 2)


def test_a_sentinel_url_gives_a_client_of_the_named_master() -> None:
    target = RedisTarget(TWO_SENTINELS, sentinel_master="orch")
    pool = redis_client(target, socket_timeout=3).connection_pool
    assert isinstance(pool, FollowingSentinelConnectionPool)
    assert pool.service_name == "orch" and pool.is_master
    # The data nodes get the URL's database and password ...
    kwargs = pool.connection_kwargs
    assert (kwargs["db"], kwargs["password"], kwargs["socket_timeout"]) == (3, "pw", 3)
    # ... the Sentinels only the socket options, without a Sentinel password.
    sentinels = pool.sentinel_manager.sentinels
    nodes = [s.connection_pool.connection_kwargs for s in sentinels]
    assert [(n["host"], n["port"]) for n in nodes] == [("s1", 26380), ("s2", 26379)]
    assert all(n.get("password") is None and n["socket_timeout"] == 3 for n in nodes)


def test_the_sentinel_password_goes_to_the_sentinels_only() -> None:
    target = RedisTarget(TWO_SENTINELS, sentinel_password="sp")
    pool = redis_client(target, socket_connect_timeout=2).connection_pool
    assert pool.connection_kwargs["password"] == "pw"
    for sentinel in pool.sentinel_manager.sentinels:
        node = sentinel.connection_pool.connection_kwargs
        assert (node["password"], node["socket_connect_timeout"]) == ("sp", 2)


def test_a_capped_sentinel_client_blocks_for_a_connection() -> None:
    pool = redis_client(TWO_SENTINELS, max_connections=5, pool_timeout=1).connection_pool
    assert isinstance(pool, BlockingSentinelConnectionPool)
    assert isinstance(pool, redis.BlockingConnectionPool)
    assert (pool.max_connections, pool.timeout, pool.service_name) == (5, 1, "mymaster")


@pytest.mark.parametrize("url", ["http://h:6379", "redis://h:port", "sentinel://s1;"])
def test_a_malformed_url_is_a_value_error(url: str) -> None:
    with pytest.raises(RedisUrlError):
        redis_client(url)
    assert issubclass(RedisUrlError, ValueError)  # callers catch ValueError
