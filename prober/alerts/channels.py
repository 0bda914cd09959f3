"""One delivery attempt per channel type, with the payload each receiver expects.

An attempt never raises for what the receiver or the network did: it returns a `Delivery` saying
whether the receiver accepted the notification, its answer otherwise, and how long it asked us to
wait (`Retry-After`). Every attempt has a deadline.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import html
import json
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import make_msgid, parsedate_to_datetime
from typing import Any
from urllib.parse import unquote, urlsplit

import aiohttp

from prober.alerts.message import Note
from prober.config import Channel
from prober.model import iso, utcnow

ANSWER_CHARS = 300  # of a refusal's body kept as the error: enough to read, bounded
MAX_RETRY_AFTER = 3600.0
_APPRISE_POOL = ThreadPoolExecutor(max_workers=2, thread_name_prefix="prober-apprise")  # Apprise blocks


@dataclass(frozen=True, slots=True)
class Delivery:
    """The outcome of one attempt."""

    ok: bool
    error: str | None = None
    retry_after: float | None = None  # seconds the receiver asked us to wait


def retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date), bounded; None if absent or bad."""
    if not value:
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError):
            return None
        seconds = (when - (now or utcnow())).total_seconds()
    if seconds != seconds:  # NaN
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


async def post(
    session: aiohttp.ClientSession,
    url: str,
    body: Any,
    deadline: float,
    headers: dict[str, str] | None = None,
) -> Delivery:
    """POST JSON (or bytes already encoded); 2xx is accepted, anything else is the receiver's answer."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    try:
        async with session.post(
            url, data=data, headers={"Content-Type": "application/json", **(headers or {})},
            timeout=aiohttp.ClientTimeout(total=deadline), allow_redirects=False,
        ) as resp:  # fmt: skip
            answer = (await resp.content.read(ANSWER_CHARS)).decode("utf-8", "replace").strip()
            if 200 <= resp.status < 300:
                return Delivery(True)
            error = f"HTTP {resp.status}" + (f": {' '.join(answer.split())}" if answer else "")
            return Delivery(False, error, retry_after(resp.headers.get("Retry-After")))
    except TimeoutError:
        return Delivery(False, f"no answer within {deadline:g}s")
    except aiohttp.ClientError as exc:
        return Delivery(False, f"{type(exc).__name__}: {exc}")


def signature(secret: str, body: bytes) -> str:
    """The X-Prober-Signature header of a body."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def slack_json(note: Note) -> dict[str, Any]:
    """Slack incoming webhook: Block Kit, with `text` as the fallback notifications show."""

    def esc(text: str) -> str:  # mrkdwn: only these three are special
        return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")

    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": note.title()[:150]}},
        {"type": "section", "fields": [{"type": "mrkdwn", "text": f"*{esc(k)}*\n{esc(v)}"}
                                       for k, v in note.facts()[:10]]},
    ]  # fmt: skip
    context = f"<{esc(note.status_page)}|Status page> · " if note.status_page else ""
    context += f"prober · id {esc(note.id)}"  # receivers and people deduplicate on it
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": context}]})
    return {"text": note.text(), "blocks": blocks}


def discord_json(note: Note) -> dict[str, Any]:
    """Discord webhook: an embed, mentions disabled."""
    color = 0x2EB886 if note.resolved else 0xD00000 if note.severity == "critical" else 0xE8A317
    embed: dict[str, Any] = {
        "title": note.title()[:256],
        "color": color,
        "fields": [{"name": k, "value": v[:1024], "inline": True} for k, v in note.facts()[:25]],
        "footer": {"text": f"prober · {note.id}"},
    }
    if note.status_page:
        embed["url"] = note.status_page
    if note.sent_at:
        embed["timestamp"] = iso(note.sent_at)
    return {"content": note.title()[:2000], "embeds": [embed], "allowed_mentions": {"parse": []}}


def teams_json(note: Note) -> dict[str, Any]:
    """Teams workflow webhook ("When a Teams webhook request is received"): an Adaptive Card."""
    card: dict[str, Any] = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": [
            {"type": "TextBlock", "text": note.title(), "weight": "Bolder", "size": "Medium", "wrap": True,
             "color": "Good" if note.resolved else "Attention"},
            {"type": "FactSet", "facts": [{"title": k, "value": v} for k, v in note.facts()]},
        ],
    }  # fmt: skip
    if note.status_page:
        card["actions"] = [{"type": "Action.OpenUrl", "title": "Status page", "url": note.status_page}]
    attachment = {
        "contentType": "application/vnd.microsoft.card.adaptive",
        "contentUrl": None,
        "content": card,
    }
    return {"type": "message", "attachments": [attachment]}


def pagerduty_json(note: Note, routing_key: str) -> dict[str, Any]:
    """PagerDuty Events API v2: trigger (again) while open, resolve on the same dedup_key."""
    i = note.incident
    body: dict[str, Any] = {
        "routing_key": routing_key,
        "event_action": "resolve" if note.resolved else "trigger",
        "dedup_key": f"prober-{i.get('check')}-{i.get('id') if i.get('id') is not None else note.id}",
    }
    if not note.resolved:
        body["payload"] = {
            "summary": note.title()[:1024],
            "source": str(note.check.get("name")),
            "severity": "critical" if note.severity == "critical" else "warning",
            "timestamp": i.get("started_at"),
            "component": str(note.check.get("name")),
            "group": str(note.check.get("surface") or ""),
            "class": str(i.get("reason") or "outage"),
            "custom_details": {"notification_id": note.id, "event": note.event, "incident": i},
        }
        if note.status_page:
            body["links"] = [{"href": note.status_page, "text": "Status page"}]
    return body


