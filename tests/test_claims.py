"""Claims, pure parts and the report: reading official pages, findings per incident, `prober report`."""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from claims_sources import MAJOR, OPERATIONAL, atom, incident, rss, summary
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from prober.claims import Claim, ClaimStatus, Link, finding, spans
from prober.claims.parse import SourceError, claims_of, read_feed, read_statuspage
from prober.claims.record import save_links, write_claims
from prober.cli import main
from prober.config import ConfigError, parse_config
from prober.model import Incident, Reason, State
from prober.store import Store
from prober.web import create_app

T0 = datetime(2022, 12, 28, 13, 0, tzinfo=UTC)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


# -- reading a Statuspage summary.json -------------------------------------------------------------


def test_a_statuspage_summary_gives_its_components_indicator_and_open_incidents() -> None:
    data = summary(
        MAJOR,
        {"Web": "major_outage", "API": "operational", "Odd": "sleeping"},
        [
            incident("Web errors", at(3), ["Web"]),
            incident("Something", at(1)),
            {**incident("Old", at(0)), "status": "resolved"},
        ],
    )
    reading = read_statuspage(json.dumps(data).encode())
    assert reading.overall is ClaimStatus.MAJOR_OUTAGE and reading.description == "Major System Outage"
    assert dict(reading.components) == {"Web": ClaimStatus.MAJOR_OUTAGE, "API": ClaimStatus.OPERATIONAL}
    assert [(i.name, i.created_at, i.components) for i in reading.incidents] == [
        ("Something", at(1), ()),
        ("Web errors", at(3), ("Web",)),
    ]
    by = {c.component: c for c in claims_of(reading, ["web", "Missing"])}
    # The overall claim and each component's; an incident naming no component counts for every one.
    assert (by[""].status, by[""].incident) == (ClaimStatus.MAJOR_OUTAGE, "Something")
    assert (by["API"].status, by["API"].incident, by["API"].admits) == (
        ClaimStatus.OPERATIONAL,
        "Something",
        True,
    )
    assert by["web"].status is ClaimStatus.MAJOR_OUTAGE  # names match without regard to case
    assert by["Missing"].status is ClaimStatus.UNKNOWN and by["Missing"].reason


def test_incident_updates_name_the_affected_components() -> None:
    item = {**incident("Slow API", at(0)), "incident_updates": [{"affected_components": [{"name": "API"}]}]}
    reading = read_statuspage(
        json.dumps(summary(OPERATIONAL, {"Web": "operational", "API": "operational"}, [item])).encode()
    )
    by = {c.component: c for c in claims_of(reading, [])}
    assert by["API"].incident == "Slow API" and by["Web"].incident is None and not by["Web"].admits


def test_without_an_indicator_the_worst_component_speaks_for_the_page() -> None:
    data = {"components": [{"name": "A", "status": "operational"}, {"name": "B", "status": "partial_outage"}]}
    assert read_statuspage(json.dumps(data).encode()).overall is ClaimStatus.PARTIAL_OUTAGE


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b"<html></html>", "not JSON"),
        (b"[1, 2]", "not an object"),
        (b'{"status": {"indicator": "none"}, "incidents": {"a": 1}}', "incidents is not a list"),
        (b'{"page": {}}', "neither status.indicator nor components"),
        (b"\xff\xfe\x00", "not JSON"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    ],
    ids=["html", "array", "wrong-type", "empty", "binary", "deep"],
)
def test_what_is_not_a_statuspage_summary_is_a_source_error(body: bytes, why: str) -> None:
    with pytest.raises(SourceError, match=why):
        read_statuspage(body)


# -- reading RSS and Atom feeds --------------------------------------------------------------------


def test_an_rss_entry_is_an_open_incident_until_it_says_resolved() -> None:
    now = at(60)
    feed = rss([
        ("a", "Elevated errors", at(50), "Investigating - We are looking into it."),
        ("b", "Login failures", at(40), "Resolved - This incident has been resolved. Investigating - ..."),
        ("c", "Ancient", now - timedelta(days=3), "Investigating - Forgotten, never resolved."),
    ])  # fmt: skip
    reading = read_feed(feed.encode(), now, open_for=86400)
    assert [(i.name, i.created_at) for i in reading.incidents] == [("Elevated errors", at(50))]
    assert reading.overall is ClaimStatus.PARTIAL_OUTAGE and not reading.lists_components
    # A component of a feed is admitted by every incident that names none.
    assert {c.component: c.status for c in claims_of(reading, ["Web"])} == {
        "": ClaimStatus.PARTIAL_OUTAGE,
        "Web": ClaimStatus.PARTIAL_OUTAGE,
    }


