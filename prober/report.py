"""`prober report`: availability by check, surface, region and vantage; incidents; history and MTTR.

The computation is pure: it takes the rows the store's queries return (`collect` is the only part
that reads the database) and the clock as arguments, so it is tested with tables. `--since` and
`--until` are parsed here (`parse_when`) for the command line and the web layer alike.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlite_utils
from tabulate import tabulate

from prober.config import Config
from prober.model import Counts, Incident, iso
from prober.state import Policy, rebuild_incidents
from prober.store import read, replace_incidents
from prober.terminal import span, when

# A relative time needs a unit: a bare number could be a year or a count of seconds. Digits are
# ASCII only ("[0-9]", never "\d", which takes "²" and "٣" that int() and float() refuse or misread).
_NUMBER = r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)"
_RELATIVE = re.compile(rf"(?:{_NUMBER}(?:ms|s|m|h|d))+")
_RELATIVE_PART = re.compile(rf"({_NUMBER})(ms|s|m|h|d)")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
# What `datetime.fromisoformat` gets: a date, maybe a time, maybe an offset; nothing else it takes.
_ISO = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}"
    r"(?:[Tt ][0-9]{2}(?::[0-9]{2}(?::[0-9]{2}(?:[.,][0-9]{1,9})?)?)?(?:[Zz]|[+-][0-9]{2}(?::?[0-9]{2})?)?)?"
)
MAX_WHEN_CHARS = 64  # longer text is no time: refused before any parsing
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
# Far from datetime's year 9999, so that a window's default length, or rounding to whole hours and
# days for the rollups, never leaves what datetime (and the ISO text SQLite compares) can hold.
LATEST = datetime(9000, 1, 1, tzinfo=UTC)
_WHEN_HINT = (
    "write a duration back from now (90m, 24h, 7d, 1h30m), an ISO date or time in UTC unless it has "
    "an offset (2022-12-28, 2022-12-28T13:50, 2022-12-28T13:50:00+01:00), or now"
)
_RANGE = f"times run from {EARLIEST:%Y-%m-%d} to {LATEST:%Y-%m-%d} UTC"
# More regions than this and the per-region columns are left to the table by region.
MAX_REGION_COLUMNS = 6


def parse_when(text: str, now: datetime) -> datetime:
    """A point in time from "24h" (that long before `now`), "now", or an ISO date or time (UTC if naive).

    The one parser of --since/--until and of the API's since/until: ASCII only, bounded to
    [EARLIEST, LATEST); anything else is a ValueError that says what to write.
    """
    value = text.strip()
    if value.lower() == "now":
        return now
    if len(value) <= MAX_WHEN_CHARS and _RELATIVE.fullmatch(value):
        seconds = sum(float(n) * _UNITS[unit] for n, unit in _RELATIVE_PART.findall(value))
        if seconds > (now - EARLIEST).total_seconds():
            raise ValueError(f"{text!r} reaches back before {EARLIEST:%Y-%m-%d}: {_RANGE}")
        return now - timedelta(seconds=seconds)
    return parse_time(text)


def parse_time(text: str) -> datetime:
    """An ISO 8601 date or time (UTC if naive), in UTC, within [EARLIEST, LATEST); ValueError if not."""
    value = text.strip()
    if len(value) > MAX_WHEN_CHARS or not _ISO.fullmatch(value):
        raise ValueError(f"{text!r} is not a time: {_WHEN_HINT}")
    try:
        ts = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
        # An offset can carry a time past year 9999 (9999-12-31T23:59:59-14:00): OverflowError.
        ts = ts.astimezone(UTC) if ts.tzinfo else ts.replace(tzinfo=UTC)
    except ValueError:
        raise ValueError(f"{text!r} is not a time: {_WHEN_HINT}") from None
    except OverflowError:
        raise ValueError(f"{text!r} is out of range: {_RANGE}") from None
    if not EARLIEST <= ts < LATEST:
        raise ValueError(f"{text!r} is out of range: {_RANGE}")
    return ts


# -- availability ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Group:
    """The results of one check, surface, region and vantage over the window."""

    check: str
    surface: str
    region: str
    vantage: str
    counts: Counts

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Group:
        """A group from a `read.verdict_counts` row."""
        return cls(
            row["check_name"],
            row["surface"] or "",
            row["region"] or "",
            row["vantage"],
            Counts(int(row["up"]), int(row["degraded"]), int(row["down"]), int(row["unknown"])),
        )


@dataclass(frozen=True, slots=True)
class Line:
    """One line of an availability table: its key, its counts, and the same split by region."""

    key: tuple[str, ...]
    counts: Counts
    regions: dict[str, Counts]


def summarize(groups: Iterable[Group], key: Callable[[Group], tuple[str, ...]]) -> list[Line]:
    """Add up `groups` by `key` (e.g. by check, by surface), each also split by region; sorted by key."""
    totals: dict[tuple[str, ...], Counts] = {}
    regions: dict[tuple[str, ...], dict[str, Counts]] = {}
    for group in groups:
        k = key(group)
        totals[k] = totals.get(k, Counts()) + group.counts
        split = regions.setdefault(k, {})
        split[group.region] = split.get(group.region, Counts()) + group.counts
    return [Line(k, totals[k], dict(sorted(regions[k].items()))) for k in sorted(totals)]


def surfaces_of(groups: Iterable[Group]) -> dict[str, str]:
    """The surface of each check: the one most of its results were recorded with."""
    seen: dict[str, dict[str, int]] = {}
    for group in groups:
        by_surface = seen.setdefault(group.check, {})
        by_surface[group.surface] = by_surface.get(group.surface, 0) + group.counts.probes
    return {check: max(counts, key=lambda s: counts[s]) for check, counts in seen.items()}


# -- incidents -------------------------------------------------------------------------------------


def duration(incident: Incident, now: datetime) -> timedelta:
    """How long an incident lasted, from its first down result to its recovery (or `now` if open)."""
    return incident.duration(now)


def mean_time_to_recovery(incidents: Iterable[Incident]) -> timedelta | None:
    """The mean duration of the resolved incidents among `incidents`; None if none resolved."""
    spans = [i.resolved_at - i.started_at for i in incidents if i.resolved_at is not None]
    return sum(spans, timedelta(0)) / len(spans) if spans else None


def mean_time_to_detect(incidents: Iterable[Incident]) -> timedelta | None:
    """The mean time from the first down result to the incident's confirmation; None without incidents."""
    spans = [i.detected_at - i.started_at for i in incidents]
    return sum(spans, timedelta(0)) / len(spans) if spans else None


