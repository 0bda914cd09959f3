"""Prometheus metrics: the last probe of each check and vantage, and each check's state.

Names follow the blackbox exporter's with a `prober_` prefix (`prober_probe_success` is
`probe_success`), since these are gauges of the last scheduled probe rather than the result of a
probe made for the scrape; every probe metric is labelled check, vantage, region and surface.
A daemon feeds `ProberMetrics` as results arrive (`observe`, `set_state`, `set_open_incidents`);
`prober serve` fills a fresh one from the database for each rendering (`fill`). `/metrics` serves
a rendering at most a second old from an `ExpositionCache`.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import sqlite_utils
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample

from prober.model import Incident, ProbeResult, State, Surface, Verdict, utcnow
from prober.store import StoreHealth

if TYPE_CHECKING:
    from prober.config import Config, MetricsDetail
    from prober.web.view import Overview

PROBE_LABELS = ("check", "vantage", "region", "surface")
CHECK_LABELS = ("check", "surface")
PHASES = ("resolve", "connect", "tls", "processing", "transfer")  # the blackbox exporter's phases
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_SUCCESS = (Verdict.UP, Verdict.DEGRADED)
_SUCCESS_HELP = "1 if the last probe was up or degraded, 0 if down (unknown results leave it as it was)"


@dataclass(frozen=True, slots=True)
class Health:
    """A running daemon's own health: its store, and the probes it made or could not make."""

    store: StoreHealth
    probes: int  # probes made since the daemon started
    probes_skipped: int  # runs and probes not made: too late to start, or the previous run still going
    outbox: Mapping[str, Any] | None = None  # the alert outbox's figures (prober.alerts.outbox.figures)


@dataclass(frozen=True, slots=True)
class BrowserFigures:
    """What the browsers of browser checks did (`prober.browser.Browsers.figures`)."""

    verdicts: dict[str, int]  # rendered probes by verdict
    in_flight: int  # pages being rendered now
    restarts: int  # browsers launched again: after a crash, or after their share of pages


