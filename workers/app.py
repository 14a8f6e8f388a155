"""The Celery application of the chain, configured from Settings.

Every reliability setting is in orchestrator/chain/queue.py, with the reason it
is set. Retry and time limit policy is in workers/policy.py; the tasks
themselves in workers/tasks.py.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Celery
from celery.signals import setup_logging, task_postrun, task_prerun

from orchestrator.chain.queue import worker_config
from orchestrator.settings import Settings, get_settings


def configure(app: Celery, settings: Settings) -> None:
    app.conf.update(worker_config(settings))


def create_app(settings: Settings | None = None) -> Celery:
    app = Celery("batchai-orchestrator", include=["workers.tasks", "workers.clock"])
    configure(app, settings or get_settings())
    return app


app = create_app()


def _configure_logging(**_: Any) -> None:
    # Connected so Celery does not install its own logging configuration.
    from orchestrator.observability.logs import configure_logging, secrets_from_settings

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
