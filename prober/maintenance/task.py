"""The daemon's part: keep the recorded spans and the counts of results inside them current."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import timedelta
from functools import partial

from prober.config import Config
from prober.maintenance.record import prune, refresh
from prober.maintenance.window import active
from prober.model import utcnow
from prober.store import Store

log = logging.getLogger("prober")

PERIOD = 60.0  # seconds between refreshes: spans are minutes long at the least
PRUNE_EVERY = 60 * 24  # refreshes between two prunings: about once a day
CATCH_UP = timedelta(days=1)  # at start: results that arrived while the daemon was down (agents)


def checks_in_maintenance(config: Config) -> set[str]:
    """The checks of `config` under maintenance now."""
    if not config.maintenance:
        return set()
    now = utcnow()
    spans = active(config.maintenance, now)
    return {c.name for c in config.checks if any(s.covers(c.name) for s in spans)}


async def keep_windows(
    store: Store,
    config_of: Callable[[], Config],
    on_change: Callable[[set[str]], None] | None = None,
    period: float = PERIOD,
) -> None:
    """Every `period`, record the spans of the current configuration and recount what they cover.

    `on_change` hears the set of checks under maintenance whenever it changes (the metrics, the page).
    A failure is logged and tried again next time; this never stops the daemon.
    """
    since: timedelta | None = CATCH_UP
    shown: set[str] | None = None
    rounds = 0
    while True:
        config, now = config_of(), utcnow()
        try:
            await store.call(
                partial(refresh, config=config, now=now, since=None if since is None else now - since)
            )
            since = None
            if rounds % PRUNE_EVERY == 0:
                await store.call(partial(prune, now=now))
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("maintenance windows: recording them failed; will try again in %.0fs", period)
        rounds += 1
        current = checks_in_maintenance(config)
        if on_change is not None and current != shown:
            shown = current
            on_change(current)
        await asyncio.sleep(period)
