"""Sweep specs: every refusal names its field; trials are run specs with the values merged."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from orchestrator.domain.sweep import (
    MIN_ENDED_FOR_FAILURE_RULE,
    Bandit,
    Choice,
    Goal,
    LogUniform,
    MedianStopping,
    SamplingAlgorithm,
    SweepError,
    SweepSpec,
    TruncationSelection,
    load_sweep,
    parse_sweep,
)

REPO = Path(__file__).resolve().parents[3]
TRIAL: dict[str, Any] = {
    "name": "mnist",
    "job": {"script": "ConvNet_MNIST.py", "max_wall_clock": "PT2H"},
    "inputs": {"SAMPLE": "./sample"},
    "parameters": {"epochs": 15, "batch": 32},
    "tags": {"team": "vision"},
}
SWEEP: dict[str, Any] = {
    "name": "mnist-lr",
    "trial": TRIAL,
    "search_space": {
        "lr": {"type": "loguniform", "min_value": 0.0001, "max_value": 0.1},
        "epochs": {"type": "choice", "values": [5, 10, 15]},
    },
    "objective": {"primary_metric": "test_error", "goal": "minimize"},
    "limits": {"max_total_trials": 20, "max_concurrent_trials": 4},
}


def sweep(**patch: Any) -> SweepSpec:
    return parse_sweep({**SWEEP, **patch})


def refusal(data: Any, base_dir: Path | None = None) -> str:
    with pytest.raises(SweepError) as caught:
        parse_sweep(data, base_dir)
    return str(caught.value)


def test_defaults_and_types() -> None:
    spec = sweep()
    assert spec.sampling_algorithm is SamplingAlgorithm.RANDOM
    assert spec.seed == 0
    assert spec.objective.goal is Goal.MINIMIZE
    assert spec.early_termination is None
    assert isinstance(spec.search_space["lr"], LogUniform)
    assert isinstance(spec.search_space["epochs"], Choice)
    assert spec.search_space["epochs"].is_discrete and not spec.search_space["lr"].is_discrete
    assert list(spec.search_space) == ["lr", "epochs"]  # the file's order is kept
    assert spec.total_trials == 20


@pytest.mark.parametrize(
    ("patch", "expected"),
    [
        (
            {
                "sampling_algorithm": "grid",
                "search_space": {"lr": {"type": "uniform", "min_value": 0, "max_value": 1}},
            },
            "search_space.lr: grid sampling needs every parameter to be a choice, not uniform",
        ),
        (
            {"search_space": {"lr": {"type": "uniform", "min_value": 1, "max_value": 1}}},
            "search_space.lr.max_value: min_value (1.0) must be below max_value (1.0)",
        ),
        (
            {"search_space": {"lr": {"type": "loguniform", "min_value": 0, "max_value": 1}}},
            "search_space.lr.min_value: Input should be greater than 0",
        ),
        (
            {"search_space": {"lr": {"type": "logunifrom", "min_value": 0.1, "max_value": 1}}},
            "search_space.lr.type: 'logunifrom' is not one of 'choice', 'uniform',",
        ),
        ({"search_space": {"lr": {"min_value": 0.1}}}, "search_space.lr.type: is required"),
        (
            {"search_space": {"lr": {"type": "choice", "values": [1, 1.0, True, 1]}}},
            "search_space.lr.values: 1 is listed twice",  # 1.0 and True are other values
        ),
        ({"search_space": {"lr": {"type": "choice", "values": []}}}, "search_space.lr.values"),
        ({"search_space": {"lr": {"type": "randint", "upper": 0}}}, "search_space.lr.upper"),
        (
            {"search_space": {"lr": {"type": "normal", "mu": 0, "sigma": 0}}},
            "search_space.lr.sigma",
        ),
        (
            {
                "search_space": {
                    "lr": {"type": "quniform", "min_value": 0.1, "max_value": 0.9, "q": 1}
                }
            },
            "search_space.lr.q: no multiple of 1.0 lies between min_value and max_value",
        ),
        (
            {"search_space": {"lr": {"type": "uniform", "min_value": 0, "max_value": 1, "x": 1}}},
            "search_space.lr.x: Extra inputs are not permitted",
        ),
        ({"search_space": {"bad name": {"type": "randint", "upper": 2}}}, "search_space.bad name:"),
        ({"search_space": {}}, "search_space: Dictionary should have at least 1 item"),
        (
            {"search_space": {f"p{i}": {"type": "randint", "upper": 2} for i in range(51)}},
            "search_space: Dictionary should have at most 50 items",
        ),
        (
            {"limits": {"max_total_trials": 2, "max_concurrent_trials": 3}},
            "limits.max_concurrent_trials: must be at most max_total_trials (2), not 3",
        ),
        ({"limits": {"max_total_trials": 1001}}, "limits.max_total_trials"),
        ({"limits": {"max_total_trials": 2, "timeout": "2h"}}, "limits.timeout: '2h' is not"),
        ({"limits": {"max_total_trials": 2, "trial_timeout": "P31D"}}, "limits.trial_timeout"),
        ({"objective": {"primary_metric": "a b", "goal": "minimize"}}, "objective.primary_metric"),
        ({"objective": {"primary_metric": "x", "goal": "lowest"}}, "objective.goal"),
        ({"early_termination": {"type": "bandit"}}, "early_termination: needs exactly one of"),
        (
            {"early_termination": {"type": "bandit", "slack_factor": 0.1, "slack_amount": 0.1}},
            "early_termination: needs exactly one of slack_factor or slack_amount",
        ),
        (
            {"early_termination": {"type": "truncation_selection", "truncation_percentage": 100}},
            "early_termination.truncation_percentage: Input should be less than or equal to 99",
        ),
        (
            {"early_termination": {"type": "median_stopping", "evaluation_interval": 0}},
            "early_termination.evaluation_interval",
        ),
        ({"early_termination": {"type": "hyperband"}}, "early_termination.type: 'hyperband'"),
        ({"sampling_algorithm": "sobol"}, "sampling_algorithm"),
        ({"name": "x" * 33}, "name"),
        ({"bogus": 1}, "bogus: Extra inputs are not permitted"),
        # A trial problem is named inside the trial.
        (
            {"trial": {**TRIAL, "job": {"script": "/abs.py"}}},
            "trial.job.script: must be a relative",
        ),
        ({"trial": {**TRIAL, "clutser": {}}}, "trial.clutser: Extra inputs are not permitted"),
        ({"trial": 3}, "trial: Input should be a valid dictionary"),
        # The merged trial must itself be a valid run: 50 tags plus sweep_trial is 51.
        (
            {"trial": {**TRIAL, "tags": {f"t{i}": "v" for i in range(50)}}},
            "trial.tags: at most 50 tags, not 51",
        ),
    ],
)
def test_bad_fields_are_named(patch: dict[str, Any], expected: str) -> None:
    message = refusal({**SWEEP, **patch})
    assert expected in message
    assert "\n" not in message
    # The tag pydantic puts in a tagged union's location is not shown to the user.
    assert ".loguniform" not in message and ".bandit" not in message and "[key]" not in message


def test_a_trial_path_needs_the_sweep_folder() -> None:
    assert refusal({**SWEEP, "trial": "./run.yaml"}) == (
        "trial: a trial path needs the sweep file's folder; give the run spec inline"
    )


def test_a_trial_path_resolves_inputs_against_the_trial_file(tmp_path: Path) -> None:
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "run.json").write_text(json.dumps(TRIAL))
    spec = parse_sweep({**SWEEP, "trial": "runs/run.json"}, tmp_path)
    assert spec.trial.inputs["SAMPLE"] == str((tmp_path / "runs" / "sample").resolve())
    inline = parse_sweep(SWEEP, tmp_path)  # inline: against the sweep's own folder
    assert inline.trial.inputs["SAMPLE"] == str((tmp_path / "sample").resolve())


def test_a_bad_trial_file_is_reported_with_the_trial_prefix(tmp_path: Path) -> None:
    (tmp_path / "run.yaml").write_text("name: x\njob: {script: ../a.py}\ninputs: {S: ./s}\n")
    assert refusal({**SWEEP, "trial": "run.yaml"}, tmp_path).startswith("trial.job.script: ")
    message = refusal({**SWEEP, "trial": "missing.yaml"}, tmp_path)
    assert message.startswith("trial: cannot read ") and "missing.yaml" in message
    (tmp_path / "list.yaml").write_text("- a\n")
    assert refusal({**SWEEP, "trial": "list.yaml"}, tmp_path).startswith("trial: must be a run")


def test_limits() -> None:
    limits = sweep(
        limits={"max_total_trials": 7, "timeout": "PT2H", "trial_timeout": "PT30M"}
    ).limits
    assert limits.max_concurrent_trials == 1
    assert (limits.timeout_seconds, limits.trial_timeout_seconds) == (7200, 1800)
    assert limits.failure_threshold == 4  # ceil(7 / 2)
    assert sweep(limits={"max_total_trials": 1}).limits.failure_threshold == 1
    assert sweep().limits.timeout_seconds is None
    # Only a trial's timeout is capped (it becomes job.max_wall_clock), not the sweep's.
    assert sweep(limits={"max_total_trials": 1, "timeout": "P60D"}).limits.timeout == "P60D"


def test_the_default_failure_rule_waits_for_ended_trials() -> None:
    limits = sweep(limits={"max_total_trials": 4}).limits
    assert limits.failure_threshold == 2
    assert not limits.too_many_failures(failed=3, ended=MIN_ENDED_FOR_FAILURE_RULE - 1)
    assert limits.too_many_failures(failed=2, ended=MIN_ENDED_FOR_FAILURE_RULE)
    assert not limits.too_many_failures(failed=1, ended=MIN_ENDED_FOR_FAILURE_RULE)
    explicit = sweep(limits={"max_total_trials": 20, "max_failed_trials": 1}).limits
    assert explicit.failure_threshold == 1
    assert explicit.too_many_failures(failed=1, ended=1)  # explicit: at once


def test_early_termination_policies() -> None:
    median = sweep(early_termination={"type": "median_stopping", "delay_evaluation": 5})
    assert median.early_termination == MedianStopping(
        type="median_stopping", evaluation_interval=1, delay_evaluation=5
    )
    bandit = sweep(early_termination={"type": "bandit", "slack_amount": 1}).early_termination
    assert isinstance(bandit, Bandit) and bandit.slack_factor is None
    truncation = sweep(
        early_termination={"type": "truncation_selection", "truncation_percentage": 20}
    ).early_termination
    assert isinstance(truncation, TruncationSelection) and truncation.truncation_percentage == 20


def test_grid_total_is_the_smaller_of_the_grid_and_the_limit() -> None:
    space = {
        "a": {"type": "choice", "values": [1, 2]},
        "b": {"type": "choice", "values": ["x", "y", "z"]},
    }
    assert sweep(sampling_algorithm="grid", search_space=space).total_trials == 6
    small = {"max_total_trials": 4, "max_concurrent_trials": 2}
    assert sweep(sampling_algorithm="grid", search_space=space, limits=small).total_trials == 4


def test_trial_spec_merges_values_tags_and_the_trial_timeout() -> None:
    spec = sweep(limits={"max_total_trials": 5, "trial_timeout": "PT30M"})
    trial = spec.trial_spec(3, {"lr": 0.01, "epochs": 5})
    assert trial.parameters == {"epochs": 5, "batch": 32, "lr": 0.01}  # the sweep's value wins
    assert trial.tags == {"team": "vision", "sweep_trial": "3"}
    assert trial.job.max_wall_clock == "PT30M"
    assert trial.job_args()[-6:] == ["--epochs", "5", "--batch", "32", "--lr", "0.01"]
    assert sweep().trial_spec(0, {}).job.max_wall_clock == "PT2H"  # no trial_timeout: kept
    with pytest.raises(SweepError, match=r"trial\.parameters\.lr"):
        spec.trial_spec(0, {"lr": float("nan")})


def test_fingerprint_follows_content_and_survives_a_round_trip() -> None:
    spec = sweep()
    assert spec.fingerprint() == sweep().fingerprint()
    assert spec.fingerprint() != sweep(seed=1).fingerprint()
    assert parse_sweep(spec.model_dump(mode="json")) == spec


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"name: [unclosed\n", "sweep: "),
        (b"\xff\xfe", "is not UTF-8 text"),
        (b"- a list\n", "sweep: must be a mapping"),
    ],
)
def test_load_reports_a_bad_file_in_one_line(tmp_path: Path, content: bytes, problem: str) -> None:
    path = tmp_path / "sweep.yaml"
    path.write_bytes(content)
    with pytest.raises(SweepError) as caught:
        load_sweep(path)
    assert problem in str(caught.value) and "\n" not in str(caught.value)


def test_the_mnist_example_loads() -> None:
    spec = load_sweep(REPO / "examples" / "mnist" / "sweep.yaml")
    assert spec.trial.job.script == "ConvNet_MNIST.py"
    assert spec.trial.inputs["SAMPLE"] == str(REPO / "examples" / "mnist" / "sample")
    assert set(spec.search_space) == {"lr", "epochs"}
    assert spec.search_space["epochs"] == Choice(type="choice", values=[4, 8, 12])
    assert spec.sampling_algorithm is SamplingAlgorithm.RANDOM and spec.seed == 7
    assert (spec.objective.primary_metric, spec.objective.goal) == ("val_error", Goal.MINIMIZE)
    assert (spec.limits.max_total_trials, spec.limits.max_concurrent_trials) == (8, 4)
    assert spec.early_termination == MedianStopping(
        type="median_stopping", evaluation_interval=1, delay_evaluation=2
    )
