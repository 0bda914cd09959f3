"""Alerts in the daemon: kill -9 with notifications pending, then restart; a one-vantage flap."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sqlite3
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from conftest import ProberProcess, start_app, wait_for
from test_alerts_delivery import prober_cli

pytestmark = pytest.mark.slow

ENV = {
    **os.environ,
    "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[1]), os.environ.get("PYTHONPATH", "")]),
}
REGION_OF = {"127.0.0.2": "US", "127.0.0.3": "JP", "127.0.0.4": "UK", "127.0.0.1": "local"}


@dataclass
class World:
    """The probed target (down per region, or a number of failures to serve) and the webhook receiver."""

    down: set[str] = field(default_factory=set)
    flaps: Counter[str] = field(default_factory=Counter)  # region -> failures still to serve
    hits: Counter[str] = field(default_factory=Counter)
    refuse: bool = False
    attempts: list[tuple[int, dict[str, Any]]] = field(default_factory=list)  # (status, body)
    port: int = 0

    def app(self) -> web.Application:
        async def api(request: web.Request) -> web.Response:
            peer = request.transport.get_extra_info("peername") if request.transport else None
            region = REGION_OF.get(peer[0], "?") if peer else "?"
            self.hits[region] += 1
            if region in self.down or self.flaps[region] > 0:
                self.flaps[region] = max(0, self.flaps[region] - 1)
                return web.json_response({"error": "unavailable"}, status=503)
            return web.json_response({"ok": True})

        async def hook(request: web.Request) -> web.Response:
            body = await request.json()
            status = 500 if self.refuse else 200
            self.attempts.append((status, body))
            return web.Response(status=status, text="refused" if self.refuse else "ok")

        app = web.Application()
        app.add_routes([web.get("/api", api), web.post("/hook", hook)])
        return app

    def accepted(self) -> list[dict[str, Any]]:
        return [body for status, body in self.attempts if status == 200]


@pytest.fixture
async def world() -> AsyncIterator[World]:
    w = World()
    runner, w.port = await start_app(w.app())
    yield w
    await runner.cleanup()


def write_config(path: Path, port: int, vantages: str) -> None:
    path.write_text(f"""\
alerts:
  channels:
    ops: {{type: webhook, url: "http://127.0.0.1:{port}/hook"}}
  timeout: 2s
defaults: {{interval: 0.3s, timeout: 2s, confirm: 2, recover: 2, alerts: [ops]}}
{vantages}
checks:
  - {{name: api, surface: api, url: 'http://127.0.0.1:{port}/api'}}
