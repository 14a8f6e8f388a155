"""`orchestrator submit | status | cancel`: runs through Redis (store + broker)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import redis
import typer
import yaml

from orchestrator.azure.errors import AzureGatewayError
from orchestrator.cli.common import CliError, api_client, open_store
from orchestrator.cli.follow import FollowTimeout, follow_run
from orchestrator.cli.render import error_text, shown_step_state, status_text
from orchestrator.cli.terminal import one_line
from orchestrator.domain.access import CLI_NAME
from orchestrator.domain.spec import RunSpec, SpecError, load_spec
from orchestrator.domain.status import STEP_ORDER, RunStatus
from orchestrator.settings import get_settings
from orchestrator.store import RunEvent, RunNotFound, RunRecord, RunStore

if TYPE_CHECKING:
    from orchestrator.client import OrchestratorClient


def _parse_params(items: list[str]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise CliError(f"--param must look like key=value, got {item!r}")
        try:
            # YAML scalars: 3 -> int, 0.1 -> float, true -> bool, else text.
            value = yaml.safe_load(raw) if raw else ""
        except yaml.YAMLError:
            value = raw
        if not isinstance(value, str | int | float | bool):
            value = raw
        params[key] = value
    return params


def _record_json(record: RunRecord) -> str:
    return record.model_dump_json(indent=2)


def _summary(record: RunRecord) -> str:
    line = f"{record.run_id}  {status_text(record)}"
    if record.current_step and not record.terminal:
        line += f"  step={record.current_step.value}"
    error = error_text(record)
    if error:
        line += f"  error: {error}"
    return line


def check_local_inputs(spec: RunSpec) -> None:
    """What prepare_share would find missing, said before anything is uploaded:
    every local input exists here, and job.script is in the first input."""
    from orchestrator.domain.inputs import InputKind

    refs = spec.input_refs()
    for input_id, ref in refs.items():
        if ref.kind is InputKind.PATH and not Path(ref.value).exists():
            raise CliError(f"invalid spec: inputs.{input_id}: {ref.value} does not exist")
    if spec.job.script is None or not refs:
        return
    first_id, first = next(iter(refs.items()))
    if first.kind is not InputKind.PATH:
        return  # an upload is checked by enqueue_run; a share: folder by prepare_share
    folder = Path(first.value)
    # A single-file input is uploaded as that one file, under its own name.
    found = (
        folder.name == spec.job.script if folder.is_file() else (folder / spec.job.script).is_file()
    )
    if not found:
        raise CliError(
            f"invalid spec: job.script: {spec.job.script} is not in the first input "
            f"(inputs.{first_id}: {first.value})"
        )


def submit_command(
    spec_path: Annotated[Path, typer.Argument(metavar="SPEC", help="Run spec (YAML or JSON).")],
    param: Annotated[
        list[str] | None,
        typer.Option("--param", "-p", metavar="KEY=VALUE", help="Override a parameter: key=value."),
    ] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Follow the run until it ends.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the run record as JSON.")] = False,
    run_id: Annotated[
        str | None, typer.Option("--run-id", metavar="RUN_ID", help="Use this run id.")
    ] = None,
    idempotency_key: Annotated[
        str | None,
        typer.Option("--idempotency-key", metavar="KEY", help="Submit at most once per key."),
    ] = None,
    timeout: Annotated[
        float, typer.Option(metavar="SECONDS", help="With --wait: give up after this many seconds.")
    ] = 24 * 3600.0,
) -> None:
    """Enqueue a training run and print its id (exit 0), or follow it with --wait
    (exit 0 only if it succeeded).

    Local inputs are uploaded first (only files the share does not hold yet):
    through the API when ORCH_API_URL is set, else straight to the share."""
    from orchestrator.chain.enqueue import direct_uploads, enqueue_run
    from orchestrator.inputs.checks import InputRejected
    from orchestrator.inputs.local import LocalInputError
    from orchestrator.inputs.submit import upload_local_inputs
    from orchestrator.store import IdempotencyConflict

    try:
        spec = load_spec(spec_path)
        if param:
            spec = spec.with_parameters(_parse_params(param))
    except SpecError as exc:
        raise CliError(f"invalid spec: {exc}") from None
    check_local_inputs(spec)
    client = api_client()
    if client is not None:
        _submit_through_api(client, spec, run_id, idempotency_key, wait, as_json, timeout)
        return
    settings = get_settings()
    store = open_store()
    try:
        spec, _ = upload_local_inputs(spec, direct_uploads(settings, store))
        record, _created = enqueue_run(
            spec,
            store=store,
            broker_url=settings.redis_target,
            run_id=run_id,
            idempotency_key=idempotency_key,
            input_roots=settings.input_roots,
            submitted_by=CLI_NAME,
        )
    except InputRejected as exc:
        raise CliError(f"invalid spec: {exc.dotted}: {exc}") from None
    except (IdempotencyConflict, LocalInputError, ValueError) as exc:
        raise CliError(str(exc)) from None
    except AzureGatewayError as exc:
        raise CliError(f"cannot upload the inputs: {exc}") from None
    except redis.RedisError as exc:
        raise CliError(f"cannot enqueue the run: {exc}") from None
    if not wait:
        print(_record_json(record) if as_json else record.run_id)
        return
    if not as_json:
        print(record.run_id, flush=True)
    record = _follow(store, record.run_id, timeout, quiet=as_json)
    if as_json:
        print(_record_json(record))
    if record.status is not RunStatus.SUCCEEDED:
        raise typer.Exit(1)


def _submit_through_api(
    client: OrchestratorClient,
    spec: RunSpec,
    run_id: str | None,
    idempotency_key: str | None,
    wait: bool,
    as_json: bool,
    timeout: float,
) -> None:
    from orchestrator.client import ApiError
    from orchestrator.inputs.local import LocalInputError

    with client:
        try:
            accepted = client.submit(spec, idempotency_key=idempotency_key, run_id=run_id)
            if not wait:
                print(
                    json.dumps(client.get(accepted["run_id"]), indent=2)
                    if as_json
                    else accepted["run_id"]
                )
                return
            if not as_json:
                print(accepted["run_id"], flush=True)
            final = client.wait(accepted["run_id"], timeout=timeout)
        except (ApiError, LocalInputError) as exc:
            raise CliError(str(exc)) from None
        except TimeoutError as exc:
            raise CliError(str(exc)) from None
    if as_json:
        print(json.dumps(final, indent=2))
    else:
        error = f"  error: {final['error']}" if final.get("error") else ""
        print(f"{final['run_id']}  {final['status']}{error}")
    if final["status"] != RunStatus.SUCCEEDED.value:
        raise typer.Exit(1)


def _follow(store: RunStore, run_id: str, timeout: float, *, quiet: bool) -> RunRecord:
    """Follow the run's event stream until it is terminal, echoing steps to stderr."""

    def echo(event: RunEvent) -> None:
        if not quiet and event.kind in ("status", "step"):
            detail = " ".join(f"{k}={v}" for k, v in event.data.items() if v is not None)
            typer.echo(f"{event.kind}: {one_line(detail)}", err=True)

    try:
        record = follow_run(store, run_id, timeout=timeout, on_event=echo, tick_seconds=2.0)
    except FollowTimeout as exc:
        raise CliError(str(exc)) from None
    if not quiet:
        print(_summary(record))
    return record


