"""Deployment files: docker-compose.yml, the Dockerfile and .env.example.

Docker is not needed: the files are parsed and checked against what the project
provides (its CLI commands, its settings).
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
ENV_EXAMPLE = ROOT / ".env.example"

REQUIRED_SERVICES = {"redis", "api", "worker", "beat", "flower", "emulator"}
# The CLI commands the compose services run; hard-coded, not read from the app,
# so that a command missing from the CLI fails the test below.
EXPECTED_SUBCOMMANDS = {"api", "worker", "beat", "flower", "emulator"}
SETTINGS = [
    "AZURE_TENANT_ID",
    "AZURE_CLIENT_ID",
    "AZURE_CLIENT_SECRET",
    "AZURE_SUBSCRIPTION_ID",
    "AZURE_ARM_ENDPOINT",
    "AZURE_STORAGE_ACCOUNT",
    "AZURE_STORAGE_KEY",
    "AZURE_STORAGE_CONNECTION_STRING",
    "REQUESTS_CA_BUNDLE",
    "AZURE_LOCATION",
    "AZURE_RESOURCE_GROUP",
    "AZURE_WORKSPACE",
    "AZURE_FILE_SHARE",
    "REDIS_URL",
    "ORCH_ARTIFACTS_DIR",
    "ORCH_POLL_INITIAL_SECONDS",
    "ORCH_POLL_MAX_SECONDS",
    "ORCH_NODE_WAIT_TIMEOUT_SECONDS",
    "ORCH_JOB_TIMEOUT_SECONDS",
    "ORCH_REAPER_INTERVAL_SECONDS",
    "ORCH_REAPER_GRACE_SECONDS",
    "ORCH_API_TOKEN",
    "ORCH_API_ALLOW_UNAUTHENTICATED",
    "ORCH_API_MAX_BODY_BYTES",
    "ORCH_LOG_LEVEL",
]


@pytest.fixture(scope="module")
def services() -> dict[str, dict[str, Any]]:
    compose = yaml.safe_load(COMPOSE_FILE.read_text())
    result: dict[str, dict[str, Any]] = compose["services"]
    return result


SENTINEL_SERVICES = {"redis-replica", "sentinel-1", "sentinel-2", "sentinel-3"}


def project_services(services: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Services that run the project's image (all but redis and the sentinel profile's)."""
    return {
        name: spec
        for name, spec in services.items()
        if not spec.get("image", "").startswith("redis:")
    }


def test_required_services_exist(services: dict[str, dict[str, Any]]) -> None:
    assert set(services) >= REQUIRED_SERVICES


def test_redis_is_durable_and_never_evicts(services: dict[str, dict[str, Any]]) -> None:
    redis = services["redis"]
    assert redis["image"].startswith("redis:7")
    command = redis["command"]
    assert command[command.index("--appendonly") + 1] == "yes"
    assert command[command.index("--maxmemory-policy") + 1] == "noeviction"
    assert any(volume.endswith(":/data") for volume in redis["volumes"])


def test_worker_can_be_scaled(services: dict[str, dict[str, Any]]) -> None:
    worker = services["worker"]
    assert "container_name" not in worker
    # "8000" (container port only) is fine; "8000:8000" or a published port would clash.
    published = [
        port for port in worker.get("ports", []) if not (isinstance(port, str) and ":" not in port)
    ]
    assert published == []


def test_emulator_is_opt_in_behind_a_profile(services: dict[str, dict[str, Any]]) -> None:
    assert services["emulator"]["profiles"] == ["emulator"]
    profiled = {name for name, spec in services.items() if spec.get("profiles")}
    assert profiled == {"emulator"} | SENTINEL_SERVICES
    # Services that always run may wait for the emulator, but must not require it.
    waits_for_emulator = {
        name: spec["depends_on"]["emulator"]
        for name, spec in services.items()
        if "emulator" in spec.get("depends_on", {})
    }
    # The workers are the ones that call it; the check below then never runs empty.
    assert "worker" in waits_for_emulator
    assert "emulator" not in waits_for_emulator
    assert {name: dep.get("required") for name, dep in waits_for_emulator.items()} == {
        name: False for name in waits_for_emulator
    }


