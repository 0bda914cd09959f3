"""Shared value types: verdicts, reasons, states, what a probe saw and what it concluded."""

from __future__ import annotations

import builtins
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any


class ProberError(Exception):
    """Base of every error prober raises on purpose; its message is shown to the user as is."""


class Verdict(StrEnum):
    """The outcome of one probe, as stored in `results.verdict`."""

    UP = "up"
    DEGRADED = "degraded"
    DOWN = "down"
    UNKNOWN = "unknown"


class Reason(StrEnum):
    """Why a probe was not `up`, as stored in `results.reason`."""

    SLOW = "slow"
    CERT_EXPIRING = "cert_expiring"
    RATE_LIMITED = "rate_limited"
    ERROR_PAGE = "error_page"
    DNS = "dns"
    CONNECT = "connect"
    TLS = "tls"
    TIMEOUT = "timeout"
    HTTP_STATUS = "http_status"
    CONTENT = "content"
    REDIRECT = "redirect"
    VANTAGE = "vantage"
    INTERNAL = "internal"
    RENDER = "render"


class State(StrEnum):
    """A check's state, in the vocabulary of status pages."""

    OPERATIONAL = "operational"
    DEGRADED = "degraded"
    PARTIAL_OUTAGE = "partial_outage"
    MAJOR_OUTAGE = "major_outage"
    UNKNOWN = "unknown"


# How bad each state is, for "worst state reached" comparisons.
STATE_SEVERITY: dict[State, int] = {
    State.UNKNOWN: 0,
    State.OPERATIONAL: 1,
    State.DEGRADED: 2,
    State.PARTIAL_OUTAGE: 3,
    State.MAJOR_OUTAGE: 4,
}


class Surface(StrEnum):
    """What kind of client a check stands for."""

    WEB = "web"
    MOBILE = "mobile"
    API = "api"


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


def iso(ts: datetime) -> str:
    """ISO 8601 UTC text with millisecond precision, the form stored in SQLite."""
    return ts.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_iso(text: str) -> datetime:
    """Parse the ISO 8601 text written by `iso` (or any offset-aware ISO time)."""
    ts = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Phases:
    """Time spent in each phase of a request, in milliseconds; None where not measured."""

    dns_ms: float | None = None
    connect_ms: float | None = None
    tls_ms: float | None = None
    ttfb_ms: float | None = None


@dataclass(frozen=True, slots=True)
class Observation:
    """What a probe saw, before any judgement: the input of the classifier."""

    url: str
    status: int | None = None
    headers: Mapping[str, str] = field(default_factory=dict)  # keys lower-cased
    body: bytes | bytearray = b""  # at most max_body bytes (read into one buffer, not copied again)
    truncated: bool = False  # the body was longer than max_body
    bytes: int = 0  # body bytes read
    latency_ms: float | None = None
    phases: Phases = field(default_factory=Phases)
    redirects: int = 0
    final_url: str | None = None
    cert_days: float | None = None  # days until the leaf certificate expires
    failure: Reason | None = None  # transport-level failure: no response to judge
    error: str | None = None
    # A failure that shows this machine's network works all the same: a peer refused or reset the
    # connection, a connection was made (then failed), the name's own servers said NXDOMAIN.
    reached: bool = False

    @property
    def content_type(self) -> str:
        """The media type of the response, lower-cased, without parameters."""
        return self.headers.get("content-type", "").split(";", 1)[0].strip().lower()


