"""The shapes of the Atlassian Statuspage public API (v2), so existing widgets read prober.

Components are checks, grouped by surface into component groups; incidents are prober's open
incidents. The vocabulary maps one to one, except `unknown` (no recent result), which Statuspage
lacks: such a component says degraded_performance, with "No recent results" as its description,
and prober's own state in `prober_state`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from prober.model import Incident, State, iso
from prober.web.view import SURFACE_TITLES, CheckStatus, Overview, worst

COMPONENT_STATUS = {
    State.OPERATIONAL: "operational",
    State.DEGRADED: "degraded_performance",
    State.PARTIAL_OUTAGE: "partial_outage",
    State.MAJOR_OUTAGE: "major_outage",
    State.UNKNOWN: "degraded_performance",
}
# Blended state -> (indicator, description): the banner of the status page says the same.
INDICATOR = {
    State.OPERATIONAL: ("none", "All Systems Operational"),
    State.DEGRADED: ("minor", "Degraded Performance"),
    State.PARTIAL_OUTAGE: ("major", "Partial Outage"),
    State.MAJOR_OUTAGE: ("critical", "Major Outage"),
    State.UNKNOWN: ("minor", "Status Unknown"),
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
    return {
        "id": check.name,
        "name": check.name,
        "status": COMPONENT_STATUS[check.state],
        "created_at": iso(check.first_seen or updated),
        "updated_at": iso(updated),
        "position": position,
        "description": "No recent results" if check.state is State.UNKNOWN else regions or None,
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


def incident(
    item: Incident,
    overview: Overview,
    title: str,
    url: str,
    listed: Mapping[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """An incident; its updates are its detection and, once over, its resolution."""
    pid, ident = page_id(title), str(item.id)
    check = overview.find(item.check)
    known = (listed or {}).get(item.check)
    component_status = COMPONENT_STATUS[item.state]
    where = ", ".join(item.regions) or "no region recorded"
    cause = str(item.reason or "unknown cause") + (f" ({item.signature})" if item.signature else "")
    affected = [
        {"code": item.check, "name": item.check, "old_status": "operational", "new_status": component_status}
    ]
    updates = [
        {
            "id": f"{ident}-detected",
            "status": "investigating",
            "body": f"{item.check}: {STATE_WORDS[item.state]} seen from {where}, cause {cause}; "
            f"started {iso(item.started_at)}.",
            "incident_id": ident,
            "created_at": iso(item.detected_at),
            "updated_at": iso(item.detected_at),
            "display_at": iso(item.detected_at),
            "affected_components": affected,
            "deliver_notifications": False,
            "custom_tweet": None,
            "tweet_id": None,
        }
    ]
    if item.resolved_at is not None:
        resolved = {**updates[0], "id": f"{ident}-resolved", "status": "resolved"}
        resolved["body"] = f"{item.check} recovered at {iso(item.resolved_at)}."
        for key in ("created_at", "updated_at", "display_at"):
            resolved[key] = iso(item.resolved_at)
        resolved["affected_components"] = [
            {**affected[0], "old_status": component_status, "new_status": "operational"}
        ]
        updates.insert(0, resolved)  # newest first, as Statuspage lists them
    return {
        "id": ident,
        "name": f"{item.check}: {STATE_WORDS[item.state]}",
        "status": "investigating" if item.resolved_at is None else "resolved",
        "created_at": iso(item.detected_at),
        "updated_at": iso(item.resolved_at or item.detected_at),
        "monitoring_at": None,
        "resolved_at": None if item.resolved_at is None else iso(item.resolved_at),
        "impact": IMPACT[item.state],
        "shortlink": f"{url.rstrip('/')}/#incident-{ident}",
        "started_at": iso(item.started_at),
        "page_id": pid,
        "incident_updates": updates,
        "components": [known] if known else [] if check is None else [component(check, 0, pid, overview)],
    }


def status_json(overview: Overview, title: str, url: str) -> dict[str, Any]:
    """/api/v2/status.json."""
    return {"page": page(overview, title, url), "status": status(overview)}


def summary_json(overview: Overview, title: str, url: str) -> dict[str, Any]:
    """/api/v2/summary.json: page, components, unresolved incidents, maintenances (none), status."""
    unresolved = sorted(overview.open_incidents, key=lambda i: i.started_at, reverse=True)
    listed = components(overview, title)
    by_id = {c["id"]: c for c in listed if not c["group"]}
    return {
        "page": page(overview, title, url),
        "components": listed,
        "incidents": [incident(i, overview, title, url, by_id) for i in unresolved],
        "scheduled_maintenances": [],
        "status": status(overview),
    }
