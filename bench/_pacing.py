"""Work launched at a steady rate, as a scheduler would: for the bare loop and the exporter's scraper."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable


async def at_rate(rate: float, duration: float, job: Callable[[int], Awaitable[None]], grace: float) -> int:
    """Start `job(n)` `rate` times a second for `duration` s; wait up to `grace` s for the last; how many."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    total = int(rate * duration)
    tasks: set[asyncio.Task[None]] = set()
    launched = 0
    while launched < total:
        due = min(int((loop.time() - started) * rate) + 1, total)
        while launched < due:
            task = asyncio.ensure_future(job(launched))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            launched += 1
        await asyncio.sleep(0.005)
    if tasks:
        await asyncio.wait(tasks, timeout=grace)
    return launched
