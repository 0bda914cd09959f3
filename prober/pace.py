"""Whether the prober keeps up: the event loop's lag, how late runs start, and the store's health.

What is counted here is the prober's own trouble, told apart from the target's: logged once a minute,
and shown in /healthz and /metrics.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from dataclasses import replace

from prober.model import ProbeResult, Reason, Verdict, iso
from prober.schedule import Schedule
from prober.store import StoreHealth

log = logging.getLogger("prober")

LATE = 1.0  # seconds: a probe that starts later than this is counted (and reported) as late


class LoopWatch:
    """How late the event loop wakes up: the prober's own overload, told apart from the target's."""

    PERIOD = 0.05

    def __init__(self) -> None:
        self._samples: deque[tuple[float, float]] = deque(maxlen=4000)  # (epoch, lag): 200 s

    async def run(self) -> None:
        """Sample the loop's lag until cancelled."""
        while True:
            started = time.monotonic()
            await asyncio.sleep(self.PERIOD)
            self._samples.append((time.time(), time.monotonic() - started - self.PERIOD))

    def worst_since(self, since: float) -> float:
        """The longest stall (seconds) seen since the epoch time `since`."""
        worst = 0.0
        for at, lag in reversed(self._samples):
            if at < since:
                break
            worst = max(worst, lag)
        return worst

    def excuse(self, result: ProbeResult, timeout: float) -> ProbeResult:
        """A timeout during which the prober itself stalled is its own fault: unknown, not down."""
        if result.verdict != Verdict.DOWN or result.reason != Reason.TIMEOUT:
            return result
        stall = self.worst_since(result.ts.timestamp())
        if stall < timeout / 4:
            return result
        error = f"prober overloaded: its event loop stalled {stall * 1000:.0f} ms during the probe"
        return replace(
            result, verdict=Verdict.UNKNOWN, reason=Reason.INTERNAL, error=f"{error}: {result.error}"
        )


class Lateness:
    """How far behind schedule check runs start; summarised in the log once a minute."""

    def __init__(self) -> None:
        self.late = 0  # runs that started more than a quarter of their interval late
        self.skipped = 0  # probes not made: they could not start within half their interval
        self.worst = 0.0
        self._reported = (0, 0, 0)

    def record(self, late: float, interval: float, skipped: int = 0) -> None:
        """Count one run whose probes started `late` seconds after its planned time; `skipped` of
        them could not start within half the interval and were not made."""
        self.worst = max(self.worst, late)
        if late > min(LATE, interval / 4):
            self.late += 1
        self.skipped += skipped

    def report(self, schedule: Schedule) -> None:
        """Log a warning if runs were late or skipped since the last report."""
        now = (self.late, schedule.missed + self.skipped, schedule.overlapped)
        late, missed, overlapped = (a - b for a, b in zip(now, self._reported, strict=True))
        self._reported = now
        if late or missed or overlapped:
            log.warning("behind schedule: %d runs started late (worst %.2fs), %d skipped as too late, "
                        "%d skipped because the previous run was still going", late, self.worst,
                        missed, overlapped)  # fmt: skip
        self.worst = 0.0


def report_store(health: StoreHealth, dropped_before: int) -> int:
    """Log, once a minute, how the database is failing and what was dropped since; the drops so far."""
    dropped = health.dropped - dropped_before
    problem = health.file_problem or (health.last_error if health.failing_since is not None else None)
    if problem is not None or dropped:
        since = "" if health.failing_since is None else f" since {iso(health.failing_since)}"
        log.warning("database: %s%s; %d results queued (at most %d), %d dropped in the last minute, %d "
                    "failed write attempts in all", problem or "writes are behind", since, health.backlog,
                    health.max_backlog, dropped, health.write_errors)  # fmt: skip
    return health.dropped