class ProberMetrics:
    """The metrics of one prober, in a registry of their own (not the process-wide default).

    Values are kept in plain dicts (the last result of each check and vantage, counts, states)
    and turned into metric families only when scraped: at 20,000 checks from 3 vantages,
    one `Gauge` child per series meant 780,000 objects, 680 MiB and a garbage collector that
    could not keep up; a dict entry per check and vantage costs nothing on the probe path.
    """

    def __init__(self, detail: MetricsDetail = "summary") -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.detail = detail  # the configuration's `metrics: {detail}`: summary, or full
        self._latest: dict[tuple[str, str], ProbeResult] = {}  # (check, vantage) -> last result
        self._known: dict[tuple[str, str], ProbeResult] = {}  # the last one that was not unknown
        self._counts: dict[tuple[str, ...], int] = {}  # probe labels + verdict + reason -> count
        self._states: dict[str, State] = {}
        self._open: dict[str, int] = {}
        self._maintenance: frozenset[str] = frozenset()  # checks under maintenance now
        self._surfaces: dict[str, str] = {}  # check -> surface, for the check-level labels
        self.health: Callable[[], Health] | None = None  # a daemon's; `prober serve` has none
        self.browsers: Callable[[], BrowserFigures] | None = None  # a daemon's with browser checks
        self.registry.register(_Collector(self))

    # -- what the daemon calls ------------------------------------------------------------------------

    def configure(self, config: Config) -> None:
        """Learn the detail wanted and each check's surface; forget the checks no longer configured."""
        self.detail = config.metrics.detail
        wanted = {c.name: str(c.surface) for c in config.checks}
        known = set(self._surfaces) | {check for check, _ in self._latest}
        for check in known:
            if check not in wanted or self._surfaces.get(check, wanted[check]) != wanted[check]:
                self.forget(check)
        self._surfaces.update(wanted)

    def observe(self, result: ProbeResult, *, count: bool = True) -> None:
        """Record one probe result (`count=False`: set the gauges only, as when loading history)."""
        key = (result.check, result.vantage)
        self._latest[key] = result
        if result.verdict is not Verdict.UNKNOWN:  # the vantage failed: nothing known of the target
            self._known[key] = result
        self._surfaces.setdefault(result.check, str(result.surface))
        if count:
            counted = (*_labels(result), str(result.verdict), str(result.reason or ""))
            self._counts[counted] = self._counts.get(counted, 0) + 1

    def set_state(self, check: str, state: State, surface: Surface | str | None = None) -> None:
        """Record a check's current state."""
        self._surface(check, surface)
        self._states[check] = state

    def set_open_incidents(self, incidents: Iterable[Incident], checks: Iterable[str] = ()) -> None:
        """Record the open incidents: every check known (and those in `checks`) gets its count, 0 if none."""
        counts = dict.fromkeys([*self._surfaces, *checks], 0)
        for incident in incidents:
            if incident.resolved_at is None:
                counts[incident.check] = counts.get(incident.check, 0) + 1
        self._open = counts

    def set_maintenance(self, checks: Iterable[str]) -> None:
        """Record which checks are under maintenance now (the others are not)."""
        self._maintenance = frozenset(checks)

    def forget(self, check: str) -> None:
        """Drop every series of a check (removed from the configuration)."""
        for store in (self._latest, self._known):
            for key in [k for k in store if k[0] == check]:
                del store[key]
        for counted in [k for k in self._counts if k[0] == check]:
            del self._counts[counted]
        self._states.pop(check, None)
        self._open.pop(check, None)
        self._surfaces.pop(check, None)

    def _surface(self, check: str, surface: Surface | str | None) -> str:
        if surface is not None:
            self._surfaces[check] = str(surface)
        return self._surfaces.get(check, str(Surface.WEB))

    def families(self) -> Iterator[Metric]:
        """The metric families as of now (called by the registry at each scrape).

        The summary (the default) is what alerts need: per check and vantage `prober_probe_success`,
        per check its state (the current one only) and, where not 0, open incidents and
        maintenance: 4 samples per check at 3 vantages. `detail="full"` adds every other series,
        one-hot sets with their zeros, and the counters: about 14 samples per check and vantage.
        The text is prometheus_client's, at about 5.5 µs a sample (8 µs in OpenMetrics): the
        summary is what keeps a scrape of 20,000 checks x 3 vantages under a second.
        """
        full = self.detail == "full"
        # Copies: the loop thread may add while this runs. Labels are built once per series and
        # shared by its families; samples are appended as prometheus_client's add_metric would.
        known = [(r, _label_dict(r)) for r in list(self._known.values())]
        success = _gauge("prober_probe_success", _SUCCESS_HELP, PROBE_LABELS)
        for r, labels in known:
            success.samples.append(Sample(success.name, labels, 1 if r.verdict in _SUCCESS else 0))
        if self.health is not None:
            yield from _health_families(self.health())
        if self.browsers is not None:
            yield from _browser_families(self.browsers())
        yield success
        if full:
            yield from self._probe_details(known)
        yield from self._check_families(full)

    def _probe_details(self, known: list[tuple[ProbeResult, dict[str, str]]]) -> Iterator[Metric]:
        """The per-vantage series of `detail: full` beyond success."""
        duration = _gauge("prober_probe_duration_seconds", "How long the last probe took", PROBE_LABELS)
        phase = _gauge(
            "prober_probe_http_duration_seconds",
            "Duration of each phase of the last probe",
            (*PROBE_LABELS, "phase"),
        )
        status = _gauge(
            "prober_probe_http_status_code", "HTTP status of the last probe, 0 without response", PROBE_LABELS
        )
        cert = _gauge(
            "prober_probe_ssl_earliest_cert_expiry",
            "Unix time when the certificate seen by the last probe expires",
            PROBE_LABELS,
        )
        for r, labels in known:
            if r.latency_ms is not None:
                duration.samples.append(Sample(duration.name, labels, r.latency_ms / 1000))
            status.samples.append(Sample(status.name, labels, r.status or 0))
            for name, ms in zip(PHASES, _phases(r), strict=True):
                phase.samples.append(
                    Sample(phase.name, {**labels, "phase": name}, 0.0 if ms is None else ms / 1000)
                )
            if r.cert_days is not None:
                expiry = (r.ts + timedelta(days=r.cert_days)).timestamp()
                cert.samples.append(Sample(cert.name, labels, expiry))
        verdict = _gauge(
            "prober_probe_verdict",
            "1 for the verdict of the last probe, 0 for the others",
            (*PROBE_LABELS, "verdict"),
        )
        timestamp = _gauge("prober_probe_timestamp_seconds", "Unix time of the last probe", PROBE_LABELS)
        for r in list(self._latest.values()):
            values = _labels(r)
            for v in Verdict:
                verdict.add_metric([*values, str(v)], 1 if v is r.verdict else 0)
            timestamp.add_metric(values, r.ts.timestamp())
        results = CounterMetricFamily(
            "prober_probe_results",
            "Probe results seen by this process, by verdict and reason",
            labels=(*PROBE_LABELS, "verdict", "reason"),
        )
        for counted, n in list(self._counts.items()):
            results.add_metric(counted, n)
        yield from (verdict, duration, phase, status, cert, timestamp, results)

    def _check_families(self, full: bool) -> Iterator[Metric]:
        """Per check: its state (the summary: the current one only), open incidents, maintenance."""
        state = _gauge(
            "prober_check_state",
            "1 for the check's current state, 0 for the others",
            (*CHECK_LABELS, "state"),
        )
        for check, current in list(self._states.items()):
            surface = self._surface(check, None)
            for s in State if full else (current,):
                state.samples.append(
                    Sample(state.name, _check_dict(check, surface, state=str(s)), int(s is current))
                )
        open_incidents = _gauge(
            "prober_check_open_incidents", "Incidents of the check not yet resolved", CHECK_LABELS
        )
        for check, n in list(self._open.items()):
            if n or full:
                open_incidents.add_metric([check, self._surface(check, None)], n)
        maintenance = _gauge(
            "prober_check_maintenance", "1 while a maintenance window covers the check", CHECK_LABELS
        )
        for check in list(self._surfaces) if full else sorted(self._maintenance & set(self._surfaces)):
            maintenance.add_metric([check, self._surface(check, None)], int(check in self._maintenance))
        yield from (state, open_incidents, maintenance)

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
        from prober.maintenance.record import under_maintenance
        from prober.web.view import load_overview  # view imports nothing of this module

        if config is not None:
            self.detail = config.metrics.detail
        # Operator-facing: hidden checks and URLs too, like the daemon's live metrics.
        self.load(load_overview(db, now or utcnow(), config, public=False))
        self.set_maintenance(under_maintenance(db, now or utcnow(), self._surfaces))

    def exposition(self) -> bytes:
        """The metrics in the Prometheus text format."""
        return expose(generate_latest, self.registry)


