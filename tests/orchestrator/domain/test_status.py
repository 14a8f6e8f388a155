from orchestrator.domain.status import (
    STATUS_DURING_STEP,
    STEP_ORDER,
    TERMINAL,
    TRANSITIONS,
    RunStatus,
    Step,
    can_transition,
)


def test_terminal_statuses_have_no_way_out() -> None:
    for status in TERMINAL:
        assert TRANSITIONS[status] == frozenset()


def test_every_live_status_can_fail_or_be_cancelled() -> None:
    for status in set(RunStatus) - TERMINAL:
        assert can_transition(status, RunStatus.FAILED)
        assert can_transition(status, RunStatus.CANCELLED)


def test_no_going_back() -> None:
    assert not can_transition(RunStatus.RUNNING, RunStatus.PROVISIONING)
    assert not can_transition(RunStatus.SUCCEEDED, RunStatus.FAILED)
    assert not can_transition(RunStatus.QUEUED, RunStatus.SUCCEEDED)


def test_steps_are_eight_in_order() -> None:
    assert len(STEP_ORDER) == 8
    assert STEP_ORDER[0] is Step.ENSURE_RESOURCE_GROUP
    assert Step.POLL_JOB.next() is Step.COLLECT_OUTPUTS
    assert Step.CLEANUP.next() is None
    assert set(STATUS_DURING_STEP) == set(STEP_ORDER) - {Step.CLEANUP}
