"""Train the Batch AI quickstart's MNIST ConvNet, in PyTorch.

    python ConvNet_MNIST.py <input dir> <output dir> [--epochs N] [--lr LR]

Reads Train-28x28_cntk_text.txt and Test-28x28_cntk_text.txt (CNTK text format:
`|labels <10 one-hot> |features <784 values 0..255>`) from <input dir>, trains,
evaluates on the held-out test file and writes ConvNet_MNIST.pt (a state_dict)
and metrics.json into <output dir>.

Progress is printed the way CNTK prints it, because the orchestrator parses
those lines out of stdout (`Finished Epoch[...]`, `Final Results: ...`), plus
plain `name=value` lines for the final metrics.

The file is self-contained on purpose: a job copies it onto the file share and
runs it there, away from the rest of this repository.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import NoReturn

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

TRAIN_FILE = "Train-28x28_cntk_text.txt"
TEST_FILE = "Test-28x28_cntk_text.txt"
MODEL_FILE = "ConvNet_MNIST.pt"
METRICS_FILE = "metrics.json"
IMAGE_SIDE = 28
FEATURE_DIM = IMAGE_SIDE * IMAGE_SIDE
NUM_CLASSES = 10
DEFAULT_EPOCHS = 15
DEFAULT_LR = 0.003
MINIBATCH_SIZE = 64
SEED = 1
# The orchestrator's machines are shared; more threads than this only contend.
MAX_THREADS = 2


class CtfFormatError(ValueError):
    """A CNTK text format file that does not hold MNIST-shaped samples."""


def parse_ctf(path: Path) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
    """Read a CTF file into (features [n, 784] float32 in 0..255, class indices [n])."""
    features: list[npt.NDArray[np.float32]] = []
    labels: list[int] = []
    with path.open(encoding="ascii") as lines:
        for line_number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            streams: dict[str, npt.NDArray[np.float32]] = {}
            # Anything before the first '|' is CTF's optional sequence id.
            for field in line.split("|")[1:]:
                name, _, values = field.partition(" ")
                try:
                    streams[name] = np.array(values.split(), dtype=np.float32)
                except ValueError as exc:
                    raise CtfFormatError(f"{path}:{line_number}: {exc}") from None
            label_values = streams.get("labels")
            feature_values = streams.get("features")
            if label_values is None or feature_values is None:
                raise CtfFormatError(f"{path}:{line_number}: needs |labels and |features")
            if label_values.shape != (NUM_CLASSES,) or feature_values.shape != (FEATURE_DIM,):
                raise CtfFormatError(
                    f"{path}:{line_number}: expected {NUM_CLASSES} labels and {FEATURE_DIM}"
                    f" features, got {label_values.size} and {feature_values.size}"
                )
            if label_values.sum() != 1 or not np.isin(label_values, (0, 1)).all():
                raise CtfFormatError(f"{path}:{line_number}: labels are not one-hot")
            labels.append(int(label_values.argmax()))
            features.append(feature_values)
    if not labels:
        raise CtfFormatError(f"{path}: no samples")
    return np.stack(features), np.array(labels, dtype=np.int64)


class ConvNet(nn.Module):
    """The quickstart's CNTK ConvNet: three convolutions, a hidden dense layer, dropout."""

    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Conv2d(1, 32, kernel_size=5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(32, 48, kernel_size=3),
            nn.ReLU(),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(48, 64, kernel_size=3),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(64 * 3 * 3, 96),
            nn.ReLU(),
            nn.Dropout(0.5),
            nn.Linear(96, NUM_CLASSES),
        )

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        # Same input scaling as the CNTK original (features * 1/256).
        scaled = pixels.view(-1, 1, IMAGE_SIDE, IMAGE_SIDE) / 256.0
        logits: torch.Tensor = self.layers(scaled)
        return logits


@dataclass
class EpochResult:
    epoch: int
    loss: float
    error: float
    samples: int
    seconds: float


def train_epoch(
    model: ConvNet,
    optimizer: torch.optim.Optimizer,
    features: torch.Tensor,
    labels: torch.Tensor,
    generator: torch.Generator,
) -> tuple[float, float]:
    """One pass over the shuffled training set; returns (mean loss, error rate)."""
    model.train()
    order = torch.randperm(len(labels), generator=generator, device="cpu").to(labels.device)
    loss_sum = 0.0
    errors = 0
    for start in range(0, len(order), MINIBATCH_SIZE):
        batch = order[start : start + MINIBATCH_SIZE]
        logits = model(features[batch])
        loss = nn.functional.cross_entropy(logits, labels[batch])
        optimizer.zero_grad()
        loss.backward()  # type: ignore[no-untyped-call]
        optimizer.step()
        loss_sum += loss.item() * len(batch)
        errors += int((logits.argmax(dim=1) != labels[batch]).sum().item())
    return loss_sum / len(order), errors / len(order)


