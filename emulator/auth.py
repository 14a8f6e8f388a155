"""The emulator's access token, ARM bearer checks, Azure Storage SharedKey verification,
and file service SAS.

The signing algorithms mirror azure-storage-common 2.1.0
(_StorageSharedKeyAuthentication.sign_request) and azure-storage-file 2.1.0
(FileSharedAccessSignature.generate_file) so the unmodified SDK verifies here.
Nothing in this module logs or echoes a key, a signature or a token.
"""

from __future__ import annotations

import base64
import datetime
import email.utils
import hashlib
import hmac
import os
import re
import secrets
from pathlib import Path
from urllib.parse import quote

from emulator.errors import Forbidden, Unauthorized
from emulator.http import Request

SAS_VERSION = "2019-02-02"
SAS_TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
MAX_REQUEST_DATE_SKEW = datetime.timedelta(minutes=15)
_BEARER = re.compile(r"Bearer [A-Za-z0-9\-._~+/]+=*")
_SIGNED_HEADERS = (
    "content-encoding",
    "content-language",
    "content-length",
    "content-md5",
    "content-type",
    "date",
    "if-modified-since",
    "if-match",
    "if-none-match",
    "if-unmodified-since",
    "byte_range",
)
# Permission letter a SAS must carry for each method (Azure Files service SAS).
_SAS_PERMISSION_FOR_METHOD = {"GET": "r", "HEAD": "r", "PUT": "w", "DELETE": "d"}


ACCESS_TOKEN_FILE = "access-token"


def load_access_token(data_dir: Path, configured: str | None) -> str:
    """The bearer token ARM, Batch AI and control calls must carry: the configured one,
    else generated once per data dir and kept in <data-dir>/access-token (mode 0600).

    There is no identity service; without a secret any local process (or anyone who
    can reach the port) could drive the emulator and, through job command lines, run
    processes as the emulator's user.
    """
    if configured:
        return configured
    path = data_dir / ACCESS_TOKEN_FILE
    if path.is_file():
        stored = path.read_text().strip()
        if stored:
            return stored
    token = secrets.token_urlsafe(32)
    data_dir.mkdir(parents=True, exist_ok=True)
    # Created private: a chmod after writing would leave a moment where it is readable.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(token)
    return token


def require_bearer(request: Request, token: str) -> None:
    """ARM, Batch AI and control calls: `Authorization: Bearer <the emulator's token>`."""
    value = request.headers.get("authorization", "")
    if not value:
        raise Unauthorized(
            "AuthenticationFailed",
            "Authentication failed. The 'Authorization' header is missing.",
        )
    if not _BEARER.fullmatch(value.strip()):
        raise Unauthorized(
            "AuthenticationFailed",
            "Authentication failed. The 'Authorization' header is not a well-formed Bearer token.",
        )
    presented = value.strip()[len("Bearer ") :]
    if not hmac.compare_digest(presented.encode(), token.encode()):
        raise Unauthorized(
            "InvalidAuthenticationToken",
            "The access token is invalid (use AZURE_EMULATOR_TOKEN from the emulator's env file).",
        )


def sign(key_base64: str, string_to_sign: str) -> str:
    digest = hmac.new(
        base64.b64decode(key_base64), string_to_sign.encode("utf-8"), hashlib.sha256
    ).digest()
    return base64.b64encode(digest).decode()


def shared_key_string_to_sign(request: Request, account: str) -> str:
    headers = {name: value for name, value in request.headers.items() if value}
    if headers.get("content-length") == "0":
        del headers["content-length"]
    parts = [request.method + "\n"]
    parts.append("\n".join(headers.get(name, "") for name in _SIGNED_HEADERS) + "\n")
    x_ms = sorted(
        (name, value) for name, value in request.headers.items() if name.startswith("x-ms-")
    )
    parts.append("".join(f"{name}:{value}\n" for name, value in x_ms))
    # The SDK signs the path exactly as it quoted it on the wire, and the decoded query.
    parts.append("/" + account + request.raw_path.split("?", 1)[0])
    parts.append(
        "".join(f"\n{name.lower()}:{value}" for name, value in sorted(request.query.items()))
    )
    return "".join(parts)


