"""The one module that talks to Azure (or the emulator) through the Azure SDKs.

Real Azure and the emulator differ only by endpoint and credential. Every
method is idempotent: creating adopts what already exists under the same
name, deleting tolerates what is already gone, so a redelivered task can call
it again. Long-running operations are started without polling (`polling=False`)
and their progress is read back by later polls, because a Celery worker must
never sit in the SDK's own poll loop. SDK errors are classified into
TransientAzureError (retry the step later, with the server's Retry-After) and
PermanentAzureError (end the run with a FailureReason).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import requests
from azure.common import AzureException, AzureHttpError
from azure.core.credentials import AccessToken, TokenCredential
from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.core.pipeline import PipelineRequest, PipelineResponse
from azure.core.pipeline.policies import RetryPolicy, SansIOHTTPPolicy
from azure.mgmt.batchai import BatchAI
from azure.mgmt.batchai import models as bai
from azure.mgmt.resource.resources import ResourceManagementClient
from azure.storage.common.retry import ExponentialRetry
from azure.storage.file import ContentSettings, FileService
from prometheus_client import Counter

from orchestrator.logs import redact_text
from orchestrator.naming import AzureNames
from orchestrator.settings import Settings
from orchestrator.spec import RunSpec, Toolkit
from orchestrator.status import FailureReason

# A single SDK call may retry inline, but never sleep longer than this: longer
# waits (a throttling Retry-After of 30 s) go back to Celery as a countdown so
# the worker process is free meanwhile.
MAX_INLINE_RETRY_SLEEP_SECONDS = 2.0
INLINE_RETRY_TOTAL = 2
# Where the share is mounted on cluster nodes ($AZ_BATCHAI_MOUNT_ROOT/<this>).
SHARE_MOUNT_PATH = "azfiles"
STDOUTERR_OUTPUT_ID = "stdouterr"
ADMIN_USER_NAME = "orchestrator"

# The storage SDK logs every non-2xx answer at ERROR, including the expected
# 404 of "does this file exist yet"; the gateway classifies and logs failures.
logging.getLogger("azure.storage.common.storageclient").setLevel(logging.CRITICAL)
# azure-core logs every request and response at INFO; the step logs say what
# happened (with the x-ms-request-id), and the counter below counts requests.
logging.getLogger("azure.core.pipeline.policies.http_logging_policy").setLevel(logging.WARNING)
logging.getLogger("azure.identity").setLevel(logging.WARNING)

AZURE_REQUESTS = Counter(
    "orchestrator_azure_requests_total",
    "Requests the orchestrator sent to Azure (or the emulator), by operation and outcome.",
    ["operation", "outcome"],
)


# --------------------------------------------------------------------- errors
class AzureGatewayError(Exception):
    """Base of the classified errors; messages never contain secrets."""

    def __init__(self, message: str, *, request_id: str | None = None) -> None:
        super().__init__(message)
        self.request_id = request_id


class TransientAzureError(AzureGatewayError):
    """Worth retrying later: throttling, 5xx, connection errors."""

    def __init__(
        self, message: str, *, retry_after: float | None = None, request_id: str | None = None
    ) -> None:
        super().__init__(message, request_id=request_id)
        self.retry_after = retry_after


class PermanentAzureError(AzureGatewayError):
    """Retrying cannot help; the run ends failed with `reason`."""

    def __init__(
        self, message: str, *, reason: FailureReason, request_id: str | None = None
    ) -> None:
        super().__init__(message, request_id=request_id)
        self.reason = reason


_QUOTA_CODES = re.compile(r"quota|limitexceeded|corequota", re.IGNORECASE)


def _parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def classify_status(
    status: int,
    message: str,
    *,
    code: str = "",
    retry_after: float | None = None,
    request_id: str | None = None,
) -> AzureGatewayError:
    """The classified error for an HTTP failure status."""
    text = redact_text(f"{code + ': ' if code else ''}{message}")[:500]
    if status == 429 or status >= 500 or status == 408:
        return TransientAzureError(
            f"HTTP {status}: {text}", retry_after=retry_after, request_id=request_id
        )
    if _QUOTA_CODES.search(code) or _QUOTA_CODES.search(message[:200]):
        return PermanentAzureError(
            f"HTTP {status}: {text}", reason=FailureReason.QUOTA, request_id=request_id
        )
    if status in (401, 403):
        return PermanentAzureError(
            f"HTTP {status}: {text}", reason=FailureReason.AUTH, request_id=request_id
        )
    if status == 400:
        return PermanentAzureError(
            f"HTTP {status}: {text}", reason=FailureReason.INVALID_SPEC, request_id=request_id
        )
    return PermanentAzureError(
        f"HTTP {status}: {text}", reason=FailureReason.AZURE_ERROR, request_id=request_id
    )


def classify(exc: BaseException, request_id: str | None = None) -> AzureGatewayError:
    """Map any SDK / transport exception to Transient or Permanent."""
    if isinstance(exc, AzureGatewayError):
        return exc
    if isinstance(exc, ClientAuthenticationError) and exc.response is None:
        return PermanentAzureError(
            f"authentication failed: {redact_text(str(exc))[:300]}",
            reason=FailureReason.AUTH,
            request_id=request_id,
        )
    if isinstance(exc, HttpResponseError) and exc.response is not None:
        headers: Any = getattr(exc.response, "headers", {})
        code = ""
        if exc.error is not None and exc.error.code:
            code = str(exc.error.code)
        message = exc.error.message if exc.error is not None and exc.error.message else exc.reason
        return classify_status(
            exc.status_code or 0,
            str(message or ""),
            code=code,
            retry_after=_parse_retry_after(headers.get("Retry-After")),
            request_id=headers.get("x-ms-request-id") or request_id,
        )
    if isinstance(exc, ServiceRequestError | ServiceResponseError | AzureError):
        return TransientAzureError(
            f"connection error: {redact_text(str(exc))[:300]}", request_id=request_id
        )
    if isinstance(exc, AzureHttpError):
        return classify_status(
            int(exc.status_code or 0),
            str(exc).splitlines()[0] if str(exc) else "",
            code=getattr(exc, "error_code", "") or "",
            request_id=request_id,
        )
    if isinstance(exc, AzureException | requests.ConnectionError | requests.Timeout):
        return TransientAzureError(
            f"connection error: {redact_text(str(exc))[:300]}", request_id=request_id
        )
    if isinstance(exc, requests.HTTPError) and exc.response is not None:
        return classify_status(
            exc.response.status_code,
            exc.response.reason or "",
            retry_after=_parse_retry_after(exc.response.headers.get("Retry-After")),
            request_id=exc.response.headers.get("x-ms-request-id") or request_id,
        )
    if isinstance(exc, OSError | requests.RequestException):
        return TransientAzureError(
            f"I/O error: {redact_text(str(exc))[:300]}", request_id=request_id
        )
    raise exc


# ----------------------------------------------------------- SDK plumbing
class StaticTokenCredential:
    """A fixed bearer token: the emulator accepts any non-empty one."""

    def __init__(self, token: str = "emulator-token") -> None:
        self._token = token

    def get_token(
        self,
        *scopes: str,
        claims: str | None = None,
        tenant_id: str | None = None,
        enable_cae: bool = False,
        **kwargs: Any,
    ) -> AccessToken:
        return AccessToken(self._token, int(time.time()) + 3600)


class BoundedRetryPolicy(RetryPolicy):  # type: ignore[type-arg]
    """azure-core's RetryPolicy, but a Retry-After longer than the cap is not
    slept inline: the response is handed back so the caller can reschedule."""

    def __init__(self, max_sleep: float = MAX_INLINE_RETRY_SLEEP_SECONDS, **kwargs: Any) -> None:
        kwargs.setdefault("retry_total", INLINE_RETRY_TOTAL)
        kwargs.setdefault("retry_backoff_factor", 0.3)
        kwargs.setdefault("retry_backoff_max", max_sleep)
        super().__init__(**kwargs)
        self._max_sleep = max_sleep

    def is_retry(self, settings: dict[str, Any], response: PipelineResponse[Any, Any]) -> bool:
        retry_after = self.get_retry_after(response)
        if retry_after is not None and retry_after > self._max_sleep:
            return False
        return bool(super().is_retry(settings, response))

    def _sleep_for_retry(self, response: PipelineResponse[Any, Any], transport: Any) -> bool:
        retry_after = self.get_retry_after(response)
        if retry_after:
            transport.sleep(min(retry_after, self._max_sleep))
            return True
        return False


_ARM_SEGMENT = re.compile(r"/(resourcegroups|workspaces|experiments|clusters|jobs)(?:/([^/]+))?")


def arm_operation(method: str, path: str) -> str:
    """A stable operation name for an ARM request, close to the spec's operationIds."""
    lowered = path.lower()
    kinds = _ARM_SEGMENT.findall(lowered)
    if not kinds:
        return f"ARM_{method.upper()}"
    kind, name = kinds[-1]
    noun = {
        "resourcegroups": "ResourceGroups",
        "workspaces": "Workspaces",
        "experiments": "Experiments",
        "clusters": "Clusters",
        "jobs": "Jobs",
    }[kind]
    if lowered.endswith("/listoutputfiles"):
        return "Jobs_ListOutputFiles"
    if lowered.endswith("/terminate"):
        return "Jobs_Terminate"
    verb = {
        "PUT": "Create",
        "GET": "Get" if name else "List",
        "HEAD": "CheckExistence",
        "DELETE": "Delete",
        "PATCH": "Update",
    }.get(method.upper(), method.upper())
    if noun == "ResourceGroups" and verb == "Create":
        verb = "CreateOrUpdate"
    return f"{noun}_{verb}"


