"""`prober once`: every selected check probed once from each of its vantages, for cron."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from prober.config import Config
from prober.daemon import Monitor
from prober.model import ProbeResult
from prober.probe import probe_everywhere
from prober.store import Store
from prober.vantage import VantagePool

MAX_CONCURRENT = 64


async def probe_once(
    config: Config, db_path: Path, checks: Sequence[str] = (), vantages: Sequence[str] = ()
) -> list[ProbeResult]:
    """Probe, record results and incidents, and return the results in configuration order."""
    loop = asyncio.get_running_loop()
    store = Store(db_path)
    await loop.run_in_executor(None, store.open)
    pool = VantagePool()
    try:
        monitor = Monitor(store)
        await loop.run_in_executor(None, lambda: monitor.configure(config, restore=True))
        await pool.sync(config.vantages)
        limit = asyncio.Semaphore(MAX_CONCURRENT)
        selected = [c for c in config.checks if not checks or c.name in checks]
        if vantages:
            selected = [replace(c, vantages=tuple(v for v in c.vantages if v in vantages)) for c in selected]
        runs = [probe_everywhere(pool, c, config.signatures_for(c), config.redact, limit) for c in selected]
        results = [r for batch in await asyncio.gather(*runs) for r in batch]
        monitor.observe(results)
        await store.flush()
        return results
    finally:
        await pool.close()
        await store.aclose()
