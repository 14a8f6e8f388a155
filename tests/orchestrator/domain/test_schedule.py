"""Schedule definitions: validation naming the field, DST-correct cron ticks."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from orchestrator.domain.schedule import ScheduleError, load_schedule, parse_schedule

RUN = {"name": "mnist", "job": {"toolkit": "custom", "command": "echo hi"}}
ROME = ZoneInfo("Europe/Rome")
REPO = Path(__file__).resolve().parents[3]


def schedule(**trigger: object) -> dict[str, object]:
    return {"name": "nightly", "trigger": trigger, "run": RUN}


def ticks(cron: str, start: datetime, count: int) -> list[str]:
    spec = parse_schedule(schedule(cron=cron, time_zone="Europe/Rome"))
    return [t.isoformat() for t in spec.trigger.upcoming(start.timestamp(), count)]


def test_spring_night_a_skipped_wall_time_fires_once_after_the_change() -> None:
    start = datetime(2026, 3, 28, 12, tzinfo=ROME)
    assert ticks("30 2 * * *", start, 3) == [
        "2026-03-29T03:30:00+02:00",  # 02:30 does not exist that night
        "2026-03-30T02:30:00+02:00",
        "2026-03-31T02:30:00+02:00",
    ]
    assert ticks("0 * * * *", datetime(2026, 3, 29, 0, 30, tzinfo=ROME), 3) == [
        "2026-03-29T01:00:00+01:00",
        "2026-03-29T03:00:00+02:00",  # 02:00 and 03:00 are one instant: one tick
        "2026-03-29T04:00:00+02:00",
    ]


def test_autumn_night_a_nightly_job_runs_once_an_hourly_one_keeps_its_spacing() -> None:
    start = datetime(2026, 10, 24, 12, tzinfo=ROME)
    assert ticks("30 2 * * *", start, 2) == [
        "2026-10-25T02:30:00+02:00",  # the first 02:30 only
        "2026-10-26T02:30:00+01:00",
    ]
    assert ticks("0 * * * *", datetime(2026, 10, 25, 1, 30, tzinfo=ROME), 3) == [
        "2026-10-25T02:00:00+02:00",
        "2026-10-25T02:00:00+01:00",
        "2026-10-25T03:00:00+01:00",
    ]


def test_every_ticks_are_anchored_at_the_epoch() -> None:
    spec = parse_schedule(schedule(every="PT30S"))
    assert spec.trigger.next_after(1000.0) == 1020.0
    assert spec.trigger.next_after(1020.0) == 1050.0
    assert parse_schedule(schedule(every="5m")).trigger.next_after(0.0) == 300.0


def test_parameters_are_substituted_and_tags_added() -> None:
    data = {**schedule(cron="0 2 * * *", time_zone="Europe/Rome")}
    data["parameters"] = {"data_date": "{trigger_date}", "at": "{trigger_time}", "epochs": 3}
    spec = parse_schedule(data)
    tick = datetime(2026, 7, 1, 2, tzinfo=ROME).timestamp()
    run = spec.run_spec_for(tick)
    assert run.parameters == {
        "data_date": "2026-07-01",
        "at": "2026-07-01T02:00:00+02:00",
        "epochs": 3,
    }
    assert run.tags == {"schedule": "nightly", "trigger_time": "2026-07-01T00:00:00Z"}


@pytest.mark.parametrize(
    ("data", "field"),
    [
        (schedule(cron="61 2 * * *"), "trigger.cron:"),
        (schedule(cron="0 2 * *"), "trigger.cron:"),
        (schedule(cron="0 2 * * *", time_zone="Mars/Olympus"), "trigger.time_zone:"),
        (schedule(cron="0 2 * * *", every="5m"), "trigger: exactly one of cron or every"),
        (schedule(), "trigger: exactly one of cron or every"),
        (schedule(every="500ms"), "trigger.every: must be at least 1 s"),
        (schedule(every="soon"), "trigger.every:"),
        ({**schedule(every="5s"), "run": {"name": "x"}}, "run.job:"),
        ({**schedule(every="5s"), "concurrency_policy": "sometimes"}, "concurrency_policy:"),
        ({**schedule(every="5s"), "starting_deadline": "1 hour"}, "starting_deadline:"),
    ],
)
def test_bad_input_names_the_field(data: dict[str, object], field: str) -> None:
    with pytest.raises(ScheduleError) as error:
        parse_schedule(data)
    assert str(error.value).startswith(field), str(error.value)


def test_the_example_schedule_loads_with_its_run_spec() -> None:
    spec = load_schedule(REPO / "examples" / "mnist" / "nightly.yaml")
    assert spec.trigger.cron == "0 2 * * *" and spec.trigger.time_zone == "Europe/Rome"
    assert spec.run.name and all(Path(p).is_absolute() for p in spec.run.inputs.values())
