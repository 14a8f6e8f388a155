"""Webhooks: a signed POST to the caller's URL when its run ends.

- **Announce** (announce): when a run reaches a terminal status its ending is
  announced once (SET NX on the run's webhook-sent key) and a Celery task
  `batchai.deliver_webhook` is sent: the chain step and the API request never
  call the receiver themselves.
- **Deliver** (deliver_once, one attempt per task): the body is the run's public
  view in the Standard Webhooks form `{"type", "timestamp", "data"}`, signed with
  the submitting key's signing secret (`standardwebhooks`, HMAC-SHA256 over
  `id.timestamp.body`). The webhook-id is the same for every attempt, so
  receivers deduplicate. Redirects are not followed; the time-out is short.
- **Retry**: a failed attempt is retried with exponential back-off until
  ORCH_WEBHOOK_RETRY_FOR_SECONDS after the first one. Every attempt is logged on
  the run (status code, latency, error type; never a body). A receiver URL that
  failed ORCH_WEBHOOK_DISABLE_AFTER deliveries in a row is disabled, with a
  `webhook.disabled` event on the run.
- **Safe by default**: https only (domain/notify.py); a URL whose host resolves to
  a loopback, link-local, private or otherwise non-public address is refused at
  submission and again at each delivery, unless ORCH_WEBHOOK_ALLOW_PRIVATE.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
from standardwebhooks import Webhook

from orchestrator.chain.queue import WEBHOOK_QUEUE, producer_app
from orchestrator.domain.notify import WebhookEvent
from orchestrator.observability.logs import get_logger
from orchestrator.settings import Settings
from orchestrator.store import RunNotFound, RunRecord, RunStore
from orchestrator.store.apikeys import KeyRing
from orchestrator.store.listing import text

DELIVER_TASK = "batchai.deliver_webhook"
USER_AGENT = "batchai-orchestrator-webhooks/1"


class WebhookRefused(ValueError):
    """The URL may not be called; the message says why (never the URL's secrets)."""


def _public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast


def check_destination(
    url: str, *, allow_private: bool
) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """The addresses the URL's host resolves to; WebhookRefused if any is not public.

    Checked at submission and again right before each delivery, which then
    connects to the address checked here (pinned_request), so a name that
    resolves to a public address at the check and to 127.0.0.1 a moment later
    (DNS rebinding) is never connected to."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        port = parts.port or 443
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, ValueError):
        raise WebhookRefused(f"host {host!r} does not resolve") from None
    addresses = [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]
    if not addresses:
        raise WebhookRefused(f"host {host!r} does not resolve")
    for address in addresses:
        if not allow_private and not _public(address):
            raise WebhookRefused(
                f"host {host!r} resolves to {address}, a loopback, link-local or private "
                "address (set ORCH_WEBHOOK_ALLOW_PRIVATE to allow it)"
            )
    return addresses


def pinned_request(
    url: str, address: ipaddress.IPv4Address | ipaddress.IPv6Address
) -> tuple[str, dict[str, str], dict[str, Any]]:
    """(URL to `address`, Host header, request extensions): the connection goes to the
    checked address while TLS still verifies the certificate for the URL's host name."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"[{address}]" if address.version == 6 else str(address)
    if parts.port is not None:
        netloc += f":{parts.port}"
    target = parts._replace(netloc=netloc).geturl()
    host_header = host if parts.port is None else f"{host}:{parts.port}"
    return target, {"host": host_header}, {"sni_hostname": host}


def webhook_id(run_id: str, event: WebhookEvent) -> str:
    """The same for every attempt (and any re-announcement) of one run ending."""
    return f"msg_{run_id}_{event.value.replace('.', '_')}"


def payload(record: RunRecord, event: WebhookEvent, now: float) -> dict[str, Any]:
    """The run's public view: what GET /v1/runs/{id} shows of it, minus nothing secret
    (records hold no secrets: errors are redacted when stored)."""
    return {
        "type": event.value,
        "timestamp": datetime.fromtimestamp(now, UTC).isoformat(),
        "data": {
            "run_id": record.run_id,
            "name": record.spec.name,
            "status": record.status.value,
            "reason": record.reason.value if record.reason else None,
            "error": record.error,
            "tags": record.spec.tags,
            "submitted_by": record.submitted_by,
            "outputs": record.outputs,
            "metrics": record.metrics,
            "created_at": record.created_at,
            "finished_at": record.finished_at,
            "links": {"self": f"/v1/runs/{record.run_id}"},
        },
    }


def sign(secret: str, message_id: str, timestamp: int, body: str) -> dict[str, str]:
    """The Standard Webhooks headers for `body`."""
    moment = datetime.fromtimestamp(timestamp, UTC)
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": Webhook(secret).sign(message_id, moment, body),
    }


def announce(store: RunStore, broker_url: str, record: RunRecord) -> bool:
    """Send the delivery task of the run's ending, once; True if this call sent it."""
    if record.notify is None or not record.terminal:
        return False
    event = record.notify.wants(record.status)
    if event is None:
        return False
    message_id = webhook_id(record.run_id, event)
    if not store.redis.set(
        store.keys.webhook_sent(record.run_id, event.value), message_id, nx=True
    ):
        return False
    producer_app(broker_url).send_task(
        DELIVER_TASK, args=[record.run_id, event.value, 1], queue=WEBHOOK_QUEUE
    )
    return True


