"""Python client of the orchestrator's HTTP API (sync, on httpx).

    client = OrchestratorClient("http://127.0.0.1:8000", token=os.environ["ORCH_API_TOKEN"])
    run = client.submit(Path("examples/mnist/run.yaml"), parameters={"epochs": 3},
                        idempotency_key="nightly-2026-11-27")
    final = client.wait(run["run_id"], timeout=3600)   # follows the run's event stream

`submit` uploads the spec's local input files through the API first (only the
contents the share does not hold yet), so the caller may be on any machine and
may delete its files as soon as `submit` returns.

Services that share the orchestrator's Redis can skip HTTP altogether with
`enqueue_run` / `enqueue_spec_dict`, re-exported here.
"""

from __future__ import annotations

import builtins  # `list` is also a method name here
import json
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self
from urllib.parse import quote

import httpx

from orchestrator.chain.enqueue import enqueue_run, enqueue_spec_dict
from orchestrator.domain.inputs import Manifest
from orchestrator.domain.spec import RunSpec, load_spec, parse_spec
from orchestrator.domain.status import SWEEP_TERMINAL, TERMINAL
from orchestrator.inputs.submit import UploadReport, upload_local_inputs, upload_path

__all__ = [
    "ApiError",
    "OrchestratorClient",
    "ServerSentEvent",
    "enqueue_run",
    "enqueue_spec_dict",
    "iter_sse",
]

# The server sends a keep-alive at least every few seconds on event streams,
# so a read that stays silent this long means the connection is gone.
STREAM_READ_TIMEOUT_SECONDS = 30.0


class ApiError(Exception):
    """An error answer of the API (status >= 400), or status 0 when it was unreachable."""

    def __init__(self, status: int, message: str, retry_after: float | None = None) -> None:
        super().__init__(f"{status}: {message}" if status else message)
        self.status = status
        self.message = message
        self.retry_after = retry_after


@dataclass(frozen=True)
class ServerSentEvent:
    id: str | None
    event: str
    data: str

    def json(self) -> Any:
        return json.loads(self.data)


def iter_sse(lines: Iterable[str]) -> Iterator[ServerSentEvent]:
    """Parse a text/event-stream (already split in lines) into events; comments are skipped."""
    event_id: str | None = None
    kind = "message"
    data: list[str] = []
    for line in lines:
        if not line:
            if data:
                yield ServerSentEvent(id=event_id, event=kind, data="\n".join(data))
            kind, data = "message", []
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "data":
            data.append(value)
        elif field == "event":
            kind = value
        elif field == "id":
            event_id = value
    if data:
        yield ServerSentEvent(id=event_id, event=kind, data="\n".join(data))


SpecInput = RunSpec | Mapping[str, Any] | Path | str


def _run_path(run_id: str, *rest: str) -> str:
    """/v1/runs/<run_id>/<rest...>, each part percent-encoded (an output may be
    named "epoch #3.pt"); "/" inside an output path stays a separator."""
    return "/".join(["/v1/runs", quote(run_id, safe=""), *(quote(part) for part in rest)])


def _schedule_path(name: str, *rest: str) -> str:
    return "/".join(["/v1/schedules", quote(name, safe=""), *rest])


def _spec(spec: SpecInput, base_dir: Path | None) -> RunSpec:
    """The spec as a RunSpec, relative input paths resolved (SpecError names the field)."""
    if isinstance(spec, RunSpec):
        return spec.with_base_dir(base_dir or Path.cwd())
    if isinstance(spec, Path | str):
        # Relative input paths resolve against the spec file's folder.
        return load_spec(Path(spec))
    return parse_spec(dict(spec)).with_base_dir(base_dir or Path.cwd())


@dataclass
class ApiUploads:
    """Uploads through the API (POST /v1/uploads, PUT .../content/<sha256>)."""

    client: OrchestratorClient
    # Uploads a POST already committed (nothing was missing): commit() need not ask again.
    committed: set[str] = field(default_factory=set)

    def missing(self, manifest: Manifest) -> builtins.list[str]:
        state = self.client._send("POST", "/v1/uploads", json=manifest.model_dump()).json()
        if state["committed"]:
            self.committed.add(state["upload_id"])
        missing: builtins.list[str] = state["missing"]
        return missing

    def put_file(self, digest: str, source: Path) -> int:
        size = source.stat().st_size
        with source.open("rb") as handle:
            body = self.client._send(
                "PUT",
                f"/v1/uploads/content/{digest}",
                content=iter(lambda: handle.read(1 << 20), b""),
                headers={"Content-Length": str(size), "Content-Type": "application/octet-stream"},
            ).json()
        return size if body["stored"] else 0

    def commit(self, manifest: Manifest) -> str:
        if manifest.upload_id in self.committed:
            return manifest.upload_id
        state = self.client._send("POST", "/v1/uploads", json=manifest.model_dump()).json()
        if not state["committed"]:
            raise ApiError(409, f"files: {len(state['missing'])} file(s) are still missing")
        upload_id: str = state["upload_id"]
        return upload_id


