"""Webhooks end to end: the real chain (worker + emulator) and a real HTTPS receiver
on loopback. A run that succeeds produces exactly one verified `run.succeeded`
delivery; a receiver answering 500 twice then 200 gets three attempts with one
webhook-id; the run's deliveries log has every attempt."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from orchestrator.chain.enqueue import enqueue_run
from orchestrator.chain.webhooks import deliveries
from orchestrator.client import verify_webhook
from orchestrator.domain.access import Scope
from orchestrator.domain.notify import NotifySpec
from orchestrator.store.apikeys import KeyRing
from tests.support.chain_stack import RUN_TIMEOUT, Stack, wait_for
from tests.support.webhook_receiver import Receiver, https_receiver

pytestmark = pytest.mark.integration


def _submit(stack: Stack, receiver: Receiver) -> tuple[str, str]:
    """A run submitted by the key `svc`, asking for a webhook; (run id, signing secret)."""
    ring = KeyRing(stack.store.redis, stack.store.keys)
    secret = ring.create("svc", frozenset({Scope.SUBMIT}), by="admin").signing_secret
    record, _ = enqueue_run(
        stack.spec(seconds=0.1),
        store=stack.store,
        broker_url=stack.redis_url,
        submitted_by="svc",
        notify=NotifySpec(url=receiver.url),
    )
    return record.run_id, secret


def _worker(stack: Stack, receiver: Receiver) -> None:
    stack.start_worker(
        ORCH_WEBHOOK_ALLOW_PRIVATE="true",
        ORCH_WEBHOOK_CA_BUNDLE=str(receiver.ca_bundle),
        ORCH_WEBHOOK_RETRY_INITIAL_SECONDS="0.2",
    )


def test_a_run_that_succeeds_produces_one_verified_delivery(stack: Stack, tmp_path: Path) -> None:
    with https_receiver(tmp_path, 200) as receiver:
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


def stack_deliveries(stack: Stack, run_id: str) -> list[dict[str, Any]]:
    return deliveries(stack.store, run_id)
