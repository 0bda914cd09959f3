"""The schedule: changes planned and tried before any job is touched; skipped runs counted, not logged."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from prober.schedule import Schedule, ScheduleError


async def test_runs_skipped_because_the_previous_one_still_runs_are_counted_not_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    release = asyncio.Event()
    schedule = Schedule(lambda name: release.wait())  # the first run never ends until released
    schedule.sync({"stuck": 0.05})
    schedule.start()
    try:
        deadline = time.monotonic() + 10
        while schedule.overlapped < 5:
            assert time.monotonic() < deadline, "runs were not skipped"
            await asyncio.sleep(0.05)
    finally:
        release.set()
        schedule.shutdown()
    per_run = [r for r in caplog.records if r.name.startswith("apscheduler") and r.levelno >= logging.WARNING]
    assert per_run == []


@pytest.mark.parametrize(
    "interval",
    [999_999_999 * 86400.0, 1e300, float("inf"), float("nan"), 0.0, -5.0],
    ids=["999999999d", "1e300", "inf", "nan", "zero", "negative"],
)
async def test_an_interval_that_cannot_be_scheduled_is_refused_before_anything_changes(
    interval: float,
) -> None:
    schedule = Schedule(lambda name: asyncio.sleep(0))
    schedule.sync({"a": 1.0, "b": 2.0})
    schedule.start()
    try:
        jobs = {j.id: j.trigger.interval_length for j in schedule._scheduler.get_jobs()}
        with pytest.raises(ScheduleError, match="cannot be scheduled"):
            schedule.plan({"a": 1.0, "c": 3.0, "b": interval})
        assert {j.id: j.trigger.interval_length for j in schedule._scheduler.get_jobs()} == jobs
        # A good plan still applies, and a changed interval changes the run's grace too.
        schedule.apply(schedule.plan({"a": 10.0, "c": 3.0}))
        got = {
            j.id: (j.trigger.interval_length, j.misfire_grace_time) for j in schedule._scheduler.get_jobs()
        }
        assert got == {"a": (10.0, 5), "c": (3.0, 1)}
    finally:
        schedule.shutdown()
