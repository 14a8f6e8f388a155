import pytest

from orchestrator.observability.training_metrics import parse_metrics

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
