"""The sender against real receivers on loopback: refusals, Retry-After, a hang, SMTP, Alertmanager."""

from __future__ import annotations

import asyncio
import contextlib
import email
import hashlib
import hmac
import itertools
import json
import os
import shutil
import socket
import sqlite3
import ssl
import sys
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from email.message import Message
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import trustme
from aiohttp import web
from conftest import start_app, wait_for

from prober.alerts import Alerts, outbox
from prober.config import Config, parse_config
from prober.model import Incident, Reason, State
from prober.store import Store

T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=3)
SECRET = "hook-secret-value"


@dataclass
class Receiver:
    """An HTTP receiver whose answers are scripted per path: "500", "429:SECONDS", "hang", else 200."""

    script: dict[str, list[str]] = field(default_factory=dict)
    got: dict[str, list[tuple[float, dict[str, str], bytes, int]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    release: asyncio.Event = field(default_factory=asyncio.Event)
    url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        body = await request.read()
        plan = self.script.get(name) or ["ok"]
        action = plan.pop(0) if len(plan) > 1 else plan[0]
        status = 200
        if action == "500":
            status = 500
        elif action.startswith("429:"):
            status = 429
        self.got[name].append((time.monotonic(), dict(request.headers), body, status))
        if action == "hang":
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.release.wait(), 20)
            return web.Response(status=200)
        if status == 429:
            return web.Response(status=429, headers={"Retry-After": action[4:]}, text="slow down")
        return web.Response(status=status, text="receiver broke" if status == 500 else "ok")

    async def echo(self, request: web.Request) -> web.Response:
        self.got["echo"].append((time.monotonic(), dict(request.headers), await request.read(), 404))
        return web.Response(status=404, text=f"no such hook: {request.path}")

    def accepted(self, name: str) -> list[dict[str, Any]]:
        return [json.loads(b) for _, _, b, s in self.got[name] if s == 200]


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = Receiver()
    app = web.Application()
    app.router.add_post("/{name}", r.handle)
    app.router.add_post("/{name}/api/v2/alerts", r.handle)
    app.router.add_post("/echo/{tail:.*}", r.echo)
    runner, port = await start_app(app)
    r.url = f"http://127.0.0.1:{port}"
    yield r
    r.release.set()
    await runner.cleanup()


async def prober_cli(*args: str) -> tuple[int, str]:
    """Run `python -m prober ARGS` (this checkout); its exit code and output (stderr included)."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "prober",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=env,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 30)
    return proc.returncode or 0, out.decode()


def config_for(channels: str, extra: str = "") -> Config:
    text = (
        f"alerts:\n  channels:\n{channels}\n{extra}\ndefaults: {{alerts: [{', '.join(_names(channels))}]}}\n"
    )
    text += "checks:\n  - {name: api, url: 'http://127.0.0.1:9/api', surface: api}\n"
    return parse_config(text, "checks.yaml", {"HOOK_SECRET": SECRET, "SLACK_PATH": "T0/B0/" + SECRET})


def _names(channels: str) -> list[str]:
    return [line.strip().split(":")[0] for line in channels.splitlines() if line.strip()]


def incident(**changes: Any) -> Incident:
    base = Incident(
        check="api",
        state=State.MAJOR_OUTAGE,
        reason=Reason.CONNECT,
        signature=None,
        started_at=T0,
        detected_at=T0 + timedelta(seconds=20),
        vantages=("local",),
        regions=("local",),
    )
    return replace(base, **changes)


@dataclass
class Sender:
    store: Store
    alerts: Alerts
    db: Path

    async def save(self, i: Incident) -> int:
        return await asyncio.wrap_future(self.store.save_incident(i))

    def rows(self) -> list[dict[str, Any]]:
        with contextlib.closing(sqlite3.connect(self.db)) as conn:
            conn.row_factory = sqlite3.Row
            return [dict(r) for r in conn.execute("SELECT * FROM notifications ORDER BY rowid")]


@pytest.fixture
async def sender(tmp_path: Path) -> AsyncIterator[Callable[[Config], Awaitable[Sender]]]:
    started: list[tuple[Store, asyncio.Task[None]]] = []

    async def start(config: Config) -> Sender:
        store = Store(tmp_path / "p.db").open()
        alerts = Alerts(store, lambda: config, "http://status.test/")
        alerts.attach()
        started.append((store, asyncio.create_task(alerts.run())))
        return Sender(store, alerts, tmp_path / "p.db")

    yield start
    for store, task in started:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        store.close()


async def test_refusals_then_acceptance_with_a_stable_id_and_retry_after(
    receiver: Receiver, sender: Callable[[Config], Awaitable[Sender]], caplog: pytest.LogCaptureFixture
) -> None:
    receiver.script["ops"] = ["500", "429:2", "ok"]
    config = config_for(f'    ops: {{type: webhook, url: "{receiver.url}/ops", secret: "${{HOOK_SECRET}}"}}')
    s = await sender(config)
    await s.save(incident())
    await wait_for(lambda: len(receiver.accepted("ops")) == 1, 20, "the notification to be accepted")
    attempts = receiver.got["ops"]
    assert [status for *_, status in attempts] == [500, 429, 200]
    assert attempts[2][0] - attempts[1][0] >= 1.9  # Retry-After: 2 was honoured
    bodies = [json.loads(b) for _, _, b, _ in attempts]
    assert len({b["id"] for b in bodies}) == 1  # the same id on every attempt: receivers deduplicate
    for _, headers, body, _ in attempts:
        expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        assert headers["X-Prober-Signature"] == expected
    (row,) = s.rows()
    assert (row["id"], row["state"], row["attempts"], row["event"]) == (bodies[0]["id"], "sent", 3, "open")
    body = bodies[2]
    assert body["event"] == "open" and body["status_page"] == "http://status.test/"
    assert body["check"]["name"] == "api" and body["incident"]["state"] == "major_outage"
    assert SECRET not in caplog.text and SECRET not in json.dumps(s.rows())
    assert "HTTP 500: receiver broke" in caplog.text


async def test_a_hanging_receiver_delays_no_other_channel(
    receiver: Receiver, sender: Callable[[Config], Awaitable[Sender]]
) -> None:
    receiver.script["slow"] = ["hang"]
    channels = (
        f'    slow: {{type: webhook, url: "{receiver.url}/slow"}}\n'
        f'    fast: {{type: discord, url: "{receiver.url}/fast"}}'
    )
    s = await sender(config_for(channels, "  timeout: 1s"))
    opened = await s.save(incident())
    await s.save(incident(id=opened, resolved_at=datetime.now(UTC)))
    took = await wait_for(
        lambda: len(receiver.accepted("fast")) == 2, 10, "the fast channel's open and resolve"
    )
    assert took < 5
    assert [b["embeds"][0]["title"].split("]")[0] for b in receiver.accepted("fast")] == [
        "[MAJOR OUTAGE",
        "[RESOLVED",
    ]

    def slow_retried() -> bool:
        slow = [r for r in s.rows() if r["channel"] == "slow"]
        return any(r["attempts"] >= 1 and "no answer within 1s" in (r["last_error"] or "") for r in slow)

    await wait_for(slow_retried, 10, "the hanging channel's attempt to time out")
    # Its resolve waits behind its open: never delivered before the open it ends.
    assert [r["attempts"] for r in s.rows() if r["channel"] == "slow" and r["event"] == "resolve"] == [0]


async def test_given_up_after_give_up_after_and_listed(
    receiver: Receiver, sender: Callable[[Config], Awaitable[Sender]], tmp_path: Path
) -> None:
    receiver.script["ops"] = ["500"]
    s = await sender(
        config_for(f'    ops: {{type: slack, url: "{receiver.url}/ops"}}', "  give_up_after: 2s")
    )
    await s.save(incident())
    await wait_for(lambda: [r["state"] for r in s.rows()] == ["failed"], 20, "the notification to fail")
    assert len(receiver.got["ops"]) >= 2
    await wait_for(lambda: (s.alerts.figures or {}).get("failed") == 1, 10, "the figures to count it")
    assert s.alerts.figures is not None and s.alerts.figures["pending"] == 0
    for flag, present in (("--failed", True), ("--pending", False)):
        code, out = await prober_cli("alerts", "list", "--db", str(s.db), flag)
        assert code == 0
        assert ("HTTP 500: receiver broke" in out) is present, out


async def test_alerts_test_command(receiver: Receiver, tmp_path: Path) -> None:
    config = tmp_path / "checks.yaml"
    config.write_text(
        f"alerts:\n  channels:\n    ops: {{type: teams, url: '{receiver.url}/ops'}}\n"
        f"    pd: {{type: pagerduty, routing_key: rk, url: '{receiver.url}/pd'}}\n"
        "checks:\n  - {name: api, url: 'http://127.0.0.1:9/api'}\n"
    )

    async def run(*args: str) -> tuple[int, str]:
        return await prober_cli("alerts", "test", *args, "-c", str(config))

    code, out = await run("ops")
    assert code == 0 and "ops: accepted" in out
    (card,) = receiver.accepted("ops")
    assert card["attachments"][0]["content"]["body"][0]["text"].startswith("[prober] test notification")
    receiver.script["ops"] = ["500"]
    code, out = await run("ops")
    assert code == 1 and "HTTP 500: receiver broke" in out
    code, out = await run("nope")
    assert code == 2 and "no alert channel named 'nope'" in out
    code, out = await run("pd")  # PagerDuty: the test alert is resolved at once, paging no one for long
    assert code == 0 and [b["event_action"] for b in receiver.accepted("pd")] == ["trigger", "resolve"]
    assert len({b["dedup_key"] for b in receiver.accepted("pd")}) == 1


async def test_email_through_a_real_smtp_server(sender: Callable[[Config], Awaitable[Sender]]) -> None:
    from aiosmtpd.controller import Controller

    received: list[Message] = []

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            received.append(email.message_from_bytes(envelope.content))
            return "250 OK"

    port = free_port()
    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        smtp = f"smtp://127.0.0.1:{port}"
        channel = f'    mail: {{type: email, smtp: "{smtp}", from: p@example.com, to: [ops@example.com]}}'
        s = await sender(config_for(channel))
        await s.save(incident(signature="<b>x-fret</b>"))
        await wait_for(lambda: len(received) == 1, 15, "the email")
    finally:
        controller.stop()
    msg = received[0]
    assert msg["Subject"].startswith("[MAJOR OUTAGE] api is down") and msg["To"] == "ops@example.com"
    parts = {
        p.get_content_type(): p.get_payload(decode=True).decode() for p in msg.walk() if not p.is_multipart()
    }
    assert "Cause: connect / <b>x-fret</b>" in parts["text/plain"]
    assert "&lt;b&gt;x-fret&lt;/b&gt;" in parts["text/html"] and "<b>x-fret" not in parts["text/html"]
    assert msg["X-Prober-Notification-Id"] == s.rows()[0]["id"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.skipif(shutil.which("prometheus-alertmanager") is None, reason="needs prometheus-alertmanager")
async def test_alertmanager_shows_the_alert_while_open_and_not_after(
    tmp_path: Path, sender: Callable[[Config], Awaitable[Sender]]
) -> None:
    (tmp_path / "am.yml").write_text("route: {receiver: none}\nreceivers: [{name: none}]\n")
    port = free_port()
    am = await asyncio.create_subprocess_exec(
        "prometheus-alertmanager",
        f"--config.file={tmp_path / 'am.yml'}",
        f"--storage.path={tmp_path / 'am'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--cluster.listen-address=",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        async with aiohttp.ClientSession() as session:

            async def alerts() -> list[dict[str, Any]] | None:
                try:
                    async with session.get(f"http://127.0.0.1:{port}/api/v2/alerts") as resp:
                        return list(await resp.json()) if resp.status == 200 else None
                except aiohttp.ClientError:
                    return None

            async def ready() -> bool:
                return await alerts() is not None

            await wait_for(ready, 30, "Alertmanager to start")
            s = await sender(config_for(f'    am: {{type: alertmanager, url: "http://127.0.0.1:{port}"}}'))
            opened = await s.save(incident(state=State.PARTIAL_OUTAGE))

            async def firing(severity: str) -> bool:
                found = await alerts() or []
                active = [a["labels"] for a in found if a["status"]["state"] == "active"]
                return [labels.get("severity") for labels in active] == [severity]

            await wait_for(lambda: firing("warning"), 20, "the alert in Alertmanager")
            await s.save(incident(id=opened))  # escalated to a major outage
            await wait_for(lambda: firing("critical"), 20, "only the critical alert in Alertmanager")
            (alert,) = await alerts() or []
            assert alert["labels"] == {
                "alertname": "ProberIncident",
                "check": "api",
                "surface": "api",
                "severity": "critical",
            }
            await s.save(incident(id=opened, resolved_at=datetime.now(UTC)))

            async def gone() -> bool:
                return await alerts() == []

            await wait_for(gone, 20, "the alert to end in Alertmanager")
    finally:
        am.kill()
        await am.wait()


async def test_slack_rate_limit_and_pagerduty_dedup(
    receiver: Receiver, sender: Callable[[Config], Awaitable[Sender]]
) -> None:
    channels = (
        f'    chat: {{type: slack, url: "{receiver.url}/chat"}}\n'
        f'    pd: {{type: pagerduty, routing_key: "rk-1", url: "{receiver.url}/pd"}}'
    )
    s = await sender(config_for(channels))
    opened = await s.save(incident(state=State.PARTIAL_OUTAGE))
    await s.save(incident(id=opened))  # escalate
    await s.save(incident(id=opened, resolved_at=datetime.now(UTC)))
    await wait_for(
        lambda: len(receiver.accepted("chat")) == 3 and len(receiver.accepted("pd")) == 3, 20, "all"
    )
    times = [t for t, *_ in receiver.got["chat"]]
    assert all(b - a >= 0.95 for a, b in itertools.pairwise(times))  # about one a second
    assert [b["text"].split("]")[0] for b in receiver.accepted("chat")] == [
        "[PARTIAL OUTAGE",
        "[MAJOR OUTAGE",
        "[RESOLVED",
    ]
    pd = receiver.accepted("pd")
    assert [b["event_action"] for b in pd] == ["trigger", "trigger", "resolve"]
    assert len({b["dedup_key"] for b in pd}) == 1 and pd[0]["routing_key"] == "rk-1"
    assert [b["payload"]["severity"] for b in pd[:2]] == ["warning", "critical"]


@pytest.mark.filterwarnings("ignore:'imghdr' is deprecated:DeprecationWarning")  # inside Apprise 2.x
async def test_apprise_channel(receiver: Receiver, sender: Callable[[Config], Awaitable[Sender]]) -> None:
    pytest.importorskip("apprise")
    url = receiver.url.replace("http://", "json://") + "/apprise"
    s = await sender(config_for(f'    other: {{type: apprise, url: "{url}"}}'))
    await s.save(incident())
    await wait_for(lambda: len(receiver.accepted("apprise")) == 1, 20, "the Apprise notification")
    body = receiver.accepted("apprise")[0]
    assert body["title"].startswith("[MAJOR OUTAGE] api is down") and "Regions down: local" in body["message"]


async def test_reminders_while_open_and_none_after(
    receiver: Receiver, sender: Callable[[Config], Awaitable[Sender]]
) -> None:
    channel = f'    ops: {{type: webhook, url: "{receiver.url}/ops"}}'
    s = await sender(config_for(channel, "  send_on: [open, resolve, reminder]\n  remind: 1s"))
    opened = await s.save(incident())
    events = lambda: [b["event"] for b in receiver.accepted("ops")]  # noqa: E731
    await wait_for(lambda: events().count("reminder") >= 2, 20, "two reminders")
    reminder = next(b for b in receiver.accepted("ops") if b["event"] == "reminder")
    assert reminder["incident"]["id"] == opened and reminder["id"] != receiver.accepted("ops")[0]["id"]
    await s.save(incident(id=opened, resolved_at=datetime.now(UTC)))
    await wait_for(lambda: "resolve" in events(), 20, "the resolve")
    # A resolved incident is never reminded of, however late it is.
    config = s.alerts.config()
    later = datetime.now(UTC) + timedelta(hours=1)
    assert await s.store.call(lambda db: outbox.remind(db, config, 1.0, later)) == 0
    assert [r["event"] for r in s.rows()].count("reminder") == events().count("reminder")


async def test_a_secret_quoted_by_a_receiver_is_redacted(
    receiver: Receiver, sender: Callable[[Config], Awaitable[Sender]], caplog: pytest.LogCaptureFixture
) -> None:
    s = await sender(config_for(f'    chat: {{type: slack, url: "{receiver.url}/echo/${{SLACK_PATH}}"}}'))
    await s.save(incident())
    await wait_for(lambda: bool(s.rows()[0]["last_error"]), 20, "a refusal")
    assert s.rows()[0]["last_error"] == "HTTP 404: no such hook: /echo/${SLACK_PATH}"
    assert SECRET not in caplog.text and "no such hook: /echo/${SLACK_PATH}" in caplog.text


async def test_email_starttls_required_refuses_a_server_without_it(
    sender: Callable[[Config], Awaitable[Sender]],
) -> None:
    from aiosmtpd.controller import Controller

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            raise AssertionError("a message was sent in clear text")

    port = free_port()
    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        smtp = f"smtp://prober:${{HOOK_SECRET}}@127.0.0.1:{port}"
        channel = (
            f'    mail: {{type: email, smtp: "{smtp}", from: p@e.com, to: [o@e.com], starttls: required}}'
        )
        s = await sender(config_for(channel))
        await s.save(incident())
        await wait_for(lambda: bool(s.rows()[0]["last_error"]), 15, "a refusal")
    finally:
        controller.stop()
    assert "STARTTLS" in s.rows()[0]["last_error"] and s.rows()[0]["state"] == "pending", s.rows()
    assert SECRET not in json.dumps(s.rows())


async def test_email_with_starttls_and_login(
    sender: Callable[[Config], Awaitable[Sender]], ca: trustme.CA, tmp_path: Path
) -> None:
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult, LoginPassword

    received: list[tuple[Message, bool]] = []
    logins: list[tuple[str, str]] = []

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            received.append((email.message_from_bytes(envelope.content), session.ssl is not None))
            return "250 OK"

    def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        assert isinstance(data, LoginPassword)
        logins.append((data.login.decode(), data.password.decode()))
        return AuthResult(success=data.password.decode() == SECRET)

    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_context)
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    port = free_port()
    controller = Controller(
        Handler(),
        hostname="127.0.0.1",
        port=port,
        tls_context=server_context,
        require_starttls=True,
        auth_required=True,
        authenticator=authenticator,
    )
    controller.start()
    try:
        channel = (
            f'    mail: {{type: email, smtp: "smtp://prober:${{HOOK_SECRET}}@127.0.0.1:{port}", '
            f"from: p@e.com, to: [o@e.com], starttls: required, ca_file: {tmp_path / 'ca.pem'}}}"
        )
        s = await sender(config_for(channel))
        await s.save(incident())
        await wait_for(lambda: len(received) == 1, 15, "the email over STARTTLS")
        # The server has the message before the sender has its answer: then the row is marked.
        await wait_for(lambda: s.rows()[0]["state"] == "sent", 15, "the notification marked sent")
    finally:
        controller.stop()
    assert logins == [("prober", SECRET)] and received[0][1]  # logged in, over TLS


async def test_alertmanager_hears_of_open_incidents_every_minute(
    receiver: Receiver, sender: Callable[[Config], Awaitable[Sender]]
) -> None:
    config = config_for(f'    am: {{type: alertmanager, url: "{receiver.url}/am"}}')
    assert config.alerts is not None
    s = await sender(config)
    opened = await s.save(incident())
    await wait_for(lambda: len(receiver.accepted("am")) == 1, 10, "the firing alert")
    async with aiohttp.ClientSession() as session:
        # What the sender does every minute, done now.
        await s.alerts._refresh(session, config.alerts.channels["am"], config.alerts)
        (again,) = receiver.accepted("am")[1]
        assert again["labels"]["severity"] == "critical" and again["endsAt"] > datetime.now(UTC).isoformat()
        await s.save(incident(id=opened, resolved_at=datetime.now(UTC)))
        await wait_for(lambda: len(receiver.accepted("am")) == 3, 10, "the resolve")
        await s.alerts._refresh(session, config.alerts.channels["am"], config.alerts)
    assert len(receiver.accepted("am")) == 3  # a resolved incident is not re-sent
