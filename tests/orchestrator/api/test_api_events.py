from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from orchestrator.api import create_app
from orchestrator.client import ApiError, OrchestratorClient
from orchestrator.devstack.redis_server import RedisServer
from orchestrator.domain.spec import parse_spec
from orchestrator.domain.status import FailureReason, RunStatus, Step, StepState
from orchestrator.settings import Settings
from orchestrator.store import RunStore
from tests.support.api import TOKEN, run_request
from tests.support.live_server import serve


@pytest.fixture
def api(settings: Settings) -> Iterator[OrchestratorClient]:
    with serve(create_app(settings)) as url, OrchestratorClient(url, token=TOKEN) as client:
        yield client


def _new_run(store: RunStore) -> str:
    record, _ = store.create_run(parse_spec(run_request()["spec"]))
    return record.run_id


def test_replays_then_streams_live_until_the_run_ends(
    api: OrchestratorClient, store: RunStore
) -> None:
    run_id = _new_run(store)
    stream = api.events(run_id)

    first = next(stream)  # replayed: the creation
    assert (first["kind"], first["data"]["status"]) == ("status", "queued")

    # Written while the stream is open and waiting: it must arrive live.
    store.append_event(run_id, "log", line="epoch 1")
    live = next(stream)
    assert (live["kind"], live["data"]) == ("log", {"line": "epoch 1"})

    store.set_step(run_id, Step.ENSURE_RESOURCE_GROUP, StepState.RUNNING, attempt=True)
    assert next(stream)["data"]["step"] == "ensure_resource_group"

    store.transition(run_id, RunStatus.CANCELLED)
    last = next(stream)
    assert (last["kind"], last["data"]["status"]) == ("status", "cancelled")
    assert list(stream) == []  # the server ended the stream after the terminal status


def test_last_event_id_resumes_after_that_event(api: OrchestratorClient, store: RunStore) -> None:
    run_id = _new_run(store)
    store.append_event(run_id, "log", line="a")
    store.append_event(run_id, "log", line="b")
    store.transition(run_id, RunStatus.CANCELLED)

    everything = list(api.events(run_id))  # an ended run: replay only, then the end
    assert [event["kind"] for event in everything] == ["status", "log", "log", "status"]
    resumed = list(api.events(run_id, last_event_id=everything[1]["id"]))
    assert resumed == everything[2:]


@pytest.mark.parametrize(
    "bad",
    [
        "../etc",
        # Digits, but past Redis' unsigned 64-bit parts (found by the schema fuzz):
        # it used to start the stream and then report the store unavailable.
        "0-20000000000000000000",
        "18446744073709551616-0",
    ],
)
def test_bad_last_event_id_is_422(api: OrchestratorClient, store: RunStore, bad: str) -> None:
    run_id = _new_run(store)
    with pytest.raises(ApiError) as caught:
        list(api.events(run_id, last_event_id=bad))
    assert caught.value.status == 422
    assert "Last-Event-ID" in caught.value.message


def test_the_largest_event_id_is_accepted(api: OrchestratorClient, store: RunStore) -> None:
    run_id = _new_run(store)
    store.transition(run_id, RunStatus.CANCELLED, reason=FailureReason.CANCELLED)
    assert list(api.events(run_id, last_event_id="18446744073709551615-0")) == []


@pytest.mark.integration  # starts (and stops) a redis-server of its own
def test_redis_lost_mid_stream_ends_it_with_an_error_event(tmp_path: Path) -> None:
    server = RedisServer().start()
    settings = Settings(redis_url=server.url, api_token=SecretStr(TOKEN), artifacts_dir=tmp_path)
    try:
        with serve(create_app(settings)) as url, OrchestratorClient(url, token=TOKEN) as api:
            run_id = api.submit(run_request()["spec"])["run_id"]
            stream = api.events(run_id)
            replayed = [next(stream)["kind"], next(stream)["kind"]]
            assert replayed == ["status", "dispatched"]  # all there is; now the stream waits
            server.stop()
            with pytest.raises(ApiError) as caught:
                next(stream)
            assert caught.value.status == 503
    finally:
        server.stop()
