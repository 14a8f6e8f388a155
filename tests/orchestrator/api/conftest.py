from tests.orchestrator.api.support import client, settings, store

__all__ = ["client", "settings", "store"]