# -- the report ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Report:
    """Everything `prober report` shows, for one window."""

    since: datetime
    until: datetime
    now: datetime
    groups: tuple[Group, ...]
    incidents: tuple[Incident, ...]  # overlapping the window, oldest first
    longest: Mapping[str, Incident]  # check -> its longest incident, whole history
    incident_counts: Mapping[str, int]  # check -> how many incidents it had, whole history
    history: Mapping[str, datetime]  # check -> when its history starts (oldest result or incident)
    check: str | None = None
    surfaces: Mapping[str, str] = field(default_factory=dict)  # check -> surface
    maintenance: tuple[Mapping[str, Any], ...] = ()  # spans of maintenance windows, left out of availability

    @property
    def regions(self) -> list[str]:
        """The regions with results in the window."""
        return sorted({g.region for g in self.groups})

    def by_check(self) -> list[Line]:
        """Availability of each check (key: check, surface)."""
        return summarize(self.groups, lambda g: (g.check, self.surfaces.get(g.check, g.surface)))

    def by_surface(self) -> list[Line]:
        """Availability of each surface, across its checks."""
        return summarize(self.groups, lambda g: (g.surface,))

    def by_region(self) -> list[Line]:
        """Availability seen from each region, across checks."""
        return summarize(self.groups, lambda g: (g.region,))

    def by_vantage(self) -> list[Line]:
        """Availability seen from each vantage (key: vantage, region), across checks."""
        return summarize(self.groups, lambda g: (g.vantage, g.region))

    def total(self) -> Counts:
        """Every result in the window."""
        return sum((g.counts for g in self.groups), Counts())

    def is_longest(self, incident: Incident) -> bool:
        """Whether `incident` is the longest of the several its check ever had."""
        longest = self.longest.get(incident.check)
        if longest is None or self.incident_counts.get(incident.check, 0) < 2:
            return False
        same = longest.id == incident.id if longest.id is not None else longest == incident
        return same and duration(incident, self.now) > timedelta(0)


