"""Pure: what an official status page says, read from its summary.json or its RSS or Atom feed.

Nothing here does I/O or reads the clock: a poll's bytes and time go in, a `Reading` comes out, or
`SourceError` says why the answer cannot be read. A hostile answer (not JSON, the wrong shapes,
nesting deep enough to exhaust the parser) is a `SourceError`, never another exception.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from prober.model import ProberError, parse_iso


class ClaimStatus(StrEnum):
    """What an official page says of a component, in Statuspage's words, as stored in `claims.status`."""

    OPERATIONAL = "operational"
    DEGRADED_PERFORMANCE = "degraded_performance"
    PARTIAL_OUTAGE = "partial_outage"
    MAJOR_OUTAGE = "major_outage"
    UNDER_MAINTENANCE = "under_maintenance"
    UNKNOWN = "unknown"


# Statuspage's overall indicator, in the words of its components.
_INDICATOR = {
    "none": ClaimStatus.OPERATIONAL,
    "minor": ClaimStatus.DEGRADED_PERFORMANCE,
    "major": ClaimStatus.PARTIAL_OUTAGE,
    "critical": ClaimStatus.MAJOR_OUTAGE,
    "maintenance": ClaimStatus.UNDER_MAINTENANCE,
}
_SEVERITY = [
    ClaimStatus.OPERATIONAL,
    ClaimStatus.UNDER_MAINTENANCE,
    ClaimStatus.DEGRADED_PERFORMANCE,
    ClaimStatus.PARTIAL_OUTAGE,
    ClaimStatus.MAJOR_OUTAGE,
]
_CLOSED = frozenset({"resolved", "postmortem", "completed"})
# A feed entry says its incident is over: "Resolved", "[RESOLVED]", AWS's "Service is operating normally".
RESOLVED = re.compile(r"\bresolved\b|\boperating normally\b|\bcompleted\b", re.IGNORECASE)
_MAINTENANCE = re.compile(r"\bmaintenance\b", re.IGNORECASE)
_RESOLVED_PREFIX = re.compile(r"^\s*(?:\[?resolved\]?\s*[:-]?\s*)+", re.IGNORECASE)
_TAGS = re.compile(r"<[^>]*>")
MAX_NAME = 300  # characters of a component or incident name kept


class SourceError(ProberError):
    """A source's answer cannot be read as what its `format` says it is."""


@dataclass(frozen=True, slots=True)
class OfficialIncident:
    """An incident the official page lists as not resolved."""

    name: str
    created_at: datetime | None
    components: tuple[str, ...] = ()  # the components it names; () names none, so counts for all

    def names(self, component: str) -> bool:
        """Whether it counts for `component`: it names it, or names none."""
        return not self.components or component.casefold() in {c.casefold() for c in self.components}


@dataclass(frozen=True, slots=True)
class Reading:
    """One poll's answer: the overall status, each component's, and the open official incidents."""

    overall: ClaimStatus
    description: str | None = None  # the page's own words, like "All Systems Operational"
    components: Mapping[str, ClaimStatus] = field(default_factory=dict)
    incidents: tuple[OfficialIncident, ...] = ()
    lists_components: bool = True  # False for feeds: they have no list of components to check names against


@dataclass(frozen=True, slots=True)
class Claim:
    """What a source says of one component ("" the overall status) at one poll: a `claims` row."""

    component: str
    status: ClaimStatus
    description: str | None = None
    incident: str | None = None
    incident_created_at: datetime | None = None
    reason: str | None = None  # why it is unknown

    @property
    def admits(self) -> bool:
        """Whether it admits a problem: a status other than operational and unknown, or an incident."""
        return self.incident is not None or self.status not in (ClaimStatus.OPERATIONAL, ClaimStatus.UNKNOWN)


