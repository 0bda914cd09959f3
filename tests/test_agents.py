"""Agents without a network: the wire format and its refusals, the roster of heartbeats, silence in
the state machine, the idempotent store, and `prober` importing nothing of NATS without --nats."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from prober.agents.collector import store_unique
from prober.agents.roster import Roster
from prober.agents.wire import Heartbeat, Refused, parse_heartbeat, parse_result, result_message
from prober.config import parse_config
from prober.model import ProbeResult, Reason, State, Surface, Verdict
from prober.state import CheckTracker, Policy
from prober.store import Store

CONFIG = parse_config(
    """
vantages:
  us: {region: US, agent: true}
  jp: {region: JP, agent: true}
  local: {region: EU}
checks:
  - {name: web, url: "http://127.0.0.1:9/", vantages: [local, us, jp]}
  - {name: api, url: "http://127.0.0.1:9/api", surface: api, vantages: [local, us]}
"""
)
T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def result(
    check: str = "web", vantage: str = "us", verdict: Verdict = Verdict.UP, at: float = 0
) -> ProbeResult:
    reason = None if verdict is Verdict.UP else Reason.CONNECT
    return ProbeResult(T0 + timedelta(seconds=at), check, vantage, "forged-region", Surface.WEB,
                       "http://elsewhere/", verdict, reason, status=200)  # fmt: skip


def test_a_result_round_trips_with_the_collectors_region_surface_and_url() -> None:
    received = parse_result(result_message(result("api"), "a" * 32), "prober.results.us", CONFIG)
    assert received.id == "a" * 32
    r = received.result
    assert (r.check, r.vantage, r.region, r.surface, r.url) == (
        "api",
        "us",
        "US",
        Surface.API,
        "http://127.0.0.1:9/api",
    )
    assert (r.verdict, r.status, r.ts) == (Verdict.UP, 200, T0)


@pytest.mark.parametrize(
    ("data", "subject", "why"),
    [
        (
            result_message(result(vantage="jp"), "a" * 32),
            "prober.results.us",
            "published on prober.results.us",
        ),
        (result_message(result(vantage="local"), "a" * 32), "prober.results.local", "not an agent's vantage"),
        (result_message(result(vantage="eu"), "a" * 32), "prober.results.eu", "not an agent's vantage"),
        (result_message(result("api", "jp"), "a" * 32), "prober.results.jp", "which does not probe it"),
        (result_message(result("nope"), "a" * 32), "prober.results.us", "not a check"),
        (result_message(result(), "short"), "prober.results.us", "id"),
        (b"{not json", "prober.results.us", "malformed"),
        (
            json.dumps(
                {
                    "id": "a" * 32,
                    "ts": "2026-12-01T12:00:00",
                    "check": "web",
                    "vantage": "us",
                    "verdict": "up",
                }
            ).encode(),
            "prober.results.us",
            "ts",
        ),
        (result_message(result(), "a" * 32).replace(b'"up"', b'"great"'), "prober.results.us", "verdict"),
    ],
    ids=[
        "other-vantage",
        "local-vantage",
        "unknown-vantage",
        "check-not-probed",
        "unknown-check",
        "bad-id",
        "not-json",
        "naive-time",
        "bad-verdict",
    ],
)
def test_forged_or_malformed_results_are_refused_with_a_reason(data: bytes, subject: str, why: str) -> None:
    with pytest.raises(Refused, match=why):
        parse_result(data, subject, CONFIG)


def test_a_heartbeat_must_come_on_its_own_subject() -> None:
    from prober.agents.wire import heartbeat_message

    data = heartbeat_message(Heartbeat("us", T0, 5.0, 3, 0, "abc"))
    assert parse_heartbeat(data, "prober.heartbeat.us").probes == 3
    with pytest.raises(Refused, match=r"published on prober\.heartbeat\.jp"):
        parse_heartbeat(data, "prober.heartbeat.jp")


def test_roster_silence_after_three_heartbeats_and_skew() -> None:
    roster = Roster()
    roster.configure([("us", "US"), ("jp", "JP")], T0)
    assert roster.heard(Heartbeat("us", T0 + timedelta(seconds=3), 1.0, 0, 0, None), T0) == (False, True)
    assert roster.agents["us"].skew_s == 3.0
    assert roster.fell_silent(T0 + timedelta(seconds=2.5)) == []
    silent = roster.fell_silent(T0 + timedelta(seconds=16))  # jp never heard: 3 x 5 s default
    assert sorted(a.vantage for a in silent) == ["jp", "us"]
    assert roster.silent()["us"] == T0 and roster.fell_silent(T0 + timedelta(seconds=17)) == []
    spoke, skewed = roster.heard(
        Heartbeat("us", T0 + timedelta(seconds=20), 1.0, 0, 0, None), T0 + timedelta(seconds=20)
    )
    assert (spoke, skewed) == (True, False) and "us" not in roster.silent()
    assert roster.agents["us"].to_json()["state"] == "speaking"


def test_roster_keeps_time_for_a_heartbeat_of_one_second() -> None:
    roster = Roster()
    roster.configure([("us", "US")], T0)
    roster.heard(Heartbeat("us", T0, 1.0, 0, 0, None), T0)
    assert roster.fell_silent(T0 + timedelta(seconds=2.9)) == []
    assert [a.vantage for a in roster.fell_silent(T0 + timedelta(seconds=3.1))] == ["us"]


def test_a_silent_vantage_counts_neither_for_nor_against_and_opens_nothing() -> None:
    tracker = CheckTracker("web", {"local": "EU", "us": "US", "jp": "JP"}, Policy(confirm=1, recover=1))
    for i, v in enumerate(["local", "us", "jp"]):
        tracker.observe(result(vantage=v, at=i))
    assert tracker.state is State.OPERATIONAL
    events = tracker.observe(result(vantage="us", verdict=Verdict.DOWN, at=5))
    assert tracker.state is State.PARTIAL_OUTAGE and [e.kind for e in events] == ["state", "opened"]
    # The down agent falls silent: it no longer counts against the check; the incident resolves.
    events = tracker.set_silent("us", True)
    assert tracker.statuses()["us"] is Verdict.UNKNOWN and tracker.state is State.OPERATIONAL
    assert "opened" not in [e.kind for e in events] and "resolved" in [e.kind for e in events]
    # Its results while silent are ignored; the two others decide alone.
    assert tracker.observe(result(vantage="us", verdict=Verdict.DOWN, at=6)) == []
    tracker.observe(result(vantage="jp", verdict=Verdict.DOWN, at=7))
    assert tracker.state is State.PARTIAL_OUTAGE  # 1 down of the 2 heard: a majority of 2 is 2


def test_silence_leaves_the_quorum() -> None:
    tracker = CheckTracker("web", {"local": "EU", "us": "US", "jp": "JP"}, Policy(confirm=1, recover=1))
    for i, v in enumerate(["local", "us", "jp"]):
        tracker.observe(result(vantage=v, at=i))
    tracker.set_silent("us", True)
    tracker.set_silent("jp", True)
    events = tracker.observe(result(vantage="local", verdict=Verdict.DOWN, at=5))
    assert tracker.state is State.MAJOR_OUTAGE  # the only vantage heard is down: all of the quorum
    assert [e.kind for e in events] == ["state", "opened"]
    tracker.set_silent("us", False)  # speaks again: back in the quorum (2 of 2), unknown until it says
    assert tracker.state is State.PARTIAL_OUTAGE
    tracker.observe(result(vantage="us", verdict=Verdict.DOWN, at=6))
    assert tracker.state is State.MAJOR_OUTAGE


def test_silencing_an_up_agent_never_opens_an_incident() -> None:
    tracker = CheckTracker("web", {"local": "EU", "us": "US"}, Policy(confirm=1, recover=1))
    tracker.observe(result(vantage="local"))
    tracker.observe(result(vantage="us"))
    events = tracker.set_silent("us", True)
    assert events == [] and tracker.open_incident is None and tracker.state is State.OPERATIONAL


def test_store_unique_writes_each_id_once(tmp_path: Path) -> None:
    from prober.agents.wire import Received

    with Store(tmp_path / "db.sqlite") as store:
        batch = [Received(f"id-{i:08d}", result(at=i)) for i in range(5)]
        new = store.submit(lambda db: store_unique(db, batch, store.batch_hooks)).result()
        assert len(new) == 5
        again = [*batch[2:], Received("id-99999999", result(at=9))]
        new = store.submit(lambda db: store_unique(db, again, store.batch_hooks)).result()
        assert [r.ts for r in new] == [T0 + timedelta(seconds=9)]
        rows = store.submit(
            lambda db: db.execute("SELECT count(*), count(DISTINCT result_id) FROM results").fetchone()
        ).result()
        assert tuple(rows) == (6, 6)
        # The rollups counted each result once too.
        ups = store.submit(lambda db: db.execute("SELECT sum(up) FROM rollup_daily").fetchone()[0]).result()
        assert ups == 6


def test_without_nats_nothing_of_it_is_imported() -> None:
    loaded = "sorted(m for m in sys.modules if m == 'nats' or m.startswith(('nats.', 'prober.agents.')))"
    code = f"import sys, prober.cli, prober.daemon, prober.web; print({loaded})"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['prober.agents.command']"


def test_the_documentation_yaml_validates() -> None:
    import re

    text = (Path(__file__).resolve().parent.parent / "docs" / "agents.md").read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", text, flags=re.S)
    assert blocks
    for block in blocks:
        config = parse_config(block, filename="docs/agents.md", env={})
        assert any(v.agent for v in config.vantages.values())


@pytest.mark.skipif(
    not (Path("/usr/sbin/nats-server").exists() or __import__("shutil").which("nats-server")),
    reason="needs nats-server",
)
def test_the_example_server_configurations_are_valid(tmp_path: Path) -> None:
    import shutil

    import trustme

    deploy = Path(__file__).resolve().parent.parent / "deploy" / "nats"
    ca = trustme.CA()
    cert = ca.issue_cert("hub.example.com")
    cert.cert_chain_pems[0].write_to_path(tmp_path / "hub-cert.pem")
    cert.private_key_pem.write_to_path(tmp_path / "hub-key.pem")
    ca.cert_pem.write_to_path(tmp_path / "ca.pem")
    shutil.copy(deploy / "permissions.conf", tmp_path / "permissions.conf")
    env = {
        "COLLECTOR_PASSWORD": "a",
        "US_EAST_PASSWORD": "b",
        "TOKYO_PASSWORD": "c",
        "LEAF_LONDON_PASSWORD": "d",
    }
    server = shutil.which("nats-server") or "/usr/sbin/nats-server"
    for name in ("hub.conf", "leaf.conf"):
        text = (
            (deploy / name)
            .read_text()
            .replace("/etc/nats/", f"{tmp_path}/")
            .replace("/var/lib/nats", f"{tmp_path}/js")
        )
        (tmp_path / name).write_text(text)
        done = subprocess.run(
            [server, "-c", str(tmp_path / name), "-t"], capture_output=True, text=True, env=env
        )
        assert done.returncode == 0, done.stderr + done.stdout


def test_agent_vantages_are_not_probed_by_the_daemon_and_without_nats_it_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from prober.agents.command import collectors

    caplog.set_level(logging.WARNING, logger="prober")  # whatever level an earlier CLI test left
    here = CONFIG.probed_here()
    assert [(c.name, c.vantages) for c in here] == [("web", ("local",)), ("api", ("local",))]
    assert collectors(None, None, None, (), CONFIG) == []
    assert "vantages jp, us are probed by agents" in caplog.text


def test_passwords_in_nats_urls_are_never_shown() -> None:
    from prober.agents.link import Link

    link = Link("nats://us:s3cret@hub:4222,tls://us:s3cret@other")
    assert link.shown == "nats://us:***@hub:4222,tls://us:***@other"
    assert Link("nats://hub").shown == "nats://hub"
