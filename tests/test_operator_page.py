"""The operator's page and API: `page:` settings, hidden checks, concealed URLs, the whole Statuspage
read API, and incident notes (`prober incident`), over the scripted database of test_web."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import re
import socket
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer
from click.testing import CliRunner
from conftest import ProberProcess, Target, wait_for
from test_web import Scenario, build_status_db

from prober.cli import main
from prober.config import Check, Config, PageSettings, Vantage, json_schema, parse_config
from prober.config.source import ConfigError
from prober.model import ProbeResult, Reason, Surface, Verdict, utcnow
from prober.notes import NoteError, add_note, incident_status, notes_of
from prober.store import connect
from prober.web import create_app
from prober.web.public import concealer

VANTAGES = {"us-east": "US", "tokyo": "JP", "london": "UK"}
STATUSPAGE_PATHS = (
    "/api/v2/status.json",
    "/api/v2/summary.json",
    "/api/v2/components.json",
    "/api/v2/incidents.json",
    "/api/v2/incidents/unresolved.json",
)


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Scenario:
    return build_status_db(tmp_path_factory.mktemp("page") / "prober.db")


def config_of(*, show_urls: bool = False, mobile_public: bool = True) -> Config:
    """The scenario's checks, configured: x-mobile (with its open incident) hidden unless public."""
    vantages = {name: Vantage(name, region) for name, region in VANTAGES.items()}
    return Config(
        vantages=vantages,
        checks=(
            Check(
                "x-web",
                "https://x-web.example.test/",
                vantages=tuple(VANTAGES),
                interval=300,
                display_name="Home timeline (web)",
                description="What people see first.",
            ),
            Check(
                "x-mobile",
                "https://x-mobile.example.test/",
                surface=Surface.MOBILE,
                vantages=tuple(VANTAGES),
                interval=300,
                public=mobile_public,
            ),
            Check(
                "x-api",
                "https://x-api.example.test/",
                surface=Surface.API,
                vantages=("us-east",),
                interval=300,
            ),
        ),
        page=PageSettings(title="X status", description="Measured from outside", show_urls=show_urls),
    )


async def get(client: TestClient[Any, Any], path: str, status: int = 200) -> str:
    response = await client.get(path)
    assert response.status == status, (path, await response.text())
    return await response.text()


# -- configuration -----------------------------------------------------------------------------------


def test_page_settings_and_check_display_fields_are_read() -> None:
    config = parse_config(
        "page:\n  title: X status\n  description: Measured from outside\n  show_urls: true\n"
        "checks:\n  - name: a\n    url: https://a.test/\n    display_name: Home (web)\n"
        "    description: The home page\n    public: false\n  - name: b\n    url: https://b.test/\n"
    )
    assert config.page == PageSettings("X status", "Measured from outside", True)
    a, b = config.checks
    assert (a.display_name, a.description, a.public) == ("Home (web)", "The home page", False)
    assert (b.display_name, b.description, b.public) == ("b", None, True)
    assert parse_config("checks: []\n").page == PageSettings("Service status", None, False)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("page:\n  show_urls: yes please\n",
         'checks.yaml:2:14: page.show_urls: "yes please" is not true or false'),
        ("page:\n  title: ''\n", "checks.yaml:2:10: page.title: \"\" must not be empty"),
        ("page:\n  titel: X\n", 'checks.yaml:2:3: page.titel: unknown key "titel" (did you mean "title"?)'),
        ("checks:\n  - name: a\n    url: https://a.test/\n    public: no thanks\n",
         'checks.yaml:4:13: checks[0].public: "no thanks" is not true or false'),
        ("checks:\n  - name: a\n    url: https://a.test/\n    display_name: 3\n",
         "checks.yaml:4:19: checks[0].display_name: 3 is not a string"),
    ],
    ids=["show_urls", "empty-title", "typo", "public", "display_name"],
)  # fmt: skip
def test_page_settings_errors_are_located(text: str, expected: str) -> None:
    if not text.startswith("checks:"):
        text += "checks: []\n"
    with pytest.raises(ConfigError) as info:
        parse_config(text)
    assert expected in str(info.value).splitlines()