def test_a_later_entry_titled_resolved_closes_the_incident_of_the_same_title() -> None:
    now = at(60)
    feed = atom([
        ("urn:1", "Increased API error rates", at(10), "We are investigating."),
        ("urn:2", "[RESOLVED] Increased API error rates", at(30), "Service is operating normally."),
        ("urn:3", "Scheduled maintenance of the database", at(55), "In progress."),
    ])  # fmt: skip
    reading = read_feed(feed.encode(), now, open_for=86400)
    assert [i.name for i in reading.incidents] == ["Scheduled maintenance of the database"]
    assert reading.overall is ClaimStatus.UNDER_MAINTENANCE


def test_what_is_not_a_feed_is_a_source_error() -> None:
    with pytest.raises(SourceError, match="not an RSS or Atom feed"):
        read_feed(b'{"status": "json, not xml"}', at(0), 3600)


# -- findings: claimed vs measured -----------------------------------------------------------------

OK = Claim("Web", ClaimStatus.OPERATIONAL)
DOWN = Claim("Web", ClaimStatus.MAJOR_OUTAGE, incident="Errors", incident_created_at=at(1))
UNKNOWN = Claim("Web", ClaimStatus.UNKNOWN, reason="timeout")
LINK = Link("official", "Web")


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        # said operational from before the start; admitted 7 minutes in: lag 7, silent 7 minutes.
        ([(-5, OK), (0.5, OK), (17, DOWN)], ("operational", 17, 7 * 60, 7 * 60, 0)),
        # never admitted: silent for the whole 20 minutes.
        ([(-5, OK)], ("operational", None, None, 20 * 60, 0)),
        # already admitted at the start: lag 0, never silent.
        ([(-5, DOWN)], ("major_outage", -5, 0, 0, 0)),
        # unreadable for 4 minutes: neither silent nor admitted for those.
        ([(-5, OK), (12, UNKNOWN), (16, OK), (20, DOWN)], ("operational", 20, 10 * 60, 6 * 60, 4 * 60)),
        # admitted 30 minutes after the end: a late admission is still one (within an hour).
        ([(-5, OK), (60, DOWN)], ("operational", 60, 50 * 60, 20 * 60, 0)),
    ],
    ids=["late", "never", "already", "unknown-counts-neither", "after-the-end"],
)
def test_finding_of_an_incident(rows: list[tuple[float, Claim]], expected: tuple[object, ...]) -> None:
    series = spans([(at(m), c) for m, c in rows], at(90))
    found = finding(LINK, series, at(10), at(30))
    status, ack, lag, silent, unknown = expected
    assert str(found.status_at_start) == status
    assert found.acknowledged_at == (None if ack is None else at(float(str(ack))))
    assert found.acknowledgement_lag_s == lag
    assert (found.silent_s, found.unknown_s) == (silent, unknown)
    if ack is not None:
        assert (found.official_incident, found.official_created_at) == ("Errors", at(1))


def test_a_claim_does_not_hold_past_two_hours_without_a_poll() -> None:
    series = spans([(at(0), OK)], at(500))
    assert series[0].end == at(120)
    assert finding(LINK, series, at(110), at(130)).silent_s == 10 * 60


# -- configuration ---------------------------------------------------------------------------------


def test_a_claim_naming_an_unknown_source_is_a_located_error() -> None:
    text = (
        "claims:\n  x-status: {url: 'https://status.example.com/api/v2/summary.json', interval: 500ms}\n"
        "checks:\n  - name: web\n    url: https://example.com/\n"
        "    claim: {source: x-stats, component: Web}\n"
    )
    with pytest.raises(ConfigError) as err:
        parse_config(text, "checks.yaml")
    messages = [str(i) for i in err.value.issues]
    assert (
        'checks.yaml:2:79: claims.x-status.interval: "500ms" is too small: it must be at least 1s'
        in messages[0]
    )
    assert (
        messages[1] == 'checks.yaml:6:21: checks[0].claim.source: "x-stats" is not a claims source (x-status)'
    )


def test_a_claims_source_and_its_defaults() -> None:
    config = parse_config(
        "claims:\n  feed: {url: 'https://status.example.com/history.atom', format: atom}\n"
        "checks:\n  - {name: web, url: 'https://example.com/', claim: {source: feed}}\n"
    )
    source = config.claims["feed"]
    assert (source.format, source.interval, source.timeout, source.vantage) == ("atom", 60.0, 10.0, None)
    assert (source.max_body, source.open_for) == (2 * 2**20, 86400.0)
    assert config.check("web").claim is not None and config.check("web").claim.component is None


# -- prober report ---------------------------------------------------------------------------------


