"""`orchestrator api`: serve the HTTP API with uvicorn."""

from __future__ import annotations

from typing import Annotated

import typer

from orchestrator.cli_app import CliError, app


@app.command("api")
def api_command(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[
        int, typer.Option(help="uvicorn worker processes (each builds its own app).")
    ] = 1,
) -> None:
    """Serve the HTTP API (OpenAPI at /docs) until interrupted.

    Needs ORCH_API_TOKEN, or ORCH_API_ALLOW_UNAUTHENTICATED=true for local development.
    """
    import uvicorn

    from orchestrator.api import ApiConfigError, create_app
    from orchestrator.api.app import UNAUTHENTICATED_WARNING
    from orchestrator.api.deps import configured_token
    from orchestrator.settings import get_settings

    if not 1 <= port <= 65535:
        raise CliError(f"--port must be between 1 and 65535, got {port}")
    if workers < 1:
        raise CliError(f"--workers must be at least 1, got {workers}")
    settings = get_settings()
    try:
        application = create_app(settings)  # also checks the settings before serving
    except ApiConfigError as exc:
        raise CliError(str(exc)) from None
    if configured_token(settings) is None:
        typer.echo(f"warning: {UNAUTHENTICATED_WARNING}", err=True)
    log_level = settings.log_level.lower()
    if workers == 1:
        uvicorn.run(application, host=host, port=port, log_level=log_level)
    else:
        uvicorn.run(
            "orchestrator.api:create_app",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_level=log_level,
        )
