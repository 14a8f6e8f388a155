"""Azure Files calls: the share, its directories, uploads that can be skipped
by Content-MD5, and downloads (whole, or by range) through SAS URLs."""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path

import requests
from azure.common import AzureHttpError
from azure.storage.file import ContentSettings

from orchestrator.azure.clients import AzureClients
from orchestrator.azure.errors import classify


class FileCalls(AzureClients):
    def ensure_share(self, share: str) -> None:
        with self._call():
            # fail_on_exist=False: "already exists" is success (adopt).
            self.files.create_share(share, fail_on_exist=False)

    def ensure_directory(self, share: str, path: str) -> None:
        """Create `path` ("a/b/c"), tolerating an existing one.

        The leaf is tried first: on a repeated run it exists and this costs one
        request; parents are created only when the service says they are missing.
        """
        parts = [p for p in path.strip("/").split("/") if p]
        if not parts:
            return
        with self._call():
            try:
                self.files.create_directory(share, "/".join(parts), fail_on_exist=False)
                return
            except AzureHttpError as exc:
                if exc.status_code != 404:  # ParentNotFound
                    raise
            for depth in range(1, len(parts) + 1):
                self.files.create_directory(share, "/".join(parts[:depth]), fail_on_exist=False)

    def file_md5(self, share: str, directory: str, name: str) -> str | None:
        """Content-MD5 (base64) recorded on a share file, or None if absent/unset."""
        with self._call():
            try:
                props = self.files.get_file_properties(share, directory or None, name)
            except AzureHttpError as exc:
                if exc.status_code == 404:
                    return None
                raise
            md5: str | None = props.properties.content_settings.content_md5
            return md5

    def upload_file(
        self, share: str, directory: str, name: str, local_path: Path, md5: str
    ) -> None:
        """Upload, then set Content-MD5 so the next run can compare and skip.

        The MD5 is set only after every range is written: a file cut short by
        a killed worker has no MD5 and is uploaded again.
        """
        with self._call():
            self.files.create_file_from_path(
                share, directory or None, name, str(local_path), max_connections=1
            )
            self.files.set_file_properties(
                share, directory or None, name, ContentSettings(content_md5=md5)
            )

    def download(self, url: str, dest: Path) -> int:
        """Stream one file to `dest` (atomically); returns the byte count."""
        dest.parent.mkdir(parents=True, exist_ok=True)
        partial = dest.with_name(dest.name + ".partial")
        operation = "File_Download"
        self.recorder.forget_request_id()
        try:
            with requests.get(url, stream=True, timeout=60, verify=self._verify()) as response:
                self.recorder.record(
                    operation, str(response.status_code), response.headers.get("x-ms-request-id")
                )
                response.raise_for_status()
                size = 0
                with partial.open("wb") as out:
                    for chunk in response.iter_content(chunk_size=1 << 16):
                        out.write(chunk)
                        size += len(chunk)
            os.replace(partial, dest)
            return size
        except requests.RequestException as exc:
            partial.unlink(missing_ok=True)
            raise classify(exc, self.last_request_id) from None

    def file_size(self, url: str) -> int:
        """Size in bytes of a file, by its download URL (a HEAD)."""
        with self._call():
            head = requests.head(url, timeout=30, verify=self._verify())
            self.recorder.record(
                "File_GetProperties", str(head.status_code), head.headers.get("x-ms-request-id")
            )
            head.raise_for_status()
            return int(head.headers.get("Content-Length", "0"))

    def read_range(self, url: str, start: int, end: int) -> bytes:
        """Bytes start..end (inclusive) of a file, by its download URL.

        Azure Files has no suffix ranges ("the last N bytes"): callers ask
        file_size first.
        """
        with self._call():
            response = requests.get(
                url,
                headers={"x-ms-range": f"bytes={start}-{end}"},
                timeout=30,
                verify=self._verify(),
            )
            self.recorder.record(
                "File_ReadRange", str(response.status_code), response.headers.get("x-ms-request-id")
            )
            response.raise_for_status()
            return response.content


def md5_base64(path: Path) -> str:
    """Base64 MD5 of a file, the form of the Content-MD5 header."""
    digest = hashlib.md5()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return base64.b64encode(digest.digest()).decode("ascii")
