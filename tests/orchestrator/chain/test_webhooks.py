"""Webhook rules on fakeredis, the receiver an httpx MockTransport: signatures that
the `standardwebhooks` package verifies, one webhook-id across retries, back-off,
the per-run delivery log, disabling, refusals of private addresses."""

from __future__ import annotations

import ipaddress
import json
from typing import Any

import httpx
import pytest
import redis
from standardwebhooks import Webhook

from orchestrator.chain import webhooks
from orchestrator.client import WebhookVerificationFailed, verify_webhook
from orchestrator.domain.access import Scope
from orchestrator.domain.notify import NotifySpec, WebhookEvent
from orchestrator.domain.spec import parse_spec
from orchestrator.domain.status import RunStatus
from orchestrator.settings import Settings
from orchestrator.store import RunStore
from orchestrator.store.apikeys import KeyRing

URL = "https://127.0.0.1:9/hooks/training"
SPEC = {"name": "mnist", "job": {"script": "train.py"}, "inputs": {"SAMPLE": "/data/s"}}


@pytest.fixture
def store(fake_redis: redis.Redis) -> RunStore:
    return RunStore(fake_redis)


@pytest.fixture
def secret(store: RunStore) -> str:
    return (
        KeyRing(store.redis, store.keys)
        .create("svc", frozenset({Scope.SUBMIT}), by="admin")
        .signing_secret
    )


def settings(**changes: Any) -> Settings:
    return Settings(webhook_allow_private=True, **changes)


def succeeded_run(store: RunStore, url: str = URL) -> str:
    record, _ = store.create_run(
        parse_spec(SPEC), run_id="r1", submitted_by="svc", notify=NotifySpec(url=url)
    )
    for status in (RunStatus.PROVISIONING, RunStatus.RUNNING, RunStatus.COLLECTING):
        store.transition("r1", status)
    store.transition("r1", RunStatus.SUCCEEDED)
    return record.run_id


class Receiver:
    """Answers with the given status codes in turn; keeps what it received."""

    def __init__(self, *codes: int) -> None:
        self.codes = list(codes)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return httpx.Response(self.codes.pop(0) if len(self.codes) > 1 else self.codes[0])

    def client(self) -> httpx.Client:
        return httpx.Client(transport=httpx.MockTransport(self))


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/h",
        "https://10.0.0.1/h",
        "https://169.254.169.254/latest/meta-data",
        "https://192.168.1.10/h",
        "https://[::1]/h",
        "https://localhost/h",  # a name resolving to loopback
    ],
)
def test_private_destinations_are_refused_unless_allowed(url: str) -> None:
    with pytest.raises(webhooks.WebhookRefused, match="loopback, link-local or private"):
        webhooks.check_destination(url, allow_private=False)
    webhooks.check_destination(url, allow_private=True)


def test_a_public_address_passes() -> None:
    webhooks.check_destination("https://93.184.216.34/h", allow_private=False)


def test_the_request_is_pinned_to_the_checked_address() -> None:
    target, host, extensions = webhooks.pinned_request(
        "https://hooks.example:8443/a/b?x=1", ipaddress.ip_address("93.184.216.34")
    )
    assert target == "https://93.184.216.34:8443/a/b?x=1"
    assert host == {"host": "hooks.example:8443"}
    assert extensions == {"sni_hostname": "hooks.example"}
    target, host, _ = webhooks.pinned_request(
        "https://hooks.example/h", ipaddress.ip_address("2001:db8::1")
    )
    assert (target, host) == ("https://[2001:db8::1]/h", {"host": "hooks.example"})


def test_a_delivery_goes_to_the_address_that_was_checked(store: RunStore, secret: str) -> None:
    run_id = succeeded_run(store, url="https://localhost:9/hook")
    receiver = Receiver(200)
    webhooks.deliver_once(
        settings(), store, run_id, WebhookEvent.RUN_SUCCEEDED, 1, client=receiver.client()
    )
    (request,) = receiver.requests
    assert request.url.host in {"127.0.0.1", "::1"}  # an address, not the name
    assert request.headers["host"] == "localhost:9"
    assert request.extensions["sni_hostname"] == "localhost"


