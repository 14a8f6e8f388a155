"""Azure Files calls: the share, its directories, uploads that can be skipped
by Content-MD5, and downloads (whole, or by range) through SAS URLs."""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import requests
from azure.common import AzureHttpError
from azure.storage.file import ContentSettings, File, FilePermissions

from orchestrator.azure.clients import AzureClients
from orchestrator.azure.errors import PermanentAzureError, classify
from orchestrator.azure.types import ShareFile
from orchestrator.domain.status import FailureReason

# Azure Files writes at most 4 MiB per Put Range.
RANGE_BYTES = 4 * 1024 * 1024
# A copy source is read through a SAS valid this long: a copy is quick, and a
# leaked URL must not outlive it by much.
COPY_SOURCE_SAS_MINUTES = 30


def split_share_path(path: str) -> tuple[str | None, str]:
    """("a/b", "c.txt") for "a/b/c.txt"; (None, name) at the share's root."""
    directory, _, name = path.strip("/").rpartition("/")
    return (directory or None), name


class ShareNotFound(PermanentAzureError):
    """A path on the share that does not exist (a `share:` input, an expired output)."""

    def __init__(self, path: str) -> None:
        super().__init__(f"{path} does not exist on the share", reason=FailureReason.INVALID_SPEC)


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

    # ------------------------------------------------- content on the share
    def copy_file(
        self, share: str, source: str, directory: str, name: str, *, source_share: str = ""
    ) -> None:
        """Server-side copy of `source` (a path of `source_share`, default `share`)
        to directory/name in `share`: nothing travels through this process.
        Content-MD5 goes along."""
        src_share = source_share or share
        src_dir, src_name = split_share_path(source)
        with self._call():
            sas = self.files.generate_file_shared_access_signature(
                src_share,
                src_dir,
                src_name,
                permission=FilePermissions.READ,
                expiry=datetime.now(UTC) + timedelta(minutes=COPY_SOURCE_SAS_MINUTES),
            )
            url = self.files.make_file_url(src_share, src_dir, src_name, sas_token=sas)
            self.files.copy_file(share, directory or None, name, url)

    def delete_share(self, share: str) -> None:
        """Delete a share and everything in it; one already gone is success."""
        with self._call():
            self.files.delete_share(share, fail_not_exist=False)

    def _walk(self, share: str, root: str) -> tuple[list[ShareFile], list[str]]:
        """Files (paths relative to root) and folders (relative, "" for root) under root."""
        files: list[ShareFile] = []
        folders: list[str] = []
        pending = [""]
        while pending:
            relative = pending.pop()
            folders.append(relative)
            folder = "/".join(part for part in (root, relative) if part) or None
            try:
                items = list(self.files.list_directories_and_files(share, folder))
            except AzureHttpError as exc:
                if exc.status_code == 404:
                    raise ShareNotFound(root or "/") from None
                raise
            for item in items:
                child = f"{relative}/{item.name}" if relative else item.name
                if isinstance(item, File):
                    files.append(ShareFile(child, int(item.properties.content_length or 0)))
                else:
                    pending.append(child)
        return sorted(files, key=lambda f: f.path), folders

    def list_tree(self, share: str, path: str, *, with_md5: bool = False) -> list[ShareFile]:
        """Every file under the share folder `path`, recursively, sorted by path.

        Raises ShareNotFound when `path` is not a folder of the share. with_md5
        costs one properties request per file."""
        root = path.strip("/")
        with self._call():
            found, _ = self._walk(share, root)
        if with_md5:
            found = [
                ShareFile(
                    f.path, f.size, self._md5_of(share, f"{root}/{f.path}" if root else f.path)
                )
                for f in found
            ]
        return found

    def _md5_of(self, share: str, path: str) -> str | None:
        found = self.share_file(share, path)
        return found.md5 if found is not None else None

    def share_file(self, share: str, path: str) -> ShareFile | None:
        """Size and Content-MD5 of one file of the share, or None when absent."""
        directory, name = split_share_path(path)
        with self._call():
            try:
                props = self.files.get_file_properties(share, directory, name)
            except AzureHttpError as exc:
                if exc.status_code == 404:
                    return None
                raise
            return ShareFile(
                path,
                int(props.properties.content_length or 0),
                props.properties.content_settings.content_md5,
            )

    def iter_file(self, share: str, path: str, size: int) -> Iterator[bytes]:
        """The file's bytes in ranges of at most 4 MiB: memory stays bounded
        whatever the file's size."""
        directory, name = split_share_path(path)
        for start in range(0, size, RANGE_BYTES):
            end = min(start + RANGE_BYTES, size) - 1
            with self._call():
                data: bytes = self.files.get_file_to_bytes(
                    share, directory, name, start_range=start, end_range=end, max_connections=1
                ).content
            yield data

    def create_empty_file(self, share: str, path: str, size: int) -> None:
        """A file of `size` zero bytes, without Content-MD5: not complete until set_md5."""
        directory, name = split_share_path(path)
        with self._call():
            self.files.create_file(share, directory, name, size)

    def write_range(self, share: str, path: str, start: int, data: bytes) -> None:
        """Write `data` (at most 4 MiB) at offset `start` of an existing file."""
        directory, name = split_share_path(path)
        with self._call():
            self.files.update_range(share, directory, name, data, start, start + len(data) - 1)

    def set_md5(self, share: str, path: str, md5: str) -> None:
        directory, name = split_share_path(path)
        with self._call():
            self.files.set_file_properties(share, directory, name, ContentSettings(content_md5=md5))

    def delete_file(self, share: str, path: str) -> None:
        """Delete one file; one that is already gone is success."""
        directory, name = split_share_path(path)
        with self._call():
            try:
                self.files.delete_file(share, directory, name)
            except AzureHttpError as exc:
                if exc.status_code != 404:
                    raise

    def delete_tree(self, share: str, path: str) -> int:
        """Delete the folder `path` and everything under it; returns the files
        deleted. A folder that is already gone is success (0)."""
        root = path.strip("/")
        with self._call():
            try:
                files, folders = self._walk(share, root)
            except ShareNotFound:
                return 0
        for item in files:
            self.delete_file(share, f"{root}/{item.path}")
        with self._call():
            # Deepest first: a folder must be empty to be deleted.
            for relative in sorted(folders, key=lambda f: (f.count("/"), len(f)), reverse=True):
                folder = f"{root}/{relative}" if relative else root
                try:
                    self.files.delete_directory(share, folder, fail_not_exist=False)
                except AzureHttpError as exc:
                    if exc.status_code not in (404, 409):  # gone, or something still writes
                        raise
        return len(files)

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
