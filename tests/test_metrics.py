"""Prometheus metrics: names, labels and values, parsed back with prometheus_client's own parser."""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.core import Metric
from prometheus_client.openmetrics.parser import text_string_to_metric_families as openmetrics_families
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector
from test_web import Scenario, build_status_db

from prober.config import Check, Config, ConfigError, MetricsDetail, MetricsSettings, parse_config
from prober.model import Incident, Phases, ProbeResult, Reason, State, Surface, Verdict, utcnow
from prober.store import connect
from prober.web import LiveState, ProberMetrics, create_app

T0 = datetime(2022, 12, 28, 13, 50, tzinfo=UTC)
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    """Every sample, keyed by its name and labels."""
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    matches = [v for (n, ls), v in samples.items() if n == name and set(labels.items()) <= ls]
    assert len(matches) == 1, (name, labels, matches)
    return matches[0]


def result(verdict: Verdict, **kw: Any) -> ProbeResult:
    return ProbeResult(ts=kw.pop("ts", T0), check="x-web", vantage="tokyo", region="JP", surface=Surface.WEB,
                       url="https://x.test/", verdict=verdict, **kw)  # fmt: skip


LABELS = {"check": "x-web", "vantage": "tokyo", "region": "JP", "surface": "web"}


def names(samples: Samples) -> set[str]:
    return {name for name, _ in samples}


def test_summary_is_success_per_vantage_and_the_current_state_per_check() -> None:
    """The default: what alerts need, 4 samples per check at 3 vantages (docs/metrics.md)."""
    m = ProberMetrics()
    assert m.detail == "summary"
    for vantage, region in (("tokyo", "JP"), ("london", "UK"), ("us-east", "US")):
        m.observe(replace(result(Verdict.UP, status=200, latency_ms=250.0), vantage=vantage, region=region))
    m.set_state("x-web", State.OPERATIONAL)
    m.set_open_incidents([])
    s = parse(m.exposition().decode())
    assert names(s) == {"prober_probe_success", "prober_check_state"}
    assert len(s) == 4
    assert value(s, "prober_probe_success", **LABELS) == 1
    assert value(s, "prober_check_state", check="x-web", surface="web") == 1
    assert value(s, "prober_check_state", check="x-web", state="operational") == 1

    m.observe(result(Verdict.DOWN, reason=Reason.CONNECT, ts=T0 + timedelta(minutes=1)))
    m.observe(result(Verdict.UNKNOWN, reason=Reason.VANTAGE, ts=T0 + timedelta(minutes=2)))
    m.set_state("x-web", State.PARTIAL_OUTAGE)
    m.set_open_incidents([Incident("x-web", State.PARTIAL_OUTAGE, Reason.CONNECT, None, T0, T0)])
    m.set_maintenance(["x-web"])
    s = parse(m.exposition().decode())
    assert (
        value(s, "prober_probe_success", **LABELS) == 0
    )  # the unknown result left it as the down one set it
    assert value(s, "prober_probe_success", check="x-web", vantage="london") == 1
    # Only the current state: a query for `state=~"partial_outage|major_outage"} == 1` works as on
    # the full one-hot, without its four zeros.
    assert value(s, "prober_check_state", check="x-web") == 1
    assert value(s, "prober_check_state", check="x-web", state="partial_outage") == 1
    # Open incidents and maintenance appear where they are not 0.
    assert value(s, "prober_check_open_incidents", check="x-web", surface="web") == 1
    assert value(s, "prober_check_maintenance", check="x-web", surface="web") == 1
    assert len(s) == 6


