from pathlib import Path

import pytest

from orchestrator.domain.spec import SpecError, load_spec, parse_iso8601_duration, parse_spec

MINIMAL = {
    "name": "mnist-convnet",
    "job": {"script": "ConvNet_MNIST.py", "args": ["$AZ_BATCHAI_INPUT_SAMPLE"]},
    "inputs": {"SAMPLE": "./sample"},
    "outputs": ["MODEL"],
}


def test_defaults_are_the_quickstart() -> None:
    spec = parse_spec(MINIMAL)
    assert spec.cluster.vm_size == "STANDARD_NC6"
    assert spec.cluster.node_count == 1
    assert spec.job.toolkit == "cntk"
    assert spec.job.max_wall_clock_seconds == 7200


def test_parameters_are_appended_as_flags() -> None:
    spec = parse_spec({**MINIMAL, "parameters": {"epochs": 3, "lr": 0.1}})
    assert spec.job_args() == ["$AZ_BATCHAI_INPUT_SAMPLE", "--epochs", "3", "--lr", "0.1"]
    assert spec.with_parameters({"epochs": 5}).job_args()[-3:] == ["5", "--lr", "0.1"]


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"bogus": 1}, "bogus"),
        ({"job": {"toolkit": "caffe", "script": "a.py"}}, "job.toolkit"),
        ({"job": {"script": "a.py", "max_wall_clock": "2h"}}, "job.max_wall_clock"),
        ({"job": {"script": "../a.py"}}, "job.script"),
        ({"job": {"toolkit": "custom"}}, "job.command"),
        ({"cluster": {"node_count": "2"}}, "cluster.node_count"),
        ({"cluster": {"node_count": 0}}, "cluster.node_count"),
        ({"cluster": {"policy": "shared"}}, "cluster.name"),
        ({"name": "bad name!"}, "name"),
        ({"inputs": {"1X": "a"}}, "inputs"),
        # Not representable in the stored JSON record: refused, not stored as null.
        ({"parameters": {"lr": float("nan")}}, "parameters.lr"),
        ({"parameters": {"lr": float("inf")}}, "parameters.lr"),
        # Bounds: what a caller can make the run store keep.
        ({"tags": {f"k{i}": "v" for i in range(51)}}, "tags: at most 50 tags, not 51"),
        ({"tags": {"k" * 257: "v"}}, "tags: a tag key is longer than 256"),
        ({"tags": {"k": "v" * 257}}, "tags: a tag value is longer than 256"),
        ({"parameters": {f"p{i}": i for i in range(101)}}, "parameters: Dictionary should have"),
        ({"parameters": {"note": "x" * 1025}}, "parameters.note"),
        ({"job": {"script": "a.py", "max_wall_clock": "P9999999999D"}}, "job.max_wall_clock"),
        ({"job": {"script": "a.py", "max_wall_clock": "P31D"}}, "at most 30 days"),
        ({"job": {"script": "a.py", "max_wall_clock": "P" + "9" * 400 + "D"}}, "max_wall_clock"),
    ],
)
def test_bad_fields_are_named(patch: dict[str, object], field: str) -> None:
    with pytest.raises(SpecError) as caught:
        parse_spec({**MINIMAL, **patch})
    assert field in str(caught.value)


def test_bounds_admit_their_limits() -> None:
    spec = parse_spec(
        {
            **MINIMAL,
            "tags": {f"{i:0>256}": "v" * 256 for i in range(50)},
            "parameters": {f"p{i}": "x" * 1024 for i in range(100)},
            "job": {"script": "a.py", "max_wall_clock": "P30D"},
        }
    )
    assert len(spec.tags) == 50 and spec.job.max_wall_clock_seconds == 30 * 86400


def test_a_long_tag_key_is_not_quoted_back() -> None:
    with pytest.raises(SpecError) as caught:
        parse_spec({**MINIMAL, "tags": {"secret-looking-" + "k" * 300: "v"}})
    assert "secret-looking" not in str(caught.value)


def test_fingerprint_follows_content() -> None:
    assert parse_spec(MINIMAL).fingerprint() == parse_spec(dict(MINIMAL)).fingerprint()
    assert (
        parse_spec(MINIMAL).fingerprint()
        != parse_spec({**MINIMAL, "tags": {"a": "b"}}).fingerprint()
    )


def test_load_resolves_inputs_against_the_spec_folder(tmp_path: Path) -> None:
    spec_file = tmp_path / "sub" / "run.yaml"
    spec_file.parent.mkdir()
    spec_file.write_text(
        "name: demo\njob: {script: train.py}\ninputs: {SAMPLE: ./data}\noutputs: [MODEL]\n"
    )
    spec = load_spec(spec_file)
    assert spec.inputs["SAMPLE"] == str((tmp_path / "sub" / "data").resolve())


def test_load_reports_unreadable_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="cannot read"):
        load_spec(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    with pytest.raises(SpecError, match="not valid JSON"):
        load_spec(broken)


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"name: [\n", "not valid YAML"),
        (b"name: x\n  job: : y\n", "not valid YAML"),
        (b"\xff\xfe name: x\n", "not UTF-8"),
    ],
)
def test_load_reports_a_bad_file_in_one_line(tmp_path: Path, content: bytes, problem: str) -> None:
    spec_file = tmp_path / "run.yaml"
    spec_file.write_bytes(content)
    with pytest.raises(SpecError) as caught:
        load_spec(spec_file)
    assert problem in str(caught.value)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("text", "seconds"), [("PT2H", 7200), ("P1DT30M", 88200), ("PT90S", 90), ("PT1.5M", 90)]
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_iso8601_duration(text) == seconds


@pytest.mark.parametrize("text", ["2h", "P", "PT", "PT0S", "P1Y"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError):
        parse_iso8601_duration(text)