@torch.no_grad()
def evaluate(model: ConvNet, features: torch.Tensor, labels: torch.Tensor) -> tuple[int, int]:
    """Returns (misclassified samples, minibatches) over the whole set."""
    model.eval()
    errors = 0
    minibatches = 0
    for start in range(0, len(labels), MINIBATCH_SIZE):
        logits = model(features[start : start + MINIBATCH_SIZE])
        errors += int((logits.argmax(dim=1) != labels[start : start + MINIBATCH_SIZE]).sum())
        minibatches += 1
    return errors, minibatches


class OneLineErrorParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr (the job log shows just that)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = OneLineErrorParser(
        prog="ConvNet_MNIST.py", description="Train the MNIST ConvNet on CTF files."
    )
    parser.add_argument("input_dir", type=Path, help=f"directory with {TRAIN_FILE}, {TEST_FILE}")
    parser.add_argument("output_dir", type=Path, help=f"where {MODEL_FILE} is written")
    parser.add_argument("--epochs", type=int, default=DEFAULT_EPOCHS, help="passes over the data")
    parser.add_argument("--lr", type=float, default=DEFAULT_LR, help="Adam learning rate")
    args = parser.parse_args(argv)
    if args.epochs < 1:
        parser.error(f"--epochs must be at least 1, got {args.epochs}")
    if not args.lr > 0:
        parser.error(f"--lr must be positive, got {args.lr}")
    for name in (TRAIN_FILE, TEST_FILE):
        if not (args.input_dir / name).is_file():
            parser.error(f"{args.input_dir / name} does not exist")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        train_x, train_y = parse_ctf(args.input_dir / TRAIN_FILE)
        test_x, test_y = parse_ctf(args.input_dir / TEST_FILE)
    except CtfFormatError as exc:
        print(f"ConvNet_MNIST.py: error: {exc}", file=sys.stderr)
        return 1

    # Deterministic cuBLAS needs this set before CUDA initialises; CPU ignores it.
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.manual_seed(SEED)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(min(MAX_THREADS, os.cpu_count() or 1))
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    print(f"Training on {device} with {len(train_y)} samples, testing on {len(test_y)}")

    model = ConvNet().to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    shuffle = torch.Generator().manual_seed(SEED)
    train_features = torch.from_numpy(train_x).to(device)
    train_labels = torch.from_numpy(train_y).to(device)
    test_features = torch.from_numpy(test_x).to(device)
    test_labels = torch.from_numpy(test_y).to(device)

    history: list[EpochResult] = []
    for epoch in range(1, args.epochs + 1):
        started = time.perf_counter()
        loss, error = train_epoch(model, optimizer, train_features, train_labels, shuffle)
        seconds = time.perf_counter() - started
        history.append(EpochResult(epoch, loss, error, len(train_y), seconds))
        print(
            f"Finished Epoch[{epoch} of {args.epochs}]: [Training] loss = {loss:.6f} *"
            f" {len(train_y)}, metric = {error * 100:.2f}% * {len(train_y)}"
            f" {seconds:.3f}s ({len(train_y) / seconds:.1f} samples/s);",
            flush=True,
        )
        # The held-out error after every epoch: one interval of a sweep's early
        # termination (examples/mnist/sweep.yaml), and a curve per run.
        val_errors, _ = evaluate(model, test_features, test_labels)
        print(f"val_error={val_errors / len(test_y):.4f}", flush=True)

    test_errors, minibatches = evaluate(model, test_features, test_labels)
    test_error = test_errors / len(test_y)
    print(
        f"Final Results: Minibatch[1-{minibatches}]: errs = {test_error * 100:.2f}% * {len(test_y)}"
    )
    print(f"test_error={test_error:.4f}")
    print(f"train_loss={history[-1].loss:.6f}")
    print(f"train_error={history[-1].error:.4f}")

    args.output_dir.mkdir(parents=True, exist_ok=True)
    # CPU tensors, so the model loads without map_location wherever it was trained.
    cpu_state = {name: tensor.cpu() for name, tensor in model.state_dict().items()}
    torch.save(cpu_state, args.output_dir / MODEL_FILE)
    metrics = {
        "epochs": args.epochs,
        "lr": args.lr,
        "train_samples": len(train_y),
        "test_samples": len(test_y),
        "train_loss": history[-1].loss,
        "train_error": history[-1].error,
        "test_error": test_error,
        "train_seconds": sum(result.seconds for result in history),
        "history": [asdict(result) for result in history],
    }
    (args.output_dir / METRICS_FILE).write_text(json.dumps(metrics, indent=2) + "\n")
    print(f"Model saved to {args.output_dir / MODEL_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
