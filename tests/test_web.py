"""The web app on a real server over a real database holding a scripted incident: paths, shapes, errors."""

from __future__ import annotations

import asyncio
import gzip
import re
import socket
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from prober.config import Check, Config, Vantage
from prober.model import Incident, ProbeResult, Reason, State, Surface, Verdict, iso, utcnow
from prober.store import Store, connect, summaries
from prober.web import LiveState, WebError, create_app, parse_http, start_server
from prober.web.answers import Answer, AnswerCache, accepts_gzip
from prober.web.view import HistoryCache

VANTAGES = {"us-east": "US", "tokyo": "JP", "london": "UK"}
CHECKS = {"x-web": Surface.WEB, "x-mobile": Surface.MOBILE, "x-api": Surface.API}
XSS = '<script>window.__pwned = 1</script> upstream said "nope" & <b>bold</b>'
FRET = "Something went wrong, but don't fret"
STEP = timedelta(minutes=5)


@dataclass
class Scenario:
    """A database with three days of results: x-web had a major outage two days ago (resolved),
    x-mobile is partly down in JP now (open incident, its error page quotes a script), x-api is slow."""

    path: Path
    now: datetime
    outage: tuple[datetime, datetime]
    mobile_since: datetime
    incidents: dict[str, Incident] = field(default_factory=dict)
    results: list[ProbeResult] = field(default_factory=list)

    def vantages(self, check: str) -> dict[str, str]:
        return {"us-east": "US"} if check == "x-api" else VANTAGES


def open_store(path: Path) -> Store:
    """A store: every Store keeps the rollups as it writes."""
    return Store(path)


def build_status_db(path: Path) -> Scenario:
    """Write the scripted scenario with Store, times relative to now."""
    now = utcnow()
    day = (now - timedelta(days=2)).date()
    start = datetime(day.year, day.month, day.day, 13, 50, tzinfo=UTC)
    s = Scenario(path, now, (start, start + timedelta(minutes=55)), now - timedelta(minutes=20))
    ts = (now - timedelta(days=3)).replace(second=0, microsecond=0)
    n = 0
    while ts <= now - timedelta(seconds=30):
        for check, surface in CHECKS.items():
            for vantage, region in s.vantages(check).items():
                n += 1
                kw: dict[str, Any] = {"verdict": Verdict.UP, "status": 200, "latency_ms": 80.0 + n % 50}
                if check == "x-web" and s.outage[0] <= ts < s.outage[1]:
                    kw = {"verdict": Verdict.DOWN, "reason": Reason.ERROR_PAGE, "signature": "x-fret",
                          "status": 200, "latency_ms": 60.0, "error": FRET}  # fmt: skip
                elif check == "x-mobile" and vantage == "tokyo" and ts >= s.mobile_since:
                    kw = {"verdict": Verdict.DOWN, "reason": Reason.HTTP_STATUS, "status": 503,
                          "latency_ms": 30.0, "error": XSS}  # fmt: skip
                elif check == "x-api" and ts >= now - timedelta(minutes=12):
                    kw = {
                        "verdict": Verdict.DEGRADED,
                        "reason": Reason.SLOW,
                        "status": 200,
                        "latency_ms": 2500.0,
                    }
                elif (
                    check == "x-web" and vantage == "london" and now - ts < timedelta(hours=2) and n % 7 == 0
                ):
                    kw = {"verdict": Verdict.UNKNOWN, "reason": Reason.VANTAGE, "error": "proxy unreachable"}
                s.results.append(
                    ProbeResult(ts=ts, check=check, vantage=vantage, region=region, surface=surface,
                                url=f"https://{check}.example.test/", **kw)
                )  # fmt: skip
        ts += STEP
    web = Incident("x-web", State.MAJOR_OUTAGE, Reason.ERROR_PAGE, "x-fret", s.outage[0],
                   s.outage[0] + timedelta(minutes=10), s.outage[1], tuple(VANTAGES),
                   ("JP", "UK", "US"))  # fmt: skip
    mobile = Incident("x-mobile", State.PARTIAL_OUTAGE, Reason.HTTP_STATUS, None, s.mobile_since,
                      s.mobile_since + timedelta(minutes=10), None, ("tokyo",), ("JP",))  # fmt: skip
    with open_store(path) as store:
        for result in s.results:
            store.add(result)
        for incident in (web, mobile):
            ident = store.save_incident(incident).result()
            s.incidents[incident.check] = replace(incident, id=ident)
    return s


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Scenario:
    return build_status_db(tmp_path_factory.mktemp("web") / "prober.db")


