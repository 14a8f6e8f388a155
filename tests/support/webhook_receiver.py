"""A real HTTPS webhook receiver on 127.0.0.1, in a thread: it answers with scripted
status codes (the last one repeats) and records each delivery with the time it
arrived; with `hang`, it holds every request until `release` is set. Its
certificate comes from a throwaway CA (the emulator's TLS helper); give the
orchestrator `ca_bundle` as ORCH_WEBHOOK_CA_BUNDLE."""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from emulator.tls import ensure_certificates


@dataclass
class Delivery:
    headers: dict[str, str]
    body: bytes
    received_at: float  # time.time()


@dataclass
class Receiver:
    url: str
    ca_bundle: Path
    codes: list[int]
    deliveries: list[Delivery] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    hang: bool = False
    release: threading.Event = field(default_factory=threading.Event)
    answered: int = 0

    def answer(self) -> int:
        with self.lock:
            return self.codes.pop(0) if len(self.codes) > 1 else self.codes[0]


@contextmanager
def https_receiver(
    tmp_path: Path, *codes: int, hang: bool = False, host: str = "127.0.0.1"
) -> Iterator[Receiver]:
    """Listens on 127.0.0.1; `host` is the name in its URL (its certificate is valid for
    127.0.0.1 and localhost)."""
    files = ensure_certificates(tmp_path / "receiver-tls")
    holder: dict[str, Receiver] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", "0"))
            body = self.rfile.read(length)
            receiver = holder["receiver"]
            with receiver.lock:
                receiver.deliveries.append(
                    Delivery({k.lower(): v for k, v in self.headers.items()}, body, time.time())
                )
            if receiver.hang:
                receiver.release.wait()
            self.send_response(receiver.answer())
            self.send_header("content-length", "0")
            self.end_headers()
            with receiver.lock:
                receiver.answered += 1

        def log_message(self, format: str, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(files.server_cert, files.server_key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    port = server.server_address[1]
    holder["receiver"] = Receiver(
        f"https://{host}:{port}/hooks/training", files.ca_cert, list(codes or (200,)), hang=hang
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield holder["receiver"]
    finally:
        holder["receiver"].release.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
