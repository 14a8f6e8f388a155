"""/_emulator/* endpoints: stats, fault rules, reset."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from emulator.testing import RunningEmulator


def _call(
    emulator: RunningEmulator,
    method: str,
    path: str,
    headers: dict[str, str] | None = None,
    authenticated: bool = True,
    **kwargs: Any,
) -> requests.Response:
    sent = {**(emulator.auth_headers if authenticated else {}), **(headers or {})}
    return requests.request(
        method,
        f"{emulator.url}/_emulator/{path}",
        headers=sent,
        verify=emulator.ca_bundle,
        timeout=30,
        **kwargs,
    )


def test_stats_shape_and_control_calls_are_not_counted(
    emulator: RunningEmulator, files: Any
) -> None:
    files.create_share("data")
    files.create_file_from_bytes("data", None, "f", b"12345")
    stats = _call(emulator, "GET", "stats").json()
    assert set(stats) >= {"requests", "resources", "bytes_uploaded", "faults"}
    assert stats["bytes_uploaded"] == 5
    assert stats["resources"]["created"]["file_share"] == 1
    assert not any(op.startswith("Emulator_") for op in stats["requests"])


def test_fault_rules_round_trip_and_validation(emulator: RunningEmulator) -> None:
    rules = [{"kind": "throttle", "rate": 0.5, "operations": ["arm"], "count": 3}]
    assert _call(emulator, "POST", "faults", json={"rules": rules}).status_code == 200
    listed = _call(emulator, "GET", "faults").json()["rules"]
    assert [(r["kind"], r["rate"], r["operations"], r["count"]) for r in listed] == [
        ("throttle", 0.5, ["arm"], 3)
    ]

    bad = _call(emulator, "POST", "faults", json={"rules": [{"kind": "drop", "rate": 9}]})
    assert bad.status_code == 400
    assert "rules[0].rate" in bad.json()["error"]["message"]
    not_json = _call(
        emulator, "POST", "faults", data=b"{", headers={"Content-Type": "application/json"}
    )
    assert not_json.status_code == 400
    # A rejected update leaves the previous rules in place.
    assert len(_call(emulator, "GET", "faults").json()["rules"]) == 1

    assert _call(emulator, "DELETE", "faults").status_code == 200
    assert _call(emulator, "GET", "faults").json()["rules"] == []


def test_control_endpoints_are_never_faulted(emulator: RunningEmulator) -> None:
    emulator.set_faults([{"kind": "drop", "rate": 1}])
    assert _call(emulator, "GET", "stats").status_code == 200
    assert _call(emulator, "GET", "health").json() == {"status": "ok"}


def test_reset_clears_stats_and_faults_but_keeps_state(
    emulator: RunningEmulator, files: Any
) -> None:
    files.create_share("keep")
    emulator.set_faults([{"kind": "error500", "rate": 0}])
    emulator.reset()
    stats = emulator.stats()
    assert stats["requests"] == {} and stats["faults"] == []
    assert files.exists("keep") is True


def test_reset_with_state_clears_everything_and_runs_hooks(
    emulator: RunningEmulator, files: Any, arm: Any
) -> None:
    calls: list[str] = []

    def hook() -> None:
        calls.append("reset")

    hooks = emulator.emulator.ctx.reset_hooks
    hooks.append(hook)
    try:
        files.create_share("gone")
        arm.resource_groups.create_or_update("rg", {"location": "eastus"})
        assert _call(emulator, "POST", "reset", json={"state": "yes"}).status_code == 400
        emulator.reset(state=True)
        assert calls == ["reset"]
        assert files.exists("gone") is False
        assert arm.resource_groups.check_existence("rg") is False
    finally:
        hooks.remove(hook)


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "stats"), ("GET", "faults"), ("POST", "faults"), ("DELETE", "faults"),
     ("POST", "reset")],
)  # fmt: skip
@pytest.mark.parametrize("authorization", [None, "Bearer not-the-emulator-token"])
def test_control_endpoints_need_the_emulator_token(
    emulator: RunningEmulator, method: str, path: str, authorization: str | None
) -> None:
    emulator.set_faults([{"kind": "throttle", "rate": 0.5}])
    headers = {"Authorization": authorization} if authorization else {}
    body = {"rules": []} if path == "faults" else {"state": True}
    response = _call(emulator, method, path, headers=headers, authenticated=False, json=body)
    assert response.status_code == 401
    expected = "InvalidAuthenticationToken" if authorization else "AuthenticationFailed"
    assert response.json()["error"]["code"] == expected
    assert emulator.access_token not in response.text
    # Refused before acting: the rules are still there.
    assert len(emulator.stats()["faults"]) == 1


def test_health_needs_no_token(emulator: RunningEmulator) -> None:
    response = _call(emulator, "GET", "health", authenticated=False)
    assert response.json() == {"status": "ok"}
