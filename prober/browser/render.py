"""One rendered probe: load the page in a fresh context, then judge what it shows like an HTTP body."""

from __future__ import annotations

import asyncio
import contextlib
import html
from collections.abc import Sequence
from typing import Any
from urllib.parse import unquote, urlsplit

from playwright.async_api import Browser, BrowserContext, ConsoleMessage, Page, Request, Response, Route
from playwright.async_api import Error as PlaywrightError
from playwright.async_api import TimeoutError as PlaywrightTimeout

from prober.browser.chromium import BrowserUnavailable
from prober.classify import classify
from prober.config import Check, CheckBrowser
from prober.model import Classification, Observation, Phases, Reason, Surface, Verdict
from prober.probe import USER_AGENTS, Rendered
from prober.signatures import Signature

MAX_ITEMS = 20  # per evidence list: a page logging in a loop must not grow a result without bound
MAX_TEXT = 300
EXTRACT_SECONDS = 5.0  # reading the DOM after the deadline: a page spinning in a script may not answer
VIEWPORTS = {Surface.MOBILE: (390, 844)}
DEFAULT_VIEWPORT = (1280, 800)
DESKTOP_AGENT = USER_AGENTS["web"]  # not HeadlessChrome's own, which sites treat as a bot
MOBILE_AGENT = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Mobile Safari/537.36"
)
MAX_SCREENSHOT = 1024 * 1024  # bytes of PNG: a viewport is usually 30-300 KB; a photo wall may not fit
SCREENSHOT_SECONDS = 5.0

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
    connect: (nav && nav.secureConnectionStart > 0) ? span('connectStart', 'secureConnectionStart')
      : span('connectStart', 'connectEnd'),
    tls: (nav && nav.secureConnectionStart > 0) ? nav.connectEnd - nav.secureConnectionStart : null,
    ttfb: span('requestStart', 'responseStart'),
    dcl: nav && nav.domContentLoadedEventEnd > 0 ? nav.domContentLoadedEventEnd : null,
    load: nav && nav.loadEventEnd > 0 ? nav.loadEventEnd : null,
  };
}"""

# Chromium's network errors for the main document, mapped to the reasons of HTTP checks.
_NET_ERRORS: tuple[tuple[str, Reason], ...] = (
    # The vantage's proxy could not be used: the vantage's fault. It could not reach the target: connect.
    ("ERR_PROXY_CONNECTION_FAILED", Reason.VANTAGE),
    ("ERR_PROXY_AUTH", Reason.VANTAGE),
    ("ERR_PROXY_CERTIFICATE_INVALID", Reason.VANTAGE),
    ("ERR_SOCKS_CONNECTION_FAILED", Reason.VANTAGE),
    ("ERR_MANDATORY_PROXY_CONFIGURATION_FAILED", Reason.VANTAGE),
    ("ERR_TUNNEL_CONNECTION_FAILED", Reason.CONNECT),
    ("ERR_SOCKS_CONNECTION_HOST_UNREACHABLE", Reason.CONNECT),
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
        self.phases = Phases()
        self.screenshot: dict[str, Any] | None = None  # taken or not, and why

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
            "dns_ms": _ms(self.phases.dns_ms),
            "connect_ms": _ms(self.phases.connect_ms),
            "tls_ms": _ms(self.phases.tls_ms),
            "ttfb_ms": _ms(self.phases.ttfb_ms),
            "requests": self.requests,
            "blocked": self.blocked,
            "failed_requests": list(self.failed),
            "console_errors": list(self.console),
            "page_errors": list(self.page_errors),
            "screenshot": self.screenshot,
        }


def _add(items: list[Any], item: Any) -> None:
    if len(items) < MAX_ITEMS:
        items.append(item[:MAX_TEXT] if isinstance(item, str) else item)


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


async def render_page(
    browser: Browser, check: Check, signatures: Sequence[Signature], proxy: str | None, evidence: Evidence
) -> Rendered:
    """Render `check`'s page in a fresh context of `browser`, judge it, take its screenshot if due."""
    assert check.browser is not None
    context: BrowserContext | None = None
    try:
        context = await browser.new_context(**_context_options(check, proxy))
        for pattern in check.browser.block:
            await context.route(pattern, lambda route: _block(route, evidence))
        page = await context.new_page()
        crashed: list[bool] = []
        page.on("crash", lambda _: crashed.append(True))
        evidence.watch(page)
        try:
            obs, render_error = await _load(page, check, check.browser, evidence)
        except PlaywrightError as exc:
            if crashed or "crash" in str(exc).lower():
                raise BrowserUnavailable(f"the page crashed the browser's renderer (out of memory?): "
                                         f"{_first_line(exc)}") from exc  # fmt: skip
            raise
        verdict = classify(obs, check.expect, signatures)
        # A page that did not finish drawing is down/render, unless what it drew already says why.
        if render_error is not None and verdict.reason not in (Reason.ERROR_PAGE, Reason.HTTP_STATUS):
            verdict = Classification(Verdict.DOWN, Reason.RENDER, None, render_error)
        screenshot = None
        if _wants_screenshot(check.browser.screenshot, verdict.verdict) and obs.failure is None:
            screenshot = await _screenshot(page, evidence)
        return Rendered(obs, verdict, evidence.to_json(), screenshot)
    except PlaywrightError as exc:
        if not browser.is_connected():
            raise BrowserUnavailable(f"the browser crashed: {_first_line(exc)}") from exc
        raise
    finally:
        if context is not None and browser.is_connected():
            with contextlib.suppress(PlaywrightError):  # a context of a crashed renderer may refuse
                await context.close()


