"""Dashboard sessions: the bearer token (or an API key) typed once into /ui/login
buys an HttpOnly, SameSite=Strict cookie naming a session kept in Redis.

The cookie holds only a random session id; Redis holds its SHA-256 (a copy of the
database names no live cookie) with the caller's name, the digest of the API key
used (re-checked on every request, so a revoked key ends its sessions at once), a
fingerprint of ORCH_API_TOKEN (changing the token ends the admin sessions) and
the session's CSRF token. The token itself is stored nowhere.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass

import redis

from orchestrator.api.auth import ANONYMOUS, BOOTSTRAP, Caller
from orchestrator.domain.access import parse_scopes
from orchestrator.store.apikeys import KeyRing, key_digest
from orchestrator.store.keys import Keys
from orchestrator.store.listing import text

COOKIE_NAME = "orch_ui_session"
# Path /: the same cookie lets the pages' links to the JSON API (GETs only) work.
COOKIE_PATH = "/"
SESSION_SECONDS = 12 * 3600
CSRF_FIELD = "csrf"


def _digest(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


def token_fingerprint(token: str) -> str:
    """Binds an admin session to the token it was opened with (not reversible)."""
    return hmac.new(token.encode(), b"orchestrator-ui-session", hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Session:
    caller: Caller
    csrf: str

    def csrf_ok(self, given: str | None) -> bool:
        return given is not None and hmac.compare_digest(given.encode(), self.csrf.encode())


class Sessions:
    """Opens, reads and closes dashboard sessions in Redis."""

    def __init__(
        self, client: redis.Redis, keys: Keys, keyring: KeyRing, token: str | None
    ) -> None:
        self.redis = client
        self.keys = keys
        self.keyring = keyring
        self.token = token

    def authenticate(self, given: str) -> tuple[Caller, str] | None:
        """(caller, key digest or "") for a token typed into the login form; None if wrong."""
        given = given.strip()
        if self.token is None:
            return ANONYMOUS, ""  # serving unauthenticated (asked for explicitly)
        if not given:
            return None
        if hmac.compare_digest(given.encode(), self.token.encode()):
            return BOOTSTRAP, ""
        key = self.keyring.authenticate(given)
        if key is None:
            return None
        return Caller(key.name, key.scopes, key.rate, key.notify), key_digest(given)

    def open(self, caller: Caller, digest: str) -> str:
        """A new session for `caller`; returns the cookie's value."""
        session_id = secrets.token_urlsafe(32)
        data = {
            "name": caller.name,
            "key": digest,
            "token": token_fingerprint(self.token) if self.token and not digest else "",
            "csrf": secrets.token_urlsafe(32),
        }
        self.redis.set(self.keys.ui_session(_digest(session_id)), json.dumps(data),
                       ex=SESSION_SECONDS)  # fmt: skip
        return session_id

    def get(self, session_id: str | None) -> Session | None:
        """The live session of this cookie value, or None."""
        if not session_id or len(session_id) > 200:
            return None
        raw = self.redis.get(self.keys.ui_session(_digest(session_id)))
        if raw is None:
            return None
        data = json.loads(text(raw))
        caller = self._caller(data)
        return Session(caller, str(data["csrf"])) if caller is not None else None

    def _caller(self, data: dict[str, str]) -> Caller | None:
        digest = data.get("key", "")
        if digest:
            name, scopes = self.redis.hmget(self.keys.api_key(digest), ["name", "scopes"])
            if name is None or text(name) != data["name"]:
                return None  # revoked (or its name given to another key)
            return Caller(data["name"], parse_scopes(text(scopes or b"")))
        if self.token is None:
            return ANONYMOUS
        if not hmac.compare_digest(data.get("token", ""), token_fingerprint(self.token)):
            return None  # opened with another ORCH_API_TOKEN
        return BOOTSTRAP

    def close(self, session_id: str | None) -> None:
        if session_id and len(session_id) <= 200:
            self.redis.delete(self.keys.ui_session(_digest(session_id)))
