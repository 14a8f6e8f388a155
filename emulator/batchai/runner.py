# Over 400 lines (about 450): one job's whole life as a local process -- layout,
# environment, command line, user and process group -- reads best in one place.
"""Local process execution of Batch AI jobs: directory layout, $AZ_BATCHAI_* environment,
toolkit command lines (POSIX shell quoting), the unprivileged user jobs run as when the
emulator is root, and process-group control (so a kill also reaches children).

A job's environment is built from nothing: the AZ_BATCHAI_* variables, PATH, HOME, LANG,
TMPDIR and what the job spec sets; never the emulator's own environment, which may hold
the storage key, the emulator token or the orchestrator's secrets.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pwd
import re
import shutil
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlparse

# GPUs per VM size, from the Azure N-series size tables; unknown sizes have none.
_GPUS_BY_SIZE = {
    "standard_nc6": 1,
    "standard_nc12": 2,
    "standard_nc24": 4,
    "standard_nc24r": 4,
    "standard_nc6s_v2": 1,
    "standard_nc12s_v2": 2,
    "standard_nc24s_v2": 4,
    "standard_nc6s_v3": 1,
    "standard_nc12s_v3": 2,
    "standard_nc24s_v3": 4,
    "standard_nd6s": 1,
    "standard_nd12s": 2,
    "standard_nd24s": 4,
    "standard_nv6": 1,
    "standard_nv12": 2,
    "standard_nv24": 4,
}

# Toolkits whose job is "run a Python script with arguments"; value = the args property.
_PYTHON_TOOLKITS = {
    "cntkSettings": "commandLineArgs",
    "pyTorchSettings": "commandLineArgs",
    "tensorFlowSettings": "masterCommandLineArgs",
    "chainerSettings": "commandLineArgs",
    "caffe2Settings": "commandLineArgs",
    "horovodSettings": "commandLineArgs",
    "caffeSettings": "commandLineArgs",
}
_SHELL_TOOLKITS = ("customToolkitSettings", "customMpiSettings")

TOOL_TYPES = {
    "cntkSettings": "cntk",
    "pyTorchSettings": "pytorch",
    "tensorFlowSettings": "tensorflow",
    "chainerSettings": "chainer",
    "caffe2Settings": "caffe2",
    "caffeSettings": "caffe",
    "horovodSettings": "horovod",
    "customToolkitSettings": "custom",
    "customMpiSettings": "custommpi",
}

_VAR = re.compile(r"\$(?:\{(\w+)\}|(\w+))")
_FIELD_SEPARATORS = re.compile(r"[ \t\n]+")
# Characters a backslash escapes inside double quotes (POSIX); elsewhere it stays.
_DOUBLE_QUOTE_ESCAPES = frozenset('$`"\\\n')

log = logging.getLogger(__name__)
_warned: set[str] = set()


class LaunchError(Exception):
    """The job cannot be started; the message is reported in executionInfo.errors."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def gpus_for(vm_size: str) -> int:
    return _GPUS_BY_SIZE.get(vm_size.lower(), 0)


