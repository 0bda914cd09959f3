"""What travels over NATS: results and heartbeats as JSON, and the collector's checks on them.

Pure: no I/O. The collector trusts nothing in a payload it can take from its own configuration
(region, surface, URL); what it cannot check (the verdict) it takes from the agent whose subject
it came on, and only for a check that agent's vantage probes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from prober.config import Config
from prober.model import Phases, ProberError, ProbeResult, Reason, Verdict, iso

ID_PATTERN = r"^[A-Za-z0-9_-]{8,64}$"
MAX_TEXT = 4000  # an error longer than this in a payload is not one an agent wrote


class Refused(ProberError):
    """A message the collector will not take; the message says why."""


class _Phases(BaseModel):
    model_config = ConfigDict(extra="forbid")
    dns_ms: float | None = None
    connect_ms: float | None = None
    tls_ms: float | None = None
    ttfb_ms: float | None = None


class _ResultPayload(BaseModel):
    model_config = ConfigDict(extra="ignore")  # region, surface, url: taken from the configuration
    id: str = Field(pattern=ID_PATTERN)
    ts: AwareDatetime
    check: str = Field(max_length=200)
    vantage: str = Field(max_length=200)
    verdict: Verdict
    reason: Reason | None = None
    signature: str | None = Field(default=None, max_length=200)
    status: int | None = Field(default=None, ge=0, le=999)
    latency_ms: float | None = Field(default=None, ge=0)
    phases: _Phases = Field(default_factory=_Phases)
    bytes: int = Field(default=0, ge=0)
    cert_days: float | None = None
    error: str | None = Field(default=None, max_length=MAX_TEXT)
    browser: dict[str, Any] | None = None


class _HeartbeatPayload(BaseModel):
    model_config = ConfigDict(extra="ignore")
    vantage: str = Field(max_length=200)
    ts: AwareDatetime
    interval: float = Field(gt=0, le=3600)
    probes: int = Field(default=0, ge=0)
    dropped: int = Field(default=0, ge=0)
    config: str | None = Field(default=None, max_length=100)


@dataclass(frozen=True, slots=True)
class Received:
    """A result the collector accepted, with the id the agent gave it."""

    id: str
    result: ProbeResult


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """An agent saying it is alive: its clock, its period, what it has done."""

    vantage: str
    sent_at: datetime
    interval: float
    probes: int
    dropped: int
    config: str | None  # the digest of the configuration it runs


def result_message(result: ProbeResult, result_id: str) -> bytes:
    """The JSON an agent publishes for one result: `once --json`'s shape, with its id."""
    return json.dumps({"id": result_id, **result.to_json()}, separators=(",", ":")).encode()


def heartbeat_message(beat: Heartbeat) -> bytes:
    """The JSON of a heartbeat."""
    data = {"vantage": beat.vantage, "ts": iso(beat.sent_at), "interval": beat.interval,
            "probes": beat.probes, "dropped": beat.dropped, "config": beat.config}  # fmt: skip
    return json.dumps(data, separators=(",", ":")).encode()


def subject_vantage(subject: str) -> str:
    """The vantage a subject `prober.results.<vantage>` (or `prober.heartbeat.<vantage>`) belongs to."""
    return subject.rsplit(".", 1)[-1]


def parse_result(data: bytes, subject: str, config: Config) -> Received:
    """The result in a message on `subject`, checked against the configuration; Refused says why not."""
    try:
        payload = _ResultPayload.model_validate_json(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "payload"
        raise Refused(f"malformed result: {where}: {first['msg']}") from None
    from_subject = subject_vantage(subject)
    if payload.vantage != from_subject:
        raise Refused(f"result of vantage {payload.vantage!r} published on {subject}")
    vantage = config.vantages.get(from_subject)
    if vantage is None or not vantage.agent:
        raise Refused(f"{from_subject!r} is not an agent's vantage in the configuration")
    try:
        check = config.check(payload.check)
    except KeyError:
        raise Refused(f"result for {payload.check!r}, which is not a check") from None
    if from_subject not in check.vantages:
        raise Refused(f"result for {check.name} from {from_subject}, which does not probe it")
    if payload.verdict is Verdict.UP and payload.reason is not None:
        raise Refused(f"result up with a reason ({payload.reason})")
    result = ProbeResult(
        ts=payload.ts,
        check=check.name,
        vantage=from_subject,
        region=vantage.region,
        surface=check.surface,
        url=check.display_url,
        verdict=payload.verdict,
        reason=payload.reason,
        signature=payload.signature,
        status=payload.status,
        latency_ms=payload.latency_ms,
        phases=Phases(**payload.phases.model_dump()),
        bytes=payload.bytes,
        error=payload.error,
        cert_days=payload.cert_days,
        browser=payload.browser,
    )
    return Received(payload.id, result)


def parse_heartbeat(data: bytes, subject: str) -> Heartbeat:
    """The heartbeat in a message on `subject`; Refused if malformed or not its sender's."""
    try:
        p = _HeartbeatPayload.model_validate_json(data)
    except ValidationError as exc:
        raise Refused(f"malformed heartbeat: {exc.errors()[0]['msg']}") from None
    if p.vantage != subject_vantage(subject):
        raise Refused(f"heartbeat of vantage {p.vantage!r} published on {subject}")
    return Heartbeat(p.vantage, p.ts, p.interval, p.probes, p.dropped, p.config)
