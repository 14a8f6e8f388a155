"""Sampling: grid order, random and bayesian reproducibility, values inside their bounds."""

from __future__ import annotations

import math
from typing import Any

import pytest

from orchestrator.domain.sampling import FinishedTrial, grid_size, suggest
from orchestrator.domain.spec import ParameterValue, parse_spec
from orchestrator.domain.sweep import SweepSpec, parse_sweep

TRIAL = {"name": "t", "job": {"toolkit": "custom", "command": "train"}}
SPACE: dict[str, Any] = {
    "lr": {"type": "loguniform", "min_value": 0.0001, "max_value": 0.1},
    "momentum": {"type": "uniform", "min_value": 0.5, "max_value": 0.99},
    "layers": {"type": "randint", "upper": 4},
    "dropout": {"type": "quniform", "min_value": 0.05, "max_value": 0.5, "q": 0.1},
    "noise": {"type": "normal", "mu": 1.0, "sigma": 0.5},
    "optimizer": {"type": "choice", "values": ["adam", "sgd", 1, 1.0, True]},
}


def sweep(algorithm: str, space: dict[str, Any] | None = None, **extra: Any) -> SweepSpec:
    return parse_sweep(
        {
            "name": "s",
            "trial": TRIAL,
            "search_space": space or SPACE,
            "sampling_algorithm": algorithm,
            "objective": {"primary_metric": "loss", "goal": extra.pop("goal", "minimize")},
            "limits": {"max_total_trials": 100},
            **extra,
        }
    )


def assert_in_space(point: dict[str, ParameterValue]) -> None:
    assert list(point) == list(SPACE)
    lr, momentum = point["lr"], point["momentum"]
    assert isinstance(lr, float) and 0.0001 <= lr <= 0.1
    assert isinstance(momentum, float) and 0.5 <= momentum <= 0.99
    assert type(point["layers"]) is int and point["layers"] in range(4)
    # Multiples of q inside the range, without binary noise.
    assert point["dropout"] in {0.1, 0.2, 0.3, 0.4, 0.5}
    assert isinstance(point["noise"], float) and math.isfinite(point["noise"])
    assert any(
        type(point["optimizer"]) is type(value) and point["optimizer"] == value
        for value in SPACE["optimizer"]["values"]
    )
    # Every point is a valid run parameter set (finite floats, bounded strings).
    parse_spec({**TRIAL, "parameters": point})


def test_grid_walks_the_product_in_order_last_key_fastest() -> None:
    spec = sweep(
        "grid",
        {
            "a": {"type": "choice", "values": [1, 2]},
            "b": {"type": "choice", "values": ["x", "y", "z"]},
        },
    )
    assert grid_size(spec) == 6
    points = [suggest(spec, index, []) for index in range(6)]
    assert points == [
        {"a": 1, "b": "x"},
        {"a": 1, "b": "y"},
        {"a": 1, "b": "z"},
        {"a": 2, "b": "x"},
        {"a": 2, "b": "y"},
        {"a": 2, "b": "z"},
    ]
    with pytest.raises(IndexError):
        suggest(spec, 6, [])
    with pytest.raises(IndexError):
        suggest(spec, -1, [])


def test_random_depends_on_seed_and_index_only() -> None:
    spec = sweep("random", seed=7)
    first = [suggest(spec, index, []) for index in range(20)]
    finished = [FinishedTrial(point, 0.5) for point in first]
    assert [suggest(sweep("random", seed=7), i, finished) for i in range(20)] == first
    assert [suggest(sweep("random", seed=8), i, []) for i in range(20)] != first
    assert len({point["lr"] for point in first}) == 20  # the indices differ too
    for point in first:
        assert_in_space(point)


def test_random_covers_the_choices_and_draws_loguniform_in_log_space() -> None:
    spec = sweep("random", seed=3)
    points = [suggest(spec, index, []) for index in range(400)]
    assert {repr(point["optimizer"]) for point in points} == {"'adam'", "'sgd'", "1", "1.0", "True"}
    assert {point["layers"] for point in points} == {0, 1, 2, 3}
    assert {point["dropout"] for point in points} == {0.1, 0.2, 0.3, 0.4, 0.5}
    # Log-uniform over 1e-4..1e-1: a third of the draws per decade, not 90% in the top one.
    low = sum(1 for point in points if isinstance(point["lr"], float) and point["lr"] < 0.001)
    assert 90 < low < 180


def test_bayesian_is_reproducible_and_inside_the_bounds() -> None:
    spec = sweep("bayesian", seed=11)
    finished: list[FinishedTrial] = []
    for index in range(14):
        point = suggest(spec, index, finished)
        assert_in_space(point)
        assert suggest(spec, index, list(finished)) == point  # a retried step: the same values
        noise = point["noise"]
        assert isinstance(noise, float) and -1.0 <= noise <= 3.0  # mu +- 4 sigma
        lr = point["lr"]
        assert isinstance(lr, float)
        value = None if index % 5 == 4 else abs(math.log10(lr) + 2)  # best near lr = 0.01
        finished.append(FinishedTrial(point, value))
    assert suggest(spec, 14, finished) != suggest(spec, 15, finished)
    assert suggest(sweep("bayesian", seed=12), 14, finished) != suggest(spec, 14, finished)


def test_bayesian_learns_from_finished_trials() -> None:
    # Past the random start-up trials, TPE proposes values near the best ones.
    spec = sweep("bayesian", {"x": {"type": "uniform", "min_value": 0, "max_value": 10}}, seed=1)
    finished = [FinishedTrial({"x": x / 2}, abs(x / 2 - 8)) for x in range(21)]
    points = [suggest(spec, index, finished)["x"] for index in range(21, 31)]
    near = [x for x in points if isinstance(x, float) and abs(x - 8) < 2.5]
    assert len(near) >= 6, points
    maximize = sweep(
        "bayesian",
        {"x": {"type": "uniform", "min_value": 0, "max_value": 10}},
        seed=1,
        goal="maximize",
    )
    points = [suggest(maximize, index, finished)["x"] for index in range(21, 31)]
    assert len([x for x in points if isinstance(x, float) and abs(x - 8) > 4]) >= 6, points


def test_bayesian_skips_trials_outside_the_space() -> None:
    spec = sweep("bayesian", seed=5)
    good = suggest(spec, 0, [])
    odd = [
        FinishedTrial({**good, "optimizer": "rmsprop"}, 0.1),  # not a choice
        FinishedTrial({**good, "lr": 5.0}, 0.1),  # out of range
        FinishedTrial({"lr": 0.01}, 0.1),  # missing keys
        FinishedTrial(good, float("nan")),  # counted as failed
    ]
    assert_in_space(suggest(spec, 1, odd))