def test_every_service_runs_the_project_cli(services: dict[str, dict[str, Any]]) -> None:
    assert set(project_services(services)) >= REQUIRED_SERVICES - {"redis"}
    for name, spec in project_services(services).items():
        command = spec["command"]
        assert isinstance(command, list), f"{name}: use the list form"
        assert command[0] == "orchestrator", name
        # The image's ENTRYPOINT is `orchestrator` too; cleared so it is not doubled.
        assert spec["entrypoint"] == [], name
        assert spec["env_file"] == ".env", name


def test_emulator_command_matches_the_documented_one(services: dict[str, dict[str, Any]]) -> None:
    assert services["emulator"]["command"] == [
        "orchestrator",
        "emulator",
        "--host",
        "0.0.0.0",
        "--port",
        "8443",
        "--data-dir",
        "/data",
        "--env-file",
        "/data/emulator.env",
        "--public-host",
        "emulator",
    ]


def test_api_healthcheck_probes_healthz(services: dict[str, dict[str, Any]]) -> None:
    api = services["api"]
    assert api["command"] == ["orchestrator", "api", "--host", "0.0.0.0", "--port", "8000"]
    assert "/healthz" in " ".join(api["healthcheck"]["test"])


def test_compose_runs_exactly_the_expected_subcommands(
    services: dict[str, dict[str, Any]],
) -> None:
    used = {spec["command"][1] for spec in project_services(services).values()}
    assert used == EXPECTED_SUBCOMMANDS


def test_compose_subcommands_are_real_cli_commands() -> None:
    from orchestrator.cli import app

    # A TyperGroup (typer vendors its own click), so .commands is not in the static type.
    commands = typer.main.get_command(app).commands  # type: ignore[attr-defined]
    missing = EXPECTED_SUBCOMMANDS - set(commands)
    assert not missing, f"compose runs commands the CLI lacks: {sorted(missing)}"


def test_dockerfile_installs_the_project_and_runs_it_unprivileged() -> None:
    text = DOCKERFILE.read_text()
    stages = re.findall(r"^FROM (\S+)", text, flags=re.MULTILINE)
    assert stages and all(image == "python:3.11-slim" for image in stages)
    assert re.search(r"pip install .*\"\.", text), "installs the project itself"
    users = re.findall(r"^USER (\S+)", text, flags=re.MULTILINE)
    assert users and users[-1] not in {"root", "0"}
    entrypoints = re.findall(r"^ENTRYPOINT (.+)$", text, flags=re.MULTILINE)
    assert [json.loads(entry) for entry in entrypoints] == [["orchestrator"]]


def test_env_example_documents_every_setting_with_a_comment() -> None:
    lines = ENV_EXAMPLE.read_text().splitlines()
    documented: set[str] = set()
    for index, line in enumerate(lines):
        match = re.match(r"^#?\s?([A-Z][A-Z0-9_]*)=", line)
        if match is None:
            continue
        name = match.group(1)
        previous = lines[index - 1] if index else ""
        # The line above is a comment, not another (commented-out) setting.
        assert previous.startswith("# ") and not re.match(r"^# [A-Z0-9_]+=", previous), name
        documented.add(name)
    assert set(SETTINGS) <= documented, sorted(set(SETTINGS) - documented)


def test_env_example_holds_no_real_secrets() -> None:
    secrets = {"AZURE_CLIENT_SECRET", "AZURE_STORAGE_KEY", "ORCH_API_TOKEN"}
    seen = set()
    for line in ENV_EXAMPLE.read_text().splitlines():
        match = re.match(r"^#?\s?([A-Z][A-Z0-9_]*)=(.*)$", line)
        if match is not None and match.group(1) in secrets:
            seen.add(match.group(1))
            assert match.group(2) in ("", "''") or match.group(2).startswith("'<"), line
    assert seen == secrets


