"""End to end: a scripted outage seen by the real daemon from three vantages (127.0.0.2-4), a restart
in the middle of an incident, and the live incidents rebuilt identically from the results alone."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from aiohttp import web
from click.testing import CliRunner
from conftest import ERROR_PAGE, HEALTHY_PAGE, ProberProcess, start_app

from prober.cli import main
from prober.model import Incident, State, utcnow
from prober.store import connect
from prober.store import read as q

pytestmark = pytest.mark.slow

# This checkout's prober, whatever else is installed: the subprocess runs in another folder.
ENV = {
    **os.environ,
    "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[1]), os.environ.get("PYTHONPATH", "")]),
}
INTERVAL = 0.4
# A result is stamped when its probe starts; the target decides when the request arrives, a few
# milliseconds later. And the scheduler may start a run a little late.
EARLY = timedelta(seconds=0.1)
LATE = timedelta(seconds=INTERVAL + 0.25)
REGION_OF = {"127.0.0.2": "US", "127.0.0.3": "JP", "127.0.0.4": "UK"}


@dataclass
class Script:
    """Which regions get a failure from each route, changed by the test as it goes."""

    down: dict[str, set[str]] = field(default_factory=lambda: {"web": set(), "api": set()})

    def app(self) -> web.Application:
        async def page(request: web.Request) -> web.Response:
            if self._region(request) in self.down["web"]:
                return web.Response(text=ERROR_PAGE, content_type="text/html")  # status 200
            return web.Response(text=HEALTHY_PAGE, content_type="text/html")

        async def api(request: web.Request) -> web.Response:
            if self._region(request) in self.down["api"]:
                return web.json_response({"error": "unavailable"}, status=503)
            return web.json_response({"data": {"ok": True}})

        app = web.Application()
        app.add_routes([web.get("/web", page), web.get("/api", api)])
        return app

    @staticmethod
    def _region(request: web.Request) -> str | None:
        peer = request.transport.get_extra_info("peername") if request.transport else None
        return REGION_OF.get(peer[0]) if peer else None


def config_text(port: int) -> str:
    return f"""\
defaults: {{interval: {INTERVAL}s, timeout: 2s, confirm: 2, recover: 2, vantages: [us, jp, uk]}}
vantages:
  us: {{region: US, source_address: 127.0.0.2}}
  jp: {{region: JP, source_address: 127.0.0.3}}
  uk: {{region: UK, source_address: 127.0.0.4}}
checks:
  - {{name: web, surface: web, url: 'http://127.0.0.1:{port}/web'}}
  - {{name: api, surface: api, url: 'http://127.0.0.1:{port}/api'}}
"""


@pytest.fixture
def daemons(
    prober_process: Callable[..., Awaitable[ProberProcess]],
) -> Callable[[Path, Path], Awaitable[ProberProcess]]:
    """Start `prober run` on a configuration and database."""

    async def start(config: Path, db: Path) -> ProberProcess:
        return await prober_process("run", "-c", str(config), "--db", str(db), env=ENV)

    return start


async def until(
    condition: Callable[[], Awaitable[bool]], within: float, what: str, daemon: ProberProcess
) -> None:
    """Wait for `condition`, failing with the daemon's log after `within` seconds."""
    deadline = time.monotonic() + within
    while not await condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within}s waiting for {what}\n{daemon.log}")
        await asyncio.sleep(0.05)


def within_one_interval(ts: datetime | None, change: datetime) -> bool:
    return ts is not None and change - EARLY <= ts <= change + LATE


