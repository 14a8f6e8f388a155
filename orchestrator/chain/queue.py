"""The chain's Celery wiring, one configuration for producers and workers.

Producers (the API, `submit`, another service, the reaper's re-sends) and the
worker processes must agree on the queue, the task names and the serializer;
they get all three from `base_config`. The worker's reliability settings are
added by `worker_config`, each with the reason it is set.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import uuid
from functools import lru_cache
from typing import Any

from celery import Celery

from orchestrator.domain.status import Step
from orchestrator.settings import Settings
from orchestrator.store.connection import RedisTarget

CHAIN_QUEUE = "batchai"
# Webhook deliveries, apart from the steps: a worker consuming only this queue
# (`orchestrator worker --queues webhooks`) keeps a hanging receiver from ever
# taking a slot a step needs. Keys of the broker's, like CHAIN_QUEUE.
WEBHOOK_QUEUE = "batchai.webhooks"
TASK_PREFIX = "batchai."
REAP_TASK = f"{TASK_PREFIX}reap"
# One tick of one sweep (argument: the sweep id); sent by the chain clock.
SWEEP_TICK_TASK = f"{TASK_PREFIX}sweep_tick"


def task_name(step: Step) -> str:
    """The Celery task name of a step, e.g. batchai.ensure_resource_group."""
    return f"{TASK_PREFIX}{step.value}"


def base_config(broker: RedisTarget | str) -> dict[str, Any]:
    """What every app on the chain's queue shares, producer or worker.

    `broker` is REDIS_URL with its Sentinel settings (Settings.redis_target);
    for sentinel:// the master's name (and the Sentinels' password) go to kombu
    as transport options, so producer and worker follow a failover alike.
    There is no result backend (results live in the run store).
    """
    target = RedisTarget.of(broker)
    return {
        "broker_url": target.broker_url(),
        "broker_transport_options": target.broker_transport_options(),
        "broker_connection_retry_on_startup": True,
        # JSON only: task arguments are run ids; never unpickle broker data.
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        # Every task of the chain goes through one queue; producers send by name.
        "task_default_queue": CHAIN_QUEUE,
        "task_create_missing_queues": True,
    }


def broker_transport_options(settings: Settings) -> dict[str, Any]:
    visibility = settings.visibility_timeout_seconds
    return {
        # master_name (and sentinel_kwargs) for a sentinel:// REDIS_URL.
        **settings.redis_target.broker_transport_options(),
        # An unacked message (its worker died, or it is waiting for its
        # countdown) is redelivered after this long. It must stay above the
        # longest countdown the chain uses (steps.safe_countdown caps countdowns
        # at half of it), or a waiting task would be delivered twice.
        "visibility_timeout": visibility,
        # How often a worker sweeps for abandoned messages. Kombu's default
        # (every 10 s, scanning every 10th sweep) is tuned for a one-hour
        # visibility timeout; with a short one, sweep more often so recovery
        # after a SIGKILL takes about visibility_timeout, not minutes.
        "unacked_restore_interval": max(1, min(10, visibility // 4)),
        "unacked_restore_throttle": 1 if visibility < 600 else 10,
    }


def worker_config(settings: Settings) -> dict[str, Any]:
    return {
        **base_config(settings.redis_target),
        "broker_transport_options": broker_transport_options(settings),
        # Ack only after the task body finished: a worker killed mid-step
        # leaves the message unacked, so the broker redelivers it and the
        # (idempotent) step runs again instead of being lost.
        "task_acks_late": True,
        # ...and also when the pool child dies (SIGKILL, OOM): without this,
        # Celery acks a message whose child was lost, and the run would stall.
        "task_reject_on_worker_lost": True,
        # Reserve one message at a time per process: a prefetched message sits
        # unacked in a busy worker, delaying it and, past the visibility
        # timeout, getting it delivered twice.
        "worker_prefetch_multiplier": 1,
        # Results live in the run store, not in a Celery result backend.
        "task_ignore_result": True,
        "task_store_errors_even_if_ignored": False,
        # Events for Flower / `celery events`: task sent, started, succeeded...
        "worker_send_task_events": True,
        "task_send_sent_event": True,
        "task_track_started": True,
        # Logging is ours (structlog JSON, secrets redacted); Celery must not
        # replace the root logger's handlers.
        "worker_hijack_root_logger": False,
        "worker_redirect_stdouts": False,
        # The reaper: last line of defence against leaked clusters and jobs,
        # and re-driver of runs that stopped making progress.
        "beat_schedule": {
            "reap": {
                "task": REAP_TASK,
                "schedule": settings.reaper_interval_seconds,
                "options": {"queue": CHAIN_QUEUE, "expires": settings.reaper_interval_seconds},
            }
        },
        "timezone": "UTC",
    }


@lru_cache(maxsize=8)
def producer_app(broker: RedisTarget | str) -> Celery:
    """A send-only Celery app for `broker` (cached: one connection pool per broker)."""
    app = Celery("orchestrator-producer", set_as_current=False)
    app.conf.update(base_config(broker))
    return app


def send_step(broker: RedisTarget | str, step: Step, run_id: str) -> str:
    """Send one step's task for `run_id` to the chain queue; returns the task id.

    `broker`: Settings.redis_target, or a plain REDIS_URL (default Sentinel settings).
    """
    result = producer_app(broker).send_task(task_name(step), args=[run_id], queue=CHAIN_QUEUE)
    return str(result.id)


# Celery's `reply_to` of this producer (a send-only app never reads replies).
_REPLY_TO = str(uuid.uuid4())
_NO_CANVAS = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}


def step_message(step: Step, run_id: str) -> tuple[str, str]:
    """(task id, the chain queue's list entry) of one step's task, built without Celery.

    The entry is exactly what `send_step` makes kombu's Redis transport LPUSH
    onto CHAIN_QUEUE (Celery task protocol 2, JSON, base64 body, priority 0, no
    exchange), so a store script can push it in the same atomic round trip that
    creates the run (RunStore.create_run's `dispatch`).
    tests/orchestrator/chain/test_enqueue.py compares it with send_step's.
    """
    task_id = str(uuid.uuid4())
    body = json.dumps([[run_id], {}, _NO_CANVAS]).encode()
    headers: dict[str, Any] = {
        "lang": "py",
        "task": task_name(step),
        "id": task_id,
        "shadow": None,
        "eta": None,
        "expires": None,
        "group": None,
        "group_index": None,
        "retries": 0,
        "timelimit": [None, None],
        "root_id": task_id,
        "parent_id": None,
        "argsrepr": repr([run_id]),
        "kwargsrepr": "{}",
        "origin": f"gen{os.getpid()}@{socket.gethostname()}",
        "ignore_result": None,
        "replaced_task_nesting": 0,
        "stamped_headers": None,
        "stamps": {},
    }
    message = {
        "body": base64.b64encode(body).decode(),
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": headers,
        "properties": {
            "correlation_id": task_id,
            "reply_to": _REPLY_TO,
            "delivery_mode": 2,
            "delivery_info": {"exchange": "", "routing_key": CHAIN_QUEUE},
            "priority": 0,
            "body_encoding": "base64",
            "delivery_tag": str(uuid.uuid4()),
        },
    }
    return task_id, json.dumps(message)