def test_full_detail_is_a_superset_of_the_summary() -> None:
    def exposed(detail: MetricsDetail) -> Samples:
        m = ProberMetrics(detail)
        m.observe(result(Verdict.DEGRADED, reason=Reason.SLOW, status=200, latency_ms=2500.0))
        m.set_state("x-web", State.DEGRADED)
        m.set_open_incidents([])
        return parse(m.exposition().decode())

    summary, full = exposed("summary"), exposed("full")
    assert summary.items() <= full.items()
    assert names(full) - names(summary) == {
        "prober_probe_verdict",
        "prober_probe_duration_seconds",
        "prober_probe_http_duration_seconds",
        "prober_probe_http_status_code",
        "prober_probe_timestamp_seconds",
        "prober_probe_results_total",
        "prober_check_open_incidents",
        "prober_check_maintenance",
    }
    # One check from one vantage: 1 success, 4 verdicts, duration, 5 phases, status, timestamp and
    # 1 counter (14 per vantage); 5 states, open incidents, maintenance (7 per check).
    assert (len(summary), len(full)) == (2, 21)


def test_configuration_chooses_the_detail() -> None:
    checks = "checks: [{name: x-web, url: 'https://x.test/'}]\n"
    assert parse_config(checks, env={}).metrics.detail == "summary"
    config = parse_config("metrics: {detail: full}\n" + checks, env={})
    assert config.metrics.detail == "full"
    live = LiveState(config)
    assert live.metrics.detail == "full"
    live.configure(parse_config(checks, env={}))  # a reload back to the default
    assert live.metrics.detail == "summary"
    with pytest.raises(ConfigError, match=r"metrics.detail: \"all\" is not one of"):
        parse_config("metrics: {detail: all}\n" + checks, env={})


class Watching(Collector):
    """Adds no series; notes whether the cyclic garbage collector runs while it is collected."""

    def __init__(self, fail: bool = False) -> None:
        self.seen: list[bool] = []
        self.fail = fail

    def collect(self) -> Iterator[Metric]:
        self.seen.append(gc.isenabled())
        if self.fail:
            raise RuntimeError("broken collector")
        return iter(())


def test_rendering_pauses_the_cyclic_collector_and_resumes_it() -> None:
    m = ProberMetrics()
    watching = Watching()
    m.registry.register(watching)
    assert gc.isenabled()
    m.exposition()
    assert watching.seen == [False] and gc.isenabled()
    gc.disable()  # paused by someone else: a rendering leaves it paused
    try:
        m.exposition()
        assert not gc.isenabled()
    finally:
        gc.enable()
    m.registry.register(Watching(fail=True))
    with pytest.raises(RuntimeError, match="broken collector"):
        m.exposition()
    assert gc.isenabled()


def test_serve_takes_the_detail_from_its_configuration(tmp_path: Path) -> None:
    scenario = build_status_db(tmp_path / "p.db")
    m = ProberMetrics()
    m.fill(connect(scenario.path), utcnow(), Config(metrics=MetricsSettings("full")))
    assert m.detail == "full"


def test_observe_sets_blackbox_like_gauges_in_full_detail() -> None:
    m = ProberMetrics("full")
    m.observe(
        result(Verdict.UP, status=200, latency_ms=250.0, phases=Phases(10, 20, 30, 150), cert_days=10.0)
    )
    s = parse(m.exposition().decode())
    assert value(s, "prober_probe_success", **LABELS) == 1
    assert value(s, "prober_probe_duration_seconds", **LABELS) == 0.25
    assert value(s, "prober_probe_http_status_code", **LABELS) == 200
    phases = {"resolve": 0.01, "connect": 0.02, "tls": 0.03, "processing": 0.15, "transfer": 0.04}
    for phase, seconds in phases.items():
        assert value(s, "prober_probe_http_duration_seconds", phase=phase, **LABELS) == pytest.approx(seconds)
    expiry = (T0 + timedelta(days=10)).timestamp()
    assert value(s, "prober_probe_ssl_earliest_cert_expiry", **LABELS) == expiry
    assert value(s, "prober_probe_timestamp_seconds", **LABELS) == T0.timestamp()
    assert value(s, "prober_probe_verdict", verdict="up", **LABELS) == 1
    assert value(s, "prober_probe_verdict", verdict="down", **LABELS) == 0
    assert value(s, "prober_probe_results_total", verdict="up", reason="", **LABELS) == 1

    m.observe(result(Verdict.DOWN, reason=Reason.CONNECT, ts=T0 + timedelta(minutes=1)))
    m.observe(result(Verdict.UNKNOWN, reason=Reason.VANTAGE, ts=T0 + timedelta(minutes=2)))
    s = parse(m.exposition().decode())
    assert (
        value(s, "prober_probe_success", **LABELS) == 0
    )  # the unknown result left it as the down one set it
    assert value(s, "prober_probe_http_status_code", **LABELS) == 0
    assert value(s, "prober_probe_verdict", verdict="unknown", **LABELS) == 1
    assert value(s, "prober_probe_verdict", verdict="down", **LABELS) == 0
    assert value(s, "prober_probe_results_total", verdict="down", reason="connect", **LABELS) == 1
    assert value(s, "prober_probe_results_total", verdict="unknown", reason="vantage", **LABELS) == 1


