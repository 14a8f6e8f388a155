# Over 400 lines (about 420): the Files operations, their dispatch table and the
# request helpers they share (ranges, content settings, listings) read best together;
# the on-disk store is already separate (store.py).
"""Azure Files REST operations, dispatched on method + restype/comp like the real service.

Files requests are not matched by path alone: one URL path serves many operations
that differ only by query parameters, so `register` adds a dispatcher (`resolve`)
that picks the operation name (for stats and faults) and the handler together. Every
path no other service claims is a share path: an unknown combination answers 400.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from pathlib import Path
from urllib.parse import unquote, urlsplit
from xml.sax.saxutils import escape

from emulator import auth
from emulator.core import EmulatorContext
from emulator.errors import BadRequest, Conflict, NotFound, PayloadTooLarge, RangeNotSatisfiable
from emulator.files.store import CONTENT_SETTINGS, ShareStore, etag_of, http_date, md5_base64
from emulator.files.store import last_modified_of as _last_modified
from emulator.http import Request, Response, Router

FileHandler = Callable[[Request, str, str], Response]
Operation = tuple[str, FileHandler]
UNMATCHED = "Files_Unmatched"
MAX_RANGE_BYTES = 4 * 1024 * 1024
_RANGE = re.compile(r"bytes=(\d+)-(\d*)")
DEFAULT_MAX_RESULTS = 5000


def _not_found(code: str, what: str) -> NotFound:
    return NotFound(code, f"The specified {what} does not exist.")


def _version_headers(target: Path) -> dict[str, str]:
    return {"ETag": etag_of(target), "Last-Modified": http_date(_last_modified(target))}


def _created(target: Path) -> Response:
    return Response(201, headers=_version_headers(target))


def register(router: Router, ctx: EmulatorContext) -> None:
    """Serve the shares in ctx.file_shares (which must be a ShareStore: the server builds
    it before any service registers, since Batch AI mounts its shares)."""
    store = ctx.file_shares
    if not isinstance(store, ShareStore):
        raise TypeError("files.register: ctx.file_shares must be a files.store.ShareStore")
    service = FilesService(ctx, store)
    router.add_dispatcher("files", service.resolve, service.operations())
    ctx.reset_hooks.append(store.clear)


class FilesService:
    def __init__(self, ctx: EmulatorContext, store: ShareStore) -> None:
        self.ctx = ctx
        self.store = store
        self.stats = ctx.stats
        self.tables = self._tables()

    # --- dispatch ---------------------------------------------------------
    def _tables(self) -> dict[str, dict[tuple[str, str | None, str | None], Operation]]:
        """(method, restype, comp) -> (operation, handler), per kind of URL."""
        return {
            "account": {("GET", None, "list"): ("Files_ListShares", self.list_shares)},
            "share": {
                ("PUT", "share", None): ("Files_CreateShare", self.create_share),
                ("DELETE", "share", None): ("Files_DeleteShare", self.delete_share),
                ("GET", "share", None): ("Files_GetShareProperties", self.share_properties),
                ("HEAD", "share", None): ("Files_GetShareProperties", self.share_properties),
            },
            "directory": {
                ("PUT", "directory", None): ("Files_CreateDirectory", self.create_directory),
                ("DELETE", "directory", None): ("Files_DeleteDirectory", self.delete_directory),
                ("GET", "directory", None): ("Files_GetDirectoryProperties", self.dir_properties),
                ("HEAD", "directory", None): ("Files_GetDirectoryProperties", self.dir_properties),
                ("GET", "directory", "list"): ("Files_ListDirectoriesAndFiles", self.list_dir),
            },
            "file": {
                ("PUT", None, None): ("Files_CreateFile", self.create_file),
                ("COPY", None, None): ("Files_CopyFile", self.copy_file),
                ("PUT", None, "range"): ("Files_PutRange", self.put_range),
                ("PUT", None, "properties"): ("Files_SetFileProperties", self.set_properties),
                ("GET", None, None): ("Files_GetFile", self.get_file),
                ("HEAD", None, None): ("Files_GetFileProperties", self.file_properties),
                ("DELETE", None, None): ("Files_DeleteFile", self.delete_file),
            },
        }

    def operations(self) -> frozenset[str]:
        names = {op for table in self.tables.values() for op, _ in table.values()}
        return frozenset({*names, UNMATCHED})

    def resolve(self, request: Request) -> tuple[str, Callable[[Request], Response]]:
        """(operation, handler) for a Files request; UNMATCHED when no operation fits."""
        parts = [p for p in request.path.split("/") if p]
        restype = request.query.get("restype")
        share, rel = (parts[0], "/".join(parts[1:])) if parts else ("", "")
        if not parts:
            kind = "account"
        elif restype == "share" and not rel:
            kind = "share"
        elif restype == "directory":
            kind = "directory"
        elif restype is None and rel:
            kind = "file"
        else:
            return UNMATCHED, _unsupported
        method = request.method
        if kind == "file" and method == "PUT" and "x-ms-copy-source" in request.headers:
            method = "COPY"  # Copy File is a PUT that names its source in a header
        found = self.tables[kind].get((method, restype, request.query.get("comp")))
        if found is None:
            return UNMATCHED, _unsupported
        operation, handler = found
        return operation, self._authenticated(share, rel, handler)

    def _authenticated(
        self, share: str, rel: str, handler: FileHandler
    ) -> Callable[[Request], Response]:
        def run(request: Request) -> Response:
            if auth.has_sas(request):
                auth.verify_file_sas(request, self.store.account, self.store.key, share, rel)
            else:
                auth.verify_shared_key(request, self.store.account, self.store.key)
            return handler(request, share, rel)

        return run

    # --- shares -----------------------------------------------------------
    def create_share(self, request: Request, share: str, rel: str) -> Response:
        if not self.store.create_share(share):
            raise Conflict("ShareAlreadyExists", "The specified share already exists.")
        self.ctx.stats.record_resource("created", "file_share")
        return _created(self.store.share_root(share))

    def delete_share(self, request: Request, share: str, rel: str) -> Response:
        if not self.store.delete_share(share):
            raise _not_found("ShareNotFound", "share")
        self.ctx.stats.record_resource("deleted", "file_share")
        return Response(202)

    def share_properties(self, request: Request, share: str, rel: str) -> Response:
        root = self._share_root(share)
        return Response(
            200,
            headers={**_version_headers(root), "x-ms-share-quota": "5120"},
        )

    def list_shares(self, request: Request, share: str, rel: str) -> Response:
        names = [
            n for n in self.store.list_shares() if n.startswith(request.query.get("prefix", ""))
        ]
        items = "".join(
            f"<Share><Name>{escape(n)}</Name><Properties>"
            f"<Last-Modified>{http_date(_last_modified(self.store.share_root(n)))}</Last-Modified>"
            f"<Etag>{etag_of(self.store.share_root(n))}</Etag><Quota>5120</Quota>"
            "</Properties></Share>"
            for n in names
        )
        body = (
            '<?xml version="1.0" encoding="utf-8"?>'
            f'<EnumerationResults ServiceEndpoint="{escape(request.base_url)}/">'
            f"<Shares>{items}</Shares><NextMarker /></EnumerationResults>"
        )
        return _xml(body)

    def _share_root(self, share: str) -> Path:
        if not self.store.share_exists(share):
            raise _not_found("ShareNotFound", "share")
        return self.store.share_root(share)

    # --- directories ------------------------------------------------------
    def _existing_dir(self, share: str, rel: str) -> Path:
        self._share_root(share)
        target = self.store.resolve(share, rel)
        if not target.is_dir():
            raise _not_found("ResourceNotFound", "resource")
        return target

    def _parent_dir(self, share: str, rel: str) -> Path:
        self._share_root(share)
        target = self.store.resolve(share, rel)
        if not target.parent.is_dir():
            raise NotFound("ParentNotFound", "The specified parent path does not exist.")
        return target

    def create_directory(self, request: Request, share: str, rel: str) -> Response:
        target = self._parent_dir(share, rel)
        if target.exists():
            raise Conflict("ResourceAlreadyExists", "The specified resource already exists.")
        target.mkdir()
        return _created(target)

    def delete_directory(self, request: Request, share: str, rel: str) -> Response:
        if not rel:
            raise BadRequest("InvalidUri", "the share root is not a directory that can be deleted")
        target = self._existing_dir(share, rel)
        if any(target.iterdir()):
            raise Conflict("DirectoryNotEmpty", "The specified directory is not empty.")
        target.rmdir()
        self.store.drop_settings_tree(share, rel)
        return Response(202)

    def dir_properties(self, request: Request, share: str, rel: str) -> Response:
        target = self._existing_dir(share, rel)
        return Response(200, headers=_version_headers(target))

    def list_dir(self, request: Request, share: str, rel: str) -> Response:
        target = self._existing_dir(share, rel)
        prefix = request.query.get("prefix", "")
        marker = request.query.get("marker", "")
        max_results = _int_param(request, "maxresults", DEFAULT_MAX_RESULTS, minimum=1)
        entries = sorted(
            (child.name, child)
            for child in target.iterdir()
            if child.name.startswith(prefix)
            and not child.is_symlink()  # a job's symlink is not a file of the share
            and (child.is_dir() or child.is_file())
        )
        if marker:
            entries = [e for e in entries if e[0] >= marker]
        page, rest = entries[:max_results], entries[max_results:]
        files = "".join(
            f"<File><Name>{escape(name)}</Name><Properties>"
            f"<Content-Length>{path.stat().st_size}</Content-Length></Properties></File>"
            for name, path in page
            if path.is_file()
        )
        dirs = "".join(
            f"<Directory><Name>{escape(name)}</Name><Properties /></Directory>"
            for name, path in page
            if path.is_dir()
        )
        next_marker = f"<NextMarker>{escape(rest[0][0])}</NextMarker>" if rest else "<NextMarker />"
        body = (
            '<?xml version="1.0" encoding="utf-8"?>'
            f'<EnumerationResults ServiceEndpoint="{escape(request.base_url)}/" '
            f'ShareName="{escape(share)}" DirectoryPath="{escape(rel)}">'
            + (f"<Prefix>{escape(prefix)}</Prefix>" if prefix else "")
            + (f"<Marker>{escape(marker)}</Marker>" if marker else "")
            + f"<MaxResults>{max_results}</MaxResults>"
            + f"<Entries>{files}{dirs}</Entries>{next_marker}</EnumerationResults>"
        )
        return _xml(body)

    # --- files ------------------------------------------------------------
    def _existing_file(self, share: str, rel: str) -> Path:
        self._share_root(share)
        target = self.store.resolve(share, rel)
        if not target.is_file():
            if not target.parent.is_dir():
                raise NotFound("ParentNotFound", "The specified parent path does not exist.")
            raise _not_found("ResourceNotFound", "resource")
        return target

    def create_file(self, request: Request, share: str, rel: str) -> Response:
        target = self._parent_dir(share, rel)
        if target.is_dir():
            raise Conflict("ResourceTypeMismatch", f"'{rel}' is a directory")
        size = _int_header(request, "x-ms-content-length")
        if request.headers.get("x-ms-type", "file").lower() != "file":
            raise BadRequest("InvalidHeaderValue", "x-ms-type must be 'file'")
        with open(target, "wb") as out:
            out.truncate(size)
        self.store.write_settings(share, rel, _content_settings(request))
        self.ctx.stats.record_resource("created", "file")
        return _created(target)

    def copy_file(self, request: Request, share: str, rel: str) -> Response:
        """Copy File from a file of this account, done at once (x-ms-copy-status: success).

        The request's own Shared Key authorizes a source in the same account, as on
        Azure; content settings (Content-MD5 among them) travel with the copy."""
        parts = [p for p in unquote(urlsplit(request.headers["x-ms-copy-source"]).path).split("/")]
        parts = [p for p in parts if p]
        if len(parts) < 2:
            raise BadRequest("InvalidHeaderValue", "x-ms-copy-source must name a file of a share")
        source_share, source_rel = parts[0], "/".join(parts[1:])
        try:
            source = self._existing_file(source_share, source_rel)
        except NotFound:
            raise NotFound(
                "CannotVerifyCopySource", "The specified copy source does not exist."
            ) from None
        target = self._parent_dir(share, rel)
        if target.is_dir():
            raise Conflict("ResourceTypeMismatch", f"'{rel}' is a directory")
        partial = target.with_name(target.name + ".copying")
        shutil.copyfile(source, partial)
        partial.replace(target)
        self.store.write_settings(share, rel, self.store.read_settings(source_share, source_rel))
        self.ctx.stats.record_resource("created", "file")
        headers = _version_headers(target)
        headers.update({"x-ms-copy-id": etag_of(target).strip('"'), "x-ms-copy-status": "success"})
        return Response(202, headers=headers)

    def put_range(self, request: Request, share: str, rel: str) -> Response:
        target = self._existing_file(share, rel)
        start, end = _parse_range(request, required=True)
        assert end is not None
        length = end - start + 1
        if length > MAX_RANGE_BYTES:
            raise PayloadTooLarge("RequestBodyTooLarge", "x-ms-range: a range may be at most 4 MiB")
        size = target.stat().st_size
        if end >= size:
            raise RangeNotSatisfiable("InvalidRange", "x-ms-range: the range exceeds the file size")
        write_mode = request.headers.get("x-ms-write", "").lower()
        if write_mode == "update":
            if len(request.body) != length:
                raise BadRequest(
                    "InvalidHeaderValue",
                    f"Content-Length: the body has {len(request.body)} bytes but x-ms-range "
                    f"covers {length}",
                )
            sent_md5 = request.headers.get("content-md5")
            if sent_md5 and sent_md5 != md5_base64(request.body):
                raise BadRequest("Md5Mismatch", "Content-MD5: does not match the body")
            data = request.body
            self.stats.add_bytes_uploaded(len(data))
        elif write_mode == "clear":
            data = bytes(length)
        else:
            raise BadRequest("InvalidHeaderValue", "x-ms-write must be 'update' or 'clear'")
        with open(target, "r+b") as out:
            out.seek(start)
            out.write(data)
        headers = _version_headers(target)
        if write_mode == "update":
            headers["Content-MD5"] = md5_base64(data)
        return Response(201, headers=headers)

    def set_properties(self, request: Request, share: str, rel: str) -> Response:
        target = self._existing_file(share, rel)
        if "x-ms-content-length" in request.headers:
            with open(target, "r+b") as out:
                out.truncate(_int_header(request, "x-ms-content-length"))
        self.store.write_settings(share, rel, _content_settings(request))
        return Response(200, headers=_version_headers(target))

    def file_properties(self, request: Request, share: str, rel: str) -> Response:
        target = self._existing_file(share, rel)
        props = self.store.properties(share, rel, target)
        headers = self._file_headers(props.settings, target)
        headers["Content-Length"] = str(props.size)
        return Response(200, headers=headers)

    def get_file(self, request: Request, share: str, rel: str) -> Response:
        target = self._existing_file(share, rel)
        props = self.store.properties(share, rel, target)
        headers = self._file_headers(props.settings, target)
        if "x-ms-range" not in request.headers and "range" not in request.headers:
            data = target.read_bytes()
            self.stats.add_bytes_downloaded(len(data))
            return Response(200, data, headers)
        start, end = _parse_range(request, required=False)
        if start >= props.size:
            raise RangeNotSatisfiable(
                "InvalidRange", "x-ms-range: the range is not satisfiable for this file"
            )
        end = props.size - 1 if end is None else min(end, props.size - 1)
        with open(target, "rb") as source:
            source.seek(start)
            data = source.read(end - start + 1)
        self.stats.add_bytes_downloaded(len(data))
        headers["Content-Range"] = f"bytes {start}-{end}/{props.size}"
        # On a range read the whole-file MD5 moves to x-ms-content-md5.
        whole_md5 = headers.pop("Content-MD5", None)
        if whole_md5:
            headers["x-ms-content-md5"] = whole_md5
        if request.headers.get("x-ms-range-get-content-md5", "").lower() == "true":
            if len(data) > MAX_RANGE_BYTES:
                raise BadRequest(
                    "OutOfRangeInput",
                    "x-ms-range-get-content-md5: the range must be at most 4 MiB",
                )
            headers["Content-MD5"] = md5_base64(data)
        return Response(206, data, headers)

    def delete_file(self, request: Request, share: str, rel: str) -> Response:
        target = self._existing_file(share, rel)
        target.unlink()
        self.store.drop_settings(share, rel)
        self.ctx.stats.record_resource("deleted", "file")
        return Response(202)

    def _file_headers(self, settings: dict[str, str], target: Path) -> dict[str, str]:
        headers = {
            **_version_headers(target),
            "Content-Type": settings.get("content-type", "application/octet-stream"),
            "x-ms-type": "File",
            "Accept-Ranges": "bytes",
        }
        names = {
            "content-md5": "Content-MD5",
            "content-encoding": "Content-Encoding",
            "content-language": "Content-Language",
            "content-disposition": "Content-Disposition",
            "cache-control": "Cache-Control",
        }
        for key, header in names.items():
            if settings.get(key):
                headers[header] = settings[key]
        return headers


def _unsupported(request: Request) -> Response:
    raise BadRequest(
        "InvalidQueryParameterValue",
        "restype/comp: the combination of method and query parameters is not a supported "
        "Azure Files operation.",
    )


def _xml(body: str) -> Response:
    return Response(200, body.encode(), {"Content-Type": "application/xml"})


def _content_settings(request: Request) -> dict[str, str]:
    return {name: request.headers.get("x-ms-" + name, "") for name in CONTENT_SETTINGS}


def _int_header(request: Request, name: str) -> int:
    text = request.headers.get(name)
    if text is None or not text.isdigit():
        raise BadRequest("InvalidHeaderValue", f"{name} must be a non-negative integer")
    return int(text)


def _int_param(request: Request, name: str, default: int, minimum: int) -> int:
    text = request.query.get(name)
    if text is None:
        return default
    if not text.isdigit() or int(text) < minimum:
        raise BadRequest("InvalidQueryParameterValue", f"{name} must be an integer >= {minimum}")
    return int(text)


def _parse_range(request: Request, required: bool) -> tuple[int, int | None]:
    header = "x-ms-range" if "x-ms-range" in request.headers else "range"
    text = request.headers.get(header)
    if text is None:
        raise BadRequest("MissingRequiredHeader", "x-ms-range is required")
    found = _RANGE.fullmatch(text.strip())
    if not found:
        raise BadRequest("InvalidHeaderValue", f"{header} must look like bytes=START-END")
    start = int(found.group(1))
    end = int(found.group(2)) if found.group(2) else None
    if (required and end is None) or (end is not None and end < start):
        raise BadRequest("InvalidHeaderValue", f"{header} must look like bytes=START-END")
    return start, end
