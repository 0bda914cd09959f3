"""Maintenance windows: configuration errors, spans across DST, marked incidents, availability without
them, and the Statuspage scheduled-maintenance endpoints, over a real database."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from click.testing import CliRunner

from prober.cli import main
from prober.config import Config, ConfigError, MaintenanceWindow, parse_config
from prober.maintenance import Calendar, active, occurrences
from prober.maintenance.record import prune, record_spans, refresh, spans_between
from prober.model import ProbeResult, Reason, State, Surface, Verdict, utcnow
from prober.report import collect, format_text, to_json
from prober.state import CheckTracker, Policy
from prober.store import Store, connect, history
from prober.web import create_app
from prober.web.metrics import ProberMetrics

# -- configuration --------------------------------------------------------------------------------

HEAD = """checks:
  - name: x-web
    url: http://127.0.0.1:1/
maintenance:
"""


@pytest.mark.parametrize(
    ("window", "expected"),
    [
        (
            '  - {name: w, every: "0 25 * * *", duration: 1h}',
            '5:22: maintenance[0].every: "0 25 * * *" is not a cron expression',
        ),
        (
            '  - {name: w, every: "0 2 * *", duration: 1h}',
            '5:22: maintenance[0].every: "0 2 * *" is not a cron expression',
        ),
        (
            '  - {name: w, every: "0 2 * * *", timezone: Europe/Nowhere, duration: 1h}',
            '5:45: maintenance[0].timezone: "Europe/Nowhere" is not a time zone',
        ),
        (
            "  - {name: w, checks: [x-web, x-wbe], start: 2026-12-06T02:00:00Z, duration: 1h}",
            '5:31: maintenance[0].checks[1]: "x-wbe" is not a check',
        ),
        (
            '  - {name: w, start: "2026-12-06T02:00:00Z", every: "0 2 * * *", duration: 1h}',
            "5:46: maintenance[0]: the window has both start: and every:",
        ),
        ("  - {name: w, duration: 1h}", "5:5: maintenance[0]: the window needs start: (one-off) or every:"),
        (
            '  - {name: w, start: "next sunday", duration: 1h}',
            '5:22: maintenance[0].start: "next sunday" is not an ISO 8601 time',
        ),
        ('  - {name: w, every: "0 2 * * *"}', 'maintenance[0].duration: required key "duration" is missing'),
        (
            '  - {name: w, every: "0 2 * * *", duration: 0s}',
            '5:45: maintenance[0].duration: "0s" is too small',
        ),
        (
            '  - {name: w, every: "0 2 * * *", duration: 1h, timezon: UTC}',
            '5:49: maintenance[0].timezon: unknown key "timezon" (did you mean "timezone"?)',
        ),
    ],
    ids=[
        "cron-range",
        "cron-fields",
        "timezone",
        "unknown-check",
        "both",
        "neither",
        "start",
        "no-duration",
        "zero-duration",
        "typo",
    ],
)
def test_configuration_errors_are_located(window: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(HEAD + window + "\n", "checks.yaml", env={})
    assert any(expected in str(issue) for issue in caught.value.issues), [str(i) for i in caught.value.issues]
    assert all(str(issue).startswith("checks.yaml:") for issue in caught.value.issues)


def test_windows_are_read_with_their_defaults() -> None:
    config = parse_config(
        HEAD + '  - {name: weekly, every: "0 2 * * SUN", timezone: Europe/Paris, duration: 90m}\n'
        "  - {name: once, checks: [x-web], start: 2026-12-06T02:00:00, timezone: Asia/Tokyo, duration: 1h}\n",
        env={},
    )
    weekly, once = config.maintenance
    assert (weekly.checks, weekly.every, weekly.timezone, weekly.duration) == (
        None, "0 2 * * SUN", "Europe/Paris", 5400.0,
    )  # fmt: skip
    # A start without an offset is a wall-clock time in the window's zone.
    assert once.start == datetime(2026, 12, 5, 17, 0, tzinfo=UTC) and once.checks == ("x-web",)


# -- when windows happen ----------------------------------------------------------------------------


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def test_a_one_off_window_is_one_span() -> None:
    window = MaintenanceWindow("once", 3600, start=utc(2026, 12, 6, 2))
    assert [(o.starts_at, o.ends_at) for o in occurrences(window, utc(2026, 12, 1), utc(2027, 1, 1))] == [
        (utc(2026, 12, 6, 2), utc(2026, 12, 6, 3))
    ]
    assert list(occurrences(window, utc(2026, 12, 6, 3), utc(2027, 1, 1))) == []  # ends exactly there
    assert active([window], utc(2026, 12, 6, 2, 59)) and not active([window], utc(2026, 12, 6, 3))


@pytest.mark.parametrize(
    ("zone", "every", "around", "before", "after"),
    [
        # Paris moves to summer time on 2026-03-29 and back on 2026-10-25: 09:00 stays 09:00 local.
        ("Europe/Paris", "0 9 * * *", utc(2026, 3, 29), utc(2026, 3, 28, 8), utc(2026, 3, 29, 7)),
        ("Europe/Paris", "0 9 * * *", utc(2026, 10, 25), utc(2026, 10, 24, 7), utc(2026, 10, 25, 8)),
        # New York: 2026-03-08 and 2026-11-01.
        ("America/New_York", "0 6 * * *", utc(2026, 3, 8), utc(2026, 3, 7, 11), utc(2026, 3, 8, 10)),
        ("America/New_York", "0 6 * * *", utc(2026, 11, 1), utc(2026, 10, 31, 10), utc(2026, 11, 1, 11)),
    ],
    ids=["paris-spring", "paris-autumn", "new-york-spring", "new-york-autumn"],
)
def test_recurring_windows_follow_local_time_across_dst(
    zone: str, every: str, around: datetime, before: datetime, after: datetime
) -> None:
    window = MaintenanceWindow("daily", 1800, every=every, timezone=zone)
    spans = list(occurrences(window, around - timedelta(days=1), around + timedelta(days=1)))
    assert [s.starts_at for s in spans] == [before, after]
    assert all(s.ends_at - s.starts_at == timedelta(minutes=30) for s in spans)
    assert active([window], after + timedelta(minutes=29)) and not active(
        [window], after - timedelta(hours=1)
    )


def test_duration_is_elapsed_time_across_the_change() -> None:
    # 01:30 Paris on the night clocks go forward: two hours later is 04:30 local, 02:30 UTC.
    window = MaintenanceWindow("night", 7200, every="30 1 29 3 *", timezone="Europe/Paris")
    (span,) = occurrences(window, utc(2026, 3, 28), utc(2026, 3, 30))
    assert (span.starts_at, span.ends_at) == (utc(2026, 3, 29, 0, 30), utc(2026, 3, 29, 2, 30))


def test_windows_cover_their_checks_only() -> None:
    window = MaintenanceWindow("db", 3600, checks=("x-api",), start=utc(2026, 12, 6, 2))
    assert active([window], utc(2026, 12, 6, 2, 30), "x-api")
    assert not active([window], utc(2026, 12, 6, 2, 30), "x-web")


# -- incidents ------------------------------------------------------------------------------------


def result(check: str, ts: datetime, verdict: Verdict, vantage: str = "local") -> ProbeResult:
    down = verdict is Verdict.DOWN
    return ProbeResult(
        ts=ts, check=check, vantage=vantage, region="EU", surface=Surface.WEB, url="http://x.test/",
        verdict=verdict, reason=Reason.ERROR_PAGE if down else None, status=200,
        latency_ms=50.0,
    )  # fmt: skip


def outage_events(window: MaintenanceWindow, start: datetime) -> list[Any]:
    config = Config(maintenance=(window,))
    tracker = CheckTracker("x-web", {"local": "EU"}, Policy(confirm=2), Calendar(config).predicate("x-web"))
    events = []
    for i, verdict in enumerate(
        [Verdict.UP, Verdict.DOWN, Verdict.DOWN, Verdict.DOWN, Verdict.UP, Verdict.UP]
    ):
        events += tracker.observe(result("x-web", start + timedelta(minutes=i), verdict))
    return [e for e in events if e.kind in ("opened", "resolved")]


def test_an_incident_opened_in_a_window_is_marked() -> None:
    window = MaintenanceWindow("db", 3600, start=utc(2026, 12, 6, 2))
    opened, resolved = outage_events(window, utc(2026, 12, 6, 2, 10))
    assert opened.incident.maintenance and resolved.incident.maintenance
    assert opened.incident.to_json(utc(2026, 12, 7))["maintenance"] is True
    # The same outage a day later: not planned, not marked.
    opened, resolved = outage_events(window, utc(2026, 12, 7, 2, 10))
    assert not opened.incident.maintenance and not resolved.incident.maintenance


def test_an_outage_that_started_just_before_a_window_and_was_confirmed_in_it_is_marked() -> None:
    window = MaintenanceWindow("db", 3600, start=utc(2026, 12, 6, 2, 2, 30))
    opened, _ = outage_events(window, utc(2026, 12, 6, 2))  # down from 02:01, confirmed at 02:02
    assert not opened.incident.maintenance  # both before 02:02:30
    window = MaintenanceWindow("db", 3600, start=utc(2026, 12, 6, 2, 1, 30))
    opened, _ = outage_events(window, utc(2026, 12, 6, 2))
    assert opened.incident.maintenance  # detected at 02:02, inside


# -- a database: availability, the API, the report -------------------------------------------------


@dataclass
class Planned:
    path: Path
    config: Config
    now: datetime
    window: tuple[datetime, datetime]


CONFIG = """
defaults: {interval: 5m}
checks:
  - {name: x-web, url: "http://127.0.0.1:1/web"}
  - {name: x-api, surface: api, url: "http://127.0.0.1:1/api"}
