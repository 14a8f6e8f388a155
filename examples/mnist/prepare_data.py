"""Write the quickstart's MNIST input directory: two CTF files plus the training script.

    python prepare_data.py [--out DIR] [--mnist-dir DIR] [--limit N]

By default the data are the real handwritten digits that ship with scikit-learn
(1797 images, 8x8, values 0..16), resized to MNIST's layout (the digit in the
central 20x20 box of a 28x28 image, values 0..255) and split 80/20, stratified
and seeded, into Train-28x28_cntk_text.txt and Test-28x28_cntk_text.txt. With
--mnist-dir the real MNIST IDX files (optionally .gz) are converted instead.

ConvNet_MNIST.py is copied next to the data because a run spec names its script
as a path inside the first input directory. Files whose content would not
change are left alone, so the orchestrator's MD5 check skips re-uploading them.
"""

from __future__ import annotations

import argparse
import gzip
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import numpy.typing as npt

HERE = Path(__file__).resolve().parent
SCRIPT = HERE / "ConvNet_MNIST.py"
DEFAULT_OUT = HERE / "sample"
TRAIN_FILE = "Train-28x28_cntk_text.txt"
TEST_FILE = "Test-28x28_cntk_text.txt"
IMAGE_SIDE = 28
# MNIST centres each digit in a 20x20 box with a 4-pixel margin.
DIGIT_BOX = 20
NUM_CLASSES = 10
TEST_FRACTION = 0.2
SPLIT_SEED = 0
MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
# IDX type byte -> big-endian numpy dtype (http://yann.lecun.com/exdb/mnist/).
IDX_DTYPES: dict[int, np.dtype[Any]] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
GZIP_MAGIC = b"\x1f\x8b"

Images = npt.NDArray[np.uint8]  # [n, 28, 28], 0..255
Labels = npt.NDArray[np.int64]  # [n], 0..9


class DataError(Exception):
    """Input data that cannot be turned into the CTF files; printed as one line."""


def format_ctf(images: Images, labels: Labels) -> bytes:
    """CNTK text format, one sample a line: `|labels <10 one-hot> |features <784 pixels>`."""
    if images.shape[1:] != (IMAGE_SIDE, IMAGE_SIDE) or len(images) != len(labels):
        raise DataError(f"expected [n, 28, 28] images with n labels, got {images.shape}")
    one_hot = np.eye(NUM_CLASSES, dtype=np.int64)[labels]
    lines = [
        "|labels {} |features {}\n".format(
            " ".join(map(str, label_row)), " ".join(map(str, image.reshape(-1).tolist()))
        )
        for label_row, image in zip(one_hot.tolist(), images, strict=True)
    ]
    return "".join(lines).encode("ascii")


def write_if_changed(path: Path, content: bytes) -> bool:
    """Atomically write `content` unless the file already holds exactly it; True if written."""
    if path.is_file() and path.read_bytes() == content:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "wb") as temp:
            temp.write(content)
        # mkstemp creates 0600; the files are data for other users and processes.
        os.chmod(temp_name, 0o644)
        os.replace(temp_name, path)
    except BaseException:
        os.unlink(temp_name)
        raise
    return True


def read_idx(path: Path) -> npt.NDArray[Any]:
    """Read an IDX file (plain or gzip-compressed) into an array of its declared shape."""
    raw = path.read_bytes()
    if raw.startswith(GZIP_MAGIC):
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise DataError(f"{path}: corrupt gzip data ({exc})") from None
    if len(raw) < 4 or raw[0:2] != b"\x00\x00" or raw[2] not in IDX_DTYPES:
        raise DataError(f"{path}: not an IDX file (bad magic number)")
    dtype = IDX_DTYPES[raw[2]]
    ndim = raw[3]
    header_size = 4 + 4 * ndim
    if len(raw) < header_size:
        raise DataError(f"{path}: truncated IDX header")
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(raw) - header_size != expected:
        raise DataError(
            f"{path}: IDX header declares {expected} data bytes, file has {len(raw) - header_size}"
        )
    return np.frombuffer(raw, dtype=dtype, offset=header_size).reshape(shape)