def test_env_example_can_be_sourced_by_a_shell() -> None:
    """Users `set -a; . .env`: every value is quoted so that `;`, `<` and `>`
    in placeholders and connection strings reach the variable intact."""
    from emulator.envfile import parse_env_text

    active = "\n".join(
        line for line in ENV_EXAMPLE.read_text().splitlines() if not line.startswith("#")
    )
    expected = parse_env_text(active)
    assert "AZURE_STORAGE_CONNECTION_STRING" in expected
    script = f"set -a; . {ENV_EXAMPLE}; set +a; " + "; ".join(
        f'printf "%s=%s\\0" {name} "${name}"' for name in expected
    )
    shell = subprocess.run(
        ["bash", "-c", script], capture_output=True, text=True, check=True, timeout=30
    )
    sourced = dict(item.split("=", 1) for item in shell.stdout.split("\0") if item)
    assert sourced == expected


# ---------------------------------------------------------------- exposure (issue 16)
def published_ports(spec: dict[str, Any]) -> list[str]:
    return [str(port) for port in spec.get("ports", [])]


def test_only_the_api_and_flower_are_published_and_on_loopback_only(
    services: dict[str, dict[str, Any]],
) -> None:
    published = {name for name, spec in services.items() if published_ports(spec)}
    assert published == {"api", "flower"}
    for name in published:
        for port in published_ports(services[name]):
            assert port.startswith("127.0.0.1:"), (name, port)


def test_emulator_port_is_not_published(services: dict[str, dict[str, Any]]) -> None:
    assert "ports" not in services["emulator"]


def test_api_file_says_how_to_front_it_with_tls() -> None:
    text = COMPOSE_FILE.read_text()
    api_block = text[text.index("  api:") : text.index("  worker:")]
    assert "TLS reverse proxy" in api_block and "127.0.0.1:8000:8000" in api_block


REDIS_PASSWORD = "${REDIS_PASSWORD:?"


def test_redis_requires_a_password_from_env(services: dict[str, dict[str, Any]]) -> None:
    redis = services["redis"]
    command = redis["command"]
    assert command[command.index("--requirepass") + 1].startswith(REDIS_PASSWORD)
    # The healthcheck authenticates (redis-cli reads REDISCLI_AUTH) and wants a PONG.
    assert redis["environment"]["REDISCLI_AUTH"].startswith(REDIS_PASSWORD)
    assert "PONG" in " ".join(redis["healthcheck"]["test"])


def test_every_project_service_connects_to_redis_with_the_password(
    services: dict[str, dict[str, Any]],
) -> None:
    for name, spec in project_services(services).items():
        if name == "emulator":
            continue  # it does not use Redis
        url = spec["environment"]["REDIS_URL"]
        # redis:6379 unless REDIS_COMPOSE_URL (the sentinel profile's) is set.
        default = url.removeprefix("${REDIS_COMPOSE_URL:-").removesuffix("}")
        assert default != url, (name, url)
        assert default.startswith("redis://:" + REDIS_PASSWORD), (name, url)
        assert default.endswith("@redis:6379/0"), (name, url)


def test_flower_asks_for_basic_auth_from_env(services: dict[str, dict[str, Any]]) -> None:
    flower = services["flower"]
    assert flower["environment"]["FLOWER_BASIC_AUTH"].startswith("${FLOWER_BASIC_AUTH:?")
    # Listening on all of the container's interfaces, or the published port reaches nothing.
    command = flower["command"]
    assert command[command.index("--address") + 1] == "0.0.0.0"
    # The healthcheck probes /healthcheck, which Flower serves without auth.
    assert "/healthcheck" in " ".join(flower["healthcheck"]["test"])


