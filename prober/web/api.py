"""The shapes of prober's own JSON API: a check (/api/checks) and an incident (/api/incidents)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from prober import report
from prober.model import Counts, Incident, iso
from prober.notes import Note, incident_status
from prober.web.view import CheckStatus, History


def dumps(data: Any) -> str:
    """Compact JSON, UTF-8 left as it is."""
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


def incident_json(incident: Incident, now: datetime, claim: Any = None) -> dict[str, Any]:
    """An incident in /api/incidents and /api/checks; `claim` (a ClaimFinding) when its check has one."""
    found = incident.to_json(now)
    return found if claim is None else {**found, "claim": claim.to_json()}


def narrated_json(
    incident: Incident, now: datetime, notes: Sequence[Note], claim: Any = None
) -> dict[str, Any]:
    """An incident in /api/incidents: with its Statuspage status, the operators' notes and, when its
    check has a claim, what the official page said (`claim`, a ClaimFinding)."""
    return {
        **incident_json(incident, now, claim),
        "status": incident_status(incident, notes),
        "notes": [n.to_json() for n in notes],
    }


def check_json(
    check: CheckStatus, history: History | None, now: datetime, claim: Any = None
) -> dict[str, Any]:
    """A check in /api/checks: state, newest result per vantage, availability per window; `claim`:
    the ClaimFinding of its open incident, if its check has a claim."""
    windows = {} if history is None else history.windows.get(check.name, {})
    labels = ("24h", "7d", "30d", "90d")
    return {
        "name": check.name,
        "display_name": check.info.title,
        "description": check.info.description,
        "surface": str(check.info.surface),
        "url": check.info.url or None,  # None: the page does not show URLs (`page.show_urls`)
        "state": str(check.state),
        "regions": {region: str(state) for region, state in check.regions.items()},
        "vantages": dict(check.info.vantages),
        "last_probed_at": None if check.last_probed is None else iso(check.last_probed),
        "last_results": {v: r.to_json() for v, r in check.latest.items() if v in check.info.vantages},
        "incident": None if check.incident is None else incident_json(check.incident, now, claim),
        "availability": {w: _ratio(windows[w].availability) if w in windows else None for w in labels},
        "counts": {w: windows[w].to_json() if w in windows else None for w in labels},
    }


def window_json(rows: Iterable[Mapping[str, Any]], since: datetime, until: datetime) -> dict[str, Any]:
    """A check's availability over [since, until), from `read.verdict_counts` rows: the figures and
    the text (`percent`) that `prober report --since --until` prints for the same window."""
    groups = [report.Group.from_row(row) for row in rows]
    total = sum((g.counts for g in groups), Counts())
    regions: dict[str, Counts] = {}
    for g in groups:
        regions[g.region] = regions.get(g.region, Counts()) + g.counts
    return {
        "since": iso(since),
        "until": iso(until),
        **report.counts_json(total),
        "percent": report.percent(total),
        "regions": {
            r: {**report.counts_json(c), "percent": report.percent(c)} for r, c in sorted(regions.items())
        },
    }


def _ratio(value: float | None) -> float | None:
    return None if value is None else round(value, 6)