class RequestRecorder:
    """Counts requests per operation/outcome and remembers the last x-ms-request-id."""

    def __init__(self, sink: Callable[[str, str], None] | None = None) -> None:
        self._local = threading.local()
        # Optional extra destination (orchestrator.azure_stats: a Redis hash
        # shared by all workers, read by the API's /metrics).
        self.sink = sink

    @property
    def last_request_id(self) -> str | None:
        value: str | None = getattr(self._local, "request_id", None)
        return value

    def record(self, operation: str, outcome: str, request_id: str | None) -> None:
        AZURE_REQUESTS.labels(operation=operation, outcome=outcome).inc()
        if self.sink is not None:
            self.sink(operation, outcome)
        # Even None: an attempt that got no answer must not keep an earlier
        # request's id, which would then be blamed for this failure.
        self._local.request_id = request_id

    def forget_request_id(self) -> None:
        """Start of a gateway call: no id until one of its requests answers."""
        self._local.request_id = None


class CountingPolicy(SansIOHTTPPolicy[Any, Any]):
    """Per-retry pipeline policy: every attempt is counted, with its outcome."""

    def __init__(self, recorder: RequestRecorder) -> None:
        self._recorder = recorder

    def on_response(
        self, request: PipelineRequest[Any], response: PipelineResponse[Any, Any]
    ) -> None:
        self._recorder.record(
            _request_operation(request),
            str(response.http_response.status_code),
            response.http_response.headers.get("x-ms-request-id"),
        )

    def on_exception(self, request: PipelineRequest[Any]) -> None:
        self._recorder.record(_request_operation(request), "error", None)


