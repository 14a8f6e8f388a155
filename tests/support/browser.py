"""Browser test support: Debian's Chromium driven by Playwright (no browser
download), the vendored axe-core check, and screenshots.

Without Chromium (or Playwright) the browser tests skip, saying how to install
it; under CI=true they fail instead, so CI cannot pass without running them.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

VENDOR = Path(__file__).parent / "vendor"
AXE_SCRIPT = VENDOR / "axe.min.js"
AXE_URL = "/__tests__/axe.min.js"  # answered by the test's browser, never by the server
INSTALL_HINT = (
    "install Debian's Chromium (`sudo apt-get install chromium`, which gives "
    "/usr/bin/chromium) and the dev extra (`pip install -e '.[dev]'`, for playwright); "
    "or set CHROMIUM to a Chromium executable"
)
# Where `make screenshots` collects the pages (every test also saves its own in tmp_path).
SCREENSHOTS_ENV = "UI_SCREENSHOTS_DIR"
BLOCKING_IMPACTS = frozenset({"serious", "critical"})


def unavailable(reason: str) -> None:
    """Skip on a laptop without a browser; fail under CI=true."""
    message = f"{reason}: {INSTALL_HINT}"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


def chromium_path() -> str:
    given = os.environ.get("CHROMIUM")
    if given and not Path(given).is_file():
        unavailable(f"CHROMIUM={given} is not a file")
    found = given or shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        unavailable("no Chromium executable found")
    assert found is not None
    return found


@contextmanager
def chromium() -> Iterator[Browser]:
    """A headless Chromium for a test module."""
    executable = chromium_path()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("playwright is not installed")
        raise
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, headless=True)
        try:
            yield browser
        finally:
            browser.close()


def screenshot(page: Page, tmp_path: Path, name: str) -> Path:
    """The page as a PNG in the test's tmp_path (and in $UI_SCREENSHOTS_DIR when set)."""
    path = tmp_path / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    collected = os.environ.get(SCREENSHOTS_ENV)
    if collected:
        Path(collected).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, Path(collected) / f"{name}.png")
    return path


def axe_violations(page: Page) -> list[dict[str, Any]]:
    """axe-core's serious and critical violations on the page as it is now."""
    if page.evaluate("typeof axe === 'undefined'"):
        # Served as if same-origin, so the pages' Content-Security-Policy lets it run.
        page.route(AXE_URL, lambda route: route.fulfill(path=AXE_SCRIPT))
        page.add_script_tag(url=AXE_URL)
        page.unroute(AXE_URL)
    found: list[dict[str, Any]] = page.evaluate(
        """async () => {
            const result = await axe.run(document, {resultTypes: ["violations"]});
            return result.violations.map(v => ({
                id: v.id, impact: v.impact, help: v.help,
                nodes: v.nodes.slice(0, 3).map(n => n.html),
            }));
        }"""
    )
    return [violation for violation in found if violation["impact"] in BLOCKING_IMPACTS]


def painted_pixels(page: Page, selector: str, rgb: tuple[int, int, int]) -> list[int]:
    """For each canvas matching `selector`: how many pixels are (nearly) of colour
    `rgb` (a series' stroke: the axes and grid are drawn in other colours)."""
    counts: list[int] = page.eval_on_selector_all(
        selector,
        """(canvases, rgb) => canvases.map(c => {
            const data = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
            let found = 0;
            for (let i = 0; i < data.length; i += 4) {
                if (data[i + 3] > 128 && Math.abs(data[i] - rgb[0]) < 40
                    && Math.abs(data[i + 1] - rgb[1]) < 40 && Math.abs(data[i + 2] - rgb[2]) < 40) {
                    found++;
                }
            }
            return found;
        })""",
        list(rgb),
    )
    return counts