def claims_of(reading: Reading, components: Iterable[str]) -> list[Claim]:
    """The claims of a reading: the overall one, every listed component's, and each of `components`."""
    wanted = dict.fromkeys(["", *reading.components, *components])
    listed = {name.casefold(): status for name, status in reading.components.items()}
    out = []
    for name in wanted:
        incident = next((i for i in reading.incidents if not name or i.names(name)), None)
        if not name:
            status, description = reading.overall, reading.description
        elif name.casefold() in listed:
            status, description = listed[name.casefold()], None
        elif not reading.lists_components:  # a feed: its incidents are all it says
            status, description = ClaimStatus.OPERATIONAL, None
            if incident is not None:
                maintenance = _MAINTENANCE.search(incident.name)
                status = ClaimStatus.UNDER_MAINTENANCE if maintenance else ClaimStatus.PARTIAL_OUTAGE
        else:
            out.append(Claim(name, ClaimStatus.UNKNOWN, reason="the source does not list this component"))
            continue
        out.append(
            Claim(
                name, status, description,
                incident=None if incident is None else incident.name,
                incident_created_at=None if incident is None else incident.created_at,
            )
        )  # fmt: skip
    return out


def unknown_claims(components: Iterable[str], reason: str) -> list[Claim]:
    """Every claim unknown, for `reason` (the source could not be reached or read)."""
    return [Claim(name, ClaimStatus.UNKNOWN, reason=reason) for name in dict.fromkeys(["", *components])]


# -- Statuspage v2 summary.json --------------------------------------------------------------------


def read_statuspage(body: bytes) -> Reading:
    """A Statuspage v2 summary.json (or status.json): components, indicator, unresolved incidents."""
    try:
        data = json.loads(body)
    except RecursionError:
        raise SourceError("the JSON is nested too deeply") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise SourceError(f"not JSON: {str(exc)[:120]}") from None
    if not isinstance(data, dict):
        raise SourceError("not a Statuspage summary: the JSON is not an object")
    components: dict[str, ClaimStatus] = {}
    for item in _list(data, "components"):
        name, status = _text(item.get("name")), item.get("status")
        if name and isinstance(status, str) and status in ClaimStatus.__members__.values():
            components[name] = ClaimStatus(status)
    status = data.get("status")
    indicator = status.get("indicator") if isinstance(status, dict) else None
    description = _text(status.get("description")) if isinstance(status, dict) else None
    if isinstance(indicator, str) and indicator in _INDICATOR:
        overall = _INDICATOR[indicator]
    elif components:  # no indicator: the worst component speaks for the page
        overall = max(components.values(), key=lambda s: _SEVERITY.index(s) if s in _SEVERITY else -1)
    else:
        raise SourceError("not a Statuspage summary: neither status.indicator nor components")
    incidents = []
    for item in _list(data, "incidents"):
        if str(item.get("status", "")).lower() in _CLOSED:
            continue
        named = [_text(c.get("name")) for c in _objects(item.get("components"))]
        for update in _objects(item.get("incident_updates")):
            named += [_text(c.get("name")) for c in _objects(update.get("affected_components"))]
        incidents.append(
            OfficialIncident(
                name=_text(item.get("name")) or "(unnamed incident)",
                created_at=_time(item.get("created_at")),
                components=tuple(dict.fromkeys(n for n in named if n)),
            )
        )
    incidents.sort(key=lambda i: i.created_at or datetime.min.replace(tzinfo=UTC))
    return Reading(overall, description, components, tuple(incidents))


