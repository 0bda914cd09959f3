"""Query parameters of the JSON API: times, limits, cursors; a bad one is a RequestError (400)."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from aiohttp import web

from prober.config import parse_duration
from prober.model import iso


class RequestError(Exception):
    """A request the API refuses: its status (400, 404) and a one-line message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def bad(message: str) -> RequestError:
    """A 400 error."""
    return RequestError(400, message)


def query(request: web.Request, allowed: tuple[str, ...]) -> dict[str, str]:
    """The query parameters, refusing unknown and repeated ones ("_" is a cache buster widgets add)."""
    out: dict[str, str] = {}
    for key, value in request.query.items():
        if key == "_":
            continue
        if key not in allowed:
            known = ", ".join(allowed) or "none"
            raise bad(f'unknown query parameter "{key}" (known: {known})')
        if key in out:
            raise bad(f'query parameter "{key}" is given twice')
        out[key] = value
    return out


def parse_when(name: str, text: str, now: datetime) -> datetime:
    """A time from a query parameter: ISO 8601 ("2022-12-28T13:50Z", "2022-12-28"), "now", or a
    duration before now ("24h", "7d", "90m", "1h30m")."""
    value = text.strip()
    if value == "now":
        return now
    try:
        return now - timedelta(seconds=parse_duration(value))
    except ValueError:
        pass
    try:
        ts = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise bad(f'{name}: "{text}" is not an ISO 8601 time or a duration like 24h or 7d') from None
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)


def limit(params: Mapping[str, str], default: int, most: int) -> int:
    text = params.get("limit")
    if text is None:
        return default
    if not text.isdigit() or not 1 <= int(text) <= most:
        raise bad(f'limit: "{text}" is not a whole number from 1 to {most}')
    return int(text)


def window(params: Mapping[str, str], now: datetime, default: timedelta) -> tuple[datetime, datetime | None]:
    until = parse_when("until", params["until"], now) if params.get("until") else None
    since = parse_when("since", params["since"], now) if params.get("since") else (until or now) - default
    if until is not None and since > until:
        raise bad(f"since ({iso(since)}) is after until ({iso(until)})")
    return since, until


def cursor(text: str) -> tuple[str, int]:
    try:
        ts, ident = base64.urlsafe_b64decode(text.encode() + b"==").decode().split("|")
        return iso(datetime.fromisoformat(ts.replace("Z", "+00:00"))), int(ident)
    except (ValueError, UnicodeDecodeError):
        raise bad(f'cursor: "{text}" is not a cursor from a "next" link') from None


def make_cursor(ts: datetime, ident: int) -> str:
    return base64.urlsafe_b64encode(f"{iso(ts)}|{ident}".encode()).decode().rstrip("=")
