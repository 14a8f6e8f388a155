"""The Celery application of the chain, configured from Settings.

Every reliability setting is here, with the reason it is set. Retry and time
limit policy is in workers/policy.py; the tasks themselves in workers/tasks.py.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Celery
from celery.signals import setup_logging, task_postrun, task_prerun

from orchestrator.enqueue import CHAIN_QUEUE
from orchestrator.settings import Settings, get_settings

REAP_TASK = "batchai.reap"


def broker_transport_options(settings: Settings) -> dict[str, Any]:
    visibility = settings.visibility_timeout_seconds
    return {
        # An unacked message (its worker died, or it is waiting for its
        # countdown) is redelivered after this long. It must stay above the
        # longest countdown the chain uses (steps.poll_countdown caps countdowns
        # at half of it), or a waiting task would be delivered twice.
        "visibility_timeout": visibility,
        # How often a worker sweeps for abandoned messages. Kombu's default
        # (every 10 s, scanning every 10th sweep) is tuned for a one-hour
        # visibility timeout; with a short one, sweep more often so recovery
        # after a SIGKILL takes about visibility_timeout, not minutes.
        "unacked_restore_interval": max(1, min(10, visibility // 4)),
        "unacked_restore_throttle": 1 if visibility < 600 else 10,
    }


def configure(app: Celery, settings: Settings) -> None:
    app.conf.update(
        broker_url=settings.redis_url,
        broker_transport_options=broker_transport_options(settings),
        broker_connection_retry_on_startup=True,
        # Ack only after the task body finished: a worker killed mid-step
        # leaves the message unacked, so the broker redelivers it and the
        # (idempotent) step runs again instead of being lost.
        task_acks_late=True,
        # ...and also when the pool child dies (SIGKILL, OOM): without this,
        # Celery acks a message whose child was lost, and the run would stall.
        task_reject_on_worker_lost=True,
        # Reserve one message at a time per process: a prefetched message sits
        # unacked in a busy worker, delaying it and, past the visibility
        # timeout, getting it delivered twice.
        worker_prefetch_multiplier=1,
        # JSON only: task arguments are run ids; never unpickle broker data.
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        # Results live in the run store, not in a Celery result backend.
        task_ignore_result=True,
        task_store_errors_even_if_ignored=False,
        # Every task of the chain goes through one queue; producers send by name.
        task_default_queue=CHAIN_QUEUE,
        task_create_missing_queues=True,
        # Events for Flower / `celery events`: task sent, started, succeeded...
        worker_send_task_events=True,
        task_send_sent_event=True,
        task_track_started=True,
        # Logging is ours (structlog JSON, secrets redacted); Celery must not
        # replace the root logger's handlers.
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,
        # The reaper: last line of defence against leaked clusters and jobs,
        # and re-driver of runs that stopped making progress.
        beat_schedule={
            "reap": {
                "task": REAP_TASK,
                "schedule": settings.reaper_interval_seconds,
                "options": {"queue": CHAIN_QUEUE, "expires": settings.reaper_interval_seconds},
            }
        },
        timezone="UTC",
    )


def create_app(settings: Settings | None = None) -> Celery:
    app = Celery("batchai-orchestrator", include=["workers.tasks"])
    configure(app, settings or get_settings())
    return app


app = create_app()


def _configure_logging(**_: Any) -> None:
    # Connected so Celery does not install its own logging configuration.
    from orchestrator.logs import configure_logging, secrets_from_settings

    settings = get_settings()
    configure_logging(settings.log_level, secrets=secrets_from_settings(settings))
    # Python warnings (e.g. Celery's "running as root") become JSON log lines too.
    logging.captureWarnings(True)


def _bind_task_context(task_id: str | None = None, task: Any = None, **_: Any) -> None:
    import structlog

    structlog.contextvars.clear_contextvars()
    request = getattr(task, "request", None)
    structlog.contextvars.bind_contextvars(
        task_id=task_id,
        task=getattr(task, "name", None),
        attempt=getattr(request, "retries", 0),
    )


def _clear_task_context(**_: Any) -> None:
    import structlog

    structlog.contextvars.clear_contextvars()


# Connected without decorators: the signal objects are untyped.
setup_logging.connect(_configure_logging, weak=False)
task_prerun.connect(_bind_task_context, weak=False)
task_postrun.connect(_clear_task_context, weak=False)