@dataclass(frozen=True)
class Attempt:
    id: str
    event: str
    attempt: int
    at: float
    status_code: int | None
    latency_ms: float | None
    outcome: str  # delivered | failed | refused | given_up | disabled | no_secret
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "event": self.event,
            "attempt": self.attempt,
            "at": self.at,
            "status_code": self.status_code,
            "latency_ms": self.latency_ms,
            "outcome": self.outcome,
            "error": self.error,
        }


def deliveries(store: RunStore, run_id: str) -> list[dict[str, Any]]:
    """The run's delivery attempts, oldest first."""
    return [
        json.loads(text(item)) for item in store.redis.lrange(store.keys.deliveries(run_id), 0, -1)
    ]


def _log(store: RunStore, run_id: str, attempt: Attempt) -> None:
    store.redis.rpush(store.keys.deliveries(run_id), json.dumps(attempt.to_json()))


def backoff(settings: Settings, attempt: int) -> float:
    """Seconds before attempt `attempt + 1`: doubling from the initial delay, never
    above half the broker's visibility timeout (a longer countdown would be
    delivered twice, see chain/queue.py)."""
    delay = settings.webhook_retry_initial_seconds * 2 ** (attempt - 1)
    return float(min(delay, settings.visibility_timeout_seconds / 2))


def deliver_once(
    settings: Settings,
    store: RunStore,
    run_id: str,
    event: WebhookEvent,
    attempt: int,
    client: httpx.Client | None = None,
    now: float | None = None,
) -> float | None:
    """One attempt; the seconds to wait before the next one, or None when done."""
    now = time.time() if now is None else now
    try:
        record = store.get(run_id)
    except RunNotFound:
        return None
    if record.notify is None:
        return None
    url = record.notify.url
    message_id = webhook_id(run_id, event)
    log = get_logger(run_id=run_id, component="webhooks", webhook_id=message_id)
    failures_key, disabled_key = store.keys.webhook_receiver(url)

    def done(outcome: str, error: str | None = None, code: int | None = None) -> None:
        _log(
            store,
            run_id,
            Attempt(message_id, event.value, attempt, now, code, None, outcome, error),
        )
        log.warning("webhook_not_sent", outcome=outcome, error=error)

    if store.redis.exists(disabled_key):
        done("disabled", "the receiver was disabled after failing repeatedly")
        return None
    secret = KeyRing(store.redis, store.keys).signing_secret(record.submitted_by or "")
    if secret is None:
        done("no_secret", f"the key {record.submitted_by!r} was revoked")
        return None
    try:
        addresses = check_destination(url, allow_private=settings.webhook_allow_private)
    except WebhookRefused as exc:
        done("refused", str(exc))
        return None
    body = json.dumps(payload(record, event, now), separators=(",", ":"))
    headers = {
        **sign(secret, message_id, int(now), body),
        "content-type": "application/json",
        "user-agent": USER_AGENT,
    }
    own_client = client is None
    http = client or httpx.Client(
        timeout=settings.webhook_timeout_seconds,
        follow_redirects=False,
        verify=settings.webhook_ca_bundle or True,
    )
    started = time.perf_counter()
    code: int | None = None
    error: str | None = None
    try:
        # Each checked address in turn (IPv6 and IPv4 of one name), never a re-resolved one.
        for address in addresses:
            target, host_header, extensions = pinned_request(url, address)
            request = http.build_request(
                "POST",
                target,
                content=body.encode(),
                headers={**headers, **host_header},
                extensions=extensions,
            )
            try:
                code = http.send(request).status_code
            except httpx.ConnectError as exc:
                error = type(exc).__name__
                continue
            except httpx.HTTPError as exc:
                error = type(exc).__name__  # the type only: messages can quote the URL
            else:
                error = None
            break
    finally:
        if own_client:
            http.close()
    latency_ms = round((time.perf_counter() - started) * 1000, 1)
    delivered = code is not None and 200 <= code < 300
    outcome = "delivered" if delivered else "failed"
    _log(
        store,
        run_id,
        Attempt(message_id, event.value, attempt, now, code, latency_ms, outcome, error),
    )
    if delivered:
        store.redis.delete(failures_key)
        log.info("webhook_delivered", attempt=attempt, status_code=code, latency_ms=latency_ms)
        return None
    log.warning("webhook_failed", attempt=attempt, status_code=code, error=error)
    if int(store.redis.incr(failures_key)) >= settings.webhook_disable_after:
        # Disabled for one retry window, then the receiver gets another chance.
        window = max(1, int(settings.webhook_retry_for_seconds))
        store.redis.set(disabled_key, repr(now), ex=window)
        store.redis.delete(failures_key)
        store.append_event(
            run_id,
            "webhook.disabled",
            url_host=urlsplit(url).hostname,
            failed_attempts=settings.webhook_disable_after,
            for_seconds=window,
        )
        return None
    delay = backoff(settings, attempt)
    first = deliveries(store, run_id)[0]["at"] if attempt > 1 else now
    if now + delay - float(first) > settings.webhook_retry_for_seconds:
        done("given_up", f"no success within {settings.webhook_retry_for_seconds:g} s")
        return None
    return delay
