"""What the status page, the JSON APIs and the metrics say about each check: computed here, once.

A check's state comes from the running daemon when there is one (its trackers know the confirmed
state); otherwise from the database: an open incident says there is an outage, and the newest
result of each vantage says degraded or operational. A down result that no open incident confirms
counts neither way, as one stray failure does not make an outage.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any, cast

import sqlite_utils

from prober.model import STATE_SEVERITY, Counts, Incident, ProbeResult, State, Surface, Verdict
from prober.state import OUTAGES, check_state
from prober.store import history, read, summaries
from prober.web.public import concealer, show_urls

if TYPE_CHECKING:
    from prober.config import Config

SURFACE_ORDER = (Surface.WEB, Surface.MOBILE, Surface.API)
SURFACE_TITLES = {Surface.WEB: "Web", Surface.MOBILE: "Mobile", Surface.API: "API"}
DB_CHECK_WINDOW = timedelta(days=14)  # without a configuration: checks heard from this recently
STALE_WITHOUT_CONFIG = timedelta(hours=1)
HISTORY_DAYS = 90
WINDOW_HOURS = (24,)
WINDOW_DAYS = (7, 30, 90)

# Live: check -> (confirmed state, confirmed status of each vantage or None), copied from the daemon.
LiveStates = Mapping[str, tuple[State, Mapping[str, Verdict] | None]]
# Live: check -> the incident its tracker has open (its id None until the writer saved it).
LiveIncidents = Mapping[str, Incident]


@dataclass(frozen=True, slots=True)
class CheckInfo:
    """Who a check is: from the configuration, or from what the database has seen of it."""

    name: str
    surface: Surface
    url: str
    vantages: Mapping[str, str]  # vantage -> region
    quorum: int  # vantages down for a major outage
    interval: float | None = None  # None when derived from the database
    display_name: str = ""  # what the page and the Statuspage API call it (default: the name)
    description: str | None = None

    @property
    def title(self) -> str:
        """The name shown to people."""
        return self.display_name or self.name

    @property
    def regions(self) -> dict[str, list[str]]:
        """Region -> its vantages, in configuration order."""
        out: dict[str, list[str]] = {}
        for vantage, region in self.vantages.items():
            out.setdefault(region, []).append(vantage)
        return out

    def stale_after(self) -> timedelta:
        """How old the newest result of a vantage may be before it says nothing about now."""
        if self.interval is None:
            return STALE_WITHOUT_CONFIG
        return max(timedelta(seconds=3 * self.interval), timedelta(minutes=5))


@dataclass(frozen=True, slots=True)
class CheckStatus:
    """A check now: its state overall and per region, its newest results, its open incident."""

    info: CheckInfo
    state: State
    regions: dict[str, State]
    latest: dict[str, ProbeResult]  # vantage -> newest result
    incident: Incident | None
    first_seen: datetime | None

    @property
    def name(self) -> str:
        """The check's name."""
        return self.info.name

    @property
    def last_probed(self) -> datetime | None:
        """When the newest result of any vantage was taken."""
        return max((r.ts for r in self.latest.values()), default=None)


@dataclass(frozen=True, slots=True)
class Overview:
    """Every shown check now, and the blended state of them all."""

    now: datetime
    checks: list[CheckStatus]
    state: State
    open_incidents: list[Incident]

    @property
    def updated_at(self) -> datetime:
        """The time of the newest result, or now."""
        return max((c.last_probed for c in self.checks if c.last_probed), default=self.now)

    def by_surface(self) -> list[tuple[Surface, list[CheckStatus]]]:
        """The checks grouped by surface, web first; empty groups left out."""
        groups = [(s, [c for c in self.checks if c.info.surface == s]) for s in SURFACE_ORDER]
        return [(s, cs) for s, cs in groups if cs]

    def find(self, name: str) -> CheckStatus | None:
        """The check named `name`, if shown."""
        return next((c for c in self.checks if c.name == name), None)


