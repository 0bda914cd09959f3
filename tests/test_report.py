"""`prober report`: time windows, availability by check/surface/region/vantage, incidents, history,
MTTR, the text and JSON forms, and `--rebuild`."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from prober import report as rep
from prober.cli import main
from prober.config import parse_config
from prober.model import Incident, ProbeResult, Reason, State, Surface, Verdict
from prober.state import rebuild_incidents
from prober.store import Store, connect, replace_incidents, write_incident
from prober.store import read as q
from prober.terminal import span

T0 = datetime(2022, 12, 28, 13, 50, tzinfo=UTC)
NOW = datetime(2022, 12, 29, 12, 0, tzinfo=UTC)
REGIONS = {"us": "US", "jp": "JP", "uk": "UK"}

CONFIG = """\
defaults: {interval: 1s, confirm: 2, recover: 2, vantages: [us, jp, uk]}
vantages:
  us: {region: US}
  jp: {region: JP}
  uk: {region: UK}
checks:
  - {name: web, surface: web, url: 'http://127.0.0.1:9/home'}
  - {name: mobile, surface: mobile, url: 'http://127.0.0.1:9/api'}
"""


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def res(second: float, vantage: str, verdict: str = "up", check: str = "web") -> ProbeResult:
    v = Verdict(verdict)
    return ProbeResult(
        ts=T0 + timedelta(seconds=second), check=check, vantage=vantage, region=REGIONS[vantage],
        surface=Surface.MOBILE if check == "mobile" else Surface.WEB, url=f"http://127.0.0.1:9/{check}",
        verdict=v, reason={Verdict.DOWN: Reason.ERROR_PAGE, Verdict.DEGRADED: Reason.SLOW,
                           Verdict.UNKNOWN: Reason.VANTAGE}.get(v),
        signature="x-dont-fret" if v is Verdict.DOWN else None, status=200,
    )  # fmt: skip


def outage_results() -> list[ProbeResult]:
    """60s of `web` from three vantages: US and UK down over [10, 30), JP over [15, 20); `mobile` up."""
    out = []
    for s in range(60):
        for vantage in REGIONS:
            down = (10 <= s < 30) if vantage != "jp" else (15 <= s < 20)
            out.append(res(s, vantage, "down" if down else "up"))
            out.append(res(s + 0.5, vantage, "unknown" if s == 40 else "up", check="mobile"))
    return out


def fill(path: Path, results: list[ProbeResult]) -> None:
    with Store(path) as store:
        for r in results:
            store.add(r)


# -- --since / --until ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("24h", NOW - timedelta(hours=24)),
        ("90m", NOW - timedelta(minutes=90)),
        ("1h30m", NOW - timedelta(minutes=90)),
        ("7d", NOW - timedelta(days=7)),
        ("now", NOW),
        ("2022-12-28", datetime(2022, 12, 28, tzinfo=UTC)),
        ("2022-12-28T13:50", T0),
        ("2022-12-28 13:50:00Z", T0),
        ("2022-12-28T14:50:00+01:00", T0),
    ],
    ids=["hours", "minutes", "compound", "days", "now", "date", "naive-is-utc", "zulu", "offset"],
)
def test_parse_when(text: str, expected: datetime) -> None:
    assert rep.parse_when(text, NOW) == expected


@pytest.mark.parametrize(
    "text", ["2022", "24", "soon", "", "2022-13-01", "-1h", "yesterday"], ids=lambda t: repr(t)
)
def test_parse_when_refuses_with_a_hint(text: str) -> None:
    with pytest.raises(ValueError, match="is not a time: write a duration back from now"):
        rep.parse_when(text, NOW)


@pytest.mark.parametrize(
    "text",
    [
        "٢٠٢٢-١٢-٢٨",
        "2022-12-28T13:50:00²",
        "24h²",
        "٢٤h",
        "１h",
        "20221228",
        "2022W01",
        "2022-12-28T13:50 UTC",
    ],
    ids=lambda t: ascii(t),
)
def test_parse_when_takes_ascii_digits_only(text: str) -> None:
    with pytest.raises(ValueError, match="is not a time"):
        rep.parse_when(text, NOW)


@pytest.mark.parametrize(
    "text",
    ["99999999999d", "9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00", "0001-01-01", "9999-12-31",
     "1969-12-31T23:59:59Z", "1e400s", "9" * 40 + "d"],
)  # fmt: skip
def test_parse_when_bounds_every_time_to_what_datetime_and_sqlite_hold(text: str) -> None:
    with pytest.raises(ValueError, match=r"out of range|reaches back before|is not a time"):
        rep.parse_when(text, NOW)


@pytest.mark.parametrize("text", ["99999999999d", "9999-12-31T23:59:59-14:00", "²"])
def test_report_refuses_a_window_out_of_range_with_exit_2(tmp_path: Path, text: str) -> None:
    code, _, err = invoke("report", "--db", str(tmp_path / "p.db"), "--since", text)
    assert code == 2 and "--since" in err and "Traceback" not in err


@given(st.integers(min_value=0, max_value=10**7))
def test_parse_when_relative_seconds(seconds: int) -> None:
    assert rep.parse_when(f"{seconds}s", NOW) == NOW - timedelta(seconds=seconds)


@given(st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)))
def test_parse_when_iso_round_trips(ts: datetime) -> None:
    assert rep.parse_when(ts.isoformat(), NOW) == ts


# -- pure parts ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("counts", "expected"),
    [
        (rep.Counts(), "-"),
        (rep.Counts(unknown=5), "-"),
        (rep.Counts(up=3, degraded=1), "100%"),
        (rep.Counts(up=1, down=1, unknown=100), "50.00%"),
        (rep.Counts(up=99999, down=1), ">99.99%"),
        (rep.Counts(down=4), "0.00%"),
    ],
    ids=[
        "nothing",
        "only-unknown",
        "degraded-counts-as-available",
        "unknown-ignored",
        "never-100",
        "all-down",
    ],
)
def test_percent(counts: rep.Counts, expected: str) -> None:
    assert rep.percent(counts) == expected


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [(0.25, "0.2s"), (59.94, "59.9s"), (65, "1m05s"), (3599, "59m59s"), (7980, "2h13m"), (273600, "3d04h")],
)
def test_span(seconds: float, expected: str) -> None:
    assert span(timedelta(seconds=seconds)) == expected


def incident(start: float, end: float | None, check: str = "web", detect: float = 1.0) -> Incident:
    return Incident(
        check=check, state=State.MAJOR_OUTAGE, reason=Reason.ERROR_PAGE, signature="x-dont-fret",
        started_at=T0 + timedelta(seconds=start), detected_at=T0 + timedelta(seconds=start + detect),
        resolved_at=None if end is None else T0 + timedelta(seconds=end), vantages=("uk", "us"),
        regions=("UK", "US"),
    )  # fmt: skip


def test_mean_time_to_recovery_and_detect() -> None:
    incidents = [incident(0, 10), incident(100, 130, detect=3), incident(200, None)]
    assert rep.mean_time_to_recovery(incidents) == timedelta(seconds=20)  # the open one is left out
    assert rep.mean_time_to_detect(incidents) == timedelta(seconds=5 / 3)
    assert rep.mean_time_to_recovery([incident(0, None)]) is None
    assert rep.duration(incident(200, None), T0 + timedelta(seconds=260)) == timedelta(seconds=60)


# -- against a database --------------------------------------------------------------------------------


def test_availability_by_check_surface_region_and_vantage(tmp_path: Path) -> None:
    db_path = tmp_path / "p.db"
    fill(db_path, outage_results())
    db = connect(db_path, readonly=True)
    report = rep.collect(db, T0, T0 + timedelta(seconds=60), NOW)

    checks = {line.key: line for line in report.by_check()}
    web = checks[("web", "web")]
    assert (web.counts.up, web.counts.down, web.counts.unknown) == (135, 45, 0)
    assert web.regions["US"].availability == web.regions["UK"].availability == 40 / 60
    assert web.regions["JP"].availability == 55 / 60
    mobile = checks[("mobile", "mobile")]
    assert mobile.counts.unknown == 3 and mobile.counts.availability == 1.0  # unknown never counts
    surfaces = {line.key[0]: line.counts for line in report.by_surface()}
    assert surfaces["web"] == web.counts
    regions = {line.key[0]: line.counts for line in report.by_region()}
    assert regions["US"] == rep.Counts(up=99, down=20, unknown=1)
    vantages = {line.key: line.counts for line in report.by_vantage()}
    assert vantages[("jp", "JP")] == rep.Counts(up=114, down=5, unknown=1)
    assert report.total().judged == 357

    # [since, until): the result at `until` is outside, the one at `since` inside.
    window = rep.collect(db, T0 + timedelta(seconds=10), T0 + timedelta(seconds=30), NOW, check="web")
    assert window.total() == rep.Counts(down=45, up=15)
    assert {g.check for g in window.groups} == {"web"}


def test_incidents_longest_and_history(tmp_path: Path) -> None:
    db_path = tmp_path / "p.db"
    fill(db_path, [res(-3600, "us"), res(0, "us")])
    with Store(db_path) as store:
        ids = [
            store.save_incident(i).result()
            for i in (incident(0, 60), incident(3600, 3610), incident(7200, None, check="mobile"))
        ]
    db = connect(db_path, readonly=True)
    now = T0 + timedelta(seconds=7300)
    report = rep.collect(db, T0 + timedelta(seconds=3000), now, now)
    assert [i.id for i in report.incidents] == ids[1:]  # only those overlapping the window
    assert report.longest["web"].id == ids[0]  # but the longest is from the whole history
    assert report.incident_counts == {"web": 2, "mobile": 1}
    assert report.longest["mobile"].resolved_at is None  # open: it lasts until now
    assert report.history["web"] == T0 - timedelta(seconds=3600)  # the oldest result
    assert report.history["mobile"] == T0 + timedelta(seconds=7200)  # no results: its first incident

    data = rep.to_json(report)
    assert [i["duration_seconds"] for i in data["incidents"]] == [10.0, 100.0]
    assert data["incidents"][1]["ongoing"] is True
    assert data["mttr_s"] == 10.0
    longest = {i["check"]: i for i in data["longest"]}
    assert longest["web"]["duration_seconds"] == 60.0 and longest["web"]["incidents_of_check"] == 2
    assert longest["web"]["history_since"] == "2022-12-28T12:50:00.000Z"

    text = rep.format_text(report)
    assert "Incidents (2)" in text and "(ongoing)" in text
    assert "Longest incident of each check, whole history" in text
    assert "Mean time to recovery: 10.0s over 1 resolved incident;" in text


def test_is_longest_marks_only_a_record_among_several(tmp_path: Path) -> None:
    db_path = tmp_path / "p.db"
    with Store(db_path) as store:
        for i in (incident(0, 10), incident(100, 160), incident(300, 301, check="mobile")):
            store.save_incident(i).result()
    db = connect(db_path, readonly=True)
    report = rep.collect(db, T0, T0 + timedelta(hours=1), T0 + timedelta(hours=1))
    marked = [
        (i.check, rep.duration(i, NOW).total_seconds()) for i in report.incidents if report.is_longest(i)
    ]
    assert marked == [("web", 60.0)]  # mobile's only incident is no record


# -- the command ---------------------------------------------------------------------------------------


def test_report_command_text_and_json(tmp_path: Path) -> None:
    db = tmp_path / "p.db"
    fill(db, outage_results())
    code, out, err = invoke("report", "--db", str(db), "--since", "2022-12-28", "--until", "2022-12-29")
    assert (code, err) == (0, ""), err
    for section in ("By check", "By surface", "By region", "By vantage"):
        assert section in out
    assert "66.67%" in out  # web from US: 40 of 60

    code, out, _ = invoke(
        "report", "--db", str(db), "--since", "2022-12-28", "--until", "2022-12-29", "--json"
    )
    assert code == 0
    data = json.loads(out)
    assert data["since"] == "2022-12-28T00:00:00.000Z"
    web = next(c for c in data["availability"]["checks"] if c["check"] == "web")
    assert web["regions"]["JP"] == pytest.approx(55 / 60)
    assert {r["region"] for r in data["availability"]["regions"]} == {"US", "JP", "UK"}

    code, out, _ = invoke("report", "--db", str(db), "--since", "1h")  # years later: nothing
    assert code == 0 and "No results in this window." in out


@pytest.mark.parametrize(
    "args",
    [["--since", "yesterday"], ["--until", "2022-13-01"], ["--since", "2022-12-29", "--until", "2022-12-28"]],
    ids=["bad-since", "bad-until", "since-after-until"],
)
def test_report_usage_errors_exit_2(tmp_path: Path, args: list[str]) -> None:
    db = tmp_path / "p.db"
    fill(db, [res(0, "us")])
    code, _, err = invoke("report", "--db", str(db), *args)
    assert code == 2
    assert "since" in err or "until" in err


def test_report_without_a_database_exits_3(tmp_path: Path) -> None:
    code, _, err = invoke("report", "--db", str(tmp_path / "nope.db"))
    assert code == 3
    assert "nope.db: no such database" in err


def test_rebuild_replaces_incidents_keeping_ids_and_other_checks(tmp_path: Path) -> None:
    db = tmp_path / "p.db"
    config = tmp_path / "checks.yaml"
    config.write_text(CONFIG)
    results = outage_results()
    fill(db, results)
    expected = rebuild_incidents(results, rep.policies(parse_config(CONFIG)))
    assert len(expected) == 1 and expected[0].regions == ("JP", "UK", "US")
    with Store(db) as store:
        same_start = store.save_incident(
            Incident("web", State.PARTIAL_OUTAGE, None, None, expected[0].started_at, expected[0].started_at)
        ).result()
        store.save_incident(incident(1000, 1001, check="web")).result()  # not in the results: removed
        gone = store.save_incident(incident(5, 6, check="removed-check")).result()  # not configured: kept

    code, out, err = invoke(
        "report", "--db", str(db), "-c", str(config), "--rebuild", "--since", "2022-12-28"
    )
    assert code == 0, err
    assert "rebuilt 1 incidents of 2 checks from 360 results (1 kept their id, 0 new, 1 removed)" in err
    with sqlite3.connect(db) as conn:
        ids = [r[0] for r in conn.execute("SELECT id FROM incidents ORDER BY id")]
    assert ids == [same_start, gone]
    stored = q.incidents(connect(db, readonly=True), check="web")
    (web,) = stored
    assert (web.id, web.state, web.regions) == (same_start, State.MAJOR_OUTAGE, ("JP", "UK", "US"))
    assert _same(web, expected[0])
    assert "web" in out  # and the report follows


def _same(a: Incident, b: Incident) -> bool:
    """Equal once stored: ids aside, times at millisecond precision."""
    from prober.model import iso

    def key(i: Incident) -> tuple[object, ...]:
        times = (i.started_at, i.detected_at, i.resolved_at)
        return (
            i.check,
            i.state,
            i.reason,
            i.signature,
            *(t and iso(t) for t in times),
            i.vantages,
            i.regions,
        )

    return key(a) == key(b)


def test_rebuild_explains_a_missing_configuration(tmp_path: Path) -> None:
    db = tmp_path / "p.db"
    fill(db, [res(0, "us")])
    code, _, err = invoke("report", "--db", str(db), "-c", str(tmp_path / "nope.yaml"), "--rebuild")
    assert code == 2
    assert "nope.yaml" in err and "--rebuild replays the results with the confirm, recover and quorum" in err


def test_rebuild_of_an_unknown_check_is_a_usage_error(tmp_path: Path) -> None:
    config = tmp_path / "checks.yaml"
    config.write_text(CONFIG)
    code, _, err = invoke(
        "report", "-c", str(config), "--db", str(tmp_path / "p.db"), "--rebuild", "--check", "x"
    )
    assert code == 2 and "'x' is not in" in err


def test_rebuild_is_one_transaction(tmp_path: Path) -> None:
    """A failure half-way through leaves the stored incidents as they were."""
    db_path = tmp_path / "p.db"
    with Store(db_path) as store:
        first = store.save_incident(incident(0, 10)).result()
        broken = replace(incident(100, 110), check=None)  # NOT NULL check_name: the insert fails
        future = store.submit(lambda db: replace_incidents(db, ["web"], [incident(0, 20), broken]))
        with pytest.raises(sqlite3.IntegrityError):
            future.result()
    stored = q.incidents(connect(db_path, readonly=True))
    assert [(i.id, i.resolved_at) for i in stored] == [(first, T0 + timedelta(seconds=10))]


def test_write_incident_and_replace_incidents_store_the_same_row(tmp_path: Path) -> None:
    """`replace_incidents` (one transaction for many) writes rows that read back like `write_incident`'s."""
    db_path = tmp_path / "p.db"
    original = incident(0, 10)
    with Store(db_path) as store:
        store.submit(lambda db: write_incident(db, original)).result()
        a = store.submit(lambda db: q.incidents(db)).result()
        store.submit(lambda db: replace_incidents(db, ["web"], [original])).result()
        b = store.submit(lambda db: q.incidents(db)).result()
    assert a == b
