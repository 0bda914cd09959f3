"""Maintenance windows in the Statuspage API, the status page and /api/checks.

Each recorded span of a window is one Statuspage "scheduled maintenance": `scheduled` before it
starts, `in_progress` during it, `completed` after it; its components are the checks it covers, and
they say `under_maintenance` while it lasts. prober's own answers (summary.json, the components,
/api/checks) are decorated here, after the core made them, so the rest of the web code knows
nothing of maintenance.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import sqlite_utils
from aiohttp import web

from prober.maintenance.record import AHEAD, spans_between
from prober.model import iso
from prober.web import statuspage
from prober.web.answers import JSON_HEADERS, JSON_TYPE, Answer, Snapshot
from prober.web.api import dumps
from prober.web.view import Overview

if TYPE_CHECKING:
    from prober.web import WebState

RECENT = timedelta(days=30)  # how far back scheduled-maintenances.json lists completed spans
MAX_LISTED = 50  # Statuspage lists the 50 most recent
NOTE = "results inside maintenance windows are left out of availability"
Span = dict[str, Any]


def span_id(span: Span) -> str:
    """A stable id of a span: its window and start, like Statuspage's 12 characters."""
    return hashlib.sha1(f"{span['name']} {iso(span['starts_at'])}".encode()).hexdigest()[:12]


def span_status(span: Span, now: datetime) -> str:
    """scheduled, in_progress or completed."""
    if now < span["starts_at"]:
        return "scheduled"
    return "in_progress" if now < span["ends_at"] else "completed"


def covered(span: Span, overview: Overview) -> list[str]:
    """The shown checks a span covers."""
    return [c.name for c in overview.checks if span["checks"] is None or c.name in span["checks"]]


def active_checks(spans: list[Span], overview: Overview, now: datetime) -> set[str]:
    """The shown checks under maintenance at `now`."""
    return {name for s in spans if span_status(s, now) == "in_progress" for name in covered(s, overview)}


def maintenance_json(span: Span, overview: Overview, title: str, url: str, now: datetime) -> dict[str, Any]:
    """One span as a Statuspage scheduled maintenance."""
    pid, ident, status = statuspage.page_id(title), span_id(span), span_status(span, now)
    names = covered(span, overview)
    under = set(names) if status == "in_progress" else set()
    components = []
    for position, name in enumerate(names, 1):
        check = overview.find(name)
        if check is not None:
            components.append(_mark(statuspage.component(check, position, pid, overview), under))
    how = f"every {span['every']} ({span['timezone']})" if span["every"] else "one-off"
    body = f"Planned maintenance {span['name']} ({how}): {', '.join(names) or 'no shown component'}."
    created = min(span["starts_at"], now)
    updates = [
        {
            "id": f"{ident}-{state}",
            "status": state,
            "body": body if state == "scheduled" else f"{span['name']}: {words}.",
            "incident_id": ident,
            "created_at": iso(at),
            "updated_at": iso(at),
            "display_at": iso(at),
            "affected_components": [
                {"code": n, "name": n, "old_status": "operational", "new_status": "under_maintenance"}
                for n in names
            ],
            "deliver_notifications": False,
            "custom_tweet": None,
            "tweet_id": None,
        }
        for state, at, words in (
            ("completed", span["ends_at"], "the maintenance has completed"),
            ("in_progress", span["starts_at"], "the maintenance is in progress"),
            ("scheduled", created, ""),
        )
        if state == "scheduled" or now >= at
    ]
    return {
        "id": ident,
        "name": span["name"],
        "status": status,
        "created_at": iso(created),
        "updated_at": updates[0]["created_at"],  # the newest update, first as Statuspage lists them
        "monitoring_at": None,
        "resolved_at": iso(span["ends_at"]) if status == "completed" else None,
        "impact": "maintenance",
        "shortlink": f"{url.rstrip('/')}/#maintenance-{ident}",
        "started_at": iso(span["starts_at"]),
        "page_id": pid,
        "incident_updates": updates,
        "components": components,
        "scheduled_for": iso(span["starts_at"]),
        "scheduled_until": iso(span["ends_at"]),
        "prober_window": {"name": span["name"], "every": span["every"], "timezone": span["timezone"]},
    }