def test_check_states_open_incidents_and_removed_checks() -> None:
    m = ProberMetrics("full")
    m.configure(
        Config(
            checks=(
                Check("x-web", "https://x.test/"),
                Check("x-app", "https://a.test/", surface=Surface.MOBILE),
            ),
            metrics=MetricsSettings("full"),
        )
    )
    m.observe(result(Verdict.DOWN, reason=Reason.DNS))
    m.set_state("x-web", State.MAJOR_OUTAGE)
    m.set_state("x-app", State.OPERATIONAL)
    m.set_open_incidents([Incident("x-web", State.MAJOR_OUTAGE, Reason.DNS, None, T0, T0)])
    s = parse(m.exposition().decode())
    assert value(s, "prober_check_state", check="x-web", surface="web", state="major_outage") == 1
    assert value(s, "prober_check_state", check="x-web", state="operational") == 0
    assert value(s, "prober_check_state", check="x-app", surface="mobile", state="operational") == 1
    assert value(s, "prober_check_open_incidents", check="x-web", surface="web") == 1
    assert value(s, "prober_check_open_incidents", check="x-app", surface="mobile") == 0
    m.configure(
        Config(
            checks=(Check("x-app", "https://a.test/", surface=Surface.MOBILE),),
            metrics=MetricsSettings("full"),
        )
    )
    text = m.exposition().decode()
    assert 'check="x-web"' not in text
    assert 'check="x-app"' in text


async def test_metrics_endpoint_from_the_database(tmp_path: Path) -> None:
    scenario: Scenario = build_status_db(tmp_path / "p.db")
    async with TestClient(TestServer(create_app(scenario.path))) as client:
        response = await client.get("/metrics")
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain; version=")
        s = parse(await response.text())
    tokyo = {"check": "x-mobile", "vantage": "tokyo", "region": "JP", "surface": "mobile"}
    assert names(s) <= {"prober_probe_success", "prober_check_state", "prober_check_open_incidents"}
    assert value(s, "prober_probe_success", **tokyo) == 0
    assert value(s, "prober_probe_success", check="x-api", vantage="us-east") == 1  # degraded is served
    assert value(s, "prober_check_state", check="x-mobile", state="partial_outage") == 1
    assert value(s, "prober_check_state", check="x-api", state="degraded") == 1
    assert value(s, "prober_check_open_incidents", check="x-mobile", surface="mobile") == 1
    assert not [k for k in s if k[0] == "prober_check_open_incidents" and ("check", "x-web") in k[1]]

    full = ProberMetrics("full")  # `metrics: {detail: full}`; without a configuration, fill keeps it
    full.fill(connect(scenario.path), utcnow())
    s = parse(full.exposition().decode())
    assert value(s, "prober_probe_http_status_code", **tokyo) == 503
    assert value(s, "prober_probe_duration_seconds", **tokyo) == 0.03
    assert value(s, "prober_probe_verdict", check="x-api", verdict="degraded") == 1
    assert value(s, "prober_check_open_incidents", check="x-web", surface="web") == 0
    newest = max(r.ts for r in scenario.results if r.check == "x-web" and r.vantage == "us-east")
    assert value(s, "prober_probe_timestamp_seconds", check="x-web", vantage="us-east") == newest.timestamp()
    assert not [k for k in s if k[0].startswith("prober_probe_results")]  # counts only what a daemon saw