@pytest.fixture
async def client(scenario: Scenario) -> AsyncIterator[TestClient[Any, Any]]:
    async with TestClient(TestServer(create_app(scenario.path, title="X status"))) as c:
        yield c


async def get_json(client: TestClient[Any, Any], path: str, status: int = 200) -> Any:
    response = await client.get(path)
    assert response.status == status, await response.text()
    assert response.headers["Content-Type"].startswith("application/json")
    return await response.json()


def availability(results: list[ProbeResult]) -> float:
    judged = [r for r in results if r.verdict is not Verdict.UNKNOWN]
    return sum(r.verdict in (Verdict.UP, Verdict.DEGRADED) for r in judged) / len(judged)


# -- Statuspage shapes -------------------------------------------------------------------------------


async def test_status_json(client: TestClient[Any, Any], scenario: Scenario) -> None:
    body = await get_json(client, "/api/v2/status.json")
    assert set(body) == {"page", "status"}
    page = body["page"]
    assert set(page) == {"id", "name", "url", "time_zone", "updated_at"}
    assert page["name"] == "X status" and page["time_zone"] == "Etc/UTC"
    assert len(page["id"]) == 12 and page["url"] == f"http://{client.host}:{client.port}/"
    assert page["updated_at"] == iso(max(r.ts for r in scenario.results))
    assert body["status"] == {"indicator": "major", "description": "Partial Outage"}


async def test_summary_json_field_by_field(client: TestClient[Any, Any], scenario: Scenario) -> None:
    body = await get_json(client, "/api/v2/summary.json")
    assert list(body) == ["page", "components", "incidents", "scheduled_maintenances", "status"]
    assert body["status"] == {"indicator": "major", "description": "Partial Outage"}
    assert body["scheduled_maintenances"] == []
    page_id = body["page"]["id"]
    components = body["components"]
    groups = [c for c in components if c["group"]]
    assert [g["name"] for g in groups] == ["Web", "Mobile", "API"]
    assert [c["position"] for c in components] == list(range(1, 7))
    by_id = {c["id"]: c for c in components}
    expected_status = {"x-web": "operational", "x-mobile": "partial_outage", "x-api": "degraded_performance"}
    for group in groups:
        assert set(group) == {
            "id", "name", "status", "created_at", "updated_at", "position", "description", "showcase",
            "start_date", "group_id", "page_id", "group", "only_show_if_degraded", "components",
        }  # fmt: skip
        assert group["group_id"] is None and group["page_id"] == page_id
        (child,) = group["components"]
        assert by_id[child]["group_id"] == group["id"]
        assert group["status"] == expected_status[child]
    for name, status in expected_status.items():
        c = by_id[name]
        assert set(c) == {
            "id", "name", "status", "created_at", "updated_at", "position", "description", "showcase",
            "start_date", "group_id", "page_id", "group", "only_show_if_degraded", "prober_state",
        }  # fmt: skip
        assert (c["name"], c["status"], c["group"], c["page_id"]) == (name, status, False, page_id)
        assert c["only_show_if_degraded"] is False and c["showcase"] is True
        newest = max(r.ts for r in scenario.results if r.check == name)
        oldest = min(r.ts for r in scenario.results if r.check == name)
        assert (c["updated_at"], c["created_at"]) == (iso(newest), iso(oldest))
        assert c["start_date"] == oldest.date().isoformat()
    assert by_id["x-mobile"]["description"] == "UK operational, JP down, US operational"
    assert by_id["x-mobile"]["prober_state"] == "partial_outage"

    (incident,) = body["incidents"]  # unresolved only: x-web's outage is over
    mobile = scenario.incidents["x-mobile"]
    assert set(incident) == {
        "id", "name", "status", "created_at", "updated_at", "monitoring_at", "resolved_at", "impact",
        "shortlink", "started_at", "page_id", "incident_updates", "components",
    }  # fmt: skip
    assert incident["id"] == str(mobile.id)
    assert incident["name"] == "x-mobile: partial outage"
    assert (incident["status"], incident["impact"]) == ("investigating", "major")
    assert incident["started_at"] == iso(mobile.started_at)
    assert incident["created_at"] == iso(mobile.detected_at)
    assert incident["resolved_at"] is None and incident["monitoring_at"] is None
    assert incident["shortlink"].endswith(f"/#incident-{mobile.id}")
    assert incident["components"] == [by_id["x-mobile"]]
    (update,) = incident["incident_updates"]
    assert set(update) == {
        "id", "status", "body", "incident_id", "created_at", "updated_at", "display_at",
        "affected_components", "deliver_notifications", "custom_tweet", "tweet_id",
    }  # fmt: skip
    assert update["status"] == "investigating" and update["incident_id"] == str(mobile.id)
    assert "JP" in update["body"] and "http_status" in update["body"]
    assert update["affected_components"] == [
        {"code": "x-mobile", "name": "x-mobile", "old_status": "operational", "new_status": "partial_outage"}
    ]


