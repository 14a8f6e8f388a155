"""`python -m workers CELERY-ARGS...`: Celery (worker, beat or flower) on the chain's app.

`orchestrator worker | beat | flower` exec this with the arguments they built.
Logging is configured before Celery starts, so its first lines (e.g. the
warning about running as root) are JSON log lines with secrets redacted.
"""

from __future__ import annotations

import logging
import sys

from orchestrator.observability.logs import configure_logging, secrets_from_settings
from orchestrator.settings import get_settings


def main(argv: list[str]) -> None:
    settings = get_settings()
    configure_logging(settings.log_level, secrets=secrets_from_settings(settings))
    logging.captureWarnings(True)
    from workers.app import app

    app.start(argv)


if __name__ == "__main__":
    main(sys.argv[1:])