def _mark(component: dict[str, Any], under: set[str]) -> dict[str, Any]:
    if component.get("id") in under:
        component["status"] = "under_maintenance"
    return component


def listing(db: sqlite_utils.Database, overview: Overview, now: datetime, which: str) -> list[Span]:
    """Spans of `which` (all: recent and to come, upcoming, active, current: active and upcoming)."""
    spans = spans_between(db, now - RECENT, now + AHEAD)
    keep: dict[str, Callable[[str], bool]] = {
        "all": lambda s: True,
        "upcoming": lambda s: s == "scheduled",
        "active": lambda s: s == "in_progress",
        "current": lambda s: s != "completed",
    }
    chosen = [s for s in spans if keep[which](span_status(s, now)) and covered(s, overview)]
    return sorted(chosen, key=lambda s: s["starts_at"], reverse=which == "all")[:MAX_LISTED]


def decorate(
    body: dict[str, Any], db: sqlite_utils.Database, overview: Overview, title: str, url: str
) -> None:
    """Add maintenance to a Statuspage answer made by the core: components under maintenance say so,
    `scheduled_maintenances` lists the spans in progress and to come."""
    now = overview.now
    spans = listing(db, overview, now, "current")
    under = active_checks(spans, overview, now)
    for component in body.get("components") or ():
        if component.get("group"):  # a group is under maintenance when every one of its checks is
            members = component.get("components") or []
            if members and all(m in under for m in members):
                component["status"] = "under_maintenance"
        else:
            _mark(component, under)
    if "scheduled_maintenances" in body:
        body["scheduled_maintenances"] = [maintenance_json(s, overview, title, url, now) for s in spans]


def decorate_checks(body: dict[str, Any], db: sqlite_utils.Database, overview: Overview) -> None:
    """/api/checks: each check says whether it is under maintenance; availability says what it leaves out."""
    under = active_checks(listing(db, overview, overview.now, "active"), overview, overview.now)
    body["availability_excludes"] = NOTE
    for check in body.get("checks") or ():
        check["maintenance"] = check.get("name") in under


def page_windows(db: sqlite_utils.Database, overview: Overview) -> dict[str, Any]:
    """What the status page shows: the spans in progress and to come, and the checks under maintenance."""
    spans = listing(db, overview, overview.now, "current")
    rows = [
        {
            "id": span_id(s),
            "name": s["name"],
            "active": span_status(s, overview.now) == "in_progress",
            "starts_at": s["starts_at"],
            "ends_at": s["ends_at"],
            "every": s["every"],
            "timezone": s["timezone"],
            "checks": covered(s, overview),
        }
        for s in spans
    ]
    return {"windows": rows, "checks": active_checks(spans, overview, overview.now), "note": NOTE}


def register(app: web.Application, state: WebState) -> None:
    """Add the three scheduled-maintenance endpoints of the Statuspage API to `app`."""
    for path, which in (
        ("/api/v2/scheduled-maintenances.json", "all"),
        ("/api/v2/scheduled-maintenances/upcoming.json", "upcoming"),
        ("/api/v2/scheduled-maintenances/active.json", "active"),
    ):
        app.router.add_get(path, _handler(state, which))


def _handler(state: WebState, which: str) -> Callable[[web.Request], Any]:
    async def handle(request: web.Request) -> web.Response:
        url = f"{request.scheme}://{request.host}/"

        async def make(snap: Snapshot) -> Answer:
            def work(db: sqlite_utils.Database) -> Answer:
                overview = snap.overview(db)
                title = state.page_settings(snap).title
                body = {
                    "page": statuspage.page(overview, title, url),
                    "scheduled_maintenances": [
                        maintenance_json(s, overview, title, url, overview.now)
                        for s in listing(db, overview, overview.now, which)
                    ],
                }
                return Answer.of(dumps(body), JSON_TYPE, snap.now)

            return await state.reader.run(work)

        answer = await state.answers.get(f"maintenance {which} {url}", make)
        return answer.response(request, JSON_HEADERS, state.fresh_for)

    return handle
