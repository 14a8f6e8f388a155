"""`runs`, `watch`, `logs`, `outputs`: looking at runs from a terminal."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.live import Live

from orchestrator.artifacts import RunArtifacts
from orchestrator.cli.common import CliError, api_client, open_store
from orchestrator.cli.follow import follow_run
from orchestrator.cli.render import relative_to_artifacts, run_view, runs_table
from orchestrator.cli.terminal import TerminalSanitizer, one_line
from orchestrator.domain.status import RunStatus
from orchestrator.joblog import JobLogReader, LogTail
from orchestrator.observability.logs import redact_text
from orchestrator.settings import get_settings
from orchestrator.store import RunRecord, RunStore

if TYPE_CHECKING:
    from orchestrator.client import OrchestratorClient

LOG_TAIL_LINES = 12


def runs_command(
    status: Annotated[RunStatus | None, typer.Option(help="Only runs with this status.")] = None,
    name: Annotated[
        str | None, typer.Option(metavar="NAME", help="Only runs of this spec name.")
    ] = None,
    tag: Annotated[
        str | None, typer.Option(metavar="KEY=VALUE", help="Only runs with this tag, as key=value.")
    ] = None,
    submitted_by: Annotated[
        str | None,
        typer.Option(metavar="KEY_NAME", help="Only runs submitted with this API key name."),
    ] = None,
    limit: Annotated[
        int, typer.Option(metavar="N", min=1, max=500, help="At most this many runs.")
    ] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON records.")] = False,
) -> None:
    """List runs, newest first."""
    tag_filter: tuple[str, str] | None = None
    if tag is not None:
        key, sep, value = tag.partition("=")
        if not sep or not key:
            raise CliError(f"--tag must be key=value, got {tag!r}")
        tag_filter = (key, value)
    store = open_store()
    records, _ = store.list_runs(
        status=status, tag=tag_filter, name=name, submitted_by=submitted_by, limit=limit
    )
    if as_json:
        typer.echo(json.dumps([r.model_dump(mode="json") for r in records], indent=2))
        return
    if not records:
        filtered = bool(status or name or tag or submitted_by)
        typer.echo(_no_runs_message(store, filtered=filtered))
        return
    Console().print(runs_table(records))


def _no_runs_message(store: RunStore, *, filtered: bool) -> str:
    if store.redis.exists(store.keys.runs):
        return "no run matches these filters" if filtered else "no runs yet"
    url = redact_text(get_settings().redis_url)
    return (
        f"no runs: the Redis at {url} holds no orchestrator data "
        "(`orchestrator context` shows which stack this folder uses)"
    )


def watch_run(run_id: str, console: Console | None = None) -> RunRecord:
    """Show the live step view until the run ends; returns the final record."""
    console = console or Console()
    store = open_store()
    tail = LogTail(JobLogReader(get_settings()), LOG_TAIL_LINES)
    with Live(console=console, refresh_per_second=4, transient=False) as live:

        def redraw(record: RunRecord) -> None:
            outputs = record.spec.outputs
            lines = [relative_to_artifacts(one_line(line), outputs) for line in tail.update(record)]
            live.update(run_view(record, lines))

        return follow_run(store, run_id, on_update=redraw, tick_seconds=0.5)


def watch_command(
    run_id: Annotated[str, typer.Argument(metavar="RUN_ID", help="The run to watch.")],
) -> None:
    """A live view of the eight steps until the run ends (exit 0 only on success)."""
    record = watch_run(run_id)
    if record.status is not RunStatus.SUCCEEDED:
        raise typer.Exit(1)


def logs_command(
    run_id: Annotated[
        str, typer.Argument(metavar="RUN_ID", help="The run whose job output to print.")
    ],
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing while the job runs.")
    ] = False,
    stderr: Annotated[
        bool, typer.Option("--stderr", help="Print stderr instead of stdout.")
    ] = False,
    raw: Annotated[
        bool,
        typer.Option(
            "--raw", help="Print the job's bytes as they are, terminal escape sequences included."
        ),
    ] = False,
) -> None:
    """The job's stdout (or stderr): live from the cluster while it runs, else as collected.

    Terminal control sequences the job wrote (colours, titles, clears) are removed
    unless --raw: a job must not drive the user's terminal.
    """
    store = open_store()
    reader = JobLogReader(get_settings(), "stderr" if stderr else "stdout", min_live_interval=1.0)
    sanitizer = TerminalSanitizer()

    def emit(record: RunRecord) -> None:
        if raw:
            data = reader.read_new_bytes(record)
            if data:
                typer.echo(data, nl=False)  # bytes: written to the binary stream as they are
            return
        text = sanitizer.feed(reader.read_new(record))
        if text:
            typer.echo(text, nl=False)

    record = store.get(run_id)
    if follow and not record.terminal:
        record = follow_run(store, run_id, on_update=emit)
    emit(record)
    if rest := sanitizer.flush():
        typer.echo(rest, nl=False)
    if reader.offset == 0 and not follow:
        if record.terminal and reader.collected_path(run_id).is_file():
            # An empty log of a finished job is an answer, not a failure.
            typer.echo(_no_log_message(record, reader), err=True)
            return
        raise CliError(_no_log_message(record, reader))


def _no_log_message(record: RunRecord, reader: JobLogReader) -> str:
    """Why nothing was printed: "yet" only while the run may still produce a log."""
    name, run_id, status = reader.file_name, record.run_id, record.status.value
    if not record.terminal:
        return f"no {name} for run {run_id} yet (status {status})"
    if reader.collected_path(run_id).is_file():
        return f"the job of run {run_id} wrote nothing to {reader.stream} (status {status})"
    if "job" not in record.resources:
        return f"run {run_id} ended {status} before its job started: it has no {name}"
    return f"no {name} was collected for run {run_id} (status {status})"


def _copy_error(download: Path | None, exc: OSError) -> CliError:
    return CliError(f"cannot copy the outputs to {download}: {exc.strerror or exc}")


def _show_outputs(
    run_id: str,
    rows: list[tuple[str, int]],
    download: Path | None,
    as_json: bool,
    *,
    root: Path | None = None,
    empty: str = "",
) -> None:
    """The outputs as the command prints them: (path, size) rows, under `root`
    when they are this machine's files."""
    if as_json:
        document: dict[str, object] = {"run_id": run_id}
        if root is not None:
            document["root"] = str(root)
        document["files"] = [{"path": path, "size": size} for path, size in rows]
        typer.echo(json.dumps(document, indent=2))
        return
    if not rows:
        typer.echo(f"run {run_id} has no collected outputs{empty}")
    for path, size in rows:
        shown = root / path if root is not None else path
        typer.echo(f"{size:>12}  {one_line(str(shown))}")
    if download is not None:
        typer.echo(f"copied {len(rows)} file(s) to {download}")