def test_a_delivery_is_signed_and_verifies(store: RunStore, secret: str) -> None:
    run_id = succeeded_run(store)
    receiver = Receiver(200)
    delay = webhooks.deliver_once(
        settings(), store, run_id, WebhookEvent.RUN_SUCCEEDED, 1, client=receiver.client()
    )
    assert delay is None
    (request,) = receiver.requests
    headers = dict(request.headers)
    payload = Webhook(secret).verify(request.content, headers)  # what receivers run
    assert payload == verify_webhook(secret, headers, request.content)
    assert payload["type"] == "run.succeeded"
    assert payload["data"]["run_id"] == run_id and payload["data"]["status"] == "succeeded"
    assert payload["data"]["submitted_by"] == "svc"
    assert headers["webhook-id"] == webhooks.webhook_id(run_id, WebhookEvent.RUN_SUCCEEDED)
    assert secret not in request.content.decode()
    log = webhooks.deliveries(store, run_id)
    assert [(e["attempt"], e["status_code"], e["outcome"]) for e in log] == [(1, 200, "delivered")]
    assert log[0]["latency_ms"] >= 0 and "body" not in log[0]


def test_a_tampered_delivery_does_not_verify(store: RunStore, secret: str) -> None:
    run_id = succeeded_run(store)
    receiver = Receiver(200)
    webhooks.deliver_once(
        settings(), store, run_id, WebhookEvent.RUN_SUCCEEDED, 1, client=receiver.client()
    )
    request = receiver.requests[0]
    body = json.loads(request.content)
    body["data"]["status"] = "failed"
    with pytest.raises(WebhookVerificationFailed):
        verify_webhook(secret, dict(request.headers), json.dumps(body))


def test_500_twice_then_200_is_three_attempts_with_one_id_and_backing_off(
    store: RunStore, secret: str
) -> None:
    run_id = succeeded_run(store)
    receiver = Receiver(500, 500, 200)
    config = settings(webhook_retry_initial_seconds=5.0)
    delays = [
        webhooks.deliver_once(
            config, store, run_id, WebhookEvent.RUN_SUCCEEDED, attempt, client=receiver.client()
        )
        for attempt in (1, 2, 3)
    ]
    assert delays == [5.0, 10.0, None]
    assert len({r.headers["webhook-id"] for r in receiver.requests}) == 1
    log = webhooks.deliveries(store, run_id)
    assert [(e["status_code"], e["outcome"]) for e in log] == [
        (500, "failed"),
        (500, "failed"),
        (200, "delivered"),
    ]


def test_backoff_never_exceeds_half_the_visibility_timeout() -> None:
    config = settings(webhook_retry_initial_seconds=5.0, visibility_timeout_seconds=600)
    assert [webhooks.backoff(config, n) for n in (1, 2, 3, 7, 20)] == [
        5.0,
        10.0,
        20.0,
        300.0,
        300.0,
    ]


def test_retries_stop_after_the_retry_window(store: RunStore, secret: str) -> None:
    run_id = succeeded_run(store)
    receiver = Receiver(503)
    config = settings(webhook_retry_initial_seconds=10.0, webhook_retry_for_seconds=35.0)
    event = WebhookEvent.RUN_SUCCEEDED

    def attempt(number: int, now: float) -> float | None:
        return webhooks.deliver_once(config, store, run_id, event, number, receiver.client(), now)

    assert attempt(1, 0.0) == 10  # next at 10 s: inside the 35 s window
    assert attempt(2, 10.0) == 20  # next at 30 s: inside
    assert attempt(3, 30.0) is None  # next would be at 70 s: past it
    assert webhooks.deliveries(store, run_id)[-1]["outcome"] == "given_up"