def expand(text: str, env: dict[str, str]) -> str:
    """Expand $NAME / ${NAME} from env; unknown names stay as written (like the service)."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        return env.get(name, match.group(0))

    return _VAR.sub(replace, text)


def split_command_line(text: str, env: dict[str, str]) -> list[str]:
    """Arguments of `text` as a POSIX shell reads them: '...' is literal, "..." expands
    $NAME / ${NAME} and honours \\ escapes, unquoted expansions are split into fields.
    Unknown names stay as written (like the service). Raises LaunchError on an unclosed
    quote."""
    words: list[str] = []
    current: list[str] = []
    started = False  # "" is a word, nothing is not

    def end_word() -> None:
        nonlocal started
        if started:
            words.append("".join(current))
        current.clear()
        started = False

    i, n = 0, len(text)
    while i < n:
        char = text[i]
        if char in " \t\n":
            end_word()
            i += 1
        elif char == "'":
            close = text.find("'", i + 1)
            if close < 0:
                raise LaunchError("InvalidJob", "commandLineArgs: unclosed single quote")
            current.append(text[i + 1 : close])
            started = True
            i = close + 1
        elif char == '"':
            started = True
            i += 1
            while True:
                if i >= n:
                    raise LaunchError("InvalidJob", "commandLineArgs: unclosed double quote")
                char = text[i]
                if char == '"':
                    i += 1
                    break
                if char == "\\" and i + 1 < n and text[i + 1] in _DOUBLE_QUOTE_ESCAPES:
                    if text[i + 1] != "\n":  # backslash-newline continues the line
                        current.append(text[i + 1])
                    i += 2
                    continue
                match = _VAR.match(text, i) if char == "$" else None
                if match:
                    current.append(env.get(match.group(1) or match.group(2), match.group(0)))
                    i = match.end()
                    continue
                current.append(char)
                i += 1
        elif char == "\\":
            if i + 1 < n and text[i + 1] != "\n":
                current.append(text[i + 1])
                started = True
            i += 2
        else:
            match = _VAR.match(text, i) if char == "$" else None
            if match is None:
                current.append(char)
                started = True
                i += 1
                continue
            name = match.group(1) or match.group(2)
            i = match.end()
            if name not in env:
                current.append(match.group(0))
                started = True
                continue
            # Unquoted: the value is split into fields, as the shell would.
            for index, piece in enumerate(_FIELD_SEPARATORS.split(env[name])):
                if index > 0:
                    end_word()
                if piece:
                    current.append(piece)
                    started = True
    end_word()
    return words


def toolkit_of(properties: dict[str, Any]) -> str | None:
    """The *Settings key the job uses, or None when it names no toolkit."""
    for key in TOOL_TYPES:
        if isinstance(properties.get(key), dict):
            return key
    return None


def share_name(azure_file_url: str) -> str:
    """The share of an azureFileUrl (https://account.file.core.windows.net/<share>)."""
    return urlparse(azure_file_url).path.rstrip("/").rsplit("/", 1)[-1]


@dataclass
class JobLayout:
    """Where one run of a job lives on disk and what it sees in its environment."""

    root: Path  # per-run private directory: mounts, temp, work dir
    env: dict[str, str]
    stdouterr_dir: Path
    output_dirs: dict[str, Path]  # OutputDirectory.id -> expanded absolute path


@dataclass
class Mount:
    relative_path: str
    target: Path
    share: str | None = None  # the Azure File share behind the mount, if any


def build_layout(
    *,
    root: Path,
    job_name: str,
    properties: dict[str, Any],
    secrets: dict[str, str],
    cluster_mounts: list[Mount],
    job_mounts: list[Mount],
    vm_size: str,
    output_segment: str,
    stdouterr_subdir: str,
) -> JobLayout:
    """Create the run's directories and mounts and compute its environment.

    Layout (Batch AI's, see docs/emulator-batchai.md):
      stdout/stderr: {stdOutErrPathPrefix}/{segment}/{stdouterr_subdir}
      output dir id: {pathPrefix}/{segment}/outputs/{pathSuffix}
    """
    mount_root = root / "mounts"
    job_mount_root = root / "jobmounts"
    temp = root / "temp"
    for directory in (mount_root, job_mount_root, temp, root / "wd"):
        directory.mkdir(parents=True, exist_ok=True)
    for base, mounts in ((mount_root, cluster_mounts), (job_mount_root, job_mounts)):
        for mount in mounts:
            link = base / mount.relative_path
            link.parent.mkdir(parents=True, exist_ok=True)
            if not link.is_symlink():
                link.symlink_to(mount.target, target_is_directory=True)

    gpus = str(gpus_for(vm_size))
    env: dict[str, str] = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(root / "wd"),
        "LANG": "C.UTF-8",
        "TMPDIR": str(temp),
        "AZ_BATCHAI_MOUNT_ROOT": str(mount_root),
        "AZ_BATCHAI_JOB_MOUNT_ROOT": str(job_mount_root),
        "AZ_BATCHAI_JOB_NAME": job_name,
        "AZ_BATCHAI_JOB_TEMP": str(temp),
        "AZ_BATCHAI_JOB_TEMP_DIR": str(temp),
        "AZ_BATCHAI_NUM_GPUS": gpus,
        "AZ_BATCHAI_NUM_GPUS_PER_NODE": gpus,
        "AZ_BATCHAI_TASK_INDEX": "0",
        "AZ_BATCHAI_WORKER_HOSTS": "127.0.0.1",
        "AZ_BATCHAI_PS_HOSTS": "127.0.0.1",
    }
    for variable in properties.get("environmentVariables") or []:
        env[str(variable["name"])] = expand(str(variable.get("value", "")), env)
    env.update(secrets)

    stdouterr_dir = (
        _absolute(expand(str(properties["stdOutErrPathPrefix"]), env), root) / output_segment
    )
    if stdouterr_subdir:
        stdouterr_dir = stdouterr_dir / stdouterr_subdir
    env["AZ_BATCHAI_STD_OUTERR_DIR"] = str(stdouterr_dir)

    for directory in properties.get("inputDirectories") or []:
        env[f"AZ_BATCHAI_INPUT_{directory['id']}"] = str(
            _absolute(expand(str(directory["path"]), env), root)
        )
    output_dirs: dict[str, Path] = {}
    for directory in properties.get("outputDirectories") or []:
        path = _absolute(expand(str(directory["pathPrefix"]), env), root)
        if directory.get("createNew", True):
            path = path / output_segment / "outputs"
        suffix = expand(str(directory.get("pathSuffix") or ""), env).strip("/")
        if suffix:
            path = path / suffix
        output_dirs[str(directory["id"])] = path
        env[f"AZ_BATCHAI_OUTPUT_{directory['id']}"] = str(path)
        env[f"AZ_BATCHAI_PREV_OUTPUT_{directory['id']}"] = ""
    return JobLayout(root, env, stdouterr_dir, output_dirs)


