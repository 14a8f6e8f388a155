from tests.support.api import client, settings, store

__all__ = ["client", "settings", "store"]