@dataclass
class History:
    """What the rollups say about each check: the uptime bars, the hourly latency, the windows.

    Each part is read the first time it is asked for (the JSON APIs need the windows only), by one
    thread: others asking for the same part wait for it, those asking for another read theirs at the
    same time (SQLite releases the GIL while it works).
    """

    now: datetime
    parts: dict[str, Any] = field(default_factory=dict)
    fragments: dict[tuple[str, str], Any] = field(default_factory=dict)  # memo of rendered parts
    _locks: dict[str, threading.Lock] = field(
        default_factory=lambda: {name: threading.Lock() for name in _PARTS}, repr=False
    )

    def load(self, db: sqlite_utils.Database, *names: str) -> History:
        """Read the parts `names` not read yet (blocking)."""
        for name in names:
            if name in self.parts:
                continue
            with self._locks[name]:
                if name not in self.parts:
                    self.parts[name] = _PARTS[name](db, self.now)
        return self

    @property
    def days(self) -> Days:
        """Every check's last 90 days."""
        return cast("Days", self.parts.get("days") or Days([], {}, {}))

    @property
    def latency(self) -> dict[str, list[history.LatencyPoint]]:
        """Check -> its hourly response times over 24 hours."""
        return cast("dict[str, list[history.LatencyPoint]]", self.parts.get("latency", {}))

    @property
    def windows(self) -> dict[str, dict[str, Counts]]:
        """Check -> window ("24h", "7d", "30d", "90d") -> counts."""
        return cast("dict[str, dict[str, Counts]]", self.parts.get("windows", {}))


@dataclass(frozen=True, slots=True)
class Days:
    """The uptime strips of every check over the same days: counts and incidents, not a DayStatus
    per bar (90,000 objects at 1,000 checks), since most days are plain."""

    span: list[date]  # consecutive UTC days, today last
    counts: dict[str, list[int]]  # check -> up, degraded, down, unknown of each day of `span`
    incidents: dict[str, tuple[dict[date, State], dict[date, float]]]  # check -> history.incident_days

    def counts_of(self, name: str, i: int) -> Counts:
        """The counts of a check on day `i` of the span."""
        values = self.counts.get(name)
        return Counts() if values is None else Counts(*values[4 * i : 4 * i + 4])

    def touched(self, name: str) -> set[int]:
        """The days of the span (their indexes) on which a check had an incident."""
        worst, minutes = self.incidents.get(name, ({}, {}))
        first = self.span[0] if self.span else date.min
        last = len(self.span)
        return {i for day in (*worst, *minutes) if 0 <= (i := (day - first).days) < last}

    def status(self, name: str, i: int) -> history.DayStatus:
        """Day `i` of a check's strip (what `history.day_history` says of it)."""
        worst, minutes = self.incidents.get(name, ({}, {}))
        day = self.span[i]
        return history.day_status(day, self.counts_of(name, i), worst.get(day), minutes.get(day, 0.0))

    def statuses(self, name: str) -> list[history.DayStatus]:
        """Every day of a check's strip."""
        return [self.status(name, i) for i in range(len(self.span))]


def load_days(db: sqlite_utils.Database, now: datetime, days: int = HISTORY_DAYS) -> Days:
    """The last `days` UTC days (today last) of every check: counts from the summaries and rollups
    (`prober.store.summaries`), maintenance left out, and the days of their incidents."""
    today = now.astimezone(UTC).date()
    span = [today - timedelta(days=days - 1 - i) for i in range(days)]
    by_check: dict[str, list[Incident]] = {}
    start = datetime(span[0].year, span[0].month, span[0].day, tzinfo=UTC)
    for incident in read.incidents(db, since=start):
        by_check.setdefault(incident.check, []).append(incident)
    incidents = {name: history.incident_days(found, now) for name, found in by_check.items()}
    return Days(span, summaries.day_counts(db, span), incidents)


_PARTS: dict[str, Callable[[sqlite_utils.Database, datetime], Any]] = {
    "days": load_days,
    "latency": lambda db, now: summaries.latency(db, now - timedelta(hours=24)),
    "windows": lambda db, now: history.window_counts(db, now, hours=WINDOW_HOURS, days=WINDOW_DAYS),
}
ALL_PARTS = tuple(_PARTS)


