"""Shares as plain directory trees under <data-dir>/shares/ (implements core.FileShares).

Jobs mount the same tree, so it holds only real files; HTTP properties
(Content-MD5, content type, ...) live in sidecar JSON under <data-dir>/files-meta/,
and a file written by a job (no sidecar) gets its properties from the disk.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import os
import re
import secrets
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from emulator import auth
from emulator.errors import BadRequest

SHARE_NAME = re.compile(r"[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){2,62}")
# Properties a client may set; kept in the sidecar.
CONTENT_SETTINGS = (
    "content-type",
    "content-md5",
    "content-encoding",
    "content-language",
    "content-disposition",
    "cache-control",
)


def load_account_key(data_dir: Path, account: str, configured: str | None) -> str:
    """The storage key: the configured one, else generated once and kept in account.json."""
    if configured:
        return configured
    path = data_dir / "account.json"
    if path.is_file():
        stored = json.loads(path.read_text())
        if stored.get("account") == account and isinstance(stored.get("key"), str):
            return str(stored["key"])
    key = base64.b64encode(secrets.token_bytes(64)).decode()
    data_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump({"account": account, "key": key}, out)
    return key


@dataclass(frozen=True)
class FileProperties:
    size: int
    settings: dict[str, str]  # sidecar content settings; empty for files a job wrote


def http_date(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.UTC).strftime("%a, %d %b %Y %H:%M:%S GMT")


def etag_of(path: Path) -> str:
    stat = path.stat()
    return f'"0x{stat.st_mtime_ns:X}{stat.st_size:X}"'


def last_modified_of(path: Path) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(path.stat().st_mtime, datetime.UTC)


class ShareStore:
    def __init__(self, data_dir: Path, account: str, key: str) -> None:
        self.account = account
        self._key = key
        self.shares_dir = data_dir / "shares"
        self.meta_dir = data_dir / "files-meta"
        self.shares_dir.mkdir(parents=True, exist_ok=True)
        self.meta_dir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    @property
    def key(self) -> str:
        return self._key

    # --- core.FileShares -------------------------------------------------
    def share_root(self, share: str) -> Path:
        if not SHARE_NAME.fullmatch(share):
            raise BadRequest("InvalidResourceName", f"share name '{share}' is invalid")
        return self.shares_dir / share

    def share_exists(self, share: str) -> bool:
        return SHARE_NAME.fullmatch(share) is not None and (self.shares_dir / share).is_dir()

    def sas_url(self, base_url: str, share: str, path: str, expiry_seconds: int = 3600) -> str:
        expiry = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=expiry_seconds)
        path = path.strip("/")
        token = auth.generate_file_sas(self.account, self._key, share, path, "r", expiry)
        return f"{base_url.rstrip('/')}/{share}/{quote(path)}?{token}"

    # --- paths ------------------------------------------------------------
    def resolve(self, share: str, path: str) -> Path:
        """The on-disk path of `path` inside the share; `..` and absolute parts are refused."""
        parts = [p for p in path.split("/") if p]
        if any(p in (".", "..") or "\\" in p or "\x00" in p for p in parts):
            raise BadRequest("InvalidResourceName", "the path must not contain '.' or '..'")
        root = self.share_root(share)
        target = root.joinpath(*parts) if parts else root
        # A symlink a job created is never followed, even inside the share: Azure
        # Files has none, and following one would serve one run another's files.
        for depth in range(1, len(parts) + 1):
            if root.joinpath(*parts[:depth]).is_symlink():
                raise BadRequest("InvalidResourceName", "the path passes through a symlink")
        return target

    def sidecar(self, share: str, path: str) -> Path:
        parts = [p for p in path.split("/") if p]
        return self.meta_dir.joinpath(share, *parts[:-1], parts[-1] + ".json")

    # --- shares -----------------------------------------------------------
    def create_share(self, share: str) -> bool:
        root = self.share_root(share)
        try:
            root.mkdir()
        except FileExistsError:
            return False
        return True

    def delete_share(self, share: str) -> bool:
        root = self.share_root(share)
        if not root.is_dir():
            return False
        shutil.rmtree(root)
        shutil.rmtree(self.meta_dir / share, ignore_errors=True)
        return True

    def list_shares(self) -> list[str]:
        return sorted(p.name for p in self.shares_dir.iterdir() if p.is_dir())

    def clear(self) -> None:
        for child in (self.shares_dir, self.meta_dir):
            shutil.rmtree(child, ignore_errors=True)
            child.mkdir(parents=True, exist_ok=True)

    # --- file properties --------------------------------------------------
    def read_settings(self, share: str, path: str) -> dict[str, str]:
        sidecar = self.sidecar(share, path)
        try:
            data: Any = json.loads(sidecar.read_text())
        except (FileNotFoundError, ValueError):
            return {}
        return {k: str(v) for k, v in data.items() if k in CONTENT_SETTINGS}

    def write_settings(self, share: str, path: str, settings: dict[str, str]) -> None:
        sidecar = self.sidecar(share, path)
        clean = {k: v for k, v in settings.items() if k in CONTENT_SETTINGS and v}
        with self._lock:
            if not clean:
                sidecar.unlink(missing_ok=True)
                return
            sidecar.parent.mkdir(parents=True, exist_ok=True)
            tmp = sidecar.with_suffix(".tmp")
            tmp.write_text(json.dumps(clean))
            tmp.replace(sidecar)

    def drop_settings(self, share: str, path: str) -> None:
        self.sidecar(share, path).unlink(missing_ok=True)

    def drop_settings_tree(self, share: str, path: str) -> None:
        parts = [p for p in path.split("/") if p]
        shutil.rmtree(self.meta_dir.joinpath(share, *parts), ignore_errors=True)

    def properties(self, share: str, path: str, target: Path) -> FileProperties:
        return FileProperties(target.stat().st_size, self.read_settings(share, path))


def md5_base64(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data).digest()).decode()
