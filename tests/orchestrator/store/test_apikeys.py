"""The key ring on fakeredis: digests only, lookups per call, revocation, audit."""

from __future__ import annotations

import hashlib

import pytest
import redis

from orchestrator.domain.access import RateLimit, Scope
from orchestrator.domain.notify import NotifySpec, WebhookEvent
from orchestrator.store.apikeys import (
    KEY_PREFIX,
    KeyExists,
    KeyNotFound,
    KeyRing,
    key_digest,
)
from orchestrator.store.keys import Keys


@pytest.fixture
def ring(fake_redis: redis.Redis) -> KeyRing:
    return KeyRing(fake_redis, Keys())


def _everything_stored(client: redis.Redis) -> bytes:
    """Every key name and value in the database, concatenated."""
    dump = b""
    for key in client.scan_iter():
        dump += key
        kind = client.type(key)
        if kind == b"hash":
            for field, value in client.hgetall(key).items():
                dump += field + value
        elif kind == b"string":
            dump += client.get(key) or b""
        elif kind == b"zset":
            dump += b"".join(client.zrange(key, 0, -1))
        elif kind == b"stream":
            for _id, fields in client.xrange(key):
                dump += b"".join(k + v for k, v in fields.items())
    return dump


def test_create_returns_a_256_bit_key_and_stores_only_its_digest(
    ring: KeyRing, fake_redis: redis.Redis
) -> None:
    created = ring.create(
        "dashboard", frozenset({Scope.READ}), RateLimit(10, "second"), by="admin", now=100.0
    )
    assert created.secret.startswith(KEY_PREFIX)
    assert len(created.secret) - len(KEY_PREFIX) == 43  # 32 bytes, base64url
    stored = _everything_stored(fake_redis)
    assert created.secret.encode() not in stored
    assert hashlib.sha256(created.secret.encode()).hexdigest().encode() in stored
    assert created.key.to_json() == {
        "name": "dashboard",
        "scopes": ["read"],
        "rate": "10/second",
        "created_at": 100.0,
        "last_used_at": None,
        "notify": None,
    }


def test_authenticate_finds_the_key_and_records_its_use(ring: KeyRing) -> None:
    created = ring.create("svc", frozenset({Scope.SUBMIT, Scope.READ}), by="admin", now=1.0)
    key = ring.authenticate(created.secret, now=50.0)
    assert key is not None
    assert (key.name, key.scopes, key.rate) == ("svc", {Scope.SUBMIT, Scope.READ}, None)
    assert ring.get("svc").last_used_at == 50.0


@pytest.mark.parametrize("given", ["", "orch_", "orch_" + "A" * 43, "Bearer x", "some-token"])
def test_unknown_keys_are_none(ring: KeyRing, given: str) -> None:
    ring.create("svc", frozenset({Scope.READ}), by="admin")
    assert ring.authenticate(given) is None


def test_a_revoked_key_fails_at_once_and_the_name_is_free_again(ring: KeyRing) -> None:
    created = ring.create("svc", frozenset({Scope.READ}), by="admin")
    assert ring.authenticate(created.secret) is not None
    ring.revoke("svc", by="ops")
    assert ring.authenticate(created.secret) is None
    with pytest.raises(KeyNotFound, match="name: no key named 'svc'"):
        ring.get("svc")
    assert ring.all() == []
    again = ring.create("svc", frozenset({Scope.READ}), by="admin")
    assert ring.authenticate(again.secret) is not None
    assert ring.authenticate(created.secret) is None


def test_names_are_unique(ring: KeyRing) -> None:
    ring.create("svc", frozenset({Scope.READ}), by="admin")
    with pytest.raises(KeyExists, match="name: a key named 'svc' already exists"):
        ring.create("svc", frozenset({Scope.ADMIN}), by="admin")


def test_revoking_an_unknown_key_is_key_not_found(ring: KeyRing) -> None:
    with pytest.raises(KeyNotFound):
        ring.revoke("nobody", by="admin")


def test_key_changes_are_audit_events_with_who_made_them(ring: KeyRing) -> None:
    ring.create("svc", frozenset({Scope.READ}), RateLimit(5, "minute"), by="admin")
    ring.revoke("svc", by="ops-key")
    events = ring.audit()
    assert [(e.kind, e.data["name"], e.data["by"]) for e in events] == [
        ("key.revoked", "svc", "ops-key"),
        ("key.created", "svc", "admin"),
    ]
    assert events[1].data["scopes"] == ["read"]
    assert events[1].data["rate"] == "5/minute"


def test_list_is_oldest_first_and_never_holds_a_secret(ring: KeyRing) -> None:
    first = ring.create("a", frozenset({Scope.READ}), by="admin", now=1.0)
    ring.create("b", frozenset({Scope.SUBMIT}), by="admin", now=2.0)
    listed = [key.to_json() for key in ring.all()]
    assert [key["name"] for key in listed] == ["a", "b"]
    assert first.secret not in repr(listed)
    assert key_digest(first.secret) not in repr(listed)


def test_the_signing_secret_is_kept_for_deliveries(ring: KeyRing) -> None:
    created = ring.create("svc", frozenset({Scope.READ}), by="admin")
    assert created.signing_secret.startswith("whsec_")
    assert ring.signing_secret("svc") == created.signing_secret
    assert ring.signing_secret("nobody") is None


def test_a_default_webhook_subscription_is_kept_with_the_key(ring: KeyRing) -> None:
    notify = NotifySpec(url="https://hooks.example/t", events=[WebhookEvent.RUN_FAILED])
    created = ring.create("svc", frozenset({Scope.SUBMIT}), by="admin", notify=notify)
    found = ring.authenticate(created.secret)
    assert found is not None and found.notify == notify
    assert ring.get("svc").notify == notify
    assert ring.get("svc").to_json()["notify"] == {
        "url": "https://hooks.example/t",
        "events": ["run.failed"],
    }
    plain = ring.create("plain", frozenset({Scope.READ}), by="admin")
    assert ring.get("plain").notify is None
    assert ring.authenticate(plain.secret) is not None
