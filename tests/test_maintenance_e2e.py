"""End to end: `prober run` during a maintenance window that covers a scripted outage of one check.

The target is turned into an error page for two checks; the window covers one of them. Both are still
probed and both incidents open: the covered one is marked `maintenance`, the other is not, and the
page's JSON, the Statuspage endpoints and /metrics say which component is under maintenance.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from conftest import ERROR_PAGE, HEALTHY_PAGE, ProberProcess, start_app, wait_for

from prober.model import utcnow

pytestmark = pytest.mark.slow

ENV = {
    **os.environ,
    "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[1]), os.environ.get("PYTHONPATH", "")]),
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_a_window_covering_an_outage_marks_its_incident(
    tmp_path: Path, prober_process: Callable[..., Awaitable[ProberProcess]]
) -> None:
    broken = {"on": False}

    async def page(request: web.Request) -> web.Response:
        return web.Response(text=ERROR_PAGE if broken["on"] else HEALTHY_PAGE, content_type="text/html")

    app = web.Application()
    app.add_routes([web.get("/web", page), web.get("/other", page)])
    runner, port = await start_app(app)
    start = (utcnow() - timedelta(minutes=1)).isoformat()
    later = (utcnow() + timedelta(hours=6)).hour  # a daily window hours away: never in progress now
    config = tmp_path / "checks.yaml"
    config.write_text(
        f"""
defaults: {{interval: 300ms, timeout: 2s, confirm: 2, recover: 2}}
checks:
  - {{name: x-web, url: "http://127.0.0.1:{port}/web"}}
  - {{name: x-other, url: "http://127.0.0.1:{port}/other"}}
maintenance:
  - {{name: db-upgrade, checks: [x-web], start: "{start}", duration: 1h}}
  - {{name: nightly, every: "0 {later} * * *", timezone: Europe/Paris, duration: 1h}}
"""
    )
    http = f"127.0.0.1:{free_port()}"
    daemon = await prober_process(
        "run", "-c", str(config), "--db", str(tmp_path / "prober.db"), "--http", http, env=ENV
    )
    base = f"http://{http}"
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:

            async def get(path: str) -> Any:
                try:
                    async with session.get(base + path) as response:
                        return await response.json() if response.status == 200 else None
                except aiohttp.ClientError:
                    return None

            async def healthy() -> bool:
                body = await get("/api/checks")
                return body is not None and {c["state"] for c in body["checks"]} == {"operational"}

            await wait_for(healthy, 30, "both checks operational", lambda: daemon.log)
            broken["on"] = True
            found: dict[str, dict[str, Any]] = {}

            async def both_open() -> bool:
                body = await get("/api/incidents?since=1h")
                found.update({i["check"]: i for i in (body or {}).get("incidents", [])})
                return {"x-web", "x-other"} <= set(found)

            await wait_for(both_open, 30, "an incident of each check", lambda: daemon.log)
            assert found["x-web"]["maintenance"] is True
            assert found["x-other"]["maintenance"] is False

            active = await get("/api/v2/scheduled-maintenances/active.json")
            (window,) = active["scheduled_maintenances"]
            assert (window["name"], window["status"]) == ("db-upgrade", "in_progress")
            assert [(c["id"], c["status"]) for c in window["components"]] == [("x-web", "under_maintenance")]
            upcoming = await get("/api/v2/scheduled-maintenances/upcoming.json")
            assert {m["name"] for m in upcoming["scheduled_maintenances"]} == {"nightly"}

            summary = await get("/api/v2/summary.json")
            statuses = {c["id"]: c["status"] for c in summary["components"]}
            assert statuses["x-web"] == "under_maintenance"
            assert statuses["x-other"] in ("partial_outage", "major_outage")
            assert {m["name"] for m in summary["scheduled_maintenances"]} == {"db-upgrade", "nightly"}
            checks = {c["name"]: c for c in (await get("/api/checks"))["checks"]}
            assert checks["x-web"]["maintenance"] and not checks["x-other"]["maintenance"]

            async with session.get(base + "/metrics") as response:
                metrics = await response.text()
            assert 'prober_check_maintenance{check="x-web",surface="web"} 1.0' in metrics
            assert 'prober_check_maintenance{check="x-other"' not in metrics  # by default: the ones at 1
    finally:
        code = await daemon.stop()
        await runner.cleanup()
    assert code == 0, daemon.log