def alertmanager_json(note: Note, *, ended: bool, now: datetime) -> list[dict[str, Any]]:
    """Alertmanager /api/v2/alerts: the firing alert, or (ended) both severities ended now."""
    i = note.incident
    name = "ProberTest" if note.event == "test" else "ProberIncident"  # a test must not page anyone
    labels = {"alertname": name, "check": str(note.check.get("name")),
              "surface": str(note.check.get("surface") or "")}  # fmt: skip
    annotations = {"summary": note.title(), "description": note.text(), "incident_id": str(i.get("id"))}
    alert = {"annotations": annotations, "startsAt": i.get("started_at") or iso(now)}
    if note.status_page:
        alert["generatorURL"] = note.status_page
    if not ended:  # endsAt a while ahead: the alert stays firing as long as we keep re-sending it
        return [
            {
                **alert,
                "labels": {**labels, "severity": note.severity},
                "endsAt": iso(now + timedelta(minutes=1 if note.event == "test" else 5)),
            }
        ]
    # An escalated incident fired as warning first: end both, so neither lingers.
    return [
        {**alert, "labels": {**labels, "severity": s}, "endsAt": iso(now)} for s in ("warning", "critical")
    ]


def email_message(note: Note, sender: str, to: list[str]) -> EmailMessage:
    """A plain-text and HTML email, every value escaped in the HTML part."""
    msg = EmailMessage()
    msg["Subject"] = note.title()
    msg["From"] = sender
    msg["To"] = ", ".join(to)
    msg["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or None)
    msg["X-Prober-Notification-Id"] = note.id
    msg.set_content(note.text())
    rows = "".join(
        f"<tr><th align=left>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in note.facts()
    )
    link = f'<p><a href="{html.escape(note.status_page)}">Status page</a></p>' if note.status_page else ""
    msg.add_alternative(f"<h2>{html.escape(note.title())}</h2><table>{rows}</table>{link}", subtype="html")
    return msg


async def send_email(note: Note, settings: dict[str, Any], deadline: float) -> Delivery:
    """SMTP through aiosmtplib: smtps:// is TLS from the start, smtp:// uses STARTTLS per `starttls`."""
    import aiosmtplib

    parts = urlsplit(settings["smtp"])
    tls = parts.scheme == "smtps"
    starttls = {"auto": None, "required": True, "never": False}[settings.get("starttls", "auto")]
    try:
        await aiosmtplib.send(
            email_message(note, settings["from"], settings["to"]),
            hostname=parts.hostname, port=parts.port or (465 if tls else 587),
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            use_tls=tls, start_tls=None if tls else starttls, timeout=deadline,
            cert_bundle=settings.get("ca_file"),
        )  # fmt: skip
    except aiosmtplib.SMTPResponseException as exc:
        return Delivery(False, f"SMTP {exc.code}: {exc.message}")
    except (aiosmtplib.SMTPException, OSError) as exc:
        return Delivery(False, f"{type(exc).__name__}: {exc}")
    return Delivery(True)


async def send_apprise(note: Note, url: str, deadline: float) -> Delivery:
    """Any Apprise URL; Apprise blocks, so it runs in a small pool of its own threads."""

    def notify() -> bool:
        import apprise

        sender = apprise.Apprise()
        if not sender.add(url):
            return False
        return bool(sender.notify(body=note.text(), title=note.title()))

    loop = asyncio.get_running_loop()
    try:
        ok = await asyncio.wait_for(asyncio.shield(loop.run_in_executor(_APPRISE_POOL, notify)), deadline)
    except TimeoutError:
        return Delivery(False, f"no answer within {deadline:g}s")
    return Delivery(True) if ok else Delivery(False, "Apprise could not deliver it (see its log lines)")


Sender = Callable[[aiohttp.ClientSession, Channel, Note, float], Awaitable[Delivery]]


async def deliver(session: aiohttp.ClientSession, channel: Channel, note: Note, deadline: float) -> Delivery:
    """One attempt to hand `note` to `channel`."""
    s = channel.settings
    if channel.type == "webhook":
        body = json.dumps(note.webhook_json()).encode()
        headers = {"X-Prober-Event": note.event, "X-Prober-Id": note.id}
        if s.get("secret"):
            headers["X-Prober-Signature"] = signature(s["secret"], body)
        return await post(session, s["url"], body, deadline, headers)
    if channel.type in ("slack", "discord", "teams"):
        payload = {"slack": slack_json, "discord": discord_json, "teams": teams_json}[channel.type](note)
        return await post(session, s["url"], payload, deadline)
    if channel.type == "pagerduty":
        return await post(session, s["url"], pagerduty_json(note, s["routing_key"]), deadline)
    if channel.type == "alertmanager":
        alerts = alertmanager_json(note, ended=note.resolved, now=utcnow())
        if note.event == "escalate":  # the warning it fired as ends; the critical one fires
            alerts = [
                a
                for a in alertmanager_json(note, ended=True, now=utcnow())
                if a["labels"]["severity"] == "warning"
            ] + alerts
        return await post(session, s["url"].rstrip("/") + "/api/v2/alerts", alerts, deadline)
    if channel.type == "email":
        return await send_email(note, dict(s), deadline)
    if channel.type == "apprise":
        return await send_apprise(note, s["url"], deadline)
    return Delivery(False, f"unknown channel type {channel.type}")
