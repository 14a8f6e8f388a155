"""`.env.example` documents every field of Settings, under the variable Settings
reads, with the default Settings has (so the example cannot drift from the code)."""

from __future__ import annotations

import re
from pathlib import Path

from emulator.envfile import parse_env_text
from orchestrator.settings import Settings

ENV_EXAMPLE = Path(__file__).resolve().parents[1] / ".env.example"
# Placeholders or block A's examples, not defaults: checked for presence only.
NOT_DEFAULTS = {
    "AZURE_TENANT_ID",
    "AZURE_CLIENT_ID",
    "AZURE_CLIENT_SECRET",
    "AZURE_SUBSCRIPTION_ID",
    "AZURE_STORAGE_ACCOUNT",
    "AZURE_STORAGE_KEY",
    "AZURE_STORAGE_CONNECTION_STRING",
    "ORCH_API_TOKEN",
    "ORCH_ARTIFACTS_DIR",  # made absolute when loaded
}


def settings_variables() -> dict[str, str]:
    """variable name -> field name, for every field of Settings."""
    found = {}
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias
        assert isinstance(alias, str), f"{name} has no single documented variable"
        found[alias] = name
    return found


def documented() -> set[str]:
    names = re.findall(r"^#?\s?([A-Z][A-Z0-9_]*)=", ENV_EXAMPLE.read_text(), flags=re.MULTILINE)
    return set(names)


# Read by docker-compose.yml, not by Settings.
COMPOSE_ONLY = {"REDIS_PASSWORD", "FLOWER_BASIC_AUTH", "REDIS_COMPOSE_URL"}


def test_every_setting_is_documented_and_nothing_else() -> None:
    variables = settings_variables()
    assert set(variables) - documented() == set()
    assert documented() - set(variables) == COMPOSE_ONLY


def test_active_values_are_the_defaults_of_settings() -> None:
    active = "\n".join(
        line for line in ENV_EXAMPLE.read_text().splitlines() if not line.startswith("#")
    )
    values = parse_env_text(active)
    variables = settings_variables()
    defaults = Settings.model_construct()
    for variable, text in values.items():
        if variable in NOT_DEFAULTS or variable in COMPOSE_ONLY:
            continue
        field = variables[variable]
        loaded = Settings.model_validate({variable: text})
        assert getattr(loaded, field) == getattr(defaults, field), variable