# ------------------------------------------------------- the sentinel profile (issue 9)
SENTINEL_MASTER = "orchestrator"


def sentinel_config(spec: dict[str, Any]) -> list[str]:
    """The sentinel.conf lines a Sentinel service writes (compose's $$ unescaped)."""
    script = spec["command"][-1].replace("$$", "$")
    body = script[script.index("<<EOF\n") + 6 : script.index("\nEOF")]
    return [line.strip() for line in body.splitlines()]


def test_the_sentinel_profile_has_a_replica_and_three_sentinels(
    services: dict[str, dict[str, Any]],
) -> None:
    for name in SENTINEL_SERVICES:
        assert services[name]["profiles"] == ["sentinel"], name
        assert services[name]["image"].startswith("redis:7"), name
        assert any(volume.endswith(":/data") for volume in services[name]["volumes"]), name
    replica = services["redis-replica"]["command"]
    assert replica[replica.index("--replicaof") + 1 :][:2] == ["redis", "6379"]
    # As durable and as guarded as the master it may replace.
    assert replica[replica.index("--appendonly") + 1] == "yes"
    assert replica[replica.index("--maxmemory-policy") + 1] == "noeviction"
    for command in (replica, services["redis"]["command"]):
        assert command[command.index("--requirepass") + 1].startswith(REDIS_PASSWORD)
        assert command[command.index("--masterauth") + 1].startswith(REDIS_PASSWORD)


def test_the_sentinels_monitor_redis_with_a_majority_quorum_behind_a_password(
    services: dict[str, dict[str, Any]],
) -> None:
    sentinels = sorted(name for name in SENTINEL_SERVICES if name.startswith("sentinel-"))
    for name in sentinels:
        lines = sentinel_config(services[name])
        assert f"sentinel monitor {SENTINEL_MASTER} redis 6379 2" in lines, name
        assert f"sentinel auth-pass {SENTINEL_MASTER} $REDIS_PASSWORD" in lines, name
        assert "requirepass $REDIS_PASSWORD" in lines, name
        assert services[name]["environment"]["REDIS_PASSWORD"].startswith(REDIS_PASSWORD)
        # The config lives in the volume: a restarted Sentinel remembers a failover.
        assert "redis-server /data/sentinel.conf --sentinel" in services[name]["command"][-1]
        assert "PONG" in " ".join(services[name]["healthcheck"]["test"])
    # A quorum of 2 is a majority of the 3 Sentinels: one lost Sentinel still fails over.
    assert len(sentinels) == 3


def test_project_services_know_the_sentinels_master_name_and_password(
    services: dict[str, dict[str, Any]],
) -> None:
    for name, spec in project_services(services).items():
        if name == "emulator":
            continue
        environment = spec["environment"]
        assert environment["ORCH_REDIS_SENTINEL_MASTER"] == SENTINEL_MASTER, name
        assert environment["ORCH_REDIS_SENTINEL_PASSWORD"].startswith(REDIS_PASSWORD), name
        # They wait for a Sentinel when the profile runs, and only then.
        waits = spec["depends_on"]["sentinel-1"]
        assert waits == {"condition": "service_healthy", "required": False}, name


def test_env_example_names_the_profile_sentinels_in_redis_compose_url(
    services: dict[str, dict[str, Any]],
) -> None:
    from orchestrator.store.connection import parse_sentinel_url

    line = next(
        line for line in ENV_EXAMPLE.read_text().splitlines() if "REDIS_COMPOSE_URL=" in line
    )
    url = line.split("=", 1)[1].strip('"').replace("${REDIS_PASSWORD}", "pw")
    parsed = parse_sentinel_url(url)
    hosts = {host for host, port in parsed.sentinels if port == 26379}
    assert hosts == {name for name in SENTINEL_SERVICES if name.startswith("sentinel-")}
    assert (parsed.password, parsed.db) == ("pw", 0)
    assert "port 26379" in sentinel_config(services["sentinel-1"])