# -- our own APIs -------------------------------------------------------------------------------------


async def test_api_checks(client: TestClient[Any, Any], scenario: Scenario) -> None:
    body = await get_json(client, "/api/checks")
    assert body["state"] == "partial_outage"
    checks = {c["name"]: c for c in body["checks"]}
    assert list(checks) == ["x-api", "x-mobile", "x-web"]  # without a configuration: by name
    mobile = checks["x-mobile"]
    assert set(mobile) == {
        "name", "display_name", "description", "surface", "url", "state", "regions", "vantages",
        "last_probed_at", "last_results", "incident", "availability", "counts", "maintenance",
    }  # fmt: skip
    assert (mobile["surface"], mobile["state"]) == ("mobile", "partial_outage")
    assert mobile["regions"] == {"JP": "major_outage", "UK": "operational", "US": "operational"}
    assert mobile["vantages"] == {"london": "UK", "tokyo": "JP", "us-east": "US"}
    tokyo = mobile["last_results"]["tokyo"]
    assert (tokyo["verdict"], tokyo["reason"], tokyo["status"], tokyo["error"]) == (
        "down",
        "http_status",
        503,
        XSS,
    )
    assert mobile["incident"]["id"] == scenario.incidents["x-mobile"].id and mobile["incident"]["ongoing"]
    assert checks["x-api"]["state"] == "degraded"
    assert checks["x-web"]["state"] == "operational"
    assert checks["x-web"]["incident"] is None

    web = [r for r in scenario.results if r.check == "x-web"]
    assert checks["x-web"]["availability"]["24h"] == 1.0  # the outage was two days ago; unknown excluded
    for window in ("7d", "30d", "90d"):  # all three days of data
        assert checks["x-web"]["availability"][window] == pytest.approx(availability(web), abs=1e-6)
    assert checks["x-web"]["counts"]["90d"] == {
        v: sum(r.verdict is Verdict(v) for r in web) for v in ("up", "degraded", "down", "unknown")
    }
    assert checks["x-web"]["counts"]["90d"]["down"] == 11 * 3
    assert checks["x-mobile"]["availability"]["24h"] < 1.0


async def test_api_check_and_unknown_check(client: TestClient[Any, Any]) -> None:
    one = await get_json(client, "/api/checks/x-web")
    assert one["name"] == "x-web" and one["availability"]["90d"] < 1
    body = await get_json(client, "/api/checks/nope", 404)
    assert body == {"error": 'no check named "nope"', "status": 404}
    await get_json(client, "/api/checks/nope/results", 404)
    await get_json(client, "/api/incidents?check=nope", 404)


async def test_results_paginate_with_a_bounded_limit(
    client: TestClient[Any, Any], scenario: Scenario
) -> None:
    expected = [r for r in scenario.results if r.check == "x-mobile" and r.vantage == "tokyo"]
    since = scenario.now - timedelta(hours=6)
    expected = [r for r in expected if r.ts >= since]
    url: str | None = f"/api/checks/x-mobile/results?since={iso(since)}&vantage=tokyo&limit=25"
    seen: list[dict[str, Any]] = []
    pages = 0
    while url:
        body = await get_json(client, url)
        assert body["limit"] == 25 and body["vantage"] == "tokyo" and body["count"] == len(body["results"])
        seen += body["results"]
        url = body["next"]
        pages += 1
    assert pages == len(expected) // 25 + 1
    assert [r["ts"] for r in seen] == [iso(r.ts) for r in expected]
    assert seen[-1]["error"] == XSS and {"id", "phases", "latency_ms"} <= set(seen[-1])


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("limit=ten", "limit"),
        ("since=yesterday", "since"),
        ("until=2022-13-45", "until"),
        ("since=1h&until=2h", "after until"),
        ("vantage=mars", "not a vantage"),
        ("cursor=garbage", "cursor"),
        ("sinse=1h", "unknown query parameter"),
        ("limit=1&limit=2", "twice"),
    ],
    ids=["zero", "too-many", "not-a-number", "bad-since", "bad-until", "since-after-until", "vantage",
         "cursor", "unknown", "twice"],
)  # fmt: skip
async def test_bad_query_parameters_are_400_with_a_json_error(
    client: TestClient[Any, Any], query: str, message: str
) -> None:
    body = await get_json(client, f"/api/checks/x-web/results?{query}", 400)
    assert body["status"] == 400 and message in body["error"]


