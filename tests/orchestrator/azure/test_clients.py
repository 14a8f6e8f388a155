"""AzureClients against the emulator: its token, and configurations that cannot work."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from emulator.testing import RunningEmulator, start_emulator
from orchestrator.azure.errors import PermanentAzureError
from orchestrator.azure.gateway import AzureGateway
from orchestrator.domain.status import FailureReason
from orchestrator.observability.logs import configure_logging, redact_text, secrets_from_settings
from orchestrator.settings import Settings


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningEmulator]:
    with start_emulator(tmp_path_factory.mktemp("emulator")) as running:
        yield running


def settings_for(env: dict[str, str], **overrides: str | None) -> Settings:
    values: dict[str, str | None] = {**env, **overrides}
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


def test_the_gateway_sends_the_emulators_token(emulator: RunningEmulator) -> None:
    gateway = AzureGateway(settings_for(emulator.env))
    gateway.ensure_resource_group("rg-token")
    gateway.ensure_share("share-token")


def test_a_wrong_emulator_token_is_an_auth_failure(emulator: RunningEmulator) -> None:
    gateway = AzureGateway(settings_for(emulator.env, AZURE_EMULATOR_TOKEN="not-the-token"))
    with pytest.raises(PermanentAzureError) as caught:
        gateway.ensure_resource_group("rg-wrong")
    assert caught.value.reason is FailureReason.AUTH
    assert "401" in str(caught.value)
    assert emulator.access_token not in str(caught.value)


def test_no_emulator_token_is_refused_naming_the_variable(emulator: RunningEmulator) -> None:
    gateway = AzureGateway(settings_for(emulator.env, AZURE_EMULATOR_TOKEN=None))
    before = emulator.stats()["requests"]
    with pytest.raises(PermanentAzureError) as caught:
        gateway.ensure_resource_group("rg-none")
    assert caught.value.reason is FailureReason.AUTH
    assert "AZURE_EMULATOR_TOKEN" in str(caught.value)
    assert emulator.stats()["requests"] == before  # refused before sending anything


def test_emulator_token_is_redacted_in_logs(emulator: RunningEmulator) -> None:
    settings = settings_for(emulator.env)
    configure_logging("INFO", secrets=secrets_from_settings(settings))
    assert redact_text(f"token is {emulator.access_token}") == "token is ***"


def test_emulator_storage_by_account_and_key_only_is_refused_in_one_line(
    emulator: RunningEmulator,
) -> None:
    gateway = AzureGateway(settings_for(emulator.env, AZURE_STORAGE_CONNECTION_STRING=None))
    with pytest.raises(PermanentAzureError) as caught:
        gateway.ensure_share("share-no-endpoint")
    message = str(caught.value)
    assert caught.value.reason is FailureReason.AUTH
    assert "\n" not in message and "AZURE_STORAGE_CONNECTION_STRING" in message
    assert emulator.env["AZURE_STORAGE_KEY"] not in message


@pytest.mark.parametrize("bad_key", ["not base64 at all!", "abc", "a2V5=x"])
def test_a_connection_string_key_that_is_not_base64_is_an_auth_failure(
    emulator: RunningEmulator, bad_key: str
) -> None:
    good = emulator.env["AZURE_STORAGE_CONNECTION_STRING"]
    connection_string = good.replace(emulator.env["AZURE_STORAGE_KEY"], bad_key)
    gateway = AzureGateway(
        settings_for(emulator.env, AZURE_STORAGE_CONNECTION_STRING=connection_string)
    )
    with pytest.raises(PermanentAzureError) as caught:
        gateway.ensure_share("share-bad-key")
    assert caught.value.reason is FailureReason.AUTH
    assert "AccountKey is not valid base64" in str(caught.value)
    assert bad_key not in str(caught.value)
