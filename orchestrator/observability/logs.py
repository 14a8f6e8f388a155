"""Structured logging: one JSON object per line on stderr, secrets redacted.

structlog renders both its own events and stdlib logging records (celery's,
azure's, urllib3's) through the same chain, so there is one format and one
redaction point. Redaction replaces with ``***``:

- every registered secret value (register_secret / configure_logging(secrets=)),
- pattern-detected secrets in any string: Authorization values (SharedKey,
  Bearer, Basic), ``AccountKey=``/``SharedAccessSignature=`` in connection
  strings, SAS ``sig=`` and ``*_secret=``/``password=``/``token=`` query or form
  parameters, passwords in URLs (``redis://:pw@host``),
- the values of keys named like secrets (``client_secret``, ``storage_key``,
  ``password``, ``api_token``, ``authorization``...),

recursively through dicts, lists and tuples, after exceptions are formatted, so
tracebacks quoting a secret are scrubbed too. redact_text is also what the run
store applies to error messages before they are stored.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
from collections.abc import Iterable, Mapping
from typing import Any

import structlog
from pydantic import ValidationError
from structlog.typing import EventDict, Processor, WrappedLogger

from orchestrator.settings import Settings, get_settings

REDACTED = "***"
# Shorter registered values would redact ordinary words; nothing secret is this short.
MIN_SECRET_LENGTH = 4

_registered: set[str] = set()
_registered_lock = threading.Lock()

_TEXT_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # Authorization header values: "SharedKey account:signature", "Bearer eyJ..."
    # Case-sensitive and at least 6 characters, so prose ("Basic setup") survives.
    (re.compile(r"\b(SharedKey|Bearer|Basic)\s+[^\s'\",;}]{6,}"), r"\1 " + REDACTED),
    # The orchestrator's own API keys and webhook signing secrets (store/apikeys.py).
    (re.compile(r"\b(orch_)[A-Za-z0-9_-]{43}(?![A-Za-z0-9_-])"), r"\1" + REDACTED),
    (re.compile(r"\b(whsec_)[A-Za-z0-9+/=]{40,}"), r"\1" + REDACTED),
    # Connection-string parts.
    (
        re.compile(r"\b(AccountKey|SharedAccessSignature|SharedAccessKey)=[^;'\"\s]+", re.I),
        r"\1=" + REDACTED,
    ),
    # Query/form parameters: SAS signature, secrets, passwords, tokens.
    (
        re.compile(
            r"(?<![\w-])(sig|client_secret|password|passwd|pwd|secret|access_token|"
            r"refresh_token|token|api_key|apikey|key)=[^&;'\"\s]+",
            re.IGNORECASE,
        ),
        r"\1=" + REDACTED,
    ),
    # Secret-named keys quoted in JSON or a Python repr: "client_secret": "value"
    (
        re.compile(
            r"""(["'](?:client_secret|secret|password|access_token|refresh_token|token|"""
            r"""api_key|api_token|account_key|storage_key|key|sig)["']\s*:\s*)"""
            r"""(["'])(?:(?!\2).)+\2""",
            re.IGNORECASE,
        ),
        r"\1\2" + REDACTED + r"\2",
    ),
    # Passwords in URLs: scheme://user:password@host
    (
        re.compile(r"(\b[a-z][a-z0-9+.-]*://[^:/@\s]*:)[^@/\s]+@", re.IGNORECASE),
        r"\1" + REDACTED + "@",
    ),
)

# Key names whose values are secrets. Matched against the whole key, lowercase.
_SECRET_KEY = re.compile(
    r"(^|[_\-.])(secret|client_secret|password|passwd|pwd|token|access_token|api_token|"
    r"key|account_key|storage_key|api_key|sas|sas_token|sig|signature|authorization|"
    r"credential|credentials|connection_string|conn_str)$"
)
# Keys ending in "key"/"token" that name something public.
_PUBLIC_KEYS = frozenset({"idempotency_key", "event", "level", "logger", "timestamp"})


def register_secret(value: str | None) -> None:
    """Redact `value` wherever it appears in log output from now on."""
    if value and len(value) >= MIN_SECRET_LENGTH:
        with _registered_lock:
            _registered.add(value)


def secrets_from_settings(settings: Settings) -> list[str]:
    """The secret values in Settings: client secret, storage key, connection
    string (and its AccountKey / SAS parts), API token, the emulator's token."""
    values: list[str] = []
    for secret in (
        settings.azure_client_secret,
        settings.azure_storage_key,
        settings.azure_storage_connection_string,
        settings.api_token,
        settings.azure_emulator_token,
        settings.redis_sentinel_password,
    ):
        if secret is not None and secret.get_secret_value():
            values.append(secret.get_secret_value())
    if settings.azure_storage_connection_string is not None:
        for part in settings.azure_storage_connection_string.get_secret_value().split(";"):
            name, sep, value = part.partition("=")
            if sep and name.strip().lower() in {"accountkey", "sharedaccesssignature"}:
                values.append(value.strip())
    return [value for value in values if value]


