"""The status page in a real browser (Debian's chromium driven by Playwright) over the scripted database."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer
from test_web import XSS, build_status_db

from prober.web import create_app

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]  # fmt: skip
MAJOR_RED = "rgb(211, 58, 58)"  # --major in the light theme

playwright = pytest.importorskip("playwright.async_api")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which(CHROMIUM) is None, reason="needs Debian's chromium"),
]


async def test_status_page_in_a_browser(tmp_path: Path) -> None:
    scenario = build_status_db(tmp_path / "prober.db")
    shots = Path(os.environ.get("PROBER_SCREENSHOTS", tmp_path))  # to look at them: PROBER_SCREENSHOTS=dir
    web_outage = scenario.incidents["x-web"]
    # A bar per day since the first result, 3 days ago: 4 bars, today last (nth-child 4).
    days = (scenario.now.date() - min(r.ts for r in scenario.results).date()).days + 1
    outage_bar = days - (scenario.now.date() - scenario.outage[0].date()).days
    dialogs: list[Any] = []
    async with (
        TestServer(create_app(scenario.path, title="X status")) as server,
        playwright.async_playwright() as p,
    ):
        browser = await p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            context = await browser.new_context(viewport={"width": 1280, "height": 900}, color_scheme="light")
            page = await context.new_page()
            page.on("dialog", lambda dialog: dialogs.append(dialog.message))
            response = await page.goto(str(server.make_url("/")))
            assert response is not None and response.status == 200

            banner = await page.locator("#banner").inner_text()
            assert "Partial Outage" in banner and "x-mobile" in banner
            for group, check in (("web", "x-web"), ("mobile", "x-mobile"), ("api", "x-api")):
                component = page.locator(f"#group-{group} #check-{check}")
                assert await component.is_visible()
                assert await component.locator(".bars i").count() == days
            assert (await page.locator("#check-x-mobile .state").inner_text()).lower() == "partial outage"
            assert "JP down" in " ".join(
                (await page.locator("#check-x-mobile .regions").inner_text()).split()
            )
            assert (await page.locator("#check-x-api .state").inner_text()).lower() == "degraded performance"

            row = " ".join((await page.locator(f"#history-{web_outage.id}").inner_text()).split())
            for text in ("x-web", "major outage", "55 min", "JP, UK, US", "error page (x-fret)"):
                assert text in row, (text, row)

            bar = page.locator(f"#check-x-web .bars i:nth-child({outage_bar})")
            healthy = page.locator("#check-x-web .bars i:last-child")
            green = await healthy.evaluate("e => getComputedStyle(e).backgroundColor")
            color = await bar.evaluate("e => getComputedStyle(e).backgroundColor")
            assert color != green and color == MAJOR_RED
            tooltip = await bar.get_attribute("title") or ""
            assert "55 min of incident" in tooltip and "%," in tooltip and "major outage" in tooltip
            label = await page.locator("#check-x-web .bars").get_attribute("aria-label") or ""
            assert label.startswith(f"Uptime over the last {days} days: ") and "major outage on" in label

            # What the probed server said is shown as text, and nothing of it ran.
            await page.locator("#check-x-mobile details summary").click()
            error = page.locator("#check-x-mobile .error").first
            assert await error.inner_text() == XSS
            assert await page.evaluate("() => window.__pwned === undefined && document.scripts.length === 0")
            assert dialogs == []
            await page.screenshot(path=shots / "status.png", full_page=True)

            # A phone shows every bar of a short strip; dark mode follows the system.
            phone = await browser.new_context(
                viewport={"width": 390, "height": 844},
                device_scale_factor=2,
                is_mobile=True,
                color_scheme="dark",
            )
            small = await phone.new_page()
            await small.goto(str(server.make_url("/")))
            visible = await small.locator("#check-x-web .bars i").evaluate_all(
                "bars => bars.filter(b => getComputedStyle(b).display !== 'none').length"
            )
            assert visible == days
            width = await small.evaluate("() => document.documentElement.scrollWidth")
            assert width <= 390  # nothing wider than the screen
            background = await small.evaluate("() => getComputedStyle(document.body).backgroundColor")
            assert background == "rgb(14, 17, 22)"
            assert await small.locator("#check-x-web .legend .since").inner_text() == f"{days} days ago"
            await small.screenshot(path=shots / "status-phone-dark.png", full_page=True)
            await phone.close()
            await context.close()
        finally:
            await browser.close()
    assert (shots / "status.png").stat().st_size > 10_000
