"""The ceiling for bench/browser.py: a bare Playwright loop rendering one URL, as fast as it can.

    python bench/_bare_browser.py URL --workers 2 --executable /usr/bin/chromium --out bare.json

One Chromium; `--workers` loops, each: a fresh context, `goto` with `networkidle` (prober's
default), the title and visible text read, the context closed. No classification, no storage, no
schedule. Runs until SIGTERM, then writes {"pages", "errors"} to `--out`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from pathlib import Path

from playwright.async_api import Error as PlaywrightError
from playwright.async_api import async_playwright

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from prober.browser.chromium import ARGS


async def render_loop(url: str, workers: int, executable: str) -> dict[str, int]:
    """Render `url` with `workers` loops until SIGTERM; pages rendered and errors."""
    counts = {"pages": 0, "errors": 0}
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=executable, headless=True, args=ARGS)

        async def worker(n: int) -> None:
            while not stop.is_set():
                context = await browser.new_context()
                try:
                    page = await context.new_page()
                    await page.goto(f"{url}?bare={n}", wait_until="networkidle", timeout=15_000)
                    await page.title()
                    await page.evaluate("() => document.body.innerText")
                    counts["pages"] += 1
                except PlaywrightError:
                    counts["errors"] += 1
                finally:
                    await context.close()

        await asyncio.gather(*(worker(n) for n in range(workers)))
        await browser.close()
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--executable", default="/usr/bin/chromium")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    counts = asyncio.run(render_loop(args.url, args.workers, args.executable))
    args.out.write_text(json.dumps(counts) + "\n")


if __name__ == "__main__":
    main()