async def test_since_and_until_accept_iso_times_and_durations(
    client: TestClient[Any, Any], scenario: Scenario
) -> None:
    start, end = scenario.outage
    iso_q = f"since={iso(start)}&until={iso(end)}&limit=1000"
    body = await get_json(client, f"/api/checks/x-web/results?{iso_q}")
    assert body["count"] == 11 * 3 and {r["verdict"] for r in body["results"]} == {"down"}
    day = start.date().isoformat()  # a bare date is midnight UTC
    body = await get_json(client, f"/api/checks/x-web/results?since={day}&until={day}T13:50Z&limit=1000")
    assert body["count"] == (13 * 12 + 10) * 3
    body = await get_json(client, "/api/checks/x-api/results?since=30m&until=now")
    assert 5 <= body["count"] <= 7 and body["until"] is not None


async def test_api_incidents(client: TestClient[Any, Any], scenario: Scenario) -> None:
    body = await get_json(client, "/api/incidents?since=7d")
    assert [i["check"] for i in body["incidents"]] == ["x-mobile", "x-web"]  # newest first
    web = body["incidents"][1]
    assert web == {
        "id": scenario.incidents["x-web"].id, "check": "x-web", "state": "major_outage",
        "reason": "error_page", "signature": "x-fret", "started_at": iso(scenario.outage[0]),
        "detected_at": iso(scenario.outage[0] + timedelta(minutes=10)),
        "resolved_at": iso(scenario.outage[1]),
        "ongoing": False, "duration_seconds": 3300.0, "vantages": ["us-east", "tokyo", "london"],
        "regions": ["JP", "UK", "US"], "maintenance": False, "status": "resolved", "notes": [],
    }  # fmt: skip
    body = await get_json(client, "/api/incidents?since=1h")
    assert [i["check"] for i in body["incidents"]] == ["x-mobile"]
    body = await get_json(client, "/api/incidents?since=7d&check=x-web")
    assert [i["check"] for i in body["incidents"]] == ["x-web"]
    await get_json(client, "/api/incidents?since=soon", 400)


async def test_healthz_and_read_only(client: TestClient[Any, Any]) -> None:
    body = await get_json(client, "/healthz")
    assert body["status"] == "ok" and body["database"] == "ok" and body["live"] is False
    response = await client.post("/api/checks")
    assert response.status == 405 and "GET" in response.headers["Allow"]
    assert (await response.json())["status"] == 405
    assert (await get_json(client, "/api/nowhere", 404))["error"] == "Not Found"
    assert (await client.get("/nowhere")).status == 404
    assert (await client.get("/?utm_source=mail")).status == 200  # the page and widgets' URLs ignore extras
    assert (await client.get("/api/v2/summary.json?_=1700000000&callback=x")).status == 200


# -- the page ------------------------------------------------------------------------------------------------


async def test_page_escapes_what_probed_servers_said(client: TestClient[Any, Any]) -> None:
    response = await client.get("/")
    assert response.status == 200 and response.content_type == "text/html"
    assert "script-src" not in response.headers["Content-Security-Policy"]  # default-src 'none': no script
    html = await response.text()
    assert "<script" not in html
    escaped = "&lt;script&gt;window.__pwned = 1&lt;/script&gt; upstream said &#34;nope&#34; &amp; &lt;b&gt;"
    assert escaped in html
    assert 'id="banner"' in html and "Partial Outage" in html
    assert '<meta http-equiv="refresh"' not in html  # only with page.refresh: it interrupts screen readers


