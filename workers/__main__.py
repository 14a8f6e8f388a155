"""`python -m workers CELERY-ARGS...`: Celery (worker, beat or flower) on the chain's app.

`orchestrator worker | beat | flower` exec this with the arguments they built.
Logging is configured before Celery starts, so its first lines (e.g. the
warning about running as root) are JSON log lines with secrets redacted.
"""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING

from orchestrator.observability.logs import configure_logging, secrets_from_settings
from orchestrator.settings import get_settings

if TYPE_CHECKING:
    from orchestrator.store.connection import RedisTarget


def main(argv: list[str]) -> None:
    settings = get_settings()
    configure_logging(settings.log_level, secrets=secrets_from_settings(settings))
    logging.captureWarnings(True)
    if "worker" in argv:
        _refuse_an_evicting_redis(settings.redis_target)
    from workers.app import app

    app.start(argv)


def _refuse_an_evicting_redis(target: RedisTarget) -> None:
    """Every worker fires schedules (its chain clock): exactly one run per tick
    rests on keys that an evicting Redis could drop."""
    import redis

    from orchestrator.store.connection import redis_client
    from orchestrator.store.schedules import EvictingRedis, require_no_eviction

    client = redis_client(target, socket_connect_timeout=5)
    try:
        require_no_eviction(client)
    except EvictingRedis as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
    except redis.RedisError:
        pass  # not reachable yet: Celery waits for its broker and says so
    finally:
        client.close()


if __name__ == "__main__":
    main(sys.argv[1:])