def _absolute(path: str, root: Path) -> Path:
    # A relative path is taken relative to the job's work dir, as on a node.
    candidate = Path(path)
    return candidate if candidate.is_absolute() else root / "wd" / candidate


def main_command(properties: dict[str, Any], env: dict[str, str], python: str) -> list[str]:
    """argv of the job's main process; raises LaunchError for what cannot run here."""
    toolkit = toolkit_of(properties)
    if toolkit is None:
        raise LaunchError("InvalidJob", "the job names no toolkit settings")
    settings: dict[str, Any] = properties[toolkit]
    if toolkit in _SHELL_TOOLKITS:
        return ["/bin/sh", "-c", str(settings.get("commandLine") or "")]
    script = settings.get("pythonScriptFilePath")
    if not script:
        raise LaunchError(
            "UnsupportedToolkit",
            f"{toolkit}.configFilePath (BrainScript/Caffe config) jobs cannot run in the "
            f"emulator; use {toolkit}.pythonScriptFilePath",
        )
    args = split_command_line(str(settings.get(_PYTHON_TOOLKITS[toolkit]) or ""), env)
    return [python, expand(str(script), env), *args]


@dataclass(frozen=True)
class JobUser:
    """The unprivileged account job processes run as when the emulator is root."""

    name: str
    uid: int
    gid: int


def resolve_job_user(name: str | None) -> JobUser | None:
    """`name`'s account when the emulator runs as root; None (jobs run as the emulator's
    own user) when it is not root, no user is configured, or the account does not exist."""
    if not name or os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        _warn_once(f"job processes run as root: there is no user {name!r} to run them as")
        return None
    return JobUser(name, entry.pw_uid, entry.pw_gid)


