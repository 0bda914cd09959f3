"""One rendered probe: load the page in a fresh context, then judge what it shows like an HTTP body."""

from __future__ import annotations

import asyncio
import html
from collections.abc import Sequence
from typing import Any

from playwright.async_api import BrowserContext, ConsoleMessage, Page, Request, Response, Route
from playwright.async_api import Error as PlaywrightError
from playwright.async_api import TimeoutError as PlaywrightTimeout

from prober.browser.chromium import BrowserUnavailable, renderer_for
from prober.classify import classify
from prober.config import Check, CheckBrowser, Vantage
from prober.model import Classification, Observation, Phases, Reason, Surface, Verdict
from prober.signatures import Signature

MAX_ITEMS = 20  # per evidence list: a page logging in a loop must not grow a result without bound
MAX_TEXT = 300
EXTRACT_SECONDS = 5.0  # reading the DOM after the deadline: a page spinning in a script may not answer
VIEWPORTS = {Surface.MOBILE: (390, 844)}
DEFAULT_VIEWPORT = (1280, 800)

# What a user sees: title, headings, alert regions, visible text; and the navigation timings.
_EXTRACT = """() => {
  const texts = (sel) => Array.from(document.querySelectorAll(sel))
    .map((n) => (n.innerText || n.textContent || '').trim()).filter(Boolean);
  const nav = performance.getEntriesByType('navigation')[0];
  const span = (a, b) => (nav && nav[b] > 0 && nav[a] > 0) ? nav[b] - nav[a] : null;
  return {
    title: document.title || '',
    headings: texts('h1, h2, h3'),
    alerts: texts('[role=alert], [aria-live]:not([aria-live=off])'),
    text: document.body ? document.body.innerText : '',
    dns: span('domainLookupStart', 'domainLookupEnd'),
    connect: span('connectStart', 'connectEnd'),
    tls: (nav && nav.secureConnectionStart > 0) ? nav.connectEnd - nav.secureConnectionStart : null,
    ttfb: nav && nav.responseStart > 0 ? nav.responseStart - nav.startTime : null,
    dcl: nav && nav.domContentLoadedEventEnd > 0 ? nav.domContentLoadedEventEnd : null,
    load: nav && nav.loadEventEnd > 0 ? nav.loadEventEnd : null,
  };
}"""

# Chromium's network errors for the main document, mapped to the reasons of HTTP checks.
_NET_ERRORS: tuple[tuple[str, Reason], ...] = (
    ("ERR_NAME_NOT_RESOLVED", Reason.DNS),
    ("ERR_NAME_RESOLUTION_FAILED", Reason.DNS),
    ("ERR_CERT_", Reason.TLS),
    ("ERR_SSL_", Reason.TLS),
    ("ERR_BAD_SSL", Reason.TLS),
    ("ERR_TIMED_OUT", Reason.TIMEOUT),
    ("ERR_CONNECTION_TIMED_OUT", Reason.TIMEOUT),
)


class Evidence:
    """What the page did while it loaded: recorded, never judged."""

    def __init__(self) -> None:
        self.requests = 0
        self.blocked = 0
        self.failed: list[dict[str, Any]] = []
        self.console: list[str] = []
        self.page_errors: list[str] = []
        self.dom_content_loaded_ms: float | None = None
        self.load_ms: float | None = None

    def watch(self, page: Page) -> None:
        """Record the page's requests, failures, console errors and uncaught exceptions."""
        page.on("request", self._request)
        page.on("requestfailed", self._failed)
        page.on("response", self._response)
        page.on("console", self._console)
        page.on("pageerror", lambda exc: _add(self.page_errors, str(exc)))

    def _request(self, request: Request) -> None:
        self.requests += 1

    def _failed(self, request: Request) -> None:
        error = request.failure or "failed"
        if "ERR_BLOCKED_BY_CLIENT" not in error:  # routed away by `block:`: counted apart
            _add(self.failed, {"url": request.url[:MAX_TEXT], "status": None, "error": error[:MAX_TEXT]})

    def _response(self, response: Response) -> None:
        if response.status >= 400:
            _add(self.failed, {"url": response.url[:MAX_TEXT], "status": response.status, "error": None})

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            _add(self.console, message.text)

    def to_json(self) -> dict[str, Any]:
        """The `browser` object of a result."""
        return {
            "dom_content_loaded_ms": _ms(self.dom_content_loaded_ms),
            "load_ms": _ms(self.load_ms),
            "requests": self.requests,
            "blocked": self.blocked,
            "failed_requests": list(self.failed),
            "console_errors": list(self.console),
            "page_errors": list(self.page_errors),
        }


def _add(items: list[Any], item: Any) -> None:
    if len(items) < MAX_ITEMS:
        items.append(item[:MAX_TEXT] if isinstance(item, str) else item)


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


