"""What a notification says: one `Note` per delivery, in words people on call need."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from prober.config import Check
from prober.model import iso, parse_iso

VERBS = {
    "open": "is down",
    "escalate": "is now a major outage",
    "resolve": "has recovered",
    "reminder": "is still down",
    "test": "test notification",
}
STATES = {"major_outage": "major outage", "partial_outage": "partial outage"}


def check_json(check: Check | None, name: str) -> dict[str, Any]:
    """The check part of a notification (its URL as written: ${NAME} left in, never a secret)."""
    if check is None:
        return {"name": name, "display_name": name, "surface": None, "url": None, "tags": []}
    return {
        "name": check.name,
        "display_name": getattr(check, "display_name", None) or check.name,
        "surface": str(check.surface),
        "url": check.display_url,
        "tags": list(check.tags),
    }


def duration_text(seconds: float) -> str:
    """A duration as people say it: 1h 5m, 3m 20s, 42s."""
    left = round(seconds)
    days, left = divmod(left, 86400)
    hours, left = divmod(left, 3600)
    minutes, secs = divmod(left, 60)
    parts = [f"{days}d" if days else "", f"{hours}h" if hours else "", f"{minutes}m" if minutes else ""]
    if not days and not hours:
        parts.append(f"{secs}s" if secs or not minutes else "")
    return " ".join(p for p in parts if p) or "0s"


@dataclass(frozen=True, slots=True)
class Note:
    """One notification to deliver: its stable id, event, check, the incident at the event, links."""

    id: str
    event: str
    check: dict[str, Any]
    incident: dict[str, Any]
    status_page: str | None = None
    sent_at: datetime | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """What the check is called for people."""
        return str(self.check.get("display_name") or self.check.get("name"))

    @property
    def resolved(self) -> bool:
        """Whether the incident is over (a resolve event)."""
        return self.event == "resolve"

    @property
    def severity(self) -> str:
        """critical for a major outage, warning otherwise."""
        return "critical" if self.incident.get("state") == "major_outage" else "warning"

    def title(self) -> str:
        """One line: what happened to what."""
        if self.event == "test":
            return f"[prober] test notification for {self.name}"
        state = STATES.get(str(self.incident.get("state")), str(self.incident.get("state")))
        tag = "RESOLVED" if self.resolved else state.upper()
        return f"[{tag}] {self.name} {VERBS.get(self.event, self.event)}"

    def facts(self) -> list[tuple[str, str]]:
        """Labelled facts, in the order they are shown."""
        i = self.incident
        regions = ", ".join(i.get("regions") or []) or "-"
        cause = " / ".join(str(x) for x in (i.get("reason"), i.get("signature")) if x) or "-"
        facts = [
            (
                "Check",
                f"{self.name} ({self.check.get('name')})"
                if self.name != self.check.get("name")
                else self.name,
            ),
            ("Surface", str(self.check.get("surface") or "-")),
            ("State", STATES.get(str(i.get("state")), str(i.get("state") or "-"))),
            ("Regions down", regions),
            ("Cause", cause),
            ("Started", str(i.get("started_at") or "-")),
            ("Detected", str(i.get("detected_at") or "-")),
        ]
        if i.get("resolved_at"):
            facts.append(("Resolved", str(i["resolved_at"])))
            facts.append(("Duration", duration_text(float(i.get("duration_seconds") or 0))))
        elif i.get("started_at") and self.sent_at is not None:
            since = (self.sent_at - parse_iso(str(i["started_at"]))).total_seconds()
            facts.append(("Down for", duration_text(max(0.0, since))))
        if i.get("id") is not None:
            facts.append(("Incident", f"#{i['id']}"))
        return facts

    def text(self) -> str:
        """The plain-text message: the title, the facts, the link."""
        lines = [self.title(), *(f"{k}: {v}" for k, v in self.facts())]
        if self.status_page:
            lines.append(f"Status page: {self.status_page}")
        return "\n".join(lines)

    def webhook_json(self) -> dict[str, Any]:
        """The documented webhook body."""
        return {
            "id": self.id,
            "event": self.event,
            "sent_at": iso(self.sent_at) if self.sent_at else None,
            "check": self.check,
            "incident": self.incident,
            "status_page": self.status_page,
        }


def sample_note(check: Check | None, name: str, status_page: str | None, now: datetime) -> Note:
    """The note `prober alerts test` sends: an example incident, saying it is a test."""
    started = now - timedelta(minutes=5)
    incident: dict[str, Any] = {
        "id": None, "check": name, "state": "partial_outage", "reason": "error_page", "signature": "test",
        "started_at": iso(started), "detected_at": iso(started + timedelta(minutes=1)), "resolved_at": None,
        "ongoing": True, "duration_seconds": 300.0, "vantages": [], "regions": [],
    }  # fmt: skip
    return Note(id=f"test-{int(now.timestamp())}", event="test", check=check_json(check, name),
                incident=incident, status_page=status_page, sent_at=now)  # fmt: skip