def verify_shared_key(request: Request, account: str, key_base64: str) -> None:
    scheme, _, credential = request.headers.get("authorization", "").partition(" ")
    name, _, signature = credential.partition(":")
    if scheme != "SharedKey" or name != account or not signature:
        raise _storage_auth_failed("the Authorization header is not a SharedKey for this account")
    expected = sign(key_base64, shared_key_string_to_sign(request, account))
    if not hmac.compare_digest(expected, signature):
        raise _storage_auth_failed("the request signature does not match the account key")
    _check_request_date(request.headers.get("x-ms-date") or request.headers.get("date"))


def _check_request_date(text: str | None) -> None:
    """Azure Storage refuses signed requests dated more than 15 minutes off (replays)."""
    if not text:
        raise _storage_auth_failed("x-ms-date is required")
    try:
        moment = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError) as exc:
        raise _storage_auth_failed("x-ms-date is not an RFC 1123 date") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    if abs(datetime.datetime.now(datetime.UTC) - moment) > MAX_REQUEST_DATE_SKEW:
        raise _storage_auth_failed("x-ms-date is more than 15 minutes from the server time")


def generate_file_sas(
    account: str,
    key_base64: str,
    share: str,
    path: str,
    permission: str,
    expiry: datetime.datetime,
    start: datetime.datetime | None = None,
) -> str:
    """A service SAS token for one file, as FileSharedAccessSignature.generate_file makes it."""
    fields: dict[str, str] = {}
    if start is not None:
        fields["st"] = start.astimezone(datetime.UTC).strftime(SAS_TIME_FORMAT)
    fields["se"] = expiry.astimezone(datetime.UTC).strftime(SAS_TIME_FORMAT)
    fields["sp"] = permission
    fields["sv"] = SAS_VERSION
    fields["sr"] = "f"
    fields["sig"] = sign(key_base64, _sas_string_to_sign(fields, account, f"{share}/{path}"))
    return "&".join(f"{name}={quote(value)}" for name, value in fields.items())


def _sas_string_to_sign(fields: dict[str, str], account: str, resource_path: str) -> str:
    def value(name: str) -> str:
        return fields.get(name, "") + "\n"

    canonical = f"/file/{account}/{resource_path.lstrip('/')}\n"
    text = (
        value("sp")
        + value("st")
        + value("se")
        + canonical
        + value("si")
        + value("sip")
        + value("spr")
        + value("sv")
        + value("rscc")
        + value("rscd")
        + value("rsce")
        + value("rscl")
        + value("rsct")
    )
    return text[:-1]


def has_sas(request: Request) -> bool:
    return "sig" in request.query


def verify_file_sas(request: Request, account: str, key_base64: str, share: str, path: str) -> None:
    """Check a SAS on a Files request for `path` (relative to the share, "" for the share)."""
    query = request.query
    resource = query.get("sr", "")
    if resource == "f":
        resource_path = f"{share}/{path}"
    elif resource == "s":
        resource_path = share
    else:
        raise _storage_auth_failed("the SAS resource (sr) must be f or s")
    expected = sign(key_base64, _sas_string_to_sign(query, account, resource_path))
    if not hmac.compare_digest(expected, query.get("sig", "")):
        raise _storage_auth_failed("the SAS signature does not match")
    now = datetime.datetime.now(datetime.UTC)
    try:
        expiry = _parse_sas_time(query["se"])
        start = _parse_sas_time(query["st"]) if query.get("st") else None
    except (KeyError, ValueError) as exc:
        raise _storage_auth_failed("the SAS start or expiry (st/se) is malformed") from exc
    if expiry < now:
        raise _storage_auth_failed("the SAS has expired (se)")
    if start is not None and start > now:
        raise _storage_auth_failed("the SAS is not valid yet (st)")
    needed = _SAS_PERMISSION_FOR_METHOD.get(request.method, "w")
    if needed not in query.get("sp", ""):
        raise Forbidden(
            "AuthorizationPermissionMismatch",
            f"This request is not authorized to perform this operation using this permission "
            f"(the SAS permission sp lacks '{needed}').",
        )


def _parse_sas_time(text: str) -> datetime.datetime:
    for fmt in (SAS_TIME_FORMAT, "%Y-%m-%d"):
        try:
            return datetime.datetime.strptime(text, fmt).replace(tzinfo=datetime.UTC)
        except ValueError:
            continue
    raise ValueError(text)


def _storage_auth_failed(reason: str) -> Forbidden:
    return Forbidden(
        "AuthenticationFailed",
        "Server failed to authenticate the request. Make sure the value of Authorization "
        f"header is formed correctly including the signature ({reason}).",
    )
