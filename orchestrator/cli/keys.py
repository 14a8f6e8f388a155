"""`orchestrator keys create | ls | revoke`, straight on Redis (whoever reaches the
Redis is admin; the changes are audited as "cli"). The API's /v1/keys does the same."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any

import typer

from orchestrator.cli.common import CliError, open_store
from orchestrator.domain.access import CLI_NAME

app = typer.Typer(
    help="API keys for services: scopes, rate limits, revocation.", no_args_is_help=True
)
Name = Annotated[str, typer.Argument(metavar="NAME", help="The key's name (its audit name).")]
Json = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def _keyring() -> Any:
    from orchestrator.store.apikeys import KeyRing

    store = open_store()
    return KeyRing(store.redis, store.keys)


def _when(moment: float | None) -> str:
    if not moment:
        return "never"
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@app.command("create")
def create_command(
    name: Name,
    scopes: Annotated[
        str, typer.Option("--scopes", help="Comma-separated: read, submit, cancel, admin.")
    ],
    rate: Annotated[
        str | None, typer.Option("--rate", help="Requests per window, e.g. 10/s, 100/minute.")
    ] = None,
    notify_url: Annotated[
        str | None,
        typer.Option(
            "--notify-url", metavar="URL", help="Default webhook (https) for the key's runs."
        ),
    ] = None,
    notify_events: Annotated[
        str | None,
        typer.Option(
            "--notify-events",
            metavar="EVENTS",
            help="Comma-separated: run.succeeded, run.failed, run.cancelled (default: all).",
        ),
    ] = None,
    as_json: Json = False,
) -> None:
    """Create a key and print it, once (only its digest is kept)."""
    from orchestrator.domain.access import AccessError, parse_rate, parse_scopes, validate_key_name
    from orchestrator.store.apikeys import KeyExists

    try:
        validate_key_name(name)
        scope_set = parse_scopes(scopes)
        limit = parse_rate(rate) if rate is not None else None
    except AccessError as exc:
        raise CliError(str(exc)) from None
    notify = _notify(notify_url, notify_events)
    try:
        created = _keyring().create(name, scope_set, limit, by=CLI_NAME, notify=notify)
    except KeyExists as exc:
        raise CliError(str(exc)) from None
    view = created.key.to_json()
    if as_json:
        print(
            json.dumps(
                {
                    "name": view["name"],
                    "key": created.secret,
                    "scopes": view["scopes"],
                    "rate": view["rate"],
                    "signing_secret": created.signing_secret,
                }
            )
        )
        return
    print(created.secret)
    typer.echo(
        f"key {name!r} ({','.join(view['scopes'])}; rate {view['rate'] or 'unlimited'}) "
        f"created; webhook signing secret: {created.signing_secret}\n"
        "store both now: neither is shown again",
        err=True,
    )


def _notify(url: str | None, events: str | None) -> Any:
    """The key's default subscription, checked as the API checks it (CliError naming the flag)."""
    from pydantic import ValidationError

    from orchestrator.chain.webhooks import WebhookRefused, check_destination
    from orchestrator.domain.notify import NotifySpec
    from orchestrator.settings import get_settings

    if url is None:
        if events is not None:
            raise CliError("--notify-events: needs --notify-url")
        return None
    data: dict[str, Any] = {"url": url}
    if events is not None:
        data["events"] = [item.strip() for item in events.split(",") if item.strip()]
    try:
        notify = NotifySpec.model_validate(data)
    except ValidationError as exc:
        problem = exc.errors()[0]
        flag = "--notify-url" if problem["loc"][:1] == ("url",) else "--notify-events"
        raise CliError(f"{flag}: {str(problem['msg']).removeprefix('Value error, ')}") from None
    try:
        check_destination(notify.url, allow_private=get_settings().webhook_allow_private)
    except WebhookRefused as exc:
        raise CliError(f"--notify-url: {exc}") from None
    return notify


@app.command("ls")
def ls_command(as_json: Json = False) -> None:
    """List the keys: name, scopes, rate, created, last used."""
    keys = [key.to_json() for key in _keyring().all()]
    if as_json:
        print(json.dumps(keys, indent=2))
        return
    for key in keys:
        print(
            f"{key['name']}  {','.join(key['scopes'])}  rate {key['rate'] or 'unlimited'}  "
            f"created {_when(key['created_at'])}  last used {_when(key['last_used_at'])}"
        )


@app.command("revoke")
def revoke_command(name: Name) -> None:
    """Revoke a key: refused at once by every API process."""
    from orchestrator.store.apikeys import KeyNotFound

    try:
        _keyring().revoke(name, by=CLI_NAME)
    except KeyNotFound as exc:
        raise CliError(str(exc)) from None
    print(f"{name}  revoked")
