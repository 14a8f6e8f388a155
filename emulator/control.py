"""/_emulator/* control endpoints: stats, faults, reset. Never faulted, not counted; all
but health need the emulator's bearer token (the server checks it)."""

from __future__ import annotations

from typing import Any

from emulator.core import EmulatorContext
from emulator.errors import BadRequest, NotFound
from emulator.faults import FaultRuleError, parse_rules
from emulator.http import Request, Response, Router, json_response

PREFIX = "/_emulator"


def register(router: Router, ctx: EmulatorContext) -> None:
    stats, faults = ctx.stats, ctx.faults

    @router.add("GET", PREFIX + "/health", "Emulator_Health", "control")
    def health(request: Request, params: dict[str, str]) -> Response:
        return json_response(200, {"status": "ok"})

    @router.add("GET", PREFIX + "/stats", "Emulator_GetStats", "control")
    def get_stats(request: Request, params: dict[str, str]) -> Response:
        body: dict[str, Any] = stats.snapshot()
        body["faults"] = faults.rules()
        return json_response(200, body)

    @router.add("GET", PREFIX + "/faults", "Emulator_GetFaults", "control")
    def get_faults(request: Request, params: dict[str, str]) -> Response:
        return json_response(200, {"rules": faults.rules()})

    @router.add("POST", PREFIX + "/faults", "Emulator_SetFaults", "control")
    def set_faults(request: Request, params: dict[str, str]) -> Response:
        try:
            rules = parse_rules(request.json())
        except FaultRuleError as exc:
            raise BadRequest("InvalidFaultRule", str(exc)) from exc
        faults.set_rules(rules)
        return json_response(200, {"rules": faults.rules()})

    @router.add("DELETE", PREFIX + "/faults", "Emulator_ClearFaults", "control")
    def clear_faults(request: Request, params: dict[str, str]) -> Response:
        faults.clear()
        return json_response(200, {"rules": []})

    @router.add("POST", PREFIX + "/reset", "Emulator_Reset", "control")
    def reset(request: Request, params: dict[str, str]) -> Response:
        body = request.json() or {}
        if not isinstance(body, dict):
            raise BadRequest("InvalidRequestContent", "the body must be a JSON object")
        state = body.get("state", False)
        if not isinstance(state, bool):
            raise BadRequest("InvalidRequestContent", "state must be true or false")
        if state:
            # Last registered first: services built on the platform (Batch AI kills its
            # job processes) reset before the groups and shares they use are cleared.
            for hook in reversed(ctx.reset_hooks):
                hook()
        stats.clear()
        faults.clear()
        return json_response(200, {"reset": True, "state": state})

    # Registered last: any other path under the prefix is a control 404, never a share.
    for method in ("GET", "HEAD", "PUT", "POST", "PATCH", "DELETE", "OPTIONS"):
        router.add(method, PREFIX + r"(/.*)?", "Emulator_Unmatched", "control")(_not_found)


def _not_found(request: Request, params: dict[str, str]) -> Response:
    raise NotFound("NotFound", f"No control endpoint {request.method} {request.path}.")