def test_json_schema_refuses_what_validate_refuses_and_has_no_repeated_titles() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    validator = jsonschema.Draft202012Validator(json_schema())
    for url, ok in [
        ("https://a.test/", True),
        ("HTTP://a.test:8080/x", True),
        ("${BASE_URL}/health", True),
        ("https://${HOST}/", True),
        ("ftp://a.test/", False),
        ("file:///etc/passwd", False),
        ("https:///nohost", False),
        ("a.test", False),
    ]:
        errors = list(validator.iter_errors({"checks": [{"name": "a", "url": url}]}))
        assert (errors == []) is ok, url
        if not ok:
            with pytest.raises(ConfigError):
                parse_config(f"checks:\n  - name: a\n    url: {url}\n", env={"BASE_URL": "x", "HOST": "h"})
    text = json.dumps(json_schema())
    assert '"title": "Interval"' not in text and '"title": "Url"' not in text
    page = json_schema()["$defs"]["page"]
    assert set(page["properties"]) == {"title", "description", "show_urls", "refresh"}
    assert all("title" not in prop for prop in page["properties"].values())


# -- hidden checks and concealed URLs ------------------------------------------------------------------


async def test_a_hidden_check_is_absent_from_the_page_and_every_public_api(scenario: Scenario) -> None:
    app = create_app(scenario.path, config=config_of(mobile_public=False), cache_seconds=0)
    async with TestClient(TestServer(app)) as c:
        for path in ("/", "/api/checks", "/api/incidents", *STATUSPAGE_PATHS):
            assert "x-mobile" not in await get(c, path), path
        await get(c, "/api/checks/x-mobile", 404)
        await get(c, "/api/checks/x-mobile/results", 404)
        await get(c, "/api/incidents?check=x-mobile", 404)
        unresolved = json.loads(await get(c, "/api/v2/incidents/unresolved.json"))
        assert unresolved["incidents"] == []  # x-mobile's open incident is not public
        summary = json.loads(await get(c, "/api/v2/summary.json"))
        assert summary["status"]["indicator"] == "minor"  # x-api is slow; x-mobile's outage unsaid
        assert 'check="x-mobile"' in await get(c, "/metrics")  # operators' metrics keep it


async def test_urls_are_shown_only_when_the_page_says_so(scenario: Scenario) -> None:
    paths = (
        "/",
        "/api/checks",
        "/api/checks/x-web",
        "/api/checks/x-mobile/results?limit=5",
        *STATUSPAGE_PATHS,
    )
    for show in (False, True):
        app = create_app(scenario.path, config=config_of(show_urls=show), cache_seconds=0)
        async with TestClient(TestServer(app)) as c:
            seen = {path: "example.test" in await get(c, path) for path in paths}
        if show:
            assert seen["/"] and seen["/api/checks"] and seen["/api/checks/x-mobile/results?limit=5"]
        else:
            assert not any(seen.values()), seen
    async with TestClient(TestServer(create_app(scenario.path, cache_seconds=0))) as c:  # no configuration
        assert "example.test" not in await get(c, "/") + await get(c, "/api/checks")