def hand_over(user: JobUser, paths: list[Path], within: Path) -> None:
    """Give `user` the trees of `paths` (the run's directory, its mounts, output and
    stdout/err folders) so the job can write them. Only paths inside `within` (the data
    dir): a spec naming /etc as an output prefix must not get /etc chowned."""
    within = within.resolve()
    for path in paths:
        resolved = path.resolve()
        if not resolved.is_relative_to(within) or not resolved.exists():
            continue
        os.chown(resolved, user.uid, user.gid)
        for parent, dirs, files in os.walk(resolved):
            for name in dirs + files:
                with contextlib.suppress(FileNotFoundError):
                    os.lchown(os.path.join(parent, name), user.uid, user.gid)


def _unusable_by(user: JobUser, program: str, work_dir: Path) -> str | None:
    """Why `user` could not run `program` in `work_dir`, or None. Checked by a shell
    running as that user, so every directory on the way (e.g. a venv under a 0700 home)
    counts, as the kernel will count it."""
    resolved = program if os.path.isabs(program) else (shutil.which(program) or program)
    probe = subprocess.run(
        ["/bin/sh", "-c", 'test -x "$1" && test -r "$1" || exit 3; test -w "$2" && test -x "$2"',
         "probe", resolved, str(work_dir)],
        user=user.uid, group=user.gid, extra_groups=[], env={"PATH": "/usr/bin:/bin"},
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        timeout=30, check=False,
    )  # fmt: skip
    if probe.returncode == 0:
        return None
    if probe.returncode == 3:
        return f"{resolved} is not readable and executable by user {user.name!r}"
    return f"the job directories under {work_dir.parent} are not reachable by user {user.name!r}"


def _warn_once(message: str) -> None:
    if message not in _warned:
        _warned.add(message)
        log.warning("%s", message)


@dataclass
class RunningProcess:
    """One child process (job preparation or the job itself) in its own process group."""

    popen: subprocess.Popen[bytes]
    files: list[TextIO] = field(default_factory=list)

    def poll(self) -> int | None:
        code = self.popen.poll()
        if code is not None:
            # What it started in the background (`cmd &`) ends with it, as a node's task
            # does; otherwise it would outlive the job, and the emulator too.
            self._kill_group()
            self._close()
        return code

    def kill(self) -> None:
        self._kill_group()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=10)
        self._close()

    def _kill_group(self) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signal.SIGKILL)

    def _close(self) -> None:
        for handle in self.files:
            handle.close()
        self.files.clear()


def start(
    argv: list[str],
    layout: JobLayout,
    stdout_name: str,
    stderr_name: str,
    user: JobUser | None = None,
) -> RunningProcess:
    """Start argv with the job's env and cwd; stdout/stderr go to the stdouterr dir.

    As `user` when given and able to run it; otherwise (e.g. the interpreter lives in a
    home only root can enter) as the emulator's own user, with a warning, rather than
    failing every job."""
    layout.stdouterr_dir.mkdir(parents=True, exist_ok=True)
    identity: dict[str, Any] = {}
    if user is not None:
        reason = _unusable_by(user, argv[0], layout.root / "wd")
        if reason is None:
            identity = {"user": user.uid, "group": user.gid, "extra_groups": []}
        else:
            _warn_once(f"job processes run as root: {reason}")
    out = open(layout.stdouterr_dir / stdout_name, "w")  # noqa: SIM115 - closed on exit
    err = open(layout.stdouterr_dir / stderr_name, "w")  # noqa: SIM115
    try:
        popen = subprocess.Popen(
            argv,
            cwd=layout.root / "wd",
            env=layout.env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            start_new_session=True,  # own process group: killpg reaches children
            **identity,
        )
    except OSError as exc:
        out.close()
        err.close()
        raise LaunchError("JobLaunchFailed", f"cannot start {argv[0]}: {exc.strerror}") from exc
    return RunningProcess(popen, [out, err])


def prepare_output_dirs(layout: JobLayout) -> None:
    for path in layout.output_dirs.values():
        path.mkdir(parents=True, exist_ok=True)