def build(
    groups: Iterable[Mapping[str, Any]],
    incidents: Iterable[Incident],
    longest: Iterable[tuple[Incident, int]],
    first_results: Mapping[str, datetime],
    since: datetime,
    until: datetime,
    now: datetime,
    check: str | None = None,
) -> Report:
    """A report from the rows of the store's queries (pure)."""
    parsed = tuple(Group.from_row(row) for row in groups)
    longest_by_check = {i.check: i for i, _ in longest}
    counts = {i.check: n for i, n in longest}
    history = dict(first_results)
    for incident in longest_by_check.values():  # results may have aged out while incidents stay
        start = history.get(incident.check)
        history[incident.check] = incident.started_at if start is None else min(start, incident.started_at)
    return Report(
        since=since,
        until=until,
        now=now,
        groups=parsed,
        incidents=tuple(incidents),
        longest=longest_by_check,
        incident_counts=counts,
        history=history,
        check=check,
        surfaces=surfaces_of(parsed),
    )


def collect(
    db: sqlite_utils.Database, since: datetime, until: datetime, now: datetime, check: str | None = None
) -> Report:
    """Read what a report needs from the database and build it."""
    from prober.maintenance.report import windows_in  # loaded only here: the core does without it

    windows = windows_in(db, since, until, check)
    groups = read.verdict_counts(db, since, until, check, exclude=windows)
    found = read.incidents(db, since, until, check)
    longest = read.longest_incidents(db, now, check)
    checks = {row["check_name"] for row in groups} | {i.check for i in found} | {i.check for i, _ in longest}
    first = read.first_result_times(db, sorted(checks))
    return replace(build(groups, found, longest, first, since, until, now, check), maintenance=windows)


# -- rebuilding incidents from results ---------------------------------------------------------------


def policies(config: Config, checks: Sequence[str] = ()) -> dict[str, tuple[dict[str, str], Policy]]:
    """check -> (vantage -> region, policy) for the checks of `config` (all, or only `checks`)."""
    return {
        c.name: (
            {name: config.vantages[name].region for name in c.vantages},
            Policy(confirm=c.confirm, recover=c.recover, quorum=c.quorum),
        )
        for c in config.checks
        if not checks or c.name in checks
    }


def rebuild(db: sqlite_utils.Database, config: Config, checks: Sequence[str] = ()) -> dict[str, int]:
    """Replay the results of the configured checks and replace their incidents (run in the writer thread).

    Returns counts: results replayed, incidents rebuilt, how many kept their id, are new, were removed.
    """
    trackers = policies(config, checks)
    rebuilt: list[Incident] = []
    replayed = 0
    from prober.maintenance import Calendar  # loaded only here: the core does without it

    calendar = Calendar(config)  # incidents that opened in a maintenance window are marked again
    for name, setup in trackers.items():  # one check at a time: memory stays bounded by one check
        results = list(read.check_results(db, name))
        replayed += len(results)
        rebuilt.extend(calendar.mark(i) for i in rebuild_incidents(results, {name: setup}))
    changes = replace_incidents(db, trackers, sorted(rebuilt, key=lambda i: (i.started_at, i.check)))
    return {"results": replayed, "incidents": len(rebuilt), "checks": len(trackers), **changes}


