"""The Celery app's reliability settings and the chain's tasks."""

from __future__ import annotations

from orchestrator.chain.queue import CHAIN_QUEUE, REAP_TASK, broker_transport_options, task_name
from orchestrator.domain.status import STEP_ORDER
from orchestrator.settings import Settings
from workers.app import create_app
from workers.policy import MAX_BACKOFF_SECONDS, transient_backoff


def test_app_is_configured_for_at_least_once_delivery() -> None:
    app = create_app(Settings(ORCH_VISIBILITY_TIMEOUT_SECONDS=120))
    conf = app.conf
    assert conf.task_acks_late is True
    assert conf.task_reject_on_worker_lost is True
    assert conf.worker_prefetch_multiplier == 1
    assert conf.accept_content == ["json"] and conf.task_serializer == "json"
    assert conf.worker_send_task_events and conf.task_send_sent_event
    assert conf.task_default_queue == CHAIN_QUEUE
    assert conf.broker_transport_options["visibility_timeout"] == 120
    assert conf.beat_schedule["reap"]["task"] == REAP_TASK


def test_short_visibility_timeouts_sweep_for_lost_messages_often() -> None:
    short = broker_transport_options(Settings(ORCH_VISIBILITY_TIMEOUT_SECONDS=8))
    assert (short["unacked_restore_interval"], short["unacked_restore_throttle"]) == (2, 1)
    default = broker_transport_options(Settings())
    assert default["unacked_restore_interval"] == 10


def test_every_step_has_a_task_named_after_it() -> None:
    from workers.tasks import STEP_TASKS, app

    for step in STEP_ORDER:
        task = app.tasks[task_name(step)]
        assert task.name == STEP_TASKS[step].name
        assert task.step is step
        assert task.acks_late and task.reject_on_worker_lost
    assert REAP_TASK in app.tasks


def test_transient_backoff_grows_and_is_capped() -> None:
    assert 0.5 <= transient_backoff(0) <= 1.0
    assert 4.0 <= transient_backoff(3) <= 8.0
    assert transient_backoff(50) <= MAX_BACKOFF_SECONDS