def _context_options(check: Check, proxy: str | None) -> dict[str, Any]:
    """A fresh context as the check's surface: viewport, user agent, touch; the vantage's proxy."""
    assert check.browser is not None
    mobile = check.surface is Surface.MOBILE
    width, height = check.browser.viewport or VIEWPORTS.get(check.surface, DEFAULT_VIEWPORT)
    headers = {k: v for k, v in check.headers.items() if k.lower() != "user-agent"}
    agent = next((v for k, v in check.headers.items() if k.lower() == "user-agent"), None)
    options: dict[str, Any] = {
        "viewport": {"width": width, "height": height},
        "is_mobile": mobile,
        "has_touch": mobile,
        "device_scale_factor": 3 if mobile else 1,
        "user_agent": agent or (MOBILE_AGENT if mobile else DESKTOP_AGENT),
        "extra_http_headers": headers,
    }
    if proxy:
        options["proxy"] = proxy_option(proxy)
    return options


def proxy_option(proxy: str) -> dict[str, str]:
    """Playwright's proxy option for a vantage's proxy URL; loopback targets go through it too."""
    url = urlsplit(proxy)
    server = f"{url.scheme}://{url.hostname if ':' not in (url.hostname or '') else f'[{url.hostname}]'}"
    option = {"server": server + (f":{url.port}" if url.port else ""), "bypass": "<-loopback>"}
    if url.username:
        option.update(username=unquote(url.username), password=unquote(url.password or ""))
    return option


def _wants_screenshot(policy: str, verdict: Verdict) -> bool:
    return policy == "always" or (policy == "on_failure" and verdict in (Verdict.DOWN, Verdict.DEGRADED))


async def _screenshot(page: Page, evidence: Evidence) -> bytes | None:
    """The viewport as PNG, if it fits within MAX_SCREENSHOT bytes; the evidence says what became of it."""
    try:
        # CSS pixels: a mobile viewport at device scale 3 would be nine times the bytes.
        png = await page.screenshot(
            type="png", full_page=False, scale="css", timeout=SCREENSHOT_SECONDS * 1000
        )
    except PlaywrightTimeout:
        evidence.screenshot = {"stored": False, "error": f"not taken within {SCREENSHOT_SECONDS:g}s"}
        return None
    if len(png) > MAX_SCREENSHOT:
        evidence.screenshot = {
            "stored": False,
            "bytes": len(png),
            "error": f"{len(png)} bytes, over the limit of {MAX_SCREENSHOT} bytes: not stored",
        }
        return None
    evidence.screenshot = {"stored": True, "bytes": len(png)}
    return png


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
    evidence.phases = Phases(dom.get("dns"), dom.get("connect"), dom.get("tls"), dom.get("ttfb"))
    body = _document(dom).encode()
    status = None if response is None else response.status
    obs = Observation(
        url=check.display_url,
        status=status,
        headers={"content-type": "text/html; charset=utf-8"},
        body=body,
        bytes=len(body),
        latency_ms=latency_ms,
        phases=evidence.phases,
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
