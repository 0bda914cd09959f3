"""`prober demo`: its script, its configuration, its database, and a shortened run whose report must
match its own script."""

from __future__ import annotations

import json
import os
import re
import shlex
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from click.testing import CliRunner

from prober import demo
from prober import report as rep
from prober.cli import main
from prober.config import parse_config
from prober.model import Counts, ProberError, parse_iso
from prober.web import create_app

# This checkout's prober, whatever else is installed: the subprocess runs in another folder.
ENV = {
    **os.environ,
    "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[1]), os.environ.get("PYTHONPATH", "")]),
}
REGIONS = {"US", "JP", "UK"}


@pytest.mark.parametrize(
    ("check", "region", "tick", "fails"),
    [
        ("web-home", "US", 14.99, False),
        ("web-home", "US", 15.0, True),
        ("web-login", "UK", 44.99, True),
        ("web-login", "UK", 45.0, False),
        ("web-home", "JP", 20.0, False),
        ("web-home", "JP", 27.0, True),
        ("web-home", "JP", 39.0, False),
        ("mobile-notifications", "JP", 33.5, True),
        ("mobile-notifications", "US", 37.0, False),
        ("mobile-timeline", "US", 30.0, False),
        ("status-page", "UK", 30.0, False),
        ("web-home", None, 30.0, False),  # a browser on 127.0.0.1 is not a vantage
    ],
)
def test_script(check: str, region: str | None, tick: float, fails: bool) -> None:
    assert demo.failing(check, region, tick) is fails


def test_script_is_deterministic_at_any_speed() -> None:
    """Whole ticks and at least three of them: every vantage sees at least two failures (confirm 2)."""
    for window in demo.SCRIPT:
        assert isinstance(window.start, int) and isinstance(window.end, int)
        assert window.end - window.start >= 3
        assert window.start > 0 and window.end < demo.TICKS - 5  # time to recover before the end


def test_config_is_valid_with_three_regional_vantages() -> None:
    config = parse_config(demo.config_yaml(8080, 0.2))
    assert {(v.name, v.region, v.source_address) for v in config.vantages.values()} == {
        ("us", "US", "127.0.0.2"), ("jp", "JP", "127.0.0.3"), ("uk", "UK", "127.0.0.4"),
    }  # fmt: skip
    assert [c.name for c in config.checks] == [r.check for r in demo.ROUTES]
    assert {c.surface for c in config.checks} == {"web", "mobile", "api"}
    assert all(c.interval == 0.2 and c.confirm == 2 and c.recover == 2 for c in config.checks)


def test_config_with_the_rendered_check() -> None:
    config = parse_config(demo.config_yaml(8080, 0.2, rendered=True))
    shell, rendered = config.checks[-2:]
    assert (shell.name, rendered.name) == ("web-app", "web-app-rendered")
    assert shell.url == rendered.url and shell.browser is None and rendered.browser is not None
    # One direct vantage (Chromium cannot bind to the others' source addresses), a page every 2 s at most.
    assert shell.vantages == rendered.vantages == ("chromium",) and config.vantages["chromium"].region == "US"
    assert rendered.interval == 2.0 and rendered.timeout == 10.0


def test_duration_sets_the_interval() -> None:
    assert demo.tick_for(60) == 1.0
    assert demo.tick_for(12) == pytest.approx(0.2)
    with pytest.raises(ValueError, match="at least 6 seconds"):
        demo.tick_for(5)


def test_too_short_is_a_usage_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main, ["demo", "--duration", "12", "--speed", "4", "--db", str(tmp_path / "d.db")]
    )
    assert result.exit_code == 2
    assert "at least 6 seconds" in result.stderr


def test_prepare_db_never_overwrites_real_data(tmp_path: Path) -> None:
    real = tmp_path / "prober.db"
    with sqlite3.connect(real) as conn:
        conn.execute("CREATE TABLE results (url TEXT)")
        conn.execute("INSERT INTO results VALUES ('https://x.com/home')")
    with pytest.raises(ProberError, match="refusing to overwrite"):
        demo.prepare_db(real)
    assert real.exists()

    other = tmp_path / "notes.db"
    other.write_text("my notes, not a database" * 100)
    with pytest.raises(ProberError, match="refusing to overwrite"):
        demo.prepare_db(other)

    previous = tmp_path / "prober-demo.db"
    with sqlite3.connect(previous) as conn:
        conn.execute("CREATE TABLE results (url TEXT)")
        conn.execute("INSERT INTO results VALUES ('http://127.0.0.1:4242/home')")
    Path(f"{previous}-wal").write_bytes(b"")
    demo.prepare_db(previous)
    assert not previous.exists() and not Path(f"{previous}-wal").exists()


# -- the real thing, shortened ------------------------------------------------------------------------


