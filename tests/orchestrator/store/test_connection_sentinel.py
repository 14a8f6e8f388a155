"""The run store through a real Redis Sentinel (sentinel:// REDIS_URL), across failovers.

A master, a replica and one Sentinel on loopback (tests/support/sentinel.py). A
failover must look to the store like a Redis restart: the same client object
keeps working, on the new master, with what was written before. Waits poll a
condition against a deadline.
"""

from __future__ import annotations

import pytest
import redis
from redis.sentinel import MasterNotFoundError

from orchestrator.domain.spec import RunSpec, parse_spec
from orchestrator.store import RunStore
from orchestrator.store.connection import RedisTarget, redis_client
from tests.support.sentinel import SentinelDeployment, poll_until

DB = 2


def spec() -> RunSpec:
    return parse_spec(
        {"name": "sentinel", "job": {"script": "train.py"}, "inputs": {"CODE": "/data/code"}}
    )


def target(deployment: SentinelDeployment) -> RedisTarget:
    return RedisTarget(
        deployment.url(DB),
        sentinel_master=deployment.master_name,
        sentinel_password=deployment.sentinel_password,
    )


def direct(port: int, deployment: SentinelDeployment) -> redis.Redis:
    """A plain client of one server (not through the Sentinel), on the test's db."""
    return redis.Redis(port=port, password=deployment.password, db=DB, socket_timeout=5)


def replicated(client: redis.Redis) -> None:
    """Until the replica acknowledged every write so far (WAIT), as a failover
    keeps only what reached the replica."""
    poll_until("the replica acknowledges the writes", lambda: client.wait(1, 1000) >= 1)


def test_the_store_works_on_the_sentinels_master(sentinel_deployment: SentinelDeployment) -> None:
    store = RunStore(redis_client(target(sentinel_deployment)))
    record, created = store.create_run(spec())
    assert created and store.get(record.run_id).run_id == record.run_id
    # The record is on the master, in the URL's database, and not elsewhere.
    with direct(sentinel_deployment.master.port, sentinel_deployment) as master:
        assert master.exists(store.keys.run(record.run_id))
    assert sentinel_deployment.master_port() == sentinel_deployment.master.port
    # The capped pool (the API's event streams) reaches the same master.
    capped = redis_client(target(sentinel_deployment), max_connections=2, pool_timeout=1)
    assert RunStore(capped).get(record.run_id).run_id == record.run_id
    capped.close()


def test_a_wrong_master_name_or_sentinel_password_is_an_error_not_a_hang(
    sentinel_deployment: SentinelDeployment,
) -> None:
    wrong_name = RedisTarget(
        sentinel_deployment.url(DB),
        sentinel_master="nobody",
        sentinel_password=sentinel_deployment.sentinel_password,
    )
    no_password = RedisTarget(sentinel_deployment.url(DB), sentinel_deployment.master_name)
    for bad in (wrong_name, no_password):
        client = redis_client(bad, socket_connect_timeout=2, socket_timeout=2)
        # A ConnectionError: the API answers 503, a worker retries, the CLI says so.
        with pytest.raises(MasterNotFoundError):
            client.ping()
        client.close()


def test_the_store_survives_a_sentinel_failover(sentinel_deployment: SentinelDeployment) -> None:
    client = redis_client(target(sentinel_deployment), socket_timeout=5)
    store = RunStore(client)
    before, _ = store.create_run(spec())
    store.mark_dispatched(before.run_id)
    replicated(client)
    old_port = sentinel_deployment.master_port()

    new_master = sentinel_deployment.failover()

    assert new_master.port != old_port
    # The same store object, without reconnecting by hand: once its pooled
    # connection to the demoted master fails, it finds the new one.
    after = poll_until("a run created after the failover", lambda: store.create_run(spec())[0])
    assert store.get(before.run_id).dispatched
    with direct(new_master.port, sentinel_deployment) as master:
        assert master.exists(store.keys.run(after.run_id))
        assert master.exists(store.keys.run(before.run_id))
    client.close()


def test_the_store_survives_the_loss_of_its_master(sentinel_deployment: SentinelDeployment) -> None:
    client = redis_client(target(sentinel_deployment), socket_timeout=5)
    store = RunStore(client)
    before, _ = store.create_run(spec())
    replicated(client)

    new_master = sentinel_deployment.kill_master()

    after = poll_until("a run created after the outage", lambda: store.create_run(spec())[0])
    assert store.get(before.run_id).run_id == before.run_id
    assert client.connection_pool.get_master_address() == ("127.0.0.1", new_master.port)
    with direct(new_master.port, sentinel_deployment) as master:
        assert master.exists(store.keys.run(after.run_id))
    client.close()