def _list(data: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    value = data.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise SourceError(f"not a Statuspage summary: {key} is not a list")
    return _objects(value)


def _objects(value: Any) -> list[Mapping[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _text(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    text = " ".join(value.split())[:MAX_NAME]
    return text or None


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return parse_iso(value).astimezone(UTC)
    except ValueError:
        return None


# -- RSS and Atom incident feeds -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Entry:
    key: str
    title: str
    at: datetime | None
    resolved: bool
    categories: tuple[str, ...]
    created: datetime | None  # its `published` time, else `at`


def read_feed(body: bytes, now: datetime, open_for: float) -> Reading:
    """An RSS or Atom incident feed: each incident open until an entry says resolved, or `open_for` passed."""
    import feedparser  # only sources of this format need it

    try:
        parsed = feedparser.parse(bytes(body), sanitize_html=False, resolve_relative_uris=False)
    except RecursionError:
        raise SourceError("the feed is nested too deeply") from None
    except Exception as exc:  # feedparser's own failures are many and undocumented: the answer's fault
        raise SourceError(f"not a feed: {type(exc).__name__}") from None
    version = getattr(parsed, "version", "")
    if not version:
        why = getattr(parsed, "bozo_exception", None)
        raise SourceError(f"not an RSS or Atom feed{f': {str(why)[:120]}' if why else ''}")
    latest: dict[str, _Entry] = {}  # an incident's entries share an id (Statuspage, Google Cloud)
    created: dict[str, datetime] = {}  # ... and it was created when the first of them was published
    for raw in parsed.entries:
        entry = _entry(raw)
        if entry is None:
            continue
        seen = latest.get(entry.key)
        if seen is None or (entry.at or now) >= (seen.at or now):
            latest[entry.key] = entry
        if entry.created is not None:
            created[entry.key] = min(entry.created, created.get(entry.key, entry.created))
    # Feeds that post each update as a new entry say "RESOLVED: <the same title>" in the last one.
    resolved_at: dict[str, datetime] = {}
    for e in latest.values():
        if e.resolved:
            resolved_at[e.title.casefold()] = max(
                e.at or now, resolved_at.get(e.title.casefold(), e.at or now)
            )
    horizon = now - timedelta(seconds=open_for)
    incidents = [
        OfficialIncident(e.title, created.get(e.key, e.at), e.categories)
        for e in latest.values()
        if not e.resolved
        and (e.at is None or horizon <= e.at <= now + timedelta(days=1))
        and resolved_at.get(e.title.casefold(), datetime.min.replace(tzinfo=UTC)) < (e.at or now)
    ]
    incidents.sort(key=lambda i: i.created_at or now)
    overall = ClaimStatus.OPERATIONAL
    if incidents:
        maintenance = all(_MAINTENANCE.search(i.name) for i in incidents)
        overall = ClaimStatus.UNDER_MAINTENANCE if maintenance else ClaimStatus.PARTIAL_OUTAGE
    return Reading(overall, None, {}, tuple(incidents), lists_components=False)


def _entry(raw: dict[str, Any]) -> _Entry | None:
    title = _text(raw.get("title")) or ""
    summary = _TAGS.sub(" ", str(raw.get("summary") or ""))
    # Statuspage's feeds put every update in the description, newest first: the first words say where
    # the incident is now ("Resolved - This incident has been resolved.").
    head = " ".join(summary.split())[:200]
    plain = _RESOLVED_PREFIX.sub("", title).strip() or title
    key = str(raw.get("id") or "") or plain.casefold()
    if not key:
        return None
    # dict.get: feedparser's own get() warns when it falls back from one key to the other.
    updated, published = dict.get(raw, "updated_parsed"), dict.get(raw, "published_parsed")
    at = _struct_time(updated or published)
    tags: Sequence[Any] = raw.get("tags") or ()
    categories = tuple(t for t in (_text(tag.get("term")) for tag in tags if isinstance(tag, dict)) if t)
    resolved = bool(RESOLVED.search(title) or RESOLVED.search(head))
    return _Entry(key, plain[:MAX_NAME], at, resolved, categories, _struct_time(published) or at)


def _struct_time(value: Any) -> datetime | None:
    """feedparser's UTC time.struct_time as a datetime; None when absent or out of range."""
    try:
        return datetime(*value[:6]).replace(tzinfo=UTC) if value else None
    except (TypeError, ValueError, OverflowError):
        return None
