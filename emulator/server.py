"""The emulator's HTTPS server: TLS, routing, auth, faults, statistics.

One Emulator builds the shared EmulatorContext, lets every service register its
routes, and serves them on a ThreadingHTTPServer with HTTP/1.1 keep-alive.
Logs name the route operation, never the raw URL (it may carry a SAS).
"""

from __future__ import annotations

import contextlib
import logging
import signal
import socket
import ssl
import sys
import threading
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from emulator import arm, auth, batchai, control, errors, files
from emulator.core import EmulatorConfig, EmulatorContext
from emulator.envfile import format_env_for_stdout, write_env_file
from emulator.faults import FaultInjector, FaultRule
from emulator.files import ShareStore, load_account_key
from emulator.http import Headers, Request, Response, Router, Service
from emulator.stats import StatsRecorder
from emulator.tls import ensure_certificates

log = logging.getLogger("emulator")
IDLE_CONNECTION_SECONDS = 120


class Emulator:
    """Everything one emulator instance serves; start() runs it on a background thread."""

    def __init__(self, config: EmulatorConfig) -> None:
        # Absolute, because job processes run with their own working directories.
        config.data_dir = config.data_dir.resolve()
        config.data_dir.mkdir(parents=True, exist_ok=True)
        self.config = config
        self.tls = ensure_certificates(
            config.data_dir, (config.public_host,) if config.public_host else ()
        )
        self.stats = StatsRecorder()
        self.faults = FaultInjector(config.seed)
        self.resource_groups = arm.ResourceGroupStore()
        self.shares = ShareStore(
            config.data_dir,
            config.storage_account,
            load_account_key(config.data_dir, config.storage_account, config.storage_key),
        )
        self.access_token = auth.load_access_token(config.data_dir, config.access_token)
        self.ctx = EmulatorContext(
            config=config,
            stats=self.stats,
            faults=self.faults,
            resource_groups=self.resource_groups,
            file_shares=self.shares,
        )
        self.router = Router()
        # Platform services first: their reset and shutdown hooks run last (core.py).
        # Dispatchers are tried in this order too: ARM claims its unmatched paths before
        # Files takes every other path as a share path.
        for service in (arm, files, batchai, control):
            service.register(self.router, self.ctx)
        self.faults.set_service_lookup(self.service_of)

        tls_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls_context.minimum_version = ssl.TLSVersion.TLSv1_2
        tls_context.load_cert_chain(self.tls.server_cert, self.tls.server_key)
        self.httpd = _TlsServer((config.host, config.port), _Handler, self, tls_context)
        self.port: int = self.httpd.server_address[1]
        self._thread: threading.Thread | None = None
        self._stopped = False

    # --- addresses and credentials ---------------------------------------
    @property
    def url(self) -> str:
        # The certificate names 127.0.0.1, localhost and the public host; a
        # wildcard bind without a public host is reached via loopback.
        host = self.config.public_host or (
            "127.0.0.1" if self.config.host in ("0.0.0.0", "", "::") else self.config.host
        )
        return f"https://{host}:{self.port}"

    def env(self) -> dict[str, str]:
        account = self.config.storage_account
        key = self.shares.key
        return {
            "AZURE_ARM_ENDPOINT": self.url,
            "AZURE_SUBSCRIPTION_ID": self.config.subscription_id,
            "AZURE_STORAGE_ACCOUNT": account,
            "AZURE_STORAGE_KEY": key,
            "AZURE_STORAGE_CONNECTION_STRING": (
                f"DefaultEndpointsProtocol=https;AccountName={account};AccountKey={key};"
                f"FileEndpoint={self.url}"
            ),
            "REQUESTS_CA_BUNDLE": str(self.tls.ca_cert.resolve()),
            "AZURE_EMULATOR_TOKEN": self.access_token,
        }

    def service_of(self, operation: str) -> str | None:
        return self.router.service_of(operation)

    # --- lifecycle --------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, name="emulator-http", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self.httpd.shutdown()
        self.httpd.server_close()
        self.httpd.close_connections()
        for hook in reversed(self.ctx.shutdown_hooks):
            try:
                hook()
            except Exception:
                log.exception("shutdown hook failed")

    # --- one request ------------------------------------------------------
    def handle(self, request: Request) -> tuple[Response, FaultRule | None]:
        """The response for a request, or the fault that replaces it (drop has no response)."""
        operation, service, run = self._resolve(request)
        fault = self.faults.decide_request(operation) if service != "control" else None
        if fault is not None:
            if service != "control":
                self.stats.record_request(operation, f"fault:{fault.kind}")
            log.info("%s %s -> fault:%s", request.method, operation, fault.kind)
            error = errors.fault_error(fault.kind, service, fault.retry_after)
            return errors.render(error, service, request.method), fault
        try:
            # Files authenticate per request (SharedKey or SAS) in their own routes; the
            # health probe stays open so a supervisor can poll it without the secret.
            if service == "arm" or (service == "control" and operation != "Emulator_Health"):
                auth.require_bearer(request, self.access_token)
            response = run(request)
        except errors.EmulatorError as exc:
            response = errors.render(exc, service, request.method)
        except Exception:
            log.exception("%s %s failed", request.method, operation)
            response = errors.render(errors.internal_error(), service, request.method)
        if service != "control":
            self.stats.record_request(operation, str(response.status))
        log.info("%s %s -> %d", request.method, operation, response.status)
        if service == "arm":
            correlation = request.headers.get("x-ms-correlation-request-id") or str(uuid.uuid4())
            response.headers.setdefault("x-ms-correlation-request-id", correlation)
        # Azure echoes the client's request id; azure-storage checks the echo matches.
        client_request_id = request.headers.get("x-ms-client-request-id")
        if client_request_id:
            response.headers.setdefault("x-ms-client-request-id", client_request_id)
        return response, None

    def _resolve(self, request: Request) -> tuple[str, Service, Callable[[Request], Response]]:
        found = self.router.match(request.method, request.path)
        if found is not None:
            route, params = found
            return route.operation, route.service, lambda r: route.handler(r, params)
        dispatched = self.router.dispatch(request)
        if dispatched is not None:
            return dispatched
        return "Unmatched", "arm", _unmatched


