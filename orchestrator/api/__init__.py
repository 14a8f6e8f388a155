"""The HTTP API: `create_app(settings)` builds it; `orchestrator api` serves it with uvicorn."""

from orchestrator.api.app import ApiConfigError, create_app

__all__ = ["ApiConfigError", "create_app"]