def expose(encoder: Callable[[CollectorRegistry], bytes], registry: CollectorRegistry) -> bytes:
    """`encoder(registry)` (prometheus_client's text or OpenMetrics) with the cyclic garbage
    collector paused.

    A rendering makes one tracked `Sample` per sample, all alive until the text is written: tens
    of thousands of survivors that trigger collection after collection of a heap they are not
    garbage in (a third of the rendering's CPU at 20,000 checks x 3). They hold no cycles, and
    are freed by reference counting when the rendering is done. Collection resumes after it,
    unless someone else had paused it (another rendering in another thread: the last one done
    resumes it).
    """
    paused = gc.isenabled()
    gc.disable()
    try:
        return encoder(registry)
    finally:
        if paused:
            gc.enable()


class _Collector(Collector):
    def __init__(self, metrics: ProberMetrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        return self._metrics.families()


def _health_families(health: Health) -> Iterator[Metric]:
    """The daemon's own figures: whether the database takes writes, what waits, what was lost."""
    store = health.store
    failing_since = 0 if store.failing_since is None else store.failing_since.timestamp()
    gauges = (
        ("prober_store_writable", "1 if the database takes writes, 0 while they fail", int(store.ok)),
        ("prober_store_backlog", "Results waiting to be written", store.backlog),
        (
            "prober_store_backlog_limit",
            "Results that may wait before more are dropped",
            store.max_backlog,
        ),
        (
            "prober_store_failing_since_seconds",
            "When writes started failing (Unix time), else 0",
            failing_since,
        ),
    )
    counters = (
        ("prober_store_write_errors", "Failed attempts to write to the database", store.write_errors),
        ("prober_results_written", "Results written to the database", store.written),
        ("prober_results_dropped", "Results dropped because the backlog was full", store.dropped),
        ("prober_results_unsaved", "Results given up on: the database refused them", store.unsaved),
        ("prober_probes", "Probes made by this daemon", health.probes),
        (
            "prober_probes_skipped",
            "Probes not made: too late, or still running",
            health.probes_skipped,
        ),
    )
    for name, text, value in gauges:
        yield GaugeMetricFamily(name, text, value=value)
    for name, text, value in counters:
        yield CounterMetricFamily(name, text, value=value)
    if health.outbox is not None:
        yield from _outbox_families(health.outbox)


def _outbox_families(outbox: Mapping[str, Any]) -> Iterator[Metric]:
    """The alert outbox: notifications by channel and state, what waits, and for how long."""
    notes = GaugeMetricFamily(
        "prober_notifications",
        "Notifications in the outbox by channel and state",
        labels=["channel", "state"],
    )
    for row in outbox["by_channel"]:
        notes.add_metric([row["channel"], row["state"]], row["count"])
    yield notes
    yield GaugeMetricFamily("prober_outbox_depth", "Notifications not yet delivered", value=outbox["pending"])
    age = outbox["oldest_pending_seconds"]
    yield GaugeMetricFamily(
        "prober_outbox_oldest_pending_seconds", "Age of the oldest pending one", value=age
    )


def _labels(result: ProbeResult) -> list[str]:
    return [result.check, result.vantage, result.region, str(result.surface)]


def _label_dict(r: ProbeResult) -> dict[str, str]:
    return {"check": r.check, "vantage": r.vantage, "region": r.region, "surface": str(r.surface)}


def _check_dict(check: str, surface: str, **extra: str) -> dict[str, str]:
    return {"check": check, "surface": surface, **extra}


def _gauge(name: str, text: str, labels: tuple[str, ...]) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, text, labels=labels)


