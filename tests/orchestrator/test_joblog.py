"""JobLogReader and LogTail on a collected log: bytes as written, tails as shown."""

from __future__ import annotations

from pathlib import Path

from orchestrator.artifacts import RunArtifacts
from orchestrator.domain.spec import parse_spec
from orchestrator.domain.status import RunStatus
from orchestrator.joblog import JobLogReader, LogTail
from orchestrator.settings import Settings
from orchestrator.store import RunRecord

SPEC = parse_spec({"name": "demo", "job": {"script": "a.py"}, "inputs": {"A": "/tmp"}})


def finished_run(artifacts_dir: Path, stdout: bytes) -> RunRecord:
    log = RunArtifacts.of(artifacts_dir, "run-1").log("stdout")
    log.parent.mkdir(parents=True)
    log.write_bytes(stdout)
    return RunRecord(
        run_id="run-1",
        spec=SPEC,
        status=RunStatus.SUCCEEDED,
        spec_fingerprint=SPEC.fingerprint(),
        created_at=1.0,
        updated_at=2.0,
        finished_at=2.0,
    )


def test_bytes_are_read_as_written_and_only_once(tmp_path: Path) -> None:
    raw = b"\x1b[31mred\x1b[0m \xff\n"
    record = finished_run(tmp_path, raw)
    reader = JobLogReader(Settings(ORCH_ARTIFACTS_DIR=str(tmp_path)))
    assert reader.read_new_bytes(record) == raw
    assert reader.read_new_bytes(record) == b"" and reader.offset == len(raw)
    text_reader = JobLogReader(Settings(ORCH_ARTIFACTS_DIR=str(tmp_path)))
    assert text_reader.read_new(record) == "\x1b[31mred\x1b[0m \ufffd\n"


def test_a_tail_line_redrawn_by_carriage_returns_shows_its_last_redraw(tmp_path: Path) -> None:
    record = finished_run(tmp_path, b"start\r\n 10%\r 50%\r100%\ndone\npartial")
    tail = LogTail(JobLogReader(Settings(ORCH_ARTIFACTS_DIR=str(tmp_path))), lines=5)
    assert tail.update(record) == ["start", "100%", "done"]
