"""Pure: when maintenance windows happen. One-off windows are one span; recurring ones follow a cron.

A recurring window's starts come from APScheduler's CronTrigger in the window's time zone (so
"0 2 * * SUN" in Europe/Paris is 02:00 Paris time in winter and in summer alike); its `duration` is
real elapsed time, added in UTC.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from prober.config import Config, MaintenanceWindow
from prober.model import Incident
from prober.schedule import cron_trigger

MAX_OCCURRENCES = 10_000  # per window and question: a "* * * * *" window over a year stays bounded


@dataclass(frozen=True, slots=True)
class Occurrence:
    """One span of a maintenance window, [starts_at, ends_at) in UTC."""

    window: str
    starts_at: datetime
    ends_at: datetime
    checks: tuple[str, ...] | None  # None: every check

    def active(self, ts: datetime) -> bool:
        """Whether `ts` falls inside this span."""
        return self.starts_at <= ts < self.ends_at

    def covers(self, check: str) -> bool:
        """Whether the span applies to the check named `check`."""
        return self.checks is None or check in self.checks


def occurrences(window: MaintenanceWindow, since: datetime, until: datetime) -> Iterator[Occurrence]:
    """The spans of `window` that overlap [since, until), in start order."""
    span = timedelta(seconds=window.duration)
    if window.start is not None:
        if window.start < until and window.start + span > since:
            yield Occurrence(window.name, window.start, window.start + span, window.checks)
        return
    if window.every is None:
        return
    trigger = cron_trigger(window.every, window.timezone)
    # A span that began up to `duration` before `since` still overlaps it.
    now, previous = (since - span).astimezone(UTC), None
    for _ in range(MAX_OCCURRENCES):
        fire = trigger.get_next_fire_time(previous, now)
        if fire is None:
            return
        start = fire.astimezone(UTC)
        if start >= until:
            return
        if start + span > since:
            yield Occurrence(window.name, start, start + span, window.checks)
        previous, now = fire, fire + timedelta(seconds=1)


def spans(windows: Iterable[MaintenanceWindow], since: datetime, until: datetime) -> list[Occurrence]:
    """Every span of `windows` overlapping [since, until), in start order."""
    found = [o for w in windows for o in occurrences(w, since, until)]
    return sorted(found, key=lambda o: (o.starts_at, o.window))


def active(windows: Iterable[MaintenanceWindow], ts: datetime, check: str | None = None) -> list[Occurrence]:
    """The spans in progress at `ts` (of the windows covering `check`, when given)."""
    chosen = [w for w in windows if check is None or w.covers(check)]
    return [o for o in spans(chosen, ts, ts + timedelta(microseconds=1)) if o.active(ts)]


class Calendar:
    """The maintenance windows of one configuration, asked about one check at a time."""

    def __init__(self, config: Config) -> None:
        """The windows of `config`."""
        self.windows = config.maintenance

    def in_maintenance(self, check: str, ts: datetime) -> bool:
        """Whether `check` is under maintenance at `ts`."""
        return bool(self.windows) and bool(active(self.windows, ts, check))

    def mark(self, incident: Incident) -> Incident:
        """`incident`, marked `maintenance` if it started or was detected in a window covering its check."""
        planned = self.in_maintenance(incident.check, incident.started_at) or self.in_maintenance(
            incident.check, incident.detected_at
        )
        return replace(incident, maintenance=planned)

    def predicate(self, check: str) -> MaintenancePredicate | None:
        """A test of time for one check, for its tracker; None when no window covers the check."""
        chosen = tuple(w for w in self.windows if w.covers(check))
        return MaintenancePredicate(chosen) if chosen else None


@dataclass(frozen=True, slots=True)
class MaintenancePredicate:
    """Whether a time falls in one of some windows: what a check's tracker asks when an incident opens."""

    windows: tuple[MaintenanceWindow, ...]

    def __call__(self, ts: datetime) -> bool:
        return bool(active(self.windows, ts))
