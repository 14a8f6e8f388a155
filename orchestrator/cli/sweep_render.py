"""A sweep's leaderboard (rich) and its plot (matplotlib, Agg: no display needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.table import Table
from rich.text import Text

from orchestrator.cli.render import STATUS_STYLE
from orchestrator.domain.status import RunStatus

# Trials listed by `status` and `watch` (the leaderboard's top; --json has all).
MAX_ROWS = 40


def _value(value: Any) -> str:
    return "-" if value is None else f"{value:.6g}"


def leaderboard_table(view: dict[str, Any]) -> Table:
    objective = view["objective"]
    counts = " ".join(f"{k}={v}" for k, v in sorted(view["counts"].items()))
    title = f"sweep {view['sweep_id']} ({view['name']}): {view['status']}"
    if view.get("reason"):
        title += f" ({view['reason']})"
    table = Table(
        title=title,
        caption=f"{objective['goal']} {objective['primary_metric']}  {counts}  "
        f"(* best; trial runs are {view['sweep_id']}-<#>)",
        title_justify="left",
        caption_justify="left",
    )
    # The run id is `<sweep_id>-<#>`: the column of indexes names every trial's run.
    table.add_column("#", justify="right")
    table.add_column("status")
    table.add_column(objective["primary_metric"], justify="right")
    table.add_column("intervals", justify="right")
    table.add_column("parameters")
    best = (view.get("best") or {}).get("run_id")
    for trial in view["trials"][:MAX_ROWS]:
        status = trial["status"] + (f" ({trial['reason']})" if trial["reason"] else "")
        if trial["reason"] == "early_terminated":
            status = f"stopped early (interval {trial['stopped_at_interval']})"
        style = STATUS_STYLE.get(RunStatus(trial["status"]), "")
        params = " ".join(
            f"{k}={_value(v) if isinstance(v, float) else v}"
            for k, v in trial["parameters"].items()
        )
        mark = "*" if trial["run_id"] == best else ""
        table.add_row(
            f"{trial['index']}{mark}",
            Text(status, style=style),
            _value(trial["value"]),
            str(len(trial["series"])),
            params,
        )
    return table


def plot_sweep(view: dict[str, Any], out: Path) -> None:
    """The primary metric of every trial against its interval: stopped trials
    end with an x, the best trial is drawn thick and labelled."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metric = view["objective"]["primary_metric"]
    best = (view.get("best") or {}).get("run_id")
    figure, axes = plt.subplots(figsize=(9, 5.5), dpi=110)
    for trial in sorted(view["trials"], key=lambda t: t["index"]):
        series = trial["series"]
        if not series:
            continue
        intervals = list(range(1, len(series) + 1))
        is_best = trial["run_id"] == best
        params = ", ".join(
            f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
            for k, v in trial["parameters"].items()
        )
        label = f"#{trial['index']} {params}" + (" (best)" if is_best else "")
        (line,) = axes.plot(
            intervals,
            series,
            marker="o",
            markersize=3,
            linewidth=3.0 if is_best else 1.2,
            alpha=1.0 if is_best else 0.75,
            label=label,
            zorder=3 if is_best else 2,
        )
        if trial["reason"] == "early_terminated":
            axes.plot(
                intervals[-1:], series[-1:], marker="x", markersize=10, color=line.get_color()
            )
    axes.set_xlabel("interval (one printed value each)")
    axes.set_ylabel(metric)
    goal = view["objective"]["goal"]
    axes.set_title(f"sweep {view['sweep_id']} ({view['name']}): {goal} {metric}; x = stopped early")
    axes.grid(True, alpha=0.3)
    if axes.lines:
        axes.legend(fontsize=7, loc="best")
    figure.tight_layout()
    figure.savefig(out)
    plt.close(figure)
