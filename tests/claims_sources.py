"""Official status pages and incident feeds on loopback, scripted over a clock the test starts."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

from aiohttp import web

OPERATIONAL = {"indicator": "none", "description": "All Systems Operational"}
MAJOR = {"indicator": "critical", "description": "Major System Outage"}


def summary(
    status: dict[str, str], components: dict[str, str], incidents: list[dict[str, Any]]
) -> dict[str, Any]:
    """A Statuspage v2 summary.json."""
    return {
        "page": {"id": "t", "name": "Target", "url": "http://127.0.0.1/", "time_zone": "Etc/UTC"},
        "status": status,
        "components": [{"id": str(i), "name": n, "status": s} for i, (n, s) in enumerate(components.items())],
        "incidents": incidents,
        "scheduled_maintenances": [],
    }


def incident(name: str, created_at: datetime, components: list[str] | None = None) -> dict[str, Any]:
    """An unresolved Statuspage incident."""
    return {
        "name": name,
        "status": "investigating",
        "created_at": created_at.isoformat(),
        "components": [{"name": c} for c in components or []],
    }


def rss(items: list[tuple[str, str, datetime, str]]) -> str:
    """An RSS 2.0 feed of (guid, title, published, description) items."""
    body = "".join(
        f"<item><guid>{g}</guid><title>{t}</title><pubDate>{format_datetime(at)}</pubDate>"
        f"<description>{d}</description></item>"
        for g, t, at, d in items
    )
    return (
        f'<?xml version="1.0"?><rss version="2.0"><channel><title>Target status</title>{body}</channel></rss>'
    )


def atom(entries: list[tuple[str, str, datetime, str]]) -> str:
    """An Atom feed of (id, title, updated, summary) entries."""
    body = "".join(
        f"<entry><id>{i}</id><title>{t}</title><updated>{at.isoformat()}</updated><summary>{s}</summary></entry>"
        for i, t, at, s in entries
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom">'
        f"<title>Target</title><id>urn:t</id><updated>{datetime.now(UTC).isoformat()}</updated>{body}</feed>"
    )


@dataclass
class Sources:
    """A target with a scripted outage and its official status page, on one clock (seconds since start)."""

    down: tuple[float, float] = (0.0, 0.0)  # [from, until) the target's /home answers 503
    said: list[tuple[float, Callable[[datetime], tuple[str, str]]]] = field(default_factory=list)
    started: float | None = None  # time.monotonic() at 0
    origin: datetime = field(default_factory=lambda: datetime.now(UTC))
    hits: dict[str, int] = field(default_factory=dict)
    release: asyncio.Event = field(default_factory=asyncio.Event)  # ends the requests that hang

    def start(self) -> None:
        """Start the clock."""
        self.started, self.origin = time.monotonic(), datetime.now(UTC)

    def now(self) -> float:
        """Seconds since start (negative before it)."""
        return -1.0 if self.started is None else time.monotonic() - self.started

    def at(self, seconds: float) -> datetime:
        """The wall-clock time of a moment of the script."""
        return self.origin + timedelta(seconds=seconds)

    def app(self) -> web.Application:
        """The routes: /home (the target), /status (scripted), and sources that misbehave."""
        app = web.Application()
        self.release = asyncio.Event()

        async def home(request: web.Request) -> web.Response:
            down = self.down[0] <= self.now() < self.down[1]
            return web.Response(status=503 if down else 200, text="down" if down else "home")

        async def status(request: web.Request) -> web.Response:
            self.hits["status"] = self.hits.get("status", 0) + 1
            now = self.now()
            current = [make for start, make in self.said if start <= now]
            content_type, text = current[-1](self.origin) if current else self.said[0][1](self.origin)
            return web.Response(text=text, content_type=content_type)

        async def garbage(request: web.Request) -> web.Response:
            return web.Response(text="<html>oops</html>", content_type="text/html")

        async def wrong_shape(request: web.Request) -> web.Response:
            return web.json_response({"status": "fine", "components": "all of them"})

        async def deep(request: web.Request) -> web.Response:
            return web.Response(text="[" * 200_000 + "]" * 200_000, content_type="application/json")

        async def hang(request: web.Request) -> web.Response:
            await asyncio.wait_for(self.release.wait(), 60)  # until the test is over
            return web.Response(text="late")

        async def huge(request: web.Request) -> web.StreamResponse:
            resp = web.StreamResponse(headers={"Content-Type": "application/json"})
            resp.content_length = 50 * 2**20
            await resp.prepare(request)
            chunk = b" " * 2**16
            try:
                for _ in range(50 * 2**20 // len(chunk)):
                    await resp.write(chunk)
            except (ConnectionError, RuntimeError):
                pass  # the poller stopped reading, as it should
            return resp

        async def error(request: web.Request) -> web.Response:
            return web.json_response(summary(OPERATIONAL, {}, []), status=500)

        for path, handler in (
            ("/home", home), ("/status", status), ("/garbage", garbage), ("/wrong-shape", wrong_shape),
            ("/deep", deep), ("/hang", hang), ("/huge", huge), ("/error", error),
        ):  # fmt: skip
            app.router.add_get(path, handler)
        return app


def json_text(data: dict[str, Any]) -> tuple[str, str]:
    """A JSON answer for `Sources.said`."""
    import json

    return "application/json", json.dumps(data)