def _request_operation(request: PipelineRequest[Any]) -> str:
    """arm_operation of a pipeline request, from its path (no host, no query)."""
    http_request = request.http_request
    path = http_request.url.split("?", 1)[0].split("://", 1)[-1]
    path = "/" + path.split("/", 1)[1] if "/" in path else "/"
    return arm_operation(http_request.method, path)


# ------------------------------------------------------------- results
@dataclass(frozen=True)
class NodeCounts:
    idle: int
    preparing: int
    unusable: int
    running: int
    leaving: int
    target: int
    allocation_state: str
    errors: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class JobState:
    execution_state: str  # queued | running | terminating | succeeded | failed
    exit_code: int | None
    errors: list[str]
    start_time: datetime | None
    end_time: datetime | None

    @property
    def runtime_seconds(self) -> float | None:
        if self.start_time and self.end_time:
            return (self.end_time - self.start_time).total_seconds()
        return None


@dataclass(frozen=True)
class OutputFile:
    name: str  # path relative to the output directory
    download_url: str | None
    is_directory: bool


@dataclass(frozen=True)
class AzureResource:
    name: str
    created: datetime | None
    experiment: str | None = None  # jobs only


def _errors(items: list[bai.BatchAIError] | None) -> list[str]:
    return [redact_text(f"{e.code}: {e.message}") for e in items or []]