def outage_db(tmp_path: Path) -> Path:
    """Two measured outages of `web` (10-30 and 40-45 minutes past 13:00): the official page admitted
    the first at 17, said nothing of the second, and listed an incident of its own at 70."""
    db = tmp_path / "prober.db"
    overall_ok = Claim("", ClaimStatus.OPERATIONAL, "All Systems Operational")
    overall_down = Claim("", ClaimStatus.MAJOR_OUTAGE, incident="Errors", incident_created_at=at(14))
    wolf = Claim("", ClaimStatus.PARTIAL_OUTAGE, incident="Cried wolf", incident_created_at=at(70))
    with Store(db) as store:
        store.save_incident(
            Incident("web", State.MAJOR_OUTAGE, Reason.HTTP_STATUS, None, at(10), at(11), at(30))
        ).result()
        store.save_incident(
            Incident("web", State.MAJOR_OUTAGE, Reason.HTTP_STATUS, None, at(40), at(41), at(45))
        ).result()
        for ts, claim in [
            (0, overall_ok),
            (17, overall_down),
            (35, overall_ok),
            (70, wolf),
            (80, overall_ok),
        ]:
            store.submit(lambda d, ts=ts, claim=claim: write_claims(d, "official", at(ts), [claim])).result()
        store.submit(lambda d: save_links(d, {"web": Link("official", "")}, at(0))).result()
    return db


def test_report_has_a_claimed_vs_measured_section(tmp_path: Path) -> None:
    db = outage_db(tmp_path)
    args = ["report", "--db", str(db), "--since", "2022-12-28T12:00", "--until", "2022-12-28T15:00"]
    result = CliRunner().invoke(main, [*args, "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    first, second = sorted(data["incidents"], key=lambda i: i["started_at"])
    assert first["claim"]["acknowledgement_lag_s"] == 7 * 60 and first["claim"]["silent_s"] == 7 * 60
    assert first["claim"]["said_at_start"] == "All Systems Operational"
    assert second["claim"]["acknowledged_at"] is None and second["claim"]["silent_s"] == 5 * 60
    [section] = data["claims"]
    assert section["source"] == "official" and section["checks"] == ["web"]
    assert (section["outages_measured"], section["acknowledged"]) == (2, 1)
    assert (section["median_lag_s"], section["worst_lag_s"], section["silent_s"]) == (420, 420, 720)
    # The page that cried wolf: an official incident with no measured outage.
    assert [u["name"] for u in section["official_incidents_not_measured"]] == ["Cried wolf"]
    text = CliRunner().invoke(main, args).output
    assert "Claimed vs measured" in text and "Cried wolf" in text and "no outage measured" in text


def test_the_claims_documentation_examples_validate() -> None:
    import re

    text = (Path(__file__).resolve().parent.parent / "docs" / "claims.md").read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", text, flags=re.S)
    assert blocks
    for block in blocks:
        parse_config(block, "docs/claims.md", env={})
    for name in ("prober_claim_status", "prober_claim_polls_total", "prober_claim_poll_failures_total"):
        assert name in text


async def test_prober_serve_answers_api_claims_and_incidents_without_a_configuration(tmp_path: Path) -> None:
    db = outage_db(tmp_path)
    async with TestClient(TestServer(create_app(db))) as client:
        resp = await client.get(
            "/api/claims", params={"since": "2022-12-28T12:00", "until": "2022-12-28T15:00"}
        )
        assert resp.status == 200
        [source] = (await resp.json())["sources"]
        assert source["name"] == "official" and source["checks"] == ["web"] and source["url"] is None
        assert [c["status"] for c in source["history"]] == [
            "operational", "major_outage", "operational", "partial_outage", "operational",
        ]  # fmt: skip
        assert [(c["component"], c["status"], c["stale"]) for c in source["current"]] == [
            (None, "unknown", True)  # its newest row is years old: not what the page says now
        ]
        resp = await client.get(
            "/api/incidents", params={"since": "2022-12-28T12:00", "until": "2022-12-28T15:00"}
        )
        incidents = (await resp.json())["incidents"]
        assert [i["claim"]["acknowledgement_lag_s"] for i in incidents] == [None, 420]
        resp = await client.get("/api/claims", params={"source": "nope"})
        assert resp.status == 404 and "nope" in (await resp.json())["error"]
        assert (await client.get("/api/claims", params={"sorce": "official"})).status == 400
        metrics = await (await client.get("/metrics")).text()
        assert 'prober_claim_status{component="",source="official",status="unknown"} 1.0' in metrics


@settings(max_examples=200, deadline=None)
@given(st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["status", "indicator", "components", "incidents", "name", "created_at",
                         "incident_updates", "affected_components", "description"]), inner, max_size=5),
    max_leaves=30,
))  # fmt: skip
def test_any_json_reads_as_claims_or_a_source_error(data: object) -> None:
    try:
        reading = read_statuspage(json.dumps(data).encode())
    except SourceError:
        return
    assert all(isinstance(c.status, ClaimStatus) for c in claims_of(reading, ["Web"]))