async def test_page_groups_components_by_surface(client: TestClient[Any, Any], scenario: Scenario) -> None:
    html = await (await client.get("/")).text()
    positions = [html.index(f'id="group-{s}"') for s in ("web", "mobile", "api")]
    assert positions == sorted(positions)
    for check in CHECKS:
        assert f'id="check-{check}"' in html
    bars = day_bars(html, "x-web")
    first = min(r.ts for r in scenario.results).date()
    assert len(bars) == (scenario.now.date() - first).days + 1  # a bar per day since the first result
    outage = bars[-1 - (scenario.now.date() - scenario.outage[0].date()).days]
    day = scenario.outage[0]
    assert outage[0] == "m"  # major outage: red
    assert outage[1].startswith(f"{day.day} {day:%b}: ") and "55 min of incident (major outage)" in outage[1]
    assert bars[-1][0] == "" and re.fullmatch(r"\d+ \w{3}: 100%", bars[-1][1])  # today: green, all up
    assert bars[0][1].startswith(f"{first.day} {first:%b}: ") and "no data" not in bars[0][1]
    label = re.search(
        r'<div class="bars short" role="img"\s+aria-label="([^"]*)">', html[html.index('id="check-x-web"') :]
    )
    assert label is not None and "major outage on" in label[1]
    assert f'id="history-{scenario.incidents["x-web"].id}"' in html


def day_bars(html: str, check: str) -> list[tuple[str, str]]:
    """(class, tooltip) of each day of a check's uptime strip, oldest first."""
    section = html[html.index(f'id="check-{check}"') :]
    start = section.index('<div class="bars')
    strip = section[start : section.index("</div>", start)]
    return re.findall(r'<i(?: class="(\w)")? title="([^"]*)"></i>', strip)


async def test_configured_checks_show_their_regions_and_an_empty_one_is_unknown(scenario: Scenario) -> None:
    config = Config(
        vantages={name: Vantage(name, region) for name, region in VANTAGES.items()},
        checks=(
            Check(
                "x-mobile",
                "https://m.example.test/",
                surface=Surface.MOBILE,
                vantages=("tokyo", "us-east"),
                interval=300,
            ),  # the scenario probes every 5 minutes
            Check("x-new", "https://new.example.test/", surface=Surface.API, vantages=("london",)),
        ),
    )
    async with TestClient(TestServer(create_app(scenario.path, config=config))) as c:
        body = await get_json(c, "/api/checks")
        checks = {x["name"]: x for x in body["checks"]}
        assert list(checks) == ["x-mobile", "x-new"]
        assert checks["x-mobile"]["regions"] == {"JP": "major_outage", "US": "operational"}
        assert checks["x-mobile"]["url"] is None  # page.show_urls is false by default
        assert set(checks["x-mobile"]["last_results"]) == {"tokyo", "us-east"}
        assert checks["x-new"]["state"] == "unknown" and checks["x-new"]["availability"]["24h"] is None
        summary = await get_json(c, "/api/v2/summary.json")
        assert summary["status"]["description"] == "Partial Outage"
        new = next(x for x in summary["components"] if x["id"] == "x-new")
        assert (new["status"], new["description"]) == ("operational", "No recent results")
        assert new["prober_state"] == "unknown"
        results = await get_json(c, "/api/checks/x-new/results")
        assert results["results"] == [] and results["next"] is None


async def test_live_state_overrides_the_database_view(scenario: Scenario) -> None:
    live = LiveState()
    live.set_state("x-web", State.MAJOR_OUTAGE, {v: Verdict.DOWN for v in VANTAGES})
    async with TestClient(TestServer(create_app(scenario.path, live=live))) as c:
        body = await get_json(c, "/api/v2/status.json")
        assert body["status"] == {"indicator": "critical", "description": "Major Outage"}
        checks = {x["name"]: x for x in (await get_json(c, "/api/checks"))["checks"]}
        assert checks["x-web"]["regions"] == {
            "JP": "major_outage",
            "UK": "major_outage",
            "US": "major_outage",
        }
        assert checks["x-mobile"]["state"] == "partial_outage"  # not live: from the database
        assert (await get_json(c, "/healthz"))["live"] is True


async def test_missing_database_is_503(tmp_path: Path) -> None:
    async with TestClient(TestServer(create_app(tmp_path / "none.db"))) as c:
        body = await get_json(c, "/api/v2/summary.json", 503)
        assert "no such database" in body["error"]
        assert (await c.get("/")).status == 503


