"""The only module that imports APScheduler: one interval job per check, at a fixed phase.

Each check runs at `phase + k * interval` where the phase is derived from its name. Fixed phases
spread checks of the same interval over the whole interval (a burst of due jobs is dropped by
APScheduler as misfired), stay put across restarts and reloads, and unlike `jitter` they do not
stretch the period.
"""

from __future__ import annotations

import inspect
import math
import zlib
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from apscheduler.events import EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED, JobExecutionEvent
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger


def phase(name: str, interval: float) -> float:
    """The fixed offset (seconds, in [0, interval)) at which check `name` runs within its interval."""
    return (zlib.crc32(name.encode()) / 2**32) * interval


def planned_time(name: str, interval: float, now: float) -> float:
    """The latest planned start of check `name` at or before `now` (epoch seconds)."""
    offset = phase(name, interval)
    return offset + math.floor((now - offset) / interval) * interval


class Schedule:
    """Runs `run(name)` for every check at its interval; a check never overlaps itself."""

    def __init__(self, run: Callable[[str], Awaitable[None]]) -> None:
        async def run_job(name: str) -> None:
            await run(name)

        # APScheduler checks the arguments of every job it adds against inspect.signature() of its
        # callable; known in advance, adding 20,000 jobs takes 0.29 s instead of 0.38 s.
        run_job.__signature__ = inspect.signature(run_job)  # type: ignore[attr-defined]
        self._run = run_job
        self._intervals: dict[str, float] = {}
        self.missed = 0  # runs dropped because they could not start within their grace time
        self.overlapped = 0  # runs skipped because the previous run of the check was still going
        self._scheduler = AsyncIOScheduler(timezone=UTC)
        self._scheduler.add_listener(self._on_skipped, EVENT_JOB_MISSED | EVENT_JOB_MAX_INSTANCES)

    def start(self) -> None:
        """Start firing jobs (inside the running event loop)."""
        self._scheduler.start()

    def sync(self, intervals: Mapping[str, float]) -> tuple[set[str], set[str], set[str]]:
        """Make the jobs match `intervals` (check name -> seconds); returns (added, removed, rescheduled)."""
        added = set(intervals) - set(self._intervals)
        removed = set(self._intervals) - set(intervals)
        changed = {n for n in set(intervals) & set(self._intervals) if intervals[n] != self._intervals[n]}
        for name in removed:
            self._scheduler.remove_job(name)
        for name in changed:
            self._scheduler.reschedule_job(name, trigger=self._trigger(name, intervals[name]))
        for name in added:
            self._scheduler.add_job(
                self._run,
                trigger=self._trigger(name, intervals[name]),
                args=[name],
                id=name,
                name=name,
                max_instances=1,
                coalesce=True,
                # A run that cannot start within half its interval is dropped and counted, not
                # run late: a late probe would stretch the interval and hide outages.
                misfire_grace_time=max(1, int(intervals[name] / 2)),
            )
        self._intervals = dict(intervals)
        return added, removed, changed

    def _trigger(self, name: str, interval: float) -> IntervalTrigger:
        start = datetime.fromtimestamp(phase(name, interval), UTC)
        return IntervalTrigger(seconds=interval, start_date=start, timezone=UTC)

    def pause(self) -> None:
        """Stop starting runs; running ones go on."""
        if self._scheduler.running:
            self._scheduler.pause()

    def shutdown(self) -> None:
        """Stop the scheduler; runs still going are cancelled."""
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)

    def _on_skipped(self, event: Any) -> None:
        # Counted here, reported by the daemon once a minute: a flood of lines helps nobody.
        if isinstance(event, JobExecutionEvent) and event.code == EVENT_JOB_MISSED:
            self.missed += 1
        else:
            self.overlapped += 1