def _incidents(found: dict[str, Any], check: str) -> list[dict[str, Any]]:
    return [i for i in found["report"]["incidents"] if i["check"] == check]


@dataclass(frozen=True)
class ShortDemo:
    """One run of `prober demo --duration 12 --json`: its database, its findings, its progress log."""

    db: Path
    found: dict[str, Any]
    log: str

    def run(self) -> demo.DemoRun:
        found, measured = self.found, self.found["measured"]
        return demo.DemoRun(
            db_path=self.db, tick=found["interval_s"], started_at=parse_iso(found["started_at"]),
            ended_at=parse_iso(found["ended_at"]), interrupted=False,
            since=parse_iso(measured["since"]), until=parse_iso(measured["until"]),
        )  # fmt: skip


@pytest.fixture(scope="module")
def short_demo(tmp_path_factory: pytest.TempPathFactory) -> ShortDemo:
    """The short demo CI runs, run once for the tests of this module that read it."""
    folder = tmp_path_factory.mktemp("demo")
    db = folder / "demo.db"
    process = subprocess.run(
        [sys.executable, "-m", "prober", "demo", "--duration", "12", "--db", str(db), "--json"],
        capture_output=True, cwd=folder, env=ENV, timeout=60, check=False,
    )  # fmt: skip
    log = process.stderr.decode()
    assert process.returncode == 0, log
    return ShortDemo(db, json.loads(process.stdout), log)


@pytest.mark.slow
def test_a_short_demo_reports_its_own_script(short_demo: ShortDemo) -> None:
    db, found, log = short_demo.db, short_demo.found, short_demo.log
    tick = found["interval_s"]
    assert tick == pytest.approx(0.2)
    slack = timedelta(seconds=2 * tick + 0.15)  # "within an interval or two"
    early = timedelta(seconds=0.1)  # a result is stamped when its probe starts
    windows = {w["checks"][0] if len(w["checks"]) == 1 else (w["regions"] or ["all"])[0]: w
               for w in found["script"]}  # fmt: skip
    web = windows["US"]  # the window of the US and UK outage of the web pages
    assert web["regions"] == ["US", "UK"]

    for check in ("web-home", "web-login"):
        (incident,) = _incidents(found, check)
        assert {"US", "UK"} <= set(incident["regions"]) <= REGIONS
        assert (incident["state"], incident["reason"], incident["signature"]) == (
            "major_outage", "error_page", "x-dont-fret",
        )  # fmt: skip
        started, resolved = parse_iso(incident["started_at"]), parse_iso(incident["resolved_at"])
        assert parse_iso(web["start"]) - early <= started <= parse_iso(web["start"]) + slack, incident
        assert parse_iso(web["end"]) - early <= resolved <= parse_iso(web["end"]) + slack, incident
        assert incident["surface"] == "web"

    assert _incidents(found, "mobile-timeline") == []
    assert _incidents(found, "status-page") == []
    # Four ticks of 503 for everyone, confirm 2: one brief incident, every time (a probe made late
    # by a busy machine is skipped: two of four are enough).
    notify = windows["mobile-notifications"]
    (brief,) = _incidents(found, "mobile-notifications")
    assert set(brief["regions"]) == REGIONS and brief["reason"] == "http_status"
    assert (
        parse_iso(notify["start"]) - early
        <= parse_iso(brief["started_at"])
        <= parse_iso(notify["start"]) + slack
    )
    assert (
        parse_iso(notify["end"]) - early
        <= parse_iso(brief["resolved_at"])
        <= parse_iso(notify["end"]) + slack
    )

    # With Chromium here, the web app's shell is up over HTTP while its rendering shows the error page.
    rendered = found["rendered"]
    if rendered["skipped"] is None:
        during = rendered["during_outage"]
        assert during["web-app"]["down"] == 0 and during["web-app"]["up"] == during["web-app"]["probes"], (
            during
        )
        with sqlite3.connect(db) as conn:
            seen = conn.execute(
                "SELECT check_name, verdict, reason FROM results WHERE check_name LIKE 'web-app%'"
            ).fetchall()
        assert ("web-app-rendered", "down", "error_page") in seen, seen
        assert not [row for row in seen if row[0] == "web-app" and row[1] != "up"], seen
        assert "with a rendered check" in log
    else:
        assert "skipping the rendered check" in log

    # The contrast: the status page claimed everything was fine; the error pages came with 200.
    claims = found["status_page"]
    assert claims["probes"] > 0 and claims["claimed"] == claims["probes"]
    assert claims["during_web_incidents"]["probes"] > 0
    assert claims["during_web_incidents"]["claimed"] == claims["during_web_incidents"]["probes"]
    # ... as prober.claims polled it: silent for the whole of each web outage, never acknowledged.
    official = {f["check"]: f["claim"] for f in claims["findings"]}
    for check in ("web-home", "web-login"):
        (incident,) = _incidents(found, check)
        claim = official[check]
        assert (claim["status_at_start"], claim["said_at_start"]) == (
            "operational",
            "All Systems Operational",
        )
        assert claim["acknowledged_at"] is None and claim["acknowledgement_lag_s"] is None
        assert claim["silent_s"] == pytest.approx(incident["duration_seconds"], abs=0.01)
    assert found["error_pages"]["down"] > 0
    assert found["error_pages"]["status_200"] == found["error_pages"]["down"]
    checks = {c["check"]: c for c in found["report"]["availability"]["checks"]}
    assert checks["web-home"]["regions"]["US"] < checks["web-home"]["regions"]["JP"] < 1
    assert checks["mobile-timeline"]["availability"] == 1

    # Progress on stderr while it ran: the script, what prober saw, and status lines.
    assert "script  web pages start answering HTTP 200" in log
    # (partial_outage first when the US result of a run is taken in before the UK one)
    assert re.search(r"prober  web-home: operational -> (major|partial)_outage, down from", log), log
    assert "status " in log and " probes | " in log

    # The database is left for the user: the report reads it, and the text form tells the story.
    result = CliRunner().invoke(main, ["report", "--db", str(db), "--since", found["started_at"]])
    assert result.exit_code == 0 and "web-home" in result.stdout
    text = " ".join(demo.format_findings(demo.findings(short_demo.run())).split())  # unwrapped
    assert "What prober recorded: incidents by surface and region" in text
    assert "mobile-timeline" in text and "no incident" in text
    assert 'The status page said "All Systems Operational"' in text
    assert re.search(r'web-home: the official page \(polled every 1s\) said "All Systems Operational" for '
                     r"[\d.]+s of its [\d.]+s outage and never acknowledged it", text), text  # fmt: skip
    assert "a check of the status code alone would have passed" in text


