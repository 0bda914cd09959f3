"""The shapes of the Atlassian Statuspage public API (v2), so existing widgets read prober.

Components are checks, grouped by surface into component groups; incidents are prober's incidents,
their `incident_updates` the operators' notes between what prober measured (detection, recovery).
The vocabulary maps one to one, except `unknown` (no recent result), which Statuspage lacks: such a
component says operational, as a Statuspage component does before anyone has set its status (a
widget would otherwise show an outage nobody measured), with "No recent results" as its description
and prober's own state in `prober_state`; a page whose every check is unknown has the indicator
none, described "Status Unknown".
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

from prober.model import Incident, State, iso
from prober.notes import Note, incident_status
from prober.web.view import SURFACE_TITLES, CheckStatus, Overview, worst

COMPONENT_STATUS = {
    State.OPERATIONAL: "operational",
    State.DEGRADED: "degraded_performance",
    State.PARTIAL_OUTAGE: "partial_outage",
    State.MAJOR_OUTAGE: "major_outage",
    State.UNKNOWN: "operational",  # with prober_state "unknown": see the module's doc
}
# Blended state -> (indicator, description): the banner of the status page says the same.
INDICATOR = {
    State.OPERATIONAL: ("none", "All Systems Operational"),
    State.DEGRADED: ("minor", "Degraded Performance"),
    State.PARTIAL_OUTAGE: ("major", "Partial Outage"),
    State.MAJOR_OUTAGE: ("critical", "Major Outage"),
    State.UNKNOWN: ("none", "Status Unknown"),
}
IMPACT = {
    State.MAJOR_OUTAGE: "critical",
    State.PARTIAL_OUTAGE: "major",
    State.DEGRADED: "minor",
    State.OPERATIONAL: "none",
    State.UNKNOWN: "none",
}
STATE_WORDS = {
    State.OPERATIONAL: "operational",
    State.DEGRADED: "degraded performance",
    State.PARTIAL_OUTAGE: "partial outage",
    State.MAJOR_OUTAGE: "major outage",
    State.UNKNOWN: "unknown",
}

RECENT_INCIDENTS = 50  # incidents.json: "the 50 most recent incidents", as Statuspage's

REGION_WORDS = {
    State.OPERATIONAL: "operational",
    State.DEGRADED: "degraded",
    State.PARTIAL_OUTAGE: "partly down",  # some of the region's vantages
    State.MAJOR_OUTAGE: "down",  # all of them
    State.UNKNOWN: "no data",
}


def page_id(title: str) -> str:
    """A stable 12-character page id, like Statuspage's."""
    return hashlib.sha1(title.encode()).hexdigest()[:12]


def group_id(surface: str) -> str:
    """The id of a surface's component group (check names cannot contain ':')."""
    return f"surface:{surface}"


def page(overview: Overview, title: str, url: str) -> dict[str, Any]:
    """The `page` object."""
    return {
        "id": page_id(title),
        "name": title,
        "url": url,
        "time_zone": "Etc/UTC",
        "updated_at": iso(overview.updated_at),
    }


def status(overview: Overview) -> dict[str, str]:
    """The `status` object: the indicator and description of the blended state."""
    indicator, description = INDICATOR[overview.state]
    return {"indicator": indicator, "description": description}


def component(check: CheckStatus, position: int, pid: str, overview: Overview) -> dict[str, Any]:
    """A check as a component."""
    updated = check.last_probed or overview.now
    regions = ", ".join(f"{region} {REGION_WORDS[state]}" for region, state in check.regions.items())
    said = "No recent results" if check.state is State.UNKNOWN else regions or None
    return {
        "id": check.name,
        "name": check.info.title,
        "status": COMPONENT_STATUS[check.state],
        "created_at": iso(check.first_seen or updated),
        "updated_at": iso(updated),
        "position": position,
        "description": check.info.description or said,
        "showcase": True,
        "start_date": (check.first_seen or updated).date().isoformat(),
        "group_id": group_id(check.info.surface),
        "page_id": pid,
        "group": False,
        "only_show_if_degraded": False,
        "prober_state": str(check.state),
    }


def components(overview: Overview, title: str) -> list[dict[str, Any]]:
    """Every component group (one per surface), each followed by its components."""
    pid, out, position = page_id(title), [], 0
    for surface, checks in overview.by_surface():
        position += 1
        state = worst([c.state for c in checks if c.state is not State.UNKNOWN]) if checks else State.UNKNOWN
        first = min((c.first_seen for c in checks if c.first_seen), default=overview.now)
        out.append(
            {
                "id": group_id(surface),
                "name": SURFACE_TITLES[surface],
                "status": COMPONENT_STATUS[state],
                "created_at": iso(first),
                "updated_at": iso(overview.updated_at),
                "position": position,
                "description": f"{SURFACE_TITLES[surface]} checks",
                "showcase": False,
                "start_date": None,
                "group_id": None,
                "page_id": pid,
                "group": True,
                "only_show_if_degraded": False,
                "components": [c.name for c in checks],
            }
        )
        for check in checks:
            position += 1
            out.append(component(check, position, pid, overview))
    return out


