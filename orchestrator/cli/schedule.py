"""`orchestrator schedule add | ls | show | pause | resume | trigger | rm`, through Redis."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from orchestrator.azure.errors import AzureGatewayError
from orchestrator.cli.common import CliError, open_store
from orchestrator.domain.access import CLI_NAME

app = typer.Typer(
    help="Nightly retraining: runs fired on a cron or interval.", no_args_is_help=True
)
Name = Annotated[str, typer.Argument(metavar="NAME")]
Json = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def _book() -> Any:
    from orchestrator.store.schedules import ScheduleBook

    store = open_store()
    return ScheduleBook(store.redis, store.keys)


def _show(data: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(data, indent=2))
        return
    state = "paused" if data["suspended"] else "active"
    trigger = data["definition"]["trigger"]
    when = trigger["cron"] or f"every {trigger['every']}"
    print(f"{data['name']}  {state}  {when} ({trigger['time_zone']})")
    for moment in data["next_fire_times"]:
        print(f"  next {moment}")
    for entry in data["history"]:
        started = entry["run_id"] or entry.get("sweep_id") or ""
        print(f"  {entry['tick']}  {entry['outcome']}  {started}")


@app.command("add")
def add_command(
    name: Name,
    spec: Annotated[Path | None, typer.Option("--spec", help="Run spec (YAML or JSON).")] = None,
    sweep: Annotated[
        Path | None, typer.Option("--sweep", help="Sweep spec: every tick starts a sweep.")
    ] = None,
    cron: Annotated[str | None, typer.Option(help="5-field cron expression.")] = None,
    tz: Annotated[str, typer.Option("--tz", help="IANA time zone of the cron.")] = "UTC",
    every: Annotated[str | None, typer.Option(help="Interval: 30s, 5m, 1h, PT30S.")] = None,
    param: Annotated[list[str] | None, typer.Option("--param", help="key=value")] = None,
    concurrency: Annotated[str, typer.Option(help="allow | forbid | replace")] = "forbid",
    starting_deadline: Annotated[str, typer.Option(help="e.g. PT1H")] = "PT1H",
    as_json: Json = False,
) -> None:
    """Add a schedule of a run (--spec) or of a sweep (--sweep); an existing NAME is an error."""
    from orchestrator.chain.enqueue import direct_uploads
    from orchestrator.chain.schedules import schedule_view
    from orchestrator.domain.spec import SpecError, load_spec
    from orchestrator.domain.sweep import SweepError, load_sweep
    from orchestrator.inputs.checks import InputRejected, check_inputs
    from orchestrator.inputs.local import LocalInputError
    from orchestrator.inputs.submit import upload_local_inputs
    from orchestrator.settings import get_settings
    from orchestrator.store.schedules import require_no_eviction

    if (spec is None) == (sweep is None):
        raise CliError("give exactly one of --spec RUN.yaml or --sweep SWEEP.yaml")
    target: Any
    try:
        target = load_spec(spec) if spec is not None else load_sweep(sweep or Path())
    except (SpecError, SweepError) as exc:
        where = "--spec" if spec is not None else "--sweep"
        raise CliError(f"{where}: {exc}") from None
    store = open_store()
    settings = get_settings()
    try:
        # Every tick's run names these uploads: no worker reads this machine's files.
        run = target if spec is not None else target.trial
        run, _ = upload_local_inputs(run, direct_uploads(settings, store))
        check_inputs(run, input_roots=settings.input_roots, book=store.uploads, now=time.time())
        target = target.model_copy(update={"trial": run}) if sweep is not None else run
        definition = _definition(
            name, target, cron, tz, every, param, concurrency, starting_deadline
        )
    except InputRejected as exc:
        raise CliError(f"invalid spec: {exc.dotted}: {exc}") from None
    except (SpecError, LocalInputError) as exc:
        raise CliError(str(exc)) from None
    except AzureGatewayError as exc:
        raise CliError(f"cannot upload the inputs: {exc}") from None
    book = _book()
    require_no_eviction(book.redis)
    _show(schedule_view(book, book.put(definition, mode="create", by=CLI_NAME)), as_json)


def _definition(
    name: str,
    target: Any,
    cron: str | None,
    tz: str,
    every: str | None,
    param: list[str] | None,
    concurrency: str,
    starting_deadline: str,
) -> Any:
    from orchestrator.cli.runs import _parse_params
    from orchestrator.domain.schedule import parse_schedule

    trigger: dict[str, Any] = {"time_zone": tz}
    if cron is not None:
        trigger["cron"] = cron
    if every is not None:
        trigger["every"] = every
    from orchestrator.domain.sweep import SweepSpec

    kind = "sweep" if isinstance(target, SweepSpec) else "run"
    return parse_schedule(
        {
            "name": name,
            "trigger": trigger,
            kind: target.model_dump(mode="json"),
            "parameters": _parse_params(param or []),
            "concurrency_policy": concurrency,
            "starting_deadline": starting_deadline,
        }
    )


@app.command("ls")
def ls_command(as_json: Json = False) -> None:
    from orchestrator.chain.schedules import schedule_view

    book = _book()
    items = [schedule_view(book, book.get(name)) for name in book.names()]
    if as_json:
        print(json.dumps(items, indent=2))
    for item in [] if as_json else items:
        _show({**item, "history": [], "next_fire_times": item["next_fire_times"][:1]}, False)


@app.command("show")
def show_command(name: Name, as_json: Json = False) -> None:
    from orchestrator.chain.schedules import schedule_view

    book = _book()
    _show(schedule_view(book, book.get(name)), as_json)


@app.command("pause")
def pause_command(name: Name) -> None:
    _book().set_suspended(name, True, by=CLI_NAME)
    print(f"{name} paused")


@app.command("resume")
def resume_command(name: Name) -> None:
    _book().set_suspended(name, False, by=CLI_NAME)
    print(f"{name} resumed")


@app.command("trigger")
def trigger_command(
    name: Name, key: Annotated[str | None, typer.Option("--idempotency-key")] = None
) -> None:
    from orchestrator.chain.schedules import ScheduleContext, trigger_now
    from orchestrator.settings import get_settings

    ctx = ScheduleContext(get_settings(), open_store())
    entry = trigger_now(ctx, name, request_key=key)
    print(f"{name} {entry.outcome.value} {entry.run_id}")


@app.command("rm")
def rm_command(name: Name) -> None:
    _book().delete(name)
    print(f"{name} deleted")


__all__ = ["CliError", "app"]
