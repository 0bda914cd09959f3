"""The prober's own overload is never recorded as the target's outage."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

from prober.model import ProbeResult, Reason, Surface, Verdict
from prober.pace import Lateness, LoopWatch
from prober.schedule import Schedule, phase, planned_time


def timeout_result(ts: datetime) -> ProbeResult:
    return ProbeResult(
        ts=ts, check="c", vantage="v", region="r", surface=Surface.WEB, url="http://x/",
        verdict=Verdict.DOWN, reason=Reason.TIMEOUT, error="no complete response within 1s",
    )  # fmt: skip


async def test_a_timeout_while_the_loop_stalled_is_unknown_internal() -> None:
    watch = LoopWatch()
    task = asyncio.create_task(watch.run())
    try:
        await asyncio.sleep(LoopWatch.PERIOD * 3)  # let it take samples
        started = datetime.now(UTC)
        time.sleep(0.5)  # noqa: ASYNC251 - the prober blocks its own event loop: an overload, on purpose
        for _ in range(40):  # bounded: the watch records the stall within a few periods
            if watch.worst_since(started.timestamp()) >= 0.4:
                break
            await asyncio.sleep(LoopWatch.PERIOD)
    finally:
        task.cancel()
    excused = watch.excuse(timeout_result(started), timeout=1.0)
    assert (excused.verdict, excused.reason) == (Verdict.UNKNOWN, Reason.INTERNAL)
    assert "overloaded" in (excused.error or "")
    # With a timeout long enough that the stall cannot explain it, the target is blamed.
    assert watch.excuse(timeout_result(started), timeout=10.0).verdict == Verdict.DOWN


def test_a_timeout_without_a_stall_stays_down() -> None:
    watch = LoopWatch()
    result = timeout_result(datetime.now(UTC))
    assert watch.excuse(result, timeout=1.0) is result


def test_phases_spread_checks_over_the_interval_and_stay_put() -> None:
    offsets = sorted(phase(f"check-{i}", 60) for i in range(1000))
    assert offsets[0] >= 0 and offsets[-1] < 60
    # Spread: every 6-second slice of the minute holds some checks, none holds a burst.
    counts = [sum(1 for o in offsets if k * 6 <= o < (k + 1) * 6) for k in range(10)]
    assert min(counts) > 50 and max(counts) < 150, counts
    assert phase("check-1", 60) == phase("check-1", 60)
    now = 1_700_000_000.0
    planned = planned_time("check-1", 60, now)
    assert now - 60 < planned <= now
    assert (planned - phase("check-1", 60)) % 60 == 0


def test_lateness_report_says_when_behind(caplog) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level("WARNING", logger="prober")
    lateness = Lateness()
    schedule = Schedule(lambda name: asyncio.sleep(0))
    lateness.record(0.01, 60)
    lateness.report(schedule)
    assert "behind schedule" not in caplog.text
    lateness.record(20, 60)
    schedule.missed += 3
    lateness.report(schedule)
    assert "1 runs started late" in caplog.text and "3 skipped as too late" in caplog.text
