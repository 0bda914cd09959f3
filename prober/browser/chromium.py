"""Chromium processes: launched lazily, again after a crash, and retired after a number of pages."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from playwright.async_api import Browser, Playwright, async_playwright

from prober.config import BrowserSettings

PAGE_HEAP_MB = 512  # a page's JavaScript heap: past it, its renderer dies (unknown/internal), not prober
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run",
        f"--js-flags=--max-old-space-size={PAGE_HEAP_MB}"]  # fmt: skip
LAUNCH_TIMEOUT_MS = 30_000
# A long-lived renderer's memory creeps up (caches, leaked detached documents); a new process per
# 200 pages costs one launch (about half a second of a core) per 200 probes.
PAGES_PER_BROWSER = 200
NICENESS = 10  # Chromium's scheduling priority below the prober's (see lower_priority)


class BrowserUnavailable(Exception):
    """Chromium could not be found, started or kept running: the prober's fault, not the target's."""


def executable_for(settings: BrowserSettings) -> str:
    """The Chromium to run: `browser.executable`, else $PROBER_CHROMIUM, else chromium on PATH."""
    found = settings.executable or os.environ.get("PROBER_CHROMIUM") or shutil.which("chromium")
    if not found:
        raise BrowserUnavailable("no Chromium found: install Debian's chromium or set browser.executable")
    return found


class Chromium:
    """One Chromium process at a time, relaunched after a crash or after `pages_per_browser` pages.

    A browser due for retirement is closed once its last page is done, while new pages already go
    to its successor: a restart never cuts a probe short.
    """

    def __init__(self, driver: Driver, executable: str, args: tuple[str, ...] = (), pages: int = 0) -> None:
        self.driver = driver
        self.executable = executable
        self.args = [*ARGS, *args]
        self.pages_per_browser = pages or PAGES_PER_BROWSER
        self.launches = 0
        self.restarts = 0  # launches after the first: a crash, or a retirement
        self._browser: Browser | None = None
        self._served = 0  # pages opened in the current browser
        self._open: dict[Browser, int] = {}  # pages in flight per browser, the retired ones included
        self._lock = asyncio.Lock()

    def set_args(self, extra: tuple[str, ...]) -> None:
        """Launch later browsers with these extra flags; the running one is retired if they differ."""
        args = [*ARGS, *extra]
        if args != self.args:
            self.args = args
            self._served = self.pages_per_browser  # its pages in flight finish; the next page relaunches

    @asynccontextmanager
    async def browser(self) -> AsyncIterator[Browser]:
        """A running browser for one page, launched now if there is none, the last one died or is retired."""
        browser = await self._current()
        if self._served <= 3:  # the processes a new browser starts for its first pages (zygotes, network)
            await asyncio.to_thread(lower_priority)
        self._open[browser] = self._open.get(browser, 0) + 1
        try:
            yield browser
        finally:
            left = self._open.get(browser, 1) - 1
            if left > 0:
                self._open[browser] = left
            else:
                self._open.pop(browser, None)
                if browser is not self._browser and browser.is_connected():
                    await browser.close()  # retired, and its last page is done

    async def _current(self) -> Browser:
        async with self._lock:
            browser = self._browser
            if browser is not None and browser.is_connected() and self._served < self.pages_per_browser:
                self._served += 1
                return browser
            if browser is not None and browser.is_connected() and browser not in self._open:
                await browser.close()  # retired with no page in flight
            self._browser = None
            playwright = await self.driver.start()
            try:
                browser = await playwright.chromium.launch(
                    executable_path=self.executable, headless=True, args=self.args, timeout=LAUNCH_TIMEOUT_MS
                )
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise BrowserUnavailable(f"the browser could not start ({self.executable}): {first}") from exc
            await asyncio.to_thread(lower_priority)
            self.restarts += 1 if self.launches else 0
            self.launches += 1
            self._browser, self._served = browser, 1
            return browser

    async def close(self) -> None:
        """Stop every browser process of this one."""
        async with self._lock:
            browsers = {*self._open, *([self._browser] if self._browser is not None else [])}
            self._browser = None
            self._open.clear()
            for browser in browsers:
                if browser.is_connected():
                    await browser.close()


def chromium_processes(root: int) -> list[int]:
    """The Chromium processes descending from process `root` (Linux; none elsewhere)."""
    found: list[int] = []
    try:
        entries = list(Path("/proc").iterdir())
    except OSError:
        return found
    for entry in entries:
        try:
            if not entry.name.isdigit() or not (entry / "comm").read_text().startswith("chromium"):
                continue
            parent = int(entry.name)
            for _ in range(6):  # chromium <- (zygote <-) playwright driver <- root
                parent = int((Path("/proc") / str(parent) / "stat").read_text().rsplit(")", 1)[1].split()[1])
                if parent in (root, 0, 1):
                    break
            if parent == root:
                found.append(int(entry.name))
        except (OSError, ValueError, IndexError):
            continue  # a process that ended meanwhile
    return found


def lower_priority(niceness: int = NICENESS) -> int:
    """Renice this process's Chromium processes; how many. Renderers forked later by its zygotes
    inherit it. Pages then yield the CPU to the prober: a busy renderer does not make HTTP probes
    (and their timings) late on a machine with few cores."""
    changed = 0
    for pid in chromium_processes(os.getpid()):
        try:
            if os.getpriority(os.PRIO_PROCESS, pid) < niceness:
                os.setpriority(os.PRIO_PROCESS, pid, niceness)
                changed += 1
        except OSError:
            continue  # ended meanwhile, or not ours to change
    return changed


class Driver:
    """Playwright's driver process, started on first use and shared by every Chromium of a loop."""

    def __init__(self) -> None:
        self._playwright: Playwright | None = None
        self._lock = asyncio.Lock()

    async def start(self) -> Playwright:
        """The running driver."""
        async with self._lock:
            if self._playwright is None:
                try:
                    self._playwright = await async_playwright().start()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    raise BrowserUnavailable(f"Playwright's driver could not start: {exc}") from exc
            return self._playwright

    async def stop(self) -> None:
        """Stop the driver (after the browsers)."""
        async with self._lock:
            driver, self._playwright = self._playwright, None
            if driver is not None:
                await driver.stop()