def test_history_cache_serves_the_old_history_while_reading_a_new_one(scenario: Scenario) -> None:
    jobs: list[Callable[[Any], None]] = []
    cache = HistoryCache(0.05, jobs.append)
    db = connect(scenario.path, readonly=True)
    try:
        now = utcnow()
        first = cache.get(db, now, ("windows",))
        assert set(first.parts) == {"windows"} and cache.get(db, now, ("windows",)) is first
        time.sleep(0.06)
        assert cache.get(db, now, ("windows",)) is first and len(jobs) == 1  # stale, refresh under way
        assert cache.get(db, now) is first and len(jobs) == 1  # missing parts are read at once
        assert set(first.parts) == {"windows", "days", "latency"}
        jobs[0](db)
        second = cache.get(db, now)
        assert second is not first and second.windows == first.windows
        assert cache.get(db, now + timedelta(days=1)) is not second  # a new day: read at once
        uncached = HistoryCache(0, jobs.append)
        assert uncached.get(db, now) is not uncached.get(db, now) and len(jobs) == 1
    finally:
        db.conn.close()


async def test_the_summaries_of_finished_days_and_hours_do_not_change_the_page(tmp_path: Path) -> None:
    scenario = build_status_db(tmp_path / "prober.db")

    def strips(html: str) -> list[str]:  # each check's uptime strip, legend and chart
        return re.findall(r'<div class="uptime">.*?</figure>', html, re.S)

    async with TestClient(TestServer(create_app(scenario.path, cache_seconds=0, history_seconds=0))) as c:
        before = strips(await (await c.get("/")).text())
        db = connect(scenario.path)
        try:
            assert summaries.refresh(db, utcnow()) == 2 * len(CHECKS)
        finally:
            db.conn.close()
        after = strips(await (await c.get("/")).text())
    assert len(before) == len(CHECKS) and after == before
    assert "major outage on" in after[[*CHECKS].index("x-web")]


# -- answers kept ready ---------------------------------------------------------------------------------


async def test_answers_are_compressed_once_and_revalidated(client: TestClient[Any, Any]) -> None:
    zipped = await client.get("/", headers={"Accept-Encoding": "gzip, deflate"}, auto_decompress=False)
    assert zipped.status == 200 and zipped.headers["Content-Encoding"] == "gzip"
    body = gzip.decompress(await zipped.read())
    etag, modified = zipped.headers["ETag"], zipped.headers["Last-Modified"]
    assert (
        etag.startswith('W/"') and modified.endswith(" GMT") and zipped.headers["Vary"] == "Accept-Encoding"
    )
    assert re.fullmatch(r"max-age=([0-9]|10)", zipped.headers["Cache-Control"])
    assert "default-src 'none'" in zipped.headers["Content-Security-Policy"]
    plain = await client.get("/", headers={"Accept-Encoding": "identity"})
    assert "Content-Encoding" not in plain.headers and await plain.read() == body  # the same answer
    assert plain.headers["ETag"] == etag  # made once, served from memory
    refused = await client.get("/", headers={"Accept-Encoding": "gzip;q=0"}, auto_decompress=False)
    assert "Content-Encoding" not in refused.headers
    again = await client.get("/", headers={"If-None-Match": etag})
    assert again.status == 304 and await again.read() == b"" and again.headers["ETag"] == etag
    assert (await client.get("/", headers={"If-None-Match": 'W/"other"'})).status == 200
    assert (await client.get("/", headers={"If-Modified-Since": modified})).status == 304
    summary = await client.get("/api/v2/summary.json", auto_decompress=False)
    assert (
        summary.headers["Content-Encoding"] == "gzip"
        and summary.headers["Access-Control-Allow-Origin"] == "*"
    )
    status = await client.get("/api/v2/status.json")
    assert "Content-Encoding" not in status.headers  # too small to be worth it
    assert (await client.get("/healthz")).headers["Cache-Control"] == "no-cache"  # not kept


@pytest.mark.parametrize(
    ("header", "expected"),
    [("gzip", True), ("gzip, deflate, br", True), ("br;q=1.0, gzip;q=0.8", True), ("*", True),
     ("identity", False), ("", False), ("gzip;q=0", False), ("GZIP; q=0.5", True), ("gzip;q=x", False)],
)  # fmt: skip
def test_accepts_gzip(header: str, expected: bool) -> None:
    assert accepts_gzip(header) is expected


