"""Named API keys in Redis: only a SHA-256 digest of each key is kept.

The keys are 256-bit random strings, so a fast hash is safe to store (nothing
guessable to brute-force) and cheap to compute on every request. A request's
key is looked up by its digest in Redis every time (lua/touch_api_key.lua,
which also records the use): there is no per-process cache, so a revoke holds
at once on every API process.

Key changes (created, revoked) are events in the audit stream, with the name
of whoever made them. Layout in keys.py.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from dataclasses import dataclass
from typing import Any, cast

import redis

from orchestrator.domain.access import (
    RateLimit,
    Scope,
    format_scopes,
    parse_rate,
    parse_scopes,
    validate_key_name,
)
from orchestrator.domain.notify import NotifySpec
from orchestrator.store.errors import StoreError
from orchestrator.store.keys import Keys
from orchestrator.store.listing import text
from orchestrator.store.lua import load_script

# Keys and signing secrets carry a prefix, so that a leaked one is recognisable
# (secret scanners, the log redaction in observability/logs.py).
KEY_PREFIX = "orch_"
SIGNING_SECRET_PREFIX = "whsec_"  # the Standard Webhooks form: whsec_<base64>
KEY_BYTES = 32  # 256 bits
AUDIT_READ_LIMIT = 1000


class KeyExists(StoreError):
    def __init__(self, name: str) -> None:
        super().__init__(f"name: a key named {name!r} already exists (revoke it first)")
        self.name = name


class KeyNotFound(StoreError):
    def __init__(self, name: str) -> None:
        super().__init__(f"name: no key named {name!r}")
        self.name = name


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(KEY_BYTES)


def new_signing_secret() -> str:
    return SIGNING_SECRET_PREFIX + base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode()


def key_digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class ApiKey:
    """What a key is, without the key: its public view."""

    name: str
    scopes: frozenset[Scope]
    rate: RateLimit | None = None
    created_at: float = 0.0
    last_used_at: float | None = None
    # The webhook its runs get when a submission carries no `notify` of its own.
    notify: NotifySpec | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "scopes": format_scopes(self.scopes),
            "rate": str(self.rate) if self.rate else None,
            "created_at": self.created_at,
            "last_used_at": self.last_used_at,
            "notify": self.notify.model_dump(mode="json") if self.notify else None,
        }


@dataclass(frozen=True)
class NewKey:
    """A key just created: the only time its secret parts exist outside the caller."""

    key: ApiKey
    secret: str
    signing_secret: str


@dataclass(frozen=True)
class AuditEvent:
    id: str
    kind: str
    ts: float
    data: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "ts": self.ts, "data": self.data}


def _dump(data: dict[str, Any]) -> str:
    return json.dumps(data, separators=(",", ":"))


class KeyRing:
    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self.redis = client
        self.keys = keys
        self._create = client.register_script(load_script("create_api_key"))
        self._revoke = client.register_script(load_script("revoke_api_key"))
        self._touch = client.register_script(load_script("touch_api_key"))

    def create(
        self,
        name: str,
        scopes: frozenset[Scope],
        rate: RateLimit | None = None,
        *,
        by: str,
        now: float | None = None,
        notify: NotifySpec | None = None,
    ) -> NewKey:
        """A new key named `name`; KeyExists if the name is taken."""
        validate_key_name(name)
        now = time.time() if now is None else now
        secret, signing_secret = new_key(), new_signing_secret()
        digest = key_digest(secret)
        api_key = ApiKey(name=name, scopes=scopes, rate=rate, created_at=now, notify=notify)
        event = {
            "name": name,
            "by": by,
            "scopes": format_scopes(scopes),
            "rate": api_key.to_json()["rate"],
        }
        outcome = text(
            self._create(
                keys=[
                    self.keys.api_key(digest),
                    self.keys.api_key_name(name),
                    self.keys.api_keys,
                    self.keys.audit,
                ],
                args=[
                    name,
                    digest,
                    ",".join(format_scopes(scopes)),
                    str(rate) if rate else "",
                    repr(now),
                    signing_secret,
                    "key.created",
                    _dump(event),
                    notify.model_dump_json() if notify else "",
                ],
            )
        )
        if outcome == "exists":
            raise KeyExists(name)
        return NewKey(key=api_key, secret=secret, signing_secret=signing_secret)

    def authenticate(self, secret: str, now: float | None = None) -> ApiKey | None:
        """The key `secret` is, recording its use; None if unknown or revoked."""
        if not secret.startswith(KEY_PREFIX):
            return None  # not one of ours: no Redis round trip
        now = time.time() if now is None else now
        found = self._touch(keys=[self.keys.api_key(key_digest(secret))], args=[repr(now)])
        if not found:
            return None
        name, scopes, rate, notify = (text(v) if v is not None else "" for v in found)
        return ApiKey(
            name=name,
            scopes=parse_scopes(scopes),
            rate=parse_rate(rate) if rate else None,
            last_used_at=now,
            notify=NotifySpec.model_validate_json(notify) if notify else None,
        )

    def get(self, name: str) -> ApiKey:
        digest = self.redis.get(self.keys.api_key_name(name))
        if digest is None:
            raise KeyNotFound(name)
        fields = cast(
            list[bytes | None],
            self.redis.hmget(
                self.keys.api_key(text(digest)),
                ["name", "scopes", "rate", "created_at", "last_used_at", "notify"],
            ),
        )
        if fields[0] is None:
            raise KeyNotFound(name)
        values = [text(value) if value is not None else "" for value in fields]
        return ApiKey(
            name=values[0],
            scopes=parse_scopes(values[1]),
            rate=parse_rate(values[2]) if values[2] else None,
            created_at=float(values[3] or 0),
            last_used_at=float(values[4]) if values[4] else None,
            notify=NotifySpec.model_validate_json(values[5]) if values[5] else None,
        )

    def signing_secret(self, name: str) -> str | None:
        """The key's webhook signing secret (for the deliveries only; never shown again)."""
        digest = self.redis.get(self.keys.api_key_name(name))
        if digest is None:
            return None
        value = self.redis.hget(self.keys.api_key(text(digest)), "signing_secret")
        return text(value) if value is not None else None

    def all(self) -> list[ApiKey]:
        """Every live key, oldest first."""
        found: list[ApiKey] = []
        for member in self.redis.zrange(self.keys.api_keys, 0, -1):
            try:
                found.append(self.get(text(member)))
            except KeyNotFound:
                continue  # revoked between the two reads
        return found

    def revoke(self, name: str, *, by: str, now: float | None = None) -> None:
        """Delete the key named `name` (its digest goes, so it fails at once); KeyNotFound."""
        digest = self.redis.get(self.keys.api_key_name(name))
        if digest is None:
            raise KeyNotFound(name)
        now = time.time() if now is None else now
        outcome = text(
            self._revoke(
                keys=[
                    self.keys.api_key(text(digest)),
                    self.keys.api_key_name(name),
                    self.keys.api_keys,
                    self.keys.audit,
                ],
                args=[
                    name,
                    text(digest),
                    repr(now),
                    "key.revoked",
                    _dump({"name": name, "by": by}),
                ],
            )
        )
        if outcome != "revoked":
            raise KeyNotFound(name)

    def audit(self, limit: int = AUDIT_READ_LIMIT) -> list[AuditEvent]:
        """Key changes, newest first."""
        entries = cast(
            list[tuple[bytes, dict[bytes, bytes]]],
            self.redis.xrevrange(self.keys.audit, count=limit),
        )
        events: list[AuditEvent] = []
        for entry_id, fields in entries:
            values = {text(k): text(v) for k, v in fields.items()}
            events.append(
                AuditEvent(
                    id=text(entry_id),
                    kind=values.get("kind", ""),
                    ts=float(values.get("ts", "0")),
                    data=json.loads(values.get("data", "{}")),
                )
            )
        return events