def _outputs_through_api(
    client: OrchestratorClient, run_id: str, download: Path | None, as_json: bool
) -> None:
    from orchestrator.client import ApiError

    with client:
        try:
            files = client.outputs(run_id)
            for item in files if download is not None else []:
                assert download is not None
                target = download / RunArtifacts.safe_relative(item["path"])
                client.download(run_id, item["path"], target)
        except ApiError as exc:
            raise CliError(str(exc)) from None
        except OSError as exc:
            raise _copy_error(download, exc) from None
    _show_outputs(run_id, [(item["path"], item["size"]) for item in files], download, as_json)


def outputs_command(
    run_id: Annotated[str, typer.Argument(metavar="RUN_ID", help="The run whose outputs to list.")],
    download: Annotated[
        Path | None,
        typer.Option(
            "--download", metavar="FOLDER", help="Copy every output file into this folder."
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List a run's collected outputs, or copy them to a folder.

    With ORCH_API_URL set they come through the API, from the file share (any
    machine); otherwise from this machine's ORCH_ARTIFACTS_DIR (the worker's copy)."""
    client = api_client()
    if client is not None:
        _outputs_through_api(client, run_id, download, as_json)
        return
    record = open_store().get(run_id)
    artifacts = RunArtifacts.of(get_settings().artifacts_dir, run_id)
    files = artifacts.files()
    if download is not None:
        try:
            for item in files:
                target = download / item.path
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(artifacts.resolve(item.path), target)
        except OSError as exc:
            raise _copy_error(download, exc) from None
    rows = [(item.path, item.size) for item in files]
    empty = f" (status {record.status.value})"
    _show_outputs(run_id, rows, download, as_json, root=artifacts.root, empty=empty)