# -- formatting ----------------------------------------------------------------------------------------


def percent(counts: Counts) -> str:
    """Availability as text: "100%" only when nothing was down, never rounded up to it."""
    value = counts.availability
    if value is None:
        return "-"
    if counts.down == 0:
        return "100%"
    text = f"{value * 100:.2f}"
    return ">99.99%" if text == "100.00" else f"{text}%"


def cause(incident: Incident) -> str:
    """The dominant reason, with its signature: "error_page (x-dont-fret)"."""
    reason = str(incident.reason) if incident.reason is not None else "-"
    return f"{reason} ({incident.signature})" if incident.signature else reason


def availability_table(lines: Sequence[Line], headers: Sequence[str], regions: Sequence[str]) -> str:
    """An availability table: the key columns, overall, one column per region, then the counts."""
    split = 1 < len(regions) <= MAX_REGION_COLUMNS
    rows = []
    for line in lines:
        per_region = [percent(line.regions.get(r, Counts())) for r in regions] if split else []
        c = line.counts
        rows.append([*line.key, percent(c), *per_region, c.probes, c.down, c.degraded, c.unknown])
    region_headers = list(regions) if split else []
    head = [*headers, "availability", *region_headers, "probes", "down", "degraded", "unknown"]
    return tabulate(rows, headers=head, disable_numparse=True, colalign=_align(len(headers), len(head)))


def _align(keys: int, total: int) -> tuple[str, ...]:
    return ("left",) * keys + ("right",) * (total - keys)


def incidents_table(report: Report) -> str:
    """The incidents of the window: when, how long, how bad, where, why."""
    rows = []
    for i in report.incidents:
        length = span(duration(i, report.now))
        if i.resolved_at is None:
            length += " (ongoing)"
        elif report.is_longest(i):
            length += " *"
        rows.append([
            "" if i.id is None else i.id, i.check, report.surfaces.get(i.check, ""), i.state,
            ", ".join(i.regions) or "-", when(i.started_at), "+" + span(i.detected_at - i.started_at),
            when(i.resolved_at) if i.resolved_at is not None else "open", length, cause(i),
        ])  # fmt: skip
    head = ["id", "check", "surface", "worst state", "regions", "started", "detected", "resolved",
            "duration", "cause"]  # fmt: skip
    return tabulate(rows, headers=head, disable_numparse=True)


def longest_table(report: Report) -> str:
    """The longest incident of each check, with the date its history starts."""
    rows = []
    for check, i in sorted(report.longest.items()):
        ongoing = " (ongoing)" if i.resolved_at is None else ""
        rows.append([check, span(duration(i, report.now)) + ongoing, report.incident_counts.get(check, 1),
                     when(i.started_at), i.state, ", ".join(i.regions) or "-", cause(i),
                     when(report.history.get(check))])  # fmt: skip
    head = ["check", "longest", "incidents", "started", "worst state", "regions", "cause", "history since"]
    return tabulate(rows, headers=head, disable_numparse=True)