async def test_page_title_description_and_display_names(scenario: Scenario) -> None:
    app = create_app(scenario.path, config=config_of(), cache_seconds=0)
    async with TestClient(TestServer(app)) as c:
        page = await get(c, "/")
        assert "<h1>X status</h1>" in page and "Measured from outside" in page
        assert "Home timeline (web)" in page and "What people see first." in page
        body = json.loads(await get(c, "/api/v2/components.json"))
        assert body["page"]["name"] == "X status"
        web = next(x for x in body["components"] if x["id"] == "x-web")
        assert (web["name"], web["description"]) == ("Home timeline (web)", "What people see first.")
        checks = {x["name"]: x for x in json.loads(await get(c, "/api/checks"))["checks"]}
        assert (checks["x-web"]["display_name"], checks["x-api"]["display_name"]) == (
            "Home timeline (web)",
            "x-api",
        )
        assert "Each bar is one UTC day since the first result" in page  # a short history says so
        assert 'http-equiv="refresh"' not in page  # only with page.refresh: it interrupts screen readers
    wall = dataclasses.replace(config_of(), page=PageSettings("Wall", refresh=300.0))
    async with TestClient(TestServer(create_app(scenario.path, config=wall, cache_seconds=0))) as c:
        page = await get(c, "/")
        assert '<meta http-equiv="refresh" content="300">' in page and "reloads every 5 min" in page


# -- the Statuspage read API -------------------------------------------------------------------------

COMPONENT_KEYS = {
    "id", "name", "status", "created_at", "updated_at", "position", "description", "showcase",
    "start_date", "group_id", "page_id", "group", "only_show_if_degraded",
}  # fmt: skip
INCIDENT_KEYS = {
    "id", "name", "status", "created_at", "updated_at", "monitoring_at", "resolved_at", "impact",
    "shortlink", "started_at", "page_id", "incident_updates", "components",
}  # fmt: skip
UPDATE_KEYS = {
    "id", "status", "body", "incident_id", "created_at", "updated_at", "display_at",
    "affected_components", "deliver_notifications", "custom_tweet", "tweet_id",
}  # fmt: skip
COMPONENT_STATUSES = {
    "operational",
    "degraded_performance",
    "partial_outage",
    "major_outage",
    "under_maintenance",
}


async def test_components_incidents_and_unresolved_have_statuspage_shapes(scenario: Scenario) -> None:
    async with TestClient(TestServer(create_app(scenario.path, config=config_of(), cache_seconds=0))) as c:
        components = json.loads(await get(c, "/api/v2/components.json"))
        assert set(components) == {"page", "components"}
        assert set(components["page"]) >= {"id", "name", "url", "updated_at"}
        for item in components["components"]:
            assert set(item) >= COMPONENT_KEYS and item["status"] in COMPONENT_STATUSES
        incidents = json.loads(await get(c, "/api/v2/incidents.json"))
        assert set(incidents) == {"page", "incidents"}
        by_check = {i["components"][0]["id"]: i for i in incidents["incidents"]}
        assert set(by_check) == {"x-web", "x-mobile"}  # resolved ones too
        assert [i["status"] for i in incidents["incidents"]] == ["investigating", "resolved"]  # newest first
        for item in incidents["incidents"]:
            assert set(item) >= INCIDENT_KEYS and item["impact"] in {"none", "minor", "major", "critical"}
            for update in item["incident_updates"]:
                assert set(update) >= UPDATE_KEYS
        assert by_check["x-web"]["name"] == "Home timeline (web): major outage"
        unresolved = json.loads(await get(c, "/api/v2/incidents/unresolved.json"))
        assert [i["id"] for i in unresolved["incidents"]] == [str(scenario.incidents["x-mobile"].id)]


async def test_a_check_without_data_is_operational_for_statuspage_clients(tmp_path: Path) -> None:
    config = Config(checks=(Check("fresh", "https://fresh.example.test/"),))
    connect(tmp_path / "empty.db").conn.close()
    from prober.store import Store

    Store(tmp_path / "empty.db").open().close()  # migrated, no result yet
    async with TestClient(TestServer(create_app(tmp_path / "empty.db", config=config, cache_seconds=0))) as c:
        summary = json.loads(await get(c, "/api/v2/summary.json"))
        fresh = next(x for x in summary["components"] if x["id"] == "fresh")
        assert (fresh["status"], fresh["prober_state"]) == ("operational", "unknown")
        assert summary["status"] == {"indicator": "none", "description": "Status Unknown"}


# -- incident notes -----------------------------------------------------------------------------------