class OrchestratorClient:
    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        # What the last submit (or upload) sent: files, and files and bytes not
        # already on the share.
        self.last_upload = UploadReport()
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(
            base_url=self.base_url, headers=headers, timeout=timeout, transport=transport
        )

    def __repr__(self) -> str:  # never the token
        return f"OrchestratorClient({self.base_url!r})"

    # ------------------------------------------------------------------ plumbing
    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise ApiError(0, f"cannot reach {self.base_url}: {type(exc).__name__}") from None
        _raise_for_status(response)
        return response

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ---------------------------------------------------------------------- runs
    def submit(
        self,
        spec: SpecInput,
        parameters: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
        run_id: str | None = None,
        base_dir: Path | None = None,
        notify: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Submit a run: a RunSpec, a spec mapping, or a YAML/JSON spec file (a Path).

        Local input paths are uploaded first (relative ones resolve against the
        spec file's folder, or `base_dir` for a mapping; default: the current
        folder), and the run names the uploads. Returns {run_id, status, links}.
        The same idempotency_key with the same spec returns the same run; with
        another spec, ApiError 409. LocalInputError names an input that cannot
        be uploaded (a missing path, a symlink, a device).
        `notify` ({"url", "events"}) asks for a signed webhook when the run ends.
        """
        uploaded, self.last_upload = upload_local_inputs(_spec(spec, base_dir), ApiUploads(self))
        body: dict[str, Any] = {"spec": uploaded.model_dump(mode="json")}
        if parameters:
            body["parameters"] = dict(parameters)
        if run_id is not None:
            body["run_id"] = run_id
        if notify is not None:
            body["notify"] = dict(notify)
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        result: dict[str, Any] = self._send("POST", "/v1/runs", json=body, headers=headers).json()
        return result

    def get(self, run_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._send("GET", _run_path(run_id)).json()
        return result

    def upload(self, path: Path) -> str:
        """Upload a local file or folder; returns the input value `upload:<id>`."""
        upload_id, self.last_upload = upload_path(path, ApiUploads(self))
        return f"upload:{upload_id}"

    def list(
        self,
        *,
        status: str | None = None,
        tag: tuple[str, str] | None = None,
        name: str | None = None,
        submitted_by: str | None = None,
        sweep: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> dict[str, Any]:
        """One page: {items, next_cursor}; `sweep` keeps the trials of that sweep."""
        params: dict[str, Any] = {"limit": limit}
        if status is not None:
            params["status"] = status
        if tag is not None:
            params["tag"] = f"{tag[0]}={tag[1]}"
        if name is not None:
            params["name"] = name
        if submitted_by is not None:
            params["submitted_by"] = submitted_by
        if sweep is not None:
            params["sweep"] = sweep
        if cursor is not None:
            params["cursor"] = cursor
        result: dict[str, Any] = self._send("GET", "/v1/runs", params=params).json()
        return result

    def deliveries(self, run_id: str) -> builtins.list[dict[str, Any]]:
        """The run's webhook delivery attempts, oldest first."""
        items: builtins.list[dict[str, Any]] = self._send(
            "GET", _run_path(run_id, "deliveries")
        ).json()["items"]
        return items

    def cancel(self, run_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._send("POST", _run_path(run_id, "cancel")).json()
        return result

    # ----------------------------------------------------------------- schedules
    def _schedule_body(
        self, definition: Mapping[str, Any], base_dir: Path | None
    ) -> dict[str, Any]:
        """The definition with its run's local input paths uploaded (every tick's
        run then names the same uploads)."""
        body = dict(definition)
        run = body.get("run")
        if isinstance(run, Mapping | RunSpec):
            uploaded, self.last_upload = upload_local_inputs(_spec(run, base_dir), ApiUploads(self))
            body["run"] = uploaded.model_dump(mode="json")
        sweep = body.get("sweep")
        if isinstance(sweep, Mapping | Path):
            # A sweep target: its trial's local inputs, uploaded once for every tick.
            body["sweep"] = self._sweep_body(sweep, base_dir)
        return body

    def create_schedule(
        self, definition: Mapping[str, Any], base_dir: Path | None = None
    ) -> dict[str, Any]:
        """Create a schedule ({name, trigger, run, ...}); an existing name is ApiError 409.

        The run's local input paths are uploaded first (relative to `base_dir`).
        Returns its view: {name, definition, suspended, next_fire_times, last_run_id, history}.
        """
        body = self._schedule_body(definition, base_dir)
        result: dict[str, Any] = self._send("POST", "/v1/schedules", json=body).json()
        return result

    def put_schedule(
        self, name: str, definition: Mapping[str, Any], base_dir: Path | None = None
    ) -> dict[str, Any]:
        """Create or replace the schedule `name` (a name in `definition` must match)."""
        body = self._schedule_body(definition, base_dir)
        result: dict[str, Any] = self._send("PUT", _schedule_path(name), json=body).json()
        return result

    def list_schedules(self) -> builtins.list[dict[str, Any]]:
        """Every schedule's view."""
        items: builtins.list[dict[str, Any]] = self._send("GET", "/v1/schedules").json()["items"]
        return items

    def get_schedule(self, name: str) -> dict[str, Any]:
        result: dict[str, Any] = self._send("GET", _schedule_path(name)).json()
        return result

    def pause_schedule(self, name: str) -> dict[str, Any]:
        result: dict[str, Any] = self._send("POST", _schedule_path(name, "pause")).json()
        return result

    def resume_schedule(self, name: str) -> dict[str, Any]:
        result: dict[str, Any] = self._send("POST", _schedule_path(name, "resume")).json()
        return result

    def trigger_schedule(self, name: str, idempotency_key: str | None = None) -> dict[str, Any]:
        """Fire the schedule now (its concurrency policy ignored); returns the tick entry
        ({tick, outcome, run_id, ...}). The same idempotency_key returns the same run."""
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        result: dict[str, Any] = self._send(
            "POST", _schedule_path(name, "trigger"), headers=headers
        ).json()
        return result

    def delete_schedule(self, name: str) -> None:
        self._send("DELETE", _schedule_path(name))

    # -------------------------------------------------------------------- sweeps
    def submit_sweep(
        self,
        sweep: Path | Mapping[str, Any],
        base_dir: Path | None = None,
        idempotency_key: str | None = None,
    ) -> str:
        """Start a sweep (docs/sweeps.md): a YAML/JSON file, or a mapping whose
        `trial` is inline or a path relative to `base_dir`. The trial's local
        input paths are uploaded first, once for every trial. Returns the sweep id."""
        body = self._sweep_body(sweep, base_dir)
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        response = self._send("POST", "/v1/sweeps", json=body, headers=headers)
        sweep_id: str = response.json()["sweep_id"]
        return sweep_id

    def _sweep_body(self, sweep: Path | Mapping[str, Any], base_dir: Path | None) -> dict[str, Any]:
        from orchestrator.domain.sweep import load_sweep, parse_sweep

        spec = load_sweep(sweep) if isinstance(sweep, Path) else parse_sweep(dict(sweep), base_dir)
        trial, self.last_upload = upload_local_inputs(spec.trial, ApiUploads(self))
        body = spec.model_dump(mode="json")
        body["trial"] = trial.model_dump(mode="json")
        return body

    def get_sweep(self, sweep_id: str) -> dict[str, Any]:
        """{sweep_id, status, counts, best, trials (the leaderboard), ...}."""
        result: dict[str, Any] = self._send("GET", f"/v1/sweeps/{quote(sweep_id)}").json()
        return result

    def list_sweeps(self) -> builtins.list[dict[str, Any]]:
        items: builtins.list[dict[str, Any]] = self._send("GET", "/v1/sweeps").json()["items"]
        return items

    def cancel_sweep(self, sweep_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._send("POST", f"/v1/sweeps/{quote(sweep_id)}/cancel").json()
        return result

    def wait_sweep(
        self, sweep_id: str, timeout: float | None = None, poll_seconds: float = 2.0
    ) -> dict[str, Any]:
        """Block until the sweep has ended and return its view (TimeoutError after
        `timeout` seconds). Follows the sweep's event stream; reconnects if it drops."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            try:
                with self._http.stream(
                    "GET",
                    f"/v1/sweeps/{quote(sweep_id)}/events",
                    timeout=httpx.Timeout(self._http.timeout.connect, read=poll_seconds * 10),
                ) as response:
                    if response.is_error:
                        response.read()
                        _raise_for_status(response)
                    for _ in _checked_lines(response.iter_lines(), deadline):
                        pass
            except (httpx.TransportError, ApiError) as exc:
                if isinstance(exc, ApiError) and exc.status not in (0, 503):
                    raise
            view = self.get_sweep(sweep_id)
            if view["status"] in SWEEP_TERMINAL:
                return view
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"sweep {sweep_id} has not ended after {timeout} s")

    # -------------------------------------------------------------------- events
    def events(
        self, run_id: str, last_event_id: str | None = None, deadline: float | None = None
    ) -> Iterator[dict[str, Any]]:
        """The run's events ({id, kind, data, ts}), replayed then live; ends when the run does.

        `deadline` (time.monotonic()) raises TimeoutError once passed, checked
        at every event and keep-alive.
        """
        headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
        read_timeout = STREAM_READ_TIMEOUT_SECONDS
        if deadline is not None:
            read_timeout = max(0.001, min(read_timeout, deadline - time.monotonic()))
        timeout = httpx.Timeout(self._http.timeout.connect, read=read_timeout)
        try:
            with self._http.stream(
                "GET", _run_path(run_id, "events"), headers=headers, timeout=timeout
            ) as response:
                if response.is_error:
                    response.read()
                    _raise_for_status(response)
                for event in iter_sse(_checked_lines(response.iter_lines(), deadline)):
                    if event.event == "error":
                        raise ApiError(503, str(event.json().get("message", "stream failed")))
                    payload: dict[str, Any] = event.json()
                    yield payload
        except httpx.TransportError as exc:
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"run {run_id}: deadline passed following its events") from None
            raise ApiError(0, f"cannot reach {self.base_url}: {type(exc).__name__}") from None

    def wait(self, run_id: str, timeout: float | None = None) -> dict[str, Any]:
        """Block until the run has ended and return its record.

        Follows the event stream (no polling); if the connection drops, resumes
        after the last event seen. TimeoutError after `timeout` seconds.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        last_event_id: str | None = None
        while True:
            try:
                for event in self.events(run_id, last_event_id, deadline):
                    last_event_id = event["id"]
            except ApiError as exc:
                if exc.status not in (0, 503):
                    raise
            record = self.get(run_id)
            if record["status"] in TERMINAL:  # StrEnum members equal their values
                return record
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"run {run_id} has not ended after {timeout} s")

    # ------------------------------------------------------------------- outputs
    def outputs(self, run_id: str) -> builtins.list[dict[str, Any]]:
        """The run's output files: [{path, size}]."""
        body = self._send("GET", _run_path(run_id, "outputs")).json()
        files: builtins.list[dict[str, Any]] = body["files"]
        return files

    def download(self, run_id: str, path: str, destination: Path) -> Path:
        """Stream one output file to `destination` (a file path); returns it."""
        try:
            with self._http.stream("GET", _run_path(run_id, "outputs", path)) as response:
                if response.is_error:
                    response.read()
                    _raise_for_status(response)
                destination.parent.mkdir(parents=True, exist_ok=True)
                with destination.open("wb") as file:
                    for chunk in response.iter_bytes():
                        file.write(chunk)
        except httpx.TransportError as exc:
            raise ApiError(0, f"cannot reach {self.base_url}: {type(exc).__name__}") from None
        return destination

    def metrics(self) -> str:
        """The Prometheus text of /metrics."""
        return self._send("GET", "/metrics").text

    def healthz(self) -> dict[str, Any]:
        result: dict[str, Any] = self._send("GET", "/healthz").json()
        return result


def _checked_lines(lines: Iterable[str], deadline: float | None) -> Iterator[str]:
    for line in lines:
        if deadline is not None and time.monotonic() >= deadline:
            raise TimeoutError("deadline passed while following the run's events")
        yield line


def _raise_for_status(response: httpx.Response) -> None:
    if response.status_code < 400:
        return
    try:
        message = str(response.json().get("message") or response.reason_phrase)
    except (ValueError, AttributeError):
        message = response.text[:200] or response.reason_phrase
    retry_after = response.headers.get("Retry-After")
    raise ApiError(
        response.status_code,
        message,
        retry_after=float(retry_after) if retry_after and retry_after.isdigit() else None,
    )


class WebhookVerificationFailed(Exception):
    """A delivery whose signature, id or timestamp does not check out."""


def verify_webhook(secret: str, headers: Mapping[str, str], body: bytes | str) -> dict[str, Any]:
    """The payload of a webhook delivery, after checking its Standard Webhooks
    signature with the key's `signing_secret` (`whsec_...`) and that its timestamp
    is within five minutes of now; WebhookVerificationFailed otherwise.

    Deliveries are at least once: deduplicate on `headers["webhook-id"]`."""
    from standardwebhooks import Webhook
    from standardwebhooks.webhooks import WebhookVerificationError

    try:
        payload: dict[str, Any] = Webhook(secret).verify(body, dict(headers))
    except (WebhookVerificationError, ValueError) as exc:
        raise WebhookVerificationFailed(str(exc)) from None
    return payload