def format_text(report: Report, source: str | None = None) -> str:
    """The readable report: availability tables, incidents, longest incidents, MTTR."""
    length = span(report.until - report.since)
    title = f"Report {when(report.since)} to {when(report.until)} ({length})"
    if report.check:
        title += f", check {report.check}"
    if source:
        title += f", from {source}"
    out = [title, ""]
    if not report.groups:
        out += ["No results in this window.", ""]
    else:
        regions = report.regions
        total = report.total()
        out += [f"All checks: {percent(total)} available over {total.judged} probes"
                f" ({total.unknown} unknown, which do not count)", ""]  # fmt: skip
        if report.maintenance:
            out[-1:] = ["Results inside maintenance windows are left out.", ""]
        out += ["By check", availability_table(report.by_check(), ["check", "surface"], regions), ""]
        if not report.check:
            out += ["By surface", availability_table(report.by_surface(), ["surface"], regions), ""]
        out += ["By region", availability_table(report.by_region(), ["region"], []), ""]
        out += ["By vantage", availability_table(report.by_vantage(), ["vantage", "region"], []), ""]
    if report.incidents:
        out += [f"Incidents ({len(report.incidents)})", incidents_table(report)]
        if any(report.is_longest(i) for i in report.incidents if i.resolved_at is not None):
            out.append("* the longest incident of its check on record")
        out.append("")
        mttr = mean_time_to_recovery(report.incidents)
        resolved = sum(1 for i in report.incidents if i.resolved_at is not None)
        plural = "" if resolved == 1 else "s"
        out += [f"Mean time to recovery: {span(mttr)} over {resolved} resolved incident{plural}; "
                f"mean time to detect: {span(mean_time_to_detect(report.incidents))}", ""]  # fmt: skip
    else:
        out += ["No incidents in this window.", ""]
    if report.longest:
        out += ["Longest incident of each check, whole history", longest_table(report), ""]
    if report.maintenance:
        from prober.maintenance.report import windows_table  # only a report with windows loads it

        out += [f"Maintenance windows ({len(report.maintenance)})", windows_table(report.maintenance), ""]
    return "\n".join(out).rstrip() + "\n"


def counts_json(counts: Counts) -> dict[str, Any]:
    """Counts and availability (a fraction, or null) for `--json`."""
    return {"availability": counts.availability, **counts.to_json()}


def incident_json(incident: Incident, report: Report) -> dict[str, Any]:
    """An incident for `--json`: the stored fields, its duration in seconds and whether it is ongoing."""
    return {
        **incident.to_json(report.now),
        "surface": report.surfaces.get(incident.check),
        "longest_on_record": report.is_longest(incident),
    }


def _seconds(delta: timedelta | None) -> float | None:
    return None if delta is None else round(delta.total_seconds(), 3)


def to_json(report: Report) -> dict[str, Any]:
    """The report as JSON for scripts: availability as fractions (null without data), times in ISO UTC."""
    from prober.maintenance.report import windows_json  # the core does without it

    def lines(items: Sequence[Line], names: Sequence[str]) -> list[dict[str, Any]]:
        out = []
        for line in items:
            entry: dict[str, Any] = dict(zip(names, line.key, strict=True))
            entry.update(counts_json(line.counts))
            if "region" not in names:
                entry["regions"] = {r: c.availability for r, c in line.regions.items()}
            out.append(entry)
        return out

    by_check_mttr = {}
    for name in sorted({i.check for i in report.incidents}):
        by_check_mttr[name] = _seconds(mean_time_to_recovery(i for i in report.incidents if i.check == name))
    return {
        "since": iso(report.since),
        "until": iso(report.until),
        "generated_at": iso(report.now),
        "check": report.check,
        "availability": {
            "total": counts_json(report.total()),
            "checks": lines(report.by_check(), ["check", "surface"]),
            "surfaces": lines(report.by_surface(), ["surface"]),
            "regions": lines(report.by_region(), ["region"]),
            "vantages": lines(report.by_vantage(), ["vantage", "region"]),
            "excludes": "results inside maintenance windows",
        },
        "incidents": [incident_json(i, report) for i in report.incidents],
        "mttr_s": _seconds(mean_time_to_recovery(report.incidents)),
        "mttr_by_check_s": by_check_mttr,
        "mttd_s": _seconds(mean_time_to_detect(report.incidents)),
        "maintenance": [windows_json(s) for s in report.maintenance],
        "longest": [
            {
                **incident_json(i, report),
                "incidents_of_check": report.incident_counts.get(c, 1),
                "history_since": iso(report.history[c]) if c in report.history else None,
            }
            for c, i in sorted(report.longest.items())
        ],
    }


__all__ = [
    "Counts",
    "Report",
    "build",
    "collect",
    "format_text",
    "parse_when",
    "rebuild",
    "to_json",
]
