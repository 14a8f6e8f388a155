"""Server-Sent Events of one run: replay from the store, then follow it live until it ends."""

from __future__ import annotations

import functools
import json
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

import anyio
import redis
from fastapi import HTTPException
from fastapi.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from orchestrator.domain.status import TERMINAL
from orchestrator.store import RunEvent, RunStore

# How long one XREAD waits for new events; a keep-alive comment follows each
# empty wait, which is also when a vanished client is noticed.
BLOCK_MS = 5000
# Seconds a refused client is asked to wait before opening a stream again.
STREAM_RETRY_AFTER_SECONDS = 5
_TERMINAL_VALUES = frozenset(status.value for status in TERMINAL)

T = TypeVar("T")


def stream_resources(max_streams: int) -> int:
    """Threads and Redis connections the streams may use: twice the streams, because a
    stream whose client left frees its slot at once while its abandoned XREAD keeps a
    thread and a connection for up to BLOCK_MS."""
    return 2 * max_streams


def stream_limiter(state: Any) -> anyio.CapacityLimiter:
    """The app's limiter of stream threads, made on first use (inside its event loop).
    Streams have their own, so they never starve the threadpool of the other routes."""
    limiter: anyio.CapacityLimiter | None = getattr(state, "stream_threads", None)
    if limiter is None:
        size = stream_resources(state.settings.api_max_streams)
        limiter = state.stream_threads = anyio.CapacityLimiter(size)
    return limiter


class StreamSlots:
    """Open streams: at most `total`, at most `per_client` per client address. Used from
    the event loop only, so plain counters suffice."""

    def __init__(self, total: int, per_client: int) -> None:
        self.total = total
        self.per_client = per_client
        self.by_client: dict[str, int] = {}

    @property
    def open(self) -> int:
        return sum(self.by_client.values())

    def acquire(self, client: str) -> None:
        """Take a slot for `client`, or raise 429 (its own cap) / 503 (the server's)."""
        retry = {"Retry-After": str(STREAM_RETRY_AFTER_SECONDS)}
        if self.by_client.get(client, 0) >= self.per_client:
            raise HTTPException(
                429, f"too many open event streams from this client (at most {self.per_client})",
                headers=retry,
            )  # fmt: skip
        if self.open >= self.total:
            raise HTTPException(
                503, f"too many open event streams (at most {self.total}); retry later",
                headers=retry,
            )  # fmt: skip
        self.by_client[client] = self.by_client.get(client, 0) + 1

    def release(self, client: str) -> None:
        left = self.by_client.get(client, 0) - 1
        if left > 0:
            self.by_client[client] = left
        else:
            self.by_client.pop(client, None)


class SlotStreamingResponse(StreamingResponse):
    """A stream that gives its slot back however it ends: finished, failed, or its
    client gone (even before the body iterator ever started)."""

    def __init__(self, content: Any, slots: StreamSlots, client: str, **kwargs: Any) -> None:
        super().__init__(content, **kwargs)
        self.slots = slots
        self.client = client

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.slots.release(self.client)


def format_event(event: RunEvent) -> str:
    payload = json.dumps(event.model_dump(mode="json"), separators=(",", ":"))
    return f"id: {event.id}\nevent: {event.kind}\ndata: {payload}\n\n"


def ends_run(event: RunEvent) -> bool:
    return event.kind == "status" and event.data.get("status") in _TERMINAL_VALUES


async def run_event_stream(
    store: RunStore,
    run_id: str,
    after: str,
    terminal: bool,
    limiter: anyio.CapacityLimiter,
) -> AsyncIterator[str]:
    """Events after `after`; ends once the run's terminal status event was sent.

    `terminal` is whether the run had already ended when the stream was opened:
    then only what is stored is replayed. A status change and its event are
    written atomically, so a run seen terminal has its terminal event stored.
    """

    async def in_thread(func: Callable[[], T]) -> T:
        return await anyio.to_thread.run_sync(func, abandon_on_cancel=True, limiter=limiter)

    last = after
    try:
        while True:
            block = None if terminal else BLOCK_MS
            events = await in_thread(
                functools.partial(store.read_events, run_id, last, block_ms=block)
            )
            for event in events:
                yield format_event(event)
                last = event.id
                terminal = terminal or ends_run(event)
            if events:
                continue  # drain everything stored before deciding anything
            if terminal:
                return
            record = await in_thread(functools.partial(store.get, run_id))
            terminal = record.terminal
            if not terminal:
                yield ": keep-alive\n\n"
    except redis.exceptions.RedisError:
        # The response has started: all that is left is to tell the client and end.
        yield 'event: error\ndata: {"message":"run store unavailable"}\n\n'
