"""The operator's page in Debian's chromium (Playwright): accessible at desktop and phone widths (axe-core,
as axe-playwright-python ships it), branded, hiding what it must, alive on a new install, no script."""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer
from test_operator_page import config_of
from test_web import build_status_db

from prober.config import Check, Config, PageSettings
from prober.model import ProbeResult, Surface, Verdict, utcnow
from prober.notes import add_note
from prober.store import Store, connect
from prober.web import create_app

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]  # fmt: skip
SIZES = {"desktop": {"width": 1280, "height": 900}, "phone": {"width": 390, "height": 844}}

playwright = pytest.importorskip("playwright.async_api")
axe = pytest.importorskip("axe_playwright_python.async_playwright")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which(CHROMIUM) is None, reason="needs Debian's chromium"),
]


async def violations(page: Any) -> list[str]:
    """axe-core's violations on the page (WCAG 2 A and AA, best practices): "rule: nodes" lines."""
    results = await axe.Axe().run(
        page, options={"runOnly": ["wcag2a", "wcag2aa", "best-practice"], "resultTypes": ["violations"]}
    )
    return [
        f"{v['id']}: {[n['target'] for n in v['nodes']][:3]}" for v in results.response.get("violations", [])
    ]


@pytest.mark.parametrize("scheme", ["light", "dark"])
async def test_the_page_passes_axe_at_desktop_and_phone_widths(tmp_path: Path, scheme: str) -> None:
    scenario = build_status_db(tmp_path / "prober.db")
    db = connect(scenario.path)
    try:
        add_note(db, scenario.incidents["x-mobile"].id or 0, "identified", "A bad deploy in JP", utcnow())
    finally:
        db.conn.close()
    app = create_app(scenario.path, config=config_of(), cache_seconds=0)
    async with TestServer(app) as server, playwright.async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            for name, size in SIZES.items():
                # bypass_csp: axe is injected as a script, which the page's own policy forbids.
                context = await browser.new_context(
                    viewport=size, color_scheme=scheme, bypass_csp=True, is_mobile=name == "phone"
                )
                page = await context.new_page()
                response = await page.goto(str(server.make_url("/")))
                assert response is not None and response.status == 200
                await page.locator("details").evaluate_all("ds => ds.forEach(d => d.open = true)")
                assert await violations(page) == [], (name, scheme)
                # Landmarks and headings: one h1, a main, every section titled.
                assert await page.locator("h1").count() == 1 and await page.locator("main").count() == 1
                assert await page.locator("h1").inner_text() == "X status"
                width = await page.evaluate("() => document.documentElement.scrollWidth")
                assert width <= size["width"], (name, width)
                # A state is said in words, not by colour alone.
                state = await page.locator("#check-x-mobile .state").inner_text()
                assert state.lower() == "partial outage"
                mobile = scenario.incidents["x-mobile"].id
                timeline = await page.locator(f"#incident-{mobile} .timeline").inner_text()
                assert "A bad deploy in JP" in timeline and "JP: down results began" in timeline
                assert "example.test" not in await page.content()  # page.show_urls is false
                await context.close()
        finally:
            await browser.close()


async def test_a_new_install_looks_alive(tmp_path: Path) -> None:
    """Ten minutes of results: a bar per probe (not 89 grey days) and a response-time line (not a dot)."""
    now = utcnow()
    with Store(tmp_path / "new.db") as store:
        for i in range(20):
            verdict = Verdict.DOWN if i == 12 else Verdict.UP
            store.add(
                ProbeResult(ts=now - timedelta(seconds=30 * (20 - i)), check="home", vantage="local",
                            region="local", surface=Surface.WEB, url="https://home.example.test/",
                            verdict=verdict, status=200, latency_ms=80.0 + i * 3)
            )  # fmt: skip
    config = Config(
        checks=(Check("home", "https://home.example.test/", display_name="Home page"),),
        page=PageSettings(title="New status"),
    )
    app = create_app(tmp_path / "new.db", config=config, cache_seconds=0)
    async with TestServer(app) as server, playwright.async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            page = await browser.new_page(viewport=SIZES["desktop"])
            await page.goto(str(server.make_url("/")))
            bars = page.locator("#check-home .bars i")
            assert await bars.count() == 20
            assert await page.locator("#check-home .bars i.u").count() == 0  # nothing grey
            assert await page.locator("#check-home .bars i.m").count() == 1  # the down probe
            unit = await page.locator("#check-home .unit").inner_text()
            assert unit.startswith("Each bar is one probe")
            points = await page.locator("#check-home svg.chart polyline").get_attribute("points") or ""
            assert len(points.split()) == 19  # a line through every good probe
            assert await page.locator("#check-home svg.chart circle").count() == 0
            box = await page.locator("#check-home .bars i").first.bounding_box()
            assert box is not None and box["width"] > 10  # wide bars, not slivers
        finally:
            await browser.close()