def test_a_receiver_failing_repeatedly_is_disabled_with_an_event(
    store: RunStore, secret: str
) -> None:
    run_id = succeeded_run(store)
    receiver = Receiver(500)
    config = settings(webhook_disable_after=2)
    event = WebhookEvent.RUN_SUCCEEDED
    assert webhooks.deliver_once(config, store, run_id, event, 1, receiver.client()) is not None
    assert webhooks.deliver_once(config, store, run_id, event, 2, receiver.client()) is None
    disabled = store.read_events(run_id)[-1]
    assert disabled.kind == "webhook.disabled"
    assert disabled.data == {"url_host": "127.0.0.1", "failed_attempts": 2, "for_seconds": 86400}
    _, disabled_key = store.keys.webhook_receiver(URL)
    assert 0 < int(store.redis.ttl(disabled_key)) <= 86400  # another chance after a window
    assert webhooks.deliver_once(config, store, run_id, event, 3, receiver.client()) is None
    assert len(receiver.requests) == 2  # nothing sent once disabled
    assert webhooks.deliveries(store, run_id)[-1]["outcome"] == "disabled"


def test_a_revoked_key_stops_its_deliveries(store: RunStore, secret: str) -> None:
    run_id = succeeded_run(store)
    KeyRing(store.redis, store.keys).revoke("svc", by="admin")
    receiver = Receiver(200)
    assert (
        webhooks.deliver_once(
            settings(), store, run_id, WebhookEvent.RUN_SUCCEEDED, 1, client=receiver.client()
        )
        is None
    )
    assert receiver.requests == []
    assert webhooks.deliveries(store, run_id)[-1]["outcome"] == "no_secret"


def test_delivery_time_refuses_a_private_address(store: RunStore, secret: str) -> None:
    run_id = succeeded_run(store)
    receiver = Receiver(200)
    assert (
        webhooks.deliver_once(
            Settings(webhook_allow_private=False),
            store,
            run_id,
            WebhookEvent.RUN_SUCCEEDED,
            1,
            client=receiver.client(),
        )
        is None
    )
    assert receiver.requests == []
    assert webhooks.deliveries(store, run_id)[-1]["outcome"] == "refused"


class _Producer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, list[Any]]] = []

    def send_task(self, name: str, args: list[Any], queue: str) -> None:
        self.sent.append((name, args))


def test_an_ending_is_announced_once_and_only_if_subscribed(
    store: RunStore, secret: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    producer = _Producer()
    monkeypatch.setattr(webhooks, "producer_app", lambda url: producer)
    run_id = succeeded_run(store)
    record = store.get(run_id)
    assert webhooks.announce(store, "redis://unused", record)
    assert not webhooks.announce(store, "redis://unused", record)  # a re-run of the step
    assert producer.sent == [(webhooks.DELIVER_TASK, [run_id, "run.succeeded", 1])]

    other, _ = store.create_run(
        parse_spec(SPEC),
        run_id="r2",
        submitted_by="svc",
        notify=NotifySpec(url=URL, events=[WebhookEvent.RUN_FAILED]),
    )
    store.transition("r2", RunStatus.CANCELLED)
    assert not webhooks.announce(store, "redis://unused", store.get("r2"))
    assert not webhooks.announce(store, "redis://unused", other)  # not ended
    assert len(producer.sent) == 1


@pytest.mark.parametrize(
    ("notify", "message"),
    [
        ({"url": "http://example.com/h"}, "must be an https:// URL"),
        ({"url": "https://u:p@example.com/h"}, "must not carry credentials"),
        ({"url": "https://example.com/h", "events": ["run.started"]}, "events"),
        ({"url": "https://example.com/h", "events": []}, "events"),
    ],
)
def test_notify_specs_are_validated(notify: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        NotifySpec.model_validate(notify)
