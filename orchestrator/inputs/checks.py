"""The inputs of a spec checked before a run (or a schedule) is created, so that a
caller's mistake is a 422 naming the field and nothing is written:

- a path must lie under ORCH_INPUT_ROOTS (symlinks resolved; the worker checks
  again before reading, since the tree may change in between);
- an upload must be committed, and marked used (upload retention keeps it);
- job.script must be a file of the first input when that input is an upload.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from orchestrator.domain.inputs import InputKind, InputRefused, Manifest, allowed_worker_path
from orchestrator.domain.spec import RunSpec
from orchestrator.store.uploads import UploadBook


class InputRejected(ValueError):
    """An input refused at submission; `field` is its dotted path in the spec."""

    def __init__(self, field: tuple[str, ...], message: str) -> None:
        super().__init__(message)
        self.field = field

    @property
    def dotted(self) -> str:
        return ".".join(self.field)


def check_inputs(
    spec: RunSpec, *, input_roots: Sequence[Path], book: UploadBook, now: float
) -> None:
    uploads: list[Manifest] = []
    for input_id, ref in spec.input_refs().items():
        field = ("inputs", input_id)
        if ref.kind is InputKind.PATH:
            try:
                allowed_worker_path(ref.value, list(input_roots))
            except InputRefused as exc:
                raise InputRejected(field, str(exc)) from None
        elif ref.kind is InputKind.UPLOAD:
            manifest = book.get(ref.value)
            if manifest is None:
                raise InputRejected(
                    field,
                    f"upload {ref.value} does not exist (upload the files first: POST /v1/uploads)",
                )
            uploads.append(manifest)
            first = next(iter(spec.inputs)) == input_id
            script = spec.job.script
            if first and script is not None and script not in {e.path for e in manifest.files}:
                raise InputRejected(
                    ("job", "script"), f"{script} is not a file of the first input ({input_id})"
                )
    book.touch(uploads, now)