class AzureGateway:
    """Typed, idempotent operations on Batch AI, ARM and Azure Files."""

    def __init__(self, settings: Settings, *, credential: TokenCredential | None = None) -> None:
        self.settings = settings
        self.recorder = RequestRecorder()
        self._credential = credential
        self._batchai: BatchAI | None = None
        self._resources: ResourceManagementClient | None = None
        self._files: FileService | None = None

    # ------------------------------------------------------------ clients
    @property
    def last_request_id(self) -> str | None:
        return self.recorder.last_request_id

    def _verify(self) -> bool | str:
        return self.settings.requests_ca_bundle or True

    def credential(self) -> TokenCredential:
        if self._credential is None:
            s = self.settings
            if s.has_service_principal:
                from azure.identity import ClientSecretCredential

                assert s.azure_tenant_id and s.azure_client_id and s.azure_client_secret
                self._credential = ClientSecretCredential(
                    s.azure_tenant_id, s.azure_client_id, s.azure_client_secret.get_secret_value()
                )
            elif s.uses_emulator:
                self._credential = StaticTokenCredential()
            else:
                from azure.identity import DefaultAzureCredential

                self._credential = DefaultAzureCredential()
        return self._credential

    def _client_kwargs(self) -> dict[str, Any]:
        endpoint = self.settings.azure_arm_endpoint
        return {
            "base_url": endpoint,
            "credential_scopes": [endpoint + "/.default"],
            "connection_verify": self._verify(),
            "retry_policy": BoundedRetryPolicy(),
            "per_retry_policies": [CountingPolicy(self.recorder)],
            # LROs are never polled in-process (polling=False), but keep any
            # accidental poll short.
            "polling_interval": 1,
        }

    def _subscription(self) -> str:
        if not self.settings.azure_subscription_id:
            raise PermanentAzureError("AZURE_SUBSCRIPTION_ID is not set", reason=FailureReason.AUTH)
        return self.settings.azure_subscription_id

    @property
    def batchai(self) -> BatchAI:
        if self._batchai is None:
            self._batchai = BatchAI(
                self.credential(), self._subscription(), **self._client_kwargs()
            )
        return self._batchai

    @property
    def resources(self) -> ResourceManagementClient:
        if self._resources is None:
            self._resources = ResourceManagementClient(
                self.credential(), self._subscription(), **self._client_kwargs()
            )
        return self._resources

    @property
    def files(self) -> FileService:
        if self._files is None:
            s = self.settings
            session = requests.Session()
            if s.requests_ca_bundle:
                # Explicit, and not from the environment: requests lets an
                # ambient REQUESTS_CA_BUNDLE override a session's own verify.
                session.verify = s.requests_ca_bundle
                session.trust_env = False
            if s.azure_storage_connection_string:
                service = FileService(
                    connection_string=s.azure_storage_connection_string.get_secret_value(),
                    request_session=session,
                )
            elif s.azure_storage_account and s.azure_storage_key:
                service = FileService(
                    account_name=s.azure_storage_account,
                    account_key=s.azure_storage_key.get_secret_value(),
                    request_session=session,
                )
            else:
                raise PermanentAzureError(
                    "set AZURE_STORAGE_CONNECTION_STRING or AZURE_STORAGE_ACCOUNT and "
                    "AZURE_STORAGE_KEY",
                    reason=FailureReason.AUTH,
                )
            service.retry = _bounded_storage_retry
            service.socket_timeout = 30
            recorder = self.recorder

            def on_response(response: Any) -> None:
                # The storage SDK has no operation names; method + kind of path
                # is as close as it gets (PutRange = PUT ?comp=range).
                recorder.record(
                    _storage_operation(getattr(response, "_orch_request", None)),
                    str(response.status),
                    response.headers.get("x-ms-request-id"),
                )

            def on_request(request: Any) -> None:
                pending_request.value = request

            pending_request = threading.local()

            def on_response_with_request(response: Any) -> None:
                response._orch_request = getattr(pending_request, "value", None)
                on_response(response)

            service.request_callback = on_request
            service.response_callback = on_response_with_request
            self._files = service
        return self._files

    @contextmanager
    def _call(self) -> Iterator[None]:
        """Classify what the SDKs raise; errors carry this call's last request id."""
        self.recorder.forget_request_id()
        try:
            yield
        except AzureGatewayError:
            raise
        except Exception as exc:
            raise classify(exc, self.last_request_id) from None

    # ------------------------------------------------------ resource group
    def ensure_resource_group(self, name: str) -> None:
        with self._call():
            if self.resources.resource_groups.check_existence(name):
                return
            self.resources.resource_groups.create_or_update(
                name, {"location": self.settings.azure_location}
            )

    def ensure_workspace(self, resource_group: str, workspace: str) -> bool:
        """True when the workspace is ready to use (provisioningState succeeded)."""
        return self._ensure_provisioned(
            "workspace",
            workspace,
            lambda: self.batchai.workspaces.get(resource_group, workspace),
            lambda: self.batchai.workspaces.begin_create(
                resource_group,
                workspace,
                bai.WorkspaceCreateParameters(location=self.settings.azure_location),
                polling=False,
            ),
        )

    def ensure_experiment(self, resource_group: str, workspace: str, experiment: str) -> bool:
        """True when the experiment is ready to use (provisioningState succeeded)."""
        return self._ensure_provisioned(
            "experiment",
            experiment,
            lambda: self.batchai.experiments.get(resource_group, workspace, experiment),
            lambda: self.batchai.experiments.begin_create(
                resource_group, workspace, experiment, polling=False
            ),
        )

    def _ensure_provisioned(
        self, kind: str, name: str, get: Callable[[], Any], begin_create: Callable[[], Any]
    ) -> bool:
        """Adopt the resource `get` finds, else start creating it (polling=False);
        True once its provisioningState is succeeded, False while it is not yet."""
        with self._call():
            try:
                return _provisioned(get().provisioning_state, kind, name)
            except ResourceNotFoundError:
                pass
            created = begin_create().result()
            # 200 with the resource: maybe ready now; 202: poll again later.
            return created is not None and _provisioned(created.provisioning_state, kind, name)

    # ------------------------------------------------------------- files
    def share_url(self, share: str) -> str:
        service = self.files
        return f"{service.protocol}://{service.primary_endpoint}/{share}"

    def ensure_share(self, share: str) -> None:
        with self._call():
            # fail_on_exist=False: "already exists" is success (adopt).
            self.files.create_share(share, fail_on_exist=False)

    def ensure_directory(self, share: str, path: str) -> None:
        """Create `path` ("a/b/c"), tolerating an existing one.

        The leaf is tried first: on a repeated run it exists and this costs one
        request; parents are created only when the service says they are missing.
        """
        parts = [p for p in path.strip("/").split("/") if p]
        if not parts:
            return
        with self._call():
            try:
                self.files.create_directory(share, "/".join(parts), fail_on_exist=False)
                return
            except AzureHttpError as exc:
                if exc.status_code != 404:  # ParentNotFound
                    raise
            for depth in range(1, len(parts) + 1):
                self.files.create_directory(share, "/".join(parts[:depth]), fail_on_exist=False)

    def file_md5(self, share: str, directory: str, name: str) -> str | None:
        """Content-MD5 (base64) recorded on a share file, or None if absent/unset."""
        with self._call():
            try:
                props = self.files.get_file_properties(share, directory or None, name)
            except AzureHttpError as exc:
                if exc.status_code == 404:
                    return None
                raise
            md5: str | None = props.properties.content_settings.content_md5
            return md5

    def upload_file(
        self, share: str, directory: str, name: str, local_path: Path, md5: str
    ) -> None:
        """Upload, then set Content-MD5 so the next run can compare and skip.

        The MD5 is set only after every range is written: a file cut short by
        a killed worker has no MD5 and is uploaded again.
        """
        with self._call():
            self.files.create_file_from_path(
                share, directory or None, name, str(local_path), max_connections=1
            )
            self.files.set_file_properties(
                share, directory or None, name, ContentSettings(content_md5=md5)
            )

    # ----------------------------------------------------------- clusters
    def ensure_cluster(self, names: AzureNames, spec: RunSpec) -> bool:
        """Create the cluster unless it exists; True if it already existed (adopted)."""
        if self.cluster_exists(names):
            return True
        with self._call():
            params = bai.ClusterCreateParameters(
                vm_size=spec.cluster.vm_size,
                vm_priority=spec.cluster.vm_priority.value,
                scale_settings=bai.ScaleSettings(
                    manual=bai.ManualScaleSettings(target_node_count=spec.cluster.node_count)
                ),
                user_account_settings=bai.UserAccountSettings(
                    admin_user_name=ADMIN_USER_NAME,
                    # Nobody logs in; a random password satisfies the API.
                    admin_user_password=secrets.token_urlsafe(24),
                ),
                node_setup=bai.NodeSetup(mount_volumes=self._mount_volumes(names.share)),
            )
            self.batchai.clusters.begin_create(
                names.resource_group, names.workspace, names.cluster, params, polling=False
            )
            return False

    def _mount_volumes(self, share: str) -> bai.MountVolumes:
        return bai.MountVolumes(
            azure_file_shares=[
                bai.AzureFileShareReference(
                    account_name=self.files.account_name,
                    azure_file_url=self.share_url(share),
                    credentials=bai.AzureStorageCredentialsInfo(account_key=self.files.account_key),
                    relative_mount_path=SHARE_MOUNT_PATH,
                )
            ]
        )

    def cluster_id(self, names: AzureNames) -> str:
        """ARM id of the run's cluster (built, not fetched: one request fewer)."""
        return (
            f"/subscriptions/{self._subscription()}/resourceGroups/{names.resource_group}"
            f"/providers/Microsoft.BatchAI/workspaces/{names.workspace}/clusters/{names.cluster}"
        )

    def get_cluster_nodes(self, names: AzureNames) -> NodeCounts:
        with self._call():
            try:
                cluster = self.batchai.clusters.get(
                    names.resource_group, names.workspace, names.cluster
                )
            except ResourceNotFoundError:
                raise PermanentAzureError(
                    f"cluster {names.cluster} disappeared", reason=FailureReason.AZURE_ERROR
                ) from None
        counts = cluster.node_state_counts
        target = 0
        if cluster.scale_settings and cluster.scale_settings.manual:
            target = cluster.scale_settings.manual.target_node_count or 0
        return NodeCounts(
            idle=(counts.idle_node_count or 0) if counts else 0,
            preparing=(counts.preparing_node_count or 0) if counts else 0,
            unusable=(counts.unusable_node_count or 0) if counts else 0,
            running=(counts.running_node_count or 0) if counts else 0,
            leaving=(counts.leaving_node_count or 0) if counts else 0,
            target=target,
            allocation_state=str(cluster.allocation_state or ""),
            errors=_errors(cluster.errors),
        )

    def delete_cluster(self, resource_group: str, workspace: str, cluster: str) -> None:
        with self._call(), suppress(ResourceNotFoundError):  # already gone
            self.batchai.clusters.begin_delete(resource_group, workspace, cluster, polling=False)

    def list_clusters(self, resource_group: str, workspace: str) -> list[AzureResource]:
        with self._call():
            try:
                return [
                    AzureResource(name=c.name or "", created=c.creation_time)
                    for c in _items(
                        self.batchai.clusters.list_by_workspace(resource_group, workspace)
                    )
                ]
            except ResourceNotFoundError:
                return []

    # --------------------------------------------------------------- jobs
    def create_job(self, names: AzureNames, spec: RunSpec) -> bool:
        """Create the job unless it exists; True if it already existed (adopted)."""
        if self.job_exists(names):
            return True
        with self._call():
            params = self.job_parameters(names, spec, cluster_id=self.cluster_id(names))
            self.batchai.jobs.begin_create(
                names.resource_group,
                names.workspace,
                names.experiment,
                names.job,
                params,
                polling=False,
            )
            return False

    @staticmethod
    def job_parameters(
        names: AzureNames, spec: RunSpec, *, cluster_id: str
    ) -> bai.JobCreateParameters:
        root = f"$AZ_BATCHAI_MOUNT_ROOT/{SHARE_MOUNT_PATH}"
        inputs = [
            bai.InputDirectory(id=input_id, path=f"{root}/{names.input_dir(input_id)}")
            for input_id in spec.inputs
        ]
        outputs = [
            bai.OutputDirectory(
                id=output_id, path_prefix=f"{root}/{names.output_prefix}", path_suffix=output_id
            )
            for output_id in spec.outputs
        ]
        args = " ".join(_shell_quote(a) for a in spec.job_args())
        script = None
        if spec.job.script is not None and spec.inputs:
            first = next(iter(spec.inputs))
            script = f"$AZ_BATCHAI_INPUT_{first}/{spec.job.script}"
        toolkit: dict[str, Any] = {}
        if spec.job.toolkit is Toolkit.CNTK:
            toolkit["cntk_settings"] = bai.CNTKsettings(
                python_script_file_path=script, command_line_args=args
            )
        elif spec.job.toolkit is Toolkit.PYTORCH:
            assert script is not None
            toolkit["py_torch_settings"] = bai.PyTorchSettings(
                python_script_file_path=script, command_line_args=args
            )
        elif spec.job.toolkit is Toolkit.TENSORFLOW:
            assert script is not None
            toolkit["tensor_flow_settings"] = bai.TensorFlowSettings(
                python_script_file_path=script, master_command_line_args=args
            )
        else:
            command = spec.job.command or ""
            toolkit["custom_toolkit_settings"] = bai.CustomToolkitSettings(
                command_line=f"{command} {args}".strip()
            )
        container = (
            bai.ContainerSettings(
                image_source_registry=bai.ImageSourceRegistry(image=spec.job.image)
            )
            if spec.job.image
            else None
        )
        from datetime import timedelta

        return bai.JobCreateParameters(
            cluster=bai.ResourceId(id=cluster_id),
            node_count=spec.cluster.node_count,
            container_settings=container,
            std_out_err_path_prefix=f"{root}/{names.output_prefix}",
            input_directories=inputs or None,
            output_directories=outputs or None,
            constraints=bai.JobBasePropertiesConstraints(
                max_wall_clock_time=timedelta(seconds=spec.job.max_wall_clock_seconds)
            ),
            **toolkit,
        )

    def get_job(self, names: AzureNames) -> JobState:
        with self._call():
            try:
                job = self.batchai.jobs.get(
                    names.resource_group, names.workspace, names.experiment, names.job
                )
            except ResourceNotFoundError:
                raise PermanentAzureError(
                    f"job {names.job} disappeared", reason=FailureReason.AZURE_ERROR
                ) from None
        return _job_state(job)

    def list_job_resources(self, resource_group: str, workspace: str) -> list[AzureResource]:
        """Every job of every experiment in the workspace (for the reaper)."""
        found: list[AzureResource] = []
        with self._call():
            try:
                experiments = _items(
                    self.batchai.experiments.list_by_workspace(resource_group, workspace)
                )
            except ResourceNotFoundError:
                return []
            for experiment in experiments:
                name = experiment.name or ""
                try:
                    jobs = _items(
                        self.batchai.jobs.list_by_experiment(resource_group, workspace, name)
                    )
                except ResourceNotFoundError:
                    continue
                found += [
                    AzureResource(name=j.name or "", created=j.creation_time, experiment=name)
                    for j in jobs
                ]
        return found

    def terminate_job(self, names: AzureNames) -> None:
        with self._call(), suppress(ResourceNotFoundError):  # already gone
            self.batchai.jobs.begin_terminate(
                names.resource_group, names.workspace, names.experiment, names.job, polling=False
            )

    def delete_job(self, resource_group: str, workspace: str, experiment: str, job: str) -> None:
        with self._call(), suppress(ResourceNotFoundError):  # already gone
            self.batchai.jobs.begin_delete(
                resource_group, workspace, experiment, job, polling=False
            )

    def job_exists(self, names: AzureNames) -> bool:
        with self._call():
            try:
                self.batchai.jobs.get(
                    names.resource_group, names.workspace, names.experiment, names.job
                )
                return True
            except ResourceNotFoundError:
                return False

    def cluster_exists(self, names: AzureNames) -> bool:
        with self._call():
            try:
                self.batchai.clusters.get(names.resource_group, names.workspace, names.cluster)
                return True
            except ResourceNotFoundError:
                return False

    def list_output_files(
        self, names: AzureNames, output_id: str, directory: str = "."
    ) -> list[OutputFile]:
        """Files of one output directory (recursively), names relative to it."""
        found: list[OutputFile] = []
        pending = [directory]
        with self._call():
            while pending:
                current = pending.pop()
                listing = _items(
                    self.batchai.jobs.list_output_files(
                        names.resource_group,
                        names.workspace,
                        names.experiment,
                        names.job,
                        bai.JobsListOutputFilesOptions(
                            outputdirectoryid=output_id, directory=current, linkexpiryinminutes=60
                        ),
                    )
                )
                for item in listing:
                    relative = item.name or ""
                    if current not in (".", ""):
                        base = current.strip("/")
                        relative = (
                            relative if relative.startswith(base + "/") else f"{base}/{relative}"
                        )
                    is_dir = str(item.file_type or "").lower() == "directory"
                    if is_dir:
                        pending.append(relative)
                    found.append(OutputFile(relative, item.download_url, is_dir))
        return found

    def download(self, url: str, dest: Path) -> int:
        """Stream one file to `dest` (atomically); returns the byte count."""
        dest.parent.mkdir(parents=True, exist_ok=True)
        partial = dest.with_name(dest.name + ".partial")
        operation = "File_Download"
        self.recorder.forget_request_id()
        try:
            with requests.get(url, stream=True, timeout=60, verify=self._verify()) as response:
                self.recorder.record(
                    operation, str(response.status_code), response.headers.get("x-ms-request-id")
                )
                response.raise_for_status()
                size = 0
                with partial.open("wb") as out:
                    for chunk in response.iter_content(chunk_size=1 << 16):
                        out.write(chunk)
                        size += len(chunk)
            os.replace(partial, dest)
            return size
        except requests.RequestException as exc:
            partial.unlink(missing_ok=True)
            raise classify(exc, self.last_request_id) from None

    def file_size(self, url: str) -> int:
        """Size in bytes of a file, by its download URL (a HEAD)."""
        with self._call():
            head = requests.head(url, timeout=30, verify=self._verify())
            self.recorder.record(
                "File_GetProperties", str(head.status_code), head.headers.get("x-ms-request-id")
            )
            head.raise_for_status()
            return int(head.headers.get("Content-Length", "0"))

    def read_range(self, url: str, start: int, end: int) -> bytes:
        """Bytes start..end (inclusive) of a file, by its download URL.

        Azure Files has no suffix ranges ("the last N bytes"): callers ask
        file_size first.
        """
        with self._call():
            response = requests.get(
                url,
                headers={"x-ms-range": f"bytes={start}-{end}"},
                timeout=30,
                verify=self._verify(),
            )
            self.recorder.record(
                "File_ReadRange", str(response.status_code), response.headers.get("x-ms-request-id")
            )
            response.raise_for_status()
            return response.content


