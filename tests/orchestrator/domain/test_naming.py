import re

import pytest

from orchestrator.domain.ids import new_run_id
from orchestrator.domain.naming import (
    AzureNames,
    azure_names,
    parse_cluster_run_id,
    parse_job_run_id,
    run_share_name,
    upload_blob_path,
)
from orchestrator.domain.spec import RunSpec, parse_spec
from orchestrator.settings import Settings

BASE = {
    "name": "mnist-convnet",
    "job": {"script": "ConvNet_MNIST.py"},
    "inputs": {"SAMPLE": "/data/sample"},
}
SETTINGS = Settings(AZURE_RESOURCE_GROUP="rg-orch", AZURE_WORKSPACE="ws", AZURE_FILE_SHARE="share")


def spec(**patch: object) -> RunSpec:
    return parse_spec({**BASE, **patch})


def test_per_run_names() -> None:
    names = azure_names("abc123", spec(), SETTINGS)
    assert names == AzureNames(
        resource_group="rg-orch",
        workspace="ws",
        experiment="mnist-convnet",
        cluster="orch-abc123",
        job="mnist-convnet-abc123",
        share="share",
        run_share=run_share_name("abc123"),
        inputs_root="inputs",
        output_prefix="outputs",
    )
    assert names.input_dir("SAMPLE") == "inputs/SAMPLE"
    assert upload_blob_path("ab" * 32) == "uploads/sha256/" + "ab" * 32


@pytest.mark.parametrize("run_id", ["abc123", "Caller_Chosen-ID.1", "x" * 64])
def test_a_run_share_name_is_a_valid_share_name_for_any_run_id(run_id: str) -> None:
    name = run_share_name(run_id)
    assert re.fullmatch(r"[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){2,62}", name), name
    assert name == run_share_name(run_id) != run_share_name(run_id + "x")


def test_names_are_deterministic_and_every_run_has_its_own_share() -> None:
    first, again = azure_names("r1", spec(), SETTINGS), azure_names("r1", spec(), SETTINGS)
    other = azure_names("r2", spec(), SETTINGS)
    assert first == again
    # Two runs of one name never read (or overwrite) each other's inputs.
    assert first.run_share != other.run_share
    assert first.experiment == other.experiment
    assert first.job != other.job


def test_shared_cluster_uses_its_name() -> None:
    names = azure_names("r1", spec(cluster={"policy": "shared", "name": "warm-nc6"}), SETTINGS)
    assert names.cluster == "warm-nc6"
    assert parse_cluster_run_id(names.cluster) is None


def test_longest_names_stay_within_limits() -> None:
    longest = azure_names("z" * 30, spec(name="n" * 32), SETTINGS)
    for value in (longest.experiment, longest.cluster, longest.job):
        assert len(value) <= 64
        assert re.fullmatch(r"[-\w_]+", value)


def test_invalid_derived_name_is_refused() -> None:
    with pytest.raises(ValueError, match="resource_group"):
        azure_names("r1", spec(), Settings(AZURE_RESOURCE_GROUP="has space"))


def test_parsers_roundtrip_and_reject_foreign_names() -> None:
    run_id = new_run_id()
    names = azure_names(run_id, spec(), SETTINGS)
    assert parse_cluster_run_id(names.cluster) == run_id
    assert parse_job_run_id(names.job) == run_id
    assert parse_job_run_id(names.job, experiment=names.experiment) == run_id
    # Caller-supplied ids with dashes need the experiment to split unambiguously.
    custom = azure_names("nightly-7", spec(), SETTINGS)
    assert parse_job_run_id(custom.job, experiment="mnist-convnet") == "nightly-7"
    assert parse_job_run_id(custom.job, experiment="other") is None
    for foreign in ("gpu-cluster", "orch-", "orch-UPPER", "nc6", "orch-" + "x" * 31):
        assert parse_cluster_run_id(foreign) is None
    assert parse_job_run_id("handmade-job") is None
    assert parse_job_run_id("nodash") is None
