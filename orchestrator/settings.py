"""The one Settings object: read from the environment and a .env file.

Azure names follow the Azure SDKs' own environment variables (AZURE_*), so the
emulator's env file (`orchestrator emulator --env-file`) configures a worker
as-is. The orchestrator's own knobs carry the ORCH_ prefix.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from orchestrator.domain.spec import format_validation_error, parse_iso8601_duration

if TYPE_CHECKING:  # the store package imports this module (through observability)
    from orchestrator.store.connection import RedisTarget

PUBLIC_CLOUD_ARM_ENDPOINT = "https://management.azure.com"
# Long enough to look back over a month of runs (and to debug a failure found
# weeks later), short enough that Redis holds a bounded number of them.
DEFAULT_RUN_RETENTION_SECONDS = 30 * 86400.0


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
    # One server (redis://, rediss://, unix://) or a Sentinel deployment:
    # sentinel://[:PASSWORD@]HOST:PORT;sentinel://[:PASSWORD@]HOST:PORT/DB, the form
    # kombu reads (the password and database are the data nodes'; see
    # orchestrator/store/connection.py). Broker and run store follow the master.
    redis_url: str = Field("redis://127.0.0.1:6379/0", validation_alias="REDIS_URL")
    # The master's name in the Sentinels' `sentinel monitor <name> ...` (only with
    # sentinel://). "mymaster" is the name Redis' sample sentinel.conf, kombu's and
    # Celery's docs and the common Helm charts use, so a stock setup needs no value.
    redis_sentinel_master: str = Field(
        "mymaster", min_length=1, validation_alias="ORCH_REDIS_SENTINEL_MASTER"
    )
    # The Sentinels' own password (their requirepass), when they have one; the
    # master's and replicas' password goes in REDIS_URL.
    redis_sentinel_password: SecretStr | None = Field(
        None, validation_alias="ORCH_REDIS_SENTINEL_PASSWORD"
    )

    # --- Orchestrator knobs (ORCH_*) ---------------------------------------
    artifacts_dir: Path = Field(Path("artifacts"), validation_alias="ORCH_ARTIFACTS_DIR")
    # Waiting steps reschedule themselves: first after poll_initial, growing
    # by poll_backoff up to poll_max. Growing by 1.5 makes each wait about half
    # of the time waited so far, so a short job is noticed within seconds; the
    # 120 s ceiling is the polling budget: at most 41 Jobs_Get in a job's first
    # hour and 30 an hour after it (ARM's read limit is per subscription, and
    # 200 long jobs at 30/h take 1.7 reads/s of its 25/s refill;
    # benchmarks/poll_budget.py, docs/benchmarks.md). The waits live in the due
    # index (Redis), not in the broker; poll_max must still stay under half of
    # ORCH_VISIBILITY_TIMEOUT_SECONDS, which caps every countdown.
    poll_initial_seconds: Annotated[float, Field(gt=0)] = Field(
        1.0, validation_alias="ORCH_POLL_INITIAL_SECONDS"
    )
    poll_max_seconds: Annotated[float, Field(gt=0)] = Field(
        120.0, validation_alias="ORCH_POLL_MAX_SECONDS"
    )
    poll_backoff: Annotated[float, Field(ge=1)] = Field(1.5, validation_alias="ORCH_POLL_BACKOFF")
    # A sweep's tick: one listing of its jobs per interval, whatever the number
    # of trials; its trials' steps read that listing instead of polling Azure
    # each. This is the shortest interval: it grows with the age of the youngest
    # running job (orchestrator/chain/sweeps.py: next_interval).
    sweep_poll_seconds: Annotated[float, Field(ge=0.2, le=300)] = Field(
        1.0, validation_alias="ORCH_SWEEP_POLL_SECONDS"
    )
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
    # Ended runs (succeeded, failed, cancelled) are deleted from Redis this long
    # after they finished, with their events and index entries; None (`never`)
    # keeps them forever. Seconds, or an ISO 8601 duration such as P30D.
    run_retention_seconds: float | None = Field(
        DEFAULT_RUN_RETENTION_SECONDS, validation_alias="ORCH_RUN_RETENTION"
    )
    log_level: str = Field("INFO", validation_alias="ORCH_LOG_LEVEL")

    # --- Inputs and outputs ------------------------------------------------
    # Folders of the workers' machines from which a spec may name input paths
    # (separated by ":"). Empty by default: a caller's path is never read by a
    # worker unless an operator allowed its folder.
    input_roots_text: str = Field("", validation_alias="ORCH_INPUT_ROOTS")
    # Largest upload the API accepts: one file, and all the files of one manifest.
    input_max_bytes: Annotated[int, Field(gt=0)] = Field(
        10 * 1024**3, validation_alias="ORCH_INPUT_MAX_BYTES"
    )
    # Uploaded files no live run references are deleted from the share this long
    # after their last use (ISO 8601 duration, or seconds).
    upload_retention: str = Field("P7D", validation_alias="ORCH_UPLOAD_RETENTION")
    # Collected outputs per run (the record and the worker's copy): past either
    # bound the run keeps what fits and records outputs_truncated.
    output_max_files: Annotated[int, Field(gt=0)] = Field(
        10_000, validation_alias="ORCH_OUTPUT_MAX_FILES"
    )
    output_max_bytes: Annotated[int, Field(gt=0)] = Field(
        10 * 1024**3, validation_alias="ORCH_OUTPUT_MAX_BYTES"
    )
    # A finished run's outputs on the share are deleted this long after it ended;
    # "keep" (the default) never deletes them.
    output_retention: str = Field("keep", validation_alias="ORCH_OUTPUT_RETENTION")

    # --- HTTP API ----------------------------------------------------------
    api_token: SecretStr | None = Field(None, validation_alias="ORCH_API_TOKEN")
    # Serving without a token must be asked for explicitly (dev only).
    api_allow_unauthenticated: bool = Field(
        False, validation_alias="ORCH_API_ALLOW_UNAUTHENTICATED"
    )
    api_max_body_bytes: Annotated[int, Field(gt=0)] = Field(
        256 * 1024, validation_alias="ORCH_API_MAX_BODY_BYTES"
    )
    # Where the CLI finds the API: with it set, `submit` and `outputs` go through
    # the API (token: ORCH_API_TOKEN) rather than straight to Redis and the share.
    api_url: str | None = Field(None, validation_alias="ORCH_API_URL")

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

    @field_validator("upload_retention", "output_retention")
    @classmethod
    def _retention(cls, value: str) -> str:
        retention_seconds(value)  # refused here, when the settings load
        return value

    @property
    def input_roots(self) -> list[Path]:
        return [Path(part) for part in self.input_roots_text.split(":") if part.strip()]

    @property
    def upload_retention_seconds(self) -> float | None:
        """None: keep uploads forever."""
        return retention_seconds(self.upload_retention)

    @property
    def output_retention_seconds(self) -> float | None:
        """None: keep outputs forever."""
        return retention_seconds(self.output_retention)

    @field_validator("run_retention_seconds", mode="before")
    @classmethod
    def _parse_retention(cls, value: object) -> object:
        """`never`, seconds (`2592000`) or an ISO 8601 duration (`P30D`, `PT12H`)."""
        if not isinstance(value, str):
            return value
        text = value.strip()
        if text.lower() == "never":
            return None
        try:
            return float(text)
        except ValueError:
            pass
        try:
            return parse_iso8601_duration(text)
        except ValueError:
            raise ValueError(
                f"{text!r} is not `never`, a number of seconds or an ISO 8601 duration such as P30D"
            ) from None

    @field_validator("run_retention_seconds")
    @classmethod
    def _positive_retention(cls, value: float | None) -> float | None:
        if value is not None and not (0 < value < float("inf")):
            raise ValueError("must be a positive duration (or `never`)")
        return value

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
    def redis_target(self) -> RedisTarget:
        """REDIS_URL with the Sentinel settings: what every Redis client and the
        Celery broker are built from (orchestrator.store.connection)."""
        from orchestrator.store.connection import RedisTarget

        password = self.redis_sentinel_password
        return RedisTarget(
            self.redis_url,
            sentinel_master=self.redis_sentinel_master,
            sentinel_password=password.get_secret_value() if password else None,
        )

    @property
    def has_service_principal(self) -> bool:
        return bool(self.azure_tenant_id and self.azure_client_id and self.azure_client_secret)


def retention_seconds(text: str) -> float | None:
    """Seconds in a retention setting: an ISO 8601 duration (P7D), a number of
    seconds, or "keep" (None)."""
    cleaned = text.strip()
    if cleaned.lower() in ("keep", "never"):  # never delete (ORCH_RUN_RETENTION says never)
        return None
    try:
        seconds = float(cleaned)
    except ValueError:
        return parse_iso8601_duration(cleaned)
    if seconds <= 0:
        raise ValueError("must be a positive duration, or keep")
    return seconds


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
