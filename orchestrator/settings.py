"""The one Settings object: read from the environment and a .env file.

Azure names follow the Azure SDKs' own environment variables (AZURE_*), so the
emulator's env file (`orchestrator emulator --env-file`) configures a worker
as-is. The orchestrator's own knobs carry the ORCH_ prefix.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from orchestrator.domain.spec import format_validation_error

PUBLIC_CLOUD_ARM_ENDPOINT = "https://management.azure.com"


class Settings(BaseSettings):
    # Each field is read from exactly its documented variable (validation_alias).
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", populate_by_name=True
    )

    # --- Azure credentials -------------------------------------------------
    # Service principal (the quickstart's): used through ClientSecretCredential
    # when all three are set; otherwise DefaultAzureCredential; against the
    # emulator a static token (it has no identity service).
    azure_tenant_id: str | None = Field(None, validation_alias="AZURE_TENANT_ID")
    azure_client_id: str | None = Field(None, validation_alias="AZURE_CLIENT_ID")
    azure_client_secret: SecretStr | None = Field(None, validation_alias="AZURE_CLIENT_SECRET")

    # --- Azure targets -----------------------------------------------------
    azure_subscription_id: str | None = Field(None, validation_alias="AZURE_SUBSCRIPTION_ID")
    azure_arm_endpoint: str = Field(
        PUBLIC_CLOUD_ARM_ENDPOINT, validation_alias="AZURE_ARM_ENDPOINT"
    )
    azure_storage_account: str | None = Field(None, validation_alias="AZURE_STORAGE_ACCOUNT")
    azure_storage_key: SecretStr | None = Field(None, validation_alias="AZURE_STORAGE_KEY")
    azure_storage_connection_string: SecretStr | None = Field(
        None, validation_alias="AZURE_STORAGE_CONNECTION_STRING"
    )
    azure_location: str = Field("eastus", validation_alias="AZURE_LOCATION")
    azure_resource_group: str = Field(
        "batchai-orchestrator", validation_alias="AZURE_RESOURCE_GROUP"
    )
    azure_workspace: str = Field("orchestrator", validation_alias="AZURE_WORKSPACE")
    azure_file_share: str = Field("orchestrator", validation_alias="AZURE_FILE_SHARE")
    # CA bundle for a private endpoint (the emulator's self-generated CA).
    requests_ca_bundle: str | None = Field(None, validation_alias="REQUESTS_CA_BUNDLE")

    # --- Redis (broker, result backend and run store) ----------------------
    redis_url: str = Field("redis://127.0.0.1:6379/0", validation_alias="REDIS_URL")

    # --- Orchestrator knobs (ORCH_*) ---------------------------------------
    artifacts_dir: Path = Field(Path("artifacts"), validation_alias="ORCH_ARTIFACTS_DIR")
    # Waiting steps reschedule themselves: first after poll_initial, growing
    # by poll_backoff up to poll_max (always far below visibility_timeout).
    poll_initial_seconds: Annotated[float, Field(gt=0)] = Field(
        1.0, validation_alias="ORCH_POLL_INITIAL_SECONDS"
    )
    poll_max_seconds: Annotated[float, Field(gt=0)] = Field(
        30.0, validation_alias="ORCH_POLL_MAX_SECONDS"
    )
    poll_backoff: Annotated[float, Field(ge=1)] = Field(1.5, validation_alias="ORCH_POLL_BACKOFF")
    node_wait_timeout_seconds: Annotated[float, Field(gt=0)] = Field(
        1800.0, validation_alias="ORCH_NODE_WAIT_TIMEOUT_SECONDS"
    )
    job_timeout_seconds: Annotated[float, Field(gt=0)] = Field(
        6 * 3600.0, validation_alias="ORCH_JOB_TIMEOUT_SECONDS"
    )
    # Retries of one step on transient Azure errors before the run fails.
    step_max_retries: Annotated[int, Field(ge=0)] = Field(
        8, validation_alias="ORCH_STEP_MAX_RETRIES"
    )
    # Broker redelivery of unacked tasks after this many seconds. Waits no
    # longer sit in the broker (they are in the due index), and a dead
    # worker's step is re-driven after its lease, so this is only a backstop.
    visibility_timeout_seconds: Annotated[int, Field(gt=0)] = Field(
        3600, validation_alias="ORCH_VISIBILITY_TIMEOUT_SECONDS"
    )
    # A step's lease on its run: renewed every third of this while the step
    # executes; a worker that dies stops renewing, and after this long the
    # re-driver hands the step to another worker.
    lease_seconds: Annotated[float, Field(gt=0)] = Field(
        30.0, validation_alias="ORCH_LEASE_SECONDS"
    )
    # How often a worker's chain clock looks for runs whose step lost its
    # worker (Redis reads only; one worker per interval does it).
    redrive_interval_seconds: Annotated[float, Field(gt=0)] = Field(
        5.0, validation_alias="ORCH_REDRIVE_INTERVAL_SECONDS"
    )
    # A step sent or started this long ago, with no lease and no scheduled
    # message, lost its message (a dead worker held it): it is sent again.
    redrive_after_seconds: Annotated[float, Field(gt=0)] = Field(
        30.0, validation_alias="ORCH_REDRIVE_AFTER_SECONDS"
    )
    reaper_interval_seconds: Annotated[float, Field(gt=0)] = Field(
        300.0, validation_alias="ORCH_REAPER_INTERVAL_SECONDS"
    )
    reaper_grace_seconds: Annotated[float, Field(ge=0)] = Field(
        900.0, validation_alias="ORCH_REAPER_GRACE_SECONDS"
    )
    log_level: str = Field("INFO", validation_alias="ORCH_LOG_LEVEL")

    # --- HTTP API ----------------------------------------------------------
    api_token: SecretStr | None = Field(None, validation_alias="ORCH_API_TOKEN")
    # Serving without a token must be asked for explicitly (dev only).
    api_allow_unauthenticated: bool = Field(
        False, validation_alias="ORCH_API_ALLOW_UNAUTHENTICATED"
    )
    api_max_body_bytes: Annotated[int, Field(gt=0)] = Field(
        256 * 1024, validation_alias="ORCH_API_MAX_BODY_BYTES"
    )

    # --- The emulator and the API's event streams --------------------------
    # The local emulator's bearer token (its env file's AZURE_EMULATOR_TOKEN); it
    # refuses every other token. Used only when uses_emulator.
    azure_emulator_token: SecretStr | None = Field(None, validation_alias="AZURE_EMULATOR_TOKEN")
    # Open event streams (SSE): at most this many in all, and per client address; they
    # use their own Redis connections, so the other routes keep working at the cap.
    api_max_streams: Annotated[int, Field(gt=0)] = Field(
        100, validation_alias="ORCH_API_MAX_STREAMS"
    )
    api_max_streams_per_client: Annotated[int, Field(gt=0)] = Field(
        10, validation_alias="ORCH_API_MAX_STREAMS_PER_CLIENT"
    )

    # --- Webhooks (signed deliveries when runs end) ------------------------
    # Allow webhook URLs that resolve to loopback, link-local or private addresses
    # (refused by default, at submission and at each delivery). Tests and labs only.
    webhook_allow_private: bool = Field(False, validation_alias="ORCH_WEBHOOK_ALLOW_PRIVATE")
    # One delivery attempt's time-out (connect + answer).
    webhook_timeout_seconds: Annotated[float, Field(gt=0)] = Field(
        5.0, validation_alias="ORCH_WEBHOOK_TIMEOUT_SECONDS"
    )
    # Retries back off exponentially (first after this) until this long after the
    # first attempt; then the delivery is given up.
    webhook_retry_initial_seconds: Annotated[float, Field(gt=0)] = Field(
        5.0, validation_alias="ORCH_WEBHOOK_RETRY_INITIAL_SECONDS"
    )
    webhook_retry_for_seconds: Annotated[float, Field(gt=0)] = Field(
        24 * 3600.0, validation_alias="ORCH_WEBHOOK_RETRY_FOR_SECONDS"
    )
    # A receiver URL whose delivery attempts failed this many times in a row (over all
    # runs) is disabled for ORCH_WEBHOOK_RETRY_FOR_SECONDS.
    webhook_disable_after: Annotated[int, Field(gt=0)] = Field(
        50, validation_alias="ORCH_WEBHOOK_DISABLE_AFTER"
    )
    # CA bundle trusted for receivers besides the system's (a private CA; the tests').
    webhook_ca_bundle: str | None = Field(None, validation_alias="ORCH_WEBHOOK_CA_BUNDLE")

    @field_validator("artifacts_dir")
    @classmethod
    def _absolute_artifacts_dir(cls, value: Path) -> Path:
        # Resolved once, when the settings load: a command run from a subfolder,
        # a worker started elsewhere and the API all name the same folder.
        return value.expanduser().absolute()

    @field_validator("azure_arm_endpoint")
    @classmethod
    def _strip_trailing_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @property
    def uses_emulator(self) -> bool:
        """True when ARM is not a public Azure cloud endpoint (the local emulator)."""
        host = self.azure_arm_endpoint.split("://", 1)[-1].split("/", 1)[0].split(":", 1)[0]
        return host in {"127.0.0.1", "localhost", "::1"} or host.startswith("emulator")

    @property
    def has_service_principal(self) -> bool:
        return bool(self.azure_tenant_id and self.azure_client_id and self.azure_client_secret)


class SettingsError(ValueError):
    """The environment or .env holds a value the settings refuse; names the variable."""


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Process-wide settings; tests build their own Settings(...) instead.

    SettingsError names each bad variable and never echoes its value.
    """
    try:
        return Settings()
    except ValidationError as exc:
        raise SettingsError(f"invalid setting: {format_validation_error(exc)}") from None