async def test_metrics_endpoint_of_a_live_daemon(tmp_path: Path) -> None:
    live = LiveState()
    live.metrics.detail = "full"
    live.observe(result(Verdict.UP, status=204, latency_ms=12.0))
    live.set_state("x-web", State.OPERATIONAL)
    async with TestClient(TestServer(create_app(tmp_path / "absent.db", live=live))) as client:
        response = await client.get(
            "/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"}
        )
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("application/openmetrics-text")
        text = await response.text()
    assert text.rstrip().endswith("# EOF")
    s = {
        (x.name, frozenset(x.labels.items())): x.value
        for family in openmetrics_families(text)
        for x in family.samples
    }
    assert value(s, "prober_probe_http_status_code", **LABELS) == 204
    assert value(s, "prober_check_state", check="x-web", state="operational") == 1


# -- the rendering is shared: scrapes never make the daemon render over and over ---------------------------


class CountingCollector(Collector):
    """Adds no series; counts how often the registry is rendered."""

    def __init__(self) -> None:
        self.renders = 0

    def collect(self) -> Iterator[Metric]:
        self.renders += 1
        return iter(())


def counted_live() -> tuple[LiveState, CountingCollector]:
    live = LiveState()
    live.metrics.detail = "full"  # the status code shows each change
    live.observe(result(Verdict.UP, status=204, latency_ms=12.0))
    counter = CountingCollector()
    live.metrics.registry.register(counter)
    return live, counter


async def scrape(client: TestClient[Any, Any], accept: str = "") -> str:
    response = await client.get("/metrics", headers={"Accept": accept} if accept else {})
    assert response.status == 200
    return await response.text()


async def test_concurrent_scrapes_share_one_rendering_per_period(tmp_path: Path) -> None:
    live, counter = counted_live()
    app = create_app(tmp_path / "absent.db", live=live, metrics_seconds=60)
    async with TestClient(TestServer(app)) as client:
        bodies = await asyncio.gather(*(scrape(client) for _ in range(50)))
        assert counter.renders == 1 and len(set(bodies)) == 1
        assert value(parse(bodies[0]), "prober_probe_http_status_code", **LABELS) == 204
        live.observe(result(Verdict.DOWN, reason=Reason.HTTP_STATUS, status=503))
        again = await asyncio.gather(*(scrape(client) for _ in range(20)))
        assert counter.renders == 1 and set(again) == set(bodies)  # within the period: the same rendering
        # The other format is a rendering of its own, shared the same way.
        openmetrics = "application/openmetrics-text; version=1.0.0"
        texts = await asyncio.gather(*(scrape(client, openmetrics) for _ in range(20)))
        assert counter.renders == 2 and len(set(texts)) == 1 and texts[0].rstrip().endswith("# EOF")


async def test_scrapes_see_a_change_within_the_period(tmp_path: Path) -> None:
    period = 0.25
    live, counter = counted_live()
    app = create_app(tmp_path / "absent.db", live=live, metrics_seconds=period)
    async with TestClient(TestServer(app)) as client:
        await scrape(client)
        live.observe(result(Verdict.DOWN, reason=Reason.HTTP_STATUS, status=503))
        changed = time.monotonic()
        for _ in range(2000):  # a scrape every period/20 until the change shows, 10 s at most
            status = value(parse(await scrape(client)), "prober_probe_http_status_code", **LABELS)
            if status == 503 or time.monotonic() - changed > 10:
                break
            await asyncio.sleep(period / 20)
        elapsed = time.monotonic() - changed
    assert status == 503
    assert elapsed < period + 1.0  # the rendering in use began before the change, at most a period ago
    # One rendering per period at most (plus the first), however often it was scraped.
    assert counter.renders <= 2 + elapsed / period