def test_notes_become_incident_updates_and_set_the_status(tmp_path: Path) -> None:
    scenario = build_status_db(tmp_path / "prober.db")
    mobile = scenario.incidents["x-mobile"]
    runner = CliRunner()
    db = ["--db", str(scenario.path)]
    result = runner.invoke(main, ["incident", "note", *db, str(mobile.id), "Looking into errors in JP"])
    assert result.exit_code == 0, result.output
    assert "(investigating)" in result.output
    result = runner.invoke(
        main, ["incident", "note", *db, "--status", "identified", str(mobile.id), "A bad deploy in JP"]
    )
    assert result.exit_code == 0, result.output
    bad = runner.invoke(main, ["incident", "note", *db, "99999", "text"])
    assert bad.exit_code == 2 and "no incident 99999" in bad.output
    bad = runner.invoke(main, ["incident", "note", *db, "--status", "fixed", str(mobile.id), "x"])
    assert bad.exit_code == 2 and "fixed" in bad.output
    bad = runner.invoke(main, ["incident", "note", *db, str(mobile.id), "   "])
    assert bad.exit_code == 2 and "empty" in bad.output
    listed = runner.invoke(main, ["incident", "list", *db, "--open", "--json"])
    assert listed.exit_code == 0, listed.output
    items = [json.loads(line) for line in listed.output.splitlines()]
    assert [(i["check"], i["status"], len(i["notes"])) for i in items] == [("x-mobile", "identified", 2)]
    table = runner.invoke(main, ["incident", "list", *db])
    assert table.exit_code == 0 and re.search(r"x-web\s+major_outage\s+resolved", table.output), table.output


async def test_notes_on_the_page_and_in_the_api(tmp_path: Path) -> None:
    scenario = build_status_db(tmp_path / "prober.db")
    mobile, web_incident = scenario.incidents["x-mobile"], scenario.incidents["x-web"]
    db = connect(scenario.path)
    try:
        assert mobile.id is not None and web_incident.id is not None
        add_note(db, mobile.id, "identified", "A <b>bad</b> deploy in JP", utcnow())
        add_note(db, web_incident.id, "resolved", "Rolled back; all good.", utcnow())
        with pytest.raises(NoteError):
            add_note(db, 424242, "identified", "nothing", utcnow())
        notes = notes_of(db, [mobile.id, web_incident.id])
    finally:
        db.conn.close()
    assert incident_status(mobile, notes[mobile.id]) == "identified"
    async with TestClient(TestServer(create_app(scenario.path, config=config_of(), cache_seconds=0))) as c:
        page = await get(c, "/")
        assert "A &lt;b&gt;bad&lt;/b&gt; deploy in JP" in page and "<b>bad</b>" not in page
        assert "Rolled back; all good." in page
        unresolved = json.loads(await get(c, "/api/v2/incidents/unresolved.json"))
        (item,) = unresolved["incidents"]
        assert item["status"] == "identified"
        bodies = [(u["status"], u["body"]) for u in item["incident_updates"]]
        assert bodies[0] == ("identified", "A <b>bad</b> deploy in JP")  # newest first
        assert bodies[-1][0] == "investigating" and "seen from JP" in bodies[-1][1]  # the detection
        incidents = json.loads(await get(c, "/api/v2/incidents.json"))
        resolved = next(i for i in incidents["incidents"] if i["id"] == str(web_incident.id))
        assert [u["status"] for u in resolved["incident_updates"]][-1] == "investigating"
        assert "Rolled back; all good." in [u["body"] for u in resolved["incident_updates"]]
        native = json.loads(await get(c, "/api/incidents"))["incidents"]
        assert [(i["check"], i["status"], [n["body"] for n in i["notes"]]) for i in native] == [
            ("x-mobile", "identified", ["A <b>bad</b> deploy in JP"]),
            ("x-web", "resolved", ["Rolled back; all good."]),
        ]


