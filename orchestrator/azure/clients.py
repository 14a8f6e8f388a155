"""The SDK clients the gateway's calls share, built lazily from Settings.

Real Azure and the emulator differ only by endpoint and credential.
"""

from __future__ import annotations

import base64
import binascii
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import requests
from azure.core.credentials import TokenCredential
from azure.mgmt.batchai import BatchAI
from azure.mgmt.resource.resources import ResourceManagementClient
from azure.storage.file import FileService

from orchestrator.azure.errors import AzureGatewayError, PermanentAzureError, classify
from orchestrator.azure.operations import storage_operation
from orchestrator.azure.pipeline import (
    BoundedRetryPolicy,
    CountingPolicy,
    RequestRecorder,
    StaticTokenCredential,
    bounded_storage_retry,
)
from orchestrator.domain.status import FailureReason
from orchestrator.settings import Settings


class AzureClients:
    """Clients, credential, request recorder, and `_call` (error classification)."""

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
                if s.azure_emulator_token is None or not s.azure_emulator_token.get_secret_value():
                    raise PermanentAzureError(
                        "AZURE_ARM_ENDPOINT is the emulator but AZURE_EMULATOR_TOKEN is not set: "
                        "take it from the emulator's env file",
                        reason=FailureReason.AUTH,
                    )
                self._credential = StaticTokenCredential(s.azure_emulator_token.get_secret_value())
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
                connection_string = s.azure_storage_connection_string.get_secret_value()
                _require_base64_key(
                    _connection_string_part(connection_string, "AccountKey"),
                    "AZURE_STORAGE_CONNECTION_STRING's AccountKey",
                )
                service = FileService(connection_string=connection_string, request_session=session)
            elif s.azure_storage_account and s.azure_storage_key:
                if s.uses_emulator:
                    # Without a FileEndpoint the SDK would sign the emulator's key and
                    # send it to <account>.file.core.windows.net.
                    raise PermanentAzureError(
                        "AZURE_ARM_ENDPOINT is the emulator but storage is set by "
                        "AZURE_STORAGE_ACCOUNT/AZURE_STORAGE_KEY only: set "
                        "AZURE_STORAGE_CONNECTION_STRING from the emulator's env file "
                        "(it names the emulator's FileEndpoint)",
                        reason=FailureReason.AUTH,
                    )
                _require_base64_key(s.azure_storage_key.get_secret_value(), "AZURE_STORAGE_KEY")
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
            service.retry = bounded_storage_retry
            service.socket_timeout = 30
            recorder = self.recorder

            def on_response(response: Any) -> None:
                # The storage SDK has no operation names; method + kind of path
                # is as close as it gets (PutRange = PUT ?comp=range).
                recorder.record(
                    storage_operation(getattr(response, "_orch_request", None)),
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

    def share_url(self, share: str) -> str:
        service = self.files
        return f"{service.protocol}://{service.primary_endpoint}/{share}"


def _connection_string_part(connection_string: str, name: str) -> str | None:
    for part in connection_string.split(";"):
        key, sep, value = part.partition("=")
        if sep and key.strip().lower() == name.lower():
            return value.strip()
    return None


def _require_base64_key(key: str | None, where: str) -> None:
    """A storage key that is not base64 can never sign a request: an AUTH failure now,
    rather than an error the SDK raises while signing, classified as a transient one
    and retried until the step gives up. The message names the setting, never the key."""
    if key is None:
        return
    try:
        base64.b64decode(key, validate=True)
    except (binascii.Error, ValueError):
        raise PermanentAzureError(
            f"{where} is not valid base64", reason=FailureReason.AUTH
        ) from None
