"""examples/mnist: data preparation, the training script's contract, and its accuracy.

examples/ is not a package (its scripts get copied onto shares), so they are loaded by path.
"""

from __future__ import annotations

import gzip
import importlib
import importlib.util
import json
import math
import os
import re
import struct
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
import yaml


def _examples_extra(module: str) -> ModuleType:
    """A module of the examples extra: skipped for a `.[dev]`-only install, but
    required under CI (CI=true), which installs the extra, so that a broken
    install fails there instead of silently skipping these tests."""
    if os.environ.get("CI", "").strip().lower() in {"true", "1"}:
        return importlib.import_module(module)
    return pytest.importorskip(
        module, reason=f"{module} is in the examples extra: pip install -e '.[dev,examples]'"
    )


np = _examples_extra("numpy")
torch = _examples_extra("torch")
_examples_extra("sklearn")

MNIST_DIR = Path(__file__).resolve().parents[2] / "examples" / "mnist"
CONVNET_SCRIPT = MNIST_DIR / "ConvNet_MNIST.py"
PREPARE_SCRIPT = MNIST_DIR / "prepare_data.py"
RUN_SPEC = MNIST_DIR / "run.yaml"
# Samples per split for the quick tests: enough for every class, small enough to be fast.
SMALL_LIMIT = 150


def load_script(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"example_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # dataclasses look the module up in sys.modules while the class body runs.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def run_script(script: Path, *args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(script), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="session")
def convnet() -> ModuleType:
    return load_script(CONVNET_SCRIPT)


@pytest.fixture(scope="session")
def prepare() -> ModuleType:
    return load_script(PREPARE_SCRIPT)


@pytest.fixture(scope="session")
def small_sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("small_sample")
    proc = run_script(PREPARE_SCRIPT, "--out", out, "--limit", str(SMALL_LIMIT))
    assert proc.returncode == 0, proc.stderr
    return out


# The progress line the orchestrator parses out of a job's stdout.
EPOCH_LINE = re.compile(
    r"Finished Epoch\[(\d+) of (\d+)\]: \[Training\] loss = ([0-9.eE+-]+) \* (\d+),"
    r" metric = ([0-9.]+)% \* (\d+)"
)
FINAL_LINE = re.compile(r"^Final Results: Minibatch\[1-(\d+)\]: errs = ([0-9.]+)% \* (\d+)$")
DIGITS_SAMPLES = 1797


def name_value_lines(stdout: str) -> dict[str, float]:
    pairs = (line.split("=", 1) for line in stdout.splitlines() if re.match(r"^\w+=", line))
    return {name: float(value) for name, value in pairs}


def stderr_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.strip()]