def test_the_page_docs_yaml_validates() -> None:
    text = (Path(__file__).resolve().parent.parent / "docs" / "page.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```yaml\n(.*?)```", text, re.S)
    assert blocks
    for block in blocks:
        config = parse_config(block, filename="docs/page.md")
        assert config.page.title == "X status" and not config.check("x-internal-db").public


def test_error_messages_are_concealed_without_losing_their_cause() -> None:
    conceal = concealer(["https://api.internal.example:8443/health", "http://10.0.0.5/x"])
    result = ProbeResult(
        ts=utcnow(), check="a", vantage="local", region="local", surface=Surface.API,
        url="https://api.internal.example:8443/health", verdict=Verdict.DOWN, reason=Reason.CONNECT,
        error="Cannot connect to host API.internal.example:8443 ssl:default [Connection refused]; "
        "redirected to https://login.corp.example/sso?next=/x; peer 10.0.0.5 reset",
        browser={"failed_requests": [{"url": "https://cdn.corp.example/app.js"}]},
    )  # fmt: skip
    shown = conceal(result)
    assert shown.error == (
        "Cannot connect to host [host]:8443 ssl:default [Connection refused]; redirected to [url]; "
        "peer [host] reset"
    )
    assert (shown.url, shown.browser, shown.reason) == ("", None, Reason.CONNECT)


async def test_a_note_added_while_the_daemon_runs_reaches_its_page_and_api(
    target: Target, tmp_path: Path, prober_process: Callable[..., Awaitable[ProberProcess]]
) -> None:
    config = tmp_path / "checks.yaml"
    config.write_text(
        "defaults: {interval: 300ms, timeout: 2s}\npage: {title: Live status}\nchecks:\n"
        f"  - {{name: broken, url: '{target.url}/error-page', display_name: Broken page}}\n"
        f"  - {{name: secret, url: '{target.url}/error-page', public: false}}\n"
    )
    db = tmp_path / "prober.db"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    run = await prober_process("run", "-c", str(config), "--db", str(db), "--http", f"127.0.0.1:{port}")

    def open_ids() -> list[int]:
        with contextlib.closing(sqlite3.connect(db)) as conn:
            try:
                rows = conn.execute(
                    "SELECT id FROM incidents WHERE check_name = 'broken' AND resolved_at IS NULL"
                )
                return [r[0] for r in rows]
            except sqlite3.OperationalError:
                return []

    await wait_for(lambda: bool(open_ids()), 30, "an incident", lambda: run.log)
    (ident,) = open_ids()
    note = await prober_process(
        "incident", "note", "--db", str(db), "--status", "identified", str(ident), "On it"
    )
    assert await note.wait(30) == 0, note.log

    async with aiohttp.ClientSession() as session:

        async def said() -> bool:
            async with session.get(f"{base}/api/v2/incidents/unresolved.json") as response:
                body = await response.json()
            return any(u["body"] == "On it" for i in body["incidents"] for u in i["incident_updates"])

        await wait_for(said, 40, "the note in unresolved.json", lambda: run.log)
        async with session.get(f"{base}/api/v2/incidents/unresolved.json") as response:
            body = await response.json()
        (item,) = body["incidents"]  # the hidden check's incident is not public
        assert (item["status"], item["name"]) == ("identified", "Broken page: major outage")
        async with session.get(f"{base}/") as response:
            page = await response.text()
        assert "<h1>Live status</h1>" in page and "On it" in page and "secret" not in page
    assert await run.stop() == 0


