import json

import pytest

from orchestrator.observability.training_metrics import (
    MAX_METRIC_NAME_LENGTH,
    MAX_METRIC_SERIES,
    MAX_POINTS_PER_SERIES,
    MAX_TOTAL_POINTS,
    parse_metrics,
)

EPOCH_LINE = (
    "Finished Epoch[{n} of 3]: [Training] loss = {loss} * 60000, "
    "metric = {metric}% * 60000 0.88s (1640.5 samples/s);"
)
CNTK_STDOUT = "\n".join(
    [
        "Selected GPU[0] Tesla K80 as the process wide default device.",
        "Training 98778 parameters in 10 parameter tensors.",
        "Learning rate per minibatch: 0.001",
        EPOCH_LINE.format(n=1, loss="0.3512", metric="10.52"),
        EPOCH_LINE.format(n=2, loss="0.1023", metric="3.10"),
        EPOCH_LINE.format(n=3, loss="0.0612", metric="1.74"),
        "Final Results: Minibatch[1-11]: errs = 3.12% * 10000",
        "accuracy=0.9688",
    ]
)


def test_cntk_progress_and_final_results() -> None:
    parsed = parse_metrics(CNTK_STDOUT)
    assert parsed.series["train_loss"] == [0.3512, 0.1023, 0.0612]
    assert parsed.series["train_metric"] == pytest.approx([0.1052, 0.031, 0.0174])
    assert parsed.values["epoch"] == 3
    assert parsed.values["train_loss"] == 0.0612
    assert parsed.values["train_metric"] == pytest.approx(0.0174)
    assert parsed.values["test_error"] == pytest.approx(0.0312)
    assert parsed.values["accuracy"] == 0.9688


def test_older_cntk_ce_errs_form() -> None:
    parsed = parse_metrics(
        "Finished Epoch[ 2 of 10]: [Training] ce = 0.26 * 60000; errs = 7.6% * 60000; "
        "totalSamplesSeen = 60000; learningRatePerSample = 0.003125; epochTime=3.3s\n"
    )
    assert parsed.values == pytest.approx({"epoch": 2, "train_loss": 0.26, "train_metric": 0.076})


def test_plain_lines_last_value_wins_and_series_kept() -> None:
    parsed = parse_metrics("val/loss = 0.5\r\nval/loss=0.25\nlr=1e-3\n  top-1.acc = -0.5  \n")
    assert parsed.series["val/loss"] == [0.5, 0.25]
    assert parsed.values == {"val/loss": 0.25, "lr": 0.001, "top-1.acc": -0.5}


@pytest.mark.parametrize(
    "garbage",
    [
        "",
        "name=abc",
        "1abc=3",
        "x=3 y=4",
        "x=nan",
        "x=inf",
        "x=1e999",
        "Finished Epoch[: [Training] loss = ",
        "Final Results: Minibatch[1-11]: errs = %",
        "\x00\xff binary \x1b[31m=",
        "=5",
        "a" * 100_000 + "=1.5.5",
    ],
)
def test_garbage_is_ignored(garbage: str) -> None:
    parsed = parse_metrics(garbage)
    assert parsed.values == {} and parsed.series == {}


def test_garbage_around_metrics() -> None:
    parsed = parse_metrics("\x1b[2K progress 45%\rloss=0.3\n\n\x00junk=\nloss=oops\n")
    assert parsed.values == {"loss": 0.3}


def test_a_short_log_is_not_truncated() -> None:
    assert not parse_metrics(CNTK_STDOUT).truncated


def test_a_series_keeps_its_last_points() -> None:
    lines = "".join(f"loss={i}\n" for i in range(MAX_POINTS_PER_SERIES + 5))
    parsed = parse_metrics(lines)
    assert parsed.truncated
    points = parsed.series["loss"]
    assert len(points) == MAX_POINTS_PER_SERIES
    assert points[0] == 5 and points[-1] == MAX_POINTS_PER_SERIES + 4
    assert parsed.values["loss"] == MAX_POINTS_PER_SERIES + 4


def test_exactly_at_the_cap_is_not_truncated() -> None:
    lines = "".join(f"loss={i}\n" for i in range(MAX_POINTS_PER_SERIES))
    assert not parse_metrics(lines).truncated


def test_names_past_the_series_cap_or_too_long_are_left_out() -> None:
    names = [f"m{i}" for i in range(MAX_METRIC_SERIES + 10)]
    parsed = parse_metrics("".join(f"{name}=1\n" for name in names))
    assert list(parsed.series) == names[:MAX_METRIC_SERIES]
    assert set(parsed.values) == set(names[:MAX_METRIC_SERIES])
    assert parsed.truncated
    # Points of a name already kept still count after the cap is reached.
    parsed = parse_metrics("".join(f"{name}=1\n" for name in names) + "m0=2\n")
    assert parsed.series["m0"] == [1, 2] and parsed.values["m0"] == 2

    long_name = "a" * (MAX_METRIC_NAME_LENGTH + 1)
    parsed = parse_metrics(f"{long_name}=1\n{'b' * MAX_METRIC_NAME_LENGTH}=2\n")
    assert parsed.values == {"b" * MAX_METRIC_NAME_LENGTH: 2} and parsed.truncated


def test_all_series_together_stay_within_the_total_budget() -> None:
    # 20 long series and one short one: the short one is kept whole, the long
    # ones share the rest equally, each keeping its last points.
    long_names = [f"m{i}" for i in range(20)]
    rounds = MAX_TOTAL_POINTS // 10
    stdout = "short=1\nshort=2\n" + "".join(
        f"{name}={r}\n" for r in range(rounds) for name in long_names
    )
    parsed = parse_metrics(stdout)
    series = parsed.series
    assert parsed.truncated
    assert series["short"] == [1, 2]
    share = (MAX_TOTAL_POINTS - 2) // 20  # the remainder goes one point at a time
    assert {len(series[name]) for name in long_names} <= {share, share + 1}
    assert sum(map(len, series.values())) == MAX_TOTAL_POINTS
    kept = len(series["m7"])
    assert series["m7"] == list(range(rounds - kept, rounds))


def test_millions_of_lines_make_a_bounded_record() -> None:
    # The finding: 300k `name=value` lines made an 11.5 MB run record.
    stdout = "".join(f"metric_{i % 150}={i}.123456789\n" for i in range(300_000))
    parsed = parse_metrics(stdout)
    size = len(json.dumps({"metrics": parsed.values, "metric_series": parsed.series}))
    assert parsed.truncated and size < 1_500_000