maintenance:
  - {name: db-upgrade, checks: [x-web], start: "%s", duration: 1h}
"""


def config_text(start: datetime, *, nightly: bool = True) -> str:
    """CONFIG with the one-off window at `start` and a daily one hours away, never now."""
    hour = (utcnow() + timedelta(hours=6)).hour
    extra = f'  - {{name: nightly, every: "0 {hour} * * *", timezone: Europe/Paris, duration: 1h}}\n'
    return CONFIG % start.isoformat() + (extra if nightly else "")


def build(path: Path, *, record: bool = True) -> Planned:
    """Six hours of results every 5 minutes; x-web down for an hour, inside a one-off window."""
    now = utcnow().replace(second=0, microsecond=0)
    start = (now - timedelta(hours=3)).replace(minute=0)
    config = parse_config(config_text(start), env={})
    with Store(path) as store:
        ts = now - timedelta(hours=6)
        while ts < now:
            for check in ("x-web", "x-api"):
                down = check == "x-web" and start <= ts < start + timedelta(hours=1)
                store.add(result(check, ts, Verdict.DOWN if down else Verdict.UP))
            ts += timedelta(minutes=5)
        if record:
            store.submit(lambda db: refresh(db, config, now, since=now - timedelta(days=1))).result()
    return Planned(path, config, now, (start, start + timedelta(hours=1)))


def test_availability_leaves_the_window_out(tmp_path: Path) -> None:
    plain = build(tmp_path / "plain.db", record=False)
    planned = build(tmp_path / "planned.db")
    for p, web_down in ((plain, 12), (planned, 0)):
        db = connect(p.path)
        since = p.now - timedelta(hours=12)
        counts = history.counts(db, since, p.now, now=p.now)
        assert counts[("x-web",)].down == web_down
        assert counts[("x-api",)].judged == 72  # not covered by the window: every result counts
        windows = history.window_counts(db, p.now)
        assert windows["x-web"]["24h"].down == web_down and windows["x-web"]["7d"].down == web_down
        days = history.daily_counts(db, (p.now - timedelta(days=1)).date())
        assert sum(c.down for c in days["x-web"].values()) == web_down
        report = collect(db, since, p.now, p.now)
        line = {ln.key[0]: ln.counts for ln in report.by_check()}
        assert line["x-web"].down == web_down
    assert plain.config.maintenance and planned.window[1] - planned.window[0] == timedelta(hours=1)
    db = connect(planned.path)
    report = collect(db, planned.now - timedelta(hours=12), planned.now, planned.now)
    assert [s["name"] for s in report.maintenance] == ["db-upgrade"]
    text = format_text(report)
    assert "Results inside maintenance windows are left out." in text
    assert "Maintenance windows (1)" in text and "db-upgrade" in text
    body = to_json(report)
    assert body["maintenance"][0]["checks"] == ["x-web"] and body["availability"]["excludes"]
    assert body["availability"]["checks"][1]["availability"] == 1.0  # x-web, its outage left out


def test_recorded_spans_follow_the_configuration(tmp_path: Path) -> None:
    planned = build(tmp_path / "prober.db")
    db = connect(planned.path)
    names = {
        s["name"]
        for s in spans_between(db, planned.now - timedelta(hours=4), planned.now + timedelta(days=30))
    }
    assert names == {"db-upgrade", "nightly"}
    # The recurring window is taken out of the configuration: its future spans go, the past stays.
    config = parse_config(config_text(planned.window[0], nightly=False), env={})
    with Store(planned.path) as store:
        store.submit(lambda db: record_spans(db, config, planned.now)).result()
    later = spans_between(connect(planned.path), planned.now, planned.now + timedelta(days=30))
    assert [s["name"] for s in later] == []
    assert [s["name"] for s in spans_between(connect(planned.path), planned.window[0], planned.now)] == [
        "db-upgrade"
    ]


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[tuple[TestClient[Any, Any], Planned]]:
    planned = build(tmp_path / "prober.db")
    # The one-off window is made to last until after now: in progress.
    config = parse_config(config_text(planned.now - timedelta(minutes=30)), env={})
    with Store(planned.path) as store:
        store.submit(lambda db: refresh(db, config, planned.now)).result()
    app = create_app(planned.path, config=config, cache_seconds=0)
    async with TestClient(TestServer(app)) as c:
        yield c, planned


async def get_json(client: TestClient[Any, Any], path: str) -> Any:
    response = await client.get(path)
    assert response.status == 200, await response.text()
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    return await response.json()


MAINTENANCE_KEYS = {
    "id", "name", "status", "created_at", "updated_at", "monitoring_at", "resolved_at", "impact", "shortlink",
    "started_at", "page_id", "incident_updates", "components", "scheduled_for", "scheduled_until",
    "prober_window",
}  # fmt: skip
UPDATE_KEYS = {
    "id", "status", "body", "incident_id", "created_at", "updated_at", "display_at", "affected_components",
    "deliver_notifications", "custom_tweet", "tweet_id",
}  # fmt: skip


async def test_statuspage_scheduled_maintenance_endpoints(
    client: tuple[TestClient[Any, Any], Planned],
) -> None:
    c, _ = client
    active_body = await get_json(c, "/api/v2/scheduled-maintenances/active.json")
    assert (
        set(active_body) == {"page", "scheduled_maintenances"}
        and active_body["page"]["name"] == "Service status"
    )
    (now_on,) = active_body["scheduled_maintenances"]
    assert set(now_on) == MAINTENANCE_KEYS
    assert (now_on["name"], now_on["status"], now_on["impact"]) == (
        "db-upgrade",
        "in_progress",
        "maintenance",
    )
    assert now_on["resolved_at"] is None and now_on["scheduled_for"] < now_on["scheduled_until"]
    assert [u["status"] for u in now_on["incident_updates"]] == ["in_progress", "scheduled"]  # newest first
    assert all(set(u) == UPDATE_KEYS for u in now_on["incident_updates"])
    assert [(x["id"], x["status"]) for x in now_on["components"]] == [("x-web", "under_maintenance")]

    upcoming = await get_json(c, "/api/v2/scheduled-maintenances/upcoming.json")
    soon = upcoming["scheduled_maintenances"]
    assert soon and {m["name"] for m in soon} == {"nightly"} and {m["status"] for m in soon} == {"scheduled"}
    assert [m["scheduled_for"] for m in soon] == sorted(m["scheduled_for"] for m in soon)
    assert {x["id"] for x in soon[0]["components"]} == {"x-web", "x-api"}
    assert {x["status"] for x in soon[0]["components"]} == {"operational"}  # not yet under maintenance
    assert [u["status"] for u in soon[0]["incident_updates"]] == ["scheduled"]

    every = await get_json(c, "/api/v2/scheduled-maintenances.json")
    statuses = {m["status"] for m in every["scheduled_maintenances"]}
    assert statuses >= {"in_progress", "scheduled"}
    assert (
        every["scheduled_maintenances"][0]["scheduled_for"]
        >= every["scheduled_maintenances"][-1]["scheduled_for"]
    )

    summary = await get_json(c, "/api/v2/summary.json")
    listed = {m["name"] for m in summary["scheduled_maintenances"]}
    assert listed == {"db-upgrade", "nightly"}
    components = {x["id"]: x["status"] for x in summary["components"]}
    assert components["x-web"] == "under_maintenance" and components["x-api"] == "operational"
    assert components["surface:web"] == "under_maintenance"  # every check of the group is
    assert components["surface:api"] == "operational"


async def test_page_and_api_say_what_is_under_maintenance(
    client: tuple[TestClient[Any, Any], Planned],
) -> None:
    c, _ = client
    checks = {x["name"]: x for x in (await get_json(c, "/api/checks"))["checks"]}
    assert checks["x-web"]["maintenance"] is True and checks["x-api"]["maintenance"] is False
    assert "maintenance" in (await get_json(c, "/api/checks"))["availability_excludes"]
    page = await (await c.get("/")).text()
    assert (
        "Scheduled maintenance" in page and "db-upgrade: in progress" in page and "nightly: scheduled" in page
    )
    assert page.count("Under maintenance") == 1  # x-web only
    assert "Availability figures leave out maintenance windows." in page


def test_metrics_say_which_checks_are_under_maintenance(tmp_path: Path) -> None:
    planned = build(tmp_path / "prober.db")
    config = parse_config(config_text(planned.now - timedelta(minutes=30)), env={})
    with Store(planned.path) as store:
        store.submit(lambda db: refresh(db, config, utcnow())).result()
    metrics = ProberMetrics()
    metrics.fill(connect(planned.path), utcnow(), config)
    text = metrics.exposition().decode()
    assert 'prober_check_maintenance{check="x-web",surface="web"} 1.0' in text
    assert 'prober_check_maintenance{check="x-api"' not in text  # by default, only the ones at 1
    metrics.detail = "full"
    assert 'prober_check_maintenance{check="x-api",surface="api"} 0.0' in metrics.exposition().decode()


def test_report_command_shows_windows(tmp_path: Path) -> None:
    planned = build(tmp_path / "prober.db")
    (tmp_path / "checks.yaml").write_text(config_text(planned.window[0]))
    out = CliRunner().invoke(
        main, ["report", "--db", str(planned.path), "-c", str(tmp_path / "checks.yaml"), "--since", "12h"]
    )
    assert out.exit_code == 0, out.output
    assert "Maintenance windows (1)" in out.output and "db-upgrade" in out.output
    assert "one-off" in out.output and "x-web" in out.output


def test_rebuilt_incidents_keep_their_mark(tmp_path: Path) -> None:
    planned = build(tmp_path / "prober.db")
    (tmp_path / "checks.yaml").write_text(config_text(planned.window[0]))
    out = CliRunner().invoke(
        main,
        ["report", "--db", str(planned.path), "-c", str(tmp_path / "checks.yaml"), "--rebuild", "--json"],
    )
    assert out.exit_code == 0, out.output
    from prober.store import read

    (incident,) = read.incidents(connect(planned.path))
    assert incident.check == "x-web" and incident.maintenance and incident.state is State.MAJOR_OUTAGE


def test_the_documentation_examples_are_true(tmp_path: Path) -> None:
    text = (Path(__file__).parents[1] / "docs" / "maintenance.md").read_text()
    good, bad = re.findall(r"```yaml\n(.*?)```", text, flags=re.S)
    assert len(parse_config(good, env={}).maintenance) == 2
    (tmp_path / "checks.yaml").write_text(bad)
    out = CliRunner().invoke(main, ["validate", "-c", str(tmp_path / "checks.yaml")])
    assert out.exit_code == 2
    shown = re.search(r"```console\n\$ prober validate -c checks.yaml\n(.*?)\$ echo", text, flags=re.S)
    assert shown is not None
    got = out.output.replace(str(tmp_path / "checks.yaml"), "checks.yaml")
    assert got.splitlines() == shown.group(1).splitlines()


def test_prober_once_marks_and_records_too(tmp_path: Path, target: Any) -> None:
    start = (utcnow() - timedelta(minutes=1)).isoformat()
    (tmp_path / "checks.yaml").write_text(
        f"""
