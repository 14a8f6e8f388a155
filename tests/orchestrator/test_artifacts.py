"""RunArtifacts: the one folder rule for steps, logs, CLI and API."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from orchestrator.artifacts import ArtifactNotFound, OutsideArtifacts, RunArtifacts


@pytest.fixture
def artifacts(tmp_path: Path) -> RunArtifacts:
    run = RunArtifacts.of(tmp_path / "artifacts", "run-1")
    run.output_dir("MODEL").mkdir(parents=True)
    (run.output_dir("MODEL") / "model.pt").write_bytes(b"weights")
    run.log("stdout").write_text("epoch 1\n")
    secret = tmp_path / "secret.env"
    secret.write_text("AZURE_CLIENT_SECRET=x")
    os.symlink(secret, run.root / "leak.env")  # a link leading out of the run's folder
    return run


def test_layout_of_a_run(tmp_path: Path) -> None:
    run = RunArtifacts.of(tmp_path, "abc")
    assert run.root == (tmp_path / "abc").resolve()
    assert run.log("stderr") == run.root / "stderr.txt"
    assert run.output_dir("MODEL") == run.root / "outputs" / "MODEL"


def test_files_lists_regular_files_inside_only(artifacts: RunArtifacts) -> None:
    assert [(f.path, f.size) for f in artifacts.files()] == [
        ("outputs/MODEL/model.pt", 7),
        ("stdout.txt", 8),
    ]


def test_files_of_a_run_without_a_folder_is_empty(tmp_path: Path) -> None:
    assert RunArtifacts.of(tmp_path, "never-collected").files() == []


def test_resolve_finds_a_file(artifacts: RunArtifacts) -> None:
    path = artifacts.resolve("outputs/MODEL/model.pt")
    assert path.read_bytes() == b"weights"


@pytest.mark.parametrize(
    "relative", ["", "/etc/passwd", "../run-2/stdout.txt", "a/../../x", "a\0b"]
)
def test_resolve_refuses_paths_leaving_the_folder(artifacts: RunArtifacts, relative: str) -> None:
    with pytest.raises(OutsideArtifacts):
        artifacts.resolve(relative)


@pytest.mark.parametrize("relative", ["leak.env", "outputs/MODEL", "missing.txt"])
def test_resolve_finds_no_symlink_out_folder_or_missing_file(
    artifacts: RunArtifacts, relative: str
) -> None:
    with pytest.raises(ArtifactNotFound):
        artifacts.resolve(relative)


@pytest.mark.parametrize(
    ("name", "expected"),
    [("a/b.txt", "a/b.txt"), ("../../etc/passwd", "etc/passwd"), ("/abs/x", "abs/x"), ("..", "_")],
)
def test_safe_relative_never_escapes(name: str, expected: str) -> None:
    assert RunArtifacts.safe_relative(name).as_posix() == expected
