"""The shapes of prober's own JSON API: a check (/api/checks) and an incident (/api/incidents)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from prober.model import Incident, iso
from prober.web.view import CheckStatus, History


def dumps(data: Any) -> str:
    """Compact JSON, UTF-8 left as it is."""
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


def incident_json(incident: Incident, now: datetime) -> dict[str, Any]:
    """An incident in /api/incidents and /api/checks."""
    return incident.to_json(now)


def check_json(check: CheckStatus, history: History | None, now: datetime) -> dict[str, Any]:
    """A check in /api/checks: state, newest result per vantage, availability per window."""
    windows = {} if history is None else history.windows.get(check.name, {})
    labels = ("24h", "7d", "30d", "90d")
    return {
        "name": check.name,
        "surface": str(check.info.surface),
        "url": check.info.url,
        "state": str(check.state),
        "regions": {region: str(state) for region, state in check.regions.items()},
        "vantages": dict(check.info.vantages),
        "last_probed_at": None if check.last_probed is None else iso(check.last_probed),
        "last_results": {v: r.to_json() for v, r in check.latest.items() if v in check.info.vantages},
        "incident": None if check.incident is None else incident_json(check.incident, now),
        "availability": {w: _ratio(windows[w].availability) if w in windows else None for w in labels},
        "counts": {w: windows[w].to_json() if w in windows else None for w in labels},
    }


def _ratio(value: float | None) -> float | None:
    return None if value is None else round(value, 6)
