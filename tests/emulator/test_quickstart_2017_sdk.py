"""The original (2017) Batch AI Python quickstart, run for real on its own SDK.

What it proves: tests/emulator/quickstart_2017/quickstart.py -- the quickstart's procedure
with only credentials and endpoints changed -- runs unmodified azure-mgmt-batchai 0.2.0
(api-version 2017-09-01-preview, msrestazure AzureOperationPoller LROs),
azure-mgmt-resource 1.2.2 and azure-storage-file 0.37.0 against the emulator over HTTPS:
resource group, share + upload, one-node STANDARD_NC6 cluster with the share mounted,
idle node, CNTK job (a real Python script) writing its model to the MODEL output
directory, output files listed and downloaded, job/cluster/group deleted. The emulator's
stats confirm exactly one cluster, one job and one resource group created and deleted.

Those SDKs cannot be installed beside the project's (azure-mgmt-batchai 7.0.0, newer
azure-mgmt-resource), so the script runs in a separate venv built on first use and
cached in .venv/cache/quickstart-2017-<hash of QUICKSTART_REQUIREMENTS and the base
Python>/ (under the project venv, so `make clean` removes it). The build is serialized
by a file lock and renamed into place only once complete. It needs PyPI: without it the
test skips, except under CI=true, where it fails.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn

import pytest

from emulator.testing import RunningEmulator, apply_env

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
QUICKSTART_DIR = Path(__file__).resolve().parent / "quickstart_2017"
CACHE_DIR = REPO / ".venv" / "cache"

# The quickstart's own SDK generation (late 2017). Its transitive dependencies (adal,
# requests, cryptography, ...) resolve to current releases. Verified on Python 3.11, 3.12
# and 3.13; azure-storage-file==2.1.0 (the project's pin) with msrestazure 0.4.34 and
# msrest 0.7.1 works too.
QUICKSTART_REQUIREMENTS = (
    "azure-mgmt-batchai==0.2.0",
    "azure-mgmt-resource==1.2.2",
    "msrestazure==0.4.15",
    "msrest==0.4.17",
    "azure-storage-file==0.37.0",
    "azure-storage-common==0.37.1",
    "azure-common==1.1.28",
)
IMPORT_CHECK = "import azure.mgmt.batchai, azure.mgmt.resource, msrestazure, azure.storage.file"
# pip's output when the index cannot be reached (as opposed to a broken requirement).
_UNREACHABLE = re.compile(
    r"NewConnectionError|Max retries exceeded|Temporary failure in name resolution|"
    r"Name or service not known|Network is unreachable|ProxyError|ConnectTimeout|"
    r"from versions: none"
)
SCRIPT_TIMEOUT_SECONDS = 300
PIP_TIMEOUT_SECONDS = 540


def cache_key() -> str:
    """Requirements plus the interpreter the venv links to (a new Python, a new venv)."""
    base = os.path.realpath(getattr(sys, "_base_executable", sys.executable))
    material = "\n".join((base, platform.python_version(), *QUICKSTART_REQUIREMENTS))
    return hashlib.sha256(material.encode()).hexdigest()[:12]


def venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


@contextmanager
def file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def unavailable(reason: str) -> NoReturn:
    """No PyPI: a failure under CI, a skip elsewhere."""
    if os.environ.get("CI", "").lower() in ("true", "1"):
        pytest.fail(f"CI: {reason}")
    pytest.skip(reason)


def quickstart_venv() -> Path:
    """The cached venv holding QUICKSTART_REQUIREMENTS, built (once) if missing."""
    final = CACHE_DIR / f"quickstart-2017-{cache_key()}"
    complete = final / "quickstart-2017.freeze.txt"  # written last, before the rename
    if complete.is_file():
        return final
    with file_lock(CACHE_DIR / f"quickstart-2017-{cache_key()}.lock"):
        if complete.is_file():  # another process built it while we waited
            return final
        if final.exists():  # not ours to trust: no completion marker
            shutil.rmtree(final)
        build = Path(tempfile.mkdtemp(prefix=f".{final.name}-", dir=CACHE_DIR))
        try:
            build_venv(build)
            # Atomic on one filesystem (final does not exist). Only bin/python is used
            # afterwards: the console scripts' shebangs still name the build path.
            os.rename(build, final)
        finally:
            shutil.rmtree(build, ignore_errors=True)
    return final


def build_venv(path: Path) -> None:
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
    python = str(venv_python(path))
    try:
        pip = subprocess.run(
            [python, "-m", "pip", "install", "--no-input", "--disable-pip-version-check",
             "--retries", "2", *QUICKSTART_REQUIREMENTS],
            capture_output=True, text=True, timeout=PIP_TIMEOUT_SECONDS,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        unavailable(f"pip install of the 2017 quickstart SDKs took over {PIP_TIMEOUT_SECONDS}s")
    if pip.returncode != 0:
        output = (pip.stdout + pip.stderr)[-3000:]
        if _UNREACHABLE.search(output):
            last = output.strip().splitlines()[-1]
            unavailable(f"cannot install the 2017 quickstart SDKs, PyPI unreachable: {last}")
        pytest.fail(f"pip install {' '.join(QUICKSTART_REQUIREMENTS)} failed:\n{output}")
    subprocess.run([python, "-c", IMPORT_CHECK], check=True)
    freeze = subprocess.run(
        [python, "-m", "pip", "freeze", "--disable-pip-version-check"],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    (path / "quickstart-2017.freeze.txt").write_text(freeze.stdout)


def quickstart_env(emulator: RunningEmulator, downloads: Path) -> dict[str, str]:
    env = apply_env(emulator.env)
    for name in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"):
        env.pop(name, None)
    no_proxy = ",".join(filter(None, (env.get("NO_PROXY"), "127.0.0.1,localhost")))
    env.update(
        NO_PROXY=no_proxy,
        no_proxy=no_proxy,
        AZURE_ACCESS_TOKEN=emulator.access_token,
        QUICKSTART_SAMPLE_DIR=str(QUICKSTART_DIR),
        QUICKSTART_DOWNLOAD_DIR=str(downloads),
    )
    return env


def test_2017_quickstart_on_its_own_sdk(emulator: RunningEmulator, tmp_path: Path) -> None:
    venv = quickstart_venv()
    print("quickstart venv:", venv)
    print((venv / "quickstart-2017.freeze.txt").read_text())
    downloads = tmp_path / "downloads"
    run = subprocess.run(
        [str(venv_python(venv)), str(QUICKSTART_DIR / "quickstart.py")],
        env=quickstart_env(emulator, downloads),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=SCRIPT_TIMEOUT_SECONDS,
    )
    print(run.stdout)
    print(run.stderr, file=sys.stderr)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "Job state: succeeded" in run.stdout
    assert emulator.env["AZURE_STORAGE_KEY"] not in run.stdout + run.stderr

    # What the job wrote, as downloaded through list_output_files' download URLs.
    assert sorted(p.relative_to(downloads).as_posix() for p in downloads.rglob("*.*")) == [
        "MODEL/ConvNet_MNIST.model",
        "stdouterr/stderr.txt",
        "stdouterr/stdout.txt",
    ]
    assert json.loads((downloads / "MODEL" / "ConvNet_MNIST.model").read_text()) == {
        "model": "nearest-centroid",
        "classes": list(range(10)),
        "train_samples": 12,
        "test_samples": 4,
        "gpus": 1,
    }
    assert (downloads / "stdouterr" / "stdout.txt").read_text() == (
        "Training on 12 samples, testing on 4\nFinished evaluation: test errors 1 of 4\n"
    )
    assert (downloads / "stdouterr" / "stderr.txt").read_text() == ""

    stats = emulator.stats()
    resources = stats["resources"]
    print("emulator resources:", json.dumps(resources, sort_keys=True))
    for event in ("created", "deleted"):
        for kind in ("resource_group", "cluster", "job"):
            assert resources[event].get(kind) == 1, (event, kind, resources)
    assert resources["created"]["file"] == 3
    requests = stats["requests"]
    # The preview API only: no workspace or experiment ever touched, and no call refused.
    assert not [op for op in requests if op.split("_")[0] in ("Workspaces", "Experiments")]
    for operation, outcomes in requests.items():
        allowed = {"204", "404"} if operation == "ResourceGroups_CheckExistence" else set()
        assert all(o.startswith("2") or o in allowed for o in outcomes), (operation, outcomes)
    assert requests["ResourceGroups_CheckExistence"].get("404") == 1
