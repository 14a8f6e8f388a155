"""Request and response bodies of the HTTP API (the OpenAPI schema is built from these)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from orchestrator.domain.ids import RUN_ID_PATTERN
from orchestrator.domain.notify import NotifySpec
from orchestrator.domain.spec import Parameters, RunSpec
from orchestrator.domain.status import RunStatus
from orchestrator.store import RunRecord

RUNS_PATH = "/v1/runs"
UPLOADS_PATH = "/v1/uploads"


class RunRequest(BaseModel):
    """A run to start: the run spec, plus parameter overrides kept apart from it.

    Sweeps and schedules post one spec many times with different `parameters`;
    they are merged over `spec.parameters` before the run is created, so the
    stored spec is the one that actually runs. Each input is `upload:<id>` (see
    /v1/uploads), `share:<path>`, or a path of the workers' machines under
    ORCH_INPUT_ROOTS.
    """

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "spec": {
                        "name": "mnist-convnet",
                        "job": {"script": "ConvNet_MNIST.py", "args": ["$AZ_BATCHAI_INPUT_SAMPLE"]},
                        "inputs": {"SAMPLE": "share:datasets/mnist"},
                        "outputs": ["MODEL"],
                    },
                    "parameters": {"epochs": 3},
                }
            ]
        },
    )

    spec: RunSpec
    parameters: Parameters = Field(
        default_factory=dict, description="Merged over spec.parameters (appended as --key value)."
    )
    run_id: Annotated[str, Field(pattern=RUN_ID_PATTERN)] | None = Field(
        None, description="Caller-chosen run id; the same id with the same spec is the same run."
    )
    notify: NotifySpec | None = Field(
        None,
        description="Webhook called when the run ends (https; signed with the submitting "
        "key's signing secret, so a named API key is needed).",
    )


class RunLinks(BaseModel):
    self: str
    events: str
    outputs: str
    cancel: str

    @classmethod
    def for_run(cls, run_id: str) -> RunLinks:
        base = f"{RUNS_PATH}/{run_id}"
        return cls(
            self=base, events=f"{base}/events", outputs=f"{base}/outputs", cancel=f"{base}/cancel"
        )


class RunAccepted(BaseModel):
    run_id: str
    status: RunStatus
    links: RunLinks


class RunView(RunRecord):
    """The run record as stored (it holds no secrets), with links to its sub-resources."""

    links: RunLinks

    @classmethod
    def of(cls, record: RunRecord) -> RunView:
        return cls(**dict(record), links=RunLinks.for_run(record.run_id))


class RunPage(BaseModel):
    items: list[RunView]
    next_cursor: str | None = Field(None, description="Pass as `cursor` for the next page.")


class OutputFile(BaseModel):
    path: str = Field(description="Relative to the run's artifacts; append to .../outputs/.")
    size: int


class OutputList(BaseModel):
    run_id: str
    files: list[OutputFile]


class Health(BaseModel):
    status: str
    redis: str
    broker: str


class UploadState(BaseModel):
    upload_id: str = Field(description="Use as upload:<upload_id> in a spec's inputs.")
    committed: bool = Field(description="True once every content is stored.")
    missing: list[str] = Field(description="sha256 of each content still to PUT.")


class ContentStored(BaseModel):
    sha256: str
    size: int
    stored: bool = Field(description="False when the share already held this content.")