def _unmatched(request: Request) -> Response:
    # Only without a Files service: it takes every path no other service claims.
    raise errors.NotFound("NotFound", f"No route matches {request.method} {request.path}.")


class _TlsServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        emulator: Emulator,
        tls_context: ssl.SSLContext,
    ) -> None:
        self.emulator = emulator
        self.tls_context = tls_context
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__(address, handler)

    def server_bind(self) -> None:
        # Skip HTTPServer.server_bind's reverse DNS lookup of the host name.
        socket.socket.setsockopt(self.socket, socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.socket.bind(self.server_address)
        self.server_address = self.socket.getsockname()
        self.server_name = str(self.server_address[0])
        self.server_port = int(self.server_address[1])

    def get_request(self) -> tuple[Any, Any]:
        sock, addr = self.socket.accept()
        # Headers and body go out in separate writes; without NODELAY, Nagle plus
        # delayed ACKs add ~40 ms to every keep-alive request.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # The handshake happens on the connection's own thread, so a slow client
        # cannot stall accept().
        return self.tls_context.wrap_socket(
            sock, server_side=True, do_handshake_on_connect=False
        ), addr

    def finish_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
        try:
            request.settimeout(IDLE_CONNECTION_SECONDS)
            request.do_handshake()
            super().finish_request(request, client_address)
        except (OSError, ssl.SSLError):
            pass
        finally:
            with self._open_lock:
                self._open.discard(request)

    def close_connections(self) -> None:
        with self._open_lock:
            sockets = list(self._open)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("connection error", exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _TlsServer
    server_version = "batchai-emulator"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:
        # The default logs the raw request line, which may carry a SAS signature.
        pass

    def _dispatch(self) -> None:
        emulator = self.server.emulator
        split = urlsplit(self.path)
        try:
            body = self._read_body()
        except ValueError:
            self.send_error(400, "bad request body framing")
            return
        host = self.headers.get("Host") or f"127.0.0.1:{emulator.port}"
        request = Request(
            method=self.command,
            path=unquote(split.path),
            raw_path=self.path,
            query=dict(parse_qsl(split.query, keep_blank_values=True)),
            headers=Headers({k: v for k, v in self.headers.items()}),
            body=body,
            base_url=f"https://{host}",
        )
        response, fault = emulator.handle(request)
        if fault is not None and fault.kind == "drop":
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        self._write(response)

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks: list[bytes] = []
            while True:
                size_line = self.rfile.readline(1024)
                size = int(size_line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline(1024)
        length = int(self.headers.get("Content-Length") or 0)
        if length < 0:
            raise ValueError("negative Content-Length")
        return self.rfile.read(length) if length else b""

    def _write(self, response: Response) -> None:
        self.send_response(response.status)
        headers = {k.lower(): (k, v) for k, v in response.headers.items()}
        headers["x-ms-request-id"] = ("x-ms-request-id", str(uuid.uuid4()))
        if self.command == "HEAD":
            headers.setdefault("content-length", ("Content-Length", str(len(response.body))))
        else:
            headers["content-length"] = ("Content-Length", str(len(response.body)))
        for name, value in headers.values():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD" and response.body:
            self.wfile.write(response.body)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = do_PATCH = do_OPTIONS = _dispatch


def serve_forever(config: EmulatorConfig, faults: list[FaultRule] | None = None) -> None:
    """Run in the foreground until SIGINT/SIGTERM; print the env lines once serving
    (and write them to config.env_file: its appearance tells scripts the server is up)."""
    if not logging.getLogger().handlers:
        # One line per request on stderr, by operation (never the URL: it may carry a SAS).
        logging.basicConfig(
            level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s"
        )
    emulator = Emulator(config)
    for rule in faults or []:
        emulator.faults.add_rule(rule)
    stop = threading.Event()

    def request_stop(signum: int, frame: object) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    emulator.start()
    try:
        env = emulator.env()
        if config.env_file is not None:
            write_env_file(config.env_file, env)
        # The same KEY='VALUE' lines as the file: pasted into a shell they set the same
        # values. Secrets only to a terminal: a redirected stdout is usually a log file.
        sys.stdout.write(
            format_env_for_stdout(env, terminal=sys.stdout.isatty(), env_file=config.env_file)
        )
        sys.stdout.flush()
        while not stop.wait(1.0):
            pass
    finally:
        emulator.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
