"""Claimed vs measured: for a measured incident, what the official page said, and when it admitted it.

`finding` is pure over spans of the claims table; `finding_for` and `findings_for` read the table
first. Precision: a claim is known at each poll and holds until the next, so `acknowledged_at` is
at most one poll interval after the page really changed, and the measured start is at most one probe
interval before the outage really began: a lag is exact to within one poll plus one probe interval.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlite_utils

from prober.claims.parse import ClaimStatus
from prober.claims.record import Link, Span, links, rows, spans
from prober.model import Incident, iso

# A page that admits the outage after it ended, with an incident dated from before the end, still
# admitted it (a post-incident report), if it did so within this long.
ACK_AFTER_END = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class ClaimFinding:
    """The `claim` object of an incident's JSON (DESIGN)."""

    source: str
    component: str | None  # None: the page's overall status
    status_at_start: ClaimStatus
    said_at_start: str | None  # the page's own words then, if it had any ("All Systems Operational")
    acknowledged_at: datetime | None  # the poll that first saw the page admit a problem, after the start
    official_incident: str | None  # the official incident it named then, if any
    official_created_at: datetime | None  # ... and when that incident says it was created (pages backdate)
    acknowledgement_lag_s: float | None  # None while it never did
    silent_s: float  # seconds of the measured outage it claimed operational
    unknown_s: float  # seconds of the measured outage when prober could not read it

    def to_json(self) -> dict[str, Any]:
        """The JSON object."""
        return {
            "source": self.source,
            "component": self.component,
            "status_at_start": str(self.status_at_start),
            "said_at_start": self.said_at_start,
            "acknowledged_at": None if self.acknowledged_at is None else iso(self.acknowledged_at),
            "official_incident": self.official_incident,
            "official_created_at": None
            if self.official_created_at is None
            else iso(self.official_created_at),
            "acknowledgement_lag_s": _round(self.acknowledgement_lag_s),
            "silent_s": _round(self.silent_s),
            "unknown_s": _round(self.unknown_s),
        }


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 3)


def _overlap(span: Span, start: datetime, end: datetime) -> float:
    return max(0.0, (min(span.end, end) - max(span.start, start)).total_seconds())


def _during(span: Span, ended_at: datetime) -> bool:
    """Whether an admission speaks of an outage that ended at `ended_at`: it began before the end, or it
    is an official incident the page dates from before the end (a post-incident report)."""
    created = span.claim.incident_created_at
    return span.start < ended_at or (created is not None and created < ended_at)


def finding(link: Link, series: Sequence[Span], started_at: datetime, ended_at: datetime) -> ClaimFinding:
    """What `series` (one component's spans) says over a measured outage [started_at, ended_at).

    `ended_at` is the incident's resolution, or now while it is open; the search for an admission
    goes on for ACK_AFTER_END past a resolution.
    """
    at_start = next((s for s in series if s.start <= started_at < s.end), None)
    silent = unknown = 0.0
    for s in series:
        if s.claim.admits:
            continue
        if s.claim.status is ClaimStatus.OPERATIONAL:
            silent += _overlap(s, started_at, ended_at)
        else:
            unknown += _overlap(s, started_at, ended_at)
    ack = next((s for s in series if s.claim.admits and s.end > started_at and _during(s, ended_at)), None)
    ack_at = None if ack is None else ack.seen_at
    return ClaimFinding(
        source=link.source,
        component=link.component or None,
        status_at_start=ClaimStatus.UNKNOWN if at_start is None else at_start.claim.status,
        said_at_start=None if at_start is None else at_start.claim.description,
        acknowledged_at=ack_at,
        official_incident=None if ack is None else ack.claim.incident,
        official_created_at=None if ack is None else ack.claim.incident_created_at,
        acknowledgement_lag_s=None if ack_at is None else max(0.0, (ack_at - started_at).total_seconds()),
        silent_s=silent,
        unknown_s=unknown,
    )


def finding_for(db: sqlite_utils.Database, incident: Incident, link: Link, now: datetime) -> ClaimFinding:
    """The finding of one incident of a check linked to `link`, read from the claims table."""
    end = incident.resolved_at or now
    horizon = min(now, end + ACK_AFTER_END) if incident.resolved_at is not None else now
    series = spans(rows(db, link.source, link.component, incident.started_at, horizon), horizon)
    return finding(link, series, incident.started_at, end)


def findings_for(
    db: sqlite_utils.Database,
    incidents: Iterable[Incident],
    now: datetime,
    known: Mapping[str, Link] | None = None,
) -> dict[tuple[str, datetime], ClaimFinding]:
    """(check, started_at) -> finding, for the incidents of checks that have a claim."""
    known = links(db) if known is None else known
    return {
        (i.check, i.started_at): finding_for(db, i, known[i.check], now)
        for i in incidents
        if i.check in known
    }


def incident_json(db: sqlite_utils.Database, incident: Incident, now: datetime) -> dict[str, Any]:
    """An incident's JSON with its `claim` object (null when its check has no claim): for alerts too."""
    found = findings_for(db, [incident], now).get((incident.check, incident.started_at))
    return {**incident.to_json(now), "claim": None if found is None else found.to_json()}


@dataclass(frozen=True, slots=True)
class Unmeasured:
    """An official incident over a time when no linked check had a measured outage."""

    source: str
    name: str
    created_at: datetime | None
    seen_from: datetime
    seen_until: datetime


def unmeasured(
    db: sqlite_utils.Database, source: str, incidents: Sequence[Incident], since: datetime, until: datetime
) -> list[Unmeasured]:
    """Official incidents listed in [since, until) that overlap no measured outage in `incidents`."""
    open_at: dict[tuple[str, datetime | None], list[Span]] = {}
    for s in spans(rows(db, source, "", since, until), until):
        if s.claim.incident is not None:
            open_at.setdefault((s.claim.incident, s.claim.incident_created_at), []).append(s)
    out = []
    for (name, created), seen in open_at.items():
        first, last = min(s.start for s in seen), max(s.end for s in seen)
        if not any(i.started_at < last and (i.resolved_at or until) > first for i in incidents):
            out.append(Unmeasured(source, name, created, first, last))
    return sorted(out, key=lambda u: u.seen_from)


def median_and_worst(lags: Sequence[float]) -> tuple[float | None, float | None]:
    """The median and the largest of some lags; (None, None) without any."""
    return (statistics.median(lags), max(lags)) if lags else (None, None)
