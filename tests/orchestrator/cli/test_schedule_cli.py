"""`orchestrator schedule add` on a real Redis: each bad input is a non-zero exit and
one error line naming what is wrong, and nothing is written."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis
import yaml

from orchestrator.store import Keys
from tests.support.cli import run_cli

pytestmark = pytest.mark.integration

RUN = {
    "name": "nightly",
    "job": {"script": "train.py"},
    "inputs": {"DATA": "share:etl/latest"},
}


@pytest.fixture
def run_file(tmp_path: Path) -> Path:
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(RUN))
    return path


@pytest.mark.parametrize(
    ("options", "named"),
    [
        (["--cron", "0 25 * * *"], "trigger.cron"),
        (["--cron", "0 2 * * *", "--tz", "Mars/Olympus"], "trigger.time_zone"),
        (["--cron", "0 2 * * *", "--every", "5m"], "trigger"),
        ([], "trigger"),
        (["--every", "500ms"], "trigger.every"),
        (["--every", "5m", "--concurrency", "sometimes"], "concurrency_policy"),
        (["--every", "5m", "--starting-deadline", "soon"], "starting_deadline"),
    ],
    ids=["bad-cron", "unknown-zone", "cron-and-every", "neither", "under-1s", "policy", "deadline"],
)
def test_bad_schedules_exit_non_zero_with_one_line_naming_the_field(
    env: str,
    run_file: Path,
    capsys: pytest.CaptureFixture[str],
    options: list[str],
    named: str,
) -> None:
    code, out, err = run_cli(
        ["schedule", "add", "nightly", "--spec", str(run_file), *options], capsys
    )
    assert code != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ") and named in lines[0], lines[0]
    assert out == ""
    assert redis.Redis.from_url(env).zcard(Keys().schedules) == 0, "nothing written"


def test_an_invalid_run_spec_is_one_line_naming_its_field(
    env: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({**RUN, "job": {"toolkit": "cntk"}}))
    code, _, err = run_cli(["schedule", "add", "n", "--spec", str(bad), "--every", "5m"], capsys)
    assert code != 0
    assert len(err.strip().splitlines()) == 1 and "job" in err, err


def test_spec_and_sweep_together_or_neither_is_one_line(
    env: str, run_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for target in ([], ["--spec", str(run_file), "--sweep", str(run_file)]):
        code, _, err = run_cli(["schedule", "add", "n", "--every", "5m", *target], capsys)
        assert code != 0
        assert err.strip() == "error: give exactly one of --spec RUN.yaml or --sweep SWEEP.yaml"


def test_a_good_schedule_of_a_sweep_is_added(
    env: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(
        yaml.safe_dump(
            {
                "name": "nightly-lr",
                "trial": RUN,
                "search_space": {"lr": {"type": "choice", "values": [0.1, 0.2]}},
                "objective": {"primary_metric": "loss", "goal": "minimize"},
                "limits": {"max_total_trials": 2, "max_concurrent_trials": 2},
            }
        )
    )
    code, out, err = run_cli(
        ["schedule", "add", "lr", "--sweep", str(sweep), "--cron", "0 2 * * *", "--json"], capsys
    )
    assert code == 0, err
    import json

    view = json.loads(out)
    assert view["definition"]["sweep"]["name"] == "nightly-lr"
    assert view["definition"]["run"] is None
    assert len(view["next_fire_times"]) == 5
