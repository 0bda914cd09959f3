"""What browser checks cost and how it is bounded: pages in flight, late probes shed, browsers
relaunched after their share of pages or a crash, a page heavier than allowed, blocked requests,
mobile surfaces, timings and metrics."""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from test_browser_checks import CHROMIUM, config, probe_all

from prober.browser import Browsers
from prober.config import parse_config
from prober.model import Reason, Verdict
from prober.probe import probe_everywhere
from prober.vantage import VantagePool
from prober.web.metrics import ProberMetrics

pytest.importorskip("playwright.async_api")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which(CHROMIUM) is None, reason="needs Debian's chromium"),
]

BROWSER = f"browser: {{executable: {CHROMIUM}, concurrency: 1}}\n"
PAGE = (
    '<!doctype html><html><head><meta name="viewport" content="width=device-width"><title>{title}</title>'
    "</head><body>{body}</body></html>"
)
# Tells what the browser looks like to the page: the surface's viewport, user agent and touch.
WHO = """<main><h1>Who</h1><p id="who"></p></main><script>
document.getElementById("who").textContent = "width=" + innerWidth + " touch=" + ("ontouchstart" in window)
  + " mobile=" + /Mobile/.test(navigator.userAgent) + " headless=" + /Headless/.test(navigator.userAgent);
</script>"""
ADS = (
    '<main><h1>News</h1><p>Story</p></main><script src="/ads/tracker.js"></script><img src="/ads/pixel.gif">'
)
# Allocates until the renderer's JavaScript heap runs out (far past the bound Chromium is given).
HOG = "<h1>Hog</h1><script>const a = []; for (;;) a.push(new Array(1e6).fill(1.5));</script>"


class Site:
    """Pages on loopback that count how many are being served at once."""

    def __init__(self) -> None:
        self.url = ""
        self.hits: dict[str, int] = {}
        self.serving = 0
        self.most = 0  # the most requests for /slow served at once


@pytest.fixture
async def site() -> AsyncIterator[Site]:
    s = Site()

    @web.middleware
    async def count(request: web.Request, handler):  # type: ignore[no-untyped-def]
        s.hits[request.path] = s.hits.get(request.path, 0) + 1
        return await handler(request)

    def page(body: str, title: str = "Page") -> web.Response:
        return web.Response(text=PAGE.format(title=title, body=body), content_type="text/html")

    async def slow(request: web.Request) -> web.Response:
        s.serving += 1
        s.most = max(s.most, s.serving)
        try:
            await asyncio.sleep(float(request.query.get("delay", "2")))
        finally:
            s.serving -= 1
        return page("<main><h1>Slow but fine</h1></main>")

    def serve(body: str, content_type: str = "text/html") -> Callable[[web.Request], Awaitable[web.Response]]:
        async def handler(request: web.Request) -> web.Response:
            text = PAGE.format(title="Page", body=body) if content_type == "text/html" else body
            return web.Response(text=text, content_type=content_type)

        return handler

    app = web.Application(middlewares=[count])
    app.router.add_get("/ok", serve("<main><h1>Fine</h1><p>All good.</p></main>"))
    app.router.add_get("/slow", slow)
    app.router.add_get("/who", serve(WHO))
    app.router.add_get("/ads-page", serve(ADS))
    app.router.add_get("/ads/{rest:.*}", serve("", "text/javascript"))
    app.router.add_get("/hog", serve(HOG))
    async with TestServer(app, host="127.0.0.1") as server:
        s.url = str(server.make_url("")).rstrip("/")
        yield s


async def test_browsers_are_relaunched_after_their_share_of_pages(site: Site) -> None:
    render = Browsers(pages_per_browser=2)
    checks = "".join(f'- {{name: c{i}, url: "{site.url}/ok", timeout: 10s, browser: {{wait_until: load}}}}\n'
                     for i in range(5))  # fmt: skip
    results = await probe_all(config(checks, BROWSER), render=render)
    assert [r.verdict for r in results] == [Verdict.UP] * 5, results
    assert render.launches == 3 and render.figures().restarts == 2  # pages 1-2, 3-4, 5


