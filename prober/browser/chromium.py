"""One long-lived Chromium per event loop and executable, launched lazily and again after a crash."""

from __future__ import annotations

import asyncio
import os
import shutil
import weakref

from playwright.async_api import Browser, Playwright, async_playwright

from prober.config import BrowserSettings

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip
LAUNCH_TIMEOUT_MS = 30_000


class BrowserUnavailable(Exception):
    """Chromium could not be found, started or kept running: the prober's fault, not the target's."""


def executable_for(settings: BrowserSettings) -> str:
    """The Chromium to run: `browser.executable`, else $PROBER_CHROMIUM, else chromium on PATH."""
    found = settings.executable or os.environ.get("PROBER_CHROMIUM") or shutil.which("chromium")
    if not found:
        raise BrowserUnavailable("no Chromium found: install Debian's chromium or set browser.executable")
    return found


class Renderer:
    """A Chromium process shared by every browser check, and the slots bounding pages in flight."""

    def __init__(self, executable: str, concurrency: int) -> None:
        self.executable = executable
        self.slots = asyncio.Semaphore(concurrency)
        self.launches = 0
        self._playwright: Playwright | None = None
        self._browser: Browser | None = None
        self._lock = asyncio.Lock()

    async def browser(self) -> Browser:
        """The running browser, launched now if there is none or the last one died."""
        async with self._lock:
            if self._browser is not None and self._browser.is_connected():
                return self._browser
            self._browser = None
            try:
                if self._playwright is None:
                    self._playwright = await async_playwright().start()
                browser = await self._playwright.chromium.launch(
                    executable_path=self.executable, headless=True, args=ARGS, timeout=LAUNCH_TIMEOUT_MS
                )
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise BrowserUnavailable(f"the browser could not start ({self.executable}): {first}") from exc
            self.launches += 1
            self._browser = browser
            return browser

    async def close(self) -> None:
        """Stop the browser and the Playwright driver."""
        async with self._lock:
            browser, self._browser = self._browser, None
            driver, self._playwright = self._playwright, None
            if browser is not None:
                await browser.close()
            if driver is not None:
                await driver.stop()


# Playwright's objects belong to the loop that made them: one set of renderers per running loop.
_RENDERERS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[str, int], Renderer]] = (
    weakref.WeakKeyDictionary()
)


def renderer_for(settings: BrowserSettings) -> Renderer:
    """The running loop's renderer for these settings, made on first use (nothing is launched yet)."""
    executable = executable_for(settings)
    mine = _RENDERERS.setdefault(asyncio.get_running_loop(), {})
    key = (executable, settings.concurrency)
    if key not in mine:
        mine[key] = Renderer(executable, settings.concurrency)
    return mine[key]


async def close_renderers() -> None:
    """Stop every browser this loop started; the end of `prober once` and of the daemon."""
    mine = _RENDERERS.pop(asyncio.get_running_loop(), {})
    for renderer in mine.values():
        await renderer.close()
