"""Prometheus metrics: the last probe of each check and vantage, and each check's state.

Names follow the blackbox exporter's with a `prober_` prefix (`prober_probe_success` is
`probe_success`), since these are gauges of the last scheduled probe rather than the result of a
probe made for the scrape; every probe metric is labelled check, vantage, region and surface.
A daemon feeds `ProberMetrics` as results arrive (`observe`, `set_state`, `set_open_incidents`);
`prober serve` fills a fresh one from the database for each scrape (`fill`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import sqlite_utils
from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest

from prober.model import Incident, ProbeResult, State, Surface, Verdict, utcnow

if TYPE_CHECKING:
    from prober.config import Config
    from prober.web.view import Overview

PROBE_LABELS = ("check", "vantage", "region", "surface")
CHECK_LABELS = ("check", "surface")
PHASES = ("resolve", "connect", "tls", "processing", "transfer")  # the blackbox exporter's phases
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class ProberMetrics:
    """The metrics of one prober, in a registry of their own (not the process-wide default)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)

        def gauge(name: str, text: str, labels: tuple[str, ...] = PROBE_LABELS) -> Gauge:
            return Gauge(name, text, labels, registry=self.registry)

        self.success = gauge(
            "prober_probe_success",
            "1 if the last probe was up or degraded, 0 if down (unknown results leave it as it was)",
        )
        self.verdict = gauge(
            "prober_probe_verdict",
            "1 for the verdict of the last probe, 0 for the others",
            (*PROBE_LABELS, "verdict"),
        )
        self.duration = gauge("prober_probe_duration_seconds", "How long the last probe took")
        self.phase = gauge(
            "prober_probe_http_duration_seconds",
            "Duration of each phase of the last probe",
            (*PROBE_LABELS, "phase"),
        )
        self.status = gauge(
            "prober_probe_http_status_code", "HTTP status of the last probe, 0 without response"
        )
        self.cert = gauge(
            "prober_probe_ssl_earliest_cert_expiry",
            "Unix time when the certificate seen by the last probe expires",
        )
        self.timestamp = gauge("prober_probe_timestamp_seconds", "Unix time of the last probe")
        self.results = Counter(
            "prober_probe_results",
            "Probe results seen by this process, by verdict and reason",
            (*PROBE_LABELS, "verdict", "reason"),
            registry=self.registry,
        )
        self.state = gauge(
            "prober_check_state",
            "1 for the check's current state, 0 for the others",
            (*CHECK_LABELS, "state"),
        )
        self.open_incidents = gauge(
            "prober_check_open_incidents", "Incidents of the check not yet resolved", CHECK_LABELS
        )
        self._surfaces: dict[str, str] = {}  # check -> surface, for the check-level labels
        self._probe_labels: dict[str, set[tuple[str, str, str, str]]] = {}  # check -> label sets in use
        self._counted: dict[str, set[tuple[str, ...]]] = {}  # check -> label sets of the counter

    # -- what the daemon calls ------------------------------------------------------------------------

    def configure(self, config: Config) -> None:
        """Learn each check's surface; forget the series of checks no longer configured."""
        wanted = {c.name: str(c.surface) for c in config.checks}
        for check in set(self._surfaces) | set(self._probe_labels):
            if check not in wanted or self._surfaces.get(check, wanted[check]) != wanted[check]:
                self.forget(check)
        self._surfaces.update(wanted)

    def observe(self, result: ProbeResult, *, count: bool = True) -> None:
        """Record one probe result (`count=False`: set the gauges only, as when loading history)."""
        labels = (result.check, result.vantage, result.region, str(result.surface))
        self._probe_labels.setdefault(result.check, set()).add(labels)
        self._surfaces.setdefault(result.check, str(result.surface))
        if count:
            counted = (*labels, str(result.verdict), str(result.reason or ""))
            self._counted.setdefault(result.check, set()).add(counted)
            self.results.labels(*counted).inc()
        for verdict in Verdict:
            self.verdict.labels(*labels, str(verdict)).set(1 if verdict is result.verdict else 0)
        self.timestamp.labels(*labels).set(result.ts.timestamp())
        if result.verdict is Verdict.UNKNOWN:
            return  # the vantage failed: nothing is known about the target
        self.success.labels(*labels).set(1 if result.verdict in (Verdict.UP, Verdict.DEGRADED) else 0)
        self.status.labels(*labels).set(result.status or 0)
        if result.latency_ms is not None:
            self.duration.labels(*labels).set(result.latency_ms / 1000)
        p = result.phases
        known = [x for x in (p.dns_ms, p.connect_ms, p.tls_ms, p.ttfb_ms) if x is not None]
        transfer = None
        if result.latency_ms is not None and p.ttfb_ms is not None:
            transfer = max(result.latency_ms - sum(known), 0.0)
        for phase, ms in zip(PHASES, (p.dns_ms, p.connect_ms, p.tls_ms, p.ttfb_ms, transfer), strict=True):
            self.phase.labels(*labels, phase).set(0.0 if ms is None else ms / 1000)
        if result.cert_days is not None:
            self.cert.labels(*labels).set((result.ts + timedelta(days=result.cert_days)).timestamp())

    def set_state(self, check: str, state: State, surface: Surface | str | None = None) -> None:
        """Record a check's current state."""
        surface = self._surface(check, surface)
        for s in State:
            self.state.labels(check, surface, str(s)).set(1 if s is state else 0)

    def set_open_incidents(self, incidents: Iterable[Incident], checks: Iterable[str] = ()) -> None:
        """Record the open incidents: every check known (and those in `checks`) gets its count, 0 if none."""
        counts = dict.fromkeys([*self._surfaces, *checks], 0)
        for incident in incidents:
            if incident.resolved_at is None:
                counts[incident.check] = counts.get(incident.check, 0) + 1
        for check, n in counts.items():
            self.open_incidents.labels(check, self._surface(check, None)).set(n)

    def forget(self, check: str) -> None:
        """Drop every series of a check (removed from the configuration)."""
        for labels in self._probe_labels.pop(check, set()):
            for metric in (self.success, self.duration, self.status, self.cert, self.timestamp):
                _remove(metric, labels)
            for verdict in Verdict:
                _remove(self.verdict, (*labels, str(verdict)))
            for phase in PHASES:
                _remove(self.phase, (*labels, phase))
        for counted in self._counted.pop(check, set()):
            _remove(self.results, counted)
        surface = self._surfaces.pop(check, None)
        if surface is not None:
            for s in State:
                _remove(self.state, (check, surface, str(s)))
            _remove(self.open_incidents, (check, surface))

    def _surface(self, check: str, surface: Surface | str | None) -> str:
        if surface is not None:
            self._surfaces[check] = str(surface)
        return self._surfaces.get(check, str(Surface.WEB))

    # -- from the database --------------------------------------------------------------------------

    def load(self, overview: Overview) -> None:
        """Set the gauges from an overview of the checks (newest results, states, open incidents)."""
        for status in overview.checks:
            self._surfaces[status.name] = str(status.info.surface)
            for result in status.latest.values():
                if result.vantage in status.info.vantages:
                    self.observe(result, count=False)
            self.set_state(status.name, status.state)
        self.set_open_incidents(overview.open_incidents)

    def fill(
        self, db: sqlite_utils.Database, now: datetime | None = None, config: Config | None = None
    ) -> None:
        """Set the gauges from the database's newest results and open incidents (blocking)."""
        from prober.web.view import load_overview  # view imports nothing of this module

        self.load(load_overview(db, now or utcnow(), config))

    def exposition(self) -> bytes:
        """The metrics in the Prometheus text format."""
        return generate_latest(self.registry)


def _remove(metric: Gauge | Counter, labels: tuple[str, ...]) -> None:
    with contextlib.suppress(KeyError):  # never set
        metric.remove(*labels)
