"""Azure Files through azure-storage-file 2.1.0's FileService."""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path
from typing import Any

import pytest
from azure.common import AzureConflictHttpError, AzureHttpError, AzureMissingResourceHttpError
from azure.storage.file import ContentSettings

from emulator.testing import RunningEmulator


def _md5(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data).digest()).decode()


def test_share_and_directories(files: Any, emulator: RunningEmulator) -> None:
    assert files.create_share("data") is True
    assert files.create_share("data") is False  # fail_on_exist=False swallows the 409
    with pytest.raises(AzureConflictHttpError):
        files.create_share("data", fail_on_exist=True)
    assert files.exists("data") is True
    assert files.exists("other") is False

    files.create_directory("data", "mnist")
    files.create_directory("data", "mnist/train")
    with pytest.raises(AzureConflictHttpError):
        files.create_directory("data", "mnist", fail_on_exist=True)
    with pytest.raises(AzureMissingResourceHttpError):
        files.create_directory("data", "absent/child", fail_on_exist=True)
    assert files.exists("data", "mnist/train") is True

    stats = emulator.stats()["requests"]
    assert stats["Files_CreateShare"] == {"201": 1, "409": 2}
    assert stats["Files_CreateDirectory"] == {"201": 2, "409": 1, "404": 1}


def test_large_upload_in_ranges_and_downloads(
    files: Any, emulator: RunningEmulator, tmp_path: Path
) -> None:
    data = os.urandom(9 * 1024 * 1024 + 123)  # three 4 MiB ranges
    source = tmp_path / "train.bin"
    source.write_bytes(data)
    files.create_share("data")
    files.create_directory("data", "in")

    files.create_file_from_path(
        "data",
        "in",
        "train.bin",
        str(source),
        content_settings=ContentSettings(content_md5=_md5(data)),
    )

    stats = emulator.stats()
    assert stats["requests"]["Files_PutRange"] == {"201": 3}
    assert stats["bytes_uploaded"] == len(data)
    # The bytes land as a plain file in the share tree that a cluster mounts.
    on_disk = emulator.emulator.shares.share_root("data") / "in" / "train.bin"
    assert on_disk.read_bytes() == data

    whole = files.get_file_to_bytes("data", "in", "train.bin")
    assert whole.content == data
    assert whole.properties.content_settings.content_md5 == _md5(data)

    part = files.get_file_to_bytes("data", "in", "train.bin", start_range=5, end_range=1028)
    assert part.content == data[5:1029]

    checked = files.get_file_to_bytes(
        "data", "in", "train.bin", start_range=0, end_range=1023, validate_content=True
    )
    assert checked.content == data[:1024]

    props = files.get_file_properties("data", "in", "train.bin").properties
    assert props.content_length == len(data)
    assert props.content_settings.content_md5 == _md5(data)


def test_set_properties_and_list_with_paging(files: Any) -> None:
    files.create_share("data")
    for name in ("a.txt", "b.txt", "c.txt"):
        files.create_file_from_bytes("data", None, name, name.encode())
    files.create_directory("data", "d")
    files.set_file_properties(
        "data",
        None,
        "b.txt",
        ContentSettings(content_type="text/plain", content_md5=_md5(b"b.txt")),
    )
    props = files.get_file_properties("data", None, "b.txt").properties
    assert props.content_settings.content_type == "text/plain"
    assert props.content_settings.content_md5 == _md5(b"b.txt")

    everything = sorted(e.name for e in files.list_directories_and_files("data"))
    assert everything == ["a.txt", "b.txt", "c.txt", "d"]
    page = files.list_directories_and_files("data", num_results=2)
    assert len(list(page)) == 2
    assert page.next_marker == "c.txt"
    rest = files.list_directories_and_files("data", marker=page.next_marker)
    assert sorted(e.name for e in rest) == ["c.txt", "d"]
    sizes = {
        e.name: e.properties.content_length
        for e in files.list_directories_and_files("data")
        if e.name != "d"
    }
    assert sizes == {"a.txt": 5, "b.txt": 5, "c.txt": 5}


def test_files_written_by_jobs_are_served(files: Any, emulator: RunningEmulator) -> None:
    files.create_share("out")
    root = emulator.emulator.shares.share_root("out")
    (root / "run1").mkdir()
    (root / "run1" / "model.onnx").write_bytes(b"\x00weights")
    listed = [e.name for e in files.list_directories_and_files("out", "run1")]
    assert listed == ["model.onnx"]
    got = files.get_file_to_bytes("out", "run1", "model.onnx")
    assert got.content == b"\x00weights"
    # No sidecar: properties come from the file on disk, and no MD5 is invented.
    assert getattr(got.properties.content_settings, "content_md5", None) is None
    assert files.get_file_properties("out", "run1", "model.onnx").properties.content_length == 8