def find_idx(directory: Path, stem: str) -> Path:
    for candidate in (directory / stem, directory / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    raise DataError(f"{directory / stem}[.gz] does not exist")


def load_mnist(directory: Path) -> tuple[Images, Labels, Images, Labels]:
    arrays = {key: read_idx(find_idx(directory, stem)) for key, stem in MNIST_FILES.items()}
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if images.ndim != 3 or images.shape[1:] != (IMAGE_SIDE, IMAGE_SIDE):
            raise DataError(f"{split} images have shape {images.shape}, expected [n, 28, 28]")
        if labels.ndim != 1 or len(labels) != len(images):
            raise DataError(f"{split}: {len(images)} images but labels of shape {labels.shape}")
        if labels.size and not 0 <= int(labels.min()) <= int(labels.max()) < NUM_CLASSES:
            raise DataError(f"{split} labels are outside 0..9")
    return (
        arrays["train_images"].astype(np.uint8),
        arrays["train_labels"].astype(np.int64),
        arrays["test_images"].astype(np.uint8),
        arrays["test_labels"].astype(np.int64),
    )


def bilinear_weights(source: int, target: int) -> npt.NDArray[np.float64]:
    """[target, source] matrix resampling a 1-D signal with pixel-centre-aligned bilinear."""
    positions = np.clip((np.arange(target) + 0.5) * source / target - 0.5, 0, source - 1)
    lower = np.floor(positions).astype(int)
    upper = np.minimum(lower + 1, source - 1)
    fraction = positions - lower
    weights = np.zeros((target, source))
    weights[np.arange(target), lower] += 1 - fraction
    weights[np.arange(target), upper] += fraction
    return weights


def to_mnist_layout(images: npt.NDArray[np.float64], max_value: float) -> Images:
    """Resize [n, h, w] images into MNIST's 20x20 box, pad to 28x28, scale to 0..255."""
    rows = bilinear_weights(images.shape[1], DIGIT_BOX)
    cols = bilinear_weights(images.shape[2], DIGIT_BOX)
    resized = rows @ images @ cols.T
    margin = (IMAGE_SIDE - DIGIT_BOX) // 2
    padded = np.pad(resized, ((0, 0), (margin, margin), (margin, margin)))
    return np.clip(np.rint(padded * 255.0 / max_value), 0, 255).astype(np.uint8)


def load_digits_split() -> tuple[Images, Labels, Images, Labels]:
    # scikit-learn ships no type information.
    from sklearn.datasets import load_digits  # type: ignore[import-untyped]
    from sklearn.model_selection import train_test_split  # type: ignore[import-untyped]

    digits = load_digits()
    images = to_mnist_layout(digits.images.astype(np.float64), max_value=16.0)
    labels = digits.target.astype(np.int64)
    train_x, test_x, train_y, test_y = train_test_split(
        images, labels, test_size=TEST_FRACTION, stratify=labels, random_state=SPLIT_SEED
    )
    return train_x, train_y, test_x, test_y


class OneLineErrorParser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = OneLineErrorParser(prog="prepare_data.py", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help=f"output directory (default {DEFAULT_OUT})"
    )
    parser.add_argument(
        "--mnist-dir", type=Path, help="read real MNIST IDX files from here instead of digits"
    )
    parser.add_argument("--limit", type=int, help="keep at most this many samples per split")
    args = parser.parse_args(argv)
    if args.limit is not None and args.limit < 1:
        parser.error(f"--limit must be at least 1, got {args.limit}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if args.mnist_dir is not None:
            train_x, train_y, test_x, test_y = load_mnist(args.mnist_dir)
        else:
            train_x, train_y, test_x, test_y = load_digits_split()
        # Neither source is ordered by class, so a prefix is a fair sample.
        limit = args.limit
        outputs = {
            TRAIN_FILE: format_ctf(train_x[:limit], train_y[:limit]),
            TEST_FILE: format_ctf(test_x[:limit], test_y[:limit]),
            SCRIPT.name: SCRIPT.read_bytes(),
        }
        for name, content in outputs.items():
            changed = write_if_changed(args.out / name, content)
            print(f"{'wrote' if changed else 'unchanged'} {args.out / name}")
    except (DataError, OSError) as exc:
        print(f"prepare_data.py: error: {exc}", file=sys.stderr)
        return 1
    print(f"{len(train_y[:limit])} training and {len(test_y[:limit])} test samples")
    return 0


if __name__ == "__main__":
    sys.exit(main())