# -- one figure for one run: the demo, the report it suggests, the API and the page ----------------------


def availability_rows(text: str, title: str) -> dict[str, tuple[str, dict[str, str], int]]:
    """check -> (availability, availability per region, probes) from the table under `title`."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(title))
    header = lines[start + 1].split()
    rows = {}
    for line in lines[start + 3 :]:
        if not line.strip():
            break
        cells = dict(zip(header, line.split(), strict=True))
        rows[cells["check"]] = (cells["availability"], {r: cells[r] for r in REGIONS}, int(cells["probes"]))
    return rows


@pytest.mark.slow
async def test_the_demo_its_report_its_api_and_its_page_give_one_figure(short_demo: ShortDemo) -> None:
    run = short_demo.run()
    text = demo.format_findings(demo.findings(run))
    printed = availability_rows(text, "Availability over the run")
    rendered = {"web-app", "web-app-rendered"} if short_demo.found["rendered"]["skipped"] is None else set()
    assert set(printed) == {r.check for r in demo.ROUTES} | rendered
    # Every result of the run counts, those the daemon made before tick 0 and while stopping too:
    # nothing the run measured is left out of the figures, or deleted to make them agree.
    stored = sqlite3.connect(short_demo.db).execute("SELECT count(*) FROM results").fetchone()[0]
    assert sum(probes for _, _, probes in printed.values()) == stored
    assert printed["web-home"][0] != "100%"  # the outage is in the figures being compared

    # The report the demo suggests, run as printed.
    (line,) = [line for line in text.splitlines() if line.startswith("prober report ")]
    args = shlex.split(line.partition("  (")[0])
    assert args == short_demo.found["report_command"]
    since, until = args[args.index("--since") + 1], args[args.index("--until") + 1]
    assert {"since": since, "until": until} == short_demo.found["measured"]
    assert since <= short_demo.found["started_at"] and until >= short_demo.found["ended_at"]
    result = CliRunner().invoke(main, args[1:], catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    assert availability_rows(result.stdout, "By check") == printed

    async with TestClient(TestServer(create_app(short_demo.db))) as client:
        html = await (await client.get("/")).text()
        for check, (overall, regions, _) in printed.items():
            # The API over the run's window, counted as the report counts it.
            response = await client.get(f"/api/checks/{check}", params={"since": since, "until": until})
            body = await response.json()
            assert response.status == 200, body
            assert body["window"]["percent"] == overall
            # (the web app's checks probe from one region: the others print "-")
            assert {r: v["percent"] for r, v in body["window"]["regions"].items()} == {
                r: p for r, p in regions.items() if p != "-"
            }
            # The page and /api/checks count the last 24 hours and 90 days: the database holds the run only.
            for label in ("24h", "90d"):
                assert rep.percent(Counts(**body["counts"][label])) == overall, (check, label)
            component = re.search(rf'id="check-{re.escape(check)}".*?</article>', html, re.DOTALL)
            assert component is not None and f'<span class="up">{overall} uptime</span>' in component[0]
