"""The `alerts:` key of checks.yaml: channels, events, reminders; validated at file:line:col."""

from __future__ import annotations

import difflib
import importlib.util
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from prober.config.fields import Duration, OptDuration, _Parsed, _url
from prober.config.model import AlertSettings, Channel
from prober.config.source import _Tree, _YamlPath
from prober.config.spec import located_issue

EVENTS = ("open", "escalate", "resolve", "reminder")
PAGERDUTY_URL = "https://events.pagerduty.com/v2/enqueue"
# Seconds between two messages to one channel: Slack's incoming webhooks allow about one a second.
CHAT_INTERVAL = 1.0


def _smtp(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("is not a string")
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        raise ValueError("is not a valid SMTP URL") from None
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise ValueError("is not an SMTP URL: use smtp://[USER:PASSWORD@]HOST[:PORT] (STARTTLS) or smtps://")
    return value


def _address(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("is not a string")
    if value.count("@") != 1 or any(c in value for c in " \r\n<>,"):
        raise ValueError("is not an email address")
    return value


Url = Annotated[str, _Parsed(_url, {"type": "string"})]
Address = Annotated[str, _Parsed(_address, {"type": "string"})]


class _Channel(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    type: str
    min_interval: OptDuration = Field(default=None, description="Least time between two messages.")


class _Webhook(_Channel):
    url: Url
    secret: str | None = Field(default=None, min_length=1, description="Key of X-Prober-Signature.")


class _Chat(_Channel):  # slack, discord, teams: an incoming webhook URL
    url: Url


class _PagerDuty(_Channel):
    routing_key: str = Field(min_length=1)
    url: Url = PAGERDUTY_URL


class _Email(_Channel):
    smtp: Annotated[str, _Parsed(_smtp, {"type": "string"})]
    from_: Address = Field(alias="from")
    to: list[Address] = Field(min_length=1)
    starttls: Literal["auto", "required", "never"] = "auto"
    ca_file: str | None = Field(
        default=None, min_length=1, description="CA bundle (PEM) the server is checked with."
    )


class _Alertmanager(_Channel):
    url: Url


class _Apprise(_Channel):
    url: str = Field(min_length=1)


_TYPES: dict[str, type[_Channel]] = {
    "webhook": _Webhook,
    "slack": _Chat,
    "discord": _Chat,
    "teams": _Chat,
    "pagerduty": _PagerDuty,
    "email": _Email,
    "alertmanager": _Alertmanager,
    "apprise": _Apprise,
}


class _AlertsSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    channels: dict[str, Any] = Field(default={})
    send_on: list[Literal["open", "escalate", "resolve", "reminder"]] = Field(
        default=["open", "escalate", "resolve"]
    )
    remind: OptDuration = None
    give_up_after: Duration = 86400.0
    timeout: Duration = 10.0
    status_page: Url | None = None


def parse_alerts(data: dict[str, Any], tree: _Tree) -> AlertSettings | None:
    """Validate `alerts:` and the channel names checks use, recording located issues in `tree`."""
    raw = data.get("alerts")
    names = set(raw["channels"]) if isinstance(raw, dict) and isinstance(raw.get("channels"), dict) else set()
    _check_names(data, tree, names)
    if raw is None:
        return None
    issues = len(tree.issues)
    if not isinstance(raw, dict):
        tree.issue(("alerts",), tree.near(("alerts",)), f"{tree.quote(raw)} is not a mapping")
        return None
    try:
        spec = _AlertsSpec.model_validate(raw)
    except ValidationError as exc:
        for error in exc.errors():
            located_issue(tree, {**error, "loc": ("alerts", *error["loc"])}, data)
        spec = None
    channels = {}
    for name, value in (raw.get("channels") or {}).items() if isinstance(raw.get("channels"), dict) else ():
        channel = _channel(tree, data, str(name), value)
        if channel is not None:
            channels[str(name)] = channel
    if spec is None or len(tree.issues) > issues:
        return None
    return AlertSettings(
        channels=channels, send_on=frozenset(spec.send_on), remind=spec.remind,
        give_up_after=spec.give_up_after, timeout=spec.timeout, status_page=spec.status_page,
    )  # fmt: skip


def _channel(tree: _Tree, data: dict[str, Any], name: str, value: Any) -> Channel | None:
    path: _YamlPath = ("alerts", "channels", name)
    if not isinstance(value, dict):
        tree.issue(path, tree.near(path), f"{tree.quote(value)} is not a mapping")
        return None
    kind = value.get("type")
    model = _TYPES.get(kind) if isinstance(kind, str) else None
    if model is None:
        where = tree.values.get((*path, "type")) or tree.keys.get(path) or tree.near(path)
        known = ", ".join(_TYPES)
        tree.issue((*path, "type"), where, f"{tree.quote(kind)} is not a channel type ({known})")
        return None
    try:
        spec = model.model_validate(value)
    except ValidationError as exc:
        for error in exc.errors():
            if error["type"] == "extra_forbidden":
                key = (*path, str(error["loc"][0]))
                fields = [f.alias or n for n, f in model.model_fields.items()]
                close = difflib.get_close_matches(str(error["loc"][0]), fields, n=1, cutoff=0.6)
                hint = (
                    f'did you mean "{close[0]}"?' if close else f"a {kind} channel has: {', '.join(fields)}"
                )
                tree.issue(key, tree.keys.get(key) or tree.near(key), f'unknown key "{key[-1]}" ({hint})')
            else:
                located_issue(tree, {**error, "loc": (*path, *error["loc"])}, data)
        return None
    if kind == "apprise" and importlib.util.find_spec("apprise") is None:
        where = tree.keys.get(path) or tree.near(path)
        tree.issue(
            path, where, "an apprise channel needs Apprise: install it with pip install 'prober[apprise]'"
        )
        return None
    settings = spec.model_dump(by_alias=True, exclude={"type", "min_interval"})
    interval = spec.min_interval
    if interval is None:
        interval = CHAT_INTERVAL if kind in ("slack", "discord", "teams") else 0.0
    return Channel(name=name, type=str(kind), settings=settings, min_interval=interval)


def _check_names(data: dict[str, Any], tree: _Tree, names: set[str]) -> None:
    """`defaults.alerts` and each check's `alerts` must name channels defined under alerts.channels."""
    lists: list[tuple[_YamlPath, Any]] = []
    defaults = data.get("defaults")
    if isinstance(defaults, dict):
        lists.append((("defaults", "alerts"), defaults.get("alerts")))
    checks = data.get("checks")
    for i, check in enumerate(checks if isinstance(checks, list) else []):
        if isinstance(check, dict):
            lists.append((("checks", i, "alerts"), check.get("alerts")))
    for path, listed in lists:
        for j, name in enumerate(listed if isinstance(listed, list) else []):
            if isinstance(name, str) and name not in names:
                defined = ", ".join(sorted(names)) or "none is defined under alerts.channels"
                where = tree.values.get((*path, j)) or tree.near(path)
                tree.issue((*path, j), where, f"{tree.quote(name)} is not an alert channel ({defined})")