""")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def notifications(db: Path) -> list[dict[str, Any]]:
    if not db.exists():
        return []
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)) as conn:
        conn.row_factory = sqlite3.Row
        try:
            return [dict(r) for r in conn.execute("SELECT * FROM notifications ORDER BY rowid")]
        except sqlite3.OperationalError:  # not migrated yet
            return []


async def test_kill_9_with_notifications_pending_then_restart(
    tmp_path: Path, world: World, prober_process: Callable[..., Awaitable[ProberProcess]]
) -> None:
    config, db = tmp_path / "checks.yaml", tmp_path / "p.db"
    write_config(config, world.port, "")
    world.refuse = True
    daemon = await prober_process("run", "-c", str(config), "--db", str(db), env=ENV)
    world.down = {"local"}

    def events(state: str | None = None, tried: bool = False) -> list[str]:
        return [
            r["event"]
            for r in notifications(db)
            if (state is None or r["state"] == state) and (not tried or r["attempts"] >= 1)
        ]

    await wait_for(
        lambda: events("pending", tried=True) == ["open"], 30, "a refused open", lambda: daemon.log
    )
    world.down = set()
    await wait_for(
        lambda: events("pending") == ["open", "resolve"], 30, "a pending resolve", lambda: daemon.log
    )
    daemon.process.kill()  # kill -9: nothing is flushed, nothing said
    await daemon.wait()
    refused_ids = {body["id"] for status, body in world.attempts if status == 500}
    assert len(refused_ids) == 1

    world.refuse = False
    daemon = await prober_process("run", "-c", str(config), "--db", str(db), env=ENV)
    await wait_for(lambda: events("sent") == ["open", "resolve"], 40, "both delivered", lambda: daemon.log)
    rows = {r["event"]: r for r in notifications(db)}
    accepted = world.accepted()
    assert [b["event"] for b in accepted] == ["open", "resolve"]  # in order: the resolve waited for the open
    assert [b["id"] for b in accepted] == [rows["open"]["id"], rows["resolve"]["id"]]
    assert refused_ids == {rows["open"]["id"]}  # the id did not change across the restart
    assert (
        accepted[1]["incident"]["resolved_at"]
        and accepted[1]["incident"]["id"] == rows["open"]["incident_id"]
    )
    assert await daemon.stop() == 0

    # A third start re-sends nothing that was sent; /metrics and /healthz tell the outbox.
    http = f"127.0.0.1:{free_port()}"
    daemon = await prober_process("run", "-c", str(config), "--db", str(db), "--http", http, env=ENV)
    probed = world.hits["local"]
    await wait_for(
        lambda: world.hits["local"] >= probed + 8, 20, "the daemon to probe again", lambda: daemon.log
    )
    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://{http}/metrics") as resp:
            metrics = await resp.text()
        async with session.get(f"http://{http}/healthz") as resp:
            health = await resp.json()
    assert 'prober_notifications{channel="ops",state="sent"} 2.0' in metrics, metrics
    assert "prober_outbox_depth 0.0" in metrics and "prober_outbox_oldest_pending_seconds 0.0" in metrics
    assert health["outbox"] == {"pending": 0, "failed": 0, "oldest_pending_seconds": 0.0}
    assert await daemon.stop() == 0
    assert len(world.accepted()) == 2


async def test_a_flap_on_one_vantage_of_three_notifies_no_one(
    tmp_path: Path, world: World, prober_process: Callable[..., Awaitable[ProberProcess]]
) -> None:
    config, db = tmp_path / "checks.yaml", tmp_path / "p.db"
    vantages = (
        "vantages:\n  us: {region: US, source_address: 127.0.0.2}\n"
        "  jp: {region: JP, source_address: 127.0.0.3}\n  uk: {region: UK, source_address: 127.0.0.4}\n"
    )
    write_config(config, world.port, vantages)
    daemon = await prober_process("run", "-c", str(config), "--db", str(db), env=ENV)
    await wait_for(
        lambda: min(world.hits[r] for r in ("US", "JP", "UK")) >= 2, 20, "probes", lambda: daemon.log
    )
    world.flaps["JP"] = 1  # one down result: fewer than `confirm`
    seen = dict(world.hits)
    await wait_for(
        lambda: all(world.hits[r] >= seen[r] + 8 for r in ("US", "JP", "UK")),
        30,
        "probes after the flap",
        lambda: daemon.log,
    )
    assert world.flaps["JP"] == 0 and notifications(db) == [] and world.attempts == []
    # The same wiring notifies a confirmed outage: the silence above was not a broken pipe.
    world.down = {"US", "JP", "UK"}

    def major() -> bool:
        return any(b["incident"]["state"] == "major_outage" for b in world.accepted())

    await wait_for(major, 20, "the open (and escalate) notification", lambda: daemon.log)
    events = [b["event"] for b in world.accepted()]
    assert events in (["open"], ["open", "escalate"]), events  # partial first if one vantage confirmed first
    assert len(json.loads(notifications(db)[-1]["incident"])["regions"]) >= 2  # the quorum of three
    assert await daemon.stop() == 0


async def test_prober_once_from_cron_sends_what_its_run_changed(tmp_path: Path, world: World) -> None:
    config, db = tmp_path / "checks.yaml", tmp_path / "p.db"
    write_config(config, world.port, "")
    config.write_text(config.read_text().replace("confirm: 2, recover: 2", "confirm: 1, recover: 1"))

    async def once() -> int:
        code, out = await prober_cli("once", "-c", str(config), "--db", str(db))
        assert "Traceback" not in out, out
        return code

    world.down = {"local"}
    assert await once() == 1  # down: the incident opens, and its notification goes in the same run
    assert [b["event"] for b in world.accepted()] == ["open"]
    world.refuse = True
    world.down = set()
    assert await once() == 0  # resolved, but the receiver refuses: the resolve waits for the next run
    assert [r["state"] for r in notifications(db)] == ["sent", "pending"]
    world.refuse = False
    pending = notifications(db)[1]

    def due() -> bool:
        return notifications(db)[1]["next_attempt_at"] <= datetime.now(UTC).isoformat()[:23] + "Z"

    await wait_for(due, 20, "the retry to be due")
    assert await once() == 0
    assert [b["event"] for b in world.accepted()] == ["open", "resolve"]
    assert world.accepted()[1]["id"] == pending["id"] and notifications(db)[1]["state"] == "sent"
