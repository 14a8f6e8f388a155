"""/_emulator/* control endpoints: stats, faults, reset. Never faulted, no auth."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from emulator.core import EmulatorContext
from emulator.faults import FaultInjector, FaultRuleError, parse_rules
from emulator.http import HttpError, Request, Response, Router, json_response
from emulator.stats import StatsRecorder

PREFIX = "/_emulator"


def register(
    router: Router,
    ctx: EmulatorContext,
    stats: StatsRecorder,
    faults: FaultInjector,
    reset_state: Callable[[], None],
) -> None:
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
            raise HttpError(400, "InvalidFaultRule", str(exc)) from exc
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
            raise HttpError(400, "InvalidRequestContent", "the body must be a JSON object")
        state = body.get("state", False)
        if not isinstance(state, bool):
            raise HttpError(400, "InvalidRequestContent", "state must be true or false")
        if state:
            # Services first (Batch AI kills its job processes), so no job is
            # still writing into a share while the shares are cleared.
            for hook in list(ctx.reset_hooks):
                hook()
            reset_state()
        stats.clear()
        faults.clear()
        return json_response(200, {"reset": True, "state": state})
