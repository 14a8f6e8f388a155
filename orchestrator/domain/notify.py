"""What a caller asks to be told when its run ends: a webhook subscription.

`{"url": "https://...", "events": ["run.succeeded", "run.failed", "run.cancelled"]}`.
The URL must be https; whether its host is a private address is checked where a
resolver is at hand (chain/webhooks.py), at submission and at each delivery.
"""

from __future__ import annotations

from enum import StrEnum
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

from orchestrator.domain.status import RunStatus


class WebhookEvent(StrEnum):
    RUN_SUCCEEDED = "run.succeeded"
    RUN_FAILED = "run.failed"
    RUN_CANCELLED = "run.cancelled"


ENDING_EVENTS = {
    RunStatus.SUCCEEDED: WebhookEvent.RUN_SUCCEEDED,
    RunStatus.FAILED: WebhookEvent.RUN_FAILED,
    RunStatus.CANCELLED: WebhookEvent.RUN_CANCELLED,
}
MAX_URL_LENGTH = 2000


class NotifySpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = Field(max_length=MAX_URL_LENGTH)
    events: list[WebhookEvent] = Field(
        default_factory=lambda: list(WebhookEvent), min_length=1, max_length=len(WebhookEvent)
    )

    @field_validator("url")
    @classmethod
    def _https(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme != "https" or not parts.hostname:
            raise ValueError("must be an https:// URL with a host")
        if parts.username or parts.password:
            raise ValueError("must not carry credentials")
        return value

    def wants(self, status: RunStatus) -> WebhookEvent | None:
        event = ENDING_EVENTS.get(status)
        return event if event is not None and event in self.events else None
