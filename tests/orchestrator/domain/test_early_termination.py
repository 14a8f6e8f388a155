"""Early termination by Azure ML's policies, on hand-computed cases."""

from __future__ import annotations

import pytest

from orchestrator.domain.early_termination import (
    TrialProgress,
    best_index,
    is_better,
    trials_to_stop,
)
from orchestrator.domain.sweep import Bandit, Goal, MedianStopping, TruncationSelection

MIN, MAX = Goal.MINIMIZE, Goal.MAXIMIZE


def running(trial: str, *values: float) -> TrialProgress:
    return TrialProgress(trial, tuple(values), active=True)


def ended(trial: str, *values: float) -> TrialProgress:
    return TrialProgress(trial, tuple(values), active=False)


def median(interval: int = 1, delay: int = 0) -> MedianStopping:
    return MedianStopping(
        type="median_stopping", evaluation_interval=interval, delay_evaluation=delay
    )


def bandit(
    factor: float | None = None, amount: float | None = None, interval: int = 1, delay: int = 0
) -> Bandit:
    return Bandit(
        type="bandit",
        slack_factor=factor,
        slack_amount=amount,
        evaluation_interval=interval,
        delay_evaluation=delay,
    )


def truncation(percentage: int) -> TruncationSelection:
    return TruncationSelection(type="truncation_selection", truncation_percentage=percentage)


def test_helpers() -> None:
    assert is_better(MIN, 0.1, 0.2) and not is_better(MIN, 0.2, 0.2)
    assert is_better(MAX, 0.2, 0.1) and not is_better(MAX, 0.1, 0.1)
    assert best_index(MIN, [None, 0.3, 0.1, 0.1]) == 2  # the first of a tie
    assert best_index(MAX, [None, 0.3, 0.1, float("nan")]) == 1
    assert best_index(MIN, [None]) is None
    assert best_index(MAX, []) is None


def test_median_stops_a_trial_whose_best_is_worse_than_the_median_of_running_averages() -> None:
    trials = [
        ended("a", 0.5, 0.4, 0.3),  # running average up to 2: 0.45
        running("b", 0.3, 0.2),  # 0.25; best 0.2
        running("c", 0.6, 0.5),  # 0.55; best 0.5 > median 0.45: stopped
    ]
    assert trials_to_stop(median(), MIN, trials) == ["c"]
    flipped = [ended("a", 0.5, 0.6), running("b", 0.7, 0.8), running("c", 0.3, 0.4)]
    assert trials_to_stop(median(), MAX, flipped) == ["c"]  # median 0.55 > best 0.4


def test_median_uses_the_other_trials_values_up_to_the_same_interval_only() -> None:
    # a's average up to 2 is 0.6 (0.4 over all 3); the median of {0.6, 0.525} is 0.5625,
    # above c's best 0.5: c keeps running. Over a's three values c would be stopped.
    trials = [ended("a", 0.6, 0.6, 0.0), running("c", 0.55, 0.5)]
    assert trials_to_stop(median(), MIN, trials) == []
    # A trial that has not reached the interval is no comparison; alone, c is never stopped.
    assert trials_to_stop(median(), MIN, [running("young", 0.0), running("c", 0.55, 0.5)]) == []


def test_median_waits_for_delay_evaluation_and_evaluates_every_interval() -> None:
    peers = [ended("a", 0.1, 0.1, 0.1, 0.1), ended("b", 0.1, 0.1, 0.1, 0.1)]
    assert trials_to_stop(median(delay=3), MIN, [*peers, running("c", 0.9, 0.9)]) == []
    assert trials_to_stop(median(delay=3), MIN, [*peers, running("c", 0.9, 0.9, 0.9)]) == ["c"]
    # evaluation_interval 2 with delay 3: evaluated at 4, 6, ...; not at 3.
    assert trials_to_stop(median(2, 3), MIN, [*peers, running("c", 0.9, 0.9, 0.9)]) == []
    assert trials_to_stop(median(2, 3), MIN, [*peers, running("c", 0.9, 0.9, 0.9, 0.9)]) == ["c"]


def test_bandit_slack_factor_follows_azures_example() -> None:
    # Best 0.8 at the interval (an ended trial): stop below 0.8 / 1.2 = 0.667.
    trials = [ended("a", 0.8), running("b", 0.7), running("c", 0.6)]
    assert trials_to_stop(bandit(factor=0.2), MAX, trials) == ["c"]
    assert trials_to_stop(bandit(amount=0.15), MAX, trials) == ["c"]  # below 0.65
    assert trials_to_stop(bandit(amount=0.25), MAX, trials) == []  # below 0.55: none


def test_bandit_minimize_compares_the_value_at_the_interval() -> None:
    trials = [ended("a", 0.2), running("b", 0.21), running("c", 0.23)]
    assert trials_to_stop(bandit(factor=0.1), MIN, trials) == ["c"]  # above 0.22
    assert trials_to_stop(bandit(amount=0.02), MIN, trials) == ["c"]
    # d was best at interval 1, but its value at 2 (0.3) is past 0.2 * 1.1.
    trials = [ended("a", 0.2, 0.2), running("d", 0.1, 0.3), running("e", 0.01)]
    assert trials_to_stop(bandit(factor=0.1), MIN, trials) == ["d"]
    assert trials_to_stop(bandit(factor=0.1, delay=3), MIN, trials) == []


def test_truncation_stops_the_lowest_percentage_at_the_interval() -> None:
    trials = [ended("a", 0.1), running("b", 0.2), running("c", 0.3), running("d", 0.4)]
    assert trials_to_stop(truncation(25), MIN, trials) == ["d"]  # 4 * 25% = 1
    assert trials_to_stop(truncation(50), MIN, trials) == ["c", "d"]
    assert trials_to_stop(truncation(20), MIN, trials) == ["d"]  # 0.8 rounds down, at least 1
    assert trials_to_stop(truncation(99), MIN, trials) == ["b", "c", "d"]  # never the best
    assert trials_to_stop(truncation(25), MAX, trials) == []  # a, the lowest, has ended
    assert trials_to_stop(truncation(50), MAX, trials) == ["b"]


def test_truncation_counts_ended_trials_and_spares_level_ones() -> None:
    # The lowest is d, which ended: nothing is stopped at 25%.
    trials = [running("a", 0.1), running("b", 0.2), running("c", 0.3), ended("d", 0.4)]
    assert trials_to_stop(truncation(25), MIN, trials) == []
    level = [running("a", 0.5), running("b", 0.5), running("c", 0.5)]
    assert trials_to_stop(truncation(50), MIN, level) == []
    assert trials_to_stop(truncation(50), MIN, [running("only", 9.0)]) == []
    # The value at the interval, not the best so far: b is last at interval 2.
    trials = [ended("a", 0.1, 0.1), running("b", 0.05, 0.5), running("c", 0.2, 0.2)]
    assert trials_to_stop(truncation(30), MIN, trials) == ["b"]


@pytest.mark.parametrize("order", [1, -1])
def test_the_result_is_sorted(order: int) -> None:
    trials = [ended("best", 0.0), running("t2", 0.9), running("t10", 0.8)]
    assert trials_to_stop(bandit(amount=0.1), MIN, trials[::order]) == ["t10", "t2"]