def _update(
    ident: str, key: str, status: str, body: str, at: str, affected: list[dict[str, Any]]
) -> dict[str, Any]:
    return {
        "id": f"{ident}-{key}",
        "status": status,
        "body": body,
        "incident_id": ident,
        "created_at": at,
        "updated_at": at,
        "display_at": at,
        "affected_components": affected,
        "deliver_notifications": False,
        "custom_tweet": None,
        "tweet_id": None,
    }


def incident(
    item: Incident,
    overview: Overview,
    title: str,
    url: str,
    listed: Mapping[str, dict[str, Any]] | None = None,
    notes: Sequence[Note] = (),
) -> dict[str, Any]:
    """An incident; its updates are its detection, the operators' notes and, once over, its resolution."""
    pid, ident = page_id(title), str(item.id)
    check = overview.find(item.check)
    name = check.info.title if check is not None else item.check
    known = (listed or {}).get(item.check)
    component_status = COMPONENT_STATUS[item.state]
    where = ", ".join(item.regions) or "no region recorded"
    cause = str(item.reason or "unknown cause") + (f" ({item.signature})" if item.signature else "")
    affected = [
        {"code": item.check, "name": name, "old_status": "operational", "new_status": component_status}
    ]
    body = (
        f"{name}: {STATE_WORDS[item.state]} seen from {where}, cause {cause}; started {iso(item.started_at)}."
    )
    updates = [_update(ident, "detected", "investigating", body, iso(item.detected_at), affected)]
    for note in notes:
        updates.append(_update(ident, f"note-{note.id}", note.status, note.body, iso(note.created_at), []))
    if item.resolved_at is not None:
        back = [{**affected[0], "old_status": component_status, "new_status": "operational"}]
        body = f"{name} recovered at {iso(item.resolved_at)}."
        updates.append(_update(ident, "resolved", "resolved", body, iso(item.resolved_at), back))
    updates.sort(key=lambda u: u["display_at"], reverse=True)  # newest first, as Statuspage lists them
    monitoring = next((n.created_at for n in notes if n.status == "monitoring"), None)
    return {
        "id": ident,
        "name": f"{name}: {STATE_WORDS[item.state]}",
        "status": incident_status(item, notes),
        "created_at": iso(item.detected_at),
        "updated_at": updates[0]["updated_at"],
        "monitoring_at": None if monitoring is None else iso(monitoring),
        "resolved_at": None if item.resolved_at is None else iso(item.resolved_at),
        "impact": IMPACT[item.state],
        "shortlink": f"{url.rstrip('/')}/#incident-{ident}",
        "started_at": iso(item.started_at),
        "page_id": pid,
        "incident_updates": updates,
        "components": [known] if known else [] if check is None else [component(check, 0, pid, overview)],
    }


def _incidents(
    found: Sequence[Incident], overview: Overview, title: str, url: str, notes: Mapping[int, Sequence[Note]]
) -> list[dict[str, Any]]:
    """Incidents newest first, each with its components as listed in components.json."""
    listed = components(overview, title)
    by_id = {c["id"]: c for c in listed if not c["group"]}
    ordered = sorted(found, key=lambda i: (i.started_at, i.id or 0), reverse=True)
    return [incident(i, overview, title, url, by_id, notes.get(i.id or 0, ())) for i in ordered]


def status_json(overview: Overview, title: str, url: str) -> dict[str, Any]:
    """/api/v2/status.json."""
    return {"page": page(overview, title, url), "status": status(overview)}


def summary_json(
    overview: Overview, title: str, url: str, notes: Mapping[int, Sequence[Note]] | None = None
) -> dict[str, Any]:
    """/api/v2/summary.json: page, components, unresolved incidents, maintenances (none), status."""
    return {
        "page": page(overview, title, url),
        "components": components(overview, title),
        "incidents": _incidents(overview.open_incidents, overview, title, url, notes or {}),
        "scheduled_maintenances": [],
        "status": status(overview),
    }


def components_json(overview: Overview, title: str, url: str) -> dict[str, Any]:
    """/api/v2/components.json: page and components (groups included, as Statuspage lists them)."""
    return {"page": page(overview, title, url), "components": components(overview, title)}


def incidents_json(
    overview: Overview,
    title: str,
    url: str,
    recent: Sequence[Incident],
    notes: Mapping[int, Sequence[Note]],
) -> dict[str, Any]:
    """/api/v2/incidents.json: the RECENT_INCIDENTS newest incidents, resolved ones included."""
    found = {(i.check, i.started_at): i for i in recent}
    found.update({(i.check, i.started_at): i for i in overview.open_incidents})  # the live view wins
    newest = sorted(found.values(), key=lambda i: (i.started_at, i.id or 0), reverse=True)
    return {
        "page": page(overview, title, url),
        "incidents": _incidents(newest[:RECENT_INCIDENTS], overview, title, url, notes),
    }


def unresolved_json(
    overview: Overview, title: str, url: str, notes: Mapping[int, Sequence[Note]]
) -> dict[str, Any]:
    """/api/v2/incidents/unresolved.json: the incidents still open."""
    return {
        "page": page(overview, title, url),
        "incidents": _incidents(overview.open_incidents, overview, title, url, notes),
    }