@settings(max_examples=100, deadline=None)
@given(
    st.binary(max_size=300)
    | st.text(max_size=300).map(
        lambda t: f"<rss version='2.0'><channel><item><title>{t}</title></item></channel></rss>".encode()
    )
)
def test_any_bytes_read_as_a_feed_or_a_source_error(body: bytes) -> None:
    with contextlib.suppress(SourceError):  # anything else fails the test
        read_feed(body, at(0), 3600)


def test_a_hostile_feed_is_read_in_bounded_time_and_resolves_no_external_entity() -> None:
    import time

    entities = '<!ENTITY a0 "ha">' + "".join(f'<!ENTITY a{i} "{f"&a{i - 1};" * 10}">' for i in range(1, 10))
    laughs = f'<?xml version="1.0"?><!DOCTYPE rss [{entities}]><rss version="2.0"><channel>'
    laughs += "<title>&a9;</title><item><title>&a9;</title></item></channel></rss>"
    started = time.monotonic()
    with contextlib.suppress(SourceError):
        read_feed(laughs.encode(), at(0), 3600)
    assert time.monotonic() - started < 10
    external = (
        '<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        '<rss version="2.0"><channel><item><title>&x;</title></item></channel></rss>'
    )
    reading = read_feed(external.encode(), at(0), 3600)
    assert not any("root:" in i.name for i in reading.incidents)


def test_a_claims_source_through_local_gets_the_local_vantage() -> None:
    config = parse_config(
        "vantages:\n  us: {region: US}\n"
        "claims:\n  s: {url: 'https://status.example.com/api/v2/summary.json', vantage: local}\n"
        "checks:\n  - {name: web, url: 'https://example.com/', vantages: [us]}\n"
    )
    assert "local" in config.vantages
    with pytest.raises(ConfigError, match=r'claims\.s\.vantage: "tokyo" is not a vantage'):
        parse_config(
            "claims:\n  s: {url: 'https://status.example.com/api/v2/summary.json', vantage: tokyo}\n"
            "checks:\n  - {name: web, url: 'https://example.com/'}\n"
        )


def test_a_feed_incident_was_created_when_it_was_first_published() -> None:
    feed = (
        '<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom"><title>T</title><id>urn:t</id>'
        f"<updated>{at(50).isoformat()}</updated>"
        f"<entry><id>urn:1</id><title>Errors</title><published>{at(5).isoformat()}</published>"
        f"<updated>{at(50).isoformat()}</updated><summary>Identified - a fix is being rolled out</summary>"
        "<category term='Web'/></entry></feed>"
    )
    reading = read_feed(feed.encode(), at(60), 3600)
    [official] = reading.incidents
    assert (official.name, official.created_at, official.components) == ("Errors", at(5), ("Web",))
    by = {c.component: c for c in claims_of(reading, ["Web", "API"])}
    assert by["Web"].incident == "Errors" and by["API"].incident is None  # it names Web only
    assert by["API"].status is ClaimStatus.OPERATIONAL


LATE = "The official status page (Web) said 'operational' for the first 7 minutes"
NEVER = "The official status page (Web) said 'operational' for 20 minutes of the outage"


@pytest.mark.parametrize(
    ("rows", "resolved", "expected"),
    [
        ([(-5, OK), (17, DOWN)], True, LATE + '; it acknowledged at 13:17 UTC ("Errors").'),
        ([(-5, OK)], True, NEVER + "; it never acknowledged it."),
        ([(-5, OK)], False, NEVER + "; it has not acknowledged it yet."),
        ([(-5, DOWN)], True,
         "The official status page (Web) already admitted a problem when the outage began ('major outage')."),
        ([(-5, UNKNOWN), (11, DOWN)], True,
         "prober could not read the official status page (Web) when the outage began;"
         ' it acknowledged at 13:11 UTC ("Errors").'),
    ],
    ids=["late", "never", "not-yet", "already", "unreadable"],
)  # fmt: skip
def test_the_sentence_on_the_status_page(
    rows: list[tuple[float, Claim]], resolved: bool, expected: str
) -> None:
    from prober.claims.web import sentence

    found = finding(LINK, spans([(at(m), c) for m, c in rows], at(90)), at(10), at(30))
    incident = Incident("web", State.MAJOR_OUTAGE, None, None, at(10), at(11), at(30) if resolved else None)
    assert sentence(found, incident) == expected