def redact_text(text: str) -> str:
    """`text` with registered and pattern-detected secrets replaced by ***."""
    with _registered_lock:
        # Longest first, so a secret containing another is replaced whole.
        registered = sorted(_registered, key=len, reverse=True)
    for secret in registered:
        if secret in text:
            text = text.replace(secret, REDACTED)
    for pattern, replacement in _TEXT_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def is_secret_key(name: str) -> bool:
    lowered = name.lower()
    return lowered not in _PUBLIC_KEYS and bool(_SECRET_KEY.search(lowered))


def redact_value(value: Any) -> Any:
    """Redact strings inside `value`, recursing through mappings, lists and tuples."""
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping):
        return {
            key: (
                REDACTED
                if isinstance(key, str) and is_secret_key(key) and item not in (None, "")
                else redact_value(item)
            )
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return type(value)(redact_value(item) for item in value)
    return value


def redact_processor(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """structlog processor: the event dict with every secret replaced by ***."""
    redacted: EventDict = redact_value(event_dict)
    return redacted


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever sys.stderr is at the time (test capture swaps it)."""

    def emit(self, record: logging.LogRecord) -> None:
        # Assigned, not setStream(): that flushes the previous stream first,
        # which fails once a test's capture has closed it.
        self.stream = sys.stderr
        super().emit(record)


def _shared_processors() -> list[Processor]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]


def configure_logging(level: str = "INFO", *, secrets: Iterable[str] = ()) -> None:
    """Route structlog and stdlib logging to stderr as JSON lines, secrets redacted.

    Idempotent: calling it again replaces the handler it installed before.
    """
    for secret in secrets:
        register_secret(secret)
    numeric_level = logging.getLevelNamesMapping().get(level.upper())
    if numeric_level is None:
        raise ValueError(f"log level {level!r} is not one of DEBUG, INFO, WARNING, ERROR")

    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=_shared_processors(),
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            redact_processor,
            structlog.processors.JSONRenderer(default=str),
        ],
    )
    handler = _StderrHandler()
    handler.set_name("orchestrator")
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for existing in list(root.handlers):
        if existing.get_name() == "orchestrator":
            root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(numeric_level)
    # httpx logs every request's full URL at INFO; a webhook URL's path or query can
    # carry the receiver's own token. Our webhook log lines say what happened instead.
    logging.getLogger("httpx").setLevel(max(numeric_level, logging.WARNING))

    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *_shared_processors(),
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.processors.StackInfoRenderer(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        # Not cached: configure_logging may run again (tests, `orchestrator up`).
        cache_logger_on_first_use=False,
    )


UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access")


class AccessLineWithoutQuery(logging.Filter):
    """Drops the query string from uvicorn's access lines: a token or signature passed
    as a query parameter would otherwise be written to the log on every request."""

    def filter(self, record: logging.LogRecord) -> bool:
        # uvicorn logs '%s - "%s %s HTTP/%s" %d' % (client, method, path?query, version,
        # status); the path is the third argument.
        args = record.args
        if isinstance(args, tuple) and len(args) == 5 and isinstance(args[2], str):
            record.args = (args[0], args[1], args[2].split("?", 1)[0], args[3], args[4])
        return True


def route_uvicorn_logs() -> None:
    """Send uvicorn's error and access logs through the root handler (structlog JSON,
    redaction), the access lines without their query strings.

    Called once uvicorn has applied its own logging config (at app startup): uvicorn
    installs plain-text handlers on these loggers and stops them propagating.
    """
    for name in UVICORN_LOGGERS:
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
        logger.propagate = True
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, AccessLineWithoutQuery) for f in access.filters):
        access.addFilter(AccessLineWithoutQuery())


def _configure_from_settings() -> None:
    try:
        settings = get_settings()
    except ValidationError:
        # Bad settings are reported by whatever uses them; logging still works.
        configure_logging("INFO")
        return
    configure_logging(settings.log_level, secrets=secrets_from_settings(settings))


def get_logger(**bind: Any) -> structlog.stdlib.BoundLogger:
    """A structlog logger (named "orchestrator") with `bind` as context.

    In a process that never called configure_logging, the first call configures
    it from Settings: structlog's default would print to stdout, where a CLI's
    own output goes, and without redaction.
    """
    if not structlog.is_configured():
        _configure_from_settings()
    logger: structlog.stdlib.BoundLogger = structlog.stdlib.get_logger("orchestrator")
    return logger.bind(**bind) if bind else logger
