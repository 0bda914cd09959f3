"""The daemon as a real subprocess: schedule, SIGTERM with no lost results, SIGHUP reload."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from conftest import Target

pytestmark = pytest.mark.slow


async def wait_for(condition: Callable[[], bool], within: float, what: str) -> None:
    """Poll `condition` until it holds, failing after `within` seconds."""
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within}s waiting for {what}")
        await asyncio.sleep(0.05)


class Proc:
    """A `prober run` subprocess whose stderr is collected."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.log = ""
        self._reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        assert self.process.stderr is not None
        async for line in self.process.stderr:
            self.log += line.decode()

    async def stop(self, sig: int = signal.SIGTERM, within: float = 10) -> int:
        self.process.send_signal(sig)
        code = await asyncio.wait_for(self.process.wait(), within)
        await asyncio.wait_for(self._reader, within)
        return code


@pytest.fixture
async def spawn(tmp_path: Path) -> AsyncIterator[Callable[..., object]]:
    procs: list[Proc] = []

    async def start(config: Path | None, db: Path, *extra: str) -> Proc:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        if config is None:  # another command than `run`, given in `extra`
            args = [extra[0], "--db", str(db), *extra[1:]]
        else:
            args = ["run", "-c", str(config), "--db", str(db), *extra]
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "prober", *args,
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE, env=env,
        )  # fmt: skip
        proc = Proc(process)
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.process.returncode is None:
            proc.process.kill()
            await proc.process.wait()


def rows(db: Path, sql: str = "SELECT count(*) FROM results") -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute(sql).fetchone()[0])


def config_text(target: Target, paths: dict[str, str], interval: str = "300ms") -> str:
    checks = "".join(f"  - {{name: {name}, url: '{target.url}{path}'}}\n" for name, path in paths.items())
    return f"defaults: {{interval: {interval}, timeout: 2s}}\nchecks:\n{checks}"


async def test_runs_on_schedule_and_stops_cleanly_without_losing_results(
    target: Target, tmp_path: Path, spawn: Callable[..., object]
) -> None:
    config = tmp_path / "checks.yaml"
    db = tmp_path / "prober.db"
    config.write_text(config_text(target, {"home": "/ok", "broken": "/error-page"}))
    proc: Proc = await spawn(config, db)  # type: ignore[assignment]
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
    assert "stopped after" in proc.log


async def test_sigint_stops_too(target: Target, tmp_path: Path, spawn: Callable[..., object]) -> None:
    config = tmp_path / "checks.yaml"
    config.write_text(config_text(target, {"home": "/ok"}))
    proc: Proc = await spawn(config, tmp_path / "p.db")  # type: ignore[assignment]
    await wait_for(lambda: target.total() >= 2, 20, "probes")
    assert await proc.stop(signal.SIGINT) == 0
    assert rows(tmp_path / "p.db") == target.total()


async def test_sighup_reloads_and_refuses_a_broken_file(
    target: Target, tmp_path: Path, spawn: Callable[..., object]
) -> None:
    config = tmp_path / "checks.yaml"
    config.write_text(config_text(target, {"first": "/ok"}))
    proc: Proc = await spawn(config, tmp_path / "p.db")  # type: ignore[assignment]
    await wait_for(lambda: target.total("/ok") >= 2, 20, "first check")

    config.write_text(config_text(target, {"second": "/api"}))
    proc.process.send_signal(signal.SIGHUP)
    await wait_for(lambda: "configuration reloaded" in proc.log, 10, "reload")
    await wait_for(lambda: target.total("/api") >= 2, 10, "the added check")
    ok_after_reload = target.total("/ok")
    await wait_for(lambda: target.total("/api") >= 5, 10, "more probes")
    assert target.total("/ok") <= ok_after_reload + 1  # the removed check stopped

    config.write_text("checks:\n  - {name: bad, url: 'http://x', interval: soon}\n")
    proc.process.send_signal(signal.SIGHUP)
    await wait_for(lambda: "reload refused" in proc.log, 10, "refusal")
    assert "checks.yaml:2:" in proc.log  # the error is located
    before = target.total("/api")
    await wait_for(lambda: target.total("/api") >= before + 2, 10, "the old configuration to go on")
    assert await proc.stop() == 0


async def test_invalid_config_exits_2(tmp_path: Path, spawn: Callable[..., object]) -> None:
    config = tmp_path / "checks.yaml"
    config.write_text("checks:\n  - {name: x, url: 'http://127.0.0.1:9/', intervl: 5s}\n")
    proc: Proc = await spawn(config, tmp_path / "p.db")  # type: ignore[assignment]
    code = await asyncio.wait_for(proc.process.wait(), 20)
    await asyncio.wait_for(proc._reader, 5)
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
    target: Target, tmp_path: Path, spawn: Callable[..., object]
) -> None:
    config = tmp_path / "checks.yaml"
    db = tmp_path / "p.db"
    config.write_text(config_text(target, {"home": "/ok", "broken": "/error-page"}))
    port = free_port()
    proc: Proc = await spawn(config, db, "--http", f"127.0.0.1:{port}")  # type: ignore[assignment]
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
    serve: Proc = await spawn(None, db, "serve", "--http", f"127.0.0.1:{port}")  # type: ignore[assignment]
    await wait_for(lambda: "serving" in serve.log, 20, "serve to start")
    status, body = await fetch(f"http://127.0.0.1:{port}/api/v2/summary.json")
    assert status == 200 and json.loads(body)["status"]["indicator"] in ("major", "minor", "critical")
    assert await serve.stop() == 0
