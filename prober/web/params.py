"""Query parameters of the JSON API: times, limits, cursors; a bad one is a RequestError (400)."""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from datetime import datetime, timedelta

from aiohttp import web

from prober import report
from prober.model import iso

MAX_ID = 2**63 - 1  # the largest SQLite INTEGER
MAX_CURSOR_CHARS = 200
_COUNT = re.compile(r"[0-9]{1,19}")  # ASCII digits, as many as MAX_ID has (the value is checked after)
_BASE64URL = re.compile(r"[A-Za-z0-9_-]+=*")


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
    duration before now ("24h", "7d", "90m", "1h30m"): the rules of `prober report --since`."""
    try:
        return report.parse_when(text, now)
    except ValueError as exc:
        raise bad(f"{name}: {exc}") from None


def limit(params: Mapping[str, str], default: int, most: int) -> int:
    """The `limit` parameter: ASCII digits, from 1 to `most`."""
    text = params.get("limit")
    if text is None:
        return default
    # Not str.isdigit()/int(): they take "²" (which int() then refuses) and "٣" (which it reads as 3).
    if not _COUNT.fullmatch(text) or not 1 <= int(text) <= most:
        raise bad(f'limit: "{text}" is not a whole number from 1 to {most}')
    return int(text)


def window(params: Mapping[str, str], now: datetime, default: timedelta) -> tuple[datetime, datetime | None]:
    """[since, until) from the `since` and `until` parameters; `since` defaults to `default` before until."""
    until = parse_when("until", params["until"], now) if params.get("until") else None
    since = parse_when("since", params["since"], now) if params.get("since") else (until or now) - default
    if until is not None and since > until:
        raise bad(f"since ({iso(since)}) is after until ({iso(until)})")
    return since, until


def cursor(text: str) -> tuple[str, int]:
    """The position a "next" link's cursor points after: (ISO time, result id)."""
    refused = bad(f'cursor: "{text}" is not a cursor from a "next" link')
    if len(text) > MAX_CURSOR_CHARS or not _BASE64URL.fullmatch(text):
        raise refused
    try:
        ts, ident = base64.urlsafe_b64decode(text.encode() + b"==").decode().split("|")
        when = report.parse_time(ts)
    except ValueError:  # binascii.Error and UnicodeDecodeError are ValueErrors too
        raise refused from None
    # An id is a SQLite INTEGER: past 2**63 - 1, binding it raises OverflowError.
    if not _COUNT.fullmatch(ident) or int(ident) > MAX_ID:
        raise refused
    return iso(when), int(ident)


def make_cursor(ts: datetime, ident: int) -> str:
    """The cursor of a "next" link: after the result `ident` taken at `ts`."""
    return base64.urlsafe_b64encode(f"{iso(ts)}|{ident}".encode()).decode().rstrip("=")