def test_delete_file_directory_share(files: Any) -> None:
    files.create_share("tmp")
    files.create_directory("tmp", "d")
    files.create_file_from_bytes("tmp", "d", "f", b"x")
    with pytest.raises(AzureHttpError) as caught:
        files.delete_directory("tmp", "d", fail_not_exist=True)
    assert caught.value.status_code == 409
    files.delete_file("tmp", "d", "f")
    assert files.exists("tmp", "d", "f") is False
    assert files.delete_directory("tmp", "d") is True
    assert files.delete_share("tmp") is True
    assert files.exists("tmp") is False


def test_empty_file_downloads(files: Any) -> None:
    files.create_share("data")
    files.create_file("data", None, "empty", 0)
    assert files.get_file_to_bytes("data", None, "empty").content == b""


def test_missing_file_is_404(files: Any) -> None:
    files.create_share("data")
    with pytest.raises(AzureMissingResourceHttpError):
        files.get_file_to_bytes("data", None, "nope")


def test_path_traversal_is_refused(files: Any, emulator: RunningEmulator) -> None:
    import requests

    files.create_share("data")
    # Clients normalise a literal '..' away, so it travels percent-encoded.
    url = emulator.emulator.shares.sas_url(emulator.url, "data", "../account.json")
    url = url.replace("/data/../", "/data/%2E%2E/")
    assert "%2E%2E" in url
    response = requests.get(url, verify=emulator.ca_bundle, timeout=30)
    assert response.status_code == 400
    assert response.headers["x-ms-error-code"] == "InvalidResourceName"
    assert b"<Code>InvalidResourceName</Code>" in response.content


def test_clear_range_and_plain_range_header(files: Any, emulator: RunningEmulator) -> None:
    import requests

    files.create_share("data")
    files.create_file_from_bytes("data", None, "f.bin", b"abcdefghij")
    files.clear_range("data", None, "f.bin", start_range=2, end_range=4)
    assert files.get_file_to_bytes("data", None, "f.bin").content == b"ab\x00\x00\x00fghij"

    url = emulator.emulator.shares.sas_url(emulator.url, "data", "f.bin")
    response = requests.get(
        url, headers={"Range": "bytes=5-"}, verify=emulator.ca_bundle, timeout=30
    )
    assert response.status_code == 206
    assert response.headers["Content-Range"] == "bytes 5-9/10"
    assert response.content == b"fghij"
    beyond = requests.get(
        url, headers={"Range": "bytes=10-"}, verify=emulator.ca_bundle, timeout=30
    )
    assert beyond.status_code == 416


def test_data_dir_is_absolute_for_job_processes(tmp_path: Path, monkeypatch: Any) -> None:
    from emulator.testing import start_emulator

    monkeypatch.chdir(tmp_path)
    with start_emulator(Path("relative-dir")) as emu:
        assert emu.emulator.shares.share_root("data").is_absolute()
        assert Path(emu.env["REQUESTS_CA_BUNDLE"]).is_absolute()


def test_copy_file_is_done_at_once_with_the_content_settings(
    files: Any, emulator: RunningEmulator
) -> None:
    files.create_share("data")
    files.create_directory("data", "uploads")
    files.create_directory("data", "run")
    files.create_file_from_bytes(
        "data",
        "uploads",
        "blob",
        b"weights",
        content_settings=ContentSettings(content_md5=_md5(b"weights")),
    )
    source = files.make_file_url("data", "uploads", "blob")
    copy = files.copy_file("data", "run", "model.bin", source)
    assert copy.status == "success"
    copied = files.get_file_to_bytes("data", "run", "model.bin")
    assert copied.content == b"weights"
    assert copied.properties.content_settings.content_md5 == _md5(b"weights")
    with pytest.raises(AzureMissingResourceHttpError):
        files.copy_file("data", "run", "x", files.make_file_url("data", "uploads", "absent"))
    assert emulator.stats()["requests"]["Files_CopyFile"] == {"202": 1, "404": 1}
    assert emulator.stats()["bytes_uploaded"] == len(b"weights")  # the copy sent nothing


def test_symlinks_a_job_wrote_are_never_followed(
    files: Any, emulator: RunningEmulator, tmp_path: Path
) -> None:
    files.create_share("data")
    files.create_directory("data", "outputs")
    files.create_directory("data", "other-run")
    files.create_file_from_bytes("data", "other-run", "secret.bin", b"not yours")
    root = emulator.emulator.shares.share_root("data")
    outside = tmp_path / "outside.txt"
    outside.write_text("host file")
    (root / "outputs" / "to-host").symlink_to(outside)
    (root / "outputs" / "to-other-run").symlink_to(root / "other-run" / "secret.bin")
    (root / "outputs" / "dir-link").symlink_to(root / "other-run", target_is_directory=True)
    listed = [item.name for item in files.list_directories_and_files("data", "outputs")]
    assert listed == []
    for path in ("to-host", "to-other-run", "dir-link/secret.bin"):
        directory, _, name = f"outputs/{path}".rpartition("/")
        with pytest.raises(AzureHttpError) as refused:
            files.get_file_to_bytes("data", directory, name)
        assert refused.value.status_code == 400
