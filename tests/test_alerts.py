"""Alerts without a network: configuration, events, the outbox written with incidents, back-off, payloads."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import sqlite3
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from prober.alerts import Alerts, outbox
from prober.alerts.channels import (
    alertmanager_json,
    email_message,
    pagerduty_json,
    retry_after,
    signature,
    slack_json,
    teams_json,
)
from prober.alerts.message import Note, check_json, duration_text
from prober.alerts.sender import MAX_DELAY, MIN_DELAY, backoff
from prober.config import Config, ConfigError, parse_config
from prober.model import Incident, Reason, State, iso
from prober.store import Store, replace_incidents

T0 = datetime(2026, 12, 1, 6, 0, tzinfo=UTC)

CONFIG = """
alerts:
  channels:
    ops: {type: webhook, url: "http://127.0.0.1:9/hook", secret: "${HOOK_SECRET}"}
    chat: {type: slack, url: "http://127.0.0.1:9/slack/${SLACK_PATH}"}
  send_on: [open, escalate, resolve, reminder]
  remind: 1h
defaults:
  alerts: [ops]
checks:
  - {name: home, url: "http://127.0.0.1:9/"}
  - {name: api, url: "http://127.0.0.1:9/api", alerts: [ops, chat]}
  - {name: quiet, url: "http://127.0.0.1:9/q", alerts: []}