async def test_a_request_never_waits_once_the_answer_is_made(tmp_path: Path) -> None:
    scenario = build_status_db(tmp_path / "p.db")
    async with TestClient(TestServer(create_app(scenario.path, cache_seconds=0.5))) as c:
        first = await get_json(c, "/api/checks")
        assert [x["name"] for x in first["checks"]] == ["x-api", "x-mobile", "x-web"]
        with open_store(scenario.path) as store:  # a new check reports
            store.add(replace(scenario.results[-1], check="x-new", ts=utcnow()))
        assert await get_json(c, "/api/checks") == first  # the answer made before, at once
        deadline = time.monotonic() + 10
        while "x-new" not in [x["name"] for x in (await get_json(c, "/api/checks"))["checks"]]:
            assert time.monotonic() < deadline, "the answer was never made again"
            await asyncio.sleep(0.1)


async def test_a_live_state_change_makes_the_answers_again_at_once(scenario: Scenario) -> None:
    live = LiveState()
    async with TestClient(TestServer(create_app(scenario.path, live=live, cache_seconds=600))) as c:
        assert (await get_json(c, "/api/v2/status.json"))["status"]["indicator"] == "major"
        started = time.monotonic()
        live.set_state("x-web", State.MAJOR_OUTAGE, {v: Verdict.DOWN for v in VANTAGES})
        while (await get_json(c, "/api/v2/status.json"))["status"]["indicator"] != "critical":
            assert time.monotonic() - started < 10, "not made again after the change"
            await asyncio.sleep(0.05)


async def test_answer_cache_makes_once_forgets_failures_and_idle_keys() -> None:
    made: list[str] = []
    gate = asyncio.Event()

    async def make(snap: Any) -> Answer:
        made.append("page")
        await gate.wait()
        return Answer.of(f"answer {len(made)}", "text/plain", utcnow())

    cache = AnswerCache(lambda: None, refresh=60, keep=0.2)  # type: ignore[arg-type,return-value]
    waiting = [asyncio.ensure_future(cache.get("page", make)) for _ in range(5)]
    for _ in range(3):  # each request runs until it waits on the cache: a scheduling step, not a delay
        await asyncio.sleep(0)
    assert made == ["page"] and not any(w.done() for w in waiting)
    gate.set()
    answers = await asyncio.gather(*waiting)
    assert made == ["page"] and {a.body for a in answers} == {b"answer 1"}  # five requests, one making
    assert await cache.get("page", make) is answers[0]
    await cache.refresh_all()  # what the background task does every `refresh` seconds
    assert made == ["page", "page"] and (await cache.get("page", make)).body == b"answer 2"

    async def broken(snap: Any) -> Answer:
        raise OSError("disk on fire")

    with pytest.raises(OSError):
        await cache.get("other", broken)
    await cache.refresh_all()  # logged, and no stale answer kept for it
    await asyncio.sleep(0.25)
    await cache.refresh_all()  # nobody asked for 0.2 s: both forgotten, nothing made
    assert made == ["page", "page", "page"]
    await cache.refresh_all()
    assert made == ["page", "page", "page"]
    await cache.close()


@pytest.mark.parametrize(
    ("text", "expected"),
    [("127.0.0.1:8080", ("127.0.0.1", 8080)), ("[::1]:9", ("::1", 9)), (":8080", ("0.0.0.0", 8080)),
     ("localhost:0", ("localhost", 0))],
    ids=["v4", "v6", "any", "name"],
)  # fmt: skip
def test_parse_http(text: str, expected: tuple[str, int]) -> None:
    assert parse_http(text) == expected


@pytest.mark.parametrize("text", ["8080", "host:", "host:99999", "::1:80", "a b:80"])
def test_parse_http_refuses(text: str) -> None:
    with pytest.raises(WebError, match="HOST:PORT"):
        parse_http(text)


async def test_start_server_serves_and_reports_a_taken_port(scenario: Scenario) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(WebError, match=f"127.0.0.1:{port}"):
            await start_server(create_app(scenario.path), f"127.0.0.1:{port}")
    runner = await start_server(create_app(scenario.path), "127.0.0.1:0")
    try:
        assert runner.addresses
    finally:
        await runner.cleanup()