async def test_a_page_slot_counts_against_the_schedule(site: Site) -> None:
    # concurrency 1: one slow page holds the only slot; the probes queued behind it are not made
    # once they could no longer start in time (as HTTP probes behind MAX_IN_FLIGHT are shed).
    cfg = parse_config(
        config(
            "".join(
                f'- {{name: s{i}, url: "{site.url}/slow?delay=3", timeout: 10s, '
                "browser: {wait_until: load}}\n"
                for i in range(3)
            ),
            BROWSER,
        ),
        env={},
    )
    pool, render = VantagePool(), Browsers()
    await pool.sync(cfg.vantages)
    start_by = time.monotonic() + 1.0  # only the first probe gets its slot in time
    try:
        runs = [
            probe_everywhere(
                pool, c, cfg.signatures_for(c), render=render, may_start=lambda: time.monotonic() <= start_by
            )
            for c in cfg.checks
        ]
        async with asyncio.timeout(60):
            batches = await asyncio.gather(*runs)
    finally:
        await pool.close()
        await render.close()
    made = [r for batch in batches for r in batch]
    assert len(made) == 1 and made[0].verdict is Verdict.UP, batches
    assert site.most == 1 and site.hits.get("/slow") == 1
    assert render.figures().in_flight == 0 and render.figures().verdicts == {"up": 1}


async def test_a_page_heavier_than_allowed_is_unknown_and_the_next_probe_works(site: Site) -> None:
    hog, after = await probe_all(
        config(
            f"""
            - {{name: hog, url: "{site.url}/hog", timeout: 60s, browser: {{wait_until: load}}}}
            - {{name: after, url: "{site.url}/ok", timeout: 10s, browser: {{wait_until: load}}}}
            """,
            BROWSER,
        )
    )
    assert (hog.verdict, hog.reason) == (Verdict.UNKNOWN, Reason.INTERNAL), hog
    assert hog.error is not None and "crash" in hog.error, hog.error
    assert (after.verdict, after.reason) == (Verdict.UP, None), after


async def test_blocked_requests_are_aborted_and_counted(site: Site) -> None:
    (result,) = await probe_all(
        config(
            f"""
            - name: ads
              url: "{site.url}/ads-page"
              timeout: 10s
              browser: {{wait_until: load, block: ["**/ads/**"]}}
              expect: {{body_contains: [Story]}}
            """,
            BROWSER,
        )
    )
    assert (result.verdict, result.reason) == (Verdict.UP, None), result
    assert result.browser is not None and result.browser["blocked"] == 2, result.browser
    assert not result.browser["failed_requests"], result.browser  # blocked is not failed
    assert (
        site.total_ads() == 0
        if hasattr(site, "total_ads")
        else not any(p.startswith("/ads/") for p in site.hits)
    )


@pytest.mark.parametrize(
    ("surface", "seen"),
    [
        ("web", "width=1280 touch=false mobile=false headless=false"),
        ("mobile", "width=390 touch=true mobile=true headless=false"),
    ],
)
async def test_the_surface_chooses_viewport_user_agent_and_touch(site: Site, surface: str, seen: str) -> None:
    (result,) = await probe_all(
        config(
            f"""
            - name: who
              surface: {surface}
              url: "{site.url}/who"
              timeout: 10s
              browser: {{wait_until: load}}
              expect: {{body_contains: ["{seen}"]}}
            """,
            BROWSER,
        )
    )
    assert (result.verdict, result.reason) == (Verdict.UP, None), result


async def test_navigation_timings_and_metrics(site: Site) -> None:
    render = Browsers()
    (result,) = await probe_all(
        config(
            f'- {{name: t, url: "{site.url}/slow?delay=0.3", timeout: 10s, browser: {{wait_until: load}}}}',
            BROWSER,
        ),
        render=render,
    )
    assert result.verdict is Verdict.UP, result
    phases, evidence = result.phases, result.browser
    assert evidence is not None
    assert phases.ttfb_ms is not None and phases.ttfb_ms >= 250, phases  # the server waited 0.3 s
    assert phases.connect_ms is not None and phases.tls_ms is None  # plain http on loopback
    assert evidence["ttfb_ms"] == round(phases.ttfb_ms, 3)
    assert evidence["load_ms"] >= evidence["dom_content_loaded_ms"] >= phases.ttfb_ms
    metrics = ProberMetrics()
    metrics.browsers = render.figures
    text = b"".join(_exposition(metrics)).decode()
    expected = (
        'prober_browser_probes_total{verdict="up"} 1.0',
        'prober_browser_probes_total{verdict="down"} 0.0',
        "prober_browser_pages_in_flight 0.0",
        "prober_browser_restarts_total 0.0",
    )
    for line in expected:
        assert line in text, text


def _exposition(metrics: ProberMetrics) -> list[bytes]:
    from prometheus_client import generate_latest

    return [generate_latest(metrics.registry)]
