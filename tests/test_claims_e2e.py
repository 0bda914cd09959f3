"""Claims vs measured, end to end: the daemon probes a target and polls its official page on loopback.

Each test scripts an outage of the target and what its official status page says meanwhile, then
reads the incident's `claim` object from /api/incidents and checks the lag and the silence against
the script, within one poll interval plus one probe interval (the precision the README promises).
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from claims_sources import MAJOR, OPERATIONAL, Sources, atom, incident, json_text, rss, summary
from conftest import start_app, wait_for

from prober.daemon import Daemon

pytestmark = pytest.mark.slow

PROBE = 0.2  # probe interval of the check
POLL = 1.0  # poll interval of the official page (the shortest allowed)
TOLERANCE = POLL + PROBE + 0.5  # plus a little for a loaded machine's late probes and polls


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


Run = Callable[[Sources, str, str], Awaitable[dict[str, Any]]]


@pytest.fixture
async def run_outage(tmp_path: Path) -> AsyncIterator[Run]:
    """Serve `sources`, run the daemon with a check on /home claimed by /status in `fmt`; return the
    incident (with its claim) once it has resolved, and the /api/claims answer, as {"incident", "claims"}."""
    runners = []

    async def run(sources: Sources, fmt: str, component: str) -> dict[str, Any]:
        runner, port = await start_app(sources.app())
        runners.append(runner)
        base = f"http://127.0.0.1:{port}"
        claim = f"{{source: official, component: {component}}}" if component else "{source: official}"
        config = tmp_path / "checks.yaml"
        config.write_text(
            f"claims:\n  official: {{url: '{base}/status', format: {fmt}, interval: {POLL}s, timeout: 1s}}\n"
            f"checks:\n  - {{name: web, url: '{base}/home', interval: {PROBE}s, timeout: 1s,"
            f" confirm: 1, recover: 1, claim: {claim}}}\n"
        )
        http = f"127.0.0.1:{free_port()}"
        daemon = Daemon(config, tmp_path / "prober.db", http=http)
        running = asyncio.ensure_future(daemon.run())
        try:
            await wait_for(lambda: sources.hits.get("status", 0) >= 1 or running.done(), 20, "a first poll")
            sources.start()
            end = sources.down[1]
            async with aiohttp.ClientSession() as session:

                async def resolved() -> bool:
                    async with session.get(f"http://{http}/api/incidents") as resp:
                        found = (await resp.json())["incidents"]
                    return bool(found) and found[0]["resolved_at"] is not None and sources.now() > end + 2.5

                async def ongoing() -> bool:
                    async with session.get(f"http://{http}/api/checks") as resp:
                        during.append((await resp.json())["checks"][0])
                    return during[-1]["incident"] is not None

                during: list[dict[str, Any]] = []
                await wait_for(ongoing, end + 30, "an open incident")
                await wait_for(resolved, end + 30, "the incident to resolve")
                async with session.get(f"http://{http}/api/incidents") as resp:
                    incidents = (await resp.json())["incidents"]
                async with session.get(f"http://{http}/api/claims") as resp:
                    claims = await resp.json()
                async with session.get(f"http://{http}/") as resp:
                    page = await resp.text()
                async with session.get(f"http://{http}/metrics") as resp:
                    metrics = await resp.text()
        finally:
            daemon.stop()
            await running
        assert len(incidents) == 1, incidents
        ongoing_claim = during[-1]["incident"]["claim"]  # /api/checks, while it was open
        assert ongoing_claim["source"] == "official" and ongoing_claim["status_at_start"], ongoing_claim
        return {"incident": incidents[0], "claims": claims, "page": page, "metrics": metrics}

    yield run
    for runner in runners:
        await runner.cleanup()


def measured(sources: Sources, found: dict[str, Any]) -> tuple[float, float]:
    """(start, end) of the measured incident, in seconds of the script."""
    from prober.model import parse_iso

    i = found["incident"]
    return (
        (parse_iso(i["started_at"]) - sources.origin).total_seconds(),
        (parse_iso(i["resolved_at"]) - sources.origin).total_seconds(),
    )


async def test_a_page_that_admits_the_outage_late(run_outage: Run) -> None:
    sources = Sources(down=(1.0, 6.0))
    sources.said = [
        (-1e9, lambda o: json_text(summary(OPERATIONAL, {"Web": "operational", "API": "operational"}, []))),
        (3.5, lambda o: json_text(summary(MAJOR, {"Web": "major_outage", "API": "operational"},
                                          [incident("Errors on the web", o)]))),
    ]  # fmt: skip
    found = await run_outage(sources, "statuspage", "Web")
    start, end = measured(sources, found)
    assert abs(start - 1.0) <= PROBE + 0.5 and abs(end - 6.0) <= PROBE + 0.5, found
    claim = found["incident"]["claim"]
    assert claim["source"] == "official" and claim["component"] == "Web"
    assert claim["status_at_start"] == "operational"
    assert claim["official_incident"] == "Errors on the web"
    assert claim["official_created_at"] is not None
    # The truth: the page said operational from 1.0 s to 3.5 s, and admitted it from then on.
    assert abs(claim["acknowledgement_lag_s"] - 2.5) <= TOLERANCE, claim
    assert abs(claim["silent_s"] - 2.5) <= TOLERANCE, claim
    # Silent until acknowledged (less any poll that failed on a loaded machine: unknown, not silent).
    assert claim["silent_s"] + claim["unknown_s"] == pytest.approx(claim["acknowledgement_lag_s"], abs=0.01)
    # /api/claims: the source, its current claims and the change it made.
    source = found["claims"]["sources"][0]
    assert source["name"] == "official" and source["checks"] == ["web"]
    current = {c["component"]: c["status"] for c in source["current"]}
    assert current == {None: "major_outage", "Web": "major_outage", "API": "operational"}
    web_history = [c["status"] for c in source["history"] if c["component"] == "Web"]
    assert web_history[:1] == ["operational"] and "major_outage" in web_history
    # The page says it in words; the metrics carry the current claim.
    assert "The official status page (Web) said &#39;operational&#39; for the first" in found["page"]
    assert "it acknowledged at" in found["page"]
    assert (
        'prober_claim_status{component="Web",source="official",status="major_outage"} 1.0' in found["metrics"]
    )
    assert 'prober_claim_polls_total{source="official"}' in found["metrics"]
    assert 'prober_claim_poll_failures_total{source="official"} 0.0' in found["metrics"]


async def test_a_page_that_never_admits_it(run_outage: Run) -> None:
    sources = Sources(down=(1.0, 4.0))
    sources.said = [(-1e9, lambda o: json_text(summary(OPERATIONAL, {"Web": "operational"}, [])))]
    found = await run_outage(sources, "statuspage", "")
    start, end = measured(sources, found)
    claim = found["incident"]["claim"]
    assert claim["component"] is None and claim["status_at_start"] == "operational"
    assert claim["said_at_start"] == "All Systems Operational"
    assert claim["acknowledged_at"] is None and claim["acknowledgement_lag_s"] is None
    assert claim["silent_s"] + claim["unknown_s"] == pytest.approx(end - start, abs=0.01)  # the whole outage
    assert claim["silent_s"] >= (end - start) / 2
    assert "The official status page said &#39;All Systems Operational&#39; for " in found["page"]
    assert " of the outage; it never acknowledged it." in found["page"]


async def test_an_rss_feed_with_an_incident_and_its_resolution(run_outage: Run) -> None:
    sources = Sources(down=(1.0, 5.0))
    feed = "application/rss+xml"
    investigating = "Investigating - We are looking into it."
    resolved = "Resolved - This incident has been resolved. " + investigating
    sources.said = [
        (-1e9, lambda o: (feed, rss([]))),
        (2.5, lambda o: (feed, rss([("i1", "Elevated errors", o, investigating)]))),
        (5.5, lambda o: (feed, rss([("i1", "Elevated errors", o, resolved)]))),
    ]
    found = await run_outage(sources, "rss", "")
    claim = found["incident"]["claim"]
    assert claim["official_incident"] == "Elevated errors"
    assert abs(claim["acknowledgement_lag_s"] - 1.5) <= TOLERANCE, claim
    assert abs(claim["silent_s"] - 1.5) <= TOLERANCE, claim
    # The entry that says resolved closed the official incident: the overall claim is operational again.
    history = [(c["status"], c["incident"]) for c in found["claims"]["sources"][0]["history"]]
    assert history[0] == ("operational", None)
    assert ("partial_outage", "Elevated errors") in history
    assert history[-1] == ("operational", None), history


async def test_an_atom_feed_admitting_the_outage_at_once(run_outage: Run) -> None:
    sources = Sources(down=(1.5, 4.0))
    feed = "application/atom+xml"
    # The page admitted it from the first poll (before the outage), and an old incident is resolved.
    old = ("urn:old", "RESOLVED: an old incident", datetime.now(UTC), "Resolved")
    sources.said = [(-1e9, lambda o: (feed, atom([old, ("urn:a", "Web outage", o, "Investigating")])))]
    found = await run_outage(sources, "atom", "")
    claim = found["incident"]["claim"]
    assert claim["status_at_start"] == "partial_outage"
    assert claim["acknowledgement_lag_s"] == 0 and claim["silent_s"] == 0
    assert claim["official_incident"] == "Web outage"
    assert json.dumps(claim)  # plain JSON
