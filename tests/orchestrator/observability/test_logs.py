"""Logging: JSON lines on stderr with secrets redacted, checked on real output."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from typing import Any

import pytest
import structlog

from orchestrator.observability.logs import (
    configure_logging,
    get_logger,
    redact_text,
    register_secret,
    secrets_from_settings,
)
from orchestrator.settings import Settings
from orchestrator.store.apikeys import new_key, new_signing_secret

CLIENT_SECRET = "cl1ent-s3cret-VALUE"
STORAGE_KEY = "c3RvcmFnZS1rZXktYmFzZTY0PT0="
SAS_SIG = "sv8Zx%2Fq1w2e3r4t5y6u7i8o9p0%3D"
SHAREDKEY_SIG = "QmFzZTY0U2lnbmF0dXJlPT0="
BEARER = "eyJhbGciOiJIUzI1NiJ9.payload.sig"

SCRIPT = textwrap.dedent(
    f"""
    import logging
    from orchestrator.observability.logs import configure_logging, get_logger

    configure_logging("INFO", secrets=["{CLIENT_SECRET}"])
    log = get_logger(run_id="r1")
    log.info("token acquired with {CLIENT_SECRET}", client_secret="{CLIENT_SECRET}")
    log.info("storage", settings={{"storage_key": "{STORAGE_KEY}", "nested": [
        "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey={STORAGE_KEY};"]}},
        idempotency_key="req-42")
    logging.getLogger("azure.core.pipeline").warning(
        "Request headers: {{'Authorization': 'SharedKey acct:{SHAREDKEY_SIG}'}} "
        "url=https://acct.file.core.windows.net/share/f?sv=2017&sig={SAS_SIG}&se=x")
    logging.getLogger("celery.worker").info("auth %s", "Bearer {BEARER}")
    logging.getLogger("celery.worker").debug("below the level: not shown")
    try:
        raise RuntimeError("failed with secret {CLIENT_SECRET}")
    except RuntimeError:
        log.exception("step failed", step="prepare_share")
    """
)


def run_logging_script() -> list[dict[str, Any]]:
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60, check=True
    )
    assert proc.stdout == ""
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    for secret in (CLIENT_SECRET, STORAGE_KEY, SAS_SIG, SHAREDKEY_SIG, BEARER):
        assert secret not in proc.stderr
    return [json.loads(line) for line in lines]  # every line is one JSON object


def test_real_stderr_output_is_json_and_redacted() -> None:
    events = run_logging_script()
    assert [e["event"].split()[0] for e in events] == [
        "token",
        "storage",
        "Request",
        "auth",
        "step",
    ]
    first, storage, azure, celery, failure = events
    assert first["run_id"] == "r1" and first["level"] == "info"
    assert first["client_secret"] == "***" and first["event"] == "token acquired with ***"
    assert first["timestamp"].endswith("Z") and "T" in first["timestamp"]
    assert storage["settings"]["storage_key"] == "***"
    assert "AccountKey=***" in storage["settings"]["nested"][0]
    assert "AccountName=acct" in storage["settings"]["nested"][0]
    assert storage["idempotency_key"] == "req-42"  # public, despite the name
    assert azure["logger"] == "azure.core.pipeline" and azure["level"] == "warning"
    assert "SharedKey ***" in azure["event"] and "sig=***&se=x" in azure["event"]
    assert celery["event"] == "auth Bearer ***"
    assert failure["level"] == "error" and failure["step"] == "prepare_share"
    assert "RuntimeError: failed with secret ***" in failure["exception"]


def test_unconfigured_process_logs_to_stderr_redacted() -> None:
    script = (
        "from orchestrator.observability.logs import get_logger\n"
        "get_logger(x=1).info('hello')\n"
        "get_logger().warning('x from-env-s3cret')\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env={**os.environ, "AZURE_CLIENT_SECRET": "from-env-s3cret", "ORCH_LOG_LEVEL": "INFO"},
    )
    assert proc.stdout == ""  # stdout belongs to the CLI's own output
    events = [json.loads(line) for line in proc.stderr.splitlines()]
    assert [(e["event"], e.get("x")) for e in events] == [("hello", 1), ("x ***", None)]


@pytest.fixture
def configured() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.reset_defaults()


def test_in_process_capture(configured: None, capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("WARNING", secrets=["in-process-secret"])
    configure_logging("WARNING")  # again: still one handler, one line per event
    get_logger(run_id="x").warning("saw in-process-secret", password="hunter22")
    get_logger().info("filtered out")
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1
    event = json.loads(lines[0])
    assert event["event"] == "saw ***" and event["password"] == "***"
    with pytest.raises(ValueError, match="log level"):
        configure_logging("LOUD")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Authorization: Bearer abc.def-ghi", "Authorization: Bearer ***"),
        ("SharedKey myacct:c2lnbmF0dXJl", "SharedKey ***"),
        (
            "AccountName=a;AccountKey=Zm9vYmFy==;EndpointSuffix=x",
            "AccountName=a;AccountKey=***;EndpointSuffix=x",
        ),
        ("https://a/b?sv=1&sig=abc%2F&se=2", "https://a/b?sv=1&sig=***&se=2"),
        ("grant_type=cc&client_secret=xyz&scope=s", "grant_type=cc&client_secret=***&scope=s"),
        ("redis://:pa55word@127.0.0.1:6379/0", "redis://:***@127.0.0.1:6379/0"),
        ('{"client_secret": "abc\'d", "scope": "x"}', '{"client_secret": "***", "scope": "x"}'),
        ("{'password': 'pw1', 'user': 'u'}", "{'password': '***', 'user': 'u'}"),
        ("Basic setup done; bearer of news", "Basic setup done; bearer of news"),
        ("nothing secret here: signal=3 keyboard", "nothing secret here: signal=3 keyboard"),
    ],
)
def test_redact_text_patterns(text: str, expected: str) -> None:
    assert redact_text(text) == expected


def test_registered_secrets_and_settings() -> None:
    settings = Settings(
        AZURE_CLIENT_SECRET="sp-secret-1234",
        AZURE_STORAGE_KEY="stor-key-5678",
        AZURE_STORAGE_CONNECTION_STRING="AccountName=a;AccountKey=conn-key-9012",
        ORCH_API_TOKEN="api-token-3456",
        AZURE_EMULATOR_TOKEN="emu-token-7890",
    )
    found = secrets_from_settings(settings)
    for value in (
        "sp-secret-1234",
        "stor-key-5678",
        "conn-key-9012",
        "api-token-3456",
        "emu-token-7890",
    ):
        assert value in found
    nothing = Settings(
        _env_file=None,
        AZURE_CLIENT_SECRET=None,
        AZURE_STORAGE_KEY=None,
        AZURE_STORAGE_CONNECTION_STRING=None,
        ORCH_API_TOKEN=None,
        AZURE_EMULATOR_TOKEN=None,
    )
    assert secrets_from_settings(nothing) == []
    register_secret("raw-api-token-3456-xyz")
    register_secret("ab")  # too short to redact safely: ignored
    assert redact_text("tok raw-api-token-3456-xyz ab") == "tok *** ab"


def test_api_keys_and_signing_secrets_are_redacted_by_pattern() -> None:
    key, secret = new_key(), new_signing_secret()
    text = redact_text(f"key {key} secret {secret} run orch_run_name_kept")
    assert key not in text and secret not in text
    assert text == "key orch_*** secret whsec_*** run orch_run_name_kept"
