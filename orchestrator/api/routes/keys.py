"""/v1/keys: named API keys with scopes and a rate (admin scope).

The key (and its webhook signing secret) is in the create response and nowhere
else: Redis keeps a digest. Every change is an audit event carrying the name of
the key that made it (GET /v1/audit)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Response
from pydantic import BaseModel, Field, field_validator

from orchestrator.api.auth import Caller
from orchestrator.api.deps import AdminAccess, KeyRingDep, SettingsDep
from orchestrator.api.errors import ERROR_RESPONSES, field_error
from orchestrator.chain import webhooks
from orchestrator.domain.access import (
    AccessError,
    RateLimit,
    Scope,
    format_scopes,
    parse_rate,
    parse_scopes,
    validate_key_name,
)
from orchestrator.domain.notify import NotifySpec
from orchestrator.store.apikeys import KeyExists, KeyNotFound

router = APIRouter(prefix="/v1/keys", tags=["keys"])
Admin = Annotated[Caller, AdminAccess]
_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "No key of that name"}}


class KeyRequest(BaseModel):
    name: str = Field(max_length=64, description="Lowercase letters, digits, . _ -")
    scopes: list[str] = Field(description="Any of read, submit, cancel, admin")
    rate: str | None = Field(None, max_length=40, description="e.g. 10/s, 100/minute")
    notify: NotifySpec | None = Field(
        None, description="Default webhook for this key's runs that carry no notify of their own"
    )

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        try:
            return validate_key_name(value)
        except AccessError as exc:
            raise ValueError(exc.reason) from None

    @field_validator("scopes")
    @classmethod
    def _scopes(cls, value: list[str]) -> list[str]:
        try:
            return format_scopes(parse_scopes(value))
        except AccessError as exc:
            raise ValueError(exc.reason) from None

    @field_validator("rate")
    @classmethod
    def _rate(cls, value: str | None) -> str | None:
        try:
            return None if value is None else str(parse_rate(value))
        except AccessError as exc:
            raise ValueError(exc.reason) from None

    def scope_set(self) -> frozenset[Scope]:
        return parse_scopes(self.scopes)

    def rate_limit(self) -> RateLimit | None:
        return parse_rate(self.rate) if self.rate else None


class KeyView(BaseModel):
    name: str
    scopes: list[str]
    rate: str | None
    created_at: float
    last_used_at: float | None
    notify: NotifySpec | None = None


class CreatedKey(KeyView):
    key: str = Field(description="The key: shown here once, never again")
    signing_secret: str = Field(
        description="Signs this key's webhook deliveries (Standard Webhooks): shown once"
    )


class KeyList(BaseModel):
    items: list[KeyView]


@router.post(
    "",
    status_code=201,
    response_model=CreatedKey,
    responses={**ERROR_RESPONSES, 409: {"description": "A key of that name exists"}},
)
def create_key(
    body: KeyRequest, caller: Admin, keyring: KeyRingDep, settings: SettingsDep
) -> CreatedKey:
    """Create a key; the response is the only place its secret ever appears."""
    if body.notify is not None:
        try:
            webhooks.check_destination(
                body.notify.url, allow_private=settings.webhook_allow_private
            )
        except webhooks.WebhookRefused as exc:
            raise field_error(("body", "notify", "url"), str(exc)) from None
    try:
        created = keyring.create(
            body.name, body.scope_set(), body.rate_limit(), by=caller.name, notify=body.notify
        )
    except KeyExists as exc:
        raise HTTPException(409, str(exc)) from None
    return CreatedKey(
        **created.key.to_json(), key=created.secret, signing_secret=created.signing_secret
    )


@router.get("", response_model=KeyList, responses=ERROR_RESPONSES, dependencies=[AdminAccess])
def list_keys(keyring: KeyRingDep) -> KeyList:
    return KeyList(items=[KeyView(**key.to_json()) for key in keyring.all()])


@router.get(
    "/{name}",
    response_model=KeyView,
    responses={**ERROR_RESPONSES, **_NOT_FOUND},
    dependencies=[AdminAccess],
)
def get_key(name: str, keyring: KeyRingDep) -> KeyView:
    try:
        return KeyView(**keyring.get(name).to_json())
    except KeyNotFound as exc:
        raise HTTPException(404, str(exc)) from None


@router.delete("/{name}", status_code=204, responses={**ERROR_RESPONSES, **_NOT_FOUND})
def revoke_key(name: str, caller: Admin, keyring: KeyRingDep) -> Response:
    """Revoke the key: every API process refuses it (401) from the next request on."""
    try:
        keyring.revoke(name, by=caller.name)
    except KeyNotFound as exc:
        raise HTTPException(404, str(exc)) from None
    return Response(status_code=204)