async def test_scripted_outage_restart_and_rebuild(
    tmp_path: Path, daemons: Callable[[Path, Path], Awaitable[ProberProcess]]
) -> None:
    script = Script()
    runner, port = await start_app(script.app())
    config = tmp_path / "checks.yaml"
    config.write_text(config_text(port))
    db = tmp_path / "prober.db"

    def read(fn: Callable[..., object], *args: object) -> Awaitable[object]:
        def go() -> object:
            conn = connect(db, readonly=True)
            try:
                return fn(conn, *args)
            except sqlite3.OperationalError:  # the daemon is still creating the tables
                return []
            finally:
                conn.conn.close()

        return asyncio.to_thread(go)

    async def incidents(check: str | None = None) -> list[Incident]:
        return await read(q.incidents, None, None, check) if db.exists() else []  # type: ignore[return-value]

    async def results_since(ts: datetime, check: str) -> dict[str, int]:
        rows = await read(q.results, check, ts)
        counts: dict[str, int] = {}
        for r in rows:  # type: ignore[attr-defined]
            counts[r.vantage] = counts.get(r.vantage, 0) + 1
        return counts

    async def probed(check: str, since: datetime, n: int) -> bool:
        if not db.exists():
            return False
        counts = await results_since(since, check)
        return len(counts) == 3 and min(counts.values()) >= n

    try:
        first = await daemons(config, db)
        t = utcnow()
        await until(lambda: probed("web", t, 3), 20, "three results per vantage", first)

        # US and UK get the error page (status 200): a major outage of `web`.
        web_on = utcnow()
        script.down["web"] = {"US", "UK"}

        async def web_open() -> bool:
            return any(i.resolved_at is None for i in await incidents("web"))

        await until(web_open, 10, "the web incident", first)
        (opened,) = await incidents("web")
        assert opened.state == State.MAJOR_OUTAGE and opened.regions == ("UK", "US")
        assert (opened.reason, opened.signature) == ("error_page", "x-dont-fret")
        assert within_one_interval(opened.started_at, web_on), (opened, web_on)
        assert opened.started_at < opened.detected_at <= opened.started_at + LATE  # confirm: 2

        # Restart in the middle of it: the incident stays open, with the same id.
        assert await first.stop() == 0, first.log
        (stored,) = await incidents("web")
        assert stored.resolved_at is None and stored.id == opened.id
        second = await daemons(config, db)
        restarted = utcnow()
        await until(lambda: probed("web", restarted, 3), 20, "results after the restart", second)
        (after,) = await incidents("web")
        assert (after.id, after.resolved_at, after.started_at) == (opened.id, None, opened.started_at)

        # Japan sees it too, for a while: the same incident now has three regions.
        script.down["web"] = {"US", "UK", "JP"}

        async def web_in_jp() -> bool:
            return [i.regions for i in await incidents("web")] == [("JP", "UK", "US")]

        await until(web_in_jp, 10, "JP in the web incident", second)

        web_off = utcnow()
        script.down["web"] = set()

        async def web_resolved() -> bool:
            return all(i.resolved_at is not None for i in await incidents("web"))

        await until(web_resolved, 10, "the web incident to resolve", second)
        (resolved,) = await incidents("web")
        assert resolved.id == opened.id
        assert within_one_interval(resolved.resolved_at, web_off), (resolved, web_off)

        # Then the API fails for Japan alone: a partial outage.
        api_on = utcnow()
        script.down["api"] = {"JP"}

        async def api_open() -> bool:
            return len(await incidents("api")) == 1

        await until(api_open, 10, "the api incident", second)
        t = utcnow()
        await until(lambda: probed("api", t, 2), 10, "more api results", second)
        api_off = utcnow()
        script.down["api"] = set()

        async def api_resolved() -> bool:
            return all(i.resolved_at is not None for i in await incidents("api"))

        await until(api_resolved, 10, "the api incident to resolve", second)
        assert await second.stop() == 0, second.log
    finally:
        await runner.cleanup()

    live = await incidents()
    assert [(i.check, i.state, i.regions) for i in live] == [
        ("web", State.MAJOR_OUTAGE, ("JP", "UK", "US")),
        ("api", State.PARTIAL_OUTAGE, ("JP",)),
    ]
    api = live[1]
    assert (api.reason, api.vantages) == ("http_status", ("jp",))
    assert within_one_interval(api.started_at, api_on), (api, api_on)
    assert within_one_interval(api.resolved_at, api_off), (api, api_off)

    # The same incidents, rebuilt from the results alone with the configuration's policies.
    result = await asyncio.to_thread(
        CliRunner().invoke, main, ["report", "--rebuild", "-c", str(config), "--db", str(db), "--since", "1h"]
    )
    assert result.exit_code == 0, result.stderr
    assert "rebuilt 2 incidents of 2 checks" in result.stderr
    assert "(2 kept their id, 0 new, 0 removed)" in result.stderr
    assert await incidents() == live
