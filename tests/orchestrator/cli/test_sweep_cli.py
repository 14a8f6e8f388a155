"""`orchestrator sweep ...` on a real Redis: bad specs give one error line each."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.support.cli import run_cli

pytestmark = pytest.mark.integration

TRIAL = {
    "name": "mnist",
    "job": {"script": "train.py"},
    "inputs": {"SAMPLE": "share:data/mnist"},
}


def _write(tmp_path: Path, **changes: object) -> Path:
    sweep = {
        "name": "mnist-lr",
        "trial": TRIAL,
        "search_space": {"lr": {"type": "loguniform", "min_value": 0.001, "max_value": 0.1}},
        "objective": {"primary_metric": "test_error", "goal": "minimize"},
        "limits": {"max_total_trials": 4, "max_concurrent_trials": 2},
    }
    sweep.update(changes)
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(sweep))
    return path


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"sampling_algorithm": "grid"}, "search_space.lr"),
        (
            {"search_space": {"lr": {"type": "uniform", "min_value": 1, "max_value": 0}}},
            "search_space.lr",
        ),
        ({"search_space": {"lr": {"type": "gaussian"}}}, "search_space.lr"),
        (
            {"limits": {"max_total_trials": 1, "max_concurrent_trials": 2}},
            "limits.max_concurrent_trials",
        ),
        ({"trial": "missing.yaml"}, "missing.yaml"),
    ],
)
def test_bad_sweep_specs_exit_non_zero_with_one_line(
    env: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    changes: dict[str, object],
    field: str,
) -> None:
    code, out, err = run_cli(["sweep", "submit", str(_write(tmp_path, **changes))], capsys)
    assert code != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ") and field in lines[0]
    assert out == ""


def test_an_unknown_sweep_is_one_error_line(env: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(["sweep", "status", "sw404"], capsys)
    assert code == 1
    assert err.strip() == "error: no sweep 'sw404'"


def test_plot_refuses_a_path_that_is_not_png(
    env: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_cli(["sweep", "plot", "sw1", "--out", str(tmp_path / "x.jpg")], capsys)
    assert code == 1
    assert "--out" in err and len(err.strip().splitlines()) == 1


def test_plot_draws_every_trial_and_marks_the_stopped_ones(tmp_path: Path) -> None:
    from orchestrator.cli.sweep_render import plot_sweep

    def trial(index: int, series: list[float], reason: str | None = None) -> dict[str, object]:
        status = "cancelled" if reason else "succeeded"
        return {
            "index": index,
            "run_id": f"sw1-{index}",
            "status": status,
            "reason": reason,
            "parameters": {"lr": 0.1 * (index + 1)},
            "series": series,
        }

    view = {
        "sweep_id": "sw1",
        "name": "demo",
        "objective": {"primary_metric": "loss", "goal": "minimize"},
        "best": {"run_id": "sw1-0", "parameters": {"lr": 0.1}, "value": 0.1},
        "trials": [trial(0, [0.5, 0.3, 0.1]), trial(1, [0.9, 0.8], "early_terminated")],
    }
    out = tmp_path / "plot.png"
    plot_sweep(view, out)
    assert out.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    import matplotlib.image

    pixels = matplotlib.image.imread(out)
    assert pixels.shape[0] > 300 and pixels.shape[1] > 500
    # Not a blank canvas: lines of several colours were drawn.
    assert len({tuple(p) for p in pixels.reshape(-1, pixels.shape[2])[::97]}) > 10