"""
ENV = {"HOOK_SECRET": "s3cret-hook", "SLACK_PATH": "T0/B0/xyzzy"}


def config_of(text: str = CONFIG) -> Config:
    return parse_config(text, "checks.yaml", ENV)


def test_channels_per_check_defaults_and_secrets() -> None:
    config = config_of()
    assert config.alerts is not None
    assert [c.alerts for c in config.checks] == [("ops",), ("ops", "chat"), ()]
    assert config.alerts.channels["ops"].settings["secret"] == "s3cret-hook"
    assert config.alerts.channels["chat"].min_interval == 1.0  # Slack: about one message a second
    assert config.alerts.remind == 3600.0 and "reminder" in config.alerts.send_on
    assert "s3cret" not in repr(config.alerts) and "xyzzy" not in repr(config.alerts)
    assert (
        config.redact("refused http://127.0.0.1:9/slack/T0/B0/xyzzy")
        == "refused http://127.0.0.1:9/slack/${SLACK_PATH}"
    )


def test_no_alerts_key_loads_nothing() -> None:
    config = parse_config("checks:\n  - {name: a, url: 'http://127.0.0.1:9/'}\n", "c.yaml", {})
    assert config.alerts is None and config.checks[0].alerts == ()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "alerts: {channels: {a: {type: slack}}}\nchecks: []\n",
            'c.yaml:1:24: alerts.channels.a.url: required key "url" is missing',
        ),
        (
            "alerts: {channels: {a: {type: sms, url: 'x'}}}\nchecks: []\n",
            'c.yaml:1:31: alerts.channels.a.type: "sms" is not a channel type',
        ),
        (
            "alerts: {channels: {a: {type: pagerduty}}}\nchecks: []\n",
            'alerts.channels.a.routing_key: required key "routing_key" is missing',
        ),
        (
            "alerts: {channels: {m: {type: email, smtp: 'smtp://h', to: [a@b]}}}\nchecks: []\n",
            'alerts.channels.m.from: required key "from" is missing',
        ),
        (
            "alerts: {channels: {m: {type: email, smtp: 'http://h', from: a@b, to: [a@b]}}}\nchecks: []\n",
            "is not an SMTP URL",
        ),
        (
            "alerts: {channels: {a: {type: webhook, url: 'http://h/', secrt: x}}}\nchecks: []\n",
            'unknown key "secrt" (did you mean "secret"?)',
        ),
        ("alerts: {send_on: [opne]}\nchecks: []\n", 'c.yaml:1:20: alerts.send_on[0]: "opne" is not one of'),
        ("alerts: {remind: soon}\nchecks: []\n", "alerts.remind"),
        (
            "alerts: {channels: {}}\ndefaults: {alerts: [ops]}\nchecks: []\n",
            'c.yaml:2:21: defaults.alerts[0]: "ops" is not an alert channel',
        ),
        (
            "defaults: {alerts: [ops]}\nchecks: []\n",
            '"ops" is not an alert channel (none is defined under alerts.channels)',
        ),
        (
            "alerts: {channels: {a: {type: slack, url: 'http://h/'}}}\n"
            "checks:\n  - {name: x, url: 'http://h/', alerts: [b]}\n",
            'c.yaml:3:42: checks[0].alerts[0]: "b" is not an alert channel (a)',
        ),
        (
            "alerts: {channels: {a: {type: webhook, url: '${MISSING}'}}}\nchecks: []\n",
            "environment variable MISSING is not set",
        ),
    ],
    ids=[
        "slack-url",
        "type",
        "routing-key",
        "email-from",
        "smtp-url",
        "typo",
        "send-on",
        "remind",
        "defaults-name",
        "no-channels",
        "check-name",
        "missing-env",
    ],
)
def test_located_errors(text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(text, "c.yaml", {})
    assert expected in str(info.value), str(info.value)


def incident(**changes: object) -> Incident:
    base = Incident(
        check="api",
        state=State.PARTIAL_OUTAGE,
        reason=Reason.HTTP_STATUS,
        signature=None,
        started_at=T0,
        detected_at=T0 + timedelta(seconds=30),
        vantages=("us",),
        regions=("US",),
    )
    return replace(base, **changes)  # type: ignore[arg-type]


ROW = {"state": "partial_outage", "resolved_at": None}


@pytest.mark.parametrize(
    ("before", "after", "events"),
    [
        (None, incident(), ["open"]),
        (ROW, incident(), []),
        (ROW, incident(state=State.MAJOR_OUTAGE), ["escalate"]),
        ({**ROW, "state": "major_outage"}, incident(state=State.MAJOR_OUTAGE), []),
        (ROW, incident(resolved_at=T0 + timedelta(minutes=5)), ["resolve"]),
        (
            ROW,
            incident(state=State.MAJOR_OUTAGE, resolved_at=T0 + timedelta(minutes=5)),
            ["escalate", "resolve"],
        ),
        ({**ROW, "resolved_at": "x"}, incident(resolved_at=T0 + timedelta(minutes=5)), []),
        (None, incident(resolved_at=T0 + timedelta(minutes=5)), ["open", "resolve"]),
    ],
    ids=[
        "opened",
        "same",
        "escalated",
        "major-again",
        "resolved",
        "escalated-and-resolved",
        "resolved-again",
        "opened-resolved",
    ],
)
def test_events_of_an_incident_change(
    before: dict[str, object] | None, after: Incident, events: list[str]
) -> None:
    assert outbox.events_of(before, after) == events


def rows(db_path: Path) -> list[tuple[str, str, str, int]]:
    with sqlite3.connect(db_path) as conn:
        query = "SELECT event, channel, state, incident_id FROM notifications ORDER BY rowid"
        return list(conn.execute(query).fetchall())


def test_the_outbox_is_written_with_the_incident(tmp_path: Path) -> None:
    config = config_of()
    store = Store(tmp_path / "p.db").open()
    try:
        Alerts(store, lambda: config).attach()
        first = store.save_incident(incident()).result()
        store.save_incident(incident(id=first, vantages=("us", "jp"))).result()  # no new event
        store.save_incident(incident(id=first, state=State.MAJOR_OUTAGE)).result()
        store.save_incident(
            incident(id=first, state=State.MAJOR_OUTAGE, resolved_at=T0 + timedelta(minutes=9))
        ).result()
        store.save_incident(incident(check="quiet")).result()  # alerts: [] notifies no one
        store.save_incident(incident(check="home", started_at=T0 + timedelta(hours=1))).result()
        base = incident(check="home")
        store.save_incident(replace(base, maintenance=True)).result()
    finally:
        store.close()
    got = rows(tmp_path / "p.db")
    assert [(e, c) for e, c, _, i in got if i == first] == [
        ("open", "ops"),
        ("open", "chat"),
        ("escalate", "ops"),
        ("escalate", "chat"),
        ("resolve", "ops"),
        ("resolve", "chat"),
    ]
    assert [(e, c) for e, c, _, i in got if i != first] == [("open", "ops")]  # home once; maintenance: none
    assert {s for _, _, s, _ in got} == {"pending"}
    with sqlite3.connect(tmp_path / "p.db") as conn:
        stored = conn.execute(
            "SELECT incident FROM notifications WHERE event = 'resolve' LIMIT 1"
        ).fetchone()[0]
        ids = [r[0] for r in conn.execute("SELECT id FROM notifications")]
    assert json.loads(stored)["resolved_at"] and json.loads(stored)["id"] == first
    assert "s3cret" not in stored and len(set(ids)) == len(ids)


def test_a_failing_hook_loses_no_incident_and_a_rebuild_sends_nothing(tmp_path: Path) -> None:
    config = config_of()
    store = Store(tmp_path / "p.db").open()
    try:
        store.add_incident_hook(lambda db, before, i: 1 / 0)  # a bug in some hook
        Alerts(store, lambda: config).attach()
        saved = store.save_incident(incident()).result()
        store.submit(
            lambda db: replace_incidents(db, ["api", "home"], [incident(check="home"), incident()])
        ).result()
    finally:
        store.close()
    assert saved and rows(tmp_path / "p.db") == [
        ("open", "ops", "pending", saved),
        ("open", "chat", "pending", saved),
    ]


def test_reminders_while_open(tmp_path: Path) -> None:
    config = config_of()
    store = Store(tmp_path / "p.db").open()
    try:
        Alerts(store, lambda: config).attach()
        saved = store.save_incident(incident()).result()
        now = outbox.utcnow()
        assert store.submit(lambda db: outbox.remind(db, config, 3600, now)).result() == 0  # just opened
        assert (
            store.submit(lambda db: outbox.remind(db, config, 3600, now + timedelta(hours=1))).result() == 2
        )
        assert (
            store.submit(lambda db: outbox.remind(db, config, 3600, now + timedelta(hours=1))).result() == 0
        )
        store.save_incident(incident(id=saved, resolved_at=T0 + timedelta(hours=2))).result()
        assert (
            store.submit(lambda db: outbox.remind(db, config, 3600, now + timedelta(hours=5))).result() == 0
        )
    finally:
        store.close()
    assert [e for e, *_ in rows(tmp_path / "p.db")].count("reminder") == 2


def test_backoff_bounds_and_retry_after() -> None:
    for attempts in range(1, 40):
        for r in (0.0, 0.5, 0.999):
            assert MIN_DELAY <= backoff(attempts, None, lambda r=r: r) <= MAX_DELAY
    assert backoff(1, None, lambda: 0.0) == 1.0
    assert backoff(5, None, lambda: 0.999) == pytest.approx(16, abs=0.1)
    assert backoff(30, None, lambda: 0.0) == 300.0 and backoff(30, None, lambda: 1.0) == 600.0
    assert backoff(1, 42.0) == 42.0 and backoff(9, 0.0) == 1.0
    assert retry_after("7") == 7.0 and retry_after(" 2.5 ") == 2.5
    assert retry_after("Tue, 01 Dec 2026 06:01:00 GMT", now=T0) == 60.0
    assert retry_after("soon") is None and retry_after(None) is None and retry_after("-5") == 0.0
    assert retry_after("99999999") == 3600.0


def note(event: str = "open", **incident_changes: object) -> Note:
    config = config_of()
    i = incident(id=7, **incident_changes).to_json(T0 + timedelta(minutes=10))
    return Note(
        id="n-1",
        event=event,
        check=check_json(config.check("api"), "api"),
        incident=i,
        status_page="http://status.test/",
        sent_at=T0 + timedelta(minutes=10),
    )


def test_messages_say_what_people_need() -> None:
    text = note().text()
    for part in (
        "[PARTIAL OUTAGE] api is down",
        "Regions down: US",
        "Cause: http_status",
        "Started: 2026-12-01T06:00:00.000Z",
        "Down for: 10m",
        "Status page: http://status.test/",
    ):
        assert part in text, text
    resolved = note("resolve", resolved_at=T0 + timedelta(minutes=65)).text()
    assert resolved.startswith("[RESOLVED] api has recovered") and "Duration: 1h 5m" in resolved
    assert (
        duration_text(42) == "42s" and duration_text(200) == "3m 20s" and duration_text(90061) == "1d 1h 1m"
    )


def test_payloads() -> None:
    n = note()
    body = json.dumps(n.webhook_json()).encode()
    assert signature("k", body) == "sha256=" + hmac.new(b"k", body, hashlib.sha256).hexdigest()
    assert set(n.webhook_json()) == {"id", "event", "sent_at", "check", "incident", "status_page"}
    slack = slack_json(n)
    assert slack["text"].startswith("[PARTIAL OUTAGE]") and slack["blocks"][0]["type"] == "header"
    card = teams_json(n)["attachments"][0]
    assert card["contentType"] == "application/vnd.microsoft.card.adaptive"
    assert card["content"]["type"] == "AdaptiveCard" and card["content"]["body"][1]["type"] == "FactSet"
    opened, resolved = pagerduty_json(n, "rk"), pagerduty_json(note("resolve", resolved_at=T0), "rk")
    assert opened["event_action"] == "trigger" and resolved["event_action"] == "resolve"
    assert opened["dedup_key"] == resolved["dedup_key"] and opened["payload"]["severity"] == "warning"
    (firing,) = alertmanager_json(n, ended=False, now=T0)
    assert firing["labels"] == {
        "alertname": "ProberIncident",
        "check": "api",
        "surface": "web",
        "severity": "warning",
    }
    assert all(a["endsAt"] == "2026-12-01T06:00:00.000Z" for a in alertmanager_json(n, ended=True, now=T0))


def test_email_escapes_html() -> None:
    n = replace(note(), check={**note().check, "display_name": "<script>alert(1)</script>"})
    msg = email_message(n, "prober@example.com", ["ops@example.com"])
    plain = msg.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    rich = msg.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert "<script>alert(1)</script>" in plain
    assert "<script>" not in rich and "&lt;script&gt;" in rich
    assert msg["X-Prober-Notification-Id"] == "n-1"


DOCS = (Path(__file__).resolve().parent.parent / "docs" / "alerts.md").read_text()


@pytest.mark.parametrize(
    "block",
    [b for b in re.findall(r"```yaml\n(.*?)```", DOCS, flags=re.S) if b.startswith("alerts:")],
    ids=lambda b: b.splitlines()[2].strip()[:30],
)
def test_docs_examples_validate(block: str) -> None:
    if "apprise" in block:
        pytest.importorskip("apprise")
    if "checks:" not in block:
        block += "checks:\n  - {name: a, url: 'https://example.com/'}\n"
    env = {
        name: "https://hooks.example.com/x" if name.endswith(("WEBHOOK", "URL")) else "x"
        for name in re.findall(r"\$\{([A-Z_]+)\}", block)
    }
    config = parse_config(block, "docs/alerts.md", env)
    assert config.alerts is not None and config.alerts.channels


def test_prune_keeps_what_is_pending(tmp_path: Path) -> None:
    config = config_of()
    store = Store(tmp_path / "p.db").open()
    try:
        Alerts(store, lambda: config).attach()
        store.save_incident(incident()).result()  # two notifications: ops and chat
        sent = rows(tmp_path / "p.db")
        store.submit(
            lambda db: db.execute("UPDATE notifications SET state = 'sent' WHERE channel = 'ops'")
        ).result()
        later = outbox.utcnow() + timedelta(days=30)
        assert store.submit(lambda db: outbox.prune(db, later)).result() == 1
        assert store.submit(lambda db: outbox.prune(db, later)).result() == 0
    finally:
        store.close()
    assert len(sent) == 2 and [(e, c, s) for e, c, s, _ in rows(tmp_path / "p.db")] == [
        ("open", "chat", "pending")
    ]


def test_a_test_notification_never_pages() -> None:
    test = replace(note(), event="test")
    (alert,) = alertmanager_json(test, ended=False, now=T0)
    assert alert["labels"]["alertname"] == "ProberTest" and alert["endsAt"] == "2026-12-01T06:01:00.000Z"


def test_a_notification_says_what_the_official_status_page_claimed(tmp_path: Path) -> None:
    """A check with a `claim:` gets the incident's `claim` object in its notifications (DESIGN)."""
    config = config_of()
    store = Store(tmp_path / "p.db").open()
    try:

        def official_page_said_all_is_well(db: Any) -> None:
            with db.conn:
                db.conn.execute(
                    "INSERT INTO claim_links (check_name, source, component, updated_at) VALUES (?, ?, ?, ?)",
                    ("api", "x-status", "", iso(T0)),
                )
                db.conn.execute(
                    "INSERT INTO claims (ts, source, component, status, description) VALUES (?, ?, ?, ?, ?)",
                    (iso(T0 - timedelta(minutes=5)), "x-status", "", "operational", "All good"),
                )

        store.submit(official_page_said_all_is_well).result()
        Alerts(store, lambda: config).attach()
        store.save_incident(incident()).result()
    finally:
        store.close()
    with sqlite3.connect(tmp_path / "p.db") as conn:
        payloads = [json.loads(text) for (text,) in conn.execute("SELECT incident FROM notifications")]
    assert payloads and all(p["claim"]["status_at_start"] == "operational" for p in payloads), payloads
    assert all(p["claim"]["source"] == "x-status" for p in payloads)