def worst(states: Sequence[State]) -> State:
    """The most severe of `states`; unknown when there are none."""
    return max(states, key=lambda s: STATE_SEVERITY[s], default=State.UNKNOWN)


def blended(states: Sequence[State]) -> State:
    """The state of a set of checks: the worst known one; unknown only if none is known."""
    known = [s for s in states if s is not State.UNKNOWN]
    return worst(known) if known else State.UNKNOWN


def check_infos(
    config: Config | None, latest: Sequence[ProbeResult], now: datetime, public: bool = True
) -> list[CheckInfo]:
    """The checks to show: the configured ones, or those the database heard from recently.

    For the `public` (the page and the JSON APIs) hidden checks are left out and, unless the page
    shows URLs, a check's `url` is empty.
    """
    if config is not None:
        urls = not public or show_urls(config)
        return [
            CheckInfo(
                name=c.name,
                surface=c.surface,
                url=c.display_url if urls else "",
                vantages={v: config.vantages[v].region if v in config.vantages else v for v in c.vantages},
                quorum=c.quorum_count(len(c.vantages)),
                interval=c.interval,
                display_name=c.display_name,
                description=c.description,
            )
            for c in config.checks
            if c.public or not public
        ]
    seen: dict[str, list[ProbeResult]] = {}
    for result in latest:
        if result.ts >= now - DB_CHECK_WINDOW:
            seen.setdefault(result.check, []).append(result)
    infos = []
    for name in sorted(seen):
        results = seen[name]
        newest = max(results, key=lambda r: r.ts)
        vantages = {r.vantage: r.region for r in sorted(results, key=lambda r: r.vantage)}
        url = "" if public else newest.url  # no configuration says the URLs may be shown
        infos.append(CheckInfo(name, newest.surface, url, vantages, len(vantages) // 2 + 1))
    return infos


def status_of(
    info: CheckInfo,
    latest: Mapping[str, ProbeResult],
    incident: Incident | None,
    now: datetime,
    live: tuple[State, Mapping[str, Verdict] | None] | None = None,
) -> tuple[State, dict[str, State]]:
    """A check's state and the state of each of its regions."""
    confirmed_down = set(incident.vantages) if incident is not None else set()
    statuses: dict[str, Verdict] = {}
    for vantage in info.vantages:
        result = latest.get(vantage)
        verdict = Verdict.UNKNOWN
        if result is not None and result.ts >= now - info.stale_after():
            verdict = result.verdict
        if verdict is Verdict.DOWN and vantage not in confirmed_down:
            verdict = Verdict.UNKNOWN  # not confirmed: counts neither way
        statuses[vantage] = verdict
    if live is not None and live[1] is not None:
        statuses = {v: live[1].get(v, Verdict.UNKNOWN) for v in info.vantages}
    regions = {
        region: check_state({v: statuses[v] for v in vantages}, len(vantages))
        for region, vantages in info.regions.items()
    }
    if live is not None:
        return live[0], regions
    state = check_state(statuses, info.quorum)
    if incident is not None and state not in OUTAGES:
        state = incident.state  # still open: recovery not confirmed yet
    return state, regions


def load_overview(
    db: sqlite_utils.Database,
    now: datetime,
    config: Config | None = None,
    live: LiveStates | None = None,
    live_incidents: LiveIncidents | None = None,
    public: bool = True,
) -> Overview:
    """Every check's state now, from the newest results and open incidents (blocking: run off the loop).

    With a daemon's live view, a check it tracks shows the incident its tracker has open, even before
    the writer saved it (a locked database): a major outage never shows `incident: null`. For the
    `public`, hidden checks are left out and URLs concealed (`prober.web.public`).
    """
    rows = read.latest_results(db)
    if public and not show_urls(config):
        conceal = concealer(c.url for c in config.checks) if config is not None else concealer(())
        rows = [(conceal(r), first) for r, first in rows]
    latest = [r for r, _ in rows]
    first_seen: dict[str, datetime] = {}
    for result, first in rows:
        first_seen[result.check] = min(first_seen.get(result.check, first), first)
    by_check: dict[str, dict[str, ProbeResult]] = {}
    for result in latest:
        by_check.setdefault(result.check, {})[result.vantage] = result
    open_incidents = read.open_incidents(db)
    if live is not None and live_incidents is not None:
        open_incidents = with_live_incidents(open_incidents, live, live_incidents)
    incident_of: dict[str, Incident] = {}
    for incident in sorted(open_incidents, key=lambda i: i.started_at):
        incident_of.setdefault(incident.check, incident)
    checks = []
    for info in check_infos(config, latest, now, public):
        mine = by_check.get(info.name, {})
        opened = incident_of.get(info.name)
        state, regions = status_of(info, mine, opened, now, None if live is None else live.get(info.name))
        checks.append(CheckStatus(info, state, regions, mine, opened, first_seen.get(info.name)))
    shown = {c.name for c in checks}
    return Overview(
        now=now,
        checks=checks,
        state=blended([c.state for c in checks]),
        open_incidents=[i for i in open_incidents if i.check in shown],
    )


def with_live_incidents(
    stored: Sequence[Incident], live: LiveStates, live_incidents: LiveIncidents
) -> list[Incident]:
    """The open incidents: the daemon's for the checks whose live state it publishes, the database's
    for others; a live incident not saved yet takes its id from the row once the writer has one."""
    ids = {(i.check, i.started_at): i.id for i in stored}
    merged = [i for i in stored if i.check not in live]
    for check in live:
        incident = live_incidents.get(check)
        if incident is not None:
            merged.append(replace(incident, id=incident.id or ids.get((check, incident.started_at))))
    return merged


def empty_days(now: datetime, days: int = HISTORY_DAYS) -> list[history.DayStatus]:
    """An uptime bar without data."""
    today = now.date()
    span = [today - timedelta(days=days - 1 - i) for i in range(days)]
    return [history.DayStatus(d, State.UNKNOWN, Counts(), 0.0) for d in span]


class HistoryCache:
    """The history, read again at most every `ttl` seconds (past days and hours do not change).

    With a `refresh` function (which runs a job in a reader thread), an expired history is still
    served while a fresh one is read in the background: only the first answer made after a start,
    or after midnight UTC, waits for the rollups. A `ttl` of 0 reads them for every snapshot.
    """

    def __init__(
        self, ttl: float, refresh: Callable[[Callable[[sqlite_utils.Database], None]], None] | None = None
    ) -> None:
        self.ttl = ttl
        self.refresh = refresh
        self._lock = threading.Lock()  # guards the swap; History.load serializes the reads of a part
        self._value: History | None = None
        self._at = 0.0
        self._refreshing = False

    def get(self, db: sqlite_utils.Database, now: datetime, parts: Sequence[str] = ALL_PARTS) -> History:
        """The cached history with `parts` read (blocking)."""
        with self._lock:
            value = self._value
            expired = value is None or time.monotonic() - self._at >= self.ttl
            if (
                value is None
                or self.ttl <= 0
                or value.now.date() != now.date()
                or (expired and not self.refresh)
            ):
                value = self._value = History(now)
                self._at = time.monotonic()
            elif expired and not self._refreshing and self.refresh is not None:
                self._refreshing = True
                self.refresh(partial(self._rebuild, names=tuple(value.parts)))
        return value.load(db, *parts)

    def _rebuild(self, db: sqlite_utils.Database, names: tuple[str, ...]) -> None:
        """Read a fresh history with the parts the current one has, then swap it in (a reader thread)."""
        fresh = None
        try:
            fresh = History(datetime.now(UTC)).load(db, *names)
        finally:
            with self._lock:
                if fresh is not None:
                    self._value, self._at = fresh, time.monotonic()
                self._refreshing = False
