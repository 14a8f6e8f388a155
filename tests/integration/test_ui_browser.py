"""The dashboard in a real headless Chromium (Debian's, through Playwright) against
a real API, worker, Redis and emulator: one stack and one browser for the module,
a fresh browser context (so a fresh login) per test.

Each test saves screenshots in its tmp_path; `make screenshots` runs this module
with UI_SCREENSHOTS_DIR=docs/screenshots to collect one of every page.
"""

from __future__ import annotations

import contextlib
import copy
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr

from emulator.testing import EmulatorProcess
from orchestrator.api import create_app
from orchestrator.api.ui.sweeps import SweepNotFound
from orchestrator.client import ApiError, OrchestratorClient
from orchestrator.devstack.redis_server import RedisServer
from orchestrator.domain.spec import RunSpec, parse_spec
from orchestrator.store import RunRecord, StoredOutput
from tests.support.browser import axe_violations, chromium, painted_pixels, screenshot
from tests.support.chain_stack import RUN_TIMEOUT, Stack
from tests.support.live_server import serve

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

pytestmark = pytest.mark.integration

TOKEN = "ui-token-0123456789abcdef"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
EXPECT_MS = int(RUN_TIMEOUT * 1000)
# The run page draws every series in the first colour of ui.js's palette.
SERIES_RGB = (0x0B, 0x57, 0xD0)
HOSTILE = '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script>'


@dataclass
class Dashboard:
    stack: Stack
    app: FastAPI
    url: str
    api: OrchestratorClient


@pytest.fixture(scope="module")
def dashboard(
    emulator_process: EmulatorProcess,
    redis_server: RedisServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Dashboard]:
    emulator_process.reset(state=True)
    stack = Stack(emulator_process, redis_server.url, tmp_path_factory.mktemp("ui"))
    stack.client.flushall()
    stack.start_worker()
    app = create_app(stack.settings(ORCH_API_TOKEN=SecretStr(TOKEN)))
    try:
        with serve(app) as url, OrchestratorClient(url, token=TOKEN) as api:
            yield Dashboard(stack, app, url, api)
    finally:
        stack.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as found:
        yield found


@pytest.fixture
def page(browser: Browser, dashboard: Dashboard) -> Iterator[Page]:
    context = browser.new_context(viewport=DESKTOP, base_url=dashboard.url)
    context.set_default_timeout(15_000)
    try:
        yield context.new_page()
    finally:
        context.close()


def login(page: Page, token: str = TOKEN) -> None:
    page.goto("/ui/login")
    page.get_by_label("Token").fill(token)
    page.get_by_role("button", name="Log in").click()


def assert_accessible(page: Page) -> None:
    violations = axe_violations(page)
    assert not violations, json.dumps(violations, indent=1)