@dataclass(frozen=True, slots=True)
class Classification:
    """The classifier's judgement of one observation."""

    verdict: Verdict
    reason: Reason | None = None
    signature: str | None = None
    error: str | None = None  # a human explanation when not up


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """One probe of one check from one vantage: a row of the `results` table."""

    ts: datetime
    check: str
    vantage: str
    region: str
    surface: Surface
    url: str
    verdict: Verdict
    reason: Reason | None = None
    signature: str | None = None
    status: int | None = None
    latency_ms: float | None = None
    phases: Phases = field(default_factory=Phases)
    bytes: int = 0
    error: str | None = None
    cert_days: float | None = None
    browser: Mapping[str, Any] | None = None  # a browser check's evidence (DESIGN: the `browser` object)
    screenshot: builtins.bytes | None = field(
        default=None, repr=False
    )  # PNG taken by the probe, until stored
    screenshot_id: int | None = None  # the row of `screenshots` it was stored as

    def to_json(self) -> dict[str, Any]:
        """The JSON Lines shape of `prober once --json`."""
        return {
            "ts": iso(self.ts),
            "check": self.check,
            "vantage": self.vantage,
            "region": self.region,
            "surface": str(self.surface),
            "url": self.url,
            "verdict": str(self.verdict),
            "reason": None if self.reason is None else str(self.reason),
            "signature": self.signature,
            "status": self.status,
            "latency_ms": _round(self.latency_ms),
            "phases": {k: _round(v) for k, v in asdict(self.phases).items()},
            "bytes": self.bytes,
            "cert_days": _round(self.cert_days),
            "error": self.error,
            "browser": None if self.browser is None else dict(self.browser),
            "screenshot": self.screenshot is not None or self.screenshot_id is not None,
            "screenshot_id": self.screenshot_id,
        }

    def to_row(self) -> dict[str, Any]:
        """The row stored in the `results` table."""
        return {
            "ts": iso(self.ts),
            "check_name": self.check,
            "vantage": self.vantage,
            "region": self.region,
            "surface": str(self.surface),
            "url": self.url,
            "verdict": str(self.verdict),
            "reason": None if self.reason is None else str(self.reason),
            "signature": self.signature,
            "status": self.status,
            "latency_ms": _round(self.latency_ms),
            "dns_ms": _round(self.phases.dns_ms),
            "connect_ms": _round(self.phases.connect_ms),
            "tls_ms": _round(self.phases.tls_ms),
            "ttfb_ms": _round(self.phases.ttfb_ms),
            "bytes": self.bytes,
            "cert_days": _round(self.cert_days),
            "error": self.error,
            "browser": None if self.browser is None else json.dumps(self.browser, separators=(",", ":")),
            "screenshot_id": self.screenshot_id,
        }

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> ProbeResult:
        """Rebuild a result from a `results` row."""
        return cls(
            ts=parse_iso(row["ts"]),
            check=row["check_name"],
            vantage=row["vantage"],
            region=row["region"],
            surface=Surface(row["surface"]),
            url=row.get("url") or "",
            verdict=Verdict(row["verdict"]),
            reason=Reason(row["reason"]) if row.get("reason") else None,
            signature=row.get("signature"),
            status=row.get("status"),
            latency_ms=row.get("latency_ms"),
            phases=Phases(row.get("dns_ms"), row.get("connect_ms"), row.get("tls_ms"), row.get("ttfb_ms")),
            bytes=row.get("bytes") or 0,
            error=row.get("error"),
            cert_days=row.get("cert_days"),
            browser=json.loads(row["browser"]) if row.get("browser") else None,
            screenshot_id=row.get("screenshot_id"),
        )


@dataclass(frozen=True, slots=True)
class Incident:
    """An outage of one check, from its first down result to its recovery."""

    check: str
    state: State  # the worst state reached
    reason: Reason | None
    signature: str | None
    started_at: datetime
    detected_at: datetime
    resolved_at: datetime | None = None
    vantages: tuple[str, ...] = ()
    regions: tuple[str, ...] = ()
    id: int | None = None
    maintenance: bool = False  # opened during a maintenance window: notifies no one

    def duration(self, now: datetime) -> timedelta:
        """From its start to its resolution, or to `now` while it is open."""
        return max((self.resolved_at or now) - self.started_at, timedelta(0))

    def to_json(self, now: datetime) -> dict[str, Any]:
        """The JSON shape of an incident, shared by `prober report --json` and the API."""
        return {
            "id": self.id,
            "check": self.check,
            "state": str(self.state),
            "reason": None if self.reason is None else str(self.reason),
            "signature": self.signature,
            "started_at": iso(self.started_at),
            "detected_at": iso(self.detected_at),
            "resolved_at": None if self.resolved_at is None else iso(self.resolved_at),
            "ongoing": self.resolved_at is None,
            "duration_seconds": round(self.duration(now).total_seconds(), 3),
            "vantages": list(self.vantages),
            "regions": list(self.regions),
            "maintenance": self.maintenance,
        }


@dataclass(frozen=True, slots=True)
class Counts:
    """Results counted by verdict. Unknown results count for nothing, neither for nor against."""

    up: int = 0
    degraded: int = 0
    down: int = 0
    unknown: int = 0

    def __add__(self, other: Counts) -> Counts:
        return Counts(
            self.up + other.up,
            self.degraded + other.degraded,
            self.down + other.down,
            self.unknown + other.unknown,
        )

    @property
    def judged(self) -> int:
        """Results that count for availability: up, degraded and down."""
        return self.up + self.degraded + self.down

    @property
    def probes(self) -> int:
        """Every result, unknown included."""
        return self.judged + self.unknown

    @property
    def availability(self) -> float | None:
        """The share of up and degraded among up, degraded and down; None without any of them."""
        return (self.up + self.degraded) / self.judged if self.judged else None

    def to_json(self) -> dict[str, int]:
        """The counts as a JSON object."""
        return {"up": self.up, "degraded": self.degraded, "down": self.down, "unknown": self.unknown}


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)