@pytest.fixture(scope="session")
def one_epoch_run(
    small_sample: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[subprocess.CompletedProcess[str], Path]:
    """One epoch, run as a job runs it: the copy of the script inside the input directory."""
    out = tmp_path_factory.mktemp("one_epoch") / "nested" / "model"
    proc = run_script(small_sample / "ConvNet_MNIST.py", small_sample, out, "--epochs", "1")
    assert proc.returncode == 0, proc.stderr
    return proc, out


def call_main(module: ModuleType, args: list[str]) -> int:
    """Run a script's main() in-process (no torch import per case); returns its exit status."""
    try:
        status = module.main(args)
    except SystemExit as exc:
        status = exc.code
    assert isinstance(status, int)
    return status


def test_one_epoch_writes_model_metrics_and_cntk_progress(
    one_epoch_run: tuple[subprocess.CompletedProcess[str], Path], convnet: ModuleType
) -> None:
    proc, out = one_epoch_run
    epochs = [EPOCH_LINE.search(line) for line in proc.stdout.splitlines()]
    matches = [match for match in epochs if match is not None]
    assert len(matches) == 1, proc.stdout
    epoch, total, loss, loss_samples, metric, metric_samples = matches[0].groups()
    assert (epoch, total) == ("1", "1")
    assert int(loss_samples) == int(metric_samples) == SMALL_LIMIT
    assert float(loss) > 0
    assert 0 <= float(metric) <= 100

    finals = [FINAL_LINE.match(line) for line in proc.stdout.splitlines()]
    final = next(match for match in finals if match is not None)
    assert int(final.group(3)) == SMALL_LIMIT
    values = name_value_lines(proc.stdout)
    assert values["test_error"] == pytest.approx(float(final.group(2)) / 100, abs=1e-4)

    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test_error"] == pytest.approx(values["test_error"], abs=1e-4)
    assert metrics["train_loss"] == pytest.approx(values["train_loss"], abs=1e-5)
    assert [entry["epoch"] for entry in metrics["history"]] == [1]

    state = torch.load(out / "ConvNet_MNIST.pt", weights_only=True)
    model = convnet.ConvNet()
    model.load_state_dict(state)  # raises on missing, extra or mis-shaped tensors
    assert set(state) == set(model.state_dict())


def test_training_is_deterministic(
    one_epoch_run: tuple[subprocess.CompletedProcess[str], Path], small_sample: Path, tmp_path: Path
) -> None:
    first_run, first_out = one_epoch_run
    second_run = run_script(CONVNET_SCRIPT, small_sample, tmp_path, "--epochs", "1")
    assert second_run.returncode == 0, second_run.stderr
    first = (first_out / "ConvNet_MNIST.pt").read_bytes()
    second = (tmp_path / "ConvNet_MNIST.pt").read_bytes()
    assert first == second
    assert name_value_lines(first_run.stdout) == name_value_lines(second_run.stdout)


@pytest.mark.slow
def test_run_spec_parameters_reach_low_held_out_error(tmp_path: Path) -> None:
    spec = yaml.safe_load(RUN_SPEC.read_text())
    sample = tmp_path / "sample"
    prepared = run_script(PREPARE_SCRIPT, "--out", sample)
    assert prepared.returncode == 0, prepared.stderr
    parameter_args = [
        str(part) for key, value in spec["parameters"].items() for part in (f"--{key}", value)
    ]
    proc = run_script(sample / spec["job"]["script"], sample, tmp_path / "model", *parameter_args)
    assert proc.returncode == 0, proc.stderr

    values = name_value_lines(proc.stdout)
    assert values["test_error"] < 0.10, proc.stdout
    final = next(m for m in map(FINAL_LINE.match, proc.stdout.splitlines()) if m is not None)
    # The whole held-out split: sklearn rounds the test share up.
    assert int(final.group(3)) == math.ceil(DIGITS_SAMPLES * 0.2)


def test_run_spec_points_at_the_prepared_sample() -> None:
    spec = yaml.safe_load(RUN_SPEC.read_text())
    assert spec["inputs"] == {"SAMPLE": "./sample"}
    assert spec["job"]["script"] == CONVNET_SCRIPT.name
    assert spec["job"]["args"] == ["$AZ_BATCHAI_INPUT_SAMPLE", "$AZ_BATCHAI_OUTPUT_MODEL"]
    assert spec["outputs"] == ["MODEL"]
    assert set(spec["parameters"]) <= {"epochs", "lr"}


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        (["--bogus", "1"], "unrecognized arguments: --bogus"),
        (["--epochs", "0"], "--epochs must be at least 1"),
        (["--epochs", "two"], "invalid int value"),
        (["--lr", "-1"], "--lr must be positive"),
        ([], "the following arguments are required"),
    ],
)
def test_convnet_bad_args_fail_with_one_line(
    small_sample: Path,
    tmp_path: Path,
    convnet: ModuleType,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    complaint: str,
) -> None:
    positional = [] if not args else [str(small_sample), str(tmp_path / "out")]
    assert call_main(convnet, [*positional, *args]) != 0
    lines = stderr_lines(capsys.readouterr().err)
    assert len(lines) == 1, lines
    assert complaint in lines[0]
    assert not (tmp_path / "out").exists()


def test_convnet_missing_input_exits_nonzero_with_one_line(tmp_path: Path) -> None:
    # As a real process, so the exit status is the one a job would report.
    proc = run_script(CONVNET_SCRIPT, tmp_path / "absent", tmp_path / "out")
    assert proc.returncode != 0
    lines = stderr_lines(proc.stderr)
    assert len(lines) == 1, proc.stderr
    assert "Train-28x28_cntk_text.txt does not exist" in lines[0]


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        (["--limit", "0"], "--limit must be at least 1"),
        (["--mnist-dir", "{tmp}/absent"], "train-images-idx3-ubyte[.gz] does not exist"),
        (["--frobnicate"], "unrecognized arguments: --frobnicate"),
    ],
)
def test_prepare_bad_args_fail_with_one_line(
    tmp_path: Path,
    prepare: ModuleType,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    complaint: str,
) -> None:
    filled = [arg.format(tmp=tmp_path) for arg in args]
    assert call_main(prepare, ["--out", str(tmp_path / "out"), *filled]) != 0
    lines = stderr_lines(capsys.readouterr().err)
    assert len(lines) == 1, lines
    assert complaint in lines[0]
    assert not (tmp_path / "out").exists()


