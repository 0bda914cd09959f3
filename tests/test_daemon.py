"""The daemon as a real subprocess: schedule, SIGTERM with no lost results, SIGHUP reload."""

from __future__ import annotations

import json
import signal
import sqlite3
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from conftest import ProberProcess, Target, wait_for

pytestmark = pytest.mark.slow


Spawn = Callable[..., Awaitable[ProberProcess]]


@pytest.fixture
def spawn(prober_process: Spawn) -> Spawn:
    """`spawn(config, db, *extra)` runs `prober run`; `spawn(None, db, command, *extra)` another command."""

    async def start(config: Path | None, db: Path, *extra: str) -> ProberProcess:
        if config is None:
            return await prober_process(extra[0], "--db", str(db), *extra[1:])
        return await prober_process("run", "-c", str(config), "--db", str(db), *extra)

    return start


def rows(db: Path, sql: str = "SELECT count(*) FROM results") -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute(sql).fetchone()[0])


def config_text(target: Target, paths: dict[str, str], interval: str = "300ms") -> str:
    checks = "".join(f"  - {{name: {name}, url: '{target.url}{path}'}}\n" for name, path in paths.items())
    return f"defaults: {{interval: {interval}, timeout: 2s}}\nchecks:\n{checks}"


async def test_runs_on_schedule_and_stops_cleanly_without_losing_results(
    target: Target, tmp_path: Path, spawn: Spawn
) -> None:
    config = tmp_path / "checks.yaml"
    db = tmp_path / "prober.db"
    config.write_text(config_text(target, {"home": "/ok", "broken": "/error-page"}))
    proc = await spawn(config, db)
    await wait_for(lambda: target.total("/ok") >= 8 and target.total("/error-page") >= 8, 20, "probes")
    started = time.monotonic()
    code = await proc.stop(signal.SIGTERM)
    assert code == 0, proc.log
    assert time.monotonic() - started < 6
    # Every request the target answered is a row: nothing in flight was lost.
    assert rows(db) == target.total(), proc.log
    assert rows(db, "SELECT count(*) FROM results WHERE check_name = 'broken' AND verdict = 'down'") >= 8
    # One log line per verdict change, not per probe.
    assert proc.log.count("broken from local") == 1, proc.log
    assert "stopped in" in proc.log


async def test_sigint_stops_too(target: Target, tmp_path: Path, spawn: Spawn) -> None:
    config = tmp_path / "checks.yaml"
    config.write_text(config_text(target, {"home": "/ok"}))
    proc = await spawn(config, tmp_path / "p.db")
    await wait_for(lambda: target.total() >= 2, 20, "probes")
    assert await proc.stop(signal.SIGINT) == 0
    assert rows(tmp_path / "p.db") == target.total()


async def test_sighup_reloads_and_refuses_a_broken_file(target: Target, tmp_path: Path, spawn: Spawn) -> None:
    config = tmp_path / "checks.yaml"
    config.write_text(config_text(target, {"first": "/ok"}))
    proc = await spawn(config, tmp_path / "p.db")
    await wait_for(lambda: target.total("/ok") >= 2, 20, "first check")

    config.write_text(config_text(target, {"second": "/api"}))
    proc.process.send_signal(signal.SIGHUP)
    await wait_for(lambda: "configuration reloaded" in proc.log, 10, "reload")
    await wait_for(lambda: target.total("/api") >= 2, 10, "the added check")
    ok_after_reload = target.total("/ok")
    await wait_for(lambda: target.total("/api") >= 5, 10, "more probes")
    assert target.total("/ok") <= ok_after_reload + 1  # the removed check stopped

    config.write_text(
        "checks:\n  - {name: bad, url: 'http://x', interval: soon}\n"
        "  - {name: worse, url: 'http://y', confirm: never}\n"
    )
    proc.process.send_signal(signal.SIGHUP)
    await wait_for(lambda: "checks.yaml:3:" in proc.log, 10, "refusal")
    refusals = [line for line in proc.log.splitlines() if "reload refused" in line]
    # Each error located, on a line of its own, readable (no newline escaped as \u000a).
    assert len(refusals) == 2 and "\\u000a" not in proc.log, proc.log
    assert "checks.yaml:2:" in refusals[0] and "interval" in refusals[0], refusals
    assert "checks.yaml:3:" in refusals[1] and "confirm" in refusals[1], refusals
    before = target.total("/api")
    await wait_for(lambda: target.total("/api") >= before + 2, 10, "the old configuration to go on")
    assert await proc.stop() == 0


async def test_invalid_config_exits_2(tmp_path: Path, spawn: Spawn) -> None:
    config = tmp_path / "checks.yaml"
    config.write_text("checks:\n  - {name: x, url: 'http://127.0.0.1:9/', intervl: 5s}\n")
    proc = await spawn(config, tmp_path / "p.db")
    code = await proc.wait()
    assert code == 2
    assert "checks.yaml:2:" in proc.log and "intervl" in proc.log


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def fetch(url: str) -> tuple[int, str]:
    import aiohttp

    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        return resp.status, await resp.text()


async def test_run_with_http_serves_the_page_metrics_and_live_state(
    target: Target, tmp_path: Path, spawn: Spawn
) -> None:
    config = tmp_path / "checks.yaml"
    db = tmp_path / "p.db"
    config.write_text(config_text(target, {"home": "/ok", "broken": "/error-page"}))
    port = free_port()
    proc = await spawn(config, db, "--http", f"127.0.0.1:{port}")
    await wait_for(lambda: target.total("/error-page") >= 4 and "status page on" in proc.log, 20, "probes")
    status, page = await fetch(f"http://127.0.0.1:{port}/")
    assert status == 200 and "home" in page and "broken" in page
    status, metrics = await fetch(f"http://127.0.0.1:{port}/metrics")
    assert 'prober_probe_success{check="home"' in metrics
    status, body = await fetch(f"http://127.0.0.1:{port}/api/checks")
    states = {c["name"]: c["state"] for c in json.loads(body)["checks"]}
    assert states["broken"] in ("partial_outage", "major_outage") and states["home"] == "operational", states
    assert await proc.stop() == 0
    # `prober serve` reads the same database afterwards.
    port = free_port()
    serve = await spawn(None, db, "serve", "-c", str(config), "--http", f"127.0.0.1:{port}")
    await wait_for(lambda: "serving" in serve.log, 20, "serve to start")
    status, body = await fetch(f"http://127.0.0.1:{port}/api/v2/summary.json")
    assert status == 200 and json.loads(body)["status"]["indicator"] in ("major", "minor", "critical")
    assert await serve.stop() == 0
