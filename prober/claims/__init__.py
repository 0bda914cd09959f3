"""Claims vs measured: what the target's own status page says, polled, stored and held to account.

The core never imports this package at module level: the daemon, the web app and the report call
into it. `incident_json` (an incident with its `claim` object) is what alerts send.
"""

from __future__ import annotations

from prober.claims.findings import ClaimFinding, finding, finding_for, findings_for, incident_json, unmeasured
from prober.claims.parse import Claim, ClaimStatus, OfficialIncident, Reading, SourceError
from prober.claims.record import Link, Span, links, rows, spans

__all__ = [
    "Claim",
    "ClaimFinding",
    "ClaimStatus",
    "Link",
    "OfficialIncident",
    "Reading",
    "SourceError",
    "Span",
    "finding",
    "finding_for",
    "findings_for",
    "incident_json",
    "links",
    "rows",
    "spans",
    "unmeasured",
]