def _phases(result: ProbeResult) -> tuple[float | None, ...]:
    """The blackbox exporter's phases: resolve, connect, tls, processing (to first byte), transfer."""
    p = result.phases
    known = [x for x in (p.dns_ms, p.connect_ms, p.tls_ms, p.ttfb_ms) if x is not None]
    transfer = None
    if result.latency_ms is not None and p.ttfb_ms is not None:
        transfer = max(result.latency_ms - sum(known), 0.0)
    return (p.dns_ms, p.connect_ms, p.tls_ms, p.ttfb_ms, transfer)


class ExpositionCache:
    """The /metrics body of each format, rendered at most once every `period` seconds.

    Rendering thousands of series takes a while, and holds the GIL even in a thread: rendered
    anew for each scrape, 50 scrapers cut a daemon's probing to a third. Here a scrape within
    `period` of the last rendering's start gets that body; a later one starts a new rendering,
    and the scrapes arriving meanwhile share it. A failed rendering is not kept: the next scrape
    tries again.
    """

    def __init__(self, period: float = 1.0) -> None:
        self.period = period
        self._done: dict[str, tuple[float, bytes]] = {}  # format -> (when its rendering started, body)
        self._pending: dict[str, asyncio.Task[bytes]] = {}

    async def get(self, key: str, render: Callable[[], Awaitable[bytes]]) -> bytes:
        """The body of format `key`: the one rendered last if recent enough, else one `render()` makes."""
        done = self._done.get(key)
        if done is not None and time.monotonic() - done[0] < self.period:
            return done[1]
        task = self._pending.get(key)
        if task is None:
            task = self._pending[key] = asyncio.create_task(self._render(key, render))
            task.add_done_callback(_seen)
        # Shielded: a scraper that hangs up does not cancel the rendering the others wait for.
        return await asyncio.shield(task)

    async def _render(self, key: str, render: Callable[[], Awaitable[bytes]]) -> bytes:
        started = time.monotonic()
        try:
            body = await render()
        finally:
            self._pending.pop(key, None)
        self._done[key] = (started, body)
        return body

    async def close(self) -> None:
        """Cancel the renderings under way."""
        tasks = list(self._pending.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _seen(task: asyncio.Task[bytes]) -> None:
    """Mark a rendering's failure as retrieved: the scrapes waiting for it got it, or were gone."""
    if not task.cancelled():
        task.exception()


def _browser_families(figures: BrowserFigures) -> Iterator[Metric]:
    probes = CounterMetricFamily(
        "prober_browser_probes", "Rendered (browser check) probes by verdict", labels=("verdict",)
    )
    for verdict in Verdict:
        probes.add_metric([str(verdict)], figures.verdicts.get(str(verdict), 0))
    yield probes
    yield GaugeMetricFamily("prober_browser_pages_in_flight", "Pages being rendered now", figures.in_flight)
    yield CounterMetricFamily(
        "prober_browser_restarts",
        "Browsers launched again, after a crash or after their share of pages",
        figures.restarts,
    )
