"""The Statuspage-compatible read API, /api/v2/*.json: each answer made from one snapshot.

The shapes are `prober.web.statuspage`'s; here each route takes what it needs from the snapshot (the
shown checks, the incidents of the last 90 days, the operators' notes), leaving out the incidents of
checks that are not shown (hidden with `public: false`, or gone from the configuration).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlite_utils

from prober.model import Incident
from prober.web import statuspage
from prober.web.answers import Snapshot
from prober.web.view import Overview

# snapshot, reader connection, page title, page URL -> the JSON body
Which = Callable[[Snapshot, sqlite_utils.Database, str, str], dict[str, Any]]


def _recent(snap: Snapshot, db: sqlite_utils.Database, overview: Overview) -> list[Incident]:
    shown = {c.name for c in overview.checks}
    return [i for i in snap.incidents(db) if i.check in shown]


def status(snap: Snapshot, db: sqlite_utils.Database, title: str, url: str) -> dict[str, Any]:
    """/api/v2/status.json."""
    return statuspage.status_json(snap.overview(db), title, url)


def summary(snap: Snapshot, db: sqlite_utils.Database, title: str, url: str) -> dict[str, Any]:
    """/api/v2/summary.json."""
    overview = snap.overview(db)
    return statuspage.summary_json(overview, title, url, snap.notes(db, overview.open_incidents))


def components(snap: Snapshot, db: sqlite_utils.Database, title: str, url: str) -> dict[str, Any]:
    """/api/v2/components.json."""
    return statuspage.components_json(snap.overview(db), title, url)


def incidents(snap: Snapshot, db: sqlite_utils.Database, title: str, url: str) -> dict[str, Any]:
    """/api/v2/incidents.json."""
    overview = snap.overview(db)
    recent = _recent(snap, db, overview)
    notes = snap.notes(db, [*recent, *overview.open_incidents])
    return statuspage.incidents_json(overview, title, url, recent, notes)


def unresolved(snap: Snapshot, db: sqlite_utils.Database, title: str, url: str) -> dict[str, Any]:
    """/api/v2/incidents/unresolved.json."""
    overview = snap.overview(db)
    return statuspage.unresolved_json(overview, title, url, snap.notes(db, overview.open_incidents))


ROUTES: dict[str, Which] = {
    "status.json": status,
    "summary.json": summary,
    "components.json": components,
    "incidents.json": incidents,
    "incidents/unresolved.json": unresolved,
}
