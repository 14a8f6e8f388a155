"""/v1/uploads: a submitter's files, streamed into the file share by content.

1. POST /v1/uploads with the manifest (each file's path, sha256, size): the
   answer lists the contents the share does not hold yet (`missing`); when
   none is missing the upload is committed and `upload_id` can be used as
   ``upload:<upload_id>`` in a spec.
2. PUT /v1/uploads/content/<sha256> for each missing content: the body is
   streamed to the share in 4 MiB ranges (the API keeps nothing on its disk),
   and checked against the sha256 before it counts as stored.
3. POST the manifest again: it is committed.

An interrupted upload leaves no committed manifest, so no run can name it.
"""

from __future__ import annotations

from typing import Annotated

import anyio
from fastapi import APIRouter, HTTPException, Path, Request

from orchestrator.api.deps import SubmitAccess, UploadsDep
from orchestrator.api.errors import ERROR_RESPONSES, field_error
from orchestrator.api.models import UPLOADS_PATH, ContentStored, UploadState
from orchestrator.azure.files import RANGE_BYTES
from orchestrator.domain.inputs import SHA256_PATTERN, Manifest
from orchestrator.inputs.uploads import (
    BlobWriter,
    UploadIncomplete,
    UploadRejected,
    UploadTooLarge,
)

router = APIRouter(prefix=UPLOADS_PATH, tags=["uploads"])

Digest = Annotated[str, Path(pattern=SHA256_PATTERN, description="SHA-256 of the content (hex)")]


async def _stream_into(writer: BlobWriter, request: Request) -> None:
    """The body to the share in 4 MiB ranges, receiving the next range while the
    last one is written (one range in flight: memory stays at about 8 MiB)."""
    send, receive = anyio.create_memory_object_stream[bytes](1)

    async def write_ranges() -> None:
        async with receive:
            async for piece in receive:
                await anyio.to_thread.run_sync(writer.write, piece)

    try:
        async with anyio.create_task_group() as group:
            group.start_soon(write_ranges)
            async with send:
                pending = bytearray()
                async for chunk in request.stream():
                    pending += chunk
                    while len(pending) >= RANGE_BYTES:
                        await send.send(bytes(pending[:RANGE_BYTES]))
                        del pending[:RANGE_BYTES]
                if pending:
                    await send.send(bytes(pending))
    except BaseExceptionGroup as failed:
        # The writer's error (a length mismatch, the share) or the body's (a client
        # gone, the body limit), as itself: the caller answers it.
        raise failed.exceptions[0] from None


@router.post(
    "",
    dependencies=[SubmitAccess],  # uploading is part of submitting
    response_model=UploadState,
    responses={**ERROR_RESPONSES, 413: {"description": "Over ORCH_INPUT_MAX_BYTES in all"}},
)
def post_manifest(manifest: Manifest, uploads: UploadsDep) -> UploadState:
    """Which contents still need a PUT; commits the upload when none does."""
    try:
        upload_id = uploads.commit(manifest)  # one properties read per content
    except UploadTooLarge as exc:
        raise HTTPException(413, f"{exc.field}: {exc}") from None
    except UploadIncomplete as exc:
        return UploadState(upload_id=manifest.upload_id, committed=False, missing=exc.missing)
    return UploadState(upload_id=upload_id, committed=True, missing=[])


@router.put(
    "/content/{digest}",
    dependencies=[SubmitAccess],
    response_model=ContentStored,
    responses={
        **ERROR_RESPONSES,
        400: {"description": "Content-Length is not a number"},
        411: {"description": "No Content-Length"},
        413: {"description": "Over ORCH_INPUT_MAX_BYTES"},
    },
)
async def put_content(
    digest: Digest,
    request: Request,
    uploads: UploadsDep,
) -> ContentStored:
    """Stream one content to the share (the body, with its Content-Length); 422 (and
    nothing kept) when the bytes received are not the sha256 or the length announced."""
    declared = request.headers.get("content-length")
    if declared is None:
        raise HTTPException(411, "Content-Length: required (the share file is created at its size)")
    if not declared.isdigit():  # (the body limit answers this first)
        raise HTTPException(400, "Content-Length: is not a number")
    content_length = int(declared)
    try:
        writer = await anyio.to_thread.run_sync(uploads.open_blob, digest, content_length)
    except UploadTooLarge as exc:
        raise HTTPException(413, f"{exc.field}: {exc}") from None
    if writer is None:
        return ContentStored(sha256=digest, size=content_length, stored=False)
    try:
        await _stream_into(writer, request)
        await anyio.to_thread.run_sync(writer.finish)
    except UploadRejected as exc:
        await anyio.to_thread.run_sync(writer.abort)
        raise field_error(("body",), str(exc)) from None
    except BaseException:
        # A client gone mid-body, or the share failing: nothing incomplete stays
        # that could be mistaken for content (it has no MD5 either way).
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(writer.abort)
        raise
    return ContentStored(sha256=digest, size=content_length, stored=True)
