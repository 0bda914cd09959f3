"""Polling claims sources on loopback: what a source says is stored; whatever goes wrong is unknown."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from claims_sources import MAJOR, OPERATIONAL, Sources, incident, json_text, summary
from conftest import DnsServer, start_app

from prober.claims.poll import Poller
from prober.config import parse_config
from prober.store import Store
from prober.vantage import VantagePool


@pytest.fixture
async def served() -> AsyncIterator[tuple[Sources, str]]:
    """The scripted sources, and their base URL."""
    sources = Sources()
    runner, port = await start_app(sources.app())
    yield sources, f"http://127.0.0.1:{port}"
    sources.release.set()
    await runner.cleanup()


@pytest.fixture
async def poller(tmp_path: Path) -> AsyncIterator[Poller]:
    """A poller over a real store; not started: tests poll by hand."""
    store = Store(tmp_path / "prober.db").open()
    pool = VantagePool()
    p = Poller(store, pool)
    yield p
    await p.stop()
    await pool.close()
    await store.aclose()


def config(base: str, path: str, extra: str = "", component: str = "Web") -> str:
    return (
        f"claims:\n  official: {{url: '{base}{path}', interval: 1s, timeout: 1s{extra}}}\n"
        f"checks:\n  - {{name: web, url: '{base}/home',"
        f" claim: {{source: official, component: {component}}}}}\n"
    )


def stored(poller: Poller) -> list[tuple[str, str, str | None, str | None]]:
    with sqlite3.connect(poller.store.path) as conn:
        return conn.execute("SELECT component, status, incident, reason FROM claims ORDER BY id").fetchall()


@pytest.mark.parametrize(
    ("path", "extra", "reason"),
    [
        ("/garbage", "", "not JSON"),
        ("/wrong-shape", "", "components is not a list"),
        ("/deep", "", "nested too deeply"),
        ("/error", "", "HTTP 500"),
        ("/hang", "", "timeout: no complete response within 1s"),
        ("/huge", ", max_body: 1MiB", "larger than max_body (1048576 bytes)"),
        ("/nowhere", "", "HTTP 404"),
    ],
    ids=["html-not-json", "wrong-shape", "nested-200000-deep", "http-500", "hangs", "50-MB", "404"],
)
async def test_a_source_that_misbehaves_gives_unknown_claims_and_a_reason(
    served: tuple[Sources, str],
    poller: Poller,
    path: str,
    extra: str,
    reason: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    _, base = served
    await poller.apply(parse_config(config(base, path, extra)))
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="prober.claims"):
        await asyncio.wait_for(poller.poll("official"), 10)
    assert time.monotonic() - started < 5  # bounded by the timeout, and the 50 MB are not read
    rows = stored(poller)
    assert {(c, s) for c, s, _, _ in rows} == {("", "unknown"), ("Web", "unknown")}
    assert all(reason in (r or "") for *_, r in rows), rows
    assert reason in caplog.text
    state = poller.states["official"]
    assert state.failures == 1 and reason in (state.last_error or "")


async def test_what_the_page_says_is_stored_on_change_only(
    served: tuple[Sources, str], poller: Poller
) -> None:
    sources, base = served
    sources.said = [(-1e9, lambda o: json_text(summary(OPERATIONAL, {"Web": "operational"}, [])))]
    await poller.apply(parse_config(config(base, "/status")))
    await poller.poll("official")
    await poller.poll("official")  # the same answer: no new row
    assert stored(poller) == [("", "operational", None, None), ("Web", "operational", None, None)]
    sources.start()
    sources.said.append(
        (0, lambda o: json_text(summary(MAJOR, {"Web": "major_outage"}, [incident("Down", o, ["Web"])])))
    )
    await poller.poll("official")
    assert stored(poller)[2:] == [("", "major_outage", "Down", None), ("Web", "major_outage", "Down", None)]
    # An unreachable page after that: unknown, with the reason.
    await poller.apply(parse_config(config(base.rsplit(":", 1)[0] + ":9", "/status")))
    await poller.poll("official")
    assert [s for _, s, _, _ in stored(poller)[4:]] == ["unknown", "unknown"]
    assert "connect" in (stored(poller)[-1][3] or "")


async def test_a_component_the_page_does_not_list_is_unknown_with_a_warning_naming_those_it_does(
    served: tuple[Sources, str], poller: Poller, caplog: pytest.LogCaptureFixture
) -> None:
    sources, base = served
    sources.said = [
        (
            -1e9,
            lambda o: json_text(summary(OPERATIONAL, {"API": "operational", "Website": "operational"}, [])),
        )
    ]
    await poller.apply(parse_config(config(base, "/status", component="Web")))
    with caplog.at_level(logging.WARNING, logger="prober.claims"):
        await poller.poll("official")
        await poller.poll("official")
    assert caplog.text.count('no component "Web" on the official page; it lists: API, Website') == 1
    assert ("Web", "unknown", None, "the source does not list this component") in stored(poller)


async def test_the_poller_runs_on_its_schedule_and_stops(served: tuple[Sources, str], poller: Poller) -> None:
    sources, base = served
    sources.said = [(-1e9, lambda o: json_text(summary(OPERATIONAL, {}, [])))]
    await poller.apply(parse_config(config(base, "/status")))
    poller.start()
    from conftest import wait_for

    await wait_for(lambda: sources.hits.get("status", 0) >= 2, 10, "two polls a second apart")
    await poller.stop()
    polls = sources.hits["status"]
    await asyncio.sleep(1.5)
    assert sources.hits["status"] == polls  # stopped means stopped


async def test_stopping_or_removing_a_source_ends_its_claims_with_unknown(
    served: tuple[Sources, str], poller: Poller
) -> None:
    sources, base = served
    sources.said = [(-1e9, lambda o: json_text(summary(OPERATIONAL, {"Web": "operational"}, [])))]
    await poller.apply(parse_config(config(base, "/status")))
    await poller.poll("official")
    await poller.apply(parse_config("checks:\n  - {name: web, url: 'http://127.0.0.1:9/'}\n"))
    assert poller.states == {}
    assert stored(poller)[2:] == [
        ("", "unknown", None, "not polled: the source was removed from the configuration"),
        ("Web", "unknown", None, "not polled: the source was removed from the configuration"),
    ]
    await poller.apply(parse_config(config(base, "/status")))
    await poller.poll("official")
    await poller.stop()
    assert [(c, s, r) for c, s, _, r in stored(poller)[-2:]] == [
        ("", "unknown", "not polled: prober stopped"),
        ("Web", "unknown", "not polled: prober stopped"),
    ]


async def test_a_page_that_lies_the_other_way_is_an_official_incident_not_measured(
    served: tuple[Sources, str], poller: Poller
) -> None:
    import json

    from click.testing import CliRunner

    from prober.cli import main

    sources, base = served
    sources.start()
    sources.said = [
        (-1e9, lambda o: json_text(summary(OPERATIONAL, {"Web": "operational"}, []))),
        (
            0,
            lambda o: json_text(
                summary(MAJOR, {"Web": "major_outage"}, [incident("Everything is on fire", o)])
            ),
        ),
    ]
    await poller.apply(parse_config(config(base, "/status")))  # the check `web` is healthy throughout
    await poller.poll("official")
    await poller.stop()
    await poller.store.flush()
    result = CliRunner().invoke(main, ["report", "--db", str(poller.store.path), "--since", "1h", "--json"])
    assert result.exit_code == 0, result.output
    [section] = json.loads(result.output)["claims"]
    assert section["outages_measured"] == 0
    [wolf] = section["official_incidents_not_measured"]
    assert wolf["name"] == "Everything is on fire" and wolf["created_at"] is not None


async def test_an_unchanged_claim_gets_a_row_every_hour_and_old_rows_are_pruned(
    served: tuple[Sources, str], poller: Poller
) -> None:
    from datetime import timedelta

    from prober.claims.record import prune_claims
    from prober.model import utcnow

    sources, base = served
    sources.said = [(-1e9, lambda o: json_text(summary(OPERATIONAL, {"Web": "operational"}, [])))]
    await poller.apply(parse_config(config(base, "/status")))
    await poller.poll("official")
    state = poller.states["official"]
    # As if the rows were written 59 minutes ago, then an hour ago: only the second poll writes again.
    for minutes, rows in ((59, 2), (60, 4)):
        state.current = {
            c: (claim, utcnow() - timedelta(minutes=minutes)) for c, (claim, _) in state.current.items()
        }
        await poller.poll("official")
        assert len(stored(poller)) == rows
    with sqlite3.connect(poller.store.path) as conn:
        conn.execute("UPDATE claims SET ts = '2020-01-01T00:00:00.000Z' WHERE id <= 2")
    deleted = await poller.store.call(lambda db: prune_claims(db, utcnow() - timedelta(days=14)))
    assert deleted == 2 and len(stored(poller)) == 2


async def test_a_secret_in_the_source_url_never_reaches_the_stored_reason(
    poller: Poller, dns_server: DnsServer, caplog: pytest.LogCaptureFixture
) -> None:
    text = (
        f"vantages:\n  here: {{resolver: ['{dns_server.address}']}}\n"
        "claims:\n  s: {url: 'http://${TOKEN}.invalid/summary.json', timeout: 3s, vantage: here}\n"
        "checks:\n  - {name: w, url: 'http://127.0.0.1:9/', vantages: [here], claim: {source: s}}\n"
    )
    config = parse_config(text, env={"TOKEN": "s3cr3t-token"})
    await poller.pool.sync(config.vantages)
    await poller.apply(config)
    with caplog.at_level(logging.WARNING, logger="prober.claims"):
        await poller.poll("s")
    reasons = [r for *_, r in stored(poller)]
    assert reasons and all(r is not None and "${TOKEN}.invalid" in r for r in reasons), reasons
    assert "s3cr3t" not in caplog.text and "s3cr3t" not in str(reasons)