async def probe_rendered(
    check: Check, signatures: Sequence[Signature], vantage: Vantage
) -> tuple[Observation, Classification, dict[str, Any]]:
    """Render `check`'s page once and judge it; the browser's own failures are unknown/internal."""
    assert check.browser is not None
    evidence = Evidence()
    try:
        if vantage.proxy or vantage.resolver:
            # Going direct instead would report the target as seen from somewhere else.
            raise BrowserUnavailable(
                f"browser checks do not yet go through vantage {vantage.name}'s proxy or resolver"
            )
        renderer = renderer_for(check.browser.settings)
        async with renderer.slots:
            browser = await renderer.browser()
            context: BrowserContext | None = None
            try:
                width, height = check.browser.viewport or VIEWPORTS.get(check.surface, DEFAULT_VIEWPORT)
                mobile = check.surface is Surface.MOBILE
                context = await browser.new_context(
                    viewport={"width": width, "height": height}, is_mobile=mobile, has_touch=mobile
                )
                for pattern in check.browser.block:
                    await context.route(pattern, lambda route: _block(route, evidence))
                page = await context.new_page()
                evidence.watch(page)
                obs, render_error = await _load(page, check, check.browser, evidence)
            except PlaywrightError as exc:
                if not browser.is_connected():
                    raise BrowserUnavailable(f"the browser crashed: {_first_line(exc)}") from exc
                raise
            finally:
                if context is not None and browser.is_connected():
                    await context.close()
    except BrowserUnavailable as exc:
        obs = Observation(url=check.display_url)
        return obs, Classification(Verdict.UNKNOWN, Reason.INTERNAL, None, str(exc)), evidence.to_json()
    verdict = classify(obs, check.expect, signatures)
    # A page that did not finish drawing is down/render, unless what it drew already says why.
    if render_error is not None and verdict.reason not in (Reason.ERROR_PAGE, Reason.HTTP_STATUS):
        verdict = Classification(Verdict.DOWN, Reason.RENDER, None, render_error)
    return obs, verdict, evidence.to_json()


async def _block(route: Route, evidence: Evidence) -> None:
    evidence.blocked += 1
    await route.abort("blockedbyclient")


async def _load(
    page: Page, check: Check, options: CheckBrowser, evidence: Evidence
) -> tuple[Observation, str | None]:
    """Navigate, wait for the page to settle and for `wait_for`; the check's timeout bounds it all."""
    loop = asyncio.get_running_loop()
    start = loop.time()

    def left_ms() -> float:
        return max(1.0, check.timeout * 1000 - (loop.time() - start) * 1000)

    try:
        response = await page.goto(check.url, wait_until="commit", timeout=left_ms())
    except PlaywrightTimeout:
        return _failed(check, Reason.TIMEOUT, f"no answer within {check.timeout:g}s"), None
    except PlaywrightError as exc:
        message = _first_line(exc)
        if "net::" not in message:
            raise
        reason = next((r for code, r in _NET_ERRORS if code in message), Reason.CONNECT)
        return _failed(check, reason, message), None
    render_error: str | None = None
    try:
        await page.wait_for_load_state(options.wait_until, timeout=left_ms())
    except PlaywrightTimeout:
        render_error = f"the page did not settle ({options.wait_until}) within {check.timeout:g}s"
    if render_error is None and options.wait_for:
        try:
            await page.locator(options.wait_for).first.wait_for(state="visible", timeout=left_ms())
        except PlaywrightTimeout:
            render_error = f"{options.wait_for!r} did not become visible within {check.timeout:g}s"
    latency_ms = (loop.time() - start) * 1000
    try:
        async with asyncio.timeout(EXTRACT_SECONDS):
            dom = await page.evaluate(_EXTRACT)
    except TimeoutError:
        dom = {}
        render_error = render_error or "the page did not answer after loading (a script is busy)"
    evidence.dom_content_loaded_ms, evidence.load_ms = dom.get("dcl"), dom.get("load")
    body = _document(dom).encode()
    status = None if response is None else response.status
    obs = Observation(
        url=check.display_url,
        status=status,
        headers={"content-type": "text/html; charset=utf-8"},
        body=body,
        bytes=len(body),
        latency_ms=latency_ms,
        phases=Phases(dom.get("dns"), dom.get("connect"), dom.get("tls"), dom.get("ttfb")),
        final_url=page.url,
    )
    return obs, render_error


def _document(dom: dict[str, Any]) -> str:
    """The rendered page as a small HTML document, so that the HTTP classifier reads it unchanged."""
    esc = html.escape
    headings = "".join(f"<h1>{esc(h)}</h1>" for h in dom.get("headings", ()))
    alerts = "".join(f'<div role="alert">{esc(a)}</div>' for a in dom.get("alerts", ()))
    lines = "".join(f"<p>{esc(line)}</p>" for line in str(dom.get("text", "")).splitlines() if line.strip())
    title = esc(str(dom.get("title", "")))
    head = f"<!doctype html><html><head><title>{title}</title></head>"
    return f"{head}<body>{headings}{alerts}{lines}</body></html>"


def _failed(check: Check, reason: Reason, error: str) -> Observation:
    return Observation(url=check.display_url, failure=reason, error=error)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:MAX_TEXT] if text else type(exc).__name__
