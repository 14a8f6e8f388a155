"""Stand-in for the quickstart's ConvNet_MNIST.py (CNTK sample), run as the job's
cntk_settings.python_script_file_path with `<data dir> <model dir>` as arguments.

It needs no CNTK: it reads the CNTK text-format MNIST files, fits a nearest-centroid
classifier in plain Python and saves it as ConvNet_MNIST.model in the model dir.
"""

import json
import os
import sys


def read(path):
    samples = []
    with open(path) as lines:
        for line in lines:
            labels, features = line.split("|features")
            onehot = [int(v) for v in labels.replace("|labels", "").split()]
            samples.append((onehot.index(1), [float(v) / 255 for v in features.split()]))
    return samples


def main():
    data_dir, model_dir = sys.argv[1], sys.argv[2]
    train = read(os.path.join(data_dir, "Train-28x28_cntk_text.txt"))
    test = read(os.path.join(data_dir, "Test-28x28_cntk_text.txt"))
    print(f"Training on {len(train)} samples, testing on {len(test)}")
    sums = {}
    for label, features in train:
        count, total = sums.get(label, (0, [0.0] * len(features)))
        sums[label] = (count + 1, [a + b for a, b in zip(total, features, strict=True)])
    centroids = {label: [v / count for v in total] for label, (count, total) in sums.items()}

    def predict(features):
        return min(
            centroids,
            key=lambda c: sum((a - b) ** 2 for a, b in zip(centroids[c], features, strict=True)),
        )

    errors = sum(predict(features) != label for label, features in test)
    print(f"Finished evaluation: test errors {errors} of {len(test)}")
    model = {
        "model": "nearest-centroid",
        "classes": sorted(centroids),
        "train_samples": len(train),
        "test_samples": len(test),
        "gpus": int(os.environ["AZ_BATCHAI_NUM_GPUS"]),
    }
    with open(os.path.join(model_dir, "ConvNet_MNIST.model"), "w") as out:
        json.dump(model, out, sort_keys=True)


if __name__ == "__main__":
    main()