def status_command(
    run_id: Annotated[str, typer.Argument(metavar="RUN_ID", help="The run to show.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the run record as JSON.")] = False,
) -> None:
    """Show a run's status (and its record with --json)."""
    store = open_store()
    try:
        record = store.get(run_id)
    except RunNotFound:
        raise CliError(f"run {run_id!r} not found") from None
    if as_json:
        print(_record_json(record))
        return
    print(_summary(record))
    for step in STEP_ORDER:
        state = shown_step_state(record, step)
        print(f"  {step.value:<22} {state.value:<8} attempts={record.step(step).attempts}")
    if record.outputs:
        print("  outputs: " + one_line(", ".join(record.outputs)))
    if record.metrics:
        print("  metrics: " + json.dumps(record.metrics, sort_keys=True))
    if record.metrics_truncated:
        print("  metrics truncated: the job printed more than is kept (see `logs` for all)")


def cancel_command(
    run_id: Annotated[str, typer.Argument(metavar="RUN_ID", help="The run to cancel.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the run record as JSON.")] = False,
) -> None:
    """Cancel a run: a queued run ends at once; a running one at its next step or poll."""
    from orchestrator.chain.cancel import cancel_run

    store = open_store()
    try:
        record = cancel_run(store, run_id, by=CLI_NAME, broker_url=get_settings().redis_url)
    except RunNotFound:
        raise CliError(f"run {run_id!r} not found") from None
    if as_json:
        print(_record_json(record))
        return
    print(f"{run_id}  {record.status.value if record.terminal else 'cancel requested'}")