def test_ctf_roundtrip(prepare: ModuleType, convnet: ModuleType, tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    images = rng.integers(0, 256, size=(12, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=12).astype(np.int64)
    path = tmp_path / "roundtrip.txt"
    path.write_bytes(prepare.format_ctf(images, labels))

    features, parsed_labels = convnet.parse_ctf(path)
    assert features.shape == (12, 784)
    np.testing.assert_array_equal(features, images.reshape(12, -1).astype(np.float32))
    np.testing.assert_array_equal(parsed_labels, labels)


def test_ctf_parser_rejects_wrong_dimensions(convnet: ModuleType, tmp_path: Path) -> None:
    path = tmp_path / "short.txt"
    path.write_text("|labels 0 1 0 0 0 0 0 0 0 0 |features 1 2 3\n")
    with pytest.raises(convnet.CtfFormatError, match=r"short.txt:1: expected 10 labels and 784"):
        convnet.parse_ctf(path)


def test_digits_split_is_stratified_held_out_and_mnist_shaped(prepare: ModuleType) -> None:
    train_x, train_y, test_x, test_y = prepare.load_digits_split()
    assert len(train_y) + len(test_y) == DIGITS_SAMPLES
    assert train_x.shape[1:] == test_x.shape[1:] == (28, 28)
    assert train_x.dtype == np.uint8 and int(train_x.max()) == 255
    # The 4-pixel margin MNIST leaves around each digit stays empty.
    assert not train_x[:, :4].any() and not train_x[:, -4:].any()
    assert not train_x[:, :, :4].any() and not train_x[:, :, -4:].any()
    # Stratified: every class has its share (to within rounding) in the test split.
    train_counts, test_counts = np.bincount(train_y), np.bincount(test_y)
    assert np.all(np.abs(test_counts - 0.2 * (train_counts + test_counts)) <= 1)
    # Held out: no test image also appears in the training split.
    train_rows = {image.tobytes() for image in train_x}
    assert not any(image.tobytes() in train_rows for image in test_x)


def write_idx(path: Path, array: np.ndarray, compress: bool) -> None:
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim)
    header += struct.pack(f">{array.ndim}I", *array.shape)
    raw = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(raw) if compress else raw)


@pytest.mark.parametrize("compress", [False, True], ids=["plain", "gz"])
def test_idx_reader(prepare: ModuleType, tmp_path: Path, compress: bool) -> None:
    images = np.arange(3 * 28 * 28, dtype=np.int64).reshape(3, 28, 28) % 256
    path = tmp_path / "images"
    write_idx(path, images, compress)
    read = prepare.read_idx(path)
    assert read.shape == (3, 28, 28)
    np.testing.assert_array_equal(read, images)


def test_idx_reader_rejects_bad_magic_and_truncation(prepare: ModuleType, tmp_path: Path) -> None:
    bad_magic = tmp_path / "bad"
    bad_magic.write_bytes(b"\x01\x02\x08\x01\x00\x00\x00\x01\x00")
    with pytest.raises(prepare.DataError, match="bad magic"):
        prepare.read_idx(bad_magic)
    truncated = tmp_path / "short"
    truncated.write_bytes(struct.pack(">BBBBI", 0, 0, 0x08, 1, 5) + b"\x00\x01")
    with pytest.raises(prepare.DataError, match="declares 5 data bytes, file has 2"):
        prepare.read_idx(truncated)


def test_prepare_from_mnist_idx_with_limit(tmp_path: Path, convnet: ModuleType) -> None:
    rng = np.random.default_rng(3)
    mnist = tmp_path / "mnist"
    mnist.mkdir()
    splits = {"train": 8, "t10k": 5}
    expected = {}
    for prefix, count in splits.items():
        images = rng.integers(0, 256, size=(count, 28, 28))
        labels = rng.integers(0, 10, size=count)
        # One split gzipped, one plain: the reader must find either name.
        compress = prefix == "train"
        suffix = ".gz" if compress else ""
        write_idx(mnist / f"{prefix}-images-idx3-ubyte{suffix}", images, compress)
        write_idx(mnist / f"{prefix}-labels-idx1-ubyte{suffix}", labels, compress)
        expected[prefix] = (images, labels)

    out = tmp_path / "out"
    proc = run_script(PREPARE_SCRIPT, "--out", out, "--mnist-dir", mnist, "--limit", "4")
    assert proc.returncode == 0, proc.stderr
    for prefix, name in (("train", "Train"), ("t10k", "Test")):
        features, labels = convnet.parse_ctf(out / f"{name}-28x28_cntk_text.txt")
        images, expected_labels = expected[prefix]
        np.testing.assert_array_equal(features, images[:4].reshape(4, -1))
        np.testing.assert_array_equal(labels, expected_labels[:4])
    assert (out / "ConvNet_MNIST.py").read_bytes() == CONVNET_SCRIPT.read_bytes()


def test_prepare_is_idempotent(
    tmp_path: Path, prepare: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "sample"
    assert call_main(prepare, ["--out", str(out), "--limit", "20"]) == 0
    files = sorted(out.iterdir())
    assert [path.name for path in files] == [
        "ConvNet_MNIST.py",
        "Test-28x28_cntk_text.txt",
        "Train-28x28_cntk_text.txt",
    ]
    # Backdate the files so a rewrite would be visible even within one clock tick.
    for path in files:
        os.utime(path, ns=(1_000_000_000, 1_000_000_000))
    capsys.readouterr()

    assert call_main(prepare, ["--out", str(out), "--limit", "20"]) == 0
    assert capsys.readouterr().out.count("unchanged") == 3
    assert all(path.stat().st_mtime_ns == 1_000_000_000 for path in files)

    assert call_main(prepare, ["--out", str(out), "--limit", "21"]) == 0
    assert "unchanged" in capsys.readouterr().out  # the script itself did not change
    assert (out / "Train-28x28_cntk_text.txt").stat().st_mtime_ns != 1_000_000_000
    assert len((out / "Train-28x28_cntk_text.txt").read_text().splitlines()) == 21
