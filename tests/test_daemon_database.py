"""The daemon against a database that cannot be written: locked, full, deleted.

Probing never waits on the database, /healthz and /metrics say what is wrong, and SIGTERM stops the
daemon within systemd's 20 s, saying how many results could not be saved.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import socket
import sqlite3
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from conftest import ERROR_PAGE, HEALTHY_PAGE, ProberProcess, start_app, wait_for

pytestmark = pytest.mark.slow

INTERVAL = 0.25
SYSTEMD_STOP = 20.0  # systemd's default TimeoutStopSec: SIGKILL after it


@dataclass
class Flaky:
    """A target whose page turns into the error page when told to."""

    down: bool = False
    hits: int = 0

    def app(self) -> web.Application:
        async def page(request: web.Request) -> web.Response:
            self.hits += 1
            return web.Response(text=ERROR_PAGE if self.down else HEALTHY_PAGE, content_type="text/html")

        app = web.Application()
        app.router.add_get("/home", page)
        return app


@dataclass
class Running:
    """A `prober run --http` subprocess probing the flaky target."""

    proc: ProberProcess
    target: Flaky
    db: Path
    base: str

    async def get(self, path: str) -> tuple[int, str]:
        async with aiohttp.ClientSession() as session, session.get(self.base + path) as resp:
            return resp.status, await resp.text()

    async def health(self) -> tuple[int, dict[str, Any]]:
        status, text = await self.get("/healthz")
        return status, json.loads(text)

    async def until_health(
        self, condition: Callable[[int, dict[str, Any]], bool], within: float, what: str
    ) -> None:
        deadline = time.monotonic() + within
        while True:
            status, body = await self.health()
            if condition(status, body):
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}: {status} {body}\n{self.proc.log}")
            await asyncio.sleep(0.1)

    async def stop_within(self, seconds: float) -> float:
        """SIGTERM; how long the daemon took to exit (it must exit 0 within `seconds`)."""
        started = time.monotonic()
        code = await self.proc.stop(signal.SIGTERM, within=seconds)
        took = time.monotonic() - started
        assert code == 0, self.proc.log
        return took


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def count(db: Path, table: str) -> int:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


@contextlib.contextmanager
def exclusive_lock(db: Path) -> Iterator[sqlite3.Connection]:
    """Another connection holding the database with BEGIN EXCLUSIVE, as a backup or a migration would."""
    blocker = sqlite3.connect(db, timeout=5, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        yield blocker
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()


@pytest.fixture
async def daemon(
    tmp_path: Path, prober_process: Callable[..., Awaitable[ProberProcess]]
) -> AsyncIterator[Callable[[Path], Awaitable[Running]]]:
    """Start a daemon (database at the given path) probing a flaky target every 250 ms."""
    target = Flaky()
    runner, port = await start_app(target.app())

    async def start(db: Path) -> Running:
        config = tmp_path / "checks.yaml"
        config.write_text(
            f"defaults: {{interval: {INTERVAL}s, timeout: 2s, confirm: 2, recover: 2}}\n"
            f"checks:\n  - {{name: home, url: 'http://127.0.0.1:{port}/home'}}\n"
        )
        http = free_port()
        proc = await prober_process("run", "-c", str(config), "--db", str(db), "--http", f"127.0.0.1:{http}")
        running = Running(proc, target, db, f"http://127.0.0.1:{http}")
        await wait_for(lambda: target.hits >= 4 and "status page on" in proc.log, 20, "the daemon to probe")
        await running.until_health(lambda status, body: status == 200, 10, "a healthy start")
        return running

    yield start
    await runner.cleanup()


def writes_failing(status: int, body: dict[str, Any]) -> bool:
    return status == 503 and body["status"] == "failing" and not body["store"]["writable"]


async def test_a_locked_database_never_stalls_probing_and_sigterm_stops_in_time(
    tmp_path: Path, daemon: Callable[[Path], Awaitable[Running]]
) -> None:
    db = tmp_path / "p.db"
    run = await daemon(db)
    with exclusive_lock(db):
        run.target.down = True  # the check goes down while nothing can be written: an incident opens
        before = run.target.hits
        # 20 runs are 5 s of schedule: a check that waited on its incident's write got 2 of 50.
        await wait_for(
            lambda: run.target.hits >= before + 20, 10, f"20 probes during the lock\n{run.proc.log}"
        )
        await run.until_health(writes_failing, 10, "/healthz to say that writes fail")
        _, body = await run.health()
        assert "locked" in body["database"] and "locked" in body["store"]["last_error"]
        assert body["store"]["backlog"] > 0 and body["store"]["write_errors"] > 0
        assert body["store"]["failing_since"] is not None
        _, metrics = await run.get("/metrics")
        assert "prober_store_writable 0.0" in metrics and "prober_store_write_errors_total" in metrics
        _, checks = await run.get("/api/checks")
        (home,) = json.loads(checks)["checks"]
        assert home["state"] in ("partial_outage", "major_outage")  # the live view did not wait either
        # The outage has its incident, as the daemon knows it, though none is written yet.
        incident = home["incident"]
        assert incident is not None and incident["id"] is None, home
        assert incident["state"] == home["state"] and incident["ongoing"] and incident["started_at"], home
        assert count(db, "incidents") == 0
    await run.until_health(
        lambda status, body: status == 200 and body["store"]["backlog"] == 0, 15, "the backlog to be written"
    )
    assert count(db, "incidents") == 1

    async def incident_id() -> Any:
        _, checks = await run.get("/api/checks")
        return json.loads(checks)["checks"][0]["incident"]["id"]

    deadline = time.monotonic() + 10
    while await incident_id() is None:  # the cached answer is made again within a couple of seconds
        assert time.monotonic() < deadline, "the saved incident's id never reached /api/checks"
        await asyncio.sleep(0.2)
    assert await incident_id() == 1
    hits = run.target.hits
    await wait_for(lambda: count(db, "results") >= hits, 10, "every result")

    with exclusive_lock(db):
        await run.until_health(writes_failing, 10, "writes to fail again")
        took = await run.stop_within(SYSTEMD_STOP)
    assert took < SYSTEMD_STOP - 2, run.proc.log
    assert "results could not be saved" in run.proc.log, run.proc.log


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs: a real file system that fills up (root only)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)], capture_output=True, check=False
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(folder: Path) -> Path:
    """Fill the file system of `folder` to the last byte; the file that did it."""
    filler = folder / "filler"
    with filler.open("wb", buffering=0) as out, contextlib.suppress(OSError):
        for _ in range(64 * 1024):  # bounded: 64 MiB at most, far more than the disk
            out.write(b"\0" * 1024)
    return filler


async def test_a_full_disk_is_reported_then_recovered_and_sigterm_stops_in_time(
    tiny_disk: Path, daemon: Callable[[Path], Awaitable[Running]]
) -> None:
    db = tiny_disk / "p.db"
    run = await daemon(db)
    filler = fill(tiny_disk)
    await run.until_health(writes_failing, 15, "/healthz to say that writes fail")
    _, body = await run.health()
    assert "full" in body["store"]["last_error"], body
    _, metrics = await run.get("/metrics")
    assert "prober_store_writable 0.0" in metrics
    filler.unlink()  # space again: what waited is written, nothing was lost
    await run.until_health(
        lambda status, body: status == 200 and body["store"]["backlog"] == 0, 15, "the backlog to be written"
    )
    hits = run.target.hits
    await wait_for(lambda: count(db, "results") >= hits, 10, "every result")
    assert "takes writes again" in run.proc.log

    fill(tiny_disk)
    await run.until_health(writes_failing, 15, "writes to fail again")
    took = await run.stop_within(SYSTEMD_STOP)
    assert took < SYSTEMD_STOP - 2, run.proc.log
    assert "results could not be saved" in run.proc.log, run.proc.log


async def test_a_deleted_database_file_is_not_ok(
    tmp_path: Path, daemon: Callable[[Path], Awaitable[Running]]
) -> None:
    db = tmp_path / "p.db"
    run = await daemon(db)
    db.unlink()
    # /healthz sees the file gone at once; wait until a result after that was refused and waits.
    await run.until_health(
        lambda status, body: (
            writes_failing(status, body)
            and body["store"]["write_errors"] > 0
            and body["store"]["backlog"] > 0
        ),
        10,
        "a result to be refused for the file being gone",
    )
    _, body = await run.health()
    assert "deleted" in body["database"] and "deleted" in body["store"]["file_problem"]
    took = await run.stop_within(SYSTEMD_STOP)
    assert took < SYSTEMD_STOP - 2
    assert "results could not be saved" in run.proc.log, run.proc.log