defaults: {{confirm: 1}}
checks:
  - {{name: x-web, url: "{target.url}/error-page"}}
maintenance:
  - {{name: db-upgrade, start: "{start}", duration: 1h}}
"""
    )
    db = tmp_path / "prober.db"
    out = CliRunner().invoke(main, ["once", "-c", str(tmp_path / "checks.yaml"), "--db", str(db)])
    assert out.exit_code == 1, out.output  # something is down
    from prober.store import read

    (incident,) = read.incidents(connect(db))
    assert incident.maintenance
    assert [s["name"] for s in spans_between(connect(db), utcnow(), utcnow() + timedelta(minutes=1))] == [
        "db-upgrade"
    ]
    assert history.counts(connect(db), utcnow() - timedelta(hours=1))[("x-web",)].judged == 0  # left out


def test_old_spans_and_counts_are_pruned_with_the_daily_rollups(tmp_path: Path) -> None:
    planned = build(tmp_path / "prober.db")
    db = connect(planned.path)
    assert db.execute("SELECT COUNT(*) FROM maintenance_counts").fetchone()[0] > 0
    with Store(planned.path) as store:
        assert store.submit(lambda db: prune(db, planned.now)).result() == 0  # nothing that old
        gone = store.submit(lambda db: prune(db, planned.now + timedelta(days=401))).result()
    assert gone > 0
    assert connect(planned.path).execute("SELECT COUNT(*) FROM maintenance_counts").fetchone()[0] == 0
