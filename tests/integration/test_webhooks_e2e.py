"""Webhooks end to end: the real chain (worker + emulator) and a real HTTPS receiver
on loopback. A run that succeeds produces exactly one verified `run.succeeded`
delivery; a receiver answering 500 twice then 200 gets three attempts with one
webhook-id; the run's deliveries log has every attempt; a receiver that hangs does
not hold up other runs; two services on two keys each get (only) their own runs'
webhooks, signed with their own secret."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from orchestrator.chain.enqueue import enqueue_run
from orchestrator.chain.webhooks import deliveries
from orchestrator.client import WebhookVerificationFailed, verify_webhook
from orchestrator.domain.access import Scope
from orchestrator.domain.notify import NotifySpec
from orchestrator.store.apikeys import KeyRing
from tests.support.chain_stack import RUN_TIMEOUT, Stack, wait_for
from tests.support.webhook_receiver import Receiver, https_receiver

pytestmark = pytest.mark.integration


def _submit(stack: Stack, receiver: Receiver | None, key: str = "svc") -> tuple[str, str]:
    """A run submitted by `key` (created if new), asking for a webhook to `receiver`;
    (run id, the key's signing secret)."""
    ring = KeyRing(stack.store.redis, stack.store.keys)
    secret = ring.signing_secret(key)
    if secret is None:
        secret = ring.create(key, frozenset({Scope.SUBMIT}), by="admin").signing_secret
    record, _ = enqueue_run(
        stack.uploaded_spec(seconds=0.1),
        store=stack.store,
        broker_url=stack.redis_url,
        submitted_by=key,
        notify=NotifySpec(url=receiver.url) if receiver is not None else None,
    )
    return record.run_id, secret


def _worker(stack: Stack, receiver: Receiver, concurrency: int = 1, **env: str) -> None:
    stack.start_worker(
        concurrency=concurrency,
        ORCH_WEBHOOK_ALLOW_PRIVATE="true",
        ORCH_WEBHOOK_CA_BUNDLE=str(receiver.ca_bundle),
        ORCH_WEBHOOK_RETRY_INITIAL_SECONDS="0.2",
        **env,
    )


def test_a_run_that_succeeds_produces_one_verified_delivery(stack: Stack, tmp_path: Path) -> None:
    # By name: the delivery connects to the address it checked, and TLS verifies the
    # certificate for the name (SNI), as for any real receiver.
    with https_receiver(tmp_path, 200, host="localhost") as receiver:
        _worker(stack, receiver)
        run_id, secret = _submit(stack, receiver)
        final = stack.wait_terminal(run_id, RUN_TIMEOUT)
        assert final.status.value == "succeeded", final.error
        wait_for(lambda: receiver.deliveries, 30, "the delivery")
        log = wait_for(
            lambda: [e for e in stack_deliveries(stack, run_id) if e["outcome"] == "delivered"],
            30,
            "the delivery to be logged",
        )
        (delivery,) = receiver.deliveries
        payload = verify_webhook(secret, delivery.headers, delivery.body)
        assert payload["type"] == "run.succeeded"
        assert payload["data"]["run_id"] == run_id
        assert payload["data"]["status"] == "succeeded"
        assert len(log) == 1 and log[0]["status_code"] == 200
        assert delivery.received_at >= (final.finished_at or 0)


def test_500_twice_then_200_is_three_attempts_with_one_webhook_id(
    stack: Stack, tmp_path: Path
) -> None:
    with https_receiver(tmp_path, 500, 500, 200) as receiver:
        _worker(stack, receiver)
        run_id, secret = _submit(stack, receiver)
        assert stack.wait_terminal(run_id, RUN_TIMEOUT).status.value == "succeeded"
        wait_for(lambda: len(receiver.deliveries) >= 3, 60, "three attempts")
        wait_for(lambda: len(stack_deliveries(stack, run_id)) >= 3, 30, "three attempts logged")
        ids = {delivery.headers["webhook-id"] for delivery in receiver.deliveries}
        assert len(receiver.deliveries) == 3 and len(ids) == 1
        for delivery in receiver.deliveries:
            verify_webhook(secret, delivery.headers, delivery.body)
        log = stack_deliveries(stack, run_id)
        assert [(e["attempt"], e["status_code"]) for e in log] == [(1, 500), (2, 500), (3, 200)]


def test_a_receiver_that_hangs_does_not_hold_up_other_runs(stack: Stack, tmp_path: Path) -> None:
    with https_receiver(tmp_path, 200, hang=True) as receiver:
        _worker(stack, receiver, concurrency=2, ORCH_WEBHOOK_TIMEOUT_SECONDS="120")
        first, _ = _submit(stack, receiver)
        assert stack.wait_terminal(first, RUN_TIMEOUT).status.value == "succeeded"
        wait_for(lambda: receiver.deliveries, 30, "the delivery attempt to arrive")
        # The attempt now hangs (until released or 120 s); another run goes through.
        second, _ = _submit(stack, None)
        assert stack.wait_terminal(second, RUN_TIMEOUT).status.value == "succeeded"
        assert receiver.answered == 0  # the first run's delivery is still hanging
        assert stack_deliveries(stack, first) == []  # its attempt has not ended
        receiver.release.set()
        log = wait_for(lambda: stack_deliveries(stack, first), 30, "the attempt to end")
        assert [(e["status_code"], e["outcome"]) for e in log] == [(200, "delivered")]


def test_two_services_each_get_signed_webhooks_for_their_own_runs(
    stack: Stack, tmp_path: Path
) -> None:
    with (
        https_receiver(tmp_path / "a", 200) as vision_hooks,
        https_receiver(tmp_path / "b", 200) as speech_hooks,
    ):
        bundle = tmp_path / "cas.pem"
        bundle.write_bytes(
            vision_hooks.ca_bundle.read_bytes() + speech_hooks.ca_bundle.read_bytes()
        )
        stack.start_worker(ORCH_WEBHOOK_ALLOW_PRIVATE="true", ORCH_WEBHOOK_CA_BUNDLE=str(bundle))
        vision_run, vision_secret = _submit(stack, vision_hooks, key="vision")
        speech_run, speech_secret = _submit(stack, speech_hooks, key="speech")
        for run_id in (vision_run, speech_run):
            assert stack.wait_terminal(run_id, RUN_TIMEOUT).status.value == "succeeded"
        for hooks, run_id, secret, other_secret in (
            (vision_hooks, vision_run, vision_secret, speech_secret),
            (speech_hooks, speech_run, speech_secret, vision_secret),
        ):
            (delivery,) = wait_for(lambda hooks=hooks: hooks.deliveries, 30, "a delivery")
            payload = verify_webhook(secret, delivery.headers, delivery.body)
            assert payload["data"]["run_id"] == run_id
            with pytest.raises(WebhookVerificationFailed):
                verify_webhook(other_secret, delivery.headers, delivery.body)
        runs = {r.run_id: r.submitted_by for r in stack.store.list_runs()[0]}
        assert runs == {vision_run: "vision", speech_run: "speech"}


def stack_deliveries(stack: Stack, run_id: str) -> list[dict[str, Any]]:
    return deliveries(stack.store, run_id)
