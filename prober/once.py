"""`prober once`: every selected check probed once from each of its vantages, for cron.

Cron starts the next run whether or not this one ended, so `once` waits for the database a bounded
time (`db_timeout`): past it, the results are printed anyway and counted as not saved, rather than
blocking on a lock or a full disk until runs pile up.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from prober.config import Config
from prober.daemon import Monitor, renderer_for
from prober.model import ProbeResult, utcnow
from prober.probe import probe_everywhere
from prober.store import Store, StoreError, describe
from prober.vantage import VantagePool

MAX_CONCURRENT = 64
DB_TIMEOUT = 15.0  # seconds the results and incidents may take to be written, once probed


@dataclass(frozen=True, slots=True)
class OnceRun:
    """The results of one `once`, and what of them the database did not take."""

    results: list[ProbeResult]
    unsaved: int = 0  # results
    unsaved_incidents: int = 0  # incident changes (opened, updated, resolved)
    problem: str | None = None  # why, when something was not saved

    @property
    def saved(self) -> bool:
        """Whether every result and incident change was written."""
        return not self.unsaved and not self.unsaved_incidents


async def probe_once(
    config: Config,
    db_path: Path,
    checks: Sequence[str] = (),
    vantages: Sequence[str] = (),
    db_timeout: float = DB_TIMEOUT,
) -> OnceRun:
    """Probe, record results and incidents within `db_timeout`, and return the results in order."""
    loop = asyncio.get_running_loop()
    store = Store(db_path)
    await loop.run_in_executor(None, store.open)
    pool = VantagePool()
    render = None
    closed = False
    try:
        monitor = Monitor(store)
        alerts = None
        if config.alerts is not None:  # incident changes write their notifications, sent before exit
            from prober.alerts import Alerts

            alerts = Alerts(store, lambda: config)
            alerts.attach()
        try:  # reads only (open incidents, recent results), each bounded by the busy timeout
            await loop.run_in_executor(None, lambda: monitor.configure(config, restore=True))
        except sqlite3.Error as exc:
            raise StoreError(describe(db_path, exc)) from exc
        await pool.sync(config.vantages)
        limit = asyncio.Semaphore(MAX_CONCURRENT)
        selected = [c for c in config.checks if not checks or c.name in checks]
        if vantages:
            selected = [replace(c, vantages=tuple(v for v in c.vantages if v in vantages)) for c in selected]
        render = renderer_for(config)
        runs = [
            probe_everywhere(pool, c, config.signatures_for(c), config.redact, limit, render=render)
            for c in selected
        ]
        results = [r for batch in await asyncio.gather(*runs) for r in batch]
        monitor.observe(results)
        from prober.maintenance.record import refresh  # loaded here: the core does without it

        store.submit(lambda db: refresh(db, config, utcnow()))  # cron mode records windows too
        if alerts is not None:
            await alerts.deliver_due(db_timeout)
        # Closing writes what is queued, retrying a lock or a full disk until the deadline, then
        # counts what it gave up on; what a writer left behind past it is still in its backlog.
        closed = True
        await store.aclose(db_timeout)
        unsaved = store.unsaved + store.backlog
        problem = store.last_error if unsaved or store.unsaved_incidents else None
        return OnceRun(results, unsaved, store.unsaved_incidents, problem)
    finally:
        await pool.close()
        if render is not None:
            await render.close()
        if not closed:
            await store.aclose(db_timeout)