def _items(paged: Any) -> list[Any]:
    """The SDK's list methods are annotated as paging *ListResult; they yield items."""
    return list(paged)


def _provisioned(state: Any, kind: str, name: str) -> bool:
    value = str(state or "succeeded").lower()
    if value == "failed":
        raise PermanentAzureError(
            f"{kind} {name} failed to provision", reason=FailureReason.AZURE_ERROR
        )
    return value == "succeeded"


def _job_state(job: bai.Job) -> JobState:
    info = job.execution_info
    return JobState(
        execution_state=str(job.execution_state or "queued").lower(),
        exit_code=info.exit_code if info else None,
        errors=_errors(info.errors if info else None),
        start_time=info.start_time if info else None,
        end_time=info.end_time if info else None,
    )


def _shell_quote(arg: str) -> str:
    import shlex

    return shlex.quote(arg)


def _storage_operation(request: Any) -> str:
    if request is None:
        return "File_Unknown"
    query = dict(getattr(request, "query", {}) or {})
    comp = query.get("comp")
    restype = query.get("restype")
    method = str(getattr(request, "method", "")).upper()
    if restype == "share":
        return {"PUT": "Share_Create", "GET": "Share_GetProperties", "DELETE": "Share_Delete"}.get(
            method, f"Share_{method}"
        )
    if restype == "directory":
        if comp == "list":
            return "Directory_List"
        return {"PUT": "Directory_Create", "GET": "Directory_GetProperties"}.get(
            method, f"Directory_{method}"
        )
    if comp == "range":
        return "File_PutRange"
    if comp == "properties":
        return "File_SetProperties"
    return {
        "PUT": "File_Create",
        "HEAD": "File_GetProperties",
        "GET": "File_Download",
        "DELETE": "File_Delete",
    }.get(method, f"File_{method}")


_STORAGE_RETRY = ExponentialRetry(
    initial_backoff=0.2, increment_base=2, max_attempts=INLINE_RETRY_TOTAL, random_jitter_range=0
)


def _bounded_storage_retry(context: Any) -> float | None:
    """Storage SDK retry hook: its ExponentialRetry (which rewinds bodies and
    counts attempts), with each sleep capped; longer waits go back to Celery."""
    interval = _STORAGE_RETRY.retry(context)
    return None if interval is None else min(float(interval), MAX_INLINE_RETRY_SLEEP_SECONDS)


def md5_base64(path: Path) -> str:
    """Base64 MD5 of a file, the form of the Content-MD5 header."""
    import base64

    digest = hashlib.md5()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return base64.b64encode(digest.digest()).decode("ascii")