def test_login_wrong_then_right_token_then_logout(
    page: Page, dashboard: Dashboard, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    page.goto("/ui/")
    expect(page).to_have_url(re.compile(r"/ui/login$"))
    assert_accessible(page)
    screenshot(page, tmp_path, "login")

    login(page, "not-the-token")
    expect(page.get_by_role("alert")).to_have_text("That token was not accepted.")
    assert page.locator(".error").count() == 1
    assert "not-the-token" not in page.content()

    login(page)
    expect(page.get_by_role("heading", name="Runs")).to_be_visible()
    assert TOKEN not in page.content() and TOKEN not in page.url
    cookie = next(c for c in page.context.cookies() if c["name"] == "orch_ui_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and TOKEN not in cookie["value"]

    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(re.compile(r"/ui/login$"))
    page.goto("/ui/")
    expect(page).to_have_url(re.compile(r"/ui/login$"))


def test_run_appears_live_succeeds_and_draws_its_metrics(
    page: Page, dashboard: Dashboard, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    login(page)
    page.evaluate("window.__sameDocument = true")
    run_id = dashboard.api.submit(dashboard.stack.spec(), parameters={"seconds": 0.1})["run_id"]

    row = page.locator(f'tr[data-run-id="{run_id}"]')
    expect(row).to_be_visible()
    expect(row.locator(".badge")).to_have_text("succeeded", timeout=EXPECT_MS)
    assert page.evaluate("window.__sameDocument") is True, "the table reloaded the page"
    assert_accessible(page)
    screenshot(page, tmp_path, "runs")

    record = dashboard.api.get(run_id)
    series = record["metric_series"]
    assert series, record
    row.get_by_role("link", name=run_id).click()
    expect(page.locator("#run-status")).to_have_text("succeeded")
    expect(page.locator(".timeline li")).to_have_count(8)
    expect(page.locator("#charts")).to_have_attribute("data-series-count", str(len(series)))
    charts = page.locator("#charts figure.chart")
    expect(charts).to_have_count(len(series))
    assert all(c == "1" for c in charts.evaluate_all("fs => fs.map(f => f.dataset.series)"))
    painted = painted_pixels(page, "#charts canvas", SERIES_RGB)
    assert len(painted) == len(series) and all(count > 0 for count in painted), painted
    expect(page.locator("#log")).to_contain_text("accuracy=0.94")
    model = "outputs/MODEL/ConvNet_MNIST.model"
    link = page.get_by_role("link", name=model)
    with page.expect_download() as download:
        link.click()
    assert Path(download.value.path()).read_text() == "trained weights"
    assert_accessible(page)
    screenshot(page, tmp_path, "run")

    page.set_viewport_size(PHONE)
    page.reload()
    expect(page.locator("#charts canvas")).to_have_count(len(series))
    width = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert width[0] <= width[1], f"the page scrolls sideways on a phone: {width}"
    screenshot(page, tmp_path, "run-phone")


# A job that writes its log as it goes (flushed), then runs until cancelled.
SLOW_SCRIPT = """\
import time
for step in range(600):
    print(f"step {step}: still training", flush=True)
    time.sleep(0.2)
"""


def script_spec(stack: Stack, name: str, script: str) -> RunSpec:
    """The stack's run spec, running `script` (saved as <name>.py beside train.py)."""
    (stack.code_dir / f"{name}.py").write_text(script)
    spec = stack.spec(name).model_dump(mode="json")
    spec["job"]["script"] = f"{name}.py"
    return parse_spec(spec)


def test_cancel_from_the_run_page(page: Page, dashboard: Dashboard, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    login(page)
    run_id = dashboard.api.submit(script_spec(dashboard.stack, "slow", SLOW_SCRIPT))["run_id"]
    page.goto(f"/ui/runs/{run_id}")
    expect(page.locator("#run-status")).to_have_text("running", timeout=EXPECT_MS)
    expect(page.locator("#log")).to_contain_text("step 5: still training")  # live from the share
    assert_accessible(page)
    page.get_by_role("button", name="Cancel run").click()
    expect(page.locator("#run-status")).to_have_text("cancelled", timeout=EXPECT_MS)
    expect(page.get_by_role("button", name="Cancel run")).to_be_hidden()
    record = dashboard.api.get(run_id)
    assert record["status"] == "cancelled" and record["reason"] in (None, "cancelled"), record
    screenshot(page, tmp_path, "run-cancelled")


def test_pause_resume_and_trigger_a_schedule(
    page: Page, dashboard: Dashboard, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    spec = dashboard.stack.uploaded_spec("nightly-mnist").model_dump(mode="json")
    body = {"name": "nightly", "trigger": {"cron": "0 2 * * *", "time_zone": "UTC"}, "run": spec}
    dashboard.api.create_schedule(body)
    login(page)
    page.goto("/ui/schedules")
    row = page.locator('tr[data-schedule="nightly"]')
    expect(row.locator(".state")).to_have_text("active")
    assert_accessible(page)

    row.get_by_role("button", name="Pause nightly").click()
    expect(row.locator(".state")).to_have_text("paused")
    assert dashboard.api.get_schedule("nightly")["suspended"] is True
    screenshot(page, tmp_path, "schedules")

    row.get_by_role("button", name="Resume nightly").click()
    expect(row.locator(".state")).to_have_text("active")
    assert dashboard.api.get_schedule("nightly")["suspended"] is False

    row.get_by_role("link", name="nightly").click()
    page.get_by_role("button", name="Trigger now nightly").click()
    history = page.locator("table tbody tr").first
    expect(history.locator(".badge")).to_have_text("ran")
    run_id = dashboard.api.get_schedule("nightly")["history"][0]["run_id"]
    expect(history.get_by_role("link", name=run_id)).to_be_visible()
    with contextlib.suppress(ApiError):
        dashboard.api.cancel(run_id)  # not needed further: free the worker
    assert_accessible(page)
    screenshot(page, tmp_path, "schedule")


def test_html_in_names_is_shown_as_text(page: Page, dashboard: Dashboard, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    store = dashboard.stack.store
    spec = parse_spec(
        {
            "name": "hostile",
            "job": {"toolkit": "custom", "command": "true"},
            "tags": {"note": HOSTILE},
        }
    )
    record, _ = store.create_run(spec)  # recorded only: never dispatched to a worker

    def hostile_outputs(r: RunRecord) -> None:
        r.output_files = {f"outputs/MODEL/{HOSTILE}.bin": StoredOutput(share_path="x", size=1)}
        r.metric_series = {HOSTILE: [1.0, 0.5]}

    store.update(record.run_id, hostile_outputs)
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    login(page)
    expect(page.locator(f'tr[data-run-id="{record.run_id}"]')).to_contain_text(HOSTILE)
    page.goto(f"/ui/runs/{record.run_id}")
    expect(page.get_by_role("link", name=f"outputs/MODEL/{HOSTILE}.bin")).to_be_visible()
    expect(page.locator("#charts h3")).to_contain_text(HOSTILE)
    expect(page.locator("main")).to_contain_text(f"note={HOSTILE}")
    assert page.evaluate("window.__xss") is None and not dialogs
    assert page.locator('main img, main script:not([type="application/json"])').count() == 0
    screenshot(page, tmp_path, "hostile-names")


def test_runs_table_filters(page: Page, dashboard: Dashboard, tmp_path: Path) -> None:
    """Status, tag and schedule filters select what GET /v1/runs selects."""
    from playwright.sync_api import expect

    store = dashboard.stack.store
    spec = parse_spec(
        {"name": "filtered", "job": {"toolkit": "custom", "command": "true"}, "tags": {"t": "v"}}
    )
    tagged, _ = store.create_run(spec)  # recorded only: never dispatched to a worker
    scheduled, _ = store.create_run(
        spec.model_copy(update={"tags": {"schedule": "filters"}}), submitted_by="schedule:filters"
    )
    runs = dashboard.api.list()["items"]
    login(page)
    rows = page.locator("#run-rows tr")
    expect(rows).to_have_count(len(runs))
    screenshot(page, tmp_path, "runs-all")

    page.get_by_label("Status").select_option("queued")
    page.get_by_role("button", name="Filter").click()
    queued = [run["run_id"] for run in dashboard.api.list(status="queued")["items"]]
    assert tagged.run_id in queued and scheduled.run_id in queued
    expect(rows).to_have_count(len(queued))
    assert rows.evaluate_all("rows => rows.map(r => r.dataset.runId)") == queued
    page.goto("/ui/?tag=t%3Dv")
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-run-id", tagged.run_id)
    page.goto("/ui/?schedule=filters")
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-run-id", scheduled.run_id)

    page.set_viewport_size(PHONE)
    page.goto("/ui/")
    width = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert width[0] <= width[1], f"the page scrolls sideways on a phone: {width}"
    screenshot(page, tmp_path, "runs-phone")
    page.goto("/ui/?tag=no-equals-sign")
    expect(page.get_by_role("alert")).to_have_text("tag: write it key=value")


SWEEP: dict[str, Any] = {
    "sweep_id": "sw-1",
    "name": "lr-search",
    "status": "running",
    "reason": None,
    "created_at": 1_790_000_000.0,
    "ended_at": None,
    "objective": {"primary_metric": "val_loss", "goal": "minimize"},
    "counts": {"succeeded": 2, "cancelled": 1, "running": 1},
    "best": {"run_id": "trial-b", "parameters": {"lr": 0.01, "opt": "adam"}, "value": 0.21},
    "trials": [
        {"index": 1, "run_id": "trial-b", "status": "succeeded", "reason": None,
         "parameters": {"lr": 0.01, "opt": "adam"}, "value": 0.21, "metrics": {},
         "series": [0.9, 0.5, 0.3, 0.21]},
        {"index": 0, "run_id": "trial-a", "status": "succeeded", "reason": None,
         "parameters": {"lr": 0.1, "opt": "sgd"}, "value": 0.35, "metrics": {},
         "series": [0.8, 0.6, 0.45, 0.35]},
        {"index": 2, "run_id": "trial-c", "status": "cancelled", "reason": "early_stopped",
         "parameters": {"lr": 1.0, "opt": "sgd"}, "value": 0.7, "metrics": {},
         "series": [1.2, 0.7], "stopped_at_interval": 2},
        {"index": 3, "run_id": "trial-d", "status": "running", "reason": None,
         "parameters": {"lr": 0.001, "opt": "adam"}, "value": None, "metrics": {},
         "series": [1.0]},
    ],
    "search_space": {"lr": {"log_uniform": [0.001, 1.0]}, "opt": {"choice": ["sgd", "adam"]}},
}  # fmt: skip


class FakeSweeps:
    """A SweepReader serving SWEEP (GET /v1/sweeps/{id}'s shape), until sweeps are on main."""

    def __init__(self) -> None:
        self.sweep = copy.deepcopy(SWEEP)
        self.cancelled: list[tuple[str, str]] = []

    def list(self) -> list[dict[str, Any]]:
        return [self.sweep]

    def get(self, sweep_id: str) -> dict[str, Any]:
        if sweep_id != self.sweep["sweep_id"]:
            raise SweepNotFound(sweep_id)
        return self.sweep

    def finish_trial_d(self) -> None:
        """trial-d succeeds with the best value: first on the leaderboard, as the API sorts."""
        trials = self.sweep["trials"]
        trial_d = trials.pop()
        trial_d.update(status="succeeded", value=0.1, series=[1.0, 0.4, 0.2, 0.1])
        self.sweep["best"] = {
            "run_id": "trial-d",
            "parameters": trial_d["parameters"],
            "value": 0.1,
        }
        trials.insert(0, trial_d)

    def cancel(self, sweep_id: str, by: str) -> None:
        self.cancelled.append((sweep_id, by))


def test_sweep_page_shows_the_leaderboard_in_objective_order(
    page: Page, dashboard: Dashboard, tmp_path: Path
) -> None:
    """Against the SweepView shape, served by a fake reader (see the skipped test below)."""
    from playwright.sync_api import expect

    sweeps = FakeSweeps()
    previous = getattr(dashboard.app.state, "sweep_reader", None)
    dashboard.app.state.sweep_reader = sweeps
    try:
        login(page)
        page.goto("/ui/sweeps")
        assert_accessible(page)
        page.get_by_role("link", name="sw-1").click()
        board = page.locator("table.leaderboard tbody tr")
        expect(board).to_have_count(4)
        runs = board.evaluate_all("rows => rows.map(r => r.dataset.runId)")
        assert runs == ["trial-b", "trial-a", "trial-c", "trial-d"]
        values = [float(v) for v in board.locator(".value").all_inner_texts() if v.strip()]
        assert values == sorted(values)
        expect(page.locator("tr.best")).to_have_attribute("data-run-id", "trial-b")
        expect(board.nth(2)).to_contain_text("stopped at interval 2")
        expect(page.locator("#sweep-curves canvas")).to_have_count(1)
        expect(page.locator("#sweep-params figure.chart")).to_have_count(2)  # lr and opt
        assert all(n > 0 for n in painted_pixels(page, "#sweep-params canvas", SERIES_RGB))
        assert_accessible(page)
        screenshot(page, tmp_path, "sweep")

        page.evaluate("window.__sameDocument = true")
        sweeps.finish_trial_d()
        expect(page.locator("tr.best")).to_have_attribute("data-run-id", "trial-d")
        assert board.evaluate_all("rows => rows.map(r => r.dataset.runId)")[0] == "trial-d"
        assert page.evaluate("window.__sameDocument") is True, "the sweep page reloaded"
        page.get_by_role("button", name="Cancel sweep").click()
        assert sweeps.cancelled == [("sw-1", "admin")]
    finally:
        dashboard.app.state.sweep_reader = previous


def call(dashboard: Dashboard, method: str, path: str, body: Any = None) -> Any:
    """The JSON API with the bearer token."""
    headers = {"Authorization": f"Bearer {TOKEN}"}
    response = httpx.request(method, dashboard.url + path, json=body, headers=headers)
    response.raise_for_status()
    return response.json()


SWEEP_SCRIPT = """\
import argparse, time
parser = argparse.ArgumentParser()
parser.add_argument("--lr", type=float, required=True)
args = parser.parse_args()
for step in range(3):
    print(f"loss={abs(args.lr - 0.3) * 10 + 1.0 / (step + 1):.6f}", flush=True)
    time.sleep(0.2)
"""


def submit_sweep(dashboard: Dashboard, name: str, script: str, lrs: list[float]) -> str:
    """A grid sweep over `lrs`, every trial at once, submitted over HTTP; its id."""
    trial = script_spec(dashboard.stack, name, script).model_dump(mode="json")
    trial["outputs"] = []
    body = {
        "name": f"ui-{name}",
        "trial": dashboard.stack.upload(parse_spec(trial)).model_dump(mode="json"),
        "search_space": {"lr": {"type": "choice", "values": lrs}},
        "sampling_algorithm": "grid",
        "objective": {"primary_metric": "loss", "goal": "minimize"},
        "limits": {"max_total_trials": len(lrs), "max_concurrent_trials": len(lrs)},
    }
    sweep_id: str = call(dashboard, "POST", "/v1/sweeps", body)["sweep_id"]
    return sweep_id


def test_sweep_page_of_a_real_sweep(page: Page, dashboard: Dashboard, tmp_path: Path) -> None:
    """A grid sweep submitted over HTTP: the page's leaderboard is the API's, in
    objective order, best first, and its charts draw every trial."""
    from playwright.sync_api import expect

    sweep_id = submit_sweep(dashboard, "sweep_train", SWEEP_SCRIPT, [0.1, 0.3, 0.6])
    login(page)
    page.goto(f"/ui/sweeps/{sweep_id}")
    status = page.locator("dl.facts .badge").first
    expect(status).to_have_text("succeeded", timeout=EXPECT_MS)
    shown = call(dashboard, "GET", f"/v1/sweeps/{sweep_id}")
    board = page.locator("table.leaderboard tbody tr")
    runs = board.evaluate_all("rows => rows.map(r => r.dataset.runId)")
    assert runs == [t["run_id"] for t in shown["trials"]]
    values = [float(v) for v in board.locator(".value").all_inner_texts()]
    assert values == sorted(values)
    expect(page.locator("tr.best")).to_have_attribute("data-run-id", shown["best"]["run_id"])
    expect(page.locator("#sweep-curves canvas")).to_have_count(1)
    expect(page.locator("#sweep-params canvas")).to_have_count(1)
    assert_accessible(page)
    screenshot(page, tmp_path, "sweep-real")
    assert page.get_by_role("button", name="Cancel sweep").count() == 0  # ended
    page.get_by_role("link", name="This sweep's runs").click()
    expect(page.locator("#run-rows tr")).to_have_count(3)


def test_cancel_a_real_sweep_from_its_page(page: Page, dashboard: Dashboard) -> None:
    from playwright.sync_api import expect

    sweep_id = submit_sweep(dashboard, "slow_sweep", SLOW_SCRIPT, [0.1, 0.3])
    login(page)
    page.goto(f"/ui/sweeps/{sweep_id}")
    status = page.locator("dl.facts .badge").first
    expect(status).to_have_text("running", timeout=EXPECT_MS)
    page.get_by_role("button", name="Cancel sweep").click()
    expect(status).to_have_text("cancelled", timeout=EXPECT_MS)
    assert call(dashboard, "GET", f"/v1/sweeps/{sweep_id}")["status"] == "cancelled"
