"""The dashboard's login, session cookie and CSRF, over HTTP (the pages themselves
are tested in a browser: tests/integration/test_ui_browser.py)."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from orchestrator.api import create_app
from orchestrator.api.ui.session import COOKIE_NAME
from orchestrator.settings import Settings
from tests.support.api import TOKEN, create_key

CSRF = re.compile(r'name="csrf" value="([^"]+)"')
RUN = {"name": "mnist", "job": {"toolkit": "custom", "command": "echo hi"}}


@pytest.fixture
def browser(settings: Settings) -> Iterator[TestClient]:
    """A client without the bearer header, as a browser is (cookies kept)."""
    with TestClient(create_app(settings), follow_redirects=False) as client:
        yield client


def log_in(browser: TestClient, token: str = TOKEN) -> str:
    """Logs in; the CSRF token of the first page."""
    response = browser.post("/ui/login", data={"token": token})
    assert response.status_code == 303, response.text
    page = browser.get("/ui/")
    assert page.status_code == 200
    found = CSRF.search(page.text)
    assert found is not None
    return found.group(1)


def test_pages_and_fragments_need_a_session(browser: TestClient) -> None:
    for path in ("/ui/", "/ui/runs/x", "/ui/schedules", "/ui/sweeps"):
        response = browser.get(path)
        assert (response.status_code, response.headers["location"]) == (303, "/ui/login"), path
    for path in ("/ui/runs/rows", "/ui/runs/x/live", "/ui/runs/x/log"):
        assert browser.get(path).status_code == 401, path
    assert browser.post("/ui/runs/x/cancel", data={"csrf": "x"}).status_code == 401
    assert browser.get("/ui/login").status_code == 200


def test_a_wrong_token_shows_the_form_again_with_one_error_line(
    browser: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "wrong-token-0123456789"
    response = browser.post("/ui/login", data={"token": wrong})
    assert response.status_code == 401
    assert response.text.count('class="error"') == 1
    assert "That token was not accepted." in response.text
    assert wrong not in response.text and wrong not in caplog.text
    assert COOKIE_NAME not in response.headers.get("set-cookie", "")


def test_the_session_cookie_and_what_it_allows(
    browser: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    response = browser.post("/ui/login", data={"token": TOKEN})
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
    assert "Secure" not in cookie  # plain http here; https below
    assert TOKEN not in cookie and TOKEN not in response.headers["location"]
    page = browser.get("/ui/")
    assert TOKEN not in page.text and TOKEN not in caplog.text
    assert page.headers["cache-control"] == "no-store"
    assert "script-src 'self';" in page.headers["content-security-policy"]
    # The cookie reads the JSON API (a page's links), and does nothing else there.
    assert browser.get("/v1/runs").status_code == 200
    assert browser.post("/v1/runs", json={"spec": RUN}).status_code == 401
    assert browser.post("/v1/schedules/x/pause").status_code == 401


def test_secure_cookie_over_https(settings: Settings) -> None:
    with TestClient(
        create_app(settings), base_url="https://testserver", follow_redirects=False
    ) as client:
        response = client.post("/ui/login", data={"token": TOKEN})
    assert "Secure" in response.headers["set-cookie"]


def test_actions_need_the_csrf_token_and_logout_ends_the_session(
    browser: TestClient, client: TestClient
) -> None:
    assert client.post("/v1/schedules", json={"name": "n", "trigger": {"every": "1h"}, "run": RUN})
    csrf = log_in(browser)
    assert browser.post("/ui/schedules/n/pause", data={}).status_code == 403
    assert browser.post("/ui/schedules/n/pause", data={"csrf": "forged"}).status_code == 403
    assert client.get("/v1/schedules/n").json()["suspended"] is False
    paused = browser.post("/ui/schedules/n/pause", data={"csrf": csrf})
    assert (paused.status_code, paused.headers["location"]) == (303, "/ui/schedules")
    assert client.get("/v1/schedules/n").json()["suspended"] is True
    resumed = browser.post("/ui/schedules/n/resume", data={"csrf": csrf, "back": "schedule"})
    assert resumed.headers["location"] == "/ui/schedules/n"
    assert client.get("/v1/schedules/n").json()["suspended"] is False

    old_cookie = browser.cookies[COOKIE_NAME]
    assert browser.post("/ui/logout", data={"csrf": csrf}).headers["location"] == "/ui/login"
    assert browser.get("/ui/").status_code == 303
    browser.cookies.set(COOKIE_NAME, old_cookie)  # replayed: the session is gone
    assert browser.get("/ui/").status_code == 303
    assert browser.get("/v1/runs").status_code == 401


def test_api_keys_log_in_with_their_scopes_until_revoked(
    browser: TestClient, client: TestClient
) -> None:
    reader = create_key(client, "dashboard-reader", ["read"])
    csrf = log_in(browser, reader["key"])
    page = browser.get("/ui/schedules")
    assert "dashboard-reader" in page.text
    assert client.post("/v1/schedules", json={"name": "n", "trigger": {"every": "1h"}, "run": RUN})
    assert browser.post("/ui/schedules/n/pause", data={"csrf": csrf}).status_code == 403
    assert client.get("/v1/schedules/n").json()["suspended"] is False
    assert client.delete("/v1/keys/dashboard-reader").status_code in (200, 204)
    assert browser.get("/ui/").status_code == 303  # revoked: its sessions end at once


def test_a_new_api_token_ends_the_admin_sessions(settings: Settings) -> None:
    with TestClient(create_app(settings), follow_redirects=False) as first:
        log_in(first)
        cookie = first.cookies[COOKIE_NAME]
    rotated = settings.model_copy(
        update={"api_token": type(settings.api_token)("rotated-0123456789")}
    )
    with TestClient(create_app(rotated), follow_redirects=False) as second:
        second.cookies.set(COOKIE_NAME, cookie)
        assert second.get("/ui/").status_code == 303


def test_unknown_things_are_html_pages(browser: TestClient) -> None:
    log_in(browser)
    for path in ("/ui/runs/nope", "/ui/schedules/nope", "/ui/sweeps/nope"):
        response = browser.get(path)
        assert response.status_code == 404 and response.headers["content-type"].startswith(
            "text/html"
        ), path
    assert browser.get("/ui/?status=bogus").status_code == 422