def test_the_timeline_says_when_each_region_went_down_and_came_back(tmp_path: Path) -> None:
    from datetime import timedelta

    from prober.model import Incident, State
    from prober.notes.timeline import timeline
    from prober.store import Store

    t0 = utcnow().replace(microsecond=0) - timedelta(hours=1)
    # (minute, vantage, region, verdict): JP's two vantages, UK's one; an unknown says nothing.
    script = [
        (0, "tokyo", "JP", "down"), (0, "osaka", "JP", "up"), (0, "london", "UK", "up"),
        (1, "osaka", "JP", "down"), (1, "london", "UK", "unknown"),
        (2, "tokyo", "JP", "up"), (2, "london", "UK", "down"),
        (3, "osaka", "JP", "up"), (4, "london", "UK", "up"),
    ]  # fmt: skip
    with Store(tmp_path / "t.db") as store:
        for minute, vantage, region, verdict in script:
            at = t0 + timedelta(minutes=minute)
            store.add(ProbeResult(at, "c", vantage, region, Surface.WEB, "https://c.test/", Verdict(verdict)))
        ends = t0 + timedelta(minutes=1), t0 + timedelta(minutes=4)
        regions = ("tokyo", "osaka", "london"), ("JP", "UK")
        incident = Incident("c", State.MAJOR_OUTAGE, Reason.CONNECT, None, t0, *ends, *regions)
        incident = dataclasses.replace(incident, id=store.save_incident(incident).result())
    db = connect(tmp_path / "t.db")
    try:
        assert incident.id is not None
        note = add_note(db, incident.id, "identified", "Fibre cut", t0 + timedelta(minutes=2, seconds=30))
        events = timeline(db, incident, [note], utcnow())
    finally:
        db.conn.close()
    said = [(int((e.at - t0).total_seconds()), e.kind, e.text) for e in events]
    assert said == [
        (0, "started", "First down result"),
        (0, "region_down", "JP: down results began"),
        (60, "detected", "Outage confirmed: incident opened"),
        (120, "region_down", "UK: down results began"),
        (150, "note", "Fibre cut"),
        (180, "region_up", "JP: good results again"),
        (240, "region_up", "UK: good results again"),
        (240, "resolved", "Recovered: incident resolved"),
    ]


@pytest.mark.parametrize(
    ("hours", "bars", "unit"),
    [
        (1, 30, "Each bar is one probe"),
        (20, 21, "Each bar is one hour"),
        (24 * 5, 6, "Each bar is one UTC day"),
    ],
    ids=["an-hour-old", "a-day-old", "five-days-old"],
)
async def test_a_young_check_gets_finer_bars(tmp_path: Path, hours: int, bars: int, unit: str) -> None:
    from datetime import timedelta

    from prober.store import Store

    now = utcnow()
    first = now - timedelta(hours=hours)
    with Store(tmp_path / "y.db") as store:
        at = first
        while at < now:
            store.add(ProbeResult(at, "young", "local", "local", Surface.WEB, "https://y.test/", Verdict.UP))
            at += timedelta(minutes=2)
    config = Config(checks=(Check("young", "https://y.test/"),))
    async with TestClient(TestServer(create_app(tmp_path / "y.db", config=config, cache_seconds=0))) as c:
        page = await get(c, "/")
    strip = re.search(r'<div class="bars short"[^>]*>(.*?)</div>', page, re.S)
    assert strip is not None
    expected = bars if hours < 24 * 3 else (now.date() - first.date()).days + 1
    found = len(re.findall(r"<i[ >]", strip[1]))
    # The current hour has no bar until its first probe (a minute past the hour, say).
    assert found == expected or (hours == 20 and found == expected - 1), found
    grey = [i for i, bar in enumerate(re.findall(r"<i[^>]*>", strip[1])) if ' class="u"' in bar]
    # No grey: every bar has data (today's, just after midnight, may have none yet).
    assert grey == [] or (grey == [found - 1] and now.hour == 0 and now.minute < 5), grey
    assert unit in page and "100% uptime" in page


def test_the_incident_commands_import_in_either_order() -> None:
    import subprocess
    import sys

    for first in ("prober.notes.cli", "prober.cli"):
        code = (
            f"import {first}; from prober.cli import main; print(sorted(main.commands['incident'].commands))"
        )
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
        assert (done.returncode, done.stdout.strip()) == (0, "['list', 'note']"), done.stderr
